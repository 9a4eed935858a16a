//! The VM lab (tests/lab/): two Debian 13 VMs under qemu with the kernel pieces the storage
//! modules drive. Every test here is named `lab_*`: `cargo test -- --skip lab_` or `PBR_LAB=0`
//! leaves them out; CI runs them.

use pbr_testkit::lab::{Lab, Vm, require_lab};
use std::process::Command;
use std::time::Instant;

fn check(lab: &Lab, vm: Vm, cmd: &str) -> String {
    match lab.sh(vm, cmd) {
        Ok(out) => out,
        Err(e) => panic!("{e}\n--- {vm} serial console (tail) ---\n{}", tail(&lab.serial_log(vm), 40)),
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[test]
fn lab_smoke() {
    if !require_lab("lab_smoke") {
        return;
    }
    let t0 = Instant::now();
    let lab = Lab::start().unwrap_or_else(|e| panic!("lab did not start: {e}"));
    let started = t0.elapsed().as_secs();
    eprintln!(
        "lab: image {} s, boot {} s (accel {}), ports storage={} pi={}",
        lab.build_secs,
        lab.boot_secs,
        lab.accel,
        lab.port(Vm::Storage),
        lab.port(Vm::Pi)
    );

    // both VMs: the login user, passwordless sudo, root by key, the VM's own host name
    for vm in Vm::ALL {
        let out = check(&lab, vm, "id -un; sudo -n id -u; hostname; readlink -f /proc/$$/exe");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines, ["pbr", "0", vm.name(), "/usr/bin/dash"], "{vm}: {out}");
        let root = lab.ssh_as(vm, "root", "id -u");
        assert!(root.status.success(), "{vm}: root login: {}", String::from_utf8_lossy(&root.stderr));
        assert_eq!(String::from_utf8_lossy(&root.stdout).trim(), "0");
    }

    // storage: its disks, by name and by serial
    let squeeze = |s: String| s.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect::<Vec<_>>();
    let disks =
        squeeze(check(&lab, Vm::Storage, "lsblk -dbno NAME,SIZE,SERIAL /dev/vdb /dev/vdc; ls /dev/disk/by-id/"));
    for want in [
        format!("vdb {} hdd", 12u64 << 30),
        format!("vdc {} ssd", 2u64 << 30),
        "virtio-hdd".into(),
        "virtio-ssd".into(),
    ] {
        assert!(disks.contains(&want), "storage lacks {want}: {disks:?}");
    }
    let sd = squeeze(check(&lab, Vm::Pi, "lsblk -dbno NAME,SIZE,SERIAL /dev/vdb"));
    assert_eq!(sd, [format!("vdb {} sd", 1u64 << 30)]);

    // storage: the kernel modules behind LVM-VDO, dm-cache, writecache, thin, bcache and LIO
    let mods = ["dm-vdo", "dm-cache", "dm-writecache", "dm-thin-pool", "bcache", "target_core_mod", "iscsi_target_mod"];
    let out = check(
        &lab,
        Vm::Storage,
        &format!("for m in {}; do sudo -n modprobe $m || exit 1; done; cut -d' ' -f1 /proc/modules", mods.join(" ")),
    );
    for m in mods {
        let name = m.replace('-', "_");
        assert!(out.lines().any(|l| l == name), "module {m} not loaded: {out}");
    }

    // lvm2 built with VDO; vdostats; bcache and thin tools
    let seg = check(&lab, Vm::Storage, "sudo -n lvm segtypes");
    for t in ["vdo", "vdo-pool", "cache", "writecache", "thin-pool"] {
        assert!(seg.split_whitespace().any(|w| w == t), "lvm segtypes lacks {t}: {seg}");
    }
    check(&lab, Vm::Storage, "command -v vdostats make-bcache thin_check iscsiadm mkfs.xfs mkfs.ext4");

    // targetcli talks to a running D-Bus system bus
    let tc = check(&lab, Vm::Storage, "systemctl is-active dbus && sudo -n targetcli ls / 2>&1");
    assert!(tc.starts_with("active") && tc.contains("backstores") && tc.contains("iscsi"), "{tc}");

    // the private LAN: pi reaches storage by ICMP and TCP
    check(&lab, Vm::Pi, &format!("ping -c 2 -W 5 {}", Vm::Storage.lan_ip()));
    check(&lab, Vm::Pi, &format!("timeout 10 bash -c 'exec 3<>/dev/tcp/{}/22 && head -c 4 <&3'", Vm::Storage.lan_ip()));
    check(&lab, Vm::Storage, &format!("ping -c 1 -W 5 {}", Vm::Pi.lan_ip()));

    // pbr itself over the inventory the lab writes
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.ini");
    lab.write_inventory(&inv).unwrap();
    std::fs::write(
        dir.path().join("site.yml"),
        "- hosts: all\n  gather_facts: false\n  become: true\n  tasks:\n    \
         - command: touch /root/pbr-was-here\n      args: { creates: /root/pbr-was-here }\n",
    )
    .unwrap();
    let run = |dir: &std::path::Path| {
        let o = Command::new(env!("CARGO_BIN_EXE_pbr"))
            .args(["run", "-i", "inventory.ini", "site.yml"])
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        (o.status.code(), format!("{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
    };
    let (code, out) = run(dir.path());
    assert_eq!(code, Some(0), "pbr run on the lab:\n{out}");
    for vm in Vm::ALL {
        check(&lab, vm, "sudo -n test -f /root/pbr-was-here");
    }
    let (code, out) = run(dir.path());
    assert_eq!(code, Some(0), "second pbr run on the lab:\n{out}");
    for vm in Vm::ALL {
        let recap = out.lines().rev().find(|l| l.split_whitespace().next() == Some(vm.name()) && l.contains("ok="));
        assert!(recap.is_some_and(|l| l.contains("changed=0")), "second run changed {vm}:\n{out}");
    }

    drop(lab);
    eprintln!("lab_smoke: {} s to start, {} s in all", started, t0.elapsed().as_secs());
}
