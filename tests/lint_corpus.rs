//! `pbr lint` against the corpus in tests/lint: every file in `bad/` is flagged exactly where its
//! `# expect: rule@LINE:COL` markers say, `good/` lints clean; output formats, exit codes and
//! disables.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn pbr() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pbr"))
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lint")
}

fn run(dir: &Path, args: &[&str]) -> Output {
    pbr().current_dir(dir).arg("lint").args(args).env("NO_COLOR", "1").output().expect("run pbr")
}

fn json_of(out: &Output) -> Vec<Value> {
    let text = String::from_utf8_lossy(&out.stdout);
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Array(a)) => a,
        other => {
            panic!("not a JSON array: {other:?}\nstdout: {text}\nstderr: {}", String::from_utf8_lossy(&out.stderr))
        }
    }
}

type Finding = (String, String, u64, u64);

/// `# expect: rule@L:C` markers of a file (several per line allowed).
fn expectations(dir: &Path, rel: &str) -> BTreeSet<Finding> {
    let text = std::fs::read_to_string(dir.join(rel)).expect("read corpus file");
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let Some(i) = line.find("expect:") else { continue };
        for item in line[i + "expect:".len()..].split_whitespace() {
            let Some((rule, at)) = item.split_once('@') else { continue };
            let (l, c) = at.split_once(':').expect("marker LINE:COL");
            out.insert((rel.to_string(), rule.to_string(), l.parse().expect("line"), c.parse().expect("col")));
        }
    }
    out
}

fn findings(diags: &[Value]) -> BTreeSet<Finding> {
    diags
        .iter()
        .map(|d| {
            (
                d["file"].as_str().unwrap_or("").to_string(),
                d["rule"].as_str().unwrap_or("").to_string(),
                d["line"].as_u64().unwrap_or(0),
                d["col"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

#[test]
fn bad_corpus_is_flagged_exactly() {
    let dir = corpus().join("bad");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("bad dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "corpus too small: {files:?}");
    let mut failures = Vec::new();
    for f in &files {
        let name = f.file_name().and_then(|n| n.to_str()).expect("name").to_string();
        let stem = name.trim_end_matches(".yml").to_string();
        let mut args = vec!["--format", "json", name.as_str()];
        let inv = format!("{stem}.ini");
        let mut want = expectations(&dir, &name);
        if dir.join(&inv).exists() {
            args.extend(["-i", inv.as_str()]);
            want.extend(expectations(&dir, &inv));
        }
        let out = run(&dir, &args);
        let got_diags = json_of(&out);
        let got = findings(&got_diags);
        // findings in other files (template files, included tasks) carry their own markers
        for (file, ..) in &got {
            if file != &name && file != &inv {
                want.extend(expectations(&dir, file));
            }
        }
        assert!(want.iter().any(|(_, r, ..)| *r == stem), "{name}: no `# expect: {stem}@L:C` marker");
        if got != want {
            failures.push(format!(
                "{name}:\n  missing: {:?}\n  unexpected: {:?}",
                want.difference(&got).collect::<Vec<_>>(),
                got.difference(&want).collect::<Vec<_>>()
            ));
        }
        let errors = got_diags.iter().any(|d| d["severity"] == "error");
        let code = out.status.code();
        assert_eq!(code, Some(if errors { 2 } else { 0 }), "{name}: exit code");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn good_corpus_lints_clean() {
    let dir = corpus().join("good");
    let out = run(&dir, &["--strict", "."]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("no problems"), "{text}");
    assert!(text.contains("1 playbook"), "the role and task files are not playbooks: {text}");
}

#[test]
fn repo_playbooks_lint_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("playbooks");
    let has_playbooks = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok()).any(|e| e.path().extension().is_some_and(|x| x == "yml" || x == "yaml")))
        .unwrap_or(false);
    if !has_playbooks {
        return;
    }
    let out = run(root, &["--format", "json", "playbooks"]);
    let diags = json_of(&out);
    let errors: Vec<&Value> = diags.iter().filter(|d| d["severity"] == "error").collect();
    assert!(errors.is_empty(), "playbooks/ has lint errors: {errors:#?}");
}

fn temp_playbook(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("site.yml"), text).expect("write");
    dir
}

const ONE_WARNING: &str = "- hosts: localhost\n  tasks:\n    - name: restart\n      command: systemctl restart x\n";
const ONE_ERROR: &str =
    "- hosts: localhost\n  tasks:\n    - name: typo\n      file:\n        path: /tmp/x\n        stat: touch\n";

#[test]
fn exit_codes_and_strict() {
    let clean = temp_playbook("- hosts: localhost\n  tasks:\n    - name: hi\n      command: echo hi\n");
    assert_eq!(run(clean.path(), &["site.yml"]).status.code(), Some(0));
    assert_eq!(run(clean.path(), &["--strict", "site.yml"]).status.code(), Some(0));
    let warn = temp_playbook(ONE_WARNING);
    assert_eq!(run(warn.path(), &["site.yml"]).status.code(), Some(0));
    assert_eq!(run(warn.path(), &["--strict", "site.yml"]).status.code(), Some(1));
    let err = temp_playbook(ONE_ERROR);
    let out = run(err.path(), &["site.yml"]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("error[unknown-param]: unknown param `stat`"), "{text}");
    assert!(text.contains("--> site.yml:6:9"), "{text}");
    assert!(text.contains("did you mean `state`?"), "{text}");
    assert!(text.contains("1 error, 0 warnings"), "{text}");
    assert_eq!(run(err.path(), &["nope.yml"]).status.code(), Some(2), "a missing path is an error");
}

#[test]
fn json_shape() {
    let err = temp_playbook(ONE_ERROR);
    let diags = json_of(&run(err.path(), &["--format", "json", "site.yml"]));
    assert_eq!(diags.len(), 1);
    let d = &diags[0];
    assert_eq!(d["rule"], "unknown-param");
    assert_eq!(d["severity"], "error");
    assert_eq!(d["file"], "site.yml");
    assert_eq!((d["line"].as_u64(), d["col"].as_u64()), (Some(6), Some(9)));
    assert_eq!((d["end_line"].as_u64(), d["end_col"].as_u64()), (Some(6), Some(13)));
    assert!(d["message"].as_str().is_some_and(|m| m.contains("stat")));
    assert_eq!(d["help"], "did you mean `state`?");
}

#[test]
fn sarif_shape() {
    let err = temp_playbook(ONE_ERROR);
    let out = run(err.path(), &["--format", "sarif", "site.yml"]);
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).expect("sarif json");
    assert_eq!(v["version"], "2.1.0");
    assert!(v["$schema"].as_str().is_some_and(|s| s.contains("sarif")));
    let run0 = &v["runs"][0];
    assert_eq!(run0["tool"]["driver"]["name"], "pbr");
    let rules = run0["tool"]["driver"]["rules"].as_array().expect("rules");
    assert!(rules.iter().any(|r| r["id"] == "unknown-param" && r["shortDescription"]["text"].is_string()));
    let r = &run0["results"][0];
    assert_eq!(r["ruleId"], "unknown-param");
    assert_eq!(r["level"], "error");
    assert!(r["message"]["text"].as_str().is_some_and(|m| m.contains("stat")));
    let loc = &r["locations"][0]["physicalLocation"];
    assert_eq!(loc["artifactLocation"]["uri"], "site.yml");
    assert_eq!(loc["region"]["startLine"], 6);
    assert_eq!(loc["region"]["startColumn"], 9);
    assert_eq!(loc["region"]["endLine"], 6);
    assert_eq!(loc["region"]["endColumn"], 13);
}

#[test]
fn github_shape() {
    let warn = temp_playbook(ONE_WARNING);
    let out = run(warn.path(), &["--format", "github", "site.yml"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("::warning file=site.yml,line=4,col=16,title=command-instead-of-module::`systemctl` run"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1, "{text}");
}

#[test]
fn config_file_disables_and_changes_severity() {
    let dir = temp_playbook(ONE_WARNING);
    std::fs::write(dir.path().join(".pbr-lint.yml"), "severity:\n  command-instead-of-module: error\n").expect("cfg");
    let diags = json_of(&run(dir.path(), &["--format", "json", "site.yml"]));
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0]["severity"], "error");
    assert_eq!(run(dir.path(), &["site.yml"]).status.code(), Some(2));

    std::fs::write(dir.path().join(".pbr-lint.yml"), "disable: [command-instead-of-module]\n").expect("cfg");
    assert!(json_of(&run(dir.path(), &["--format", "json", "site.yml"])).is_empty());

    // found from a parent of the linted path too
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).expect("mkdir");
    std::fs::write(sub.join("site.yml"), ONE_WARNING).expect("write");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let path = sub.join("site.yml");
    let diags = json_of(&run(elsewhere.path(), &["--format", "json", path.to_str().expect("utf8")]));
    assert!(diags.is_empty(), "{diags:?}");

    std::fs::write(dir.path().join(".pbr-lint.yml"), "disable: [no-such-rule]\n").expect("cfg");
    let diags = json_of(&run(dir.path(), &["--format", "json", "site.yml"]));
    assert!(diags.iter().any(|d| d["rule"] == "lint-config"), "{diags:?}");
}

#[test]
fn inline_disable() {
    let same_line = "- hosts: localhost\n  tasks:\n    - name: restart\n      command: systemctl restart x  # pbr-lint: disable=command-instead-of-module\n";
    let dir = temp_playbook(same_line);
    assert!(json_of(&run(dir.path(), &["--format", "json", "site.yml"])).is_empty());
    let line_above = "- hosts: localhost\n  tasks:\n    - name: restart\n      # pbr-lint: disable=other-rule,command-instead-of-module\n      command: systemctl restart x\n";
    let dir = temp_playbook(line_above);
    assert!(json_of(&run(dir.path(), &["--format", "json", "site.yml"])).is_empty());
    let other_rule = "- hosts: localhost\n  tasks:\n    - name: restart\n      # pbr-lint: disable=octal-mode\n      command: systemctl restart x\n";
    let dir = temp_playbook(other_rule);
    assert_eq!(json_of(&run(dir.path(), &["--format", "json", "site.yml"])).len(), 1);
}

#[test]
fn limit_that_matches_nothing() {
    let dir = temp_playbook("- hosts: all\n  tasks:\n    - name: hi\n      command: echo hi\n");
    std::fs::write(dir.path().join("hosts.ini"), "[pis]\npi1\npi2\n").expect("inv");
    let ok = run(dir.path(), &["--format", "json", "-i", "hosts.ini", "-l", "pi1", "site.yml"]);
    assert_eq!(ok.status.code(), Some(0));
    let out = run(dir.path(), &["--format", "json", "-i", "hosts.ini", "-l", "nas*", "site.yml"]);
    assert_eq!(out.status.code(), Some(2));
    let diags = json_of(&out);
    assert!(diags.iter().any(|d| d["rule"] == "limit-empty"), "{diags:?}");
}

#[test]
fn directory_lints_only_playbooks() {
    let dir = temp_playbook(ONE_ERROR);
    std::fs::write(dir.path().join("vars.yml"), "a: 1\n").expect("vars");
    std::fs::write(dir.path().join("tasks.yml"), "- name: t\n  command: echo\n").expect("tasks");
    let out = run(dir.path(), &["--format", "json", "."]);
    let diags = json_of(&out);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0]["file"], "./site.yml");
}

#[test]
fn secrets_in_group_vars_files() {
    let dir = temp_playbook("- hosts: all\n  tasks:\n    - name: hi\n      command: echo {{ wifi.ssid }}\n");
    std::fs::create_dir(dir.path().join("group_vars")).expect("mkdir");
    std::fs::write(
        dir.path().join("group_vars/all.yml"),
        "ntp_server: pool.ntp.org\nwifi:\n  ssid: home\n  psk: hunter2hunter2\nadmin_password: \"{{ lookup('env', 'P') }}\"\n",
    )
    .expect("vars");
    let diags = json_of(&run(dir.path(), &["--format", "json", "site.yml"]));
    let got: Vec<(String, String, u64)> = diags
        .iter()
        .map(|d| {
            (
                d["rule"].as_str().unwrap_or("").into(),
                d["file"].as_str().unwrap_or("").into(),
                d["line"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(got, vec![("plaintext-secret".to_string(), "group_vars/all.yml".to_string(), 4)]);
}
