//! Ops: what a plan does, as data.
//!
//! A module's `plan` returns, besides the changes it shows, the ops that make them: write these
//! bytes with these attributes, make this directory, run this script. The engine runs exactly
//! those ops, in order ([`run_ops`]); a module's own apply may only word the errors of `run_ops`
//! (tests/tidy.rs checks every module).
//!
//! Because ops are data, check mode can see them: the engine records the planned ops of a task in
//! the host's [`Overlay`], and the probes of later tasks on that host read paths through it. A
//! `lineinfile` on a file that an earlier task creates plans against the content that task would
//! write, so `--check` on a fresh host reports the changes the real run then makes.

use crate::host::{Cmd, FileAttrs, FileStat, Host, PathInfo, PathQuery, VALIDATE_FAILED, sh_quote};
use crate::module::{Deferred, ModuleError, Outcome};
use crate::params::Mode;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Mode, owner and group to set; `None` leaves each as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attrs {
    pub mode: Option<Mode>,
    pub owner: Option<String>,
    pub group: Option<String>,
}

impl Attrs {
    pub fn is_empty(&self) -> bool {
        self.mode.is_none() && self.owner.is_none() && self.group.is_none()
    }
}

/// One thing a plan does on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Put `content` at `path` atomically (a temp file beside it, renamed into place) with this
    /// mode (resolved by the planner: a number), owner and group. `validate` (a command with `%s`)
    /// checks the temp file first: when it fails the old file stays. `backup` copies the old file
    /// to `path.YYYY-mm-dd@HH:MM:SS~` first; its name is the result's `backup_file`.
    WriteFile {
        path: String,
        content: Vec<u8>,
        mode: Option<u32>,
        owner: Option<String>,
        group: Option<String>,
        backup: bool,
        validate: Option<String>,
    },
    /// Set attributes of an existing path (`recurse`: below it too; `link`: of the link itself).
    SetAttrs { path: String, attrs: Attrs, recurse: bool, link: bool },
    /// Make a directory and its missing parents, each made with these attributes (as Ansible's
    /// `file` does), then set the leaf's attributes. A directory that something else made in the
    /// meantime is as good as one made here.
    MakeDir { path: String, attrs: Attrs },
    /// Run a POSIX sh script (`set -e`, `LC_ALL=C`). `what` names it in errors; `stdin` is input
    /// that is never shown (it may hold secrets). `makes` and `removes` are the paths the script
    /// is known to create or delete, for check mode's overlay (anything else it does is unknown
    /// there).
    Run { what: String, script: String, stdin: Option<Vec<u8>>, makes: Vec<String>, removes: Vec<String> },
    /// Run a command whose output is the task's result, as Ansible's `command` reports it:
    /// `cmd` (as written), `rc`, `stdout`, `stderr` (trailing newlines stripped with `strip`),
    /// their `_lines`, `start`, `end`, `delta`. A non-zero exit fails the task with that result.
    /// `makes`/`removes` are its `creates`/`removes` paths, for check mode's overlay. A second
    /// `Exec` of the same plan appends its output to the first's.
    Exec { cmd: Value, script: String, stdin: Option<Vec<u8>>, strip: bool, makes: Vec<String>, removes: Vec<String> },
    /// Put `content` in a file on the controller (`fetch`): its missing directories made, a temp
    /// file beside it renamed into place. Nothing on the host changes.
    WriteLocal { path: std::path::PathBuf, content: Vec<u8> },
    /// Queue work for the end of the run on this host, once per key however many tasks ask
    /// (regenerate the initramfs, `networkctl reload`); never in check mode.
    Defer(Deferred),
}

impl Op {
    /// A script step with nothing known of its effects on paths.
    pub fn run(what: impl Into<String>, script: impl Into<String>) -> Op {
        Op::Run { what: what.into(), script: script.into(), stdin: None, makes: vec![], removes: vec![] }
    }
}

/// The shell snippet setting `attrs` on `path` (`-R` with `recurse`, `-h` for a link).
pub fn attrs_script(path: &str, attrs: &Attrs, recurse: bool, link: bool) -> String {
    let p = sh_quote(path);
    let r = if recurse { "-R " } else { "" };
    let mut s = String::new();
    if let Some(og) = chown_arg(attrs) {
        let h = if link { "-h " } else { "" };
        s.push_str(&format!("chown {r}{h}{} -- {p} || exit 1; ", sh_quote(&og)));
    }
    if let Some(m) = &attrs.mode
        && !link
    {
        s.push_str(&format!("chmod {r}{} -- {p} || exit 1; ", sh_quote(&chmod_arg(m))));
    }
    s
}

/// `chown`'s `owner:group` argument for these attributes (`None`: neither is set).
pub fn chown_arg(attrs: &Attrs) -> Option<String> {
    match (&attrs.owner, &attrs.group) {
        (Some(o), Some(g)) => Some(format!("{o}:{g}")),
        (Some(o), None) => Some(o.to_string()),
        (None, Some(g)) => Some(format!(":{g}")),
        (None, None) => None,
    }
}

/// `chmod`'s mode argument (`0644`, or the symbolic mode as written).
pub fn chmod_arg(m: &Mode) -> String {
    match m {
        Mode::Octal(o) => format!("{:04o}", o & 0o7777),
        Mode::Symbolic(s) => s.clone(),
    }
}

/// `attrs` as a transport can set them without a program (a numeric mode); None for a symbolic
/// mode, which `chmod` works out.
fn native_attrs(attrs: &Attrs) -> Option<FileAttrs> {
    let mode = match &attrs.mode {
        None => None,
        Some(Mode::Octal(m)) => Some(m & 0o7777),
        Some(Mode::Symbolic(_)) => return None,
    };
    Some(FileAttrs { mode, owner: attrs.owner.clone(), group: attrs.group.clone(), validate: None })
}

/// `/a`, `/a/b`, `/a/b/c` for `/a/b/c` (relative paths likewise, without the leading `/`).
pub fn ancestors(path: &str) -> Vec<String> {
    let mut v = vec![];
    let mut cur = String::new();
    for (i, part) in path.split('/').enumerate() {
        if part.is_empty() {
            if i == 0 {
                cur.push('/');
            }
            continue;
        }
        if !cur.is_empty() && !cur.ends_with('/') {
            cur.push('/');
        }
        cur.push_str(part);
        v.push(cur.clone());
    }
    v
}

/// Run `ops` in order on `host`; the first failure stops. Returns the result data the ops give
/// (`backup_file`, a command's output) and the work they queue.
pub async fn run_ops(host: &Host, ops: &[Op]) -> Result<Outcome, ModuleError> {
    let mut data = Map::new();
    let mut deferred = vec![];
    for op in ops {
        match op {
            Op::Defer(d) => deferred.push(d.clone()),
            Op::WriteLocal { path, content } => write_local(path, content)
                .map_err(|e| ModuleError::new(format!("cannot write {} on the controller: {e}", path.display())))?,
            Op::WriteFile { path, content, mode, owner, group, backup, validate } => {
                if *backup && let Some(b) = make_backup(host, path).await? {
                    data.insert("backup_file".into(), Value::String(b));
                }
                write_file(host, path, content, *mode, owner, group, validate.as_deref()).await?;
            }
            Op::SetAttrs { path, attrs, recurse, link } => {
                if !*recurse
                    && !*link
                    && let Some(fa) = native_attrs(attrs)
                    && host.set_attrs_native(path, &fa).await?
                {
                    continue;
                }
                let s = attrs_script(path, attrs, *recurse, *link);
                if !s.is_empty() {
                    host.run_ok(s).await?;
                }
            }
            Op::MakeDir { path, attrs } => {
                if let Some(fa) = native_attrs(attrs)
                    && host.make_dir_native(path, &fa).await?
                {
                    continue;
                }
                // only if it still is not a directory does the second mkdir tell why
                let mut s = String::new();
                for d in ancestors(path) {
                    let dq = sh_quote(&d);
                    s.push_str(&format!(
                        "if [ ! -d {dq} ]; then mkdir -- {dq} 2>/dev/null || [ -d {dq} ] || mkdir -- {dq} || exit 1; {}fi; ",
                        attrs_script(&d, attrs, false, false)
                    ));
                }
                s.push_str(&attrs_script(path, attrs, false, false));
                host.run_ok(s).await?;
            }
            Op::Exec { cmd, script, stdin, strip, .. } => exec(host, cmd, script, stdin, *strip, &mut data).await?,
            Op::Run { what, script, stdin, .. } => {
                let mut cmd = Cmd::new(format!("set -e\nexport LC_ALL=C\n{script}"));
                if let Some(i) = stdin {
                    cmd = cmd.stdin(i.clone());
                }
                let out = host.run(cmd).await?;
                if out.rc != 0 {
                    let err = out.stderr_str();
                    let msg = if err.trim().is_empty() { out.stdout_str() } else { err };
                    return Err(ModuleError::new(format!("{what}: failed (exit {}): {}", out.rc, msg.trim())));
                }
            }
        }
    }
    Ok(Outcome { data, deferred })
}

/// Write a controller file atomically (temp file beside it, then rename).
fn write_local(path: &std::path::Path, content: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let tmp = dir.join(format!(".{name}.pbr.{}.{nanos}", std::process::id()));
    let res = std::fs::write(&tmp, content).and_then(|()| std::fs::rename(&tmp, path));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

fn text_out(b: &[u8], strip: bool) -> String {
    let s = String::from_utf8_lossy(b).into_owned();
    if strip { s.trim_end_matches(['\n', '\r']).to_string() } else { s }
}

async fn exec(
    host: &Host,
    shown: &Value,
    script: &str,
    stdin: &Option<Vec<u8>>,
    strip: bool,
    data: &mut Map<String, Value>,
) -> Result<(), ModuleError> {
    let mut cmd = Cmd::new(script);
    cmd.stdin.clone_from(stdin);
    let t0 = std::time::SystemTime::now();
    let i0 = std::time::Instant::now();
    let out = host.run(cmd).await?;
    let dt = i0.elapsed();
    let stdout = text_out(&out.stdout, strip);
    let stderr = text_out(&out.stderr, strip);
    data.insert("cmd".into(), shown.clone());
    data.insert("rc".into(), Value::from(out.rc));
    // a second command of the same plan adds its output to the first's
    let (stdout, stderr) =
        match (data.get("stdout").and_then(Value::as_str), data.get("stderr").and_then(Value::as_str)) {
            (Some(o), Some(e)) => (format!("{o}{stdout}"), format!("{e}{stderr}")),
            _ => (stdout, stderr),
        };
    data.insert("stdout_lines".into(), Value::from(stdout.lines().collect::<Vec<_>>()));
    data.insert("stderr_lines".into(), Value::from(stderr.lines().collect::<Vec<_>>()));
    data.insert("stdout".into(), Value::String(stdout));
    data.insert("stderr".into(), Value::String(stderr));
    data.insert("start".into(), Value::String(timestamp(t0)));
    data.insert("end".into(), Value::String(timestamp(t0 + dt)));
    data.insert("delta".into(), Value::String(delta(dt)));
    if out.rc != 0 {
        data.insert("msg".into(), Value::String("non-zero return code".into()));
        return Err(ModuleError::new("non-zero return code").with_data(std::mem::take(data)));
    }
    Ok(())
}

/// Copy a regular file `path` to `path.YYYY-mm-dd@HH:MM:SS~` keeping its attributes; its name,
/// or None when there is no regular file to keep.
async fn make_backup(host: &Host, path: &str) -> Result<Option<String>, ModuleError> {
    let p = sh_quote(path);
    let out = host
        .run_ok(format!("[ -f {p} ] && [ ! -L {p} ] || exit 0; b={p}.$(date +%Y-%m-%d@%H:%M:%S)~; cp -p -- {p} \"$b\" && printf '%s' \"$b\""))
        .await?;
    let b = out.stdout_str();
    Ok(if b.is_empty() { None } else { Some(b) })
}

async fn write_file(
    host: &Host,
    path: &str,
    content: &[u8],
    mode: Option<u32>,
    owner: &Option<String>,
    group: &Option<String>,
    validate: Option<&str>,
) -> Result<(), ModuleError> {
    let mut fa = FileAttrs { mode, owner: owner.clone(), group: group.clone(), validate: None };
    let Some(v) = validate else {
        return Ok(host.write_file(path, content, &fa).await?);
    };
    if !v.contains("%s") {
        return Err(ModuleError::new(format!("validate must contain %s: {v}")));
    }
    // checked on the host in the write itself, on the temp file, before the rename: a failure or
    // an interruption leaves the old file and no temp file; with the task's `environment:`, as
    // every command of the task
    let mut exports = String::new();
    for (k, x) in host.env() {
        if k.is_empty()
            || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            || k.as_bytes()[0].is_ascii_digit()
        {
            return Err(ModuleError::new(format!("invalid environment variable name `{k}`")));
        }
        exports.push_str(&format!("export {k}={}; ", sh_quote(x)));
    }
    fa.validate = Some(format!("{exports}{v}"));
    let Err(e) = host.write_file(path, content, &fa).await else { return Ok(()) };
    let text = e.to_string();
    let Some(at) = text.find(VALIDATE_FAILED) else {
        return Err(e.into());
    };
    let rest = &text[at + VALIDATE_FAILED.len()..];
    let (rc, output) = rest.trim_start().split_once('\n').unwrap_or((rest.trim(), ""));
    let rc: i64 = rc.trim().parse().unwrap_or(-1);
    let cmd = v.replace("%s", &sh_quote(path));
    let mut d = Map::new();
    d.insert("validate_rc".into(), Value::from(rc));
    d.insert("validate_output".into(), Value::String(output.to_string()));
    Err(ModuleError::new(format!("failed to validate: `{cmd}` (on the new content) exited {rc}: {}", output.trim()))
        .with_data(d))
}

/// What check mode knows of a path from the ops planned before.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// A regular file with this content; attributes not set stay as the host has them.
    File { content: Vec<u8>, mode: Option<u32>, owner: Option<String>, group: Option<String> },
    /// A directory (made, or a parent of one made: then only where the host has nothing).
    Dir { mode: Option<u32>, owner: Option<String>, group: Option<String>, parent: bool },
    /// Nothing there.
    Absent,
    /// A script changes it in an unknown way: probes see what the host has.
    Attrs { mode: Option<Mode>, owner: Option<String>, group: Option<String> },
}

/// Per host, in check mode: the paths that the ops planned so far would make, change or remove.
/// Probes of later tasks ([`Host::inspect`], [`Host::read_file`]) read through it.
#[derive(Debug, Default)]
pub struct Overlay {
    paths: BTreeMap<String, Entry>,
}

fn norm(path: &str) -> String {
    let t = path.trim_end_matches('/');
    if t.is_empty() { "/".into() } else { t.to_string() }
}

fn parents(path: &str) -> Vec<String> {
    let mut out = vec![];
    let mut p = path;
    while let Some(i) = p.rfind('/') {
        p = &p[..i];
        if p.is_empty() {
            break;
        }
        out.push(p.to_string());
    }
    out
}

impl Overlay {
    /// Record what `ops` would do.
    pub fn record(&mut self, ops: &[Op]) {
        for op in ops {
            match op {
                Op::WriteFile { path, content, mode, owner, group, .. } => {
                    let path = norm(path);
                    self.paths.insert(
                        path,
                        Entry::File {
                            content: content.clone(),
                            mode: *mode,
                            owner: owner.clone(),
                            group: group.clone(),
                        },
                    );
                }
                Op::MakeDir { path, attrs } => {
                    let path = norm(path);
                    for p in parents(&path) {
                        self.paths.entry(p).or_insert(Entry::Dir {
                            mode: None,
                            owner: None,
                            group: None,
                            parent: true,
                        });
                    }
                    let mode = match &attrs.mode {
                        Some(Mode::Octal(m)) => Some(*m),
                        _ => None,
                    };
                    if matches!(self.paths.get(&path), Some(Entry::Dir { parent: false, .. })) {
                        self.set_attrs(&path, attrs);
                    } else {
                        let (owner, group) = (attrs.owner.clone(), attrs.group.clone());
                        self.paths.insert(path, Entry::Dir { mode, owner, group, parent: false });
                    }
                }
                Op::SetAttrs { path, attrs, link: false, .. } => self.set_attrs(&norm(path), attrs),
                Op::SetAttrs { .. } | Op::Defer(_) | Op::WriteLocal { .. } => {}
                Op::Run { makes, removes, .. } | Op::Exec { makes, removes, .. } => {
                    for r in removes {
                        let r = norm(r);
                        self.paths.retain(|k, _| !k.starts_with(&format!("{r}/")));
                        self.paths.insert(r, Entry::Absent);
                    }
                    for m in makes {
                        let m = norm(m);
                        if matches!(self.paths.get(&m), None | Some(Entry::Absent)) {
                            self.paths.insert(m, Entry::File { content: vec![], mode: None, owner: None, group: None });
                        }
                    }
                }
            }
        }
    }

    fn set_attrs(&mut self, path: &str, attrs: &Attrs) {
        let octal = match &attrs.mode {
            Some(Mode::Octal(m)) => Some(*m),
            _ => None,
        };
        match self.paths.get_mut(path) {
            Some(Entry::File { mode, owner, group, .. }) | Some(Entry::Dir { mode, owner, group, .. }) => {
                if attrs.mode.is_some() {
                    *mode = octal.or(*mode);
                }
                if attrs.owner.is_some() {
                    owner.clone_from(&attrs.owner);
                }
                if attrs.group.is_some() {
                    group.clone_from(&attrs.group);
                }
            }
            Some(Entry::Attrs { mode, owner, group }) => {
                if attrs.mode.is_some() {
                    mode.clone_from(&attrs.mode);
                }
                if attrs.owner.is_some() {
                    owner.clone_from(&attrs.owner);
                }
                if attrs.group.is_some() {
                    group.clone_from(&attrs.group);
                }
            }
            Some(Entry::Absent) => {}
            None => {
                self.paths.insert(
                    path.to_string(),
                    Entry::Attrs { mode: attrs.mode.clone(), owner: attrs.owner.clone(), group: attrs.group.clone() },
                );
            }
        }
    }

    /// Whether the overlay knows anything of these paths (else the host's answer stands).
    pub fn touches(&self, qs: &[PathQuery]) -> bool {
        !self.paths.is_empty() && qs.iter().any(|q| self.lookup(&norm(&q.path)).is_some())
    }

    /// The entry for `path`: its own, or Absent under a removed directory.
    fn lookup(&self, path: &str) -> Option<&Entry> {
        if let Some(e) = self.paths.get(path) {
            return Some(e);
        }
        parents(path).iter().find_map(|p| match self.paths.get(p) {
            Some(e @ Entry::Absent) => Some(e),
            _ => None,
        })
    }

    /// The host's answer to `q`, as the planned ops would leave it.
    pub fn patch(&self, q: &PathQuery, real: PathInfo) -> PathInfo {
        let path = norm(&q.path);
        let Some(e) = self.lookup(&path) else { return real };
        let base = real.stat.clone();
        let stat = |kind: &str, mode: Option<u32>, owner: &Option<String>, group: &Option<String>, size: u64| {
            let b = base.clone().filter(|s| s.kind == kind);
            FileStat {
                kind: kind.into(),
                mode: mode.or(b.as_ref().map(|s| s.mode)).unwrap_or(if kind == "directory" { 0o755 } else { 0o644 }),
                uid: b.as_ref().map_or(0, |s| s.uid),
                gid: b.as_ref().map_or(0, |s| s.gid),
                owner: owner.clone().or(b.as_ref().map(|s| s.owner.clone())).unwrap_or_default(),
                group: group.clone().or(b.as_ref().map(|s| s.group.clone())).unwrap_or_default(),
                size,
                mtime: b.as_ref().map_or(0, |s| s.mtime),
                link_target: None,
            }
        };
        match e {
            Entry::Absent => PathInfo { path, ..Default::default() },
            Entry::File { content, mode, owner, group } => {
                let s = stat("file", *mode, owner, group, content.len() as u64);
                let sum = || {
                    use sha1::Digest;
                    format!("{:x}", sha1::Sha1::digest(content))
                };
                let small = content.len() as u64 <= crate::host::READ_LIMIT;
                PathInfo {
                    path,
                    stat: Some(s.clone()),
                    target: None,
                    content: (q.content && small).then(|| content.clone()),
                    sha1: (q.content && !small).then(sum),
                    checksum: q.checksum.then(sum),
                    access: real.access.or_else(|| q.access.then(|| "rw".to_string())),
                    ext: None,
                }
            }
            Entry::Dir { parent: true, .. } if real.stat.is_some() => real,
            Entry::Dir { mode, owner, group, .. } => {
                let s = stat("directory", *mode, owner, group, 4096);
                PathInfo {
                    path,
                    stat: Some(s),
                    access: real.access.or_else(|| q.access.then(|| "rwx".to_string())),
                    ..Default::default()
                }
            }
            Entry::Attrs { mode, owner, group } => {
                let mut real = real;
                if let Some(s) = real.stat.as_mut() {
                    if let Some(m) = mode {
                        s.mode = (s.mode & !0o7777) | m.resolve(s.mode, s.kind == "directory");
                    }
                    if let Some(o) = owner {
                        s.owner.clone_from(o);
                    }
                    if let Some(g) = group {
                        s.group.clone_from(g);
                    }
                }
                real
            }
        }
    }

    /// A file's content as the planned ops would leave it: `Some(None)` when absent, None when
    /// the overlay does not know.
    pub fn read(&self, path: &str) -> Option<Option<Vec<u8>>> {
        match self.lookup(&norm(path))? {
            Entry::File { content, .. } => Some(Some(content.clone())),
            Entry::Absent => Some(None),
            _ => None,
        }
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `2024-05-01 12:00:00.123456` (UTC) for a time.
pub fn timestamp(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (y, m, day) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{day:02} {:02}:{:02}:{:02}.{:06}", s / 3600, s / 60 % 60, s % 60, d.subsec_micros())
}

/// `0:00:01.250000` for a duration.
pub fn delta(d: std::time::Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}.{:06}", s / 3600, s / 60 % 60, s % 60, d.subsec_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestor_dirs() {
        assert_eq!(ancestors("/a/b//c/"), vec!["/a", "/a/b", "/a/b/c"]);
        assert_eq!(ancestors("x/y"), vec!["x", "x/y"]);
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(delta(std::time::Duration::from_millis(61_250)), "0:01:01.250000");
    }

    fn q(p: &str) -> PathQuery {
        PathQuery { content: true, checksum: true, ..PathQuery::new(p) }
    }

    #[test]
    fn overlay_answers_for_planned_paths_only() {
        let mut o = Overlay::default();
        o.record(&[
            Op::MakeDir {
                path: "/srv/app/".into(),
                attrs: Attrs { mode: Some(Mode::Octal(0o750)), ..Default::default() },
            },
            Op::WriteFile {
                path: "/srv/app/conf".into(),
                content: b"a=1\n".to_vec(),
                mode: Some(0o600),
                owner: None,
                group: None,
                backup: false,
                validate: None,
            },
        ]);
        let f = o.patch(&q("/srv/app/conf"), PathInfo { path: "/srv/app/conf".into(), ..Default::default() });
        let s = f.stat.unwrap();
        assert_eq!((s.kind.as_str(), s.mode, s.size), ("file", 0o600, 4));
        assert_eq!(f.content.as_deref(), Some(&b"a=1\n"[..]));
        assert_eq!(f.checksum.map(|c| c.len()), Some(40));
        let d = o.patch(&q("/srv/app"), PathInfo::default());
        assert_eq!(d.stat.map(|s| (s.kind, s.mode)), Some(("directory".to_string(), 0o750)));
        // a parent that exists on the host stays as the host has it
        let real = PathInfo { path: "/srv".into(), stat: Some(dir_stat(0o700)), ..Default::default() };
        assert_eq!(o.patch(&q("/srv"), real.clone()), real);
        // a path the ops do not touch is the host's answer
        let other = PathInfo { path: "/etc/x".into(), ..Default::default() };
        assert_eq!(o.patch(&q("/etc/x"), other.clone()), other);
        assert_eq!(o.read("/srv/app/conf"), Some(Some(b"a=1\n".to_vec())));
        assert_eq!(o.read("/etc/x"), None);
    }

    #[test]
    fn removal_hides_what_is_below() {
        let mut o = Overlay::default();
        o.record(&[Op::Run {
            what: "rm".into(),
            script: "rm -rf /srv/old".into(),
            stdin: None,
            makes: vec![],
            removes: vec!["/srv/old".into()],
        }]);
        let real = PathInfo { path: "/srv/old/f".into(), stat: Some(dir_stat(0o644)), ..Default::default() };
        assert_eq!(o.patch(&q("/srv/old/f"), real).stat, None);
        assert_eq!(o.read("/srv/old/f"), Some(None));
        // a later write under it is seen again
        o.record(&[Op::SetAttrs {
            path: "/etc/motd".into(),
            attrs: Attrs { mode: Some(Mode::Symbolic("u+x".into())), ..Default::default() },
            recurse: false,
            link: false,
        }]);
        let real = PathInfo {
            path: "/etc/motd".into(),
            stat: Some(FileStat { kind: "file".into(), ..dir_stat(0o644) }),
            ..Default::default()
        };
        assert_eq!(o.patch(&q("/etc/motd"), real).stat.unwrap().mode & 0o7777, 0o744);
    }

    fn dir_stat(mode: u32) -> FileStat {
        FileStat {
            kind: "directory".into(),
            mode,
            uid: 0,
            gid: 0,
            owner: "root".into(),
            group: "root".into(),
            size: 0,
            mtime: 0,
            link_target: None,
        }
    }
}
