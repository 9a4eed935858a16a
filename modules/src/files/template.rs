//! `template`: render a controller-side Jinja template and write it like `copy`.

use crate::copy::{
    ContentSpec, ContentState, CopyMode, content_data, local_mode, plan_content_write, probe_dest, written_attrs,
};
use crate::util::{self, Attrs};
use async_trait::async_trait;
use pbr_core::SyntaxOptions;
use pbr_core::params::bool_lenient;
use pbr_core::{Ctx, Doc, Module, ModuleError, Plan, ReadHost};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateParams {
    /// Template file on the controller, looked up in the role's `templates/` then the playbook's
    /// directory.
    pub src: String,
    /// Remote path to write (inside it, under the template's basename, when it is a directory).
    pub dest: String,
    /// Keep a copy of the replaced file as `dest.YYYY-mm-dd@HH:MM:SS~`.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub backup: bool,
    /// When false, only write the file if it does not exist yet.
    #[serde(default = "yes", deserialize_with = "bool_lenient")]
    pub force: bool,
    /// When `dest` is a symlink, write the file it points to instead of replacing the link.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub follow: bool,
    /// Command run on the rendered file before it is put in place; `%s` is the temp file's path.
    #[serde(default)]
    pub validate: Option<String>,
    /// Remove the first newline after a block tag (`{% ... %}`).
    #[serde(default = "yes", deserialize_with = "bool_lenient")]
    pub trim_blocks: bool,
    /// Remove spaces and tabs before a block tag on its line.
    #[serde(default, deserialize_with = "bool_lenient")]
    pub lstrip_blocks: bool,
    /// The newline the rendered file uses: `\n`, `\r\n` or `\r`.
    #[serde(default)]
    pub newline_sequence: Option<String>,
    /// What opens a block tag in this template (default `{%`).
    #[serde(default)]
    pub block_start_string: Option<String>,
    /// What closes a block tag (default `%}`).
    #[serde(default)]
    pub block_end_string: Option<String>,
    /// What opens an expression (default `{{`).
    #[serde(default)]
    pub variable_start_string: Option<String>,
    /// What closes an expression (default `}}`).
    #[serde(default)]
    pub variable_end_string: Option<String>,
    /// What opens a comment (default `{#`).
    #[serde(default)]
    pub comment_start_string: Option<String>,
    /// What closes a comment (default `#}`).
    #[serde(default)]
    pub comment_end_string: Option<String>,
    /// The encoding of the file written (default `utf-8`; `windows-1252`, `latin-1`... a
    /// character the encoding lacks fails the task).
    #[serde(default)]
    pub output_encoding: Option<String>,
    /// Mode: quoted octal (`"0644"`), symbolic (`u=rw,g=r,o=r`), or `preserve`: the template
    /// file's own mode.
    #[serde(default)]
    pub mode: Option<CopyMode>,
    /// Owner (name or uid).
    #[serde(default)]
    pub owner: Option<String>,
    /// Group (name or gid).
    #[serde(default)]
    pub group: Option<String>,
}

impl TemplateParams {
    fn syntax(&self) -> SyntaxOptions {
        let d = SyntaxOptions::default();
        let pick = |o: &Option<String>, def: &str| o.clone().unwrap_or_else(|| def.to_string());
        SyntaxOptions {
            trim_blocks: self.trim_blocks,
            lstrip_blocks: self.lstrip_blocks,
            block: (pick(&self.block_start_string, &d.block.0), pick(&self.block_end_string, &d.block.1)),
            variable: (
                pick(&self.variable_start_string, &d.variable.0),
                pick(&self.variable_end_string, &d.variable.1),
            ),
            comment: (pick(&self.comment_start_string, &d.comment.0), pick(&self.comment_end_string, &d.comment.1)),
        }
    }
}

pub struct Template;

#[async_trait]
impl Module for Template {
    type Params = TemplateParams;
    type State = ContentState;
    const NAME: &'static str = "template";

    fn doc(&self) -> Doc {
        Doc {
            description: "Render a Jinja template on the controller with the host's variables and write the result \
                          on the host, exactly as `copy` does (atomic replace, attributes, backup, validate, diff).",
            examples: r#"- name: Configure sshd
  template:
    src: sshd_config.j2
    dest: /etc/ssh/sshd_config
    mode: "0600"
    validate: /usr/sbin/sshd -t -f %s
"#,
        }
    }

    fn validate(&self, p: &TemplateParams) -> Result<(), String> {
        if let Some(n) = &p.newline_sequence
            && newline(n).is_none()
        {
            return Err(format!("newline_sequence must be \\n, \\r\\n or \\r, got {n:?}"));
        }
        if let Some(e) = &p.output_encoding {
            output_encoding(e)?;
        }
        util::check_validate(p.validate.as_deref())
    }

    async fn probe(&self, ctx: &Ctx<'_>, p: &TemplateParams, host: &ReadHost) -> Result<ContentState, ModuleError> {
        let path = ctx.find_file("templates", &p.src)?;
        let mut text = ctx
            .controller
            .render_template(&path, &p.src, &p.dest, &p.syntax())
            .map_err(|e| ModuleError::new(format!("cannot render {}: {e}", path.display())))?;
        // as Ansible's: the template's trailing newlines that rendering dropped are put back
        let src_text = std::fs::read(&path).unwrap_or_default();
        let want_nl = src_text.iter().rev().take_while(|b| **b == b'\n').count();
        let have_nl = text.bytes().rev().take_while(|b| *b == b'\n').count();
        if want_nl > have_nl {
            text.push_str(&"\n".repeat(want_nl - have_nl));
        }
        if let Some(nl) = p.newline_sequence.as_deref().and_then(newline).filter(|n| *n != "\n") {
            text = text.replace("\r\n", "\n").replace('\n', nl);
        }
        let want =
            match p.output_encoding.as_deref().map(output_encoding).transpose().map_err(ModuleError::new)?.flatten() {
                None => text.into_bytes(),
                Some(enc) => {
                    let (bytes, _, unmappable) = enc.encode(&text);
                    if unmappable {
                        return Err(ModuleError::new(format!(
                            "cannot write {} in {}: a character of the rendered text has no code there",
                            p.dest,
                            enc.name()
                        )));
                    }
                    bytes.into_owned()
                }
            };
        // in a directory `dest`, under the template's own name (`.j2` kept, as Ansible's)
        let file = probe_dest(host, &p.dest, Some(&p.src), p.follow).await?;
        let src_mode = if p.mode == Some(CopyMode::Preserve) { Some(local_mode(&path)?) } else { None };
        Ok(ContentState { file, want, force: p.force, src_mode, src: Some(path.display().to_string()) })
    }

    fn plan(&self, p: &TemplateParams, st: &ContentState) -> Result<Plan, ModuleError> {
        plan_content_write(&spec(p, st), st)
    }

    async fn report(
        &self,
        _p: &TemplateParams,
        st: &ContentState,
        host: &ReadHost,
    ) -> Result<Map<String, Value>, ModuleError> {
        written_attrs(host, &st.file.path).await
    }

    fn data(&self, _p: &TemplateParams, st: &ContentState) -> Map<String, Value> {
        content_data(st)
    }
}

/// `output_encoding`: `None` for UTF-8 (also when empty, as Ansible's default), else the
/// encoding of that label (`windows-1252`, `latin-1`...).
fn output_encoding(label: &str) -> Result<Option<&'static encoding_rs::Encoding>, String> {
    let l = label.trim().to_ascii_lowercase();
    if l.is_empty() || l == "utf-8" || l == "utf8" {
        return Ok(None);
    }
    // Python's names where the WHATWG labels differ
    let l = match l.as_str() {
        "latin-1" | "latin_1" => "latin1",
        "cp1252" => "windows-1252",
        other => other,
    };
    match encoding_rs::Encoding::for_label(l.as_bytes()) {
        Some(e) if e == encoding_rs::UTF_8 => Ok(None),
        Some(e) => Ok(Some(e)),
        None => Err(format!("output_encoding {label:?}: unknown encoding")),
    }
}

/// `newline_sequence`, as the characters or written with backslashes (`'\r\n'` in single
/// quotes), as Ansible takes it.
fn newline(n: &str) -> Option<&'static str> {
    match n {
        "\n" | "\\n" => Some("\n"),
        "\r\n" | "\\r\\n" => Some("\r\n"),
        "\r" | "\\r" => Some("\r"),
        _ => None,
    }
}

fn spec<'a>(p: &'a TemplateParams, st: &'a ContentState) -> ContentSpec<'a> {
    ContentSpec {
        attrs: Attrs { mode: st.mode(p.mode.as_ref()), owner: p.owner.as_deref(), group: p.group.as_deref() },
        backup: p.backup,
        validate: p.validate.as_deref(),
    }
}
