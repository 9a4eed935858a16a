//! `ansible-inventory --list` and `--graph` shapes.

use super::Inventory;
use serde_json::{Map, Value};

/// `{"_meta": {"hostvars": {...}}, "all": {"children": [...]}, "GROUP": {"hosts": [...],
/// "children": [...]}}`; children and hosts sorted by name, empty keys and groups left out,
/// hosts without vars left out of `hostvars`.
pub(super) fn list_json(inv: &Inventory) -> Value {
    let mut out = Map::new();
    format_group(inv, "all", &mut out);
    let mut hostvars = Map::new();
    for h in inv.group_hosts("all") {
        let vars = inv.host_vars(&h);
        if !vars.is_empty() {
            hostvars.insert(h, Value::Object(vars));
        }
    }
    let mut meta = Map::new();
    meta.insert("hostvars".to_string(), Value::Object(hostvars));
    out.insert("_meta".to_string(), Value::Object(meta));
    Value::Object(out)
}

fn format_group(inv: &Inventory, name: &str, out: &mut Map<String, Value>) {
    let Some(g) = inv.groups.get(name) else {
        return;
    };
    if out.contains_key(name) {
        return;
    }
    out.insert(name.to_string(), Value::Object(Map::new()));
    let mut entry = Map::new();
    if name != "all" {
        let mut hosts = g.hosts.clone();
        hosts.sort();
        if !hosts.is_empty() {
            entry.insert("hosts".to_string(), Value::Array(hosts.into_iter().map(Value::String).collect()));
        }
    }
    let mut children = g.children.clone();
    children.sort();
    for c in &children {
        format_group(inv, c, out);
    }
    if !children.is_empty() {
        entry.insert("children".to_string(), Value::Array(children.into_iter().map(Value::String).collect()));
    }
    if entry.is_empty() {
        out.shift_remove(name);
    } else {
        out.insert(name.to_string(), Value::Object(entry));
    }
}

/// `@all:` / `  |--@group:` / `  |  |--host`, children then hosts, each sorted by name.
pub(super) fn graph(inv: &Inventory, group: &str) -> String {
    let mut lines = Vec::new();
    graph_group(inv, group, 0, &mut lines, &mut Vec::new());
    lines.join("\n")
}

fn graph_group(inv: &Inventory, name: &str, depth: usize, lines: &mut Vec<String>, path: &mut Vec<String>) {
    let Some(g) = inv.groups.get(name) else {
        return;
    };
    if path.iter().any(|p| p == name) {
        return;
    }
    lines.push(graph_name(&format!("@{name}:"), depth));
    path.push(name.to_string());
    let mut children = g.children.clone();
    children.sort();
    for c in &children {
        graph_group(inv, c, depth + 1, lines, path);
    }
    if name != "all" {
        let mut hosts = g.hosts.clone();
        hosts.sort();
        for h in hosts {
            lines.push(graph_name(&h, depth + 1));
        }
    }
    path.pop();
}

fn graph_name(name: &str, depth: usize) -> String {
    if depth == 0 { name.to_string() } else { format!("{}--{name}", "  |".repeat(depth)) }
}
