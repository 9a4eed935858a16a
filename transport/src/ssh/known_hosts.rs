//! Host key verification against OpenSSH `known_hosts` files.
//!
//! Understands plain and hashed (`|1|salt|hash`) host fields, `[host]:port`, wildcards and
//! `!negation`, and `@revoked` lines; `@cert-authority` lines are skipped.

use super::config::glob_match;
use base64::Engine as _;
use russh::keys::{HashAlg, PublicKey};
use sha1::{Digest, Sha1};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What the known_hosts files say about a server key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Known,
    Unknown,
    /// The host has a different key of the same type on `file:line`.
    Changed {
        file: PathBuf,
        line: usize,
    },
    Revoked {
        file: PathBuf,
        line: usize,
    },
}

/// The name used in known_hosts for a host and port.
pub fn host_field(host: &str, port: u16) -> String {
    if port == 22 { host.to_string() } else { format!("[{host}]:{port}") }
}

pub fn check(files: &[PathBuf], host: &str, port: u16, key: &PublicKey) -> Verdict {
    let name = host_field(host, port);
    let mut changed = None;
    for f in files {
        let Ok(text) = std::fs::read_to_string(f) else { continue };
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let mut first = fields.next().unwrap_or("");
            let mut revoked = false;
            if first.starts_with('@') {
                match first {
                    "@revoked" => revoked = true,
                    _ => continue,
                }
                first = fields.next().unwrap_or("");
            }
            let (Some(_alg), Some(b64)) = (fields.next(), fields.next()) else { continue };
            if !revoked && !hosts_match(first, &name) {
                continue;
            }
            let Ok(recorded) = russh::keys::parse_public_key_base64(b64) else { continue };
            if revoked {
                if recorded.key_data() == key.key_data() {
                    return Verdict::Revoked { file: f.clone(), line: i + 1 };
                }
                continue;
            }
            if recorded.key_data() == key.key_data() {
                return Verdict::Known;
            }
            if recorded.algorithm() == key.algorithm() && changed.is_none() {
                changed = Some(Verdict::Changed { file: f.clone(), line: i + 1 });
            }
        }
    }
    changed.unwrap_or(Verdict::Unknown)
}

fn hosts_match(field: &str, name: &str) -> bool {
    let mut hit = false;
    for entry in field.split(',') {
        if let Some(hashed) = entry.strip_prefix("|1|") {
            if hashed_match(hashed, name) {
                hit = true;
            }
        } else if let Some(neg) = entry.strip_prefix('!') {
            if glob_match(neg, name) {
                return false;
            }
        } else if glob_match(entry, name) {
            hit = true;
        }
    }
    hit
}

fn hashed_match(hashed: &str, name: &str) -> bool {
    let mut parts = hashed.splitn(2, '|');
    let b64 = base64::engine::general_purpose::STANDARD;
    let (Some(Ok(salt)), Some(Ok(hash))) = (parts.next().map(|s| b64.decode(s)), parts.next().map(|s| b64.decode(s)))
    else {
        return false;
    };
    hmac_sha1(&salt, name.as_bytes()).as_slice() == hash.as_slice()
}

fn hmac_sha1(key: &[u8], msg: &[u8]) -> [u8; 20] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha1::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let ih = inner.finalize();
    let mut outer = Sha1::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(ih);
    outer.finalize().into()
}

/// Append a key for `host:port` to `file` (creating it and its directory).
pub fn learn(file: &Path, host: &str, port: u16, key: &PublicKey) -> Result<(), String> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut enc = key.to_openssh().map_err(|e| format!("cannot encode the host key: {e}"))?;
    // drop the comment, if any
    let parts: Vec<&str> = enc.split_whitespace().take(2).collect();
    enc = parts.join(" ");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    let needs_nl = std::fs::read(file).map(|d| !d.is_empty() && !d.ends_with(b"\n")).unwrap_or(false);
    let line = format!("{}{} {enc}\n", if needs_nl { "\n" } else { "" }, host_field(host, port));
    f.write_all(line.as_bytes()).map_err(|e| format!("cannot write {}: {e}", file.display()))
}

pub fn fingerprint(key: &PublicKey) -> String {
    format!("{} {}", key.algorithm().as_str(), key.fingerprint(HashAlg::Sha256))
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIAR6rZhLKYl+dM9yX68bxhOFqBbZ3WdrFJKUxFERITYy";
    const K2: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIHh0NAzZR+XzBRqffadTHrbbAinvsYJN3doNrK28wDw/";

    #[test]
    fn hmac_known_vector() {
        // RFC 2202 test case 2
        let h = hmac_sha1(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex::encode(h), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }

    #[test]
    fn verdicts() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("kh");
        let k1 = russh::keys::parse_public_key_base64(K1).unwrap();
        let k2 = russh::keys::parse_public_key_base64(K2).unwrap();
        std::fs::write(
            &f,
            format!("# c\n\nother ssh-ed25519 {K2}\n[h]:2222 ssh-ed25519 {K1}\n*.lan,!bad.lan ssh-ed25519 {K2}\n"),
        )
        .unwrap();
        let files = vec![f.clone()];
        assert_eq!(check(&files, "h", 2222, &k1), Verdict::Known);
        assert_eq!(check(&files, "h", 2222, &k2), Verdict::Changed { file: f.clone(), line: 4 });
        assert_eq!(check(&files, "h", 22, &k1), Verdict::Unknown);
        assert_eq!(check(&files, "pi.lan", 22, &k2), Verdict::Known);
        assert_eq!(check(&files, "bad.lan", 22, &k2), Verdict::Unknown);
        learn(&f, "new", 2200, &k1).unwrap();
        assert_eq!(check(&files, "new", 2200, &k1), Verdict::Known);
        std::fs::write(&f, format!("@revoked * ssh-ed25519 {K1}\n")).unwrap();
        assert_eq!(check(&files, "x", 22, &k1), Verdict::Revoked { file: f, line: 1 });
    }

    #[test]
    fn hashed_entry() {
        // `|1|` + base64(salt) + `|` + base64(HMAC-SHA1(salt, "[h]:2222"))
        let salt = [7u8; 20];
        let b64 = base64::engine::general_purpose::STANDARD;
        let field = format!("|1|{}|{}", b64.encode(salt), b64.encode(hmac_sha1(&salt, b"[h]:2222")));
        assert!(hosts_match(&field, "[h]:2222"));
        assert!(!hosts_match(&field, "h"));
    }
}
