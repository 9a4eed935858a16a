//! `connection: local`: the machine pbr runs on, through `sh`.

use super::inspect::{NativeFs, RawStat, Unsure, native_inspect};
use super::{Expect, atomic_write_script, become_wrap, read_script};
use async_trait::async_trait;
use pbr_core::host::{Become, Cmd, Connection, FileAttrs, HostError, Output, PathInfo, PathQuery};
use std::os::unix::fs::MetadataExt;
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

/// Runs commands with the local `/bin/sh`.
#[derive(Debug, Default)]
pub struct LocalConnection;

impl LocalConnection {
    pub fn new() -> LocalConnection {
        LocalConnection
    }
}

#[async_trait]
impl Connection for LocalConnection {
    async fn exec(&self, cmd: &Cmd, esc: Option<&Become>) -> Result<Output, HostError> {
        let (line, pre) = become_wrap(&cmd.script, esc);
        let mut c = tokio::process::Command::new("/bin/sh");
        c.arg("-c").arg(&line);
        for (k, v) in &cmd.env {
            c.env(k, v);
        }
        if let Some(d) = &cmd.cwd {
            c.current_dir(d);
        }
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().map_err(|e| HostError::Failed(format!("cannot start sh: {e}")))?;
        // A command given up on (the run interrupted) gets SIGTERM, which the write script traps
        // to remove its temp file; SIGKILL would leave it behind. A timeout kills.
        let mut guard = SignalOnDrop(child.id());
        let mut input = pre.unwrap_or_default();
        if let Some(s) = &cmd.stdin {
            input.extend_from_slice(s);
        }
        let mut stdin = child.stdin.take();
        let writer = async move {
            if let Some(si) = stdin.as_mut() {
                // the command may exit without reading its stdin: not an error
                let _ = si.write_all(&input).await;
            }
            drop(stdin);
        };
        let run = async {
            let (_, out) = tokio::join!(writer, child.wait_with_output());
            out
        };
        let out = match cmd.timeout {
            Some(t) => match tokio::time::timeout(t, run).await {
                Ok(r) => r,
                Err(_) => {
                    guard.signal(nix::sys::signal::Signal::SIGKILL);
                    return Err(HostError::Timeout(t));
                }
            },
            None => run.await,
        };
        guard.0 = None;
        let out = out.map_err(|e| HostError::Failed(format!("sh: {e}")))?;
        Ok(Output { rc: out.status.code().unwrap_or(-1), stdout: out.stdout, stderr: out.stderr })
    }

    async fn read_file(&self, path: &str, esc: Option<&Become>) -> Result<Option<Vec<u8>>, HostError> {
        if esc.is_none() {
            return match tokio::fs::read(path).await {
                Ok(d) => Ok(Some(d)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(HostError::Failed(format!("cannot read {path}: {e}"))),
            };
        }
        let out = self.exec(&Cmd::new(read_script(path)), esc).await?;
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
        let out = self.exec(&Cmd::new(script).stdin(data.to_vec()), esc).await?;
        if out.rc != 0 {
            return Err(HostError::Failed(format!("cannot write {path}: {}", out.stderr_str().trim())));
        }
        Ok(())
    }

    async fn inspect(&self, qs: &[PathQuery], esc: Option<&Become>) -> Result<Vec<PathInfo>, HostError> {
        match esc {
            None => native_inspect(self, self, qs, None).await,
            Some(_) => super::inspect::shell_inspect(self, qs, esc).await,
        }
    }
}

/// Signals a child process when dropped before it was waited for.
struct SignalOnDrop(Option<u32>);

impl SignalOnDrop {
    fn signal(&mut self, sig: nix::sys::signal::Signal) {
        if let Some(pid) = self.0.take() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
        }
    }
}

impl Drop for SignalOnDrop {
    fn drop(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
    }
}

fn raw(m: &std::fs::Metadata) -> RawStat {
    RawStat { mode: m.mode(), uid: m.uid(), gid: m.gid(), size: m.size(), mtime: m.mtime() }
}

fn found(r: std::io::Result<std::fs::Metadata>) -> Result<Option<RawStat>, Unsure> {
    match r {
        Ok(m) => Ok(Some(raw(&m))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(nix::libc::ENOTDIR) => Ok(None),
        Err(_) => Err(Unsure),
    }
}

/// The local file system, as the user pbr runs as.
#[async_trait]
impl NativeFs for LocalConnection {
    async fn lstat(&self, path: &str) -> Result<Option<RawStat>, Unsure> {
        found(tokio::fs::symlink_metadata(path).await)
    }
    async fn stat(&self, path: &str) -> Result<Option<RawStat>, Unsure> {
        found(tokio::fs::metadata(path).await)
    }
    async fn readlink(&self, path: &str) -> Result<String, Unsure> {
        let t = tokio::fs::read_link(path).await.map_err(|_| Unsure)?;
        t.into_os_string().into_string().map_err(|_| Unsure)
    }
    async fn realpath(&self, path: &str) -> Result<String, Unsure> {
        let t = tokio::fs::canonicalize(path).await.map_err(|_| Unsure)?;
        t.into_os_string().into_string().map_err(|_| Unsure)
    }
    async fn read(&self, path: &str, _size: u64) -> Result<Vec<u8>, Unsure> {
        tokio::fs::read(path).await.map_err(|_| Unsure)
    }
    async fn names(&self, uid: u32, gid: u32) -> Result<(String, String), Unsure> {
        use nix::unistd::{Gid, Group, Uid, User};
        let u = User::from_uid(Uid::from_raw(uid)).ok().flatten().ok_or(Unsure)?;
        let g = Group::from_gid(Gid::from_raw(gid)).ok().flatten().ok_or(Unsure)?;
        Ok((u.name, g.name))
    }
    async fn access(&self, path: &str, _st: &RawStat) -> Result<String, Unsure> {
        use nix::unistd::{AccessFlags, access};
        let mut a = String::new();
        for (f, c) in [(AccessFlags::R_OK, 'r'), (AccessFlags::W_OK, 'w'), (AccessFlags::X_OK, 'x')] {
            if access(path, f).is_ok() {
                a.push(c);
            }
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pbr_core::host::Host;
    use std::sync::Arc;

    #[tokio::test]
    async fn write_read_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.txt");
        let p = path.to_str().unwrap();
        let host = Host::new("local", Arc::new(LocalConnection::new()), None);
        assert_eq!(host.read_file(p).await.unwrap(), None);
        host.write_file(p, b"hello\n", &FileAttrs { mode: Some(0o600), ..Default::default() }).await.unwrap();
        assert_eq!(host.read_file(p).await.unwrap().unwrap(), b"hello\n");
        let st = host.stat(p).await.unwrap().unwrap();
        assert_eq!(st.mode, 0o600);
        assert_eq!(st.kind, "file");
        // mode kept on rewrite without explicit mode
        host.write_file(p, b"again\n", &FileAttrs::default()).await.unwrap();
        assert_eq!(host.stat(p).await.unwrap().unwrap().mode, 0o600);
        // no temp files left behind
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // read-only view refuses writes
        let ro = host.read_only();
        assert!(ro.write_file(p, b"x", &FileAttrs::default()).await.is_err());
        assert!(ro.run(Cmd::new("true")).await.is_err());
        assert_eq!(host.read_file(p).await.unwrap().unwrap(), b"again\n");
    }

    /// Runs the write script for `want` with `sent` on stdin (a transfer cut short when they
    /// differ) and a PATH of `path`.
    async fn write_with(dest: &std::path::Path, want: &[u8], sent: &[u8], path: Option<&str>) -> Output {
        let script = atomic_write_script(dest.to_str().unwrap(), &FileAttrs::default(), &Expect::of(want));
        let mut cmd = Cmd::new(script).stdin(sent.to_vec());
        if let Some(p) = path {
            cmd = cmd.env("PATH", p);
        }
        LocalConnection::new().exec(&cmd, None).await.unwrap()
    }

    #[tokio::test]
    async fn a_short_transfer_is_not_committed() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f");
        std::fs::write(&dest, b"old\n").unwrap();
        let want: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        // end of input after half the bytes: the old file stays, no temp file
        let out = write_with(&dest, &want, &want[..50_000], None).await;
        assert_ne!(out.rc, 0);
        assert!(out.stderr_str().contains("received 50000 of 100000 bytes"), "{}", out.stderr_str());
        assert_eq!(std::fs::read(&dest).unwrap(), b"old\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // the right length with other bytes: the checksum catches it
        let mut other = want.clone();
        other[777] ^= 1;
        let out = write_with(&dest, &want, &other, None).await;
        assert!(out.stderr_str().contains("SHA-256 differs"), "{}", out.stderr_str());
        assert_eq!(std::fs::read(&dest).unwrap(), b"old\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // every byte: committed
        let out = write_with(&dest, &want, &want, None).await;
        assert_eq!(out.rc, 0, "{}", out.stderr_str());
        assert_eq!(std::fs::read(&dest).unwrap(), want);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_signalled_write_removes_its_temp_file() {
        use std::io::Write;
        for (sig, code) in [("TERM", 143), ("INT", 130), ("HUP", 129)] {
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("f");
            std::fs::write(&dest, b"old\n").unwrap();
            let want = vec![7u8; 100_000];
            let script = atomic_write_script(dest.to_str().unwrap(), &FileAttrs::default(), &Expect::of(&want));
            let mut child = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(&script)
                .stdin(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(&want[..40_000]).unwrap();
            stdin.flush().unwrap();
            // the temp file is there and filling
            let start = std::time::Instant::now();
            while std::fs::read_dir(dir.path()).unwrap().count() < 2 {
                assert!(start.elapsed() < std::time::Duration::from_secs(10));
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            let st = std::process::Command::new("kill").args(["-s", sig, &child.id().to_string()]).status().unwrap();
            assert!(st.success());
            drop(stdin);
            let out = child.wait_with_output().unwrap();
            assert_eq!(out.status.code(), Some(code), "SIG{sig}: {}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(std::fs::read(&dest).unwrap(), b"old\n");
            let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
            assert_eq!(left.len(), 1, "SIG{sig} left {left:?}");
        }
    }

    #[tokio::test]
    async fn without_sha256sum_the_host_checks_with_cksum() {
        // a PATH with the tools the script uses, but no sha256sum
        let bin = tempfile::tempdir().unwrap();
        for tool in ["dirname", "mktemp", "cat", "wc", "tr", "cksum", "chmod", "chown", "stat", "sync", "mv", "rm"] {
            let found =
                ["/usr/bin", "/bin"].iter().map(|d| format!("{d}/{tool}")).find(|p| std::path::Path::new(p).exists());
            std::os::unix::fs::symlink(found.unwrap_or_else(|| panic!("no {tool}")), bin.path().join(tool)).unwrap();
        }
        let path = bin.path().to_str().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f");
        std::fs::write(&dest, b"old\n").unwrap();
        let want = b"the new content\n".repeat(1000);
        let mut other = want.clone();
        other[5] = b'X';
        let out = write_with(&dest, &want, &other, Some(path)).await;
        assert!(out.stderr_str().contains("CRC differs"), "{}", out.stderr_str());
        assert_eq!(std::fs::read(&dest).unwrap(), b"old\n");
        let out = write_with(&dest, &want, &want, Some(path)).await;
        assert_eq!(out.rc, 0, "{}", out.stderr_str());
        assert_eq!(std::fs::read(&dest).unwrap(), want);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn the_crc_is_posix_cksum() {
        for data in [&b""[..], b"a", b"hello world\n", &[0u8; 70_000][..]] {
            let mut c =
                std::process::Command::new("cksum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
            use std::io::Write;
            c.stdin.take().unwrap().write_all(data).unwrap();
            let out = String::from_utf8(c.wait_with_output().unwrap().stdout).unwrap();
            let crc: u32 = out.split_whitespace().next().unwrap().parse().unwrap();
            assert_eq!(Expect::of(data).crc, crc, "{} bytes", data.len());
        }
    }

    #[tokio::test]
    async fn exec_stdin_env_rc() {
        let c = LocalConnection::new();
        let out =
            c.exec(&Cmd::new("cat; echo \"$X\"; exit 7").stdin(b"in\n".to_vec()).env("X", "y"), None).await.unwrap();
        assert_eq!(out.rc, 7);
        assert_eq!(out.stdout_str(), "in\ny\n");
    }
}
