//! `wait_for`: wait until a port opens or closes, or a file appears, disappears or holds a
//! string, as Ansible's `wait_for` (never changes anything; waits in check mode too).

use async_trait::async_trait;
use pbr_core::pyre::{Flags, PyRegex};
use pbr_core::{Ctx, Doc, Module, ModuleError, Plan, ReadHost, sh_quote};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WaitState {
    /// The port accepts connections, or the file exists (holding `search_regex`).
    #[default]
    Started,
    /// Same as `started`.
    Present,
    /// The port is closed, or the file is gone.
    Stopped,
    /// Same as `stopped`.
    Absent,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitForParams {
    /// The address to connect to (from the host).
    #[serde(default = "localhost")]
    pub host: String,
    /// A TCP port to wait for.
    #[serde(default)]
    pub port: Option<u16>,
    /// A file to wait for.
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub state: WaitState,
    /// A Python regex the file (or, with `port`, what the server sends first) must contain.
    #[serde(default)]
    pub search_regex: Option<String>,
    /// Seconds to wait before the first look.
    #[serde(default)]
    pub delay: u64,
    /// Seconds to wait in all before failing.
    #[serde(default = "three_hundred")]
    pub timeout: u64,
    /// Seconds between looks.
    #[serde(default = "one")]
    pub sleep: u64,
    /// Seconds for one connection attempt.
    #[serde(default = "five")]
    pub connect_timeout: u64,
    /// The failure's message instead of the default one.
    #[serde(default)]
    pub msg: Option<String>,
}

fn localhost() -> String {
    "127.0.0.1".into()
}
fn three_hundred() -> u64 {
    300
}
fn one() -> u64 {
    1
}
fn five() -> u64 {
    5
}

impl WaitForParams {
    fn started(&self) -> bool {
        matches!(self.state, WaitState::Started | WaitState::Present)
    }
}

pub struct WaitFor;

pub struct WaitResult {
    elapsed: u64,
    groups: Vec<Value>,
    named: Map<String, Value>,
}

/// One look at a TCP port from the host: 0 open, 1 closed, 2 no tool to tell. `nc`, then bash's
/// /dev/tcp, then the kernel's table of listening sockets for a local address.
fn port_script(host: &str, port: u16, connect_timeout: u64) -> String {
    let h = sh_quote(host);
    let hex = format!("{port:04X}");
    format!(
        "if command -v nc >/dev/null 2>&1; then nc -z -w {connect_timeout} {h} {port} >/dev/null 2>&1 && exit 0; exit 1; fi\n\
         if command -v bash >/dev/null 2>&1; then timeout {connect_timeout} bash -c 'exec 3<>/dev/tcp/'{h}'/{port}' \
         >/dev/null 2>&1 && exit 0; exit 1; fi\n\
         case {h} in 127.*|localhost|0.0.0.0|::1) \
         awk 'NR > 1 && $4 == \"0A\" {{ split($2, a, \":\"); if (a[2] == \"{hex}\") f = 1 }} END {{ exit !f }}' \
         /proc/net/tcp /proc/net/tcp6 2>/dev/null && exit 0; exit 1;; esac\n\
         exit 2"
    )
}

#[async_trait]
impl Module for WaitFor {
    type Params = WaitForParams;
    type State = WaitResult;
    const NAME: &'static str = "wait_for";

    fn doc(&self) -> Doc {
        Doc {
            description: "Wait until a TCP port accepts connections (`state: started`) or refuses them \
                          (`stopped`), or a file exists (`present`, optionally holding `search_regex`) or is \
                          gone (`absent`), looking every `sleep` seconds for up to `timeout`. The host makes \
                          the connection (with `nc`, or bash's /dev/tcp, or for a local address its table of \
                          listening sockets). Never changes anything, and waits in check mode too. With no \
                          port and no path it waits `timeout` seconds. Result: `elapsed`, and the regex's \
                          `match_groups` and `match_groupdict`. `drained` and `exclude_hosts` are not \
                          supported.",
            examples: r#"- name: The storage VM's iSCSI portal answers before the Pis boot
  wait_for:
    host: 10.99.0.1
    port: 3260
    timeout: 120

- name: The initramfs is written
  wait_for:
    path: /boot/initramfs-linux.img
"#,
        }
    }

    fn validate(&self, p: &WaitForParams) -> Result<(), String> {
        if p.port.is_some() && p.path.is_some() {
            return Err("port and path parameter can not both be passed to wait_for".into());
        }
        if p.search_regex.is_some() && p.path.is_none() {
            return Err("search_regex is only supported with path here (not with port)".into());
        }
        if p.path.is_some() && p.search_regex.is_some() && !p.started() {
            return Err("state=absent/stopped should not be used with search_regex".into());
        }
        if let Some(r) = &p.search_regex {
            PyRegex::new(r, Flags { multiline: true, ..Flags::default() })
                .map_err(|e| format!("invalid search_regex: {e}"))?;
        }
        Ok(())
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &WaitForParams, host: &ReadHost) -> Result<WaitResult, ModuleError> {
        self.validate(p).map_err(ModuleError::new)?;
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(p.delay)).await;
        let deadline = t0 + Duration::from_secs(p.delay + p.timeout);
        let re = p
            .search_regex
            .as_deref()
            .map(|r| PyRegex::new(r, Flags { multiline: true, ..Flags::default() }))
            .transpose()
            .map_err(ModuleError::new)?;
        let done = |groups: Vec<Value>, named: Map<String, Value>| WaitResult {
            elapsed: t0.elapsed().as_secs(),
            groups,
            named,
        };
        loop {
            if let Some(path) = &p.path {
                let exists = host.stat(path).await?.is_some();
                match (p.started(), exists, &re) {
                    (true, true, None) | (false, false, _) => return Ok(done(vec![], Map::new())),
                    (true, true, Some(re)) => {
                        let text = host.read_file(path).await?.map(|b| String::from_utf8_lossy(&b).into_owned());
                        if let Some(c) = re.captures(&text.unwrap_or_default()).map_err(ModuleError::new)? {
                            let groups = (1..c.len()).map(|i| json!(c.get(i).map(|m| m.as_str()))).collect();
                            let named = re
                                .capture_names()
                                .into_iter()
                                .map(|n| (n.clone(), json!(c.name(&n).map(|m| m.as_str()))))
                                .collect();
                            return Ok(done(groups, named));
                        }
                    }
                    _ => {}
                }
            } else if let Some(port) = p.port {
                let out = host.query_sh(port_script(&p.host, port, p.connect_timeout)).await?;
                match (out.rc, p.started()) {
                    (0, true) | (1, false) => return Ok(done(vec![], Map::new())),
                    (2, _) => {
                        return Err(ModuleError::new(format!(
                            "cannot test {}:{port} from the host: it has neither nc nor bash (only a local port can \
                             be checked without them)",
                            p.host
                        )));
                    }
                    _ => {}
                }
            } else if Instant::now() >= deadline {
                return Ok(done(vec![], Map::new()));
            }
            if Instant::now() >= deadline {
                let what = match (&p.path, p.port, &p.search_regex) {
                    (Some(path), _, Some(r)) => format!("Timeout when waiting for search string {r} in {path}"),
                    (Some(path), _, None) if p.started() => format!("Timeout when waiting for file {path}"),
                    (Some(path), _, None) => format!("Timeout when waiting for {path} to be absent."),
                    (None, Some(port), _) if p.started() => format!("Timeout when waiting for {}:{port}", p.host),
                    (None, Some(port), _) => format!("Timeout when waiting for {}:{port} to stop.", p.host),
                    _ => "Timeout".into(),
                };
                let mut data = Map::new();
                data.insert("elapsed".into(), json!(t0.elapsed().as_secs()));
                return Err(ModuleError::new(p.msg.clone().unwrap_or(what)).with_data(data));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(Duration::from_secs(p.sleep.max(1)).min(left)).await;
        }
    }

    fn plan(&self, _p: &WaitForParams, _st: &WaitResult) -> Result<Plan, ModuleError> {
        Ok(Plan::empty())
    }

    fn data(&self, p: &WaitForParams, st: &WaitResult) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("elapsed".into(), json!(st.elapsed));
        m.insert("state".into(), json!(if p.started() { "started" } else { "stopped" }));
        if let Some(path) = &p.path {
            m.insert("path".into(), json!(path));
        }
        if let Some(port) = p.port {
            m.insert("port".into(), json!(port));
        }
        if p.search_regex.is_some() {
            m.insert("match_groups".into(), Value::Array(st.groups.clone()));
            m.insert("match_groupdict".into(), Value::Object(st.named.clone()));
        }
        m
    }
}
