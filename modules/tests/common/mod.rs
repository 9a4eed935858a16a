//! Drives modules through the registry exactly as the engine does, on the local machine.
#![allow(dead_code)]

use pbr_engine::Host;
use pbr_engine::module::{Controller, Ctx, ModuleError, ModuleResult, RunMode};
use pbr_engine::transport::local::LocalConnection;
use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Renders `{{ name }}` as `world` and `{{ port }}` as `8080`: enough to see a template applied.
pub struct TestRenderer;

impl Controller for TestRenderer {
    fn render_file(&self, path: &Path) -> Result<String, String> {
        let t = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        if t.contains("{{ fail }}") {
            return Err("undefined variable: fail".into());
        }
        Ok(t.replace("{{ name }}", "world").replace("{{ port }}", "8080"))
    }
}

pub fn host() -> Host {
    Host::new("local", Arc::new(LocalConnection::new()), None)
}

pub const CHECK: RunMode = RunMode { check: true, diff: true, verify: false, guard: None };
pub const APPLY: RunMode = RunMode { check: false, diff: true, verify: true, guard: None };

pub async fn run_in(
    search: &[PathBuf],
    module: &str,
    params: Value,
    mode: RunMode,
) -> Result<ModuleResult, ModuleError> {
    run_queued(search, module, params, mode, &[]).await
}

/// [`run_in`] with deferred work already queued in this run (`Ctx::queued`).
pub async fn run_queued(
    search: &[PathBuf],
    module: &str,
    params: Value,
    mode: RunMode,
    queued: &[String],
) -> Result<ModuleResult, ModuleError> {
    let reg = pbr_engine::Registry::with(pbr_modules::register);
    let m = reg.get(module).unwrap_or_else(|| panic!("no module {module}"));
    m.check_params(&params).map_err(|e| ModuleError::new(e.message))?;
    let ctx = Ctx { check: mode.check, diff: mode.diff, search, controller: &TestRenderer, queued };
    m.execute(&ctx, &params, &host(), mode).await
}

pub async fn run(module: &str, params: Value, mode: RunMode) -> Result<ModuleResult, ModuleError> {
    run_in(&[], module, params, mode).await
}

/// Every entry below `root`: kind, mode and content (or link target), byte for byte.
pub fn snapshot(root: &Path) -> BTreeMap<String, (String, u32, Vec<u8>)> {
    let mut m = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, m: &mut BTreeMap<String, (String, u32, Vec<u8>)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for p in entries {
            let md = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let mode = md.permissions().mode() & 0o7777;
            if md.file_type().is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                m.insert(rel, ("link".into(), 0, t.display().to_string().into_bytes()));
            } else if md.is_dir() {
                m.insert(rel, ("dir".into(), mode, vec![]));
                walk(root, &p, m);
            } else {
                m.insert(rel, ("file".into(), mode, std::fs::read(&p).unwrap()));
            }
        }
    }
    walk(root, root, &mut m);
    m
}

/// The whole contract on a fresh tree made by `setup`: check mode changes nothing on disk but
/// reports a change; apply (with verify) changes; a second apply reports nothing to do.
/// Returns (check result, apply result).
pub async fn converge(dir: &Path, search: &[PathBuf], module: &str, params: Value) -> (ModuleResult, ModuleResult) {
    let before = snapshot(dir);
    let check = run_in(search, module, params.clone(), CHECK).await.unwrap_or_else(|e| panic!("check: {e}"));
    assert!(check.changed, "check mode should report a change for {params}");
    assert_eq!(snapshot(dir), before, "check mode wrote something for {params}");
    let applied = run_in(search, module, params.clone(), APPLY).await.unwrap_or_else(|e| panic!("apply: {e}"));
    assert!(applied.changed);
    assert_eq!(applied.changes, check.changes, "apply did what check announced");
    // the second pass sees the deferred work the first one queued (it runs at the end of a run)
    let queued: Vec<String> = applied.deferred.iter().map(|d| d.key.clone()).collect();
    let again = run_queued(search, module, params.clone(), APPLY, &queued)
        .await
        .unwrap_or_else(|e| panic!("second apply: {e}"));
    assert!(!again.changed, "second run changed again: {:?}", again.changes);
    (check, applied)
}

pub fn mode_of(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

pub fn s(p: &Path) -> String {
    p.display().to_string()
}
