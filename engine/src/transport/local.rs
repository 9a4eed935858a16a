//! `connection: local`: the machine pbr runs on, through `sh`.

use super::{atomic_write_script, become_wrap, read_script};
use crate::host::{Become, Cmd, Connection, FileAttrs, HostError, Output};
use async_trait::async_trait;
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
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = c.spawn().map_err(|e| HostError::Failed(format!("cannot start sh: {e}")))?;
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
            Some(t) => tokio::time::timeout(t, run).await.map_err(|_| HostError::Timeout(t))?,
            None => run.await,
        }
        .map_err(|e| HostError::Failed(format!("sh: {e}")))?;
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
        let out = self.exec(&Cmd::new(atomic_write_script(path, attrs)).stdin(data.to_vec()), esc).await?;
        if out.rc != 0 {
            return Err(HostError::Failed(format!("cannot write {path}: {}", out.stderr_str().trim())));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Host;
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

    #[tokio::test]
    async fn exec_stdin_env_rc() {
        let c = LocalConnection::new();
        let out =
            c.exec(&Cmd::new("cat; echo \"$X\"; exit 7").stdin(b"in\n".to_vec()).env("X", "y"), None).await.unwrap();
        assert_eq!(out.rc, 7);
        assert_eq!(out.stdout_str(), "in\ny\n");
    }
}
