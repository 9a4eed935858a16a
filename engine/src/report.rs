//! Reporting: Ansible-like human output, or one JSON object per line.

use crate::module::{Change, ChangeKind, Diff};
use serde_json::{Value, json};
use std::io::Write;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Changed,
    Skipped,
    Failed,
    Unreachable,
}

/// One host's result for a task (or for one loop item).
#[derive(Debug, Clone)]
pub struct HostReport {
    pub host: String,
    pub status: Status,
    pub item: Option<String>,
    pub msg: Option<String>,
    pub changes: Vec<Change>,
    /// Extra fields for `-v` and JSON (already censored for no_log).
    pub data: serde_json::Map<String, Value>,
    /// A failure that `ignore_errors` turned into "ok, ignored".
    pub ignored: bool,
    /// Delegation target, shown as `[host -> target]`.
    pub delegated: Option<String>,
    /// A digest of the module's plan (its changes and ops), for saved plans; None when the task
    /// planned nothing or is not a module.
    pub digest: Option<String>,
}

/// One task's result on one host as a saved plan keeps it (`pbr run --check --save-plan`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlannedTask {
    pub task: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg: Option<String>,
    /// The plan's digest, salted with the plan file's salt (it may depend on secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    pub ok: u32,
    pub changed: u32,
    pub unreachable: u32,
    pub failed: u32,
    pub skipped: u32,
    pub rescued: u32,
    pub ignored: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
    /// JUnit XML at the end of the run (test dashboards): one test case per task and host, as
    /// Ansible's junit callback writes them.
    Junit,
}

/// The JUnit report in progress: the play and task running (name, location, start) and the
/// cases so far.
type JunitState = (String, String, String, Option<std::time::Instant>, Vec<JunitCase>);

/// One task on one host, for the JUnit report.
#[derive(Debug, Clone)]
struct JunitCase {
    play: String,
    task: String,
    location: String,
    host: String,
    status: Status,
    ignored: bool,
    msg: Option<String>,
    changes: Vec<String>,
    secs: f64,
}

/// Where run events go. Thread-safe; lines are written whole.
pub struct Reporter {
    pub format: Format,
    pub color: bool,
    pub diff: bool,
    pub verbosity: u8,
    /// Strings that must never be printed (become passwords, psk...). Replaced by `<redacted>`.
    secrets: Mutex<Vec<String>>,
    out: Mutex<Box<dyn Write + Send>>,
    /// Live progress on a terminal (stderr): which task, how many hosts done, which are slow.
    progress: Option<Mutex<Option<Progress>>>,
    /// With [`Reporter::recording`]: every result by host, in order, redacted, for a saved plan.
    record: Option<Mutex<indexmap::IndexMap<String, Vec<PlannedTask>>>>,
    /// With [`Format::Junit`]: the play and task running (name, location, start), and the cases.
    junit: Mutex<JunitState>,
}

struct Progress {
    bar: indicatif::ProgressBar,
    pending: Vec<String>,
}

fn stars(title: &str) -> String {
    let n = 79usize.saturating_sub(title.chars().count() + 1).max(3);
    format!("{title} {}", "*".repeat(n))
}

impl Reporter {
    pub fn new(format: Format, color: bool, diff: bool, verbosity: u8, out: Box<dyn Write + Send>) -> Reporter {
        Reporter {
            format,
            color,
            diff,
            verbosity,
            secrets: Mutex::new(Vec::new()),
            out: Mutex::new(out),
            progress: None,
            record: None,
            junit: Mutex::new(Default::default()),
        }
    }

    /// Also keep every result, by host and in order, for a saved plan ([`Reporter::recorded`]).
    pub fn recording(mut self) -> Reporter {
        self.record = Some(Mutex::new(indexmap::IndexMap::new()));
        self
    }

    /// What [`Reporter::recording`] kept (secrets redacted as in the output).
    pub fn recorded(&self) -> indexmap::IndexMap<String, Vec<PlannedTask>> {
        match &self.record {
            Some(r) => r.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            None => Default::default(),
        }
    }

    fn keep(&self, task: &str, r: &HostReport) {
        let Some(rec) = &self.record else { return };
        let changes = r
            .changes
            .iter()
            .map(|c| Change {
                kind: c.kind,
                summary: self.redact(c.summary.clone()),
                diff: c.diff.as_ref().map(|d| Diff {
                    before_header: self.redact(d.before_header.clone()),
                    after_header: self.redact(d.after_header.clone()),
                    before: self.redact(d.before.clone()),
                    after: self.redact(d.after.clone()),
                }),
            })
            .collect();
        let t = PlannedTask {
            task: self.redact(task.to_string()),
            status: r.status,
            item: r.item.clone().map(|i| self.redact(i)),
            changes,
            msg: r.msg.clone().filter(|_| r.status == Status::Skipped).map(|m| self.redact(m)),
            digest: r.digest.clone(),
        };
        rec.lock().unwrap_or_else(|e| e.into_inner()).entry(r.host.clone()).or_default().push(t);
    }

    /// Show live progress on stderr (only sensible when stderr is a terminal).
    pub fn with_progress(mut self) -> Reporter {
        self.progress = Some(Mutex::new(None));
        self
    }

    /// A task starts on these hosts.
    pub fn progress_start(&self, task: &str, hosts: &[String]) {
        let Some(p) = &self.progress else { return };
        let mut g = p.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = g.take() {
            old.bar.finish_and_clear();
        }
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(hosts.len() as u64),
            indicatif::ProgressDrawTarget::stderr_with_hz(10),
        );
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {prefix} {pos}/{len} hosts {elapsed} {wide_msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        let short: String = task.chars().take(40).collect();
        bar.set_prefix(short);
        bar.enable_steady_tick(std::time::Duration::from_millis(100));
        *g = Some(Progress { bar, pending: hosts.to_vec() });
    }

    /// A host finished the current task.
    pub fn progress_done(&self, host: &str) {
        let Some(p) = &self.progress else { return };
        let mut g = p.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pr) = g.as_mut() {
            pr.pending.retain(|h| h != host);
            pr.bar.inc(1);
            if !pr.pending.is_empty() {
                let names: Vec<&str> = pr.pending.iter().take(5).map(String::as_str).collect();
                let more = pr.pending.len().saturating_sub(5);
                let tail = if more > 0 { format!(" +{more}") } else { String::new() };
                pr.bar.set_message(format!("waiting for {}{tail}", names.join(", ")));
            }
        }
    }

    /// The current task is over.
    pub fn progress_end(&self) {
        let Some(p) = &self.progress else { return };
        if let Some(pr) = p.lock().unwrap_or_else(|e| e.into_inner()).take() {
            pr.bar.finish_and_clear();
        }
    }

    /// Register a value that must never reach output.
    pub fn add_secret(&self, s: &str) {
        if s.len() >= 3 {
            let mut v = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
            if !v.iter().any(|x| x == s) {
                v.push(s.to_string());
            }
        }
    }

    pub(crate) fn redact(&self, text: String) -> String {
        let v = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
        let mut t = text;
        for s in v.iter() {
            if t.contains(s.as_str()) {
                t = t.replace(s.as_str(), "<redacted>");
            }
        }
        crate::vault::redact_revealed(&mut t);
        t
    }

    fn write(&self, text: String) {
        let text = self.redact(text);
        let emit = || {
            let mut o = self.out.lock().unwrap_or_else(|e| e.into_inner());
            let _ = o.write_all(text.as_bytes());
            let _ = o.flush();
        };
        match &self.progress {
            Some(p) => {
                let g = p.lock().unwrap_or_else(|e| e.into_inner());
                match g.as_ref() {
                    Some(pr) => pr.bar.suspend(emit),
                    None => emit(),
                }
            }
            None => emit(),
        }
    }

    fn json(&self, v: Value) {
        self.write(format!("{v}\n"));
    }

    fn c(&self, code: &str, s: &str) -> String {
        if self.color { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() }
    }

    pub fn play_start(&self, name: &str) {
        match self.format {
            Format::Human => self.write(format!("\n{}\n", stars(&format!("PLAY [{name}]")))),
            Format::Json => self.json(json!({"event": "play_start", "play": name})),
            Format::Junit => self.junit.lock().unwrap_or_else(|e| e.into_inner()).0 = name.to_string(),
        }
    }

    pub fn task_start(&self, name: &str, kind: &str, location: &str) {
        match self.format {
            Format::Human => {
                let mut s = format!("\n{}\n", stars(&format!("{kind} [{name}]")));
                if self.verbosity >= 2 {
                    s.push_str(&format!("task path: {location}\n"));
                }
                self.write(s)
            }
            Format::Json => self.json(json!({"event": "task_start", "task": name, "kind": kind, "location": location})),
            Format::Junit => {
                let mut j = self.junit.lock().unwrap_or_else(|e| e.into_inner());
                j.1 = name.to_string();
                j.2 = location.to_string();
                j.3 = Some(std::time::Instant::now());
            }
        }
    }

    pub fn warning(&self, msg: &str) {
        match self.format {
            Format::Human => self.write(format!("{}\n", self.c("1;35", &format!("[WARNING]: {msg}")))),
            Format::Json => self.json(json!({"event": "warning", "msg": msg})),
            Format::Junit => {}
        }
    }

    pub fn host_result(&self, task: &str, r: &HostReport) {
        self.keep(task, r);
        if self.format == Format::Junit {
            let mut j = self.junit.lock().unwrap_or_else(|e| e.into_inner());
            let secs = j.3.map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0);
            let case = JunitCase {
                play: j.0.clone(),
                task: task.to_string(),
                location: j.2.clone(),
                host: r.host.clone(),
                status: r.status,
                ignored: r.ignored,
                msg: r.msg.as_ref().map(|m| self.redact(m.clone())),
                changes: r.changes.iter().map(|c| self.redact(format!("{} {}", c.kind.symbol(), c.summary))).collect(),
                secs,
            };
            j.4.push(case);
            return;
        }
        if self.format == Format::Json {
            let mut v = json!({
                "event": "result",
                "task": task,
                "host": r.host,
                "status": r.status,
                "changed": r.status == Status::Changed,
                "failed": r.status == Status::Failed,
                "ignored": r.ignored,
            });
            if let Some(o) = v.as_object_mut() {
                if let Some(i) = &r.item {
                    o.insert("item".into(), json!(i));
                }
                if let Some(m) = &r.msg {
                    o.insert("msg".into(), json!(m));
                }
                if !r.changes.is_empty() {
                    o.insert("changes".into(), serde_json::to_value(&r.changes).unwrap_or(Value::Null));
                }
                if let Some(d) = &r.delegated {
                    o.insert("delegated_to".into(), json!(d));
                }
                if !r.data.is_empty() {
                    o.insert("data".into(), Value::Object(r.data.clone()));
                }
            }
            self.json(v);
            return;
        }
        let (word, code) = match r.status {
            Status::Ok => ("ok", "32"),
            Status::Changed => ("changed", "33"),
            Status::Skipped => ("skipping", "36"),
            Status::Failed if r.ignored => ("failed", "31"),
            Status::Failed => ("failed", "31"),
            Status::Unreachable => ("fatal", "31"),
        };
        let target = match &r.delegated {
            Some(d) => format!("[{} -> {d}]", r.host),
            None => format!("[{}]", r.host),
        };
        let mut line = format!("{word}: {target}");
        if let Some(i) = &r.item {
            line.push_str(&format!(" => (item={i})"));
        }
        let mut s = String::new();
        if self.diff || r.status == Status::Changed && self.verbosity > 0 {
            for ch in &r.changes {
                if let Some(d) = &ch.diff {
                    s.push_str(&self.render_diff(d));
                }
            }
        }
        match r.status {
            Status::Failed | Status::Unreachable => {
                let what = if r.status == Status::Unreachable { "UNREACHABLE! " } else { "" };
                let msg = r.msg.clone().unwrap_or_default();
                line = format!("{line}: {what}{msg}");
                s.push_str(&self.c(code, &line));
                s.push('\n');
                if r.ignored {
                    s.push_str(&self.c("36", "...ignoring"));
                    s.push('\n');
                }
            }
            _ => {
                s.push_str(&self.c(code, &line));
                s.push('\n');
                if (self.diff || self.verbosity > 0) && r.status == Status::Changed {
                    for ch in &r.changes {
                        let color = match ch.kind {
                            ChangeKind::Create => "32",
                            ChangeKind::Update => "33",
                            ChangeKind::Remove => "31",
                            ChangeKind::Run => "36",
                        };
                        s.push_str(&format!("  {} {}\n", self.c(color, ch.kind.symbol()), ch.summary));
                    }
                }
                if let Some(m) = &r.msg
                    && !m.is_empty()
                {
                    s.push_str(&format!("  {m}\n"));
                }
            }
        }
        if self.verbosity > 0 && !r.data.is_empty() {
            let v = Value::Object(r.data.clone());
            s.push_str(&format!("  {}\n", serde_json::to_string_pretty(&v).unwrap_or_default().replace('\n', "\n  ")));
        }
        self.write(s);
    }

    /// A unified diff of one change, coloured on a TTY.
    pub fn render_diff(&self, d: &Diff) -> String {
        let td = similar::TextDiff::from_lines(&d.before, &d.after);
        let mut out = String::new();
        let text = td.unified_diff().context_radius(3).header(&d.before_header, &d.after_header).to_string();
        for line in text.lines() {
            let l = if line.starts_with("+++") || line.starts_with("---") {
                self.c("1", line)
            } else if line.starts_with('+') {
                self.c("32", line)
            } else if line.starts_with('-') {
                self.c("31", line)
            } else if line.starts_with("@@") {
                self.c("36", line)
            } else {
                line.to_string()
            };
            out.push_str(&l);
            out.push('\n');
        }
        if !d.before.is_empty() && !d.before.ends_with('\n') || !d.after.is_empty() && !d.after.ends_with('\n') {
            out.push_str("\\ No newline at end of file\n");
        }
        out
    }

    pub fn recap(&self, stats: &[(String, Stats)]) {
        match self.format {
            Format::Human => {
                let mut s = format!("\n{}\n", stars("PLAY RECAP"));
                let w = stats.iter().map(|(h, _)| h.chars().count()).max().unwrap_or(0).max(26);
                for (h, st) in stats {
                    let code = if st.failed > 0 || st.unreachable > 0 {
                        "31"
                    } else if st.changed > 0 {
                        "33"
                    } else {
                        "32"
                    };
                    s.push_str(&format!(
                        "{} : ok={:<4} changed={:<4} unreachable={:<4} failed={:<4} skipped={:<4} rescued={:<4} ignored={}\n",
                        // padded by hand: a `{:<w$}` width past u16::MAX panics, and host
                        // names have no length limit
                        self.c(code, &format!("{h}{}", " ".repeat(w - h.chars().count()))),
                        st.ok,
                        st.changed,
                        st.unreachable,
                        st.failed,
                        st.skipped,
                        st.rescued,
                        st.ignored
                    ));
                }
                self.write(s);
            }
            Format::Json => {
                let m: serde_json::Map<String, Value> =
                    stats.iter().map(|(h, s)| (h.clone(), serde_json::to_value(s).unwrap_or(Value::Null))).collect();
                self.json(json!({"event": "recap", "hosts": m}));
            }
            Format::Junit => {
                let cases = std::mem::take(&mut self.junit.lock().unwrap_or_else(|e| e.into_inner()).4);
                self.write(junit_xml(&cases));
            }
        }
    }
}

fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            // characters XML 1.0 cannot hold
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => o.push_str(&format!("\\x{:02x}", c as u32)),
            c => o.push(c),
        }
    }
    o
}

/// The JUnit report: a test suite per play, a test case per task and host (`[host] task`);
/// failed tasks are failures (ignored ones too, as Ansible's junit callback counts them by
/// default), unreachable hosts errors, skipped tasks skipped.
fn junit_xml(cases: &[JunitCase]) -> String {
    let mut plays: indexmap::IndexMap<&str, Vec<&JunitCase>> = indexmap::IndexMap::new();
    for c in cases {
        plays.entry(c.play.as_str()).or_default().push(c);
    }
    let count = |v: &[&JunitCase], st: Status| v.iter().filter(|c| c.status == st).count();
    let total_time: f64 = cases.iter().map(|c| c.secs).sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    x.push_str(&format!(
        "<testsuites name=\"pbr\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{total_time:.3}\">\n",
        cases.len(),
        cases.iter().filter(|c| c.status == Status::Failed).count(),
        cases.iter().filter(|c| c.status == Status::Unreachable).count(),
        cases.iter().filter(|c| c.status == Status::Skipped).count(),
    ));
    for (play, v) in plays {
        let time: f64 = v.iter().map(|c| c.secs).sum();
        x.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{time:.3}\">\n",
            xml_escape(play),
            v.len(),
            count(&v, Status::Failed),
            count(&v, Status::Unreachable),
            count(&v, Status::Skipped)
        ));
        for c in v {
            x.push_str(&format!(
                "    <testcase name=\"[{}] {}\" classname=\"{}\" time=\"{:.3}\"",
                xml_escape(&c.host),
                xml_escape(&c.task),
                xml_escape(&c.location),
                c.secs
            ));
            let msg = c.msg.as_deref().unwrap_or("");
            let body = match c.status {
                Status::Failed => {
                    let ty = if c.ignored { "ignored-failure" } else { "failure" };
                    format!(
                        "      <failure message=\"{}\" type=\"{ty}\">{}</failure>\n",
                        xml_escape(msg),
                        xml_escape(msg)
                    )
                }
                Status::Unreachable => format!("      <error message=\"{}\" type=\"unreachable\"/>\n", xml_escape(msg)),
                Status::Skipped => format!("      <skipped message=\"{}\"/>\n", xml_escape(msg)),
                Status::Ok | Status::Changed if !c.changes.is_empty() => {
                    format!("      <system-out>{}</system-out>\n", xml_escape(&c.changes.join("\n")))
                }
                Status::Ok | Status::Changed => String::new(),
            };
            if body.is_empty() {
                x.push_str("/>\n");
            } else {
                x.push_str(">\n");
                x.push_str(&body);
                x.push_str("    </testcase>\n");
            }
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}
