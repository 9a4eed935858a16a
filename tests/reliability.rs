//! Nothing lost, nothing leaked, no crash: the real `pbr` binary killed in the middle of a
//! write, hosts racing for one directory, runaway input.

mod common;
#[path = "common/ssh.rs"]
mod lab;

use common::*;
use lab::*;
use pbr_testkit::USER;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Big enough that the copy takes a while, also locally.
const BIG: usize = 200 << 20;

const COPY: &str = r#"
- hosts: all
  gather_facts: false
  tasks:
    - name: a big file
      copy: { src: big.bin, dest: "{{ dest }}/data.bin", mode: "0644" }
"#;

/// A file of `BIG` bytes that no prefix of repeats.
fn big_src(dir: &Path) -> PathBuf {
    let p = dir.join("files/big.bin");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let mut f = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
    let mut block = vec![0u8; 1 << 20];
    for i in 0..(BIG >> 20) as u32 {
        for (j, b) in block.iter_mut().enumerate() {
            *b = (j as u32).wrapping_mul(2_654_435_761).wrapping_add(i).to_le_bytes()[1];
        }
        f.write_all(&block).unwrap();
    }
    f.flush().unwrap();
    p
}

fn temp_files(dir: &Path) -> Vec<(String, u64)> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".pbr"))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().map(|m| m.len()).unwrap_or(0)))
        .collect()
}

/// Wait until a temp file in `dest_dir` holds part of the data, then send `signal` to `pbr`;
/// check that the destination keeps its old content and that no temp file is left.
fn kill_mid_copy(mut child: Child, dest_dir: &Path, signal: &str) {
    let old = b"the old content\n";
    let start = Instant::now();
    loop {
        if let Some((_, n)) = temp_files(dest_dir).into_iter().find(|(_, n)| *n > 0) {
            assert!(n < BIG as u64 / 2, "the copy went too fast to interrupt ({n} bytes already)");
            break;
        }
        if let Some(st) = child.try_wait().unwrap() {
            let run = finish(child);
            panic!("pbr ended ({st}) before the copy started:\n{}", run.all());
        }
        assert!(start.elapsed() < Duration::from_secs(120), "the copy did not start");
        std::thread::sleep(Duration::from_millis(1));
    }
    let st = Command::new("kill").arg("-s").arg(signal).arg(child.id().to_string()).status().unwrap();
    assert!(st.success());
    let run = finish(child);
    match signal {
        "KILL" => assert_eq!(run.code, -1, "{}", run.all()),
        "TERM" => assert_eq!(run.code, 143, "{}", run.all()),
        "INT" => assert_eq!(run.code, 130, "{}", run.all()),
        _ => unreachable!(),
    }
    if signal != "KILL" {
        assert!(run.stderr.contains(&format!("stopped by SIG{signal}")), "{}", run.all());
    }
    // the host side notices the end of input, checks and cleans up on its own
    let start = Instant::now();
    while !temp_files(dest_dir).is_empty() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(temp_files(dest_dir), vec![], "a temp file was left behind after SIG{signal}");
    let now = std::fs::read(dest_dir.join("data.bin")).unwrap();
    assert!(now == old, "after SIG{signal} the destination holds {} bytes instead of its old content", now.len());
}

#[test]
fn a_killed_local_copy_leaves_the_old_file() {
    let d = tempfile::tempdir().unwrap();
    big_src(d.path());
    let dest = d.path().join("dest");
    std::fs::create_dir_all(&dest).unwrap();
    write(d.path(), "inventory.ini", &format!("h1 ansible_connection=local dest={}\n", dest.display()));
    write(d.path(), "site.yml", COPY);
    for signal in ["KILL", "TERM", "INT"] {
        std::fs::write(dest.join("data.bin"), b"the old content\n").unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_pbr"))
            .args(["run", "-i", "inventory.ini", "site.yml"])
            .current_dir(d.path())
            .env("NO_COLOR", "1")
            .env_remove("PBR_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        kill_mid_copy(child, &dest, signal);
    }
    // and uninterrupted, the copy is whole
    let run = pbr(d.path(), &["run", "-i", "inventory.ini", "site.yml"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(std::fs::metadata(dest.join("data.bin")).unwrap().len(), BIG as u64);
    assert_eq!(temp_files(&dest), vec![]);
}

#[test]
fn a_killed_ssh_copy_leaves_the_old_file() {
    if !pbr_testkit::require_sshd("a_killed_ssh_copy_leaves_the_old_file") {
        return;
    }
    let lab = Lab::new(1);
    big_src(lab.path());
    let dest = lab.target("dest", USER);
    lab.write("inventory.ini", &host_line("h1", &lab.hosts[0], USER, true, &format!("dest={}", dest.display())));
    lab.write("site.yml", COPY);
    for signal in ["KILL", "TERM", "INT"] {
        std::fs::write(dest.join("data.bin"), b"the old content\n").unwrap();
        let child = lab.spawn(&["run", "-i", "inventory.ini", "site.yml"], &[], false);
        kill_mid_copy(child, &dest, signal);
    }
}

const SHARED_PARENT: &str = r#"
- hosts: all
  gather_facts: false
  tasks:
    - name: a directory of its own under the shared parent
      file: { path: "{{ parent }}/a/b/{{ inventory_hostname }}/c", state: directory, mode: "0755" }
    - name: the same directory for every host
      file: { path: "{{ parent }}/x/y/z", state: directory }
    - name: a file of its own in the shared directory
      copy: { dest: "{{ parent }}/x/y/z/{{ inventory_hostname }}.txt", content: "hi\n" }
"#;

#[test]
fn hosts_sharing_a_parent_directory_do_not_race() {
    let d = tempfile::tempdir().unwrap();
    let hosts = ["h1", "h2", "h3", "h4", "h5", "h6"];
    let mut inv = String::from("[local]\n");
    for h in hosts {
        inv.push_str(&format!("{h} ansible_connection=local\n"));
    }
    write(d.path(), "inventory.ini", &inv);
    write(d.path(), "site.yml", SHARED_PARENT);
    for round in 0..6 {
        let parent = d.path().join(format!("round{round}"));
        let run =
            pbr(d.path(), &["run", "-i", "inventory.ini", "site.yml", "-e", &format!("parent={}", parent.display())]);
        assert_eq!(run.code, 0, "round {round}:\n{}", run.all());
        for h in hosts {
            assert!(parent.join(format!("a/b/{h}/c")).is_dir());
            assert_eq!(run.recap(h)["failed"], 0);
        }
        assert!(parent.join("x/y/z").is_dir());
    }
}
