//! `pbr`: the command line. Thin: it parses arguments and hands over to the engine.

// `Diag` is large, but it is only built on the way out with an error.
#![allow(clippy::result_large_err)]

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use pbr_engine::diag::Diag;
use pbr_engine::exec::{RunOptions, Runner};
use pbr_engine::inventory::Inventory;
use pbr_engine::playbook::Loader;
use pbr_engine::report::{Format, Reporter};
use pbr_engine::saved_plan;
use pbr_engine::template::Templar;
use serde_json::{Map, Value};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

mod demo;
mod vault_cmd;

/// Exit codes (also in README):
/// 0 all hosts ok; 2 a host failed; 3 a host was unreachable; 4 bad input, nothing was run;
/// 5 `pbr apply` refused a host that drifted since its plan (the others were applied).
const EXIT_INPUT: u8 = 4;
const EXIT_DRIFT: u8 = 5;

#[derive(Parser)]
#[command(
    name = "pbr",
    version,
    about = "An agentless playbook engine: Ansible-syntax playbooks, typed modules, check and diff by construction.",
    long_about = "pbr converges hosts over SSH (or locally) from Ansible-syntax playbooks and inventories.\n\
Every module probes the host, plans the changes as a diff, and only then applies them: \
--check shows the plan and writes nothing, --diff shows it in detail, and a second run changes nothing.",
    after_help = "Examples:\n  pbr run playbooks/site.yml                 converge every host\n  \
pbr run playbooks/site.yml --check --diff  show what would change, change nothing\n  \
pbr run site.yml -C --save-plan site.plan  save that plan; `pbr apply site.plan` runs it\n  \
pbr run site.yml -l pi3 -e pi_size=64G      one host, an extra variable\n  \
pbr lint playbooks/                        check playbooks without touching a host\n  \
pbr doc lvm_cache                          a module's parameters and examples\n  \
pbr demo                                   a self-contained demo on this machine\n\n\
Exit codes: 0 ok, 2 a host failed, 3 a host unreachable, 4 bad input (nothing run),\n\
5 `pbr apply` refused a host that drifted since its plan."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run playbooks against the inventory.
    #[command(after_help = "Inventory: -i may be repeated; without it ./inventory/ is used if present.\n\
Variables: -e k=v, -e @vars.yml, -e '{\"k\": [1, 2]}' (highest precedence).\n\
Limits: -l 'pis:!pi3', -l @site.retry; -f N hosts at once; `serial:` and `throttle:` in playbooks.")]
    Run(RunArgs),
    /// Apply a saved plan: each host is checked again, and only where it still plans the same
    /// is the run made; a host that drifted is refused and named, and nothing is written on it.
    #[command(after_help = "Make a plan: pbr run site.yml --check --save-plan site.plan\n\
Review it:   pbr show site.plan\n\
Apply it:    pbr apply site.plan   (give the same -e and vault passwords as for the plan)\n\
Exit codes: as `pbr run`, and 5 when a host was refused because it drifted (the others were applied).")]
    Apply(ApplyArgs),
    /// Print a saved plan as `pbr run --check --diff` prints it.
    Show(ShowArgs),
    /// Show the inventory as pbr understood it.
    Inventory(InvArgs),
    /// Check playbooks without connecting to any host.
    Lint(LintArgs),
    /// Show module documentation, generated from the modules' typed parameters.
    Doc(DocArgs),
    /// Encrypt and decrypt files and values as ansible-vault does (and reads).
    #[command(
        after_help = "Passwords: --vault-password-file FILE, --vault-id [LABEL@]FILE|prompt, -J/--ask-vault-pass;\n\
without them ANSIBLE_VAULT_PASSWORD_FILE or ansible.cfg's vault_password_file.\n\
Example: pbr vault encrypt_string --vault-password-file ~/.vault 's3cret' --name wifi_passphrase"
    )]
    Vault(vault_cmd::VaultArgs),
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Run a bundled demo playbook against this machine (`connection: local`) in a temp dir.
    Demo {
        /// Keep the temp dir and print its path.
        #[arg(long)]
        keep: bool,
    },
    /// Print the version.
    Version,
}

#[derive(Args)]
struct RunArgs {
    /// Playbook files, run in order.
    #[arg(required = true)]
    playbooks: Vec<PathBuf>,
    /// Inventory file, directory or comma-separated host list (repeatable).
    #[arg(short, long = "inventory")]
    inventory: Vec<PathBuf>,
    /// Limit to hosts matching this pattern (`pi1:pi2`, `pis:!pi3`, `@file.retry`).
    #[arg(short, long)]
    limit: Option<String>,
    /// Only run tasks with these tags (comma-separated).
    #[arg(short, long, value_delimiter = ',')]
    tags: Vec<String>,
    /// Skip tasks with these tags.
    #[arg(long, value_delimiter = ',')]
    skip_tags: Vec<String>,
    /// Show what would change; change nothing.
    #[arg(short = 'C', long)]
    check: bool,
    /// Show diffs of files and state.
    #[arg(short = 'D', long)]
    diff: bool,
    /// Extra variables: k=v, @file.yml, or JSON/YAML.
    #[arg(short, long = "extra-vars")]
    extra_vars: Vec<String>,
    #[command(flatten)]
    exec: ExecOpts,
    /// With --check: save the plan to FILE, for `pbr show FILE` and `pbr apply FILE`.
    #[arg(long, value_name = "FILE")]
    save_plan: Option<PathBuf>,
    /// Start at the first task of this name (exact or a glob; `role : name` too), skipping the
    /// tasks before it (not inside dynamic includes, which load when reached).
    #[arg(long, value_name = "NAME")]
    start_at_task: Option<String>,
    /// Load the playbooks, run the preflight checks and exit: nothing connects or runs.
    #[arg(long)]
    syntax_check: bool,
    /// List each play's hosts (after --limit) and exit, connecting to nothing.
    #[arg(long)]
    list_hosts: bool,
    /// List each play's tasks (after --tags and --skip-tags) and exit.
    #[arg(long)]
    list_tasks: bool,
    /// List each play's task tags and exit.
    #[arg(long)]
    list_tags: bool,
    #[command(flatten)]
    vault: vault_cmd::VaultOpts,
}

/// How a run goes, shared by `pbr run` and `pbr apply`.
#[derive(Args, Clone)]
struct ExecOpts {
    /// How many hosts run at once (default: `ANSIBLE_FORKS`, else `forks` in ansible.cfg, else 50).
    #[arg(short, long)]
    forks: Option<usize>,
    /// After applying, probe again: a module that still has work to do fails ("did not converge").
    #[arg(long)]
    verify: bool,
    /// More output (-v results, -vv task paths).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFmt::Human)]
    output: OutputFmt,
    /// Ask for the become (sudo) password.
    #[arg(short = 'K', long)]
    ask_become_pass: bool,
    /// Become (sudo) on every host where neither the host (`ansible_become`) nor the playbook
    /// (`become:`) says (also `ANSIBLE_BECOME`, `become` in ansible.cfg's [privilege_escalation]).
    #[arg(short = 'b', long = "become")]
    become_: bool,
    /// The user to become where neither the host nor the playbook names one (default root; also
    /// `ANSIBLE_BECOME_USER`, `become_user` in ansible.cfg).
    #[arg(long, value_name = "USER")]
    become_user: Option<String>,
    /// How to become: sudo, su or doas (default sudo; also `ANSIBLE_BECOME_METHOD`,
    /// `become_method` in ansible.cfg).
    #[arg(long, value_name = "METHOD")]
    become_method: Option<String>,
    /// The login user where neither the host (`ansible_user`) nor the playbook (`remote_user:`)
    /// names one (default: yours; also `ANSIBLE_REMOTE_USER`, `remote_user` in ansible.cfg).
    #[arg(short = 'u', long = "user", value_name = "REMOTE_USER")]
    user: Option<String>,
    /// The connection (ssh, local) where neither the host (`ansible_connection`) nor the play
    /// (`connection:`) names one (default ssh; also `ANSIBLE_TRANSPORT`, `transport` in ansible.cfg).
    #[arg(short = 'c', long)]
    connection: Option<String>,
    /// The SSH key where the host names none (`ansible_ssh_private_key_file`; also
    /// `ANSIBLE_PRIVATE_KEY_FILE`, `private_key_file` in ansible.cfg).
    #[arg(long, alias = "key-file", value_name = "FILE")]
    private_key: Option<String>,
    /// Seconds to wait for an SSH connection (default 10; also `ANSIBLE_TIMEOUT`, `timeout` in
    /// ansible.cfg).
    #[arg(short = 'T', long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Ask for the SSH password (used where the host sets no `ansible_password`; asked before
    /// the become password).
    #[arg(short = 'k', long)]
    ask_pass: bool,
    /// Read the SSH password from FILE (its first line; also `ANSIBLE_CONNECTION_PASSWORD_FILE`).
    #[arg(long, value_name = "FILE")]
    connection_password_file: Option<PathBuf>,
    /// Read the become password from FILE (its first line; also `ANSIBLE_BECOME_PASSWORD_FILE`).
    #[arg(long, value_name = "FILE")]
    become_password_file: Option<PathBuf>,
    /// ssh options for every host that sets no `ansible_ssh_common_args` (`-o Name=value`...;
    /// also `ANSIBLE_SSH_COMMON_ARGS`, `ssh_common_args` in ansible.cfg's [ssh_connection]).
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    ssh_common_args: Option<String>,
    /// More ssh options for every host that sets no `ansible_ssh_extra_args` (also
    /// `ANSIBLE_SSH_EXTRA_ARGS`, `ssh_extra_args` in ansible.cfg's [ssh_connection]).
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    ssh_extra_args: Option<String>,
    /// Host key policy: yes (known_hosts only, default), accept-new, off.
    #[arg(long, value_name = "MODE")]
    host_key_checking: Option<String>,
    /// An ssh_config file to read instead of ~/.ssh/config.
    #[arg(short = 'F', long)]
    ssh_config: Option<PathBuf>,
    /// Do not write PLAYBOOK.retry after failures.
    #[arg(long)]
    no_retry_file: bool,
    /// Run notified handlers on a host even after a task failed there (as the play keyword
    /// `force_handlers: true`; also `ANSIBLE_FORCE_HANDLERS`).
    #[arg(long)]
    force_handlers: bool,
    /// Forget the cached facts of the hosts the run reaches (with a `jsonfile` fact cache).
    #[arg(long)]
    flush_cache: bool,
}

#[derive(Args)]
struct ApplyArgs {
    /// A plan saved by `pbr run --check --save-plan FILE`.
    plan: PathBuf,
    /// The extra variables the plan was made with (checked: they must be the same).
    #[arg(short, long = "extra-vars")]
    extra_vars: Vec<String>,
    /// Show diffs of files and state.
    #[arg(short = 'D', long)]
    diff: bool,
    #[command(flatten)]
    exec: ExecOpts,
    #[command(flatten)]
    vault: vault_cmd::VaultOpts,
}

#[derive(Args)]
struct ShowArgs {
    /// A plan saved by `pbr run --check --save-plan FILE`.
    plan: PathBuf,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum OutputFmt {
    Human,
    Json,
    /// JUnit XML for test dashboards, printed when the run ends.
    Junit,
}

#[derive(Args)]
struct InvArgs {
    #[arg(short, long = "inventory")]
    inventory: Vec<PathBuf>,
    /// Print every group and host with variables, as JSON.
    #[arg(long)]
    list: bool,
    /// Print the group tree.
    #[arg(long, num_args = 0..=1, default_missing_value = "all")]
    graph: Option<String>,
    /// Print one host's variables.
    #[arg(long)]
    host: Option<String>,
    #[command(flatten)]
    vault: vault_cmd::VaultOpts,
}

#[derive(Args)]
struct LintArgs {
    /// Playbooks or directories (default: playbooks/).
    paths: Vec<PathBuf>,
    #[arg(short, long = "inventory")]
    inventory: Vec<PathBuf>,
    /// Output format.
    #[arg(long, default_value = "human")]
    format: String,
    /// Warnings also fail (exit 1).
    #[arg(long)]
    strict: bool,
    /// Check that this --limit pattern matches hosts.
    #[arg(short, long)]
    limit: Option<String>,
    /// Extra variables the playbooks will be run with (k=v, @file.yml, or JSON/YAML): defined
    /// for the `undefined-var` rule, as `pbr run -e` would have them.
    #[arg(short, long = "extra-vars")]
    extra_vars: Vec<String>,
    /// Vault passwords (without one, `!vault` values are checked as the text they are).
    #[command(flatten)]
    vault: vault_cmd::VaultOpts,
}

#[derive(Args)]
struct DocArgs {
    /// A module name; without it, the list of modules.
    module: Option<String>,
    /// Output format: text or json (all schemas).
    #[arg(long, default_value = "text")]
    format: String,
}

/// Write to stdout; a closed pipe (`pbr doc | head`) is not an error.
fn out(text: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes()).and_then(|_| o.flush());
}

fn color_out() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

/// Live progress only where a person watches: stderr is a terminal that can redraw a line.
fn progress_tty() -> bool {
    std::io::stderr().is_terminal() && std::env::var("TERM").as_deref() != Ok("dumb")
}

fn color_err() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}

fn input_error(d: &Diag) -> ExitCode {
    eprint!("{}", d.render(color_err()));
    ExitCode::from(EXIT_INPUT)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("PBR_LOG"))
        .with_writer(std::io::stderr)
        .init();
    // One thread drives every host: the work is waiting on hosts, and a second thread only adds
    // cross-thread wake-ups per SSH packet (measured: ~12% less CPU at 100 hosts).
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match cli.cmd {
        Cmd::Run(a) => match a.vault.install().map(|()| install_roles_path()) {
            Ok(()) => rt.block_on(cmd_run(a)),
            Err(code) => code,
        },
        Cmd::Apply(a) => match a.vault.install().map(|()| install_roles_path()) {
            Ok(()) => rt.block_on(cmd_apply(a)),
            Err(code) => code,
        },
        Cmd::Show(a) => cmd_show(a),
        Cmd::Inventory(a) => match a.vault.install() {
            Ok(()) => cmd_inventory(a),
            Err(code) => code,
        },
        Cmd::Lint(a) => {
            pbr_engine::vault::keep_ciphertext_without_secret(true);
            install_roles_path();
            match a.vault.install() {
                Ok(()) => cmd_lint(a),
                Err(code) => code,
            }
        }
        Cmd::Vault(a) => vault_cmd::cmd_vault(a),
        Cmd::Doc(a) => cmd_doc(a),
        Cmd::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "pbr", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Cmd::Demo { keep } => rt.block_on(demo::run(keep)),
        Cmd::Version => {
            println!("pbr {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}

/// The inventory when `-i` is not given: `PBR_INVENTORY`/`ANSIBLE_INVENTORY` (comma-separated),
/// else `inventory =` in `./ansible.cfg`'s `[defaults]`, else `./inventory/` if it exists.
fn default_inventory(given: &[PathBuf]) -> Vec<PathBuf> {
    if !given.is_empty() {
        return given.to_vec();
    }
    let split = |s: &str| -> Vec<PathBuf> {
        s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(PathBuf::from).collect()
    };
    for var in ["PBR_INVENTORY", "ANSIBLE_INVENTORY"] {
        if let Ok(v) = std::env::var(var)
            && !v.trim().is_empty()
        {
            return split(&v);
        }
    }
    if let Some(v) = ansible_cfg_default("inventory") {
        // relative to the ansible.cfg's directory, as Ansible reads its paths
        let dir = config_dir();
        return split(&v).into_iter().map(|p| if p.is_relative() { dir.join(p) } else { p }).collect();
    }
    let d = Path::new("inventory");
    if d.exists() { vec![d.to_path_buf()] } else { vec![] }
}

/// The ansible.cfg a run reads, found as Ansible finds it: `ANSIBLE_CONFIG` (a file, or a
/// directory holding `ansible.cfg`), else `./ansible.cfg`, else `~/.ansible.cfg`, else
/// `/etc/ansible/ansible.cfg`.
fn config_file() -> Option<PathBuf> {
    config().as_ref().map(|(p, _)| p.clone())
}

/// The ansible.cfg and its text, found and read once per run.
fn config() -> &'static Option<(PathBuf, String)> {
    static CFG: std::sync::OnceLock<Option<(PathBuf, String)>> = std::sync::OnceLock::new();
    CFG.get_or_init(|| {
        let path = find_config_file()?;
        let text = std::fs::read_to_string(&path).ok()?;
        Some((path, text))
    })
}

fn find_config_file() -> Option<PathBuf> {
    if let Some(v) = std::env::var_os("ANSIBLE_CONFIG").filter(|v| !v.is_empty()) {
        let p = PathBuf::from(expand_home(&v.to_string_lossy()));
        let p = if p.is_dir() { p.join("ansible.cfg") } else { p };
        return p.is_file().then_some(p);
    }
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ansible.cfg"));
    [Some(PathBuf::from("ansible.cfg")), home, Some(PathBuf::from("/etc/ansible/ansible.cfg"))]
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
}

/// The directory of the ansible.cfg ([`config_file`]), where its relative paths start.
fn config_dir() -> PathBuf {
    config_file()
        .and_then(|f| f.parent().map(Path::to_path_buf))
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A path-valued key of ansible.cfg's `[defaults]`, relative to the file's directory as Ansible
/// reads it (`~` expanded).
fn ansible_cfg_path(key: &str) -> Option<String> {
    let v = ansible_cfg_default(key)?;
    let p = PathBuf::from(expand_home(&v));
    if p.is_absolute() || v.is_empty() {
        return Some(p.display().to_string());
    }
    Some(config_dir().join(p).display().to_string())
}

/// A key of the ansible.cfg's `[defaults]` (comments after `#` or `;` dropped).
fn ansible_cfg_default(key: &str) -> Option<String> {
    ansible_cfg("defaults", key)
}

/// A key of a section of the ansible.cfg ([`config_file`]; comments after `#` or `;` dropped).
fn ansible_cfg(section: &str, key: &str) -> Option<String> {
    let cfg = &config().as_ref()?.1;
    let mut inside = false;
    for line in cfg.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            inside = l.trim_matches(['[', ']']) == section;
        } else if inside
            && let Some((k, v)) = l.split_once('=')
            && k.trim() == key
        {
            return Some(v.split(['#', ';']).next().unwrap_or("").trim().to_string());
        }
    }
    None
}

/// A setting as Ansible orders its sources: the environment variable `env` (when not empty),
/// else `key` in ansible.cfg's `[defaults]`.
fn setting(env: &str, key: &str) -> Option<String> {
    setting_in("defaults", env, key)
}

/// [`setting`] from another section of ansible.cfg.
fn setting_in(section: &str, env: &str, key: &str) -> Option<String> {
    std::env::var(env).ok().filter(|v| !v.trim().is_empty()).or_else(|| ansible_cfg(section, key))
}

/// What the command line, the environment and ansible.cfg set for every host (in that order),
/// and the SSH connect timeout.
fn conn_defaults(e: &ExecOpts) -> Result<(pbr_engine::exec::ConnDefaults, Option<u64>), ExitCode> {
    const PE: &str = "privilege_escalation";
    let become_ = e.become_
        || match setting_in(PE, "ANSIBLE_BECOME", "become") {
            Some(v) => pbr_engine::params::parse_bool(&v).ok_or_else(|| {
                eprintln!("error: become (ANSIBLE_BECOME or ansible.cfg) must be a boolean, got {v:?}");
                ExitCode::from(EXIT_INPUT)
            })?,
            None => false,
        };
    let become_method = e.become_method.clone().or_else(|| setting_in(PE, "ANSIBLE_BECOME_METHOD", "become_method"));
    if let Some(m) = &become_method
        && pbr_engine::BecomeMethod::parse(m).is_none()
    {
        eprintln!("error: unsupported become method `{m}` (sudo, su, doas)");
        return Err(ExitCode::from(EXIT_INPUT));
    }
    let timeout = match e.timeout {
        Some(t) => Some(t),
        None => match setting("ANSIBLE_TIMEOUT", "timeout") {
            Some(v) => Some(v.parse::<u64>().map_err(|_| {
                eprintln!(
                    "error: timeout (ANSIBLE_TIMEOUT or ansible.cfg) must be a whole number of seconds, got {v:?}"
                );
                ExitCode::from(EXIT_INPUT)
            })?),
            None => None,
        },
    };
    if timeout == Some(0) {
        eprintln!("error: the SSH timeout must be at least 1 second");
        return Err(ExitCode::from(EXIT_INPUT));
    }
    let defaults = pbr_engine::exec::ConnDefaults {
        connection: e.connection.clone().or_else(|| setting("ANSIBLE_TRANSPORT", "transport")),
        remote_user: e.user.clone().or_else(|| setting("ANSIBLE_REMOTE_USER", "remote_user")),
        private_key_file: e.private_key.clone().or_else(|| {
            std::env::var("ANSIBLE_PRIVATE_KEY_FILE")
                .ok()
                .filter(|v| !v.is_empty())
                .or_else(|| ansible_cfg_path("private_key_file"))
        }),
        become_,
        become_user: e.become_user.clone().or_else(|| setting_in(PE, "ANSIBLE_BECOME_USER", "become_user")),
        become_method,
        password: None,
        ssh_common_args: e
            .ssh_common_args
            .clone()
            .or_else(|| setting_in("ssh_connection", "ANSIBLE_SSH_COMMON_ARGS", "ssh_common_args")),
        ssh_extra_args: e
            .ssh_extra_args
            .clone()
            .or_else(|| setting_in("ssh_connection", "ANSIBLE_SSH_EXTRA_ARGS", "ssh_extra_args")),
    };
    Ok((defaults, timeout))
}

/// [`setting`] read as a boolean (`yes`, `False`...), `default` when unset or unreadable.
fn setting_bool(env: &str, key: &str, default: bool) -> bool {
    setting(env, key).and_then(|v| pbr_engine::params::parse_bool(&v)).unwrap_or(default)
}

/// The roles path, as Ansible reads it: `ANSIBLE_ROLES_PATH` (or `PBR_ROLES_PATH`), else
/// `roles_path` in ./ansible.cfg (relative to it); `:`-separated, `~` expanded.
fn install_roles_path() {
    let (text, base) = match std::env::var("PBR_ROLES_PATH").or_else(|_| std::env::var("ANSIBLE_ROLES_PATH")) {
        Ok(v) if !v.trim().is_empty() => (v, None),
        _ => match ansible_cfg_default("roles_path") {
            Some(v) => (v, Some(config_dir())),
            None => return,
        },
    };
    let dirs = text
        .split(':')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            let p = PathBuf::from(expand_home(d));
            match &base {
                Some(b) if p.is_relative() => b.join(p),
                _ => p,
            }
        })
        .map(|p| std::path::absolute(&p).unwrap_or(p))
        .collect();
    pbr_engine::playbook::set_roles_path(dirs);
}

/// `~/x` -> `$HOME/x`.
fn expand_home(p: &str) -> String {
    match (p.strip_prefix("~/"), std::env::var("HOME")) {
        (Some(rest), Ok(h)) => format!("{h}/{rest}"),
        _ => p.to_string(),
    }
}

/// Parse `-e` values: `@file`, JSON/YAML mappings, or `k=v` words.
fn parse_extra_vars(items: &[String]) -> Result<Map<String, Value>, Diag> {
    let mut out = Map::new();
    for item in items {
        if let Some(f) = item.strip_prefix('@') {
            out.extend(pbr_engine::playbook::load_vars_file(Path::new(f), Default::default())?);
        } else if item.trim_start().starts_with('{') {
            let docs = pbr_engine::yaml::load_str("-e", item)?;
            match docs.first().map(|n| n.to_value()) {
                Some(Value::Object(m)) => out.extend(m),
                _ => {
                    return Err(Diag::error(
                        "extra-vars",
                        Default::default(),
                        format!("-e {item}: expected a mapping"),
                    ));
                }
            }
        } else {
            let (m, rest) = pbr_engine::playbook::parse_kv(item, None);
            if !rest.is_empty() {
                return Err(Diag::error(
                    "extra-vars",
                    Default::default(),
                    format!("-e: cannot read `{rest}` as key=value"),
                )
                .with_help("use -e key=value, -e @file.yml or -e '{\"key\": value}'"));
            }
            out.extend(m);
        }
    }
    Ok(out)
}

/// Load the inventory and playbooks; every input error happens here, before any host is touched.
fn load_all(
    playbooks: &[PathBuf],
    inventory: &[PathBuf],
    registry: &pbr_engine::Registry,
) -> Result<(Inventory, Vec<pbr_engine::playbook::Playbook>), Diag> {
    let mut inv = Inventory::load(&default_inventory(inventory))?;
    let mut pbs = Vec::new();
    for p in playbooks {
        if !p.exists() {
            return Err(Diag::error("io", Default::default(), format!("playbook not found: {}", p.display())));
        }
        let is_module = |n: &str| registry.contains(n);
        let mut loader = Loader::new(&is_module);
        let pb = loader.load_playbook(p).map_err(|d| pbr_lint::with_module_hint(d, registry))?;
        // every task and play that did not load is named, then the run refuses to start
        if let Some(last) = loader.recovered.pop() {
            for d in loader.recovered.drain(..) {
                eprint!("{}", pbr_lint::with_module_hint(d, registry).render(color_err()));
            }
            return Err(pbr_lint::with_module_hint(last, registry));
        }
        if let Some(dir) = p.parent() {
            inv.add_playbook_dir(dir)?;
        }
        pbs.push(pb);
    }
    Ok((inv, pbs))
}

/// Everything a run needs, read and checked from its arguments.
struct Prepared {
    registry: pbr_engine::Registry,
    inv: Inventory,
    pbs: Vec<pbr_engine::playbook::Playbook>,
    templar: Arc<Templar>,
    opts: RunOptions,
}

/// Load and check what a run needs; the exit code when the input is bad (nothing ran).
fn prepare(a: &RunArgs) -> Result<Prepared, ExitCode> {
    let registry = pbr_engine::Registry::with(pbr_modules::register);
    let (inv, pbs) = load_all(&a.playbooks, &a.inventory, &registry).map_err(|d| input_error(&d))?;
    let mut templar = Templar::new();
    templar.set_allow_broken_conditionals(allow_broken_conditionals());
    let templar = Arc::new(templar);
    let ds = pbr_lint::check(&pbs, &inv, &registry, &templar);
    let errors: Vec<_> = ds.iter().filter(|d| d.severity == pbr_engine::Severity::Error).collect();
    if !errors.is_empty() {
        const SHOWN: usize = 10;
        for d in errors.iter().take(SHOWN) {
            eprint!("{}", d.render(color_err()));
        }
        if errors.len() > SHOWN {
            eprintln!(
                "... and {} more error(s): `pbr lint {}` lists them all",
                errors.len() - SHOWN,
                a.playbooks.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" ")
            );
        }
        return Err(ExitCode::from(EXIT_INPUT));
    }
    let extra_vars = parse_extra_vars(&a.extra_vars).map_err(|d| input_error(&d))?;
    // the SSH password first, then the become password, as ansible-playbook asks them
    let ssh_password = password_from(
        a.exec.ask_pass,
        a.exec.connection_password_file.clone(),
        "ANSIBLE_CONNECTION_PASSWORD_FILE",
        "SSH password: ",
        "the SSH password",
    )?;
    let become_password = password_from(
        a.exec.ask_become_pass,
        a.exec.become_password_file.clone(),
        "ANSIBLE_BECOME_PASSWORD_FILE",
        "BECOME password: ",
        "the become password",
    )?;
    let mut ssh =
        pbr_engine::transport::ssh::SshGlobals { ssh_config: a.exec.ssh_config.clone(), ..Default::default() };
    let (mut defaults, timeout) = conn_defaults(&a.exec)?;
    defaults.password = ssh_password;
    if let Some(t) = timeout {
        ssh.connect_timeout = std::time::Duration::from_secs(t);
    }
    let hkc = a
        .exec
        .host_key_checking
        .clone()
        .or_else(|| std::env::var("PBR_HOST_KEY_CHECKING").ok())
        .or_else(|| setting("ANSIBLE_HOST_KEY_CHECKING", "host_key_checking"));
    if let Some(m) = hkc {
        match pbr_engine::transport::ssh::HostKeyChecking::parse(&m) {
            Some(mode) => ssh.host_key_checking = Some(mode),
            None => {
                eprintln!("error: --host-key-checking takes yes, accept-new or off (got {m:?})");
                return Err(ExitCode::from(EXIT_INPUT));
            }
        }
    }
    if let Some(l) = &a.limit
        && let Err(e) = inv.limit(&inv.select("all").unwrap_or_default(), l)
    {
        eprintln!("error: --limit {l}: {e}");
        return Err(ExitCode::from(EXIT_INPUT));
    }
    let opts = RunOptions {
        check: a.check,
        diff: a.diff,
        verify: a.exec.verify,
        forks: forks(a.exec.forks)?,
        limit: a.limit.clone(),
        tags: a.tags.clone(),
        skip_tags: a.skip_tags.clone(),
        extra_vars,
        become_password,
        defaults,
        gathering: gathering()?,
        start_at_task: a.start_at_task.clone(),
        ssh,
        retry_files: !a.exec.no_retry_file && retry_files_enabled(),
        force_handlers: a.exec.force_handlers || setting_bool("ANSIBLE_FORCE_HANDLERS", "force_handlers", false),
        fact_cache: fact_cache()?,
        flush_cache: a.exec.flush_cache,
        plan: None,
    };
    // what `lookup('config', NAME)` answers: Ansible's names, the values this run uses
    pbr_engine::template::set_config(vec![
        ("ALLOW_BROKEN_CONDITIONALS".into(), serde_json::json!(allow_broken_conditionals())),
        ("DEFAULT_FORKS".into(), serde_json::json!(opts.forks)),
        ("DEFAULT_FORCE_HANDLERS".into(), serde_json::json!(opts.force_handlers)),
        ("RETRY_FILES_ENABLED".into(), serde_json::json!(retry_files_enabled())),
        ("CACHE_PLUGIN".into(), serde_json::json!(if opts.fact_cache.is_some() { "jsonfile" } else { "memory" })),
    ]);
    warn_unhonoured_cfg_keys();
    Ok(Prepared { registry, inv, pbs, templar, opts })
}

/// `--forks`, else `ANSIBLE_FORKS`, else `forks` in ansible.cfg, else 50.
fn forks(given: Option<usize>) -> Result<usize, ExitCode> {
    if let Some(n) = given {
        return Ok(n.max(1));
    }
    let (v, from) = match std::env::var("ANSIBLE_FORKS") {
        Ok(v) if !v.trim().is_empty() => (v, "ANSIBLE_FORKS"),
        _ => match ansible_cfg_default("forks") {
            Some(v) => (v, "forks in ansible.cfg"),
            None => return Ok(50),
        },
    };
    match v.trim().parse::<usize>() {
        Ok(n) => Ok(n.max(1)),
        Err(_) => {
            eprintln!("error: {from} must be a number of hosts (got {v:?})");
            Err(ExitCode::from(EXIT_INPUT))
        }
    }
}

/// `retry_files_enabled` (ansible.cfg, or `ANSIBLE_RETRY_FILES_ENABLED`): true unless set false.
fn retry_files_enabled() -> bool {
    setting_bool("ANSIBLE_RETRY_FILES_ENABLED", "retry_files_enabled", true)
}

/// The fact cache ansible.cfg (`fact_caching`, `fact_caching_connection`, `fact_caching_prefix`,
/// `fact_caching_timeout`) or their `ANSIBLE_CACHE_PLUGIN*` variables ask for: `memory` (the
/// default: none kept between runs) or `jsonfile`.
fn fact_cache() -> Result<Option<pbr_engine::fact_cache::FactCache>, ExitCode> {
    let plugin = setting("ANSIBLE_CACHE_PLUGIN", "fact_caching").unwrap_or_else(|| "memory".into());
    let plugin = plugin.trim();
    match plugin.strip_prefix("ansible.builtin.").unwrap_or(plugin) {
        "memory" => Ok(None),
        "jsonfile" | "community.general.jsonfile" => {
            let dir = std::env::var("ANSIBLE_CACHE_PLUGIN_CONNECTION").ok().filter(|v| !v.trim().is_empty());
            let Some(dir) = dir.or_else(|| ansible_cfg_path("fact_caching_connection")) else {
                eprintln!(
                    "error: the jsonfile fact cache needs a directory: fact_caching_connection in ansible.cfg or ANSIBLE_CACHE_PLUGIN_CONNECTION"
                );
                return Err(ExitCode::from(EXIT_INPUT));
            };
            let timeout = match setting("ANSIBLE_CACHE_PLUGIN_TIMEOUT", "fact_caching_timeout") {
                None => 86400,
                Some(t) => t.trim().parse::<u64>().map_err(|_| {
                    eprintln!("error: fact_caching_timeout must be a number of seconds (got {t:?})");
                    ExitCode::from(EXIT_INPUT)
                })?,
            };
            let prefix = setting("ANSIBLE_CACHE_PLUGIN_PREFIX", "fact_caching_prefix").unwrap_or_default();
            Ok(Some(pbr_engine::fact_cache::FactCache::new(dir.trim(), prefix, timeout)))
        }
        other => {
            eprintln!(
                "error: fact cache plugin {other:?} is not supported: pbr keeps facts in memory (the default) or with jsonfile"
            );
            Err(ExitCode::from(EXIT_INPUT))
        }
    }
}

/// `gathering` (ansible.cfg, or `ANSIBLE_GATHERING`): implicit (the default), explicit or smart.
fn gathering() -> Result<pbr_engine::exec::Gathering, ExitCode> {
    use pbr_engine::exec::Gathering;
    match setting("ANSIBLE_GATHERING", "gathering").as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("implicit") => Ok(Gathering::Implicit),
        Some("explicit") => Ok(Gathering::Explicit),
        Some("smart") => Ok(Gathering::Smart),
        Some(other) => {
            eprintln!(
                "error: gathering (ANSIBLE_GATHERING or ansible.cfg) is implicit, explicit or smart, not {other:?}"
            );
            Err(ExitCode::from(EXIT_INPUT))
        }
    }
}

/// `allow_broken_conditionals` (ansible.cfg, or `ANSIBLE_ALLOW_BROKEN_CONDITIONALS`): false
/// unless set (see `Templar::eval_bool`).
fn allow_broken_conditionals() -> bool {
    setting_bool("ANSIBLE_ALLOW_BROKEN_CONDITIONALS", "allow_broken_conditionals", false)
}

/// The ansible.cfg keys pbr reads in `[privilege_escalation]`.
const HONOURED_PE_KEYS: &[&str] = &["become", "become_user", "become_method"];

/// The ansible.cfg keys pbr reads in `[defaults]`; a run warns about the others instead of
/// ignoring them.
const HONOURED_CFG_KEYS: &[&str] = &[
    "inventory",
    "remote_user",
    "gathering",
    "private_key_file",
    "timeout",
    "transport",
    "roles_path",
    "vault_password_file",
    "forks",
    "host_key_checking",
    "retry_files_enabled",
    "allow_broken_conditionals",
    "force_handlers",
    "fact_caching",
    "fact_caching_connection",
    "fact_caching_prefix",
    "fact_caching_timeout",
];

/// Keys of ./ansible.cfg's `[defaults]` and `[privilege_escalation]` pbr does not read.
fn unhonoured_cfg_keys(cfg: &str) -> Vec<String> {
    let mut section = String::new();
    let mut out = vec![];
    for line in cfg.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            section = l.trim_matches(['[', ']']).to_string();
        } else if l.starts_with(['#', ';']) || l.is_empty() {
        } else if let Some((k, _)) = l.split_once('=') {
            let k = k.trim();
            let read = (section == "defaults" && HONOURED_CFG_KEYS.contains(&k))
                || (section == "privilege_escalation" && HONOURED_PE_KEYS.contains(&k));
            if !read && (section == "defaults" || section == "privilege_escalation") {
                out.push(format!("[{section}] {k}"));
            }
        }
    }
    out
}

fn warn_unhonoured_cfg_keys() {
    let Some((path, cfg)) = config() else { return };
    let keys = unhonoured_cfg_keys(cfg);
    if !keys.is_empty() {
        eprintln!(
            "[WARNING]: {}: pbr does not read {} (it reads {} in [defaults] and {} in [privilege_escalation]; use the playbook, the inventory or the command line for the rest)",
            path.display(),
            keys.join(", "),
            HONOURED_CFG_KEYS.join(", "),
            HONOURED_PE_KEYS.join(", ")
        );
    }
}

/// The reporter a run's arguments ask for.
fn reporter_for(a: &RunArgs) -> Reporter {
    let format = match a.exec.output {
        OutputFmt::Json => Format::Json,
        OutputFmt::Junit => Format::Junit,
        OutputFmt::Human => Format::Human,
    };
    let mut reporter = Reporter::new(
        format,
        color_out() && format == Format::Human,
        a.diff,
        a.exec.verbose,
        Box::new(std::io::stdout()),
    );
    if format == Format::Human && progress_tty() {
        // which task, how many hosts are done, who is slow: on stderr, cleared when the task ends
        reporter = reporter.with_progress();
    }
    reporter
}

/// Run what [`prepare`] made; an interrupting signal or bad input ends it with its exit code.
async fn run_prepared(p: Prepared, reporter: Arc<Reporter>) -> Result<pbr_engine::exec::RunSummary, ExitCode> {
    let runner = Runner::new(&p.registry, p.templar, p.inv, p.opts, reporter);
    if !runner.start_task_exists(&p.pbs) {
        eprintln!(
            "error: --start-at-task {:?}: no task of that name (dynamic includes load only when reached, so their tasks cannot be started at)",
            runner.opts.start_at_task.as_deref().unwrap_or_default()
        );
        return Err(ExitCode::from(EXIT_INPUT));
    }
    let mut stop = Interrupt::install();
    tokio::select! {
        r = runner.run(&p.pbs) => r.map_err(|d| input_error(&d)),
        (name, code) = stop.recv() => {
            // The run is dropped here: local commands get SIGTERM, SSH channels close. A write
            // in flight is committed by the host only when every byte arrived, so the host keeps
            // the old file and no temp file.
            eprintln!("pbr: stopped by {name}; no task was left half done (unfinished writes were discarded)");
            Err(ExitCode::from(code))
        }
    }
}

async fn cmd_run(a: RunArgs) -> ExitCode {
    if a.save_plan.is_some() && !a.check {
        eprintln!("error: --save-plan needs --check: a plan is what a check run found to do");
        return ExitCode::from(EXIT_INPUT);
    }
    if a.save_plan.is_some() && a.start_at_task.is_some() {
        eprintln!("error: --save-plan saves a whole run's plan: it does not take --start-at-task");
        return ExitCode::from(EXIT_INPUT);
    }
    let p = match prepare(&a) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if a.syntax_check {
        // as ansible-playbook says it: the playbooks loaded and passed the checks
        for pb in &a.playbooks {
            println!("\nplaybook: {}", pb.display());
        }
        return ExitCode::SUCCESS;
    }
    if a.list_hosts || a.list_tasks || a.list_tags {
        let what = pbr_engine::exec::Listing { hosts: a.list_hosts, tasks: a.list_tasks, tags: a.list_tags };
        let runner = Runner::new(&p.registry, p.templar, p.inv, p.opts, Arc::new(reporter_for(&a)));
        return match runner.listing(&p.pbs, what) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(d) => input_error(&d),
        };
    }
    let salt = match a.save_plan.as_ref().map(|_| saved_plan::new_salt()).transpose() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let extra = salt.as_ref().map(|s| saved_plan::extra_vars_digest(s, &p.opts.extra_vars));
    let mut reporter = reporter_for(&a);
    if a.save_plan.is_some() {
        reporter = reporter.recording();
    }
    let reporter = Arc::new(reporter);
    let summary = match run_prepared(p, reporter.clone()).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    if let (Some(path), Some(salt), Some(extra)) = (&a.save_plan, salt, extra) {
        if summary.exit_code() != 0 {
            eprintln!("pbr: the check run did not succeed on every host: no plan saved to {}", path.display());
            return ExitCode::from(summary.exit_code() as u8);
        }
        let plan = saved_plan::PlanFile::new(run_spec(&a, extra), salt, reporter.recorded());
        if let Err(e) = plan.save(path) {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
        let changes: usize = plan.hosts.values().flatten().map(|t| t.changes.len()).sum();
        eprintln!(
            "pbr: plan saved to {} ({} hosts, {changes} changes): review it with `pbr show {0}`, apply it with \
             `pbr apply {0}`",
            path.display(),
            plan.hosts.len()
        );
    }
    ExitCode::from(summary.exit_code() as u8)
}

/// What a saved plan keeps of a run's arguments (paths made absolute: apply may run elsewhere).
fn run_spec(a: &RunArgs, extra_vars: String) -> saved_plan::RunSpec {
    let abs = |p: &PathBuf| -> PathBuf { std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()) };
    saved_plan::RunSpec {
        playbooks: a.playbooks.iter().map(abs).collect(),
        inventory: default_inventory(&a.inventory).iter().map(abs).collect(),
        limit: a.limit.clone(),
        tags: a.tags.clone(),
        skip_tags: a.skip_tags.clone(),
        extra_vars,
    }
}

/// `pbr apply FILE`: check each host again, refuse those that drifted, run the rest.
async fn cmd_apply(a: ApplyArgs) -> ExitCode {
    let plan = match saved_plan::PlanFile::load(&a.plan) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INPUT);
        }
    };
    let mut ra = RunArgs {
        playbooks: plan.run.playbooks.clone(),
        inventory: plan.run.inventory.clone(),
        limit: plan.run.limit.clone(),
        tags: plan.run.tags.clone(),
        skip_tags: plan.run.skip_tags.clone(),
        check: true,
        diff: false,
        extra_vars: a.extra_vars.clone(),
        exec: a.exec.clone(),
        save_plan: None,
        start_at_task: None,
        syntax_check: false,
        list_hosts: false,
        list_tasks: false,
        list_tags: false,
        vault: Default::default(),
    };
    // 1. the same check run, quietly, recorded
    let p = match prepare(&ra) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if saved_plan::extra_vars_digest(&plan.salt, &p.opts.extra_vars) != plan.run.extra_vars {
        eprintln!("error: the extra variables (-e) are not the ones the plan was made with: give the same ones");
        return ExitCode::from(EXIT_INPUT);
    }
    let become_password = p.opts.become_password.clone();
    let ssh_password = p.opts.defaults.password.clone();
    let quiet = Arc::new(Reporter::new(Format::Human, false, false, 0, Box::new(std::io::sink())).recording());
    if let Err(code) = run_prepared(p, quiet.clone()).await {
        return code;
    }
    let now = quiet.recorded();
    // 2. the hosts whose plan is still the same
    let mut ok = vec![];
    let mut refused = 0;
    let mut hosts: Vec<&String> = plan.hosts.keys().collect();
    hosts.extend(now.keys().filter(|h| !plan.hosts.contains_key(*h)));
    for h in hosts {
        match plan.drift(h, now.get(h)) {
            None => ok.push(h.clone()),
            Some(why) => {
                refused += 1;
                eprintln!("REFUSED: [{h}] drifted since the plan: {why}. Nothing was written on it.");
            }
        }
    }
    if ok.is_empty() {
        eprintln!("pbr: every host drifted since the plan: nothing was applied (make a new plan)");
        return ExitCode::from(EXIT_DRIFT);
    }
    // 3. the run, on those hosts only
    ra.check = false;
    ra.diff = a.diff;
    ra.exec.ask_become_pass = false;
    ra.exec.ask_pass = false;
    ra.limit = Some(ok.join(":"));
    let mut p = match prepare(&ra) {
        Ok(p) => p,
        Err(code) => return code,
    };
    p.opts.become_password = become_password;
    p.opts.defaults.password = ssh_password;
    // each task applies only the changes its host planned: a host that changes after the check
    // above is stopped at the task that differs, before it writes
    p.opts.plan = Some(Arc::new(plan));
    let summary = match run_prepared(p, Arc::new(reporter_for(&ra))).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    match summary.exit_code() {
        0 if refused > 0 => {
            eprintln!("pbr: applied on {} hosts; {refused} refused (drifted): see above", ok.len());
            ExitCode::from(EXIT_DRIFT)
        }
        c => ExitCode::from(c as u8),
    }
}

/// `pbr show FILE`: the plan as `--check --diff` prints it.
fn cmd_show(a: ShowArgs) -> ExitCode {
    match saved_plan::PlanFile::load(&a.plan) {
        Ok(plan) => {
            let r = Reporter::new(Format::Human, color_out(), true, 0, Box::new(std::io::stdout()));
            plan.show(&r);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_INPUT)
        }
    }
}

/// SIGINT, SIGTERM and SIGHUP, caught for the length of a run.
struct Interrupt {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
    hup: Option<tokio::signal::unix::Signal>,
}

impl Interrupt {
    fn install() -> Interrupt {
        use tokio::signal::unix::{SignalKind, signal};
        Interrupt {
            int: signal(SignalKind::interrupt()).ok(),
            term: signal(SignalKind::terminate()).ok(),
            hup: signal(SignalKind::hangup()).ok(),
        }
    }

    /// The first of those signals to arrive: its name and the exit code for it (128 + number).
    async fn recv(&mut self) -> (&'static str, u8) {
        async fn wait(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = wait(&mut self.int) => ("SIGINT", 130),
            _ = wait(&mut self.term) => ("SIGTERM", 143),
            _ = wait(&mut self.hup) => ("SIGHUP", 129),
        }
    }
}

/// Read a password from the terminal without echo (stty), or a line from stdin when not a TTY.
/// A password asked on the terminal (`ask`), else read from a file (the option, else the
/// environment variable `env`): its first line.
fn password_from(
    ask: bool,
    file: Option<PathBuf>,
    env: &str,
    prompt: &str,
    what: &str,
) -> Result<Option<pbr_engine::Secret>, ExitCode> {
    if ask {
        return match rpassword_prompt(prompt) {
            Some(p) => Ok(Some(pbr_engine::Secret::new(p))),
            None => {
                eprintln!("error: could not read {what}");
                Err(ExitCode::from(EXIT_INPUT))
            }
        };
    }
    let Some(f) = file.or_else(|| std::env::var_os(env).filter(|v| !v.is_empty()).map(PathBuf::from)) else {
        return Ok(None);
    };
    match std::fs::read_to_string(&f) {
        Ok(text) => Ok(Some(pbr_engine::Secret::new(text.lines().next().unwrap_or("").to_string()))),
        Err(e) => {
            eprintln!("error: cannot read {what} from {}: {e}", f.display());
            Err(ExitCode::from(EXIT_INPUT))
        }
    }
}

fn rpassword_prompt(prompt: &str) -> Option<String> {
    use std::io::{BufRead, Write};
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let tty = std::io::stdin().is_terminal();
    if tty {
        let _ = std::process::Command::new("stty").arg("-echo").status();
    }
    let mut line = String::new();
    let r = std::io::stdin().lock().read_line(&mut line);
    if tty {
        let _ = std::process::Command::new("stty").arg("echo").status();
        eprintln!();
    }
    // end of input is no answer (an empty line is an empty password)
    if r.ok()? == 0 {
        return None;
    }
    Some(line.trim_end_matches(['\n', '\r']).to_string())
}

fn cmd_inventory(a: InvArgs) -> ExitCode {
    let inv = match Inventory::load(&default_inventory(&a.inventory)) {
        Ok(i) => i,
        Err(d) => return input_error(&d),
    };
    if let Some(h) = &a.host {
        if !inv.hosts.contains_key(h) {
            eprintln!("error: no host {h:?} in the inventory");
            return ExitCode::from(EXIT_INPUT);
        }
        out(&format!("{}\n", serde_json::to_string_pretty(&Value::Object(inv.host_vars(h))).unwrap_or_default()));
    } else if let Some(g) = &a.graph {
        if !inv.groups.contains_key(g) {
            eprintln!("error: no group {g:?} in the inventory");
            return ExitCode::from(EXIT_INPUT);
        }
        let mut g = inv.graph(Some(g));
        if !g.ends_with('\n') {
            g.push('\n');
        }
        out(&g);
    } else {
        out(&format!("{}\n", serde_json::to_string_pretty(&inv.to_list_json()).unwrap_or_default()));
    }
    ExitCode::SUCCESS
}

fn cmd_lint(a: LintArgs) -> ExitCode {
    let registry = pbr_engine::Registry::with(pbr_modules::register);
    let extra_vars = match parse_extra_vars(&a.extra_vars) {
        Ok(m) => m,
        Err(d) => return input_error(&d),
    };
    let code = pbr_lint::run_cli(&pbr_lint::LintRequest {
        extra_vars,
        paths: if a.paths.is_empty() { vec![PathBuf::from("playbooks")] } else { a.paths },
        inventory: default_inventory(&a.inventory),
        format: a.format,
        strict: a.strict,
        limit: a.limit,
        color: color_out(),
        registry: &registry,
    });
    ExitCode::from(code)
}

fn cmd_doc(a: DocArgs) -> ExitCode {
    let registry = pbr_engine::Registry::with(pbr_modules::register);
    match pbr_engine::doc::render(&registry, a.module.as_deref(), &a.format) {
        Ok(text) => {
            out(&text);
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::from(EXIT_INPUT)
        }
    }
}
