//! Rendering of [`Diag`] for terminals, in the style of rustc:
//!
//! ```text
//! error[yaml-duplicate-key]: duplicate key `name` in this mapping
//!  --> site.yml:3:3
//!   |
//! 3 |   name: two
//!   |   ^^^^ defined again here
//!   |
//!   = help: each key may appear once in a mapping
//!   = note: `name` was first defined at line 1, column 3
//! ```
//!
//! annotate-snippets draws the snippet; a plain-text writer takes over when the span cannot be
//! shown by it (no source, an offset outside the text).

use crate::diag::{Diag, Severity};
use crate::source::{Source, source};
use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
use std::ops::Range;

/// Lines of a multi-line span shown before the rest is cut.
const MAX_SNIPPET_LINES: u32 = 8;

pub fn render(d: &Diag, color: bool) -> String {
    let src = if d.span.is_none() { None } else { source(d.span.src) };
    let excerpt = src.as_deref().and_then(|s| Excerpt::new(s, d.span.start, d.span.end));
    let rendered = excerpt
        .as_ref()
        .and_then(|ex| std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| render_snippets(d, ex, color))).ok());
    let mut out = match rendered {
        Some(s) if !s.is_empty() => s,
        _ => render_plain(d, src.as_deref(), color),
    };
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// The lines of the source that a span covers, with the span relative to them.
struct Excerpt {
    path: String,
    text: String,
    first_line: u32,
    range: Range<usize>,
}

impl Excerpt {
    fn new(src: &Source, start: usize, end: usize) -> Option<Excerpt> {
        let text = &src.text;
        if start > text.len() || !text.is_char_boundary(start) {
            return None;
        }
        let end = end.clamp(start, text.len());
        let end = if text.is_char_boundary(end) { end } else { start };
        let (first_line, _) = src.line_col(start);
        let (mut last_line, _) = src.line_col(end);
        // A span that ends right after a newline ends on the line before.
        if end > start && text.as_bytes().get(end - 1) == Some(&b'\n') && last_line > first_line {
            last_line -= 1;
        }
        let last_line = last_line.min(first_line + MAX_SNIPPET_LINES - 1);
        let from = src.offset_of(first_line, 1);
        let to = line_end(text, src.offset_of(last_line, 1));
        let end = end.min(to);
        let snippet = text.get(from..to)?.to_string();
        Some(Excerpt {
            path: src.path.display().to_string(),
            text: snippet,
            first_line,
            range: (start - from)..(end - from),
        })
    }
}

/// Offset of the end of the line that starts at `from` (before `\r\n` or `\n`).
fn line_end(text: &str, from: usize) -> usize {
    let rest = &text[from.min(text.len())..];
    let n = rest.find('\n').unwrap_or(rest.len());
    let line = &rest[..n];
    from + line.strip_suffix('\r').map_or(n, str::len)
}

fn level(sev: Severity) -> Level<'static> {
    match sev {
        Severity::Error => Level::ERROR,
        Severity::Warning => Level::WARNING,
        Severity::Note => Level::NOTE,
    }
}

fn render_snippets(d: &Diag, ex: &Excerpt, color: bool) -> String {
    let mut title = level(d.severity).primary_title(d.message.as_str());
    if !d.code.is_empty() {
        title = title.id(d.code);
    }
    let mut ann = AnnotationKind::Primary.span(ex.range.clone());
    if let Some(l) = &d.label {
        ann = ann.label(l.as_str());
    }
    let snippet =
        Snippet::source(ex.text.as_str()).line_start(ex.first_line as usize).path(ex.path.as_str()).annotation(ann);
    let mut group = Group::with_title(title).element(snippet);
    if let Some(h) = &d.help {
        group = group.element(Level::HELP.message(h.as_str()));
    }
    for n in &d.notes {
        group = group.element(Level::NOTE.message(n.as_str()));
    }
    let renderer = if color { Renderer::styled() } else { Renderer::plain() };
    renderer.render(&[group])
}

/// Plain-text fallback with the same layout.
fn render_plain(d: &Diag, src: Option<&Source>, color: bool) -> String {
    let (word, col) = match d.severity {
        Severity::Error => ("error", "\x1b[1;31m"),
        Severity::Warning => ("warning", "\x1b[1;33m"),
        Severity::Note => ("note", "\x1b[1;36m"),
    };
    let (c, b, blue, r) = if color { (col, "\x1b[1m", "\x1b[1;34m", "\x1b[0m") } else { ("", "", "", "") };
    let mut out = format!("{c}{word}[{}]{r}{b}: {}{r}\n", d.code, d.message);
    let mut pad = "  ".to_string();
    if let Some(src) = src.filter(|_| !d.span.is_none()) {
        let (line, column) = src.line_col(d.span.start);
        let text = src.line_text(line);
        pad = " ".repeat(line.to_string().len() + 1);
        out.push_str(&format!("{}{blue}-->{r} {}:{}:{}\n", &pad[1..], src.path.display(), line, column));
        out.push_str(&format!("{pad}{blue}|{r}\n"));
        out.push_str(&format!("{blue}{line} |{r} {text}\n"));
        let (end_line, end_col) = src.line_col(d.span.end);
        let width = if end_line == line && end_col > column { (end_col - column) as usize } else { 1 };
        let lead: String = text
            .chars()
            .take(column.saturating_sub(1) as usize)
            .map(|ch| if ch == '\t' { '\t' } else { ' ' })
            .collect();
        out.push_str(&format!("{pad}{blue}|{r} {lead}{c}{}", "^".repeat(width)));
        if let Some(l) = &d.label {
            out.push_str(&format!(" {l}"));
        }
        out.push_str(r);
        out.push('\n');
        if d.help.is_some() || !d.notes.is_empty() {
            out.push_str(&format!("{pad}{blue}|{r}\n"));
        }
    }
    if let Some(h) = &d.help {
        out.push_str(&format!("{pad}{blue}={r} {b}help{r}: {h}\n"));
    }
    for n in &d.notes {
        out.push_str(&format!("{pad}{blue}={r} {b}note{r}: {n}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Span, add_source};

    fn span_of(id: crate::source::SrcId, text: &str, needle: &str) -> Span {
        let at = text.find(needle).unwrap_or_else(|| panic!("{needle} not in text"));
        Span::new(id, at, at + needle.len())
    }

    #[test]
    fn rustc_style_with_snippet() {
        let text = "- name: one\n  debug: {msg: x}\n  name: two\n";
        let id = add_source("play.yml", text.to_string());
        let name = span_of(id, text, "name: two");
        let d = Diag::error("yaml-duplicate-key", Span::new(id, name.start, name.start + 4), "dup")
            .with_label("defined again here")
            .with_help("each key may appear once")
            .with_note("first defined at line 1");
        let out = render(&d, false);
        assert!(out.starts_with("error[yaml-duplicate-key]: dup\n"), "{out}");
        assert!(out.contains("--> play.yml:3:3\n"), "{out}");
        assert!(out.contains("3 |   name: two\n"), "{out}");
        assert!(out.contains("  |   ^^^^ defined again here\n"), "{out}");
        assert!(out.contains("= help: each key may appear once\n"), "{out}");
        assert!(out.contains("= note: first defined at line 1\n"), "{out}");
        assert!(!out.contains('\x1b'), "{out}");
        let colored = render(&d, true);
        assert!(colored.contains("\x1b["), "{colored}");
        assert!(colored.contains("play.yml:3:3"), "{colored}");
    }

    #[test]
    fn warning_header_and_unicode_columns() {
        let text = "# ünïcödé 日本\nkey: 日本語 value\n";
        let id = add_source("u.yml", text.to_string());
        let d = Diag::warning("style", span_of(id, text, "value"), "look here").with_label("this");
        let out = render(&d, false);
        assert!(out.starts_with("warning[style]: look here\n"), "{out}");
        assert!(out.contains("--> u.yml:2:10\n"), "{out}");
        let caret_line = out.lines().find(|l| l.contains('^')).unwrap_or_default();
        assert!(caret_line.ends_with("^^^^^ this"), "{out}");
    }

    #[test]
    fn no_span_gives_header_and_notes_only() {
        let d = Diag::error("io", Span::none(), "cannot read x").with_help("check the path").with_note("n1");
        let out = render(&d, false);
        assert_eq!(out, "error[io]: cannot read x\n  = help: check the path\n  = note: n1\n");
    }

    #[test]
    fn odd_spans_still_render() {
        let text = "a: 1\nb:\n";
        let id = add_source("odd.yml", text.to_string());
        // An empty span, a span at the very end, one past the end.
        let out = render(&Diag::error("x", Span::new(id, 7, 7), "m").with_label("l"), false);
        assert!(out.contains("--> odd.yml:2:3\n"), "{out}");
        assert!(out.contains("2 | b:\n  |   ^ l"), "{out}");
        for (start, end) in [(7, 7), (text.len(), text.len()), (text.len() + 5, text.len() + 9)] {
            let out = render(&Diag::error("x", Span::new(id, start, end), "m").with_label("l"), false);
            assert!(out.starts_with("error[x]: m\n"), "{out}");
            assert!(out.contains("--> odd.yml:"), "{out}");
            assert!(out.contains('^'), "{out}");
        }
        // A span inside a multi-byte character falls back to the plain writer.
        let text = "k: é\n";
        let id = add_source("mb.yml", text.to_string());
        let out = render(&Diag::error("x", Span::new(id, 4, 5), "m"), false);
        assert!(out.contains("--> mb.yml:1:"), "{out}");
        assert!(out.contains('^'), "{out}");
    }

    #[test]
    fn multi_line_span() {
        let text = "- name: one\n  debug: {msg: x}\n  name: two\n";
        let id = add_source("ml.yml", text.to_string());
        let out = render(&Diag::warning("w", Span::new(id, 0, text.len()), "whole task").with_label("here"), false);
        assert!(out.contains("--> ml.yml:1:1"), "{out}");
        assert!(out.contains("1 | / - name: one"), "{out}");
        assert!(out.contains("3 | |   name: two"), "{out}");
        assert!(out.contains("^ here"), "{out}");
    }

    #[test]
    fn yaml_error_renders_at_its_place() {
        let e = match crate::yaml::load_str("bad.yml", "a:\n  b: 1\n c: 2\n") {
            Err(e) => e,
            Ok(n) => panic!("parsed: {n:?}"),
        };
        let out = e.render(false);
        assert!(out.starts_with("error[yaml-syntax]: "), "{out}");
        assert!(out.contains("--> bad.yml:3:2\n"), "{out}");
        assert!(out.contains("3 |  c: 2\n"), "{out}");
        assert!(out.contains("= help: "), "{out}");
    }
}
