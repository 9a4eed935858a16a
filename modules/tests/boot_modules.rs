//! mkinitcpio_hook, networkd, wpa and kernel_cmdline through the registry, on temp trees, with
//! bash, wpa_passphrase and Python's configparser as oracles.

mod common;
use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

fn bash(script: &str) -> String {
    let out = Command::new("bash").arg("-c").arg(script).output().expect("bash runs");
    assert!(out.status.success(), "bash failed: {script}\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn bash_n(path: &Path) {
    let out = Command::new("bash").arg("-n").arg(path).output().expect("bash runs");
    assert!(out.status.success(), "bash -n {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
}

fn array(conf: &Path, extra: &str, name: &str) -> Vec<String> {
    bash(&format!("source {}; {extra} printf '%s\\n' \"${{{name}[@]}}\"", s(conf)))
        .lines()
        .map(str::to_string)
        .collect()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A tool needed as an oracle: skip loudly when missing, fail under CI.
fn have(tool: &str) -> bool {
    let ok = Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{tool} is required in CI");
        eprintln!("SKIPPED: {tool} not installed (apt-get install -y the package providing it)");
    }
    ok
}

const CONF: &str = r#"# vim:set ft=sh
# MODULES
MODULES=()

# BINARIES: keep this comment
BINARIES=( )

FILES=(
    /etc/one   # first
    "/etc/two words"
)

#HOOKS=(base udev autodetect)
HOOKS=(base   udev autodetect
       modconf block	net    # network for the root
       filesystems keyboard fsck)

COMPRESSION="zstd"
"#;

const WIFI_HOOK: &str = "#!/usr/bin/ash\n\nrun_hook() {\n    wpa_supplicant -B -i wlan0\n}\n\nrun_cleanuphook() {\n    killall wpa_supplicant\n}\n";

const FIRMWARE: [&str; 3] = [
    "usr/lib/firmware/updates/brcm/brcmfmac43430-sdio.bin",
    "usr/lib/firmware/updates/brcm/brcmfmac43430-sdio.raspberrypi,model-zero-w.txt",
    "usr/lib/firmware/updates/brcm/brcmfmac43430-sdio.clm_blob",
];

fn setup_tree(root: &Path) {
    std::fs::create_dir_all(root.join("etc/iscsi")).unwrap();
    std::fs::write(root.join("etc/iscsi/initiatorname.iscsi"), "InitiatorName=iqn.2024-01.org.example:pi3\n").unwrap();
    std::fs::create_dir_all(root.join("usr/lib/firmware/updates/brcm")).unwrap();
    for f in FIRMWARE {
        std::fs::write(root.join(f), "blob").unwrap();
    }
    std::fs::write(root.join("etc/mkinitcpio.conf"), CONF).unwrap();
    std::fs::create_dir_all(root.join("usr/lib/initcpio/hooks")).unwrap();
    std::fs::write(root.join("usr/lib/initcpio/hooks/wifi"), WIFI_HOOK).unwrap();
}

fn iscsi_params(root: &Path) -> Value {
    json!({
        "name": "iscsi",
        "after": "net",
        "initcpio_dir": s(&root.join("etc/initcpio")),
        "initcpio_lib_dir": s(&root.join("usr/lib/initcpio")),
        "config": s(&root.join("etc/mkinitcpio.conf")),
        "iscsi": {
            "initiator": "iqn.2024-01.org.example:pi3",
            "target": "iqn.2024-01.org.example:storage.pi3",
            "portal": "192.168.1.10",
            "lun": 2,
            "wait_seconds": 1,
            "net": false
        },
        "files": [s(&root.join("etc/iscsi/initiatorname.iscsi"))],
        "config_modules": ["brcmfmac", "brcmutil", "cfg80211", "rfkill"],
        "config_files": FIRMWARE.iter().map(|f| s(&root.join(f))).collect::<Vec<_>>(),
        "disable_cleanup": ["wifi"],
        "pending_marker": s(&root.join("var/lib/pbr/mkinitcpio.pending")),
        "regenerate_command": format!("echo regenerated >> {}", s(&root.join("regen.log")))
    })
}

#[tokio::test]
async fn mkinitcpio_iscsi_hook_converges_and_edits_only_the_arrays() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    setup_tree(root);
    let params = iscsi_params(root);
    let (check, applied) = converge(root, &[], "mkinitcpio_hook", params.clone()).await;
    assert!(check.deferred.is_empty(), "no deferred work in check mode");
    assert_eq!(applied.deferred.len(), 1);
    assert_eq!(applied.deferred[0].key, "mkinitcpio");
    let marker = root.join("var/lib/pbr/mkinitcpio.pending");
    assert_eq!(
        applied.deferred[0].script,
        format!("echo regenerated >> {} && rm -f -- {}", s(&root.join("regen.log")), s(&marker))
    );
    assert_eq!(applied.deferred[0].description, "regenerate initramfs");
    // until the regeneration has run, the next run does it again (a failed or interrupted one)
    assert!(marker.exists());
    let pending = run("mkinitcpio_hook", params.clone(), APPLY).await.unwrap();
    assert!(pending.changes[0].summary.contains("the last regeneration did not succeed"), "{:?}", pending.changes);
    assert_eq!(pending.deferred.len(), 1);
    let ok = std::process::Command::new("sh").arg("-c").arg(&pending.deferred[0].script).status().unwrap();
    assert!(ok.success());
    assert_eq!(read(&root.join("regen.log")), "regenerated\n");
    assert!(!marker.exists(), "a successful regeneration removes the marker");
    // every file change shows a diff
    assert!(applied.changes.iter().all(|c| c.diff.is_some()), "{:?}", applied.changes);
    let again = run("mkinitcpio_hook", params.clone(), APPLY).await.unwrap();
    assert!(!again.changed && again.deferred.is_empty());

    let conf = root.join("etc/mkinitcpio.conf");
    let install = root.join("etc/initcpio/install/iscsi");
    let hook = root.join("etc/initcpio/hooks/iscsi");
    let over = root.join("etc/initcpio/hooks/wifi");
    for f in [&conf, &install, &hook, &over] {
        bash_n(f);
        assert_eq!(mode_of(f), if f == &conf { mode_of(&conf) } else { 0o644 });
    }
    // the arrays as bash sees them
    assert_eq!(
        array(&conf, "", "HOOKS"),
        ["base", "udev", "autodetect", "modconf", "block", "net", "iscsi", "filesystems", "keyboard", "fsck"]
    );
    assert_eq!(array(&conf, "", "MODULES"), ["brcmfmac", "brcmutil", "cfg80211", "rfkill"]);
    let fw: Vec<String> = FIRMWARE.iter().map(|f| s(&root.join(f))).collect();
    let mut files = vec!["/etc/one".to_string(), "/etc/two words".to_string()];
    files.extend(fw.iter().cloned());
    assert_eq!(array(&conf, "", "FILES"), files);
    // every byte outside the edited arrays kept
    let want = CONF
        .replace("MODULES=()", "MODULES=(brcmfmac brcmutil cfg80211 rfkill)")
        .replace("\"/etc/two words\"\n", &format!("\"/etc/two words\" {}\n", fw.join(" ")))
        .replace("block\tnet    #", "block\tnet iscsi    #");
    assert_eq!(read(&conf), want);

    // build() as mkinitcpio would call it
    let script = root.join("etc/initcpio/pbr/iscsi.sh");
    let built = bash(&format!(
        "add_module() {{ echo \"module $*\"; }}; add_checked_modules() {{ echo \"checked $*\"; }}; \
         add_binary() {{ echo \"binary $*\"; }}; add_file() {{ echo \"file $*\"; }}; \
         add_runscript() {{ echo runscript; }}; source {}; build; help | head -1",
        s(&install)
    ));
    assert_eq!(
        built,
        format!(
            "module iscsi_tcp\nchecked /drivers/net\nbinary iscsistart\nfile {}\nfile {} /usr/lib/pbr/iscsi.sh 700\n\
             runscript\nLogs in to the iSCSI target iqn.2024-01.org.example:storage.pi3 at 192.168.1.10:3260 with iscsistart.\n",
            s(&root.join("etc/iscsi/initiatorname.iscsi")),
            s(&script)
        )
    );
    assert_eq!(mode_of(&script), 0o700);
    // the busybox run_hook runs the login script
    assert!(read(&hook).contains("/bin/sh /usr/lib/pbr/iscsi.sh"), "{}", read(&hook));
    // the login script with stand-ins for the initramfs tools on PATH: iscsistart gets the
    // right argv, and the script fails when the LUN never shows up
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for (tool, body) in [
        ("iscsistart", "printf '<%s>' \"$@\" >> \"$LOG\"; echo >> \"$LOG\""),
        ("modprobe", ":"),
        ("sleep", ":"),
        ("ip", "echo \"ip $*\" >> \"$LOG\""),
    ] {
        let f = bin.join(tool);
        std::fs::write(&f, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let log = root.join("tools.log");
    let ran = std::process::Command::new("sh")
        .arg(&script)
        .env("PATH", format!("{}:/usr/bin:/bin", s(&bin)))
        .env("LOG", &log)
        .output()
        .unwrap();
    assert_eq!(ran.status.code(), Some(1), "{ran:?}");
    assert!(
        String::from_utf8_lossy(&ran.stderr)
            .contains("LUN 2 of iqn.2024-01.org.example:storage.pi3 did not appear within 1s"),
        "{ran:?}"
    );
    assert!(
        read(&log).contains(
            "<-i><iqn.2024-01.org.example:pi3><-t><iqn.2024-01.org.example:storage.pi3><-g><1><-a><192.168.1.10><-p><3260>\n"
        ),
        "{}",
        read(&log)
    );
    // the override keeps the packaged run_hook and neutralises its cleanup
    let o = bash(&format!(
        "wpa_supplicant() {{ echo started; }}; killall() {{ echo KILLED; }}; source {}; run_hook; run_cleanuphook; echo done",
        s(&over)
    ));
    assert_eq!(o, "started\ndone\n");
    assert!(read(&over).starts_with(WIFI_HOOK));

    // a changed packaged hook refreshes the override
    std::fs::write(root.join("usr/lib/initcpio/hooks/wifi"), format!("{WIFI_HOOK}# v2\n")).unwrap();
    let r = run("mkinitcpio_hook", params.clone(), APPLY).await.unwrap();
    assert!(r.changed);
    assert_eq!(r.changes.len(), 1, "{:?}", r.changes);
    assert!(read(&over).contains("# v2\n"));

    // absent: files gone, conf back to the original byte for byte
    let mut gone = params.clone();
    gone["state"] = json!("absent");
    let (_, removed) = converge(root, &[], "mkinitcpio_hook", gone).await;
    assert_eq!(removed.deferred.len(), 1);
    assert_eq!(read(&conf), CONF);
    assert!(!install.exists() && !hook.exists() && !over.exists());
}

#[tokio::test]
async fn mkinitcpio_string_form_and_dropin() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let conf = root.join("mkinitcpio.conf");
    let original = "HOOKS=\"base udev filesystems\" # string form\nMODULES=(a)\n";
    std::fs::write(&conf, original).unwrap();
    // string form edited in place
    let p = json!({
        "name": "bcache", "before": "filesystems", "config": s(&conf),
        "initcpio_dir": s(&root.join("initcpio")),
        "run_hook": "echo one\necho \"two\"", "regenerate": false
    });
    let (_, applied) = converge(root, &[], "mkinitcpio_hook", p).await;
    assert!(applied.deferred.is_empty(), "regenerate: false");
    assert_eq!(read(&conf), "HOOKS=\"base udev bcache filesystems\" # string form\nMODULES=(a)\n");
    // mkinitcpio splits the string form into words
    let words = bash(&format!("source {}; for h in $HOOKS; do echo \"$h\"; done", s(&conf)));
    assert_eq!(words, "base\nudev\nbcache\nfilesystems\n");
    bash_n(&root.join("initcpio/hooks/bcache"));
    let out = bash(&format!("source {}; run_hook", s(&root.join("initcpio/hooks/bcache"))));
    assert_eq!(out, "one\ntwo\n");

    // a drop-in leaves the main config alone
    std::fs::write(&conf, original).unwrap();
    let dropin_dir = root.join("conf.d");
    let p = json!({
        "name": "wifi", "dropin": true, "dropin_dir": s(&dropin_dir), "after": "udev",
        "config": s(&conf), "initcpio_dir": s(&root.join("initcpio")),
        "binaries": ["wpa_supplicant"], "run_hook": "wpa_supplicant -B -i wlan0",
        "config_modules": ["brcmfmac", "a"], "regenerate_command": "true",
        "pending_marker": s(&root.join("pending"))
    });
    let (_, applied) = converge(root, &[], "mkinitcpio_hook", p).await;
    assert!(applied.deferred[0].script.starts_with("true && rm -f -- "), "{}", applied.deferred[0].script);
    assert_eq!(read(&conf), original);
    let dropin = dropin_dir.join("wifi.conf");
    bash_n(&dropin);
    let src = format!("source {};", s(&dropin));
    assert_eq!(array(&conf, &src, "HOOKS"), ["base", "udev", "wifi", "filesystems"]);
    assert_eq!(array(&conf, &src, "MODULES"), ["a", "brcmfmac"]);
    // sourcing twice changes nothing (mkinitcpio may source drop-ins after a conf that has them)
    assert_eq!(array(&conf, &format!("{src} {src}"), "HOOKS"), ["base", "udev", "wifi", "filesystems"]);
}

#[tokio::test]
async fn mkinitcpio_errors() {
    let reg = pbr_engine::Registry::with(pbr_modules::register);
    let m = reg.get("mkinitcpio_hook").unwrap();
    let iscsi = |ini: &str, portal: &str| json!({"name": "iscsi", "iscsi": {"initiator": ini, "target": "iqn.2024-01.org.example:t", "portal": portal}});
    assert!(m.check_params(&iscsi("iqn.2024-01.org.example:pi", "10.0.0.1")).is_ok());
    let e = m.check_params(&iscsi("iqn.2021-03.target:name", "10.0.0.1")).unwrap_err();
    assert!(e.message.contains("reversed domain"), "{}", e.message);
    assert!(m.check_params(&iscsi("iqn.2024-01.org.example:pi", "no such host!")).is_err());
    for bad in [
        json!({"name": "x", "before": "a", "after": "b"}),
        json!({"name": "x", "install": "build() { :; }", "binaries": ["y"]}),
        json!({"name": "x/y"}),
        json!({"modules": ["a"]}),
        json!({}),
        json!({"name": "x", "disable_cleanup": ["x"]}),
    ] {
        assert!(m.check_params(&bad).is_err(), "accepted {bad}");
    }
    let e = m.check_params(&json!({"name": "x", "run_hok": "a"})).unwrap_err();
    assert_eq!(e.unknown.map(|u| u.0).as_deref(), Some("run_hok"));
    // a placement next to a hook that is not there fails without writing
    let d = tempfile::tempdir().unwrap();
    let conf = d.path().join("c.conf");
    std::fs::write(&conf, "HOOKS=(base)\n").unwrap();
    let p = json!({"name": "x", "before": "nope", "config": s(&conf), "initcpio_dir": s(d.path())});
    let e = run("mkinitcpio_hook", p, APPLY).await.unwrap_err();
    assert!(e.msg.contains("no nope"), "{}", e.msg);
    assert_eq!(read(&conf), "HOOKS=(base)\n");
}

// ---------------------------------------------------------------------------------------------

fn wpa_passphrase(ssid: &str, pass: &str) -> String {
    let out = Command::new("wpa_passphrase").arg(ssid).arg(pass).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines().map(str::trim).find_map(|l| l.strip_prefix("psk=")).unwrap().to_string()
}

#[test]
fn psk_matches_wpa_passphrase() {
    if !have("wpa_passphrase") {
        return;
    }
    let mut long63 = String::from("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ 0123 é");
    long63.retain(|c| c.is_ascii());
    while long63.len() < 63 {
        long63.push('z');
    }
    assert_eq!(long63.len(), 63);
    for (ssid, pass) in [
        ("pi-net", "correct horse battery"),
        ("IEEE", "password"),
        ("Café ☕ Wi-Fi", "unicode-ssid-pass"),
        ("x", "12345678"),
        ("thirty-two-bytes-long-ssid-name!", long63.as_str()),
    ] {
        assert_eq!(pbr_modules::wpa::derive_psk(ssid, pass).unwrap(), wpa_passphrase(ssid, pass), "{ssid}");
    }
}

#[tokio::test]
async fn wpa_converges_redacts_and_regenerates() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("wpa_supplicant/wpa_supplicant-wlan0.conf");
    let pass = "correct horse battery";
    let ssid = "Café ☕";
    let psk = pbr_modules::wpa::derive_psk(ssid, pass).unwrap();
    let p = |pass: &str| {
        json!({
            "interface": "wlan0", "path": s(&path), "country": "GB", "initramfs": true,
            "networks": [
                {"ssid": ssid, "psk": pass, "priority": 5},
                {"ssid": "open", "key_mgmt": "NONE", "scan_ssid": "yes"}
            ]
        })
    };
    let (check, applied) = converge(d.path(), &[], "wpa", p(pass)).await;
    assert_eq!(mode_of(&path), 0o600);
    let text = read(&path);
    assert!(text.contains(&format!("\tpsk={psk}\n")));
    assert!(text.contains(&format!("\tssid={}\n", hex::encode(ssid))));
    assert!(!text.contains(pass));
    assert_eq!(applied.deferred.len(), 1);
    assert_eq!(applied.deferred[0].key, "mkinitcpio");
    // nothing secret in any output
    for r in [&check, &applied] {
        let out = serde_json::to_string(&(&r.changes, &r.data)).unwrap();
        assert!(!out.contains(pass) && !out.contains(&psk), "secret in {out}");
        assert!(out.contains("<redacted>"), "{out}");
    }
    // the file parses as wpa_supplicant's config: two network blocks, as wpa_cli would see
    assert_eq!(text.matches("network={").count(), 2);

    // a new passphrase: a change, said as such, still redacted
    let (check2, applied2) = converge(d.path(), &[], "wpa", p("another passphrase")).await;
    let c = &check2.changes[0];
    assert!(c.summary.contains("psk changed"), "{}", c.summary);
    let diff = c.diff.as_ref().unwrap();
    assert_eq!(diff.before, diff.after, "only the psk changed, so the redacted texts are equal");
    assert_eq!(applied2.deferred.len(), 1);
    let out = serde_json::to_string(&check2.changes).unwrap();
    assert!(!out.contains("another passphrase") && !out.contains(&psk));

    // a mode drift is fixed without rewriting
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let r = run("wpa", p("another passphrase"), APPLY).await.unwrap();
    assert_eq!(r.changes.len(), 1);
    assert!(r.changes[0].summary.contains("0644 → 0600"));
    assert!(r.deferred.is_empty(), "a mode fix does not change the initramfs content");
    assert_eq!(mode_of(&path), 0o600);

    // errors never echo the passphrase
    let reg = pbr_engine::Registry::with(pbr_modules::register);
    let m = reg.get("wpa").unwrap();
    let e = m.check_params(&p("short")).unwrap_err();
    assert!(!e.message.contains("short") || e.message.contains("8 to 63"), "{}", e.message);
    assert!(!e.message.contains("\"short\""));
    let e = m.check_params(&json!({"interface": "wlan0", "networks": [{"ssid": "a", "psk": ["x"]}]})).unwrap_err();
    assert!(e.message.contains("not shown"), "{}", e.message);
    assert!(m.check_params(&json!({"interface": "wlan0", "country": "gb"})).is_err());
    assert!(m.check_params(&json!({"interface": "wlan0", "networks": [{"ssid": "a"}]})).is_err());
    assert!(m.check_params(&json!({"interface": "wlan0", "networks": [{"ssid": "a", "pks": "12345678"}]})).is_err());
}

// ---------------------------------------------------------------------------------------------

/// Python's configparser reading the file back: section → key → last value.
fn configparser(path: &Path) -> Option<Value> {
    if !have("python3") {
        return None;
    }
    let script = "import configparser, json, sys\n\
                  c = configparser.ConfigParser(strict=False, interpolation=None)\n\
                  c.optionxform = str\n\
                  c.read(sys.argv[1])\n\
                  print(json.dumps({s: dict(c[s]) for s in c.sections()}))\n";
    let out = Command::new("python3").arg("-c").arg(script).arg(path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[tokio::test]
async fn networkd_units() {
    let d = tempfile::tempdir().unwrap();
    let p = json!({
        "name": "10-eth0.network", "dir": s(d.path()),
        "match": {"Name": "eth0"},
        "network": {"DHCP": "ipv4", "KeepConfiguration": true, "LinkLocalAddressing": false,
                    "Address": ["192.168.1.20/24", "fd00::20/64"], "DNS": "192.168.1.1"},
        "route": [{"Destination": "10.0.0.0/8", "Gateway": "192.168.1.254", "Metric": 50}],
        "dhcpv4": {"UseHostname": false},
        "extra": {"Network": {"DHCPPrefixDelegation": "no"}, "DHCPv6": {"UseDNS": false}}
    });
    let (_, applied) = converge(d.path(), &[], "networkd", p.clone()).await;
    assert_eq!(applied.deferred.len(), 1);
    assert_eq!(applied.deferred[0].key, "networkd-reload");
    assert_eq!(applied.deferred[0].script, "networkctl reload");
    let f = d.path().join("10-eth0.network");
    assert_eq!(mode_of(&f), 0o644);
    assert_eq!(
        read(&f),
        "# Managed by pbr (networkd module).\n[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\n\
         LinkLocalAddressing=no\nAddress=192.168.1.20/24\nAddress=fd00::20/64\nDNS=192.168.1.1\n\
         KeepConfiguration=yes\nDHCPPrefixDelegation=no\n\n[Route]\nGateway=192.168.1.254\n\
         Destination=10.0.0.0/8\nMetric=50\n\n[DHCPv4]\nUseHostname=no\n\n[DHCPv6]\nUseDNS=no\n"
    );
    if let Some(ini) = configparser(&f) {
        assert_eq!(ini["Match"]["Name"], json!("eth0"));
        assert_eq!(ini["Network"]["KeepConfiguration"], json!("yes"));
        assert_eq!(ini["Route"]["Gateway"], json!("192.168.1.254"));
        assert_eq!(ini["DHCPv6"]["UseDNS"], json!("no"));
    }
    // round trip through the module's own reader
    let parsed = pbr_modules::networkd::parse_unit(&read(&f)).unwrap();
    let names: Vec<&str> = parsed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["Match", "Network", "Route", "DHCPv4", "DHCPv6"]);

    // a netdev, then absent
    let nd = json!({"name": "20-br0.netdev", "dir": s(d.path()), "netdev": {"Name": "br0", "Kind": "bridge"}});
    converge(d.path(), &[], "networkd", nd).await;
    let mut gone = p.clone();
    gone["state"] = json!("absent");
    let (_, removed) = converge(d.path(), &[], "networkd", gone).await;
    assert_eq!(removed.deferred[0].key, "networkd-reload");
    assert!(!f.exists());

    let reg = pbr_engine::Registry::with(pbr_modules::register);
    let m = reg.get("networkd").unwrap();
    let e = m.check_params(&json!({"name": "a.network", "network": {"DCHP": "yes"}})).unwrap_err();
    assert_eq!(e.unknown.map(|u| u.0).as_deref(), Some("DCHP"));
    let e = m.check_params(&json!({"name": "a.network", "network": {"KeepConfiguration": "sometimes"}})).unwrap_err();
    assert!(e.message.contains("KeepConfiguration"), "{}", e.message);
    for bad in [
        json!({"name": "a.conf", "match": {"Name": "x"}}),
        json!({"name": "a.netdev", "network": {"DHCP": "yes"}}),
        json!({"name": "a.network", "network": {"DHCP": "yes"}, "extra": {"Network": {"DHCP": "no"}}}),
        json!({"name": "a.network", "match": {"Name": "x\ny"}}),
    ] {
        assert!(m.check_params(&bad).is_err(), "accepted {bad}");
    }
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn kernel_cmdline_edits_one_line() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("cmdline.txt");
    std::fs::write(
        &f,
        "console=serial0,115200 console=tty1 root=PARTUUID=abcd-02 rootfstype=ext4 quiet fsck.repair=yes rootwait\n",
    )
    .unwrap();
    let p = json!({
        "path": s(&f),
        "set": {"root": "/dev/bcache0", "ip": "dhcp", "rw": true, "dyndbg": "module iscsi_tcp +p"},
        "absent": ["quiet", "rootfstype"]
    });
    let (check, applied) = converge(d.path(), &[], "kernel_cmdline", p).await;
    assert_eq!(
        read(&f),
        "console=serial0,115200 console=tty1 root=/dev/bcache0 fsck.repair=yes rootwait ip=dhcp rw dyndbg=\"module iscsi_tcp +p\"\n"
    );
    assert_eq!(applied.data["reboot_required"], json!(true));
    assert!(check.changes[0].summary.contains("remove"), "{}", check.changes[0].summary);
    assert!(applied.deferred.is_empty());
    assert_eq!(read(&f).lines().count(), 1);
    let reg = pbr_engine::Registry::with(pbr_modules::register);
    let m = reg.get("kernel_cmdline").unwrap();
    assert!(m.check_params(&json!({"set": {"a b": "x"}})).is_err());
    assert!(m.check_params(&json!({"set": {"a": "x\""}})).is_err());
    assert!(m.check_params(&json!({"set": {"a": "1"}, "absent": ["a"]})).is_err());
    // an unspaced file that already matches is left alone (no whitespace normalisation)
    std::fs::write(&f, "a=1  b\n").unwrap();
    let r = run("kernel_cmdline", json!({"path": s(&f), "set": {"a": 1, "b": true}}), APPLY).await.unwrap();
    assert!(!r.changed);
    assert_eq!(read(&f), "a=1  b\n");
}

// ---------------------------------------------------------------------------------------------
// Wi-Fi for a root reached over it

/// Stand-ins for the initramfs tools: each logs its argv to $LOG.
fn stand_ins(bin: &Path, tools: &[(&str, &str)]) {
    std::fs::create_dir_all(bin).unwrap();
    for (tool, body) in tools {
        let f = bin.join(tool);
        std::fs::write(&f, format!("#!/bin/sh\necho \"{tool} $*\" >> \"$LOG\"\n{body}\n")).unwrap();
        std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
}

#[tokio::test]
async fn mkinitcpio_wifi_step_brings_wifi_up_in_order() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    setup_tree(root);
    let conf = root.join("etc/wpa_supplicant/wpa_supplicant-lo.conf");
    std::fs::create_dir_all(conf.parent().unwrap()).unwrap();
    std::fs::write(&conf, "ctrl_interface=DIR=/run/wpa_supplicant\n").unwrap();
    let params = json!({
        "name": "wifi",
        "before": "net",
        "initcpio_dir": s(&root.join("etc/initcpio")),
        "config": s(&root.join("etc/mkinitcpio.conf")),
        // lo: an interface every machine has, so the script's wait for it is real
        "wifi": {"interface": "lo", "config": s(&conf), "mtu": 1400, "associate_seconds": 3},
        "pending_marker": s(&root.join("var/lib/pbr/mkinitcpio.pending")),
        "regenerate_command": "true"
    });
    let (check, applied) = converge(root, &[], "mkinitcpio_hook", params.clone()).await;
    assert!(check.changed && applied.changed);
    let mkconf = root.join("etc/mkinitcpio.conf");
    assert_eq!(
        array(&mkconf, "", "HOOKS"),
        ["base", "udev", "autodetect", "modconf", "block", "wifi", "net", "filesystems", "keyboard", "fsck"]
    );
    let install = root.join("etc/initcpio/install/wifi");
    let hook = root.join("etc/initcpio/hooks/wifi");
    let script = root.join("etc/initcpio/pbr/wifi.sh");
    for f in [&install, &hook, &script] {
        bash_n(f);
    }
    assert_eq!(mode_of(&script), 0o700);
    let built = bash(&format!(
        "add_module() {{ echo \"module $*\"; }}; add_checked_modules() {{ echo \"checked $*\"; }}; \
         add_binary() {{ echo \"binary $*\"; }}; add_file() {{ echo \"file $*\"; }}; add_symlink() {{ echo \"symlink $*\"; }}; \
         add_runscript() {{ echo runscript; }}; source {}; build",
        s(&install)
    ));
    assert_eq!(
        built,
        format!(
            "module ccm?\nmodule ctr?\nmodule cmac?\nmodule gcm?\nmodule aes_generic?\n\
             binary wpa_cli\nbinary iw\nbinary wpa_supplicant /usr/bin/wpa_supplicant\n\
             symlink /usr/lib/pbr/bin/@wpa_supplicant /usr/bin/wpa_supplicant\nfile {}\nfile {} /usr/lib/pbr/wifi.sh 700\nrunscript\n",
            s(&conf),
            s(&script)
        )
    );
    assert!(read(&hook).contains("/bin/sh /usr/lib/pbr/wifi.sh"), "{}", read(&hook));

    // the script with stand-ins: the association takes three polls
    let bin = root.join("bin");
    let counter = root.join("polls");
    stand_ins(
        &bin,
        &[
            ("ip", ":"),
            ("iw", ":"),
            ("sleep", ":"),
            ("udhcpc", ":"),
            ("@wpa_supplicant", ":"),
            (
                "wpa_cli",
                "n=$(cat \"$POLLS\" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > \"$POLLS\"\n\
                 [ \"$n\" -eq 1 ] && exit 1\n\
                 if [ \"$MODE\" = wrong ]; then [ $((n % 3)) -eq 0 ] && echo wpa_state=4WAY_HANDSHAKE || echo wpa_state=SCANNING; \
                 elif [ \"$MODE\" = absent ]; then echo wpa_state=SCANNING; elif [ \"$n\" -lt 4 ]; then echo wpa_state=SCANNING; \
                 else echo wpa_state=COMPLETED; fi",
            ),
        ],
    );
    let go = |mode: &str| {
        let log = root.join(format!("{mode}.log"));
        let _ = std::fs::remove_file(&counter);
        let out = Command::new("sh")
            .arg(&script)
            .env("PATH", format!("{}:/usr/bin:/bin", s(&bin)))
            .env("LOG", &log)
            .env("POLLS", &counter)
            .env("MODE", mode)
            .output()
            .unwrap();
        let calls: Vec<String> = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.starts_with("sleep") && !l.starts_with("wpa_cli"))
            .map(str::to_string)
            .collect();
        (out, calls)
    };
    let (out, calls) = go("ok");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    // the order the issue asks for: up, power save off, supplicant, (associated), MTU, address
    let want_prefix = [
        "ip link set lo up".to_string(),
        "iw dev lo set power_save off".to_string(),
        format!("@wpa_supplicant -B -i lo -c {} -D nl80211 -P /run/pbr-wpa-lo.pid", s(&conf)),
        "ip link set lo mtu 1400".to_string(),
    ];
    assert_eq!(calls[..4], want_prefix, "{calls:?}\n{err}");
    assert!(err.contains("pbr-wifi: lo is associated"), "{err}");
    // the address: ip= on this machine's command line names no address for lo, so DHCP (or the
    // interface is configured already)
    assert!(
        calls[4..].iter().any(|c| c.starts_with("udhcpc -i lo "))
            || err.contains("lo is configured already")
            || err.contains("ip= is for"),
        "{calls:?}\n{err}"
    );

    // a wrong passphrase: a clear console message, and the script fails (the root is out of reach).
    // Like the real supplicant, the stand-in goes back to scanning between failed handshakes.
    let (out, calls) = go("wrong");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("lo is not associated after 3s (wpa_state=SCANNING, handshakes seen)")
            && err.contains("is the passphrase right?"),
        "{err}"
    );
    assert!(!calls.iter().any(|c| c.contains("mtu") || c.starts_with("udhcpc")), "{calls:?}");
    // no access point of that name: scanning only, never a handshake, and the message says so
    let (out, _) = go("absent");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("lo is not associated after 3s (wpa_state=SCANNING): the network is not found"), "{err}");

    // the regeneration ran: the second run changes nothing; a systemd init is refused with the
    // config's line
    assert_eq!(applied.deferred.len(), 1);
    assert!(Command::new("sh").arg("-c").arg(&applied.deferred[0].script).status().unwrap().success());
    let again = run("mkinitcpio_hook", params.clone(), APPLY).await.unwrap();
    assert!(!again.changed, "{:?}", again.changes);

    // the systemd init: the wpa module's handover unit runs the supplicant from the initramfs
    // on (the same unit file in the image and the root), and a unit runs the script before the
    // hook the step is placed before
    let text = read(&mkconf).replace("HOOKS=(base   udev", "HOOKS=(base   systemd");
    std::fs::write(&mkconf, text).unwrap();
    let units = root.join("units");
    let lib = root.join("lib");
    let mut sd = params.clone();
    sd["wifi"]["unit_dir"] = json!(s(&units));
    sd["wifi"]["lib_dir"] = json!(s(&lib));
    let e = run("mkinitcpio_hook", sd.clone(), APPLY).await.unwrap_err();
    assert!(e.msg.contains("pbr-wpa-lo.service") && e.msg.contains("not on the host"), "{}", e.msg);
    std::fs::create_dir_all(&units).unwrap();
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(units.join("pbr-wpa-lo.service"), "[Service]\n").unwrap();
    std::fs::write(lib.join("wpa-lo.sh"), "#!/bin/sh\n").unwrap();
    std::fs::write(units.join("pbr-wpa-lo-kit.service"), "[Service]\n").unwrap();
    std::fs::write(lib.join("wpa-lo-kit.sh"), "#!/bin/sh\n").unwrap();
    let r = run("mkinitcpio_hook", sd.clone(), APPLY).await.unwrap();
    assert!(r.changed);
    let unit = read(&root.join("etc/initcpio/pbr/pbr-wifi.service"));
    assert!(unit.contains("Before=initrd-root-device.target sysroot.mount pbr-net.service"), "{unit}");
    assert!(unit.contains("ExecStart=/bin/sh /usr/lib/pbr/wifi.sh"), "{unit}");
    let sd_script = read(&script);
    assert!(sd_script.contains("systemctl start pbr-wpa-lo.service"), "{sd_script}");
    assert!(!sd_script.contains("@wpa_supplicant -B"), "{sd_script}");
    bash_n(&script);
    let built = bash(&format!(
        "add_module() {{ :; }}; add_checked_modules() {{ :; }}; add_binary() {{ :; }}; add_runscript() {{ :; }}; \
         add_file() {{ echo \"file $*\"; }}; add_symlink() {{ echo \"symlink $*\"; }}; source {}; build",
        s(&install)
    ));
    for want in [
        format!("file {} /usr/lib/systemd/system/pbr-wpa-lo.service 644", s(&units.join("pbr-wpa-lo.service"))),
        format!("file {}", s(&lib.join("wpa-lo.sh"))),
        format!("file {} /usr/lib/systemd/system/pbr-wpa-lo-kit.service 644", s(&units.join("pbr-wpa-lo-kit.service"))),
        format!("file {}", s(&lib.join("wpa-lo-kit.sh"))),
        "/pbr-wifi.service /usr/lib/systemd/system/pbr-wifi.service 644".to_string(),
        "symlink /usr/lib/systemd/system/initrd.target.wants/pbr-wifi.service /usr/lib/systemd/system/pbr-wifi.service"
            .to_string(),
    ] {
        assert!(built.lines().any(|l| l.starts_with(&want) || l.contains(&want)), "build() lacks {want}:\n{built}");
    }
    assert!(!hook.exists(), "no busybox run_hook under the systemd init");

    // params: wifi excludes run_hook and iscsi
    let reg = pbr_engine::Registry::with(pbr_modules::register);
    let m = reg.get("mkinitcpio_hook").unwrap();
    let mut bad = params.clone();
    bad["run_hook"] = json!("true");
    assert!(m.check_params(&bad).is_err());
    let mut bad = params.clone();
    bad["wifi"]["mtu"] = json!(100);
    assert!(m.check_params(&bad).unwrap_err().message.contains("576"));
}

#[tokio::test]
async fn wpa_handover_unit_adopts_or_starts_one_supplicant() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    // a name of its own: the script's pid file is /run/pbr-wpa-IFACE.pid
    let iface = format!("pbrt{}", std::process::id() % 100000);
    let conf = root.join("wpa.conf");
    let units = root.join("units");
    let lib = root.join("lib");
    let p = json!({
        "interface": iface, "path": s(&conf), "country": "GB", "handover": true,
        "unit_dir": s(&units), "lib_dir": s(&lib),
        "networks": [{"ssid": "home", "psk": "correct horse battery"}]
    });
    let (check, applied) = converge(root, &[], "wpa", p.clone()).await;
    assert!(check.changes.iter().any(|c| c.summary.contains(&format!("enable pbr-wpa-{iface}.service at boot"))));
    assert!(applied.changed);
    let unit = read(&units.join(format!("pbr-wpa-{iface}.service")));
    for want in [
        "SurviveFinalKillSignal=yes",
        "IgnoreOnIsolate=yes",
        "RefuseManualStop=yes",
        "DefaultDependencies=no",
        "Type=forking",
        &format!("PIDFile=/run/pbr-wpa-{iface}.pid"),
        "Restart=always",
        "WantedBy=sysinit.target",
        // started from RAM: when the supplicant dies the root is out of reach
        &format!("Wants=pbr-wpa-{iface}-kit.service"),
        &format!("ExecStart=/run/pbr-wpa-{iface}/sh /run/pbr-wpa-{iface}/start.sh"),
        &format!(
            "Environment=LD_LIBRARY_PATH=/run/pbr-wpa-{iface} OPENSSL_CONF=/run/pbr-wpa-{iface}/openssl.cnf \
             OPENSSL_MODULES=/run/pbr-wpa-{iface} NLSYSCONFDIR=/run/pbr-wpa-{iface}"
        ),
    ] {
        assert!(unit.contains(want), "the unit lacks {want}:\n{unit}");
    }
    let kit_unit = read(&units.join(format!("pbr-wpa-{iface}-kit.service")));
    for want in
        ["Type=oneshot", "RemainAfterExit=yes", "DefaultDependencies=no", &format!("Before=pbr-wpa-{iface}.service")]
    {
        assert!(kit_unit.contains(want), "the kit unit lacks {want}:\n{kit_unit}");
    }
    let link = units.join(format!("sysinit.target.wants/pbr-wpa-{iface}.service"));
    assert_eq!(std::fs::read_link(&link).unwrap(), Path::new(&format!("../pbr-wpa-{iface}.service")));
    let guard = read(&units.join(format!("wpa_supplicant@{iface}.service.d/pbr-guard.conf")));
    assert!(
        guard.contains(&format!("ExecCondition=/bin/sh -c '! systemctl is-active -q pbr-wpa-{iface}.service && ! {{ [ -s /run/pbr-wpa-{iface}.pid ] && kill -0 \"$$(cat /run/pbr-wpa-{iface}.pid)\"; }}'")),
        "{guard}"
    );
    let script = lib.join(format!("wpa-{iface}.sh"));
    bash_n(&script);
    let again = run("wpa", p.clone(), APPLY).await.unwrap();
    assert!(!again.changed, "{:?}", again.changes);

    // the RAM copy, made for real (this machine's sh, rm and their libraries; a stand-in
    // supplicant), then the start script run from it as the unit runs it
    let bin = root.join("bin");
    let pidf = format!("/run/pbr-wpa-{iface}.pid");
    let kit = PathBuf::from(format!("/run/pbr-wpa-{iface}"));
    stand_ins(&bin, &[("busctl", ":"), ("wpa_supplicant", ":")]);
    let log = root.join("start.log");
    let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", s(&bin));
    let made = Command::new("sh").arg(lib.join(format!("wpa-{iface}-kit.sh"))).env("PATH", &path).output().unwrap();
    assert!(made.status.success(), "{made:?}");
    let listing: Vec<String> =
        std::fs::read_dir(&kit).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    for want in ["sh", "rm", "@wpa_supplicant", "wpa.conf", "start.sh", "openssl.cnf", "legacy.so", "libc.so.6"] {
        assert!(listing.iter().any(|f| f == want), "the kit lacks {want}: {listing:?}");
    }
    assert_eq!(mode_of(&kit.join("wpa.conf")) & 0o777, 0o600);
    let start = |pid: Option<u32>| {
        let _ = std::fs::remove_file(&log);
        if let Some(pid) = pid {
            std::fs::write(&pidf, format!("{pid}\n")).unwrap();
        }
        // only the kit's files and shell builtins: PATH holds nothing but the busctl stand-in
        let out = Command::new(kit.join("sh"))
            .arg(kit.join("start.sh"))
            .env_clear()
            .env("PATH", s(&bin))
            .env("LD_LIBRARY_PATH", &kit)
            .env("LOG", &log)
            .output()
            .unwrap();
        (out, std::fs::read_to_string(&log).unwrap_or_default())
    };
    // 1. the initramfs's supplicant runs: adopted, into the unit's control group, none started
    let mut fake = Command::new("bash").arg("-c").arg("exec -a wpa_supplicant sleep 30").spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    std::fs::copy("/bin/sleep", root.join("wpa_supplicant")).unwrap();
    let mut named = Command::new(root.join("wpa_supplicant")).arg("30").spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let (out, calls) = start(Some(named.id()));
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("adopting"), "{out:?}");
    assert!(
        calls.contains(&format!("busctl call org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager AttachProcessesToUnit ssau pbr-wpa-{iface}.service  1 {}", named.id())),
        "{calls}"
    );
    assert!(!calls.lines().any(|l| l.starts_with("wpa_supplicant ")), "{calls}");
    // 2. it died (a stale pid file): a fresh supplicant from the kit, as the unit's own
    named.kill().unwrap();
    let _ = named.wait();
    let (out, calls) = start(None);
    assert!(out.status.success(), "{out:?}");
    let kitd = s(&kit);
    assert!(
        calls.contains(&format!("wpa_supplicant -B -i {iface} -c {kitd}/wpa.conf -D nl80211 -P {pidf}")),
        "{calls}"
    );
    assert!(!Path::new(&pidf).exists(), "the stale pid file is removed before the start");
    // 3. the pid file names a process that is not a supplicant: not adopted, a fresh one
    let (out, calls) = start(Some(fake.id()));
    fake.kill().unwrap();
    let _ = fake.wait();
    assert!(out.status.success(), "{out:?}");
    assert!(calls.lines().any(|l| l.starts_with("wpa_supplicant ")), "{calls}");
    // a new configuration reaches the kit
    let mut p2 = p.clone();
    p2["networks"][0]["psk"] = json!("another horse battery");
    let before = read(&kit.join("wpa.conf"));
    let (check, changed) = converge(root, &[], "wpa", p2).await;
    assert!(
        check.changes.iter().any(|c| c.summary.contains(&format!("refresh the supplicant's copy in RAM, {kitd}"))),
        "{:?}",
        check.changes
    );
    assert!(changed.changed);
    assert_ne!(read(&kit.join("wpa.conf")), before, "the kit kept the old configuration");
    assert_eq!(read(&kit.join("wpa.conf")), read(&conf));
    std::fs::remove_dir_all(&kit).unwrap();

    // absent takes it all away
    let mut gone = p.clone();
    gone["state"] = json!("absent");
    gone.as_object_mut().unwrap().remove("handover");
    let (_, removed) = converge(root, &[], "wpa", gone).await;
    assert!(removed.changed);
    assert!(!link.exists() && !script.exists() && !conf.exists());
    // handover and the stock unit exclude each other
    let reg = pbr_engine::Registry::with(pbr_modules::register);
    let mut both = p.clone();
    both["enable_service"] = json!(true);
    assert!(reg.get("wpa").unwrap().check_params(&both).is_err());
}

/// A passphrase change reaches the running supplicant without taking its link down: a real
/// wpa_supplicant (wired driver, on a veth in a network namespace of its own: no traffic leaves
/// it) learns the new key as a second network through wpa_cli, keeps the one in use, and the
/// rerun finds nothing to do. Needs root and wpa_supplicant (CI has both).
#[tokio::test]
async fn wpa_new_key_reaches_the_running_supplicant() {
    let have = |p: &str| Command::new("sh").arg("-c").arg(format!("command -v {p}")).output().unwrap().status.success();
    if bash("id -u").trim() != "0" || !have("wpa_supplicant") || !have("unshare") {
        eprintln!("SKIPPED: needs root, wpa_supplicant and unshare");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs this test as root with wpa_supplicant installed"
        );
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let iface = format!("pbrk{}", std::process::id() % 100000);
    let conf = root.join("wpa.conf");
    let ctrl = root.join("ctrl");
    let p = json!({
        "interface": iface, "path": s(&conf), "handover": true, "ctrl_interface": format!("DIR={}", s(&ctrl)),
        "unit_dir": s(&root.join("units")), "lib_dir": s(&root.join("lib")),
        "networks": [{"ssid": "home", "psk": "correct horse battery"}]
    });
    converge(root, &[], "wpa", p.clone()).await;
    // the handover's supplicant, as the unit would run it (pid file and reply directory included)
    let pidf = format!("/run/pbr-wpa-{iface}.pid");
    let cli = format!("/run/pbr-wpa-{iface}-cli");
    std::fs::create_dir_all(&cli).unwrap();
    struct Cleanup(String, String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = Command::new("sh").arg("-c").arg(format!("kill $(cat {}) 2>/dev/null", self.0)).status();
            let _ = std::fs::remove_file(&self.0);
            let _ = std::fs::remove_dir_all(&self.1);
        }
    }
    let _sup = Cleanup(pidf.clone(), cli.clone());
    let started = Command::new("unshare")
        .args(["-n", "sh", "-c"])
        .arg(format!(
            "ip link add {iface} type veth peer name {iface}p && ip link set {iface} up && \
             wpa_supplicant -B -D wired -i {iface} -c {} -P {pidf}",
            s(&conf)
        ))
        .output()
        .unwrap();
    assert!(started.status.success(), "{started:?}");
    let w = |args: &str| bash(&format!("wpa_cli -s {cli} -p {} -i {iface} {args}", s(&ctrl)));
    let t0 = std::time::Instant::now();
    while !(Path::new(&pidf).exists() && w("ping").contains("PONG")) {
        assert!(t0.elapsed().as_secs() < 20, "wpa_supplicant did not start");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // it knows the configured network: nothing to do
    let same = run("wpa", p.clone(), APPLY).await.unwrap();
    assert!(!same.changed, "{:?}", same.changes);

    let mut p2 = p.clone();
    p2["networks"][0]["psk"] = json!("another horse battery");
    let check = run("wpa", p2.clone(), CHECK).await.unwrap();
    let learn = format!("the running supplicant on {iface} learns network \"home\" with its new key");
    assert!(check.changes.iter().any(|c| c.summary.contains(&learn)), "{:?}", check.changes);
    assert_eq!(w("list_networks").lines().count(), 2, "check mode changed the running supplicant");
    let applied = run("wpa", p2.clone(), APPLY).await.unwrap();
    assert!(applied.changed && applied.changes.iter().any(|c| c.summary.contains(&learn)), "{:?}", applied.changes);
    let nets = w("list_networks");
    let rows: Vec<&str> = nets.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{nets}");
    assert!(rows[0].starts_with("0\thome") && rows[1].starts_with("1\thome"), "{nets}");
    assert!(!rows[1].contains("[DISABLED]"), "the new network is not enabled: {nets}");
    let tag = |id: u32| w(&format!("get_network {id} id_str")).trim().trim_matches('"').to_string();
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(text.contains(&format!("id_str=\"{}\"", tag(1))), "the new network's tag is not the file's:\n{text}");
    assert_ne!(tag(0), tag(1));
    // the key went on wpa_cli's standard input: the PSK the file holds is the one it took
    // (the supplicant shows a PSK as `*`, so the file is the witness; a wrong one would show as
    // a network of the same tag missing on the rerun)
    let again = run("wpa", p2.clone(), APPLY).await.unwrap();
    assert!(!again.changed, "{:?}", again.changes);
}
