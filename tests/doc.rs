//! `pbr doc`: every module is documented, with examples that lint clean.

use serde_json::Value;
use std::process::Command;

fn pbr() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pbr"))
}

fn doc_json() -> serde_json::Map<String, Value> {
    let out = pbr().args(["doc", "--format", "json"]).output().expect("run pbr doc");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    match serde_json::from_slice(&out.stdout) {
        Ok(Value::Object(m)) => m,
        other => panic!("not a JSON object: {other:?}"),
    }
}

#[test]
fn every_module_has_a_description_schema_and_example() {
    let all = doc_json();
    assert!(!all.is_empty());
    let registry = pbr_engine::Registry::with(pbr_modules::register);
    assert_eq!(all.len(), registry.iter().count());
    for (name, m) in &all {
        let desc = m["description"].as_str().unwrap_or_default();
        assert!(desc.trim().len() > 10, "{name}: no description");
        let ex = m["examples"].as_str().unwrap_or_default();
        assert!(ex.trim_start().starts_with('-'), "{name}: no example task list");
        assert_eq!(m["schema"]["type"], "object", "{name}: params schema");
    }
}

#[test]
fn examples_lint_without_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut failures = Vec::new();
    for (name, m) in doc_json() {
        let ex = m["examples"].as_str().unwrap_or_default();
        let tasks: String = ex.lines().map(|l| format!("    {l}\n")).collect();
        let play = format!("- hosts: localhost\n  gather_facts: false\n  tasks:\n{tasks}");
        let file = dir.path().join(format!("{name}.yml"));
        std::fs::write(&file, play).expect("write");
        let out = pbr()
            .current_dir(dir.path())
            .args(["lint", "--format", "json"])
            .arg(file.file_name().expect("name"))
            .output()
            .expect("run lint");
        let diags: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        // examples name files and variables of an imagined project: only errors of the module
        // itself count (params, syntax, templates)
        let errors: Vec<String> = diags
            .iter()
            .filter(|d| d["severity"] == "error")
            .filter(|d| {
                !["missing-file", "undefined-var", "notify-unknown"].contains(&d["rule"].as_str().unwrap_or(""))
            })
            .map(|d| format!("{}:{}: {} {}", d["line"], d["col"], d["rule"], d["message"]))
            .collect();
        if !errors.is_empty() || out.status.code() == Some(2) && diags.is_empty() {
            failures.push(format!("{name}:\n  {}", errors.join("\n  ")));
        }
    }
    assert!(failures.is_empty(), "module examples with lint errors:\n{}", failures.join("\n"));
}

#[test]
fn one_module_in_text() {
    let out = pbr().args(["doc", "file"]).output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("file\n"), "{text}");
    assert!(text.contains("PARAMS"), "{text}");
    assert!(text.contains("  path (string, required)"), "{text}");
    assert!(text.contains("choices: file, directory, link, hard, touch, absent"), "{text}");
    assert!(text.contains("EXAMPLES"), "{text}");
}

#[test]
fn module_list_and_unknown_module() {
    let out = pbr().arg("doc").output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l.starts_with("copy ")), "{text}");
    let out = pbr().args(["doc", "fiel"]).output().expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did you mean `file`?"), "{err}");
}

#[test]
fn engine_actions_are_documented_from_their_params() {
    let out = pbr().arg("doc").output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    for a in ["assert", "debug", "reboot", "set_fact", "wait_for_connection"] {
        assert!(text.lines().any(|l| l.starts_with(&format!("{a} ")) && l.contains("(engine action)")), "{a}:\n{text}");
    }
    let out = pbr().args(["doc", "ansible.builtin.assert"]).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("assert\n") && text.contains("  that ("), "{text}");
    assert!(text.contains("fail_msg") && text.contains("EXAMPLES"), "{text}");
}
