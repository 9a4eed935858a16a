//! Inspecting paths: what file modules probe most (lstat, link target, content or checksum,
//! access), for many paths at once.
//!
//! Two ways give the same answers. The portable one is a `sh` script per batch of paths: it
//! works through any `become` and on any POSIX host. Where they can, transports answer from a
//! file system API instead ([`NativeFs`]: SFTP over SSH — the login user's server, or the
//! host's `sftp-server` started once through `sudo`/`doas` — and the local file system for
//! `connection: local` without `become`), which starts no program per probe. Whatever the native way cannot answer exactly (a
//! uid without a name, a file too large to read whole, a permission error) goes to the script.

use crate::host::{Become, Cmd, Connection, FileStat, HostError, STAT_FMT, parse_stat_line, sh_quote};
use async_trait::async_trait;
use futures::StreamExt;
use sha1::{Digest, Sha1};

/// Regular files up to this size are read whole; larger ones are compared by checksum.
pub const READ_LIMIT: u64 = 1 << 20;

/// What to learn about one path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathQuery {
    pub path: String,
    /// When the path is a symlink to an existing path, report on the link's final target
    /// (`readlink -f`); [`PathInfo::path`] then names it.
    pub follow: bool,
    /// For a symlink to an existing path, also `stat` through it ([`PathInfo::target`]).
    pub target: bool,
    /// Read a regular file (not a link) up to [`READ_LIMIT`] bytes; its sha1 beyond.
    pub content: bool,
    /// sha1 of what the path reads as, when it is a readable regular file (through links).
    pub checksum: bool,
    /// Whether the user the probe runs as may read, write, execute the path (`test -r/-w/-x`).
    pub access: bool,
    /// Access and change times, device, inode and link count ([`PathInfo::ext`]); asked
    /// through the script (SFTP's attributes do not carry them).
    pub ext: bool,
}

impl PathQuery {
    pub fn new(path: impl Into<String>) -> PathQuery {
        PathQuery { path: path.into(), ..Default::default() }
    }
    pub fn follow(mut self, yes: bool) -> PathQuery {
        self.follow = yes;
        self
    }
    pub fn target(mut self) -> PathQuery {
        self.target = true;
        self
    }
    pub fn content(mut self, yes: bool) -> PathQuery {
        self.content = yes;
        self
    }
    pub fn checksum(mut self, yes: bool) -> PathQuery {
        self.checksum = yes;
        self
    }
    pub fn access(mut self) -> PathQuery {
        self.access = true;
        self
    }
    pub fn ext(mut self, yes: bool) -> PathQuery {
        self.ext = yes;
        self
    }
    fn flags(&self) -> String {
        let mut f = String::from("-");
        for (on, c) in [
            (self.follow, 'f'),
            (self.target, 't'),
            (self.content, 'c'),
            (self.checksum, 's'),
            (self.access, 'a'),
            (self.ext, 'e'),
        ] {
            if on {
                f.push(c);
            }
        }
        f
    }
}

/// What was learned about one path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathInfo {
    /// The path reported on (the link's target with `follow`).
    pub path: String,
    /// `lstat` of [`PathInfo::path`]; `None` when nothing is there.
    pub stat: Option<FileStat>,
    /// `stat` through a symlink to an existing path (with `target`).
    pub target: Option<FileStat>,
    /// Content of a regular file up to [`READ_LIMIT`] bytes (with `content`).
    pub content: Option<Vec<u8>>,
    /// sha1 of a regular file too large to read (with `content`).
    pub sha1: Option<String>,
    /// sha1 of a readable regular file (with `checksum`).
    pub checksum: Option<String>,
    /// `r`, `w`, `x` as the probing user may (with `access`): e.g. `"rw"`.
    pub access: Option<String>,
    /// The rest of `lstat` of [`PathInfo::path`] (with `ext`).
    pub ext: Option<ExtStat>,
}

/// What `stat` reports beyond [`FileStat`]: Ansible's `atime`, `ctime`, `dev`, `inode`, `nlink`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtStat {
    pub atime: i64,
    /// The nanoseconds of `atime` where the host's `stat` gives them (GNU's `%.9X`), else 0.
    pub atime_nsec: u32,
    pub ctime: i64,
    pub ctime_nsec: u32,
    pub dev: u64,
    pub inode: u64,
    pub nlink: u64,
}

impl PathInfo {
    pub fn exists(&self) -> bool {
        self.stat.is_some()
    }
    /// "file", "directory", "link"... or `None` when nothing is there.
    pub fn kind(&self) -> Option<&str> {
        self.stat.as_ref().map(|s| s.kind.as_str())
    }
}

/// The script that answers `qs` on any POSIX host (GNU or busybox `stat`).
pub fn inspect_script(qs: &[PathQuery]) -> String {
    let mut s = format!(
        "probe() {{ p=$1; f=$2; case $f in *f*) if [ -L \"$p\" ] && [ -e \"$p\" ]; then p=$(readlink -f -- \"$p\") || exit 1; fi;; esac; \
         printf '%s\\n' \"$p\"; if [ -e \"$p\" ] || [ -L \"$p\" ]; then st=$(stat -c '{STAT_FMT}' -- \"$p\") || exit 1; printf '%s\\n' \"$st\"; \
         if [ -L \"$p\" ]; then readlink -- \"$p\"; else echo; fi; \
         case $f in *t*) if [ -L \"$p\" ] && [ -e \"$p\" ]; then stat -L -c '{STAT_FMT}' -- \"$p\" || exit 1; else echo; fi;; *) echo;; esac; \
         case $f in *a*) a=; [ -r \"$p\" ] && a=${{a}}r; [ -w \"$p\" ] && a=${{a}}w; [ -x \"$p\" ] && a=${{a}}x; echo \"=$a\";; *) echo;; esac; \
         case $f in *e*) stat -c '%.9X %.9Z %d %i %h' -- \"$p\" 2>/dev/null || stat -c '%X %Z %d %i %h' -- \"$p\" || exit 1;; *) echo;; esac; \
         case $f in *s*) if [ -f \"$p\" ] && [ -r \"$p\" ]; then h=$(sha1sum -- \"$p\") || exit 1; echo \"${{h%% *}}\"; else echo; fi;; *) echo;; esac; \
         case $f in *c*) if [ -f \"$p\" ] && [ ! -L \"$p\" ]; then t=${{st%|*}}; s=${{t##*|}}; \
         if [ \"$s\" -gt {READ_LIMIT} ]; then h=$(sha1sum -- \"$p\") || exit 1; echo H; echo \"${{h%% *}}\"; \
         else echo \"C $s\"; cat -- \"$p\" || exit 1; echo; fi; else echo N; fi;; *) echo N;; esac; \
         else echo ABSENT; fi; }}\n"
    );
    for q in qs {
        s.push_str(&format!("probe {} {}\n", sh_quote(&q.path), q.flags()));
    }
    s
}

/// Parse the output of [`inspect_script`].
pub fn parse_inspect(qs: &[PathQuery], out: &[u8]) -> Result<Vec<PathInfo>, HostError> {
    let mut rest = out;
    let mut v = Vec::with_capacity(qs.len());
    for q in qs {
        let bad = || HostError::Failed(format!("cannot parse the probe of {}", q.path));
        let (real, r) = take_line(rest);
        let mut info =
            PathInfo { path: if real.is_empty() { q.path.clone() } else { real.to_string() }, ..Default::default() };
        let (first, r) = take_line(r);
        if first == "ABSENT" {
            v.push(info);
            rest = r;
            continue;
        }
        let (link, r) = take_line(r);
        info.stat = Some(parse_stat_line(first, Some(link)).ok_or_else(bad)?);
        let (target, r) = take_line(r);
        if !target.is_empty() {
            info.target = Some(parse_stat_line(target, None).ok_or_else(bad)?);
        }
        let (access, r) = take_line(r);
        if let Some(a) = access.strip_prefix('=') {
            info.access = Some(a.to_string());
        }
        let (ext, r) = take_line(r);
        if !ext.is_empty() {
            let f: Vec<&str> = ext.split(' ').collect();
            let [at, ct, dev, inode, nlink] = f[..] else { return Err(bad()) };
            // seconds, with nanoseconds after a dot where `stat` gives them
            let time = |t: &str| -> Result<(i64, u32), HostError> {
                let (s, ns) = t.split_once('.').unwrap_or((t, "0"));
                let ns = format!("{ns:0<9}");
                Ok((s.parse().map_err(|_| bad())?, ns[..9].parse().map_err(|_| bad())?))
            };
            let u = |x: &str| x.parse::<u64>().map_err(|_| bad());
            let ((atime, atime_nsec), (ctime, ctime_nsec)) = (time(at)?, time(ct)?);
            info.ext = Some(ExtStat {
                atime,
                atime_nsec,
                ctime,
                ctime_nsec,
                dev: u(dev)?,
                inode: u(inode)?,
                nlink: u(nlink)?,
            });
        }
        let (sum, r) = take_line(r);
        if !sum.is_empty() {
            info.checksum = Some(sum.to_string());
        }
        let (tag, r) = take_line(r);
        let (tag, n) = tag.split_once(' ').unwrap_or((tag, ""));
        rest = match tag {
            "C" => {
                let n: usize = n.parse().map_err(|_| bad())?;
                // the file is followed by the newline the probe adds
                if r.len() < n + 1 || r[n] != b'\n' {
                    return Err(HostError::Failed(format!("{} changed while it was read; try again", q.path)));
                }
                info.content = Some(r[..n].to_vec());
                &r[n + 1..]
            }
            "H" => {
                let (h, r) = take_line(r);
                info.sha1 = Some(h.trim().to_string());
                r
            }
            "N" => r,
            _ => return Err(bad()),
        };
        v.push(info);
    }
    Ok(v)
}

fn take_line(buf: &[u8]) -> (&str, &[u8]) {
    match buf.iter().position(|&b| b == b'\n') {
        Some(i) => (std::str::from_utf8(&buf[..i]).unwrap_or(""), &buf[i + 1..]),
        None => (std::str::from_utf8(buf).unwrap_or(""), &[]),
    }
}

/// Answer `qs` with the script (batches of paths, one command each).
pub async fn shell_inspect<C: Connection + ?Sized>(
    conn: &C,
    qs: &[PathQuery],
    esc: Option<&Become>,
) -> Result<Vec<PathInfo>, HostError> {
    let mut v = Vec::with_capacity(qs.len());
    // batches keep the script well under the kernel's limit for one argument (128 KiB)
    let mut start = 0;
    while start < qs.len() {
        let mut end = start;
        let mut len = 0;
        while end < qs.len() && (end == start || len < 64 * 1024) {
            len += qs[end].path.len() + 16;
            end += 1;
        }
        let batch = &qs[start..end];
        let out = conn.exec(&Cmd::new(inspect_script(batch)), esc).await?;
        if out.rc != 0 {
            return Err(HostError::Failed(format!("cannot inspect {}: {}", batch[0].path, out.stderr_str().trim())));
        }
        v.extend(parse_inspect(batch, &out.stdout)?);
        start = end;
    }
    Ok(v)
}

/// The native way could not answer exactly: ask the script.
#[derive(Debug, Clone, Copy)]
pub struct Unsure;

/// `lstat`/`stat` as a file system API gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawStat {
    /// `st_mode`: type and permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
}

const S_IFMT: u32 = 0o170000;

impl RawStat {
    pub fn kind(&self) -> &'static str {
        match self.mode & S_IFMT {
            0o100000 => "file",
            0o040000 => "directory",
            0o120000 => "link",
            0o060000 => "block",
            0o020000 => "char",
            0o010000 => "fifo",
            0o140000 => "socket",
            _ => "other",
        }
    }
}

/// A file system API on the host, as the login user (no `become`).
#[async_trait]
pub trait NativeFs: Send + Sync {
    /// `lstat`; `Ok(None)` when the path does not exist.
    async fn lstat(&self, path: &str) -> Result<Option<RawStat>, Unsure>;
    /// `stat` through links; `Ok(None)` when the path (or a link's target) does not exist.
    async fn stat(&self, path: &str) -> Result<Option<RawStat>, Unsure>;
    async fn readlink(&self, path: &str) -> Result<String, Unsure>;
    /// The canonical absolute path, every link resolved.
    async fn realpath(&self, path: &str) -> Result<String, Unsure>;
    /// A whole regular file of `size` bytes (as its `stat` said; at most [`READ_LIMIT`]).
    async fn read(&self, path: &str, size: u64) -> Result<Vec<u8>, Unsure>;
    /// The names of a uid and a gid.
    async fn names(&self, uid: u32, gid: u32) -> Result<(String, String), Unsure>;
    /// `test -r/-w/-x` of a path whose `stat` (through links) is `st`.
    async fn access(&self, path: &str, st: &RawStat) -> Result<String, Unsure>;
}

async fn file_stat(fs: &dyn NativeFs, st: &RawStat, link: Option<String>) -> Result<FileStat, Unsure> {
    let (owner, group) = fs.names(st.uid, st.gid).await?;
    let kind = st.kind();
    Ok(FileStat {
        kind: kind.to_string(),
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        owner,
        group,
        size: st.size,
        mtime: st.mtime,
        link_target: if kind == "link" { link.filter(|l| !l.is_empty()) } else { None },
    })
}

fn sha1_hex(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

/// Answer one query through the native API, or say it cannot be answered exactly.
pub async fn native_one(fs: &dyn NativeFs, q: &PathQuery) -> Result<PathInfo, Unsure> {
    if q.ext {
        return Err(Unsure);
    }
    let mut info = PathInfo { path: q.path.clone(), ..Default::default() };
    let mut l = fs.lstat(&q.path).await?;
    // for a link: what is behind it (`stat` through it: `None` when dangling), asked only when
    // the query needs it
    let mut through: Option<Option<RawStat>> = None;
    if let Some(ls) = l
        && ls.kind() == "link"
        && (q.follow || q.target || q.access || q.checksum)
    {
        let t = fs.stat(&q.path).await?;
        through = Some(t);
        if q.follow && t.is_some() {
            // the final target is no link: its `stat` is its `lstat`
            info.path = fs.realpath(&q.path).await?;
            l = t;
            through = None;
        }
    }
    let Some(l) = l else { return Ok(info) };
    let is_link = l.kind() == "link";
    let link = if is_link { Some(fs.readlink(&info.path).await?) } else { None };
    info.stat = Some(file_stat(fs, &l, link).await?);
    // what `test -f/-r` and `sha1sum` see: the path through links
    let seen = match through {
        Some(t) => t,
        None => Some(l),
    };
    if q.target
        && is_link
        && let Some(t) = seen
    {
        info.target = Some(file_stat(fs, &t, None).await?);
    }
    if q.access {
        info.access = Some(match seen {
            Some(t) => fs.access(&info.path, &t).await?,
            None => String::new(),
        });
    }
    if q.checksum
        && let Some(t) = seen
        && t.kind() == "file"
    {
        if t.size > READ_LIMIT {
            return Err(Unsure);
        }
        let data = fs.read(&info.path, t.size).await?;
        info.checksum = Some(sha1_hex(&data));
    }
    if q.content && l.kind() == "file" {
        if l.size > READ_LIMIT {
            return Err(Unsure);
        }
        let data = fs.read(&info.path, l.size).await?;
        if data.len() as u64 != l.size {
            return Err(Unsure);
        }
        info.content = Some(data);
    }
    Ok(info)
}

/// Answer `qs` through `fs` (which acts as `esc` says), and what it cannot answer exactly
/// through the script.
pub async fn native_inspect<C: Connection + ?Sized>(
    conn: &C,
    fs: &dyn NativeFs,
    qs: &[PathQuery],
    esc: Option<&Become>,
) -> Result<Vec<PathInfo>, HostError> {
    let mut futs = Vec::with_capacity(qs.len());
    for q in qs {
        futs.push(native_one(fs, q));
    }
    let answers: Vec<Result<PathInfo, Unsure>> = futures::stream::iter(futs).buffered(32).collect().await;
    let unsure: Vec<usize> = answers.iter().enumerate().filter(|(_, a)| a.is_err()).map(|(i, _)| i).collect();
    let mut fallback = if unsure.is_empty() {
        Vec::new()
    } else {
        let sub: Vec<PathQuery> = unsure.iter().map(|&i| qs[i].clone()).collect();
        shell_inspect(conn, &sub, esc).await?
    }
    .into_iter();
    Ok(answers.into_iter().map(|a| a.unwrap_or_else(|_| fallback.next().unwrap_or_default())).collect())
}

/// Users and groups as `/etc/passwd` and `/etc/group` list them, for hosts reached through an
/// API that reports only numbers (SFTP).
#[derive(Debug, Clone, Default)]
pub struct IdTable {
    users: std::collections::HashMap<u32, String>,
    groups: std::collections::HashMap<u32, String>,
    /// uid, and every gid (primary and supplementary) of the login user.
    me: Option<(u32, Vec<u32>)>,
}

impl IdTable {
    pub fn parse(passwd: &str, group: &str, login: &str) -> IdTable {
        let mut t = IdTable::default();
        let mut me: Option<(u32, Vec<u32>)> = None;
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 || line.starts_with('#') {
                continue;
            }
            let (Ok(uid), Ok(gid)) = (f[2].parse::<u32>(), f[3].parse::<u32>()) else { continue };
            t.users.entry(uid).or_insert_with(|| f[0].to_string());
            if f[0] == login && me.is_none() {
                me = Some((uid, vec![gid]));
            }
        }
        for line in group.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 || line.starts_with('#') {
                continue;
            }
            let Ok(gid) = f[2].parse::<u32>() else { continue };
            t.groups.entry(gid).or_insert_with(|| f[0].to_string());
            if let Some((_, gids)) = me.as_mut()
                && f[3].split(',').any(|m| m == login)
                && !gids.contains(&gid)
            {
                gids.push(gid);
            }
        }
        t.me = me;
        t
    }

    /// The uid of a user name (or of a number), from `/etc/passwd`.
    pub fn uid_of(&self, name: &str) -> Option<u32> {
        name.parse().ok().or_else(|| self.users.iter().find(|(_, n)| *n == name).map(|(u, _)| *u))
    }

    /// The gid of a group name (or of a number), from `/etc/group`.
    pub fn gid_of(&self, name: &str) -> Option<u32> {
        name.parse().ok().or_else(|| self.groups.iter().find(|(_, n)| *n == name).map(|(g, _)| *g))
    }

    pub fn names(&self, uid: u32, gid: u32) -> Result<(String, String), Unsure> {
        match (self.users.get(&uid), self.groups.get(&gid)) {
            (Some(u), Some(g)) => Ok((u.clone(), g.clone())),
            _ => Err(Unsure),
        }
    }

    /// `test -r/-w/-x` from the permission bits, as `access(2)` decides them for the login user
    /// (ACLs and read-only mounts are not seen: hosts with those answer through the script).
    pub fn access(&self, st: &RawStat) -> Result<String, Unsure> {
        let Some((uid, gids)) = &self.me else { return Err(Unsure) };
        let m = st.mode;
        let mut a = String::new();
        if *uid == 0 {
            a.push_str("rw");
            if st.kind() == "directory" || m & 0o111 != 0 {
                a.push('x');
            }
            return Ok(a);
        }
        let bits = if st.uid == *uid {
            m >> 6
        } else if gids.contains(&st.gid) {
            m >> 3
        } else {
            m
        } & 7;
        for (bit, c) in [(4, 'r'), (2, 'w'), (1, 'x')] {
            if bits & bit != 0 {
                a.push(c);
            }
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_table() {
        let t = IdTable::parse(
            "root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000::/home/pi:/bin/sh\n",
            "root:x:0:\npi:x:1000:\ndisk:x:6:pi,other\n",
            "pi",
        );
        assert_eq!(t.names(1000, 6).unwrap(), ("pi".to_string(), "disk".to_string()));
        assert!(t.names(1001, 0).is_err());
        let st = |mode, uid, gid| RawStat { mode, uid, gid, size: 0, mtime: 0 };
        assert_eq!(t.access(&st(0o100640, 1000, 1000)).unwrap(), "rw");
        assert_eq!(t.access(&st(0o100640, 0, 6)).unwrap(), "r");
        assert_eq!(t.access(&st(0o100640, 0, 0)).unwrap(), "");
        assert_eq!(t.access(&st(0o040755, 0, 0)).unwrap(), "rx");
        let r = IdTable::parse("root:x:0:0:root:/root:/bin/bash\n", "root:x:0:\n", "root");
        assert_eq!(r.access(&st(0o100600, 1000, 1000)).unwrap(), "rw");
        assert_eq!(r.access(&st(0o040700, 1000, 1000)).unwrap(), "rwx");
        assert!(IdTable::parse("", "", "nobody").access(&st(0o100644, 0, 0)).is_err());
    }

    #[test]
    fn flags_and_parse() {
        let qs = vec![PathQuery::new("/a").content(true), PathQuery::new("/b").follow(true).access()];
        assert_eq!(qs[0].flags(), "-c");
        assert_eq!(qs[1].flags(), "-fa");
        let out = b"/a\nregular file|644|0|0|root|root|3|1\n\n\n\n\n\nC 3\nhi\n\n/b\nABSENT\n";
        let v = parse_inspect(&qs, out).unwrap();
        assert_eq!(v[0].content.as_deref(), Some(&b"hi\n"[..]));
        assert_eq!(v[0].stat.as_ref().unwrap().mode, 0o644);
        assert!(!v[1].exists());
        // a file that changed size while read, and garbage
        assert!(parse_inspect(&qs[..1], b"/a\nregular file|644|0|0|root|root|3|1\n\n\n\n\n\nC 9\nhi\n\n").is_err());
        assert!(parse_inspect(&qs[..1], b"/a\ngarbage\n").is_err());
    }

    /// The script, run by the local `sh`, answers what `stat` says of a real file.
    #[test]
    fn script_reports_ext_stat_of_a_real_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"data").unwrap();
        std::fs::hard_link(&f, dir.path().join("g")).unwrap();
        let qs = vec![PathQuery::new(f.to_string_lossy()).ext(true).checksum(true)];
        assert_eq!(qs[0].flags(), "-se");
        let out = std::process::Command::new("sh").arg("-c").arg(inspect_script(&qs)).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v = parse_inspect(&qs, &out.stdout).unwrap();
        let ext = v[0].ext.expect("ext asked");
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&f).unwrap();
        assert_eq!((ext.dev, ext.inode, ext.nlink, ext.ctime), (m.dev(), m.ino(), 2, m.ctime()));
        assert_eq!(v[0].checksum.as_deref(), Some("a17c9aaa61e80a1bf71d0d850af4e5baa9800bbd"));
    }
}
