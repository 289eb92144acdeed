//! YAML source documents as a span-carrying tree.
//!
//! Each policy file is read with the `granit-parser` YAML event parser (the parser under `serde-saphyr`) into
//! [`Node`]s that keep the line and column of every key and value; the tree is built here, without recursion
//! and without serde's per-node overhead, which made YAML three quarters of a reload. The typed AST is built
//! from this tree by `parse`, which can then report every mistake in a document (not only the first), each at
//! its own position.

use std::collections::HashSet;
use std::path::Path;

use crate::diag::{Code, Diagnostic, Pos};

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

/// Parses every YAML document in `text`. A syntax error or a broken limit yields one diagnostic at its
/// position. Empty documents (a stray `---`) are dropped.
pub fn parse_documents(file: &Path, text: &str) -> Result<Vec<Node>, Diagnostic> {
    match parse_documents_partial(file, text) {
        (docs, None) => Ok(docs),
        (_, Some(d)) => Err(d),
    }
}

/// [`parse_documents`], keeping the documents completed before a syntax error, so that one pass over a set
/// still checks them (and knows their ids) while the error is reported.
pub fn parse_documents_partial(file: &Path, text: &str) -> (Vec<Node>, Option<Diagnostic>) {
    if text.len() > MAX_FILE_BYTES {
        return (
            Vec::new(),
            Some(Diagnostic::error(
                Code::TooLarge,
                file,
                Pos::new(1, 1),
                format!(
                    "file is {} bytes, larger than the limit of {MAX_FILE_BYTES} bytes",
                    text.len()
                ),
            )),
        );
    }
    let mut builder = TreeBuilder::new(text.len());
    match build_tree(&mut builder, text, 0) {
        Ok(_) => (builder.documents, None),
        Err(e) => {
            let (message, help) = explain_yaml_error(&e.message);
            let mut d = Diagnostic::error(Code::Yaml, file, e.pos, message);
            d.help = help;
            (builder.documents, Some(d))
        }
    }
}

/// Feeds the YAML events of `text`, whose first line is line `lines_before + 1` of its file, to `builder`.
/// Says whether the last document holds a block scalar (`|` or `>`) with no content line (its text empty, or
/// line breaks only): the nodes whose position depends on what follows them, as a text that ends after one
/// places it at its indicator and one pass at the next document's marker.
fn build_tree(builder: &mut TreeBuilder, text: &str, lines_before: u32) -> Result<bool, YamlError> {
    use granit_parser::{Event, ScalarStyle};
    let pos_of = |marker: &granit_parser::Marker| {
        let pos = pos_of(marker);
        Pos::new(pos.line + lines_before, pos.col)
    };
    let mut options = granit_parser::Options::default();
    options.set_emit_comments(false);
    let mut contentless_block = false;
    for event in granit_parser::Parser::new_from_str_with_options(text, options) {
        match event {
            Ok((event, span)) => {
                match &event {
                    Event::DocumentStart(..) => contentless_block = false,
                    Event::Scalar(text, ScalarStyle::Literal | ScalarStyle::Folded, ..)
                        if text.bytes().all(|b| b == b'\n') =>
                    {
                        contentless_block = true;
                    }
                    _ => {}
                }
                builder.event(event, pos_of(&span.start))?
            }
            Err(e) => {
                return Err(YamlError {
                    pos: pos_of(e.marker()),
                    message: e.info().to_string(),
                })
            }
        }
    }
    Ok(contentless_block)
}

/// Most YAML nodes (aliases' copies included) accepted in a file of `text_len` bytes.
fn node_budget(text_len: usize) -> usize {
    text_len
        .saturating_mul(2)
        .saturating_add(100_000)
        .min(MAX_YAML_NODES)
}

/// The size of the pieces a file read alone is cut into (so a file must be larger to be cut), see
/// [`parse_documents_in_pieces_of`].
const PIECE_BYTES: usize = 32 * 1024;

/// [`parse_documents_partial`], faster for a large file of many documents: the text is cut at its document
/// markers into pieces of about `piece_bytes` and the pieces are parsed on every core. In YAML a `---` at the
/// start of a line always starts a document (no scalar or collection may hold one), so the documents are
/// those of one pass. When a piece holds a mistake, or its last document a block scalar without content
/// (whose position one pass takes from the marker after it), or the pieces together break a limit of the
/// file, the file is parsed again in one pass, so that what is reported is exactly what one pass reports.
/// Texts that could read differently in pieces are never cut: those with directives (`%YAML`, which apply to
/// the document after them) or with carriage returns (line counting).
fn parse_documents_in_pieces_of(
    file: &Path,
    text: &str,
    piece_bytes: usize,
) -> (Vec<Node>, Option<Diagnostic>) {
    if text.len() > MAX_FILE_BYTES {
        return parse_documents_partial(file, text);
    }
    let pieces = pieces(text, piece_bytes);
    if pieces.len() < 2 {
        return parse_documents_partial(file, text);
    }
    let read = on_parser_threads(&pieces, |&(start, end, lines_before)| {
        let mut builder = TreeBuilder::new(text.len());
        let last = end == text.len();
        match build_tree(&mut builder, &text[start..end], lines_before) {
            Ok(contentless_block) if last || !contentless_block => Some(builder),
            _ => None,
        }
    });
    let mut documents = Vec::new();
    let (mut count, mut nodes, mut aliases) = (0, 0, 0);
    for builder in read {
        let Some(builder) = builder else {
            return parse_documents_partial(file, text);
        };
        count += builder.document_count;
        nodes += builder.nodes;
        aliases += builder.aliases;
        documents.extend(builder.documents);
    }
    if count > MAX_DOCUMENTS_PER_FILE || nodes > node_budget(text.len()) || aliases > MAX_YAML_ALIASES {
        return parse_documents_partial(file, text);
    }
    (documents, None)
}

/// [`parse_documents_partial`] for a file of at least [`PIECE_BYTES`], with the text cut into pieces parsed
/// on every core (see [`parse_documents_in_pieces_of`]): two pieces per core of about the same size, so that
/// no core is left with one piece more than the other, and none under [`PIECE_BYTES`].
pub fn parse_documents_in_pieces(file: &Path, text: &str) -> (Vec<Node>, Option<Diagnostic>) {
    let even = text.len().div_ceil(2 * crate::parallel::cores());
    parse_documents_in_pieces_of(file, text, PIECE_BYTES.max(even))
}

/// Where `text` is cut: (start, end, lines before start) of pieces of at least `piece_bytes` (but the last),
/// each starting at a line that begins with a document marker `---`. One piece when the text is not to be
/// cut (see [`parse_documents_in_pieces_of`]).
fn pieces(text: &str, piece_bytes: usize) -> Vec<(usize, usize, u32)> {
    let whole = vec![(0, text.len(), 0)];
    if text.len() <= piece_bytes || text.contains('\r') {
        return whole;
    }
    let mut pieces = Vec::new();
    let (mut start, mut start_lines) = (0, 0u32);
    let mut at = 0;
    for (lines, line) in text.split_inclusive('\n').enumerate() {
        if line.starts_with('%') {
            return whole;
        }
        let marker = line
            .strip_prefix("---")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\n']));
        if marker && at - start >= piece_bytes {
            pieces.push((start, at, start_lines));
            (start, start_lines) = (at, lines as u32);
        }
        at += line.len();
    }
    pieces.push((start, text.len(), start_lines));
    pieces
}

/// A YAML parser message in the words of a policy author, with a hint; the parser's own words are kept at the
/// end of the message for search engines and bug reports.
fn explain_yaml_error(raw: &str) -> (String, Option<String>) {
    let (what, help) = if raw.contains("did not find expected key") {
        (
            "this line is not indented like the keys of its map",
            "keys of one map start in the same column, and list items (`- `) line up under their key; \
             indent with spaces only",
        )
    } else if raw.contains("mapping values are not allowed") {
        (
            "a `key: value` cannot start here",
            "check the indentation of this line and the one above, or quote a value that holds `: `",
        )
    } else if raw.contains("tab") {
        (
            "a tab where YAML wants spaces",
            "YAML indents with spaces only",
        )
    } else if raw.contains("illegal placement of ':'") {
        (
            "a `:` where none can stand",
            "look for a `[` or `{` left open on a line above, or quote a value that holds `: `",
        )
    } else if raw.contains("unclosed bracket")
        || raw.contains("expected ',' or ']'")
        || raw.contains("expected ',' or '}'")
    {
        (
            "a `[...]` list or `{...}` map is not closed",
            "close each `[` with `]` and each `{` with `}`, separating items with `,`",
        )
    } else if raw.contains("did not find expected '-' indicator") {
        (
            "this line is not indented like the items of its list",
            "every item of a list starts with `- ` in the same column",
        )
    } else if raw.contains("escape") {
        (
            "an unknown escape in a double-quoted string",
            "in double quotes a backslash starts an escape (`\\n`, `\\\\`); write the text in single quotes \
             to keep backslashes as they are",
        )
    } else if raw.contains("unclosed quote")
        || raw.contains("multiline quoted scalar")
        || raw.contains("unexpected end of stream")
    {
        (
            "a quoted string is not closed",
            "close it with the same quote it opened with",
        )
    } else if raw.contains("misplaced bracket") {
        (
            "a `]` or `}` with no `[` or `{` to close",
            "remove it, or open the list or map it closes",
        )
    } else {
        return (format!("invalid YAML: {raw}"), None);
    };
    (
        format!("invalid YAML: {what} (parser: {raw})"),
        Some(help.to_string()),
    )
}

/// Maps `each` over `items` on up to one thread per core, results in the order of `items`. Files are
/// independent, so a policy set is parsed in parallel this way. Threads claim about a sixty-fourth of their
/// share at a time: one file at a time for small sets, where a single large file must not hold back the rest,
/// and runs of files for large ones, where most files are taken from a cache and claiming each apart would
/// cost more than the work.
pub fn on_parser_threads<T: Sync, R: Send>(items: &[T], each: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let cores = crate::parallel::cores();
    let chunk = (items.len() / (cores * 64)).max(1);
    crate::parallel::map_in_order(items, chunk, None, each)
}

/// Most nested collections in one document. The tree is built without recursion, but everything that walks
/// it afterwards (and dropping it) recurses once per level.
pub const MAX_YAML_DEPTH: usize = 64;
/// Keys a mapping checks for duplicates by scanning; beyond, by a set (a flat mapping of 100,000 keys must not
/// take quadratic time).
const LINEAR_KEYS: usize = 16;
/// Most aliases (`*name`) in one file.
const MAX_YAML_ALIASES: usize = 50_000;
/// Most YAML nodes (including those copied by aliases) in one file.
const MAX_YAML_NODES: usize = 4 * 1024 * 1024;

fn pos_of(marker: &granit_parser::Marker) -> Pos {
    Pos::new(marker.line() as u32, marker.col() as u32 + 1)
}

#[derive(Debug)]
struct YamlError {
    pos: Pos,
    message: String,
}

fn yaml_error<T>(pos: Pos, message: impl Into<String>) -> Result<T, YamlError> {
    Err(YamlError {
        pos,
        message: message.into(),
    })
}

/// A collection being built.
enum Open {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<(Key, Node)>,
        /// The key read, waiting for its value.
        key: Option<Key>,
        /// Values of `<<` merge keys, applied when the mapping ends.
        merges: Vec<Node>,
        /// The keys so far, once the mapping has [`LINEAR_KEYS`] of them: duplicates in constant time.
        seen: Option<HashSet<String>>,
    },
}

/// Builds [`Node`] trees from parser events, without recursion.
///
/// Scalars are resolved with the YAML 1.2 core schema: only `true`/`false` (any of three capitalisations) are
/// booleans, so `yes`, `no`, `on` and `y` stay strings; `null`, `~` and an empty plain scalar are null;
/// `[-+]?[0-9]+`, `0o…` and `0x…` are integers (a leading zero is not octal); the 1.2 float forms, `.inf` and
/// `.nan` are floats; quoted and block scalars are always strings. The tags `!!str`, `!!int`, `!!float`,
/// `!!bool`, `!!null` (and `!`, which forces a string) are honoured; others are refused. Anchors, aliases and
/// `<<` merge keys work, within a node budget that grows with the file's size, so that alias expansion
/// (a "billion laughs" document) is cut off after work and memory proportional to the text, never exponential.
struct TreeBuilder {
    documents: Vec<Node>,
    /// Documents seen, empty ones included.
    document_count: usize,
    open: Vec<Open>,
    /// Completed anchored nodes, with their node counts.
    anchors: std::collections::HashMap<usize, (Node, usize)>,
    nodes: usize,
    node_budget: usize,
    aliases: usize,
    /// Node counts of the open collections, for anchors.
    counted: Vec<usize>,
}

impl TreeBuilder {
    fn new(text_len: usize) -> Self {
        TreeBuilder {
            documents: Vec::new(),
            document_count: 0,
            open: Vec::new(),
            anchors: std::collections::HashMap::new(),
            nodes: 0,
            node_budget: node_budget(text_len),
            aliases: 0,
            counted: Vec::new(),
        }
    }

    fn count(&mut self, n: usize, pos: Pos) -> Result<(), YamlError> {
        self.nodes += n;
        if let Some(c) = self.counted.last_mut() {
            *c += n;
        }
        if self.nodes > self.node_budget {
            return yaml_error(
                pos,
                format!(
                    "more than {} nodes (aliases included); the limit for a file of this size",
                    self.node_budget
                ),
            );
        }
        Ok(())
    }

    fn event(&mut self, event: granit_parser::Event<'_>, pos: Pos) -> Result<(), YamlError> {
        use granit_parser::Event;
        let (node, anchor, size) = match event {
            Event::DocumentStart(..) => {
                self.anchors.clear();
                self.document_count += 1;
                if self.document_count > MAX_DOCUMENTS_PER_FILE {
                    return yaml_error(
                        pos,
                        format!("file holds more than {MAX_DOCUMENTS_PER_FILE} documents"),
                    );
                }
                return Ok(());
            }
            Event::Scalar(text, style, anchor, tag) => {
                let value = resolve_scalar(text, style, tag.as_deref(), pos)?;
                self.count(1, pos)?;
                (Node { pos, value }, anchor, 1)
            }
            Event::SequenceStart(_, anchor, tag) => {
                check_collection_tag(tag.as_deref(), "seq", pos)?;
                self.open(pos)?;
                self.open.push(Open::Seq {
                    pos,
                    anchor,
                    items: Vec::new(),
                });
                return Ok(());
            }
            Event::MappingStart(_, anchor, tag) => {
                check_collection_tag(tag.as_deref(), "map", pos)?;
                self.open(pos)?;
                self.open.push(Open::Map {
                    pos,
                    anchor,
                    entries: Vec::new(),
                    key: None,
                    merges: Vec::new(),
                    seen: None,
                });
                return Ok(());
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let size = self.counted.pop().unwrap_or(0);
                // The enclosing collection counted this one's own node when it opened; now its contents too.
                if let Some(parent) = self.counted.last_mut() {
                    *parent += size.saturating_sub(1);
                }
                match self.open.pop() {
                    Some(Open::Seq { pos, anchor, items }) => (
                        Node {
                            pos,
                            value: NodeValue::Seq(items),
                        },
                        anchor,
                        size,
                    ),
                    Some(Open::Map {
                        pos,
                        anchor,
                        entries,
                        merges,
                        ..
                    }) => (
                        Node {
                            pos,
                            value: NodeValue::Map(merge(entries, merges)?),
                        },
                        anchor,
                        size,
                    ),
                    None => return yaml_error(pos, "unbalanced collection end"),
                }
            }
            Event::Alias(id) => {
                self.aliases += 1;
                if self.aliases > MAX_YAML_ALIASES {
                    return yaml_error(pos, format!("more than {MAX_YAML_ALIASES} aliases"));
                }
                let Some((target, size)) = self.anchors.get(&id) else {
                    return yaml_error(pos, "alias to an unknown anchor");
                };
                let (mut node, size) = (target.clone(), *size);
                self.count(size, pos)?;
                node.pos = pos;
                (node, 0, size)
            }
            _ => return Ok(()),
        };
        if anchor != 0 {
            // The copy kept for later aliases counts too: anchors nested in anchors would otherwise multiply
            // memory without a single alias.
            self.nodes += size;
            if self.nodes > self.node_budget {
                return yaml_error(
                    pos,
                    format!(
                        "more than {} nodes (anchored copies included); the limit for a file of this size",
                        self.node_budget
                    ),
                );
            }
            self.anchors.insert(anchor, (node.clone(), size));
        }
        self.attach(node)
    }

    fn open(&mut self, pos: Pos) -> Result<(), YamlError> {
        if self.open.len() >= MAX_YAML_DEPTH {
            return yaml_error(pos, format!("nested deeper than {MAX_YAML_DEPTH} levels"));
        }
        self.count(1, pos)?;
        self.counted.push(1);
        Ok(())
    }

    /// Adds a completed node to the collection it belongs to, or as a document.
    fn attach(&mut self, node: Node) -> Result<(), YamlError> {
        match self.open.last_mut() {
            None => {
                if node.value != NodeValue::Null {
                    self.documents.push(node);
                }
            }
            Some(Open::Seq { items, .. }) => items.push(node),
            Some(Open::Map {
                entries,
                key,
                merges,
                seen,
                ..
            }) => match key.take() {
                None => *key = Some(key_of(node)?),
                Some(k) if k.name == "<<" => merges.push(node),
                Some(k) => {
                    let duplicate = if entries.len() < LINEAR_KEYS {
                        entries.iter().any(|(e, _)| e.name == k.name)
                    } else {
                        let seen = seen.get_or_insert_with(|| {
                            entries.iter().map(|(e, _)| e.name.clone()).collect()
                        });
                        !seen.insert(k.name.clone())
                    };
                    if duplicate {
                        return yaml_error(k.pos, format!("duplicate mapping key `{}`", k.name));
                    }
                    entries.push((k, node));
                }
            },
        }
        Ok(())
    }
}

/// A mapping key: a scalar, rendered to text.
fn key_of(node: Node) -> Result<Key, YamlError> {
    let name = match node.value {
        NodeValue::Str(s) => s,
        NodeValue::Null => "null".to_string(),
        NodeValue::Bool(b) => b.to_string(),
        NodeValue::Int(i) => i.to_string(),
        NodeValue::Float(f) => f.to_string(),
        NodeValue::Seq(_) | NodeValue::Map(_) => {
            return yaml_error(node.pos, "a mapping key must be a scalar")
        }
    };
    Ok(Key {
        pos: node.pos,
        name,
    })
}

/// Applies `<<` merge keys: entries of the merged mappings that the mapping does not set itself are added,
/// earlier merged mappings first.
fn merge(mut entries: Vec<(Key, Node)>, merges: Vec<Node>) -> Result<Vec<(Key, Node)>, YamlError> {
    if merges.is_empty() {
        return Ok(entries);
    }
    let mut seen: HashSet<String> = entries.iter().map(|(k, _)| k.name.clone()).collect();
    for source in merges {
        let maps = match source.value {
            NodeValue::Map(m) => vec![m],
            NodeValue::Seq(items) => items
                .into_iter()
                .map(|n| match n.value {
                    NodeValue::Map(m) => Ok(m),
                    _ => yaml_error(n.pos, "`<<` merges only mappings"),
                })
                .collect::<Result<_, _>>()?,
            _ => return yaml_error(source.pos, "`<<` merges only mappings"),
        };
        for map in maps {
            for (k, v) in map {
                if seen.insert(k.name.clone()) {
                    entries.push((k, v));
                }
            }
        }
    }
    Ok(entries)
}

fn check_collection_tag(
    tag: Option<&granit_parser::Tag>,
    expected: &str,
    pos: Pos,
) -> Result<(), YamlError> {
    match tag {
        None => Ok(()),
        Some(t) if t.core_suffix() == Some(expected) => Ok(()),
        Some(t) => yaml_error(pos, format!("unsupported tag `{}`", tag_text(t))),
    }
}

fn tag_text(tag: &granit_parser::Tag) -> String {
    match tag.core_suffix() {
        Some(suffix) => format!("!!{suffix}"),
        None => format!("{}{}", tag.original_handle(), tag.suffix()),
    }
}

/// The YAML 1.2 core schema (see [`TreeBuilder`]).
fn resolve_scalar(
    text: std::borrow::Cow<'_, str>,
    style: granit_parser::ScalarStyle,
    tag: Option<&granit_parser::Tag>,
    pos: Pos,
) -> Result<NodeValue, YamlError> {
    let plain = matches!(style, granit_parser::ScalarStyle::Plain);
    let Some(tag) = tag else {
        return Ok(if plain {
            resolve_plain(&text).unwrap_or_else(|| NodeValue::Str(text.into_owned()))
        } else {
            NodeValue::Str(text.into_owned())
        });
    };
    let typed = |value: Option<NodeValue>, what: &str| {
        value.map_or_else(
            || yaml_error(pos, format!("`{text}` is not a valid {what}")),
            Ok,
        )
    };
    match tag.core_suffix() {
        Some("str") => Ok(NodeValue::Str(text.into_owned())),
        Some("int") => typed(resolve_int(&text), "!!int"),
        Some("float") => typed(
            resolve_int(&text)
                .map(|v| match v {
                    NodeValue::Int(i) => NodeValue::Float(i as f64),
                    other => other,
                })
                .or_else(|| resolve_float(&text)),
            "!!float",
        ),
        Some("bool") => typed(resolve_bool(&text), "!!bool"),
        Some("null") => typed(resolve_null(&text), "!!null"),
        // `!` alone is the non-specific tag: a string.
        None if tag_text(tag) == "!" => Ok(NodeValue::Str(text.into_owned())),
        _ => yaml_error(pos, format!("unsupported tag `{}`", tag_text(tag))),
    }
}

fn resolve_plain(text: &str) -> Option<NodeValue> {
    resolve_null(text)
        .or_else(|| resolve_bool(text))
        .or_else(|| resolve_int(text))
        .or_else(|| resolve_float(text))
}

fn resolve_null(text: &str) -> Option<NodeValue> {
    matches!(text, "" | "~" | "null" | "Null" | "NULL").then_some(NodeValue::Null)
}

fn resolve_bool(text: &str) -> Option<NodeValue> {
    match text {
        "true" | "True" | "TRUE" => Some(NodeValue::Bool(true)),
        "false" | "False" | "FALSE" => Some(NodeValue::Bool(false)),
        _ => None,
    }
}

/// `[-+]?[0-9]+`, `0o[0-7]+`, `0x[0-9a-fA-F]+`. Integers beyond 64 bits become floats.
fn resolve_int(text: &str) -> Option<NodeValue> {
    let (radix, digits, negative) = if let Some(d) = text.strip_prefix("0o") {
        (8, d, false)
    } else if let Some(d) = text.strip_prefix("0x") {
        (16, d, false)
    } else {
        let (negative, d) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        (10, d, negative)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u128::from_str_radix(digits, radix)
        .ok()
        .map(|m| m as i128)
        .filter(|m| *m >= 0);
    let value = match magnitude {
        Some(m) => {
            let v = if negative { -m } else { m };
            i64::try_from(v)
                .map(NodeValue::Int)
                .unwrap_or(NodeValue::Float(v as f64))
        }
        None => NodeValue::Float(text.parse::<f64>().ok()?),
    };
    Some(value)
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`, `[-+]?.inf`, `.nan` (three capitalisations each).
fn resolve_float(text: &str) -> Option<NodeValue> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") {
        let inf = if text.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
        return Some(NodeValue::Float(inf));
    }
    if matches!(text, ".nan" | ".NaN" | ".NAN") {
        return Some(NodeValue::Float(f64::NAN));
    }
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], Some(&unsigned[i + 1..])),
        None => (unsigned, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match fraction {
        Some(f) => digits(whole) && digits(f) && !(whole.is_empty() && f.is_empty()),
        None => !whole.is_empty() && digits(whole),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    if !(mantissa_ok && exponent_ok) {
        return None;
    }
    text.parse::<f64>().ok().map(NodeValue::Float)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines that a file cut at its document markers could read differently, if YAML let a scalar or a
    /// collection run across a marker: block, folded and quoted scalars left open, flow collections left
    /// open, anchors and aliases, directives, near-markers, document ends, and carriage returns.
    const AWKWARD_LINES: &[&str] = &[
        "---", "--- ", "---\t# c", "--- |", "--- >-", "--- x", "---x", "----", " ---", "---# c", "...",
        "... # end", "%YAML 1.2", "%TAG ! tag:x,2000:", "a: |", "t: >", "  ---", "  text", "text",
        "b: \"open", "c: 'open", "close\"", "close'", "- item", "k: [1,", "2]", "m: {a: 1,", "b: 2}",
        "&a x: 1", "y: *a", "z: &n [1, 2]", "w: *n", "--- &x a", "- *x", "? complex", ": value",
        "key: value", "# comment", "", "\t", "--- \"quoted", "more\"", "kind: Policy", "id: p",
        "x: 1\r", "\u{feff}---", "--- |+", "a: |+", "a: >+", "a: |-", "a: |2", "  ", "   # c",
        "- |", "- >", "[", "]", "{", "}", "- [a,", "b]", "\"", "'", "---\t", "--- ...", "... ---",
        "? |", "? >+", "? |-", "- |+", ": |+", "id: |+", "id: >", "   ", "  x",
    ];

    fn in_one_pass_and_in_pieces(text: &str, piece_bytes: usize) {
        let file = Path::new("p.yaml");
        assert_eq!(
            parse_documents_in_pieces_of(file, text, piece_bytes),
            parse_documents_partial(file, text),
            "{text:?} cut at {piece_bytes} bytes"
        );
    }

    #[test]
    fn pieces_read_as_one_pass_on_awkward_texts() {
        let cases = [
            "a: 1\n---\nb: 2\n--- |\n  text\n---\nc: 3\n",
            "--- |\ntext at column one\n---\nb: 2\n",
            "a: \"open\n---\nclose\"\n---\nb: 2\n",
            "a: [1,\n---\n2]\n---\nb: 2\n",
            "%YAML 1.2\n---\na: 1\n---\n%YAML 1.2\n---\nb: 2\n",
            "a: &x 1\n---\nb: *x\n",
            "a: 1\n...\n---\nb: 2\n...\n",
            "a: 1\r\n---\r\nb: 2\r\n",
            "---\n---\n---\n",
            "# only a comment\n---\n# another\n",
            // Block scalars without content before a marker: one pass places them at the marker.
            "kind: Policy\nid: |+\n\n---\nkind: Policy\n",
            "kind: Policy\nid: >+\n  \n---\nkind: Policy\n",
            "kind: Policy\nid: p\n? |\n---\nkind: Policy\n",
            "- |+\n\n---\n- a\n",
        ];
        for text in cases {
            for piece_bytes in [1, 4, 8, 1024] {
                in_one_pass_and_in_pieces(text, piece_bytes);
            }
        }
        // A real cut happens: two documents of a large file come from different pieces.
        let big: String = (0..200).map(|i| format!("---\nkind: Policy\nid: p{i}\n")).collect();
        assert!(pieces(&big, 64).len() > 10);
        in_one_pass_and_in_pieces(&big, 64);
    }

    /// Map entries that parse, so that most texts built from them are cut and compared whole: block scalars
    /// with and without content and chomping, anchors, flow collections, complex keys, empty values.
    const MAP_ENTRIES: &[&str] = &[
        "a: 1", "b: |\n  text", "c: |+\n", "d: >-\n", "e: \"q\"", "f: [1, 2]", "? |\n", "g: |+\n\n",
        "h:", "i: &x 1\nj: *x", "k: >\n  folded\n\n", "l: |-\n  \n", "m: {n: 1}", "o: 'single'",
        "? >+\n\n", "p: |2\n   two\n", "q: # comment", "r: |\n\n  late",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        #[test]
        fn pieces_of_valid_documents_read_as_one_pass(
            documents in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(MAP_ENTRIES), 0..5), 1..12),
            piece_bytes in 1usize..48,
        ) {
            let text: String = documents
                .iter()
                .map(|entries| format!("---\n{}\n", entries.join("\n")))
                .collect();
            in_one_pass_and_in_pieces(&text, piece_bytes);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]
        #[test]
        fn pieces_read_as_one_pass(
            lines in proptest::collection::vec(proptest::sample::select(AWKWARD_LINES), 0..40),
            piece_bytes in 1usize..64,
        ) {
            in_one_pass_and_in_pieces(&(lines.join("\n") + "\n"), piece_bytes);
            in_one_pass_and_in_pieces(&lines.join("\n"), piece_bytes);
        }
    }

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

    fn value_of(yaml: &str) -> Result<NodeValue, String> {
        let text = format!("v: {yaml}\n");
        let docs = parse_documents(Path::new("t.yaml"), &text).map_err(|e| e.to_string())?;
        let NodeValue::Map(mut e) = docs.into_iter().next().unwrap().value else {
            panic!("not a map")
        };
        Ok(e.remove(0).1.value)
    }

    #[test]
    fn the_core_schema_decides_scalar_types() {
        use NodeValue::*;
        let s = |t: &str| Str(t.to_string());
        let cases: Vec<(&str, NodeValue)> = vec![
            ("null", Null),
            ("Null", Null),
            ("~", Null),
            ("", Null),
            ("\"\"", s("")),
            ("True", Bool(true)),
            ("FALSE", Bool(false)),
            ("yes", s("yes")),
            ("on", s("on")),
            ("tRue", s("tRue")),
            ("42", Int(42)),
            ("-7", Int(-7)),
            ("+7", Int(7)),
            ("010", Int(10)),
            ("0o17", Int(15)),
            ("0x1F", Int(31)),
            ("0x", s("0x")),
            ("1_000", s("1_000")),
            ("9223372036854775807", Int(i64::MAX)),
            ("9223372036854775808", Float(9223372036854775808.0)),
            ("1.5", Float(1.5)),
            ("-.5", Float(-0.5)),
            ("1e3", Float(1000.0)),
            ("2.", Float(2.0)),
            ("1e", s("1e")),
            (".", s(".")),
            (".inf", Float(f64::INFINITY)),
            ("-.Inf", Float(f64::NEG_INFINITY)),
            ("'42'", s("42")),
            ("\"1.5\"", s("1.5")),
            ("10.0.0.0/8", s("10.0.0.0/8")),
            ("09:00-17:00", s("09:00-17:00")),
            ("2026-12-01T00:00:00Z", s("2026-12-01T00:00:00Z")),
            ("!!str 42", s("42")),
            ("! 42", s("42")),
            ("!!int \"42\"", Int(42)),
            ("!!float 1", Float(1.0)),
            ("!!bool \"true\"", Bool(true)),
            ("!!null \"\"", Null),
        ];
        for (yaml, want) in cases {
            assert_eq!(value_of(yaml), Ok(want), "`{yaml}`");
        }
        assert!(matches!(value_of(".nan"), Ok(Float(f)) if f.is_nan()));
    }

    #[test]
    fn bad_tags_and_keys_are_errors_with_positions() {
        for (yaml, needle) in [
            ("!!int x", "`x` is not a valid !!int"),
            ("!!bool yes", "`yes` is not a valid !!bool"),
            ("!custom 1", "unsupported tag `!custom`"),
            ("!!set {a: 1}", "unsupported tag `!!set`"),
            ("{[a]: 1}", "a mapping key must be a scalar"),
        ] {
            let err = value_of(yaml).unwrap_err();
            assert!(err.starts_with("t.yaml:1:"), "{yaml}: {err}");
            assert!(err.contains(needle), "{yaml}: {err}");
        }
        let err = parse_documents(Path::new("d.yaml"), "a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.pos, Pos::new(3, 1), "{err}");
        assert!(err.message.contains("duplicate mapping key `a`"), "{err}");
        // Past the keys checked by scanning, the set takes over and still sees every earlier key.
        let mut many: String = (0..40).map(|i| format!("k{i}: {i}\n")).collect();
        many.push_str("k3: again\n");
        let err = parse_documents(Path::new("d.yaml"), &many).unwrap_err();
        assert_eq!(err.pos, Pos::new(41, 1), "{err}");
        assert!(err.message.contains("duplicate mapping key `k3`"), "{err}");
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let text = "base: &b {op: equals, negate: false}\nuse:\n  <<: *b\n  op: in\nlist: &l [1, 2]\ncopy: *l\n";
        let docs = parse_documents(Path::new("m.yaml"), text).unwrap();
        let NodeValue::Map(e) = &docs[0].value else {
            panic!()
        };
        let NodeValue::Map(merged) = &e[1].1.value else {
            panic!()
        };
        let merged: Vec<(&str, &NodeValue)> = merged
            .iter()
            .map(|(k, v)| (k.name.as_str(), &v.value))
            .collect();
        // The mapping's own `op` wins over the merged one.
        assert_eq!(
            merged,
            vec![
                ("op", &NodeValue::Str("in".into())),
                ("negate", &NodeValue::Bool(false))
            ]
        );
        assert_eq!(e[3].1.value, e[2].1.value);
        // An alias is reported where it is used.
        assert_eq!(e[3].1.pos, Pos::new(6, 7));
        let err = parse_documents(Path::new("m.yaml"), "a: *nowhere\n").unwrap_err();
        assert!(err.message.starts_with("invalid YAML"), "{err}");
        let err = parse_documents(Path::new("m.yaml"), "a: &x 1\nb: {<<: *x}\n").unwrap_err();
        assert!(err.message.contains("`<<` merges only mappings"), "{err}");
    }

    #[test]
    fn nesting_is_bounded() {
        let at_limit = format!(
            "{}1{}",
            "[".repeat(MAX_YAML_DEPTH),
            "]".repeat(MAX_YAML_DEPTH)
        );
        parse_documents(Path::new("n.yaml"), &at_limit).expect("at the limit");
        let over = format!(
            "{}1{}",
            "[".repeat(MAX_YAML_DEPTH + 1),
            "]".repeat(MAX_YAML_DEPTH + 1)
        );
        let err = parse_documents(Path::new("n.yaml"), &over).unwrap_err();
        assert!(
            err.message.contains("nested deeper than 64 levels"),
            "{err}"
        );
    }

    /// Anchors nested in anchors each keep a copy for later aliases; the copies count against the budget even
    /// when no alias ever uses them (found by reading the code after fuzzing; 60 KB once took 77 MB).
    #[test]
    fn anchored_copies_count_against_the_node_budget() {
        let nested = |anchored: bool| {
            let mut text = String::from("x: ");
            for i in 0..60 {
                if anchored {
                    text.push_str(&format!("&a{i} "));
                }
                text.push('[');
            }
            text.push_str(&"1,".repeat(2_000));
            text.push('1');
            text.push_str(&"]".repeat(60));
            text.push('\n');
            text
        };
        let result = parse_documents(Path::new("a.yaml"), &nested(true)).map(|d| d.len());
        let err = result.expect_err("60 anchored copies of 2,000 nodes exceed the budget");
        assert!(err.message.contains("anchored copies included"), "{err}");
        // Without the anchors the same nesting is fine.
        let plain = parse_documents(Path::new("a.yaml"), &nested(false)).map(|d| d.len());
        assert_eq!(plain.map_err(|e| e.to_string()), Ok(1));
    }

    /// A collection's size includes everything inside it, so an alias to it is charged in full.
    #[test]
    fn aliases_of_nested_collections_are_charged_in_full() {
        // `b` holds 3 copies of a list nested in a list of 10,000 numbers; each alias to it copies about
        // 30,000 nodes.
        let list = format!("[[{}1]]", "1,".repeat(9_999));
        let mut text = format!("a: &a {list}\nb: &b [*a, *a, *a]\n");
        text.push_str(&format!("c: [{}*b]\n", "*b,".repeat(9)));
        let result = parse_documents(Path::new("a.yaml"), &text).map(|d| d.len());
        let err = result.expect_err("ten copies of 30,000 nodes exceed the budget");
        assert!(err.message.contains("nodes"), "{err}");
    }
}
