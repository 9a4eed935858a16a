use super::*;
use crate::module::{Ctx, Doc, Module, ModuleError, Outcome, Plan};
use async_trait::async_trait;
use pbr_engine::host::{Host, ReadHost};
use pbr_engine::params::{Mode, bool_lenient};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Kind {
    File,
    Directory,
    Link,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct TParams {
    path: String,
    #[serde(default)]
    state: Option<Kind>,
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    src: Option<String>,
    #[serde(default, deserialize_with = "bool_lenient")]
    force: bool,
}

struct TFile;

#[async_trait]
impl Module for TFile {
    type Params = TParams;
    type State = ();
    const NAME: &'static str = "tfile";

    fn doc(&self) -> Doc {
        Doc { description: "test", examples: "" }
    }
    fn validate(&self, p: &TParams) -> Result<(), String> {
        match (p.state, &p.src) {
            (Some(Kind::Link), None) => Err("src is required for state=link".into()),
            (_, Some(s)) if s.contains(' ') => Err("src must not contain spaces".into()),
            _ => Ok(()),
        }
    }
    async fn probe(&self, _: &Ctx<'_>, _: &TParams, _: &ReadHost) -> Result<(), ModuleError> {
        Ok(())
    }
    fn plan(&self, _: &TParams, _: &()) -> Result<Plan, ModuleError> {
        Ok(Plan::empty())
    }
    async fn apply(&self, _: &Ctx<'_>, _: &TParams, _: &(), _: &Plan, _: &Host) -> Result<Outcome, ModuleError> {
        Ok(Outcome::default())
    }
}

fn registry() -> Registry {
    Registry::with(|r| crate::module::ModuleSet::add(r, TFile))
}

/// Load a playbook from text and run the preflight and the lint analysis on it.
fn both(text: &str) -> (Vec<Diag>, Vec<Diag>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("site.yml");
    std::fs::write(&path, text).expect("write");
    let reg = registry();
    let is_mod = |n: &str| is_module(&reg, n);
    let mut loader = Loader::new(&is_mod);
    let pb = loader.load_playbook(&path).expect("loads");
    let inv = Inventory::new();
    let templar = Templar::new();
    let pre = check(std::slice::from_ref(&pb), &inv, &reg, &templar);
    let lint = analyze(std::slice::from_ref(&pb), &inv, &reg, &templar, true);
    (pre, lint)
}

fn codes(ds: &[Diag], sev: Severity) -> Vec<&'static str> {
    ds.iter().filter(|d| d.severity == sev).map(|d| d.code).collect()
}

#[test]
fn preflight_reports_certain_param_errors() {
    let (pre, _) = both(
        "- hosts: localhost\n  tasks:\n    - tfile:\n        path: /x\n        stat: file\n    - tfile:\n        path: /x\n        state: folder\n    - tfile:\n        state: link\n        path: /x\n",
    );
    assert_eq!(codes(&pre, Severity::Error), vec!["unknown-param", "param-value", "param-conflict"]);
}

#[test]
fn preflight_does_not_guess_about_templates_or_variables() {
    let text = "- hosts: localhost\n  tasks:\n    - tfile:\n        path: \"{{ somewhere }}\"\n        state: \"{{ kind }}\"\n        mode: \"{{ m }}\"\n        force: \"{{ f }}\"\n    - tfile:\n        path: /x\n        state: link\n        src: \"{{ target }}\"\n      when: from_extra_vars\n";
    let (pre, lint) = both(text);
    assert!(codes(&pre, Severity::Error).is_empty(), "{pre:?}");
    // lint still names the variables defined nowhere
    let undefined: Vec<&str> = lint.iter().filter(|d| d.code == "undefined-var").map(|d| d.message.as_str()).collect();
    assert_eq!(undefined.len(), 6, "{undefined:?}");
    assert!(!lint.iter().any(|d| d.code.starts_with("param")), "{lint:?}");
}

#[test]
fn variables_defined_anywhere_count() {
    let text = r#"
- hosts: localhost
  vars:
    a: 1
  vars_prompt:
    - name: prompted
  tasks:
    - tfile:
        path: /x
      register: out
    - set_fact:
        b: 2
    - debug:
        msg: "{{ a }} {{ b }} {{ out.rc }} {{ prompted }} {{ item }} {{ i }} {{ hostvars[inventory_hostname] }}"
      loop: [1]
      loop_control:
        index_var: i
    - debug:
        msg: "{{ ansible_facts.hostname }} {{ group_names }} {{ omit }} {{ lookup('env', 'HOME') }}"
    - debug:
        msg: "{% set local = 1 %}{{ local }}{% for x in [1] %}{{ x }}{% endfor %}"
"#;
    let (_, lint) = both(text);
    assert!(lint.is_empty(), "{lint:?}");
}

#[test]
fn validate_with_templates_is_not_guessed() {
    // the templated src may well be valid: no conflict reported by either
    let text = "- hosts: localhost\n  vars:\n    t: /a\n  tasks:\n    - tfile:\n        path: /x\n        state: link\n        src: \"{{ t }}\"\n";
    let (pre, lint) = both(text);
    assert!(pre.is_empty() && lint.is_empty(), "{pre:?} {lint:?}");
}

#[test]
fn handler_rules() {
    let text = "- hosts: localhost\n  tasks:\n    - tfile:\n        path: /x\n      notify: [h1, topic, nope]\n  handlers:\n    - name: h1\n      tfile:\n        path: /x\n    - name: h2\n      tfile:\n        path: /x\n      listen: topic\n    - name: h3\n      tfile:\n        path: /y\n";
    let (pre, lint) = both(text);
    assert_eq!(codes(&pre, Severity::Error), vec!["notify-unknown"]);
    let warnings: Vec<&str> = lint.iter().filter(|d| d.code == "handler-unused").map(|d| d.message.as_str()).collect();
    assert_eq!(warnings, vec!["handler `h3` is never notified"]);
}

#[test]
fn template_syntax_line_inside_a_block_scalar() {
    let text = "- hosts: localhost\n  vars:\n    x: 1\n  tasks:\n    - tfile:\n        path: /x\n        owner: |\n          ok {{ x }}\n          bad {{ x +\n          }}\n";
    let (pre, _) = both(text);
    let d = pre.iter().find(|d| d.code == "template-syntax").expect("syntax error");
    let (line, _) = d.span.line_col().expect("located");
    assert!(line >= 9, "points into the block scalar, got line {line}");
}

#[test]
fn loader_codes_become_rules() {
    let d = remap(Diag::error("io", Span::none(), "cannot read x.yml"));
    assert_eq!(d.code, "missing-file");
    // a loader's code decides, not its message's words
    let d = remap(Diag::error("playbook", Span::none(), "file not found: x.yml"));
    assert_eq!(d.code, "playbook");
    let d = remap(Diag::error("yaml-tag", Span::none(), "bad tag"));
    assert_eq!(d.code, "yaml-syntax");
    let d = remap(Diag::error("something-new", Span::none(), "x"));
    assert_eq!(d.code, "playbook");
    assert!(RULES.iter().all(|r| !r.doc.is_empty()));
}
