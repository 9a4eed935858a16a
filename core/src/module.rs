//! The module contract: probe (read only) -> plan (pure) -> apply -> verify.
//!
//! A module states what it wants (typed params), reads what is (probe, on a read-only [`Host`]),
//! and computes the difference as a [`Plan`] in a pure function. The engine owns the rest: check
//! mode stops after the plan, `--diff` renders the plan, "changed" means the plan was not empty,
//! and `--verify` probes again after apply and requires an empty plan. Idempotence and check mode
//! are therefore properties of the engine, not promises each module keeps.

use crate::host::{Host, HostError, ReadHost};
use crate::op::Op;
use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

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

/// How a template file is read (the `template` module's options; Ansible's defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxOptions {
    /// The first newline after a block tag is removed.
    pub trim_blocks: bool,
    /// Spaces and tabs before a block tag on its line are removed.
    pub lstrip_blocks: bool,
    pub block: (String, String),
    pub variable: (String, String),
    pub comment: (String, String),
}

impl Default for SyntaxOptions {
    fn default() -> Self {
        SyntaxOptions {
            trim_blocks: true,
            lstrip_blocks: false,
            block: ("{%".into(), "%}".into()),
            variable: ("{{".into(), "}}".into()),
            comment: ("{#".into(), "#}".into()),
        }
    }
}

/// Controller-side services a module may use: finding, rendering and decrypting local files.
pub trait Controller: Send + Sync {
    /// Render a template file with the host's variables.
    fn render_file(&self, path: &Path) -> Result<String, String>;
    /// Render a template file with other syntax options than Ansible's defaults.
    fn render_file_with(&self, path: &Path, opts: &SyntaxOptions) -> Result<String, String> {
        if *opts == SyntaxOptions::default() {
            self.render_file(path)
        } else {
            Err("this controller renders templates with the default syntax only".into())
        }
    }
    /// Render a `template` task's file: besides the host's variables, Ansible's `template_*`
    /// variables (`template_path` is `src` as written, `template_destpath` is `dest`) and
    /// `ansible_managed` unless the host has its own.
    fn render_template(&self, path: &Path, _src: &str, _dest: &str, opts: &SyntaxOptions) -> Result<String, String> {
        self.render_file_with(path, opts)
    }
    /// The plain bytes of a controller file's text when it is vault-encrypted (`copy`'s
    /// `decrypt`), `Ok(None)` when it is not. The engine's controller marks what it reveals as
    /// secret, so that no output shows it.
    fn decrypt_vault(&self, text: &str) -> Result<Option<Vec<u8>>, String> {
        if text.starts_with("$ANSIBLE_VAULT;") {
            Err("this controller has no vault passwords".into())
        } else {
            Ok(None)
        }
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

/// Where modules are registered: the engine's `Registry` is one.
pub trait ModuleSet {
    fn add<M: Module>(&mut self, m: M);
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

    /// The task's failure when [`Module::validate`] refuses `msg` at run time (default: the
    /// message alone; a module whose Ansible twin returns more, such as `command`'s `rc`, says).
    fn invalid(&self, msg: String) -> ModuleError {
        ModuleError::new(msg)
    }

    /// Read the host (its reads only: [`ReadHost`]) and anything on the controller.
    async fn probe(&self, ctx: &Ctx<'_>, p: &Self::Params, host: &ReadHost) -> Result<Self::State, ModuleError>;

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
        _host: &ReadHost,
    ) -> Result<Map<String, Value>, ModuleError> {
        Ok(Map::new())
    }

    /// Result fields reported whatever happened (e.g. `stat` reports the file's metadata).
    fn data(&self, _p: &Self::Params, _state: &Self::State) -> Map<String, Value> {
        Map::new()
    }
}
