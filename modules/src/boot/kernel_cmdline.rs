//! `kernel_cmdline`: set and remove parameters of a one-line kernel command line file such as the
//! Raspberry Pi's `/boot/cmdline.txt`.

use crate::boot_util::{self, FileNow};
use async_trait::async_trait;
use indexmap::IndexMap;
use pbr_core::{Change, Ctx, Deferred, Diff, Doc, Module, ModuleError, Op, Plan, ReadHost, sh_quote};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

fn default_path() -> String {
    "/boot/cmdline.txt".to_string()
}

/// The wanted value of one kernel parameter.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum CmdValue {
    /// `true`: the bare flag (`rw`); `false`: the parameter is removed.
    Flag(bool),
    /// `key=N`.
    Number(i64),
    /// `key=value`; quoted on the line when it holds spaces.
    Text(String),
    /// The parameter repeated once per value, in order (`console=serial0,115200 console=tty1`).
    List(Vec<String>),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KernelCmdlineParams {
    /// The command line file: a single line of space-separated parameters.
    #[serde(default = "default_path")]
    pub path: String,
    /// Parameters to set: `key: value` gives `key=value`, `key: true` the bare flag `key`,
    /// `key: false` removes it, a list repeats the key once per value. Existing parameters keep
    /// their place; new ones are appended.
    #[serde(default)]
    pub set: IndexMap<String, CmdValue>,
    /// Parameters to remove: a key (`quiet`, `splash`) removes every occurrence; `key=value`
    /// removes only that exact parameter.
    #[serde(default)]
    pub absent: Vec<String>,
    /// Write the new line only after this run's initramfs regeneration succeeded (it is
    /// deferred work queued after `mkinitcpio_hook`'s): a command line that needs the new image
    /// (`root=/dev/bcache0`) never points the next boot at an image that failed to build.
    #[serde(default, deserialize_with = "pbr_core::params::bool_lenient")]
    pub after_initramfs: bool,
}

/// The key of the deferred write of `path`.
fn deferred_key(path: &str) -> String {
    format!("kernel_cmdline {path}")
}

/// One parameter token of the line, as written.
fn tokens(line: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        if c == '"' {
            quoted = !quoted;
            cur.push(c);
        } else if c.is_whitespace() && !quoted {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn key_of(token: &str) -> &str {
    token.split_once('=').map(|(k, _)| k).unwrap_or(token)
}

fn render(key: &str, value: Option<&str>) -> String {
    match value {
        None => key.to_string(),
        Some(v) if v.chars().any(char::is_whitespace) || v.is_empty() => format!("{key}=\"{v}\""),
        Some(v) => format!("{key}={v}"),
    }
}

/// The wanted tokens of one key: `None` values are bare flags; an empty list removes the key.
fn wanted(key: &str, v: &CmdValue) -> Vec<String> {
    match v {
        CmdValue::Flag(true) => vec![render(key, None)],
        CmdValue::Flag(false) => vec![],
        CmdValue::Number(n) => vec![render(key, Some(&n.to_string()))],
        CmdValue::Text(s) => vec![render(key, Some(s))],
        CmdValue::List(l) => l.iter().map(|s| render(key, Some(s))).collect(),
    }
}

/// The new parameter list, or an error for a file that is not one line.
pub fn edit(content: &str, p: &KernelCmdlineParams) -> Result<(Vec<String>, Vec<String>), String> {
    let lines: Vec<&str> = content.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() > 1 {
        return Err(format!("{} has {} non-empty lines; a kernel command line file has one", p.path, lines.len()));
    }
    let old = lines.first().map(|l| tokens(l)).unwrap_or_default();
    let mut cur: Vec<Option<String>> = old.iter().cloned().map(Some).collect();
    let mut appended = vec![];
    for (key, v) in &p.set {
        let want = wanted(key, v);
        let occ: Vec<usize> = (0..cur.len()).filter(|&i| cur[i].as_deref().map(key_of) == Some(key.as_str())).collect();
        for i in 0..occ.len().max(want.len()) {
            match (occ.get(i), want.get(i)) {
                (Some(&at), Some(w)) => cur[at] = Some(w.clone()),
                (Some(&at), None) => cur[at] = None,
                (None, Some(w)) => appended.push(w.clone()),
                (None, None) => {}
            }
        }
    }
    for a in &p.absent {
        for t in cur.iter_mut() {
            let hit = match t.as_deref() {
                Some(tok) if a.contains('=') => tok == a,
                Some(tok) => key_of(tok) == a,
                None => false,
            };
            if hit {
                *t = None;
            }
        }
    }
    let new: Vec<String> = cur.into_iter().flatten().chain(appended).collect();
    Ok((old, new))
}

#[derive(Debug, Clone)]
pub struct CmdlineState {
    pub file: FileNow,
    pub old: Vec<String>,
    pub new: Vec<String>,
}

pub struct KernelCmdline;

#[async_trait]
impl Module for KernelCmdline {
    type Params = KernelCmdlineParams;
    type State = CmdlineState;
    const NAME: &'static str = "kernel_cmdline";

    fn doc(&self) -> Doc {
        Doc {
            description: "Edit a one-line kernel command line file (`/boot/cmdline.txt` on a Raspberry Pi). \
                          Parameters named in `set` are replaced where they stand, new ones are appended, and \
                          those in `absent` are removed; every other parameter keeps its place. The file is only \
                          rewritten when the parameter list changes, as one line with a trailing newline, keeping \
                          its mode. A change needs a reboot to take effect: the result carries \
                          `reboot_required: true`.",
            examples: r#"- name: Boot from the bcache device over iSCSI, network up in the initramfs
  kernel_cmdline:
    set:
      root: /dev/bcache0
      ip: dhcp
      rw: true
      console: ["serial0,115200", tty1]
    absent: [quiet, splash]

- name: Another file, a value with spaces
  kernel_cmdline:
    path: /boot/firmware/cmdline.txt
    set:
      systemd.unit: multi-user.target
      dyndbg: "module iscsi_tcp +p"
"#,
        }
    }

    fn validate(&self, p: &KernelCmdlineParams) -> Result<(), String> {
        let bad_key = |k: &str| k.is_empty() || k.contains(['=', '"']) || k.chars().any(|c| c.is_whitespace());
        for (k, v) in &p.set {
            if bad_key(k) {
                return Err(format!("set: {k:?} is not a valid kernel parameter name"));
            }
            let vals: Vec<&str> = match v {
                CmdValue::Text(s) => vec![s.as_str()],
                CmdValue::List(l) => l.iter().map(String::as_str).collect(),
                _ => vec![],
            };
            for s in vals {
                if s.contains('"') || s.contains('\n') || s.contains('\r') {
                    return Err(format!("set.{k}: a kernel parameter value cannot hold a double quote or a newline"));
                }
            }
            if p.absent.iter().any(|a| key_of(a) == k) {
                return Err(format!("{k} is both in set and in absent"));
            }
        }
        for a in &p.absent {
            if a.is_empty() || a.chars().any(|c| c.is_whitespace()) {
                return Err(format!("absent: {a:?} is not a kernel parameter"));
            }
        }
        Ok(())
    }

    async fn probe(
        &self,
        ctx: &Ctx<'_>,
        p: &KernelCmdlineParams,
        host: &ReadHost,
    ) -> Result<CmdlineState, ModuleError> {
        let file = boot_util::probe(host, &p.path).await?;
        let text = file.text().unwrap_or_default();
        let (old, new) = edit(&text, p).map_err(ModuleError::new)?;
        // a write queued for after the regeneration counts as done (verify)
        let queued = p.after_initramfs && ctx.queued.contains(&deferred_key(&p.path));
        Ok(CmdlineState { file, old: if queued { new.clone() } else { old }, new })
    }

    fn plan(&self, p: &KernelCmdlineParams, st: &CmdlineState) -> Result<Plan, ModuleError> {
        if st.old == st.new && st.file.exists() {
            return Ok(Plan::empty());
        }
        let before = st.file.text().unwrap_or_default();
        let after = format!("{}\n", st.new.join(" "));
        let mut words = vec![];
        let added: Vec<&String> = st.new.iter().filter(|t| !st.old.contains(t)).collect();
        let removed: Vec<&String> = st.old.iter().filter(|t| !st.new.contains(t)).collect();
        if !added.is_empty() {
            words.push(format!("add {}", added.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")));
        }
        if !removed.is_empty() {
            words.push(format!("remove {}", removed.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")));
        }
        let verb = if st.file.exists() { "update" } else { "create" };
        let summary = if words.is_empty() {
            format!("{verb} {}", p.path)
        } else {
            format!("{verb} {}: {}", p.path, words.join("; "))
        };
        let mut plan = Plan::empty().with(Change::new(summary).with_diff(Diff::file(&p.path, before, after.clone())));
        if p.after_initramfs {
            let path = sh_quote(&p.path);
            let script = format!(
                "printf '%s' {} > {path}.pbr-tmp && sync && mv -f -- {path}.pbr-tmp {path} && sync",
                sh_quote(&after)
            );
            plan.op(Op::Defer(Deferred {
                key: deferred_key(&p.path),
                description: format!("kernel command line {} (after the initramfs)", p.path),
                script,
            }));
        } else {
            plan.op(Op::WriteFile {
                path: p.path.clone(),
                content: after.into_bytes(),
                mode: None,
                owner: None,
                group: None,
                backup: false,
                validate: None,
            });
        }
        Ok(plan)
    }

    async fn report(
        &self,
        _p: &KernelCmdlineParams,
        _st: &CmdlineState,
        _host: &ReadHost,
    ) -> Result<Map<String, Value>, ModuleError> {
        let mut data = Map::new();
        data.insert("reboot_required".into(), Value::Bool(true));
        Ok(data)
    }

    fn data(&self, _p: &KernelCmdlineParams, st: &CmdlineState) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("cmdline".into(), Value::String(st.new.join(" ")));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: serde_json::Value) -> KernelCmdlineParams {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn edits_keep_order() {
        let p = params(serde_json::json!({
            "set": {"root": "/dev/bcache0", "ip": "dhcp", "rw": true, "console": ["serial0,115200", "tty1"]},
            "absent": ["quiet"]
        }));
        let (_, new) =
            edit("console=serial0,115200 root=PARTUUID=1 quiet rootwait console=tty3 x=\"a b\"\n", &p).unwrap();
        assert_eq!(
            new.join(" "),
            "console=serial0,115200 root=/dev/bcache0 rootwait console=tty1 x=\"a b\" ip=dhcp rw"
        );
        assert!(edit("a\nb\n", &p).is_err());
        let p = params(serde_json::json!({"set": {"rw": false, "d": "x y"}, "absent": ["k=1"]}));
        let (_, new) = edit("rw k=1 k=2", &p).unwrap();
        assert_eq!(new, vec!["k=2", "d=\"x y\""]);
    }
}
