//! Ansible compatibility, measured against Ansible itself: each playbook in `tests/compat/`
//! (written in the style of Ansible's integration targets: tasks, then asserts on what they
//! registered) runs unchanged through pbr and through `ansible-playbook`, on `localhost` with
//! `connection: local`, each in a fresh directory (`workdir`). Both must pass every task and
//! report the same changed count. Without `ansible-playbook` the comparison is skipped (fails
//! under `CI=true`: `.ci/run` installs Debian's `ansible`, ansible-core with its collections); pbr's own run is checked either way.

use std::path::{Path, PathBuf};
use std::process::Command;

/// ok, changed, unreachable, failed of `localhost` in a run's recap.
fn recap(out: &str) -> Option<[u64; 4]> {
    let line = out.lines().rev().find(|l| l.starts_with("localhost") && l.contains("ok="))?;
    let num = |k: &str| -> Option<u64> {
        let at = line.find(&format!("{k}="))? + k.len() + 1;
        line[at..].split_whitespace().next()?.parse().ok()
    };
    Some([num("ok")?, num("changed")?, num("unreachable")?, num("failed")?])
}

/// `sh -c` script: `$0` a scratch directory, then the command. /etc becomes an overlay whose
/// writes land in a tmpfs mounted on the scratch directory (this mount namespace only).
const OWN_ETC: &str = "mount -t tmpfs none \"$0\" && mkdir \"$0/u\" \"$0/w\" && \
    mount -t overlay overlay -o lowerdir=/etc,upperdir=\"$0/u\",workdir=\"$0/w\" /etc && exec \"$@\"";

fn run(tool: &str, playbook: &Path) -> (bool, String, Option<[u64; 4]>) {
    let work = tempfile::tempdir().unwrap();
    let inv = work.path().join("inventory.ini");
    std::fs::write(&inv, "localhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n").unwrap();
    let workdir = work.path().join("w");
    std::fs::create_dir(&workdir).unwrap();
    // A playbook that changes what belongs to a UTS namespace (kernel.domainname, the host name)
    // runs in one of its own, so the machine running the tests keeps its own; one that writes
    // /etc also gets a throwaway /etc (an overlay over the real one, on a tmpfs of its own).
    let text = std::fs::read_to_string(playbook).unwrap();
    let own_etc = text.contains("# compat: own-etc");
    let own_uts = own_etc || text.contains("# compat: own-uts-namespace");
    let program = if tool == "pbr" { env!("CARGO_BIN_EXE_pbr") } else { tool };
    let scratch = work.path().join("etc-layer");
    let new_cmd = || {
        if own_etc {
            std::fs::create_dir_all(&scratch).unwrap();
            let mut c = Command::new("unshare");
            c.args(["--mount", "--uts", "--", "sh", "-c", OWN_ETC]).arg(&scratch).arg(program);
            c
        } else if own_uts {
            let mut c = Command::new("unshare");
            c.arg("--uts").arg("--").arg(program);
            c
        } else {
            Command::new(program)
        }
    };
    let mut cmd = if tool == "pbr" {
        let mut c = new_cmd();
        c.arg("run").arg("--no-retry-file").env("PBR_TEST_LOOPBACK_ONLY", "1");
        c
    } else {
        let mut c = new_cmd();
        c.env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "False")
            .env("ANSIBLE_STDOUT_CALLBACK", "default")
            .env("ANSIBLE_LOCAL_TEMP", work.path().join("tmp"))
            .env("ANSIBLE_HOME", work.path().join("home"));
        c
    };
    let out = cmd
        .arg(playbook)
        .arg("-i")
        .arg(&inv)
        .arg("-e")
        .arg(format!("workdir={}", workdir.display()))
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let r = recap(&text);
    (out.status.success(), text, r)
}

fn ansible_playbook() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join("ansible-playbook")).find(|f| f.is_file()));
    if found.is_none() && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("ansible-playbook is not installed (apt-get install ansible): the comparison cannot run");
    }
    found
}

#[test]
fn compat_playbooks_pass_in_pbr_and_in_ansible() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat");
    let mut books: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    books.sort();
    assert!(!books.is_empty(), "no playbooks in {}", dir.display());
    let ansible = ansible_playbook();
    if ansible.is_none() {
        eprintln!("ansible-playbook not found: pbr's runs only");
    }
    let mut failures = vec![];
    let can_unshare = Command::new("unshare").args(["--uts", "--mount", "true"]).status().is_ok_and(|s| s.success());
    for b in &books {
        let name = b.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(b).unwrap();
        if !can_unshare && (text.contains("# compat: own-uts-namespace") || text.contains("# compat: own-etc")) {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{name} needs `unshare` (root): CI runs as root");
            eprintln!("{name}: skipped, `unshare` needs root");
            continue;
        }
        let (ok, text, r) = run("pbr", b);
        let pbr_counts = match r {
            Some([_, changed, 0, 0]) if ok => changed,
            _ => {
                failures.push(format!("{name}: pbr did not pass:\n{text}"));
                continue;
            }
        };
        let Some(a) = &ansible else { continue };
        let (ok, text, r) = run(a.to_str().unwrap(), b);
        match r {
            Some([_, changed, 0, 0]) if ok && changed == pbr_counts => {
                eprintln!("{name}: pbr and ansible-playbook pass, changed={changed}")
            }
            Some([_, changed, 0, 0]) if ok => failures
                .push(format!("{name}: ansible-playbook reports changed={changed}, pbr changed={pbr_counts}\n{text}")),
            _ => failures.push(format!("{name}: ansible-playbook did not pass (the playbook is wrong):\n{text}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The same playbooks lint clean once `pbr lint` knows the `-e` they run with, and not without.
#[test]
fn compat_playbooks_lint_clean_with_their_extra_vars() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat");
    let lint = |extra: &[&str]| {
        // the compat runs' own inventory (not the repo's default, whose vault lint cannot read)
        Command::new(env!("CARGO_BIN_EXE_pbr"))
            .arg("lint")
            .arg(&dir)
            .args(["-i", "localhost,"])
            .args(extra)
            .env("NO_COLOR", "1")
            .output()
            .expect("pbr lint runs")
    };
    let out = lint(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("variable `workdir` is defined nowhere"), "{text}");
    let out = lint(&["-e", "workdir=/tmp"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("`workdir`"), "{text}");
    // a bad -e is bad input, named
    let out = lint(&["-e", "not a pair"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read `not a pair`"));
}
