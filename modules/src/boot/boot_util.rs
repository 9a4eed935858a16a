//! Helpers shared by the boot and network modules (`mkinitcpio_hook`, `networkd`, `wpa`,
//! `kernel_cmdline`): whole-file probes, content/mode plans with diffs, writes that create the
//! parent directory, and the deferred follow-up commands.

use crate::util;
use pbr_core::{Change, Deferred, Diff, ModuleError, Op, ReadHost, sh_quote};

/// A managed file as probed: its content (None when absent) and mode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileNow {
    pub path: String,
    pub content: Option<Vec<u8>>,
    pub mode: Option<u32>,
}

impl FileNow {
    pub fn exists(&self) -> bool {
        self.content.is_some()
    }
    /// The content as text (lossy for non-UTF-8 bytes).
    pub fn text(&self) -> Option<String> {
        self.content.as_ref().map(|c| String::from_utf8_lossy(c).into_owned())
    }
}

/// Probe one file in one round trip. Directories and other non-files are errors.
pub async fn probe(host: &ReadHost, path: &str) -> Result<FileNow, ModuleError> {
    let st = util::probe_file(host, path, true, false).await?;
    file_now(path, st)
}

/// [`probe`] for many files in one round trip.
pub async fn probe_many(host: &ReadHost, paths: &[String]) -> Result<Vec<FileNow>, ModuleError> {
    let states = util::probe_files(host, paths, true, false).await?;
    paths.iter().zip(states).map(|(p, st)| file_now(p, st)).collect()
}

fn file_now(path: &str, st: util::FileState) -> Result<FileNow, ModuleError> {
    match &st.stat {
        None => Ok(FileNow { path: path.to_string(), content: None, mode: None }),
        Some(s) if s.kind != "file" => Err(ModuleError::new(format!("{path} exists and is a {}, not a file", s.kind))),
        Some(s) => {
            let content = st
                .content
                .ok_or_else(|| ModuleError::new(format!("{path} is larger than 1 MiB; refusing to manage it")))?;
            Ok(FileNow { path: path.to_string(), content: Some(content), mode: Some(s.mode & 0o7777) })
        }
    }
}

/// What should happen to a managed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    Present { content: String, mode: u32 },
    Absent,
}

/// Changes turning `now` into `want`; `redact` maps a text to what may be shown in a diff.
pub fn file_changes(now: &FileNow, want: &Want, redact: Option<&dyn Fn(&str) -> String>) -> Vec<Change> {
    let show = |s: &str| match redact {
        Some(f) => f(s),
        None => s.to_string(),
    };
    let path = &now.path;
    let mut out = vec![];
    match (want, &now.content) {
        (Want::Absent, None) => {}
        (Want::Absent, Some(_)) => {
            let before = now.text().unwrap_or_default();
            out.push(Change::remove(format!("remove {path}")).with_diff(Diff::file(path, show(&before), "")));
        }
        (Want::Present { content, mode }, None) => {
            out.push(Change::create(format!("create {path} (mode {})", util::mode_str(*mode))).with_diff(Diff::file(
                path,
                "",
                show(content),
            )));
        }
        (Want::Present { content, mode }, Some(cur)) => {
            if cur.as_slice() != content.as_bytes() {
                let before = now.text().unwrap_or_default();
                let (b, a) = (show(&before), show(content));
                let summary = if b == a && redact.is_some() {
                    format!("update {path}: secret values changed")
                } else {
                    format!("update {path}")
                };
                out.push(Change::new(summary).with_diff(Diff::file(path, b, a)));
            }
            if let Some(m) = now.mode
                && m != *mode
            {
                out.push(Change::new(format!("{path}: mode {} → {}", util::mode_str(m), util::mode_str(*mode))));
            }
        }
    }
    out
}

/// The ops making `now.path` match `want`: write (creating the parent directory), chmod, or
/// remove; none when it matches.
pub fn file_ops(now: &FileNow, want: &Want) -> Vec<Op> {
    match want {
        Want::Absent if now.exists() => vec![Op::Run {
            what: format!("remove {}", now.path),
            script: format!("rm -f -- {}", sh_quote(&now.path)),
            stdin: None,
            makes: vec![],
            removes: vec![now.path.clone()],
        }],
        Want::Absent => vec![],
        Want::Present { content, mode } if now.content.as_deref() != Some(content.as_bytes()) => {
            let mut v = vec![];
            if let Some(dir) = parent(&now.path) {
                v.push(Op::MakeDir { path: dir.to_string(), attrs: Default::default() });
            }
            v.push(Op::WriteFile {
                path: now.path.clone(),
                content: content.as_bytes().to_vec(),
                mode: Some(*mode),
                owner: None,
                group: None,
                backup: false,
                validate: None,
            });
            v
        }
        Want::Present { mode, .. } if now.mode != Some(*mode) => vec![Op::SetAttrs {
            path: now.path.clone(),
            attrs: pbr_core::op::Attrs { mode: Some(pbr_core::params::Mode::Octal(*mode)), ..Default::default() },
            recurse: false,
            link: false,
        }],
        Want::Present { .. } => vec![],
    }
}

/// Whether the content changes (made, rewritten or removed), attributes aside.
pub fn content_differs(now: &FileNow, want: &Want) -> bool {
    match want {
        Want::Present { content, .. } => now.content.as_deref() != Some(content.as_bytes()),
        Want::Absent => now.exists(),
    }
}

/// The directory part of a path, when it has one other than `/`.
pub fn parent(path: &str) -> Option<&str> {
    match path.rfind('/') {
        Some(0) | None => None,
        Some(i) => Some(&path[..i]),
    }
}

/// Join a directory and a file name.
pub fn join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

/// The once-per-host initramfs regeneration.
pub fn mkinitcpio_deferred(command: &str) -> Deferred {
    Deferred {
        key: "mkinitcpio".to_string(),
        description: "regenerate initramfs".to_string(),
        script: command.to_string(),
    }
}

/// A name usable as a file name: no `/`, not empty, not `.`/`..`, no control characters.
pub fn check_file_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.chars().any(char::is_control) {
        return Err(format!("{what} {name:?} is not a valid file name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes() {
        let now = FileNow { path: "/x".into(), content: Some(b"a\n".to_vec()), mode: Some(0o644) };
        let want = Want::Present { content: "a\n".into(), mode: 0o600 };
        let c = file_changes(&now, &want, None);
        assert_eq!(c.len(), 1);
        assert!(c[0].summary.contains("0644 → 0600"));
        assert!(file_changes(&now, &Want::Present { content: "a\n".into(), mode: 0o644 }, None).is_empty());
        let red = |s: &str| s.replace('b', "?");
        let now = FileNow { path: "/x".into(), content: Some(b"a\n".to_vec()), mode: Some(0o644) };
        let w = Want::Present { content: "b\n".into(), mode: 0o644 };
        let c = file_changes(&FileNow { content: Some(b"c\n".to_vec()), ..now }, &w, Some(&red));
        assert_eq!(c[0].diff.as_ref().map(|d| d.after.as_str()), Some("?\n"));
        assert_eq!(parent("/etc/x"), Some("/etc"));
        assert_eq!(parent("/x"), None);
    }
}
