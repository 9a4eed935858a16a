//! `mkinitcpio_hook`: a custom mkinitcpio hook (its `install/` and `hooks/` files), its place in
//! `HOOKS=(...)`, additions to `MODULES`/`BINARIES`/`FILES`, and one initramfs regeneration per
//! host at the end of the run.
//!
//! `mkinitcpio.conf` is bash: it is read with a small tokenizer for `NAME=(...)` arrays and
//! `NAME="a b"` strings (quotes, comments, multi-line arrays), and edited in place: only the text
//! of the array changes, every other byte is kept.

use crate::boot_util::{self, FileNow, Want};
use crate::wpa;
use async_trait::async_trait;
use pbr_core::params::Presence;
use pbr_core::params::bool_lenient;
use pbr_core::{Change, Ctx, Doc, Module, ModuleError, PathQuery, Plan, ReadHost, sh_quote};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::ops::Range;

fn yes() -> bool {
    true
}
fn default_initcpio_dir() -> String {
    "/etc/initcpio".into()
}
fn default_lib_dir() -> String {
    "/usr/lib/initcpio".into()
}
fn default_config() -> String {
    "/etc/mkinitcpio.conf".into()
}
fn default_dropin_dir() -> String {
    "/etc/mkinitcpio.conf.d".into()
}
fn default_regen() -> String {
    "mkinitcpio -P".into()
}
fn default_marker() -> String {
    "/boot/.pbr-initramfs-pending".into()
}
fn default_image() -> String {
    "/boot/initramfs-linux.img".into()
}
fn default_port() -> u16 {
    3260
}
fn default_tpgt() -> u32 {
    1
}
fn default_wait() -> u32 {
    30
}

// ---------------------------------------------------------------------------------------------
// The bash tokenizer

/// One element of an array (or word of a string value): its value and where its text is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elem {
    pub value: String,
    pub span: Range<usize>,
}

/// How a variable is assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `NAME=(a b)`: `span` covers `(`..`)` inclusive.
    Array,
    /// `NAME="a b"` / `NAME=a`: `span` covers the quoted word.
    Str,
}

/// One top-level `NAME=` or `NAME+=` assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assign {
    pub name: String,
    pub append: bool,
    pub form: Form,
    pub span: Range<usize>,
    pub elems: Vec<Elem>,
}

/// Read one shell word starting at `i`; returns its value and end. `in_array` makes `)` end it.
fn word(t: &[u8], mut i: usize, in_array: bool) -> Result<(String, usize), String> {
    let mut v: Vec<u8> = vec![];
    while i < t.len() {
        match t[i] {
            b' ' | b'\t' | b'\n' | b';' => break,
            b')' if in_array => break,
            b'(' if in_array => return Err(format!("unexpected `(` at byte {i}")),
            b'\'' => {
                let end = t[i + 1..].iter().position(|&b| b == b'\'').ok_or("unterminated '")? + i + 1;
                v.extend_from_slice(&t[i + 1..end]);
                i = end + 1;
            }
            b'"' => {
                i += 1;
                loop {
                    match t.get(i) {
                        None => return Err("unterminated \"".into()),
                        Some(b'"') => break,
                        Some(b'\\') if matches!(t.get(i + 1), Some(b'"' | b'\\' | b'$' | b'`')) => {
                            v.push(t[i + 1]);
                            i += 2;
                        }
                        Some(b'\\') if t.get(i + 1) == Some(&b'\n') => i += 2,
                        Some(&b) => {
                            v.push(b);
                            i += 1;
                        }
                    }
                }
                i += 1;
            }
            b'\\' => match t.get(i + 1) {
                Some(b'\n') => i += 2,
                Some(&b) => {
                    v.push(b);
                    i += 2;
                }
                None => i += 1,
            },
            b => {
                v.push(b);
                i += 1;
            }
        }
    }
    Ok((String::from_utf8_lossy(&v).into_owned(), i))
}

fn skip_to_eol(t: &[u8], mut i: usize) -> usize {
    while i < t.len() && t[i] != b'\n' {
        i += 1;
    }
    i
}

/// Every top-level assignment of a bash config, in order.
pub fn parse_conf(text: &str) -> Result<Vec<Assign>, String> {
    let t = text.as_bytes();
    let line_of = |i: usize| text[..i.min(text.len())].matches('\n').count() + 1;
    let mut out = vec![];
    let mut i = 0;
    while i < t.len() {
        while i < t.len() && (t[i] == b' ' || t[i] == b'\t') {
            i += 1;
        }
        let start = i;
        while i < t.len() && (t[i].is_ascii_alphanumeric() || t[i] == b'_') {
            i += 1;
        }
        let name = &text[start..i];
        let append = t.get(i) == Some(&b'+') && t.get(i + 1) == Some(&b'=');
        let is_assign = !name.is_empty() && !name.as_bytes()[0].is_ascii_digit() && (append || t.get(i) == Some(&b'='));
        if !is_assign {
            // some other line: skip it, following quotes across lines
            let mut q: Option<u8> = None;
            while i < t.len() {
                match (q, t[i]) {
                    (None, b'\n') => break,
                    (None, b'#') if i == start || matches!(t[i - 1], b' ' | b'\t') => {
                        i = skip_to_eol(t, i);
                        break;
                    }
                    (None, b'\'' | b'"') => q = Some(t[i]),
                    (None, b'\\') => i += 1,
                    (Some(b'"'), b'\\') => i += 1,
                    (Some(c), b) if c == b => q = None,
                    _ => {}
                }
                i += 1;
            }
            i += 1;
            continue;
        }
        i += if append { 2 } else { 1 };
        if t.get(i) == Some(&b'(') {
            let open = i;
            i += 1;
            let mut elems = vec![];
            loop {
                while i < t.len() && matches!(t[i], b' ' | b'\t' | b'\n') {
                    i += 1;
                }
                match t.get(i) {
                    None => return Err(format!("line {}: unterminated {name}=( array", line_of(open))),
                    Some(b')') => break,
                    Some(b'#') => i = skip_to_eol(t, i),
                    Some(_) => {
                        let (value, end) = word(t, i, true).map_err(|e| format!("line {}: {e}", line_of(i)))?;
                        if end == i {
                            return Err(format!("line {}: unexpected `{}` in {name}", line_of(i), t[i] as char));
                        }
                        elems.push(Elem { value, span: i..end });
                        i = end;
                    }
                }
            }
            i += 1;
            out.push(Assign { name: name.to_string(), append, form: Form::Array, span: open..i, elems });
        } else {
            let vstart = i;
            let (value, end) = word(t, i, false).map_err(|e| format!("line {}: {e}", line_of(i)))?;
            // the words of a string value, with spans inside the quoted text (unused for edits)
            let elems = value.split_whitespace().map(|w| Elem { value: w.to_string(), span: vstart..end }).collect();
            out.push(Assign { name: name.to_string(), append, form: Form::Str, span: vstart..end, elems });
            i = end;
        }
        // rest of the line (a comment, `;`...)
        let mut q: Option<u8> = None;
        while i < t.len() {
            match (q, t[i]) {
                (None, b'\n') => break,
                (None, b'\'' | b'"') => q = Some(t[i]),
                (Some(c), b) if c == b => q = None,
                _ => {}
            }
            i += 1;
        }
        i += 1;
    }
    Ok(out)
}

/// The effective values of `name` (last plain assignment plus later `+=` ones).
pub fn values(assigns: &[Assign], name: &str) -> Vec<String> {
    let mut v: Vec<String> = vec![];
    for a in assigns.iter().filter(|a| a.name == name) {
        if !a.append {
            v.clear();
        }
        v.extend(a.elems.iter().map(|e| e.value.clone()));
    }
    v
}

/// Where to put an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place<'a> {
    End,
    Before(&'a str),
    After(&'a str),
}

/// One edit of an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op<'a> {
    Ensure(&'a str, Place<'a>),
    Remove(&'a str),
}

fn last_assign<'a>(assigns: &'a [Assign], name: &str) -> Option<&'a Assign> {
    assigns.iter().rev().find(|a| a.name == name && !a.append)
}

/// Apply one edit to `name` in `text`, changing only that array's text. Returns the new text.
pub fn edit_array(text: &str, name: &str, op: Op) -> Result<String, String> {
    let assigns = parse_conf(text)?;
    let Some(a) = last_assign(&assigns, name) else {
        return Ok(match op {
            Op::Remove(_) => text.to_string(),
            Op::Ensure(v, Place::End) => {
                let sep = if text.is_empty() || text.ends_with('\n') { "" } else { "\n" };
                format!("{text}{sep}{name}=({})\n", sh_quote(v))
            }
            Op::Ensure(v, Place::Before(x) | Place::After(x)) => {
                return Err(format!("{name} is not set: cannot place {v} next to {x}"));
            }
        });
    };
    let vals: Vec<&str> = a.elems.iter().map(|e| e.value.as_str()).collect();
    let pos = |v: &str| vals.iter().position(|x| *x == v);
    // the wanted list, then the text edits that reach it
    let mut want: Vec<&str> = vals.clone();
    match op {
        Op::Remove(v) => want.retain(|x| *x != v),
        Op::Ensure(v, place) => {
            let ok = match (pos(v), place) {
                (None, _) => false,
                (Some(_), Place::End) => true,
                (Some(i), Place::Before(x)) => pos(x).is_none_or(|j| i < j),
                (Some(i), Place::After(x)) => pos(x).is_none_or(|j| i > j),
            };
            if !ok {
                want.retain(|x| *x != v);
                let at = match place {
                    Place::End => want.len(),
                    Place::Before(x) => want
                        .iter()
                        .position(|y| *y == x)
                        .ok_or_else(|| format!("{name} has no {x} to put {v} before"))?,
                    Place::After(x) => {
                        want.iter()
                            .position(|y| *y == x)
                            .ok_or_else(|| format!("{name} has no {x} to put {v} after"))?
                            + 1
                    }
                };
                want.insert(at, v);
            }
        }
    }
    if want == vals {
        return Ok(text.to_string());
    }
    if a.form == Form::Str {
        let quoted = format!("\"{}\"", want.join(" ").replace('\\', "\\\\").replace('"', "\\\"").replace('$', "\\$"));
        return Ok(format!("{}{}{}", &text[..a.span.start], quoted, &text[a.span.end..]));
    }
    // Array: remove the elements that go, then insert the new one where it belongs.
    let mut s = text.to_string();
    let removed: Vec<usize> = match op {
        Op::Remove(v) | Op::Ensure(v, _) => (0..vals.len()).filter(|&i| vals[i] == v).collect(),
    };
    let inserted = match op {
        Op::Ensure(v, _) => want.iter().position(|x| *x == v),
        Op::Remove(_) => None,
    };
    // index (in the old list) before which to insert, or None for the end
    let insert_before: Option<Option<usize>> = inserted.map(|k| {
        let next_kept = want[k + 1..].first().copied();
        next_kept.and_then(|n| (0..vals.len()).find(|&i| vals[i] == n && !removed.contains(&i)))
    });
    // edits from the back so spans stay valid
    let mut edits: Vec<(Range<usize>, String)> = vec![];
    if let (Some(before), Op::Ensure(v, place)) = (insert_before, op) {
        let q = sh_quote(v);
        let anchor = match place {
            Place::After(x) => (0..vals.len()).find(|&i| vals[i] == x),
            _ => None,
        };
        if let Some(i) = anchor {
            edits.push((a.elems[i].span.end..a.elems[i].span.end, format!(" {q}")));
        } else {
            match before {
                Some(i) => edits.push((a.elems[i].span.start..a.elems[i].span.start, format!("{q} "))),
                None => match (0..vals.len()).rev().find(|i| !removed.contains(i)) {
                    Some(last) => edits.push((a.elems[last].span.end..a.elems[last].span.end, format!(" {q}"))),
                    None => edits.push((a.span.start + 1..a.span.start + 1, q)),
                },
            }
        }
    }
    for &i in &removed {
        edits.push((removal_range(text, &a.elems[i].span, a.span.start), String::new()));
    }
    edits.sort_by(|x, y| y.0.start.cmp(&x.0.start).then(y.0.end.cmp(&x.0.end)));
    for (r, rep) in edits {
        s.replace_range(r, &rep);
    }
    Ok(s)
}

/// The bytes to delete with an element: the element and the blanks on one side of it, or its
/// whole line when nothing else is on it.
fn removal_range(text: &str, span: &Range<usize>, open: usize) -> Range<usize> {
    let t = text.as_bytes();
    let mut lo = span.start;
    while lo > open + 1 && matches!(t[lo - 1], b' ' | b'\t') {
        lo -= 1;
    }
    let mut hi = span.end;
    while hi < t.len() && matches!(t[hi], b' ' | b'\t') {
        hi += 1;
    }
    let line_start = lo == open + 1 || t[lo - 1] == b'\n';
    let line_end = hi >= t.len() || t[hi] == b'\n' || t[hi] == b')';
    match (line_start, line_end) {
        // alone on its line inside a multi-line array: drop the line
        (true, true) if t.get(hi) == Some(&b'\n') && lo != open + 1 => lo..hi + 1,
        (true, true) => lo..hi,
        // first on the line: take the blanks after it
        (true, false) => span.start..hi,
        // otherwise the blanks before it
        _ => lo..span.end,
    }
}

// ---------------------------------------------------------------------------------------------
// Params

/// Root over iSCSI from the initramfs.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IscsiParams {
    /// This machine's initiator name (`iqn.2024-01.org.example:pi3`).
    pub initiator: String,
    /// The target's name (`iqn.2024-01.org.example:storage.pi3`).
    pub target: String,
    /// The target's address: an IP address or a host name.
    pub portal: String,
    /// The target's TCP port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Target portal group tag.
    #[serde(default = "default_tpgt")]
    pub tpgt: u32,
    /// The LUN whose disk the hook waits for.
    #[serde(default)]
    pub lun: u32,
    /// How long to wait for the LUN's disk, in seconds.
    #[serde(default = "default_wait")]
    pub wait_seconds: u32,
    /// Bring the network up first from `ip=` on the kernel command line (`ip=dhcp`, or the
    /// kernel's `ip=CLIENT::GATEWAY:NETMASK:HOSTNAME:DEVICE:off`), for kernels that cannot do it
    /// themselves (no IP autoconfiguration: Arch Linux ARM's and Debian's). An interface that
    /// already has an address is left alone.
    #[serde(default = "yes", deserialize_with = "bool_lenient")]
    pub net: bool,
    /// Session settings for the login (`iscsistart -P NAME=VALUE`), e.g.
    /// `node.session.timeo.replacement_timeout: 600` so the root survives a storage reboot.
    #[serde(default)]
    pub settings: BTreeMap<String, StrOrNum>,
    /// CHAP user name, when the target requires CHAP (as `targetcli` and `iscsi` set it up).
    #[serde(default)]
    pub username: Option<String>,
    /// CHAP secret. Kept in the image's login script (mode 0700), never shown in diffs or
    /// output.
    #[serde(default)]
    pub password: Option<String>,
}

/// A setting's value: YAML numbers are fine.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum StrOrNum {
    Str(String),
    Num(i64),
}

impl std::fmt::Display for StrOrNum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StrOrNum::Str(s) => f.write_str(s),
            StrOrNum::Num(n) => write!(f, "{n}"),
        }
    }
}

fn default_wifi_wait() -> u32 {
    30
}
fn default_associate() -> u32 {
    60
}
fn default_driver() -> String {
    "nl80211".into()
}
fn default_ctrl_dir() -> String {
    "/run/wpa_supplicant".into()
}
fn default_unit_dir() -> String {
    "/etc/systemd/system".into()
}
fn default_wpa_lib_dir() -> String {
    "/usr/local/lib/pbr".into()
}

/// Wi-Fi in the initramfs, for a root reached over it (a Pi Zero 2 W with its root on iSCSI).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WifiParams {
    /// The wireless interface.
    pub interface: String,
    /// wpa_supplicant's configuration (written by the `wpa` module), packed into the image at the
    /// same path. Default `/etc/wpa_supplicant/wpa_supplicant-INTERFACE.conf`.
    #[serde(default)]
    pub config: Option<String>,
    /// How long to wait for the interface to appear, in seconds (its driver probes and loads its
    /// firmware asynchronously).
    #[serde(default = "default_wifi_wait")]
    pub wait_seconds: u32,
    /// How long to wait for the association (`wpa_state=COMPLETED`), in seconds.
    #[serde(default = "default_associate")]
    pub associate_seconds: u32,
    /// Wi-Fi power saving. Off by default: a dozing radio delays and drops the frames of the
    /// root's iSCSI session. Turning it off needs `iw` (added to the image).
    #[serde(default, deserialize_with = "bool_lenient")]
    pub power_save: bool,
    /// The MTU to set once associated (e.g. the path MTU to the portal, when a tunnel or the AP
    /// lowers it).
    #[serde(default)]
    pub mtu: Option<u32>,
    /// wpa_supplicant's driver (`-D`).
    #[serde(default = "default_driver")]
    pub driver: String,
    /// The control socket directory (the `DIR=` of the configuration's `ctrl_interface`).
    #[serde(default = "default_ctrl_dir")]
    pub ctrl_dir: String,
    /// With the systemd init: where the `wpa` module's `handover` put `pbr-wpa-INTERFACE.service`.
    /// The same unit runs the supplicant in the initramfs (it survives the switch to the real
    /// root, whose systemd keeps supervising it), so it is packed into the image.
    #[serde(default = "default_unit_dir")]
    pub unit_dir: String,
    /// With the systemd init: where the `wpa` module's `handover` put the unit's start script.
    #[serde(default = "default_wpa_lib_dir")]
    pub lib_dir: String,
}

impl WifiParams {
    pub fn config(&self) -> String {
        self.config.clone().unwrap_or_else(|| wpa::default_config(&self.interface))
    }
    /// The handover unit's name (the `wpa` module's).
    pub fn supplicant_unit(&self) -> String {
        wpa::handover_unit(&self.interface)
    }
    /// The handover unit, its start script, the unit that copies them into RAM and its script,
    /// on the host (the `wpa` module's `handover`), each with its unit name (none for a script).
    pub fn handover_files(&self) -> [(String, Option<String>); 4] {
        let h = wpa::HandoverPaths::new(&self.unit_dir, &self.lib_dir, &self.interface);
        [
            (h.unit, Some(self.supplicant_unit())),
            (h.script, None),
            (h.kit_unit, Some(wpa::kit_unit(&self.interface))),
            (h.kit_script, None),
        ]
    }
}

/// Which init the image runs, as `HOOKS` says: mkinitcpio's busybox init (`base`/`udev`) or
/// systemd (`systemd`), whose images never run the busybox `run_hook`s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Init {
    #[default]
    Busybox,
    Systemd,
}

impl Init {
    pub fn of(hooks: &[String]) -> Init {
        if hooks.iter().any(|h| h == "systemd") { Init::Systemd } else { Init::Busybox }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MkinitcpioHookParams {
    /// The hook's name: the file name under `install/` and `hooks/` and the word in `HOOKS`.
    /// Optional when the task only manages `config_*` arrays or `disable_cleanup`.
    #[serde(default)]
    pub name: Option<String>,
    /// `present` installs the hook; `absent` removes its files, its `HOOKS` entry (or drop-in),
    /// the listed `config_*` entries and the `disable_cleanup` overrides.
    #[serde(default)]
    pub state: Presence,
    /// Where local hooks live (`install/NAME`, `hooks/NAME`).
    #[serde(default = "default_initcpio_dir")]
    pub initcpio_dir: String,
    /// Where packaged hooks live (read by `disable_cleanup`).
    #[serde(default = "default_lib_dir")]
    pub initcpio_lib_dir: String,
    /// The mkinitcpio config edited in place.
    #[serde(default = "default_config")]
    pub config: String,
    /// Put the `HOOKS` placement and array additions in a drop-in `DROPIN_DIR/NAME.conf` instead
    /// of editing `config`.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub dropin: bool,
    /// Directory of drop-ins.
    #[serde(default = "default_dropin_dir")]
    pub dropin_dir: String,
    /// Place the hook right before this hook in `HOOKS` (which must be there).
    #[serde(default)]
    pub before: Option<String>,
    /// Place the hook right after this hook in `HOOKS` (which must be there).
    #[serde(default)]
    pub after: Option<String>,
    /// Kernel modules the hook adds to the image (`add_module`).
    #[serde(default)]
    pub modules: Vec<String>,
    /// Module directories added with `add_checked_modules` (`/drivers/net`).
    #[serde(default)]
    pub checked_modules: Vec<String>,
    /// Binaries added with `add_binary` (`iscsistart`).
    #[serde(default)]
    pub binaries: Vec<String>,
    /// Files added with `add_file` (`/etc/wpa_supplicant/wpa_supplicant-wlan0.conf`).
    #[serde(default)]
    pub files: Vec<String>,
    /// Text of the hook's `help()`.
    #[serde(default)]
    pub help: Option<String>,
    /// Body of `run_earlyhook()`.
    #[serde(default)]
    pub run_earlyhook: Option<String>,
    /// Body of `run_hook()`.
    #[serde(default)]
    pub run_hook: Option<String>,
    /// Body of `run_latehook()`.
    #[serde(default)]
    pub run_latehook: Option<String>,
    /// Body of `run_cleanuphook()`.
    #[serde(default)]
    pub run_cleanuphook: Option<String>,
    /// The whole `install/NAME` script, instead of the typed keys above.
    #[serde(default)]
    pub install: Option<String>,
    /// The whole `hooks/NAME` script, instead of the typed keys above.
    #[serde(default)]
    pub hook: Option<String>,
    /// Generate a `run_hook` logging in to an iSCSI target with `iscsistart` and waiting for the
    /// LUN's disk; adds `iscsistart`, `iscsi_tcp` and the network drivers.
    #[serde(default)]
    pub iscsi: Option<IscsiParams>,
    /// Generate a `run_hook` that brings up Wi-Fi for the root: waits for the interface, turns
    /// power save off, starts wpa_supplicant (left running for the real root to adopt: see the
    /// `wpa` module's `handover`), waits for the association, sets the MTU, then the address
    /// (from `ip=`, DHCP by default). Put this hook before the `iscsi` one. Adds
    /// `wpa_supplicant`, `wpa_cli`, the configuration, and `iw` when power save is turned off.
    #[serde(default)]
    pub wifi: Option<WifiParams>,
    /// Entries added to `MODULES` (others kept).
    #[serde(default)]
    pub config_modules: Vec<String>,
    /// Entries added to `BINARIES` (others kept).
    #[serde(default)]
    pub config_binaries: Vec<String>,
    /// Entries added to `FILES` (others kept).
    #[serde(default)]
    pub config_files: Vec<String>,
    /// Packaged hooks whose `run_cleanuphook` must not run (to keep e.g. wpa_supplicant up after
    /// the switch to the real root): each gets an override `INITCPIO_DIR/hooks/HOOK`, a copy of
    /// the packaged hook ending with `run_cleanuphook() { :; }`. mkinitcpio prefers that
    /// directory, and pbr refreshes the copy when the packaged hook changes.
    #[serde(default)]
    pub disable_cleanup: Vec<String>,
    /// Regenerate the initramfs (once per host, at the end of the run) after a change.
    #[serde(default = "yes", deserialize_with = "bool_lenient")]
    pub regenerate: bool,
    /// The regeneration command.
    #[serde(default = "default_regen")]
    pub regenerate_command: String,
    /// The hook is a packaged one (`INITCPIO_LIB_DIR/install/NAME`, e.g. bcache-tools' `bcache`):
    /// only its place in `HOOKS` is managed, no files are written, and a hook that is not
    /// installed is an error.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub packaged: bool,
    /// Kept while a regeneration is due and removed when one succeeds, so a failed or
    /// interrupted `mkinitcpio -P` is done again by the next run. It sits beside the image (on
    /// the boot partition), not in the root: a copy of the root (`rootfs`) must not carry it.
    #[serde(default = "default_marker")]
    pub pending_marker: String,
    /// The image the hook must be in. When nothing else is to do, the probe lists it
    /// (`lsinitcpio -l`) and asks for a regeneration when the hook's run-time files are not in it
    /// (an image built before the hook, or by a build that failed), so `--verify` and the next
    /// run check the built image, not only the files. Empty: no check.
    #[serde(default = "default_image")]
    pub image: String,
}

impl MkinitcpioHookParams {
    fn typed_given(&self) -> bool {
        !self.modules.is_empty()
            || !self.checked_modules.is_empty()
            || !self.binaries.is_empty()
            || !self.files.is_empty()
            || self.help.is_some()
            || self.run_earlyhook.is_some()
            || self.run_hook.is_some()
            || self.run_latehook.is_some()
            || self.run_cleanuphook.is_some()
            || self.iscsi.is_some()
            || self.wifi.is_some()
    }
    fn config_arrays(&self) -> [(&'static str, &[String]); 3] {
        [("MODULES", &self.config_modules), ("BINARIES", &self.config_binaries), ("FILES", &self.config_files)]
    }
}

// ---------------------------------------------------------------------------------------------
// Validation helpers

fn label_ok(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 63
        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

/// `iqn.YYYY-MM.reversed.domain[:id]` (RFC 3720 §3.2.6.3.1), lower case.
pub fn check_iqn(what: &str, s: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "{what} {s:?} is not an iSCSI qualified name ({why}); expected iqn.YYYY-MM.reversed.domain[:id], e.g. iqn.2024-01.org.example:pi3"
        ))
    };
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        return bad("iSCSI names are lower case");
    }
    let Some(rest) = s.strip_prefix("iqn.") else { return bad("no iqn. prefix") };
    let (date, rest) = rest.split_at_checked(7).unwrap_or(("", ""));
    let d = date.as_bytes();
    let date_ok = d.len() == 7
        && d[..4].iter().all(u8::is_ascii_digit)
        && d[4] == b'-'
        && d[5..].iter().all(u8::is_ascii_digit)
        && matches!(&date[5..], "01" | "02" | "03" | "04" | "05" | "06" | "07" | "08" | "09" | "10" | "11" | "12");
    if !date_ok {
        return bad("the date must be YYYY-MM");
    }
    let Some(rest) = rest.strip_prefix('.') else { return bad("no naming authority after the date") };
    let (domain, id) = match rest.split_once(':') {
        Some((d, id)) => (d, Some(id)),
        None => (rest, None),
    };
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 || !labels.iter().all(|l| label_ok(l)) {
        return bad("the naming authority must be a reversed domain name such as org.example");
    }
    if let Some(id) = id
        && (id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b)))
    {
        return bad("the part after ':' may hold only a-z, 0-9, '-', '.' and ':'");
    }
    if s.len() > 223 {
        return bad("longer than 223 bytes");
    }
    Ok(())
}

/// An IP address or a host name.
pub fn check_portal(s: &str) -> Result<(), String> {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let h = s.strip_suffix('.').unwrap_or(s);
    if !h.is_empty() && h.len() <= 253 && h.split('.').all(label_ok) {
        return Ok(());
    }
    Err(format!("iscsi.portal {s:?} is neither an IP address nor a host name"))
}

fn hook_name_ok(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)) || s.starts_with('.') {
        return Err(format!("{what} {s:?} is not a hook name (letters, digits, '_', '-', '.')"));
    }
    Ok(())
}

fn one_line(what: &str, list: &[String]) -> Result<(), String> {
    for v in list {
        if v.is_empty() || v.contains(['\n', '\r', '\0']) {
            return Err(format!("{what}: {v:?} must be a non-empty single line"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Rendering

fn push_unique(v: &mut Vec<String>, x: &str) {
    if !v.iter().any(|y| y == x) {
        v.push(x.to_string());
    }
}

/// The login script of an `iscsi` hook, run in the initramfs by either init.
pub fn render_iscsi_script(i: &IscsiParams, name: &str) -> String {
    let mut auth = String::new();
    if let Some(u) = &i.username {
        auth.push_str(&format!(" -u {}", sh_quote(u)));
    }
    if let Some(pw) = &i.password {
        auth.push_str(&format!(" -w {}", sh_quote(pw)));
    }
    let settings: String = i.settings.iter().map(|(k, v)| format!(" -P {}", sh_quote(&format!("{k}={v}")))).collect();
    let net = if i.net { "net_up || exit 1" } else { "# the network is configured by the kernel or an earlier hook" };
    include_str!("mkinitcpio_iscsi.sh")
        .replace("@NETLIB@", include_str!("mkinitcpio_net.sh"))
        .replace("@NAME@", name)
        .replace("@NET@", net)
        .replace("@INITIATOR@", &sh_quote(&i.initiator))
        .replace("@TARGET@", &sh_quote(&i.target))
        .replace("@TARGET_SHOWN@", &i.target)
        .replace("@PORTAL@", &sh_quote(&i.portal))
        .replace("@PORTAL_SHOWN@", &i.portal)
        .replace("@PORT@", &i.port.to_string())
        .replace("@TPGT@", &i.tpgt.to_string())
        .replace("@AUTH@", &auth)
        .replace("@SETTINGS@", &settings)
        .replace("@LUN@", &i.lun.to_string())
        .replace("@WAIT@", &i.wait_seconds.to_string())
}

/// The Wi-Fi script of a `wifi` hook, run in the initramfs before the iSCSI login.
pub fn render_wifi_script(w: &WifiParams, name: &str, init: Init) -> String {
    let start = match init {
        Init::Busybox => "mkdir -p \"$_ctrl\"\n    \
                          PATH=\"/usr/lib/pbr/bin:$PATH\" @wpa_supplicant -B -i \"$_if\" -c @CONF@ -D @DRIVER@ -P \"$_pid\" || {\n        \
                          say \"wpa_supplicant did not start on $_if\"\n        \
                          exit 1\n    \
                          }"
        .to_string(),
        Init::Systemd => format!(
            "systemctl start {0} || {{\n        \
             say \"{0} did not start: systemctl status {0}\"\n        \
             exit 1\n    \
             }}",
            w.supplicant_unit()
        ),
    };
    let power = if w.power_save {
        "# power save left as the driver sets it (power_save: true)".to_string()
    } else {
        format!("iw dev {0} set power_save off || say \"could not turn power save off on {0}\"", sh_quote(&w.interface))
    };
    let mtu = match w.mtu {
        Some(m) => {
            format!("ip link set \"$_if\" mtu {m} || {{ say \"could not set the MTU of $_if to {m}\"; exit 1; }}")
        }
        None => "# the MTU is left as it is".to_string(),
    };
    include_str!("mkinitcpio_wifi.sh")
        .replace("@NETLIB@", include_str!("mkinitcpio_net.sh"))
        .replace("@START@", &start)
        .replace("@NAME@", name)
        .replace("@IFACE@", &sh_quote(&w.interface))
        .replace("@CTRL@", &sh_quote(&w.ctrl_dir))
        .replace("@PIDFILE@", &sh_quote(&wpa::pidfile(&w.interface)))
        .replace("@CONF@", &sh_quote(&w.config()))
        .replace("@DRIVER@", &sh_quote(&w.driver))
        .replace("@WAIT@", &w.wait_seconds.to_string())
        .replace("@ASSOC@", &w.associate_seconds.to_string())
        .replace("@POWERSAVE@", &power)
        .replace("@MTU@", &mtu)
}

/// Where the login script lives inside the image.
pub fn image_script_path(name: &str) -> String {
    format!("/usr/lib/pbr/{name}.sh")
}

/// The systemd unit (systemd init) that runs a typed hook's script (the iSCSI login, the
/// Wi-Fi) before the root device is awaited, and before the unit of the hook it is placed
/// before in `HOOKS`.
pub fn render_step_unit(name: &str, what: &str, before: Option<&str>) -> String {
    let before = before.map(|b| format!(" pbr-{b}.service")).unwrap_or_default();
    format!(
        "# Managed by pbr (mkinitcpio_hook {name}).\n\
         [Unit]\n\
         Description=pbr: {what} ({name})\n\
         DefaultDependencies=no\n\
         After=systemd-udevd.service systemd-udev-trigger.service systemd-modules-load.service\n\
         Wants=systemd-udev-trigger.service\n\
         Before=initrd-root-device.target sysroot.mount{before}\n\
         ConditionPathExists=/etc/initrd-release\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         RemainAfterExit=yes\n\
         ExecStart=/bin/sh {}\n\
         StandardOutput=journal+console\n\
         StandardError=journal+console\n",
        image_script_path(name)
    )
}

/// The files a typed (`iscsi` or `wifi`) hook keeps beside its install script
/// (`INITCPIO_DIR/pbr/`): its script, and for the systemd init the unit that runs it.
pub fn side_files(p: &MkinitcpioHookParams, name: &str, init: Init) -> Vec<(String, String, u32)> {
    let dir = boot_util::join(&p.initcpio_dir, "pbr");
    let script = boot_util::join(&dir, &format!("{name}.sh"));
    let unit = boot_util::join(&dir, &format!("pbr-{name}.service"));
    // the Wi-Fi comes up before the hook it is placed before (the iSCSI login)
    let before = p.wifi.as_ref().and(p.before.as_deref());
    let mut v = match (&p.iscsi, &p.wifi) {
        (Some(i), _) => vec![(script, render_iscsi_script(i, name), 0o700)],
        (_, Some(w)) => vec![(script, render_wifi_script(w, name, init), 0o700)],
        _ => return vec![],
    };
    if init == Init::Systemd {
        let what = if p.wifi.is_some() { "Wi-Fi for the root" } else { "iSCSI login of the root disk" };
        v.push((unit, render_step_unit(name, what, before), 0o644));
    }
    v
}

fn indent(body: &str) -> String {
    let keep = body.contains("<<");
    let mut s = String::new();
    for line in body.lines() {
        if keep || line.is_empty() {
            s.push_str(line);
        } else {
            s.push_str("    ");
            s.push_str(line);
        }
        s.push('\n');
    }
    s
}

fn hook_functions(p: &MkinitcpioHookParams, name: &str, init: Init) -> Vec<(&'static str, String)> {
    let run_hook = match (&p.iscsi, &p.wifi, init) {
        (Some(_), _, Init::Busybox) => Some(format!(
            "if ! /bin/sh {}; then\n    err \"pbr: the iSCSI login of the root disk failed\"\n    return 1\nfi\n",
            image_script_path(name)
        )),
        (_, Some(w), Init::Busybox) => Some(format!(
            "if ! /bin/sh {}; then\n    err \"pbr: Wi-Fi on {} did not come up: the root is out of reach\"\n    return 1\nfi\n",
            image_script_path(name),
            w.interface
        )),
        (Some(_), _, Init::Systemd) | (_, Some(_), Init::Systemd) => None,
        (None, None, _) => p.run_hook.clone(),
    };
    [
        ("run_earlyhook", p.run_earlyhook.clone()),
        ("run_hook", run_hook),
        ("run_latehook", p.run_latehook.clone()),
        ("run_cleanuphook", p.run_cleanuphook.clone()),
    ]
    .into_iter()
    .filter_map(|(n, b)| b.map(|b| (n, b)))
    .collect()
}

/// The `install/NAME` script.
pub fn render_install(p: &MkinitcpioHookParams, name: &str, init: Init) -> String {
    if let Some(raw) = &p.install {
        return raw.clone();
    }
    let mut modules = p.modules.clone();
    let mut checked = p.checked_modules.clone();
    let mut binaries = p.binaries.clone();
    if p.iscsi.is_some() {
        push_unique(&mut modules, "iscsi_tcp");
        push_unique(&mut checked, "/drivers/net");
        push_unique(&mut binaries, "iscsistart");
    }
    let mut files = p.files.clone();
    if let Some(w) = &p.wifi {
        // the ciphers mac80211 loads on demand when WPA2 installs its keys (drivers with their
        // own crypto, such as the Pi's brcmfmac, do without; `?`: absent or built in is fine)
        for m in ["ccm?", "ctr?", "cmac?", "gcm?", "aes_generic?"] {
            push_unique(&mut modules, m);
        }
        push_unique(&mut binaries, "wpa_cli");
        if !w.power_save {
            push_unique(&mut binaries, "iw");
        }
        push_unique(&mut files, &w.config());
    }
    let mut s = String::from("#!/bin/bash\n# Managed by pbr (mkinitcpio_hook module).\n\nbuild() {\n");
    for m in &modules {
        s.push_str(&format!("    add_module {}\n", sh_quote(m)));
    }
    for m in &checked {
        s.push_str(&format!("    add_checked_modules {}\n", sh_quote(m)));
    }
    for b in &binaries {
        s.push_str(&format!("    add_binary {}\n", sh_quote(b)));
    }
    if p.wifi.is_some() {
        // one path on every distribution, and the name that systemd's final kill spares
        s.push_str("    add_binary wpa_supplicant /usr/bin/wpa_supplicant\n");
        s.push_str("    add_symlink /usr/lib/pbr/bin/@wpa_supplicant /usr/bin/wpa_supplicant\n");
    }
    for f in &files {
        s.push_str(&format!("    add_file {}\n", sh_quote(f)));
    }
    for (path, _, mode) in side_files(p, name, init) {
        if path.ends_with(".sh") {
            s.push_str(&format!("    add_file {} {} {:o}\n", sh_quote(&path), image_script_path(name), mode));
        } else {
            let unit = format!("/usr/lib/systemd/system/pbr-{name}.service");
            s.push_str(&format!("    add_file {} {unit} 644\n", sh_quote(&path)));
            s.push_str(&format!(
                "    add_symlink /usr/lib/systemd/system/initrd.target.wants/pbr-{name}.service {unit}\n"
            ));
        }
    }
    if let Some(w) = &p.wifi
        && init == Init::Systemd
    {
        // the wpa module's handover unit runs the supplicant from the initramfs on (started from
        // its copy in RAM, which its kit unit makes)
        for (path, unit) in w.handover_files() {
            match unit {
                Some(u) => s.push_str(&format!("    add_file {} /usr/lib/systemd/system/{u} 644\n", sh_quote(&path))),
                None => s.push_str(&format!("    add_file {}\n", sh_quote(&path))),
            }
        }
    }
    if p.hook.is_some() || !hook_functions(p, name, init).is_empty() {
        s.push_str("    add_runscript\n");
    }
    if modules.is_empty() && checked.is_empty() && binaries.is_empty() && files.is_empty() && p.hook.is_none() {
        s.push_str("    :\n");
    }
    s.push_str("}\n\nhelp() {\n    cat <<'HELPEOF'\n");
    let help = p.help.clone().unwrap_or_else(|| match (&p.iscsi, &p.wifi) {
        (Some(i), _) => format!("Logs in to the iSCSI target {} at {}:{} with iscsistart.", i.target, i.portal, i.port),
        (_, Some(w)) => format!(
            "Brings up Wi-Fi on {} (wpa_supplicant, left running for the real root) and its address.",
            w.interface
        ),
        _ => format!("The {name} hook."),
    });
    s.push_str(help.trim_end_matches('\n'));
    s.push_str("\nHELPEOF\n}\n");
    s
}

/// The `hooks/NAME` script, when the hook has run-time functions.
pub fn render_hook(p: &MkinitcpioHookParams, name: &str, init: Init) -> Option<String> {
    if let Some(raw) = &p.hook {
        return Some(raw.clone());
    }
    let fns = hook_functions(p, name, init);
    if fns.is_empty() {
        return None;
    }
    let mut s = String::from("#!/usr/bin/ash\n# Managed by pbr (mkinitcpio_hook module).\n");
    for (n, body) in fns {
        s.push_str(&format!("\n{n}() {{\n{}}}\n", indent(if body.trim().is_empty() { ":" } else { &body })));
    }
    Some(s)
}

/// A packaged hook with its cleanup neutralised.
pub fn render_override(original: &str, hook: &str, owner: &str) -> String {
    let sep = if original.ends_with('\n') { "" } else { "\n" };
    format!(
        "{original}{sep}\n# Added by pbr (mkinitcpio_hook {owner}): {hook} keeps running after the switch to the real root.\n\
         run_cleanuphook() {{\n    :\n}}\n"
    )
}

/// The drop-in placing the hook and adding array entries, evaluated by bash after the main config.
pub fn render_dropin(p: &MkinitcpioHookParams, name: &str) -> String {
    let q = sh_quote(name);
    let mut s = format!("# Managed by pbr (mkinitcpio_hook module): the {name} hook.\n");
    // the string form (`HOOKS="a b"`) becomes an array first
    s.push_str(
        "for _pbr_h in HOOKS MODULES BINARIES FILES; do\n    \
         [[ $(declare -p \"$_pbr_h\" 2>/dev/null) == \"declare -a\"* ]] || read -ra \"$_pbr_h\" <<< \"${!_pbr_h-}\"\n\
         done\n",
    );
    s.push_str("_pbr_l=()\nfor _pbr_h in \"${HOOKS[@]}\"; do\n");
    s.push_str(&format!("    [[ $_pbr_h == {q} ]] && continue\n"));
    if let Some(b) = &p.before {
        s.push_str(&format!("    [[ $_pbr_h == {} ]] && _pbr_l+=({q})\n", sh_quote(b)));
    }
    s.push_str("    _pbr_l+=(\"$_pbr_h\")\n");
    if let Some(a) = &p.after {
        s.push_str(&format!("    [[ $_pbr_h == {} ]] && _pbr_l+=({q})\n", sh_quote(a)));
    }
    s.push_str("done\n");
    s.push_str(&format!("[[ \" ${{_pbr_l[*]}} \" == *\" \"{q}\" \"* ]] || _pbr_l+=({q})\n"));
    s.push_str("HOOKS=(\"${_pbr_l[@]}\")\n");
    for (arr, list) in p.config_arrays() {
        for v in list {
            let v = sh_quote(v);
            s.push_str(&format!("[[ \" ${{{arr}[*]}} \" == *\" \"{v}\" \"* ]] || {arr}+=({v})\n"));
        }
    }
    s.push_str("unset _pbr_l _pbr_h\n");
    s
}

// ---------------------------------------------------------------------------------------------
// The module

/// One managed file: what it is and what it should be.
#[derive(Debug, Clone)]
pub struct Managed {
    pub now: FileNow,
    pub want: Want,
    /// A secret in the file's text, replaced in diffs.
    pub secret: Option<String>,
}

impl Managed {
    fn new(now: FileNow, want: Want) -> Managed {
        Managed { now, want, secret: None }
    }
}

#[derive(Debug, Clone, Default)]
pub struct HookProbe {
    pub files: Vec<Managed>,
    /// The init `HOOKS` runs.
    pub init: Init,
    /// The "regeneration pending" marker exists.
    pub pending: bool,
    /// A regeneration is queued for this run already.
    pub queued: bool,
    /// Run-time files of the hook that the built image lacks.
    pub image_lacks: Vec<String>,
    /// The image the hook must be in does not exist (never built, or built elsewhere).
    pub image_missing: bool,
    /// `files`/`config_files` entries missing on the host (only reported in check mode, where
    /// an earlier task may not have made them yet; a real run refuses them in the probe).
    pub missing: Vec<String>,
}

/// The line of the last `NAME=` assignment in a config, for messages.
fn line_of(text: &str, assigns: &[Assign], name: &str) -> usize {
    last_assign(assigns, name).map(|a| text[..a.span.start].matches('\n').count() + 1).unwrap_or(0)
}

fn edit_config(text: &str, p: &MkinitcpioHookParams) -> Result<String, String> {
    let mut s = text.to_string();
    let present = p.state == Presence::Present;
    if let Some(name) = &p.name {
        let op = if present {
            let place = match (&p.before, &p.after) {
                (Some(b), _) => Place::Before(b),
                (_, Some(a)) => Place::After(a),
                _ => Place::End,
            };
            Op::Ensure(name, place)
        } else {
            Op::Remove(name)
        };
        s = edit_array(&s, "HOOKS", op)?;
    }
    for (arr, list) in p.config_arrays() {
        for v in list {
            let op = if present { Op::Ensure(v, Place::End) } else { Op::Remove(v) };
            s = edit_array(&s, arr, op)?;
        }
    }
    Ok(s)
}

/// The hook's run-time files that `image` lacks (nothing without `lsinitcpio`: there is nothing
/// to compare with), or `None` when there is no image at all.
async fn image_lacks(
    host: &ReadHost,
    p: &MkinitcpioHookParams,
    name: &str,
    init: Init,
) -> Result<Option<Vec<String>>, ModuleError> {
    let mut want = vec![];
    if p.iscsi.is_some() {
        want.push(image_script_path(name).trim_start_matches('/').to_string());
        want.push("usr/bin/iscsistart".to_string());
    }
    if let Some(w) = &p.wifi {
        want.push(image_script_path(name).trim_start_matches('/').to_string());
        want.push("usr/bin/wpa_supplicant".to_string());
        want.push(w.config().trim_start_matches('/').to_string());
    }
    if let Some(w) = &p.wifi
        && init == Init::Systemd
    {
        want.push(format!("usr/lib/systemd/system/{}", w.supplicant_unit()));
    }
    match init {
        Init::Systemd if p.iscsi.is_some() || p.wifi.is_some() => {
            want.push(format!("usr/lib/systemd/system/pbr-{name}.service"))
        }
        Init::Busybox if render_hook(p, name, init).is_some() => want.push(format!("hooks/{name}")),
        _ => {}
    }
    if want.is_empty() {
        return Ok(Some(vec![]));
    }
    let img = sh_quote(&p.image);
    let out = host
        .query_sh(format!(
            "command -v lsinitcpio >/dev/null 2>&1 || exit 4
[ -f {img} ] || exit 3
LC_ALL=C lsinitcpio -l {img}"
        ))
        .await?;
    match out.rc {
        0 => {
            let listing = out.stdout_str();
            let have: std::collections::HashSet<&str> =
                listing.lines().map(|l| l.trim().trim_end_matches('/')).collect();
            Ok(Some(want.into_iter().filter(|w| !have.contains(w.as_str())).collect()))
        }
        // no image: nothing boots this hook yet (a Pi's first build)
        3 => Ok(None),
        4 => Ok(Some(vec![])),
        rc => {
            Err(ModuleError::new(format!("lsinitcpio -l {} failed (exit {rc}): {}", p.image, out.stderr_str().trim())))
        }
    }
}

pub struct MkinitcpioHook;

#[async_trait]
impl Module for MkinitcpioHook {
    type Params = MkinitcpioHookParams;
    type State = HookProbe;
    const NAME: &'static str = "mkinitcpio_hook";

    fn doc(&self) -> Doc {
        Doc {
            description: "Install a custom mkinitcpio hook and put it in `HOOKS`. The hook is written as \
                          `INITCPIO_DIR/install/NAME` (a `build()` from `modules`, `checked_modules`, `binaries`, \
                          `files`, plus `add_runscript` when there is a run-time part, and a `help()`) and \
                          `INITCPIO_DIR/hooks/NAME` (`run_earlyhook`/`run_hook`/`run_latehook`/`run_cleanuphook` \
                          bodies), or from raw `install`/`hook` text. `iscsi` generates a `run_hook` that logs in \
                          with `iscsistart` and waits for the LUN's disk, bringing the network up from `ip=` \
                          first. `wifi` generates one that brings up Wi-Fi for a root reached over it: it waits \
                          for the interface, turns power save off, starts wpa_supplicant (as `@wpa_supplicant`, \
                          left running: the `wpa` module's `handover` makes the real root's systemd adopt it), \
                          waits for `wpa_state=COMPLETED` (a wrong passphrase or a missing network is named on \
                          the console), sets the MTU and the address; put it before the `iscsi` hook.\n\n\
                          `mkinitcpio.conf` is read as the bash it is (quotes, comments, multi-line arrays, \
                          `HOOKS=\"a b\"`) and edited in place: only the array's text changes. `before`/`after` \
                          place the hook next to another one; `config_modules`, `config_binaries` and \
                          `config_files` add entries to `MODULES`, `BINARIES` and `FILES`, keeping the others. \
                          With `dropin: true` the same is done by a drop-in `mkinitcpio.conf.d/NAME.conf` that \
                          rewrites the arrays when mkinitcpio sources it.\n\n\
                          `disable_cleanup` stops packaged hooks from tearing things down before the switch to \
                          the real root (the Zero W's Wi-Fi when the root is on iSCSI): for each hook, a copy of \
                          the packaged `hooks/HOOK` ending with `run_cleanuphook() { :; }` is written to \
                          `INITCPIO_DIR/hooks/HOOK`, which mkinitcpio prefers; the copy is refreshed whenever the \
                          packaged hook changes.\n\n\
                          Any change asks for one `mkinitcpio -P` per host at the end of the run (never in check \
                          mode), however many tasks changed something. `state: absent` removes the hook's files, \
                          its `HOOKS` entry, the listed array entries and the overrides.",
            examples: r#"- name: Root over iSCSI from the initramfs
  mkinitcpio_hook:
    name: iscsi
    after: net
    iscsi:
      initiator: iqn.2024-01.org.example:pi3
      target: iqn.2024-01.org.example:storage.pi3
      portal: 192.168.1.10

- name: Wi-Fi in the initramfs of the Zero 2 W, before the iSCSI login (the wpa task writes the config)
  mkinitcpio_hook:
    name: wifi
    before: iscsi
    wifi:
      interface: wlan0
      mtu: 1400
    config_modules: [brcmfmac, brcmutil, cfg80211, rfkill]
    config_files:
      - /usr/lib/firmware/brcm/brcmfmac43430-sdio.bin
      - /usr/lib/firmware/brcm/brcmfmac43430-sdio.txt
      - /usr/lib/firmware/brcm/brcmfmac43430-sdio.clm_blob

- name: A hook placed by a drop-in
  mkinitcpio_hook:
    name: bcache-wait
    dropin: true
    before: filesystems
    run_hook: |
      sleep 1
"#,
        }
    }

    fn validate(&self, p: &MkinitcpioHookParams) -> Result<(), String> {
        if let Some(n) = &p.name {
            hook_name_ok("name", n)?;
        }
        for x in p.before.iter().chain(&p.after).chain(&p.disable_cleanup) {
            hook_name_ok("hook", x)?;
        }
        if p.before.is_some() && p.after.is_some() {
            return Err("before and after are mutually exclusive".into());
        }
        if p.name.is_some() && (p.before == p.name || p.after == p.name) {
            return Err("a hook cannot be placed relative to itself".into());
        }
        if (p.install.is_some() || p.hook.is_some()) && p.typed_given() {
            return Err("raw install/hook text and the typed keys (modules, binaries, files, run_*, iscsi, help) \
                        are mutually exclusive"
                .into());
        }
        if p.hook.is_some() && p.install.is_none() {
            return Err("raw hook text needs raw install text (with add_runscript)".into());
        }
        if p.iscsi.is_some() && p.run_hook.is_some() {
            return Err("iscsi generates run_hook: give one or the other".into());
        }
        if p.wifi.is_some() && p.run_hook.is_some() {
            return Err("wifi generates run_hook: give one or the other".into());
        }
        if p.wifi.is_some() && p.iscsi.is_some() {
            return Err("wifi and iscsi are two hooks: give each its own task (wifi before iscsi)".into());
        }
        if let Some(w) = &p.wifi {
            boot_util::check_file_name("wifi.interface", &w.interface)?;
            for (what, v) in [("wifi.config", w.config()), ("wifi.ctrl_dir", w.ctrl_dir.clone())] {
                if !v.starts_with('/') || v.contains(['\n', '\0']) {
                    return Err(format!("{what} must be an absolute path, got {v:?}"));
                }
            }
            if w.driver.is_empty() || !w.driver.bytes().all(|b| b.is_ascii_alphanumeric() || b"_,".contains(&b)) {
                return Err(format!("wifi.driver {:?} is not a wpa_supplicant driver list (nl80211,wext)", w.driver));
            }
            if let Some(m) = w.mtu
                && !(576..=9000).contains(&m)
            {
                return Err(format!("wifi.mtu {m} is out of range (576 to 9000)"));
            }
        }
        let has_hook_files = p.install.is_some() || p.typed_given();
        match &p.name {
            None if has_hook_files || p.dropin || p.before.is_some() || p.after.is_some() => {
                return Err("name is required for a hook (files, placement, drop-in)".into());
            }
            None if p.config_arrays().iter().all(|(_, l)| l.is_empty()) && p.disable_cleanup.is_empty() => {
                return Err("nothing to do: give a name, config_* entries or disable_cleanup".into());
            }
            _ => {}
        }
        if let Some(n) = &p.name
            && p.disable_cleanup.contains(n)
        {
            return Err("disable_cleanup cannot name the hook itself: leave out run_cleanuphook".into());
        }
        if p.help.as_deref().is_some_and(|h| h.lines().any(|l| l == "HELPEOF")) {
            return Err("help cannot contain a line HELPEOF".into());
        }
        one_line("modules", &p.modules)?;
        one_line("checked_modules", &p.checked_modules)?;
        one_line("binaries", &p.binaries)?;
        one_line("files", &p.files)?;
        for (arr, list) in p.config_arrays() {
            one_line(arr, list)?;
        }
        if let Some(i) = &p.iscsi {
            check_iqn("iscsi.initiator", &i.initiator)?;
            check_iqn("iscsi.target", &i.target)?;
            check_portal(&i.portal)?;
            if i.port == 0 {
                return Err("iscsi.port must be 1..65535".into());
            }
        }
        if p.packaged && (p.typed_given() || p.install.is_some() || p.hook.is_some() || p.dropin) {
            return Err(
                "packaged: the hook's files come from its package: no typed keys, install, hook or dropin".into()
            );
        }
        if p.packaged && p.name.is_none() {
            return Err("packaged needs the hook's name".into());
        }
        if let Some(i) = &p.iscsi {
            if i.password.is_some() != i.username.is_some() {
                return Err("iscsi.username and iscsi.password go together (CHAP)".into());
            }
            for (k, v) in &i.settings {
                let v = v.to_string();
                if k.is_empty()
                    || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b"._[]".contains(&b))
                    || v.contains(['\n', '\0'])
                {
                    return Err(format!(
                        "iscsi.settings: {k:?} is not an iscsistart setting name (node.session.timeo.replacement_timeout)"
                    ));
                }
            }
        }
        if p.regenerate && !p.pending_marker.starts_with('/') {
            return Err(format!("pending_marker must be an absolute path, got {:?}", p.pending_marker));
        }
        if p.regenerate && p.regenerate_command.trim().is_empty() {
            return Err("regenerate_command is empty".into());
        }
        Ok(())
    }

    async fn probe(&self, ctx: &Ctx<'_>, p: &MkinitcpioHookParams, host: &ReadHost) -> Result<HookProbe, ModuleError> {
        let present = p.state == Presence::Present;
        let mut st = HookProbe::default();
        let dir = &p.initcpio_dir;
        // which init the image runs decides what the hook must be
        let conf = boot_util::probe(host, &p.config).await?;
        let conf_text = conf.text();
        if let Some(text) = &conf_text {
            let assigns = parse_conf(text).map_err(|e| ModuleError::new(format!("{}: {e}", p.config)))?;
            let hooks = values(&assigns, "HOOKS");
            st.init = Init::of(&hooks);
            let at = format!("{}:{}", p.config, line_of(text, &assigns, "HOOKS"));
            if present && st.init == Init::Systemd {
                let busybox_only = p.run_earlyhook.is_some()
                    || p.run_latehook.is_some()
                    || p.run_cleanuphook.is_some()
                    || p.hook.is_some()
                    || (p.run_hook.is_some() && p.iscsi.is_none());
                if busybox_only {
                    return Err(ModuleError::new(format!(
                        "{at}: HOOKS runs the systemd init, where the busybox run_hook/run_latehook/\
                         run_cleanuphook functions of a hook never run: the {} hook would be built into the \
                         image and do nothing. Give the hook a systemd unit (an `install` script using \
                         add_systemd_unit), use a typed hook (iscsi), or use the busybox init (base udev)",
                        p.name.as_deref().unwrap_or("?")
                    )));
                }
                if (p.iscsi.is_some() || p.wifi.is_some()) && !hooks.iter().any(|h| h == "base") {
                    return Err(ModuleError::new(format!(
                        "{at}: HOOKS runs the systemd init without `base`: the {} script needs base's \
                         busybox shell and tools; put base first (HOOKS=(base systemd ...), Arch Linux ARM's \
                         default)",
                        p.name.as_deref().unwrap_or("?")
                    )));
                }
            }
        }
        if let Some(name) = &p.name
            && !p.packaged
        {
            let install = boot_util::probe(host, &boot_util::join(dir, &format!("install/{name}"))).await?;
            let want = if present {
                Want::Present { content: render_install(p, name, st.init), mode: 0o644 }
            } else {
                Want::Absent
            };
            st.files.push(Managed::new(install, want));
            let hook = boot_util::probe(host, &boot_util::join(dir, &format!("hooks/{name}"))).await?;
            let want = match render_hook(p, name, st.init) {
                Some(content) if present => Want::Present { content, mode: 0o644 },
                _ => Want::Absent,
            };
            st.files.push(Managed::new(hook, want));
            // the login script and unit: both inits' files are managed, so a switch of init
            // removes the other's
            let wanted = side_files(p, name, st.init);
            let side = [format!("pbr/{name}.sh"), format!("pbr/pbr-{name}.service")].map(|f| boot_util::join(dir, &f));
            for path in side {
                let now = boot_util::probe(host, &path).await?;
                let want = match wanted.iter().find(|(q, _, _)| *q == path) {
                    Some((_, content, mode)) if present => Want::Present { content: content.clone(), mode: *mode },
                    _ => Want::Absent,
                };
                let secret = p.iscsi.as_ref().and_then(|i| i.password.clone());
                st.files.push(Managed { now, want, secret });
            }
        }
        if let Some(name) = &p.name
            && p.packaged
            && present
        {
            let src = boot_util::join(&p.initcpio_lib_dir, &format!("install/{name}"));
            if host.stat(&src).await?.is_none() {
                return Err(ModuleError::new(format!(
                    "the packaged hook {name} is not installed ({src} does not exist): install the package that \
                     ships it first (bcache: bcache-tools, from the AUR on Arch Linux ARM)"
                )));
            }
        }
        for h in &p.disable_cleanup {
            let now = boot_util::probe(host, &boot_util::join(dir, &format!("hooks/{h}"))).await?;
            let want = if present {
                let src = boot_util::join(&p.initcpio_lib_dir, &format!("hooks/{h}"));
                let orig = host.read_file(&src).await?.ok_or_else(|| {
                    ModuleError::new(format!("cannot disable the cleanup of {h}: {src} does not exist"))
                })?;
                let owner = p.name.as_deref().unwrap_or("-");
                Want::Present { content: render_override(&String::from_utf8_lossy(&orig), h, owner), mode: 0o644 }
            } else {
                Want::Absent
            };
            st.files.push(Managed::new(now, want));
        }
        match (&p.name, p.dropin) {
            (Some(name), true) => {
                let now = boot_util::probe(host, &boot_util::join(&p.dropin_dir, &format!("{name}.conf"))).await?;
                let want =
                    if present { Want::Present { content: render_dropin(p, name), mode: 0o644 } } else { Want::Absent };
                st.files.push(Managed::new(now, want));
            }
            _ => {
                let Some(text) = conf_text else {
                    if present {
                        return Err(ModuleError::new(format!("{} does not exist", p.config)));
                    }
                    return Ok(st);
                };
                let new = edit_config(&text, p).map_err(|e| ModuleError::new(format!("{}: {e}", p.config)))?;
                let mode = conf.mode.unwrap_or(0o644);
                st.files.push(Managed::new(conf, Want::Present { content: new, mode }));
            }
        }
        // mkinitcpio stops with an error on a file it cannot find: see that now
        if present {
            let mut wifi_conf: Vec<String> = p.wifi.iter().map(WifiParams::config).collect();
            if let Some(w) = &p.wifi
                && st.init == Init::Systemd
            {
                wifi_conf.extend(w.handover_files().into_iter().map(|(f, _)| f));
            }
            let wanted: Vec<&String> = p.files.iter().chain(&p.config_files).chain(&wifi_conf).collect();
            if !wanted.is_empty() {
                let qs: Vec<PathQuery> = wanted.iter().map(|f| PathQuery::new(f.to_string()).follow(true)).collect();
                let infos = host.inspect(&qs).await?;
                for (f, info) in wanted.iter().zip(infos) {
                    if info.stat.is_none() {
                        st.missing.push(f.to_string());
                    }
                }
            }
            if !st.missing.is_empty() && !ctx.check {
                return Err(ModuleError::new(format!(
                    "{} not on the host: mkinitcpio would stop with \"file not found\" and leave no new image. \
                     Create {} first, or drop {} from files/config_files (the Pi's Wi-Fi firmware is under \
                     /usr/lib/firmware/updates/brcm on Arch Linux ARM)",
                    st.missing.join(", "),
                    if st.missing.len() == 1 { "it" } else { "them" },
                    if st.missing.len() == 1 { "it" } else { "them" },
                )));
            }
        }
        if p.regenerate {
            st.pending = host.stat(&p.pending_marker).await?.is_some();
            st.queued = ctx.queued.iter().any(|k| k == "mkinitcpio");
            let files_done = st.files.iter().all(|m| boot_util::file_changes(&m.now, &m.want, None).is_empty());
            if let Some(name) = &p.name
                && present
                && !p.packaged
                && files_done
                && !st.pending
                && !st.queued
                && !p.image.is_empty()
            {
                match image_lacks(host, p, name, st.init).await? {
                    Some(lacks) => st.image_lacks = lacks,
                    None => st.image_missing = true,
                }
            }
        }
        Ok(st)
    }

    fn plan(&self, p: &MkinitcpioHookParams, st: &HookProbe) -> Result<Plan, ModuleError> {
        let mut plan = Plan::empty();
        for m in &st.files {
            let redact = m.secret.clone().map(|sec| move |t: &str| t.replace(&sec, "<redacted>"));
            let changes = match &redact {
                Some(f) => boot_util::file_changes(&m.now, &m.want, Some(f)),
                None => boot_util::file_changes(&m.now, &m.want, None),
            };
            for c in changes {
                plan.push(c);
            }
        }
        for f in &st.missing {
            plan.push(Change::new(format!(
                "{f} does not exist yet: mkinitcpio fails unless an earlier task creates it"
            )));
        }
        if st.image_missing {
            plan.push(Change::new(format!(
                "the initramfs is regenerated: {} does not exist (if the preset builds another image, set `image` \
                 to its path)",
                p.image
            )));
        }
        if !st.image_lacks.is_empty() {
            plan.push(Change::new(format!(
                "the initramfs is regenerated: {} lacks {} (built before the hook, or by a failed build)",
                p.image,
                st.image_lacks.join(", ")
            )));
        }
        if plan.is_empty() && st.pending && !st.queued {
            plan.push(Change::new(format!(
                "the initramfs is regenerated: the last regeneration did not succeed ({} is still there)",
                p.pending_marker
            )));
        }
        if plan.is_empty() {
            return Ok(plan);
        }
        for m in &st.files {
            plan.ops.extend(boot_util::file_ops(&m.now, &m.want));
        }
        if p.regenerate {
            // the marker first: a regeneration that never runs or fails is redone next time
            let marker = sh_quote(&p.pending_marker);
            let mk = match boot_util::parent(&p.pending_marker) {
                Some(dir) => format!("mkdir -p -- {} && : > {marker}", sh_quote(dir)),
                None => format!(": > {marker}"),
            };
            plan.op(pbr_core::Op::Run {
                what: format!("mark the initramfs as pending ({})", p.pending_marker),
                script: mk,
                stdin: None,
                makes: vec![p.pending_marker.clone()],
                removes: vec![],
            });
            plan.op(pbr_core::Op::Defer(boot_util::mkinitcpio_deferred(&format!(
                "{} && rm -f -- {marker}",
                p.regenerate_command
            ))));
        }
        Ok(plan)
    }

    fn data(&self, p: &MkinitcpioHookParams, st: &HookProbe) -> Map<String, Value> {
        let mut m = Map::new();
        if let Some(n) = &p.name {
            m.insert("hook".into(), Value::String(n.clone()));
        }
        m.insert("files".into(), Value::from(st.files.iter().map(|f| f.now.path.clone()).collect::<Vec<_>>()));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer() {
        let t = "# c\nMODULES=()\nHOOKS=(base udev # why\n  'auto detect' \"x\\\"y\")\nFILES=\"a b\"\necho 'HOOKS=(no\n)'\nX+=(z)\n";
        let a = parse_conf(t).unwrap();
        let names: Vec<&str> = a.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, vec!["MODULES", "HOOKS", "FILES", "X"]);
        assert_eq!(values(&a, "HOOKS"), vec!["base", "udev", "auto detect", "x\"y"]);
        assert_eq!(values(&a, "FILES"), vec!["a", "b"]);
        assert!(parse_conf("HOOKS=(a\n").is_err());
    }

    #[test]
    fn edits() {
        let t = "HOOKS=(base udev  filesystems)\n";
        assert_eq!(
            edit_array(t, "HOOKS", Op::Ensure("iscsi", Place::Before("filesystems"))).unwrap(),
            "HOOKS=(base udev  iscsi filesystems)\n"
        );
        assert_eq!(
            edit_array(t, "HOOKS", Op::Ensure("iscsi", Place::End)).unwrap(),
            "HOOKS=(base udev  filesystems iscsi)\n"
        );
        assert_eq!(edit_array(t, "HOOKS", Op::Remove("udev")).unwrap(), "HOOKS=(base  filesystems)\n");
        assert_eq!(edit_array(t, "HOOKS", Op::Remove("base")).unwrap(), "HOOKS=(udev  filesystems)\n");
        assert_eq!(
            edit_array(t, "HOOKS", Op::Ensure("base", Place::After("udev"))).unwrap(),
            "HOOKS=(udev base  filesystems)\n"
        );
        assert!(edit_array(t, "HOOKS", Op::Ensure("x", Place::After("nope"))).is_err());
        assert_eq!(edit_array("A=()\n", "A", Op::Ensure("x y", Place::End)).unwrap(), "A=('x y')\n");
        assert_eq!(edit_array("# x\n", "A", Op::Ensure("m", Place::End)).unwrap(), "# x\nA=(m)\n");
        let m = "HOOKS=(\n  base\n  udev\n)\n";
        assert_eq!(edit_array(m, "HOOKS", Op::Remove("udev")).unwrap(), "HOOKS=(\n  base\n)\n");
        assert_eq!(edit_array("H=\"a b\"\n", "H", Op::Ensure("c", Place::Before("b"))).unwrap(), "H=\"a c b\"\n");
    }

    #[test]
    fn iqns() {
        assert!(check_iqn("t", "iqn.2024-01.org.example:pi3").is_ok());
        assert!(check_iqn("t", "iqn.2003-01.org.linux-iscsi.host.armv7l:sn.123").is_ok());
        assert!(check_iqn("t", "iqn.2021-03.target:name").is_err());
        assert!(check_iqn("t", "iqn.2021-13.org.example").is_err());
        assert!(check_iqn("t", "iqn.2021-03.org.Example").is_err());
        assert!(check_iqn("t", "eui.02004567A425678D").is_err());
        assert!(check_portal("192.168.1.10").is_ok());
        assert!(check_portal("fe80::1").is_ok());
        assert!(check_portal("nas.local").is_ok());
        assert!(check_portal("bad host").is_err());
    }
}
