//! The as-written shapes of policy documents, each field carrying the position it was written at.
//!
//! `parse` builds these from YAML; `validate` checks them against each other; `compile` lowers them into the
//! evaluation IR. Nothing here is interpreted yet: globs, paths and values are still text.

use std::path::Path;
use std::sync::Arc;

use crate::diag::Pos;

/// Where a document or field was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: Arc<Path>,
    pub pos: Pos,
}

/// A value together with its position in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct At<T> {
    pub pos: Pos,
    pub value: T,
}

impl<T> At<T> {
    pub fn new(pos: Pos, value: T) -> Self {
        At { pos, value }
    }
}

/// A scalar as written in YAML: condition values and selector values.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Str(String),
    Num(f64),
    Bool(bool),
}

impl Scalar {
    pub fn type_name(&self) -> &'static str {
        match self {
            Scalar::Str(_) => "a string",
            Scalar::Num(_) => "a number",
            Scalar::Bool(_) => "a boolean",
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Scalar::Str(s) => serde_json::Value::String(s.clone()),
            Scalar::Num(n) => serde_json::Number::from_f64(*n)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Scalar::Bool(b) => serde_json::Value::Bool(*b),
        }
    }
}

/// `allow` or `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Effect {
    Allow,
    Deny,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        }
    }
}

/// The condition operators of the policy language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpName {
    Equals,
    ContainsAll,
    StartsWith,
    EndsWith,
    Glob,
    Lt,
    Le,
    Gt,
    Ge,
    Before,
    After,
    TimeOfDay,
    Weekday,
    Cidr,
    Exists,
    IsTrue,
}

impl OpName {
    pub const ALL: [(&'static str, OpName); 16] = [
        ("equals", OpName::Equals),
        ("contains_all", OpName::ContainsAll),
        ("starts_with", OpName::StartsWith),
        ("ends_with", OpName::EndsWith),
        ("glob", OpName::Glob),
        ("lt", OpName::Lt),
        ("le", OpName::Le),
        ("gt", OpName::Gt),
        ("ge", OpName::Ge),
        ("before", OpName::Before),
        ("after", OpName::After),
        ("time_of_day", OpName::TimeOfDay),
        ("weekday", OpName::Weekday),
        ("cidr", OpName::Cidr),
        ("exists", OpName::Exists),
        ("is_true", OpName::IsTrue),
    ];

    pub fn parse(name: &str) -> Option<OpName> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, op)| *op)
    }

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, op)| *op == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }
}

/// One entry of a policy's `conditions`, or of a guard's `assuming`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionDoc {
    pub pos: Pos,
    pub path: At<String>,
    pub op: At<OpName>,
    /// `None` when `values` was not written.
    pub values: Option<At<Vec<At<Scalar>>>>,
    pub negate: bool,
    pub zone: Option<At<String>>,
}

/// `kind: Policy`.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDoc {
    pub origin: Origin,
    pub id: At<String>,
    pub description: Option<String>,
    pub effect: Effect,
    pub actions: Vec<At<String>>,
    pub resources: Vec<At<String>>,
    pub conditions: Vec<ConditionDoc>,
}

/// One key of a principal selector: a scalar value or a list of alternatives.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectorEntry {
    pub key: At<String>,
    pub values: Vec<At<Scalar>>,
}

/// `kind: PolicyAttachment`.
#[derive(Debug, Clone, PartialEq)]
pub struct AttachmentDoc {
    pub origin: Origin,
    pub id: At<String>,
    pub policy: At<String>,
    pub selector: Vec<SelectorEntry>,
}

/// `kind: Group`.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupDoc {
    pub origin: Origin,
    pub name: At<String>,
    pub system: bool,
    pub members: Vec<At<String>>,
}

/// One `must_allow` entry of a guard: the cross product of its actions and resources must stay allowed.
#[derive(Debug, Clone, PartialEq)]
pub struct MustAllow {
    pub pos: Pos,
    pub actions: Vec<At<String>>,
    pub resources: Vec<At<String>>,
}

/// The principal a guard protects.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardPrincipal {
    pub pos: Pos,
    pub id: At<String>,
    pub groups: Vec<At<String>>,
}

/// `kind: LockoutGuard`.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardDoc {
    pub origin: Origin,
    pub id: At<String>,
    pub description: Option<String>,
    pub principal: GuardPrincipal,
    pub must_allow: Vec<MustAllow>,
    pub assuming: Vec<ConditionDoc>,
}

/// One route of an `HttpMapping`: method and path template to action and resource URI.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteDoc {
    pub pos: Pos,
    /// Upper-case methods; empty = any method (`method: "*"` or not written).
    pub methods: Vec<At<String>>,
    /// `/v1/keys/{name}`: literal segments and `{var}` captures of one segment.
    pub path: At<String>,
    /// Text with `{var}` references to the path's captures.
    pub action: At<String>,
    pub resource: Option<At<String>>,
}

/// Where the principal of an HTTP request comes from when it carries no bearer token.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MappingPrincipalDoc {
    pub pos: Pos,
    /// The mTLS peer principal (ext_authz `source.principal`).
    pub mtls: bool,
    /// A trusted header holding the principal id (set by a proxy that authenticated the caller).
    pub header: Option<At<String>>,
    /// A trusted header holding the groups, comma-separated.
    pub groups_header: Option<At<String>>,
}

/// `kind: HttpMapping`: how the HTTP doors (ext_authz, forward-auth) turn an HTTP request into a request.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpMappingDoc {
    pub origin: Origin,
    pub id: At<String>,
    pub principal: Option<MappingPrincipalDoc>,
    pub routes: Vec<RouteDoc>,
}

/// Every document of a policy set, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicySetDoc {
    pub policies: Vec<Arc<PolicyDoc>>,
    pub attachments: Vec<Arc<AttachmentDoc>>,
    pub groups: Vec<Arc<GroupDoc>>,
    pub guards: Vec<GuardDoc>,
    pub mappings: Vec<HttpMappingDoc>,
    /// What documents left out for errors still tell validation.
    pub incomplete: Incomplete,
    /// `kind: TestSuite` documents, read by the same parser. The loader builds snapshots without them; `arbiter
    /// check` and `arbiter test` read them.
    pub suites: Vec<TestSuiteDoc>,
    /// The problems found in TestSuite documents, apart: they never make a policy set invalid for `serve`.
    pub suite_diags: crate::diag::Diagnostics,
}

/// A `kind: TestSuite` document.
#[derive(Debug, Clone, PartialEq)]
pub struct TestSuiteDoc {
    pub origin: Origin,
    pub name: At<String>,
    /// The instant for tests that set no `environment.time`.
    pub now: Option<crate::moment::Moment>,
    pub tests: Vec<TestDoc>,
}

/// One test of a suite, its request already validated.
#[derive(Debug, Clone, PartialEq)]
pub struct TestDoc {
    pub pos: Pos,
    pub name: At<String>,
    pub request: crate::request::Request,
    /// `expect: allow` (true) or `deny`.
    pub expect_allow: bool,
    /// `expect_reason`: one of the reasons evaluation gives.
    pub expect_reason: Option<At<String>>,
    /// `expect_policies`: the determining policy ids, in any order.
    pub expect_policies: Option<Vec<At<String>>>,
}

/// Documents left out of a set because of errors in them. Validation still reads what they name, so that it
/// reports their other mistakes too, and no false ones on their account.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Incomplete {
    /// Ids of policies left out, where each is written: an attachment naming one is not also told that the
    /// policy does not exist, and a duplicate of one is still reported.
    pub policy_ids: Vec<(Origin, At<String>)>,
    /// Attachments left out (say, for a missing `principal_selector`): the policy each names is still checked.
    pub attachments: Vec<IncompleteAttachment>,
    /// Policies left out for a bad `id` or `effect`, with what could be read of the rest: their actions,
    /// resources and conditions are still compiled for their diagnostics (never into a snapshot).
    pub policies: Vec<PolicyDoc>,
    /// Files with a YAML error: documents after it were not read, so what they define is unknown.
    pub unparsed: Vec<Arc<Path>>,
}

/// An attachment left out for errors, with what it names.
#[derive(Debug, Clone, PartialEq)]
pub struct IncompleteAttachment {
    pub origin: Origin,
    /// The id as written; `None` when it was missing or not a string.
    pub id: Option<At<String>>,
    pub policy: At<String>,
}

impl PolicySetDoc {
    /// Adds the documents of `other` after these.
    pub fn append(&mut self, mut other: PolicySetDoc) {
        self.policies.append(&mut other.policies);
        self.attachments.append(&mut other.attachments);
        self.groups.append(&mut other.groups);
        self.guards.append(&mut other.guards);
        self.mappings.append(&mut other.mappings);
        self.incomplete
            .policy_ids
            .append(&mut other.incomplete.policy_ids);
        self.incomplete
            .attachments
            .append(&mut other.incomplete.attachments);
        self.incomplete
            .policies
            .append(&mut other.incomplete.policies);
        self.incomplete
            .unparsed
            .append(&mut other.incomplete.unparsed);
        self.suites.append(&mut other.suites);
        self.suite_diags.extend(other.suite_diags);
    }
}
