//! `sysctl`: a kernel parameter in a sysctl file, and in the running kernel (as Ansible's
//! `ansible.posix.sysctl`).

use crate::lineinfile::probe_text;
use crate::util::{self, Attrs, FileState, WriteOpts};
use async_trait::async_trait;
use pbr_core::params::Presence;
use pbr_core::params::bool_lenient;
use pbr_core::{Change, Ctx, Diff, Doc, Module, ModuleError, Op, Plan, ReadHost, sh_quote};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

fn yes() -> bool {
    true
}

fn default_file() -> String {
    "/etc/sysctl.conf".into()
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SysctlParams {
    /// The parameter (`net.ipv4.ip_forward`).
    #[serde(alias = "key")]
    pub name: String,
    /// Its value (required with `state: present`). Booleans and `yes`/`no` are `1`/`0`.
    #[serde(default, alias = "val")]
    pub value: Option<String>,
    /// `present` keeps the line in the file; `absent` removes it (the kernel keeps its value).
    #[serde(default)]
    pub state: Presence,
    /// After a change, load the file into the kernel (`sysctl -p FILE`); also when only the
    /// kernel's value differs from the file's.
    #[serde(default = "yes", deserialize_with = "bool_lenient")]
    pub reload: bool,
    /// Set the kernel's value with `sysctl -w` when it differs.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub sysctl_set: bool,
    /// Unknown keys are not errors (`sysctl -e`).
    #[serde(default, deserialize_with = "bool_lenient")]
    pub ignoreerrors: bool,
    /// The file that keeps the setting across boots.
    #[serde(default = "default_file")]
    pub sysctl_file: String,
}

/// The value as Ansible normalizes it: booleans as `1`/`0`, trimmed.
fn normalize(v: &str) -> String {
    match v.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" | "on" | "1" | "true" | "t" => "1".into(),
        "n" | "no" | "off" | "0" | "false" | "f" => "0".into(),
        _ => v.trim().to_string(),
    }
}

/// The same values, compared word by word (the kernel separates them with tabs).
fn same_values(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

/// The file's settings (the last of a key wins, as in Ansible).
fn file_value(text: &str, name: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(['#', ';']))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim().to_string())
        .next_back()
}

/// The file as Ansible rewrites it: every setting as `key=value`, a key's later duplicates gone,
/// this key set or removed, comments and blank lines kept (trimmed).
fn rewrite(text: &str, name: &str, value: Option<&str>) -> String {
    let mut seen: Vec<String> = vec![];
    let mut out = String::new();
    for l in text.lines().map(str::trim) {
        let Some((k, v)) = l.split_once('=').filter(|_| !l.is_empty() && !l.starts_with(['#', ';'])) else {
            out.push_str(l);
            out.push('\n');
            continue;
        };
        let k = k.trim();
        if seen.iter().any(|s| s == k) {
            continue;
        }
        seen.push(k.to_string());
        if k == name {
            if let Some(v) = value {
                out.push_str(&format!("{k}={v}\n"));
            }
        } else {
            out.push_str(&format!("{k}={}\n", v.trim()));
        }
    }
    if let Some(v) = value
        && !seen.iter().any(|s| s == name)
    {
        out.push_str(&format!("{name}={v}\n"));
    }
    out
}

pub struct Sysctl;

pub struct SysctlState {
    file: FileState,
    text: Option<String>,
    /// The kernel's value (None: no such key).
    kernel: Option<String>,
}

#[async_trait]
impl Module for Sysctl {
    type Params = SysctlParams;
    type State = SysctlState;
    const NAME: &'static str = "sysctl";

    fn doc(&self) -> Doc {
        Doc {
            description: "Keep a kernel parameter in a sysctl file (`key=value`) and, with `reload` (the \
                          default), in the running kernel: after a change, or when the kernel's value differs \
                          from the file's, the file is loaded with `sysctl -p FILE`. `sysctl_set` also sets the \
                          value with `sysctl -w`. As ansible.posix.sysctl, a written file has every setting as \
                          `key=value` and no duplicate keys.",
            examples: r#"- name: The iSCSI target host forwards nothing
  sysctl:
    name: net.ipv4.ip_forward
    value: "0"
    sysctl_file: /etc/sysctl.d/90-pbr.conf

- name: Less swapping on the Pis
  sysctl:
    name: vm.swappiness
    value: 10
    sysctl_set: true
"#,
        }
    }

    fn validate(&self, p: &SysctlParams) -> Result<(), String> {
        if p.state == Presence::Present && p.value.is_none() {
            return Err("value is required with state=present".into());
        }
        Ok(())
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &SysctlParams, host: &ReadHost) -> Result<SysctlState, ModuleError> {
        let (file, text) = probe_text(host, &p.sysctl_file).await?;
        let name = p.name.trim();
        let out = host.query_sh(format!("LC_ALL=C sysctl -e -n {}", sh_quote(name))).await?;
        let kernel = (out.ok() && !out.stdout.is_empty()).then(|| out.stdout_str().trim_end_matches('\n').to_string());
        Ok(SysctlState { file, text, kernel })
    }

    fn plan(&self, p: &SysctlParams, st: &SysctlState) -> Result<Plan, ModuleError> {
        let name = p.name.trim();
        let value = p.value.as_deref().map(normalize);
        let present = p.state == Presence::Present;
        let text = st.text.as_deref().unwrap_or("");
        let in_file = file_value(text, name);
        let mut plan = Plan::empty();
        let write = match (&in_file, present) {
            (None, false) => false,
            (Some(_), false) => true,
            (_, true) => in_file != value,
        };
        let kernel_differs = match (&st.kernel, &value) {
            (Some(k), Some(v)) => !same_values(k, v),
            _ => true,
        };
        let mut changed = write;
        if write {
            let new = rewrite(text, name, if present { value.as_deref() } else { None });
            let what = match (&in_file, &value) {
                (None, Some(v)) => format!("{}: {name}={v} added", p.sysctl_file),
                (Some(old), Some(v)) if present => format!("{}: {name} {old} → {v}", p.sysctl_file),
                _ => format!("{}: {name} removed", p.sysctl_file),
            };
            let c = if st.text.is_none() {
                Change::create(what)
            } else if present {
                Change::new(what)
            } else {
                Change::remove(what)
            };
            plan.push(c.with_diff(Diff::file(&p.sysctl_file, text, new.clone())));
            util::content_ops(&st.file, Some(new.as_bytes()), Attrs::default(), WriteOpts::default(), &mut plan);
        } else if p.reload && present && kernel_differs {
            changed = true;
        }
        let e = if p.ignoreerrors { "-e " } else { "" };
        let mut kernel_line = false;
        if present && let Some(v) = &value {
            let before = st.kernel.as_deref().unwrap_or("(none)");
            if p.sysctl_set && kernel_differs {
                changed = true;
                kernel_line = true;
                plan.push(Change::new(format!("kernel: {name} {before} → {v}")));
                plan.op(Op::run(
                    format!("sysctl -w {name}"),
                    checked(&format!("sysctl {e}-w {}", sh_quote(&format!("{name}={v}"))), &format!("setting {name}")),
                ));
            } else if changed && p.reload && kernel_differs {
                kernel_line = true;
                plan.push(Change::new(format!("kernel: {name} {before} → {v} (sysctl -p)")));
            }
        }
        if changed && p.reload {
            if !kernel_line && plan.changes.is_empty() {
                plan.push(Change::new(format!("reload {}", p.sysctl_file)));
            }
            plan.op(Op::run(
                format!("sysctl -p {}", p.sysctl_file),
                checked(&format!("sysctl {e}-p {}", sh_quote(&p.sysctl_file)), "Failed to reload sysctl"),
            ));
        }
        Ok(plan)
    }

    fn data(&self, _p: &SysctlParams, _st: &SysctlState) -> Map<String, Value> {
        Map::new()
    }
}

/// A sysctl command that fails on a non-zero exit, or on the "setting key" errors that sysctl
/// reports with status 0.
fn checked(cmd: &str, what: &str) -> String {
    format!(
        "out=$(LC_ALL=C {cmd} 2>&1) && ! printf '%s\\n' \"$out\" | grep -Eq '^sysctl: setting key \"[^\"]+\": \
         (Invalid argument|Read-only file system)$' || {{ printf '%s: %s\\n' {} \"$out\" >&2; exit 1; }}",
        sh_quote(what)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_rewritten_as_ansible_does() {
        let t = "# tuning\nvm.swappiness = 60\nnet.ipv4.ip_forward=1\n\nvm.swappiness=30\n";
        assert_eq!(file_value(t, "vm.swappiness").as_deref(), Some("30"));
        assert_eq!(rewrite(t, "vm.swappiness", Some("10")), "# tuning\nvm.swappiness=10\nnet.ipv4.ip_forward=1\n\n");
        assert_eq!(rewrite(t, "net.ipv4.ip_forward", None), "# tuning\nvm.swappiness=60\n\n");
        assert_eq!(rewrite("", "a.b", Some("1")), "a.b=1\n");
        assert_eq!(normalize("yes"), "1");
        assert_eq!(normalize(" 4096 87380 "), "4096 87380");
        assert!(same_values("4096\t87380", "4096 87380"));
    }
}
