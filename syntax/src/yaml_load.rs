//! saphyr event stream -> [`Node`] tree with Ansible's YAML 1.1 rules.
//!
//! The event stream is folded into nodes with an explicit stack (no recursion, so deep input
//! cannot overflow the call stack). Plain scalars are resolved as PyYAML's implicit resolvers do;
//! quoted and block scalars stay strings. Anchors are copied on alias, `<<` merges are applied
//! when their mapping closes, and a duplicate key is an error.

// `Diag` is the crate's error type by design; it is returned once per load, not on a hot path.
#![allow(clippy::result_large_err)]

use crate::diag::Diag;
use crate::diag::RuleId;
use crate::source::{Span, SrcId, source};
use crate::yaml::{Node, NodeKind};
use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Tag};
use std::collections::{HashMap, HashSet};

/// Deepest nesting of collections accepted (deeper input is refused, not overflowed).
const MAX_DEPTH: usize = 1000;
/// Most nodes that alias expansion may copy in one stream ("billion laughs" guard).
const MAX_ALIAS_NODES: usize = 2_000_000;
/// Mappings with more entries than this index their keys in a hash map for duplicate checks.
const LINEAR_KEYS: usize = 12;

/// Parse a registered source: every document of the stream, in order.
pub fn load(id: SrcId) -> Result<Vec<Node>, Diag> {
    let Some(src) = source(id) else {
        return Err(Diag::error("io", Span::none(), format!("unknown source id {}", id.0)));
    };
    let text: &str = &src.text;
    // PyYAML, Ansible's parser, reads a flow collection whose closing bracket (or a quoted
    // scalar in it) sits left of the indentation YAML 1.2 asks for: `key: {` ... `}` at column
    // 0, a common layout of JSON-style vars files. saphyr refuses it, so such a line is indented
    // one more space and the text parsed again; positions are mapped back to the file's.
    let mut inserts: Vec<usize> = vec![];
    let mut parsed = String::new();
    loop {
        let t = if inserts.is_empty() { text } else { parsed.as_str() };
        match parse(id, text, t, &inserts) {
            Ok(docs) => {
                if crate::vault::was_vaulted(&src.path) {
                    docs.iter().for_each(reveal_values);
                }
                return Ok(docs);
            }
            Err((d, Some(at))) if inserts.len() < MAX_FLOW_REINDENTS => match flow_line_start(text, at) {
                Some(line) => {
                    let i = inserts.partition_point(|&o| o <= line);
                    inserts.insert(i, line);
                    parsed = reindented(text, &inserts);
                }
                None => return Err(d),
            },
            Err((d, _)) => return Err(d),
        }
    }
}

/// Most lines [`load`] indents to read a PyYAML-style flow collection.
const MAX_FLOW_REINDENTS: usize = 256;

/// The start of the line at `at` when the scanner refused its indentation and the line begins
/// with a flow indicator or a quoted scalar (what PyYAML reads there).
fn flow_line_start(text: &str, at: usize) -> Option<usize> {
    let line = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let blank_before = text[line..at].bytes().all(|b| b == b' ');
    let c = text[at..].bytes().next()?;
    (blank_before && matches!(c, b'}' | b']' | b',' | b'"' | b'\'')).then_some(line)
}

/// `text` with one space inserted at each offset of `inserts` (sorted, repeats allowed).
fn reindented(text: &str, inserts: &[usize]) -> String {
    let mut out = String::with_capacity(text.len() + inserts.len());
    let mut from = 0;
    for &o in inserts {
        out.push_str(&text[from..o]);
        out.push(' ');
        from = o;
    }
    out.push_str(&text[from..]);
    out
}

/// One parse of `parsed` (`text` with spaces inserted at `inserts`); a scanner error that
/// says "invalid indentation" also gives its offset in `text`.
fn parse(id: SrcId, text: &str, parsed: &str, inserts: &[usize]) -> Result<Vec<Node>, (Diag, Option<usize>)> {
    let mut b = Builder::new(id, text, parsed, inserts);
    let mut parser = Parser::new_from_str(parsed);
    while let Some(item) = parser.next_event() {
        match item {
            Ok((ev, span)) => {
                let start = b.pos.byte(span.start.index());
                let end = b.pos.byte(span.end.index());
                b.event(ev, start, end).map_err(|d| (d, None))?;
            }
            Err(e) => {
                let at = b.pos.byte(e.marker().index());
                let reindent = (e.info() == "invalid indentation").then_some(at);
                return Err((b.scan_error(&e), reindent));
            }
        }
    }
    Ok(b.docs)
}

/// The values of a vault-encrypted file are secrets: its strings of 6 characters or more (shorter
/// ones, `yes` or a port, would blank out ordinary output) are redacted wherever they appear.
fn reveal_values(n: &Node) {
    match &n.kind {
        NodeKind::Str(s) if s.chars().count() >= 6 => crate::vault::reveal(s),
        NodeKind::Seq(items) => items.iter().for_each(reveal_values),
        NodeKind::Map(entries) => entries.iter().for_each(|(_, v)| reveal_values(v)),
        _ => {}
    }
}

/// Converts the parser's character indexes into byte offsets of the file, walking from the last
/// position (events arrive in nearly increasing order, so the total work stays linear).
struct BytePos<'a> {
    /// The text parsed: the file's, with a space inserted at each of `inserts` (see [`load`]).
    text: &'a str,
    /// Where those spaces are in `text`.
    inserted: Vec<usize>,
    ascii: bool,
    char_idx: usize,
    byte_idx: usize,
}

impl<'a> BytePos<'a> {
    fn new(text: &'a str, inserts: &[usize]) -> Self {
        let inserted = inserts.iter().enumerate().map(|(k, o)| o + k).collect();
        BytePos { text, inserted, ascii: text.is_ascii(), char_idx: 0, byte_idx: 0 }
    }

    /// The byte offset in the file of the parsed text's character `char_index`.
    fn byte(&mut self, char_index: usize) -> usize {
        let b = self.parsed_byte(char_index);
        b - self.inserted.partition_point(|&i| i < b)
    }

    fn parsed_byte(&mut self, char_index: usize) -> usize {
        if self.ascii {
            return char_index.min(self.text.len());
        }
        while self.char_idx < char_index {
            match self.text[self.byte_idx..].chars().next() {
                Some(c) => {
                    self.byte_idx += c.len_utf8();
                    self.char_idx += 1;
                }
                None => return self.text.len(),
            }
        }
        while self.char_idx > char_index {
            match self.text[..self.byte_idx].chars().next_back() {
                Some(c) => {
                    self.byte_idx -= c.len_utf8();
                    self.char_idx -= 1;
                }
                None => break,
            }
        }
        self.byte_idx
    }
}

/// Identity of a scalar key for duplicate detection (type + text, as Python's dict would see it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct KeyId(u8, String);

fn key_id(k: &Node) -> Option<KeyId> {
    let t = match &k.kind {
        NodeKind::Null => 0,
        NodeKind::Bool(_) => 1,
        NodeKind::Int(_) => 2,
        NodeKind::Float(_) => 3,
        NodeKind::Str(_) => 4,
        NodeKind::Seq(_) | NodeKind::Map(_) => return None,
    };
    Some(KeyId(t, k.key_str()?))
}

fn is_merge_key(k: &Node) -> bool {
    k.plain && k.tag.is_none() && matches!(&k.kind, NodeKind::Str(s) if s == "<<")
}

struct MapFrame {
    entries: Vec<(Node, Node)>,
    key: Option<Node>,
    /// Merge values (`<<: ...`) with the entry index at which they appeared.
    merges: Vec<(usize, Node)>,
    index: Option<HashMap<KeyId, usize>>,
}

enum Coll {
    Seq(Vec<Node>),
    Map(MapFrame),
}

struct Frame {
    coll: Coll,
    start: usize,
    /// True for `[...]`/`{...}`: the span then ends at the closing bracket.
    flow: bool,
    anchor: usize,
    tag: Option<String>,
    /// Nodes in this subtree so far (for the alias budget).
    count: usize,
}

struct Builder<'a> {
    id: SrcId,
    text: &'a str,
    pos: BytePos<'a>,
    docs: Vec<Node>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Node, usize)>,
    /// Anchors of earlier documents.
    stale: HashSet<usize>,
    alias_nodes: usize,
}

impl<'a> Builder<'a> {
    fn new(id: SrcId, text: &'a str, parsed: &'a str, inserts: &[usize]) -> Self {
        Builder {
            id,
            text,
            pos: BytePos::new(parsed, inserts),
            docs: Vec::new(),
            stack: Vec::new(),
            anchors: HashMap::new(),
            stale: HashSet::new(),
            alias_nodes: 0,
        }
    }

    fn span(&self, start: usize, end: usize) -> Span {
        Span::new(self.id, start, end)
    }

    fn scan_error(&mut self, e: &ScanError) -> Diag {
        let mut at = self.pos.byte(e.marker().index());
        if e.info().contains("tab") {
            // Point at the tab itself when it follows closely.
            if let Some(t) = self.text.get(at..).and_then(|r| r.find('\t')).filter(|&t| t < 200) {
                at += t;
            }
        }
        // Point at one character (or the end of input).
        let end = self.text[at..].chars().next().map(|c| at + c.len_utf8()).unwrap_or(at);
        let (message, label, help) = describe_scan_error(e.info());
        let mut d = Diag::error(RuleId::YamlSyntax.as_str(), self.span(at, end), message);
        if let Some(l) = label {
            d = d.with_label(l);
        }
        if let Some(h) = help {
            d = d.with_help(h);
        }
        d
    }

    fn event(&mut self, ev: Event<'_>, start: usize, end: usize) -> Result<(), Diag> {
        match ev {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => Ok(()),
            Event::DocumentStart(_) => {
                // Anchors are local to their document (as in PyYAML's composer).
                self.stack.clear();
                self.stale.extend(self.anchors.drain().map(|(id, _)| id));
                Ok(())
            }
            Event::Alias(id) => {
                let span = self.span(start, end);
                let Some((node, count)) = self.anchors.get(&id) else {
                    if self.stale.contains(&id) {
                        return Err(Diag::error("yaml-alias", span, "this alias names an anchor of another document")
                            .with_label("unknown alias")
                            .with_help("anchors are local to their document; define it again after `---`"));
                    }
                    return Err(Diag::error("yaml-alias", span, "this alias refers to a node that contains it")
                        .with_label("recursive alias")
                        .with_help("an alias can only name a node that is complete before it"));
                };
                self.alias_nodes += count;
                if self.alias_nodes > MAX_ALIAS_NODES {
                    return Err(Diag::error("yaml-alias", span, "aliases expand to too many nodes")
                        .with_label("expansion limit reached here")
                        .with_note(format!("at most {MAX_ALIAS_NODES} nodes may be copied by aliases")));
                }
                let count = *count;
                let mut node = node.clone();
                node.span = span;
                self.push_node(node, count)
            }
            Event::Scalar(value, style, anchor, tag) => {
                let full = self.span(start, end);
                let mut node = scalar_node(value.into_owned(), style, tag.as_deref(), full)?;
                if anchor > 0 || tag.is_some() {
                    // The node's own span starts at its content, after `&anchor` / `!tag`.
                    node.span.start = self.content_start(start, end);
                }
                if node.plain && value_is_empty(&node) {
                    node.span.end = node.span.start;
                }
                self.finish(node, anchor, 1)
            }
            Event::SequenceStart(anchor, tag) => self.open(Coll::Seq(Vec::new()), start, end, anchor, tag.as_deref()),
            Event::MappingStart(anchor, tag) => {
                let frame = MapFrame { entries: Vec::new(), key: None, merges: Vec::new(), index: None };
                self.open(Coll::Map(frame), start, end, anchor, tag.as_deref())
            }
            Event::SequenceEnd | Event::MappingEnd => self.close(end),
        }
    }

    fn open(&mut self, coll: Coll, start: usize, end: usize, anchor: usize, tag: Option<&Tag>) -> Result<(), Diag> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(Diag::error(RuleId::YamlSyntax.as_str(), self.span(start, end), "nesting too deep")
                .with_note(format!("at most {MAX_DEPTH} nested lists or mappings are accepted")));
        }
        // The event's span may begin at an anchor or tag; the collection itself begins after it.
        let start = if anchor > 0 || tag.is_some() { self.content_start(start, usize::MAX) } else { start };
        let flow = matches!(self.text.as_bytes().get(start), Some(b'[' | b'{'));
        let tag = tag.and_then(tag_text);
        self.stack.push(Frame { coll, start, flow, anchor, tag, count: 1 });
        Ok(())
    }

    /// Where a node's content begins, after its properties, but not past `end`.
    fn content_start(&self, start: usize, end: usize) -> usize {
        self.text.get(start..).map(|s| skip_props(s, start)).unwrap_or(start).min(end.max(start))
    }

    fn close(&mut self, end: usize) -> Result<(), Diag> {
        let Some(frame) = self.stack.pop() else {
            return Ok(());
        };
        let Frame { coll, start, flow, anchor, tag, count } = frame;
        let (kind, last_end) = match coll {
            Coll::Seq(items) => {
                let last = items.last().map(|n| n.span.end);
                (NodeKind::Seq(items), last)
            }
            Coll::Map(m) => {
                let last = m.entries.last().map(|(_, v)| v.span.end);
                let last = match (last, m.merges.last()) {
                    (Some(a), Some((_, v))) => Some(a.max(v.span.end)),
                    (a, b) => a.or(b.map(|(_, v)| v.span.end)),
                };
                (NodeKind::Map(apply_merges(m)?), last)
            }
        };
        let end = if flow { end } else { last_end.unwrap_or(end) };
        let mut node = Node::new(kind, self.span(start, end.max(start)));
        node.tag = tag;
        self.finish(node, anchor, count)
    }

    /// A node is complete: remember it under its anchor, then hand it to its parent.
    fn finish(&mut self, node: Node, anchor: usize, count: usize) -> Result<(), Diag> {
        if anchor > 0 {
            self.anchors.insert(anchor, (node.clone(), count));
        }
        self.push_node(node, count)
    }

    fn push_node(&mut self, node: Node, count: usize) -> Result<(), Diag> {
        let Some(top) = self.stack.last_mut() else {
            self.docs.push(node);
            return Ok(());
        };
        top.count += count;
        match &mut top.coll {
            Coll::Seq(items) => items.push(node),
            Coll::Map(m) => match m.key.take() {
                None => m.key = Some(node),
                Some(key) => insert_entry(m, key, node)?,
            },
        }
        Ok(())
    }
}

fn value_is_empty(n: &Node) -> bool {
    match &n.kind {
        NodeKind::Null => true,
        NodeKind::Str(s) => s.is_empty(),
        _ => false,
    }
}

/// Start of a node's content after any `&anchor` / `!tag` properties.
fn skip_props(s: &str, base: usize) -> usize {
    let mut rest = s;
    loop {
        let trimmed = rest.trim_start_matches([' ', '\t', '\r', '\n']);
        if trimmed.starts_with('&') || trimmed.starts_with('!') {
            let n = trimmed.find([' ', '\t', '\r', '\n']).unwrap_or(trimmed.len());
            rest = &trimmed[n..];
        } else {
            return base + (s.len() - trimmed.len());
        }
    }
}

fn insert_entry(m: &mut MapFrame, key: Node, value: Node) -> Result<(), Diag> {
    if is_merge_key(&key) {
        m.merges.push((m.entries.len(), value));
        return Ok(());
    }
    if let Some(id) = key_id(&key) {
        let first = match &m.index {
            Some(index) => index.get(&id).copied(),
            None => m.entries.iter().position(|(k, _)| key_id(k).as_ref() == Some(&id)),
        };
        if let Some(i) = first {
            return Err(duplicate_key(&m.entries[i].0, &key));
        }
        if let Some(index) = &mut m.index {
            index.insert(id, m.entries.len());
        } else if m.entries.len() >= LINEAR_KEYS {
            let mut index: HashMap<KeyId, usize> =
                m.entries.iter().enumerate().filter_map(|(i, (k, _))| key_id(k).map(|id| (id, i))).collect();
            index.insert(id, m.entries.len());
            m.index = Some(index);
        }
    }
    m.entries.push((key, value));
    Ok(())
}

fn duplicate_key(first: &Node, second: &Node) -> Diag {
    let name = second.key_str().unwrap_or_default();
    let mut d =
        Diag::error(RuleId::YamlDuplicateKey.as_str(), second.span, format!("duplicate key `{name}` in this mapping"))
            .with_label("defined again here");
    if let Some((line, col)) = first.span.line_col() {
        d = d.with_note(format!("`{name}` was first defined at line {line}, column {col}"));
    }
    d.with_help("each key may appear once in a mapping; remove or rename one of them")
}

/// Apply `<<` merges: explicit keys win over merged ones; within one `<<: [a, b]` the earlier map
/// wins; a later `<<` entry wins over an earlier one (PyYAML's order). Merged keys are placed
/// where the first `<<` stood.
fn apply_merges(m: MapFrame) -> Result<Vec<(Node, Node)>, Diag> {
    if m.merges.is_empty() {
        return Ok(m.entries);
    }
    let mut seen: HashSet<KeyId> = m.entries.iter().filter_map(|(k, _)| key_id(k)).collect();
    let mut merged: Vec<(Node, Node)> = Vec::new();
    for (_, value) in m.merges.iter().rev() {
        let maps: Vec<&Node> = match &value.kind {
            NodeKind::Map(_) => vec![value],
            NodeKind::Seq(items) => {
                for item in items {
                    if !matches!(item.kind, NodeKind::Map(_)) {
                        return Err(Diag::error(
                            "yaml-merge",
                            item.span,
                            format!("a merge list may only hold mappings, found {}", item.type_name()),
                        )
                        .with_label("not a mapping"));
                    }
                }
                items.iter().collect()
            }
            _ => {
                return Err(Diag::error(
                    "yaml-merge",
                    value.span,
                    format!("`<<` expects a mapping or a list of mappings, found {}", value.type_name()),
                )
                .with_label("cannot merge this"));
            }
        };
        for map in maps {
            for (k, v) in map.as_map().unwrap_or(&[]) {
                match key_id(k) {
                    Some(id) => {
                        if seen.insert(id) {
                            merged.push((k.clone(), v.clone()));
                        }
                    }
                    None => merged.push((k.clone(), v.clone())),
                }
            }
        }
    }
    let at = m.merges.first().map(|(i, _)| *i).unwrap_or(0);
    let mut out = Vec::with_capacity(m.entries.len() + merged.len());
    let mut entries = m.entries.into_iter();
    out.extend(entries.by_ref().take(at));
    out.extend(merged);
    out.extend(entries);
    Ok(out)
}

/// A tag as stored in [`Node::tag`]: the written form without its leading `!`
/// (`!vault` -> `vault`, `!!binary` -> `!binary`).
fn tag_text(tag: &Tag) -> Option<String> {
    if tag.is_yaml_core_schema() {
        Some(format!("!{}", tag.suffix))
    } else if tag.handle == "!" {
        Some(tag.suffix.clone())
    } else if tag.handle.is_empty() && tag.suffix == "!" {
        // The non-specific tag `!`: no tag, and a scalar stays a string.
        None
    } else {
        let full = tag.to_string();
        Some(full.strip_prefix('!').map(str::to_string).unwrap_or(full))
    }
}

fn scalar_node(value: String, style: ScalarStyle, tag: Option<&Tag>, span: Span) -> Result<Node, Diag> {
    let plain = style == ScalarStyle::Plain;
    let Some(tag) = tag else {
        let kind = if plain { resolve_plain(&value) } else { NodeKind::Str(value) };
        return Ok(Node { kind, span, tag: None, plain });
    };
    if tag.is_yaml_core_schema() {
        let bad = |what: &str| {
            Diag::error("yaml-tag", span, format!("`{value}` is not a valid {what} for tag `!!{}`", tag.suffix))
                .with_label("cannot convert this")
        };
        let kind = match tag.suffix.as_str() {
            "str" => NodeKind::Str(value.clone()),
            "int" => match parse_int(&value) {
                Some(k @ NodeKind::Int(_)) => k,
                _ => return Err(bad("integer")),
            },
            "float" => match parse_float(&value).or_else(|| parse_tagged_float(&value)) {
                Some(f) => NodeKind::Float(f),
                None => return Err(bad("number")),
            },
            "bool" => match value.to_ascii_lowercase().as_str() {
                "yes" | "true" | "on" => NodeKind::Bool(true),
                "no" | "false" | "off" => NodeKind::Bool(false),
                _ => return Err(bad("boolean")),
            },
            "null" => NodeKind::Null,
            _ => {
                return Ok(Node { kind: NodeKind::Str(value), span, tag: tag_text(tag), plain });
            }
        };
        return Ok(Node { kind, span, tag: None, plain });
    }
    let tag = tag_text(tag);
    if tag.as_deref() == Some("vault") {
        match crate::vault::open_value(&value) {
            Ok(Some(text)) => return Ok(Node { kind: NodeKind::Str(text), span, tag, plain: false }),
            Ok(None) => {}
            Err(e) => {
                return Err(Diag::error("vault", span, format!("cannot decrypt this `!vault` value: {e}"))
                    .with_label("vault-encrypted"));
            }
        }
    }
    Ok(Node { kind: NodeKind::Str(value), span, tag, plain })
}

/// `!!float` also accepts what Python's `float()` does for the common forms (`1`, `1e3`).
fn parse_tagged_float(s: &str) -> Option<f64> {
    let t = s.replace('_', "");
    if t.is_empty() || t.bytes().any(|b| b.is_ascii_alphabetic() && !matches!(b, b'e' | b'E')) {
        return None;
    }
    t.parse::<f64>().ok()
}

/// Parse a YAML 1.1 plain scalar the way Ansible (PyYAML's resolver) does.
pub fn resolve_plain(s: &str) -> NodeKind {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return NodeKind::Null,
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => return NodeKind::Bool(true),
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => return NodeKind::Bool(false),
        _ => {}
    }
    if matches!(s.as_bytes().first(), Some(b'-' | b'+' | b'.' | b'0'..=b'9')) {
        if let Some(f) = parse_float(s) {
            return NodeKind::Float(f);
        }
        if let Some(k) = parse_int(s) {
            return k;
        }
    }
    NodeKind::Str(s.to_string())
}

fn split_sign(s: &str) -> (bool, &str) {
    match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    }
}

fn all(s: &str, f: impl Fn(u8) -> bool) -> bool {
    s.bytes().all(|b| b == b'_' || f(b))
}

fn radix(neg: bool, digits: &str, base: u32) -> Option<NodeKind> {
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    if clean.is_empty() {
        return None;
    }
    let v = i128::from_str_radix(&clean, base).ok()?;
    let v = if neg { -v } else { v };
    i64::try_from(v).ok().map(NodeKind::Int)
}

/// `[0-5]?[0-9]`
fn sexagesimal_part(p: &str) -> bool {
    let b = p.as_bytes();
    match b.len() {
        1 => b[0].is_ascii_digit(),
        2 => (b'0'..=b'5').contains(&b[0]) && b[1].is_ascii_digit(),
        _ => false,
    }
}

/// Integers per PyYAML's int resolver (plus `0o` octal); `None` when `s` is not an int
/// (or does not fit in an i64).
fn parse_int(s: &str) -> Option<NodeKind> {
    let (neg, body) = split_sign(s);
    let first = *body.as_bytes().first()?;
    if let Some(r) = body.strip_prefix("0b") {
        return if !r.is_empty() && all(r, |b| matches!(b, b'0' | b'1')) { radix(neg, r, 2) } else { None };
    }
    if let Some(r) = body.strip_prefix("0x") {
        return if !r.is_empty() && all(r, |b| b.is_ascii_hexdigit()) { radix(neg, r, 16) } else { None };
    }
    if let Some(r) = body.strip_prefix("0o") {
        return if !r.is_empty() && all(r, |b| (b'0'..=b'7').contains(&b)) { radix(neg, r, 8) } else { None };
    }
    if body == "0" {
        return Some(NodeKind::Int(0));
    }
    if first == b'0' {
        let r = &body[1..];
        return if all(r, |b| (b'0'..=b'7').contains(&b)) { radix(neg, body, 8) } else { None };
    }
    if !first.is_ascii_digit() {
        return None;
    }
    if all(body, |b| b.is_ascii_digit()) {
        return radix(neg, body, 10);
    }
    // Sexagesimal: [1-9][0-9_]*(:[0-5]?[0-9])+
    let mut parts = body.split(':');
    let head = parts.next()?;
    if !all(head, |b| b.is_ascii_digit()) {
        return None;
    }
    let mut total: i128 = i128::from(radix(false, head, 10).and_then(|k| int_of(&k))?);
    let mut any = false;
    for p in parts {
        if !sexagesimal_part(p) {
            return None;
        }
        total = total.checked_mul(60)?.checked_add(p.parse::<i128>().ok()?)?;
        any = true;
    }
    if !any {
        return None;
    }
    i64::try_from(if neg { -total } else { total }).ok().map(NodeKind::Int)
}

fn int_of(k: &NodeKind) -> Option<i64> {
    match k {
        NodeKind::Int(i) => Some(*i),
        _ => None,
    }
}

/// `[0-9][0-9_]*`: length of the match at the start of `s`.
fn digits_us(s: &str) -> usize {
    if !s.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        return 0;
    }
    s.bytes().take_while(|b| b.is_ascii_digit() || *b == b'_').count()
}

/// `([eE][-+][0-9]+)?` matching all of `s`.
fn exponent_ok(s: &str) -> bool {
    let b = s.as_bytes();
    s.is_empty()
        || (b.len() >= 3
            && matches!(b[0], b'e' | b'E')
            && matches!(b[1], b'-' | b'+')
            && b[2..].iter().all(u8::is_ascii_digit))
}

/// Floats per PyYAML's float resolver; `None` when `s` is not a float.
fn parse_float(s: &str) -> Option<f64> {
    if matches!(s, ".nan" | ".NaN" | ".NAN") {
        return Some(f64::NAN);
    }
    let (neg, body) = split_sign(s);
    let sign = if neg { -1.0 } else { 1.0 };
    if matches!(body, ".inf" | ".Inf" | ".INF") {
        return Some(sign * f64::INFINITY);
    }
    let clean = |t: &str| -> Option<f64> { t.replace('_', "").parse::<f64>().ok() };
    if let Some(r) = body.strip_prefix('.') {
        // \.[0-9][0-9_]*([eE][-+][0-9]+)?   (no sign allowed before it)
        if body.len() != s.len() {
            return None;
        }
        let n = digits_us(r);
        if n == 0 || !exponent_ok(&r[n..]) {
            return None;
        }
        return clean(body);
    }
    let n = digits_us(body);
    if n == 0 {
        return None;
    }
    let rest = &body[n..];
    if let Some(frac) = rest.strip_prefix('.') {
        // [0-9][0-9_]*\.[0-9_]*([eE][-+][0-9]+)?
        let m = frac.bytes().take_while(|b| b.is_ascii_digit() || *b == b'_').count();
        if !exponent_ok(&frac[m..]) {
            return None;
        }
        return clean(body).map(|v| sign * v);
    }
    if !rest.starts_with(':') {
        return None;
    }
    // [0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*
    let dot = rest.find('.')?;
    let (mids, frac) = (&rest[..dot], &rest[dot + 1..]);
    if !all(frac, |b| b.is_ascii_digit()) {
        return None;
    }
    let parts: Vec<&str> = mids[1..].split(':').collect();
    let (last, middle) = parts.split_last()?;
    if !middle.iter().all(|p| sexagesimal_part(p)) || !sexagesimal_part(last) {
        return None;
    }
    let mut total = clean(&body[..n])?;
    for p in middle {
        total = total * 60.0 + clean(p)?;
    }
    total = total * 60.0 + clean(&format!("{last}.{frac}"))?;
    Some(sign * total)
}

/// Turn the parser's error text into a message, a caret label and a hint.
fn describe_scan_error(info: &str) -> (String, Option<String>, Option<String>) {
    let lower = info.to_ascii_lowercase();
    let message = format!("invalid YAML: {}", info.trim_end_matches('.'));
    let (label, help) = if lower.contains("tab") {
        (Some("tab here"), Some("YAML indentation must use spaces, not tabs"))
    } else if lower.contains("mapping values are not allowed") {
        (Some("unexpected `:`"), Some("quote the value if it contains `: `, or check the indentation of this line"))
    } else if lower.contains("did not find expected key") || lower.contains("expected <block end>") {
        (Some("unexpected content"), Some("check the indentation of this line against the lines above"))
    } else if lower.contains("found character that cannot start any token") {
        (Some("this character"), Some("quote the value if it starts with `@` or a backquote"))
    } else if lower.contains("unknown anchor") {
        (Some("unknown alias"), Some("define the anchor (`&name`) before using the alias (`*name`)"))
    } else if lower.contains("quoted scalar") {
        (Some("here"), Some("a quoted string must be closed on a later line with the same quote"))
    } else if lower.contains("flow") || lower.contains("':'") {
        (Some("here"), Some("check the brackets: every `[` needs a `]` and every `{` a `}`"))
    } else {
        (Some("here"), None)
    };
    (message, label.map(str::to_string), help.map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::load_str;

    fn one(text: &str) -> Node {
        let mut docs = load_str("test.yml", text).unwrap_or_else(|e| panic!("{}: {}", e.span.location(), e.message));
        assert_eq!(docs.len(), 1, "expected one document");
        docs.remove(0)
    }

    fn err(text: &str) -> Diag {
        match load_str("test.yml", text) {
            Ok(n) => panic!("expected an error, got {n:?}"),
            Err(d) => d,
        }
    }

    /// The value of `v:` in a one-line document.
    fn val(src: &str) -> NodeKind {
        one(&format!("v: {src}\n")).get("v").map(|n| n.kind.clone()).unwrap_or(NodeKind::Str("<missing>".into()))
    }

    fn s(x: &str) -> NodeKind {
        NodeKind::Str(x.to_string())
    }

    #[test]
    fn booleans_yaml11() {
        for t in ["yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"] {
            assert_eq!(val(t), NodeKind::Bool(true), "{t}");
        }
        for f in ["no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"] {
            assert_eq!(val(f), NodeKind::Bool(false), "{f}");
        }
        for t in ["y", "n", "Y", "N", "yEs", "tRUE", "oN"] {
            assert_eq!(val(t), s(t), "{t}");
        }
        assert_eq!(val("\"yes\""), s("yes"));
        assert_eq!(val("'no'"), s("no"));
        assert_eq!(val("|\n  yes"), s("yes\n"));
    }

    #[test]
    fn nulls() {
        for n in ["~", "null", "Null", "NULL", ""] {
            assert_eq!(val(n), NodeKind::Null, "{n:?}");
        }
        assert_eq!(val("nULL"), s("nULL"));
        assert_eq!(val("'~'"), s("~"));
        assert_eq!(val("\"\""), s(""));
    }

    #[test]
    fn integers() {
        let cases = [
            ("0", 0),
            ("-0", 0),
            ("42", 42),
            ("+42", 42),
            ("-17", -17),
            ("1_000", 1000),
            ("0644", 420),
            ("-0644", -420),
            ("0o644", 420),
            ("0_7", 7),
            ("0x1F", 31),
            ("0x_ff", 255),
            ("-0x10", -16),
            ("0b1010", 10),
            ("0b1_0", 2),
            ("1:30", 90),
            ("-1:30", -90),
            ("190:20:30", 190 * 3600 + 20 * 60 + 30),
            ("9223372036854775807", i64::MAX),
        ];
        for (t, want) in cases {
            assert_eq!(val(t), NodeKind::Int(want), "{t}");
        }
        for t in
            ["09", "0x", "0b", "0B1", "0X1F", "1:60", "1:3:x", "1e3", "1_000x", "0o8", "12-3", "9223372036854775808"]
        {
            assert_eq!(val(t), s(t), "{t}");
        }
        assert_eq!(val("\"0644\""), s("0644"));
        assert_eq!(val("'42'"), s("42"));
    }

    #[test]
    fn floats() {
        let cases = [
            ("1.5", 1.5),
            ("-1.5", -1.5),
            (".5", 0.5),
            ("1.", 1.0),
            ("1.0e+3", 1000.0),
            ("1.0E-2", 0.01),
            ("1_000.5", 1000.5),
            ("1:30.5", 90.5),
            (".inf", f64::INFINITY),
            ("-.Inf", f64::NEG_INFINITY),
            ("+.INF", f64::INFINITY),
        ];
        for (t, want) in cases {
            assert_eq!(val(t), NodeKind::Float(want), "{t}");
        }
        assert!(matches!(val(".nan"), NodeKind::Float(f) if f.is_nan()));
        assert!(matches!(val(".NaN"), NodeKind::Float(f) if f.is_nan()));
        for t in ["1e3", "1.0e3", "-.5", "1.2.3", "-.nan", ".", "._5", "1.5x", ".infinity", "1.1.1"] {
            assert_eq!(val(t), s(t), "{t}");
        }
        assert_eq!(val("'1.5'"), s("1.5"));
    }

    #[test]
    fn other_plain_strings() {
        assert_eq!(val("hello world"), s("hello world"));
        assert_eq!(val("2001-12-14"), s("2001-12-14"));
        let n = one("v: \"{{ x }}\"\nw: plain text\n");
        assert_eq!(n.get("v").and_then(Node::as_str), Some("{{ x }}"));
        assert!(!n.get("v").is_some_and(|v| v.plain));
        assert!(n.get("w").is_some_and(|v| v.plain));
    }

    #[test]
    fn tags_force_or_stay() {
        // without a vault password, as `pbr lint` reads: a `!vault` value stays its ciphertext
        crate::vault::keep_ciphertext_without_secret(true);
        let n = one("a: !!str 0644\nb: !!int \"0644\"\nc: !!bool \"yes\"\nd: !!float \"1\"\ne: !!str yes\n\
             f: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6162\ng: !unsafe '{{ x }}'\nh: !unsafe 123\n");
        assert_eq!(n.get("a").map(|v| v.kind.clone()), Some(s("0644")));
        assert_eq!(n.get("a").map(|v| v.span.line_col()), Some(Some((1, 10))));
        assert_eq!(n.get("f").map(|v| v.span.line_col()), Some(Some((6, 11))));
        assert_eq!(n.get("b").map(|v| v.kind.clone()), Some(NodeKind::Int(420)));
        assert_eq!(n.get("c").map(|v| v.kind.clone()), Some(NodeKind::Bool(true)));
        assert_eq!(n.get("d").map(|v| v.kind.clone()), Some(NodeKind::Float(1.0)));
        assert_eq!(n.get("e").map(|v| v.kind.clone()), Some(s("yes")));
        let f = n.get("f").expect("f");
        assert_eq!(f.tag.as_deref(), Some("vault"));
        assert_eq!(f.as_str(), Some("$ANSIBLE_VAULT;1.1;AES256\n6162\n"));
        let g = n.get("g").expect("g");
        assert_eq!((g.tag.as_deref(), g.as_str()), (Some("unsafe"), Some("{{ x }}")));
        let h = n.get("h").expect("h");
        assert_eq!((h.tag.as_deref(), h.as_str()), (Some("unsafe"), Some("123")));
        let bad = err("a: 1\nb: !!int abc\n");
        assert_eq!(bad.code, "yaml-tag");
        assert_eq!(bad.span.line_col(), Some((2, 4)));
    }

    #[test]
    fn keys_resolve_too() {
        let n = one("yes: 1\n1: 2\n'no': 3\n");
        let keys: Vec<NodeKind> = n.as_map().expect("map").iter().map(|(k, _)| k.kind.clone()).collect();
        assert_eq!(keys, vec![NodeKind::Bool(true), NodeKind::Int(1), s("no")]);
        assert_eq!(n.get("True").map(|v| v.kind.clone()), Some(NodeKind::Int(1)));
    }

    #[test]
    fn nested_spans_line_col() {
        let text = "- name: install\n  apt:\n    name: nginx\n    state: present\n  tags: [web, 'db']\n";
        let doc = one(text);
        assert_eq!(doc.span.line_col(), Some((1, 1)));
        let task = &doc.as_seq().expect("seq")[0];
        assert_eq!(task.span.line_col(), Some((1, 3)));
        let (k, v) = task.get_entry("name").expect("name");
        assert_eq!((k.span.line_col(), v.span.line_col()), (Some((1, 3)), Some((1, 9))));
        assert_eq!(&text[v.span.start..v.span.end], "install");
        let (k, apt) = task.get_entry("apt").expect("apt");
        assert_eq!(k.span.line_col(), Some((2, 3)));
        assert_eq!(apt.span.line_col(), Some((3, 5)));
        let (k, v) = apt.get_entry("state").expect("state");
        assert_eq!((k.span.line_col(), v.span.line_col()), (Some((4, 5)), Some((4, 12))));
        assert_eq!(&text[k.span.start..k.span.end], "state");
        assert_eq!(&text[v.span.start..v.span.end], "present");
        let tags = task.get("tags").expect("tags");
        assert_eq!(&text[tags.span.start..tags.span.end], "[web, 'db']");
        let db = &tags.as_seq().expect("seq")[1];
        assert_eq!(&text[db.span.start..db.span.end], "'db'");
        assert_eq!(db.span.line_col(), Some((5, 15)));
        // A block mapping ends at its last value, not at the following lines.
        assert_eq!(&text[apt.span.start..apt.span.end], "name: nginx\n    state: present");
        // Empty values are zero-width, right after their key.
        let text = "a:\nb: {c: , d}\n";
        let doc = one(text);
        let a = doc.get("a").expect("a");
        assert_eq!((a.is_null(), a.span.line_col(), a.span.start == a.span.end), (true, Some((1, 2)), true));
        let d = doc.get("b").and_then(|b| b.get("d")).expect("d");
        assert_eq!((d.is_null(), d.span.start == d.span.end), (true, true));
    }

    #[test]
    fn unicode_before_nodes_byte_offsets() {
        let text = "# é ü 日本\nnäme: \"ö日\"\nnext: ✓ done\n";
        let doc = one(text);
        let (k, v) = doc.get_entry("näme").expect("näme");
        assert_eq!(&text[k.span.start..k.span.end], "näme");
        assert_eq!(&text[v.span.start..v.span.end], "\"ö日\"");
        assert_eq!(v.span.line_col(), Some((2, 7)));
        let (k, v) = doc.get_entry("next").expect("next");
        assert_eq!(&text[k.span.start..k.span.end], "next");
        assert_eq!(&text[v.span.start..v.span.end], "✓ done");
        assert_eq!(v.span.line_col(), Some((3, 7)));
        let e = err("ключ: значение\n  bad: [\n");
        let src = crate::source::source(e.span.src).expect("source");
        assert!(src.text.is_char_boundary(e.span.start) && src.text.is_char_boundary(e.span.end));
    }

    #[test]
    fn anchors_and_aliases() {
        let doc = one("base: &b {x: 1, y: [a, b]}\ncopy: *b\nscalar: &s hello\nagain: *s\n");
        assert_eq!(doc.get("copy").map(Node::to_value), doc.get("base").map(Node::to_value));
        assert_eq!(doc.get("again").and_then(Node::as_str), Some("hello"));
        let base = doc.get("base").expect("base");
        assert_eq!(base.span.line_col(), Some((1, 10)));
        let again = doc.get("scalar").expect("scalar");
        assert_eq!(again.span.line_col(), Some((3, 12)));
        let copy = doc.get("copy").expect("copy");
        assert_eq!(copy.span.line_col(), Some((2, 7)));
        // Children keep the span of their definition.
        assert_eq!(copy.get("x").map(|x| x.span.line_col()), Some(Some((1, 14))));
        let e = err("a: &x [1, *x]\n");
        assert_eq!(e.code, "yaml-alias");
        let e = err("a: *nope\n");
        assert_eq!(e.code, "yaml-syntax");
        assert_eq!(e.span.line_col(), Some((1, 4)));
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
        }
        let e = err(&text);
        assert_eq!(e.code, "yaml-alias");
    }

    #[test]
    fn merge_keys() {
        let doc = one("defaults: &d {a: 1, b: 2}\nother: &o {b: 20, c: 30}\n\
             m1:\n  <<: *d\n  b: 5\nm2:\n  <<: [*d, *o]\nm3:\n  <<: [*o, *d]\n  c: 0\n\
             m4:\n  x: 1\n  '<<': quoted\n");
        let v = |k: &str| doc.get(k).map(Node::to_value).unwrap_or_default();
        assert_eq!(v("m1"), serde_json::json!({"a": 1, "b": 5}));
        assert_eq!(v("m2"), serde_json::json!({"a": 1, "b": 2, "c": 30}));
        assert_eq!(v("m3"), serde_json::json!({"b": 20, "c": 0, "a": 1}));
        assert_eq!(v("m4"), serde_json::json!({"x": 1, "<<": "quoted"}));
        // Explicit key keeps its place and span; merged ones point at their definition.
        let m1 = doc.get("m1").expect("m1");
        assert_eq!(m1.get_entry("b").map(|(k, _)| k.span.line_col()), Some(Some((5, 3))));
        assert_eq!(m1.get_entry("a").map(|(k, _)| k.span.line_col()), Some(Some((1, 15))));
        assert_eq!(m1.as_map().map(<[_]>::len), Some(2));
        // Nested merge: the merged map itself had a merge.
        let doc = one("a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nc: {<<: *b, z: 3}\n");
        assert_eq!(doc.get("c").map(Node::to_value), Some(serde_json::json!({"x": 1, "y": 2, "z": 3})));
        let e = err("a: 1\nb:\n  <<: [1]\n");
        assert_eq!(e.code, "yaml-merge");
        assert_eq!(e.span.line_col(), Some((3, 8)));
        let e = err("b:\n  <<: text\n");
        assert_eq!(e.code, "yaml-merge");
    }

    #[test]
    fn duplicate_key_points_at_second() {
        let e = err("- name: one\n  debug: {msg: x}\n  name: two\n");
        assert_eq!(e.code, "yaml-duplicate-key");
        assert_eq!(e.span.line_col(), Some((3, 3)));
        assert!(e.message.contains("`name`"), "{}", e.message);
        assert!(e.notes.iter().any(|n| n.contains("line 1")), "{:?}", e.notes);
        // Large mappings (hash-indexed) too.
        let mut text = String::new();
        for i in 0..40 {
            text.push_str(&format!("k{i}: {i}\n"));
        }
        text.push_str("k7: again\n");
        let e = err(&text);
        assert_eq!(e.code, "yaml-duplicate-key");
        assert_eq!(e.span.line_col(), Some((41, 1)));
        assert!(e.notes.iter().any(|n| n.contains("line 8")), "{:?}", e.notes);
        // Same text, different types: different keys (as in Python).
        let n = one("1: a\n'1': b\n");
        assert_eq!(n.as_map().map(<[_]>::len), Some(2));
    }

    #[test]
    fn syntax_errors_have_locations() {
        let e = err("a:\n  b: 1\n c: 2\n");
        assert_eq!(e.code, "yaml-syntax");
        assert_eq!(e.span.line_col(), Some((3, 2)));
        assert!(e.help.is_some());
        let e = err("a: 1\n b: 2\n");
        assert_eq!(e.span.line_col().map(|(l, _)| l), Some(2));
        let e = err("a: 1\n\tb: 2\n");
        assert_eq!(e.span.line_col(), Some((2, 1)));
        assert!(e.help.as_deref().is_some_and(|h| h.contains("tabs")));
        let e = err("k: [1, 2\n");
        assert_eq!(e.code, "yaml-syntax");
        assert!(!e.span.is_none());
    }

    #[test]
    fn documents() {
        assert!(load_str("e.yml", "").expect("empty").is_empty());
        assert!(load_str("c.yml", "# only a comment\n\n").expect("comments").is_empty());
        let docs = load_str("m.yml", "a: 1\n---\n- x\n---\nplain\n...\n---\n").expect("multi");
        assert_eq!(docs.len(), 4);
        assert_eq!(docs[0].to_value(), serde_json::json!({"a": 1}));
        assert_eq!(docs[1].to_value(), serde_json::json!(["x"]));
        assert_eq!(docs[2].as_str(), Some("plain"));
        assert!(docs[3].is_null());
        assert_eq!(docs[1].span.line_col(), Some((3, 1)));
        // Anchors do not cross documents.
        let e = load_str("m2.yml", "a: &x 1\n---\nb: *x\n").expect_err("alias across documents");
        assert_eq!((e.code, e.span.line_col()), ("yaml-alias", Some((3, 4))));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let text = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        let e = err(&text);
        assert_eq!(e.code, "yaml-syntax");
    }

    #[test]
    fn flow_collection_closed_left_of_its_indentation_as_pyyaml_reads_it() {
        // `}` at column 0 after quoted scalars only: YAML 1.2 wants it indented, PyYAML does not
        let n = one("e: {\n    \"a\": {\n        \"b\": \"c\"\n    }\n}\nf: [\n \"x\"\n]\n");
        assert_eq!(n.get("e").and_then(|e| e.get("a")).and_then(|a| a.get("b")).and_then(Node::as_str), Some("c"));
        assert_eq!(n.get("f").and_then(Node::as_seq).map(<[_]>::len), Some(1));
        let nested = one("outer:\n  e: {\n  \"a\": \"b\"\n  }\nnext: 1\n");
        assert!(matches!(nested.get("next").map(|v| &v.kind), Some(NodeKind::Int(1))));
        // positions stay the file's: the value after the re-indented line, and a later error
        let n = one("e: {\n \"a\": \"b\"\n}\nk: v\n");
        assert_eq!(n.get("k").map(|k| k.span.line_col()), Some(Some((4, 4))));
        let e = err("e: {\n \"a\": \"b\"\n}\nk: [\n");
        assert_eq!(e.span.line_col().map(|(l, _)| l), Some(5), "{}", e.message);
    }

    #[test]
    fn big_playbook_is_fast() {
        let mut text = String::from("- hosts: all\n  vars:\n    common: &c {owner: root, mode: '0644'}\n  tasks:\n");
        for i in 0..2000 {
            text.push_str(&format!(
                "    - name: task {i} é\n      copy:\n        <<: *c\n        src: f{i}\n        dest: /etc/f{i}\n      when: x_{i} | default(true)\n      tags: [t{i}, all]\n"
            ));
        }
        let t = std::time::Instant::now();
        let doc = one(&text);
        let elapsed = t.elapsed();
        let tasks = doc.as_seq().and_then(|s| s[0].get("tasks")).and_then(Node::as_seq).map(<[_]>::len);
        assert_eq!(tasks, Some(2000));
        assert!(elapsed.as_millis() < 2000, "took {elapsed:?}");
    }
}
