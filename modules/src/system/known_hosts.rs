//! `known_hosts`: a host's key in an SSH `known_hosts` file, as Ansible's `known_hosts` keeps it
//! (the host's lines found with the host's own `ssh-keygen -F`).

use async_trait::async_trait;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use pbr_core::params::Presence;
use pbr_core::params::bool_lenient;
use pbr_core::{Change, Ctx, Diff, Doc, Module, ModuleError, Op, Plan, ReadHost, sh_quote};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha1::Sha1;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KnownHostsParams {
    /// The host (`storage.lan`, or `[storage.lan]:2222` for another port).
    #[serde(alias = "host")]
    pub name: String,
    /// The line to keep (`storage.lan ssh-ed25519 AAAA...`, as `ssh-keyscan` prints it); its
    /// host field must name `name`. Required with `state: present`.
    #[serde(default)]
    pub key: Option<String>,
    /// The file (default `~/.ssh/known_hosts` of the user pbr logs in as).
    #[serde(default)]
    pub path: Option<String>,
    /// Write the host name hashed (`|1|salt|hash`), as `HashKnownHosts yes` does.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub hash_host: bool,
    /// `present` keeps the key (replacing one of the same type); `absent` removes the host's
    /// key of that type, or all of the host's lines without `key`.
    #[serde(default)]
    pub state: Presence,
}

/// A known_hosts line's parts that Ansible compares: marker, host field, key type, key.
fn normalize(line: &str) -> Option<(Option<String>, String, String, String)> {
    let mut f = line.split_whitespace();
    let mut first = f.next()?;
    let marker = if first.starts_with('@') {
        let m = first.to_string();
        first = f.next()?;
        Some(m)
    } else {
        None
    };
    Some((marker, first.to_string(), f.next()?.to_string(), f.next()?.to_string()))
}

/// `|1|salt|hash` for `host`.
fn hashed(host: &str, salt: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(salt).expect("HMAC takes any key length");
    mac.update(host.as_bytes());
    format!("|1|{}|{}", b64.encode(salt), b64.encode(mac.finalize().into_bytes()))
}

/// Does the host field of a key line name `host` (a name in its list, or its hash)?
fn names(field: &str, host: &str) -> bool {
    if let Some(rest) = field.strip_prefix("|1|") {
        let b64 = base64::engine::general_purpose::STANDARD;
        let Some((salt, _)) = rest.split_once('|') else { return false };
        return b64.decode(salt).is_ok_and(|s| hashed(host, &s) == field);
    }
    field.split(',').any(|h| h.eq_ignore_ascii_case(host))
}

pub struct KnownHosts;

pub struct KnownState {
    path: String,
    text: Option<String>,
    /// `ssh-keygen -F` output lines: (line number, the line).
    found: Vec<(usize, String)>,
    salt: [u8; 20],
}

/// The new file (None: nothing to do), as Ansible's module decides it.
fn edit(p: &KnownHostsParams, st: &KnownState) -> Option<String> {
    let host = p.name.to_lowercase();
    let text = st.text.as_deref().unwrap_or("");
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let key = p.key.as_deref().map(|k| {
        let k = k.trim_end_matches('\n');
        if p.hash_host {
            // the host field hashed, the rest as given
            let (marker, rest) = match k.split_once(char::is_whitespace) {
                Some((m, r)) if m.starts_with('@') => (format!("{m} "), r.trim_start()),
                _ => (String::new(), k),
            };
            let after = rest.split_once(char::is_whitespace).map(|(_, r)| r).unwrap_or("");
            format!("{marker}{} {after}\n", hashed(&host, &st.salt))
        } else {
            format!("{k}\n")
        }
    });
    let Some(key) = key else {
        // absent, no key: every line of the host goes (ssh-keygen -R)
        if st.found.is_empty() || p.state == Presence::Present {
            return None;
        }
        let drop: Vec<usize> = st.found.iter().map(|(n, _)| *n).collect();
        return Some(lines.iter().enumerate().filter(|(i, _)| !drop.contains(&(i + 1))).map(|(_, l)| *l).collect());
    };
    let mut new = normalize(&key)?;
    let mut same_type_line = None;
    let mut exact = false;
    for (n, l) in &st.found {
        let Some(f) = normalize(l) else { continue };
        if new.1.starts_with("|1|") && f.1.starts_with("|1|") {
            new.1.clone_from(&f.1);
        }
        if new == f {
            exact = true;
            same_type_line = Some(*n);
            break;
        } else if new.2 == f.2 {
            same_type_line = Some(*n);
            break;
        }
    }
    let found = !st.found.is_empty();
    let replace_or_add = found && !exact;
    match p.state {
        Presence::Absent if same_type_line.is_none() => None,
        Presence::Absent => {
            let skip = same_type_line;
            Some(lines.iter().enumerate().filter(|(i, _)| Some(i + 1) != skip).map(|(_, l)| *l).collect())
        }
        Presence::Present if found && !replace_or_add => None,
        Presence::Present => {
            let skip = if replace_or_add { same_type_line } else { None };
            let mut out: String =
                lines.iter().enumerate().filter(|(i, _)| Some(i + 1) != skip).map(|(_, l)| *l).collect();
            out.push_str(&key);
            Some(out)
        }
    }
}

#[async_trait]
impl Module for KnownHosts {
    type Params = KnownHostsParams;
    type State = KnownState;
    const NAME: &'static str = "known_hosts";

    fn doc(&self) -> Doc {
        Doc {
            description: "Keep a host's key in a `known_hosts` file, or remove it: the host's lines are found \
                          with the host's own `ssh-keygen -F` (plain and hashed names), a key of the same type \
                          that differs is replaced, a new one is added at the end, as Ansible's `known_hosts` \
                          does (without the `.old` copy `ssh-keygen -R` leaves). A missing directory of the file is \
                          made (Ansible fails there).",
            examples: r#"- name: The Pis trust the storage VM's key
  known_hosts:
    name: storage.lan
    key: "storage.lan ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    path: /etc/ssh/ssh_known_hosts
"#,
        }
    }

    fn validate(&self, p: &KnownHostsParams) -> Result<(), String> {
        if p.name.contains(',') {
            return Err(
                "Comma separated list of names is not supported. Please pass a single name to lookup in the known_hosts file."
                    .into(),
            );
        }
        match &p.key {
            None if p.state == Presence::Present => Err("No key specified when adding a host".into()),
            Some(k) => {
                let Some((_, field, _, _)) = normalize(k) else {
                    return Err(format!("not a known_hosts line: {k}"));
                };
                if names(&field, &p.name.to_lowercase()) {
                    Ok(())
                } else {
                    Err("Host parameter does not match hashed host field in supplied key".into())
                }
            }
            None => Ok(()),
        }
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &KnownHostsParams, host: &ReadHost) -> Result<KnownState, ModuleError> {
        self.validate(p).map_err(ModuleError::new)?;
        let path = match &p.path {
            Some(path) => path.clone(),
            None => format!("{}/.ssh/known_hosts", host.query_sh("printf %s \"$HOME\"").await?.stdout_str()),
        };
        let text = host.read_file(&path).await?.map(|b| String::from_utf8_lossy(&b).into_owned());
        let mut found = vec![];
        if text.is_some() {
            let out = host
                .query_sh(format!("ssh-keygen -F {} -f {}", sh_quote(&p.name.to_lowercase()), sh_quote(&path)))
                .await?;
            if out.rc > 1 || (out.rc == 1 && !out.stderr.is_empty()) {
                return Err(ModuleError::new(format!(
                    "ssh-keygen failed (rc={}): {}",
                    out.rc,
                    out.stderr_str().trim()
                )));
            }
            let mut line = 0;
            for l in out.stdout_str().lines() {
                if let Some(rest) = l.strip_prefix('#') {
                    line = rest.rsplit("line ").next().and_then(|n| n.trim().parse().ok()).unwrap_or(0);
                } else if !l.is_empty() {
                    found.push((line, l.to_string()));
                }
            }
        }
        let mut salt = [0u8; 20];
        if p.hash_host {
            getrandom::fill(&mut salt).map_err(|e| ModuleError::new(format!("no randomness for the salt: {e}")))?;
        }
        Ok(KnownState { path, text, found, salt })
    }

    fn plan(&self, p: &KnownHostsParams, st: &KnownState) -> Result<Plan, ModuleError> {
        let mut plan = Plan::empty();
        let Some(after) = edit(p, st) else { return Ok(plan) };
        let before = st.text.as_deref().unwrap_or("");
        let what = match p.state {
            Presence::Present => format!("{}: key of {} added", st.path, p.name),
            Presence::Absent => format!("{}: key of {} removed", st.path, p.name),
        };
        let c = if st.text.is_none() { Change::create(what) } else { Change::new(what) };
        plan.push(c.with_diff(Diff::file(&st.path, before, after.clone())));
        if st.text.is_none()
            && let Some((dir, _)) = st.path.rsplit_once('/')
            && !dir.is_empty()
        {
            plan.op(Op::MakeDir { path: dir.to_string(), attrs: Default::default() });
        }
        plan.op(Op::WriteFile {
            mode: st.text.is_none().then_some(0o644),
            path: st.path.clone(),
            content: after.into_bytes(),
            owner: None,
            group: None,
            backup: false,
            validate: None,
        });
        Ok(plan)
    }

    fn data(&self, p: &KnownHostsParams, st: &KnownState) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("name".into(), json!(p.name));
        m.insert("path".into(), json!(st.path));
        m.insert("hash_host".into(), json!(p.hash_host));
        m.insert("key".into(), json!(p.key));
        m.insert("state".into(), json!(if p.state == Presence::Present { "present" } else { "absent" }));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_names_match_as_openssh_hashes_them() {
        // a line `ssh-keygen -H` wrote for the name "storage.lan"
        let field = hashed("storage.lan", b"0123456789abcdefghij");
        assert!(names(&field, "storage.lan") && !names(&field, "pi1.lan"));
        assert!(names("pi1,storage.lan,10.0.0.1", "storage.lan"));
        assert_eq!(normalize("@cert-authority *.lan ssh-rsa AAAA x").unwrap().0.as_deref(), Some("@cert-authority"));
    }

    #[test]
    fn a_key_of_the_same_type_is_replaced_at_the_end() {
        let p: KnownHostsParams = serde_json::from_value(json!({"name": "s", "key": "s ssh-ed25519 NEW"})).unwrap();
        let st = KnownState {
            path: "/k".into(),
            text: Some("s ssh-ed25519 OLD\nt ssh-rsa X\n".into()),
            found: vec![(1, "s ssh-ed25519 OLD".into())],
            salt: [0; 20],
        };
        assert_eq!(edit(&p, &st).unwrap(), "t ssh-rsa X\ns ssh-ed25519 NEW\n");
        let same = KnownState { found: vec![(1, "s ssh-ed25519 NEW".into())], ..st };
        assert_eq!(edit(&p, &same), None);
    }
}
