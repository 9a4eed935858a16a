//! The engine's own actions (`debug`, `assert`, `fail`, `pause`, `ping`, `setup`, `set_fact`,
//! `group_by`, `include_vars`, `reboot`, `wait_for_connection`...) as typed, registered entries:
//! one params type each, so that lint checks their params and `pbr doc` documents them like
//! modules. The executor dispatches on [`Verb`] and runs them itself (actions.rs, reboot.rs;
//! `execute` here is never called), checking their rendered params against these types first
//! (`Runner::action_args`, the check lint makes) where the whole params are rendered at once;
//! `debug`, `assert`, `validate_argument_spec`, `set_fact`, `add_host` and `include_vars`
//! template parts of theirs lazily or take free keys.
// the fields are the contract lint and `pbr doc` read; not every one is read in Rust
#![allow(dead_code)]

use crate::Host;
use crate::module::{Ctx, Doc, DynModule, ModuleError, ModuleResult, ParamError, RunMode, parse_params};
use crate::params::opt_bool_lenient;
use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::marker::PhantomData;
use std::sync::Arc;

struct Entry<P> {
    name: &'static str,
    aliases: &'static [&'static str],
    doc: Doc,
    params: PhantomData<fn() -> P>,
}

#[async_trait]
impl<P: DeserializeOwned + JsonSchema + 'static> DynModule for Entry<P> {
    fn name(&self) -> &'static str {
        self.name
    }
    fn aliases(&self) -> &'static [&'static str] {
        self.aliases
    }
    fn doc(&self) -> Doc {
        self.doc.clone()
    }
    fn schema(&self) -> schemars::Schema {
        schemars::schema_for!(P)
    }
    fn check_params(&self, params: &Value) -> Result<(), ParamError> {
        parse_params::<P>(params).map(|_| ())
    }
    async fn execute(&self, _: &Ctx<'_>, _: &Value, _: &Host, _: RunMode) -> Result<ModuleResult, ModuleError> {
        Err(ModuleError::new(format!("`{}` is an engine action: the executor runs it", self.name)))
    }
}

fn verb<P: DeserializeOwned + JsonSchema + 'static>(
    name: &'static str,
    aliases: &'static [&'static str],
    description: &'static str,
    examples: &'static str,
) -> (&'static str, &'static [&'static str], Arc<dyn DynModule>) {
    (name, aliases, Arc::new(Entry::<P> { name, aliases, doc: Doc { description, examples }, params: PhantomData }))
}

/// A number of seconds: a YAML number or a numeric string.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Seconds {
    Num(f64),
    Text(String),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DebugParams {
    /// The message to print (any value; default "Hello world!").
    #[serde(default)]
    pub msg: Option<Value>,
    /// A variable (or expression) to print instead of `msg`.
    #[serde(default)]
    pub var: Option<String>,
    /// Print only at this `-v` level or above.
    #[serde(default)]
    pub verbosity: Option<u32>,
    #[serde(default, rename = "_raw_params")]
    #[schemars(skip)]
    pub raw: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Conditions {
    One(String),
    Many(Vec<Value>),
    Other(Value),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssertParams {
    /// The conditions (expressions, as in `when`) that must all be true.
    pub that: Conditions,
    /// The failure message (`msg` is the same).
    #[serde(default, alias = "msg")]
    pub fail_msg: Option<Value>,
    /// The message when every condition holds.
    #[serde(default)]
    pub success_msg: Option<Value>,
    /// Print nothing when the assertion holds.
    #[serde(default, deserialize_with = "opt_bool_lenient")]
    pub quiet: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateArgumentSpecParams {
    /// The options to check: name → `type`, `required`, `choices`, `elements`, `options`,
    /// `aliases`, `default` (the `options` of an entry point in `meta/argument_specs.yml`).
    pub argument_spec: Map<String, Value>,
    /// Values to check besides the variables named in the spec (a role's params).
    #[serde(default)]
    pub provided_arguments: Option<Map<String, Value>>,
    /// Where the spec comes from (returned as is).
    #[serde(default)]
    pub validate_args_context: Option<Value>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailParams {
    /// The failure message (default "Failed as requested from task").
    #[serde(default)]
    pub msg: Option<Value>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseParams {
    /// Seconds to wait (not in check mode).
    #[serde(default)]
    pub seconds: Option<Seconds>,
    /// Minutes to wait (not in check mode).
    #[serde(default)]
    pub minutes: Option<Seconds>,
    /// Accepted for Ansible compatibility: pbr never waits for input.
    #[serde(default)]
    pub prompt: Option<String>,
    /// Accepted for Ansible compatibility.
    #[serde(default, deserialize_with = "opt_bool_lenient")]
    pub echo: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PingParams {
    /// What the answer (`ping`) is (default `pong`); `crash` makes the task fail, as Ansible's
    /// ping does.
    #[serde(default)]
    pub data: Option<Value>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupParams {
    /// Which facts: `all` (default), `min`, `hardware`, `network`, each negatable (`!hardware`).
    #[serde(default)]
    pub gather_subset: Option<Value>,
    /// Accepted for Ansible compatibility.
    #[serde(default)]
    pub filter: Option<Value>,
    /// Accepted for Ansible compatibility.
    #[serde(default)]
    pub gather_timeout: Option<Seconds>,
    /// Accepted for Ansible compatibility.
    #[serde(default)]
    pub fact_path: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SetFactParams {
    /// Also keep these facts in the fact cache (`fact_caching = jsonfile`), so that later runs
    /// start with them.
    #[serde(default, deserialize_with = "opt_bool_lenient")]
    pub cacheable: Option<bool>,
    /// Every other key is a variable to set.
    #[serde(flatten)]
    pub facts: Map<String, Value>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupByParams {
    /// The group the host joins (spaces become `-`).
    pub key: String,
    /// The groups the new group sits under (default `all`).
    #[serde(default)]
    pub parents: Option<crate::params::StrList>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AddHostParams {
    /// The host's name (`name:port` sets `ansible_ssh_port` too).
    #[serde(alias = "host", alias = "hostname")]
    pub name: String,
    /// The groups it joins (a list, or names separated by commas).
    #[serde(default, alias = "group", alias = "groupname")]
    pub groups: Option<crate::params::StrList>,
    /// Every other key is a variable of the host (`ansible_host`, `ansible_connection`...).
    #[serde(flatten)]
    pub vars: Map<String, Value>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncludeVarsParams {
    /// The vars file (YAML or JSON), relative to the role's `vars/` or the playbook.
    #[serde(default)]
    pub file: Option<String>,
    /// Put the file's variables under this one name.
    #[serde(default)]
    pub name: Option<String>,
    /// A directory of vars files instead of `file`: every file in it (and below, see `depth`)
    /// whose extension is in `extensions`, in sorted path order; later files win.
    #[serde(default)]
    pub dir: Option<String>,
    /// How deep to look below `dir` (0: all the way).
    #[serde(default)]
    pub depth: Option<u32>,
    /// With `dir`: only file names matching this regular expression.
    #[serde(default)]
    pub files_matching: Option<String>,
    /// With `dir`: file names to skip.
    #[serde(default)]
    pub ignore_files: Option<Vec<String>>,
    /// With `dir`: the extensions of vars files (default `yaml`, `yml`, `json`).
    #[serde(default)]
    pub extensions: Option<Vec<String>>,
    /// With `dir`: a file with another extension is skipped instead of failing the task.
    #[serde(default, deserialize_with = "opt_bool_lenient")]
    pub ignore_unknown_extensions: Option<bool>,
    /// `merge`: a mapping merges into the variable's current value (recursively); `replace`
    /// (the default) replaces it.
    #[serde(default)]
    pub hash_behaviour: Option<HashBehaviour>,
    #[serde(default, rename = "_raw_params")]
    #[schemars(skip)]
    pub raw: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HashBehaviour {
    Replace,
    Merge,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RebootParams {
    /// Seconds from the reboot command until the host must answer with a new boot id and pass
    /// `test_command` (default 600).
    #[serde(default)]
    pub reboot_timeout: Option<Seconds>,
    /// Seconds for each connection attempt (default 10).
    #[serde(default)]
    pub connect_timeout: Option<Seconds>,
    /// Run after the host is back; the reboot succeeded when it exits 0 (default `whoami`).
    #[serde(default)]
    pub test_command: Option<String>,
    /// Seconds to wait before the reboot command (default 0).
    #[serde(default)]
    pub pre_reboot_delay: Option<Seconds>,
    /// Seconds to wait after the new boot id before `test_command` (default 0).
    #[serde(default)]
    pub post_reboot_delay: Option<Seconds>,
    /// The message given to systemctl/shutdown (default "Reboot initiated by pbr").
    #[serde(default)]
    pub msg: Option<String>,
    /// The command that reboots (default: `systemctl reboot`, else `shutdown -r now`, else `reboot`).
    #[serde(default)]
    pub reboot_command: Option<String>,
    /// What identifies a boot: its output must change across the reboot (default
    /// `cat /proc/sys/kernel/random/boot_id`).
    #[serde(default)]
    pub boot_time_command: Option<String>,
    /// Accepted for Ansible compatibility; unused.
    #[serde(default)]
    pub search_paths: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitParams {
    /// Seconds to keep trying (default 600).
    #[serde(default)]
    pub timeout: Option<Seconds>,
    /// Seconds to wait before the first try (default 0).
    #[serde(default)]
    pub delay: Option<Seconds>,
    /// Seconds between tries (default 1).
    #[serde(default)]
    pub sleep: Option<Seconds>,
    /// Seconds for each connection attempt (default 5).
    #[serde(default)]
    pub connect_timeout: Option<Seconds>,
}

/// Every engine action, typed. [`crate::module::Registry::new`] holds them.
/// An engine action, by name: what the executor dispatches on (exec/actions.rs), one variant
/// per entry of [`all`] (a unit test holds the two together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Debug,
    Assert,
    ValidateArgumentSpec,
    Fail,
    Pause,
    Ping,
    Setup,
    SetFact,
    GroupBy,
    AddHost,
    IncludeVars,
    Reboot,
    WaitForConnection,
}

impl Verb {
    /// The action a task's short module name calls (`gather_facts` is `setup`).
    pub(crate) fn of(short: &str) -> Option<Verb> {
        Some(match short {
            "debug" => Verb::Debug,
            "assert" => Verb::Assert,
            "validate_argument_spec" => Verb::ValidateArgumentSpec,
            "fail" => Verb::Fail,
            "pause" => Verb::Pause,
            "ping" => Verb::Ping,
            "setup" | "gather_facts" => Verb::Setup,
            "set_fact" => Verb::SetFact,
            "group_by" => Verb::GroupBy,
            "add_host" => Verb::AddHost,
            "include_vars" => Verb::IncludeVars,
            "reboot" => Verb::Reboot,
            "wait_for_connection" => Verb::WaitForConnection,
            _ => return None,
        })
    }
}

pub(crate) fn all() -> Vec<(&'static str, &'static [&'static str], Arc<dyn DynModule>)> {
    vec![
        verb::<DebugParams>(
            "debug",
            &[],
            "Print a message or a variable (engine action). `var` prints a variable's value under its name; \
             `verbosity` hides it below that `-v` level.",
            "- name: Show the portal\n  debug:\n    msg: \"portal is {{ iscsi_portal | default('unset') }}\"\n",
        ),
        verb::<AssertParams>(
            "assert",
            &[],
            "Fail unless every condition in `that` is true (engine action); the result names the first that \
             is not. Conditions are expressions, as in `when`.",
            "- name: The passphrase is long enough\n  assert:\n    that:\n      - wifi_passphrase | length >= 8\n    \
             fail_msg: \"a WPA2 passphrase has 8 to 63 characters\"\n  vars:\n    wifi_passphrase: correct horse\n",
        ),
        verb::<ValidateArgumentSpecParams>(
            "validate_argument_spec",
            &[],
            "Check variables against an argument spec (engine action), with Ansible's checks and messages: \
             unsupported and missing names, types with Ansible's conversions, `elements`, `choices`, nested \
             `options`. Each option of the spec takes the value of the variable of its name, if one is \
             defined, and `provided_arguments` over it. A role whose `meta/argument_specs.yml` (or the \
             `argument_specs` of `meta/main.yml`) has its entry point (`main`, or `tasks_from`) runs this \
             first, as in Ansible, and lint checks the role's params against it.",
            "- name: The port is a number\n  validate_argument_spec:\n    argument_spec:\n      port:\n        \
             type: int\n        required: true\n  vars:\n    port: 8080\n",
        ),
        verb::<FailParams>(
            "fail",
            &[],
            "Fail the host with a message (engine action).",
            "- name: Stop on an unsupported board\n  fail:\n    msg: \"not a Pi\"\n  when: false\n",
        ),
        verb::<PauseParams>(
            "pause",
            &[],
            "Wait a number of seconds or minutes (engine action); nothing in check mode. pbr never prompts \
             for input.",
            "- name: Let the link settle\n  pause:\n    seconds: 5\n",
        ),
        verb::<PingParams>(
            "ping",
            &[],
            "Check that the host answers a command over its connection (engine action): `ping: pong`.",
            "- name: The host answers\n  ping:\n",
        ),
        verb::<SetupParams>(
            "setup",
            &["gather_facts"],
            "Gather the host's facts (engine action) with one `sh` script: `ansible_facts` and the \
             `ansible_*` variables. `min`: system, distribution, hostname, architecture, kernel, user, \
             package and service manager, date_time, env; `hardware`: memtotal_mb, processor_*, mounts, \
             devices; `network`: interfaces (and one fact per interface), default_ipv4/ipv6, \
             all_ipv4_addresses/all_ipv6_addresses.",
            "- name: Facts again after the upgrade\n  setup:\n",
        ),
        verb::<SetFactParams>(
            "set_fact",
            &[],
            "Set host variables for the rest of the run (engine action): every key but `cacheable` is a \
             variable. Above play vars in precedence, as in Ansible.",
            "- name: Remember the LV's path\n  set_fact:\n    root_lv: /dev/pis/pi3\n",
        ),
        verb::<GroupByParams>(
            "group_by",
            &[],
            "Put the host in a group named from its variables (engine action), for the plays that follow: \
             `hosts: os_Debian` after `key: os_{{ ansible_facts.os_family }}`. The group is made if new, under \
             `parents` (default `all`); `groups`, `group_names` and the group's `group_vars` follow from the \
             next play on. Runs in check mode too; reports a change when the host joined, as Ansible does (the \
             run's inventory changes, not the host).",
            "- name: Group the hosts by distribution\n  group_by:\n    key: \"os_{{ ansible_facts.distribution | default('unknown') }}\"\n",
        ),
        verb::<AddHostParams>(
            "add_host",
            &[],
            "Add a host to the run's inventory, for the plays that follow (engine action), as Ansible's \
             add_host: it runs once per task (not per host; each loop item adds one), the host joins \
             `groups`, and every other key becomes its variable. Runs in check mode too; reports a change \
             when the host, one of its groups or its variables is new. Result: `add_host` (`host_name`, \
             `groups`, `host_vars`).",
            "- name: The new VM is a host of the next play\n  add_host:\n    name: pi9\n    groups: pis\n    \
             ansible_host: 127.0.0.9\n",
        ),
        verb::<IncludeVarsParams>(
            "include_vars",
            &[],
            "Load variables from a YAML or JSON file while the play runs (engine action); `name` puts them \
             under one variable.",
            "- name: Board-specific values\n  include_vars:\n    file: vars.yml\n    name: board\n  when: false\n",
        ),
        verb::<RebootParams>(
            "reboot",
            &[],
            "Reboot the host and wait until it is back with a new boot id (engine action), as Ansible's \
             reboot: the host's pending deferred work runs first (an initramfs regeneration belongs to the \
             boot that follows), then the reboot command; new connections until the boot id changed and \
             `test_command` succeeds. In check mode nothing happens and the task reports a change. Result: \
             `rebooted`, `elapsed` (seconds).",
            "- name: Boot into the new root\n  reboot:\n    reboot_timeout: 900\n",
        ),
        verb::<WaitParams>(
            "wait_for_connection",
            &[],
            "Wait until the host can be reached again (engine action): drop the cached connection, then try \
             a new connection and `true` every `sleep` seconds until `timeout`. Runs in check mode too. \
             Result: `elapsed` (seconds).",
            "- name: The Pi is back after its power cycle\n  wait_for_connection:\n    timeout: 300\n",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_action_is_dispatched() {
        for (name, aliases, _) in all() {
            assert!(Verb::of(name).is_some(), "`{name}` is registered but the executor does not run it");
            for a in aliases {
                assert_eq!(Verb::of(a), Verb::of(name), "alias `{a}`");
            }
        }
        assert_eq!(Verb::of("copy"), None);
    }
}
