//! `systemd` (also `service`, `systemd_service`): start/stop/restart units, enable, mask, and
//! reload the manager.

use async_trait::async_trait;
use pbr_core::params::{bool_lenient, opt_bool_lenient};
use pbr_core::{Change, Ctx, Diff, Doc, Module, ModuleError, Op, Plan, ReadHost, sh_quote};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UnitState {
    Started,
    Stopped,
    Restarted,
    Reloaded,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    #[default]
    System,
    User,
    Global,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SystemdParams {
    /// The unit (`.service` is implied when no suffix is given).
    #[serde(default, alias = "service", alias = "unit")]
    pub name: Option<String>,
    /// `started`/`stopped` change only when needed; `restarted` and `reloaded` always act.
    #[serde(default)]
    pub state: Option<UnitState>,
    /// Start the unit at boot.
    #[serde(default, deserialize_with = "opt_bool_lenient")]
    pub enabled: Option<bool>,
    /// Mask the unit (it cannot be started at all).
    #[serde(default, deserialize_with = "opt_bool_lenient")]
    pub masked: Option<bool>,
    /// Run `systemctl daemon-reload` first: with `name`, only when systemd says the unit's files
    /// changed (`NeedDaemonReload`); without `name`, always.
    #[serde(default, alias = "daemon-reload", deserialize_with = "bool_lenient")]
    pub daemon_reload: bool,
    /// Which manager: the `system` one, the connecting `user`'s, or `global` (enable for all users).
    #[serde(default)]
    pub scope: Scope,
    /// Do not wait for start/stop jobs to finish (`--no-block`).
    #[serde(default, deserialize_with = "bool_lenient")]
    pub no_block: bool,
    /// Accepted for compatibility with `service`; ignored.
    #[serde(default, rename = "use")]
    pub use_: Option<String>,
}

/// A unit's state as `systemctl show` and `is-enabled` report it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitFacts {
    pub props: BTreeMap<String, String>,
}

impl UnitFacts {
    fn get(&self, k: &str) -> &str {
        self.props.get(k).map(String::as_str).unwrap_or("")
    }
    pub fn found(&self) -> bool {
        let l = self.get("LoadState");
        !l.is_empty() && l != "not-found"
    }
    pub fn active(&self) -> bool {
        matches!(self.get("ActiveState"), "active" | "activating" | "reloading")
    }
    pub fn masked(&self) -> bool {
        self.get("LoadState") == "masked" || self.get("IsEnabled").starts_with("masked")
    }
    pub fn enabled(&self) -> bool {
        matches!(
            self.get("IsEnabled"),
            "enabled" | "enabled-runtime" | "static" | "alias" | "indirect" | "generated" | "transient"
        )
    }
    pub fn need_reload(&self) -> bool {
        self.get("NeedDaemonReload") == "yes"
    }
}

/// Parse `KEY=value` lines (`systemctl show -p ...` plus our `IsEnabled=` line).
pub fn parse_show(out: &str) -> UnitFacts {
    UnitFacts {
        props: out
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect(),
    }
}

#[derive(Debug, Clone)]
pub struct SystemdState {
    pub unit: Option<String>,
    pub facts: UnitFacts,
}

/// One `systemctl` action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    DaemonReload,
    Mask(bool),
    Enable(bool),
    Start,
    Stop,
    Restart,
    Reload,
}

/// The actions needed, in Ansible's order: daemon-reload, mask, enable, state.
pub fn decide(p: &SystemdParams, st: &SystemdState) -> Result<Vec<Action>, ModuleError> {
    let mut v = vec![];
    let f = &st.facts;
    if p.daemon_reload && (st.unit.is_none() || f.need_reload()) {
        v.push(Action::DaemonReload);
    }
    let Some(unit) = &st.unit else { return Ok(v) };
    if let Some(m) = p.masked
        && m != f.masked()
    {
        v.push(Action::Mask(m));
    }
    let will_be_masked = p.masked.unwrap_or(f.masked());
    if !f.found() && (p.state.is_some() || p.enabled.is_some()) && !will_be_masked {
        return Err(ModuleError::new(format!("Could not find the requested service {unit}: host")));
    }
    if let Some(e) = p.enabled {
        if e && will_be_masked {
            return Err(ModuleError::new(format!("cannot enable {unit}: it is masked")));
        }
        let static_unit = f.get("IsEnabled") == "static";
        if e != f.enabled() && (e || !static_unit) {
            v.push(Action::Enable(e));
        }
    }
    match p.state {
        Some(UnitState::Started) if !f.active() => v.push(Action::Start),
        Some(UnitState::Stopped) if f.active() => v.push(Action::Stop),
        Some(UnitState::Restarted) => v.push(Action::Restart),
        Some(UnitState::Reloaded) if f.active() => v.push(Action::Reload),
        Some(UnitState::Reloaded) => v.push(Action::Start),
        _ => {}
    }
    Ok(v)
}

fn scope_flag(s: Scope) -> &'static str {
    match s {
        Scope::System => "",
        Scope::User => " --user",
        Scope::Global => " --global",
    }
}

fn unit_name(n: &str) -> String {
    let known = [
        ".service",
        ".socket",
        ".timer",
        ".mount",
        ".automount",
        ".target",
        ".path",
        ".swap",
        ".slice",
        ".scope",
        ".device",
    ];
    if known.iter().any(|k| n.ends_with(k)) { n.to_string() } else { format!("{n}.service") }
}

pub struct Systemd;

#[async_trait]
impl Module for Systemd {
    type Params = SystemdParams;
    type State = SystemdState;
    const NAME: &'static str = "systemd";
    const ALIASES: &'static [&'static str] = &["service", "systemd_service"];
    /// `restarted`/`reloaded` act on every run.
    const CONVERGENT: bool = false;

    fn convergent(&self, p: &Self::Params) -> bool {
        !matches!(p.state, Some(UnitState::Restarted) | Some(UnitState::Reloaded))
    }

    fn doc(&self) -> Doc {
        Doc {
            description: "Control a systemd unit: start or stop it when its state differs, restart or reload it \
                          (always), enable or mask it at boot, and reload the manager after unit files changed. \
                          One `systemctl show` reads the unit's state.",
            examples: r#"- name: sshd runs and starts at boot
  systemd:
    name: ssh
    state: started
    enabled: true

- name: Pick up edited unit files and restart the app
  systemd:
    name: app.service
    state: restarted
    daemon_reload: true
"#,
        }
    }

    fn validate(&self, p: &SystemdParams) -> Result<(), String> {
        if p.name.is_none() && (p.state.is_some() || p.enabled.is_some() || p.masked.is_some()) {
            return Err("name is required with state, enabled or masked".into());
        }
        if p.name.is_none() && !p.daemon_reload {
            return Err("give name (or daemon_reload alone)".into());
        }
        Ok(())
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &SystemdParams, host: &ReadHost) -> Result<SystemdState, ModuleError> {
        let Some(name) = &p.name else {
            return Ok(SystemdState { unit: None, facts: UnitFacts::default() });
        };
        let unit = unit_name(name);
        let u = sh_quote(&unit);
        let sc = scope_flag(p.scope);
        let script = format!(
            "systemctl{sc} show {u} -p Id,LoadState,ActiveState,SubState,UnitFileState,NeedDaemonReload || exit 1; \
             echo \"IsEnabled=$(systemctl{sc} is-enabled {u} 2>/dev/null)\""
        );
        let out = host.query_sh(script).await?;
        if out.rc != 0 {
            return Err(ModuleError::new(format!("systemctl show {unit}: {}", out.stderr_str().trim())));
        }
        Ok(SystemdState { unit: Some(unit), facts: parse_show(&out.stdout_str()) })
    }

    fn plan(&self, p: &SystemdParams, st: &SystemdState) -> Result<Plan, ModuleError> {
        let unit = st.unit.as_deref().unwrap_or("");
        let f = &st.facts;
        let mut plan = Plan::empty();
        let kv = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        for a in decide(p, st)? {
            plan.push(match a {
                Action::DaemonReload => Change::new("systemctl daemon-reload"),
                Action::Mask(m) => Change::new(format!("{} {unit}", if m { "mask" } else { "unmask" })).with_diff(
                    Diff::state(unit, &kv("masked", &f.masked().to_string()), &kv("masked", &m.to_string())),
                ),
                Action::Enable(e) => Change::new(format!("{} {unit}", if e { "enable" } else { "disable" })).with_diff(
                    Diff::state(unit, &kv("enabled", &f.enabled().to_string()), &kv("enabled", &e.to_string())),
                ),
                Action::Start => Change::new(format!("start {unit}")).with_diff(Diff::state(
                    unit,
                    &kv("state", f.get("ActiveState")),
                    &kv("state", "active"),
                )),
                Action::Stop => Change::new(format!("stop {unit}")).with_diff(Diff::state(
                    unit,
                    &kv("state", f.get("ActiveState")),
                    &kv("state", "inactive"),
                )),
                Action::Restart => Change::new(format!("restart {unit}")),
                Action::Reload => Change::new(format!("reload {unit}")),
            });
        }
        if !plan.is_empty() {
            plan.op(Op::run(format!("systemctl for {}", st.unit.as_deref().unwrap_or("")), script(p, st)?));
        }
        Ok(plan)
    }

    fn data(&self, p: &SystemdParams, st: &SystemdState) -> Map<String, Value> {
        let mut m = Map::new();
        if let Some(u) = &st.unit {
            m.insert("name".into(), json!(u));
            m.insert("status".into(), json!(st.facts.props));
            if let Some(s) = p.state {
                m.insert("state".into(), json!(format!("{s:?}").to_lowercase()));
            }
            m.insert("enabled".into(), json!(p.enabled.unwrap_or(st.facts.enabled())));
        }
        m
    }
}

/// The script that makes a plan's changes.
fn script(p: &SystemdParams, st: &SystemdState) -> Result<String, ModuleError> {
    let sc = scope_flag(p.scope);
    let u = sh_quote(st.unit.as_deref().unwrap_or(""));
    let nb = if p.no_block { " --no-block" } else { "" };
    let mut script = String::from("set -e; ");
    for a in decide(p, st)? {
        script.push_str(&match a {
            Action::DaemonReload => format!("systemctl{sc} daemon-reload; "),
            Action::Mask(true) => format!("systemctl{sc} mask {u}; "),
            Action::Mask(false) => format!("systemctl{sc} unmask {u}; "),
            Action::Enable(true) => format!("systemctl{sc} enable {u}; "),
            Action::Enable(false) => format!("systemctl{sc} disable {u}; "),
            Action::Start => format!("systemctl{sc}{nb} start {u}; "),
            Action::Stop => format!("systemctl{sc}{nb} stop {u}; "),
            Action::Restart => format!("systemctl{sc}{nb} restart {u}; "),
            Action::Reload => format!("systemctl{sc}{nb} reload {u}; "),
        });
    }
    Ok(script)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: serde_json::Value) -> SystemdParams {
        serde_json::from_value(v).unwrap()
    }

    const SSH_RUNNING: &str = "Id=ssh.service\nNeedDaemonReload=no\nLoadState=loaded\nActiveState=active\n\
                               SubState=running\nUnitFileState=enabled\nIsEnabled=enabled\n";
    const NOT_FOUND: &str = "Id=nope.service\nNeedDaemonReload=no\nLoadState=not-found\nActiveState=inactive\n\
                             SubState=dead\nUnitFileState=\nIsEnabled=\n";

    fn st(out: &str) -> SystemdState {
        SystemdState { unit: Some("ssh.service".into()), facts: parse_show(out) }
    }

    #[test]
    fn converged_and_not() {
        let p = params(json!({"name": "ssh", "state": "started", "enabled": true}));
        assert!(decide(&p, &st(SSH_RUNNING)).unwrap().is_empty());
        let p = params(json!({"name": "ssh", "state": "stopped", "enabled": "no"}));
        assert_eq!(decide(&p, &st(SSH_RUNNING)).unwrap(), vec![Action::Enable(false), Action::Stop]);
        let p = params(json!({"name": "ssh", "state": "restarted"}));
        assert_eq!(decide(&p, &st(SSH_RUNNING)).unwrap(), vec![Action::Restart]);
        let stopped = SSH_RUNNING.replace("ActiveState=active", "ActiveState=inactive");
        let p = params(json!({"name": "ssh", "state": "reloaded"}));
        assert_eq!(decide(&p, &st(&stopped)).unwrap(), vec![Action::Start]);
    }

    #[test]
    fn not_found_and_masks() {
        let p = params(json!({"name": "nope", "state": "started"}));
        assert!(decide(&p, &st(NOT_FOUND)).is_err());
        let p = params(json!({"name": "nope", "masked": true}));
        assert_eq!(decide(&p, &st(NOT_FOUND)).unwrap(), vec![Action::Mask(true)]);
        let reload = SSH_RUNNING.replace("NeedDaemonReload=no", "NeedDaemonReload=yes");
        let p = params(json!({"name": "ssh", "daemon_reload": true, "state": "started"}));
        assert_eq!(decide(&p, &st(&reload)).unwrap(), vec![Action::DaemonReload]);
        assert!(decide(&p, &st(SSH_RUNNING)).unwrap().is_empty());
    }

    #[test]
    fn unit_names() {
        assert_eq!(unit_name("ssh"), "ssh.service");
        assert_eq!(unit_name("fstrim.timer"), "fstrim.timer");
    }
}
