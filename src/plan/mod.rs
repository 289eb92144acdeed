//! The query plan (SPEC section 7): for a principal, one or more actions and an environment, which resources
//! `Authorize` would allow, as a filter tree a database can run ([`Plan::to_sql`]) or a caller can apply in
//! memory ([`Plan::allows`]).
//!
//! The plan is exact: a resource passes exactly when `Authorize` would answer ALLOW for every action asked,
//! three-valued rules included. It is built from the evaluator's own pieces, never a second evaluator: the
//! attachments come from the index and the selector test (for the members of a plain class, `ir::plain`, from
//! the key the principal reached, decided once by one member), conditions that do not read the resource are
//! decided by `eval_condition` on the request, and the leaves that do are conditions that `eval_condition`
//! decides per resource. For each action the tree is
//!
//! ```text
//! or(allow_p: uri_p and cond_1 is true and ...) and not or(deny_q: uri_q and cond_1 is not false and ...)
//! ```
//!
//! and "is not false" is `not` of the leaf with `negate` flipped, so an undetermined deny removes the resource and
//! an undetermined allow grants nothing.

pub mod filter;
pub mod sql;

use std::sync::Arc;

use crate::moment::Moment;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ast::Effect;
use crate::eval::{bind, effective_groups, eval_condition, selector_matches, Bound, Ctx, Truth};
use crate::ir::condition::{Condition, Lit, NumArg, Op, Operand, TimeArg};
use crate::ir::glob::Glob;
use crate::ir::path::{AttrPath, Field, Segment, Target};
use crate::ir::patterns::PatternList;
use crate::ir::plain::{PlainClass, PlainClasses};
use crate::request::{
    from_json_value, RawEnvironment, RawPrincipal, RawRequest, Request, RequestError, Resource,
};
use crate::snapshot::Snapshot;
use filter::{Filter, Leaf, Node};

/// Most actions one plan may ask for.
pub const MAX_PLAN_ACTIONS: usize = 64;

/// What a plan asks: the principal and environment of a request, its actions, and what is known of the
/// resources (build one with [`PlanRequest::from_json`] or [`PlanRequest::new`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRequest {
    /// The principal and environment (its action and resource are not used).
    pub request: Request,
    /// The actions: a resource passes when every one of them is allowed.
    pub actions: Vec<String>,
    /// What every resource considered is known to satisfy.
    pub known: KnownResource,
}

/// Resource fields the caller already knows, which narrow the plan: only resources that satisfy them are
/// considered, and [`Plan::to_sql`] and [`Plan::allows`] check them too.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KnownResource {
    /// The URI, or a glob every URI matches (`kylo:kylo:vault:keys:*`).
    pub uri: Option<Glob>,
    /// The owner.
    pub owner: Option<String>,
}

impl KnownResource {
    fn exact_uri(&self) -> Option<&str> {
        self.uri.as_ref().filter(|g| g.is_exact()).map(Glob::as_str)
    }
}

/// The JSON shape of a plan request: the request JSON of SPEC section 3 with `action` or `actions`, and a
/// `resource` that holds only known fields.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlanRequest {
    #[serde(default)]
    /// The principal, as in a request (or a token, at the server's doors).
    pub principal: Option<RawPrincipal>,
    #[serde(default)]
    /// One action.
    pub action: Option<String>,
    #[serde(default)]
    /// Several actions: a resource passes when all are allowed.
    pub actions: Option<Vec<String>>,
    #[serde(default)]
    /// The environment, as in a request.
    pub environment: Option<RawEnvironment>,
    #[serde(default)]
    /// Known resource fields.
    pub resource: Option<RawKnownResource>,
    /// HTTP only: render the filter as SQL for this table mapping.
    #[serde(default)]
    pub sql: Option<sql::SqlMapping>,
}

/// Known resource fields in a plan request.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawKnownResource {
    /// A URI, or a glob (`*` is the wildcard).
    #[serde(default)]
    pub uri: Option<String>,
    /// The owner.
    #[serde(default)]
    pub owner: Option<String>,
}

impl RawPlanRequest {
    /// Validates with the same rules as `Authorize` (errors name the field).
    pub fn normalize(self) -> Result<PlanRequest, RequestError> {
        let single = self.action.is_some();
        let mut actions = self.actions.unwrap_or_default();
        if let Some(a) = self.action {
            if !actions.is_empty() {
                return Err(RequestError::new(
                    "actions",
                    "give `action` or `actions`, not both",
                ));
            }
            actions.push(a);
        }
        if actions.is_empty() {
            return Err(RequestError::new(
                "actions",
                "name the action: `action` (one) or `actions` (several)",
            ));
        }
        if actions.len() > MAX_PLAN_ACTIONS {
            return Err(RequestError::new(
                "actions",
                format!("at most {MAX_PLAN_ACTIONS} actions"),
            ));
        }
        // Each action goes through the request's own validation.
        let mut request = None;
        for (i, action) in actions.iter().enumerate() {
            let raw = RawRequest {
                principal: self.principal.clone(),
                action: Some(action.clone()),
                resource: None,
                environment: self.environment.clone(),
                ..RawRequest::default()
            };
            match raw.normalize() {
                Ok(r) => request = request.or(Some(r)),
                Err(e) if e.field == "action" && single => return Err(e),
                Err(e) if e.field == "action" => {
                    return Err(RequestError::new(format!("actions[{i}]"), e.message))
                }
                Err(e) => return Err(e),
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        actions.retain(|a| seen.insert(a.clone()));
        let resource = self.resource.unwrap_or_default();
        let uri = match resource.uri.filter(|u| !u.is_empty()) {
            None => None,
            Some(u) => {
                Some(Glob::new(&u).map_err(|e| RequestError::new("resource.uri", e.to_string()))?)
            }
        };
        Ok(PlanRequest {
            request: request.expect("at least one action"),
            actions,
            known: KnownResource {
                uri,
                owner: resource.owner.filter(|o| !o.is_empty()),
            },
        })
    }
}

impl PlanRequest {
    /// A plan request for the principal and environment of `request` (its action and resource are ignored).
    pub fn new(
        request: Request,
        actions: impl IntoIterator<Item = impl Into<String>>,
    ) -> PlanRequest {
        PlanRequest {
            request,
            actions: actions.into_iter().map(Into::into).collect(),
            known: KnownResource::default(),
        }
    }

    /// Reads the JSON plan request (see [`RawPlanRequest`]).
    pub fn from_json(value: Value) -> Result<PlanRequest, RequestError> {
        from_json_value::<RawPlanRequest>(value)?.normalize()
    }
}

/// The answer's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanKind {
    /// Every resource (that satisfies the known fields) is allowed.
    AlwaysAllowed,
    /// None is.
    AlwaysDenied,
    /// Those that pass the filter are.
    Conditional,
}

impl PlanKind {
    /// `always_allowed`, `always_denied` or `conditional`.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanKind::AlwaysAllowed => "always_allowed",
            PlanKind::AlwaysDenied => "always_denied",
            PlanKind::Conditional => "conditional",
        }
    }
}

/// A query plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Always allowed, always denied, or conditional on [`Plan::filter`].
    pub kind: PlanKind,
    /// The filter over `resource.*` (`true` or `false` unless conditional).
    pub filter: Filter,
    /// The revision of the policy set the plan was made from.
    pub revision: String,
    /// The actions asked, without repeats.
    pub actions: Vec<String>,
    /// The known resource fields the plan assumed.
    pub known: KnownResource,
    /// The request of each action, with an empty resource and the time fixed: what opaque leaves read.
    bases: Vec<Request>,
}

impl Plan {
    /// True when part of the filter cannot be written in SQL (instants, time windows, weekdays, CIDRs, or a
    /// condition whose values are not plain literals): [`Plan::to_sql`] then returns a wider `WHERE` and the rows
    /// it returns must be checked with [`Plan::allows`].
    pub fn residual(&self) -> bool {
        self.filter.has_residual()
    }

    /// Every policy the filter names.
    pub fn policies(&self) -> Vec<Arc<str>> {
        self.filter.all_policies()
    }

    /// Whether `Authorize` would allow every action of the plan on this resource (and the resource satisfies the
    /// known fields). The same condition code as `Authorize` decides each leaf.
    pub fn allows(&self, resource: &Resource) -> bool {
        if let Some(g) = &self.known.uri {
            if !g.matches(resource.uri.as_deref().unwrap_or("")) {
                return false;
            }
        }
        if self.known.owner.is_some() && resource.owner != self.known.owner {
            return false;
        }
        let requests: Vec<Request> = self
            .bases
            .iter()
            .map(|b| Request {
                resource: resource.clone(),
                ..b.clone()
            })
            .collect();
        // The directory's groups were merged into each base request when the plan was made.
        let groups: Vec<Vec<&str>> = requests
            .iter()
            .map(|r| r.principal.groups.iter().map(String::as_str).collect())
            .collect();
        let ctxs: Vec<Ctx> = requests
            .iter()
            .zip(&groups)
            .map(|(r, g)| Ctx {
                request: r.into(),
                groups: g,
                time: r.environment.time.unwrap_or_else(Moment::now),
            })
            .collect();
        self.filter.holds(&ctxs)
    }

    /// The JSON answer: `{kind, filter, revision, actions, residual, policies}`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "kind": self.kind.as_str(),
            "filter": self.filter.to_json(),
            "revision": &*self.revision,
            "actions": self.actions,
            "residual": self.residual(),
            "policies": self.policies(),
        })
    }
}

/// Plans `plan` against `snapshot`. `now` is the time of requests without one; `superuser` is always allowed.
pub fn plan(snapshot: &Snapshot, plan: &PlanRequest, now: Moment, superuser: Option<&str>) -> Plan {
    // Found only for plans that can use them (see `plan_with`).
    let classes = plan.known.uri.is_none().then(|| snapshot.plain_classes());
    plan_with(snapshot, plan, now, superuser, classes)
}

/// [`plan`] with the plain classes given (`None`: every policy is visited on its own).
pub(crate) fn plan_with(
    snapshot: &Snapshot,
    plan: &PlanRequest,
    now: Moment,
    superuser: Option<&str>,
    classes: Option<&PlainClasses>,
) -> Plan {
    // A class's patterns are taken whole: not where a known URI narrows them.
    let classes = classes.filter(|_| plan.known.uri.is_none());
    let compiled = &snapshot.compiled;
    let mut base = plan.request.clone();
    base.environment.time = Some(base.environment.time.unwrap_or(now));
    base.resource = Resource {
        uri: plan.known.exact_uri().map(str::to_string),
        owner: plan.known.owner.clone(),
        attributes: Map::new(),
    };
    // The directory's groups join the request's, as they do before every decision.
    let groups: Vec<String> = effective_groups((&base).into(), &compiled.membership)
        .iter()
        .map(|g| g.to_string())
        .collect();
    base.principal.groups = groups;

    let mut bases = Vec::with_capacity(plan.actions.len());
    let filter = if plan.actions.is_empty() {
        // Nothing was asked: fail closed rather than "allowed for every one of no actions".
        Filter::constant(false)
    } else if superuser == Some(base.principal.id.as_str()) {
        bases.extend(plan.actions.iter().map(|a| Request {
            action: a.clone(),
            ..base.clone()
        }));
        Filter::constant(true).with_policies(vec![Arc::from(crate::validate::RESERVED_POLICY_ID)])
    } else {
        let mut per_action = Vec::with_capacity(plan.actions.len());
        for (i, action) in plan.actions.iter().enumerate() {
            let request = Request {
                action: action.clone(),
                ..base.clone()
            };
            per_action.push(action_filter(snapshot, classes, &request, i, &plan.known));
            bases.push(request);
        }
        Filter::new(Node::And(per_action)).simplify()
    };
    let kind = match filter.node {
        Node::True => PlanKind::AlwaysAllowed,
        Node::False => PlanKind::AlwaysDenied,
        _ => PlanKind::Conditional,
    };
    Plan {
        kind,
        filter,
        revision: snapshot.revision.clone(),
        actions: plan.actions.clone(),
        known: plan.known.clone(),
        bases,
    }
}

/// The resources one action is allowed on: some allow holds and no deny applies.
fn action_filter(
    snapshot: &Snapshot,
    classes: Option<&PlainClasses>,
    request: &Request,
    index: usize,
    known: &KnownResource,
) -> Filter {
    let compiled = &snapshot.compiled;
    let groups: Vec<&str> = request
        .principal
        .groups
        .iter()
        .map(String::as_str)
        .collect();
    let ctx = Ctx {
        request: request.into(),
        groups: &groups,
        time: request.environment.time.expect("the plan fixes the time"),
    };
    // Members of plain classes are decided with their class, below.
    let in_class = |p: u32| classes.is_some_and(|c| c.is_member(p));
    let mut candidates: Vec<u32> = Vec::new();
    compiled
        .index
        .candidates_any_resource(&request.principal.id, &groups, |entry| {
            if in_class(entry.policy) {
                return;
            }
            let policy = &compiled.policies[entry.policy as usize];
            if policy.matches_action(&request.action)
                && selector_matches(
                    &compiled.attachments[entry.attachment as usize].selector,
                    &ctx,
                )
            {
                candidates.push(entry.policy);
            }
        });
    candidates.sort_unstable();
    candidates.dedup();

    let planner = Planner {
        ctx: &ctx,
        index,
        known,
    };
    let (mut allows, mut denies) = (Vec::new(), Vec::new());
    // Policies whose conditions are all decided differ only in their URI patterns: one term per effect holds
    // all their patterns (index 0 allows, 1 denies), so a large set of such policies costs one leaf.
    let mut plain: [PlainTerm; 2] = Default::default();
    'policies: for &p in &candidates {
        let policy = &compiled.policies[p as usize];
        let deny = policy.effect == Effect::Deny;
        let uri = planner.uri_match(&policy.resources);
        if matches!(uri, UriMatch::Nowhere) {
            continue;
        }
        let mut terms = Vec::new();
        for condition in policy.conditions.iter() {
            match planner.condition(condition) {
                // A deny applies unless a condition is false; an allow holds only if every one is true.
                Planned::Decided(truth) => {
                    if !keeps(deny, truth) {
                        continue 'policies;
                    }
                }
                // "Not false": the flipped leaf holds exactly where the condition is false.
                Planned::Leaf(leaf) if deny => terms.push(Filter::new(Node::Not(Box::new(
                    Filter::leaf(leaf.flipped()),
                )))),
                Planned::Leaf(leaf) => terms.push(Filter::new(Node::Leaf(leaf))),
            }
        }
        if terms.is_empty() {
            plain[usize::from(deny)].loose.push((p, &policy.id, uri));
            continue;
        }
        terms.insert(0, uri.into_filter());
        let branch = Filter::new(Node::And(terms)).with_policies(vec![policy.id.clone()]);
        if deny {
            denies.push(branch);
        } else {
            allows.push(branch);
        }
    }
    // A class is decided by any member: the same actions, and conditions that read no part of the resource
    // (so the planner would decide each from the request, as here), under a selector the principal met.
    if let Some(classes) = classes {
        for c in classes.reached(&request.principal.id, &groups) {
            let class = classes.class(c);
            let policy = &compiled.policies[class.representative() as usize];
            let deny = class.effect == Effect::Deny;
            if policy.matches_action(&request.action)
                && policy
                    .conditions
                    .iter()
                    .all(|condition| keeps(deny, eval_condition(condition, &ctx)))
            {
                plain[usize::from(deny)].classes.push(class);
            }
        }
    }
    for (i, term) in plain.into_iter().enumerate() {
        let Some(branch) = term.into_filter() else {
            continue;
        };
        if i == 1 {
            denies.push(branch);
        } else {
            allows.push(branch);
        }
    }
    Filter::new(Node::And(vec![
        Filter::new(Node::Or(allows)),
        Filter::new(Node::Not(Box::new(Filter::new(Node::Or(denies))))),
    ]))
}

/// Whether a policy still counts once a condition is decided: a deny applies unless a condition is false; an
/// allow holds only if every one is true.
fn keeps(deny: bool, truth: Truth) -> bool {
    if deny {
        truth != Truth::False
    } else {
        truth == Truth::True
    }
}

/// The policies of one effect whose conditions are all decided: those visited on their own, in policy order
/// (number, id, patterns), and the plain classes that hold.
#[derive(Default)]
struct PlainTerm<'g> {
    loose: Vec<(u32, &'g Arc<str>, UriMatch<'g>)>,
    classes: Vec<&'g PlainClass>,
}

impl PlainTerm<'_> {
    /// One term: every pattern (without repeats or covered ones) and every id, in policy order. A class alone
    /// gives its shared, already pruned list.
    fn into_filter(self) -> Option<Filter> {
        let PlainTerm { loose, classes } = self;
        let everywhere = loose
            .iter()
            .any(|(_, _, uri)| matches!(uri, UriMatch::Everywhere));
        if let ([class], false) = (&classes[..], everywhere) {
            #[cfg(test)]
            count_term(usize::from(!loose.is_empty()));
            let term = if loose.is_empty() {
                Leaf::uri_glob_shared(class.kept.clone())
            } else {
                let extra: Vec<(u32, &Glob)> = loose
                    .iter()
                    .flat_map(|(p, _, uri)| match uri {
                        UriMatch::Patterns(globs) => globs.iter().map(|g| (*p, *g)).collect(),
                        _ => smallvec::SmallVec::<[(u32, &Glob); 4]>::new(),
                    })
                    .collect();
                Leaf::uri_glob_shared(class.merged(&extra).into_iter().cloned().collect())
            };
            // Ids in policy order: the class's and the others', merged.
            let mut ids = Vec::with_capacity(class.ids.len() + loose.len());
            let mut others = loose.iter().peekable();
            for (&p, id) in class.members.iter().zip(class.ids.iter()) {
                while let Some((_, other, _)) = others.next_if(|(q, _, _)| *q < p) {
                    ids.push((*other).clone());
                }
                ids.push(id.clone());
            }
            ids.extend(others.map(|(_, id, _)| (*id).clone()));
            return Some(
                Filter::new(Node::And(vec![Filter::leaf(term)])).with_sorted_policies(ids),
            );
        }
        enum Source<'g> {
            Loose(&'g Arc<str>, UriMatch<'g>),
            Member(&'g PlainClass, usize),
        }
        let mut items: Vec<(u32, Source)> = loose
            .into_iter()
            .map(|(p, id, uri)| (p, Source::Loose(id, uri)))
            .collect();
        if items.is_empty() && classes.is_empty() {
            return None;
        }
        if !classes.is_empty() {
            #[cfg(test)]
            count_term(2);
            // A policy is in one class at most, and never both in a class and visited on its own.
            for class in &classes {
                items.extend(
                    class
                        .members
                        .iter()
                        .enumerate()
                        .map(|(m, &p)| (p, Source::Member(class, m))),
                );
            }
            items.sort_unstable_by_key(|(p, _)| *p);
        }
        let mut patterns = PatternList::default();
        let mut ids = Vec::with_capacity(items.len());
        for (_, from) in items {
            match from {
                Source::Loose(id, uri) => {
                    ids.push(id.clone());
                    if let UriMatch::Patterns(globs) = uri {
                        globs.into_iter().for_each(|g| patterns.push(g));
                    }
                }
                Source::Member(class, m) => {
                    ids.push(class.ids[m].clone());
                    class
                        .member_patterns(m)
                        .iter()
                        .for_each(|g| patterns.push(g));
                }
            }
        }
        let term = if everywhere {
            Filter::constant(true)
        } else {
            Filter::leaf(Leaf::uri_glob(&patterns, &patterns.pruned()))
        };
        // An `and` keeps the ids even where the term is a constant.
        Some(Filter::new(Node::And(vec![term])).with_policies(ids))
    }
}

#[cfg(test)]
thread_local! {
    /// How plain terms with classes were built on this thread, for the tests: one class alone, one class with
    /// other patterns merged in, several classes (or a pattern matching everything) through the general path.
    static TERMS_WITH_CLASSES: std::cell::Cell<[usize; 3]> = const { std::cell::Cell::new([0; 3]) };
}

#[cfg(test)]
fn count_term(way: usize) {
    TERMS_WITH_CLASSES.with(|c| {
        let mut counts = c.get();
        counts[way] += 1;
        c.set(counts);
    });
}

/// How a policy's resource patterns meet the resources considered.
enum UriMatch<'g> {
    /// Every resource considered.
    Everywhere,
    /// None.
    Nowhere,
    /// Those whose URI matches one of these (none matches the empty string).
    Patterns(smallvec::SmallVec<[&'g Glob; 4]>),
}

impl UriMatch<'_> {
    fn into_filter(self) -> Filter {
        match self {
            UriMatch::Everywhere => Filter::constant(true),
            UriMatch::Nowhere => Filter::constant(false),
            UriMatch::Patterns(globs) => {
                let mut list = PatternList::default();
                globs.into_iter().for_each(|g| list.push(g));
                let all: Vec<usize> = (0..list.len()).collect();
                Filter::leaf(Leaf::uri_glob(&list, &all))
            }
        }
    }
}

/// A condition, decided from the request alone or left as a leaf on the resource.
enum Planned {
    Decided(Truth),
    Leaf(Box<Leaf>),
}

struct Planner<'a> {
    ctx: &'a Ctx<'a>,
    /// The action's position in the plan.
    index: usize,
    known: &'a KnownResource,
}

impl Planner<'_> {
    /// True when `path` reads a part of the resource that is not known (never where `ir::plain` says a path
    /// does not read the resource, which plain classes rely on).
    fn reads_resource(&self, path: &AttrPath) -> bool {
        crate::ir::plain::reads_resource(path)
            && match &path.target {
                Target::Field(Field::ResourceUri) => self.known.exact_uri().is_none(),
                Target::Field(Field::ResourceOwner) => self.known.owner.is_none(),
                _ => true,
            }
    }

    /// How a policy's resource patterns meet the resources considered. An absent URI is matched as the empty
    /// string, which only all-`*` patterns match, and those match everything.
    fn uri_match<'g>(&self, patterns: &'g [Glob]) -> UriMatch<'g> {
        if let Some(uri) = self.known.exact_uri() {
            return if patterns.iter().any(|g| g.matches(uri)) {
                UriMatch::Everywhere
            } else {
                UriMatch::Nowhere
            };
        }
        let mut open = smallvec::SmallVec::new();
        for g in patterns {
            if g.matches_everything() {
                return UriMatch::Everywhere;
            }
            match self.known.uri.as_ref().map(|k| relate(k, g)) {
                Some(Relation::Inside) => return UriMatch::Everywhere,
                Some(Relation::Disjoint) => {}
                Some(Relation::Overlaps) | None => open.push(g),
            }
        }
        if open.is_empty() {
            UriMatch::Nowhere
        } else {
            UriMatch::Patterns(open)
        }
    }

    /// Decides a condition from the request, or makes it a leaf on the resource.
    fn condition(&self, condition: &Condition) -> Planned {
        let refs = condition.references();
        let path_reads = self.reads_resource(&condition.path);
        let refs_read = refs.iter().any(|p| self.reads_resource(p));
        if !path_reads && !refs_read {
            return Planned::Decided(eval_condition(condition, self.ctx));
        }
        if path_reads && !refs_read {
            match self.substitute(condition) {
                Substituted::Leaf(c) => {
                    return Planned::Leaf(Box::new(Leaf::new(c, None, Map::new())))
                }
                // Never true and never false, whatever the resource: a missing or unusable reference.
                Substituted::Undetermined => return Planned::Decided(Truth::Unknown),
                Substituted::Opaque => {}
            }
        }
        Planned::Leaf(Box::new(self.opaque(condition)))
    }

    /// A leaf that keeps its references and reads them from the plan's request of this action.
    fn opaque(&self, condition: &Condition) -> Leaf {
        let mut bindings = Map::new();
        let mut record = |p: &AttrPath| {
            if !self.reads_resource(p) {
                if let Some(b) = bind(p, self.ctx) {
                    bindings.insert(p.text.to_string(), bound_json(b));
                }
            }
        };
        record(&condition.path);
        let references = condition.references();
        references.iter().for_each(|p| record(p));
        // The action, wherever `${action}` is read: leaves of different actions must never look alike.
        if condition.path.uses_action() || references.iter().any(|p| p.uses_action()) {
            bindings.insert(
                "action".into(),
                Value::String(self.ctx.request.action.to_string()),
            );
        }
        Leaf::new(condition.clone(), Some(self.index), bindings)
    }

    /// The condition with `${action}` in its path and its references replaced by literals of the same meaning.
    fn substitute(&self, condition: &Condition) -> Substituted {
        let mut c = condition.clone();
        if c.path.uses_action() {
            if let Target::Attribute { segments, .. } = &mut c.path.target {
                let action = self.ctx.request.action;
                for s in segments.iter_mut() {
                    if *s == Segment::Action {
                        *s = Segment::Name(action.into());
                    }
                }
                c.path.text = c.path.text.replace("${action}", action).into();
            }
        }
        let string_op = matches!(c.op, Op::StartsWith(_) | Op::EndsWith(_));
        c.op = match &c.op {
            Op::Equals(v) | Op::ContainsAll(v) | Op::StartsWith(v) | Op::EndsWith(v) => {
                let mut out = Vec::with_capacity(v.len());
                let mut undetermined = false;
                for operand in v.iter() {
                    match operand {
                        Operand::Lit(l) => out.push(Operand::Lit(l.clone())),
                        Operand::Ref(p) => match bind(p, self.ctx) {
                            // Missing is decided before type: the condition is unknown at best.
                            None => return Substituted::Undetermined,
                            Some(Bound::Json(Value::Object(_))) => undetermined = true,
                            Some(Bound::Json(Value::Array(items))) => {
                                for item in items {
                                    match plain_literal(&item) {
                                        Some(l) => out.push(Operand::Lit(l)),
                                        None => return Substituted::Opaque,
                                    }
                                }
                            }
                            Some(Bound::Json(scalar)) => match plain_literal(&scalar) {
                                Some(l) => out.push(Operand::Lit(l)),
                                None => return Substituted::Opaque,
                            },
                            // The text is what string operators read; `equals` reads the address.
                            Some(Bound::Ip(_, text)) if string_op => {
                                out.push(Operand::Lit(Lit::Str(text.into())))
                            }
                            Some(Bound::Ip(..) | Bound::Time(_)) => return Substituted::Opaque,
                        },
                    }
                }
                // A reference to a map: a fault when the attribute is there, unknown when not.
                if undetermined {
                    return Substituted::Undetermined;
                }
                let out = out.into_boxed_slice();
                match &c.op {
                    Op::Equals(_) => Op::Equals(out),
                    Op::ContainsAll(_) => Op::ContainsAll(out),
                    Op::StartsWith(_) => Op::StartsWith(out),
                    _ => Op::EndsWith(out),
                }
            }
            Op::Compare(cmp, NumArg::Ref(p)) => match bind(p, self.ctx) {
                Some(Bound::Json(Value::Number(n))) => match n.as_f64() {
                    Some(n) => Op::Compare(*cmp, NumArg::Num(n)),
                    None => return Substituted::Undetermined,
                },
                // Missing: unknown; any other type: a fault once the attribute is there.
                _ => return Substituted::Undetermined,
            },
            Op::Before(TimeArg::Ref(p)) | Op::After(TimeArg::Ref(p)) => {
                let at = match bind(p, self.ctx) {
                    Some(Bound::Time(t)) => t,
                    Some(Bound::Json(Value::String(s))) => {
                        match crate::request::parse_rfc3339(&s) {
                            Some(t) => t,
                            None => return Substituted::Undetermined,
                        }
                    }
                    _ => return Substituted::Undetermined,
                };
                if matches!(c.op, Op::Before(_)) {
                    Op::Before(TimeArg::At(at))
                } else {
                    Op::After(TimeArg::At(at))
                }
            }
            other => other.clone(),
        };
        Substituted::Leaf(c)
    }
}

enum Substituted {
    Leaf(Condition),
    /// Unknown or a fault for every resource: never true, never false.
    Undetermined,
    /// A value with no literal of the same meaning (an instant or address compared by value, a nested list).
    Opaque,
}

/// A JSON scalar as a condition literal (`None` for lists, maps and numbers out of range).
fn plain_literal(v: &Value) -> Option<Lit> {
    match v {
        Value::String(s) => Some(Lit::Str(s.as_str().into())),
        Value::Number(n) => n.as_f64().map(Lit::Num),
        Value::Bool(b) => Some(Lit::Bool(*b)),
        _ => None,
    }
}

fn bound_json(b: Bound) -> Value {
    match b {
        Bound::Json(v) => v,
        Bound::Time(t) => Value::String(t.to_string()),
        Bound::Ip(_, text) => Value::String(text),
    }
}

/// How the language of a policy pattern relates to the known URI glob.
enum Relation {
    /// Every known URI matches the pattern.
    Inside,
    /// No known URI does.
    Disjoint,
    /// Some do; or the search gave up (the leaf stays, which is always exact).
    Overlaps,
}

/// Compares the known URI glob with a policy pattern, cheaply and soundly (anything not proven is `Overlaps`,
/// whose leaf is always exact): patterns whose literal heads or tails disagree share no string, and `p*` holds
/// every string that starts with `p`. No search runs on a caller's pattern.
fn relate(known: &Glob, pattern: &Glob) -> Relation {
    let (a, b) = (known.literal_prefix(), pattern.literal_prefix());
    if !a.starts_with(b) && !b.starts_with(a) {
        return Relation::Disjoint;
    }
    let (x, y) = (tail(known), tail(pattern));
    if !x.ends_with(y) && !y.ends_with(x) {
        return Relation::Disjoint;
    }
    match pattern.as_str().strip_suffix('*') {
        Some(p) if !p.contains('*') && a.starts_with(p) => Relation::Inside,
        _ if known.is_exact() => {
            if pattern.matches(known.as_str()) {
                Relation::Inside
            } else {
                Relation::Disjoint
            }
        }
        _ => Relation::Overlaps,
    }
}

/// The literal text every match of a glob ends with.
fn tail(g: &Glob) -> &str {
    match g.as_str().rfind('*') {
        Some(i) => &g.as_str()[i + 1..],
        None => g.as_str(),
    }
}

#[cfg(test)]
#[path = "classes_tests.rs"]
mod classes_tests;
