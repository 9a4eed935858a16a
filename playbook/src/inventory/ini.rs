//! INI inventories, read like Ansible's `ini` inventory plugin.

use super::{CODE, Inventory, pylit, range};
use crate::diag::Diag;
use crate::source::{Span, SrcId, add_source};
use indexmap::IndexMap;
use regex::Regex;
use serde_json::Map;
use std::path::Path;
use std::sync::OnceLock;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Hosts,
    Vars,
    Children,
}

struct Pending {
    span: Span,
    state: State,
    parents: Vec<String>,
}

fn section_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$").unwrap_or_else(|_| unreachable!()))
}

fn groupname_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^([^:\]\s]+)\s*(?:#.*)?$").unwrap_or_else(|_| unreachable!()))
}

/// Parse INI text (registered as a source under `path`) into the inventory.
pub(super) fn parse(inv: &mut Inventory, path: &Path, text: String) -> Result<(), Diag> {
    let id = add_source(path, text.clone());
    parse_registered(inv, id, &text)
}

pub(super) fn parse_registered(inv: &mut Inventory, id: SrcId, text: &str) -> Result<(), Diag> {
    let mut group = "ungrouped".to_string();
    let mut state = State::Hosts;
    let mut pending: IndexMap<String, Pending> = IndexMap::new();
    let mut offset = 0usize;
    for raw in text.split_inclusive('\n') {
        let line_start = offset;
        offset += raw.len();
        let content = raw.trim_end_matches(['\n', '\r']);
        let trimmed_start = content.trim_start();
        let start = line_start + (content.len() - trimmed_start.len());
        let line = trimmed_start.trim_end();
        let span = Span::new(id, start, start + line.len());
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(caps) = section_re().captures(line) {
            let name = caps.get(1).map(|m| m.as_str()).unwrap_or_default().to_string();
            let kind = caps.get(2).map(|m| m.as_str()).unwrap_or("hosts");
            state = match kind {
                "hosts" => State::Hosts,
                "vars" => State::Vars,
                "children" => State::Children,
                other => {
                    return Err(Diag::error(
                        CODE,
                        span,
                        format!("section [{name}:{other}] has unknown type '{other}'"),
                    )
                    .with_help("a section is `[group]`, `[group:vars]` or `[group:children]`"));
                }
            };
            if !inv.groups.contains_key(&name) {
                if state == State::Vars && !pending.contains_key(&name) {
                    pending.insert(name.clone(), Pending { span, state, parents: Vec::new() });
                }
                inv.ensure_group(&name, span);
            }
            if state != State::Vars
                && let Some(p) = pending.get(&name)
            {
                if p.state == State::Children {
                    add_pending_children(inv, &name, &mut pending)?;
                } else {
                    pending.shift_remove(&name);
                }
            }
            group = name;
            continue;
        }
        if line.starts_with('[') && !starts_with_ipv6(line) {
            if line.ends_with(']') {
                return Err(Diag::error(CODE, span, format!("invalid section header '{line}'"))
                    .with_help("group names cannot contain spaces, ':' or ']'"));
            }
            return Err(Diag::error(CODE, span, format!("unterminated section header '{line}': expected ']'"))
                .with_label("no closing ']'"));
        }
        match state {
            State::Hosts => host_line(inv, &group, id, start, line)?,
            State::Vars => {
                let Some((k, v)) = line.split_once('=') else {
                    return Err(Diag::error(CODE, span, format!("expected key=value, got '{line}'")));
                };
                let value = pylit::parse_value(v.trim());
                if let Some(g) = inv.groups.get_mut(&group) {
                    g.vars.insert(k.trim().to_string(), value);
                }
            }
            State::Children => {
                let Some(caps) = groupname_re().captures(line) else {
                    return Err(Diag::error(CODE, span, format!("expected a group name, got '{line}'")));
                };
                let child = caps.get(1).map(|m| m.as_str()).unwrap_or_default().to_string();
                if inv.groups.contains_key(&child) {
                    inv.add_child(&group, &child, span)?;
                } else {
                    pending
                        .entry(child)
                        .or_insert(Pending { span, state: State::Children, parents: Vec::new() })
                        .parents
                        .push(group.clone());
                }
            }
        }
    }
    if let Some((name, p)) = pending.first() {
        let msg = match p.state {
            State::Vars => format!("section [{name}:vars] is for a group that is not defined"),
            _ => format!(
                "section [{}:children] includes undefined group '{name}'",
                p.parents.last().map(String::as_str).unwrap_or("?")
            ),
        };
        return Err(Diag::error(CODE, p.span, msg).with_help(format!("declare it with a [{name}] section")));
    }
    Ok(())
}

fn add_pending_children(inv: &mut Inventory, group: &str, pending: &mut IndexMap<String, Pending>) -> Result<(), Diag> {
    let Some(p) = pending.shift_remove(group) else {
        return Ok(());
    };
    for parent in &p.parents {
        inv.add_child(parent, group, p.span)?;
        if pending.get(parent).is_some_and(|pp| pp.state == State::Children) {
            add_pending_children(inv, parent, pending)?;
        }
    }
    Ok(())
}

fn starts_with_ipv6(line: &str) -> bool {
    line.strip_prefix('[').and_then(|r| r.split_once(']')).is_some_and(|(inner, _)| range::is_ipv6(inner))
}

/// `name[range][:port] key=value ...` in a hosts section.
fn host_line(inv: &mut Inventory, group: &str, id: SrcId, start: usize, line: &str) -> Result<(), Diag> {
    let line_span = Span::new(id, start, start + line.len());
    let tokens = shlex(line).map_err(|e| Diag::error(CODE, line_span, format!("cannot parse host line: {e}")))?;
    let Some((pattern, p0, p1)) = tokens.first() else {
        return Ok(());
    };
    let name_span = Span::new(id, start + p0, start + p1);
    if pattern == "---" {
        return Err(Diag::error(CODE, name_span, "invalid host '---'")
            .with_help("this looks like a YAML file: give it a .yml extension"));
    }
    let (base, port) = range::split_port(pattern).map_err(|e| Diag::error(CODE, name_span, e))?;
    let names = range::expand(&base).map_err(|e| Diag::error(CODE, name_span, e))?;
    let mut vars = Map::new();
    for (tok, t0, t1) in &tokens[1..] {
        let Some((k, v)) = tok.split_once('=') else {
            return Err(Diag::error(
                CODE,
                Span::new(id, start + t0, start + t1),
                format!("expected key=value host variable assignment, got '{tok}'"),
            ));
        };
        vars.insert(k.to_string(), pylit::parse_value(v));
    }
    for name in names {
        inv.add_host(group, &name, name_span, vars.clone(), port);
    }
    Ok(())
}

/// Python's `shlex.split(line, comments=True)`: whitespace-separated words, `'...'` and
/// `"..."` quoting, backslash escapes, `#` starting a comment. Returns each word with the byte
/// range it came from.
pub(super) fn shlex(line: &str) -> Result<Vec<(String, usize, usize)>, String> {
    #[derive(PartialEq)]
    enum Q {
        None,
        Single,
        Double,
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut begin: Option<usize> = None;
    let mut q = Q::None;
    let mut tok_end = 0usize;
    let mut chars = line.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if q == Q::None && (c.is_whitespace() || c == '#') {
            if let Some(b) = begin.take() {
                out.push((std::mem::take(&mut cur), b, tok_end));
            }
            if c == '#' {
                break;
            }
            continue;
        }
        begin.get_or_insert(i);
        tok_end = i + c.len_utf8();
        match q {
            Q::None => match c {
                '\\' => match chars.next() {
                    Some((j, n)) => {
                        cur.push(n);
                        tok_end = j + n.len_utf8();
                    }
                    None => return Err("no escaped character".to_string()),
                },
                '\'' => q = Q::Single,
                '"' => q = Q::Double,
                _ => cur.push(c),
            },
            Q::Single => {
                if c == '\'' {
                    q = Q::None;
                } else {
                    cur.push(c);
                }
            }
            Q::Double => match c {
                '"' => q = Q::None,
                '\\' if matches!(chars.peek(), Some((_, '"' | '\\'))) => {
                    if let Some((j, n)) = chars.next() {
                        cur.push(n);
                        tok_end = j + n.len_utf8();
                    }
                }
                _ => cur.push(c),
            },
        }
    }
    if q != Q::None {
        return Err("no closing quotation".to_string());
    }
    if let Some(b) = begin {
        out.push((cur, b, tok_end));
    }
    Ok(out)
}
