//! Ansible's filters on top of minijinja's built-in ones.

use super::dump::{self, JsonOpts, YamlOpts};
use super::pyfmt::to_py_str;
use super::{from_json, to_json};
use base64::Engine as _;
use minijinja::value::{Kwargs, Rest, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State};
use pbr_core::pyre::{Flags, PyRegex};
use serde_json::Value as Json;
use sha1::Digest as _;

pub fn register(env: &mut Environment<'static>) {
    env.add_function("dict", dict_fn);
    env.add_filter("bool", bool_filter);
    env.add_filter("default", default);
    env.add_filter("d", default);
    env.add_filter("mandatory", mandatory);
    env.add_filter("ternary", ternary);
    env.add_filter("combine", combine);
    env.add_filter("dict2items", dict2items);
    env.add_filter("items2dict", items2dict);
    env.add_filter("to_json", to_json_filter);
    env.add_filter("to_nice_json", to_nice_json);
    env.add_filter("from_json", from_json_filter);
    env.add_filter("to_yaml", to_yaml);
    env.add_filter("to_nice_yaml", to_nice_yaml);
    env.add_filter("from_yaml", from_yaml);
    env.add_filter("regex_replace", regex_replace);
    env.add_filter("regex_search", regex_search);
    env.add_filter("regex_findall", regex_findall);
    env.add_filter("regex_escape", regex_escape);
    env.add_filter("b64encode", b64encode);
    env.add_filter("b64decode", b64decode);
    env.add_filter("basename", basename);
    env.add_filter("dirname", dirname);
    env.add_filter("expanduser", expanduser);
    env.add_filter("realpath", realpath);
    env.add_filter("splitext", splitext);
    env.add_filter("path_join", path_join);
    env.add_filter("normpath", |v: &Value| -> Result<String, Error> { Ok(normpath(&text(v)?)) });
    env.add_filter("fileglob", fileglob);
    env.add_filter("to_uuid", to_uuid);
    env.add_filter("random", random);
    env.add_filter("shuffle", shuffle);
    env.add_filter("from_yaml_all", from_yaml_all);
    env.add_filter("quote", quote);
    env.add_filter("hash", hash);
    env.add_filter("checksum", checksum);
    env.add_filter("password_hash", password_hash);
    env.add_filter("md5", |s: &State, v: &Value| digest(s, v, "md5"));
    env.add_filter("sha1", |s: &State, v: &Value| digest(s, v, "sha1"));
    env.add_filter("flatten", flatten);
    env.add_filter("comment", comment);
    // Jinja's map, select, reject, selectattr and rejectattr give an undefined value back for an
    // undefined input (`x | map('upper') | default([])`), as in Ansible
    use minijinja::filters as jf;
    use minijinja::value::ValueOrKwargs as Arg;
    type Name<'a> = Option<std::borrow::Cow<'a, str>>;
    env.add_filter("map", |st: &mut State, v: Value, a: Rest<Arg>| -> Result<Value, Error> {
        if v.is_undefined() { Ok(v) } else { jf::map(st, v, a).map(Value::from) }
    });
    env.add_filter("select", |st: &mut State, v: Value, t: Name, a: Rest<Arg>| -> Result<Value, Error> {
        if v.is_undefined() { Ok(v) } else { jf::select(st, v, t, a).map(Value::from) }
    });
    env.add_filter("reject", |st: &mut State, v: Value, t: Name, a: Rest<Arg>| -> Result<Value, Error> {
        if v.is_undefined() { Ok(v) } else { jf::reject(st, v, t, a).map(Value::from) }
    });
    env.add_filter(
        "selectattr",
        |st: &mut State, v: Value, at: std::borrow::Cow<str>, t: Name, a: Rest<Arg>| -> Result<Value, Error> {
            if v.is_undefined() { Ok(v) } else { jf::selectattr(st, v, at, t, a).map(Value::from) }
        },
    );
    env.add_filter(
        "rejectattr",
        |st: &mut State, v: Value, at: std::borrow::Cow<str>, t: Name, a: Rest<Arg>| -> Result<Value, Error> {
            if v.is_undefined() { Ok(v) } else { jf::rejectattr(st, v, at, t, a).map(Value::from) }
        },
    );
    env.add_filter("unique", unique);
    // ansible-core 2.19's `ansible._protomatter.finalize`: the value as plain data (what a
    // template's result becomes), e.g. `groupby`'s groups as [grouper, list] pairs
    env.add_filter("finalize", |v: Value| -> Result<Value, Error> {
        let j = serde_json::to_value(&v).map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
        Ok(crate::from_json(&j))
    });
    env.add_filter("difference", difference);
    env.add_filter("union", union);
    env.add_filter("intersect", intersect);
    env.add_filter("symmetric_difference", symmetric_difference);
    env.add_filter("zip", zip);
    env.add_filter("zip_longest", zip_longest);
    env.add_filter("product", product);
    env.add_filter("subelements", subelements);
    env.add_filter("int", int);
    env.add_filter("human_to_bytes", human_to_bytes);
    env.add_filter("human_readable", human_readable);
    env.add_filter("float", float);
    env.add_filter("string", string);
    env.add_filter("extract", extract);
    env.add_filter("type_debug", type_debug);
    env.add_filter("version_compare", super::checks::version_test);
}

/// Largest indent the dump filters accept.
const MAX_INDENT: usize = 32;

pub(crate) fn undefined_err() -> Error {
    Error::new(ErrorKind::UndefinedError, "an undefined value was passed to a filter")
}

/// What Python iterates: lists, strings, dicts.
fn is_sequence(v: &Value) -> bool {
    matches!(v.kind(), ValueKind::Seq | ValueKind::Iterable | ValueKind::String | ValueKind::Map)
}

fn check(v: &Value) -> Result<(), Error> {
    if v.is_undefined() { Err(undefined_err()) } else { Ok(()) }
}

fn op_err(msg: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg)
}

fn json(v: &Value) -> Result<Json, Error> {
    check_deep(v)?;
    to_json(v).map_err(|e| op_err(e.message))
}

/// [`check`] of a value and everything inside it: `{'k': undefined_name}` is an undefined
/// error, not a null (as in Ansible).
fn check_deep(v: &Value) -> Result<(), Error> {
    check(v)?;
    match v.kind() {
        ValueKind::Seq => v.try_iter()?.try_for_each(|x| check_deep(&x)),
        ValueKind::Map => v.try_iter()?.try_for_each(|k| check_deep(&v.get_item(&k)?)),
        _ => Ok(()),
    }
}

fn text(v: &Value) -> Result<String, Error> {
    check(v)?;
    to_py_str(v)
}

fn list(v: &Value) -> Result<Vec<Value>, Error> {
    check(v)?;
    match v.kind() {
        ValueKind::Seq | ValueKind::Iterable => Ok(v.try_iter()?.collect()),
        ValueKind::String => Ok(v.try_iter()?.collect()),
        ValueKind::Map => Ok(v.try_iter()?.collect()),
        k => Err(op_err(format!("expected a list, got {k}"))),
    }
}

/// Ansible's boolean words: `yes/on/1/true` and `no/off/0/false`, any case.
pub fn bool_word(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "yes" | "on" | "1" | "true" | "y" | "t" => Some(true),
        "no" | "off" | "0" | "false" | "n" | "f" | "" => Some(false),
        _ => None,
    }
}

/// Python's `dict(...)`: a mapping, or pairs (`dict(keys | zip(values))`), then keyword args.
fn dict_fn(args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let mut out: indexmap::IndexMap<Value, Value> = indexmap::IndexMap::new();
    if args.len() > 1 {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("dict expected at most 1 argument, got {}", args.len()),
        ));
    }
    if let Some(v) = args.first() {
        match v.kind() {
            ValueKind::Map => {
                for k in v.try_iter()? {
                    let val = v.get_item(&k)?;
                    out.insert(k, val);
                }
            }
            ValueKind::Undefined | ValueKind::None => {}
            _ => {
                for (i, pair) in v.try_iter()?.enumerate() {
                    let items: Vec<Value> = pair.try_iter().map(|it| it.collect()).unwrap_or_default();
                    if items.len() != 2 {
                        return Err(Error::new(
                            ErrorKind::InvalidOperation,
                            format!(
                                "dictionary update sequence element #{i} has length {}; 2 is required",
                                items.len()
                            ),
                        ));
                    }
                    out.insert(items[0].clone(), items[1].clone());
                }
            }
        }
    }
    for k in kwargs.args() {
        let v: Value = kwargs.get(k)?;
        out.insert(Value::from(k), v);
    }
    Ok(Value::from_object(out))
}

fn bool_filter(v: &Value) -> Result<Value, Error> {
    check(v)?;
    Ok(Value::from(match v.kind() {
        ValueKind::Bool => v.is_true(),
        // None is false, as in ansible-core 2.19 (older versions gave None back)
        ValueKind::None => false,
        ValueKind::String => bool_word(v.as_str().unwrap_or_default()).unwrap_or(false),
        ValueKind::Number => f64::try_from(v.clone()).is_ok_and(|f| f == 1.0),
        _ => false,
    }))
}

/// Jinja's `default(value, default_value='', boolean=False)`.
fn default(v: &Value, other: Option<Value>, boolean: Option<bool>, kwargs: Kwargs) -> Result<Value, Error> {
    let other = match other {
        Some(o) => o,
        None => kwargs.get::<Option<Value>>("default_value")?.unwrap_or(Value::from("")),
    };
    let boolean = match boolean {
        Some(b) => b,
        None => kwargs.get::<Option<bool>>("boolean")?.unwrap_or(false),
    };
    kwargs.assert_all_used()?;
    Ok(if v.is_undefined() || (boolean && !v.is_true()) { other } else { v.clone() })
}

fn mandatory(v: &Value, msg: Option<String>) -> Result<Value, Error> {
    if v.is_undefined() {
        return Err(Error::new(ErrorKind::UndefinedError, msg.unwrap_or_else(|| MANDATORY_MSG.to_string())));
    }
    Ok(v.clone())
}

/// Detail of `mandatory`'s error; the variable's name is filled in by the caller.
pub(crate) const MANDATORY_MSG: &str = "Mandatory variable not defined.";

fn ternary(v: &Value, yes: Value, no: Value, none_val: Option<Value>) -> Result<Value, Error> {
    check(v)?;
    if v.is_none()
        && let Some(n) = none_val
    {
        return Ok(n);
    }
    Ok(if v.is_true() { yes } else { no })
}

#[derive(Clone, Copy, PartialEq)]
enum ListMerge {
    Replace,
    Keep,
    Append,
    Prepend,
    AppendRp,
    PrependRp,
}

/// `b` merged into `a` recursively, lists replaced (Ansible's `combine_vars(merge=True)`).
pub fn merge_recursive(a: &mut serde_json::Map<String, Json>, b: &serde_json::Map<String, Json>) {
    merge(a, b, true, ListMerge::Replace)
}

fn merge(a: &mut serde_json::Map<String, Json>, b: &serde_json::Map<String, Json>, recursive: bool, lm: ListMerge) {
    for (k, bv) in b {
        match (a.get_mut(k), bv) {
            (Some(Json::Object(am)), Json::Object(bm)) if recursive => merge(am, bm, recursive, lm),
            (Some(Json::Array(al)), Json::Array(bl)) => match lm {
                ListMerge::Replace => *al = bl.clone(),
                ListMerge::Keep => {}
                ListMerge::Append => al.extend(bl.iter().cloned()),
                ListMerge::Prepend => {
                    let mut n = bl.clone();
                    n.append(al);
                    *al = n;
                }
                ListMerge::AppendRp => {
                    let mut n: Vec<Json> = al.iter().filter(|x| !bl.contains(x)).cloned().collect();
                    n.extend(bl.iter().cloned());
                    *al = n;
                }
                ListMerge::PrependRp => {
                    let mut n = bl.clone();
                    n.extend(al.iter().filter(|x| !bl.contains(x)).cloned());
                    *al = n;
                }
            },
            _ => {
                a.insert(k.clone(), bv.clone());
            }
        }
    }
}

fn combine(v: &Value, others: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let recursive = kwargs.get::<Option<bool>>("recursive")?.unwrap_or(false);
    let lm = match kwargs.get::<Option<&str>>("list_merge")?.unwrap_or("replace") {
        "replace" => ListMerge::Replace,
        "keep" => ListMerge::Keep,
        "append" => ListMerge::Append,
        "prepend" => ListMerge::Prepend,
        "append_rp" => ListMerge::AppendRp,
        "prepend_rp" => ListMerge::PrependRp,
        other => return Err(op_err(format!("combine: unknown list_merge '{other}'"))),
    };
    if kwargs.args().any(|k| k != "recursive" && k != "list_merge") {
        return Err(op_err("combine: 'recursive' and 'list_merge' are the only valid keyword arguments"));
    }
    kwargs.assert_all_used()?;
    let mut dicts = Vec::new();
    let not_dict = |x: &Json| {
        let t = type_debug(&from_json(x)).unwrap_or("object");
        op_err(format!("failed to combine variables, expected dicts but got a '{t}': {x}"))
    };
    let mut push = |x: Json| -> Result<(), Error> {
        match x {
            // `None | combine` is {}, as in Ansible
            Json::Null => {}
            Json::Object(m) => dicts.push(m),
            Json::Array(items) => {
                for i in items {
                    match i {
                        Json::Object(m) => dicts.push(m),
                        other => return Err(not_dict(&other)),
                    }
                }
            }
            other => return Err(not_dict(&other)),
        }
        Ok(())
    };
    push(json(v)?)?;
    for o in others.iter() {
        push(json(o)?)?;
    }
    let mut acc = serde_json::Map::new();
    for d in &dicts {
        merge(&mut acc, d, recursive, lm);
    }
    Ok(from_json(&Json::Object(acc)))
}

/// Ansible's `comment`: the text as a comment block of a style (`plain` `# `, `erlang` `% `,
/// `c` `// `, `cblock` `/* * */`, `xml` `<!-- - -->`), with its `decoration`, `prefix`,
/// `prefix_count`, `postfix`, `postfix_count`, `beginning`, `end` and `newline` overrides.
fn comment(v: &Value, style: Option<String>, kwargs: Kwargs) -> Result<String, Error> {
    let text = text(v)?;
    let style = match style {
        Some(s) => s,
        None => kwargs.get::<Option<String>>("style")?.unwrap_or_else(|| "plain".into()),
    };
    let (beginning, decoration, end) = match style.as_str() {
        "plain" => ("", "# ", ""),
        "erlang" => ("", "% ", ""),
        "c" => ("", "// ", ""),
        "cblock" => ("/*", " * ", " */"),
        "xml" => ("<!--", " - ", "-->"),
        other => {
            return Err(op_err(format!(
                "comment: Invalid style '{other}' (available styles: plain, erlang, c, cblock, xml)"
            )));
        }
    };
    let get = |k: &str| kwargs.get::<Option<Value>>(k).map(|o| o.map(|v| v.to_string()));
    let count = |k: &str| -> Result<usize, Error> {
        Ok(kwargs.get::<Option<Value>>(k)?.map(|v| v.to_string().trim().parse::<usize>().unwrap_or(1)).unwrap_or(1))
    };
    let deco_given = get("decoration")?;
    let edge = deco_given.clone().unwrap_or_else(|| decoration.to_string()).trim_end().to_string();
    let newline = get("newline")?.unwrap_or_else(|| "\n".into());
    if newline.is_empty() {
        return Err(op_err("comment: newline must not be empty"));
    }
    let beginning = get("beginning")?.unwrap_or_else(|| beginning.into());
    let prefix = get("prefix")?.unwrap_or_else(|| edge.clone());
    let postfix = get("postfix")?.unwrap_or_else(|| edge.clone());
    let end = get("end")?.unwrap_or_else(|| end.into());
    let decoration = deco_given.unwrap_or_else(|| decoration.into());
    let (prefix_count, postfix_count) = (count("prefix_count")?, count("postfix_count")?);
    kwargs.assert_all_used()?;
    let mut out = String::new();
    if !beginning.is_empty() {
        out.push_str(&beginning);
        out.push_str(&newline);
    }
    if !prefix.is_empty() {
        let one = if prefix == newline { newline.clone() } else { format!("{prefix}{newline}") };
        out.push_str(&one.repeat(prefix_count));
    }
    let body = format!("{decoration}{}", text.replace(&newline, &format!("{newline}{decoration}")));
    // a line with only the decoration loses its trailing spaces
    out.push_str(&body.replace(&format!("{decoration}{newline}"), &format!("{}{newline}", decoration.trim_end())));
    for _ in 0..postfix_count {
        out.push_str(&newline);
        out.push_str(&postfix);
    }
    if !end.is_empty() {
        out.push_str(&newline);
        out.push_str(&end);
    }
    Ok(out)
}

fn dict2items(v: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let key_name = kwargs.get::<Option<&str>>("key_name")?.unwrap_or("key");
    let value_name = kwargs.get::<Option<&str>>("value_name")?.unwrap_or("value");
    kwargs.assert_all_used()?;
    check(v)?;
    if v.kind() != ValueKind::Map {
        return Err(op_err(format!("dict2items requires a dictionary, got {}", v.kind())));
    }
    let mut out = Vec::new();
    for k in v.try_iter()? {
        let item = v.get_item(&k)?;
        out.push(Value::from_pairs([(key_name, k), (value_name, item)]));
    }
    Ok(Value::from(out))
}

fn items2dict(v: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let key_name = kwargs.get::<Option<&str>>("key_name")?.unwrap_or("key");
    let value_name = kwargs.get::<Option<&str>>("value_name")?.unwrap_or("value");
    kwargs.assert_all_used()?;
    let mut out = serde_json::Map::new();
    for item in list(v)? {
        let k = item.get_attr(key_name)?;
        let val = item.get_attr(value_name)?;
        if k.is_undefined() || val.is_undefined() {
            return Err(op_err(format!("items2dict: each item needs '{key_name}' and '{value_name}'")));
        }
        out.insert(to_py_str(&k)?, json(&val)?);
    }
    Ok(from_json(&Json::Object(out)))
}

fn json_opts(kwargs: &Kwargs, mut o: JsonOpts) -> Result<JsonOpts, Error> {
    if let Some(i) = kwargs.get::<Option<usize>>("indent")? {
        o.indent = Some(i.min(MAX_INDENT));
        o.item_sep = ",".into();
    }
    if let Some(s) = kwargs.get::<Option<bool>>("sort_keys")? {
        o.sort_keys = s;
    }
    if let Some(a) = kwargs.get::<Option<bool>>("ensure_ascii")? {
        o.ensure_ascii = a;
    }
    kwargs.assert_all_used()?;
    Ok(o)
}

fn to_json_filter(v: &Value, kwargs: Kwargs) -> Result<String, Error> {
    let o = json_opts(&kwargs, JsonOpts::compact())?;
    Ok(dump::to_json(&json(v)?, &o))
}

fn to_nice_json(v: &Value, indent: Option<usize>, kwargs: Kwargs) -> Result<String, Error> {
    let mut o = JsonOpts {
        indent: Some(indent.unwrap_or(4).min(MAX_INDENT)),
        sort_keys: true,
        ensure_ascii: true,
        item_sep: ",".into(),
        key_sep: ": ".into(),
    };
    o = json_opts(&kwargs, o)?;
    Ok(dump::to_json(&json(v)?, &o))
}

fn from_json_filter(v: &Value) -> Result<Value, Error> {
    let s = text(v)?;
    let j: Json = serde_json::from_str(&s).map_err(|e| op_err(format!("from_json: {e}")))?;
    Ok(from_json(&j))
}

fn yaml_opts(indent: usize, flow_leaves: bool, kwargs: &Kwargs) -> Result<YamlOpts, Error> {
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(true);
    let width = kwargs.get::<Option<usize>>("width")?.unwrap_or(80);
    let flow_leaves = if kwargs.has("default_flow_style") {
        match kwargs.get::<Option<bool>>("default_flow_style")? {
            None => true,
            Some(false) => false,
            Some(true) => return Err(op_err("default_flow_style=True is not supported")),
        }
    } else {
        flow_leaves
    };
    kwargs.assert_all_used()?;
    Ok(YamlOpts { indent: indent.clamp(2, MAX_INDENT), flow_leaves, sort_keys, width })
}

fn to_yaml(v: &Value, kwargs: Kwargs) -> Result<String, Error> {
    let indent = kwargs.get::<Option<usize>>("indent")?.unwrap_or(2);
    let o = yaml_opts(indent, true, &kwargs)?;
    Ok(dump::to_yaml(&json(v)?, &o))
}

fn to_nice_yaml(v: &Value, indent: Option<usize>, kwargs: Kwargs) -> Result<String, Error> {
    let indent = match indent {
        Some(i) => i,
        None => kwargs.get::<Option<usize>>("indent")?.unwrap_or(4),
    };
    let o = yaml_opts(indent, false, &kwargs)?;
    Ok(dump::to_yaml(&json(v)?, &o))
}

fn from_yaml_all(v: &Value) -> Result<Value, Error> {
    // None is no document; what is not a string is returned as it is, as in Ansible
    check(v)?;
    if v.is_none() {
        return Ok(Value::from(Vec::<Value>::new()));
    }
    if v.kind() != ValueKind::String {
        return Ok(v.clone());
    }
    let s = text(v)?;
    let docs = pbr_syntax::yaml::load_str("<from_yaml_all>", &s)
        .map_err(|d| op_err(format!("from_yaml_all: {}", d.message)))?;
    Ok(Value::from(docs.iter().map(|n| from_json(&n.to_value())).collect::<Vec<_>>()))
}

fn fileglob(v: &Value) -> Result<Value, Error> {
    let pat = expand_user(&text(v)?);
    let paths = glob::glob(&pat).map_err(|e| op_err(format!("fileglob: {e}")))?;
    Ok(Value::from(
        paths
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .map(|p| Value::from(p.to_string_lossy().into_owned()))
            .collect::<Vec<_>>(),
    ))
}

/// Ansible's UUID namespace for `to_uuid`.
const UUID_NAMESPACE_ANSIBLE: [u8; 16] =
    [0x36, 0x1e, 0x6d, 0x51, 0xfa, 0xec, 0x44, 0x4a, 0x90, 0x79, 0x34, 0x13, 0x86, 0xda, 0x8e, 0x2e];

/// `uuid.uuid5(namespace, name)`.
fn to_uuid(v: &Value, namespace: Option<String>) -> Result<String, Error> {
    let ns: Vec<u8> = match namespace {
        None => UUID_NAMESPACE_ANSIBLE.to_vec(),
        Some(n) => {
            let h: String = n.chars().filter(|c| *c != '-').collect();
            match hex::decode(&h) {
                Ok(b) if b.len() == 16 => b,
                _ => return Err(op_err(format!("Invalid value '{n}' for 'namespace'"))),
            }
        }
    };
    let mut d = sha1::Sha1::new();
    d.update(&ns);
    d.update(text(v)?.as_bytes());
    let mut b: Vec<u8> = d.finalize()[..16].to_vec();
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    Ok(format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32]))
}

/// splitmix64: a small deterministic generator for `random`/`shuffle` with a seed.
struct Rng(u64);

impl Rng {
    fn new(seed: Option<&Value>) -> Result<Rng, Error> {
        let bytes: Vec<u8> = match seed {
            Some(s) if !s.is_none() => sha2::Sha256::digest(to_py_str(s)?.as_bytes())[..8].to_vec(),
            _ => {
                use std::io::Read;
                let mut b = vec![0u8; 8];
                std::fs::File::open("/dev/urandom")
                    .and_then(|mut f| f.read_exact(&mut b))
                    .map_err(|e| op_err(format!("cannot read /dev/urandom: {e}")))?;
                b
            }
        };
        let mut a = [0u8; 8];
        a.copy_from_slice(&bytes);
        Ok(Rng(u64::from_le_bytes(a)))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// `end | random(start=0, step=1, seed=None)`, or a random element of a list.
fn random(v: &Value, start: Option<i64>, step: Option<i64>, kwargs: Kwargs) -> Result<Value, Error> {
    let start = match start {
        Some(s) => Some(s),
        None => kwargs.get::<Option<i64>>("start")?,
    };
    let step = match step {
        Some(s) => Some(s),
        None => kwargs.get::<Option<i64>>("step")?,
    };
    let seed = kwargs.get::<Option<Value>>("seed")?;
    kwargs.assert_all_used()?;
    check(v)?;
    let mut rng = Rng::new(seed.as_ref())?;
    if let Some(end) = v.as_i64() {
        let start = start.unwrap_or(0);
        let step = step.unwrap_or(1);
        if step <= 0 || end <= start {
            return Err(op_err(format!("random: empty range ({start}, {end}, {step})")));
        }
        let n = ((end - start) + step - 1) / step;
        return Ok(Value::from(start + step * rng.below(n as u64) as i64));
    }
    if start.is_some() || step.is_some() {
        return Err(op_err("start and step can only be used with integer values"));
    }
    if !is_sequence(v) {
        return Err(op_err(format!("random can only be used on sequences and integers, got {}", v.kind())));
    }
    let items = list(v)?;
    if items.is_empty() {
        return Err(op_err("random: cannot choose from an empty sequence"));
    }
    let i = rng.below(items.len() as u64) as usize;
    Ok(items[i].clone())
}

fn shuffle(v: &Value, seed: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let seed = match seed {
        Some(s) => Some(s),
        None => kwargs.get::<Option<Value>>("seed")?,
    };
    kwargs.assert_all_used()?;
    // what is no sequence comes back as it is, as in Ansible
    if !is_sequence(v) {
        check(v)?;
        return Ok(v.clone());
    }
    let mut items = list(v)?;
    let mut rng = Rng::new(seed.as_ref())?;
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
    Ok(Value::from(items))
}

fn from_yaml(v: &Value) -> Result<Value, Error> {
    // what is not a string is returned as it is, as in Ansible
    check(v)?;
    if v.kind() != ValueKind::String {
        return Ok(v.clone());
    }
    let s = text(v)?;
    let docs =
        pbr_syntax::yaml::load_str("<from_yaml>", &s).map_err(|d| op_err(format!("from_yaml: {}", d.message)))?;
    Ok(docs.first().map(|n| from_json(&n.to_value())).unwrap_or(Value::from(())))
}

/// A Python regex (see [`pbr_core::pyre`]).
fn compile(pat: &str, ignorecase: bool, multiline: bool) -> Result<PyRegex, Error> {
    PyRegex::new(pat, Flags { ignorecase, multiline, dotall: false })
        .map_err(|e| op_err(format!("invalid regular expression '{pat}': {e}")))
}

fn regex_replace(v: &Value, pat: Option<String>, repl: Option<String>, kwargs: Kwargs) -> Result<String, Error> {
    let ic = kwargs.get::<Option<bool>>("ignorecase")?.unwrap_or(false);
    let ml = kwargs.get::<Option<bool>>("multiline")?.unwrap_or(false);
    let count = kwargs.get::<Option<usize>>("count")?.unwrap_or(0);
    let mandatory_count = kwargs.get::<Option<usize>>("mandatory_count")?.unwrap_or(0);
    kwargs.assert_all_used()?;
    let s = text(v)?;
    let re = compile(&pat.unwrap_or_default(), ic, ml)?;
    let (out, subs) = re.sub(&s, &repl.unwrap_or_default(), count).map_err(op_err)?;
    if mandatory_count > 0 && mandatory_count != subs {
        return Err(op_err(format!(
            "'{}' should match {mandatory_count} times, but matches {subs} times in '{s}'",
            re.as_str()
        )));
    }
    Ok(out)
}

fn regex_search(v: &Value, pat: String, groups: Rest<String>, kwargs: Kwargs) -> Result<Value, Error> {
    let ic = kwargs.get::<Option<bool>>("ignorecase")?.unwrap_or(false);
    let ml = kwargs.get::<Option<bool>>("multiline")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    let s = text(v)?;
    let re = compile(&pat, ic, ml)?;
    let Some(caps) = re.captures(&s).map_err(op_err)? else { return Ok(Value::from(())) };
    if groups.is_empty() {
        return Ok(Value::from(caps.get(0).map(|m| m.as_str()).unwrap_or("")));
    }
    let mut out = Vec::new();
    for g in groups.iter() {
        let m = if let Some(name) = g.strip_prefix("\\g<").and_then(|x| x.strip_suffix('>')) {
            match name.parse::<usize>() {
                Ok(i) => caps.get(i),
                Err(_) => caps.name(name),
            }
        } else if let Some(n) = g.strip_prefix('\\').and_then(|x| x.parse::<usize>().ok()) {
            caps.get(n)
        } else {
            return Err(op_err(format!("regex_search: unknown argument '{g}'")));
        };
        out.push(m.map(|m| Value::from(m.as_str())).unwrap_or(Value::from(())));
    }
    Ok(Value::from(out))
}

fn regex_findall(v: &Value, pat: String, kwargs: Kwargs) -> Result<Value, Error> {
    let ic = kwargs.get::<Option<bool>>("ignorecase")?.unwrap_or(false);
    let ml = kwargs.get::<Option<bool>>("multiline")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    let s = text(v)?;
    let re = compile(&pat, ic, ml)?;
    let ngroups = re.groups();
    let mut out = Vec::new();
    for caps in re.captures_all(&s).map_err(op_err)? {
        let g = |i: usize| Value::from(caps.get(i).map(|m| m.as_str()).unwrap_or(""));
        out.push(match ngroups {
            0 => g(0),
            1 => g(1),
            n => Value::from((1..=n).map(g).collect::<Vec<_>>()),
        });
    }
    Ok(Value::from(out))
}

fn regex_escape(v: &Value, re_type: Option<String>, kwargs: Kwargs) -> Result<String, Error> {
    let re_type = match re_type {
        Some(t) => Some(t),
        None => kwargs.get::<Option<String>>("re_type")?,
    };
    kwargs.assert_all_used()?;
    let s = text(v)?;
    // Ansible's words
    let posix = match re_type.as_deref() {
        None | Some("python") => false,
        Some("posix_basic") => true,
        Some(o @ "posix_extended") => {
            return Err(op_err(format!("regex_escape: Regex type ({o}) not yet implemented")));
        }
        Some(o) => return Err(op_err(format!("regex_escape: Invalid regex type ({o})"))),
    };
    let special: &[char] = if posix {
        &['.', '[', ']', '\\', '*', '^', '$']
    } else {
        &[
            '(', ')', '[', ']', '{', '}', '?', '*', '+', '-', '|', '^', '$', '\\', '.', '&', '~', '#', ' ', '\t', '\n',
            '\r', '\u{b}', '\u{c}',
        ]
    };
    let mut out = String::new();
    for c in s.chars() {
        if special.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    Ok(out)
}

/// The text encodings `b64encode` and `b64decode` take (`encoding=`; Python's names).
#[derive(Clone, Copy, PartialEq)]
enum TextEncoding {
    Utf8,
    Utf16Le,
    Utf16Be,
    Latin1,
    Ascii,
}

/// `encoding=` (utf-8, the default) and `urlsafe=` of Ansible's `b64encode` and `b64decode`.
fn b64_options(kwargs: &Kwargs, filter: &str) -> Result<(TextEncoding, bool), Error> {
    let enc = kwargs.get::<Option<String>>("encoding")?.unwrap_or_else(|| "utf-8".into());
    let urlsafe = kwargs.get::<Option<bool>>("urlsafe")?.unwrap_or(false);
    kwargs.assert_all_used()?;
    let e = match enc.to_ascii_lowercase().replace('_', "-").as_str() {
        "utf-8" | "utf8" => TextEncoding::Utf8,
        "utf-16-le" | "utf-16le" => TextEncoding::Utf16Le,
        "utf-16-be" | "utf-16be" => TextEncoding::Utf16Be,
        "latin-1" | "latin1" | "iso-8859-1" => TextEncoding::Latin1,
        "ascii" => TextEncoding::Ascii,
        _ => return Err(op_err(format!("{filter}: unsupported encoding '{enc}'"))),
    };
    Ok((e, urlsafe))
}

fn b64_engine(urlsafe: bool) -> base64::engine::GeneralPurpose {
    if urlsafe { base64::engine::general_purpose::URL_SAFE } else { base64::engine::general_purpose::STANDARD }
}

fn b64encode(v: &Value, kwargs: Kwargs) -> Result<String, Error> {
    let (enc, urlsafe) = b64_options(&kwargs, "b64encode")?;
    let bytes = match v.as_bytes() {
        Some(b) if v.kind() == ValueKind::Bytes => b.to_vec(),
        _ => {
            let s = text(v)?;
            match enc {
                TextEncoding::Utf8 => s.into_bytes(),
                TextEncoding::Utf16Le => s.encode_utf16().flat_map(u16::to_le_bytes).collect(),
                TextEncoding::Utf16Be => s.encode_utf16().flat_map(u16::to_be_bytes).collect(),
                TextEncoding::Latin1 | TextEncoding::Ascii => {
                    let max = if enc == TextEncoding::Ascii { 0x7f } else { 0xff };
                    s.chars()
                        .map(|c| u8::try_from(u32::from(c)).ok().filter(|&b| u32::from(b) <= max))
                        .collect::<Option<Vec<u8>>>()
                        .ok_or_else(|| op_err("b64encode: the text has characters its encoding cannot hold"))?
                }
            }
        }
    };
    Ok(b64_engine(urlsafe).encode(bytes))
}

fn b64decode(v: &Value, kwargs: Kwargs) -> Result<String, Error> {
    let (enc, urlsafe) = b64_options(&kwargs, "b64decode")?;
    let s = text(v)?;
    let cleaned: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = b64_engine(urlsafe).decode(cleaned.as_bytes()).map_err(|e| op_err(format!("b64decode: {e}")))?;
    let units = |f: fn([u8; 2]) -> u16| -> Vec<u16> { bytes.chunks_exact(2).map(|c| f([c[0], c[1]])).collect() };
    Ok(match enc {
        TextEncoding::Utf16Le => String::from_utf16_lossy(&units(u16::from_le_bytes)),
        TextEncoding::Utf16Be => String::from_utf16_lossy(&units(u16::from_be_bytes)),
        TextEncoding::Latin1 => bytes.iter().map(|&b| char::from(b)).collect(),
        TextEncoding::Utf8 | TextEncoding::Ascii => String::from_utf8_lossy(&bytes).into_owned(),
    })
}

fn basename(v: &Value) -> Result<String, Error> {
    let s = text(v)?;
    Ok(s.rsplit('/').next().unwrap_or("").to_string())
}

/// Python's `os.path.dirname`.
pub fn py_dirname(s: &str) -> String {
    match s.rfind('/') {
        None => String::new(),
        Some(i) => {
            let head = &s[..=i];
            let trimmed = head.trim_end_matches('/');
            if trimmed.is_empty() { head.to_string() } else { trimmed.to_string() }
        }
    }
}

fn dirname(v: &Value) -> Result<String, Error> {
    Ok(py_dirname(&text(v)?))
}

pub fn expand_user(s: &str) -> String {
    if (s == "~" || s.starts_with("~/"))
        && let Ok(home) = std::env::var("HOME")
    {
        return format!("{home}{}", &s[1..]);
    }
    s.to_string()
}

fn expanduser(v: &Value) -> Result<String, Error> {
    Ok(expand_user(&text(v)?))
}

/// Lexical normalisation (`os.path.normpath`).
fn normpath(p: &str) -> String {
    let abs = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !abs {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let body = parts.join("/");
    match (abs, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

fn realpath(v: &Value) -> Result<String, Error> {
    let s = text(v)?;
    if let Ok(p) = std::fs::canonicalize(&s) {
        return Ok(p.to_string_lossy().into_owned());
    }
    let abs = if s.starts_with('/') {
        s
    } else {
        let cwd = std::env::current_dir().map_err(|e| op_err(e.to_string()))?;
        format!("{}/{s}", cwd.display())
    };
    Ok(normpath(&abs))
}

fn splitext(v: &Value) -> Result<Value, Error> {
    let s = text(v)?;
    let base_start = s.rfind('/').map(|i| i + 1).unwrap_or(0);
    let base = &s[base_start..];
    let lead = base.len() - base.trim_start_matches('.').len();
    let (root, ext) = match base[lead..].rfind('.') {
        Some(i) => {
            let at = base_start + lead + i;
            (s[..at].to_string(), s[at..].to_string())
        }
        None => (s.clone(), String::new()),
    };
    Ok(tuple(vec![Value::from(root), Value::from(ext)]))
}

fn path_join(v: &Value) -> Result<String, Error> {
    // a single path is itself (`"foo" | path_join`), as in Ansible
    if v.kind() == ValueKind::String {
        return text(v);
    }
    let mut out = String::new();
    for p in list(v)? {
        let p = text(&p)?;
        if p.starts_with('/') {
            out = p;
        } else if out.is_empty() || out.ends_with('/') {
            out.push_str(&p);
        } else {
            out.push('/');
            out.push_str(&p);
        }
    }
    Ok(out)
}

/// Python's `shlex.quote`.
pub fn shell_quote(s: &str) -> String {
    if s.is_empty() {
        return "''".into();
    }
    if s.chars().all(|c| c.is_alphanumeric() || "_@%+=:,./-".contains(c)) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\"'\"'"))
}

fn quote(v: &Value) -> Result<String, Error> {
    if v.is_none() {
        return Ok(shell_quote(""));
    }
    Ok(shell_quote(&text(v)?))
}

fn hash_bytes(data: &[u8], algo: &str) -> Result<String, Error> {
    Ok(match algo {
        "sha1" => hex::encode(sha1::Sha1::digest(data)),
        "sha224" => hex::encode(sha2::Sha224::digest(data)),
        "sha256" => hex::encode(sha2::Sha256::digest(data)),
        "sha384" => hex::encode(sha2::Sha384::digest(data)),
        "sha512" => hex::encode(sha2::Sha512::digest(data)),
        "md5" => format!("{:x}", md5::compute(data)),
        o => return Err(op_err(format!("hash: unsupported hash type '{o}'"))),
    })
}

fn digest(_state: &State, v: &Value, algo: &str) -> Result<String, Error> {
    hash_bytes(text(v)?.as_bytes(), algo)
}

fn hash(v: &Value, algo: Option<String>) -> Result<String, Error> {
    hash_bytes(text(v)?.as_bytes(), algo.as_deref().unwrap_or("sha1"))
}

fn password_hash(v: &Value, hashtype: Option<String>, salt: Option<String>, kwargs: Kwargs) -> Result<String, Error> {
    let hashtype = match hashtype {
        Some(h) => h,
        None => kwargs.get::<Option<String>>("hashtype")?.unwrap_or_else(|| "sha512".into()),
    };
    let salt = match salt {
        Some(s) => Some(s),
        None => kwargs.get::<Option<String>>("salt")?,
    };
    let rounds = kwargs.get::<Option<u32>>("rounds")?;
    kwargs.assert_all_used()?;
    let pw = text(v)?;
    let salt = match salt {
        Some(s) => s,
        None => super::crypt::random_salt(16).map_err(op_err)?,
    };
    super::crypt::crypt(&pw, &hashtype, &salt, rounds).map_err(op_err)
}

fn checksum(v: &Value) -> Result<String, Error> {
    hash_bytes(text(v)?.as_bytes(), "sha1")
}

fn flatten_into(v: &Value, levels: Option<usize>, skip_nulls: bool, out: &mut Vec<Value>) -> Result<(), Error> {
    for item in list(v)? {
        let is_null = item.is_none() || matches!(item.as_str(), Some("None") | Some("null"));
        if skip_nulls && is_null {
            continue;
        }
        if item.kind() == ValueKind::Seq && levels != Some(0) {
            flatten_into(&item, levels.map(|l| l - 1), skip_nulls, out)?;
        } else {
            out.push(item);
        }
    }
    Ok(())
}

fn flatten(v: &Value, levels: Option<usize>, kwargs: Kwargs) -> Result<Value, Error> {
    let levels = match levels {
        Some(l) => Some(l),
        None => kwargs.get::<Option<usize>>("levels")?,
    };
    let skip_nulls = kwargs.get::<Option<bool>>("skip_nulls")?.unwrap_or(true);
    kwargs.assert_all_used()?;
    let mut out = Vec::new();
    flatten_into(v, levels, skip_nulls, &mut out)?;
    Ok(Value::from(out))
}

fn uniq(items: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(items.len());
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

fn unique(v: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let attribute = kwargs.get::<Option<String>>("attribute")?;
    let case_sensitive = kwargs.get::<Option<bool>>("case_sensitive")?.unwrap_or(true);
    kwargs.assert_all_used()?;
    let items = list(v)?;
    if attribute.is_none() && case_sensitive {
        return Ok(Value::from(uniq(items)));
    }
    let mut seen: Vec<Value> = Vec::new();
    let mut out = Vec::new();
    for i in items {
        let mut key = match &attribute {
            Some(a) => i.get_attr(a)?,
            None => i.clone(),
        };
        if !case_sensitive && let Some(s) = key.as_str() {
            key = Value::from(s.to_lowercase());
        }
        if !seen.contains(&key) {
            seen.push(key);
            out.push(i);
        }
    }
    Ok(Value::from(out))
}

fn difference(a: &Value, b: &Value) -> Result<Value, Error> {
    let (a, b) = (list(a)?, list(b)?);
    Ok(Value::from(uniq(a.into_iter().filter(|x| !b.contains(x)).collect())))
}

fn union(a: &Value, b: &Value) -> Result<Value, Error> {
    let mut a = list(a)?;
    a.extend(list(b)?);
    Ok(Value::from(uniq(a)))
}

fn intersect(a: &Value, b: &Value) -> Result<Value, Error> {
    let (a, b) = (list(a)?, list(b)?);
    Ok(Value::from(uniq(a.into_iter().filter(|x| b.contains(x)).collect())))
}

fn symmetric_difference(a: &Value, b: &Value) -> Result<Value, Error> {
    let (la, lb) = (list(a)?, list(b)?);
    let inter: Vec<Value> = la.iter().filter(|x| lb.contains(x)).cloned().collect();
    let mut all = la;
    all.extend(lb);
    Ok(Value::from(uniq(all.into_iter().filter(|x| !inter.contains(x)).collect())))
}

fn zip(v: &Value, others: Rest<Value>) -> Result<Value, Error> {
    let mut lists = vec![list(v)?];
    for o in others.iter() {
        lists.push(list(o)?);
    }
    let n = lists.iter().map(Vec::len).min().unwrap_or(0);
    Ok(Value::from((0..n).map(|i| tuple(lists.iter().map(|l| l[i].clone()).collect())).collect::<Vec<_>>()))
}

fn zip_longest(v: &Value, others: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let fill = kwargs.get::<Option<Value>>("fillvalue")?.unwrap_or(Value::from(()));
    kwargs.assert_all_used()?;
    let mut lists = vec![list(v)?];
    for o in others.iter() {
        lists.push(list(o)?);
    }
    let n = lists.iter().map(Vec::len).max().unwrap_or(0);
    Ok(Value::from(
        (0..n)
            .map(|i| tuple(lists.iter().map(|l| l.get(i).cloned().unwrap_or(fill.clone())).collect()))
            .collect::<Vec<_>>(),
    ))
}

/// The most items `product` builds, and the most values in all of them.
const MAX_PRODUCT: usize = 1_000_000;
const MAX_PRODUCT_VALUES: usize = 1_000_000;

fn product(v: &Value, others: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let repeat = kwargs.get::<Option<usize>>("repeat")?.unwrap_or(1);
    kwargs.assert_all_used()?;
    let mut pools = vec![list(v)?];
    for o in others.iter() {
        pools.push(list(o)?);
    }
    // the size first: `product(repeat=10**9)` or four ranges of 100 would exhaust memory
    let size = pools
        .iter()
        .try_fold(1usize, |n, p| n.checked_mul(p.len()))
        .and_then(|n| n.checked_pow(u32::try_from(repeat).ok()?));
    match size {
        Some(0) => return Ok(Value::from(Vec::<Value>::new())),
        Some(n) if n <= MAX_PRODUCT => {}
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("product: the result would have more than {MAX_PRODUCT} items"),
            ));
        }
    }
    // and the values in all: `[1] | product(repeat=10**9)` is one item of a billion values
    let values = pools.len().checked_mul(repeat).and_then(|w| w.checked_mul(size.unwrap_or(0)));
    if values.is_none_or(|n| n > MAX_PRODUCT_VALUES) {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("product: the result would hold more than {MAX_PRODUCT_VALUES} values"),
        ));
    }
    // each item straight from its index (mixed radix, the last pool fastest): the work is the
    // values made, never a prefix copied per item
    let pools: Vec<&Vec<Value>> = (0..repeat).flat_map(|_| pools.iter()).collect();
    let size = size.unwrap_or(0);
    let mut out = Vec::with_capacity(size);
    for mut i in 0..size {
        let mut item = vec![Value::from(()); pools.len()];
        for (slot, pool) in item.iter_mut().zip(&pools).rev() {
            *slot = pool[i % pool.len()].clone();
            i /= pool.len();
        }
        out.push(tuple(item));
    }
    Ok(Value::from(out))
}

fn subelements(v: &Value, key: String, skip_missing: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let skip = match skip_missing {
        Some(s) if s.kind() == ValueKind::Map => s.get_attr("skip_missing")?.is_true(),
        Some(s) => s.is_true(),
        None => kwargs.get::<Option<bool>>("skip_missing")?.unwrap_or(false),
    };
    kwargs.assert_all_used()?;
    let items = match v.kind() {
        ValueKind::Map => v.try_iter()?.map(|k| v.get_item(&k)).collect::<Result<Vec<_>, _>>()?,
        _ => list(v)?,
    };
    let mut out = Vec::new();
    for item in items {
        let mut cur = item.clone();
        let mut missing = false;
        for part in key.split('.') {
            cur = cur.get_attr(part)?;
            if cur.is_undefined() {
                missing = true;
                break;
            }
        }
        if missing {
            if skip {
                continue;
            }
            return Err(op_err(format!("could not find '{key}' key in iterated item")));
        }
        if cur.kind() != ValueKind::Seq {
            return Err(op_err(format!("the key '{key}' should point to a list, got {}", cur.kind())));
        }
        for sub in cur.try_iter()? {
            out.push(Value::from(vec![item.clone(), sub]));
        }
    }
    Ok(Value::from(out))
}

/// Ansible's `human_to_bytes`: `10M`, `4G`, `1.5 TiB`, `512KB` (powers of 1024, as Ansible),
/// a bare number is bytes (or `default_unit`).
/// A Python tuple (what `zip`, `product` and `splitext` give in Ansible): equal to a tuple
/// literal, not to a list, as in Python.
fn tuple(items: Vec<Value>) -> Value {
    Value::from_object(minijinja::value::Tuple::from(items))
}

/// Ansible's `human_readable`: `1.00 GB` (binary multiples), `bits` with `isbits`, or in `unit`.
fn human_readable(v: &Value, isbits: Option<bool>, unit: Option<String>, kwargs: Kwargs) -> Result<String, Error> {
    let isbits = kwargs.get::<Option<bool>>("isbits")?.or(isbits);
    let unit = kwargs.get::<Option<String>>("unit")?.or(unit);
    kwargs.assert_all_used()?;
    check(v)?;
    let size = match v.as_i64() {
        Some(n) => n as f64,
        None => v
            .to_string()
            .trim()
            .parse::<f64>()
            .map_err(|_| op_err(format!("human_readable() can't interpret following string: {v}")))?,
    };
    let base = if isbits.unwrap_or(false) { "bits" } else { "Bytes" };
    const RANGES: [(&str, u32); 9] =
        [("Y", 80), ("Z", 70), ("E", 60), ("P", 50), ("T", 40), ("G", 30), ("M", 20), ("K", 10), ("B", 0)];
    let want = unit.as_deref().map(|u| u.to_uppercase().chars().next().unwrap_or('B'));
    let (suffix, shift) = RANGES
        .iter()
        .copied()
        .find(|(s, shift)| match want {
            Some(u) => s.starts_with(u),
            None => size >= 2f64.powi(*shift as i32),
        })
        .unwrap_or(("B", 0));
    let limit = 2f64.powi(shift as i32);
    let suffix = if shift == 0 { base.to_string() } else { format!("{suffix}{}", &base[..1]) };
    Ok(format!("{:.2} {suffix}", size / limit))
}

fn human_to_bytes(v: &Value, default_unit: Option<String>) -> Result<Value, Error> {
    check(v)?;
    if let Some(n) = v.as_i64() {
        return Ok(Value::from(n));
    }
    let text = v.to_string();
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num.parse().map_err(|_| op_err(format!("human_to_bytes() can't interpret {t:?}")))?;
    let unit = unit.trim();
    let unit = if unit.is_empty() { default_unit.unwrap_or_default() } else { unit.to_string() };
    let u = unit.trim_end_matches("iB").trim_end_matches('B').trim_end_matches('b').to_ascii_uppercase();
    let pow = match u.as_str() {
        "" => 0,
        "K" => 1,
        "M" => 2,
        "G" => 3,
        "T" => 4,
        "P" => 5,
        "E" => 6,
        _ => return Err(op_err(format!("human_to_bytes() can't interpret the unit of {t:?}"))),
    };
    Ok(Value::from((num * 1024f64.powi(pow)).round() as i64))
}

fn int(v: &Value, default: Option<Value>, base: Option<u32>, kwargs: Kwargs) -> Result<Value, Error> {
    check(v)?;
    let default = match default {
        Some(d) => d,
        None => kwargs.get::<Option<Value>>("default")?.unwrap_or(Value::from(0)),
    };
    let base = match base {
        Some(b) => b,
        None => kwargs.get::<Option<u32>>("base")?.unwrap_or(10),
    };
    kwargs.assert_all_used()?;
    if base != 0 && !(2..=36).contains(&base) {
        return Err(op_err(format!("int: base must be 0 or between 2 and 36, got {base}")));
    }
    if let Some(s) = v.as_str() {
        let t = s.trim();
        let (neg, digits) = match t.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let lower = digits.to_ascii_lowercase();
        let base = match base {
            0 if lower.starts_with("0x") => 16,
            0 if lower.starts_with("0o") => 8,
            0 if lower.starts_with("0b") => 2,
            0 => 10,
            b => b,
        };
        let digits = match base {
            16 => digits.trim_start_matches("0x").trim_start_matches("0X"),
            8 => digits.trim_start_matches("0o").trim_start_matches("0O"),
            2 => digits.trim_start_matches("0b").trim_start_matches("0B"),
            _ => digits,
        };
        let digits = digits.replace('_', "");
        if let Ok(n) = i64::from_str_radix(&digits, base) {
            return Ok(Value::from(if neg { -n } else { n }));
        }
        if base == 10
            && let Ok(f) = t.parse::<f64>()
            && f.is_finite()
        {
            return Ok(Value::from(f.trunc() as i64));
        }
        return Ok(default);
    }
    Ok(match v.kind() {
        ValueKind::Bool => Value::from(i64::from(v.is_true())),
        ValueKind::Number => match v.as_i64() {
            Some(n) => Value::from(n),
            None => match f64::try_from(v.clone()) {
                Ok(f) if f.is_finite() && v.to_string().contains(['.', 'e', 'E', 'n', 'i']) => {
                    Value::from(f.trunc() as i64)
                }
                _ => v.clone(),
            },
        },
        _ => default,
    })
}

fn float(v: &Value, default: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    check(v)?;
    let default = match default {
        Some(d) => d,
        None => kwargs.get::<Option<Value>>("default")?.unwrap_or(Value::from(0.0)),
    };
    kwargs.assert_all_used()?;
    Ok(match v.kind() {
        ValueKind::Number => Value::from(f64::try_from(v.clone()).unwrap_or(0.0)),
        ValueKind::Bool => Value::from(if v.is_true() { 1.0 } else { 0.0 }),
        ValueKind::String => match v.as_str().unwrap_or_default().trim().parse::<f64>() {
            Ok(f) => Value::from(f),
            Err(_) => default,
        },
        _ => default,
    })
}

fn string(v: &Value) -> Result<String, Error> {
    text(v)
}

fn extract(item: &Value, container: &Value, morekeys: Option<Value>) -> Result<Value, Error> {
    check(item)?;
    // an undefined container gives an undefined value (that `default` replaces), as in Ansible
    if container.is_undefined() {
        return Ok(Value::UNDEFINED);
    }
    let mut cur = container.get_item(item)?;
    if let Some(more) = morekeys {
        let keys = if more.kind() == ValueKind::Seq { list(&more)? } else { vec![more] };
        for k in keys {
            if cur.is_undefined() {
                break;
            }
            cur = cur.get_item(&k)?;
        }
    }
    Ok(cur)
}

fn type_debug(v: &Value) -> Result<&'static str, Error> {
    check(v)?;
    Ok(match v.kind() {
        ValueKind::None => "NoneType",
        ValueKind::Bool => "bool",
        ValueKind::Number => {
            if v.as_i64().is_some() || v.to_string().bytes().all(|b| b.is_ascii_digit() || b == b'-') {
                "int"
            } else {
                "float"
            }
        }
        ValueKind::String => "str",
        ValueKind::Bytes => "bytes",
        ValueKind::Seq => "list",
        ValueKind::Map => "dict",
        _ => "object",
    })
}
