//! The reference homelab in the VM lab, to the boot: `playbooks/site.yml` on the storage VM and
//! the "pi" VM (an x86 Debian stand-in for an Arch Linux ARM Pi, with the real mkinitcpio v41),
//! then the pi reboots from what pbr built: the kernel, initramfs and cmdline.txt on its SD card's
//! boot partition, without its local root disk, into a root on bcache over iSCSI. Then the
//! systemd init, and a reboot of the storage VM under the running pi.
//!
//! One test, one lab boot: each step needs the one before. Named `lab_*`: `--skip lab_` or
//! `PBR_LAB=0` leaves it out; CI runs it.

#[path = "common/boot.rs"]
mod boot;
mod common;
use boot::{Steps, assert_booted_from_iscsi, sh, stat, tail, write_proof};
use pbr_testkit::lab::{Lab, Vm, require_lab};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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
         sudo find /boot /etc/initcpio /etc/mkinitcpio.conf /etc/systemd/network -type f -exec md5sum {} + | sort; \
         sudo cat /etc/iscsi/initiatorname.iscsi; ls -a /boot",
    );
    (storage, pi)
}

#[test]
fn lab_boot_pi_from_iscsi_bcache_root() {
    if !require_lab("lab_boot_pi_from_iscsi_bcache_root") {
        return;
    }
    let mut steps = Steps::new("lab_boot");
    let t0 = steps.t0;
    let lab = Lab::start().unwrap_or_else(|e| panic!("lab did not start: {e}"));
    steps.done(&format!("lab up (image {} s, boot {} s)", lab.build_secs, lab.boot_secs));
    let inv = lab.dir().join("inventory.ini");
    lab.write_inventory(&inv).expect("inventory");
    let inv = inv.display().to_string();
    let run = |playbook: &str, extra: &[&str]| {
        let mut args = vec!["run", playbook, "-i", inv.as_str(), "-i", "inventory/lab"];
        args.extend_from_slice(extra);
        let t = Instant::now();
        let r = common::pbr(&repo(), &args);
        eprintln!(
            "[lab_boot] pbr run {playbook} {} -> {} in {:.0} s",
            extra.join(" "),
            r.code,
            t.elapsed().as_secs_f64()
        );
        r
    };
    let site = |extra: &[&str]| run("playbooks/site.yml", extra);

    // The pi is an Arch Linux ARM SD card with the busybox (udev) init, as before 40-1.
    sh(
        &lab,
        Vm::Pi,
        "sudo sed -i 's/^HOOKS=.*/HOOKS=(base udev autodetect modconf block filesystems keyboard fsck)/' /etc/mkinitcpio.conf \
         && { findmnt -n /boot >/dev/null || sudo systemctl start boot.mount; } && findmnt -no SOURCE /boot",
    );

    // 1. lint is clean
    let lint = common::pbr(&repo(), &["lint", "playbooks/"]);
    assert_eq!(lint.code, 0, "lint:\n{}", lint.all());

    // 2. check + diff on fresh VMs: the whole plan, nothing changed
    let before = state(&lab);
    let check = site(&["--check", "--diff"]);
    let after = state(&lab);
    assert_eq!(check.code, 0, "check failed:\n{}", check.all());
    assert_eq!(before.0, after.0, "check mode changed the storage VM:\n{}", check.all());
    assert_eq!(before.1, after.1, "check mode changed the pi VM:\n{}", check.all());
    for want in [
        "VDO pool",
        "gains an SSD cache",
        "iqn.2024-01.lan.lab.storage:pi",
        "is filled with a copy of /",
        "root=/dev/bcache0",
    ] {
        assert!(check.stdout.contains(want), "check output lacks {want:?}:\n{}", check.stdout);
    }
    steps.done("check --diff");

    // 3. converge
    let first = site(&[]);
    assert_eq!(first.code, 0, "converge failed:\n{}", first.all());
    assert!(stat(&first, "storage", "changed") > 0 && stat(&first, "pi", "changed") > 0, "{}", first.stdout);
    assert_eq!(first.stdout.matches("(item=regenerate initramfs)").count(), 1, "one regeneration:\n{}", first.stdout);
    steps.done("converge");
    // the image mkinitcpio built holds the boot chain
    let listing = sh(&lab, Vm::Pi, "sudo lsinitcpio -l /boot/initramfs-linux.img");
    for want in
        ["usr/lib/pbr/iscsi.sh", "iscsi_tcp.ko", "bcache.ko", "69-bcache.rules", "usr/bin/iscsistart", "hooks/iscsi"]
    {
        assert!(listing.contains(want), "the initramfs lacks {want}");
    }
    let cmdline = sh(&lab, Vm::Pi, "cat /boot/cmdline.txt");
    assert!(cmdline.contains("root=/dev/bcache0") && cmdline.contains("ip=10.99.0.2::"), "{cmdline}");
    assert_eq!(
        sh(&lab, Vm::Pi, "ls -a /boot").lines().filter(|l| l.contains("pending")).count(),
        0,
        "a regeneration is still pending"
    );

    // 4. a second run changes nothing, and verifies
    let second = site(&["--verify"]);
    assert_eq!(second.code, 0, "{}", second.all());
    for h in ["storage", "pi"] {
        assert_eq!(stat(&second, h, "changed"), 0, "second run changed {h}:\n{}", second.stdout);
    }
    steps.done("second run --verify");

    // 5. a file in the new root, then the reboot (pbr's reboot: the boot id must change)
    let proof = format!("written before the reboot at {}", t0.elapsed().as_secs());
    write_proof(&lab, &proof);
    let boot_id = sh(&lab, Vm::Pi, "cat /proc/sys/kernel/random/boot_id");
    let rebooted = site(&["-l", "pi", "-e", "pi_reboot=true"]);
    assert_eq!(rebooted.code, 0, "reboot:\n{}\n--- console ---\n{}", rebooted.all(), tail(&lab.serial_log(Vm::Pi), 80));
    assert_ne!(sh(&lab, Vm::Pi, "cat /proc/sys/kernel/random/boot_id"), boot_id);
    assert!(lab.pi_boots().iter().filter(|b| b.contains(" sd ")).count() == 1, "boots: {:?}", lab.pi_boots());
    steps.done("pi reboot (busybox init) until ssh");
    assert_booted_from_iscsi(&lab, &proof);

    // 6. pbr against the rebooted pi: nothing to do
    let after_boot = site(&["-l", "pi", "--verify"]);
    assert_eq!(after_boot.code, 0, "{}", after_boot.all());
    assert_eq!(stat(&after_boot, "pi", "changed"), 0, "the booted pi is not converged:\n{}", after_boot.stdout);
    steps.done("run on the booted pi");

    // 7. the systemd init (Arch Linux ARM's default since 40-1): the hook becomes a unit
    sh(
        &lab,
        Vm::Pi,
        "sudo sed -i 's/^HOOKS=.*/HOOKS=(base systemd autodetect modconf block filesystems keyboard fsck)/' /etc/mkinitcpio.conf",
    );
    let sd = site(&["-l", "pi", "-e", "pi_reboot=true", "--diff"]);
    assert_eq!(sd.code, 0, "systemd init:\n{}\n--- console ---\n{}", sd.all(), tail(&lab.serial_log(Vm::Pi), 80));
    assert!(sd.stdout.contains("create /etc/initcpio/pbr/pbr-iscsi.service"), "{}", sd.stdout);
    steps.done("pi reboot (systemd init) until ssh");
    assert_eq!(lab.pi_boots().iter().filter(|b| b.contains(" sd ")).count(), 2, "boots: {:?}", lab.pi_boots());
    let console = lab.serial_log(Vm::Pi);
    assert!(
        console.contains("pbr-iscsi.service") && console.contains("pbr-iscsi: iSCSI login to"),
        "the systemd initramfs did not run the login unit:\n{}",
        tail(&console, 80)
    );
    assert_booted_from_iscsi(&lab, &proof);
    let again = site(&["-l", "pi", "--verify"]);
    assert_eq!(stat(&again, "pi", "changed"), 0, "{}", again.stdout);

    // 8. the storage VM reboots under the running pi: VDO and LVM activate, LIO comes back, the
    //    pi's root carries on (its session waits out the reboot: replacement_timeout 600)
    let reboot_storage = lab.dir().join("reboot-storage.yml");
    std::fs::write(
        &reboot_storage,
        "- hosts: storage\n  become: true\n  gather_facts: false\n  tasks:\n    - reboot:\n",
    )
    .unwrap();
    let rs = run(reboot_storage.to_str().unwrap(), &[]);
    assert_eq!(
        rs.code,
        0,
        "storage reboot:\n{}\n--- console ---\n{}",
        rs.all(),
        tail(&lab.serial_log(Vm::Storage), 60)
    );
    steps.done("storage reboot until ssh");
    // the LIO restore waits for LVM (it may still be running when sshd answers)
    let deadline = Instant::now() + Duration::from_secs(180);
    while sh(&lab, Vm::Storage, "systemctl is-active rtslib-fb-targetctl || true").trim() != "active"
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_secs(3));
    }
    let held = sh(&lab, Vm::Storage, "sudo dmesg | grep -c 'bcache: register_bdev' || true");
    assert_eq!(held.trim(), "0", "the storage VM registered a Pi's bcache backing device and holds it");
    let lvs = sh(&lab, Vm::Storage, "sudo lvs --noheadings -o lv_name,lv_active pis vdo");
    assert!(
        lvs.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["pi", "active"]),
        "pis/pi is not active: {lvs}"
    );
    let lio = sh(&lab, Vm::Storage, "sudo targetcli ls /iscsi 2>&1");
    assert!(
        lio.contains("iqn.2024-01.lan.lab.storage:pi") && lio.contains("[LUNs: 1]"),
        "the LIO export did not come back:\n{lio}"
    );
    // the pi writes and reads its root again (within the session's replacement timeout)
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let o = lab
            .ssh(Vm::Pi, "echo after | sudo tee /after-storage-reboot >/dev/null && sync && cat /after-storage-reboot");
        if o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "after" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pi's root did not come back after the storage reboot:\n{}",
            tail(&lab.serial_log(Vm::Pi), 60)
        );
        std::thread::sleep(Duration::from_secs(5));
    }
    steps.done("pi root writable again");
    let last = site(&["--verify"]);
    assert_eq!(last.code, 0, "{}", last.all());
    for h in ["storage", "pi"] {
        assert_eq!(stat(&last, h, "changed"), 0, "after the reboots {h} changed:\n{}", last.stdout);
    }
    steps.done("final run --verify");
}
