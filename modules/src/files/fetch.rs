//! `fetch`: copy a file from the host to the controller, as Ansible's `fetch` names it
//! (`DEST/HOST/PATH`, or `DEST` itself with `flat`).

use crate::util;
use async_trait::async_trait;
use pbr_core::params::bool_lenient;
use pbr_core::{Change, Ctx, Diff, Doc, Module, ModuleError, Op, PathQuery, Plan, ReadHost};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::path::{Component, Path, PathBuf};

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FetchParams {
    /// The file on the host (links are followed; not a directory).
    pub src: String,
    /// A directory on the controller (relative: to the playbook's); the file goes to
    /// `DEST/INVENTORY_HOSTNAME/SRC`, or with `flat` to `DEST` itself (`DEST/NAME` when it ends
    /// with `/`).
    pub dest: String,
    /// Store the file at `dest` without the host name and path.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub flat: bool,
    /// Fail when the host has no such file (else the task is ok and says why nothing came).
    #[serde(default = "yes", deserialize_with = "bool_lenient")]
    pub fail_on_missing: bool,
    /// Accepted for compatibility: the copy is the bytes read from the host.
    #[serde(default = "yes", deserialize_with = "bool_lenient")]
    pub validate_checksum: bool,
}

pub struct Fetch;

pub struct FetchState {
    /// The host's bytes (None: no such file and `fail_on_missing` is off).
    remote: Option<Vec<u8>>,
    dest: PathBuf,
    local: Option<Vec<u8>>,
    /// Why nothing is fetched (a missing file or a directory, ignored).
    msg: Option<String>,
}

/// Lexically normalized (`a/./b/../c` → `a/c`), as Python's `os.path.normpath`.
fn normpath(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Where the file goes on the controller.
pub fn local_path(p: &FetchParams, host: &str, base: &Path) -> Result<PathBuf, String> {
    let rel = |d: &str| if Path::new(d).is_absolute() { PathBuf::from(d) } else { base.join(d) };
    let dest = if p.flat {
        let d = if p.dest.ends_with('/') {
            format!("{}{}", p.dest, p.src.rsplit('/').next().unwrap_or(&p.src))
        } else {
            if rel(&p.dest).is_dir() {
                return Err(
                    "dest is an existing directory, use a trailing slash if you want to fetch src into that directory"
                        .into(),
                );
            }
            p.dest.clone()
        };
        normpath(&rel(&d))
    } else {
        let root = normpath(&rel(&p.dest));
        let d = normpath(&root.join(host).join(p.src.trim_start_matches('/')));
        if !d.starts_with(&root) {
            return Err(format!(
                "Detected directory traversal, expected to be contained in '{}' but got '{}'",
                root.display(),
                d.display()
            ));
        }
        d
    };
    Ok(dest)
}

#[async_trait]
impl Module for Fetch {
    type Params = FetchParams;
    type State = FetchState;
    const NAME: &'static str = "fetch";

    fn doc(&self) -> Doc {
        Doc {
            description: "Copy a file from the host to the controller: to `DEST/HOST/SRC` (one tree per host), \
                          or with `flat` to `DEST` itself. The copy is replaced only when its content differs; \
                          it is written beside its final name and renamed into place. In check mode nothing \
                          is written and the task reports what would come (Ansible skips the task). Result: `dest`, `file`, `checksum` and `remote_checksum` (sha1), \
                          `md5sum`.",
            examples: r#"- name: Keep each Pi's initiator name on the controller
  fetch:
    src: /etc/iscsi/initiatorname.iscsi
    dest: backups/
"#,
        }
    }

    async fn probe(&self, ctx: &Ctx<'_>, p: &FetchParams, host: &ReadHost) -> Result<FetchState, ModuleError> {
        let base = ctx.search.last().cloned().unwrap_or_else(|| PathBuf::from("."));
        let dest = local_path(p, host.name(), &base).map_err(ModuleError::new)?;
        // one round trip for a file up to READ_LIMIT: its content comes with its stat
        let info = host.inspect_one(PathQuery::new(p.src.clone()).follow(true).content(true)).await?;
        let mut msg = None;
        let remote = match info.stat {
            Some(s) if s.kind == "directory" => {
                let m = "remote file is a directory, fetch cannot work on directories";
                if p.fail_on_missing {
                    return Err(ModuleError::new(m));
                }
                msg = Some(format!("{m}, not transferring, ignored"));
                None
            }
            Some(_) => match info.content {
                Some(c) => Some(c),
                None => Some(host.read_file(&p.src).await?.unwrap_or_default()),
            },
            None => {
                let m = "the remote file does not exist, not transferring, ignored";
                if p.fail_on_missing {
                    return Err(ModuleError::new(m));
                }
                msg = Some(m.to_string());
                None
            }
        };
        let local = std::fs::read(&dest).ok();
        Ok(FetchState { remote, dest, local, msg })
    }

    fn plan(&self, _p: &FetchParams, st: &FetchState) -> Result<Plan, ModuleError> {
        let mut plan = Plan::empty();
        let Some(remote) = &st.remote else { return Ok(plan) };
        if st.local.as_ref() == Some(remote) {
            return Ok(plan);
        }
        let d = st.dest.display().to_string();
        let c = match &st.local {
            None => Change::create(format!("create {d} on the controller ({} bytes)", remote.len())),
            Some(_) => Change::new(format!("update {d} on the controller")),
        };
        let text = |b: &[u8]| util::as_text(b).map(str::to_string);
        let c = match (st.local.as_deref().map_or(Some(String::new()), text), text(remote)) {
            (Some(before), Some(after)) => c.with_diff(Diff::file(&d, before, after)),
            _ => c,
        };
        plan.push(c);
        plan.op(Op::WriteLocal { path: st.dest.clone(), content: remote.clone() });
        Ok(plan)
    }

    fn data(&self, p: &FetchParams, st: &FetchState) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("file".into(), json!(p.src));
        match &st.remote {
            Some(r) => {
                let sum = util::sha1_hex(r);
                m.insert("dest".into(), json!(st.dest.display().to_string()));
                m.insert("checksum".into(), json!(sum));
                m.insert("remote_checksum".into(), json!(sum));
                m.insert("md5sum".into(), json!(format!("{:x}", md5::compute(r))));
            }
            None => {
                m.insert("msg".into(), json!(st.msg));
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(src: &str, dest: &str, flat: bool) -> FetchParams {
        FetchParams { src: src.into(), dest: dest.into(), flat, fail_on_missing: true, validate_checksum: true }
    }

    #[test]
    fn destinations_as_ansible_names_them() {
        let base = Path::new("/pb");
        assert_eq!(
            local_path(&params("/etc/hosts", "backup", false), "pi1", base).unwrap(),
            Path::new("/pb/backup/pi1/etc/hosts")
        );
        assert_eq!(local_path(&params("/etc/hosts", "/b/", true), "pi1", base).unwrap(), Path::new("/b/hosts"));
        assert_eq!(local_path(&params("/etc/hosts", "b/h.txt", true), "pi1", base).unwrap(), Path::new("/pb/b/h.txt"));
        assert!(local_path(&params("../../etc/passwd", "b", false), "pi1", base).is_err());
    }
}
