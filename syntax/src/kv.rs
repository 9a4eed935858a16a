//! Ansible's `k=v k2="v 2"` argument strings: split into words as Ansible's `split_args`
//! does (quotes and `{{ }}`/`{% %}` kept whole), and read as params (`parse_kv`).

use serde_json::{Map, Value};

/// Parse Ansible's `k=v k2="v 2"` argument string. Returns the params and the free-form rest
/// (words that are not `k=v`), joined. `known` limits which keys are taken as params for
/// free-form modules (`command`, `shell`); `None` takes all.
pub fn parse_kv(s: &str, known: Option<&[&str]>) -> (Map<String, Value>, String) {
    let mut params = Map::new();
    // the free words keep the text between them as written (newlines included: a `shell: |`
    // script with a heredoc), as Ansible's join_args does
    let mut free = String::new();
    let mut prev_end: Option<usize> = None;
    for (a, b) in split_arg_spans(s) {
        let word = &s[a..b];
        let gap = prev_end.map(|e| &s[e..a]).unwrap_or("");
        prev_end = Some(b);
        // a `k=v` word has its escapes decoded (`\\b` is `\b`, `\n` a newline), as Ansible's
        // parse_kv does; the first `=` not escaped splits it
        let decoded = decode_escapes(word);
        if let Some(pos) =
            decoded.char_indices().find(|&(i, c)| c == '=' && i > 0 && !decoded[..i].ends_with('\\')).map(|(i, _)| i)
        {
            let (k, v) = (&decoded[..pos], &decoded[pos + 1..]);
            // any key but an empty one, as Ansible's parse_kv (a templated `{{ item }}=v` for
            // set_fact); a free-form module's keys are its known ones
            let key_ok = match known {
                Some(kn) => kn.contains(&k),
                None => !k.trim().is_empty(),
            };
            if key_ok {
                params.insert(k.trim().to_string(), Value::String(unquote(v.trim())));
                continue;
            }
        }
        if !free.is_empty() {
            free.push_str(if gap.is_empty() { " " } else { gap });
        }
        free.push_str(word);
    }
    (params, free)
}

/// Python's escapes in a `k=v` word, as Ansible's `_decode_escapes`: `\\`, `\'`, `\"`,
/// `\a \b \f \n \r \t \v`, `\xHH`, `\uHHHH`, `\UHHHHHHHH` (others stay as written).
fn decode_escapes(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut it = s.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(&(_, n)) = it.peek() else {
            out.push(c);
            break;
        };
        if let Some(d) = simple_escape(n) {
            out.push(d);
            it.next();
            continue;
        }
        let width = match n {
            'x' => 2,
            'u' => 4,
            'U' => 8,
            _ => 0,
        };
        let hex = s.get(i + 2..i + 2 + width).filter(|h| width > 0 && h.chars().all(|h| h.is_ascii_hexdigit()));
        match hex.and_then(|h| u32::from_str_radix(h, 16).ok()).and_then(char::from_u32) {
            Some(d) => {
                out.push(d);
                for _ in 0..=width {
                    it.next();
                }
            }
            None => out.push(c),
        }
    }
    out
}

fn unquote(v: &str) -> String {
    let b = v.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        v[1..v.len() - 1].to_string()
    } else {
        v.to_string()
    }
}

/// Split on spaces outside quotes and `{{ }}`/`{% %}`, keeping quotes (Ansible's split_args).
pub fn split_args(s: &str) -> Vec<String> {
    split_arg_spans(s).into_iter().map(|(a, b)| s[a..b].to_string()).collect()
}

/// [`split_args`]'s words as byte ranges of `s`.
fn split_arg_spans(s: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut cur: Option<usize> = None;
    let mut quote: Option<char> = None;
    let mut depth = 0usize;
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        let next = chars.get(i + 1).map(|x| x.1);
        if quote.is_none() && (c == '{' && (next == Some('{') || next == Some('%'))) {
            depth += 1;
            cur.get_or_insert(at);
            i += 2;
            continue;
        }
        if quote.is_none() && depth > 0 && (c == '}' || c == '%') && next == Some('}') {
            depth -= 1;
            cur.get_or_insert(at);
            i += 2;
            continue;
        }
        match quote {
            Some(q) if c == q && (i == 0 || chars[i - 1].1 != '\\') => {
                quote = None;
                cur.get_or_insert(at);
            }
            None if (c == '"' || c == '\'') && depth == 0 => {
                quote = Some(c);
                cur.get_or_insert(at);
            }
            None if c.is_whitespace() && depth == 0 => {
                if let Some(a) = cur.take() {
                    out.push((a, at));
                }
            }
            _ => {
                cur.get_or_insert(at);
            }
        }
        i += 1;
    }
    if let Some(a) = cur {
        out.push((a, s.len()));
    }
    out
}

/// Python's one-character escapes (`\\`, `\'`, `\"`, `\a \b \f \n \r \t \v`): what the
/// character after the backslash stands for. Python literals (`pylit`) read the same table.
pub(crate) fn simple_escape(c: char) -> Option<char> {
    Some(match c {
        '\\' | '\'' | '"' => c,
        'a' => '\u{7}',
        'b' => '\u{8}',
        'f' => '\u{c}',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\u{b}',
        _ => return None,
    })
}
