//! `mount`: filesystems in fstab and mounted (Ansible's `ansible.posix.mount`).
//!
//! The probe reads the fstab file whole, the live mounts from `/proc/self/mountinfo` (parsed
//! here, octal escapes such as `\040` decoded), and in one `sh` round trip what kind of path the
//! mount point is and which device `src` names (`UUID=`, `LABEL=`, `/dev/disk/by-*` links are
//! resolved to `major:minor`, so a device mounted under another name is still the same).

use crate::util;
use async_trait::async_trait;
use pbr_core::params::bool_lenient;
use pbr_core::{Change, Ctx, Diff, Doc, Module, ModuleError, Op, Plan, ReadHost, sh_quote};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

/// What should be true of the mount point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MountStateWanted {
    /// In fstab and mounted (the mount point is created when missing).
    Mounted,
    /// Not mounted; fstab untouched.
    Unmounted,
    /// In fstab; the live mount state is not touched.
    Present,
    /// Not mounted and not in fstab.
    Absent,
    /// Not in fstab; the live mount state is not touched.
    AbsentFromFstab,
    /// Remount now (always a change).
    Remounted,
    /// Mounted with these params, fstab untouched.
    Ephemeral,
}

impl MountStateWanted {
    fn word(self) -> &'static str {
        match self {
            MountStateWanted::Mounted => "mounted",
            MountStateWanted::Unmounted => "unmounted",
            MountStateWanted::Present => "present",
            MountStateWanted::Absent => "absent",
            MountStateWanted::AbsentFromFstab => "absent_from_fstab",
            MountStateWanted::Remounted => "remounted",
            MountStateWanted::Ephemeral => "ephemeral",
        }
    }
    /// States that read or write the fstab file.
    fn uses_fstab(self) -> bool {
        matches!(
            self,
            MountStateWanted::Mounted
                | MountStateWanted::Present
                | MountStateWanted::Absent
                | MountStateWanted::AbsentFromFstab
        )
    }
}

fn defaults() -> String {
    "defaults".into()
}
fn zero() -> String {
    "0".into()
}
fn etc_fstab() -> String {
    DEFAULT_FSTAB.into()
}
fn yes() -> bool {
    true
}

const DEFAULT_FSTAB: &str = "/etc/fstab";

/// A string that may also be written as a YAML number (`dump: 0`).
fn str_or_int<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        v @ Value::Number(_) => Ok(v.to_string()),
        other => Err(serde::de::Error::custom(format!("expected a number or a string, got {other}"))),
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MountParams {
    /// The mount point, an absolute path (`none` for a swap line in fstab).
    #[serde(alias = "name")]
    pub path: String,
    /// What to mount: a device (`/dev/sdb1`), `UUID=...`, `LABEL=...`, `server:/export`, `tmpfs`,
    /// or a directory with `opts: bind`. Required for `mounted`, `present` and `ephemeral`.
    #[serde(default)]
    pub src: Option<String>,
    /// Filesystem type (`ext4`, `xfs`, `nfs`, `tmpfs`...). Required for `mounted`, `present` and
    /// `ephemeral`.
    #[serde(default)]
    pub fstype: Option<String>,
    /// Mount options, comma separated.
    #[serde(default = "defaults")]
    pub opts: String,
    /// The fifth fstab field (dump).
    #[serde(default = "zero", deserialize_with = "str_or_int")]
    #[schemars(with = "Value")]
    pub dump: String,
    /// The sixth fstab field (fsck pass number).
    #[serde(default = "zero", deserialize_with = "str_or_int")]
    #[schemars(with = "Value")]
    pub passno: String,
    /// `mounted`: in fstab and mounted (remounted when its fstab line changed, unmounted first
    /// when another filesystem is mounted there). `present`: in fstab only. `unmounted`:
    /// unmounted, fstab untouched. `absent`: unmounted and out of fstab (the mount point
    /// directory is kept). `absent_from_fstab`: out of fstab only. `remounted`: `mount -o
    /// remount` now. `ephemeral`: mounted with these params without touching fstab.
    pub state: MountStateWanted,
    /// The fstab file to edit.
    #[serde(default = "etc_fstab")]
    pub fstab: String,
    /// Mount at boot; when false `noauto` is added to the options.
    #[serde(default = "yes", deserialize_with = "bool_lenient")]
    pub boot: bool,
    /// Keep a copy of the fstab file as `FSTAB.YYYY-mm-dd@HH:MM:SS~` before changing it.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub backup: bool,
}

impl MountParams {
    /// The options as written to fstab and given to `mount`: `noauto` added with `boot: false`.
    pub fn effective_opts(&self) -> String {
        if !self.boot && !self.opts.split(',').any(|o| o == "noauto") {
            format!("{},noauto", self.opts)
        } else {
            self.opts.clone()
        }
    }
    fn default_fstab(&self) -> bool {
        self.fstab == DEFAULT_FSTAB
    }
}

/// One line of `/proc/self/mountinfo`, escapes decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub id: u32,
    pub parent: u32,
    /// `major:minor` of the mounted filesystem.
    pub dev: String,
    /// The directory of the filesystem mounted (not `/` for bind mounts of a subdirectory).
    pub root: String,
    pub mount_point: String,
    pub opts: String,
    pub fstype: String,
    pub source: String,
    pub super_opts: String,
}

/// Decode the octal escapes (`\040` space, `\011` tab, `\012` newline, `\134` backslash) of
/// mountinfo and fstab fields.
pub fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && let Some(v) = crate::util::octal_escape(&b[i + 1..])
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encode an fstab field: space `\040`, tab `\011`, backslash `\134`.
pub fn fstab_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    out
}

/// Parse `/proc/self/mountinfo`; lines that do not parse are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines().filter_map(parse_mountinfo_line).collect()
}

fn parse_mountinfo_line(line: &str) -> Option<MountInfo> {
    let f: Vec<&str> = line.split(' ').collect();
    if f.len() < 10 {
        return None;
    }
    // optional fields run from index 6 up to the lone "-"
    let sep = f.iter().skip(6).position(|x| *x == "-")? + 6;
    if f.len() < sep + 3 {
        return None;
    }
    Some(MountInfo {
        id: f[0].parse().ok()?,
        parent: f[1].parse().ok()?,
        dev: f[2].to_string(),
        root: unescape_octal(f[3]),
        mount_point: unescape_octal(f[4]),
        opts: f[5].to_string(),
        fstype: f[sep + 1].to_string(),
        source: unescape_octal(f[sep + 2]),
        super_opts: f.get(sep + 3).map(|s| s.to_string()).unwrap_or_default(),
    })
}

/// The mount visible at `path`: the last one mounted there (mounts stack).
pub fn mount_at<'a>(mounts: &'a [MountInfo], path: &str) -> Option<&'a MountInfo> {
    let path = normalize(path);
    mounts.iter().rev().find(|m| m.mount_point == path)
}

/// The directories a bind mount `m` may show (`/srv/data` for a bind of `/srv/data`): for each
/// other mount of the same filesystem whose root contains `m`'s root, its mount point plus the
/// rest of the path.
pub fn bind_sources(mounts: &[MountInfo], m: &MountInfo) -> Vec<String> {
    let mut out = vec![];
    for n in mounts {
        if n.id == m.id || n.dev != m.dev {
            continue;
        }
        let rest = if n.root == "/" {
            Some(m.root.as_str())
        } else if m.root == n.root {
            Some("")
        } else {
            m.root.strip_prefix(&n.root).filter(|r| r.starts_with('/'))
        };
        if let Some(rest) = rest {
            let base = n.mount_point.trim_end_matches('/');
            let p = format!("{base}{rest}");
            out.push(if p.is_empty() { "/".to_string() } else { normalize(&p) });
        }
    }
    out
}

/// A path without trailing slashes (`/` stays `/`).
fn normalize(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() && p.starts_with('/') { "/".to_string() } else { t.to_string() }
}

/// One fstab entry, fields decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FstabEntry {
    pub src: String,
    pub path: String,
    pub fstype: String,
    pub opts: String,
    pub dump: String,
    pub passno: String,
}

impl FstabEntry {
    /// The fstab line for this entry, fields escaped, ending in a newline.
    pub fn line(&self) -> String {
        format!(
            "{} {} {} {} {} {}\n",
            fstab_escape(&self.src),
            fstab_escape(&self.path),
            fstab_escape(&self.fstype),
            fstab_escape(&self.opts),
            fstab_escape(&self.dump),
            fstab_escape(&self.passno)
        )
    }
}

/// Parse an fstab line: `None` for blank lines, comments and lines without 4 to 6 fields.
/// A word starting with `#` starts a comment.
pub fn parse_fstab_line(line: &str) -> Option<FstabEntry> {
    let t = line.trim();
    if t.is_empty() || t.starts_with('#') {
        return None;
    }
    let f: Vec<&str> = t.split_whitespace().take_while(|w| !w.starts_with('#')).collect();
    if !(4..=6).contains(&f.len()) {
        return None;
    }
    Some(FstabEntry {
        src: unescape_octal(f[0]),
        path: unescape_octal(f[1]),
        fstype: unescape_octal(f[2]),
        opts: unescape_octal(f[3]),
        dump: f.get(4).map(|s| unescape_octal(s)).unwrap_or_else(zero),
        passno: f.get(5).map(|s| unescape_octal(s)).unwrap_or_else(zero),
    })
}

/// Lines with their newline (the last one may have none).
fn lines_keep(s: &str) -> Vec<&str> {
    s.split_inclusive('\n').collect()
}

/// Is `e` the entry for mount point `path`? Swap lines (`none`) are told apart by `src`.
fn entry_matches(e: &FstabEntry, path: &str, src: Option<&str>) -> bool {
    if normalize(&e.path) != normalize(path) {
        return false;
    }
    !(e.path == "none" && e.fstype == "swap" && src.is_some_and(|s| s != e.src))
}

/// The fstab text with `want` as the entry for its path: the first matching line replaced (kept
/// byte for byte when it already says the same), further lines for the same path dropped, or the
/// line appended. Every other byte is kept. `None` when nothing changes.
pub fn fstab_set(content: &str, want: &FstabEntry) -> Option<String> {
    let norm = FstabEntry { path: normalize(&want.path), ..want.clone() };
    let mut out = String::with_capacity(content.len() + 80);
    let mut found = false;
    let mut changed = false;
    for line in lines_keep(content) {
        match parse_fstab_line(line) {
            Some(e) if entry_matches(&e, &want.path, Some(&want.src)) => {
                if found {
                    changed = true;
                } else if (FstabEntry { path: normalize(&e.path), ..e }) == norm {
                    out.push_str(line);
                    found = true;
                } else {
                    out.push_str(&want.line());
                    found = true;
                    changed = true;
                }
            }
            _ => out.push_str(line),
        }
    }
    if !found {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&want.line());
        changed = true;
    }
    changed.then_some(out)
}

/// The fstab text without the entries for `path` (`src` tells swap lines apart). `None` when
/// there is none.
pub fn fstab_remove(content: &str, path: &str, src: Option<&str>) -> Option<String> {
    let mut out = String::with_capacity(content.len());
    let mut changed = false;
    for line in lines_keep(content) {
        match parse_fstab_line(line) {
            Some(e) if entry_matches(&e, path, src) => changed = true,
            _ => out.push_str(line),
        }
    }
    changed.then_some(out)
}

/// The fstab file as probed.
#[derive(Debug, Clone)]
pub struct FstabNow {
    pub path: String,
    /// `None` when the file does not exist.
    pub content: Option<String>,
}

/// What the probe learned.
#[derive(Debug, Clone)]
pub struct MountState {
    /// The fstab file (only for states that use it).
    pub fstab: Option<FstabNow>,
    /// "directory", another kind, or `None` when the mount point does not exist.
    pub path_kind: Option<String>,
    /// The mount visible at the path.
    pub live: Option<MountInfo>,
    /// Whether `live` is `src` with `fstype` (same device, or same directory for bind mounts).
    pub same_source: bool,
}

/// One step of the plan, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    CreateDir,
    /// Unmount before anything else (for `absent`, and another filesystem mounted at `mounted`).
    Unmount,
    WriteFstab {
        before: String,
        after: String,
    },
    /// `mount PATH` (fstab) or `mount -t -o SRC PATH`.
    Mount,
    Remount,
}

fn describe(live: &MountInfo) -> String {
    format!("{} ({})", live.source, live.fstype)
}

/// The steps turning `st` into `p`, with their words.
fn steps(p: &MountParams, st: &MountState) -> Result<Vec<(Step, Change)>, ModuleError> {
    use MountStateWanted as S;
    let path = &p.path;
    let mut out = vec![];
    let fstab_name = &p.fstab;
    let fstab_text = st.fstab.as_ref().and_then(|f| f.content.clone());
    let want_entry = || FstabEntry {
        src: p.src.clone().unwrap_or_default(),
        path: normalize(path),
        fstype: p.fstype.clone().unwrap_or_default(),
        opts: p.effective_opts(),
        dump: p.dump.clone(),
        passno: p.passno.clone(),
    };
    let fstab_change = |out: &mut Vec<(Step, Change)>, set: bool| {
        let before = fstab_text.clone().unwrap_or_default();
        let after = if set { fstab_set(&before, &want_entry()) } else { fstab_remove(&before, path, p.src.as_deref()) };
        let Some(after) = after else { return false };
        let words = match (set, fstab_text.is_some()) {
            (false, _) => format!("remove {path} from {fstab_name}"),
            (true, false) => format!("create {fstab_name} with an entry for {path}"),
            (true, true)
                if before.lines().filter_map(parse_fstab_line).any(|e| entry_matches(&e, path, p.src.as_deref())) =>
            {
                format!("update the entry for {path} in {fstab_name}")
            }
            (true, true) => format!("add {path} to {fstab_name}"),
        };
        let diff = Diff::file(fstab_name, before.clone(), after.clone());
        out.push((Step::WriteFstab { before, after }, Change::new(words).with_diff(diff)));
        true
    };
    let src = p.src.as_deref().unwrap_or("");
    let mkdir = |out: &mut Vec<(Step, Change)>| {
        if st.path_kind.is_none() {
            out.push((Step::CreateDir, Change::create(format!("create mount point {path}"))));
        }
    };
    match p.state {
        S::Present => {
            fstab_change(&mut out, true);
        }
        S::AbsentFromFstab => {
            fstab_change(&mut out, false);
        }
        S::Unmounted => {
            if let Some(l) = &st.live {
                out.push((Step::Unmount, Change::new(format!("unmount {path} ({})", describe(l)))));
            }
        }
        S::Absent => {
            if let Some(l) = &st.live {
                out.push((Step::Unmount, Change::new(format!("unmount {path} ({})", describe(l)))));
            }
            fstab_change(&mut out, false);
        }
        S::Mounted => {
            mkdir(&mut out);
            match &st.live {
                Some(l) if !st.same_source => {
                    out.push((
                        Step::Unmount,
                        Change::new(format!(
                            "unmount {path}: {} is mounted there, not {src} ({})",
                            describe(l),
                            p.fstype.as_deref().unwrap_or("")
                        )),
                    ));
                    fstab_change(&mut out, true);
                    out.push((Step::Mount, Change::new(format!("mount {src} on {path}"))));
                }
                Some(_) => {
                    if fstab_change(&mut out, true) {
                        out.push((Step::Remount, Change::new(format!("remount {path} (its fstab entry changed)"))));
                    }
                }
                None => {
                    fstab_change(&mut out, true);
                    out.push((Step::Mount, Change::new(format!("mount {src} on {path}"))));
                }
            }
        }
        S::Ephemeral => match &st.live {
            Some(l) if !st.same_source => {
                return Err(ModuleError::new(format!(
                    "{path} is already mounted from {}, not {src}: refusing to unmount or override it \
                     (use state: unmounted first, or another path)",
                    describe(l)
                )));
            }
            Some(_) => {}
            None => {
                mkdir(&mut out);
                out.push((Step::Mount, Change::new(format!("mount {src} on {path} (not in fstab)"))));
            }
        },
        S::Remounted => {
            if st.live.is_none() {
                return Err(ModuleError::new(format!("cannot remount {path}: nothing is mounted there")));
            }
            out.push((Step::Remount, Change::new(format!("remount {path}"))));
        }
    }
    Ok(out)
}

/// `mount -t FSTYPE [-o OPTS] SRC PATH`, for mounts that do not go through /etc/fstab.
fn explicit_mount(p: &MountParams) -> String {
    let opts = p.effective_opts();
    let o = if opts == "defaults" { String::new() } else { format!(" -o {}", sh_quote(&opts)) };
    format!(
        "mount -t {}{o} {} {}",
        sh_quote(p.fstype.as_deref().unwrap_or("auto")),
        sh_quote(p.src.as_deref().unwrap_or("")),
        sh_quote(&p.path)
    )
}

/// A mount/umount script that names a missing program.
fn tool(tool: &str, script: &str) -> String {
    format!(
        "command -v {tool} >/dev/null 2>&1 || {{ echo '`{tool}` was not found on the host (install util-linux)' >&2; \
         exit 127; }}\n{script}"
    )
}

/// The ops of the steps, in order. A mount that fails after this plan wrote the fstab puts the old
/// fstab back (an entry that cannot mount could stop the next boot).
fn ops(p: &MountParams, st: &MountState, steps: &[(Step, Change)]) -> Vec<Op> {
    let path = sh_quote(&p.path);
    let fstab = st.fstab.as_ref().map(|f| f.path.clone()).unwrap_or_else(|| p.fstab.clone());
    let exists = st.fstab.as_ref().is_some_and(|f| f.content.is_some());
    // how to undo this plan's fstab write, once written
    let mut undo: Option<String> = None;
    let mut ops = vec![];
    for (step, change) in steps {
        let what = change.summary.clone();
        let run = |script: String| Op::Run { what: what.clone(), script, stdin: None, makes: vec![], removes: vec![] };
        match step {
            Step::CreateDir => ops.push(Op::MakeDir { path: p.path.clone(), attrs: Default::default() }),
            Step::Unmount => ops.push(run(tool("umount", &format!("umount {path}")))),
            Step::WriteFstab { before, after } => {
                if !exists && let Some(dir) = crate::boot_util::parent(&fstab) {
                    ops.push(Op::MakeDir { path: dir.to_string(), attrs: Default::default() });
                }
                // an existing file keeps its mode and owner; a new one is 0644
                ops.push(Op::WriteFile {
                    path: fstab.clone(),
                    content: after.as_bytes().to_vec(),
                    mode: if exists { None } else { Some(0o644) },
                    owner: None,
                    group: None,
                    backup: exists && p.backup,
                    validate: None,
                });
                let f = sh_quote(&fstab);
                undo = Some(if exists {
                    // the old content into a temp file beside it, with the file's attributes
                    // where chmod/chown know --reference, then renamed over it
                    format!(
                        "t={f}.pbr-restore; printf '%s' {} > \"$t\" && {{ chmod --reference={f} \"$t\" 2>/dev/null; \
                         chown --reference={f} \"$t\" 2>/dev/null; mv -f \"$t\" {f}; }}",
                        sh_quote(before)
                    )
                } else {
                    format!("rm -f -- {f}")
                });
            }
            Step::Mount => {
                let script = if p.state == MountStateWanted::Mounted && p.default_fstab() {
                    format!("mount {path}")
                } else {
                    explicit_mount(p)
                };
                let script = match &undo {
                    Some(u) => format!("if ! out=$({script} 2>&1); then\n{u}\nprintf '%s\\n' \"$out\" >&2\nexit 1\nfi"),
                    None => script,
                };
                ops.push(run(tool("mount", &script)));
            }
            Step::Remount => {
                let opts = p.effective_opts();
                let explicit = p.state == MountStateWanted::Remounted || !p.default_fstab();
                let o = if explicit && opts != "defaults" {
                    sh_quote(&format!("remount,{opts}"))
                } else {
                    "remount".to_string()
                };
                let remount = format!("mount -o {o} {path}");
                let script = if p.state == MountStateWanted::Remounted {
                    remount
                } else {
                    // some filesystems cannot change these options live: unmount and mount
                    let again = if p.default_fstab() { format!("mount {path}") } else { explicit_mount(p) };
                    format!("{remount} 2>/dev/null || {{ umount {path} && {again}; }}")
                };
                ops.push(run(tool("mount", &script)));
            }
        }
    }
    ops
}

/// The probe's `sh` part: the mount point's kind and real path, and the device and real path
/// `src` names.
fn probe_script(path: &str, src: Option<&str>) -> String {
    let mut s = String::from("export LC_ALL=C\n");
    if path.starts_with('/') {
        s.push_str(&format!(
            "p={}\nif [ -d \"$p\" ]; then echo 'KIND directory'; elif [ -e \"$p\" ] || [ -L \"$p\" ]; then echo 'KIND other'; fi\n\
             r=$(readlink -f -- \"$p\" 2>/dev/null) && [ -n \"$r\" ] && echo \"REAL $r\"\n",
            sh_quote(path)
        ));
    }
    if let Some(src) = src {
        s.push_str(&format!(
            "s={}\nl=\"$s\"\n\
             case \"$s\" in\n\
             UUID=*) l=\"/dev/disk/by-uuid/${{s#UUID=}}\";;\n\
             LABEL=*) l=\"/dev/disk/by-label/${{s#LABEL=}}\";;\n\
             PARTUUID=*) l=\"/dev/disk/by-partuuid/${{s#PARTUUID=}}\";;\n\
             PARTLABEL=*) l=\"/dev/disk/by-partlabel/${{s#PARTLABEL=}}\";;\n\
             esac\n\
             case \"$s\" in UUID=*|LABEL=*|PARTUUID=*|PARTLABEL=*)\n\
             [ -b \"$l\" ] || l=$(blkid -l -o device -t \"$s\" 2>/dev/null || findfs \"$s\" 2>/dev/null);;\n\
             esac\n\
             if [ -n \"$l\" ] && [ -b \"$l\" ]; then\n\
             ma=$(stat -L -c %t -- \"$l\" 2>/dev/null) && mi=$(stat -L -c %T -- \"$l\" 2>/dev/null) && \
             echo \"SRCDEV $(printf '%d:%d' \"0x$ma\" \"0x$mi\")\"\n\
             fi\n\
             case \"$s\" in /*) r=$(readlink -f -- \"$s\" 2>/dev/null) && [ -n \"$r\" ] && echo \"SRCREAL $r\";; esac\n",
            sh_quote(src)
        ));
    }
    s.push_str("exit 0\n");
    s
}

/// Does the live mount `l` show `src`/`fstype`? Pure; `src_dev` and `src_real` come from the probe.
pub fn same_source(
    mounts: &[MountInfo],
    l: &MountInfo,
    src: &str,
    fstype: Option<&str>,
    opts: &str,
    src_dev: Option<&str>,
    src_real: Option<&str>,
) -> bool {
    let bind = opts.split(',').any(|o| o == "bind" || o == "rbind");
    if bind {
        let want = src_real.map(normalize).unwrap_or_else(|| normalize(src));
        return bind_sources(mounts, l).contains(&want) || (l.root == "/" && normalize(&l.source) == want);
    }
    let fs_ok = match fstype {
        None | Some("auto") | Some("none") | Some("") => true,
        Some(f) => f == l.fstype || (f == "nfs" && l.fstype == "nfs4") || (f == "nfs4" && l.fstype == "nfs"),
    };
    if !fs_ok {
        return false;
    }
    if normalize(&l.source) == normalize(src) {
        return true;
    }
    src_dev.is_some_and(|d| d == l.dev && l.root == "/")
}

pub struct Mount;

#[async_trait]
impl Module for Mount {
    type Params = MountParams;
    type State = MountState;
    const NAME: &'static str = "mount";

    fn convergent(&self, p: &MountParams) -> bool {
        p.state != MountStateWanted::Remounted
    }

    fn doc(&self) -> Doc {
        Doc {
            description: "Manage a filesystem's fstab entry and whether it is mounted (Ansible's \
                          ansible.posix.mount). The fstab file is edited line by line: the entry for `path` is \
                          added, replaced or removed and every other line and comment is kept byte for byte; \
                          spaces in fields are written as `\\040`. `--diff` shows the fstab change. The live state \
                          comes from /proc/self/mountinfo; a source is the same when it names the same device \
                          (UUID=, LABEL=, /dev/disk/by-* and /dev/mapper names resolve to it), or the same \
                          directory for bind mounts. `mounted` mounts through /etc/fstab (`mount PATH`), or with \
                          explicit `-t`/`-o` when `fstab` is another file. Differences from Ansible: `absent` \
                          keeps the mount point directory; `ephemeral` is ok when the same source is already \
                          mounted there (Ansible remounts every time); `mounted` unmounts another filesystem \
                          mounted at `path` before mounting `src`. Linux hosts only.",
            examples: r#"- name: Data disk, mounted at boot and now
  mount:
    path: /srv/data
    src: UUID=0f3a9c1e-5b0d-4c1e-9a57-2f6f8e1b9c42
    fstype: ext4
    opts: noatime
    passno: 2
    state: mounted

- name: NFS share in fstab only, not at boot
  ansible.posix.mount:
    path: /mnt/backup
    src: nas:/export/backup
    fstype: nfs
    opts: ro
    boot: false
    state: present

- name: A scratch tmpfs until reboot
  mount:
    path: /mnt/scratch
    src: tmpfs
    fstype: tmpfs
    opts: size=512m
    state: ephemeral

- name: Retire the old disk
  mount:
    path: /srv/old
    state: absent
"#,
        }
    }

    fn validate(&self, p: &MountParams) -> Result<(), String> {
        use MountStateWanted as S;
        let swap_line = p.path == "none"
            && p.fstype.as_deref() == Some("swap")
            && matches!(p.state, S::Present | S::Absent | S::AbsentFromFstab);
        if !p.path.starts_with('/') && !swap_line {
            return Err(format!("path must be an absolute path, got {:?}", p.path));
        }
        if matches!(p.state, S::Mounted | S::Present | S::Ephemeral) {
            for (k, v) in [("src", &p.src), ("fstype", &p.fstype)] {
                if v.as_deref().is_none_or(str::is_empty) {
                    return Err(format!("state {} needs {k}", p.state.word()));
                }
            }
        }
        if !p.fstab.starts_with('/') {
            return Err(format!("fstab must be an absolute path, got {:?}", p.fstab));
        }
        let mut fields: Vec<(&str, &str)> =
            vec![("path", &p.path), ("opts", &p.opts), ("dump", &p.dump), ("passno", &p.passno), ("fstab", &p.fstab)];
        if let Some(s) = &p.src {
            fields.push(("src", s));
        }
        if let Some(f) = &p.fstype {
            fields.push(("fstype", f));
        }
        for (k, v) in fields {
            if v.chars().any(|c| c.is_control() && c != '\t') {
                return Err(format!("{k} must not contain newlines or control characters: {v:?}"));
            }
            if v.starts_with('-') {
                return Err(format!("{k} must not start with '-': {v:?}"));
            }
        }
        for (k, v) in [("opts", p.opts.as_str()), ("fstype", p.fstype.as_deref().unwrap_or("x"))] {
            if v.is_empty() || v.chars().any(char::is_whitespace) {
                return Err(format!("{k} must be a non-empty word without spaces: {v:?}"));
            }
        }
        for (k, v) in [("dump", &p.dump), ("passno", &p.passno)] {
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("{k} must be a number, got {v:?}"));
            }
        }
        Ok(())
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &MountParams, host: &ReadHost) -> Result<MountState, ModuleError> {
        let fstab = if p.state.uses_fstab() {
            let f = util::probe_file(host, &p.fstab, true, true).await?;
            let content = match &f.stat {
                None => None,
                Some(s) if s.kind != "file" => {
                    return Err(ModuleError::new(format!("{} is a {}, not a file", p.fstab, s.kind)));
                }
                Some(_) => {
                    let bytes = f.content.ok_or_else(|| {
                        ModuleError::new(format!("{} is larger than 1 MiB; refusing to edit it", p.fstab))
                    })?;
                    Some(
                        String::from_utf8(bytes)
                            .map_err(|_| ModuleError::new(format!("{} is not UTF-8 text", p.fstab)))?,
                    )
                }
            };
            // through a symlink, the file it points to is the one edited
            let path = if f.stat.is_some() { f.path.clone() } else { p.fstab.clone() };
            Some(FstabNow { path, content })
        } else {
            None
        };
        let info = host.read_file("/proc/self/mountinfo").await?.ok_or_else(|| {
            ModuleError::new("cannot read /proc/self/mountinfo: the mount module supports Linux hosts only")
        })?;
        let mounts = parse_mountinfo(&String::from_utf8_lossy(&info));
        let out = host.query_sh(probe_script(&p.path, p.src.as_deref())).await?;
        if out.rc != 0 {
            return Err(ModuleError::new(format!("cannot inspect {}: {}", p.path, out.stderr_str().trim())));
        }
        let text = out.stdout_str();
        let field = |k: &str| text.lines().find_map(|l| l.strip_prefix(k)).map(str::to_string);
        let path_kind = field("KIND ");
        let real = field("REAL ").filter(|_| path_kind.is_some());
        let live = real
            .as_deref()
            .and_then(|r| mount_at(&mounts, r))
            .or_else(|| if p.path.starts_with('/') { mount_at(&mounts, &p.path) } else { None })
            .cloned();
        let same = match (&live, &p.src) {
            (Some(l), Some(src)) => same_source(
                &mounts,
                l,
                src,
                p.fstype.as_deref(),
                &p.opts,
                field("SRCDEV ").as_deref(),
                field("SRCREAL ").as_deref(),
            ),
            _ => false,
        };
        Ok(MountState { fstab, path_kind, live, same_source: same })
    }

    fn plan(&self, p: &MountParams, st: &MountState) -> Result<Plan, ModuleError> {
        let steps = steps(p, st)?;
        let ops = ops(p, st, &steps);
        Ok(Plan { changes: steps.into_iter().map(|(_, c)| c).collect(), ops })
    }

    fn data(&self, p: &MountParams, st: &MountState) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("name".into(), Value::String(p.path.clone()));
        if let Some(s) = &p.src {
            m.insert("src".into(), Value::String(s.clone()));
        }
        if let Some(f) = &p.fstype {
            m.insert("fstype".into(), Value::String(f.clone()));
        }
        m.insert("opts".into(), Value::String(p.effective_opts()));
        m.insert("dump".into(), Value::String(p.dump.clone()));
        m.insert("passno".into(), Value::String(p.passno.clone()));
        m.insert("fstab".into(), Value::String(p.fstab.clone()));
        m.insert("boot".into(), Value::String(if p.boot { "yes" } else { "no" }.into()));
        if let Some(l) = &st.live {
            m.insert("mounted_src".into(), Value::String(l.source.clone()));
            m.insert("mounted_fstype".into(), Value::String(l.fstype.clone()));
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from /proc/self/mountinfo on a build machine (plus a bind mount and a mount
    /// point with a space, made there with `mount --bind` and `mount -t tmpfs`).
    const MOUNTINFO: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334096k,nr_inodes=3083524,mode=755
25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24683568k
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534
28 27 0:25 / /mnt/sandboxing/model_tools_env/v1/python ro,nosuid,nodev,relatime - tmpfs model_tools_unavailable ro,size=4k,mode=755
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
45 27 0:40 / /tmp/mt\\040x rw,relatime - tmpfs tmpfs rw,size=1024k
46 27 254:0 /srv/data /mnt/bind rw,relatime shared:1 master:2 - ext4 /dev/vda rw,discard
47 27 0:40 /sub /mnt/sub rw,relatime - tmpfs tmpfs rw,size=1024k
";

    #[test]
    fn parses_mountinfo() {
        let m = parse_mountinfo(MOUNTINFO);
        assert_eq!(m.len(), 12);
        let root = mount_at(&m, "/").unwrap();
        assert_eq!((root.source.as_str(), root.fstype.as_str(), root.dev.as_str()), ("/dev/vda", "ext4", "254:0"));
        assert_eq!(root.super_opts, "rw,discard,resv_strict,resuid=65534,resgid=65534");
        let sp = mount_at(&m, "/tmp/mt x").unwrap();
        assert_eq!((sp.id, sp.parent, sp.source.as_str()), (45, 27, "tmpfs"));
        assert!(mount_at(&m, "/tmp/mt x/").is_some(), "trailing slash");
        assert!(mount_at(&m, "/tmp").is_none());
        // optional fields before the separator
        let b = mount_at(&m, "/mnt/bind").unwrap();
        assert_eq!((b.root.as_str(), b.fstype.as_str(), b.source.as_str()), ("/srv/data", "ext4", "/dev/vda"));
        assert_eq!(b.opts, "rw,relatime");
        assert!(parse_mountinfo("garbage\n1 2 3\n").is_empty());
    }

    #[test]
    fn stacked_mounts_show_the_last() {
        let text = "27 1 254:0 / / rw - ext4 /dev/vda rw\n50 27 0:41 / /mnt rw - tmpfs a rw\n51 50 0:42 / /mnt rw - tmpfs b rw\n";
        let m = parse_mountinfo(text);
        assert_eq!(mount_at(&m, "/mnt").unwrap().source, "b");
    }

    #[test]
    fn bind_mounts_and_devices() {
        let m = parse_mountinfo(MOUNTINFO);
        let b = mount_at(&m, "/mnt/bind").unwrap();
        assert_eq!(bind_sources(&m, b), vec!["/srv/data".to_string()]);
        assert!(same_source(&m, b, "/srv/data/", Some("none"), "bind", None, None));
        assert!(!same_source(&m, b, "/srv/other", Some("none"), "bind", None, None));
        let sub = mount_at(&m, "/mnt/sub").unwrap();
        assert!(bind_sources(&m, sub).contains(&"/tmp/mt x/sub".to_string()));
        let root = mount_at(&m, "/").unwrap();
        // same name, same device under another name, other device, other type
        assert!(same_source(&m, root, "/dev/vda", Some("ext4"), "defaults", None, None));
        assert!(same_source(&m, root, "UUID=abc", Some("ext4"), "defaults", Some("254:0"), None));
        assert!(!same_source(&m, root, "UUID=abc", Some("ext4"), "defaults", Some("8:1"), None));
        assert!(!same_source(&m, root, "/dev/vda", Some("xfs"), "defaults", None, None));
        assert!(same_source(&m, root, "/dev/vda", Some("auto"), "defaults", None, None));
    }

    #[test]
    fn escapes() {
        assert_eq!(unescape_octal(r"/a\040b\011c\134d\012"), "/a b\tc\\d\n");
        assert_eq!(unescape_octal(r"\04"), r"\04");
        assert_eq!(unescape_octal(r"x\999"), r"x\999");
        assert_eq!(fstab_escape("/mnt/my disk\\x"), r"/mnt/my\040disk\134x");
        assert_eq!(unescape_octal(&fstab_escape("a b\tc\\")), "a b\tc\\");
    }

    fn entry(path: &str, src: &str) -> FstabEntry {
        FstabEntry {
            src: src.into(),
            path: path.into(),
            fstype: "ext4".into(),
            opts: "defaults".into(),
            dump: "0".into(),
            passno: "2".into(),
        }
    }

    #[test]
    fn fstab_edits() {
        let text =
            "# /etc/fstab\nUUID=1\t/\text4\terrors=remount-ro 0 1\n\n/dev/sdb1  /srv  ext4 defaults 0 2 # data\n";
        // same entry: nothing to do, whatever the spacing and the trailing comment
        assert_eq!(fstab_set(text, &entry("/srv", "/dev/sdb1")), None);
        assert_eq!(fstab_set(text, &entry("/srv/", "/dev/sdb1")), None);
        // replaced in place
        let new = fstab_set(text, &entry("/srv", "/dev/sdc1")).unwrap();
        assert_eq!(new, "# /etc/fstab\nUUID=1\t/\text4\terrors=remount-ro 0 1\n\n/dev/sdc1 /srv ext4 defaults 0 2\n");
        // appended, after adding the missing final newline
        let new = fstab_set("UUID=1 / ext4 defaults 0 1", &entry("/mnt/my disk", "LABEL=a b")).unwrap();
        assert_eq!(new, "UUID=1 / ext4 defaults 0 1\nLABEL=a\\040b /mnt/my\\040disk ext4 defaults 0 2\n");
        // duplicates dropped
        let dup = "/dev/a /x ext4 defaults 0 2\n/dev/b /x ext4 defaults 0 2\n";
        assert_eq!(fstab_set(dup, &entry("/x", "/dev/a")).unwrap(), "/dev/a /x ext4 defaults 0 2\n");
        // 4 fields: dump and passno default to 0
        let four = "/dev/a /x ext4 defaults\n";
        assert_eq!(fstab_set(four, &FstabEntry { passno: "0".into(), ..entry("/x", "/dev/a") }), None);
        // removal keeps everything else
        assert_eq!(
            fstab_remove(text, "/srv", None).unwrap(),
            "# /etc/fstab\nUUID=1\t/\text4\terrors=remount-ro 0 1\n\n"
        );
        assert_eq!(fstab_remove(text, "/nothere", None), None);
        // escaped paths match decoded
        assert_eq!(fstab_remove("a /my\\040x t o 0 0\n", "/my x", None).unwrap(), "");
        // swap lines told apart by src
        let swap = "/dev/a none swap sw 0 0\n/dev/b none swap sw 0 0\n";
        assert_eq!(fstab_remove(swap, "none", Some("/dev/b")).unwrap(), "/dev/a none swap sw 0 0\n");
    }

    fn params(v: Value) -> MountParams {
        serde_json::from_value(v).unwrap()
    }

    fn st(live: Option<&str>, same: bool, fstab: Option<&str>) -> MountState {
        MountState {
            fstab: Some(FstabNow { path: "/etc/fstab".into(), content: fstab.map(str::to_string) }),
            path_kind: Some("directory".into()),
            live: live.map(|s| MountInfo {
                id: 50,
                parent: 1,
                dev: "8:1".into(),
                root: "/".into(),
                mount_point: "/srv".into(),
                opts: "rw".into(),
                fstype: "ext4".into(),
                source: s.into(),
                super_opts: "rw".into(),
            }),
            same_source: same,
        }
    }

    fn words(p: &MountParams, s: &MountState) -> Vec<String> {
        Mount.plan(p, s).unwrap().changes.into_iter().map(|c| c.summary).collect()
    }

    #[test]
    fn plans() {
        let line = "/dev/sdb1 /srv ext4 defaults 0 0\n";
        let p = params(serde_json::json!({"path": "/srv", "src": "/dev/sdb1", "fstype": "ext4", "state": "mounted"}));
        assert!(words(&p, &st(Some("/dev/sdb1"), true, Some(line))).is_empty());
        assert_eq!(words(&p, &st(None, false, Some(line))), vec!["mount /dev/sdb1 on /srv"]);
        assert_eq!(
            words(&p, &st(Some("/dev/sdb1"), true, Some(""))),
            vec!["add /srv to /etc/fstab", "remount /srv (its fstab entry changed)"]
        );
        let w = words(&p, &st(Some("/dev/sdc9"), false, Some(line)));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].starts_with("unmount /srv: /dev/sdc9 (ext4) is mounted there, not /dev/sdb1"), "{w:?}");
        let mut nodir = st(None, false, None);
        nodir.path_kind = None;
        assert_eq!(
            words(&p, &nodir),
            vec!["create mount point /srv", "create /etc/fstab with an entry for /srv", "mount /dev/sdb1 on /srv"]
        );
        let p = params(serde_json::json!({"path": "/srv", "state": "absent"}));
        assert_eq!(
            words(&p, &st(Some("/dev/sdb1"), false, Some(line))),
            vec!["unmount /srv (/dev/sdb1 (ext4))", "remove /srv from /etc/fstab"]
        );
        assert!(words(&p, &st(None, false, None)).is_empty());
        let p = params(serde_json::json!({"path": "/srv", "src": "tmpfs", "fstype": "tmpfs", "state": "ephemeral"}));
        assert!(Mount.plan(&p, &st(Some("/dev/sdb1"), false, None)).is_err());
        assert!(words(&p, &st(Some("tmpfs"), true, None)).is_empty());
        let p = params(serde_json::json!({"path": "/srv", "state": "remounted"}));
        assert!(Mount.plan(&p, &st(None, false, None)).is_err());
        assert_eq!(words(&p, &st(Some("x"), false, None)), vec!["remount /srv"]);
    }

    #[test]
    fn validation() {
        let ok = |v: Value| Mount.validate(&params(v));
        assert!(
            ok(serde_json::json!({"path": "/srv", "state": "mounted", "src": "/dev/a"}))
                .unwrap_err()
                .contains("fstype")
        );
        assert!(ok(serde_json::json!({"path": "srv", "state": "unmounted"})).unwrap_err().contains("absolute"));
        assert!(ok(serde_json::json!({"path": "/srv", "state": "unmounted", "opts": "a b"})).is_err());
        assert!(ok(serde_json::json!({"path": "/s\nx", "state": "unmounted"})).is_err());
        assert!(
            ok(serde_json::json!({"path": "/srv", "state": "present", "src": "a", "fstype": "b", "dump": "x"}))
                .is_err()
        );
        assert!(
            ok(serde_json::json!({"path": "/my disk", "state": "present", "src": "a", "fstype": "b", "passno": 2}))
                .is_ok()
        );
        assert!(ok(serde_json::json!({"path": "none", "state": "present", "src": "/dev/a", "fstype": "swap"})).is_ok());
        let p = params(serde_json::json!({"name": "/x", "state": "present", "boot": "no", "opts": "ro"}));
        assert_eq!(p.effective_opts(), "ro,noauto");
    }
}
