//! command and shell: real processes, creates/removes, failures, check mode.

mod common;
use common::*;
use serde_json::json;

#[tokio::test]
async fn command_runs_without_a_shell() {
    let r = run("command", json!({"_raw_params": "printf '%s|' 'a b' $HOME"}), APPLY).await.unwrap();
    assert!(r.changed);
    // no shell: $HOME stays literal, quotes group words
    assert_eq!(r.data["stdout"], json!("a b|$HOME|"));
    assert_eq!(r.data["rc"], json!(0));
    assert_eq!(r.data["cmd"], json!(["printf", "%s|", "a b", "$HOME"]));
    assert!(r.data["delta"].as_str().unwrap().starts_with("0:00:"));
    assert_eq!(r.changes[0].summary, "run: printf '%s|' 'a b' '$HOME'");

    let r = run("command", json!({"argv": ["echo", "x;y"]}), APPLY).await.unwrap();
    assert_eq!(r.data["stdout"], json!("x;y"));
    assert_eq!(r.data["stdout_lines"], json!(["x;y"]));
}

#[tokio::test]
async fn shell_runs_a_script_with_stdin_and_chdir() {
    let d = tempfile::tempdir().unwrap();
    let r =
        run("shell", json!({"cmd": "pwd; read x; echo \"got $x\" >&2", "chdir": s(d.path()), "stdin": "hi"}), APPLY)
            .await
            .unwrap();
    let real = std::fs::canonicalize(d.path()).unwrap();
    assert_eq!(r.data["stdout"], json!(s(&real)));
    assert_eq!(r.data["stderr"], json!("got hi"));
    assert_eq!(r.data["stderr_lines"], json!(["got hi"]));
    assert_eq!(r.data["cmd"], json!("pwd; read x; echo \"got $x\" >&2"));
}

#[tokio::test]
async fn nonzero_rc_fails_with_data() {
    let err = run("shell", json!({"_raw_params": "echo out; echo err >&2; exit 3"}), APPLY).await.unwrap_err();
    assert_eq!(err.msg, "non-zero return code");
    assert_eq!(err.data["rc"], json!(3));
    assert_eq!(err.data["stdout"], json!("out"));
    assert_eq!(err.data["stderr"], json!("err"));
    let err = run("command", json!({"cmd": "false"}), APPLY).await.unwrap_err();
    assert_eq!(err.data["rc"], json!(1));
}

#[tokio::test]
async fn check_mode_does_not_run() {
    let d = tempfile::tempdir().unwrap();
    let marker = d.path().join("ran");
    let script = format!("touch {}", s(&marker));
    let r = run("shell", json!({"_raw_params": script}), CHECK).await.unwrap();
    assert!(r.changed);
    assert_eq!(r.changes[0].summary, format!("run: {script}"));
    assert!(!marker.exists());
    let r = run("command", json!({"argv": ["touch", s(&marker)]}), CHECK).await.unwrap();
    assert!(r.changed);
    assert!(!marker.exists());
    run("command", json!({"argv": ["touch", s(&marker)]}), APPLY).await.unwrap();
    assert!(marker.exists());
}

#[tokio::test]
async fn creates_and_removes() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out.txt");
    let p = json!({"_raw_params": format!("sh -c 'echo built > {}'", s(&out)), "creates": s(&out)});
    let r = run("command", p.clone(), APPLY).await.unwrap();
    assert!(r.changed);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "built\n");
    std::fs::write(&out, "kept\n").unwrap();
    let r = run("command", p, APPLY).await.unwrap();
    assert!(!r.changed);
    assert_eq!(r.data["msg"], json!(format!("skipped, since {} exists", s(&out))));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "kept\n");

    // free-form trailing creates= with a glob, relative to chdir
    let r = run("shell", json!({"_raw_params": "echo again > out2.txt creates=*.txt", "chdir": s(d.path())}), APPLY)
        .await
        .unwrap();
    assert!(!r.changed, "{:?}", r.changes);
    assert!(!d.path().join("out2.txt").exists());

    let gone = d.path().join("gone");
    let r = run("shell", json!({"cmd": format!("rm {}", s(&gone)), "removes": s(&gone)}), APPLY).await.unwrap();
    assert!(!r.changed);
    assert!(r.data["msg"].as_str().unwrap().contains("does not exist"));
    std::fs::write(&gone, "").unwrap();
    let r = run("shell", json!({"cmd": format!("rm {}", s(&gone)), "removes": s(&gone)}), APPLY).await.unwrap();
    assert!(r.changed);
    assert!(!gone.exists());
}

#[tokio::test]
async fn bad_params() {
    let err = run("command", json!({"cmd": "ls", "argv": ["ls"]}), CHECK).await.unwrap_err();
    assert_eq!(err.msg, "only command or argv can be given, not both");
    // (a run's result also has Ansible's rc 256: tests/compat/command_errors.yml)
    let err = run("command", json!({"chdir": "/"}), CHECK).await.unwrap_err();
    assert_eq!(err.msg, "no command given");
    let err = run("command", json!({"cmd": "echo 'unterminated"}), CHECK).await.unwrap_err();
    assert!(err.msg.contains("unterminated"), "{}", err.msg);
    let err = run("shell", json!({"cmd": "ls", "argv": ["ls"]}), CHECK).await.unwrap_err();
    assert!(err.msg.contains("unknown field"), "{}", err.msg);
}
