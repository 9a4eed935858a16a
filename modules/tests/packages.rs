//! package and systemd against this machine, reading state only.

mod common;
use common::*;
use serde_json::json;

fn has(cmd: &str) -> bool {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn apt_probe_reads_installed_state() {
    if !has("dpkg-query") {
        eprintln!("no dpkg-query here: skipped");
        return;
    }
    // coreutils is installed on every Debian; this name is not a package anywhere
    let r = run("package", json!({"name": "coreutils", "use": "apt"}), CHECK).await.unwrap();
    assert!(!r.changed, "{:?}", r.changes);
    assert_eq!(r.data["manager"], json!("apt-get"));
    let r =
        run("apt", json!({"name": ["coreutils", "pbr-no-such-package-x"], "state": "present"}), CHECK).await.unwrap();
    assert!(r.changed);
    assert_eq!(r.changes[0].summary, "install pbr-no-such-package-x");
    let d = r.changes[0].diff.as_ref().unwrap();
    assert_eq!(d.before, "pbr-no-such-package-x: absent\n");
    let r = run("package", json!({"name": "coreutils,pbr-no-such-package-x", "state": "absent"}), CHECK).await.unwrap();
    assert_eq!(r.changes.len(), 1);
    assert_eq!(r.changes[0].summary, "remove coreutils");
    let r = run("package", json!({"name": "coreutils", "state": "latest"}), CHECK).await;
    assert!(r.is_ok(), "{:?}", r.err().map(|e| e.msg));
}

#[tokio::test]
async fn update_cache_respects_cache_valid_time() {
    if !has("dpkg-query") || !std::path::Path::new("/var/lib/apt/lists").exists() {
        eprintln!("no apt here: skipped");
        return;
    }
    // check mode only: the index is never refreshed by this test
    let r = run("apt", json!({"update_cache": true}), CHECK).await.unwrap();
    assert!(r.changed);
    assert!(r.changes[0].summary.contains("apt-get update"), "{}", r.changes[0].summary);
    let r = run("apt", json!({"update_cache": true, "cache_valid_time": 100_000_000u64}), CHECK).await.unwrap();
    assert!(!r.changed, "{:?}", r.changes);
    let r = run("apt", json!({"update_cache": true, "cache_valid_time": 0}), CHECK).await.unwrap();
    assert!(r.changed);
}

#[tokio::test]
async fn systemd_probe_reads_unit_state() {
    if !has("systemctl") {
        eprintln!("no systemctl here: skipped");
        return;
    }
    // without a running systemd, `systemctl show` fails: the module must say so rather than guess
    match run("systemd", json!({"name": "pbr-no-such-unit", "state": "started"}), CHECK).await {
        Ok(r) => panic!("a missing unit cannot be started: {:?}", r.changes),
        Err(e) => assert!(e.msg.contains("pbr-no-such-unit"), "{}", e.msg),
    }
}

#[tokio::test]
async fn aliases_resolve() {
    let reg = pbr_engine::Registry::with(pbr_modules::register);
    for n in ["apt", "dnf", "yum", "pacman", "service", "systemd_service", "ansible.builtin.copy", "shell"] {
        assert!(reg.get(n).is_some(), "{n}");
    }
    for m in reg.iter() {
        let doc = m.doc();
        assert!(!doc.description.is_empty() && !doc.examples.is_empty(), "{}", m.name());
    }
}
