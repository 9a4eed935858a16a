//! What the lab tests of the Pi's boot share: shell commands on the VMs with the console's tail
//! on failure, timed steps, and what a pi booted from its iSCSI root must look like.
#![allow(dead_code)]

use super::common::Run;
use pbr_testkit::lab::{Lab, Vm};
use std::time::Instant;

pub fn stat(r: &Run, host: &str, key: &str) -> u32 {
    r.recap(host).get(key).copied().unwrap_or(0)
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub fn sh(lab: &Lab, vm: Vm, cmd: &str) -> String {
    lab.sh(vm, cmd).unwrap_or_else(|e| panic!("{e}\n--- {vm} console (tail) ---\n{}", tail(&lab.serial_log(vm), 60)))
}

pub struct Steps {
    pub name: &'static str,
    pub t0: Instant,
    pub last: Instant,
}

impl Steps {
    pub fn new(name: &'static str) -> Steps {
        let t0 = Instant::now();
        Steps { name, t0, last: t0 }
    }

    pub fn done(&mut self, what: &str) {
        eprintln!(
            "[{}] {what}: {:.0} s (total {:.0} s)",
            self.name,
            self.last.elapsed().as_secs_f64(),
            self.t0.elapsed().as_secs_f64()
        );
        self.last = Instant::now();
    }
}

/// What the booted pi must look like: its root on bcache0, backed by the iSCSI disk and cached
/// by the SD card's second partition, iscsid owning the session, /boot from the SD card, no
/// local root disk.
pub fn assert_booted_from_iscsi(lab: &Lab, proof: &str) {
    let root = sh(lab, Vm::Pi, "findmnt -no SOURCE /").trim().to_string();
    assert_eq!(root, "/dev/bcache0", "root is not bcache0:\n{}", tail(&lab.serial_log(Vm::Pi), 60));
    // booted from the SD card alone: no disk with the root disk's serial; the SD is whatever
    // the kernel named it, found by its serial
    let serials = sh(lab, Vm::Pi, "lsblk -dno NAME,SERIAL");
    assert!(
        !serials.lines().any(|l| l.split_whitespace().nth(1) == Some("root")),
        "the local root disk is still there:\n{serials}"
    );
    let sd = |part: &str| {
        let p = sh(lab, Vm::Pi, &format!("readlink -f /dev/disk/by-id/virtio-sd-part{part}"));
        p.trim().trim_start_matches("/dev/").to_string()
    };
    let (sd_boot, sd_cache) = (sd("1"), sd("2"));
    let slaves = sh(lab, Vm::Pi, "ls /sys/block/bcache0/slaves/");
    let backing: Vec<&str> = slaves.lines().filter(|s| *s != sd_cache).collect();
    assert!(slaves.lines().any(|s| s == sd_cache), "bcache0's cache is not the SD's {sd_cache}: {slaves}");
    assert_eq!(backing.len(), 1, "bcache0 slaves: {slaves}");
    let tran = sh(lab, Vm::Pi, &format!("lsblk -dno TRAN /dev/{}", backing[0]));
    assert_eq!(tran.trim(), "iscsi", "bcache0's backing device {} is not an iSCSI disk", backing[0]);
    let cache_state = sh(lab, Vm::Pi, "cat /sys/block/bcache0/bcache/state");
    assert!(matches!(cache_state.trim(), "clean" | "dirty"), "bcache0 has no cache attached: {cache_state}");
    let iscsid = sh(lab, Vm::Pi, "systemctl is-active iscsid; sudo iscsiadm -m session");
    assert!(iscsid.starts_with("active\n"), "iscsid is not running: {iscsid}");
    assert!(iscsid.contains("iqn.2024-01.lan.lab.storage:pi"), "iscsid does not see the root's session: {iscsid}");
    let boot = sh(lab, Vm::Pi, "findmnt -no SOURCE /boot");
    assert_eq!(boot.trim(), format!("/dev/{sd_boot}"), "/boot is not the SD card's boot partition");
    assert_eq!(sh(lab, Vm::Pi, "cat /proof").trim(), proof, "the file written before the reboot is gone");
}

/// A file in the pi's new root (`/dev/bcache0`), written before the reboot into it: after the
/// boot, `/proof` must hold `proof`.
pub fn write_proof(lab: &Lab, proof: &str) {
    sh(
        lab,
        Vm::Pi,
        &format!(
            "sudo mkdir -p /mnt/newroot && sudo mount /dev/bcache0 /mnt/newroot && echo '{proof}' | sudo tee /mnt/newroot/proof \
             >/dev/null && sync && sudo umount /mnt/newroot"
        ),
    );
}
