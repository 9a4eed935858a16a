//! `iscsi`: the open-iscsi initiator: its name, discovery, login/logout, startup mode.

use crate::storage_util::Step;
use crate::storage_util::{self as su};
use crate::targetcli::validate_wwn;
use async_trait::async_trait;
use pbr_core::Secret;
use pbr_core::{Ctx, Diff, Doc, Module, ModuleError, Plan, ReadHost, sh_quote};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Login {
    /// Logged in to `target` (default when `target` is given).
    #[default]
    LoggedIn,
    /// Logged out (the node record is kept).
    LoggedOut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Startup {
    /// Log in at boot.
    Automatic,
    /// Only when asked.
    Manual,
    /// Logged in by the initramfs (a root disk): `iscsi.service` leaves it alone at boot and,
    /// unlike `automatic`, never logs it out at shutdown.
    Onboot,
}

impl Startup {
    fn name(self) -> &'static str {
        match self {
            Startup::Automatic => "automatic",
            Startup::Manual => "manual",
            Startup::Onboot => "onboot",
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IscsiParams {
    /// This initiator's IQN, written to `/etc/iscsi/initiatorname.iscsi` (iscsid is restarted).
    #[serde(default)]
    pub initiator_name: Option<String>,
    /// Target portal, `IP` or `IP:PORT` (default port 3260).
    #[serde(default)]
    pub portal: Option<String>,
    /// Target IQN to log in to (discovered at `portal` when no node record exists).
    #[serde(default)]
    pub target: Option<String>,
    /// `logged_in` (default) or `logged_out`.
    #[serde(default)]
    pub state: Login,
    /// `node.startup`: `automatic` (log in at boot), `manual`, or `onboot` (a root disk the
    /// initramfs logs in to).
    #[serde(default)]
    pub startup: Option<Startup>,
    /// Other settings of the node record (`iscsiadm -m node -o update -n NAME -v VALUE`), e.g.
    /// `node.session.timeo.replacement_timeout: 600`, so iscsid keeps them when it takes over a
    /// session.
    #[serde(default)]
    pub settings: std::collections::BTreeMap<String, crate::mkinitcpio_hook::StrOrNum>,
    /// CHAP user name for the target (node.session.auth).
    #[serde(default)]
    pub chap_userid: Option<String>,
    /// CHAP password (redacted in all output).
    #[serde(default)]
    pub chap_password: Option<Secret>,
}

impl IscsiParams {
    fn portal(&self) -> Option<String> {
        self.portal.as_ref().map(|p| if p.contains(':') && !p.ends_with(']') { p.clone() } else { format!("{p}:3260") })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    pub portal: String,
    pub target: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IscsiState {
    pub initiator_name: Option<String>,
    pub sessions: Vec<Session>,
    /// Known node records (portal, target).
    pub nodes: Vec<Session>,
    /// `key = value` settings of the node record of (portal, target).
    pub node_settings: Vec<(String, String)>,
}

impl IscsiState {
    fn setting(&self, k: &str) -> Option<&str> {
        self.node_settings.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
    }
}

/// `tcp: [1] 10.0.2.2:3260,1 iqn.2024-01.lan.storage:pi3 (non-flash)` lines (also `-m node`
/// lines: `10.0.2.2:3260,1 iqn...`).
pub fn parse_sessions(text: &str) -> Vec<Session> {
    text.lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let i = words.iter().position(|w| w.contains(',') && w.contains(':'))?;
            let portal = words[i].split(',').next()?.to_string();
            let target = words.get(i + 1)?.to_string();
            Some(Session { portal, target })
        })
        .collect()
}

/// `InitiatorName=iqn...` from initiatorname.iscsi.
pub fn parse_initiator_name(text: &str) -> Option<String> {
    text.lines().find_map(|l| l.trim().strip_prefix("InitiatorName=")).map(|s| s.trim().to_string())
}

fn node_args(portal: &str, target: &str) -> String {
    format!("-T {} -p {}", sh_quote(target), sh_quote(portal))
}

/// The steps from `st` to `p`. Pure.
pub fn steps(p: &IscsiParams, st: &IscsiState) -> Result<Vec<Step>, ModuleError> {
    let mut steps = vec![];
    if let Some(name) = &p.initiator_name
        && st.initiator_name.as_deref() != Some(name.as_str())
    {
        steps.push(
            Step::new(
                format!("this initiator is named {name}"),
                format!(
                    "printf 'InitiatorName=%s\\n' {} > /etc/iscsi/initiatorname.iscsi\n\
                         if systemctl is-active --quiet iscsid 2>/dev/null; then systemctl restart iscsid; fi",
                    sh_quote(name)
                ),
            )
            .with_diff(Diff::file(
                "/etc/iscsi/initiatorname.iscsi",
                st.initiator_name.as_ref().map(|n| format!("InitiatorName={n}\n")).unwrap_or_default(),
                format!("InitiatorName={name}\n"),
            )),
        );
    }
    let Some(target) = &p.target else { return Ok(steps) };
    let portal = p.portal().ok_or_else(|| ModuleError::new("target needs portal"))?;
    let args = node_args(&portal, target);
    let logged_in = st.sessions.iter().any(|s| &s.target == target && s.portal == portal);
    let known = st.nodes.iter().any(|s| &s.target == target && s.portal == portal);
    if p.state == Login::LoggedOut {
        if logged_in {
            steps.push(Step::new(
                format!("this host logs out of {target} at {portal}"),
                format!("iscsiadm -m node {args} --logout"),
            ));
        }
        return Ok(steps);
    }
    if !known {
        steps.push(Step::new(
            format!("targets at {portal} are discovered (node records created)"),
            format!(
                "modprobe iscsi_tcp 2>/dev/null || true\n\
                 iscsiadm -m discovery -t sendtargets -p {}\n\
                 iscsiadm -m node {args} >/dev/null 2>&1 || {{ echo 'target {target} is not offered at {portal}' >&2; exit 1; }}",
                sh_quote(&portal)
            ),
        ));
    }
    if let Some(s) = p.startup
        && (st.setting("node.startup") != Some(s.name()) || !known)
    {
        steps.push(Step::new(
            format!("{target} at {portal}: node.startup = {}", s.name()),
            format!("iscsiadm -m node {args} -o update -n node.startup -v {}", s.name()),
        ));
    }
    for (k, v) in &p.settings {
        let v = v.to_string();
        if st.setting(k) != Some(v.as_str()) || !known {
            steps.push(Step::new(
                format!("{target} at {portal}: {k} = {v}"),
                format!("iscsiadm -m node {args} -o update -n {} -v {}", sh_quote(k), sh_quote(&v)),
            ));
        }
    }
    if let Some(u) = &p.chap_userid
        && (st.setting("node.session.auth.username") != Some(u.as_str()) || !known)
    {
        let mut script = format!(
            "iscsiadm -m node {args} -o update -n node.session.auth.authmethod -v CHAP\n\
                 iscsiadm -m node {args} -o update -n node.session.auth.username -v {}",
            sh_quote(u)
        );
        if p.chap_password.is_some() {
            // The password comes on stdin, never on a command line.
            script.push_str(&format!(
                "\nIFS= read -r pw\niscsiadm -m node {args} -o update -n node.session.auth.password -v \"$pw\""
            ));
        }
        let mut s = Step::new(format!("{target} at {portal}: CHAP user {u} (password not shown)"), script);
        if let Some(pw) = &p.chap_password {
            s = s.with_stdin(format!("{}\n", pw.expose()));
        }
        steps.push(s);
    }
    if !logged_in {
        steps.push(Step::new(
            format!("this host logs in to {target} at {portal} (a new disk appears)"),
            format!("iscsiadm -m node {args} --login\nudevadm settle 2>/dev/null || true"),
        ));
    }
    Ok(steps)
}

pub struct Iscsi;

fn probe_script(p: &IscsiParams) -> String {
    let mut s = String::from(
        "export LC_ALL=C\necho '@@NAME'; cat /etc/iscsi/initiatorname.iscsi 2>/dev/null || true\n\
         echo '@@SESSIONS'; iscsiadm -m session 2>/dev/null; rc=$?; [ $rc -eq 0 ] || [ $rc -eq 21 ] || exit $rc\n\
         echo '@@NODES'; iscsiadm -m node 2>/dev/null || true\n",
    );
    if let (Some(t), Some(portal)) = (&p.target, p.portal()) {
        s.push_str(&format!(
            "echo '@@NODE'; iscsiadm -m node {} -o show 2>/dev/null | grep -E '^node\\.' | grep -v '^node\\.session\\.auth\\.password' || true\n",
            node_args(&portal, t)
        ));
    }
    s
}

fn section<'a>(text: &'a str, m: &str) -> &'a str {
    let Some(i) = text.find(m) else { return "" };
    let rest = &text[i + m.len()..];
    &rest[..rest.find("@@").unwrap_or(rest.len())]
}

pub fn parse_probe(text: &str) -> IscsiState {
    IscsiState {
        initiator_name: parse_initiator_name(section(text, "@@NAME\n")),
        sessions: parse_sessions(section(text, "@@SESSIONS\n")),
        nodes: parse_sessions(section(text, "@@NODES\n")),
        node_settings: section(text, "@@NODE\n")
            .lines()
            .filter_map(|l| l.split_once(" = ").map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
            .collect(),
    }
}

#[async_trait]
impl Module for Iscsi {
    type Params = IscsiParams;
    type State = IscsiState;
    const NAME: &'static str = "iscsi";
    const ALIASES: &'static [&'static str] = &["open_iscsi"];

    fn doc(&self) -> Doc {
        Doc {
            description: "The open-iscsi initiator: its IQN, discovery of a portal's targets, login/logout and \
                          `node.startup`. The probe reads `iscsiadm -m session` (exit 21 means no session) and \
                          the node records; the result lists the disk of a logged-in target by path.",
            examples: r#"- name: Pi logs in to its disk
  iscsi:
    initiator_name: iqn.2024-01.lan.pi3:initiator
    portal: 10.0.2.2
    target: iqn.2024-01.lan.storage:pi3
    startup: automatic
  register: disk
"#,
        }
    }

    fn validate(&self, p: &IscsiParams) -> Result<(), String> {
        if let Some(n) = &p.initiator_name {
            validate_wwn(n)?;
        }
        if let Some(t) = &p.target {
            validate_wwn(t)?;
            if p.portal.is_none() {
                return Err("target needs portal".into());
            }
        }
        if p.chap_password.is_some() && p.chap_userid.is_none() {
            return Err("chap_password needs chap_userid".into());
        }
        Ok(())
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &IscsiParams, host: &ReadHost) -> Result<IscsiState, ModuleError> {
        let out = host.query_sh(probe_script(p)).await?;
        if out.rc == 127 {
            return Err(ModuleError::new(
                "iscsiadm is not installed on the host: install open-iscsi first (package: open-iscsi)",
            ));
        }
        if out.rc != 0 {
            return Err(ModuleError::new(format!("iscsiadm failed (exit {}): {}", out.rc, out.stderr_str().trim())));
        }
        Ok(parse_probe(&out.stdout_str()))
    }

    fn plan(&self, p: &IscsiParams, st: &IscsiState) -> Result<Plan, ModuleError> {
        Ok(su::to_plan(&steps(p, st)?))
    }

    fn data(&self, p: &IscsiParams, _st: &IscsiState) -> Map<String, Value> {
        let mut m = Map::new();
        if let (Some(t), Some(portal), Login::LoggedIn) = (&p.target, p.portal(), p.state) {
            m.insert("device".into(), Value::from(format!("/dev/disk/by-path/ip-{portal}-iscsi-{t}-lun-0")));
        }
        m
    }
}
