//! YAML (and JSON) inventories, read like Ansible's `yaml` inventory plugin:
//! `GROUP: {hosts: {NAME: {vars} | null}, vars: {...}, children: {GROUP: ...}}` at any level.

use super::{CODE, Inventory, range};
use crate::diag::Diag;
use crate::yaml::{Node, NodeKind};
use serde_json::Map;

pub(super) fn parse(inv: &mut Inventory, docs: &[Node]) -> Result<(), Diag> {
    let Some(root) = docs.first() else {
        return Ok(());
    };
    if root.is_null() {
        return Ok(());
    }
    let Some(map) = root.as_map() else {
        return Err(Diag::error(
            CODE,
            root.span,
            format!("a YAML inventory must be a mapping of group names, found {}", root.type_name()),
        ));
    };
    if let Some((k, _)) = root.get_entry("plugin") {
        return Err(Diag::error(CODE, k.span, "inventory plugin configuration files are not supported"));
    }
    for (k, v) in map {
        let name = key_name(k)?;
        parse_group(inv, &name, k, v)?;
    }
    Ok(())
}

fn key_name(k: &Node) -> Result<String, Diag> {
    k.key_str().ok_or_else(|| Diag::error(CODE, k.span, format!("expected a name here, found {}", k.type_name())))
}

/// A section value: a mapping, null, or a single name as a string (`hosts: web1`).
fn entries(v: &Node, section: &str, group: &str) -> Result<Vec<(Node, Option<Node>)>, Diag> {
    match &v.kind {
        NodeKind::Null => Ok(Vec::new()),
        NodeKind::Str(_) => Ok(vec![(v.clone(), None)]),
        NodeKind::Map(m) => Ok(m.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect()),
        _ => Err(Diag::error(
            CODE,
            v.span,
            format!("'{section}' of group '{group}' must be a mapping, found {}", v.type_name()),
        )),
    }
}

fn parse_group(inv: &mut Inventory, name: &str, key: &Node, data: &Node) -> Result<(), Diag> {
    let Some(map) = data.as_map() else {
        if data.is_null() {
            inv.ensure_group(name, key.span);
        } else {
            inv.warnings.push(Diag::warning(
                CODE,
                data.span,
                format!("skipping '{name}': a group must be a mapping, found {}", data.type_name()),
            ));
        }
        return Ok(());
    };
    inv.ensure_group(name, key.span);
    for (k, v) in map {
        let section = key_name(k)?;
        match section.as_str() {
            "vars" => {
                for (vk, vv) in entries(v, "vars", name)? {
                    let value = vv.map(|n| n.to_value()).unwrap_or_default();
                    let var = key_name(&vk)?;
                    if let Some(g) = inv.groups.get_mut(name) {
                        g.vars.insert(var, value);
                    }
                }
            }
            "children" => {
                for (ck, cv) in entries(v, "children", name)? {
                    let child = key_name(&ck)?;
                    let null = Node::new(NodeKind::Null, ck.span);
                    parse_group(inv, &child, &ck, cv.as_ref().unwrap_or(&null))?;
                    if inv.groups.contains_key(&child) {
                        inv.add_child(name, &child, ck.span)?;
                    }
                }
            }
            "hosts" => {
                for (hk, hv) in entries(v, "hosts", name)? {
                    let pattern = key_name(&hk)?;
                    let (base, port) = range::split_port(&pattern).map_err(|e| Diag::error(CODE, hk.span, e))?;
                    let names = range::expand(&base).map_err(|e| Diag::error(CODE, hk.span, e))?;
                    let vars = match hv {
                        None => Map::new(),
                        Some(n) => match n.to_value() {
                            serde_json::Value::Null => Map::new(),
                            serde_json::Value::Object(m) => m,
                            _ => {
                                return Err(Diag::error(
                                    CODE,
                                    n.span,
                                    format!("vars of host '{pattern}' must be a mapping, found {}", n.type_name()),
                                ));
                            }
                        },
                    };
                    for h in names {
                        inv.add_host(name, &h, hk.span, vars.clone(), port);
                    }
                }
            }
            other => {
                if !v.is_null() {
                    inv.warnings.push(
                        Diag::warning(CODE, k.span, format!("skipping unexpected key '{other}' in group '{name}'"))
                            .with_help("only 'hosts', 'vars' and 'children' are valid in a group"),
                    );
                }
            }
        }
    }
    Ok(())
}
