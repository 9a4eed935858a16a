//! `authorized_key`: SSH public keys in a user's `authorized_keys`, as Ansible's
//! `ansible.posix.authorized_key` writes them.

use async_trait::async_trait;
use pbr_core::params::Presence;
use pbr_core::params::{bool_lenient, opt_bool_lenient};
use pbr_core::{Change, Ctx, Diff, Doc, Module, ModuleError, Op, Plan, ReadHost, sh_quote};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorizedKeyParams {
    /// The user whose keys these are (their home's `.ssh/authorized_keys`, unless `path`).
    pub user: String,
    /// One key per line (`ssh-ed25519 AAAA... comment`, options allowed before the type), or an
    /// `http(s)://` URL the host fetches them from (`https://github.com/NAME.keys`).
    pub key: String,
    /// Another file than `~user/.ssh/authorized_keys`.
    #[serde(default)]
    pub path: Option<String>,
    /// Create the file's directory (mode 0700, owned by the user) and give the file mode 0600 and
    /// the user as owner when it is written.
    #[serde(default = "yes", deserialize_with = "bool_lenient")]
    pub manage_dir: bool,
    /// `present` adds the keys (or updates their options and comment); `absent` removes them.
    #[serde(default)]
    pub state: Presence,
    /// Options for the keys (`no-port-forwarding,from="10.0.0.0/8"`), replacing theirs.
    #[serde(default)]
    pub key_options: Option<String>,
    /// With `present`: every other key in the file goes.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub exclusive: bool,
    /// The keys' comment, replacing theirs.
    #[serde(default)]
    pub comment: Option<String>,
    /// Write through a symbolic link at the path instead of replacing it.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub follow: bool,
    /// Accepted for compatibility (the host checks certificates of a key URL with its own tools).
    #[serde(default, deserialize_with = "opt_bool_lenient")]
    pub validate_certs: Option<bool>,
}

const KEY_TYPES: &[&str] = &[
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "webauthn-sk-ecdsa-sha2-nistp256@openssh.com",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "sk-ssh-ed25519@openssh.com",
    "sk-ssh-ed25519-cert-v01@openssh.com",
    "ssh-ed25519",
    "ssh-ed25519-cert-v01@openssh.com",
    "ssh-dss",
    "ssh-rsa",
    "ssh-xmss@openssh.com",
    "ssh-xmss-cert-v01@openssh.com",
    "rsa-sha2-256",
    "rsa-sha2-512",
    "ssh-rsa-cert-v01@openssh.com",
    "rsa-sha2-256-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com",
    "ssh-dss-cert-v01@openssh.com",
];

/// One line of the file: a key (options, type, base64 blob, comment) or a line kept as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    Key { options: Vec<(String, Option<String>)>, kind: String, blob: String, comment: String },
    Other(String),
}

/// `a,b="x,y",c` as ordered (name, value) pairs; quotes keep their commas.
fn parse_options(s: &str) -> Vec<(String, Option<String>)> {
    let mut parts = vec![];
    let mut cur = String::new();
    let mut quote = None;
    for c in s.chars() {
        match (c, quote) {
            ('"' | '\'', None) => {
                quote = Some(c);
                cur.push(c);
            }
            (c, Some(q)) if c == q => {
                quote = None;
                cur.push(c);
            }
            (',', None) => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    let mut out: Vec<(String, Option<String>)> = vec![];
    for p in parts.into_iter().filter(|p| !p.is_empty()) {
        let (k, v) = match p.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (p, None),
        };
        // a repeated option keeps its first place and its last value
        match out.iter_mut().find(|(ok, _)| *ok == k) {
            Some(e) => e.1 = v,
            None => out.push((k, v)),
        }
    }
    out
}

fn parse_key(raw: &str) -> Option<Line> {
    let raw = raw.replace(r"\#", "#");
    let words: Vec<&str> = raw.split_whitespace().collect();
    if words.first() == Some(&"#") {
        return None;
    }
    let at = words.iter().position(|w| KEY_TYPES.contains(w))?;
    let blob = words.get(at + 1)?;
    Some(Line::Key {
        options: parse_options(&words[..at].join(" ")),
        kind: words[at].to_string(),
        blob: blob.to_string(),
        comment: words.get(at + 2..).map(|w| w.join(" ")).unwrap_or_default(),
    })
}

fn serialize(lines: &[Line]) -> String {
    let mut out = String::new();
    for l in lines {
        match l {
            Line::Other(t) => out.push_str(t),
            Line::Key { options, kind, blob, comment } => {
                let opts: Vec<String> = options
                    .iter()
                    .map(|(k, v)| match v {
                        Some(v) => format!("{k}={v}"),
                        None => k.clone(),
                    })
                    .collect();
                if !opts.is_empty() {
                    out.push_str(&opts.join(","));
                    out.push(' ');
                }
                // as Ansible writes it: a key without a comment keeps the space before it
                out.push_str(&format!("{kind} {blob} {comment}\n"));
            }
        }
    }
    out
}

/// The file after the edit (None: no change), as Ansible's module rewrites it: every key line
/// normalized, a key whose options or comment change moved to the end.
pub fn edit(p: &AuthorizedKeyParams, keys: &str, existing: &str) -> Result<Option<String>, ModuleError> {
    let mut lines: Vec<Line> =
        existing.split_inclusive('\n').map(|l| parse_key(l).unwrap_or_else(|| Line::Other(l.to_string()))).collect();
    let blob_of = |l: &Line| match l {
        Line::Key { blob, .. } => Some(blob.clone()),
        Line::Other(_) => None,
    };
    let mut wanted = vec![];
    let mut write = false;
    for raw in keys.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let Some(Line::Key { mut options, kind, blob, mut comment }) = parse_key(raw) else {
            return Err(ModuleError::new(format!("invalid key specified: {raw}")));
        };
        if let Some(o) = &p.key_options {
            options = parse_options(o);
        }
        if let Some(c) = &p.comment {
            comment = c.clone();
        }
        let new = Line::Key { options, kind, blob: blob.clone(), comment };
        let at = lines.iter().position(|l| blob_of(l).as_deref() == Some(blob.as_str()));
        match p.state {
            Presence::Present => {
                wanted.push(blob);
                if at.is_some_and(|i| lines[i] == new) {
                    continue;
                }
                if let Some(i) = at {
                    lines.remove(i);
                }
                lines.push(new);
                write = true;
            }
            Presence::Absent => {
                if let Some(i) = at {
                    lines.remove(i);
                    write = true;
                }
            }
        }
    }
    if p.state == Presence::Present && p.exclusive {
        let before = lines.len();
        lines.retain(|l| blob_of(l).is_none_or(|b| wanted.contains(&b)));
        write |= lines.len() != before;
    }
    Ok(write.then(|| serialize(&lines)))
}

pub struct AuthorizedKey;

pub struct KeyState {
    keyfile: String,
    dir: String,
    dir_exists: bool,
    existing: Option<String>,
    keys: String,
    uid: u32,
    gid: u32,
}

#[async_trait]
impl Module for AuthorizedKey {
    type Params = AuthorizedKeyParams;
    type State = KeyState;
    const NAME: &'static str = "authorized_key";

    fn doc(&self) -> Doc {
        Doc {
            description: "Add or remove SSH public keys in a user's `authorized_keys` (`~user/.ssh/`, or \
                          `path`), with their options and comment. The file is rewritten as \
                          ansible.posix.authorized_key writes it: each key line normalized, lines that are not \
                          keys kept. With `manage_dir` the directory is the user's with mode 0700 and the \
                          file mode 0600.",
            examples: r#"- name: The admin's key on every Pi
  authorized_key:
    user: alarm
    key: "{{ lookup('file', 'files/admin.pub') }}"

- name: Only the backup key, and only from the storage VM
  authorized_key:
    user: backup
    key: "ssh-ed25519 AAAAC3Nza... backup@storage"
    key_options: 'from="10.99.0.1"'
    exclusive: true
"#,
        }
    }

    fn validate(&self, p: &AuthorizedKeyParams) -> Result<(), String> {
        if !p.key.starts_with("http") {
            for raw in p.key.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
                if !matches!(parse_key(raw), Some(Line::Key { .. })) {
                    return Err(format!("invalid key specified: {raw}"));
                }
            }
        }
        Ok(())
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &AuthorizedKeyParams, host: &ReadHost) -> Result<KeyState, ModuleError> {
        let out = host.query_sh(format!("getent passwd {0} || grep \"^{0}:\" /etc/passwd", sh_quote(&p.user))).await?;
        let entry = out.stdout_str();
        let f: Vec<&str> = entry.lines().next().unwrap_or("").split(':').collect();
        if !out.ok() || f.len() < 7 {
            return Err(ModuleError::new(format!("Failed to lookup user {}: no such user", p.user)));
        }
        let (uid, gid) = (f[2].parse().unwrap_or(0), f[3].parse().unwrap_or(0));
        let mut keyfile =
            p.path.clone().unwrap_or_else(|| format!("{}/.ssh/authorized_keys", f[5].trim_end_matches('/')));
        if p.follow {
            let r = host.query_sh(format!("readlink -f {}", sh_quote(&keyfile))).await?;
            if r.ok() && !r.stdout.is_empty() {
                keyfile = r.stdout_str().trim_end_matches('\n').to_string();
            }
        }
        let dir = keyfile.rsplit_once('/').map(|(d, _)| if d.is_empty() { "/" } else { d }).unwrap_or(".").to_string();
        let existing = match host.stat(&keyfile).await? {
            Some(s) if s.kind == "file" => {
                host.read_file(&keyfile).await?.map(|b| String::from_utf8_lossy(&b).into_owned())
            }
            _ => None,
        };
        let dir_exists = host.stat(&dir).await?.is_some();
        let keys = if p.key.starts_with("http") {
            let q = sh_quote(&p.key);
            let r = host.query_sh(format!("curl -fsSL {q} 2>/dev/null || wget -qO- {q}")).await?;
            if !r.ok() {
                return Err(ModuleError::new(format!("Error getting key from: {}", p.key)));
            }
            r.stdout_str()
        } else {
            p.key.clone()
        };
        Ok(KeyState { keyfile, dir, dir_exists, existing, keys, uid, gid })
    }

    fn plan(&self, p: &AuthorizedKeyParams, st: &KeyState) -> Result<Plan, ModuleError> {
        let before = st.existing.as_deref().unwrap_or("");
        let mut plan = Plan::empty();
        let Some(after) = edit(p, &st.keys, before)? else { return Ok(plan) };
        let (uid, gid) = (st.uid.to_string(), st.gid.to_string());
        if !st.dir_exists {
            let attrs = if p.manage_dir {
                pbr_core::op::Attrs {
                    mode: Some(pbr_core::params::Mode::Octal(0o700)),
                    owner: Some(uid.clone()),
                    group: Some(gid.clone()),
                }
            } else {
                Default::default()
            };
            plan.push(Change::create(format!("create {}", st.dir)));
            plan.op(Op::MakeDir { path: st.dir.clone(), attrs });
        }
        let what = match p.state {
            Presence::Present => "keys added or updated",
            Presence::Absent => "keys removed",
        };
        let c = if st.existing.is_none() {
            Change::create(format!("create {}: {what}", st.keyfile))
        } else {
            Change::new(format!("{}: {what}", st.keyfile))
        };
        plan.push(c.with_diff(Diff::file(&st.keyfile, before, after.clone())));
        plan.op(Op::WriteFile {
            path: st.keyfile.clone(),
            content: after.into_bytes(),
            mode: Some(0o600),
            owner: Some(uid),
            group: Some(gid),
            backup: false,
            validate: None,
        });
        Ok(plan)
    }

    fn data(&self, p: &AuthorizedKeyParams, st: &KeyState) -> Map<String, Value> {
        let mut m = Map::new();
        let s = |v: &str| Value::String(v.to_string());
        m.insert("user".into(), s(&p.user));
        m.insert("key".into(), s(&p.key));
        m.insert("keyfile".into(), s(&st.keyfile));
        m.insert("path".into(), p.path.as_deref().map(s).unwrap_or(Value::Null));
        m.insert("manage_dir".into(), Value::Bool(p.manage_dir));
        m.insert("exclusive".into(), Value::Bool(p.exclusive));
        m.insert("key_options".into(), p.key_options.as_deref().map(s).unwrap_or(Value::Null));
        m.insert("comment".into(), p.comment.as_deref().map(s).unwrap_or(Value::Null));
        m.insert("state".into(), s(if p.state == Presence::Present { "present" } else { "absent" }));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(v: Value) -> AuthorizedKeyParams {
        let mut v = v;
        v["user"] = json!("pi");
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn keys_are_added_updated_and_removed_as_ansible_writes_them() {
        let k1 = "ssh-ed25519 AAAAone admin@lab";
        let k2 = "ssh-rsa AAAAtwo";
        let p = params(json!({"key": k1}));
        assert_eq!(edit(&p, k1, "").unwrap().unwrap(), "ssh-ed25519 AAAAone admin@lab\n");
        assert_eq!(edit(&p, k1, "# keys\nssh-ed25519   AAAAone admin@lab\n").unwrap(), None);
        let existing = "# keys\nssh-ed25519 AAAAone old comment\nssh-rsa AAAAtwo\n";
        // a key whose comment changes moves to the end; the other key is normalized
        assert_eq!(
            edit(&p, k1, existing).unwrap().unwrap(),
            "# keys\nssh-rsa AAAAtwo \nssh-ed25519 AAAAone admin@lab\n"
        );
        let opts = params(json!({"key": k2, "key_options": "no-pty,from=\"10.0.0.1,10.0.0.2\""}));
        assert_eq!(edit(&opts, k2, "").unwrap().unwrap(), "no-pty,from=\"10.0.0.1,10.0.0.2\" ssh-rsa AAAAtwo \n");
        let gone = params(json!({"key": k2, "state": "absent"}));
        assert_eq!(edit(&gone, k2, existing).unwrap().unwrap(), "# keys\nssh-ed25519 AAAAone old comment\n");
        let only = params(json!({"key": k1, "exclusive": true}));
        assert_eq!(edit(&only, k1, existing).unwrap().unwrap(), "# keys\nssh-ed25519 AAAAone admin@lab\n");
        assert!(edit(&p, "not a key", "").is_err());
    }
}
