//! pbr's engine: playbooks, inventory, templating, transport, scheduler, reporting, lint.
//!
//! See ARCHITECTURE.md at the repository root for the map.

pub mod diag;
pub mod doc;
pub mod exec;
pub mod lint;
pub mod facts;
mod diag_render;
pub mod host;
pub mod inventory;
pub mod module;
pub mod params;
pub mod report;
pub mod playbook;
pub mod source;
pub mod template;
pub mod transport;
pub mod yaml;
mod yaml_load;

pub use diag::{Diag, Severity};
pub use host::{Become, BecomeMethod, Cmd, Connection, FileAttrs, FileStat, Host, HostError, Output, Secret, sh_quote};
pub use module::{Change, Ctx, Deferred, Diff, Doc, Module, ModuleError, Outcome, Plan, Registry};
pub use source::Span;
pub use yaml::{Node, NodeKind};
