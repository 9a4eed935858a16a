//! pbr's module contract: what a module is, and everything it sees.
//!
//! A module is four things: typed **params** (one struct; its doc comments are `pbr doc`'s text
//! and lint checks tasks against it), a **probe** that reads the host through a read-only
//! [`Host`], a pure **plan** from params and probed state to [`Change`]s (said in words, with a
//! kind `+ ~ - !`) and the [`Op`]s that make them, and a [`Doc`]. The engine does the rest: it
//! runs the ops exactly as planned (a module writes no apply), stops after the plan in check
//! mode, renders the plan for `--diff`, and probes and plans again for `--verify`, which must
//! give an empty plan. This crate is all a module depends on: it holds no transport, no
//! template engine and no executor, so "modules never see SSH" is a fact of the dependency graph.
//!
//! # Write a module
//!
//! A module that keeps `/etc/motd` saying one line:
//!
//! ```
//! use async_trait::async_trait;
//! use pbr_core::{Change, ChangeKind, Ctx, Diff, Doc, Module, ModuleError, Op, Plan, ReadHost};
//!
//! /// Params: serde reads them from the task, schemars describes them for lint and `pbr doc`.
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! pub struct MotdParams {
//!     /// The line the message of the day says.
//!     pub line: String,
//! }
//!
//! pub struct Motd;
//!
//! #[async_trait]
//! impl Module for Motd {
//!     type Params = MotdParams;
//!     /// What the probe found: the file's bytes, if it exists.
//!     type State = Option<Vec<u8>>;
//!     const NAME: &'static str = "motd";
//!
//!     fn doc(&self) -> Doc {
//!         Doc { description: "Keep /etc/motd saying one line.", examples: "- motd:\n    line: hello\n" }
//!     }
//!
//!     // Read only: `ReadHost` has no method that writes.
//!     async fn probe(&self, _ctx: &Ctx<'_>, _p: &MotdParams, host: &ReadHost) -> Result<Self::State, ModuleError> {
//!         Ok(host.read_file("/etc/motd").await?)
//!     }
//!
//!     // Pure: no host, no clock, no controller. Everything it needs was probed.
//!     fn plan(&self, p: &MotdParams, state: &Self::State) -> Result<Plan, ModuleError> {
//!         let want = format!("{}\n", p.line).into_bytes();
//!         if state.as_deref() == Some(&want[..]) {
//!             return Ok(Plan::empty()); // "ok": nothing to do
//!         }
//!         let before = state.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
//!         let diff = Diff::file("/etc/motd", before, String::from_utf8_lossy(&want));
//!         let mut plan = Plan::empty();
//!         plan.push(match state {
//!             None => Change::create("create /etc/motd").with_diff(diff),
//!             Some(_) => Change::new("update /etc/motd").with_diff(diff),
//!         });
//!         // The op the engine runs: an atomic write (temp file, checked, renamed).
//!         plan.op(Op::WriteFile {
//!             path: "/etc/motd".into(),
//!             content: want,
//!             mode: Some(0o644),
//!             owner: None,
//!             group: None,
//!             backup: false,
//!             validate: None,
//!         });
//!         Ok(plan)
//!     }
//! }
//!
//! // A plan is a pure function, so a planner's unit test needs no host at all:
//! let p = MotdParams { line: "hello".into() };
//! let fresh = Motd.plan(&p, &None).unwrap();
//! assert_eq!(fresh.changes[0].kind, ChangeKind::Create);
//! assert!(matches!(&fresh.ops[0], Op::WriteFile { path, .. } if path == "/etc/motd"));
//! let converged = Motd.plan(&p, &Some(b"hello\n".to_vec())).unwrap();
//! assert!(converged.is_empty());
//! let drifted = Motd.plan(&p, &Some(b"bye\n".to_vec())).unwrap();
//! assert_eq!(drifted.changes[0].kind, ChangeKind::Update);
//! assert_eq!(drifted.changes[0].diff.as_ref().unwrap().before, "bye\n");
//! ```
//!
//! Then add it to `pbr_modules::register` (`r.add(motd::Motd)`), and the engine's `Registry`
//! gives it to runs, lint and `pbr doc`. Shared param types read the Ansible way (modes, lenient
//! booleans) are in [`params`]; Python-syntax regular expressions in [`pyre`]; what a probe can
//! ask of many paths at once in [`inspect`]; every op in [`op`].

pub mod host;
pub mod inspect;
pub mod module;
pub mod op;
pub mod params;
pub mod pyre;

pub use host::{
    Become, BecomeMethod, Cmd, Connection, ExtStat, FileAttrs, FileStat, Host, HostError, Output, PathInfo, PathQuery,
    ReadHost, Secret, sh_quote,
};
pub use module::{
    Change, ChangeKind, Controller, Ctx, Deferred, Diff, Doc, Module, ModuleError, ModuleSet, Outcome, Plan,
    SyntaxOptions,
};
pub use op::Op;
