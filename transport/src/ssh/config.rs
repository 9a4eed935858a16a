//! A reader for OpenSSH client configuration (`~/.ssh/config`, `-F FILE`).
//!
//! Covers what pbr uses: `Host` blocks (globs, `!negation`), `Match all`, `Include`, and the
//! keywords listed in [`HostConfig`]. As in OpenSSH the first value found for a keyword wins,
//! except `IdentityFile`, whose values accumulate.

use std::path::{Path, PathBuf};

/// Settings that apply to one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostConfig {
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    /// Raw values (before `~` and `%` expansion); see [`expand_path`].
    pub identity_files: Vec<String>,
    pub identities_only: Option<bool>,
    pub proxy_jump: Option<String>,
    pub connect_timeout: Option<u64>,
    pub server_alive_interval: Option<u64>,
    pub user_known_hosts_files: Option<Vec<String>>,
    pub strict_host_key_checking: Option<String>,
}

impl HostConfig {
    /// Fill what is unset from `other` (which comes later in precedence).
    pub fn merge(&mut self, other: HostConfig) {
        macro_rules! fill {
            ($($f:ident),*) => { $( if self.$f.is_none() { self.$f = other.$f; } )* };
        }
        fill!(
            hostname,
            user,
            port,
            identities_only,
            proxy_jump,
            connect_timeout,
            server_alive_interval,
            user_known_hosts_files,
            strict_host_key_checking
        );
        for f in other.identity_files {
            if !self.identity_files.contains(&f) {
                self.identity_files.push(f);
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Block {
    /// `None` matches every host (the part before the first `Host`, or `Match all`).
    patterns: Option<Vec<String>>,
    entries: Vec<(String, Vec<String>, String)>,
}

/// A parsed configuration file (with its includes).
#[derive(Debug, Clone, Default)]
pub struct SshConfig {
    blocks: Vec<Block>,
}

impl SshConfig {
    /// Add the blocks of `other` after these (lower precedence).
    pub fn append(&mut self, other: SshConfig) {
        self.blocks.extend(other.blocks);
    }

    /// Read a file; a missing file is an empty configuration.
    pub fn load(path: &Path) -> Result<SshConfig, String> {
        let mut cfg = SshConfig::default();
        match std::fs::read_to_string(path) {
            Ok(text) => cfg.parse_into(&text, path, 0, None)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        }
        Ok(cfg)
    }

    pub fn parse(text: &str, origin: &Path) -> Result<SshConfig, String> {
        let mut cfg = SshConfig::default();
        cfg.parse_into(text, origin, 0, None)?;
        Ok(cfg)
    }

    fn parse_into(
        &mut self,
        text: &str,
        origin: &Path,
        depth: usize,
        initial: Option<Vec<String>>,
    ) -> Result<(), String> {
        if depth > 8 {
            return Err(format!("{}: Include nested too deeply", origin.display()));
        }
        self.blocks.push(Block { patterns: initial, entries: Vec::new() });
        for (i, raw) in text.lines().enumerate() {
            let at = || format!("{}:{}", origin.display(), i + 1);
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, rest) = split_keyword(line);
            let args = split_args(rest).map_err(|e| format!("{}: {e}", at()))?;
            let key = key.to_ascii_lowercase();
            match key.as_str() {
                "host" => {
                    if args.is_empty() {
                        return Err(format!("{}: Host needs at least one pattern", at()));
                    }
                    self.blocks.push(Block { patterns: Some(args), entries: Vec::new() });
                }
                "match" => {
                    // Only `Match all` is understood; other criteria never match.
                    let all = args.len() == 1 && args[0].eq_ignore_ascii_case("all");
                    let patterns = if all { None } else { Some(Vec::new()) };
                    self.blocks.push(Block { patterns, entries: Vec::new() });
                }
                "include" => {
                    for a in &args {
                        let pat = expand_tilde(a);
                        let pat = if Path::new(&pat).is_absolute() {
                            pat
                        } else {
                            home_dir().join(".ssh").join(&pat).to_string_lossy().into_owned()
                        };
                        let mut files: Vec<PathBuf> = glob::glob(&pat)
                            .map_err(|e| format!("{}: bad Include pattern {a}: {e}", at()))?
                            .filter_map(Result::ok)
                            .collect();
                        files.sort();
                        let patterns = self.blocks.last().and_then(|b| b.patterns.clone());
                        for f in files {
                            let t = std::fs::read_to_string(&f)
                                .map_err(|e| format!("{}: cannot read {}: {e}", at(), f.display()))?;
                            self.parse_into(&t, &f, depth + 1, patterns.clone())?;
                        }
                        // back to the block the Include appeared in
                        self.blocks.push(Block { patterns: patterns.clone(), entries: Vec::new() });
                    }
                }
                _ => {
                    if let Some(b) = self.blocks.last_mut() {
                        b.entries.push((key, args, at()));
                    }
                }
            }
        }
        Ok(())
    }

    /// The settings for `host` (the name as given on the command line or inventory).
    pub fn query(&self, host: &str) -> Result<HostConfig, String> {
        let mut c = HostConfig::default();
        for b in &self.blocks {
            if let Some(p) = &b.patterns
                && !host_matches(host, p)
            {
                continue;
            }
            for (k, args, at) in &b.entries {
                let first = args.first().map(String::as_str).unwrap_or("");
                let num = |what: &str| -> Result<u64, String> {
                    first.parse::<u64>().map_err(|_| format!("{at}: {what} needs a number, got `{first}`"))
                };
                match k.as_str() {
                    "hostname" if c.hostname.is_none() => c.hostname = Some(first.to_string()),
                    "user" if c.user.is_none() => c.user = Some(first.to_string()),
                    "port" if c.port.is_none() => {
                        c.port = Some(first.parse().map_err(|_| format!("{at}: bad Port `{first}`"))?)
                    }
                    "identityfile" if !c.identity_files.iter().any(|f| f == first) => {
                        c.identity_files.push(first.to_string())
                    }
                    "identitiesonly" if c.identities_only.is_none() => c.identities_only = Some(yes(first)),
                    "proxyjump" if c.proxy_jump.is_none() => c.proxy_jump = Some(args.join(",")),
                    "connecttimeout" if c.connect_timeout.is_none() => c.connect_timeout = Some(num("ConnectTimeout")?),
                    "serveraliveinterval" if c.server_alive_interval.is_none() => {
                        c.server_alive_interval = Some(num("ServerAliveInterval")?)
                    }
                    "userknownhostsfile" if c.user_known_hosts_files.is_none() => {
                        c.user_known_hosts_files = Some(args.clone())
                    }
                    "stricthostkeychecking" if c.strict_host_key_checking.is_none() => {
                        c.strict_host_key_checking = Some(first.to_ascii_lowercase())
                    }
                    _ => {}
                }
            }
        }
        Ok(c)
    }
}

fn yes(s: &str) -> bool {
    matches!(s.to_ascii_lowercase().as_str(), "yes" | "true")
}

fn split_keyword(line: &str) -> (&str, &str) {
    let end = line.find(|c: char| c.is_whitespace() || c == '=').unwrap_or(line.len());
    let key = &line[..end];
    let rest = line[end..].trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim_start();
    (key, rest)
}

fn split_args(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_arg = false;
    let mut quote = false;
    for ch in s.chars() {
        match ch {
            '"' => {
                quote = !quote;
                in_arg = true;
            }
            c if c.is_whitespace() && !quote => {
                if in_arg {
                    out.push(std::mem::take(&mut cur));
                    in_arg = false;
                }
            }
            '#' if !quote && !in_arg => break,
            c => {
                cur.push(c);
                in_arg = true;
            }
        }
    }
    if quote {
        return Err("unterminated quote".into());
    }
    if in_arg {
        out.push(cur);
    }
    Ok(out)
}

/// OpenSSH host matching: any positive pattern matches and no negated one does.
pub fn host_matches(host: &str, patterns: &[String]) -> bool {
    let mut hit = false;
    for p in patterns {
        for p in p.split(',') {
            if let Some(neg) = p.strip_prefix('!') {
                if glob_match(neg, host) {
                    return false;
                }
            } else if glob_match(p, host) {
                hit = true;
            }
        }
    }
    hit
}

/// `*` and `?` wildcards, ASCII case-insensitive (host names).
pub fn glob_match(pat: &str, s: &str) -> bool {
    let p: Vec<u8> = pat.bytes().map(|b| b.to_ascii_lowercase()).collect();
    let t: Vec<u8> = s.bytes().map(|b| b.to_ascii_lowercase()).collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(sp) = star {
            pi = sp + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

pub(crate) fn home_dir() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"))
}

pub(crate) fn expand_tilde(s: &str) -> String {
    if s == "~" {
        return home_dir().to_string_lossy().into_owned();
    }
    match s.strip_prefix("~/") {
        Some(rest) => home_dir().join(rest).to_string_lossy().into_owned(),
        None => s.to_string(),
    }
}

/// Expand `~` and the tokens `%h` (host name), `%p` (port), `%r` (remote user), `%u` (local
/// user), `%d` (home) and `%%` in a path from the configuration.
pub fn expand_path(s: &str, host: &str, port: u16, ruser: &str) -> PathBuf {
    let s = expand_tilde(s);
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('h') => out.push_str(host),
            Some('p') => out.push_str(&port.to_string()),
            Some('r') => out.push_str(ruser),
            Some('u') => out.push_str(&std::env::var("USER").unwrap_or_else(|_| "root".into())),
            Some('d') => out.push_str(&home_dir().to_string_lossy()),
            Some('%') => out.push('%'),
            Some(o) => {
                out.push('%');
                out.push(o);
            }
            None => out.push('%'),
        }
    }
    PathBuf::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*.example.com", "a.example.com"));
        assert!(!glob_match("*.example.com", "example.com"));
        assert!(glob_match("pi?", "pi3"));
        assert!(glob_match("*", "x"));
        assert!(host_matches("web1", &["web*".into(), "!web2".into()]));
        assert!(!host_matches("web2", &["web*".into(), "!web2".into()]));
        assert!(!host_matches("db", &["web*".into()]));
    }

    #[test]
    fn first_value_wins_and_identity_accumulates() {
        let text = "\
# comment
Port 2200
Host pi* !pi9
  HostName %h.lan
  User=alice
  IdentityFile ~/.ssh/pi_key
  ProxyJump bastion,jump2:2222
  ServerAliveInterval 15
Host pi1
  User bob
  IdentityFile \"/keys/with space\"
Host *
  User carol
  IdentityFile ~/.ssh/id_ed25519
  StrictHostKeyChecking accept-new
  UserKnownHostsFile /a /b
";
        let c = SshConfig::parse(text, Path::new("cfg")).unwrap();
        let q = c.query("pi1").unwrap();
        assert_eq!(q.hostname.as_deref(), Some("%h.lan"));
        assert_eq!(q.user.as_deref(), Some("alice"));
        assert_eq!(q.port, Some(2200));
        assert_eq!(q.identity_files, vec!["~/.ssh/pi_key", "/keys/with space", "~/.ssh/id_ed25519"]);
        assert_eq!(q.proxy_jump.as_deref(), Some("bastion,jump2:2222"));
        assert_eq!(q.server_alive_interval, Some(15));
        assert_eq!(q.strict_host_key_checking.as_deref(), Some("accept-new"));
        assert_eq!(q.user_known_hosts_files, Some(vec!["/a".to_string(), "/b".to_string()]));
        let q9 = c.query("pi9").unwrap();
        assert_eq!(q9.user.as_deref(), Some("carol"));
        assert_eq!(q9.proxy_jump, None);
        assert!(SshConfig::parse("Host a\n Port x\n", Path::new("f")).unwrap().query("a").unwrap_err().contains("f:2"));
        assert!(SshConfig::parse("Host\n", Path::new("f")).is_err());
    }

    #[test]
    fn tokens() {
        let p = expand_path("/k/%r@%h:%p-%%", "h", 22, "u");
        assert_eq!(p, PathBuf::from("/k/u@h:22-%"));
    }
}
