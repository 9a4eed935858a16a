//! The Wi-Fi pi in the VM lab: `playbooks/site.yml` with the pi as a Zero 2 W (`pi_wifi`), then
//! a reboot in which the pi's only way to its iSCSI root is Wi-Fi. The lab's access point is a
//! second mac80211_hwsim radio in its own network namespace on the pi VM, bridged with the LAN
//! NIC and started by a lab-only hook before pbr's `wifi` hook (tests/lab/labap). After the boot:
//! the root is bcache over iSCSI over Wi-Fi, exactly one wpa_supplicant runs and systemd
//! supervises it (killed, a supervised one comes back and the root stays writable), and a rerun
//! changes nothing.
//!
//! Named `lab_*`: `--skip lab_` or `PBR_LAB=0` leaves it out; CI runs it.

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

/// The pids of the wpa_supplicant processes on the pi (the initramfs's is `@wpa_supplicant`).
fn supplicants(lab: &Lab) -> Vec<String> {
    sh(lab, Vm::Pi, "pgrep -f '^@?(/usr/s?bin/)?wpa_supplicant( |$)' || true")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn main_pid(lab: &Lab) -> String {
    sh(lab, Vm::Pi, "systemctl show -p MainPID --value pbr-wpa-wlan0.service").trim().to_string()
}

/// The lab's access point hook and its files, installed on the pi as a package would.
fn install_labap(lab: &Lab) {
    let dir = repo().join("tests/lab/labap");
    for (src, dest, mode) in [
        ("install", "/usr/lib/initcpio/install/labap", "644"),
        ("hook", "/usr/lib/initcpio/hooks/labap", "644"),
        ("labap.sh", "/usr/lib/labap/labap.sh", "755"),
        ("labap.service", "/usr/lib/labap/labap.service", "644"),
        ("hostapd.conf", "/usr/lib/labap/hostapd.conf", "644"),
        ("udhcpd.conf", "/usr/lib/labap/udhcpd.conf", "644"),
    ] {
        let text = std::fs::read_to_string(dir.join(src)).unwrap_or_else(|e| panic!("{src}: {e}"));
        sh(lab, Vm::Pi, &format!("sudo install -D -m {mode} /dev/stdin {dest} <<'LABAP_EOF'\n{text}LABAP_EOF"));
    }
}

/// What the pi booted over Wi-Fi must show: the root over wlan0 only, the access point's and the
/// Wi-Fi step's console lines, and exactly one supplicant, the handover unit's main process.
fn assert_wifi_root(lab: &Lab, proof: &str, console_step: &str) -> Vec<String> {
    let console = lab.serial_log(Vm::Pi);
    assert!(
        console.contains("pbr-wifi: wlan0 is associated")
            && console.contains("lab: access point pbr-lab up")
            && console.contains(console_step),
        "the initramfs did not bring Wi-Fi up:\n{}",
        tail(&console, 80)
    );
    assert_booted_from_iscsi(lab, proof);
    // the root is reached over Wi-Fi only: the LAN NIC is the access point's, the portal's route is wlan0
    let links = sh(lab, Vm::Pi, "ip -o link");
    assert!(!links.contains("52:54:00:99:00:02"), "the pi still has its wired LAN NIC:\n{links}");
    let route = sh(lab, Vm::Pi, "ip route get 10.99.0.1");
    assert!(route.contains("dev wlan0"), "the portal is not reached over wlan0: {route}");
    let pids = supplicants(lab);
    assert_eq!(pids.len(), 1, "wpa_supplicant processes: {pids:?}");
    let status = || sh(lab, Vm::Pi, "systemctl status pbr-wpa-wlan0.service || true");
    let unit = sh(lab, Vm::Pi, "systemctl is-active pbr-wpa-wlan0.service || true");
    assert_eq!(unit.trim(), "active", "{}", status());
    assert_eq!(main_pid(lab), pids[0], "{}", status());
    let stock = sh(lab, Vm::Pi, "systemctl is-active wpa_supplicant@wlan0.service || true");
    assert_ne!(stock.trim(), "active", "the stock unit runs a second supplicant");
    pids
}

/// Kill the supplicant: a supervised one must come back, and the root stay writable.
fn assert_supplicant_comes_back(lab: &Lab, pid: &str, file: &str) {
    sh(lab, Vm::Pi, &format!("sudo kill {pid}"));
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let now = supplicants(lab);
        if now.len() == 1 && now[0] != pid && main_pid(lab) == now[0] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no supervised supplicant after the kill: {now:?}\n{}",
            sh(lab, Vm::Pi, "systemctl status pbr-wpa-wlan0.service || true")
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let o = lab.ssh(Vm::Pi, &format!("echo after | sudo tee {file} >/dev/null && sync && cat {file}"));
        if o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "after" {
            break;
        }
        assert!(Instant::now() < deadline, "the root is not writable after the supplicant's restart");
        std::thread::sleep(Duration::from_secs(3));
    }
}

#[test]
fn lab_wifi_pi_boots_its_iscsi_root_over_wifi() {
    if !require_lab("lab_wifi_pi_boots_its_iscsi_root_over_wifi") {
        return;
    }
    let mut steps = Steps::new("lab_wifi");
    let lab = Lab::start().unwrap_or_else(|e| panic!("lab did not start: {e}"));
    steps.done(&format!("lab up (image {} s, boot {} s)", lab.build_secs, lab.boot_secs));
    let inv = lab.dir().join("inventory.ini");
    lab.write_inventory(&inv).expect("inventory");
    let inv = inv.display().to_string();
    let site = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "playbooks/site.yml",
            "-i",
            inv.as_str(),
            "-i",
            "inventory/lab",
            "-e",
            "@tests/lab/wifi-vars.yml",
        ];
        args.extend_from_slice(extra);
        let t = Instant::now();
        let r = common::pbr(&repo(), &args);
        eprintln!(
            "[lab_wifi] pbr run site.yml {} -> {} in {:.0} s",
            extra.join(" "),
            r.code,
            t.elapsed().as_secs_f64()
        );
        r
    };

    // The lab's access point: a packaged hook on the pi (tests/lab/labap; on a real Pi the access
    // point is somewhere else), first in HOOKS, with the SD card's busybox init.
    install_labap(&lab);
    sh(
        &lab,
        Vm::Pi,
        "sudo sed -i 's/^HOOKS=.*/HOOKS=(base udev labap autodetect modconf block filesystems keyboard fsck)/' \
         /etc/mkinitcpio.conf && modinfo -n mac80211_hwsim \
         && { findmnt -n /boot >/dev/null || sudo systemctl start boot.mount; } && findmnt -no SOURCE /boot",
    );

    // converge: the wired pi gets the boot chain and the Wi-Fi for the next boot
    let first = site(&[]);
    assert_eq!(first.code, 0, "converge failed:\n{}", first.all());
    assert!(stat(&first, "pi", "changed") > 0, "{}", first.stdout);
    assert_eq!(first.stdout.matches("(item=regenerate initramfs)").count(), 1, "one regeneration:\n{}", first.stdout);
    steps.done("converge");
    let listing = sh(&lab, Vm::Pi, "sudo lsinitcpio -l /boot/initramfs-linux.img");
    for want in [
        "usr/lib/pbr/wifi.sh",
        "usr/lib/pbr/iscsi.sh",
        "usr/bin/wpa_supplicant",
        "usr/bin/wpa_cli",
        "usr/bin/iw",
        "usr/lib/pbr/bin/@wpa_supplicant",
        "etc/wpa_supplicant/wpa_supplicant-wlan0.conf",
        "hooks/wifi",
        "hooks/labap",
        "mac80211_hwsim.ko",
    ] {
        assert!(listing.contains(want), "the initramfs lacks {want}");
    }
    let hooks = sh(&lab, Vm::Pi, "bash -c '. /etc/mkinitcpio.conf; echo \"${HOOKS[@]}\"'");
    assert!(hooks.contains("wifi iscsi bcache filesystems"), "HOOKS: {hooks}");
    let second = site(&["--verify"]);
    assert_eq!(second.code, 0, "{}", second.all());
    for h in ["storage", "pi"] {
        assert_eq!(stat(&second, h, "changed"), 0, "second run changed {h}:\n{}", second.stdout);
    }
    steps.done("second run --verify");

    // the reboot: no wired path to the portal any more
    let proof = format!("written before the Wi-Fi reboot at {}", steps.t0.elapsed().as_secs());
    write_proof(&lab, &proof);
    let boot_id = sh(&lab, Vm::Pi, "cat /proc/sys/kernel/random/boot_id");
    let rebooted = site(&["-l", "pi", "-e", "pi_reboot=true"]);
    assert_eq!(
        rebooted.code,
        0,
        "reboot:\n{}\n--- console ---\n{}",
        rebooted.all(),
        tail(&lab.serial_log(Vm::Pi), 100)
    );
    assert_ne!(sh(&lab, Vm::Pi, "cat /proc/sys/kernel/random/boot_id"), boot_id);
    steps.done("pi reboot over Wi-Fi (busybox init) until ssh");
    let pids = assert_wifi_root(&lab, &proof, "lab: simulated access point");
    // the initramfs's supplicant, adopted (named for systemd's final kill to spare it)
    let argv0 = sh(&lab, Vm::Pi, &format!("tr '\\0' ' ' </proc/{}/cmdline", pids[0]));
    assert!(argv0.starts_with("@wpa_supplicant -B -i wlan0"), "{argv0}");
    // a manual stop would take the root with it: refused
    let stop = lab.ssh(Vm::Pi, "sudo systemctl stop pbr-wpa-wlan0.service");
    assert!(!stop.status.success(), "systemctl stop of the root's supplicant was not refused");
    // the stock unit, started by hand, does not start a second supplicant
    let _ = lab.ssh(Vm::Pi, "sudo systemctl start wpa_supplicant@wlan0.service");
    assert_eq!(supplicants(&lab).len(), 1, "the stock unit started a second supplicant");
    steps.done("one adopted supplicant");
    assert_supplicant_comes_back(&lab, &pids[0], "/after-kill");
    steps.done("supplicant killed, a supervised one back, root writable");
    let again = site(&["-l", "pi", "--verify"]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(stat(&again, "pi", "changed"), 0, "the Wi-Fi pi is not converged:\n{}", again.stdout);
    steps.done("run on the booted pi");

    // the systemd init: the handover unit runs the supplicant from the initramfs on
    sh(&lab, Vm::Pi, "sudo sed -i 's/^HOOKS=(base udev /HOOKS=(base systemd /' /etc/mkinitcpio.conf");
    let sd = site(&["-l", "pi", "-e", "pi_reboot=true", "--diff"]);
    assert_eq!(sd.code, 0, "systemd init:\n{}\n--- console ---\n{}", sd.all(), tail(&lab.serial_log(Vm::Pi), 100));
    assert!(sd.stdout.contains("create /etc/initcpio/pbr/pbr-wifi.service"), "{}", sd.stdout);
    steps.done("pi reboot over Wi-Fi (systemd init) until ssh");
    let pids = assert_wifi_root(&lab, &proof, "pbr-wifi.service");
    let argv0 = sh(&lab, Vm::Pi, &format!("tr '\\0' ' ' </proc/{}/cmdline", pids[0]));
    assert!(argv0.starts_with("wpa_supplicant -B -i wlan0"), "{argv0}");
    assert_supplicant_comes_back(&lab, &pids[0], "/after-kill-systemd");
    steps.done("systemd init: one supervised supplicant, killed and back");

    // nothing left to do
    let again = site(&["-l", "pi", "--verify"]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(stat(&again, "pi", "changed"), 0, "the Wi-Fi pi is not converged:\n{}", again.stdout);
    steps.done("run on the booted pi");
}
