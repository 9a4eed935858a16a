//! Param types shared by modules, read the way Ansible reads them.
//!
//! Templated values arrive as strings ("yes", "0644", "a,b"), so these types accept both the
//! YAML-typed and the string spelling.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use std::borrow::Cow;

/// Ansible's truthy strings: yes/on/true/1/y and no/off/false/0/n (any case).
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "yes" | "on" | "true" | "1" | "y" | "t" => Some(true),
        "no" | "off" | "false" | "0" | "n" | "f" | "" => Some(false),
        _ => None,
    }
}

/// A boolean that also accepts Ansible's string spellings. Use with
/// `#[serde(deserialize_with = "pbr_engine::params::bool_lenient")]`.
pub fn bool_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Lenient {
        Bool(bool),
        Int(i64),
        Str(String),
    }
    match Lenient::deserialize(d)? {
        Lenient::Bool(b) => Ok(b),
        Lenient::Int(i) => Ok(i != 0),
        Lenient::Str(s) => {
            parse_bool(&s).ok_or_else(|| serde::de::Error::custom(format!("expected a boolean, got {s:?}")))
        }
    }
}

/// Optional variant of [`bool_lenient`].
pub fn opt_bool_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    bool_lenient(d).map(Some)
}

/// A file mode: octal (`0644`, `"0644"`, `"644"`) or symbolic (`u=rw,g=r,o=r`, `u+x`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Mode {
    Octal(u32),
    Symbolic(String),
}

impl JsonSchema for Mode {
    fn schema_name() -> Cow<'static, str> {
        "Mode".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "File mode: quoted octal such as \"0644\", or symbolic such as \"u=rw,g=r,o=r\"",
            "type": ["string", "integer"]
        })
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum M {
            I(u32),
            S(String),
        }
        match M::deserialize(d)? {
            // An integer came through YAML (0644 is already 420) or a template: used as is,
            // as Ansible does.
            M::I(i) if i <= 0o7777 => Ok(Mode::Octal(i)),
            M::I(i) => Err(serde::de::Error::custom(format!("mode {i} is out of range; quote octal modes: \"0644\""))),
            M::S(s) => Mode::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

impl Mode {
    pub fn parse(s: &str) -> Result<Mode, String> {
        let s = s.trim();
        if !s.is_empty() && s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            let v = u32::from_str_radix(s, 8).map_err(|e| e.to_string())?;
            if v > 0o7777 {
                return Err(format!("mode {s:?} is out of range"));
            }
            return Ok(Mode::Octal(v));
        }
        // validate symbolic form now so errors come before any host is touched
        apply_symbolic(s, 0, false)?;
        Ok(Mode::Symbolic(s.to_string()))
    }

    /// The resulting numeric mode given the current one (for symbolic modes).
    pub fn resolve(&self, current: u32, is_dir: bool) -> u32 {
        match self {
            Mode::Octal(m) => *m,
            Mode::Symbolic(s) => apply_symbolic(s, current, is_dir).unwrap_or(current),
        }
    }
}

/// chmod-style symbolic modes: `[ugoa]*[+-=][rwxXst]*`, comma separated.
pub fn apply_symbolic(spec: &str, current: u32, is_dir: bool) -> Result<u32, String> {
    let mut mode = current & 0o7777;
    for clause in spec.split(',') {
        let who_end = clause.find(|c| "+-=".contains(c)).ok_or_else(|| format!("invalid mode {spec:?}"))?;
        let who = &clause[..who_end];
        if !who.chars().all(|c| "ugoa".contains(c)) {
            return Err(format!("invalid mode {spec:?}"));
        }
        let mut rest = &clause[who_end..];
        let mask_who = |w: char| -> u32 {
            match w {
                'u' => 0o4700,
                'g' => 0o2070,
                'o' => 0o1007,
                _ => 0o7777,
            }
        };
        let who_mask = if who.is_empty() { 0o7777 } else { who.chars().map(mask_who).fold(0, |a, b| a | b) };
        while !rest.is_empty() {
            let op = rest.chars().next().unwrap_or('=');
            rest = &rest[1..];
            let perm_end = rest.find(|c| "+-=".contains(c)).unwrap_or(rest.len());
            let perms = &rest[..perm_end];
            rest = &rest[perm_end..];
            let mut bits = 0u32;
            for p in perms.chars() {
                bits |= match p {
                    'r' => 0o444,
                    'w' => 0o222,
                    'x' => 0o111,
                    'X' => {
                        if is_dir || mode & 0o111 != 0 {
                            0o111
                        } else {
                            0
                        }
                    }
                    's' => 0o6000,
                    't' => 0o1000,
                    _ => return Err(format!("invalid mode {spec:?}")),
                };
            }
            let bits = bits & who_mask;
            match op {
                '+' => mode |= bits,
                '-' => mode &= !bits,
                _ => mode = (mode & !who_mask) | bits,
            }
        }
    }
    Ok(mode)
}

/// A list given as a YAML list or as a comma-separated string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StrList(pub Vec<String>);

impl JsonSchema for StrList {
    fn schema_name() -> Cow<'static, str> {
        "StrList".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A list of strings, or one comma-separated string",
            "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}]
        })
    }
}

impl<'de> Deserialize<'de> for StrList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum L {
            L(Vec<serde_json::Value>),
            S(String),
        }
        Ok(match L::deserialize(d)? {
            L::S(s) => StrList(s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect()),
            L::L(v) => StrList(
                v.into_iter()
                    .map(|x| match x {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    })
                    .collect(),
            ),
        })
    }
}

/// `state: present` or `absent` (the default `present`), as most of Ansible's modules read it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    #[default]
    Present,
    Absent,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(Mode::parse("0644").unwrap(), Mode::Octal(0o644));
        assert_eq!(Mode::parse("755").unwrap(), Mode::Octal(0o755));
        assert_eq!(Mode::parse("u=rw,g=r,o=r").unwrap().resolve(0o777, false), 0o644);
        assert_eq!(Mode::parse("u+x").unwrap().resolve(0o644, false), 0o744);
        assert_eq!(Mode::parse("a-w").unwrap().resolve(0o666, false), 0o444);
        assert_eq!(Mode::parse("g+X").unwrap().resolve(0o600, true), 0o610);
        assert!(Mode::parse("u=rwz").is_err());
        assert!(Mode::parse("99999").is_err());
        let m: Mode = serde_json::from_value(serde_json::json!(420)).unwrap();
        assert_eq!(m, Mode::Octal(0o644));
    }

    #[test]
    fn bools() {
        #[derive(Deserialize)]
        struct T {
            #[serde(deserialize_with = "bool_lenient")]
            b: bool,
        }
        for (v, want) in
            [(serde_json::json!("yes"), true), (serde_json::json!("False"), false), (serde_json::json!(true), true)]
        {
            let t: T = serde_json::from_value(serde_json::json!({ "b": v })).unwrap();
            assert_eq!(t.b, want);
        }
        assert!(serde_json::from_value::<T>(serde_json::json!({"b": "maybe"})).is_err());
    }
}
