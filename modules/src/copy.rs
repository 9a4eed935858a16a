//! `copy`: put a file (inline `content` or a controller `src`) on the host.

use crate::util::{self, Attrs, FileState, WriteOpts};
use async_trait::async_trait;
use pbr_engine::params::{Mode, bool_lenient};
use pbr_engine::{Ctx, Doc, Host, Module, ModuleError, Outcome, Plan};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CopyParams {
    /// Remote path to write. When it is an existing directory (or ends with `/`), the file is
    /// written inside it under the basename of `src`.
    pub dest: String,
    /// Inline content to write (exclusive with `src`).
    #[serde(default)]
    pub content: Option<String>,
    /// Controller file to copy, looked up in the role's `files/` then the playbook's directory;
    /// with `remote_src: true`, a path on the host.
    #[serde(default)]
    pub src: Option<String>,
    /// `src` is a path on the host rather than on the controller.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub remote_src: bool,
    /// Mode of the file: quoted octal (`"0644"`) or symbolic (`u=rw,g=r,o=r`).
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Owner (name or uid).
    #[serde(default)]
    pub owner: Option<String>,
    /// Group (name or gid).
    #[serde(default)]
    pub group: Option<String>,
    /// Keep a copy of the replaced file as `dest.YYYY-mm-dd@HH:MM:SS~`.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub backup: bool,
    /// When false, only write the file if it does not exist yet.
    #[serde(default = "yes", deserialize_with = "bool_lenient")]
    pub force: bool,
    /// Command run on the new content before it is put in place; `%s` is the temp file's path.
    #[serde(default)]
    pub validate: Option<String>,
}

/// What a content-writing module learned: the destination and the bytes wanted there.
#[derive(Debug, Clone)]
pub struct ContentState {
    pub file: FileState,
    pub want: Vec<u8>,
    pub force: bool,
}

/// The pieces of a content-writing task that copy and template share.
pub struct ContentSpec<'a> {
    pub attrs: Attrs<'a>,
    pub backup: bool,
    pub validate: Option<&'a str>,
}

pub fn plan_content_write(spec: &ContentSpec, st: &ContentState) -> Result<Plan, ModuleError> {
    if !st.force && st.file.exists() {
        return Ok(Plan::empty());
    }
    util::plan_content(&st.file, &st.want, spec.attrs)
}

pub async fn apply_content_write(
    host: &Host,
    spec: &ContentSpec<'_>,
    st: &ContentState,
) -> Result<Outcome, ModuleError> {
    let data = util::apply_content(
        host,
        &st.file,
        &st.want,
        spec.attrs,
        WriteOpts { backup: spec.backup, validate: spec.validate },
    )
    .await?;
    let mut data = data;
    if let Some(s) = host.stat(&st.file.path).await? {
        data.insert("mode".into(), Value::String(util::mode_str(s.mode)));
        data.insert("owner".into(), Value::String(s.owner));
        data.insert("group".into(), Value::String(s.group));
    }
    Ok(Outcome { data, ..Default::default() })
}

pub fn content_data(st: &ContentState) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("dest".into(), Value::String(st.file.path.clone()));
    m.insert("checksum".into(), Value::String(util::sha1_hex(&st.want)));
    m.insert("size".into(), Value::from(st.want.len()));
    if let Some(s) = &st.file.stat {
        m.insert("mode".into(), Value::String(util::mode_str(s.mode)));
        m.insert("owner".into(), Value::String(s.owner.clone()));
        m.insert("group".into(), Value::String(s.group.clone()));
    }
    m
}

/// Probe `dest`; when it is a directory and `src_name` is known, probe `dest/basename` instead.
pub async fn probe_dest(host: &Host, dest: &str, src_name: Option<&str>) -> Result<FileState, ModuleError> {
    let base = src_name.map(|s| s.trim_end_matches('/').rsplit('/').next().unwrap_or(s).to_string());
    if dest.ends_with('/') {
        let Some(b) = base else {
            return Err(ModuleError::new(format!("dest {dest} is a directory: give a file name")));
        };
        return util::probe_file(host, &format!("{dest}{b}"), true, false).await;
    }
    let st = util::probe_file(host, dest, true, false).await?;
    if st.kind() == Some("directory") {
        if let Some(b) = base {
            return util::probe_file(host, &format!("{dest}/{b}"), true, false).await;
        }
        return Err(ModuleError::new(format!("dest {dest} is a directory")));
    }
    Ok(st)
}

pub struct Copy;

#[async_trait]
impl Module for Copy {
    type Params = CopyParams;
    type State = ContentState;
    const NAME: &'static str = "copy";

    fn doc(&self) -> Doc {
        Doc {
            description: "Write a file on the host from inline `content` or a controller file `src`. The file is \
                          compared byte for byte (by sha1 beyond 1 MiB) and replaced atomically; mode, owner and \
                          group are fixed when they differ. `--diff` shows the text change.",
            examples: r#"- name: Install the motd
  copy:
    src: motd
    dest: /etc/motd
    mode: "0644"

- name: Write a config inline, checking it first
  copy:
    dest: /etc/sudoers.d/pi
    content: "pi ALL=(ALL) NOPASSWD: ALL\n"
    mode: "0440"
    validate: visudo -cf %s
    backup: true
"#,
        }
    }

    fn validate(&self, p: &CopyParams) -> Result<(), String> {
        match (&p.content, &p.src) {
            (Some(_), Some(_)) => Err("content and src are mutually exclusive".into()),
            (None, None) => Err("one of content or src is required".into()),
            _ if p.remote_src && p.src.is_none() => Err("remote_src needs src".into()),
            _ => Ok(()),
        }
    }

    async fn probe(&self, ctx: &Ctx<'_>, p: &CopyParams, host: &Host) -> Result<ContentState, ModuleError> {
        let want = match (&p.content, &p.src) {
            (Some(c), _) => c.as_bytes().to_vec(),
            (None, Some(src)) if p.remote_src => host
                .read_file(src)
                .await?
                .ok_or_else(|| ModuleError::new(format!("remote src {src} does not exist")))?,
            (None, Some(src)) => {
                let path = ctx.find_file("files", src)?;
                if path.is_dir() {
                    return Err(ModuleError::new(format!(
                        "src {} is a directory: copying directories is not supported, use one task per file",
                        path.display()
                    )));
                }
                std::fs::read(&path).map_err(|e| ModuleError::new(format!("cannot read {}: {e}", path.display())))?
            }
            (None, None) => return Err(ModuleError::new("one of content or src is required")),
        };
        let file = probe_dest(host, &p.dest, p.src.as_deref()).await?;
        Ok(ContentState { file, want, force: p.force })
    }

    fn plan(&self, p: &CopyParams, st: &ContentState) -> Result<Plan, ModuleError> {
        plan_content_write(&spec(p), st)
    }

    async fn apply(
        &self,
        _ctx: &Ctx<'_>,
        p: &CopyParams,
        st: &ContentState,
        _plan: &Plan,
        host: &Host,
    ) -> Result<Outcome, ModuleError> {
        apply_content_write(host, &spec(p), st).await
    }

    fn data(&self, _p: &CopyParams, st: &ContentState) -> Map<String, Value> {
        content_data(st)
    }
}

fn spec(p: &CopyParams) -> ContentSpec<'_> {
    ContentSpec {
        attrs: Attrs { mode: p.mode.as_ref(), owner: p.owner.as_deref(), group: p.group.as_deref() },
        backup: p.backup,
        validate: p.validate.as_deref(),
    }
}
