//! `copy`: put a file (inline `content` or a controller `src`) on the host.

use crate::util::{self, Attrs, FileState, WriteOpts};
use async_trait::async_trait;
use pbr_core::params::{Mode, bool_lenient};
use pbr_core::{Ctx, Doc, Module, ModuleError, Op, Plan, ReadHost};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

fn yes() -> bool {
    true
}

/// `content` as text: strings as they are, numbers and booleans printed, lists/maps as JSON.
fn content_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => None,
        Value::String(s) => Some(s),
        Value::Bool(b) => Some(if b { "True".into() } else { "False".into() }),
        v @ Value::Number(_) => Some(v.to_string()),
        v => Some(serde_json::to_string(&v).map_err(serde::de::Error::custom)?),
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CopyParams {
    /// Remote path to write. When it is an existing directory (or ends with `/`), the file is
    /// written inside it under the basename of `src`.
    pub dest: String,
    /// Inline content to write (exclusive with `src`). Lists and maps are written as JSON.
    #[serde(default, deserialize_with = "content_text")]
    #[schemars(with = "Option<Value>")]
    pub content: Option<String>,
    /// Controller file to copy, looked up in the role's `files/` then the playbook's directory;
    /// with `remote_src: true`, a path on the host.
    #[serde(default)]
    pub src: Option<String>,
    /// `src` is a path on the host rather than on the controller.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub remote_src: bool,
    /// Mode of the file: quoted octal (`"0644"`), symbolic (`u=rw,g=r,o=r`), or `preserve`:
    /// the mode of `src` (the controller file's, or with `remote_src` the host file's).
    #[serde(default)]
    pub mode: Option<CopyMode>,
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
    /// Mode of the directories created when `src` is a directory.
    #[serde(default)]
    pub directory_mode: Option<Mode>,
    /// Decrypt a vault-encrypted `src` on the controller (with the run's vault passwords) and copy
    /// the plain text, as Ansible does by default.
    #[serde(default = "yes", deserialize_with = "bool_lenient")]
    pub decrypt: bool,
}

/// copy's `mode`: a mode, or `preserve` (the source's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyMode {
    Preserve,
    Mode(Mode),
}

impl<'de> Deserialize<'de> for CopyMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        if v.as_str() == Some("preserve") {
            return Ok(CopyMode::Preserve);
        }
        Mode::deserialize(v).map(CopyMode::Mode).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for CopyMode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "CopyMode".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "File mode: quoted octal such as \"0644\", symbolic such as \"u=rw,g=r,o=r\", or \"preserve\"",
            "type": ["string", "integer"]
        })
    }
}

/// The permission bits of a local file, as a mode.
fn local_mode(path: &std::path::Path) -> Result<Mode, ModuleError> {
    use std::os::unix::fs::PermissionsExt;
    let m = std::fs::metadata(path).map_err(|e| ModuleError::new(format!("cannot read {}: {e}", path.display())))?;
    Ok(Mode::Octal(m.permissions().mode() & 0o7777))
}

/// A controller file's bytes to copy: decrypted when it is vault-encrypted and `decrypt` is on.
fn read_src(ctx: &Ctx<'_>, path: &std::path::Path, decrypt: bool) -> Result<Vec<u8>, ModuleError> {
    let b = std::fs::read(path).map_err(|e| ModuleError::new(format!("cannot read {}: {e}", path.display())))?;
    match std::str::from_utf8(&b) {
        Ok(t) if decrypt => match ctx.controller.decrypt_vault(t) {
            Ok(Some(plain)) => Ok(plain),
            Ok(None) => Ok(b),
            Err(e) => Err(ModuleError::new(format!("{}: {e}", path.display()))),
        },
        _ => Ok(b),
    }
}

/// What a content-writing module learned: the destination and the bytes wanted there.
#[derive(Debug, Clone)]
pub struct ContentState {
    pub file: FileState,
    pub want: Vec<u8>,
    pub force: bool,
    /// The source's mode, for copy's `mode: preserve`.
    pub src_mode: Option<Mode>,
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
    util::plan_content(&st.file, &st.want, spec.attrs, WriteOpts { backup: spec.backup, validate: spec.validate })
}

/// Mode, owner and group of the file written, read after the write (what Ansible reports).
pub async fn written_attrs(host: &ReadHost, path: &str) -> Result<Map<String, Value>, ModuleError> {
    let mut data = Map::new();
    if let Some(s) = host.stat(path).await? {
        data.insert("mode".into(), Value::String(util::mode_str(s.mode)));
        data.insert("owner".into(), Value::String(s.owner));
        data.insert("group".into(), Value::String(s.group));
        data.insert("uid".into(), Value::from(s.uid));
        data.insert("gid".into(), Value::from(s.gid));
    }
    Ok(data)
}

pub fn content_data(st: &ContentState) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("dest".into(), Value::String(st.file.path.clone()));
    m.insert("checksum".into(), Value::String(util::sha1_hex(&st.want)));
    m.insert("md5sum".into(), Value::String(format!("{:x}", md5::compute(&st.want))));
    m.insert("size".into(), Value::from(st.want.len()));
    m.insert("state".into(), Value::String("file".into()));
    if let Some(s) = &st.file.stat {
        m.insert("mode".into(), Value::String(util::mode_str(s.mode)));
        m.insert("owner".into(), Value::String(s.owner.clone()));
        m.insert("group".into(), Value::String(s.group.clone()));
        m.insert("uid".into(), Value::from(s.uid));
        m.insert("gid".into(), Value::from(s.gid));
    }
    m
}

/// Probe `dest`; when it is a directory and `src_name` is known, probe `dest/basename` instead.
pub async fn probe_dest(host: &ReadHost, dest: &str, src_name: Option<&str>) -> Result<FileState, ModuleError> {
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

/// What `copy` learned: one file, or a tree (`src` a controller directory).
#[derive(Debug, Clone)]
pub struct CopyState {
    pub files: Vec<ContentState>,
    /// Destination directories of a tree copy, probed.
    pub dirs: Vec<FileState>,
    /// The destination root reported as `dest`.
    pub dest: String,
}

/// Files and directories below `root` (relative paths, sorted; links followed).
fn walk_local(root: &std::path::Path) -> Result<(Vec<String>, Vec<String>), ModuleError> {
    let mut dirs = vec![];
    let mut files = vec![];
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let rd =
            std::fs::read_dir(&dir).map_err(|e| ModuleError::new(format!("cannot read {}: {e}", dir.display())))?;
        let mut entries: Vec<_> = rd.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let r = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            let md = std::fs::metadata(e.path())
                .map_err(|err| ModuleError::new(format!("cannot read {}: {err}", e.path().display())))?;
            if md.is_dir() {
                dirs.push(r.clone());
                stack.push((e.path(), r));
            } else {
                files.push(r);
            }
        }
    }
    dirs.sort();
    files.sort();
    Ok((dirs, files))
}

impl Copy {
    async fn probe_tree(
        &self,
        ctx: &Ctx<'_>,
        p: &CopyParams,
        src: &str,
        local: &std::path::Path,
        host: &ReadHost,
    ) -> Result<CopyState, ModuleError> {
        let dest = p.dest.trim_end_matches('/');
        let root = if src.ends_with('/') {
            dest.to_string()
        } else {
            let base = src.trim_end_matches('/').rsplit('/').next().unwrap_or(src);
            format!("{dest}/{base}")
        };
        let (dirs, files) = walk_local(local)?;
        let mut paths = vec![root.clone()];
        paths.extend(dirs.iter().map(|d| format!("{root}/{d}")));
        let ndirs = paths.len();
        paths.extend(files.iter().map(|f| format!("{root}/{f}")));
        let mut probed = util::probe_files(host, &paths, true, false).await?;
        let file_states = probed.split_off(ndirs);
        let mut out = vec![];
        for (rel, file) in files.iter().zip(file_states) {
            let lp = local.join(rel);
            let want = read_src(ctx, &lp, p.decrypt)?;
            let src_mode = if p.mode == Some(CopyMode::Preserve) { Some(local_mode(&lp)?) } else { None };
            out.push(ContentState { file, want, force: p.force, src_mode });
        }
        Ok(CopyState { files: out, dirs: probed, dest: root })
    }
}

#[async_trait]
impl Module for Copy {
    type Params = CopyParams;
    type State = CopyState;
    const NAME: &'static str = "copy";

    fn doc(&self) -> Doc {
        Doc {
            description: "Write a file on the host from inline `content` or a controller file `src`. The file is \
                          compared byte for byte (by sha1 beyond 1 MiB) and replaced atomically; mode, owner and \
                          group are fixed when they differ. `--diff` shows the text change. A controller directory \
                          as `src` is copied recursively (its contents only when `src` ends with `/`), with \
                          `directory_mode` for the directories created.",
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

- name: Ship a directory of scripts
  copy:
    src: scripts/
    dest: /usr/local/bin
    mode: "0755"
"#,
        }
    }

    fn validate(&self, p: &CopyParams) -> Result<(), String> {
        util::check_validate(p.validate.as_deref())?;
        match (&p.content, &p.src) {
            (Some(_), Some(_)) => Err("content and src are mutually exclusive".into()),
            (Some(_), None) if p.mode == Some(CopyMode::Preserve) => {
                Err("mode: preserve needs src (content has no mode to keep)".into())
            }
            (None, None) => Err("one of content or src is required".into()),
            _ if p.remote_src && p.src.is_none() => Err("remote_src needs src".into()),
            _ => Ok(()),
        }
    }

    async fn probe(&self, ctx: &Ctx<'_>, p: &CopyParams, host: &ReadHost) -> Result<CopyState, ModuleError> {
        let preserve = p.mode == Some(CopyMode::Preserve);
        let mut src_mode = None;
        let want = match (&p.content, &p.src) {
            (Some(c), _) => c.as_bytes().to_vec(),
            (None, Some(src)) if p.remote_src => {
                if preserve {
                    let st = host.inspect_one(pbr_core::PathQuery::new(src.clone()).follow(true)).await?.stat;
                    src_mode = st.map(|s| Mode::Octal(s.mode & 0o7777));
                }
                host.read_file(src)
                    .await?
                    .ok_or_else(|| ModuleError::new(format!("remote src {src} does not exist")))?
            }
            (None, Some(src)) => {
                let path = ctx.find_file("files", src.trim_end_matches('/'))?;
                if path.is_dir() {
                    return self.probe_tree(ctx, p, src, &path, host).await;
                }
                if preserve {
                    src_mode = Some(local_mode(&path)?);
                }
                read_src(ctx, &path, p.decrypt)?
            }
            (None, None) => return Err(ModuleError::new("one of content or src is required")),
        };
        let file = probe_dest(host, &p.dest, p.src.as_deref()).await?;
        let dest = file.path.clone();
        Ok(CopyState { files: vec![ContentState { file, want, force: p.force, src_mode }], dirs: vec![], dest })
    }

    fn plan(&self, p: &CopyParams, st: &CopyState) -> Result<Plan, ModuleError> {
        let mut plan = Plan::empty();
        let dattrs = dir_attrs(p);
        for d in &st.dirs {
            match &d.stat {
                None => {
                    plan.push(pbr_core::Change::create(format!(
                        "create directory {}{}",
                        d.path,
                        util::attrs_suffix(dattrs)
                    )));
                    plan.op(Op::MakeDir { path: d.path.clone(), attrs: util::op_attrs(dattrs) });
                }
                Some(s) if s.kind == "directory" => {
                    let n = plan.changes.len();
                    util::attr_changes(&d.path, dattrs, s, &mut plan);
                    if plan.changes.len() > n {
                        let attrs = util::op_attrs(dattrs);
                        plan.op(Op::SetAttrs { path: d.path.clone(), attrs, recurse: false, link: false });
                    }
                }
                Some(s) => {
                    return Err(ModuleError::new(format!("{} exists and is a {}, not a directory", d.path, s.kind)));
                }
            }
        }
        for f in &st.files {
            plan.extend(plan_content_write(&spec(p, f), f)?);
        }
        Ok(plan)
    }

    async fn report(
        &self,
        _p: &CopyParams,
        st: &CopyState,
        host: &ReadHost,
    ) -> Result<Map<String, Value>, ModuleError> {
        match st.files.as_slice() {
            [one] if st.dirs.is_empty() => written_attrs(host, &one.file.path).await,
            _ => Ok(Map::new()),
        }
    }

    fn data(&self, _p: &CopyParams, st: &CopyState) -> Map<String, Value> {
        match st.files.as_slice() {
            [one] if st.dirs.is_empty() => content_data(one),
            _ => {
                let mut m = Map::new();
                m.insert("dest".into(), Value::String(st.dest.clone()));
                m.insert("files".into(), Value::from(st.files.len()));
                m
            }
        }
    }
}

/// Attributes of directories a tree copy creates: `directory_mode`, owner, group.
fn dir_attrs(p: &CopyParams) -> Attrs<'_> {
    Attrs { mode: p.directory_mode.as_ref(), owner: p.owner.as_deref(), group: p.group.as_deref() }
}

fn spec<'a>(p: &'a CopyParams, f: &'a ContentState) -> ContentSpec<'a> {
    let mode = match &p.mode {
        Some(CopyMode::Mode(m)) => Some(m),
        Some(CopyMode::Preserve) => f.src_mode.as_ref(),
        None => None,
    };
    ContentSpec {
        attrs: Attrs { mode, owner: p.owner.as_deref(), group: p.group.as_deref() },
        backup: p.backup,
        validate: p.validate.as_deref(),
    }
}
