//! `iscsi_link_check` against real kernel paths built inside `unshare -n` (never this machine's
//! network): a veth peer whose MTU drops big packets silently (a black hole), a router that
//! reports its smaller MTU (ICMP "fragmentation needed"), and a clean path.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

/// The portal's side: `portal` is a network namespace (a `sleep`'s), `pbr0` our end.
const DIRECT: &str = r#"
ip link set lo up
unshare -n sleep 120 & portal=$!
sleep 0.2
ip link add pbr0 type veth peer name pbr0p
ip link set pbr0p netns $portal
ip addr add 198.18.0.1/30 dev pbr0
ip link set pbr0 up
nsenter -t $portal -n sh -ec "ip link set lo up; ip addr add 198.18.0.2/30 dev pbr0p; ip link set pbr0p mtu $PEER_MTU up"
"#;

/// A router between us and the portal whose far side has MTU 1400, and says so.
const ROUTED: &str = r#"
ip link set lo up
unshare -n sleep 120 & router=$!
unshare -n sleep 120 & portal=$!
sleep 0.2
ip link add pbr0 type veth peer name r0
ip link set r0 netns $router
ip link add r1 netns $router type veth peer name pbr1 netns $portal
ip addr add 198.18.0.1/30 dev pbr0
ip link set pbr0 up
ip route add 198.18.1.0/30 via 198.18.0.2
nsenter -t $router -n sh -ec "ip link set lo up; echo 1 >/proc/sys/net/ipv4/ip_forward
    ip addr add 198.18.0.2/30 dev r0; ip link set r0 up
    ip addr add 198.18.1.1/30 dev r1; ip link set r1 mtu 1400 up"
nsenter -t $portal -n sh -ec "ip link set lo up; ip addr add 198.18.1.2/30 dev pbr1; ip link set pbr1 mtu 1400 up
    ip route add default via 198.18.1.1"
"#;

const PLAY: &str = r#"
- hosts: all
  gather_facts: false
  tasks:
    - name: diagnose the link to the portal
      iscsi_link_check:
        portal: "{{ portal }}"
      register: link
    - name: keep the report
      copy:
        dest: "{{ root }}/report.json"
        content: "{{ link | to_json }}"
"#;

fn usable() -> bool {
    let ok = |c: &str| Command::new("sh").arg("-c").arg(c).output().map(|o| o.status.success()).unwrap_or(false);
    let can = ok("[ $(id -u) = 0 ]") && ok("unshare -n true") && ok("command -v ping nsenter ip");
    if !can {
        eprintln!("\n!!!!!!!! SKIP: needs root, unshare -n, ping (iputils), nsenter and ip !!!!!!!!\n");
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI installs what this test needs and runs as root");
    }
    can
}

/// Build the path (a script above) in a fresh network namespace and run the playbook in it,
/// `--check` (the module changes nothing, so it measures in check mode too; the report is
/// written by a second, normal run of the same namespace's script).
fn diagnose(dir: &Path, setup: &str, peer_mtu: u32, portal: &str) -> (Run, serde_json::Value) {
    write(dir, "inventory.ini", &format!("h ansible_connection=local root={} portal={portal}\n", dir.display()));
    write(dir, "pb.yml", PLAY);
    let pbr = env!("CARGO_BIN_EXE_pbr");
    let script = format!(
        "set -e\n{setup}\nset +e\n{pbr} run pb.yml -i inventory.ini --check >check.out 2>&1; echo $? >check.rc\n\
         {pbr} run pb.yml -i inventory.ini; rc=$?\nkill $portal ${{router:-}} 2>/dev/null\nexit $rc\n"
    );
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .current_dir(dir)
        .env("PEER_MTU", peer_mtu.to_string())
        .env("NO_COLOR", "1")
        .env(LOOPBACK_ONLY.0, LOOPBACK_ONLY.1)
        .output()
        .unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    let check = std::fs::read_to_string(dir.join("check.out")).unwrap_or_default();
    assert_eq!(std::fs::read_to_string(dir.join("check.rc")).unwrap_or_default().trim(), "0", "--check:\n{check}");
    assert!(check.contains("diagnose the link") && !check.contains("changed: [h] => diagnose"), "{check}");
    let report =
        std::fs::read_to_string(dir.join("report.json")).unwrap_or_else(|_| panic!("no report:\n{}", run.all()));
    (run, serde_json::from_str(&report).unwrap())
}

fn findings(r: &serde_json::Value) -> String {
    r["findings"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_string()).collect::<Vec<_>>().join("\n")
}

#[test]
fn a_black_hole_is_measured_and_named() {
    if !usable() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let (run, r) = diagnose(d.path(), DIRECT, 1400, "198.18.0.2");
    assert_eq!(run.code, 0, "{}", run.all());
    let diag = &r["diagnosis"];
    assert_eq!(diag["interface"], "pbr0", "{r}");
    assert_eq!(diag["interface_mtu"], 1500, "{r}");
    assert_eq!(diag["path"]["kind"], "black_hole", "{r}");
    // the veth peer drops what exceeds its MTU (plus a VLAN tag's 4 bytes, the kernel's slack)
    let mtu = diag["path"]["mtu"].as_u64().unwrap();
    assert!((1400..=1404).contains(&mtu), "{r}");
    let f = findings(&r);
    assert!(f.contains("BLACK HOLE") && f.contains(&format!("Set wifi.mtu: {mtu}")), "{f}");
    assert_eq!(r["changed"], false, "{r}");
}

#[test]
fn a_reported_mtu_and_a_clean_path() {
    if !usable() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let (run, r) = diagnose(d.path(), ROUTED, 1400, "198.18.1.2");
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(r["diagnosis"]["path"], serde_json::json!({"kind": "reported", "mtu": 1400}), "{r}");
    assert!(findings(&r).contains("path MTU: 1400 (reported by the way"), "{}", findings(&r));

    let d = tempfile::tempdir().unwrap();
    let (run, r) = diagnose(d.path(), DIRECT, 1500, "198.18.0.2");
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(r["diagnosis"]["path"], serde_json::json!({"kind": "full", "mtu": 1500}), "{r}");
    assert!(findings(&r).contains("packets of 1500 bytes (the MTU of pbr0) reach the portal"), "{}", findings(&r));

    // nobody at the portal's address: said so, not a black hole
    let d = tempfile::tempdir().unwrap();
    let (run, r) = diagnose(d.path(), DIRECT, 1500, "198.18.0.3");
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(r["diagnosis"]["path"]["kind"], "no_answer", "{r}");
}
