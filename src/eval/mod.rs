//! The decision: superuser rule, candidate lookup through the index, three-valued conditions, deny overrides.
//!
//! Evaluation is pure and synchronous: it reads a snapshot and a validated request, takes "now" as an argument
//! for requests without a time, does no I/O, and cannot fail. Anything it cannot decide is a DENY with a reason.

use std::net::IpAddr;
use std::sync::Arc;

use crate::moment::Moment;
use serde::Serialize;
use serde_json::Value;
use smallvec::SmallVec;

use crate::ast::Effect;
use crate::attr::{Attr, Shape};
use crate::ir::condition::{Cmp, Condition, Lit, NumArg, Op, Operand, TimeArg};
use crate::ir::path::{AttrPath, Field, Part, Segment, Target};
use crate::ir::{Policy, Selector, SelectorKey};
use crate::request::{parse_rfc3339, Request, RequestError};
use crate::request_ref::{RequestRef, RequestView};
use crate::snapshot::Snapshot;

mod explain;

pub use explain::{
    CandidateExplanation, ConditionExplanation, Explanation, NearMiss, ReferenceExplanation,
    MAX_NEAR_MISSES,
};

/// Why a decision came out as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The principal is the superuser: always allowed.
    Superuser,
    /// An allow held and no deny applied.
    Allowed,
    /// A deny held or was undetermined.
    Denied,
    /// No policy applied (or an allow was undetermined by a missing attribute).
    NoApplicablePolicy,
    /// A fault (a value of the wrong type) decided it: fail closed.
    Error,
    /// The request's token failed verification; no policy was evaluated. Set by the doors, never by evaluation.
    Unauthenticated,
}

impl Reason {
    /// The contract's name: `superuser`, `allowed`, `denied`, `no_applicable_policy`, `error` or
    /// `unauthenticated`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Superuser => "superuser",
            Reason::Allowed => "allowed",
            Reason::Denied => "denied",
            Reason::NoApplicablePolicy => "no_applicable_policy",
            Reason::Error => "error",
            Reason::Unauthenticated => "unauthenticated",
        }
    }
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// ALLOW (`true`) or DENY.
    pub allowed: bool,
    /// Why.
    pub reason: Reason,
    /// The determining policy ids, sorted: the denies that applied, the allows that held, or `superuser`.
    pub policies: Vec<Arc<str>>,
    /// Allows that matched but were undetermined (a missing attribute or reference, or a fault), sorted: they
    /// granted nothing, and name what a caller may have forgotten to send. Empty when none were.
    pub undetermined_allow: Vec<Arc<str>>,
    /// Every candidate policy and condition, when asked for ([`crate::Engine::explain`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explanation>,
}

impl Decision {
    /// `allow` or `deny`.
    pub fn decision_str(&self) -> &'static str {
        if self.allowed {
            "allow"
        } else {
            "deny"
        }
    }
}

/// Per-call evaluation settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct EvalOptions<'a> {
    /// The principal id that is always allowed; `None` switches the rule off (the simulator does).
    pub superuser: Option<&'a str>,
    /// Collect an [`Explanation`].
    pub explain: bool,
}

/// The three values of a condition or policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Truth {
    /// Holds.
    True,
    /// Does not hold.
    False,
    /// Missing attribute or reference.
    Unknown,
    /// Wrong type for the operator.
    Fault,
}

impl Truth {
    /// `true`, `false`, `unknown` or `fault`.
    pub fn as_str(self) -> &'static str {
        match self {
            Truth::True => "true",
            Truth::False => "false",
            Truth::Unknown => "unknown",
            Truth::Fault => "fault",
        }
    }
    fn negate(self) -> Truth {
        match self {
            Truth::True => Truth::False,
            Truth::False => Truth::True,
            other => other,
        }
    }
    fn from_bool(b: bool) -> Truth {
        if b {
            Truth::True
        } else {
            Truth::False
        }
    }
}

/// How a policy came out for a request whose action and resource it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyOutcome {
    /// Every condition held.
    Holds,
    /// Some condition was false.
    DoesNotHold,
    /// Some condition unknown, none false; `fault` when a condition faulted.
    Undetermined {
        /// A condition faulted (rather than missing an attribute).
        fault: bool,
    },
}

/// Decides one request against one snapshot.
pub fn evaluate(
    snapshot: &Snapshot,
    request: &Request,
    now: impl Into<Moment>,
    options: &EvalOptions,
) -> Decision {
    evaluate_view(snapshot, request.into(), now.into(), options)
}

/// Decides one borrowed request against one snapshot, after the checks every door applies (the error names the
/// field at fault).
pub fn evaluate_ref(
    snapshot: &Snapshot,
    request: &RequestRef<'_>,
    now: impl Into<Moment>,
    options: &EvalOptions,
) -> Result<Decision, RequestError> {
    Ok(evaluate_view(snapshot, request.view()?, now.into(), options))
}

/// Decides one checked request, owned or borrowed.
pub(crate) fn evaluate_view(
    snapshot: &Snapshot,
    request: RequestView<'_>,
    now: Moment,
    options: &EvalOptions,
) -> Decision {
    if options.superuser == Some(request.principal_id) {
        return Decision {
            allowed: true,
            reason: Reason::Superuser,
            policies: vec![Arc::from(crate::validate::RESERVED_POLICY_ID)],
            undetermined_allow: Vec::new(),
            explanation: options.explain.then(|| Explanation {
                superuser: true,
                ..Explanation::default()
            }),
        };
    }
    let compiled = &snapshot.compiled;
    let groups = effective_groups(request, &compiled.membership);
    let ctx = Ctx {
        request,
        groups: &groups,
        time: request.time.unwrap_or(now),
    };

    // Candidates: policies attached to this principal whose action and resource patterns match.
    let uri = request.uri.unwrap_or("");
    let mut candidates: SmallVec<[u32; 16]> = SmallVec::new();
    compiled
        .index
        .candidates(request.principal_id, &groups, uri, |entry| {
            if candidates.contains(&entry.policy) {
                return;
            }
            let policy = &compiled.policies[entry.policy as usize];
            if policy.resources[entry.resource as usize].matches(uri)
                && policy.matches_action(request.action)
                && selector_matches(
                    &compiled.attachments[entry.attachment as usize].selector,
                    &ctx,
                )
            {
                candidates.push(entry.policy);
            }
        });
    candidates.sort_unstable();
    let mut decision = decide(
        candidates.iter().map(|&i| &compiled.policies[i as usize]),
        &ctx,
        options.explain,
    );
    if let Some(explanation) = decision.explanation.as_mut() {
        let (near, omitted) = explain::near_misses(compiled, &ctx, uri, &candidates);
        explanation.near_misses = near;
        explanation.near_misses_omitted = omitted;
    }
    decision
}

/// Combines the outcomes of the candidate policies (sorted by id) with deny overrides.
fn decide<'p>(candidates: impl Iterator<Item = &'p Policy>, ctx: &Ctx, explain: bool) -> Decision {
    let mut explanation = explain.then(|| Explanation {
        principal_groups: ctx.groups.iter().map(|g| g.to_string()).collect(),
        ..Explanation::default()
    });
    let mut denies: Vec<Arc<str>> = Vec::new();
    let mut allows: Vec<Arc<str>> = Vec::new();
    let mut undetermined_allow: Vec<Arc<str>> = Vec::new();
    let (mut deny_held, mut deny_fault, mut allow_fault) = (false, false, false);
    for policy in candidates {
        let outcome = policy_outcome(policy, ctx, explanation.as_mut());
        match (policy.effect, outcome) {
            (Effect::Deny, PolicyOutcome::Holds) => {
                deny_held = true;
                denies.push(policy.id.clone());
            }
            (Effect::Deny, PolicyOutcome::Undetermined { fault }) => {
                deny_fault |= fault;
                denies.push(policy.id.clone());
            }
            (Effect::Allow, PolicyOutcome::Holds) => allows.push(policy.id.clone()),
            (Effect::Allow, PolicyOutcome::Undetermined { fault }) => {
                allow_fault |= fault;
                undetermined_allow.push(policy.id.clone());
            }
            (_, PolicyOutcome::DoesNotHold) => {}
        }
    }
    let (allowed, reason, policies) = if !denies.is_empty() {
        let reason = if !deny_held && deny_fault {
            Reason::Error
        } else {
            Reason::Denied
        };
        (false, reason, denies)
    } else if !allows.is_empty() {
        (true, Reason::Allowed, allows)
    } else if allow_fault {
        (false, Reason::Error, Vec::new())
    } else {
        (false, Reason::NoApplicablePolicy, Vec::new())
    };
    if let Some(e) = explanation.as_mut() {
        e.undetermined_allow.clone_from(&undetermined_allow);
    }
    Decision {
        allowed,
        reason,
        policies,
        undetermined_allow,
        explanation,
    }
}

fn policy_outcome(
    policy: &Policy,
    ctx: &Ctx,
    explanation: Option<&mut Explanation>,
) -> PolicyOutcome {
    let mut unknown = false;
    let mut fault = false;
    let mut any_false = false;
    let mut details = Vec::new();
    let explaining = explanation.is_some();
    for condition in policy.conditions.iter() {
        let truth = eval_condition(condition, ctx);
        if explaining {
            details.push(explain::condition(policy, condition, ctx, truth));
        }
        match truth {
            Truth::True => {}
            Truth::False => {
                any_false = true;
                if !explaining {
                    break;
                }
            }
            Truth::Unknown => unknown = true,
            Truth::Fault => {
                unknown = true;
                fault = true;
            }
        }
    }
    let outcome = if any_false {
        PolicyOutcome::DoesNotHold
    } else if unknown {
        PolicyOutcome::Undetermined { fault }
    } else {
        PolicyOutcome::Holds
    };
    if let Some(e) = explanation {
        e.candidates.push(CandidateExplanation {
            policy: policy.id.clone(),
            effect: policy.effect.as_str(),
            location: explain::location(&policy.origin),
            outcome: match outcome {
                PolicyOutcome::Holds => Truth::True,
                PolicyOutcome::DoesNotHold => Truth::False,
                PolicyOutcome::Undetermined { fault: false } => Truth::Unknown,
                PolicyOutcome::Undetermined { fault: true } => Truth::Fault,
            },
            conditions: details,
        });
    }
    outcome
}

/// The request's groups united with the directory's groups for this principal.
pub(crate) fn effective_groups<'a>(
    request: RequestView<'a>,
    membership: &'a crate::ir::FastMap<Arc<str>, Box<[Arc<str>]>>,
) -> SmallVec<[&'a str; 8]> {
    let mut groups: SmallVec<[&str; 8]> = request.groups.iter().collect();
    if let Some(extra) = membership.get(request.principal_id) {
        for g in extra.iter() {
            if !groups.contains(&&**g) {
                groups.push(g);
            }
        }
    }
    groups
}

/// What conditions read from.
pub struct Ctx<'a> {
    pub request: RequestView<'a>,
    pub groups: &'a [&'a str],
    pub time: Moment,
}

/// A resolved attribute.
#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    /// An attribute's value, or a literal boolean.
    Attr(Attr<'a>),
    Str(&'a str),
    Num(f64),
    Time(Moment),
    /// `environment.source_ip`: the address and its text as sent.
    Ip(IpAddr, &'a str),
    Groups(&'a [&'a str]),
}

/// One scalar element of a resolved attribute or value list.
#[derive(Debug, Clone, Copy)]
enum Sc<'a> {
    Str(&'a str),
    Num(f64),
    Bool(bool),
    Time(Moment),
    /// An IP with its text: an address to `cidr` and `equals`, text to the string operators.
    Ip(IpAddr, &'a str),
    /// A nested list or map: equal to nothing, and a fault for typed operators.
    Composite,
}

impl<'a> Val<'a> {
    fn is_list(&self) -> bool {
        match self {
            Val::Groups(_) => true,
            Val::Attr(a) => a.is_list(),
            _ => false,
        }
    }

    /// Calls `f` on each element (each list item, or the value itself); stops when `f` returns true.
    fn any_element(&self, mut f: impl FnMut(Sc<'a>) -> bool) -> bool {
        match *self {
            Val::Attr(a) if a.is_list() => a.items().any(|v| f(attr_scalar(v))),
            Val::Groups(g) => g.iter().any(|s| f(Sc::Str(s))),
            Val::Attr(a) => f(attr_scalar(a)),
            Val::Str(s) => f(Sc::Str(s)),
            Val::Num(n) => f(Sc::Num(n)),
            Val::Time(t) => f(Sc::Time(t)),
            Val::Ip(ip, text) => f(Sc::Ip(ip, text)),
        }
    }

    fn as_scalar(&self) -> Sc<'a> {
        match *self {
            Val::Attr(a) => attr_scalar(a),
            Val::Str(s) => Sc::Str(s),
            Val::Num(n) => Sc::Num(n),
            Val::Time(t) => Sc::Time(t),
            Val::Ip(ip, text) => Sc::Ip(ip, text),
            Val::Groups(_) => Sc::Composite,
        }
    }
}

fn attr_scalar(v: Attr<'_>) -> Sc<'_> {
    match v.shape() {
        Shape::Str(s) => Sc::Str(s),
        Shape::Num(n) => n.map(Sc::Num).unwrap_or(Sc::Composite),
        Shape::Bool(b) => Sc::Bool(b),
        Shape::Null | Shape::List | Shape::Map => Sc::Composite,
    }
}

fn lit_scalar(l: &Lit) -> Sc<'_> {
    match l {
        Lit::Str(s) => Sc::Str(s),
        Lit::Num(n) => Sc::Num(*n),
        Lit::Bool(b) => Sc::Bool(*b),
    }
}

/// Equality with no coercion between types; IPs and instants compare by value with their text forms.
fn sc_eq(a: Sc, b: Sc) -> bool {
    match (a, b) {
        (Sc::Str(x), Sc::Str(y)) => x == y,
        (Sc::Num(x), Sc::Num(y)) => x == y,
        (Sc::Bool(x), Sc::Bool(y)) => x == y,
        (Sc::Time(x), Sc::Time(y)) => x == y,
        (Sc::Ip(x, _), Sc::Ip(y, _)) => x.to_canonical() == y.to_canonical(),
        (Sc::Ip(ip, _), Sc::Str(s)) | (Sc::Str(s), Sc::Ip(ip, _)) => s
            .parse::<IpAddr>()
            .is_ok_and(|p| p.to_canonical() == ip.to_canonical()),
        (Sc::Time(t), Sc::Str(s)) | (Sc::Str(s), Sc::Time(t)) => parse_rfc3339(s) == Some(t),
        _ => false,
    }
}

fn sc_time(s: Sc) -> Option<Moment> {
    match s {
        Sc::Time(t) => Some(t),
        Sc::Str(s) => parse_rfc3339(s),
        _ => None,
    }
}

fn sc_ip(s: Sc) -> Option<IpAddr> {
    match s {
        Sc::Ip(ip, _) => Some(ip.to_canonical()),
        Sc::Str(s) => s.parse::<IpAddr>().ok().map(|ip| ip.to_canonical()),
        _ => None,
    }
}

impl<'a> Ctx<'a> {
    /// Resolves a path; `None` when absent (JSON `null` included).
    fn resolve(&self, path: &AttrPath) -> Option<Val<'a>> {
        let r = &self.request;
        match &path.target {
            Target::Field(f) => match f {
                Field::PrincipalId => Some(Val::Str(r.principal_id)),
                Field::PrincipalGroups => Some(Val::Groups(self.groups)),
                Field::Action => Some(Val::Str(r.action)),
                Field::ResourceUri => r.uri.map(Val::Str),
                Field::ResourceOwner => r.owner.map(Val::Str),
                Field::EnvironmentTime => Some(Val::Time(self.time)),
                Field::EnvironmentSourceIp => r.source_ip.map(|(addr, text)| Val::Ip(addr, text)),
                Field::EnvironmentPort => r.port.map(|p| Val::Num(p as f64)),
            },
            Target::Attribute { part, segments } => {
                let map = match part {
                    Part::Principal => r.principal_attributes,
                    Part::Resource => r.resource_attributes,
                    Part::Environment => r.environment_attributes,
                };
                walk(map?, segments, r.action).map(Val::Attr)
            }
        }
    }
}

/// The value of a `${...}` reference as the query plan substitutes it: a plain JSON value (strings, numbers,
/// booleans and lists of them, the groups included), or a typed field that compares by value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bound {
    Json(Value),
    Time(Moment),
    /// `environment.source_ip`: the address and its text.
    Ip(IpAddr, String),
}

/// Resolves `path` for the query plan; `None` when absent.
pub(crate) fn bind(path: &AttrPath, ctx: &Ctx) -> Option<Bound> {
    Some(match ctx.resolve(path)? {
        Val::Attr(a) => Bound::Json(a.to_json()),
        Val::Str(s) => Bound::Json(Value::String(s.to_string())),
        Val::Num(n) => {
            Bound::Json(serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number))
        }
        Val::Time(t) => Bound::Time(t),
        Val::Ip(ip, text) => Bound::Ip(ip, text.to_string()),
        Val::Groups(g) => Bound::Json(Value::Array(
            g.iter().map(|s| Value::String(s.to_string())).collect(),
        )),
    })
}

fn walk<'a>(map: Attr<'a>, segments: &[Segment], action: &str) -> Option<Attr<'a>> {
    walk_keys(
        map,
        segments.iter().map(|s| match s {
            Segment::Name(n) => &**n,
            Segment::Action => action,
        }),
    )
}

/// Walks nested maps key by key; `None` when a key is missing, a step is not a map, or the value is `null`.
fn walk_keys<'a, 'k>(map: Attr<'a>, mut keys: impl Iterator<Item = &'k str>) -> Option<Attr<'a>> {
    let mut value = map.get(keys.next()?)?;
    for key in keys {
        value = value.get(key)?;
    }
    (value.shape() != Shape::Null).then_some(value)
}

/// The values of an operand list, resolved: `Err(Truth)` when a reference is missing or unusable.
fn resolve_operands<'a>(
    operands: &'a [Operand],
    ctx: &Ctx<'a>,
) -> Result<SmallVec<[Val<'a>; 4]>, Truth> {
    let mut out = SmallVec::new();
    let mut fault = false;
    for o in operands {
        match o {
            Operand::Lit(Lit::Str(s)) => out.push(Val::Str(s)),
            Operand::Lit(Lit::Num(n)) => out.push(Val::Num(*n)),
            Operand::Lit(Lit::Bool(b)) => out.push(Val::Attr(Attr::Json(if *b { &TRUE } else { &FALSE }))),
            Operand::Ref(p) => match ctx.resolve(p) {
                // Missing is decided before type, whatever the order of the values.
                None => return Err(Truth::Unknown),
                Some(Val::Attr(a)) if a.is_map() => fault = true,
                Some(v) => out.push(v),
            },
        }
    }
    if fault {
        return Err(Truth::Fault);
    }
    Ok(out)
}

static TRUE: Value = Value::Bool(true);
static FALSE: Value = Value::Bool(false);

/// Any element of any value, for operands already resolved.
fn any_value_element<'a>(values: &[Val<'a>], mut f: impl FnMut(Sc<'a>) -> bool) -> bool {
    values.iter().any(|v| v.any_element(&mut f))
}

/// Evaluates one condition to true, false, unknown or fault. Precedence: a missing attribute, then a missing
/// `${...}` reference, make it unknown; only when everything is present can a wrong type make it a fault.
pub fn eval_condition(condition: &Condition, ctx: &Ctx) -> Truth {
    let attr = ctx.resolve(&condition.path);
    let truth = match (&condition.op, attr) {
        (Op::Exists, attr) => Truth::from_bool(attr.is_some()),
        (_, None) => Truth::Unknown,
        (op, Some(attr)) => eval_op(op, attr, ctx),
    };
    if condition.negate {
        truth.negate()
    } else {
        truth
    }
}

fn eval_op<'a>(op: &'a Op, attr: Val<'a>, ctx: &Ctx<'a>) -> Truth {
    match op {
        Op::Exists => Truth::True,
        Op::IsTrue => match attr.as_scalar() {
            Sc::Bool(b) => Truth::from_bool(b),
            _ => Truth::Fault,
        },
        Op::Equals(operands) => {
            let values = match resolve_operands(operands, ctx) {
                Ok(v) => v,
                Err(t) => return t,
            };
            if matches!(attr, Val::Attr(a) if a.is_map()) {
                return Truth::Fault;
            }
            Truth::from_bool(attr.any_element(|a| any_value_element(&values, |v| sc_eq(a, v))))
        }
        Op::ContainsAll(operands) => {
            let values = match resolve_operands(operands, ctx) {
                Ok(v) => v,
                Err(t) => return t,
            };
            if !attr.is_list() {
                return Truth::Fault;
            }
            // Every value element must be held: "not any value element is missing".
            let missing = any_value_element(&values, |v| !attr.any_element(|a| sc_eq(a, v)));
            Truth::from_bool(!missing)
        }
        Op::StartsWith(operands) | Op::EndsWith(operands) => {
            let starts = matches!(op, Op::StartsWith(_));
            let values = match resolve_operands(operands, ctx) {
                Ok(v) => v,
                Err(t) => return t,
            };
            let mut fault = false;
            let mut check_value = |s: &str, v: Sc| match v {
                Sc::Str(p) | Sc::Ip(_, p) => {
                    if starts {
                        s.starts_with(p)
                    } else {
                        s.ends_with(p)
                    }
                }
                _ => {
                    fault = true;
                    false
                }
            };
            string_match(attr, |s| any_value_element(&values, |v| check_value(s, v)))
                .or_fault(fault)
        }
        Op::Glob(globs) => string_match(attr, |s| globs.iter().any(|g| g.matches(s))),
        Op::Compare(cmp, arg) => {
            let b = match arg {
                NumArg::Num(n) => Sc::Num(*n),
                NumArg::Ref(p) => match ctx.resolve(p) {
                    None => return Truth::Unknown,
                    Some(v) => v.as_scalar(),
                },
            };
            let (Sc::Num(a), Sc::Num(b)) = (attr.as_scalar(), b) else {
                return Truth::Fault;
            };
            Truth::from_bool(match cmp {
                Cmp::Lt => a < b,
                Cmp::Le => a <= b,
                Cmp::Gt => a > b,
                Cmp::Ge => a >= b,
            })
        }
        Op::Before(arg) | Op::After(arg) => {
            let b = match arg {
                TimeArg::At(t) => Some(*t),
                TimeArg::Ref(p) => match ctx.resolve(p) {
                    None => return Truth::Unknown,
                    Some(v) => sc_time(v.as_scalar()),
                },
            };
            let (Some(a), Some(b)) = (sc_time(attr.as_scalar()), b) else {
                return Truth::Fault;
            };
            Truth::from_bool(if matches!(op, Op::Before(_)) {
                a < b
            } else {
                a > b
            })
        }
        Op::TimeOfDay(windows, zone) => {
            let Some(t) = sc_time(attr.as_scalar()) else {
                return Truth::Fault;
            };
            let second = t.local(zone).second_of_day;
            Truth::from_bool(windows.iter().any(|w| w.contains(second)))
        }
        Op::Weekday(mask, zone) => {
            let Some(t) = sc_time(attr.as_scalar()) else {
                return Truth::Fault;
            };
            let day = t.local(zone).weekday;
            Truth::from_bool(mask & (1 << day) != 0)
        }
        Op::Cidr(nets) => {
            let Some(ip) = sc_ip(attr.as_scalar()) else {
                return Truth::Fault;
            };
            Truth::from_bool(nets.iter().any(|n| n.contains(&ip)))
        }
    }
}

trait OrFault {
    fn or_fault(self, fault: bool) -> Truth;
}

impl OrFault for Truth {
    /// A non-true outcome becomes a fault when an operand had the wrong type.
    fn or_fault(self, fault: bool) -> Truth {
        match self {
            Truth::False if fault => Truth::Fault,
            t => t,
        }
    }
}

/// String operators: a string matches directly; a list matches when any string element does. Any element that
/// is not a string, with no element matching, is a fault.
fn string_match(attr: Val, mut f: impl FnMut(&str) -> bool) -> Truth {
    let mut fault = false;
    let hit = attr.any_element(|e| match e {
        Sc::Str(s) | Sc::Ip(_, s) => f(s),
        _ => {
            fault = true;
            false
        }
    });
    Truth::from_bool(hit).or_fault(fault)
}

/// True when the principal satisfies every key of the selector.
pub(crate) fn selector_matches(selector: &Selector, ctx: &Ctx) -> bool {
    selector.tests.iter().all(|test| match &test.key {
        SelectorKey::Id => test
            .values
            .iter()
            .any(|v| sc_eq(Sc::Str(ctx.request.principal_id), lit_scalar(v))),
        SelectorKey::Groups => test
            .values
            .iter()
            .any(|v| ctx.groups.iter().any(|g| sc_eq(Sc::Str(g), lit_scalar(v)))),
        SelectorKey::Claim(path) => claim_matches(path, &test.values, ctx),
    })
}

/// One selector test on a claim: the claim at `path` (dots walk nested maps) equals one of `values`, or, as a
/// list, holds one of them. A missing claim never matches.
pub(crate) fn claim_matches(path: &[Box<str>], values: &[Lit], ctx: &Ctx) -> bool {
    let claims = ctx.request.principal_attributes;
    match claims.and_then(|m| walk_keys(m, path.iter().map(|s| &**s))) {
        None => false,
        Some(v) => Val::Attr(v).any_element(|a| values.iter().any(|l| sc_eq(a, lit_scalar(l)))),
    }
}
