//! `file`: directories, symlinks, hard links, empty files, absence, and attributes.

use crate::util::params_with_file_attrs;
use crate::util::{self, Attrs, STAT_FMT, take_line};
use async_trait::async_trait;
use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use pbr_core::params::{bool_lenient, opt_bool_lenient};
use pbr_core::{Change, Ctx, Diff, Doc, FileStat, Module, ModuleError, Op, PathQuery, Plan, ReadHost, sh_quote};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    File,
    Directory,
    Link,
    Hard,
    Touch,
    Absent,
}

fn yes() -> bool {
    true
}

params_with_file_attrs! {
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileParams {
    /// The path to manage.
    #[serde(alias = "dest", alias = "name")]
    pub path: String,
    /// What the path should be. `file` only fixes attributes of an existing file; `touch`
    /// creates an empty file when missing; `link`/`hard` point the path at `src`; `absent`
    /// removes it (recursively for directories). Default: the path's current kind, else `file`.
    #[serde(default)]
    pub state: Option<FileKind>,
    /// Target of the link (`state: link` or `hard`).
    #[serde(default)]
    pub src: Option<String>,
    /// With `state: directory`, set mode/owner/group on everything below the path too.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub recurse: bool,
    /// With `link`/`hard`, replace an existing file (or a link elsewhere) at the path.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub force: bool,
    /// Apply attributes to a symlink's target rather than the link (for `file`/`touch`).
    #[serde(default = "yes", deserialize_with = "bool_lenient")]
    pub follow: bool,
    /// File-system flags as `lsattr` shows them, set with `chattr`: `+i` adds, `-i` removes,
    /// `i` (or `=i`) makes them exactly these. Compared as a set: unlike Ansible, `-A` on a file
    /// without `A`, or `+A` on one with `A` and other flags, is no change.
    #[serde(default, alias = "attr")]
    pub attributes: Option<String>,
    /// The access time: `preserve` (the default; `now` for `touch`, as in Ansible), `now` (a
    /// change on every run), or a time in `access_time_format`, in the host's local time.
    #[serde(default)]
    pub access_time: Option<String>,
    /// The format of `access_time` (Python's strftime codes).
    #[serde(default = "time_format")]
    pub access_time_format: String,
    /// The modification time: `preserve` (the default; `now` for `touch`, as in Ansible), `now`,
    /// or a time in `modification_time_format`, in the host's local time.
    #[serde(default)]
    pub modification_time: Option<String>,
    /// The format of `modification_time` (Python's strftime codes).
    #[serde(default = "time_format")]
    pub modification_time_format: String,
    /// Ansible's internal `_diff_peek` (its `--diff` asks it): change nothing, say whether the
    /// file looks binary (`appears_binary`).
    #[serde(default, rename = "_diff_peek", deserialize_with = "opt_bool_lenient")]
    #[schemars(skip)]
    pub diff_peek: Option<bool>,
}
}

impl FileParams {
    /// `access_time` as it applies: `touch` means `now` unless it says otherwise (Ansible's
    /// default, so a `touch` task changes on every run; `preserve` keeps the times).
    fn atime(&self) -> Option<&str> {
        self.access_time.as_deref().or((self.state == Some(FileKind::Touch)).then_some("now"))
    }

    /// `modification_time` as it applies (see [`Self::atime`]).
    fn mtime(&self) -> Option<&str> {
        self.modification_time.as_deref().or((self.state == Some(FileKind::Touch)).then_some("now"))
    }
}

fn time_format() -> String {
    "%Y%m%d%H%M.%S".into()
}

/// A wanted access or modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WantTime {
    Now,
    At(NaiveDateTime),
}

/// `preserve` (None), `now`, or a time parsed with its format, as Ansible's file module does.
pub fn want_time(v: Option<&str>, format: &str) -> Result<Option<WantTime>, String> {
    match v {
        None | Some("preserve") => Ok(None),
        Some("now") => Ok(Some(WantTime::Now)),
        Some(t) => NaiveDateTime::parse_from_str(t, format)
            .or_else(|_| NaiveDate::parse_from_str(t, format).map(|d| d.and_time(NaiveTime::MIN)))
            .map(|t| Some(WantTime::At(t)))
            .map_err(|e| format!("Error while obtaining timestamp for time {t} using format {format}: {e}")),
    }
}

/// The flags of `attributes`: the operator (`+`, `-` or `=`) and the letters.
pub fn want_flags(a: &str) -> (char, BTreeSet<char>) {
    let (op, rest) = match a.chars().next() {
        Some(c @ ('+' | '-' | '=')) => (c, &a[1..]),
        _ => ('=', a),
    };
    (op, rest.chars().filter(|c| *c != '-' && !c.is_whitespace()).collect())
}

/// One entry below a directory (for `recurse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    pub path: String,
    pub stat: FileStat,
}

#[derive(Debug, Clone, Default)]
pub struct FileState {
    /// `lstat` of the path.
    pub lstat: Option<FileStat>,
    /// `stat` through links (when the path is a link to an existing target).
    pub target: Option<FileStat>,
    /// `device:inode` of the path and of `src` (for hard links).
    pub inode: Option<String>,
    pub src_inode: Option<String>,
    /// Whether `src` exists, through links (for symlinks).
    pub src_exists: bool,
    /// Entries below a directory (with `recurse`).
    pub tree: Vec<TreeEntry>,
    /// Number of entries below a directory about to be removed.
    pub contents: usize,
    /// The directories and the other entries below it (absolute paths), for Ansible's
    /// `path_content` in the diff of its removal.
    pub content_lists: (Vec<String>, Vec<String>),
    /// Access and modification times in the host's local time (when `access_time` or
    /// `modification_time` asks for a time).
    pub times: Option<(NaiveDateTime, NaiveDateTime)>,
    /// The `lsattr` flags (when `attributes` is set).
    pub flags: Option<BTreeSet<char>>,
    /// `_diff_peek`: whether the file's first 8 KiB hold a NUL byte.
    pub appears_binary: Option<bool>,
    /// In check mode: the owner and group that do not exist (yet), as Ansible's warnings.
    pub warnings: Vec<String>,
}

fn kind_name(k: &str) -> &str {
    match k {
        "file" => "a file",
        "directory" => "a directory",
        "link" => "a symlink",
        _ => k,
    }
}

/// Parse the probe output: sections separated by tag lines.
pub fn parse_probe(path: &str, out: &[u8]) -> Result<FileState, ModuleError> {
    let bad = |l: &str| ModuleError::new(format!("cannot parse the probe of {path}: {l:?}"));
    let mut st = FileState::default();
    let mut rest = out;
    while !rest.is_empty() {
        let (line, r) = take_line(rest);
        rest = r;
        let (tag, val) = line.split_once(' ').unwrap_or((line, ""));
        match tag {
            "L" | "T" => {
                let (link, r) = take_line(rest);
                rest = r;
                let s = util::parse_stat_line(val, Some(link)).ok_or_else(|| bad(val))?;
                if tag == "L" {
                    st.lstat = Some(s);
                } else {
                    st.target = Some(s);
                }
            }
            "I" => st.inode = Some(val.to_string()),
            "S" => {
                st.src_exists = true;
                st.src_inode = Some(val.to_string())
            }
            "E" => {
                let (name, r) = take_line(rest);
                rest = r;
                let s = util::parse_stat_line(val, None).ok_or_else(|| bad(val))?;
                st.tree.push(TreeEntry { path: name.to_string(), stat: s });
            }
            "" => {}
            _ => return Err(bad(line)),
        }
    }
    Ok(st)
}

pub struct File;

impl File {
    fn wanted(p: &FileParams, st: &FileState) -> FileKind {
        match p.state {
            Some(k) => k,
            None => match st.lstat.as_ref().map(|s| s.kind.as_str()) {
                Some("directory") => FileKind::Directory,
                Some("link") => FileKind::Link,
                _ if p.recurse => FileKind::Directory,
                _ if p.src.is_some() && st.lstat.is_none() => FileKind::Link,
                _ => FileKind::File,
            },
        }
    }
}

fn attrs(p: &FileParams) -> Attrs<'_> {
    p.attrs()
}

/// In check mode, an owner or group that does not exist may be made by an earlier task that
/// did not run: Ansible's words for each, as warnings (one query for both).
async fn unknown_owners(p: &FileParams, host: &ReadHost) -> Result<Vec<String>, ModuleError> {
    let mut script = String::new();
    let mut asked = vec![];
    for (db, name, what) in [("passwd", &p.owner, "user"), ("group", &p.group, "group")] {
        let Some(n) = name else { continue };
        let numeric = n.chars().all(|c| c.is_ascii_digit());
        let test = if numeric {
            format!("getent {db} {n} >/dev/null || awk -F: '$3 == {n} {{ f = 1 }} END {{ exit !f }}' /etc/{db}")
        } else {
            format!("getent {db} {0} >/dev/null || grep -q \"^{0}:\" /etc/{db}", sh_quote(n))
        };
        script.push_str(&format!("{{ {test}; }} || echo {what}; "));
        asked.push((what, n, numeric));
    }
    if asked.is_empty() {
        return Ok(vec![]);
    }
    let out = host.query_sh(script).await?.stdout_str();
    let missing: Vec<&str> = out.lines().collect();
    Ok(asked
        .into_iter()
        .filter(|(what, _, _)| missing.contains(what))
        .map(|(what, n, numeric)| {
            let id = if what == "user" { "uid" } else { "gid" };
            let who = if numeric { format!("with {id} {n}") } else { n.to_string() };
            format!("failed to look up {what} {who}. Create {what} up to this point in real play")
        })
        .collect())
}

/// Mode, owner and group on what the links below `path` point to (a dangling link is left).
fn follow_links_script(path: &str, a: &pbr_core::op::Attrs) -> String {
    let q = sh_quote(path);
    let mut s = format!("if find {q} -mindepth 1 -type l | grep -q .; then ");
    if let Some(m) = &a.mode {
        let m = sh_quote(&pbr_core::op::chmod_arg(m));
        s.push_str(&format!("find -L {q} -mindepth 1 ! -type l -exec chmod {m} {{}} + || exit 1; "));
    }
    if let Some(og) = pbr_core::op::chown_arg(a) {
        s.push_str(&format!("find -L {q} -mindepth 1 ! -type l -exec chown {} {{}} + || exit 1; ", sh_quote(&og)));
    }
    s.push_str("fi");
    s
}

/// The target a link should have: `src`, else (no `src`, the path a link already) its own.
fn link_src<'a>(p: &'a FileParams, st: &'a FileState) -> &'a str {
    match (&p.src, &st.lstat) {
        (Some(s), _) => s,
        (None, Some(l)) if l.kind == "link" => l.link_target.as_deref().unwrap_or(""),
        (None, _) => "",
    }
}

/// For a plain link created relative to the path's directory: the target as `stat` sees it.
fn link_src_abs(path: &str, src: &str) -> String {
    if src.starts_with('/') {
        return src.to_string();
    }
    match path.rfind('/') {
        Some(i) => format!("{}/{src}", &path[..i]),
        None => src.to_string(),
    }
}

#[async_trait]
impl Module for File {
    type Params = FileParams;
    type State = FileState;
    const NAME: &'static str = "file";

    fn doc(&self) -> Doc {
        Doc {
            description: "Manage a path's kind and attributes: create directories (with parents), symlinks and \
                          hard links, create empty files (`touch`), fix mode/owner/group (recursively with \
                          `recurse`), file-system flags (`attributes`, chattr) and times (`access_time`, \
                          `modification_time`), or remove the path. `touch` sets both times to now, a change on \
                          every run, as in Ansible (`access_time: preserve` and `modification_time: preserve` \
                          make it change only when the file is missing). Differs from Ansible on purpose: \
                          `attributes` compares flags as a set (Ansible reports a change for every `-x`, and \
                          for `+x` on a file with other flags).",
            examples: r#"- name: A directory for the app
  file:
    path: /srv/app
    state: directory
    owner: pi
    mode: "0755"

- name: Point the current release at v2
  file:
    src: /srv/app/releases/v2
    dest: /srv/app/current
    state: link

- name: Remove the old cache
  file:
    path: /var/cache/app
    state: absent
"#,
        }
    }

    fn validate(&self, p: &FileParams) -> Result<(), String> {
        match p.state {
            // Ansible's words; a link without `src` may keep its own target (see plan)
            Some(FileKind::Hard) if p.src.is_none() => Err("src is required for creating new hardlinks".into()),
            Some(FileKind::File | FileKind::Directory | FileKind::Touch | FileKind::Absent) if p.src.is_some() => {
                Err("src is only used with state=link or state=hard".into())
            }
            _ if p.recurse && !matches!(p.state, None | Some(FileKind::Directory)) => {
                Err("recurse needs state=directory".into())
            }
            _ => {
                want_time(p.atime(), &p.access_time_format)?;
                want_time(p.mtime(), &p.modification_time_format)?;
                if let Some(a) = &p.attributes
                    && let Some(c) =
                        a.trim_start_matches(['+', '-', '=']).chars().find(|c| !c.is_ascii_alphabetic() && *c != '-')
                {
                    return Err(format!("attributes {a:?}: {c:?} is not a chattr flag (letters such as i, a, A, d)"));
                }
                Ok(())
            }
        }
    }

    /// A time set to `now` changes on every run.
    fn convergent(&self, p: &FileParams) -> bool {
        p.atime() != Some("now") && p.mtime() != Some("now")
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &FileParams, host: &ReadHost) -> Result<FileState, ModuleError> {
        if p.diff_peek == Some(true) {
            let me = host.inspect_one(PathQuery::new(p.path.clone()).content(true)).await?;
            let peek = me.content.as_deref().map(|b| b[..b.len().min(8192)].contains(&0));
            return Ok(FileState { lstat: me.stat, appears_binary: Some(peek.unwrap_or(false)), ..Default::default() });
        }
        let mut st = probe_kind(p, host).await?;
        if _ctx.check {
            st.warnings = unknown_owners(p, host).await?;
        }
        let times = want_time(p.atime(), &p.access_time_format).ok().flatten().is_some_and(|t| t != WantTime::Now)
            || want_time(p.mtime(), &p.modification_time_format).ok().flatten().is_some_and(|t| t != WantTime::Now);
        let flags = p.attributes.is_some();
        if st.lstat.is_some() && (times || flags) && p.state != Some(FileKind::Absent) {
            // through a link unless follow is off (as os.stat and chattr see it)
            let t = if p.follow { "$(readlink -f -- \"$p\")" } else { "$p" };
            let mut s = format!("p={}; t={t}; ", sh_quote(&p.path));
            if times {
                s.push_str(
                    "printf 'X '; stat -c '%x' -- \"$t\" || exit 1; printf 'Y '; stat -c '%y' -- \"$t\" || exit 1; ",
                );
            }
            if flags {
                s.push_str("printf 'F '; lsattr -d -- \"$t\" || exit 1; ");
            }
            let out = host.query_sh(s).await?;
            if out.rc != 0 {
                return Err(ModuleError::new(format!(
                    "cannot read the times or attributes of {}: {}",
                    p.path,
                    out.stderr_str().trim()
                )));
            }
            parse_extra(&p.path, &out.stdout_str(), &mut st)?;
        }
        Ok(st)
    }

    fn plan(&self, p: &FileParams, st: &FileState) -> Result<Plan, ModuleError> {
        if p.diff_peek == Some(true) {
            return Ok(Plan::empty());
        }
        let mut plan = plan_changes(p, st)?;
        let extras = extras(p, st)?;
        if !plan.is_empty() || !extras.is_empty() {
            plan.ops = if plan.is_empty() { vec![] } else { ops(p, st) };
            for (c, op) in extras {
                plan.push(c);
                plan.ops.push(op);
            }
        }
        Ok(plan)
    }

    fn data(&self, p: &FileParams, st: &FileState) -> Map<String, Value> {
        let mut m = path_data(&p.path, st.lstat.as_ref());
        // a removal's diff in Ansible's shape (a directory's entries under `path_content`)
        if let (FileKind::Absent, Some(cur)) = (File::wanted(p, st), st.lstat.as_ref()) {
            let mut before = serde_json::json!({"path": p.path, "state": cur.kind});
            if cur.kind == "directory" {
                before["path_content"] =
                    serde_json::json!({"directories": st.content_lists.0, "files": st.content_lists.1});
            }
            m.insert(
                "_diff".into(),
                serde_json::json!({"before": before, "after": {"path": p.path, "state": "absent"}}),
            );
        }
        if let Some(b) = st.appears_binary {
            m.insert("appears_binary".into(), Value::Bool(b));
        }
        if !st.warnings.is_empty() {
            m.insert("warnings".into(), serde_json::json!(st.warnings));
        }
        m
    }

    /// After a change: the path as it now is (Ansible reports the new state, mode, owner...).
    async fn report(
        &self,
        p: &FileParams,
        _st: &FileState,
        host: &ReadHost,
    ) -> Result<Map<String, Value>, ModuleError> {
        let now = host.inspect_one(PathQuery::new(p.path.clone())).await?.stat;
        Ok(path_data(&p.path, now.as_ref()))
    }
}

/// Parse the `X`/`Y` (stat's `%x`/`%y`) and `F` (lsattr) lines of the times-and-flags probe.
pub fn parse_extra(path: &str, out: &str, st: &mut FileState) -> Result<(), ModuleError> {
    let bad = |l: &str| ModuleError::new(format!("cannot parse the times or attributes of {path}: {l:?}"));
    let stamp = |v: &str| {
        // `2026-12-07 15:04:05.123456789 +0000`: the host's local time
        let local = v.rsplit_once(' ').map_or(v, |(t, _)| t);
        NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M:%S%.f").map_err(|_| bad(v))
    };
    let (mut a, mut m) = (None, None);
    for line in out.lines() {
        match line.split_once(' ') {
            Some(("X", v)) => a = Some(stamp(v)?),
            Some(("Y", v)) => m = Some(stamp(v)?),
            Some(("F", v)) => {
                let f = v.split_whitespace().next().ok_or_else(|| bad(line))?;
                st.flags = Some(f.chars().filter(|c| *c != '-').collect());
            }
            _ if line.is_empty() => {}
            _ => return Err(bad(line)),
        }
    }
    if let (Some(a), Some(m)) = (a, m) {
        st.times = Some((a, m));
    }
    Ok(())
}

/// Flags that `lsattr` shows and `chattr` cannot change (chattr(1)).
const READ_ONLY_FLAGS: &str = "eEhINV";

fn flags_str(f: &BTreeSet<char>) -> String {
    if f.is_empty() { "none".into() } else { f.iter().collect() }
}

/// Time and flag changes, each with its op (`touch -a`/`-m`, `chattr`): after the path's kind
/// and attributes, once the path exists.
fn extras(p: &FileParams, st: &FileState) -> Result<Vec<(Change, Op)>, ModuleError> {
    let mut v = vec![];
    if File::wanted(p, st) == FileKind::Absent {
        return Ok(v);
    }
    let path = &p.path;
    let q = sh_quote(path);
    let h = if p.follow { "" } else { "-h " };
    let at = want_time(p.atime(), &p.access_time_format).map_err(ModuleError::new)?;
    let mt = want_time(p.mtime(), &p.modification_time_format).map_err(ModuleError::new)?;
    // a file `touch` creates has its times now already
    let (at, mt) = if st.lstat.is_none() && p.state == Some(FileKind::Touch) {
        (at.filter(|w| *w != WantTime::Now), mt.filter(|w| *w != WantTime::Now))
    } else {
        (at, mt)
    };
    let cur = st.times;
    for (w, cur, flag, name) in [(at, cur.map(|t| t.0), "-a", "access"), (mt, cur.map(|t| t.1), "-m", "modification")] {
        let from = cur.map_or(String::new(), |c| format!("{c} "));
        let (change, stamp) = match w {
            Some(WantTime::Now) => (Change::run(format!("{path}: {name} time → now")), String::new()),
            Some(WantTime::At(t)) if cur != Some(t) => {
                (Change::new(format!("{path}: {name} time {from}→ {t}")), format!("-t {} ", t.format("%Y%m%d%H%M.%S")))
            }
            _ => continue,
        };
        v.push((
            change,
            Op::run(format!("set the {name} time of {path}"), format!("touch -c {h}{flag} {stamp}-- {q}")),
        ));
    }
    if let Some(a) = &p.attributes {
        let (op, want) = want_flags(a);
        let cur = st.flags.clone().unwrap_or_default();
        let after: BTreeSet<char> = match op {
            '+' => cur.union(&want).copied().collect(),
            '-' => cur.difference(&want).copied().collect(),
            // flags that only the file system sets (`e` extents...) stay what they are
            _ => want.union(&cur.iter().copied().filter(|c| READ_ONLY_FLAGS.contains(*c)).collect()).copied().collect(),
        };
        if !want.is_empty() && after != cur {
            let (before, after) = (flags_str(&cur), flags_str(&after));
            let letters: String = want.iter().collect();
            v.push((
                Change::new(format!("{path}: attributes {before} → {after}")).with_diff(Diff::state(
                    path,
                    &[("attributes".to_string(), before)],
                    &[("attributes".to_string(), after)],
                )),
                Op::run(format!("set the attributes of {path}"), format!("chattr {op}{letters} -- {q}")),
            ));
        }
    }
    Ok(v)
}

/// The path's kind (and, for hard links and `recurse`, inodes and the tree below).
async fn probe_kind(p: &FileParams, host: &ReadHost) -> Result<FileState, ModuleError> {
    // hard links (inodes) and recursion (a walk) need the shell (`recurse` implies a
    // directory, so neither is a symlink nor absence); the rest is inspection
    if !p.recurse && p.state != Some(FileKind::Hard) {
        let mut qs = vec![PathQuery::new(p.path.clone()).target()];
        let src = match (&p.state, &p.src) {
            (Some(FileKind::Link), Some(src)) => Some(link_src_abs(&p.path, src)),
            _ => None,
        };
        if let Some(src) = &src {
            qs.push(PathQuery::new(src.clone()).target());
        }
        let mut v = host.inspect(&qs).await?.into_iter();
        let me = v.next().unwrap_or_default();
        let mut st = FileState { lstat: me.stat, target: me.target, ..Default::default() };
        if let Some(s) = v.next() {
            st.src_exists = s.kind().is_some_and(|k| k != "link") || s.target.is_some();
        }
        // a directory to remove, or to replace by a link (only when empty, as Ansible)
        let counted = p.state == Some(FileKind::Absent) || (p.state == Some(FileKind::Link) && p.force);
        if counted && st.lstat.as_ref().is_some_and(|s| s.kind == "directory") {
            let q = sh_quote(&p.path);
            let out = host
                .query_sh(format!("find {q} -mindepth 1 -type d && echo @@ && find {q} -mindepth 1 ! -type d"))
                .await?;
            let text = out.stdout_str();
            let Some((dirs, files)) = text.split_once("@@\n").filter(|_| out.rc == 0) else {
                return Err(ModuleError::new(format!(
                    "cannot list the entries of {}: {}",
                    p.path,
                    out.stderr_str().trim()
                )));
            };
            let lines = |t: &str| -> Vec<String> { t.lines().filter(|l| !l.is_empty()).map(str::to_string).collect() };
            st.content_lists = (lines(dirs), lines(files));
            st.contents = st.content_lists.0.len() + st.content_lists.1.len();
        }
        return Ok(st);
    }
    let q = sh_quote(&p.path);
    let mut s = format!(
        "p={q}; if [ -e \"$p\" ] || [ -L \"$p\" ]; then printf 'L '; stat -c '{STAT_FMT}' -- \"$p\" || exit 1; \
             if [ -L \"$p\" ]; then readlink -- \"$p\"; if [ -e \"$p\" ]; then printf 'T '; \
             stat -L -c '{STAT_FMT}' -- \"$p\" || exit 1; echo; fi; else echo; fi; fi; "
    );
    if p.state == Some(FileKind::Hard)
        && let Some(src) = &p.src
    {
        let src = sh_quote(&link_src_abs(&p.path, src));
        s.push_str(&format!(
            "if [ -e \"$p\" ]; then echo \"I $(stat -c %d:%i -- \"$p\")\"; fi; \
                 if [ -e {src} ]; then echo \"S $(stat -c %d:%i -- {src})\"; fi; "
        ));
    }
    if p.recurse {
        // with `follow`, through the links below (what they point to; a dangling one as itself)
        let (find, stat) = if p.follow {
            ("find -L", format!("stat -L -c \"{STAT_FMT}\" -- \"$f\" 2>/dev/null || stat -c \"{STAT_FMT}\" -- \"$f\""))
        } else {
            ("find", format!("stat -c \"{STAT_FMT}\" -- \"$f\""))
        };
        s.push_str(&format!(
            "if [ -d \"$p\" ] && [ ! -L \"$p\" ]; then {find} \"$p\" -mindepth 1 -exec sh -c \
             'for f; do printf \"E \"; {stat} || exit 1; printf \"%s\\n\" \"$f\"; done' sh {{}} + \
             || exit 1; fi; "
        ));
    }
    let out = host.query_sh(s).await?;
    if out.rc != 0 {
        return Err(ModuleError::new(format!("cannot inspect {}: {}", p.path, out.stderr_str().trim())));
    }
    parse_probe(&p.path, &out.stdout)
}

/// `path`, `state` and, for a path that exists, `mode`, `owner`, `group`, `uid`, `gid`, `size`.
fn path_data(path: &str, st: Option<&FileStat>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("path".into(), Value::String(path.to_string()));
    let state = match st.map(|s| s.kind.as_str()) {
        None => "absent",
        Some("link") => "link",
        Some("directory") => "directory",
        Some(_) => "file",
    };
    m.insert("state".into(), Value::String(state.into()));
    if let Some(s) = st {
        m.insert("mode".into(), Value::String(util::result_mode(s.mode)));
        m.insert("owner".into(), Value::String(s.owner.clone()));
        m.insert("group".into(), Value::String(s.group.clone()));
        m.insert("uid".into(), Value::from(s.uid));
        m.insert("gid".into(), Value::from(s.gid));
        m.insert("size".into(), Value::from(s.size));
    }
    m
}

fn dummy() -> FileStat {
    FileStat {
        kind: "file".into(),
        mode: 0,
        uid: 0,
        gid: 0,
        owner: String::new(),
        group: String::new(),
        size: 0,
        mtime: 0,
        link_target: None,
    }
}

/// What must change, in words.
fn plan_changes(p: &FileParams, st: &FileState) -> Result<Plan, ModuleError> {
    let path = &p.path;
    let want = File::wanted(p, st);
    let cur = st.lstat.as_ref();
    let cur_kind = cur.map(|s| s.kind.as_str());
    let a = attrs(p);
    let mut plan = Plan::empty();
    let state_diff = |before: &str, after: &str| {
        Diff::state(path, &[("state".to_string(), before.to_string())], &[("state".to_string(), after.to_string())])
    };
    match want {
        FileKind::Absent => {
            if let Some(k) = cur_kind {
                let what = if k == "directory" && st.contents > 0 {
                    format!("remove {path} (directory with {} entries)", st.contents)
                } else {
                    format!("remove {path}")
                };
                plan.push(Change::remove(what).with_diff(state_diff(k, "absent")));
            }
        }
        FileKind::File => match (cur_kind, &st.target) {
            (None, _) => {
                // with Ansible's result keys (playbooks check `state`)
                let mut data = Map::new();
                data.insert("path".into(), Value::String(path.clone()));
                data.insert("state".into(), Value::String("absent".into()));
                if !st.warnings.is_empty() {
                    data.insert("warnings".into(), serde_json::json!(st.warnings));
                }
                return Err(ModuleError::new(format!(
                    "file ({path}) is absent, cannot continue (use state=touch to create it)"
                ))
                .with_data(data));
            }
            (Some("link"), Some(t)) if p.follow => util::attr_changes(path, a, t, &mut plan),
            (Some("file"), _) => util::attr_changes(path, a, cur.unwrap_or(&dummy()), &mut plan),
            (Some(k), _) => {
                return Err(ModuleError::new(format!("{path} is {}, not a file", kind_name(k))));
            }
        },
        FileKind::Touch => match (cur_kind, &st.target) {
            (None, _) => plan.push(
                Change::create(format!("create empty file {path}{}", util::attrs_suffix(a)))
                    .with_diff(state_diff("absent", "file")),
            ),
            (Some("link"), Some(t)) if p.follow => util::attr_changes(path, a, t, &mut plan),
            (Some(_), _) => util::attr_changes(path, a, cur.unwrap_or(&dummy()), &mut plan),
        },
        FileKind::Directory => match (cur_kind, &st.target) {
            (None, _) => plan.push(
                Change::create(format!("create directory {path}{}", util::attrs_suffix(a)))
                    .with_diff(state_diff("absent", "directory")),
            ),
            (Some("directory"), _) => {
                util::attr_changes(path, a, cur.unwrap_or(&dummy()), &mut plan);
                if p.recurse {
                    let mut n = 0;
                    for e in &st.tree {
                        let mut sub = Plan::empty();
                        let link = e.stat.kind == "link";
                        util::attr_changes(&e.path, a, &e.stat, &mut sub);
                        if !sub.is_empty() && !link {
                            n += 1;
                        }
                    }
                    if n > 0 {
                        plan.push(Change::new(format!("{path}: fix mode/owner/group of {n} entries below")));
                    }
                }
            }
            (Some("link"), Some(t)) if t.kind == "directory" && p.follow => util::attr_changes(path, a, t, &mut plan),
            (Some(k), _) => {
                return Err(ModuleError::new(format!("{path} already exists as {}", kind_name(k))));
            }
        },
        FileKind::Link => {
            let src = link_src(p, st);
            if src.is_empty() {
                return Err(ModuleError::new("src is required for creating new symlinks"));
            }
            // an existing link kept as it is (no `src`): its target is there if it resolves
            let src_exists = st.src_exists || (p.src.is_none() && st.target.is_some());
            if !src_exists && !p.force {
                return Err(ModuleError::new(format!(
                    "src file does not exist, use force: true if you really want to create the link: {}",
                    link_src_abs(path, src)
                )));
            }
            match cur {
                None => plan.push(
                    Change::create(format!("link {path} → {src}"))
                        .with_diff(state_diff("absent", &format!("link → {src}"))),
                ),
                Some(s) if s.kind == "link" => {
                    let t = s.link_target.as_deref().unwrap_or("");
                    if t != src {
                        plan.push(
                            Change::new(format!("{path}: link target {t} → {src}"))
                                .with_diff(state_diff(&format!("link → {t}"), &format!("link → {src}"))),
                        );
                    }
                    util::attr_changes(path, Attrs { mode: None, ..a }, s, &mut plan);
                    // `follow`: the mode is the target's (a link has none of its own), as chmod
                    // through the link gives it in Ansible
                    if let (true, Some(m), Some(target), true) = (p.follow, a.mode, st.target.as_ref(), t == src) {
                        util::attr_changes(path, Attrs { mode: Some(m), owner: None, group: None }, target, &mut plan);
                    }
                }
                Some(s) if s.kind == "directory" => {
                    // Ansible's words: force replaces an empty directory, nothing else
                    if !p.force {
                        return Err(ModuleError::new(format!(
                            "refusing to convert from directory to symlink for {path}"
                        )));
                    }
                    if st.contents > 0 {
                        return Err(ModuleError::new(format!(
                            "the directory {path} is not empty, refusing to convert it"
                        )));
                    }
                    plan.push(
                        Change::new(format!("replace empty directory {path} by a link → {src}"))
                            .with_diff(state_diff("directory", &format!("link → {src}"))),
                    );
                }
                Some(s) => {
                    if !p.force {
                        return Err(ModuleError::new(format!(
                            "refusing to convert from {} to symlink for {path} (force: true replaces it)",
                            s.kind
                        )));
                    }
                    plan.push(
                        Change::new(format!("replace {} {path} by a link → {src}", s.kind))
                            .with_diff(state_diff(&s.kind, &format!("link → {src}"))),
                    );
                }
            }
        }
        FileKind::Hard => {
            let src = p.src.as_deref().unwrap_or("");
            if st.src_inode.is_none() {
                // Ansible's words and keys
                let mut data = Map::new();
                data.insert("src".into(), Value::String(src.to_string()));
                data.insert("dest".into(), Value::String(path.clone()));
                return Err(ModuleError::new("src does not exist").with_data(data));
            }
            match cur {
                None => plan.push(
                    Change::create(format!("hard link {path} → {src}"))
                        .with_diff(state_diff("absent", &format!("hard link → {src}"))),
                ),
                Some(s) if st.inode == st.src_inode => util::attr_changes(path, a, s, &mut plan),
                Some(s) if s.kind == "directory" => {
                    return Err(ModuleError::new(format!("{path} is a directory: refusing to replace it")));
                }
                Some(s) => {
                    if !p.force {
                        return Err(ModuleError::new(format!(
                            "{path} exists and is not a hard link to {src} (force: true replaces it)"
                        )));
                    }
                    plan.push(
                        Change::new(format!("replace {} {path} by a hard link → {src}", s.kind))
                            .with_diff(state_diff(&s.kind, &format!("hard link → {src}"))),
                    );
                }
            }
        }
    }
    Ok(plan)
}

/// The ops that make the changes: the same decision as [`plan_changes`], as data.
fn ops(p: &FileParams, st: &FileState) -> Vec<Op> {
    let path = &p.path;
    let a = attrs(p);
    let oa = util::op_attrs(a);
    let set = |attrs: pbr_core::op::Attrs, recurse: bool, link: bool| Op::SetAttrs {
        path: path.clone(),
        attrs,
        recurse,
        link,
    };
    let is_link = st.lstat.as_ref().is_some_and(|s| s.kind == "link");
    let q = sh_quote(path);
    match File::wanted(p, st) {
        FileKind::Absent => vec![Op::Run {
            what: format!("remove {path}"),
            script: format!("rm -rf -- {q}"),
            stdin: None,
            makes: vec![],
            removes: vec![path.clone()],
        }],
        FileKind::File => vec![set(oa, false, false)],
        FileKind::Touch => {
            let mut v = vec![];
            if st.lstat.is_none() {
                v.push(Op::Run {
                    what: format!("create {path}"),
                    script: format!("touch -- {q}"),
                    stdin: None,
                    makes: vec![path.clone()],
                    removes: vec![],
                });
            }
            v.push(set(oa, false, is_link && !p.follow));
            v
        }
        FileKind::Directory => {
            let mut v = vec![if st.lstat.is_none() {
                Op::MakeDir { path: path.clone(), attrs: oa.clone() }
            } else {
                set(oa.clone(), false, false)
            }];
            if p.recurse {
                v.push(set(oa, true, false));
                // `follow`: what the links below point to too, as Ansible's recursion does
                if p.follow && (a.mode.is_some() || a.owner.is_some() || a.group.is_some()) {
                    v.push(Op::run(
                        format!("{path}: through the links below"),
                        follow_links_script(path, &util::op_attrs(a)),
                    ));
                }
            }
            v
        }
        FileKind::Link => {
            let src = sh_quote(link_src(p, st));
            let rm = match st.lstat.as_ref() {
                Some(s) if s.kind == "directory" => format!("rmdir -- {q} && "),
                Some(s) if s.kind != "link" => format!("rm -f -- {q}; "),
                _ => String::new(),
            };
            let mut v = vec![
                Op::run(format!("link {path}"), format!("{rm}ln -sfn -- {src} {q}")),
                set(util::op_attrs(Attrs { mode: None, ..a }), false, true),
            ];
            if p.follow && a.mode.is_some() && st.target.is_some() {
                v.push(set(util::op_attrs(Attrs { mode: a.mode, owner: None, group: None }), false, false));
            }
            v
        }
        FileKind::Hard => {
            let src = sh_quote(&link_src_abs(path, p.src.as_deref().unwrap_or("")));
            vec![Op::run(format!("hard link {path}"), format!("ln -f -- {src} {q}")), set(oa, false, false)]
        }
    }
}
