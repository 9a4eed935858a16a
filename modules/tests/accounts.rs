//! user and group on this machine (root only): real accounts with unique names, removed after.

mod common;
use common::*;
use serde_json::json;

fn sh(s: &str) -> String {
    let o = std::process::Command::new("sh").arg("-c").arg(s).output().unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[tokio::test]
async fn group_and_user_converge() {
    if sh("id -u") != "0" || sh("command -v useradd").is_empty() {
        eprintln!("needs root and useradd: skipped");
        return;
    }
    let g = format!("pbrg{}", std::process::id());
    let u = format!("pbru{}", std::process::id());
    let cleanup = format!("userdel {u} 2>/dev/null; groupdel {g} 2>/dev/null; true");
    sh(&cleanup);
    let empty = tempfile::tempdir().unwrap();

    let (check, _) = converge(empty.path(), &[], "group", json!({"name": g, "system": true})).await;
    assert_eq!(check.changes[0].summary, format!("create group {g}"));
    assert!(sh(&format!("getent group {g}")).starts_with(&g));

    let (check, _) = converge(
        empty.path(),
        &[],
        "user",
        json!({"name": u, "groups": [g.clone()], "shell": "/bin/sh", "create_home": false, "comment": "pbr test"}),
    )
    .await;
    assert_eq!(check.changes[0].summary, format!("create user {u}"));
    let pw = sh(&format!("getent passwd {u}"));
    assert!(pw.ends_with(":/bin/sh") && pw.contains(":pbr test:"), "{pw}");
    assert!(sh(&format!("id -Gn {u}")).split_whitespace().any(|x| x == g));

    let (check, _) = converge(empty.path(), &[], "user", json!({"name": u, "shell": "/bin/false"})).await;
    assert_eq!(check.changes[0].summary, format!("user {u}: shell /bin/sh → /bin/false"));
    // the exact set of groups: removing all supplementary groups
    converge(empty.path(), &[], "user", json!({"name": u, "groups": ""})).await;
    assert!(!sh(&format!("id -Gn {u}")).split_whitespace().any(|x| x == g));
    converge(empty.path(), &[], "user", json!({"name": u, "groups": g, "append": true})).await;
    assert!(sh(&format!("id -Gn {u}")).split_whitespace().any(|x| x == g));

    converge(empty.path(), &[], "user", json!({"name": u, "state": "absent"})).await;
    assert!(sh(&format!("getent passwd {u}")).is_empty());
    converge(empty.path(), &[], "group", json!({"name": g, "state": "absent"})).await;
    assert!(sh(&format!("getent group {g}")).is_empty());
    sh(&cleanup);
}
