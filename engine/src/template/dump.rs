//! Python-compatible dumpers: `json.dumps` (for `to_json`/`to_nice_json`) and PyYAML's
//! `yaml.dump` (for `to_yaml`/`to_nice_yaml`), on JSON values.

use super::pyfmt::float_repr;
use serde_json::Value;

/// Options of Python's `json.dumps`.
pub struct JsonOpts {
    pub indent: Option<usize>,
    pub sort_keys: bool,
    pub ensure_ascii: bool,
    pub item_sep: String,
    pub key_sep: String,
}

impl JsonOpts {
    /// `json.dumps(x)` defaults.
    pub fn compact() -> JsonOpts {
        JsonOpts { indent: None, sort_keys: false, ensure_ascii: true, item_sep: ", ".into(), key_sep: ": ".into() }
    }
}

fn json_str(s: &str, ascii: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ascii && (c as u32) > 0x7e) => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn number(n: &serde_json::Number) -> String {
    if n.is_f64() {
        match n.as_f64() {
            Some(f) => match float_repr(f).as_str() {
                "nan" => "NaN".into(),
                "inf" => "Infinity".into(),
                "-inf" => "-Infinity".into(),
                s => s.to_string(),
            },
            None => n.to_string(),
        }
    } else {
        n.to_string()
    }
}

/// `json.dumps(value, ...)`.
pub fn to_json(v: &Value, o: &JsonOpts) -> String {
    let mut out = String::new();
    json_into(v, o, 0, &mut out);
    out
}

fn newline_indent(o: &JsonOpts, level: usize, out: &mut String) {
    if let Some(n) = o.indent {
        out.push('\n');
        out.push_str(&" ".repeat(n * level));
    }
}

fn json_into(v: &Value, o: &JsonOpts, level: usize, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&number(n)),
        Value::String(s) => json_str(s, o.ensure_ascii, out),
        Value::Array(a) => {
            if a.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(&o.item_sep);
                }
                newline_indent(o, level + 1, out);
                json_into(x, o, level + 1, out);
            }
            newline_indent(o, level, out);
            out.push(']');
        }
        Value::Object(m) => {
            if m.is_empty() {
                out.push_str("{}");
                return;
            }
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            if o.sort_keys {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (k, x)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(&o.item_sep);
                }
                newline_indent(o, level + 1, out);
                json_str(k, o.ensure_ascii, out);
                out.push_str(&o.key_sep);
                json_into(x, o, level + 1, out);
            }
            newline_indent(o, level, out);
            out.push('}');
        }
    }
}

/// Options of PyYAML's `yaml.dump` as Ansible calls it.
pub struct YamlOpts {
    pub indent: usize,
    /// `default_flow_style=None`: collections holding only scalars are written inline.
    pub flow_leaves: bool,
    pub sort_keys: bool,
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Array(_) | Value::Object(_))
}

fn is_empty_coll(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

fn inline(v: &Value, o: &YamlOpts) -> bool {
    match v {
        Value::Array(a) => a.is_empty() || (o.flow_leaves && a.iter().all(is_scalar)),
        Value::Object(m) => m.is_empty() || (o.flow_leaves && m.values().all(is_scalar)),
        _ => true,
    }
}

/// Would a plain scalar with this text read back as something other than this string?
fn needs_quotes(s: &str, in_flow: bool) -> bool {
    if s.is_empty() || s != s.trim() {
        return true;
    }
    let lower = s.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "yes" | "no" | "on" | "off" | "true" | "false" | "null" | "~" | ".nan" | ".inf" | "-.inf" | "+.inf"
    ) {
        return true;
    }
    let first = s.as_bytes()[0];
    if b"-?:,[]{}#&*!|>'\"%@`".contains(&first) {
        // `- x`, `? x`, `: x` need a following space to be special, but PyYAML quotes anyway
        // unless the indicator is followed by a non-space in a block context.
        let second = s.as_bytes().get(1).copied();
        let ok_dash = matches!(first, b'-' | b'?' | b':') && second.is_some_and(|c| c != b' ') && !in_flow;
        if !ok_dash {
            return true;
        }
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return true;
    }
    if in_flow && s.bytes().any(|b| b",[]{}".contains(&b)) {
        return true;
    }
    if s.chars().any(|c| c.is_control() || c == '\u{feff}') {
        return true;
    }
    // Timestamps (`2001-12-14`, `2001-12-14 21:59:43.10`).
    let b = s.as_bytes();
    if b.len() >= 8
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5].is_ascii_digit()
        && s[5..].contains('-')
    {
        return true;
    }
    // Numbers in any YAML 1.1 form (int, float, octal, hex, sexagesimal, with underscores).
    let t = s.trim_start_matches(['+', '-']).replace('_', "");
    let t = t.as_str();
    if !t.is_empty() {
        let numeric = t.bytes().all(|b| b.is_ascii_digit())
            || t.parse::<f64>().is_ok()
            || (t.starts_with("0x") && t.len() > 2 && t[2..].bytes().all(|b| b.is_ascii_hexdigit()))
            || (t.starts_with("0b") && t.len() > 2 && t[2..].bytes().all(|b| b == b'0' || b == b'1'))
            || (t.contains(':') && t.split(':').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())));
        if numeric {
            return true;
        }
    }
    false
}

fn yaml_scalar(v: &Value, in_flow: bool) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => if *b { "true" } else { "false" }.into(),
        Value::Number(n) => {
            if n.is_f64() {
                match n.as_f64().map(float_repr).as_deref() {
                    Some("nan") => ".nan".into(),
                    Some("inf") => ".inf".into(),
                    Some("-inf") => "-.inf".into(),
                    Some(s) => s.to_string(),
                    None => n.to_string(),
                }
            } else {
                n.to_string()
            }
        }
        Value::String(s) => yaml_str(s, in_flow),
        _ => String::new(),
    }
}

fn yaml_str(s: &str, in_flow: bool) -> String {
    if s.chars().any(|c| c.is_control() && c != '\t' || c == '\u{feff}') || s.contains('\t') {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\0' => out.push_str("\\0"),
                c if c.is_control() || c == '\u{feff}' => {
                    let n = c as u32;
                    if n <= 0xff {
                        out.push_str(&format!("\\x{n:02X}"));
                    } else {
                        out.push_str(&format!("\\u{n:04X}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
        return out;
    }
    if needs_quotes(s, in_flow) {
        return format!("'{}'", s.replace('\'', "''"));
    }
    s.to_string()
}

fn sorted<'a>(m: &'a serde_json::Map<String, Value>, o: &YamlOpts) -> Vec<(&'a String, &'a Value)> {
    let mut e: Vec<_> = m.iter().collect();
    if o.sort_keys {
        e.sort_by(|a, b| a.0.cmp(b.0));
    }
    e
}

fn flow(v: &Value, o: &YamlOpts, out: &mut String) {
    match v {
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                flow(x, o, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in sorted(m, o).into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&yaml_str(k, true));
                out.push_str(": ");
                flow(x, o, out);
            }
            out.push('}');
        }
        s => out.push_str(&yaml_scalar(s, true)),
    }
}

/// Emit a block node whose first line continues the current line at `col` (after `- ` or
/// at line start), with nested lines at `indent`.
fn block(v: &Value, o: &YamlOpts, indent: usize, col: usize, out: &mut String) {
    match v {
        Value::Object(m) => {
            for (i, (k, x)) in sorted(m, o).into_iter().enumerate() {
                if i > 0 {
                    out.push_str(&" ".repeat(indent));
                } else if col < indent {
                    out.push_str(&" ".repeat(indent - col));
                }
                out.push_str(&yaml_str(k, false));
                out.push(':');
                value_after_key(x, o, indent, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(&" ".repeat(indent));
                } else if col < indent {
                    out.push_str(&" ".repeat(indent - col));
                }
                out.push('-');
                if inline(x, o) {
                    out.push(' ');
                    emit_inline(x, o, out);
                    out.push('\n');
                } else {
                    // The item's first line continues after `-`, padded to the next indent.
                    let inner = indent + o.indent;
                    block(x, o, inner, indent + 1, out);
                }
            }
        }
        s => {
            out.push_str(&yaml_scalar(s, false));
            out.push('\n');
        }
    }
}

fn emit_inline(x: &Value, o: &YamlOpts, out: &mut String) {
    if is_scalar(x) {
        out.push_str(&yaml_scalar(x, false));
    } else {
        flow(x, o, out);
    }
}

fn value_after_key(x: &Value, o: &YamlOpts, indent: usize, out: &mut String) {
    if inline(x, o) || is_empty_coll(x) {
        out.push(' ');
        emit_inline(x, o, out);
        out.push('\n');
        return;
    }
    out.push('\n');
    match x {
        // PyYAML writes sequences in a mapping without extra indentation.
        Value::Array(_) => block(x, o, indent, 0, out),
        _ => block(x, o, indent + o.indent, 0, out),
    }
}

/// `yaml.dump(value, ...)`.
pub fn to_yaml(v: &Value, o: &YamlOpts) -> String {
    let mut out = String::new();
    if inline(v, o) {
        emit_inline(v, o, &mut out);
        out.push('\n');
        if let Value::String(s) = v
            && !s.starts_with(['\'', '"'])
            && yaml_str(s, false) == *s
        {
            out.push_str("...\n");
        } else if is_scalar(v) && !matches!(v, Value::String(_)) {
            out.push_str("...\n");
        }
        return out;
    }
    block(v, o, 0, 0, &mut out);
    out
}
