//! A small `setup`: the facts playbooks branch on, gathered with one command.

use crate::host::{Host, HostError};
use serde_json::{Map, Value, json};

const SCRIPT: &str = "uname -n; uname -m; uname -s; uname -r; id -un; \
    if [ -d /run/systemd/system ]; then echo systemd; else echo other; fi; \
    for m in pacman apt-get dnf yum apk zypper; do if command -v $m >/dev/null 2>&1; then echo $m; break; fi; done; echo; \
    echo ---; cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null; true";

/// Gather facts (names without the `ansible_` prefix, as in `ansible_facts`).
pub async fn gather(host: &Host) -> Result<Map<String, Value>, HostError> {
    let out = host.query_sh(SCRIPT).await?;
    if out.rc != 0 {
        return Err(HostError::Failed(format!("gathering facts failed: {}", out.stderr_str().trim())));
    }
    Ok(parse(&out.stdout_str()))
}

/// Parse the output of the facts script.
pub fn parse(text: &str) -> Map<String, Value> {
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
}
