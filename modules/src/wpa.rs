//! `wpa`: a `wpa_supplicant-IFACE.conf` with its networks. Passphrases are turned into the
//! 64-hex-digit PSK on the controller, so the plaintext never reaches the host, and PSKs never
//! appear in any output.

use crate::boot_util::{self, FileNow, Want};
use async_trait::async_trait;
use pbr_engine::params::bool_lenient;
use pbr_engine::{Change, Ctx, Deferred, Doc, Host, Module, ModuleError, Outcome, Plan, sh_quote};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// What replaces PSK values in diffs.
pub const REDACTED: &str = "<redacted>";

fn default_ctrl() -> String {
    "DIR=/run/wpa_supplicant".to_string()
}
fn default_key_mgmt() -> String {
    "WPA-PSK".to_string()
}
fn default_regen() -> String {
    "mkinitcpio -P".to_string()
}

/// A passphrase or raw PSK. Its content never appears in `Debug`, errors or results.
#[derive(Clone, PartialEq, Eq)]
pub struct Psk(String);

impl std::fmt::Debug for Psk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Psk {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A number (an all-digit passphrase written bare) is accepted; any error says nothing of
        // the value.
        match Value::deserialize(d) {
            Ok(Value::String(s)) => Ok(Psk(s)),
            Ok(Value::Number(n)) => Ok(Psk(n.to_string())),
            _ => Err(serde::de::Error::custom("psk must be a string (its value is not shown)")),
        }
    }
}

impl JsonSchema for Psk {
    fn schema_name() -> Cow<'static, str> {
        "Psk".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "WPA passphrase (8 to 63 printable ASCII characters) or the 64-hex-digit PSK",
            "type": "string",
            "writeOnly": true
        })
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WpaNetwork {
    /// The network name (1 to 32 bytes, any UTF-8).
    pub ssid: String,
    /// Passphrase (8..63 printable ASCII) or 64 hex digits. Converted to the PSK on the controller;
    /// omit it for open networks (`key_mgmt: NONE`).
    #[serde(default)]
    pub psk: Option<Psk>,
    /// Key management (`WPA-PSK`, `SAE`, `WPA-PSK SAE`, `NONE`...).
    #[serde(default = "default_key_mgmt")]
    pub key_mgmt: String,
    /// Probe for the network by name (needed for hidden SSIDs).
    #[serde(default, deserialize_with = "bool_lenient")]
    pub scan_ssid: bool,
    /// Preference among networks: higher wins.
    #[serde(default)]
    pub priority: Option<i32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WpaState {
    #[default]
    Present,
    Absent,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WpaParams {
    /// The wireless interface (`wlan0`).
    pub interface: String,
    /// The config file; default `/etc/wpa_supplicant/wpa_supplicant-{interface}.conf`, the file
    /// `wpa_supplicant@{interface}.service` reads.
    #[serde(default)]
    pub path: Option<String>,
    /// `present` writes the file; `absent` removes it.
    #[serde(default)]
    pub state: WpaState,
    /// The control socket setting.
    #[serde(default = "default_ctrl")]
    pub ctrl_interface: String,
    /// Group allowed to use the control socket.
    #[serde(default)]
    pub ctrl_interface_group: Option<String>,
    /// Regulatory country, ISO 3166 alpha-2 (`GB`, `DE`).
    #[serde(default)]
    pub country: Option<String>,
    /// Let wpa_supplicant rewrite the file (then pbr and wpa_cli edits will fight: leave it off).
    #[serde(default, deserialize_with = "bool_lenient")]
    pub update_config: bool,
    /// The networks, in order.
    #[serde(default)]
    pub networks: Vec<WpaNetwork>,
    /// Also enable `wpa_supplicant@{interface}.service` (checked with `systemctl is-enabled`).
    #[serde(default, deserialize_with = "bool_lenient")]
    pub enable_service: bool,
    /// The file is also packed into the initramfs: a change asks for one initramfs regeneration
    /// at the end of the run. The path must also be listed in a `mkinitcpio_hook` task's `files`.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub initramfs: bool,
    /// The regeneration command used with `initramfs: true`.
    #[serde(default = "default_regen")]
    pub regenerate_command: String,
}

impl WpaParams {
    pub fn path(&self) -> String {
        self.path.clone().unwrap_or_else(|| format!("/etc/wpa_supplicant/wpa_supplicant-{}.conf", self.interface))
    }
    fn unit(&self) -> String {
        format!("wpa_supplicant@{}.service", self.interface)
    }
}

/// The 64-hex-digit PSK of a passphrase (PBKDF2-HMAC-SHA1, 4096 rounds, SSID as salt), or the
/// given PSK when it already is 64 hex digits.
pub fn derive_psk(ssid: &str, psk: &str) -> Result<String, String> {
    if psk.len() == 64 && psk.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(psk.to_ascii_lowercase());
    }
    let n = psk.chars().count();
    if !(8..=63).contains(&n) || !psk.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(format!(
            "the psk of network {ssid:?} must be a passphrase of 8 to 63 printable ASCII characters or 64 hex \
             digits (it has {n} characters; its value is not shown)"
        ));
    }
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha1::Sha1>(psk.as_bytes(), ssid.as_bytes(), 4096, &mut out);
    Ok(hex::encode(out))
}

/// `ssid="name"` for plain printable ASCII, else the hex form wpa_supplicant also reads.
fn ssid_value(ssid: &str) -> String {
    if ssid.bytes().all(|b| (0x20..=0x7e).contains(&b) && b != b'"') {
        format!("\"{ssid}\"")
    } else {
        hex::encode(ssid.as_bytes())
    }
}

/// The file's content for these params.
pub fn render(p: &WpaParams) -> Result<String, String> {
    let mut s = String::from("# Managed by pbr (wpa module).\n");
    s.push_str(&format!("ctrl_interface={}\n", p.ctrl_interface));
    if let Some(g) = &p.ctrl_interface_group {
        s.push_str(&format!("ctrl_interface_group={g}\n"));
    }
    s.push_str(&format!("update_config={}\n", u8::from(p.update_config)));
    if let Some(c) = &p.country {
        s.push_str(&format!("country={c}\n"));
    }
    for n in &p.networks {
        s.push_str("\nnetwork={\n");
        s.push_str(&format!("\tssid={}\n", ssid_value(&n.ssid)));
        if n.scan_ssid {
            s.push_str("\tscan_ssid=1\n");
        }
        s.push_str(&format!("\tkey_mgmt={}\n", n.key_mgmt));
        if let Some(psk) = &n.psk {
            s.push_str(&format!("\tpsk={}\n", derive_psk(&n.ssid, &psk.0)?));
        }
        if let Some(pr) = n.priority {
            s.push_str(&format!("\tpriority={pr}\n"));
        }
        s.push_str("}\n");
    }
    Ok(s)
}

/// Replace every `psk=`, `sae_password=`, `password=` and `wep_key*=` value by `<redacted>`.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let ws = &body[..body.len() - body.trim_start().len()];
        let secret = body
            .trim_start()
            .split_once('=')
            .map(|(k, _)| {
                let k = k.trim().trim_start_matches('#');
                matches!(k, "psk" | "sae_password" | "password" | "passphrase" | "private_key_passwd")
                    || k.starts_with("wep_key")
            })
            .unwrap_or(false);
        if secret {
            let key = body.trim_start().split_once('=').map(|(k, _)| k).unwrap_or("");
            out.push_str(&format!("{ws}{key}={REDACTED}"));
            out.push_str(&line[body.len()..]);
        } else {
            out.push_str(line);
        }
    }
    out
}

#[derive(Debug, Clone)]
pub struct WpaProbe {
    pub file: FileNow,
    pub want: Want,
    /// `systemctl is-enabled` of the unit, when asked to enable it.
    pub enabled: Option<String>,
}

pub struct Wpa;

#[async_trait]
impl Module for Wpa {
    type Params = WpaParams;
    type State = WpaProbe;
    const NAME: &'static str = "wpa";
    const ALIASES: &'static [&'static str] = &["wpa_supplicant"];

    fn doc(&self) -> Doc {
        Doc {
            description: "Write `wpa_supplicant-IFACE.conf` (mode 0600) with its networks. Each passphrase is \
                          converted on the controller into the 64-hex-digit PSK (PBKDF2-HMAC-SHA1, 4096 rounds, \
                          the SSID as salt, as `wpa_passphrase` does), so the plaintext never reaches the host; \
                          PSK values are shown as `<redacted>` in diffs, and a change of PSK only is reported as \
                          such. SSIDs outside printable ASCII are written in hex. `enable_service: true` enables \
                          `wpa_supplicant@IFACE.service`.\n\n\
                          For Wi-Fi in the initramfs (a Pi Zero W with its root over iSCSI), set \
                          `initramfs: true` so a change regenerates the initramfs once at the end of the run, \
                          and list this file's path in the `files` of the `mkinitcpio_hook` task that starts \
                          wpa_supplicant: regeneration alone does not pack the file.",
            examples: r#"- name: Wi-Fi for the Zero W, also used by the initramfs
  wpa:
    interface: wlan0
    country: GB
    networks:
      - ssid: pi-net
        psk: "{{ vault_wifi_passphrase }}"
        priority: 10
      - ssid: hidden-net
        psk: 0f3b5c6a7e2d4f1b8c9a0d3e6f7b2c5a8d1e4f7a0b3c6d9e2f5a8b1c4d7e0f3a
        scan_ssid: true
    enable_service: true
    initramfs: true
"#,
        }
    }

    fn validate(&self, p: &WpaParams) -> Result<(), String> {
        boot_util::check_file_name("interface", &p.interface)?;
        if let Some(c) = &p.country
            && !(c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(format!("country {c:?} must be an ISO 3166 alpha-2 code such as \"GB\""));
        }
        let line_ok = |s: &str| !s.contains(['\n', '\r']);
        if !line_ok(&p.ctrl_interface) || p.ctrl_interface_group.as_deref().is_some_and(|g| !line_ok(g)) {
            return Err("ctrl_interface and ctrl_interface_group must be one line".into());
        }
        for (i, n) in p.networks.iter().enumerate() {
            if n.ssid.is_empty() || n.ssid.len() > 32 {
                return Err(format!("networks[{i}]: ssid must be 1 to 32 bytes"));
            }
            if n.key_mgmt.is_empty()
                || !n.key_mgmt.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b"- _".contains(&b))
            {
                return Err(format!("networks[{i}]: key_mgmt {:?} is not a key management list", n.key_mgmt));
            }
            match &n.psk {
                Some(psk) => {
                    derive_psk(&n.ssid, &psk.0).map_err(|e| format!("networks[{i}]: {e}"))?;
                }
                None if n.key_mgmt.split_whitespace().any(|k| k.contains("PSK") || k == "SAE") => {
                    return Err(format!("networks[{i}]: key_mgmt {} needs a psk", n.key_mgmt));
                }
                None => {}
            }
        }
        if p.state == WpaState::Absent && p.enable_service {
            return Err("enable_service needs state: present".into());
        }
        Ok(())
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &WpaParams, host: &Host) -> Result<WpaProbe, ModuleError> {
        let file = boot_util::probe(host, &p.path()).await?;
        let want = match p.state {
            WpaState::Present => Want::Present { content: render(p).map_err(ModuleError::new)?, mode: 0o600 },
            WpaState::Absent => Want::Absent,
        };
        let enabled = if p.enable_service {
            let out = host.query_sh(format!("systemctl is-enabled {} 2>/dev/null", sh_quote(&p.unit()))).await?;
            Some(out.stdout_str().trim().to_string())
        } else {
            None
        };
        Ok(WpaProbe { file, want, enabled })
    }

    fn plan(&self, p: &WpaParams, st: &WpaProbe) -> Result<Plan, ModuleError> {
        let mut plan = Plan::empty();
        for mut c in boot_util::file_changes(&st.file, &st.want, Some(&redact)) {
            if let Some(d) = &c.diff
                && d.before != d.after
                && psk_lines(&st.file.text().unwrap_or_default()) != psk_lines(want_text(&st.want))
                && st.file.exists()
            {
                c.summary.push_str(" (psk changed)");
            }
            if c.summary.ends_with("secret values changed") {
                c.summary = format!("update {}: psk changed", st.file.path);
            }
            plan.push(c);
        }
        if let Some(e) = &st.enabled
            && e != "enabled"
        {
            plan.push(Change::new(format!("enable {}", p.unit())));
        }
        Ok(plan)
    }

    async fn apply(
        &self,
        _ctx: &Ctx<'_>,
        p: &WpaParams,
        st: &WpaProbe,
        _plan: &Plan,
        host: &Host,
    ) -> Result<Outcome, ModuleError> {
        boot_util::apply_file(host, &st.file, &st.want).await?;
        if st.enabled.as_deref().is_some_and(|e| e != "enabled") {
            host.run_ok(format!("systemctl enable {}", sh_quote(&p.unit()))).await?;
        }
        let content_changed = match &st.want {
            Want::Present { content, .. } => st.file.content.as_deref() != Some(content.as_bytes()),
            Want::Absent => st.file.exists(),
        };
        let mut out = Outcome::default();
        if p.initramfs && content_changed {
            out.deferred.push(Deferred {
                key: "mkinitcpio".into(),
                description: "regenerate initramfs".into(),
                script: p.regenerate_command.clone(),
            });
        }
        Ok(out)
    }

    fn data(&self, p: &WpaParams, _st: &WpaProbe) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("path".into(), Value::String(p.path()));
        m.insert("networks".into(), Value::from(p.networks.iter().map(|n| n.ssid.clone()).collect::<Vec<_>>()));
        m
    }
}

fn want_text(w: &Want) -> &str {
    match w {
        Want::Present { content, .. } => content,
        Want::Absent => "",
    }
}

fn psk_lines(text: &str) -> Vec<&str> {
    text.lines().map(str::trim).filter(|l| l.starts_with("psk=")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psk_known_vector() {
        // IEEE 802.11i-2004 H.4 test vector
        assert_eq!(
            derive_psk("IEEE", "password").unwrap(),
            "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"
        );
        assert!(derive_psk("x", "short").is_err());
        assert!(derive_psk("x", "pässwort-lang").is_err());
        let e = derive_psk("x", "sevenCh").unwrap_err();
        assert!(!e.contains("sevenCh"));
    }

    #[test]
    fn redaction() {
        let t = "network={\n\tssid=\"a\"\n\tpsk=0123\n}\n";
        assert_eq!(redact(t), "network={\n\tssid=\"a\"\n\tpsk=<redacted>\n}\n");
        assert_eq!(ssid_value("café"), hex::encode("café"));
    }
}
