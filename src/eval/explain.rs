//! `--explain`: for every candidate policy, what each condition read (the resolved value, or why there was
//! none), the values it compared against after `${...}` substitution, its zone and outcome, and where the
//! policy and condition are written; plus the attachments that almost applied.
//!
//! Built only when a caller asks for it: the plain decision path never enters this module, so what it
//! allocates costs nothing to ordinary calls.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};

use crate::attr::Shape;

use super::{sc_ip, sc_time, selector_matches, Ctx, Sc, Truth, Val};
use crate::ast::Origin;
use crate::diag::Pos;
use crate::ir::condition::{Condition, Lit, NumArg, Op, Operand, TimeArg};
use crate::ir::{Compiled, Policy, Selector, SelectorKey};

/// Most near misses listed in one explanation; the rest are counted in `near_misses_omitted`.
pub const MAX_NEAR_MISSES: usize = 10;

/// `--explain`: every candidate policy and every condition, and the attachments that almost applied.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Explanation {
    /// The principal is the superuser: always allowed, no policy evaluated (every list is then empty).
    pub superuser: bool,
    /// The principal's groups, the directory's included.
    pub principal_groups: Vec<String>,
    /// The policies attached to the principal whose actions and resources matched, sorted by id.
    pub candidates: Vec<CandidateExplanation>,
    /// Allows that matched but whose conditions were undetermined (a missing attribute or a fault): they
    /// granted nothing.
    pub undetermined_allow: Vec<Arc<str>>,
    /// Attachments that almost applied: the selector matched but not the action or the resource, or the
    /// action and resource matched but not the selector. Allows first, then denies; each by policy, then
    /// attachment.
    pub near_misses: Vec<NearMiss>,
    /// How many more near misses there were than [`MAX_NEAR_MISSES`].
    pub near_misses_omitted: usize,
}

/// One candidate policy in an [`Explanation`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CandidateExplanation {
    /// The policy id.
    pub policy: Arc<str>,
    /// `allow` or `deny`.
    pub effect: &'static str,
    /// Where the policy is written, `file:line:col`.
    pub location: String,
    /// The policy's three-valued outcome, on the same scale as its conditions': `true` (every condition
    /// held), `false` (one did not), `unknown` (none false, one unknown) or `fault` (none false, one faulted).
    pub outcome: Truth,
    /// Each condition, in order.
    pub conditions: Vec<ConditionExplanation>,
}

/// One condition in an [`Explanation`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConditionExplanation {
    /// The attribute path as written.
    pub path: String,
    /// The attribute's value in the request; `null` when it is missing.
    pub value: Value,
    /// `missing`, or `wrong type: <type>` when the operator cannot read the value; absent when it could.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The operator.
    pub op: &'static str,
    /// Whether the condition is negated.
    pub negate: bool,
    /// The values compared against, each `${...}` replaced by what it resolved to (`null` when missing).
    pub values: Vec<Value>,
    /// Each `${...}` among the values, with what it resolved to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<ReferenceExplanation>,
    /// The zone of a time operator, as written (UTC when none was).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// For `time_of_day` and `weekday`: the instant as that zone's wall clock reads it, with its weekday
    /// (`2026-11-23T18:30:00 Mon`), which is what the windows are compared with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    /// `true`, `false`, `unknown` (a missing attribute or reference) or `fault` (a wrong type), after
    /// `negate`.
    pub outcome: Truth,
    /// Where the condition is written, `file:line:col`.
    pub location: String,
}

/// One `${...}` reference among a condition's values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReferenceExplanation {
    /// The reference as written, `${...}`.
    pub reference: String,
    /// What it resolved to; `null` when missing.
    pub value: Value,
    /// `missing`, or `wrong type: <type>`; absent when usable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// An attachment that almost applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NearMiss {
    /// The policy it attaches.
    pub policy: Arc<str>,
    /// `allow` or `deny`.
    pub effect: &'static str,
    /// The attachment id.
    pub attachment: Arc<str>,
    /// What did not match: `action`, `resource` or `principal_selector`.
    pub missed: &'static str,
    /// The policy's actions (when the action missed), resources (when the resource missed) or the
    /// attachment's selector (when the selector missed), as written.
    pub wanted: Value,
    /// Where the attachment is written, `file:line:col`.
    pub location: String,
}

pub(super) fn location(origin: &Origin) -> String {
    at(origin, origin.pos)
}

fn at(origin: &Origin, pos: Pos) -> String {
    format!("{}:{}:{}", origin.file.display(), pos.line, pos.col)
}

/// Explains one condition whose outcome (after `negate`) is `truth`.
pub(super) fn condition(
    policy: &Policy,
    condition: &Condition,
    ctx: &Ctx,
    truth: Truth,
) -> ConditionExplanation {
    let attr = ctx.resolve(&condition.path);
    let mut references = Vec::new();
    let values = values(&condition.op, ctx, truth, &mut references);
    let attr_problem = match attr {
        None if !matches!(condition.op, Op::Exists) => Some("missing".to_string()),
        Some(v) if truth == Truth::Fault && !fits(&condition.op, v) => {
            Some(unreadable(&condition.op, v))
        }
        _ => None,
    };
    let local = match (&condition.op, attr) {
        (Op::TimeOfDay(_, tz) | Op::Weekday(_, tz), Some(v)) => {
            sc_time(v.as_scalar()).map(|t| t.local(tz).to_string())
        }
        _ => None,
    };
    let zone = match condition.op {
        Op::TimeOfDay(..) | Op::Weekday(..) => {
            Some(condition.zone_text.as_deref().unwrap_or("UTC").to_string())
        }
        _ => None,
    };
    ConditionExplanation {
        path: condition.path.text.to_string(),
        value: attr.map_or(Value::Null, to_json),
        problem: attr_problem,
        op: condition.op_name.as_str(),
        negate: condition.negate,
        values,
        references,
        zone,
        local,
        outcome: truth,
        location: at(&policy.origin, condition.pos),
    }
}

/// Why the operator cannot read `v`: a string that is not an instant or an IP is of the right type but
/// unreadable; anything else is of the wrong type.
fn unreadable(op: &Op, v: Val) -> String {
    let text = matches!(v, Val::Str(_)) || matches!(v, Val::Attr(a) if matches!(a.shape(), Shape::Str(_)));
    match op {
        Op::Before(_) | Op::After(_) | Op::TimeOfDay(..) | Op::Weekday(..) if text => {
            "not an RFC 3339 instant".to_string()
        }
        Op::Cidr(_) if text => "not an IP address".to_string(),
        _ => format!("wrong type: {}", type_name(v)),
    }
}

/// The condition's values, references resolved; each reference is also described in `references`, with a
/// problem when it is missing, or when it is the reason the condition faulted.
fn values(
    op: &Op,
    ctx: &Ctx,
    truth: Truth,
    references: &mut Vec<ReferenceExplanation>,
) -> Vec<Value> {
    let mut reference = |path: &crate::ir::path::AttrPath, fits: fn(Val) -> bool| {
        let value = ctx.resolve(path);
        let problem = match value {
            None => Some("missing".to_string()),
            Some(v) if truth == Truth::Fault && !fits(v) => Some(unreadable(op, v)),
            Some(_) => None,
        };
        let json = value.map_or(Value::Null, to_json);
        references.push(ReferenceExplanation {
            reference: format!("${{{}}}", path.text),
            value: json.clone(),
            problem,
        });
        json
    };
    let lit = |l: &Lit| match l {
        Lit::Str(s) => json!(&**s),
        Lit::Num(n) => number(*n),
        Lit::Bool(b) => json!(b),
    };
    match op {
        Op::Equals(operands) | Op::ContainsAll(operands) => operands
            .iter()
            .map(|o| match o {
                Operand::Lit(l) => lit(l),
                Operand::Ref(p) => reference(p, |v| !matches!(v, Val::Attr(a) if a.is_map())),
            })
            .collect(),
        Op::StartsWith(operands) | Op::EndsWith(operands) => operands
            .iter()
            .map(|o| match o {
                Operand::Lit(l) => lit(l),
                Operand::Ref(p) => reference(p, all_strings),
            })
            .collect(),
        Op::Glob(globs) => globs.iter().map(|g| json!(g.as_str())).collect(),
        Op::Compare(_, NumArg::Num(n)) => vec![number(*n)],
        Op::Compare(_, NumArg::Ref(p)) => {
            vec![reference(p, |v| matches!(v.as_scalar(), Sc::Num(_)))]
        }
        Op::Before(TimeArg::At(t)) | Op::After(TimeArg::At(t)) => vec![json!(t.to_string())],
        Op::Before(TimeArg::Ref(p)) | Op::After(TimeArg::Ref(p)) => {
            vec![reference(p, |v| sc_time(v.as_scalar()).is_some())]
        }
        Op::TimeOfDay(windows, _) => windows
            .iter()
            .map(|w| json!(format!("{}-{}", hhmm(w.start), hhmm(w.end))))
            .collect(),
        Op::Weekday(mask, _) => ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, d)| json!(d))
            .collect(),
        Op::Cidr(nets) => nets.iter().map(|n| json!(n.to_string())).collect(),
        Op::Exists | Op::IsTrue => Vec::new(),
    }
}

/// A number as it was most likely written: `1000`, not `1000.0`, when it is a whole number JSON can hold exactly.
fn number(n: f64) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if n.fract() == 0.0 && n.abs() <= EXACT {
        json!(n as i64)
    } else {
        json!(n)
    }
}

fn hhmm(second_of_day: u32) -> String {
    format!(
        "{:02}:{:02}",
        second_of_day / 3600,
        second_of_day % 3600 / 60
    )
}

fn all_strings(v: Val) -> bool {
    let mut ok = true;
    v.any_element(|e| {
        ok &= matches!(e, Sc::Str(_) | Sc::Ip(..));
        !ok
    });
    ok
}

/// Whether the operator can read the attribute value `v` (its type, not its content).
fn fits(op: &Op, v: Val) -> bool {
    match op {
        Op::Exists => true,
        Op::IsTrue => matches!(v.as_scalar(), Sc::Bool(_)),
        Op::Equals(_) => !matches!(v, Val::Attr(a) if a.is_map()),
        Op::ContainsAll(_) => v.is_list(),
        Op::StartsWith(_) | Op::EndsWith(_) | Op::Glob(_) => all_strings(v),
        Op::Compare(..) => matches!(v.as_scalar(), Sc::Num(_)),
        Op::Before(_) | Op::After(_) | Op::TimeOfDay(..) | Op::Weekday(..) => {
            sc_time(v.as_scalar()).is_some()
        }
        Op::Cidr(_) => sc_ip(v.as_scalar()).is_some(),
    }
}

fn type_name(v: Val) -> &'static str {
    match v {
        Val::Attr(a) => match a.shape() {
            Shape::Str(_) => "string",
            Shape::Num(_) => "number",
            Shape::Bool(_) => "boolean",
            Shape::List => "list",
            Shape::Map => "map",
            Shape::Null => "null",
        },
        Val::Str(_) => "string",
        Val::Num(_) => "number",
        Val::Groups(_) => "list",
        Val::Time(_) => "instant",
        Val::Ip(..) => "IP address",
    }
}

fn to_json(v: Val) -> Value {
    match v {
        Val::Attr(a) => a.to_json(),
        Val::Str(s) => json!(s),
        Val::Num(n) => number(n),
        Val::Time(t) => json!(t.to_string()),
        Val::Ip(_, text) => json!(text),
        Val::Groups(g) => json!(g),
    }
}

/// The attachments that almost applied to this request, at most [`MAX_NEAR_MISSES`] of them, and how many
/// more there were. A linear walk over the attachments: explanations are for people, not for the hot path.
/// Policies that are candidates (`candidates`, sorted indices) applied through some attachment: none of their
/// attachments is a near miss.
pub(super) fn near_misses(
    compiled: &Compiled,
    ctx: &Ctx,
    uri: &str,
    candidates: &[u32],
) -> (Vec<NearMiss>, usize) {
    let mut all = Vec::new();
    for attachment in &compiled.attachments {
        if candidates.binary_search(&attachment.policy).is_ok() {
            continue;
        }
        let policy = &compiled.policies[attachment.policy as usize];
        let selector = selector_matches(&attachment.selector, ctx);
        let action = policy.matches_action(ctx.request.action);
        let resource = policy.resources.iter().any(|r| r.matches(uri));
        let (missed, wanted) = match (selector, action, resource) {
            (true, false, true) => ("action", globs(&policy.actions)),
            (true, true, false) => ("resource", globs(&policy.resources)),
            (false, true, true) => ("principal_selector", selector_json(&attachment.selector)),
            _ => continue,
        };
        all.push(NearMiss {
            policy: policy.id.clone(),
            effect: policy.effect.as_str(),
            attachment: attachment.id.clone(),
            missed,
            wanted,
            location: location(&attachment.origin),
        });
    }
    // Allows first (what could have granted), then denies; by policy, then attachment.
    all.sort_by(|a, b| {
        (a.effect != "allow", &a.policy, &a.attachment).cmp(&(
            b.effect != "allow",
            &b.policy,
            &b.attachment,
        ))
    });
    let omitted = all.len().saturating_sub(MAX_NEAR_MISSES);
    all.truncate(MAX_NEAR_MISSES);
    (all, omitted)
}

fn globs(globs: &[crate::ir::glob::Glob]) -> Value {
    globs.iter().map(|g| json!(g.as_str())).collect()
}

fn selector_json(selector: &Selector) -> Value {
    let mut map = serde_json::Map::new();
    for test in selector.tests.iter() {
        let key = match &test.key {
            SelectorKey::Id => "id".to_string(),
            SelectorKey::Groups => "groups".to_string(),
            SelectorKey::Claim(path) => path.join("."),
        };
        let values = test
            .values
            .iter()
            .map(|l| match l {
                Lit::Str(s) => json!(&**s),
                Lit::Num(n) => number(*n),
                Lit::Bool(b) => json!(b),
            })
            .collect();
        map.insert(key, Value::Array(values));
    }
    Value::Object(map)
}

/// The explanation as indented text, as `arbiter test` prints it under a failing test.
impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.superuser {
            return writeln!(f, "superuser: always allowed, no policy evaluated");
        }
        writeln!(f, "principal groups: {:?}", self.principal_groups)?;
        if self.candidates.is_empty() {
            writeln!(f, "no candidate policy: none attached to this principal matched the action and resource")?;
        }
        for c in &self.candidates {
            writeln!(
                f,
                "{} {} ({}): {}",
                c.effect,
                c.policy,
                c.location,
                c.outcome.as_str()
            )?;
            for k in &c.conditions {
                let value = match &k.problem {
                    Some(p) => format!("{} ({p})", k.value),
                    None => k.value.to_string(),
                };
                write!(
                    f,
                    "  {}{} {} {}",
                    if k.negate { "not " } else { "" },
                    k.path,
                    k.op,
                    Value::Array(k.values.clone())
                )?;
                if let Some(zone) = &k.zone {
                    write!(f, " in {zone}")?;
                }
                let local = k.local.as_ref().map(|l| format!(" (local {l})")).unwrap_or_default();
                writeln!(
                    f,
                    ": value {value}{local} -> {} ({})",
                    k.outcome.as_str(),
                    k.location
                )?;
                for r in &k.references {
                    if let Some(p) = &r.problem {
                        writeln!(f, "    {} is {} ({p})", r.reference, r.value)?;
                    }
                }
            }
        }
        if !self.undetermined_allow.is_empty() {
            writeln!(
                f,
                "undetermined allows (granted nothing): {:?}",
                self.undetermined_allow
            )?;
        }
        for m in &self.near_misses {
            writeln!(
                f,
                "near miss: {} {} through attachment {} ({}): {} did not match {}",
                m.effect, m.policy, m.attachment, m.location, m.missed, m.wanted
            )?;
        }
        if self.near_misses_omitted > 0 {
            writeln!(f, "... and {} more near misses", self.near_misses_omitted)?;
        }
        Ok(())
    }
}
