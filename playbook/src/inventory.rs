//! Inventories: INI and YAML files, directories of them, `group_vars/` and `host_vars/`, host
//! ranges, and Ansible's host patterns.
//!
//! Semantics follow ansible-core 2.19: the INI and YAML inventory plugins, the `host_list`
//! plugin for comma lists, the `host_group_vars` vars plugin, `InventoryManager` patterns and
//! `--limit`, and the variable order of `VariableManager` for inventory-level variables.

// `Diag` is the crate's error type throughout; boxing it here alone would buy nothing.
#![allow(clippy::result_large_err)]

mod ini;
mod pattern;
/// Python's `fnmatch.translate` (for the `find` module's patterns as for host patterns).
pub use pattern::glob_to_regex;
pub use pbr_syntax::pylit;
mod range;
mod render;
mod vars_dirs;
mod yaml_inv;

#[cfg(test)]
mod tests;

use crate::diag::Diag;
use crate::source::Span;
use indexmap::IndexMap;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Names that resolve to the implicit localhost when the inventory does not declare them.
pub const LOCALHOST_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Diagnostic code of every inventory error and warning.
pub const CODE: &str = "inventory";

#[derive(Debug, Clone, Default)]
pub struct InvHost {
    pub name: String,
    /// Vars set on the host itself in inventory files.
    pub vars: Map<String, Value>,
    /// Where the host was first declared.
    pub span: Span,
}

#[derive(Debug, Clone, Default)]
pub struct Group {
    pub name: String,
    /// Hosts declared directly in the group.
    pub hosts: Vec<String>,
    pub children: Vec<String>,
    pub vars: Map<String, Value>,
    pub span: Span,
}

/// A loaded inventory. Always has the groups `all` and `ungrouped`.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub hosts: IndexMap<String, InvHost>,
    pub groups: IndexMap<String, Group>,
    /// `group_vars/NAME` and `host_vars/NAME` found beside inventory sources, in load order.
    pub group_vars_files: IndexMap<String, Map<String, Value>>,
    pub host_vars_files: IndexMap<String, Map<String, Value>>,
    /// Same, beside the playbook (they win over the inventory's).
    pub playbook_group_vars: IndexMap<String, Map<String, Value>>,
    pub playbook_host_vars: IndexMap<String, Map<String, Value>>,
    /// A host declared twice in the same group: (host, first declaration, second declaration).
    pub duplicates: Vec<(String, Span, Span)>,
    /// Non-fatal findings while loading (skipped YAML keys and the like).
    pub warnings: Vec<Diag>,
    /// Where each (group, host) membership was declared.
    member_spans: HashMap<(String, String), Span>,
    /// The groups that list each host themselves (what `Group::hosts` says, by host): asking a
    /// host's groups is then not a scan of every group's hosts (quadratic in a big inventory).
    direct_groups: HashMap<String, HashSet<String>>,
}

impl Inventory {
    /// An inventory with only `all` and `ungrouped` (`ungrouped` a child of `all`).
    pub fn new() -> Inventory {
        let mut inv = Inventory::default();
        inv.ensure_group("all", Span::none());
        inv.ensure_group("ungrouped", Span::none());
        if let Some(all) = inv.groups.get_mut("all") {
            all.children.push("ungrouped".to_string());
        }
        inv
    }

    /// Load inventory sources: INI or YAML files, directories (every file in them, plus their
    /// `group_vars/`, `host_vars/`), or a comma list `a,b,`. An empty list gives an inventory
    /// with only implicit `localhost`.
    pub fn load(sources: &[PathBuf]) -> Result<Inventory, Diag> {
        let mut inv = Inventory::new();
        for src in sources {
            inv.load_source(src)?;
        }
        inv.reconcile();
        Ok(inv)
    }

    fn load_source(&mut self, src: &Path) -> Result<(), Diag> {
        if src.is_dir() {
            self.load_dir(src)?;
            self.load_adjacent_vars(src)
        } else if src.is_file() {
            self.load_file(src)?;
            let parent = match src.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            self.load_adjacent_vars(&parent)
        } else {
            let text = src.to_string_lossy();
            if text.contains(',') {
                self.load_host_list(&text);
                Ok(())
            } else {
                Err(Diag::error(CODE, Span::none(), format!("inventory source {} does not exist", src.display()))
                    .with_help("give a file, a directory, or a comma-separated host list such as `host1,host2,`"))
            }
        }
    }

    /// A comma list `h1,h2:2222,` (Ansible's `host_list` plugin: no ranges).
    fn load_host_list(&mut self, text: &str) {
        for item in text.split(',') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let (name, port) = range::split_port(item).unwrap_or_else(|_| (item.to_string(), None));
            if !self.hosts.contains_key(&name) {
                self.add_host("ungrouped", &name, Span::none(), Map::new(), port);
            }
        }
    }

    fn load_dir(&mut self, dir: &Path) -> Result<(), Diag> {
        const IGNORED_EXTS: [&str; 12] =
            [".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg", ".retry"];
        let mut names = read_dir_names(dir)?;
        names.sort();
        for name in names {
            if name.starts_with('.')
                || name == "group_vars"
                || name == "host_vars"
                || name == "vars_plugins"
                || IGNORED_EXTS.iter().any(|e| name.ends_with(e))
            {
                continue;
            }
            let path = dir.join(&name);
            if path.is_dir() {
                self.load_dir(&path)?;
            } else if path.is_file() {
                self.load_file(&path)?;
            }
        }
        Ok(())
    }

    /// One inventory file: YAML for `.yml`/`.yaml`/`.json`; for a name without extension YAML
    /// when it parses as a mapping, else INI; INI otherwise.
    fn load_file(&mut self, path: &Path) -> Result<(), Diag> {
        let text = crate::source::read_text(path).map_err(|e| match e {
            crate::source::ReadError::NotUtf8(span, m) => Diag::error("encoding", span, m),
            e => Diag::error(CODE, Span::none(), format!("cannot read inventory {}: {e}", path.display())),
        })?;
        let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase());
        match ext.as_deref() {
            Some("yml" | "yaml" | "json") => {
                let id = crate::source::add_source(path, text);
                let docs = crate::yaml::load_source(id)?;
                yaml_inv::parse(self, &docs)
            }
            None if looks_like_yaml(&text) => {
                let id = crate::source::add_source(path, text.clone());
                match crate::yaml::load_source(id) {
                    Ok(docs) if docs.first().is_some_and(|d| d.as_map().is_some()) => yaml_inv::parse(self, &docs),
                    _ => ini::parse(self, path, text),
                }
            }
            _ => ini::parse(self, path, text),
        }
    }

    fn load_adjacent_vars(&mut self, dir: &Path) -> Result<(), Diag> {
        let groups = vars_dirs::load(&dir.join("group_vars"))?;
        merge_named(&mut self.group_vars_files, groups);
        let hosts = vars_dirs::load(&dir.join("host_vars"))?;
        merge_named(&mut self.host_vars_files, hosts);
        Ok(())
    }

    /// Read `group_vars/` and `host_vars/` beside a playbook.
    pub fn add_playbook_dir(&mut self, dir: &Path) -> Result<(), Diag> {
        let groups = vars_dirs::load(&dir.join("group_vars"))?;
        merge_named(&mut self.playbook_group_vars, groups);
        let hosts = vars_dirs::load(&dir.join("host_vars"))?;
        merge_named(&mut self.playbook_host_vars, hosts);
        Ok(())
    }

    /// Hosts matching an Ansible pattern (`a:b`, `a,b`, `a:&b`, `a:!b`, globs, `~regex`,
    /// `group[0:2]`). Order is Ansible's: the union terms in the order given, each group's hosts
    /// in the group's order (its own hosts, then its children's), deduplicated. `localhost`
    /// matches implicitly when not declared. A pattern matching nothing gives `Ok(vec![])`.
    pub fn select(&self, pattern: &str) -> Result<Vec<String>, String> {
        let terms = pattern::split(pattern)?;
        if terms.is_empty() {
            return Err("empty host pattern".to_string());
        }
        pattern::evaluate(self, &terms)
    }

    /// `--limit`: keep the hosts (in their order) that the pattern matches. The pattern language
    /// is `select`'s, plus `@file` terms naming a file with one pattern per line (a retry file).
    pub fn limit(&self, hosts: &[String], pattern: &str) -> Result<Vec<String>, String> {
        let mut terms = Vec::new();
        for term in pattern::split(pattern)? {
            if let Some(file) = term.strip_prefix('@') {
                let path = Path::new(file);
                if !path.exists() {
                    return Err(format!("unable to find limit file {file}"));
                }
                if !path.is_file() {
                    return Err(format!("limit starts with '@' but {file} is not a file"));
                }
                let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read limit file {file}: {e}"))?;
                terms.extend(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string));
            } else {
                terms.push(term);
            }
        }
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let keep: HashSet<String> = pattern::evaluate(self, &terms)?.into_iter().collect();
        Ok(hosts.iter().filter(|h| keep.contains(*h)).cloned().collect())
    }

    /// True when `name` is a host not declared in the inventory that Ansible would still
    /// resolve, as implicit localhost.
    pub fn is_implicit_localhost(&self, name: &str) -> bool {
        !self.hosts.contains_key(name) && LOCALHOST_NAMES.contains(&name)
    }

    /// The host's inventory-level variables merged in Ansible's order: `all`'s inventory vars,
    /// other groups' inventory vars (by depth, `ansible_group_priority`, name), `group_vars/all`,
    /// `group_vars/<group>` for those groups, the host's inventory vars, `host_vars/<host>`.
    /// At each files level, inventory-adjacent files come first, playbook-adjacent ones win.
    /// Shallow replace. Implicit localhost gets `all`'s vars plus `ansible_connection: local`.
    pub fn host_vars(&self, host: &str) -> Map<String, Value> {
        let mut out = Map::new();
        let implicit = self.is_implicit_localhost(host);
        if !implicit && !self.hosts.contains_key(host) {
            return out;
        }
        let sorted = if implicit { Vec::new() } else { self.sorted_groups_of(host) };
        if let Some(all) = self.groups.get("all") {
            extend(&mut out, &all.vars);
        }
        for g in &sorted {
            if let Some(group) = self.groups.get(g) {
                extend(&mut out, &group.vars);
            }
        }
        for files in [&self.group_vars_files, &self.playbook_group_vars] {
            if let Some(v) = files.get("all") {
                extend(&mut out, v);
            }
        }
        for files in [&self.group_vars_files, &self.playbook_group_vars] {
            for g in &sorted {
                if let Some(v) = files.get(g) {
                    extend(&mut out, v);
                }
            }
        }
        if implicit {
            out.insert("ansible_connection".to_string(), Value::String("local".to_string()));
        } else if let Some(h) = self.hosts.get(host) {
            extend(&mut out, &h.vars);
        }
        for files in [&self.host_vars_files, &self.playbook_host_vars] {
            if let Some(v) = files.get(host) {
                extend(&mut out, v);
            }
        }
        out
    }

    /// Groups the host is in, directly or through children, without `all` (the `group_names`
    /// magic variable), sorted. As in Ansible, an ungrouped host gets `["ungrouped"]`.
    pub fn group_names(&self, host: &str) -> Vec<String> {
        let mut names: Vec<String> = self.groups_of(host).into_iter().filter(|g| g != "all").collect();
        names.sort();
        names
    }

    /// Every group with all its hosts, recursively (the `groups` magic variable).
    pub fn groups_map(&self) -> Map<String, Value> {
        self.groups
            .keys()
            .map(|g| (g.clone(), Value::Array(self.group_hosts(g).into_iter().map(Value::String).collect())))
            .collect()
    }

    /// `ansible-inventory --list` output.
    pub fn to_list_json(&self) -> Value {
        render::list_json(self)
    }

    /// `ansible-inventory --graph [group]` output (no trailing newline). Empty when the group
    /// does not exist (check with `groups.contains_key` first for a proper error).
    pub fn graph(&self, group: Option<&str>) -> String {
        render::graph(self, group.unwrap_or("all"))
    }

    /// `group_by` while a run goes: the host joins `group` (made if new; under each of
    /// `parents`, made too, else under `all`). False when it was already there.
    pub fn add_dynamic(&mut self, host: &str, group: &str, parents: &[String]) -> bool {
        let known = self.member_spans.contains_key(&(group.to_string(), host.to_string()))
            && parents.iter().all(|p| self.groups.get(p).is_some_and(|g| g.children.iter().any(|c| c == group)));
        if known {
            return false;
        }
        let mut vars = Map::new();
        if self.is_implicit_localhost(host) {
            vars.insert("ansible_connection".into(), Value::String("local".into()));
        }
        self.add_host(group, host, Span::none(), vars, None);
        for p in parents.iter().filter(|p| *p != group) {
            self.ensure_group(p, Span::none());
            if let Some(pg) = self.groups.get_mut(p)
                && !pg.children.iter().any(|c| c == group)
            {
                pg.children.push(group.to_string());
            }
        }
        self.reconcile();
        true
    }

    /// `add_host` while the run goes: the host (made if new) joins `groups` (made if new) and
    /// takes `vars` over its own. Whether anything changed, as Ansible reports it.
    pub fn add_runtime_host(&mut self, name: &str, groups: &[String], vars: Map<String, Value>) -> bool {
        let before = self.hosts.get(name).map(|h| h.vars.clone());
        let mut changed = before.is_none();
        if let Some(b) = &before {
            let mut after = b.clone();
            extend(&mut after, &vars);
            changed |= after != *b;
        }
        let mut joined = false;
        for g in groups {
            changed |= !self.groups.contains_key(g);
            if !self.member_spans.contains_key(&(g.clone(), name.to_string())) {
                changed = true;
            }
            self.add_host(g, name, Span::none(), vars.clone(), None);
            joined = true;
        }
        if !joined {
            if before.is_none() {
                self.add_host("ungrouped", name, Span::none(), vars, None);
            } else if let Some(h) = self.hosts.get_mut(name) {
                extend(&mut h.vars, &vars);
            }
        }
        self.reconcile();
        changed
    }

    // ----- building -----

    pub(crate) fn ensure_group(&mut self, name: &str, span: Span) {
        if !self.groups.contains_key(name) {
            self.groups.insert(name.to_string(), Group { name: name.to_string(), span, ..Group::default() });
        }
    }

    /// Add (or update) a host as a member of `group`; later vars override earlier ones.
    pub(crate) fn add_host(
        &mut self,
        group: &str,
        name: &str,
        span: Span,
        vars: Map<String, Value>,
        port: Option<u16>,
    ) {
        self.ensure_group(group, Span::none());
        let host = self.hosts.entry(name.to_string()).or_insert_with(|| InvHost {
            name: name.to_string(),
            vars: Map::new(),
            span,
        });
        if let Some(p) = port {
            host.vars.insert("ansible_port".to_string(), Value::from(p));
        }
        extend(&mut host.vars, &vars);
        // `member_spans` holds every (group, host) membership: the test is a lookup, not a scan
        // of the group (a range can add 100 000 hosts to one group)
        let key = (group.to_string(), name.to_string());
        if let Some(first) = self.member_spans.get(&key) {
            if !span.is_none() {
                self.duplicates.push((name.to_string(), *first, span));
            }
        } else {
            self.member_spans.insert(key, span);
            if let Some(g) = self.groups.get_mut(group) {
                g.hosts.push(name.to_string());
                self.direct_groups.entry(name.to_string()).or_default().insert(group.to_string());
            }
        }
    }

    /// Make `child` a child group of `parent` (both must exist); refuses cycles.
    pub(crate) fn add_child(&mut self, parent: &str, child: &str, span: Span) -> Result<(), Diag> {
        if parent == child || self.descendants(child).iter().any(|d| d == parent) {
            return Err(Diag::error(
                CODE,
                span,
                format!("adding group '{child}' as a child of '{parent}' creates a dependency loop"),
            ));
        }
        if let Some(g) = self.groups.get_mut(parent)
            && !g.children.iter().any(|c| c == child)
        {
            g.children.push(child.to_string());
        }
        Ok(())
    }

    /// Ansible's reconcile step: top-level groups become children of `all`; hosts in no group
    /// other than `all` go to `ungrouped`, hosts that are elsewhere leave it.
    fn reconcile(&mut self) {
        let mut has_parent: HashSet<String> = HashSet::new();
        for g in self.groups.values() {
            has_parent.extend(g.children.iter().cloned());
        }
        let tops: Vec<String> =
            self.groups.keys().filter(|g| *g != "all" && !has_parent.contains(*g)).cloned().collect();
        if let Some(all) = self.groups.get_mut("all") {
            for g in tops {
                if !all.children.contains(&g) {
                    all.children.push(g);
                }
            }
        }
        // a host is elsewhere when a group other than `all` and `ungrouped` has it (directly:
        // an ancestor's membership comes from a descendant's); sets, not scans, for big ranges
        let elsewhere: HashSet<String> = self
            .groups
            .iter()
            .filter(|(name, _)| *name != "all" && *name != "ungrouped")
            .flat_map(|(_, g)| g.hosts.iter().cloned())
            .collect();
        let names: Vec<String> = self.hosts.keys().cloned().collect();
        if let Some(ung) = self.groups.get_mut("ungrouped") {
            ung.hosts.retain(|x| !elsewhere.contains(x));
            let mut present: HashSet<String> = ung.hosts.iter().cloned().collect();
            for h in names {
                if !elsewhere.contains(&h) && present.insert(h.clone()) {
                    ung.hosts.push(h);
                }
            }
            for (h, gs) in self.direct_groups.iter_mut() {
                if present.contains(h) && !elsewhere.contains(h) {
                    gs.insert("ungrouped".to_string());
                } else {
                    gs.remove("ungrouped");
                }
            }
            for h in ung.hosts.iter() {
                self.direct_groups.entry(h.clone()).or_default().insert("ungrouped".to_string());
            }
        }
    }

    // ----- queries -----

    /// All groups below `group`, breadth first in child order, without `group` itself.
    fn descendants(&self, group: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut seen: HashSet<String> = HashSet::from([group.to_string()]);
        let mut frontier = vec![group.to_string()];
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for g in &frontier {
                for c in self.groups.get(g).map(|g| g.children.as_slice()).unwrap_or(&[]) {
                    if seen.insert(c.clone()) {
                        out.push(c.clone());
                        next.push(c.clone());
                    }
                }
            }
            frontier = next;
        }
        out
    }

    /// Hosts of a group with its descendants': its own hosts first, then its children's in
    /// breadth-first order. Empty for an unknown group.
    pub fn group_hosts(&self, group: &str) -> Vec<String> {
        let Some(g) = self.groups.get(group) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let desc = self.descendants(group);
        for gname in std::iter::once(&g.name).chain(desc.iter()) {
            for h in self.groups.get(gname).map(|g| g.hosts.as_slice()).unwrap_or(&[]) {
                if seen.insert(h.clone()) {
                    out.push(h.clone());
                }
            }
        }
        out
    }

    /// Every group the host belongs to, directly or through ancestors (including `all` for a
    /// declared host), in group creation order.
    fn groups_of(&self, host: &str) -> Vec<String> {
        if !self.hosts.contains_key(host) {
            return Vec::new();
        }
        let mut set: HashSet<String> = HashSet::new();
        let mut stack: Vec<String> =
            self.direct_groups.get(host).map(|g| g.iter().cloned().collect()).unwrap_or_default();
        while let Some(g) = stack.pop() {
            if set.insert(g.clone()) {
                for parent in self.groups.values().filter(|p| p.children.contains(&g)) {
                    stack.push(parent.name.clone());
                }
            }
        }
        set.insert("all".to_string());
        self.groups.keys().filter(|g| set.contains(*g)).cloned().collect()
    }

    /// Ansible's depth of a group: the longest parent chain up to `all` (`all` is 0).
    fn depth(&self, group: &str) -> usize {
        fn go(inv: &Inventory, g: &str, visiting: &mut Vec<String>) -> usize {
            if g == "all" || visiting.iter().any(|v| v == g) {
                return 0;
            }
            visiting.push(g.to_string());
            let d = inv
                .groups
                .values()
                .filter(|p| p.children.iter().any(|c| c == g))
                .map(|p| go(inv, &p.name, visiting) + 1)
                .max()
                .unwrap_or(1);
            visiting.pop();
            d
        }
        go(self, group, &mut Vec::new())
    }

    fn priority(&self, group: &str) -> i64 {
        let v = self.groups.get(group).and_then(|g| g.vars.get("ansible_group_priority"));
        match v {
            Some(Value::Number(n)) => n.as_i64().unwrap_or(1),
            Some(Value::String(s)) => s.trim().parse().unwrap_or(1),
            _ => 1,
        }
    }

    /// The host's groups without `all`, sorted by (depth, priority, name) as Ansible merges them.
    fn sorted_groups_of(&self, host: &str) -> Vec<String> {
        let mut groups: Vec<(usize, i64, String)> = self
            .groups_of(host)
            .into_iter()
            .filter(|g| g != "all")
            .map(|g| (self.depth(&g), self.priority(&g), g))
            .collect();
        groups.sort();
        groups.into_iter().map(|(_, _, g)| g).collect()
    }
}

fn extend(out: &mut Map<String, Value>, vars: &Map<String, Value>) {
    for (k, v) in vars {
        out.insert(k.clone(), v.clone());
    }
}

fn merge_named(into: &mut IndexMap<String, Map<String, Value>>, from: IndexMap<String, Map<String, Value>>) {
    for (name, vars) in from {
        extend(into.entry(name).or_default(), &vars);
    }
}

pub(crate) fn read_dir_names(dir: &Path) -> Result<Vec<String>, Diag> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| Diag::error(CODE, Span::none(), format!("cannot read directory {}: {e}", dir.display())))?;
    let mut names = Vec::new();
    for entry in rd {
        let entry = entry
            .map_err(|e| Diag::error(CODE, Span::none(), format!("cannot read directory {}: {e}", dir.display())))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    Ok(names)
}

/// A heuristic for extension-less files: YAML inventories start (after comments) with `---`
/// or a `key:` line; INI ones with a `[section]` or a host line.
fn looks_like_yaml(text: &str) -> bool {
    let Some(first) = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
    else {
        return false;
    };
    if first.starts_with("---") || first.starts_with('{') {
        return true;
    }
    !first.starts_with('[') && (first.ends_with(':') || first.contains(": "))
}
