//! The lockout search: for one guard, look for a request its principals could make, on an action and resource
//! it protects, that the proposed set DENIES. Every candidate is decided by the real evaluator.
//!
//! 1. Reachability: only policies attached to a guard principal (claims in selectors may vary) whose actions
//!    and resources can meet the guard's patterns take part.
//! 2. Actions and resource URIs come from real glob intersection and difference (see `witness`), with
//!    references to pinned fields (`${principal.id}`, ...) in conditions on them replaced by their values.
//! 3. For each (principal, action, URI): each reachable deny is searched on its own, over its own variables;
//!    a request where it applies is a finding.
//! 4. When no deny can apply, allow coverage is searched depth first over the allows' variables with
//!    three-valued partial evaluation: a branch where some allow already surely holds is pruned.
//!
//! Leaves are concrete requests checked by `eval::evaluate`; the guard's `assuming:` conditions filter them.

use std::collections::BTreeMap;
use std::time::Instant;

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::domain::{choices, var_of, Choice, Fixed, PartKey, Uses, Var};
use super::witness::{witnesses, Pattern};
use crate::ast::Effect;
use crate::compile::condition::Condition;
use crate::compile::path::{AttrPath, Field, Target};
use crate::compile::{Guard, GuardRule, SelectorKey};
use crate::eval::{
    effective_groups, eval_condition, evaluate, selector_matches, Ctx, EvalOptions, Truth,
};
use crate::request::{Environment, Principal, Request, Resource};
use crate::snapshot::Snapshot;

/// Largest number of states a witness search may visit.
const WITNESS_STATES: usize = 20_000;
/// Distinct findings reported per guard.
const FINDINGS_PER_GUARD: usize = 5;

/// One way a guard fails.
#[derive(Debug, Clone)]
pub struct Counterexample {
    /// The policies that denied (empty: no policy allows it).
    pub blocking: Vec<String>,
    pub request: Request,
    pub reason: &'static str,
}

/// What the search concluded for one guard.
#[derive(Debug, Clone, Default)]
pub struct GuardOutcome {
    pub counterexamples: Vec<Counterexample>,
    /// Set when the budget ran out first: the guard is not proven safe.
    pub inconclusive: Option<String>,
}

struct Search<'a> {
    snapshot: &'a Snapshot,
    as_of: Timestamp,
    deadline: Instant,
    assuming: &'a [Condition],
    outcome: GuardOutcome,
}

/// A reachable policy with the attachments that can apply to the principal.
struct Reachable {
    policy: u32,
    attachments: Vec<u32>,
}

/// Searches one guard against `snapshot` (the superuser rule is off).
pub fn check_guard(
    snapshot: &Snapshot,
    guard: &Guard,
    as_of: Timestamp,
    deadline: Instant,
    superuser: Option<&str>,
) -> GuardOutcome {
    let mut search = Search {
        snapshot,
        as_of,
        deadline,
        assuming: &guard.assuming,
        outcome: GuardOutcome::default(),
    };
    for (id, groups) in guard_principals(snapshot, guard, superuser) {
        for rule in guard.must_allow.iter() {
            if search.done() {
                return search.outcome;
            }
            search.rule(&id, &groups, rule);
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

impl Search<'_> {
    fn done(&self) -> bool {
        self.outcome.inconclusive.is_some()
            || self.outcome.counterexamples.len() >= FINDINGS_PER_GUARD
    }

    fn out_of_time(&mut self) -> bool {
        if Instant::now() > self.deadline {
            self.outcome
                .inconclusive
                .get_or_insert_with(|| "the search ran out of its time budget".into());
            return true;
        }
        false
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
        let meets = |ours: &[crate::compile::glob::Glob], theirs: &[crate::compile::glob::Glob]| {
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

        // Witness actions and URIs: every combination of the reachable policies' patterns (and conditions on
        // `action` / `resource.uri`) that a string inside the guard's patterns can produce. References to fields
        // the search pins (`${principal.id}`, `${principal.groups}`, and `${action}` for URIs) stand for their
        // pinned values, so the equal arrangement (`…:users:<id>` for `ends_with ${principal.id}`) is a witness.
        let mut action_patterns = Vec::new();
        let mut uri_patterns = Vec::new();
        for r in reachable.iter() {
            let p = &compiled.policies[r.policy as usize];
            action_patterns.extend(p.actions.iter().map(|g| Pattern::glob(g.as_str())));
            uri_patterns.extend(p.resources.iter().map(|g| Pattern::glob(g.as_str())));
        }
        // The guard's assumptions count even when no policy is reachable: a guard assuming `…:team-*` with no
        // allow left must still be reported on a `…:team-…` resource.
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
        let actions = self.strings_of(
            &rule.actions.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
            &action_patterns,
        );
        let pinned = |f: Field| -> Option<Vec<String>> {
            match f {
                Field::Action => Some(actions.clone()),
                other => principal(other),
            }
        };
        for c in &conditions {
            uri_patterns.extend(condition_patterns(c, Field::ResourceUri, &pinned));
        }
        let uris = self.strings_of(
            &rule
                .resources
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>(),
            &uri_patterns,
        );
        for action in &actions {
            for uri in &uris {
                if self.done() || self.out_of_time() {
                    return;
                }
                self.combination(id, request_groups, &groups, action, uri, &reachable);
            }
        }
    }

    fn strings_of(&mut self, universes: &[&str], patterns: &[Pattern]) -> Vec<String> {
        let mut compiled: Vec<Pattern> = Vec::new();
        for p in patterns {
            if !compiled.contains(p) {
                compiled.push(p.clone());
            }
        }
        let mut out = Vec::new();
        for u in universes {
            let w = witnesses(&Pattern::glob(u), &compiled, false, WITNESS_STATES);
            if !w.complete {
                self.outcome
                    .inconclusive
                    .get_or_insert_with(|| format!("too many pattern combinations under `{u}`"));
            }
            for (_, s) in w.by_vector {
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
                SelectorKey::Id => t.values.iter().any(|v| matches!(v, crate::compile::condition::Lit::Str(s) if **s == *id)),
                SelectorKey::Groups => t
                    .values
                    .iter()
                    .any(|v| matches!(v, crate::compile::condition::Lit::Str(s) if groups.iter().any(|g| **g == **s))),
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

    fn combination(
        &mut self,
        id: &str,
        request_groups: &[String],
        groups: &[String],
        action: &str,
        uri: &str,
        reachable: &[Reachable],
    ) {
        let compiled = &self.snapshot.compiled;
        let candidates: Vec<&Reachable> = reachable
            .iter()
            .filter(|r| {
                let p = &compiled.policies[r.policy as usize];
                p.matches_action(action) && p.matches_resource(uri)
            })
            .collect();
        let fixed = Fixed {
            principal_id: id,
            groups,
            action,
            uri,
        };
        let base = Leaf {
            id,
            groups: request_groups,
            action,
            uri,
        };
        // Step 3: each deny on its own.
        let mut live_deny = false;
        for r in candidates
            .iter()
            .filter(|r| compiled.policies[r.policy as usize].effect == Effect::Deny)
        {
            let vars = self.variables(&[r], &fixed);
            let before = self.outcome.counterexamples.len();
            self.dfs(
                &base,
                &vars,
                &mut Vec::new(),
                &[],
                Goal::DenyApplies(r.policy),
            );
            live_deny |= self.outcome.counterexamples.len() > before;
            if self.done() {
                return;
            }
        }
        if live_deny {
            return;
        }
        // Step 4: allow coverage, pruning branches that an allow surely covers.
        let allows: Vec<&Reachable> = candidates
            .iter()
            .copied()
            .filter(|r| compiled.policies[r.policy as usize].effect == Effect::Allow)
            .collect();
        let vars = self.variables(&allows, &fixed);
        self.dfs(&base, &vars, &mut Vec::new(), &allows, Goal::AnyDeny);
    }

    /// The variables the given policies (and the guard's assumptions) read, with what they say about each.
    fn variables(&self, policies: &[&Reachable], fixed: &Fixed) -> Vec<(Var, Uses)> {
        let compiled = &self.snapshot.compiled;
        let mut vars: BTreeMap<Var, Uses> = BTreeMap::new();
        let note = |c: &Condition, vars: &mut BTreeMap<Var, Uses>| {
            let mut paths = vec![&c.path];
            paths.extend(c.references());
            for (i, p) in paths.into_iter().enumerate() {
                if let Some(v) = var_of(p, fixed.action) {
                    let uses = vars.entry(v).or_default();
                    if i == 0 {
                        uses.add_condition(c, fixed);
                    } else if var_of(&c.path, fixed.action).is_none() {
                        uses.add_fixed_counterpart(&c.path, fixed);
                    }
                }
            }
        };
        for r in policies {
            for c in compiled.policies[r.policy as usize].conditions.iter() {
                note(c, &mut vars);
            }
            for &a in &r.attachments {
                for t in compiled.attachments[a as usize].selector.tests.iter() {
                    if let SelectorKey::Claim(path) = &t.key {
                        let v = Var::Attr(
                            PartKey::Principal,
                            path.iter().map(|s| s.to_string()).collect(),
                        );
                        vars.entry(v).or_default().add_selector_values(&t.values);
                    }
                }
            }
        }
        for c in self.assuming {
            note(c, &mut vars);
        }
        // A referenced variable is chosen before the variables compared with it.
        let mut ordered: Vec<(Var, Uses)> = Vec::new();
        let all: Vec<(Var, Uses)> = vars.into_iter().collect();
        let referenced: Vec<Var> = all
            .iter()
            .flat_map(|(_, u)| u.related.iter().cloned())
            .collect();
        for (v, u) in all.iter().filter(|(v, _)| referenced.contains(v)) {
            ordered.push((v.clone(), u.clone()));
        }
        for (v, u) in all.iter().filter(|(v, _)| !referenced.contains(v)) {
            ordered.push((v.clone(), u.clone()));
        }
        ordered
    }

    fn dfs(
        &mut self,
        base: &Leaf,
        vars: &[(Var, Uses)],
        assigned: &mut Vec<(Var, Choice)>,
        allows: &[&Reachable],
        goal: Goal,
    ) {
        if self.done() || self.out_of_time() {
            return;
        }
        let request = base.request(assigned);
        let time = assigned
            .iter()
            .find_map(|(v, c)| match (v, c) {
                (Var::Time, Choice::Time(t)) => Some(*t),
                _ => None,
            })
            .unwrap_or(self.as_of);
        // Prune: the guard assumes this away, or (coverage) an allow surely holds.
        if self.assumption_fails(&request, time, assigned) {
            return;
        }
        if matches!(goal, Goal::AnyDeny)
            && allows
                .iter()
                .any(|r| self.surely_holds(r, &request, time, assigned))
        {
            return;
        }
        if assigned.len() == vars.len() {
            self.leaf(request, time, goal);
            return;
        }
        let (var, uses) = &vars[assigned.len()];
        let related: Vec<Choice> = uses
            .related
            .iter()
            .filter_map(|r| {
                assigned
                    .iter()
                    .find(|(v, _)| v == r)
                    .map(|(_, c)| c.clone())
            })
            .collect();
        let choices = choices(var, uses, &related, self.as_of);
        if !choices.complete {
            // Some cell of this variable's partition has no representative: never call it safe.
            self.outcome.inconclusive.get_or_insert_with(|| {
                format!("too many combinations of conditions on `{var}` to cover every case")
            });
            return;
        }
        for choice in choices.values {
            assigned.push((var.clone(), choice));
            self.dfs(base, vars, assigned, allows, goal);
            assigned.pop();
            if self.done() {
                return;
            }
        }
    }

    fn leaf(&mut self, request: Request, time: Timestamp, goal: Goal) {
        let mut request = request;
        request.environment.time = Some(time);
        // The counterexample must pass the same validation as `Authorize`.
        let Ok(request) = Request::from_json(request.to_json()) else {
            return;
        };
        let decision = evaluate(self.snapshot, &request, time, &EvalOptions::default());
        if decision.allowed {
            return;
        }
        if let Goal::DenyApplies(p) = goal {
            let id = &self.snapshot.compiled.policies[p as usize].id;
            if !decision.policies.contains(id) {
                return;
            }
        }
        let blocking: Vec<String> = decision.policies.iter().map(|p| p.to_string()).collect();
        if self
            .outcome
            .counterexamples
            .iter()
            .any(|c| c.blocking == blocking)
        {
            return;
        }
        self.outcome.counterexamples.push(Counterexample {
            blocking,
            request,
            reason: decision.reason.as_str(),
        });
    }

    fn assumption_fails(
        &self,
        request: &Request,
        time: Timestamp,
        assigned: &[(Var, Choice)],
    ) -> bool {
        let groups = self.groups_of(request);
        let ctx = Ctx {
            request,
            groups: &groups,
            time,
        };
        self.assuming.iter().any(|c| {
            inputs_assigned(c, &request.action, assigned) && eval_condition(c, &ctx) != Truth::True
        })
    }

    fn surely_holds(
        &self,
        r: &Reachable,
        request: &Request,
        time: Timestamp,
        assigned: &[(Var, Choice)],
    ) -> bool {
        let compiled = &self.snapshot.compiled;
        let groups = self.groups_of(request);
        let ctx = Ctx {
            request,
            groups: &groups,
            time,
        };
        let selected = r.attachments.iter().any(|&a| {
            let selector = &compiled.attachments[a as usize].selector;
            let claims_known = selector.tests.iter().all(|t| match &t.key {
                SelectorKey::Claim(path) => assigned.iter().any(|(v, _)| {
                    matches!(v, Var::Attr(PartKey::Principal, segs) if segs.iter().map(String::as_str).eq(path.iter().map(|s| &**s)))
                }),
                _ => true,
            });
            claims_known && selector_matches(selector, &ctx)
        });
        selected
            && compiled.policies[r.policy as usize]
                .conditions
                .iter()
                .all(|c| {
                    inputs_assigned(c, &request.action, assigned)
                        && eval_condition(c, &ctx) == Truth::True
                })
    }

    fn groups_of<'r>(&'r self, request: &'r Request) -> Vec<&'r str> {
        effective_groups(request, &self.snapshot.compiled.membership).into_vec()
    }
}

#[derive(Debug, Clone, Copy)]
enum Goal {
    /// A leaf counts when this deny is among the determining policies.
    DenyApplies(u32),
    /// A leaf counts when the decision is DENY.
    AnyDeny,
}

/// True when every input of the condition is fixed or assigned, so its value under the partial request is final.
fn inputs_assigned(c: &Condition, action: &str, assigned: &[(Var, Choice)]) -> bool {
    std::iter::once(&c.path)
        .chain(c.references())
        .all(|p| var_of(p, action).is_none_or(|v| assigned.iter().any(|(a, _)| *a == v)))
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
    use crate::compile::condition::{Lit, Op, Operand};
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
    // `principal.id equals ${resource.uri}` and the like: the target equal to the pinned field's value.
    let refers_to_target = ops
        .iter()
        .any(|o| matches!(o, Operand::Ref(p) if field(p) == Some(target)));
    match field(&c.path).filter(|_| refers_to_target).and_then(pinned) {
        Some(values) => values.iter().map(|v| Pattern::literal(v)).collect(),
        None => Vec::new(),
    }
}

/// The fixed part of a candidate request.
struct Leaf<'a> {
    id: &'a str,
    groups: &'a [String],
    action: &'a str,
    uri: &'a str,
}

impl Leaf<'_> {
    fn request(&self, assigned: &[(Var, Choice)]) -> Request {
        let mut r = Request {
            principal: Principal {
                id: self.id.to_string(),
                groups: self.groups.to_vec(),
                attributes: Map::new(),
            },
            action: self.action.to_string(),
            resource: Resource {
                uri: (!self.uri.is_empty()).then(|| self.uri.to_string()),
                owner: None,
                attributes: Map::new(),
            },
            environment: Environment::default(),
        };
        for (var, choice) in assigned {
            match (var, choice) {
                (_, Choice::Absent) => {}
                (Var::Owner, Choice::Json(Value::String(s))) if !s.is_empty() => {
                    r.resource.owner = Some(s.clone())
                }
                (Var::SourceIp, Choice::Ip(ip)) => r.environment.source_ip = Some(*ip),
                (Var::Port, Choice::Json(v)) => r.environment.port = v.as_u64().map(|p| p as u32),
                (Var::Time, Choice::Time(t)) => r.environment.time = Some(*t),
                (Var::Attr(part, segs), Choice::Json(v)) => {
                    let map = match part {
                        PartKey::Principal => &mut r.principal.attributes,
                        PartKey::Resource => &mut r.resource.attributes,
                        PartKey::Environment => &mut r.environment.attributes,
                    };
                    insert_path(map, segs, v.clone());
                }
                _ => {}
            }
        }
        r
    }
}

fn insert_path(map: &mut Map<String, Value>, segs: &[String], value: Value) {
    let Some((first, rest)) = segs.split_first() else {
        return;
    };
    if rest.is_empty() {
        map.insert(first.clone(), value);
        return;
    }
    let entry = map
        .entry(first.clone())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    if let Value::Object(inner) = entry {
        insert_path(inner, rest, value);
    }
}
