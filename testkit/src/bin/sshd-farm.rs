//! `sshd-farm N OUTDIR`: start N throwaway sshd servers ([`pbr_testkit::Sshd`]) on loopback and
//! describe them for benchmark runs:
//!
//! - `OUTDIR/inventory.ini`: group `bench`, hosts `h1..hN` with `ansible_host`, `ansible_port`,
//!   `ansible_user`, `ansible_ssh_private_key_file`, `ansible_python_interpreter=/usr/bin/python3`
//!   and `root=` (a per-host directory owned by the login user); `[all:vars]` points ssh at the
//!   farm's known_hosts with strict checking (`ansible_ssh_common_args`), which both pbr and
//!   Ansible read;
//! - `OUTDIR/known_hosts`: one line per server;
//! - `OUTDIR/ssh_config`: `Host *` with the same known_hosts (for `ssh -F` / `pbr -F`);
//! - `OUTDIR/cpu_usage`, when a cgroup-v1 `cpuacct` hierarchy is writable: the path of a
//!   `cpuacct.usage` file (nanoseconds) counting the CPU time of the servers and everything they
//!   run, i.e. the "hosts' side" of a run on this one machine.
//!
//! Prints `READY` on stdout once every server answers, then waits until stdin closes or it gets
//! SIGTERM/SIGINT, and kills the servers (and everything they spawned) and removes the host roots.

use pbr_testkit::{Sshd, SshdOptions, USER};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

static STOP: AtomicBool = AtomicBool::new(false);

unsafe extern "C" {
    fn signal(signum: i32, handler: usize) -> usize;
}

extern "C" fn on_signal(_: i32) {
    STOP.store(true, Ordering::SeqCst);
}

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

/// How many servers start at once (each start runs two ssh-keygen and waits for the port).
const PARALLEL: usize = 8;

fn usage() -> ExitCode {
    eprintln!("usage: sshd-farm N OUTDIR");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [n, out] = args.as_slice() else { return usage() };
    let Some(n) = n.parse::<usize>().ok().filter(|n| (1..=240).contains(n)) else {
        eprintln!("sshd-farm: N must be a number from 1 to 240 (got `{n}`)");
        return ExitCode::from(2);
    };
    match run(n, Path::new(out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sshd-farm: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(n: usize, out: &Path) -> Result<(), String> {
    // SAFETY: the handler only stores into an atomic, which is async-signal-safe.
    unsafe {
        signal(SIGTERM, on_signal as *const () as usize);
        signal(SIGINT, on_signal as *const () as usize);
    }
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let out = out.canonicalize().map_err(|e| format!("{}: {e}", out.display()))?;

    let cgroup = CpuCgroup::enter();
    if let Some(c) = &cgroup {
        write(&out.join("cpu_usage"), &format!("{}\n", c.dir.join("cpuacct.usage").display()))?;
    }
    let servers = start_all(n)?;
    let roots = tempfile::Builder::new().prefix("pbr-farm-").tempdir().map_err(|e| e.to_string())?;
    check(Command::new("chmod").arg("0755").arg(roots.path()))?;
    let mut root_dirs: Vec<PathBuf> = Vec::new();
    for i in 1..=n {
        let d = roots.path().join(format!("h{i}"));
        std::fs::create_dir(&d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
        root_dirs.push(d);
    }
    check(Command::new("chown").arg("-R").arg(format!("{USER}:{USER}")).arg(roots.path()))?;

    let kh = out.join("known_hosts");
    let mut known = String::new();
    let mut inv = String::from("[bench]\n");
    for (i, (s, root)) in servers.iter().zip(&root_dirs).enumerate() {
        known.push_str(&s.known_hosts_line());
        known.push('\n');
        inv.push_str(&format!(
            "h{} ansible_host={} ansible_port={} ansible_user={USER} ansible_ssh_private_key_file={} root={} \
             ansible_python_interpreter=/usr/bin/python3\n",
            i + 1,
            s.host,
            s.port,
            s.client_key.display(),
            root.display(),
        ));
    }
    inv.push_str(&format!(
        "\n[all:vars]\nansible_ssh_common_args='-o UserKnownHostsFile={} -o StrictHostKeyChecking=yes'\n",
        kh.display()
    ));
    write(&kh, &known)?;
    write(&out.join("inventory.ini"), &inv)?;
    write(
        &out.join("ssh_config"),
        &format!("Host *\n  UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n", kh.display()),
    )?;

    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "READY");
    let _ = stdout.flush();

    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut buf), Ok(k) if k > 0) {}
        let _ = tx.send(());
    });
    while !STOP.load(Ordering::SeqCst) {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    drop(servers);
    drop(roots);
    drop(cgroup);
    Ok(())
}

const CPUACCT: &str = "/sys/fs/cgroup/cpuacct";

/// A cgroup-v1 `cpuacct` group holding this process (and so every server it starts); moved out of
/// and removed on drop.
struct CpuCgroup {
    dir: PathBuf,
}

impl CpuCgroup {
    fn enter() -> Option<CpuCgroup> {
        let root = Path::new(CPUACCT);
        if !root.join("cgroup.procs").exists() {
            return None;
        }
        let dir = root.join(format!("pbr-sshd-farm-{}", std::process::id()));
        std::fs::create_dir(&dir).ok()?;
        let cg = CpuCgroup { dir };
        std::fs::write(cg.dir.join("cgroup.procs"), format!("{}\n", std::process::id())).ok()?;
        Some(cg)
    }
}

impl Drop for CpuCgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(Path::new(CPUACCT).join("cgroup.procs"), format!("{}\n", std::process::id()));
        // killed servers' descendants may take a moment to leave
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn start_all(n: usize) -> Result<Vec<Sshd>, String> {
    let mut servers: Vec<Sshd> = Vec::with_capacity(n);
    while servers.len() < n && !STOP.load(Ordering::SeqCst) {
        let batch = PARALLEL.min(n - servers.len());
        let started: Vec<Result<Sshd, String>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..batch).map(|_| s.spawn(|| Sshd::start(SshdOptions::default()))).collect();
            hs.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("sshd start thread panicked".into()))).collect()
        });
        for r in started {
            servers.push(r?);
        }
    }
    if servers.len() < n {
        return Err("interrupted while starting".into());
    }
    Ok(servers)
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn check(cmd: &mut Command) -> Result<(), String> {
    let st = cmd.status().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if st.success() { Ok(()) } else { Err(format!("{cmd:?} failed with {st}")) }
}
