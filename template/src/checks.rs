//! Ansible's Jinja tests (`is version(...)`, `is failed`, `is match(...)`...).

use super::filters::{expand_user, undefined_err};
use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind};
use std::cmp::Ordering;

pub fn register(env: &mut Environment<'static>) {
    env.add_test("undefined", |v: &Value| v.is_undefined());
    env.add_test("match", |v: &Value, p: String, k: Kwargs| regex_test(v, &p, k, true));
    env.add_test("search", |v: &Value, p: String, k: Kwargs| regex_test(v, &p, k, false));
    env.add_test("regex", regex_generic);
    env.add_test("version", version_test);
    env.add_test("version_compare", version_test);
    env.add_test("subset", |a: &Value, b: &Value| -> Result<bool, Error> {
        let b = items(b)?;
        Ok(items(a)?.iter().all(|x| b.contains(x)))
    });
    env.add_test("superset", |a: &Value, b: &Value| -> Result<bool, Error> {
        let a = items(a)?;
        Ok(items(b)?.iter().all(|x| a.contains(x)))
    });
    // Python's `item in seq`: a substring of a string, an element of a list, a key of a mapping
    env.add_test("contains", |seq: &Value, item: &Value| -> Result<bool, Error> {
        if let (Some(s), Some(i)) = (seq.as_str(), item.as_str()) {
            return Ok(s.contains(i));
        }
        Ok(items(seq)?.contains(item))
    });
    env.add_test("any", |v: &Value| -> Result<bool, Error> { Ok(items(v)?.iter().any(Value::is_true)) });
    env.add_test("all", |v: &Value| -> Result<bool, Error> { Ok(items(v)?.iter().all(Value::is_true)) });
    env.add_test("divisibleby", |v: &Value, n: i64| -> Result<bool, Error> {
        let x = v.as_i64().ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "divisibleby needs an integer"))?;
        Ok(x.checked_rem(n) == Some(0))
    });
    env.add_test("changed", |v: &Value| result_flag(v, "changed", "changed"));
    env.add_test("change", |v: &Value| result_flag(v, "changed", "changed"));
    env.add_test("failed", |v: &Value| result_flag(v, "failed", "failed"));
    env.add_test("failure", |v: &Value| result_flag(v, "failed", "failed"));
    env.add_test("succeeded", |v: &Value| result_flag(v, "failed", "succeeded").map(|f| !f));
    env.add_test("success", |v: &Value| result_flag(v, "failed", "succeeded").map(|f| !f));
    env.add_test("successful", |v: &Value| result_flag(v, "failed", "succeeded").map(|f| !f));
    env.add_test("skipped", |v: &Value| result_flag(v, "skipped", "skipped"));
    env.add_test("skip", |v: &Value| result_flag(v, "skipped", "skipped"));
    env.add_test("unreachable", |v: &Value| result_flag(v, "unreachable", "unreachable"));
    env.add_test("reachable", |v: &Value| result_flag(v, "unreachable", "reachable").map(|f| !f));
    env.add_test("finished", |v: &Value| -> Result<bool, Error> {
        need_dict(v, "finished")?;
        let f = v.get_attr("finished")?;
        Ok(f.is_undefined() || f.is_true())
    });
    env.add_test("truthy", |v: &Value, k: Kwargs| truthy_test(v, k));
    env.add_test("falsy", |v: &Value, k: Kwargs| truthy_test(v, k).map(|t| !t));
    env.add_test("file", |v: &Value| path_test(v, |p| p.is_file()));
    env.add_test("directory", |v: &Value| path_test(v, |p| p.is_dir()));
    env.add_test("exists", |v: &Value| path_test(v, |p| p.exists()));
    env.add_test("link", |v: &Value| path_test(v, |p| p.is_symlink()));
    env.add_test("abs", |v: &Value| path_test(v, |p| p.is_absolute()));
}

fn items(v: &Value) -> Result<Vec<Value>, Error> {
    if v.is_undefined() {
        return Err(undefined_err());
    }
    Ok(v.try_iter()?.collect())
}

fn need_dict(v: &Value, test: &str) -> Result<(), Error> {
    if v.is_undefined() {
        return Err(undefined_err());
    }
    if v.kind() != ValueKind::Map {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("the '{test}' test expects a dictionary (a registered result), got {}", v.kind()),
        ));
    }
    Ok(())
}

fn result_flag(v: &Value, key: &str, test: &str) -> Result<bool, Error> {
    need_dict(v, test)?;
    let f = v.get_attr(key)?;
    Ok(!f.is_undefined() && truthy_value(&f))
}

fn truthy_value(v: &Value) -> bool {
    match v.as_str() {
        Some(s) if v.kind() == ValueKind::String => super::filters::bool_word(s).unwrap_or(!s.is_empty()),
        _ => v.is_true(),
    }
}

fn truthy_test(v: &Value, k: Kwargs) -> Result<bool, Error> {
    let convert = k.get::<Option<bool>>("convert_bool")?.unwrap_or(false);
    k.assert_all_used()?;
    if v.is_undefined() {
        return Err(undefined_err());
    }
    if convert
        && let Some(s) = v.as_str()
        && let Some(b) = super::filters::bool_word(s)
    {
        return Ok(b);
    }
    Ok(v.is_true())
}

fn path_test(v: &Value, f: impl Fn(&std::path::Path) -> bool) -> Result<bool, Error> {
    if v.is_undefined() {
        return Err(undefined_err());
    }
    let s = super::pyfmt::to_py_str(v)?;
    Ok(f(std::path::Path::new(&expand_user(&s))))
}

fn regex_test(v: &Value, pat: &str, k: Kwargs, anchored: bool) -> Result<bool, Error> {
    let ic = k.get::<Option<bool>>("ignorecase")?.unwrap_or(false);
    let ml = k.get::<Option<bool>>("multiline")?.unwrap_or(false);
    k.assert_all_used()?;
    if v.is_undefined() {
        return Err(undefined_err());
    }
    let s = super::pyfmt::to_py_str(v)?;
    let full = if anchored { format!("\\A(?:{pat})") } else { pat.to_string() };
    let re =
        pbr_core::pyre::PyRegex::new(&full, pbr_core::pyre::Flags { ignorecase: ic, multiline: ml, dotall: false })
            .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("invalid regular expression '{pat}': {e}")))?;
    re.is_match(&s).map_err(|e| Error::new(ErrorKind::InvalidOperation, e))
}

fn regex_generic(v: &Value, pat: String, k: Kwargs) -> Result<bool, Error> {
    let mt = k.get::<Option<String>>("match_type")?.unwrap_or_else(|| "search".into());
    let ic = k.get::<Option<bool>>("ignorecase")?.unwrap_or(false);
    let ml = k.get::<Option<bool>>("multiline")?.unwrap_or(false);
    k.assert_all_used()?;
    let rest = Kwargs::from_iter([("ignorecase", Value::from(ic)), ("multiline", Value::from(ml))]);
    match mt.as_str() {
        "match" => regex_test(v, &pat, rest, true),
        "search" => regex_test(v, &pat, rest, false),
        "fullmatch" => regex_test(v, &format!("(?:{pat})\\z"), rest, true),
        o => Err(Error::new(ErrorKind::InvalidOperation, format!("regex: unknown match_type '{o}'"))),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Num(u64),
    Str(String),
}

/// distutils' LooseVersion components: digit runs, lowercase runs, and the text between them.
fn loose(v: &str) -> Vec<Part> {
    let mut out = Vec::new();
    let mut other = String::new();
    let chars: Vec<char> = v.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if !(c.is_ascii_digit() || c.is_ascii_lowercase() || c == '.') {
            other.push(c);
            i += 1;
            continue;
        }
        if !other.is_empty() {
            out.push(Part::Str(std::mem::take(&mut other)));
        }
        if c == '.' {
            i += 1;
            continue;
        }
        let digit = c.is_ascii_digit();
        let start = i;
        while i < chars.len() && (if digit { chars[i].is_ascii_digit() } else { chars[i].is_ascii_lowercase() }) {
            i += 1;
        }
        let s: String = chars[start..i].iter().collect();
        out.push(if digit { s.parse().map(Part::Num).unwrap_or(Part::Str(s)) } else { Part::Str(s) });
    }
    if !other.is_empty() {
        out.push(Part::Str(other));
    }
    out
}

fn cmp_parts(a: &[Part], b: &[Part]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = match (x, y) {
            (Part::Num(x), Part::Num(y)) => x.cmp(y),
            (Part::Str(x), Part::Str(y)) => x.cmp(y),
            (Part::Num(_), Part::Str(_)) => Ordering::Greater,
            (Part::Str(_), Part::Num(_)) => Ordering::Less,
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

/// Semantic versioning order (prerelease below release), when both parse.
fn semver_cmp(a: &str, b: &str) -> Option<Ordering> {
    fn parse(s: &str) -> Option<(Vec<u64>, Option<String>)> {
        let s = s.strip_prefix('v').unwrap_or(s);
        let s = s.split('+').next()?;
        let (core, pre) = match s.split_once('-') {
            Some((c, p)) => (c, Some(p.to_string())),
            None => (s, None),
        };
        let nums: Option<Vec<u64>> = core.split('.').map(|p| p.parse().ok()).collect();
        let nums = nums?;
        (nums.len() == 3).then_some((nums, pre))
    }
    let (an, ap) = parse(a)?;
    let (bn, bp) = parse(b)?;
    Some(an.cmp(&bn).then_with(|| match (ap, bp) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => {
            let xs: Vec<&str> = x.split('.').collect();
            let ys: Vec<&str> = y.split('.').collect();
            for (p, q) in xs.iter().zip(&ys) {
                let o = match (p.parse::<u64>(), q.parse::<u64>()) {
                    (Ok(p), Ok(q)) => p.cmp(&q),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    _ => p.cmp(q),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
            xs.len().cmp(&ys.len())
        }
    }))
}

/// Compare two version strings (`loose` by default, `semver` on request).
pub fn compare_versions(a: &str, b: &str, version_type: &str) -> Ordering {
    if matches!(version_type, "semver" | "semantic")
        && let Some(o) = semver_cmp(a, b)
    {
        return o;
    }
    cmp_parts(&loose(a), &loose(b))
}

/// `value is version(other, operator)`, also the `version_compare` filter.
pub fn version_test(v: &Value, other: &Value, op: Option<String>, k: Kwargs) -> Result<bool, Error> {
    let op = match op {
        Some(o) => o,
        None => k.get::<Option<String>>("operator")?.unwrap_or_else(|| "eq".into()),
    };
    let strict = k.get::<Option<bool>>("strict")?.unwrap_or(false);
    let vt = k.get::<Option<String>>("version_type")?.unwrap_or_else(|| if strict { "strict" } else { "loose" }.into());
    k.assert_all_used()?;
    if v.is_undefined() || other.is_undefined() {
        return Err(undefined_err());
    }
    let a = super::pyfmt::to_py_str(v)?;
    let b = super::pyfmt::to_py_str(other)?;
    if a.is_empty() {
        return Err(Error::new(ErrorKind::InvalidOperation, "Input version value cannot be empty"));
    }
    let o = compare_versions(&a, &b, &vt);
    Ok(match op.as_str() {
        "==" | "=" | "eq" => o == Ordering::Equal,
        "!=" | "<>" | "ne" => o != Ordering::Equal,
        "<" | "lt" => o == Ordering::Less,
        "<=" | "le" => o != Ordering::Greater,
        ">" | "gt" => o == Ordering::Greater,
        ">=" | "ge" => o != Ordering::Less,
        other => {
            return Err(Error::new(ErrorKind::InvalidOperation, format!("version: invalid operator '{other}'")));
        }
    })
}
