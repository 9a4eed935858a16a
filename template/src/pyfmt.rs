//! Python's `str()`/`repr()` of template values: what Ansible prints when a value is rendered
//! inside a larger string (`True`, `None`, `['a', 1]`, `{'k': 'v'}`).

use minijinja::value::{Value, ValueKind};
use minijinja::{Error, ErrorKind};

/// `str(value)`.
pub fn py_str(v: &Value, out: &mut String) -> Result<(), Error> {
    match v.kind() {
        ValueKind::String => {
            out.push_str(v.as_str().unwrap_or_default());
            Ok(())
        }
        _ => py_repr(v, out),
    }
}

/// `str(value)` as a new string.
pub fn to_py_str(v: &Value) -> Result<String, Error> {
    let mut s = String::new();
    py_str(v, &mut s)?;
    Ok(s)
}

fn repr_str(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if !py_printable(c) => {
                let n = c as u32;
                if n <= 0xff {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Python's `str.isprintable()` for one character, for the common non-printable ranges
/// (controls, format characters, separators other than space, private use, surrogates).
fn py_printable(c: char) -> bool {
    let n = c as u32;
    !(n < 0x20
        || (0x7f..=0xa0).contains(&n)
        || n == 0xad
        || n == 0x1680
        || (0x2000..=0x200f).contains(&n)
        || (0x2028..=0x202f).contains(&n)
        || (0x205f..=0x2064).contains(&n)
        || (0x2066..=0x206f).contains(&n)
        || n == 0x3000
        || (0xd800..=0xf8ff).contains(&n)
        || n == 0xfeff
        || (0xfff9..=0xfffb).contains(&n)
        || n >= 0xf0000)
}

/// Python's repr of a float (`1.0`, `0.5`, `1e+20`, `1e-07`).
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0".into() } else { "0.0".into() };
    }
    let sci = format!("{f:e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..16).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", exp.unsigned_abs());
    }
    let s = format!("{f}");
    if s.contains('.') { s } else { format!("{s}.0") }
}

/// `repr(value)`.
pub fn py_repr(v: &Value, out: &mut String) -> Result<(), Error> {
    match v.kind() {
        ValueKind::Undefined => {
            return Err(Error::new(ErrorKind::UndefinedError, "an undefined value was rendered"));
        }
        ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if v.is_true() { "True" } else { "False" }),
        ValueKind::Number => {
            if let Ok(f) = f64::try_from(v.clone())
                && v.as_i64().is_none()
                && !v.to_string().bytes().all(|b| b.is_ascii_digit() || b == b'-')
            {
                out.push_str(&float_repr(f));
            } else {
                out.push_str(&v.to_string());
            }
        }
        ValueKind::String => repr_str(v.as_str().unwrap_or_default(), out),
        ValueKind::Seq | ValueKind::Iterable => {
            // `groupby`'s groups are Python's (grouper, list) named tuples
            let tuple = v.as_object().is_some() && v.len() == Some(2) && !v.get_attr("grouper")?.is_undefined();
            out.push(if tuple { '(' } else { '[' });
            for (i, item) in v.try_iter()?.enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_repr(&item, out)?;
            }
            out.push(if tuple { ')' } else { ']' });
        }
        ValueKind::Map => {
            out.push('{');
            for (i, key) in v.try_iter()?.enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_repr(&key, out)?;
                out.push_str(": ");
                py_repr(&v.get_item(&key)?, out)?;
            }
            out.push('}');
        }
        _ => out.push_str(&v.to_string()),
    }
    Ok(())
}

/// Python's `fmt % i` for one integer: the conversions `d i u x X o s` with the flags `0 - + `
/// and a width (`%02d`, `%-4x`, `host%03d.lan`); `%%` is a `%`. A format with no conversion is
/// returned as it is.
pub fn format_int(fmt: &str, i: i64) -> String {
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    let mut used = false;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            out.push('%');
            continue;
        }
        if used {
            out.push('%');
            continue;
        }
        let (mut zero, mut left, mut plus, mut space) = (false, false, false, false);
        while let Some(&f) = chars.peek() {
            match f {
                '0' => zero = true,
                '-' => left = true,
                '+' => plus = true,
                ' ' => space = true,
                _ => break,
            }
            chars.next();
        }
        let mut width = String::new();
        while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            chars.next();
        }
        let width: usize = width.parse().unwrap_or(0);
        let Some(conv) = chars.next() else {
            out.push('%');
            break;
        };
        let digits = match conv {
            'd' | 'i' | 'u' | 's' => i.unsigned_abs().to_string(),
            'x' => format!("{:x}", i.unsigned_abs()),
            'X' => format!("{:X}", i.unsigned_abs()),
            'o' => format!("{:o}", i.unsigned_abs()),
            other => {
                out.push('%');
                out.push(other);
                continue;
            }
        };
        used = true;
        let sign = if i < 0 {
            "-"
        } else if plus {
            "+"
        } else if space {
            " "
        } else {
            ""
        };
        let len = sign.len() + digits.len();
        let pad = width.saturating_sub(len);
        if left {
            out.push_str(sign);
            out.push_str(&digits);
            out.push_str(&" ".repeat(pad));
        } else if zero && conv != 's' {
            out.push_str(sign);
            out.push_str(&"0".repeat(pad));
            out.push_str(&digits);
        } else {
            out.push_str(&" ".repeat(pad));
            out.push_str(sign);
            out.push_str(&digits);
        }
    }
    out
}
