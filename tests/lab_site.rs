//! The reference homelab end to end in the VM lab: `playbooks/site.yml` on a storage VM and a
//! "pi" VM (an x86 Debian stand-in: block devices real, the Arch-only files converged under
//! /var/lib/pbr-lab with a recorder for mkinitcpio). Named `lab_*`: `--skip lab_` or `PBR_LAB=0`
//! leaves it out; CI runs it.

mod common;
use common::Run;
use pbr_testkit::lab::{Lab, Vm, require_lab};
use std::path::PathBuf;
use std::time::Instant;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pbr(args: &[&str]) -> Run {
    common::pbr(&repo(), args)
}

fn stat(r: &Run, host: &str, key: &str) -> u32 {
    r.recap(host).get(key).copied().unwrap_or(0)
}

fn sh(lab: &Lab, vm: Vm, cmd: &str) -> String {
    lab.sh(vm, cmd).unwrap_or_else(|e| panic!("{vm}: {cmd}: {e}"))
}

/// Block-level and file-level state that a check run must leave alone.
fn state(lab: &Lab) -> (String, String) {
    let storage = sh(
        lab,
        Vm::Storage,
        "sudo lvs -a --reportformat json -o vg_name,lv_name,lv_size,segtype 2>&1; lsblk -rno NAME,TYPE,FSTYPE; \
         sudo find /sys/kernel/config/target -maxdepth 4 2>/dev/null | sort",
    );
    let pi = sh(
        lab,
        Vm::Pi,
        "lsblk -rno NAME,TYPE,FSTYPE,TRAN; sudo iscsiadm -m session 2>&1 || true; \
         sudo find /var/lib/pbr-lab -type f -exec md5sum {} + | sort; sudo cat /etc/iscsi/initiatorname.iscsi",
    );
    (storage, pi)
}

#[test]
fn lab_site_converges_the_homelab() {
    if !require_lab("lab_site_converges_the_homelab") {
        return;
    }
    let t0 = Instant::now();
    let lab = Lab::start().unwrap_or_else(|e| panic!("lab did not start: {e}"));
    eprintln!("lab up in {:?} (image {} s, boot {} s)", t0.elapsed(), lab.build_secs, lab.boot_secs);
    let inv = lab.dir().join("inventory.ini");
    lab.write_inventory(&inv).expect("inventory");
    let inv = inv.display().to_string();
    let base = ["run", "playbooks/site.yml", "-i", inv.as_str(), "-i", "inventory/lab"];
    let with = |extra: &[&str]| -> Vec<String> { base.iter().chain(extra).map(|s| s.to_string()).collect() };
    let run = |extra: &[&str]| {
        let args = with(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let t = Instant::now();
        let r = pbr(&args);
        eprintln!("pbr {} -> {} in {:?}", extra.join(" "), r.code, t.elapsed());
        r
    };

    // the pi stands in for an Arch Linux ARM SD card: seed the files the boot chain edits
    sh(
        &lab,
        Vm::Pi,
        "sudo mkdir -p /var/lib/pbr-lab/etc/initcpio /var/lib/pbr-lab/boot /var/lib/pbr-lab/network && \
         printf '# vim:set ft=sh\\nMODULES=()\\nBINARIES=()\\nFILES=()\\nHOOKS=(base udev autodetect modconf block filesystems keyboard fsck)\\n' \
           | sudo tee /var/lib/pbr-lab/etc/mkinitcpio.conf >/dev/null && \
         echo 'console=ttyS0 root=/dev/mmcblk0p2 rw rootwait' | sudo tee /var/lib/pbr-lab/boot/cmdline.txt >/dev/null",
    );

    // 1. lint is clean
    let lint = pbr(&["lint", "playbooks/"]);
    assert_eq!(lint.code, 0, "lint:\n{}", lint.all());

    // 2. check + diff on fresh VMs: the whole plan, nothing changed
    let before = state(&lab);
    let check = run(&["--check", "--diff"]);
    let after = state(&lab);
    assert_eq!(before.0, after.0, "check mode changed the storage VM:\n{}", check.all());
    assert_eq!(before.1, after.1, "check mode changed the pi VM:\n{}", check.all());
    for want in ["vdo", "pi", "cache", "iqn.2024-01.lan.lab.storage:pi"] {
        assert!(check.stdout.contains(want), "check output lacks {want:?}:\n{}", check.stdout);
    }
    assert_eq!(stat(&check, "storage", "failed"), 0, "{}", check.all());
    assert!(stat(&check, "storage", "changed") >= 6, "{}", check.all());

    // 3. the real run converges
    let first = run(&[]);
    assert_eq!(first.code, 0, "converge failed:\n{}", first.all());
    assert!(stat(&first, "storage", "changed") > 0 && stat(&first, "pi", "changed") > 0, "{}", first.stdout);

    // the pi's bcache sits on its iSCSI disk; a file written there survives a re-login
    let tree = sh(&lab, Vm::Pi, "lsblk -rno NAME,TYPE,TRAN,PKNAME");
    let iscsi_disk = tree
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some("iscsi"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no iSCSI disk on the pi:\n{tree}"))
        .to_string();
    let holders = sh(&lab, Vm::Pi, &format!("ls /sys/block/{iscsi_disk}/holders/"));
    assert!(holders.lines().any(|h| h.starts_with("bcache")), "{iscsi_disk} holders: {holders}\n{tree}");
    let bdev = format!("/dev/{}", holders.lines().find(|h| h.starts_with("bcache")).unwrap_or("bcache0"));
    sh(
        &lab,
        Vm::Pi,
        &format!(
            "sudo mkdir -p /mnt/root && sudo mount {bdev} /mnt/root && echo homelab | sudo tee /mnt/root/proof >/dev/null \
             && sync && sudo umount /mnt/root"
        ),
    );
    let target = "iqn.2024-01.lan.lab.storage:pi";
    sh(
        &lab,
        Vm::Pi,
        &format!(
            "echo 1 | sudo tee /sys/block/{}/bcache/stop >/dev/null; sleep 2; \
             sudo iscsiadm -m node -T {target} -p 10.99.0.1 --logout; sleep 1; \
             sudo iscsiadm -m node -T {target} -p 10.99.0.1 --login; sleep 3; sudo udevadm settle",
            bdev.trim_start_matches("/dev/")
        ),
    );
    let proof = sh(
        &lab,
        Vm::Pi,
        "for d in /dev/bcache*; do [ -b \"$d\" ] || continue; sudo mount \"$d\" /mnt/root && cat /mnt/root/proof; \
         sudo umount /mnt/root; done",
    );
    assert!(proof.contains("homelab"), "file not read back after re-login: {proof:?}");

    // the initramfs was regenerated exactly once
    let regen = sh(&lab, Vm::Pi, "cat /var/lib/pbr-lab/mkinitcpio.log");
    assert_eq!(regen.lines().count(), 1, "mkinitcpio runs: {regen:?}");

    // 4. a second run changes nothing, and verifies
    let second = run(&["--verify"]);
    assert_eq!(second.code, 0, "{}", second.all());
    for h in ["storage", "pi"] {
        assert_eq!(stat(&second, h, "changed"), 0, "second run changed {h}:\n{}", second.stdout);
    }
    assert_eq!(sh(&lab, Vm::Pi, "cat /var/lib/pbr-lab/mkinitcpio.log").lines().count(), 1);

    // 5. --limit pi touches only the pi
    let limited = run(&["--limit", "pi"]);
    assert_eq!(limited.code, 0, "{}", limited.all());
    assert!(!limited.stdout.contains("[storage]"), "--limit pi ran on storage:\n{}", limited.stdout);
    assert_eq!(stat(&limited, "pi", "changed"), 0);
    eprintln!("lab_site total {:?}", t0.elapsed());
}
