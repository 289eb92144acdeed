//! The lockout search: for one guard, look for a request its principals could make, on an action and resource
//! it protects, that the proposed set DENIES. Every candidate is decided by the real evaluator.
//!
//! 1. Reachability: only policies attached to a guard principal (claims in selectors may vary) whose actions
//!    and resources can meet the guard's patterns take part.
//! 2. Actions and resource URIs come from real glob intersection and difference (see `witness`): one witness
//!    per cell of the guard patterns against every reachable pattern and every condition on `action` or
//!    `resource.uri` (references to pinned fields replaced by their values). A guard pattern that matches the
//!    empty string also covers a request with no URI.
//! 3. For each (principal, action, URI) cell: each reachable deny is searched on its own, over the partition of
//!    its own variables and the guard's assumptions (see `partition`); a request where it applies (holds or is
//!    undetermined) is a finding.
//! 4. When no deny can apply, allow coverage is searched depth first over the allows' variables, with
//!    three-valued partial evaluation: a branch where some allow already surely holds is pruned.
//!
//! A partition that is not provably complete, or a search past the guard's budget, is "inconclusive".

use std::collections::BTreeMap;
use std::time::Instant;

use crate::moment::Moment;
use serde::Serialize;

use super::partition::{groups, Choice, Fixed, Group, Pred, Var};
use super::witness::{witnesses, Pattern};
use crate::ast::Effect;
use crate::eval::{evaluate, Ctx, EvalOptions, Truth};
use crate::ir::condition::{Condition, Lit, Op, Operand};
use crate::ir::path::{AttrPath, Field, Segment, Target};
use crate::ir::{Guard, GuardRule, SelectorKey};
use crate::request::Request;
use crate::snapshot::Snapshot;

/// Largest number of states a witness search over actions or URIs may visit.
const WITNESS_STATES: usize = 20_000;

/// An undetermined condition of a blocking deny: which attribute, and whether it was missing or faulted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Undetermined {
    /// The deny policy.
    pub policy: String,
    /// The condition's attribute path.
    pub attribute: String,
    /// `missing` (the attribute or a `${...}` it compares with is absent) or `fault` (the wrong type).
    pub cause: &'static str,
}

/// One way a guard fails: a (principal, action, resource) cell and a request in it that is denied.
#[derive(Debug, Clone)]
pub struct Counterexample {
    /// The policies that denied (empty: no policy allows it).
    pub blocking: Vec<String>,
    pub request: Request,
    pub reason: &'static str,
    pub undetermined: Vec<Undetermined>,
}

/// What the search concluded for one guard.
#[derive(Debug, Clone, Default)]
pub struct GuardOutcome {
    /// One per blocked cell.
    pub counterexamples: Vec<Counterexample>,
    /// Set when some part of the search is not proven complete: the guard is not proven safe.
    pub inconclusive: Option<String>,
}

/// A reachable policy with the attachments that can apply to the principal.
struct Reachable {
    policy: u32,
    attachments: Vec<u32>,
}

/// The predicates of one search with their roles.
struct Plan<'a> {
    preds: Vec<Pred<'a>>,
    pred_vars: Vec<Vec<Var>>,
    assume: Vec<usize>,
    policies: Vec<PlanPolicy>,
}

struct PlanPolicy {
    /// Condition predicates.
    conditions: Vec<usize>,
    /// Per attachment that can apply: its claim-test predicates.
    attachments: Vec<Vec<usize>>,
}

#[derive(Debug, Clone, Copy)]
enum Goal {
    /// A leaf counts when this deny is among the determining policies.
    DenyApplies(u32),
    /// A leaf counts when the decision is DENY.
    AnyDeny,
}

const TRUE: u8 = Truth::True as u8;
const FALSE: u8 = Truth::False as u8;
const CLAIM_MATCH: u8 = 5;
const CLAIM_MISS: u8 = 4;

struct Search<'a> {
    snapshot: &'a Snapshot,
    as_of: Moment,
    deadline: Instant,
    assuming: &'a [Condition],
    outcome: GuardOutcome,
    out_of_time: bool,
}

/// Searches one guard against `snapshot` (the superuser rule is off), within `deadline`.
pub fn check_guard(
    snapshot: &Snapshot,
    guard: &Guard,
    as_of: Moment,
    deadline: Instant,
    superuser: Option<&str>,
) -> GuardOutcome {
    let mut search = Search {
        snapshot,
        as_of,
        deadline,
        assuming: &guard.assuming,
        outcome: GuardOutcome::default(),
        out_of_time: false,
    };
    'all: for (id, groups) in guard_principals(snapshot, guard, superuser) {
        for rule in guard.must_allow.iter() {
            search.rule(&id, &groups, rule);
            if search.out_of_time {
                break 'all;
            }
        }
    }
    search.outcome
}

/// The guard's fresh principal and every directory member of its groups (with the guard's groups). A member
/// whose id is the superuser is skipped: the superuser is always allowed, so no request of theirs is denied.
fn guard_principals(
    snapshot: &Snapshot,
    guard: &Guard,
    superuser: Option<&str>,
) -> Vec<(String, Vec<String>)> {
    let groups: Vec<String> = guard.groups.iter().map(|g| g.to_string()).collect();
    let mut out = vec![(guard.principal_id.to_string(), groups.clone())];
    for g in snapshot
        .compiled
        .groups
        .iter()
        .filter(|g| guard.groups.contains(&g.name))
    {
        for m in g.members.iter() {
            if superuser == Some(&**m) {
                continue;
            }
            if !out.iter().any(|(id, _)| **id == **m) {
                out.push((m.to_string(), groups.clone()));
            }
        }
    }
    out
}

impl<'a> Search<'a> {
    fn inconclusive(&mut self, why: String) {
        self.outcome.inconclusive.get_or_insert(why);
    }

    fn check_time(&mut self, action: &str, uri: Option<&str>) -> bool {
        if !self.out_of_time && Instant::now() > self.deadline {
            self.out_of_time = true;
            self.inconclusive(format!(
                "the search ran out of its time budget at `{action}` on `{}`",
                uri.unwrap_or("(no URI)")
            ));
        }
        self.out_of_time
    }

    fn rule(&mut self, id: &str, request_groups: &[String], rule: &GuardRule) {
        let compiled = &self.snapshot.compiled;
        // Effective groups, as the evaluator computes them.
        let mut groups: Vec<String> = request_groups.to_vec();
        if let Some(extra) = compiled.membership.get(id) {
            for g in extra.iter() {
                if !groups.iter().any(|x| **x == **g) {
                    groups.push(g.to_string());
                }
            }
        }
        // Reachability through action and resource: a policy whose patterns cannot meet the guard's (their
        // literal prefixes disagree) can never decide a guarded request.
        let meets = |ours: &[crate::ir::glob::Glob], theirs: &[crate::ir::glob::Glob]| {
            ours.iter().any(|a| {
                theirs.iter().any(|b| {
                    let (x, y) = (a.literal_prefix(), b.literal_prefix());
                    x.starts_with(y) || y.starts_with(x)
                })
            })
        };
        let reachable: Vec<Reachable> = self
            .reachable(id, &groups)
            .into_iter()
            .filter(|r| {
                let p = &compiled.policies[r.policy as usize];
                meets(&p.actions, &rule.actions) && meets(&p.resources, &rule.resources)
            })
            .collect();

        let mut action_patterns = Vec::new();
        let mut uri_patterns = Vec::new();
        for r in reachable.iter() {
            let p = &compiled.policies[r.policy as usize];
            action_patterns.extend(p.actions.iter().map(|g| Pattern::glob(g.as_str())));
            uri_patterns.extend(p.resources.iter().map(|g| Pattern::glob(g.as_str())));
        }
        // The guard's assumptions count even when no policy is reachable.
        let conditions: Vec<&Condition> = reachable
            .iter()
            .flat_map(|r| compiled.policies[r.policy as usize].conditions.iter())
            .chain(self.assuming.iter())
            .collect();
        let principal = |f: Field| -> Option<Vec<String>> {
            match f {
                Field::PrincipalId => Some(vec![id.to_string()]),
                Field::PrincipalGroups => Some(groups.clone()),
                _ => None,
            }
        };
        for c in &conditions {
            action_patterns.extend(condition_patterns(c, Field::Action, &principal));
        }
        // `resource.permissions.${action}` beside `resource.permissions.EncryptWithKey`: the action equal to a
        // literal segment makes the two paths one variable.
        let action_paths = conditions.iter().any(|c| {
            std::iter::once(&c.path)
                .chain(c.references())
                .any(has_action_segment)
        });
        if action_paths {
            for c in &conditions {
                for p in std::iter::once(&c.path).chain(c.references()) {
                    if let Target::Attribute { segments, .. } = &p.target {
                        for s in segments.iter() {
                            if let Segment::Name(n) = s {
                                action_patterns.push(Pattern::literal(n));
                            }
                        }
                    }
                }
            }
            // Selector claims are paths too (`perms.CreateKey`).
            for r in &reachable {
                for &a in &r.attachments {
                    for t in compiled.attachments[a as usize].selector.tests.iter() {
                        if let SelectorKey::Claim(path) = &t.key {
                            action_patterns.extend(path.iter().map(|n| Pattern::literal(n)));
                        }
                    }
                }
            }
        }
        // Attributes compared with the action carry their own text constraints over to it (the principal's fields
        // are known here, the URI not yet).
        self.linked(&conditions, Field::Action, &principal, &mut action_patterns);
        let actions = self.strings_of(&rule.actions, &action_patterns, false);
        let pinned = |f: Field| -> Option<Vec<String>> {
            match f {
                Field::Action => Some(actions.clone()),
                other => principal(other),
            }
        };
        for c in &conditions {
            uri_patterns.extend(condition_patterns(c, Field::ResourceUri, &pinned));
        }
        self.linked(&conditions, Field::ResourceUri, &pinned, &mut uri_patterns);
        // The empty string stands for a request with no URI, which `*` patterns reach.
        let uris = self.strings_of(&rule.resources, &uri_patterns, true);
        for action in &actions {
            for uri in &uris {
                if self.check_time(action, Some(uri)) {
                    return;
                }
                let fixed = Fixed {
                    principal_id: id.to_string(),
                    request_groups: request_groups.to_vec(),
                    groups: groups.clone(),
                    action: action.clone(),
                    uri: (!uri.is_empty()).then(|| uri.clone()),
                };
                self.cell(&fixed, &reachable);
            }
        }
    }

    /// Adds the patterns of attributes linked to `field` (see [`linked_patterns`]); inexact links are
    /// inconclusive.
    fn linked(
        &mut self,
        conditions: &[&Condition],
        field: Field,
        pinned: &dyn Fn(Field) -> Option<Vec<String>>,
        patterns: &mut Vec<Pattern>,
    ) {
        let (linked, inexact) = linked_patterns(conditions, field, pinned);
        if inexact {
            self.inconclusive(format!(
                "an attribute compared with `{}` is compared by prefix or suffix, or with a field whose values \
                 are not enumerated here",
                if field == Field::Action {
                    "action"
                } else {
                    "resource.uri"
                }
            ));
        }
        patterns.extend(linked);
    }

    fn strings_of(
        &mut self,
        universes: &[crate::ir::glob::Glob],
        patterns: &[Pattern],
        allow_empty: bool,
    ) -> Vec<String> {
        let mut unique: Vec<Pattern> = Vec::new();
        for p in patterns {
            if !unique.contains(p) {
                unique.push(p.clone());
            }
        }
        // Real names read better than the shortest string of a cell: the patterns' own literals and the action
        // vocabulary stand in for a witness when they fall in the same cell.
        let mut names: Vec<String> = unique
            .iter()
            .filter(|p| p.is_literal())
            .map(|p| p.head())
            .collect();
        if !allow_empty {
            // Actions (URIs are the ones that may be empty).
            names.extend(crate::validate::VOCABULARY.iter().map(|a| a.to_string()));
        }
        let mut out = Vec::new();
        for u in universes {
            let universe = Pattern::glob(u.as_str());
            let w = witnesses(&universe, &unique, allow_empty, WITNESS_STATES, 1);
            if !w.complete {
                self.inconclusive(format!(
                    "`{u}` meets more than {WITNESS_STATES} combinations of patterns"
                ));
            }
            for (v, s) in w.firsts() {
                // The empty string is the request with no URI: a cell of its own, never renamed.
                let named = names.iter().find(|n| {
                    !s.is_empty()
                        && !n.is_empty()
                        && universe.matches(n)
                        && unique.iter().zip(v).all(|(p, m)| p.matches(n) == *m)
                });
                let s = if let Some(n) = named {
                    n.clone()
                } else if s.is_empty() {
                    String::new()
                } else {
                    let mut all = unique.clone();
                    all.push(universe.clone());
                    let mut vector = v.to_vec();
                    vector.push(true);
                    super::partition::realistic(s, &all, &vector)
                };
                if !out.contains(&s) {
                    out.push(s);
                }
            }
        }
        out
    }

    /// Policies with an attachment whose selector can match this principal (claims may take any value).
    fn reachable(&self, id: &str, groups: &[String]) -> Vec<Reachable> {
        let compiled = &self.snapshot.compiled;
        let mut by_policy: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for (ai, a) in compiled.attachments.iter().enumerate() {
            let possible = a.selector.tests.iter().all(|t| match &t.key {
                SelectorKey::Id => t
                    .values
                    .iter()
                    .any(|v| matches!(v, Lit::Str(s) if **s == *id)),
                SelectorKey::Groups => t
                    .values
                    .iter()
                    .any(|v| matches!(v, Lit::Str(s) if groups.iter().any(|g| **g == **s))),
                SelectorKey::Claim(_) => true,
            });
            if possible {
                by_policy.entry(a.policy).or_default().push(ai as u32);
            }
        }
        by_policy
            .into_iter()
            .map(|(policy, attachments)| Reachable {
                policy,
                attachments,
            })
            .collect()
    }

    /// Builds the predicates of a search over `policies` plus the guard's assumptions.
    fn plan(&self, policies: &[&Reachable], fixed: &Fixed) -> Plan<'a> {
        let mut plan = Plan {
            preds: Vec::new(),
            pred_vars: Vec::new(),
            assume: Vec::new(),
            policies: Vec::new(),
        };
        let push = |p: Pred<'a>, plan: &mut Plan<'a>| {
            plan.pred_vars.push(p.vars(&fixed.action));
            plan.preds.push(p);
            plan.preds.len() - 1
        };
        for c in self.assuming {
            let i = push(Pred::Condition(c), &mut plan);
            plan.assume.push(i);
        }
        let snapshot: &'a Snapshot = self.snapshot;
        for r in policies {
            let policy = &snapshot.compiled.policies[r.policy as usize];
            let conditions = policy
                .conditions
                .iter()
                .map(|c| push(Pred::Condition(c), &mut plan))
                .collect();
            let attachments = r
                .attachments
                .iter()
                .map(|&a| {
                    snapshot.compiled.attachments[a as usize]
                        .selector
                        .tests
                        .iter()
                        .filter_map(|t| match &t.key {
                            SelectorKey::Claim(path) => {
                                Some(push(Pred::Claim(path, &t.values), &mut plan))
                            }
                            _ => None,
                        })
                        .collect()
                })
                .collect();
            plan.policies.push(PlanPolicy {
                conditions,
                attachments,
            });
        }
        plan
    }

    fn cell(&mut self, fixed: &Fixed, reachable: &[Reachable]) {
        let compiled = &self.snapshot.compiled;
        let uri = fixed.uri.as_deref().unwrap_or("");
        let candidates: Vec<&Reachable> = reachable
            .iter()
            .filter(|r| {
                let p = &compiled.policies[r.policy as usize];
                p.matches_action(&fixed.action) && p.matches_resource(uri)
            })
            .collect();
        // Step 3: each deny on its own.
        for r in candidates
            .iter()
            .filter(|r| compiled.policies[r.policy as usize].effect == Effect::Deny)
        {
            let plan = self.plan(&[r], fixed);
            if self.search(&plan, fixed, Goal::DenyApplies(r.policy)) || self.out_of_time {
                return;
            }
        }
        // Step 4: allow coverage, pruning branches that an allow surely covers.
        let allows: Vec<&Reachable> = candidates
            .iter()
            .copied()
            .filter(|r| compiled.policies[r.policy as usize].effect == Effect::Allow)
            .collect();
        let plan = self.plan(&allows, fixed);
        self.search(&plan, fixed, Goal::AnyDeny);
    }

    /// Depth-first search over the plan's groups; true when a counterexample was recorded.
    fn search(&mut self, plan: &Plan, fixed: &Fixed, goal: Goal) -> bool {
        let groups = groups(&plan.preds, fixed, self.as_of);
        for g in &groups {
            if let Some(why) = &g.incomplete {
                self.inconclusive(format!(
                    "at `{}` on `{}`: {why}",
                    fixed.action,
                    fixed.uri.as_deref().unwrap_or("(no URI)")
                ));
            }
        }
        let mut assigned: Vec<(Var, Choice)> = Vec::new();
        self.dfs(plan, fixed, &groups, &mut assigned, 0, goal)
    }

    fn dfs(
        &mut self,
        plan: &Plan,
        fixed: &Fixed,
        groups: &[Group],
        assigned: &mut Vec<(Var, Choice)>,
        level: usize,
        goal: Goal,
    ) -> bool {
        if self.check_time(&fixed.action, fixed.uri.as_deref()) {
            return false;
        }
        let request = fixed.request(assigned);
        // No predicate reads the time when no time was chosen: any instant from `as_of` on will do, and a whole
        // second reads better.
        let time = request
            .environment
            .time
            .unwrap_or_else(|| whole_second_from(self.as_of));
        let group_refs = fixed.group_refs();
        let ctx = Ctx {
            request: (&request).into(),
            groups: &group_refs,
            time,
        };
        let decided = |i: usize| -> Option<u8> {
            plan.pred_vars[i]
                .iter()
                .all(|v| assigned.iter().any(|(a, _)| a == v))
                .then(|| plan.preds[i].outcome(&ctx))
        };
        // Prune: the guard assumes this away.
        if plan
            .assume
            .iter()
            .any(|&i| decided(i).is_some_and(|t| t != TRUE))
        {
            return false;
        }
        match goal {
            Goal::DenyApplies(_) => {
                // The deny surely does not apply: a condition is false, or no attachment can select.
                let p = &plan.policies[0];
                if p.conditions.iter().any(|&i| decided(i) == Some(FALSE))
                    || p.attachments
                        .iter()
                        .all(|a| a.iter().any(|&i| decided(i) == Some(CLAIM_MISS)))
                {
                    return false;
                }
            }
            Goal::AnyDeny => {
                // Some allow surely holds.
                let covered = plan.policies.iter().any(|p| {
                    p.conditions.iter().all(|&i| decided(i) == Some(TRUE))
                        && p.attachments
                            .iter()
                            .any(|a| a.iter().all(|&i| decided(i) == Some(CLAIM_MATCH)))
                });
                if covered {
                    return false;
                }
            }
        }
        if level == groups.len() {
            return self.leaf(request, time, goal);
        }
        let group = &groups[level];
        for row in &group.rows {
            let before = assigned.len();
            assigned.extend(group.vars.iter().cloned().zip(row.iter().cloned()));
            let found = self.dfs(plan, fixed, groups, assigned, level + 1, goal);
            assigned.truncate(before);
            if found || self.out_of_time {
                return found;
            }
        }
        false
    }

    fn leaf(&mut self, request: Request, time: Moment, goal: Goal) -> bool {
        let mut request = request;
        request.environment.time = Some(time);
        // The counterexample must pass the same validation as `Authorize`.
        let Ok(request) = Request::from_json(request.to_json()) else {
            return false;
        };
        let options = EvalOptions {
            superuser: None,
            explain: false,
        };
        let decision = evaluate(self.snapshot, &request, time, &options);
        if decision.allowed {
            return false;
        }
        if let Goal::DenyApplies(p) = goal {
            let id = &self.snapshot.compiled.policies[p as usize].id;
            if !decision.policies.contains(id) {
                return false;
            }
        }
        // A counterexample: decided again with the explanation, which names what was missing or faulted.
        let explained = EvalOptions {
            explain: true,
            ..options
        };
        let decision = evaluate(self.snapshot, &request, time, &explained);
        let mut undetermined = Vec::new();
        if let Some(explanation) = &decision.explanation {
            for c in &explanation.candidates {
                if c.effect != "deny" || !matches!(c.outcome, Truth::Unknown | Truth::Fault) {
                    continue;
                }
                for cond in &c.conditions {
                    let cause = match cond.outcome {
                        Truth::Unknown => "missing",
                        Truth::Fault => "fault",
                        _ => continue,
                    };
                    undetermined.push(Undetermined {
                        policy: c.policy.to_string(),
                        attribute: cond.path.clone(),
                        cause,
                    });
                }
            }
        }
        self.outcome.counterexamples.push(Counterexample {
            blocking: decision.policies.iter().map(|p| p.to_string()).collect(),
            request,
            reason: decision.reason.as_str(),
            undetermined,
        });
        true
    }
}

/// The first whole second at or after `t`.
fn whole_second_from(t: Moment) -> Moment {
    if t.subsec_nanosecond() == 0 {
        return t;
    }
    Moment::from_second(t.as_second() + 1).unwrap_or(t)
}

/// The text patterns of every attribute compared with `target` (the action or the URI) through `${...}`,
/// directly or through other attributes: the target takes the attribute's value, so the attribute's cells are the
/// target's. Values of pinned fields the linked attributes are compared with count too (`action equals
/// ${resource.owner}` with `resource.owner equals ${principal.id}`). The flag is true when the cells are not
/// exact: some link is a prefix or suffix comparison and the linked attributes have text conditions, or a link
/// reaches a field whose values are not known here (`environment.source_ip`, or the URI while actions are chosen).
fn linked_patterns(
    conditions: &[&Condition],
    target: Field,
    pinned: &dyn Fn(Field) -> Option<Vec<String>>,
) -> (Vec<Pattern>, bool) {
    let is_target = |p: &AttrPath| matches!(&p.target, Target::Field(f) if *f == target);
    let key = |p: &AttrPath| -> Option<String> {
        matches!(
            &p.target,
            Target::Attribute { .. } | Target::Field(Field::ResourceOwner)
        )
        .then(|| p.text.to_string())
    };
    let mut linked: Vec<String> = Vec::new();
    let mut prefix_link = false;
    loop {
        let before = linked.len();
        for c in conditions {
            let textual = matches!(c.op, Op::StartsWith(_) | Op::EndsWith(_));
            let ends: Vec<&AttrPath> = std::iter::once(&c.path).chain(c.references()).collect();
            let touches = ends
                .iter()
                .any(|p| is_target(p) || key(p).is_some_and(|k| linked.contains(&k)));
            if !touches {
                continue;
            }
            prefix_link |= textual && ends.len() > 1;
            for p in ends {
                if let Some(k) = key(p) {
                    if !linked.contains(&k) {
                        linked.push(k);
                    }
                }
            }
        }
        if linked.len() == before {
            break;
        }
    }
    let mut out = Vec::new();
    let mut unknown_field = false;
    for c in conditions {
        let ends: Vec<&AttrPath> = std::iter::once(&c.path).chain(c.references()).collect();
        let on_linked = |p: &AttrPath| key(p).is_some_and(|k| linked.contains(&k));
        if !ends.iter().any(|p| on_linked(p)) {
            continue;
        }
        // Other fixed fields the linked attributes are compared with: their values are the target's too.
        for p in &ends {
            if let Target::Field(f) = &p.target {
                if *f == target || key(p).is_some() {
                    continue;
                }
                match pinned(*f) {
                    Some(values) => out.extend(values.iter().map(|v| Pattern::literal(v))),
                    None => unknown_field = true,
                }
            }
        }
        if !on_linked(&c.path) {
            continue;
        }
        let lits = |ops: &[Operand], shape: fn(&str) -> Pattern, out: &mut Vec<Pattern>| {
            for o in ops {
                if let Operand::Lit(Lit::Str(s)) = o {
                    out.push(shape(s));
                }
            }
        };
        match &c.op {
            Op::Equals(ops) | Op::ContainsAll(ops) => lits(ops, Pattern::literal, &mut out),
            Op::StartsWith(ops) => lits(ops, Pattern::prefix, &mut out),
            Op::EndsWith(ops) => lits(ops, Pattern::suffix, &mut out),
            Op::Glob(globs) => out.extend(globs.iter().map(|g| Pattern::glob(g.as_str()))),
            _ => {}
        }
    }
    // The target compared directly with a field whose values are not enumerated here (`environment.time
    // equals ${resource.uri}`, `environment.source_ip equals ${action}`): the target's cells cannot stand for
    // those values.
    for c in conditions {
        let ends: Vec<&AttrPath> = std::iter::once(&c.path).chain(c.references()).collect();
        if ends.len() > 1 && ends.iter().any(|p| is_target(p)) {
            unknown_field |= ends.iter().any(|p| {
                matches!(&p.target, Target::Field(f) if *f != target && key(p).is_none() && pinned(*f).is_none())
            });
        }
    }
    let inexact = (prefix_link && !out.is_empty()) || unknown_field;
    (out, inexact)
}

fn has_action_segment(path: &AttrPath) -> bool {
    matches!(&path.target, Target::Attribute { segments, .. } if segments.iter().any(|s| matches!(s, Segment::Action)))
}

/// The patterns a string condition applies to the fixed field `target` (`action` or `resource.uri`), for their
/// witnesses. Literal operands are taken verbatim: a `*` in an `equals`, `starts_with` or `ends_with` value is an
/// ordinary character, only `glob` values are globs. A reference operand to a field `pinned` knows stands for
/// its values; a condition on such a field that references `target` contributes the field's values (the equal
/// arrangement of the two).
fn condition_patterns(
    c: &Condition,
    target: Field,
    pinned: &dyn Fn(Field) -> Option<Vec<String>>,
) -> Vec<Pattern> {
    let field = |p: &AttrPath| match &p.target {
        Target::Field(f) => Some(*f),
        Target::Attribute { .. } => None,
    };
    let ops: &[Operand] = match &c.op {
        Op::Equals(ops) | Op::ContainsAll(ops) | Op::StartsWith(ops) | Op::EndsWith(ops) => ops,
        Op::Glob(globs) if field(&c.path) == Some(target) => {
            return globs.iter().map(|g| Pattern::glob(g.as_str())).collect();
        }
        _ => return Vec::new(),
    };
    if field(&c.path) == Some(target) {
        let shape: fn(&str) -> Pattern = match &c.op {
            Op::StartsWith(_) => Pattern::prefix,
            Op::EndsWith(_) => Pattern::suffix,
            _ => Pattern::literal,
        };
        let mut out = Vec::new();
        for o in ops {
            match o {
                Operand::Lit(Lit::Str(s)) => out.push(shape(s)),
                Operand::Lit(_) => {}
                Operand::Ref(p) => {
                    if let Some(values) = field(p).filter(|f| *f != target).and_then(pinned) {
                        out.extend(values.iter().map(|v| shape(v)));
                    }
                }
            }
        }
        return out;
    }
    // `principal.id equals ${resource.uri}` and the like: the target equal to the pinned field's value; with
    // `starts_with` (`ends_with`), the target is one of the value's prefixes (suffixes), a finite set.
    let refers_to_target = ops
        .iter()
        .any(|o| matches!(o, Operand::Ref(p) if field(p) == Some(target)));
    let Some(values) = field(&c.path).filter(|_| refers_to_target).and_then(pinned) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for v in &values {
        let cuts = v.char_indices().map(|(i, _)| i).chain([v.len()]);
        match &c.op {
            Op::StartsWith(_) => out.extend(cuts.map(|i| Pattern::literal(&v[..i]))),
            Op::EndsWith(_) => out.extend(cuts.map(|i| Pattern::literal(&v[i..]))),
            _ => out.push(Pattern::literal(v)),
        }
    }
    out
}
