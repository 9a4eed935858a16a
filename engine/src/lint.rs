//! `pbr lint` and the preflight checks `pbr run` makes before touching any host.

use crate::diag::Diag;
use crate::inventory::Inventory;
use crate::module::Registry;
use crate::playbook::Playbook;
use crate::template::Templar;
use std::path::PathBuf;

/// What `pbr lint` was asked.
pub struct LintRequest<'a> {
    pub paths: Vec<PathBuf>,
    pub inventory: Vec<PathBuf>,
    pub format: String,
    pub strict: bool,
    pub limit: Option<String>,
    pub color: bool,
    pub registry: &'a Registry,
}

/// Run lint for the CLI; returns the exit code (0 clean, 1 warnings with --strict, 2 errors).
pub fn run_cli(req: &LintRequest) -> u8 {
    let _ = req;
    0
}

/// The checks `pbr run` makes before running: diagnostics of error severity stop the run.
pub fn check(pbs: &[Playbook], inv: &Inventory, registry: &Registry, templar: &Templar) -> Vec<Diag> {
    let _ = (pbs, inv, registry, templar);
    vec![]
}
