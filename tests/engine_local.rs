//! The engine over `connection: local`: converge, idempotence, check and diff, and the language.

mod common;
use common::*;
use std::path::Path;

fn inventory(dir: &Path, hosts: &[&str]) {
    let mut s = String::from("[local]\n");
    for h in hosts {
        s.push_str(&format!("{h} ansible_connection=local root={}/{h}\n", dir.display()));
        std::fs::create_dir_all(dir.join(h)).unwrap();
    }
    write(dir, "inventory.ini", &s);
}

/// A playbook `pb.yml` on fresh local hosts, run once with `extra` arguments: (its dir, the run).
fn play(hosts: &[&str], yml: &str, extra: &[&str]) -> (tempfile::TempDir, Run) {
    let d = tempfile::tempdir().unwrap();
    inventory(d.path(), hosts);
    write(d.path(), "pb.yml", yml);
    let mut args = vec!["run", "pb.yml", "-i", "inventory.ini"];
    args.extend_from_slice(extra);
    let r = pbr(d.path(), &args);
    assert_eq!(r.code, 0, "{}", r.all());
    (d, r)
}

const CONVERGE: &str = r#"
- name: converge files
  hosts: all
  gather_facts: false
  vars:
    motd: "hello from {{ inventory_hostname }}"
  tasks:
    - name: a directory
      file: { path: "{{ root }}/etc/app", state: directory, mode: "0755" }
    - name: a file with content
      copy:
        dest: "{{ root }}/etc/app/motd"
        content: "{{ motd }}\n"
        mode: 0644
    - name: a templated file, only when missing
      template: { src: app.conf.j2, dest: "{{ root }}/etc/app/app.conf", force: false }
    - name: a line
      lineinfile: { path: "{{ root }}/etc/app/lines.conf", line: "extra=1", create: true }
    - name: a block
      blockinfile:
        path: "{{ root }}/etc/app/profile"
        create: true
        block: |
          managed
          block
    - name: a replace
      # in check mode the file does not exist yet: the replace sees what the template would write
      replace: { path: "{{ root }}/etc/app/app.conf", regexp: '^port=.*$', replace: 'port=2222' }
    - name: a command guarded by creates
      command: "touch {{ root }}/etc/app/stamp"
      args: { creates: "{{ root }}/etc/app/stamp" }
    - name: a link
      file: { src: "{{ root }}/etc/app/motd", dest: "{{ root }}/motd", state: link }
"#;

fn converge_setup() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    inventory(d.path(), &["h1", "h2"]);
    write(d.path(), "site.yml", CONVERGE);
    write(d.path(), "templates/app.conf.j2", "name={{ inventory_hostname }}\nport=22\n");
    d
}

#[test]
fn converge_then_second_run_changes_nothing() {
    let d = converge_setup();
    let r = pbr(d.path(), &["run", "site.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 0, "{}", r.all());
    for h in ["h1", "h2"] {
        let rc = r.recap(h);
        assert_eq!(rc["changed"], 8, "{}", r.all());
        assert_eq!(rc["failed"], 0);
        let conf = std::fs::read_to_string(d.path().join(h).join("etc/app/app.conf")).unwrap();
        assert_eq!(conf, format!("name={h}\nport=2222\n"));
        let motd = std::fs::read_to_string(d.path().join(h).join("etc/app/motd")).unwrap();
        assert_eq!(motd, format!("hello from {h}\n"));
        let profile = std::fs::read_to_string(d.path().join(h).join("etc/app/profile")).unwrap();
        assert_eq!(profile, "# BEGIN ANSIBLE MANAGED BLOCK\nmanaged\nblock\n# END ANSIBLE MANAGED BLOCK\n");
        assert_eq!(std::fs::read_to_string(d.path().join(h).join("etc/app/lines.conf")).unwrap(), "extra=1\n");
        assert_eq!(mode_of(&d.path().join(h).join("etc/app/motd")), 0o644);
    }
    let r2 = pbr(d.path(), &["run", "site.yml", "-i", "inventory.ini", "--verify"]);
    assert_eq!(r2.code, 0, "{}", r2.all());
    for h in ["h1", "h2"] {
        assert_eq!(r2.recap(h)["changed"], 0, "{}", r2.all());
        assert_eq!(r2.recap(h)["ok"], 8);
    }
}

#[test]
fn check_mode_writes_nothing_and_diff_shows_the_plan() {
    let d = converge_setup();
    let before = snapshot(d.path());
    let r = pbr(d.path(), &["run", "site.yml", "-i", "inventory.ini", "--check", "--diff"]);
    assert_eq!(r.code, 0, "{}", r.all());
    // the inventory/playbook dir is byte-identical (no .retry, no host files)
    assert_eq!(snapshot(d.path()), before, "check mode wrote something");
    assert!(r.stdout.contains("+hello from h1"), "{}", r.stdout);
    assert!(r.stdout.contains("+port=22"), "{}", r.stdout);
    // later tasks see what earlier planned ops would make: the replace edits the file the template
    // would write, the link points at the file the copy would write; the count is the real run's
    assert!(r.stdout.contains("-port=22\n+port=2222"), "{}", r.stdout);
    for h in ["h1", "h2"] {
        assert_eq!((r.recap(h)["changed"], r.recap(h)["failed"]), (8, 0), "{h}: {}", r.all());
    }
    assert!(!r.stdout.contains("ignoring"), "{}", r.stdout);
    // after a real run, a check run shows the pending edit only
    let r = pbr(d.path(), &["run", "site.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 0, "{}", r.all());
    std::fs::write(d.path().join("h1/etc/app/app.conf"), "name=h1\nport=22\n").unwrap();
    let before = snapshot(d.path());
    let r = pbr(d.path(), &["run", "site.yml", "-i", "inventory.ini", "-C", "-D", "-l", "h1"]);
    assert_eq!(snapshot(d.path()), before);
    assert!(r.stdout.contains("-port=22\n+port=2222"), "{}", r.stdout);
    assert_eq!(r.recap("h1")["changed"], 1, "{}", r.all());
    assert!(!r.stdout.contains("h2 "), "limit h1 touched h2:\n{}", r.stdout);
}

#[test]
fn handlers_fire_once_and_only_on_change() {
    let d = tempfile::tempdir().unwrap();
    inventory(d.path(), &["h1"]);
    write(
        d.path(),
        "pb.yml",
        r#"
- hosts: all
  gather_facts: no
  tasks:
    - copy: { dest: "{{ root }}/a", content: "a\n" }
      notify: restart
    - copy: { dest: "{{ root }}/b", content: "b\n" }
      notify: [restart, other]
    - copy: { dest: "{{ root }}/a", content: "a\n" }
      notify: never-notified
  handlers:
    - name: restart
      shell: echo run >> {{ root }}/handler.log
    - name: never-notified
      shell: echo bad >> {{ root }}/never.log
    - name: listener
      listen: other
      shell: echo listen >> {{ root }}/handler.log
"#,
    );
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(std::fs::read_to_string(d.path().join("h1/handler.log")).unwrap(), "run\nlisten\n");
    assert!(!d.path().join("h1/never.log").exists());
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(std::fs::read_to_string(d.path().join("h1/handler.log")).unwrap(), "run\nlisten\n");
    assert_eq!(r.recap("h1")["changed"], 0);
}

#[test]
fn block_rescue_always_loops_register_and_assert() {
    let d = tempfile::tempdir().unwrap();
    inventory(d.path(), &["h1"]);
    write(
        d.path(),
        "pb.yml",
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - block:
        - command: "false"
        - debug: msg="not reached"
      rescue:
        - copy: { dest: "{{ root }}/rescued", content: "r\n" }
      always:
        - copy: { dest: "{{ root }}/always", content: "a\n" }
    - name: loop with register
      shell: "echo {{ item.n }}-{{ idx }}"
      loop: [{n: a}, {n: b}, {n: c}]
      loop_control: { index_var: idx, label: "{{ item.n }}" }
      register: out
      changed_when: false
    - assert:
        that:
          - out.results | length == 3
          - out.results[1].stdout == 'b-1'
          - out is not changed
    - name: with_items flattens, when per item
      copy: { dest: "{{ root }}/item-{{ item }}", content: "{{ item }}\n" }
      with_items: [[x, y], z]
      when: item != 'y'
    - set_fact: { computed: "{{ [1, 2, 3] | map('int') | sum }}" }
    - assert: { that: "computed | int == 6" }
"#,
    );
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let rc = r.recap("h1");
    assert_eq!(rc["rescued"], 1, "{}", r.all());
    assert_eq!(rc["failed"], 0);
    assert!(d.path().join("h1/rescued").exists() && d.path().join("h1/always").exists());
    assert!(d.path().join("h1/item-x").exists() && d.path().join("h1/item-z").exists());
    assert!(!d.path().join("h1/item-y").exists());
}

#[test]
fn tags_select_tasks() {
    let d = tempfile::tempdir().unwrap();
    inventory(d.path(), &["h1"]);
    write(
        d.path(),
        "pb.yml",
        r#"
- hosts: all
  gather_facts: false
  vars:
    the_tags: [three, two]
  tasks:
    - copy: { dest: "{{ root }}/one", content: "1\n" }
      tags: [one]
    - copy: { dest: "{{ root }}/two", content: "2\n" }
      tags: two
    - copy: { dest: "{{ root }}/templated", content: "t\n" }
      tags: "{{ the_tags }}"
    - copy: { dest: "{{ root }}/always", content: "a\n" }
      tags: [always]
    - copy: { dest: "{{ root }}/never", content: "n\n" }
      tags: [never]
"#,
    );
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inventory.ini", "-t", "two"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let h = d.path().join("h1");
    assert!(
        !h.join("one").exists() && h.join("two").exists() && h.join("always").exists() && !h.join("never").exists()
    );
    // tags may be a template of the play's variables
    assert!(h.join("templated").exists());
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inventory.ini", "--skip-tags", "two"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(h.join("one").exists() && !h.join("never").exists());
}

/// A handler notified by a task that the tags selected runs, whatever its own tags (Ansible).
#[test]
fn tags_do_not_filter_notified_handlers() {
    let (d, r) = play(
        &["h1"],
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - copy: { dest: "{{ root }}/conf", content: "1\n" }
      tags: [conf]
      notify: restart
  handlers:
    - name: restart
      copy: { dest: "{{ root }}/restarted", content: "yes\n" }
"#,
        &["--tags", "conf"],
    );
    assert!(d.path().join("h1/restarted").exists(), "the notified handler did not run:\n{}", r.stdout);
}

#[test]
fn variable_precedence_follows_ansible() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "inv/hosts.ini",
        &format!(
            "[grp]\nh1 ansible_connection=local root={root}/h1 from_host=host\n[grp:vars]\nfrom_group=inv_group\nfrom_host=group\nplay_wins=group\n",
            root = d.path().display()
        ),
    );
    std::fs::create_dir_all(d.path().join("h1")).unwrap();
    write(d.path(), "inv/group_vars/all.yml", "from_all: all\nfrom_group: all\n");
    write(d.path(), "inv/group_vars/grp.yml", "from_gv: gv\n");
    write(d.path(), "inv/host_vars/h1.yml", "from_hv: hv\nfrom_host: host_vars\n");
    write(d.path(), "roles/r/defaults/main.yml", "from_default: default\nfrom_all: default\nrole_var: default\n");
    write(d.path(), "roles/r/vars/main.yml", "role_var: role_vars\n");
    write(
        d.path(),
        "roles/r/tasks/main.yml",
        r#"
- copy:
    dest: "{{ root }}/vars.txt"
    content: "{{ from_all }} {{ from_group }} {{ from_gv }} {{ from_hv }} {{ from_host }} {{ from_default }} {{ play_wins }} {{ role_var }} {{ extra }}\n"
"#,
    );
    write(
        d.path(),
        "pb.yml",
        "- hosts: grp\n  gather_facts: false\n  vars: { play_wins: play, extra: play, role_var: play }\n  roles: [r]\n",
    );
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inv", "-e", "extra=extra"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let got = std::fs::read_to_string(d.path().join("h1/vars.txt")).unwrap();
    assert_eq!(got, "all all gv hv host_vars default play role_vars extra\n");
}

#[test]
fn a_role_imported_from_a_role_sees_its_defaults_and_vars() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inv.ini", &format!("h1 ansible_connection=local root={}/h1\n", d.path().display()));
    std::fs::create_dir_all(d.path().join("h1")).unwrap();
    write(d.path(), "roles/outer/defaults/main.yml", "outer_default: od\nshared: outer\n");
    write(d.path(), "roles/outer/vars/main.yml", "outer_var: ov\n");
    write(
        d.path(),
        "roles/outer/tasks/main.yml",
        "- import_role: { name: inner }\n  when: use_inner | default(true)\n- include_role: { name: inner, tasks_from: again }\n",
    );
    write(d.path(), "roles/inner/defaults/main.yml", "shared: inner\n");
    let task = |f: &str| {
        format!(
            "- copy:\n    dest: \"{{{{ root }}}}/{f}\"\n    content: \"{{{{ outer_default }}}} {{{{ outer_var }}}} {{{{ shared }}}}\\n\"\n"
        )
    };
    write(d.path(), "roles/inner/tasks/main.yml", &task("imported.txt"));
    write(d.path(), "roles/inner/tasks/again.yml", &task("included.txt"));
    write(d.path(), "pb.yml", "- hosts: all\n  gather_facts: false\n  roles: [outer]\n");
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inv.ini"]);
    assert_eq!(r.code, 0, "{}", r.all());
    // the inner role's own default wins over the outer one's
    for f in ["imported.txt", "included.txt"] {
        assert_eq!(std::fs::read_to_string(d.path().join("h1").join(f)).unwrap(), "od ov inner\n", "{f}");
    }
    let lint = pbr(d.path(), &["lint", "pb.yml", "-i", "inv.ini"]);
    assert_eq!(lint.code, 0, "{}", lint.all());
}

#[test]
fn magic_variables_groups_play_hosts_and_hostvars() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().display();
    write(
        d.path(),
        "hosts.ini",
        &format!(
            "[web]\nh1 ansible_connection=local root={root}/h1 port=81\nh2 ansible_connection=local root={root}/h2 port=82\n\
             [db]\nh3 ansible_connection=local root={root}/h3 port=83\n"
        ),
    );
    for h in ["h1", "h2", "h3"] {
        std::fs::create_dir_all(d.path().join(h)).unwrap();
    }
    // a play var built from `groups`; `serial: 1` makes each batch one host; a play var named
    // like a magic variable does not replace it (as in Ansible)
    write(
        d.path(),
        "pb.yml",
        r#"
- hosts: web
  gather_facts: false
  serial: 1
  vars:
    peers: "{{ groups['web'] | join(',') }}"
    play_hosts: not-this
  tasks:
    - copy:
        dest: "{{ root }}/magic.txt"
        content: "{{ peers }}|{{ ansible_play_batch | join(',') }}|{{ ansible_play_hosts_all | join(',') }}|{{ groups['db'] | join(',') }}|{{ group_names | join(',') }}|{{ hostvars['h3'].port }}|{{ play_hosts | join(',') }}\n"
"#,
    );
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "hosts.ini"]);
    assert_eq!(r.code, 0, "{}", r.all());
    for (h, port) in [("h1", "h1"), ("h2", "h2")] {
        let got = std::fs::read_to_string(d.path().join(h).join("magic.txt")).unwrap();
        assert_eq!(got, format!("h1,h2|{port}|h1,h2|h3|web|83|{port}\n"), "{h}");
    }
    assert!(!d.path().join("h3/magic.txt").exists());
}

#[test]
fn yaml_11_booleans_and_octal() {
    let d = tempfile::tempdir().unwrap();
    inventory(d.path(), &["h1"]);
    write(
        d.path(),
        "pb.yml",
        r#"
- hosts: all
  gather_facts: no
  vars:
    enabled: yes
    quoted: "no"
  tasks:
    - copy: { dest: "{{ root }}/f", content: "x\n", mode: 0640 }
      when: enabled
    - copy: { dest: "{{ root }}/g", content: "{{ quoted }}\n" }
      when: not (quoted | bool)
"#,
    );
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(mode_of(&d.path().join("h1/f")), 0o640);
    assert_eq!(std::fs::read_to_string(d.path().join("h1/g")).unwrap(), "no\n");
}

#[test]
fn undefined_variable_names_it_and_the_task() {
    let d = tempfile::tempdir().unwrap();
    inventory(d.path(), &["h1"]);
    write(
        d.path(),
        "pb.yml",
        "- hosts: all\n  gather_facts: no\n  tasks:\n    - name: uses a missing var\n      copy: { dest: \"{{ root }}/x\", content: \"{{ nope_missing }}\" }\n",
    );
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inventory.ini"]);
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(r.all().contains("nope_missing"), "{}", r.all());
    assert!(r.all().contains("pb.yml:4:") || r.all().contains("pb.yml:5:"), "{}", r.all());
    assert!(!d.path().join("h1/x").exists());
}

#[test]
fn bad_input_is_a_located_error_with_exit_4_and_nothing_runs() {
    let d = tempfile::tempdir().unwrap();
    inventory(d.path(), &["h1"]);
    let marker = d.path().join("h1/touched");
    let cases: Vec<(&str, String, &str)> = vec![
        ("yaml", "- hosts: all\n  tasks:\n    - copy: {dest: x\n   bad: [\n".into(), "pb.yml:"),
        (
            "unknown module",
            format!(
                "- hosts: all\n  tasks:\n    - command: touch {}\n    - cpoy: {{ dest: /tmp/x }}\n",
                marker.display()
            ),
            "pb.yml:4:7",
        ),
        (
            "unknown param",
            format!(
                "- hosts: all\n  tasks:\n    - command: touch {}\n    - copy: {{ dest: /tmp/x, contnet: y }}\n",
                marker.display()
            ),
            "pb.yml:4:",
        ),
        (
            "unknown keyword",
            "- hosts: all\n  tasks:\n    - copy: { dest: /tmp/x, content: y }\n      whne: true\n".into(),
            "pb.yml:4:7",
        ),
        ("play not a list", "hosts: all\n".into(), "pb.yml:1:1"),
        ("missing import", "- hosts: all\n  tasks:\n    - import_tasks: nothere.yml\n".into(), "pb.yml:3:"),
    ];
    for (what, text, loc) in cases {
        write(d.path(), "pb.yml", &text);
        let r = pbr(d.path(), &["run", "pb.yml", "-i", "inventory.ini"]);
        assert_eq!(r.code, 4, "{what}: {}", r.all());
        assert!(r.stderr.contains(loc), "{what}: expected {loc} in:\n{}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{what}: {}", r.stderr);
        assert!(!marker.exists(), "{what}: a host was touched");
    }
    // did-you-mean for the module
    write(d.path(), "pb.yml", "- hosts: all\n  tasks:\n    - cpoy: { dest: /tmp/x }\n");
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inventory.ini"]);
    assert!(r.stderr.contains("copy"), "{}", r.stderr);
    // a missing playbook, a broken inventory
    let r = pbr(d.path(), &["run", "nothere.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 4, "{}", r.all());
    write(d.path(), "bad.ini", "[grp\nh1\n");
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "bad.ini"]);
    assert_eq!(r.code, 4, "{}", r.all());
    assert!(r.stderr.contains("bad.ini:1"), "{}", r.stderr);
}

#[test]
fn failed_host_exit_2_others_continue_and_retry_file() {
    let d = tempfile::tempdir().unwrap();
    inventory(d.path(), &["h1", "h2"]);
    write(
        d.path(),
        "pb.yml",
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - command: "false"
      when: inventory_hostname == 'h1'
    - copy: { dest: "{{ root }}/done", content: "x\n" }
"#,
    );
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert_eq!(r.recap("h1")["failed"], 1);
    assert!(d.path().join("h2/done").exists() && !d.path().join("h1/done").exists());
    assert_eq!(std::fs::read_to_string(d.path().join("pb.retry")).unwrap(), "h1\n");
    // --limit @retry runs only h1
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inventory.ini", "-l", "@pb.retry", "-e", "x=1"]);
    assert!(r.stdout.contains("h1") && !r.stdout.contains("[h2]"), "{}", r.stdout);
}

#[test]
fn json_output_is_one_object_per_line() {
    let d = converge_setup();
    let r = pbr(d.path(), &["run", "site.yml", "-i", "inventory.ini", "--output", "json"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let events: Vec<serde_json::Value> =
        r.stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    let results: Vec<_> = events.iter().filter(|e| e["event"] == "result").collect();
    assert_eq!(results.len(), 16);
    assert!(results.iter().all(|e| e["changed"] == true && e["host"].is_string() && e["task"].is_string()));
    let recap = events.last().unwrap();
    assert_eq!(recap["event"], "recap");
    assert_eq!(recap["hosts"]["h1"]["changed"], 8);
}

#[test]
fn ansible_cfg_keys_are_read_or_named() {
    let d = tempfile::tempdir().unwrap();
    inventory(d.path(), &["h1", "h2"]);
    write(
        d.path(),
        "ansible.cfg",
        "[defaults]\ninventory = inventory.ini\nforks = 1\nretry_files_enabled = False\nstdout_callback = yaml\n\
         [privilege_escalation]\nbecome_ask_pass = False\n",
    );
    write(d.path(), "pb.yml", "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: \"false\"\n");
    // the inventory from ansible.cfg, no retry file, and the keys pbr does not read named
    let r = pbr(d.path(), &["run", "pb.yml"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert_eq!(r.recap("h2")["failed"], 1, "{}", r.all());
    assert!(!d.path().join("pb.retry").exists());
    assert!(
        r.stderr.contains(
            "ansible.cfg: pbr does not read [defaults] stdout_callback, [privilege_escalation] become_ask_pass"
        ),
        "{}",
        r.stderr
    );
    write(d.path(), "ansible.cfg", "[defaults]\ninventory = inventory.ini\nforks = many\n");
    let r = pbr(d.path(), &["run", "pb.yml"]);
    assert_eq!(r.code, 4, "{}", r.all());
    assert!(r.stderr.contains("forks in ansible.cfg must be a number of hosts"), "{}", r.stderr);
}

#[test]
fn junit_output_has_a_case_per_task_and_host() {
    let d = tempfile::tempdir().unwrap();
    inventory(d.path(), &["h1", "h2"]);
    write(
        d.path(),
        "pb.yml",
        r#"
- name: the <junit> play
  hosts: all
  gather_facts: false
  tasks:
    - copy: { dest: "{{ root }}/done", content: "x\n" }
    - command: "false"
      when: inventory_hostname == 'h1'
      ignore_errors: true
    - debug: { msg: never }
      when: false
"#,
    );
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inventory.ini", "--output", "junit"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let x = &r.stdout;
    assert!(x.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<testsuites name=\"pbr\" tests=\"6\""), "{x}");
    assert!(
        x.contains("<testsuite name=\"the &lt;junit&gt; play\" tests=\"6\" failures=\"1\" errors=\"0\" skipped=\"3\""),
        "{x}"
    );
    assert!(x.contains("<testcase name=\"[h1] command\" classname=\"pb.yml:7:7\""), "{x}");
    assert!(x.contains("<failure message=\"non-zero return code\" type=\"ignored-failure\">"), "{x}");
    assert_eq!(x.matches("<system-out>+ create ").count(), 2, "{x}");
    assert!(x.trim_end().ends_with("</testsuites>") && !x.contains("PLAY RECAP"), "{x}");
}

#[test]
fn environment_timeout_and_free_strategy() {
    let d = tempfile::tempdir().unwrap();
    inventory(d.path(), &["h1", "h2"]);
    write(
        d.path(),
        "pb.yml",
        r#"
- hosts: all
  gather_facts: false
  strategy: free
  environment:
    GREETING: "hi {{ inventory_hostname }}"
  tasks:
    - shell: echo "$GREETING" > {{ root }}/env
      args: { creates: "{{ root }}/env" }
    - name: slow on h1 only
      command: sleep 5
      timeout: 1
      when: inventory_hostname == 'h1'
      ignore_errors: true
      register: slow
    - assert:
        that: slow is skipped or (slow is failed and 'timed out' in slow.msg)
"#,
    );
    let t = std::time::Instant::now();
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(t.elapsed().as_secs() < 4, "the timeout did not cut the task: {:?}", t.elapsed());
    assert_eq!(std::fs::read_to_string(d.path().join("h1/env")).unwrap(), "hi h1\n");
    assert_eq!(std::fs::read_to_string(d.path().join("h2/env")).unwrap(), "hi h2\n");
    assert_eq!(r.recap("h1")["ignored"], 1, "{}", r.all());
}

#[test]
fn wait_for_connection_reconnects_and_reboot_refuses_unknown_params() {
    let d = tempfile::tempdir().unwrap();
    inventory(d.path(), &["h1"]);
    write(
        d.path(),
        "wait.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: /bin/true\n    \
         - wait_for_connection: { timeout: 10, sleep: 0.2 }\n      register: w\n    \
         - assert: { that: [w.elapsed is defined, not w.changed] }\n    - command: /bin/true\n",
    );
    let r = pbr(d.path(), &["run", "wait.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.recap("h1")["ok"], 4, "{}", r.stdout);
    // refused before anything is sent to the host: by the preflight, as any module's params
    write(
        d.path(),
        "reboot.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - reboot: { reboot_timout: 5 }\n",
    );
    let r = pbr(d.path(), &["run", "reboot.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 4, "{}", r.all());
    assert!(r.stderr.contains("unknown param `reboot_timout` for module `reboot`"), "{}", r.stderr);
    assert!(r.stderr.contains("did you mean `reboot_timeout`?"), "{}", r.stderr);
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn facts_use_the_connection_the_tasks_use() {
    let d = tempfile::tempdir().unwrap();
    let port = closed_port();
    // the inventory says SSH to an address where nothing answers; -e and play vars say local
    write(
        d.path(),
        "inventory.ini",
        &format!(
            "[far]\nf1 ansible_host=127.0.0.1 ansible_port={port} ansible_user=nobody root={}\n",
            d.path().display()
        ),
    );
    write(
        d.path(),
        "site.yml",
        "- hosts: far\n  gather_facts: true\n  tasks:\n    - copy: { dest: \"{{ root }}/facts\", content: \"{{ ansible_facts.system }} {{ ansible_system }}\\n\" }\n",
    );
    let r = pbr(d.path(), &["run", "site.yml", "-i", "inventory.ini", "-e", "ansible_connection=local"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(std::fs::read_to_string(d.path().join("facts")).unwrap(), "Linux Linux\n");
    // the same through a play variable
    write(
        d.path(),
        "play.yml",
        "- hosts: far\n  gather_facts: true\n  vars: { ansible_connection: local }\n  tasks:\n    - command: \"true\"\n",
    );
    let r = pbr(d.path(), &["run", "play.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 0, "{}", r.all());
    // and without them the host is unreachable (the test's address really is closed)
    let r = pbr(d.path(), &["run", "site.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 3, "{}", r.all());
}

#[test]
fn the_test_loopback_guard_refuses_other_addresses_before_connecting() {
    let d = tempfile::tempdir().unwrap();
    let port = closed_port();
    write(
        d.path(),
        "inventory.ini",
        &format!(
            "[far]\nten ansible_host=10.0.0.1\ndoc ansible_host=192.0.2.1 ansible_port=2222\n\
             named ansible_host=example.invalid\njump ansible_host=127.0.0.1 ansible_port={port} \
             ansible_ssh_common_args='-J 10.0.0.2'\n[near]\nloop ansible_host=127.0.0.1 ansible_port={port}\n"
        ),
    );
    write(d.path(), "site.yml", "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: \"true\"\n");
    let t0 = std::time::Instant::now();
    let Some(r) = pbr_offline(d.path(), &["run", "site.yml", "-i", "inventory.ini"]) else { return };
    assert_eq!(r.code, 3, "{}", r.all());
    for (host, addr) in
        [("ten", "10.0.0.1:22"), ("doc", "192.0.2.1:2222"), ("named", "example.invalid:22"), ("jump", "10.0.0.2:22")]
    {
        let line = r
            .stdout
            .lines()
            .find(|l| l.contains(&format!("[{host}]")))
            .unwrap_or_else(|| panic!("{host}: {}", r.all()));
        assert!(line.contains(&format!("PBR_TEST_LOOPBACK_ONLY=1: refusing to connect to {addr}")), "{host}: {line}");
    }
    // a loopback address is tried (and fails for want of a server, not by the guard)
    let line = r.stdout.lines().find(|l| l.contains("[loop]")).unwrap_or_else(|| panic!("{}", r.all()));
    assert!(line.contains("UNREACHABLE") && !line.contains("refusing"), "{line}");
    // refused at once: no connect timeout was waited for
    assert!(t0.elapsed() < std::time::Duration::from_secs(8), "{:?}", t0.elapsed());
}

/// Every change says what it does to its object: `+` made, `~` changed, `-` removed, `!` run
/// whatever the state; in the human output before its words, in `--output json` as `kind`.
#[test]
fn changes_carry_their_kind() {
    let d = tempfile::tempdir().unwrap();
    inventory(d.path(), &["h1"]);
    write(
        d.path(),
        "kinds.yml",
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - copy: { content: "a\n", dest: "{{ root }}/made" }
    - copy: { content: "b\n", dest: "{{ root }}/changed" }
    - file: { path: "{{ root }}/gone", state: absent }
    - command: "true"
"#,
    );
    std::fs::write(d.path().join("h1/changed"), "a\n").unwrap();
    std::fs::write(d.path().join("h1/gone"), "x\n").unwrap();
    let r = pbr(d.path(), &["run", "kinds.yml", "-i", "inventory.ini", "--check", "--diff"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let root = d.path().join("h1");
    for want in [
        format!("  + create {}/made", root.display()),
        format!("  ~ update {}/changed", root.display()),
        format!("  - remove {}/gone", root.display()),
        "  ! run: true".to_string(),
    ] {
        assert!(r.stdout.contains(&want), "no line {want:?} in:\n{}", r.stdout);
    }
    let r = pbr(d.path(), &["run", "kinds.yml", "-i", "inventory.ini", "--output", "json"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let kinds: Vec<&str> = r.stdout.match_indices("\"kind\":\"").map(|(i, _)| &r.stdout[i + 8..i + 9]).collect();
    assert_eq!(kinds.iter().filter(|k| ["+", "~", "-", "!"].contains(k)).count(), 4, "{}", r.stdout);
    for k in ["+", "~", "-", "!"] {
        assert!(kinds.contains(&k), "no change of kind {k} in:\n{}", r.stdout);
    }
}

/// On a terminal, a live line on stderr says which task runs, how many hosts are done and which
/// ones it waits for; not when stderr is a pipe. Run under `script` for a terminal.
#[test]
fn live_progress_on_a_terminal_only() {
    if std::process::Command::new("script").arg("--version").output().is_err() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI needs util-linux's script");
        eprintln!("SKIPPED: no `script` for a terminal");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    inventory(d.path(), &["fast", "slow"]);
    write(
        d.path(),
        "slow.yml",
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - name: a slow task
      command: "sleep {{ 5 if inventory_hostname == 'slow' else 0 }}"
"#,
    );
    let bin = env!("CARGO_BIN_EXE_pbr");
    let tty = std::process::Command::new("script")
        .args(["-qec", &format!("TERM=xterm {bin} run slow.yml -i inventory.ini"), "/dev/null"])
        .current_dir(d.path())
        .output()
        .unwrap();
    let seen = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{seen}");
    assert!(seen.contains("a slow task 1/2 hosts"), "no live line on the terminal:\n{seen}");
    assert!(seen.contains("waiting for slow"), "the live line does not name the slow host:\n{seen}");
    let piped = pbr(d.path(), &["run", "slow.yml", "-i", "inventory.ini"]);
    assert_eq!(piped.code, 0, "{}", piped.all());
    assert!(!piped.stderr.contains("hosts"), "a live line on a pipe:\n{}", piped.stderr);
}

/// A `shell: |` block runs as written: its newlines reach sh (a heredoc works), and a `creates=`
/// line is still read as the option.
#[test]
fn shell_block_keeps_its_newlines() {
    let d = tempfile::tempdir().unwrap();
    inventory(d.path(), &["h1"]);
    write(
        d.path(),
        "heredoc.yml",
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - shell: |
        cat <<EOT > {{ root }}/out
          first  line
        second
        EOT
        creates={{ root }}/out
"#,
    );
    let r = pbr(d.path(), &["run", "heredoc.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(std::fs::read_to_string(d.path().join("h1/out")).unwrap(), "  first  line\nsecond\n");
    let again = pbr(d.path(), &["run", "heredoc.yml", "-i", "inventory.ini"]);
    assert_eq!(again.recap("h1")["changed"], 0, "creates= was not read:\n{}", again.all());
}

/// `set_fact` in a loop sees what its earlier items set: the list accumulates (Ansible).
#[test]
fn set_fact_in_a_loop_accumulates() {
    let (d, _) = play(
        &["h1"],
        r#"
- hosts: all
  gather_facts: false
  vars:
    acc: []
  tasks:
    - set_fact:
        acc: "{{ acc + [item * 10] }}"
      loop: [1, 2, 3]
    - copy: { dest: "{{ root }}/acc", content: "{{ acc | join(',') }}\n" }
"#,
        &[],
    );
    assert_eq!(std::fs::read_to_string(d.path().join("h1/acc")).unwrap(), "10,20,30\n");
}

/// A template file sees `hostvars` though its task does not name it.
#[test]
fn hostvars_in_a_template_file() {
    let d = tempfile::tempdir().unwrap();
    inventory(d.path(), &["h1", "h2"]);
    write(
        d.path(),
        "hv.yml",
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - template: { src: hv.j2, dest: "{{ root }}/hv" }
"#,
    );
    write(
        d.path(),
        "templates/hv.j2",
        "{% for h in groups['all'] %}{{ hostvars[h]['root'] | basename }} {% endfor %}\n",
    );
    let r = pbr(d.path(), &["run", "hv.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 0, "{}", r.all());
    // (trim_blocks, as Ansible: the newline after the block tag goes, and the template's
    // trailing newline is put back, as ansible-core 2.14 writes it)
    assert_eq!(std::fs::read_to_string(d.path().join("h1/hv")).unwrap(), "h1 h2 \n");
}

#[test]
fn roles_are_found_on_the_roles_path() {
    let d = tempfile::tempdir().unwrap();
    inventory(d.path(), &["h1"]);
    let role = |dir: &str, name: &str| {
        write(
            d.path(),
            &format!("{dir}/{name}/tasks/main.yml"),
            &format!("- copy: {{ dest: \"{{{{ root }}}}/{name}\", content: \"from {dir}\\n\" }}\n"),
        );
    };
    role("shared", "greet");
    role("elsewhere/roles", "wave");
    write(d.path(), "site/pb.yml", "- hosts: all\n  gather_facts: false\n  roles: [greet, wave]\n");
    // not found: the message lists where it looked, the roles path included
    let r = pbr(d.path(), &["run", "site/pb.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 4, "{}", r.all());
    assert!(r.stderr.contains("role `greet` not found") && r.stderr.contains(".ansible/roles/greet"), "{}", r.stderr);
    // ansible.cfg's roles_path (relative to it), then ANSIBLE_ROLES_PATH on top
    write(d.path(), "ansible.cfg", "[defaults]\nroles_path = ./shared:./elsewhere/roles\n");
    let r = pbr(d.path(), &["run", "site/pb.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(std::fs::read_to_string(d.path().join("h1/greet")).unwrap(), "from shared\n");
    assert_eq!(std::fs::read_to_string(d.path().join("h1/wave")).unwrap(), "from elsewhere/roles\n");
    std::fs::remove_file(d.path().join("ansible.cfg")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pbr"))
        .args(["lint", "site/pb.yml", "-i", "inventory.ini"])
        .current_dir(d.path())
        .env("ANSIBLE_ROLES_PATH", format!("{0}/shared:{0}/elsewhere/roles", d.path().display()))
        .env(LOOPBACK_ONLY.0, LOOPBACK_ONLY.1)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn role_dependencies_run_first_and_once() {
    let d = tempfile::tempdir().unwrap();
    inventory(d.path(), &["h1"]);
    // each role appends its name (and its `who`) to one file
    let role = |name: &str, meta: &str| {
        write(
            d.path(),
            &format!("roles/{name}/tasks/main.yml"),
            &format!(
                "- lineinfile: {{ path: \"{{{{ root }}}}/order\", line: \"{name} {{{{ who | default('-') }}}} {{{{ lookup('pipe', 'date +%s%N') }}}}\", create: true }}\n"
            ),
        );
        if !meta.is_empty() {
            write(d.path(), &format!("roles/{name}/meta/main.yml"), meta);
        }
    };
    role("base", "");
    role("greet", "");
    role("app", "galaxy_info: {author: x}\ndependencies:\n  - base\n  - role: greet\n    vars: { who: app }\n");
    role("again", "allow_duplicates: true\n");
    write(
        d.path(),
        "pb.yml",
        "- hosts: all\n  gather_facts: false\n  roles:\n    - app\n    - base\n    - role: greet\n      who: app\n    - again\n    - again\n",
    );
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let order = std::fs::read_to_string(d.path().join("h1/order")).unwrap();
    let names: Vec<String> =
        order.lines().map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(names, ["base -", "greet app", "app -", "again -", "again -"], "{order}");
}

#[test]
fn tilde_in_host_paths_is_the_home_there() {
    let d = tempfile::tempdir().unwrap();
    inventory(d.path(), &["h1"]);
    let home = d.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    write(
        d.path(),
        "pb.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - file: { path: ~/made, state: directory }\n    \
         - copy: { dest: ~/made/x, content: \"hi\\n\" }\n    \
         - command: touch stamp\n      args: { chdir: ~/made, creates: ~/made/stamp }\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pbr"))
        .args(["run", "pb.yml", "-i", "inventory.ini"])
        .current_dir(d.path())
        .env("HOME", &home)
        .env("NO_COLOR", "1")
        .env(LOOPBACK_ONLY.0, LOOPBACK_ONLY.1)
        .output()
        .unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{all}");
    assert_eq!(std::fs::read_to_string(home.join("made/x")).unwrap(), "hi\n");
    assert!(home.join("made/stamp").exists(), "{all}");
    assert!(!d.path().join("~").exists(), "a directory named ~ was made");
}

/// Check mode sees its own plan: on a fresh host, later tasks probe what earlier planned ops
/// would make (a file an earlier task writes, a directory, a command's `creates`), and a task that
/// needs the output of a command that would run is skipped saying so, not failed. The real run
/// then reports the same changed count, and what check mode showed is what it wrote.
#[test]
fn check_mode_sees_what_earlier_tasks_would_do() {
    let d = tempfile::tempdir().unwrap();
    inventory(d.path(), &["h1"]);
    write(
        d.path(),
        "pb.yml",
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - file: { path: "{{ root }}/etc/app", state: directory, mode: "0750" }
    - copy: { content: "port=22\n", dest: "{{ root }}/etc/app/app.conf" }
    - name: an edit of the file the copy writes (no create)
      lineinfile: { path: "{{ root }}/etc/app/app.conf", regexp: '^port=', line: "port=2222" }
    - name: attributes of it
      file: { path: "{{ root }}/etc/app/app.conf", mode: "0600" }
    - stat: { path: "{{ root }}/etc/app/app.conf" }
      register: conf
    - assert:
        that: [conf.stat.exists, conf.stat.mode == '0600', conf.stat.isreg]
    - command: "touch {{ root }}/stamp"
      args: { creates: "{{ root }}/stamp" }
    - name: the same stamp, done by then
      command: "touch {{ root }}/stamp"
      args: { creates: "{{ root }}/stamp" }
    - command: "echo 42"
      register: answer
      # its own result is unknown in check mode too: the command would run, so it would change
      changed_when: answer.stdout != ''
    - name: needs the answer
      debug: { msg: "the answer is {{ answer.stdout }}" }
    - name: guarded by the answer
      copy: { content: "{{ answer.stdout }}\n", dest: "{{ root }}/answer" }
      when: answer.rc == 0
"#,
    );
    let before = snapshot(d.path());
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inventory.ini", "--check", "--diff"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(snapshot(d.path()), before, "check mode wrote something");
    assert!(r.stdout.contains("-port=22\n+port=2222"), "{}", r.stdout);
    assert!(r.stdout.contains("mode 0644 → 0600"), "{}", r.stdout);
    assert_eq!(r.stdout.matches("would run; result unknown in check mode (`answer`").count(), 2, "{}", r.stdout);
    let rc = r.recap("h1");
    // directory, copy, lineinfile, file mode, one stamp command, echo
    assert_eq!((rc["changed"], rc["failed"], rc["skipped"]), (6, 0, 2), "{}", r.all());

    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let rc = r.recap("h1");
    // the same six, and the answer file now that the answer is known
    assert_eq!((rc["changed"], rc["failed"]), (7, 0), "{}", r.all());
    assert!(r.stdout.contains("the answer is 42"), "{}", r.stdout);
    let root = d.path().join("h1");
    assert_eq!(std::fs::read_to_string(root.join("etc/app/app.conf")).unwrap(), "port=2222\n");
    assert_eq!(mode_of(&root.join("etc/app/app.conf")), 0o600);
    assert_eq!(mode_of(&root.join("etc/app")), 0o750);
}

/// A saved plan: `run --check --save-plan` writes what it found to do (no secret in clear), `show`
/// prints it, `apply` runs it only where the host still plans the same: a host that drifted is
/// refused with the task that differs, nothing is written on it (exit 5), the others converge.
#[test]
fn saved_plan_applies_where_nothing_drifted() {
    let d = tempfile::tempdir().unwrap();
    inventory(d.path(), &["h1", "h2"]);
    let vault = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vault");
    std::fs::copy(vault.join("secrets.yml"), d.path().join("secrets.yml")).unwrap();
    std::fs::copy(vault.join("password"), d.path().join("vault-pass")).unwrap();
    write(
        d.path(),
        "pb.yml",
        r#"
- hosts: all
  gather_facts: false
  vars_files: [secrets.yml]
  tasks:
    - copy: { content: "psk={{ wifi_passphrase }}\n", dest: "{{ root }}/wifi.conf", mode: "0600" }
    - lineinfile: { path: "{{ root }}/motd", line: "hello {{ inventory_hostname }}", create: true }
"#,
    );
    let vp = ["--vault-password-file", "vault-pass"];
    let mut args = vec!["run", "pb.yml", "-i", "inventory.ini", "--check", "--save-plan", "site.plan"];
    args.extend(vp);
    let r = pbr(d.path(), &args);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stderr.contains("plan saved to site.plan (2 hosts, 4 changes)"), "{}", r.stderr);
    let text = std::fs::read_to_string(d.path().join("site.plan")).unwrap();
    assert!(!text.contains("correct horse"), "a secret in the plan file:\n{text}");
    assert!(text.contains("\"format\": \"pbr-plan\"") && text.contains("\"version\": 1"), "{text}");
    assert_eq!(mode_of(&d.path().join("site.plan")), 0o600);
    assert!(!d.path().join("h1/motd").exists(), "check mode wrote");

    let r = pbr(d.path(), &["show", "site.plan"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("+hello h1") && r.stdout.contains("+hello h2"), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("+ create {}/h2/motd", d.path().display())), "{}", r.stdout);
    assert!(!r.stdout.contains("correct horse"), "{}", r.stdout);

    // h2 drifts: its motd appears with other content
    std::fs::write(d.path().join("h2/motd"), "someone else's\n").unwrap();
    let mut args = vec!["apply", "site.plan"];
    args.extend(vp);
    let r = pbr(d.path(), &args);
    assert_eq!(r.code, 5, "{}", r.all());
    assert!(r.stderr.contains("REFUSED: [h2] drifted since the plan: task \"lineinfile\""), "{}", r.stderr);
    assert!(r.stderr.contains("the plan had + create"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(d.path().join("h2/motd")).unwrap(), "someone else's\n");
    assert!(!d.path().join("h2/wifi.conf").exists(), "a refused host was written to");
    assert_eq!(std::fs::read_to_string(d.path().join("h1/motd")).unwrap(), "hello h1\n");
    assert_eq!(std::fs::read_to_string(d.path().join("h1/wifi.conf")).unwrap(), "psk=correct horse battery staple\n");
    assert_eq!(r.recap("h1")["changed"], 2, "{}", r.all());
    assert!(!r.all().contains("correct horse"), "{}", r.all());

    // other extra variables than the plan's: refused before anything runs
    let mut args = vec!["apply", "site.plan", "-e", "x=1"];
    args.extend(vp);
    let r = pbr(d.path(), &args);
    assert_eq!(r.code, 4, "{}", r.all());
    assert!(r.stderr.contains("extra variables"), "{}", r.stderr);
    // not a plan
    let r = pbr(d.path(), &["show", "pb.yml"]);
    assert_eq!(r.code, 4, "{}", r.all());
    assert!(r.stderr.contains("not a pbr plan"), "{}", r.stderr);
    // --save-plan without --check
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inventory.ini", "--save-plan", "x.plan"]);
    assert_eq!(r.code, 4, "{}", r.all());
}

/// `pbr apply` checks each task's plan against the saved one just before it applies: a file
/// that changes after apply's own check (here: by an earlier task of the run, as another writer
/// could) stops the task that would now make other changes, before it writes.
#[test]
fn saved_plan_apply_stops_a_task_whose_plan_changed_since() {
    let d = tempfile::tempdir().unwrap();
    inventory(d.path(), &["h1"]);
    std::fs::write(d.path().join("h1/motd"), "old\n").unwrap();
    write(
        d.path(),
        "pb.yml",
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - name: another writer
      shell: "echo changed-underneath > {{ root }}/motd; touch {{ root }}/stamp"
      args: { creates: "{{ root }}/stamp" }
    - name: motd
      copy: { content: "planned\n", dest: "{{ root }}/motd" }
"#,
    );
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inventory.ini", "--check", "--save-plan", "site.plan"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let r = pbr(d.path(), &["apply", "site.plan"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.all().contains("drifted since the plan: task \"motd\""), "{}", r.all());
    assert!(r.all().contains("nothing was written"), "{}", r.all());
    assert_eq!(std::fs::read_to_string(d.path().join("h1/motd")).unwrap(), "changed-underneath\n");
}

#[test]
fn jsonfile_fact_cache_keeps_cacheable_facts_between_runs() {
    let d = tempfile::tempdir().unwrap();
    inventory(d.path(), &["h1"]);
    write(
        d.path(),
        "ansible.cfg",
        "[defaults]\ninventory = inventory.ini\nfact_caching = jsonfile\nfact_caching_connection = ./facts\n",
    );
    write(
        d.path(),
        "first.yml",
        r#"
- hosts: all
  gather_facts: true
  tasks:
    - set_fact: { kept: from-first-run, cacheable: true }
    - set_fact: "cacheable=no not_kept=1"
"#,
    );
    write(
        d.path(),
        "second.yml",
        r#"
- hosts: all
  gather_facts: true
  tasks:
    - assert:
        that:
          - kept == 'from-first-run'
          # gathering again adds to the cached facts, as in Ansible
          - ansible_facts.kept == 'from-first-run'
          - not_kept is undefined
          - ansible_os_family == ansible_facts.os_family
          - hostvars[inventory_hostname].kept == 'from-first-run'
"#,
    );
    let r = pbr(d.path(), &["run", "first.yml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    // the cache's ansible.cfg keys are read, so no warning names them
    assert!(!r.stderr.contains("pbr does not read"), "{}", r.stderr);
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("facts/h1")).unwrap()).unwrap();
    assert_eq!(file["kept"], "from-first-run");
    assert!(file.get("not_kept").is_none() && file.get("ansible_os_family").is_some(), "{file}");
    let r = pbr(d.path(), &["run", "second.yml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    // --flush-cache forgets them (the facts gathered afterwards are cached anew)
    let r = pbr(d.path(), &["run", "second.yml", "--flush-cache"]);
    assert_eq!(r.code, 2, "{}", r.all());
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("facts/h1")).unwrap()).unwrap();
    assert!(file.get("kept").is_none() && file.get("ansible_os_family").is_some(), "{file}");
    // a cache plugin pbr does not have is refused before anything runs
    write(d.path(), "ansible.cfg", "[defaults]\ninventory = inventory.ini\nfact_caching = redis\n");
    let r = pbr(d.path(), &["run", "second.yml"]);
    assert_eq!(r.code, 4, "{}", r.all());
    assert!(r.stderr.contains("fact cache plugin \"redis\" is not supported"), "{}", r.stderr);
}

/// The engine's actions read their params with the types lint and `pbr doc` show: `pause`
/// takes `minutes` (it was ignored) and refuses a negative time (it panicked); `group_by`
/// takes a number as its key; an unknown param of a templated `fail` is an error at run time.
#[test]
fn engine_actions_read_their_params_typed() {
    let (_d, r) = play(
        &["h1"],
        r#"
- hosts: all
  gather_facts: false
  vars:
    neg: -1
    zero: 0
  tasks:
    - pause: { minutes: "{{ zero }}" }
    - pause: { seconds: "{{ neg }}" }
      register: negative
      ignore_errors: true
    - assert:
        that:
          - negative is failed
          - "'not negative' in negative.msg"
    - group_by: { key: 42 }
    - assert:
        that: "'42' in group_names"
    - fail: "{{ {'msg': 'stop', 'bogus': 1} }}"
      register: bad
      ignore_errors: true
    - assert:
        that:
          - bad is failed
          - "'bogus' in bad.msg"
"#,
        &[],
    );
    assert_eq!(r.recap("h1")["failed"], 0, "{}", r.all());
    assert_eq!(r.recap("h1")["ignored"], 2, "{}", r.all());
}

const LISTED: &str = r#"
- name: first play
  hosts: all
  gather_facts: false
  tags: [base]
  tasks:
    - name: one
      copy: { dest: "{{ root }}/one", content: "1" }
      tags: [a]
    - block:
        - name: two
          copy: { dest: "{{ root }}/two", content: "2" }
          tags: [b, a]
        - name: three
          copy: { dest: "{{ root }}/three", content: "3" }
      tags: [blk]
    - name: never run
      debug: msg=never
      tags: [never]
- hosts: h1
  gather_facts: false
  roles: [web]
  tasks:
    - copy: { dest: "{{ root }}/last", content: "4" }
"#;

/// `--list-hosts`, `--list-tasks`, `--list-tags` in ansible-playbook's layout (checked against
/// ansible-core 2.14's output for the same playbook), `--syntax-check`, and `--start-at-task`:
/// the tasks before the named one do not run, the run goes on from it, and a name that no task
/// has is refused before anything runs. None of them connects anywhere.
#[test]
fn list_syntax_check_and_start_at_task() {
    let d = tempfile::tempdir().unwrap();
    inventory(d.path(), &["h1", "h2"]);
    write(d.path(), "pb.yml", LISTED);
    write(d.path(), "roles/web/tasks/main.yml", "- name: role task\n  debug: msg=r\n");
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inventory.ini", "--list-hosts", "--list-tasks", "--list-tags"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let expected = "\nplaybook: pb.yml\n\n  play #1 (all): first play\tTAGS: [base]\n    pattern: ['all']\n    hosts (2):\n      h1\n      h2\n    tasks:\n      one\tTAGS: [a, base]\n      two\tTAGS: [a, b, base, blk]\n      three\tTAGS: [base, blk]\n      TASK TAGS: [a, b, base, blk]\n\n  play #2 (h1): h1\tTAGS: []\n    pattern: ['h1']\n    hosts (1):\n      h1\n    tasks:\n      web : role task\tTAGS: []\n      copy\tTAGS: []\n      TASK TAGS: []\n";
    assert_eq!(r.stdout, expected);
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inventory.ini", "--list-tasks", "-t", "b", "-l", "h2"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("    tasks:\n      two\tTAGS: [a, b, base, blk]\n\n"), "{}", r.stdout);
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inventory.ini", "--syntax-check"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "\nplaybook: pb.yml\n"), "{}", r.all());
    for h in ["h1", "h2"] {
        assert!(!d.path().join(h).join("one").exists(), "listing ran a task");
    }

    // a glob names the block's second task: it and everything after it run, nothing before
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inventory.ini", "--start-at-task", "thr*"]);
    assert_eq!(r.code, 0, "{}", r.all());
    for h in ["h1", "h2"] {
        assert!(!d.path().join(h).join("one").exists() && !d.path().join(h).join("two").exists(), "{}", r.all());
        assert!(d.path().join(h).join("three").exists(), "{}", r.all());
    }
    assert!(d.path().join("h1/last").exists(), "{}", r.all());
    assert!(r.stdout.contains("TASK [web : role task]"), "{}", r.stdout);
    // `role : name` names a role's task
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inventory.ini", "--start-at-task", "web : role task"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(!r.stdout.contains("TASK [three]") && r.stdout.contains("TASK [web : role task]"), "{}", r.stdout);

    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inventory.ini", "--start-at-task", "fourteen"]);
    assert_eq!(r.code, 4, "{}", r.all());
    assert!(r.stderr.contains("--start-at-task \"fourteen\": no task of that name"), "{}", r.all());
    assert!(!r.stdout.contains("TASK"), "{}", r.all());
}

/// Keywords on a `roles:` entry apply to the role's tasks (a task's own win), as a block's do;
/// the ones pbr does not take there are refused, not read as the role's params.
#[test]
fn role_entry_keywords_reach_the_role_tasks() {
    let d = tempfile::tempdir().unwrap();
    inventory(d.path(), &["h1"]);
    write(
        d.path(),
        "roles/env/tasks/main.yml",
        "- shell: echo \"$GREETING\" > {{ root }}/env\n- command: \"false\"\n\
         - copy: { dest: \"{{ root }}/after\", content: ran }\n- copy: { dest: \"{{ root }}/own\", content: x }\n  check_mode: true\n",
    );
    write(d.path(), "roles/dry/tasks/main.yml", "- copy: { dest: \"{{ root }}/dry\", content: x }\n");
    write(
        d.path(),
        "pb.yml",
        "- hosts: all\n  gather_facts: false\n  roles:\n\
         \x20   - { role: env, environment: { GREETING: hi }, ignore_errors: true }\n\
         \x20   - { role: dry, check_mode: true }\n",
    );
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.recap("h1")["ignored"], 1, "{}", r.all());
    let h1 = d.path().join("h1");
    assert_eq!(std::fs::read_to_string(h1.join("env")).unwrap(), "hi\n");
    assert!(h1.join("after").exists(), "{}", r.all());
    assert!(!h1.join("own").exists() && !h1.join("dry").exists(), "{}", r.all());

    write(d.path(), "pb.yml", "- hosts: all\n  gather_facts: false\n  roles:\n    - { role: dry, diff: true }\n");
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 4, "{}", r.all());
    assert!(r.stderr.contains("pbr does not take `diff` on a roles: entry"), "{}", r.all());
}

/// A task that ignores its errors may fail on purpose: bad params on it fail the task when it
/// runs (ignored), as in Ansible, instead of refusing the run; `pbr lint` still reports them.
/// A replacement Python cannot read fails `replace` with Ansible 2.19's message whatever the file.
#[test]
fn expected_failures_run_and_bad_replacements_fail_with_ansibles_message() {
    let yml = "- hosts: all\n  gather_facts: false\n  tasks:\n\
               \x20   - replace: { path: /dev/null, regexp: '\\.', replace: '\\D' }\n      ignore_errors: true\n      register: r\n\
               \x20   - copy: { dest: \"{{ root }}/x\" }\n      ignore_errors: yes\n      register: c\n\
               \x20   - assert:\n        that:\n          - r is failed and r.msg.startswith('Unable to process replace due to error: bad escape')\n          - c is failed\n";
    let (d, r) = play(&["h1"], yml, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.recap("h1")["ignored"], 2, "{}", r.all());
    let l = pbr(d.path(), &["lint", "pb.yml", "-i", "inventory.ini"]);
    assert_eq!(l.code, 2, "{}", l.all());
    assert!(l.stdout.contains("bad escape \\D at position 0"), "{}", l.all());
}

/// ansible.cfg's `gathering`: `explicit` gathers only where a play says `gather_facts: true`,
/// `smart` only on hosts with no facts yet (even where the play says yes, as Ansible), a bad
/// value is an input error.
#[test]
fn gathering_from_ansible_cfg() {
    let d = tempfile::tempdir().unwrap();
    inventory(d.path(), &["h1"]);
    let two = "- hosts: all\n  tasks: [ { debug: msg=one } ]\n- hosts: all\n  tasks: [ { debug: msg=two } ]\n\
               - hosts: all\n  gather_facts: true\n  tasks: [ { debug: msg=three } ]\n";
    write(d.path(), "pb.yml", two);
    let gathered = |r: &Run| r.stdout.matches("TASK [Gathering Facts]").count();
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inventory.ini"]);
    assert_eq!((r.code, gathered(&r)), (0, 3), "{}", r.all());
    write(d.path(), "ansible.cfg", "[defaults]\ngathering = explicit\n");
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inventory.ini"]);
    assert_eq!((r.code, gathered(&r)), (0, 1), "{}", r.all());
    write(d.path(), "ansible.cfg", "[defaults]\ngathering = smart\n");
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inventory.ini"]);
    assert_eq!((r.code, gathered(&r)), (0, 1), "{}", r.all());
    assert!(!r.stderr.contains("does not read"), "{}", r.stderr);
    write(d.path(), "ansible.cfg", "[defaults]\ngathering = sometimes\n");
    let r = pbr(d.path(), &["run", "pb.yml", "-i", "inventory.ini"]);
    assert_eq!(r.code, 4, "{}", r.all());
}

/// The ansible.cfg is found as Ansible finds it (`ANSIBLE_CONFIG`, then `./ansible.cfg`, then
/// `~/.ansible.cfg`), and its relative paths start at its own directory.
#[test]
fn ansible_cfg_is_found_as_ansible_finds_it() {
    let d = tempfile::tempdir().unwrap();
    let cfgdir = d.path().join("conf");
    inventory(&cfgdir, &["h1"]);
    write(&cfgdir, "ansible.cfg", "[defaults]\ninventory = inventory.ini\nforks = 3\n");
    let work = d.path().join("work");
    write(
        &work,
        "pb.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: msg={{ lookup('config', 'DEFAULT_FORKS') }}\n",
    );
    let run = |envs: &[(&str, &std::path::Path)]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_pbr"));
        c.args(["run", "pb.yml"]).current_dir(&work).env("NO_COLOR", "1").env_remove("ANSIBLE_CONFIG");
        c.env(LOOPBACK_ONLY.0, LOOPBACK_ONLY.1);
        for (k, v) in envs {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    // ANSIBLE_CONFIG names the file (or its directory); the inventory is found beside it
    for cfg in [cfgdir.join("ansible.cfg"), cfgdir.clone()] {
        let (code, out) = run(&[("ANSIBLE_CONFIG", &cfg), ("HOME", d.path())]);
        assert_eq!(code, Some(0), "{out}");
        // forks from that file
        assert!(out.contains("ok: [h1]\n  3\n"), "{out}");
    }
    // ~/.ansible.cfg when the working directory has none
    std::fs::rename(cfgdir.join("ansible.cfg"), cfgdir.join(".ansible.cfg")).unwrap();
    let (code, out) = run(&[("HOME", &cfgdir)]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("ok: [h1]\n  3\n"), "{out}");
}
