//! Ansible Vault: files `ansible-vault` wrote (tests/vault/) open in pbr; what `pbr vault` writes,
//! `ansible-vault` opens; vaulted variables reach a play and never its output.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vault")
}

const PLAIN: &str = "wifi_passphrase: correct horse battery staple\nchap_password: s3cret-chap-pw\nport: 3260\n";

fn pbr_in(dir: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pbr"));
    c.args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env(LOOPBACK_ONLY.0, LOOPBACK_ONLY.1)
        .env_remove("ANSIBLE_VAULT_PASSWORD_FILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        use std::io::Write;
        let mut i = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            i.write_all(s.as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn files_ansible_vault_wrote_open() {
    let f = fixtures();
    let pw = f.join("password");
    let pw = pw.to_str().unwrap();
    for name in ["secrets.yml", "secrets-1.2.yml"] {
        let r = pbr_in(&f, &["vault", "view", name, "--vault-password-file", pw], None);
        assert_eq!(r.code, 0, "{name}: {}", r.all());
        assert_eq!(r.stdout, PLAIN, "{name}");
    }
    // by vault id: the 1.2 file names `lab`
    let r = pbr_in(&f, &["vault", "view", "secrets-1.2.yml", "--vault-id", &format!("lab@{pw}")], None);
    assert_eq!((r.code, r.stdout.as_str()), (0, PLAIN), "{}", r.all());
    // the wrong password: a clear error, exit 4
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "wrong", "not-the-password\n");
    let r = pbr_in(
        &f,
        &["vault", "view", "secrets.yml", "--vault-password-file", d.path().join("wrong").to_str().unwrap()],
        None,
    );
    assert_eq!(r.code, 4, "{}", r.all());
    assert!(r.stderr.contains("no vault password given opens it"), "{}", r.stderr);
    let r = pbr_in(&f, &["vault", "view", "secrets.yml"], None);
    assert_eq!(r.code, 4, "{}", r.all());
    assert!(r.stderr.contains("no vault password was given"), "{}", r.stderr);
}

/// `ansible-vault`, when this machine has it (CI installs ansible-core).
fn ansible_vault() -> Option<&'static str> {
    let ok = Command::new("sh").arg("-c").arg("command -v ansible-vault").output().map(|o| o.status.success());
    if ok.unwrap_or(false) {
        return Some("ansible-vault");
    }
    eprintln!("\n!!!!!!!! SKIP: no ansible-vault on this machine !!!!!!!!\n");
    assert!(std::env::var("CI").as_deref() != Ok("true"), "CI installs ansible-core for this test");
    None
}

#[test]
fn what_pbr_writes_ansible_vault_opens() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    std::fs::copy(fixtures().join("password"), dir.join("pw")).unwrap();
    write(dir, "a.yml", PLAIN);
    write(dir, "b.yml", PLAIN);
    let r = pbr_in(dir, &["vault", "encrypt", "a.yml", "--vault-password-file", "pw"], None);
    assert_eq!(r.code, 0, "{}", r.all());
    let r = pbr_in(dir, &["vault", "encrypt", "b.yml", "--vault-id", "prod@pw"], None);
    assert_eq!(r.code, 0, "{}", r.all());
    let a = std::fs::read_to_string(dir.join("a.yml")).unwrap();
    assert!(a.starts_with("$ANSIBLE_VAULT;1.1;AES256\n"), "{a}");
    assert!(std::fs::read_to_string(dir.join("b.yml")).unwrap().starts_with("$ANSIBLE_VAULT;1.2;AES256;prod\n"));
    // encrypting twice is refused; nothing changes
    let r = pbr_in(dir, &["vault", "encrypt", "a.yml", "--vault-password-file", "pw"], None);
    assert_eq!(r.code, 4, "{}", r.all());
    assert_eq!(std::fs::read_to_string(dir.join("a.yml")).unwrap(), a);
    // a value for a YAML file
    let r =
        pbr_in(dir, &["vault", "encrypt_string", "--vault-password-file", "pw", "--name", "token", "tok-123456"], None);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.starts_with("token: !vault |\n          $ANSIBLE_VAULT;1.1;AES256\n"), "{}", r.stdout);
    let block: String = r.stdout.lines().skip(1).map(|l| format!("{}\n", l.trim())).collect();
    write(dir, "value.vault", &block);
    // round trip through pbr: rekey, then decrypt
    write(dir, "pw2", "another password\n");
    let r = pbr_in(dir, &["vault", "rekey", "b.yml", "--vault-id", "prod@pw", "--new-vault-id", "prod@pw2"], None);
    assert_eq!(r.code, 0, "{}", r.all());
    let Some(av) = ansible_vault() else { return };
    let view = |file: &str, id: &str| {
        let o = Command::new(av)
            .args(["decrypt", file, "--output", "-", "--vault-id", id])
            .current_dir(dir)
            .env("ANSIBLE_CONFIG", dir.join("none.cfg"))
            .output()
            .unwrap();
        assert!(o.status.success(), "ansible-vault decrypt {file}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    write(dir, "none.cfg", "");
    assert_eq!(view("a.yml", "pw"), PLAIN);
    assert_eq!(view("b.yml", "prod@pw2"), PLAIN);
    assert_eq!(view("value.vault", "pw"), "tok-123456");
    // and back: ansible-vault's encryption of pbr's decryption
    let r = pbr_in(dir, &["vault", "decrypt", "a.yml", "--vault-password-file", "pw"], None);
    assert_eq!((r.code, std::fs::read_to_string(dir.join("a.yml")).unwrap().as_str()), (0, PLAIN), "{}", r.all());
}

#[test]
fn vaulted_vars_reach_the_play_and_never_its_output() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let f = fixtures();
    std::fs::copy(f.join("password"), dir.join("pw")).unwrap();
    // a whole vaulted group_vars file, and an inline !vault value (both written by ansible-vault)
    std::fs::create_dir_all(dir.join("inventory/group_vars/all")).unwrap();
    std::fs::copy(f.join("secrets.yml"), dir.join("inventory/group_vars/all/vault.yml")).unwrap();
    write(dir, "inventory/hosts.ini", &format!("h ansible_connection=local root={}\n", dir.display()));
    let inline = std::fs::read_to_string(f.join("inline.yml")).unwrap();
    std::fs::create_dir_all(dir.join("files")).unwrap();
    std::fs::copy(f.join("secrets.yml"), dir.join("files/secret.yml")).unwrap();
    write(
        dir,
        "pb.yml",
        &format!(
            r#"- hosts: all
  gather_facts: false
  vars:
    {}
  tasks:
    - name: use the secrets
      copy:
        dest: "{{{{ root }}}}/out.txt"
        content: "{{{{ wifi_passphrase }}}} {{{{ inline_secret }}}} {{{{ port }}}}\n"
    - debug:
        msg: "psk is {{{{ wifi_passphrase }}}}, inline is {{{{ inline_secret }}}}"
    - name: a vaulted file copied decrypted (Ansible's default), and as it is
      copy: {{ src: secret.yml, dest: "{{{{ root }}}}/{{{{ item.dest }}}}", decrypt: "{{{{ item.decrypt }}}}" }}
      loop: [{{ dest: plain.yml, decrypt: true }}, {{ dest: still-vaulted.yml, decrypt: false }}]
"#,
            inline.trim_end().replace('\n', "\n    ")
        ),
    );
    let r = pbr_in(dir, &["run", "pb.yml", "-i", "inventory", "--diff", "--vault-password-file", "pw"], None);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(
        std::fs::read_to_string(dir.join("out.txt")).unwrap(),
        "correct horse battery staple inline-secret-value 3260\n"
    );
    for secret in ["correct horse battery staple", "inline-secret-value"] {
        assert!(!r.all().contains(secret), "{secret} was printed:\n{}", r.all());
    }
    assert!(r.stdout.contains("psk is <redacted>, inline is <redacted>"), "{}", r.stdout);
    assert_eq!(std::fs::read_to_string(dir.join("plain.yml")).unwrap(), PLAIN);
    assert_eq!(std::fs::read(dir.join("still-vaulted.yml")).unwrap(), std::fs::read(f.join("secrets.yml")).unwrap());
    assert!(!r.all().contains("s3cret-chap-pw"), "the copied file's lines were printed:\n{}", r.all());
    // JSON output too
    let r = pbr_in(dir, &["run", "pb.yml", "-i", "inventory", "--output", "json", "--vault-password-file", "pw"], None);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(!r.all().contains("correct horse battery staple"), "{}", r.all());

    // without a password: the run stops before any host, naming the file
    let r = pbr_in(dir, &["run", "pb.yml", "-i", "inventory"], None);
    assert_eq!(r.code, 4, "{}", r.all());
    assert!(r.stderr.contains("vault.yml") && r.stderr.contains("no vault password was given"), "{}", r.stderr);
    // ANSIBLE_VAULT_PASSWORD_FILE works like the flag
    let out = Command::new(env!("CARGO_BIN_EXE_pbr"))
        .args(["run", "pb.yml", "-i", "inventory"])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env(LOOPBACK_ONLY.0, LOOPBACK_ONLY.1)
        .env("ANSIBLE_VAULT_PASSWORD_FILE", dir.join("pw"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // lint needs no password: it checks the shape, the value stays ciphertext
    let r = pbr_in(dir, &["lint", "pb.yml", "-i", "inventory"], None);
    assert_eq!(r.code, 0, "{}", r.all());
}
