//! The reference homelab in the VM lab, to the boot: `playbooks/site.yml` on the storage VM and
//! the "pi" VM (an x86 Debian stand-in for an Arch Linux ARM Pi, with the real mkinitcpio v41),
//! then the pi reboots from what pbr built: the kernel, initramfs and cmdline.txt on its SD card's
//! boot partition, without its local root disk, into a root on bcache over iSCSI. Then the
//! systemd init, and a reboot of the storage VM under the running pi.
//!
//! Then the Wi-Fi pi (`lab_wifi_*`): the same pi as a Zero 2 W (`pi_wifi`), rebooted with Wi-Fi as
//! its only way to its iSCSI root. The lab's access point is a second mac80211_hwsim radio in its
//! own network namespace on the pi VM, bridged with the LAN NIC and started by a lab-only hook
//! before pbr's `wifi` hook (tests/lab/labap). After the boot: the root is bcache over iSCSI over
//! Wi-Fi, exactly one wpa_supplicant runs and systemd supervises it (killed, a supervised one comes
//! back and the root stays writable), 2 s of total loss on the air do not break a write, and a
//! rerun changes nothing. Then the same under the systemd init (the supplicant's unit is started
//! in the initramfs and kept by the real root's systemd), and last a wrong passphrase: the next
//! boot stops in the initramfs and says why on the console.
//!
//! The two tests share one lab boot (libtest starts them in name order, and a lock keeps them
//! apart). The boot test needs fresh VMs: run after the Wi-Fi test, it boots a lab of its own. The
//! Wi-Fi test converges from whatever state it finds. Named `lab_*`: `--skip lab_` or `PBR_LAB=0`
//! leaves them out; CI runs them.

#[path = "common/boot.rs"]
mod boot;
mod common;
use boot::{Steps, assert_booted_from_iscsi, sh, stat, tail, write_proof};
use pbr_testkit::lab::{Lab, Vm, require_lab};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The lab's vault password (a test fixture): inventory/lab keeps the pi's CHAP password in a
/// vault, tests/lab/wifi-vars.yml its Wi-Fi passphrase, as a homelab keeps its own.
const VAULT_PW: &str = "tests/lab/vault-password";
/// What the lab's vault holds, which no output may show.
const LAB_SECRETS: [&str; 2] = ["lab-chap-secret-pi", "pbr-lab-wifi-passphrase"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether the shared lab's VMs are still as booted (no test has run on them yet).
static FRESH: AtomicBool = AtomicBool::new(true);

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
    let _one_at_a_time = Lab::exclusive();
    let mut steps = Steps::new("lab_boot");
    let t0 = steps.t0;
    let own;
    let lab: &Lab = if FRESH.swap(false, Ordering::SeqCst) {
        Lab::shared().unwrap_or_else(|e| panic!("lab did not start: {e}"))
    } else {
        own = Lab::start().unwrap_or_else(|e| panic!("lab did not start: {e}"));
        &own
    };
    steps.done(&format!("lab up (image {} s, boot {} s)", lab.build_secs, lab.boot_secs));
    let inv = lab.dir().join("inventory.ini");
    lab.write_inventory(&inv).expect("inventory");
    let inv = inv.display().to_string();
    let run = |playbook: &str, extra: &[&str]| {
        let mut args =
            vec!["run", playbook, "-i", inv.as_str(), "-i", "inventory/lab", "--vault-password-file", VAULT_PW];
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
        lab,
        Vm::Pi,
        "sudo sed -i 's/^HOOKS=.*/HOOKS=(base udev autodetect modconf block filesystems keyboard fsck)/' /etc/mkinitcpio.conf \
         && { findmnt -n /boot >/dev/null || sudo systemctl start boot.mount; } && findmnt -no SOURCE /boot",
    );

    // 1. lint is clean
    let lint = common::pbr(&repo(), &["lint", "playbooks/"]);
    assert_eq!(lint.code, 0, "lint:\n{}", lint.all());

    // 2. check + diff on fresh VMs: the whole plan, nothing changed
    let before = state(lab);
    let check = site(&["--check", "--diff"]);
    let after = state(lab);
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
    // the pi logs in with CHAP, its password from the vault, never shown
    let userid = sh(
        lab,
        Vm::Storage,
        "sudo cat /sys/kernel/config/target/iscsi/iqn.2024-01.lan.lab.storage:pi/tpgt_1/acls/iqn.2024-01.lan.lab.pi:pi/auth/userid",
    );
    assert_eq!(userid.trim(), "pi");
    for r in [&check, &first] {
        for secret in LAB_SECRETS {
            assert!(!r.all().contains(secret), "a vault secret reached the output:\n{}", r.all());
        }
    }
    // the target's kernel module is loaded, and will be at every boot
    let module = sh(
        lab,
        Vm::Storage,
        "grep -c '^iscsi_target_mod ' /proc/modules; cat /etc/modules-load.d/iscsi_target_mod.conf",
    );
    assert_eq!(module.lines().collect::<Vec<_>>(), ["1", "iscsi_target_mod"]);
    // the image mkinitcpio built holds the boot chain
    let listing = sh(lab, Vm::Pi, "sudo lsinitcpio -l /boot/initramfs-linux.img");
    for want in
        ["usr/lib/pbr/iscsi.sh", "iscsi_tcp.ko", "bcache.ko", "69-bcache.rules", "usr/bin/iscsistart", "hooks/iscsi"]
    {
        assert!(listing.contains(want), "the initramfs lacks {want}");
    }
    let cmdline = sh(lab, Vm::Pi, "cat /boot/cmdline.txt");
    assert!(cmdline.contains("root=/dev/bcache0") && cmdline.contains("ip=10.99.0.2::"), "{cmdline}");
    assert_eq!(
        sh(lab, Vm::Pi, "ls -a /boot").lines().filter(|l| l.contains("pending")).count(),
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
    write_proof(lab, &proof);
    let boot_id = sh(lab, Vm::Pi, "cat /proc/sys/kernel/random/boot_id");
    let rebooted = site(&["-l", "pi", "-e", "pi_reboot=true"]);
    assert_eq!(rebooted.code, 0, "reboot:\n{}\n--- console ---\n{}", rebooted.all(), tail(&lab.serial_log(Vm::Pi), 80));
    assert_ne!(sh(lab, Vm::Pi, "cat /proc/sys/kernel/random/boot_id"), boot_id);
    assert!(lab.pi_boots().iter().filter(|b| b.contains(" sd ")).count() == 1, "boots: {:?}", lab.pi_boots());
    steps.done("pi reboot (busybox init) until ssh");
    assert_booted_from_iscsi(lab, &proof);

    // 6. pbr against the rebooted pi: nothing to do
    let after_boot = site(&["-l", "pi", "--verify"]);
    assert_eq!(after_boot.code, 0, "{}", after_boot.all());
    assert_eq!(stat(&after_boot, "pi", "changed"), 0, "the booted pi is not converged:\n{}", after_boot.stdout);
    steps.done("run on the booted pi");

    // 7. the systemd init (Arch Linux ARM's default since 40-1): the hook becomes a unit
    sh(
        lab,
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
    assert_booted_from_iscsi(lab, &proof);
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
    while sh(lab, Vm::Storage, "systemctl is-active rtslib-fb-targetctl || true").trim() != "active"
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_secs(3));
    }
    let held = sh(lab, Vm::Storage, "sudo dmesg | grep -c 'bcache: register_bdev' || true");
    assert_eq!(held.trim(), "0", "the storage VM registered a Pi's bcache backing device and holds it");
    let lvs = sh(lab, Vm::Storage, "sudo lvs --noheadings -o lv_name,lv_active pis vdo");
    assert!(
        lvs.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["pi", "active"]),
        "pis/pi is not active: {lvs}"
    );
    let lio = sh(lab, Vm::Storage, "sudo targetcli ls /iscsi 2>&1");
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

/// The pids of the wpa_supplicant processes on the pi (the initramfs's is `@wpa_supplicant`).
fn supplicants(lab: &Lab) -> Vec<String> {
    sh(lab, Vm::Pi, "pgrep -f '^@?(/[^ ]*/)?wpa_supplicant( |$)' || true")
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
        // the same unit in the real root, whose systemd takes over the initramfs's (systemd init)
        ("labap.service", "/usr/lib/systemd/system/labap.service", "644"),
        ("hostapd.conf", "/usr/lib/labap/hostapd.conf", "644"),
        ("udhcpd.conf", "/usr/lib/labap/udhcpd.conf", "644"),
    ] {
        let text = std::fs::read_to_string(dir.join(src)).unwrap_or_else(|e| panic!("{src}: {e}"));
        sh(lab, Vm::Pi, &format!("sudo install -D -m {mode} /dev/stdin {dest} <<'LABAP_EOF'\n{text}LABAP_EOF"));
    }
}

/// Lab plumbing, after each Wi-Fi boot: the lab's hostapd runs from the initramfs, whose root was
/// emptied at the switch to the real one, and needs /dev/urandom to let a station in again (a
/// real access point is not on the pi).
fn lab_ap_after_switch_root(lab: &Lab) {
    sh(
        lab,
        Vm::Pi,
        "sudo sh -c 'r=/proc/$(cat /run/labap-hostapd.pid)/root/dev; [ -e $r/urandom ] || \
         { mkdir -p $r && mknod -m 666 $r/urandom c 1 9; }'",
    );
}

/// What the pi booted over Wi-Fi must show: the root over wlan0 only, the access point's and the
/// Wi-Fi step's console lines, and exactly one supplicant, the handover unit's main process.
fn assert_wifi_root(lab: &Lab, proof: &str, console_step: &str) -> Vec<String> {
    lab_ap_after_switch_root(lab);
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
    // started in the initramfs, its root is the initramfs's, emptied at the switch: the attach
    // unit gave it the random devices (its next handshake) and a directory for wpa_cli's replies
    let r = format!("/proc/{}/root", pids[0]);
    let attached = sh(
        lab,
        Vm::Pi,
        &format!("sudo sh -c '[ -c {r}/dev/urandom ] && [ -e {r}/run/pbr-wpa-wlan0-cli/.pbr ] && echo yes'"),
    );
    assert_eq!(attached.trim(), "yes", "{}", sh(lab, Vm::Pi, "systemctl status pbr-wpa-wlan0-attach.service || true"));
    let ping = sh(lab, Vm::Pi, "sudo timeout 10 wpa_cli -s /run/pbr-wpa-wlan0-cli -i wlan0 ping || true");
    assert_eq!(ping.trim(), "PONG", "the initramfs's supplicant does not answer wpa_cli");
    pids
}

/// The supplicant `pid` was started as `argv` (its command line's start), and a manual stop of its
/// unit, which would take the root with it, is refused.
fn assert_started_as(lab: &Lab, pid: &str, argv: &str) {
    let argv0 = sh(lab, Vm::Pi, &format!("tr '\\0' ' ' </proc/{pid}/cmdline"));
    assert!(argv0.starts_with(argv), "{argv0}");
    let stop = lab.ssh(Vm::Pi, "sudo systemctl stop pbr-wpa-wlan0.service");
    assert!(!stop.status.success(), "systemctl stop of the root's supplicant was not refused");
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
    // started from the copy in RAM (the root was out of reach while none ran)
    let now = supplicants(lab);
    let argv = sh(lab, Vm::Pi, &format!("tr '\\0' ' ' </proc/{}/cmdline", now[0]));
    assert!(argv.starts_with("@wpa_supplicant -B -i wlan0 -c /run/pbr-wpa-wlan0/wpa.conf "), "{argv}");
    eprintln!("[lab_wifi] the supplicant's RAM kit: {}", sh(lab, Vm::Pi, "sudo du -sk /run/pbr-wpa-wlan0").trim());
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

/// Two seconds in which the air loses every frame, both ways (netem on the access point's ports),
/// while the pi writes to its root: the write completes, in the same iSCSI session.
fn assert_root_survives_loss(lab: &Lab, file: &str) {
    let sid = || sh(lab, Vm::Pi, "sudo iscsiadm -m session | awk '{print $2}'");
    let before = sid();
    let script = format!(
        r#"sudo sh -s <<'LOSS_EOF'
dd if=/dev/urandom of={file} bs=64k count=160 conv=fsync 2>/dev/null &
ip netns exec ap sh -c '
    ports=$(ls /sys/class/net | grep -vx -e lo -e br0)
    # nothing may be read from the root while it is out of reach: the timer runs before the loss
    # starts, and tc has just run when it is called again
    sleep 2 &
    timer=$!
    for d in $ports; do tc qdisc replace dev $d root netem loss 100% || exit 1; done
    wait $timer
    for d in $ports; do tc qdisc del dev $d root; done
    echo lost 2s on $ports'
wait
stat -c %s {file}
LOSS_EOF"#
    );
    let out = sh(lab, Vm::Pi, &script);
    assert!(out.contains("lost 2s on"), "the loss was not injected: {out}");
    assert!(out.trim_end().ends_with(&(160u64 * 65536).to_string()), "the write during the loss: {out}");
    assert_eq!(sid(), before, "the iSCSI session was replaced");
}

/// `playbooks/diagnose-wifi.yml` on the live Wi-Fi pi, in check mode (it changes nothing).
fn diagnose(lab: &Lab, inv: &str, extra: &[&str]) -> common::Run {
    let mut args = vec![
        "run",
        "playbooks/diagnose-wifi.yml",
        "-i",
        inv,
        "-i",
        "inventory/lab",
        "--vault-password-file",
        VAULT_PW,
        "-e",
        "@tests/lab/wifi-vars.yml",
        "-l",
        "pi",
        "--check",
    ];
    args.extend_from_slice(extra);
    let t = Instant::now();
    let r = common::pbr(&repo(), &args);
    eprintln!(
        "[lab_wifi] diagnose-wifi.yml --check {} -> {} in {:.0} s\n{}",
        extra.join(" "),
        r.code,
        t.elapsed().as_secs_f64(),
        r.stdout
    );
    assert_eq!(r.code, 0, "{}\n--- console ---\n{}", r.all(), tail(&lab.serial_log(Vm::Pi), 60));
    assert_eq!(stat(&r, "pi", "changed"), 0, "{}", r.stdout);
    r
}

/// The diagnosis with a scratch LUN the test makes on the storage VM (a ramdisk, removed again):
/// the path to the portal carries full-size packets, both candidate settings carry a real load
/// over Wi-Fi, and nothing is left behind on the pi (no session, no node record).
fn assert_diagnosis(lab: &Lab, inv: &str) {
    let scratch = "iqn.2024-01.lan.lab.storage:scratch";
    let tc = |cmds: &[String]| {
        let script: Vec<String> = cmds.iter().map(|c| format!("sudo targetcli {c} >/dev/null")).collect();
        sh(lab, Vm::Storage, &script.join(" && "))
    };
    tc(&[
        "/backstores/ramdisk create name=scratch size=64M".into(),
        format!("/iscsi create {scratch}"),
        format!("/iscsi/{scratch}/tpg1/luns create /backstores/ramdisk/scratch"),
        format!("/iscsi/{scratch}/tpg1/acls create iqn.2024-01.lan.lab.pi:pi"),
    ]);
    // the storage role's targetcli module turned targetcli's automatic portal and LUN mapping
    // off (it declares both): add them here unless targetcli did
    sh(
        lab,
        Vm::Storage,
        &format!(
            "t=/iscsi/{scratch}/tpg1; a=$t/acls/iqn.2024-01.lan.lab.pi:pi
             {{ sudo targetcli $t/portals ls | grep -q '0.0.0.0:3260' || sudo targetcli $t/portals create 0.0.0.0 3260; }} &&
             {{ sudo targetcli $a ls | grep -q mapped_lun0 || sudo targetcli $a create mapped_lun=0 tpg_lun_or_backstore=0; }} >/dev/null"
        ),
    );
    let nodes = || sh(lab, Vm::Pi, "sudo iscsiadm -m node 2>/dev/null | sort");
    let before = nodes();
    let target = format!("wifi_scratch_target={scratch}");
    let r = std::panic::catch_unwind(|| diagnose(lab, inv, &["-e", &target]));
    tc(&[format!("/iscsi delete {scratch}"), "/backstores/ramdisk delete scratch".into()]);
    let r = r.unwrap_or_else(|e| std::panic::resume_unwind(e));
    assert!(r.stdout.contains("packets of 1500 bytes (the MTU of wlan0) reach the portal"), "{}", r.stdout);
    for c in ["defaults", "NOP-outs off, replacement timeout 600 s"] {
        assert!(
            r.stdout.contains(&format!("load with {c}: survived: wrote and read back 16 MiB")),
            "candidate {c}:\n{}",
            r.stdout
        );
    }
    assert!(!sh(lab, Vm::Pi, "sudo iscsiadm -m session").contains(scratch), "a scratch session is left");
    assert_eq!(nodes(), before, "the node records changed");
}

/// Run `reboot` (a run that reboots the pi) while watching the pi's console: when the initramfs
/// says it logs in to its iSCSI target, the storage VM's LAN port loses every packet, both ways,
/// for 2 s. What the storage VM said of it, or why nothing was lost.
fn with_loss_at_login<T>(lab: &Lab, reboot: impl FnOnce() -> T) -> (T, String) {
    use std::os::unix::fs::MetadataExt;
    let marker = "iSCSI login to";
    // each boot of the pi has a console log of its own (lab.sh keeps the last as serial.N.log)
    let path = lab.dir().join("pi/serial.log");
    let inode = || std::fs::metadata(&path).map(|m| m.ino()).unwrap_or(0);
    let (ino0, seen) = (inode(), lab.serial_log(Vm::Pi).matches(marker).count());
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                let n = lab.serial_log(Vm::Pi).matches(marker).count();
                if n > seen || (inode() != ino0 && n > 0) {
                    return lab
                        .sh(
                            Vm::Storage,
                            r#"sudo sh -ec '
d=$(ip -o -4 addr show | awk "\$4 ~ /^10\\.99\\.0\\.1\\// {print \$2}")
tc qdisc add dev $d root netem loss 100%
tc qdisc add dev $d ingress
tc filter add dev $d parent ffff: matchall action drop
sleep 2
tc qdisc del dev $d root
tc qdisc del dev $d ingress
echo lost 2s on $d'"#,
                        )
                        .unwrap_or_else(|e| e);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            format!("the console never said {marker:?}")
        });
        let r = reboot();
        done.store(true, Ordering::SeqCst);
        (r, watcher.join().unwrap())
    })
}

/// Both ports of the lab access point's bridge at `mtu`: above it, frames vanish silently.
fn set_ap_mtu(lab: &Lab, mtu: u32) {
    sh(
        lab,
        Vm::Pi,
        &format!(
            "sudo ip netns exec ap sh -c 'for d in $(ls /sys/class/net | grep -vx -e lo -e br0); do \
             ip link set $d mtu {mtu} || exit 1; done'"
        ),
    );
}

/// A path-MTU black hole appears under the live pi (wlan0 at 1500): the diagnosis names it and
/// the size that passes. Then the fix it names, `wifi_mtu`, with the black hole kept for good:
/// the pi reboots through it and its root takes a write.
fn assert_black_hole_named_and_fixed(lab: &Lab, inv: &str, site: &dyn Fn(&[&str]) -> common::Run) -> u64 {
    sh(lab, Vm::Pi, "sync");
    set_ap_mtu(lab, 1400);
    let r = std::panic::catch_unwind(|| diagnose(lab, inv, &[]));
    set_ap_mtu(lab, 1500);
    let r = r.unwrap_or_else(|e| std::panic::resume_unwind(e));
    // the root had writes held up behind the black hole: they go through once it is gone
    sh(lab, Vm::Pi, "echo after | sudo timeout 300 tee /after-black-hole >/dev/null && sudo timeout 300 sync");
    let line = r.stdout.lines().find(|l| l.contains("path MTU BLACK HOLE")).unwrap_or_else(|| panic!("{}", r.stdout));
    let mtu: u64 = line
        .split("Set wifi.mtu: ")
        .nth(1)
        .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no MTU named: {line}"));
    // a bridge port passes what fits its MTU plus the slack the kernel allows for a link-layer
    // header and a VLAN tag (up to 18 bytes)
    assert!((1400..=1418).contains(&mtu), "{line}");
    assert!(line.contains("wlan0's MTU is 1500"), "{line}");

    // the fix: the black hole stays (in the access point's image), the Wi-Fi step sets 1400
    sh(lab, Vm::Pi, "echo 1400 | sudo tee /usr/lib/labap/mtu >/dev/null");
    // and 2 s of total loss during that boot, as the initramfs logs in
    let (fixed, lost) =
        with_loss_at_login(lab, || site(&["-l", "pi", "-e", "wifi_mtu=1400", "-e", "pi_reboot=true", "--diff"]));
    assert_eq!(fixed.code, 0, "wifi_mtu:\n{}\n--- console ---\n{}", fixed.all(), tail(&lab.serial_log(Vm::Pi), 100));
    assert!(lost.contains("lost 2s on"), "no loss during the boot: {lost}");
    assert_eq!(fixed.stdout.matches("(item=regenerate initramfs)").count(), 1, "one regeneration:\n{}", fixed.stdout);
    lab_ap_after_switch_root(lab);
    let ports = sh(lab, Vm::Pi, "sudo ip netns exec ap ip -o link show | grep -o 'mtu [0-9]*' | sort | uniq -c");
    assert!(ports.contains("mtu 1400") && !ports.contains("mtu 1500"), "the black hole is not in place: {ports}");
    assert!(sh(lab, Vm::Pi, "ip -o link show wlan0").contains(" mtu 1400 "), "wlan0's MTU is not 1400");
    let wrote = sh(
        lab,
        Vm::Pi,
        "sudo timeout 120 dd if=/dev/urandom of=/through-black-hole bs=64k count=160 conv=fsync 2>/dev/null && \
         stat -c %s /through-black-hole",
    );
    assert_eq!(wrote.trim(), (160u64 * 65536).to_string(), "a write through the black hole at MTU 1400");
    mtu
}

#[test]
fn lab_wifi_pi_boots_its_iscsi_root_over_wifi() {
    if !require_lab("lab_wifi_pi_boots_its_iscsi_root_over_wifi") {
        return;
    }
    let _one_at_a_time = Lab::exclusive();
    let mut steps = Steps::new("lab_wifi");
    FRESH.store(false, Ordering::SeqCst);
    let lab = Lab::shared().unwrap_or_else(|e| panic!("lab did not start: {e}"));
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
            "--vault-password-file",
            VAULT_PW,
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
    install_labap(lab);
    sh(
        lab,
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
    let listing = sh(lab, Vm::Pi, "sudo lsinitcpio -l /boot/initramfs-linux.img");
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
    let hooks = sh(lab, Vm::Pi, "bash -c '. /etc/mkinitcpio.conf; echo \"${HOOKS[@]}\"'");
    assert!(hooks.contains("wifi iscsi bcache filesystems"), "HOOKS: {hooks}");
    let second = site(&["--verify"]);
    assert_eq!(second.code, 0, "{}", second.all());
    for h in ["storage", "pi"] {
        assert_eq!(stat(&second, h, "changed"), 0, "second run changed {h}:\n{}", second.stdout);
    }
    steps.done("second run --verify");

    // the reboot: no wired path to the portal any more
    let proof = format!("written before the Wi-Fi reboot at {}", steps.t0.elapsed().as_secs());
    write_proof(lab, &proof);
    let boot_id = sh(lab, Vm::Pi, "cat /proc/sys/kernel/random/boot_id");
    let rebooted = site(&["-l", "pi", "-e", "pi_reboot=true"]);
    assert_eq!(
        rebooted.code,
        0,
        "reboot:\n{}\n--- console ---\n{}",
        rebooted.all(),
        tail(&lab.serial_log(Vm::Pi), 100)
    );
    assert_ne!(sh(lab, Vm::Pi, "cat /proc/sys/kernel/random/boot_id"), boot_id);
    steps.done("pi reboot over Wi-Fi (busybox init) until ssh");
    let pids = assert_wifi_root(lab, &proof, "lab: simulated access point");
    // the initramfs's supplicant, adopted (named for systemd's final kill to spare it)
    assert_started_as(lab, &pids[0], "@wpa_supplicant -B -i wlan0");
    // the stock unit, started by hand, does not start a second supplicant
    let _ = lab.ssh(Vm::Pi, "sudo systemctl start wpa_supplicant@wlan0.service");
    assert_eq!(supplicants(lab).len(), 1, "the stock unit started a second supplicant");
    steps.done("one adopted supplicant");
    assert_supplicant_comes_back(lab, &pids[0], "/after-kill");
    steps.done("supplicant killed, a supervised one back, root writable");
    assert_root_survives_loss(lab, "/written-through-loss");
    steps.done("2 s of loss on the air while writing: written, same session");
    let again = site(&["-l", "pi", "--verify"]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(stat(&again, "pi", "changed"), 0, "the Wi-Fi pi is not converged:\n{}", again.stdout);
    steps.done("run on the booted pi");

    // The systemd init: the handover unit runs the supplicant from the initramfs on, and the real
    // root's systemd keeps it (the same unit in both).
    sh(lab, Vm::Pi, "sudo sed -i 's/^HOOKS=(base udev /HOOKS=(base systemd /' /etc/mkinitcpio.conf");
    let sd = site(&["-l", "pi", "-e", "pi_reboot=true", "--diff"]);
    assert_eq!(sd.code, 0, "systemd init:\n{}\n--- console ---\n{}", sd.all(), tail(&lab.serial_log(Vm::Pi), 100));
    assert!(sd.stdout.contains("/etc/initcpio/pbr/pbr-wifi.service"), "{}", sd.stdout);
    assert_eq!(sd.stdout.matches("(item=regenerate initramfs)").count(), 1, "one regeneration:\n{}", sd.stdout);
    steps.done("pi reboot over Wi-Fi (systemd init) until ssh");
    let pids = assert_wifi_root(lab, &proof, "pbr-wifi.service");
    // started in the initramfs by the handover unit, from its copy in RAM, and still its main process
    assert_started_as(lab, &pids[0], "@wpa_supplicant -B -i wlan0 -c /run/pbr-wpa-wlan0/wpa.conf ");
    assert_supplicant_comes_back(lab, &pids[0], "/after-kill-systemd");
    steps.done("systemd init: one supervised supplicant, killed and back");
    let again = site(&["-l", "pi", "--verify"]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(stat(&again, "pi", "changed"), 0, "the Wi-Fi pi is not converged:\n{}", again.stdout);
    steps.done("run on the booted pi (systemd init)");
    assert_diagnosis(lab, &inv);
    steps.done("diagnosis over Wi-Fi: path MTU and a scratch LUN under each candidate, no trace");
    let hole = assert_black_hole_named_and_fixed(lab, &inv, &site);
    steps.done(&format!("black hole named (path MTU {hole}); with wifi_mtu 1400 the pi reboots through it"));

    // A wrong passphrase (last: the pi does not come back from it). The image gets the new key
    // and the next boot stops in the initramfs with the reason on the console, not with a silent
    // iSCSI timeout.
    let wrong = site(&["-l", "pi", "-e", "wifi_mtu=1400", "-e", "wifi_passphrase=not-the-lab-passphrase", "--diff"]);
    assert_eq!(wrong.code, 0, "{}", wrong.all());
    assert!(wrong.stdout.contains("psk changed"), "{}", wrong.stdout);
    assert!(
        wrong.stdout.contains("the running supplicant on wlan0 learns network \"pbr-lab\" with its new key"),
        "{}",
        wrong.stdout
    );
    assert_eq!(wrong.stdout.matches("(item=regenerate initramfs)").count(), 1, "{}", wrong.stdout);
    assert!(!wrong.all().contains("not-the-lab-passphrase"), "the passphrase was printed:\n{}", wrong.all());
    // the running supplicant knows both keys and keeps the link it has
    let nets = sh(lab, Vm::Pi, "sudo wpa_cli -s /run/pbr-wpa-wlan0-cli -i wlan0 list_networks");
    assert_eq!(nets.lines().filter(|l| l.contains("\tpbr-lab\t")).count(), 2, "{nets}");
    assert!(nets.contains("[CURRENT]"), "{nets}");
    sh(lab, Vm::Pi, "echo kept | sudo tee /after-new-key >/dev/null && sync");
    steps.done("wrong passphrase converged: learned beside the old key, the link kept");
    let seen = lab.serial_log(Vm::Pi).matches("is the passphrase right?").count();
    let _ = lab.ssh(Vm::Pi, "sudo systemctl reboot");
    let deadline = Instant::now() + Duration::from_secs(420);
    loop {
        let console = lab.serial_log(Vm::Pi);
        if console.matches("is the passphrase right?").count() > seen {
            assert!(
                console.contains("wlan0 is not associated after 60s"),
                "the console does not say what failed:\n{}",
                tail(&console, 40)
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no passphrase message on the console after a boot with a wrong passphrase:\n{}",
            tail(&console, 80)
        );
        std::thread::sleep(Duration::from_secs(5));
    }
    steps.done("wrong passphrase: the initramfs says so on the console");
}
