//! `pbr demo`: a self-contained playbook run against this machine in a temp dir, twice, to show
//! a converge, then a no-op second run.

use std::process::ExitCode;

const PLAYBOOK: &str = r#"# pbr demo: converges a tiny "Pi boot config" tree under a temp root.
- name: pbr demo
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    root: "{{ demo_root }}"
    hooks: [base, udev, iscsi, filesystems]
  tasks:
    - name: Config directory exists
      file:
        path: "{{ root }}/etc/initcpio"
        state: directory
        mode: "0755"

    - name: mkinitcpio.conf lists the hooks
      copy:
        dest: "{{ root }}/etc/mkinitcpio.conf"
        content: |
          # managed by pbr
          MODULES=()
          HOOKS=({{ hooks | join(' ') }})
        mode: "0644"
      notify: regenerate

    - name: The kernel command line boots from bcache
      lineinfile:
        path: "{{ root }}/boot/cmdline.txt"
        line: "root=/dev/bcache0 rw ip=dhcp"
        create: true

    - name: Show what the hooks are
      debug:
        msg: "hooks: {{ hooks | join(', ') }}"

  handlers:
    - name: regenerate
      command: "touch {{ root }}/regenerated"
"#;

pub async fn run(keep: bool) -> ExitCode {
    let dir = match tempfile::Builder::new().prefix("pbr-demo.").tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot make a temp dir: {e}");
            return ExitCode::from(1);
        }
    };
    let root = dir.path().join("root");
    let pb = dir.path().join("demo.yml");
    if let Err(e) = std::fs::create_dir_all(root.join("boot")).and_then(|_| std::fs::write(&pb, PLAYBOOK)) {
        eprintln!("error: cannot write the demo: {e}");
        return ExitCode::from(1);
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| "pbr".into());
    let mut last = ExitCode::SUCCESS;
    for (title, extra) in [
        ("1. check mode: what would change (nothing is written)", vec!["--check", "--diff"]),
        ("2. the real run: converge", vec!["--diff"]),
        ("3. the second run: nothing left to do (changed=0)", vec![]),
    ] {
        println!("\n### {title}");
        let status = std::process::Command::new(&exe)
            .arg("run")
            .arg(&pb)
            .args(["-i", "localhost,", "-e"])
            .arg(format!("demo_root={}", root.display()))
            .args(extra)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => {
                last = ExitCode::from(s.code().unwrap_or(1) as u8);
                break;
            }
            Err(e) => {
                eprintln!("error: cannot run {}: {e}", exe.display());
                return ExitCode::from(1);
            }
        }
    }
    if keep {
        let p = dir.keep();
        println!("\nThe demo tree is in {}", p.display());
    }
    last
}
