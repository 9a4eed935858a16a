//! The storage modules for real on the VM lab: `storage` builds VDO → VG (+ SSD) → one LV per Pi
//! with an SSD cache → ext4 → an iSCSI export with a CHAP ACL; `pi` logs in and puts bcache (its
//! SD card) in front of the iSCSI disk, formats and mounts it, writes a file. Check mode first
//! changes nothing; the real run converges with `--verify`; the second run changes nothing; the
//! data-safety refusals hold. Named `lab_*` (see tests/lab.rs): `PBR_LAB=0` skips it.

use pbr_testkit::lab::{Lab, Vm, require_lab};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const CHAP_PW: &str = "s3cret-chap-pw";

const SITE: &str = r#"- hosts: storage
  gather_facts: false
  become: true
  tasks:
    - name: LVM scans PVs that live on LVs (the Pi VG sits on the VDO volume)
      lineinfile:
        path: /etc/lvm/lvm.conf
        regexp: '^\s*#?\s*scan_lvs\s*='
        line: "\tscan_lvs = 1"
        insertafter: '^devices \{'
    - name: LVM mixes the VDO volume's 4 KiB sectors with the SSD's 512 B ones in one VG
      lineinfile:
        path: /etc/lvm/lvm.conf
        regexp: '^\s*#?\s*allow_mixed_block_sizes\s*='
        line: "\tallow_mixed_block_sizes = 1"
        insertafter: '^devices \{'
    - name: VG on the hdd
      lvg: { vg: vdo, pvs: /dev/vdb }
    - name: Deduplicating pool
      vdo: { vg: vdo, pool: vpool, name: dedup, size: 10G, logical_size: 24G, deduplication: true, compression: false }
      register: vdo
    - name: VG for the Pis on the VDO volume and the SSD
      lvg: { vg: pis, pvs: [/dev/vdo/dedup, /dev/vdc] }
    - name: The Pi's disk
      lvol: { vg: pis, lv: pi, size: 2G, pvs: /dev/vdo/dedup }
    - name: SSD cache for it
      lvm_cache: { vg: pis, lv: pi, cache_pv: /dev/vdc, size: 256M, cache_mode: writeback }
    - name: A shared LV with ext4
      lvol: { vg: pis, lv: shared, size: 1G, pvs: /dev/vdo/dedup }
    - filesystem: { dev: /dev/pis/shared, fstype: ext4 }
    - name: Export the Pi's disk
      targetcli:
        backstores:
          - { name: pi, dev: /dev/pis/pi }
        targets:
          - iqn: iqn.2024-01.lan.storage:pi
            luns: [{ backstore: pi }]
            portals: [{ ip: "{{ lan_ip }}" }]
            acls:
              - initiator: iqn.2024-01.lan.pi:initiator
                chap_userid: pi
                chap_password: s3cret-chap-pw
            attributes: { authentication: 1, generate_node_acls: 0 }

- hosts: pi
  gather_facts: false
  become: true
  tasks:
    - name: Log in to the Pi's disk
      iscsi:
        initiator_name: iqn.2024-01.lan.pi:initiator
        portal: 10.99.0.1
        target: iqn.2024-01.lan.storage:pi
        startup: automatic
        chap_userid: pi
        chap_password: s3cret-chap-pw
      register: disk
    - name: SD card in front of it
      bcache: { backing: "{{ disk.device }}", cache: /dev/vdb2, cache_mode: writeback, sequential_cutoff: 4M }
      register: bc
    - filesystem: { dev: "{{ bc.device | default('/dev/bcache0') }}", fstype: ext4 }
    - command: mount {{ bc.device | default('/dev/bcache0') }} /mnt
      args: { creates: /mnt/lost+found }
    - copy: { dest: /mnt/hello, content: "hello from the pi\n" }
"#;

const REFUSALS: &str = r#"- hosts: storage
  gather_facts: false
  become: true
  tasks:
    - name: format the SSD PV
      filesystem: { dev: /dev/vdc, fstype: xfs }
      ignore_errors: true
    - name: PV on a filesystem
      lvg: { vg: other, pvs: /dev/pis/shared }
      ignore_errors: true
    - name: shrink the Pi's disk
      lvol: { vg: pis, lv: pi, size: 1G }
      ignore_errors: true
    - name: remove the pool
      vdo: { vg: vdo, pool: vpool, name: dedup, state: absent }
      ignore_errors: true
- hosts: pi
  gather_facts: false
  become: true
  tasks:
    - name: bcache over a disk with a filesystem
      bcache: { backing: /dev/bcache0, cache: /dev/vdb2 }
      ignore_errors: true
"#;

const FACTS_AND_DETACH: &str = r#"- hosts: storage
  gather_facts: false
  become: true
  tasks:
    - vdo: { vg: vdo, pool: vpool, name: dedup }
      register: v
    - debug: { msg: "VDO {{ v.saving }}" }
    - lvm_cache: { vg: pis, lv: pi, cache_pv: /dev/vdc, state: absent }
    - service_facts:
    - debug: { msg: "ssh.service is {{ ansible_facts.services['ssh.service'].state }} and {{ services['ssh.service'].status }}" }
"#;

/// What check mode must not touch: block devices, LVM, LIO, the initiator.
/// (Only fields that do not move by themselves: no cache or VDO usage percentages.)
const STATE_STORAGE: &str = "sudo -n sh -c 'lsblk -rno NAME,TYPE,FSTYPE,SIZE; pvs -o pv_name,vg_name,pv_size,pv_free; \
    vgs -o vg_name,vg_size,vg_free; lvs -a -o vg_name,lv_name,lv_attr,lv_size,segtype,cache_mode; \
    find /sys/kernel/config/target 2>/dev/null | sort; md5sum /etc/lvm/lvm.conf'";
const STATE_PI: &str = "sudo -n sh -c 'lsblk -rno NAME,TYPE,FSTYPE,SIZE; iscsiadm -m session 2>&1; \
    iscsiadm -m node 2>&1; cat /etc/iscsi/initiatorname.iscsi; ls /sys/fs/bcache; findmnt /mnt || true'";

fn pbr(dir: &Path, playbook: &str, args: &[&str]) -> (Option<i32>, String, f64) {
    let t = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_pbr"))
        .args(["run", "-i", "inventory.ini", playbook])
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let out = format!("{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(!out.contains(CHAP_PW), "the CHAP password reached the output:\n{out}");
    (o.status.code(), out, t.elapsed().as_secs_f64())
}

fn recap<'a>(out: &'a str, host: &str) -> &'a str {
    out.lines().rev().find(|l| l.split_whitespace().next() == Some(host) && l.contains("ok=")).unwrap_or("")
}

/// Equal machine states, or a failure showing the lines that differ.
fn assert_same(before: &(String, String), after: &(String, String), what: &str) {
    for (b, a) in [(&before.0, &after.0), (&before.1, &after.1)] {
        let gone: Vec<&str> = b.lines().filter(|l| !a.lines().any(|x| x == *l)).collect();
        let new: Vec<&str> = a.lines().filter(|l| !b.lines().any(|x| x == *l)).collect();
        assert!(gone.is_empty() && new.is_empty(), "{what}: lines gone {gone:#?}, lines new {new:#?}");
    }
}

fn sh(lab: &Lab, vm: Vm, cmd: &str) -> String {
    lab.sh(vm, cmd).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn lab_storage_stack() {
    if !require_lab("lab_storage_stack") {
        return;
    }
    let t0 = Instant::now();
    let lab = Lab::start().unwrap_or_else(|e| panic!("lab did not start: {e}"));
    let boot = t0.elapsed().as_secs_f64();
    let dir = tempfile::tempdir().unwrap();
    lab.write_inventory(&dir.path().join("inventory.ini")).unwrap();
    for (name, text) in [("site.yml", SITE), ("refusals.yml", REFUSALS), ("facts.yml", FACTS_AND_DETACH)] {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let mut timings = vec![("lab start", boot)];

    // 1. --check --diff on fresh machines: every task plans, nothing changes
    let before = (sh(&lab, Vm::Storage, STATE_STORAGE), sh(&lab, Vm::Pi, STATE_PI));
    let (code, out, secs) = pbr(dir.path(), "site.yml", &["--check", "--diff"]);
    timings.push(("check --diff", secs));
    assert_eq!(code, Some(0), "check run:\n{out}");
    for want in [
        "VG vdo is created on /dev/vdb",
        "VDO pool vdo/vpool is created (10 GiB of storage, 24 GiB logical as vdo/dedup; deduplication on, compression off)",
        "/dev/vdo/dedup becomes an LVM PV once it exists",
        "LV pis/pi gains an SSD cache (writeback, 256 MiB on /dev/vdc)",
        "iSCSI target iqn.2024-01.lan.storage:pi (TPG 1) is created",
        "must log in with CHAP user pi (password set, not shown)",
        "this host logs in to iqn.2024-01.lan.storage:pi at 10.99.0.1:3260",
        "becomes a bcache backing device once it exists",
    ] {
        assert!(out.contains(want), "check output lacks {want:?}:\n{out}");
    }
    let after = (sh(&lab, Vm::Storage, STATE_STORAGE), sh(&lab, Vm::Pi, STATE_PI));
    assert_same(&before, &after, "check mode changed the machines");

    // 2. the real run converges, every module re-probed by --verify
    let (code, out, secs) = pbr(dir.path(), "site.yml", &["--verify"]);
    timings.push(("apply --verify", secs));
    assert_eq!(code, Some(0), "real run:\n{out}");
    let lvs = sh(&lab, Vm::Storage, "sudo -n lvs --noheadings -o lv_name,segtype,cache_mode pis vdo");
    let lvs: Vec<Vec<&str>> = lvs.lines().map(|l| l.split_whitespace().collect()).collect();
    for want in
        [vec!["pi", "cache", "writeback"], vec!["shared", "linear"], vec!["dedup", "vdo"], vec!["vpool", "vdo-pool"]]
    {
        assert!(lvs.contains(&want), "lvs lacks {want:?}: {lvs:?}");
    }
    let acl = sh(
        &lab,
        Vm::Storage,
        "sudo -n cat /sys/kernel/config/target/iscsi/iqn.2024-01.lan.storage:pi/tpgt_1/acls/iqn.2024-01.lan.pi:initiator/auth/userid",
    );
    assert_eq!(acl.trim(), "pi");
    sh(&lab, Vm::Storage, "sudo -n test -s /etc/rtslib-fb-target/saveconfig.json");
    let pi = sh(
        &lab,
        Vm::Pi,
        "sudo -n sh -c 'cat /mnt/hello; cat /sys/block/bcache0/bcache/state; lsblk -rno NAME,TRAN /dev/sda; cat /sys/block/bcache0/bcache/cache_mode'",
    );
    let pi: Vec<&str> = pi.lines().collect();
    assert_eq!(pi[0], "hello from the pi");
    assert!(["clean", "dirty"].contains(&pi[1]), "bcache has no cache attached: {pi:?}");
    assert!(pi.iter().any(|l| l.starts_with("sda iscsi")), "{pi:?}");
    assert!(pi.iter().any(|l| l.contains("[writeback]")), "{pi:?}");

    // 3. the second run changes nothing
    let (code, out, secs) = pbr(dir.path(), "site.yml", &["--verify"]);
    timings.push(("second run", secs));
    assert_eq!(code, Some(0), "second run:\n{out}");
    for host in ["storage", "pi"] {
        assert!(recap(&out, host).contains("changed=0"), "second run changed {host}:\n{out}");
    }

    // 4. data safety: every destructive request is refused, naming device and signature
    let before = (sh(&lab, Vm::Storage, STATE_STORAGE), sh(&lab, Vm::Pi, STATE_PI));
    let (_, out, secs) = pbr(dir.path(), "refusals.yml", &[]);
    timings.push(("refusals", secs));
    for want in [
        "refusing to format /dev/vdc as xfs: /dev/vdc holds LVM2_member",
        "refusing to make /dev/pis/shared a PV: /dev/pis/shared holds ext4",
        "LV pis/pi is 2 GiB and size asks for 1 GiB: shrinking destroys the data past the new end; set shrink: true",
        "refusing to remove VDO pool vdo/vpool and its volume vdo/dedup",
        "refusing to make /dev/bcache0 a bcache backing device: /dev/bcache0 holds ext4",
    ] {
        assert!(out.contains(want), "refusals lack {want:?}:\n{out}");
    }
    assert!(recap(&out, "storage").contains("ignored=4") && recap(&out, "pi").contains("ignored=1"), "{out}");
    let after = (sh(&lab, Vm::Storage, STATE_STORAGE), sh(&lab, Vm::Pi, STATE_PI));
    assert_same(&before, &after, "a refused task changed something");

    // 5. facts (VDO savings) and a writeback cache detached live, then attached again
    let (code, out, secs) = pbr(dir.path(), "facts.yml", &["--check", "-v"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("dirty blocks are flushed to the origin first"), "{out}");
    let saved = out.lines().find(|l| l.contains("VDO ") && l.contains("% saved")).map(str::trim);
    assert!(saved.is_some(), "no VDO saving fact:\n{out}");
    assert!(out.contains("ssh.service is running and enabled"), "service_facts:\n{out}");
    let (code, out, secs2) = pbr(dir.path(), "facts.yml", &["--verify"]);
    timings.push(("detach cache", secs + secs2));
    assert_eq!(code, Some(0), "{out}");
    let seg = sh(&lab, Vm::Storage, "sudo -n lvs --noheadings -o segtype pis/pi");
    assert_eq!(seg.trim(), "linear");
    let (code, out, secs) = pbr(dir.path(), "site.yml", &["--verify", "-l", "storage"]);
    timings.push(("re-attach", secs));
    assert_eq!(code, Some(0), "{out}");
    assert!(recap(&out, "storage").contains("changed=1"), "{out}");
    assert_eq!(sh(&lab, Vm::Pi, "sudo -n cat /mnt/hello").trim(), "hello from the pi");

    drop(lab);
    let t: Vec<String> = timings.iter().map(|(k, v)| format!("{k} {v:.1} s")).collect();
    eprintln!("lab_storage_stack: {}; {} in all; {}", t.join(", "), t0.elapsed().as_secs(), saved.unwrap_or(""));
}
