//! `lvg`: an LVM volume group and its physical volumes.

use crate::storage_util::{self as su, DeviceInfo, LvmReport, Step};
use async_trait::async_trait;
use pbr_core::params::Presence;
use pbr_core::params::{StrList, bool_lenient};
use pbr_core::{Ctx, Diff, Doc, Module, ModuleError, Plan, ReadHost, sh_quote};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LvgParams {
    /// Name of the volume group.
    pub vg: String,
    /// Devices that must be PVs of the group (list or comma-separated). Missing ones are added
    /// (`pvcreate` + `vgextend`); needed to create the group.
    #[serde(default)]
    pub pvs: Option<StrList>,
    /// Physical extent size at creation (`4M`); an existing group keeps its own.
    #[serde(default)]
    pub pesize: Option<String>,
    /// `present` (default) or `absent` (`vgremove`).
    #[serde(default)]
    pub state: Presence,
    /// Allow destroying what is on a device that is not a PV yet (any filesystem, partition
    /// table or other signature), and removing a group that still holds LVs.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub force: bool,
    /// Remove from the group the PVs that are not listed in `pvs` (they must hold no extents).
    #[serde(default, deserialize_with = "bool_lenient")]
    pub reduce: bool,
}

/// What the probe saw: LVM and each listed device.
#[derive(Debug, Clone, Default)]
pub struct LvgState {
    pub lvm: LvmReport,
    pub devices: Vec<DeviceInfo>,
}

pub struct Lvg;

fn pv_list(p: &LvgParams) -> Vec<String> {
    p.pvs.as_ref().map(|l| l.0.clone()).unwrap_or_default()
}

/// The steps from `st` to `p`. Pure.
pub fn steps(p: &LvgParams, st: &LvgState) -> Result<Vec<Step>, ModuleError> {
    let vgq = sh_quote(&p.vg);
    let vg = st.lvm.vg(&p.vg);
    if p.state == Presence::Absent {
        let Some(vg) = vg else { return Ok(vec![]) };
        let lvs: Vec<&str> = st.lvm.lvs_of(&p.vg).map(|l| l.name.as_str()).collect();
        if !lvs.is_empty() && !p.force {
            return Err(ModuleError::new(format!(
                "refusing to remove VG {}: it holds LVs {}; remove them first or set force: true",
                p.vg,
                lvs.join(", ")
            )));
        }
        let pvs: Vec<&str> = st.lvm.pvs_of(&p.vg).map(|p| p.name.as_str()).collect();
        let mut what = format!("VG {} is removed ({} on {})", p.vg, su::human(vg.size), pvs.join(", "));
        if !lvs.is_empty() {
            what.push_str(&format!(", destroying LVs {}", lvs.join(", ")));
        }
        return Ok(vec![Step::new(what, format!("vgremove -y{} {vgq}", if p.force { " -ff" } else { "" }))]);
    }

    let wanted = pv_list(p);
    // (as given, resolved)
    let mut to_add: Vec<(String, String)> = vec![];
    let mut steps = vec![];
    for dev in &wanted {
        let info = st.devices.iter().find(|d| &d.path == dev);
        let real = info.map(|d| d.real.clone()).unwrap_or_else(|| dev.clone());
        match st.lvm.pv(&real) {
            Some(pv) if pv.vg == p.vg => continue,
            Some(pv) if !pv.vg.is_empty() => {
                return Err(ModuleError::new(format!(
                    "{dev} is already a PV of VG {}: vgreduce it there first",
                    pv.vg
                )));
            }
            Some(_) => to_add.push((dev.clone(), real)),
            None => {
                let Some(info) = info else {
                    return Err(ModuleError::new(format!("{dev} was not probed")));
                };
                if !info.exists {
                    // Check mode of a play whose earlier task makes the device: plan it and check
                    // again when it runs.
                    let d = sh_quote(dev);
                    steps.push(Step::new(
                        format!("{dev} becomes an LVM PV once it exists"),
                        format!(
                            "[ -e {d} ] || {{ echo 'device {dev} does not exist' >&2; exit 1; }}\n\
                             if [ -n \"$(wipefs {d})\" ]; then echo '{dev} holds signatures: run again to see them' >&2; exit 1; fi\n\
                             pvcreate -y {d}"
                        ),
                    ));
                    to_add.push((dev.clone(), dev.clone()));
                    continue;
                }
                if !info.signatures.is_empty() {
                    if !p.force {
                        return Err(su::refuse_signatures(&format!("make {dev} a PV"), info, &info.signatures));
                    }
                    steps.push(Step::new(
                        format!("{dev} is wiped, destroying {}", su::describe(&info.signatures)),
                        format!("wipefs -a {}", sh_quote(&real)),
                    ));
                }
                steps.push(Step::new(format!("{dev} becomes an LVM PV"), format!("pvcreate -y {}", sh_quote(&real))));
                to_add.push((dev.clone(), real));
            }
        }
    }
    let list = |v: &[(String, String)]| v.iter().map(|x| sh_quote(&x.1)).collect::<Vec<_>>().join(" ");
    let names = |v: &[(String, String)]| v.iter().map(|x| x.0.clone()).collect::<Vec<_>>().join(", ");
    match vg {
        None => {
            if to_add.is_empty() {
                return Err(ModuleError::new(format!("VG {} does not exist: give pvs to create it", p.vg)));
            }
            let pe = match &p.pesize {
                Some(s) => {
                    let b = su::parse_bytes(s).map_err(ModuleError::new)?;
                    format!(" -s {b}b")
                }
                None => String::new(),
            };
            let diff = Diff::state(
                &format!("VG {}", p.vg),
                &[("exists".into(), "no".into())],
                &[("exists".into(), "yes".into()), ("pvs".into(), names(&to_add))],
            );
            steps.push(
                Step::new(
                    format!("VG {} is created on {}", p.vg, names(&to_add)),
                    format!("vgcreate -y{pe} {vgq} {}", list(&to_add)),
                )
                .with_diff(diff),
            );
        }
        Some(_) => {
            let have: Vec<String> = st.lvm.pvs_of(&p.vg).map(|x| x.name.clone()).collect();
            let mut after = have.clone();
            if !to_add.is_empty() {
                after.extend(to_add.iter().map(|x| x.0.clone()));
                steps.push(Step::new(
                    format!("VG {} gains PV {}", p.vg, names(&to_add)),
                    format!("vgextend -y {vgq} {}", list(&to_add)),
                ));
            }
            if p.reduce {
                let reals: Vec<String> = wanted
                    .iter()
                    .map(|w| st.devices.iter().find(|d| &d.path == w).map(|d| d.real.clone()).unwrap_or(w.clone()))
                    .collect();
                for pv in st.lvm.pvs_of(&p.vg) {
                    if reals.contains(&pv.name) || reals.contains(&pv.real) {
                        continue;
                    }
                    if pv.used > 0 {
                        return Err(ModuleError::new(format!(
                            "cannot remove PV {} from VG {}: it holds {} of LV data; pvmove it first",
                            pv.name,
                            p.vg,
                            su::human(pv.used)
                        )));
                    }
                    after.retain(|x| x != &pv.name);
                    steps.push(Step::new(
                        format!("VG {} loses PV {} (unused)", p.vg, pv.name),
                        format!("vgreduce {vgq} {}", sh_quote(&pv.name)),
                    ));
                }
            }
            if !steps.is_empty() {
                let d = Diff::state(
                    &format!("VG {}", p.vg),
                    &[("pvs".into(), have.join(", "))],
                    &[("pvs".into(), after.join(", "))],
                );
                if let Some(last) = steps.last_mut() {
                    last.diff = Some(d);
                }
            }
        }
    }
    Ok(steps)
}

#[async_trait]
impl Module for Lvg {
    type Params = LvgParams;
    type State = LvgState;
    const NAME: &'static str = "lvg";

    fn doc(&self) -> Doc {
        Doc {
            description: "An LVM volume group: created on the listed PVs, grown with the ones missing, shrunk only \
                          with `reduce: true`. A device that is not a PV yet and holds any signature (filesystem, \
                          partition table, bcache...) is refused unless `force: true`; the plan names what it \
                          would destroy.",
            examples: r#"- name: VG for the Pi disks, on the VDO volume and the SSD
  lvg:
    vg: pis
    pvs: [/dev/vdo/dedup, /dev/vdc]

- name: Remove a PV that is no longer listed
  lvg:
    vg: pis
    pvs: /dev/vdo/dedup
    reduce: true
"#,
        }
    }

    fn validate(&self, p: &LvgParams) -> Result<(), String> {
        if p.vg.is_empty() || p.vg.contains('/') {
            return Err(format!("invalid VG name {:?}", p.vg));
        }
        if let Some(s) = &p.pesize {
            su::parse_bytes(s)?;
        }
        if p.reduce && pv_list(p).is_empty() {
            return Err("reduce: true needs the list of pvs to keep".into());
        }
        Ok(())
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &LvgParams, host: &ReadHost) -> Result<LvgState, ModuleError> {
        let lvm = su::lvm_report(host).await?;
        let list = pv_list(p);
        let refs: Vec<&str> = list.iter().map(String::as_str).collect();
        let devices = if p.state == Presence::Present { su::probe_devices(host, &refs).await? } else { vec![] };
        Ok(LvgState { lvm, devices })
    }

    fn plan(&self, p: &LvgParams, st: &LvgState) -> Result<Plan, ModuleError> {
        Ok(su::to_plan(&steps(p, st)?))
    }

    fn data(&self, p: &LvgParams, st: &LvgState) -> Map<String, Value> {
        let mut m = Map::new();
        if let Some(vg) = st.lvm.vg(&p.vg) {
            m.insert("size".into(), Value::from(vg.size));
            m.insert("free".into(), Value::from(vg.free));
            let pvs: Vec<Value> = st.lvm.pvs_of(&p.vg).map(|x| Value::from(x.name.clone())).collect();
            m.insert("pvs".into(), Value::Array(pvs));
        }
        m
    }
}
