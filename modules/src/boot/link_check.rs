//! `iscsi_link_check`: why an iSCSI root over a link (Wi-Fi) fails, measured on the live host
//! before a boot file changes. It changes nothing: the path MTU is measured with pings that may
//! not be fragmented, and the optional load runs on a scratch target whose node record and
//! session it removes again.

use crate::mkinitcpio_hook::StrOrNum;
use crate::targetcli::validate_wwn;
use async_trait::async_trait;
use pbr_core::{Cmd, Ctx, Doc, Module, ModuleError, Plan, ReadHost, sh_quote};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

fn default_load_mib() -> u32 {
    16
}
fn default_load_timeout() -> u32 {
    120
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Candidate {
    /// A name for the report.
    pub name: String,
    /// Node record settings for this run (`iscsiadm -m node -o update -n NAME -v VALUE`).
    #[serde(default)]
    pub settings: BTreeMap<String, StrOrNum>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkCheckParams {
    /// The portal: `IP` or `IP:PORT` (default port 3260).
    pub portal: String,
    /// The interface the portal is reached through (default: the one `ip route get` names).
    #[serde(default)]
    pub interface: Option<String>,
    /// A scratch target IQN to run a write and read load on under each candidate. Its data is
    /// overwritten. pbr refuses a target that has a session or a node record on this host
    /// already (the root's, say).
    #[serde(default)]
    pub scratch_target: Option<String>,
    /// MiB written, then read back, on the scratch target under each candidate.
    #[serde(default = "default_load_mib")]
    pub load_mib: u32,
    /// Seconds a candidate's login and load may take before it counts as failed.
    #[serde(default = "default_load_timeout")]
    pub load_timeout: u32,
    /// The settings to try (default: open-iscsi's defaults, then NOP-outs off with a
    /// replacement timeout of 600 s).
    #[serde(default)]
    pub candidates: Option<Vec<Candidate>>,
}

impl LinkCheckParams {
    fn portal(&self) -> (String, u16) {
        match self.portal.rsplit_once(':') {
            Some((ip, port)) if !ip.is_empty() && !ip.contains(':') => (ip.to_string(), port.parse().unwrap_or(0)),
            _ => (self.portal.clone(), 3260),
        }
    }

    fn candidates(&self) -> Vec<Candidate> {
        self.candidates.clone().unwrap_or_else(|| {
            let s = |k: &str, v: i64| (k.to_string(), StrOrNum::Num(v));
            vec![
                Candidate { name: "defaults".into(), settings: BTreeMap::new() },
                Candidate {
                    name: "NOP-outs off, replacement timeout 600 s".into(),
                    settings: [
                        s("node.conn[0].timeo.noop_out_interval", 0),
                        s("node.conn[0].timeo.noop_out_timeout", 0),
                        s("node.session.timeo.replacement_timeout", 600),
                    ]
                    .into(),
                },
            ]
        })
    }
}

/// What the path to the portal carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PathMtu {
    /// Full-size packets reach the portal and come back.
    Full { mtu: u32 },
    /// Something on the way reported a smaller MTU (ICMP "fragmentation needed"): the kernel
    /// learns it and TCP adapts.
    Reported { mtu: u32 },
    /// Packets above `mtu` vanish without an error: TCP sends segments of the interface's
    /// size, they never arrive, and the connection stalls once data flows.
    BlackHole { mtu: u32 },
    /// The portal does not answer even small pings.
    NoAnswer,
    /// This host cannot measure it (why).
    Unmeasured { why: String },
}

/// One candidate's load on the scratch target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadResult {
    pub name: String,
    pub survived: bool,
    /// What happened, in words.
    pub detail: String,
    /// Write and read throughput, MiB/s, when the load completed.
    pub write_mib_s: Option<f64>,
    pub read_mib_s: Option<f64>,
    /// iSCSI connection errors the kernel logged during the load.
    pub conn_errors: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnosis {
    pub interface: String,
    pub interface_mtu: u32,
    pub path: PathMtu,
    /// `iw`'s power save state of the interface (None: not a wireless one, or no `iw`).
    pub power_save: Option<bool>,
    pub loads: Vec<LoadResult>,
}

/// The probe script for the path: interface, its MTU, power save, then a binary search over
/// packet sizes with pings that must not be fragmented. Prints `key value` lines.
fn path_script(ip: &str, iface: Option<&str>) -> String {
    let pick = match iface {
        Some(i) => format!("if={}", sh_quote(i)),
        None => format!(
            "if=$(ip route get {} 2>/dev/null | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p' | head -n 1)",
            sh_quote(ip)
        ),
    };
    format!(
        r#"p={ip}
{pick}
link=$(ip -o link show dev "$if" 2>/dev/null)
[ -n "$if" ] && [ -n "$link" ] || {{ echo "noif $if"; exit 0; }}
echo "if $if"
mtu=$(printf '%s\n' "$link" | sed -n 's/.* mtu \([0-9]*\).*/\1/p'); echo "mtu $mtu"
command -v iw >/dev/null 2>&1 && echo "ps $(iw dev "$if" get power_save 2>/dev/null)"
command -v ping >/dev/null 2>&1 || {{ echo "unmeasured no ping command"; exit 0; }}
# one size: 0 when a reply came back; says so when something reported a smaller MTU
try() {{
    out=$(ping -n -c 3 -i 0.2 -W 1 -M do -s $(($1 - 28)) "$p" 2>&1); rc=$?
    m=$(printf '%s\n' "$out" | sed -n 's/.*mtu *= *\([0-9][0-9]*\).*/\1/p' | head -n 1)
    [ -n "$m" ] && echo "icmp $1 $m"
    if [ $rc -eq 0 ]; then echo "ok $1"; else echo "lost $1"; fi
    return $rc
}}
case $(ping -c 1 -W 1 -M do -s 16 127.0.0.1 2>&1) in
    *invalid*|*nrecognized*|*sage:*) echo "unmeasured this ping cannot forbid fragmentation (-M do)"; exit 0 ;;
esac
try 576 || exit 0
try "$mtu" && exit 0
lo=576; hi=$mtu
while [ $((hi - lo)) -gt 1 ]; do
    mid=$(((lo + hi) / 2))
    if try $mid; then lo=$mid; else hi=$mid; fi
done
echo "largest $lo"
"#,
        ip = sh_quote(ip),
    )
}

/// Read the path probe's lines (pure; fed with real output in the tests).
pub fn parse_path(out: &str) -> Result<(String, u32, Option<bool>, PathMtu), String> {
    let mut iface = String::new();
    let mut mtu = 0u32;
    let mut ps = None;
    let mut ok: Vec<u32> = vec![];
    let mut lost: Vec<u32> = vec![];
    let mut icmp: Option<u32> = None;
    let mut largest = None;
    for line in out.lines() {
        let (k, v) = line.split_once(' ').unwrap_or((line, ""));
        match k {
            "noif" => {
                return Err(if v.is_empty() {
                    "no route to the portal: no interface reaches it".into()
                } else {
                    format!("interface {v} does not exist")
                });
            }
            "if" => iface = v.to_string(),
            "mtu" => mtu = v.trim().parse().map_err(|_| format!("unreadable MTU {v:?}"))?,
            "ps" => {
                ps = if v.contains(": on") {
                    Some(true)
                } else if v.contains(": off") {
                    Some(false)
                } else {
                    None
                }
            }
            "unmeasured" => return Ok((iface, mtu, ps, PathMtu::Unmeasured { why: v.to_string() })),
            "ok" => ok.extend(v.parse::<u32>().ok()),
            "lost" => lost.extend(v.parse::<u32>().ok()),
            "icmp" => icmp = icmp.or(v.split(' ').nth(1).and_then(|m| m.parse().ok())),
            "largest" => largest = v.parse::<u32>().ok(),
            _ => {}
        }
    }
    if iface.is_empty() || mtu == 0 {
        return Err(format!("the path probe printed no interface: {}", out.trim()));
    }
    let path = if ok.is_empty() {
        PathMtu::NoAnswer
    } else if ok.contains(&mtu) {
        PathMtu::Full { mtu }
    } else if let Some(m) = icmp {
        PathMtu::Reported { mtu: m }
    } else {
        PathMtu::BlackHole { mtu: largest.unwrap_or_else(|| ok.iter().copied().max().unwrap_or(0)) }
    };
    Ok((iface, mtu, ps, path))
}

/// The load on the scratch target under one candidate: a node record of its own, login, write
/// and read back with direct I/O, logout, record deleted (also when interrupted). Prints
/// `key value` lines.
fn load_script(p: &LinkCheckParams, c: &Candidate) -> String {
    let (ip, port) = p.portal();
    let mut set = String::new();
    for (k, v) in &c.settings {
        set.push_str(&format!(
            "n -o update -n {} -v {} >/dev/null || fail \"setting {k}\"\n",
            sh_quote(k),
            sh_quote(&v.to_string())
        ));
    }
    format!(
        r#"t={t}; pp={pp}; mib={mib}; secs={secs}
fail() {{ echo "fail $*"; exit 0; }}
n() {{ iscsiadm -m node -T "$t" -p "$pp" "$@"; }}
command -v iscsiadm >/dev/null 2>&1 || {{ echo "refuse no iscsiadm on this host"; exit 0; }}
iscsiadm -m session 2>/dev/null | awk -v t="$t" '$4 == t {{ f = 1 }} END {{ exit !f }}' &&
    {{ echo "refuse the scratch target $t has a session on this host (the root's? a scratch LUN must be one nothing else uses)"; exit 0; }}
n >/dev/null 2>&1 && {{ echo "refuse the scratch target $t has a node record on this host"; exit 0; }}
has_session() {{ iscsiadm -m session 2>/dev/null | awk -v t="$t" '$4 == t {{ f = 1 }} END {{ exit !f }}'; }}
# out again whatever happened: a login still retrying is stopped too (logout, then the record's
# deletion, until no session is left, for up to 30 s)
cleanup() {{
    i=0
    while :; do
        n -u >/dev/null 2>&1
        has_session || break
        [ $i -ge 30 ] && {{ echo "leftover a session to $t that would not log out"; break; }}
        sleep 1
        i=$((i + 1))
    done
    n -o delete >/dev/null 2>&1
}}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
errs() {{ dmesg 2>/dev/null | grep -c 'detected conn error'; }}
e0=$(errs)
n -o new >/dev/null || fail "could not make a node record"
n -o update -n node.startup -v manual >/dev/null || fail "setting node.startup"
# one login attempt: a refused one is this candidate's answer, not a retry loop
n -o update -n node.session.initial_login_retry_max -v 1 >/dev/null || fail "setting the login retries"
{set}timeout 60 iscsiadm -m node -T "$t" -p "$pp" -l >/dev/null 2>&1 || fail "login to $t at $pp failed (or took over 60s)"
sid=$(iscsiadm -m session 2>/dev/null | awk -v t="$t" '$4 == t {{ gsub(/[][]/, "", $2); print $2 }}')
d=""; i=0
while [ -z "$d" ] && [ $i -lt 20 ]; do
    d=$(iscsiadm -m session -r "$sid" -P 3 2>/dev/null | sed -n 's/.*Attached scsi disk \([a-z0-9]*\).*/\1/p' | head -n 1)
    [ -n "$d" ] || sleep 0.5
    i=$((i + 1))
done
[ -n "$d" ] || fail "logged in, but no disk appeared for $t within 10s: does its ACL map a LUN to this initiator ($(sed -n 's/^InitiatorName=//p' /etc/iscsi/initiatorname.iscsi 2>/dev/null))?"
t0=$(date +%s%N)
timeout "$secs" dd if=/dev/zero of="/dev/$d" bs=1M count="$mib" oflag=direct conv=fsync 2>/dev/null ||
    fail "writing $mib MiB did not finish within ${{secs}}s"
t1=$(date +%s%N)
timeout "$secs" dd if="/dev/$d" of=/dev/null bs=1M count="$mib" iflag=direct 2>/dev/null ||
    fail "reading $mib MiB back did not finish within ${{secs}}s"
t2=$(date +%s%N)
echo "errors $(($(errs) - e0))"
st=$(cat "/sys/class/iscsi_session/session$sid/state" 2>/dev/null)
[ "$st" = LOGGED_IN ] || fail "the session ended $st"
echo "done $t0 $t1 $t2"
"#,
        t = sh_quote(p.scratch_target.as_deref().unwrap_or_default()),
        pp = sh_quote(&format!("{ip}:{port}")),
        mib = p.load_mib,
        secs = p.load_timeout,
    )
}

/// Read one load's lines (pure).
pub fn parse_load(name: &str, mib: u32, out: &str) -> Result<LoadResult, String> {
    let mut r = LoadResult {
        name: name.to_string(),
        survived: false,
        detail: String::new(),
        write_mib_s: None,
        read_mib_s: None,
        conn_errors: 0,
    };
    for line in out.lines() {
        let (k, v) = line.split_once(' ').unwrap_or((line, ""));
        match k {
            "refuse" => return Err(v.to_string()),
            "leftover" => {
                return Err(format!(
                    "after the load with {name}: {v} (log it out by hand: iscsiadm -m node -T TARGET -u)"
                ));
            }
            "fail" => r.detail = v.to_string(),
            "errors" => r.conn_errors = v.trim().parse().unwrap_or(0),
            "done" => {
                let t: Vec<u128> = v.split(' ').filter_map(|x| x.parse().ok()).collect();
                let rate = |a: u128, b: u128| (b > a).then(|| f64::from(mib) / ((b - a) as f64 / 1e9));
                if let [t0, t1, t2] = t[..] {
                    r.write_mib_s = rate(t0, t1);
                    r.read_mib_s = rate(t1, t2);
                }
                r.survived = true;
                r.detail = format!("wrote and read back {mib} MiB");
                if r.conn_errors > 0 {
                    r.detail.push_str(&format!(", {} connection error(s) recovered", r.conn_errors));
                }
            }
            _ => {}
        }
    }
    if !r.survived && r.detail.is_empty() {
        r.detail = format!("the load ended without a result: {}", out.trim());
    }
    Ok(r)
}

/// The findings, one line each, most telling first (pure).
pub fn findings(d: &Diagnosis) -> Vec<String> {
    let mut out = vec![];
    let i = &d.interface;
    match &d.path {
        PathMtu::Full { mtu } => out.push(format!("path MTU: packets of {mtu} bytes (the MTU of {i}) reach the portal")),
        PathMtu::Reported { mtu } => out.push(format!(
            "path MTU: {mtu} (reported by the way, below {i}'s {}): TCP adapts; wifi.mtu: {mtu} saves the first retransmits",
            d.interface_mtu
        )),
        PathMtu::BlackHole { mtu } => out.push(format!(
            "path MTU BLACK HOLE: packets above {mtu} bytes vanish on the way to the portal with no error, \
             while {i}'s MTU is {}: TCP segments of that size never arrive and iSCSI stalls once data flows \
             (the login passes, reads and writes hang). Set wifi.mtu: {mtu} (the pi_wifi role's wifi_mtu)",
            d.interface_mtu
        )),
        PathMtu::NoAnswer => out.push("the portal does not answer pings (a firewall, or no route)".into()),
        PathMtu::Unmeasured { why } => out.push(format!("path MTU not measured: {why}")),
    }
    if d.power_save == Some(true) {
        out.push(format!(
            "power save is on for {i}: the radio sleeps between beacons, adding latency bursts that NOP-outs count \
             as timeouts (the Wi-Fi step turns it off)"
        ));
    }
    for l in &d.loads {
        let rate = match (l.write_mib_s, l.read_mib_s) {
            (Some(w), Some(r)) => format!(" (write {w:.1} MiB/s, read {r:.1} MiB/s)"),
            _ => String::new(),
        };
        let verdict = if l.survived { "survived" } else { "FAILED" };
        out.push(format!("load with {}: {verdict}: {}{rate}", l.name, l.detail));
    }
    out
}

pub struct LinkCheck;

#[async_trait]
impl Module for LinkCheck {
    type Params = LinkCheckParams;
    type State = Diagnosis;
    const NAME: &'static str = "iscsi_link_check";

    fn doc(&self) -> Doc {
        Doc {
            description: "Diagnose an iSCSI root's link (Wi-Fi) on the live host, before a boot file changes; \
                          changes nothing, so it runs in --check too. Measures the path MTU to the portal with \
                          pings that may not be fragmented (`ping -M do`, iputils) and names a black hole (big \
                          packets lost with no ICMP error); reports the interface's power save; with \
                          `scratch_target`, logs in to that scratch LUN under each candidate's settings, writes \
                          and reads it back, and reports which survive (its own node record, removed again). \
                          The result has `diagnosis` (structured) and `findings` (lines).",
            examples: r#"- name: Why does the root over Wi-Fi fail?
  iscsi_link_check:
    portal: 10.99.0.1
    scratch_target: iqn.2003-01.org.linux-iscsi.storage:scratch
  register: link

- name: Tell
  debug:
    var: link.findings
"#,
        }
    }

    fn validate(&self, p: &LinkCheckParams) -> Result<(), String> {
        let (ip, port) = p.portal();
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Err(format!("portal {:?} is not an IP address (or IP:PORT)", p.portal));
        }
        if port == 0 {
            return Err(format!("portal {:?}: bad port", p.portal));
        }
        if let Some(t) = &p.scratch_target {
            validate_wwn(t)?;
        }
        if !(1..=4096).contains(&p.load_mib) {
            return Err(format!("load_mib {} is out of range (1 to 4096)", p.load_mib));
        }
        if !(5..=3600).contains(&p.load_timeout) {
            return Err(format!("load_timeout {} is out of range (5 to 3600)", p.load_timeout));
        }
        if p.candidates.as_ref().is_some_and(Vec::is_empty) {
            return Err("candidates is empty".into());
        }
        Ok(())
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &LinkCheckParams, host: &ReadHost) -> Result<Diagnosis, ModuleError> {
        let (ip, _) = p.portal();
        let out = host.query_sh(path_script(&ip, p.interface.as_deref())).await?;
        let (interface, interface_mtu, power_save, path) =
            parse_path(&out.stdout_str()).map_err(|e| ModuleError::new(format!("portal {ip}: {e}")))?;
        let mut loads = vec![];
        if p.scratch_target.is_some() {
            for c in p.candidates() {
                let cmd = Cmd::new(load_script(p, &c)).timeout(Duration::from_secs(u64::from(p.load_timeout) * 3 + 60));
                let out = host.query(cmd).await?;
                loads.push(parse_load(&c.name, p.load_mib, &out.stdout_str()).map_err(ModuleError::new)?);
            }
        }
        Ok(Diagnosis { interface, interface_mtu, path, power_save, loads })
    }

    fn plan(&self, _p: &LinkCheckParams, _st: &Diagnosis) -> Result<Plan, ModuleError> {
        Ok(Plan::empty())
    }

    fn data(&self, _p: &LinkCheckParams, st: &Diagnosis) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("diagnosis".into(), serde_json::to_value(st).unwrap_or(Value::Null));
        m.insert("findings".into(), json!(findings(st)));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_black_hole_is_named_with_its_size() {
        // iputils ping against a veth peer of MTU 1400 (the test in tests/link_check.rs)
        let out = "if pbr0\nmtu 1500\nok 576\nlost 1500\nok 1038\nok 1269\nok 1384\nlost 1442\nlost 1413\nok 1398\n\
                   ok 1405\nlost 1409\nok 1407\nlost 1408\nlargest 1407\n";
        let (i, m, ps, path) = parse_path(out).unwrap();
        assert_eq!((i.as_str(), m, ps), ("pbr0", 1500, None));
        assert_eq!(path, PathMtu::BlackHole { mtu: 1407 });
        let d = Diagnosis { interface: i, interface_mtu: m, path, power_save: Some(true), loads: vec![] };
        let f = findings(&d);
        assert!(
            f[0].contains("BLACK HOLE") && f[0].contains("above 1407 bytes") && f[0].contains("wifi.mtu: 1407"),
            "{f:?}"
        );
        assert!(f[1].contains("power save is on"), "{f:?}");
    }

    #[test]
    fn path_kinds() {
        let p = |s: &str| parse_path(s).unwrap().3;
        assert_eq!(p("if w\nmtu 1500\nps Power save: off\nok 576\nok 1500\n"), PathMtu::Full { mtu: 1500 });
        assert_eq!(
            p("if w\nmtu 1500\nok 576\nicmp 1500 1400\nlost 1500\nok 1400\nlargest 1400\n"),
            PathMtu::Reported { mtu: 1400 }
        );
        assert_eq!(p("if w\nmtu 1500\nlost 576\n"), PathMtu::NoAnswer);
        assert!(matches!(p("if w\nmtu 1500\nunmeasured no ping command\n"), PathMtu::Unmeasured { .. }));
        assert!(parse_path("noif \n").unwrap_err().contains("no route"));
        assert!(parse_path("noif wlan9\n").unwrap_err().contains("wlan9 does not exist"));
        assert_eq!(parse_path("if w\nmtu 1500\nps Power save: on\nok 576\nok 1500\n").unwrap().2, Some(true));
    }

    #[test]
    fn loads() {
        let ok = parse_load("defaults", 16, "errors 1\ndone 1000000000 3000000000 4000000000\n").unwrap();
        assert!(ok.survived && ok.conn_errors == 1, "{ok:?}");
        assert_eq!((ok.write_mib_s, ok.read_mib_s), (Some(8.0), Some(16.0)));
        assert!(ok.detail.contains("1 connection error(s) recovered"));
        let bad = parse_load("defaults", 16, "fail writing 16 MiB did not finish within 120s\n").unwrap();
        assert!(!bad.survived && bad.detail.contains("did not finish"));
        assert!(parse_load("x", 1, "refuse the scratch target t has a session on this host\n").is_err());
        assert!(parse_load("x", 1, "fail login\nleftover a session to t that would not log out\n").is_err());
        assert!(!parse_load("x", 1, "").unwrap().survived);
    }

    #[test]
    fn scripts_are_valid_sh() {
        let p: LinkCheckParams =
            serde_json::from_value(json!({"portal": "10.0.0.1", "scratch_target": "iqn.2003-01.x:y"})).unwrap();
        for s in [path_script("10.0.0.1", None), path_script("10.0.0.1", Some("wlan0"))]
            .into_iter()
            .chain(p.candidates().iter().map(|c| load_script(&p, c)))
        {
            let st = std::process::Command::new("sh").arg("-n").arg("-c").arg(&s).status().unwrap();
            assert!(st.success(), "{s}");
        }
    }
}
