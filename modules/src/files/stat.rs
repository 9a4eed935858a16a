//! `stat`: report a path's metadata (never changes anything).

use crate::util;
use async_trait::async_trait;
use pbr_core::params::bool_lenient;
use pbr_core::{Ctx, Doc, ExtStat, FileStat, Module, ModuleError, PathQuery, Plan, ReadHost};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatParams {
    /// The path to inspect.
    #[serde(alias = "dest", alias = "name")]
    pub path: String,
    /// Follow a final symlink and report on its target.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub follow: bool,
    /// Compute the sha1 `checksum` of a regular file.
    #[serde(default = "yes", deserialize_with = "bool_lenient")]
    pub get_checksum: bool,
    /// Accepted for compatibility; always sha1.
    #[serde(default)]
    pub checksum_algorithm: Option<String>,
}

#[derive(Debug, Clone)]
pub struct StatState {
    pub stat: Option<FileStat>,
    pub ext: Option<ExtStat>,
    pub checksum: Option<String>,
    pub readable: bool,
    pub writeable: bool,
    pub executable: bool,
}

pub struct Stat;

#[async_trait]
impl Module for Stat {
    type Params = StatParams;
    type State = StatState;
    const NAME: &'static str = "stat";

    fn doc(&self) -> Doc {
        Doc {
            description: "Report a path's metadata as `stat` in the result (exists, isdir, isreg, islnk, mode, \
                          uid, gid, pw_name, gr_name, size, mtime, atime, ctime, dev, inode, nlink, checksum). Never changes \
                          anything.",
            examples: r#"- name: Is there an old config?
  stat:
    path: /etc/old.conf
  register: old

- name: Tell
  debug:
    msg: "old config is {{ old.stat.size }} bytes"
  when: old.stat.exists
"#,
        }
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &StatParams, host: &ReadHost) -> Result<StatState, ModuleError> {
        let q = PathQuery::new(p.path.clone()).follow(p.follow).access().checksum(p.get_checksum).ext(true);
        let info = host.inspect_one(q).await?;
        let access = info.access.unwrap_or_default();
        Ok(StatState {
            stat: info.stat,
            ext: info.ext,
            checksum: info.checksum,
            readable: access.contains('r'),
            writeable: access.contains('w'),
            executable: access.contains('x'),
        })
    }

    fn plan(&self, _p: &StatParams, _st: &StatState) -> Result<Plan, ModuleError> {
        Ok(Plan::empty())
    }

    fn data(&self, p: &StatParams, st: &StatState) -> Map<String, Value> {
        let mut m = Map::new();
        let v = match &st.stat {
            None => json!({"exists": false}),
            Some(s) => {
                let mut o = json!({
                    "exists": true,
                    "path": p.path,
                    "isdir": s.kind == "directory",
                    "isreg": s.kind == "file",
                    "islnk": s.kind == "link",
                    "isblk": s.kind == "block",
                    "ischr": s.kind == "char",
                    "isfifo": s.kind == "fifo",
                    "issock": s.kind == "socket",
                    "mode": util::mode_str(s.mode),
                    "uid": s.uid,
                    "gid": s.gid,
                    "pw_name": s.owner,
                    "gr_name": s.group,
                    "size": s.size,
                    "mtime": s.mtime,
                    "readable": st.readable,
                    "writeable": st.writeable,
                    "executable": st.executable,
                });
                // the mode's bits under Ansible's names
                for (key, bit) in [
                    ("isuid", 0o4000),
                    ("isgid", 0o2000),
                    ("rusr", 0o400),
                    ("wusr", 0o200),
                    ("xusr", 0o100),
                    ("rgrp", 0o40),
                    ("wgrp", 0o20),
                    ("xgrp", 0o10),
                    ("roth", 0o4),
                    ("woth", 0o2),
                    ("xoth", 0o1),
                ] {
                    o[key] = json!(s.mode & bit != 0);
                }
                if let Some(e) = &st.ext {
                    // seconds with their fraction, as Ansible's (a float)
                    o["atime"] = json!(e.atime as f64 + f64::from(e.atime_nsec) / 1e9);
                    o["ctime"] = json!(e.ctime as f64 + f64::from(e.ctime_nsec) / 1e9);
                    o["dev"] = json!(e.dev);
                    o["inode"] = json!(e.inode);
                    o["nlink"] = json!(e.nlink);
                }
                if let Some(t) = &s.link_target {
                    o["lnk_source"] = json!(t);
                    o["lnk_target"] = json!(t);
                }
                if let Some(c) = &st.checksum {
                    o["checksum"] = json!(c);
                }
                o
            }
        };
        m.insert("stat".into(), v);
        m
    }
}
