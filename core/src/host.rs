//! What modules see of a machine: [`Host`]. Transports implement [`Connection`].
//!
//! Modules never know whether a host is local or behind SSH. They run POSIX `sh` scripts, move
//! whole files and inspect paths ([`Host::inspect`]); the engine decides about privilege (esc)
//! and refuses writes in read-only phases (probe, check mode), which is how "check mode never
//! writes" is enforced rather than promised.

pub use crate::inspect::{ExtStat, PathInfo, PathQuery, READ_LIMIT};
use async_trait::async_trait;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How to gain privileges for a command.
#[derive(Clone, PartialEq, Eq)]
pub struct Become {
    pub method: BecomeMethod,
    pub user: String,
    /// Sent on stdin, never on a command line or in a log.
    pub password: Option<Secret>,
}

impl fmt::Debug for Become {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Become")
            .field("method", &self.method)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BecomeMethod {
    Sudo,
    Su,
    Doas,
}

impl BecomeMethod {
    pub fn parse(s: &str) -> Option<BecomeMethod> {
        match s {
            "sudo" => Some(BecomeMethod::Sudo),
            "su" => Some(BecomeMethod::Su),
            "doas" => Some(BecomeMethod::Doas),
            _ => None,
        }
    }
}

/// A string that must never reach output (become passwords, secret params). `Debug`/`Display`
/// print `<redacted>`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A secret param (`psk`, `chap_password`...): a string, or a number written bare (an
/// all-digit passphrase). An error about it never shows the value.
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d) {
            Ok(serde_json::Value::String(s)) => Ok(Secret(s)),
            Ok(serde_json::Value::Number(n)) => Ok(Secret(n.to_string())),
            _ => Err(serde::de::Error::custom("a secret must be a string (its value is not shown)")),
        }
    }
}

impl schemars::JsonSchema for Secret {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "description": "A secret: redacted in all output", "writeOnly": true})
    }
}

/// A command: a POSIX sh script plus its inputs.
#[derive(Debug, Clone, Default)]
pub struct Cmd {
    pub script: String,
    pub stdin: Option<Vec<u8>>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
    pub timeout: Option<Duration>,
}

impl Cmd {
    pub fn new(script: impl Into<String>) -> Cmd {
        Cmd { script: script.into(), ..Default::default() }
    }
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(data.into());
        self
    }
    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Cmd {
        self.env.push((k.into(), v.into()));
        self
    }
    pub fn cwd(mut self, dir: impl Into<String>) -> Cmd {
        self.cwd = Some(dir.into());
        self
    }
    pub fn timeout(mut self, t: Duration) -> Cmd {
        self.timeout = Some(t);
        self
    }
}

/// What a command did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub rc: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.rc == 0
    }
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Attributes applied to a written file before it is renamed into place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileAttrs {
    pub mode: Option<u32>,
    pub owner: Option<String>,
    pub group: Option<String>,
    /// A command run on the new file before it is renamed into place (`%s` is its path): when it
    /// fails, the old file stays and the write fails with [`VALIDATE_FAILED`] on stderr.
    pub validate: Option<String>,
}

/// What the write script prints first on stderr when `validate` failed: then its exit code on
/// the same line, and the command's output on the next lines.
pub const VALIDATE_FAILED: &str = "pbr-validate-failed";

/// Errors talking to a host. `Unreachable` marks the host unreachable for the rest of the run.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HostError {
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("{0}")]
    Failed(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("refused in a read-only phase: {0}")]
    ReadOnly(String),
}

/// A transport to one machine (local, SSH). Implementations must write files atomically (temp
/// file in the target directory, checked on the host against the size and checksum of what was
/// sent, attributes set, flushed, then renamed: the engine's `transport::atomic_write_script`) and
/// pass become passwords on stdin only.
#[async_trait]
pub trait Connection: Send + Sync {
    /// Run a script with `sh`, as the login user or through `become`.
    async fn exec(&self, cmd: &Cmd, esc: Option<&Become>) -> Result<Output, HostError>;
    /// Run a script that only reads (a probe): a transport may run it again after it lost the
    /// connection under it, which it never does for [`Connection::exec`].
    async fn query(&self, cmd: &Cmd, esc: Option<&Become>) -> Result<Output, HostError> {
        self.exec(cmd, esc).await
    }
    /// Read a whole file; `Ok(None)` when it does not exist.
    async fn read_file(&self, path: &str, esc: Option<&Become>) -> Result<Option<Vec<u8>>, HostError>;
    /// Atomically replace (or create) a file with `data`.
    async fn write_file(
        &self,
        path: &str,
        data: &[u8],
        attrs: &FileAttrs,
        esc: Option<&Become>,
    ) -> Result<(), HostError>;
    /// Atomically replace a file with the content of a local file, streamed.
    async fn upload(
        &self,
        local: &std::path::Path,
        path: &str,
        attrs: &FileAttrs,
        esc: Option<&Become>,
    ) -> Result<(), HostError> {
        let data = tokio::fs::read(local)
            .await
            .map_err(|e| HostError::Failed(format!("cannot read {}: {e}", local.display())))?;
        self.write_file(path, &data, attrs, esc).await
    }
    /// Inspect paths (lstat, link target, content, checksum, access); see
    /// [`crate::inspect`]. The default asks `sh`.
    async fn inspect(&self, qs: &[PathQuery], esc: Option<&Become>) -> Result<Vec<PathInfo>, HostError> {
        crate::inspect::shell_inspect(self, qs, esc).await
    }
    /// Make `path` a directory, with its missing parents, without starting a program where the
    /// transport can: each directory made, then `path` itself, gets `attrs` (a numeric mode,
    /// owner and group; `validate` unused). `Ok(false)`: not done here, or only in part: the
    /// caller runs the shell's way, which finishes it and words any error. The default does
    /// nothing.
    async fn make_dir(&self, _path: &str, _attrs: &FileAttrs, _esc: Option<&Become>) -> Result<bool, HostError> {
        Ok(false)
    }
    /// Set `attrs` (numeric mode, owner, group) on an existing path, following a link, without
    /// starting a program where the transport can; `Ok(false)` as for [`Connection::make_dir`].
    async fn set_attrs(&self, _path: &str, _attrs: &FileAttrs, _esc: Option<&Become>) -> Result<bool, HostError> {
        Ok(false)
    }
    /// Close the connection (end of run).
    async fn close(&self) {}
}

/// Metadata of a path on a host (`stat` without following the final link).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileStat {
    /// "file", "directory", "link", "block", "char", "fifo", "socket".
    pub kind: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub owner: String,
    pub group: String,
    pub size: u64,
    pub mtime: i64,
    /// Target of a symlink.
    pub link_target: Option<String>,
}

/// What a module talks to: a connection plus the task's privileges and phase.
#[derive(Clone)]
pub struct Host {
    name: String,
    conn: Arc<dyn Connection>,
    esc: Option<Become>,
    read_only: bool,
    /// The task's `environment:`, exported for every command.
    env: Arc<Vec<(String, String)>>,
    /// In check mode: what the ops planned by earlier tasks would make of paths (probes read
    /// through it).
    overlay: Option<Arc<std::sync::Mutex<crate::op::Overlay>>>,
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host").field("name", &self.name).field("read_only", &self.read_only).finish()
    }
}

impl Host {
    pub fn new(name: impl Into<String>, conn: Arc<dyn Connection>, esc: Option<Become>) -> Host {
        Host { name: name.into(), conn, esc, read_only: false, env: Arc::new(Vec::new()), overlay: None }
    }

    /// The same host seen through check mode's overlay: probes read paths as the ops recorded
    /// in it would leave them.
    pub fn with_overlay(mut self, overlay: Arc<std::sync::Mutex<crate::op::Overlay>>) -> Host {
        self.overlay = Some(overlay);
        self
    }

    /// Record planned ops in the overlay (check mode); nothing without one.
    pub fn record_planned(&self, ops: &[crate::op::Op]) {
        if let Some(o) = &self.overlay {
            o.lock().unwrap_or_else(|e| e.into_inner()).record(ops);
        }
    }

    fn overlay(&self) -> Option<std::sync::MutexGuard<'_, crate::op::Overlay>> {
        self.overlay.as_ref().map(|o| o.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The same host with these variables in the environment of every command (`environment:`).
    pub fn with_env(mut self, env: Vec<(String, String)>) -> Host {
        self.env = Arc::new(env);
        self
    }

    fn prepare(&self, mut cmd: Cmd) -> Cmd {
        if !self.env.is_empty() {
            let mut env = (*self.env).clone();
            env.append(&mut cmd.env);
            cmd.env = env;
        }
        cmd
    }

    /// The task's `environment:` (exported for every command).
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// The inventory name of the host.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The same host, refusing every write (`run`, `write_file`). Probes get this view.
    pub fn read_only(&self) -> Host {
        Host { read_only: true, ..self.clone() }
    }

    /// What probes get: [`ReadHost`], over a read-only view of this host.
    pub fn reader(&self) -> ReadHost {
        ReadHost(self.read_only())
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    pub fn connection(&self) -> &Arc<dyn Connection> {
        &self.conn
    }

    pub fn become_(&self) -> Option<&Become> {
        self.esc.as_ref()
    }

    /// Run a command that reads only (allowed in probe and check mode).
    pub async fn query(&self, cmd: Cmd) -> Result<Output, HostError> {
        self.conn.query(&self.prepare(cmd), self.esc.as_ref()).await
    }

    /// Shorthand: run a read-only script.
    pub async fn query_sh(&self, script: impl Into<String>) -> Result<Output, HostError> {
        self.query(Cmd::new(script)).await
    }

    /// Run a command that may change the host. Refused in read-only phases.
    pub async fn run(&self, cmd: Cmd) -> Result<Output, HostError> {
        if self.read_only {
            return Err(HostError::ReadOnly(format!("command `{}`", first_line(&cmd.script))));
        }
        self.conn.exec(&self.prepare(cmd), self.esc.as_ref()).await
    }

    /// Shorthand: run a changing script and fail on a non-zero exit, with its stderr.
    pub async fn run_ok(&self, script: impl Into<String>) -> Result<Output, HostError> {
        let script = script.into();
        let out = self.run(Cmd::new(script.clone())).await?;
        if out.rc != 0 {
            return Err(HostError::Failed(format!(
                "`{}` exited {}: {}",
                first_line(&script),
                out.rc,
                out.stderr_str().trim()
            )));
        }
        Ok(out)
    }

    pub async fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, HostError> {
        if let Some(known) = self.overlay().and_then(|o| o.read(path)) {
            return Ok(known);
        }
        self.conn.read_file(path, self.esc.as_ref()).await
    }

    pub async fn write_file(&self, path: &str, data: &[u8], attrs: &FileAttrs) -> Result<(), HostError> {
        if self.read_only {
            return Err(HostError::ReadOnly(format!("write of {path}")));
        }
        self.conn.write_file(path, data, attrs, self.esc.as_ref()).await
    }

    /// [`Connection::make_dir`]: true when the transport made it without a program.
    pub async fn make_dir_native(&self, path: &str, attrs: &FileAttrs) -> Result<bool, HostError> {
        if self.read_only {
            return Err(HostError::ReadOnly(format!("mkdir {path}")));
        }
        self.conn.make_dir(path, attrs, self.esc.as_ref()).await
    }

    /// [`Connection::set_attrs`]: true when the transport set them without a program.
    pub async fn set_attrs_native(&self, path: &str, attrs: &FileAttrs) -> Result<bool, HostError> {
        if self.read_only {
            return Err(HostError::ReadOnly(format!("attributes of {path}")));
        }
        self.conn.set_attrs(path, attrs, self.esc.as_ref()).await
    }

    pub async fn upload(&self, local: &std::path::Path, path: &str, attrs: &FileAttrs) -> Result<(), HostError> {
        if self.read_only {
            return Err(HostError::ReadOnly(format!("upload to {path}")));
        }
        self.conn.upload(local, path, attrs, self.esc.as_ref()).await
    }

    /// Inspect paths in one round (see [`PathQuery`]): allowed in probes and check mode.
    pub async fn inspect(&self, qs: &[PathQuery]) -> Result<Vec<PathInfo>, HostError> {
        if qs.is_empty() {
            return Ok(Vec::new());
        }
        let real = self.conn.inspect(qs, self.esc.as_ref()).await?;
        match self.overlay() {
            Some(o) if o.touches(qs) => Ok(qs.iter().zip(real).map(|(q, r)| o.patch(q, r)).collect()),
            _ => Ok(real),
        }
    }

    /// Inspect one path.
    pub async fn inspect_one(&self, q: PathQuery) -> Result<PathInfo, HostError> {
        let path = q.path.clone();
        self.inspect(&[q]).await?.pop().ok_or_else(|| HostError::Failed(format!("cannot inspect {path}")))
    }

    /// `lstat` of a path (with a link's target); `Ok(None)` when it does not exist.
    pub async fn stat(&self, path: &str) -> Result<Option<FileStat>, HostError> {
        Ok(self.inspect_one(PathQuery::new(path)).await?.stat)
    }
}

/// A host as probes see it: the reads of [`Host`], and no method that writes. `probe` and
/// `report` get this type, so a module that tries to change a host while probing does not
/// compile; under it the host is also a [`Host::read_only`] view, which refuses writes at run
/// time (the connection is never handed out).
#[derive(Clone, Debug)]
pub struct ReadHost(Host);

impl ReadHost {
    /// The inventory name of the host.
    pub fn name(&self) -> &str {
        self.0.name()
    }

    /// The task's `environment:` (exported for every command).
    pub fn env(&self) -> &[(String, String)] {
        self.0.env()
    }

    /// The privilege escalation the task runs with.
    pub fn become_(&self) -> Option<&Become> {
        self.0.become_()
    }

    /// Run a command that only reads.
    pub async fn query(&self, cmd: Cmd) -> Result<Output, HostError> {
        self.0.query(cmd).await
    }

    /// Shorthand: run a read-only script.
    pub async fn query_sh(&self, script: impl Into<String>) -> Result<Output, HostError> {
        self.0.query_sh(script).await
    }

    /// A whole file; `Ok(None)` when it does not exist. In check mode, as the ops planned by
    /// earlier tasks would leave it.
    pub async fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, HostError> {
        self.0.read_file(path).await
    }

    /// Inspect paths in one round (see [`PathQuery`]).
    pub async fn inspect(&self, qs: &[PathQuery]) -> Result<Vec<PathInfo>, HostError> {
        self.0.inspect(qs).await
    }

    /// Inspect one path.
    pub async fn inspect_one(&self, q: PathQuery) -> Result<PathInfo, HostError> {
        self.0.inspect_one(q).await
    }

    /// `lstat` of a path (with a link's target); `Ok(None)` when it does not exist.
    pub async fn stat(&self, path: &str) -> Result<Option<FileStat>, HostError> {
        self.0.stat(path).await
    }
}

/// The `stat -c` format that [`parse_stat_line`] reads.
pub const STAT_FMT: &str = "%F|%a|%u|%g|%U|%G|%s|%Y";

/// Parse one line of `stat -c STAT_FMT` output (with the symlink's target, if read).
pub fn parse_stat_line(line: &str, link: Option<&str>) -> Option<FileStat> {
    let f: Vec<&str> = line.splitn(8, '|').collect();
    if f.len() != 8 {
        return None;
    }
    let kind = match f[0] {
        "regular file" | "regular empty file" => "file",
        "directory" => "directory",
        "symbolic link" => "link",
        "block special file" => "block",
        "character special file" => "char",
        "fifo" => "fifo",
        "socket" => "socket",
        _ => "other",
    };
    Some(FileStat {
        kind: kind.to_string(),
        mode: u32::from_str_radix(f[1], 8).ok()?,
        uid: f[2].parse().ok()?,
        gid: f[3].parse().ok()?,
        owner: f[4].to_string(),
        group: f[5].to_string(),
        size: f[6].parse().ok()?,
        mtime: f[7].trim().parse().ok()?,
        link_target: if kind == "link" { link.filter(|l| !l.is_empty()).map(str::to_string) } else { None },
    })
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// Quote a string for POSIX sh (single quotes; `'` becomes `'\''`).
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:@,+%".contains(&b)) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("abc"), "abc");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn stat_line() {
        let s = parse_stat_line("regular file|644|0|0|root|root|12|1700000000", None).unwrap();
        assert_eq!(s.kind, "file");
        assert_eq!(s.mode, 0o644);
        assert!(parse_stat_line("garbage", None).is_none());
    }

    #[test]
    fn secret_params() {
        let s: Secret = serde_json::from_value(serde_json::json!("hunter2hunter2")).unwrap();
        assert_eq!(s.expose(), "hunter2hunter2");
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
        // an all-digit passphrase written bare
        let n: Secret = serde_json::from_value(serde_json::json!(12345678)).unwrap();
        assert_eq!(n.expose(), "12345678");
        let e = serde_json::from_value::<Secret>(serde_json::json!({"k": "hunter2hunter2"})).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(e.to_string().contains("its value is not shown"), "{e}");
    }
}
