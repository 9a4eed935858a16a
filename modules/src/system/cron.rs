//! `cron`: a named job or variable in a user's crontab or in a cron file, as Ansible's `cron`
//! edits them (`#Ansible: NAME` above each job).

use async_trait::async_trait;
use pbr_core::params::Presence;
use pbr_core::params::bool_lenient;
use pbr_core::{Change, Ctx, Diff, Doc, Module, ModuleError, Op, Plan, ReadHost, sh_quote};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

fn star() -> String {
    "*".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Special {
    Reboot,
    Yearly,
    Annually,
    Monthly,
    Weekly,
    Daily,
    Hourly,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CronParams {
    /// The job's name (its `#Ansible: NAME` line), or the variable's with `env`.
    pub name: String,
    /// Whose crontab (`crontab -u USER`); with `cron_file`, the user the job runs as.
    #[serde(default)]
    pub user: Option<String>,
    /// The command (or the variable's value with `env`); required with `state: present`.
    #[serde(default, alias = "value")]
    pub job: Option<String>,
    /// A file under /etc/cron.d (a bare name) or an absolute path, instead of a user's crontab.
    #[serde(default)]
    pub cron_file: Option<String>,
    /// `present` adds or updates the job; `absent` removes it (and an emptied `cron_file`).
    #[serde(default)]
    pub state: Presence,
    /// Accepted for compatibility: the old crontab is shown by `--diff` instead.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub backup: bool,
    #[serde(default = "star")]
    pub minute: String,
    #[serde(default = "star")]
    pub hour: String,
    #[serde(default = "star", alias = "dom")]
    pub day: String,
    #[serde(default = "star")]
    pub month: String,
    #[serde(default = "star", alias = "dow")]
    pub weekday: String,
    /// `@reboot`, `@daily`... instead of the time fields.
    #[serde(default)]
    pub special_time: Option<Special>,
    /// Keep the job, commented out.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub disabled: bool,
    /// A variable (`NAME="job"`) instead of a job.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub env: bool,
    /// With `env`: put a new variable after this one (else first).
    #[serde(default)]
    pub insertafter: Option<String>,
    /// With `env`: put a new variable before this one.
    #[serde(default)]
    pub insertbefore: Option<String>,
}

const TAG: &str = "#Ansible: ";

impl CronParams {
    fn file(&self) -> Option<String> {
        self.cron_file.as_ref().map(|f| if f.starts_with('/') { f.clone() } else { format!("/etc/cron.d/{f}") })
    }

    fn job_line(&self) -> String {
        let job = self.job.as_deref().unwrap_or("").trim_matches(['\r', '\n']);
        let off = if self.disabled { "#" } else { "" };
        let user = match (&self.cron_file, &self.user) {
            (Some(_), Some(u)) => format!("{u} "),
            _ => String::new(),
        };
        match self.special_time {
            Some(s) => {
                let s = serde_json::to_value(s).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                format!("{off}@{s} {user}{job}")
            }
            None => {
                format!("{off}{} {} {} {} {} {user}{job}", self.minute, self.hour, self.day, self.month, self.weekday)
            }
        }
    }
}

/// The edited lines, whether they changed, and whether the cron file is to be removed.
pub fn edit(p: &CronParams, existing: &str) -> Result<(Vec<String>, bool), String> {
    let mut lines: Vec<String> = existing.lines().map(str::to_string).collect();
    let mut changed = false;
    let present = p.state == Presence::Present;
    if p.env {
        let decl = format!("{}=\"{}\"", p.name, p.job.as_deref().unwrap_or(""));
        let is_decl = |l: &str, n: &str| l.strip_prefix(n).is_some_and(|r| r.starts_with('='));
        let old = lines.iter().position(|l| is_decl(l, &p.name));
        match (present, old) {
            (true, None) => {
                let at = match (&p.insertafter, &p.insertbefore) {
                    (Some(o), _) | (None, Some(o)) => {
                        let i = lines
                            .iter()
                            .position(|l| is_decl(l, o))
                            .ok_or_else(|| format!("Variable named '{o}' not found."))?;
                        if p.insertafter.is_some() { i + 1 } else { i }
                    }
                    (None, None) => 0,
                };
                lines.insert(at, decl);
                changed = true;
            }
            (true, Some(i)) if lines[i] != decl => {
                for l in lines.iter_mut().filter(|l| is_decl(l, &p.name)) {
                    l.clone_from(&decl);
                }
                changed = true;
            }
            (false, Some(_)) => {
                lines.retain(|l| !is_decl(l, &p.name));
                changed = true;
            }
            _ => {}
        }
        return Ok((lines, changed));
    }
    let tag = format!("{TAG}{}", p.name);
    // replace (or drop) the line after each `#Ansible: NAME`, as Ansible's module does
    let rewrite = |lines: &[String], job: Option<&str>| -> Vec<String> {
        let mut out = vec![];
        let mut after_tag = false;
        for l in lines {
            if after_tag {
                if let Some(j) = job {
                    out.push(tag.clone());
                    out.push(j.to_string());
                }
                after_tag = false;
            } else if *l == tag {
                after_tag = true;
            } else {
                out.push(l.clone());
            }
        }
        out
    };
    let named = lines.windows(2).find(|w| w[0] == tag).map(|w| w[1].clone());
    if present {
        let job = p.job_line();
        let mut adopted = false;
        if named.is_none()
            && let Some(i) = lines.iter().position(|l| *l == job)
        {
            // a job line without its name gets the name (Ansible looks at the line before it)
            let prev = if i == 0 { lines.last() } else { lines.get(i - 1) };
            if !prev.is_some_and(|l| l.starts_with(TAG)) {
                lines.insert(i, tag.clone());
                adopted = true;
            } else if prev.is_some_and(|l| l == "#Ansible: None") {
                let at = if i == 0 { lines.len() - 1 } else { i - 1 };
                lines[at] = tag.clone();
                adopted = true;
            }
        }
        match named {
            _ if adopted => {
                lines = rewrite(&lines, Some(&job));
                changed = true;
            }
            None => {
                lines.push(tag.clone());
                lines.push(job);
                changed = true;
            }
            Some(old) if old != job => {
                lines = rewrite(&lines, Some(&job));
                changed = true;
            }
            Some(_) => {}
        }
    } else if named.is_some() {
        lines = rewrite(&lines, None);
        changed = true;
    }
    if !changed && !existing.is_empty() && !existing.ends_with(['\r', '\n']) {
        changed = true;
    }
    Ok((lines, changed))
}

fn render(lines: &[String]) -> String {
    let s = lines.join("\n");
    if s.is_empty() { s } else { format!("{}\n", s.trim_end_matches(['\r', '\n'])) }
}

pub struct Cron;

pub struct CronState {
    existing: Option<String>,
    /// The user's crontab is read and written with `-u USER` (another user than the one pbr runs as).
    dash_u: bool,
}

#[async_trait]
impl Module for Cron {
    type Params = CronParams;
    type State = CronState;
    const NAME: &'static str = "cron";

    fn doc(&self) -> Doc {
        Doc {
            description: "Add, update, disable or remove a named cron job (or a variable with `env`) in a \
                          user's crontab (through `crontab`) or in a cron file. Each job sits under its \
                          `#Ansible: NAME` line, as Ansible's `cron` writes it, so playbooks can move between \
                          the two tools. A cron file whose last job is removed is removed too (a variable's removal leaves it, as in Ansible).",
            examples: r#"- name: Trim the Pi LVs' filesystems every week
  cron:
    name: fstrim
    special_time: weekly
    job: /sbin/fstrim -a
    user: root
    cron_file: fstrim

- name: Mail nobody
  cron:
    name: MAILTO
    env: true
    job: ""
"#,
        }
    }

    fn validate(&self, p: &CronParams) -> Result<(), String> {
        if p.cron_file.as_deref() == Some("/etc/crontab") {
            return Err("Will not manage /etc/crontab via cron_file, see documentation.".into());
        }
        if p.special_time.is_some() && [&p.minute, &p.hour, &p.day, &p.month, &p.weekday].iter().any(|f| *f != "*") {
            return Err("You must specify time and date fields or special time.".into());
        }
        if p.insertafter.is_some() && p.insertbefore.is_some() {
            return Err("parameters are mutually exclusive: insertafter|insertbefore".into());
        }
        if p.state == Presence::Present {
            if p.cron_file.is_some() && p.user.is_none() {
                return Err("To use cron_file=... parameter you must specify user=... as well".into());
            }
            if p.job.is_none() {
                return Err("You must specify 'job' to install a new cron job or variable".into());
            }
            if (p.insertafter.is_some() || p.insertbefore.is_some()) && !p.env {
                return Err("Insertafter and insertbefore parameters are valid only with env=yes".into());
            }
        }
        if p.env && p.name.contains(' ') {
            return Err("Invalid name for environment variable".into());
        }
        Ok(())
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &CronParams, host: &ReadHost) -> Result<CronState, ModuleError> {
        if let Some(f) = p.file() {
            let existing = host.read_file(&f).await?.map(|b| String::from_utf8_lossy(&b).into_owned());
            return Ok(CronState { existing, dash_u: false });
        }
        let me = host.query_sh("id -un").await?.stdout_str().trim().to_string();
        let dash_u = p.user.as_ref().is_some_and(|u| *u != me);
        let out = host.query_sh(format!("crontab {}-l", user_arg(p, dash_u))).await?;
        if out.rc != 0 && out.rc != 1 {
            return Err(ModuleError::new(format!("Unable to read crontab: {}", out.stderr_str().trim())));
        }
        // crontab's own header lines (at most the first three) are not the user's
        let text = out.stdout_str();
        let mut kept = String::new();
        for (i, l) in text.split_inclusive('\n').enumerate() {
            let header = l.starts_with("# DO NOT EDIT THIS FILE - edit the master and reinstall.")
                || (l.starts_with("# (/tmp/") && l.contains("installed on"))
                || (l.starts_with("# (") && l.contains("version"));
            if i > 2 || !header {
                kept.push_str(l);
            }
        }
        Ok(CronState { existing: Some(kept), dash_u })
    }

    fn plan(&self, p: &CronParams, st: &CronState) -> Result<Plan, ModuleError> {
        let before = st.existing.as_deref().unwrap_or("");
        let (lines, changed) = edit(p, before).map_err(ModuleError::new)?;
        let mut plan = Plan::empty();
        if !changed {
            return Ok(plan);
        }
        let after = render(&lines);
        let what = if p.env { format!("variable {}", p.name) } else { format!("job {:?}", p.name) };
        let verb = match p.state {
            Presence::Present => "set",
            Presence::Absent => "removed",
        };
        match p.file() {
            Some(f) if p.state == Presence::Absent && !p.env && after.trim().is_empty() => {
                plan.push(
                    Change::remove(format!("remove {f} ({what} was its last)")).with_diff(Diff::file(&f, before, "")),
                );
                plan.op(Op::Run {
                    what: format!("remove {f}"),
                    script: format!("rm -f -- {}", sh_quote(&f)),
                    stdin: None,
                    makes: vec![],
                    removes: vec![f.clone()],
                });
            }
            Some(f) => {
                let c = if st.existing.is_none() {
                    Change::create(format!("create {f}: {what} {verb}"))
                } else {
                    Change::new(format!("{f}: {what} {verb}"))
                };
                plan.push(c.with_diff(Diff::file(&f, before, after.clone())));
                plan.op(Op::WriteFile {
                    mode: st.existing.is_none().then_some(0o644),
                    path: f,
                    content: after.into_bytes(),
                    owner: None,
                    group: None,
                    backup: false,
                    validate: None,
                });
            }
            None => {
                let whose =
                    p.user.as_deref().map(|u| format!("crontab for user \"{u}\"")).unwrap_or_else(|| "crontab".into());
                plan.push(Change::new(format!("{whose}: {what} {verb}")).with_diff(Diff::file(
                    &whose,
                    before,
                    after.clone(),
                )));
                plan.op(Op::Run {
                    what: format!("write the {whose}"),
                    script: format!("crontab {}-", user_arg(p, st.dash_u)),
                    stdin: Some(after.into_bytes()),
                    makes: vec![],
                    removes: vec![],
                });
            }
        }
        Ok(plan)
    }

    fn data(&self, p: &CronParams, st: &CronState) -> Map<String, Value> {
        let mut m = Map::new();
        let (lines, _) = edit(p, st.existing.as_deref().unwrap_or("")).unwrap_or_default();
        let jobs: Vec<&str> = lines.iter().filter_map(|l| l.strip_prefix(TAG)).collect();
        let envs: Vec<&str> = lines
            .iter()
            .filter(|l| l.split_once('=').is_some_and(|(k, _)| !k.is_empty() && !k.contains(char::is_whitespace)))
            .map(|l| l.split('=').next().unwrap_or(""))
            .collect();
        m.insert("jobs".into(), json!(jobs));
        m.insert("envs".into(), json!(envs));
        if let Some(f) = &p.cron_file {
            m.insert("cron_file".into(), json!(f));
        }
        m
    }
}

fn user_arg(p: &CronParams, dash_u: bool) -> String {
    match &p.user {
        Some(u) if dash_u => format!("-u {} ", sh_quote(u)),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: Value) -> CronParams {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn jobs_are_named_updated_and_removed() {
        let p = params(json!({"name": "trim", "job": "fstrim -a", "special_time": "weekly"}));
        let (l, ch) = edit(&p, "").unwrap();
        assert!(ch);
        assert_eq!(render(&l), "#Ansible: trim\n@weekly fstrim -a\n");
        assert!(!edit(&p, "#Ansible: trim\n@weekly fstrim -a\n").unwrap().1);
        // a missing last newline is a change
        assert!(edit(&p, "#Ansible: trim\n@weekly fstrim -a").unwrap().1);
        let q = params(
            json!({"name": "trim", "job": "fstrim -a", "hour": "3", "minute": "0", "user": "root", "cron_file": "x"}),
        );
        let (l, _) = edit(&q, "MAILTO=\"\"\n#Ansible: trim\n@weekly root fstrim -a\n").unwrap();
        assert_eq!(render(&l), "MAILTO=\"\"\n#Ansible: trim\n0 3 * * * root fstrim -a\n");
        // the job line found without its name gets it
        let (l, ch) = edit(&p, "@weekly fstrim -a\n").unwrap();
        assert!(ch);
        assert_eq!(render(&l), "#Ansible: trim\n@weekly fstrim -a\n");
        let gone = params(json!({"name": "trim", "state": "absent"}));
        assert_eq!(render(&edit(&gone, "A=1\n#Ansible: trim\n@weekly fstrim -a\n").unwrap().0), "A=1\n");
    }

    #[test]
    fn variables() {
        let p = params(json!({"name": "PATH", "env": true, "job": "/bin", "insertafter": "MAILTO"}));
        assert_eq!(
            render(&edit(&p, "MAILTO=\"\"\n* * * * * x\n").unwrap().0),
            "MAILTO=\"\"\nPATH=\"/bin\"\n* * * * * x\n"
        );
        assert!(edit(&p, "").is_err());
        let first = params(json!({"name": "SHELL", "env": true, "job": "/bin/sh"}));
        assert_eq!(render(&edit(&first, "A=\"1\"\n").unwrap().0), "SHELL=\"/bin/sh\"\nA=\"1\"\n");
    }
}
