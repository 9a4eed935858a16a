//! `.pbr-lint.yml` (`disable: [rule]`, `severity: {rule: warning|error|off}`) and inline
//! `# pbr-lint: disable=rule[,rule2]` comments.

use super::RuleId;
use super::{diag, rule_of};
use crate::diag::{Diag, Severity};
use crate::source::source;
use crate::yaml::Node;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub const FILE_NAMES: &[&str] = &[".pbr-lint.yml", ".pbr-lint.yaml"];

#[derive(Debug, Default)]
pub struct Config {
    /// Rule id → severity; `None` means off.
    pub severity: HashMap<String, Option<Severity>>,
}

impl Config {
    /// The nearest config file: in a linted path's directory or any parent, else in the current
    /// directory or any parent. Problems in it are reported into `diags`.
    pub fn discover(paths: &[PathBuf], diags: &mut Vec<Diag>) -> Config {
        let mut starts: Vec<PathBuf> = Vec::new();
        for p in paths {
            let abs = std::path::absolute(p).unwrap_or_else(|_| p.clone());
            let dir = if abs.is_dir() { abs } else { abs.parent().map(Path::to_path_buf).unwrap_or(abs) };
            starts.push(dir);
        }
        if let Ok(cwd) = std::env::current_dir() {
            starts.push(cwd);
        }
        for start in starts {
            for dir in start.ancestors() {
                for name in FILE_NAMES {
                    let f = dir.join(name);
                    if f.is_file() {
                        return Config::load(&f, diags);
                    }
                }
            }
        }
        Config::default()
    }

    pub fn load(path: &Path, diags: &mut Vec<Diag>) -> Config {
        let mut cfg = Config::default();
        let docs = match crate::yaml::load_file(path) {
            Ok(d) => d,
            Err(d) => {
                diags.push(Diag { code: RuleId::LintConfig.as_str(), severity: Severity::Warning, ..d });
                return cfg;
            }
        };
        let Some(doc) = docs.first() else {
            return cfg;
        };
        let Some(entries) = doc.as_map() else {
            if !doc.is_null() {
                diags.push(diag(RuleId::LintConfig, doc.span, "the lint config must be a mapping"));
            }
            return cfg;
        };
        for (k, v) in entries {
            match k.key_str().unwrap_or_default().as_str() {
                "disable" => {
                    let items: Vec<&Node> = match v.as_seq() {
                        Some(s) => s.iter().collect(),
                        None => vec![v],
                    };
                    for item in items {
                        if let Some(id) = known_rule(item, diags) {
                            cfg.severity.insert(id, None);
                        }
                    }
                }
                "severity" => {
                    let Some(m) = v.as_map() else {
                        diags.push(diag(
                            RuleId::LintConfig,
                            v.span,
                            "`severity:` must map rule ids to warning, error or off",
                        ));
                        continue;
                    };
                    for (rk, rv) in m {
                        let Some(id) = known_rule(rk, diags) else { continue };
                        let sev = match &rv.kind {
                            crate::yaml::NodeKind::Bool(false) => Some(None),
                            _ => match rv.as_str().map(str::to_ascii_lowercase).as_deref() {
                                Some("error") => Some(Some(Severity::Error)),
                                Some("warning") | Some("warn") => Some(Some(Severity::Warning)),
                                Some("note") | Some("info") => Some(Some(Severity::Note)),
                                Some("off") | Some("disable") | Some("disabled") => Some(None),
                                _ => None,
                            },
                        };
                        match sev {
                            Some(s) => {
                                cfg.severity.insert(id, s);
                            }
                            None => diags.push(diag(
                                RuleId::LintConfig,
                                rv.span,
                                "a severity must be `error`, `warning` or `off` (quote `off`: \"off\")",
                            )),
                        }
                    }
                }
                other => diags.push(
                    diag(RuleId::LintConfig, k.span, format!("unknown lint config key `{other}`"))
                        .with_help("the keys are `disable:` and `severity:`"),
                ),
            }
        }
        cfg
    }

    /// Adjust a diagnostic's severity; false when its rule is off.
    pub fn apply(&self, d: &mut Diag) -> bool {
        match self.severity.get(d.code) {
            None => true,
            Some(None) => false,
            Some(Some(s)) => {
                d.severity = *s;
                true
            }
        }
    }
}

fn known_rule(n: &Node, diags: &mut Vec<Diag>) -> Option<String> {
    let id = n.key_str().unwrap_or_default();
    if rule_of(&id).is_some() {
        return Some(id);
    }
    let mut d = diag(RuleId::LintConfig, n.span, format!("unknown lint rule `{id}`"));
    if let Some(s) = crate::playbook::did_you_mean(&id, super::RULES.iter().map(|r| r.id.as_str())) {
        d = d.with_help(format!("did you mean `{s}`?"));
    }
    diags.push(d);
    None
}

/// Rules disabled by a `# pbr-lint: disable=...` comment in a line.
fn disabled_in(line: &str) -> Vec<&str> {
    let Some(i) = line.find("pbr-lint:") else {
        return vec![];
    };
    if !line[..i].contains('#') {
        return vec![];
    }
    let rest = line[i + "pbr-lint:".len()..].trim_start();
    let Some(list) = rest.strip_prefix("disable=").or_else(|| rest.strip_prefix("disable =")) else {
        return vec![];
    };
    list.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()).collect()
}

/// Is the diagnostic disabled by a comment on its line or the line above?
pub fn inline_disabled(d: &Diag) -> bool {
    if d.span.is_none() {
        return false;
    }
    let Some(src) = source(d.span.src) else {
        return false;
    };
    let (line, _) = src.line_col(d.span.start);
    let matches = |l: u32| disabled_in(src.line_text(l)).iter().any(|r| *r == d.code || *r == "all");
    matches(line) || (line > 1 && matches(line - 1))
}
