//! lineinfile, blockinfile and replace: Ansible's documented behaviours as tables, then the
//! full module contract on real files.

mod common;
use common::*;
use pbr_modules::{blockinfile, lineinfile, replace};
use serde_json::{Value, json};

fn li(v: Value) -> lineinfile::LineinfileParams {
    serde_json::from_value(v).unwrap()
}

#[test]
fn lineinfile_placement_table() {
    let cases: Vec<(&str, Value, &str)> = vec![
        ("foo\nbar\n", json!({"line": "baz"}), "foo\nbar\nbaz\n"),
        ("foo\nbar\n", json!({"line": "BAR", "regexp": "^bar"}), "foo\nBAR\n"),
        ("foo\nbar\n", json!({"line": "first", "insertbefore": "BOF"}), "first\nfoo\nbar\n"),
        ("foo\nbar\n", json!({"line": "first", "insertafter": "BOF"}), "first\nfoo\nbar\n"),
        ("foo\nbar\n", json!({"line": "new", "insertafter": "^foo"}), "foo\nnew\nbar\n"),
        ("foo\nbar\n", json!({"line": "new", "insertbefore": "^bar"}), "foo\nnew\nbar\n"),
        ("foo\nbar\n", json!({"line": "new", "insertafter": "^nomatch"}), "foo\nbar\nnew\n"),
        ("foo\nbar\n", json!({"line": "new", "insertbefore": "^nomatch"}), "foo\nbar\nnew\n"),
        ("foo\nbar\n", json!({"line": "bar"}), "foo\nbar\n"),
        ("foo\nbar\n", json!({"line": "bar", "regexp": "^nomatch"}), "foo\nbar\n"),
        ("foo", json!({"line": "bar"}), "foo\nbar\n"),
        ("foo", json!({"line": "foo"}), "foo\n"),
        ("", json!({"line": "only"}), "only\n"),
        ("a\nx\na\ny\n", json!({"line": "new", "insertafter": "^a"}), "a\nx\na\nnew\ny\n"),
        ("a\nx\na\ny\n", json!({"line": "new", "insertafter": "^a", "firstmatch": true}), "a\nnew\nx\na\ny\n"),
        ("a\nx\na\ny\n", json!({"line": "new", "insertbefore": "^a"}), "a\nx\nnew\na\ny\n"),
        ("a\nx\na\ny\n", json!({"line": "new", "insertbefore": "^a", "firstmatch": true}), "new\na\nx\na\ny\n"),
        ("a\nlast", json!({"line": "new", "insertafter": "^last"}), "a\nlast\nnew\n"),
        ("a=1\nb\na=2\n", json!({"line": "a=3", "regexp": "^a="}), "a=1\nb\na=3\n"),
        ("a=1\nb\na=2\n", json!({"line": "a=3", "regexp": "^a=", "firstmatch": true}), "a=3\nb\na=2\n"),
        ("foo\nbar\n", json!({"line": "\\1=1", "regexp": "^(foo)$", "backrefs": true}), "foo=1\nbar\n"),
        ("foo\nbar\n", json!({"line": "\\1=1", "regexp": "^(nope)$", "backrefs": true}), "foo\nbar\n"),
        (
            "#PermitRootLogin yes\n",
            json!({"line": "PermitRootLogin no", "regexp": "^#?PermitRootLogin"}),
            "PermitRootLogin no\n",
        ),
        (
            "x\nPermitRootLogin yes\n",
            json!({"line": "PermitRootLogin no", "search_string": "PermitRootLogin"}),
            "x\nPermitRootLogin no\n",
        ),
        ("foo\nbar\n", json!({"line": "bar", "insertbefore": "^foo"}), "foo\nbar\n"),
        // Python's `re`: a backreference in the pattern, a named group in the line
        ("REF a REF\nREF b FER\n", json!({"line": "same", "regexp": "^(REF) .* \\1$"}), "same\nREF b FER\n"),
        ("k: v\n", json!({"line": "\\g<key>=v", "regexp": "^(?P<key>\\w+): v", "backrefs": true}), "k=v\n"),
    ];
    for (i, (before, params, after)) in cases.into_iter().enumerate() {
        let mut p = params.clone();
        p["path"] = json!("/x");
        let got = lineinfile::present(&li(p), before).unwrap();
        assert_eq!(got.text, after, "case {i}: {params} on {before:?}");
    }
}

#[test]
fn lineinfile_absent_table() {
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        ("a=1\nb\na=2\n", json!({"regexp": "^a="}), "b\n", "2 line(s) removed"),
        ("a=1\nb\na=2\n", json!({"line": "b"}), "a=1\na=2\n", "1 line(s) removed"),
        ("a=1\nb\n", json!({"search_string": "=1"}), "b\n", "1 line(s) removed"),
        ("a=1\nb\n", json!({"line": "c"}), "a=1\nb\n", ""),
    ];
    for (before, params, after, msg) in cases {
        let mut p = params.clone();
        p["path"] = json!("/x");
        p["state"] = json!("absent");
        let got = lineinfile::absent(&li(p), before).unwrap();
        assert_eq!((got.text.as_str(), got.msg.as_str()), (after, msg), "{params}");
    }
}

fn bi(v: Value) -> blockinfile::BlockinfileParams {
    let mut v = v;
    v["path"] = json!("/x");
    serde_json::from_value(v).unwrap()
}

const B: &str = "# BEGIN ANSIBLE MANAGED BLOCK";
const E: &str = "# END ANSIBLE MANAGED BLOCK";

#[test]
fn blockinfile_table() {
    let with_block = format!("a\n{B}\nold\n{E}\nb\n");
    let cases: Vec<(Option<&str>, Value, String)> = vec![
        (None, json!({"block": "x=1"}), format!("{B}\nx=1\n{E}\n")),
        (Some("a\nb\n"), json!({"block": "x=1\ny=2\n"}), format!("a\nb\n{B}\nx=1\ny=2\n{E}\n")),
        (Some("a\nb"), json!({"block": "x=1"}), format!("a\nb\n{B}\nx=1\n{E}\n")),
        (Some("a\nb\n"), json!({"block": "x=1", "insertbefore": "BOF"}), format!("{B}\nx=1\n{E}\na\nb\n")),
        (Some("a\nb\n"), json!({"block": "x=1", "insertafter": "^a"}), format!("a\n{B}\nx=1\n{E}\nb\n")),
        (Some("a\nb\n"), json!({"block": "x=1", "insertbefore": "^b"}), format!("a\n{B}\nx=1\n{E}\nb\n")),
        (Some(&with_block), json!({"block": "new"}), format!("a\n{B}\nnew\n{E}\nb\n")),
        (Some(&with_block), json!({"state": "absent"}), "a\nb\n".to_string()),
        (Some(&with_block), json!({"block": ""}), "a\nb\n".to_string()),
        (
            Some("a\n"),
            json!({"block": "k", "marker": "; {mark} pbr", "marker_begin": "START", "marker_end": "STOP"}),
            "a\n; START pbr\nk\n; STOP pbr\n".to_string(),
        ),
    ];
    for (i, (before, params, after)) in cases.into_iter().enumerate() {
        let got = blockinfile::edit(&bi(params.clone()), before).unwrap();
        assert_eq!(got, after, "case {i}: {params} on {before:?}");
        // and a second edit of the result changes nothing
        assert_eq!(blockinfile::edit(&bi(params.clone()), Some(&got)).unwrap(), got, "case {i} idempotent");
    }
}

#[test]
fn replace_table() {
    let rp = |v: Value| -> replace::ReplaceParams {
        let mut v = v;
        v["path"] = json!("/x");
        serde_json::from_value(v).unwrap()
    };
    let cases: Vec<(&str, Value, &str, usize)> = vec![
        ("a=1\nb=1\n", json!({"regexp": "^(\\w+)=1$", "replace": "\\1=2"}), "a=2\nb=2\n", 2),
        ("a=1\nb=1\n", json!({"regexp": "=1", "replace": "=\\g<0>"}), "a==1\nb==1\n", 2),
        (
            "x\n[s]\nk=1\n[t]\nk=1\n",
            json!({"regexp": "k=1", "replace": "k=2", "after": "\\[s\\]", "before": "\\[t\\]"}),
            "x\n[s]\nk=2\n[t]\nk=1\n",
            1,
        ),
        ("k=1\n[t]\nk=1\n", json!({"regexp": "k=1", "replace": "k=2", "before": "\\[t\\]"}), "k=2\n[t]\nk=1\n", 1),
        ("a\n", json!({"regexp": "zzz", "replace": "y"}), "a\n", 0),
        ("a\n", json!({"regexp": "a", "replace": "b", "after": "nomatch"}), "a\n", 0),
        ("cost $5\n", json!({"regexp": "cost", "replace": "price"}), "price $5\n", 1),
        ("a b\n", json!({"regexp": " b$"}), "a\n", 1),
        // backreferences and look-ahead, as Python has them
        ("x=x\ny=z\n", json!({"regexp": "^(\\w)=\\1$", "replace": "same"}), "same\ny=z\n", 1),
        ("ab ac\n", json!({"regexp": "a(?=c)", "replace": "A"}), "ab Ac\n", 1),
    ];
    for (before, params, after, n) in cases {
        let got = replace::edit(&rp(params.clone()), before).unwrap().unwrap_or((before.to_string(), 0));
        assert_eq!((got.0.as_str(), got.1), (after, n), "{params}");
    }
    // a section that is not there: Ansible's message, the file unchanged
    let p = rp(json!({"regexp": "a", "replace": "b", "after": "nomatch"}));
    assert_eq!(
        replace::edit(&p, "a\n").unwrap(),
        Err("Pattern for before/after params did not match the given file: nomatch(?P<subsection>.*)".to_string())
    );
}

#[tokio::test]
async fn lineinfile_module_contract() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("sshd_config");
    std::fs::write(&f, "Port 22\n#PermitRootLogin yes\n").unwrap();
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (check, applied) = converge(
        d.path(),
        &[],
        "lineinfile",
        json!({"path": s(&f), "regexp": "^#?PermitRootLogin", "line": "PermitRootLogin no"}),
    )
    .await;
    let diff = check.changes[0].diff.as_ref().unwrap();
    assert_eq!(diff.before, "Port 22\n#PermitRootLogin yes\n");
    assert_eq!(diff.after, "Port 22\nPermitRootLogin no\n");
    assert_eq!(applied.data["msg"], json!("line replaced"));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "Port 22\nPermitRootLogin no\n");
    assert_eq!(mode_of(&f), 0o600, "mode kept");

    let missing = d.path().join("missing.conf");
    let err = run("lineinfile", json!({"path": s(&missing), "line": "x"}), CHECK).await.unwrap_err();
    assert!(err.msg.contains("does not exist"), "{}", err.msg);
    converge(d.path(), &[], "lineinfile", json!({"path": s(&missing), "line": "x", "create": true, "mode": "0644"}))
        .await;
    assert_eq!(std::fs::read_to_string(&missing).unwrap(), "x\n");
    assert_eq!(mode_of(&missing), 0o644);
    converge(d.path(), &[], "lineinfile", json!({"dest": s(&missing), "line": "x", "state": "absent"})).await;
    assert_eq!(std::fs::read_to_string(&missing).unwrap(), "");

    // absent on a missing file: nothing to do
    let r = run("lineinfile", json!({"path": s(&d.path().join("nope")), "line": "x", "state": "absent"}), APPLY)
        .await
        .unwrap();
    assert!(!r.changed);
    // params that exclude each other
    let err = run("lineinfile", json!({"path": s(&f), "line": "x", "insertafter": "a", "insertbefore": "b"}), CHECK)
        .await
        .unwrap_err();
    assert!(err.msg.contains("mutually exclusive"), "{}", err.msg);
}

#[tokio::test]
async fn lineinfile_follows_symlinks() {
    let d = tempfile::tempdir().unwrap();
    let real = d.path().join("real");
    std::fs::write(&real, "a\n").unwrap();
    let l = d.path().join("link");
    std::os::unix::fs::symlink(&real, &l).unwrap();
    converge(d.path(), &[], "lineinfile", json!({"path": s(&l), "line": "b"})).await;
    assert!(std::fs::symlink_metadata(&l).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(&real).unwrap(), "a\nb\n");
}

#[tokio::test]
async fn blockinfile_module_contract() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("dhcpcd.conf");
    std::fs::write(&f, "hostname\n").unwrap();
    let (check, _) =
        converge(d.path(), &[], "blockinfile", json!({"path": s(&f), "block": "interface eth0\nstatic a=1\n"})).await;
    assert_eq!(
        check.changes[0].diff.as_ref().unwrap().after,
        format!("hostname\n{B}\ninterface eth0\nstatic a=1\n{E}\n")
    );
    converge(d.path(), &[], "blockinfile", json!({"path": s(&f), "block": "interface eth1\n", "backup": true})).await;
    assert_eq!(std::fs::read_to_string(&f).unwrap(), format!("hostname\n{B}\ninterface eth1\n{E}\n"));
    let backups = std::fs::read_dir(d.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with('~'))
        .count();
    assert_eq!(backups, 1);
    converge(d.path(), &[], "blockinfile", json!({"path": s(&f), "state": "absent"})).await;
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "hostname\n");
    let err = run("blockinfile", json!({"path": s(&d.path().join("nope")), "block": "x"}), CHECK).await.unwrap_err();
    assert!(err.msg.contains("does not exist"), "{}", err.msg);
}

#[tokio::test]
async fn replace_module_contract() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("sources.list");
    std::fs::write(&f, "deb http://old/debian main\ndeb http://old/security main\n").unwrap();
    let (check, applied) =
        converge(d.path(), &[], "replace", json!({"path": s(&f), "regexp": "http://old", "replace": "http://new"}))
            .await;
    assert!(check.changes[0].summary.contains("2 replacements made"), "{}", check.changes[0].summary);
    assert_eq!(applied.data["msg"], json!("2 replacements made"));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "deb http://new/debian main\ndeb http://new/security main\n");
    let err = run("replace", json!({"path": s(&d.path().join("nope")), "regexp": "a"}), CHECK).await.unwrap_err();
    assert!(err.msg.contains("does not exist"), "{}", err.msg);
    let err = run("replace", json!({"path": s(&f), "regexp": "(unclosed"}), CHECK).await.unwrap_err();
    assert!(err.msg.contains("invalid regexp"), "{}", err.msg);
}
