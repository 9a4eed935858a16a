//! `unarchive`: unpack a tar or zip archive into an existing directory.
//!
//! The probe lists the archive's members with the host's own `tar -tv` (a controller archive is
//! fed on stdin, so nothing is written in check mode) or `unzip -l` (a controller zip is read
//! here, from its central directory), then inspects every member's path under `dest` in one
//! round: the archive is extracted when any member is missing or a regular file's size differs.
//! The plan's one op extracts it: a controller archive is the op's stdin.

use async_trait::async_trait;
use pbr_core::params::{StrList, bool_lenient};
use pbr_core::{Change, Cmd, Ctx, Doc, Module, ModuleError, Op, PathQuery, Plan, ReadHost, sh_quote};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::path::PathBuf;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnarchiveParams {
    /// The archive: a controller file looked up in the role's `files/` then the playbook's
    /// directory, or with `remote_src: true` a path on the host. tar (plain, gzip, bzip2, xz,
    /// zstd) and zip archives are recognised by their content.
    pub src: String,
    /// The directory to extract into; it must already exist.
    pub dest: String,
    /// `src` is a path on the host rather than on the controller.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub remote_src: bool,
    /// A path on the host: when it exists, nothing is extracted.
    #[serde(default)]
    pub creates: Option<String>,
    /// More options for `tar` (also used when listing, with `--show-transformed-names`, so
    /// `--strip-components=1` is compared right) or for `unzip` (extraction only).
    #[serde(default)]
    pub extra_opts: StrList,
    /// Report the archive's members as `files` in the result.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub list_files: bool,
}

/// The archive's format, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Tar,
    TarGz,
    TarBz2,
    TarXz,
    TarZst,
    Zip,
}

impl Format {
    /// Recognise an archive by its magic bytes; anything else is taken for a plain tar.
    pub fn sniff(head: &[u8]) -> Format {
        if head.starts_with(&[0x1f, 0x8b]) {
            Format::TarGz
        } else if head.starts_with(b"BZh") {
            Format::TarBz2
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Format::TarXz
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Format::TarZst
        } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            Format::Zip
        } else {
            Format::Tar
        }
    }
    /// tar's decompression flag.
    fn tar_flag(self) -> &'static str {
        match self {
            Format::TarGz => " -z",
            Format::TarBz2 => " -j",
            Format::TarXz => " -J",
            Format::TarZst => " --zstd",
            Format::Tar | Format::Zip => "",
        }
    }
    /// The decompressor tar runs.
    fn tool(self) -> &'static str {
        match self {
            Format::TarGz => "gzip",
            Format::TarBz2 => "bzip2",
            Format::TarXz => "xz",
            Format::TarZst => "zstd",
            Format::Tar => "tar",
            Format::Zip => "unzip",
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Format::Tar => "tar",
            Format::TarGz => "tar.gz",
            Format::TarBz2 => "tar.bz2",
            Format::TarXz => "tar.xz",
            Format::TarZst => "tar.zst",
            Format::Zip => "zip",
        }
    }
}

/// What a member is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink(Option<String>),
    Hardlink,
    Other,
}

/// One member of an archive (its name relative to `dest`, without `./` or a trailing `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub kind: Kind,
    pub size: Option<u64>,
}

/// Decode the C-style escapes GNU tar uses when it lists names (`\\`, `\n`, `\t`, `\ooo`).
pub fn unescape_c(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            let c = b[i + 1];
            let simple = match c {
                b'\\' => Some(b'\\'),
                b'n' => Some(b'\n'),
                b't' => Some(b'\t'),
                b'r' => Some(b'\r'),
                b'a' => Some(7),
                b'b' => Some(8),
                b'f' => Some(12),
                b'v' => Some(11),
                b'?' => Some(0x7f),
                _ => None,
            };
            if let Some(v) = simple {
                out.push(v);
                i += 2;
                continue;
            }
            if let Some(v) = crate::util::octal_escape(&b[i + 1..]) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A member name as a path below `dest`: `./` and `/` prefixes and trailing slashes dropped;
/// `None` for the archive root and names tar would refuse (`..`).
pub fn clean_name(name: &str) -> Option<String> {
    let mut n = name;
    loop {
        if let Some(r) = n.strip_prefix("./") {
            n = r;
        } else if let Some(r) = n.strip_prefix('/') {
            n = r;
        } else {
            break;
        }
    }
    let n = n.trim_end_matches('/');
    if n.is_empty() || n == "." || n.split('/').any(|c| c == "..") {
        return None;
    }
    Some(n.to_string())
}

/// Split off `n` whitespace-separated words; the rest starts after one separating space.
fn split_words(line: &str, n: usize) -> Option<(Vec<&str>, &str)> {
    let mut words = vec![];
    let mut rest = line.trim_start();
    while words.len() < n {
        let end = rest.find(char::is_whitespace)?;
        words.push(&rest[..end]);
        rest = &rest[end..];
        // the size of a device is `major,minor`, sometimes `major, minor`
        if words.len() == 3 && words[2].ends_with(',') {
            rest = rest.trim_start();
            let end = rest.find(char::is_whitespace)?;
            rest = &rest[end..];
        }
        if words.len() < n {
            rest = rest.trim_start();
        }
    }
    let mut chars = rest.chars();
    chars.next()?;
    Some((words, chars.as_str()))
}

/// Parse `tar -tv` output (GNU or BusyBox, `LC_ALL=C`):
/// `-rw-r--r-- root/root 12 2024-05-01 12:00 a/b.txt`.
pub fn parse_tar_listing(text: &str) -> Vec<Member> {
    let mut out = vec![];
    for line in text.lines() {
        let Some((words, name)) = split_words(line, 5) else { continue };
        let t = words[0].chars().next().unwrap_or('?');
        let size = words[2].parse::<u64>().ok();
        let (name, kind) = match t {
            '-' => (name, Kind::File),
            'd' => (name, Kind::Dir),
            'l' => match name.split_once(" -> ") {
                Some((n, target)) => (n, Kind::Symlink(Some(unescape_c(target)))),
                None => (name, Kind::Symlink(None)),
            },
            'h' => (name.split_once(" link to ").map(|(n, _)| n).unwrap_or(name), Kind::Hardlink),
            'c' | 'b' | 'p' | 's' => (name, Kind::Other),
            _ => continue,
        };
        if let Some(n) = clean_name(&unescape_c(name)) {
            let size = if kind == Kind::File { size } else { None };
            out.push(Member { name: n, kind, size });
        }
    }
    dedup(out)
}

/// Parse `unzip -Z -s` (zipinfo) output:
/// `lrwxrwxrwx  3.0 unx        5 bx stor 24-May-01 12:00 app/link`.
pub fn parse_zipinfo_listing(text: &str) -> Vec<Member> {
    let mut out = vec![];
    for line in text.lines() {
        let Some((words, name)) = split_words(line, 8) else { continue };
        let t = words[0].chars().next().unwrap_or('?');
        let Ok(size) = words[3].parse::<u64>() else { continue };
        if !"-dlbcps".contains(t) || words[0].len() < 7 {
            continue;
        }
        let dir = t == 'd' || name.ends_with('/');
        if let Some(n) = clean_name(name) {
            out.push(match t {
                _ if dir => Member { name: n, kind: Kind::Dir, size: None },
                'l' => Member { name: n, kind: Kind::Symlink(None), size: None },
                '-' => Member { name: n, kind: Kind::File, size: Some(size) },
                _ => Member { name: n, kind: Kind::Other, size: None },
            });
        }
    }
    dedup(out)
}

/// Parse `unzip -l` output (the rows between the two dashed lines), for unzips without `-Z`.
pub fn parse_unzip_listing(text: &str) -> Vec<Member> {
    let mut out = vec![];
    let mut inside = false;
    for line in text.lines() {
        if line.trim_start().starts_with("---") {
            if inside {
                break;
            }
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        let Some((words, name)) = split_words(line, 3) else { continue };
        let Ok(size) = words[0].parse::<u64>() else { continue };
        let name = name.trim_start();
        let dir = name.ends_with('/');
        if let Some(n) = clean_name(name) {
            out.push(if dir {
                Member { name: n, kind: Kind::Dir, size: None }
            } else {
                Member { name: n, kind: Kind::File, size: Some(size) }
            });
        }
    }
    dedup(out)
}

fn le16(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 2).map(|s| u16::from_le_bytes([s[0], s[1]]) as u64)
}
fn le32(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as u64)
}
fn le64(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8).map(|s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8])))
}

/// The members of a zip archive, from its central directory (zip64 included).
pub fn parse_zip(data: &[u8]) -> Result<Vec<Member>, String> {
    let bad = || "not a valid zip archive (no central directory)".to_string();
    let from = data.len().saturating_sub(22 + 65_535);
    let eocd =
        (from..=data.len().saturating_sub(22)).rev().find(|&i| data[i..].starts_with(b"PK\x05\x06")).ok_or_else(bad)?;
    let mut count = le16(data, eocd + 10).ok_or_else(bad)?;
    let mut offset = le32(data, eocd + 16).ok_or_else(bad)?;
    if (offset == 0xffff_ffff || count == 0xffff) && eocd >= 20 && data[eocd - 20..].starts_with(b"PK\x06\x07") {
        let z = le64(data, eocd - 20 + 8).ok_or_else(bad)? as usize;
        if !data.get(z..).is_some_and(|d| d.starts_with(b"PK\x06\x06")) {
            return Err(bad());
        }
        count = le64(data, z + 32).ok_or_else(bad)?;
        offset = le64(data, z + 48).ok_or_else(bad)?;
    }
    let mut at = usize::try_from(offset).map_err(|_| bad())?;
    let mut out = vec![];
    for _ in 0..count {
        if !data.get(at..).is_some_and(|d| d.starts_with(b"PK\x01\x02")) {
            return Err("corrupt zip central directory".into());
        }
        let err = || "corrupt zip central directory".to_string();
        let mut size = le32(data, at + 24).ok_or_else(err)?;
        let name_len = le16(data, at + 28).ok_or_else(err)? as usize;
        let extra_len = le16(data, at + 30).ok_or_else(err)? as usize;
        let comment_len = le16(data, at + 32).ok_or_else(err)? as usize;
        let attrs = le32(data, at + 38).ok_or_else(err)?;
        let name = data.get(at + 46..at + 46 + name_len).ok_or_else(err)?;
        let extra = data.get(at + 46 + name_len..at + 46 + name_len + extra_len).ok_or_else(err)?;
        if size == 0xffff_ffff {
            // zip64 extra field: the uncompressed size comes first
            let mut e = 0;
            while e + 4 <= extra.len() {
                let id = le16(extra, e).unwrap_or(0);
                let len = le16(extra, e + 2).unwrap_or(0) as usize;
                if id == 1 {
                    size = le64(extra, e + 4).unwrap_or(size);
                    break;
                }
                e += 4 + len;
            }
        }
        let name = String::from_utf8_lossy(name).into_owned();
        let unix_mode = (attrs >> 16) as u32 & 0o170_000;
        if let Some(n) = clean_name(&name) {
            out.push(if name.ends_with('/') || unix_mode == 0o040_000 {
                Member { name: n, kind: Kind::Dir, size: None }
            } else if unix_mode == 0o120_000 {
                Member { name: n, kind: Kind::Symlink(None), size: None }
            } else {
                Member { name: n, kind: Kind::File, size: Some(size) }
            });
        }
        at += 46 + name_len + extra_len + comment_len;
    }
    Ok(dedup(out))
}

/// Keep the last listing of each name (tar appends replace earlier members).
fn dedup(v: Vec<Member>) -> Vec<Member> {
    let mut seen = std::collections::HashMap::new();
    for (i, m) in v.iter().enumerate() {
        seen.insert(m.name.clone(), i);
    }
    v.into_iter().enumerate().filter(|(i, m)| seen.get(&m.name) == Some(i)).map(|(_, m)| m).collect()
}

/// Where the archive is.
#[derive(Debug, Clone)]
pub enum Source {
    Remote(String),
    /// A controller file, with its bytes (read by the probe; extraction feeds them on stdin).
    Controller(PathBuf, Vec<u8>),
}

/// What the probe learned.
#[derive(Debug, Clone)]
pub struct UnarchiveState {
    pub source: Source,
    pub format: Option<Format>,
    /// `creates` exists: nothing to do.
    pub created: bool,
    pub members: Vec<Member>,
    /// Members missing under `dest`, or regular files of another size.
    pub differ: Vec<String>,
}

/// Does the path under dest match the member?
fn member_ok(m: &Member, st: Option<&pbr_core::FileStat>) -> bool {
    let Some(s) = st else { return false };
    match &m.kind {
        Kind::File => s.kind == "file" && m.size.is_none_or(|n| n == s.size),
        Kind::Hardlink => s.kind == "file",
        // a directory may be kept as a symlink to one
        Kind::Dir => s.kind == "directory" || s.kind == "link",
        Kind::Symlink(t) => {
            s.kind == "link"
                && match (t, &s.link_target) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                }
        }
        Kind::Other => true,
    }
}

/// A tar failure in words: a missing tar or decompressor is named.
fn tar_error(rc: i32, stderr: &str, format: Format, src: &str, doing: &str) -> ModuleError {
    if rc == 127 && !stderr.contains("Cannot exec") {
        return ModuleError::new(format!("{doing} {src}: `tar` was not found on the host (install tar)"));
    }
    if stderr.contains("Cannot exec") || (stderr.contains("not found") && format.tool() != "tar") {
        let tool = format.tool();
        return ModuleError::new(format!(
            "{doing} {src}: `{tool}` was not found on the host; it is needed for {} archives (install {tool})",
            format.name()
        ));
    }
    if stderr.contains("unrecognized option") || stderr.contains("invalid option") {
        return ModuleError::new(format!(
            "{doing} {src}: the host's tar cannot read {} archives or does not know an option: {}",
            format.name(),
            stderr.trim()
        ));
    }
    ModuleError::new(format!(
        "{doing} {src}: not a valid {} archive (tar exited {rc}: {})",
        format.name(),
        stderr.trim()
    ))
}

fn extra_words(p: &UnarchiveParams) -> String {
    p.extra_opts.0.iter().map(|o| format!(" {}", sh_quote(o))).collect()
}

/// `tar -tv` of a file (or of stdin when `file` is `-`), with `extra_opts` applied to names.
fn tar_list_script(p: &UnarchiveParams, format: Format, file: &str) -> String {
    let extra =
        if p.extra_opts.0.is_empty() { String::new() } else { format!(" --show-transformed-names{}", extra_words(p)) };
    format!("export LC_ALL=C\ntar -t -v{} -f {}{extra}\n", format.tar_flag(), sh_quote(file))
}

/// The script extracting the archive: `file` on the host, or (None) the bytes on stdin. A
/// controller zip goes to a temporary file first (unzip cannot read a pipe), removed on exit.
/// unzip's exit 1 is a warning (the files were extracted).
fn extract_script(p: &UnarchiveParams, format: Format, file: Option<&str>) -> String {
    let d = sh_quote(&p.dest);
    let extra = extra_words(p);
    if format == Format::Zip {
        let mut s = String::from(
            "command -v unzip >/dev/null 2>&1 || { echo '`unzip` was not found on the host; it is needed for zip \
             archives (install unzip)' >&2; exit 127; }\n",
        );
        let f = match file {
            Some(f) => sh_quote(f),
            None => {
                s.push_str(
                    "t=$(mktemp \"${TMPDIR:-/tmp}/pbr-unarchive.XXXXXX\")\ntrap 'rm -f -- \"$t\"' EXIT\n\
                     chmod 600 \"$t\"\ncat >\"$t\"\n",
                );
                "\"$t\"".to_string()
            }
        };
        s.push_str(&format!("rc=0\nunzip -o{extra} {f} -d {d} || rc=$?\n[ \"$rc\" -le 1 ] || exit \"$rc\"\n"));
        return s;
    }
    let f = file.map(sh_quote).unwrap_or_else(|| "-".into());
    format!(
        "command -v tar >/dev/null 2>&1 || {{ echo '`tar` was not found on the host (install tar)' >&2; exit 127; }}\n\
         if [ \"$(id -u)\" = 0 ]; then set -- --numeric-owner -p; else set --; fi\n\
         tar -x{} -f {f} -C {d} \"$@\"{extra}\n",
        format.tar_flag()
    )
}

pub struct Unarchive;

#[async_trait]
impl Module for Unarchive {
    type Params = UnarchiveParams;
    type State = UnarchiveState;
    const NAME: &'static str = "unarchive";

    fn doc(&self) -> Doc {
        Doc {
            description: "Unpack a tar (plain, gzip, bzip2, xz or zstd) or zip archive into an existing \
                          directory, with the host's `tar` (`--numeric-owner -p` as root) or `unzip -o`. The \
                          archive is a controller file (fed to tar on stdin; a zip goes to a temporary file on the \
                          host, removed after) \
                          or, with `remote_src: true`, a file on the host. It is extracted when `creates` does not \
                          exist and some member is missing under `dest` or is a regular file of another size: \
                          content is compared by presence and size only, not by checksum, owner, mode or time. \
                          Unlike Ansible: no URLs as `src`, and no `owner`/`group`/`mode`, `include`/`exclude` \
                          or `keep_newer`; the missing program (`tar`, `gzip`, `xz`, `zstd`, `unzip`) is named \
                          when there is one.",
            examples: r#"- name: Unpack the release shipped with the role
  unarchive:
    src: app-1.4.tar.gz
    dest: /opt/app
    extra_opts:
      - --strip-components=1

- name: Unpack a download already on the host, once
  unarchive:
    src: /tmp/node_exporter.tar.gz
    dest: /opt
    remote_src: true
    creates: /opt/node_exporter-1.8.2.linux-amd64/node_exporter

- name: A zip
  unarchive:
    src: /srv/incoming/site.zip
    dest: /var/www/site
    remote_src: true
    list_files: true
  register: site
"#,
        }
    }

    fn validate(&self, p: &UnarchiveParams) -> Result<(), String> {
        if p.src.contains("://") {
            return Err(format!(
                "src {:?}: URLs are not supported; download it first (get_url) and use remote_src",
                p.src
            ));
        }
        if p.src.is_empty() || p.dest.is_empty() {
            return Err("src and dest must not be empty".into());
        }
        for (k, v) in [("src", &p.src), ("dest", &p.dest)] {
            if v.contains('\n') {
                return Err(format!("{k} must not contain a newline"));
            }
        }
        Ok(())
    }

    async fn probe(&self, ctx: &Ctx<'_>, p: &UnarchiveParams, host: &ReadHost) -> Result<UnarchiveState, ModuleError> {
        let mut qs = vec![PathQuery::new(p.dest.clone()).follow(true)];
        if let Some(c) = &p.creates {
            qs.push(PathQuery::new(c.clone()));
        }
        let found = host.inspect(&qs).await?;
        match found.first().and_then(|i| i.stat.as_ref()) {
            None => {
                return Err(ModuleError::new(format!(
                    "dest {} does not exist: unarchive extracts into an existing directory",
                    p.dest
                )));
            }
            Some(s) if s.kind != "directory" => {
                return Err(ModuleError::new(format!("dest {} is a {}, not a directory", p.dest, s.kind)));
            }
            Some(_) => {}
        }
        let source = if p.remote_src {
            Source::Remote(p.src.clone())
        } else {
            let path = ctx.find_file("files", &p.src)?;
            let data =
                std::fs::read(&path).map_err(|e| ModuleError::new(format!("cannot read {}: {e}", path.display())))?;
            Source::Controller(path, data)
        };
        if found.get(1).is_some_and(|c| c.exists()) {
            return Ok(UnarchiveState { source, format: None, created: true, members: vec![], differ: vec![] });
        }
        let (format, members) = match &source {
            Source::Controller(_, data) => {
                let format = Format::sniff(data);
                let members = if format == Format::Zip {
                    parse_zip(data).map_err(|e| ModuleError::new(format!("{}: {e}", p.src)))?
                } else {
                    let out = host.query(Cmd::new(tar_list_script(p, format, "-")).stdin(data.clone())).await?;
                    if out.rc != 0 {
                        return Err(tar_error(out.rc, &out.stderr_str(), format, &p.src, "cannot list"));
                    }
                    parse_tar_listing(&out.stdout_str())
                };
                (format, members)
            }
            Source::Remote(src) => {
                let q = sh_quote(src);
                let out = host
                    .query_sh(format!(
                        "export LC_ALL=C\n[ -f {q} ] || {{ echo 'not a regular file' >&2; exit 3; }}\n\
                         [ -r {q} ] || {{ echo 'not readable' >&2; exit 4; }}\nod -An -tx1 -N6 {q}\n"
                    ))
                    .await?;
                match out.rc {
                    0 => {}
                    3 if host.stat(src).await?.is_none() => {
                        return Err(ModuleError::new(format!("src {src} does not exist on the host")));
                    }
                    127 => return Err(ModuleError::new(format!("cannot read {src}: `od` was not found on the host"))),
                    _ => return Err(ModuleError::new(format!("cannot read {src}: {}", out.stderr_str().trim()))),
                }
                let head: Vec<u8> =
                    out.stdout_str().split_whitespace().filter_map(|h| u8::from_str_radix(h, 16).ok()).collect();
                let format = Format::sniff(&head);
                let members = if format == Format::Zip {
                    // zipinfo tells symlinks apart; BusyBox's unzip only has -l
                    let out = host
                        .query_sh(format!(
                            "export LC_ALL=C\nunzip -Z -s {q} 2>/dev/null && exit 0\necho @@L\nunzip -l {q}\n"
                        ))
                        .await?;
                    let text = out.stdout_str();
                    match out.rc {
                        0 => match text.split_once("@@L\n") {
                            Some((_, l)) => parse_unzip_listing(l),
                            None => parse_zipinfo_listing(&text),
                        },
                        127 => {
                            return Err(ModuleError::new(format!(
                                "cannot list {src}: `unzip` was not found on the host; it is needed for zip \
                                 archives (install unzip)"
                            )));
                        }
                        rc => {
                            let l = text.split_once("@@L\n").map(|(_, l)| l).unwrap_or(&text);
                            let msg = format!("{l}{}", out.stderr_str());
                            return Err(ModuleError::new(format!(
                                "cannot list {src}: not a valid zip archive (unzip exited {rc}: {})",
                                msg.trim()
                            )));
                        }
                    }
                } else {
                    let out = host.query_sh(tar_list_script(p, format, src)).await?;
                    if out.rc != 0 {
                        return Err(tar_error(out.rc, &out.stderr_str(), format, src, "cannot list"));
                    }
                    parse_tar_listing(&out.stdout_str())
                };
                (format, members)
            }
        };
        if members.is_empty() {
            return Err(ModuleError::new(format!("{}: the archive has no members to extract", p.src)));
        }
        let dest = p.dest.trim_end_matches('/');
        let qs: Vec<PathQuery> = members.iter().map(|m| PathQuery::new(format!("{dest}/{}", m.name))).collect();
        let infos = host.inspect(&qs).await?;
        let differ = members
            .iter()
            .zip(&infos)
            .filter(|(m, i)| !member_ok(m, i.stat.as_ref()))
            .map(|(m, _)| m.name.clone())
            .collect();
        Ok(UnarchiveState { source, format: Some(format), created: false, members, differ })
    }

    fn plan(&self, p: &UnarchiveParams, st: &UnarchiveState) -> Result<Plan, ModuleError> {
        if st.created || st.differ.is_empty() {
            return Ok(Plan::empty());
        }
        let format = st.format.ok_or_else(|| ModuleError::new("unarchive: no archive format was probed"))?;
        let change = Change::create(format!("extract {} into {} ({} entries)", p.src, p.dest, st.members.len()));
        let dest = p.dest.trim_end_matches('/');
        // the member files, for check mode's overlay (their content stays unknown there)
        let makes = st
            .members
            .iter()
            .filter(|m| matches!(m.kind, Kind::File | Kind::Hardlink))
            .map(|m| format!("{dest}/{}", m.name))
            .collect();
        let (stdin, script) = match &st.source {
            Source::Remote(src) => (None, extract_script(p, format, Some(src))),
            Source::Controller(_, data) => (Some(data.clone()), extract_script(p, format, None)),
        };
        let what = format!("extract {} into {}", p.src, p.dest);
        let mut plan = Plan::empty().with(change);
        plan.op(Op::Run { what, script, stdin, makes, removes: vec![] });
        Ok(plan)
    }

    fn data(&self, p: &UnarchiveParams, st: &UnarchiveState) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("dest".into(), Value::String(p.dest.clone()));
        m.insert("src".into(), Value::String(p.src.clone()));
        if let Some(f) = st.format {
            let handler = if f == Format::Zip { "ZipArchive" } else { "TgzArchive" };
            m.insert("handler".into(), Value::String(handler.into()));
            m.insert("format".into(), Value::String(f.name().into()));
        }
        if p.list_files {
            m.insert("files".into(), st.members.iter().map(|x| Value::String(x.name.clone())).collect());
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs() {
        assert_eq!(Format::sniff(&[0x1f, 0x8b, 8, 0]), Format::TarGz);
        assert_eq!(Format::sniff(b"BZh91AY"), Format::TarBz2);
        assert_eq!(Format::sniff(&[0xfd, b'7', b'z', b'X', b'Z', 0]), Format::TarXz);
        assert_eq!(Format::sniff(&[0x28, 0xb5, 0x2f, 0xfd]), Format::TarZst);
        assert_eq!(Format::sniff(b"PK\x03\x04"), Format::Zip);
        assert_eq!(Format::sniff(b"a/\0\0"), Format::Tar);
    }

    #[test]
    fn tar_listings() {
        // GNU tar 1.34, LC_ALL=C
        let gnu = "\
drwxr-xr-x root/root         0 2024-05-01 12:00 ./
drwxr-xr-x root/root         0 2024-05-01 12:00 ./app/
-rw-r--r-- root/root        12 2024-05-01 12:00 ./app/my file.txt
lrwxrwxrwx root/root         0 2024-05-01 12:00 ./app/link -> my file.txt
hrw-r--r-- root/root         0 2024-05-01 12:00 ./app/hard link to ./app/my file.txt
-rw-r--r-- 1000/1000         3 2024-05-01 12:00 ./app/back\\\\slash\\303\\251
crw-r--r-- root/root      1,3 2024-05-01 12:00 ./dev/null
-rw-r--r-- root/root         5 2024-05-01 12:00 ../evil
";
        let m = parse_tar_listing(gnu);
        let names: Vec<&str> = m.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, vec!["app", "app/my file.txt", "app/link", "app/hard", "app/back\\slashé", "dev/null"]);
        assert_eq!(m[1], Member { name: "app/my file.txt".into(), kind: Kind::File, size: Some(12) });
        assert_eq!(m[2].kind, Kind::Symlink(Some("my file.txt".into())));
        assert_eq!(m[3].kind, Kind::Hardlink);
        assert_eq!(m[5].kind, Kind::Other);
        // BusyBox
        let bb = "-rw-r--r-- 0/0         4 2024-05-01 12:00:00 a.txt\n";
        assert_eq!(parse_tar_listing(bb), vec![Member { name: "a.txt".into(), kind: Kind::File, size: Some(4) }]);
        // a member appended twice counts once
        let twice = "-rw-r--r-- 0/0 1 2024-05-01 12:00 a\n-rw-r--r-- 0/0 2 2024-05-01 12:00 a\n";
        assert_eq!(parse_tar_listing(twice)[0].size, Some(2));
    }

    #[test]
    fn unzip_listing() {
        let text = "\
Archive:  site.zip
  Length      Date    Time    Name
---------  ---------- -----   ----
        0  2024-05-01 12:00   site/
       11  2024-05-01 12:00   site/index html
---------                     -------
       11                     2 files
";
        let m = parse_unzip_listing(text);
        assert_eq!(
            m,
            vec![
                Member { name: "site".into(), kind: Kind::Dir, size: None },
                Member { name: "site/index html".into(), kind: Kind::File, size: Some(11) },
            ]
        );
    }

    #[test]
    fn zipinfo_listing() {
        // unzip 6.0, `unzip -Z -s`, LC_ALL=C
        let text = "\
Archive:  t.zip
Zip file size: 769 bytes, number of entries: 5
drwxr-xr-x  3.0 unx        0 bx stor 26-Dec-02 04:22 app/
lrwxrwxrwx  3.0 unx        5 bx stor 26-Dec-02 04:22 app/link
-rw-r--r--  3.0 unx        2 tx stor 26-Dec-02 04:22 app/sub/with space
-rw-a--     2.0 fat        6 tx defN 26-Dec-02 04:22 app/a.txt
5 files, 13 bytes uncompressed, 13 bytes compressed:  0.0%
";
        assert_eq!(
            parse_zipinfo_listing(text),
            vec![
                Member { name: "app".into(), kind: Kind::Dir, size: None },
                Member { name: "app/link".into(), kind: Kind::Symlink(None), size: None },
                Member { name: "app/sub/with space".into(), kind: Kind::File, size: Some(2) },
                Member { name: "app/a.txt".into(), kind: Kind::File, size: Some(6) },
            ]
        );
    }

    #[test]
    fn names() {
        assert_eq!(clean_name("./a/b/"), Some("a/b".into()));
        assert_eq!(clean_name("/etc/x"), Some("etc/x".into()));
        assert_eq!(clean_name("./"), None);
        assert_eq!(clean_name("a/../b"), None);
        assert_eq!(unescape_c(r"a\\b\n\101"), "a\\b\nA");
    }

    #[test]
    fn zip_errors() {
        assert!(parse_zip(b"PK\x03\x04 truncated").is_err());
        assert!(parse_zip(b"").is_err());
    }
}
