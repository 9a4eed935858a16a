//! `lookup()`, `query()`/`q()` and the lookup plugins Ansible playbooks use most
//! (`file`, `env`, `template`, `pipe`, `vars`, `first_found`, `fileglob`, `items`, `list`,
//! `dict`, `indexed_items`).

use super::filters::{expand_user, undefined_err};
use super::pyfmt::to_py_str;
use super::{inline_name, with_current};
use minijinja::value::{Kwargs, Rest, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State};
use std::path::{Path, PathBuf};

pub fn register(env: &mut Environment<'static>) {
    env.add_function("lookup", lookup);
    env.add_function("query", query);
    env.add_function("q", query);
}

/// How deep `lookup('template')` may nest: a template that looks itself up would never end.
pub const MAX_TEMPLATE_LOOKUP_DEPTH: usize = 16;

thread_local! {
    /// The templates `lookup('template')` is rendering on this thread, outermost first.
    static LOOKUPS: std::cell::RefCell<Vec<PathBuf>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One level of `lookup('template')`, left when dropped.
struct LookupDepth;

impl LookupDepth {
    fn enter(path: &Path) -> Result<LookupDepth, Error> {
        LOOKUPS.with(|l| {
            let mut l = l.borrow_mut();
            if l.len() >= MAX_TEMPLATE_LOOKUP_DEPTH {
                let name = |p: &PathBuf| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let chain: Vec<String> = l.iter().take(4).map(name).collect();
                let again = l.iter().any(|p| p == path);
                return Err(err(format!(
                    "lookup('template') nested more than {MAX_TEMPLATE_LOOKUP_DEPTH} deep ({} → ...){}",
                    chain.join(" → "),
                    if again { format!(": {} looks itself up (recursion)", path.display()) } else { String::new() }
                )));
            }
            l.push(path.to_path_buf());
            Ok(LookupDepth)
        })
    }
}

impl Drop for LookupDepth {
    fn drop(&mut self) {
        LOOKUPS.with(|l| {
            l.borrow_mut().pop();
        });
    }
}

/// Set once by a process that renders untrusted templates (the fuzzer): `pipe` and `lines`
/// then fail instead of running a command.
static NO_COMMANDS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Make the lookups that run commands (`pipe`, `lines`) fail, for the rest of the process.
pub fn disable_command_lookups() {
    NO_COMMANDS.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// The settings `lookup('config', NAME)` answers: Ansible's names (`DEFAULT_FORKS`,
/// `ALLOW_BROKEN_CONDITIONALS`...) and the values this run uses, set by the CLI.
static CONFIG: std::sync::RwLock<Vec<(String, serde_json::Value)>> = std::sync::RwLock::new(Vec::new());

/// Set what `lookup('config', ...)` answers (the settings pbr reads, as the run uses them).
pub fn set_config(settings: Vec<(String, serde_json::Value)>) {
    *CONFIG.write().unwrap_or_else(|e| e.into_inner()) = settings;
}

fn commands_allowed(name: &str) -> Result<(), Error> {
    if NO_COMMANDS.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(err(format!("lookup {name}: running commands is disabled in this process")));
    }
    Ok(())
}

fn err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// A relative name found under the search dirs: `DIR/SUBDIR/NAME`, then `DIR/NAME`.
/// Absolute (or `~`) names are returned when they exist.
pub fn find_in_search(search: &[PathBuf], subdir: &str, name: &str) -> Option<PathBuf> {
    let name = expand_user(name);
    let p = Path::new(&name);
    if p.is_absolute() {
        return p.exists().then(|| p.to_path_buf());
    }
    for dir in search {
        let a = dir.join(subdir).join(p);
        if a.exists() {
            return Some(a);
        }
        let b = dir.join(p);
        if b.exists() {
            return Some(b);
        }
    }
    if search.is_empty() && p.exists() {
        return Some(p.to_path_buf());
    }
    None
}

fn search_dirs() -> Vec<PathBuf> {
    with_current(|c| c.map(|c| c.search.clone()).unwrap_or_default())
}

fn terms_flat(terms: &[Value]) -> Result<Vec<Value>, Error> {
    let mut out = Vec::new();
    for t in terms {
        if t.is_undefined() {
            return Err(undefined_err());
        }
        if t.kind() == ValueKind::Seq {
            out.extend(t.try_iter()?);
        } else {
            out.push(t.clone());
        }
    }
    Ok(out)
}

/// Run a lookup plugin, honouring `errors='strict'|'warn'|'ignore'` (the last two yield nothing).
fn run_checked(state: &State, name: &str, terms: &[Value], kwargs: &Kwargs) -> Result<Vec<Value>, Error> {
    let errors = kwargs.get::<Option<String>>("errors")?.unwrap_or_else(|| "strict".into());
    match run(state, name, terms, kwargs) {
        Ok(v) => Ok(v),
        Err(e) if matches!(errors.as_str(), "ignore" | "warn") && e.kind() != ErrorKind::UndefinedError => {
            if errors == "warn" {
                tracing::warn!("lookup('{name}') failed: {e}");
            }
            Ok(vec![])
        }
        Err(e) => Err(e),
    }
}

fn lookup(state: &State, name: String, terms: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let wantlist = kwargs.get::<Option<bool>>("wantlist")?.unwrap_or(false);
    let ran = run_checked(state, &name, &terms, &kwargs)?;
    if wantlist {
        return Ok(Value::from(ran));
    }
    if ran.iter().all(|v| v.kind() == ValueKind::String) {
        let parts: Vec<&str> = ran.iter().map(|v| v.as_str().unwrap_or_default()).collect();
        return Ok(Value::from(parts.join(",")));
    }
    if ran.len() == 1 {
        return Ok(ran.into_iter().next().unwrap_or(Value::from(())));
    }
    Ok(Value::from(ran))
}

fn query(state: &State, name: String, terms: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let _ = kwargs.get::<Option<bool>>("wantlist")?;
    Ok(Value::from(run_checked(state, &name, &terms, &kwargs)?))
}

fn read(path: &Path) -> Result<String, Error> {
    pbr_syntax::source::read_text(path).map_err(|e| match e {
        pbr_syntax::source::ReadError::NotUtf8(_, m) => err(m),
        e => err(format!("cannot read {}: {e}", path.display())),
    })
}

pub(crate) fn run(state: &State, name: &str, terms: &[Value], kwargs: &Kwargs) -> Result<Vec<Value>, Error> {
    let plugin = name.strip_prefix("ansible.builtin.").unwrap_or(name);
    let out = match plugin {
        "file" => {
            let rstrip = kwargs.get::<Option<bool>>("rstrip")?.unwrap_or(true);
            let lstrip = kwargs.get::<Option<bool>>("lstrip")?.unwrap_or(false);
            let search = search_dirs();
            let mut out = Vec::new();
            for t in terms_flat(terms)? {
                let t = to_py_str(&t)?;
                let path = find_in_search(&search, "files", &t)
                    .ok_or_else(|| err(format!("could not locate file in lookup: {t}")))?;
                let mut s = read(&path)?;
                if rstrip {
                    s.truncate(s.trim_end().len());
                }
                if lstrip {
                    s = s.trim_start().to_string();
                }
                out.push(Value::from(s));
            }
            out
        }
        "config" => {
            // Ansible's `on_missing`: error (the default), warn or skip
            let on_missing = kwargs.get::<Option<String>>("on_missing")?.unwrap_or_else(|| "error".into());
            if !["error", "warn", "skip"].contains(&on_missing.as_str()) {
                return Err(err(format!("lookup config: on_missing must be error, warn or skip, not {on_missing:?}")));
            }
            if kwargs.get::<Option<Value>>("plugin_type")?.is_some()
                || kwargs.get::<Option<Value>>("plugin_name")?.is_some()
            {
                return Err(err("lookup config: pbr has no plugins to read the settings of"));
            }
            let config = CONFIG.read().unwrap_or_else(|e| e.into_inner());
            let mut out = Vec::new();
            for t in terms_flat(terms)? {
                let t = to_py_str(&t)?;
                match config.iter().find(|(k, _)| *k == t) {
                    Some((_, v)) => out.push(crate::from_json(v)),
                    None if on_missing == "error" => {
                        return Err(err(format!(
                            "Unable to find setting {t} (pbr answers for the settings it reads: {})",
                            config.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", ")
                        )));
                    }
                    None => {}
                }
            }
            out
        }
        "env" => {
            let default = kwargs.get::<Option<Value>>("default")?;
            let mut out = Vec::new();
            for t in terms_flat(terms)? {
                let t = to_py_str(&t)?;
                out.push(match std::env::var(&t) {
                    Ok(v) => Value::from(v),
                    Err(_) => default.clone().unwrap_or(Value::from("")),
                });
            }
            out
        }
        "template" => {
            let extra = kwargs.get::<Option<Value>>("template_vars")?;
            let _ = kwargs.get::<Option<bool>>("convert_data")?;
            let search = search_dirs();
            let vars = with_current(|c| c.map(|c| c.vars.clone())).unwrap_or_else(|| Value::from(()));
            let vars = match extra {
                Some(e) if e.kind() == ValueKind::Map => {
                    let mut m = std::collections::BTreeMap::new();
                    let mut order = Vec::new();
                    for src in [&vars, &e] {
                        if src.kind() == ValueKind::Map {
                            for k in src.try_iter()? {
                                let key = to_py_str(&k)?;
                                if !m.contains_key(&key) {
                                    order.push(key.clone());
                                }
                                m.insert(key, src.get_item(&k)?);
                            }
                        }
                    }
                    Value::from_pairs(order.into_iter().map(|k| {
                        let v = m.remove(&k).unwrap_or(Value::from(()));
                        (k, v)
                    }))
                }
                _ => vars,
            };
            let mut out = Vec::new();
            for t in terms_flat(terms)? {
                let t = to_py_str(&t)?;
                let path = find_in_search(&search, "templates", &t)
                    .ok_or_else(|| err(format!("the template file {t} could not be found for the lookup")))?;
                let src = read(&path)?;
                let tmpl = state.env().get_template(&inline_name(&src))?;
                let _depth = LookupDepth::enter(&path)?;
                out.push(Value::from(tmpl.render(vars.clone())?));
            }
            out
        }
        "pipe" => {
            commands_allowed("pipe")?;
            let mut out = Vec::new();
            for t in terms_flat(terms)? {
                let cmd = to_py_str(&t)?;
                let o = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(&cmd)
                    .stdin(std::process::Stdio::null())
                    .output()
                    .map_err(|e| err(format!("lookup pipe: cannot run sh: {e}")))?;
                if !o.status.success() {
                    return Err(err(format!(
                        "lookup_plugin.pipe({cmd}) returned {}",
                        o.status.code().map(|c| c.to_string()).unwrap_or_else(|| "a signal".into())
                    )));
                }
                let s = String::from_utf8_lossy(&o.stdout);
                out.push(Value::from(s.trim_end()));
            }
            out
        }
        "lines" => {
            commands_allowed("lines")?;
            let mut out = Vec::new();
            for t in terms_flat(terms)? {
                let cmd = to_py_str(&t)?;
                let o = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(&cmd)
                    .stdin(std::process::Stdio::null())
                    .output()
                    .map_err(|e| err(format!("lookup lines: cannot run sh: {e}")))?;
                if !o.status.success() {
                    return Err(err(format!(
                        "lookup_plugin.lines({cmd}) returned {}",
                        o.status.code().map(|c| c.to_string()).unwrap_or_else(|| "a signal".into())
                    )));
                }
                out.extend(String::from_utf8_lossy(&o.stdout).lines().map(|l| Value::from(l.to_string())));
            }
            out
        }
        "vars" => {
            let default = kwargs.get::<Option<Value>>("default")?;
            let mut out = Vec::new();
            for t in terms_flat(terms)? {
                let t = to_py_str(&t)?;
                let v = with_current(|c| c.and_then(|c| c.vars.get_attr(&t).ok()))
                    .filter(|v| !v.is_undefined())
                    .or_else(|| state.lookup(&t).filter(|v| !v.is_undefined()));
                match (v, &default) {
                    (Some(v), _) => out.push(v),
                    (None, Some(d)) => out.push(d.clone()),
                    (None, None) => return Err(err(format!("No variable found with this name: {t}"))),
                }
            }
            out
        }
        "first_found" => {
            let mut files: Vec<String> = Vec::new();
            let mut paths: Vec<String> = Vec::new();
            let mut skip = kwargs.get::<Option<bool>>("skip")?.unwrap_or(false);
            if let Some(f) = kwargs.get::<Option<Value>>("files")? {
                files.extend(str_list(&f)?);
            }
            if let Some(p) = kwargs.get::<Option<Value>>("paths")? {
                paths.extend(str_list(&p)?);
            }
            for t in terms_flat(terms)? {
                if t.kind() == ValueKind::Map {
                    if let Ok(f) = t.get_attr("files")
                        && !f.is_undefined()
                    {
                        files.extend(str_list(&f)?);
                    }
                    if let Ok(p) = t.get_attr("paths")
                        && !p.is_undefined()
                    {
                        paths.extend(str_list(&p)?);
                    }
                    if let Ok(s) = t.get_attr("skip")
                        && s.is_true()
                    {
                        skip = true;
                    }
                } else {
                    files.extend(str_list(&t)?);
                }
            }
            let search = search_dirs();
            let mut candidates = Vec::new();
            for f in &files {
                if paths.is_empty() {
                    candidates.push(f.clone());
                } else {
                    for p in &paths {
                        candidates.push(format!("{}/{f}", p.trim_end_matches('/')));
                    }
                }
            }
            match candidates.iter().find_map(|c| find_in_search(&search, "files", c)) {
                Some(p) => vec![Value::from(p.to_string_lossy().into_owned())],
                None if skip => vec![],
                None => return Err(err("No file was found when using first_found.")),
            }
        }
        "fileglob" => {
            let search = search_dirs();
            let mut out = Vec::new();
            for t in terms_flat(terms)? {
                let t = expand_user(&to_py_str(&t)?);
                let patterns: Vec<String> = if Path::new(&t).is_absolute() || search.is_empty() {
                    vec![t.clone()]
                } else {
                    search
                        .iter()
                        .flat_map(|d| [d.join("files").join(&t), d.join(&t)])
                        .map(|p| p.to_string_lossy().into_owned())
                        .collect()
                };
                for pat in patterns {
                    let Ok(paths) = glob::glob(&pat) else { continue };
                    let found: Vec<Value> = paths
                        .filter_map(Result::ok)
                        .filter(|p| p.is_file())
                        .map(|p| Value::from(p.to_string_lossy().into_owned()))
                        .collect();
                    if !found.is_empty() {
                        out.extend(found);
                        break;
                    }
                }
            }
            out
        }
        "items" => terms_flat(terms)?,
        "sequence" => {
            let mut out = vec![];
            for t in terms {
                out.extend(super::sequence(&to_py_str(t)?).map_err(err)?.into_iter().map(Value::from));
            }
            out
        }
        "list" => terms.to_vec(),
        "indexed_items" => {
            terms_flat(terms)?.into_iter().enumerate().map(|(i, v)| Value::from(vec![Value::from(i), v])).collect()
        }
        "dict" => {
            let mut out = Vec::new();
            for t in terms {
                if t.kind() != ValueKind::Map {
                    return Err(err("with_dict expects a dict"));
                }
                for k in t.try_iter()? {
                    let v = t.get_item(&k)?;
                    out.push(Value::from_pairs([("key", k), ("value", v)]));
                }
            }
            out
        }
        other => return Err(err(format!("lookup plugin '{other}' not found"))),
    };
    Ok(out)
}

fn str_list(v: &Value) -> Result<Vec<String>, Error> {
    match v.kind() {
        ValueKind::Seq => v.try_iter()?.map(|x| to_py_str(&x)).collect(),
        ValueKind::String => {
            // Ansible splits comma/semicolon separated strings in first_found.
            let s = to_py_str(v)?;
            Ok(s.split([',', ';']).map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect())
        }
        ValueKind::Undefined => Err(undefined_err()),
        _ => Ok(vec![to_py_str(v)?]),
    }
}
