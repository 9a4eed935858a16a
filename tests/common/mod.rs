//! Helpers for integration tests: run the real `pbr` binary on real files.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Set for every `pbr` a test starts: a connection to anything but a loopback address fails
/// at once, naming the address (tests must never send traffic off this machine).
pub const LOOPBACK_ONLY: (&str, &str) = ("PBR_TEST_LOOPBACK_ONLY", "1");

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
    /// The recap numbers for a host, e.g. `recap("h1")["changed"]`.
    pub fn recap(&self, host: &str) -> BTreeMap<String, u32> {
        let line = self
            .stdout
            .lines()
            .rev()
            .find(|l| l.split_whitespace().next() == Some(host) && l.contains("ok="))
            .unwrap_or_else(|| panic!("no recap line for {host} in:\n{}", self.all()));
        line.split_whitespace()
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_string(), v.parse().unwrap_or(0)))
            .collect()
    }
}

pub fn pbr(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_pbr"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env(LOOPBACK_ONLY.0, LOOPBACK_ONLY.1)
        .env_remove("PBR_LOG")
        .env_remove("ANSIBLE_CONFIG")
        .output()
        .expect("run pbr");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `pbr ARGS` in an empty network namespace (`unshare -n`: no interface but a down `lo`), for
/// runs that might try an address off this machine. `None` (after a loud SKIP, or a panic under
/// `CI=true`) when namespaces are not available here.
pub fn pbr_offline(dir: &Path, args: &[&str]) -> Option<Run> {
    let ok = Command::new("unshare").args(["-n", "true"]).status().map(|s| s.success()).unwrap_or(false);
    if !ok {
        let why = "`unshare -n` does not work here (needs root or user namespaces)";
        if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
            panic!("{why}");
        }
        eprintln!("\n!!!!!!!! SKIP: {why} !!!!!!!!\n");
        return None;
    }
    let out = Command::new("unshare")
        .args(["-n", "--"])
        .arg(env!("CARGO_BIN_EXE_pbr"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env(LOOPBACK_ONLY.0, LOOPBACK_ONLY.1)
        .env_remove("PBR_LOG")
        .output()
        .expect("run pbr");
    Some(Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    p
}

/// Every path under `root` with its mode and content (links as their target).
pub fn snapshot(root: &Path) -> BTreeMap<String, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, p: &Path, out: &mut BTreeMap<String, (u32, Vec<u8>)>) {
        let Ok(rd) = std::fs::read_dir(p) else { return };
        for e in rd.flatten() {
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let md = std::fs::symlink_metadata(&path).unwrap();
            let mode = md.permissions().mode();
            if md.file_type().is_symlink() {
                out.insert(rel, (mode, std::fs::read_link(&path).unwrap().display().to_string().into_bytes()));
            } else if md.is_dir() {
                out.insert(rel.clone(), (mode, vec![]));
                walk(root, &path, out);
            } else {
                out.insert(rel, (mode, std::fs::read(&path).unwrap()));
            }
        }
    }
    walk(root, root, &mut out);
    out
}

pub fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}
