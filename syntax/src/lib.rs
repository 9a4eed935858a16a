//! pbr's syntax layer: source texts and spans, diagnostics (with the lint rule ids), YAML with
//! Ansible's YAML 1.1 reading, and Ansible Vault. Knows nothing of playbooks' meaning, templates
//! or hosts.

// `Diag` carries its message, help and notes: large, but only on the cold error path.
#![allow(clippy::result_large_err)]

pub mod diag;
mod diag_render;
pub mod kv;
pub mod pylit;
pub mod source;
pub mod vault;
pub mod yaml;
mod yaml_load;

/// Whether a string has Jinja markup (`{{`, `{%` or `{#`): a template, not plain text.
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}
