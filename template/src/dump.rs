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
    /// PyYAML's line width: scalars and flow collections are folded past this column.
    pub width: usize,
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Array(_) | Value::Object(_))
}

fn inline(v: &Value, o: &YamlOpts) -> bool {
    match v {
        Value::Array(a) => a.is_empty() || (o.flow_leaves && a.iter().all(is_scalar)),
        Value::Object(m) => m.is_empty() || (o.flow_leaves && m.values().all(is_scalar)),
        _ => true,
    }
}

/// Would PyYAML's implicit resolvers read this plain text as something other than a string?
fn resolves_to_non_string(s: &str) -> bool {
    static RE: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(concat!(
            r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF",
            r"|[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?",
            r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
            r"|[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+",
            r"|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+|<<|~|null|Null|NULL|=",
            r"|[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]",
            r"|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9]",
            r"(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$"
        ))
        .ok()
    });
    re.as_ref().is_none_or(|re| re.is_match(s))
}

/// What PyYAML's `analyze_scalar` allows for a string.
struct Analysis {
    multiline: bool,
    flow_plain: bool,
    block_plain: bool,
    single_quoted: bool,
}

fn is_break(c: char) -> bool {
    matches!(c, '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_printable(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{85}')
        || ('\u{20}'..='\u{7e}').contains(&c)
        || ('\u{a0}'..='\u{d7ff}').contains(&c)
        || (('\u{e000}'..='\u{fffd}').contains(&c) && c != '\u{feff}')
        || ('\u{10000}'..='\u{10ffff}').contains(&c)
}

fn analyze(s: &str) -> Analysis {
    if s.is_empty() {
        return Analysis { multiline: false, flow_plain: false, block_plain: true, single_quoted: true };
    }
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    let (mut flow_ind, mut block_ind) = (false, false);
    let (mut line_breaks, mut special) = (false, false);
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) = (false, false, false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut prev_space, mut prev_break) = (false, false);
    if s.starts_with("---") || s.starts_with("...") {
        flow_ind = true;
        block_ind = true;
    }
    let mut preceded_by_ws = true;
    for i in 0..n {
        let ch = chars[i];
        let followed_by_ws =
            i + 1 >= n || matches!(chars[i + 1], '\0' | ' ' | '\t' | '\r' | '\n') || is_break(chars[i + 1]);
        if i == 0 {
            if "#,[]{}&*!|>'\"%@`".contains(ch) {
                flow_ind = true;
                block_ind = true;
            }
            if ch == '?' || ch == ':' {
                flow_ind = true;
                if followed_by_ws {
                    block_ind = true;
                }
            }
            if ch == '-' && followed_by_ws {
                flow_ind = true;
                block_ind = true;
            }
        } else {
            if ",?[]{}".contains(ch) {
                flow_ind = true;
            }
            if ch == ':' {
                flow_ind = true;
                if followed_by_ws {
                    block_ind = true;
                }
            }
            if ch == '#' && preceded_by_ws {
                flow_ind = true;
                block_ind = true;
            }
        }
        if is_break(ch) {
            line_breaks = true;
        }
        let unicode_ok = ch == '\u{85}'
            || ('\u{a0}'..='\u{d7ff}').contains(&ch)
            || ('\u{e000}'..='\u{fffd}').contains(&ch)
            || ('\u{10000}'..='\u{10ffff}').contains(&ch);
        if !(ch == '\n' || ('\u{20}'..='\u{7e}').contains(&ch)) && (!unicode_ok || ch == '\u{feff}') {
            special = true;
        }
        if ch == ' ' {
            if i == 0 {
                leading_space = true;
            }
            if i == n - 1 {
                trailing_space = true;
            }
            if prev_break {
                break_space = true;
            }
            prev_space = true;
            prev_break = false;
        } else if is_break(ch) {
            if i == 0 {
                leading_break = true;
            }
            if i == n - 1 {
                trailing_break = true;
            }
            if prev_space {
                space_break = true;
            }
            prev_space = false;
            prev_break = true;
        } else {
            prev_space = false;
            prev_break = false;
        }
        preceded_by_ws = matches!(ch, '\0' | ' ' | '\t' | '\r' | '\n') || is_break(ch);
    }
    let (mut flow_plain, mut block_plain, mut single) = (true, true, true);
    if leading_space || leading_break || trailing_space || trailing_break {
        flow_plain = false;
        block_plain = false;
    }
    if break_space {
        flow_plain = false;
        block_plain = false;
        single = false;
    }
    if space_break || special {
        flow_plain = false;
        block_plain = false;
        single = false;
    }
    if line_breaks {
        flow_plain = false;
        block_plain = false;
    }
    if flow_ind {
        flow_plain = false;
    }
    if block_ind {
        block_plain = false;
    }
    Analysis { multiline: line_breaks, flow_plain, block_plain, single_quoted: single }
}

/// A YAML text being written, tracking the column as PyYAML's emitter does.
struct W<'a> {
    out: String,
    col: usize,
    /// The last thing written was whitespace (or nothing): a scalar needs no leading space.
    ws: bool,
    o: &'a YamlOpts,
}

impl W<'_> {
    fn write(&mut self, s: &str) {
        match s.rfind('\n') {
            Some(i) => self.col = s[i + 1..].chars().count(),
            None => self.col += s.chars().count(),
        }
        self.out.push_str(s);
        self.ws = false;
    }

    fn newline(&mut self) {
        self.out.push('\n');
        self.col = 0;
        self.ws = true;
    }

    fn indent_to(&mut self, indent: usize) {
        if self.col < indent {
            self.out.push_str(&" ".repeat(indent - self.col));
            self.col = indent;
        }
        self.ws = true;
    }

    /// PyYAML's `write_indent` from the middle of a line.
    fn break_indent(&mut self, indent: usize) {
        self.newline();
        self.indent_to(indent);
    }

    fn lead_space(&mut self) {
        if !self.ws {
            self.write(" ");
        }
    }

    fn plain(&mut self, s: &str, indent: usize, split: bool) {
        if s.is_empty() {
            return;
        }
        self.lead_space();
        let chars: Vec<char> = s.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] == ' ' {
                let start = i;
                while i < chars.len() && chars[i] == ' ' {
                    i += 1;
                }
                if i - start == 1 && self.col > self.o.width && split {
                    self.break_indent(indent);
                    self.ws = false;
                } else {
                    self.write(&" ".repeat(i - start));
                }
            } else {
                let start = i;
                while i < chars.len() && chars[i] != ' ' {
                    i += 1;
                }
                self.write(&chars[start..i].iter().collect::<String>());
            }
        }
    }

    fn single_quoted(&mut self, s: &str, indent: usize, split: bool) {
        self.lead_space();
        self.write("'");
        let chars: Vec<char> = s.chars().collect();
        let n = chars.len();
        let mut i = 0;
        while i < n {
            let c = chars[i];
            if c == ' ' {
                let start = i;
                while i < n && chars[i] == ' ' {
                    i += 1;
                }
                if i - start == 1 && self.col > self.o.width && split && start != 0 && i != n {
                    self.break_indent(indent);
                } else {
                    self.write(&" ".repeat(i - start));
                }
            } else if is_break(c) {
                let start = i;
                while i < n && is_break(chars[i]) {
                    i += 1;
                }
                if chars[start] == '\n' {
                    self.newline();
                }
                for br in &chars[start..i] {
                    if *br == '\n' {
                        self.newline();
                    } else {
                        self.out.push(*br);
                        self.col = 0;
                    }
                }
                self.indent_to(indent);
            } else if c == '\'' {
                self.write("''");
                i += 1;
            } else {
                let start = i;
                while i < n && !(chars[i] == ' ' || chars[i] == '\'' || is_break(chars[i])) {
                    i += 1;
                }
                self.write(&chars[start..i].iter().collect::<String>());
            }
        }
        self.write("'");
    }

    fn double_quoted(&mut self, s: &str) {
        self.lead_space();
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\0' => out.push_str("\\0"),
                '\u{7}' => out.push_str("\\a"),
                '\u{8}' => out.push_str("\\b"),
                '\u{b}' => out.push_str("\\v"),
                '\u{c}' => out.push_str("\\f"),
                '\u{1b}' => out.push_str("\\e"),
                '\u{85}' => out.push_str("\\N"),
                '\u{a0}' => out.push_str("\\_"),
                '\u{2028}' => out.push_str("\\L"),
                '\u{2029}' => out.push_str("\\P"),
                c if !is_printable(c) || c == '\u{feff}' => {
                    let n = c as u32;
                    if n <= 0xff {
                        out.push_str(&format!("\\x{n:02X}"));
                    } else if n <= 0xffff {
                        out.push_str(&format!("\\u{n:04X}"));
                    } else {
                        out.push_str(&format!("\\U{n:08X}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
        self.write(&out);
    }

    fn string(&mut self, s: &str, in_flow: bool, simple_key: bool, indent: usize) {
        let a = analyze(s);
        let style_ok = if in_flow { a.flow_plain } else { a.block_plain };
        let plain_ok = !(s.is_empty() || simple_key && a.multiline) && style_ok && !resolves_to_non_string(s);
        if plain_ok {
            self.plain(s, indent, !simple_key);
        } else if a.single_quoted && !(simple_key && a.multiline) {
            self.single_quoted(s, indent, !simple_key);
        } else {
            self.double_quoted(s);
        }
    }

    fn scalar(&mut self, v: &Value, in_flow: bool, simple_key: bool, indent: usize) {
        match v {
            Value::String(s) => self.string(s, in_flow, simple_key, indent),
            other => {
                self.lead_space();
                let text = match other {
                    Value::Null => "null".to_string(),
                    Value::Bool(b) => if *b { "true" } else { "false" }.to_string(),
                    Value::Number(n) if n.is_f64() => match n.as_f64().map(float_repr).as_deref() {
                        Some("nan") => ".nan".into(),
                        Some("inf") => ".inf".into(),
                        Some("-inf") => "-.inf".into(),
                        // PyYAML writes exponents with a fraction: 1.0e+20.
                        Some(s) if s.contains('e') && !s.contains('.') => s.replacen('e', ".0e", 1),
                        Some(s) => s.to_string(),
                        None => n.to_string(),
                    },
                    Value::Number(n) => n.to_string(),
                    _ => String::new(),
                };
                self.write(&text);
            }
        }
    }

    fn sorted<'v>(&self, m: &'v serde_json::Map<String, Value>) -> Vec<(&'v String, &'v Value)> {
        let mut e: Vec<_> = m.iter().collect();
        if self.o.sort_keys {
            e.sort_by(|a, b| a.0.cmp(b.0));
        }
        e
    }

    /// A flow collection; `indent` is the indent of its entries.
    fn flow(&mut self, v: &Value, indent: usize) {
        match v {
            Value::Array(a) => {
                self.lead_space();
                self.write("[");
                self.ws = true;
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        self.write(",");
                    }
                    if self.col > self.o.width {
                        self.break_indent(indent);
                    }
                    self.flow_node(x, indent);
                }
                self.write("]");
            }
            Value::Object(m) => {
                self.lead_space();
                self.write("{");
                self.ws = true;
                for (i, (k, x)) in self.sorted(m).into_iter().enumerate() {
                    if i > 0 {
                        self.write(",");
                    }
                    if self.col > self.o.width {
                        self.break_indent(indent);
                    }
                    if complex_key(k) {
                        self.write("?");
                        self.string(k, true, false, indent + self.o.indent);
                        self.write(" :");
                    } else {
                        self.string(k, true, true, indent + self.o.indent);
                        self.write(":");
                    }
                    self.flow_node(x, indent);
                }
                self.write("}");
            }
            s => self.scalar(s, true, false, indent),
        }
    }

    fn flow_node(&mut self, x: &Value, indent: usize) {
        if is_scalar(x) {
            self.scalar(x, true, false, indent + self.o.indent);
        } else {
            self.flow(x, indent + self.o.indent);
        }
    }

    /// A node in block context whose container is at `indent`.
    fn node(&mut self, v: &Value, indent: usize) {
        if is_scalar(v) {
            self.scalar(v, false, false, indent + self.o.indent);
        } else {
            self.flow(v, indent + self.o.indent);
        }
    }
}

/// Keys PyYAML cannot write as simple keys: empty, multi-line or 128 characters and more.
fn complex_key(k: &str) -> bool {
    k.is_empty() || k.contains(is_break) || k.chars().count() >= 128
}

/// A block collection: a mapping's keys at `indent`, a sequence's `-` at `indent`.
fn block(w: &mut W, v: &Value, indent: usize) {
    match v {
        Value::Object(m) => {
            for (k, x) in w.sorted(m) {
                w.indent_to(indent);
                if complex_key(k) {
                    // PyYAML writes keys that cannot be simple as `? key` / `: value`.
                    w.write("?");
                    w.string(k, false, false, indent + w.o.indent);
                    w.newline();
                    w.indent_to(indent);
                } else {
                    w.string(k, false, true, indent);
                }
                w.write(":");
                if inline(x, w.o) {
                    w.node(x, indent);
                    w.newline();
                } else {
                    w.newline();
                    match x {
                        // PyYAML writes sequences in a mapping without extra indentation.
                        Value::Array(_) => block(w, x, indent),
                        _ => block(w, x, indent + w.o.indent),
                    }
                }
            }
        }
        Value::Array(a) => {
            for x in a {
                w.indent_to(indent);
                w.write("-");
                if inline(x, w.o) {
                    w.node(x, indent);
                    w.newline();
                } else {
                    // The item's first line continues after `-`, padded to the item's indent.
                    let inner = indent + w.o.indent;
                    w.indent_to(inner);
                    block(w, x, inner);
                }
            }
        }
        s => {
            w.scalar(s, false, false, indent);
            w.newline();
        }
    }
}

/// `yaml.dump(value, ...)`.
pub fn to_yaml(v: &Value, o: &YamlOpts) -> String {
    let mut w = W { out: String::new(), col: 0, ws: true, o };
    if is_scalar(v) {
        w.scalar(v, false, false, o.indent);
        let plain = !w.out.starts_with(['\'', '"']);
        w.newline();
        if plain {
            w.out.push_str("...\n");
        }
        return w.out;
    }
    if inline(v, o) {
        w.flow(v, o.indent);
        w.newline();
        return w.out;
    }
    block(&mut w, v, 0);
    w.out
}
