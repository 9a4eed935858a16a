//! The executor: runs plays over hosts (linear strategy, forks, serial, throttle), evaluates
//! task keywords (when, loop, register, notify, retries...), calls modules through the
//! contract, and reports.

use crate::diag::Diag;
use crate::host::{Become, BecomeMethod, Connection, Host, HostError, Secret};
use crate::inventory::Inventory;
use crate::module::{Controller, Ctx, Deferred, ModuleError, ModuleResult, Registry, RunMode};
use crate::playbook::{Action, LoopSpec, Play, Playbook, Serial, Task};
use crate::report::{HostReport, Reporter, Stats, Status};
use crate::source::Span;
use crate::template::{Scope, Templar, TemplateError};
use crate::transport::local::LocalConnection;
use futures::future::join_all;
use indexmap::{IndexMap, IndexSet};
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex as AsyncMutex, Semaphore};
use verbs::Verb;

mod actions;
mod listing;
mod reboot;
pub(crate) mod verbs;

pub use listing::Listing;

/// What the command line and ansible.cfg set for every host, below the inventory's variables
/// and the playbooks' keywords, as Ansible ranks them.
#[derive(Debug, Clone, Default)]
pub struct ConnDefaults {
    /// The connection where neither the host (`ansible_connection`) nor the play
    /// (`connection:`) names one (`ssh` without it).
    pub connection: Option<String>,
    /// The login user where neither the host (`ansible_user`) nor a `remote_user:` keyword
    /// names one (the local user without it).
    pub remote_user: Option<String>,
    /// The key where the host names none (`ansible_ssh_private_key_file`).
    pub private_key_file: Option<String>,
    /// Become where neither the host (`ansible_become`) nor a `become:` keyword says.
    pub become_: bool,
    /// The become user and method where neither the host nor a keyword names one (root, sudo
    /// without them).
    pub become_user: Option<String>,
    pub become_method: Option<String>,
    /// The SSH password where the host names none (`ansible_password`): `-k`,
    /// `--connection-password-file`.
    pub password: Option<Secret>,
    /// `--ssh-common-args`, `--ssh-extra-args`: where the host sets no `ansible_ssh_common_args`
    /// or `ansible_ssh_extra_args`.
    pub ssh_common_args: Option<String>,
    pub ssh_extra_args: Option<String>,
}

/// When a play that says nothing about `gather_facts` gathers facts (ansible.cfg's `gathering`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Gathering {
    /// Always (Ansible's default).
    #[default]
    Implicit,
    /// Never.
    Explicit,
    /// On the hosts that have no facts yet.
    Smart,
}

/// The keywords that pick a host's connection besides its variables: `connection:` (the
/// play's) and `remote_user:` (the task's, its blocks' or role's, the play's), rendered.
#[derive(Debug, Clone, Default)]
pub(crate) struct Via {
    connection: Option<String>,
    remote_user: Option<String>,
}

/// The variables that name a host's login user, in Ansible's order.
const USER_VARS: [&str; 3] = ["ansible_user", "ansible_ssh_user", "ansible_remote_user"];

/// What the command line decided.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub check: bool,
    pub diff: bool,
    pub verify: bool,
    pub forks: usize,
    pub limit: Option<String>,
    pub tags: Vec<String>,
    pub skip_tags: Vec<String>,
    pub extra_vars: Map<String, Value>,
    pub become_password: Option<Secret>,
    /// ansible.cfg's `gathering` (`ANSIBLE_GATHERING`): whether a play that says nothing about
    /// `gather_facts` gathers.
    pub gathering: Gathering,
    /// `--start-at-task NAME`: the tasks before the first one of that name (or glob) do not run.
    pub start_at_task: Option<String>,
    /// What `-c`, `-u`, `--private-key`, `-b`, `--become-user`, `--become-method` and their
    /// ansible.cfg keys set for every host.
    pub defaults: ConnDefaults,
    pub ssh: crate::transport::ssh::SshGlobals,
    pub retry_files: bool,
    /// Run notified handlers on hosts that failed (`--force-handlers`; the play keyword too).
    pub force_handlers: bool,
    /// Ansible's `jsonfile` fact cache, when ansible.cfg or the environment asks for one.
    pub fact_cache: Option<crate::fact_cache::FactCache>,
    /// `--flush-cache`: forget the cached facts of the hosts the run reaches.
    pub flush_cache: bool,
    /// `pbr apply`: the saved plan each task's plan must match before it applies.
    pub plan: Option<Arc<crate::saved_plan::PlanFile>>,
}

/// How a run ended.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub stats: Vec<(String, Stats)>,
    pub failed_hosts: Vec<String>,
    pub unreachable_hosts: Vec<String>,
}

impl RunSummary {
    /// 0 all ok, 2 a host failed, 3 a host unreachable (and none failed).
    pub fn exit_code(&self) -> i32 {
        if !self.failed_hosts.is_empty() {
            2
        } else if !self.unreachable_hosts.is_empty() {
            3
        } else {
            0
        }
    }
}

/// Per-host state that lives for the whole run.
#[derive(Default)]
struct HostState {
    name: String,
    /// `pbr apply`: where this host is in the saved plan.
    plan_cursor: PlanCursor,
    /// Gathered facts, and facts that modules return (below play vars, as in Ansible).
    facts: Map<String, Value>,
    /// `include_vars` results (above task vars).
    included_vars: Map<String, Value>,
    /// `set_fact` values (above task and included vars, with registered results).
    set_facts: Map<String, Value>,
    /// Registered results.
    registered: Map<String, Value>,
    failed: bool,
    unreachable: bool,
    stats: Stats,
    notified: IndexSet<String>,
    /// Deferred work with the host view (connection, become, environment) of the task that asked.
    deferred: IndexMap<String, (Deferred, Host)>,
    /// `meta: end_host` / end_play.
    ended: bool,
    /// `meta: clear_host_errors` ran (an `always` section then leaves the host unfailed).
    errors_cleared: bool,
    /// The current play's `vars_files` whose names are templates, as this host rendered them.
    play_files_vars: Map<String, Value>,
    /// Registered results and facts that came from a `no_log` task: a task that uses one of
    /// them is `no_log` too, so that a later `debug` does not show what `no_log` hid.
    sensitive: std::collections::HashSet<String>,
    /// In a check run: the paths the ops planned so far would make, change or remove.
    overlay: Arc<std::sync::Mutex<crate::op::Overlay>>,
    /// In a check run: registered results of commands that would run (and so did not), by
    /// name, with the task that registered them.
    unknown_in_check: HashMap<String, String>,
    /// The task running now is `no_log` (its own, inherited, or through [`Self::sensitive`]).
    no_log_now: bool,
    /// The last task that failed on this host (not ignored) and its result: a rescue sees them
    /// as `ansible_failed_task` and `ansible_failed_result`.
    last_failure: Option<(Value, Value)>,
}

/// `pbr apply`: where a host is in the saved plan. A task's entry there is found by its name,
/// its loop item and how many results of that (task, item) the host reported before, all as the
/// plan recorded them (redacted).
#[derive(Default)]
struct PlanCursor {
    /// The loop item of the task running now.
    item: Option<String>,
    /// How many results of each (task, item) the host reported.
    seen: HashMap<(String, Option<String>), usize>,
}

impl PlanCursor {
    /// The saved plan's key for `task` at the current item (both redacted by `redact`, as the
    /// plan recorded them), and how many times the host reported it before.
    fn at(&self, task: String, redact: impl Fn(String) -> String) -> ((String, Option<String>), usize) {
        let key = (redact(task), self.item.clone().map(redact));
        let n = self.seen.get(&key).copied().unwrap_or(0);
        (key, n)
    }

    /// One more result of this (task, item) reported.
    fn count(&mut self, task: String, item: Option<String>) {
        *self.seen.entry((task, item)).or_default() += 1;
    }
}

/// `--start-at-task PATTERN` names this task: its name or `role : name`, exactly or as a glob
/// (as ansible-playbook matches it).
fn starts_at(task: &Task, pattern: &str) -> bool {
    let names = [task.name.clone(), Some(task.display_name())];
    let glob = regex::Regex::new(&format!("^(?:{})$", crate::pyre::glob_to_regex(pattern))).ok();
    names.iter().flatten().any(|n| n == pattern || glob.as_ref().is_some_and(|g| g.is_match(n)))
}

/// What a `no_log` task shows instead of its message.
const NO_LOG_MSG: &str = "the output has been hidden due to 'no_log: true'";

/// Inherited keywords from blocks and includes.
#[derive(Clone, Default)]
struct Inherit {
    when: Vec<Value>,
    vars: Map<String, Value>,
    tags: Vec<String>,
    /// `become`, `remote_user`, `ignore_errors`, `environment`... as the blocks and the play
    /// above set them.
    kw: crate::playbook::Inherited,
    /// The files that dynamic includes entered to get here, each with the span of its include
    /// (outermost first): an include of one of them again is a cycle.
    includes: Vec<(PathBuf, Span)>,
}

pub struct Runner<'a> {
    pub registry: &'a Registry,
    pub templar: Arc<Templar>,
    /// The inventory; `group_by` adds groups to it while the run goes.
    inventory: std::sync::RwLock<Inventory>,
    pub opts: RunOptions,
    pub reporter: Arc<Reporter>,
    conns: AsyncMutex<HashMap<String, Arc<dyn Connection>>>,
    forks: Arc<Semaphore>,
    /// Inventory vars per host and the `groups` map, until a `group_by` changes the inventory.
    inv_vars: std::sync::Mutex<HashMap<String, Arc<Map<String, Value>>>>,
    /// `playbook_dir` of each playbook directory, made absolute once (not per task and host).
    playbook_dirs: std::sync::Mutex<HashMap<PathBuf, Value>>,
    groups_map: std::sync::RwLock<Value>,
    /// Each host's variables from the run so far (facts, included vars, `set_fact`, registered
    /// results), for `hostvars`: updated when a task sets any of them.
    host_runtime: HostRuntime,
    /// Bumped by every change of the inventory during the run (`add_host`, `group_by`).
    inv_changes: std::sync::atomic::AtomicU64,
    /// `{groups}` for the current generation, shared by every host's template context.
    groups_cache: std::sync::Mutex<Option<(u64, minijinja::Value)>>,
    /// `--start-at-task`: set once a task of that name was reached (from the start without it).
    started: std::sync::atomic::AtomicBool,
}

/// A failure inside one host's task run.
struct Fail {
    msg: String,
    data: Map<String, Value>,
    unreachable: bool,
    /// Set for a failure of the engine (a template that cannot render) rather than of the
    /// module: where the task is, for the report (the result's `msg` stays Ansible's words).
    /// `failed_when` and `changed_when` do not judge such a failure, as in Ansible.
    at: Option<String>,
}

impl Fail {
    /// A task failure with this message and no result data.
    fn new(msg: impl Into<String>) -> Fail {
        Fail { at: None, msg: msg.into(), data: Map::new(), unreachable: false }
    }
}

/// A number from a rendered value: a number, or a string that reads as one (`"5"`, `" 2.5 "`).
fn number(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// A number of seconds as a duration, whatever the number: none for a negative one or NaN, and
/// "for ever" past what a `Duration` holds (`Duration::from_secs_f64` panics on those).
fn duration(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        Duration::ZERO
    } else {
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
    }
}

impl From<HostError> for Fail {
    fn from(e: HostError) -> Self {
        Fail::from(ModuleError::from(e))
    }
}

impl From<ModuleError> for Fail {
    fn from(e: ModuleError) -> Self {
        Fail { at: None, msg: e.msg, data: e.data, unreachable: e.unreachable }
    }
}

fn terr(task: &Task, e: TemplateError) -> Fail {
    Fail { at: Some(task.span.location()), msg: e.message, data: Map::new(), unreachable: false }
}

/// Ansible's truthiness of a value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => crate::params::parse_bool(s).unwrap_or(!s.is_empty()),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

struct TaskController<'a> {
    templar: &'a Templar,
    vars: &'a minijinja::Value,
    search: &'a [PathBuf],
}

impl Controller for TaskController<'_> {
    fn render_file(&self, path: &Path) -> Result<String, String> {
        self.render_file_with(path, &crate::template::SyntaxOptions::default())
    }

    fn render_file_with(&self, path: &Path, opts: &crate::template::SyntaxOptions) -> Result<String, String> {
        self.render_with_vars(path, opts, self.vars)
    }

    fn render_template(
        &self,
        path: &Path,
        src: &str,
        dest: &str,
        opts: &crate::template::SyntaxOptions,
    ) -> Result<String, String> {
        let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let full = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        // Python's datetime.fromtimestamp: local time, rounded to the microsecond
        let stamp = |t: std::time::SystemTime| {
            let micros = t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| (d.as_secs_f64() * 1e6).round() as i64);
            chrono::DateTime::from_timestamp_micros(micros)
                .map(|d| d.with_timezone(&chrono::Local).naive_local().format("%Y-%m-%d %H:%M:%S%.6f").to_string())
                .unwrap_or_default()
        };
        let uid = std::os::unix::fs::MetadataExt::uid(&meta);
        let owner = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map_or_else(|| json!(uid), |u| json!(u.name));
        let host = nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
        let template_vars = json!({
            "template_host": host,
            "template_path": src,
            "template_fullpath": full.display().to_string(),
            "template_mtime": meta.modified().map(stamp).unwrap_or_default(),
            "template_uid": owner,
            "template_run_date": stamp(std::time::SystemTime::now()),
            "template_destpath": dest,
        });
        // the template's variables over the host's, and Ansible's default `ansible_managed` under
        // them (the last map wins)
        let merged = minijinja::value::merge_maps([
            to_mj(json!({"ansible_managed": "Ansible managed"})),
            self.vars.clone(),
            to_mj(&template_vars),
        ]);
        self.render_with_vars(path, opts, &merged)
    }

    fn decrypt_vault(&self, text: &str) -> Result<Option<Vec<u8>>, String> {
        if !crate::vault::is_vaulted(text) {
            return Ok(None);
        }
        let plain = crate::vault::decrypt(text).map_err(|e| e.to_string())?;
        // its lines are secrets (diffs show lines)
        for line in String::from_utf8_lossy(&plain).lines().map(str::trim).filter(|l| l.chars().count() >= 6) {
            crate::vault::reveal(line);
        }
        Ok(Some(plain))
    }
}

impl TaskController<'_> {
    fn render_with_vars(
        &self,
        path: &Path,
        opts: &crate::template::SyntaxOptions,
        vars: &minijinja::Value,
    ) -> Result<String, String> {
        let text = crate::source::read_text(path).map_err(|e| match e {
            crate::source::ReadError::NotUtf8(_, m) => m,
            e => format!("cannot read {}: {e}", path.display()),
        })?;
        let scope = Scope { vars, search: self.search };
        self.templar.render_text_with(&text, &scope, opts).map_err(|e| match e.line {
            Some(l) => format!("{}:{l}: {}", path.display(), e.message),
            None => format!("{}: {}", path.display(), e.message),
        })
    }
}

/// One item's outcome within a task on a host.
struct ItemOutcome {
    report: HostReport,
    result: Map<String, Value>,
    changed: bool,
    failed: bool,
    skipped: bool,
    unreachable: bool,
}

impl<'a> Runner<'a> {
    pub fn new(
        registry: &'a Registry,
        templar: Arc<Templar>,
        inventory: Inventory,
        opts: RunOptions,
        reporter: Arc<Reporter>,
    ) -> Runner<'a> {
        let forks = Arc::new(Semaphore::new(opts.forks.max(1)));
        let groups_map = Value::Object(inventory.groups_map());
        let started = std::sync::atomic::AtomicBool::new(opts.start_at_task.is_none());
        Runner {
            registry,
            templar,
            inventory: std::sync::RwLock::new(inventory),
            opts,
            reporter,
            conns: AsyncMutex::new(HashMap::new()),
            forks,
            inv_vars: std::sync::Mutex::new(HashMap::new()),
            playbook_dirs: std::sync::Mutex::new(HashMap::new()),
            groups_map: std::sync::RwLock::new(groups_map),
            inv_changes: std::sync::atomic::AtomicU64::new(0),
            host_runtime: HostRuntime::default(),
            groups_cache: std::sync::Mutex::new(None),
            started,
        }
    }

    /// The inventory as it is now.
    fn inv(&self) -> std::sync::RwLockReadGuard<'_, Inventory> {
        self.inventory.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The `groups` magic variable as it is now.
    fn groups_value(&self) -> Value {
        self.groups_map.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `group_by`: the host joins `group` (made if new, under `parents`), for the plays that
    /// follow; the variables cached from the inventory are read again.
    fn group_by(&self, host: &str, group: &str, parents: &[String]) -> bool {
        let mut inv = self.inventory.write().unwrap_or_else(|e| e.into_inner());
        let changed = inv.add_dynamic(host, group, parents);
        if changed {
            self.inventory_changed(&inv);
        }
        changed
    }

    /// A host's inventory variables with their templates rendered in that host's context
    /// (what `hostvars[h]` shows), cached.
    fn resolved_inv_vars(&self, host: &str) -> Arc<Map<String, Value>> {
        let key = format!("\u{0}resolved\u{0}{host}");
        if let Some(v) = self.inv_vars.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return v.clone();
        }
        let mut m = (*self.inv_host_vars(host)).clone();
        m.insert("inventory_hostname".into(), json!(host));
        m.insert("inventory_hostname_short".into(), json!(host.split('.').next().unwrap_or(host)));
        m.insert("group_names".into(), json!(self.inv().group_names(host)));
        m.insert("groups".into(), self.groups_value());
        self.resolve_vars(&mut m, None);
        // `groups` (every host's name) was there to resolve with; `hostvars` shares one copy
        // of it among all hosts instead of holding N
        m.shift_remove("groups");
        let v = Arc::new(m);
        self.inv_vars.lock().unwrap_or_else(|e| e.into_inner()).insert(key, v.clone());
        v
    }

    /// The inventory's variables for a host (cached).
    fn inv_host_vars(&self, host: &str) -> Arc<Map<String, Value>> {
        let mut c = self.inv_vars.lock().unwrap_or_else(|e| e.into_inner());
        c.entry(host.to_string()).or_insert_with(|| Arc::new(self.inv().host_vars(host))).clone()
    }

    /// Run playbooks in order. Returns the summary (exit code) and writes the recap.
    pub async fn run(&self, playbooks: &[Playbook]) -> Result<RunSummary, Diag> {
        for p in [&self.opts.become_password, &self.opts.defaults.password].into_iter().flatten() {
            self.reporter.add_secret(p.expose());
        }
        let mut states: IndexMap<String, HostState> = IndexMap::new();
        for pb in playbooks {
            for play in &pb.plays {
                self.run_play(play, &mut states).await?;
            }
        }
        // deferred work (initramfs regeneration, reloads): once per host, at the end
        if !self.opts.check {
            self.run_deferred(&mut states).await;
        }
        for conn in self.conns.lock().await.values() {
            conn.close().await;
        }
        let mut summary = RunSummary::default();
        for (h, st) in &states {
            summary.stats.push((h.clone(), st.stats.clone()));
            if st.stats.failed > 0 {
                summary.failed_hosts.push(h.clone());
            } else if st.stats.unreachable > 0 {
                summary.unreachable_hosts.push(h.clone());
            }
        }
        self.reporter.recap(&summary.stats);
        if self.opts.retry_files {
            let bad: Vec<&String> = summary.failed_hosts.iter().chain(&summary.unreachable_hosts).collect();
            if let Some(pb) = playbooks.last() {
                let retry = pb.path.with_extension("retry");
                if bad.is_empty() {
                    let _ = std::fs::remove_file(&retry);
                } else {
                    let text: String = bad.iter().map(|h| format!("{h}\n")).collect();
                    if let Err(e) = std::fs::write(&retry, text) {
                        self.reporter.warning(&format!("could not write {}: {e}", retry.display()));
                    }
                }
            }
        }
        Ok(summary)
    }

    async fn run_deferred(&self, states: &mut IndexMap<String, HostState>) {
        let mut any = false;
        for st in states.values() {
            any |= !st.deferred.is_empty() && !st.unreachable;
        }
        if !any {
            return;
        }
        self.reporter.task_start("deferred work (once per host)", "RUNNING HANDLER", "");
        let futs = states
            .values_mut()
            .filter(|s| !s.deferred.is_empty() && !s.unreachable)
            .map(|st| async move { self.run_host_deferred(st).await });
        join_all(futs).await;
    }

    /// Run one host's deferred work now (at the end of the run, or before a reboot), and forget
    /// it. Steps run in the order they were queued, and a failed one stops the rest (a kernel
    /// command line queued after a regeneration is not written when the regeneration failed).
    /// Returns how many steps failed.
    async fn run_host_deferred(&self, st: &mut HostState) -> usize {
        let _permit = self.forks.acquire().await;
        let mut failed = 0;
        for (d, host) in std::mem::take(&mut st.deferred).into_values() {
            let res = if failed > 0 {
                Err(HostError::Failed("not run: an earlier deferred step failed".into()))
            } else {
                host.run(crate::host::Cmd::new(d.script.clone())).await
            };
            let (status, msg) = match res {
                Ok(o) if o.rc == 0 => (Status::Changed, None),
                Ok(o) => (Status::Failed, Some(format!("`{}` exited {}: {}", d.script, o.rc, o.stderr_str().trim()))),
                Err(e) => (Status::Failed, Some(e.to_string())),
            };
            if status == Status::Failed {
                st.stats.failed += 1;
                failed += 1;
            } else {
                st.stats.changed += 1;
                st.stats.ok += 1;
            }
            self.reporter.host_result(
                &d.description,
                &HostReport {
                    host: st.name.clone(),
                    status,
                    item: Some(d.description.clone()),
                    msg,
                    changes: vec![],
                    data: Map::new(),
                    ignored: false,
                    delegated: None,
                    digest: None,
                },
            );
        }
        failed
    }

    fn select_hosts(&self, play: &Play) -> Result<Vec<String>, Diag> {
        let pattern = if Templar::is_template(&play.hosts) {
            let ctx = to_mj(&self.opts.extra_vars);
            let scope = Scope { vars: &ctx, search: &[] };
            match self.templar.render_str(&play.hosts, &scope) {
                Ok(Value::String(s)) => s,
                Ok(other) => other.to_string(),
                Err(e) => return Err(Diag::error("template", play.span, format!("hosts: {}", e.message))),
            }
        } else {
            play.hosts.clone()
        };
        let mut hosts = self.inv().select(&pattern).map_err(|e| Diag::error("pattern", play.span, e))?;
        if let Some(l) = &self.opts.limit {
            hosts = self.inv().limit(&hosts, l).map_err(|e| Diag::error("limit", Default::default(), e))?;
        }
        Ok(hosts)
    }

    async fn run_play(&self, play: &Play, states: &mut IndexMap<String, HostState>) -> Result<(), Diag> {
        self.reporter.play_start(&play.name);
        let hosts = self.select_hosts(play)?;
        if hosts.is_empty() {
            self.reporter.warning("no hosts matched; skipping this play");
            return Ok(());
        }
        for h in &hosts {
            if !states.contains_key(h) {
                let st = self.new_host_state(h);
                states.insert(h.clone(), st);
            }
        }
        let batches = batches(&hosts, &play.serial);
        for batch in batches {
            // per play, hosts start fresh from `ended`; failures persist across plays
            for h in &batch {
                if let Some(s) = states.get_mut(h) {
                    s.ended = false;
                }
            }
            // vars_files: a name without a template is loaded once for the play; one with a
            // template is rendered per host, with that host's variables (as Ansible does)
            let mut play_vars = play.vars.clone();
            let mut per_host = vec![];
            for (alts, span) in &play.vars_files {
                if alts.iter().any(|f| Templar::is_template(f)) {
                    per_host.push((alts, span));
                    continue;
                }
                if let Some(m) = self.load_vars_files_entry(play, alts, *span, &play_vars)? {
                    play_vars.extend(m);
                }
            }
            for h in &batch {
                let mut own = Map::new();
                if !per_host.is_empty() {
                    let mut hv = (*self.inv_host_vars(h)).clone();
                    hv.extend(play_vars.clone());
                    hv.extend(self.opts.extra_vars.clone());
                    hv.insert("inventory_hostname".into(), json!(h));
                    // variables whose values are templates (`['vars/{{ foo }}.yml', ...]`)
                    self.resolve_vars(&mut hv, None);
                    for (alts, span) in &per_host {
                        if let Some(m) = self.load_vars_files_entry(play, alts, **span, &hv)? {
                            hv.extend(m.clone());
                            own.extend(m);
                        }
                    }
                }
                if let Some(s) = states.get_mut(h) {
                    s.play_files_vars = own;
                }
            }
            let ctx = self.play_ctx(play, play_vars, batch.clone(), hosts.clone());
            // as Ansible: `gathering` decides for a play that says nothing; `smart` also skips
            // the hosts that have facts when the play says yes
            match (play.gather_facts, self.opts.gathering) {
                (Some(false), _) | (None, Gathering::Explicit) => {}
                (_, Gathering::Smart) => self.gather_facts(&ctx, states, true).await,
                _ => self.gather_facts(&ctx, states, false).await,
            }
            let root = Inherit {
                kw: crate::playbook::Inherited {
                    become_: play.become_.clone(),
                    become_user: play.become_user.clone(),
                    become_method: play.become_method.clone(),
                    remote_user: play.remote_user.clone(),
                    environment: play.environment.clone(),
                    check_mode: play.check_mode,
                    ignore_errors: if play.ignore_errors { Some(Value::Bool(true)) } else { None },
                    ..Default::default()
                },
                tags: play.tags.clone(),
                ..Default::default()
            };
            for section in [&play.pre_tasks, &play.tasks, &play.post_tasks] {
                if section.is_empty() {
                    continue;
                }
                if play.strategy == "free" {
                    self.run_free(&ctx, section, &root, states).await;
                } else {
                    self.run_tasks(&ctx, section, &root, states).await;
                    self.flush_handlers(&ctx, &root, states).await;
                }
                if self.play_aborted(&ctx, states) {
                    break;
                }
            }
        }
        Ok(())
    }

    /// `strategy: free`: every host runs the section at its own pace.
    async fn run_free(
        &self,
        ctx: &PlayCtx<'_>,
        tasks: &[Task],
        root: &Inherit,
        states: &mut IndexMap<String, HostState>,
    ) {
        let order: Vec<String> = states.keys().cloned().collect();
        let mut singles: Vec<(String, IndexMap<String, HostState>)> = ctx
            .batch
            .iter()
            .filter_map(|h| states.shift_remove(h).map(|st| (h.clone(), IndexMap::from([(h.clone(), st)]))))
            .collect();
        let futs = singles.iter_mut().map(|(h, m)| async move {
            let sub = self.play_ctx(ctx.play, ctx.vars.clone(), vec![h.clone()], ctx.all_hosts.clone());
            self.run_tasks(&sub, tasks, root, m).await;
            self.flush_handlers(&sub, root, m).await;
        });
        join_all(futs).await;
        for (_, m) in singles {
            states.extend(m);
        }
        states.sort_by_cached_key(|k, _| order.iter().position(|o| o == k).unwrap_or(usize::MAX));
    }

    fn play_aborted(&self, ctx: &PlayCtx, states: &IndexMap<String, HostState>) -> bool {
        let total = ctx.batch.len();
        let bad = ctx.batch.iter().filter(|h| states.get(*h).is_some_and(|s| s.failed || s.unreachable)).count();
        if bad == 0 {
            return false;
        }
        if ctx.play.any_errors_fatal {
            return true;
        }
        match ctx.play.max_fail_percentage {
            Some(p) => (bad as f64) * 100.0 / (total as f64) > p,
            None => bad == total,
        }
    }

    /// One `vars_files` entry (a name, or names of which the first that exists), rendered with
    /// `vars`: its variables, or None when a name uses a variable that is not defined (skipped
    /// with a warning, as Ansible does).
    fn load_vars_files_entry(
        &self,
        play: &Play,
        alts: &[String],
        span: crate::source::Span,
        vars: &Map<String, Value>,
    ) -> Result<Option<Map<String, Value>>, Diag> {
        let mut found = None;
        for f in alts {
            let name = match self.render_simple(f, vars, &play.dir) {
                Ok(n) => n,
                Err(e) if e.undefined.is_some() => {
                    self.reporter.warning(&format!(
                        "skipping vars_files item {} ({}): {}",
                        alts.join(", "),
                        span.location(),
                        e.message
                    ));
                    return Ok(None);
                }
                Err(e) => return Err(Diag::error("template", span, e.message)),
            };
            let p = if Path::new(&name).is_absolute() { PathBuf::from(&name) } else { play.dir.join(&name) };
            // one name is loaded (and a missing one is its error); of a list, the first that exists
            if alts.len() == 1 || p.is_file() {
                found = Some(p);
                break;
            }
        }
        let Some(p) = found else {
            return Err(Diag::error(
                crate::diag::RuleId::MissingFile.as_str(),
                span,
                format!("vars file {} was not found: none of {} exists", alts.join(", "), alts.len()),
            ));
        };
        crate::playbook::load_vars_file(&p, span).map(Some)
    }

    fn render_simple(&self, s: &str, vars: &Map<String, Value>, dir: &Path) -> Result<String, TemplateError> {
        if !Templar::is_template(s) {
            return Ok(s.to_string());
        }
        let mut all = vars.clone();
        all.extend(self.opts.extra_vars.clone());
        let ctx = to_mj(&all);
        let search = [dir.to_path_buf()];
        let scope = Scope { vars: &ctx, search: &search };
        self.templar.render_str(s, &scope).map(|v| match v {
            Value::String(s) => s,
            o => o.to_string(),
        })
    }

    /// An include that could not run fails the host, and a `rescue` sees it as
    /// `ansible_failed_task` and `ansible_failed_result`.
    fn include_failed(&self, task: &Task, st: &mut HostState, msg: String) {
        st.failed = true;
        st.stats.failed += 1;
        let action = match &task.action {
            Action::IncludeRole { .. } => "include_role",
            _ => "include_tasks",
        };
        let shown = json!({"name": task.name.clone().unwrap_or_else(|| action.to_string()), "action": action});
        st.last_failure = Some((shown, json!({"failed": true, "msg": msg.clone()})));
        self.reporter.host_result(&task.display_name(), &HostReport::simple(&st.name, Status::Failed, Some(msg)));
    }

    /// `playbook_dir`: absolute, also for a playbook given as a bare file name (its directory
    /// is then ""), resolved once per directory.
    fn playbook_dir(&self, dir: &Path) -> Value {
        let mut m = self.playbook_dirs.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(dir.to_path_buf())
            .or_insert_with(|| {
                let d = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
                json!(d.canonicalize().unwrap_or(d.to_path_buf()))
            })
            .clone()
    }

    /// A host's state when the run first reaches it: with its cached facts, if there is a
    /// fact cache (or with that cache forgotten, with `--flush-cache`).
    fn new_host_state(&self, host: &str) -> HostState {
        let mut st = HostState { name: host.to_string(), ..Default::default() };
        let Some(cache) = &self.opts.fact_cache else { return st };
        if self.opts.flush_cache {
            if let Err(e) = cache.flush(host) {
                self.reporter.warning(&e);
            }
            return st;
        }
        match cache.load(host) {
            Ok(facts) if !facts.is_empty() => {
                st.add_facts(&facts);
                self.publish_runtime(&st);
            }
            Ok(_) => {}
            Err(e) => self.reporter.warning(&format!("{e} (ignored)")),
        }
        st
    }

    /// Keep facts in the fact cache, if there is one (under their variable names).
    fn cache_facts(&self, host: &str, facts: &Map<String, Value>) {
        if let Some(cache) = &self.opts.fact_cache
            && let Err(e) = cache.store(host, facts)
        {
            self.reporter.warning(&e);
        }
    }

    /// Gathered facts become the host's (as `ansible_<name>` variables and under
    /// `ansible_facts`) and go to the fact cache.
    fn take_gathered_facts(&self, st: &mut HostState, facts: &Map<String, Value>) {
        let vars: Map<String, Value> = facts.iter().map(|(k, v)| (format!("ansible_{k}"), v.clone())).collect();
        st.add_facts(&vars);
        self.cache_facts(&st.name, &vars);
    }

    /// The play's fact gathering; `smart`: only on the hosts that have no facts yet (from an
    /// earlier play or the fact cache).
    async fn gather_facts(&self, ctx: &PlayCtx<'_>, states: &mut IndexMap<String, HostState>, smart: bool) {
        let unknown = |s: &HostState| !smart || !s.facts.contains_key("ansible_facts");
        if !states.values().any(|s| ctx.batch.contains(&s.name) && s.active() && unknown(s)) {
            return;
        }
        self.reporter.task_start("Gathering Facts", "TASK", &ctx.play.span.location());
        let futs = states.values_mut().filter(|s| ctx.batch.contains(&s.name) && s.active() && unknown(s)).map(
            |st| async move {
                let _permit = self.forks.acquire().await;
                let vars = self.connection_vars(ctx, st);
                let via = {
                    let mj = to_mj(&vars);
                    self.via(
                        ctx,
                        None,
                        &Inherit {
                            kw: crate::playbook::Inherited {
                                remote_user: ctx.play.remote_user.clone(),
                                ..Default::default()
                            },
                            ..Default::default()
                        },
                        &Scope { vars: &mj, search: &[] },
                    )
                };
                let res = async {
                    let via = via.map_err(|f| HostError::Unreachable(f.msg))?;
                    let conn = self.connect(&st.name, &vars, &via).await?;
                    let host = Host::new(st.name.clone(), conn, None);
                    crate::facts::gather_subset(&host, ctx.play.gather_subset).await
                }
                .await;
                let report = match res {
                    Ok(facts) => {
                        self.take_gathered_facts(st, &facts);
                        self.publish_runtime(st);
                        st.stats.ok += 1;
                        HostReport::simple(&st.name, Status::Ok, None)
                    }
                    Err(e) => {
                        let unreachable = matches!(e, HostError::Unreachable(_));
                        if unreachable {
                            st.unreachable = true;
                            st.stats.unreachable += 1;
                        } else {
                            st.failed = true;
                            st.stats.failed += 1;
                        }
                        HostReport::simple(
                            &st.name,
                            if unreachable { Status::Unreachable } else { Status::Failed },
                            Some(e.to_string()),
                        )
                    }
                };
                self.reporter.host_result("Gathering Facts", &report);
            },
        );
        join_all(futs).await;
    }

    async fn flush_handlers(&self, ctx: &PlayCtx<'_>, inh: &Inherit, states: &mut IndexMap<String, HostState>) {
        // a name notifies the first handler of that name (as Ansible: a later one of the same
        // name does not run), and a topic every handler that listens to it
        let mut named: std::collections::HashSet<String> = std::collections::HashSet::new();
        for h in &ctx.play.handlers {
            let mut names: Vec<String> = h.listen.clone();
            if let Some(n) = &h.name {
                let mut own = vec![n.clone()];
                if let Some(r) = &h.origin.role {
                    own.push(format!("{} : {n}", r.name));
                }
                for n in own {
                    if named.insert(n.clone()) {
                        names.push(n);
                    }
                }
            }
            // with force_handlers, a host that failed still runs what it was notified of
            let force = self.opts.force_handlers || ctx.play.force_handlers;
            let hosts: Vec<String> = states
                .values()
                .filter(|s| {
                    ctx.batch.contains(&s.name)
                        && (s.active() || force && s.failed && !s.unreachable && !s.ended)
                        && names.iter().any(|n| s.notified.contains(n))
                })
                .map(|s| s.name.clone())
                .collect();
            if hosts.is_empty() {
                continue;
            }
            if let Action::Meta(m) = &h.action {
                Box::pin(self.run_meta(ctx, h, inh, m, states, &hosts)).await;
                continue;
            }
            let failed: Vec<String> =
                hosts.iter().filter(|h| states.get(*h).is_some_and(|s| s.failed)).cloned().collect();
            for f in &failed {
                if let Some(s) = states.get_mut(f) {
                    s.failed = false;
                }
            }
            self.run_one(ctx, h, inh, states, &hosts, "RUNNING HANDLER").await;
            for f in &failed {
                if let Some(s) = states.get_mut(f) {
                    s.failed = true;
                }
            }
        }
        for s in states.values_mut() {
            if ctx.batch.contains(&s.name) {
                s.notified.clear();
            }
        }
    }

    fn run_tasks<'s>(
        &'s self,
        ctx: &'s PlayCtx<'s>,
        tasks: &'s [Task],
        inh: &'s Inherit,
        states: &'s mut IndexMap<String, HostState>,
    ) -> futures::future::BoxFuture<'s, ()> {
        Box::pin(async move {
            for task in tasks {
                let active: Vec<String> = states
                    .values()
                    .filter(|s| ctx.batch.contains(&s.name) && s.active())
                    .map(|s| s.name.clone())
                    .collect();
                if active.is_empty() || self.play_aborted(ctx, states) {
                    return;
                }
                if !matches!(task.action, Action::Block { .. }) && !self.reached(task) {
                    continue;
                }
                match &task.action {
                    Action::Block { block, rescue, always } => {
                        let mut child = inh.clone();
                        merge_inherit(&mut child, task);
                        if !self.tags_allow_block(task, &child) {
                            continue;
                        }
                        let before: Vec<String> =
                            states.values().filter(|s| s.failed).map(|s| s.name.clone()).collect();
                        self.run_tasks(ctx, block, &child, states).await;
                        let newly_failed: Vec<String> = states
                            .values()
                            .filter(|s| s.failed && !before.contains(&s.name) && active.contains(&s.name))
                            .map(|s| s.name.clone())
                            .collect();
                        if !rescue.is_empty() && !newly_failed.is_empty() {
                            for h in &newly_failed {
                                if let Some(s) = states.get_mut(h) {
                                    s.failed = false;
                                    s.stats.failed = s.stats.failed.saturating_sub(1);
                                    s.stats.rescued += 1;
                                    // what failed, for the rescue (and after it, as Ansible's
                                    // non-persistent facts)
                                    if let Some((t, r)) = s.last_failure.take() {
                                        s.set_facts.insert("ansible_failed_task".into(), t);
                                        s.set_facts.insert("ansible_failed_result".into(), r);
                                        if s.no_log_now {
                                            s.sensitive.insert("ansible_failed_result".into());
                                        }
                                    }
                                }
                            }
                            // rescue runs only on the hosts that failed
                            let others: Vec<String> =
                                active.iter().filter(|h| !newly_failed.contains(h)).cloned().collect();
                            for h in &others {
                                if let Some(s) = states.get_mut(h) {
                                    s.ended = true;
                                }
                            }
                            self.run_tasks(ctx, rescue, &child, states).await;
                            for h in &others {
                                if let Some(s) = states.get_mut(h) {
                                    s.ended = false;
                                }
                            }
                        }
                        if !always.is_empty() {
                            // always runs for every host that entered the block, failed or not
                            let failed_now: Vec<String> = active
                                .iter()
                                .filter(|h| states.get(*h).is_some_and(|s| s.failed && !s.unreachable))
                                .cloned()
                                .collect();
                            for h in &failed_now {
                                if let Some(s) = states.get_mut(h) {
                                    s.failed = false;
                                    s.errors_cleared = false;
                                }
                            }
                            self.run_tasks(ctx, always, &child, states).await;
                            // failed again after `always`, unless it cleared the host's errors
                            for h in &failed_now {
                                if let Some(s) = states.get_mut(h) {
                                    s.failed |= !s.errors_cleared;
                                    s.errors_cleared = false;
                                }
                            }
                        }
                    }
                    Action::Meta(m) => self.run_meta(ctx, task, inh, m, states, &active).await,
                    Action::IncludeTasks { .. } | Action::IncludeRole { .. } => {
                        self.run_include(ctx, task, inh, states, &active).await;
                    }
                    // tags select tasks; a handler they notify runs whatever its own tags (as
                    // Ansible), so the check is here, not in run_one
                    Action::Module { .. } if self.tags_allow(ctx, task, inh) => {
                        self.run_one(ctx, task, inh, states, &active, "TASK").await;
                    }
                    Action::Module { .. } => {}
                }
            }
        })
    }

    async fn run_meta(
        &self,
        ctx: &PlayCtx<'_>,
        task: &Task,
        inh: &Inherit,
        m: &str,
        states: &mut IndexMap<String, HostState>,
        active: &[String],
    ) {
        match m {
            "flush_handlers" => self.flush_handlers(ctx, inh, states).await,
            "noop" | "refresh_inventory" | "reset_connection" => {}
            "clear_host_errors" => {
                for s in states.values_mut() {
                    s.failed = false;
                    s.errors_cleared = true;
                }
            }
            "end_play" | "end_host" | "end_batch" => {
                // `when` applies per host for end_host
                for h in active {
                    let Some(st) = states.get(h) else { continue };
                    let vars = self.task_vars(ctx, task, inh, st);
                    let vctx = self.mj(ctx, task, &vars);
                    let search = task.origin.search_dirs();
                    let scope = Scope { vars: &vctx, search: &search };
                    let all_when: Vec<Value> = inh.when.iter().chain(task.when.iter()).cloned().collect();
                    if self.eval_conds(&all_when, &scope).unwrap_or(false) {
                        if m == "end_host" {
                            if let Some(s) = states.get_mut(h) {
                                s.ended = true;
                            }
                        } else {
                            for s in states.values_mut() {
                                if ctx.batch.contains(&s.name) {
                                    s.ended = true;
                                }
                            }
                            return;
                        }
                    }
                }
            }
            other => self.reporter.warning(&format!("meta: `{other}` is not supported; ignored ({})", task.span)),
        }
    }

    async fn run_include(
        &self,
        ctx: &PlayCtx<'_>,
        task: &Task,
        inh: &Inherit,
        states: &mut IndexMap<String, HostState>,
        active: &[String],
    ) {
        // include_tasks/include_role: loaded per distinct (rendered) file; hosts where `when` is
        // false skip it.
        // with a loop, once per item (the item, and its index with `index_var`, are variables of
        // the included tasks); hosts with the same file and item run it together, items in order
        // (file, item as JSON) -> (the item's variables, hosts)
        type Groups = IndexMap<(String, String), (Map<String, Value>, Vec<String>)>;
        let mut groups: Groups = IndexMap::new();
        let mut failures = Vec::new();
        let search = task.origin.search_dirs();
        for h in active {
            let Some(st) = states.get(h) else { continue };
            let base = self.task_vars(ctx, task, inh, st);
            let items: Vec<Option<(usize, Value)>> = match &task.loop_ {
                None => vec![None],
                Some(spec) => {
                    let vctx = self.mj(ctx, task, &base);
                    match self.loop_items(spec, &Scope { vars: &vctx, search: &search }) {
                        Ok(list) => list.into_iter().enumerate().map(Some).collect(),
                        Err(e) => {
                            failures.push((h.clone(), e.message));
                            continue;
                        }
                    }
                }
            };
            let loop_var = self.loop_var_name(ctx, task, &base, &search);
            for it in items {
                let mut extra = Map::new();
                if let Some((i, x)) = it {
                    extra.insert(loop_var.clone(), x);
                    if let Some(iv) = &task.loop_control.index_var {
                        extra.insert(iv.clone(), json!(i));
                    }
                }
                let mut vars = base.clone();
                vars.extend(extra.clone());
                let vctx = self.mj(ctx, task, &vars);
                let scope = Scope { vars: &vctx, search: &search };
                let all_when: Vec<Value> = inh.when.iter().chain(task.when.iter()).cloned().collect();
                match self.eval_conds(&all_when, &scope) {
                    Ok(false) => continue,
                    Err(e) => {
                        failures.push((h.clone(), e.message));
                        break;
                    }
                    Ok(true) => {}
                }
                let key = match &task.action {
                    Action::IncludeTasks { file, .. } => self.templar.render_str(file, &scope).map(|v| match v {
                        Value::String(s) => s,
                        o => o.to_string(),
                    }),
                    // the role's name and tasks file may be templates (`name: "{{ item }}"`)
                    Action::IncludeRole { name, tasks_from, .. } => {
                        let render = |t: &str| {
                            self.templar.render_str(t, &scope).map(|v| match v {
                                Value::String(s) => s,
                                o => o.to_string(),
                            })
                        };
                        render(name)
                            .and_then(|n| Ok(format!("{n}\u{0}{}", render(tasks_from.as_deref().unwrap_or(""))?)))
                    }
                    _ => Ok(String::new()),
                };
                match key {
                    Ok(k) => {
                        let id = (k, Value::Object(extra.clone()).to_string());
                        groups.entry(id).or_insert_with(|| (extra, vec![])).1.push(h.clone());
                    }
                    Err(e) => {
                        failures.push((h.clone(), e.message));
                        break;
                    }
                }
            }
        }
        for (h, msg) in failures {
            if let Some(st) = states.get_mut(&h) {
                self.include_failed(task, st, msg);
            }
        }
        // the chain of files that led here, ending with the one this include is in: loading one
        // of them again is a recursion, which a `when:` must end before MAX_INCLUDE_DEPTH (the
        // error then names each step of the loop)
        let mut chain = inh.includes.clone();
        if let Some(own) = task.span.path().map(|p| crate::playbook::canonical(&p))
            && !chain.iter().any(|(p, _)| *p == own)
        {
            chain.push((own, Span::none()));
        }
        for ((key, _), (extra, hosts)) in groups {
            let mut entered = None;
            let loaded = {
                let is_module = |n: &str| self.registry.contains(n);
                let mut loader = crate::playbook::Loader {
                    is_module: &is_module,
                    stack: chain.clone(),
                    reentrant: chain.len(),
                    recovered: vec![],
                };
                let r = match &task.action {
                    Action::IncludeTasks { .. } => {
                        let base = match &task.origin.role {
                            Some(r) => r.path.join("tasks"),
                            None => {
                                task.span.path().and_then(|p| p.parent().map(Path::to_path_buf)).unwrap_or_default()
                            }
                        };
                        let p = if Path::new(&key).is_absolute() { PathBuf::from(&key) } else { base.join(&key) };
                        let p = if p.exists() { p } else { task.origin.playbook_dir.join(&key) };
                        entered = Some(crate::playbook::canonical(&p));
                        loader.load_task_file(&p, &task.origin, task.span)
                    }
                    Action::IncludeRole { .. } => {
                        let (name, tasks_from) = key.split_once('\u{0}').unwrap_or((key.as_str(), ""));
                        let tasks_from = Some(tasks_from).filter(|t| !t.is_empty());
                        let dir = &task.origin.playbook_dir;
                        entered = crate::playbook::role_tasks_file(name, tasks_from, dir)
                            .map(|p| crate::playbook::canonical(&p));
                        loader
                            .load_role(
                                name,
                                tasks_from,
                                task.vars.clone(),
                                Map::new(),
                                dir,
                                task.span,
                                task.origin.role.as_ref(),
                            )
                            .map(|(_, t, _)| t)
                    }
                    _ => Ok(vec![]),
                };
                // a task of the included file that did not load fails the include
                match r {
                    Ok(_) if !loader.recovered.is_empty() => Err(loader.recovered.remove(0)),
                    other => other,
                }
            };
            match loaded {
                Ok(sub) => {
                    let mut child = inh.clone();
                    merge_inherit(&mut child, task);
                    child.includes = chain.clone();
                    if let Some(e) = entered {
                        child.includes.push((e, task.span));
                    }
                    child.when.clear(); // already evaluated
                    child.vars.extend(extra);
                    let sub_ctx = self.play_ctx(ctx.play, ctx.vars.clone(), hosts.clone(), ctx.all_hosts.clone());
                    self.run_tasks(&sub_ctx, &sub, &child, states).await;
                }
                Err(d) => {
                    for h in hosts {
                        if let Some(st) = states.get_mut(&h) {
                            self.include_failed(task, st, d.to_string());
                        }
                    }
                }
            }
        }
    }

    /// A task's tags with its block's and role's; a templated one (`tags: "{{ the_tags }}"`)
    /// rendered with the play's and the extra variables, as Ansible does.
    fn task_tags(&self, ctx: &PlayCtx, task: &Task, inh: &Inherit) -> Vec<String> {
        let mut out = vec![];
        let mut vctx = None;
        for t in task.tags.iter().chain(inh.tags.iter()) {
            if !Templar::is_template(t) {
                out.push(t.clone());
                continue;
            }
            let vctx = vctx.get_or_insert_with(|| {
                let mut vars = ctx.vars.clone();
                vars.extend(self.opts.extra_vars.clone());
                crate::template::from_json(&Value::Object(vars))
            });
            match self.templar.render_str(t, &Scope { vars: vctx, search: &[] }) {
                Ok(Value::Array(a)) => out.extend(a.iter().map(value_label)),
                Ok(Value::String(s)) => out.extend(s.split(',').map(|x| x.trim().to_string())),
                Ok(v) => out.push(value_label(&v)),
                Err(_) => out.push(t.clone()),
            }
        }
        out
    }

    /// `--start-at-task`: whether the run has reached `task` (it is the one, or came after it).
    fn reached(&self, task: &Task) -> bool {
        use std::sync::atomic::Ordering;
        if self.started.load(Ordering::SeqCst) {
            return true;
        }
        let hit = self.opts.start_at_task.as_deref().is_some_and(|p| starts_at(task, p));
        if hit {
            self.started.store(true, Ordering::SeqCst);
        }
        hit
    }

    /// `--start-at-task`: whether some task of the playbooks (outside dynamic includes, which
    /// load when reached) has that name; a run that would reach none is refused.
    pub fn start_task_exists(&self, playbooks: &[Playbook]) -> bool {
        fn any(tasks: &[Task], p: &str) -> bool {
            tasks.iter().any(|t| match &t.action {
                Action::Block { block, rescue, always } => any(block, p) || any(rescue, p) || any(always, p),
                _ => starts_at(t, p),
            })
        }
        let Some(p) = self.opts.start_at_task.as_deref() else { return true };
        playbooks
            .iter()
            .flat_map(|pb| &pb.plays)
            .any(|pl| [&pl.pre_tasks, &pl.tasks, &pl.post_tasks].iter().any(|t| any(t, p)))
    }

    fn tags_allow(&self, ctx: &PlayCtx, task: &Task, inh: &Inherit) -> bool {
        self.tags_select(&self.task_tags(ctx, task, inh), task)
    }

    /// Whether `--tags` and `--skip-tags` select a task with these tags (its own and inherited).
    fn tags_select(&self, owned: &[String], task: &Task) -> bool {
        let mut tags: Vec<&str> = owned.iter().map(String::as_str).collect();
        if tags.contains(&"always") && !self.opts.skip_tags.iter().any(|t| t == "always") {
            return true;
        }
        if self.opts.skip_tags.iter().any(|s| tags.contains(&s.as_str()) || (s == "tagged" && !tags.is_empty())) {
            return false;
        }
        if self.opts.tags.is_empty() || self.opts.tags.iter().any(|t| t == "all") {
            return !tags.contains(&"never");
        }
        tags.retain(|t| *t != "never" || self.opts.tags.iter().any(|x| x == "never"));
        self.opts.tags.iter().any(|t| {
            tags.contains(&t.as_str()) || (t == "tagged" && !tags.is_empty()) || (t == "untagged" && tags.is_empty())
        }) || task.tags.iter().any(|t| t == "never" && self.opts.tags.contains(t))
    }

    fn tags_allow_block(&self, task: &Task, inh: &Inherit) -> bool {
        // a block is entered unless skip-tags excludes it; its tasks are filtered one by one
        let tags: Vec<&str> = task.tags.iter().chain(inh.tags.iter()).map(String::as_str).collect();
        !self.opts.skip_tags.iter().any(|s| tags.contains(&s.as_str()))
    }

    /// Run a module task (or handler) on the given hosts concurrently.
    async fn run_one(
        &self,
        ctx: &PlayCtx<'_>,
        task: &Task,
        inh: &Inherit,
        states: &mut IndexMap<String, HostState>,
        hosts: &[String],
        kind: &str,
    ) {
        let name = task.display_name();
        self.reporter.task_start(&name, kind, &task.span.location());
        let throttle = task
            .throttle
            .as_ref()
            .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
            .map(|n| n as usize)
            .or(ctx.play.throttle)
            .filter(|n| *n > 0);
        let throttle_sem = throttle.map(|n| Arc::new(Semaphore::new(n)));
        let run_once = task.run_once;
        let targets: Vec<String> = if run_once { hosts.iter().take(1).cloned().collect() } else { hosts.to_vec() };
        self.reporter.progress_start(&name, &targets);
        let futs = states.values_mut().filter(|s| targets.contains(&s.name)).map(|st| {
            let throttle_sem = throttle_sem.clone();
            let name = name.clone();
            async move {
                let _permit = self.forks.acquire().await;
                let _t = match &throttle_sem {
                    Some(s) => Some(s.acquire().await),
                    None => None,
                };
                let out = self.run_task_on_host(ctx, task, inh, st).await;
                self.reporter.progress_done(&st.name);
                (st.name.clone(), out, name)
            }
        });
        let results = join_all(futs).await;
        self.reporter.progress_end();
        if run_once {
            // share the registered result with every host of the batch
            if let (Some(reg), Some((h, _, _))) = (&task.register, results.first())
                && let Some(v) = states.get(h).and_then(|s| s.registered.get(reg)).cloned()
            {
                let sensitive = states.get(h).is_some_and(|s| s.sensitive.contains(reg));
                for s in states.values_mut() {
                    if hosts.contains(&s.name) {
                        s.registered.insert(reg.clone(), v.clone());
                        if sensitive {
                            s.sensitive.insert(reg.clone());
                        }
                        self.publish_runtime(s);
                    }
                }
            }
        }
    }

    /// Everything for one task on one host: loop, when, args, module, retries, register.
    async fn run_task_on_host(&self, ctx: &PlayCtx<'_>, task: &Task, inh: &Inherit, st: &mut HostState) {
        let task_name = task.display_name();
        let search = task.origin.search_dirs();
        st.no_log_now = task.no_log || inh.kw.no_log || self.uses_sensitive(task, st);
        // the task's own `ignore_errors`, else its blocks', role entry's or play's
        let base_vars = self.task_vars(ctx, task, inh, st);
        let ignore = match task.ignore_errors.as_ref().or(inh.kw.ignore_errors.as_ref()) {
            Some(Value::String(t)) if Templar::is_template(t) => {
                let vctx = self.mj(ctx, task, &base_vars);
                let scope = Scope { vars: &vctx, search: &search };
                self.templar.render_str(t, &scope).map(|v| truthy(&v)).unwrap_or(false)
            }
            Some(v) => truthy(v),
            None => false,
        };
        // the loop items
        let items: Option<Vec<Value>> = match &task.loop_ {
            None => None,
            Some(spec) => {
                let vctx = self.mj(ctx, task, &base_vars);
                let scope = Scope { vars: &vctx, search: &search };
                // a false `when` that does not use the loop var skips the whole task (Ansible
                // evaluates per item; the result is the same for item-independent conditions)
                match self.loop_items(spec, &scope) {
                    Ok(v) => Some(v),
                    // a loop over something undefined under a `when` that is false without it
                    // (`when: x is defined`) is skipped, as in Ansible
                    Err(_)
                        if {
                            let all_when: Vec<Value> = inh.when.iter().chain(task.when.iter()).cloned().collect();
                            !all_when.is_empty() && matches!(self.eval_conds(&all_when, &scope), Ok(false))
                        } =>
                    {
                        let o = self.run_item(ctx, task, inh, st, &base_vars, None, &search).await;
                        self.finish_host(task, st, vec![o], None, ignore, &task_name);
                        return;
                    }
                    Err(e) => {
                        let mut o = self.fail_outcome(st, terr(task, e), None);
                        if st.no_log_now {
                            self.censor(&mut o);
                        }
                        self.finish_host(task, st, vec![o], None, ignore, &task_name);
                        return;
                    }
                }
            }
        };
        let loop_var = self.loop_var_name(ctx, task, &base_vars, &search);
        let mut outcomes = Vec::new();
        match &items {
            None => {
                let o = self.run_item(ctx, task, inh, st, &base_vars, None, &search).await;
                outcomes.push(o);
            }
            Some(list) => {
                let n = list.len();
                // a set_fact (or include_vars) in a loop sees what its earlier items set, as in
                // Ansible (`acc: "{{ acc + [item] }}"` accumulates)
                let sets_vars = matches!(&task.action, Action::Module { name, .. }
                    if matches!(crate::playbook::short_name(name), "set_fact" | "include_vars"));
                for (i, item) in list.iter().enumerate() {
                    let mut vars =
                        if sets_vars && i > 0 { self.task_vars(ctx, task, inh, st) } else { base_vars.clone() };
                    vars.insert(loop_var.clone(), item.clone());
                    vars.insert("ansible_loop_var".into(), json!(loop_var));
                    if let Some(iv) = &task.loop_control.index_var {
                        vars.insert(iv.clone(), json!(i));
                    }
                    if task.loop_control.extended {
                        // previtem and nextitem only where there is one (undefined at the ends)
                        let mut l = json!({"index": i + 1, "index0": i, "first": i == 0, "last": i + 1 == n,
                                   "length": n, "revindex": n - i, "revindex0": n - i - 1});
                        if i > 0 {
                            l["previtem"] = list[i - 1].clone();
                        }
                        if let Some(next) = list.get(i + 1) {
                            l["nextitem"] = next.clone();
                        }
                        if !task.loop_control.no_allitems {
                            l["allitems"] = Value::Array(list.clone());
                        }
                        vars.insert("ansible_loop".into(), l);
                    }
                    let o = self.run_item(ctx, task, inh, st, &vars, Some((item, &vars)), &search).await;
                    let stop = o.unreachable;
                    outcomes.push(o);
                    if stop {
                        break;
                    }
                    if let Some(p) = task.loop_control.pause {
                        tokio::time::sleep(duration(p)).await;
                    }
                }
            }
        }
        self.finish_host(task, st, outcomes, items.as_ref().map(|_| ()), ignore, &task_name);
    }

    /// `pbr apply`: one more result of this task and item reported on the host (as the saved
    /// plan recorded them: redacted).
    fn count_planned(&self, st: &mut HostState, task_name: &str, item: Option<&str>) {
        if self.opts.plan.is_some() {
            let r = &self.reporter;
            st.plan_cursor.count(r.redact(task_name.to_string()), item.map(|i| r.redact(i.to_string())));
        }
    }

    fn fail_outcome(&self, st: &HostState, f: Fail, item: Option<String>) -> ItemOutcome {
        let mut result = f.data.clone();
        // a command that ran and failed changed something, as Ansible's command reports it (an
        // ignored failure then counts as changed in the recap)
        let ran = !f.unreachable && f.data.contains_key("rc") && f.data.contains_key("cmd");
        result.insert("changed".into(), json!(ran));
        result.insert("failed".into(), json!(true));
        result.insert("msg".into(), json!(f.msg));
        // a failed command says why: its exit code and the tail of its stderr
        let mut msg = match &f.at {
            Some(at) => format!("{} (task at {at})", f.msg),
            None => f.msg,
        };
        if let Some(err) = f.data.get("stderr").and_then(Value::as_str).map(str::trim).filter(|e| !e.is_empty()) {
            let lines: Vec<&str> = err.lines().collect();
            let tail = lines[lines.len().saturating_sub(5)..].join("\n");
            let rc = f.data.get("rc").map(|rc| format!(" (rc={rc})")).unwrap_or_default();
            msg = format!("{msg}{rc}: {tail}");
        }
        ItemOutcome {
            report: HostReport {
                host: st.name.clone(),
                status: if f.unreachable { Status::Unreachable } else { Status::Failed },
                item,
                msg: Some(msg),
                changes: vec![],
                data: f.data,
                ignored: false,
                delegated: None,
                digest: None,
            },
            result,
            changed: ran,
            failed: !f.unreachable,
            skipped: false,
            unreachable: f.unreachable,
        }
    }

    /// The context changed_when, failed_when and until judge a result in: the task's variables
    /// with the result as its registered variable and its keys as variables of their own.
    fn result_ctx(
        &self,
        ctx: &PlayCtx,
        task: &Task,
        vars: &Map<String, Value>,
        result: &Map<String, Value>,
    ) -> minijinja::Value {
        let mut v = vars.clone();
        if let Some(reg) = &task.register {
            v.insert(reg.clone(), Value::Object(result.clone()));
        }
        for (k, x) in result {
            v.entry(k.clone()).or_insert(x.clone());
        }
        self.mj(ctx, task, &v)
    }

    /// `loop_control.loop_var` (default `item`), rendered when it is a template.
    fn loop_var_name(&self, ctx: &PlayCtx, task: &Task, vars: &Map<String, Value>, search: &[PathBuf]) -> String {
        match &task.loop_control.loop_var {
            None => "item".into(),
            Some(v) if Templar::is_template(v) => {
                let vctx = self.mj(ctx, task, vars);
                self.templar
                    .render_str(v, &Scope { vars: &vctx, search })
                    .map(|r| value_label(&r))
                    .unwrap_or_else(|_| v.clone())
            }
            Some(v) => v.clone(),
        }
    }

    /// Publish what the run has set on the host (facts, included vars, `set_fact`, registered
    /// results) for `hostvars`.
    fn publish_runtime(&self, st: &HostState) {
        let mut m = st.facts.clone();
        m.extend(st.included_vars.clone());
        m.extend(st.set_facts.clone());
        m.extend(st.registered.clone());
        self.host_runtime.write().unwrap_or_else(|e| e.into_inner()).insert(st.name.clone(), Arc::new(m));
    }

    /// Record stats, register, notify, print.
    fn finish_host(
        &self,
        task: &Task,
        st: &mut HostState,
        outcomes: Vec<ItemOutcome>,
        looped: Option<()>,
        ignore: bool,
        task_name: &str,
    ) {
        let publishes = task.register.is_some() || outcomes.iter().any(|o| o.result.contains_key("ansible_facts"));
        let changed = outcomes.iter().any(|o| o.changed);
        let failed = outcomes.iter().any(|o| o.failed);
        let unreachable = outcomes.iter().any(|o| o.unreachable);
        // a loop over no items is skipped, as in Ansible
        let skipped = (looped.is_some() || !outcomes.is_empty()) && outcomes.iter().all(|o| o.skipped);
        if looped.is_some() && outcomes.is_empty() {
            let r = HostReport::simple(&st.name, Status::Skipped, Some("No items in the list".into()));
            self.reporter.host_result(task_name, &r);
            self.count_planned(st, task_name, None);
        }
        let mut outcomes = outcomes;
        for o in &mut outcomes {
            if o.failed && ignore {
                o.report.ignored = true;
            }
            // every result that ran says whether it failed (`when: r.failed`), as Ansible's do
            if !o.skipped && !o.unreachable && !o.result.contains_key("failed") {
                o.result.insert("failed".into(), json!(o.failed));
            }
            self.reporter.host_result(task_name, &o.report);
            self.count_planned(st, task_name, o.report.item.as_deref());
        }
        // register
        if let Some(reg) = &task.register {
            let v = if looped.is_some() {
                let results: Vec<Value> = outcomes.iter().map(|o| Value::Object(o.result.clone())).collect();
                let mut v = json!({"changed": changed, "failed": failed, "results": results,
                       "msg": if failed { "One or more items failed" } else { "All items completed" }});
                // `skipped` only when every item was (as Ansible's loop result has it)
                if skipped {
                    v["skipped"] = json!(true);
                }
                v
            } else {
                outcomes.first().map(|o| Value::Object(o.result.clone())).unwrap_or(json!({}))
            };
            st.registered.insert(reg.clone(), v);
            if st.no_log_now {
                st.sensitive.insert(reg.clone());
            } else {
                st.sensitive.remove(reg);
            }
            // a command that would run: its output is not known in check mode
            if self.opts.check && outcomes.iter().any(would_run) {
                st.unknown_in_check.insert(reg.clone(), task_name.to_string());
            } else {
                st.unknown_in_check.remove(reg);
            }
        }
        if publishes {
            self.publish_runtime(st);
        }
        if unreachable && !task.ignore_unreachable {
            st.unreachable = true;
            st.stats.unreachable += 1;
            return;
        }
        if failed {
            if ignore {
                st.stats.ignored += 1;
                st.stats.ok += 1;
            } else {
                st.failed = true;
                st.stats.failed += 1;
                let result = if looped.is_some() {
                    let results: Vec<Value> = outcomes.iter().map(|o| Value::Object(o.result.clone())).collect();
                    json!({"changed": changed, "failed": true, "results": results,
                           "msg": "One or more items failed"})
                } else {
                    outcomes.first().map(|o| Value::Object(o.result.clone())).unwrap_or(json!({}))
                };
                let action = match &task.action {
                    Action::Module { name, .. } => name.clone(),
                    _ => String::new(),
                };
                let shown = json!({"name": task.name.clone().unwrap_or_else(|| action.clone()), "action": action});
                st.last_failure = Some((shown, result));
                return;
            }
        } else if skipped {
            st.stats.skipped += 1;
            return;
        } else {
            st.stats.ok += 1;
        }
        if changed {
            st.stats.changed += 1;
            // an ignored failure counts as changed but notifies nothing, as in Ansible
            if !failed {
                for n in &task.notify {
                    st.notified.insert(n.clone());
                }
            }
        }
    }

    /// Build the variables for a task on a host, in Ansible's precedence order (lowest first).
    ///
    /// What the run learned from hosts (facts, registered results) and what `set_fact` already
    /// rendered is data, never templated again: a command's output reading `{{ x }}` stays that
    /// text, as in Ansible (its unsafe results; 2.19's untrusted values). The variables written
    /// in playbooks, roles and inventories are templates, rendered when used.
    fn task_vars(&self, ctx: &PlayCtx, task: &Task, inh: &Inherit, st: &HostState) -> Map<String, Value> {
        let mut v = Map::new();
        // the keys whose value, at this point of the layering, is data
        let mut data: HashSet<String> = HashSet::new();
        // a layer of variables over the ones below it; `is_data` says what its values are
        let layer = |v: &mut Map<String, Value>, data: &mut HashSet<String>, l: &Map<String, Value>, is_data: bool| {
            for (k, x) in l {
                if is_data {
                    data.insert(k.clone());
                } else {
                    data.remove(k);
                }
                v.insert(k.clone(), x.clone());
            }
        };
        const TEMPLATES: bool = false;
        const DATA: bool = true;
        // the defaults and vars of the play's roles (with their dependencies) are visible to
        // every task of the play, as Ansible's (not private) role variables; the task's own
        // role's win
        for r in &ctx.play.roles {
            v.extend(r.defaults.clone());
        }
        if let Some(r) = &task.origin.role {
            v.extend(r.defaults.clone());
        }
        v.extend(self.inv_host_vars(&st.name).iter().map(|(k, x)| (k.clone(), x.clone())));
        layer(&mut v, &mut data, &st.facts, DATA);
        layer(&mut v, &mut data, &ctx.vars, TEMPLATES);
        layer(&mut v, &mut data, &st.play_files_vars, TEMPLATES);
        for r in &ctx.play.roles {
            layer(&mut v, &mut data, &r.vars, TEMPLATES);
        }
        if let Some(r) = &task.origin.role {
            layer(&mut v, &mut data, &r.vars, TEMPLATES);
        }
        layer(&mut v, &mut data, &inh.vars, TEMPLATES);
        layer(&mut v, &mut data, &task.vars, TEMPLATES);
        layer(&mut v, &mut data, &st.included_vars, TEMPLATES);
        layer(&mut v, &mut data, &st.set_facts, DATA);
        layer(&mut v, &mut data, &st.registered, DATA);
        layer(&mut v, &mut data, &task.origin.role_params, TEMPLATES);
        layer(&mut v, &mut data, &self.opts.extra_vars, TEMPLATES);
        // magic variables; `ansible_facts` is there before any gathering, empty, as in Ansible
        if !v.contains_key("ansible_facts") {
            v.insert("ansible_facts".into(), json!({}));
            data.insert("ansible_facts".into());
        }
        let short = st.name.split('.').next().unwrap_or(&st.name).to_string();
        v.insert("inventory_hostname".into(), json!(st.name));
        v.insert("inventory_hostname_short".into(), json!(short));
        v.insert("group_names".into(), json!(self.inv().group_names(&st.name)));
        v.insert("playbook_dir".into(), self.playbook_dir(&task.origin.playbook_dir));
        v.insert("ansible_search_path".into(), json!(task.origin.search_dirs()));
        if let Some(r) = &task.origin.role {
            if !r.parents.is_empty() {
                v.insert("ansible_parent_role_names".into(), json!(r.parents.iter().map(|p| &p.0).collect::<Vec<_>>()));
                v.insert("ansible_parent_role_paths".into(), json!(r.parents.iter().map(|p| &p.1).collect::<Vec<_>>()));
            }
            v.insert("role_name".into(), json!(r.name));
            v.insert("ansible_role_name".into(), json!(r.name));
            v.insert("role_path".into(), json!(r.path));
        }
        self.resolve_vars_but(&mut v, Some(&self.shared_vars(ctx, task)), &data);
        v
    }

    /// The variables that pick a host's connection outside a task (fact gathering): the same
    /// sources and precedence as [`Self::task_vars`] without the task's own (inventory, facts,
    /// play vars, extra vars), so facts come over exactly the connection the tasks use.
    fn connection_vars(&self, ctx: &PlayCtx, st: &HostState) -> Map<String, Value> {
        let mut v = Map::new();
        v.extend(self.inv_host_vars(&st.name).iter().map(|(k, x)| (k.clone(), x.clone())));
        v.extend(st.facts.clone());
        v.extend(ctx.vars.clone());
        v.extend(st.included_vars.clone());
        v.extend(st.set_facts.clone());
        v.extend(self.opts.extra_vars.clone());
        let short = st.name.split('.').next().unwrap_or(&st.name).to_string();
        v.insert("inventory_hostname".into(), json!(st.name));
        v.insert("inventory_hostname_short".into(), json!(short));
        v.insert("group_names".into(), json!(self.inv().group_names(&st.name)));
        self.resolve_vars(&mut v, Some(&ctx.magic));
        v
    }

    /// The play context for `batch`, with its magic variables built once.
    fn play_ctx<'p>(
        &self,
        play: &'p Play,
        vars: Map<String, Value>,
        batch: Vec<String>,
        all: Vec<String>,
    ) -> PlayCtx<'p> {
        let mut m = Map::new();
        m.insert("groups".into(), self.groups_value());
        m.insert("play_hosts".into(), json!(batch));
        m.insert("ansible_play_hosts".into(), json!(batch));
        m.insert("ansible_play_batch".into(), json!(batch));
        m.insert("ansible_play_hosts_all".into(), json!(all));
        m.insert("ansible_check_mode".into(), json!(self.opts.check));
        m.insert("ansible_diff_mode".into(), json!(self.opts.diff));
        m.insert(
            "ansible_run_tags".into(),
            json!(if self.opts.tags.is_empty() { vec!["all".to_string()] } else { self.opts.tags.clone() }),
        );
        m.insert("ansible_skip_tags".into(), json!(self.opts.skip_tags));
        m.insert(
            "ansible_version".into(),
            json!({"full": env!("CARGO_PKG_VERSION"), "string": env!("CARGO_PKG_VERSION")}),
        );
        m.insert("omit".into(), json!(crate::template::OMIT));
        m.insert("role_names".into(), json!(play.role_names));
        m.insert("ansible_play_role_names".into(), json!(play.role_names));
        m.insert("ansible_dependent_role_names".into(), json!(play.dependent_role_names));
        let mut all_roles = play.role_names.clone();
        all_roles.extend(play.dependent_role_names.iter().filter(|r| !play.role_names.contains(r)).cloned());
        m.insert("ansible_role_names".into(), json!(all_roles));
        PlayCtx {
            play,
            vars,
            batch,
            all_hosts: all,
            magic: to_mj(&m),
            generation: self.inv_generation(),
            hostvars: std::sync::Mutex::new(None),
        }
    }

    /// The variables every host of the play shares (magic variables, and `hostvars` for tasks
    /// that mention it), as one template value.
    fn shared_vars(&self, ctx: &PlayCtx, task: &Task) -> minijinja::Value {
        // a template file is not the task's text: it may use hostvars without the task saying so
        let template = matches!(&task.action, Action::Module { name, .. }
            if crate::playbook::short_name(name) == "template");
        // after add_host or group_by, `groups` is the inventory's now, as in Ansible
        let generation = self.inv_generation();
        let magic = if generation == ctx.generation {
            ctx.magic.clone()
        } else {
            minijinja::value::merge_maps([ctx.magic.clone(), self.groups_overlay(generation)])
        };
        if !template && !self.task_mentions(task, "hostvars") {
            return magic;
        }
        let mut cached = ctx.hostvars.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((g, hv)) = cached.as_ref()
            && *g == generation
        {
            return minijinja::value::merge_maps([magic, hv.clone()]);
        }
        let hv = {
            // each host's variables over one shared `groups` (O(hosts), not O(hosts²))
            use std::collections::BTreeMap;
            let groups = minijinja::Value::from(BTreeMap::from([("groups", to_mj(self.groups_value()))]));
            let names: Vec<String> = self.inv().hosts.keys().cloned().collect();
            let one = |h: &str| {
                let own = to_mj(&*self.resolved_inv_vars(h));
                // what the run set on the host wins over its inventory variables
                let runtime = minijinja::Value::from_object(RuntimeVars {
                    store: self.host_runtime.clone(),
                    host: h.to_string(),
                });
                minijinja::value::merge_maps([own, groups.clone(), runtime])
            };
            let hosts: BTreeMap<String, minijinja::Value> = names.iter().map(|h| (h.clone(), one(h))).collect();
            // `hostvars['localhost']` answers for the implicit localhost, which `hostvars`
            // does not list (as in Ansible)
            let implicit = self.inv().is_implicit_localhost("localhost").then(|| one("localhost"));
            let hv = minijinja::Value::from_object(Hostvars { hosts, implicit });
            minijinja::Value::from(BTreeMap::from([("hostvars", hv)]))
        };
        *cached = Some((generation, hv.clone()));
        minijinja::value::merge_maps([magic, hv])
    }

    /// How many times `add_host` or `group_by` changed the inventory during the run.
    fn inv_generation(&self) -> u64 {
        self.inv_changes.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// `{groups: ...}` of the inventory at this generation (built once per generation).
    fn groups_overlay(&self, generation: u64) -> minijinja::Value {
        let mut cached = self.groups_cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((g, v)) = cached.as_ref()
            && *g == generation
        {
            return v.clone();
        }
        let v = to_mj(json!({"groups": self.groups_value()}));
        *cached = Some((generation, v.clone()));
        v
    }

    /// After the inventory changed: new `groups`, host variables and generation.
    fn inventory_changed(&self, inv: &Inventory) {
        *self.groups_map.write().unwrap_or_else(|e| e.into_inner()) = Value::Object(inv.groups_map());
        self.inv_vars.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.inv_changes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// The template context of a task on a host: the shared variables over the host's `vars`
    /// (magic variables win, as in Ansible; in `merge_maps` the last map wins).
    fn mj(&self, ctx: &PlayCtx, task: &Task, vars: &Map<String, Value>) -> minijinja::Value {
        let own = to_mj(vars);
        // Ansible's `vars` (every variable by name), for tasks that may use it (a template file
        // may, without the task saying so)
        if self.task_mentions(task, "vars") || self.task_mentions(task, "template") {
            let all = minijinja::Value::from(std::collections::BTreeMap::from([("vars", own.clone())]));
            return minijinja::value::merge_maps([own, self.shared_vars(ctx, task), all]);
        }
        minijinja::value::merge_maps([own, self.shared_vars(ctx, task)])
    }

    fn task_mentions(&self, task: &Task, word: &str) -> bool {
        // cheap textual check on the task's source
        match task.span.path().and_then(|_| crate::source::source(task.span.src)) {
            Some(src) => src.text.get(task.span.start..task.span.end).is_some_and(|t| t.contains(word)),
            None => true,
        }
    }

    /// Vars whose values are templates are rendered (vars may refer to vars), to a fixpoint.
    /// A var that cannot be rendered is removed so that using it reports it undefined.
    fn resolve_vars(&self, vars: &mut Map<String, Value>, shared: Option<&minijinja::Value>) {
        self.resolve_vars_but(vars, shared, &HashSet::new());
    }

    /// [`Self::resolve_vars`], leaving the values of `data` as they are.
    fn resolve_vars_but(
        &self,
        vars: &mut Map<String, Value>,
        shared: Option<&minijinja::Value>,
        data: &HashSet<String>,
    ) {
        let mut pending: Vec<String> =
            vars.iter().filter(|(k, v)| !data.contains(*k) && has_template(v)).map(|(k, _)| k.clone()).collect();
        if pending.is_empty() {
            return;
        }
        // what each pending var refers to: a var is rendered once none of those is pending (a
        // `x is defined` of a var still pending must not read as false)
        let refs_of: HashMap<String, Vec<String>> = pending
            .iter()
            .map(|k| {
                let mut r = Vec::new();
                if let Some(v) = vars.get(k) {
                    self.template_refs(v, &mut r);
                }
                (k.clone(), r)
            })
            .collect();
        for _ in 0..(pending.len() + 8) {
            let ctx_vars: Map<String, Value> =
                vars.iter().filter(|(k, _)| !pending.contains(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
            let ctx = match shared {
                Some(sh) => minijinja::value::merge_maps([to_mj(&ctx_vars), sh.clone()]),
                None => to_mj(&ctx_vars),
            };
            let scope = Scope { vars: &ctx, search: &[] };
            let ready: Vec<String> = pending
                .iter()
                .filter(|k| refs_of.get(*k).is_none_or(|r| r.iter().all(|x| x == *k || !pending.contains(x))))
                .cloned()
                .collect();
            // a cycle: try them all (an error keeps a var pending)
            let batch = if ready.is_empty() { pending.clone() } else { ready };
            let mut progressed = false;
            let mut still: Vec<String> = pending.iter().filter(|k| !batch.contains(k)).cloned().collect();
            for k in batch {
                let raw = vars.get(&k).cloned().unwrap_or(Value::Null);
                match self.templar.render_value(&raw, &scope) {
                    Ok(v) => {
                        vars.insert(k, v);
                        progressed = true;
                    }
                    Err(_) => still.push(k),
                }
            }
            pending = still;
            if pending.is_empty() || !progressed {
                break;
            }
        }
        if pending.is_empty() {
            return;
        }
        // a var defined through itself (directly or through others) never resolves: record the
        // cycle, so that a use of it names the recursion rather than an undefined variable
        let refs: HashMap<String, Vec<String>> = pending
            .iter()
            .map(|k| {
                let mut r = Vec::new();
                if let Some(v) = vars.get(k) {
                    self.template_refs(v, &mut r);
                }
                r.retain(|x| pending.contains(x));
                (k.clone(), r)
            })
            .collect();
        let mut recursive = Map::new();
        for k in &pending {
            if let Some(cycle) = find_cycle(k, &refs) {
                let chain = cycle.join(" → ");
                let why = if cycle.first() == Some(k) {
                    format!("'{k}' is defined through itself ({chain})")
                } else {
                    format!("'{k}' uses a variable defined through itself ({chain})")
                };
                recursive.insert(k.clone(), Value::String(why));
            }
        }
        for k in pending {
            // keep it out so that a use names it undefined, with the reason
            vars.remove(&k);
        }
        if !recursive.is_empty() {
            match vars.get_mut(crate::template::RECURSIVE_VARS) {
                Some(Value::Object(m)) => m.extend(recursive),
                _ => {
                    vars.insert(crate::template::RECURSIVE_VARS.into(), Value::Object(recursive));
                }
            }
        }
    }

    /// The variables the templates inside `v` refer to.
    fn template_refs(&self, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.extend(self.templar.referenced_vars(s).unwrap_or_default()),
            Value::Array(a) => a.iter().for_each(|x| self.template_refs(x, out)),
            Value::Object(m) => m.values().for_each(|x| self.template_refs(x, out)),
            _ => {}
        }
    }

    fn eval_conds(&self, conds: &[Value], scope: &Scope) -> Result<bool, TemplateError> {
        for c in conds {
            let ok = match c {
                Value::Bool(b) => *b,
                Value::String(s) => self.templar.eval_bool(s, scope)?,
                Value::Null => true,
                other => truthy(other),
            };
            if !ok {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn loop_items(&self, spec: &LoopSpec, scope: &Scope) -> Result<Vec<Value>, TemplateError> {
        let render = |v: &Value| -> Result<Value, TemplateError> {
            match v {
                Value::String(s) if Templar::is_template(s) => self.templar.render_str(s, scope),
                other => self.templar.render_value(other, scope),
            }
        };
        let bad = |what: &str, v: &Value| TemplateError {
            message: format!("{what} needs a list, got {}", short_json(v)),
            undefined: None,
            line: None,
        };
        Ok(match spec {
            LoopSpec::Items { value, flatten, lookup } => match render(value)? {
                Value::Array(a) => {
                    if *flatten {
                        a.into_iter().flat_map(|x| if let Value::Array(i) = x { i } else { vec![x] }).collect()
                    } else {
                        a
                    }
                }
                Value::Null => vec![],
                Value::String(s) if *flatten => vec![Value::String(s)],
                other if *lookup => vec![other],
                other => return Err(bad("loop", &other)),
            },
            LoopSpec::Dict(v) => match render(v)? {
                Value::Object(m) => m.into_iter().map(|(k, v)| json!({"key": k, "value": v})).collect(),
                other => {
                    return Err(TemplateError {
                        message: format!(
                            "the 'dict' lookup plugin expects a dictionary, got {} (with_dict)",
                            short_json(&other)
                        ),
                        undefined: None,
                        line: None,
                    });
                }
            },
            LoopSpec::Fileglob(v) => {
                let pats = match render(v)? {
                    Value::Array(a) => a,
                    other => vec![other],
                };
                let mut out = Vec::new();
                for p in pats {
                    let p = p.as_str().unwrap_or_default().to_string();
                    let full = if Path::new(&p).is_absolute() {
                        p
                    } else {
                        scope.search.first().map(|d| d.join("files").join(&p).display().to_string()).unwrap_or(p)
                    };
                    if let Ok(paths) = glob::glob(&full) {
                        for e in paths.flatten() {
                            if e.is_file() {
                                out.push(json!(e.display().to_string()));
                            }
                        }
                    }
                }
                out
            }
            LoopSpec::Subelements(v) => {
                let args = match render(v)? {
                    Value::Array(a) => a,
                    other => return Err(bad("with_subelements", &other)),
                };
                let (list, key) = match (args.first(), args.get(1).and_then(Value::as_str)) {
                    (Some(Value::Array(l)), Some(k)) => (l.clone(), k.to_string()),
                    _ => return Err(bad("with_subelements ([list, key])", &Value::Array(args))),
                };
                let skip_missing = args.get(2).and_then(|f| f.get("skip_missing")).is_some_and(truthy);
                let fail = |message: String| TemplateError { message, undefined: None, line: None };
                // Ansible's subelements: a dotted key descends through mappings; the list is
                // taken out of the element (item.0 no longer has it); a missing key fails
                // unless skip_missing
                let path: Vec<&str> = key.split('.').collect();
                let mut out = Vec::new();
                for mut e in list {
                    if !e.is_object() {
                        return Err(fail(format!("subelements lookup expects a dictionary, got {}", short_json(&e))));
                    }
                    if e.get("skipped").is_some_and(|s| s != &Value::Bool(false)) {
                        continue;
                    }
                    let mut cur = &e;
                    let mut present = true;
                    for (i, k) in path.iter().enumerate() {
                        let last = i + 1 == path.len();
                        match cur.get(*k) {
                            None if skip_missing => {
                                present = false;
                                break;
                            }
                            None => return Err(fail(format!("could not find '{k}' key in iterated item"))),
                            Some(n) if last && !n.is_array() => {
                                return Err(fail(format!("the key {k} should point to a list, got {}", short_json(n))));
                            }
                            Some(_) if last => {}
                            Some(n) if n.is_object() => cur = n,
                            Some(_) if skip_missing => {
                                present = false;
                                break;
                            }
                            Some(n) => {
                                return Err(fail(format!(
                                    "the key {k} should point to a dictionary, got {}",
                                    short_json(n)
                                )));
                            }
                        }
                    }
                    let mut found = None;
                    if present && let Some((last, parents)) = path.split_last() {
                        let ptr: String =
                            parents.iter().map(|k| format!("/{}", k.replace('~', "~0").replace('/', "~1"))).collect();
                        found = e.pointer_mut(&ptr).and_then(Value::as_object_mut).and_then(|m| m.remove(*last));
                    }
                    if let Some(Value::Array(subs)) = found {
                        for s in subs {
                            out.push(json!([e.clone(), s]));
                        }
                    }
                }
                out
            }
            LoopSpec::Nested(v) => {
                let lists = match render(v)? {
                    Value::Array(a) => a,
                    other => return Err(bad("with_nested", &other)),
                };
                let mut acc: Vec<Vec<Value>> = vec![vec![]];
                for l in lists {
                    let l = match l {
                        Value::Array(a) => a,
                        o => vec![o],
                    };
                    acc = acc
                        .into_iter()
                        .flat_map(|p| l.iter().map(move |x| [p.clone(), vec![x.clone()]].concat()))
                        .collect();
                }
                acc.into_iter().map(Value::Array).collect()
            }
            LoopSpec::Together(v) => {
                let lists: Vec<Vec<Value>> = match render(v)? {
                    Value::Array(a) => {
                        a.into_iter().map(|l| if let Value::Array(x) = l { x } else { vec![l] }).collect()
                    }
                    other => return Err(bad("with_together", &other)),
                };
                let n = lists.iter().map(Vec::len).max().unwrap_or(0);
                (0..n)
                    .map(|i| Value::Array(lists.iter().map(|l| l.get(i).cloned().unwrap_or(Value::Null)).collect()))
                    .collect()
            }
            LoopSpec::Sequence(v) => match render(v)? {
                Value::String(s) => crate::template::sequence(&s)
                    .map_err(|message| TemplateError { message, undefined: None, line: None })?
                    .into_iter()
                    .map(Value::String)
                    .collect(),
                other => return Err(bad("with_sequence (start=N end=M)", &other)),
            },
            LoopSpec::IndexedItems(v) => match render(v)? {
                Value::Array(a) => a
                    .into_iter()
                    .flat_map(|x| if let Value::Array(i) = x { i } else { vec![x] })
                    .enumerate()
                    .map(|(i, x)| json!([i, x]))
                    .collect(),
                // Ansible's words
                _ => {
                    return Err(TemplateError {
                        message: "with_indexed_items expects a list".into(),
                        undefined: None,
                        line: None,
                    });
                }
            },
            LoopSpec::Flattened(v) => {
                fn flat(v: Value, out: &mut Vec<Value>) {
                    match v {
                        Value::Array(a) => a.into_iter().for_each(|x| flat(x, out)),
                        x => out.push(x),
                    }
                }
                let mut out = vec![];
                flat(render(v)?, &mut out);
                out
            }
            // `with_first_found: terms` is `query('first_found', terms)`: the lookup does it
            LoopSpec::FirstFound(v) => {
                let terms = to_mj(json!({ "__pbr_terms": render(v)? }));
                let vars = minijinja::value::merge_maps([scope.vars.clone(), terms]);
                let q = Scope { vars: &vars, search: scope.search };
                match self.templar.render_str("{{ query('first_found', __pbr_terms) }}", &q)? {
                    Value::Array(a) => a,
                    other => return Err(bad("with_first_found", &other)),
                }
            }
        })
    }

    fn become_from_vars(
        &self,
        vars: &Map<String, Value>,
        inh: &Inherit,
        task: Option<&Task>,
        scope: &Scope,
    ) -> Result<Option<Become>, String> {
        // `become_user: "{{ app_user }}"` and the like are templates, as in Ansible
        let render = |what: &str, s: String| -> Result<String, String> {
            if !Templar::is_template(&s) {
                return Ok(s);
            }
            match self.templar.render_str(&s, scope) {
                Ok(Value::String(v)) => Ok(v),
                Ok(v) => Ok(value_label(&v)),
                Err(e) => Err(format!("{what}: {e}")),
            }
        };
        let kw_become = task.and_then(|t| t.become_.clone()).or_else(|| inh.kw.become_.clone());
        let on = match vars.get("ansible_become") {
            Some(v) => truthy(v),
            None => kw_become.as_ref().map(truthy).unwrap_or(self.opts.defaults.become_),
        };
        if !on {
            return Ok(None);
        }
        let user = vars
            .get("ansible_become_user")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| task.and_then(|t| t.become_user.clone()))
            .or_else(|| inh.kw.become_user.clone())
            .or_else(|| self.opts.defaults.become_user.clone())
            .unwrap_or_else(|| "root".into());
        let user = render("become_user", user)?;
        let method_s = vars
            .get("ansible_become_method")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| task.and_then(|t| t.become_method.clone()))
            .or_else(|| inh.kw.become_method.clone())
            .or_else(|| self.opts.defaults.become_method.clone())
            .unwrap_or_else(|| "sudo".into());
        let method_s = render("become_method", method_s)?;
        let method = BecomeMethod::parse(&method_s)
            .ok_or_else(|| format!("unsupported become_method `{method_s}` (sudo, su, doas)"))?;
        let password = match vars.get("ansible_become_password").or_else(|| vars.get("ansible_become_pass")) {
            Some(Value::String(p)) => Some(Secret::new(render("ansible_become_password", p.clone())?)),
            _ => self.opts.become_password.clone(),
        };
        if let Some(p) = &password {
            self.reporter.add_secret(p.expose());
        }
        Ok(Some(Become { method, user, password }))
    }

    /// The connection's kind, the host and its login user: the key of the run's connection
    /// cache.
    fn conn_key(&self, name: &str, vars: &Map<String, Value>, via: &Via) -> String {
        let kind = vars
            .get("ansible_connection")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| via.connection.clone())
            .or_else(|| self.opts.defaults.connection.clone())
            .unwrap_or_else(|| "ssh".into());
        let user = self.login_user(vars, via).unwrap_or_default();
        format!("{kind}\u{0}{name}\u{0}{user}")
    }

    /// The login user as Ansible ranks its sources: the host's `ansible_user` (and its
    /// synonyms), else a `remote_user:` keyword, else `-u` or ansible.cfg (`None`: the local
    /// user, which the transport picks).
    fn login_user(&self, vars: &Map<String, Value>, via: &Via) -> Option<String> {
        USER_VARS
            .iter()
            .find_map(|k| vars.get(*k))
            .map(value_label)
            .or_else(|| via.remote_user.clone())
            .or_else(|| self.opts.defaults.remote_user.clone())
    }

    /// A host's connection variables with what keywords and the command line set where the host
    /// sets nothing: its login user (`remote_user:`, then `-u`) and key (`--private-key`).
    fn with_defaults<'v>(&self, vars: &'v Map<String, Value>, via: &Via) -> std::borrow::Cow<'v, Map<String, Value>> {
        // the user a keyword or the command line gives, where the host names none
        let user = self.login_user(vars, via).filter(|_| !USER_VARS.iter().any(|k| vars.contains_key(*k)));
        let d = &self.opts.defaults;
        let unset = |keys: &[&str]| !keys.iter().any(|k| vars.contains_key(*k));
        let mut more: Vec<(&str, String)> = vec![];
        if let Some(u) = user {
            more.push(("ansible_user", u));
        }
        if let Some(k) = &d.private_key_file
            && unset(&["ansible_ssh_private_key_file", "ansible_private_key_file"])
        {
            more.push(("ansible_ssh_private_key_file", k.clone()));
        }
        if let Some(p) = &d.password
            && unset(&["ansible_password", "ansible_ssh_pass", "ansible_ssh_password"])
        {
            more.push(("ansible_password", p.expose().to_string()));
        }
        for (key, given) in
            [("ansible_ssh_common_args", &d.ssh_common_args), ("ansible_ssh_extra_args", &d.ssh_extra_args)]
        {
            if let Some(a) = given
                && unset(&[key])
            {
                more.push((key, a.clone()));
            }
        }
        if more.is_empty() {
            return std::borrow::Cow::Borrowed(vars);
        }
        let mut v = vars.clone();
        for (k, x) in more {
            v.insert(k.into(), json!(x));
        }
        std::borrow::Cow::Owned(v)
    }

    /// The connection keywords of a task (its own, its blocks' and role's, the play's), rendered.
    fn via(&self, ctx: &PlayCtx, task: Option<&Task>, inh: &Inherit, scope: &Scope) -> Result<Via, Fail> {
        let remote_user = match task.and_then(|t| t.remote_user.as_ref()).or(inh.kw.remote_user.as_ref()) {
            Some(u) if Templar::is_template(u) => Some(
                self.templar
                    .render_str(u, scope)
                    .map(|v| value_label(&v))
                    .map_err(|e| Fail::new(format!("remote_user: {}", e.message)))?,
            ),
            Some(u) => Some(u.clone()),
            None => None,
        };
        Ok(Via { connection: ctx.play.connection.clone(), remote_user })
    }

    /// The connection for a host, made on first use and kept for the run.
    async fn connect(
        &self,
        name: &str,
        vars: &Map<String, Value>,
        via: &Via,
    ) -> Result<Arc<dyn Connection>, HostError> {
        let key = self.conn_key(name, vars, via);
        let kind = key.split('\u{0}').next().unwrap_or("ssh").to_string();
        {
            let conns = self.conns.lock().await;
            if let Some(c) = conns.get(&key) {
                return Ok(c.clone());
            }
        }
        // a new connection: with what keywords and the command line set
        let vars = self.with_defaults(vars, via);
        let vars = vars.as_ref();
        let conn: Arc<dyn Connection> = match kind.as_str() {
            "local" => Arc::new(LocalConnection::new()),
            "ssh" | "smart" | "paramiko" | "pbr.ssh" => {
                let opts = crate::transport::ssh::SshOptions::from_vars(name, vars, &self.opts.ssh)
                    .map_err(HostError::Unreachable)?;
                Arc::new(crate::transport::ssh::SshConnection::connect(&opts).await?)
            }
            other => return Err(HostError::Unreachable(format!("unsupported connection `{other}` (local, ssh)"))),
        };
        let mut conns = self.conns.lock().await;
        Ok(conns.entry(key).or_insert(conn).clone())
    }

    /// One item of a task on a host; with `no_log`, everything but the status is hidden.
    #[allow(clippy::too_many_arguments)]
    async fn run_item(
        &self,
        ctx: &PlayCtx<'_>,
        task: &Task,
        inh: &Inherit,
        st: &mut HostState,
        vars: &Map<String, Value>,
        item: Option<(&Value, &Map<String, Value>)>,
        search: &[PathBuf],
    ) -> ItemOutcome {
        let mut out = self.run_item_shown(ctx, task, inh, st, vars, item, search).await;
        if out.failed
            && let Some((name, from)) = self.unknown_in_check(task, inh, st, out.report.msg.as_deref().unwrap_or(""))
        {
            // neither a failure nor a guess: the run will know, check mode cannot
            let msg = format!(
                "would run; result unknown in check mode (`{name}` is registered by \"{from}\", a command that \
                 check mode does not run)"
            );
            let mut result = Map::new();
            result.insert("changed".into(), json!(false));
            result.insert("skipped".into(), json!(true));
            result.insert("skip_reason".into(), json!(msg));
            out = simple_outcome(&st.name, Status::Skipped, Some(msg), result);
        }
        if st.no_log_now {
            self.censor(&mut out);
            // facts set by a no_log task are as secret as its result
            if let Some(Value::Object(f)) = out.result.get("ansible_facts") {
                st.sensitive.extend(f.keys().cloned());
            }
        }
        out
    }

    /// In a check run, for a task that failed on an undefined value: the registered result it
    /// uses (in its args, loop, `when` or `debug` var) that comes from a command check mode did
    /// not run, with the task that registered it.
    fn unknown_in_check(&self, task: &Task, inh: &Inherit, st: &HostState, msg: &str) -> Option<(String, String)> {
        if st.unknown_in_check.is_empty() || !msg.contains("undefined") {
            return None;
        }
        let mut names = self.task_refs(task);
        for w in inh.when.iter().chain(&task.when) {
            if let Value::String(c) = w {
                names.extend(self.templar.referenced_vars_expr(c).unwrap_or_default());
            }
        }
        names.into_iter().find_map(|n| st.unknown_in_check.get(&n).map(|from| (n.clone(), from.clone())))
    }

    /// The variables a task's args and loop use (and `debug`'s `var`).
    fn task_refs(&self, task: &Task) -> Vec<String> {
        let mut names = Vec::new();
        if let Action::Module { name, args, .. } = &task.action {
            self.template_refs(args, &mut names);
            if crate::playbook::short_name(name).ends_with("debug")
                && let Some(Value::String(v)) = args.get("var")
            {
                names.extend(self.templar.referenced_vars_expr(v).unwrap_or_default());
            }
        }
        if let Some(spec) = &task.loop_ {
            let v = match spec {
                LoopSpec::Items { value, .. } => value,
                LoopSpec::Dict(v) | LoopSpec::Fileglob(v) | LoopSpec::Subelements(v) | LoopSpec::Nested(v) => v,
                #[allow(unreachable_patterns)]
                _ => &Value::Null,
            };
            self.template_refs(v, &mut names);
        }
        names
    }

    /// Does the task use a registered result or fact of a `no_log` task (in its args, its
    /// loop or, for `debug`, its `var`)?
    fn uses_sensitive(&self, task: &Task, st: &HostState) -> bool {
        if st.sensitive.is_empty() {
            return false;
        }
        self.task_refs(task).iter().any(|n| st.sensitive.contains(n))
    }

    /// `no_log`: the report keeps the host and the status; the item label, the change
    /// summaries (`~ run: <command>`), diffs, message and data go. The registered result keeps
    /// its values for later tasks (see [`HostState::sensitive`]).
    fn censor(&self, out: &mut ItemOutcome) {
        out.report.data = Map::new();
        out.report.changes.clear();
        out.report.item = out.report.item.take().map(|_| "<censored>".into());
        out.report.msg = out.report.msg.take().map(|_| NO_LOG_MSG.into());
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_item_shown(
        &self,
        ctx: &PlayCtx<'_>,
        task: &Task,
        inh: &Inherit,
        st: &mut HostState,
        vars: &Map<String, Value>,
        item: Option<(&Value, &Map<String, Value>)>,
        search: &[PathBuf],
    ) -> ItemOutcome {
        let vctx = self.mj(ctx, task, vars);
        let scope = Scope { vars: &vctx, search };
        let label = item.map(|(it, _)| match &task.loop_control.label {
            Some(l) => self.templar.render_str(l, &scope).map(|v| value_label(&v)).unwrap_or_else(|_| l.clone()),
            None => value_label(it),
        });
        if self.opts.plan.is_some() {
            st.plan_cursor.item = label.clone();
        }
        let all_when: Vec<Value> = inh.when.iter().chain(task.when.iter()).cloned().collect();
        match self.eval_conds(&all_when, &scope) {
            Ok(true) => {}
            Ok(false) => {
                let mut result = Map::new();
                result.insert("changed".into(), json!(false));
                result.insert("skipped".into(), json!(true));
                result.insert("skip_reason".into(), json!("Conditional result was False"));
                if let Some((it, _)) = item {
                    result.insert("item".into(), it.clone());
                }
                return ItemOutcome {
                    report: HostReport { item: label, ..HostReport::simple(&st.name, Status::Skipped, None) },
                    result,
                    changed: false,
                    failed: false,
                    skipped: true,
                    unreachable: false,
                };
            }
            Err(e) => return self.fail_outcome(st, terr(task, e), label),
        }
        // retries and delay may be templates (of the loop item, too)
        let rendered_number = |v: &Value| -> Option<f64> {
            match v {
                Value::String(s) if Templar::is_template(s) => number(&self.templar.render_value(v, &scope).ok()?),
                other => number(other),
            }
        };
        let retries = task.retries.as_ref().and_then(rendered_number).map(|r| r.max(0.0) as u64);
        let delay = task.delay.as_ref().and_then(rendered_number).unwrap_or(5.0);
        let attempts = match (&task.until, retries) {
            (Some(_), r) => r.unwrap_or(3) + 1,
            _ => 1,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let res = self.call(ctx, task, inh, st, vars, &scope).await;
            let mut out = match res {
                Ok(r) => r,
                Err(f) => {
                    // a module's failure (a command that ran and failed, an assert that did not
                    // hold...) has a result that failed_when and changed_when judge, as in
                    // Ansible (`failed_when: false` keeps the task going); an engine error (a
                    // template that cannot render) is not judged
                    let judged = task.failed_when.is_some() || task.changed_when.is_some();
                    let engine_error = f.at.is_some();
                    let mut o = self.fail_outcome(st, f, label.clone());
                    if let Some((it, _)) = item {
                        o.result.insert("item".into(), it.clone());
                    }
                    if o.unreachable {
                        return o;
                    }
                    if engine_error || !judged {
                        if task.until.is_none() || attempt >= attempts {
                            return o;
                        }
                        tokio::time::sleep(duration(delay)).await;
                        continue;
                    }
                    o
                }
            };
            if let Some((it, _)) = item {
                out.result.insert("item".into(), it.clone());
            }
            if would_run(&out) {
                out.result.entry("msg").or_insert(json!("Command would have run if not in check mode"));
            }
            out.report.item = label.clone();
            // changed_when / failed_when / until see the result as the registered var; the
            // context is built only for tasks that have one of them (not on every task run)
            // the attempt is in the result that changed_when and failed_when judge, as in Ansible
            if task.until.is_some() {
                out.result.insert("attempts".into(), json!(attempt));
            }
            let ctx2 = if task.changed_when.is_some() || task.failed_when.is_some() || task.until.is_some() {
                self.result_ctx(ctx, task, vars, &out.result)
            } else {
                minijinja::Value::UNDEFINED
            };
            let scope2 = Scope { vars: &ctx2, search };
            if let Some(cw) = &task.changed_when {
                match self.eval_conds(cw, &scope2) {
                    Ok(b) => {
                        out.changed = b;
                        out.result.insert("changed".into(), json!(b));
                        if !out.failed {
                            out.report.status = if b { Status::Changed } else { Status::Ok };
                        }
                    }
                    // a command that would run (check mode): its result is not known yet
                    Err(_) if would_run(&out) => {}
                    // the task fails, keeping its result, as Ansible's does
                    Err(e) => {
                        let msg =
                            format!("The conditional check '{}' failed. The error was: {}", conds_text(cw), e.message);
                        out.result.insert("changed_when_result".into(), json!(msg));
                        return judged_failure(out, msg);
                    }
                }
            }
            if let Some(fw) = &task.failed_when {
                match self.eval_conds(fw, &scope2) {
                    Ok(b) => {
                        out.failed = b;
                        out.result.insert("failed".into(), json!(b));
                        out.result.insert("failed_when_result".into(), json!(b));
                        if b {
                            out.report.status = Status::Failed;
                            if out.report.msg.is_none() {
                                out.report.msg = Some("failed_when condition was true".into());
                            }
                        } else if out.report.status == Status::Failed {
                            out.report.status = if out.changed { Status::Changed } else { Status::Ok };
                            out.report.msg = None;
                        }
                    }
                    Err(_) if would_run(&out) => {}
                    Err(e) => {
                        let msg =
                            format!("The conditional check '{}' failed. The error was: {}", conds_text(fw), e.message);
                        out.result.insert("failed_when_result".into(), json!(msg));
                        return judged_failure(out, msg);
                    }
                }
            }
            if let Some(until) = &task.until {
                // until sees the result as failed_when and changed_when left it
                let ctx3 = if task.failed_when.is_some() || task.changed_when.is_some() {
                    self.result_ctx(ctx, task, vars, &out.result)
                } else {
                    ctx2.clone()
                };
                let scope3 = Scope { vars: &ctx3, search };
                let done = self.eval_conds(until, &scope3).unwrap_or(false);
                if !done {
                    if attempt < attempts {
                        tokio::time::sleep(duration(delay)).await;
                        continue;
                    }
                    out.result.insert("failed".into(), json!(true));
                    // Ansible reports the number of retries, not of runs, once they are used up
                    out.result.insert("attempts".into(), json!(attempt.saturating_sub(1).max(1)));
                    // a failed_when that judged the last attempt decides the task's status, as
                    // in Ansible (its result still says `failed`)
                    if out.result.get("failed_when_result") != Some(&json!(false)) {
                        out.failed = true;
                        out.report.status = Status::Failed;
                        out.report.msg = Some(format!("retries exhausted after {attempt} attempts"));
                    }
                }
            }
            return out;
        }
    }

    /// Render args and dispatch to an engine action or a module.
    async fn call(
        &self,
        ctx: &PlayCtx<'_>,
        task: &Task,
        inh: &Inherit,
        st: &mut HostState,
        vars: &Map<String, Value>,
        scope: &Scope<'_>,
    ) -> Result<ItemOutcome, Fail> {
        let Action::Module { name, args, .. } = &task.action else {
            return Err(Fail::new("not a module task"));
        };
        // the whole args as one template (`assert: "{{ my_args }}"`): a mapping once rendered
        let templated;
        let args = match args.get(crate::playbook::ARGS_TEMPLATE) {
            Some(t) => {
                templated = match self.templar.render_value(t, scope).map_err(|e| terr(task, e))? {
                    v @ Value::Object(_) => v,
                    v => {
                        return Err(Fail::new(format!(
                            "the args of `{name}` are a template that gave {v}, not a mapping"
                        )));
                    }
                };
                &templated
            }
            None => args,
        };
        let short = crate::playbook::short_name(name);
        let short =
            short.strip_prefix("ansible.posix.").or_else(|| short.strip_prefix("community.general.")).unwrap_or(short);
        // engine actions: typed, registered (exec/verbs.rs), run here (exec/actions.rs)
        if let Some(verb) = Verb::of(short) {
            return match verb {
                Verb::Debug => self.act_debug(task, args, scope, st),
                Verb::SetFact => self.act_set_fact(task, args, scope, st),
                Verb::GroupBy => self.act_group_by(task, args, scope, st),
                Verb::AddHost => self.act_add_host(task, args, scope, st),
                Verb::Assert => self.act_assert(task, args, scope, st),
                Verb::ValidateArgumentSpec => self.act_validate_argument_spec(task, args, vars, scope, st),
                Verb::Fail => self.act_fail(task, args, scope),
                Verb::IncludeVars => self.act_include_vars(task, args, vars, scope, st),
                Verb::Ping => self.act_ping(&self.via(ctx, Some(task), inh, scope)?, task, args, vars, scope, st).await,
                Verb::Reboot => {
                    self.act_reboot(&self.via(ctx, Some(task), inh, scope)?, task, inh, st, vars, scope).await
                }
                Verb::WaitForConnection => {
                    let via = self.via(ctx, Some(task), inh, scope)?;
                    self.act_wait_for_connection(&via, task, args, st, vars, scope).await
                }
                Verb::Pause => self.act_pause(task, args, scope, st).await,
                Verb::Setup => {
                    self.act_setup(&self.via(ctx, Some(task), inh, scope)?, task, args, vars, scope, st).await
                }
            };
        }
        let module = self.registry.get(name).ok_or_else(|| {
            Fail::new(if crate::playbook::ansible_only(name) {
                format!("`{name}` is an Ansible module that pbr does not implement")
            } else {
                format!("unknown module `{name}`")
            })
        })?;
        let rendered = self.templar.render_value(args, scope).map_err(|e| terr(task, e))?;
        let params = drop_omit(rendered);
        // delegation and connection
        let delegate = match task.delegate_to.as_ref().or(inh.kw.delegate_to.as_ref()) {
            Some(d) => Some(self.templar.render_str(d, scope).map(|v| value_label(&v)).map_err(|e| terr(task, e))?),
            None => None,
        };
        let (conn_name, conn_vars) = match &delegate {
            Some(d) if d == "localhost" || d == "127.0.0.1" => {
                let mut v = self.inv().host_vars(d);
                v.entry("ansible_connection").or_insert(json!("local"));
                (d.clone(), v)
            }
            Some(d) => (d.clone(), self.inv().host_vars(d)),
            None => (st.name.clone(), vars.clone()),
        };
        let mut via = self.via(ctx, Some(task), inh, scope)?;
        if delegate.is_some() {
            via.connection = None;
        }
        let conn = self.connect(&conn_name, &conn_vars, &via).await.map_err(|e| Fail {
            at: None,
            unreachable: matches!(e, HostError::Unreachable(_)) && delegate.is_none(),
            msg: e.to_string(),
            data: Map::new(),
        })?;
        let esc = self.become_from_vars(&conn_vars, inh, Some(task), scope).map_err(Fail::new)?;
        let mut host = Host::new(conn_name.clone(), conn, esc);
        if let Some(env) = task.environment.as_ref().or(inh.kw.environment.as_ref()) {
            let env = self.templar.render_value(env, scope).map_err(|e| terr(task, e))?;
            let Value::Object(m) = env else {
                return Err(Fail::new("environment must be a mapping"));
            };
            host = host.with_env(m.into_iter().map(|(k, v)| (k, value_label(&v))).collect());
        }
        if self.opts.check && delegate.is_none() {
            host = host.with_overlay(st.overlay.clone());
        }
        let check = task.check_mode.or(inh.kw.check_mode).unwrap_or(self.opts.check);
        let diff = task.diff.unwrap_or(self.opts.diff);
        let controller = TaskController { templar: &self.templar, vars: scope.vars, search: scope.search };
        let queued: Vec<String> = st.deferred.keys().cloned().collect();
        let mctx = Ctx { check, diff, search: scope.search, controller: &controller, queued: &queued };
        let guard = match &self.opts.plan {
            Some(plan) if !check => {
                let ((name, item), n) = st.plan_cursor.at(task.display_name(), |t| self.reporter.redact(t));
                plan.guard(&st.name, &name, item.as_deref(), n)
            }
            _ => None,
        };
        let mode = RunMode { check, diff, verify: self.opts.verify, guard };
        let timeout = match &task.timeout {
            Some(t) => Some(
                number(t)
                    .filter(|s| *s > 0.0 && s.is_finite())
                    .ok_or_else(|| Fail::new(format!("timeout must be a number of seconds, got {t}")))?,
            ),
            None => None,
        };
        let res: Result<ModuleResult, ModuleError> = match timeout {
            Some(secs) => tokio::time::timeout(duration(secs), module.execute(&mctx, &params, &host, mode))
                .await
                .unwrap_or_else(|_| Err(ModuleError::new(format!("the task timed out after {secs} s")))),
            None => module.execute(&mctx, &params, &host, mode).await,
        };
        let r = res.map_err(Fail::from)?;
        // the first task that queues a key decides its script (later ones ask for the same work)
        for d in &r.deferred {
            st.deferred.entry(d.key.clone()).or_insert_with(|| (d.clone(), host.clone()));
        }
        // facts a module returns (service_facts) are the host's from now on, as in Ansible:
        // under `ansible_facts` (without an `ansible_` prefix) and as variables of their own
        if let Some(Value::Object(af)) = r.data.get("ansible_facts") {
            st.add_facts(af);
            self.cache_facts(&st.name, af);
        }
        let mut result = r.data.clone();
        // a module's warnings are shown, and stay in its result, as in Ansible
        if let Some(Value::Array(ws)) = result.get("warnings") {
            for w in ws {
                self.reporter.warning(&format!("[{}] {}", st.name, value_label(w)));
            }
        }
        result.insert("changed".into(), json!(r.changed));
        if !r.changes.is_empty() {
            result.insert("changes".into(), json!(r.changes.iter().map(|c| c.summary.clone()).collect::<Vec<_>>()));
        }
        // in diff mode the result carries the diffs, as Ansible's modules return them: in the
        // module's own Ansible shape where it gives one (`_diff` in its data), else as a list
        let ansible_diff = result.remove("_diff");
        if let (true, Some(d)) = (diff, ansible_diff) {
            result.insert("diff".into(), d);
        }
        if diff {
            let diffs: Vec<Value> = r
                .changes
                .iter()
                .filter_map(|c| c.diff.as_ref())
                .map(|d| {
                    json!({"before": d.before, "after": d.after,
                           "before_header": d.before_header, "after_header": d.after_header})
                })
                .collect();
            if !diffs.is_empty() {
                result.entry("diff").or_insert(Value::Array(diffs));
            }
        }
        let status = if r.changed { Status::Changed } else { Status::Ok };
        let mut report = HostReport::simple(&st.name, status, None);
        report.changes = r.changes;
        report.digest = r.digest;
        report.delegated = delegate;
        report.data = if check { Map::new() } else { r.data };
        Ok(ItemOutcome { report, result, changed: r.changed, failed: false, skipped: false, unreachable: false })
    }
}

impl HostState {
    fn active(&self) -> bool {
        !self.failed && !self.unreachable && !self.ended
    }

    /// Facts (under their variable names: `ansible_os_family`, or a module's own) become the
    /// host's: as variables, and merged into `ansible_facts` without the `ansible_` prefix, as
    /// in Ansible.
    fn add_facts(&mut self, facts: &Map<String, Value>) {
        let mut all = match self.facts.remove("ansible_facts") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        for (k, v) in facts {
            all.insert(k.strip_prefix("ansible_").unwrap_or(k).to_string(), v.clone());
            self.facts.insert(k.clone(), v.clone());
        }
        self.facts.insert("ansible_facts".into(), Value::Object(all));
    }
}

impl HostReport {
    pub fn simple(host: &str, status: Status, msg: Option<String>) -> HostReport {
        HostReport {
            host: host.to_string(),
            status,
            item: None,
            msg,
            changes: vec![],
            data: Map::new(),
            ignored: false,
            delegated: None,
            digest: None,
        }
    }
}

/// The conditions of `changed_when`/`failed_when` as written (for a message).
fn conds_text(c: &[Value]) -> String {
    c.iter().map(value_label).collect::<Vec<_>>().join(" and ")
}

/// The outcome failed by a condition that could not be evaluated: its result stays.
fn judged_failure(mut out: ItemOutcome, msg: String) -> ItemOutcome {
    out.failed = true;
    out.result.insert("failed".into(), json!(true));
    out.result.insert("msg".into(), json!(msg.clone()));
    out.report.status = Status::Failed;
    out.report.msg = Some(msg);
    out
}

/// A command that would run and did not (check mode): a `!` change and no exit code.
fn would_run(o: &ItemOutcome) -> bool {
    o.report.changes.iter().any(|c| c.kind == crate::module::ChangeKind::Run) && o.result.get("rc").is_none()
}

fn simple_outcome(host: &str, status: Status, msg: Option<String>, result: Map<String, Value>) -> ItemOutcome {
    ItemOutcome {
        report: HostReport::simple(host, status, msg),
        result,
        changed: status == Status::Changed,
        failed: false,
        skipped: status == Status::Skipped,
        unreachable: false,
    }
}

/// Each host's run-time variables, shared with the `hostvars` of every template context.
type HostRuntime = Arc<std::sync::RwLock<HashMap<String, Arc<Map<String, Value>>>>>;

/// One host's run-time variables as `hostvars[host]` reads them: looked up when a template asks,
/// so that `hostvars` built once per play sees every later `set_fact`, `register` and fact.
#[derive(Debug)]
struct RuntimeVars {
    store: HostRuntime,
    host: String,
}

impl RuntimeVars {
    fn vars(&self) -> Option<Arc<Map<String, Value>>> {
        self.store.read().unwrap_or_else(|e| e.into_inner()).get(&self.host).cloned()
    }
}

impl minijinja::value::Object for RuntimeVars {
    fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        self.vars()?.get(key.as_str()?).map(to_mj)
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        let keys =
            self.vars().map(|m| m.keys().map(|k| minijinja::Value::from(k.as_str())).collect()).unwrap_or_default();
        minijinja::value::Enumerator::Values(keys)
    }
}

/// `hostvars`: the inventory's hosts, and the implicit localhost when it is not one of them.
#[derive(Debug)]
struct Hostvars {
    hosts: std::collections::BTreeMap<String, minijinja::Value>,
    implicit: Option<minijinja::Value>,
}

impl minijinja::value::Object for Hostvars {
    fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        let k = key.as_str()?;
        self.hosts.get(k).cloned().or_else(|| self.implicit.clone().filter(|_| k == "localhost"))
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        minijinja::value::Enumerator::Values(self.hosts.keys().map(|k| minijinja::Value::from(k.as_str())).collect())
    }
}

struct PlayCtx<'a> {
    play: &'a Play,
    vars: Map<String, Value>,
    batch: Vec<String>,
    all_hosts: Vec<String>,
    /// The play-wide magic variables (`groups`, `ansible_play_hosts`...), built once per play
    /// and batch and shared by every host and task (they are as large as the inventory).
    magic: minijinja::Value,
    /// The inventory's generation `magic` was built at (`add_host` and `group_by` change it).
    generation: u64,
    /// `hostvars`, built on first use, with the inventory generation it was built at.
    hostvars: std::sync::Mutex<Option<(u64, minijinja::Value)>>,
}

fn merge_inherit(child: &mut Inherit, task: &Task) {
    child.when.extend(task.when.iter().cloned());
    child.vars.extend(task.vars.clone());
    child.tags.extend(task.tags.iter().cloned());
    child.kw.overlay(&crate::playbook::Inherited::of(task));
}

/// A cycle of references reachable from `start`, as the names along it ending where it closes
/// (`a → b → a`).
fn find_cycle(start: &str, refs: &HashMap<String, Vec<String>>) -> Option<Vec<String>> {
    fn dfs(
        at: &str,
        refs: &HashMap<String, Vec<String>>,
        path: &mut Vec<String>,
        seen: &mut std::collections::HashSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == at) {
            let mut c = path[i..].to_vec();
            c.push(at.to_string());
            return Some(c);
        }
        if !seen.insert(at.to_string()) {
            return None;
        }
        path.push(at.to_string());
        for n in refs.get(at).into_iter().flatten() {
            if let Some(c) = dfs(n, refs, path, seen) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    dfs(start, refs, &mut Vec::new(), &mut std::collections::HashSet::new())
}

fn has_template(v: &Value) -> bool {
    match v {
        Value::String(s) => Templar::is_template(s),
        Value::Array(a) => a.iter().any(has_template),
        Value::Object(m) => m.values().any(has_template),
        _ => false,
    }
}

/// Drop params whose value is the `omit` placeholder.
fn drop_omit(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| v.as_str() != Some(crate::template::OMIT))
                .map(|(k, v)| (k, drop_omit(v)))
                .collect(),
        ),
        Value::Array(a) => {
            Value::Array(a.into_iter().filter(|v| v.as_str() != Some(crate::template::OMIT)).map(drop_omit).collect())
        }
        other => other,
    }
}

fn value_label(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn short_json(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 80 { format!("{}...", &s[..s.char_indices().nth(77).map(|(i, _)| i).unwrap_or(s.len())]) } else { s }
}

/// `%02d`-style formatting for with_sequence.
/// Split hosts into serial batches (the last size repeats).
fn batches(hosts: &[String], serial: &[Serial]) -> Vec<Vec<String>> {
    if serial.is_empty() {
        return vec![hosts.to_vec()];
    }
    let mut out = Vec::new();
    let mut i = 0;
    let mut k = 0;
    while i < hosts.len() {
        let s = &serial[k.min(serial.len() - 1)];
        let n = match s {
            Serial::Count(n) => *n,
            Serial::Percent(p) => ((hosts.len() as f64) * p / 100.0).floor() as usize,
        }
        .max(1);
        out.push(hosts[i..(i + n).min(hosts.len())].to_vec());
        i += n;
        k += 1;
    }
    out
}

fn to_mj<T: serde::Serialize>(v: T) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_batches() {
        let h: Vec<String> = (1..=7).map(|i| format!("h{i}")).collect();
        let b = batches(&h, &[Serial::Count(1), Serial::Count(3)]);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 3, 3]);
        let b = batches(&h, &[Serial::Percent(50.0)]);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 3, 1]);
        assert_eq!(batches(&h, &[]).len(), 1);
    }

    #[test]
    fn sequences_as_ansible_makes_them() {
        let seq = |s: &str| crate::template::sequence(s).unwrap();
        assert_eq!(seq("start=1 end=3 format=pi%02d"), ["pi01", "pi02", "pi03"]);
        assert_eq!(seq("start=5 count=3 stride=2"), ["5", "7", "9"]);
        assert_eq!(seq("4-8/2:host%d"), ["host4", "host6", "host8"]);
        assert_eq!(seq("3"), ["1", "2", "3"]);
        assert_eq!(seq("start=0 end=16 stride=8 format=0x%02x"), ["0x00", "0x08", "0x10"]);
        assert_eq!(seq("start=3 end=1 stride=-1 format=%-3d|"), ["3  |", "2  |", "1  |"]);
        assert!(crate::template::sequence("start=5 end=1").is_err());
        assert!(crate::template::sequence("start=1 end=2 bogus=1").is_err());
    }

    #[test]
    fn omit_dropped() {
        let v = drop_omit(json!({"a": crate::template::OMIT, "b": 1}));
        assert_eq!(v, json!({"b": 1}));
    }
}
