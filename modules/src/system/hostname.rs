//! `hostname`: the host's name, now and at boot.

use async_trait::async_trait;
use pbr_core::{Change, Ctx, Doc, Module, ModuleError, Op, Plan, ReadHost, sh_quote};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostnameParams {
    /// The host name (`pi3`, or a fully qualified `pi3.lan`).
    pub name: String,
    /// How to set it: `systemd` (`hostnamectl`); any other of Ansible's strategies (`debian`,
    /// `alpine`, `generic`, `file`...) writes `/etc/hostname` and runs `hostname`. Default: systemd
    /// when it runs the host, else the file.
    #[serde(default, rename = "use")]
    pub use_: Option<String>,
}

pub struct Hostname;

#[derive(Debug, Clone)]
pub struct HostnameState {
    pub current: String,
    /// `/etc/hostname`'s name (None: no file).
    pub permanent: Option<String>,
    pub systemd: bool,
}

fn valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

#[async_trait]
impl Module for Hostname {
    type Params = HostnameParams;
    type State = HostnameState;
    const NAME: &'static str = "hostname";

    fn doc(&self) -> Doc {
        Doc {
            description: "Set the host's name for now and for the next boots: with systemd running the host, \
                          `hostnamectl set-hostname`; else `/etc/hostname` and the `hostname` command (so the \
                          running name changes too, where Ansible's file strategy only writes the file). \
                          Result: `name`, and the `ansible_hostname`, `ansible_nodename`, `ansible_fqdn`, \
                          `ansible_domain` facts.",
            examples: r#"- name: Each Pi is named after its inventory entry
  hostname:
    name: "{{ inventory_hostname_short }}"
"#,
        }
    }

    fn validate(&self, p: &HostnameParams) -> Result<(), String> {
        if valid(&p.name) {
            Ok(())
        } else {
            Err(format!("not a valid host name: {:?} (labels of letters, digits and '-', dots between)", p.name))
        }
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &HostnameParams, host: &ReadHost) -> Result<HostnameState, ModuleError> {
        let out = host
            .query_sh(
                "uname -n; if [ -f /etc/hostname ]; then echo yes; sed -n '/^[^#]/{p;q}' /etc/hostname; else echo no; echo; fi\n\
                 if [ -d /run/systemd/system ] && command -v hostnamectl >/dev/null 2>&1; then echo systemd; else echo file; fi",
            )
            .await?;
        let text = out.stdout_str();
        let l: Vec<&str> = text.lines().collect();
        if l.len() < 4 {
            return Err(ModuleError::new(format!("cannot read the host's name: {}", out.stderr_str().trim())));
        }
        let systemd = match p.use_.as_deref() {
            Some("systemd") => true,
            Some(_) => false,
            None => l[3] == "systemd",
        };
        Ok(HostnameState {
            current: l[0].trim().to_string(),
            permanent: (l[1] == "yes").then(|| l[2].trim().to_string()),
            systemd,
        })
    }

    fn plan(&self, p: &HostnameParams, st: &HostnameState) -> Result<Plan, ModuleError> {
        let mut plan = Plan::empty();
        let name = &p.name;
        let permanent_ok = st.permanent.as_deref() == Some(name.as_str());
        let current_ok = st.current == *name;
        if permanent_ok && current_ok {
            return Ok(plan);
        }
        plan.push(Change::new(format!("host name {} → {name}", st.current)));
        if st.systemd {
            plan.op(Op::run(
                format!("hostnamectl set-hostname {name}"),
                format!("hostnamectl set-hostname {}", sh_quote(name)),
            ));
            return Ok(plan);
        }
        if !permanent_ok {
            plan.op(Op::WriteFile {
                path: "/etc/hostname".into(),
                content: format!("{name}\n").into_bytes(),
                mode: st.permanent.is_none().then_some(0o644),
                owner: None,
                group: None,
                backup: false,
                validate: None,
            });
        }
        if !current_ok {
            let q = sh_quote(name);
            plan.op(Op::run(
                format!("hostname {name}"),
                format!("if command -v hostname >/dev/null 2>&1; then hostname {q}; else printf '%s' {q} > /proc/sys/kernel/hostname; fi"),
            ));
        }
        Ok(plan)
    }

    fn data(&self, p: &HostnameParams, _st: &HostnameState) -> Map<String, Value> {
        let short = p.name.split('.').next().unwrap_or(&p.name);
        let domain = p.name.split_once('.').map(|(_, d)| d).unwrap_or("");
        let mut m = Map::new();
        m.insert("name".into(), json!(p.name));
        m.insert(
            "ansible_facts".into(),
            json!({"ansible_hostname": short, "ansible_nodename": p.name, "ansible_fqdn": p.name, "ansible_domain": domain}),
        );
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_plans() {
        assert!(valid("pi3") && valid("pi-3.lan") && !valid("-pi") && !valid("pi_3") && !valid("a..b"));
        let p = HostnameParams { name: "pi3".into(), use_: None };
        let st = HostnameState { current: "alarm".into(), permanent: Some("alarm".into()), systemd: false };
        assert_eq!(Hostname.plan(&p, &st).unwrap().ops.len(), 2);
        let sd = HostnameState { systemd: true, ..st.clone() };
        assert!(
            matches!(&Hostname.plan(&p, &sd).unwrap().ops[..], [Op::Run { script, .. }] if script.starts_with("hostnamectl"))
        );
        let done = HostnameState { current: "pi3".into(), permanent: Some("pi3".into()), systemd: true };
        assert!(Hostname.plan(&p, &done).unwrap().is_empty());
    }
}
