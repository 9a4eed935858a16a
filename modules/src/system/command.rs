//! `command` and `shell`: run something on the host, unless `creates`/`removes` say it is done.

use async_trait::async_trait;
use pbr_core::params::bool_lenient;
use pbr_core::{Change, Ctx, Doc, Module, ModuleError, Op, PathQuery, Plan, ReadHost, sh_quote};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandParams {
    /// The free-form command (`command: ls -l /tmp`); trailing `creates=`, `removes=`, `chdir=`
    /// words are read as those params.
    #[serde(default, rename = "_raw_params")]
    pub raw_params: Option<String>,
    /// The command line, split into words with shell quoting rules (no shell features).
    #[serde(default)]
    pub cmd: Option<String>,
    /// The command as a list of words, passed as is.
    #[serde(default)]
    pub argv: Option<Vec<String>>,
    /// Change into this directory first.
    #[serde(default)]
    pub chdir: Option<String>,
    /// Skip the command when this path (or glob) exists.
    #[serde(default)]
    pub creates: Option<String>,
    /// Skip the command when this path (or glob) does not exist.
    #[serde(default)]
    pub removes: Option<String>,
    /// Not used by `command` (it runs no shell): accepted with a warning, as in Ansible. Use
    /// `shell` to choose the shell.
    #[serde(default)]
    pub executable: Option<String>,
    /// Text fed to the command's standard input.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Add a newline after `stdin`.
    #[serde(default = "yes", deserialize_with = "bool_lenient")]
    pub stdin_add_newline: bool,
    /// Remove trailing newlines from stdout/stderr in the result.
    #[serde(default = "yes", deserialize_with = "bool_lenient")]
    pub strip_empty_ends: bool,
    /// Accepted for compatibility; ignored.
    #[serde(default)]
    pub warn: Option<Value>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellParams {
    /// The free-form script (`shell: ls | wc -l`); trailing `creates=`, `removes=`, `chdir=`,
    /// `executable=` words are read as those params.
    #[serde(default, rename = "_raw_params")]
    pub raw_params: Option<String>,
    /// The script to run.
    #[serde(default)]
    pub cmd: Option<String>,
    /// Change into this directory first.
    #[serde(default)]
    pub chdir: Option<String>,
    /// Skip the script when this path (or glob) exists.
    #[serde(default)]
    pub creates: Option<String>,
    /// Skip the script when this path (or glob) does not exist.
    #[serde(default)]
    pub removes: Option<String>,
    /// Text fed to the script's standard input.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Add a newline after `stdin`.
    #[serde(default = "yes", deserialize_with = "bool_lenient")]
    pub stdin_add_newline: bool,
    /// Remove trailing newlines from stdout/stderr in the result.
    #[serde(default = "yes", deserialize_with = "bool_lenient")]
    pub strip_empty_ends: bool,
    /// The shell that runs the script (default `/bin/sh`).
    #[serde(default)]
    pub executable: Option<String>,
    /// Accepted for compatibility; ignored.
    #[serde(default)]
    pub warn: Option<Value>,
}

/// Split a command line into words with POSIX shell quoting rules (quotes and backslashes; no
/// expansions).
pub fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = vec![];
    let mut cur = String::new();
    let mut in_word = false;
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match it.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated single quote in {s:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match it.next() {
                        Some('"') => break,
                        Some('\\') => match it.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err(format!("unterminated double quote in {s:?}")),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated double quote in {s:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match it.next() {
                    Some('\n') => {}
                    Some(c) => cur.push(c),
                    None => cur.push('\\'),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// Free-form options Ansible reads out of the command text.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FreeForm {
    pub text: String,
    pub opts: Vec<(String, String)>,
}

/// Strip trailing `key=value` words (`creates`, `removes`, `chdir`, `executable`, `stdin`) off a
/// free-form command.
pub fn free_form(raw: &str) -> FreeForm {
    const KEYS: &[&str] = &["creates", "removes", "chdir", "executable", "stdin", "warn"];
    let mut text = raw.trim_end().to_string();
    let mut opts = vec![];
    loop {
        let start = text.rfind([' ', '\t', '\n']).map(|i| i + 1).unwrap_or(0);
        let word = &text[start..];
        let Some((k, v)) = word.split_once('=') else { break };
        if !KEYS.contains(&k) || start == 0 || v.contains(['\'', '"']) {
            break;
        }
        opts.push((k.to_string(), v.to_string()));
        text.truncate(start);
        text = text.trim_end().to_string();
    }
    opts.reverse();
    FreeForm { text, opts }
}

/// A glob kept as a glob for sh: every character but `*?[]` is backslash-escaped.
fn glob_word(p: &str) -> Result<String, ModuleError> {
    if p.contains('\n') {
        return Err(ModuleError::new(format!("path with a newline: {p:?}")));
    }
    Ok(p.chars()
        .map(|c| if c.is_ascii_alphanumeric() || "*?[]/._-".contains(c) { c.to_string() } else { format!("\\{c}") })
        .collect())
}

/// Everything the two modules share once params are resolved.
#[derive(Debug, Clone)]
pub struct Run {
    /// The script given to sh.
    pub script: String,
    /// What the result reports as `cmd`.
    pub shown: Value,
    pub chdir: Option<String>,
    pub creates: Option<String>,
    pub removes: Option<String>,
    pub stdin: Option<Vec<u8>>,
    pub strip: bool,
}

#[derive(Debug, Clone)]
pub struct RunState {
    pub run: Run,
    /// Why the command is skipped, when it is.
    pub skip: Option<String>,
}

fn opt(ff: &FreeForm, key: &str, given: &Option<String>) -> Option<String> {
    given.clone().or_else(|| ff.opts.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.clone()))
}

fn stdin_bytes(stdin: Option<String>, nl: bool) -> Option<Vec<u8>> {
    stdin.map(|s| {
        let mut b = s.into_bytes();
        if nl {
            b.push(b'\n');
        }
        b
    })
}

impl CommandParams {
    pub fn resolve(&self) -> Result<Run, ModuleError> {
        let ff = self.raw_params.as_deref().map(free_form).unwrap_or_default();
        let words: Vec<String> = if let Some(a) = &self.argv {
            a.clone()
        } else {
            let line = self.cmd.clone().unwrap_or_else(|| ff.text.clone());
            split_words(&line).map_err(ModuleError::new)?
        };
        if words.is_empty() {
            return Err(ModuleError::new("no command given"));
        }
        let script = words.iter().map(|w| sh_quote(w)).collect::<Vec<_>>().join(" ");
        Ok(Run {
            script: format!("exec {script}"),
            shown: json!(words),
            chdir: opt(&ff, "chdir", &self.chdir),
            creates: opt(&ff, "creates", &self.creates),
            removes: opt(&ff, "removes", &self.removes),
            stdin: stdin_bytes(opt(&ff, "stdin", &self.stdin), self.stdin_add_newline),
            strip: self.strip_empty_ends,
        })
    }
}

impl ShellParams {
    pub fn resolve(&self) -> Result<Run, ModuleError> {
        let ff = self.raw_params.as_deref().map(free_form).unwrap_or_default();
        let text = self.cmd.clone().unwrap_or_else(|| ff.text.clone());
        if text.trim().is_empty() {
            return Err(ModuleError::new("no command given"));
        }
        let script = match opt(&ff, "executable", &self.executable) {
            Some(sh) => format!("exec {} -c {}", sh_quote(&sh), sh_quote(&text)),
            None => text.clone(),
        };
        Ok(Run {
            script,
            shown: Value::String(text),
            chdir: opt(&ff, "chdir", &self.chdir),
            creates: opt(&ff, "creates", &self.creates),
            removes: opt(&ff, "removes", &self.removes),
            stdin: stdin_bytes(opt(&ff, "stdin", &self.stdin), self.stdin_add_newline),
            strip: self.strip_empty_ends,
        })
    }
}

fn check_one(p: &Option<String>) -> Result<(), String> {
    match p {
        Some(s) if s.is_empty() => Err("empty path".into()),
        _ => Ok(()),
    }
}

async fn probe_run(run: Run, host: &ReadHost) -> Result<RunState, ModuleError> {
    if run.creates.is_none() && run.removes.is_none() {
        return Ok(RunState { run, skip: None });
    }
    // plain paths are looked up directly; globs (and paths relative to chdir) go to the shell
    let plain = |p: &Option<String>| {
        p.as_deref().is_none_or(|p| !p.contains(['*', '?', '[']) && (p.starts_with('/') || run.chdir.is_none()))
    };
    if plain(&run.creates) && plain(&run.removes) {
        let paths: Vec<&String> = [&run.creates, &run.removes].into_iter().flatten().collect();
        let qs: Vec<PathQuery> = paths.iter().map(|p| PathQuery::new(p.as_str())).collect();
        let found = host.inspect(&qs).await?;
        let mut found = found.iter().map(|i| i.exists());
        let created = run.creates.is_some() && found.next().unwrap_or(false);
        let removable = run.removes.is_some() && found.next().unwrap_or(false);
        let skip = skip_reason(&run, created, removable);
        return Ok(RunState { run, skip });
    }
    let cd = match &run.chdir {
        Some(d) => format!("cd {} 2>/dev/null || true; ", sh_quote(d)),
        None => String::new(),
    };
    let test = |p: &str| -> Result<String, ModuleError> {
        Ok(format!(
            "r=N; for f in {}; do if [ -e \"$f\" ] || [ -L \"$f\" ]; then r=Y; break; fi; done; echo $r; ",
            glob_word(p)?
        ))
    };
    let mut script = cd;
    script.push_str(&test(run.creates.as_deref().unwrap_or("/nonexistent/.pbr"))?);
    script.push_str(&test(run.removes.as_deref().unwrap_or("/"))?);
    let out = host.query_sh(script).await?;
    let text = out.stdout_str();
    let mut l = text.lines();
    let created = l.next() == Some("Y");
    let removable = l.next() == Some("Y");
    let skip = skip_reason(&run, created, removable);
    Ok(RunState { run, skip })
}

fn skip_reason(run: &Run, created: bool, removable: bool) -> Option<String> {
    if run.creates.is_some() && created {
        Some(format!("skipped, since {} exists", run.creates.as_deref().unwrap_or("")))
    } else if run.removes.is_some() && !removable {
        Some(format!("skipped, since {} does not exist", run.removes.as_deref().unwrap_or("")))
    } else {
        None
    }
}

fn plan_run(st: &RunState) -> Plan {
    if st.skip.is_some() {
        return Plan::empty();
    }
    let run = &st.run;
    let shown = match &run.shown {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().filter_map(Value::as_str).map(sh_quote).collect::<Vec<_>>().join(" "),
        v => v.to_string(),
    };
    let script = match &run.chdir {
        Some(d) => format!("cd {} || exit 1\n{}", sh_quote(d), run.script),
        None => run.script.clone(),
    };
    // the paths check mode's overlay may count as made or removed: absolute ones without globs
    let known = |p: &Option<String>| -> Vec<String> {
        p.iter().filter(|p| p.starts_with('/') && !p.contains(['*', '?', '['])).cloned().collect()
    };
    let mut plan = Plan::empty().with(Change::run(format!("run: {shown}")));
    plan.op(Op::Exec {
        cmd: run.shown.clone(),
        script,
        stdin: run.stdin.clone(),
        strip: run.strip,
        makes: known(&run.creates),
        removes: known(&run.removes),
    });
    plan
}

fn skip_data(st: &RunState) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(msg) = &st.skip {
        m.insert("cmd".into(), st.run.shown.clone());
        m.insert("rc".into(), json!(0));
        m.insert("stdout".into(), Value::String(msg.clone()));
        m.insert("stdout_lines".into(), json!([msg]));
        m.insert("stderr".into(), Value::String(String::new()));
        m.insert("stderr_lines".into(), json!([]));
        m.insert("msg".into(), Value::String(msg.clone()));
    }
    m
}

pub struct Command;

#[async_trait]
impl Module for Command {
    type Params = CommandParams;
    type State = RunState;
    const NAME: &'static str = "command";
    const CONVERGENT: bool = false;

    /// With `creates`/`removes` the command runs until the path says it is done.
    fn convergent(&self, p: &Self::Params) -> bool {
        p.creates.is_some() || p.removes.is_some()
    }

    fn doc(&self) -> Doc {
        Doc {
            description: "Run a program on the host without a shell: the command line is split into words with \
                          shell quoting rules, and no pipes, redirections or variables are interpreted (use `shell` \
                          for those). Always reported as changed, unless `creates` exists or `removes` does not; \
                          never run in check mode. A non-zero exit status fails the task.",
            examples: r#"- name: Build the initramfs once
  command: mkinitcpio -P
  args:
    creates: /boot/initramfs-linux.img

- name: List a directory
  command:
    argv: [ls, -l, /etc/ssh]
  register: listing
"#,
        }
    }

    fn validate(&self, p: &CommandParams) -> Result<(), String> {
        // Ansible's words
        match (p.raw_params.is_some() || p.cmd.is_some(), p.argv.is_some()) {
            (false, false) => return Err("no command given".into()),
            (true, true) => return Err("only command or argv can be given, not both".into()),
            _ if p.raw_params.is_some() && p.cmd.is_some() => {
                return Err("give one of the free-form command or cmd, not both".into());
            }
            _ => {}
        }
        check_one(&p.creates)?;
        check_one(&p.removes)
    }

    /// As Ansible's command module fails on its arguments: with `rc` 256.
    fn invalid(&self, msg: String) -> ModuleError {
        let mut data = Map::new();
        data.insert("rc".into(), json!(256));
        ModuleError::new(msg).with_data(data)
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &CommandParams, host: &ReadHost) -> Result<RunState, ModuleError> {
        probe_run(p.resolve()?, host).await
    }

    fn plan(&self, _p: &CommandParams, st: &RunState) -> Result<Plan, ModuleError> {
        Ok(plan_run(st))
    }

    fn data(&self, p: &CommandParams, st: &RunState) -> Map<String, Value> {
        let mut m = skip_data(st);
        if let Some(e) = &p.executable {
            m.insert(
                "warnings".into(),
                json!([format!(
                    "the `executable` param is no longer supported with the `command` module (it runs no shell): not using {e:?}; use `shell` to choose a shell"
                )]),
            );
        }
        m
    }
}

pub struct Shell;

#[async_trait]
impl Module for Shell {
    type Params = ShellParams;
    type State = RunState;
    const NAME: &'static str = "shell";
    const CONVERGENT: bool = false;

    /// With `creates`/`removes` the command runs until the path says it is done.
    fn convergent(&self, p: &Self::Params) -> bool {
        p.creates.is_some() || p.removes.is_some()
    }

    fn doc(&self) -> Doc {
        Doc {
            description: "Run a script with `/bin/sh` (or `executable`) on the host: pipes, redirections and \
                          variables work. Always reported as changed, unless `creates` exists or `removes` does \
                          not; never run in check mode. A non-zero exit status fails the task.",
            examples: r#"- name: Count the users
  shell: getent passwd | wc -l
  register: users

- name: Seed the database once
  shell:
    cmd: ./seed.sh > seed.log 2>&1
    chdir: /srv/app
    creates: /srv/app/seed.log
"#,
        }
    }

    fn validate(&self, p: &ShellParams) -> Result<(), String> {
        if p.raw_params.is_some() == p.cmd.is_some() {
            return Err("give exactly one of the free-form script or cmd".into());
        }
        check_one(&p.creates)?;
        check_one(&p.removes)
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &ShellParams, host: &ReadHost) -> Result<RunState, ModuleError> {
        probe_run(p.resolve()?, host).await
    }

    fn plan(&self, _p: &ShellParams, st: &RunState) -> Result<Plan, ModuleError> {
        Ok(plan_run(st))
    }

    fn data(&self, _p: &ShellParams, st: &RunState) -> Map<String, Value> {
        skip_data(st)
    }
}

/// `raw`'s params: the command line, and the shell that runs it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawParams {
    /// The command line, run by the shell as written.
    #[serde(rename = "_raw_params")]
    pub raw_params: String,
    /// The shell that runs it (default `/bin/sh`).
    #[serde(default)]
    pub executable: Option<String>,
}

impl RawParams {
    fn shell(&self) -> ShellParams {
        ShellParams {
            raw_params: Some(self.raw_params.clone()),
            cmd: None,
            chdir: None,
            creates: None,
            removes: None,
            stdin: None,
            stdin_add_newline: true,
            strip_empty_ends: true,
            executable: self.executable.clone(),
            warn: None,
        }
    }
}

/// `raw`: a command line through the shell, nothing else (Ansible's way to reach a host without
/// Python; pbr needs none, so it is `shell` without its options).
pub struct Raw;

#[async_trait]
impl Module for Raw {
    type Params = RawParams;
    type State = RunState;
    const NAME: &'static str = "raw";
    const CONVERGENT: bool = false;

    fn doc(&self) -> Doc {
        Doc {
            description: "Run a command line through the shell on the host, as written (Ansible's module for \
                          hosts without Python; pbr needs no Python anywhere, so this is `shell` without \
                          `chdir`, `creates` and the rest). Always reported as changed; never run in check \
                          mode. A non-zero exit status fails the task.",
            examples: r#"- name: What the host is
  raw: uname -a
  register: uname
"#,
        }
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &RawParams, host: &ReadHost) -> Result<RunState, ModuleError> {
        probe_run(p.shell().resolve()?, host).await
    }

    fn plan(&self, _p: &RawParams, st: &RunState) -> Result<Plan, ModuleError> {
        Ok(plan_run(st))
    }

    fn data(&self, _p: &RawParams, st: &RunState) -> Map<String, Value> {
        skip_data(st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        assert_eq!(split_words(r#"echo "a b" 'c d' e\ f"#).unwrap(), vec!["echo", "a b", "c d", "e f"]);
        assert_eq!(split_words(r#"x "a\"b" ''"#).unwrap(), vec!["x", "a\"b", ""]);
        assert!(split_words("echo 'oops").is_err());
    }

    #[test]
    fn free_form_opts() {
        let f = free_form("make all creates=/tmp/x chdir=/src");
        assert_eq!(f.text, "make all");
        assert_eq!(f.opts, vec![("creates".into(), "/tmp/x".into()), ("chdir".into(), "/src".into())]);
        let f = free_form("echo a=b");
        assert_eq!(f.text, "echo a=b");
    }
}
