//! `modprobe`: a kernel module loaded (or not), and loaded at boot (or not), as Ansible's
//! `community.general.modprobe`.

use crate::command::split_words;
use async_trait::async_trait;
use pbr_core::params::Presence;
use pbr_core::{Change, Ctx, Diff, Doc, Module, ModuleError, Op, Plan, ReadHost, sh_quote};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

const MODULES_LOAD: &str = "/etc/modules-load.d";
const MODPROBE_D: &str = "/etc/modprobe.d";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Persistent {
    /// Boot-time configuration is not touched.
    #[default]
    Disabled,
    /// `/etc/modules-load.d/NAME.conf` loads the module at boot; `/etc/modprobe.d/NAME.conf`
    /// holds its `params`.
    Present,
    /// Lines loading the module at boot, and its `options` lines, are commented out.
    Absent,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModprobeParams {
    /// The kernel module (`iscsi_tcp`, `bcache`).
    pub name: String,
    /// `present` loads it; `absent` unloads it (`modprobe -r`).
    #[serde(default)]
    pub state: Presence,
    /// Module parameters (`max_loop=16 debug=1`), given when it is loaded.
    #[serde(default)]
    pub params: String,
    /// Whether it is loaded at boot, with its params.
    #[serde(default)]
    pub persistent: Persistent,
}

/// One configuration file under /etc/modules-load.d or /etc/modprobe.d.
#[derive(Debug, Clone)]
pub struct ConfFile {
    pub path: String,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct ModprobeState {
    pub loaded: bool,
    pub load_files: Vec<ConfFile>,
    pub option_files: Vec<ConfFile>,
}

/// The line without a trailing comment (`#` or `;`) and spaces.
fn uncommented(line: &str) -> &str {
    line.split(['#', ';']).next().unwrap_or("").trim_end()
}

/// `name` alone on a line (a modules-load.d entry).
fn loads(line: &str, name: &str) -> bool {
    uncommented(line).trim_start_matches(' ') == name
}

/// The `key=value` of an `options NAME key=value` line.
fn option_of<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let rest = uncommented(line).strip_prefix("options ")?.strip_prefix(name)?.strip_prefix(' ')?;
    let kv = rest.trim_end_matches(' ');
    let (k, v) = kv.split_once('=')?;
    (!k.is_empty()
        && k.chars().all(|c| c.is_alphanumeric() || c == '_')
        && !v.is_empty()
        && !v.contains(char::is_whitespace))
    .then_some(kv)
}

/// The file with the lines that match commented out (None: none matched).
fn comment_out(text: &str, hit: impl Fn(&str) -> bool) -> Option<String> {
    let mut any = false;
    let out = text
        .split_inclusive('\n')
        .map(|l| {
            if hit(l.trim_end_matches('\n')) {
                any = true;
                format!("#{l}")
            } else {
                l.to_string()
            }
        })
        .collect();
    any.then_some(out)
}

fn parse_files(out: &[u8]) -> Vec<ConfFile> {
    // each file: NUL, its path, NUL, its text
    let text = String::from_utf8_lossy(out);
    let mut parts = text.split('\0').skip(1);
    let mut files = vec![];
    while let (Some(path), Some(body)) = (parts.next(), parts.next()) {
        files.push(ConfFile { path: path.to_string(), text: body.to_string() });
    }
    files
}

pub struct Modprobe;

#[async_trait]
impl Module for Modprobe {
    type Params = ModprobeParams;
    type State = ModprobeState;
    const NAME: &'static str = "modprobe";

    fn doc(&self) -> Doc {
        Doc {
            description: "Load or unload a kernel module (`modprobe`, `modprobe -r`), and with `persistent` \
                          load it at boot with its params (`/etc/modules-load.d/NAME.conf`, \
                          `/etc/modprobe.d/NAME.conf`) or stop loading it there (its lines commented out). \
                          A module built into the kernel counts as loaded. Unlike community.general.modprobe, \
                          a file whose lines are commented out keeps its other lines exactly as they were.",
            examples: r#"- name: The initiator's transport, now and at every boot
  modprobe:
    name: iscsi_tcp
    persistent: present

- name: bcache with its parameters
  modprobe:
    name: bcache
    params: "bch_cutoff_writeback=70"
"#,
        }
    }

    fn validate(&self, p: &ModprobeParams) -> Result<(), String> {
        if p.name.is_empty() || p.name.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(format!("not a module name: {:?}", p.name));
        }
        split_words(&p.params).map(|_| ())
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &ModprobeParams, host: &ReadHost) -> Result<ModprobeState, ModuleError> {
        let underscored = p.name.replace('-', "_");
        let script = format!(
            "if grep -q '^{u} ' /proc/modules || grep -q '/{n}\\.ko' /lib/modules/\"$(uname -r)\"/modules.builtin 2>/dev/null; \
             then echo loaded; else echo unloaded; fi\n\
             for f in {load}/* ; do [ -f \"$f\" ] && printf '\\0%s\\0' \"$f\" && cat \"$f\"; done; printf '\\n\\0--'\n\
             for f in {opts}/* ; do [ -f \"$f\" ] && printf '\\0%s\\0' \"$f\" && cat \"$f\"; done; :",
            u = underscored,
            n = p.name,
            load = MODULES_LOAD,
            opts = MODPROBE_D
        );
        let out = host.query_sh(script).await?;
        if !out.ok() {
            return Err(ModuleError::new(format!("cannot read the module's state: {}", out.stderr_str().trim())));
        }
        let (first, rest) = crate::util::take_line(&out.stdout);
        let sep = rest.windows(4).position(|w| w == b"\n\0--").unwrap_or(rest.len());
        // the separator begins with a newline of its own (a last file may not end with one)
        let load_files = parse_files(&rest[..sep]);
        let option_files = parse_files(rest.get(sep + 4..).unwrap_or_default());
        Ok(ModprobeState { loaded: first == "loaded", load_files, option_files })
    }

    fn plan(&self, p: &ModprobeParams, st: &ModprobeState) -> Result<Plan, ModuleError> {
        let name = &p.name;
        let mut plan = Plan::empty();
        let words = split_words(&p.params).map_err(ModuleError::new)?;
        match (p.state, st.loaded) {
            (Presence::Present, false) => {
                plan.push(Change::create(format!("load kernel module {name}")));
                let args: Vec<String> = words.iter().map(|w| sh_quote(w)).collect();
                plan.op(Op::run(format!("modprobe {name}"), format!("modprobe {} {}", sh_quote(name), args.join(" "))));
            }
            (Presence::Absent, true) => {
                plan.push(Change::remove(format!("unload kernel module {name}")));
                plan.op(Op::run(format!("modprobe -r {name}"), format!("modprobe -r {}", sh_quote(name))));
            }
            _ => {}
        }
        let at_boot = st.load_files.iter().any(|f| f.text.lines().any(|l| loads(l, name)));
        let mut have: Vec<&str> =
            st.option_files.iter().flat_map(|f| f.text.lines().filter_map(|l| option_of(l, name))).collect();
        have.sort();
        have.dedup();
        let mut want: Vec<&str> = p.params.split_whitespace().collect();
        want.sort();
        want.dedup();
        let write = |plan: &mut Plan, path: String, before: Option<&str>, after: String| {
            let summary = format!("{path}: {}", if before.is_none() { "create" } else { "comment out" });
            let c = if before.is_none() { Change::create(summary) } else { Change::new(summary) };
            plan.push(c.with_diff(Diff::file(&path, before.unwrap_or(""), after.clone())));
            if before.is_none()
                && let Some((dir, _)) = path.rsplit_once('/')
            {
                plan.op(Op::MakeDir { path: dir.to_string(), attrs: Default::default() });
            }
            plan.op(Op::WriteFile {
                mode: before.is_none().then_some(0o644),
                path,
                content: after.into_bytes(),
                owner: None,
                group: None,
                backup: false,
                validate: None,
            });
        };
        let comment_options = |plan: &mut Plan| {
            for f in &st.option_files {
                if let Some(new) = comment_out(&f.text, |l| option_of(l, name).is_some()) {
                    write(plan, f.path.clone(), Some(&f.text), new);
                }
            }
        };
        match p.persistent {
            Persistent::Disabled => {}
            Persistent::Present => {
                if !at_boot {
                    let path = format!("{MODULES_LOAD}/{name}.conf");
                    let before = st.load_files.iter().find(|f| f.path == path).map(|f| f.text.as_str());
                    write(&mut plan, path, before, format!("{name}\n"));
                }
                if have != want {
                    comment_options(&mut plan);
                    if !want.is_empty() {
                        let path = format!("{MODPROBE_D}/{name}.conf");
                        let text: String = want.iter().map(|kv| format!("options {name} {kv}\n")).collect();
                        write(&mut plan, path, None, text);
                    }
                }
            }
            Persistent::Absent => {
                for f in &st.load_files {
                    if let Some(new) = comment_out(&f.text, |l| loads(l, name)) {
                        write(&mut plan, f.path.clone(), Some(&f.text), new);
                    }
                }
                if !have.is_empty() {
                    comment_options(&mut plan);
                }
            }
        }
        Ok(plan)
    }

    fn data(&self, p: &ModprobeParams, _st: &ModprobeState) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("name".into(), Value::String(p.name.clone()));
        m.insert("params".into(), Value::String(p.params.clone()));
        m.insert("state".into(), Value::String(if p.state == Presence::Present { "present" } else { "absent" }.into()));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(loaded: bool, load: &[(&str, &str)], opts: &[(&str, &str)]) -> ModprobeState {
        let f = |v: &[(&str, &str)]| {
            v.iter().map(|(p, t)| ConfFile { path: p.to_string(), text: t.to_string() }).collect::<Vec<_>>()
        };
        ModprobeState { loaded, load_files: f(load), option_files: f(opts) }
    }

    fn params(v: Value) -> ModprobeParams {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn loads_now_and_at_boot() {
        let p = params(serde_json::json!({"name": "bcache", "params": "a=1", "persistent": "present"}));
        let plan =
            Modprobe.plan(&p, &state(false, &[], &[("/etc/modprobe.d/old.conf", "options bcache a=2\n")])).unwrap();
        let words: Vec<&str> = plan.changes.iter().map(|c| c.summary.as_str()).collect();
        assert_eq!(
            words,
            [
                "load kernel module bcache",
                "/etc/modules-load.d/bcache.conf: create",
                "/etc/modprobe.d/old.conf: comment out",
                "/etc/modprobe.d/bcache.conf: create"
            ]
        );
        assert!(matches!(&plan.ops[0], Op::Run { script, .. } if script == "modprobe bcache a=1"));
        assert!(matches!(&plan.ops[3], Op::WriteFile { content, .. } if content == b"#options bcache a=2\n"));
        // converged: nothing to do
        let done = state(
            true,
            &[("/etc/modules-load.d/bcache.conf", "bcache\n")],
            &[("/etc/modprobe.d/bcache.conf", "options bcache a=1 # set by pbr\n")],
        );
        assert!(Modprobe.plan(&p, &done).unwrap().is_empty());
    }

    #[test]
    fn absent_unloads_and_comments_out() {
        let p = params(serde_json::json!({"name": "dummy", "state": "absent", "persistent": "absent"}));
        let st = state(true, &[("/etc/modules-load.d/x.conf", "loop\n  dummy\n")], &[]);
        let plan = Modprobe.plan(&p, &st).unwrap();
        assert_eq!(plan.changes.len(), 2);
        assert!(matches!(&plan.ops[1], Op::WriteFile { content, .. } if content == b"loop\n#  dummy\n"));
        assert!(
            Modprobe.plan(&p, &state(false, &[("/etc/modules-load.d/x.conf", "#dummy\n")], &[])).unwrap().is_empty()
        );
    }

    #[test]
    fn probe_output_is_split_into_files() {
        let out = b"loaded\n\0/etc/modules-load.d/a.conf\0loop\n\n\0--\0/etc/modprobe.d/b.conf\0options x y=1\n";
        let (first, rest) = crate::util::take_line(out);
        assert_eq!(first, "loaded");
        let sep = rest.windows(4).position(|w| w == b"\n\0--").unwrap();
        assert_eq!(parse_files(&rest[..sep])[0].text, "loop\n");
        assert_eq!(parse_files(&rest[sep + 4..])[0].text, "options x y=1\n");
    }
}
