//! `stat`: report a path's metadata (never changes anything).

use crate::util::{self, STAT_FMT, take_line};
use async_trait::async_trait;
use pbr_engine::params::bool_lenient;
use pbr_engine::{Ctx, Doc, FileStat, Host, Module, ModuleError, Outcome, Plan, sh_quote};
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
    pub checksum: Option<String>,
    pub readable: bool,
    pub writeable: bool,
    pub executable: bool,
}

pub struct Stat;

/// Parse the stat probe output (see `probe`).
pub fn parse(path: &str, out: &[u8]) -> Result<StatState, ModuleError> {
    let (first, rest) = take_line(out);
    if first == "ABSENT" {
        return Ok(StatState { stat: None, checksum: None, readable: false, writeable: false, executable: false });
    }
    let (link, rest) = take_line(rest);
    let stat = util::parse_stat_line(first, Some(link))
        .ok_or_else(|| ModuleError::new(format!("cannot parse stat output for {path}: {first}")))?;
    let (access, rest) = take_line(rest);
    let (sum, _) = take_line(rest);
    Ok(StatState {
        stat: Some(stat),
        checksum: Some(sum.trim().to_string()).filter(|s| !s.is_empty()),
        readable: access.contains('r'),
        writeable: access.contains('w'),
        executable: access.contains('x'),
    })
}

#[async_trait]
impl Module for Stat {
    type Params = StatParams;
    type State = StatState;
    const NAME: &'static str = "stat";

    fn doc(&self) -> Doc {
        Doc {
            description: "Report a path's metadata as `stat` in the result (exists, isdir, isreg, islnk, mode, \
                          uid, gid, pw_name, gr_name, size, mtime, checksum). Never changes anything.",
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

    async fn probe(&self, _ctx: &Ctx<'_>, p: &StatParams, host: &Host) -> Result<StatState, ModuleError> {
        let l = if p.follow { "-L " } else { "" };
        let sum = if p.get_checksum {
            "if [ -f \"$p\" ] && [ -r \"$p\" ]; then sha1sum -- \"$p\" | cut -d' ' -f1; else echo; fi"
        } else {
            "echo"
        };
        let script = format!(
            "p={}; if [ -e \"$p\" ] || [ -L \"$p\" ]; then stat {l}-c '{STAT_FMT}' -- \"$p\" || exit 1; \
             if [ -L \"$p\" ]; then readlink -- \"$p\"; else echo; fi; \
             a=; [ -r \"$p\" ] && a=${{a}}r; [ -w \"$p\" ] && a=${{a}}w; [ -x \"$p\" ] && a=${{a}}x; echo \"=$a\"; {sum}; \
             else echo ABSENT; fi",
            sh_quote(&p.path)
        );
        let out = host.query_sh(script).await?;
        if out.rc != 0 {
            return Err(ModuleError::new(format!("cannot stat {}: {}", p.path, out.stderr_str().trim())));
        }
        parse(&p.path, &out.stdout)
    }

    fn plan(&self, _p: &StatParams, _st: &StatState) -> Result<Plan, ModuleError> {
        Ok(Plan::empty())
    }

    async fn apply(
        &self,
        _ctx: &Ctx<'_>,
        _p: &StatParams,
        _st: &StatState,
        _plan: &Plan,
        _host: &Host,
    ) -> Result<Outcome, ModuleError> {
        Ok(Outcome::default())
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
