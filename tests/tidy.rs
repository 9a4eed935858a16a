//! Invariants of the code's shape that the compiler cannot state (ARCHITECTURE.md names them).

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn rs_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    out.sort();
    out
}

/// The `.rs` files under `dir`, in subdirectories too.
fn rs_files_deep(dir: &Path) -> Vec<PathBuf> {
    let mut out = rs_files(dir);
    let mut subdirs: Vec<PathBuf> =
        std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    subdirs.sort();
    for d in subdirs {
        out.extend(rs_files_deep(&d));
    }
    out
}

/// The `[dependencies]` section of a Cargo.toml: the crate names.
fn dependencies(manifest: &Path) -> Vec<String> {
    let text = read(manifest);
    let mut on = false;
    let mut out = vec![];
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            on = l == "[dependencies]";
        } else if on && let Some((key, _)) = l.split_once('=') {
            // `name = ...` or `name.workspace = true`
            out.push(key.split('.').next().unwrap_or(key).trim().to_string());
        }
    }
    out
}

/// Modules talk to hosts only through `pbr_core::Host`: the modules crate depends on the
/// contract crate and not on the engine, so it cannot reach SSH or the executor; neither crate
/// starts a process on the controller (outside their unit tests).
#[test]
fn modules_know_nothing_of_transports() {
    let deps = dependencies(&root().join("modules/Cargo.toml"));
    assert!(deps.iter().any(|d| d == "pbr-core"), "modules does not depend on pbr-core: {deps:?}");
    let core = dependencies(&root().join("core/Cargo.toml"));
    for banned in ["pbr-engine", "russh", "russh-sftp", "nix", "libc", "minijinja", "saphyr"] {
        assert!(!deps.iter().any(|d| d == banned), "modules depends on {banned}");
        assert!(!core.iter().any(|d| d == banned), "core depends on {banned}");
    }
    for dir in ["modules/src", "core/src"] {
        for f in rs_files_deep(&root().join(dir)) {
            let text = read(&f);
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for banned in ["std::process::Command", "tokio::process", "Command::new("] {
                assert!(!code.contains(banned), "{} uses {banned} outside its tests", f.display());
            }
        }
    }
}

/// The engine never depends on the modules (the registry is handed to it), and the contract
/// crate on neither.
#[test]
fn the_engine_does_not_depend_on_modules() {
    let deps = dependencies(&root().join("engine/Cargo.toml"));
    assert!(!deps.iter().any(|d| d == "pbr-modules"), "{deps:?}");
    // lint reads what the run reads; the run never depends on lint
    assert!(!deps.iter().any(|d| d == "pbr-lint"), "{deps:?}");
    let lint = dependencies(&root().join("lint/Cargo.toml"));
    let ours: Vec<&String> = lint.iter().filter(|d| d.starts_with("pbr-")).collect();
    assert_eq!(ours, ["pbr-engine"], "{lint:?}");
    let core = dependencies(&root().join("core/Cargo.toml"));
    assert!(!core.iter().any(|d| d.starts_with("pbr-")), "{core:?}");
    let syntax = dependencies(&root().join("syntax/Cargo.toml"));
    assert!(!syntax.iter().any(|d| d.starts_with("pbr-")), "{syntax:?}");
    // templating knows the contract's regular expressions and the syntax layer, no host
    let template = dependencies(&root().join("template/Cargo.toml"));
    let ours: Vec<&String> = template.iter().filter(|d| d.starts_with("pbr-")).collect();
    assert_eq!(ours, ["pbr-core", "pbr-syntax"], "{template:?}");
    // the transports know the contract only
    let transport = dependencies(&root().join("transport/Cargo.toml"));
    let ours: Vec<&String> = transport.iter().filter(|d| d.starts_with("pbr-")).collect();
    assert_eq!(ours, ["pbr-core"], "{transport:?}");
    // playbooks and inventories are data: no templating, host or run
    let playbook = dependencies(&root().join("playbook/Cargo.toml"));
    let ours: Vec<&String> = playbook.iter().filter(|d| d.starts_with("pbr-")).collect();
    assert_eq!(ours, ["pbr-core", "pbr-syntax"], "{playbook:?}");
}

/// CI runs the test command the README gives.
#[test]
fn ci_runs_the_readme_test_command() {
    let readme = read(&root().join("README.md"));
    let ci = read(&root().join(".ci/run"));
    let cmd = "cargo test --workspace --no-fail-fast";
    assert!(readme.contains(&format!("```sh\n{cmd}\n```")), "the README's test command is not `{cmd}`");
    assert!(ci.lines().any(|l| l.trim() == cmd), ".ci/run does not run `{cmd}`");
}

/// ARCHITECTURE.md is the map: every source file of the binary and the engine's top level is on it.
#[test]
fn the_map_names_every_file() {
    let map = read(&root().join("ARCHITECTURE.md"));
    for dir in
        ["src", "core/src", "syntax/src", "template/src", "transport/src", "playbook/src", "engine/src", "lint/src"]
    {
        for f in rs_files(&root().join(dir)) {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            if name == "lib.rs" || name == "main.rs" {
                continue;
            }
            assert!(
                map.contains(&format!("`{name}`")) || map.contains(&name),
                "ARCHITECTURE.md does not name {dir}/{name}"
            );
        }
    }
}

/// Apply runs exactly the planned ops: a module's plan carries its ops and the engine runs them
/// (`Module::apply`'s default). An apply of a module's own may only word the errors of the
/// planned ops, and says so by calling `run_ops(host, &plan.ops)`.
#[test]
fn apply_runs_the_planned_ops() {
    let mut checked = 0;
    for f in rs_files_deep(&root().join("modules/src")) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let text = read(&f);
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        checked += usize::from(code.contains("fn plan("));
        let Some(at) = code.find("async fn apply(") else { continue };
        let body = &code[at..];
        let body = &body[..body.find("\n    }\n").unwrap_or(body.len())];
        assert!(
            body.contains("run_ops(host, &plan.ops)"),
            "{name} has an apply of its own: return ops from plan instead (pbr_core::op)"
        );
    }
    assert!(checked > 20, "only {checked} modules with a plan were found under modules/src");
}

/// Modules live in their domain's directory (files, text, system, storage, boot); the top of
/// `modules/src` holds only the crate root and the shared helpers.
#[test]
fn modules_are_grouped_by_domain() {
    let top: Vec<String> = rs_files(&root().join("modules/src"))
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(top, ["lib.rs", "util.rs"], "a module outside a domain directory");
    for domain in ["files", "text", "system", "storage", "boot"] {
        assert!(!rs_files(&root().join("modules/src").join(domain)).is_empty(), "modules/src/{domain} is empty");
    }
}
