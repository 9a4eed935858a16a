//! `wpa`: a `wpa_supplicant-IFACE.conf` with its networks. Passphrases are turned into the
//! 64-hex-digit PSK on the controller, so the plaintext never reaches the host, and PSKs never
//! appear in any output.

use crate::boot_util::{self, FileNow, Want};
use async_trait::async_trait;
use pbr_core::Secret;
use pbr_core::params::Presence;
use pbr_core::params::bool_lenient;
use pbr_core::{Change, Ctx, Deferred, Doc, Module, ModuleError, Op, PathQuery, Plan, ReadHost, sh_quote};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

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
fn default_unit_dir() -> String {
    "/etc/systemd/system".to_string()
}
fn default_lib_dir() -> String {
    "/usr/local/lib/pbr".to_string()
}
fn default_driver() -> String {
    "nl80211".to_string()
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WpaNetwork {
    /// The network name (1 to 32 bytes, any UTF-8).
    pub ssid: String,
    /// Passphrase (8..63 printable ASCII) or 64 hex digits. Converted to the PSK on the controller;
    /// omit it for open networks (`key_mgmt: NONE`).
    #[serde(default)]
    pub psk: Option<Secret>,
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
    pub state: Presence,
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
    /// For a root reached over this Wi-Fi (the `mkinitcpio_hook` `wifi` step): the supplicant
    /// the initramfs started is handed over to systemd. `pbr-wpa-IFACE.service` (enabled for
    /// the next boot; pbr does not start it) adopts that process at boot, or starts a fresh one,
    /// and starts a new one whenever it dies; it survives shutdown's final kill and refuses a
    /// manual stop (the root would go with it). A new one is started from a copy in RAM
    /// (`/run/pbr-wpa-IFACE`: a shell, `rm`, wpa_supplicant, their libraries, OpenSSL's legacy
    /// provider and this configuration, made at boot by `pbr-wpa-IFACE-kit.service`): while no
    /// supplicant runs the root is out of reach, and a start that reads it hangs for good. The
    /// stock `wpa_supplicant@IFACE.service` is guarded so it never starts a second supplicant
    /// beside it. `pbr-wpa-IFACE-attach.service` gives a supplicant started in the initramfs what
    /// its root, emptied at the switch, lacks: `/dev/urandom` (the nonce of its next handshake)
    /// and a directory for wpa_cli's replies. A changed key reaches the running supplicant
    /// through wpa_cli as a second network beside the one in use (the link stays; it rejoins
    /// with the new key once the access point uses it), the RAM copy and, with `initramfs`, the
    /// image. Excludes `enable_service`.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub handover: bool,
    /// wpa_supplicant's driver (`-D`) for a supplicant the handover unit starts.
    #[serde(default = "default_driver")]
    pub driver: String,
    /// Where the handover unit and the stock unit's guard go.
    #[serde(default = "default_unit_dir")]
    pub unit_dir: String,
    /// Where the handover unit's start script and the kit script go.
    #[serde(default = "default_lib_dir")]
    pub lib_dir: String,
}

impl WpaParams {
    pub fn path(&self) -> String {
        self.path.clone().unwrap_or_else(|| default_config(&self.interface))
    }
    fn unit(&self) -> String {
        format!("wpa_supplicant@{}.service", self.interface)
    }
    /// The handover unit's name.
    pub fn handover_unit(&self) -> String {
        handover_unit(&self.interface)
    }
    /// The control socket directory named by `ctrl_interface`.
    fn ctrl_dir(&self) -> String {
        let c = self.ctrl_interface.split_whitespace().next().unwrap_or("");
        c.strip_prefix("DIR=").unwrap_or(c).to_string()
    }
    /// The unit that copies into RAM what the handover unit needs to start a supplicant.
    pub fn kit_unit(&self) -> String {
        kit_unit(&self.interface)
    }
    fn paths(&self) -> HandoverPaths {
        HandoverPaths::new(&self.unit_dir, &self.lib_dir, &self.interface)
    }
    /// The handover files: (path, content, mode).
    pub fn handover_files(&self) -> Vec<(String, String, u32)> {
        let h = self.paths();
        vec![
            (h.unit, render_handover_unit(self), 0o644),
            (h.script.clone(), render_handover_script(self), 0o755),
            (h.kit_unit, render_kit_unit(self, &h.kit_script), 0o644),
            (h.kit_script.clone(), render_kit_script(self, &h.script), 0o755),
            (h.attach_unit, render_attach_unit(self, &h.attach_script), 0o644),
            (h.attach_script, render_attach_script(self), 0o755),
            (boot_util::join(&self.unit_dir, &format!("{}.d/pbr-guard.conf", self.unit())), render_guard(self), 0o644),
        ]
    }
    /// The `enable` links of the handover unit and of its attach unit: (unit, link, target).
    pub fn handover_links(&self) -> Vec<(String, String, String)> {
        [self.handover_unit(), attach_unit(&self.interface)]
            .into_iter()
            .map(|unit| {
                let link = boot_util::join(&self.unit_dir, &format!("sysinit.target.wants/{unit}"));
                let target = format!("../{unit}");
                (unit, link, target)
            })
            .collect()
    }
    /// `wpa_cli` for the handover's supplicant (`-s`: see [`cli_dir`]; without it, a supplicant
    /// from an older handover answers into its own root).
    fn wpa_cli(&self) -> String {
        let cli = cli_dir(&self.interface);
        format!(
            "wpa_cli $([ -d {c} ] && echo -s {c}) -p {} -i {}",
            sh_quote(&self.ctrl_dir()),
            sh_quote(&self.interface),
            c = sh_quote(&cli),
        )
    }
}

/// The default configuration of `iface` (also what `mkinitcpio_hook`'s `wifi` step packs).
pub fn default_config(iface: &str) -> String {
    format!("/etc/wpa_supplicant/wpa_supplicant-{iface}.conf")
}

/// The handover unit of `iface`.
pub fn handover_unit(iface: &str) -> String {
    format!("pbr-wpa-{iface}.service")
}

/// The unit that makes the handover unit's copy in RAM.
pub fn kit_unit(iface: &str) -> String {
    format!("pbr-wpa-{iface}-kit.service")
}

/// The real root's unit that gives a supplicant started in the initramfs what its emptied root
/// lacks (random devices, a directory for wpa_cli's replies).
pub fn attach_unit(iface: &str) -> String {
    format!("pbr-wpa-{iface}-attach.service")
}

/// The directory of wpa_cli's reply sockets for the handover's supplicant: the same path in the
/// real root and (bound there by the attach unit) in an initramfs supplicant's root, whose
/// replies would otherwise go to a `/tmp` that no longer exists.
pub fn cli_dir(iface: &str) -> String {
    format!("/run/pbr-wpa-{iface}-cli")
}

/// Where the handover's units and scripts are on the host: written by this module, packed into
/// a systemd initramfs by `mkinitcpio_hook`'s `wifi` step (one definition for both).
pub struct HandoverPaths {
    pub unit: String,
    pub script: String,
    pub kit_unit: String,
    pub kit_script: String,
    pub attach_unit: String,
    pub attach_script: String,
}

impl HandoverPaths {
    pub fn new(unit_dir: &str, lib_dir: &str, iface: &str) -> HandoverPaths {
        HandoverPaths {
            unit: boot_util::join(unit_dir, &handover_unit(iface)),
            script: boot_util::join(lib_dir, &format!("wpa-{iface}.sh")),
            kit_unit: boot_util::join(unit_dir, &kit_unit(iface)),
            kit_script: boot_util::join(lib_dir, &format!("wpa-{iface}-kit.sh")),
            attach_unit: boot_util::join(unit_dir, &attach_unit(iface)),
            attach_script: boot_util::join(lib_dir, &format!("wpa-{iface}-attach.sh")),
        }
    }
}

/// Where the supplicant started in the initramfs writes its pid (as `mkinitcpio_hook`'s `wifi`
/// step does), and where the handover unit's own supplicant writes it.
pub fn pidfile(iface: &str) -> String {
    format!("/run/pbr-wpa-{iface}.pid")
}

/// The RAM copy of what the handover unit runs: `/run/pbr-wpa-IFACE` (a tmpfs; the same in the
/// initramfs and, carried over, in the real root).
pub fn kit_dir(iface: &str) -> String {
    format!("/run/pbr-wpa-{iface}")
}

/// `pbr-wpa-IFACE.service`. Its `ExecStart` runs from the RAM copy: when the supplicant dies,
/// the root (reached over the interface) is out of reach until a new one runs, so starting one
/// must not read the root.
pub fn render_handover_unit(p: &WpaParams) -> String {
    let i = &p.interface;
    let kit = kit_dir(i);
    format!(
        "# Managed by pbr (wpa module, handover): the supplicant of {i}, which the root depends on.\n\
         [Unit]\n\
         Description=pbr: wpa_supplicant on {i} (adopted from the initramfs; the root is reached over it)\n\
         DefaultDependencies=no\n\
         Wants={k}\n\
         After={k} sys-subsystem-net-devices-{i}.device\n\
         Before=network-pre.target\n\
         Wants=network-pre.target\n\
         IgnoreOnIsolate=yes\n\
         RefuseManualStop=yes\n\
         SurviveFinalKillSignal=yes\n\
         \n\
         [Service]\n\
         Type=forking\n\
         PIDFile={pid}\n\
         # nothing from the root: libraries, OpenSSL's and libnl's configuration from the copy\n\
         Environment=LD_LIBRARY_PATH={kit} OPENSSL_CONF={kit}/openssl.cnf OPENSSL_MODULES={kit} NLSYSCONFDIR={kit}\n\
         ExecStart={kit}/sh {kit}/start.sh\n\
         Restart=always\n\
         RestartSec=1\n\
         Delegate=yes\n\
         \n\
         [Install]\n\
         WantedBy=sysinit.target\n",
        k = p.kit_unit(),
        pid = pidfile(i)
    )
}

/// `pbr-wpa-IFACE-kit.service`: makes the RAM copy once per boot (in the initramfs with the
/// systemd init; else early in the real root, which is still reachable then).
pub fn render_kit_unit(p: &WpaParams, script: &str) -> String {
    format!(
        "# Managed by pbr (wpa module, handover): {h} restarts the supplicant from RAM.\n\
         [Unit]\n\
         Description=pbr: a copy in RAM of what restarts the supplicant on {i}\n\
         DefaultDependencies=no\n\
         Before={h}\n\
         IgnoreOnIsolate=yes\n\
         RefuseManualStop=yes\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         RemainAfterExit=yes\n\
         ExecStart=/bin/sh {script}\n",
        h = p.handover_unit(),
        i = p.interface,
    )
}

/// The kit script: a shell, `rm`, wpa_supplicant, the libraries they load, the configuration and
/// the start script, copied into [`kit_dir`] (made aside, then swapped in).
pub fn render_kit_script(p: &WpaParams, start: &str) -> String {
    format!(
        "#!/bin/sh\n\
         # Managed by pbr (wpa module, handover): ExecStart of {ku}. Copies into RAM what\n\
         # {h} needs to start a supplicant on {iface}: the root is reached over {iface}, so\n\
         # a restart after the supplicant died must not read the root.\n\
         set -e\n\
         kit={kit}\n\
         new=\"$kit.new\"\n\
         rm -rf \"$new\"\n\
         mkdir -m 700 \"$new\"\n\
         ld=\n\
         for l in /lib*/ld-linux*.so* /usr/lib*/ld-linux*.so*; do\n\
         \x20   if [ -e \"$l\" ]; then ld=$l; break; fi\n\
         done\n\
         put() {{ # PROGRAM NAME: the program, and the libraries it loads\n\
         \x20   b=$(command -v \"$1\") || {{ echo \"{ku}: no $1\" >&2; exit 1; }}\n\
         \x20   b=$(readlink -f \"$b\")\n\
         \x20   cp \"$b\" \"$new/$2\"\n\
         \x20   [ -n \"$ld\" ] || return 0\n\
         \x20   for w in $(\"$ld\" --list \"$b\" 2>/dev/null || true); do\n\
         \x20       case $w in /*) [ -e \"$new/${{w##*/}}\" ] || cp -L \"$w\" \"$new/\" ;; esac\n\
         \x20   done\n\
         }}\n\
         put sh sh\n\
         put rm rm\n\
         put wpa_supplicant @wpa_supplicant\n\
         # OpenSSL's legacy provider, which wpa_supplicant loads at start (OPENSSL_MODULES)\n\
         for m in /usr/lib/ossl-modules /usr/lib/*/ossl-modules /usr/lib64/ossl-modules; do\n\
         \x20   if [ -e \"$m/legacy.so\" ]; then cp \"$m/legacy.so\" \"$new/\"; break; fi\n\
         done\n\
         cp {conf} \"$new/wpa.conf\"\n\
         chmod 600 \"$new/wpa.conf\"\n\
         cp {start} \"$new/start.sh\"\n\
         : >\"$new/openssl.cnf\"\n\
         rm -rf \"$kit\"\n\
         mv \"$new\" \"$kit\"\n\
         echo \"the supplicant's restart kit is in $kit ($(du -sk \"$kit\" | cut -f1) KiB)\"\n",
        ku = p.kit_unit(),
        h = p.handover_unit(),
        iface = p.interface,
        kit = sh_quote(&kit_dir(&p.interface)),
        conf = sh_quote(&p.path()),
        start = sh_quote(start),
    )
}

/// `pbr-wpa-IFACE-attach.service`: in the real root only, after the handover unit.
pub fn render_attach_unit(p: &WpaParams, script: &str) -> String {
    format!(
        "# Managed by pbr (wpa module, handover): a supplicant started in the initramfs, in the real root.\n\
         [Unit]\n\
         Description=pbr: what the initramfs's supplicant on {i} lacks in its emptied root\n\
         DefaultDependencies=no\n\
         After={h}\n\
         ConditionPathExists=!/etc/initrd-release\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         RemainAfterExit=yes\n\
         ExecStart=/bin/sh {script}\n\
         \n\
         [Install]\n\
         WantedBy=sysinit.target\n",
        h = p.handover_unit(),
        i = p.interface,
    )
}

/// The attach script. A supplicant started in the initramfs (by the busybox hook, or by the
/// handover unit under the systemd init) keeps the initramfs's root, which the switch to the real
/// root emptied: no `/dev/urandom` (without it no nonce for its next handshake, after any drop),
/// no `/tmp` (where it sends wpa_cli's replies). This gives it the random devices and binds
/// [`cli_dir`] at the same path in its root. Run once per boot, while the root is reachable.
pub fn render_attach_script(p: &WpaParams) -> String {
    format!(
        "#!/bin/sh\n\
         # Managed by pbr (wpa module, handover): ExecStart of {au}.\n\
         pidf={pidf}\n\
         cli={cli}\n\
         mkdir -p \"$cli\"\n\
         : >\"$cli/.pbr\"\n\
         pid=\n\
         [ -s \"$pidf\" ] && read -r pid <\"$pidf\"\n\
         if [ -z \"$pid\" ] || ! kill -0 \"$pid\" 2>/dev/null; then\n\
         \x20   echo \"no supplicant runs on {iface}\"\n\
         \x20   exit 0\n\
         fi\n\
         r=/proc/$pid/root\n\
         if [ \"$(stat -L -c %d:%i \"$r/\")\" = \"$(stat -L -c %d:%i /)\" ]; then\n\
         \x20   echo \"the supplicant on {iface} (pid $pid) runs in this root\"\n\
         \x20   exit 0\n\
         fi\n\
         [ -e \"$r/dev/urandom\" ] || {{ mkdir -p \"$r/dev\" && mknod -m 666 \"$r/dev/urandom\" c 1 9 && mknod -m 666 \"$r/dev/random\" c 1 8; }} ||\n\
         \x20   echo \"no random devices in the root of pid $pid: its next handshake may fail\"\n\
         # -c: mount would resolve /proc/PID/root to this root and bind the directory onto itself\n\
         [ -e \"$r$cli/.pbr\" ] || {{ mkdir -p \"$r$cli\" && mount -c --bind \"$cli\" \"$r$cli\"; }} ||\n\
         \x20   echo \"no reply directory in the root of pid $pid: wpa_cli gets no answer from it\"\n\
         echo \"the supplicant on {iface} (pid $pid, started in the initramfs) has random devices and a reply directory\"\n",
        au = attach_unit(&p.interface),
        pidf = sh_quote(&pidfile(&p.interface)),
        cli = sh_quote(&cli_dir(&p.interface)),
        iface = p.interface,
    )
}

/// The handover unit's start script, run from the RAM copy: adopt the initramfs's supplicant,
/// or start one from the copy. Past the adoption (at boot, when the root is there) it uses only
/// shell builtins and the copy's programs.
pub fn render_handover_script(p: &WpaParams) -> String {
    format!(
        "#!/bin/sh\n\
         # Managed by pbr (wpa module): ExecStart of {unit}, run from its copy in RAM ({kitd},\n\
         # made by {ku}). Adopts the wpa_supplicant that the initramfs started on {iface}\n\
         # (the root is reached over it), or starts one from the copy, without reading the root.\n\
         kit=${{0%/*}}\n\
         pidf={pidf}\n\
         pid=\n\
         [ -s \"$pidf\" ] && read -r pid <\"$pidf\"\n\
         comm=\n\
         [ -n \"$pid\" ] && kill -0 \"$pid\" 2>/dev/null && read -r comm </proc/\"$pid\"/comm\n\
         case \"$comm\" in\n\
         *wpa_supplicant*)\n\
         \x20   echo \"adopting the wpa_supplicant already running on {iface} (pid $pid)\"\n\
         \x20   # (its emptied initramfs root gets what it lacks from {au})\n\
         \x20   # into this unit's control group, so that its end is seen like a child's\n\
         \x20   LD_LIBRARY_PATH= busctl call org.freedesktop.systemd1 /org/freedesktop/systemd1 \\\n\
         \x20       org.freedesktop.systemd1.Manager AttachProcessesToUnit ssau {unit} '' 1 \"$pid\" >/dev/null ||\n\
         \x20       echo \"pid $pid stays outside the unit's control group\"\n\
         \x20   exit 0\n\
         \x20   ;;\n\
         esac\n\
         \"$kit/rm\" -f \"$pidf\"\n\
         # named @wpa_supplicant (by the PATH lookup), so that the final kill at shutdown spares it\n\
         PATH=$kit\n\
         export PATH\n\
         exec @wpa_supplicant -B -i {i} -c \"$kit/wpa.conf\" -D {driver} -P \"$pidf\"\n",
        unit = p.handover_unit(),
        ku = p.kit_unit(),
        au = attach_unit(&p.interface),
        kitd = kit_dir(&p.interface),
        iface = p.interface,
        i = sh_quote(&p.interface),
        pidf = sh_quote(&pidfile(&p.interface)),
        driver = sh_quote(&p.driver),
    )
}

/// The stock unit's guard: it does not start while the handover unit is active or the
/// supplicant it adopted lives. (Not `wpa_cli ping`: a supplicant started in the initramfs
/// answers into its own root's /tmp, so the ping of a live one times out.)
pub fn render_guard(p: &WpaParams) -> String {
    format!(
        "# Managed by pbr (wpa module, handover): {h} owns {i}; never a second supplicant.\n\
         [Service]\n\
         ExecCondition=/bin/sh -c '! systemctl is-active -q {h} && ! {{ [ -s {pid} ] && kill -0 \"$$(cat {pid})\"; }}'\n",
        h = p.handover_unit(),
        i = p.interface,
        pid = pidfile(&p.interface),
    )
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
        let psk = n.psk.as_ref().map(|k| derive_psk(&n.ssid, k.expose())).transpose()?;
        if let Some(psk) = &psk {
            s.push_str(&format!("\tpsk={psk}\n"));
        }
        if let Some(pr) = n.priority {
            s.push_str(&format!("\tpriority={pr}\n"));
        }
        s.push_str(&format!("\tid_str=\"{}\"\n", network_tag(n, psk.as_deref())));
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
                // id_str: pbr's tag of a network, which changes with its key
                matches!(k, "psk" | "sae_password" | "password" | "passphrase" | "private_key_passwd" | "id_str")
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
    /// The handover's units, scripts and guard: as they are, and as they should be.
    pub handover: Vec<(FileNow, Want)>,
    /// The enable links of the handover unit and its attach unit, when handing over.
    pub links: Vec<LinkNow>,
    /// Whether the running system has the handover's copy in RAM (then a change refreshes it).
    pub kit: bool,
    /// The `id_str` tags (see [`network_tag`]) of the networks the handover's running supplicant
    /// knows, when one runs and answers wpa_cli. None also for one that does not answer (adopted
    /// by an older handover, without the reply directory): it takes a new key only at its next
    /// restart, from the refreshed copy.
    pub running: Option<Vec<String>>,
}

/// An enable link: where it is, what it should point to, what it points to now (None: absent).
#[derive(Debug, Clone)]
pub struct LinkNow {
    pub unit: String,
    pub path: String,
    pub target: String,
    pub now: Option<String>,
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
                    derive_psk(&n.ssid, psk.expose()).map_err(|e| format!("networks[{i}]: {e}"))?;
                }
                None if n.key_mgmt.split_whitespace().any(|k| k.contains("PSK") || k == "SAE") => {
                    return Err(format!("networks[{i}]: key_mgmt {} needs a psk", n.key_mgmt));
                }
                None => {}
            }
        }
        if p.state == Presence::Absent && p.enable_service {
            return Err("enable_service needs state: present".into());
        }
        if p.handover && p.enable_service {
            return Err("handover and enable_service exclude each other: with handover, pbr-wpa-IFACE.service \
                        runs the supplicant and the stock unit is guarded"
                .into());
        }
        for (what, v) in [("unit_dir", &p.unit_dir), ("lib_dir", &p.lib_dir)] {
            if !v.starts_with('/') || v.contains(['\n', '\0', '\'']) {
                return Err(format!("{what} must be an absolute path, got {v:?}"));
            }
        }
        if p.driver.is_empty() || !p.driver.bytes().all(|b| b.is_ascii_alphanumeric() || b"_,".contains(&b)) {
            return Err(format!("driver {:?} is not a wpa_supplicant driver list (nl80211,wext)", p.driver));
        }
        if p.ctrl_dir().contains(['\'', ' ']) || !p.ctrl_dir().starts_with('/') {
            return Err(format!(
                "ctrl_interface {:?}: the socket directory must be an absolute path",
                p.ctrl_interface
            ));
        }
        Ok(())
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &WpaParams, host: &ReadHost) -> Result<WpaProbe, ModuleError> {
        // the configuration and the handover's files in one round trip
        let files = p.handover_files();
        let mut paths = vec![p.path()];
        if p.handover || p.state == Presence::Absent {
            paths.extend(files.iter().map(|(f, _, _)| f.clone()));
        }
        let mut now = boot_util::probe_many(host, &paths).await?.into_iter();
        let file = now.next().ok_or_else(|| ModuleError::new(format!("cannot inspect {}", p.path())))?;
        let want = match p.state {
            Presence::Present => Want::Present { content: render(p).map_err(ModuleError::new)?, mode: 0o600 },
            Presence::Absent => Want::Absent,
        };
        let enabled = if p.enable_service {
            let out = host.query_sh(format!("systemctl is-enabled {} 2>/dev/null", sh_quote(&p.unit()))).await?;
            Some(out.stdout_str().trim().to_string())
        } else {
            None
        };
        let mut handover = vec![];
        let mut links = vec![];
        let mut kit = false;
        let mut running = None;
        if p.handover || p.state == Presence::Absent {
            for ((_, content, mode), now) in files.into_iter().zip(now) {
                let want = if p.handover && p.state == Presence::Present {
                    Want::Present { content, mode }
                } else {
                    Want::Absent
                };
                handover.push((now, want));
            }
            let wanted = p.handover_links();
            let mut q: Vec<PathQuery> = wanted.iter().map(|(_, l, _)| PathQuery::new(l.clone())).collect();
            q.push(PathQuery::new(kit_dir(&p.interface)));
            let mut infos = host.inspect(&q).await?;
            kit = infos.pop().and_then(|i| i.stat).is_some_and(|st| st.kind == "directory");
            for ((unit, lpath, target), info) in wanted.into_iter().zip(infos) {
                let now = match info.stat {
                    None => None,
                    Some(st) if st.kind == "link" => Some(st.link_target.unwrap_or_default()),
                    Some(st) => {
                        return Err(ModuleError::new(format!("{lpath} is a {}, not {unit}'s enable link", st.kind)));
                    }
                };
                links.push(LinkNow { unit, path: lpath, target, now });
            }
            if p.handover && p.state == Presence::Present {
                running = probe_running(p, host).await?;
            }
        }
        Ok(WpaProbe { file, want, enabled, handover, links, kit, running })
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
        for (now, want) in &st.handover {
            for c in boot_util::file_changes(now, want, None) {
                plan.push(c);
            }
        }
        let wanted = p.handover && p.state == Presence::Present;
        for l in &st.links {
            match (&l.now, wanted) {
                (Some(t), true) if *t == l.target => {}
                (_, true) if l.unit == p.handover_unit() => plan.push(Change::new(format!(
                    "enable {} at boot (it adopts the initramfs's supplicant; not started now)",
                    l.unit
                ))),
                (_, true) => plan.push(Change::new(format!("enable {} at boot (not started now)", l.unit))),
                (Some(_), false) => plan.push(Change::new(format!("disable {}", l.unit))),
                (None, false) => {}
            }
        }
        for (n, _, _) in to_learn(p, st)? {
            plan.push(Change::new(format!(
                "the running supplicant on {} learns network {:?} with its new key, beside the one it \
                 uses: the link stays up, and it rejoins with the new key once the access point uses it",
                p.interface, n.ssid
            )));
        }
        if kit_refresh(p, st) {
            plan.push(Change::new(format!(
                "refresh the supplicant's copy in RAM, {} (a restart then uses the new files)",
                kit_dir(&p.interface)
            )));
        }
        if !plan.is_empty() {
            plan.ops = ops(p, st)?;
        }
        Ok(plan)
    }

    fn data(&self, p: &WpaParams, _st: &WpaProbe) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("path".into(), Value::String(p.path()));
        m.insert("networks".into(), Value::from(p.networks.iter().map(|n| n.ssid.clone()).collect::<Vec<_>>()));
        m
    }
}

/// Whether the running system's copy in RAM (which restarts the supplicant) must take a changed
/// configuration or changed handover files.
/// The ops of a plan: the configuration, the unit enabled, the handover units and their links
/// (then a daemon-reload), the RAM copy refreshed, networks taught to the running supplicant, and
/// the initramfs regenerated at the end of the run when the configuration it holds changed.
fn ops(p: &WpaParams, st: &WpaProbe) -> Result<Vec<Op>, ModuleError> {
    let mut ops = boot_util::file_ops(&st.file, &st.want);
    if st.enabled.as_deref().is_some_and(|e| e != "enabled") {
        ops.push(Op::run(format!("enable {}", p.unit()), format!("systemctl enable {}", sh_quote(&p.unit()))));
    }
    let mut units_changed = false;
    for (now, want) in &st.handover {
        let o = boot_util::file_ops(now, want);
        units_changed |= !o.is_empty();
        ops.extend(o);
    }
    // the enable links, in one round trip
    let wanted = p.handover && p.state == Presence::Present;
    let mut script = vec![];
    for l in &st.links {
        let q = sh_quote(&l.path);
        match (&l.now, wanted) {
            (Some(t), true) if *t == l.target => {}
            (_, true) => {
                let dir = sh_quote(boot_util::parent(&l.path).unwrap_or("/"));
                script.push(format!("mkdir -p -- {dir} && ln -sfn -- {} {q}", sh_quote(&l.target)));
            }
            (Some(_), false) => script.push(format!("rm -f -- {q}")),
            (None, false) => {}
        }
    }
    if !script.is_empty() {
        ops.push(Op::run("the units' enable links", script.join(" && ")));
        units_changed = true;
    }
    if units_changed && p.unit_dir == default_unit_dir() {
        // a running systemd reads the changed units (nothing is started or stopped)
        ops.push(Op::run("systemctl daemon-reload", "[ ! -d /run/systemd/system ] || systemctl daemon-reload"));
    }
    if kit_refresh(p, st) {
        let kit = format!("/bin/sh {} >/dev/null", sh_quote(&p.paths().kit_script));
        ops.push(Op::run(format!("refresh {}", kit_dir(&p.interface)), kit));
    }
    for (n, tag, psk) in to_learn(p, st)? {
        ops.push(learn(p, n, &tag, psk.as_deref()));
    }
    if p.initramfs && differs(&st.file, &st.want) {
        ops.push(Op::Defer(Deferred {
            key: "mkinitcpio".into(),
            description: "regenerate initramfs".into(),
            script: p.regenerate_command.clone(),
        }));
    }
    Ok(ops)
}

fn kit_refresh(p: &WpaParams, st: &WpaProbe) -> bool {
    st.kit
        && p.handover
        && p.state == Presence::Present
        && (differs(&st.file, &st.want) || st.handover.iter().any(|(now, want)| differs(now, want)))
}

/// The tag that names a network's settings (SSID, key, key management...) in the configuration
/// (`id_str`) and, through wpa_cli, in the running supplicant: a key it does not know shows as a
/// tag it lacks. A short hash; the file and the supplicant hold the key itself anyway.
pub fn network_tag(n: &WpaNetwork, psk: Option<&str>) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for part in [n.ssid.as_str(), n.key_mgmt.as_str(), psk.unwrap_or(""), if n.scan_ssid { "1" } else { "0" }] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.update(n.priority.map(|p| p.to_string()).unwrap_or_default().as_bytes());
    format!("pbr-{}", &hex::encode(h.finalize())[..12])
}

/// The networks the running supplicant does not know yet, with their tags and PSKs.
type Unknown<'a> = (&'a WpaNetwork, String, Option<String>);
fn to_learn<'a>(p: &'a WpaParams, st: &WpaProbe) -> Result<Vec<Unknown<'a>>, ModuleError> {
    let Some(tags) = &st.running else { return Ok(vec![]) };
    let mut v = vec![];
    for n in &p.networks {
        let psk = n.psk.as_ref().map(|k| derive_psk(&n.ssid, k.expose())).transpose().map_err(ModuleError::new)?;
        let tag = network_tag(n, psk.as_deref());
        if !tags.contains(&tag) {
            v.push((n, tag, psk));
        }
    }
    Ok(v)
}

/// What the handover's supplicant runs and knows: one round trip, read only.
async fn probe_running(p: &WpaParams, host: &ReadHost) -> Result<Option<Vec<String>>, ModuleError> {
    let script = format!(
        "pid=\n\
         [ -s {pidf} ] && read -r pid <{pidf}\n\
         {{ [ -n \"$pid\" ] && kill -0 \"$pid\" 2>/dev/null; }} || exit 0\n\
         echo \"pid $pid\"\n\
         w() {{ if command -v timeout >/dev/null; then timeout 5 {cli} \"$@\"; else {cli} \"$@\"; fi; }}\n\
         ids=$(w list_networks 2>/dev/null) || {{ echo mute; exit 0; }}\n\
         case $ids in *'network id'*) ;; *) echo mute; exit 0 ;; esac\n\
         for id in $(printf '%s\\n' \"$ids\" | awk -F'\\t' 'NR > 1 && $1 ~ /^[0-9]+$/ {{ print $1 }}'); do\n\
         \x20   echo \"tag $(w get_network \"$id\" id_str 2>/dev/null | tr -d '\"')\"\n\
         done\n",
        pidf = sh_quote(&pidfile(&p.interface)),
        cli = p.wpa_cli(),
    );
    let out = host.query_sh(script).await?;
    Ok(parse_running(&out.stdout_str()))
}

/// The probe script's output: `pid N`, then `mute` or one `tag T` per network.
fn parse_running(out: &str) -> Option<Vec<String>> {
    let mut runs = false;
    let mut tags = vec![];
    for line in out.lines() {
        match line.split_once(' ').unwrap_or((line, "")) {
            ("pid", _) => runs = true,
            ("mute", _) => return None,
            ("tag", v) if v.trim().starts_with("pbr-") => tags.push(v.trim().to_string()),
            _ => {}
        }
    }
    runs.then_some(tags)
}

/// The running supplicant learns `n` as a network of its own: added, set (the key goes on
/// wpa_cli's standard input, never its command line), then enabled. Adding and enabling a network
/// does not disturb the association in use; on any failure the half-made network is removed.
/// The op teaching the running supplicant network `n` (its settings on standard input: the key
/// is never on a command line).
fn learn(p: &WpaParams, n: &WpaNetwork, tag: &str, psk: Option<&str>) -> Op {
    let mut input = format!("set_network @ID@ ssid {}\n", ssid_value(&n.ssid));
    input.push_str(&format!("set_network @ID@ key_mgmt {}\n", n.key_mgmt));
    if let Some(k) = psk {
        input.push_str(&format!("set_network @ID@ psk {k}\n"));
    }
    if n.scan_ssid {
        input.push_str("set_network @ID@ scan_ssid 1\n");
    }
    if let Some(pr) = n.priority {
        input.push_str(&format!("set_network @ID@ priority {pr}\n"));
    }
    input.push_str(&format!("set_network @ID@ id_str \"{tag}\"\n"));
    let script = format!(
        "w() {{ {cli} \"$@\"; }}\n\
         ID=$(w add_network) || {{ echo \"wpa_cli add_network: $ID\" >&2; exit 1; }}\n\
         case $ID in ''|*[!0-9]*) echo \"wpa_cli add_network answered: $ID\" >&2; exit 1 ;; esac\n\
         # interactive mode reads the settings from standard input; no history file (HOME unset)\n\
         out=$(sed \"s/@ID@/$ID/\" | (unset HOME; w) 2>&1)\n\
         n=$(printf '%s\\n' \"$out\" | grep -c '^OK')\n\
         if [ \"$n\" -ne {want} ] || [ \"$(w enable_network \"$ID\")\" != OK ]; then\n\
         \x20   w remove_network \"$ID\" >/dev/null\n\
         \x20   echo \"wpa_cli did not take network {ssid} ($n of {want} settings answered OK)\" >&2\n\
         \x20   exit 1\n\
         fi\n",
        cli = p.wpa_cli(),
        want = input.lines().count(),
        ssid = sh_quote(&n.ssid),
    );
    Op::Run {
        what: format!("the running supplicant on {} did not learn network {:?}", p.interface, n.ssid),
        script,
        stdin: Some(input.into_bytes()),
        makes: vec![],
        removes: vec![],
    }
}

/// Whether `now`'s content (or presence) is not what `want` asks.
use boot_util::content_differs as differs;

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
