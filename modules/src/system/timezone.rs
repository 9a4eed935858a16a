//! `timezone`: the host's time zone (and with systemd, whether the hardware clock keeps UTC).

use async_trait::async_trait;
use pbr_core::{Change, Ctx, Doc, Module, ModuleError, Op, Plan, ReadHost, sh_quote};
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum Hwclock {
    #[serde(alias = "utc", alias = "Utc")]
    UTC,
    #[serde(alias = "LOCAL", alias = "localtime", alias = "Local")]
    #[serde(rename = "local")]
    Local,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimezoneParams {
    /// The zone (`Europe/Berlin`, `UTC`), as named under /usr/share/zoneinfo.
    #[serde(default)]
    pub name: Option<String>,
    /// Whether the hardware clock keeps `UTC` or `local` time (systemd hosts: `timedatectl
    /// set-local-rtc`).
    #[serde(default)]
    pub hwclock: Option<Hwclock>,
}

pub struct Timezone;

#[derive(Debug, Clone)]
pub struct TzState {
    /// The zone /etc/localtime points to (None: not a link into zoneinfo).
    pub current: Option<String>,
    /// /etc/timezone's zone, when the file exists (Debian).
    pub etc_timezone: Option<String>,
    /// The wanted zone exists under /usr/share/zoneinfo.
    pub known: bool,
    pub systemd: bool,
    /// The hardware clock keeps local time (systemd hosts).
    pub rtc_local: Option<bool>,
}

#[async_trait]
impl Module for Timezone {
    type Params = TimezoneParams;
    type State = TzState;
    const NAME: &'static str = "timezone";

    fn doc(&self) -> Doc {
        Doc {
            description: "Set the host's time zone: with systemd, `timedatectl set-timezone`; else /etc/localtime \
                          becomes a link to the zone under /usr/share/zoneinfo, and /etc/timezone (where the \
                          host has one, as Debian does) names it. `hwclock` (systemd hosts) says whether the \
                          hardware clock keeps UTC or local time. A zone the host does not know fails before \
                          anything changes.",
            examples: r#"- name: The Pis log in local time
  timezone:
    name: Europe/Berlin
"#,
        }
    }

    fn validate(&self, p: &TimezoneParams) -> Result<(), String> {
        match &p.name {
            None if p.hwclock.is_none() => Err("one of the following is required: name, hwclock".into()),
            Some(n) if n.is_empty() || n.starts_with('/') || n.split('/').any(|s| s == "..") => {
                Err(format!("not a time zone name: {n:?}"))
            }
            _ => Ok(()),
        }
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &TimezoneParams, host: &ReadHost) -> Result<TzState, ModuleError> {
        let zone = sh_quote(p.name.as_deref().unwrap_or("UTC"));
        let out = host
            .query_sh(format!(
                "readlink /etc/localtime || echo; if [ -f /etc/timezone ]; then echo yes; head -n1 /etc/timezone; else echo no; echo; fi\n\
                 [ -f /usr/share/zoneinfo/{zone} ] && echo known || echo unknown\n\
                 if [ -d /run/systemd/system ] && command -v timedatectl >/dev/null 2>&1; then echo systemd; \
                 timedatectl show -p LocalRTC --value 2>/dev/null || echo; else echo file; echo; fi"
            ))
            .await?;
        let text = out.stdout_str();
        let l: Vec<&str> = text.lines().collect();
        if l.len() < 6 {
            return Err(ModuleError::new(format!("cannot read the time zone: {}", out.stderr_str().trim())));
        }
        let current = l[0].split_once("zoneinfo/").map(|(_, z)| z.trim().to_string());
        let systemd = l[4] == "systemd";
        Ok(TzState {
            current,
            etc_timezone: (l[1] == "yes").then(|| l[2].trim().to_string()),
            known: l[3] == "known",
            systemd,
            rtc_local: match l[5].trim() {
                "yes" => Some(true),
                "no" => Some(false),
                _ => None,
            },
        })
    }

    fn plan(&self, p: &TimezoneParams, st: &TzState) -> Result<Plan, ModuleError> {
        let mut plan = Plan::empty();
        if let Some(name) = &p.name {
            let link_ok = st.current.as_deref() == Some(name.as_str());
            let file_ok = st.etc_timezone.as_ref().is_none_or(|z| z == name);
            if !(link_ok && file_ok) {
                if !st.known {
                    return Err(ModuleError::new(format!(
                        "given timezone \"{name}\" is not available (no /usr/share/zoneinfo/{name} on the host)"
                    )));
                }
                let before = st.current.as_deref().unwrap_or("(unknown)");
                plan.push(Change::new(format!("time zone {before} → {name}")));
                let q = sh_quote(name);
                if st.systemd {
                    plan.op(Op::run(
                        format!("timedatectl set-timezone {name}"),
                        format!("timedatectl set-timezone {q}"),
                    ));
                } else {
                    plan.op(Op::run(
                        format!("link /etc/localtime to {name}"),
                        format!("ln -sf ../usr/share/zoneinfo/{q} /etc/localtime.pbr && mv -f /etc/localtime.pbr /etc/localtime"),
                    ));
                    if st.etc_timezone.is_some() && !file_ok {
                        plan.op(Op::WriteFile {
                            path: "/etc/timezone".into(),
                            content: format!("{name}\n").into_bytes(),
                            mode: None,
                            owner: None,
                            group: None,
                            backup: false,
                            validate: None,
                        });
                    }
                }
            }
        }
        if let Some(hw) = p.hwclock {
            let want_local = hw == Hwclock::Local;
            if !st.systemd {
                return Err(ModuleError::new("hwclock is only set on systemd hosts here (timedatectl)"));
            }
            if st.rtc_local != Some(want_local) {
                plan.push(Change::new(format!(
                    "hardware clock keeps {}",
                    if want_local { "local time" } else { "UTC" }
                )));
                plan.op(Op::run(
                    "timedatectl set-local-rtc",
                    format!("timedatectl set-local-rtc {}", u8::from(want_local)),
                ));
            }
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans() {
        let p = TimezoneParams { name: Some("Europe/Berlin".into()), hwclock: None };
        let st = TzState {
            current: Some("UTC".into()),
            etc_timezone: Some("UTC".into()),
            known: true,
            systemd: false,
            rtc_local: None,
        };
        assert_eq!(Timezone.plan(&p, &st).unwrap().ops.len(), 2);
        let unknown = TzState { known: false, ..st.clone() };
        assert!(Timezone.plan(&p, &unknown).is_err());
        let done = TzState { current: Some("Europe/Berlin".into()), etc_timezone: Some("Europe/Berlin".into()), ..st };
        assert!(Timezone.plan(&p, &done).unwrap().is_empty());
    }
}
