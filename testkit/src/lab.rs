//! The VM lab: two Debian 13 VMs under qemu for tests of kernel-level modules (LVM, VDO,
//! dm-cache, bcache, LIO targets, iSCSI).
//!
//! [`Lab::start`] builds the root image if needed (`tests/lab/build-image.sh`, cached under
//! `tests/lab/.cache/`), boots both VMs in parallel (`tests/lab/lab.sh up`) and waits for their
//! sshd. Dropping the [`Lab`] powers them off; so does the end of the test process (the VMs watch
//! its pid), even after a crash.
//!
//! - `storage`: `/dev/vda` root, `/dev/vdb` "hdd" (12 GiB, sparse), `/dev/vdc` "ssd" (2 GiB);
//!   also `/dev/disk/by-id/virtio-hdd` and `virtio-ssd`. LAN address 10.99.0.1/24.
//! - `pi`: `/dev/vda` root, `/dev/vdb` "sd" (1 GiB, `/dev/disk/by-id/virtio-sd`). LAN 10.99.0.2/24.
//!
//! Both log in as [`LAB_USER`] (shell `/bin/sh`, passwordless sudo) or as `root`, with the lab key.
//! Root file systems are copy-on-write snapshots of the image: every lab starts from the same state.
//!
//! Tests call [`require_lab`] first: it skips loudly (`LAB SKIPPED: why`) when the lab cannot
//! run here (not root, no qemu and no apt-get to install it) or when `PBR_LAB=0`; under `CI=true`
//! a lab that cannot run is a failure (but `PBR_LAB=0` still skips).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The login user of both VMs (shell `/bin/sh`, passwordless sudo).
pub const LAB_USER: &str = "pbr";

/// A VM of the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Vm {
    /// Disks `/dev/vdb` (hdd, 12 GiB) and `/dev/vdc` (ssd, 2 GiB); LAN 10.99.0.1.
    Storage,
    /// Disk `/dev/vdb` (sd, 1 GiB); LAN 10.99.0.2.
    Pi,
}

impl Vm {
    pub const ALL: [Vm; 2] = [Vm::Storage, Vm::Pi];

    /// The VM's name: its host name, inventory name and group.
    pub fn name(self) -> &'static str {
        match self {
            Vm::Storage => "storage",
            Vm::Pi => "pi",
        }
    }

    /// Its address on the lab LAN (the second NIC, shared by the two VMs only).
    pub fn lan_ip(self) -> &'static str {
        match self {
            Vm::Storage => "10.99.0.1",
            Vm::Pi => "10.99.0.2",
        }
    }
}

impl std::fmt::Display for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `tests/lab/` of this repository.
pub fn lab_scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("tests").join("lab")
}

/// The third-party sources the lab image is built with: `PBR_LAB_VENDOR`, or `../shared/vendor`
/// beside the repository.
pub fn lab_vendor_dir() -> PathBuf {
    match std::env::var_os("PBR_LAB_VENDOR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vendor"),
    }
}

/// Why the lab cannot run here, if it cannot (`PBR_LAB=0` included).
pub fn lab_unavailable() -> Option<String> {
    if std::env::var("PBR_LAB").map(|v| v == "0").unwrap_or(false) {
        return Some("PBR_LAB=0".into());
    }
    if !super::is_root() {
        return Some("not running as root (debootstrap, chroot and the image need it)".into());
    }
    let has = |bin: &str| {
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file())).unwrap_or(false)
    };
    if !has("ssh") {
        return Some("no ssh client (apt-get install -y openssh-client)".into());
    }
    if !has("bash") {
        return Some("no bash".into());
    }
    for bin in ["qemu-system-x86_64", "debootstrap"] {
        if !has(bin) && !has("apt-get") {
            return Some(format!("{bin} is missing and there is no apt-get to install it"));
        }
    }
    let vendor = lab_vendor_dir();
    if !vendor.join("mkinitcpio-41.tar.gz").is_file() {
        return Some(format!(
            "{} has no mkinitcpio-41.tar.gz (the lab builds mkinitcpio from it; set PBR_LAB_VENDOR=DIR)",
            vendor.display()
        ));
    }
    if !lab_scripts_dir().join("lab.sh").is_file() {
        return Some(format!("{} is missing", lab_scripts_dir().join("lab.sh").display()));
    }
    None
}

/// `true` when the lab can run. Otherwise prints a loud `LAB SKIPPED` and returns `false`, or
/// panics under `CI=true` (CI must run the lab), except for an explicit `PBR_LAB=0`.
pub fn require_lab(test: &str) -> bool {
    let Some(why) = lab_unavailable() else { return true };
    let explicit = why == "PBR_LAB=0";
    if !explicit && std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
        panic!("{test}: the VM lab cannot run under CI: {why}");
    }
    eprintln!("\n!!!!!!!! LAB SKIPPED {test}: {why} !!!!!!!!\n");
    false
}

/// A running lab: both VMs up with sshd answering.
pub struct Lab {
    /// The lab's run directory: `lab.env`, `known_hosts`, `ssh_config`, `inventory.ini`, and per VM
    /// its disks and `serial.log`.
    dir: tempfile::TempDir,
    /// The login user ([`LAB_USER`]).
    pub user: String,
    /// The private key that logs in as [`Lab::user`] and as root on both VMs.
    pub key: PathBuf,
    /// A known_hosts file with both VMs' host keys (`[127.0.0.1]:PORT`).
    pub known_hosts: PathBuf,
    /// The directory of the cached image (root.img, vmlinuz, initrd.img).
    pub image: PathBuf,
    /// `tcg` or `kvm`.
    pub accel: String,
    /// Seconds spent building (or finding) the image, and booting both VMs until ssh answered.
    pub build_secs: u64,
    pub boot_secs: u64,
    ports: BTreeMap<Vm, u16>,
    pids: BTreeMap<Vm, u32>,
    stopped: bool,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lab({}, ports {:?})", self.dir.path().display(), self.ports)
    }
}

fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect()
}

impl Lab {
    /// Build the image if needed, boot both VMs in parallel and wait for ssh (up to
    /// `PBR_LAB_BOOT_TIMEOUT` seconds, 420 by default). Progress goes to stderr.
    pub fn start() -> Result<Lab, String> {
        if let Some(why) = lab_unavailable() {
            return Err(format!("the lab cannot run here: {why}"));
        }
        let dir = tempfile::Builder::new().prefix("pbr-lab-").tempdir().map_err(|e| e.to_string())?;
        let script = lab_scripts_dir().join("lab.sh");
        let t0 = Instant::now();
        let out = Command::new("bash")
            .arg(&script)
            .arg("up")
            .arg(dir.path())
            .arg("--owner")
            .arg(std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} up failed ({}) after {} s; see the messages above",
                script.display(),
                out.status,
                t0.elapsed().as_secs()
            ));
        }
        let env_file = dir.path().join("lab.env");
        let env = parse_env(
            &std::fs::read_to_string(&env_file).map_err(|e| format!("cannot read {}: {e}", env_file.display()))?,
        );
        let get = |k: &str| env.get(k).cloned().ok_or_else(|| format!("{} has no {k}", env_file.display()));
        let mut ports = BTreeMap::new();
        let mut pids = BTreeMap::new();
        for vm in Vm::ALL {
            let up = vm.name().to_uppercase();
            let port = get(&format!("LAB_PORT_{up}"))?;
            ports.insert(vm, port.parse::<u16>().map_err(|e| format!("LAB_PORT_{up}={port}: {e}"))?);
            let pid = get(&format!("LAB_PID_{up}"))?;
            pids.insert(vm, pid.parse::<u32>().map_err(|e| format!("LAB_PID_{up}={pid}: {e}"))?);
        }
        let secs = |k: &str| get(k).ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let mut lab = Lab {
            user: get("LAB_USER")?,
            key: PathBuf::from(get("LAB_KEY")?),
            known_hosts: PathBuf::from(get("LAB_KNOWN_HOSTS")?),
            image: PathBuf::from(get("LAB_IMAGE")?),
            accel: get("LAB_ACCEL")?,
            build_secs: secs("LAB_BUILD_S"),
            boot_secs: secs("LAB_BOOT_S"),
            ports,
            pids,
            dir,
            stopped: false,
        };
        if let Err(e) = lab.write_inventory(&lab.dir.path().join("inventory.ini")) {
            lab.stop();
            return Err(e);
        }
        Ok(lab)
    }

    /// One lab for the whole test process, started by the first caller. Tests that share it must
    /// not step on each other's disks (use [`Lab::exclusive`]). Its VMs are powered off when the
    /// test process exits.
    pub fn shared() -> Result<&'static Lab, String> {
        static SHARED: OnceLock<Result<Lab, String>> = OnceLock::new();
        SHARED.get_or_init(Lab::start).as_ref().map_err(Clone::clone)
    }

    /// A process-wide lock for tests that use the shared lab's disks.
    pub fn exclusive() -> std::sync::MutexGuard<'static, ()> {
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        LOCK.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The run directory (lab.env, known_hosts, ssh_config, inventory.ini, per-VM serial.log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The 127.0.0.1 port forwarded to the VM's sshd.
    pub fn port(&self, vm: Vm) -> u16 {
        self.ports.get(&vm).copied().unwrap_or(0)
    }

    /// The ssh command line (without the remote command) for `user` on `vm`.
    pub fn ssh_command(&self, vm: Vm, user: &str) -> Command {
        let mut c = Command::new("ssh");
        c.args(["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR"])
            .args(["-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=30", "-o", "ServerAliveInterval=15"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .arg("-i")
            .arg(&self.key)
            .arg("-p")
            .arg(self.port(vm).to_string())
            .arg(format!("{user}@127.0.0.1"));
        c
    }

    /// Run `cmd` (a `/bin/sh` command line; use `sudo` for root) on `vm` as the login user.
    /// An ssh failure shows as exit code 255 with ssh's message on stderr.
    pub fn ssh(&self, vm: Vm, cmd: &str) -> Output {
        self.ssh_as(vm, &self.user, cmd)
    }

    /// Run `cmd` on `vm` as `user` (the login user or `root`).
    pub fn ssh_as(&self, vm: Vm, user: &str, cmd: &str) -> Output {
        let mut c = self.ssh_command(vm, user);
        c.arg("--").arg(cmd).stdin(Stdio::null());
        match c.output() {
            Ok(o) => o,
            Err(e) => Output {
                status: failed_status(),
                stdout: Vec::new(),
                stderr: format!("cannot run ssh: {e}").into_bytes(),
            },
        }
    }

    /// Run `cmd` on `vm` as the login user; its stdout when it exits 0, else an error with the
    /// exit status, stdout and stderr.
    pub fn sh(&self, vm: Vm, cmd: &str) -> Result<String, String> {
        let o = self.ssh(vm, cmd);
        if o.status.success() {
            Ok(String::from_utf8_lossy(&o.stdout).into_owned())
        } else {
            Err(format!(
                "{vm}: `{cmd}` failed ({}):\nstdout: {}\nstderr: {}",
                o.status,
                String::from_utf8_lossy(&o.stdout).trim(),
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        }
    }

    /// An INI inventory for `pbr run -i`: groups `storage` and `pi` with one host each (named
    /// like the VM), `ansible_host=127.0.0.1 ansible_port=P ansible_user=pbr
    /// ansible_ssh_private_key_file=KEY`, the lab's known_hosts through `ansible_ssh_common_args`,
    /// and `lan_ip` (the VM's LAN address). Playbooks use `become: true` for root.
    pub fn inventory(&self) -> String {
        let mut s = String::new();
        for vm in Vm::ALL {
            s.push_str(&format!(
                "[{vm}]\n{vm} ansible_host=127.0.0.1 ansible_port={} ansible_user={} \
                 ansible_ssh_private_key_file={} lan_ip={}\n\n",
                self.port(vm),
                self.user,
                self.key.display(),
                vm.lan_ip()
            ));
        }
        s.push_str(&format!(
            "[all:vars]\nansible_ssh_common_args=-o UserKnownHostsFile={} -o IdentitiesOnly=yes\n",
            self.known_hosts.display()
        ));
        s
    }

    /// Write [`Lab::inventory`] to `path`.
    pub fn write_inventory(&self, path: &Path) -> Result<(), String> {
        std::fs::write(path, self.inventory()).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// The VM's serial console so far (kernel and systemd messages): attach it to failures.
    pub fn serial_log(&self, vm: Vm) -> String {
        std::fs::read(self.dir.path().join(vm.name()).join("serial.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// `true` while the VM's qemu runs (the pi's qemu changes at every boot from its SD card).
    pub fn is_running(&self, vm: Vm) -> bool {
        let pid = std::fs::read_to_string(self.dir.path().join(vm.name()).join("qemu.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
            .or_else(|| self.pids.get(&vm).copied());
        pid.is_some_and(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains("qemu-system"))
                .unwrap_or(false)
        })
    }

    /// Wait until the VM's sshd answers again (after a reboot), at most `timeout`. A failed boot
    /// (kernel panic, no root device, emergency shell) ends the wait early. The error carries
    /// the serial console's tail.
    pub fn wait_ssh(&self, vm: Vm, timeout: Duration) -> Result<Duration, String> {
        let t0 = Instant::now();
        let out = Command::new("bash")
            .arg(lab_scripts_dir().join("lab.sh"))
            .arg("wait")
            .arg(self.dir.path())
            .arg(vm.name())
            .arg(timeout.as_secs().to_string())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run lab.sh wait: {e}"))?;
        if out.status.success() {
            Ok(t0.elapsed())
        } else {
            Err(format!(
                "{vm} did not come back after {} s: {}",
                t0.elapsed().as_secs(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// The pi's boots so far, one line each (`SECONDS image` for the first, `SECONDS sd PID` for
    /// each boot from its SD card).
    pub fn pi_boots(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("pi").join("boots"))
            .map(|s| s.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// Power both VMs off (also done on drop).
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let _ = Command::new("bash")
            .arg(lab_scripts_dir().join("lab.sh"))
            .arg("down")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Vm::ALL.iter().any(|&vm| self.is_running(vm)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop();
    }
}

fn failed_status() -> std::process::ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    std::process::ExitStatus::from_raw(255 << 8)
}
