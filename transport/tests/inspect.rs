//! Path inspection: the native way (the local file system; SFTP against a real OpenSSH server)
//! must answer exactly what the portable `sh` script answers, for every kind of path.

use pbr_core::host::{Become, BecomeMethod, Cmd, Connection, PathInfo, PathQuery, READ_LIMIT, Secret};
use pbr_testkit::{PW_USER, SUDO_PASSWORD, Sshd, SshdOptions, USER};
use pbr_transport::inspect::shell_inspect;
use pbr_transport::local::LocalConnection;
use pbr_transport::ssh::{ExecMode, SshConnection, SshOptions};

/// A tree with one of everything, built by `sh` (so that it can be built as the login user of
/// a remote host too).
fn tree_script(d: &str) -> String {
    format!(
        "set -e; cd '{d}'; umask 022; \
         printf 'hello\\n' > f; chmod 0640 f; : > empty; \
         head -c {} /dev/zero | tr '\\0' x > big; \
         mkdir dir; chmod 0750 dir; mkdir -m 2775 sgid; \
         ln -s f ln_f; ln -s dir ln_d; ln -s missing dangling; ln -s ln_f chain; ln -s \"$PWD/f\" abs_ln; \
         mkfifo fifo; printf '#!/bin/sh\\n' > exe; chmod 4755 exe; \
         printf 'a b\\n' > 'with space'; printf 'q\\n' > \"it's\"",
        READ_LIMIT + 10
    )
}

fn queries(d: &str, extra: &[&str]) -> Vec<PathQuery> {
    let mut names = vec![
        "f",
        "empty",
        "big",
        "dir",
        "sgid",
        "ln_f",
        "ln_d",
        "dangling",
        "chain",
        "abs_ln",
        "fifo",
        "exe",
        "with space",
        "it's",
        "missing",
        "f/below-a-file",
        "dir/../f",
    ];
    names.extend_from_slice(extra);
    let mut qs = vec![];
    for n in names {
        let p = format!("{d}/{n}");
        qs.push(PathQuery::new(p.clone()));
        qs.push(PathQuery::new(p.clone()).follow(true));
        qs.push(PathQuery::new(p.clone()).target());
        qs.push(PathQuery::new(p.clone()).content(true));
        qs.push(PathQuery::new(p.clone()).follow(true).content(true));
        qs.push(PathQuery::new(p.clone()).checksum(true).access());
        qs.push(PathQuery::new(p).follow(true).target().checksum(true).access());
    }
    qs
}

fn compare(qs: &[PathQuery], shell: &[PathInfo], native: &[PathInfo]) {
    assert_eq!(shell.len(), qs.len());
    assert_eq!(native.len(), qs.len());
    for ((q, s), n) in qs.iter().zip(shell).zip(native) {
        assert_eq!(s, n, "{q:?}");
    }
}

fn sanity(qs: &[PathQuery], v: &[PathInfo], d: &str) {
    let find = |q: &PathQuery| &v[qs.iter().position(|x| x == q).unwrap()];
    let f = find(&PathQuery::new(format!("{d}/f")).content(true));
    assert_eq!(f.content.as_deref(), Some(&b"hello\n"[..]));
    assert_eq!(f.stat.as_ref().unwrap().mode, 0o640);
    let big = find(&PathQuery::new(format!("{d}/big")).content(true));
    assert!(big.content.is_none() && big.sha1.as_ref().is_some_and(|h| h.len() == 40));
    let ln = find(&PathQuery::new(format!("{d}/chain")).follow(true).content(true));
    assert_eq!(ln.path, format!("{d}/f"));
    assert_eq!(ln.content.as_deref(), Some(&b"hello\n"[..]));
    let ln = find(&PathQuery::new(format!("{d}/ln_d")).target());
    assert_eq!(ln.stat.as_ref().unwrap().link_target.as_deref(), Some("dir"));
    assert_eq!(ln.target.as_ref().unwrap().kind, "directory");
    let dangling = find(&PathQuery::new(format!("{d}/dangling")).follow(true).target().checksum(true).access());
    assert_eq!(dangling.stat.as_ref().unwrap().kind, "link");
    assert_eq!(dangling.access.as_deref(), Some(""));
    assert!(dangling.target.is_none());
    assert!(!find(&PathQuery::new(format!("{d}/f/below-a-file"))).exists());
    let exe = find(&PathQuery::new(format!("{d}/exe")).checksum(true).access());
    assert_eq!(exe.stat.as_ref().unwrap().mode, 0o4755);
    // sha1 of "#!/bin/sh\n"
    assert_eq!(exe.checksum.as_deref(), Some("bd971bec88149956458a10fc9c5ecb3eb99dd452"));
    assert_eq!(find(&PathQuery::new(format!("{d}/fifo"))).stat.as_ref().unwrap().kind, "fifo");
}

#[tokio::test]
async fn local_native_matches_shell() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let c = LocalConnection::new();
    let out = c.exec(&Cmd::new(tree_script(&d)), None).await.unwrap();
    assert_eq!(out.rc, 0, "{}", out.stderr_str());
    let qs = queries(&d, &[]);
    let shell = shell_inspect(&c, &qs, None).await.unwrap();
    let native = c.inspect(&qs, None).await.unwrap();
    compare(&qs, &shell, &native);
    sanity(&qs, &native, &d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_matches_shell() {
    if !pbr_testkit::require_sshd("sftp_matches_shell") {
        return;
    }
    let s = Sshd::start(SshdOptions::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let kh = tmp.path().join("known_hosts");
    std::fs::write(&kh, format!("{}\n", s.known_hosts_line())).unwrap();
    let mut o = SshOptions::new(&s.host, s.port, USER);
    o.identity_files = vec![s.client_key.clone()];
    o.agent_socket = None;
    o.known_hosts = vec![kh];
    o.exec_mode = ExecMode::Shell;
    let c = SshConnection::connect(&o).await.unwrap();
    assert!(c.has_sftp(None).await, "the test server runs an SFTP server");
    // the tree belongs to the login user; beside it, root's files it may or may not read
    let base = tmp.path().join("t");
    std::fs::create_dir(&base).unwrap();
    let d = base.to_str().unwrap().to_string();
    std::process::Command::new("chown").arg(USER).arg(&base).status().unwrap();
    std::process::Command::new("chmod").arg("0755").arg(tmp.path()).status().unwrap();
    let out = c.exec(&Cmd::new(tree_script(&d)), None).await.unwrap();
    assert_eq!(out.rc, 0, "{}", out.stderr_str());
    let root_dir = base.join("rootdir");
    std::fs::create_dir(&root_dir).unwrap();
    std::fs::write(root_dir.join("public"), "pub\n").unwrap();
    std::fs::write(base.join("root_public"), "pub\n").unwrap();
    let qs = queries(&d, &["rootdir", "rootdir/public", "root_public"]);
    let shell = shell_inspect(&c, &qs, None).await.unwrap();
    let native = c.inspect(&qs, None).await.unwrap();
    compare(&qs, &shell, &native);
    sanity(&qs, &native, &d);
    // root's public file: the login user reads it but may not write it
    let p = PathQuery::new(format!("{d}/root_public")).checksum(true).access();
    let v = c.inspect(std::slice::from_ref(&p), None).await.unwrap();
    assert_eq!(v[0].access.as_deref(), Some("r"));
    assert_eq!(v[0].stat.as_ref().unwrap().owner, "root");
    // a file the login user cannot read: both ways fail the same way for its content
    std::fs::write(base.join("secret"), "s\n").unwrap();
    std::fs::set_permissions(base.join("secret"), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let q = [PathQuery::new(format!("{d}/secret")).content(true)];
    assert!(shell_inspect(&c, &q, None).await.is_err());
    assert!(c.inspect(&q, None).await.is_err());
    let q = [PathQuery::new(format!("{d}/secret")).checksum(true).access()];
    compare(&q, &shell_inspect(&c, &q, None).await.unwrap(), &c.inspect(&q, None).await.unwrap());
    // read_file through SFTP: content, absence
    assert_eq!(c.read_file(&format!("{d}/f"), None).await.unwrap().as_deref(), Some(&b"hello\n"[..]));
    assert_eq!(c.read_file(&format!("{d}/missing"), None).await.unwrap(), None);
    assert!(c.read_file(&format!("{d}/secret"), None).await.is_err());

    // through sudo (no password): root's SFTP server answers, and reads what the user cannot
    let root = Become { method: BecomeMethod::Sudo, user: "root".into(), password: None };
    assert!(c.has_sftp(Some(&root)).await, "sftp-server through sudo");
    let mut qs = queries(&d, &["rootdir", "rootdir/public", "root_public", "secret"]);
    qs.push(PathQuery::new(format!("{d}/secret")).content(true));
    let shell = shell_inspect(&c, &qs, Some(&root)).await.unwrap();
    let native = c.inspect(&qs, Some(&root)).await.unwrap();
    compare(&qs, &shell, &native);
    assert_eq!(native.last().unwrap().content.as_deref(), Some(&b"s\n"[..]));
    assert_eq!(c.read_file(&format!("{d}/secret"), Some(&root)).await.unwrap().as_deref(), Some(&b"s\n"[..]));
    c.close().await;

    // through sudo with a password (the user whose sudo asks for one), and a wrong password
    let mut o = o.clone();
    o.user = PW_USER.into();
    let c = SshConnection::connect(&o).await.unwrap();
    let pw = Become { method: BecomeMethod::Sudo, user: "root".into(), password: Some(Secret::new(SUDO_PASSWORD)) };
    assert!(c.has_sftp(Some(&pw)).await, "sftp-server through sudo with a password");
    let q = [PathQuery::new(format!("{d}/secret")).content(true).access()];
    let v = c.inspect(&q, Some(&pw)).await.unwrap();
    assert_eq!(v[0].content.as_deref(), Some(&b"s\n"[..]));
    compare(&q, &shell_inspect(&c, &q, Some(&pw)).await.unwrap(), &v);
    let wrong = Become { password: Some(Secret::new("not the password")), ..pw.clone() };
    assert!(!c.has_sftp(Some(&wrong)).await);
    assert!(c.inspect(&q, Some(&wrong)).await.is_err());
    c.close().await;
}
