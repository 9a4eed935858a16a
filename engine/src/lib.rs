//! pbr's engine: the run (scheduler, facts, reporting, saved plans), lint and module docs. The module
//! contract (`pbr-core`), the syntax layer (`pbr-syntax`), templating (`pbr-template`), the
//! transports (`pbr-transport`) and the playbook model (`pbr-playbook`) are crates of their own,
//! re-exported here under their old paths.
//!
//! See ARCHITECTURE.md at the repository root for the map.

// `Diag` carries its message, help and notes: large, but only on the cold error path.
#![allow(clippy::result_large_err)]

pub mod argspec;
pub mod doc;
pub mod exec;
pub mod fact_cache;
pub mod facts;
pub mod module;
pub mod report;
pub mod saved_plan;

/// Sources, diagnostics, YAML and Vault (`pbr-syntax`), under the engine's paths.
pub use pbr_syntax::{diag, source, vault, yaml};

// The module contract lives in `pbr-core` (modules depend on it alone); the engine re-exports
// it under the same paths.
pub use pbr_core::{bail, host, op, params, pyre};
/// Playbooks and inventories as data (`pbr-playbook`), under the engine's paths.
pub use pbr_playbook::{inventory, playbook};
/// Templating (`pbr-template`), under the engine's path.
pub use pbr_template as template;
/// The transports (`pbr-transport`), under the engine's path.
pub use pbr_transport as transport;

pub use diag::{Diag, Severity};
pub use host::{
    Become, BecomeMethod, Cmd, Connection, ExtStat, FileAttrs, FileStat, Host, HostError, Output, PathInfo, PathQuery,
    ReadHost, Secret, sh_quote,
};
pub use module::{
    Change, ChangeKind, Controller, Ctx, Deferred, Diff, Doc, Module, ModuleError, Outcome, Plan, Registry,
    SyntaxOptions,
};
pub use op::Op;
pub use source::Span;
pub use yaml::{Node, NodeKind};
