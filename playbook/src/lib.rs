//! pbr's playbooks and inventories as data: loading them with Ansible's reading (task keywords,
//! roles, imports, `vars_files`; INI and YAML inventories, `group_vars/`, host patterns). Over
//! the syntax layer (`pbr-syntax`) and the contract's shared readings (`pbr-core`); knows nothing
//! of templates' values, hosts or the run.

// `Diag` carries its message, help and notes: large, but only on the cold error path.
#![allow(clippy::result_large_err)]

pub mod inventory;
pub mod playbook;

use pbr_core::params;
use pbr_syntax::{diag, source, yaml};
