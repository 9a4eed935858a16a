//! `vdo`: a deduplicating (and optionally compressing) VDO volume: LVM-VDO by default, or the
//! EL8 `vdo` manager (`backend: legacy`).

use crate::storage_util::{self as su, DeviceInfo, LvmReport, Step};
use async_trait::async_trait;
use pbr_core::params::Presence;
use pbr_core::params::{bool_lenient, opt_bool_lenient};
use pbr_core::{Ctx, Diff, Doc, Module, ModuleError, Plan, ReadHost, sh_quote};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// LVM-VDO: a `vdo-pool` LV and its virtual LV in a volume group (lvm2 ≥ 2.03, kernel dm-vdo).
    #[default]
    Lvm,
    /// The `vdo` manager of EL8 (`vdo create --device`).
    Legacy,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VdoParams {
    /// Name of the VDO volume: the virtual LV (`/dev/VG/NAME`) or, with `backend: legacy`, the
    /// volume (`/dev/mapper/NAME`).
    pub name: String,
    /// Volume group holding the pool (LVM backend).
    #[serde(default)]
    pub vg: Option<String>,
    /// Name of the VDO pool LV (LVM backend); default `NAME_pool`.
    #[serde(default)]
    pub pool: Option<String>,
    /// Physical size of the pool (`lvcreate -L`, LVM backend), e.g. `10G`; grown in place.
    #[serde(default)]
    pub size: Option<String>,
    /// Logical (virtual) size offered to users (`-V` / `--vdoLogicalSize`), e.g. `30G`; grown in place.
    #[serde(default)]
    pub logical_size: Option<String>,
    /// Deduplication on or off; unset keeps what is there (new volumes: on). Changed in place.
    #[serde(default, deserialize_with = "opt_bool_lenient")]
    pub deduplication: Option<bool>,
    /// Compression on or off; unset keeps what is there (new volumes: the tool's default).
    /// Changed in place.
    #[serde(default, deserialize_with = "opt_bool_lenient")]
    pub compression: Option<bool>,
    /// `lvm` (default) or `legacy`.
    #[serde(default)]
    pub backend: Backend,
    /// Backing device (legacy backend).
    #[serde(default)]
    pub device: Option<String>,
    /// `present` (default) or `absent` (needs `force: true`: the data is destroyed).
    #[serde(default)]
    pub state: Presence,
    /// Needed to remove a volume, and (legacy) to create one on a device holding signatures.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub force: bool,
}

impl VdoParams {
    fn pool_name(&self) -> String {
        self.pool.clone().unwrap_or_else(|| format!("{}_pool", self.name))
    }
}

/// A VDO volume as the legacy `vdo status` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegacyVdo {
    pub name: String,
    pub device: String,
    pub logical_size: u64,
    pub physical_size: u64,
    pub compression: bool,
    pub deduplication: bool,
    pub saving_percent: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub enum VdoState {
    Lvm(LvmReport),
    Legacy {
        volume: Option<LegacyVdo>,
        device: Option<DeviceInfo>,
    },
    #[default]
    None,
}

pub struct Vdo;

fn yn(b: bool) -> &'static str {
    if b { "y" } else { "n" }
}

fn onoff(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

fn flags_words(dedup: Option<bool>, comp: Option<bool>) -> String {
    let mut w = vec![];
    if let Some(d) = dedup {
        w.push(format!("deduplication {}", onoff(d)));
    }
    if let Some(c) = comp {
        w.push(format!("compression {}", onoff(c)));
    }
    w.join(", ")
}

fn size_of(s: &Option<String>) -> Result<Option<u64>, ModuleError> {
    s.as_deref().map(su::parse_bytes).transpose().map_err(ModuleError::new)
}

/// The LVM-VDO steps. Pure.
pub fn lvm_steps(p: &VdoParams, lvm: &LvmReport) -> Result<Vec<Step>, ModuleError> {
    let vg = p.vg.as_deref().ok_or_else(|| ModuleError::new("vg is required with the lvm backend"))?;
    let pool = p.pool_name();
    let pfull = format!("{vg}/{pool}");
    let vfull = format!("{vg}/{}", p.name);
    let vlv = lvm.lv(vg, &p.name);
    let plv = lvm.lv(vg, &pool).filter(|l| l.segtype == "vdo-pool");
    if let Some(l) = vlv
        && l.segtype != "vdo"
    {
        return Err(ModuleError::new(format!("LV {vfull} exists and is not a VDO volume ({})", l.segtype)));
    }
    if p.state == Presence::Absent {
        let Some(pl) = plv else { return Ok(vec![]) };
        if !p.force {
            return Err(ModuleError::new(format!(
                "refusing to remove VDO pool {pfull} and its volume {vfull}: their data would be destroyed; set force: true"
            )));
        }
        return Ok(vec![Step::new(
            format!("VDO pool {pfull} ({}) and its volume {vfull} are removed", su::human(pl.size)),
            format!("lvremove -y {}", sh_quote(&pfull)),
        )]);
    }
    let size = size_of(&p.size)?;
    let lsize = size_of(&p.logical_size)?;
    let (Some(pl), Some(vl)) = (plv, vlv) else {
        let (Some(size), Some(lsize)) = (size, lsize) else {
            return Err(ModuleError::new(format!("VDO volume {vfull} does not exist: give size and logical_size")));
        };
        let mut args = String::new();
        if let Some(c) = p.compression {
            args.push_str(&format!(" --compression {}", yn(c)));
        }
        if let Some(d) = p.deduplication {
            args.push_str(&format!(" --deduplication {}", yn(d)));
        }
        let flags = flags_words(p.deduplication, p.compression);
        let mut summary = format!(
            "VDO pool {pfull} is created ({} of storage, {} logical as {vfull}{}{flags})",
            su::human(size),
            su::human(lsize),
            if flags.is_empty() { "" } else { "; " }
        );
        if lvm.vg(vg).is_none() {
            summary.push_str(&format!(" once VG {vg} exists"));
        }
        return Ok(vec![Step::new(
            summary,
            format!(
                "lvcreate -y --type vdo -n {} -L {size}b -V {lsize}b{args} {}",
                sh_quote(&p.name),
                sh_quote(&pfull)
            ),
        )]);
    };
    let mut steps = vec![];
    let ext = lvm.vg(vg).map(|v| v.extent_size).unwrap_or(1).max(1);
    if let Some(want) = size.map(|s| su::round_up(s, ext)) {
        if want > pl.size {
            steps.push(Step::new(
                format!("VDO pool {pfull} grows {} → {} (storage)", su::human(pl.size), su::human(want)),
                format!("lvextend -y -L {want}b {}", sh_quote(&pfull)),
            ));
        } else if want < pl.size {
            return Err(ModuleError::new(format!(
                "VDO pool {pfull} is {} and size asks for {}: VDO pools cannot shrink",
                su::human(pl.size),
                su::human(want)
            )));
        }
    }
    if let Some(want) = lsize {
        // The virtual size is a whole number of 4 KiB blocks and extents.
        let want = su::round_up(want, ext);
        if want > vl.size {
            steps.push(Step::new(
                format!("VDO volume {vfull} grows {} → {} (logical)", su::human(vl.size), su::human(want)),
                format!("lvextend -y -L {want}b {}", sh_quote(&vfull)),
            ));
        } else if want < vl.size {
            return Err(ModuleError::new(format!(
                "VDO volume {vfull} is {} and logical_size asks for {}: VDO volumes cannot shrink",
                su::human(vl.size),
                su::human(want)
            )));
        }
    }
    let cur_d = su::lvm_flag(&pl.vdo_deduplication);
    let cur_c = su::lvm_flag(&pl.vdo_compression);
    for (what, want, cur, opt) in [
        ("deduplication", p.deduplication, cur_d, "--deduplication"),
        ("compression", p.compression, cur_c, "--compression"),
    ] {
        if let Some(w) = want
            && w != cur
        {
            steps.push(
                Step::new(
                    format!("VDO pool {pfull}: {what} {} → {}", onoff(cur), onoff(w)),
                    format!("lvchange {opt} {} {}", yn(w), sh_quote(&pfull)),
                )
                .with_diff(Diff::state(
                    &format!("VDO pool {pfull}"),
                    &[(what.into(), onoff(cur).into())],
                    &[(what.into(), onoff(w).into())],
                )),
            );
        }
    }
    Ok(steps)
}

/// Parse the legacy `vdo status --name NAME` YAML: the volume's section under `VDOs:`.
pub fn parse_legacy_status(text: &str, name: &str) -> Option<LegacyVdo> {
    let mut in_vdos = false;
    let mut in_vol = false;
    let mut vol_indent = 0usize;
    let mut v = LegacyVdo { name: name.to_string(), ..Default::default() };
    let mut found = false;
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let t = line.trim();
        if indent == 0 {
            in_vdos = t == "VDOs:";
            in_vol = false;
            continue;
        }
        if !in_vdos {
            continue;
        }
        if !in_vol {
            if t.trim_end_matches(':') == name && t.ends_with(':') {
                in_vol = true;
                found = true;
                vol_indent = indent;
            }
            continue;
        }
        if indent <= vol_indent {
            in_vol = t.trim_end_matches(':') == name;
            continue;
        }
        let Some((k, val)) = t.split_once(':') else { continue };
        let val = val.trim().trim_matches('\'').trim_matches('"');
        match k.trim() {
            "Storage device" => v.device = val.to_string(),
            "Logical size" => v.logical_size = su::parse_bytes(val).unwrap_or(0),
            "Physical size" => v.physical_size = su::parse_bytes(val).unwrap_or(0),
            "Compression" => v.compression = val == "enabled",
            "Deduplication" => v.deduplication = val == "enabled",
            "saving percent" if val != "N/A" && !val.is_empty() => v.saving_percent = Some(val.to_string()),
            _ => {}
        }
    }
    found.then_some(v)
}

/// The legacy backend's steps. Pure.
pub fn legacy_steps(
    p: &VdoParams,
    vol: Option<&LegacyVdo>,
    dev: Option<&DeviceInfo>,
) -> Result<Vec<Step>, ModuleError> {
    let n = sh_quote(&p.name);
    if p.state == Presence::Absent {
        let Some(v) = vol else { return Ok(vec![]) };
        if !p.force {
            return Err(ModuleError::new(format!(
                "refusing to remove VDO volume {} on {}: its data would be destroyed; set force: true",
                p.name, v.device
            )));
        }
        return Ok(vec![Step::new(
            format!("VDO volume {} on {} is removed", p.name, v.device),
            format!("vdo remove --name={n}"),
        )]);
    }
    let lsize = size_of(&p.logical_size)?;
    let Some(v) = vol else {
        let device =
            p.device.as_deref().ok_or_else(|| ModuleError::new("device is required to create a VDO volume"))?;
        let lsize = lsize.ok_or_else(|| ModuleError::new("logical_size is required to create a VDO volume"))?;
        let mut script = String::new();
        let mut summary = format!("VDO volume {} is created on {device} ({} logical", p.name, su::human(lsize));
        if let Some(d) = dev {
            if !d.exists {
                return Err(ModuleError::new(format!("device {device} does not exist")));
            }
            if !d.signatures.is_empty() {
                if !p.force {
                    return Err(su::refuse_signatures(
                        &format!("create VDO volume {} on {device}", p.name),
                        d,
                        &d.signatures,
                    ));
                }
                summary.push_str(&format!(", destroying {}", su::describe(&d.signatures)));
                script.push_str(&format!("wipefs -a {}\n", sh_quote(device)));
            }
        }
        let flags = flags_words(p.deduplication, p.compression);
        if !flags.is_empty() {
            summary.push_str(&format!("; {flags}"));
        }
        summary.push(')');
        let mut args = format!("--name={n} --device={} --vdoLogicalSize={}K", sh_quote(device), lsize / 1024);
        if let Some(c) = p.compression {
            args.push_str(if c { " --compression=enabled" } else { " --compression=disabled" });
        }
        if let Some(d) = p.deduplication {
            args.push_str(if d { " --deduplication=enabled" } else { " --deduplication=disabled" });
        }
        script.push_str(&format!("vdo create {args}"));
        return Ok(vec![Step::new(summary, script)]);
    };
    let mut steps = vec![];
    if let Some(want) = lsize {
        if want > v.logical_size {
            steps.push(Step::new(
                format!("VDO volume {} grows {} → {} (logical)", p.name, su::human(v.logical_size), su::human(want)),
                format!("vdo growLogical --name={n} --vdoLogicalSize={}K", want / 1024),
            ));
        } else if want < v.logical_size {
            return Err(ModuleError::new(format!(
                "VDO volume {} is {} logical and logical_size asks for {}: VDO volumes cannot shrink",
                p.name,
                su::human(v.logical_size),
                su::human(want)
            )));
        }
    }
    for (what, want, cur, verb) in [
        ("deduplication", p.deduplication, v.deduplication, "Deduplication"),
        ("compression", p.compression, v.compression, "Compression"),
    ] {
        if let Some(w) = want
            && w != cur
        {
            let act = if w { "enable" } else { "disable" };
            steps.push(Step::new(
                format!("VDO volume {}: {what} {} → {}", p.name, onoff(cur), onoff(w)),
                format!("vdo {act}{verb} --name={n}"),
            ));
        }
    }
    Ok(steps)
}

fn steps(p: &VdoParams, st: &VdoState) -> Result<Vec<Step>, ModuleError> {
    match st {
        VdoState::Lvm(r) => lvm_steps(p, r),
        VdoState::Legacy { volume, device } => legacy_steps(p, volume.as_ref(), device.as_ref()),
        VdoState::None => Ok(vec![]),
    }
}

#[async_trait]
impl Module for Vdo {
    type Params = VdoParams;
    type State = VdoState;
    const NAME: &'static str = "vdo";

    fn doc(&self) -> Doc {
        Doc {
            description: "A VDO volume (block-level deduplication and compression). With the LVM backend: a \
                          `vdo-pool` LV of `size` in `vg` and its virtual LV `name` of `logical_size`; sizes \
                          grow in place (`lvextend`), deduplication and compression switch in place \
                          (`lvchange`). The result reports `saving_percent` (how much of the written data VDO \
                          saved). `backend: legacy` drives EL8's `vdo` manager on a whole `device`.",
            examples: r#"- name: Deduplicating pool for the Pi root disks
  vdo:
    vg: vdo
    pool: vpool
    name: dedup
    size: 10G
    logical_size: 40G
    deduplication: true
    compression: false

- name: EL8 vdo manager
  vdo:
    backend: legacy
    name: vdo1
    device: /dev/sdb
    logical_size: 100G
"#,
        }
    }

    fn validate(&self, p: &VdoParams) -> Result<(), String> {
        size_of(&p.size).map_err(|e| e.msg)?;
        size_of(&p.logical_size).map_err(|e| e.msg)?;
        match p.backend {
            Backend::Lvm if p.vg.is_none() => Err("vg is required with the lvm backend".into()),
            Backend::Lvm if p.device.is_some() => {
                Err("device is for backend: legacy; put the VG on it with lvg".into())
            }
            Backend::Legacy if p.vg.is_some() || p.pool.is_some() || p.size.is_some() => {
                Err("vg, pool and size are for the lvm backend".into())
            }
            _ => Ok(()),
        }
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &VdoParams, host: &ReadHost) -> Result<VdoState, ModuleError> {
        match p.backend {
            Backend::Lvm => Ok(VdoState::Lvm(su::lvm_report(host).await?)),
            Backend::Legacy => {
                let out =
                    host.query_sh(format!("LC_ALL=C vdo status --name={} 2>/dev/null", sh_quote(&p.name))).await?;
                let volume = parse_legacy_status(&out.stdout_str(), &p.name);
                let device = match (&volume, &p.device) {
                    (None, Some(d)) => su::probe_devices(host, &[d.as_str()]).await?.into_iter().next(),
                    _ => None,
                };
                Ok(VdoState::Legacy { volume, device })
            }
        }
    }

    fn plan(&self, p: &VdoParams, st: &VdoState) -> Result<Plan, ModuleError> {
        Ok(su::to_plan(&steps(p, st)?))
    }

    fn data(&self, p: &VdoParams, st: &VdoState) -> Map<String, Value> {
        let mut m = Map::new();
        match st {
            VdoState::Lvm(r) => {
                let vg = p.vg.clone().unwrap_or_default();
                if let Some(pl) = r.lv(&vg, &p.pool_name()) {
                    m.insert("device".into(), Value::from(format!("/dev/{vg}/{}", p.name)));
                    m.insert("size".into(), Value::from(pl.size));
                    m.insert("deduplication".into(), Value::from(su::lvm_flag(&pl.vdo_deduplication)));
                    m.insert("compression".into(), Value::from(su::lvm_flag(&pl.vdo_compression)));
                    if !pl.vdo_operating_mode.is_empty() {
                        m.insert("operating_mode".into(), Value::from(pl.vdo_operating_mode.clone()));
                    }
                    let saving = [
                        &pl.vdo_saving_percent,
                        &r.lv(&vg, &p.name).map(|l| l.vdo_saving_percent.clone()).unwrap_or_default(),
                    ]
                    .into_iter()
                    .find(|s| !s.is_empty())
                    .cloned();
                    if let Some(s) = saving {
                        m.insert("saving_percent".into(), Value::from(s.clone()));
                        m.insert("saving".into(), Value::from(format!("{}% saved", s.split('.').next().unwrap_or(&s))));
                    }
                    if !pl.data_percent.is_empty() {
                        m.insert("used_percent".into(), Value::from(pl.data_percent.clone()));
                    }
                }
                if let Some(vl) = r.lv(&vg, &p.name) {
                    m.insert("logical_size".into(), Value::from(vl.size));
                }
            }
            VdoState::Legacy { volume: Some(v), .. } => {
                m.insert("device".into(), Value::from(format!("/dev/mapper/{}", v.name)));
                m.insert("logical_size".into(), Value::from(v.logical_size));
                m.insert("size".into(), Value::from(v.physical_size));
                m.insert("deduplication".into(), Value::from(v.deduplication));
                m.insert("compression".into(), Value::from(v.compression));
                if let Some(s) = &v.saving_percent {
                    m.insert("saving_percent".into(), Value::from(s.clone()));
                    m.insert("saving".into(), Value::from(format!("{s}% saved")));
                }
            }
            _ => {}
        }
        m
    }
}
