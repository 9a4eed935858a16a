//! Ansible Vault: files and values encrypted by `ansible-vault` (format 1.1, and 1.2 with a vault
//! id), read and written byte-compatibly.
//!
//! The format: a header line `$ANSIBLE_VAULT;1.1;AES256` (or `;1.2;AES256;LABEL`), then the hex of
//! `hex(salt) \n hex(hmac) \n hex(ciphertext)` in lines of 80. The keys come from
//! PBKDF2-HMAC-SHA256 (10,000 rounds, a 32-byte salt): 32 bytes of AES-256 key, 32 of HMAC key, 16
//! of CTR counter. The ciphertext is AES-256-CTR (128-bit big-endian counter) over the PKCS#7
//! padded text, authenticated by HMAC-SHA256 over the ciphertext.
//!
//! The passwords of a run are set once ([`set_secrets`]) before anything is loaded; loading a
//! file ([`crate::source::read_text`]) or a `!vault` value decrypts with them.

use aes::Aes256;
use ctr::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::RwLock;

type Aes256Ctr = ctr::Ctr128BE<Aes256>;

pub const HEADER: &str = "$ANSIBLE_VAULT";
const ROUNDS: u32 = 10_000;

/// A vault password with its id (`default` when none was given).
#[derive(Clone)]
pub struct Secret {
    pub id: String,
    pub password: Vec<u8>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret").field("id", &self.id).finish_non_exhaustive()
    }
}

fn secrets() -> &'static RwLock<Vec<Secret>> {
    static S: RwLock<Vec<Secret>> = RwLock::new(Vec::new());
    &S
}

/// The run's vault passwords (from `--vault-password-file`, `--vault-id`, ...).
pub fn set_secrets(v: Vec<Secret>) {
    *secrets().write().unwrap_or_else(|e| e.into_inner()) = v;
}

/// Values vault decryption revealed: the reporter redacts them everywhere.
fn revealed_store() -> &'static RwLock<Vec<String>> {
    static R: RwLock<Vec<String>> = RwLock::new(Vec::new());
    &R
}

/// Remember a decrypted value as a secret (under 3 characters it would blank out ordinary
/// output, as the engine's reporter rules for its secrets too).
pub fn reveal(s: &str) {
    if s.len() < 3 {
        return;
    }
    let mut v = revealed_store().write().unwrap_or_else(|e| e.into_inner());
    if !v.iter().any(|x| x == s) {
        v.push(s.to_string());
    }
}

/// Replace every revealed value in `text` by `<redacted>` (the reporter, on each write: no copy
/// of the list).
pub fn redact_revealed(text: &mut String) {
    for s in revealed_store().read().unwrap_or_else(|e| e.into_inner()).iter() {
        if text.contains(s.as_str()) {
            *text = text.replace(s.as_str(), "<redacted>");
        }
    }
}

/// Files that were vault-encrypted (their string values are secrets once parsed).
fn vaulted_paths() -> &'static RwLock<Vec<std::path::PathBuf>> {
    static P: RwLock<Vec<std::path::PathBuf>> = RwLock::new(Vec::new());
    &P
}

/// Vault-encrypted files read as empty for want of a password (`pbr lint`).
fn unopened_paths() -> &'static RwLock<Vec<std::path::PathBuf>> {
    static P: RwLock<Vec<std::path::PathBuf>> = RwLock::new(Vec::new());
    &P
}

pub fn unopened() -> Vec<std::path::PathBuf> {
    unopened_paths().read().unwrap_or_else(|e| e.into_inner()).clone()
}

pub fn was_vaulted(path: &std::path::Path) -> bool {
    vaulted_paths().read().unwrap_or_else(|e| e.into_inner()).iter().any(|p| p == path)
}

/// The text of a file that may be vault-encrypted: decrypted when it is (and remembered as
/// vaulted).
pub fn open_file_text(path: &std::path::Path, text: String) -> Result<String, String> {
    if !is_vaulted(&text) {
        return Ok(text);
    }
    let plain = match decrypt(&text) {
        Ok(p) => p,
        // `pbr lint` without a password: the file reads as empty (its values are not checked)
        Err(VaultError::NoSecret) if KEEP_WITHOUT_SECRET.load(std::sync::atomic::Ordering::SeqCst) => {
            unopened_paths().write().unwrap_or_else(|e| e.into_inner()).push(path.to_path_buf());
            return Ok(String::new());
        }
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let plain = String::from_utf8(plain).map_err(|_| format!("{}: the decrypted text is not UTF-8", path.display()))?;
    vaulted_paths().write().unwrap_or_else(|e| e.into_inner()).push(path.to_path_buf());
    Ok(plain)
}

/// What loading does with a `!vault` value when the run has no password: `pbr lint` keeps the
/// ciphertext (it checks shapes, not values); a run fails with the value's place.
static KEEP_WITHOUT_SECRET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn keep_ciphertext_without_secret(keep: bool) {
    KEEP_WITHOUT_SECRET.store(keep, std::sync::atomic::Ordering::SeqCst);
}

/// A `!vault` value: its plain text, or None to keep the ciphertext (no password, `pbr lint`).
pub fn open_value(text: &str) -> Result<Option<String>, VaultError> {
    let none = secrets().read().unwrap_or_else(|e| e.into_inner()).is_empty();
    if none && KEEP_WITHOUT_SECRET.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(None);
    }
    match decrypt(text) {
        Ok(p) => {
            let s = String::from_utf8(p).map_err(|_| VaultError::Format("the decrypted value is not UTF-8".into()))?;
            reveal(&s);
            Ok(Some(s))
        }
        Err(VaultError::NoSecret) if KEEP_WITHOUT_SECRET.load(std::sync::atomic::Ordering::SeqCst) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether a text is vault-encrypted (a whole file, or a `!vault` value).
pub fn is_vaulted(text: &str) -> bool {
    text.trim_start().starts_with(HEADER)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultError {
    /// Not a vault text, or a damaged one.
    Format(String),
    /// Vault-encrypted, but the run has no password.
    NoSecret,
    /// No password of the run opens it (the ids tried).
    WrongSecret(Vec<String>),
}

impl std::fmt::Display for VaultError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VaultError::Format(m) => write!(f, "not a valid vault text: {m}"),
            VaultError::NoSecret => f.write_str(
                "it is vault-encrypted and no vault password was given \
                 (--vault-password-file FILE, --vault-id [LABEL@]FILE, --ask-vault-pass, or ANSIBLE_VAULT_PASSWORD_FILE)",
            ),
            VaultError::WrongSecret(ids) => {
                write!(f, "no vault password given opens it (tried vault id {}): the HMAC does not match", ids.join(", "))
            }
        }
    }
}

/// The parts of a vault text.
struct Envelope {
    id: Option<String>,
    salt: Vec<u8>,
    hmac: Vec<u8>,
    ciphertext: Vec<u8>,
}

fn parse(text: &str) -> Result<Envelope, VaultError> {
    let bad = |m: &str| VaultError::Format(m.to_string());
    let text = text.trim();
    let (header, body) = text.split_once('\n').ok_or_else(|| bad("only a header"))?;
    let fields: Vec<&str> = header.trim().split(';').collect();
    if fields.first() != Some(&HEADER) {
        return Err(bad("no $ANSIBLE_VAULT header"));
    }
    let id = match fields[..] {
        [_, "1.1", cipher] | [_, "1.0", cipher] if cipher.trim() == "AES256" => None,
        [_, "1.2", cipher, label] if cipher.trim() == "AES256" => Some(label.trim().to_string()),
        _ => return Err(VaultError::Format(format!("unsupported header {header:?} (1.1 and 1.2 with AES256 are)"))),
    };
    let hex: String = body.split_whitespace().collect();
    let inner = hex::decode(&hex).map_err(|e| VaultError::Format(format!("body: {e}")))?;
    let inner = String::from_utf8(inner).map_err(|_| bad("body is not hex text"))?;
    let mut parts = inner.splitn(3, '\n');
    let mut part = |what: &str| {
        let p = parts.next().ok_or_else(|| VaultError::Format(format!("no {what}")))?;
        hex::decode(p.trim()).map_err(|e| VaultError::Format(format!("{what}: {e}")))
    };
    let salt = part("salt")?;
    let hmac = part("HMAC")?;
    let ciphertext = part("ciphertext")?;
    Ok(Envelope { id, salt, hmac, ciphertext })
}

fn keys(password: &[u8], salt: &[u8]) -> ([u8; 32], [u8; 32], [u8; 16]) {
    let mut out = [0u8; 80];
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, ROUNDS, &mut out);
    let mut k1 = [0u8; 32];
    let mut k2 = [0u8; 32];
    let mut iv = [0u8; 16];
    k1.copy_from_slice(&out[..32]);
    k2.copy_from_slice(&out[32..64]);
    iv.copy_from_slice(&out[64..]);
    (k1, k2, iv)
}

fn mac(key: &[u8; 32]) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length")
}

/// Decrypt with one password: None when the HMAC does not match.
fn open(e: &Envelope, password: &[u8]) -> Result<Option<Vec<u8>>, VaultError> {
    let (k1, k2, iv) = keys(password, &e.salt);
    let mut m = mac(&k2);
    m.update(&e.ciphertext);
    if m.verify_slice(&e.hmac).is_err() {
        return Ok(None);
    }
    let mut buf = e.ciphertext.clone();
    Aes256Ctr::new_from_slices(&k1, &iv).map_err(|_| VaultError::Format("key sizes".into()))?.apply_keystream(&mut buf);
    let pad = *buf.last().ok_or_else(|| VaultError::Format("empty ciphertext".into()))? as usize;
    if pad == 0 || pad > 16 || pad > buf.len() || !buf[buf.len() - pad..].iter().all(|&b| b as usize == pad) {
        return Err(VaultError::Format("bad padding".into()));
    }
    buf.truncate(buf.len() - pad);
    Ok(Some(buf))
}

/// Decrypt a vault text with these passwords: the one whose id the text names first, then the
/// others (as Ansible does).
pub fn decrypt_with(text: &str, with: &[Secret]) -> Result<Vec<u8>, VaultError> {
    let e = parse(text)?;
    if with.is_empty() {
        return Err(VaultError::NoSecret);
    }
    let mut order: Vec<&Secret> = with.iter().filter(|s| Some(&s.id) == e.id.as_ref()).collect();
    order.extend(with.iter().filter(|s| Some(&s.id) != e.id.as_ref()));
    for s in &order {
        if let Some(plain) = open(&e, &s.password)? {
            return Ok(plain);
        }
    }
    Err(VaultError::WrongSecret(order.iter().map(|s| s.id.clone()).collect()))
}

/// Decrypt with the run's passwords.
pub fn decrypt(text: &str) -> Result<Vec<u8>, VaultError> {
    let with = secrets().read().unwrap_or_else(|e| e.into_inner()).clone();
    decrypt_with(text, &with)
}

/// Encrypt as `ansible-vault` does: 1.1 for the `default` id, 1.2 naming any other. `salt`
/// fixed only in tests.
pub fn encrypt_with_salt(plain: &[u8], s: &Secret, salt: [u8; 32]) -> String {
    let (k1, k2, iv) = keys(&s.password, &salt);
    let pad = 16 - plain.len() % 16;
    let mut buf = plain.to_vec();
    buf.extend(std::iter::repeat_n(pad as u8, pad));
    Aes256Ctr::new_from_slices(&k1, &iv).expect("key sizes").apply_keystream(&mut buf);
    let mut m = mac(&k2);
    m.update(&buf);
    let tag = m.finalize().into_bytes();
    let inner = format!("{}\n{}\n{}", hex::encode(salt), hex::encode(tag), hex::encode(&buf));
    let body = hex::encode(inner.as_bytes());
    let mut out =
        if s.id == "default" { format!("{HEADER};1.1;AES256\n") } else { format!("{HEADER};1.2;AES256;{}\n", s.id) };
    for chunk in body.as_bytes().chunks(80) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// Encrypt with a fresh random salt.
pub fn encrypt(plain: &[u8], s: &Secret) -> Result<String, String> {
    let mut salt = [0u8; 32];
    getrandom::fill(&mut salt).map_err(|e| format!("no randomness for the salt: {e}"))?;
    Ok(encrypt_with_salt(plain, s, salt))
}

/// The password in a file, as Ansible reads it: an executable file is run and its output used;
/// either way surrounding whitespace is stripped.
pub fn read_password_file(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("vault password file {}: {e}", path.display()))?;
    let raw = if meta.permissions().mode() & 0o111 != 0 && meta.is_file() {
        let out = std::process::Command::new(path)
            .stdin(std::process::Stdio::inherit())
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("vault password script {}: {e}", path.display()))?;
        if !out.status.success() {
            return Err(format!("vault password script {} failed ({})", path.display(), out.status));
        }
        out.stdout
    } else {
        std::fs::read(path).map_err(|e| format!("vault password file {}: {e}", path.display()))?
    };
    let s = raw.trim_ascii().to_vec();
    if s.is_empty() {
        return Err(format!("vault password file {} is empty", path.display()));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(id: &str, pw: &str) -> Secret {
        Secret { id: id.into(), password: pw.as_bytes().to_vec() }
    }

    #[test]
    fn round_trip_and_ids() {
        let a = secret("default", "pw-a");
        let b = secret("prod", "pw-b");
        for plain in [&b""[..], b"x", b"0123456789abcdef", b"a longer text\nwith lines\n"] {
            let t = encrypt(plain, &a).unwrap();
            assert!(t.starts_with("$ANSIBLE_VAULT;1.1;AES256\n") && t.ends_with('\n'), "{t}");
            assert!(t.lines().skip(1).all(|l| l.len() <= 80));
            assert_eq!(decrypt_with(&t, std::slice::from_ref(&a)).unwrap(), plain);
        }
        let t = encrypt(b"s3cret", &b).unwrap();
        assert!(t.starts_with("$ANSIBLE_VAULT;1.2;AES256;prod\n"), "{t}");
        assert_eq!(decrypt_with(&t, &[a.clone(), b.clone()]).unwrap(), b"s3cret");
        assert_eq!(decrypt_with(&t, std::slice::from_ref(&a)), Err(VaultError::WrongSecret(vec!["default".into()])));
        assert_eq!(decrypt_with(&t, &[]), Err(VaultError::NoSecret));
        assert!(matches!(
            decrypt_with("$ANSIBLE_VAULT;1.1;AES256\nzz\n", std::slice::from_ref(&a)),
            Err(VaultError::Format(_))
        ));
        assert!(matches!(decrypt_with("$ANSIBLE_VAULT;9;AES256\n00\n", &[a]), Err(VaultError::Format(_))));
    }
}
