//! Ansible's argument specs: a role's `meta/argument_specs.yml` (or `argument_specs` in
//! `meta/main.yml`), checked by a task put before the role's first one, as Ansible does, and the
//! `validate_argument_spec` action that runs it. The checks and their messages are those of
//! Ansible's `ArgumentSpecValidator`: unsupported names, missing required ones, types (with the
//! conversions Ansible accepts: `"42"` is an int, `yes` a bool, `a,b` a list), `elements`,
//! `choices`, and `options` of dicts and lists of dicts. Values are checked, not converted:
//! Ansible does not write the converted values back to the variables either.

use crate::template::py_str;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// Every error of `params` against `spec` (the entry point's `options`), in Ansible's words.
pub fn validate(spec: &Map<String, Value>, params: &Map<String, Value>) -> Vec<String> {
    let mut errors = vec![];
    check(spec, params, &[], false, &mut errors);
    errors
}

/// What lint can tell before a run: the same checks, but a missing required option may still
/// come from a variable, and a templated value is known only at run time.
pub fn check_literal(spec: &Map<String, Value>, params: &Map<String, Value>) -> Vec<String> {
    let mut errors = vec![];
    check(spec, params, &[], true, &mut errors);
    errors
}

fn templated(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains("{{") || s.contains("{%"),
        Value::Array(a) => a.iter().any(templated),
        Value::Object(m) => m.values().any(templated),
        _ => false,
    }
}

fn check(spec: &Map<String, Value>, params: &Map<String, Value>, ctx: &[String], lint: bool, errors: &mut Vec<String>) {
    let found_in = |msg: String| {
        if ctx.is_empty() { msg } else { format!("{msg} found in {}", ctx.join(" -> ")) }
    };
    // aliases name the same option
    let mut vals = Map::new();
    let mut unsupported = vec![];
    for (k, v) in params {
        let canonical = spec.iter().find(|(name, s)| {
            *name == k || s.get("aliases").and_then(Value::as_array).is_some_and(|a| a.iter().any(|x| x == k))
        });
        match canonical {
            Some((name, _)) => {
                vals.insert(name.clone(), v.clone());
            }
            None => unsupported.push(if ctx.is_empty() { k.clone() } else { format!("{}.{k}", ctx.join(".")) }),
        }
    }
    let missing: BTreeSet<&String> = spec
        .iter()
        .filter(|(name, s)| s.get("required").is_some_and(crate::template::truthy) && !vals.contains_key(*name))
        .map(|(name, _)| name)
        .collect();
    if !missing.is_empty() && !lint {
        let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        errors.push(found_in(format!("missing required arguments: {}", names.join(", "))));
    }
    for (name, s) in spec {
        let Some(v) = vals.get(name) else { continue };
        if lint && templated(v) {
            continue;
        }
        if v.is_null()
            && !s.get("required").is_some_and(crate::template::truthy)
            && s.get("default").is_none_or(Value::is_null)
        {
            continue;
        }
        let ty = s.get("type").and_then(Value::as_str).unwrap_or("str");
        let converted = match convert(ty, v) {
            Ok(c) => c,
            Err(e) => {
                let mut msg = format!("argument '{name}' is of type {}", type_name(v));
                if !ctx.is_empty() {
                    msg.push_str(&format!(" found in '{}'.", ctx.join(" -> ")));
                }
                errors.push(format!("{msg} and we were unable to convert to {ty}: {e}"));
                continue;
            }
        };
        if let Some(ety) = s.get("elements").and_then(Value::as_str)
            && let Value::Array(items) = &converted
        {
            for item in items {
                if let Err(e) = convert(ety, item) {
                    let mut msg = format!("Elements value for option '{name}'");
                    if !ctx.is_empty() {
                        msg.push_str(&format!(" found in '{}'", ctx.join(" -> ")));
                    }
                    errors.push(format!(
                        "{msg} is of type {} and we were unable to convert to {ety}: {e}",
                        type_name(item)
                    ));
                }
            }
        }
        if let Some(choices) = s.get("choices").and_then(Value::as_array) {
            let shown: Vec<String> = choices.iter().map(text).collect();
            let is_choice = |x: &Value| choices.iter().any(|c| c == x || text(c) == text(x));
            match &converted {
                Value::Array(items) if ty == "list" => {
                    let bad: Vec<String> = items.iter().filter(|x| !is_choice(x)).map(text).collect();
                    if !bad.is_empty() {
                        errors.push(found_in(format!(
                            "value of {name} must be one or more of: {}. Got no match for: {}",
                            shown.join(", "),
                            bad.join(", ")
                        )));
                    }
                }
                x if !is_choice(x) => errors.push(found_in(format!(
                    "value of {name} must be one of: {}, got: {}",
                    shown.join(", "),
                    text(x)
                ))),
                _ => {}
            }
        }
        if let Some(sub) = s.get("options").and_then(Value::as_object) {
            let mut sub_ctx = ctx.to_vec();
            sub_ctx.push(name.clone());
            match &converted {
                Value::Object(m) => check(sub, m, &sub_ctx, lint, errors),
                Value::Array(items) => {
                    for item in items {
                        if let Value::Object(m) = item {
                            check(sub, m, &sub_ctx, lint, errors);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    if !unsupported.is_empty() {
        unsupported.sort();
        let mut supported: Vec<String> = spec.keys().cloned().collect();
        supported.sort();
        let mut aliases: Vec<String> =
            spec.values().filter_map(|s| s.get("aliases").and_then(Value::as_array)).flatten().map(text).collect();
        aliases.sort();
        let mut list = supported.join(", ");
        if !aliases.is_empty() {
            list.push_str(&format!(" ({})", aliases.join(", ")));
        }
        errors.push(format!("{}. Supported parameters include: {list}.", unsupported.join(", ")));
    }
}

/// Python's `str()` of a value (what Ansible's messages show).
fn text(v: &Value) -> String {
    let mut s = String::new();
    match py_str(&minijinja::Value::from(minijinja::value::Serde(v)), &mut s) {
        Ok(()) => s,
        Err(_) => v.to_string(),
    }
}

/// Python's type name of a value.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

const BOOLS: [&str; 12] = ["y", "yes", "on", "1", "true", "t", "n", "no", "off", "0", "false", "f"];

/// The value as Ansible's type checker for `ty` converts it, or its error.
fn convert(ty: &str, v: &Value) -> Result<Value, String> {
    let class = || format!("<class '{}'>", type_name(v));
    match ty {
        "int" => match v {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(v.clone()),
            Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => Ok(v.clone()),
            Value::Bool(b) => Ok(Value::from(*b as i64)),
            Value::String(s) => s
                .trim()
                .replace('_', "")
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| format!("\"'{s}'\" cannot be converted to an int")),
            _ => Err(format!("{} cannot be converted to an int", class())),
        },
        "float" => match v {
            Value::Number(_) => Ok(v.clone()),
            Value::Bool(b) => Ok(Value::from(*b as i64 as f64)),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .map(Value::from)
                .map_err(|_| format!("{} cannot be converted to a float", class())),
            _ => Err(format!("{} cannot be converted to a float", class())),
        },
        "bool" | "boolean" => match v {
            Value::Bool(_) => Ok(v.clone()),
            Value::String(s) if BOOLS.contains(&s.to_lowercase().as_str()) => {
                Ok(Value::Bool(BOOLS[..6].contains(&s.to_lowercase().as_str())))
            }
            Value::Number(n) if matches!(n.as_f64(), Some(f) if f == 0.0 || f == 1.0) => {
                Ok(Value::Bool(n.as_f64() == Some(1.0)))
            }
            Value::String(_) | Value::Number(_) => Err(format!(
                "The value {} is not a valid boolean.  Valid booleans include: 0, 'off', 'f', 'false', 'n', 'no', \
                 '1', 'on', 't', 'true', 'y', 'yes'",
                match v {
                    Value::String(s) => format!("'{s}'"),
                    other => text(other),
                }
            )),
            _ => Err(format!("{} cannot be converted to a bool", class())),
        },
        "list" => match v {
            Value::Array(_) => Ok(v.clone()),
            Value::String(s) => Ok(Value::Array(s.split(',').map(|p| Value::String(p.into())).collect())),
            Value::Number(_) => Ok(Value::Array(vec![Value::String(text(v))])),
            _ => Err(format!("{} cannot be converted to a list", class())),
        },
        "dict" => match v {
            Value::Object(_) => Ok(v.clone()),
            Value::String(s) if s.starts_with('{') => serde_json::from_str::<Map<String, Value>>(s)
                .map(Value::Object)
                .map_err(|_| "unable to evaluate string as dictionary".to_string()),
            Value::String(s) if s.contains('=') => {
                let mut m = Map::new();
                for field in s.split([',', ' ']).filter(|f| !f.is_empty()) {
                    let (k, val) = field.split_once('=').ok_or_else(|| {
                        "unable to evaluate string in the \"key=value\" format as dictionary".to_string()
                    })?;
                    m.insert(k.to_string(), Value::String(val.to_string()));
                }
                Ok(Value::Object(m))
            }
            Value::String(_) => Err("dictionary requested, could not parse JSON or key=value".into()),
            _ => Err(format!("{} cannot be converted to a dict", class())),
        },
        // str and path take anything (Ansible converts), raw and the rest are not checked here
        _ => Ok(v.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> Map<String, Value> {
        json!({
            "name": {"type": "str", "required": true},
            "port": {"type": "int", "aliases": ["p"]},
            "state": {"choices": ["present", "absent"], "default": "present"},
            "flags": {"type": "list", "elements": "int"},
            "debug": {"type": "bool"},
            "users": {"type": "list", "elements": "dict", "options": {
                "login": {"required": true},
                "shell": {"choices": ["/bin/sh", "/bin/bash"]}
            }},
            "tls": {"type": "dict", "options": {"cert": {"type": "path", "required": true}}}
        })
        .as_object()
        .unwrap()
        .clone()
    }

    fn errs(params: Value) -> Vec<String> {
        validate(&spec(), params.as_object().unwrap())
    }

    #[test]
    fn conversions_ansible_accepts_pass() {
        let e = errs(json!({"name": 3, "p": "8080", "state": "absent", "flags": "1,2", "debug": "yes",
            "users": [{"login": "pi", "shell": "/bin/sh"}], "tls": {"cert": "/x"}}));
        assert!(e.is_empty(), "{e:?}");
    }

    #[test]
    fn each_kind_of_error_in_ansible_words() {
        let e = errs(json!({"port": "eighty", "state": "gone", "flags": ["1", "x"], "debug": "maybe",
            "users": [{"shell": "/bin/zsh"}], "tls": {}, "extra": 1}));
        assert_eq!(
            e,
            [
                "missing required arguments: name",
                "argument 'port' is of type str and we were unable to convert to int: \"'eighty'\" cannot be converted to an int",
                "value of state must be one of: present, absent, got: gone",
                "Elements value for option 'flags' is of type str and we were unable to convert to int: \"'x'\" cannot be converted to an int",
                "argument 'debug' is of type str and we were unable to convert to bool: The value 'maybe' is not a valid boolean.  Valid booleans include: 0, 'off', 'f', 'false', 'n', 'no', '1', 'on', 't', 'true', 'y', 'yes'",
                "missing required arguments: login found in users",
                "value of shell must be one of: /bin/sh, /bin/bash, got: /bin/zsh found in users",
                "missing required arguments: cert found in tls",
                "extra. Supported parameters include: debug, flags, name, port, state, tls, users (p).",
            ]
        );
    }

    #[test]
    fn none_is_not_type_checked_unless_required() {
        assert!(errs(json!({"name": "a", "port": null})).is_empty());
    }

    #[test]
    fn lint_leaves_templates_and_missing_names_to_the_run() {
        let p = json!({"port": "{{ p }}", "state": "gone", "tls": {}});
        let e = check_literal(&spec(), p.as_object().unwrap());
        assert_eq!(e, ["value of state must be one of: present, absent, got: gone"]);
    }
}
