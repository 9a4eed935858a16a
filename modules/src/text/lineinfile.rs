//! `lineinfile`: make sure one line is (or is not) in a text file, with Ansible's placement rules.

use crate::util::params_with_file_attrs;
use crate::util::{self, Attrs, FileState, WriteOpts};
use async_trait::async_trait;
use pbr_core::params::Presence;
use pbr_core::params::bool_lenient;
use pbr_core::pyre::expand;
use pbr_core::{Change, Ctx, Diff, Doc, Module, ModuleError, Op, Plan, ReadHost};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

params_with_file_attrs! {
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LineinfileParams {
    /// The file to edit.
    #[serde(alias = "dest", alias = "destfile", alias = "name")]
    pub path: String,
    /// The line to insert or replace (required with `state: present`).
    #[serde(default)]
    pub line: Option<String>,
    /// Regular expression looked for in every line: with `present` the last match (or the first,
    /// with `firstmatch`) is replaced; with `absent` every matching line is removed.
    #[serde(default, alias = "regex")]
    pub regexp: Option<String>,
    /// Literal string looked for in every line, like `regexp` but without regex syntax.
    #[serde(default)]
    pub search_string: Option<String>,
    /// Whether the line should be there.
    #[serde(default)]
    pub state: Presence,
    /// Insert after the last line matching this regex (`EOF`, the default, appends; `BOF`
    /// prepends). Only used when `regexp`/`search_string` match nothing.
    #[serde(default)]
    pub insertafter: Option<String>,
    /// Insert before the last line matching this regex (`BOF` prepends).
    #[serde(default)]
    pub insertbefore: Option<String>,
    /// Create the file (and its missing directories) when it does not exist.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub create: bool,
    /// Expand `\1`-style backreferences of `regexp` in `line`; when `regexp` matches nothing the
    /// file is left alone.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub backrefs: bool,
    /// With `insertafter`/`insertbefore`/`regexp`, use the first matching line instead of the last.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub firstmatch: bool,
    /// Keep a copy of the replaced file as `path.YYYY-mm-dd@HH:MM:SS~`.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub backup: bool,
    /// Command run on the edited file before it is put in place; `%s` is the temp file's path.
    #[serde(default)]
    pub validate: Option<String>,
}
}

/// Where and whether to put the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Anchor<'a> {
    Eof,
    Bof,
    After(&'a str),
    Before(&'a str),
}

/// What the pure edit decided: the new text and a message like Ansible's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub text: String,
    pub msg: String,
    /// `state: absent`: how many lines matched (and were removed).
    pub found: usize,
}

fn anchor(p: &LineinfileParams) -> Anchor<'_> {
    match (p.insertafter.as_deref(), p.insertbefore.as_deref()) {
        (Some("BOF"), _) => Anchor::Bof,
        (Some("EOF"), _) | (None, None) => Anchor::Eof,
        (Some(a), _) => Anchor::After(a),
        (None, Some("BOF")) => Anchor::Bof,
        (None, Some(b)) => Anchor::Before(b),
    }
}

fn strip_nl(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

/// `present`: Ansible's placement algorithm on the lines of `text`.
pub fn present(p: &LineinfileParams, text: &str) -> Result<Edit, ModuleError> {
    let line = p.line.as_deref().ok_or_else(|| ModuleError::new("line is required with state=present"))?;
    let mut lines = util::split_lines_keep(text);
    let re_m = p.regexp.as_deref().map(|r| util::compile("regexp", r, false)).transpose()?;
    let anc = anchor(p);
    let re_ins = match anc {
        Anchor::After(r) => Some(util::compile("insertafter", r, false)?),
        Anchor::Before(r) => Some(util::compile("insertbefore", r, false)?),
        _ => None,
    };
    // index[0]: the line matched by regexp/search_string/the exact line; index[1]: the insert point
    let mut index: [isize; 2] = [-1, -1];
    let mut matched: Option<String> = None;
    let mut exact_line_match = false;
    if let Some(re) = &re_m {
        for (i, cur) in lines.iter().enumerate() {
            let cur_s = cur.strip_suffix('\n').unwrap_or(cur);
            if let Some(c) = re.captures(cur_s).map_err(ModuleError::new)? {
                index[0] = i as isize;
                matched = Some(if p.backrefs { expand(line, &c).map_err(ModuleError::new)? } else { line.to_string() });
                if p.firstmatch {
                    break;
                }
            }
        }
    }
    if let Some(ss) = &p.search_string {
        for (i, cur) in lines.iter().enumerate() {
            if cur.contains(ss.as_str()) {
                index[0] = i as isize;
                matched = Some(line.to_string());
                if p.firstmatch {
                    break;
                }
            }
        }
    }
    if matched.is_none() {
        for (i, cur) in lines.iter().enumerate() {
            if strip_nl(cur) == line {
                index[0] = i as isize;
                exact_line_match = true;
            } else if let Some(re) = &re_ins
                && util::hit(re, cur.strip_suffix('\n').unwrap_or(cur))?
            {
                index[1] = if matches!(anc, Anchor::After(_)) { i as isize + 1 } else { i as isize };
                if p.firstmatch {
                    break;
                }
            }
        }
    }
    let _ = exact_line_match;
    let added = |lines: Vec<String>| Edit { text: lines.concat(), msg: "line added".into(), found: 0 };
    let unchanged = |lines: Vec<String>| Edit { text: lines.concat(), msg: String::new(), found: 0 };
    let ensure_last_nl = |lines: &mut Vec<String>| {
        if let Some(last) = lines.last_mut()
            && !last.ends_with(['\n', '\r'])
        {
            last.push('\n');
        }
    };
    if index[0] != -1 {
        let mut new_line = matched.unwrap_or_else(|| line.to_string());
        if !new_line.ends_with('\n') {
            new_line.push('\n');
        }
        let i = index[0] as usize;
        if lines[i] != new_line {
            lines[i] = new_line;
            return Ok(Edit { text: lines.concat(), msg: "line replaced".into(), found: 0 });
        }
        return Ok(unchanged(lines));
    }
    if p.backrefs {
        // not safe to build the line without a match to fill the backreferences
        return Ok(unchanged(lines));
    }
    let new_line = format!("{line}\n");
    if anc == Anchor::Bof {
        lines.insert(0, new_line);
        return Ok(added(lines));
    }
    if anc == Anchor::Eof || index[1] == -1 {
        ensure_last_nl(&mut lines);
        lines.push(new_line);
        return Ok(added(lines));
    }
    let at = index[1] as usize;
    if let Anchor::After(_) = anc {
        if at == lines.len() {
            if strip_nl(&lines[at - 1]) != line {
                ensure_last_nl(&mut lines);
                lines.push(new_line);
                return Ok(added(lines));
            }
            return Ok(unchanged(lines));
        }
        if strip_nl(&lines[at]) != line {
            lines.insert(at, new_line);
            return Ok(added(lines));
        }
        return Ok(unchanged(lines));
    }
    lines.insert(at, new_line);
    Ok(added(lines))
}

/// `absent`: remove every line matching `regexp`, `search_string`, or equal to `line`.
pub fn absent(p: &LineinfileParams, text: &str) -> Result<Edit, ModuleError> {
    let re = p.regexp.as_deref().map(|r| util::compile("regexp", r, false)).transpose()?;
    let lines = util::split_lines_keep(text);
    let before = lines.len();
    let mut kept: Vec<String> = Vec::with_capacity(lines.len());
    for cur in lines {
        let hit = if let Some(re) = &re {
            util::hit(re, cur.strip_suffix('\n').unwrap_or(&cur))?
        } else if let Some(ss) = &p.search_string {
            cur.contains(ss.as_str())
        } else {
            Some(strip_nl(&cur)) == p.line.as_deref()
        };
        if !hit {
            kept.push(cur);
        }
    }
    let n = before - kept.len();
    Ok(Edit { text: kept.concat(), msg: if n > 0 { format!("{n} line(s) removed") } else { String::new() }, found: n })
}

/// The state of a text file edit: the file and the text wanted (None: leave it / it is absent).
#[derive(Debug, Clone)]
pub struct EditState {
    pub file: FileState,
    pub want: Option<String>,
    pub msg: String,
    /// lineinfile `state: absent`: the lines that matched (Ansible's `found`).
    pub found: Option<usize>,
    /// For a file to create: its directory, when that is missing too (made first, as Ansible's
    /// lineinfile, blockinfile and ini_file do).
    pub parent_missing: Option<String>,
}

/// The directory of `path` when it does not exist (for a file about to be created).
pub async fn missing_parent(host: &ReadHost, path: &str) -> Result<Option<String>, ModuleError> {
    match path.rsplit_once('/') {
        Some((dir, _)) if !dir.is_empty() && host.stat(dir).await?.is_none() => Ok(Some(dir.to_string())),
        _ => Ok(None),
    }
}

/// Probe the file to edit (following links), failing as Ansible does when it is not text.
pub async fn probe_text(host: &ReadHost, path: &str) -> Result<(FileState, Option<String>), ModuleError> {
    let file = util::probe_file(host, path, true, true).await?;
    match file.kind() {
        None => Ok((file, None)),
        Some("file") => {
            let Some(c) = &file.content else {
                return Err(ModuleError::new(format!("{path} is larger than 1 MiB: not edited line by line")));
            };
            let t = String::from_utf8(c.clone())
                .map_err(|_| ModuleError::new(format!("{path} is not UTF-8 text: not edited line by line")))?;
            Ok((file, Some(t)))
        }
        // Ansible's words (and rc) for a directory
        Some("directory") => {
            let mut e = ModuleError::new(format!("Path {path} is a directory !"));
            e.data.insert("rc".into(), Value::from(256));
            Err(e)
        }
        Some(k) => Err(ModuleError::new(format!("{path} is a {k}, not a regular file"))),
    }
}

/// The plan of a text edit: the content change (with diff) and attribute fixes, and the op that
/// makes them.
pub fn plan_edit(st: &EditState, before: Option<&str>, attrs: Attrs, opts: WriteOpts) -> Plan {
    let mut plan = Plan::empty();
    let path = &st.file.path;
    let mut write = None;
    if let Some(want) = &st.want
        && before != Some(want.as_str())
    {
        let summary = match before {
            None => format!("create {path}{}", util::attrs_suffix(attrs)),
            Some(_) if st.msg.is_empty() => format!("update {path}"),
            Some(_) => format!("{path}: {}", st.msg),
        };
        let c = if before.is_none() { Change::create(summary) } else { Change::new(summary) };
        plan.push(c.with_diff(Diff::file(path, before.unwrap_or(""), want.clone())));
        write = Some(want.as_bytes());
    }
    if let Some(s) = &st.file.stat {
        util::attr_changes(path, attrs, s, &mut plan);
    }
    util::content_ops(&st.file, write, attrs, opts, &mut plan);
    // a new file's missing directories first
    if let Some(dir) = &st.parent_missing
        && before.is_none()
        && !plan.ops.is_empty()
    {
        plan.ops.insert(0, Op::MakeDir { path: dir.clone(), attrs: Default::default() });
    }
    plan
}

/// The result's `msg` ("line added"), as Ansible reports it.
pub fn edit_data(st: &EditState) -> Map<String, Value> {
    let mut data = Map::new();
    if !st.msg.is_empty() {
        data.insert("msg".into(), Value::String(st.msg.clone()));
    }
    if let Some(n) = st.found {
        data.insert("found".into(), Value::from(n));
    }
    data
}

pub struct Lineinfile;

#[async_trait]
impl Module for Lineinfile {
    type Params = LineinfileParams;
    type State = (EditState, Option<String>);
    const NAME: &'static str = "lineinfile";
    const BACKUP_KEY: &'static str = "backup";

    fn doc(&self) -> Doc {
        Doc {
            description: "Ensure a line is present in (or absent from) a text file. With `regexp` or \
                          `search_string` the matching line is replaced; otherwise the line is added at \
                          `insertafter`/`insertbefore` (end of file by default), exactly where Ansible puts it.",
            examples: r#"- name: Disable root login over ssh
  lineinfile:
    path: /etc/ssh/sshd_config
    regexp: '^#?PermitRootLogin'
    line: PermitRootLogin no

- name: Drop an old hosts entry
  lineinfile:
    path: /etc/hosts
    search_string: 192.168.1.99
    state: absent

- name: Add a module to load at boot
  lineinfile:
    path: /etc/modules-load.d/pbr.conf
    line: bcache
    create: true
    mode: "0644"
"#,
        }
    }

    fn validate(&self, p: &LineinfileParams) -> Result<(), String> {
        util::check_validate(p.validate.as_deref())?;
        if p.insertafter.is_some() && p.insertbefore.is_some() {
            return Err("insertafter and insertbefore are mutually exclusive".into());
        }
        if p.regexp.is_some() && p.search_string.is_some() {
            return Err("regexp and search_string are mutually exclusive".into());
        }
        if p.backrefs && p.regexp.is_none() {
            return Err("backrefs needs regexp".into());
        }
        match p.state {
            Presence::Present if p.line.is_none() => Err("line is required with state=present".into()),
            Presence::Absent if p.line.is_none() && p.regexp.is_none() && p.search_string.is_none() => {
                Err("one of line, regexp or search_string is required with state=absent".into())
            }
            _ => Ok(()),
        }
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &LineinfileParams, host: &ReadHost) -> Result<Self::State, ModuleError> {
        let (file, before) = probe_text(host, &p.path).await?;
        let edit = match (&before, p.state) {
            (None, Presence::Absent) => None,
            (None, Presence::Present) if !p.create => {
                return Err(ModuleError::new(format!("Destination {} does not exist !", p.path)));
            }
            (b, Presence::Present) => Some(present(p, b.as_deref().unwrap_or(""))?),
            (Some(b), Presence::Absent) => Some(absent(p, b)?),
        };
        let absent = p.state == Presence::Absent;
        let (want, msg, found) = match edit {
            Some(e) => (Some(e.text), e.msg, absent.then_some(e.found)),
            None => (None, String::new(), absent.then_some(0)),
        };
        let parent_missing =
            if before.is_none() && want.is_some() { missing_parent(host, &p.path).await? } else { None };
        Ok((EditState { file, want, msg, found, parent_missing }, before))
    }

    fn plan(&self, p: &LineinfileParams, st: &Self::State) -> Result<Plan, ModuleError> {
        Ok(plan_edit(&st.0, st.1.as_deref(), attrs(p), WriteOpts { backup: p.backup, validate: p.validate.as_deref() }))
    }

    fn data(&self, _p: &LineinfileParams, st: &Self::State) -> Map<String, Value> {
        edit_data(&st.0)
    }

    /// What the edit did ("line added"), as Ansible reports it.
    async fn report(
        &self,
        _p: &LineinfileParams,
        st: &Self::State,
        _host: &ReadHost,
    ) -> Result<Map<String, Value>, ModuleError> {
        Ok(edit_data(&st.0))
    }
}

fn attrs(p: &LineinfileParams) -> Attrs<'_> {
    p.attrs()
}
