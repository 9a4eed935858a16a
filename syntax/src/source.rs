//! Source files and spans.
//!
//! Every file pbr reads (playbooks, inventories, vars files, templates) is registered here once,
//! so that a [`Span`] can stay a small `Copy` value and still name `file:line:col` and render a
//! snippet with a caret long after parsing.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};

/// One loaded source text.
#[derive(Debug)]
pub struct Source {
    /// The path as the user would recognise it (relative when it was given relative).
    pub path: PathBuf,
    pub text: String,
    line_starts: Vec<usize>,
}

impl Source {
    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.line_starts[line];
        let col = self.text.get(start..offset).map(|s| s.chars().count()).unwrap_or(0);
        (line as u32 + 1, col as u32 + 1)
    }

    /// Byte offset of a 1-based line and column (column in characters).
    pub fn offset_of(&self, line: u32, col: u32) -> usize {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1) as usize) else {
            return self.text.len();
        };
        let rest = &self.text[start..];
        rest.char_indices().nth(col.saturating_sub(1) as usize).map(|(i, _)| start + i).unwrap_or(self.text.len())
    }

    /// The text of a 1-based line, without its newline.
    pub fn line_text(&self, line: u32) -> &str {
        let i = line.saturating_sub(1) as usize;
        let Some(&start) = self.line_starts.get(i) else {
            return "";
        };
        let end = self.line_starts.get(i + 1).copied().unwrap_or(self.text.len());
        self.text[start..end].trim_end_matches(['\n', '\r'])
    }
}

/// Identifies a registered [`Source`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SrcId(pub u32);

fn registry() -> &'static RwLock<Vec<Arc<Source>>> {
    static REG: OnceLock<RwLock<Vec<Arc<Source>>>> = OnceLock::new();
    REG.get_or_init(|| RwLock::new(Vec::new()))
}

/// Register a text under a path; returns its id.
pub fn add_source(path: impl AsRef<Path>, text: String) -> SrcId {
    let mut line_starts = vec![0];
    for (i, b) in text.bytes().enumerate() {
        if b == b'\n' {
            line_starts.push(i + 1);
        }
    }
    let src = Arc::new(Source { path: path.as_ref().to_path_buf(), text, line_starts });
    let mut reg = registry().write().unwrap_or_else(|e| e.into_inner());
    reg.push(src);
    SrcId(reg.len() as u32 - 1)
}

/// Why a text file could not be read.
#[derive(Debug)]
pub enum ReadError {
    Io(std::io::Error),
    /// Not UTF-8: the span of the first bad byte (the text is registered with that byte shown
    /// as U+FFFD) and a message naming it with its line and column.
    NotUtf8(Span, String),
    /// Vault-encrypted and not opened (no password, the wrong one, damaged).
    Vault(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => e.fmt(f),
            ReadError::NotUtf8(_, m) => f.write_str(m),
            ReadError::Vault(m) => f.write_str(m),
        }
    }
}

/// Read a text file, which must be UTF-8. A file that is not is registered (bad bytes shown
/// as U+FFFD) so that the error can point at the first bad byte. A vault-encrypted file is
/// decrypted with the run's vault passwords.
pub fn read_text(path: &Path) -> Result<String, ReadError> {
    let bytes = std::fs::read(path).map_err(ReadError::Io)?;
    match String::from_utf8(bytes) {
        Ok(s) => crate::vault::open_file_text(path, s).map_err(ReadError::Vault),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let bad = e.as_bytes()[at];
            let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let id = add_source(path, text);
            let (line, col) = source(id).map(|s| s.line_col(at)).unwrap_or((1, 1));
            let span = Span::new(id, at, at + '\u{FFFD}'.len_utf8());
            Err(ReadError::NotUtf8(
                span,
                format!("{} is not UTF-8 text: byte 0x{bad:02x} at line {line}, column {col}", path.display()),
            ))
        }
    }
}

/// Look a source up by id.
pub fn source(id: SrcId) -> Option<Arc<Source>> {
    let reg = registry().read().unwrap_or_else(|e| e.into_inner());
    reg.get(id.0 as usize).cloned()
}

/// A byte range in a registered source. `Span::none()` stands for "no location known".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    pub src: SrcId,
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub const NONE: Span = Span { src: SrcId(u32::MAX), start: 0, end: 0 };

    pub fn new(src: SrcId, start: usize, end: usize) -> Span {
        Span { src, start, end: end.max(start) }
    }

    pub fn none() -> Span {
        Span::NONE
    }

    pub fn is_none(&self) -> bool {
        self.src.0 == u32::MAX
    }

    /// 1-based (line, col) of the start.
    pub fn line_col(&self) -> Option<(u32, u32)> {
        source(self.src).map(|s| s.line_col(self.start))
    }

    pub fn path(&self) -> Option<PathBuf> {
        source(self.src).map(|s| s.path.clone())
    }

    /// `path:line:col`, or `<unknown>`.
    pub fn location(&self) -> String {
        match source(self.src) {
            Some(s) => {
                let (l, c) = s.line_col(self.start);
                format!("{}:{}:{}", s.path.display(), l, c)
            }
            None => "<unknown>".to_string(),
        }
    }

    /// The smallest span covering both (same source), else `self`.
    pub fn to(&self, other: Span) -> Span {
        if self.is_none() {
            return other;
        }
        if other.src != self.src {
            return *self;
        }
        Span::new(self.src, self.start.min(other.start), self.end.max(other.end))
    }
}

impl Default for Span {
    fn default() -> Self {
        Span::NONE
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.location())
    }
}
