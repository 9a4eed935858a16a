//! `service_facts`: the host's systemd services as `ansible_facts.services` (never changes
//! anything), as Ansible's `service_facts` reports them.

use async_trait::async_trait;
use pbr_core::{Ctx, Doc, Module, ModuleError, Plan, ReadHost, sh_quote};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceFactsParams {}

const BAD_STATES: &[&str] = &["not-found", "masked", "failed"];

/// `service --status-all` lines (` [ + ]  ssh`), as Ansible reads them; `[ ? ]` ones are left out.
fn from_sysv(out: &str, services: &mut Map<String, Value>) {
    for line in out.lines() {
        let t = line.trim_start();
        let (state, name) = match (t.strip_prefix("[ + ]"), t.strip_prefix("[ - ]")) {
            (Some(n), _) => ("running", n),
            (_, Some(n)) => ("stopped", n),
            _ => continue,
        };
        let name = name.trim_start();
        if !name.is_empty() && name.len() < line.len() && line[..line.len() - name.len()].ends_with(char::is_whitespace)
        {
            services.insert(name.to_string(), json!({"name": name, "state": state, "source": "sysv"}));
        }
    }
}

/// `systemctl list-units --type service --all` lines, as Ansible reads them.
fn from_units(out: &str, services: &mut Map<String, Value>) {
    for line in out.lines().filter(|l| l.contains(".service")) {
        let mut fields: Vec<&str> = line.split_whitespace().collect();
        let status = match BAD_STATES.iter().find(|b| fields.contains(b)) {
            Some(bad) => {
                // the line starts with a bullet
                fields.remove(0);
                *bad
            }
            None => fields.get(2).copied().unwrap_or("unknown"),
        };
        let (Some(name), Some(sub)) = (fields.first(), fields.get(3)) else { continue };
        let state = if *sub == "running" { "running" } else { "stopped" };
        services.insert(name.to_string(), json!({"name": name, "state": state, "status": status, "source": "systemd"}));
    }
}

/// `systemctl list-unit-files --type service` lines: the final status of known units, and the
/// units not loaded (their names, to ask their state).
fn from_unit_files(out: &str, services: &mut Map<String, Value>) -> Vec<(String, String)> {
    let mut unloaded = vec![];
    for line in out.lines().filter(|l| l.contains(".service")) {
        let mut w = line.split_whitespace();
        let (Some(name), Some(status)) = (w.next(), w.next()) else { continue };
        match services.get_mut(name) {
            Some(s) => {
                if !BAD_STATES.contains(&s["status"].as_str().unwrap_or("")) {
                    s["status"] = json!(status);
                }
            }
            None => unloaded.push((name.to_string(), status.to_string())),
        }
    }
    unloaded
}

pub struct ServiceFacts;

#[async_trait]
impl Module for ServiceFacts {
    type Params = ServiceFactsParams;
    type State = Map<String, Value>;
    const NAME: &'static str = "service_facts";

    fn doc(&self) -> Doc {
        Doc {
            description: "Read the host's services into `ansible_facts.services` (and the `services` \
                          variable): per unit name (`sshd.service`), its `name`, `state` (running, stopped, or \
                          the ActiveState of a unit not loaded), `status` (enabled, disabled, static, masked, \
                          not-found, failed...) and `source` (systemd); the System V scripts `service \
                          --status-all` lists too, with `source: sysv`. Never changes anything.",
            examples: r#"- name: What runs on the storage VM
  service_facts:

- name: The iSCSI target is up
  assert:
    that: ansible_facts.services['rtslib-fb-targetctl.service'].status == 'enabled'
  when: "'rtslib-fb-targetctl.service' in ansible_facts.services"
"#,
        }
    }

    async fn probe(
        &self,
        _ctx: &Ctx<'_>,
        _p: &ServiceFactsParams,
        host: &ReadHost,
    ) -> Result<Map<String, Value>, ModuleError> {
        let mut services = Map::new();
        let out = host
            .query_sh(
                "command -v service >/dev/null 2>&1 && service --status-all 2>/dev/null; echo '--pbr--'\n\
                 grep -q systemd /proc/1/comm 2>/dev/null && command -v systemctl >/dev/null || exit 0\n\
                 systemctl list-units --no-pager --type service --all; echo '--pbr--'\n\
                 systemctl list-unit-files --no-pager --type service --all",
            )
            .await?;
        let text = out.stdout_str();
        let (sysv, rest) = text.split_once("--pbr--\n").unwrap_or((&text, ""));
        from_sysv(sysv, &mut services);
        let Some((units, files)) = rest.split_once("--pbr--\n") else { return Ok(services) };
        from_units(units, &mut services);
        let unloaded = from_unit_files(files, &mut services);
        if !unloaded.is_empty() {
            let names: Vec<String> = unloaded.iter().map(|(n, _)| sh_quote(n)).collect();
            let out = host.query_sh(format!("systemctl show --property=Id,ActiveState {}", names.join(" "))).await?;
            let shown = out.stdout_str();
            // one block per unit, in the order asked
            let states: Vec<String> = shown
                .split("\n\n")
                .map(|b| b.lines().find_map(|l| l.strip_prefix("ActiveState=")).unwrap_or("unknown").to_string())
                .collect();
            for (i, (name, status)) in unloaded.into_iter().enumerate() {
                let state = states.get(i).cloned().filter(|s| !s.is_empty()).unwrap_or_else(|| "unknown".into());
                services
                    .insert(name.clone(), json!({"name": name, "state": state, "status": status, "source": "systemd"}));
            }
        }
        Ok(services)
    }

    fn plan(&self, _p: &ServiceFactsParams, _st: &Map<String, Value>) -> Result<Plan, ModuleError> {
        Ok(Plan::empty())
    }

    fn data(&self, _p: &ServiceFactsParams, st: &Map<String, Value>) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("ansible_facts".into(), json!({ "services": st }));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemctl_output_as_ansible_reads_it() {
        // captured from systemctl 252 on Debian 12
        let units = "  UNIT                 LOAD      ACTIVE   SUB     DESCRIPTION\n\
                     \u{25cf} apparmor.service     not-found inactive dead    apparmor.service\n\
                     \x20 ssh.service          loaded    active   running OpenBSD Secure Shell server\n\
                     \x20 systemd-fsck-root.service loaded inactive dead  File System Check on Root Device\n\
                     \nLOAD   = Reflects whether the unit definition was properly loaded.\n";
        let files = "UNIT FILE              STATE    VENDOR PRESET\n\
                     ssh.service            enabled  enabled\n\
                     systemd-fsck-root.service static -\n\
                     rsync.service          disabled enabled\n";
        let mut s = Map::new();
        from_sysv(" [ + ]  ssh\n [ ? ]  hwclock.sh\n [ - ]  cron\n", &mut s);
        assert_eq!(s["ssh"], json!({"name": "ssh", "state": "running", "source": "sysv"}));
        assert_eq!(s["cron"]["state"], "stopped");
        assert!(!s.contains_key("hwclock.sh"));
        from_units(units, &mut s);
        let unloaded = from_unit_files(files, &mut s);
        assert_eq!(
            s["ssh.service"],
            json!({"name": "ssh.service", "state": "running", "status": "enabled", "source": "systemd"})
        );
        assert_eq!(s["apparmor.service"]["status"], "not-found");
        assert_eq!(s["systemd-fsck-root.service"]["state"], "stopped");
        assert_eq!(s["systemd-fsck-root.service"]["status"], "static");
        assert_eq!(unloaded, [("rsync.service".to_string(), "disabled".to_string())]);
    }
}
