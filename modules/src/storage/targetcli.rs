//! `targetcli`: declarative LIO iSCSI target state (backstores, targets, LUNs, ACLs, portals).
//!
//! The probe reads configfs (`/sys/kernel/config/target`) and never runs targetcli; apply feeds
//! one batch of targetcli commands on stdin (it takes seconds to start) and then reads configfs
//! again to make sure every command took.

use crate::storage_util::{self as su, Step};
use async_trait::async_trait;
use indexmap::IndexMap;
use pbr_core::Secret;
use pbr_core::params::bool_lenient;
use pbr_core::{Ctx, Diff, Doc, Host, Module, ModuleError, Op, Outcome, Plan, ReadHost};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// An attribute value: string, number or boolean (`true` is written `1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrValue(pub String);

impl<'de> Deserialize<'de> for AttrValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(AttrValue(match Value::deserialize(d)? {
            Value::Bool(b) => if b { "1" } else { "0" }.to_string(),
            Value::Number(n) => n.to_string(),
            Value::String(s) => s,
            other => return Err(serde::de::Error::custom(format!("attribute values are scalars, got {other}"))),
        }))
    }
}

impl JsonSchema for AttrValue {
    fn schema_name() -> Cow<'static, str> {
        "AttrValue".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": ["string", "integer", "boolean"]})
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackstoreType {
    /// A block device (`iblock`).
    Block,
    /// A file (or a device used through the page cache).
    Fileio,
}

impl BackstoreType {
    fn name(self) -> &'static str {
        match self {
            BackstoreType::Block => "block",
            BackstoreType::Fileio => "fileio",
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backstore {
    /// Name of the storage object.
    pub name: String,
    /// `block` (default) or `fileio`.
    #[serde(rename = "type", default = "default_bs_type")]
    pub kind: BackstoreType,
    /// Device (block) or file (fileio) behind it.
    pub dev: String,
    /// Size of a fileio backstore whose file does not exist yet (`1G`).
    #[serde(default)]
    pub size: Option<String>,
}

fn default_bs_type() -> BackstoreType {
    BackstoreType::Block
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Lun {
    /// Backstore exported by this LUN (its `name`).
    pub backstore: String,
    /// LUN number; default: its position in the list.
    #[serde(default)]
    pub lun: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Acl {
    /// Initiator IQN allowed to log in.
    pub initiator: String,
    /// LUNs of the TPG it sees (mapped under the same number); default: all of them.
    #[serde(default)]
    pub mapped_luns: Option<Vec<u32>>,
    /// CHAP user name the initiator must present.
    #[serde(default)]
    pub chap_userid: Option<String>,
    /// CHAP password (redacted in all output).
    #[serde(default)]
    pub chap_password: Option<Secret>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Portal {
    /// Address to listen on (`0.0.0.0` for all).
    pub ip: String,
    /// TCP port (default 3260).
    #[serde(default = "default_port")]
    pub port: u16,
}

fn default_port() -> u16 {
    3260
}

fn default_tpg() -> u32 {
    1
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Target IQN: `iqn.YYYY-MM.reversed.domain[:name]`, lowercase.
    pub iqn: String,
    /// Target portal group tag (default 1).
    #[serde(default = "default_tpg")]
    pub tpg: u32,
    /// LUNs of the TPG.
    #[serde(default)]
    pub luns: Vec<Lun>,
    /// Initiators allowed in, with their mapped LUNs and CHAP credentials.
    #[serde(default)]
    pub acls: Vec<Acl>,
    /// Where the TPG listens; default `0.0.0.0:3260`.
    #[serde(default)]
    pub portals: Option<Vec<Portal>>,
    /// TPG attributes (`authentication: 0`, `generate_node_acls: 0`, ...).
    #[serde(default)]
    pub attributes: IndexMap<String, AttrValue>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetcliParams {
    /// Storage objects to export.
    #[serde(default)]
    pub backstores: Vec<Backstore>,
    /// iSCSI targets.
    #[serde(default)]
    pub targets: Vec<Target>,
    /// Remove what exists and is not declared (backstores, targets, LUNs, ACLs, mapped LUNs,
    /// portals). Off by default: undeclared objects are left alone.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub purge: bool,
    /// Save the configuration after a change (`saveconfig`) so it survives a reboot.
    #[serde(default = "yes", deserialize_with = "bool_lenient")]
    pub saveconfig: bool,
}

// ---------------------------------------------------------------- probed state

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LioBackstore {
    /// `block` or `fileio`, from the HBA directory (`iblock_0`, `fileio_1`).
    pub kind: String,
    pub name: String,
    pub dev: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LioAcl {
    /// mapped LUN -> TPG LUN
    pub mapped: BTreeMap<u32, u32>,
    pub userid: String,
    /// sha1 of the password, empty when none.
    pub password_sha1: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LioTpg {
    /// LUN -> `kind/name` of the backstore.
    pub luns: BTreeMap<u32, String>,
    pub acls: BTreeMap<String, LioAcl>,
    /// `ip:port`
    pub portals: Vec<String>,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LioState {
    pub backstores: Vec<LioBackstore>,
    /// iqn -> tpg tag -> tpg
    pub targets: BTreeMap<String, BTreeMap<u32, LioTpg>>,
}

/// Reads configfs; prints tab-separated records.
pub const PROBE_SCRIPT: &str = r#"T=/sys/kernel/config/target
[ -d "$T/core" ] || exit 0
for d in "$T"/core/*/*/; do
  d=${d%/}; [ -f "$d/udev_path" ] || continue
  hba=$(basename "$(dirname "$d")")
  printf 'BS\t%s\t%s\t%s\n' "$hba" "$(basename "$d")" "$(cat "$d/udev_path")"
done
[ -d "$T/iscsi" ] || exit 0
for t in "$T"/iscsi/*; do
  [ -d "$t" ] || continue; iqn=$(basename "$t")
  case "$iqn" in iqn.*|naa.*|eui.*) ;; *) continue ;; esac
  for g in "$t"/tpgt_*; do
    [ -d "$g" ] || continue; tp=${g##*_}
    printf 'TPG\t%s\t%s\n' "$iqn" "$tp"
    for l in "$g"/lun/lun_*; do
      [ -d "$l" ] || continue
      for x in "$l"/*; do [ -L "$x" ] || continue; so=$(readlink -f "$x")
        printf 'LUN\t%s\t%s\t%s\t%s/%s\n' "$iqn" "$tp" "${l##*_}" "$(basename "$(dirname "$so")")" "$(basename "$so")"; done
    done
    for a in "$g"/acls/*; do
      [ -d "$a" ] || continue; i=$(basename "$a")
      u=$(cat "$a/auth/userid" 2>/dev/null || true); p=$(cat "$a/auth/password" 2>/dev/null || true)
      if [ -n "$p" ] && [ "$p" != NULL ]; then h=$(printf '%s' "$p" | sha1sum | cut -d' ' -f1); else h=; fi
      printf 'ACL\t%s\t%s\t%s\t%s\t%s\n' "$iqn" "$tp" "$i" "$u" "$h"
      for m in "$a"/lun_*; do
        [ -d "$m" ] || continue
        for x in "$m"/*; do [ -L "$x" ] || continue; tl=$(basename "$(readlink -f "$x")")
          printf 'MLUN\t%s\t%s\t%s\t%s\t%s\n' "$iqn" "$tp" "$i" "${m##*_}" "${tl##*_}"; done
      done
    done
    for n in "$g"/np/*; do [ -d "$n" ] && printf 'NP\t%s\t%s\t%s\n' "$iqn" "$tp" "$(basename "$n")"; done
    for a in "$g"/attrib/*; do [ -f "$a" ] && printf 'ATTR\t%s\t%s\t%s\t%s\n' "$iqn" "$tp" "$(basename "$a")" "$(cat "$a" 2>/dev/null)"; done
  done
done
"#;

fn hba_kind(hba: &str) -> String {
    let base = hba.rsplit_once('_').map(|(a, _)| a).unwrap_or(hba);
    match base {
        "iblock" => "block".into(),
        "rd_mcp" => "ramdisk".into(),
        other => other.into(),
    }
}

/// Parse the output of [`PROBE_SCRIPT`].
pub fn parse_probe(text: &str) -> Result<LioState, String> {
    let mut st = LioState::default();
    for (no, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split('\t').collect();
        let bad = || format!("cannot parse configfs listing line {}: {line:?}", no + 1);
        let num = |s: &str| s.parse::<u32>().map_err(|_| bad());
        match f.as_slice() {
            ["BS", hba, name, dev] => {
                st.backstores.push(LioBackstore { kind: hba_kind(hba), name: name.to_string(), dev: dev.to_string() })
            }
            ["TPG", iqn, tp] => {
                st.targets.entry(iqn.to_string()).or_default().entry(num(tp)?).or_default();
            }
            ["LUN", iqn, tp, n, so] => {
                let so = so.split_once('/').map(|(h, n)| format!("{}/{n}", hba_kind(h))).unwrap_or(so.to_string());
                tpg_mut(&mut st, iqn, num(tp)?).luns.insert(num(n)?, so);
            }
            ["ACL", iqn, tp, init, user, hash] => {
                let acl = tpg_mut(&mut st, iqn, num(tp)?).acls.entry(init.to_string()).or_default();
                acl.userid = if *user == "NULL" { String::new() } else { user.to_string() };
                acl.password_sha1 = hash.to_string();
            }
            ["MLUN", iqn, tp, init, m, t] => {
                let (m, t) = (num(m)?, num(t)?);
                tpg_mut(&mut st, iqn, num(tp)?).acls.entry(init.to_string()).or_default().mapped.insert(m, t);
            }
            ["NP", iqn, tp, np] => tpg_mut(&mut st, iqn, num(tp)?).portals.push(np.to_string()),
            ["ATTR", iqn, tp, k, v] => {
                tpg_mut(&mut st, iqn, num(tp)?).attributes.insert(k.to_string(), v.to_string());
            }
            [""] => {}
            _ => return Err(bad()),
        }
    }
    Ok(st)
}

fn tpg_mut<'a>(st: &'a mut LioState, iqn: &str, tp: u32) -> &'a mut LioTpg {
    st.targets.entry(iqn.to_string()).or_default().entry(tp).or_default()
}

// ---------------------------------------------------------------- planning

/// Check a WWN the way rtslib does: `iqn.YYYY-MM.reversed.domain[:id]`, `naa.` or `eui.` + hex.
pub fn validate_wwn(w: &str) -> Result<(), String> {
    let iqn =
        regex::Regex::new(r"^iqn\.[0-9]{4}-(0[1-9]|1[0-2])\.[a-z0-9][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)+(:[^\s]+)?$")
            .map_err(|e| e.to_string())?;
    let hex =
        regex::Regex::new(r"^(naa\.[0-9a-f]{16}([0-9a-f]{16})?|eui\.[0-9a-f]{16})$").map_err(|e| e.to_string())?;
    if w != w.to_ascii_lowercase() {
        return Err(format!("{w:?}: use lowercase (LIO lowercases WWNs, so it would never match)"));
    }
    if iqn.is_match(w) || hex.is_match(w) {
        return Ok(());
    }
    Err(format!(
        "{w:?} is not a valid iSCSI name: expected iqn.YYYY-MM.reversed.domain[:identifier] \
         (e.g. iqn.2024-01.lan.storage:pi3), naa.<hex> or eui.<hex>"
    ))
}

fn lun_no(i: usize, l: &Lun) -> u32 {
    l.lun.unwrap_or(i as u32)
}

fn bs_path(p: &TargetcliParams, name: &str) -> String {
    let kind = p.backstores.iter().find(|b| b.name == name).map(|b| b.kind.name()).unwrap_or("block");
    format!("/backstores/{kind}/{name}")
}

fn sha1(s: &str) -> String {
    hex::encode(Sha1::digest(s.as_bytes()))
}

/// The steps from `st` to `p`; each step's `script` is targetcli input. Pure.
pub fn steps(p: &TargetcliParams, st: &LioState) -> Result<Vec<Step>, ModuleError> {
    let mut steps = vec![];
    // Removals first, when purging.
    if p.purge {
        for iqn in st.targets.keys() {
            if !p.targets.iter().any(|t| &t.iqn == iqn) {
                steps
                    .push(Step::new(format!("target {iqn} is removed (not declared)"), format!("/iscsi delete {iqn}")));
            }
        }
        for b in &st.backstores {
            if !p.backstores.iter().any(|d| d.name == b.name && d.kind.name() == b.kind) {
                steps.push(Step::new(
                    format!("backstore {}/{} ({}) is removed (not declared)", b.kind, b.name, b.dev),
                    format!("/backstores/{} delete {}", b.kind, b.name),
                ));
            }
        }
    }
    for b in &p.backstores {
        match st.backstores.iter().find(|x| x.name == b.name && x.kind == b.kind.name()) {
            Some(x) if x.dev == b.dev => {}
            Some(x) => {
                return Err(ModuleError::new(format!(
                    "backstore {}/{} exports {}, not {}: remove it first (or purge it by not declaring it)",
                    x.kind, x.name, x.dev, b.dev
                )));
            }
            None => {
                let cmd = match b.kind {
                    BackstoreType::Block => format!("/backstores/block create name={} dev={}", b.name, b.dev),
                    BackstoreType::Fileio => {
                        let size = match &b.size {
                            Some(s) => format!(" size={}", su::parse_bytes(s).map_err(ModuleError::new)?),
                            None => String::new(),
                        };
                        format!("/backstores/fileio create name={} file_or_dev={}{size}", b.name, b.dev)
                    }
                };
                steps.push(Step::new(format!("backstore {}/{} exports {}", b.kind.name(), b.name, b.dev), cmd));
            }
        }
    }
    for t in &p.targets {
        let iqn = &t.iqn;
        let have = st.targets.get(iqn).and_then(|g| g.get(&t.tpg));
        let empty = LioTpg::default();
        let cur = have.unwrap_or(&empty);
        let tp = format!("/iscsi/{iqn}/tpg{}", t.tpg);
        if have.is_none() {
            let cmd = if st.targets.contains_key(iqn) {
                format!("/iscsi/{iqn} create {}", t.tpg)
            } else if t.tpg == 1 {
                format!("/iscsi create {iqn}")
            } else {
                format!("/iscsi create {iqn}\n/iscsi/{iqn} delete 1\n/iscsi/{iqn} create {}", t.tpg)
            };
            steps.push(Step::new(format!("iSCSI target {iqn} (TPG {}) is created", t.tpg), cmd));
        }
        // LUNs
        let mut want_luns: BTreeMap<u32, String> = BTreeMap::new();
        for (i, l) in t.luns.iter().enumerate() {
            let kind = p.backstores.iter().find(|b| b.name == l.backstore).map(|b| b.kind.name()).unwrap_or("block");
            want_luns.insert(lun_no(i, l), format!("{kind}/{}", l.backstore));
        }
        for (n, so) in &cur.luns {
            let stale = want_luns.get(n).is_some_and(|w| w != so);
            if stale || (p.purge && !want_luns.contains_key(n)) {
                steps.push(Step::new(format!("{iqn} LUN {n} ({so}) is removed"), format!("{tp}/luns delete lun={n}")));
            }
        }
        for (i, l) in t.luns.iter().enumerate() {
            let n = lun_no(i, l);
            if cur.luns.get(&n) != want_luns.get(&n) {
                steps.push(Step::new(
                    format!("{iqn} LUN {n} exports backstore {}", l.backstore),
                    format!("{tp}/luns create {} lun={n}", bs_path(p, &l.backstore)),
                ));
            }
        }
        // Portals
        let want_np: Vec<String> = match &t.portals {
            Some(v) => v.iter().map(|x| format!("{}:{}", x.ip, x.port)).collect(),
            None => vec!["0.0.0.0:3260".into()],
        };
        for np in &cur.portals {
            if want_np.contains(np) {
                continue;
            }
            let (ip, port) = np.rsplit_once(':').unwrap_or((np, "3260"));
            // A wildcard portal keeps the port busy for a specific address on it.
            let conflicts = ip == "0.0.0.0" && want_np.iter().any(|w| w.ends_with(&format!(":{port}")));
            if p.purge || conflicts {
                let why = if conflicts { " (it holds the port a declared portal needs)" } else { "" };
                steps.push(Step::new(
                    format!("{iqn} stops listening on {np}{why}"),
                    format!("{tp}/portals delete {ip} {port}"),
                ));
            }
        }
        for np in &want_np {
            if !cur.portals.contains(np) {
                let (ip, port) = np.rsplit_once(':').unwrap_or((np, "3260"));
                steps.push(Step::new(format!("{iqn} listens on {np}"), format!("{tp}/portals create {ip} {port}")));
            }
        }
        // ACLs
        if p.purge {
            for init in cur.acls.keys() {
                if !t.acls.iter().any(|a| &a.initiator == init) {
                    steps.push(Step::new(
                        format!("{iqn}: initiator {init} loses access (ACL removed)"),
                        format!("{tp}/acls delete {init}"),
                    ));
                }
            }
        }
        for a in &t.acls {
            let init = &a.initiator;
            let have_acl = cur.acls.get(init);
            let base = format!("{tp}/acls/{init}");
            if have_acl.is_none() {
                steps.push(Step::new(
                    format!("{iqn}: initiator {init} is allowed in (ACL)"),
                    format!("{tp}/acls create {init}"),
                ));
            }
            let empty_acl = LioAcl::default();
            let ha = have_acl.unwrap_or(&empty_acl);
            let want_m: Vec<u32> = a.mapped_luns.clone().unwrap_or_else(|| want_luns.keys().copied().collect());
            for (m, tl) in &ha.mapped {
                if (want_m.contains(m) && tl != m) || (p.purge && !want_m.contains(m)) {
                    steps
                        .push(Step::new(format!("{iqn}: {init} no longer sees LUN {m}"), format!("{base} delete {m}")));
                }
            }
            for m in &want_m {
                if ha.mapped.get(m) != Some(m) {
                    steps.push(Step::new(
                        format!("{iqn}: {init} sees LUN {m}"),
                        format!("{base} create mapped_lun={m} tpg_lun_or_backstore={m}"),
                    ));
                }
            }
            if let Some(u) = &a.chap_userid {
                let pw = a.chap_password.as_ref().map(|x| sha1(x.expose())).unwrap_or_default();
                if &ha.userid != u || (a.chap_password.is_some() && ha.password_sha1 != pw) {
                    let secret =
                        a.chap_password.as_ref().map(|x| format!(" password={}", x.expose())).unwrap_or_default();
                    steps.push(
                        Step::new(
                            format!("{iqn}: {init} must log in with CHAP user {u} (password set, not shown)"),
                            format!("{base} set auth userid={u}{secret}"),
                        )
                        .with_diff(Diff::state(
                            &format!("{iqn} ACL {init}"),
                            &[("chap_userid".into(), ha.userid.clone())],
                            &[("chap_userid".into(), u.clone())],
                        )),
                    );
                }
            }
        }
        // Attributes
        let mut changed = vec![];
        let mut before = vec![];
        let mut after = vec![];
        for (k, v) in &t.attributes {
            let h = cur.attributes.get(k).cloned();
            if h.as_deref() != Some(v.0.as_str()) {
                changed.push(format!("{k}={}", v.0));
                before.push((k.clone(), h.unwrap_or_else(|| "unset".into())));
                after.push((k.clone(), v.0.clone()));
            }
        }
        if !changed.is_empty() {
            steps.push(
                Step::new(
                    format!("{iqn} TPG {} attributes: {}", t.tpg, changed.join(", ")),
                    format!("{tp} set attribute {}", changed.join(" ")),
                )
                .with_diff(Diff::state(&format!("{iqn} tpg{}", t.tpg), &before, &after)),
            );
        }
    }
    Ok(steps)
}

/// The targetcli input for `steps`.
pub fn batch(p: &TargetcliParams, steps: &[Step]) -> String {
    let mut b =
        String::from("set global auto_add_default_portal=false auto_add_mapped_luns=false auto_save_on_exit=false\n");
    for s in steps {
        b.push_str(&s.script);
        b.push('\n');
    }
    if p.saveconfig {
        b.push_str("saveconfig\n");
    }
    b.push_str("exit\n");
    b
}

pub struct Targetcli;

async fn probe_lio(host: &ReadHost) -> Result<LioState, ModuleError> {
    let out = host.query_sh(PROBE_SCRIPT).await?;
    if out.rc != 0 {
        return Err(ModuleError::new(format!("cannot read the LIO configuration: {}", out.stderr_str().trim())));
    }
    parse_probe(&out.stdout_str()).map_err(ModuleError::new)
}

#[async_trait]
impl Module for Targetcli {
    type Params = TargetcliParams;
    type State = LioState;
    const NAME: &'static str = "targetcli";

    fn doc(&self) -> Doc {
        Doc {
            description: "Declarative LIO iSCSI target state: backstores, targets with LUNs, ACLs (with CHAP; \
                          passwords are redacted everywhere), portals and TPG attributes. The running state is \
                          read from configfs; changes go to targetcli in one batch, then are saved \
                          (`saveconfig`). What is not declared is left alone unless `purge: true`. targetcli's \
                          automatic default portal and LUN mapping are turned off so that what exists is what is \
                          declared.",
            examples: r#"- name: Export each Pi's LV
  targetcli:
    backstores:
      - { name: pi3, dev: /dev/pis/pi3 }
    targets:
      - iqn: iqn.2024-01.lan.storage:pi3
        luns: [{ backstore: pi3 }]
        acls:
          - initiator: iqn.2024-01.lan.pi3:initiator
            chap_userid: pi3
            chap_password: "{{ vault_pi3_chap }}"
        portals: [{ ip: 0.0.0.0 }]
"#,
        }
    }

    fn validate(&self, p: &TargetcliParams) -> Result<(), String> {
        for t in &p.targets {
            validate_wwn(&t.iqn)?;
            for a in &t.acls {
                validate_wwn(&a.initiator)?;
                if a.chap_password.is_some() && a.chap_userid.is_none() {
                    return Err(format!("ACL {}: chap_password needs chap_userid", a.initiator));
                }
                if let Some(pw) = &a.chap_password
                    && (pw.expose().len() < 12 || pw.expose().chars().any(char::is_whitespace))
                {
                    return Err(format!("ACL {}: CHAP passwords must be 12+ characters without spaces", a.initiator));
                }
            }
            let mut seen = std::collections::BTreeSet::new();
            for (i, l) in t.luns.iter().enumerate() {
                if !p.backstores.iter().any(|b| b.name == l.backstore) {
                    return Err(format!(
                        "target {}: LUN uses backstore {:?}, which is not declared",
                        t.iqn, l.backstore
                    ));
                }
                if !seen.insert(lun_no(i, l)) {
                    return Err(format!("target {}: LUN {} is declared twice", t.iqn, lun_no(i, l)));
                }
            }
        }
        for b in &p.backstores {
            if b.name.is_empty() || !b.name.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c)) {
                return Err(format!("invalid backstore name {:?}", b.name));
            }
            if let Some(s) = &b.size {
                su::parse_bytes(s)?;
            }
        }
        Ok(())
    }

    async fn probe(&self, _ctx: &Ctx<'_>, _p: &TargetcliParams, host: &ReadHost) -> Result<LioState, ModuleError> {
        probe_lio(host).await
    }

    fn plan(&self, p: &TargetcliParams, st: &LioState) -> Result<Plan, ModuleError> {
        let steps = steps(p, st)?;
        let mut plan = su::to_plan(&steps);
        // one targetcli batch makes them all; its input holds the CHAP passwords, never shown
        plan.ops = vec![];
        if !steps.is_empty() {
            plan.op(Op::Run {
                what: "targetcli batch".into(),
                script: "targetcli".into(),
                stdin: Some(batch(p, &steps).into_bytes()),
                makes: vec![],
                removes: vec![],
            });
        }
        Ok(plan)
    }

    /// Runs the plan's ops (the batch) with the passwords kept out of its error message.
    async fn apply(
        &self,
        _ctx: &Ctx<'_>,
        p: &TargetcliParams,
        _st: &LioState,
        plan: &Plan,
        host: &Host,
    ) -> Result<Outcome, ModuleError> {
        pbr_core::op::run_ops(host, &plan.ops).await.map_err(|e| ModuleError { msg: redact(&e.msg, p), ..e })
    }

    /// targetcli says little when a command of a batch fails: what is left undone is read back.
    async fn report(
        &self,
        p: &TargetcliParams,
        _st: &LioState,
        host: &ReadHost,
    ) -> Result<Map<String, Value>, ModuleError> {
        let left = steps(p, &probe_lio(host).await?)?;
        if !left.is_empty() {
            let todo: Vec<String> = left.iter().map(|x| x.summary.clone()).collect();
            return Err(ModuleError::new(format!("targetcli left undone: {}", todo.join("; "))));
        }
        Ok(Map::new())
    }

    fn data(&self, p: &TargetcliParams, st: &LioState) -> Map<String, Value> {
        let mut m = Map::new();
        let targets: Vec<Value> = p
            .targets
            .iter()
            .filter_map(|t| st.targets.get(&t.iqn).map(|g| (t, g)))
            .map(|(t, g)| {
                let luns = g.get(&t.tpg).map(|x| x.luns.len()).unwrap_or(0);
                serde_json::json!({"iqn": t.iqn, "luns": luns})
            })
            .collect();
        m.insert("targets".into(), Value::Array(targets));
        m
    }
}

/// Remove declared passwords from a text.
fn redact(text: &str, p: &TargetcliParams) -> String {
    let mut t = text.to_string();
    for a in p.targets.iter().flat_map(|t| &t.acls) {
        if let Some(pw) = &a.chap_password
            && !pw.expose().is_empty()
        {
            t = t.replace(pw.expose(), "<redacted>");
        }
    }
    t
}
