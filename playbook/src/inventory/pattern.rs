//! Ansible host patterns: `all`, `*`, names, groups, globs, `~regex`, `a:b`/`a,b` unions,
//! `&` intersections, `!` exclusions, and `[i]`/`[i:j]` subscripts.

use super::{Inventory, LOCALHOST_NAMES, range};
use regex::Regex;
use std::collections::HashSet;
use std::sync::OnceLock;

/// Split a pattern into terms: on `,` when it has one, else on `:` outside `[...]`
/// (a bare IPv6 address stays whole). Each `,` part is further split on `:`.
pub(super) fn split(pattern: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for part in pattern.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let bare = part.trim_start_matches(['&', '!']);
        if range::is_ipv6(bare) {
            out.push(part.to_string());
            continue;
        }
        let mut depth = 0usize;
        let mut cur = String::new();
        for c in part.chars() {
            match c {
                '[' => {
                    depth += 1;
                    cur.push(c);
                }
                ']' => {
                    depth = depth.saturating_sub(1);
                    cur.push(c);
                }
                ':' if depth == 0 => {
                    if !cur.trim().is_empty() {
                        out.push(cur.trim().to_string());
                    }
                    cur.clear();
                }
                _ => cur.push(c),
            }
        }
        if depth > 0 {
            return Err(format!("unterminated '[' in host pattern '{part}'"));
        }
        if !cur.trim().is_empty() {
            out.push(cur.trim().to_string());
        }
    }
    Ok(out)
}

/// Evaluate terms like Ansible: plain terms (unions) first in order, then `&` terms, then `!`
/// terms; with no plain term the base is `all`.
pub(super) fn evaluate(inv: &Inventory, terms: &[String]) -> Result<Vec<String>, String> {
    let mut regular: Vec<&str> = Vec::new();
    let mut inter: Vec<&str> = Vec::new();
    let mut excl: Vec<&str> = Vec::new();
    for t in terms {
        if let Some(rest) = t.strip_prefix('&') {
            inter.push(rest);
        } else if let Some(rest) = t.strip_prefix('!') {
            excl.push(rest);
        } else {
            regular.push(t);
        }
    }
    if regular.is_empty() {
        regular.push("all");
    }
    let mut hosts: Vec<String> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for t in regular {
        for h in match_term(inv, t)? {
            if seen.insert(h.clone()) {
                hosts.push(h);
            }
        }
    }
    for t in inter {
        let that: HashSet<String> = match_term(inv, t)?.into_iter().collect();
        hosts.retain(|h| that.contains(h));
    }
    for t in excl {
        let that: HashSet<String> = match_term(inv, t)?.into_iter().collect();
        hosts.retain(|h| !that.contains(h));
    }
    Ok(hosts)
}

fn subscript_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\]$").unwrap_or_else(|_| unreachable!()))
}

/// Hosts of one term (without its `&`/`!`), deduplicated, subscript applied.
fn match_term(inv: &Inventory, term: &str) -> Result<Vec<String>, String> {
    if term.is_empty() {
        return Err("empty term in host pattern (a lone '&' or '!')".to_string());
    }
    if inv.hosts.contains_key(term) {
        return Ok(vec![term.to_string()]);
    }
    let (expr, sub) = split_subscript(term)?;
    let hosts = enumerate(inv, expr)?;
    let Some((start, end)) = sub else {
        return Ok(hosts);
    };
    let len = hosts.len() as i64;
    let err = || format!("no hosts matched the subscripted pattern '{term}'");
    match end {
        None => {
            let i = if start < 0 { len + start } else { start };
            if i < 0 || i >= len {
                return Err(err());
            }
            Ok(vec![hosts[i as usize].clone()])
        }
        Some(end) => {
            let end = if end < 0 { len - 1 } else { end };
            let from = (start.max(0) as usize).min(hosts.len());
            let to = ((end + 1).max(0) as usize).min(hosts.len()).max(from);
            Ok(hosts[from..to].to_vec())
        }
    }
}

/// `[start]` (end None) or `[start:end]`.
type Subscript = (i64, Option<i64>);

/// `(expr, Some((start, end)))` for `expr[start]` (end None), `expr[start:end]`, `expr[start:]`
/// (end -1 meaning the last). As in Ansible, `[x:0]` selects only `x`.
fn split_subscript(term: &str) -> Result<(&str, Option<Subscript>), String> {
    if term.starts_with('~') {
        return Ok((term, None));
    }
    let Some(c) = subscript_re().captures(term) else {
        return Ok((term, None));
    };
    let expr = c.get(1).map(|m| m.as_str()).unwrap_or(term);
    let num = |s: &str| s.parse::<i64>().map_err(|_| format!("invalid subscript in host pattern '{term}'"));
    if let Some(idx) = c.get(2) {
        return Ok((expr, Some((num(idx.as_str())?, None))));
    }
    let start = num(c.get(3).map(|m| m.as_str()).unwrap_or("0"))?;
    let end = match c.get(5).map(|m| m.as_str()).unwrap_or("") {
        "" => -1,
        e => num(e)?,
    };
    if end == 0 {
        return Ok((expr, Some((start, None))));
    }
    Ok((expr, Some((start, Some(end)))))
}

/// Groups matching the expression (their hosts), plus hosts matching it when no group did or
/// the expression is a glob/regex; implicit localhost when nothing matched.
fn enumerate(inv: &Inventory, expr: &str) -> Result<Vec<String>, String> {
    let re = compile(expr)?;
    let mut out: Vec<String> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut push = |h: String, out: &mut Vec<String>| {
        if seen.insert(h.clone()) {
            out.push(h);
        }
    };
    let mut any_group = false;
    for g in inv.groups.keys() {
        if re.is_match(g) {
            any_group = true;
            for h in inv.group_hosts(g) {
                push(h, &mut out);
            }
        }
    }
    let special = expr.starts_with('~') || expr.contains(['.', '?', '*', '[']);
    if !any_group || special {
        for h in inv.hosts.keys() {
            if re.is_match(h) {
                push(h.clone(), &mut out);
            }
        }
    }
    if out.is_empty() && LOCALHOST_NAMES.contains(&expr) && !inv.hosts.contains_key(expr) {
        out.push(expr.to_string());
    }
    Ok(out)
}

/// `~regex` matches from the start (Python's `re.match`); anything else is an fnmatch glob
/// over the whole name.
fn compile(expr: &str) -> Result<Regex, String> {
    let src = match expr.strip_prefix('~') {
        Some(r) => format!("^(?:{r})"),
        None => format!("^(?:{})$", glob_to_regex(expr)),
    };
    Regex::new(&src).map_err(|e| format!("invalid host pattern '{expr}': {e}"))
}

pub use pbr_core::pyre::glob_to_regex;
