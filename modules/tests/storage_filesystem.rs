//! `filesystem` for real on image files: mkfs, no-op, refusal of foreign signatures, force, grow.

mod common;
use common::*;
use serde_json::json;
use std::process::Command;

fn have(bin: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {bin}")).output().is_ok_and(|o| o.status.success())
}

fn blkid_type(p: &std::path::Path) -> String {
    let o = Command::new("blkid").args(["-p", "-o", "value", "-s", "TYPE"]).arg(p).output().unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn image(dir: &std::path::Path, name: &str, mib: u64) -> std::path::PathBuf {
    let p = dir.join(name);
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(mib << 20).unwrap();
    p
}

#[tokio::test]
async fn filesystem_formats_converges_and_refuses_foreign_signatures() {
    if !have("mkfs.ext4") || !have("wipefs") || !have("mkswap") {
        eprintln!("SKIPPED: mkfs.ext4, mkswap or wipefs missing");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let img = image(d.path(), "disk.img", 64);
    let params = json!({"dev": s(&img), "fstype": "ext4", "opts": "-L pbrtest"});
    let (check, _) = converge(d.path(), &[], "filesystem", params.clone()).await;
    assert_eq!(check.changes.len(), 1);
    assert_eq!(check.changes[0].summary, format!("{} is formatted ext4", s(&img)));
    assert_eq!(blkid_type(&img), "ext4");

    // a device holding another signature: refused, naming device and signature, even in check mode
    let swap = image(d.path(), "swap.img", 64);
    assert!(Command::new("mkswap").arg("-q").arg(&swap).status().unwrap().success());
    let before = std::fs::read(&swap).unwrap();
    for mode in [CHECK, APPLY] {
        let err = run("filesystem", json!({"dev": s(&swap), "fstype": "ext4"}), mode).await.unwrap_err();
        assert!(
            err.msg.contains(&s(&swap)) && err.msg.contains("swap") && err.msg.contains("force: true"),
            "{}",
            err.msg
        );
    }
    assert_eq!(std::fs::read(&swap).unwrap(), before, "a refused format wrote to the device");

    // with force: check mode says what it would destroy and writes nothing; apply converges
    let forced = json!({"dev": s(&swap), "fstype": "ext4", "force": true});
    let c = run("filesystem", forced.clone(), CHECK).await.unwrap();
    assert!(c.changes[0].summary.contains("destroying swap"), "{}", c.changes[0].summary);
    assert_eq!(std::fs::read(&swap).unwrap(), before);
    let a = run("filesystem", forced.clone(), APPLY).await.unwrap();
    assert!(a.changed);
    assert_eq!(blkid_type(&swap), "ext4");
    let again = run("filesystem", forced, APPLY).await.unwrap();
    assert!(!again.changed, "force does not reformat a device that already has the fstype");

    // resizefs grows the filesystem to a larger device, once
    std::fs::OpenOptions::new().write(true).open(&img).unwrap().set_len(128 << 20).unwrap();
    let grow = json!({"dev": s(&img), "fstype": "ext4", "resizefs": true});
    let c = run("filesystem", grow.clone(), CHECK).await.unwrap();
    assert!(c.changes[0].summary.contains("grows 64 MiB → 128 MiB"), "{:?}", c.changes);
    let a = run("filesystem", grow.clone(), APPLY).await.unwrap();
    assert!(a.changed);
    let again = run("filesystem", grow, APPLY).await.unwrap();
    assert!(!again.changed, "{:?}", again.changes);

    // state: absent erases only that filesystem's signature
    let gone = run("filesystem", json!({"dev": s(&img), "fstype": "ext4", "state": "absent"}), APPLY).await.unwrap();
    assert!(gone.changed);
    assert_eq!(blkid_type(&img), "");
}

#[tokio::test]
async fn filesystem_missing_device_is_planned_in_check_mode_and_fails_on_apply() {
    let d = tempfile::tempdir().unwrap();
    let dev = d.path().join("not-yet");
    let p = json!({"dev": s(&dev), "fstype": "ext4"});
    let c = run("filesystem", p.clone(), CHECK).await.unwrap();
    assert!(c.changes[0].summary.contains("once it exists"), "{:?}", c.changes);
    let e = run("filesystem", p, APPLY).await.unwrap_err();
    assert!(e.msg.contains("does not exist"), "{}", e.msg);
}
