//! The module contract: probe (read only) -> plan (pure) -> apply -> verify.
//!
//! A module states what it wants (typed params), reads what is (probe, on a read-only [`Host`]),
//! and computes the difference as a [`Plan`] in a pure function. The engine owns the rest: check
//! mode stops after the plan, `--diff` renders the plan, "changed" means the plan was not empty,
//! and `--verify` probes again after apply and requires an empty plan. Idempotence and check mode
//! are therefore properties of the engine, not promises each module keeps.

use crate::host::{Host, HostError};
use crate::op::Op;
use crate::yaml::PathSeg;
use async_trait::async_trait;
use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A before/after text, rendered as a unified diff.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Diff {
    /// Header of the old side (e.g. the path, or "before").
    pub before_header: String,
    pub after_header: String,
    pub before: String,
    pub after: String,
}

impl Diff {
    pub fn file(path: &str, before: impl Into<String>, after: impl Into<String>) -> Diff {
        Diff {
            before_header: format!("{path} (before)"),
            after_header: format!("{path} (after)"),
            before: before.into(),
            after: after.into(),
        }
    }

    /// A state diff: one `key: value` line per property.
    pub fn state(what: &str, before: &[(String, String)], after: &[(String, String)]) -> Diff {
        let fmt = |kv: &[(String, String)]| kv.iter().map(|(k, v)| format!("{k}: {v}\n")).collect::<String>();
        Diff {
            before_header: format!("{what} (before)"),
            after_header: format!("{what} (after)"),
            before: fmt(before),
            after: fmt(after),
        }
    }
}

/// What a change does to its object: shown before its words (`+ create /etc/x`), and as `kind`
/// in `--output json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ChangeKind {
    /// Something that did not exist is made (a file, a user, an LV, a link, a package).
    #[serde(rename = "+")]
    Create,
    /// Something that exists changes (content, attributes, state).
    #[default]
    #[serde(rename = "~")]
    Update,
    /// Something that exists goes away.
    #[serde(rename = "-")]
    Remove,
    /// A command that runs whenever the task runs (no state says it is done).
    #[serde(rename = "!")]
    Run,
}

impl ChangeKind {
    pub fn symbol(self) -> &'static str {
        match self {
            ChangeKind::Create => "+",
            ChangeKind::Update => "~",
            ChangeKind::Remove => "-",
            ChangeKind::Run => "!",
        }
    }
}

/// One change a module would make, said in words ("LV pi3 gains an SSD cache").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    pub kind: ChangeKind,
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<Diff>,
}

impl Change {
    /// An update (`~`) of something that exists.
    pub fn new(summary: impl Into<String>) -> Change {
        Change { kind: ChangeKind::Update, summary: summary.into(), diff: None }
    }
    /// Something made (`+`).
    pub fn create(summary: impl Into<String>) -> Change {
        Change { kind: ChangeKind::Create, ..Change::new(summary) }
    }
    /// Something removed (`-`).
    pub fn remove(summary: impl Into<String>) -> Change {
        Change { kind: ChangeKind::Remove, ..Change::new(summary) }
    }
    /// A command run whenever the task runs (`!`).
    pub fn run(summary: impl Into<String>) -> Change {
        Change { kind: ChangeKind::Run, ..Change::new(summary) }
    }
    pub fn with_diff(mut self, diff: Diff) -> Change {
        self.diff = Some(diff);
        self
    }
}

/// The difference between wanted and probed state: the changes said in words, and the ops that
/// make them, run by the engine exactly and in order (see [`crate::op`]). Empty means "ok,
/// nothing to do". One op may make several changes (a file write sets content and mode).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    pub changes: Vec<Change>,
    #[serde(skip)]
    pub ops: Vec<Op>,
}

impl Plan {
    pub fn empty() -> Plan {
        Plan::default()
    }
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
    pub fn push(&mut self, c: Change) {
        self.changes.push(c);
    }
    pub fn with(mut self, c: Change) -> Plan {
        self.changes.push(c);
        self
    }
    /// Add an op that makes the changes pushed.
    pub fn op(&mut self, op: Op) {
        self.ops.push(op);
    }
    /// Append another plan's changes and ops.
    pub fn extend(&mut self, other: Plan) {
        self.changes.extend(other.changes);
        self.ops.extend(other.ops);
    }
}

/// Work a module asks for once per host at the end of the run, however many tasks asked
/// (e.g. regenerate the initramfs, `networkctl reload`). Deduplicated by `key`; never in check mode.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Deferred {
    pub key: String,
    pub description: String,
    pub script: String,
}

/// What apply returns besides "changed".
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Extra fields of the task result (registered with `register:`).
    pub data: Map<String, Value>,
    pub deferred: Vec<Deferred>,
}

/// A module failure. `data` is merged into the registered result.
#[derive(Debug, Clone)]
pub struct ModuleError {
    pub msg: String,
    pub data: Map<String, Value>,
    pub unreachable: bool,
}

impl ModuleError {
    pub fn new(msg: impl Into<String>) -> ModuleError {
        ModuleError { msg: msg.into(), data: Map::new(), unreachable: false }
    }
    pub fn with_data(mut self, data: Map<String, Value>) -> ModuleError {
        self.data = data;
        self
    }
}

impl std::fmt::Display for ModuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl From<HostError> for ModuleError {
    fn from(e: HostError) -> Self {
        ModuleError { msg: e.to_string(), data: Map::new(), unreachable: matches!(e, HostError::Unreachable(_)) }
    }
}

/// Shorthand for `Err(ModuleError::new(..))`.
#[macro_export]
macro_rules! bail {
    ($($t:tt)*) => { return Err($crate::module::ModuleError::new(format!($($t)*))) };
}

/// Controller-side services a module may use: finding and rendering local files.
pub trait Controller: Send + Sync {
    /// Render a template file with the host's variables.
    fn render_file(&self, path: &Path) -> Result<String, String>;
    /// Render a template file with other syntax options than Ansible's defaults.
    fn render_file_with(&self, path: &Path, opts: &crate::template::SyntaxOptions) -> Result<String, String> {
        if *opts == crate::template::SyntaxOptions::default() {
            self.render_file(path)
        } else {
            Err("this controller renders templates with the default syntax only".into())
        }
    }
    /// Render a `template` task's file: besides the host's variables, Ansible's `template_*`
    /// variables (`template_path` is `src` as written, `template_destpath` is `dest`) and
    /// `ansible_managed` unless the host has its own.
    fn render_template(
        &self,
        path: &Path,
        _src: &str,
        _dest: &str,
        opts: &crate::template::SyntaxOptions,
    ) -> Result<String, String> {
        self.render_file_with(path, opts)
    }
}

/// Per-task context handed to modules.
pub struct Ctx<'a> {
    pub check: bool,
    pub diff: bool,
    /// Directories searched for relative `src:` (role dir first, then the playbook's dir).
    pub search: &'a [PathBuf],
    pub controller: &'a dyn Controller,
    /// Keys of the deferred work already queued for this host in this run (by earlier tasks, or
    /// by this task's apply when it is verified): a probe may count that work as done, e.g. an
    /// initramfs regeneration that will run at the end of the run.
    pub queued: &'a [String],
}

impl Ctx<'_> {
    /// Find a controller-side file as Ansible does: absolute as is, else `DIR/SUBDIR/NAME`
    /// then `DIR/NAME` for each search dir (`subdir` is "files" or "templates").
    pub fn find_file(&self, subdir: &str, name: &str) -> Result<PathBuf, ModuleError> {
        let p = Path::new(name);
        if p.is_absolute() {
            return if p.exists() {
                Ok(p.to_path_buf())
            } else {
                Err(ModuleError::new(format!("file not found: {name}")))
            };
        }
        for dir in self.search {
            for cand in [dir.join(subdir).join(name), dir.join(name)] {
                if cand.exists() {
                    return Ok(cand);
                }
            }
        }
        let looked: Vec<String> = self.search.iter().map(|d| d.join(subdir).display().to_string()).collect();
        Err(ModuleError::new(format!("could not find {name} (looked in {})", looked.join(", "))))
    }
}

/// Text for `pbr doc` and lint help. Param descriptions come from the params type's doc comments.
#[derive(Debug, Clone, Default)]
pub struct Doc {
    pub description: &'static str,
    /// YAML task list showing typical use; must lint clean.
    pub examples: &'static str,
}

/// Implemented by each module, in its own file under `modules/`.
#[async_trait]
pub trait Module: Send + Sync + 'static {
    type Params: DeserializeOwned + schemars::JsonSchema + Send + Sync;
    type State: Send + Sync;
    /// Canonical name (`copy`); `ansible.builtin.copy` and other FQCNs resolve to it.
    const NAME: &'static str;
    /// Other names accepted (`service` for `systemd`).
    const ALIASES: &'static [&'static str] = &[];
    /// False for modules whose plan is "run this" every time (command without creates).
    /// `--verify` skips them.
    const CONVERGENT: bool = true;
    /// The result key naming the backup a write made (`backup_file`; Ansible's lineinfile says
    /// `backup`).
    const BACKUP_KEY: &'static str = "backup_file";

    fn doc(&self) -> Doc;

    /// Whether `--verify` applies to these params (default [`Module::CONVERGENT`]): a service
    /// that is `started` converges, one that is `restarted` does not.
    fn convergent(&self, _p: &Self::Params) -> bool {
        Self::CONVERGENT
    }

    /// Checks between params that types cannot express (mutually exclusive keys...).
    /// Lint calls this too.
    fn validate(&self, _p: &Self::Params) -> Result<(), String> {
        Ok(())
    }

    /// Read the host (through a read-only view) and anything on the controller.
    async fn probe(&self, ctx: &Ctx<'_>, p: &Self::Params, host: &Host) -> Result<Self::State, ModuleError>;

    /// Pure: what must change to get from `state` to `p`.
    fn plan(&self, p: &Self::Params, state: &Self::State) -> Result<Plan, ModuleError>;

    /// Make the changes of `plan`. Only called with a non-empty plan, never in check mode. The
    /// default runs the plan's ops exactly, in order, and is the contract: a module whose plan
    /// carries ops has no apply of its own. An own apply may only word the errors of
    /// `run_ops(host, &plan.ops)` (tests/tidy.rs holds every module to that).
    async fn apply(
        &self,
        _ctx: &Ctx<'_>,
        _p: &Self::Params,
        _state: &Self::State,
        plan: &Plan,
        host: &Host,
    ) -> Result<Outcome, ModuleError> {
        if plan.ops.is_empty() {
            return Err(ModuleError::new(format!("{}: the plan has changes but no ops to make them", Self::NAME)));
        }
        crate::op::run_ops(host, &plan.ops).await
    }

    /// Result fields read from the host after the ops ran (e.g. the device bcache made). Read
    /// only; not called in check mode.
    async fn report(
        &self,
        _p: &Self::Params,
        _state: &Self::State,
        _host: &Host,
    ) -> Result<Map<String, Value>, ModuleError> {
        Ok(Map::new())
    }

    /// Result fields reported whatever happened (e.g. `stat` reports the file's metadata).
    fn data(&self, _p: &Self::Params, _state: &Self::State) -> Map<String, Value> {
        Map::new()
    }
}

/// Where a params error is, as a path into the task's params (maps back to a YAML span).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    pub path: Vec<PathSeg>,
    pub message: String,
    /// Set for "unknown field" errors: the unknown key and the keys that were expected.
    pub unknown: Option<(String, Vec<String>)>,
}

/// How the engine is running a task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunMode {
    pub check: bool,
    pub diff: bool,
    pub verify: bool,
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
        let p: M::Params = parse_params(params).map_err(|e| {
            let at = path_text(&e.path);
            ModuleError::new(if at.is_empty() { e.message } else { format!("{at}: {}", e.message) })
        })?;
        self.0.validate(&p).map_err(ModuleError::new)?;
        let probe_host = host.read_only();
        let state = self.0.probe(ctx, &p, &probe_host).await?;
        let plan = self.0.plan(&p, &state)?;
        let mut result = ModuleResult { changed: !plan.is_empty(), digest: plan_digest(&plan), ..Default::default() };
        if mode.check {
            // later tasks on this host probe through what these ops would do
            host.record_planned(&plan.ops);
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

    pub fn add<M: Module>(&mut self, m: M) {
        for a in M::ALIASES {
            self.aliases.insert(a, M::NAME);
        }
        self.modules.insert(M::NAME, Arc::new(Adapter(m)));
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
