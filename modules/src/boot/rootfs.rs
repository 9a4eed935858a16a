//! `rootfs`: put an operating system into an empty root file system, once, and write its fstab.
//!
//! A Pi that boots its root from iSCSI + bcache needs an OS on that new device: a copy of the
//! root it runs from now (the SD card's), or a fresh tarball. This module fills the device only
//! when it is empty (nothing but `lost+found`), never over data. A fill marks itself in progress
//! (`/.pbr-rootfs.partial`) and done (`/.pbr-rootfs`), so an interrupted fill is redone on the
//! next run rather than taken for a finished one.

use crate::storage_util::{self as su, DeviceInfo, Step};
use async_trait::async_trait;
use pbr_core::{Ctx, Diff, Doc, Module, ModuleError, Plan, ReadHost, sh_quote};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

fn default_source() -> String {
    "/".into()
}
fn default_mountpoint() -> String {
    "/mnt/pbr-rootfs".into()
}

/// The marker of a finished fill, at the top of the new root.
pub const DONE: &str = ".pbr-rootfs";
/// The marker of a fill in progress.
pub const PARTIAL: &str = ".pbr-rootfs.partial";

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RootfsParams {
    /// The new root's block device, with its file system already made (`/dev/bcache0`).
    pub dev: String,
    /// Copy this directory's file system (one file system: other mounts below it, such as
    /// `/boot`, `/proc` or `/run`, are left as empty mount points).
    #[serde(default = "default_source")]
    pub source: String,
    /// Extract this tarball (a path on the host, e.g. an Arch Linux ARM root tarball fetched by
    /// an earlier task) instead of copying `source`.
    #[serde(default)]
    pub tarball: Option<String>,
    /// The lines of the new root's `/etc/fstab`, written when it is filled (e.g.
    /// `/dev/bcache0 / ext4 rw,relatime 0 1` and `/dev/mmcblk0p1 /boot vfat defaults 0 2`).
    #[serde(default)]
    pub fstab: Vec<String>,
    /// Where the device is mounted while it is filled (created when missing).
    #[serde(default = "default_mountpoint")]
    pub mountpoint: String,
}

/// What the probe saw of the device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RootfsState {
    pub dev: DeviceInfo,
    /// Where the device is mounted now, if it is.
    pub mounted_at: Option<String>,
    /// The entries at the top of the file system (without `.`, `..` and `lost+found`); `None`
    /// when it could not be read (no file system yet).
    pub entries: Option<Vec<String>>,
}

impl RootfsState {
    fn has(&self, name: &str) -> bool {
        self.entries.as_ref().is_some_and(|e| e.iter().any(|x| x == name))
    }
}

/// The top-level names of a `debugfs -R 'ls -p /'` listing (`/INODE/MODE/UID/GID/NAME/SIZE/`).
pub fn parse_debugfs_ls(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split('/').collect();
            (f.len() >= 7).then(|| f[5].to_string())
        })
        .filter(|n| !n.is_empty() && n != "." && n != ".." && n != "lost+found")
        .collect()
}

fn what(p: &RootfsParams) -> String {
    match &p.tarball {
        Some(t) => format!("the tarball {t}"),
        None => format!("a copy of {}", p.source),
    }
}

/// The steps from `st` to `p`. Pure.
pub fn steps(p: &RootfsParams, st: &RootfsState) -> Result<Vec<Step>, ModuleError> {
    if st.has(DONE) {
        return Ok(vec![]);
    }
    let dev = &p.dev;
    let once = if !st.dev.exists {
        format!(" once {dev} exists")
    } else if st.entries.is_none() {
        format!(" once {dev} has a file system")
    } else {
        String::new()
    };
    let resume = st.has(PARTIAL);
    if let Some(e) = &st.entries
        && !e.is_empty()
        && !resume
    {
        let mut shown: Vec<&str> = e.iter().map(String::as_str).take(6).collect();
        if e.len() > 6 {
            shown.push("...");
        }
        return Err(ModuleError::new(format!(
            "{dev} already holds data that pbr did not put there ({}): refusing to fill it with {}; \
             empty it or point dev at another device",
            shown.join(", "),
            what(p)
        )));
    }
    let mp = match &st.mounted_at {
        Some(m) => m.clone(),
        None => p.mountpoint.clone(),
    };
    let m = sh_quote(&mp);
    let d = sh_quote(dev);
    let mut script = String::new();
    script.push_str(&format!(
        "[ -b {d} ] || {{ echo 'device {dev} does not exist' >&2; exit 1; }}\n\
         blkid -p -o value -s TYPE {d} >/dev/null || {{ echo '{dev} has no file system' >&2; exit 1; }}\n"
    ));
    let mounted_here = st.mounted_at.is_none();
    if mounted_here {
        script.push_str(&format!("mkdir -p {m}\nmount {d} {m}\n"));
    }
    script.push_str(&format!("date -u +%FT%TZ > {m}/{PARTIAL}\n"));
    match &p.tarball {
        Some(t) => {
            let t = sh_quote(t);
            script.push_str(&format!(
                "[ -f {t} ] || {{ echo 'no tarball '{t} >&2; exit 1; }}\ntar -x -p --numeric-owner -f {t} -C {m}\n"
            ));
        }
        None => {
            let src = format!("{}/.", p.source.trim_end_matches('/'));
            script.push_str(&format!("cp -ax {} {m}/\n", sh_quote(&src)));
        }
    }
    if !p.fstab.is_empty() {
        let text: String = p.fstab.iter().map(|l| format!("{l}\n")).collect();
        script.push_str(&format!(
            "mkdir -p {m}/etc\nprintf '# Written by pbr (rootfs) when this root was filled.\\n%s' {} > {m}/etc/fstab\n",
            sh_quote(&text)
        ));
    }
    script.push_str(&format!("sync\nprintf '%s\\n' {} > {m}/{DONE}\nrm -f {m}/{PARTIAL}\nsync\n", sh_quote(&what(p))));
    if mounted_here {
        script.push_str(&format!("umount {m}\n"));
    }
    let summary = if resume {
        format!("the root on {dev} is filled again with {} (a previous fill did not finish){once}", what(p))
    } else {
        format!("the empty root on {dev} is filled with {}{once}", what(p))
    };
    let mut after = vec![("contents".to_string(), what(p))];
    if !p.fstab.is_empty() {
        after.push(("fstab".to_string(), p.fstab.join("; ")));
    }
    let before = if resume { "an unfinished fill" } else { "empty" };
    Ok(vec![Step::new(summary, script).with_diff(Diff::state(
        &format!("root on {dev}"),
        &[("contents".into(), before.into())],
        &after,
    ))])
}

pub struct Rootfs;

#[async_trait]
impl Module for Rootfs {
    type Params = RootfsParams;
    type State = RootfsState;
    const NAME: &'static str = "rootfs";

    fn doc(&self) -> Doc {
        Doc {
            description: "Fill an empty root file system once: a copy of a directory's file system (`source`, the \
                          running root by default: `cp -ax`, so other mounts stay empty mount points) or a \
                          tarball on the host (`tarball`), then write its `/etc/fstab` from `fstab`. The device \
                          must already have a file system (see `filesystem`). A device whose file system holds \
                          anything besides `lost+found` is refused, never written over. The fill writes \
                          `/.pbr-rootfs.partial` first and `/.pbr-rootfs` last: an interrupted fill is done \
                          again on the next run, a finished one is never repeated (later changes to the source \
                          do not reach the copy). ext2/3/4 file systems are inspected without mounting them \
                          (`debugfs`); the device is mounted on `mountpoint` only to fill it.",
            examples: r#"- name: The Pi's new root gets a copy of the SD card's root
  rootfs:
    dev: /dev/bcache0
    fstab:
      - /dev/bcache0 / ext4 rw,relatime 0 1
      - /dev/mmcblk0p1 /boot vfat defaults 0 2

- name: Or a fresh Arch Linux ARM root from a tarball fetched earlier
  rootfs:
    dev: /dev/bcache0
    tarball: /var/tmp/ArchLinuxARM-rpi-aarch64-latest.tar.gz
    fstab:
      - /dev/bcache0 / ext4 rw,relatime 0 1
"#,
        }
    }

    fn validate(&self, p: &RootfsParams) -> Result<(), String> {
        for (k, v) in [("dev", &p.dev), ("source", &p.source), ("mountpoint", &p.mountpoint)] {
            if !v.starts_with('/') || v.contains(['\n', '\0']) {
                return Err(format!("{k} must be an absolute path, got {v:?}"));
            }
        }
        if p.tarball.is_some() && p.source != "/" {
            return Err("source and tarball are mutually exclusive".into());
        }
        if let Some(t) = &p.tarball
            && (!t.starts_with('/') || t.contains(['\n', '\0']))
        {
            return Err(format!("tarball must be an absolute path on the host, got {t:?}"));
        }
        for l in &p.fstab {
            if l.contains(['\n', '\0']) || l.split_whitespace().count() < 2 {
                return Err(format!("fstab line {l:?}: one line of at least `SPEC FILE`"));
            }
        }
        Ok(())
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &RootfsParams, host: &ReadHost) -> Result<RootfsState, ModuleError> {
        let dev = su::probe_devices(host, &[p.dev.as_str()])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| ModuleError::new(format!("cannot inspect {}", p.dev)))?;
        let mut st = RootfsState { dev, ..Default::default() };
        if !st.dev.exists || st.dev.signatures.is_empty() {
            return Ok(st);
        }
        let d = sh_quote(&st.dev.real);
        // where it is mounted: the first mount whose source resolves to the device
        let out = host
            .query_sh(format!(
                "export LC_ALL=C\nwhile read -r src mp _; do\n  case \"$src\" in /dev/*) ;; *) continue ;; esac\n  \
                 [ \"$(readlink -f \"$src\")\" = {d} ] && {{ printf '%b\\n' \"$mp\"; break; }}\ndone < /proc/self/mounts"
            ))
            .await?;
        st.mounted_at = out.stdout_str().lines().next().map(str::to_string).filter(|s| !s.is_empty());
        let list = match &st.mounted_at {
            Some(mp) => host.query_sh(format!("ls -A {}", sh_quote(mp))).await?,
            None if st.dev.signatures.iter().any(|s| matches!(s.kind.as_str(), "ext2" | "ext3" | "ext4")) => {
                host.query_sh(format!("debugfs -R 'ls -p /' {d} 2>/dev/null")).await?
            }
            None => {
                let kinds: Vec<&str> = st.dev.signatures.iter().map(|s| s.kind.as_str()).collect();
                return Err(ModuleError::new(format!(
                    "{} holds {} and is not mounted: rootfs reads an unmounted ext2/3/4 file system only",
                    p.dev,
                    kinds.join(", ")
                )));
            }
        };
        if list.rc == 127 {
            return Err(ModuleError::new(format!(
                "cannot look inside {}: {} is not installed on the host",
                p.dev,
                if st.mounted_at.is_some() { "ls" } else { "debugfs (e2fsprogs)" }
            )));
        }
        if list.rc != 0 {
            return Err(ModuleError::new(format!(
                "cannot list the file system on {}: {}",
                p.dev,
                list.stderr_str().trim()
            )));
        }
        let text = list.stdout_str();
        st.entries = Some(match &st.mounted_at {
            Some(_) => text.lines().filter(|n| !n.is_empty() && *n != "lost+found").map(str::to_string).collect(),
            None => parse_debugfs_ls(&text),
        });
        Ok(st)
    }

    fn plan(&self, p: &RootfsParams, st: &RootfsState) -> Result<Plan, ModuleError> {
        Ok(su::to_plan(&steps(p, st)?))
    }

    fn data(&self, _p: &RootfsParams, st: &RootfsState) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("device".into(), Value::from(st.dev.real.clone()));
        m.insert("filled".into(), Value::from(st.has(DONE)));
        if let Some(mp) = &st.mounted_at {
            m.insert("mounted_at".into(), Value::from(mp.clone()));
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage_util::Signature;

    fn params() -> RootfsParams {
        RootfsParams {
            dev: "/dev/bcache0".into(),
            source: "/".into(),
            tarball: None,
            fstab: vec!["/dev/bcache0 / ext4 rw 0 1".into()],
            mountpoint: "/mnt/pbr-rootfs".into(),
        }
    }

    fn ext4(entries: Option<Vec<&str>>) -> RootfsState {
        RootfsState {
            dev: DeviceInfo {
                path: "/dev/bcache0".into(),
                real: "/dev/bcache0".into(),
                exists: true,
                kind: "block".into(),
                size: 1 << 30,
                signatures: vec![Signature { kind: "ext4".into(), offset: "0x438".into(), label: None, uuid: None }],
            },
            mounted_at: None,
            entries: entries.map(|e| e.into_iter().map(str::to_string).collect()),
        }
    }

    #[test]
    fn debugfs_listing() {
        // `debugfs -R 'ls -p /'` of a fresh mkfs.ext4, captured from e2fsprogs 1.47
        let fresh = "/2/040755/0/0/.//\n/2/040755/0/0/..//\n/11/040700/0/0/lost+found//\n";
        assert!(parse_debugfs_ls(fresh).is_empty());
        let filled = "/2/040755/0/0/.//\n/2/040755/0/0/..//\n/11/040700/0/0/lost+found//\n\
                      /12/040755/0/0/etc//\n/13/100644/0/0/.pbr-rootfs/22/\n";
        assert_eq!(parse_debugfs_ls(filled), vec!["etc", ".pbr-rootfs"]);
    }

    #[test]
    fn plans() {
        let p = params();
        let s = steps(&p, &ext4(Some(vec![]))).unwrap();
        assert_eq!(s.len(), 1);
        assert!(s[0].summary.contains("empty root on /dev/bcache0 is filled with a copy of /"), "{}", s[0].summary);
        assert!(s[0].script.contains("cp -ax '/.' '/mnt/pbr-rootfs'/") || s[0].script.contains("cp -ax /. "));
        let done = s[0].script.find(&format!("/{DONE}\n")).unwrap();
        let copy = s[0].script.find("cp -ax").unwrap();
        assert!(copy < done, "the done marker is written after the copy");
        assert!(steps(&p, &ext4(Some(vec!["etc", DONE]))).unwrap().is_empty());
        let e = steps(&p, &ext4(Some(vec!["home", "etc"]))).unwrap_err();
        assert!(e.msg.contains("already holds data") && e.msg.contains("home, etc"), "{}", e.msg);
        let again = steps(&p, &ext4(Some(vec!["etc", PARTIAL]))).unwrap();
        assert!(again[0].summary.contains("did not finish"), "{}", again[0].summary);
        // no file system yet (check mode before `filesystem` ran)
        let mut none = ext4(None);
        none.dev.signatures.clear();
        assert!(steps(&p, &none).unwrap()[0].summary.ends_with("once /dev/bcache0 has a file system"));
        // mounted already: no mount, no umount
        let mut m = ext4(Some(vec![]));
        m.mounted_at = Some("/srv/new".into());
        let s = steps(&p, &m).unwrap();
        assert!(!s[0].script.contains("\nmount ") && !s[0].script.contains("umount"));
        assert!(s[0].script.contains("/srv/new"));
    }
}
