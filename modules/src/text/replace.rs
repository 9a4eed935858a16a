//! `replace`: substitute every match of a regex in a text file.

use crate::lineinfile::{EditState, edit_data, plan_edit, probe_text};
use crate::util::params_with_file_attrs;
use crate::util::{self, Attrs, WriteOpts};
use async_trait::async_trait;
use pbr_core::params::bool_lenient;
use pbr_core::pyre::{Flags, PyRegex};
use pbr_core::{Ctx, Doc, Module, ModuleError, Plan, ReadHost};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

params_with_file_attrs! {
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceParams {
    /// The file to edit.
    #[serde(alias = "dest", alias = "destfile", alias = "name")]
    pub path: String,
    /// Regular expression (multi-line mode: `^`/`$` match at each line) to replace.
    pub regexp: String,
    /// Replacement; `\1` and `\g<name>` refer to groups. Empty removes the matches.
    #[serde(default)]
    pub replace: String,
    /// Only replace in the text after the first match of this regex.
    #[serde(default)]
    pub after: Option<String>,
    /// Only replace in the text before the first match of this regex (after `after`).
    #[serde(default)]
    pub before: Option<String>,
    /// Keep a copy of the replaced file as `path.YYYY-mm-dd@HH:MM:SS~`.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub backup: bool,
    /// Command run on the edited file before it is put in place; `%s` is the temp file's path.
    #[serde(default)]
    pub validate: Option<String>,
}
}

/// Ansible's replace on `text`: the new text and the number of replacements, or Ansible's
/// message when the `after`/`before` section is not in the text.
pub fn edit(p: &ReplaceParams, text: &str) -> Result<Result<(String, usize), String>, ModuleError> {
    let section_re = match (&p.after, &p.before) {
        (Some(a), Some(b)) => Some(format!("{a}(?P<subsection>.*?){b}")),
        (Some(a), None) => Some(format!("{a}(?P<subsection>.*)")),
        (None, Some(b)) => Some(format!("(?P<subsection>.*){b}")),
        (None, None) => None,
    };
    let (start, end) = match section_re {
        Some(s) => {
            let re = PyRegex::new(&s, Flags { dotall: true, ..Flags::default() })
                .map_err(|e| ModuleError::new(format!("invalid after/before pattern {s:?}: {e}")))?;
            match re.captures(text).map_err(ModuleError::new)?.as_ref().and_then(|c| c.name("subsection")) {
                Some(m) => (m.start(), m.end()),
                None => return Ok(Err(format!("Pattern for before/after params did not match the given file: {s}"))),
            }
        }
        None => (0, text.len()),
    };
    let re = util::compile("regexp", &p.regexp, true)?;
    let (new, n) = re
        .sub(&text[start..end], &p.replace, 0)
        .map_err(|e| ModuleError::new(format!("Unable to process replace due to error: {e}")))?;
    Ok(Ok((format!("{}{}{}", &text[..start], new, &text[end..]), n)))
}

pub struct Replace;

#[async_trait]
impl Module for Replace {
    type Params = ReplaceParams;
    type State = (EditState, Option<String>);
    const NAME: &'static str = "replace";

    fn doc(&self) -> Doc {
        Doc {
            description: "Replace every match of a regular expression in a text file, optionally only between \
                          the `after` and `before` patterns. The file must exist.",
            examples: r#"- name: Point the apt sources at a mirror
  replace:
    path: /etc/apt/sources.list
    regexp: 'http://deb\.debian\.org'
    replace: 'http://mirror.example.org'

- name: Comment out a mount
  replace:
    path: /etc/fstab
    regexp: '^(/dev/sdb1\s.*)$'
    replace: '# \1'
"#,
        }
    }

    fn validate(&self, p: &ReplaceParams) -> Result<(), String> {
        util::check_validate(p.validate.as_deref())?;
        // a replacement Python cannot read fails whatever the file, as in Ansible
        pbr_core::pyre::check_template(&p.replace).map_err(|e| format!("Unable to process replace due to error: {e}"))
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &ReplaceParams, host: &ReadHost) -> Result<Self::State, ModuleError> {
        let (file, before) = probe_text(host, &p.path).await?;
        let Some(text) = &before else {
            return Err(ModuleError::new(format!("Path {} does not exist !", p.path)));
        };
        let (want, msg) = match edit(p, text)? {
            Ok((want, n)) if want != *text => (want, format!("{n} replacements made")),
            Ok((want, _)) => (want, String::new()),
            Err(nomatch) => (text.clone(), nomatch),
        };
        Ok((EditState { file, want: Some(want), msg, found: None, parent_missing: None }, before))
    }

    fn plan(&self, p: &ReplaceParams, st: &Self::State) -> Result<Plan, ModuleError> {
        Ok(plan_edit(&st.0, st.1.as_deref(), attrs(p), WriteOpts { backup: p.backup, validate: p.validate.as_deref() }))
    }

    /// `msg` always, as Ansible's replace returns it (empty when nothing was replaced).
    fn data(&self, _p: &ReplaceParams, st: &Self::State) -> Map<String, Value> {
        let mut m = edit_data(&st.0);
        m.entry("msg").or_insert(Value::String(String::new()));
        m
    }

    /// What the edit did ("line added"), as Ansible reports it.
    async fn report(
        &self,
        _p: &ReplaceParams,
        st: &Self::State,
        _host: &ReadHost,
    ) -> Result<Map<String, Value>, ModuleError> {
        Ok(edit_data(&st.0))
    }
}

fn attrs(p: &ReplaceParams) -> Attrs<'_> {
    p.attrs()
}
