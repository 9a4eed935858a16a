//! The analysis over loaded playbooks: params, templates and variables, handlers, files,
//! safety and inventory rules.

use super::RuleId;
use super::params::{self, ArgNodes};
use super::{diag, remap};
use crate::diag::{Diag, Severity};
use crate::inventory::Inventory;
use crate::module::Registry;
use crate::playbook::{Action, Loader, Play, Playbook, Role, Task, short_name};
use crate::source::{Span, add_source, source};
use crate::template::{Templar, TemplateError};
use crate::yaml::{Node, NodeKind};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Actions the engine runs itself (no module in the registry): the playbook loader's list.
pub use crate::playbook::INCLUDE_KINDS as ENGINE_ACTIONS;

/// Variables Ansible (and pbr) define without the playbook saying so. Names starting with
/// `ansible_` (facts, connection and magic vars) count as defined too.
pub const MAGIC_VARS: &[&str] = &[
    "inventory_hostname",
    "inventory_hostname_short",
    "inventory_dir",
    "inventory_file",
    "groups",
    "hostvars",
    "group_names",
    "play_hosts",
    "playbook_dir",
    "role_path",
    "role_name",
    "role_names",
    "omit",
    "environment",
    "vars",
    "lookup",
    "query",
    "q",
    "now",
    "undef",
    "range",
    "dict",
    "lipsum",
    "cycler",
    "joiner",
    "namespace",
    "template_host",
    "template_mtime",
    "ansible_managed",
    "template_path",
    "template_fullpath",
    "template_run_date",
    "template_uid",
    "template_destpath",
    "true",
    "false",
    "none",
    "True",
    "False",
    "None",
];

/// Short names the playbook loader accepts as a module (registry or engine action).
pub fn is_module(registry: &Registry, name: &str) -> bool {
    registry.contains(name) || ENGINE_ACTIONS.contains(&strip_collection(name))
}

fn strip_collection(name: &str) -> &str {
    let s = short_name(name);
    s.strip_prefix("ansible.posix.").or_else(|| s.strip_prefix("community.general.")).unwrap_or(s)
}

/// Commands with a module that manages the same thing: (command, candidate modules).
const COMMANDS: &[(&str, &[&str])] = &[
    ("systemctl", &["systemd", "service"]),
    ("apt-get", &["package", "apt"]),
    ("apt", &["package", "apt"]),
    ("dnf", &["package", "dnf"]),
    ("yum", &["package", "yum"]),
    ("pacman", &["package", "pacman"]),
    ("lvcreate", &["lvol", "lvm"]),
    ("lvconvert", &["lvm_cache", "lvol"]),
    ("vgcreate", &["lvg"]),
    ("make-bcache", &["bcache"]),
    ("targetcli", &["targetcli", "iscsi_target"]),
    ("mkinitcpio", &["mkinitcpio_hook", "initramfs"]),
    ("wpa_passphrase", &["wpa", "wpa_supplicant"]),
    ("mkfs", &["filesystem"]),
];

/// Per-play handler bookkeeping.
#[derive(Default)]
struct PlayInfo {
    /// Handler names (plain and `role : name`) and `listen:` topics.
    handler_names: HashSet<String>,
    /// (names and topics of one handler, where to point).
    handlers: Vec<(Vec<String>, Span)>,
    /// (notified name, span).
    notified: Vec<(String, Span)>,
    /// A templated include: some tasks (and notifications) are unknown.
    unresolved: bool,
}

pub struct Analyzer<'a> {
    /// The `when:` of the task being read: a variable it tests (`x is defined`) is guarded in
    /// the task's other templates too (a loop over `x` under `when: x is defined`).
    when_text: String,
    registry: &'a Registry,
    templar: &'a Templar,
    lint: bool,
    pub diags: Vec<Diag>,
    inv_defined: HashSet<String>,
    defined: HashSet<String>,
    /// Variables may come from places lint cannot read (templated vars files...).
    dynamic_vars: bool,
    refs: Vec<(String, Span)>,
    templates_seen: HashSet<PathBuf>,
    roles_seen: HashSet<PathBuf>,
    /// Files entered through `include_tasks`/`include_role` (with the include's span), for cycles.
    include_stack: Vec<(PathBuf, Span)>,
    /// The playbook runs tasks on the controller (which may create files for later tasks).
    local_tasks: bool,
}

impl<'a> Analyzer<'a> {
    pub fn new(registry: &'a Registry, templar: &'a Templar, inv: &Inventory, lint: bool) -> Analyzer<'a> {
        let mut inv_defined = HashSet::new();
        let mut add = |m: &serde_json::Map<String, Value>| inv_defined.extend(m.keys().cloned());
        for g in inv.groups.values() {
            add(&g.vars);
        }
        for h in inv.hosts.values() {
            add(&h.vars);
        }
        for files in [&inv.group_vars_files, &inv.host_vars_files, &inv.playbook_group_vars, &inv.playbook_host_vars] {
            for m in files.values() {
                add(m);
            }
        }
        Analyzer {
            registry,
            templar,
            lint,
            diags: vec![],
            inv_defined,
            defined: HashSet::new(),
            dynamic_vars: false,
            when_text: String::new(),
            refs: vec![],
            templates_seen: HashSet::new(),
            roles_seen: HashSet::new(),
            include_stack: vec![],
            local_tasks: false,
        }
    }

    fn push(&mut self, d: Diag) {
        self.diags.push(d);
    }

    pub fn playbook(&mut self, pb: &Playbook) {
        self.defined = self.inv_defined.clone();
        self.dynamic_vars = false;
        self.refs.clear();
        self.roles_seen.clear();
        self.local_tasks = pb.plays.iter().any(|p| {
            p.hosts.contains("localhost")
                || p.connection.as_deref() == Some("local")
                || [&p.pre_tasks, &p.tasks, &p.post_tasks, &p.handlers].iter().any(|ts| any_local(ts))
        });
        for play in &pb.plays {
            self.play(play);
        }
        self.finish_refs();
    }

    fn play(&mut self, play: &Play) {
        let n = &play.node;
        if let Some(v) = n.get("vars") {
            self.vars_node(v);
        }
        if let Some(vp) = n.get("vars_prompt") {
            for item in vp.as_seq().unwrap_or_default() {
                if let Some(name) = item.get("name").and_then(Node::as_str) {
                    self.defined.insert(name.to_string());
                }
            }
            if let Some(m) = vp.as_map() {
                self.defined.extend(m.iter().filter_map(|(k, _)| k.key_str()));
            }
        }
        for (alts, span) in &play.vars_files {
            if alts.iter().any(|n| Templar::is_template(n)) {
                self.dynamic_vars = true;
                for name in alts {
                    self.tmpl_str(name, *span);
                }
                continue;
            }
            let paths: Vec<PathBuf> = alts
                .iter()
                .map(|name| if Path::new(name).is_absolute() { PathBuf::from(name) } else { play.dir.join(name) })
                .collect();
            let Some(p) = paths.iter().find(|p| p.is_file()).cloned() else {
                let looked: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                self.push(
                    diag(RuleId::MissingFile, *span, format!("vars file `{}` not found", alts.join("`, `")))
                        .with_label(format!("looked for {}", looked.join(", "))),
                );
                continue;
            };
            match crate::playbook::load_doc(&p, *span) {
                Ok(Some(doc)) => self.vars_node(&doc),
                Ok(None) => {}
                Err(d) => self.push(remap(d)),
            }
        }
        for key in ["hosts", "name", "environment", "become_user", "remote_user"] {
            if let Some(v) = n.get(key) {
                self.scan(v);
            }
        }
        for r in &play.roles {
            self.role(r);
        }
        let mut info = PlayInfo::default();
        self.tasks(&play.pre_tasks, &mut info, false);
        self.tasks(&play.tasks, &mut info, false);
        self.tasks(&play.post_tasks, &mut info, false);
        self.tasks(&play.handlers, &mut info, true);
        self.handler_rules(&info);
    }

    /// A `vars:` mapping (play, task, vars file, role defaults): names, templates, secrets.
    fn vars_node(&mut self, v: &Node) {
        let Some(m) = v.as_map() else {
            return;
        };
        for (k, val) in m {
            if let Some(name) = k.key_str() {
                self.defined.insert(name.clone());
                self.secret(&name, k, val);
            }
            self.scan(val);
        }
    }

    fn role(&mut self, r: &Arc<Role>) {
        if !self.roles_seen.insert(r.path.clone()) {
            return;
        }
        self.defined.extend(r.defaults.keys().cloned());
        self.defined.extend(r.vars.keys().cloned());
        for n in &r.var_nodes {
            self.vars_node(n);
        }
    }

    fn tasks(&mut self, tasks: &[Task], info: &mut PlayInfo, handler: bool) {
        for t in tasks {
            self.task(t, info, handler);
            match &t.action {
                Action::Block { block, rescue, always } => {
                    self.tasks(block, info, handler);
                    self.tasks(rescue, info, handler);
                    self.tasks(always, info, handler);
                }
                Action::IncludeTasks { file, .. } => self.include_tasks(t, file, info, handler),
                Action::IncludeRole { name, tasks_from, .. } => {
                    if Templar::is_template(name) || tasks_from.as_deref().is_some_and(Templar::is_template) {
                        info.unresolved = true;
                        continue;
                    }
                    let reg = self.registry;
                    let is_mod = |n: &str| is_module(reg, n);
                    let dir = &t.origin.playbook_dir;
                    let entered = crate::playbook::role_tasks_file(name, tasks_from.as_deref(), dir);
                    if entered.as_deref().is_some_and(|e| self.recursion_ended_at_run_time(t, e)) {
                        continue;
                    }
                    let mut loader =
                        Loader { is_module: &is_mod, stack: self.chain(t), reentrant: 0, recovered: vec![] };
                    match loader.load_role(
                        name,
                        tasks_from.as_deref(),
                        t.vars.clone(),
                        Map::new(),
                        dir,
                        t.span,
                        t.origin.role.as_ref(),
                    ) {
                        Ok((role, sub, handlers)) => {
                            for d in std::mem::take(&mut loader.recovered) {
                                self.push(super::with_module_hint(remap(d), self.registry));
                            }
                            self.role(&role);
                            self.defined.extend(t.vars.keys().cloned());
                            let depth = self.include_stack.len();
                            if let Some(e) = entered {
                                self.include_stack.push((crate::playbook::canonical(&e), t.span));
                            }
                            self.tasks(&sub, info, handler);
                            self.tasks(&handlers, info, true);
                            self.include_stack.truncate(depth);
                        }
                        Err(d) => {
                            let d = super::with_module_hint(remap(d), self.registry);
                            // a missing role is certain; other errors come with their own location
                            self.push(d);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Whether include `t` leads back to `target`, a file on its chain, under a `when:`: a
    /// recursion that the condition may end at run time (Ansible allows it; the run bounds its
    /// depth). Lint follows it no further. Without a `when:` it never ends: a cycle, an error.
    fn recursion_ended_at_run_time(&self, t: &Task, target: &Path) -> bool {
        let target = crate::playbook::canonical(target);
        !t.when.is_empty() && self.chain(t).iter().any(|(p, _)| *p == target)
    }

    /// The include chain that leads to task `t`, ending with the file `t` is in.
    fn chain(&self, t: &Task) -> Vec<(PathBuf, Span)> {
        let mut chain = self.include_stack.clone();
        if let Some(own) = t.span.path().map(|p| crate::playbook::canonical(&p))
            && !chain.iter().any(|(p, _)| *p == own)
        {
            chain.push((own, Span::none()));
        }
        chain
    }

    fn include_tasks(&mut self, t: &Task, file: &str, info: &mut PlayInfo, handler: bool) {
        if Templar::is_template(file) {
            info.unresolved = true;
            return;
        }
        let base = match &t.origin.role {
            Some(r) => r.path.join("tasks"),
            None => t.span.path().and_then(|p| p.parent().map(Path::to_path_buf)).unwrap_or_default(),
        };
        let p = if Path::new(file).is_absolute() { PathBuf::from(file) } else { base.join(file) };
        let p = if p.exists() { p } else { t.origin.playbook_dir.join(file) };
        if !p.is_file() {
            let span = module_value(t).map(|v| v.span).unwrap_or(t.span);
            self.push(diag(RuleId::MissingFile, span, format!("tasks file `{file}` not found")).with_label(format!(
                "looked in {} and {}",
                base.display(),
                t.origin.playbook_dir.display()
            )));
            return;
        }
        if self.recursion_ended_at_run_time(t, &p) {
            return;
        }
        let reg = self.registry;
        let is_mod = |n: &str| is_module(reg, n);
        // a cycle is an error of the include that closes it (the loader names every step)
        let mut loader = Loader { is_module: &is_mod, stack: self.chain(t), reentrant: 0, recovered: vec![] };
        match loader.load_task_file(&p, &t.origin, t.span) {
            Ok(sub) => {
                for d in std::mem::take(&mut loader.recovered) {
                    self.push(super::with_module_hint(remap(d), self.registry));
                }
                self.include_stack.push((crate::playbook::canonical(&p), t.span));
                self.tasks(&sub, info, handler);
                self.include_stack.pop();
            }
            Err(d) => self.push(super::with_module_hint(remap(d), self.registry)),
        }
    }

    fn task(&mut self, t: &Task, info: &mut PlayInfo, handler: bool) {
        if let Some(r) = &t.register {
            self.defined.insert(r.clone());
        }
        self.defined.extend(t.vars.keys().cloned());
        if t.loop_.is_some() {
            self.defined.insert(t.loop_control.loop_var.clone().unwrap_or_else(|| "item".into()));
            if let Some(i) = &t.loop_control.index_var {
                self.defined.insert(i.clone());
            }
        }
        if let Some(role) = &t.origin.role {
            self.role(role);
            self.defined.extend(t.origin.role_params.keys().cloned());
        }
        if handler {
            let mut names: Vec<String> = t.listen.clone();
            if let Some(n) = &t.name {
                names.push(n.clone());
                if let Some(r) = &t.origin.role {
                    names.push(format!("{} : {n}", r.name));
                }
            }
            info.handler_names.extend(names.iter().cloned());
            let span = t.node.get("name").map(|n| n.span).unwrap_or(t.span);
            if !t.listen.is_empty() || t.name.is_some() {
                info.handlers.push((names, span));
            }
        }
        if let Some(nt) = t.node.get("notify") {
            let items: Vec<&Node> = match nt.as_seq() {
                Some(s) => s.iter().collect(),
                None => vec![nt],
            };
            for i in items {
                if let Some(name) = i.key_str() {
                    info.notified.push((name, i.span));
                }
            }
        }
        self.task_templates(t);
        if let Some(v) = t.node.get("vars") {
            for (k, val) in v.as_map().unwrap_or_default() {
                if let Some(name) = k.key_str() {
                    self.secret(&name, k, val);
                }
            }
        }
        if let Action::Module { name, args, args_node } = &t.action {
            self.module_task(t, name, args, args_node);
        }
    }

    /// Templates and expressions anywhere in a task.
    fn task_templates(&mut self, t: &Task) {
        let Some(entries) = t.node.as_map() else {
            return;
        };
        let is_block = matches!(t.action, Action::Block { .. });
        self.when_text = match t.node.get("when").map(|w| &w.kind) {
            Some(NodeKind::Str(w)) => w.clone(),
            Some(NodeKind::Seq(ws)) => ws.iter().filter_map(Node::as_str).collect::<Vec<_>>().join(" and "),
            _ => String::new(),
        };
        let module = match &t.action {
            Action::Module { name, .. } => strip_collection(name).to_string(),
            _ => String::new(),
        };
        for (k, v) in entries {
            let key = k.key_str().unwrap_or_default();
            match key.as_str() {
                "block" | "rescue" | "always" if is_block => {}
                "when" | "changed_when" | "failed_when" | "until" => self.scan_expr(v),
                _ if strip_collection(&key) == "assert" && module == "assert" && v.as_map().is_some() => {
                    for (ak, av) in v.as_map().unwrap_or_default() {
                        if ak.as_str() == Some("that") {
                            self.scan_expr(av);
                        } else {
                            self.scan(av);
                        }
                    }
                }
                _ if strip_collection(&key) == "debug" && module == "debug" && v.as_map().is_some() => {
                    for (ak, av) in v.as_map().unwrap_or_default() {
                        if ak.as_str() == Some("var") {
                            self.scan_expr(av);
                        } else {
                            self.scan(av);
                        }
                    }
                }
                _ => self.scan(v),
            }
        }
        self.when_text.clear();
    }

    /// Every string in a node as a template.
    fn scan(&mut self, n: &Node) {
        if n.tag.as_deref() == Some("unsafe") {
            return;
        }
        match &n.kind {
            NodeKind::Str(s) => self.tmpl_str(s, n.span),
            NodeKind::Seq(items) => items.iter().for_each(|i| self.scan(i)),
            NodeKind::Map(m) => {
                for (k, v) in m {
                    self.scan(k);
                    self.scan(v);
                }
            }
            _ => {}
        }
    }

    /// Conditions: bare expressions (a string, or a list of them).
    fn scan_expr(&mut self, n: &Node) {
        match &n.kind {
            NodeKind::Str(s) => {
                match self.templar.referenced_vars_expr(s) {
                    Ok(names) => self.add_refs(s, names, n.span),
                    Err(e) => {
                        let span = map_line(n, s, e.line);
                        self.template_error(&e, span)
                    }
                };
            }
            NodeKind::Seq(items) => items.iter().for_each(|i| self.scan_expr(i)),
            _ => {}
        }
    }

    fn tmpl_str(&mut self, s: &str, span: Span) {
        if !Templar::is_template(s) {
            return;
        }
        match self.templar.referenced_vars(s) {
            Ok(names) => self.add_refs(s, names, span),
            Err(e) => {
                let node = Node::new(NodeKind::Str(s.to_string()), span);
                let at = map_line(&node, s, e.line);
                self.template_error(&e, at);
            }
        }
    }

    fn template_error(&mut self, e: &TemplateError, span: Span) {
        self.push(diag(RuleId::TemplateSyntax, span, format!("template syntax: {}", e.message)));
    }

    fn add_refs(&mut self, text: &str, names: std::collections::BTreeSet<String>, span: Span) {
        let guarded = text.contains("default") || text.contains("defined") || text.contains("d(");
        for name in names {
            if guarded && is_guarded(text, &name) || !self.when_text.is_empty() && is_guarded(&self.when_text, &name) {
                continue;
            }
            self.refs.push((name, span));
        }
    }

    fn is_defined(&self, name: &str) -> bool {
        self.defined.contains(name) || name.starts_with("ansible_") || MAGIC_VARS.contains(&name)
    }

    fn finish_refs(&mut self) {
        if !self.lint {
            return;
        }
        let refs = std::mem::take(&mut self.refs);
        let mut seen = HashSet::new();
        for (name, span) in refs {
            if self.is_defined(&name) || !seen.insert((name.clone(), span)) {
                continue;
            }
            let mut d =
                diag(RuleId::UndefinedVar, narrow(span, &name), format!("variable `{name}` is defined nowhere"));
            if let Some(s) = crate::playbook::did_you_mean(&name, self.defined.iter().map(String::as_str)) {
                d = d.with_help(format!("did you mean `{s}`?"));
            } else {
                d = d.with_help("define it in vars, group_vars/host_vars or the inventory, or pass it with -e");
            }
            if self.dynamic_vars {
                d.severity = Severity::Warning;
                d = d.with_note("some variables come from files named by templates, which lint cannot read");
            }
            if let Some(v) = crate::vault::unopened().first() {
                d.severity = Severity::Warning;
                d = d.with_note(format!(
                    "{} is vault-encrypted and was not read: give lint a vault password (--vault-password-file) to check its variables",
                    v.display()
                ));
            }
            self.diags.push(d);
        }
    }

    fn module_task(&mut self, t: &Task, name: &str, args: &Value, args_node: &Node) {
        // args written as one template are known only at run time
        if let Some(Value::String(tmpl)) = args.get(crate::playbook::ARGS_TEMPLATE) {
            self.tmpl_str(tmpl, args_node.span);
            return;
        }
        let short = strip_collection(name);
        let key_span = t
            .node
            .as_map()
            .and_then(|m| {
                m.iter().find(|(k, _)| {
                    let ks = k.key_str().unwrap_or_default();
                    ks == name || ks == "action" || ks == "local_action"
                })
            })
            .map(|(k, _)| k.span)
            .unwrap_or(t.span);
        let nodes = ArgNodes { module: args_node, args: t.node.get("args"), key_span };
        match short {
            "set_fact" => {
                if let Some(m) = args.as_object() {
                    for k in m.keys() {
                        if Templar::is_template(k) {
                            self.dynamic_vars = true;
                        } else if k != "cacheable" {
                            self.defined.insert(k.clone());
                        }
                    }
                } else {
                    self.dynamic_vars = true;
                }
                return;
            }
            "include_vars" => {
                self.include_vars(t, args, &nodes);
                return;
            }
            // a role's params against its argument spec (the task the loader put first)
            "validate_argument_spec" => {
                if let (Some(Value::Object(spec)), Some(Value::Object(given))) =
                    (args.get("argument_spec"), args.get("provided_arguments"))
                {
                    let at = args_node.get("provided_arguments").map_or(t.span, |n| n.span);
                    let role = args.pointer("/validate_args_context/name").and_then(Value::as_str);
                    for e in crate::argspec::check_literal(spec, given) {
                        let msg = match role {
                            Some(r) => format!("role `{r}`: {e}"),
                            None => e,
                        };
                        self.push(super::diag(RuleId::RoleArgs, at, msg));
                    }
                }
            }
            // the new host's variables (for the plays that follow)
            "add_host" => {
                if let Some(m) = args.as_object() {
                    for k in m.keys() {
                        if !["name", "hostname", "host", "groups", "group", "groupname"].contains(&k.as_str()) {
                            self.defined.insert(k.clone());
                        }
                    }
                }
            }
            // facts that become variables of their own
            "service_facts" => {
                self.defined.insert("services".into());
            }
            _ => {}
        }
        // an Ansible module pbr lacks: the run fails the task if it is reached; lint says so
        if self.lint && self.registry.get(name).is_none() && crate::playbook::ansible_only(name) {
            self.push(
                diag(
                    RuleId::UnknownModule,
                    key_span,
                    format!("`{name}` is an Ansible module that pbr does not implement"),
                )
                .with_help("the task fails when it runs; `pbr doc` lists the modules pbr has"),
            );
        }
        if let Some(module) = self.registry.get(name) {
            let module = module.clone();
            // a task that ignores its errors may fail on purpose (`EXPECTED FAILURE` tasks): the
            // run's preflight lets it fail when it runs, as Ansible does; lint still says
            let expected_failure = t.ignore_errors.as_ref().is_some_and(|v| match v {
                serde_json::Value::Bool(b) => *b,
                serde_json::Value::String(s) => pbr_engine::params::parse_bool(s) == Some(true),
                _ => false,
            });
            if self.lint || !expected_failure {
                for d in params::check(module.as_ref(), args, &nodes, self.lint) {
                    self.push(d);
                }
            }
            let schema = module.schema();
            for n in [Some(args_node), nodes.args].into_iter().flatten() {
                for (k, v) in n.as_map().unwrap_or_default() {
                    let key = k.key_str().unwrap_or_default();
                    self.truthy(&schema, module.name(), &key, v);
                }
            }
        }
        for n in [Some(args_node), nodes.args].into_iter().flatten() {
            for (k, v) in n.as_map().unwrap_or_default() {
                let key = k.key_str().unwrap_or_default();
                if key == "mode" {
                    self.octal(v);
                }
                if key == "force" {
                    self.force_guard(t, k, v);
                }
                self.secret(&key, k, v);
            }
        }
        let canon = self.registry.get(name).map(|m| m.name()).unwrap_or(short);
        match canon {
            "command" | "shell" => self.command(t, args, &nodes),
            "copy" | "template" => self.src_file(t, canon, args, &nodes),
            _ => {}
        }
    }

    fn include_vars(&mut self, t: &Task, args: &Value, nodes: &ArgNodes) {
        if let Some(n) = args.get("name").and_then(Value::as_str) {
            self.defined.insert(n.to_string());
        }
        let file = args.get("file").or_else(|| args.get("_raw_params")).and_then(Value::as_str);
        let Some(file) = file else {
            self.dynamic_vars = true;
            return;
        };
        if Templar::is_template(file) {
            self.dynamic_vars = true;
            return;
        }
        let p = t.origin.vars_file(file);
        if !p.is_file() {
            if p.is_dir() {
                self.dynamic_vars = true;
                return;
            }
            let span =
                nodes.node_at(&[crate::yaml::PathSeg::Key("file".into())]).map(|n| n.span).unwrap_or(nodes.module.span);
            self.push(
                diag(RuleId::MissingFile, span, format!("vars file `{file}` not found"))
                    .with_label(format!("looked for {}", p.display())),
            );
            return;
        }
        if args.get("name").is_none() {
            match crate::playbook::load_doc(&p, t.span) {
                Ok(Some(doc)) => self.vars_node(&doc),
                Ok(None) => {}
                Err(d) => self.push(remap(d)),
            }
        }
    }

    /// `copy`/`template` `src:` on the controller.
    fn src_file(&mut self, t: &Task, module: &str, args: &Value, nodes: &ArgNodes) {
        let Some(src) = args.get("src").and_then(Value::as_str) else {
            return;
        };
        if Templar::is_template(src) || args.get("remote_src").is_some_and(crate::template::truthy) {
            return;
        }
        let subdir = if module == "template" { "templates" } else { "files" };
        let search = t.origin.search_dirs();
        let found = if Path::new(src).is_absolute() {
            Some(PathBuf::from(src)).filter(|p| p.exists())
        } else {
            search.iter().flat_map(|d| [d.join(subdir).join(src), d.join(src)]).find(|p| p.exists())
        };
        let span =
            nodes.node_at(&[crate::yaml::PathSeg::Key("src".into())]).map(|n| n.span).unwrap_or(nodes.module.span);
        match found {
            None => {
                if !self.lint && self.local_tasks {
                    return;
                }
                let looked: Vec<String> = search.iter().map(|d| d.join(subdir).display().to_string()).collect();
                self.push(
                    diag(RuleId::MissingFile, span, format!("`{module}` src `{src}` not found"))
                        .with_help(format!("looked in {} (then the directories themselves)", looked.join(", "))),
                );
            }
            Some(p) if module == "template" && p.is_file() => {
                self.template_file(&p, &crate::template::syntax_from_params(args))
            }
            Some(_) => {}
        }
    }

    /// A template file: syntax, and the variables it reads.
    fn template_file(&mut self, p: &Path, syntax: &crate::template::SyntaxOptions) {
        let canon = p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
        if !self.templates_seen.insert(canon) {
            return;
        }
        let text = match crate::source::read_text(p) {
            Ok(t) => t,
            // known before any host is touched: the task would fail on every host
            Err(crate::source::ReadError::NotUtf8(span, m)) => {
                self.push(diag(RuleId::Encoding, span, m).with_help("save the template as UTF-8"));
                return;
            }
            Err(_) => return,
        };
        let default_syntax = *syntax == crate::template::SyntaxOptions::default();
        if default_syntax && !Templar::is_template(&text) {
            return;
        }
        let id = add_source(p, text.clone());
        let Some(src) = source(id) else {
            return;
        };
        match self.templar.referenced_vars_with(&text, syntax) {
            Ok(names) => {
                let guarded = text.contains("default") || text.contains("defined");
                for name in names {
                    if guarded && is_guarded(&text, &name) {
                        continue;
                    }
                    let at = find_word(&text, &name).unwrap_or(0);
                    self.refs.push((name.clone(), Span::new(id, at, at + if at == 0 { 0 } else { name.len() })));
                }
            }
            Err(e) => {
                let off = e.line.map(|l| src.offset_of(l, 1)).unwrap_or(0);
                let end = text[off..].find('\n').map(|i| off + i).unwrap_or(text.len());
                self.template_error(&e, Span::new(id, off, end));
            }
        }
    }

    fn command(&mut self, t: &Task, args: &Value, nodes: &ArgNodes) {
        let (text, path) = match (args.get("_raw_params"), args.get("cmd")) {
            (Some(Value::String(s)), _) => (s.as_str(), None),
            (_, Some(Value::String(s))) => (s.as_str(), Some("cmd")),
            _ => return,
        };
        // read-only queries (`systemctl is-active`) marked `changed_when: false` are fine
        if t.changed_when.as_ref().is_some_and(|c| {
            c.len() == 1 && matches!(&c[0], Value::Bool(false)) || c[0].as_str().is_some_and(|s| s.trim() == "false")
        }) {
            return;
        }
        for word in command_words(text) {
            let tool = if word.starts_with("mkfs") { "mkfs" } else { word.as_str() };
            let Some((_, mods)) = COMMANDS.iter().find(|(c, _)| *c == tool) else {
                continue;
            };
            let span = match path {
                Some(p) => nodes.node_at(&[crate::yaml::PathSeg::Key(p.into())]).map(|n| n.span),
                None => None,
            }
            .unwrap_or(nodes.module.span);
            let help = match mods.iter().find(|m| self.registry.contains(m)) {
                Some(m) => format!("use the `{m}` module: it states the wanted state, so check mode and --diff work"),
                None => format!(
                    "a module that states the wanted state (`{}`) keeps check mode and --diff working; until then \
                     guard the command with `creates:`/`when:`",
                    mods[0]
                ),
            };
            self.push(
                diag(RuleId::CommandInsteadOfModule, span, format!("`{word}` run through `{}`", t.action_name()))
                    .with_help(help),
            );
            return;
        }
    }

    fn force_guard(&mut self, t: &Task, key: &Node, v: &Node) {
        let on = match &v.kind {
            NodeKind::Bool(b) => *b,
            NodeKind::Str(s) => pbr_engine::params::parse_bool(s) == Some(true),
            _ => false,
        };
        if !on || !t.tags.is_empty() {
            return;
        }
        let Some(src) = source(key.span.src) else {
            return;
        };
        let (line, _) = src.line_col(key.span.start);
        let has_comment = |l: u32| src.line_text(l).contains('#');
        if has_comment(line) || (line > 1 && src.line_text(line - 1).trim_start().starts_with('#')) {
            return;
        }
        self.push(
            diag(
                RuleId::DestructiveWithoutGuard,
                key.span.to(v.span),
                format!("`force: true` in `{}`", t.action_name()),
            )
            .with_help("say why in a comment on this line or the line above, or tag the task so it can be skipped"),
        );
    }

    fn octal(&mut self, v: &Node) {
        let NodeKind::Int(i) = v.kind else {
            return;
        };
        if !v.plain {
            return;
        }
        let Some(raw) = params::raw_text(v) else {
            return;
        };
        let raw = raw.trim();
        if !raw.bytes().all(|b| b.is_ascii_digit()) || raw == "0" {
            return;
        }
        if raw.starts_with('0') {
            self.push(
                diag(RuleId::OctalMode, v.span, format!("mode {raw} is an unquoted octal number"))
                    .with_help(format!("quote it: \"{raw}\" (YAML 1.2 tools read {raw} as decimal)")),
            );
        } else {
            self.push(
                diag(
                    RuleId::OctalMode,
                    v.span,
                    format!("mode {raw} is a decimal number: it means mode 0{:o}, almost surely not what you want", i),
                )
                .with_help(format!("write the octal mode quoted: \"0{raw}\"")),
            );
        }
    }

    fn truthy(&mut self, schema: &schemars::Schema, module: &str, key: &str, v: &Node) {
        if !matches!(v.kind, NodeKind::Bool(_)) || !v.plain {
            return;
        }
        let Some(raw) = params::raw_text(v) else {
            return;
        };
        if !matches!(raw.to_ascii_lowercase().as_str(), "yes" | "no" | "on" | "off") {
            return;
        }
        let types = params::param_types(schema, key);
        if types.iter().any(|t| t == "string") && !types.iter().any(|t| t == "boolean") {
            self.push(params::truthy_diag(&raw, key, module, v.span));
        }
    }

    /// A literal secret under a password-like key.
    fn secret(&mut self, key: &str, k: &Node, v: &Node) {
        if !self.lint || !secret_key(key) {
            return;
        }
        let literal = match &v.kind {
            NodeKind::Str(s) => !s.is_empty() && !Templar::is_template(s) && !s.starts_with('$'),
            NodeKind::Int(_) => true,
            _ => false,
        };
        if !literal || v.tag.is_some() {
            return;
        }
        self.push(
            diag(RuleId::PlaintextSecret, k.span.to(v.span), format!("`{key}` is written in plain text")).with_help(
                "read it at run time: `{{ lookup('env', 'NAME') }}`, or keep it in a vars file outside the repository",
            ),
        );
    }

    fn handler_rules(&mut self, info: &PlayInfo) {
        for (name, span) in &info.notified {
            if Templar::is_template(name) || info.handler_names.contains(name) {
                continue;
            }
            if !self.lint && info.unresolved {
                continue;
            }
            let mut d = diag(RuleId::NotifyUnknown, *span, format!("no handler `{name}` in this play"));
            if let Some(s) = crate::playbook::did_you_mean(name, info.handler_names.iter().map(String::as_str)) {
                d = d.with_help(format!("did you mean `{s}`?"));
            }
            self.push(d);
        }
        if !self.lint || info.unresolved {
            return;
        }
        let notified: HashSet<&str> = info.notified.iter().map(|(n, _)| n.as_str()).collect();
        if notified.iter().any(|n| Templar::is_template(n)) {
            return;
        }
        for (names, span) in &info.handlers {
            if !names.iter().any(|n| notified.contains(n.as_str())) {
                let name = names.last().cloned().unwrap_or_default();
                self.push(diag(RuleId::HandlerUnused, *span, format!("handler `{name}` is never notified")));
            }
        }
    }

    /// Rules about the inventory: unused hosts, duplicates, secrets in inventory vars.
    pub fn inventory_rules(&mut self, inv: &Inventory, pbs: &[Playbook]) {
        if !self.lint {
            return;
        }
        for (host, first, second) in &inv.duplicates {
            let _ = first;
            self.push(
                diag(RuleId::DuplicateHost, *second, format!("host `{host}` is declared again in the same group"))
                    .with_label("declared again here"),
            );
        }
        for h in inv.hosts.values() {
            for (k, v) in &h.vars {
                self.inv_secret(k, v, h.span, &format!("host `{}`", h.name));
            }
        }
        for g in inv.groups.values() {
            for (k, v) in &g.vars {
                self.inv_secret(k, v, g.span, &format!("group `{}`", g.name));
            }
        }
        if pbs.is_empty() {
            return;
        }
        let patterns: Vec<&str> = pbs.iter().flat_map(|p| p.plays.iter().map(|pl| pl.hosts.as_str())).collect();
        if patterns.iter().any(|p| Templar::is_template(p)) {
            return;
        }
        let mut used = HashSet::new();
        for p in patterns {
            match inv.select(p) {
                Ok(hs) => used.extend(hs),
                Err(_) => return,
            }
        }
        for h in inv.hosts.values() {
            if !used.contains(&h.name) && !h.span.is_none() {
                self.push(
                    diag(RuleId::HostUnused, h.span, format!("host `{}` is targeted by no play", h.name))
                        .with_help("add it to a group a play targets, or remove it"),
                );
            }
        }
    }

    /// Secrets in `group_vars/` and `host_vars/` files of a directory.
    pub fn vars_dir_secrets(&mut self, dir: &Path) {
        if !self.lint {
            return;
        }
        for sub in ["group_vars", "host_vars"] {
            let Ok(rd) = std::fs::read_dir(dir.join(sub)) else { continue };
            let mut files: Vec<PathBuf> = Vec::new();
            for e in rd.filter_map(Result::ok) {
                let p = e.path();
                if p.is_dir() {
                    if let Ok(inner) = std::fs::read_dir(&p) {
                        files.extend(inner.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()));
                    }
                } else if p.is_file() {
                    files.push(p);
                }
            }
            files.sort();
            for f in files {
                let ext = f.extension().and_then(|e| e.to_str()).unwrap_or("");
                if !matches!(ext, "yml" | "yaml" | "json" | "") {
                    continue;
                }
                if let Ok(docs) = crate::yaml::load_file(&f) {
                    for d in &docs {
                        self.secrets_in(d, 0);
                    }
                }
            }
        }
    }

    fn secrets_in(&mut self, n: &Node, depth: usize) {
        if depth > 8 {
            return;
        }
        for (k, v) in n.as_map().unwrap_or_default() {
            if let Some(key) = k.key_str() {
                self.secret(&key, k, v);
            }
            self.secrets_in(v, depth + 1);
        }
    }

    fn inv_secret(&mut self, key: &str, v: &Value, span: Span, owner: &str) {
        let literal = match v {
            Value::String(s) => !s.is_empty() && !Templar::is_template(s) && !s.starts_with('$'),
            Value::Number(_) => true,
            _ => false,
        };
        if literal && secret_key(key) && !span.is_none() {
            self
                .push(diag(RuleId::PlaintextSecret, span, format!("`{key}` of {owner} is written in plain text")).with_help(
                "read it at run time: `{{ lookup('env', 'NAME') }}`, or keep it in a vars file outside the repository",
            ));
        }
    }
}

fn any_local(tasks: &[Task]) -> bool {
    tasks.iter().any(|t| {
        t.delegate_to.as_deref().is_some_and(|d| d == "localhost" || d == "127.0.0.1" || Templar::is_template(d))
            || match &t.action {
                Action::Block { block, rescue, always } => any_local(block) || any_local(rescue) || any_local(always),
                _ => false,
            }
    })
}

/// The module's value node in a task (`include_tasks: FILE`).
fn module_value(t: &Task) -> Option<&Node> {
    let m = t.node.as_map()?;
    m.iter()
        .find(|(k, _)| {
            let ks = k.key_str().unwrap_or_default();
            crate::playbook::INCLUDE_KINDS.contains(&short_name(&ks))
        })
        .map(|(_, v)| v)
}

/// Password-like keys.
pub fn secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    if k.starts_with("update_") || k.ends_with("_file") || k.ends_with("_lock") || k.contains("hash") {
        return false;
    }
    k == "psk"
        || k.ends_with("_psk")
        || k.ends_with("password")
        || k.ends_with("passwd")
        || k.ends_with("_pass")
        || k.ends_with("passphrase")
        || k.ends_with("secret")
        || k == "token"
        || k.ends_with("_token")
        || k.ends_with("api_key")
}

/// The commands a shell line runs: the first word of each `;`/`&&`/`||`/`|` part, after
/// `sudo`, `env` and `VAR=value` prefixes, without its directory.
fn command_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in text.split(['\n', ';', '|', '&']) {
        let mut words = part.split_whitespace().peekable();
        while let Some(w) = words.peek() {
            if *w == "sudo" || *w == "env" || *w == "exec" || *w == "then" || *w == "do" || w.contains('=') || *w == "!"
            {
                words.next();
            } else {
                break;
            }
        }
        if let Some(w) = words.next() {
            let w = w.trim_matches(|c| c == '(' || c == '"' || c == '\'');
            out.push(w.rsplit('/').next().unwrap_or(w).to_string());
        }
    }
    out
}

/// Is `name` guarded in the text (`name | default(...)` for every use, or tested with
/// `name is defined` and the like, which guards the uses in that branch)?
fn is_guarded(text: &str, name: &str) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let starts_word = |s: &str, w: &str| s.starts_with(w) && !s[w.len()..].starts_with(word);
    let (mut uses, mut defaulted) = (0, 0);
    let mut from = 0;
    while let Some(i) = text[from..].find(name) {
        let at = from + i;
        from = at + name.len();
        if text[..at].ends_with(word) || text[from..].starts_with(word) {
            continue;
        }
        uses += 1;
        // skip `.attr` and `[key]` accessors
        let mut rest = &text[from..];
        loop {
            if let Some(r) = rest.strip_prefix('.') {
                rest = r.trim_start_matches(word);
            } else if rest.starts_with('[') {
                rest = rest.find(']').map(|e| &rest[e + 1..]).unwrap_or("");
            } else {
                break;
            }
        }
        let rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix("is") {
            let r = r.trim_start();
            let r = if starts_word(r, "not") { r[3..].trim_start() } else { r };
            if ["defined", "undefined", "none"].iter().any(|w| starts_word(r, w)) {
                return true;
            }
        } else if let Some(r) = rest.strip_prefix('|') {
            let r = r.trim_start();
            if starts_word(r, "default") || starts_word(r, "d") {
                defaulted += 1;
            }
        }
    }
    uses > 0 && defaulted == uses
}

/// The span of the first whole-word `name` inside a span, else the span.
fn narrow(span: Span, name: &str) -> Span {
    let Some(src) = source(span.src) else {
        return span;
    };
    match src.text.get(span.start..span.end).and_then(|raw| find_word(raw, name)) {
        Some(i) if span.end > span.start => Span::new(span.src, span.start + i, span.start + i + name.len()),
        _ => span,
    }
}

/// Byte offset of `name` as a whole word.
fn find_word(text: &str, name: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find(name) {
        let at = from + i;
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        if !word(before) && !word(after) {
            return Some(at);
        }
        from = at + name.len();
    }
    None
}

/// The span of line `line` (1-based) of a string value inside its YAML node: found by searching
/// the line's text in the node's source; the whole node when it cannot be found.
fn map_line(n: &Node, value: &str, line: Option<u32>) -> Span {
    let Some(line) = line.filter(|l| *l > 1) else {
        return n.span;
    };
    let Some(src) = source(n.span.src) else {
        return n.span;
    };
    let Some(raw) = src.text.get(n.span.start..n.span.end) else {
        return n.span;
    };
    // find the value's lines one after the other in the source, each after the previous one
    let mut from = 0;
    let mut found = None;
    for text in value.lines().take(line as usize) {
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        match raw.get(from..).and_then(|r| r.find(text)) {
            Some(i) => {
                found = Some((from + i, text.len()));
                from += i + text.len();
            }
            None => return n.span,
        }
    }
    match found {
        Some((i, len)) => Span::new(n.span.src, n.span.start + i, n.span.start + i + len),
        None => n.span,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards() {
        assert!(is_guarded("{{ a | default(1) }}", "a"));
        assert!(is_guarded("{{ a.b['c'] |d(1) }} {{ a|default(2) }}", "a"));
        assert!(!is_guarded("{{ a | default(1) }} {{ a }}", "a"));
        assert!(is_guarded("{% if a is defined %}{{ a }}{% endif %}", "a"));
        assert!(is_guarded("{% if a.x is not none %}{{ a }}{% endif %}", "a"));
        assert!(!is_guarded("{{ ab | default(1) }} {{ a }}", "a"));
        assert!(!is_guarded("{{ a | defaults }}", "a"));
        assert!(!is_guarded("{{ a is divisibleby(2) }}", "a"));
    }

    #[test]
    fn words_of_a_command_line() {
        assert_eq!(command_words("sudo apt-get install x && /usr/bin/systemctl start y"), ["apt-get", "systemctl"]);
        assert_eq!(command_words("FOO=1 mkfs.ext4 /dev/x | tee log"), ["mkfs.ext4", "tee"]);
    }
}
