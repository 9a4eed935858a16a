//! `slurp`: read a file on the host into the result, base64-encoded (never changes anything).

use async_trait::async_trait;
use base64::Engine as _;
use pbr_core::{Ctx, Doc, Module, ModuleError, Plan, ReadHost};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlurpParams {
    /// The file to read on the host.
    #[serde(alias = "path")]
    pub src: String,
}

#[derive(Debug, Clone)]
pub struct SlurpState {
    pub content: Vec<u8>,
}

pub struct Slurp;

#[async_trait]
impl Module for Slurp {
    type Params = SlurpParams;
    type State = SlurpState;
    const NAME: &'static str = "slurp";

    fn doc(&self) -> Doc {
        Doc {
            description: "Read a file on the host into the result: `content` (base64, decode it with \
                          `b64decode`), `encoding` (`base64`) and `source`. A missing file or a directory \
                          fails the task, with Ansible's words. Never changes anything; the content is read \
                          in check mode too.",
            examples: r#"- name: Read the node's iSCSI initiator name
  slurp:
    src: /etc/iscsi/initiatorname.iscsi
  register: iqn

- name: Show it
  debug:
    msg: "{{ iqn.content | b64decode }}"
"#,
        }
    }

    async fn probe(&self, _ctx: &Ctx<'_>, p: &SlurpParams, host: &ReadHost) -> Result<SlurpState, ModuleError> {
        // as Ansible words them
        match host.inspect_one(pbr_core::PathQuery::new(p.src.clone()).follow(true)).await?.stat {
            None => return Err(ModuleError::new(format!("file not found: {}", p.src))),
            Some(s) if s.kind == "directory" => {
                return Err(ModuleError::new(format!("source is a directory and must be a file: {}", p.src)));
            }
            Some(_) => {}
        }
        let content =
            host.read_file(&p.src).await?.ok_or_else(|| ModuleError::new(format!("file not found: {}", p.src)))?;
        Ok(SlurpState { content })
    }

    fn plan(&self, _p: &SlurpParams, _st: &SlurpState) -> Result<Plan, ModuleError> {
        Ok(Plan::empty())
    }

    fn data(&self, p: &SlurpParams, st: &SlurpState) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("content".into(), Value::String(base64::engine::general_purpose::STANDARD.encode(&st.content)));
        m.insert("encoding".into(), Value::String("base64".into()));
        m.insert("source".into(), Value::String(p.src.clone()));
        m
    }
}
