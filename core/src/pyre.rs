//! Regular expressions with Python's `re` syntax and meaning, as Ansible's modules (`lineinfile`,
//! `replace`, `blockinfile`) and filters (`regex_search`, `regex_replace`, the `match`/`search`
//! tests) use them: backreferences (`\1`, `(?P=name)`) and look-around included. Matching is
//! fancy-regex's, which hands every part without backreferences or look-around to the `regex`
//! crate (linear time there); a backtracking part that runs away stops with an error instead of
//! hanging.
//!
//! Python's meanings kept where the engines differ: `\Z` is the end of the text (fancy-regex
//! writes `\z`), and without MULTILINE `$` matches at the end and before a final newline.
//! Replacement templates are Python's (`\1`, `\g<1>`, `\g<name>`, `\n`, `\\`): see [`expand`].

pub use fancy_regex::Captures;

/// Python's `re` flags that Ansible passes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// `re.IGNORECASE`
    pub ignorecase: bool,
    /// `re.MULTILINE`: `^` and `$` at every line.
    pub multiline: bool,
    /// `re.DOTALL`: `.` matches a newline too.
    pub dotall: bool,
}

/// A compiled Python regular expression.
#[derive(Debug, Clone)]
pub struct PyRegex {
    re: fancy_regex::Regex,
    pattern: String,
}

/// Python's syntax to fancy-regex's: `\Z` → `\z`; without MULTILINE, a `$` outside a class →
/// "at the end, or before a final newline".
fn translate(pat: &str, multiline: bool) -> String {
    let mut out = String::with_capacity(pat.len() + 8);
    let mut it = pat.chars().peekable();
    // inside [...] (a `]` right after `[` or `[^` is a literal)
    let mut class = false;
    while let Some(c) = it.next() {
        match c {
            '\\' => match it.next() {
                Some('Z') if !class => out.push_str("\\z"),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '[' if !class => {
                class = true;
                out.push('[');
                if it.peek() == Some(&'^') {
                    out.push('^');
                    it.next();
                }
                if it.peek() == Some(&']') {
                    out.push_str("\\]");
                    it.next();
                }
            }
            ']' if class => {
                class = false;
                out.push(']');
            }
            '$' if !class && !multiline => out.push_str("(?:(?=\\n\\z)|\\z)"),
            c => out.push(c),
        }
    }
    out
}

impl PyRegex {
    pub fn new(pat: &str, flags: Flags) -> Result<PyRegex, String> {
        let mut src = String::new();
        if flags.ignorecase {
            src.push_str("(?i)");
        }
        if flags.multiline {
            src.push_str("(?m)");
        }
        if flags.dotall {
            src.push_str("(?s)");
        }
        src.push_str(&translate(pat, flags.multiline));
        let re = fancy_regex::RegexBuilder::new(&src).build().map_err(|e| e.to_string())?;
        Ok(PyRegex { re, pattern: pat.to_string() })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// The number of groups (Python's `re.Pattern.groups`).
    pub fn groups(&self) -> usize {
        self.re.captures_len().saturating_sub(1)
    }

    /// The names of the named groups (Python's `re.Pattern.groupindex` keys).
    pub fn capture_names(&self) -> Vec<String> {
        self.re.capture_names().flatten().map(str::to_string).collect()
    }

    /// `re.search(...) is not None`.
    pub fn is_match(&self, s: &str) -> Result<bool, String> {
        self.re.is_match(s).map_err(|e| self.runtime(e))
    }

    /// `re.search`: the first match with its groups.
    pub fn captures<'t>(&self, s: &'t str) -> Result<Option<Captures<'t>>, String> {
        self.re.captures(s).map_err(|e| self.runtime(e))
    }

    /// `re.finditer`: every match, left to right, not overlapping.
    pub fn captures_all<'t>(&self, s: &'t str) -> Result<Vec<Captures<'t>>, String> {
        self.re.captures_iter(s).map(|c| c.map_err(|e| self.runtime(e))).collect()
    }

    /// `re.subn(pattern, repl, s, count)`: the new text and the number of replacements (`count`
    /// 0: all).
    pub fn sub(&self, s: &str, repl: &str, count: usize) -> Result<(String, usize), String> {
        // the template is checked before any match, as Python does
        let pieces = parse_template(repl)?;
        let mut out = String::with_capacity(s.len());
        let mut last = 0;
        let mut n = 0;
        for caps in self.re.captures_iter(s) {
            if count > 0 && n >= count {
                break;
            }
            let caps = caps.map_err(|e| self.runtime(e))?;
            let Some(m) = caps.get(0) else { continue };
            out.push_str(&s[last..m.start()]);
            out.push_str(&expand_pieces(&pieces, &caps)?);
            last = m.end();
            n += 1;
        }
        out.push_str(&s[last..]);
        Ok((out, n))
    }

    fn runtime(&self, e: fancy_regex::Error) -> String {
        format!("regular expression '{}' could not be matched: {e}", self.pattern)
    }
}

/// One piece of a parsed replacement template.
enum Piece {
    Text(String),
    Group(usize),
    Named(String),
}

/// Python's replacement template (`re._parser.parse_template`): `\1`..`\99` and
/// `\g<n>`/`\g<name>`, the escapes `\n \t \r \a \b \f \v \\`; another escaped ASCII
/// letter is Python's "bad escape" error, any other escaped character stays as written.
/// Whether Python's `re` reads `repl` as a replacement template (its error when it does not,
/// e.g. `bad escape \D at position 0`).
pub fn check_template(repl: &str) -> Result<(), String> {
    parse_template(repl).map(|_| ())
}

fn parse_template(repl: &str) -> Result<Vec<Piece>, String> {
    let mut out = vec![];
    let mut text = String::new();
    let mut chars = repl.char_indices().peekable();
    while let Some((pos, c)) = chars.next() {
        if c != '\\' {
            text.push(c);
            continue;
        }
        let mut flush = |text: &mut String, p: Piece| {
            if !text.is_empty() {
                out.push(Piece::Text(std::mem::take(text)));
            }
            out.push(p);
        };
        match chars.next() {
            Some((_, d)) if d.is_ascii_digit() => {
                let mut n = d.to_string();
                if let Some(&(_, d2)) = chars.peek()
                    && d2.is_ascii_digit()
                {
                    n.push(d2);
                    chars.next();
                }
                flush(&mut text, Piece::Group(n.parse().unwrap_or(0)));
            }
            Some((_, 'g')) if chars.peek().map(|x| x.1) == Some('<') => {
                chars.next();
                let name: String = chars.by_ref().map(|x| x.1).take_while(|&c| c != '>').collect();
                let p = match name.parse::<usize>() {
                    Ok(i) => Piece::Group(i),
                    Err(_) => Piece::Named(name),
                };
                flush(&mut text, p);
            }
            Some((_, e)) => match e {
                'n' => text.push('\n'),
                't' => text.push('\t'),
                'r' => text.push('\r'),
                'a' => text.push('\x07'),
                'b' => text.push('\x08'),
                'f' => text.push('\x0c'),
                'v' => text.push('\x0b'),
                '\\' => text.push('\\'),
                o if o.is_ascii_alphabetic() => {
                    let at = repl[..pos].chars().count();
                    return Err(format!("bad escape \\{o} at position {at}"));
                }
                o => {
                    text.push('\\');
                    text.push(o);
                }
            },
            None => text.push('\\'),
        }
    }
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}

fn expand_pieces(pieces: &[Piece], caps: &Captures) -> Result<String, String> {
    let mut out = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Group(i) if *i >= caps.len() => return Err(format!("invalid group reference {i}")),
            Piece::Group(i) => out.push_str(caps.get(*i).map(|m| m.as_str()).unwrap_or("")),
            Piece::Named(n) => out.push_str(caps.name(n).map(|m| m.as_str()).unwrap_or("")),
        }
    }
    Ok(out)
}

/// Python's replacement template expanded with these groups (see [`parse_template`]; an
/// unmatched group is empty).
pub fn expand(repl: &str, caps: &Captures) -> Result<String, String> {
    expand_pieces(&parse_template(repl)?, caps)
}

/// Python's `fnmatch.translate`: `*`, `?`, `[seq]`, `[!seq]`; a `[` without `]` is literal.
pub fn glob_to_regex(glob: &str) -> String {
    let chars: Vec<char> = glob.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '[' => {
                let mut j = i;
                if j < chars.len() && chars[j] == '!' {
                    j += 1;
                }
                if j < chars.len() && chars[j] == ']' {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                if j >= chars.len() {
                    out.push_str("\\[");
                } else {
                    let mut set: String = chars[i..j].iter().collect();
                    i = j + 1;
                    let negate = set.starts_with('!');
                    if negate {
                        set.remove(0);
                    }
                    let body: String = set
                        .chars()
                        .map(|ch| match ch {
                            '\\' | '[' | ']' | '^' | '&' | '~' => format!("\\{ch}"),
                            _ => ch.to_string(),
                        })
                        .collect();
                    out.push('[');
                    if negate {
                        out.push('^');
                    }
                    out.push_str(&body);
                    out.push(']');
                }
            }
            _ => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn re(p: &str) -> PyRegex {
        PyRegex::new(p, Flags::default()).unwrap()
    }

    #[test]
    fn backreferences_and_lookaround() {
        assert!(re(r"^(REF) .* \1$").is_match("REF x REF").unwrap());
        assert!(!re(r"^(REF) .* \1$").is_match("REF x FER").unwrap());
        assert!(re(r"(?P<w>a+)-(?P=w)").is_match("aa-aa").unwrap());
        assert!(re(r"foo(?!bar)").is_match("foobaz").unwrap());
        assert!(!re(r"foo(?!bar)").is_match("foobar").unwrap());
        assert!(re(r"(?<=x)y").is_match("xy").unwrap());
    }

    #[test]
    fn python_anchors() {
        // without MULTILINE, `$` also matches before a final newline; `\Z` only at the end
        assert!(re("c$").is_match("abc\n").unwrap());
        assert!(!re("c$").is_match("abc\nd").unwrap());
        assert!(!re(r"c\Z").is_match("abc\n").unwrap());
        assert!(re(r"c\Z").is_match("abc").unwrap());
        // in a class, `$` is itself
        assert!(re("[$]").is_match("a$").unwrap());
        assert!(re("[]$]x").is_match("]x").unwrap());
        let m = PyRegex::new("^b$", Flags { multiline: true, ..Flags::default() }).unwrap();
        assert!(m.is_match("a\nb\nc").unwrap());
        assert!(PyRegex::new("ABC", Flags { ignorecase: true, ..Flags::default() }).unwrap().is_match("xabc").unwrap());
    }

    #[test]
    fn sub_and_templates() {
        let r = re(r"(\w+)@(?P<host>\w+)");
        assert_eq!(r.sub("me@here you@there", r"\g<host>:\1", 0).unwrap(), ("here:me there:you".into(), 2));
        assert_eq!(r.sub("me@here you@there", r"\2", 1).unwrap(), ("here you@there".into(), 1));
        assert!(r.sub("a@b", r"\3", 0).is_err());
        assert_eq!(re("x").sub("axb", r"\n\\", 0).unwrap().0, "a\n\\b");
        assert_eq!(r.groups(), 2);
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert!(PyRegex::new("(", Flags::default()).is_err());
        assert!(PyRegex::new("a{2,1}", Flags::default()).is_err());
    }

    #[test]
    fn template_escapes_as_python() {
        // an escaped ASCII letter Python does not know is an error, even with no match
        assert_eq!(re("x").sub("abc", r"\D", 0).unwrap_err(), r"bad escape \D at position 0");
        assert_eq!(re("b").sub("abc", r"é\q", 0).unwrap_err(), r"bad escape \q at position 1");
        assert_eq!(re("b").sub("abc", r"[\.\a\t]", 0).unwrap().0, "a[\\.\x07\t]c");
        assert_eq!(re("(b)").sub("abc", r"\1\g<1>\\", 0).unwrap().0, "abb\\c");
    }
}
