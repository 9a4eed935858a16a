//! Module params against the module's typed params: unknown keys, types, required keys, values
//! and `validate()`. Templated values are unknown until run time: a templated leaf is replaced by
//! a value that passes, and errors that hinge on one are not reported.

use super::RuleId;
use super::diag;
use crate::diag::Diag;
use crate::module::{DynModule, ParamError};
use crate::playbook::did_you_mean;
use crate::source::Span;
use crate::template::Templar;
use crate::yaml::{Node, PathSeg};
use serde_json::Value;

/// Where the params of a task were written: the module's value and the task's `args:`.
pub struct ArgNodes<'a> {
    pub module: &'a Node,
    pub args: Option<&'a Node>,
    /// The module key (for errors about the whole params, e.g. a missing one).
    pub key_span: Span,
}

impl ArgNodes<'_> {
    /// The node exactly at a path, if written there.
    pub fn node_at(&self, path: &[PathSeg]) -> Option<&Node> {
        [Some(self.module), self.args].into_iter().flatten().find_map(|n| exact(n, path))
    }

    /// The key node of `key` in the mapping at `parent`.
    pub fn key_at(&self, parent: &[PathSeg], key: &str) -> Option<&Node> {
        [Some(self.module), self.args]
            .into_iter()
            .flatten()
            .find_map(|n| exact(n, parent).and_then(|m| m.get_entry(key)).map(|(k, _)| k))
    }

    fn span_at(&self, path: &[PathSeg]) -> Span {
        // the deepest written node on the path
        for len in (1..=path.len()).rev() {
            if let Some(n) = self.node_at(&path[..len]) {
                return n.span;
            }
        }
        self.key_span
    }
}

fn exact<'n>(n: &'n Node, path: &[PathSeg]) -> Option<&'n Node> {
    let mut cur = n;
    for seg in path {
        cur = match seg {
            PathSeg::Key(k) => cur.get(k)?,
            PathSeg::Index(i) => cur.as_seq()?.get(*i)?,
        };
    }
    Some(cur)
}

/// The prefix of `path` that ends at a templated string in `v`, if any.
fn templated_prefix(v: &Value, path: &[PathSeg]) -> Option<usize> {
    let mut cur = v;
    for (i, seg) in path.iter().enumerate() {
        if let Value::String(s) = cur {
            return Templar::is_template(s).then_some(i);
        }
        cur = match (seg, cur) {
            (PathSeg::Key(k), Value::Object(m)) => m.get(k)?,
            (PathSeg::Index(i), Value::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    match cur {
        Value::String(s) if Templar::is_template(s) => Some(path.len()),
        _ => None,
    }
}

fn slot<'v>(v: &'v mut Value, path: &[PathSeg]) -> Option<&'v mut Value> {
    let mut cur = v;
    for seg in path {
        cur = match (seg, cur) {
            (PathSeg::Key(k), Value::Object(m)) => m.get_mut(k)?,
            (PathSeg::Index(i), Value::Array(a)) => a.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// serde's "unknown variant `x`, expected one of `a`, `b`" / "expected `a` or `b`" → "a".
fn first_expected(msg: &str) -> Option<String> {
    let (_, rest) = msg.split_once("expected")?;
    let start = rest.find('`')?;
    let rest = &rest[start + 1..];
    let end = rest.find('`')?;
    Some(rest[..end].to_string())
}

fn same_place(a: &ParamError, b: &ParamError) -> bool {
    a.path == b.path && a.unknown == b.unknown && a.message == b.message
}

/// Check a task's params; returns the diagnostics (several unknown keys, or one other error).
pub fn check(module: &dyn DynModule, args: &Value, nodes: &ArgNodes, lint: bool) -> Vec<Diag> {
    let mut out = Vec::new();
    let mut v = args.clone();
    let mut substituted = false;
    let name = module.name();
    for _ in 0..64 {
        let Err(e) = module.check_params(&v) else {
            return out;
        };
        if let Some((key, expected)) = &e.unknown {
            let mut parent = e.path.clone();
            if parent.last() == Some(&PathSeg::Key(key.clone())) {
                parent.pop();
            }
            let span = nodes.key_at(&parent, key).map(|k| k.span).unwrap_or_else(|| nodes.span_at(&parent));
            let mut d = diag(RuleId::UnknownParam, span, format!("unknown param `{key}` for module `{name}`"));
            d = match did_you_mean(key, expected.iter().map(String::as_str)) {
                Some(s) => d.with_help(format!("did you mean `{s}`?")),
                None if !expected.is_empty() => d.with_help(format!("`{name}` takes: {}", expected.join(", "))),
                None => d,
            };
            out.push(d);
            let removed = match slot(&mut v, &parent) {
                Some(Value::Object(m)) => m.shift_remove(key).is_some(),
                _ => false,
            };
            if !removed {
                return out;
            }
            continue;
        }
        if let Some(len) = templated_prefix(&v, &e.path) {
            // the value is known only at run time: try values that pass
            let at = &e.path[..len];
            let mut cands = vec![];
            if let Some(x) = first_expected(&e.message) {
                cands.push(Value::String(x));
            }
            cands.extend([
                Value::Null,
                Value::Bool(true),
                Value::from(420),
                Value::String("0644".into()),
                Value::String("x".into()),
                Value::Array(vec![]),
                Value::Object(Default::default()),
            ]);
            let mut fixed = false;
            for c in cands {
                let mut trial = v.clone();
                if let Some(s) = slot(&mut trial, at) {
                    *s = c;
                } else {
                    break;
                }
                match module.check_params(&trial) {
                    Ok(()) => {
                        v = trial;
                        fixed = true;
                        break;
                    }
                    Err(e2) if !same_place(&e, &e2) && !e2.path.starts_with(at) => {
                        v = trial;
                        fixed = true;
                        break;
                    }
                    Err(_) => {}
                }
            }
            if !fixed {
                return out;
            }
            substituted = true;
            continue;
        }
        let msg = e.message.as_str();
        let (rule, text) = if let Some(rest) = msg.strip_prefix("missing field `") {
            let field = rest.split('`').next().unwrap_or_default();
            (RuleId::MissingParam, format!("module `{name}` needs param `{field}`"))
        } else if msg.contains("invalid type") || msg.starts_with("expected a boolean") {
            (RuleId::ParamType, format!("param `{}` of `{name}`: {msg}", crate::module::path_text(&e.path)))
        } else if e.path.is_empty() {
            if substituted || !out.is_empty() {
                // may hinge on a templated value or a dropped unknown key
                return out;
            }
            if has_template(&v) && (!lint || Templar::is_template(&e.message) || templated_variant_passes(module, &v)) {
                // the check reads a value known only at run time
                return out;
            }
            (RuleId::ParamConflict, format!("`{name}`: {msg}"))
        } else {
            (RuleId::ParamValue, format!("param `{}` of `{name}`: {msg}", crate::module::path_text(&e.path)))
        };
        let span = if rule == RuleId::MissingParam { nodes.node_at(&e.path).map(|n| n.span) } else { None };
        let span = span.filter(|_| !e.path.is_empty()).unwrap_or_else(|| nodes.span_at(&e.path));
        if rule == RuleId::ParamType
            && let Some(n) = nodes.node_at(&e.path)
            && n.plain
            && let Some(raw) = raw_text(n)
            && matches!(raw.to_ascii_lowercase().as_str(), "yes" | "no" | "on" | "off")
        {
            // the run would fail: a yaml-truthy finding at error severity
            let key = crate::module::path_text(&e.path);
            let mut d = truthy_diag(&raw, &key, name, span);
            d.severity = crate::diag::Severity::Error;
            out.push(d);
            return out;
        }
        let mut d = diag(rule, span, text);
        if rule == RuleId::MissingParam {
            d = d.with_label(format!("`{name}` without `{}`", msg.split('`').nth(1).unwrap_or_default()));
        }
        out.push(d);
        return out;
    }
    out
}

fn has_template(v: &Value) -> bool {
    match v {
        Value::String(s) => Templar::is_template(s),
        Value::Array(a) => a.iter().any(has_template),
        Value::Object(m) => m.iter().any(|(k, x)| Templar::is_template(k) || has_template(x)),
        _ => false,
    }
}

fn replace_templates(v: &mut Value, with: &str) {
    match v {
        Value::String(s) if Templar::is_template(s) => *s = with.to_string(),
        Value::Array(a) => a.iter_mut().for_each(|x| replace_templates(x, with)),
        Value::Object(m) => m.values_mut().for_each(|x| replace_templates(x, with)),
        _ => {}
    }
}

/// Does some plausible run-time value of the templated leaves pass the module's checks?
fn templated_variant_passes(module: &dyn DynModule, v: &Value) -> bool {
    ["templatedvalue1234", "0644", "1", "yes", "a-b_c.d/e:f"].iter().any(|c| {
        let mut t = v.clone();
        replace_templates(&mut t, c);
        module.check_params(&t).is_ok()
    })
}

/// A plain yes/no/on/off where a string param is expected.
pub fn truthy_diag(raw: &str, key: &str, module: &str, span: Span) -> Diag {
    diag(RuleId::YamlTruthy, span, format!("`{raw}` is read as a boolean, but `{key}` of `{module}` takes a string"))
        .with_help(format!("quote it: \"{raw}\""))
}

/// The source text of a node.
pub fn raw_text(n: &Node) -> Option<String> {
    let src = crate::source::source(n.span.src)?;
    src.text.get(n.span.start..n.span.end).map(str::to_string)
}

/// The JSON types a top-level param of the schema accepts (`$ref`, `anyOf`, `oneOf` followed).
pub fn param_types(schema: &schemars::Schema, key: &str) -> Vec<String> {
    let root = schema.as_value();
    let Some(prop) = root.get("properties").and_then(|p| p.get(key)) else {
        return vec![];
    };
    let mut out = Vec::new();
    collect_types(root, prop, &mut out, 0);
    out
}

fn collect_types(root: &Value, s: &Value, out: &mut Vec<String>, depth: usize) {
    if depth > 8 {
        return;
    }
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or_default();
        let defs = root.get("$defs").or_else(|| root.get("definitions"));
        if let Some(d) = defs.and_then(|d| d.get(name)) {
            collect_types(root, d, out, depth + 1);
        }
    }
    match s.get("type") {
        Some(Value::String(t)) => out.push(t.clone()),
        Some(Value::Array(ts)) => out.extend(ts.iter().filter_map(Value::as_str).map(str::to_string)),
        _ => {}
    }
    if s.get("enum").is_some() && s.get("type").is_none() {
        out.push("string".into());
    }
    if s.get("const").is_some_and(Value::is_string) {
        out.push("string".into());
    }
    for k in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(subs)) = s.get(k) {
            for sub in subs {
                collect_types(root, sub, out, depth + 1);
            }
        }
    }
}
