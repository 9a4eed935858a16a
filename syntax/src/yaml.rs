//! YAML with Ansible's reading of it, keeping a span on every node.
//!
//! Parsed with saphyr, then resolved by YAML 1.1 rules as Ansible applies them: `yes/no/on/off/
//! true/false` (any case) are booleans, `0644` is octal, `0x1F` hex, `1_000` an int, `~`/`null`
//! is null, anchors/aliases resolve, and `<<` merges mappings (a map or a list of maps).
//! Quoted scalars are always strings.

use crate::diag::Diag;
use crate::source::{Span, SrcId, add_source};
use serde_json::Value;
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in document order; keys are nodes (nearly always strings).
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub span: Span,
    /// Explicit tag such as `!vault` or `!unsafe`, without the `!`.
    pub tag: Option<String>,
    /// For scalars: true when written plain (unquoted, not a block scalar). Lint reads it.
    pub plain: bool,
}

/// One segment of a path into a node tree (as serde reports it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

impl Node {
    pub fn new(kind: NodeKind, span: Span) -> Node {
        Node { kind, span, tag: None, plain: false }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            NodeKind::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            NodeKind::Seq(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.kind, NodeKind::Null)
    }

    /// Value of a string key in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.get_entry(key).map(|(_, v)| v)
    }

    /// Key node and value node of a string key in a mapping.
    pub fn get_entry(&self, key: &str) -> Option<(&Node, &Node)> {
        self.as_map()?.iter().find(|(k, _)| k.key_str().as_deref() == Some(key)).map(|(k, v)| (k, v))
    }

    /// A mapping key as text (ints and bools are stringified as Ansible would).
    pub fn key_str(&self) -> Option<String> {
        match &self.kind {
            NodeKind::Str(s) => Some(s.clone()),
            NodeKind::Int(i) => Some(i.to_string()),
            NodeKind::Float(f) => Some(f.to_string()),
            NodeKind::Bool(b) => Some(if *b { "True" } else { "False" }.to_string()),
            NodeKind::Null => Some(String::new()),
            _ => None,
        }
    }

    /// Short name of the node's type, for messages ("a mapping", "a string"...).
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Int(_) => "an integer",
            NodeKind::Float(_) => "a number",
            NodeKind::Str(_) => "a string",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }

    /// Convert to a JSON value (spans dropped). Map keys become strings.
    pub fn to_value(&self) -> Value {
        match &self.kind {
            NodeKind::Null => Value::Null,
            NodeKind::Bool(b) => Value::Bool(*b),
            NodeKind::Int(i) => Value::from(*i),
            NodeKind::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number).unwrap_or(Value::Null),
            // `!unsafe`: never templated, as in Ansible (kept whole through a raw block)
            NodeKind::Str(s) if self.tag.as_deref() == Some("unsafe") && is_template(s) => {
                Value::String(unsafe_text(s))
            }
            NodeKind::Str(s) => Value::String(s.clone()),
            NodeKind::Seq(s) => Value::Array(s.iter().map(Node::to_value).collect()),
            NodeKind::Map(m) => {
                let mut out = serde_json::Map::new();
                for (k, v) in m {
                    out.insert(k.key_str().unwrap_or_default(), v.to_value());
                }
                Value::Object(out)
            }
        }
    }

    /// The node at a path (for mapping serde errors back to a location); the deepest node found.
    pub fn find(&self, path: &[PathSeg]) -> &Node {
        let mut cur = self;
        for seg in path {
            let next = match (seg, &cur.kind) {
                (PathSeg::Key(k), NodeKind::Map(_)) => cur.get(k),
                (PathSeg::Index(i), NodeKind::Seq(s)) => s.get(*i),
                _ => None,
            };
            match next {
                Some(n) => cur = n,
                None => break,
            }
        }
        cur
    }

    /// Like [`Node::find`] but for a key, returns the key node itself (where "unknown key"
    /// errors should point).
    pub fn find_key(&self, path: &[PathSeg], key: &str) -> Option<&Node> {
        self.find(path).get_entry(key).map(|(k, _)| k)
    }
}

/// Read and parse a YAML file (all documents). Registers the source for diagnostics.
pub fn load_file(path: &Path) -> Result<Vec<Node>, Diag> {
    let text = crate::source::read_text(path).map_err(|e| match e {
        crate::source::ReadError::NotUtf8(span, m) => Diag::error(crate::diag::RuleId::Encoding.as_str(), span, m)
            .with_help("save the file as UTF-8 (`iconv -f LATIN1 -t UTF-8`)"),
        e => Diag::error("io", Span::none(), format!("cannot read {}: {e}", path.display())),
    })?;
    let id = add_source(path, text);
    load_source(id)
}

/// Parse a registered source (all documents).
pub fn load_source(id: SrcId) -> Result<Vec<Node>, Diag> {
    crate::yaml_load::load(id)
}

/// Parse a string under a display name (tests, `-e` values).
pub fn load_str(name: &str, text: &str) -> Result<Vec<Node>, Diag> {
    let id = add_source(name, text.to_string());
    load_source(id)
}

/// Parse a YAML 1.1 plain scalar the way Ansible does.
pub fn resolve_plain(s: &str) -> NodeKind {
    crate::yaml_load::resolve_plain(s)
}

/// A template text that renders to `s` itself: `s` in `{% raw %}` blocks (an `endraw` inside
/// it is put back as a string literal between two of them).
pub fn unsafe_text(s: &str) -> String {
    let parts: Vec<String> = s.split("{% endraw %}").map(|p| format!("{{% raw %}}{p}{{% endraw %}}")).collect();
    parts.join("{{ '{% endraw %}' }}")
}

/// Whether a string holds template syntax (`{{`, `{%`, `{#`).
fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}
