//! `user` and `group`: local accounts through `getent`, `useradd`/`usermod`/`userdel` and
//! `groupadd`/`groupmod`/`groupdel`.

use async_trait::async_trait;
use pbr_core::params::Presence;
use pbr_core::params::{StrList, bool_lenient};
use pbr_core::{Change, Ctx, Diff, Doc, Module, ModuleError, Op, Plan, ReadHost, sh_quote};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupParams {
    /// The group's name.
    pub name: String,
    /// Whether the group should exist.
    #[serde(default)]
    pub state: Presence,
    /// The group's numeric id.
    #[serde(default)]
    pub gid: Option<u32>,
    /// Create a system group (id from the system range) when creating it.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub system: bool,
}

/// A `getent group` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

pub fn parse_group(line: &str) -> Option<GroupEntry> {
    let f: Vec<&str> = line.trim_end().split(':').collect();
    if f.len() < 4 {
        return None;
    }
    Some(GroupEntry {
        name: f[0].to_string(),
        gid: f[2].parse().ok()?,
        members: f[3].split(',').filter(|s| !s.is_empty()).map(str::to_string).collect(),
    })
}

pub struct Group;

#[async_trait]
impl Module for Group {
    type Params = GroupParams;
    type State = Option<GroupEntry>;
    const NAME: &'static str = "group";

    fn doc(&self) -> Doc {
        Doc {
            description: "Create, change the gid of, or remove a local group (`groupadd`/`groupmod`/`groupdel`).",
            examples: r#"- name: A group for the app
  group:
    name: app
    gid: 1500
    system: true
"#,
        }
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &GroupParams, host: &ReadHost) -> Result<Self::State, ModuleError> {
        let out = host.query_sh(format!("getent group {} || true", sh_quote(&p.name))).await?;
        let text = out.stdout_str();
        Ok(text.lines().next().and_then(parse_group))
    }

    fn plan(&self, p: &GroupParams, st: &Self::State) -> Result<Plan, ModuleError> {
        let mut plan = Plan::empty();
        let kv = |k: &str, v: String| vec![(k.to_string(), v)];
        match (p.state, st) {
            (Presence::Present, None) => {
                let gid = p.gid.map(|g| format!(" (gid {g})")).unwrap_or_default();
                plan.push(Change::create(format!("create group {}{gid}", p.name)).with_diff(Diff::state(
                    &p.name,
                    &kv("state", "absent".into()),
                    &kv("state", "present".into()),
                )));
            }
            (Presence::Present, Some(g)) => {
                if let Some(want) = p.gid
                    && want != g.gid
                {
                    plan.push(Change::new(format!("group {}: gid {} → {want}", p.name, g.gid)));
                }
            }
            (Presence::Absent, Some(_)) => {
                plan.push(Change::remove(format!("remove group {}", p.name)).with_diff(Diff::state(
                    &p.name,
                    &kv("state", "present".into()),
                    &kv("state", "absent".into()),
                )))
            }
            (Presence::Absent, None) => {}
        }
        if !plan.is_empty() {
            plan.op(Op::run(format!("group {}", p.name), group_script(p, st)?));
        }
        Ok(plan)
    }

    fn data(&self, p: &GroupParams, st: &Self::State) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("name".into(), json!(p.name));
        if let Some(g) = st {
            m.insert("gid".into(), json!(g.gid));
        }
        m
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserParams {
    /// The account's name.
    #[serde(alias = "user")]
    pub name: String,
    /// Whether the account should exist.
    #[serde(default)]
    pub state: Presence,
    /// Numeric user id.
    #[serde(default)]
    pub uid: Option<u32>,
    /// Primary group (name or gid).
    #[serde(default)]
    pub group: Option<String>,
    /// Supplementary groups (a list or a comma-separated string); `[]` or `""` with
    /// `append: false` removes all.
    #[serde(default)]
    pub groups: Option<StrList>,
    /// Add `groups` to the current ones instead of making them the exact set.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub append: bool,
    /// Login shell.
    #[serde(default)]
    pub shell: Option<String>,
    /// Home directory.
    #[serde(default)]
    pub home: Option<String>,
    /// With a changed `home`, move the old home's contents there.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub move_home: bool,
    /// GECOS field (full name).
    #[serde(default)]
    pub comment: Option<String>,
    /// Create a system account when creating it.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub system: bool,
    /// Create the home directory when creating the account.
    #[serde(default = "yes", deserialize_with = "bool_lenient", alias = "createhome")]
    pub create_home: bool,
    /// Crypted password hash (as in /etc/shadow), never a clear-text password.
    #[serde(default)]
    pub password: Option<String>,
    /// `always` sets `password` when it differs; `on_create` only for new accounts.
    #[serde(default)]
    pub update_password: Option<String>,
    /// With `state: absent`, also remove the home directory and mail spool.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub remove: bool,
}

/// A `getent passwd` entry plus group names and the shadow hash (when readable).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserEntry {
    pub uid: u32,
    pub gid: u32,
    pub group: String,
    pub comment: String,
    pub home: String,
    pub shell: String,
    /// Supplementary groups (the primary one excluded).
    pub groups: Vec<String>,
    pub hash: Option<String>,
}

/// Parse the user probe: `passwd line`, `@@`, primary group name, `@@`, all group names, `@@`,
/// shadow line.
pub fn parse_user(out: &str) -> Option<UserEntry> {
    let parts: Vec<&str> = out.split("@@\n").collect();
    let pw: Vec<&str> = parts.first()?.lines().next()?.split(':').collect();
    if pw.len() < 7 {
        return None;
    }
    let group = parts.get(1).and_then(|s| s.lines().next()).unwrap_or("").trim().to_string();
    let groups = parts
        .get(2)
        .map(|s| s.split_whitespace().filter(|g| *g != group).map(str::to_string).collect())
        .unwrap_or_default();
    let hash = parts.get(3).and_then(|s| s.lines().next()).and_then(|l| l.split(':').nth(1)).map(str::to_string);
    Some(UserEntry {
        uid: pw[2].parse().ok()?,
        gid: pw[3].parse().ok()?,
        group,
        comment: pw[4].to_string(),
        home: pw[5].to_string(),
        shell: pw[6].to_string(),
        groups,
        hash,
    })
}

/// What to change on an existing account: usermod flags with their plan summaries.
fn user_mods(p: &UserParams, u: &UserEntry) -> Vec<(String, String)> {
    let mut v = vec![];
    if let Some(uid) = p.uid
        && uid != u.uid
    {
        v.push((format!("uid {} → {uid}", u.uid), format!("-u {uid}")));
    }
    if let Some(g) = &p.group
        && *g != u.group
        && g.parse::<u32>().ok() != Some(u.gid)
    {
        v.push((format!("group {} → {g}", u.group), format!("-g {}", sh_quote(g))));
    }
    if let Some(gs) = &p.groups {
        let want: Vec<&String> = gs.0.iter().filter(|g| **g != u.group).collect();
        if p.append {
            let missing: Vec<&str> = want.iter().filter(|g| !u.groups.contains(g)).map(|g| g.as_str()).collect();
            if !missing.is_empty() {
                v.push((
                    format!("add to groups {}", missing.join(", ")),
                    format!("-a -G {}", sh_quote(&missing.join(","))),
                ));
            }
        } else {
            let mut a: Vec<&str> = want.iter().map(|g| g.as_str()).collect();
            let mut b: Vec<&str> = u.groups.iter().map(String::as_str).collect();
            a.sort();
            a.dedup();
            b.sort();
            b.dedup();
            if a != b {
                v.push((
                    format!("groups [{}] → [{}]", b.join(", "), a.join(", ")),
                    format!("-G {}", sh_quote(&a.join(","))),
                ));
            }
        }
    }
    if let Some(s) = &p.shell
        && *s != u.shell
    {
        v.push((format!("shell {} → {s}", u.shell), format!("-s {}", sh_quote(s))));
    }
    if let Some(h) = &p.home
        && *h != u.home
    {
        let m = if p.move_home { "-m " } else { "" };
        v.push((format!("home {} → {h}", u.home), format!("{m}-d {}", sh_quote(h))));
    }
    if let Some(c) = &p.comment
        && *c != u.comment
    {
        v.push((format!("comment {:?} → {c:?}", u.comment), format!("-c {}", sh_quote(c))));
    }
    if let Some(pw) = &p.password
        && p.update_password.as_deref() != Some("on_create")
        && u.hash.as_deref() != Some(pw.as_str())
    {
        v.push(("password changes".to_string(), format!("-p {}", sh_quote(pw))));
    }
    v
}

fn useradd(p: &UserParams) -> String {
    let mut s = String::from("useradd");
    if p.system {
        s.push_str(" -r");
    }
    if let Some(u) = p.uid {
        s.push_str(&format!(" -u {u}"));
    }
    if let Some(g) = &p.group {
        s.push_str(&format!(" -g {}", sh_quote(g)));
    }
    if let Some(gs) = &p.groups
        && !gs.0.is_empty()
    {
        s.push_str(&format!(" -G {}", sh_quote(&gs.0.join(","))));
    }
    if let Some(sh) = &p.shell {
        s.push_str(&format!(" -s {}", sh_quote(sh)));
    }
    if let Some(h) = &p.home {
        s.push_str(&format!(" -d {}", sh_quote(h)));
    }
    if let Some(c) = &p.comment {
        s.push_str(&format!(" -c {}", sh_quote(c)));
    }
    if let Some(pw) = &p.password {
        s.push_str(&format!(" -p {}", sh_quote(pw)));
    }
    s.push_str(if p.create_home { " -m" } else { " -M" });
    s.push_str(&format!(" {}", sh_quote(&p.name)));
    s
}

pub struct User;

#[async_trait]
impl Module for User {
    type Params = UserParams;
    type State = Option<UserEntry>;
    const NAME: &'static str = "user";

    fn doc(&self) -> Doc {
        Doc {
            description: "Create, change or remove a local account (`useradd`/`usermod`/`userdel`): uid, primary \
                          group, supplementary groups (exact set, or added with `append`), shell, home, comment \
                          and a crypted password hash. One query reads the account with `getent` and `id`.",
            examples: r#"- name: The pi user can use docker
  user:
    name: pi
    groups: docker
    append: true

- name: A service account
  user:
    name: app
    system: true
    shell: /usr/sbin/nologin
    home: /srv/app
    create_home: false
"#,
        }
    }

    fn validate(&self, p: &UserParams) -> Result<(), String> {
        match p.update_password.as_deref() {
            None | Some("always") | Some("on_create") => Ok(()),
            Some(o) => Err(format!("update_password must be always or on_create, not {o:?}")),
        }
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &UserParams, host: &ReadHost) -> Result<Self::State, ModuleError> {
        let n = sh_quote(&p.name);
        let shadow = if p.password.is_some() { format!("getent shadow {n} 2>/dev/null") } else { String::new() };
        let script = format!(
            "getent passwd {n} || exit 0; echo @@; id -gn {n}; echo @@; id -Gn {n}; echo @@; {shadow}{}true",
            if shadow.is_empty() { "" } else { "; " }
        );
        let out = host.query_sh(script).await?;
        let text = out.stdout_str();
        if text.trim().is_empty() {
            return Ok(None);
        }
        parse_user(&text)
            .map(Some)
            .ok_or_else(|| ModuleError::new(format!("cannot parse the account of {}: {text}", p.name)))
    }

    fn plan(&self, p: &UserParams, st: &Self::State) -> Result<Plan, ModuleError> {
        let mut plan = Plan::empty();
        let kv = |v: &str| vec![("state".to_string(), v.to_string())];
        match (p.state, st) {
            (Presence::Present, None) => {
                plan.push(Change::create(format!("create user {}", p.name)).with_diff(Diff::state(
                    &p.name,
                    &kv("absent"),
                    &kv("present"),
                )))
            }
            (Presence::Present, Some(u)) => {
                for (summary, _) in user_mods(p, u) {
                    plan.push(Change::new(format!("user {}: {summary}", p.name)));
                }
            }
            (Presence::Absent, Some(_)) => plan.push(
                Change::remove(format!("remove user {}{}", p.name, if p.remove { " and its home" } else { "" }))
                    .with_diff(Diff::state(&p.name, &kv("present"), &kv("absent"))),
            ),
            (Presence::Absent, None) => {}
        }
        if !plan.is_empty() {
            plan.op(Op::run(format!("user {}", p.name), user_script(p, st)?));
        }
        Ok(plan)
    }

    fn data(&self, p: &UserParams, st: &Self::State) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("name".into(), json!(p.name));
        if let Some(u) = st {
            m.insert("uid".into(), json!(u.uid));
            m.insert("group".into(), json!(u.gid));
            m.insert("home".into(), json!(u.home));
            m.insert("shell".into(), json!(u.shell));
            m.insert("groups".into(), json!(u.groups.join(",")));
        }
        m
    }
}

/// The script that makes a plan's changes.
fn group_script(p: &GroupParams, st: &Option<GroupEntry>) -> Result<String, ModuleError> {
    let n = sh_quote(&p.name);
    let gid = p.gid.map(|g| format!("-g {g} ")).unwrap_or_default();
    let script = match (p.state, st) {
        (Presence::Present, None) => format!("groupadd {}{gid}{n}", if p.system { "-r " } else { "" }),
        (Presence::Present, Some(_)) => format!("groupmod {gid}{n}"),
        (Presence::Absent, _) => format!("groupdel {n}"),
    };
    Ok(script)
}

/// The script that makes a plan's changes.
fn user_script(p: &UserParams, st: &Option<UserEntry>) -> Result<String, ModuleError> {
    let n = sh_quote(&p.name);
    let script = match (p.state, st) {
        (Presence::Present, None) => useradd(p),
        (Presence::Present, Some(u)) => {
            let flags: Vec<String> = user_mods(p, u).into_iter().map(|(_, f)| f).collect();
            format!("usermod {} {n}", flags.join(" "))
        }
        (Presence::Absent, _) => format!("userdel {}{n}", if p.remove { "-r " } else { "" }),
    };
    Ok(script)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(v: serde_json::Value) -> UserParams {
        serde_json::from_value(v).unwrap()
    }

    const PI: &str = "pi:x:1000:1000:Pi User,,,:/home/pi:/bin/bash\n@@\npi\n@@\npi adm sudo video\n@@\n";

    #[test]
    fn user_entry_and_mods() {
        let u = parse_user(PI).unwrap();
        assert_eq!(u.groups, vec!["adm", "sudo", "video"]);
        assert_eq!(u.comment, "Pi User,,,");
        assert!(user_mods(&up(json!({"name": "pi", "groups": "sudo,adm", "append": true})), &u).is_empty());
        let m = user_mods(&up(json!({"name": "pi", "groups": ["docker", "sudo"], "append": true})), &u);
        assert_eq!(m, vec![("add to groups docker".to_string(), "-a -G docker".to_string())]);
        let m = user_mods(&up(json!({"name": "pi", "groups": "video,adm,sudo"})), &u);
        assert!(m.is_empty(), "{m:?}");
        let m = user_mods(&up(json!({"name": "pi", "groups": ""})), &u);
        assert_eq!(m[0].1, "-G ''");
        let m = user_mods(&up(json!({"name": "pi", "shell": "/bin/sh", "uid": 1000, "group": "1000"})), &u);
        assert_eq!(m, vec![("shell /bin/bash → /bin/sh".to_string(), "-s /bin/sh".to_string())]);
        let with_hash = format!("{PI}pi:$6$abc:19000:0:99999:7:::\n");
        let u = parse_user(&with_hash).unwrap();
        assert!(user_mods(&up(json!({"name": "pi", "password": "$6$abc"})), &u).is_empty());
        assert_eq!(user_mods(&up(json!({"name": "pi", "password": "$6$xyz"})), &u).len(), 1);
        assert!(
            user_mods(&up(json!({"name": "pi", "password": "$6$xyz", "update_password": "on_create"})), &u).is_empty()
        );
    }

    #[test]
    fn group_line() {
        let g = parse_group("docker:x:998:pi,app\n").unwrap();
        assert_eq!((g.gid, g.members.len()), (998, 2));
        assert!(parse_group("garbage").is_none());
    }
}
