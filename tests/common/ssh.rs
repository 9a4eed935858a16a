//! A lab of throwaway sshd servers for end-to-end runs of the `pbr` binary over SSH.
#![allow(dead_code)]

use super::Run;
use pbr_testkit::{Sshd, SshdOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Controller-side files for one test (playbooks, inventory, `ssh_config`, `known_hosts`,
/// target dirs) and the sshd servers it talks to.
pub struct Lab {
    pub dir: tempfile::TempDir,
    pub hosts: Vec<Sshd>,
}

/// Start `n` sshd servers at once.
pub fn start_sshds(n: usize) -> Vec<Sshd> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n).map(|_| s.spawn(|| Sshd::start(SshdOptions::default()))).collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(Ok(sshd)) => sshd,
                Ok(Err(e)) => panic!("cannot start sshd: {e}"),
                Err(_) => panic!("sshd start panicked"),
            })
            .collect()
    })
}

impl Lab {
    /// `n` servers, all of their host keys in the lab's known_hosts, and an ssh_config that
    /// points at that file.
    pub fn new(n: usize) -> Lab {
        let dir = tempfile::Builder::new().prefix("pbr-e2e-").tempdir().unwrap();
        // the login users reach their target dirs below it
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        let lab = Lab { dir, hosts: start_sshds(n) };
        let lines: Vec<String> = lab.hosts.iter().map(Sshd::known_hosts_line).collect();
        lab.write_known_hosts(&lines);
        lab.write_ssh_config("");
        lab
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.path().join("known_hosts")
    }

    pub fn write_known_hosts(&self, lines: &[String]) {
        std::fs::write(self.known_hosts(), lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    }

    /// `extra` comes first (ssh_config: the first value obtained wins).
    pub fn write_ssh_config(&self, extra: &str) {
        let text = format!("{extra}\nHost *\n  UserKnownHostsFile {}\n", self.known_hosts().display());
        std::fs::write(self.path().join("ssh_config"), text).unwrap();
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        super::write(self.path(), name, text)
    }

    /// A fresh directory `targets/NAME` owned by `user` (mode 0755).
    pub fn target(&self, name: &str, user: &str) -> PathBuf {
        let p = self.path().join("targets").join(name);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::set_permissions(self.path().join("targets"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let st = Command::new("chown").arg(format!("{user}:")).arg(&p).status().unwrap();
        assert!(st.success(), "chown {user} {}", p.display());
        p
    }

    /// A world-writable directory shared by every target (they are all this machine).
    pub fn shared(&self, name: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o1777)).unwrap();
        p
    }

    /// Run `pbr ARGS -F ssh_config` in the lab dir with a private HOME and no agent.
    pub fn pbr(&self, args: &[&str]) -> Run {
        self.pbr_with(args, &[], None)
    }

    pub fn pbr_with(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
        let mut child = self.spawn(args, env, stdin.is_some());
        if let Some(input) = stdin {
            let mut i = child.stdin.take().unwrap();
            i.write_all(input.as_bytes()).unwrap();
        }
        finish(child)
    }

    /// Start `pbr` without waiting for it.
    pub fn spawn(&self, args: &[&str], env: &[(&str, &str)], stdin: bool) -> Child {
        let cfg = self.path().join("ssh_config");
        let mut c = Command::new(env!("CARGO_BIN_EXE_pbr"));
        c.args(args)
            .arg("-F")
            .arg(&cfg)
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .env(super::LOOPBACK_ONLY.0, super::LOOPBACK_ONLY.1)
            .env("HOME", self.path().join("home"))
            .env_remove("PBR_LOG")
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("PBR_HOST_KEY_CHECKING")
            .env_remove("ANSIBLE_HOST_KEY_CHECKING")
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        c.spawn().expect("run pbr")
    }
}

pub fn finish(child: Child) -> Run {
    let out = child.wait_with_output().expect("wait for pbr");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// An INI inventory line for `name` on `sshd`, logging in as `user` with the server's client key
/// (`key: false`: no key file), plus `extra` (`k=v ...`).
pub fn host_line(name: &str, sshd: &Sshd, user: &str, key: bool, extra: &str) -> String {
    let mut s = format!("{name} ansible_host={} ansible_port={} ansible_user={user}", sshd.host, sshd.port);
    if key {
        s.push_str(&format!(" ansible_ssh_private_key_file={}", sshd.client_key.display()));
    }
    if !extra.is_empty() {
        s.push(' ');
        s.push_str(extra);
    }
    s.push('\n');
    s
}

/// The lines of a shared-dir concurrency log (`counts`), as numbers.
pub fn counts(path: &Path) -> Vec<u32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .map(|w| w.parse().unwrap_or_else(|_| panic!("bad count `{w}` in {}", path.display())))
        .collect()
}

/// A shell task body that records how many hosts are inside it at once, in `DIR/counts`.
pub fn concurrency_probe(dir: &Path, hold: &str) -> String {
    let d = dir.display();
    format!("mkdir {d}/lock.$$ && ls -d {d}/lock.* | wc -l >> {d}/counts; sleep {hold}; rmdir {d}/lock.$$")
}
