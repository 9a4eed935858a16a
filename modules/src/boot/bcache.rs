//! `bcache`: a bcache device: a backing device (slow disk) with a cache device (fast) in front.

use crate::storage_util::{self as su, DeviceInfo, Step};
use async_trait::async_trait;
use pbr_core::params::bool_lenient;
use pbr_core::{Ctx, Diff, Doc, Module, ModuleError, Plan, ReadHost, sh_quote};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BcacheMode {
    Writethrough,
    Writeback,
    Writearound,
    None,
}

impl BcacheMode {
    pub fn name(self) -> &'static str {
        match self {
            BcacheMode::Writethrough => "writethrough",
            BcacheMode::Writeback => "writeback",
            BcacheMode::Writearound => "writearound",
            BcacheMode::None => "none",
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BcacheParams {
    /// The slow device (e.g. the iSCSI disk); `make-bcache -B` when it is not one yet.
    pub backing: String,
    /// The fast device (e.g. the SD card); `make-bcache -C` when it is not one yet, then attached
    /// to the backing device. It needs at least 128 buckets (64 MiB with the default 512 KiB).
    #[serde(default)]
    pub cache: Option<String>,
    /// `writethrough`, `writeback`, `writearound` or `none` (sysfs `cache_mode`).
    #[serde(default)]
    pub cache_mode: Option<BcacheMode>,
    /// Sequential I/O larger than this bypasses the cache (`4M`; `0` caches everything).
    #[serde(default)]
    pub sequential_cutoff: Option<String>,
    /// Allow destroying what is on `backing` or `cache` when they hold other signatures.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub force: bool,
}

/// `bcache-super-show` output: `key value` lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuperBlock {
    pub fields: Vec<(String, String)>,
}

impl SuperBlock {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.fields.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
    }
    pub fn is_backing(&self) -> bool {
        self.get("sb.version").is_some_and(|v| v.contains("backing"))
    }
    pub fn is_cache(&self) -> bool {
        self.get("sb.version").is_some_and(|v| v.contains("cache device"))
    }
    pub fn cset(&self) -> Option<&str> {
        self.get("cset.uuid").filter(|s| !s.is_empty())
    }
}

pub fn parse_super(text: &str) -> Option<SuperBlock> {
    let fields: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let (k, v) = l.split_once(char::is_whitespace)?;
            Some((k.to_string(), v.trim().to_string()))
        })
        .collect();
    let sb = SuperBlock { fields };
    (sb.get("sb.magic") == Some("ok")).then_some(sb)
}

/// A registered backing device, read from `/sys/class/block/K/bcache`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackingSys {
    /// `bcache0`
    pub device: String,
    /// `no cache`, `clean`, `dirty`, `inconsistent`
    pub state: String,
    pub cache_mode: String,
    pub sequential_cutoff: String,
    /// Cache set it is attached to.
    pub cset: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct BcacheState {
    pub backing: DeviceInfo,
    pub backing_sb: Option<SuperBlock>,
    pub sys: Option<BackingSys>,
    pub cache: Option<DeviceInfo>,
    pub cache_sb: Option<SuperBlock>,
    pub cache_registered: bool,
}

pub struct Bcache;

/// The selected entry of a sysfs choice list (`writethrough [writeback] none`).
pub fn selected(s: &str) -> &str {
    s.split_whitespace().find_map(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']'))).unwrap_or(s.trim())
}

/// bcache's sizes (`4.0M`, `512k`, `0`, `512`): powers of 1024, bare numbers are bytes.
pub fn parse_bc_size(s: &str) -> Option<u64> {
    let t = s.trim();
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().ok();
    }
    su::parse_bytes(t).ok()
}

const MIN_BUCKETS: u64 = 128;
const BUCKET: u64 = 512 * 1024;

fn sysdir(dev: &str) -> String {
    format!("b=/sys/class/block/$(basename \"$(readlink -f -- {})\")/bcache", sh_quote(dev))
}

fn register(dev: &str) -> String {
    let d = sh_quote(dev);
    format!(
        "{}\nif [ ! -d \"$b\" ]; then echo {d} > /sys/fs/bcache/register 2>/dev/null || true; fi\n\
         udevadm settle 2>/dev/null || true\n\
         i=0; while [ ! -d \"$b\" ] && [ $i -lt 50 ]; do sleep 0.2; i=$((i+1)); done\n\
         [ -d \"$b\" ] || {{ echo 'bcache did not register {dev}' >&2; exit 1; }}",
        sysdir(dev)
    )
}

fn register_cache(dev: &str) -> String {
    let d = sh_quote(dev);
    format!(
        "cs=$(bcache-super-show {d} | awk '$1==\"cset.uuid\"{{print $2}}')\n\
         if [ ! -d /sys/fs/bcache/$cs ]; then echo {d} > /sys/fs/bcache/register 2>/dev/null || true; fi\n\
         udevadm settle 2>/dev/null || true\n\
         i=0; while [ ! -d /sys/fs/bcache/$cs ] && [ $i -lt 50 ]; do sleep 0.2; i=$((i+1)); done\n\
         [ -d /sys/fs/bcache/$cs ] || {{ echo 'bcache did not register cache set of {dev}' >&2; exit 1; }}"
    )
}

fn format_step(
    role: &str,
    flag: &str,
    dev: &DeviceInfo,
    sb_ok: bool,
    force: bool,
    steps: &mut Vec<Step>,
) -> Result<bool, ModuleError> {
    if sb_ok {
        return Ok(false);
    }
    let reg = if flag == "-B" { register(&dev.path) } else { register_cache(&dev.path) };
    if !dev.exists {
        // Check mode of a play whose earlier task makes the device: plan it, and re-check there.
        let d = sh_quote(&dev.path);
        steps.push(Step::new(
            format!("{} becomes a bcache {role} device once it exists", dev.path),
            format!(
                "[ -e {d} ] || {{ echo '{role} device {} does not exist' >&2; exit 1; }}\n\
                 if [ -n \"$(wipefs {d})\" ]; then echo '{} holds signatures: run again to see them' >&2; exit 1; fi\n\
                 make-bcache {flag} {d}\n{reg}",
                dev.path, dev.path
            ),
        ));
        return Ok(true);
    }
    let mut summary = format!("{} becomes a bcache {role} device", dev.path);
    let mut script = String::new();
    if !dev.signatures.is_empty() {
        if !force {
            return Err(su::refuse_signatures(
                &format!("make {} a bcache {role} device", dev.path),
                dev,
                &dev.signatures,
            ));
        }
        summary.push_str(&format!(", destroying {}", su::describe(&dev.signatures)));
        script.push_str(&format!("wipefs -a {}\n", sh_quote(&dev.real)));
    }
    script.push_str(&format!("make-bcache {flag} {}\n", sh_quote(&dev.real)));
    script.push_str(&reg);
    steps.push(Step::new(summary, script));
    Ok(true)
}

/// The steps from `st` to `p`. Pure.
pub fn steps(p: &BcacheParams, st: &BcacheState) -> Result<Vec<Step>, ModuleError> {
    let mut steps = vec![];
    let made_backing = format_step(
        "backing",
        "-B",
        &st.backing,
        st.backing_sb.as_ref().is_some_and(SuperBlock::is_backing),
        p.force,
        &mut steps,
    )?;
    if !made_backing && st.sys.is_none() {
        steps.push(Step::new(format!("bcache backing device {} is registered", p.backing), register(&p.backing)));
    }
    let cur = if made_backing { None } else { st.sys.clone() };
    if let (Some(cache_path), Some(cache)) = (&p.cache, &st.cache) {
        if cache.exists && cache.size / BUCKET < MIN_BUCKETS && !st.cache_sb.as_ref().is_some_and(SuperBlock::is_cache)
        {
            return Err(ModuleError::new(format!(
                "cache device {cache_path} is {}: bcache needs at least {MIN_BUCKETS} buckets of 512 KiB (64 MiB)",
                su::human(cache.size)
            )));
        }
        let made_cache = format_step(
            "cache",
            "-C",
            cache,
            st.cache_sb.as_ref().is_some_and(SuperBlock::is_cache),
            p.force,
            &mut steps,
        )?;
        if !made_cache && !st.cache_registered {
            steps
                .push(Step::new(format!("bcache cache device {cache_path} is registered"), register_cache(cache_path)));
        }
        let want_cset = if made_cache { None } else { st.cache_sb.as_ref().and_then(|s| s.cset()).map(str::to_string) };
        let have_cset = cur.as_ref().and_then(|s| s.cset.clone());
        if want_cset.is_none() || want_cset != have_cset {
            let mut script = format!(
                "{}\ncs=$(bcache-super-show {} | awk '$1==\"cset.uuid\"{{print $2}}')\n",
                sysdir(&p.backing),
                sh_quote(cache_path)
            );
            let mut summary = String::new();
            if let Some(old) = &have_cset {
                summary.push_str(&format!(
                    "{} is detached from cache set {old} (dirty data is written back first) and ",
                    p.backing
                ));
                script.push_str(
                    "echo 1 > \"$b/detach\"\ni=0; while [ \"$(cat \"$b/state\")\" != 'no cache' ] && [ $i -lt 3000 ]; \
                     do sleep 0.2; i=$((i+1)); done\n",
                );
            }
            summary.push_str(&format!("{} is cached by {cache_path}", p.backing));
            if let Some(c) = &want_cset {
                summary.push_str(&format!(" (cache set {c})"));
            }
            script.push_str(
                "echo \"$cs\" > \"$b/attach\"\n\
                 i=0; while [ ! -e \"$b/cache\" ] && [ $i -lt 50 ]; do sleep 0.2; i=$((i+1)); done\n\
                 [ -e \"$b/cache\" ] || { echo \"cache set $cs did not attach: state $(cat \"$b/state\")\" >&2; exit 1; }",
            );
            steps.push(Step::new(summary, script).with_diff(Diff::state(
                &format!("bcache {}", p.backing),
                &[("cache_set".into(), have_cset.clone().unwrap_or_else(|| "none".into()))],
                &[("cache_set".into(), want_cset.clone().unwrap_or_else(|| format!("of {cache_path}")))],
            )));
        }
    }
    if let Some(mode) = p.cache_mode {
        let have = cur.as_ref().map(|s| selected(&s.cache_mode).to_string());
        if have.as_deref() != Some(mode.name()) {
            let from = have.clone().unwrap_or_else(|| "default".into());
            steps.push(
                Step::new(
                    format!("bcache on {} switches to {} (was {from})", p.backing, mode.name()),
                    format!("{}\necho {} > \"$b/cache_mode\"", sysdir(&p.backing), mode.name()),
                )
                .with_diff(Diff::state(
                    &format!("bcache {}", p.backing),
                    &[("cache_mode".into(), from)],
                    &[("cache_mode".into(), mode.name().into())],
                )),
            );
        }
    }
    if let Some(cut) = &p.sequential_cutoff {
        let want = parse_bc_size(cut).ok_or_else(|| ModuleError::new(format!("invalid sequential_cutoff {cut:?}")))?;
        let have = cur.as_ref().and_then(|s| parse_bc_size(&s.sequential_cutoff));
        let close = have.is_some_and(|h| h.abs_diff(want) <= h.max(want) / 20);
        if !close {
            steps.push(Step::new(
                format!(
                    "bcache on {} bypasses the cache for sequential I/O over {} (was {})",
                    p.backing,
                    su::human(want),
                    have.map(su::human).unwrap_or_else(|| "default".into())
                ),
                format!("{}\necho {want} > \"$b/sequential_cutoff\"", sysdir(&p.backing)),
            ));
        }
    }
    Ok(steps)
}

/// The probe script: both devices, their superblocks, and the backing device's sysfs.
pub fn probe_script(p: &BcacheParams) -> String {
    let mut s = String::from("export LC_ALL=C\n");
    s.push_str(&su::device_script(&p.backing));
    s.push_str(&format!(
        "echo '@@SB'; bcache-super-show {b} 2>/dev/null || true\necho '@@SYS'; {sys}\n\
         if [ -d \"$b\" ]; then echo \"dev=$(basename \"$(readlink \"$b/dev\")\")\"; echo \"state=$(cat \"$b/state\")\"; \
         echo \"cache_mode=$(cat \"$b/cache_mode\")\"; echo \"sequential_cutoff=$(cat \"$b/sequential_cutoff\")\"; \
         if [ -e \"$b/cache\" ]; then echo \"cset=$(basename \"$(readlink -f \"$b/cache\")\")\"; fi; fi\n",
        b = sh_quote(&p.backing),
        sys = sysdir(&p.backing)
    ));
    if let Some(c) = &p.cache {
        s.push_str(&su::device_script(c));
        s.push_str(&format!(
            "echo '@@CSB'; bcache-super-show {c} 2>/dev/null || true\n\
             cs=$(bcache-super-show {c} 2>/dev/null | awk '$1==\"cset.uuid\"{{print $2}}')\n\
             echo '@@CREG'; if [ -n \"$cs\" ] && [ -d /sys/fs/bcache/$cs ]; then echo yes; else echo no; fi\n",
            c = sh_quote(c)
        ));
    }
    s
}

fn between<'a>(text: &'a str, start: &str) -> &'a str {
    let Some(i) = text.find(start) else { return "" };
    let rest = &text[i + start.len()..];
    &rest[..rest.find("@@").unwrap_or(rest.len())]
}

/// Parse the output of [`probe_script`].
pub fn parse_probe(text: &str, with_cache: bool) -> Result<BcacheState, String> {
    let devs = su::parse_devices(text)?;
    let backing = devs.first().cloned().ok_or("probe printed no device")?;
    let backing_sb = parse_super(between(text, "@@SB\n"));
    let sys_text = between(text, "@@SYS\n");
    let sys = if sys_text.contains("state=") {
        let get = |k: &str| {
            sys_text.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).map(str::to_string).unwrap_or_default()
        };
        let cset = get("cset");
        Some(BackingSys {
            device: get("dev"),
            state: get("state"),
            cache_mode: get("cache_mode"),
            sequential_cutoff: get("sequential_cutoff"),
            cset: (!cset.is_empty()).then_some(cset),
        })
    } else {
        None
    };
    let (cache, cache_sb, cache_registered) = if with_cache {
        (devs.get(1).cloned(), parse_super(between(text, "@@CSB\n")), between(text, "@@CREG\n").trim() == "yes")
    } else {
        (None, None, false)
    };
    Ok(BcacheState { backing, backing_sb, sys, cache, cache_sb, cache_registered })
}

#[async_trait]
impl Module for Bcache {
    type Params = BcacheParams;
    type State = BcacheState;
    const NAME: &'static str = "bcache";

    fn doc(&self) -> Doc {
        Doc {
            description: "A bcache device: `backing` gets a bcache superblock (`make-bcache -B`), `cache` another \
                          (`make-bcache -C`), both are registered and the cache set is attached through sysfs; \
                          `cache_mode` and `sequential_cutoff` are set in sysfs. Devices holding other signatures \
                          are refused unless `force: true`. udev registers the devices again at boot. The result \
                          names the device made (`device: /dev/bcache0`).",
            examples: r#"- name: SD card in front of the iSCSI disk
  bcache:
    backing: /dev/disk/by-path/ip-10.0.2.2:3260-iscsi-iqn.2024-01.lan.storage:pi3-lun-0
    cache: /dev/mmcblk0p3
    cache_mode: writeback
    sequential_cutoff: 4M
  register: bc
"#,
        }
    }

    fn validate(&self, p: &BcacheParams) -> Result<(), String> {
        if let Some(c) = &p.sequential_cutoff {
            parse_bc_size(c).ok_or_else(|| format!("invalid sequential_cutoff {c:?}"))?;
        }
        if p.cache.as_deref() == Some(p.backing.as_str()) {
            return Err("backing and cache must be different devices".into());
        }
        Ok(())
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &BcacheParams, host: &ReadHost) -> Result<BcacheState, ModuleError> {
        let out = host.query_sh(probe_script(p)).await?;
        if out.rc != 0 {
            return Err(ModuleError::new(format!("cannot inspect bcache devices: {}", out.stderr_str().trim())));
        }
        parse_probe(&out.stdout_str(), p.cache.is_some()).map_err(ModuleError::new)
    }

    fn plan(&self, p: &BcacheParams, st: &BcacheState) -> Result<Plan, ModuleError> {
        Ok(su::to_plan(&steps(p, st)?))
    }

    async fn report(
        &self,
        p: &BcacheParams,
        _st: &BcacheState,
        host: &ReadHost,
    ) -> Result<Map<String, Value>, ModuleError> {
        let out = host.query_sh(format!("{}\nbasename \"$(readlink \"$b/dev\")\"", sysdir(&p.backing))).await?;
        let mut data = Map::new();
        let dev = out.stdout_str().trim().to_string();
        if out.rc == 0 && dev.starts_with("bcache") {
            data.insert("device".into(), Value::from(format!("/dev/{dev}")));
        }
        Ok(data)
    }

    fn data(&self, _p: &BcacheParams, st: &BcacheState) -> Map<String, Value> {
        let mut m = Map::new();
        if let Some(s) = &st.sys {
            if !s.device.is_empty() {
                m.insert("device".into(), Value::from(format!("/dev/{}", s.device)));
            }
            m.insert("state".into(), Value::from(s.state.clone()));
            m.insert("cache_mode".into(), Value::from(selected(&s.cache_mode).to_string()));
            if let Some(c) = &s.cset {
                m.insert("cache_set".into(), Value::from(c.clone()));
            }
        }
        m
    }
}
