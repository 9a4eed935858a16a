//! Helpers shared by the storage modules: sizes, LVM JSON reports, device signatures, and plans
//! made of steps (a summary said in words plus the script that performs it).

use pbr_core::{Change, ChangeKind, Diff, ModuleError, Op, Plan, ReadHost, sh_quote};
use serde_json::Value;

/// One change of a storage plan: what it means and the script that does it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What the step does to its object: by default read from the command that does it (see
    /// [`kind_of`]), or set with [`Step::kind`].
    pub kind: ChangeKind,
    pub summary: String,
    pub script: String,
    /// Script input (e.g. a targetcli batch with secrets): never shown.
    pub stdin: Option<String>,
    pub diff: Option<Diff>,
}

impl Step {
    pub fn new(summary: impl Into<String>, script: impl Into<String>) -> Step {
        let script = script.into();
        Step { kind: kind_of(&script), summary: summary.into(), script, stdin: None, diff: None }
    }
    pub fn kind(mut self, k: ChangeKind) -> Step {
        self.kind = k;
        self
    }
    pub fn with_diff(mut self, d: Diff) -> Step {
        self.diff = Some(d);
        self
    }
    pub fn with_stdin(mut self, s: String) -> Step {
        self.stdin = Some(s);
        self
    }
}

/// The kind of a step's change, from the storage command its script starts with: the tools that
/// make something (`lvcreate`, `vgcreate`, `pvcreate`, `mkfs*`, `make-bcache`, `vdo create`)
/// give `+`, those that take it away (`lvremove`, `vgremove`, `pvremove`, `vdo remove`,
/// `wipefs`) give `-`, anything else `~`.
pub fn kind_of(script: &str) -> ChangeKind {
    let mut words = script.split_whitespace().filter(|w| !w.contains('='));
    match (words.next().unwrap_or(""), words.next().unwrap_or("")) {
        ("lvcreate" | "vgcreate" | "pvcreate" | "make-bcache", _) | ("vdo", "create") => ChangeKind::Create,
        (w, _) if w.starts_with("mkfs") => ChangeKind::Create,
        ("lvremove" | "vgremove" | "pvremove" | "wipefs", _) | ("vdo", "remove") => ChangeKind::Remove,
        _ => ChangeKind::Update,
    }
}

/// The plan of a list of steps: a change and a script op for each, run in order (the first
/// failure stops, naming the step).
pub fn to_plan(steps: &[Step]) -> Plan {
    let mut plan = Plan::empty();
    for s in steps {
        let mut c = Change { kind: s.kind, ..Change::new(s.summary.clone()) };
        if let Some(d) = &s.diff {
            c = c.with_diff(d.clone());
        }
        plan.push(c);
        plan.op(Op::Run {
            what: s.summary.clone(),
            script: s.script.clone(),
            stdin: s.stdin.as_ref().map(|i| i.as_bytes().to_vec()),
            makes: vec![],
            removes: vec![],
        });
    }
    plan
}

const KIB: u64 = 1024;

/// Parse an absolute size such as `10G`, `512M`, `1.5T`, `4096b`, `8s` (sectors). Units are
/// powers of 1024 whatever their case, as LVM reads them; a bare number is MiB, as in LVM.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t.strip_suffix("iB").or_else(|| t.strip_suffix("ib")).unwrap_or(t);
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!("invalid size {s:?}: expected a number with a unit such as 10G or 512M"));
    }
    let mult: u64 = match unit.trim() {
        "" | "m" | "M" => KIB * KIB,
        "b" | "B" => 1,
        "s" | "S" => 512,
        "k" | "K" => KIB,
        "g" | "G" => KIB.pow(3),
        "t" | "T" => KIB.pow(4),
        "p" | "P" => KIB.pow(5),
        u => return Err(format!("invalid size {s:?}: unknown unit {u:?} (use b, s, K, M, G, T or P)")),
    };
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(mult).ok_or_else(|| format!("size {s:?} is too large"));
    }
    let f: f64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    if !f.is_finite() || f < 0.0 {
        return Err(format!("invalid size {s:?}"));
    }
    Ok((f * mult as f64).round() as u64)
}

/// A size for an LV: bytes, or a percentage of something LVM knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeSpec {
    Bytes(u64),
    /// `N%FREE`: of the VG's free space.
    PctFree(u32),
    /// `N%VG`: of the VG's whole size.
    PctVg(u32),
    /// `N%PVS`: of the free space of the PVs given.
    PctPvs(u32),
}

impl SizeSpec {
    pub fn parse(s: &str) -> Result<SizeSpec, String> {
        if let Some((n, what)) = s.trim().split_once('%') {
            let pct: u32 = n.trim().parse().map_err(|_| format!("invalid size {s:?}"))?;
            if pct == 0 || pct > 100 {
                return Err(format!("invalid size {s:?}: the percentage must be 1..100"));
            }
            return match what.trim().to_ascii_uppercase().as_str() {
                "FREE" => Ok(SizeSpec::PctFree(pct)),
                "VG" => Ok(SizeSpec::PctVg(pct)),
                "PVS" => Ok(SizeSpec::PctPvs(pct)),
                w => Err(format!("invalid size {s:?}: {w:?} is not FREE, VG or PVS")),
            };
        }
        parse_bytes(s).map(SizeSpec::Bytes)
    }

    /// The `-L`/`-l` option for lvcreate.
    pub fn lvm_arg(&self) -> String {
        match self {
            SizeSpec::Bytes(b) => format!("-L {b}b"),
            SizeSpec::PctFree(p) => format!("-l {p}%FREE"),
            SizeSpec::PctVg(p) => format!("-l {p}%VG"),
            SizeSpec::PctPvs(p) => format!("-l {p}%PVS"),
        }
    }
}

/// `10737418240` -> `10 GiB`; `1610612736` -> `1.5 GiB`.
pub fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if (v - v.round()).abs() < 0.005 {
        format!("{} {}", v.round() as u64, units[i])
    } else {
        format!("{v:.2} {}", units[i])
    }
}

/// Round up to a multiple of `unit` (LVM rounds sizes up to whole extents).
pub fn round_up(bytes: u64, unit: u64) -> u64 {
    if unit == 0 { bytes } else { bytes.div_ceil(unit) * unit }
}

// ---------------------------------------------------------------- LVM reports

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pv {
    pub name: String,
    /// The device it resolves to (`readlink -f`), e.g. `/dev/dm-3` for `/dev/vdo/dedup`.
    pub real: String,
    pub vg: String,
    pub size: u64,
    pub free: u64,
    pub used: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vg {
    pub name: String,
    pub size: u64,
    pub free: u64,
    pub extent_size: u64,
    pub pv_count: u64,
    pub lv_count: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lv {
    pub vg: String,
    /// Name without brackets (hidden LVs are reported as `[name]`).
    pub name: String,
    pub hidden: bool,
    pub attr: String,
    pub size: u64,
    pub segtype: String,
    pub pool_lv: String,
    pub active: bool,
    pub cache_mode: String,
    pub devices: String,
    pub vdo_compression: String,
    pub vdo_deduplication: String,
    pub vdo_saving_percent: String,
    pub vdo_operating_mode: String,
    pub data_percent: String,
}

/// All of LVM, as one probe sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LvmReport {
    pub pvs: Vec<Pv>,
    pub vgs: Vec<Vg>,
    pub lvs: Vec<Lv>,
}

impl LvmReport {
    pub fn vg(&self, name: &str) -> Option<&Vg> {
        self.vgs.iter().find(|v| v.name == name)
    }
    pub fn pv(&self, dev: &str) -> Option<&Pv> {
        self.pvs.iter().find(|p| p.name == dev || (!p.real.is_empty() && p.real == dev))
    }
    pub fn lv(&self, vg: &str, name: &str) -> Option<&Lv> {
        self.lvs.iter().find(|l| l.vg == vg && l.name == name)
    }
    pub fn lvs_of(&self, vg: &str) -> impl Iterator<Item = &Lv> {
        self.lvs.iter().filter(move |l| l.vg == vg && !l.hidden)
    }
    pub fn pvs_of(&self, vg: &str) -> impl Iterator<Item = &Pv> {
        self.pvs.iter().filter(move |p| p.vg == vg)
    }
}

pub const PV_FIELDS: &str = "pv_name,vg_name,pv_size,pv_free,pv_used";
pub const VG_FIELDS: &str = "vg_name,vg_size,vg_free,vg_extent_size,pv_count,lv_count";
pub const LV_FIELDS: &str = "vg_name,lv_name,lv_attr,lv_size,segtype,pool_lv,lv_active,cache_mode,devices,\
                             vdo_compression,vdo_deduplication,vdo_saving_percent,vdo_operating_mode,data_percent";

/// The script that prints the three reports, each after a marker line.
pub fn lvm_report_script() -> String {
    let common = "--reportformat json --units b --nosuffix --binary";
    format!(
        "export LC_ALL=C\ncommand -v pvs >/dev/null 2>&1 || {{ echo 'lvm2 is not installed (no pvs command)' >&2; exit 3; }}\n\
         echo '@@PVS'; pvs {common} -o {PV_FIELDS} || exit $?\n\
         echo '@@VGS'; vgs {common} -o {VG_FIELDS} || exit $?\n\
         echo '@@LVS'; lvs -a {common} -o {LV_FIELDS} || exit $?\n\
         echo '@@REAL'; pvs --noheadings -o pv_name 2>/dev/null | while read -r n; do \
         printf '%s\\t%s\\n' \"$n\" \"$(readlink -f -- \"$n\")\"; done\n"
    )
}

/// Run [`lvm_report_script`] and parse it.
pub async fn lvm_report(host: &ReadHost) -> Result<LvmReport, ModuleError> {
    let out = host.query_sh(lvm_report_script()).await?;
    if out.rc != 0 {
        return Err(ModuleError::new(format!("cannot read the LVM state: {}", out.stderr_str().trim())));
    }
    parse_lvm_report(&out.stdout_str()).map_err(ModuleError::new)
}

fn section<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    let start = text.find(marker)? + marker.len();
    let rest = &text[start..];
    let end = rest.find("@@").unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Rows of one report kind (`pv`, `vg`, `lv`) from `--reportformat json` output.
pub fn report_rows(json: &str, kind: &str) -> Result<Vec<serde_json::Map<String, Value>>, String> {
    let json = json.trim();
    if json.is_empty() {
        return Ok(vec![]);
    }
    let v: Value = serde_json::from_str(json).map_err(|e| format!("cannot parse the LVM {kind} report: {e}"))?;
    let mut rows = vec![];
    let reports =
        v.get("report").and_then(Value::as_array).ok_or_else(|| format!("LVM {kind} report has no `report`"))?;
    for r in reports {
        if let Some(items) = r.get(kind).and_then(Value::as_array) {
            for i in items {
                if let Some(o) = i.as_object() {
                    rows.push(o.clone());
                }
            }
        }
    }
    Ok(rows)
}

fn s(row: &serde_json::Map<String, Value>, k: &str) -> String {
    match row.get(k) {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn n(row: &serde_json::Map<String, Value>, k: &str) -> Result<u64, String> {
    let v = s(row, k);
    let v = v.trim_end_matches(['B', 'b']);
    if v.is_empty() {
        return Ok(0);
    }
    v.parse::<u64>()
        .or_else(|_| v.parse::<f64>().map(|f| f as u64))
        .map_err(|_| format!("LVM field {k} is not a number: {v:?}"))
}

/// Parse the output of [`lvm_report_script`].
pub fn parse_lvm_report(text: &str) -> Result<LvmReport, String> {
    let mut rep = LvmReport::default();
    for row in report_rows(section(text, "@@PVS").unwrap_or(""), "pv")? {
        rep.pvs.push(Pv {
            name: s(&row, "pv_name"),
            real: String::new(),
            vg: s(&row, "vg_name"),
            size: n(&row, "pv_size")?,
            free: n(&row, "pv_free")?,
            used: n(&row, "pv_used")?,
        });
    }
    for line in section(text, "@@REAL").unwrap_or("").lines() {
        if let Some((name, real)) = line.trim().split_once('\t') {
            for pv in rep.pvs.iter_mut().filter(|p| p.name == name.trim()) {
                pv.real = real.trim().to_string();
            }
        }
    }
    for row in report_rows(section(text, "@@VGS").unwrap_or(""), "vg")? {
        rep.vgs.push(Vg {
            name: s(&row, "vg_name"),
            size: n(&row, "vg_size")?,
            free: n(&row, "vg_free")?,
            extent_size: n(&row, "vg_extent_size")?,
            pv_count: n(&row, "pv_count")?,
            lv_count: n(&row, "lv_count")?,
        });
    }
    for row in report_rows(section(text, "@@LVS").unwrap_or(""), "lv")? {
        let raw = s(&row, "lv_name");
        let hidden = raw.starts_with('[');
        let strip = |x: String| x.trim_start_matches('[').trim_end_matches(']').to_string();
        rep.lvs.push(Lv {
            vg: s(&row, "vg_name"),
            name: strip(raw),
            hidden,
            attr: s(&row, "lv_attr"),
            size: n(&row, "lv_size")?,
            segtype: s(&row, "segtype"),
            pool_lv: strip(s(&row, "pool_lv")),
            active: matches!(s(&row, "lv_active").as_str(), "active" | "1"),
            cache_mode: s(&row, "cache_mode"),
            devices: s(&row, "devices"),
            vdo_compression: s(&row, "vdo_compression"),
            vdo_deduplication: s(&row, "vdo_deduplication"),
            vdo_saving_percent: s(&row, "vdo_saving_percent"),
            vdo_operating_mode: s(&row, "vdo_operating_mode"),
            data_percent: s(&row, "data_percent"),
        });
    }
    Ok(rep)
}

/// LVM binary fields read with `--binary` are `1`/`0`; without it `enabled`/`` or words.
pub fn lvm_flag(v: &str) -> bool {
    matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "enabled" | "yes" | "y" | "online")
}

// ---------------------------------------------------------------- devices and signatures

/// A signature on a device, as `wipefs` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub kind: String,
    pub offset: String,
    pub label: Option<String>,
    pub uuid: Option<String>,
}

impl std::fmt::Display for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.kind)?;
        let mut extra = vec![];
        if let Some(l) = &self.label {
            extra.push(format!("label {l:?}"));
        }
        if let Some(u) = &self.uuid {
            extra.push(format!("UUID {u}"));
        }
        extra.push(format!("at offset {}", self.offset));
        write!(f, " ({})", extra.join(", "))
    }
}

/// Parse `wipefs --json DEV` (an empty output means no signature).
pub fn parse_wipefs_json(text: &str) -> Result<Vec<Signature>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(vec![]);
    }
    let v: Value = serde_json::from_str(t).map_err(|e| format!("cannot parse wipefs output: {e}"))?;
    let opt = |x: Option<&Value>| x.and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    Ok(v.get("signatures")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|sig| Signature {
                    kind: opt(sig.get("type")).unwrap_or_else(|| "unknown".into()),
                    offset: opt(sig.get("offset")).unwrap_or_default(),
                    label: opt(sig.get("label")),
                    uuid: opt(sig.get("uuid")),
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Signatures in words: `xfs (UUID ..., at offset 0x0), dos (at offset 0x1fe)`.
pub fn describe(sigs: &[Signature]) -> String {
    sigs.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
}

/// What a probe learned about a block device (or a regular file used as one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The path as given.
    pub path: String,
    /// The resolved path (`readlink -f`).
    pub real: String,
    pub exists: bool,
    /// "block", "file" or "other".
    pub kind: String,
    pub size: u64,
    pub signatures: Vec<Signature>,
}

impl DeviceInfo {
    /// Kernel name (`vdb`, `dm-3`).
    pub fn kname(&self) -> &str {
        self.real.rsplit('/').next().unwrap_or("")
    }
    pub fn has(&self, kind: &str) -> bool {
        self.signatures.iter().any(|s| s.kind == kind)
    }
    /// Signatures other than those of the given kinds.
    pub fn foreign(&self, ours: &[&str]) -> Vec<Signature> {
        self.signatures.iter().filter(|s| !ours.contains(&s.kind.as_str())).cloned().collect()
    }
}

/// The shell fragment probing one device; prints `@@DEV`, path, real path, kind, size, then
/// wipefs JSON.
pub fn device_script(path: &str) -> String {
    format!(
        "d={p}; echo '@@DEV'; printf '%s\\n' \"$d\"; r=$(readlink -f -- \"$d\" 2>/dev/null || printf '%s' \"$d\"); \
         printf '%s\\n' \"$r\"; if [ -b \"$r\" ]; then echo block; blockdev --getsize64 \"$r\" 2>/dev/null || echo 0; \
         wipefs --json \"$r\" 2>/dev/null || true; elif [ -f \"$r\" ]; then echo file; stat -c %s -- \"$r\"; \
         wipefs --json \"$r\" 2>/dev/null || true; elif [ -e \"$r\" ]; then echo other; echo 0; else echo absent; echo 0; fi\n",
        p = sh_quote(path)
    )
}

/// Parse the output of one or more [`device_script`]s.
pub fn parse_devices(text: &str) -> Result<Vec<DeviceInfo>, String> {
    let mut out = vec![];
    for chunk in text.split("@@DEV\n").skip(1) {
        let chunk = chunk.split("\n@@").next().unwrap_or(chunk);
        let mut lines = chunk.splitn(5, '\n');
        let path = lines.next().unwrap_or("").to_string();
        let real = lines.next().unwrap_or("").to_string();
        let kind = lines.next().unwrap_or("absent").trim().to_string();
        let size = lines.next().unwrap_or("0").trim().parse().unwrap_or(0);
        let rest = lines.next().unwrap_or("");
        let exists = kind != "absent";
        let signatures = if exists { parse_wipefs_json(rest)? } else { vec![] };
        out.push(DeviceInfo { path, real, exists, kind, size, signatures });
    }
    Ok(out)
}

/// Probe devices in one query.
pub async fn probe_devices(host: &ReadHost, paths: &[&str]) -> Result<Vec<DeviceInfo>, ModuleError> {
    if paths.is_empty() {
        return Ok(vec![]);
    }
    let script: String = paths.iter().map(|p| device_script(p)).collect();
    let out = host.query_sh(format!("export LC_ALL=C\n{script}")).await?;
    if out.rc != 0 {
        return Err(ModuleError::new(format!("cannot inspect {}: {}", paths.join(", "), out.stderr_str().trim())));
    }
    parse_devices(&out.stdout_str()).map_err(ModuleError::new)
}

/// The refusal of a destructive step on a device that holds signatures.
pub fn refuse_signatures(action: &str, dev: &DeviceInfo, sigs: &[Signature]) -> ModuleError {
    ModuleError::new(format!(
        "refusing to {action}: {} holds {}; set force: true to destroy it",
        dev.path,
        describe(sigs)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("10G").unwrap(), 10 << 30);
        assert_eq!(parse_bytes("10g").unwrap(), 10 << 30);
        assert_eq!(parse_bytes("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("512").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("4096b").unwrap(), 4096);
        assert_eq!(parse_bytes("2GiB").unwrap(), 2 << 30);
        assert!(parse_bytes("G").is_err());
        assert!(parse_bytes("10X").is_err());
        assert_eq!(SizeSpec::parse("100%FREE").unwrap(), SizeSpec::PctFree(100));
        assert_eq!(SizeSpec::parse("50%vg").unwrap(), SizeSpec::PctVg(50));
        assert!(SizeSpec::parse("150%FREE").is_err());
        assert!(SizeSpec::parse("5%ORIGIN").is_err());
        assert_eq!(human(10 << 30), "10 GiB");
        assert_eq!(human(3 << 29), "1.50 GiB");
        assert_eq!(round_up(5, 4), 8);
    }

    #[test]
    fn devices_parse() {
        let text = "@@DEV\n/dev/disk/by-id/x\n/dev/vdb\nblock\n1073741824\n{\"signatures\": [{\"device\":\"vdb\",\
                    \"offset\":\"0x438\",\"type\":\"ext4\",\"uuid\":\"u1\",\"label\":null}]}\n@@DEV\n/dev/vdz\n/dev/vdz\nabsent\n0\n";
        let d = parse_devices(text).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].real, "/dev/vdb");
        assert_eq!(d[0].kname(), "vdb");
        assert_eq!(d[0].size, 1 << 30);
        assert_eq!(d[0].signatures[0].kind, "ext4");
        assert_eq!(d[0].signatures[0].to_string(), "ext4 (UUID u1, at offset 0x438)");
        assert!(!d[1].exists);
    }
}
