//! `pbr run` end to end over real SSH: throwaway sshd servers on 127.0.0.N (pbr-testkit), the
//! real binary, real files on the targets (which are this machine, reached as the test users).

mod common;
#[path = "common/ssh.rs"]
mod lab;

use common::*;
use lab::*;
use pbr_testkit::{Agent, PW_USER, SUDO_PASSWORD, USER};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

fn skip(test: &str) -> bool {
    !pbr_testkit::require_sshd_sudo_agent(test)
}

const MATRIX: &str = r#"
- name: module matrix
  hosts: all
  gather_facts: false
  tasks:
    - name: a directory
      file: { path: "{{ root }}/etc", state: directory, mode: "0755" }
    - name: a file with content
      copy: { dest: "{{ root }}/etc/motd", content: "hello {{ inventory_hostname }}\n", mode: "0644" }
    - name: a template, only when missing
      template: { src: app.conf.j2, dest: "{{ root }}/etc/app.conf", force: false }
    - name: a line
      lineinfile: { path: "{{ root }}/etc/lines.conf", line: "extra=1", create: true }
    - name: a block
      blockinfile:
        path: "{{ root }}/etc/profile"
        create: true
        block: |
          managed
          block
    - name: a replace
      replace: { path: "{{ root }}/etc/app.conf", regexp: '^port=.*$', replace: 'port=2222' }
    - name: a command guarded by creates
      command: "touch {{ root }}/etc/stamp"
      args: { creates: "{{ root }}/etc/stamp" }
    - name: the motd back on the controller
      fetch: { src: "{{ root }}/etc/motd", dest: fetched }
    - name: stat the motd
      stat: { path: "{{ root }}/etc/motd" }
      register: motd
    - name: the motd is as written
      assert:
        that:
          - motd.stat.exists
          - motd.stat.mode == '0644'
          - motd.stat.pw_name == ansible_user
      when: not ansible_check_mode
"#;

#[test]
fn module_matrix_converges_is_idempotent_and_check_writes_nothing() {
    if skip("module_matrix_converges_is_idempotent_and_check_writes_nothing") {
        return;
    }
    let t0 = Instant::now();
    let lab = Lab::new(3);
    let names = ["web1", "web2", "web3"];
    let mut inv = String::from("[web]\n");
    for (n, s) in names.iter().zip(&lab.hosts) {
        lab.target(&format!("a/{n}"), USER);
        lab.target(&format!("b/{n}"), USER);
        inv.push_str(&host_line(n, s, USER, true, ""));
    }
    inv.push_str(&format!(
        "[web:vars]\nbase={}/targets/a\nroot={{{{ base }}}}/{{{{ inventory_hostname }}}}\n",
        lab.path().display()
    ));
    lab.write("inventory.ini", &inv);
    lab.write("site.yml", MATRIX);
    lab.write("templates/app.conf.j2", "name={{ inventory_hostname }}\nport=22\n");

    // check + diff against fresh targets: the plan is shown, nothing is written; later tasks see
    // what earlier planned ops would make (the replace edits the file the template would write),
    // so the changed count is the one the real run then reports
    let fresh = lab.path().join("targets/b");
    let before = snapshot(&fresh);
    let b = format!("base={}", fresh.display());
    let r = lab.pbr(&["run", "site.yml", "-i", "inventory.ini", "--check", "--diff", "-e", &b]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(snapshot(&fresh), before, "check mode wrote to a target:\n{}", r.all());
    for n in names {
        assert!(r.stdout.contains(&format!("+hello {n}")), "{}", r.stdout);
        assert!(r.stdout.contains(&format!("+name={n}")), "{}", r.stdout);
        assert_eq!((r.recap(n)["changed"], r.recap(n)["failed"]), (8, 0), "{n}: {}", r.all());
    }
    assert!(r.stdout.contains("-port=22\n+port=2222"), "{}", r.stdout);
    assert!(r.stdout.contains("+extra=1") && r.stdout.contains("+managed"), "{}", r.stdout);
    assert!(!lab.path().join("site.retry").exists());
    assert!(!lab.path().join("fetched").exists(), "check mode fetched a file");

    // converge
    let logins =
        |lab: &Lab| -> Vec<usize> { lab.hosts.iter().map(|s| s.log().matches("Accepted publickey").count()).collect() };
    let before = logins(&lab);
    let r = lab.pbr(&["run", "site.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 0, "{}", r.all());
    // one connection per host for the whole run
    let after = logins(&lab);
    assert!(before.iter().zip(&after).all(|(b, a)| a - b == 1), "logins {before:?} -> {after:?}");
    for n in names {
        let rc = r.recap(n);
        assert_eq!((rc["changed"], rc["ok"], rc["failed"]), (8, 10, 0), "{n}: {}", r.all());
        let root = lab.path().join("targets/a").join(n);
        // fetched over the same connection, into a tree per host beside the playbook
        let fetched = lab.path().join("fetched").join(n).join(root.strip_prefix("/").unwrap()).join("etc/motd");
        assert_eq!(std::fs::read_to_string(&fetched).unwrap(), format!("hello {n}\n"));
        assert_eq!(std::fs::read_to_string(root.join("etc/motd")).unwrap(), format!("hello {n}\n"));
        assert_eq!(std::fs::read_to_string(root.join("etc/app.conf")).unwrap(), format!("name={n}\nport=2222\n"));
        assert_eq!(std::fs::read_to_string(root.join("etc/lines.conf")).unwrap(), "extra=1\n");
        assert_eq!(
            std::fs::read_to_string(root.join("etc/profile")).unwrap(),
            "# BEGIN ANSIBLE MANAGED BLOCK\nmanaged\nblock\n# END ANSIBLE MANAGED BLOCK\n"
        );
        assert!(root.join("etc/stamp").exists());
        assert_eq!(mode_of(&root.join("etc/motd")), 0o644);
        // written by the login user, not by root
        let uid = std::fs::metadata(root.join("etc/motd")).unwrap().uid();
        assert_eq!(uid, std::fs::metadata(&root).unwrap().uid());
        assert_ne!(uid, 0);
    }

    // a second run changes nothing, and --verify agrees
    let r = lab.pbr(&["run", "site.yml", "-i", "inventory.ini", "--verify"]);
    assert_eq!(r.code, 0, "{}", r.all());
    for n in names {
        assert_eq!((r.recap(n)["changed"], r.recap(n)["ok"]), (0, 10), "{}", r.all());
    }

    // drift on one host: --diff shows exactly that edit, and only that host changes
    let conf = lab.path().join("targets/a/web2/etc/app.conf");
    std::fs::write(&conf, "name=web2\nport=22\n").unwrap();
    let r = lab.pbr(&["run", "site.yml", "-i", "inventory.ini", "--diff"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("-port=22\n+port=2222"), "{}", r.stdout);
    assert_eq!(r.recap("web2")["changed"], 1, "{}", r.all());
    assert_eq!(r.recap("web1")["changed"], 0, "{}", r.all());
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "name=web2\nport=2222\n");
    eprintln!("module matrix: {:?}", t0.elapsed());
}

const BECOME: &str = r#"
- hosts: all
  gather_facts: false
  tasks:
    - name: id as root
      command: id -u
      become: true
      register: idu
      changed_when: false
    - name: id without become
      command: id -un
      register: me
      changed_when: false
    - assert:
        that:
          - idu.stdout == '0'
          - me.stdout == ansible_user
    - name: a root-owned file
      copy: { dest: "{{ root }}/rootfile", content: "for root\n", mode: "0600" }
      become: true
    - stat: { path: "{{ root }}/rootfile" }
      become: true
      register: rf
    - assert: { that: ["rf.stat.uid == 0", "rf.stat.mode == '0600'"] }
"#;

#[test]
fn become_root_with_and_without_a_sudo_password() {
    if skip("become_root_with_and_without_a_sudo_password") {
        return;
    }
    let t0 = Instant::now();
    let lab = Lab::new(2);
    let (s1, s2) = (&lab.hosts[0], &lab.hosts[1]);
    let r1 = lab.target("nopw", USER);
    let r2 = lab.target("pw", PW_USER);
    let inv = format!(
        "{}{}",
        host_line("nopw", s1, USER, true, &format!("root={}", r1.display())),
        host_line("pw", s2, PW_USER, true, &format!("root={}", r2.display()))
    );
    lab.write("inventory.ini", &inv);
    lab.write("become.yml", BECOME);

    // without a password, the sudo-password host fails and says why; the other converges
    let r = lab.pbr(&["run", "become.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert_eq!(r.recap("pw")["failed"], 1, "{}", r.all());
    assert!(r.stdout.contains("sudo: a password is required"), "{}", r.stdout);
    assert_eq!(r.recap("nopw")["failed"], 0, "{}", r.all());
    let md = std::fs::metadata(r1.join("rootfile")).unwrap();
    assert_eq!((md.uid(), md.mode() & 0o7777), (0, 0o600));
    assert!(!r2.join("rootfile").exists());

    // -K with nothing on stdin: no password, nothing is run
    let r = lab.pbr(&["run", "become.yml", "-i", "inventory.ini", "-K"]);
    assert_eq!(r.code, 4, "{}", r.all());
    assert!(r.stderr.contains("could not read the become password"), "{}", r.all());
    assert!(!r.stdout.contains("TASK"), "{}", r.all());

    // -K: the password on pbr's stdin
    let r = lab.pbr_with(
        &["run", "become.yml", "-i", "inventory.ini", "-K", "-vvv"],
        &[],
        Some(&format!("{SUDO_PASSWORD}\n")),
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.recap("pw")["changed"], 1, "{}", r.all());
    assert_eq!(r.recap("nopw")["changed"], 0, "{}", r.all());
    assert!(!r.all().contains(SUDO_PASSWORD), "the password leaked:\n{}", r.all());
    let md = std::fs::metadata(r2.join("rootfile")).unwrap();
    assert_eq!((md.uid(), md.mode() & 0o7777), (0, 0o600));

    // ansible_become_password from the inventory, with verbose and JSON output
    std::fs::remove_file(r2.join("rootfile")).unwrap();
    lab.write("inventory.ini", &format!("{inv}[all:vars]\nansible_become_password={SUDO_PASSWORD}\n"));
    for args in [&["-vvv"][..], &["--output", "json", "-vvv"][..], &["--diff", "-vvv"][..]] {
        let mut a = vec!["run", "become.yml", "-i", "inventory.ini"];
        a.extend_from_slice(args);
        let r = lab.pbr(&a);
        assert_eq!(r.code, 0, "{args:?}: {}", r.all());
        assert!(!r.all().contains(SUDO_PASSWORD), "{args:?}: the password leaked:\n{}", r.all());
        assert!(r2.join("rootfile").exists());
        if args[0] == "--output" {
            for l in r.stdout.lines() {
                serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}"));
            }
        }
    }
    // a wrong password fails cleanly, and is not shown either
    lab.write("inventory.ini", &format!("{inv}[all:vars]\nansible_become_password=wrong-pw-123\n"));
    let r = lab.pbr(&["run", "become.yml", "-i", "inventory.ini", "-vvv", "-l", "pw"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(!r.all().contains("wrong-pw-123"), "the password leaked:\n{}", r.all());
    assert!(r.stdout.contains("incorrect password"), "{}", r.stdout);

    // a failed command shows its stderr, unless the task is no_log
    lab.write(
        "nolog.yml",
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - shell: echo "visible-err" >&2; exit 4
      ignore_errors: true
    - shell: echo "token-{{ 6 * 7 }}-hidden" >&2; exit 5
      no_log: true
"#,
    );
    let r = lab.pbr(&["run", "nolog.yml", "-i", "inventory.ini", "-l", "nopw", "-vvv"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stdout.contains("(rc=4): visible-err"), "{}", r.stdout);
    assert!(!r.all().contains("token-42-hidden"), "no_log output shown:\n{}", r.all());
    assert!(r.stdout.contains("no_log"), "{}", r.stdout);
    eprintln!("become: {:?}", t0.elapsed());
}

const PING: &str = r#"
- hosts: all
  gather_facts: false
  tasks:
    - command: "true"
      changed_when: false
"#;

#[test]
fn host_keys_unknown_accept_new_and_changed() {
    if skip("host_keys_unknown_accept_new_and_changed") {
        return;
    }
    let t0 = Instant::now();
    let lab = Lab::new(2);
    let (s, other) = (&lab.hosts[0], &lab.hosts[1]);
    lab.write("inventory.ini", &host_line("h", s, USER, true, ""));
    lab.write("ping.yml", PING);
    let kh = lab.known_hosts();

    // unknown: refused by default, and the message says what to do
    lab.write_known_hosts(&[]);
    let r = lab.pbr(&["run", "ping.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert_eq!(r.recap("h")["unreachable"], 1, "{}", r.all());
    assert!(r.stdout.contains("UNREACHABLE!"), "{}", r.stdout);
    assert!(r.stdout.contains("is unknown"), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("ssh-keyscan -p {} {}", s.port, s.host)), "{}", r.stdout);
    assert!(r.stdout.contains("--host-key-checking accept-new"), "{}", r.stdout);
    assert_eq!(std::fs::read_to_string(lab.path().join("ping.retry")).unwrap(), "h\n");

    // accept-new: connects and records the key
    let r = lab.pbr(&["run", "ping.yml", "-i", "inventory.ini", "--host-key-checking", "accept-new"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let text = std::fs::read_to_string(&kh).unwrap();
    assert!(text.contains(&s.host_public_key), "{text}");
    assert!(!lab.path().join("ping.retry").exists());
    // and the recorded key is then enough under the default policy
    let r = lab.pbr(&["run", "ping.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 0, "{}", r.all());

    // a different key on record: refused in every mode but off, naming file:line
    lab.write_known_hosts(&["# the lab's hosts".into(), format!("[{}]:{} {}", s.host, s.port, other.host_public_key)]);
    for mode in [None, Some("accept-new")] {
        let mut a = vec!["run", "ping.yml", "-i", "inventory.ini"];
        if let Some(m) = mode {
            a.extend(["--host-key-checking", m]);
        }
        let r = lab.pbr(&a);
        assert_eq!(r.code, 3, "{mode:?}: {}", r.all());
        assert!(r.stdout.contains("HOST KEY CHANGED"), "{}", r.stdout);
        assert!(r.stdout.contains(&format!("{}:2", kh.display())), "{}", r.stdout);
    }
    assert!(!std::fs::read_to_string(&kh).unwrap().contains(&s.host_public_key));
    let r = lab.pbr(&["run", "ping.yml", "-i", "inventory.ini", "--host-key-checking", "off"]);
    assert_eq!(r.code, 0, "{}", r.all());
    eprintln!("host keys: {:?}", t0.elapsed());
}

#[test]
fn proxy_jump_through_a_second_sshd() {
    if skip("proxy_jump_through_a_second_sshd") {
        return;
    }
    let t0 = Instant::now();
    let mut lab = Lab::new(2);
    let root = lab.target("t", USER);
    {
        let (target, jump) = (&lab.hosts[0], &lab.hosts[1]);
        // the jump host's key comes from ssh_config, the target's from the inventory
        lab.write_ssh_config(&format!("Host {}\n  IdentityFile {}\n", jump.host, jump.client_key.display()));
        let extra = format!("root={} ansible_ssh_common_args='-J {USER}@{}:{}'", root.display(), jump.host, jump.port);
        lab.write("inventory.ini", &host_line("t", target, USER, true, &extra));
    }
    lab.write(
        "jump.yml",
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - shell: echo "$SSH_CONNECTION" > {{ root }}/conn
    - copy: { dest: "{{ root }}/via-jump", content: "ok\n" }
"#,
    );
    let r = lab.pbr(&["run", "jump.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.recap("t")["changed"], 2, "{}", r.all());
    assert_eq!(std::fs::read_to_string(root.join("via-jump")).unwrap(), "ok\n");
    let (target, jump) = (&lab.hosts[0], &lab.hosts[1]);
    let conn = std::fs::read_to_string(root.join("conn")).unwrap();
    assert!(conn.contains(&format!("{} {}", target.host, target.port)), "{conn}");
    // the jump host authenticated the run (it is no inventory host)
    assert!(jump.log().contains(&format!("Accepted publickey for {USER}")), "{}", jump.log());
    // without the jump host the target is unreachable, and the message names the hop
    let jump_addr = format!("{}:{}", jump.host, jump.port);
    lab.hosts[1].kill();
    let r = lab.pbr(&["run", "jump.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert_eq!(r.recap("t")["unreachable"], 1, "{}", r.all());
    assert!(r.stdout.contains(&jump_addr), "{}", r.stdout);
    eprintln!("proxy jump: {:?}", t0.elapsed());
}

#[test]
fn agent_auth_without_a_key_file() {
    if skip("agent_auth_without_a_key_file") {
        return;
    }
    let t0 = Instant::now();
    let lab = Lab::new(1);
    let s = &lab.hosts[0];
    let root = lab.target("a", USER);
    lab.write("inventory.ini", &host_line("a", s, USER, false, &format!("root={}", root.display())));
    lab.write(
        "agent.yml",
        r#"
- hosts: all
  tasks:
    - copy: { dest: "{{ root }}/by-agent", content: "{{ ansible_user_id }} {{ ansible_facts.system }}\n" }
"#,
    );
    // no agent, no key: authentication fails
    let r = lab.pbr(&["run", "agent.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(r.stdout.contains("authentication failed"), "{}", r.stdout);
    let agent = Agent::start().unwrap();
    agent.add(&s.client_key).unwrap();
    let sock = agent.socket.display().to_string();
    let r = lab.pbr_with(&["run", "agent.yml", "-i", "inventory.ini"], &[("SSH_AUTH_SOCK", &sock)], None);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.recap("a")["changed"], 1, "{}", r.all());
    // facts were gathered over the same connection
    assert_eq!(std::fs::read_to_string(root.join("by-agent")).unwrap(), format!("{USER} Linux\n"));
    assert_eq!(r.recap("a")["ok"], 2, "{}", r.all());
    eprintln!("agent: {:?}", t0.elapsed());
}

#[test]
fn sshd_killed_mid_run_marks_only_that_host_unreachable() {
    if skip("sshd_killed_mid_run_marks_only_that_host_unreachable") {
        return;
    }
    let t0 = Instant::now();
    let mut lab = Lab::new(3);
    let names = ["k1", "k2", "k3"];
    let mut inv = String::new();
    for (n, s) in names.iter().zip(&lab.hosts) {
        let root = lab.target(n, USER);
        inv.push_str(&host_line(n, s, USER, true, &format!("root={}", root.display())));
    }
    lab.write("inventory.ini", &inv);
    lab.write(
        "long.yml",
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - copy: { dest: "{{ root }}/first", content: "1\n" }
    - shell: touch {{ root }}/started; sleep 2
    - copy: { dest: "{{ root }}/last", content: "3\n" }
    - command: "true"
"#,
    );
    let child = lab.spawn(&["run", "long.yml", "-i", "inventory.ini"], &[], false);
    let started = lab.path().join("targets/k2/started");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !started.exists() {
        assert!(Instant::now() < deadline, "the sleep task never started on k2");
        std::thread::sleep(Duration::from_millis(20));
    }
    lab.hosts[1].kill();
    let r = finish(child);
    assert_eq!(r.code, 3, "{}", r.all());
    let rc = r.recap("k2");
    assert_eq!((rc["unreachable"], rc["failed"], rc["ok"]), (1, 0, 1), "{}", r.all());
    assert!(!lab.path().join("targets/k2/last").exists());
    for n in ["k1", "k3"] {
        let rc = r.recap(n);
        assert_eq!((rc["unreachable"], rc["failed"], rc["ok"]), (0, 0, 4), "{n}: {}", r.all());
        assert!(lab.path().join("targets").join(n).join("last").exists());
    }
    assert!(r.stdout.contains("UNREACHABLE!"), "{}", r.stdout);
    assert_eq!(std::fs::read_to_string(lab.path().join("long.retry")).unwrap(), "k2\n");
    eprintln!("killed mid-run: {:?}", t0.elapsed());
}

#[test]
fn thirty_hosts_with_ten_forks() {
    if skip("thirty_hosts_with_ten_forks") {
        return;
    }
    let t0 = Instant::now();
    let lab = Lab::new(30);
    let started = t0.elapsed();
    let shared = lab.shared("shared");
    let mut inv = String::from("[fleet]\n");
    for (i, s) in lab.hosts.iter().enumerate() {
        let n = format!("n{i:02}");
        let root = lab.target(&n, USER);
        inv.push_str(&host_line(&n, s, USER, true, &format!("root={}", root.display())));
    }
    lab.write("inventory.ini", &inv);
    lab.write(
        "fleet.yml",
        &format!(
            r#"
- hosts: fleet
  gather_facts: false
  tasks:
    - name: hold a slot
      shell: "{}"
    - copy: {{ dest: "{{{{ root }}}}/done", content: "{{{{ inventory_hostname }}}}\n" }}
"#,
            concurrency_probe(&shared, "0.3")
        ),
    );
    let t1 = Instant::now();
    let r = lab.pbr(&["run", "fleet.yml", "-i", "inventory.ini", "-f", "10"]);
    let run = t1.elapsed();
    assert_eq!(r.code, 0, "{}", r.all());
    for i in 0..30 {
        let n = format!("n{i:02}");
        assert_eq!(r.recap(&n)["changed"], 2, "{}", r.all());
        let done = lab.path().join("targets").join(&n).join("done");
        assert_eq!(std::fs::read_to_string(done).unwrap(), format!("{n}\n"));
    }
    let c = counts(&shared.join("counts"));
    assert_eq!(c.len(), 30, "{c:?}");
    let max = c.iter().copied().max().unwrap_or(0);
    assert!((2..=10).contains(&max), "at most 10 hosts at once, and more than one: {c:?}");
    eprintln!("30 hosts: sshd start {started:?}, run {run:?}, max in flight {max}");
}

#[test]
fn serial_batches_throttle_and_retry_files() {
    if skip("serial_batches_throttle_and_retry_files") {
        return;
    }
    let t0 = Instant::now();
    let lab = Lab::new(5);
    let names: Vec<String> = (1..=5).map(|i| format!("s{i}")).collect();
    let mut inv = String::from("[all]\n");
    for (n, s) in names.iter().zip(&lab.hosts) {
        let root = lab.target(n, USER);
        inv.push_str(&host_line(n, s, USER, true, &format!("root={}", root.display())));
    }
    lab.write("inventory.ini", &inv);
    let free = lab.shared("free");
    let one = lab.shared("one");
    lab.write(
        "serial.yml",
        r#"
- hosts: all
  serial: 2
  gather_facts: false
  tasks:
    - shell: date +%s%N > {{ root }}/start
    - shell: sleep 0.2; date +%s%N > {{ root }}/end
"#,
    );
    let r = lab.pbr(&["run", "serial.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let stamp = |n: &str, f: &str| -> u128 {
        let p = lab.path().join("targets").join(n).join(f);
        std::fs::read_to_string(&p).unwrap().trim().parse().unwrap()
    };
    let batches: Vec<&[String]> = names.chunks(2).collect();
    assert_eq!(batches.len(), 3);
    for w in batches.windows(2) {
        let last_end = w[0].iter().map(|n| stamp(n, "end")).max().unwrap();
        let first_start = w[1].iter().map(|n| stamp(n, "start")).min().unwrap();
        assert!(last_end < first_start, "batch {:?} overlaps {:?}", w[0], w[1]);
    }
    // within a batch, both hosts ran the first task before either ran the second
    for b in &batches {
        if b.len() == 2 {
            let (s, e): (Vec<u128>, Vec<u128>) = b.iter().map(|n| (stamp(n, "start"), stamp(n, "end"))).unzip();
            assert!(s.iter().max() < e.iter().min(), "{b:?}");
        }
    }

    // throttle: 1 on one task; the same probe without it shows the hosts do overlap
    lab.write(
        "throttle.yml",
        &format!(
            r#"
- hosts: all
  gather_facts: false
  tasks:
    - name: free
      shell: "{}"
    - name: one at a time
      shell: "{}"
      throttle: 1
"#,
            concurrency_probe(&free, "0.2"),
            concurrency_probe(&one, "0.1")
        ),
    );
    let r = lab.pbr(&["run", "throttle.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let cf = counts(&free.join("counts"));
    let c1 = counts(&one.join("counts"));
    assert_eq!((cf.len(), c1.len()), (5, 5), "{cf:?} {c1:?}");
    assert!(cf.iter().any(|&c| c >= 2), "hosts never overlapped without throttle: {cf:?}");
    assert!(c1.iter().all(|&c| c == 1), "throttle 1 let hosts overlap: {c1:?}");

    // a failure on one host: the retry file names it, and --limit @file runs only it
    lab.write(
        "gate.yml",
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - name: gate
      command: test ! -e {{ root }}/blocked
      changed_when: false
    - copy: { dest: "{{ root }}/passed", content: "yes\n" }
"#,
    );
    std::fs::write(lab.path().join("targets/s3/blocked"), "").unwrap();
    let r = lab.pbr(&["run", "gate.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert_eq!(r.recap("s3")["failed"], 1, "{}", r.all());
    let retry = lab.path().join("gate.retry");
    assert_eq!(std::fs::read_to_string(&retry).unwrap(), "s3\n");
    std::fs::remove_file(lab.path().join("targets/s3/blocked")).unwrap();
    for n in &names {
        let _ = std::fs::remove_file(lab.path().join("targets").join(n).join("passed"));
    }
    let r = lab.pbr(&["run", "gate.yml", "-i", "inventory.ini", "--limit", "@gate.retry"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.recap("s3")["changed"], 1, "{}", r.all());
    for n in names.iter().filter(|n| *n != "s3") {
        assert!(!r.stdout.contains(&format!("[{n}]")), "{n} ran under --limit @gate.retry:\n{}", r.stdout);
        assert!(!lab.path().join("targets").join(n).join("passed").exists());
    }
    assert!(lab.path().join("targets/s3/passed").exists());
    assert!(!retry.exists(), "a clean run leaves no retry file");
    eprintln!("serial/throttle/retry: {:?}", t0.elapsed());
}

#[test]
fn become_password_never_reaches_a_nopasswd_command() {
    if skip("become_password_never_reaches_a_nopasswd_command") {
        return;
    }
    let lab = Lab::new(1);
    let root = lab.target("nopw", USER);
    lab.write("inventory.ini", &host_line("nopw", &lab.hosts[0], USER, true, &format!("root={}", root.display())));
    lab.write(
        "b.yml",
        r#"
- hosts: all
  gather_facts: false
  become: true
  tasks:
    - copy: { dest: "{{ root }}/rootfile", content: "for root\n" }
    - shell: cat > {{ root }}/stdin
"#,
    );
    let r = lab.pbr_with(&["run", "b.yml", "-i", "inventory.ini", "-K"], &[], Some("pw-for-sudo\n"));
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(std::fs::read_to_string(root.join("rootfile")).unwrap(), "for root\n");
    assert_eq!(std::fs::read_to_string(root.join("stdin")).unwrap(), "");
}

const PI_BOOT: &str = r#"
- name: Pi boot chain over SSH
  hosts: all
  gather_facts: false
  become: true
  tasks:
    - mkinitcpio_hook:
        name: iscsi
        before: filesystems
        config: "{{ root }}/mkinitcpio.conf"
        initcpio_dir: "{{ root }}/initcpio"
        regenerate_command: "echo regenerated >> {{ root }}/regen.log"
        pending_marker: "{{ root }}/pending"
        iscsi:
          initiator: "iqn.2024-01.lan.home.pi:{{ inventory_hostname }}"
          target: "iqn.2024-01.lan.home.storage:{{ inventory_hostname }}"
          portal: 192.0.2.10
    - mkinitcpio_hook:
        config: "{{ root }}/mkinitcpio.conf"
        initcpio_dir: "{{ root }}/initcpio"
        regenerate_command: "echo regenerated >> {{ root }}/regen.log"
        pending_marker: "{{ root }}/pending"
        config_modules: [brcmfmac, brcmutil, cfg80211, rfkill]
    - kernel_cmdline:
        path: "{{ root }}/cmdline.txt"
        set: { root: /dev/bcache0, ip: dhcp, rw: true }
        absent: [quiet]
    - networkd:
        name: 10-eth0.network
        dir: "{{ root }}/network"
        match: { Name: eth0 }
        network: { DHCP: ipv4, KeepConfiguration: yes }
        reload: false   # the target here runs no systemd
    - wpa:
        interface: wlan0
        path: "{{ root }}/wpa_supplicant-wlan0.conf"
        country: GB
        networks:
          - ssid: homelab
            psk: "{{ lookup('env', 'PBR_TEST_WIFI') }}"
"#;

#[test]
fn pi_boot_modules_over_ssh_regenerate_once_and_keep_secrets() {
    if skip("pi_boot_modules_over_ssh_regenerate_once_and_keep_secrets") {
        return;
    }
    let lab = Lab::new(1);
    let root = lab.target("pi", USER);
    std::fs::create_dir_all(root.join("network")).unwrap();
    std::fs::write(
        root.join("mkinitcpio.conf"),
        "# keep me\nMODULES=()\nHOOKS=(base udev autodetect modconf block filesystems fsck)\n",
    )
    .unwrap();
    std::fs::write(root.join("cmdline.txt"), "console=tty1 root=/dev/mmcblk0p2 quiet rootwait\n").unwrap();
    lab.write("inventory.ini", &host_line("pi3", &lab.hosts[0], USER, true, &format!("root={}", root.display())));
    lab.write("pi.yml", PI_BOOT);
    let secret = "correct horse battery staple";
    let env = [("PBR_TEST_WIFI", secret)];
    let before = snapshot(&root);
    let r = lab.pbr_with(&["run", "pi.yml", "-i", "inventory.ini", "--check", "--diff"], &env, None);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(snapshot(&root), before, "check mode wrote on the target");
    assert!(!r.all().contains(secret), "the passphrase reached the output");
    let r = lab.pbr_with(&["run", "pi.yml", "-i", "inventory.ini", "--diff", "-v"], &env, None);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(!r.all().contains(secret), "the passphrase reached the output");
    assert!(r.stdout.contains("<redacted>"), "{}", r.stdout);
    // the conf is still bash, with the hook placed and the comment kept
    let conf = std::fs::read_to_string(root.join("mkinitcpio.conf")).unwrap();
    assert!(conf.starts_with("# keep me\n"), "{conf}");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source {}/mkinitcpio.conf; echo \"${{HOOKS[*]}}|${{MODULES[*]}}\"", root.display()))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "base udev autodetect modconf block iscsi filesystems fsck|brcmfmac brcmutil cfg80211 rfkill"
    );
    // the regeneration ran once for two changing tasks; files written as root with the right modes
    assert_eq!(std::fs::read_to_string(root.join("regen.log")).unwrap(), "regenerated\n");
    assert_eq!(
        std::fs::read_to_string(root.join("cmdline.txt")).unwrap(),
        "console=tty1 root=/dev/bcache0 rootwait ip=dhcp rw\n"
    );
    let wpa = root.join("wpa_supplicant-wlan0.conf");
    assert_eq!(std::fs::metadata(&wpa).unwrap().mode() & 0o7777, 0o600);
    assert!(!std::fs::read_to_string(&wpa).unwrap().contains(secret), "plaintext passphrase on the target");
    assert_eq!(std::fs::metadata(root.join("network/10-eth0.network")).unwrap().mode() & 0o7777, 0o644);
    // second run: nothing to do, no regeneration
    let r = lab.pbr_with(&["run", "pi.yml", "-i", "inventory.ini", "--verify"], &env, None);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.recap("pi3")["changed"], 0, "{}", r.all());
    assert_eq!(std::fs::read_to_string(root.join("regen.log")).unwrap(), "regenerated\n");
}

fn wait_for_file(path: &std::path::Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(Instant::now() < deadline, "{what}: {} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sshd_restarted_between_tasks_the_run_goes_on() {
    if skip("sshd_restarted_between_tasks_the_run_goes_on") {
        return;
    }
    let mut lab = Lab::new(1);
    let root = lab.target("r1", USER);
    lab.write("inventory.ini", &host_line("r1", &lab.hosts[0], USER, true, &format!("root={}", root.display())));
    lab.write(
        "site.yml",
        r#"
- hosts: all
  gather_facts: true
  tasks:
    - copy: { dest: "{{ root }}/first", content: "1\n" }
    - pause: { seconds: 2 }
    - copy: { dest: "{{ root }}/last", content: "{{ ansible_facts.system }}\n" }
    - command: "true"
"#,
    );
    let child = lab.spawn(&["run", "site.yml", "-i", "inventory.ini"], &[], false);
    wait_for_file(&root.join("first"), "the first task");
    // during the pause (the first task is done by then); still down when the pause ends (the
    // next task's first tries are refused), then back
    std::thread::sleep(Duration::from_millis(500));
    lab.hosts[0].kill();
    std::thread::sleep(Duration::from_millis(2500));
    lab.hosts[0].restart().unwrap();
    let r = finish(child);
    assert_eq!(r.code, 0, "{}", r.all());
    let rc = r.recap("r1");
    assert_eq!((rc["ok"], rc["unreachable"], rc["failed"]), (5, 0, 0), "{}", r.all());
    assert_eq!(std::fs::read_to_string(root.join("last")).unwrap(), "Linux\n");
}

#[test]
fn a_command_cut_by_an_sshd_restart_is_not_run_again() {
    if skip("a_command_cut_by_an_sshd_restart_is_not_run_again") {
        return;
    }
    let mut lab = Lab::new(1);
    let root = lab.target("c1", USER);
    lab.write("inventory.ini", &host_line("c1", &lab.hosts[0], USER, true, &format!("root={}", root.display())));
    lab.write(
        "site.yml",
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - shell: echo ran >> {{ root }}/count; sleep 2
    - copy: { dest: "{{ root }}/last", content: "3\n" }
"#,
    );
    let child = lab.spawn(&["run", "site.yml", "-i", "inventory.ini"], &[], false);
    wait_for_file(&root.join("count"), "the shell task");
    lab.hosts[0].restart().unwrap();
    let r = finish(child);
    assert_eq!(r.code, 3, "{}", r.all());
    let rc = r.recap("c1");
    assert_eq!((rc["ok"], rc["unreachable"]), (0, 1), "{}", r.all());
    assert!(r.stdout.contains("not run again"), "{}", r.stdout);
    assert_eq!(std::fs::read_to_string(root.join("count")).unwrap(), "ran\n", "the command ran once");
    assert!(!root.join("last").exists());
}

#[test]
fn a_login_shell_of_bin_false_is_unreachable_and_says_why() {
    if skip("a_login_shell_of_bin_false_is_unreachable_and_says_why") {
        return;
    }
    let lab = Lab::new(1);
    lab.write("inventory.ini", &host_line("f1", &lab.hosts[0], pbr_testkit::FALSE_USER, true, ""));
    for facts in ["true", "false"] {
        lab.write("site.yml", &format!("- hosts: all\n  gather_facts: {facts}\n  tasks:\n    - command: \"true\"\n"));
        let r = lab.pbr(&["run", "site.yml", "-i", "inventory.ini"]);
        assert_eq!(r.code, 3, "gather_facts {facts}: {}", r.all());
        assert_eq!(r.recap("f1")["unreachable"], 1, "{}", r.all());
        assert!(r.stdout.contains("login shell") && r.stdout.contains("/bin/false"), "{}", r.stdout);
    }
}

/// Who a task runs as, over SSH: the login user from the host's `ansible_user`, else the
/// play's or a role's `remote_user:`, else `-u` or ansible.cfg's `remote_user`; become from
/// `become:` keywords (a `roles:` entry's too), else `-b` or ansible.cfg; the key from
/// `--private-key`, the password from `-k` or `--connection-password-file`, ssh options from
/// `--ssh-common-args`. Each (host, user) has a connection of its own.
#[test]
fn login_user_and_become_from_keywords_the_command_line_and_ansible_cfg() {
    if skip("login_user_and_become_from_keywords_the_command_line_and_ansible_cfg") {
        return;
    }
    let lab = Lab::new(1);
    let s = &lab.hosts[0];
    let key = s.client_key.display().to_string();
    // no ansible_user, no key: the command line and the playbooks say
    lab.write("bare.ini", &format!("h ansible_host={} ansible_port={}\n", s.host, s.port));
    lab.write("pinned.ini", &host_line("h", s, PW_USER, true, ""));
    // two tasks, indented by `pad`: `id -un` must print `expect`
    let who = |pad: &str, expect: &str| {
        format!(
            "{pad}- command: id -un\n{pad}  register: who\n{pad}  changed_when: false\n\
             {pad}- assert:\n{pad}    that: who.stdout == '{expect}'\n{pad}    fail_msg: \"ran as {{{{ who.stdout }}}}, not {expect}\"\n"
        )
    };
    lab.write(
        "keywords.yml",
        &format!(
            "- hosts: all\n  gather_facts: false\n  vars: {{ login: {USER} }}\n  remote_user: \"{{{{ login }}}}\"\n  tasks:\n{}\
             \x20   - become: true\n      block:\n{}\
             - hosts: all\n  gather_facts: false\n  remote_user: {PW_USER}\n  tasks:\n{}\
             - hosts: all\n  gather_facts: false\n  remote_user: {USER}\n  roles:\n    - {{ role: r, become: true }}\n",
            who("    ", USER),
            who("        ", "root"),
            who("    ", PW_USER),
        ),
    );
    lab.write("roles/r/tasks/main.yml", &who("", "root"));
    let r = lab.pbr(&["run", "keywords.yml", "-i", "bare.ini", "--private-key", &key]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.recap("h")["ok"], 8, "{}", r.all());

    // -u and -b where the playbook says nothing; the host's ansible_user wins over -u
    lab.write("plain.yml", &format!("- hosts: all\n  gather_facts: false\n  tasks:\n{}", who("    ", "{{ expect }}")));
    let expect_user = format!("expect={USER}");
    let r = lab.pbr(&["run", "plain.yml", "-i", "bare.ini", "--private-key", &key, "-u", USER, "-e", &expect_user]);
    assert_eq!(r.code, 0, "{}", r.all());
    let r = lab.pbr(&["run", "plain.yml", "-i", "bare.ini", "--key-file", &key, "-u", USER, "-b", "-e", "expect=root"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let r = lab.pbr(&["run", "plain.yml", "-i", "pinned.ini", "-u", USER, "-e", &format!("expect={PW_USER}")]);
    assert_eq!(r.code, 0, "{}", r.all());
    // without a user or a key from anywhere, the host is unreachable (and not as a test user)
    let r = lab.pbr(&["run", "plain.yml", "-i", "bare.ini", "-e", &expect_user]);
    assert_eq!(r.recap("h")["unreachable"], 1, "{}", r.all());

    // the SSH password: asked (-k, on stdin here) or read from a file, where the host has none
    let pw = format!("{SUDO_PASSWORD}\n");
    let expect_pw = format!("expect={PW_USER}");
    let r =
        lab.pbr_with(&["run", "plain.yml", "-i", "bare.ini", "-u", PW_USER, "-k", "-e", &expect_pw], &[], Some(&pw));
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(!r.all().contains(SUDO_PASSWORD), "{}", r.all());
    let pwfile = lab.write("ssh.pw", &pw);
    let pwfile = pwfile.display().to_string();
    let args = ["run", "plain.yml", "-i", "bare.ini", "-u", PW_USER, "--connection-password-file", &pwfile];
    let r = lab.pbr(&[&args[..], &["-e", &expect_pw]].concat());
    assert_eq!(r.code, 0, "{}", r.all());
    // ssh options for every host: here the port, which the inventory no longer gives
    lab.write("noport.ini", &format!("h ansible_host={}\n", s.host));
    let port = format!("-o Port={}", s.port);
    let args = ["run", "plain.yml", "-i", "noport.ini", "--private-key", &key, "-u", USER, "--ssh-common-args", &port];
    let r = lab.pbr(&[&args[..], &["-e", &expect_user]].concat());
    assert_eq!(r.code, 0, "{}", r.all());

    // ansible.cfg's remote_user, private_key_file and [privilege_escalation] become are read
    lab.write(
        "ansible.cfg",
        &format!("[defaults]\nremote_user = {USER}\nprivate_key_file = {key}\n[privilege_escalation]\nbecome = true\n"),
    );
    let r = lab.pbr(&["run", "plain.yml", "-i", "bare.ini", "-e", "expect=root"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(!r.stderr.contains("does not read"), "{}", r.stderr);
    // and [ssh_connection]'s ssh_common_args
    lab.write(
        "ansible.cfg",
        &format!(
            "[defaults]\nremote_user = {USER}\nprivate_key_file = {key}\n[ssh_connection]\nssh_common_args = {port}\n"
        ),
    );
    let r = lab.pbr(&["run", "plain.yml", "-i", "noport.ini", "-e", &expect_user]);
    assert_eq!(r.code, 0, "{}", r.all());
    // a bad value is an input error before anything runs
    lab.write("ansible.cfg", "[privilege_escalation]\nbecome_method = pbrun\n");
    let r = lab.pbr(&["run", "plain.yml", "-i", "bare.ini", "-e", "expect=root"]);
    assert_eq!(r.code, 4, "{}", r.all());
    assert!(r.stderr.contains("unsupported become method `pbrun`"), "{}", r.all());
    assert!(!r.stdout.contains("TASK"), "{}", r.all());
}
