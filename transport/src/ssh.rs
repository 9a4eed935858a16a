//! SSH transport over russh: one connection per host, reused for the whole run.
//!
//! Commands run either on a fresh `exec` channel each, or framed through one long-lived `sh`
//! per host ([`ExecMode`]); at most [`MAX_CHANNELS`] channels are open at once on a connection
//! (sshd's default `MaxSessions`). Become and atomic writes use the same shell text as the local
//! transport ([`super::become_wrap`], [`super::atomic_write_script`]).

pub mod config;
pub mod known_hosts;
mod options;

pub use config::{HostConfig, SshConfig};
pub use options::{
    DEFAULT_RECONNECT_RETRIES, ExecMode, HostKeyChecking, JumpHost, PassphrasePrompt, SshGlobals, SshOptions,
};

use super::inspect::{IdTable, NativeFs, RawStat, Unsure, native_inspect};
use super::{Expect, atomic_write_script, become_wrap, read_script};
use async_trait::async_trait;
use known_hosts::Verdict;
use pbr_core::host::{Become, Cmd, Connection, FileAttrs, HostError, Output, PathInfo, PathQuery, sh_quote};
use russh::client::{Handle, Msg};
use russh::keys::{PrivateKeyWithHashAlg, PublicKey};
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// sshd's default `MaxSessions`.
pub const MAX_CHANNELS: usize = 10;

/// The russh handler: verifies the server's host key.
struct Client {
    host: String,
    port: u16,
    known_hosts: Vec<PathBuf>,
    mode: HostKeyChecking,
    verdict: Arc<Mutex<Option<String>>>,
}

impl Client {
    fn refuse(&self, msg: String) -> Result<bool, russh::Error> {
        if let Ok(mut v) = self.verdict.lock() {
            *v = Some(msg);
        }
        Ok(false)
    }
}

impl russh::client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &russh::keys::PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let key = key.public_key();
        if self.mode == HostKeyChecking::Off {
            return Ok(true);
        }
        let name = known_hosts::host_field(&self.host, self.port);
        let fp = known_hosts::fingerprint(&key);
        let first = self.known_hosts.first().cloned().unwrap_or_else(|| PathBuf::from("~/.ssh/known_hosts"));
        match known_hosts::check(&self.known_hosts, &self.host, self.port, &key) {
            Verdict::Known => Ok(true),
            Verdict::Revoked { file, line } => {
                self.refuse(format!("host key {fp} of {name} is marked @revoked in {}:{line}", file.display()))
            }
            Verdict::Changed { file, line } => self.refuse(format!(
                "HOST KEY CHANGED for {name}: the server offers {fp}, but {}:{line} records a different key. \
                 This may be an attack, or the host was reinstalled; if the change is expected, remove that line \
                 (`ssh-keygen -R '{name}' -f {}`) and connect again",
                file.display(),
                file.display()
            )),
            Verdict::Unknown => match self.mode {
                HostKeyChecking::AcceptNew => match known_hosts::learn(&first, &self.host, self.port, &key) {
                    Ok(()) => Ok(true),
                    Err(e) => self.refuse(format!("cannot record the host key of {name}: {e}")),
                },
                _ => {
                    let port = if self.port == 22 { String::new() } else { format!("-p {} ", self.port) };
                    self.refuse(format!(
                        "host key of {name} ({fp}) is unknown: not in {}. To trust it, run \
                         `ssh-keyscan {port}{} >> {}` (and check the fingerprint), or pass \
                         `--host-key-checking accept-new`",
                        self.known_hosts.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
                        self.host,
                        first.display()
                    ))
                }
            },
        }
    }
}

/// A long-lived `sh` that runs framed commands one at a time.
struct Shell {
    rd: ChannelReadHalf,
    wr: ChannelWriteHalf<Msg>,
    _permit: OwnedSemaphorePermit,
}

enum Input {
    None,
    Bytes(Vec<u8>),
    File(tokio::fs::File),
}

/// An SFTP session (the login user's, or one started through `become`), for reading and
/// inspecting files without starting a program per request.
struct Sftp {
    raw: russh_sftp::client::RawSftpSession,
    login: String,
    ids: tokio::sync::OnceCell<Option<IdTable>>,
    _permit: OwnedSemaphorePermit,
}

type SftpError = russh_sftp::client::error::Error;

/// The most OpenSSH's sftp-server returns for one read.
const SFTP_READ_CHUNK: u32 = 255 * 1024;
/// Files up to this size are written over SFTP ([`Sftp::write_atomic`]); bigger ones stream
/// through the shell in one request.
const SFTP_WRITE_MAX: usize = 1 << 20;
/// One SFTP write request (OpenSSH takes up to 256 KiB).
const SFTP_WRITE_CHUNK: usize = 64 * 1024;
/// OpenSSH's rename that replaces an existing file (`rename(2)`; plain SFTP rename refuses).
const POSIX_RENAME: &str = "posix-rename@openssh.com";

fn sftp_found(r: Result<russh_sftp::protocol::Attrs, SftpError>) -> Result<Option<RawStat>, Unsure> {
    match r {
        Ok(a) => {
            let a = a.attrs;
            Ok(Some(RawStat {
                mode: a.permissions.ok_or(Unsure)?,
                uid: a.uid.ok_or(Unsure)?,
                gid: a.gid.ok_or(Unsure)?,
                size: a.size.ok_or(Unsure)?,
                mtime: a.mtime.ok_or(Unsure)? as i64,
            }))
        }
        Err(e) if sftp_status(&e) == Some(russh_sftp::protocol::StatusCode::NoSuchFile) => Ok(None),
        Err(_) => Err(Unsure),
    }
}

fn sftp_status(e: &SftpError) -> Option<russh_sftp::protocol::StatusCode> {
    match e {
        SftpError::Status(s) => Some(s.status_code),
        _ => None,
    }
}

fn first_name(r: Result<russh_sftp::protocol::Name, SftpError>) -> Result<String, Unsure> {
    r.ok().and_then(|n| n.files.into_iter().next()).map(|f| f.filename).ok_or(Unsure)
}

impl Sftp {
    async fn start(ch: russh::Channel<Msg>, permit: OwnedSemaphorePermit, login: String) -> Option<Sftp> {
        let raw = russh_sftp::client::RawSftpSession::new(ch.into_stream());
        let v = raw.init().await.ok()?;
        if v.version != 3 {
            return None;
        }
        Some(Sftp { raw, login, ids: tokio::sync::OnceCell::new(), _permit: permit })
    }

    /// A whole file: `size` bytes when the caller knows them (no extra read for the end of
    /// the file), else up to the end.
    async fn read_file(&self, path: &str, size: Option<u64>) -> Result<Vec<u8>, SftpError> {
        use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
        let h = self.raw.open(path, OpenFlags::READ, FileAttributes::empty()).await?.handle;
        let mut buf = Vec::with_capacity(size.unwrap_or(0) as usize);
        let res = loop {
            let want = match size {
                Some(n) if buf.len() as u64 >= n => break Ok(()),
                Some(n) => (n - buf.len() as u64).min(SFTP_READ_CHUNK as u64) as u32,
                None => SFTP_READ_CHUNK,
            };
            match self.raw.read(h.as_str(), buf.len() as u64, want).await {
                Ok(d) if d.data.is_empty() => break Ok(()),
                Ok(d) => buf.extend_from_slice(&d.data),
                Err(e) if sftp_status(&e) == Some(StatusCode::Eof) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        let _ = self.raw.close(h).await;
        res.map(|()| buf)
    }

    /// Write `data` to `path` as [`super::atomic_write_script`] does, with no program started:
    /// a new temporary file beside it (exclusive create), the bytes, owner and group (named ones
    /// through `/etc/passwd` and `/etc/group`; an existing file's kept where allowed), the mode
    /// (given, the existing file's, or the umask's default), fsync, then `posix-rename` over
    /// `path`. The requests on the open file go out together (the server answers them in order),
    /// so a write takes four round trips. False when that cannot be done here (a `validate`, a
    /// big file, something that is not a regular file at `path`, a name not in the tables, any
    /// refusal): nothing has changed then (the temporary file is removed), and the shell does the
    /// write and words any error.
    async fn write_atomic(&self, path: &str, data: &[u8], attrs: &FileAttrs) -> bool {
        use russh_sftp::protocol::{FileAttributes, OpenFlags};
        if attrs.validate.is_some() || data.len() > SFTP_WRITE_MAX || path.is_empty() || path.ends_with('/') {
            return false;
        }
        let Ok((want_uid, want_gid)) = self.wanted_ids(attrs).await else { return false };
        let cur = match sftp_found(self.raw.lstat(path).await) {
            Ok(None) => None,
            Ok(Some(s)) if s.kind() == "file" => Some(s),
            _ => return false,
        };
        let dir = match path.rfind('/') {
            Some(0) => "/",
            Some(i) => &path[..i],
            None => ".",
        };
        let mut r = [0u8; 6];
        if getrandom::fill(&mut r).is_err() {
            return false;
        }
        let tmp = format!("{}/.pbr.{}", dir.trim_end_matches('/'), hex::encode(r));
        // a new file with no mode given gets the umask's default, as the shell's would
        let open_mode = if attrs.mode.is_none() && cur.is_none() { 0o666 } else { 0o600 };
        let flags = OpenFlags::CREATE | OpenFlags::EXCLUDE | OpenFlags::WRITE;
        let open = FileAttributes { permissions: Some(open_mode), ..FileAttributes::empty() };
        let Ok(h) = self.raw.open(tmp.as_str(), flags, open).await else { return false };
        let h = h.handle;
        let explicit = want_uid.is_some() || want_gid.is_some();
        // owner and group to set: the wanted ones, the rest from the file replaced (only where
        // allowed: as `chown ... || true`) or, for half a pair on a new file, the new file's
        let ug = match (want_uid, want_gid, &cur) {
            (None, None, None) => None,
            (u, g, Some(c)) => Some((u.unwrap_or(c.uid), g.unwrap_or(c.gid))),
            (Some(u), Some(g), None) => Some((u, g)),
            (u, g, None) => match self.raw.fstat(h.as_str()).await {
                Ok(a) => match (a.attrs.uid, a.attrs.gid) {
                    (Some(mu), Some(mg)) => Some((u.unwrap_or(mu), g.unwrap_or(mg))),
                    _ => {
                        let _ = self.raw.close(h.as_str()).await;
                        let _ = self.raw.remove(tmp.as_str()).await;
                        return false;
                    }
                },
                Err(_) => {
                    let _ = self.raw.close(h.as_str()).await;
                    let _ = self.raw.remove(tmp.as_str()).await;
                    return false;
                }
            },
        };
        let mode = attrs.mode.or(cur.as_ref().map(|c| c.mode & 0o7777));
        let writes = futures::future::join_all(
            data.chunks(SFTP_WRITE_CHUNK)
                .enumerate()
                .map(|(i, c)| self.raw.write(h.as_str(), (i * SFTP_WRITE_CHUNK) as u64, c.to_vec())),
        );
        let chown = async {
            match ug {
                Some((uid, gid)) => {
                    let a = FileAttributes { uid: Some(uid), gid: Some(gid), ..FileAttributes::empty() };
                    self.raw.fsetstat(h.as_str(), a).await.is_ok() || !explicit
                }
                None => true,
            }
        };
        // after chown, which may clear setuid/setgid bits
        let chmod = async {
            match mode {
                Some(m) => {
                    let a = FileAttributes { permissions: Some(m & 0o7777), ..FileAttributes::empty() };
                    self.raw.fsetstat(h.as_str(), a).await.is_ok()
                }
                None => true,
            }
        };
        // as `sync -- "$t" || sync`: a server without the extension still writes the file
        let fsync = self.raw.fsync(h.as_str());
        let close = self.raw.close(h.as_str());
        let (written, owned, moded, _, closed) = futures::join!(writes, chown, chmod, fsync, close);
        if written.iter().all(Result::is_ok) && owned && moded && closed.is_ok() {
            let mut req = Vec::with_capacity(tmp.len() + path.len() + 8);
            for s in [tmp.as_str(), path] {
                req.extend_from_slice(&(s.len() as u32).to_be_bytes());
                req.extend_from_slice(s.as_bytes());
            }
            if let Ok(russh_sftp::protocol::Packet::Status(s)) = self.raw.extended(POSIX_RENAME, req).await
                && s.status_code == russh_sftp::protocol::StatusCode::Ok
            {
                return true;
            }
        }
        let _ = self.raw.remove(tmp.as_str()).await;
        false
    }

    /// The uid and gid that `attrs` names (None: keep), or Err when a name is not in the tables.
    async fn wanted_ids(&self, attrs: &FileAttrs) -> Result<(Option<u32>, Option<u32>), ()> {
        if attrs.owner.is_none() && attrs.group.is_none() {
            return Ok((None, None));
        }
        let ids = self.ids().await.ok_or(())?;
        let uid = match &attrs.owner {
            Some(o) => Some(ids.uid_of(o).ok_or(())?),
            None => None,
        };
        let gid = match &attrs.group {
            Some(g) => Some(ids.gid_of(g).ok_or(())?),
            None => None,
        };
        Ok((uid, gid))
    }

    /// As `chown` then `chmod` (following a link) would: false when refused.
    async fn set(&self, path: &str, uid: Option<u32>, gid: Option<u32>, mode: Option<u32>) -> bool {
        use russh_sftp::protocol::FileAttributes;
        let Ok(Some(cur)) = sftp_found(self.raw.stat(path).await) else { return false };
        let (u, g) = (uid.unwrap_or(cur.uid), gid.unwrap_or(cur.gid));
        if (u, g) != (cur.uid, cur.gid) {
            let a = FileAttributes { uid: Some(u), gid: Some(g), ..FileAttributes::empty() };
            if self.raw.setstat(path, a).await.is_err() {
                return false;
            }
        }
        if let Some(m) = mode {
            // chown may have cleared setuid/setgid bits: compare with what is there now
            let now = if (u, g) != (cur.uid, cur.gid) {
                match sftp_found(self.raw.stat(path).await) {
                    Ok(Some(s)) => s.mode,
                    _ => return false,
                }
            } else {
                cur.mode
            };
            if now & 0o7777 != m & 0o7777 {
                let a = FileAttributes { permissions: Some(m & 0o7777), ..FileAttributes::empty() };
                if self.raw.setstat(path, a).await.is_err() {
                    return false;
                }
            }
        }
        true
    }

    /// [`Connection::make_dir`] over SFTP: the directories down to `path` looked at together,
    /// then `mkdir` (the umask's mode, as the shell's) of each missing one with `attrs` set in
    /// the same round trip, then `attrs` on `path` if it was there already.
    async fn make_dir(&self, path: &str, attrs: &FileAttrs) -> bool {
        use russh_sftp::protocol::FileAttributes;
        let Ok((uid, gid)) = self.wanted_ids(attrs).await else { return false };
        let dirs = pbr_core::op::ancestors(path);
        let found = futures::future::join_all(dirs.iter().map(|d| self.raw.stat(d.as_str()))).await;
        let mut made_leaf = false;
        for (d, st) in dirs.iter().zip(found) {
            match sftp_found(st) {
                Ok(Some(s)) if s.kind() == "directory" => continue,
                Ok(None) => {}
                _ => return false,
            }
            // chown of a new directory needs both ids: the missing one from the directory
            let ids = match (uid, gid) {
                (None, None) => None,
                (Some(u), Some(g)) => Some((u, g)),
                _ => None,
            };
            let mkdir = self.raw.mkdir(d.as_str(), FileAttributes::empty());
            let chown = async {
                match ids {
                    Some((u, g)) => {
                        let a = FileAttributes { uid: Some(u), gid: Some(g), ..FileAttributes::empty() };
                        self.raw.setstat(d.as_str(), a).await.is_ok()
                    }
                    None => true,
                }
            };
            let chmod = async {
                match attrs.mode {
                    Some(m) => {
                        let a = FileAttributes { permissions: Some(m & 0o7777), ..FileAttributes::empty() };
                        self.raw.setstat(d.as_str(), a).await.is_ok()
                    }
                    None => true,
                }
            };
            let (made, owned, moded) = futures::join!(mkdir, chown, chmod);
            if made.is_err() {
                // made by someone else meanwhile is as good; else the shell says why
                if !matches!(sftp_found(self.raw.stat(d.as_str()).await), Ok(Some(s)) if s.kind() == "directory") {
                    return false;
                }
                if !self.set(d, uid, gid, attrs.mode).await {
                    return false;
                }
            } else if !owned
                || !moded
                || (ids.is_none() && (uid.is_some() || gid.is_some()) && !self.set(d, uid, gid, None).await)
            {
                return false;
            }
            made_leaf = d.trim_end_matches('/') == path.trim_end_matches('/');
        }
        made_leaf || self.set(path, uid, gid, attrs.mode).await
    }

    async fn ids(&self) -> Option<&IdTable> {
        self.ids
            .get_or_init(|| async {
                let passwd = self.read_file("/etc/passwd", None).await.ok()?;
                let group = self.read_file("/etc/group", None).await.ok()?;
                Some(IdTable::parse(&String::from_utf8_lossy(&passwd), &String::from_utf8_lossy(&group), &self.login))
            })
            .await
            .as_ref()
    }
}

#[async_trait]
impl NativeFs for Sftp {
    async fn lstat(&self, path: &str) -> Result<Option<RawStat>, Unsure> {
        sftp_found(self.raw.lstat(path).await)
    }
    async fn stat(&self, path: &str) -> Result<Option<RawStat>, Unsure> {
        sftp_found(self.raw.stat(path).await)
    }
    async fn readlink(&self, path: &str) -> Result<String, Unsure> {
        first_name(self.raw.readlink(path).await)
    }
    async fn realpath(&self, path: &str) -> Result<String, Unsure> {
        first_name(self.raw.realpath(path).await)
    }
    async fn read(&self, path: &str, size: u64) -> Result<Vec<u8>, Unsure> {
        self.read_file(path, Some(size)).await.map_err(|_| Unsure)
    }
    async fn names(&self, uid: u32, gid: u32) -> Result<(String, String), Unsure> {
        self.ids().await.ok_or(Unsure)?.names(uid, gid)
    }
    async fn access(&self, _path: &str, st: &RawStat) -> Result<String, Unsure> {
        self.ids().await.ok_or(Unsure)?.access(st)
    }
}

/// One authenticated SSH session to a host and what was started on it (SFTP servers, the
/// long-lived shell). A lost session is replaced whole by [`SshConnection`].
struct Session {
    target: String,
    user: String,
    sftp: tokio::sync::OnceCell<Option<Arc<Sftp>>>,
    /// SFTP servers started through `become` (sudo/doas), one per identity, on first use.
    become_sftp: tokio::sync::Mutex<Vec<(Become, Option<Arc<Sftp>>)>>,
    handle: Arc<Handle<Client>>,
    _jumps: Vec<Handle<Client>>,
    sem: Arc<Semaphore>,
    mode: ExecMode,
    shell: tokio::sync::Mutex<Option<Shell>>,
    nonce: u64,
    seq: AtomicU64,
}

/// The environment variable that confines connections to loopback addresses: with it set to
/// `1` (the test suite sets it for every `pbr` it starts), connecting to anything but an IP
/// literal in 127.0.0.0/8 or `::1`, a name included (it is not even resolved), fails at once,
/// before any packet leaves. ProxyJump hops are checked as well.
pub const LOOPBACK_ONLY_ENV: &str = "PBR_TEST_LOOPBACK_ONLY";

/// Whether [`LOOPBACK_ONLY_ENV`] is in force.
pub fn loopback_only() -> bool {
    std::env::var(LOOPBACK_ONLY_ENV).is_ok_and(|v| v.trim() == "1")
}

/// `Err` (naming the address) unless `host` is a loopback IP literal.
pub fn check_loopback(host: &str, port: u16) -> Result<(), String> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
        return Ok(());
    }
    Err(format!(
        "{LOOPBACK_ONLY_ENV}=1: refusing to connect to {host}:{port}: not a loopback address \
         (only 127.0.0.0/8 and ::1 are allowed, and names are not resolved)"
    ))
}

/// Why a session could not be established, and whether trying again may help (a refused or
/// timed-out TCP connection, a broken handshake: yes; a host key or login refused: no).
struct EstablishError {
    err: HostError,
    transient: bool,
}

fn transient(err: HostError) -> EstablishError {
    EstablishError { err, transient: true }
}

fn permanent(err: HostError) -> EstablishError {
    EstablishError { err, transient: false }
}

fn unreachable(target: &str, what: impl std::fmt::Display) -> HostError {
    HostError::Unreachable(format!("{target}: {what}"))
}

struct Hop<'a> {
    host: &'a str,
    port: u16,
    user: &'a str,
    identity_files: &'a [PathBuf],
    password: Option<&'a str>,
}

impl Session {
    /// Connect (through the `ProxyJump` hops, if any), verify the host key, authenticate, and
    /// check that the login shell runs commands.
    async fn establish(opts: &SshOptions) -> Result<Session, EstablishError> {
        let target = format!("{}@{}:{}", opts.user, opts.host, opts.port);
        let config = Arc::new(russh::client::Config {
            nodelay: true,
            keepalive_interval: opts.server_alive_interval,
            keepalive_max: 3,
            ..Default::default()
        });
        let mut hops: Vec<Hop<'_>> = opts
            .proxy_jump
            .iter()
            .map(|j| Hop {
                host: &j.host,
                port: j.port,
                user: &j.user,
                identity_files: if j.identity_files.is_empty() { &opts.identity_files } else { &j.identity_files },
                password: None,
            })
            .collect();
        hops.push(Hop {
            host: &opts.host,
            port: opts.port,
            user: &opts.user,
            identity_files: &opts.identity_files,
            password: opts.password.as_ref().map(|p| p.expose()),
        });
        if loopback_only() {
            for hop in &hops {
                check_loopback(hop.host, hop.port)
                    .map_err(|e| permanent(unreachable(&format!("{}@{}:{}", hop.user, hop.host, hop.port), e)))?;
            }
        }
        let mut handles: Vec<Handle<Client>> = Vec::new();
        for hop in &hops {
            let name = format!("{}@{}:{}", hop.user, hop.host, hop.port);
            let verdict = Arc::new(Mutex::new(None));
            let client = Client {
                host: hop.host.to_string(),
                port: hop.port,
                known_hosts: opts.known_hosts.clone(),
                mode: opts.host_key_checking,
                verdict: verdict.clone(),
            };
            let refused = verdict.clone();
            let connecting = async {
                match handles.last() {
                    None => {
                        let tcp = tokio::net::TcpStream::connect((hop.host, hop.port))
                            .await
                            .map_err(|e| format!("cannot connect to {}:{}: {e}", hop.host, hop.port))?;
                        let _ = tcp.set_nodelay(true);
                        russh::client::connect_stream(config.clone(), tcp, client).await
                    }
                    Some(prev) => {
                        let ch =
                            prev.channel_open_direct_tcpip(hop.host, hop.port as u32, "127.0.0.1", 0).await.map_err(
                                |e| format!("jump host refused to open a tunnel to {}:{}: {e}", hop.host, hop.port),
                            )?;
                        russh::client::connect_stream(config.clone(), ch.into_stream(), client).await
                    }
                }
                .map_err(|e| {
                    let v = verdict.lock().ok().and_then(|mut v| v.take());
                    v.unwrap_or_else(|| format!("SSH handshake with {}:{} failed: {e}", hop.host, hop.port))
                })
            };
            let mut handle = match tokio::time::timeout(opts.connect_timeout, connecting).await {
                Err(_) => {
                    return Err(transient(unreachable(
                        &name,
                        format!("connection timed out after {:?}", opts.connect_timeout),
                    )));
                }
                Ok(Err(e)) => {
                    // a refused host key is not worth a second try; a refused connection is
                    let keyed = refused.lock().map(|v| v.is_some()).unwrap_or(false) || e.contains("host key");
                    let err = unreachable(&name, e);
                    return Err(if keyed { permanent(err) } else { transient(err) });
                }
                Ok(Ok(h)) => h,
            };
            authenticate(&mut handle, hop, opts).await.map_err(|e| permanent(unreachable(&name, e)))?;
            handles.push(handle);
        }
        let handle = match handles.pop() {
            Some(h) => Arc::new(h),
            None => return Err(permanent(unreachable(&target, "no host to connect to"))),
        };
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ ((std::process::id() as u64) << 32);
        let session = Session {
            target,
            user: opts.user.clone(),
            sftp: tokio::sync::OnceCell::new(),
            become_sftp: tokio::sync::Mutex::new(Vec::new()),
            handle,
            _jumps: handles,
            sem: Arc::new(Semaphore::new(MAX_CHANNELS)),
            mode: opts.exec_mode,
            shell: tokio::sync::Mutex::new(None),
            nonce,
            seq: AtomicU64::new(0),
        };
        session.check_login_shell().await?;
        Ok(session)
    }

    /// Run one trivial command through the login shell: an account whose shell is `/bin/false`
    /// or `nologin` authenticates but runs nothing, which makes the host unreachable (not a
    /// failed task), with a message that says why.
    async fn check_login_shell(&self) -> Result<(), EstablishError> {
        const WORD: &str = "pbr-login-shell-ok";
        let out = self
            .exec_channel(
                &format!("echo {WORD}"),
                None,
                Input::None,
                Some(Duration::from_secs(30)),
                &AtomicBool::new(false),
            )
            .await
            .map_err(|e| match e {
                HostError::Unreachable(_) => transient(e),
                other => permanent(unreachable(&self.target, format!("cannot run a command after login: {other}"))),
            })?;
        if out.rc == 0 && out.stdout_str().trim_end() == WORD {
            return Ok(());
        }
        let said = [out.stdout_str(), out.stderr_str()].join(" ");
        let said = said.trim();
        Err(permanent(unreachable(
            &self.target,
            format!(
                "the login shell of `{}` does not run commands (`echo` exited {}{}): its shell is probably                  /bin/false or nologin; pbr needs a POSIX shell such as /bin/sh for the login user",
                self.user,
                out.rc,
                if said.is_empty() { ", no output".to_string() } else { format!(": {said}") }
            ),
        )))
    }

    /// Whether the session is gone, waiting a moment for it: a channel can report its end
    /// just before the session notices the connection is closed.
    async fn closed_soon(&self) -> bool {
        for _ in 0..20 {
            if self.handle.is_closed() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.handle.is_closed()
    }

    fn lost(&self, e: impl std::fmt::Display) -> HostError {
        if self.handle.is_closed() {
            unreachable(&self.target, format!("connection lost ({e})"))
        } else {
            HostError::Failed(format!("{}: {e}", self.target))
        }
    }

    async fn open_channel(&self) -> Result<(russh::Channel<Msg>, OwnedSemaphorePermit), HostError> {
        let permit = self.sem.clone().acquire_owned().await.map_err(|e| self.lost(e))?;
        if self.handle.is_closed() {
            return Err(unreachable(&self.target, "connection lost"));
        }
        // sshd frees a closed session only after the packets that arrived with the close are
        // handled, so an open right after a close can still be refused: retry briefly
        let mut delay = Duration::from_millis(2);
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        let ch = loop {
            match self.handle.channel_open_session().await {
                Ok(ch) => break ch,
                Err(russh::Error::ChannelOpenFailure(f)) => {
                    if std::time::Instant::now() > deadline {
                        return Err(HostError::Failed(format!(
                            "{}: the server refused a session channel: {f:?}",
                            self.target
                        )));
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(50));
                }
                Err(e) => return Err(unreachable(&self.target, format!("connection lost ({e})"))),
            }
        };
        Ok((ch, permit))
    }

    /// Run `line` on a fresh exec channel, streaming `pre` then `input` to its stdin.
    async fn exec_channel(
        &self,
        line: &str,
        pre: Option<Vec<u8>>,
        input: Input,
        timeout: Option<Duration>,
        sent: &AtomicBool,
    ) -> Result<Output, HostError> {
        let (ch, _permit) = self.open_channel().await?;
        sent.store(true, Ordering::SeqCst);
        ch.exec(true, line.as_bytes()).await.map_err(|e| self.lost(e))?;
        let (mut rd, wr) = ch.split();
        let writer = async {
            if let Some(p) = pre {
                wr.data_bytes(p).await?;
            }
            match input {
                Input::None => {}
                Input::Bytes(b) => wr.data(&b[..]).await?,
                Input::File(f) => wr.data(tokio::io::BufReader::with_capacity(256 * 1024, f)).await?,
            }
            wr.eof().await
        };
        let reader = async {
            let mut out = Output::default();
            let mut status: Option<i32> = None;
            let mut refused = false;
            while let Some(msg) = rd.wait().await {
                match msg {
                    ChannelMsg::Data { data } => out.stdout.extend_from_slice(&data),
                    ChannelMsg::ExtendedData { data, ext: 1 } => out.stderr.extend_from_slice(&data),
                    ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status as i32),
                    ChannelMsg::ExitSignal { signal_name, .. } => status = Some(128 + signal_number(&signal_name)),
                    ChannelMsg::Failure => refused = true,
                    ChannelMsg::Close => break,
                    _ => {}
                }
            }
            (out, status, refused)
        };
        let run = async {
            tokio::pin!(writer);
            tokio::pin!(reader);
            let mut writing = true;
            loop {
                tokio::select! {
                    r = &mut reader => break r,
                    // the command may exit without reading its stdin: not an error
                    _ = &mut writer, if writing => writing = false,
                }
            }
        };
        let (mut out, status, refused) = match timeout {
            None => run.await,
            Some(t) => match tokio::time::timeout(t, run).await {
                Ok(r) => r,
                Err(_) => {
                    let _ = wr.signal(Sig::KILL).await;
                    let _ = wr.close().await;
                    return Err(HostError::Timeout(t));
                }
            },
        };
        match status {
            Some(rc) => out.rc = rc,
            None if refused => {
                return Err(HostError::Failed(format!("{}: the server refused to run the command", self.target)));
            }
            None if self.closed_soon().await => {
                return Err(unreachable(&self.target, "connection lost during a command"));
            }
            None => {
                return Err(HostError::Failed(format!("{}: the command ended without an exit status", self.target)));
            }
        }
        Ok(out)
    }

    /// Start an SFTP session on a fresh channel, through the `sftp` subsystem or, with `run`,
    /// by running a command line (its stdin prefix first) that execs an SFTP server. `None` when
    /// that fails or takes over 10 s: the shell does the work then.
    async fn start_sftp(&self, run: Option<(String, Option<Vec<u8>>)>, login: &str) -> Option<Arc<Sftp>> {
        let start = async {
            let (mut ch, permit) = self.open_channel().await.ok()?;
            match &run {
                None => ch.request_subsystem(true, "sftp").await.ok()?,
                Some((line, _)) => ch.exec(true, line.as_bytes()).await.ok()?,
            }
            wait_reply(&mut ch).await?;
            if let Some((_, Some(pre))) = &run {
                ch.data(&pre[..]).await.ok()?;
            }
            Sftp::start(ch, permit, login.to_string()).await
        };
        let r = tokio::time::timeout(Duration::from_secs(10), start).await.ok().flatten().map(Arc::new);
        if r.is_none() {
            tracing::debug!("{}: no SFTP server as {login}; probing through the shell", self.target);
        }
        r
    }

    /// The login user's SFTP server, started on first use.
    async fn sftp(&self) -> Option<&Arc<Sftp>> {
        self.sftp.get_or_init(|| self.start_sftp(None, &self.user)).await.as_ref()
    }

    /// The SFTP server for `esc`: the login user's without become; with `sudo` or `doas`, the
    /// host's `sftp-server` program started through it (the password, if any, goes first on
    /// the channel's stdin, as for commands). `None` when that cannot be had.
    async fn sftp_for(&self, esc: Option<&Become>) -> Option<Arc<Sftp>> {
        let Some(b) = esc else { return self.sftp().await.cloned() };
        if b.method == pbr_core::host::BecomeMethod::Su {
            return None;
        }
        let mut started = self.become_sftp.lock().await;
        if let Some((_, s)) = started.iter().find(|(k, _)| k == b) {
            return s.clone();
        }
        // the program's path, found through the login user's SFTP server (no program started)
        let login = self.sftp().await?.clone();
        let mut r = None;
        for p in SFTP_SERVERS {
            if login.lstat(p).await.ok().flatten().is_some_and(|s| s.kind() == "file") {
                r = self.start_sftp(Some(become_wrap(&format!("exec {p}"), Some(b))), &b.user).await;
                break;
            }
        }
        started.push((b.clone(), r.clone()));
        r
    }

    /// Whether an SFTP server answers for `esc` (file reads and probes use it then).
    pub async fn has_sftp(&self, esc: Option<&Become>) -> bool {
        self.sftp_for(esc).await.is_some()
    }

    async fn start_shell(&self) -> Result<Shell, HostError> {
        let (ch, permit) = self.open_channel().await?;
        ch.exec(true, "exec /bin/sh").await.map_err(|e| self.lost(e))?;
        let (rd, wr) = ch.split();
        Ok(Shell { rd, wr, _permit: permit })
    }

    /// Run `line` through the host's long-lived shell. `Ok(None)` when the shell is busy.
    async fn exec_shell(
        &self,
        line: &str,
        timeout: Option<Duration>,
        sent: &AtomicBool,
    ) -> Result<Option<Output>, HostError> {
        let Ok(mut guard) = self.shell.try_lock() else { return Ok(None) };
        if guard.is_none() {
            *guard = Some(self.start_shell().await?);
        }
        let Some(sh) = guard.as_mut() else { return Ok(None) };
        let marker = format!("__pbr_{:016x}_{}__", self.nonce, self.seq.fetch_add(1, Ordering::Relaxed));
        let framed = format!("{line} </dev/null; printf '\\n%s %d\\n' {marker} $?; printf '\\n%s\\n' {marker} >&2\n");
        let out_end = format!("\n{marker} ").into_bytes();
        let err_end = format!("\n{marker}\n").into_bytes();
        let run = async {
            sent.store(true, Ordering::SeqCst);
            sh.wr.data_bytes(framed.into_bytes()).await.map_err(|e| self.lost(e))?;
            let (mut so, mut se) = (Vec::new(), Vec::new());
            let (mut so_at, mut se_at): (Option<usize>, Option<usize>) = (None, None);
            loop {
                if let (Some(a), Some(b)) = (so_at, se_at) {
                    // the status line after the stdout marker must be complete
                    let tail = &so[a + out_end.len()..];
                    if let Some(nl) = tail.iter().position(|&c| c == b'\n') {
                        let rc =
                            std::str::from_utf8(&tail[..nl]).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(-1);
                        so.truncate(a);
                        se.truncate(b);
                        return Ok(Output { rc, stdout: so, stderr: se });
                    }
                }
                match sh.rd.wait().await {
                    Some(ChannelMsg::Data { data }) => {
                        let from = so.len().saturating_sub(out_end.len());
                        so.extend_from_slice(&data);
                        if so_at.is_none() {
                            so_at = find(&so[from..], &out_end).map(|p| p + from);
                        }
                    }
                    Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                        let from = se.len().saturating_sub(err_end.len());
                        se.extend_from_slice(&data);
                        if se_at.is_none() {
                            se_at = find(&se[from..], &err_end).map(|p| p + from);
                        }
                    }
                    Some(ChannelMsg::Close) | Some(ChannelMsg::Eof) | Some(ChannelMsg::ExitStatus { .. }) | None => {
                        if self.closed_soon().await {
                            return Err(unreachable(&self.target, "connection lost during a command"));
                        }
                        return Err(HostError::Failed(format!("{}: the remote shell ended unexpectedly", self.target)));
                    }
                    Some(_) => {}
                }
            }
        };
        let res = match timeout {
            None => run.await,
            Some(t) => match tokio::time::timeout(t, run).await {
                Ok(r) => r,
                Err(_) => Err(HostError::Timeout(t)),
            },
        };
        if res.is_err() {
            // abandon this shell; the next command starts a fresh one
            if let Some(sh) = guard.take() {
                let _ = sh.wr.signal(Sig::KILL).await;
                let _ = sh.wr.close().await;
            }
        }
        res.map(Some)
    }

    /// Run a command; `sent` is set once the command may have reached the host.
    async fn run(&self, cmd: &Cmd, esc: Option<&Become>, input: Input, sent: &AtomicBool) -> Result<Output, HostError> {
        let mut full = String::new();
        for (k, v) in &cmd.env {
            if k.is_empty()
                || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                || k.as_bytes()[0].is_ascii_digit()
            {
                return Err(HostError::Failed(format!("invalid environment variable name `{k}`")));
            }
            full.push_str(&format!("export {k}={}\n", sh_quote(v)));
        }
        if let Some(d) = &cmd.cwd {
            full.push_str(&format!("cd -- {} || exit 1\n", sh_quote(d)));
        }
        full.push_str(&cmd.script);
        let (line, pre) = become_wrap(&full, esc);
        let line = if esc.is_some() { line } else { format!("sh -c {}", sh_quote(&line)) };
        let has_input = pre.is_some() || !matches!(input, Input::None);
        if self.mode == ExecMode::Shell
            && !has_input
            && let Some(out) = self.exec_shell(&line, cmd.timeout, sent).await?
        {
            return Ok(out);
        }
        self.exec_channel(&line, pre, input, cmd.timeout, sent).await
    }
}

/// Where distributions install OpenSSH's SFTP server (Debian, Arch, Fedora/EL, others).
const SFTP_SERVERS: &[&str] = &[
    "/usr/lib/openssh/sftp-server",
    "/usr/lib/ssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/libexec/sftp-server",
    "/usr/lib/sftp-server",
];

/// Wait for the answer to a channel request sent with `want_reply`.
async fn wait_reply(ch: &mut russh::Channel<Msg>) -> Option<()> {
    loop {
        match ch.wait().await? {
            ChannelMsg::Success => return Some(()),
            ChannelMsg::Failure | ChannelMsg::Close | ChannelMsg::Eof => return None,
            _ => {}
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn signal_number(s: &Sig) -> i32 {
    match s {
        Sig::HUP => 1,
        Sig::INT => 2,
        Sig::QUIT => 3,
        Sig::ILL => 4,
        Sig::ABRT => 6,
        Sig::FPE => 8,
        Sig::KILL => 9,
        Sig::USR1 => 10,
        Sig::SEGV => 11,
        Sig::PIPE => 13,
        Sig::ALRM => 14,
        Sig::TERM => 15,
        Sig::Custom(_) => 0,
    }
}

/// Try, in order: the ssh-agent, the identity files, then the password (when one is given).
async fn authenticate(h: &mut Handle<Client>, hop: &Hop<'_>, opts: &SshOptions) -> Result<(), String> {
    let mut tried: Vec<String> = Vec::new();
    let rsa_hash = h.best_supported_rsa_hash().await.ok().flatten().flatten();
    let wanted: Vec<PublicKey> = if opts.identities_only {
        hop.identity_files.iter().filter_map(|f| russh::keys::load_public_key(pub_path(f)).ok()).collect()
    } else {
        Vec::new()
    };
    if let Some(sock) = &opts.agent_socket {
        match russh::keys::agent::client::AgentClient::connect_uds(sock).await {
            Ok(mut agent) => match agent.request_identities().await {
                Ok(ids) => {
                    let mut n = 0;
                    for id in ids {
                        let russh::keys::agent::AgentIdentity::PublicKey { key, .. } = id else { continue };
                        if opts.identities_only && !wanted.iter().any(|w| w.key_data() == key.key_data()) {
                            continue;
                        }
                        n += 1;
                        let hash = if key.algorithm().is_rsa() { rsa_hash } else { None };
                        match h.authenticate_publickey_with(hop.user, key, hash, &mut agent).await {
                            Ok(r) if r.success() => return Ok(()),
                            Ok(_) => {}
                            Err(e) => tried.push(format!("agent signing failed: {e}")),
                        }
                    }
                    tried.push(format!("ssh-agent ({n} keys)"));
                }
                Err(e) => tried.push(format!("ssh-agent (cannot list keys: {e})")),
            },
            Err(e) => tried.push(format!("ssh-agent at {} ({e})", sock.display())),
        }
    }
    for f in hop.identity_files {
        if !f.exists() {
            continue;
        }
        let key = match russh::keys::load_secret_key(f, None) {
            Ok(k) => k,
            Err(russh::keys::Error::KeyIsEncrypted) => {
                let pass = opts
                    .key_passphrase
                    .as_ref()
                    .map(|s| s.expose().to_string())
                    .or_else(|| std::env::var("PBR_SSH_KEY_PASSPHRASE").ok())
                    .or_else(|| opts.passphrase_prompt.as_ref().and_then(|p| p(f)));
                let Some(pass) = pass else {
                    tried.push(format!(
                        "{} (protected by a passphrase: set PBR_SSH_KEY_PASSPHRASE or load it into ssh-agent)",
                        f.display()
                    ));
                    continue;
                };
                match russh::keys::load_secret_key(f, Some(&pass)) {
                    Ok(k) => k,
                    Err(e) => {
                        tried.push(format!("{} (cannot decrypt: {e})", f.display()));
                        continue;
                    }
                }
            }
            Err(e) => {
                tried.push(format!("{} (cannot load: {e})", f.display()));
                continue;
            }
        };
        let hash = if key.algorithm().is_rsa() { rsa_hash } else { None };
        let r = h
            .authenticate_publickey(hop.user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
            .await
            .map_err(|e| format!("authentication failed: {e}"))?;
        if r.success() {
            return Ok(());
        }
        tried.push(f.display().to_string());
    }
    if let Some(p) = hop.password {
        let r = h.authenticate_password(hop.user, p).await.map_err(|e| format!("authentication failed: {e}"))?;
        if r.success() {
            return Ok(());
        }
        tried.push("password".into());
    }
    if tried.is_empty() {
        tried.push("nothing: no ssh-agent, no key file found, no password".into());
    }
    Err(format!("authentication failed for user `{}`; tried {}", hop.user, tried.join(", ")))
}

fn pub_path(f: &Path) -> PathBuf {
    let mut s = f.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

fn stdin_of(cmd: &Cmd) -> Input {
    match &cmd.stdin {
        Some(d) => Input::Bytes(d.clone()),
        None => Input::None,
    }
}

#[async_trait]
impl Connection for Session {
    async fn exec(&self, cmd: &Cmd, esc: Option<&Become>) -> Result<Output, HostError> {
        self.run(cmd, esc, stdin_of(cmd), &AtomicBool::new(false)).await
    }

    async fn read_file(&self, path: &str, esc: Option<&Become>) -> Result<Option<Vec<u8>>, HostError> {
        if let Some(sftp) = self.sftp_for(esc).await {
            match sftp.read_file(path, None).await {
                Ok(data) => return Ok(Some(data)),
                Err(e) if sftp_status(&e) == Some(russh_sftp::protocol::StatusCode::NoSuchFile) => return Ok(None),
                // anything else (a directory, no permission): the shell says what it is
                Err(_) => {}
            }
        }
        let out = self.run(&Cmd::new(read_script(path)), esc, Input::None, &AtomicBool::new(false)).await?;
        match out.rc {
            0 => Ok(Some(out.stdout)),
            3 => Ok(None),
            _ => Err(HostError::Failed(format!("cannot read {path}: {}", out.stderr_str().trim()))),
        }
    }

    async fn write_file(
        &self,
        path: &str,
        data: &[u8],
        attrs: &FileAttrs,
        esc: Option<&Become>,
    ) -> Result<(), HostError> {
        let script = atomic_write_script(path, attrs, &Expect::of(data));
        let out = self.run(&Cmd::new(script), esc, Input::Bytes(data.to_vec()), &AtomicBool::new(false)).await?;
        if out.rc != 0 {
            return Err(HostError::Failed(format!("cannot write {path}: {}", out.stderr_str().trim())));
        }
        Ok(())
    }

    async fn upload(&self, local: &Path, path: &str, attrs: &FileAttrs, esc: Option<&Become>) -> Result<(), HostError> {
        let cannot = |e: std::io::Error| HostError::Failed(format!("cannot read {}: {e}", local.display()));
        // the host commits the file only if it receives exactly these bytes: a file that changes
        // while it is sent fails the check rather than leaving a mix
        let lp = local.to_path_buf();
        let expect = tokio::task::spawn_blocking(move || Expect::of_file(&lp))
            .await
            .map_err(|e| HostError::Failed(format!("cannot read {}: {e}", local.display())))?
            .map_err(cannot)?;
        let f = tokio::fs::File::open(local).await.map_err(cannot)?;
        let out = self
            .run(&Cmd::new(atomic_write_script(path, attrs, &expect)), esc, Input::File(f), &AtomicBool::new(false))
            .await?;
        if out.rc != 0 {
            return Err(HostError::Failed(format!("cannot write {path}: {}", out.stderr_str().trim())));
        }
        Ok(())
    }

    async fn inspect(&self, qs: &[PathQuery], esc: Option<&Become>) -> Result<Vec<PathInfo>, HostError> {
        if let Some(sftp) = self.sftp_for(esc).await {
            return native_inspect(self, &*sftp, qs, esc).await;
        }
        super::inspect::shell_inspect(self, qs, esc).await
    }

    async fn close(&self) {
        if let Some(Some(sftp)) = self.sftp.get() {
            let _ = sftp.raw.close_session();
        }
        for (_, s) in self.become_sftp.lock().await.drain(..) {
            if let Some(s) = s {
                let _ = s.raw.close_session();
            }
        }
        if let Some(sh) = self.shell.lock().await.take() {
            let _ = sh.wr.eof().await;
            let _ = sh.wr.close().await;
        }
        let _ = self.handle.disconnect(russh::Disconnect::ByApplication, "", "en").await;
    }
}

/// An SSH connection to one host, kept for the whole run. When the session drops (sshd
/// restarted, a network blip), the next request makes a new one, trying
/// [`SshOptions::reconnect_retries`] more times with a doubling delay (1 s, 2 s, 4 s, ...)
/// before the host is unreachable. A request that was not sent yet, and a read-only one (a
/// probe: [`Connection::query`], `read_file`, `inspect`), then runs on the new session; a
/// command that may have started on the lost one is never run again: it fails as unreachable.
pub struct SshConnection {
    opts: SshOptions,
    target: String,
    current: Mutex<Arc<Session>>,
    /// Held while a new session is being made (one at a time; the others wait for it).
    reconnecting: tokio::sync::Mutex<Option<HostError>>,
    reconnects: AtomicU64,
    sftp_changes: AtomicU64,
}

impl std::fmt::Debug for SshConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshConnection").field("target", &self.target).field("mode", &self.opts.exec_mode).finish()
    }
}

/// What a request does if its session is lost under it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Replay {
    /// Read-only: run it again on a new session.
    Always,
    /// May change the host: run it again only if it never left.
    IfNotSent,
}

impl SshConnection {
    /// Connect (through the `ProxyJump` hops, if any), verify the host key, authenticate and
    /// check that the login shell runs commands. The first connection is tried once.
    pub async fn connect(opts: &SshOptions) -> Result<SshConnection, HostError> {
        let session = Session::establish(opts).await.map_err(|e| e.err)?;
        Ok(SshConnection {
            target: session.target.clone(),
            opts: opts.clone(),
            current: Mutex::new(Arc::new(session)),
            reconnecting: tokio::sync::Mutex::new(None),
            reconnects: AtomicU64::new(0),
            sftp_changes: AtomicU64::new(0),
        })
    }

    /// The execution strategy in use.
    pub fn exec_mode(&self) -> ExecMode {
        self.opts.exec_mode
    }

    /// How many times the session was lost and made again.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// How many changes (file writes, directories made, attributes set) were made over SFTP;
    /// the others went through the shell.
    pub fn sftp_changes(&self) -> u64 {
        self.sftp_changes.load(Ordering::Relaxed)
    }

    /// Whether an SFTP server answers for `esc` (file reads and probes use it then).
    pub async fn has_sftp(&self, esc: Option<&Become>) -> bool {
        match self.session().await {
            Ok(s) => s.has_sftp(esc).await,
            Err(_) => false,
        }
    }

    fn current(&self) -> Arc<Session> {
        self.current.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The live session, made again if the last one was lost.
    async fn session(&self) -> Result<Arc<Session>, HostError> {
        let cur = self.current();
        if !cur.handle.is_closed() {
            return Ok(cur);
        }
        self.reconnect(&cur).await
    }

    /// Replace the lost session `dead` (unless another request already did), with bounded
    /// retries and backoff. Once that fails, every later request fails the same way at once.
    async fn reconnect(&self, dead: &Arc<Session>) -> Result<Arc<Session>, HostError> {
        let mut gave_up = self.reconnecting.lock().await;
        let cur = self.current();
        if !Arc::ptr_eq(&cur, dead) && !cur.handle.is_closed() {
            return Ok(cur);
        }
        if let Some(e) = &*gave_up {
            return Err(e.clone());
        }
        let tries = self.opts.reconnect_retries;
        let mut delay = Duration::from_secs(1);
        let mut last = String::new();
        for attempt in 0..=tries {
            if attempt > 0 {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(8));
            }
            match Session::establish(&self.opts).await {
                Ok(s) => {
                    tracing::warn!("{}: connection lost; reconnected (attempt {})", self.target, attempt + 1);
                    let s = Arc::new(s);
                    *self.current.lock().unwrap_or_else(|e| e.into_inner()) = s.clone();
                    self.reconnects.fetch_add(1, Ordering::Relaxed);
                    return Ok(s);
                }
                Err(e) => {
                    last = match &e.err {
                        HostError::Unreachable(m) => m.clone(),
                        other => other.to_string(),
                    };
                    if !e.transient {
                        break;
                    }
                }
            }
        }
        let err = HostError::Unreachable(format!(
            "{}: the connection was lost and could not be made again ({} tr{}, ansible_ssh_retries={tries}): {last}",
            self.target,
            tries + 1,
            if tries == 0 { "y" } else { "ies" },
        ));
        *gave_up = Some(err.clone());
        Err(err)
    }

    /// Run `cmd` on the live session, following `replay` if the session is lost under it.
    async fn run(
        &self,
        cmd: &Cmd,
        esc: Option<&Become>,
        input: impl Fn() -> Input,
        replay: Replay,
    ) -> Result<Output, HostError> {
        // how many times the request went to a new session (bounded: a server that accepts and
        // drops every connection must not keep us here)
        let mut replays = 0;
        loop {
            let s = self.session().await?;
            let sent = AtomicBool::new(false);
            let res = s.run(cmd, esc, input(), &sent).await;
            let Err(e) = res else { return res };
            if !s.handle.is_closed() {
                return Err(e);
            }
            let again = replays < 2
                && match replay {
                    Replay::Always => replays == 0,
                    Replay::IfNotSent => !sent.load(Ordering::SeqCst),
                };
            if !again {
                return Err(match replay {
                    Replay::IfNotSent if sent.load(Ordering::SeqCst) => unreachable(
                        &self.target,
                        format!(
                            "the connection was lost while the command ran; it may have run, so it is not run \
                             again ({e})"
                        ),
                    ),
                    _ => e,
                });
            }
            replays += 1;
        }
    }
}

#[async_trait]
impl Connection for SshConnection {
    async fn exec(&self, cmd: &Cmd, esc: Option<&Become>) -> Result<Output, HostError> {
        self.run(cmd, esc, || stdin_of(cmd), Replay::IfNotSent).await
    }

    async fn query(&self, cmd: &Cmd, esc: Option<&Become>) -> Result<Output, HostError> {
        self.run(cmd, esc, || stdin_of(cmd), Replay::Always).await
    }

    async fn read_file(&self, path: &str, esc: Option<&Become>) -> Result<Option<Vec<u8>>, HostError> {
        let s = self.session().await?;
        match s.read_file(path, esc).await {
            Err(_) if s.handle.is_closed() => self.session().await?.read_file(path, esc).await,
            r => r,
        }
    }

    async fn write_file(
        &self,
        path: &str,
        data: &[u8],
        attrs: &FileAttrs,
        esc: Option<&Become>,
    ) -> Result<(), HostError> {
        // over SFTP when it can be done there: no program starts on the host
        if let Some(sftp) = self.session().await?.sftp_for(esc).await
            && sftp.write_atomic(path, data, attrs).await
        {
            self.sftp_changes.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let cmd = Cmd::new(atomic_write_script(path, attrs, &Expect::of(data)));
        let out = self.run(&cmd, esc, || Input::Bytes(data.to_vec()), Replay::IfNotSent).await?;
        if out.rc != 0 {
            return Err(HostError::Failed(format!("cannot write {path}: {}", out.stderr_str().trim())));
        }
        Ok(())
    }

    async fn upload(&self, local: &Path, path: &str, attrs: &FileAttrs, esc: Option<&Become>) -> Result<(), HostError> {
        // a lost session is made again before the upload starts, never during it
        self.session().await?.upload(local, path, attrs, esc).await
    }

    async fn make_dir(&self, path: &str, attrs: &FileAttrs, esc: Option<&Become>) -> Result<bool, HostError> {
        let Some(sftp) = self.session().await?.sftp_for(esc).await else { return Ok(false) };
        let done = sftp.make_dir(path, attrs).await;
        self.sftp_changes.fetch_add(u64::from(done), Ordering::Relaxed);
        Ok(done)
    }

    async fn set_attrs(&self, path: &str, attrs: &FileAttrs, esc: Option<&Become>) -> Result<bool, HostError> {
        let Some(sftp) = self.session().await?.sftp_for(esc).await else { return Ok(false) };
        let Ok((uid, gid)) = sftp.wanted_ids(attrs).await else { return Ok(false) };
        let done = sftp.set(path, uid, gid, attrs.mode).await;
        self.sftp_changes.fetch_add(u64::from(done), Ordering::Relaxed);
        Ok(done)
    }

    async fn inspect(&self, qs: &[PathQuery], esc: Option<&Become>) -> Result<Vec<PathInfo>, HostError> {
        let s = self.session().await?;
        match s.inspect(qs, esc).await {
            Err(_) if s.handle.is_closed() => self.session().await?.inspect(qs, esc).await,
            r => r,
        }
    }

    async fn close(&self) {
        self.current().close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::check_loopback;

    #[test]
    fn loopback_literals_only() {
        for ok in ["127.0.0.1", "127.0.0.77", "127.255.255.254", "::1", "[::1]"] {
            assert!(check_loopback(ok, 22).is_ok(), "{ok}");
        }
        for bad in
            ["10.0.0.1", "192.0.2.1", "0.0.0.0", "localhost", "example.invalid", "::ffff:10.0.0.1", "fe80::1", ""]
        {
            let e = check_loopback(bad, 2222).unwrap_err();
            assert!(e.contains(&format!("{bad}:2222")) && e.contains("PBR_TEST_LOOPBACK_ONLY"), "{e}");
        }
    }
}
