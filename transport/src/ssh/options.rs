//! Connection settings for one host: Ansible's inventory variables over `~/.ssh/config`.

use super::config::{SshConfig, expand_path, home_dir};
use pbr_core::host::Secret;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What to do with a server key that `known_hosts` does not confirm (OpenSSH's
/// `StrictHostKeyChecking`). A changed key is refused in every mode but `Off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyChecking {
    /// Refuse unknown hosts (the default).
    Yes,
    /// Record unknown hosts in the first known_hosts file.
    AcceptNew,
    /// Accept any key.
    Off,
}

impl HostKeyChecking {
    /// `yes|accept-new|off` and OpenSSH's/Ansible's spellings (`no`, `false`, `ask`, `true`).
    pub fn parse(s: &str) -> Option<HostKeyChecking> {
        match s.trim().to_ascii_lowercase().as_str() {
            "yes" | "true" | "ask" | "1" | "on" | "strict" => Some(HostKeyChecking::Yes),
            "accept-new" | "accept_new" => Some(HostKeyChecking::AcceptNew),
            "off" | "no" | "false" | "0" | "none" => Some(HostKeyChecking::Off),
            _ => None,
        }
    }
}

/// How commands are run on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecMode {
    /// A fresh `exec` channel per command.
    Channel,
    /// Commands framed through one long-lived `sh` per host (commands with stdin, and those
    /// issued while the shell is busy, still get their own channel).
    Shell,
}

impl ExecMode {
    pub const DEFAULT: ExecMode = ExecMode::Shell;

    pub fn parse(s: &str) -> Option<ExecMode> {
        match s {
            "channel" => Some(ExecMode::Channel),
            "shell" => Some(ExecMode::Shell),
            _ => None,
        }
    }
}

/// Asks for a key's passphrase (the CLI supplies one when it has a terminal).
pub type PassphrasePrompt = Arc<dyn Fn(&Path) -> Option<String> + Send + Sync>;

/// Settings for the whole run (command line).
#[derive(Clone)]
pub struct SshGlobals {
    /// `-F FILE`: read this file instead of `~/.ssh/config` and `/etc/ssh/ssh_config`.
    pub ssh_config: Option<PathBuf>,
    /// `--host-key-checking`: wins over everything else.
    pub host_key_checking: Option<HostKeyChecking>,
    /// Use only this known_hosts file (tests, sandboxes).
    pub known_hosts: Option<PathBuf>,
    /// Default connect timeout (10 s).
    pub connect_timeout: Duration,
    pub passphrase_prompt: Option<PassphrasePrompt>,
    /// Override the execution strategy.
    pub exec_mode: Option<ExecMode>,
}

impl Default for SshGlobals {
    fn default() -> SshGlobals {
        SshGlobals {
            ssh_config: None,
            host_key_checking: None,
            known_hosts: None,
            connect_timeout: Duration::from_secs(10),
            passphrase_prompt: None,
            exec_mode: None,
        }
    }
}

impl std::fmt::Debug for SshGlobals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshGlobals")
            .field("ssh_config", &self.ssh_config)
            .field("host_key_checking", &self.host_key_checking)
            .field("known_hosts", &self.known_hosts)
            .field("connect_timeout", &self.connect_timeout)
            .field("exec_mode", &self.exec_mode)
            .finish()
    }
}

/// One `ProxyJump` hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpHost {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Empty: use the target's identity files.
    pub identity_files: Vec<PathBuf>,
}

/// Everything needed to reach one host.
#[derive(Clone)]
pub struct SshOptions {
    /// Inventory name (for messages).
    pub name: String,
    /// Address to connect to (after `ansible_host` and `HostName`).
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Tried in order after the agent.
    pub identity_files: Vec<PathBuf>,
    /// Use only agent keys matching `identity_files` (their `.pub` files).
    pub identities_only: bool,
    /// `SSH_AUTH_SOCK`.
    pub agent_socket: Option<PathBuf>,
    /// Only tried when given.
    pub password: Option<Secret>,
    /// Passphrase for encrypted keys (else env `PBR_SSH_KEY_PASSPHRASE`, else the prompt).
    pub key_passphrase: Option<Secret>,
    pub passphrase_prompt: Option<PassphrasePrompt>,
    pub proxy_jump: Vec<JumpHost>,
    pub connect_timeout: Duration,
    pub server_alive_interval: Option<Duration>,
    /// Files read for host keys; `accept-new` appends to the first.
    pub known_hosts: Vec<PathBuf>,
    pub host_key_checking: HostKeyChecking,
    pub exec_mode: ExecMode,
    /// How many more times to try making a lost connection again (with a doubling delay from
    /// 1 s) before the host is unreachable: `ansible_ssh_retries`, else `PBR_SSH_RETRIES` or
    /// `ANSIBLE_SSH_RETRIES`, else [`DEFAULT_RECONNECT_RETRIES`]. The first connection is tried
    /// once.
    pub reconnect_retries: u32,
}

/// Tries after the first to make a lost connection again: 1 s + 2 s + 4 s of waiting.
pub const DEFAULT_RECONNECT_RETRIES: u32 = 3;

impl std::fmt::Debug for SshOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshOptions")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("identity_files", &self.identity_files)
            .field("identities_only", &self.identities_only)
            .field("agent_socket", &self.agent_socket)
            .field("password", &self.password)
            .field("proxy_jump", &self.proxy_jump)
            .field("connect_timeout", &self.connect_timeout)
            .field("server_alive_interval", &self.server_alive_interval)
            .field("known_hosts", &self.known_hosts)
            .field("host_key_checking", &self.host_key_checking)
            .field("exec_mode", &self.exec_mode)
            .field("reconnect_retries", &self.reconnect_retries)
            .finish()
    }
}

fn default_known_hosts() -> Vec<PathBuf> {
    let ssh = home_dir().join(".ssh");
    vec![ssh.join("known_hosts"), ssh.join("known_hosts2"), PathBuf::from("/etc/ssh/ssh_known_hosts")]
}

fn local_user() -> String {
    std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "root".into())
}

impl SshOptions {
    /// Plain settings for `user@host:port`, reading no configuration: agent from
    /// `SSH_AUTH_SOCK`, no key files, `~/.ssh/known_hosts`, strict host key checking.
    pub fn new(host: impl Into<String>, port: u16, user: impl Into<String>) -> SshOptions {
        let host = host.into();
        SshOptions {
            name: host.clone(),
            host,
            port,
            user: user.into(),
            identity_files: Vec::new(),
            identities_only: false,
            agent_socket: std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty()).map(PathBuf::from),
            password: None,
            key_passphrase: None,
            passphrase_prompt: None,
            proxy_jump: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            server_alive_interval: None,
            known_hosts: default_known_hosts(),
            host_key_checking: HostKeyChecking::Yes,
            exec_mode: ExecMode::DEFAULT,
            reconnect_retries: DEFAULT_RECONNECT_RETRIES,
        }
    }

    /// Settings for an inventory host from its variables (`ansible_host`, `ansible_port`,
    /// `ansible_user`, `ansible_ssh_private_key_file`, `ansible_password`/`ansible_ssh_pass`,
    /// `ansible_ssh_common_args`/`ansible_ssh_extra_args` (`-J`, `-o Key=Value`),
    /// `ansible_host_key_checking`, `ansible_ssh_timeout`), over ssh_config's.
    pub fn from_vars(inventory_name: &str, vars: &Map<String, Value>, g: &SshGlobals) -> Result<SshOptions, String> {
        let at = |k: &str| format!("host {inventory_name}: {k}");
        let cfg = match &g.ssh_config {
            Some(p) => {
                if !p.exists() {
                    return Err(format!("ssh config file {} does not exist", p.display()));
                }
                SshConfig::load(p)?
            }
            None => {
                let mut c = SshConfig::load(&home_dir().join(".ssh").join("config"))?;
                c.append(SshConfig::load(Path::new("/etc/ssh/ssh_config"))?);
                c
            }
        };
        // `-o` options from the ssh arguments act like a config block that comes first
        let mut args = String::new();
        for k in ["ansible_ssh_common_args", "ansible_ssh_extra_args"] {
            if let Some(v) = var_str(vars, k).map_err(|e| at(&e))? {
                args.push_str(&v);
                args.push('\n');
            }
        }
        let arg_cfg =
            SshConfig::parse(&args_to_config(&args).map_err(|e| at(&e))?, Path::new("ansible_ssh_common_args"))?;

        let alias = var_str(vars, "ansible_host").map_err(|e| at(&e))?.unwrap_or_else(|| inventory_name.to_string());
        let mut hc = arg_cfg.query(&alias)?;
        hc.merge(cfg.query(&alias)?);

        let port = match var_u64(vars, &["ansible_port", "ansible_ssh_port"]).map_err(|e| at(&e))? {
            Some(p) => u16::try_from(p).map_err(|_| at(&format!("ansible_port {p} is out of range")))?,
            None => hc.port.unwrap_or(22),
        };
        let user = var_str_any(vars, &["ansible_user", "ansible_ssh_user", "ansible_remote_user"])
            .map_err(|e| at(&e))?
            .or_else(|| hc.user.clone())
            .unwrap_or_else(local_user);
        let host = hc.hostname.as_deref().map(|h| h.replace("%h", &alias)).unwrap_or_else(|| alias.clone());

        let mut identity_files = Vec::new();
        if let Some(k) =
            var_str_any(vars, &["ansible_ssh_private_key_file", "ansible_private_key_file"]).map_err(|e| at(&e))?
        {
            identity_files.push(expand_path(&k, &host, port, &user));
        }
        for f in &hc.identity_files {
            let p = expand_path(f, &host, port, &user);
            if !identity_files.contains(&p) {
                identity_files.push(p);
            }
        }
        if identity_files.is_empty() {
            let ssh = home_dir().join(".ssh");
            identity_files = ["id_ed25519", "id_ecdsa", "id_rsa"].iter().map(|n| ssh.join(n)).collect();
        }

        let password = var_str_any(vars, &["ansible_password", "ansible_ssh_pass", "ansible_ssh_password"])
            .map_err(|e| at(&e))?
            .map(Secret::new);

        let mut proxy_jump = Vec::new();
        if let Some(pj) = &hc.proxy_jump
            && !pj.eq_ignore_ascii_case("none")
        {
            for hop in pj.split(',').map(str::trim).filter(|h| !h.is_empty()) {
                proxy_jump.push(resolve_hop(hop, &cfg, &user).map_err(|e| at(&e))?);
            }
        }

        let connect_timeout = match var_u64(vars, &["ansible_ssh_timeout", "ansible_timeout"]).map_err(|e| at(&e))? {
            Some(s) => Duration::from_secs(s),
            None => hc.connect_timeout.map(Duration::from_secs).unwrap_or(g.connect_timeout),
        };
        let reconnect_retries = match var_u64(vars, &["ansible_ssh_retries"]).map_err(|e| at(&e))? {
            Some(n) => n,
            None => match ["PBR_SSH_RETRIES", "ANSIBLE_SSH_RETRIES"]
                .iter()
                .find_map(|k| std::env::var(k).ok().map(|v| (k, v)))
            {
                Some((k, v)) => v.trim().parse().map_err(|_| format!("{k}: bad value `{v}` (a number of retries)"))?,
                None => u64::from(DEFAULT_RECONNECT_RETRIES),
            },
        };
        // bounded: a lost host must not hold the run for minutes
        let reconnect_retries = reconnect_retries.min(10) as u32;
        let server_alive_interval = hc.server_alive_interval.filter(|s| *s > 0).map(Duration::from_secs);

        let known_hosts = match (&g.known_hosts, &hc.user_known_hosts_files) {
            (Some(k), _) => vec![k.clone()],
            (None, Some(files)) => {
                let mut v: Vec<PathBuf> = files.iter().map(|f| expand_path(f, &host, port, &user)).collect();
                v.push(PathBuf::from("/etc/ssh/ssh_known_hosts"));
                v
            }
            (None, None) => default_known_hosts(),
        };

        let host_key_checking = if let Some(m) = g.host_key_checking {
            m
        } else if let Some(v) = vars.get("ansible_host_key_checking") {
            let s = match v {
                Value::Bool(b) => b.to_string(),
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => String::new(),
            };
            HostKeyChecking::parse(&s).ok_or_else(|| at(&format!("ansible_host_key_checking: bad value `{s}`")))?
        } else if let Ok(s) = std::env::var("PBR_HOST_KEY_CHECKING") {
            HostKeyChecking::parse(&s)
                .ok_or_else(|| format!("PBR_HOST_KEY_CHECKING: bad value `{s}` (yes|accept-new|off)"))?
        } else if let Ok(s) = std::env::var("ANSIBLE_HOST_KEY_CHECKING") {
            HostKeyChecking::parse(&s).ok_or_else(|| format!("ANSIBLE_HOST_KEY_CHECKING: bad value `{s}`"))?
        } else if let Some(s) = &hc.strict_host_key_checking {
            HostKeyChecking::parse(s).ok_or_else(|| at(&format!("StrictHostKeyChecking: bad value `{s}`")))?
        } else {
            HostKeyChecking::Yes
        };

        let mut o = SshOptions::new(host, port, user);
        o.name = inventory_name.to_string();
        o.identity_files = identity_files;
        o.identities_only = hc.identities_only.unwrap_or(false);
        o.password = password;
        o.passphrase_prompt = g.passphrase_prompt.clone();
        o.proxy_jump = proxy_jump;
        o.connect_timeout = connect_timeout;
        o.server_alive_interval = server_alive_interval;
        o.known_hosts = known_hosts;
        o.host_key_checking = host_key_checking;
        o.exec_mode = g.exec_mode.unwrap_or(ExecMode::DEFAULT);
        o.reconnect_retries = reconnect_retries;
        Ok(o)
    }
}

/// `[user@]host[:port]` or `ssh://[user@]host[:port]`, with ssh_config applied to the host.
fn resolve_hop(spec: &str, cfg: &SshConfig, default_user: &str) -> Result<JumpHost, String> {
    let s = spec.strip_prefix("ssh://").unwrap_or(spec);
    let (user, rest) = match s.rsplit_once('@') {
        Some((u, r)) => (Some(u.to_string()), r),
        None => (None, s),
    };
    let (alias, port) = if let Some(r) = rest.strip_prefix('[') {
        let (h, after) = r.split_once(']').ok_or_else(|| format!("bad ProxyJump host `{spec}`"))?;
        (h.to_string(), after.strip_prefix(':').map(str::to_string))
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.to_string())),
            None => (rest.to_string(), None),
        }
    };
    if alias.is_empty() {
        return Err(format!("bad ProxyJump host `{spec}`"));
    }
    let hc = cfg.query(&alias)?;
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| format!("bad port in ProxyJump host `{spec}`"))?,
        None => hc.port.unwrap_or(22),
    };
    let user = user.or(hc.user.clone()).unwrap_or_else(|| default_user.to_string());
    let host = hc.hostname.as_deref().map(|h| h.replace("%h", &alias)).unwrap_or(alias);
    let identity_files = hc.identity_files.iter().map(|f| expand_path(f, &host, port, &user)).collect();
    Ok(JumpHost { host, port, user, identity_files })
}

/// Turn ssh command-line arguments into config lines: `-o K=V`, `-oK=V`, `-J HOPS`, `-p PORT`,
/// `-i FILE`, `-l USER`, and `ProxyCommand` of the form `ssh -W %h:%p [-p P] [user@]host`.
fn args_to_config(args: &str) -> Result<String, String> {
    let words = shell_words(args)?;
    let mut out = String::new();
    let mut it = words.iter().peekable();
    while let Some(w) = it.next() {
        let (flag, inline) = if w.len() > 2 && w.starts_with('-') && !w.starts_with("--") {
            (&w[..2], Some(w[2..].to_string()))
        } else {
            (w.as_str(), None)
        };
        let mut value = || inline.clone().or_else(|| it.next().cloned());
        match flag {
            "-o" => {
                let v = value().ok_or("-o needs a value")?;
                let (k, val) = match v.split_once('=') {
                    Some((k, val)) => (k.trim().to_string(), val.trim().to_string()),
                    None => match v.trim().split_once(char::is_whitespace) {
                        Some((k, val)) => (k.to_string(), val.trim().to_string()),
                        None => return Err(format!("bad -o option `{v}`")),
                    },
                };
                if k.eq_ignore_ascii_case("ProxyCommand") {
                    if let Some(hop) = proxy_command_hop(&val) {
                        out.push_str(&format!("ProxyJump {hop}\n"));
                    }
                } else {
                    out.push_str(&format!("{k} \"{val}\"\n"));
                }
            }
            "-J" => out.push_str(&format!("ProxyJump {}\n", value().ok_or("-J needs a value")?)),
            "-p" => out.push_str(&format!("Port {}\n", value().ok_or("-p needs a value")?)),
            "-i" => out.push_str(&format!("IdentityFile \"{}\"\n", value().ok_or("-i needs a value")?)),
            "-l" => out.push_str(&format!("User {}\n", value().ok_or("-l needs a value")?)),
            _ => {}
        }
    }
    Ok(out)
}

/// `ssh -W %h:%p [-q] [-p PORT] [-l USER] [user@]host` → `[user@]host[:port]`.
fn proxy_command_hop(cmd: &str) -> Option<String> {
    let w = shell_words(cmd).ok()?;
    let mut it = w.iter();
    if it.next().map(|s| s.rsplit('/').next() == Some("ssh")) != Some(true) {
        return None;
    }
    let (mut port, mut user, mut host, mut forward) = (None, None, None, false);
    while let Some(a) = it.next() {
        match a.as_str() {
            "-W" => forward = it.next().map(|s| s == "%h:%p").unwrap_or(false),
            "-p" => port = it.next().cloned(),
            "-l" => user = it.next().cloned(),
            "-q" | "-T" | "-A" | "-C" => {}
            s if s.starts_with('-') => return None,
            s if host.is_none() => host = Some(s.to_string()),
            _ => return None,
        }
    }
    let host = host?;
    if !forward {
        return None;
    }
    let mut spec = match user {
        Some(u) if !host.contains('@') => format!("{u}@{host}"),
        _ => host,
    };
    if let Some(p) = port {
        spec.push(':');
        spec.push_str(&p);
    }
    Some(spec)
}

/// Split like sh: whitespace, single and double quotes, backslash escapes.
fn shell_words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated quote in `{s}`")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => cur.extend(chars.next()),
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated quote in `{s}`")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                cur.extend(chars.next());
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

fn var_str(vars: &Map<String, Value>, k: &str) -> Result<Option<String>, String> {
    match vars.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(v) => Err(format!("{k} must be a string, got {v}")),
    }
}

fn var_str_any(vars: &Map<String, Value>, keys: &[&str]) -> Result<Option<String>, String> {
    for k in keys {
        if let Some(v) = var_str(vars, k)? {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

fn var_u64(vars: &Map<String, Value>, keys: &[&str]) -> Result<Option<u64>, String> {
    for k in keys {
        match vars.get(*k) {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) => return n.as_u64().map(Some).ok_or_else(|| format!("{k}: bad number {n}")),
            Some(Value::String(s)) => {
                return s.trim().parse().map(Some).map_err(|_| format!("{k} must be a number, got `{s}`"));
            }
            Some(v) => return Err(format!("{k} must be a number, got {v}")),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn inventory_vars_over_ssh_config() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config");
        std::fs::write(
            &cfg,
            "Host pi*\n  HostName %h.lan\n  User cfguser\n  Port 2200\n  IdentityFile /keys/%r_key\n  \
             ProxyJump jumper,admin@second:2022\n  ServerAliveInterval 20\n  UserKnownHostsFile /kh/%h\n\
             Host jumper\n  HostName 10.9.9.9\n  Port 222\n  User jumpuser\n",
        )
        .unwrap();
        let g = SshGlobals { ssh_config: Some(cfg.clone()), ..Default::default() };
        let o = SshOptions::from_vars("pi1", &vars(json!({})), &g).unwrap();
        assert_eq!((o.host.as_str(), o.port, o.user.as_str()), ("pi1.lan", 2200, "cfguser"));
        assert_eq!(o.identity_files, vec![PathBuf::from("/keys/cfguser_key")]);
        assert_eq!(o.server_alive_interval, Some(Duration::from_secs(20)));
        assert_eq!(o.known_hosts[0], PathBuf::from("/kh/pi1.lan"));
        assert_eq!(o.proxy_jump.len(), 2);
        assert_eq!(
            o.proxy_jump[0],
            JumpHost { host: "10.9.9.9".into(), port: 222, user: "jumpuser".into(), identity_files: vec![] }
        );
        assert_eq!(
            (o.proxy_jump[1].host.as_str(), o.proxy_jump[1].port, o.proxy_jump[1].user.as_str()),
            ("second", 2022, "admin")
        );

        let o = SshOptions::from_vars(
            "pi1",
            &vars(json!({"ansible_host": "192.0.2.5", "ansible_port": "2201", "ansible_user": "bob",
                         "ansible_ssh_private_key_file": "/k/id", "ansible_ssh_pass": "pw",
                         "ansible_host_key_checking": false, "ansible_ssh_timeout": 3,
                         "ansible_ssh_common_args": "-o ProxyCommand=\"ssh -W %h:%p -q ops@gw\""})),
            &g,
        )
        .unwrap();
        assert_eq!((o.host.as_str(), o.port, o.user.as_str()), ("192.0.2.5", 2201, "bob"));
        assert_eq!(o.identity_files, vec![PathBuf::from("/k/id")]);
        assert_eq!(o.password.as_ref().map(|p| p.expose()), Some("pw"));
        assert_eq!(o.host_key_checking, HostKeyChecking::Off);
        assert_eq!(o.connect_timeout, Duration::from_secs(3));
        assert_eq!(
            o.proxy_jump,
            vec![JumpHost { host: "gw".into(), port: 22, user: "ops".into(), identity_files: vec![] }]
        );
        assert!(!format!("{o:?}").contains("pw\""));

        let g2 =
            SshGlobals { host_key_checking: Some(HostKeyChecking::AcceptNew), known_hosts: Some("/t/kh".into()), ..g };
        let o = SshOptions::from_vars(
            "db",
            &vars(json!({"ansible_ssh_common_args": "-J a@b:2,c -o StrictHostKeyChecking=no"})),
            &g2,
        )
        .unwrap();
        assert_eq!(o.host_key_checking, HostKeyChecking::AcceptNew);
        assert_eq!(o.known_hosts, vec![PathBuf::from("/t/kh")]);
        assert_eq!(
            o.proxy_jump.iter().map(|j| (j.host.as_str(), j.port)).collect::<Vec<_>>(),
            vec![("b", 2), ("c", 22)]
        );
        assert!(SshOptions::from_vars("x", &vars(json!({"ansible_port": "abc"})), &g2).unwrap_err().contains("host x"));
        assert!(SshOptions::from_vars("x", &vars(json!({"ansible_port": 70000})), &g2).is_err());
    }

    #[test]
    fn modes() {
        assert_eq!(HostKeyChecking::parse("False"), Some(HostKeyChecking::Off));
        assert_eq!(HostKeyChecking::parse("accept-new"), Some(HostKeyChecking::AcceptNew));
        assert_eq!(HostKeyChecking::parse("maybe"), None);
        assert_eq!(proxy_command_hop("ssh -W %h:%p -p 2222 gw"), Some("gw:2222".into()));
        assert_eq!(proxy_command_hop("nc %h %p"), None);
    }
}
