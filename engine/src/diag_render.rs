//! Rendering of [`Diag`] for terminals.

use crate::diag::{Diag, Severity};
use crate::source::source;

pub fn render(d: &Diag, color: bool) -> String {
    let (word, col) = match d.severity {
        Severity::Error => ("error", "\x1b[1;31m"),
        Severity::Warning => ("warning", "\x1b[1;33m"),
        Severity::Note => ("note", "\x1b[1;36m"),
    };
    let (c, b, r) = if color { (col, "\x1b[1m", "\x1b[0m") } else { ("", "", "") };
    let mut out = format!("{c}{word}[{}]{r}{b}: {}{r}\n", d.code, d.message);
    if let Some(src) = source(d.span.src) {
        let (line, column) = src.line_col(d.span.start);
        let text = src.line_text(line);
        let gutter = line.to_string().len();
        let pad = " ".repeat(gutter);
        out.push_str(&format!("{pad}--> {}:{}:{}\n", src.path.display(), line, column));
        out.push_str(&format!("{pad} |\n"));
        out.push_str(&format!("{line} | {text}\n"));
        let (end_line, end_col) = src.line_col(d.span.end);
        let width = if end_line == line && end_col > column { (end_col - column) as usize } else { 1 };
        let lead: String =
            text.chars().take(column as usize - 1).map(|ch| if ch == '\t' { '\t' } else { ' ' }).collect();
        out.push_str(&format!("{pad} | {lead}{c}{}{r}", "^".repeat(width)));
        if let Some(l) = &d.label {
            out.push_str(&format!(" {c}{l}{r}"));
        }
        out.push('\n');
    }
    if let Some(h) = &d.help {
        out.push_str(&format!("  = help: {h}\n"));
    }
    for n in &d.notes {
        out.push_str(&format!("  = note: {n}\n"));
    }
    out
}
