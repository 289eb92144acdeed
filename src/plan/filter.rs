//! The filter tree of a query plan: `and`, `or`, `not`, `true`, `false` and condition leaves over `resource.*`,
//! each node with the ids of the policies it came from. Simplification (constant folding, absorption, merged URI
//! globs), the JSON form, and in-memory matching, where every leaf is decided by the evaluator's own condition
//! code.
//!
//! A leaf *holds* when its condition, evaluated as a policy condition (SPEC section 1), is **true**: a missing
//! attribute or a value of the wrong type makes it not hold, with or without `negate`. So "the condition is
//! false" is the same leaf with `negate` flipped, and the tree can say exactly what the three-valued rules mean.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::eval::{eval_condition, Ctx, Truth};
use crate::ir::condition::{Condition, Lit, NumArg, Op, Operand, TimeArg, WEEKDAYS};
use crate::ir::glob::Glob;
use crate::ir::path::{AttrPath, Field, Segment, Target};
use crate::ir::patterns::{prune_covered, PatternList};

/// Most children compared pairwise for absorption; larger nodes are left as they are (still exact).
const ABSORB_LIMIT: usize = 256;

/// A node of the filter tree with the ids of the policies it came from (sorted, no repeats).
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// What the node tests.
    pub node: Node,
    /// The policies this branch came from.
    pub policies: Vec<Arc<str>>,
}

/// The kinds of node.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Every resource.
    True,
    /// No resource.
    False,
    /// Every child holds.
    And(Vec<Filter>),
    /// Some child holds.
    Or(Vec<Filter>),
    /// The child does not hold.
    Not(Box<Filter>),
    /// A condition on the resource.
    Leaf(Box<Leaf>),
}

/// A condition on the resource: a compiled policy condition whose `${...}` references to the principal, the
/// action and the environment are already replaced by their values, or, when a value cannot be written as a
/// literal of the same meaning, kept with the request it reads (`opaque`).
#[derive(Debug, Clone)]
pub struct Leaf {
    pub(crate) condition: Condition,
    /// `Some(i)`: the condition still reads the request of action `i` (its references stay; see `bindings`).
    pub(crate) opaque: Option<usize>,
    /// For an opaque leaf, the values it reads outside the resource, by path, for the JSON form.
    pub(crate) bindings: Map<String, Value>,
    /// The canonical text of the leaf, computed once (reset whenever the leaf changes).
    key: std::sync::OnceLock<String>,
}

impl PartialEq for Leaf {
    fn eq(&self, other: &Leaf) -> bool {
        self.key() == other.key()
    }
}

impl Leaf {
    pub(crate) fn new(
        condition: Condition,
        opaque: Option<usize>,
        bindings: Map<String, Value>,
    ) -> Leaf {
        Leaf {
            condition,
            opaque,
            bindings,
            key: std::sync::OnceLock::new(),
        }
    }

    /// True when SQL cannot express the leaf: instants, time windows, weekdays, CIDRs, and opaque leaves.
    pub fn is_residual(&self) -> bool {
        let non_finite = |l: &Operand| matches!(l, Operand::Lit(Lit::Num(n)) if !n.is_finite());
        self.opaque.is_some()
            || matches!(
                self.condition.op,
                Op::Before(_) | Op::After(_) | Op::TimeOfDay(..) | Op::Weekday(..) | Op::Cidr(_)
            )
            // `.inf` and `.nan` have no JSON or SQL number.
            || match &self.condition.op {
                Op::Equals(v) | Op::ContainsAll(v) | Op::StartsWith(v) | Op::EndsWith(v) => {
                    v.iter().any(non_finite)
                }
                Op::Compare(_, NumArg::Num(n)) => !n.is_finite(),
                _ => false,
            }
            // A SQLite JSON path label cannot hold `"`, and may read `\` as an escape.
            || matches!(self.resource_segments(), Some(ResourcePath::Attribute(segments))
                if segments.iter().any(|s| s.contains(['"', '\\'])))
    }

    /// The same condition with `negate` flipped: it holds exactly where this one is false.
    pub(crate) fn flipped(&self) -> Leaf {
        let mut out = self.clone();
        out.condition.negate = !out.condition.negate;
        out.key = std::sync::OnceLock::new();
        out
    }

    /// Whether the leaf holds for a request (the resource being the row's); `ctxs` holds one context per action.
    fn holds(&self, ctxs: &[Ctx]) -> bool {
        eval_condition(&self.condition, &ctxs[self.opaque.unwrap_or(0)]) == Truth::True
    }

    /// The resource attribute the leaf tests, as segments below `resource.`; `None` when its path is not under
    /// `resource` (an opaque leaf) or still holds `${action}`.
    pub(crate) fn resource_segments(&self) -> Option<ResourcePath<'_>> {
        match &self.condition.path.target {
            Target::Field(Field::ResourceUri) => Some(ResourcePath::Uri),
            Target::Field(Field::ResourceOwner) => Some(ResourcePath::Owner),
            Target::Attribute {
                part: crate::ir::path::Part::Resource,
                segments,
            } => segments
                .iter()
                .map(|s| match s {
                    Segment::Name(n) => Some(&**n),
                    Segment::Action => None,
                })
                .collect::<Option<Vec<&str>>>()
                .map(ResourcePath::Attribute),
            _ => None,
        }
    }

    /// The JSON form: `{path, op, values, zone, negate, residual, bindings}`.
    fn to_json(&self) -> Map<String, Value> {
        let c = &self.condition;
        let mut out = Map::new();
        out.insert("path".into(), Value::String(c.path.text.to_string()));
        if let Some(ResourcePath::Attribute(segments)) = self.resource_segments() {
            if segments.iter().any(|s| s.contains('.')) {
                out.insert("segments".into(), json!(segments));
            }
        }
        out.insert("op".into(), Value::String(c.op_name.as_str().into()));
        if let Some(values) = values_json(&c.op) {
            out.insert("values".into(), Value::Array(values));
        }
        if let Some(zone) = &c.zone_text {
            out.insert("zone".into(), Value::String(zone.to_string()));
        }
        if c.negate {
            out.insert("negate".into(), Value::Bool(true));
        }
        if self.is_residual() {
            out.insert("residual".into(), Value::Bool(true));
        }
        if !self.bindings.is_empty() {
            out.insert("bindings".into(), Value::Object(self.bindings.clone()));
        }
        out
    }

    /// A canonical text for comparing leaves.
    fn key(&self) -> &str {
        self.key.get_or_init(|| match &self.condition.op {
            // URI globs can hold thousands of patterns: their key is built directly (JSON keys start with `{`).
            // Each piece ends with NUL `;` (a NUL inside a piece is doubled) and lists say how long they are, so
            // no two leaves spell one key.
            Op::Glob(globs) if self.opaque.is_none() => {
                self.glob_key(globs.len(), globs.iter().map(Glob::as_str))
            }
            _ => Value::Object(self.to_json()).to_string(),
        })
    }
}

impl Leaf {
    /// The key of a glob leaf with these patterns. Each piece ends with NUL `;` (a NUL inside a piece is
    /// doubled) and lists say how long they are, so no two leaves spell one key.
    fn glob_key<'t>(
        &self,
        count: usize,
        patterns: impl Iterator<Item = &'t str> + Clone,
    ) -> String {
        fn piece(key: &mut String, text: &str) {
            if text.contains('\0') {
                key.push_str(&text.replace('\0', "\0\0"));
            } else {
                key.push_str(text);
            }
            key.push_str("\0;");
        }
        let c = &self.condition;
        let mut key = String::with_capacity(
            c.path.text.len() + 32 + patterns.clone().map(|p| p.len() + 2).sum::<usize>(),
        );
        // Never `!glob`: a `not` node's key is `!` and its child's, so `not (glob)` would read as `!glob`.
        piece(&mut key, if c.negate { "glob-negated" } else { "glob" });
        match self.resource_segments() {
            Some(ResourcePath::Attribute(segments)) => {
                piece(&mut key, &format!("{} segments", segments.len()));
                segments.iter().for_each(|s| piece(&mut key, s));
            }
            _ => piece(&mut key, &c.path.text),
        }
        piece(&mut key, &format!("{count} patterns"));
        patterns.for_each(|p| piece(&mut key, p));
        key
    }

    /// `resource.uri glob` over the kept patterns of `list`, its key written from the list's copies of their
    /// texts (reading each pattern again would visit as many scattered heap blocks).
    pub(crate) fn uri_glob(list: &PatternList<'_>, kept: &[usize]) -> Leaf {
        let leaf = Leaf::uri_glob_shared(kept.iter().map(|&i| list.glob(i).clone()).collect());
        let key = leaf.glob_key(kept.len(), kept.iter().map(|&i| list.text(i)));
        let _ = leaf.key.set(key);
        leaf
    }

    /// `resource.uri glob` over a list of patterns that may be shared (a plain class's, `ir::plain`): the list
    /// is not copied.
    pub(crate) fn uri_glob_shared(globs: Arc<[Glob]>) -> Leaf {
        Leaf::new(
            Condition {
                path: RESOURCE_URI.clone(),
                op_name: crate::ast::OpName::Glob,
                op: Op::Glob(globs),
                negate: false,
                pos: Default::default(),
                zone_text: None,
            },
            None,
            Map::new(),
        )
    }
}

static RESOURCE_URI: std::sync::LazyLock<AttrPath> =
    std::sync::LazyLock::new(|| AttrPath::parse("resource.uri").expect("a valid path"));

/// Where a leaf's attribute lives on the resource.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ResourcePath<'a> {
    Uri,
    Owner,
    Attribute(Vec<&'a str>),
}

/// A condition's values as JSON, literals as written (`None` for `exists` and `is_true`).
fn values_json(op: &Op) -> Option<Vec<Value>> {
    let lit = |l: &Lit| match l {
        Lit::Str(s) => Value::String(s.to_string()),
        Lit::Num(n) => num(*n),
        Lit::Bool(b) => Value::Bool(*b),
    };
    let operand = |o: &Operand| match o {
        Operand::Lit(l) => lit(l),
        Operand::Ref(p) => Value::String(format!("${{{}}}", p.text)),
    };
    Some(match op {
        Op::Equals(v) | Op::ContainsAll(v) | Op::StartsWith(v) | Op::EndsWith(v) => {
            v.iter().map(operand).collect()
        }
        Op::Glob(globs) => globs
            .iter()
            .map(|g| Value::String(g.as_str().into()))
            .collect(),
        Op::Compare(_, NumArg::Num(n)) => vec![num(*n)],
        Op::Compare(_, NumArg::Ref(p))
        | Op::Before(TimeArg::Ref(p))
        | Op::After(TimeArg::Ref(p)) => vec![Value::String(format!("${{{}}}", p.text))],
        Op::Before(TimeArg::At(t)) | Op::After(TimeArg::At(t)) => {
            vec![Value::String(t.to_string())]
        }
        Op::TimeOfDay(windows, _) => windows
            .iter()
            .map(|w| {
                let hm = |s: u32| format!("{:02}:{:02}", s / 3600, s / 60 % 60);
                Value::String(format!("{}-{}", hm(w.start), hm(w.end)))
            })
            .collect(),
        Op::Weekday(mask, _) => WEEKDAYS
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, d)| Value::String((*d).into()))
            .collect(),
        Op::Cidr(nets) => nets.iter().map(|n| Value::String(n.to_string())).collect(),
        Op::Exists | Op::IsTrue => return None,
    })
}

/// A number as JSON (integers without a fraction). JSON has no infinity or NaN: those are written as the strings
/// `inf`, `-inf`, `NaN`, and their leaves are residual.
fn num(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9e15 {
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or_else(|| Value::String(n.to_string()), Value::Number)
    }
}

impl Filter {
    pub(crate) fn new(node: Node) -> Filter {
        Filter {
            node,
            policies: Vec::new(),
        }
    }

    pub(crate) fn leaf(leaf: Leaf) -> Filter {
        Filter::new(Node::Leaf(Box::new(leaf)))
    }

    pub(crate) fn constant(b: bool) -> Filter {
        Filter::new(if b { Node::True } else { Node::False })
    }

    pub(crate) fn with_policies(mut self, policies: Vec<Arc<str>>) -> Filter {
        if policies.windows(2).all(|w| w[0] < w[1]) {
            return self.with_sorted_policies(policies);
        }
        self.add_policies(&policies);
        self
    }

    /// [`Filter::with_policies`] for a list that is sorted and without repeats (as every node's is): it moves in
    /// whole when this node has none.
    pub(crate) fn with_sorted_policies(mut self, policies: Vec<Arc<str>>) -> Filter {
        debug_assert!(policies.windows(2).all(|w| w[0] < w[1]));
        if self.policies.is_empty() {
            self.policies = policies;
        } else {
            self.add_policies(&policies);
        }
        self
    }

    fn add_policies(&mut self, more: &[Arc<str>]) {
        if more.is_empty() {
            return;
        }
        // The common case: ids arrive sorted and unique (candidates are in id order).
        if self.policies.is_empty() && more.windows(2).all(|w| w[0] < w[1]) {
            self.policies = more.to_vec();
            return;
        }
        let set: BTreeSet<Arc<str>> = self
            .policies
            .drain(..)
            .chain(more.iter().cloned())
            .collect();
        self.policies = set.into_iter().collect();
    }

    /// Whether the tree holds; `ctxs` are the plan's requests (one per action) with the row as resource.
    pub(crate) fn holds(&self, ctxs: &[Ctx]) -> bool {
        match &self.node {
            Node::True => true,
            Node::False => false,
            Node::And(children) => children.iter().all(|c| c.holds(ctxs)),
            Node::Or(children) => children.iter().any(|c| c.holds(ctxs)),
            Node::Not(child) => !child.holds(ctxs),
            Node::Leaf(leaf) => leaf.holds(ctxs),
        }
    }

    /// True when some leaf is residual (SQL cannot express it).
    pub fn has_residual(&self) -> bool {
        match &self.node {
            Node::True | Node::False => false,
            Node::And(c) | Node::Or(c) => c.iter().any(Filter::has_residual),
            Node::Not(c) => c.has_residual(),
            Node::Leaf(l) => l.is_residual(),
        }
    }

    /// Every policy id named anywhere in the tree, sorted.
    pub fn all_policies(&self) -> Vec<Arc<str>> {
        let mut out = BTreeSet::new();
        self.collect_policies(&mut out);
        out.into_iter().collect()
    }

    fn collect_policies(&self, out: &mut BTreeSet<Arc<str>>) {
        out.extend(self.policies.iter().cloned());
        match &self.node {
            Node::And(c) | Node::Or(c) => c.iter().for_each(|c| c.collect_policies(out)),
            Node::Not(c) => c.collect_policies(out),
            _ => {}
        }
    }

    /// The JSON form: `true`, `false`, `{"and": [...]}`, `{"or": [...]}`, `{"not": {...}}` or a condition
    /// object; nodes with policies carry `"policies": [...]`.
    pub fn to_json(&self) -> Value {
        let mut out = match &self.node {
            Node::True => return Value::Bool(true),
            Node::False => return Value::Bool(false),
            Node::And(c) => single("and", Value::Array(c.iter().map(Filter::to_json).collect())),
            Node::Or(c) => single("or", Value::Array(c.iter().map(Filter::to_json).collect())),
            Node::Not(c) => single("not", c.to_json()),
            Node::Leaf(l) => l.to_json(),
        };
        if !self.policies.is_empty() {
            out.insert("policies".into(), json!(self.policies));
        }
        Value::Object(out)
    }

    /// A canonical text of what the node tests (its policies left out).
    fn key(&self) -> String {
        let mut out = String::new();
        self.write_key(&mut out);
        out
    }

    fn write_key(&self, out: &mut String) {
        match &self.node {
            Node::True => out.push('T'),
            Node::False => out.push('F'),
            Node::And(c) | Node::Or(c) => {
                out.push_str(if matches!(self.node, Node::And(_)) {
                    "&("
                } else {
                    "|("
                });
                for child in c {
                    child.write_key(out);
                    out.push(',');
                }
                out.push(')');
            }
            Node::Not(c) => {
                out.push('!');
                c.write_key(out);
            }
            Node::Leaf(l) => out.push_str(l.key()),
        }
    }

    /// Folds constants, flattens, removes repeats, absorbs redundant terms and merges URI globs. Exact: the
    /// result holds for exactly the same resources.
    pub(crate) fn simplify(self) -> Filter {
        let policies = self.policies;
        let out = match self.node {
            Node::Not(child) => match child.simplify() {
                Filter {
                    node: Node::True, ..
                } => Filter::constant(false),
                Filter {
                    node: Node::False, ..
                } => Filter::constant(true),
                Filter {
                    node: Node::Not(inner),
                    policies: p,
                } => inner.with_sorted_policies(p),
                other => Filter::new(Node::Not(Box::new(other))),
            },
            Node::And(children) => simplify_junction(children, true),
            Node::Or(children) => simplify_junction(children, false),
            leaf_or_constant => Filter::new(leaf_or_constant),
        };
        match out.node {
            // A constant says nothing about where it came from.
            Node::True | Node::False => out,
            _ => out.with_sorted_policies(policies),
        }
    }
}

fn single(key: &str, value: Value) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(key.into(), value);
    m
}

/// `and` (`is_and`) or `or`: the absorbing constant wins, the neutral one goes, nested nodes of the same kind
/// are flattened, repeats merge their policies, and redundant terms go.
fn simplify_junction(children: Vec<Filter>, is_and: bool) -> Filter {
    let mut flat: Vec<Filter> = Vec::with_capacity(children.len());
    for child in children {
        let child = child.simplify();
        match (&child.node, is_and) {
            (Node::True, true) | (Node::False, false) => continue,
            (Node::False, true) => return Filter::constant(false),
            (Node::True, false) => return Filter::constant(true),
            // A nested node of the same kind dissolves; its policies move to its terms.
            (Node::And(_), true) | (Node::Or(_), false) => {
                let (Node::And(inner) | Node::Or(inner)) = child.node else {
                    unreachable!()
                };
                flat.extend(inner.into_iter().map(|mut term| {
                    term.add_policies(&child.policies);
                    term
                }));
            }
            _ => flat.push(child),
        }
    }
    // Repeats: keep the first, with every copy's policies.
    let mut seen: crate::ir::FastMap<String, usize> =
        crate::ir::FastMap::with_capacity_and_hasher(flat.len(), Default::default());
    let mut unique: Vec<Filter> = Vec::with_capacity(flat.len());
    for child in flat {
        match seen.entry(child.key()) {
            std::collections::hash_map::Entry::Occupied(at) => {
                unique[*at.get()].add_policies(&child.policies)
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(unique.len());
                unique.push(child);
            }
        }
    }
    // `x and not x` is false, `x or not x` true.
    for child in &unique {
        if let Node::Not(inner) = &child.node {
            if seen.contains_key(&inner.key()) {
                return Filter::constant(!is_and);
            }
        }
    }
    if !is_and {
        unique = merge_uri_globs(unique);
    }
    let mut unique = absorb(unique, is_and);
    if !is_and {
        match factor_common(unique) {
            Ok(factored) => return factored,
            Err(children) => unique = children,
        }
    }
    match unique.len() {
        0 => Filter::constant(is_and),
        1 => unique.pop().expect("one child"),
        _ => Filter::new(if is_and {
            Node::And(unique)
        } else {
            Node::Or(unique)
        }),
    }
}

/// The terms of a child as a set of keys: the conjuncts of an `and` inside an `or`, the disjuncts of an `or`
/// inside an `and`, or the child itself.
fn term_keys(child: &Filter, inner_is_and: bool) -> BTreeSet<String> {
    match (&child.node, inner_is_and) {
        (Node::And(c), true) | (Node::Or(c), false) => c.iter().map(Filter::key).collect(),
        _ => std::iter::once(child.key()).collect(),
    }
}

/// Absorption: in an `or`, a term whose conjuncts include all of another term's is implied by it and goes; in an
/// `and`, dually. The removed term's policies move to the one that absorbed it.
fn absorb(children: Vec<Filter>, is_and: bool) -> Vec<Filter> {
    if children.len() < 2 || children.len() > ABSORB_LIMIT {
        return children;
    }
    let sets: Vec<BTreeSet<String>> = children.iter().map(|c| term_keys(c, !is_and)).collect();
    let mut absorbed_by: Vec<Option<usize>> = vec![None; children.len()];
    for b in 0..children.len() {
        for a in 0..children.len() {
            if a != b
                && absorbed_by[a].is_none()
                && sets[a].len() < sets[b].len()
                && sets[a].is_subset(&sets[b])
            {
                absorbed_by[b] = Some(a);
                break;
            }
        }
    }
    let mut moved: Vec<(usize, Vec<Arc<str>>)> = Vec::new();
    let mut kept: Vec<Option<Filter>> = Vec::with_capacity(children.len());
    for (i, child) in children.into_iter().enumerate() {
        match absorbed_by[i] {
            Some(a) => {
                moved.push((a, child.policies));
                kept.push(None);
            }
            None => kept.push(Some(child)),
        }
    }
    for (a, policies) in moved {
        if let Some(target) = kept[a].as_mut() {
            target.add_policies(&policies);
        }
    }
    kept.into_iter().flatten().collect()
}

/// `(a and b) or (a and c)` is `a and (b or c)`: terms every child of an `or` shares move out of it. A child
/// left with nothing makes the `or` true; its policies, and the others', then stay on the result.
fn factor_common(children: Vec<Filter>) -> Result<Filter, Vec<Filter>> {
    if children.len() < 2 || children.len() > ABSORB_LIMIT {
        return Err(children);
    }
    let sets: Vec<Vec<String>> = children
        .iter()
        .map(|c| term_keys(c, true).into_iter().collect())
        .collect();
    let common: Vec<String> = sets[0]
        .iter()
        .filter(|k| sets[1..].iter().all(|s| s.contains(k)))
        .cloned()
        .collect();
    if common.is_empty() {
        return Err(children);
    }
    let mut shared = Vec::new();
    let mut rest = Vec::new();
    let mut emptied = false;
    let mut all_policies = Vec::new();
    for (i, child) in children.into_iter().enumerate() {
        all_policies.extend(child.policies.iter().cloned());
        let (terms, policies) = match child.node {
            Node::And(terms) => (terms, child.policies),
            other => (vec![Filter::new(other)], child.policies),
        };
        let mut remaining = Vec::new();
        for t in terms {
            if common.contains(&t.key()) {
                if i == 0 {
                    shared.push(t);
                }
            } else {
                remaining.push(t);
            }
        }
        if remaining.is_empty() {
            emptied = true;
        } else {
            rest.push(Filter::new(Node::And(remaining)).with_policies(policies));
        }
    }
    if emptied {
        // One child was exactly the shared terms: it absorbs the others.
        return Ok(Filter::new(Node::And(shared))
            .simplify()
            .with_policies(all_policies));
    }
    shared.push(Filter::new(Node::Or(rest)));
    Ok(Filter::new(Node::And(shared)).simplify())
}

/// Inside an `or`: `resource.uri glob` leaves merge into one, and `and` terms that differ only in their URI glob
/// merge into one term whose glob lists both sides' patterns. Patterns covered by another (`p*` covers every
/// pattern that starts with `p`) are dropped.
fn merge_uri_globs(children: Vec<Filter>) -> Vec<Filter> {
    // For each child: (key of the rest of the term, the uri globs) when it is a glob leaf or an `and` with one.
    fn split(child: &Filter) -> Option<(String, usize)> {
        match &child.node {
            Node::Leaf(l) if uri_globs(l).is_some() => Some((String::new(), usize::MAX)),
            Node::And(c) => {
                let positions: Vec<usize> = c
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| matches!(&f.node, Node::Leaf(l) if uri_globs(l).is_some()))
                    .map(|(i, _)| i)
                    .collect();
                let [at] = positions[..] else { return None };
                let mut rest = String::new();
                for (i, f) in c.iter().enumerate() {
                    if i != at {
                        f.write_key(&mut rest);
                        rest.push(',');
                    }
                }
                Some((rest, at))
            }
            _ => None,
        }
    }
    let mut out: Vec<Filter> = Vec::with_capacity(children.len());
    // Rest key → position in `out` of the term that collects its globs, and what it collects.
    let mut by_rest: crate::ir::FastMap<String, usize> = crate::ir::FastMap::default();
    let mut extra: Vec<(usize, Vec<Glob>, Vec<Arc<str>>)> = Vec::new();
    for child in children {
        let Some((rest, at)) = split(&child) else {
            out.push(child);
            continue;
        };
        match by_rest.get(&rest) {
            None => {
                by_rest.insert(rest, out.len());
                extra.push((out.len(), Vec::new(), Vec::new()));
                out.push(child);
            }
            Some(&target) => {
                let globs = match &child.node {
                    Node::Leaf(l) => uri_globs(l),
                    Node::And(c) => match &c[at].node {
                        Node::Leaf(l) => uri_globs(l),
                        _ => None,
                    },
                    _ => None,
                }
                .expect("split found a glob leaf");
                let slot = extra
                    .iter_mut()
                    .find(|(t, _, _)| *t == target)
                    .expect("every target has a slot");
                slot.1.extend(globs.iter().cloned());
                slot.2.extend(child.policies.iter().cloned());
            }
        }
    }
    for (target, globs, policies) in extra {
        if globs.is_empty() {
            // Nothing merged into this term.
            continue;
        }
        let t = &mut out[target];
        t.add_policies(&policies);
        if let Some(leaf) = glob_leaf_mut(t) {
            if let Op::Glob(mine) = &mut leaf.condition.op {
                let merged: Vec<&Glob> = mine.iter().chain(globs.iter()).collect();
                let pruned: Vec<Glob> = prune_covered(merged).into_iter().cloned().collect();
                *mine = pruned.into();
            }
            leaf.key = std::sync::OnceLock::new();
        }
    }
    out
}

/// The URI glob leaf of a term: the term itself, or the one inside an `and`.
fn glob_leaf_mut(term: &mut Filter) -> Option<&mut Leaf> {
    match &mut term.node {
        Node::Leaf(l) if uri_globs(l).is_some() => Some(l),
        Node::And(c) => c.iter_mut().find_map(|f| match &mut f.node {
            Node::Leaf(l) if uri_globs(l).is_some() => Some(&mut **l),
            _ => None,
        }),
        _ => None,
    }
}

/// The patterns of a plain (not negated, not opaque) `resource.uri glob` leaf.
fn uri_globs(l: &Leaf) -> Option<&[Glob]> {
    match (&l.condition.op, &l.condition.path.target) {
        (Op::Glob(globs), Target::Field(Field::ResourceUri))
            if !l.condition.negate && l.opaque.is_none() =>
        {
            Some(globs)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Patterns over a few characters, `*`, NUL and a two-byte character (outside what the workload writes).
    fn patterns() -> impl Strategy<Value = Vec<Glob>> {
        proptest::collection::vec("[ab:*\\x00é]{0,6}", 0..24).prop_map(|texts| {
            texts
                .iter()
                .filter_map(|t| Glob::new(t).ok())
                .collect::<Vec<_>>()
        })
    }

    proptest! {
        /// Pruning keeps exactly the language of the patterns (any URI one of them matches, one kept pattern
        /// matches), keeps them in order without repeats, and the leaf built from the copies of their texts has
        /// the key the leaf computes for itself.
        #[test]
        fn pruning_keeps_the_language_and_the_key(
            globs in patterns(),
            uris in proptest::collection::vec("[ab:\\x00é]{0,8}", 1..12),
        ) {
            let mut list = PatternList::default();
            globs.iter().for_each(|g| list.push(g));
            let kept = list.pruned();
            prop_assert!(kept.windows(2).all(|w| w[0] < w[1]), "in order: {kept:?}");
            let texts: Vec<&str> = kept.iter().map(|&i| globs[i].as_str()).collect();
            let mut seen = std::collections::HashSet::new();
            prop_assert!(texts.iter().all(|t| seen.insert(*t)), "no repeats: {texts:?}");
            for uri in &uris {
                prop_assert_eq!(
                    globs.iter().any(|g| g.matches(uri)),
                    kept.iter().any(|&i| globs[i].matches(uri)),
                    "{} against {:?} kept {:?}", uri, globs, texts
                );
            }
            // What the patterns themselves say is covered (a `p*` matches every pattern text starting with `p`
            // once its stars are read as letters) goes, unless it is that pattern.
            for (i, g) in globs.iter().enumerate() {
                let covered_by_other = globs.iter().any(|q| {
                    q.as_str() != g.as_str()
                        && q.as_str().strip_suffix('*').is_some_and(|p| {
                            !p.contains('*') && g.as_str().split('*').next().unwrap_or("").starts_with(p)
                        })
                });
                if covered_by_other {
                    prop_assert!(!kept.contains(&i), "{} is covered, in {:?}", g.as_str(), texts);
                }
            }
            if !kept.is_empty() {
                let built = Leaf::uri_glob(&list, &kept);
                let fresh = Leaf::new(built.condition.clone(), None, Map::new());
                prop_assert_eq!(built.key(), fresh.key());
            }
            // The slice form agrees with the list form.
            let by_slice: Vec<&str> = prune_covered(globs.iter().collect()).iter().map(|g| g.as_str()).collect();
            prop_assert_eq!(by_slice, texts);
        }
    }
}
