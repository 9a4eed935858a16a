//! Diagnostics: one error or warning with a location, rendered like a compiler's.

use crate::source::Span;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Note,
    Warning,
    Error,
}

/// A located message. `code` is a stable rule id (`unknown-param`, `yaml-syntax`...).
#[derive(Debug, Clone)]
pub struct Diag {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub span: Span,
    /// Short text shown under the caret.
    pub label: Option<String>,
    pub help: Option<String>,
    pub notes: Vec<String>,
}

impl Diag {
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Diag {
        Diag {
            severity: Severity::Error,
            code,
            message: message.into(),
            span,
            label: None,
            help: None,
            notes: Vec::new(),
        }
    }

    pub fn warning(code: &'static str, span: Span, message: impl Into<String>) -> Diag {
        Diag { severity: Severity::Warning, ..Diag::error(code, span, message) }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diag {
        self.help = Some(help.into());
        self
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Diag {
        self.label = Some(label.into());
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Diag {
        self.notes.push(note.into());
        self
    }

    /// Give a span to a diagnostic that has none.
    pub fn or_span(mut self, span: Span) -> Diag {
        if self.span.is_none() {
            self.span = span;
        }
        self
    }

    /// Render for a terminal (`color` adds ANSI colours): header with `file:line:col`,
    /// the source line, a caret under the span, then help and notes.
    pub fn render(&self, color: bool) -> String {
        crate::diag_render::render(self, color)
    }
}

impl std::fmt::Display for Diag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.span.is_none() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.span.location(), self.message)
        }
    }
}

impl std::error::Error for Diag {}

/// Several diagnostics (a parse or lint run can report more than one).
#[derive(Debug, Clone, Default)]
pub struct Diags(pub Vec<Diag>);

impl From<Diag> for Diags {
    fn from(d: Diag) -> Self {
        Diags(vec![d])
    }
}
