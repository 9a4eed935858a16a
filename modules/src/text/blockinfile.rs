//! `blockinfile`: keep a block of lines between two marker lines in a text file.

use crate::lineinfile::{EditState, edit_data, missing_parent, plan_edit, probe_text};
use crate::util::params_with_file_attrs;
use crate::util::{self, Attrs, WriteOpts};
use async_trait::async_trait;
use pbr_core::params::Presence;
use pbr_core::params::bool_lenient;
use pbr_core::{Ctx, Doc, Module, ModuleError, Plan, ReadHost};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

fn default_marker() -> String {
    "# {mark} ANSIBLE MANAGED BLOCK".into()
}
fn begin() -> String {
    "BEGIN".into()
}
fn end() -> String {
    "END".into()
}

params_with_file_attrs! {
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockinfileParams {
    /// The file to edit.
    #[serde(alias = "dest", alias = "destfile", alias = "name")]
    pub path: String,
    /// The text between the markers; empty removes the block.
    #[serde(default, alias = "content")]
    pub block: String,
    /// Marker line template; `{mark}` becomes `marker_begin` or `marker_end`.
    #[serde(default = "default_marker")]
    pub marker: String,
    /// What replaces `{mark}` in the first marker line.
    #[serde(default = "begin")]
    pub marker_begin: String,
    /// What replaces `{mark}` in the last marker line.
    #[serde(default = "end")]
    pub marker_end: String,
    /// Whether the block should be there.
    #[serde(default)]
    pub state: Presence,
    /// When the markers are not found, insert after the last line matching this regex
    /// (`EOF`, the default, appends).
    #[serde(default)]
    pub insertafter: Option<String>,
    /// When the markers are not found, insert before the last line matching this regex
    /// (`BOF` prepends).
    #[serde(default)]
    pub insertbefore: Option<String>,
    /// Create the file (and its missing directories) when it does not exist.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub create: bool,
    /// Keep a copy of the replaced file as `path.YYYY-mm-dd@HH:MM:SS~`.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub backup: bool,
    /// Command run on the edited file before it is put in place; `%s` is the temp file's path.
    #[serde(default)]
    pub validate: Option<String>,
}
}

/// Ansible's blockinfile edit on `original` (None: the file does not exist).
pub fn edit(p: &BlockinfileParams, original: Option<&str>) -> Result<String, ModuleError> {
    let marker0 = p.marker.replace("{mark}", &p.marker_begin);
    let marker1 = p.marker.replace("{mark}", &p.marker_end);
    let text = original.unwrap_or("");
    // each line keeps its own ending (a CRLF file stays CRLF), the block's lines theirs (as
    // Python's splitlines(True)), the markers end in LF
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    let blocklines: Vec<String> = if p.state == Presence::Present && !p.block.is_empty() {
        let block = if p.block.ends_with('\n') { p.block.clone() } else { format!("{}\n", p.block) };
        std::iter::once(format!("{marker0}\n"))
            .chain(block.split_inclusive('\n').map(str::to_string))
            .chain(std::iter::once(format!("{marker1}\n")))
            .collect()
    } else {
        vec![]
    };
    let (mut n0, mut n1) = (None, None);
    for (i, l) in lines.iter().enumerate() {
        let l = l.trim_end_matches('\n').trim_end_matches('\r');
        if l == marker0 {
            n0 = Some(i);
        }
        if l == marker1 {
            n1 = Some(i);
        }
    }
    let at = match (n0, n1) {
        (Some(a), Some(b)) => {
            let (lo, hi) = if a < b { (a, b) } else { (b, a) };
            lines.drain(lo..=hi);
            lo
        }
        _ => {
            let (re, after) = match (p.insertafter.as_deref(), p.insertbefore.as_deref()) {
                (Some("EOF"), _) | (None, None) => (None, true),
                (Some(a), _) => (Some(util::compile("insertafter", a, false)?), true),
                (None, Some("BOF")) => (None, false),
                (None, Some(b)) => (Some(util::compile("insertbefore", b, false)?), false),
            };
            match re {
                Some(re) => {
                    let mut last = None;
                    for (i, l) in lines.iter().enumerate() {
                        if util::hit(&re, l.trim_end_matches('\n').trim_end_matches('\r'))? {
                            last = Some(i);
                        }
                    }
                    match last {
                        None => lines.len(),
                        Some(i) if after => i + 1,
                        Some(i) => i,
                    }
                }
                None if after => lines.len(),
                None => 0,
            }
        }
    };
    // a block after a last line without an ending starts on a line of its own
    if !blocklines.is_empty()
        && at > 0
        && let Some(prev) = lines.get_mut(at - 1)
        && !prev.ends_with('\n')
    {
        prev.push('\n');
    }
    lines.splice(at..at, blocklines);
    Ok(lines.concat())
}

pub struct Blockinfile;

#[async_trait]
impl Module for Blockinfile {
    type Params = BlockinfileParams;
    type State = (EditState, Option<String>);
    const NAME: &'static str = "blockinfile";

    fn doc(&self) -> Doc {
        Doc {
            description: "Insert, update or remove a block of lines surrounded by marker lines \
                          (`# BEGIN ANSIBLE MANAGED BLOCK` / `# END ANSIBLE MANAGED BLOCK`). A missing block goes \
                          after `insertafter` (end of file by default) or before `insertbefore`.",
            examples: r#"- name: Static address for eth0
  blockinfile:
    path: /etc/dhcpcd.conf
    block: |
      interface eth0
      static ip_address=192.168.0.10/24

- name: Remove the block again
  blockinfile:
    path: /etc/dhcpcd.conf
    state: absent
"#,
        }
    }

    fn validate(&self, p: &BlockinfileParams) -> Result<(), String> {
        util::check_validate(p.validate.as_deref())?;
        if p.insertafter.is_some() && p.insertbefore.is_some() {
            return Err("insertafter and insertbefore are mutually exclusive".into());
        }
        if p.marker_begin == p.marker_end || !p.marker.contains("{mark}") {
            return Err("marker must contain {mark} and marker_begin must differ from marker_end".into());
        }
        Ok(())
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &BlockinfileParams, host: &ReadHost) -> Result<Self::State, ModuleError> {
        let (file, before) = probe_text(host, &p.path).await?;
        if before.is_none() && !p.create {
            return Err(ModuleError::new(format!("Path {} does not exist !", p.path)));
        }
        let want = edit(p, before.as_deref())?;
        let msg = match &before {
            None => "File created",
            Some(b) if *b == want => "",
            Some(_) if p.state == Presence::Absent || p.block.is_empty() => "Block removed",
            Some(_) => "Block inserted",
        };
        let parent_missing = if before.is_none() { missing_parent(host, &p.path).await? } else { None };
        Ok((EditState { file, want: Some(want), msg: msg.into(), found: None, parent_missing }, before))
    }

    fn plan(&self, p: &BlockinfileParams, st: &Self::State) -> Result<Plan, ModuleError> {
        Ok(plan_edit(&st.0, st.1.as_deref(), attrs(p), WriteOpts { backup: p.backup, validate: p.validate.as_deref() }))
    }

    fn data(&self, _p: &BlockinfileParams, st: &Self::State) -> Map<String, Value> {
        edit_data(&st.0)
    }

    /// What the edit did ("line added"), as Ansible reports it.
    async fn report(
        &self,
        _p: &BlockinfileParams,
        st: &Self::State,
        _host: &ReadHost,
    ) -> Result<Map<String, Value>, ModuleError> {
        Ok(edit_data(&st.0))
    }
}

fn attrs(p: &BlockinfileParams) -> Attrs<'_> {
    p.attrs()
}
