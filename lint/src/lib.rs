//! `pbr lint` and the preflight checks `pbr run` makes before touching any host (`pbr-lint`, over
//! the engine: it reads playbooks as the run does and checks params with the modules' own types).
//!
//! Both run the same analysis ([`analyze`]) over loaded playbooks: lint reports every finding,
//! errors and warnings; the preflight ([`check`]) reports only errors that are certain (a run
//! with them would fail), so it never stops a run that could succeed.

// `Diag` carries its message, help and notes: large, but only on the cold error path.
#![allow(clippy::result_large_err)]

mod analyze;
mod config;
mod output;
mod params;

use pbr_engine::{argspec, diag, inventory, module, playbook, source, template, vault, yaml};

use crate::diag::{Diag, Severity};
use crate::inventory::Inventory;
use crate::module::Registry;
use crate::playbook::{Loader, Playbook};
use crate::source::Span;
use crate::template::Templar;
use std::path::{Path, PathBuf};

pub use analyze::{ENGINE_ACTIONS, MAGIC_VARS, is_module};

/// What `pbr lint` was asked.
pub struct LintRequest<'a> {
    pub paths: Vec<PathBuf>,
    pub inventory: Vec<PathBuf>,
    pub format: String,
    pub strict: bool,
    pub limit: Option<String>,
    pub color: bool,
    pub registry: &'a Registry,
    /// `-e` values: defined for `undefined-var`, as a run with the same `-e` would have them.
    pub extra_vars: serde_json::Map<String, serde_json::Value>,
}

pub use crate::diag::{RULES, Rule, RuleId};

/// The rule with this id.
pub fn rule_of(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id.as_str() == id)
}

/// A diagnostic for a rule, at the rule's default severity.
pub(crate) fn diag(rule: RuleId, span: Span, message: impl Into<String>) -> Diag {
    let severity = RULES.iter().find(|r| r.id == rule).map_or(Severity::Error, |r| r.severity);
    Diag { severity, ..Diag::error(rule.as_str(), span, message) }
}

/// Give diagnostics from the loaders their lint rule id (by their code, never their text).
pub(crate) fn remap(mut d: Diag) -> Diag {
    d.code = match d.code {
        "io" => RuleId::MissingFile.as_str(),
        "yaml-alias" | "yaml-tag" => RuleId::YamlSyntax.as_str(),
        c if rule_of(c).is_some() => c,
        _ => RuleId::Playbook.as_str(),
    };
    d
}

/// "Did you mean" for an unknown module, from the registry and the engine's own actions.
pub fn with_module_hint(d: Diag, registry: &Registry) -> Diag {
    if d.code != RuleId::UnknownModule.as_str() || d.help.is_some() {
        return d;
    }
    let Some(name) = d.subject.clone() else {
        return d;
    };
    let names = registry.names();
    let cands = names.iter().copied().chain(ENGINE_ACTIONS.iter().copied());
    match crate::playbook::did_you_mean(crate::playbook::short_name(&name), cands) {
        Some(s) => d.with_help(format!("did you mean `{s}`?")),
        None => d.with_help("`pbr doc` lists the modules"),
    }
}

/// The analysis shared by lint and the preflight: every finding over loaded playbooks.
pub fn analyze(pbs: &[Playbook], inv: &Inventory, registry: &Registry, templar: &Templar, lint: bool) -> Vec<Diag> {
    let mut a = analyze::Analyzer::new(registry, templar, inv, lint);
    for pb in pbs {
        a.playbook(pb);
    }
    a.inventory_rules(inv, pbs);
    a.diags
}

/// Run lint for the CLI; returns the exit code (0 clean, 1 warnings with --strict, 2 errors).
pub fn run_cli(req: &LintRequest) -> u8 {
    if req.format == "rules" {
        for r in RULES {
            let sev = if r.severity == Severity::Error { "error" } else { "warning" };
            println!("{:<28} {:<8} {}", r.id.as_str(), sev, r.doc);
        }
        return 0;
    }
    if !["human", "json", "sarif", "github"].contains(&req.format.as_str()) {
        eprintln!("error: unknown lint format `{}` (human, json, sarif, github, rules)", req.format);
        return 2;
    }
    let (diags, files) = lint_paths(&req.paths, &req.inventory, req.limit.as_deref(), req.registry, &req.extra_vars);
    let out = output::render(&req.format, &diags, req.color, files);
    // a closed pipe (`pbr lint | head`) is not an error
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes());
    exit_code(&diags, req.strict)
}

/// Exit code for a set of findings: 2 with errors, 1 with warnings under `strict`, else 0.
pub fn exit_code(diags: &[Diag], strict: bool) -> u8 {
    if diags.iter().any(|d| d.severity == Severity::Error) {
        2
    } else if strict && diags.iter().any(|d| d.severity == Severity::Warning) {
        1
    } else {
        0
    }
}

/// Lint files and directories: every finding after config and inline disables, sorted.
/// Also returns the number of playbooks linted.
pub fn lint_paths(
    paths: &[PathBuf],
    inventory: &[PathBuf],
    limit: Option<&str>,
    registry: &Registry,
    extra_vars: &serde_json::Map<String, serde_json::Value>,
) -> (Vec<Diag>, usize) {
    let mut diags = Vec::new();
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            files.extend(playbooks_in_dir(p));
        } else if p.is_file() {
            files.push(p.clone());
        } else {
            diags.push(diag(RuleId::MissingFile, Span::none(), format!("no such file or directory: {}", p.display())));
        }
    }
    let mut inv = match Inventory::load(inventory) {
        Ok(inv) => inv,
        Err(d) => {
            let mut d = d;
            if rule_of(d.code).is_none() || d.code == RuleId::Playbook.as_str() {
                d.code = RuleId::Inventory.as_str();
            }
            diags.push(d);
            Inventory::new()
        }
    };
    let mut pbs = Vec::new();
    for f in &files {
        let is_mod = |n: &str| is_module(registry, n);
        let mut loader = Loader::new(&is_mod);
        match loader.load_playbook(f) {
            Ok(pb) => pbs.push(pb),
            Err(d) => diags.push(with_module_hint(remap(d), registry)),
        }
        // the errors of the tasks and plays left out, all of them
        for d in std::mem::take(&mut loader.recovered) {
            diags.push(with_module_hint(remap(d), registry));
        }
        if let Some(dir) = f.parent()
            && let Err(d) = inv.add_playbook_dir(if dir.as_os_str().is_empty() { Path::new(".") } else { dir })
        {
            diags.push(remap(d));
        }
    }
    if !extra_vars.is_empty() {
        inv.playbook_group_vars.entry("all".into()).or_default().extend(extra_vars.clone());
    }
    for w in &inv.warnings {
        let mut w = w.clone();
        w.code = RuleId::Inventory.as_str();
        w.severity = Severity::Warning;
        diags.push(w);
    }
    let templar = Templar::new();
    diags.extend(analyze(&pbs, &inv, registry, &templar, true));
    // secrets in group_vars/host_vars beside the inventory sources and the playbooks
    let mut dirs: Vec<PathBuf> = inventory
        .iter()
        .filter_map(|p| if p.is_dir() { Some(p.clone()) } else { p.parent().map(Path::to_path_buf) })
        .chain(files.iter().filter_map(|f| f.parent().map(Path::to_path_buf)))
        .collect();
    dirs.sort();
    dirs.dedup();
    let mut a = analyze::Analyzer::new(registry, &templar, &Inventory::new(), true);
    for d in &dirs {
        a.vars_dir_secrets(d);
    }
    diags.extend(a.diags);
    if let Some(limit) = limit {
        let mut all: Vec<String> = inv.hosts.keys().cloned().collect();
        all.push("localhost".into());
        match inv.limit(&all, limit) {
            Ok(h) if h.is_empty() => diags.push(
                diag(RuleId::LimitEmpty, Span::none(), format!("--limit {limit:?} matches no host of the inventory"))
                    .with_help("check the pattern against `pbr inventory --graph`"),
            ),
            Ok(_) => {}
            Err(e) => diags.push(diag(RuleId::LimitEmpty, Span::none(), format!("--limit {limit:?}: {e}"))),
        }
    }
    let cfg = config::Config::discover(paths, &mut diags);
    let diags = finish(diags, &cfg);
    (diags, files.len())
}

/// Apply the config and inline disables, drop duplicates, sort by location.
fn finish(diags: Vec<Diag>, cfg: &config::Config) -> Vec<Diag> {
    let mut out: Vec<Diag> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for mut d in diags {
        if !cfg.apply(&mut d) || config::inline_disabled(&d) {
            continue;
        }
        // the same file loaded twice (a role in two plays) has two sources: compare locations
        let at = output::location(&d);
        if seen.insert((d.code, at, d.message.clone())) {
            out.push(d);
        }
    }
    out.sort_by_cached_key(|d| {
        let loc = d.span.line_col().unwrap_or((0, 0));
        (d.span.path().map(|p| p.display().to_string()).unwrap_or_default(), loc, d.code)
    });
    out
}

/// The YAML files at the top of a directory that are playbooks (a list of plays).
pub fn playbooks_in_dir(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    files.into_iter().filter(|p| looks_like_playbook(p)).collect()
}

fn looks_like_playbook(p: &Path) -> bool {
    let text = match crate::source::read_text(p) {
        Ok(t) => t,
        // linted, so that the bad byte is reported
        Err(crate::source::ReadError::NotUtf8(..)) => return true,
        Err(_) => return false,
    };
    // Cheap pre-filter: a playbook's items start with `- hosts:`, `- name:`... at column 0.
    if !text.lines().any(|l| l.starts_with("- ")) {
        return false;
    }
    match crate::yaml::load_str(&p.display().to_string(), &text) {
        // A file that does not parse is linted (and its syntax error reported).
        Err(_) => true,
        Ok(docs) => docs.first().and_then(|d| d.as_seq()).is_some_and(|items| {
            !items.is_empty()
                && items.iter().all(|i| {
                    i.as_map().is_some()
                        && (i.get("hosts").is_some()
                            || i.get("import_playbook").is_some()
                            || i.get("ansible.builtin.import_playbook").is_some())
                })
        }),
    }
}

/// The checks `pbr run` makes before running: diagnostics of error severity stop the run.
/// Only certain errors are reported; rules that could be wrong (undefined variables, which may
/// come from `-e`) are left to `pbr lint`.
pub fn check(pbs: &[Playbook], inv: &Inventory, registry: &Registry, templar: &Templar) -> Vec<Diag> {
    let diags = analyze(pbs, inv, registry, templar, false);
    let mut ignore = Vec::new();
    let cfg = config::Config::discover(&[], &mut ignore);
    finish(diags, &cfg)
}

#[cfg(test)]
mod tests;
