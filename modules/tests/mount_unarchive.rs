//! mount (fstab edits on temp files; real tmpfs mounts when root) and unarchive (real tarballs
//! and zips made with the host's tools) against temp directories.

mod common;
use common::*;
use pbr_engine::module::{Ctx, ModuleError, ModuleResult, RunMode};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn sh(script: &str) -> std::process::Output {
    Command::new("sh").arg("-c").arg(script).output().expect("sh runs")
}

fn sh_ok(script: &str) {
    let o = sh(script);
    assert!(o.status.success(), "`{script}` failed: {}", String::from_utf8_lossy(&o.stderr));
}

fn q(p: &Path) -> String {
    pbr_engine::sh_quote(&s(p))
}

fn have(tool: &str) -> bool {
    sh(&format!("command -v {tool} >/dev/null")).status.success()
}

/// Run a module on the local host with these environment variables for its commands.
async fn run_env(
    search: &[PathBuf],
    module: &str,
    params: Value,
    mode: RunMode,
    env: Vec<(String, String)>,
) -> Result<ModuleResult, ModuleError> {
    let reg = pbr_engine::Registry::with(pbr_modules::register);
    let m = reg.get(module).unwrap();
    m.check_params(&params).map_err(|e| ModuleError::new(e.message))?;
    let ctx = Ctx { check: mode.check, diff: mode.diff, search, controller: &TestRenderer, queued: &[] };
    m.execute(&ctx, &params, &host().with_env(env), mode).await
}

// ---------------------------------------------------------------- docs

#[test]
fn docs_describe_every_param_and_examples_are_valid() {
    let reg = pbr_engine::Registry::with(pbr_modules::register);
    for name in ["mount", "unarchive"] {
        let m = reg.get(name).unwrap_or_else(|| panic!("{name} not registered"));
        let schema = serde_json::to_value(m.schema()).unwrap();
        for (k, v) in schema["properties"].as_object().unwrap() {
            let d = v.get("description").and_then(Value::as_str).unwrap_or("");
            assert!(!d.trim().is_empty(), "{name}.{k} has no description");
        }
        let doc = m.doc();
        assert!(!doc.description.is_empty());
        let docs = pbr_engine::yaml::load_str(&format!("{name} examples"), doc.examples).unwrap();
        let tasks = docs[0].to_value();
        let tasks = tasks.as_array().unwrap();
        assert!(!tasks.is_empty());
        for t in tasks {
            let t = t.as_object().unwrap();
            let (mk, mv) = t.iter().find(|(k, _)| !["name", "register"].contains(&k.as_str())).unwrap();
            let target = reg.get(mk).unwrap_or_else(|| panic!("{name}: unknown module {mk}"));
            assert_eq!(target.name(), name);
            if let Err(e) = target.check_params(mv) {
                panic!("{name}: example {mv} is invalid: {}", e.message);
            }
        }
    }
    assert_eq!(reg.get("ansible.posix.mount").unwrap().name(), "mount");
    assert_eq!(reg.get("ansible.builtin.unarchive").unwrap().name(), "unarchive");
}

// ---------------------------------------------------------------- mount: fstab only

const FSTAB: &str = "# /etc/fstab: static file system information.\n\
#\n\
# <file system> <mount point>   <type>  <options>       <dump>  <pass>\n\
UUID=5d1c3a4e-1f2b-4c3d-9e8f-0a1b2c3d4e5f /               ext4    errors=remount-ro 0       1\n\
\n\
/dev/sdb1\t/srv/data\txfs\tnoatime\t0\t2   # the data disk\n\
tmpfs /tmp tmpfs   defaults,size=2g 0 0\n";

#[tokio::test]
async fn mount_present_adds_the_line_and_keeps_the_rest() {
    let d = tempfile::tempdir().unwrap();
    let fstab = d.path().join("fstab");
    std::fs::write(&fstab, FSTAB).unwrap();
    std::fs::set_permissions(&fstab, std::fs::Permissions::from_mode(0o600)).unwrap();
    let params = json!({
        "path": "/mnt/my backup", "src": "LABEL=old disk", "fstype": "ext4", "opts": "ro,noatime",
        "passno": 2, "state": "present", "fstab": s(&fstab),
    });
    let (check, applied) = converge(d.path(), &[], "mount", params.clone()).await;
    assert_eq!(check.changes.len(), 1, "{:?}", check.changes);
    assert_eq!(check.changes[0].summary, format!("add /mnt/my backup to {}", s(&fstab)));
    let line = "LABEL=old\\040disk /mnt/my\\040backup ext4 ro,noatime 0 2\n";
    let want = format!("{FSTAB}{line}");
    let diff = check.changes[0].diff.as_ref().unwrap();
    assert_eq!((diff.before.as_str(), diff.after.as_str()), (FSTAB, want.as_str()));
    assert_eq!(std::fs::read_to_string(&fstab).unwrap(), want);
    assert_eq!(mode_of(&fstab), 0o600, "the fstab keeps its mode");
    assert_eq!(applied.data["opts"], json!("ro,noatime"));
    // present does not create the mount point
    assert!(!Path::new("/mnt/my backup").exists());

    // new options: the line is replaced where it is
    let mut p2 = params.clone();
    p2["opts"] = json!("ro");
    p2["boot"] = json!(false);
    let (check, _) = converge(d.path(), &[], "mount", p2).await;
    assert_eq!(check.changes[0].summary, format!("update the entry for /mnt/my backup in {}", s(&fstab)));
    assert_eq!(
        std::fs::read_to_string(&fstab).unwrap(),
        format!("{FSTAB}LABEL=old\\040disk /mnt/my\\040backup ext4 ro,noauto 0 2\n")
    );

    // an existing line that says the same with other spacing is left alone
    let r = run(
        "mount",
        json!({"path": "/srv/data", "src": "/dev/sdb1", "fstype": "xfs", "opts": "noatime", "passno": "2",
               "state": "present", "fstab": s(&fstab)}),
        APPLY,
    )
    .await
    .unwrap();
    assert!(!r.changed, "{:?}", r.changes);

    // absent removes only that line (nothing is mounted there), byte for byte
    let (check, _) =
        converge(d.path(), &[], "mount", json!({"name": "/mnt/my backup", "state": "absent", "fstab": s(&fstab)}))
            .await;
    assert_eq!(check.changes.len(), 1, "{:?}", check.changes);
    assert_eq!(check.changes[0].summary, format!("remove /mnt/my backup from {}", s(&fstab)));
    assert_eq!(std::fs::read_to_string(&fstab).unwrap(), FSTAB);
    assert_eq!(mode_of(&fstab), 0o600);

    // absent_from_fstab
    let (_, _) = converge(
        d.path(),
        &[],
        "ansible.posix.mount",
        json!({"path": "/srv/data", "state": "absent_from_fstab", "fstab": s(&fstab)}),
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(&fstab).unwrap(),
        FSTAB.replace("/dev/sdb1\t/srv/data\txfs\tnoatime\t0\t2   # the data disk\n", "")
    );
}

#[tokio::test]
async fn mount_fstab_created_backed_up_and_without_final_newline() {
    let d = tempfile::tempdir().unwrap();
    let fstab = d.path().join("etc/fstab");
    let p = json!({"path": "/mnt/x", "src": "/dev/vdz9", "fstype": "ext4", "state": "present", "fstab": s(&fstab)});
    let (check, _) = converge(d.path(), &[], "mount", p).await;
    assert_eq!(check.changes[0].summary, format!("create {} with an entry for /mnt/x", s(&fstab)));
    assert_eq!(std::fs::read_to_string(&fstab).unwrap(), "/dev/vdz9 /mnt/x ext4 defaults 0 0\n");
    assert_eq!(mode_of(&fstab), 0o644);

    // a last line without newline gets one before the new line; backup keeps the old file
    std::fs::write(&fstab, "/dev/a /a ext4 defaults 0 0").unwrap();
    let r = run(
        "mount",
        json!({"path": "/b", "src": "/dev/b", "fstype": "ext4", "state": "present", "fstab": s(&fstab), "backup": true}),
        APPLY,
    )
    .await
    .unwrap();
    assert!(r.changed);
    assert_eq!(std::fs::read_to_string(&fstab).unwrap(), "/dev/a /a ext4 defaults 0 0\n/dev/b /b ext4 defaults 0 0\n");
    let backup = r.data["backup_file"].as_str().unwrap();
    assert_eq!(std::fs::read_to_string(backup).unwrap(), "/dev/a /a ext4 defaults 0 0");

    // through a symlink the target is edited and the link stays
    let link = d.path().join("fstab.link");
    std::os::unix::fs::symlink(&fstab, &link).unwrap();
    let p = json!({"path": "/c", "src": "/dev/c", "fstype": "xfs", "state": "present", "fstab": s(&link)});
    assert!(run("mount", p.clone(), APPLY).await.unwrap().changed);
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert!(std::fs::read_to_string(&fstab).unwrap().ends_with("/dev/c /c xfs defaults 0 0\n"));
    assert!(!run("mount", p, APPLY).await.unwrap().changed);

    // absent on a missing fstab: nothing to do
    let none = d.path().join("nofstab");
    let r = run("mount", json!({"path": "/b", "state": "absent", "fstab": s(&none)}), APPLY).await.unwrap();
    assert!(!r.changed);
    assert!(!none.exists());
}

#[tokio::test]
async fn mount_params_are_checked() {
    for (p, want) in [
        (json!({"path": "/x", "state": "mounted", "fstype": "ext4"}), "needs src"),
        (json!({"path": "/x", "state": "ephemeral", "src": "tmpfs"}), "needs fstype"),
        (json!({"path": "x", "state": "unmounted"}), "absolute"),
        (json!({"path": "/x", "state": "present", "src": "a", "fstype": "ext4", "opts": "a b"}), "opts"),
        (json!({"path": "/x\ny", "state": "unmounted"}), "newline"),
        (json!({"path": "/x", "state": "present", "src": "a", "fstype": "ext4", "dump": "one"}), "dump"),
        (json!({"path": "/x", "state": "sideways"}), "unknown variant"),
        (json!({"path": "/x", "state": "present", "src": "a", "fstype": "b", "mode": "0644"}), "unknown field"),
    ] {
        let err = run("mount", p.clone(), CHECK).await.unwrap_err();
        assert!(err.msg.contains(want), "{p}: {}", err.msg);
    }
}

// ---------------------------------------------------------------- mount: real mounts (root)

/// Whether tmpfs can be mounted here (root, and allowed by the sandbox).
fn can_mount() -> bool {
    let uid = String::from_utf8_lossy(&sh("id -u").stdout).trim().to_string();
    if uid != "0" {
        eprintln!("skipped: not root");
        return false;
    }
    let d = tempfile::tempdir().unwrap();
    let ok =
        sh(&format!("mount -t tmpfs -o size=64k pbrprobe {} && umount {}", q(d.path()), q(d.path()))).status.success();
    if !ok {
        eprintln!("skipped: cannot mount tmpfs here");
    }
    ok
}

/// Unmounts whatever is mounted at its paths when the test ends, passing or failing.
struct Unmount(Vec<PathBuf>);

impl Drop for Unmount {
    fn drop(&mut self) {
        for p in &self.0 {
            for _ in 0..5 {
                if live(p).is_none() {
                    break;
                }
                let _ = sh(&format!("umount {} || umount -l {}", q(p), q(p)));
            }
        }
    }
}

/// (source, fstype, super options) of what is mounted at `p`, from /proc/self/mountinfo.
fn live(p: &Path) -> Option<(String, String, String)> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let m = pbr_modules::mount::parse_mountinfo(&text);
    pbr_modules::mount::mount_at(&m, &s(p)).map(|m| (m.source.clone(), m.fstype.clone(), m.super_opts.clone()))
}

#[tokio::test]
async fn mount_ephemeral_and_unmounted_with_tmpfs() {
    if !can_mount() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let mp = d.path().join("scratch space");
    let _guard = Unmount(vec![mp.clone()]);
    let p =
        json!({"path": s(&mp), "src": "pbrtest", "fstype": "tmpfs", "opts": "size=1m,mode=0750", "state": "ephemeral"});
    let (check, _) = converge(d.path(), &[], "mount", p.clone()).await;
    let words: Vec<&str> = check.changes.iter().map(|c| c.summary.as_str()).collect();
    assert_eq!(
        words,
        vec![format!("create mount point {}", s(&mp)), format!("mount pbrtest on {} (not in fstab)", s(&mp))]
    );
    let (src, fstype, opts) = live(&mp).expect("mounted");
    assert_eq!((src.as_str(), fstype.as_str()), ("pbrtest", "tmpfs"));
    assert!(opts.contains("size=1024k"), "{opts}");
    assert_eq!(mode_of(&mp), 0o750);

    // another source there: ephemeral refuses to override it
    let mut other = p.clone();
    other["src"] = json!("othersrc");
    let err = run("mount", other, CHECK).await.unwrap_err();
    assert!(err.msg.contains("already mounted from pbrtest"), "{}", err.msg);

    // remounted is always a change
    let r = run("mount", json!({"path": s(&mp), "state": "remounted", "opts": "size=2m"}), APPLY).await.unwrap();
    assert!(r.changed);
    assert!(live(&mp).unwrap().2.contains("size=2048k"), "{:?}", live(&mp));

    let (check, _) = converge(d.path(), &[], "mount", json!({"path": s(&mp), "state": "unmounted"})).await;
    assert_eq!(check.changes[0].summary, format!("unmount {} (pbrtest (tmpfs))", s(&mp)));
    assert!(live(&mp).is_none());
    assert!(mp.is_dir(), "the mount point stays");
    let err = run("mount", json!({"path": s(&mp), "state": "remounted"}), CHECK).await.unwrap_err();
    assert!(err.msg.contains("nothing is mounted"), "{}", err.msg);
}

#[tokio::test]
async fn mount_mounted_with_a_temp_fstab() {
    if !can_mount() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let fstab = d.path().join("fstab");
    std::fs::write(&fstab, "# test fstab\n").unwrap();
    let mp = d.path().join("mnt");
    let _guard = Unmount(vec![mp.clone()]);
    let p = json!({"path": s(&mp), "src": "pbrdata", "fstype": "tmpfs", "opts": "size=1m", "state": "mounted",
                   "fstab": s(&fstab)});
    let (check, _) = converge(d.path(), &[], "mount", p.clone()).await;
    let words: Vec<&str> = check.changes.iter().map(|c| c.summary.as_str()).collect();
    assert_eq!(
        words,
        vec![
            format!("create mount point {}", s(&mp)),
            format!("add {} to {}", s(&mp), s(&fstab)),
            format!("mount pbrdata on {}", s(&mp)),
        ]
    );
    assert_eq!(
        std::fs::read_to_string(&fstab).unwrap(),
        format!("# test fstab\npbrdata {} tmpfs size=1m 0 0\n", s(&mp))
    );
    assert_eq!(live(&mp).map(|l| l.0), Some("pbrdata".to_string()));

    // the entry changes while mounted: fstab updated and the mount remounted with the new options
    let mut p2 = p.clone();
    p2["opts"] = json!("size=2m");
    let (check, _) = converge(d.path(), &[], "mount", p2.clone()).await;
    let words: Vec<&str> = check.changes.iter().map(|c| c.summary.as_str()).collect();
    assert_eq!(
        words,
        vec![
            format!("update the entry for {} in {}", s(&mp), s(&fstab)),
            format!("remount {} (its fstab entry changed)", s(&mp)),
        ]
    );
    assert!(live(&mp).unwrap().2.contains("size=2048k"), "{:?}", live(&mp));

    // another filesystem mounted there: unmounted, then ours mounted
    sh_ok(&format!("umount {m} && mount -t tmpfs -o size=64k intruder {m}", m = q(&mp)));
    let (check, _) = converge(d.path(), &[], "mount", p2.clone()).await;
    assert_eq!(check.changes.len(), 2, "{:?}", check.changes);
    assert!(check.changes[0].summary.contains("intruder (tmpfs) is mounted there, not pbrdata"), "{:?}", check.changes);
    assert_eq!(check.changes[1].summary, format!("mount pbrdata on {}", s(&mp)));
    assert_eq!(live(&mp).map(|l| l.0), Some("pbrdata".to_string()));

    // absent: unmounted and out of fstab; the directory stays
    let (check, _) =
        converge(d.path(), &[], "mount", json!({"path": s(&mp), "state": "absent", "fstab": s(&fstab)})).await;
    assert_eq!(check.changes.len(), 2, "{:?}", check.changes);
    assert!(live(&mp).is_none());
    assert_eq!(std::fs::read_to_string(&fstab).unwrap(), "# test fstab\n");
    assert!(mp.is_dir());

    // a failing mount puts the old fstab back
    let bad = json!({"path": s(&mp), "src": "x", "fstype": "nosuchfs", "state": "mounted", "fstab": s(&fstab)});
    let err = run("mount", bad, APPLY).await.unwrap_err();
    assert!(err.msg.contains("mount x on"), "{}", err.msg);
    assert_eq!(std::fs::read_to_string(&fstab).unwrap(), "# test fstab\n");
}

// ---------------------------------------------------------------- unarchive

/// A tree to archive: `app/` with files (one with a space), a subdirectory and a symlink.
fn make_tree(root: &Path) {
    let app = root.join("app");
    std::fs::create_dir_all(app.join("sub")).unwrap();
    std::fs::write(app.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(app.join("with space.txt"), "spaced out\n").unwrap();
    std::fs::write(app.join("sub/b.bin"), [0u8, 1, 2, 3, 255]).unwrap();
    std::os::unix::fs::symlink("a.txt", app.join("link")).unwrap();
}

/// Make `name` in `dir` from `tree/app` with tar flags (`-czf`, `-cf`...).
fn tarball(dir: &Path, tree: &Path, name: &str, flags: &str) -> PathBuf {
    let out = dir.join(name);
    sh_ok(&format!("tar {flags} {} -C {} app", q(&out), q(tree)));
    out
}

fn assert_extracted(dest: &Path) {
    assert_eq!(std::fs::read_to_string(dest.join("app/a.txt")).unwrap(), "alpha\n");
    assert_eq!(std::fs::read_to_string(dest.join("app/with space.txt")).unwrap(), "spaced out\n");
    assert_eq!(std::fs::read(dest.join("app/sub/b.bin")).unwrap(), vec![0u8, 1, 2, 3, 255]);
    assert_eq!(std::fs::read_link(dest.join("app/link")).unwrap(), PathBuf::from("a.txt"));
}

#[tokio::test]
async fn unarchive_remote_tar_gz_and_plain_tar() {
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path());
    let arch = tempfile::tempdir().unwrap();
    for (name, flags, format) in [("app.tar.gz", "-czf", "tar.gz"), ("app.tar", "-cf", "tar")] {
        let a = tarball(arch.path(), src.path(), name, flags);
        let d = tempfile::tempdir().unwrap();
        let p = json!({"src": s(&a), "dest": s(d.path()), "remote_src": true, "list_files": true});
        let (check, applied) = converge(d.path(), &[], "unarchive", p.clone()).await;
        assert_eq!(check.changes.len(), 1);
        assert_eq!(check.changes[0].summary, format!("extract {} into {} (6 entries)", s(&a), s(d.path())));
        assert_extracted(d.path());
        assert_eq!(applied.data["format"], json!(format));
        assert_eq!(applied.data["handler"], json!("TgzArchive"));
        let files = applied.data["files"].as_array().unwrap();
        assert!(files.contains(&json!("app/with space.txt")), "{files:?}");

        // a file of another size is extracted again; same size, other content: left alone
        std::fs::write(d.path().join("app/a.txt"), "changed!\n").unwrap();
        let r = run("unarchive", p.clone(), APPLY).await.unwrap();
        assert!(r.changed);
        assert_eq!(std::fs::read_to_string(d.path().join("app/a.txt")).unwrap(), "alpha\n");
        std::fs::write(d.path().join("app/a.txt"), "ALPHA\n").unwrap();
        assert!(!run("unarchive", p.clone(), APPLY).await.unwrap().changed);
        // a missing member is extracted again
        std::fs::remove_file(d.path().join("app/sub/b.bin")).unwrap();
        assert!(run("unarchive", p, APPLY).await.unwrap().changed);
        assert!(d.path().join("app/sub/b.bin").exists());
    }
}

#[tokio::test]
async fn unarchive_controller_file_is_uploaded_and_check_writes_nothing() {
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path());
    let ctl = tempfile::tempdir().unwrap();
    std::fs::create_dir(ctl.path().join("files")).unwrap();
    tarball(&ctl.path().join("files"), src.path(), "app.tgz", "-czf");
    let search = vec![ctl.path().to_path_buf()];
    let d = tempfile::tempdir().unwrap();
    let p = json!({"src": "app.tgz", "dest": s(d.path())});
    // converge: check mode writes nothing under dest, apply extracts, the second run has nothing to do
    let (check, _) = converge(d.path(), &search, "unarchive", p.clone()).await;
    assert_eq!(check.changes[0].summary, format!("extract app.tgz into {} (6 entries)", s(d.path())));
    assert_extracted(d.path());

    // extra_opts are used when listing too: --strip-components converges
    let d2 = tempfile::tempdir().unwrap();
    let p2 = json!({"src": "app.tgz", "dest": s(d2.path()), "extra_opts": ["--strip-components=1"]});
    converge(d2.path(), &search, "unarchive", p2).await;
    assert_eq!(std::fs::read_to_string(d2.path().join("a.txt")).unwrap(), "alpha\n");
    assert!(!d2.path().join("app").exists());

    let err = run_in(&search, "unarchive", json!({"src": "nope.tgz", "dest": s(d.path())}), CHECK).await.unwrap_err();
    assert!(err.msg.contains("could not find nope.tgz"), "{}", err.msg);
}

#[tokio::test]
async fn unarchive_creates_skips() {
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path());
    let a = tarball(src.path(), src.path(), "app.tar.gz", "-czf");
    let d = tempfile::tempdir().unwrap();
    let marker = d.path().join("done");
    std::fs::write(&marker, "").unwrap();
    let p = json!({"src": s(&a), "dest": s(d.path()), "remote_src": true, "creates": s(&marker)});
    let r = run("unarchive", p, APPLY).await.unwrap();
    assert!(!r.changed, "{:?}", r.changes);
    assert!(!d.path().join("app").exists());
    // without the marker it extracts; then it exists and the task is done
    let p = json!({"src": s(&a), "dest": s(d.path()), "remote_src": true, "creates": s(&d.path().join("app/a.txt"))});
    converge(d.path(), &[], "unarchive", p).await;
    assert_extracted(d.path());
}

#[tokio::test]
async fn unarchive_errors_are_clear() {
    let t = tempfile::tempdir().unwrap();
    let d = tempfile::tempdir().unwrap();
    // not an archive at all
    let junk = t.path().join("junk.tar.gz");
    std::fs::write(&junk, "this is not an archive\n".repeat(40)).unwrap();
    let err =
        run("unarchive", json!({"src": s(&junk), "dest": s(d.path()), "remote_src": true}), CHECK).await.unwrap_err();
    assert!(err.msg.contains("not a valid tar archive"), "{}", err.msg);
    // gzip magic, broken body
    let broken = t.path().join("broken.tgz");
    std::fs::write(&broken, [0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap();
    let err =
        run("unarchive", json!({"src": s(&broken), "dest": s(d.path()), "remote_src": true}), CHECK).await.unwrap_err();
    assert!(err.msg.contains("not a valid tar.gz archive"), "{}", err.msg);
    // the same from the controller
    let err = run("unarchive", json!({"src": s(&broken), "dest": s(d.path())}), CHECK).await.unwrap_err();
    assert!(err.msg.contains("not a valid tar.gz archive"), "{}", err.msg);
    // missing src on the host
    let err =
        run("unarchive", json!({"src": s(&t.path().join("gone.tar")), "dest": s(d.path()), "remote_src": true}), CHECK)
            .await
            .unwrap_err();
    assert!(err.msg.contains("does not exist on the host"), "{}", err.msg);
    // dest missing, dest a file
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path());
    let a = tarball(t.path(), src.path(), "app.tar", "-cf");
    let nodest = d.path().join("nodest");
    let err = run("unarchive", json!({"src": s(&a), "dest": s(&nodest), "remote_src": true}), CHECK).await.unwrap_err();
    assert!(err.msg.contains("does not exist") && err.msg.contains("existing directory"), "{}", err.msg);
    let err = run("unarchive", json!({"src": s(&a), "dest": s(&a), "remote_src": true}), CHECK).await.unwrap_err();
    assert!(err.msg.contains("not a directory"), "{}", err.msg);
    // URLs and unknown params stop before the host
    let err = run("unarchive", json!({"src": "https://x/y.tgz", "dest": "/tmp"}), CHECK).await.unwrap_err();
    assert!(err.msg.contains("URLs are not supported"), "{}", err.msg);
    let err = run("unarchive", json!({"src": "a.tgz", "dest": "/tmp", "owner": "root"}), CHECK).await.unwrap_err();
    assert!(err.msg.contains("unknown field"), "{}", err.msg);
}

/// A PATH holding only the given programs (linked from the real ones).
fn limited_path(dir: &Path, tools: &[&str]) -> String {
    for t in tools {
        let o = sh(&format!("command -v {t}"));
        let real = String::from_utf8_lossy(&o.stdout).trim().to_string();
        assert!(!real.is_empty(), "{t} not found");
        std::os::unix::fs::symlink(real, dir.join(t)).unwrap();
    }
    s(dir)
}

#[tokio::test]
async fn unarchive_names_the_missing_tool() {
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path());
    let a = tarball(src.path(), src.path(), "app.tar.gz", "-czf");
    let d = tempfile::tempdir().unwrap();
    let p = json!({"src": s(&a), "dest": s(d.path()), "remote_src": true});
    // no tar at all
    let bin = tempfile::tempdir().unwrap();
    let path = limited_path(bin.path(), &["od", "id"]);
    let err = run_env(&[], "unarchive", p.clone(), CHECK, vec![("PATH".into(), path)]).await.unwrap_err();
    assert!(err.msg.contains("`tar` was not found"), "{}", err.msg);
    // tar but no gzip
    let bin = tempfile::tempdir().unwrap();
    let path = limited_path(bin.path(), &["od", "id", "tar"]);
    let err = run_env(&[], "unarchive", p.clone(), CHECK, vec![("PATH".into(), path)]).await.unwrap_err();
    assert!(err.msg.contains("`gzip` was not found"), "{}", err.msg);
    // zip without unzip
    if have("zip") {
        let z = src.path().join("app.zip");
        sh_ok(&format!("cd {} && zip -qry {} app", q(src.path()), q(&z)));
        let bin = tempfile::tempdir().unwrap();
        let path = limited_path(bin.path(), &["od", "id"]);
        let pz = json!({"src": s(&z), "dest": s(d.path()), "remote_src": true});
        let err = run_env(&[], "unarchive", pz, CHECK, vec![("PATH".into(), path)]).await.unwrap_err();
        assert!(err.msg.contains("`unzip` was not found"), "{}", err.msg);
    }
}

#[tokio::test]
async fn unarchive_other_compressions() {
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path());
    for (tool, name, flags, format) in [
        ("xz", "app.tar.xz", "-cJf", "tar.xz"),
        ("bzip2", "app.tar.bz2", "-cjf", "tar.bz2"),
        ("zstd", "app.tar.zst", "--zstd -cf", "tar.zst"),
    ] {
        if !have(tool) {
            eprintln!("skipped {format}: no {tool}");
            continue;
        }
        let a = tarball(src.path(), src.path(), name, flags);
        let d = tempfile::tempdir().unwrap();
        let (_, applied) =
            converge(d.path(), &[], "unarchive", json!({"src": s(&a), "dest": s(d.path()), "remote_src": true})).await;
        assert_eq!(applied.data["format"], json!(format));
        assert_extracted(d.path());
    }
}

#[tokio::test]
async fn unarchive_zip_remote_and_controller() {
    if !have("zip") || !have("unzip") {
        eprintln!("skipped: no zip/unzip");
        return;
    }
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path());
    let ctl = tempfile::tempdir().unwrap();
    let z = ctl.path().join("app.zip");
    // -y stores the symlink as a link
    sh_ok(&format!("cd {} && zip -qry {} app", q(src.path()), q(&z)));
    let search = vec![ctl.path().to_path_buf()];
    for remote in [true, false] {
        let d = tempfile::tempdir().unwrap();
        let p = json!({"src": if remote { s(&z) } else { "app.zip".to_string() }, "dest": s(d.path()), "remote_src": remote});
        let (check, applied) = converge(d.path(), &search, "unarchive", p).await;
        assert!(check.changes[0].summary.ends_with("(6 entries)"), "{}", check.changes[0].summary);
        assert_eq!(applied.data["handler"], json!("ZipArchive"));
        assert_extracted(d.path());
    }
}
