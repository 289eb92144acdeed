//! A query plan as a parameterised SQL `WHERE` clause (SQLite dialect) for a documented table mapping.
//!
//! **The mapping.** A table row is a resource: the `uri` column is `resource.uri`, the `owner` column
//! `resource.owner` (NULL or `''` mean absent), each entry of `columns` maps a top-level attribute name to a
//! column holding a scalar (NULL absent, TEXT a string, INTEGER or REAL a number), and the `json` column holds
//! a JSON object with the other attributes (lists, booleans, nested maps; NULL is `{}`; no repeated keys). An
//! attribute mapped to a column is read from that column only (NULL: absent), never from the JSON object.
//!
//! **Exactness.** Every leaf is rendered so that it is true exactly when the condition is true under SPEC
//! section 1, with the types checked (`typeof`, `json_type`): `'1'` is not `1`, a missing attribute is never
//! equal, a wrong type is neither true nor false. Each leaf is wrapped in `COALESCE(..., 0)` so that SQL's own
//! NULL logic never leaks into a `NOT`. Globs and prefixes use `GLOB` with `[*]`, `[?]` and `[[]` escapes:
//! SQLite's `LIKE` ignores ASCII case, which would over-grant. Instants, time windows, weekdays, CIDRs and
//! opaque leaves cannot be written portably: they are rendered `1` where they count for a resource and `0`
//! where they count against, so the `WHERE` returns a superset, and [`SqlFilter::exact`] is false: check the
//! returned rows with [`super::Plan::allows`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::filter::{Filter, Leaf, Node, ResourcePath};
use super::Plan;
use crate::ir::condition::{Cmp, Lit, NumArg, Op, Operand};

/// How a table holds resources (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SqlMapping {
    /// The column holding `resource.uri`.
    #[serde(default = "default_uri")]
    pub uri: String,
    /// The column holding `resource.owner`.
    #[serde(default = "default_owner")]
    pub owner: String,
    /// Top-level attribute name → column holding its scalar value.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// The column holding the other attributes as a JSON object; `null`: there are no other attributes.
    #[serde(default = "default_json")]
    pub json: Option<String>,
}

fn default_uri() -> String {
    "uri".into()
}
fn default_owner() -> String {
    "owner".into()
}
fn default_json() -> Option<String> {
    Some("attributes".into())
}

impl Default for SqlMapping {
    fn default() -> Self {
        SqlMapping {
            uri: default_uri(),
            owner: default_owner(),
            columns: BTreeMap::new(),
            json: default_json(),
        }
    }
}

/// A rendered `WHERE` clause.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SqlFilter {
    /// The clause, with numbered parameters `?1`, `?2`, ...
    #[serde(rename = "where")]
    pub where_clause: String,
    /// The parameters, in order: strings and numbers.
    pub params: Vec<Value>,
    /// False when residual leaves were widened: the rows returned must be checked with [`Plan::allows`].
    pub exact: bool,
}

/// A mapping that cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sql mapping: {field}: {message}")]
pub struct SqlMappingError {
    /// The mapping field at fault.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl Plan {
    /// Renders the plan as a parameterised `WHERE` clause for `mapping` (SQLite dialect; see [`SqlFilter`]). The
    /// known resource fields of the plan are part of the clause.
    pub fn to_sql(&self, mapping: &SqlMapping) -> Result<SqlFilter, SqlMappingError> {
        mapping.validate()?;
        let mut r = Renderer {
            mapping,
            params: Vec::new(),
            exact: true,
        };
        let mut parts = Vec::new();
        if let Some(g) = &self.known.uri {
            let p = r.param(Value::String(glob_pattern(g.as_str())));
            parts.push(format!("COALESCE({}, '') GLOB {p}", quote(&mapping.uri)));
        }
        if let Some(owner) = &self.known.owner {
            let p = r.param(Value::String(owner.clone()));
            parts.push(format!("COALESCE({} = {p}, 0)", quote(&mapping.owner)));
        }
        parts.push(r.node(&self.filter, true));
        Ok(SqlFilter {
            where_clause: parts.join(" AND "),
            params: r.params,
            exact: r.exact,
        })
    }
}

impl SqlMapping {
    fn validate(&self) -> Result<(), SqlMappingError> {
        let check = |field: String, name: &str| {
            let ok = !name.is_empty()
                && name.split('.').count() <= 2
                && name.split('.').all(|part| {
                    part.chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                        && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                });
            if ok {
                Ok(())
            } else {
                Err(SqlMappingError {
                    field,
                    message: format!(
                        "`{name}` is not a column name (letters, digits and `_`, optionally `table.column`)"
                    ),
                })
            }
        };
        check("uri".into(), &self.uri)?;
        check("owner".into(), &self.owner)?;
        if let Some(j) = &self.json {
            check("json".into(), j)?;
        }
        if self.uri == self.owner {
            return Err(SqlMappingError {
                field: "owner".into(),
                message: format!("`{}` is also the uri column", self.owner),
            });
        }
        for (attr, column) in &self.columns {
            if attr == "uri" || attr == "owner" {
                return Err(SqlMappingError {
                    field: format!("columns.{attr}"),
                    message: format!(
                        "`{attr}` is a typed field: set its column with `\"{attr}\": ...`"
                    ),
                });
            }
            if attr.is_empty() || attr.contains('.') {
                return Err(SqlMappingError {
                    field: format!("columns.{attr}"),
                    message: "map a top-level attribute name (no dots) to a column".into(),
                });
            }
            check(format!("columns.{attr}"), column)?;
        }
        Ok(())
    }
}

/// `"name"` or `"table"."name"`.
fn quote(name: &str) -> String {
    name.split('.')
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(".")
}

/// A policy glob as a SQLite `GLOB` pattern: `*` stays the wildcard, `?` and `[` are escaped.
fn glob_pattern(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len() + 4);
    for c in glob.chars() {
        match c {
            '?' => out.push_str("[?]"),
            '[' => out.push_str("[[]"),
            c => out.push(c),
        }
    }
    out
}

/// Literal text as a `GLOB` pattern that matches only itself.
fn glob_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    for c in text.chars() {
        match c {
            '*' => out.push_str("[*]"),
            '?' => out.push_str("[?]"),
            '[' => out.push_str("[[]"),
            c => out.push(c),
        }
    }
    out
}

struct Renderer<'m> {
    mapping: &'m SqlMapping,
    params: Vec<Value>,
    exact: bool,
}

/// Where a leaf's attribute comes from in the row.
enum Source {
    /// A scalar column; `empty_absent` for `uri` and `owner`, where `''` means absent.
    Column { column: String, empty_absent: bool },
    /// A path into the JSON column: (column, parameter holding the JSON path).
    Json { column: String, path: String },
    /// Nothing in the row can hold it: always absent.
    Absent,
}

/// The SQL of one source.
struct Access {
    /// True when the attribute is present (never NULL).
    present: String,
    /// Its type name: `typeof` for a column, `json_type` for JSON (`'absent'` when missing).
    ty: String,
    value: String,
    /// `json_each(...)` over the attribute's elements (JSON only; a column holds one scalar).
    each: Option<String>,
}

impl Access {
    /// Present and not a map: what every operator but `exists` needs before it can be true or false.
    fn defined(&self) -> String {
        match self.each {
            Some(_) => format!("{} AND {} <> 'object'", self.present, self.ty),
            None => self.present.clone(),
        }
    }
}

impl Renderer<'_> {
    fn param(&mut self, v: Value) -> String {
        self.params.push(v);
        format!("?{}", self.params.len())
    }

    fn node(&mut self, f: &Filter, positive: bool) -> String {
        let mark = self.params.len();
        match &f.node {
            Node::True => "1".into(),
            Node::False => "0".into(),
            Node::And(c) | Node::Or(c) => {
                let sep = if matches!(f.node, Node::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                // Widened leaves are constants: fold them.
                let (absorbing, neutral) = if sep == " AND " {
                    ("0", "1")
                } else {
                    ("1", "0")
                };
                let mut parts: Vec<String> = Vec::with_capacity(c.len());
                for child in c {
                    let part = self.node(child, positive);
                    if part == absorbing {
                        // The parameters of the parts dropped go too (they are numbered in order).
                        self.params.truncate(mark);
                        return absorbing.into();
                    }
                    if part != neutral {
                        parts.push(part);
                    }
                }
                match parts.len() {
                    0 => neutral.into(),
                    1 => parts.pop().expect("one part"),
                    _ => format!("({})", parts.join(sep)),
                }
            }
            Node::Not(c) => match self.node(c, !positive).as_str() {
                "1" => "0".into(),
                "0" => "1".into(),
                inner => format!("NOT {inner}"),
            },
            Node::Leaf(leaf) => match self.leaf(leaf) {
                Some(sql) => format!("COALESCE(({sql}), 0)"),
                None => {
                    self.params.truncate(mark);
                    // Widened: true where the leaf counts for a resource, false where it counts against.
                    self.exact = false;
                    if positive { "1" } else { "0" }.into()
                }
            },
        }
    }

    fn source(&mut self, leaf: &Leaf) -> Option<Source> {
        Some(match leaf.resource_segments()? {
            ResourcePath::Uri => Source::Column {
                column: quote(&self.mapping.uri),
                empty_absent: true,
            },
            ResourcePath::Owner => Source::Column {
                column: quote(&self.mapping.owner),
                empty_absent: true,
            },
            ResourcePath::Attribute(segments) => {
                if let Some(column) = self.mapping.columns.get(segments[0]) {
                    if segments.len() == 1 {
                        Source::Column {
                            column: quote(column),
                            empty_absent: false,
                        }
                    } else {
                        // Below a scalar there is nothing.
                        Source::Absent
                    }
                } else if let Some(json) = &self.mapping.json {
                    // Segments a JSON path label cannot hold make the leaf residual (`Leaf::is_residual`).
                    let path: String = std::iter::once("$".to_string())
                        .chain(segments.iter().map(|s| format!(".\"{s}\"")))
                        .collect();
                    Source::Json {
                        column: quote(json),
                        path: self.param(Value::String(path)),
                    }
                } else {
                    Source::Absent
                }
            }
        })
    }

    fn access(source: &Source) -> Access {
        match source {
            Source::Column {
                column,
                empty_absent,
            } => Access {
                present: if *empty_absent {
                    format!("{column} IS NOT NULL AND {column} <> ''")
                } else {
                    format!("{column} IS NOT NULL")
                },
                ty: format!("typeof({column})"),
                value: column.clone(),
                each: None,
            },
            Source::Json { column, path } => {
                let ty = format!("COALESCE(json_type({column}, {path}), 'absent')");
                Access {
                    present: format!("{ty} NOT IN ('absent', 'null')"),
                    ty,
                    value: format!("json_extract({column}, {path})"),
                    each: Some(format!("json_each({column}, {path})")),
                }
            }
            Source::Absent => Access {
                present: "0".into(),
                ty: "'absent'".into(),
                value: "NULL".into(),
                each: None,
            },
        }
    }

    /// Some element (the scalar itself for a column, which callers have checked is present) for which
    /// `pred(type, value)` holds.
    fn any_element(a: &Access, pred: impl Fn(&str, &str) -> String) -> String {
        match &a.each {
            Some(each) => format!(
                "EXISTS (SELECT 1 FROM {each} AS e WHERE {})",
                pred("e.type", "e.atom")
            ),
            None => format!("({})", pred(&a.ty, &a.value)),
        }
    }

    /// The leaf as SQL that is true exactly when the leaf holds; `None` when SQL cannot say it.
    fn leaf(&mut self, leaf: &Leaf) -> Option<String> {
        if leaf.is_residual() {
            return None;
        }
        let source = self.source(leaf)?;
        let a = Self::access(&source);
        let present = a.present.clone();
        let negate = leaf.condition.negate;
        // (true when the condition is true, true when it is false)
        let (when_true, when_false) = match &leaf.condition.op {
            Op::Exists => (present.clone(), format!("NOT ({present})")),
            Op::IsTrue => (format!("{} = 'true'", a.ty), format!("{} = 'false'", a.ty)),
            Op::Equals(values) => {
                let lits = literals(values)?;
                let m = self.any_match(&a, &lits);
                let defined = a.defined();
                (
                    format!("{defined} AND {m}"),
                    format!("{defined} AND NOT {m}"),
                )
            }
            Op::ContainsAll(values) => {
                let lits = literals(values)?;
                let all: Vec<String> = lits
                    .iter()
                    .map(|l| self.any_match(&a, std::slice::from_ref(l)))
                    .collect();
                let all = if all.is_empty() {
                    "1".to_string()
                } else {
                    format!("({})", all.join(" AND "))
                };
                let array = format!("{} = 'array'", a.ty);
                (
                    format!("{array} AND {all}"),
                    format!("{array} AND NOT {all}"),
                )
            }
            Op::StartsWith(values) | Op::EndsWith(values) => {
                let starts = matches!(leaf.condition.op, Op::StartsWith(_));
                let lits = literals(values)?;
                let patterns: Vec<String> = lits
                    .iter()
                    .filter_map(|l| match l {
                        Lit::Str(s) if starts => Some(format!("{}*", glob_literal(s))),
                        Lit::Str(s) => Some(format!("*{}", glob_literal(s))),
                        _ => None,
                    })
                    .collect();
                let bad = lits.iter().any(|l| !matches!(l, Lit::Str(_)));
                self.string_match(&a, &patterns, bad)
            }
            Op::Glob(globs) => {
                let patterns: Vec<String> =
                    globs.iter().map(|g| glob_pattern(g.as_str())).collect();
                self.string_match(&a, &patterns, false)
            }
            Op::Compare(cmp, NumArg::Num(n)) => {
                let p = self.param(number(*n));
                let op = match cmp {
                    Cmp::Lt => "<",
                    Cmp::Le => "<=",
                    Cmp::Gt => ">",
                    Cmp::Ge => ">=",
                };
                let numeric = format!("{} AND {} IN ('integer', 'real')", a.present, a.ty);
                // As the evaluator does, compare as doubles (an INTEGER above 2^53 is rounded first).
                let test = format!("CAST({} AS REAL) {op} {p}", a.value);
                (
                    format!("{numeric} AND {test}"),
                    format!("{numeric} AND NOT ({test})"),
                )
            }
            _ => return None,
        };
        Some(if negate { when_false } else { when_true })
    }

    /// Some element equals some literal, with types compared first (`'1'` is not `1`).
    fn any_match(&mut self, a: &Access, lits: &[Lit]) -> String {
        if lits.is_empty() {
            return "0".into();
        }
        let params: Vec<(Lit, Option<String>)> = lits
            .iter()
            .map(|l| {
                let p = match l {
                    Lit::Str(s) => Some(self.param(Value::String(s.to_string()))),
                    Lit::Num(n) => Some(self.param(number(*n))),
                    Lit::Bool(_) => None,
                };
                (l.clone(), p)
            })
            .collect();
        Self::any_element(a, |ty, value| {
            let tests: Vec<String> = params
                .iter()
                .map(|(l, p)| match (l, p) {
                    (Lit::Str(_), Some(p)) => format!("({ty} = 'text' AND {value} = {p})"),
                    // As the evaluator does, compare as doubles (an INTEGER above 2^53 is rounded first).
                    (Lit::Num(_), Some(p)) => {
                        format!("({ty} IN ('integer', 'real') AND CAST({value} AS REAL) = {p})")
                    }
                    (Lit::Bool(b), _) => format!("{ty} = '{b}'"),
                    _ => "0".into(),
                })
                .collect();
            format!("({})", tests.join(" OR "))
        })
    }

    /// `starts_with`, `ends_with` and `glob` on a string or a list: true when a string element matches; false
    /// when none does and every element is a string (and, with a non-string value, there is no element at all).
    fn string_match(
        &mut self,
        a: &Access,
        patterns: &[String],
        bad_value: bool,
    ) -> (String, String) {
        let params: Vec<String> = patterns
            .iter()
            .map(|p| self.param(Value::String(p.clone())))
            .collect();
        let hit = if params.is_empty() {
            "0".to_string()
        } else {
            Self::any_element(a, |ty, value| {
                let globs: Vec<String> =
                    params.iter().map(|p| format!("{value} GLOB {p}")).collect();
                format!("({ty} = 'text' AND ({}))", globs.join(" OR "))
            })
        };
        let non_string = Self::any_element(a, |ty, _| format!("{ty} <> 'text'"));
        let defined = a.defined();
        let mut when_false = format!("{defined} AND NOT {hit} AND NOT {non_string}");
        if bad_value {
            let any = Self::any_element(a, |_, _| "1".into());
            when_false.push_str(&format!(" AND NOT {any}"));
        }
        (format!("{defined} AND {hit}"), when_false)
    }
}

/// The literal values of a leaf (`None` when a reference is left: such a leaf is opaque).
fn literals(values: &[Operand]) -> Option<Vec<Lit>> {
    values
        .iter()
        .map(|o| match o {
            Operand::Lit(l) => Some(l.clone()),
            Operand::Ref(_) => None,
        })
        .collect()
}

fn number(n: f64) -> Value {
    serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
}
