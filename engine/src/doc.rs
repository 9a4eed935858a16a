//! `pbr doc`: module documentation generated from the typed params (the same schema lint uses).

use crate::module::{DynModule, Registry};
use serde_json::{Map, Value, json};
use std::fmt::Write;

/// Render the module list (no name), one module's doc, or (`format == "json"`) all schemas.
pub fn render(registry: &Registry, module: Option<&str>, format: &str) -> Result<String, String> {
    if let Some(name) = module
        && registry.get(name).is_none()
    {
        let mut msg = format!("no module `{name}`");
        if let Some(s) = crate::playbook::did_you_mean(name, registry.names()) {
            msg.push_str(&format!(" (did you mean `{s}`?)"));
        }
        msg.push_str("; `pbr doc` lists the modules");
        return Err(msg);
    }
    match format {
        "json" => {
            let mut all = Map::new();
            for m in registry.iter() {
                if module.is_some_and(|n| registry.get(n).is_none_or(|x| x.name() != m.name())) {
                    continue;
                }
                let doc = m.doc();
                all.insert(
                    m.name().to_string(),
                    json!({
                        "description": doc.description,
                        "aliases": m.aliases(),
                        "schema": m.schema().as_value(),
                        "examples": doc.examples,
                    }),
                );
            }
            serde_json::to_string_pretty(&Value::Object(all)).map(|s| s + "\n").map_err(|e| e.to_string())
        }
        "text" | "human" | "" => Ok(match module.and_then(|n| registry.get(n)) {
            Some(m) => module_text(m.as_ref()),
            None => list(registry),
        }),
        other => Err(format!("unknown doc format `{other}` (text, json)")),
    }
}

fn first_line(s: &str) -> &str {
    let s = s.trim();
    let end = s.find(". ").map(|i| i + 1).unwrap_or(s.len());
    let s = &s[..end];
    s.lines().next().unwrap_or("")
}

fn list(registry: &Registry) -> String {
    let mut mods: Vec<&std::sync::Arc<dyn DynModule>> = registry.iter().collect();
    mods.sort_by_key(|m| m.name());
    let width = mods.iter().map(|m| m.name().len()).max().unwrap_or(0);
    let mut out = String::new();
    for m in mods {
        let _ = writeln!(out, "{:<width$}  {}", m.name(), first_line(m.doc().description));
    }
    out
}

/// One documented param, read from the JSON schema.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamDoc {
    pub name: String,
    pub type_name: String,
    pub required: bool,
    pub default: Option<Value>,
    pub choices: Vec<String>,
    pub description: String,
}

/// The params of a module, in declaration order.
pub fn params(m: &dyn DynModule) -> Vec<ParamDoc> {
    let schema = m.schema();
    let root = schema.as_value();
    let required: Vec<&str> = root
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = root.get("properties").and_then(Value::as_object) else {
        return vec![];
    };
    props
        .iter()
        .map(|(name, s)| {
            let resolved = resolve(root, s);
            let description = s
                .get("description")
                .or_else(|| resolved.get("description"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let mut choices = Vec::new();
            collect_choices(root, s, &mut choices, 0);
            ParamDoc {
                name: name.clone(),
                type_name: type_name(root, s, 0),
                required: required.contains(&name.as_str()),
                default: s.get("default").cloned().filter(|d| !d.is_null()),
                choices,
                description,
            }
        })
        .collect()
}

fn resolve<'v>(root: &'v Value, s: &'v Value) -> &'v Value {
    match s.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap_or_default();
            root.get("$defs").or_else(|| root.get("definitions")).and_then(|d| d.get(name)).unwrap_or(s)
        }
        None => s,
    }
}

fn type_name(root: &Value, s: &Value, depth: usize) -> String {
    if depth > 6 {
        return "any".into();
    }
    let s = resolve(root, s);
    let mut names: Vec<String> = match s.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => vec![],
    };
    if names.iter().any(|t| t == "array")
        && let Some(items) = s.get("items")
    {
        let inner = type_name(root, items, depth + 1);
        names = names.into_iter().map(|t| if t == "array" { format!("list of {inner}") } else { t }).collect();
    }
    for k in ["anyOf", "oneOf"] {
        if let Some(Value::Array(subs)) = s.get(k) {
            for sub in subs {
                names.push(type_name(root, sub, depth + 1));
            }
        }
    }
    if names.is_empty() && (s.get("enum").is_some() || s.get("const").is_some()) {
        names.push("string".into());
    }
    names.retain(|n| n != "null" && n != "any" && !n.is_empty());
    let mut uniq: Vec<String> = Vec::new();
    for n in names {
        if !uniq.contains(&n) {
            uniq.push(n);
        }
    }
    if uniq.is_empty() { "any".into() } else { uniq.join(" or ") }
}

fn collect_choices(root: &Value, s: &Value, out: &mut Vec<String>, depth: usize) {
    if depth > 6 {
        return;
    }
    let s = resolve(root, s);
    let text = |v: &Value| match v {
        Value::String(x) => x.clone(),
        other => other.to_string(),
    };
    if let Some(Value::Array(e)) = s.get("enum") {
        out.extend(e.iter().filter(|v| !v.is_null()).map(text));
    }
    if let Some(c) = s.get("const").filter(|c| !c.is_null()) {
        out.push(text(c));
    }
    for k in ["anyOf", "oneOf"] {
        if let Some(Value::Array(subs)) = s.get(k) {
            for sub in subs {
                collect_choices(root, sub, out, depth + 1);
            }
        }
    }
}

fn module_text(m: &dyn DynModule) -> String {
    let doc = m.doc();
    let mut out = String::new();
    let _ = writeln!(out, "{}", m.name());
    if !m.aliases().is_empty() {
        let _ = writeln!(out, "  (also: {})", m.aliases().join(", "));
    }
    let _ = writeln!(out);
    for line in wrap(doc.description, 92) {
        let _ = writeln!(out, "  {line}");
    }
    let ps = params(m);
    if !ps.is_empty() {
        let _ = writeln!(out, "\nPARAMS");
        for p in ps {
            let mut head = format!("  {} ({}", p.name, p.type_name);
            if p.required {
                head.push_str(", required");
            }
            if let Some(d) = &p.default {
                head.push_str(&format!(", default: {}", d));
            }
            head.push(')');
            let _ = writeln!(out, "{head}");
            if !p.choices.is_empty() {
                let _ = writeln!(out, "      choices: {}", p.choices.join(", "));
            }
            for line in wrap(&p.description, 88) {
                let _ = writeln!(out, "      {line}");
            }
        }
    }
    if !doc.examples.trim().is_empty() {
        let _ = writeln!(out, "\nEXAMPLES");
        for line in doc.examples.trim_end().lines() {
            if line.trim().is_empty() {
                out.push('\n');
            } else {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
    out
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for para in text.split("\n\n") {
        let mut cur = String::new();
        for word in para.split_whitespace() {
            if !cur.is_empty() && cur.len() + 1 + word.len() > width {
                lines.push(std::mem::take(&mut cur));
            }
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(word);
        }
        if !cur.is_empty() {
            lines.push(cur);
        }
    }
    lines
}
