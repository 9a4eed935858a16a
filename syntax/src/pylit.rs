//! INI inventory values as Ansible reads them: Python's `ast.literal_eval`, falling back to
//! the text itself. `5` is an int, `True` a bool, `'5'` a string, `[1, 'a']` a list,
//! `{'a': 1}` a mapping, `None` null; `yes`, `0644`, `hello world` stay strings.

use serde_json::{Map, Value};

/// Parse an INI value; anything `literal_eval` would reject is kept as the string.
pub fn parse_value(s: &str) -> Value {
    let mut p = Parser { s: s.trim_start_matches([' ', '\t']).as_bytes(), i: 0, depth: 0 };
    match p.expr() {
        Some(v) => {
            p.skip_ws();
            if p.i == p.s.len() { v } else { Value::String(s.to_string()) }
        }
        None => Value::String(s.to_string()),
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\r' | b'\n' | b'\x0c' => self.i += 1,
                b'#' => {
                    while self.peek().is_some_and(|c| c != b'\n') {
                        self.i += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Option<Value> {
        self.depth += 1;
        if self.depth > 100 {
            return None;
        }
        let v = self.expr_inner();
        self.depth -= 1;
        v
    }

    fn expr_inner(&mut self) -> Option<Value> {
        self.skip_ws();
        let c = self.peek()?;
        match c {
            b'-' | b'+' => {
                self.i += 1;
                self.skip_ws();
                match self.number()? {
                    Value::Number(n) if c == b'-' => {
                        if let Some(i) = n.as_i64() {
                            Some(Value::from(i.checked_neg()?))
                        } else {
                            serde_json::Number::from_f64(-n.as_f64()?).map(Value::Number)
                        }
                    }
                    v => Some(v),
                }
            }
            b'[' => {
                self.i += 1;
                Some(Value::Array(self.items(b']')?))
            }
            b'(' => {
                self.i += 1;
                if self.eat(b')') {
                    return Some(Value::Array(Vec::new()));
                }
                let first = self.expr()?;
                if self.eat(b')') {
                    return Some(first);
                }
                if !self.eat(b',') {
                    return None;
                }
                let mut rest = self.items(b')')?;
                rest.insert(0, first);
                Some(Value::Array(rest))
            }
            b'{' => {
                self.i += 1;
                self.brace()
            }
            b'0'..=b'9' | b'.' => self.number(),
            _ if c == b'\'' || c == b'"' || c.is_ascii_alphabetic() || c == b'_' => {
                if let Some(s) = self.strings()? {
                    return Some(Value::String(s));
                }
                let start = self.i;
                while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_') {
                    self.i += 1;
                }
                match &self.s[start..self.i] {
                    b"True" => Some(Value::Bool(true)),
                    b"False" => Some(Value::Bool(false)),
                    b"None" => Some(Value::Null),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Comma-separated expressions up to `close` (trailing comma allowed).
    fn items(&mut self, close: u8) -> Option<Vec<Value>> {
        let mut out = Vec::new();
        loop {
            if self.eat(close) {
                return Some(out);
            }
            out.push(self.expr()?);
            if self.eat(close) {
                return Some(out);
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    /// After `{`: a dict, or a set (read as a list).
    fn brace(&mut self) -> Option<Value> {
        if self.eat(b'}') {
            return Some(Value::Object(Map::new()));
        }
        let first = self.expr()?;
        if self.eat(b':') {
            let mut map = Map::new();
            let v = self.expr()?;
            map.insert(key_string(&first)?, v);
            loop {
                if self.eat(b'}') {
                    return Some(Value::Object(map));
                }
                if !self.eat(b',') {
                    return None;
                }
                if self.eat(b'}') {
                    return Some(Value::Object(map));
                }
                let k = self.expr()?;
                if !self.eat(b':') {
                    return None;
                }
                let v = self.expr()?;
                map.insert(key_string(&k)?, v);
            }
        }
        let mut out = vec![first];
        // a set's members are hashable: no list, set or dict (`{{"a"}}` is no literal)
        let set = |out: Vec<Value>| {
            (!out.iter().any(|v| matches!(v, Value::Array(_) | Value::Object(_)))).then_some(Value::Array(out))
        };
        loop {
            if self.eat(b'}') {
                return set(out);
            }
            if !self.eat(b',') {
                return None;
            }
            if self.eat(b'}') {
                return set(out);
            }
            out.push(self.expr()?);
        }
    }

    fn number(&mut self) -> Option<Value> {
        let start = self.i;
        while let Some(c) = self.peek() {
            let exp_sign = (c == b'+' || c == b'-')
                && self.i > start
                && matches!(self.s[self.i - 1], b'e' | b'E')
                && !self.s[start..].starts_with(b"0x")
                && !self.s[start..].starts_with(b"0X");
            if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || exp_sign {
                self.i += 1;
            } else {
                break;
            }
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).ok()?;
        if text.contains("__") || text.ends_with('_') || text.starts_with('_') {
            return None;
        }
        let clean: String = text.chars().filter(|c| *c != '_').collect();
        let lower = clean.to_ascii_lowercase();
        for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
            if let Some(digits) = lower.strip_prefix(prefix) {
                return i64::from_str_radix(digits, radix).ok().map(Value::from);
            }
        }
        if lower.ends_with('j') {
            return None;
        }
        if lower.contains(['.', 'e']) {
            if !lower.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | '+' | '-')) {
                return None;
            }
            let f: f64 = lower.parse().ok()?;
            return serde_json::Number::from_f64(f).map(Value::Number);
        }
        if !lower.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        if lower.len() > 1 && lower.starts_with('0') && lower.chars().any(|c| c != '0') {
            return None;
        }
        lower.parse::<i64>().ok().map(Value::from)
    }

    /// One or more adjacent string literals (concatenated); `Ok(None)` when not at a string.
    fn strings(&mut self) -> Option<Option<String>> {
        let mut out: Option<String> = None;
        loop {
            let save = self.i;
            if out.is_some() {
                self.skip_ws();
            }
            match self.string()? {
                Some(s) => out.get_or_insert_with(String::new).push_str(&s),
                None => {
                    self.i = save;
                    return Some(out);
                }
            }
        }
    }

    /// One string literal with optional `r`/`u`/`b` prefix. `Some(None)`: not a string here.
    fn string(&mut self) -> Option<Option<String>> {
        let start = self.i;
        let mut raw = false;
        while let Some(c) = self.peek() {
            match c.to_ascii_lowercase() {
                b'r' => raw = true,
                b'u' | b'b' => {}
                b'f' => {
                    return if self.s.get(self.i + 1).is_some_and(|q| *q == b'\'' || *q == b'"') {
                        None
                    } else {
                        Some(None)
                    };
                }
                _ => break,
            }
            self.i += 1;
            if self.i - start > 2 {
                break;
            }
        }
        let Some(q) = self.peek().filter(|c| *c == b'\'' || *c == b'"') else {
            self.i = start;
            return Some(None);
        };
        let triple = self.s[self.i..].starts_with(&[q, q, q]);
        self.i += if triple { 3 } else { 1 };
        let mut bytes: Vec<u8> = Vec::new();
        loop {
            let c = self.peek()?;
            if c == q && (!triple || self.s[self.i..].starts_with(&[q, q, q])) {
                self.i += if triple { 3 } else { 1 };
                break;
            }
            if c == b'\n' && !triple {
                return None;
            }
            self.i += 1;
            if c != b'\\' {
                bytes.push(c);
                continue;
            }
            let e = self.peek()?;
            self.i += 1;
            if raw {
                bytes.push(b'\\');
                bytes.push(e);
                continue;
            }
            let push_char = |ch: char, bytes: &mut Vec<u8>| {
                let mut buf = [0u8; 4];
                bytes.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            };
            if let Some(ch) = crate::kv::simple_escape(char::from(e)) {
                push_char(ch, &mut bytes);
                continue;
            }
            match e {
                b'\n' => {}
                b'0'..=b'7' => {
                    let mut n = u32::from(e - b'0');
                    for _ in 0..2 {
                        match self.peek() {
                            Some(d @ b'0'..=b'7') => {
                                n = n * 8 + u32::from(d - b'0');
                                self.i += 1;
                            }
                            _ => break,
                        }
                    }
                    push_char(char::from_u32(n)?, &mut bytes);
                }
                b'x' | b'u' | b'U' => {
                    let len = match e {
                        b'x' => 2,
                        b'u' => 4,
                        _ => 8,
                    };
                    let hex = std::str::from_utf8(self.s.get(self.i..self.i + len)?).ok()?;
                    let n = u32::from_str_radix(hex, 16).ok()?;
                    self.i += len;
                    push_char(char::from_u32(n)?, &mut bytes);
                }
                _ => {
                    bytes.push(b'\\');
                    bytes.push(e);
                }
            }
        }
        String::from_utf8(bytes).ok().map(Some)
    }
}

fn key_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "True" } else { "False" }.to_string()),
        Value::Null => Some("None".to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_value;
    use serde_json::json;

    #[test]
    fn literal_values() {
        assert_eq!(parse_value("5"), json!(5));
        assert_eq!(parse_value("-12"), json!(-12));
        assert_eq!(parse_value("1_000"), json!(1000));
        assert_eq!(parse_value("0x1F"), json!(31));
        assert_eq!(parse_value("1.5"), json!(1.5));
        assert_eq!(parse_value("True"), json!(true));
        assert_eq!(parse_value("None"), json!(null));
        assert_eq!(parse_value("'5'"), json!("5"));
        assert_eq!(parse_value("\"a\\tb\""), json!("a\tb"));
        assert_eq!(parse_value("[1, 'a', (2,)]"), json!([1, "a", [2]]));
        assert_eq!(parse_value("{'a': 1, 2: [None]}"), json!({"a": 1, "2": [null]}));
        assert_eq!(parse_value("8080 # a comment"), json!(8080));
        assert_eq!(parse_value("'a' 'b'"), json!("ab"));
    }

    #[test]
    fn strings_kept() {
        for s in ["yes", "true", "0644", "hello world", "bar # comment", "1.2.3.4", "5abc", "/usr/bin/python3", "1j"] {
            assert_eq!(parse_value(s), json!(s), "{s}");
        }
    }
}
