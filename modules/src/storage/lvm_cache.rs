//! `lvm_cache`: an SSD cache in front of an LVM logical volume (dm-cache or dm-writecache).

use crate::storage_util::{self as su, LvmReport, SizeSpec, Step};
use async_trait::async_trait;
use pbr_core::params::Presence;
use pbr_core::{Ctx, Diff, Doc, Module, ModuleError, Plan, ReadHost, sh_quote};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CacheType {
    /// dm-cache: read and write caching, `cache_mode` applies.
    #[default]
    Cache,
    /// dm-writecache: write-back caching of writes only.
    Writecache,
}

impl CacheType {
    fn name(self) -> &'static str {
        match self {
            CacheType::Cache => "cache",
            CacheType::Writecache => "writecache",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    /// Writes go to the cache and the origin before they complete (no data at risk in the cache).
    #[default]
    Writethrough,
    /// Writes complete in the cache and reach the origin later (dirty blocks live on the SSD).
    Writeback,
    /// Reads bypass the cache.
    Passthrough,
}

impl CacheMode {
    fn name(self) -> &'static str {
        match self {
            CacheMode::Writethrough => "writethrough",
            CacheMode::Writeback => "writeback",
            CacheMode::Passthrough => "passthrough",
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LvmCacheParams {
    /// Volume group of the LV to cache.
    pub vg: String,
    /// The LV to cache (the origin).
    pub lv: String,
    /// `cache` (dm-cache, default) or `writecache` (dm-writecache).
    #[serde(default, rename = "type")]
    pub kind: CacheType,
    /// dm-cache mode: `writethrough` (default), `writeback` or `passthrough`; changed in place
    /// (`lvchange --cachemode`). Not used by `writecache`.
    #[serde(default)]
    pub cache_mode: Option<CacheMode>,
    /// The fast PV (the SSD) the cache volume is allocated on; must be a PV of `vg`.
    pub cache_pv: String,
    /// Size of the cache volume (`1G`); default: all the free space of `cache_pv`. Only used
    /// when the cache is created.
    #[serde(default)]
    pub size: Option<String>,
    /// `present` (default) or `absent`: detach the cache (`lvconvert --uncache`; dirty blocks
    /// are written back to the origin first) and remove the cache volume.
    #[serde(default)]
    pub state: Presence,
}

pub struct LvmCache;

/// The cache volume made for `lv`.
pub fn cache_lv_name(lv: &str) -> String {
    format!("{lv}_cache")
}

fn detach_step(full: &str, fq: &str, lv: &su::Lv) -> Step {
    let dirty = if lv.segtype == "writecache" || lv.cache_mode == "writeback" {
        "its dirty blocks are flushed to the origin first, then "
    } else {
        ""
    };
    let mode = if lv.cache_mode.is_empty() { lv.segtype.clone() } else { format!("{}, {}", lv.segtype, lv.cache_mode) };
    Step::new(
        format!("LV {full} loses its SSD cache ({mode}): {dirty}the cache volume {} is removed", lv.pool_lv),
        format!("lvconvert -y --uncache {fq}"),
    )
}

/// The steps from `lvm` to `p`. Pure.
pub fn steps(p: &LvmCacheParams, lvm: &LvmReport) -> Result<Vec<Step>, ModuleError> {
    let full = format!("{}/{}", p.vg, p.lv);
    let fq = sh_quote(&full);
    let origin = lvm.lv(&p.vg, &p.lv);
    let cached = origin.filter(|l| l.segtype == "cache" || l.segtype == "writecache");
    if p.state == Presence::Absent {
        return Ok(cached.map(|l| vec![detach_step(&full, &fq, l)]).unwrap_or_default());
    }
    let mode = p.cache_mode.unwrap_or_default();
    let mut steps = vec![];
    if let Some(l) = cached {
        if l.segtype == p.kind.name() {
            if p.kind == CacheType::Cache && l.cache_mode != mode.name() {
                steps.push(
                    Step::new(
                        format!("LV {full}'s cache switches {} → {}", l.cache_mode, mode.name()),
                        format!("lvchange -y --cachemode {} {fq}", mode.name()),
                    )
                    .with_diff(Diff::state(
                        &format!("LV {full} cache"),
                        &[("cache_mode".into(), l.cache_mode.clone())],
                        &[("cache_mode".into(), mode.name().into())],
                    )),
                );
            }
            return Ok(steps);
        }
        steps.push(detach_step(&full, &fq, l));
    }
    let size = match &p.size {
        Some(s) => SizeSpec::parse(s).map_err(ModuleError::new)?,
        None => SizeSpec::PctPvs(100),
    };
    let size_words = match size {
        SizeSpec::Bytes(b) => su::human(b),
        SizeSpec::PctPvs(100) => "all free space".into(),
        other => other.lvm_arg().trim_start_matches("-l ").to_string(),
    };
    let cname = cache_lv_name(&p.lv);
    let cfull = sh_quote(&format!("{}/{cname}", p.vg));
    let what = match p.kind {
        CacheType::Cache => mode.name().to_string(),
        CacheType::Writecache => "writecache".to_string(),
    };
    let mut summary = format!("LV {full} gains an SSD cache ({what}, {size_words} on {})", p.cache_pv);
    if origin.is_none() {
        summary.push_str(" once the LV exists");
    }
    let create = format!(
        "lvcreate -y --wipesignatures y {} -n {} {} {}",
        size.lvm_arg(),
        sh_quote(&cname),
        sh_quote(&p.vg),
        sh_quote(&p.cache_pv)
    );
    let convert = match p.kind {
        CacheType::Cache => {
            format!("lvconvert -y --type cache --cachevol {} --cachemode {} {fq}", sh_quote(&cname), mode.name())
        }
        // dm-writecache wants its cache volume inactive when it is attached.
        CacheType::Writecache => {
            format!("lvchange -an {cfull} && lvconvert -y --type writecache --cachevol {} {fq}", sh_quote(&cname))
        }
    };
    // Leave no stray cache volume behind when the conversion fails.
    let script =
        format!("{create}\nif ! {{ {convert}; }}; then lvremove -y {cfull} >/dev/null 2>&1 || true; exit 1; fi");
    steps.push(Step::new(summary, script).with_diff(Diff::state(
        &format!("LV {full} cache"),
        &[("cache".into(), "none".into())],
        &[("cache".into(), format!("{} ({what}) on {}", p.kind.name(), p.cache_pv))],
    )));
    Ok(steps)
}

#[async_trait]
impl Module for LvmCache {
    type Params = LvmCacheParams;
    type State = LvmReport;
    const NAME: &'static str = "lvm_cache";

    fn doc(&self) -> Doc {
        Doc {
            description: "An SSD cache in front of an LV: a cache volume is carved from `cache_pv` and attached \
                          with `lvconvert --type cache|writecache --cachevol`. The dm-cache mode is changed in \
                          place; `state: absent` detaches with `lvconvert --uncache`, which writes dirty blocks \
                          back to the origin before removing the cache volume.",
            examples: r#"- name: SSD cache for a Pi's LV
  lvm_cache:
    vg: pis
    lv: pi3
    cache_pv: /dev/vdc
    size: 512M
    cache_mode: writeback

- name: Detach it (flushes first)
  lvm_cache:
    vg: pis
    lv: pi3
    cache_pv: /dev/vdc
    state: absent
"#,
        }
    }

    fn validate(&self, p: &LvmCacheParams) -> Result<(), String> {
        if let Some(s) = &p.size {
            SizeSpec::parse(s)?;
        }
        if p.kind == CacheType::Writecache && p.cache_mode.is_some() {
            return Err("cache_mode applies to type: cache only".into());
        }
        Ok(())
    }

    async fn probe(&self, _ctx: &Ctx<'_>, _p: &LvmCacheParams, host: &ReadHost) -> Result<LvmReport, ModuleError> {
        su::lvm_report(host).await
    }

    fn plan(&self, p: &LvmCacheParams, st: &LvmReport) -> Result<Plan, ModuleError> {
        Ok(su::to_plan(&steps(p, st)?))
    }

    fn data(&self, p: &LvmCacheParams, st: &LvmReport) -> Map<String, Value> {
        let mut m = Map::new();
        if let Some(l) = st.lv(&p.vg, &p.lv) {
            m.insert("segtype".into(), Value::from(l.segtype.clone()));
            if !l.cache_mode.is_empty() {
                m.insert("cache_mode".into(), Value::from(l.cache_mode.clone()));
            }
            if !l.pool_lv.is_empty() {
                m.insert("cache_lv".into(), Value::from(l.pool_lv.clone()));
            }
        }
        m
    }
}
