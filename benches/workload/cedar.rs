//! Translation of a [`Workload`] to Cedar policies, and of a [`RequestM`] to a Cedar request and entities.
//!
//! Model: `User::"<id>"` with attributes `id` and `groups` (the effective groups: request groups united with the
//! directory's `kind: Group` members) and parents `Group::"<g>"` for each of them; `Key::"<uri>"` with `uri`,
//! `owner`, `global`, `classification` and `permissions` (a record of action → set of groups);
//! `Action::"<name>"`; context `{time: datetime, source_ip: ipaddr}`. One Cedar policy per attachment, id
//! `<policy>#<attachment>`; `forbid` for deny. Action globs are expanded over the key vocabulary (requests use
//! only those actions); resource globs become `like` (whose `*` means exactly Arbiter's `*`).

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid, Policy,
    PolicyId, PolicySet, RestrictedExpression,
};

use super::{expand_actions, AttachM, Cond, Effect, Outcome, RequestM, Selector, Workload};

pub struct CedarSet {
    pub policies: PolicySet,
    pub authorizer: Authorizer,
    /// Directory membership: principal id → groups (built once, like Arbiter's compiled membership).
    pub membership: HashMap<String, Vec<String>>,
    user_type: EntityTypeName,
    group_type: EntityTypeName,
    key_type: EntityTypeName,
    action_type: EntityTypeName,
}

fn q(s: &str) -> String {
    format!("{s:?}")
}

fn actions_clause(actions: &[String]) -> (String, Option<String>) {
    match expand_actions(actions) {
        None => ("action".into(), None),
        Some(list) => {
            let items: Vec<String> = list.iter().map(|a| format!("Action::{}", q(a))).collect();
            (format!("action in [{}]", items.join(", ")), None)
        }
    }
}

fn cond_cedar(c: &Cond, actions: &[String]) -> String {
    match c {
        Cond::OwnerIsPrincipal => "resource.owner == principal.id".into(),
        Cond::PermissionsHaveGroup => {
            // Cedar has no dynamic attribute access: one disjunct per action the policy covers.
            let list = expand_actions(actions).expect("permissions grant lists its actions");
            let parts: Vec<String> = list
                .iter()
                .map(|a| {
                    format!(
                        "(action == Action::{a:?} && resource.permissions has {a:?} && \
                         resource.permissions[{a:?}].containsAny(principal.groups))"
                    )
                })
                .collect();
            format!("({})", parts.join(" || "))
        }
        Cond::GlobalTrue => "resource.global == true".into(),
        Cond::TimeOfDay { start, end } => format!(
            "(context.time.toTime() >= duration(\"{start}m\") && context.time.toTime() < duration(\"{end}m\"))"
        ),
        Cond::After(t) => format!("context.time > datetime({t:?})"),
        Cond::Cidr { cidr, negate } => {
            let e = format!("context.source_ip.isInRange(ip({cidr:?}))");
            if *negate {
                format!("!({e})")
            } else {
                e
            }
        }
        Cond::Classification { value, negate } => {
            format!("resource.classification {} {value:?}", if *negate { "!=" } else { "==" })
        }
    }
}

pub fn policy_text(w: &Workload, a: &AttachM) -> String {
    let p = &w.policies[a.policy];
    let effect = if p.effect == Effect::Allow {
        "permit"
    } else {
        "forbid"
    };
    let principal = match &a.selector {
        Selector::Everyone => "principal".to_string(),
        Selector::Group(g) => format!("principal in Group::{}", q(g)),
        Selector::Id(id) => format!("principal == User::{}", q(id)),
    };
    let (action, _) = actions_clause(&p.actions);
    let mut when = vec![];
    if !p.resources.iter().any(|r| r == "*") {
        let alts: Vec<String> = p
            .resources
            .iter()
            .map(|r| format!("resource.uri like {}", q(r)))
            .collect();
        when.push(format!("({})", alts.join(" || ")));
    }
    for c in &p.conds {
        when.push(cond_cedar(c, &p.actions));
    }
    let body = if when.is_empty() {
        String::new()
    } else {
        format!(" when {{ {} }}", when.join(" && "))
    };
    format!("{effect}({principal}, {action}, resource){body};\n")
}

impl CedarSet {
    pub fn new(w: &Workload) -> CedarSet {
        let mut policies = PolicySet::new();
        for a in &w.attachments {
            let id = PolicyId::new(format!("{}#{}", w.policies[a.policy].id, a.id));
            let text = policy_text(w, a);
            let policy = Policy::parse(Some(id), &text)
                .unwrap_or_else(|e| panic!("cedar parse {text}: {e:?}"));
            policies.add(policy).expect("unique cedar policy ids");
        }
        let mut membership: HashMap<String, Vec<String>> = HashMap::new();
        for g in &w.groups {
            for m in &g.members {
                membership
                    .entry(m.clone())
                    .or_default()
                    .push(g.name.clone());
            }
        }
        CedarSet {
            policies,
            authorizer: Authorizer::new(),
            membership,
            user_type: EntityTypeName::from_str("User").unwrap(),
            group_type: EntityTypeName::from_str("Group").unwrap(),
            key_type: EntityTypeName::from_str("Key").unwrap(),
            action_type: EntityTypeName::from_str("Action").unwrap(),
        }
    }

    /// Builds the request and entities (the timed part on the Cedar side, with `is_authorized`).
    pub fn build(&self, r: &RequestM) -> (cedar_policy::Request, Entities) {
        let mut groups: Vec<&str> = r.groups.iter().map(String::as_str).collect();
        if let Some(extra) = self.membership.get(&r.principal) {
            for g in extra {
                if !groups.contains(&g.as_str()) {
                    groups.push(g);
                }
            }
        }
        let principal =
            EntityUid::from_type_name_and_id(self.user_type.clone(), EntityId::new(&r.principal));
        let parents: HashSet<EntityUid> = groups
            .iter()
            .map(|g| EntityUid::from_type_name_and_id(self.group_type.clone(), EntityId::new(g)))
            .collect();
        let user = Entity::new(
            principal.clone(),
            HashMap::from([
                (
                    "id".to_string(),
                    RestrictedExpression::new_string(r.principal.clone()),
                ),
                (
                    "groups".to_string(),
                    RestrictedExpression::new_set(
                        groups
                            .iter()
                            .map(|g| RestrictedExpression::new_string(g.to_string())),
                    ),
                ),
            ]),
            parents,
        )
        .expect("user entity");
        let resource =
            EntityUid::from_type_name_and_id(self.key_type.clone(), EntityId::new(&r.uri));
        let permissions = RestrictedExpression::new_record(r.permissions.iter().map(|(a, gs)| {
            (
                a.clone(),
                RestrictedExpression::new_set(
                    gs.iter()
                        .map(|g| RestrictedExpression::new_string(g.clone())),
                ),
            )
        }))
        .expect("permissions record");
        let key = Entity::new(
            resource.clone(),
            HashMap::from([
                (
                    "uri".to_string(),
                    RestrictedExpression::new_string(r.uri.clone()),
                ),
                (
                    "owner".to_string(),
                    RestrictedExpression::new_string(r.owner.clone()),
                ),
                (
                    "global".to_string(),
                    RestrictedExpression::new_bool(r.global),
                ),
                (
                    "classification".to_string(),
                    RestrictedExpression::new_string(r.classification.clone()),
                ),
                ("permissions".to_string(), permissions),
            ]),
            HashSet::new(),
        )
        .expect("key entity");
        let entities = Entities::from_entities([user, key], None).expect("entities");
        let action =
            EntityUid::from_type_name_and_id(self.action_type.clone(), EntityId::new(&r.action));
        let context = Context::from_pairs([
            (
                "time".to_string(),
                RestrictedExpression::new_datetime(&r.time),
            ),
            (
                "source_ip".to_string(),
                RestrictedExpression::new_ip(&r.source_ip),
            ),
        ])
        .expect("context");
        let request = cedar_policy::Request::new(principal, action, resource, context, None)
            .expect("request");
        (request, entities)
    }

    pub fn decide(&self, r: &RequestM) -> cedar_policy::Response {
        let (request, entities) = self.build(r);
        self.authorizer
            .is_authorized(&request, &self.policies, &entities)
    }

    pub fn outcome(&self, r: &RequestM) -> Outcome {
        let response = self.decide(r);
        assert!(
            response.diagnostics().errors().next().is_none(),
            "cedar evaluation errors: {:?}",
            response.diagnostics().errors().collect::<Vec<_>>()
        );
        let mut policies: Vec<String> = response
            .diagnostics()
            .reason()
            .map(|id| {
                AsRef::<str>::as_ref(id)
                    .split('#')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        policies.sort();
        policies.dedup();
        Outcome {
            allowed: response.decision() == Decision::Allow,
            policies,
        }
    }
}
