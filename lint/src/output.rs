//! Lint output: human (compiler style), JSON, SARIF 2.1.0 and GitHub workflow commands.

use super::RULES;
use crate::diag::{Diag, Severity};
use serde_json::{Value, json};
use std::path::Path;

pub fn render(format: &str, diags: &[Diag], color: bool, files: usize) -> String {
    match format {
        "json" => serde_json::to_string_pretty(&Value::Array(diags.iter().map(to_json).collect()))
            .map(|s| s + "\n")
            .unwrap_or_default(),
        "sarif" => serde_json::to_string_pretty(&sarif(diags)).map(|s| s + "\n").unwrap_or_default(),
        "github" => diags.iter().map(github).collect(),
        _ => human(diags, color, files),
    }
}

fn sev_name(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    }
}

/// Location of a diagnostic: (file, line, col, end_line, end_col); file is relative to the
/// current directory when it can be.
pub fn location(d: &Diag) -> Option<(String, u32, u32, u32, u32)> {
    let src = crate::source::source(d.span.src)?;
    let (l, c) = src.line_col(d.span.start);
    let (el, ec) = src.line_col(d.span.end);
    Some((relative(&src.path), l, c, el, ec))
}

fn relative(p: &Path) -> String {
    if p.is_absolute()
        && let Ok(cwd) = std::env::current_dir()
        && let Ok(r) = p.strip_prefix(&cwd)
    {
        return r.display().to_string();
    }
    p.display().to_string()
}

fn to_json(d: &Diag) -> Value {
    let (file, line, col, end_line, end_col) = match location(d) {
        Some((f, l, c, el, ec)) => (Value::String(f), l, c, el, ec),
        None => (Value::Null, 0, 0, 0, 0),
    };
    json!({
        "rule": d.code,
        "severity": sev_name(d.severity),
        "file": file,
        "line": line,
        "col": col,
        "end_line": end_line,
        "end_col": end_col,
        "message": d.message,
        "help": d.help,
    })
}

fn sarif(diags: &[Diag]) -> Value {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|r| {
            json!({
                "id": r.id.as_str(),
                "shortDescription": {"text": r.doc},
                "defaultConfiguration": {"level": sev_name(r.severity)},
            })
        })
        .collect();
    let results: Vec<Value> = diags
        .iter()
        .map(|d| {
            let mut text = d.message.clone();
            if let Some(h) = &d.help {
                text.push_str(&format!(" (help: {h})"));
            }
            let mut r = json!({
                "ruleId": d.code,
                "level": sev_name(d.severity),
                "message": {"text": text},
            });
            if let Some((file, line, col, el, ec)) = location(d) {
                r["locations"] = json!([{
                    "physicalLocation": {
                        "artifactLocation": {"uri": file.replace('\\', "/")},
                        "region": {"startLine": line, "startColumn": col, "endLine": el, "endColumn": ec.max(1)},
                    }
                }]);
            }
            r
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "pbr",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    })
}

/// Escape for a workflow command's message (`%`, CR, LF) and properties (also `:` and `,`).
fn gh_escape(s: &str, property: bool) -> String {
    let mut out = s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A");
    if property {
        out = out.replace(':', "%3A").replace(',', "%2C");
    }
    out
}

fn github(d: &Diag) -> String {
    let kind = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "notice",
    };
    let mut msg = d.message.clone();
    if let Some(h) = &d.help {
        msg.push_str(&format!("\nhelp: {h}"));
    }
    match location(d) {
        Some((file, line, col, _, _)) => {
            format!(
                "::{kind} file={},line={line},col={col},title={}::{}\n",
                gh_escape(&file, true),
                gh_escape(d.code, true),
                gh_escape(&msg, false)
            )
        }
        None => format!("::{kind} title={}::{}\n", gh_escape(d.code, true), gh_escape(&msg, false)),
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 { format!("1 {word}") } else { format!("{n} {word}s") }
}

fn human(diags: &[Diag], color: bool, files: usize) -> String {
    let mut out = String::new();
    for d in diags {
        out.push_str(&d.render(color));
        out.push('\n');
    }
    let errors = diags.iter().filter(|d| d.severity == Severity::Error).count();
    let warnings = diags.iter().filter(|d| d.severity == Severity::Warning).count();
    if errors == 0 && warnings == 0 {
        out.push_str(&format!("{} linted: no problems\n", plural(files, "playbook")));
    } else {
        out.push_str(&format!("{}, {}\n", plural(errors, "error"), plural(warnings, "warning")));
    }
    out
}
