//! `ini_file`: one option (or a whole section) of an INI-style file, as Ansible's
//! `community.general.ini_file` edits it: the rest of the file is left byte for byte.

use crate::lineinfile::{EditState, missing_parent, plan_edit, probe_text};
use crate::util::WriteOpts;
use crate::util::params_with_file_attrs;
use async_trait::async_trait;
use pbr_core::params::Presence;
use pbr_core::params::bool_lenient;
use pbr_core::{Ctx, Doc, Module, ModuleError, Plan, ReadHost};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

fn yes() -> bool {
    true
}

params_with_file_attrs! {
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IniFileParams {
    /// The INI file. Created (with its missing parent directories) when needed, unless
    /// `create: false`.
    #[serde(alias = "dest")]
    pub path: String,
    /// The section (`[section]`); omitted: the options before the first section.
    #[serde(default)]
    pub section: Option<String>,
    /// The option to set or remove; omitted with `state: absent`: the whole section goes.
    #[serde(default)]
    pub option: Option<String>,
    /// The option's value (written `option = value`).
    #[serde(default)]
    pub value: Option<String>,
    /// Several values of one option, one line each (with `exclusive`, the only ones).
    #[serde(default)]
    pub values: Option<Vec<String>>,
    /// `present` sets the option (or adds the section); `absent` removes it.
    #[serde(default)]
    pub state: Presence,
    /// With `values`: other lines of the option are removed (`present`); with `absent`, every
    /// line of the option goes, whatever its value.
    #[serde(default = "yes", deserialize_with = "bool_lenient")]
    pub exclusive: bool,
    /// Write `option=value` instead of `option = value`.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub no_extra_spaces: bool,
    /// Options without a value (`option` alone on its line) are allowed.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub allow_no_value: bool,
    /// Create the file when it is missing; `false` fails instead.
    #[serde(default = "yes", deserialize_with = "bool_lenient")]
    pub create: bool,
    /// Keep a copy of the old file as `path.YYYY-mm-dd@HH:MM:SS~`.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub backup: bool,
}
}

/// An option line's parts: commented out (`# opt = v`, `;opt=v`), and its value.
fn match_opt(option: &str, line: &str, inactive_too: bool) -> Option<(bool, String)> {
    let body = line.strip_suffix('\n').unwrap_or(line);
    let mut rest = body.trim_start_matches([' ', '\t']);
    let mut commented = false;
    if inactive_too && let Some(r) = rest.strip_prefix(['#', ';']) {
        commented = true;
        rest = r.trim_start_matches([' ', '\t']);
    }
    let rest = rest.strip_prefix(option)?.trim_start_matches([' ', '\t']);
    if rest.is_empty() {
        return Some((commented, String::new()));
    }
    let value = rest.strip_prefix('=')?.trim_start_matches([' ', '\t']);
    Some((commented, value.to_string()))
}

/// A blank line or a comment (where a new option is not put after).
fn blank_or_comment(line: &str) -> bool {
    let t = line.strip_suffix('\n').unwrap_or(line).trim_start_matches([' ', '\t']);
    t.is_empty() || t.starts_with(['#', ';'])
}

fn is_section(line: &str, section: &str) -> bool {
    let Some(rest) = line.strip_prefix('[') else { return false };
    let rest = rest.trim_start();
    rest.strip_prefix(section.trim()).is_some_and(|r| r.trim_start().starts_with(']'))
}

/// Ansible's edit of `text` (None: the file is missing): the new text, whether it changed, and
/// the message (`option added`, `option changed`, `section removed`...).
pub fn edit(p: &IniFileParams, text: Option<&str>) -> (String, bool, &'static str) {
    let mut values: Vec<String> = vec![];
    for v in p.value.iter().chain(p.values.iter().flatten()) {
        if !values.contains(v) {
            values.push(v.clone());
        }
    }
    let option = p.option.as_deref().filter(|o| !o.is_empty());
    let line_of = |v: &str| match (option, p.no_extra_spaces) {
        (Some(o), true) => format!("{o}={v}\n"),
        (Some(o), false) => format!("{o} = {v}\n"),
        (None, _) => String::new(),
    };
    let mut lines: Vec<String> = text.unwrap_or("").split_inclusive('\n').map(str::to_string).collect();
    if lines.is_empty() {
        lines.push("\n".into());
    }
    if let Some(last) = lines.last_mut()
        && !last.ends_with('\n')
    {
        last.push('\n');
    }
    // The options before the first section form a section of their own, with a header no file
    // has; a last line starting with `[` ends the last section.
    const GLOBAL: &str = "\u{0}global";
    lines.insert(0, format!("[{GLOBAL}]"));
    lines.push("[".into());
    let section = p.section.as_deref().unwrap_or(GLOBAL);
    let (mut start, mut end, mut within) = (0, 0, false);
    for (i, l) in lines.iter().enumerate() {
        if is_section(l, section) {
            within = true;
            start = i;
        } else if l.starts_with('[') && within {
            end = i;
            break;
        }
    }
    let after = lines.split_off(end);
    let mut sec = lines.split_off(start);
    let before = lines;
    let mut touched = vec![false; sec.len()];
    let mut changed = false;
    let mut msg = "OK";
    let mut no_value_present = false;
    let set =
        |sec: &mut Vec<String>, touched: &mut Vec<bool>, i: usize, new: String, changed: &mut bool, msg: &mut &str| {
            if sec[i] != new {
                *changed = true;
                sec[i] = new;
                *msg = "option changed";
            }
            touched[i] = true;
        };
    if p.state == Presence::Present
        && let Some(o) = option
    {
        for i in 0..sec.len() {
            let Some((_, v)) = match_opt(o, &sec[i], true) else { continue };
            if !values.is_empty() && values.contains(&v) {
                let new = if v.is_empty() && p.allow_no_value { format!("{o}\n") } else { line_of(&v) };
                no_value_present |= v.is_empty() && p.allow_no_value;
                set(&mut sec, &mut touched, i, new, &mut changed, &mut msg);
                values.retain(|x| *x != v);
            } else if values.is_empty() && p.allow_no_value {
                set(&mut sec, &mut touched, i, format!("{o}\n"), &mut changed, &mut msg);
                no_value_present = true;
                break;
            }
        }
    }
    if p.state == Presence::Present
        && p.exclusive
        && !p.allow_no_value
        && let Some(o) = option
    {
        if !values.is_empty() {
            for i in 0..sec.len() {
                if !touched[i] && match_opt(o, &sec[i], true).is_some() {
                    let v = values.remove(0);
                    set(&mut sec, &mut touched, i, line_of(&v), &mut changed, &mut msg);
                    if values.is_empty() {
                        break;
                    }
                }
            }
        }
        for i in (1..sec.len()).rev() {
            if !touched[i] && match_opt(o, &sec[i], true).is_some() {
                sec.remove(i);
                touched.remove(i);
                changed = true;
                msg = "option changed";
            }
        }
    }
    if p.state == Presence::Present
        && let Some(i) = (1..=sec.len()).rev().find(|&i| !blank_or_comment(&sec[i - 1]))
        && let Some(o) = option
    {
        if !values.is_empty() {
            for v in values.iter().rev() {
                sec.insert(i, line_of(v));
            }
            msg = "option added";
            changed = true;
        } else if p.allow_no_value && !no_value_present {
            sec.insert(i, format!("{o}\n"));
            msg = "option added";
            changed = true;
        }
    }
    if p.state == Presence::Absent {
        match option {
            Some(o) => {
                let keep = |l: &String| match match_opt(o, l, false) {
                    Some((_, v)) => !(p.exclusive || values.contains(&v)),
                    None => true,
                };
                if p.exclusive || !values.is_empty() {
                    let kept: Vec<String> = sec.iter().filter(|l| keep(l)).cloned().collect();
                    if kept != sec {
                        changed = true;
                        msg = "option changed";
                        sec = kept;
                    }
                }
            }
            None => {
                if !sec.is_empty() {
                    sec.clear();
                    msg = "section removed";
                    changed = true;
                }
            }
        }
    }
    let mut all: Vec<String> = before.into_iter().chain(sec).chain(after).collect();
    // the made-up first header and last line go; a removed global section took its header along
    if all.first().is_some_and(|l| is_section(l, GLOBAL)) {
        all.remove(0);
    }
    all.pop();
    if !within && p.state == Presence::Present {
        all.push(format!("[{section}]\n"));
        msg = "section and option added";
        match option {
            Some(_) if !values.is_empty() => all.extend(values.iter().map(|v| line_of(v))),
            Some(o) if p.allow_no_value => all.push(format!("{o}\n")),
            _ => msg = "only section added",
        }
        changed = true;
    }
    (all.concat(), changed, msg)
}

pub struct IniFile;

/// The file and its text.
pub struct IniState {
    edit: EditState,
    before: Option<String>,
}

#[async_trait]
impl Module for IniFile {
    type Params = IniFileParams;
    type State = IniState;
    const NAME: &'static str = "ini_file";

    fn doc(&self) -> Doc {
        Doc {
            description: "Set or remove one option of an INI-style file (`option = value` under \
                          `[section]`), add or remove a section, keeping every other line as it is. A \
                          commented-out line of the option (`# option = x`) is where the option is set. \
                          Matches community.general.ini_file line for line, including where new options \
                          and sections go.",
            examples: r#"- name: The Pis' NTP server
  ini_file:
    path: /etc/systemd/timesyncd.conf
    section: Time
    option: NTP
    value: 192.168.1.1
    no_extra_spaces: true

- name: No more cache section
  ini_file:
    path: /etc/app.ini
    section: cache
    state: absent
"#,
        }
    }

    fn validate(&self, p: &IniFileParams) -> Result<(), String> {
        if p.value.is_some() && p.values.is_some() {
            return Err("parameters are mutually exclusive: value|values".into());
        }
        if p.state == Presence::Present
            && !p.allow_no_value
            && p.value.is_none()
            && p.values.as_ref().is_none_or(|v| v.is_empty())
        {
            return Err("Parameter 'value(s)' must be defined if state=present and allow_no_value=False.".into());
        }
        Ok(())
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &IniFileParams, host: &ReadHost) -> Result<IniState, ModuleError> {
        let (file, before) = probe_text(host, &p.path).await?;
        let mut parent_missing = None;
        if before.is_none() {
            if !p.create {
                return Err(ModuleError::new(format!("Destination {} does not exist!", p.path)));
            }
            parent_missing = missing_parent(host, &p.path).await?;
        }
        let (text, changed, msg) = edit(p, before.as_deref());
        let want = if changed { Some(text) } else { before.clone() };
        Ok(IniState { edit: EditState { file, want, msg: msg.to_string(), found: None, parent_missing }, before })
    }

    fn plan(&self, p: &IniFileParams, st: &IniState) -> Result<Plan, ModuleError> {
        let attrs = p.attrs();
        Ok(plan_edit(&st.edit, st.before.as_deref(), attrs, WriteOpts { backup: p.backup, validate: None }))
    }

    fn data(&self, p: &IniFileParams, st: &IniState) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("msg".into(), Value::String(st.edit.msg.clone()));
        m.insert("path".into(), Value::String(p.path.clone()));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(mut params: Value, text: Option<&str>) -> (String, bool, &'static str) {
        params["path"] = json!("/x");
        edit(&serde_json::from_value(params).unwrap(), text)
    }

    #[test]
    fn sets_adds_and_keeps_the_rest() {
        let t = "# top\n[a]\nx = 1\n\n[b]\ny=2\n";
        assert_eq!(run(json!({"section": "a", "option": "x", "value": "1"}), Some(t)), (t.to_string(), false, "OK"));
        assert_eq!(
            run(json!({"section": "a", "option": "x", "value": "3"}), Some(t)).0,
            "# top\n[a]\nx = 3\n\n[b]\ny=2\n"
        );
        // a new option goes after the section's last line that is not blank or a comment
        assert_eq!(
            run(json!({"section": "a", "option": "z", "value": "9"}), Some(t)).0,
            "# top\n[a]\nx = 1\nz = 9\n\n[b]\ny=2\n"
        );
        let (out, changed, msg) =
            run(json!({"section": "c", "option": "k", "value": "v", "no_extra_spaces": true}), Some(t));
        assert_eq!(
            (out.as_str(), changed, msg),
            ("# top\n[a]\nx = 1\n\n[b]\ny=2\n[c]\nk=v\n", true, "section and option added")
        );
    }

    #[test]
    fn a_commented_option_is_where_it_is_set() {
        let t = "[s]\n# port = 80\nhost = a\n";
        assert_eq!(
            run(json!({"section": "s", "option": "port", "value": "8080"}), Some(t)).0,
            "[s]\nport = 8080\nhost = a\n"
        );
    }

    #[test]
    fn absent_removes_options_and_sections() {
        let t = "g = 1\n[a]\nx = 1\nx = 2\n[b]\ny = 2\n";
        assert_eq!(
            run(json!({"section": "a", "option": "x", "state": "absent"}), Some(t)).0,
            "g = 1\n[a]\n[b]\ny = 2\n"
        );
        assert_eq!(
            run(
                json!({"section": "a", "option": "x", "values": ["2"], "exclusive": false, "state": "absent"}),
                Some(t)
            )
            .0,
            "g = 1\n[a]\nx = 1\n[b]\ny = 2\n"
        );
        assert_eq!(
            run(json!({"section": "a", "state": "absent"}), Some(t)),
            ("g = 1\n[b]\ny = 2\n".into(), true, "section removed")
        );
        assert_eq!(run(json!({"option": "g", "state": "absent"}), Some(t)).0, "[a]\nx = 1\nx = 2\n[b]\ny = 2\n");
    }

    #[test]
    fn several_values_and_options_without_one() {
        let t = "[s]\na = 1\na = 2\na = 3\n";
        assert_eq!(run(json!({"section": "s", "option": "a", "values": ["3", "4"]}), Some(t)).0, "[s]\na = 4\na = 3\n");
        assert_eq!(
            run(json!({"section": "s", "option": "flag", "allow_no_value": true}), Some("[s]\n")).0,
            "[s]\nflag\n"
        );
    }

    #[test]
    fn a_new_file_and_a_missing_last_newline() {
        // as community.general.ini_file writes it: the empty file's first line is blank
        assert_eq!(
            run(json!({"section": "s", "option": "a", "value": "b"}), None),
            ("\n[s]\na = b\n".into(), true, "section and option added")
        );
        assert_eq!(run(json!({"option": "a", "value": "b"}), None).0, "a = b\n\n");
        // a missing newline alone is no change
        assert_eq!(
            run(json!({"section": "s", "option": "a", "value": "b"}), Some("[s]\na = b")),
            ("[s]\na = b\n".into(), false, "OK")
        );
    }
}
