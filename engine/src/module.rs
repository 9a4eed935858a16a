//! The engine's side of the module contract ([`pbr_core::module`]): params read the Ansible way,
//! the object-safe [`DynModule`] that runs probe -> plan -> apply -> verify, and the [`Registry`].

pub use pbr_core::module::*;

use crate::host::Host;
use crate::yaml::PathSeg;
use async_trait::async_trait;
use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Where a params error is, as a path into the task's params (maps back to a YAML span).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    pub path: Vec<PathSeg>,
    pub message: String,
    /// Set for "unknown field" errors: the unknown key and the keys that were expected.
    pub unknown: Option<(String, Vec<String>)>,
}

impl std::fmt::Display for ParamError {
    /// `path.to.param: message`, or the message alone for the params as a whole.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match path_text(&self.path) {
            at if at.is_empty() => f.write_str(&self.message),
            at => write!(f, "{at}: {}", self.message),
        }
    }
}

/// How the engine is running a task.
#[derive(Debug, Clone, Default)]
pub struct RunMode {
    pub check: bool,
    pub diff: bool,
    pub verify: bool,
    /// `pbr apply`: the plan this task may apply, checked between plan and apply, so that a host
    /// that changed after the plan was saved (or after apply checked it) is not written to.
    pub guard: Option<PlanGuard>,
}

/// Judges a task's (non-empty) plan against a saved one: given the plan's digest and changes,
/// `Err` says how it differs.
#[derive(Clone)]
pub struct PlanGuard(pub Arc<GuardFn>);

/// What a [`PlanGuard`] calls.
pub type GuardFn = dyn Fn(Option<&str>, &[Change]) -> Result<(), String> + Send + Sync;

impl std::fmt::Debug for PlanGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlanGuard")
    }
}

/// What running one module on one host gave.
#[derive(Debug, Clone, Default)]
pub struct ModuleResult {
    pub changed: bool,
    pub changes: Vec<Change>,
    /// sha256 of the plan (changes and ops) when it was not empty: what a saved plan compares.
    pub digest: Option<String>,
    pub data: Map<String, Value>,
    pub deferred: Vec<Deferred>,
}

/// The object-safe face of a [`Module`], kept in the [`Registry`].
#[async_trait]
pub trait DynModule: Send + Sync {
    fn name(&self) -> &'static str;
    fn aliases(&self) -> &'static [&'static str];
    fn doc(&self) -> Doc;
    fn schema(&self) -> schemars::Schema;
    fn check_params(&self, params: &Value) -> Result<(), ParamError>;
    async fn execute(
        &self,
        ctx: &Ctx<'_>,
        params: &Value,
        host: &Host,
        mode: RunMode,
    ) -> Result<ModuleResult, ModuleError>;
}

struct Adapter<M: Module>(M);

/// Deserialize a task's params, converting scalars between types as Ansible's argument spec does
/// (`-e n=5` then `size: "{{ n }}"` is the number 5 where a number is expected; `mode: 644` is the
/// string "644" where a string is): on a type error at a scalar that converts, convert it there and
/// try again.
pub(crate) fn parse_params<T: DeserializeOwned>(params: &Value) -> Result<T, ParamError> {
    let mut v = params.clone();
    for _ in 0..256 {
        match parse_params_once::<T>(&v) {
            Err(e) if coerce_at(&mut v, &e) => continue,
            r => return r,
        }
    }
    parse_params_once(&v)
}

/// Convert the scalar an "invalid type" error points at, when it converts to what was expected.
fn coerce_at(v: &mut Value, e: &ParamError) -> bool {
    let Some(rest) = e.message.strip_prefix("invalid type: ") else { return false };
    let Some((_, expected)) = rest.split_once(", expected ") else { return false };
    let mut at = &mut *v;
    for seg in &e.path {
        at = match (seg, at) {
            (PathSeg::Key(k), Value::Object(m)) => match m.get_mut(k) {
                Some(x) => x,
                None => return false,
            },
            (PathSeg::Index(i), Value::Array(a)) => match a.get_mut(*i) {
                Some(x) => x,
                None => return false,
            },
            _ => return false,
        };
    }
    let number = ["u8", "u16", "u32", "u64", "usize", "i8", "i16", "i32", "i64", "isize", "f32", "f64", "a number"]
        .iter()
        .any(|t| expected == *t || expected.starts_with(&format!("{t} ")));
    let new = match (&*at, expected) {
        (Value::String(s), _) if number => {
            let t = s.trim();
            if let Ok(n) = t.parse::<i64>() {
                Value::from(n)
            } else if let Ok(n) = t.parse::<u64>() {
                Value::from(n)
            } else if let Some(f) = t.parse::<f64>().ok().filter(|f| f.is_finite() && expected.starts_with('f')) {
                Value::from(f)
            } else {
                return false;
            }
        }
        (Value::String(s), "a boolean") => match crate::params::parse_bool(s) {
            Some(b) => Value::Bool(b),
            None => return false,
        },
        (Value::Number(n), "a string") => Value::String(n.to_string()),
        (Value::Bool(b), "a string") => Value::String(if *b { "True" } else { "False" }.into()),
        _ => return false,
    };
    *at = new;
    true
}

fn parse_params_once<T: DeserializeOwned>(params: &Value) -> Result<T, ParamError> {
    let de = params.clone();
    serde_path_to_error::deserialize::<_, T>(de).map_err(|e| {
        let path: Vec<PathSeg> = e
            .path()
            .iter()
            .filter_map(|s| match s {
                serde_path_to_error::Segment::Map { key } => Some(PathSeg::Key(key.clone())),
                serde_path_to_error::Segment::Seq { index } => Some(PathSeg::Index(*index)),
                _ => None,
            })
            .collect();
        let message = e.inner().to_string();
        let unknown = parse_unknown_field(&message);
        ParamError { path, message, unknown }
    })
}

/// A params error at run time in the words of Ansible's argument spec, where it has some (a
/// missing or an unknown top-level param): what playbooks that expect the failure check.
fn ansible_words(module: &str, e: &ParamError) -> String {
    if e.path.is_empty() {
        if let Some(name) = e.message.strip_prefix("missing field `").and_then(|r| r.split('`').next()) {
            return format!("missing required arguments: {name}");
        }
        if let Some((key, expected)) = &e.unknown {
            let mut supported: Vec<&str> =
                expected.iter().map(String::as_str).filter(|k| !k.starts_with('_')).collect();
            supported.sort_unstable();
            return format!(
                "Unsupported parameters for ({module}) module: {key}. Supported parameters include: {}.",
                supported.join(", ")
            );
        }
    }
    e.to_string()
}

/// serde's "unknown field `x`, expected one of `a`, `b`" -> ("x", ["a", "b"]).
fn parse_unknown_field(msg: &str) -> Option<(String, Vec<String>)> {
    let rest = msg.strip_prefix("unknown field `")?;
    let (key, rest) = rest.split_once('`')?;
    let expected = rest.split('`').skip(1).step_by(2).map(str::to_string).collect();
    Some((key.to_string(), expected))
}

#[async_trait]
impl<M: Module> DynModule for Adapter<M> {
    fn name(&self) -> &'static str {
        M::NAME
    }
    fn aliases(&self) -> &'static [&'static str] {
        M::ALIASES
    }
    fn doc(&self) -> Doc {
        self.0.doc()
    }
    fn schema(&self) -> schemars::Schema {
        schemars::schema_for!(M::Params)
    }
    fn check_params(&self, params: &Value) -> Result<(), ParamError> {
        let p: M::Params = parse_params(params)?;
        self.0.validate(&p).map_err(|message| ParamError { path: vec![], message, unknown: None })
    }
    async fn execute(
        &self,
        ctx: &Ctx<'_>,
        params: &Value,
        host: &Host,
        mode: RunMode,
    ) -> Result<ModuleResult, ModuleError> {
        let expanded = expand_home_params(params, host).await?;
        let params = expanded.as_ref().unwrap_or(params);
        let p: M::Params = parse_params(params).map_err(|e| ModuleError::new(ansible_words(M::NAME, &e)))?;
        self.0.validate(&p).map_err(|m| self.0.invalid(m))?;
        let probe_host = host.reader();
        let state = self.0.probe(ctx, &p, &probe_host).await?;
        let plan = self.0.plan(&p, &state)?;
        let mut result = ModuleResult { changed: !plan.is_empty(), digest: plan_digest(&plan), ..Default::default() };
        if mode.check {
            // later tasks on this host probe through what these ops would do
            host.record_planned(&plan.ops);
        }
        if !mode.check
            && !plan.is_empty()
            && let Some(PlanGuard(judge)) = &mode.guard
        {
            judge(result.digest.as_deref(), &plan.changes)
                .map_err(|why| ModuleError::new(format!("drifted since the plan: {why}; nothing was written")))?;
        }
        if plan.is_empty() || mode.check {
            result.data = self.0.data(&p, &state);
            result.changes = plan.changes;
            return Ok(result);
        }
        let outcome = self.0.apply(ctx, &p, &state, &plan, host).await?;
        // a task that runs for real in a check run (`check_mode: false`): its ops are now true
        host.record_planned(&plan.ops);
        result.changes = plan.changes;
        result.deferred = outcome.deferred;
        let mut data = outcome.data;
        if let Some(b) = data.remove("backup_file") {
            data.insert(M::BACKUP_KEY.into(), b);
        }
        for (k, v) in self.0.report(&p, &state, &probe_host).await? {
            data.entry(k).or_insert(v);
        }
        if mode.verify && self.0.convergent(&p) {
            let mut queued = ctx.queued.to_vec();
            queued.extend(result.deferred.iter().map(|d| d.key.clone()));
            let ctx = &Ctx { queued: &queued, ..*ctx };
            let state2 = self.0.probe(ctx, &p, &probe_host).await?;
            let plan2 = self.0.plan(&p, &state2)?;
            if !plan2.is_empty() {
                let left: Vec<String> = plan2.changes.iter().map(|c| c.summary.clone()).collect();
                return Err(ModuleError::new(format!(
                    "did not converge: after apply, still to do: {}",
                    left.join("; ")
                )));
            }
            for (k, v) in self.0.data(&p, &state2) {
                data.entry(k).or_insert(v);
            }
        } else {
            for (k, v) in self.0.data(&p, &state) {
                data.entry(k).or_insert(v);
            }
        }
        result.data = data;
        Ok(result)
    }
}

/// sha256 of a non-empty plan: its changes (words, kinds, diffs) and its ops, as this version of
/// pbr states them (a saved plan records the version that wrote it).
fn plan_digest(plan: &Plan) -> Option<String> {
    use sha2::Digest;
    if plan.is_empty() {
        return None;
    }
    // formatted straight into the hash: an op's bytes (an archive) are never a second string
    struct Hasher(sha2::Sha256);
    impl std::fmt::Write for Hasher {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.update(s.as_bytes());
            Ok(())
        }
    }
    let mut h = Hasher(sha2::Sha256::new());
    std::fmt::Write::write_fmt(&mut h, format_args!("{:?}\n{:?}", plan.changes, plan.ops)).ok()?;
    Some(hex::encode(h.0.finalize()))
}

/// Params that name a path on the host, where `~` means the home directory there (Ansible's
/// modules expand it with the user they run as). `src` is absent: it names a controller file.
const HOST_PATH_PARAMS: &[&str] = &["path", "dest", "creates", "removes", "chdir"];

/// The params with a leading `~` of the host path params expanded to the home directory of the
/// user the task runs as on the host (`$HOME` there, else its passwd entry), or None when no
/// param starts with `~`. One read-only command, only for such tasks.
async fn expand_home_params(params: &Value, host: &Host) -> Result<Option<Value>, ModuleError> {
    let tilde = |v: &Value| v.as_str().is_some_and(|s| s == "~" || s.starts_with("~/"));
    let Some(m) = params.as_object() else { return Ok(None) };
    if !HOST_PATH_PARAMS.iter().any(|k| m.get(*k).is_some_and(tilde)) {
        return Ok(None);
    }
    let out = host.query_sh(r#"printf %s "${HOME:-$(getent passwd "$(id -un)" | cut -d: -f6)}""#).await?;
    let home = out.stdout_str().trim_end_matches('\n').to_string();
    if out.rc != 0 || !home.starts_with('/') {
        return Err(ModuleError::new(format!("cannot expand `~`: no home directory on the host ({})", home.trim())));
    }
    let mut m = m.clone();
    for k in HOST_PATH_PARAMS {
        if let Some(Value::String(s)) = m.get_mut(*k)
            && let Some(rest) = s.strip_prefix('~')
            && (rest.is_empty() || rest.starts_with('/'))
        {
            *s = format!("{}{rest}", home.trim_end_matches('/'));
        }
    }
    Ok(Some(Value::Object(m)))
}

/// `a.b[2]` for messages.
pub fn path_text(path: &[PathSeg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            PathSeg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            PathSeg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

impl ModuleSet for Registry {
    fn add<M: Module>(&mut self, m: M) {
        for a in M::ALIASES {
            self.aliases.insert(a, M::NAME);
        }
        self.modules.insert(M::NAME, Arc::new(Adapter(m)));
    }
}

/// All modules by name.
#[derive(Clone, Default)]
pub struct Registry {
    modules: IndexMap<&'static str, Arc<dyn DynModule>>,
    aliases: IndexMap<&'static str, &'static str>,
}

/// Collections whose FQCN prefix is dropped when looking a module up.
const FQCN_PREFIXES: &[&str] =
    &["ansible.builtin.", "ansible.legacy.", "ansible.posix.", "community.general.", "community.crypto.", "pbr."];

impl Registry {
    /// A registry with the engine's own actions (`debug`, `assert`, `reboot`...: typed params and
    /// docs, run by the executor); modules are added to it.
    pub fn new() -> Registry {
        let mut r = Registry::default();
        for (name, aliases, v) in crate::exec::verbs::all() {
            for a in aliases {
                r.aliases.insert(a, name);
            }
            r.modules.insert(name, v);
        }
        r
    }

    /// A registry with the engine's actions and the modules `register` adds
    /// (`Registry::with(pbr_modules::register)`).
    pub fn with(register: impl FnOnce(&mut Registry)) -> Registry {
        let mut r = Registry::new();
        register(&mut r);
        r
    }

    /// Look a module up by name, alias or FQCN.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn DynModule>> {
        let short = FQCN_PREFIXES.iter().find_map(|p| name.strip_prefix(p)).unwrap_or(name);
        let canon = self.aliases.get(short).copied().unwrap_or(short);
        self.modules.get(canon)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn DynModule>> {
        self.modules.values()
    }

    /// Every accepted short name (canonical and aliases), for "did you mean".
    pub fn names(&self) -> Vec<&'static str> {
        self.modules.keys().chain(self.aliases.keys()).copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_message() {
        let (k, exp) = parse_unknown_field("unknown field `mdoe`, expected one of `path`, `mode`").unwrap();
        assert_eq!(k, "mdoe");
        assert_eq!(exp, vec!["path", "mode"]);
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Typed {
        n: u32,
        #[serde(default)]
        opt: Option<i64>,
        #[serde(default)]
        f: Option<f64>,
        #[serde(default)]
        b: Option<bool>,
        #[serde(default)]
        s: Option<String>,
        #[serde(default)]
        list: Vec<Inner>,
    }
    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Inner {
        size: u64,
    }

    #[test]
    fn scalars_convert_as_ansible_converts_them() {
        let p: Typed = parse_params(&serde_json::json!({
            "n": "5", "opt": " -3 ", "f": "2.5", "b": "yes", "s": 644, "list": [{"size": 1}, {"size": "2"}]
        }))
        .unwrap();
        assert_eq!(
            p,
            Typed {
                n: 5,
                opt: Some(-3),
                f: Some(2.5),
                b: Some(true),
                s: Some("644".into()),
                list: vec![Inner { size: 1 }, Inner { size: 2 }]
            }
        );
        // what does not convert keeps its error and its place
        let e = parse_params::<Typed>(&serde_json::json!({"n": "five"})).unwrap_err();
        assert_eq!(
            (e.path, e.message.as_str()),
            (vec![PathSeg::Key("n".into())], "invalid type: string \"five\", expected u32")
        );
        let e = parse_params::<Typed>(&serde_json::json!({"n": "-1"})).unwrap_err();
        assert!(e.message.contains("expected u32"), "{}", e.message);
        assert!(parse_params::<Typed>(&serde_json::json!({"n": 1, "b": "maybe"})).is_err());
    }
}
