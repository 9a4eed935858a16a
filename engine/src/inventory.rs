//! Inventories: INI and YAML files, directories of them, `group_vars/` and `host_vars/`, host
//! ranges, and Ansible's host patterns.

use crate::diag::Diag;
use crate::source::Span;
use indexmap::IndexMap;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

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
}

impl Inventory {
    /// Load inventory sources: INI or YAML files, directories (every file in them, plus their
    /// `group_vars/`, `host_vars/`), or a comma list `a,b,`. An empty list gives an inventory
    /// with only implicit `localhost`.
    pub fn load(sources: &[PathBuf]) -> Result<Inventory, Diag> {
        let _ = sources;
        todo!()
    }

    /// Read `group_vars/` and `host_vars/` beside a playbook.
    pub fn add_playbook_dir(&mut self, dir: &Path) -> Result<(), Diag> {
        let _ = dir;
        todo!()
    }

    /// Hosts matching an Ansible pattern (`a:b`, `a,b`, `a:&b`, `a:!b`, globs, `~regex`,
    /// `group[0:2]`), in inventory order. `localhost` matches implicitly when not declared.
    pub fn select(&self, pattern: &str) -> Result<Vec<String>, String> {
        let _ = pattern;
        todo!()
    }

    /// The host's inventory-level variables merged in Ansible's order: group vars (`all` first,
    /// then parents before children, same depth by name), then group_vars files, then host
    /// vars, then host_vars files; playbook-adjacent files win over inventory-adjacent ones at
    /// each level.
    pub fn host_vars(&self, host: &str) -> Map<String, Value> {
        let _ = host;
        todo!()
    }

    /// Groups the host is in, directly or through children, without `all`/`ungrouped`
    /// (the `group_names` magic variable), sorted.
    pub fn group_names(&self, host: &str) -> Vec<String> {
        let _ = host;
        todo!()
    }

    /// Every group with all its hosts, recursively (the `groups` magic variable).
    pub fn groups_map(&self) -> Map<String, Value> {
        todo!()
    }
}
