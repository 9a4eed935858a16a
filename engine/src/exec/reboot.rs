//! The engine actions that outlive a connection: `reboot` and `wait_for_connection`.
//!
//! Both drop the host's cached connection and make new ones until the host answers, which is why
//! they are engine actions and not modules (modules never see connections).

use super::actions::secs;
use super::*;
use crate::sh_quote;
use std::time::Instant;

fn text(args: &Value, key: &str, default: &str) -> String {
    args.get(key).map(value_label).unwrap_or_else(|| default.to_string())
}

impl Runner<'_> {
    /// Forget the host's connection: the next `connect` makes a new one.
    async fn forget_connection(&self, name: &str, vars: &Map<String, Value>, via: &Via) {
        let key = self.conn_key(name, vars, via);
        self.conns.lock().await.remove(&key);
    }

    /// Connect and run `script` (as the login user), within `connect_timeout`.
    async fn try_host(
        &self,
        name: &str,
        vars: &Map<String, Value>,
        via: &Via,
        esc: Option<Become>,
        connect_timeout: Duration,
        script: &str,
    ) -> Result<String, String> {
        let attempt = async {
            let conn = self.connect(name, vars, via).await.map_err(|e| e.to_string())?;
            let host = Host::new(name.to_string(), conn, esc);
            let out = host.run(crate::host::Cmd::new(script.to_string())).await.map_err(|e| e.to_string())?;
            if out.rc != 0 {
                return Err(format!("`{script}` exited {}: {}", out.rc, out.stderr_str().trim()));
            }
            Ok(out.stdout_str().trim().to_string())
        };
        let r = match tokio::time::timeout(connect_timeout + Duration::from_secs(30), attempt).await {
            Ok(r) => r,
            Err(_) => Err("no answer in time".to_string()),
        };
        if r.is_err() {
            self.forget_connection(name, vars, via).await;
        }
        r
    }

    pub(super) async fn act_wait_for_connection(
        &self,
        via: &Via,
        task: &Task,
        args: &Value,
        st: &mut HostState,
        vars: &Map<String, Value>,
        scope: &Scope<'_>,
    ) -> Result<ItemOutcome, Fail> {
        let args = self.action_args("wait_for_connection", task, args, scope)?;
        let timeout = secs(&args, "timeout", 600.0)?;
        let delay = secs(&args, "delay", 0.0)?;
        let sleep = secs(&args, "sleep", 1.0)?.max(0.1);
        let connect_timeout = duration(secs(&args, "connect_timeout", 5.0)?.max(1.0));
        let t0 = Instant::now();
        tokio::time::sleep(duration(delay)).await;
        self.forget_connection(&st.name, vars, via).await;
        let deadline = t0 + duration(timeout);
        loop {
            match self.try_host(&st.name, vars, via, None, connect_timeout, "true").await {
                Ok(_) => break,
                Err(e) if Instant::now() >= deadline => {
                    return Err(Fail::new(format!("timed out waiting for a connection after {timeout} s: {e}")));
                }
                Err(_) => tokio::time::sleep(duration(sleep)).await,
            }
        }
        let mut r = Map::new();
        r.insert("changed".into(), json!(false));
        r.insert("elapsed".into(), json!(t0.elapsed().as_secs()));
        Ok(simple_outcome(&st.name, Status::Ok, None, r))
    }

    pub(super) async fn act_reboot(
        &self,
        via: &Via,
        task: &Task,
        inh: &Inherit,
        st: &mut HostState,
        vars: &Map<String, Value>,
        scope: &Scope<'_>,
    ) -> Result<ItemOutcome, Fail> {
        let Action::Module { args, .. } = &task.action else { unreachable!("an action task") };
        let args = self.action_args("reboot", task, args, scope)?;
        let reboot_timeout = secs(&args, "reboot_timeout", 600.0)?;
        let connect_timeout = duration(secs(&args, "connect_timeout", 10.0)?.max(1.0));
        let pre = secs(&args, "pre_reboot_delay", 0.0)?;
        let post = secs(&args, "post_reboot_delay", 0.0)?;
        let test_command = text(&args, "test_command", "whoami");
        let boot_time_command = text(&args, "boot_time_command", "cat /proc/sys/kernel/random/boot_id");
        let msg = text(&args, "msg", "Reboot initiated by pbr");
        let reboot_command = match args.get("reboot_command") {
            Some(v) => value_label(v),
            None => format!(
                "if command -v systemctl >/dev/null 2>&1; then systemctl reboot --message={m} 2>/dev/null || \
                 systemctl reboot; else shutdown -r now {m} || reboot; fi",
                m = sh_quote(&msg)
            ),
        };
        let check = task.check_mode.or(inh.kw.check_mode).unwrap_or(self.opts.check);
        if check {
            let mut r = Map::new();
            r.insert("changed".into(), json!(true));
            r.insert("rebooted".into(), json!(false));
            let mut out = simple_outcome(&st.name, Status::Changed, None, r);
            out.report.changes = vec![crate::module::Change::run(format!(
                "{} reboots{}",
                st.name,
                if st.deferred.is_empty() { String::new() } else { " after its deferred work".into() }
            ))];
            return Ok(out);
        }
        let esc = self.become_from_vars(vars, inh, Some(task), scope).map_err(Fail::new)?;
        let t0 = Instant::now();
        let before = self
            .try_host(&st.name, vars, via, esc.clone(), connect_timeout, &boot_time_command)
            .await
            .map_err(|e| Fail {
                at: None,
                msg: format!("cannot read the boot id before rebooting: {e}"),
                data: Map::new(),
                unreachable: true,
            })?;
        // work deferred to the end of the run (an initramfs regeneration) is for this boot
        if !st.deferred.is_empty() {
            let failed = self.run_host_deferred(st).await;
            if failed > 0 {
                return Err(Fail::new(format!(
                    "not rebooting: {failed} deferred step(s) failed before the reboot (see above); the next boot \
                     would not have them"
                )));
            }
        }
        tokio::time::sleep(duration(pre)).await;
        let conn = self.connect(&st.name, vars, via).await.map_err(|e| Fail {
            at: None,
            unreachable: true,
            msg: e.to_string(),
            data: Map::new(),
        })?;
        let host = Host::new(st.name.clone(), conn, esc.clone());
        let sent = tokio::time::timeout(
            Duration::from_secs(30),
            host.run(crate::host::Cmd::new(reboot_command.clone()).timeout(Duration::from_secs(30))),
        )
        .await;
        // a lost connection is what a reboot looks like; a command that failed is not
        if let Ok(Ok(o)) = &sent
            && o.rc != 0
        {
            return Err(Fail::new(format!("the reboot command exited {}: {}", o.rc, o.stderr_str().trim())));
        }
        drop(host);
        self.forget_connection(&st.name, vars, via).await;
        let deadline = t0 + duration(reboot_timeout);
        let mut last = String::from("no answer yet");
        loop {
            if Instant::now() >= deadline {
                return Err(Fail::new(format!(
                    "{} did not come back within {reboot_timeout} s of the reboot (last: {last})",
                    st.name
                )));
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            match self.try_host(&st.name, vars, via, esc.clone(), connect_timeout, &boot_time_command).await {
                Ok(id) if id != before && !id.is_empty() => break,
                Ok(_) => {
                    last = "still the old boot".into();
                    self.forget_connection(&st.name, vars, via).await;
                }
                Err(e) => last = e,
            }
        }
        tokio::time::sleep(duration(post)).await;
        loop {
            match self.try_host(&st.name, vars, via, esc.clone(), connect_timeout, &test_command).await {
                Ok(_) => break,
                Err(e) if Instant::now() >= deadline => {
                    return Err(Fail::new(format!("after the reboot, `{test_command}` did not succeed in time: {e}")));
                }
                Err(_) => tokio::time::sleep(Duration::from_secs(2)).await,
            }
        }
        let mut r = Map::new();
        r.insert("changed".into(), json!(true));
        r.insert("rebooted".into(), json!(true));
        r.insert("elapsed".into(), json!(t0.elapsed().as_secs()));
        Ok(simple_outcome(&st.name, Status::Changed, None, r))
    }
}
