//! Host names with ranges (`web[01:10]`, `db-[a:c]`, `pi[1:8:2]`) and ports (`host:2222`).

/// Most hosts one range expression may produce.
const MAX_HOSTS: usize = 100_000;

/// True for a bare IPv6 address such as `::1` or `fe80::1`.
pub(crate) fn is_ipv6(s: &str) -> bool {
    s.matches(':').count() >= 2 && s.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
}

fn parse_port(p: &str, whole: &str) -> Result<u16, String> {
    if p.is_empty() {
        return Err(format!(
            "invalid host pattern '{whole}': a trailing ':' is reserved for a port number, and none follows"
        ));
    }
    p.parse::<u16>().map_err(|_| format!("invalid port '{p}' in host pattern '{whole}'"))
}

/// Split `host:port` (also `[v6addr]:port`); ranges' colons inside `[...]` are not ports.
pub(crate) fn split_port(s: &str) -> Result<(String, Option<u16>), String> {
    if let Some(rest) = s.strip_prefix('[')
        && let Some(close) = rest.find(']')
    {
        let inner = &rest[..close];
        if is_ipv6(inner) {
            let after = &rest[close + 1..];
            return match after.strip_prefix(':') {
                None if after.is_empty() => Ok((inner.to_string(), None)),
                Some(p) => Ok((inner.to_string(), Some(parse_port(p, s)?))),
                None => Err(format!("invalid host pattern '{s}'")),
            };
        }
    }
    if is_ipv6(s) {
        return Ok((s.to_string(), None));
    }
    let mut depth = 0usize;
    let mut colons = Vec::new();
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ':' if depth == 0 => colons.push(i),
            _ => {}
        }
    }
    match colons.as_slice() {
        [] => Ok((s.to_string(), None)),
        [i] => {
            let name = &s[..*i];
            if name.is_empty() {
                return Err(format!("invalid host pattern '{s}': empty host name"));
            }
            Ok((name.to_string(), Some(parse_port(&s[i + 1..], s)?)))
        }
        _ => Err(format!("invalid host pattern '{s}': too many ':'")),
    }
}

/// Expand every `[begin:end(:step)]` in a host name, like Ansible's `expand_hostname_range`.
/// Numeric bounds with a leading zero pad to the width of `begin`; single letters range over
/// `a..zA..Z`. Unlike Ansible, `begin > end` is an error rather than an empty list.
pub(crate) fn expand(name: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    expand_into(name, &mut out)?;
    Ok(out)
}

fn expand_into(name: &str, out: &mut Vec<String>) -> Result<(), String> {
    let Some(open) = name.find('[') else {
        out.push(name.to_string());
        return Ok(());
    };
    let Some(close_rel) = name[open..].find(']') else {
        return Err(format!("unterminated '[' in host range '{name}'"));
    };
    let close = open + close_rel;
    let (head, inner, tail) = (&name[..open], &name[open + 1..close], &name[close + 1..]);
    let bounds: Vec<&str> = inner.split(':').collect();
    if bounds.len() != 2 && bounds.len() != 3 {
        return Err(format!("host range '[{inner}]' must be begin:end or begin:end:step"));
    }
    let beg = if bounds[0].is_empty() { "0" } else { bounds[0] };
    let end = bounds[1];
    if end.is_empty() {
        return Err(format!("host range '[{inner}]' has no end value"));
    }
    let step: usize = match bounds.get(2) {
        None => 1,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("host range '[{inner}]' has an invalid step '{s}'")),
        },
    };
    let items: Vec<String> = if let (Some(b), Some(e)) = (letter_index(beg), letter_index(end)) {
        if b > e {
            return Err(format!("host range '[{inner}]' starts after it ends"));
        }
        (b..=e).step_by(step).filter_map(|i| LETTERS.get(i).map(|c| (*c as char).to_string())).collect()
    } else {
        let b: u64 = beg.parse().map_err(|_| format!("host range '[{inner}]': '{beg}' is not a number or a letter"))?;
        let e: u64 = end.parse().map_err(|_| format!("host range '[{inner}]': '{end}' is not a number or a letter"))?;
        let width = if beg.starts_with('0') && beg.len() > 1 {
            if beg.len() != end.len() {
                return Err(format!("host range '[{inner}]' must give begin and end with the same number of digits"));
            }
            beg.len()
        } else {
            0
        };
        if b > e {
            return Err(format!("host range '[{inner}]' starts after it ends ({b} > {e})"));
        }
        let count = (e - b) / step as u64 + 1;
        if count as usize > MAX_HOSTS {
            return Err(format!("host range '[{inner}]' gives more than {MAX_HOSTS} hosts"));
        }
        (b..=e).step_by(step).map(|n| format!("{n:0width$}")).collect()
    };
    for item in items {
        let full = format!("{head}{item}{tail}");
        if tail.contains('[') {
            expand_into(&full, out)?;
        } else {
            out.push(full);
        }
        if out.len() > MAX_HOSTS {
            return Err(format!("host name '{name}' expands to more than {MAX_HOSTS} hosts"));
        }
    }
    Ok(())
}

const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

fn letter_index(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.len() != 1 {
        return None;
    }
    LETTERS.iter().position(|c| *c == b[0])
}
