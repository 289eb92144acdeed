//! Attribute values as the request checks and evaluation read them ([`Attr`]): a JSON value or map of a
//! [`crate::Request`], or a node of an [`AttrDoc`].
//!
//! An [`AttrDoc`] is the compact form the gRPC door reads a request's strings and `google.protobuf.Struct`s into:
//! one text buffer and one list of nodes for the whole request, where JSON takes a `String` per string and two
//! allocations and a hashed insertion per map. A container's children follow it in the list; each node records
//! where its subtree ends, so a container's children are found by jumping from one to the next.

use serde_json::{Map, Value};

/// Where a string sits in an [`AttrDoc`]'s text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Span {
    start: u32,
    len: u32,
}

impl Span {
    pub(crate) fn is_empty(self) -> bool {
        self.len == 0
    }
}

/// One value of an [`AttrDoc`].
#[derive(Debug, Clone, Copy)]
struct Node {
    /// The entry's key when the node is a map's entry; empty otherwise.
    key: Span,
    /// The index just past this node's subtree.
    end: u32,
    kind: NodeKind,
}

#[derive(Debug, Clone, Copy)]
enum NodeKind {
    Null,
    Bool(bool),
    /// Finite.
    Num(f64),
    Str(Span),
    List,
    Map,
}

/// Strings and attribute values stored side by side: one text buffer and one node list.
#[derive(Debug, Clone, Default)]
pub(crate) struct AttrDoc {
    text: String,
    nodes: Vec<Node>,
}

/// A value of a [`AttrDoc`]: the node at `at`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DocRef<'a> {
    doc: &'a AttrDoc,
    at: u32,
}

impl AttrDoc {
    /// An empty document whose text can hold `text_bytes` without growing.
    pub(crate) fn with_capacity(text_bytes: usize) -> AttrDoc {
        AttrDoc {
            text: String::with_capacity(text_bytes),
            nodes: Vec::with_capacity(16),
        }
    }

    /// Stores `s`; `None` when the text would pass 4 GiB (the caller then reads the message another way).
    pub(crate) fn push_str(&mut self, s: &str) -> Option<Span> {
        let start = u32::try_from(self.text.len()).ok()?;
        let len = u32::try_from(s.len()).ok()?;
        start.checked_add(len)?;
        self.text.push_str(s);
        Some(Span { start, len })
    }

    /// The text at `span`.
    #[inline]
    pub(crate) fn text(&self, span: Span) -> &str {
        &self.text[span.start as usize..(span.start + span.len) as usize]
    }

    /// The index the next node will have.
    pub(crate) fn next_node(&self) -> u32 {
        self.nodes.len() as u32
    }

    /// Adds a `null`.
    pub(crate) fn push_null(&mut self) {
        self.push(NodeKind::Null);
    }

    /// Adds a boolean.
    pub(crate) fn push_bool(&mut self, b: bool) {
        self.push(NodeKind::Bool(b));
    }

    /// Adds a finite number.
    pub(crate) fn push_number(&mut self, n: f64) {
        debug_assert!(n.is_finite());
        self.push(NodeKind::Num(n));
    }

    /// Adds a string stored with [`AttrDoc::push_str`].
    pub(crate) fn push_string(&mut self, s: Span) {
        self.push(NodeKind::Str(s));
    }

    /// Opens a list: its items are the nodes added until [`AttrDoc::close`] with the returned index.
    pub(crate) fn open_list(&mut self) -> u32 {
        self.push(NodeKind::List)
    }

    /// Opens a map: its entries are the nodes added until [`AttrDoc::close`], each keyed with
    /// [`AttrDoc::set_key`].
    pub(crate) fn open_map(&mut self) -> u32 {
        self.push(NodeKind::Map)
    }

    /// Closes the list or map opened at `at`.
    pub(crate) fn close(&mut self, at: u32) {
        let end = self.next_node();
        self.nodes[at as usize].end = end;
    }

    /// Makes the node at `at` the entry `key` of the map it sits in.
    pub(crate) fn set_key(&mut self, at: u32, key: Span) {
        self.nodes[at as usize].key = key;
    }

    /// The keys of the sibling nodes from `first` up to `end` (a map's entries read so far).
    pub(crate) fn keys(&self, first: u32, end: u32) -> impl Iterator<Item = &str> {
        Children {
            doc: self,
            next: first,
            end,
        }
        .map(|(key, _)| key)
    }

    /// The value at `at`.
    #[inline]
    pub(crate) fn get(&self, at: u32) -> DocRef<'_> {
        DocRef { doc: self, at }
    }

    fn push(&mut self, kind: NodeKind) -> u32 {
        let at = self.next_node();
        self.nodes.push(Node {
            key: Span::default(),
            end: at + 1,
            kind,
        });
        at
    }
}

impl<'a> DocRef<'a> {
    #[inline]
    fn node(&self) -> &'a Node {
        &self.doc.nodes[self.at as usize]
    }

    /// What the value is.
    #[inline(never)]
    fn shape(self) -> Shape<'a> {
        match self.node().kind {
            NodeKind::Null => Shape::Null,
            NodeKind::Bool(b) => Shape::Bool(b),
            NodeKind::Num(n) => Shape::Num(Some(n)),
            NodeKind::Str(s) => Shape::Str(self.doc.text(s)),
            NodeKind::List => Shape::List,
            NodeKind::Map => Shape::Map,
        }
    }

    /// The children of a list or map, with their keys (empty for a list's items); none for anything else, whose
    /// subtree ends right after it.
    #[inline]
    fn children(self) -> Children<'a> {
        Children {
            doc: self.doc,
            next: self.at + 1,
            end: self.node().end,
        }
    }

    /// The entry `key` of a map; `None` when absent or when this is not a map.
    #[inline(never)]
    fn get(self, key: &str) -> Option<DocRef<'a>> {
        if !matches!(self.node().kind, NodeKind::Map) {
            return None;
        }
        let mut children = self.children();
        while children.next < children.end {
            let at = children.next;
            let node = &self.doc.nodes[at as usize];
            if node.key.len as usize == key.len() && self.doc.text(node.key) == key {
                return Some(DocRef { doc: self.doc, at });
            }
            children.next = node.end;
        }
        None
    }
}

/// The children of a [`DocRef`], in order.
#[derive(Debug, Clone)]
pub(crate) struct Children<'a> {
    doc: &'a AttrDoc,
    next: u32,
    end: u32,
}

impl<'a> Iterator for Children<'a> {
    type Item = (&'a str, DocRef<'a>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            return None;
        }
        let at = self.next;
        let node = &self.doc.nodes[at as usize];
        self.next = node.end;
        Some((self.doc.text(node.key), DocRef { doc: self.doc, at }))
    }
}

/// The items of a list [`Attr`].
#[derive(Debug, Clone)]
pub(crate) enum Items<'a> {
    Json(std::slice::Iter<'a, Value>),
    Doc(Children<'a>),
}

impl<'a> Iterator for Items<'a> {
    type Item = Attr<'a>;

    #[inline]
    fn next(&mut self) -> Option<Attr<'a>> {
        match self {
            Items::Json(items) => items.next().map(Attr::Json),
            Items::Doc(children) => children.next().map(|(_, d)| Attr::Doc(d)),
        }
    }
}

/// The entries of a map [`Attr`].
#[derive(Debug, Clone)]
pub(crate) enum Entries<'a> {
    Json(serde_json::map::Iter<'a>),
    Doc(Children<'a>),
    None,
}

impl<'a> Iterator for Entries<'a> {
    type Item = (&'a str, Attr<'a>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Entries::Json(entries) => entries.next().map(|(k, v)| (k.as_str(), Attr::Json(v))),
            Entries::Doc(children) => children.next().map(|(k, d)| (k, Attr::Doc(d))),
            Entries::None => None,
        }
    }
}

/// An attribute value: JSON, a JSON map (an attribute map of a [`crate::Request`]), or a node of an
/// [`AttrDoc`]. Every reader goes through [`Attr::shape`], [`Attr::get`], [`Attr::items`] and
/// [`Attr::entries`], so both forms are read by the same code.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Attr<'a> {
    Json(&'a Value),
    Map(&'a Map<String, Value>),
    Doc(DocRef<'a>),
}

/// What an [`Attr`] is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Shape<'a> {
    Null,
    Bool(bool),
    /// `None`: a JSON number with no `f64` value.
    Num(Option<f64>),
    Str(&'a str),
    List,
    Map,
}

// `shape` and `get` are inlined wherever they are read: their JSON arms are the code that read JSON before the
// document existed, and the document's arms are calls.
impl<'a> Attr<'a> {
    #[inline(always)]
    pub(crate) fn shape(self) -> Shape<'a> {
        match self {
            Attr::Json(v) => match v {
                Value::Null => Shape::Null,
                Value::Bool(b) => Shape::Bool(*b),
                Value::Number(n) => Shape::Num(n.as_f64()),
                Value::String(s) => Shape::Str(s),
                Value::Array(_) => Shape::List,
                Value::Object(_) => Shape::Map,
            },
            Attr::Map(_) => Shape::Map,
            Attr::Doc(d) => d.shape(),
        }
    }

    #[inline]
    pub(crate) fn is_list(self) -> bool {
        match self {
            Attr::Json(v) => v.is_array(),
            Attr::Map(_) => false,
            Attr::Doc(d) => matches!(d.node().kind, NodeKind::List),
        }
    }

    #[inline]
    pub(crate) fn is_map(self) -> bool {
        match self {
            Attr::Json(v) => v.is_object(),
            Attr::Map(_) => true,
            Attr::Doc(d) => matches!(d.node().kind, NodeKind::Map),
        }
    }

    /// A list's items; nothing for anything else.
    #[inline]
    pub(crate) fn items(self) -> Items<'a> {
        match self {
            Attr::Json(Value::Array(items)) => Items::Json(items.iter()),
            Attr::Doc(d) if matches!(d.node().kind, NodeKind::List) => Items::Doc(d.children()),
            _ => Items::Json([].iter()),
        }
    }

    /// A map's entries, in order; nothing for anything else.
    #[inline]
    pub(crate) fn entries(self) -> Entries<'a> {
        match self {
            Attr::Json(Value::Object(m)) | Attr::Map(m) => Entries::Json(m.iter()),
            Attr::Doc(d) if matches!(d.node().kind, NodeKind::Map) => Entries::Doc(d.children()),
            _ => Entries::None,
        }
    }

    /// A map's entry for `key` (`null` included); `None` when absent or when this is not a map.
    #[inline(always)]
    pub(crate) fn get(self, key: &str) -> Option<Attr<'a>> {
        match self {
            Attr::Json(Value::Object(m)) | Attr::Map(m) => {
                crate::request::attribute(m, key).map(Attr::Json)
            }
            Attr::Json(_) => None,
            Attr::Doc(d) => d.get(key).map(Attr::Doc),
        }
    }

    /// The value as JSON. A document's map is written in key order, as protobuf's map order gives it.
    pub(crate) fn to_json(self) -> Value {
        match self {
            Attr::Json(v) => v.clone(),
            Attr::Map(m) => Value::Object(m.clone()),
            Attr::Doc(_) => match self.shape() {
                Shape::Null => Value::Null,
                Shape::Bool(b) => Value::Bool(b),
                Shape::Num(n) => n.and_then(number_value).unwrap_or(Value::Null),
                Shape::Str(s) => Value::String(s.to_string()),
                Shape::List => Value::Array(self.items().map(Attr::to_json).collect()),
                Shape::Map => Value::Object(self.to_json_map()),
            },
        }
    }

    /// A map's entries as a JSON map (empty for anything else); a document's in key order.
    pub(crate) fn to_json_map(self) -> Map<String, Value> {
        match self {
            Attr::Json(Value::Object(m)) | Attr::Map(m) => m.clone(),
            _ => {
                let mut sorted = true;
                let mut last: Option<&str> = None;
                let mut map: Map<String, Value> = self
                    .entries()
                    .map(|(k, v)| {
                        sorted &= last.is_none_or(|last| last < k);
                        last = Some(k);
                        (k.to_string(), v.to_json())
                    })
                    .collect();
                if !sorted {
                    map.sort_keys();
                }
                map
            }
        }
    }
}

/// A Struct number as JSON: whole numbers within ±2^53 become JSON integers (numbers compare by value, so this
/// only changes how they print); `None` when it is not finite.
pub(crate) fn number_value(n: f64) -> Option<Value> {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if n.fract() == 0.0 && n.abs() <= EXACT {
        return Some(Value::from(n as i64));
    }
    serde_json::Number::from_f64(n).map(Value::Number)
}
