//! Throwaway OpenSSH servers for tests.
//!
//! [`Sshd::start`] runs `/usr/sbin/sshd -D` on a loopback address (`127.0.0.N`) and a free port,
//! with its own host key, a fresh client key for a login user (shell `/bin/sh`, passwordless
//! sudo; [`FALSE_USER`] logs in with the same key but has the shell `/bin/false`), and kills it
//! and everything it spawned when dropped ([`Sshd::restart`] kills and starts it again, as a
//! restart looks to clients). It needs root (to create the
//! user and run sshd) and `openssh-server`; tests call [`require_sshd`] first, which skips
//! loudly when those are missing, except under `CI=true`, where it fails.

pub mod lab;

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

pub const SSHD: &str = "/usr/sbin/sshd";
/// Login user with passwordless sudo.
pub const USER: &str = "pbrtest";
/// Login user whose sudo asks for [`SUDO_PASSWORD`] (also its login password).
pub const PW_USER: &str = "pbrpw";
pub const SUDO_PASSWORD: &str = "pbr-sudo-pw";
/// Login user whose shell is `/bin/false` (it can log in, but runs no command).
pub const FALSE_USER: &str = "pbrfalse";

static NEXT_ADDR: AtomicU8 = AtomicU8::new(2);
static SETUP: Mutex<()> = Mutex::new(());

/// The SFTP server a distribution's sshd runs (a separate program, as on real hosts), or sshd's
/// built-in one when none is installed.
fn sftp_server() -> &'static str {
    ["/usr/lib/openssh/sftp-server", "/usr/lib/ssh/sftp-server", "/usr/libexec/openssh/sftp-server"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("internal-sftp")
}

/// Why real-sshd tests cannot run here, if they cannot.
pub fn sshd_unavailable() -> Option<String> {
    if !is_root() {
        return Some("not running as root (needed to create the test user and run sshd)".into());
    }
    for bin in [SSHD, "/usr/bin/ssh-keygen"] {
        if !Path::new(bin).exists() {
            return Some(format!("{bin} is missing (apt-get install -y openssh-server)"));
        }
    }
    None
}

/// `true` when real-sshd tests can run. Otherwise prints a loud SKIP and returns `false`, or
/// panics when `CI=true` (CI must run them).
pub fn require_sshd(test: &str) -> bool {
    require(test, sshd_unavailable())
}

/// Like [`require_sshd`], also requiring `sudo` and `ssh-agent`.
pub fn require_sshd_sudo_agent(test: &str) -> bool {
    let why = sshd_unavailable().or_else(|| {
        ["/usr/bin/sudo", "/usr/bin/ssh-agent", "/usr/bin/ssh-add"]
            .iter()
            .find(|b| !Path::new(b).exists())
            .map(|b| format!("{b} is missing (apt-get install -y sudo openssh-client)"))
    });
    require(test, why)
}

fn require(test: &str, why: Option<String>) -> bool {
    let Some(why) = why else { return true };
    if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
        panic!("{test}: cannot run the real-sshd test under CI: {why}");
    }
    eprintln!("\n!!!!!!!! SKIP {test}: {why} !!!!!!!!\n");
    false
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Create the test users (idempotent): [`USER`] with passwordless sudo and a `*` password (so
/// sshd without PAM accepts it), and [`PW_USER`] whose password is [`SUDO_PASSWORD`] and whose
/// sudo asks for it.
pub fn ensure_users() -> Result<(), String> {
    let _g = SETUP.lock().unwrap_or_else(|e| e.into_inner());
    for (user, rule) in [
        (USER, format!("{USER} ALL=(ALL) NOPASSWD: ALL\n")),
        (PW_USER, format!("Defaults:{PW_USER} lecture=never\n{PW_USER} ALL=(ALL) ALL\n")),
        (FALSE_USER, String::new()),
    ] {
        if !Command::new("id")
            .arg("-u")
            .arg(user)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
        {
            run(Command::new("useradd").args(["-m", "-s", "/bin/sh", user]))?;
        }
        if user == FALSE_USER {
            run(Command::new("usermod").args(["-s", "/bin/false", user]))?;
        }
        if user == USER || user == FALSE_USER {
            run(Command::new("usermod").args(["-p", "*", user]))?;
        } else {
            let mut c = Command::new("chpasswd")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| e.to_string())?;
            if let Some(mut i) = c.stdin.take() {
                use std::io::Write;
                i.write_all(format!("{user}:{SUDO_PASSWORD}\n").as_bytes()).map_err(|e| e.to_string())?;
            }
            if !c.wait().map_err(|e| e.to_string())?.success() {
                return Err("chpasswd failed".into());
            }
        }
        if !rule.is_empty() && Path::new("/etc/sudoers.d").is_dir() {
            let f = format!("/etc/sudoers.d/{user}");
            if std::fs::read_to_string(&f).ok().as_deref() != Some(rule.as_str()) {
                std::fs::write(&f, &rule).map_err(|e| format!("cannot write {f}: {e}"))?;
                run(Command::new("chmod").args(["0440", &f]))?;
            }
        }
    }
    Ok(())
}

/// Options for [`Sshd::start`].
#[derive(Debug, Clone, Default)]
pub struct SshdOptions {
    /// Lines appended to sshd_config.
    pub extra_config: String,
}

/// A running sshd.
pub struct Sshd {
    /// Loopback address it listens on (`127.0.0.N`).
    pub host: String,
    pub port: u16,
    /// Private key (ed25519, no passphrase) authorized for the login users.
    pub client_key: PathBuf,
    /// The server's public host key, `ssh-ed25519 AAAA...`.
    pub host_public_key: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl std::fmt::Debug for Sshd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sshd({}:{})", self.host, self.port)
    }
}

fn keygen(path: &Path) -> Result<(), String> {
    run(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "pbr-test", "-f"]).arg(path))
        .map(|_| ())
}

impl Sshd {
    pub fn start(opts: SshdOptions) -> Result<Sshd, String> {
        if let Some(why) = sshd_unavailable() {
            return Err(why);
        }
        ensure_users()?;
        std::fs::create_dir_all("/run/sshd").map_err(|e| format!("cannot create /run/sshd: {e}"))?;
        let dir = tempfile::Builder::new().prefix("pbr-sshd-").tempdir().map_err(|e| e.to_string())?;
        let d = dir.path();
        // sshd reads authorized_keys as the login user
        run(Command::new("chmod").args(["0755"]).arg(d))?;
        keygen(&d.join("host_ed25519"))?;
        keygen(&d.join("client_ed25519"))?;
        let client_pub = std::fs::read_to_string(d.join("client_ed25519.pub")).map_err(|e| e.to_string())?;
        std::fs::write(d.join("authorized_keys"), &client_pub).map_err(|e| e.to_string())?;
        run(Command::new("chmod").args(["0644"]).arg(d.join("authorized_keys")))?;
        let host_pub = std::fs::read_to_string(d.join("host_ed25519.pub")).map_err(|e| e.to_string())?;
        let host_public_key = host_pub.split_whitespace().take(2).collect::<Vec<_>>().join(" ");

        let mut last_err = String::new();
        for _ in 0..5 {
            let n = NEXT_ADDR.fetch_add(1, Ordering::Relaxed) % 250 + 2;
            let host = format!("127.0.0.{n}");
            let ip: Ipv4Addr = host.parse().map_err(|e| format!("{e}"))?;
            let port = TcpListener::bind((ip, 0)).and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
            let conf = d.join("sshd_config");
            std::fs::write(
                &conf,
                format!(
                    "ListenAddress {host}:{port}\nHostKey {hk}\nPidFile {d}/sshd.pid\n\
                     AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\nMaxSessions 10\n\
                     MaxStartups 100\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\n\
                     PermitRootLogin no\nAllowTcpForwarding yes\nSubsystem sftp {sftp}\nLogLevel VERBOSE\n{}\n",
                    opts.extra_config,
                    sftp = sftp_server(),
                    hk = d.join("host_ed25519").display(),
                    d = d.display(),
                ),
            )
            .map_err(|e| e.to_string())?;
            match spawn_sshd(d, ip, port) {
                Ok(child) => {
                    return Ok(Sshd {
                        host,
                        port,
                        client_key: d.join("client_ed25519"),
                        host_public_key,
                        dir,
                        child: Some(child),
                    });
                }
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }

    /// Kill sshd and every connection it serves, then start it again on the same address and
    /// port with the same host key and configuration (a restart as clients see it: their
    /// connections drop, new ones are accepted).
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        let ip: Ipv4Addr = self.host.parse().map_err(|e| format!("{e}"))?;
        self.child = Some(spawn_sshd(self.dir.path(), ip, self.port)?);
        Ok(())
    }

    /// The line to put in a known_hosts file for this server.
    pub fn known_hosts_line(&self) -> String {
        format!("[{}]:{} {}", self.host, self.port, self.host_public_key)
    }

    /// The server's private temp dir (config, keys, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What sshd logged so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("sshd.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Kill sshd and every process it spawned (connection handlers, user commands), at once.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        // stop them all first, then look again: a process forked between the look and the kill
        // (or missed by a /proc read) is found in the second look, while none can fork any more
        let signal = |sig: &str, pids: &[u32]| {
            let _ = Command::new("kill").arg(sig).args(pids.iter().map(u32::to_string)).stderr(Stdio::null()).status();
        };
        let mut pids = descendants(child.id());
        pids.push(child.id());
        signal("-STOP", &pids);
        for p in descendants(child.id()) {
            if !pids.contains(&p) {
                pids.push(p);
            }
        }
        signal("-KILL", &pids);
        let _ = child.wait();
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Start sshd with the configuration in `d` and wait until it accepts connections.
fn spawn_sshd(d: &Path, ip: Ipv4Addr, port: u16) -> Result<Child, String> {
    let log =
        std::fs::OpenOptions::new().create(true).append(true).open(d.join("sshd.log")).map_err(|e| e.to_string())?;
    let mut child = Command::new(SSHD)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(d.join("sshd_config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {SSHD}: {e}"))?;
    let addr = SocketAddr::from((ip, port));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(child);
        }
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!(
                "sshd exited with {st}: {}",
                std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default()
            ));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("sshd did not answer within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// All descendants of `root`, from /proc.
fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
            // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
            if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(c, pp) in &parent_of {
            if pp == p && !out.contains(&c) {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out
}

/// A private `ssh-agent`, killed on drop.
pub struct Agent {
    pub socket: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Agent {
    pub fn start() -> Result<Agent, String> {
        let dir = tempfile::Builder::new().prefix("pbr-agent-").tempdir().map_err(|e| e.to_string())?;
        let socket = dir.path().join("agent.sock");
        let mut child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start ssh-agent: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !socket.exists() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("ssh-agent did not create its socket".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(Agent { socket, child, _dir: dir })
    }

    pub fn add(&self, key: &Path) -> Result<(), String> {
        run(Command::new("ssh-add").arg("-q").arg(key).env("SSH_AUTH_SOCK", &self.socket)).map(|_| ())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
