//! `copy`: put a file (inline `content`, a controller `src`, or a file on the host) or a tree on the host.

use crate::util::{self, Attrs, FileState, WriteOpts};
use async_trait::async_trait;
use pbr_core::params::{Mode, bool_lenient};
use pbr_core::{Ctx, Doc, Module, ModuleError, Op, PathInfo, PathQuery, Plan, ReadHost};
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
    /// In a `src` directory, follow symlinks (copy what they point to). A link that cannot be
    /// followed (dangling, a loop, back into the tree being copied) is copied as a link either
    /// way; `false` copies every link as a link.
    #[serde(default = "yes", deserialize_with = "bool_lenient")]
    pub local_follow: bool,
    /// When `dest` is a symlink, write the file it points to instead of replacing the link.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub follow: bool,
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
pub fn local_mode(path: &std::path::Path) -> Result<Mode, ModuleError> {
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
    /// The source's mode, for `mode: preserve`.
    pub src_mode: Option<Mode>,
    /// The source (a controller or a host path), reported as `src`.
    pub src: Option<String>,
}

impl ContentState {
    /// The mode to write: the one asked for, or with `preserve` the source's.
    pub fn mode<'a>(&'a self, asked: Option<&'a CopyMode>) -> Option<&'a Mode> {
        match asked {
            Some(CopyMode::Mode(m)) => Some(m),
            Some(CopyMode::Preserve) => self.src_mode.as_ref(),
            None => None,
        }
    }
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
        data.insert("mode".into(), Value::String(util::result_mode(s.mode)));
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
    if let Some(src) = &st.src {
        m.insert("src".into(), Value::String(src.clone()));
    }
    if let Some(s) = &st.file.stat {
        m.insert("mode".into(), Value::String(util::result_mode(s.mode)));
        m.insert("owner".into(), Value::String(s.owner.clone()));
        m.insert("group".into(), Value::String(s.group.clone()));
        m.insert("uid".into(), Value::from(s.uid));
        m.insert("gid".into(), Value::from(s.gid));
    }
    m
}

/// Probe `dest`; when it is a directory and `src_name` is known, probe `dest/basename` instead.
/// With `follow`, a link is probed (and so written) through to what it points to.
pub async fn probe_dest(
    host: &ReadHost,
    dest: &str,
    src_name: Option<&str>,
    follow: bool,
) -> Result<FileState, ModuleError> {
    let base = src_name.map(|s| s.trim_end_matches('/').rsplit('/').next().unwrap_or(s).to_string());
    if dest.ends_with('/') {
        let Some(b) = base else {
            return Err(ModuleError::new(format!("dest {dest} is a directory: give a file name")));
        };
        return util::probe_file(host, &format!("{dest}{b}"), true, follow).await;
    }
    let st = util::probe_file(host, dest, true, follow).await?;
    let is_dir = st.kind() == Some("directory") || st.target.as_ref().is_some_and(|t| t.kind == "directory");
    if is_dir {
        if let Some(b) = base {
            return util::probe_file(host, &format!("{dest}/{b}"), true, follow).await;
        }
        return Err(ModuleError::new(format!("dest {dest} is a directory")));
    }
    Ok(st)
}

pub struct Copy;

/// What `copy` learned: one file, or a tree (`src` a directory).
#[derive(Debug, Clone)]
pub struct CopyState {
    pub files: Vec<ContentState>,
    /// Destination directories of a tree copy, probed.
    pub dirs: Vec<FileState>,
    /// Links of a tree copy kept as links: the destination, probed, and the link's target.
    pub links: Vec<(FileState, String)>,
    /// The destination root reported as `dest`.
    pub dest: String,
    /// The source, reported as `src`.
    pub src: Option<String>,
}

/// What is below a `src` directory (paths relative to it, sorted).
#[derive(Debug, Default, PartialEq)]
struct Tree {
    dirs: Vec<String>,
    files: Vec<String>,
    /// Symlinks copied as links: (path, target as written).
    links: Vec<(String, String)>,
}

impl Tree {
    fn sort(mut self) -> Tree {
        self.dirs.sort();
        self.files.sort();
        self.links.sort();
        self
    }
}

/// The tree below a controller directory. With `follow`, links are followed where they can be:
/// one that is dangling, loops, or leads back to a directory being walked stays a link.
fn walk_local(root: &std::path::Path, follow: bool) -> Result<Tree, ModuleError> {
    let err = |p: &std::path::Path, e: std::io::Error| ModuleError::new(format!("cannot read {}: {e}", p.display()));
    let mut tree = Tree::default();
    let top = std::fs::canonicalize(root).map_err(|e| err(root, e))?;
    let mut stack = vec![(root.to_path_buf(), String::new(), vec![top])];
    while let Some((dir, rel, ancestors)) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|e| err(&dir, e))?;
        let mut entries: Vec<_> = rd.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let r = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            let path = e.path();
            let lmd = std::fs::symlink_metadata(&path).map_err(|x| err(&path, x))?;
            let is_link = lmd.file_type().is_symlink();
            let md = if is_link && follow { std::fs::metadata(&path).ok() } else { Some(lmd) };
            let keep_link = |tree: &mut Tree| -> Result<(), ModuleError> {
                let to = std::fs::read_link(&path).map_err(|x| err(&path, x))?;
                tree.links.push((r.clone(), to.to_string_lossy().into_owned()));
                Ok(())
            };
            match md {
                Some(_) if is_link && !follow => keep_link(&mut tree)?,
                // dangling, or a loop of links
                None => keep_link(&mut tree)?,
                Some(m) if m.is_dir() => {
                    let real = std::fs::canonicalize(&path).map_err(|x| err(&path, x))?;
                    if ancestors.contains(&real) {
                        // back into the tree being walked: a link, or it would never end
                        keep_link(&mut tree)?;
                    } else {
                        tree.dirs.push(r.clone());
                        let mut a = ancestors.clone();
                        a.push(real);
                        stack.push((path, r, a));
                    }
                }
                Some(_) => tree.files.push(r),
            }
        }
    }
    Ok(tree.sort())
}

/// The shell listing of a directory on the host, one entry a line: `d PATH`, `f PATH` or
/// `l PATH<TAB>TARGET` (paths relative to it). With `follow`, links are followed where they
/// can be (`find -L`), and a dangling one is listed as a link.
fn remote_walk_script(src: &str, follow: bool) -> String {
    let q = pbr_core::sh_quote(src);
    let (find, classify) = if follow {
        (
            "find -L . ! -name .",
            r#"if [ -d "$p" ]; then echo "d $p"; elif [ -e "$p" ]; then echo "f $p"; else printf 'l %s	%s
' "$p" "$(readlink "$p")"; fi"#,
        )
    } else {
        (
            "find . ! -name .",
            r#"if [ -L "$p" ]; then printf 'l %s	%s
' "$p" "$(readlink "$p")"; elif [ -d "$p" ]; then echo "d $p"; else echo "f $p"; fi"#,
        )
    };
    format!("cd -- {q} && {find} 2>/dev/null | while IFS= read -r p; do p=${{p#./}}; {classify}; done")
}

/// [`remote_walk_script`]'s output.
fn parse_remote_walk(out: &str) -> Tree {
    let mut tree = Tree::default();
    for line in out.lines() {
        match line.split_once(' ') {
            Some(("d", p)) => tree.dirs.push(p.to_string()),
            Some(("f", p)) => tree.files.push(p.to_string()),
            Some(("l", rest)) => {
                let (p, to) = rest.split_once('\t').unwrap_or((rest, ""));
                tree.links.push((p.to_string(), to.to_string()));
            }
            _ => {}
        }
    }
    tree.sort()
}

impl Copy {
    /// A tree copy: `src` is a directory, on the controller (`local`) or on the host.
    async fn probe_tree(
        &self,
        ctx: &Ctx<'_>,
        p: &CopyParams,
        src: &str,
        local: Option<&std::path::Path>,
        host: &ReadHost,
    ) -> Result<CopyState, ModuleError> {
        let dest = p.dest.trim_end_matches('/');
        let root = if src.ends_with('/') {
            dest.to_string()
        } else {
            let base = src.trim_end_matches('/').rsplit('/').next().unwrap_or(src);
            format!("{dest}/{base}")
        };
        let tree = match local {
            Some(l) => walk_local(l, p.local_follow)?,
            None => {
                let out = host.query_sh(remote_walk_script(src, p.local_follow)).await?;
                if out.rc != 0 {
                    return Err(ModuleError::new(format!(
                        "cannot list {src} on the host: {}",
                        out.stderr_str().trim()
                    )));
                }
                parse_remote_walk(&out.stdout_str())
            }
        };
        let mut paths = vec![root.clone()];
        paths.extend(tree.dirs.iter().map(|d| format!("{root}/{d}")));
        let ndirs = paths.len();
        paths.extend(tree.files.iter().map(|f| format!("{root}/{f}")));
        let nfiles = paths.len();
        paths.extend(tree.links.iter().map(|(l, _)| format!("{root}/{l}")));
        let mut qs: Vec<PathQuery> = paths.iter().map(|p| PathQuery::new(p.clone()).content(true)).collect();
        // a tree on the host: its files' bytes and modes come in the same query as the
        // destination's (one round trip for the whole tree)
        let srcs: Vec<String> = match local {
            Some(_) => vec![],
            None => tree.files.iter().map(|rel| format!("{}/{rel}", src.trim_end_matches('/'))).collect(),
        };
        qs.extend(srcs.iter().map(|s| PathQuery::new(s.clone()).content(true).follow(true)));
        let mut probed = host.inspect(&qs).await?;
        let src_states = probed.split_off(paths.len());
        let link_states = probed.split_off(nfiles);
        let file_states = probed.split_off(ndirs);
        let preserve = p.mode == Some(CopyMode::Preserve);
        let mut out = vec![];
        for (i, (rel, file)) in tree.files.iter().zip(file_states).enumerate() {
            let (want, src_mode) = match local {
                Some(l) => {
                    let lp = l.join(rel);
                    let mode = if preserve { Some(local_mode(&lp)?) } else { None };
                    (read_src(ctx, &lp, p.decrypt)?, mode)
                }
                None => {
                    let st = &src_states[i];
                    let mode = st.stat.as_ref().filter(|_| preserve).map(|s| Mode::Octal(s.mode & 0o7777));
                    (remote_bytes(host, st).await?, mode)
                }
            };
            out.push(ContentState { file, want, force: p.force, src_mode, src: None });
        }
        let links = link_states.into_iter().zip(tree.links.into_iter().map(|(_, to)| to)).collect();
        let shown = local.map(|l| l.display().to_string()).unwrap_or_else(|| src.to_string());
        Ok(CopyState { files: out, dirs: probed, links, dest: root, src: Some(shown) })
    }
}

/// The bytes of a file on the host as an inspection found them; one over the inspection's
/// read limit (only its sha1 came back) is read whole.
async fn remote_bytes(host: &ReadHost, st: &PathInfo) -> Result<Vec<u8>, ModuleError> {
    match (&st.stat, &st.content) {
        (None, _) => Err(ModuleError::new(format!("remote src {} does not exist", st.path))),
        (Some(_), Some(b)) => Ok(b.clone()),
        (Some(_), None) => host
            .read_file(&st.path)
            .await?
            .ok_or_else(|| ModuleError::new(format!("remote src {} does not exist", st.path))),
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
                          group are fixed when they differ. `--diff` shows the text change. A directory as `src` \
                          (on the controller, or on the host with `remote_src`) is copied recursively (its \
                          contents only when `src` ends with `/`), with `directory_mode` for the directories \
                          created; its symlinks are followed (`local_follow`) except those that cannot be \
                          (dangling, a loop, back up the tree), which are copied as links.",
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
        let mut shown = None;
        let want = match (&p.content, &p.src) {
            (Some(c), _) => c.as_bytes().to_vec(),
            (None, Some(src)) if p.remote_src => {
                let info = host.inspect_one(PathQuery::new(src.clone()).follow(true).content(true)).await?;
                match &info.stat {
                    None => return Err(ModuleError::new(format!("remote src {src} does not exist"))),
                    Some(s) if s.kind == "directory" => return self.probe_tree(ctx, p, src, None, host).await,
                    Some(s) if preserve => src_mode = Some(Mode::Octal(s.mode & 0o7777)),
                    Some(_) => {}
                }
                shown = Some(src.clone());
                remote_bytes(host, &info).await?
            }
            (None, Some(src)) => {
                let path = ctx.find_file("files", src.trim_end_matches('/'))?;
                if path.is_dir() {
                    return self.probe_tree(ctx, p, src, Some(&path), host).await;
                }
                if preserve {
                    src_mode = Some(local_mode(&path)?);
                }
                shown = Some(path.display().to_string());
                read_src(ctx, &path, p.decrypt)?
            }
            (None, None) => return Err(ModuleError::new("one of content or src is required")),
        };
        let file = probe_dest(host, &p.dest, p.src.as_deref(), p.follow).await?;
        let dest = file.path.clone();
        Ok(CopyState {
            files: vec![ContentState { file, want, force: p.force, src_mode, src: shown.clone() }],
            dirs: vec![],
            links: vec![],
            dest,
            src: shown,
        })
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
        for (d, to) in &st.links {
            let q = pbr_core::sh_quote(&d.path);
            let ln = format!("ln -sfn -- {} {q}", pbr_core::sh_quote(to));
            match &d.stat {
                Some(s) if s.kind == "link" && s.link_target.as_deref() == Some(to.as_str()) => {}
                Some(s) if s.kind == "directory" => {
                    return Err(ModuleError::new(format!("{} is a directory, not the link to {to} in src", d.path)));
                }
                Some(_) => {
                    plan.push(pbr_core::Change::new(format!("{} becomes a link to {to}", d.path)));
                    plan.op(Op::run(format!("link {}", d.path), format!("rm -f -- {q} && {ln}")));
                }
                None => {
                    plan.push(pbr_core::Change::create(format!("link {} -> {to}", d.path)));
                    plan.op(Op::run(format!("link {}", d.path), ln));
                }
            }
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
            [one] if st.dirs.is_empty() && st.links.is_empty() => written_attrs(host, &one.file.path).await,
            _ => Ok(Map::new()),
        }
    }

    fn data(&self, _p: &CopyParams, st: &CopyState) -> Map<String, Value> {
        let mut m = match st.files.as_slice() {
            [one] if st.dirs.is_empty() && st.links.is_empty() => content_data(one),
            _ => {
                let mut m = Map::new();
                m.insert("dest".into(), Value::String(st.dest.clone()));
                m.insert("files".into(), Value::from(st.files.len()));
                m
            }
        };
        if let Some(s) = &st.src {
            m.insert("src".into(), Value::String(s.clone()));
        }
        m
    }
}

/// Attributes of directories a tree copy creates: `directory_mode`, owner, group.
fn dir_attrs(p: &CopyParams) -> Attrs<'_> {
    Attrs { mode: p.directory_mode.as_ref(), owner: p.owner.as_deref(), group: p.group.as_deref() }
}

fn spec<'a>(p: &'a CopyParams, f: &'a ContentState) -> ContentSpec<'a> {
    ContentSpec {
        attrs: Attrs { mode: f.mode(p.mode.as_ref()), owner: p.owner.as_deref(), group: p.group.as_deref() },
        backup: p.backup,
        validate: p.validate.as_deref(),
    }
}
