//! `lvol`: an LVM logical volume: create, grow, shrink (only when asked), activate, remove.

use crate::storage_util::{self as su, LvmReport, SizeSpec, Step};
use async_trait::async_trait;
use pbr_core::params::Presence;
use pbr_core::params::{StrList, bool_lenient, opt_bool_lenient};
use pbr_core::{Ctx, Diff, Doc, Module, ModuleError, Plan, ReadHost, sh_quote};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LvolParams {
    /// Volume group of the LV.
    pub vg: String,
    /// Name of the LV.
    pub lv: String,
    /// Size: absolute (`10G`, `512M`; units are powers of 1024, a bare number is MiB) or a
    /// percentage (`100%FREE`, `50%VG`, `100%PVS`). Needed to create; an existing LV grows to it,
    /// and shrinks only with `shrink: true`. `100%FREE` on an existing LV grows it over all the
    /// free space; smaller percentages only size a new LV.
    #[serde(default)]
    pub size: Option<String>,
    /// `present` (default) or `absent` (`lvremove`, needs `force: true`).
    #[serde(default)]
    pub state: Presence,
    /// Allow making the LV smaller (data past the new end is lost; with `resizefs` the
    /// filesystem is shrunk first).
    #[serde(default, deserialize_with = "bool_lenient")]
    pub shrink: bool,
    /// Resize the filesystem on the LV with it (`lvresize -r`).
    #[serde(default, deserialize_with = "bool_lenient")]
    pub resizefs: bool,
    /// PVs to allocate a new LV (or its growth) on.
    #[serde(default)]
    pub pvs: Option<StrList>,
    /// Wanted activation: true (`lvchange -ay`) or false (`-an`); unset leaves it.
    #[serde(default, deserialize_with = "opt_bool_lenient")]
    pub active: Option<bool>,
    /// Needed to remove an LV (`state: absent`): its data is destroyed.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub force: bool,
}

pub struct Lvol;

/// The size an existing LV should have. `N%FREE`/`N%PVS` below 100% only size a new LV (growing
/// by a share of what is free would grow again on every run); at 100% the LV fills the space.
fn target_size(spec: SizeSpec, cur: u64, vg: &su::Vg, pv_free: u64) -> u64 {
    let ext = vg.extent_size.max(1);
    match spec {
        SizeSpec::Bytes(b) => su::round_up(b, ext),
        SizeSpec::PctVg(p) => (vg.size / ext * p as u64 / 100) * ext,
        SizeSpec::PctFree(100) => cur + (vg.free / ext) * ext,
        SizeSpec::PctPvs(100) => cur + (pv_free / ext) * ext,
        SizeSpec::PctFree(_) | SizeSpec::PctPvs(_) => cur,
    }
}

/// The steps from `lvm` to `p`. Pure.
pub fn steps(p: &LvolParams, lvm: &LvmReport) -> Result<Vec<Step>, ModuleError> {
    let full = format!("{}/{}", p.vg, p.lv);
    let fq = sh_quote(&full);
    let lv = lvm.lv(&p.vg, &p.lv);
    let pvs: Vec<String> = p.pvs.as_ref().map(|l| l.0.clone()).unwrap_or_default();
    let pv_args: String = pvs.iter().map(|x| format!(" {}", sh_quote(x))).collect();
    let r = if p.resizefs { " -r" } else { "" };
    if p.state == Presence::Absent {
        let Some(lv) = lv else { return Ok(vec![]) };
        if !p.force {
            return Err(ModuleError::new(format!(
                "refusing to remove LV {full} ({}): its data would be destroyed; set force: true",
                su::human(lv.size)
            )));
        }
        return Ok(vec![Step::new(
            format!("LV {full} is removed, destroying its {} of data", su::human(lv.size)),
            format!("lvremove -y {fq}"),
        )]);
    }
    let spec = p.size.as_deref().map(SizeSpec::parse).transpose().map_err(ModuleError::new)?;
    let mut steps = vec![];
    match lv {
        None => {
            let Some(spec) = spec else {
                return Err(ModuleError::new(format!("LV {full} does not exist: give size to create it")));
            };
            let what = match spec {
                SizeSpec::Bytes(b) => su::human(b),
                SizeSpec::PctFree(n) => format!("{n}% of the free space"),
                SizeSpec::PctVg(n) => format!("{n}% of the VG"),
                SizeSpec::PctPvs(n) => format!("{n}% of the PVs' free space"),
            };
            let mut summary = format!("LV {full} is created ({what})");
            if lvm.vg(&p.vg).is_none() {
                summary.push_str(&format!(" once VG {} exists", p.vg));
            }
            let act = if p.active == Some(false) { " -an -Zn" } else { "" };
            steps.push(
                Step::new(
                    summary,
                    format!(
                        "lvcreate -y --wipesignatures y{act} {} -n {} {}{pv_args}",
                        spec.lvm_arg(),
                        sh_quote(&p.lv),
                        sh_quote(&p.vg)
                    ),
                )
                .with_diff(Diff::state(
                    &format!("LV {full}"),
                    &[("exists".into(), "no".into())],
                    &[("exists".into(), "yes".into()), ("size".into(), what)],
                )),
            );
        }
        Some(lv) => {
            if let Some(spec) = spec {
                let vg = lvm.vg(&p.vg).cloned().unwrap_or_default();
                let pv_free: u64 =
                    if pvs.is_empty() { vg.free } else { pvs.iter().filter_map(|d| lvm.pv(d)).map(|x| x.free).sum() };
                let want = target_size(spec, lv.size, &vg, pv_free);
                let d = |w: u64| {
                    Diff::state(
                        &format!("LV {full}"),
                        &[("size".into(), su::human(lv.size))],
                        &[("size".into(), su::human(w))],
                    )
                };
                if want > lv.size {
                    steps.push(
                        Step::new(
                            format!("LV {full} grows {} → {}", su::human(lv.size), su::human(want)),
                            format!("lvextend -y{r} -L {want}b {fq}{pv_args}"),
                        )
                        .with_diff(d(want)),
                    );
                } else if want < lv.size && matches!(spec, SizeSpec::Bytes(_) | SizeSpec::PctVg(_)) {
                    if !p.shrink {
                        return Err(ModuleError::new(format!(
                            "LV {full} is {} and size asks for {}: shrinking destroys the data past the new end; \
                             set shrink: true to allow it",
                            su::human(lv.size),
                            su::human(want)
                        )));
                    }
                    let fs = if p.resizefs { " (its filesystem is shrunk first)" } else { "" };
                    steps.push(
                        Step::new(
                            format!("LV {full} shrinks {} → {}{fs}", su::human(lv.size), su::human(want)),
                            format!("lvreduce -y{r} -L {want}b {fq}"),
                        )
                        .with_diff(d(want)),
                    );
                }
            }
            match p.active {
                Some(true) if !lv.active => {
                    steps.push(Step::new(format!("LV {full} is activated"), format!("lvchange -ay {fq}")))
                }
                Some(false) if lv.active => {
                    steps.push(Step::new(format!("LV {full} is deactivated"), format!("lvchange -an {fq}")))
                }
                _ => {}
            }
        }
    }
    Ok(steps)
}

#[async_trait]
impl Module for Lvol {
    type Params = LvolParams;
    type State = LvmReport;
    const NAME: &'static str = "lvol";

    fn doc(&self) -> Doc {
        Doc {
            description: "An LVM logical volume. Created with `size`, grown when `size` is larger (optionally with \
                          its filesystem, `resizefs`), shrunk only with `shrink: true`, removed only with \
                          `state: absent` and `force: true`. Sizes are compared in whole extents, so a run after \
                          a convergent one changes nothing.",
            examples: r#"- name: One LV per Pi
  lvol:
    vg: pis
    lv: pi3
    size: 8G
    pvs: /dev/vdo/dedup

- name: Grow it with its filesystem
  lvol:
    vg: pis
    lv: pi3
    size: 10G
    resizefs: true
"#,
        }
    }

    fn validate(&self, p: &LvolParams) -> Result<(), String> {
        if let Some(s) = &p.size {
            SizeSpec::parse(s)?;
        }
        if p.lv.is_empty() || p.lv.contains('/') || p.vg.is_empty() || p.vg.contains('/') {
            return Err(format!("invalid VG/LV name {}/{}", p.vg, p.lv));
        }
        Ok(())
    }

    async fn probe(&self, _ctx: &Ctx<'_>, _p: &LvolParams, host: &ReadHost) -> Result<LvmReport, ModuleError> {
        su::lvm_report(host).await
    }

    fn plan(&self, p: &LvolParams, st: &LvmReport) -> Result<Plan, ModuleError> {
        Ok(su::to_plan(&steps(p, st)?))
    }

    async fn report(
        &self,
        p: &LvolParams,
        _st: &LvmReport,
        _host: &ReadHost,
    ) -> Result<Map<String, Value>, ModuleError> {
        let mut data = Map::new();
        data.insert("device".into(), Value::from(format!("/dev/{}/{}", p.vg, p.lv)));
        Ok(data)
    }

    fn data(&self, p: &LvolParams, st: &LvmReport) -> Map<String, Value> {
        let mut m = Map::new();
        if let Some(lv) = st.lv(&p.vg, &p.lv) {
            m.insert("device".into(), Value::from(format!("/dev/{}/{}", p.vg, p.lv)));
            m.insert("size".into(), Value::from(lv.size));
            m.insert("active".into(), Value::from(lv.active));
        }
        m
    }
}
