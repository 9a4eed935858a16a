//! `setup`: the facts playbooks branch on, gathered with one `sh` script (no Python): the
//! minimal set (system, distribution, user, service and package manager, date and time,
//! environment), `hardware` (memory, processors, mounts, block devices) and `network`
//! (interfaces, addresses, the default routes), as `gather_subset` asks.

use crate::host::{Host, HostError};
use serde_json::{Map, Value, json};

const MIN: &str = "uname -n; uname -m; uname -s; uname -r; id -un; \
    if [ -d /run/systemd/system ]; then echo systemd; else echo other; fi; \
    for m in pacman apt-get dnf yum apk zypper; do if command -v $m >/dev/null 2>&1; then echo $m; break; fi; done; echo; \
    echo ---; cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null; true\n\
    echo '@@id'; id -u; id -g; printf '%s\\n' \"$HOME\" \"$SHELL\"\n\
    echo '@@date'; date '+%Y %m %d %H %M %S %s %Z %z %A %u %U %B %b %j %p' ; date -u '+%Y-%m-%dT%H:%M:%SZ'\n\
    echo '@@fips'; cat /proc/sys/crypto/fips_enabled 2>/dev/null\n\
    echo '@@env'; env\n\
    echo '@@python'; for p in python3 python; do c=$(command -v $p) && { echo \"$c\"; $c -V 2>&1; break; }; done\n";

const HARDWARE: &str = "echo '@@meminfo'; cat /proc/meminfo 2>/dev/null\n\
    echo '@@cpuinfo'; cat /proc/cpuinfo 2>/dev/null\n\
    echo '@@mounts'; cat /proc/mounts 2>/dev/null\n\
    echo '@@devices'; for d in /sys/block/*; do [ -e \"$d/size\" ] || continue; \
    printf '%s|%s|%s|%s|%s|%s|%s\\n' \"${d##*/}\" \"$(cat $d/size)\" \"$(cat $d/queue/logical_block_size 2>/dev/null)\" \
    \"$(cat $d/removable 2>/dev/null)\" \"$(cat $d/queue/rotational 2>/dev/null)\" \
    \"$(cat $d/device/model 2>/dev/null | sed 's/ *$//')\" \"$(cat $d/device/vendor 2>/dev/null | sed 's/ *$//')\"; done\n";

const NETWORK: &str = "echo '@@ifaces'; for i in /sys/class/net/*; do [ -e \"$i/address\" ] || continue; \
    printf '%s|%s|%s|%s\\n' \"${i##*/}\" \"$(cat $i/address 2>/dev/null)\" \"$(cat $i/mtu 2>/dev/null)\" \"$(cat $i/operstate 2>/dev/null)\"; done\n\
    echo '@@addrs'; ip -o addr show 2>/dev/null\n\
    echo '@@route4'; ip -4 route show default 2>/dev/null\n\
    echo '@@route6'; ip -6 route show default 2>/dev/null\n";

pub use crate::playbook::Subset;

/// Gather facts (names without the `ansible_` prefix, as in `ansible_facts`).
pub async fn gather(host: &Host) -> Result<Map<String, Value>, HostError> {
    gather_subset(host, Subset::default()).await
}

/// Gather the facts of a subset, in one command.
pub async fn gather_subset(host: &Host, subset: Subset) -> Result<Map<String, Value>, HostError> {
    let mut script = MIN.to_string();
    if subset.hardware {
        script.push_str(HARDWARE);
    }
    if subset.network {
        script.push_str(NETWORK);
    }
    script.push_str("true\n");
    let out = host.query_sh(script).await?;
    if out.rc != 0 {
        return Err(HostError::Failed(format!("gathering facts failed: {}", out.stderr_str().trim())));
    }
    Ok(parse(&out.stdout_str()))
}

/// The script's output split into its `@@name` sections (the first, unnamed, is the base).
fn sections(text: &str) -> (String, std::collections::HashMap<String, String>) {
    let mut base = String::new();
    let mut map = std::collections::HashMap::new();
    let mut cur: Option<String> = None;
    let mut buf = String::new();
    for line in text.split_inclusive('\n') {
        if let Some(name) = line.trim_end().strip_prefix("@@").filter(|n| !n.contains(' ')) {
            match cur.take() {
                Some(c) => {
                    map.insert(c, std::mem::take(&mut buf));
                }
                None => base = std::mem::take(&mut buf),
            }
            cur = Some(name.to_string());
            continue;
        }
        buf.push_str(line);
    }
    match cur {
        Some(c) => {
            map.insert(c, buf);
        }
        None => base = buf,
    }
    (base, map)
}

/// Parse the output of the facts script.
pub fn parse(text: &str) -> Map<String, Value> {
    let (base, sec) = sections(text);
    let mut m = parse_base(&base);
    if let Some(id) = sec.get("id") {
        let l: Vec<&str> = id.lines().collect();
        if l.len() >= 4 {
            m.insert("user_uid".into(), json!(l[0].parse::<u64>().unwrap_or(0)));
            m.insert("user_gid".into(), json!(l[1].parse::<u64>().unwrap_or(0)));
            m.insert("user_dir".into(), json!(l[2]));
            m.insert("user_shell".into(), json!(l[3]));
        }
    }
    if let Some(d) = sec.get("date") {
        m.insert("date_time".into(), date_time(d));
    }
    // as Ansible's: the kernel's FIPS mode, false where it says nothing
    m.insert("fips".into(), json!(sec.get("fips").is_some_and(|f| f.trim() == "1")));
    if let Some(py) = sec.get("python")
        && let Some(fact) = python_fact(py)
    {
        m.insert("python".into(), fact);
        m.insert("python_version".into(), fact_version(&m));
    }
    if let Some(e) = sec.get("env") {
        let env: Map<String, Value> = e
            .lines()
            .filter_map(|l| l.split_once('='))
            .filter(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        m.insert("env".into(), Value::Object(env));
    }
    if let Some(mem) = sec.get("meminfo") {
        let kb = |key: &str| {
            mem.lines()
                .find_map(|l| l.strip_prefix(key).and_then(|r| r.trim_start_matches(':').split_whitespace().next()))
                .and_then(|n| n.parse::<u64>().ok())
        };
        if let Some(t) = kb("MemTotal") {
            m.insert("memtotal_mb".into(), json!(t / 1024));
        }
        if let Some(f) = kb("MemFree") {
            m.insert("memfree_mb".into(), json!(f / 1024));
        }
        if let Some(s) = kb("SwapTotal") {
            m.insert("swaptotal_mb".into(), json!(s / 1024));
        }
    }
    if let Some(cpu) = sec.get("cpuinfo") {
        let vcpus = cpu.lines().filter(|l| l.starts_with("processor")).count().max(1);
        let mut sockets: Vec<&str> = cpu.lines().filter_map(|l| l.strip_prefix("physical id")).collect();
        sockets.sort();
        sockets.dedup();
        let count = sockets.len().max(1);
        let cores = cpu
            .lines()
            .find_map(|l| {
                l.strip_prefix("cpu cores")
                    .and_then(|r| r.trim_start_matches([' ', '\t', ':']).trim().parse::<usize>().ok())
            })
            .unwrap_or(vcpus / count)
            .max(1);
        m.insert("processor_vcpus".into(), json!(vcpus));
        m.insert("processor_count".into(), json!(count));
        m.insert("processor_cores".into(), json!(cores));
        m.insert("processor_threads_per_core".into(), json!((vcpus / (count * cores)).max(1)));
        m.insert("processor_nproc".into(), json!(vcpus));
    }
    if let Some(mounts) = sec.get("mounts") {
        let list: Vec<Value> = mounts
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 4).then(|| {
                    let un = |s: &str| s.replace("\\040", " ").replace("\\011", "\t");
                    json!({"device": un(f[0]), "mount": un(f[1]), "fstype": f[2], "options": f[3]})
                })
            })
            .collect();
        m.insert("mounts".into(), Value::Array(list));
    }
    if let Some(devs) = sec.get("devices") {
        let mut d = Map::new();
        for l in devs.lines() {
            let f: Vec<&str> = l.split('|').collect();
            if f.len() < 7 {
                continue;
            }
            let sectors: u64 = f[1].parse().unwrap_or(0);
            let ss: u64 = f[2].parse().unwrap_or(512);
            let opt = |s: &str| if s.is_empty() { Value::Null } else { json!(s) };
            d.insert(
                f[0].to_string(),
                json!({
                    "sectors": sectors.to_string(),
                    "sectorsize": ss.to_string(),
                    "size": human_size(sectors * 512),
                    "removable": f[3],
                    "rotational": f[4],
                    "model": opt(f[5]),
                    "vendor": opt(f[6]),
                }),
            );
        }
        m.insert("devices".into(), Value::Object(d));
    }
    if sec.contains_key("ifaces") {
        network(&sec, &mut m);
    }
    m
}

/// Ansible's size text of a block device (`20.00 GB`).
fn human_size(bytes: u64) -> String {
    let units = ["bytes", "KB", "MB", "GB", "TB", "PB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 { format!("{bytes:.2} bytes") } else { format!("{v:.2} {}", units[i]) }
}

fn date_time(text: &str) -> Value {
    let mut l = text.lines();
    let f: Vec<&str> = l.next().unwrap_or("").split_whitespace().collect();
    let utc = l.next().unwrap_or("").trim();
    let g = |i: usize| f.get(i).copied().unwrap_or("");
    json!({
        "year": g(0), "month": g(1), "day": g(2), "hour": g(3), "minute": g(4), "second": g(5),
        "epoch": g(6), "tz": g(7), "tz_offset": g(8), "weekday": g(9), "weekday_number": g(10),
        "weeknumber": g(11), "monthname": g(12), "monthname_short": g(13), "julian": g(14),
        "date": format!("{}-{}-{}", g(0), g(1), g(2)),
        "time": format!("{}:{}:{}", g(3), g(4), g(5)),
        "iso8601": utc,
        "iso8601_basic_short": format!("{}{}{}T{}{}{}", g(0), g(1), g(2), g(3), g(4), g(5)),
    })
}

/// Interfaces, their addresses, and the interfaces of the default routes.
fn network(sec: &std::collections::HashMap<String, String>, m: &mut Map<String, Value>) {
    let mut names = vec![];
    let mut ifaces: Map<String, Value> = Map::new();
    for l in sec.get("ifaces").map(String::as_str).unwrap_or("").lines() {
        let f: Vec<&str> = l.split('|').collect();
        if f.len() < 4 {
            continue;
        }
        names.push(f[0].to_string());
        ifaces.insert(
            f[0].to_string(),
            json!({"device": f[0], "macaddress": f[1], "mtu": f[2].parse::<u64>().unwrap_or(0),
                   "active": f[3] == "up" || f[3] == "unknown", "ipv4_secondaries": [], "ipv6": []}),
        );
    }
    let mut all4 = vec![];
    let mut all6 = vec![];
    // `ip -o addr show`: "2: eth0    inet 10.0.0.2/24 brd 10.0.0.255 scope global eth0\..."
    for l in sec.get("addrs").map(String::as_str).unwrap_or("").lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        let (Some(dev), Some(fam), Some(cidr)) = (w.get(1), w.get(2), w.get(3)) else { continue };
        let dev = dev.split('@').next().unwrap_or(dev);
        let (addr, prefix) = cidr.split_once('/').unwrap_or((cidr, "32"));
        let Some(Value::Object(i)) = ifaces.get_mut(dev) else { continue };
        let prefix_n: u32 = prefix.parse().unwrap_or(32);
        match *fam {
            "inet" => {
                all4.push(json!(addr));
                let brd = w.iter().position(|x| *x == "brd").and_then(|p| w.get(p + 1)).copied().unwrap_or("");
                let v4 = json!({"address": addr, "prefix": prefix, "netmask": netmask(prefix_n),
                                "network": network_of(addr, prefix_n), "broadcast": brd});
                if i.contains_key("ipv4") {
                    if let Some(Value::Array(s)) = i.get_mut("ipv4_secondaries") {
                        s.push(v4);
                    }
                } else {
                    i.insert("ipv4".into(), v4);
                }
            }
            "inet6" => {
                all6.push(json!(addr));
                let scope = w.iter().position(|x| *x == "scope").and_then(|p| w.get(p + 1)).copied().unwrap_or("");
                if let Some(Value::Array(s)) = i.get_mut("ipv6") {
                    s.push(json!({"address": addr, "prefix": prefix, "scope": scope}));
                }
            }
            _ => {}
        }
    }
    let default = |route: Option<&String>, v6: bool| -> Value {
        // "default via 10.0.0.1 dev eth0 proto static"
        let Some(line) = route.and_then(|r| r.lines().next()) else { return json!({}) };
        let w: Vec<&str> = line.split_whitespace().collect();
        let after = |k: &str| w.iter().position(|x| *x == k).and_then(|p| w.get(p + 1)).copied();
        let Some(dev) = after("dev") else { return json!({}) };
        let mut d = Map::new();
        d.insert("interface".into(), json!(dev));
        d.insert("alias".into(), json!(dev));
        if let Some(g) = after("via") {
            d.insert("gateway".into(), json!(g));
        }
        if let Some(Value::Object(i)) = ifaces.get(dev) {
            d.insert("macaddress".into(), i["macaddress"].clone());
            d.insert("mtu".into(), i["mtu"].clone());
            let addr = if v6 { i.get("ipv6").and_then(|a| a.get(0)).cloned() } else { i.get("ipv4").cloned() };
            if let Some(Value::Object(a)) = addr {
                d.extend(a);
            }
        }
        Value::Object(d)
    };
    m.insert("default_ipv4".into(), default(sec.get("route4"), false));
    m.insert("default_ipv6".into(), default(sec.get("route6"), true));
    m.insert("all_ipv4_addresses".into(), Value::Array(all4));
    m.insert("all_ipv6_addresses".into(), Value::Array(all6));
    for (name, v) in &ifaces {
        m.insert(name.replace(['-', ':', '.'], "_"), v.clone());
    }
    names.sort();
    m.insert("interfaces".into(), json!(names));
}

fn netmask(prefix: u32) -> String {
    let bits: u32 = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix.min(32)) };
    std::net::Ipv4Addr::from(bits).to_string()
}

fn network_of(addr: &str, prefix: u32) -> String {
    let Ok(a) = addr.parse::<std::net::Ipv4Addr>() else { return String::new() };
    let bits: u32 = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix.min(32)) };
    std::net::Ipv4Addr::from(u32::from(a) & bits).to_string()
}

/// `python` as Ansible reports the interpreter that runs its modules: here the host's
/// `python3` (or `python`) if it has one (pbr runs no Python; playbooks read the fact).
fn python_fact(section: &str) -> Option<Value> {
    let mut l = section.lines();
    let exe = l.next()?.trim();
    let ver = l.next()?.trim().strip_prefix("Python ")?;
    let mut parts = ver.split('.').map(|p| p.trim_end_matches(|c: char| !c.is_ascii_digit()).parse::<u64>().ok());
    let (major, minor, micro) =
        (parts.next()??, parts.next().flatten().unwrap_or(0), parts.next().flatten().unwrap_or(0));
    Some(json!({
        "executable": exe,
        "has_sslcontext": true,
        "type": "cpython",
        "version": {"major": major, "minor": minor, "micro": micro, "releaselevel": "final", "serial": 0},
        "version_info": [major, minor, micro, "final", 0],
    }))
}

fn fact_version(m: &Map<String, Value>) -> Value {
    let v = &m["python"]["version"];
    json!(format!("{}.{}.{}", v["major"], v["minor"], v["micro"]))
}

/// The minimal facts (the first part of the script's output).
fn parse_base(text: &str) -> Map<String, Value> {
    let (head, os) = text.split_once("---\n").unwrap_or((text, ""));
    let mut l = head.lines();
    let mut next = || l.next().unwrap_or("").trim().to_string();
    let nodename = next();
    let arch = next();
    let system = next();
    let kernel = next();
    let user = next();
    let svc = next();
    let pkg = next();
    let mut osr = std::collections::HashMap::new();
    for line in os.lines() {
        if let Some((k, v)) = line.split_once('=') {
            osr.insert(k.trim().to_string(), v.trim().trim_matches('"').trim_matches('\'').to_string());
        }
    }
    let id = osr.get("ID").cloned().unwrap_or_default();
    let like = osr.get("ID_LIKE").cloned().unwrap_or_default();
    let distribution = match id.as_str() {
        "debian" => "Debian",
        "ubuntu" => "Ubuntu",
        "arch" | "archarm" | "archlinux" => "Archlinux",
        "centos" => "CentOS",
        "rhel" => "RedHat",
        "almalinux" => "AlmaLinux",
        "rocky" => "Rocky",
        "fedora" => "Fedora",
        "alpine" => "Alpine",
        "opensuse-leap" | "opensuse-tumbleweed" | "sles" => "openSUSE",
        "" => "Unknown",
        other => other,
    }
    .to_string();
    let family_of = |s: &str| -> Option<&'static str> {
        match s {
            "debian" | "ubuntu" | "raspbian" => Some("Debian"),
            "rhel" | "centos" | "fedora" | "almalinux" | "rocky" => Some("RedHat"),
            "arch" | "archarm" | "archlinux" => Some("Archlinux"),
            "alpine" => Some("Alpine"),
            "suse" | "opensuse" | "sles" => Some("Suse"),
            _ => None,
        }
    };
    let os_family = family_of(&id)
        .or_else(|| like.split_whitespace().find_map(family_of))
        .unwrap_or(distribution.as_str())
        .to_string();
    let version = osr.get("VERSION_ID").cloned().unwrap_or_default();
    let major = version.split('.').next().unwrap_or("").to_string();
    let hostname = nodename.split('.').next().unwrap_or("").to_string();
    let pkg_mgr = match pkg.as_str() {
        "apt-get" => "apt",
        "" => "unknown",
        other => other,
    };
    let mut m = Map::new();
    m.insert("hostname".into(), json!(hostname));
    m.insert("nodename".into(), json!(nodename));
    m.insert("fqdn".into(), json!(nodename));
    m.insert("architecture".into(), json!(arch));
    m.insert("machine".into(), json!(arch));
    m.insert("system".into(), json!(system));
    m.insert("kernel".into(), json!(kernel));
    m.insert("user_id".into(), json!(user));
    m.insert("service_mgr".into(), json!(svc));
    m.insert("pkg_mgr".into(), json!(pkg_mgr));
    m.insert("distribution".into(), json!(distribution));
    m.insert("distribution_version".into(), json!(version));
    m.insert("distribution_major_version".into(), json!(major));
    m.insert("distribution_release".into(), json!(osr.get("VERSION_CODENAME").cloned().unwrap_or_default()));
    m.insert("os_family".into(), json!(os_family));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_debian_and_arch() {
        let out = "pi3.lan\naarch64\nLinux\n6.6.1\nalarm\nsystemd\npacman\n\n---\nNAME=\"Arch Linux ARM\"\nID=archarm\nID_LIKE=arch\n";
        let f = parse(out);
        assert_eq!(f["hostname"], "pi3");
        assert_eq!(f["distribution"], "Archlinux");
        assert_eq!(f["os_family"], "Archlinux");
        assert_eq!(f["pkg_mgr"], "pacman");
        let out = "vm\nx86_64\nLinux\n6.1\nroot\nsystemd\napt-get\n\n---\nID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n";
        let f = parse(out);
        assert_eq!(f["os_family"], "Debian");
        assert_eq!(f["distribution_major_version"], "12");
        assert_eq!(f["pkg_mgr"], "apt");
        let f = parse(
            "vm\nx86_64\nLinux\n5\nroot\nsystemd\ndnf\n\n---\nID=\"almalinux\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.4\"\n",
        );
        assert_eq!(f["os_family"], "RedHat");
        assert_eq!(f["distribution_major_version"], "9");
    }

    #[test]
    fn sections() {
        let out = "vm\nx86_64\nLinux\n6.1\nroot\nsystemd\napt-get\n\n---\nID=debian\n\
                   @@id\n0\n0\n/root\n/bin/bash\n\
                   @@date\n2026 12 07 12 05 09 1796645109 UTC +0000 Monday 1 49 December Dec 341 PM\n2026-12-07T12:05:09Z\n\
                   @@env\nHOME=/root\nPATH=/usr/bin\n\
                   @@meminfo\nMemTotal:        2048000 kB\nMemFree:  1024000 kB\n\
                   @@cpuinfo\nprocessor\t: 0\ncpu cores\t: 2\nprocessor\t: 1\n\
                   @@mounts\n/dev/vda1 / ext4 rw,relatime 0 0\n\
                   @@devices\nvda|41943040|512|0|1|QEMU HARDDISK|\n\
                   @@ifaces\neth0|52:54:00:12:34:56|1500|up\nlo|00:00:00:00:00:00|65536|unknown\n\
                   @@addrs\n1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n\
                   2: eth0    inet 10.99.0.2/24 brd 10.99.0.255 scope global eth0\\       valid_lft forever\n\
                   2: eth0    inet6 fe80::1/64 scope link \\       valid_lft forever\n\
                   @@route4\ndefault via 10.99.0.1 dev eth0 proto static\n@@route6\n";
        let f = parse(out);
        assert_eq!(f["os_family"], "Debian");
        assert_eq!(f["user_dir"], "/root");
        assert_eq!(f["date_time"]["date"], "2026-12-07");
        assert_eq!(f["date_time"]["iso8601"], "2026-12-07T12:05:09Z");
        assert_eq!(f["env"]["PATH"], "/usr/bin");
        assert_eq!(f["fips"], false);
        assert_eq!(
            (f["memtotal_mb"].clone(), f["processor_vcpus"].clone(), f["processor_cores"].clone()),
            (json!(2000), json!(2), json!(2))
        );
        assert_eq!(f["mounts"][0]["mount"], "/");
        assert_eq!(f["devices"]["vda"]["size"], "20.00 GB");
        assert_eq!(f["default_ipv4"]["address"], "10.99.0.2");
        assert_eq!(f["default_ipv4"]["gateway"], "10.99.0.1");
        assert_eq!(f["default_ipv4"]["netmask"], "255.255.255.0");
        assert_eq!(f["default_ipv4"]["network"], "10.99.0.0");
        assert_eq!(f["eth0"]["ipv6"][0]["scope"], "link");
        assert_eq!(f["all_ipv4_addresses"], json!(["127.0.0.1", "10.99.0.2"]));
        assert_eq!(f["interfaces"], json!(["eth0", "lo"]));
    }
}
