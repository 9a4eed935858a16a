//! Saved plans: `pbr run --check --save-plan FILE` writes what a check run planned, host by host;
//! `pbr apply FILE` runs the same playbooks only on the hosts whose plan is still the same, and
//! `pbr show FILE` prints it as `--check --diff` does.
//!
//! The file is JSON (format `pbr-plan`, version [`VERSION`]). Per host, in order, each task's
//! status, its changes (words, kind, diff: redacted as in the output) and a digest of the plan
//! (its changes and ops), salted with the file's random salt. A plan never holds a secret in
//! clear: secrets stay in the playbook, the vault and the command line, and apply resolves them
//! again; the digests, which may cover a secret (a file holding a Wi-Fi key), tell apply whether
//! what it resolved is what was planned. Apply refuses a host whose check run now differs in any
//! task, names the first difference, and writes nothing on it; then, in the real run, each task
//! checks its plan against its entry here just before it applies ([`PlanFile::guard`]), so that
//! a host that changes after that check is stopped before the write.

use crate::module::{Change, PlanGuard};
use crate::report::{HostReport, PlannedTask, Reporter, Stats, Status};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The `format` field of a plan file.
pub const FORMAT: &str = "pbr-plan";
/// The version of the plan file format this pbr reads and writes.
pub const VERSION: u32 = 1;

/// How the run was asked for: `pbr apply` runs the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSpec {
    /// Playbooks, absolute.
    pub playbooks: Vec<PathBuf>,
    /// Inventory sources as given (files absolute; host lists as they are).
    pub inventory: Vec<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip_tags: Vec<String>,
    /// Salted digest of the extra variables (`-e`): apply must be given the same ones.
    pub extra_vars: String,
}

/// A saved plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanFile {
    pub format: String,
    pub version: u32,
    /// The pbr version that wrote it: digests are of plans as that version states them.
    pub pbr: String,
    pub run: RunSpec,
    pub salt: String,
    pub hosts: IndexMap<String, Vec<PlannedTask>>,
}

/// Salted sha256 of a text.
pub fn salted(salt: &str, text: &str) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(salt.as_bytes());
    h.update([0]);
    h.update(text.as_bytes());
    hex::encode(h.finalize())
}

/// The digest of extra variables as a run sees them.
pub fn extra_vars_digest(salt: &str, vars: &Map<String, Value>) -> String {
    salted(salt, &serde_json::to_string(vars).unwrap_or_default())
}

/// A fresh random salt.
pub fn new_salt() -> Result<String, String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| format!("no randomness for the plan's salt: {e}"))?;
    Ok(hex::encode(b))
}

impl PlanFile {
    /// A plan of what `recorded` (a check run's results) says, with the digests salted.
    pub fn new(run: RunSpec, salt: String, recorded: IndexMap<String, Vec<PlannedTask>>) -> PlanFile {
        let hosts = recorded.into_iter().map(|(h, tasks)| (h, salt_all(&salt, tasks))).collect();
        PlanFile { format: FORMAT.into(), version: VERSION, pbr: env!("CARGO_PKG_VERSION").into(), run, salt, hosts }
    }

    /// Read a plan file, refusing another format or version.
    pub fn load(path: &Path) -> Result<PlanFile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: not a pbr plan (JSON: {e})", path.display()))?;
        if v.get("format").and_then(Value::as_str) != Some(FORMAT) {
            return Err(format!("{}: not a pbr plan (no \"format\": \"{FORMAT}\")", path.display()));
        }
        let version = v.get("version").and_then(Value::as_u64).unwrap_or(0);
        if version != u64::from(VERSION) {
            return Err(format!("{}: plan format version {version}; this pbr reads version {VERSION}", path.display()));
        }
        let plan: PlanFile =
            serde_json::from_value(v).map_err(|e| format!("{}: not a valid pbr plan: {e}", path.display()))?;
        if plan.pbr != env!("CARGO_PKG_VERSION") {
            return Err(format!(
                "{}: written by pbr {}; this is pbr {} (plans are compared as the version that wrote them states \
                 them: make the plan again)",
                path.display(),
                plan.pbr,
                env!("CARGO_PKG_VERSION")
            ));
        }
        Ok(plan)
    }

    /// Write it (mode 0600, atomically: a temp file renamed into place).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())? + "\n";
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = dir.join(format!(".{name}.pbr-tmp"));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("cannot write the plan to {}: {e}", path.display())
        })
    }

    /// Why `host`'s check run now (`now`, salted with this plan's salt) is not the plan: the first
    /// difference, or None when it is the same.
    pub fn drift(&self, host: &str, now: Option<&Vec<PlannedTask>>) -> Option<String> {
        let Some(was) = self.hosts.get(host) else {
            return Some("the plan has nothing for it".into());
        };
        let Some(now) = now else {
            return Some("it is not in this run".into());
        };
        let now = salt_all(&self.salt, now.clone());
        for (i, (a, b)) in was.iter().zip(&now).enumerate() {
            if a.task != b.task || a.item != b.item {
                return Some(format!("task {} is now \"{}\", the plan had \"{}\"", i + 1, label(b), label(a)));
            }
            if a.status != b.status || a.digest != b.digest {
                return Some(format!("task \"{}\" now plans {}; the plan had {}", label(b), describe(b), describe(a)));
            }
        }
        if was.len() != now.len() {
            return Some(format!("{} results now; the plan had {}", now.len(), was.len()));
        }
        None
    }

    /// The guard for one task of `pbr apply`'s run: the `n`-th result named `task` (and `item`)
    /// on `host` may apply only the changes the plan had for it (the same digest). A task the
    /// plan has no entry for, or skipped (its input was unknown in check mode), is not judged.
    pub fn guard(&self, host: &str, task: &str, item: Option<&str>, n: usize) -> Option<PlanGuard> {
        let entry =
            self.hosts.get(host)?.iter().filter(|t| t.task == task && t.item.as_deref() == item).nth(n)?.clone();
        if entry.status == Status::Skipped {
            return None;
        }
        let salt = self.salt.clone();
        Some(PlanGuard(Arc::new(move |digest: Option<&str>, changes: &[Change]| {
            if entry.digest.is_some() && digest.map(|d| salted(&salt, d)) == entry.digest {
                return Ok(());
            }
            let now = PlannedTask { status: Status::Changed, changes: changes.to_vec(), ..entry.clone() };
            Err(format!("task \"{}\" now plans {}; the plan had {}", label(&entry), describe(&now), describe(&entry)))
        })))
    }

    /// Print it as a check run with `--diff` prints, host by host, with a recap.
    pub fn show(&self, r: &Reporter) {
        let mut stats = vec![];
        for (host, tasks) in &self.hosts {
            r.play_start(&format!("plan for {host}"));
            let mut st = Stats::default();
            for t in tasks {
                r.task_start(&t.task, "TASK", "");
                let report = HostReport {
                    host: host.clone(),
                    status: t.status,
                    item: t.item.clone(),
                    msg: t.msg.clone(),
                    changes: t.changes.clone(),
                    data: Map::new(),
                    ignored: false,
                    delegated: None,
                    digest: None,
                };
                r.host_result(&t.task, &report);
                match t.status {
                    Status::Ok => st.ok += 1,
                    Status::Changed => {
                        st.ok += 1;
                        st.changed += 1
                    }
                    Status::Skipped => st.skipped += 1,
                    Status::Failed => st.failed += 1,
                    Status::Unreachable => st.unreachable += 1,
                }
            }
            stats.push((host.clone(), st));
        }
        r.recap(&stats);
    }
}

fn salt_all(salt: &str, tasks: Vec<PlannedTask>) -> Vec<PlannedTask> {
    tasks.into_iter().map(|t| PlannedTask { digest: t.digest.as_deref().map(|d| salted(salt, d)), ..t }).collect()
}

fn label(t: &PlannedTask) -> String {
    match &t.item {
        Some(i) => format!("{} (item={i})", t.task),
        None => t.task.clone(),
    }
}

/// "2 changes: ~ update /etc/motd; + create /x", "no change", "a failure"...
fn describe(t: &PlannedTask) -> String {
    match t.status {
        Status::Ok => "no change".into(),
        Status::Skipped => "to skip it".into(),
        Status::Failed => "a failure".into(),
        Status::Unreachable => "an unreachable host".into(),
        Status::Changed if t.changes.is_empty() => "a change".into(),
        Status::Changed => t
            .changes
            .iter()
            .map(|c: &Change| format!("{} {}", c.kind.symbol(), c.summary))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(name: &str, status: Status, digest: Option<&str>) -> PlannedTask {
        PlannedTask {
            task: name.into(),
            status,
            item: None,
            changes: if status == Status::Changed { vec![Change::new(format!("update {name}"))] } else { vec![] },
            msg: None,
            digest: digest.map(str::to_string),
        }
    }

    #[test]
    fn drift_names_the_first_difference() {
        let spec = RunSpec {
            playbooks: vec![],
            inventory: vec![],
            limit: None,
            tags: vec![],
            skip_tags: vec![],
            extra_vars: String::new(),
        };
        let mut rec = IndexMap::new();
        rec.insert("h1".to_string(), vec![task("a", Status::Changed, Some("d1")), task("b", Status::Ok, None)]);
        let plan = PlanFile::new(spec, "salt".into(), rec.clone());
        // the digests on file are salted
        assert_ne!(plan.hosts["h1"][0].digest.as_deref(), Some("d1"));
        assert_eq!(plan.drift("h1", rec.get("h1")), None);
        let now = vec![task("a", Status::Changed, Some("d2")), task("b", Status::Ok, None)];
        let why = plan.drift("h1", Some(&now)).unwrap();
        assert!(why.contains("task \"a\" now plans ~ update a"), "{why}");
        let now = vec![task("a", Status::Ok, None), task("b", Status::Ok, None)];
        assert!(plan.drift("h1", Some(&now)).unwrap().contains("now plans no change; the plan had ~ update a"));
        assert!(plan.drift("h1", Some(&vec![task("a", Status::Changed, Some("d1"))])).unwrap().contains("1 results"));
        assert!(plan.drift("h2", None).unwrap().contains("nothing for it"));
        assert!(plan.drift("h1", None).unwrap().contains("not in this run"));
    }

    #[test]
    fn a_file_of_another_version_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("plan.json");
        std::fs::write(&p, r#"{"format": "pbr-plan", "version": 99}"#).unwrap();
        assert!(PlanFile::load(&p).unwrap_err().contains("version 99"));
        std::fs::write(&p, "[]").unwrap();
        assert!(PlanFile::load(&p).unwrap_err().contains("not a pbr plan"));
    }
}
