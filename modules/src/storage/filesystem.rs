//! `filesystem`: make a filesystem on a device, refusing to destroy anything it did not make.

use crate::storage_util::{self as su, DeviceInfo, Step};
use async_trait::async_trait;
use pbr_core::params::Presence;
use pbr_core::params::bool_lenient;
use pbr_core::{Ctx, Diff, Doc, Module, ModuleError, Plan, ReadHost, sh_quote};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilesystemParams {
    /// Block device (or image file) to format.
    pub dev: String,
    /// Filesystem type as `mkfs.TYPE` knows it: `ext4`, `ext3`, `ext2`, `xfs`, `btrfs`, `vfat`,
    /// `swap`...
    pub fstype: String,
    /// Extra options for mkfs (split on spaces).
    #[serde(default)]
    pub opts: Option<String>,
    /// Allow destroying what is on the device when it holds any other signature (another
    /// filesystem, a partition table, an LVM PV, bcache...). Never reformats a device that
    /// already has `fstype`.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub force: bool,
    /// Grow an ext2/3/4 filesystem to the size of its device (`resize2fs`).
    #[serde(default, deserialize_with = "bool_lenient")]
    pub resizefs: bool,
    /// `present` (default) or `absent`: erase the `fstype` signature (`wipefs -a -t`); other
    /// signatures are left alone.
    #[serde(default)]
    pub state: Presence,
}

#[derive(Debug, Clone, Default)]
pub struct FsState {
    pub dev: DeviceInfo,
    /// Size of the ext filesystem in bytes, when `resizefs` asked for it.
    pub fs_size: Option<u64>,
}

pub struct Filesystem;

fn is_ext(t: &str) -> bool {
    matches!(t, "ext2" | "ext3" | "ext4")
}

/// The mkfs command for `fstype` on `dev`.
pub fn mkfs_cmd(fstype: &str, dev: &str, opts: Option<&str>) -> String {
    let extra: String = opts.unwrap_or("").split_whitespace().map(|o| format!(" {}", sh_quote(o))).collect();
    let d = sh_quote(dev);
    match fstype {
        "swap" => format!("mkswap{extra} {d}"),
        t if is_ext(t) => format!("mkfs.{t} -q -F{extra} {d}"),
        t => format!("mkfs.{}{extra} {d}", sh_quote(t)),
    }
}

/// Grow when the device is larger than the filesystem by more than this.
const RESIZE_SLACK: u64 = 4 << 20;

/// The steps from `st` to `p`. Pure.
pub fn steps(p: &FilesystemParams, st: &FsState) -> Result<Vec<Step>, ModuleError> {
    let dev = &st.dev;
    let d = sh_quote(&dev.real);
    if p.state == Presence::Absent {
        if !dev.has(&p.fstype) {
            return Ok(vec![]);
        }
        return Ok(vec![Step::new(
            format!("{} loses its {} filesystem (wipefs)", p.dev, p.fstype),
            format!("wipefs -a -t {} {d}", sh_quote(&p.fstype)),
        )]);
    }
    if !dev.exists {
        return Ok(vec![Step::new(
            format!("{} is formatted {} once it exists", p.dev, p.fstype),
            format!(
                "[ -e {} ] || {{ echo 'device {} does not exist' >&2; exit 1; }}\n{}",
                sh_quote(&p.dev),
                p.dev,
                mkfs_cmd(&p.fstype, &p.dev, p.opts.as_deref())
            ),
        )]);
    }
    if dev.kind == "other" {
        return Err(ModuleError::new(format!("{} is neither a block device nor a file", p.dev)));
    }
    let foreign = dev.foreign(&[p.fstype.as_str()]);
    let mut steps = vec![];
    if dev.has(&p.fstype) && foreign.is_empty() {
        if p.resizefs
            && is_ext(&p.fstype)
            && let Some(fs) = st.fs_size
            && dev.size > fs + RESIZE_SLACK
        {
            steps.push(
                Step::new(
                    format!("{} filesystem on {} grows {} → {}", p.fstype, p.dev, su::human(fs), su::human(dev.size)),
                    format!("resize2fs {d}"),
                )
                .with_diff(Diff::state(
                    &format!("{} on {}", p.fstype, p.dev),
                    &[("size".into(), su::human(fs))],
                    &[("size".into(), su::human(dev.size))],
                )),
            );
        }
        return Ok(steps);
    }
    let mut summary = format!("{} is formatted {}", p.dev, p.fstype);
    if !foreign.is_empty() || !dev.signatures.is_empty() {
        if !p.force {
            return Err(su::refuse_signatures(&format!("format {} as {}", p.dev, p.fstype), dev, &dev.signatures));
        }
        summary.push_str(&format!(", destroying {}", su::describe(&dev.signatures)));
        steps.push(Step::new(
            format!("{} is wiped, destroying {}", p.dev, su::describe(&dev.signatures)),
            format!("wipefs -a {d}"),
        ));
    }
    let before = if dev.signatures.is_empty() { "none".to_string() } else { su::describe(&dev.signatures) };
    steps.push(Step::new(summary, mkfs_cmd(&p.fstype, &dev.real, p.opts.as_deref())).with_diff(Diff::state(
        &p.dev,
        &[("signatures".into(), before)],
        &[("signatures".into(), p.fstype.clone())],
    )));
    // One change per format in the plan: the wipe is part of it.
    if steps.len() == 2 {
        let mk = steps.remove(1);
        let wipe = steps.remove(0);
        steps.push(Step { script: format!("{}\n{}", wipe.script, mk.script), ..mk });
    }
    Ok(steps)
}

/// `Block count:` × `Block size:` of `dumpe2fs -h` output.
pub fn parse_dumpe2fs(text: &str) -> Option<u64> {
    let field = |k: &str| text.lines().find_map(|l| l.strip_prefix(k).and_then(|v| v.trim().parse::<u64>().ok()));
    Some(field("Block count:")? * field("Block size:")?)
}

#[async_trait]
impl Module for Filesystem {
    type Params = FilesystemParams;
    type State = FsState;
    const NAME: &'static str = "filesystem";

    fn doc(&self) -> Doc {
        Doc {
            description: "Make a filesystem on a device. A device that already has `fstype` is left alone; a \
                          device holding any other signature (filesystem, partition table, LVM PV, bcache...) is \
                          refused, naming the device and what is on it, unless `force: true` — and then check \
                          mode says what would be destroyed. `resizefs` grows ext filesystems to the device.",
            examples: r#"- name: ext4 on a Pi's LV
  filesystem:
    dev: /dev/pis/pi3
    fstype: ext4
    opts: -L pi3root

- name: Reformat a disk that held something else
  filesystem:
    dev: /dev/vdd
    fstype: xfs
    # the scratch disk's old contents are not needed
    force: true
"#,
        }
    }

    fn validate(&self, p: &FilesystemParams) -> Result<(), String> {
        if p.fstype.is_empty() || !p.fstype.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("invalid fstype {:?}", p.fstype));
        }
        if p.resizefs && !is_ext(&p.fstype) {
            return Err(format!("resizefs supports ext2/ext3/ext4, not {}", p.fstype));
        }
        Ok(())
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &FilesystemParams, host: &ReadHost) -> Result<FsState, ModuleError> {
        let dev = su::probe_devices(host, &[p.dev.as_str()])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| ModuleError::new(format!("cannot inspect {}", p.dev)))?;
        let mut fs_size = None;
        if p.resizefs && dev.has(&p.fstype) {
            let out = host.query_sh(format!("LC_ALL=C dumpe2fs -h {} 2>/dev/null", sh_quote(&dev.real))).await?;
            fs_size = parse_dumpe2fs(&out.stdout_str());
        }
        Ok(FsState { dev, fs_size })
    }

    fn plan(&self, p: &FilesystemParams, st: &FsState) -> Result<Plan, ModuleError> {
        Ok(su::to_plan(&steps(p, st)?))
    }

    fn data(&self, _p: &FilesystemParams, st: &FsState) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("device".into(), Value::from(st.dev.real.clone()));
        let sigs: Vec<Value> = st.dev.signatures.iter().map(|s| Value::from(s.kind.clone())).collect();
        m.insert("signatures".into(), Value::Array(sigs));
        if let Some(u) = st.dev.signatures.first().and_then(|s| s.uuid.clone()) {
            m.insert("uuid".into(), Value::from(u));
        }
        m
    }
}
