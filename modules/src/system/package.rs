//! `package` (and `apt`, `dnf`, `yum`, `pacman`, `apk`): install or remove OS packages with the
//! host's package manager.

use async_trait::async_trait;
use pbr_core::params::{StrList, bool_lenient};
use pbr_core::{Change, Ctx, Diff, Doc, Module, ModuleError, Op, Plan, ReadHost, sh_quote};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PkgState {
    #[default]
    #[serde(alias = "installed")]
    Present,
    #[serde(alias = "removed")]
    Absent,
    Latest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Manager {
    Apt,
    Pacman,
    Dnf,
    Yum,
    Apk,
    Auto,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PackageParams {
    /// Package names (a list or a comma-separated string).
    #[serde(default, alias = "pkg", alias = "package")]
    pub name: StrList,
    /// `present` installs missing packages, `latest` also upgrades installed ones, `absent`
    /// removes them.
    #[serde(default)]
    pub state: PkgState,
    /// Refresh the package index before installing (`apt-get update`, `pacman -Sy`...).
    #[serde(default, deserialize_with = "bool_lenient", alias = "update-cache")]
    pub update_cache: bool,
    /// With `update_cache`, skip the refresh when the index is younger than this many seconds
    /// (apt and pacman; other managers always refresh).
    #[serde(default)]
    pub cache_valid_time: Option<u64>,
    /// The package manager; detected on the host when `auto` (the default).
    #[serde(default, rename = "use")]
    pub use_: Option<Manager>,
    /// Also remove dependencies that are no longer needed (apt `autoremove`, pacman `-Rs`).
    #[serde(default, deserialize_with = "bool_lenient")]
    pub autoremove: bool,
    /// apt only: do not install recommended packages when false.
    #[serde(default)]
    pub install_recommends: Option<serde_json::Value>,
    /// Upgrade every installed package: `yes`/`safe` (`apt-get upgrade`, `pacman -Su`, `dnf
    /// upgrade`, `apk upgrade`), `dist`/`full` (`apt-get dist-upgrade`), `no`. With
    /// `update_cache`, after the index is refreshed.
    #[serde(default)]
    pub upgrade: Option<Value>,
}

/// How to upgrade everything, from `upgrade:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upgrade {
    Safe,
    Dist,
}

impl PackageParams {
    pub fn upgrade(&self) -> Result<Option<Upgrade>, String> {
        let s = match &self.upgrade {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Bool(b)) => return Ok(b.then_some(Upgrade::Safe)),
            Some(Value::String(s)) => s.to_ascii_lowercase(),
            Some(other) => return Err(format!("upgrade: expected yes, no, safe, dist or full, got {other}")),
        };
        match s.as_str() {
            "safe" => Ok(Some(Upgrade::Safe)),
            "dist" | "full" => Ok(Some(Upgrade::Dist)),
            _ => match pbr_core::params::parse_bool(&s) {
                Some(b) => Ok(b.then_some(Upgrade::Safe)),
                None => Err(format!("upgrade: expected yes, no, safe, dist or full, got {s:?}")),
            },
        }
    }
}

/// The read-only query listing the packages an upgrade of everything would change.
fn upgradable_script(m: Manager, u: Upgrade) -> &'static str {
    match (m, u) {
        (Manager::Apt, Upgrade::Safe) => "apt-get -s -q upgrade 2>/dev/null | sed -n 's/^Inst \\([^ ]*\\).*/\\1/p'",
        (Manager::Apt, Upgrade::Dist) => {
            "apt-get -s -q dist-upgrade 2>/dev/null | sed -n 's/^Inst \\([^ ]*\\).*/\\1/p'"
        }
        (Manager::Pacman, _) => "pacman -Qu 2>/dev/null | cut -d' ' -f1",
        (Manager::Dnf | Manager::Yum, _) => {
            "{ dnf -q check-update 2>/dev/null || yum -q check-update 2>/dev/null; } | awk 'NF == 3 { sub(/\\.[^.]*$/, \"\", $1); print $1 }'"
        }
        (Manager::Apk, _) => "apk version -l '<' 2>/dev/null | sed 1d | cut -d' ' -f1",
        (Manager::Auto, _) => "true",
    }
}

fn upgrade_all_script(m: Manager, u: Upgrade) -> &'static str {
    match (m, u) {
        (Manager::Apt, Upgrade::Safe) => {
            "DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
        }
        (Manager::Apt, Upgrade::Dist) => {
            "DEBIAN_FRONTEND=noninteractive apt-get dist-upgrade -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
        }
        (Manager::Pacman, _) => "pacman -Su --noconfirm",
        (Manager::Dnf, _) => "dnf upgrade -y",
        (Manager::Yum, _) => "yum upgrade -y",
        (Manager::Apk, _) => "apk upgrade",
        (Manager::Auto, _) => "true",
    }
}

/// What the probe saw: the manager, each package's installed version (None: not installed),
/// and for `latest` the upgradable ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkgFacts {
    pub manager: Manager,
    pub installed: BTreeMap<String, Option<String>>,
    pub upgradable: Vec<String>,
    /// Seconds since the package index was refreshed (apt, pacman), when known.
    pub cache_age: Option<u64>,
    /// With `upgrade`: the packages an upgrade of everything would change (by the index as it is).
    pub upgrade_all: Vec<String>,
}

/// Parse `dpkg-query -W -f='${Package}\t${Status}\t${Version}\n'` output.
pub fn parse_dpkg(out: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for l in out.lines() {
        let f: Vec<&str> = l.split('\t').collect();
        if f.len() >= 3 && f[1].ends_with(" installed") {
            m.insert(f[0].to_string(), f[2].to_string());
        }
    }
    m
}

/// Parse `pacman -Q names` / `apk info -v`-like "name version" lines.
pub fn parse_name_version(out: &str) -> BTreeMap<String, String> {
    out.lines().filter_map(|l| l.split_once(' ')).map(|(n, v)| (n.to_string(), v.trim().to_string())).collect()
}

/// Parse `rpm -q --qf '%{NAME} %{VERSION}-%{RELEASE}\n'` (lines "package X is not installed" skipped).
pub fn parse_rpm(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter(|l| !l.contains(" is not installed"))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, v)| (n.into(), v.into()))
        .collect()
}

/// Parse `apt-cache policy names`: packages whose candidate differs from the installed version.
pub fn parse_apt_policy(out: &str) -> Vec<String> {
    let mut res = vec![];
    let mut name: Option<String> = None;
    let mut installed: Option<String> = None;
    for l in out.lines() {
        if !l.starts_with(' ') && l.ends_with(':') {
            name = Some(l.trim_end_matches(':').to_string());
            installed = None;
        } else if let Some(v) = l.trim().strip_prefix("Installed:") {
            installed = Some(v.trim().to_string());
        } else if let Some(c) = l.trim().strip_prefix("Candidate:") {
            let c = c.trim();
            if let (Some(n), Some(i)) = (&name, &installed)
                && i != "(none)"
                && c != "(none)"
                && c != i
            {
                res.push(n.clone());
            }
        }
    }
    res
}

/// Strip a version/arch qualifier for the installed check (`foo=1.2`, `foo>=1`).
fn base_name(n: &str) -> &str {
    let end = n.find(['=', '<', '>']).unwrap_or(n.len());
    &n[..end]
}

/// One query: detect the manager (unless given), print its name, then the installed state.
pub fn probe_script(given: Option<Manager>, names: &[String], latest: bool) -> String {
    let q = |m: Manager| {
        let stamp = match m {
            Manager::Apt => "/var/lib/apt/periodic/update-success-stamp /var/lib/apt/lists",
            Manager::Pacman => "/var/lib/pacman/sync",
            _ => "",
        };
        let age = if stamp.is_empty() {
            "echo '@@AGE'".to_string()
        } else {
            format!(
                "t=; for f in {stamp}; do if [ -e $f ]; then t=$(stat -c %Y $f); break; fi; done; \
                 if [ -n \"$t\" ]; then echo \"@@AGE $(( $(date +%s) - t ))\"; else echo '@@AGE'; fi"
            )
        };
        let query = if names.is_empty() { "true".to_string() } else { query_script(m, names, latest) };
        format!("{age}; {query}")
    };
    if let Some(m) = given {
        return format!("echo {}; {}", mgr_bin(m), q(m));
    }
    let mut s = String::new();
    for m in [Manager::Apt, Manager::Pacman, Manager::Dnf, Manager::Yum, Manager::Apk] {
        let b = mgr_bin(m);
        s.push_str(&format!("if command -v {b} >/dev/null 2>&1; then echo {b}; {}; exit 0; fi; ", q(m)));
    }
    s.push_str("echo none");
    s
}

fn manager_of(s: &str) -> Option<Manager> {
    match s.trim() {
        "apt-get" => Some(Manager::Apt),
        "pacman" => Some(Manager::Pacman),
        "dnf" => Some(Manager::Dnf),
        "yum" => Some(Manager::Yum),
        "apk" => Some(Manager::Apk),
        _ => None,
    }
}

/// The read-only query listing installed versions (and upgradable ones with `latest`).
pub fn query_script(m: Manager, names: &[String], latest: bool) -> String {
    let q: Vec<String> = names.iter().map(|n| sh_quote(base_name(n))).collect();
    let q = q.join(" ");
    let inst = match m {
        Manager::Apt => format!("dpkg-query -W -f='${{Package}}\\t${{Status}}\\t${{Version}}\\n' {q} 2>/dev/null"),
        Manager::Pacman => format!("pacman -Q {q} 2>/dev/null"),
        Manager::Dnf | Manager::Yum => format!("rpm -q --qf '%{{NAME}} %{{VERSION}}-%{{RELEASE}}\\n' {q} 2>/dev/null"),
        Manager::Apk => {
            format!("for p in {q}; do v=$(apk info -e -v \"$p\" 2>/dev/null) && echo \"$p ${{v#$p-}}\"; done")
        }
        Manager::Auto => String::new(),
    };
    let up = if latest {
        match m {
            Manager::Apt => format!("apt-cache policy {q} 2>/dev/null"),
            Manager::Pacman => format!("pacman -Qu {q} 2>/dev/null"),
            Manager::Dnf | Manager::Yum => format!("{} -q list --upgrades {q} 2>/dev/null | sed 1d", mgr_bin(m)),
            Manager::Apk => format!("apk version -l '<' {q} 2>/dev/null | sed 1d"),
            Manager::Auto => String::new(),
        }
    } else {
        String::new()
    };
    if up.is_empty() { format!("{inst}; echo '@@UP'; true") } else { format!("{inst}; echo '@@UP'; {up}; true") }
}

fn mgr_bin(m: Manager) -> &'static str {
    match m {
        Manager::Apt => "apt-get",
        Manager::Pacman => "pacman",
        Manager::Dnf => "dnf",
        Manager::Yum => "yum",
        Manager::Apk => "apk",
        Manager::Auto => "",
    }
}

/// Build the probe state from the query output.
pub fn parse_query(m: Manager, names: &[String], out: &str) -> PkgFacts {
    let (inst, up) = out.split_once("@@UP\n").or_else(|| out.split_once("@@UP")).unwrap_or((out, ""));
    let found = match m {
        Manager::Apt => parse_dpkg(inst),
        Manager::Dnf | Manager::Yum => parse_rpm(inst),
        _ => parse_name_version(inst),
    };
    let installed = names.iter().map(|n| (n.clone(), found.get(base_name(n)).cloned())).collect();
    let upgradable: Vec<String> = match m {
        Manager::Apt => parse_apt_policy(up),
        _ => up
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(|w| {
                // dnf prints name.arch; apk prints name-version
                let w = w.split('.').next().unwrap_or(w);
                names
                    .iter()
                    .find(|n| w == base_name(n) || w.starts_with(&format!("{}-", base_name(n))))
                    .cloned()
                    .unwrap_or_default()
            })
            .filter(|s| !s.is_empty())
            .collect(),
    };
    PkgFacts { manager: m, installed, upgradable, cache_age: None, upgrade_all: vec![] }
}

/// What to do: packages to install, to upgrade, to remove.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PkgPlan {
    pub install: Vec<String>,
    pub upgrade: Vec<String>,
    pub remove: Vec<String>,
}

pub fn decide(state: PkgState, st: &PkgFacts) -> PkgPlan {
    let mut pp = PkgPlan::default();
    for (n, v) in &st.installed {
        match (state, v) {
            (PkgState::Present | PkgState::Latest, None) => pp.install.push(n.clone()),
            (PkgState::Latest, Some(_)) if st.upgradable.contains(n) => pp.upgrade.push(n.clone()),
            (PkgState::Absent, Some(_)) => pp.remove.push(n.clone()),
            _ => {}
        }
    }
    pp
}

fn install_script(m: Manager, names: &[String], p: &PackageParams) -> String {
    let q = names.iter().map(|n| sh_quote(n)).collect::<Vec<_>>().join(" ");
    match m {
        Manager::Apt => {
            let rec = match p.install_recommends.as_ref().map(|v| match v {
                Value::Bool(b) => *b,
                Value::String(s) => pbr_core::params::parse_bool(s).unwrap_or(true),
                _ => true,
            }) {
                Some(false) => " --no-install-recommends",
                Some(true) => " --install-recommends",
                None => "",
            };
            format!(
                "DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o Dpkg::Options::=--force-confdef \
                 -o Dpkg::Options::=--force-confold{rec} {q}"
            )
        }
        Manager::Pacman => format!("pacman -S --noconfirm --needed {q}"),
        Manager::Dnf | Manager::Yum => format!("{} install -y {q}", mgr_bin(m)),
        Manager::Apk => format!("apk add {q}"),
        Manager::Auto => String::new(),
    }
}

fn remove_script(m: Manager, names: &[String], autoremove: bool) -> String {
    let q = names.iter().map(|n| sh_quote(base_name(n))).collect::<Vec<_>>().join(" ");
    match m {
        Manager::Apt => {
            let a = if autoremove { " --autoremove" } else { "" };
            format!("DEBIAN_FRONTEND=noninteractive apt-get remove -y -q{a} {q}")
        }
        Manager::Pacman => format!("pacman -R{} --noconfirm {q}", if autoremove { "s" } else { "" }),
        Manager::Dnf | Manager::Yum => format!("{} remove -y {q}", mgr_bin(m)),
        Manager::Apk => format!("apk del {q}"),
        Manager::Auto => String::new(),
    }
}

fn update_script(m: Manager) -> &'static str {
    match m {
        Manager::Apt => "apt-get update -q",
        Manager::Pacman => "pacman -Sy --noconfirm",
        Manager::Dnf => "dnf makecache -q",
        Manager::Yum => "yum makecache -q",
        Manager::Apk => "apk update -q",
        Manager::Auto => "true",
    }
}

/// Refresh the index: asked for, stale (per `cache_valid_time`), and useful now (nothing else
/// asked, or something gets installed).
fn wants_update(p: &PackageParams, st: &PkgFacts, pp: &PkgPlan) -> bool {
    let stale = match (p.cache_valid_time, st.cache_age) {
        (Some(valid), Some(age)) => age > valid,
        _ => true,
    };
    p.update_cache
        && stale
        && (p.name.0.is_empty()
            || !pp.install.is_empty()
            || !pp.upgrade.is_empty()
            || p.upgrade().ok().flatten().is_some())
}

/// Upgrade everything: asked for, and something to upgrade (or an index refresh that may bring
/// something).
fn wants_upgrade_all(p: &PackageParams, st: &PkgFacts, pp: &PkgPlan) -> Option<Upgrade> {
    let u = p.upgrade().ok().flatten()?;
    (!st.upgrade_all.is_empty() || wants_update(p, st, pp)).then_some(u)
}

pub struct Package;

#[async_trait]
impl Module for Package {
    type Params = PackageParams;
    type State = PkgFacts;
    const NAME: &'static str = "package";
    const ALIASES: &'static [&'static str] = &["apt", "dnf", "yum", "pacman", "apk"];

    fn doc(&self) -> Doc {
        Doc {
            description: "Install, upgrade or remove OS packages with apt, pacman, dnf/yum or apk (detected on the \
                          host, or chosen with `use`). One query reads which packages are installed; only the \
                          missing (or, with `latest`, upgradable) ones are installed, non-interactively. \
                          `latest` compares with the package index as it is: add `update_cache` to refresh it \
                          before installing. `update_cache` with no names refreshes unless the index is younger than `cache_valid_time` \
                          seconds (always without it), and reports that as a change. `upgrade` upgrades every \
                          installed package (after the refresh), reported with the packages it changes.",
            examples: r#"- name: Tools
  package:
    name: [vim, htop, lvm2]
    state: present

- name: Keep openssh current
  apt:
    name: openssh-server
    state: latest
    update_cache: true

- name: No telnet
  package:
    name: telnet
    state: absent

- name: Every Pi up to date
  pacman:
    update_cache: true
    upgrade: true
"#,
        }
    }

    fn validate(&self, p: &PackageParams) -> Result<(), String> {
        let upgrade = p.upgrade()?;
        if p.name.0.is_empty() && !p.update_cache && upgrade.is_none() {
            return Err("name is required (or update_cache, or upgrade, alone)".into());
        }
        Ok(())
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &PackageParams, host: &ReadHost) -> Result<PkgFacts, ModuleError> {
        let given = p.use_.filter(|m| *m != Manager::Auto);
        let out = host.query_sh(probe_script(given, &p.name.0, p.state == PkgState::Latest)).await?;
        let text = out.stdout_str();
        let (first, rest) = text.split_once('\n').unwrap_or((text.as_str(), ""));
        let m = manager_of(first)
            .ok_or_else(|| ModuleError::new("no supported package manager found (apt-get, pacman, dnf, yum, apk)"))?;
        let (age_line, rest) = rest.split_once('\n').unwrap_or((rest, ""));
        let cache_age = age_line.strip_prefix("@@AGE").and_then(|a| a.trim().parse().ok());
        let mut upgrade_all = vec![];
        if let Some(u) = p.upgrade().map_err(ModuleError::new)? {
            let out = host.query_sh(upgradable_script(m, u)).await?;
            upgrade_all =
                out.stdout_str().lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
        }
        if p.name.0.is_empty() {
            return Ok(PkgFacts { manager: m, installed: BTreeMap::new(), upgradable: vec![], cache_age, upgrade_all });
        }
        Ok(PkgFacts { cache_age, upgrade_all, ..parse_query(m, &p.name.0, rest) })
    }

    fn plan(&self, p: &PackageParams, st: &PkgFacts) -> Result<Plan, ModuleError> {
        let pp = decide(p.state, st);
        let mut plan = Plan::empty();
        let ver = |n: &String| st.installed.get(n).cloned().flatten().unwrap_or_else(|| "absent".into());
        let diff = |names: &[String], after: &dyn Fn(&String) -> String| {
            let b: Vec<(String, String)> = names.iter().map(|n| (n.clone(), ver(n))).collect();
            let a: Vec<(String, String)> = names.iter().map(|n| (n.clone(), after(n))).collect();
            Diff::state("packages", &b, &a)
        };
        if wants_update(p, st, &pp) {
            plan.push(Change::new(format!("update the package index ({})", update_script(st.manager))));
        }
        if wants_upgrade_all(p, st, &pp).is_some() {
            let what = if st.upgrade_all.is_empty() {
                "upgrade every package the refreshed index has newer".to_string()
            } else {
                let n = st.upgrade_all.len();
                let shown = st.upgrade_all.iter().take(20).cloned().collect::<Vec<_>>().join(", ");
                let more = if n > 20 { format!(" and {} more", n - 20) } else { String::new() };
                format!("upgrade {n} package(s): {shown}{more}")
            };
            let b: Vec<(String, String)> = st.upgrade_all.iter().map(|n| (n.clone(), "installed".into())).collect();
            let a: Vec<(String, String)> = st.upgrade_all.iter().map(|n| (n.clone(), "upgraded".into())).collect();
            plan.push(Change::new(what).with_diff(Diff::state("packages", &b, &a)));
        }
        if !pp.install.is_empty() {
            plan.push(
                Change::create(format!("install {}", pp.install.join(", ")))
                    .with_diff(diff(&pp.install, &|_| "installed".into())),
            );
        }
        if !pp.upgrade.is_empty() {
            plan.push(
                Change::new(format!("upgrade {}", pp.upgrade.join(", ")))
                    .with_diff(diff(&pp.upgrade, &|_| "latest".into())),
            );
        }
        if !pp.remove.is_empty() {
            plan.push(
                Change::remove(format!("remove {}", pp.remove.join(", ")))
                    .with_diff(diff(&pp.remove, &|_| "absent".into())),
            );
        }
        // the index update, then installs and upgrades, then removals; the manager's output is
        // the result's stdout
        let m = st.manager;
        if wants_update(p, st, &pp) {
            plan.op(Op::run("update the package index", update_script(m)));
        }
        let mut to_install = pp.install.clone();
        to_install.extend(pp.upgrade.iter().cloned());
        let exec = |script: String| Op::Exec {
            cmd: Value::String(script.clone()),
            script,
            stdin: None,
            strip: false,
            makes: vec![],
            removes: vec![],
        };
        if let Some(u) = wants_upgrade_all(p, st, &pp) {
            plan.op(exec(upgrade_all_script(m, u).to_string()));
        }
        if !to_install.is_empty() {
            plan.op(exec(install_script(m, &to_install, p)));
        }
        if !pp.remove.is_empty() {
            plan.op(exec(remove_script(m, &pp.remove, p.autoremove)));
        }
        Ok(plan)
    }

    /// What the run did, as Ansible's package modules report it (`stdout`: the package manager's
    /// output, from the ops).
    async fn report(
        &self,
        p: &PackageParams,
        st: &PkgFacts,
        _host: &ReadHost,
    ) -> Result<Map<String, Value>, ModuleError> {
        let pp = decide(p.state, st);
        let mut data = Map::new();
        if wants_update(p, st, &pp) {
            data.insert("cache_updated".into(), json!(true));
        }
        data.insert("installed".into(), json!(pp.install));
        data.insert("upgraded".into(), json!(pp.upgrade));
        data.insert("removed".into(), json!(pp.remove));
        Ok(data)
    }

    fn data(&self, _p: &PackageParams, st: &PkgFacts) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("manager".into(), Value::String(mgr_bin(st.manager).into()));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_output() {
        let out = "bash\tinstall ok installed\t5.2.15-2+b7\nvim\tdeinstall ok config-files\t2:9.0\n";
        let m = parse_dpkg(out);
        assert_eq!(m.get("bash").map(String::as_str), Some("5.2.15-2+b7"));
        assert!(!m.contains_key("vim"));
    }

    #[test]
    fn plans() {
        let names = vec!["bash".to_string(), "nopkg".to_string(), "vim=2:9.0".to_string()];
        let out = "bash\tinstall ok installed\t5.2\nvim\tinstall ok installed\t2:9.0\n@@UP\n\
                   bash:\n  Installed: 5.2\n  Candidate: 5.3\n  Version table:\nvim:\n  Installed: 2:9.0\n  Candidate: 2:9.0\n";
        let st = parse_query(Manager::Apt, &names, out);
        assert_eq!(st.installed.get("nopkg"), Some(&None));
        assert_eq!(st.upgradable, vec!["bash"]);
        let pp = decide(PkgState::Present, &st);
        assert_eq!(pp.install, vec!["nopkg"]);
        assert!(pp.upgrade.is_empty());
        let pp = decide(PkgState::Latest, &st);
        assert_eq!(pp.upgrade, vec!["bash"]);
        let pp = decide(PkgState::Absent, &st);
        assert_eq!(pp.remove, vec!["bash", "vim=2:9.0"]);
    }

    #[test]
    fn query_scripts_are_valid_sh() {
        for m in [Manager::Apt, Manager::Pacman, Manager::Dnf, Manager::Yum, Manager::Apk] {
            for latest in [false, true] {
                for given in [None, Some(m)] {
                    let s = probe_script(given, &["a b".to_string(), "c".to_string()], latest);
                    let ok = std::process::Command::new("sh").arg("-n").arg("-c").arg(&s).status().unwrap().success();
                    assert!(ok, "{s}");
                }
            }
        }
    }

    #[test]
    fn pacman_and_rpm() {
        let names = vec!["linux".to_string(), "zsh".to_string()];
        let st =
            parse_query(Manager::Pacman, &names, "linux 6.9.1.arch1-1\n@@UP\nlinux 6.9.1.arch1-1 -> 6.9.2.arch1-1\n");
        assert_eq!(st.installed.get("linux"), Some(&Some("6.9.1.arch1-1".to_string())));
        assert_eq!(st.installed.get("zsh"), Some(&None));
        assert_eq!(st.upgradable, vec!["linux"]);
        let p: PackageParams = serde_json::from_value(json!({"upgrade": "dist"})).unwrap();
        assert_eq!(p.upgrade(), Ok(Some(Upgrade::Dist)));
        let none = PkgFacts { installed: BTreeMap::new(), upgradable: vec![], ..st.clone() };
        let full = PkgFacts { upgrade_all: vec!["linux".into()], ..none.clone() };
        let plan = Package.plan(&p, &full).unwrap();
        assert!(plan.changes[0].summary.contains("upgrade 1 package(s): linux"));
        assert!(matches!(&plan.ops[..], [Op::Exec { script, .. }] if script == "pacman -Su --noconfirm"));
        assert!(Package.plan(&p, &none).unwrap().is_empty());
        let st = parse_query(Manager::Dnf, &names, "linux 6.9-1.fc40\npackage zsh is not installed\n@@UP\n");
        assert_eq!(st.installed.get("zsh"), Some(&None));
        assert!(st.installed.get("linux").is_some_and(|v| v.is_some()));
    }
}
