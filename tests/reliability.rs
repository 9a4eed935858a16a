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

#[test]
fn a_validated_write_interrupted_during_validation_leaves_no_temp_file() {
    let d = tempfile::tempdir().unwrap();
    let dest = d.path().join("dest");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::write(dest.join("app.conf"), "good old\n").unwrap();
    write(d.path(), "inventory.ini", &format!("h1 ansible_connection=local dest={}\n", dest.display()));
    write(
        d.path(),
        "site.yml",
        r#"- hosts: all
  gather_facts: false
  tasks:
    - copy:
        dest: "{{ dest }}/app.conf"
        content: "good new\n"
        validate: "sh -c 'sleep 2; grep -q good \"$1\"' validate %s"
"#,
    );
    let child = Command::new(env!("CARGO_BIN_EXE_pbr"))
        .args(["run", "-i", "inventory.ini", "site.yml"])
        .current_dir(d.path())
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // the validation is running when its temp file is there
    let start = Instant::now();
    while temp_files(&dest).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(60), "no temp file appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(Command::new("kill").args(["-s", "KILL", &child.id().to_string()]).status().unwrap().success());
    let _ = finish(child);
    // the host received every byte: the file is validated and committed; nothing is left behind
    let start = Instant::now();
    while !temp_files(&dest).is_empty() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(temp_files(&dest), vec![], "a temp file was left behind");
    assert_eq!(std::fs::read_to_string(dest.join("app.conf")).unwrap(), "good new\n");
}

#[test]
fn validate_sees_the_task_environment_and_reports_all_its_output() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inventory.ini", "h1 ansible_connection=local\n");
    let dest = d.path().join("app.conf");
    write(
        d.path(),
        "site.yml",
        &format!(
            r#"- hosts: all
  gather_facts: false
  environment: {{ WANT: good }}
  tasks:
    - copy: {{ dest: {0}, content: "good\n", validate: "echo checking >&2; grep -q $WANT %s" }}
    - copy: {{ dest: {0}, content: "bad\n", validate: "echo checking >&2; grep -q $WANT %s" }}
"#,
            dest.display()
        ),
    );
    let run = pbr(d.path(), &["run", "-i", "inventory.ini", "site.yml"]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stdout.contains("exited 1: checking"), "{}", run.all());
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "good\n");
    assert_eq!(temp_files(d.path()), vec![]);
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

fn local_inventory(dir: &Path, hosts: &[&str]) {
    let mut inv = String::from("[local]\n");
    for h in hosts {
        inv.push_str(&format!("{h} ansible_connection=local\n"));
    }
    write(dir, "inventory.ini", &inv);
}

/// No panic, no abort: the exit code is one of pbr's own and stderr has no Rust panic.
fn no_crash(run: &Run) {
    assert!(matches!(run.code, 0 | 2 | 3 | 4), "exit code {} (a crash?):\n{}", run.code, run.all());
    assert!(!run.stderr.contains("panicked"), "{}", run.all());
    assert!(!run.stderr.contains("overflow"), "{}", run.all());
}

#[test]
fn a_static_include_cycle_is_bad_input_with_every_step_named() {
    let d = tempfile::tempdir().unwrap();
    local_inventory(d.path(), &["h1"]);
    write(d.path(), "site.yml", "- hosts: all\n  gather_facts: false\n  tasks:\n    - include_tasks: a.yml\n");
    write(d.path(), "a.yml", "- debug: msg=a\n- include_tasks: b.yml\n");
    write(d.path(), "b.yml", "- include_tasks: a.yml\n");
    for args in
        [&["run", "-i", "inventory.ini", "site.yml"][..], &["run", "-i", "inventory.ini", "site.yml", "--check"]]
    {
        let run = pbr(d.path(), args);
        no_crash(&run);
        assert_eq!(run.code, 4, "{}", run.all());
        assert!(run.stderr.contains("include cycle"), "{}", run.all());
        assert!(run.stderr.contains("a.yml:2:3 includes"), "{}", run.all());
        assert!(run.stderr.contains("b.yml:1:3 includes"), "{}", run.all());
        assert!(!run.stdout.contains("TASK ["), "a host was touched:\n{}", run.all());
    }
    let lint = pbr(d.path(), &["lint", "-i", "inventory.ini", "site.yml"]);
    assert_eq!(lint.code, 2, "{}", lint.all());
    assert!(lint.all().contains("include cycle"), "{}", lint.all());
}

#[test]
fn a_role_that_includes_itself_is_refused() {
    let d = tempfile::tempdir().unwrap();
    local_inventory(d.path(), &["h1"]);
    write(d.path(), "site.yml", "- hosts: all\n  gather_facts: false\n  roles: [r]\n");
    write(d.path(), "roles/r/tasks/main.yml", "- debug: msg=r\n- include_role: { name: r }\n");
    let run = pbr(d.path(), &["run", "-i", "inventory.ini", "site.yml", "--check"]);
    no_crash(&run);
    assert_eq!(run.code, 4, "{}", run.all());
    assert!(run.stderr.contains("include cycle"), "{}", run.all());
    assert!(run.stderr.contains("main.yml:2:3 includes"), "{}", run.all());
}

#[test]
fn a_dynamic_include_cycle_fails_the_task_cleanly() {
    let d = tempfile::tempdir().unwrap();
    local_inventory(d.path(), &["h1"]);
    // the file name is templated: the cycle is found only when the include runs
    write(
        d.path(),
        "site.yml",
        "- hosts: all\n  gather_facts: false\n  vars: { next: a }\n  tasks:\n    - include_tasks: \"{{ next }}.yml\"\n",
    );
    write(d.path(), "a.yml", "- include_tasks: \"{{ 'b' }}.yml\"\n");
    write(d.path(), "b.yml", "- include_tasks: \"{{ next }}.yml\"\n");
    for check in [false, true] {
        let mut args = vec!["run", "-i", "inventory.ini", "site.yml"];
        if check {
            args.push("--check");
        }
        let run = pbr(d.path(), &args);
        no_crash(&run);
        assert_eq!(run.code, 2, "{}", run.all());
        assert!(run.stdout.contains("nested more than 64 deep, in a loop that never ends"), "{}", run.all());
        assert!(run.stdout.contains("a.yml:1:3 includes"), "{}", run.all());
        assert!(run.stdout.contains("b.yml:1:3 includes"), "{}", run.all());
        assert_eq!(run.recap("h1")["failed"], 1, "{}", run.all());
    }
}

#[test]
fn set_fact_outranks_play_vars_as_in_ansible() {
    let d = tempfile::tempdir().unwrap();
    local_inventory(d.path(), &["h1"]);
    write(
        d.path(),
        "site.yml",
        r#"- hosts: all
  gather_facts: false
  vars: { n: 0 }
  tasks:
    - set_fact: { n: "{{ n | int + 1 }}" }
    - set_fact: { n: "{{ n | int + 1 }}" }
    - debug: msg="n is {{ n }}"
      vars: { n: 9 }
    - debug: msg="n is {{ n }}"
"#,
    );
    let run = pbr(d.path(), &["run", "-i", "inventory.ini", "site.yml"]);
    assert_eq!(run.code, 0, "{}", run.all());
    // set_fact (and registered results) outrank play and task vars; extra vars outrank all
    assert_eq!(run.stdout.matches("n is 2").count(), 2, "{}", run.all());
    let run = pbr(d.path(), &["run", "-i", "inventory.ini", "site.yml", "-e", "n=7"]);
    assert_eq!(run.stdout.matches("n is 7").count(), 2, "{}", run.all());
}

#[test]
fn an_include_that_a_when_ends_may_include_itself() {
    // Ansible runs this recursion; pbr does too, and lint does not call it a cycle
    let d = tempfile::tempdir().unwrap();
    local_inventory(d.path(), &["h1"]);
    write(
        d.path(),
        "site.yml",
        "- hosts: all\n  gather_facts: false\n  vars: { depth: 0 }\n  tasks:\n    - include_tasks: down.yml\n",
    );
    write(
        d.path(),
        "down.yml",
        "- set_fact: { depth: \"{{ depth | int + 1 }}\" }\n- include_tasks: down.yml\n  when: depth | int < 5\n\
         - debug: msg=\"back at {{ depth }}\"\n",
    );
    let lint = pbr(d.path(), &["lint", "site.yml"]);
    assert_eq!(lint.code, 0, "{}", lint.all());
    let run = pbr(d.path(), &["run", "-i", "inventory.ini", "site.yml"]);
    no_crash(&run);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(run.stdout.matches("back at 5").count(), 5, "{}", run.all());
    // without the `when:` it never ends: lint says so, and run refuses it before anything runs
    write(d.path(), "down.yml", "- set_fact: { depth: \"{{ depth | int + 1 }}\" }\n- include_tasks: down.yml\n");
    let lint = pbr(d.path(), &["lint", "site.yml"]);
    assert_eq!(lint.code, 2, "{}", lint.all());
    assert!(lint.all().contains("include cycle: down.yml:2:3 includes down.yml"), "{}", lint.all());
    let run = pbr(d.path(), &["run", "-i", "inventory.ini", "site.yml"]);
    assert_eq!(run.code, 4, "{}", run.all());
    assert!(!run.stdout.contains("TASK ["), "{}", run.all());
}

#[test]
fn a_template_that_looks_itself_up_stops_with_an_error() {
    let d = tempfile::tempdir().unwrap();
    local_inventory(d.path(), &["h1"]);
    write(d.path(), "templates/self.j2", "x{{ lookup('template', 'self.j2') }}\n");
    write(
        d.path(),
        "site.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: msg=\"{{ lookup('template', 'self.j2') }}\"\n",
    );
    let run = pbr(d.path(), &["run", "-i", "inventory.ini", "site.yml"]);
    no_crash(&run);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stdout.contains("looks itself up"), "{}", run.all());
}

#[test]
fn a_runaway_template_stops_at_its_budget_which_the_user_can_raise() {
    let d = tempfile::tempdir().unwrap();
    local_inventory(d.path(), &["h1"]);
    write(
        d.path(),
        "site.yml",
        r#"- hosts: all
  gather_facts: false
  tasks:
    - debug:
        msg: "{% set n = namespace(i=0) %}{% for a in range(3000) %}{% for b in range(3000) %}{% set n.i = n.i + 1 %}{% endfor %}{% endfor %}{{ n.i }}"
"#,
    );
    let run = pbr(d.path(), &["run", "-i", "inventory.ini", "site.yml"]);
    no_crash(&run);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stdout.contains("evaluation budget"), "{}", run.all());
    assert!(run.stdout.contains("PBR_TEMPLATE_BUDGET"), "{}", run.all());
    let out = Command::new(env!("CARGO_BIN_EXE_pbr"))
        .args(["run", "-i", "inventory.ini", "site.yml"])
        .current_dir(d.path())
        .env("NO_COLOR", "1")
        .env("PBR_TEMPLATE_BUDGET", "0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("9000000"), "{stdout}");
}

#[test]
fn a_variable_defined_through_itself_is_named_as_recursion() {
    let d = tempfile::tempdir().unwrap();
    local_inventory(d.path(), &["h1"]);
    write(
        d.path(),
        "site.yml",
        r#"- hosts: all
  gather_facts: false
  vars:
    path: "{{ path }}/x"
    a: "{{ b }}"
    b: "{{ a }}"
  tasks:
    - debug: msg="{{ path }}"
      ignore_errors: true
    - debug: msg="{{ a }}"
"#,
    );
    let run = pbr(d.path(), &["run", "-i", "inventory.ini", "site.yml"]);
    no_crash(&run);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stdout.contains("'path' is defined through itself (path → path)"), "{}", run.all());
    assert!(run.stdout.contains("'a' is defined through itself (a → b → a)"), "{}", run.all());
    assert!(!run.stdout.contains("is undefined"), "{}", run.all());
}

/// Times from playbooks are whatever users write: a negative `delay` or loop `pause`, a
/// timeout past what a `Duration` holds, a negative `pause`. None of them panics (each used to:
/// `Duration::from_secs_f64` refuses them); the ones Ansible refuses fail their task.
#[test]
fn out_of_range_times_fail_or_clamp_but_never_panic() {
    let d = tempfile::tempdir().unwrap();
    local_inventory(d.path(), &["h1"]);
    write(
        d.path(),
        "site.yml",
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - command: "false"
      register: r
      until: r.rc == 0
      retries: 1
      delay: -1
      ignore_errors: true
    - debug: { msg: "{{ item }}" }
      loop: [1, 2]
      loop_control: { pause: -1 }
    - command: "true"
      timeout: 1e300
    - pause: { seconds: -1 }
      ignore_errors: true
    - wait_for_connection: { timeout: 1e300 }
      ignore_errors: true
"#,
    );
    let run = pbr(d.path(), &["run", "-i", "inventory.ini", "site.yml"]);
    no_crash(&run);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(run.recap("h1")["ignored"], 3, "{}", run.all());
    assert!(run.stdout.contains("seconds must be a number from 0"), "{}", run.all());
    assert!(run.stdout.contains("timeout must be a number from 0"), "{}", run.all());
}

#[test]
fn a_very_long_host_name_is_reported() {
    let d = tempfile::tempdir().unwrap();
    let long = "h".repeat(70_000);
    local_inventory(d.path(), &[&long]);
    write(d.path(), "site.yml", "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: msg=hi\n");
    let run = pbr(d.path(), &["run", "-i", "inventory.ini", "site.yml"]);
    no_crash(&run);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(run.recap(&long)["ok"], 1);
}

#[test]
fn non_utf8_files_are_named_at_their_first_bad_byte() {
    let d = tempfile::tempdir().unwrap();
    local_inventory(d.path(), &["h1"]);
    let dest = d.path().join("out.txt");
    // a playbook
    std::fs::write(d.path().join("bad.yml"), b"- hosts: all\n  tasks:\n    - debug: msg=caf\xe9\n").unwrap();
    let run = pbr(d.path(), &["run", "-i", "inventory.ini", "bad.yml"]);
    no_crash(&run);
    assert_eq!(run.code, 4, "{}", run.all());
    assert!(run.stderr.contains("bad.yml:3:21"), "{}", run.all());
    assert!(run.stderr.contains("not UTF-8"), "{}", run.all());
    let lint = pbr(d.path(), &["lint", "--format", "json", "-i", "inventory.ini", "bad.yml"]);
    assert!(
        lint.stdout.contains("\"rule\":\"encoding\"") || lint.stdout.contains("\"rule\": \"encoding\""),
        "{}",
        lint.all()
    );
    assert!(!lint.stdout.contains("missing-file"), "{}", lint.all());
    // a template: refused before any host is touched
    std::fs::create_dir_all(d.path().join("templates")).unwrap();
    std::fs::write(d.path().join("templates/t.j2"), b"ok\nline two \xff\xfe\n").unwrap();
    write(
        d.path(),
        "tmpl.yml",
        &format!(
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - copy: {{ dest: {}, content: x }}\n    - template: {{ src: t.j2, dest: {} }}\n",
            d.path().join("first.txt").display(),
            dest.display()
        ),
    );
    let run = pbr(d.path(), &["run", "-i", "inventory.ini", "tmpl.yml"]);
    no_crash(&run);
    assert_eq!(run.code, 4, "{}", run.all());
    assert!(run.stderr.contains("t.j2:2:10"), "{}", run.all());
    assert!(!d.path().join("first.txt").exists(), "a host was touched before the bad template was found");
    // an inventory
    std::fs::write(d.path().join("bad.ini"), b"[g]\nh\xc3\x28 ansible_connection=local\n").unwrap();
    let run = pbr(d.path(), &["run", "-i", "bad.ini", "tmpl.yml"]);
    no_crash(&run);
    assert_eq!(run.code, 4, "{}", run.all());
    assert!(run.stderr.contains("bad.ini:2:2"), "{}", run.all());
}

/// Every secret below starts with this: no output, retry file or leftover file may contain it.
const MARK: &str = "SeCrEt";

const SECRETS: &str = r#"
- hosts: all
  gather_facts: false
  vars_files: [secrets.yml]
  tasks:
    - name: a command line with secrets
      command: "echo {{ extra_secret }} {{ inv_secret }} {{ file_secret }}"
      no_log: true
      register: echoed
      changed_when: true
    - name: a file with a secret, shown as a diff
      copy: { dest: "{{ root }}/secret.txt", content: "{{ nolog_secret }}\n", mode: "0600" }
      no_log: true
    - name: a line with a secret
      lineinfile: { path: "{{ root }}/lines.txt", line: "password={{ nolog_secret }}", create: true }
      no_log: true
    - name: a loop over secrets
      shell: "test -n {{ item }}"
      loop: ["{{ extra_secret }}", "{{ inv_secret }}"]
      no_log: true
    - name: a failing command with a secret on stderr
      shell: "echo {{ inv_secret }} >&2; exit 3"
      no_log: true
      ignore_errors: true
    - name: a block of no_log tasks
      no_log: true
      block:
        - set_fact: { derived: "{{ file_secret }}-x" }
        - command: "printf %s {{ derived }}"
          register: printed
    - name: the registered results, printed later
      debug: { var: echoed }
    - debug: { msg: "{{ echoed.stdout | default('') }} {{ printed.stdout | default('') }}" }
    - name: become with a password
      command: whoami
      become: true
      when: inventory_hostname == 'ssh'
    - name: a wireless network
      wpa:
        interface: wlan0
        path: "{{ root }}/wpa.conf"
        networks: [{ ssid: home, psk: "{{ wpa_secret }}" }]
    - name: an iSCSI login with CHAP
      iscsi:
        portal: 127.0.0.1
        target: iqn.2024-01.lan.storage:t
        chap_userid: me
        chap_password: "{{ chap_secret }}"
      when: inventory_hostname == 'local' and ansible_check_mode
      ignore_errors: true
    - name: an iSCSI target with CHAP
      targetcli:
        targets:
          - iqn: iqn.2024-01.lan.storage:t
            acls:
              - initiator: iqn.2024-01.lan.pi:init
                chap_userid: me
                chap_password: "{{ chap_secret }}"
      when: inventory_hostname == 'local' and ansible_check_mode
      ignore_errors: true
    - name: the end (a retry file is written)
      fail: { msg: "done" }
"#;

/// Every file under `dir` whose content contains `needle`, except `skip`.
fn files_containing(dir: &Path, needle: &str, skip: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(files_containing(&p, needle, skip));
        } else if p.is_file()
            && !skip.iter().any(|s| p.ends_with(s))
            && let Ok(b) = std::fs::read(&p)
            && b.windows(needle.len()).any(|w| w == needle.as_bytes())
        {
            out.push(p.display().to_string());
        }
    }
    out
}

#[test]
fn no_secret_reaches_any_output() {
    if !pbr_testkit::require_sshd_sudo_agent("no_secret_reaches_any_output") {
        return;
    }
    let lab = Lab::new(1);
    let ssh_root = lab.target("ssh", pbr_testkit::PW_USER);
    let local_root = lab.path().join("targets/local");
    std::fs::create_dir_all(&local_root).unwrap();
    let mut inv = host_line(
        "ssh",
        &lab.hosts[0],
        pbr_testkit::PW_USER,
        true,
        &format!("root={} ansible_become_password={}", ssh_root.display(), pbr_testkit::SUDO_PASSWORD),
    );
    inv.push_str(&format!("local ansible_connection=local root={}\n", local_root.display()));
    inv.push_str("[all:vars]\ninv_secret=SeCrEtInventory1\n");
    lab.write("inventory.ini", &inv);
    lab.write("secrets.yml", "file_secret: SeCrEtVarsFile1\nnolog_secret: SeCrEtNoLog1\nwpa_secret: SeCrEtWpa1x\nchap_secret: SeCrEtChap1234\n");
    lab.write("site.yml", SECRETS);
    let runs: [&[&str]; 5] = [
        &["-vvv", "--diff"],
        &["--output", "json", "--diff"],
        &["--check", "--diff", "-vvv"],
        &["--check", "--output", "json", "-vvv"],
        &["-v"],
    ];
    for extra in runs {
        let mut args = vec!["run", "-i", "inventory.ini", "site.yml", "-e", "extra_secret=SeCrEtExtraVar1"];
        args.extend_from_slice(extra);
        let run = lab.pbr(&args);
        assert_eq!(run.code, 2, "{extra:?}:\n{}", run.all());
        for h in ["ssh", "local"] {
            // every task ran up to the final `fail`
            assert!(
                run.all().contains(&format!("[{h}]")) || run.all().contains(&format!("\"host\":\"{h}\"")),
                "{}",
                run.all()
            );
        }
        let all = run.all();
        for needle in [MARK, pbr_testkit::SUDO_PASSWORD] {
            let leaks: Vec<&str> = all.lines().filter(|l| l.contains(needle)).collect();
            assert!(leaks.is_empty(), "{extra:?}: a secret in the output:\n{}", leaks.join("\n"));
        }
        // what the output does show: the tasks by name and their status; a task that uses
        // what a no_log task registered is no_log too
        assert!(run.stdout.contains("a command line with secrets"), "{}", run.all());
        let hidden = all.lines().filter(|l| l.contains("hidden due to 'no_log: true'")).count();
        assert!(hidden >= 4, "{extra:?}: {}", run.all());
    }
    let retry = std::fs::read_to_string(lab.path().join("site.retry")).expect("a retry file");
    assert!(!retry.contains(MARK), "{retry}");
    // the files pbr leaves: none holds a secret, but the one the playbook wrote it to (and the
    // inventory and vars file it came from)
    let skip = ["secret.txt", "lines.txt", "inventory.ini", "secrets.yml", "site.yml"];
    for needle in [MARK, pbr_testkit::SUDO_PASSWORD] {
        assert_eq!(files_containing(lab.path(), needle, &skip), Vec::<String>::new(), "{needle}");
    }
    // the wireless passphrase is turned into the PSK on the controller
    let wpa = std::fs::read_to_string(ssh_root.join("wpa.conf")).unwrap();
    assert!(wpa.contains("psk=") && !wpa.contains("SeCrEtWpa1x"), "{wpa}");
}
