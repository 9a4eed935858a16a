//! file, copy, template and stat against real temp directories.

mod common;
use common::*;
use serde_json::json;
use std::os::unix::fs::MetadataExt;

#[tokio::test]
async fn copy_content_converges_with_diff_and_mode() {
    let d = tempfile::tempdir().unwrap();
    let dest = d.path().join("etc.conf");
    let params = json!({"dest": s(&dest), "content": "a=1\nb=2\n", "mode": "0640"});
    let (check, applied) = converge(d.path(), &[], "copy", params).await;
    assert_eq!(check.changes.len(), 1);
    assert!(check.changes[0].summary.starts_with("create "), "{}", check.changes[0].summary);
    assert!(check.changes[0].summary.contains("mode 0640"));
    let diff = check.changes[0].diff.as_ref().unwrap();
    assert_eq!((diff.before.as_str(), diff.after.as_str()), ("", "a=1\nb=2\n"));
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "a=1\nb=2\n");
    assert_eq!(mode_of(&dest), 0o640);
    let sum = std::process::Command::new("sha1sum").arg(&dest).output().unwrap();
    let sum = String::from_utf8_lossy(&sum.stdout).split(' ').next().unwrap_or("").to_string();
    assert_eq!(applied.data["checksum"], json!(sum));
    assert_eq!(applied.data["size"], json!(8));

    // a content change: the diff shows before and after
    let r = run("copy", json!({"dest": s(&dest), "content": "a=1\nb=3\n", "mode": "0640"}), CHECK).await.unwrap();
    let diff = r.changes[0].diff.as_ref().unwrap();
    assert_eq!((diff.before.as_str(), diff.after.as_str()), ("a=1\nb=2\n", "a=1\nb=3\n"));
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "a=1\nb=2\n");

    // only the mode differs
    let r = run("copy", json!({"dest": s(&dest), "content": "a=1\nb=2\n", "mode": "0600"}), APPLY).await.unwrap();
    assert_eq!(r.changes.len(), 1);
    assert!(r.changes[0].summary.contains("mode 0640 → 0600"), "{}", r.changes[0].summary);
    assert_eq!(mode_of(&dest), 0o600);
    // result data reflect the file after apply, also without verify
    let no_verify = pbr_engine::module::RunMode { check: false, diff: false, verify: false, guard: None };
    let r = run("copy", json!({"dest": s(&dest), "content": "a=1\nb=2\n", "mode": "0444"}), no_verify).await.unwrap();
    assert_eq!(r.data["mode"], json!("0444"));
}

#[tokio::test]
async fn copy_checksum_is_sha1() {
    let d = tempfile::tempdir().unwrap();
    let dest = d.path().join("x");
    let r = run("copy", json!({"dest": s(&dest), "content": "hello\n"}), APPLY).await.unwrap();
    // sha1("hello\n")
    assert_eq!(r.data["checksum"], json!("f572d396fae9206628714fb2ce00f72e94f2258f"));
}

#[tokio::test]
async fn copy_src_from_files_dir_into_directory_with_backup() {
    let d = tempfile::tempdir().unwrap();
    let ctl = tempfile::tempdir().unwrap();
    std::fs::create_dir(ctl.path().join("files")).unwrap();
    std::fs::write(ctl.path().join("files/motd"), "welcome\n").unwrap();
    let search = vec![ctl.path().to_path_buf()];
    let target = d.path().join("etc");
    std::fs::create_dir(&target).unwrap();
    let (_, r) = converge(d.path(), &search, "copy", json!({"src": "motd", "dest": s(&target)})).await;
    assert_eq!(std::fs::read_to_string(target.join("motd")).unwrap(), "welcome\n");
    assert_eq!(r.data["dest"], json!(s(&target.join("motd"))));

    std::fs::write(ctl.path().join("files/motd"), "welcome back\n").unwrap();
    let r = run_in(&search, "copy", json!({"src": "motd", "dest": s(&target), "backup": true}), APPLY).await.unwrap();
    assert!(r.changed);
    let backup = r.data["backup_file"].as_str().unwrap().to_string();
    assert!(backup.ends_with('~'), "{backup}");
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), "welcome\n");
    assert_eq!(std::fs::read_to_string(target.join("motd")).unwrap(), "welcome back\n");

    let err = run_in(&search, "copy", json!({"src": "nope", "dest": s(&target)}), APPLY).await.unwrap_err();
    assert!(err.msg.contains("could not find nope"), "{}", err.msg);
}

#[tokio::test]
async fn copy_force_false_and_binary_and_validate() {
    let d = tempfile::tempdir().unwrap();
    let dest = d.path().join("keep");
    std::fs::write(&dest, "mine\n").unwrap();
    let r = run("copy", json!({"dest": s(&dest), "content": "theirs\n", "force": false}), APPLY).await.unwrap();
    assert!(!r.changed);
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "mine\n");

    // binary content: no text diff
    let ctl = tempfile::tempdir().unwrap();
    std::fs::write(ctl.path().join("blob"), [0u8, 159, 146, 150]).unwrap();
    let search = vec![ctl.path().to_path_buf()];
    let bin = d.path().join("blob");
    let r = run_in(&search, "copy", json!({"src": "blob", "dest": s(&bin)}), CHECK).await.unwrap();
    assert!(r.changes[0].diff.is_none());
    assert!(r.changes[0].summary.contains("binary content changes"));

    // validate failing leaves the old file in place and no temp file behind
    let v = d.path().join("v.conf");
    std::fs::write(&v, "good\n").unwrap();
    let err = run("copy", json!({"dest": s(&v), "content": "bad\n", "validate": "grep -q good %s"}), APPLY)
        .await
        .unwrap_err();
    assert!(err.msg.contains("failed to validate"), "{}", err.msg);
    assert_eq!(err.data.get("validate_rc"), Some(&json!(1)), "{:?}", err.data);
    assert_eq!(std::fs::read_to_string(&v).unwrap(), "good\n");
    // the command's output is kept
    let err =
        run("copy", json!({"dest": s(&v), "content": "bad\n", "validate": "sh -c 'echo no way; exit 7' %s"}), APPLY)
            .await
            .unwrap_err();
    assert_eq!(err.data.get("validate_rc"), Some(&json!(7)), "{:?}", err.data);
    assert_eq!(err.data.get("validate_output").and_then(|o| o.as_str()), Some("no way"), "{:?}", err.data);
    assert!(err.msg.contains("exited 7: no way"), "{}", err.msg);
    let r = run("copy", json!({"dest": s(&v), "content": "good too\n", "validate": "grep -q good %s"}), APPLY)
        .await
        .unwrap();
    assert!(r.changed);
    assert_eq!(std::fs::read_to_string(&v).unwrap(), "good too\n");
    let names: Vec<String> =
        std::fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| !n.starts_with(".pbr")), "{names:?}");
}

#[tokio::test]
async fn copy_params_are_checked() {
    let err = run("copy", json!({"dest": "/tmp/x"}), CHECK).await.unwrap_err();
    assert!(err.msg.contains("one of content or src"), "{}", err.msg);
    let err = run("copy", json!({"dest": "/tmp/x", "content": "a", "mdoe": "0644"}), CHECK).await.unwrap_err();
    assert!(err.msg.contains("unknown field"), "{}", err.msg);
}

#[tokio::test]
async fn template_renders_and_converges() {
    let d = tempfile::tempdir().unwrap();
    let ctl = tempfile::tempdir().unwrap();
    std::fs::create_dir(ctl.path().join("templates")).unwrap();
    std::fs::write(ctl.path().join("templates/app.conf.j2"), "hello {{ name }}\nport={{ port }}\n").unwrap();
    std::fs::write(ctl.path().join("templates/bad.j2"), "{{ fail }}\n").unwrap();
    let search = vec![ctl.path().to_path_buf()];
    let dest = d.path().join("app.conf");
    let (check, _) =
        converge(d.path(), &search, "template", json!({"src": "app.conf.j2", "dest": s(&dest), "mode": "0600"})).await;
    assert_eq!(check.changes[0].diff.as_ref().unwrap().after, "hello world\nport=8080\n");
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "hello world\nport=8080\n");
    assert_eq!(mode_of(&dest), 0o600);
    // into a directory: under the template's own name, as Ansible's (.j2 kept)
    let r = run_in(&search, "template", json!({"src": "app.conf.j2", "dest": s(d.path())}), APPLY).await.unwrap();
    assert!(r.changed, "{:?}", r.changes);
    assert_eq!(std::fs::read_to_string(d.path().join("app.conf.j2")).unwrap(), "hello world\nport=8080\n");
    let err = run_in(&search, "template", json!({"src": "bad.j2", "dest": s(&dest)}), CHECK).await.unwrap_err();
    assert!(err.msg.contains("undefined variable"), "{}", err.msg);
}

#[tokio::test]
async fn file_directory_touch_link_hard_absent() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("a/b/c");
    let top_mode = mode_of(d.path());
    let (check, _) =
        converge(d.path(), &[], "file", json!({"path": s(&dir), "state": "directory", "mode": "0750"})).await;
    assert!(check.changes[0].summary.starts_with("create directory"));
    assert!(dir.is_dir());
    assert_eq!(mode_of(&dir), 0o750);
    // directories created on the way get the mode too; existing ones keep theirs
    assert_eq!(mode_of(&d.path().join("a")), 0o750);
    assert_eq!(mode_of(&d.path().join("a/b")), 0o750);
    assert_eq!(mode_of(d.path()), top_mode);

    // touch with both times kept converges; a plain touch sets them on every run, as Ansible's
    let f = dir.join("empty");
    let keep = json!({"path": s(&f), "state": "touch", "mode": "u=rw,g=r,o=",
                      "access_time": "preserve", "modification_time": "preserve"});
    converge(d.path(), &[], "file", keep).await;
    assert_eq!(std::fs::read(&f).unwrap(), b"");
    assert_eq!(mode_of(&f), 0o640);
    let r = run("file", json!({"path": s(&f), "state": "touch"}), APPLY).await.unwrap();
    assert!(r.changed, "{:?}", r.changes);

    let l = d.path().join("current");
    converge(d.path(), &[], "file", json!({"src": s(&dir), "dest": s(&l), "state": "link"})).await;
    assert_eq!(std::fs::read_link(&l).unwrap(), dir);
    // retarget
    let (check, _) = converge(d.path(), &[], "file", json!({"src": "a/b", "dest": s(&l), "state": "link"})).await;
    assert!(check.changes[0].summary.contains("link target"), "{}", check.changes[0].summary);
    assert_eq!(std::fs::read_link(&l).unwrap().display().to_string(), "a/b");

    // a link to nothing needs force
    let dangling = d.path().join("dangling");
    let err = run("file", json!({"src": "nowhere", "path": s(&dangling), "state": "link"}), CHECK).await.unwrap_err();
    assert!(err.msg.contains("src file does not exist"), "{}", err.msg);
    converge(d.path(), &[], "file", json!({"src": "nowhere", "path": s(&dangling), "state": "link", "force": true}))
        .await;
    assert_eq!(std::fs::read_link(&dangling).unwrap().display().to_string(), "nowhere");

    // a regular file is not replaced by a link without force
    let plain = d.path().join("plain");
    std::fs::write(&plain, "x").unwrap();
    let err = run("file", json!({"src": "a", "path": s(&plain), "state": "link"}), CHECK).await.unwrap_err();
    assert!(err.msg.contains("refusing"), "{}", err.msg);
    converge(d.path(), &[], "file", json!({"src": "a", "path": s(&plain), "state": "link", "force": true})).await;

    let h = d.path().join("hard");
    converge(d.path(), &[], "file", json!({"src": s(&f), "path": s(&h), "state": "hard"})).await;
    assert_eq!(std::fs::metadata(&h).unwrap().ino(), std::fs::metadata(&f).unwrap().ino());

    let (check, _) = converge(d.path(), &[], "file", json!({"path": s(&d.path().join("a")), "state": "absent"})).await;
    assert!(check.changes[0].summary.contains("entries"), "{}", check.changes[0].summary);
    assert!(!d.path().join("a").exists());

    // state=file on a missing path fails as Ansible does
    let err = run("file", json!({"path": s(&d.path().join("missing"))}), CHECK).await.unwrap_err();
    assert!(err.msg.contains("is absent"), "{}", err.msg);
}

#[tokio::test]
async fn file_recurse_fixes_the_tree() {
    let d = tempfile::tempdir().unwrap();
    let top = d.path().join("tree");
    std::fs::create_dir_all(top.join("x/y")).unwrap();
    std::fs::write(top.join("x/y/f"), "1").unwrap();
    std::fs::write(top.join("g"), "2").unwrap();
    for p in [top.join("x/y/f"), top.join("g")] {
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    let (check, _) = converge(
        d.path(),
        &[],
        "file",
        json!({"path": s(&top), "state": "directory", "recurse": true, "mode": "u=rwX,go=rX"}),
    )
    .await;
    assert!(check.changes.iter().any(|c| c.summary.contains("entries below")), "{:?}", check.changes);
    assert_eq!(mode_of(&top.join("x/y/f")), 0o644);
    assert_eq!(mode_of(&top.join("x/y")), 0o755);
}

#[tokio::test]
async fn stat_reports_like_ansible() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("f");
    std::fs::write(&f, "hello\n").unwrap();
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    let r = run("stat", json!({"path": s(&f)}), APPLY).await.unwrap();
    assert!(!r.changed);
    let st = &r.data["stat"];
    assert_eq!(st["exists"], json!(true));
    assert_eq!(st["isreg"], json!(true));
    assert_eq!(st["isdir"], json!(false));
    assert_eq!(st["mode"], json!("0640"));
    assert_eq!(st["size"], json!(6));
    assert_eq!(st["checksum"], json!("f572d396fae9206628714fb2ce00f72e94f2258f"));
    assert_eq!(st["uid"], json!(std::fs::metadata(&f).unwrap().uid()));
    let l = d.path().join("l");
    std::os::unix::fs::symlink(&f, &l).unwrap();
    let r = run("stat", json!({"path": s(&l)}), APPLY).await.unwrap();
    assert_eq!(r.data["stat"]["islnk"], json!(true));
    assert_eq!(r.data["stat"]["lnk_target"], json!(s(&f)));
    let r = run("stat", json!({"path": s(&l), "follow": true}), APPLY).await.unwrap();
    assert_eq!(r.data["stat"]["isreg"], json!(true));
    let r = run("stat", json!({"path": s(&d.path().join("none"))}), CHECK).await.unwrap();
    assert_eq!(r.data["stat"], json!({"exists": false}));
}

#[tokio::test]
async fn slurp_reads_base64_and_words_errors_like_ansible() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("initiatorname.iscsi");
    let bytes = b"InitiatorName=iqn.2024-01.lan.home:pi3\n\x00\xff";
    std::fs::write(&f, bytes).unwrap();
    for mode in [APPLY, CHECK] {
        let r = run("slurp", json!({"src": s(&f)}), mode).await.unwrap();
        assert!(!r.changed);
        assert_eq!(r.data["content"], json!("SW5pdGlhdG9yTmFtZT1pcW4uMjAyNC0wMS5sYW4uaG9tZTpwaTMKAP8="));
        assert_eq!((&r.data["encoding"], &r.data["source"]), (&json!("base64"), &json!(s(&f))));
    }
    let err = run("slurp", json!({"path": s(&d.path().join("none"))}), APPLY).await.unwrap_err();
    assert!(err.msg.starts_with("file not found: "), "{}", err.msg);
    let err = run("slurp", json!({"src": s(d.path())}), APPLY).await.unwrap_err();
    assert!(err.msg.contains("source is a directory and must be a file"), "{}", err.msg);
}

#[tokio::test]
async fn copy_a_directory_tree() {
    let d = tempfile::tempdir().unwrap();
    let ctl = tempfile::tempdir().unwrap();
    let tree = ctl.path().join("files/conf");
    std::fs::create_dir_all(tree.join("sub/deeper")).unwrap();
    std::fs::write(tree.join("a.conf"), "a\n").unwrap();
    std::fs::write(tree.join("sub/b.conf"), "b\n").unwrap();
    std::fs::write(tree.join("sub/deeper/c.conf"), "c\n").unwrap();
    let search = vec![ctl.path().to_path_buf()];
    let dest = d.path().join("etc");

    // without a trailing slash the directory itself lands inside dest
    let (check, _) = converge(
        d.path(),
        &search,
        "copy",
        json!({"src": "conf", "dest": s(&dest), "mode": "0600", "directory_mode": "0700"}),
    )
    .await;
    assert_eq!(check.changes.len(), 3 + 3, "{:?}", check.changes);
    assert_eq!(std::fs::read_to_string(dest.join("conf/sub/deeper/c.conf")).unwrap(), "c\n");
    assert_eq!(mode_of(&dest.join("conf/sub")), 0o700);
    assert_eq!(mode_of(&dest.join("conf/a.conf")), 0o600);

    // with a trailing slash only the contents
    let flat = d.path().join("flat");
    converge(d.path(), &search, "copy", json!({"src": "conf/", "dest": s(&flat)})).await;
    assert_eq!(std::fs::read_to_string(flat.join("a.conf")).unwrap(), "a\n");
    assert_eq!(std::fs::read_to_string(flat.join("sub/b.conf")).unwrap(), "b\n");

    // one file changes: one change, with its diff
    std::fs::write(tree.join("sub/b.conf"), "b2\n").unwrap();
    let r = run_in(&search, "copy", json!({"src": "conf/", "dest": s(&flat)}), APPLY).await.unwrap();
    assert_eq!(r.changes.len(), 1, "{:?}", r.changes);
    let diff = r.changes[0].diff.as_ref().unwrap();
    assert_eq!((diff.before.as_str(), diff.after.as_str()), ("b\n", "b2\n"));
    assert_eq!(std::fs::read_to_string(flat.join("sub/b.conf")).unwrap(), "b2\n");
}

#[tokio::test]
async fn copy_content_of_other_types() {
    let d = tempfile::tempdir().unwrap();
    let dest = d.path().join("j");
    run("copy", json!({"dest": s(&dest), "content": {"a": [1, 2]}}), APPLY).await.unwrap();
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), r#"{"a":[1,2]}"#);
    run("copy", json!({"dest": s(&dest), "content": 42}), APPLY).await.unwrap();
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "42");
}

#[tokio::test]
async fn copy_a_large_tree_in_batches() {
    let d = tempfile::tempdir().unwrap();
    let ctl = tempfile::tempdir().unwrap();
    let tree = ctl.path().join("many");
    std::fs::create_dir_all(&tree).unwrap();
    // long names make the probe script exceed one batch
    let long = "n".repeat(240);
    for i in 0..300 {
        std::fs::write(tree.join(format!("{long}{i:04}")), format!("{i}\n")).unwrap();
    }
    let search = vec![ctl.path().to_path_buf()];
    let (check, _) = converge(d.path(), &search, "copy", json!({"src": "many", "dest": s(d.path())})).await;
    assert_eq!(check.changes.len(), 301);
    assert_eq!(std::fs::read_to_string(d.path().join(format!("many/{long}0299"))).unwrap(), "299\n");
}

#[tokio::test]
async fn file_times_and_attributes() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("stamp");
    let mtime = |p: &std::path::Path| std::fs::metadata(p).unwrap().mtime();
    // a new file with a given modification time (local time on the host), atime kept
    let p = json!({"path": s(&f), "state": "touch", "modification_time": "202001021304.05", "access_time": "preserve"});
    let (check, _) = converge(d.path(), &[], "file", p).await;
    assert!(check.changes.iter().any(|c| c.summary.contains("modification time")), "{:?}", check.changes);
    let want = std::process::Command::new("date").args(["-d", "2020-01-02 13:04:05", "+%s"]).output().unwrap();
    assert_eq!(mtime(&f).to_string(), String::from_utf8_lossy(&want.stdout).trim());
    // another format; a date alone is midnight
    let p = json!({"path": s(&f), "modification_time": "2021-03-04", "modification_time_format": "%Y-%m-%d"});
    converge(d.path(), &[], "file", p).await;
    // `now` is a change on every run
    for _ in 0..2 {
        let r = run("file", json!({"path": s(&f), "access_time": "now"}), APPLY).await.unwrap();
        assert!(r.changed);
    }
    // a time that does not match its format is refused before anything runs
    let e = run("file", json!({"path": s(&f), "modification_time": "yesterday"}), CHECK).await.unwrap_err();
    assert!(e.to_string().contains("Error while obtaining timestamp for time yesterday"), "{e}");

    // attributes (ext4 and tmpfs both keep `A`); `e` (extents) is the file system's own
    let lsattr = |p: &std::path::Path| {
        let o = std::process::Command::new("lsattr").arg("-d").arg(p).output().unwrap();
        String::from_utf8_lossy(&o.stdout).split_whitespace().next().unwrap_or("").to_string()
    };
    if std::process::Command::new("lsattr").arg("-d").arg(&f).output().is_ok_and(|o| o.status.success()) {
        converge(d.path(), &[], "file", json!({"path": s(&f), "attributes": "+A"})).await;
        assert!(lsattr(&f).contains('A'), "{}", lsattr(&f));
        // exactly these flags: `e` may stay, A goes, d comes
        converge(d.path(), &[], "file", json!({"path": s(&f), "attributes": "d"})).await;
        let now = lsattr(&f);
        assert!(now.contains('d') && !now.contains('A'), "{now}");
        converge(d.path(), &[], "file", json!({"path": s(&f), "attr": "-d"})).await;
        // removing a flag that is not there is no change (Ansible reports one)
        let r = run("file", json!({"path": s(&f), "attributes": "-d"}), APPLY).await.unwrap();
        assert!(!r.changed, "{:?}", r.changes);
        let e = run("file", json!({"path": s(&f), "attributes": "+1"}), CHECK).await.unwrap_err();
        assert!(e.to_string().contains("not a chattr flag"), "{e}");
    } else {
        panic!("lsattr cannot read {}: the test needs a file system with attributes", f.display());
    }
}
