//! YAML tree → AST: document kinds, fields and their types.
//!
//! Every document of every file is read; each unknown field, missing field or mistyped value becomes its own
//! diagnostic with file:line:col and, where a near miss exists, a "did you mean" hint. Documents of
//! `kind: TestSuite` are read by the same parser into `PolicySetDoc::suites`, their problems kept apart in
//! `suite_diags`: a snapshot never depends on them, while `arbiter check` and `arbiter test` report them.

use std::path::Path;
use std::sync::Arc;

use crate::ast::*;
use crate::diag::{suggestion, Code, Diagnostic, Diagnostics, Pos};
use crate::source::{Key, Node, NodeValue};

/// The document kinds a policy directory may hold.
pub const KINDS: [&str; 6] = [
    "Policy",
    "PolicyAttachment",
    "Group",
    "LockoutGuard",
    "HttpMapping",
    "TestSuite",
];

pub(crate) const POLICY_FIELDS: &[&str] = &[
    "kind",
    "id",
    "description",
    "effect",
    "actions",
    "resources",
    "conditions",
];
pub(crate) const ATTACHMENT_FIELDS: &[&str] = &["kind", "id", "description", "policy", "principal_selector"];
pub(crate) const GROUP_FIELDS: &[&str] = &["kind", "name", "description", "system", "members"];
pub(crate) const GUARD_FIELDS: &[&str] = &[
    "kind",
    "id",
    "description",
    "principal",
    "must_allow",
    "assuming",
];
pub(crate) const MAPPING_FIELDS: &[&str] = &["kind", "id", "description", "principal", "routes"];
pub(crate) const ROUTE_FIELDS: &[&str] = &["method", "path", "action", "resource"];
const MAPPING_PRINCIPAL_FIELDS: &[&str] = &["mtls", "header", "groups_header"];
pub(crate) const CONDITION_FIELDS: &[&str] = &["path", "op", "values", "negate", "zone"];
pub(crate) const MUST_ALLOW_FIELDS: &[&str] = &["actions", "resources"];
const GUARD_PRINCIPAL_FIELDS: &[&str] = &["id", "groups"];
pub(crate) const SUITE_FIELDS: &[&str] = &["kind", "name", "description", "now", "tests"];
pub(crate) const TEST_FIELDS: &[&str] = &[
    "name",
    "description",
    "principal",
    "action",
    "resource",
    "environment",
    "expect",
    "expect_reason",
    "expect_policies",
];
/// The fields of a test that make up its request.
const TEST_REQUEST_FIELDS: [&str; 4] = ["principal", "action", "resource", "environment"];
/// The reasons a test may expect: every reason evaluation gives (`unauthenticated` comes from the doors only).
pub const TEST_REASONS: [&str; 5] = [
    "superuser",
    "allowed",
    "denied",
    "no_applicable_policy",
    "error",
];

/// Parses the documents of one file into `set`, reporting problems into `diags`.
pub fn parse_file(
    file: &Arc<Path>,
    documents: &[Node],
    set: &mut PolicySetDoc,
    diags: &mut Diagnostics,
) {
    for doc in documents {
        let mut p = Parser { file, diags };
        p.document(doc, set);
    }
}

struct Parser<'a> {
    file: &'a Arc<Path>,
    diags: &'a mut Diagnostics,
}

/// The entries of one YAML mapping, checked against the fields its kind allows.
struct Fields<'n> {
    pos: Pos,
    entries: &'n [(Key, Node)],
}

impl<'n> Fields<'n> {
    fn get(&self, name: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == name)
            .map(|(_, v)| v)
    }
}

impl Parser<'_> {
    fn error(&mut self, code: Code, pos: Pos, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(code, self.file, pos, message)
    }

    fn report(&mut self, code: Code, pos: Pos, message: impl Into<String>) {
        let d = self.error(code, pos, message);
        self.diags.push(d);
    }

    fn origin(&self, pos: Pos) -> Origin {
        Origin {
            file: self.file.clone(),
            pos,
        }
    }

    /// Opens a mapping, reporting every key outside `known`.
    fn fields<'n>(&mut self, node: &'n Node, what: &str, known: &[&str]) -> Option<Fields<'n>> {
        let NodeValue::Map(entries) = &node.value else {
            self.report(
                Code::WrongType,
                node.pos,
                format!("{what} must be a map, found {}", node.value.type_name()),
            );
            return None;
        };
        for (key, _) in entries {
            if !known.contains(&key.name.as_str()) {
                let mut d = self.error(
                    Code::UnknownField,
                    key.pos,
                    format!("unknown field `{}` in {what}", key.name),
                );
                d.help = Some(
                    suggestion(&key.name, known.iter().copied())
                        .unwrap_or_else(|| format!("expected one of: {}", known.join(", "))),
                );
                self.diags.push(d);
            }
        }
        Some(Fields {
            pos: node.pos,
            entries,
        })
    }

    fn required<'n>(&mut self, f: &Fields<'n>, name: &str, what: &str) -> Option<&'n Node> {
        let node = f.get(name);
        if node.is_none() {
            self.report(
                Code::MissingField,
                f.pos,
                format!("missing field `{name}` in {what}"),
            );
        }
        node
    }

    fn string(&mut self, node: &Node, field: &str) -> Option<At<String>> {
        match &node.value {
            NodeValue::Str(s) => Some(At::new(node.pos, s.clone())),
            other => {
                self.report(
                    Code::WrongType,
                    node.pos,
                    format!("`{field}` must be a string, found {}", other.type_name()),
                );
                None
            }
        }
    }

    fn bool(&mut self, node: Option<&Node>, field: &str) -> bool {
        match node.map(|n| (n.pos, &n.value)) {
            None | Some((_, NodeValue::Null)) => false,
            Some((_, NodeValue::Bool(b))) => *b,
            Some((pos, other)) => {
                self.report(
                    Code::WrongType,
                    pos,
                    format!(
                        "`{field}` must be true or false, found {}",
                        other.type_name()
                    ),
                );
                false
            }
        }
    }

    fn id(&mut self, node: &Node, field: &str) -> Option<At<String>> {
        let id = self.string(node, field)?;
        if !is_valid_id(&id.value) {
            let d = self
                .error(
                    Code::InvalidId,
                    id.pos,
                    format!("invalid {field} `{}`", id.value),
                )
                .with_help("use only letters, digits, `.`, `_` and `-`");
            self.diags.push(d);
            return None;
        }
        Some(id)
    }

    /// A list of strings; when `non_empty`, an empty list is an error.
    fn strings(&mut self, node: &Node, field: &str, non_empty: bool) -> Vec<At<String>> {
        let NodeValue::Seq(items) = &node.value else {
            self.report(
                Code::WrongType,
                node.pos,
                format!(
                    "`{field}` must be a list of strings, found {}",
                    node.value.type_name()
                ),
            );
            return Vec::new();
        };
        if non_empty && items.is_empty() {
            self.report(
                Code::EmptyValue,
                node.pos,
                format!("`{field}` must not be empty"),
            );
        }
        items
            .iter()
            .filter_map(|item| self.string(item, field))
            .collect()
    }

    fn scalar(&mut self, node: &Node, field: &str) -> Option<At<Scalar>> {
        let scalar = match &node.value {
            NodeValue::Str(s) => Scalar::Str(s.clone()),
            NodeValue::Int(i) => Scalar::Num(*i as f64),
            NodeValue::Float(f) => Scalar::Num(*f),
            NodeValue::Bool(b) => Scalar::Bool(*b),
            other => {
                self.report(
                    Code::WrongType,
                    node.pos,
                    format!(
                        "`{field}` entries must be strings, numbers or booleans, found {}",
                        other.type_name()
                    ),
                );
                return None;
            }
        };
        Some(At::new(node.pos, scalar))
    }

    fn description(&mut self, f: &Fields) -> Option<String> {
        let node = f.get("description")?;
        self.string(node, "description").map(|s| s.value)
    }

    fn document(&mut self, doc: &Node, set: &mut PolicySetDoc) {
        let NodeValue::Map(entries) = &doc.value else {
            self.report(
                Code::WrongType,
                doc.pos,
                format!(
                    "a document must be a map with a `kind`, found {}",
                    doc.value.type_name()
                ),
            );
            return;
        };
        let Some((_, kind_node)) = entries.iter().find(|(k, _)| k.name == "kind") else {
            let d = self
                .error(Code::MissingField, doc.pos, "missing field `kind`")
                .with_help(format!("expected one of: {}", KINDS.join(", ")));
            self.diags.push(d);
            return;
        };
        let Some(kind) = self.string(kind_node, "kind") else {
            return;
        };
        match kind.value.as_str() {
            "Policy" => {
                if let Some(p) = self.policy(doc, &mut set.incomplete) {
                    set.policies.push(Arc::new(p));
                }
            }
            "PolicyAttachment" => {
                if let Some(a) = self.attachment(doc, &mut set.incomplete) {
                    set.attachments.push(Arc::new(a));
                }
            }
            "Group" => {
                if let Some(g) = self.group(doc) {
                    set.groups.push(Arc::new(g));
                }
            }
            "LockoutGuard" => {
                if let Some(g) = self.guard(doc) {
                    set.guards.push(g);
                }
            }
            "HttpMapping" => {
                if let Some(m) = self.mapping(doc) {
                    set.mappings.push(m);
                }
            }
            "TestSuite" => {
                let mut p = Parser {
                    file: self.file,
                    diags: &mut set.suite_diags,
                };
                if let Some(suite) = p.suite(doc) {
                    set.suites.push(suite);
                }
            }
            other => {
                let mut d = self.error(
                    Code::UnknownKind,
                    kind.pos,
                    format!("unknown kind `{other}`"),
                );
                d.help = Some(
                    suggestion(other, KINDS.iter().copied())
                        .unwrap_or_else(|| format!("expected one of: {}", KINDS.join(", "))),
                );
                self.diags.push(d);
            }
        }
    }

    fn policy(&mut self, doc: &Node, incomplete: &mut Incomplete) -> Option<PolicyDoc> {
        let f = self.fields(doc, "Policy", POLICY_FIELDS)?;
        let id = self
            .required(&f, "id", "Policy")
            .and_then(|n| self.id(n, "id"));
        let description = self.description(&f);
        let effect = self
            .required(&f, "effect", "Policy")
            .and_then(|n| self.effect(n));
        let actions = self
            .required(&f, "actions", "Policy")
            .map(|n| self.strings(n, "actions", true))
            .unwrap_or_default();
        let resources = self
            .required(&f, "resources", "Policy")
            .map(|n| self.strings(n, "resources", true))
            .unwrap_or_default();
        let conditions = f
            .get("conditions")
            .map(|n| self.conditions(n, "conditions"))
            .unwrap_or_default();
        let (Some(id), Some(effect)) = (id, effect) else {
            let origin = self.origin(doc.pos);
            let written_id = f.get("id").and_then(|n| self.string_quietly(n));
            incomplete
                .policy_ids
                .extend(written_id.clone().map(|id| (origin.clone(), id)));
            incomplete.policies.push(PolicyDoc {
                origin,
                id: written_id.unwrap_or_else(|| At::new(doc.pos, String::new())),
                description,
                effect: effect.unwrap_or(Effect::Deny),
                actions,
                resources,
                conditions,
            });
            return None;
        };
        Some(PolicyDoc {
            origin: self.origin(doc.pos),
            id,
            description,
            effect,
            actions,
            resources,
            conditions,
        })
    }

    /// A string node's text, reporting nothing when it is not one (its error is reported elsewhere).
    fn string_quietly(&self, node: &Node) -> Option<At<String>> {
        match &node.value {
            NodeValue::Str(s) => Some(At::new(node.pos, s.clone())),
            _ => None,
        }
    }

    fn effect(&mut self, node: &Node) -> Option<Effect> {
        let s = self.string(node, "effect")?;
        match s.value.as_str() {
            "allow" => Some(Effect::Allow),
            "deny" => Some(Effect::Deny),
            other => {
                let mut d = self.error(
                    Code::InvalidEffect,
                    s.pos,
                    format!("invalid effect `{other}`"),
                );
                d.help = Some(
                    suggestion(&other.to_ascii_lowercase(), ["allow", "deny"])
                        .unwrap_or_else(|| "expected `allow` or `deny`".into()),
                );
                self.diags.push(d);
                None
            }
        }
    }

    fn conditions(&mut self, node: &Node, field: &str) -> Vec<ConditionDoc> {
        let NodeValue::Seq(items) = &node.value else {
            self.report(
                Code::WrongType,
                node.pos,
                format!(
                    "`{field}` must be a list of conditions, found {}",
                    node.value.type_name()
                ),
            );
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| self.condition(item))
            .collect()
    }

    fn condition(&mut self, node: &Node) -> Option<ConditionDoc> {
        let f = self.fields(node, "condition", CONDITION_FIELDS)?;
        let path = self
            .required(&f, "path", "condition")
            .and_then(|n| self.string(n, "path"));
        let op = self
            .required(&f, "op", "condition")
            .and_then(|n| self.op(n));
        let values = match f.get("values") {
            None => None,
            Some(n) => match &n.value {
                NodeValue::Seq(items) => Some(At::new(
                    n.pos,
                    items
                        .iter()
                        .filter_map(|i| self.scalar(i, "values"))
                        .collect(),
                )),
                other => {
                    let mut d = self.error(
                        Code::WrongType,
                        n.pos,
                        format!("`values` must be a list, found {}", other.type_name()),
                    );
                    d.help = match other {
                        NodeValue::Str(s) => {
                            Some(format!("write a one-item list: `values: [\"{s}\"]`"))
                        }
                        NodeValue::Int(_) | NodeValue::Float(_) | NodeValue::Bool(_) => Some(
                            format!("write a one-item list: `values: [{}]`", n.to_json()),
                        ),
                        _ => None,
                    };
                    self.diags.push(d);
                    return None;
                }
            },
        };
        let negate = self.bool(f.get("negate"), "negate");
        let zone = match f.get("zone") {
            Some(n) => Some(self.string(n, "zone")?),
            None => None,
        };
        Some(ConditionDoc {
            pos: node.pos,
            path: path?,
            op: op?,
            values,
            negate,
            zone,
        })
    }

    fn op(&mut self, node: &Node) -> Option<At<OpName>> {
        let s = self.string(node, "op")?;
        match OpName::parse(&s.value) {
            Some(op) => Some(At::new(s.pos, op)),
            None => {
                let names = OpName::ALL.iter().map(|(n, _)| *n);
                let mut d = self.error(
                    Code::UnknownOperator,
                    s.pos,
                    format!("unknown operator `{}`", s.value),
                );
                d.help = Some(suggestion(&s.value, names.clone()).unwrap_or_else(|| {
                    format!("expected one of: {}", names.collect::<Vec<_>>().join(", "))
                }));
                self.diags.push(d);
                None
            }
        }
    }

    fn suite(&mut self, doc: &Node) -> Option<TestSuiteDoc> {
        let f = self.fields(doc, "TestSuite", SUITE_FIELDS)?;
        let name = self
            .required(&f, "name", "TestSuite")
            .and_then(|n| self.string(n, "name"));
        self.description(&f);
        let now = f.get("now").and_then(|n| {
            let text = self.string(n, "now")?;
            let instant = crate::request::parse_rfc3339(&text.value);
            if instant.is_none() {
                let d = self
                    .error(
                        Code::InvalidInstant,
                        text.pos,
                        format!("`now` must be an RFC 3339 instant, found `{}`", text.value),
                    )
                    .with_help("e.g. `2026-11-23T12:00:00Z`");
                self.diags.push(d);
            }
            instant
        });
        let tests = match self.required(&f, "tests", "TestSuite") {
            Some(n) => match &n.value {
                NodeValue::Seq(items) => items.iter().filter_map(|t| self.test(t)).collect(),
                other => {
                    self.report(
                        Code::WrongType,
                        n.pos,
                        format!("`tests` must be a list, found {}", other.type_name()),
                    );
                    Vec::new()
                }
            },
            None => Vec::new(),
        };
        Some(TestSuiteDoc {
            origin: self.origin(doc.pos),
            name: name?,
            now,
            tests,
        })
    }

    /// One test; every field is checked, so that one pass reports all of a test's mistakes.
    fn test(&mut self, node: &Node) -> Option<TestDoc> {
        // Only errors are pushed while reading a test: any new diagnostic leaves it out.
        let reported_before = self.diags.len();
        let f = self.fields(node, "test", TEST_FIELDS)?;
        let name = self
            .required(&f, "name", "test")
            .and_then(|n| self.string(n, "name"));
        self.description(&f);
        let expect = self
            .required(&f, "expect", "test")
            .and_then(|n| self.string(n, "expect"))
            .and_then(|s| match s.value.as_str() {
                "allow" => Some(true),
                "deny" => Some(false),
                other => {
                    let mut d = self.error(
                        Code::InvalidTestSuite,
                        s.pos,
                        format!("`expect` must be `allow` or `deny`, found `{other}`"),
                    );
                    d.help = suggestion(other, ["allow", "deny"]);
                    self.diags.push(d);
                    None
                }
            });
        let expect_reason = f.get("expect_reason").and_then(|n| {
            let s = self.string(n, "expect_reason")?;
            if TEST_REASONS.contains(&s.value.as_str()) {
                return Some(s);
            }
            let mut d = self.error(
                Code::InvalidTestSuite,
                s.pos,
                format!("unknown reason `{}` in `expect_reason`", s.value),
            );
            d.help = Some(
                suggestion(&s.value, TEST_REASONS)
                    .unwrap_or_else(|| format!("expected one of: {}", TEST_REASONS.join(", "))),
            );
            self.diags.push(d);
            None
        });
        let expect_policies = f
            .get("expect_policies")
            .map(|n| self.strings(n, "expect_policies", false));
        let request = self.test_request(&f, node.pos);
        if self.diags.len() > reported_before {
            return None;
        }
        Some(TestDoc {
            pos: node.pos,
            name: name?,
            request: request?,
            expect_allow: expect?,
            expect_reason,
            expect_policies,
        })
    }

    /// A test's request, validated as every door validates one; an error names the field as written in the test
    /// (`resource.attributes`) and points at it.
    fn test_request(&mut self, f: &Fields, pos: Pos) -> Option<crate::request::Request> {
        let mut raw = serde_json::Map::new();
        for key in TEST_REQUEST_FIELDS {
            if let Some(n) = f.get(key) {
                raw.insert(key.to_string(), n.to_json());
            }
        }
        let request = crate::request::RawRequest::from_json(serde_json::Value::Object(raw))
            .and_then(|r| r.normalize());
        match request {
            Ok(r) => Some(r),
            Err(e) => {
                let top = e.field.split(['.', '[']).next().unwrap_or("");
                let at = f.get(top).map_or(pos, |n| n.pos);
                self.report(
                    Code::InvalidTestSuite,
                    at,
                    format!("invalid request: `{}`: {}", e.field, e.message),
                );
                None
            }
        }
    }

    fn attachment(&mut self, doc: &Node, incomplete: &mut Incomplete) -> Option<AttachmentDoc> {
        let f = self.fields(doc, "PolicyAttachment", ATTACHMENT_FIELDS)?;
        let id = self
            .required(&f, "id", "PolicyAttachment")
            .and_then(|n| self.id(n, "id"));
        let policy = self
            .required(&f, "policy", "PolicyAttachment")
            .and_then(|n| self.string(n, "policy"));
        let _ = self.description(&f);
        let selector = match f.get("principal_selector") {
            Some(n) => self.selector(n),
            None => {
                let d = self
                    .error(
                        Code::MissingField,
                        f.pos,
                        "missing field `principal_selector` in PolicyAttachment",
                    )
                    .with_help("write `principal_selector: {}` to attach the policy to every user");
                self.diags.push(d);
                None
            }
        };
        let policy = policy?;
        let (Some(id), Some(selector)) = (id, selector) else {
            incomplete.attachments.push(IncompleteAttachment {
                origin: self.origin(doc.pos),
                id: f.get("id").and_then(|n| self.string_quietly(n)),
                policy,
            });
            return None;
        };
        Some(AttachmentDoc {
            origin: self.origin(doc.pos),
            id,
            policy,
            selector,
        })
    }

    fn selector(&mut self, node: &Node) -> Option<Vec<SelectorEntry>> {
        let NodeValue::Map(entries) = &node.value else {
            self.report(
                Code::WrongType,
                node.pos,
                format!(
                    "`principal_selector` must be a map, found {}",
                    node.value.type_name()
                ),
            );
            return None;
        };
        let mut out = Vec::new();
        for (key, value) in entries {
            let values = match &value.value {
                NodeValue::Seq(items) => items
                    .iter()
                    .filter_map(|i| self.scalar(i, &key.name))
                    .collect(),
                _ => self.scalar(value, &key.name).into_iter().collect(),
            };
            out.push(SelectorEntry {
                key: At::new(key.pos, key.name.clone()),
                values,
            });
        }
        Some(out)
    }

    fn mapping(&mut self, doc: &Node) -> Option<HttpMappingDoc> {
        let f = self.fields(doc, "HttpMapping", MAPPING_FIELDS)?;
        let id = self
            .required(&f, "id", "HttpMapping")
            .and_then(|n| self.id(n, "id"));
        let _ = self.description(&f);
        let principal = match f.get("principal") {
            Some(n) if n.value != NodeValue::Null => self.mapping_principal(n),
            _ => None,
        };
        let mut routes = Vec::new();
        if let Some(node) = self.required(&f, "routes", "HttpMapping") {
            match &node.value {
                NodeValue::Seq(items) if !items.is_empty() => {
                    for item in items {
                        if let Some(r) = self.route(item) {
                            routes.push(r);
                        }
                    }
                }
                NodeValue::Seq(_) => {
                    self.report(Code::EmptyValue, node.pos, "`routes` must not be empty")
                }
                other => self.report(
                    Code::WrongType,
                    node.pos,
                    format!(
                        "`routes` must be a list of routes, found {}",
                        other.type_name()
                    ),
                ),
            }
        }
        Some(HttpMappingDoc {
            origin: self.origin(doc.pos),
            id: id?,
            principal,
            routes,
        })
    }

    fn mapping_principal(&mut self, node: &Node) -> Option<MappingPrincipalDoc> {
        let f = self.fields(node, "an HttpMapping `principal`", MAPPING_PRINCIPAL_FIELDS)?;
        let header = f.get("header").and_then(|n| self.string(n, "header"));
        let groups_header = f
            .get("groups_header")
            .and_then(|n| self.string(n, "groups_header"));
        Some(MappingPrincipalDoc {
            pos: node.pos,
            mtls: self.bool(f.get("mtls"), "mtls"),
            header,
            groups_header,
        })
    }

    fn route(&mut self, node: &Node) -> Option<RouteDoc> {
        let f = self.fields(node, "a route", ROUTE_FIELDS)?;
        let methods = match f.get("method") {
            None => Vec::new(),
            Some(n) => match &n.value {
                NodeValue::Seq(_) => self.strings(n, "method", true),
                _ => self.string(n, "method").into_iter().collect(),
            },
        };
        let methods = methods.into_iter().filter(|m| m.value != "*").collect();
        let path = self
            .required(&f, "path", "a route")
            .and_then(|n| self.string(n, "path"));
        let action = self
            .required(&f, "action", "a route")
            .and_then(|n| self.string(n, "action"));
        let resource = f.get("resource").and_then(|n| self.string(n, "resource"));
        Some(RouteDoc {
            pos: node.pos,
            methods,
            path: path?,
            action: action?,
            resource,
        })
    }

    fn group(&mut self, doc: &Node) -> Option<GroupDoc> {
        let f = self.fields(doc, "Group", GROUP_FIELDS)?;
        // Group names are compared exactly, like the groups of a request, so any non-empty string is one
        // (CipherTrust's own include spaces: "Key Users").
        let name = self
            .required(&f, "name", "Group")
            .and_then(|n| self.string(n, "name"))
            .filter(|name| {
                let empty = name.value.is_empty();
                if empty {
                    self.report(Code::EmptyValue, name.pos, "`name` must not be empty");
                }
                !empty
            });
        let _ = self.description(&f);
        let system = self.bool(f.get("system"), "system");
        let members = match f.get("members") {
            Some(n) if n.value != NodeValue::Null => self.strings(n, "members", false),
            _ => Vec::new(),
        };
        Some(GroupDoc {
            origin: self.origin(doc.pos),
            name: name?,
            system,
            members,
        })
    }

    fn guard(&mut self, doc: &Node) -> Option<GuardDoc> {
        let f = self.fields(doc, "LockoutGuard", GUARD_FIELDS)?;
        let id = self
            .required(&f, "id", "LockoutGuard")
            .and_then(|n| self.id(n, "id"));
        let description = self.description(&f);
        let principal = self
            .required(&f, "principal", "LockoutGuard")
            .and_then(|n| self.guard_principal(n));
        let must_allow = match self.required(&f, "must_allow", "LockoutGuard") {
            Some(n) => match &n.value {
                NodeValue::Seq(items) if !items.is_empty() => {
                    items.iter().filter_map(|i| self.must_allow(i)).collect()
                }
                NodeValue::Seq(_) => {
                    self.report(Code::EmptyValue, n.pos, "`must_allow` must not be empty");
                    Vec::new()
                }
                other => {
                    self.report(
                        Code::WrongType,
                        n.pos,
                        format!("`must_allow` must be a list, found {}", other.type_name()),
                    );
                    Vec::new()
                }
            },
            None => Vec::new(),
        };
        let assuming = f
            .get("assuming")
            .map(|n| self.conditions(n, "assuming"))
            .unwrap_or_default();
        Some(GuardDoc {
            origin: self.origin(doc.pos),
            id: id?,
            description,
            principal: principal?,
            must_allow,
            assuming,
        })
    }

    fn guard_principal(&mut self, node: &Node) -> Option<GuardPrincipal> {
        let f = self.fields(node, "guard principal", GUARD_PRINCIPAL_FIELDS)?;
        let id = self
            .required(&f, "id", "guard principal")
            .and_then(|n| self.string(n, "id"));
        let groups = f
            .get("groups")
            .map(|n| self.strings(n, "groups", false))
            .unwrap_or_default();
        Some(GuardPrincipal {
            pos: node.pos,
            id: id?,
            groups,
        })
    }

    fn must_allow(&mut self, node: &Node) -> Option<MustAllow> {
        let f = self.fields(node, "must_allow entry", MUST_ALLOW_FIELDS)?;
        let actions = self
            .required(&f, "actions", "must_allow entry")
            .map(|n| self.strings(n, "actions", true));
        let resources = self
            .required(&f, "resources", "must_allow entry")
            .map(|n| self.strings(n, "resources", true));
        Some(MustAllow {
            pos: node.pos,
            actions: actions?,
            resources: resources?,
        })
    }
}

/// Policy, attachment and guard ids: `[A-Za-z0-9._-]+`.
pub fn is_valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
