//! Playbooks: the Ansible subset pbr understands, parsed from [`Node`]s with spans kept.
//!
//! Static things are resolved here: `import_playbook`, `import_tasks`, `import_role` and
//! `roles:` are expanded at load time, as Ansible does; `include_tasks`/`include_role` stay
//! tasks and are loaded when reached.

use crate::diag::Diag;
use crate::diag::RuleId;
use crate::source::Span;
use crate::yaml::{self, Node, NodeKind};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Play keywords pbr accepts.
pub const PLAY_KEYWORDS: &[&str] = &[
    "name",
    "hosts",
    "vars",
    "vars_files",
    "gather_facts",
    "gather_subset",
    "gather_timeout",
    "fact_path",
    "become",
    "become_user",
    "become_method",
    "connection",
    "tasks",
    "pre_tasks",
    "post_tasks",
    "handlers",
    "roles",
    "serial",
    "tags",
    "strategy",
    "max_fail_percentage",
    "any_errors_fatal",
    "ignore_errors",
    "ignore_unreachable",
    "environment",
    "remote_user",
    "check_mode",
    "diff",
    "no_log",
    "order",
    "throttle",
    "timeout",
    "force_handlers",
    "collections",
    "module_defaults",
    "run_once",
    "vars_prompt",
];

/// Task keywords pbr accepts (anything else must be the module).
pub const TASK_KEYWORDS: &[&str] = &[
    "name",
    "when",
    "loop",
    "loop_control",
    "register",
    "notify",
    "listen",
    "changed_when",
    "failed_when",
    "ignore_errors",
    "ignore_unreachable",
    "tags",
    "become",
    "become_user",
    "become_method",
    "vars",
    "args",
    "delegate_to",
    "delegate_facts",
    "run_once",
    "retries",
    "until",
    "delay",
    "throttle",
    "no_log",
    "check_mode",
    "diff",
    "environment",
    "timeout",
    "connection",
    "remote_user",
    "any_errors_fatal",
    "collections",
    "module_defaults",
    "debugger",
    "action",
    "local_action",
];

/// Block keywords (a block takes most task keywords too).
pub const BLOCK_KEYS: &[&str] = &["block", "rescue", "always"];

/// Names of the tasks that are handled by the engine itself rather than modules.
pub const INCLUDE_KINDS: &[&str] = &[
    "include_tasks",
    "import_tasks",
    "include_role",
    "import_role",
    "import_playbook",
    "include_vars",
    "meta",
    "debug",
    "set_fact",
    "assert",
    "fail",
    "ping",
    "pause",
    "setup",
    "gather_facts",
    "wait_for_connection",
    "reboot",
];

pub fn short_name(name: &str) -> &str {
    name.strip_prefix("ansible.builtin.").or_else(|| name.strip_prefix("ansible.legacy.")).unwrap_or(name)
}

/// A loaded role.
#[derive(Debug)]
pub struct Role {
    pub name: String,
    pub path: PathBuf,
    pub defaults: Map<String, Value>,
    pub vars: Map<String, Value>,
    /// Spans of var definitions (for lint).
    pub var_nodes: Vec<Node>,
    /// The roles that imported or included this one, nearest first, with their paths
    /// (`ansible_parent_role_names`, `ansible_parent_role_paths`).
    pub parents: Vec<(String, PathBuf)>,
}

/// Where a task came from: the dirs relative files are looked up in.
#[derive(Debug, Clone)]
pub struct Origin {
    pub role: Option<Arc<Role>>,
    /// Role params (`roles: - role: x  param: v`).
    pub role_params: Map<String, Value>,
    pub playbook_dir: PathBuf,
}

impl Origin {
    /// Where `include_vars` finds a relative name: the role's `vars/`, the role, then the
    /// playbook's `vars/` and directory, the first that exists (Ansible's search for `vars`);
    /// else the first place looked.
    pub fn vars_file(&self, f: &str) -> PathBuf {
        if Path::new(f).is_absolute() {
            return PathBuf::from(f);
        }
        let mut bases = vec![];
        if let Some(r) = &self.role {
            bases.push(r.path.join("vars"));
            bases.push(r.path.clone());
        }
        bases.push(self.playbook_dir.join("vars"));
        bases.push(self.playbook_dir.clone());
        let first = if self.role.is_some() { bases[0].join(f) } else { self.playbook_dir.join(f) };
        bases.iter().map(|b| b.join(f)).find(|p| p.exists()).unwrap_or(first)
    }

    pub fn search_dirs(&self) -> Vec<PathBuf> {
        let mut v = Vec::new();
        if let Some(r) = &self.role {
            v.push(r.path.clone());
        }
        v.push(self.playbook_dir.clone());
        v
    }
}

#[derive(Debug, Clone)]
pub enum LoopSpec {
    /// `loop:` or `with_items`-style: a list literal or a template. A `with_` form (`lookup`)
    /// takes a value that is not a list as its one item; `loop:` needs a list.
    Items { value: Value, flatten: bool, lookup: bool },
    /// `with_dict`: dict → list of {key, value}.
    Dict(Value),
    /// `with_fileglob`.
    Fileglob(Value),
    /// `with_subelements: [list, key]`.
    Subelements(Value),
    /// `with_nested` / `with_cartesian`.
    Nested(Value),
    /// `with_together`.
    Together(Value),
    /// `with_sequence: start=1 end=5 format=...`.
    Sequence(Value),
    /// `with_indexed_items`: `[index, item]` pairs of the list (flattened one level).
    IndexedItems(Value),
    /// `with_flattened`: the list flattened all the way.
    Flattened(Value),
    /// `with_first_found`: the first file that exists, of names and `{files, paths, skip}`.
    FirstFound(Value),
}

#[derive(Debug, Clone, Default)]
pub struct LoopControl {
    pub loop_var: Option<String>,
    pub index_var: Option<String>,
    pub label: Option<String>,
    pub extended: bool,
    /// `extended_allitems: false`: `ansible_loop` without `allitems`.
    pub no_allitems: bool,
    pub pause: Option<f64>,
}

#[derive(Debug, Clone)]
pub enum Action {
    /// A module call; `args` has `_raw_params` for free-form text.
    Module {
        name: String,
        args: Value,
        args_node: Node,
    },
    Block {
        block: Vec<Task>,
        rescue: Vec<Task>,
        always: Vec<Task>,
    },
    IncludeTasks {
        file: String,
        vars: Map<String, Value>,
    },
    IncludeRole {
        name: String,
        tasks_from: Option<String>,
        vars: Map<String, Value>,
    },
    Meta(String),
}

#[derive(Debug, Clone)]
pub struct Task {
    pub name: Option<String>,
    pub span: Span,
    pub node: Node,
    pub action: Action,
    pub when: Vec<Value>,
    pub loop_: Option<LoopSpec>,
    pub loop_control: LoopControl,
    pub register: Option<String>,
    pub notify: Vec<String>,
    pub listen: Vec<String>,
    pub changed_when: Option<Vec<Value>>,
    pub failed_when: Option<Vec<Value>>,
    pub ignore_errors: Option<Value>,
    pub ignore_unreachable: bool,
    pub tags: Vec<String>,
    pub become_: Option<Value>,
    pub become_user: Option<String>,
    pub become_method: Option<String>,
    /// The login user on the host (`remote_user:`), below the host's `ansible_user`.
    pub remote_user: Option<String>,
    pub vars: Map<String, Value>,
    pub delegate_to: Option<String>,
    pub run_once: bool,
    pub retries: Option<Value>,
    pub until: Option<Vec<Value>>,
    pub delay: Option<Value>,
    pub throttle: Option<Value>,
    pub no_log: bool,
    pub check_mode: Option<bool>,
    pub diff: Option<bool>,
    pub environment: Option<Value>,
    pub timeout: Option<Value>,
    pub any_errors_fatal: bool,
    pub origin: Arc<Origin>,
}

impl Task {
    /// The module (or engine action) name, for output and lint.
    pub fn action_name(&self) -> &str {
        match &self.action {
            Action::Module { name, .. } => name.as_str(),
            Action::Block { .. } => "block",
            Action::IncludeTasks { .. } => "include_tasks",
            Action::IncludeRole { .. } => "include_role",
            Action::Meta(_) => "meta",
        }
    }

    /// The name shown in output: `name:` or `module`, prefixed with the role.
    pub fn display_name(&self) -> String {
        let base = self.name.clone().unwrap_or_else(|| self.action_name().to_string());
        match &self.origin.role {
            Some(r) => format!("{} : {}", r.name, base),
            None => base,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Serial {
    Count(usize),
    Percent(f64),
}

#[derive(Debug, Clone)]
pub struct Play {
    pub name: String,
    pub span: Span,
    pub hosts: String,
    pub vars: Map<String, Value>,
    /// Each entry: a file, or (a list in the playbook) files of which the first that exists.
    pub vars_files: Vec<(Vec<String>, Span)>,
    /// `gather_facts:` as the play says it (`None`: unsaid, ansible.cfg's `gathering` decides).
    pub gather_facts: Option<bool>,
    /// Which facts `gather_facts` reads (`gather_subset`: all, min, hardware, network).
    pub gather_subset: Subset,
    pub become_: Option<Value>,
    pub become_user: Option<String>,
    pub become_method: Option<String>,
    /// The login user on the hosts (`remote_user:`), below each host's `ansible_user`.
    pub remote_user: Option<String>,
    pub connection: Option<String>,
    pub pre_tasks: Vec<Task>,
    /// Role tasks then `tasks:`.
    pub tasks: Vec<Task>,
    pub post_tasks: Vec<Task>,
    /// Role handlers then `handlers:`.
    pub handlers: Vec<Task>,
    pub serial: Vec<Serial>,
    pub tags: Vec<String>,
    pub strategy: String,
    pub max_fail_percentage: Option<f64>,
    pub any_errors_fatal: bool,
    pub ignore_errors: bool,
    pub environment: Option<Value>,
    pub check_mode: Option<bool>,
    pub diff: Option<bool>,
    pub force_handlers: bool,
    pub throttle: Option<usize>,
    pub roles: Vec<Arc<Role>>,
    /// The names of the play's `roles:` (`role_names`, `ansible_play_role_names`), and of the
    /// roles they depend on (`ansible_dependent_role_names`), in the order they run.
    pub role_names: Vec<String>,
    pub dependent_role_names: Vec<String>,
    pub dir: PathBuf,
    pub node: Node,
}

#[derive(Debug, Clone)]
pub struct Playbook {
    pub path: PathBuf,
    pub plays: Vec<Play>,
}

type R<T> = Result<T, Diag>;

fn err(span: Span, msg: impl Into<String>) -> Diag {
    Diag::error(RuleId::Playbook.as_str(), span, msg)
}

/// The keywords a block, a `roles:` entry or a play passes on to its tasks: one list, which the
/// loader (role entries) and the run (blocks, plays) both use.
#[derive(Debug, Clone, Default)]
pub struct Inherited {
    pub become_: Option<Value>,
    pub become_user: Option<String>,
    pub become_method: Option<String>,
    pub remote_user: Option<String>,
    pub ignore_errors: Option<Value>,
    pub environment: Option<Value>,
    pub delegate_to: Option<String>,
    pub check_mode: Option<bool>,
    pub no_log: bool,
}

impl Inherited {
    /// What a task (or block) sets of them.
    pub fn of(t: &Task) -> Inherited {
        Inherited {
            become_: t.become_.clone(),
            become_user: t.become_user.clone(),
            become_method: t.become_method.clone(),
            remote_user: t.remote_user.clone(),
            ignore_errors: t.ignore_errors.clone(),
            environment: t.environment.clone(),
            delegate_to: t.delegate_to.clone(),
            check_mode: t.check_mode,
            no_log: t.no_log,
        }
    }

    /// `over`'s keywords where it sets them, `self`'s elsewhere (`no_log` once set stays).
    pub fn overlay(&mut self, over: &Inherited) {
        fn set<T: Clone>(mine: &mut Option<T>, theirs: &Option<T>) {
            if theirs.is_some() {
                mine.clone_from(theirs);
            }
        }
        set(&mut self.become_, &over.become_);
        set(&mut self.become_user, &over.become_user);
        set(&mut self.become_method, &over.become_method);
        set(&mut self.remote_user, &over.remote_user);
        set(&mut self.ignore_errors, &over.ignore_errors);
        set(&mut self.environment, &over.environment);
        set(&mut self.delegate_to, &over.delegate_to);
        set(&mut self.check_mode, &over.check_mode);
        self.no_log |= over.no_log;
    }

    /// Give a role's task the entry's keywords where the task sets none of its own.
    fn fill(&self, t: &mut Task) {
        let mut k = self.clone();
        k.overlay(&Inherited::of(t));
        (t.become_, t.become_user, t.become_method, t.remote_user) =
            (k.become_, k.become_user, k.become_method, k.remote_user);
        (t.ignore_errors, t.environment, t.delegate_to, t.check_mode, t.no_log) =
            (k.ignore_errors, k.environment, k.delegate_to, k.check_mode, k.no_log);
    }
}

/// A file the playbook names (a tasks or vars file, a role, a role's tasks file) is not there.
fn missing(span: Span, msg: impl Into<String>) -> Diag {
    Diag::error(RuleId::MissingFile.as_str(), span, msg)
}

/// Closest candidate by edit distance, for "did you mean".
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = levenshtein(word, c);
        let limit = (word.len().max(c.len()) / 3).max(1);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Edit distance counting a swap of two neighbours as one edit (optimal string alignment).
pub fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

fn str_of(n: &Node, what: &str) -> R<String> {
    match &n.kind {
        NodeKind::Str(s) => Ok(s.clone()),
        NodeKind::Int(i) => Ok(i.to_string()),
        NodeKind::Float(f) => Ok(f.to_string()),
        NodeKind::Bool(b) => Ok(if *b { "true" } else { "false" }.into()),
        _ => Err(err(n.span, format!("{what} must be a string, found {}", n.type_name()))),
    }
}

fn bool_of(n: &Node, what: &str) -> R<bool> {
    match &n.kind {
        NodeKind::Bool(b) => Ok(*b),
        NodeKind::Str(s) => {
            crate::params::parse_bool(s).ok_or_else(|| err(n.span, format!("{what} must be a boolean, found {s:?}")))
        }
        NodeKind::Int(i) => Ok(*i != 0),
        _ => Err(err(n.span, format!("{what} must be a boolean, found {}", n.type_name()))),
    }
}

fn str_list(n: &Node, what: &str) -> R<Vec<String>> {
    match &n.kind {
        NodeKind::Seq(items) => items.iter().map(|i| str_of(i, what)).collect(),
        NodeKind::Str(s) => Ok(s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect()),
        NodeKind::Null => Ok(vec![]),
        _ => str_of(n, what).map(|s| vec![s]),
    }
}

fn map_of(n: &Node, what: &str) -> R<Map<String, Value>> {
    match &n.kind {
        NodeKind::Map(_) => match n.to_value() {
            Value::Object(m) => Ok(m),
            _ => Ok(Map::new()),
        },
        NodeKind::Null => Ok(Map::new()),
        _ => Err(err(n.span, format!("{what} must be a mapping, found {}", n.type_name()))),
    }
}

/// Conditions: a string, a bool, or a list of them.
fn cond_list(n: &Node) -> Vec<Value> {
    // an `!unsafe` condition stays marked (raw), template or not, so that evaluating it fails
    let cond = |n: &Node| match &n.kind {
        NodeKind::Str(s) if n.tag.as_deref() == Some("unsafe") => Value::String(crate::yaml::unsafe_text(s)),
        _ => n.to_value(),
    };
    match &n.kind {
        NodeKind::Seq(items) => items.iter().map(cond).collect(),
        _ => vec![cond(n)],
    }
}

/// Load a YAML file expecting exactly one document (or none).
pub fn load_doc(path: &Path, span: Span) -> R<Option<Node>> {
    if !path.exists() {
        return Err(missing(span, format!("file not found: {}", path.display())));
    }
    let mut docs = yaml::load_file(path).map_err(|d| d.or_span(span))?;
    Ok(if docs.is_empty() { None } else { Some(docs.swap_remove(0)) })
}

/// Load a vars file (a mapping).
pub fn load_vars_file(path: &Path, span: Span) -> R<Map<String, Value>> {
    match load_doc(path, span)? {
        None => Ok(Map::new()),
        Some(n) => map_of(&n, "a vars file"),
    }
}

/// Ansible's own modules that pbr does not implement (ansible-core's `ansible.builtin` set; the
/// Windows ones by their `win_` names). A task calling one loads, as in Ansible, and fails when
/// it runs (a task under `when: false`, or in a role's Windows branch, never does); lint reports
/// it as an error.
const ANSIBLE_ONLY: &[&str] = &[
    "apt_key",
    "apt_repository",
    "assemble",
    "async_status",
    "async_wrapper",
    "deb822_repository",
    "debconf",
    "dnf5",
    "dpkg_selections",
    "expect",
    "getent",
    "git",
    "import_playbook",
    "iptables",
    "mount_facts",
    "package_facts",
    "pip",
    "rpm_key",
    "script",
    "set_stats",
    "subversion",
    "sysvinit",
    "tempfile",
    "uri",
    "yum_repository",
];

/// Whether `name` is one of Ansible's modules that pbr lacks (see [`ANSIBLE_ONLY`]).
pub fn ansible_only(name: &str) -> bool {
    let short = short_name(name);
    let short =
        short.strip_prefix("ansible.windows.").or_else(|| short.strip_prefix("community.windows.")).unwrap_or(short);
    ANSIBLE_ONLY.contains(&short) || (short.starts_with("win_") && !short.contains('.'))
}

/// The key under which a task keeps args written as one template (`assert: "{{ my_args }}"`),
/// rendered into the args mapping when the task runs.
pub const ARGS_TEMPLATE: &str = "_args_template";

/// `{{ expr }}` and nothing else.
pub fn whole_template(s: &str) -> bool {
    let t = s.trim();
    t.starts_with("{{") && t.ends_with("}}") && t[2..].find("{{").is_none() && !t.contains('\n')
}

pub use pbr_syntax::kv::{parse_kv, split_args};

/// Keys a free-form module (`command`, `shell`, `raw`, `script`) takes from a `k=v` string.
pub const FREE_FORM_KEYS: &[&str] = &["chdir", "creates", "removes", "executable", "stdin", "warn", "argv"];
pub const FREE_FORM_MODULES: &[&str] = &["command", "shell", "raw", "script"];

/// Context while loading: the playbook dir, known module names, include chain (cycles).
pub struct Loader<'a> {
    pub is_module: &'a (dyn Fn(&str) -> bool + Send + Sync),
    /// The files being loaded, outermost first (canonical paths), each with the span of the
    /// import or include that entered it (none for a root). A dynamic include seeds it with the
    /// chain of includes that led to it, so that a cycle through run time is found too.
    pub stack: Vec<(PathBuf, Span)>,
    /// How many entries at the bottom of `stack` were entered by includes that ran: those may be
    /// entered again (a recursion that a `when:` ends, as Ansible allows), up to
    /// [`MAX_INCLUDE_DEPTH`]. A static import of a file being loaded is always a cycle.
    pub reentrant: usize,
    /// Errors of tasks and plays that were left out so that loading could go on: every error of
    /// a file is reported in one go (lint, and a run that refuses to start). A playbook loaded
    /// with errors here must not run.
    pub recovered: Vec<Diag>,
}

impl<'a> Loader<'a> {
    pub fn new(is_module: &'a (dyn Fn(&str) -> bool + Send + Sync)) -> Loader<'a> {
        Loader { is_module, stack: vec![], reentrant: 0, recovered: vec![] }
    }
}

/// The longest chain of imports and includes.
pub const MAX_INCLUDE_DEPTH: usize = 64;

/// The canonical form of a path, for cycle checks (the path itself when it does not exist).
pub fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

/// "include cycle: a.yml:3:7 includes b.yml, b.yml:2:7 includes a.yml": each step of a cycle
/// that starts at `stack[from]` and closes with `span` including `path`.
pub fn cycle_message(stack: &[(PathBuf, Span)], from: usize, path: &Path, span: Span) -> String {
    format!("include cycle: {}", cycle_steps(stack, from, path, span))
}

/// The steps of that cycle: "a.yml:3:7 includes b.yml, b.yml:2:7 includes a.yml".
fn cycle_steps(stack: &[(PathBuf, Span)], from: usize, path: &Path, span: Span) -> String {
    let mut steps: Vec<String> =
        stack[from + 1..].iter().map(|(p, sp)| format!("{} includes {}", sp.location(), p.display())).collect();
    steps.push(format!("{} includes {}", span.location(), path.display()));
    steps.join(", ")
}

/// The tasks file of role `name` as [`Loader::load_role`] picks it, if the role is found.
/// The argument spec of a role's entry point: `argument_specs.ENTRY` of
/// `meta/argument_specs.yml` (or `.yaml`), else of `meta/main.yml`, as Ansible looks them up (the
/// two files are not combined).
pub fn argument_spec(role_dir: &Path, entry: &str, span: Span) -> R<Option<Node>> {
    let meta = role_dir.join("meta");
    let file = ["argument_specs.yml", "argument_specs.yaml"]
        .iter()
        .map(|f| meta.join(f))
        .find(|p| p.is_file())
        .or_else(|| ["main.yml", "main.yaml", "main"].iter().map(|f| meta.join(f)).find(|p| p.is_file()));
    let Some(file) = file else { return Ok(None) };
    let Some(doc) = load_doc(&file, span)? else { return Ok(None) };
    let Some(specs) = doc.get("argument_specs") else { return Ok(None) };
    match specs.get(entry) {
        Some(n) if n.as_map().is_some() => Ok(Some(n.clone())),
        Some(n) if !n.is_null() => Err(err(n.span, format!("the argument spec `{entry}` must be a mapping"))),
        _ => Ok(None),
    }
}

/// A YAML node for a value (every span at `at`).
fn node_of(v: &Value, at: Span) -> Node {
    let kind = match v {
        Value::Null => NodeKind::Null,
        Value::Bool(b) => NodeKind::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => NodeKind::Int(i),
            None => NodeKind::Float(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => NodeKind::Str(s.clone()),
        Value::Array(a) => NodeKind::Seq(a.iter().map(|x| node_of(x, at)).collect()),
        Value::Object(m) => {
            NodeKind::Map(m.iter().map(|(k, x)| (Node::new(NodeKind::Str(k.clone()), at), node_of(x, at))).collect())
        }
    };
    Node::new(kind, at)
}

pub fn role_tasks_file(name: &str, tasks_from: Option<&str>, dir: &Path) -> Option<PathBuf> {
    let path = role_dir(name, dir).ok()?;
    match tasks_from {
        Some(f) => {
            let base = path.join("tasks");
            [base.join(f), base.join(format!("{f}.yml")), base.join(format!("{f}.yaml"))]
                .into_iter()
                .find(|p| p.is_file())
        }
        None => ["main.yml", "main.yaml", "main"].iter().map(|f| path.join("tasks").join(f)).find(|p| p.is_file()),
    }
}

fn roles_path_store() -> &'static std::sync::RwLock<Vec<PathBuf>> {
    static P: std::sync::RwLock<Vec<PathBuf>> = std::sync::RwLock::new(Vec::new());
    &P
}

/// The run's roles path (`ANSIBLE_ROLES_PATH`, or `roles_path` in ansible.cfg): where roles are
/// looked for after `roles/` beside the playbook, as in Ansible.
pub fn set_roles_path(dirs: Vec<PathBuf>) {
    *roles_path_store().write().unwrap_or_else(|e| e.into_inner()) = dirs;
}

/// Ansible's default roles path, searched after the configured one.
fn default_roles_path() -> Vec<PathBuf> {
    let mut v = vec![];
    if let Some(h) = std::env::var_os("HOME") {
        v.push(PathBuf::from(h).join(".ansible/roles"));
    }
    v.push(PathBuf::from("/usr/share/ansible/roles"));
    v.push(PathBuf::from("/etc/ansible/roles"));
    v
}

/// Where a role is: `roles/NAME` beside the playbook (or the including file), the roles path,
/// then beside the playbook itself and its parent's `roles/`.
/// How deep role dependencies may nest.
const MAX_ROLE_DEPTH: usize = 32;

fn role_dir(name: &str, dir: &Path) -> Result<PathBuf, Vec<PathBuf>> {
    let mut candidates = vec![dir.join("roles").join(name)];
    let configured = roles_path_store().read().unwrap_or_else(|e| e.into_inner()).clone();
    candidates.extend(configured.iter().chain(default_roles_path().iter()).map(|d| d.join(name)));
    candidates.push(dir.join(name));
    candidates.push(dir.join("..").join("roles").join(name));
    candidates.iter().find(|p| p.is_dir()).cloned().ok_or(candidates)
}

impl Loader<'_> {
    /// Load a playbook file with its imports and roles.
    pub fn load_playbook(&mut self, path: &Path) -> R<Playbook> {
        let path = path.to_path_buf();
        let mut plays = Vec::new();
        self.load_plays_into(&path, Span::none(), &mut plays)?;
        Ok(Playbook { path, plays })
    }

    fn enter(&mut self, path: &Path, span: Span) -> R<()> {
        let canon = canonical(path);
        let from = self.reentrant.min(self.stack.len());
        if let Some(i) = self.stack[from..].iter().position(|(p, _)| *p == canon) {
            return Err(err(span, cycle_message(&self.stack, from + i, path, span))
                .with_help("an include must not lead back to a file that is being run"));
        }
        if self.stack.len() > MAX_INCLUDE_DEPTH {
            return Err(match self.stack.iter().rposition(|(p, _)| *p == canon) {
                Some(i) => err(
                    span,
                    format!(
                        "includes nested more than {MAX_INCLUDE_DEPTH} deep, in a loop that never ends: {}",
                        cycle_steps(&self.stack, i, path, span)
                    ),
                )
                .with_help("an include may lead back to its own file only under a `when:` that ends the recursion"),
                None => err(span, format!("imports and includes nested more than {MAX_INCLUDE_DEPTH} deep")),
            });
        }
        self.stack.push((canon, span));
        Ok(())
    }

    fn load_plays_into(&mut self, path: &Path, span: Span, plays: &mut Vec<Play>) -> R<()> {
        self.enter(path, span)?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let Some(doc) = load_doc(path, span)? else {
            self.stack.pop();
            return Ok(());
        };
        let items = doc.as_seq().ok_or_else(|| {
            err(doc.span, format!("a playbook must be a list of plays, found {}", doc.type_name()))
                .with_help("start each play with `- hosts: PATTERN`")
        })?;
        for item in items {
            if let Some(imp) = item.get("import_playbook").or_else(|| item.get("ansible.builtin.import_playbook")) {
                let f = str_of(imp, "import_playbook")?;
                self.load_plays_into(&dir.join(f), imp.span, plays)?;
                continue;
            }
            match self.parse_play(item, &dir) {
                Ok(p) => plays.push(p),
                Err(d) => self.recovered.push(d),
            }
        }
        self.stack.pop();
        Ok(())
    }

    fn parse_play(&mut self, n: &Node, dir: &Path) -> R<Play> {
        let entries =
            n.as_map().ok_or_else(|| err(n.span, format!("a play must be a mapping, found {}", n.type_name())))?;
        for (k, _) in entries {
            let key = k.key_str().unwrap_or_default();
            if !PLAY_KEYWORDS.contains(&key.as_str()) {
                let mut d =
                    Diag::error(RuleId::UnknownKeyword.as_str(), k.span, format!("unknown play keyword `{key}`"));
                if let Some(s) = did_you_mean(&key, PLAY_KEYWORDS.iter().copied()) {
                    d = d.with_help(format!("did you mean `{s}`?"));
                } else if TASK_KEYWORDS.contains(&key.as_str()) || (self.is_module)(&key) {
                    d = d.with_help("tasks go under `tasks:`");
                }
                return Err(d);
            }
        }
        let hosts = match n.get("hosts") {
            Some(h) => match &h.kind {
                NodeKind::Seq(_) => str_list(h, "hosts")?.join(","),
                _ => str_of(h, "hosts")?,
            },
            None => return Err(err(n.span, "a play needs `hosts:`").with_help("e.g. `hosts: all`")),
        };
        let origin = Arc::new(Origin { role: None, role_params: Map::new(), playbook_dir: dir.to_path_buf() });
        let mut play = Play {
            name: match n.get("name") {
                Some(x) => str_of(x, "name")?,
                None => hosts.clone(),
            },
            span: n.span,
            hosts,
            vars: match n.get("vars") {
                Some(v) => map_of(v, "vars")?,
                None => Map::new(),
            },
            vars_files: match n.get("vars_files") {
                Some(v) => match &v.kind {
                    NodeKind::Seq(items) => items
                        .iter()
                        .map(|i| match &i.kind {
                            // a list: the first of its files that exists
                            NodeKind::Seq(alts) => {
                                Ok((alts.iter().map(|a| str_of(a, "vars_files")).collect::<R<Vec<_>>>()?, i.span))
                            }
                            _ => Ok((vec![str_of(i, "vars_files")?], i.span)),
                        })
                        .collect::<R<_>>()?,
                    _ => vec![(vec![str_of(v, "vars_files")?], v.span)],
                },
                None => vec![],
            },
            gather_facts: n.get("gather_facts").map(|v| bool_of(v, "gather_facts")).transpose()?,
            gather_subset: {
                let v = n.get("gather_subset");
                Subset::parse(v.map(Node::to_value).as_ref())
                    .map_err(|e| err(v.map(|v| v.span).unwrap_or(n.span), e))?
            },
            become_: n.get("become").map(Node::to_value),
            become_user: n.get("become_user").map(|v| str_of(v, "become_user")).transpose()?,
            become_method: n.get("become_method").map(|v| str_of(v, "become_method")).transpose()?,
            remote_user: n.get("remote_user").map(|v| str_of(v, "remote_user")).transpose()?,
            connection: n.get("connection").map(|v| str_of(v, "connection")).transpose()?,
            pre_tasks: vec![],
            tasks: vec![],
            post_tasks: vec![],
            handlers: vec![],
            serial: match n.get("serial") {
                Some(v) => parse_serial(v)?,
                None => vec![],
            },
            tags: match n.get("tags") {
                Some(v) => str_list(v, "tags")?,
                None => vec![],
            },
            strategy: n.get("strategy").map(|v| str_of(v, "strategy")).transpose()?.unwrap_or_else(|| "linear".into()),
            max_fail_percentage: match n.get("max_fail_percentage") {
                Some(v) => Some(match &v.kind {
                    NodeKind::Int(i) => *i as f64,
                    NodeKind::Float(f) => *f,
                    _ => str_of(v, "max_fail_percentage")?
                        .trim_end_matches('%')
                        .parse()
                        .map_err(|_| err(v.span, "max_fail_percentage must be a number"))?,
                }),
                None => None,
            },
            any_errors_fatal: n
                .get("any_errors_fatal")
                .map(|v| bool_of(v, "any_errors_fatal"))
                .transpose()?
                .unwrap_or(false),
            ignore_errors: n.get("ignore_errors").map(|v| bool_of(v, "ignore_errors")).transpose()?.unwrap_or(false),
            environment: n.get("environment").map(Node::to_value),
            check_mode: n.get("check_mode").map(|v| bool_of(v, "check_mode")).transpose()?,
            diff: n.get("diff").map(|v| bool_of(v, "diff")).transpose()?,
            force_handlers: n.get("force_handlers").map(|v| bool_of(v, "force_handlers")).transpose()?.unwrap_or(false),
            throttle: match n.get("throttle") {
                Some(v) => Some(str_of(v, "throttle")?.parse().map_err(|_| err(v.span, "throttle must be a number"))?),
                None => None,
            },
            roles: vec![],
            role_names: vec![],
            dependent_role_names: vec![],
            dir: dir.to_path_buf(),
            node: n.clone(),
        };
        if let Some(t) = n.get("pre_tasks") {
            play.pre_tasks = self.parse_tasks(t, &origin, dir)?;
        }
        if let Some(roles) = n.get("roles") {
            let items = roles.as_seq().ok_or_else(|| err(roles.span, "roles must be a list"))?;
            let mut seen = vec![];
            for r in items {
                self.add_play_role(r, dir, &mut play, &mut seen, &[], &[], 0)?;
            }
        }
        if let Some(t) = n.get("tasks") {
            let tasks = self.parse_tasks(t, &origin, dir)?;
            play.tasks.extend(tasks);
        }
        if let Some(t) = n.get("post_tasks") {
            play.post_tasks = self.parse_tasks(t, &origin, dir)?;
        }
        if let Some(t) = n.get("handlers") {
            let h = self.parse_tasks(t, &origin, dir)?;
            play.handlers.extend(h);
        }
        Ok(play)
    }

    /// A play's role entry (a name, or a mapping with `role:`, `vars:`, `when:`, `tags:` and
    /// params), with its dependencies (`meta/main.yml`) first, as Ansible runs them: a role runs
    /// once per play for the same params unless its meta says `allow_duplicates: true`; the
    /// entry's `when` and `tags` apply to its dependencies too.
    #[allow(clippy::too_many_arguments)]
    fn add_play_role(
        &mut self,
        r: &Node,
        dir: &Path,
        play: &mut Play,
        seen: &mut Vec<(PathBuf, Value)>,
        inherit_when: &[Value],
        inherit_tags: &[String],
        depth: usize,
    ) -> R<()> {
        // keywords on the entry (`become`, `environment`...): for the role's tasks that do not set
        // their own
        let mut keywords = Inherited::default();
        let (name, args, role_vars, mut when, mut tags, span) = match &r.kind {
            NodeKind::Str(s) => (s.clone(), Map::new(), Map::new(), vec![], vec![], r.span),
            NodeKind::Map(entries) => {
                let name_node =
                    r.get("role").or_else(|| r.get("name")).ok_or_else(|| err(r.span, "a role entry needs `role:`"))?;
                let mut params = Map::new();
                let mut role_vars = Map::new();
                let mut when = vec![];
                let mut tags = vec![];
                for (k, v) in entries {
                    match k.key_str().unwrap_or_default().as_str() {
                        "role" | "name" => {}
                        "vars" => role_vars.extend(map_of(v, "vars")?),
                        "when" => when = cond_list(v),
                        "tags" => tags = str_list(v, "tags")?,
                        "become" => keywords.become_ = Some(v.to_value()),
                        "become_user" => keywords.become_user = Some(str_of(v, "become_user")?),
                        "become_method" => keywords.become_method = Some(str_of(v, "become_method")?),
                        "remote_user" => keywords.remote_user = Some(str_of(v, "remote_user")?),
                        "ignore_errors" => keywords.ignore_errors = Some(v.to_value()),
                        "environment" => keywords.environment = Some(v.to_value()),
                        "delegate_to" => keywords.delegate_to = Some(str_of(v, "delegate_to")?),
                        "check_mode" => keywords.check_mode = Some(bool_of(v, "check_mode")?),
                        "no_log" => keywords.no_log = bool_of(v, "no_log")?,
                        // the other keywords Ansible takes on a role entry: refused, not read
                        // as the role's params
                        k @ ("diff" | "any_errors_fatal" | "run_once" | "timeout" | "throttle" | "connection"
                        | "port" | "debugger" | "module_defaults" | "collections" | "ignore_unreachable"
                        | "delegate_facts") => {
                            return Err(Diag::error(
                                RuleId::UnknownKeyword.as_str(),
                                v.span,
                                format!("pbr does not take `{k}` on a roles: entry"),
                            )
                            .with_help("set it on the role's tasks or on the play"));
                        }
                        other => {
                            params.insert(other.to_string(), v.to_value());
                        }
                    }
                }
                (str_of(name_node, "role")?, params, role_vars, when, tags, name_node.span)
            }
            _ => return Err(err(r.span, "a role entry must be a name or a mapping")),
        };
        when.splice(0..0, inherit_when.iter().cloned());
        tags.extend(inherit_tags.iter().cloned());
        if depth > MAX_ROLE_DEPTH {
            return Err(err(
                span,
                format!("role dependencies nested more than {MAX_ROLE_DEPTH} deep at `{name}` (a cycle?)"),
            ));
        }
        let meta = role_dir(&name, dir).ok().and_then(|p| {
            ["main.yml", "main.yaml", "main"]
                .iter()
                .map(|f| p.join("meta").join(f))
                .find(|f| f.is_file())
                .map(|m| (p, m))
        });
        let (deps, allow_dup) = match &meta {
            Some((_, m)) => match load_doc(m, span)? {
                Some(doc) => (
                    doc.get("dependencies").cloned(),
                    doc.get("allow_duplicates").is_some_and(|v| matches!(v.kind, NodeKind::Bool(true))),
                ),
                None => (None, false),
            },
            None => (None, false),
        };
        // the role's variables: its params, and its entry's `vars` (the params alone are checked
        // against its argument spec, as Ansible's role params are)
        let mut params = args.clone();
        params.extend(role_vars);
        if let Ok(path) = role_dir(&name, dir) {
            let key = (path, Value::Object(params.clone()));
            if !allow_dup && seen.contains(&key) {
                return Ok(());
            }
            seen.push(key);
        }
        if let Some(deps) = deps.filter(|d| !d.is_null()) {
            let items = deps.as_seq().ok_or_else(|| err(deps.span, "dependencies must be a list of roles"))?;
            for d in items {
                self.add_play_role(d, dir, play, seen, &when, &tags, depth + 1)?;
            }
        }
        let (role, mut tasks, handlers) = self.load_role(&name, None, params, args, dir, span, None)?;
        for t in &mut tasks {
            t.when.splice(0..0, when.iter().cloned());
            t.tags.extend(tags.iter().cloned());
            keywords.fill(t);
        }
        let names = if depth == 0 { &mut play.role_names } else { &mut play.dependent_role_names };
        if !names.contains(&role.name) {
            names.push(role.name.clone());
        }
        play.roles.push(role);
        play.tasks.extend(tasks);
        play.handlers.extend(handlers);
        Ok(())
    }

    /// Find and load a role: its tasks (`tasks_from` or main), handlers, defaults and vars.
    /// A role imported or included from another role's tasks (`parent`) also sees the parent's
    /// defaults and vars, under its own, as in Ansible, where a role's variables are visible to
    /// the play from the point it runs.
    #[allow(clippy::too_many_arguments)]
    pub fn load_role(
        &mut self,
        name: &str,
        tasks_from: Option<&str>,
        params: Map<String, Value>,
        args: Map<String, Value>,
        dir: &Path,
        span: Span,
        parent: Option<&Arc<Role>>,
    ) -> R<(Arc<Role>, Vec<Task>, Vec<Task>)> {
        let path = match role_dir(name, dir) {
            Ok(p) => p,
            Err(candidates) => {
                return Err(missing(span, format!("role `{name}` not found")).with_help(format!(
                    "looked in {}",
                    candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", ")
                )));
            }
        };
        let main = |sub: &str| -> Option<PathBuf> {
            ["main.yml", "main.yaml", "main"].iter().map(|f| path.join(sub).join(f)).find(|p| p.is_file())
        };
        let mut var_nodes = vec![];
        let mut load_map = |sub: &str| -> R<Map<String, Value>> {
            match main(sub) {
                Some(p) => match load_doc(&p, span)? {
                    Some(n) => {
                        let m = map_of(&n, sub)?;
                        var_nodes.push(n);
                        Ok(m)
                    }
                    None => Ok(Map::new()),
                },
                None => Ok(Map::new()),
            }
        };
        let mut defaults = load_map("defaults")?;
        let mut vars = load_map("vars")?;
        if let Some(parent) = parent {
            for (own, inherited) in [(&mut defaults, &parent.defaults), (&mut vars, &parent.vars)] {
                let mine = std::mem::replace(own, inherited.clone());
                own.extend(mine);
            }
        }
        let role = Arc::new(Role {
            name: name.rsplit('.').next().unwrap_or(name).to_string(),
            path: path.clone(),
            defaults,
            vars,
            var_nodes,
            parents: parent
                .map(|p| std::iter::once((p.name.clone(), p.path.clone())).chain(p.parents.iter().cloned()).collect())
                .unwrap_or_default(),
        });
        let origin =
            Arc::new(Origin { role: Some(role.clone()), role_params: params, playbook_dir: dir.to_path_buf() });
        let tasks_file = match tasks_from {
            Some(f) => {
                let base = path.join("tasks");
                [base.join(f), base.join(format!("{f}.yml")), base.join(format!("{f}.yaml"))]
                    .into_iter()
                    .find(|p| p.is_file())
                    .ok_or_else(|| missing(span, format!("role `{name}` has no tasks file `{f}`")))
                    .map(Some)?
            }
            None => main("tasks"),
        };
        let mut tasks = match tasks_file {
            Some(p) => self.load_task_file(&p, &origin, span)?,
            None => vec![],
        };
        let entry = tasks_from.unwrap_or("main");
        if let Some(spec) = argument_spec(&path, entry, span)? {
            tasks.insert(0, self.validation_task(&spec, entry, &args, &origin, span)?);
        }
        let handlers = match main("handlers") {
            Some(p) => self.load_task_file(&p, &origin, span)?,
            None => vec![],
        };
        Ok((role, tasks, handlers))
    }

    /// The task Ansible puts before a role's first when the role's argument specs have its entry
    /// point: `validate_argument_spec` with the entry point's `options` and the role's params,
    /// tagged `always`. Its spans point into the spec file.
    fn validation_task(
        &mut self,
        spec: &Node,
        entry: &str,
        args: &Map<String, Value>,
        origin: &Arc<Origin>,
        call: Span,
    ) -> R<Task> {
        let at = spec.span;
        let s = |v: &str| Node::new(NodeKind::Str(v.to_string()), at);
        let mut task_name = format!("Validating arguments against arg spec '{entry}'");
        if let Some(d) = spec.get("short_description").and_then(Node::as_str) {
            task_name.push_str(&format!(" - {d}"));
        }
        let options = spec.get("options").cloned().unwrap_or_else(|| Node::new(NodeKind::Map(vec![]), at));
        let (role, path) =
            origin.role.as_ref().map(|r| (r.name.as_str(), r.path.as_path())).unwrap_or(("", Path::new("")));
        let context = serde_json::json!({"type": "role", "name": role, "argument_spec_name": entry, "path": path.display().to_string()});
        let args = Node::new(
            NodeKind::Map(vec![
                (s("argument_spec"), options),
                (s("provided_arguments"), node_of(&Value::Object(args.clone()), call)),
                (s("validate_args_context"), node_of(&context, at)),
            ]),
            at,
        );
        let task = Node::new(
            NodeKind::Map(vec![
                (s("name"), s(&task_name)),
                (s("validate_argument_spec"), args),
                (s("tags"), Node::new(NodeKind::Seq(vec![s("always")]), at)),
            ]),
            call,
        );
        self.parse_task(&task, origin, path)
    }

    /// Load a task list file (for import_tasks / include_tasks / roles).
    pub fn load_task_file(&mut self, path: &Path, origin: &Arc<Origin>, span: Span) -> R<Vec<Task>> {
        self.enter(path, span)?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let out = match load_doc(path, span)? {
            Some(n) => self.parse_tasks(&n, origin, &dir)?,
            None => vec![],
        };
        self.stack.pop();
        Ok(out)
    }

    pub fn parse_tasks(&mut self, n: &Node, origin: &Arc<Origin>, dir: &Path) -> R<Vec<Task>> {
        if n.is_null() {
            return Ok(vec![]);
        }
        let items =
            n.as_seq().ok_or_else(|| err(n.span, format!("expected a list of tasks, found {}", n.type_name())))?;
        let mut out = Vec::new();
        for item in items {
            let t = match self.parse_task(item, origin, dir) {
                Ok(t) => t,
                Err(d) => {
                    // the task is left out; its error is reported with the file's others
                    self.recovered.push(d);
                    continue;
                }
            };
            // import_tasks / import_role: static, expanded here
            if let Action::Module { name, args, .. } = &t.action {
                let short = short_name(name.as_str());
                if short == "import_tasks" || short == "import_role" {
                    let mut sub = if short == "import_tasks" {
                        let file = args
                            .get("_raw_params")
                            .or_else(|| args.get("file"))
                            .and_then(Value::as_str)
                            .ok_or_else(|| err(t.span, "import_tasks needs a file name"))?;
                        if pbr_syntax::is_template(file) {
                            return Err(err(t.span, "import_tasks is static: its file name cannot be templated")
                                .with_help("use include_tasks for a templated file name"));
                        }
                        let base = if origin.role.is_some() { dir.to_path_buf() } else { origin.playbook_dir.clone() };
                        let p = if base.join(file).exists() { base.join(file) } else { dir.join(file) };
                        self.load_task_file(&p, origin, t.span)?
                    } else {
                        let role = args
                            .get("name")
                            .or_else(|| args.get("role"))
                            .and_then(Value::as_str)
                            .ok_or_else(|| err(t.span, "import_role needs `name:`"))?;
                        let from = args.get("tasks_from").and_then(Value::as_str);
                        let (_, tasks, _) = self.load_role(
                            role,
                            from,
                            t.vars.clone(),
                            Map::new(),
                            &origin.playbook_dir,
                            t.span,
                            origin.role.as_ref(),
                        )?;
                        tasks
                    };
                    for s in &mut sub {
                        s.when.splice(0..0, t.when.iter().cloned());
                        s.tags.extend(t.tags.iter().cloned());
                        for (k, v) in &t.vars {
                            s.vars.entry(k.clone()).or_insert(v.clone());
                        }
                    }
                    out.extend(sub);
                    continue;
                }
            }
            out.push(t);
        }
        Ok(out)
    }

    fn parse_task(&mut self, n: &Node, origin: &Arc<Origin>, dir: &Path) -> R<Task> {
        let entries =
            n.as_map().ok_or_else(|| err(n.span, format!("a task must be a mapping, found {}", n.type_name())))?;
        let mut module: Option<(&Node, &Node)> = None;
        let is_block = n.get("block").is_some();
        for (k, v) in entries {
            let key = k.key_str().unwrap_or_default();
            if TASK_KEYWORDS.contains(&key.as_str()) || (is_block && BLOCK_KEYS.contains(&key.as_str())) {
                continue;
            }
            if key.starts_with("with_") {
                continue;
            }
            if let Some((prev, _)) = module {
                let prev_name = prev.key_str().unwrap_or_default();
                let both_modules = (self.is_module)(&key) || INCLUDE_KINDS.contains(&short_name(&key));
                let mut d = Diag::error(
                    if both_modules { RuleId::MultipleModules.as_str() } else { RuleId::UnknownKeyword.as_str() },
                    k.span,
                    if both_modules {
                        format!("a task calls one module, but this one has `{prev_name}` and `{key}`")
                    } else {
                        format!("unknown task keyword `{key}` (the module here is `{prev_name}`)")
                    },
                );
                if !both_modules {
                    if let Some(s) = did_you_mean(&key, TASK_KEYWORDS.iter().copied()) {
                        d = d.with_help(format!("did you mean `{s}`?"));
                    } else {
                        d = d.with_help(format!("if `{key}` is a param of `{prev_name}`, indent it under the module"));
                    }
                }
                return Err(d);
            }
            module = Some((k, v));
        }
        let name = n.get("name").map(|v| str_of(v, "name")).transpose()?;
        let action = if is_block {
            if let Some((k, _)) = module {
                return Err(Diag::error(
                    RuleId::UnknownKeyword.as_str(),
                    k.span,
                    format!("a block cannot call a module (`{}`)", k.key_str().unwrap_or_default()),
                ));
            }
            let sub = |me: &mut Self, key: &str| -> R<Vec<Task>> {
                match n.get(key) {
                    Some(v) => me.parse_tasks(v, origin, dir),
                    None => Ok(vec![]),
                }
            };
            Action::Block { block: sub(self, "block")?, rescue: sub(self, "rescue")?, always: sub(self, "always")? }
        } else {
            // `module: args`, or `action:`/`local_action:` with `module k=v` or a mapping with
            // `module:` and the args beside it
            let (mname, args_node, mk_span) = match module {
                Some((mk, mv)) => (mk.key_str().unwrap_or_default(), mv.clone(), mk.span),
                None => {
                    let Some(a) = n.get("action").or_else(|| n.get("local_action")) else {
                        return Err(Diag::error(RuleId::NoModule.as_str(), n.span, "this task calls no module")
                            .with_help("add a module, e.g. `command: echo hi`, or check the indentation"));
                    };
                    match &a.kind {
                        NodeKind::Str(s) => {
                            let s = s.trim_start();
                            let (m, rest) = s.split_once(char::is_whitespace).unwrap_or((s, ""));
                            (m.to_string(), Node::new(NodeKind::Str(rest.trim_start().to_string()), a.span), a.span)
                        }
                        NodeKind::Map(entries) => {
                            let m = a
                                .get("module")
                                .ok_or_else(|| err(a.span, "an `action:` mapping names its module with `module:`"))?;
                            // the args beside `module:`, and those of an `args:` mapping within
                            let mut rest = vec![];
                            for (k, v) in entries {
                                match k.key_str().as_deref() {
                                    Some("module") => {}
                                    Some("args") if v.as_map().is_some() => {
                                        rest.extend(v.as_map().unwrap_or_default().iter().cloned())
                                    }
                                    _ => rest.push((k.clone(), v.clone())),
                                }
                            }
                            (str_of(m, "module")?, Node::new(NodeKind::Map(rest), a.span), m.span)
                        }
                        _ => return Err(err(a.span, "`action:` must be `module k=v` or a mapping with `module:`")),
                    }
                }
            };
            let mv = args_node.clone();
            let short = short_name(&mname).to_string();
            if !(self.is_module)(&mname) && !INCLUDE_KINDS.contains(&short.as_str()) && !ansible_only(&mname) {
                let mut d = Diag::error(RuleId::UnknownModule.as_str(), mk_span, format!("unknown module `{mname}`"));
                d.subject = Some(mname.clone());
                return Err(d);
            }
            let mut args = match &args_node.kind {
                NodeKind::Map(_) => match args_node.to_value() {
                    Value::Object(m) => m,
                    _ => Map::new(),
                },
                NodeKind::Null => Map::new(),
                NodeKind::Str(s)
                    if !FREE_FORM_MODULES.contains(&short.as_str())
                        && !matches!(short.as_str(), "include_tasks" | "import_tasks" | "meta" | "include_vars")
                        && whole_template(s) =>
                {
                    let mut p = Map::new();
                    p.insert(ARGS_TEMPLATE.into(), Value::String(s.clone()));
                    p
                }
                NodeKind::Str(s) => {
                    let free_form = FREE_FORM_MODULES.contains(&short.as_str())
                        || matches!(
                            short.as_str(),
                            "include_tasks" | "import_tasks" | "meta" | "include_vars" | "set_fact" | "debug"
                        );
                    if FREE_FORM_MODULES.contains(&short.as_str()) {
                        let (mut p, rest) = parse_kv(s, Some(FREE_FORM_KEYS));
                        if !rest.is_empty() {
                            p.insert("_raw_params".into(), Value::String(rest));
                        }
                        p
                    } else if free_form && !s.contains('=') {
                        // the words, as Ansible's parse_kv joins them (a folded `>` scalar's
                        // trailing newline goes)
                        let mut p = Map::new();
                        p.insert("_raw_params".into(), Value::String(s.trim().to_string()));
                        p
                    } else {
                        let (p, rest) = parse_kv(s, None);
                        if !rest.is_empty() {
                            return Err(Diag::error(
                                RuleId::BadArgs.as_str(),
                                args_node.span,
                                format!("cannot read `{rest}` as key=value arguments of `{mname}`"),
                            )
                            .with_help("write the arguments as a mapping under the module"));
                        }
                        p
                    }
                }
                _ => {
                    return Err(Diag::error(
                        RuleId::BadArgs.as_str(),
                        args_node.span,
                        format!(
                            "arguments of `{mname}` must be a mapping or a key=value string, found {}",
                            args_node.type_name()
                        ),
                    ));
                }
            };
            if let Some(extra) = n.get("args") {
                for (k, v) in map_of(extra, "args")? {
                    args.entry(k).or_insert(v);
                }
            }
            let args = Value::Object(args);
            match short.as_str() {
                "include_tasks" => Action::IncludeTasks {
                    file: args
                        .get("_raw_params")
                        .or_else(|| args.get("file"))
                        .and_then(Value::as_str)
                        .ok_or_else(|| err(mv.span, "include_tasks needs a file name"))?
                        .to_string(),
                    vars: Map::new(),
                },
                "include_role" => Action::IncludeRole {
                    name: args
                        .get("name")
                        .or_else(|| args.get("role"))
                        .and_then(Value::as_str)
                        .ok_or_else(|| err(mv.span, "include_role needs `name:`"))?
                        .to_string(),
                    tasks_from: args.get("tasks_from").and_then(Value::as_str).map(str::to_string),
                    vars: Map::new(),
                },
                "meta" => Action::Meta(
                    args.get("_raw_params")
                        .and_then(Value::as_str)
                        .ok_or_else(|| err(mv.span, "meta needs an action, e.g. `meta: flush_handlers`"))?
                        .to_string(),
                ),
                _ => Action::Module { name: mname.clone(), args, args_node },
            }
        };
        let mut loop_ = None;
        for (k, v) in entries {
            let key = k.key_str().unwrap_or_default();
            let spec = match key.as_str() {
                "loop" => LoopSpec::Items { value: v.to_value(), flatten: false, lookup: false },
                "with_items" => LoopSpec::Items { value: v.to_value(), flatten: true, lookup: true },
                "with_list" => LoopSpec::Items { value: v.to_value(), flatten: false, lookup: true },
                "with_dict" => LoopSpec::Dict(v.to_value()),
                "with_fileglob" => LoopSpec::Fileglob(v.to_value()),
                "with_subelements" => LoopSpec::Subelements(v.to_value()),
                "with_nested" | "with_cartesian" => LoopSpec::Nested(v.to_value()),
                "with_together" => LoopSpec::Together(v.to_value()),
                "with_sequence" => LoopSpec::Sequence(v.to_value()),
                "with_indexed_items" => LoopSpec::IndexedItems(v.to_value()),
                "with_flattened" => LoopSpec::Flattened(v.to_value()),
                "with_first_found" => LoopSpec::FirstFound(v.to_value()),
                k2 if k2.starts_with("with_") => {
                    return Err(Diag::error(
                        RuleId::UnknownKeyword.as_str(),
                        k.span,
                        format!("`{k2}` is not supported"),
                    )
                    .with_help("use `loop:` with a lookup or filter"));
                }
                _ => continue,
            };
            if loop_.is_some() {
                return Err(err(k.span, "a task can have only one loop"));
            }
            loop_ = Some(spec);
        }
        let mut loop_control = LoopControl::default();
        if let Some(lc) = n.get("loop_control") {
            for (k, v) in lc.as_map().ok_or_else(|| err(lc.span, "loop_control must be a mapping"))? {
                match k.key_str().unwrap_or_default().as_str() {
                    "loop_var" => loop_control.loop_var = Some(str_of(v, "loop_var")?),
                    "index_var" => loop_control.index_var = Some(str_of(v, "index_var")?),
                    "label" => loop_control.label = Some(str_of(v, "label")?),
                    "extended" => loop_control.extended = bool_of(v, "extended")?,
                    "extended_allitems" => loop_control.no_allitems = !bool_of(v, "extended_allitems")?,
                    "pause" => {
                        loop_control.pause = Some(match &v.kind {
                            NodeKind::Int(i) => *i as f64,
                            NodeKind::Float(f) => *f,
                            _ => return Err(err(v.span, "pause must be a number")),
                        })
                    }
                    other => {
                        return Err(Diag::error(
                            RuleId::UnknownKeyword.as_str(),
                            k.span,
                            format!("unknown loop_control key `{other}`"),
                        ));
                    }
                }
            }
        }
        // add_host bypasses the host loop: once per task, as Ansible runs it
        let bypass = matches!(&action, Action::Module { name, .. } if short_name(name) == "add_host");
        let t = Task {
            name,
            span: n.span,
            node: n.clone(),
            action,
            when: n.get("when").map(cond_list).unwrap_or_default(),
            loop_,
            loop_control,
            register: n.get("register").map(|v| str_of(v, "register")).transpose()?,
            notify: n.get("notify").map(|v| str_list_nocomma(v, "notify")).transpose()?.unwrap_or_default(),
            listen: n.get("listen").map(|v| str_list_nocomma(v, "listen")).transpose()?.unwrap_or_default(),
            changed_when: n.get("changed_when").map(cond_list),
            failed_when: n.get("failed_when").map(cond_list),
            ignore_errors: n.get("ignore_errors").map(Node::to_value),
            ignore_unreachable: n
                .get("ignore_unreachable")
                .map(|v| bool_of(v, "ignore_unreachable"))
                .transpose()?
                .unwrap_or(false),
            tags: n.get("tags").map(|v| str_list(v, "tags")).transpose()?.unwrap_or_default(),
            become_: n.get("become").map(Node::to_value),
            become_user: n.get("become_user").map(|v| str_of(v, "become_user")).transpose()?,
            become_method: n.get("become_method").map(|v| str_of(v, "become_method")).transpose()?,
            remote_user: n.get("remote_user").map(|v| str_of(v, "remote_user")).transpose()?,
            vars: n.get("vars").map(|v| map_of(v, "vars")).transpose()?.unwrap_or_default(),
            delegate_to: if n.get("local_action").is_some() {
                Some("localhost".into())
            } else {
                n.get("delegate_to").map(|v| str_of(v, "delegate_to")).transpose()?
            },
            // add_host bypasses the host loop: once per task, as Ansible runs it
            run_once: n.get("run_once").map(|v| bool_of(v, "run_once")).transpose()?.unwrap_or(false) || bypass,
            retries: n.get("retries").map(Node::to_value),
            until: n.get("until").map(cond_list),
            delay: n.get("delay").map(Node::to_value),
            throttle: n.get("throttle").map(Node::to_value),
            no_log: n.get("no_log").map(|v| bool_of(v, "no_log")).transpose()?.unwrap_or(false),
            check_mode: n.get("check_mode").map(|v| bool_of(v, "check_mode")).transpose()?,
            diff: n.get("diff").map(|v| bool_of(v, "diff")).transpose()?,
            environment: n.get("environment").map(Node::to_value),
            timeout: n.get("timeout").map(Node::to_value),
            any_errors_fatal: n
                .get("any_errors_fatal")
                .map(|v| bool_of(v, "any_errors_fatal"))
                .transpose()?
                .unwrap_or(false),
            origin: origin.clone(),
        };
        Ok(t)
    }
}

fn str_list_nocomma(n: &Node, what: &str) -> R<Vec<String>> {
    match &n.kind {
        NodeKind::Seq(items) => items.iter().map(|i| str_of(i, what)).collect(),
        NodeKind::Null => Ok(vec![]),
        _ => str_of(n, what).map(|s| vec![s]),
    }
}

fn parse_serial(n: &Node) -> R<Vec<Serial>> {
    let one = |x: &Node| -> R<Serial> {
        match &x.kind {
            NodeKind::Int(i) if *i > 0 => Ok(Serial::Count(*i as usize)),
            NodeKind::Str(s) if s.ends_with('%') => s
                .trim_end_matches('%')
                .trim()
                .parse::<f64>()
                .map(Serial::Percent)
                .map_err(|_| err(x.span, format!("bad serial value {s:?}"))),
            NodeKind::Str(s) => {
                s.parse::<usize>().map(Serial::Count).map_err(|_| err(x.span, format!("bad serial value {s:?}")))
            }
            _ => Err(err(x.span, "serial must be a positive number, a percentage or a list of them")),
        }
    };
    match &n.kind {
        NodeKind::Seq(items) => items.iter().map(one).collect(),
        _ => Ok(vec![one(n)?]),
    }
}

/// Which fact groups `gather_subset` asks for (Ansible's names: `all`, `min`, `hardware`,
/// `network`, each negatable with `!`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subset {
    pub hardware: bool,
    pub network: bool,
}

impl Default for Subset {
    fn default() -> Self {
        Subset { hardware: true, network: true }
    }
}

impl Subset {
    /// From `gather_subset` (a list or a comma-separated string). Unknown names are errors.
    pub fn parse(v: Option<&Value>) -> Result<Subset, String> {
        let items: Vec<String> = match v {
            None | Some(Value::Null) => return Ok(Subset::default()),
            Some(Value::String(s)) => s.split(',').map(|x| x.trim().to_string()).collect(),
            Some(Value::Array(a)) => a.iter().map(|x| x.as_str().unwrap_or("").trim().to_string()).collect(),
            Some(other) => return Err(format!("gather_subset must be a list of names, got {other}")),
        };
        // as Ansible: with only exclusions, the rest of `all` is gathered
        let mut s = if items.iter().all(|i| i.starts_with('!')) {
            Subset::default()
        } else {
            Subset { hardware: false, network: false }
        };
        for i in items.iter().filter(|i| !i.is_empty()) {
            let (neg, name) = match i.strip_prefix('!') {
                Some(n) => (true, n),
                None => (false, i.as_str()),
            };
            match name {
                "all" => {
                    s.hardware = !neg;
                    s.network = !neg;
                }
                "min" => {}
                "hardware" | "devices" | "mounts" | "processor" | "memory" => s.hardware = !neg,
                "network" | "interfaces" | "default_ipv4" | "default_ipv6" => s.network = !neg,
                "virtual" | "ohai" | "facter" | "distribution" | "date_time" | "env" | "user" | "platform"
                | "pkg_mgr" | "service_mgr" | "dns" | "local" | "lsb" | "python" | "selinux" | "apparmor" | "caps"
                | "cmdline" | "fips" | "ssh_pub_keys" => {}
                other => return Err(format!("unknown gather_subset `{other}` (all, min, hardware, network)")),
            }
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kv_parsing() {
        let (p, rest) = parse_kv("path=/tmp/x mode=0644 content='a b'", None);
        assert_eq!(p["path"], "/tmp/x");
        assert_eq!(p["mode"], "0644");
        assert_eq!(p["content"], "a b");
        assert_eq!(rest, "");
        let (p, rest) = parse_kv("echo {{ a }} b=c chdir=/tmp", Some(FREE_FORM_KEYS));
        assert_eq!(p["chdir"], "/tmp");
        assert_eq!(rest, "echo {{ a }} b=c");
        // a multi-line script keeps its newlines and spacing (heredocs), with the options cut out
        let script = "cat <<EOT > /tmp/x\n  one  two\nEOT\nchdir=/srv\necho  done creates=/y";
        let (p, rest) = parse_kv(script, Some(FREE_FORM_KEYS));
        assert_eq!((p["chdir"].as_str(), p["creates"].as_str()), (Some("/srv"), Some("/y")));
        assert_eq!(rest, "cat <<EOT > /tmp/x\n  one  two\nEOT\necho  done");
        assert_eq!(split_args("a 'b c' {{ d e }}\nf"), ["a", "'b c'", "{{ d e }}", "f"]);
    }

    #[test]
    fn distance() {
        assert_eq!(did_you_mean("whne", TASK_KEYWORDS.iter().copied()), Some("when"));
        assert_eq!(did_you_mean("zzzzzz", TASK_KEYWORDS.iter().copied()), None);
        assert_eq!(did_you_mean("cpoy", ["copy", "command"]), Some("copy"));
    }

    #[test]
    fn gather_subset_names() {
        assert_eq!(Subset::parse(None).unwrap(), Subset::default());
        assert_eq!(Subset::parse(Some(&json!("!hardware"))).unwrap(), Subset { hardware: false, network: true });
        assert_eq!(Subset::parse(Some(&json!(["network"]))).unwrap(), Subset { hardware: false, network: true });
        assert_eq!(Subset::parse(Some(&json!(["!all", "!min"]))).unwrap(), Subset { hardware: false, network: false });
        assert!(Subset::parse(Some(&json!(["nonsense"]))).is_err());
    }
}
