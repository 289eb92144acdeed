//! YAML source documents as a span-carrying tree.
//!
//! Each policy file is read with `serde-saphyr` into [`Node`]s that keep the line and column of every key and
//! value. The typed AST is built from this tree by `parse`, which can then report every mistake in a document
//! (not only the first), each at its own position.

use std::fmt;
use std::path::Path;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::diag::{Diagnostic, Pos};

/// Largest policy file accepted, in bytes.
pub const MAX_FILE_BYTES: usize = 8 * 1024 * 1024;
/// Most YAML documents accepted in one file.
pub const MAX_DOCUMENTS_PER_FILE: usize = 50_000;

/// A YAML value with the position where it appears.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: NodeValue,
}

/// The shape of a YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys keep their own positions, in document order.
    Map(Vec<(Key, Node)>),
}

/// A mapping key with its position. Non-string keys are rendered to text.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub pos: Pos,
    pub name: String,
}

impl NodeValue {
    /// The YAML type name used in error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            NodeValue::Null => "null",
            NodeValue::Bool(_) => "a boolean",
            NodeValue::Int(_) | NodeValue::Float(_) => "a number",
            NodeValue::Str(_) => "a string",
            NodeValue::Seq(_) => "a list",
            NodeValue::Map(_) => "a map",
        }
    }
}

impl Node {
    /// Converts a node into plain JSON, for request-shaped data such as test cases.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.value {
            NodeValue::Null => Value::Null,
            NodeValue::Bool(b) => Value::Bool(*b),
            NodeValue::Int(i) => Value::from(*i),
            NodeValue::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            NodeValue::Str(s) => Value::String(s.clone()),
            NodeValue::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeValue::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

fn pos_of(loc: &serde_saphyr::Location) -> Pos {
    Pos::new(loc.line() as u32, loc.column() as u32)
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<NodeValue>::deserialize(deserializer)?;
        Ok(Node {
            pos: pos_of(&spanned.referenced),
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let node = Node::deserialize(deserializer)?;
        let name = match node.value {
            NodeValue::Str(s) => s,
            NodeValue::Null => "null".to_string(),
            NodeValue::Bool(b) => b.to_string(),
            NodeValue::Int(i) => i.to_string(),
            NodeValue::Float(f) => f.to_string(),
            NodeValue::Seq(_) | NodeValue::Map(_) => {
                return Err(de::Error::custom("a mapping key must be a scalar"))
            }
        };
        Ok(Key {
            pos: node.pos,
            name,
        })
    }
}

struct NodeValueVisitor;

impl<'de> Visitor<'de> for NodeValueVisitor {
    type Value = NodeValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<NodeValue, E> {
        Ok(NodeValue::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<NodeValue, E> {
        Ok(NodeValue::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<NodeValue, E> {
        Ok(i64::try_from(v)
            .map(NodeValue::Int)
            .unwrap_or(NodeValue::Float(v as f64)))
    }
    fn visit_i128<E>(self, v: i128) -> Result<NodeValue, E> {
        Ok(i64::try_from(v)
            .map(NodeValue::Int)
            .unwrap_or(NodeValue::Float(v as f64)))
    }
    fn visit_u128<E>(self, v: u128) -> Result<NodeValue, E> {
        Ok(i64::try_from(v)
            .map(NodeValue::Int)
            .unwrap_or(NodeValue::Float(v as f64)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<NodeValue, E> {
        Ok(NodeValue::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<NodeValue, E> {
        Ok(NodeValue::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<NodeValue, E> {
        Ok(NodeValue::Str(v))
    }
    fn visit_unit<E>(self) -> Result<NodeValue, E> {
        Ok(NodeValue::Null)
    }
    fn visit_none<E>(self) -> Result<NodeValue, E> {
        Ok(NodeValue::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<NodeValue, D::Error> {
        NodeValue::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(NodeValue::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeValue, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Key>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(NodeValue::Map(entries))
    }
}

impl<'de> Deserialize<'de> for NodeValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeValueVisitor)
    }
}

/// Parses every YAML document in `text`. A syntax error yields one diagnostic at the error's position.
pub fn parse_documents(file: &Path, text: &str) -> Result<Vec<Node>, Diagnostic> {
    parse_checked(file, text, parse_on_own_stack)
}

/// [`parse_documents`] on the calling thread, which must be one of [`on_parser_threads`]'s (it has the stack
/// the parser needs).
pub fn parse_documents_here(file: &Path, text: &str) -> Result<Vec<Node>, Diagnostic> {
    parse_checked(file, text, parse_here)
}

/// Maps `each` over `items` on up to one thread per core, each with the parser's stack, so that `each` may
/// call [`parse_documents_here`]. Files are independent, so a policy set is parsed in parallel this way.
/// Results come back in the order of `items`.
pub fn on_parser_threads<T: Sync, R: Send>(items: &[T], each: impl Fn(&T) -> R + Sync) -> Vec<R> {
    crate::parallel::map_in_order(items, 1, Some(PARSER_STACK_BYTES), each)
}

/// The size check, the parse (by `parser`), and the document-count check.
fn parse_checked(
    file: &Path,
    text: &str,
    parser: fn(&str) -> Result<Vec<Node>, serde_saphyr::Error>,
) -> Result<Vec<Node>, Diagnostic> {
    if text.len() > MAX_FILE_BYTES {
        return Err(Diagnostic::error(
            file,
            Pos::new(1, 1),
            format!(
                "file is {} bytes, larger than the limit of {MAX_FILE_BYTES} bytes",
                text.len()
            ),
        ));
    }
    let docs: Vec<Node> = parser(text).map_err(|e| {
        let pos = e.location().map(|l| pos_of(&l)).unwrap_or(Pos::new(1, 1));
        Diagnostic::error(
            file,
            pos,
            format!("invalid YAML: {}", first_line(&e.to_string())),
        )
    })?;
    if docs.len() > MAX_DOCUMENTS_PER_FILE {
        return Err(Diagnostic::error(
            file,
            Pos::new(1, 1),
            format!(
                "file holds {} documents, more than the limit of {MAX_DOCUMENTS_PER_FILE}",
                docs.len()
            ),
        ));
    }
    // Empty documents (a stray `---`) carry nothing.
    Ok(docs
        .into_iter()
        .filter(|d| d.value != NodeValue::Null)
        .collect())
}

/// Stack for the YAML parser's thread. Deserializing recurses once per nesting level, and a level can take tens
/// of KiB of stack in a debug build, so the budget's depth limit alone would still overflow a 2 MiB thread (a
/// Tokio blocking thread, a test thread) with a document nested 60 deep. The memory is reserved, not committed.
const PARSER_STACK_BYTES: usize = 64 * 1024 * 1024;

/// Runs the parser on a thread of its own with [`PARSER_STACK_BYTES`] of stack, whatever thread calls it.
fn parse_on_own_stack(text: &str) -> Result<Vec<Node>, serde_saphyr::Error> {
    std::thread::scope(|scope| {
        match std::thread::Builder::new()
            .name("arbiter-yaml".into())
            .stack_size(PARSER_STACK_BYTES)
            .spawn_scoped(scope, || parse_here(text))
        {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            // No thread to be had: parse here (the depth budget still bounds the recursion).
            Err(_) => parse_here(text),
        }
    })
}

/// Parses on the calling thread, which must have the parser's stack.
fn parse_here(text: &str) -> Result<Vec<Node>, serde_saphyr::Error> {
    serde_saphyr::from_multiple_with_options(text, yaml_options(text.len()))
}

/// YAML 1.2 core schema: only `true`/`false` are booleans (so `y`, `no`, `on` stay strings), and numbers with
/// leading zeros are not octal. The budget bounds nesting and alias expansion (billion laughs).
fn yaml_options(text_len: usize) -> serde_saphyr::Options {
    serde_saphyr::options! {
        strict_booleans: true,
        legacy_octal_numbers: false,
        budget: Some(yaml_budget(text_len)),
    }
}

/// The YAML parser's limits: the defaults (which bound nesting depth and the number of aliases), with room for
/// policy files of many documents, and event and node budgets that grow with the text. Without aliases a YAML
/// text yields at most about one event per byte, so the budgets (two per byte, plus slack for small files) never
/// bite on plain files, while alias expansion (a "billion laughs" document) is cut off after work and memory
/// proportional to the file's size, not exponential in it.
fn yaml_budget(text_len: usize) -> serde_saphyr::Budget {
    let scaled = text_len.saturating_mul(2).saturating_add(100_000);
    let mut budget = serde_saphyr::Budget::default();
    budget.max_documents = MAX_DOCUMENTS_PER_FILE;
    budget.max_events = scaled.min(MAX_YAML_EVENTS);
    budget.max_nodes = scaled.min(MAX_YAML_NODES);
    budget
}

/// Most YAML parser events (including those replayed by aliases) in one file.
const MAX_YAML_EVENTS: usize = 8 * 1024 * 1024;
/// Most YAML nodes (including those created by aliases) in one file.
const MAX_YAML_NODES: usize = 4 * 1024 * 1024;

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_positions_of_keys_and_values() {
        let docs = parse_documents(
            Path::new("a.yaml"),
            "kind: Policy\nid: x\nactions:\n  - \"*\"\n---\nkind: Group\n",
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        let NodeValue::Map(entries) = &docs[0].value else {
            panic!("not a map")
        };
        assert_eq!(entries[1].0.name, "id");
        assert_eq!(entries[1].0.pos, Pos::new(2, 1));
        assert_eq!(entries[1].1.pos, Pos::new(2, 5));
        let NodeValue::Seq(items) = &entries[2].1.value else {
            panic!("not a seq")
        };
        assert_eq!(items[0].pos, Pos::new(4, 5));
        assert_eq!(items[0].value, NodeValue::Str("*".into()));
        let NodeValue::Map(second) = &docs[1].value else {
            panic!("not a map")
        };
        assert_eq!(second[0].0.pos, Pos::new(6, 1));
    }

    #[test]
    fn scalars_keep_their_yaml_types() {
        let docs = parse_documents(
            Path::new("a.yaml"),
            "a: 1\nb: 1.5\nc: true\nd: \"true\"\ne: ~\nf: y\ng: no\n",
        )
        .unwrap();
        let NodeValue::Map(e) = &docs[0].value else {
            panic!()
        };
        let values: Vec<_> = e.iter().map(|(_, v)| v.value.clone()).collect();
        assert_eq!(
            values,
            vec![
                NodeValue::Int(1),
                NodeValue::Float(1.5),
                NodeValue::Bool(true),
                NodeValue::Str("true".into()),
                NodeValue::Null,
                NodeValue::Str("y".into()),
                NodeValue::Str("no".into()),
            ]
        );
    }

    #[test]
    fn syntax_error_has_a_position() {
        let err =
            parse_documents(Path::new("bad.yaml"), "kind: Policy\nid: [unclosed\n").unwrap_err();
        assert!(err.pos.line >= 2, "{err}");
        assert!(err.message.starts_with("invalid YAML"), "{err}");
    }
}
