//! `group_vars/` and `host_vars/` directories, read like Ansible's `host_group_vars` plugin:
//! for each NAME the first of `NAME` (a file, or a directory whose files are merged in name
//! order, recursively), `NAME.yml`, `NAME.yaml`, `NAME.json` is used.

use super::{CODE, read_dir_names};
use crate::diag::Diag;
use crate::source::{Span, add_source};
use indexmap::IndexMap;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

const EXTS: [&str; 3] = [".yml", ".yaml", ".json"];

/// Every entity's vars in a `group_vars`/`host_vars` directory, by name (sorted). A missing
/// directory gives an empty map.
pub(super) fn load(dir: &Path) -> Result<IndexMap<String, Map<String, Value>>, Diag> {
    let mut out = IndexMap::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    // name -> (rank of the form found: 0 bare, 1.. by extension, path)
    let mut found: IndexMap<String, (usize, PathBuf)> = IndexMap::new();
    let mut names = read_dir_names(dir)?;
    names.sort();
    for entry in names {
        if entry.starts_with('.') || entry.ends_with('~') {
            continue;
        }
        let path = dir.join(&entry);
        let mut candidates = vec![(entry.clone(), 0usize)];
        if path.is_file()
            && let Some((rank, ext)) = EXTS.iter().enumerate().find(|(_, e)| entry.ends_with(*e))
        {
            candidates.push((entry[..entry.len() - ext.len()].to_string(), rank + 1));
        }
        for (name, rank) in candidates {
            if name.is_empty() {
                continue;
            }
            match found.get(&name) {
                Some((r, _)) if *r <= rank => {}
                _ => {
                    found.insert(name, (rank, path.clone()));
                }
            }
        }
    }
    found.sort_keys();
    for (name, (_, path)) in found {
        let mut vars = Map::new();
        let files = if path.is_dir() { dir_files(&path)? } else { vec![path] };
        for f in files {
            for (k, v) in load_vars_file(&f)? {
                vars.insert(k, v);
            }
        }
        out.insert(name, vars);
    }
    Ok(out)
}

/// Files of a `NAME/` vars directory, sorted, recursing into subdirectories without an
/// extension; only files without an extension or with a YAML/JSON one.
fn dir_files(dir: &Path) -> Result<Vec<PathBuf>, Diag> {
    let mut names = read_dir_names(dir)?;
    names.sort();
    let mut out = Vec::new();
    for name in names {
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        let path = dir.join(&name);
        let ext = Path::new(&name).extension().map(|e| format!(".{}", e.to_string_lossy()));
        if path.is_dir() && ext.is_none() {
            out.extend(dir_files(&path)?);
        } else if path.is_file() && ext.as_deref().is_none_or(|e| EXTS.contains(&e)) {
            out.push(path);
        }
    }
    Ok(out)
}

/// One vars file: a YAML (or JSON) mapping; empty or null gives no vars.
pub(crate) fn load_vars_file(path: &Path) -> Result<Map<String, Value>, Diag> {
    let text = crate::source::read_text(path).map_err(|e| match e {
        crate::source::ReadError::NotUtf8(span, m) => Diag::error(crate::diag::RuleId::Encoding.as_str(), span, m),
        e => Diag::error(CODE, Span::none(), format!("cannot read vars file {}: {e}", path.display())),
    })?;
    let id = add_source(path, text);
    let docs = crate::yaml::load_source(id)?;
    if docs.len() > 1 {
        return Err(Diag::error(CODE, docs[1].span, "a vars file must hold a single YAML document"));
    }
    let Some(doc) = docs.first() else {
        return Ok(Map::new());
    };
    match doc.to_value() {
        Value::Null => Ok(Map::new()),
        Value::Object(m) => Ok(m),
        _ => Err(Diag::error(
            CODE,
            doc.span,
            format!("a vars file must be a mapping of variable names to values, found {}", doc.type_name()),
        )),
    }
}
