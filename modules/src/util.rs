//! Helpers shared by the file modules: probing a path in one round trip, attribute plans,
//! content changes with diffs, backups and atomic writes.

use pbr_core::params::Mode;
use pbr_core::pyre::{Flags, PyRegex};
use pbr_core::{Change, ChangeKind, Diff, FileAttrs, FileStat, ModuleError, Op, PathInfo, PathQuery, Plan, ReadHost};
use sha1::{Digest, Sha1};

/// Files larger than this are compared by checksum instead of being read back for a diff.
pub use pbr_core::host::READ_LIMIT;

/// What a probe learned about one path: its `lstat` (or the link target's with `follow`), the
/// link target, and the content of a regular file up to [`READ_LIMIT`] bytes (its sha1 beyond).
pub type FileState = PathInfo;

pub use pbr_core::host::{STAT_FMT, parse_stat_line};

/// Split off the first line of a byte buffer.
pub fn take_line(buf: &[u8]) -> (&str, &[u8]) {
    match buf.iter().position(|&b| b == b'\n') {
        Some(i) => (std::str::from_utf8(&buf[..i]).unwrap_or(""), &buf[i + 1..]),
        None => (std::str::from_utf8(buf).unwrap_or(""), &[]),
    }
}

/// Probe a path in one query: its `lstat` (or `stat` through links with `follow`), the link
/// target, and optionally its content (or its sha1 when larger than [`READ_LIMIT`]).
pub async fn probe_file(host: &ReadHost, path: &str, content: bool, follow: bool) -> Result<FileState, ModuleError> {
    let mut v = probe_files(host, &[path.to_string()], content, follow).await?;
    v.pop().ok_or_else(|| ModuleError::new(format!("cannot inspect {path}")))
}

/// [`probe_file`] for many paths in one query.
pub async fn probe_files(
    host: &ReadHost,
    paths: &[String],
    content: bool,
    follow: bool,
) -> Result<Vec<FileState>, ModuleError> {
    let qs: Vec<PathQuery> = paths.iter().map(|p| PathQuery::new(p.clone()).content(content).follow(follow)).collect();
    Ok(host.inspect(&qs).await?)
}

/// The byte of a three-digit octal escape at the start of `b` (the part after a backslash, as in
/// `\040`), if it is one.
pub fn octal_escape(b: &[u8]) -> Option<u8> {
    let d = b.get(..3)?;
    if !d.iter().all(|c| (b'0'..=b'7').contains(c)) {
        return None;
    }
    u8::try_from((d[0] - b'0') as u32 * 64 + (d[1] - b'0') as u32 * 8 + (d[2] - b'0') as u32).ok()
}

pub fn sha1_hex(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

/// `0644`-style text of a mode.
pub fn mode_str(m: u32) -> String {
    format!("{:04o}", m & 0o7777)
}

/// A file's mode as the results of Ansible's file, copy and template say it (`'0%03o'`:
/// `0644`, `01444` with the sticky bit); `stat` and `find` say [`mode_str`].
pub fn result_mode(m: u32) -> String {
    format!("0{:03o}", m & 0o7777)
}

/// A params struct with the file-attribute params of the modules that write or edit a file
/// (`mode`, `owner`, `group`: Ansible's shared file options), so that they are defined, read and
/// documented once. Appends the three fields and an `attrs()` that borrows them.
macro_rules! params_with_file_attrs {
    (
        $(#[$m:meta])*
        $v:vis struct $name:ident {
            $( $(#[$fm:meta])* $fv:vis $f:ident : $t:ty ),* $(,)?
        }
    ) => {
        $(#[$m])*
        $v struct $name {
            $( $(#[$fm])* $fv $f : $t, )*
            /// Mode: quoted octal (`"0644"`) or symbolic (`u=rwX,g=rX,o=rX`).
            #[serde(default)]
            pub mode: Option<pbr_core::params::Mode>,
            /// Owner (name or uid).
            #[serde(default)]
            pub owner: Option<String>,
            /// Group (name or gid).
            #[serde(default)]
            pub group: Option<String>,
        }

        impl $name {
            /// The wanted mode, owner and group.
            pub fn attrs(&self) -> $crate::util::Attrs<'_> {
                $crate::util::Attrs { mode: self.mode.as_ref(), owner: self.owner.as_deref(), group: self.group.as_deref() }
            }
        }
    };
}
pub(crate) use params_with_file_attrs;

/// Wanted mode/owner/group of a path.
#[derive(Debug, Clone, Copy, Default)]
pub struct Attrs<'a> {
    pub mode: Option<&'a Mode>,
    pub owner: Option<&'a str>,
    pub group: Option<&'a str>,
}

impl Attrs<'_> {
    pub fn is_empty(&self) -> bool {
        self.mode.is_none() && self.owner.is_none() && self.group.is_none()
    }
}

fn id_matches(want: &str, name: &str, id: u32) -> bool {
    want == name || want.parse::<u32>().ok() == Some(id)
}

/// The attribute changes needed on an existing path, as plan entries.
pub fn attr_changes(path: &str, attrs: Attrs, st: &FileStat, plan: &mut Plan) {
    if let Some(m) = attrs.mode
        && st.kind != "link"
    {
        let want = m.resolve(st.mode, st.kind == "directory");
        if want != st.mode & 0o7777 {
            plan.push(Change::new(format!("{path}: mode {} → {}", mode_str(st.mode), mode_str(want))));
        }
    }
    if let Some(o) = attrs.owner
        && !id_matches(o, &st.owner, st.uid)
    {
        plan.push(Change::new(format!("{path}: owner {} → {o}", st.owner)));
    }
    if let Some(g) = attrs.group
        && !id_matches(g, &st.group, st.gid)
    {
        plan.push(Change::new(format!("{path}: group {} → {g}", st.group)));
    }
}

/// The ` (mode 0644, owner root)` suffix describing a created path.
pub fn attrs_suffix(attrs: Attrs) -> String {
    let mut parts = vec![];
    if let Some(m) = attrs.mode {
        parts.push(match m {
            Mode::Octal(o) => format!("mode {}", mode_str(*o)),
            Mode::Symbolic(s) => format!("mode {s}"),
        });
    }
    if let Some(o) = attrs.owner {
        parts.push(format!("owner {o}"));
    }
    if let Some(g) = attrs.group {
        parts.push(format!("group {g}"));
    }
    if parts.is_empty() { String::new() } else { format!(" ({})", parts.join(", ")) }
}

/// The op-layer attributes of wanted ones.
pub fn op_attrs(attrs: Attrs) -> pbr_core::op::Attrs {
    pbr_core::op::Attrs {
        mode: attrs.mode.cloned(),
        owner: attrs.owner.map(str::to_string),
        group: attrs.group.map(str::to_string),
    }
}

/// A shell snippet applying attrs to `path` (`-R` with `recurse`, `-h` for links).
pub fn attrs_script(path: &str, attrs: Attrs, recurse: bool, link: bool) -> String {
    pbr_core::op::attrs_script(path, &op_attrs(attrs), recurse, link)
}

/// Is this text (for a diff)?
pub fn as_text(b: &[u8]) -> Option<&str> {
    if b.contains(&0) {
        return None;
    }
    std::str::from_utf8(b).ok()
}

/// The change replacing `before` (None: file absent) by `after`, with a diff for text.
pub fn content_change(path: &str, before: Option<&[u8]>, after: &[u8], attrs: Attrs) -> Change {
    let summary = match before {
        None => format!("create {path}{}", attrs_suffix(attrs)),
        Some(_) => format!("update {path}"),
    };
    let kind = if before.is_none() { ChangeKind::Create } else { ChangeKind::Update };
    let c = match (before.map(as_text), as_text(after)) {
        (None, Some(a)) => Change::new(summary).with_diff(Diff::file(path, "", a)),
        (Some(Some(b)), Some(a)) => Change::new(summary).with_diff(Diff::file(path, b, a)),
        _ => Change::new(format!("{summary} (binary content changes)")),
    };
    Change { kind, ..c }
}

/// The plan for making `st.path` hold `want` with `attrs`: its changes, and the op that makes
/// them (the file written, or only its attributes set).
pub fn plan_content(st: &FileState, want: &[u8], attrs: Attrs, opts: WriteOpts) -> Result<Plan, ModuleError> {
    let mut plan = Plan::empty();
    let path = &st.path;
    match &st.stat {
        None => plan.push(content_change(path, None, want, attrs)),
        Some(s) if s.kind == "directory" => {
            return Err(ModuleError::new(format!("{path} is a directory")));
        }
        Some(_) => {
            let same = match (&st.content, &st.sha1) {
                (Some(c), _) => c.as_slice() == want,
                (None, Some(h)) => *h == sha1_hex(want),
                (None, None) => false,
            };
            if !same {
                plan.push(content_change(path, st.content.as_deref(), want, attrs));
            }
        }
    }
    let write = !plan.is_empty();
    if let Some(s) = &st.stat {
        attr_changes(path, attrs, s, &mut plan);
    }
    content_ops(st, write.then_some(want), attrs, opts, &mut plan);
    Ok(plan)
}

/// The op of a content plan whose changes are pushed: write `want` (when the content changes)
/// with the wanted attributes, else set the attributes that changed.
pub fn content_ops(st: &FileState, want: Option<&[u8]>, attrs: Attrs, opts: WriteOpts, plan: &mut Plan) {
    match want {
        Some(want) => {
            let fa = write_attrs(st, attrs);
            plan.op(Op::WriteFile {
                path: st.path.clone(),
                content: want.to_vec(),
                mode: fa.mode,
                owner: fa.owner,
                group: fa.group,
                backup: opts.backup && st.kind() == Some("file"),
                validate: opts.validate.map(str::to_string),
            });
        }
        None if !plan.is_empty() => {
            plan.op(Op::SetAttrs { path: st.path.clone(), attrs: op_attrs(attrs), recurse: false, link: false })
        }
        None => {}
    }
}

/// The attributes a fresh write should carry: wanted ones, resolved against the current file.
pub fn write_attrs(st: &FileState, attrs: Attrs) -> FileAttrs {
    let cur = st.stat.as_ref().filter(|s| s.kind == "file");
    FileAttrs {
        mode: attrs.mode.map(|m| m.resolve(cur.map(|s| s.mode).unwrap_or(0o644), false)),
        owner: attrs.owner.map(str::to_string),
        group: attrs.group.map(str::to_string),
        validate: None,
    }
}

/// Options of a content write.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOpts<'a> {
    pub backup: bool,
    /// A command with `%s` run on the new content before it is put in place.
    pub validate: Option<&'a str>,
}

/// A `validate:` command must name the file it checks (`%s`): said by lint and `--check`, before
/// anything is written.
pub fn check_validate(v: Option<&str>) -> Result<(), String> {
    match v {
        Some(v) if !v.contains("%s") => {
            Err(format!("validate must contain %s: {v} (%s stands for the path of the file to check)"))
        }
        _ => Ok(()),
    }
}

/// Split text into lines keeping their `\n` (like Python's `readlines`).
pub fn split_lines_keep(s: &str) -> Vec<String> {
    let mut v = vec![];
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if c == '\n' {
            v.push(s[start..=i].to_string());
            start = i + 1;
        }
    }
    if start < s.len() {
        v.push(s[start..].to_string());
    }
    v
}

/// Compile a Python regex (`re.MULTILINE` with `multi_line`), with a clear error naming the param.
pub fn compile(what: &str, re: &str, multi_line: bool) -> Result<PyRegex, ModuleError> {
    PyRegex::new(re, Flags { multiline: multi_line, ..Flags::default() })
        .map_err(|e| ModuleError::new(format!("invalid {what} {re:?}: {e}")))
}

/// Whether `re` matches somewhere in `s` (`re.search`).
pub fn hit(re: &PyRegex, s: &str) -> Result<bool, ModuleError> {
    re.is_match(s).map_err(ModuleError::new)
}

pub use pbr_core::op::{delta, timestamp};
