//! `find`: the files under some paths that match patterns, age, size, type or content (never
//! changes anything), as Ansible's `find` reports them.

use crate::util;
use async_trait::async_trait;
use pbr_core::params::{StrList, bool_lenient};
use pbr_core::pyre::{Flags, PyRegex};
use pbr_core::{Ctx, Doc, Module, ModuleError, Plan, ReadHost, sh_quote};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    #[default]
    File,
    Directory,
    Link,
    Any,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AgeStamp {
    Atime,
    Ctime,
    #[default]
    Mtime,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindParams {
    /// Directories to search (list or comma-separated).
    #[serde(alias = "name", alias = "path")]
    pub paths: StrList,
    /// Shell patterns (`*.log`) matched against base names, or Python regexes with `use_regex`;
    /// none: everything.
    #[serde(default, alias = "pattern")]
    pub patterns: StrList,
    /// Base names to leave out (patterns like `patterns`).
    #[serde(default, alias = "exclude")]
    pub excludes: StrList,
    /// With `file_type: file`: a regex the content must contain (a line must match from its
    /// start, unless `read_whole_file`, where it is searched anywhere).
    #[serde(default)]
    pub contains: Option<String>,
    /// `contains` searches the whole content instead of each line.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub read_whole_file: bool,
    /// What to report: `file` (regular files), `directory`, `link` or `any`.
    #[serde(default)]
    pub file_type: FileType,
    /// Look into subdirectories.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub recurse: bool,
    /// How deep to look with `recurse` (1: the paths' own entries).
    #[serde(default)]
    pub depth: Option<u32>,
    /// Include names starting with a dot.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub hidden: bool,
    /// Follow symbolic links (into directories, and for the reported metadata).
    #[serde(default, deserialize_with = "bool_lenient")]
    pub follow: bool,
    /// Add the sha1 `checksum` of each regular file.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub get_checksum: bool,
    /// `patterns` and `excludes` are Python regexes (matched from the start of the name).
    #[serde(default, deserialize_with = "bool_lenient")]
    pub use_regex: bool,
    /// Older than this (`2d`, `4w`; units s m h d w), or younger with a minus (`-1h`).
    #[serde(default)]
    pub age: Option<String>,
    /// Which time `age` is about.
    #[serde(default)]
    pub age_stamp: AgeStamp,
    /// Regular files at least this big (`10m`; units b k m g t), or at most with a minus (`-1k`).
    #[serde(default)]
    pub size: Option<String>,
    /// Only entries with this mode (octal, or symbolic such as `u=rw,g=r,o=r`, applied to no
    /// bits); with `exact_mode: false`, with at least these bits.
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default = "yes", deserialize_with = "bool_lenient")]
    pub exact_mode: bool,
    /// Accepted for compatibility; always sha1.
    #[serde(default)]
    pub checksum_algorithm: Option<String>,
    /// Accepted for compatibility (contents are read as UTF-8).
    #[serde(default)]
    pub encoding: Option<String>,
}

fn yes() -> bool {
    true
}

/// One entry `find` listed, with its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub path: String,
    pub kind: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub owner: String,
    pub group: String,
    pub size: u64,
    pub mtime: i64,
    pub atime: i64,
    pub ctime: i64,
    pub inode: u64,
    pub dev: u64,
    pub nlink: u64,
}

const FMT: &str = "%F|%a|%u|%g|%U|%G|%s|%Y|%X|%Z|%i|%d|%h|%n";

fn parse_entry(line: &str) -> Option<Entry> {
    let f: Vec<&str> = line.splitn(14, '|').collect();
    if f.len() != 14 {
        return None;
    }
    let st = util::parse_stat_line(&f[..8].join("|"), None)?;
    Some(Entry {
        path: f[13].to_string(),
        kind: st.kind,
        mode: st.mode,
        uid: st.uid,
        gid: st.gid,
        owner: st.owner,
        group: st.group,
        size: st.size,
        mtime: st.mtime,
        atime: f[8].parse().ok()?,
        ctime: f[9].parse().ok()?,
        inode: f[10].parse().ok()?,
        dev: f[11].parse().ok()?,
        nlink: f[12].parse().ok()?,
    })
}

/// `2d` → seconds (`-1h` → negative), as Ansible reads `age`.
fn parse_age(s: &str) -> Option<i64> {
    parse_unit(s, &[('s', 1), ('m', 60), ('h', 3600), ('d', 86400), ('w', 604800)])
}

fn parse_size(s: &str) -> Option<i64> {
    parse_unit(s, &[('b', 1), ('k', 1 << 10), ('m', 1 << 20), ('g', 1 << 30), ('t', 1 << 40)])
}

fn parse_unit(s: &str, units: &[(char, i64)]) -> Option<i64> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mult) = match s.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => (&s[..s.len() - 1], units.iter().find(|(u, _)| *u == c)?.1),
        _ => (s.as_str(), 1),
    };
    num.parse::<i64>().ok().map(|n| n * mult)
}

/// A name filter: shell patterns or regexes (anchored at the start, as Python's `re.match`).
struct Names(Vec<PyRegex>);

impl Names {
    fn new(pats: &[String], regex: bool) -> Result<Names, String> {
        pats.iter()
            .map(|p| {
                let src = if regex {
                    format!("\\A(?:{p})")
                } else {
                    format!("\\A(?:{})\\Z", pbr_core::pyre::glob_to_regex(p))
                };
                PyRegex::new(&src, Flags { dotall: !regex, ..Flags::default() })
                    .map_err(|e| format!("invalid pattern {p:?}: {e}"))
            })
            .collect::<Result<_, _>>()
            .map(Names)
    }
    fn any(&self, name: &str) -> bool {
        self.0.iter().any(|r| r.is_match(name).unwrap_or(false))
    }
}

pub struct Find;

pub struct FindState {
    pub files: Vec<Value>,
    pub examined: usize,
    pub skipped: Map<String, Value>,
}

#[async_trait]
impl Module for Find {
    type Params = FindParams;
    type State = FindState;
    const NAME: &'static str = "find";

    fn doc(&self) -> Doc {
        Doc {
            description: "List the files under `paths` that match every filter given (name patterns, \
                          excludes, type, age, size, mode, content) as `files` (each with Ansible's stat \
                          keys: path, mode, isreg, isdir, islnk, uid, gid, pw_name, gr_name, size, mtime, \
                          atime, ctime, inode, dev, nlink...), with `matched` and `examined`. A path that \
                          cannot be read is in `skipped_paths`. Never changes anything; the host needs \
                          `find` and `stat`.",
            examples: r#"- name: Old kernels' initramfs images on a Pi
  find:
    paths: /boot
    patterns: "initramfs-*.img.old"
    age: 4w
  register: old

- name: Remove them
  file:
    path: "{{ item.path }}"
    state: absent
  loop: "{{ old.files }}"
"#,
        }
    }

    fn validate(&self, p: &FindParams) -> Result<(), String> {
        Names::new(&p.patterns.0, p.use_regex)?;
        Names::new(&p.excludes.0, p.use_regex)?;
        if let Some(a) = &p.age
            && parse_age(a).is_none()
        {
            return Err(format!("failed to process age: {a}"));
        }
        if let Some(s) = &p.size
            && parse_size(s).is_none()
        {
            return Err(format!("failed to process size: {s}"));
        }
        if let Some(m) = &p.mode {
            find_mode(m)?;
        }
        if let Some(c) = &p.contains {
            PyRegex::new(c, Flags::default()).map_err(|e| format!("invalid contains {c:?}: {e}"))?;
        }
        Ok(())
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &FindParams, host: &ReadHost) -> Result<FindState, ModuleError> {
        self.validate(p).map_err(ModuleError::new)?;
        let patterns = Names::new(&p.patterns.0, p.use_regex).map_err(ModuleError::new)?;
        let excludes = Names::new(&p.excludes.0, p.use_regex).map_err(ModuleError::new)?;
        let depth = if p.recurse { p.depth } else { Some(1) };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64);
        let now = now.unwrap_or(0);
        let age = p.age.as_deref().and_then(parse_age);
        let size = p.size.as_deref().and_then(parse_size);
        let mode = p.mode.as_deref().and_then(|m| find_mode(m).ok());
        // a line must match from its start (Python's re.match); the whole file anywhere
        let contains = match p.contains.as_deref() {
            Some(c) if p.read_whole_file => Some(PyRegex::new(c, Flags::default())),
            Some(c) => Some(PyRegex::new(&format!("\\A(?:{c})"), Flags::default())),
            None => None,
        };
        let contains = contains.transpose().map_err(ModuleError::new)?;
        let mut files = vec![];
        let mut examined = 0;
        let mut skipped = Map::new();
        for root in &p.paths.0 {
            let root = root.trim_end_matches('/');
            let root = if root.is_empty() { "/" } else { root };
            // with `depth`, Ansible's walk lists (and counts as examined) the level below the
            // limit too, then goes no deeper
            let listed = depth.map(|d| if p.recurse { d + 1 } else { d });
            let maxdepth = listed.map(|d| format!(" -maxdepth {d}")).unwrap_or_default();
            // entries are described as themselves (a link as a link), as Ansible's lstat does
            let (l, stat) = if p.follow { ("-L ", "stat") } else { ("", "stat") };
            let script = format!(
                "[ -d {q} ] || {{ echo 'not a directory' >&2; exit 3; }}; \
                 find {l}{q} -mindepth 1{maxdepth} -exec {stat} -c '{FMT}' -- {{}} + 2>/dev/null; :",
                q = sh_quote(root)
            );
            let out = host.query_sh(script).await?;
            if out.rc == 3 {
                skipped.insert(root.to_string(), json!(format!("'{root}' is not a directory")));
                continue;
            }
            let mut entries: Vec<Entry> = out.stdout_str().lines().filter_map(parse_entry).collect();
            entries.sort_by(|a, b| a.path.cmp(&b.path));
            for e in entries {
                examined += 1;
                let level =
                    e.path.strip_prefix(root).unwrap_or(&e.path).trim_start_matches('/').matches('/').count() + 1;
                if depth.is_some_and(|d| level > d as usize) {
                    continue;
                }
                let name = e.path.rsplit('/').next().unwrap_or("");
                if !p.hidden && name.starts_with('.') {
                    continue;
                }
                let type_ok = match p.file_type {
                    FileType::Any => true,
                    FileType::File => e.kind == "file",
                    FileType::Directory => e.kind == "directory",
                    FileType::Link => e.kind == "link",
                };
                let name_ok = (p.patterns.0.is_empty() || patterns.any(name)) && !excludes.any(name);
                let stamp = match p.age_stamp {
                    AgeStamp::Mtime => e.mtime,
                    AgeStamp::Atime => e.atime,
                    AgeStamp::Ctime => e.ctime,
                };
                let age_ok = match age {
                    None => true,
                    Some(a) if a >= 0 => now - stamp >= a,
                    Some(a) => now - stamp <= -a,
                };
                let size_ok = match size {
                    None => true,
                    Some(_) if e.kind != "file" => true,
                    Some(s) if s >= 0 => e.size as i64 >= s,
                    Some(s) => e.size as i64 <= -s,
                };
                let mode_ok = match mode {
                    None => true,
                    Some(m) if p.exact_mode => e.mode & 0o7777 == m,
                    Some(m) => e.mode & m == m,
                };
                if !(type_ok && name_ok && age_ok && size_ok && mode_ok) {
                    continue;
                }
                if let Some(re) = &contains
                    && p.file_type == FileType::File
                {
                    let text = host.read_file(&e.path).await?.map(|b| String::from_utf8_lossy(&b).into_owned());
                    let text = text.unwrap_or_default();
                    let hit = if p.read_whole_file {
                        re.is_match(&text).map_err(ModuleError::new)?
                    } else {
                        text.lines().any(|l| re.is_match(l).unwrap_or(false))
                    };
                    if !hit {
                        continue;
                    }
                }
                files.push(e);
            }
        }
        let mut sums = std::collections::HashMap::new();
        if p.get_checksum {
            let regs: Vec<String> = files.iter().filter(|e| e.kind == "file").map(|e| sh_quote(&e.path)).collect();
            if !regs.is_empty() {
                let out = host.query_sh(format!("sha1sum -- {} 2>/dev/null; :", regs.join(" "))).await?;
                for l in out.stdout_str().lines() {
                    if let Some((sum, path)) = l.split_once("  ") {
                        sums.insert(path.to_string(), sum.to_string());
                    }
                }
            }
        }
        let files = files.iter().map(|e| file_value(e, sums.get(&e.path))).collect();
        Ok(FindState { files, examined, skipped })
    }

    fn plan(&self, _p: &FindParams, _st: &FindState) -> Result<Plan, ModuleError> {
        Ok(Plan::empty())
    }

    fn data(&self, _p: &FindParams, st: &FindState) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("files".into(), Value::Array(st.files.clone()));
        m.insert("matched".into(), json!(st.files.len()));
        m.insert("examined".into(), json!(st.examined));
        m.insert(
            "msg".into(),
            json!(if st.skipped.is_empty() {
                "All paths examined"
            } else {
                "Not all paths examined, check warnings for details"
            }),
        );
        m.insert("skipped_paths".into(), Value::Object(st.skipped.clone()));
        m
    }
}

/// One file as Ansible's `find` reports it.
fn file_value(e: &Entry, checksum: Option<&String>) -> Value {
    let bit = |b: u32| e.mode & b != 0;
    let mut v = json!({
        "path": e.path,
        "mode": util::mode_str(e.mode),
        "isdir": e.kind == "directory",
        "isreg": e.kind == "file",
        "islnk": e.kind == "link",
        "ischr": e.kind == "char",
        "isblk": e.kind == "block",
        "isfifo": e.kind == "fifo",
        "issock": e.kind == "socket",
        "uid": e.uid,
        "gid": e.gid,
        "pw_name": e.owner,
        "gr_name": e.group,
        "size": e.size,
        "mtime": e.mtime,
        "atime": e.atime,
        "ctime": e.ctime,
        "inode": e.inode,
        "dev": e.dev,
        "nlink": e.nlink,
        "rusr": bit(0o400), "wusr": bit(0o200), "xusr": bit(0o100),
        "rgrp": bit(0o040), "wgrp": bit(0o020), "xgrp": bit(0o010),
        "roth": bit(0o004), "woth": bit(0o002), "xoth": bit(0o001),
        "isuid": bit(0o4000), "isgid": bit(0o2000),
    });
    if let Some(c) = checksum {
        v["checksum"] = json!(c);
    }
    v
}

/// `find`'s `mode`: octal, or symbolic applied to no bits (as Ansible reads it).
fn find_mode(m: &str) -> Result<u32, String> {
    let m = m.trim();
    pbr_core::params::Mode::parse(m.strip_prefix("0o").unwrap_or(m))
        .map(|mode| mode.resolve(0, false))
        .map_err(|e| format!("mode {m:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_octal_or_symbolic() {
        assert_eq!(find_mode("0644"), Ok(0o644));
        assert_eq!(find_mode("u=rw,g=r,o=r"), Ok(0o644));
        assert_eq!(find_mode("u=r"), Ok(0o400));
        assert!(find_mode("q=x").is_err());
    }

    #[test]
    fn units_and_names() {
        assert_eq!(parse_age("2d"), Some(172800));
        assert_eq!(parse_age("-1h"), Some(-3600));
        assert_eq!(parse_age("30"), Some(30));
        assert_eq!(parse_size("10k"), Some(10240));
        assert_eq!(parse_size("-1m"), Some(-(1 << 20)));
        assert_eq!(parse_age("2y"), None);
        let n = Names::new(&["*.log".into(), "a?c".into()], false).unwrap();
        assert!(n.any("x.log") && n.any("abc") && !n.any("x.log.gz") && !n.any("abcd"));
        let r = Names::new(&["ab".into()], true).unwrap();
        assert!(r.any("abc") && !r.any("cab"));
        let e = parse_entry("regular file|644|0|0|root|root|5|100|101|102|7|2049|1|/tmp/a|b").unwrap();
        assert_eq!((e.path.as_str(), e.kind.as_str(), e.inode, e.ctime), ("/tmp/a|b", "file", 7, 102));
    }
}
