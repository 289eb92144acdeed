//! Plain classes against the plan without them: over random policy sets (short patterns over a tiny alphabet,
//! so that repeats and `p*` covers are common across a class and the policies outside it), every plan must be
//! the same JSON, policy ids and pattern order included, whichever classes are formed.

use std::path::PathBuf;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;

use super::{plan_with, PlanRequest};
use crate::ir::plain::PlainClasses;
use crate::load::SourceSet;
use crate::moment::Moment;
use crate::snapshot::Snapshot;

#[derive(Debug, Clone)]
struct PolicyCase {
    deny: bool,
    actions: &'static str,
    resources: Vec<String>,
    conditions: Vec<&'static str>,
    /// Selectors of its attachments (none, one, or two).
    selectors: Vec<&'static str>,
}

#[derive(Debug, Clone)]
struct Case {
    policies: Vec<PolicyCase>,
    principal: &'static str,
    request_groups: Vec<&'static str>,
    actions: Vec<&'static str>,
    time: &'static str,
    known_uri: Option<&'static str>,
    known_owner: Option<&'static str>,
    /// The principal is the superuser.
    superuser: bool,
}

const CONDITIONS: &[&str] = &[
    // Decided from the request.
    "  - path: environment.time\n    op: after\n    values: [\"2026-12-01T00:00:00Z\"]\n",
    "  - path: environment.time\n    op: before\n    values: [\"2026-12-01T00:00:00Z\"]\n",
    "  - path: principal.level\n    op: gt\n    values: [2]\n",
    "  - path: principal.team\n    op: equals\n    values: [\"${principal.id}\"]\n    negate: true\n",
    // Undetermined: the principal has no such attribute.
    "  - path: principal.clearance\n    op: equals\n    values: [top]\n",
    // `${action}` in a path that is not the resource's.
    "  - path: \"principal.allowed.${action}\"\n    op: is_true\n",
    // Read the resource.
    "  - path: resource.owner\n    op: equals\n    values: [\"${principal.id}\"]\n",
    "  - path: resource.classification\n    op: equals\n    values: [secret]\n    negate: true\n",
];

const SELECTORS: &[&str] = &[
    "{}",
    "{}",
    "{groups: [g0]}",
    "{groups: [g1]}",
    "{groups: [g0, g1]}",
    "{id: u0}",
    "{id: [u0, u1]}",
    "{team: red}",
    "{groups: [g0], team: red}",
];

const ACTIONS: &[&str] = &["[\"*\"]", "[ReadKey]", "[ReadKey, DeleteKey]", "[\"*Key\"]"];

fn policy_case() -> impl Strategy<Value = PolicyCase> {
    (
        any::<bool>(),
        proptest::sample::select(ACTIONS),
        proptest::collection::vec(prop_oneof![8 => "[ab][ab*]{0,2}", 2 => "[aé:*]{1,4}"], 1..4),
        proptest::collection::vec(proptest::sample::select(CONDITIONS), 0..3),
        proptest::collection::vec(proptest::sample::select(SELECTORS), 0..3),
    )
        .prop_map(
            |(deny, actions, resources, conditions, selectors)| PolicyCase {
                deny,
                actions,
                resources,
                conditions,
                // Mostly one attachment, the shape plain classes are made of.
                selectors: match selectors.len() {
                    2 => selectors,
                    _ => selectors.into_iter().take(1).collect(),
                },
            },
        )
}

/// A policy that can make a class: one attachment naming one key, conditions that do not read the resource.
fn template() -> impl Strategy<Value = PolicyCase> {
    (
        proptest::bool::weighted(0.6),
        proptest::sample::select(ACTIONS),
        proptest::collection::vec(proptest::sample::select(&CONDITIONS[..6]), 0..2),
        proptest::sample::select(&["{}", "{groups: [g0]}", "{id: u0}"][..]),
    )
        .prop_map(|(deny, actions, conditions, selector)| PolicyCase {
            deny,
            actions,
            resources: Vec::new(),
            conditions,
            selectors: vec![selector],
        })
}

/// Policies, most of them copies of a few drawn ones but for their patterns (so that classes of several members
/// form, with other policies beside them), the rest drawn on their own.
fn policies() -> impl Strategy<Value = Vec<PolicyCase>> {
    (
        proptest::collection::vec(prop_oneof![3 => template(), 1 => policy_case()], 1..3),
        proptest::collection::vec(
            (policy_case(), proptest::option::weighted(0.7, 0usize..3)),
            1..40,
        ),
    )
        .prop_map(|(templates, drawn)| {
            drawn
                .into_iter()
                .map(|(own, template)| match template {
                    Some(t) => PolicyCase {
                        resources: own.resources,
                        ..templates[t % templates.len()].clone()
                    },
                    None => own,
                })
                .collect()
        })
}

fn case() -> impl Strategy<Value = Case> {
    (
        policies(),
        proptest::sample::select(&["u0", "u1", "u2"][..]),
        proptest::collection::vec(proptest::sample::select(&["g0", "g1", "g2"][..]), 0..3),
        proptest::sample::subsequence(&["ReadKey", "DeleteKey", "CreateKey"][..], 1..3),
        proptest::sample::select(&["2026-11-01T00:00:00Z", "2026-12-03T00:00:00Z"][..]),
        proptest::option::weighted(0.2, proptest::sample::select(&["a*", "ab", "*b"][..])),
        proptest::option::weighted(0.2, Just("u0")),
        proptest::bool::weighted(0.05),
    )
        .prop_map(
            |(
                policies,
                principal,
                request_groups,
                actions,
                time,
                known_uri,
                known_owner,
                superuser,
            )| Case {
                policies,
                principal,
                request_groups,
                actions,
                time,
                known_uri,
                known_owner,
                superuser,
            },
        )
}

fn snapshot(case: &Case) -> Snapshot {
    let mut yaml = String::from("kind: Group\nname: g0\nmembers: [u0, u1]\n---\nkind: Group\nname: g1\nmembers: [u1]\n---\nkind: Group\nname: g2\nmembers: [u2]\n");
    for (i, p) in case.policies.iter().enumerate() {
        let resources: Vec<String> = p.resources.iter().map(|r| format!("\"{r}\"")).collect();
        yaml += &format!(
            "---\nkind: Policy\nid: p{i:02}\neffect: {}\nactions: {}\nresources: [{}]\n",
            if p.deny { "deny" } else { "allow" },
            p.actions,
            resources.join(", ")
        );
        if !p.conditions.is_empty() {
            yaml += "conditions:\n";
            p.conditions.iter().for_each(|c| yaml += c);
        }
        for (j, s) in p.selectors.iter().enumerate() {
            yaml += &format!(
                "---\nkind: PolicyAttachment\nid: a{i:02}-{j}\npolicy: p{i:02}\nprincipal_selector: {s}\n"
            );
        }
    }
    let set = SourceSet::from_files([(PathBuf::from("p.yaml"), yaml.clone())]);
    crate::compile::build(&set).unwrap_or_else(|d| panic!("{d}\n{yaml}"))
}

fn plan_request(case: &Case) -> PlanRequest {
    let mut resource = serde_json::Map::new();
    if let Some(uri) = case.known_uri {
        resource.insert("uri".into(), json!(uri));
    }
    if let Some(owner) = case.known_owner {
        resource.insert("owner".into(), json!(owner));
    }
    PlanRequest::from_json(json!({
        "principal": {"id": case.principal, "groups": case.request_groups,
                      "attributes": {"level": 3, "team": "red", "allowed": {"ReadKey": true}}},
        "actions": case.actions,
        "environment": {"time": case.time},
        "resource": resource,
    }))
    .expect("a valid plan request")
}

/// Plans with classes of at least `min` members and without any, as JSON.
fn both(case: &Case, min: usize) -> (String, String) {
    let snapshot = snapshot(case);
    let request = plan_request(case);
    let now = Moment::from(jiff::Timestamp::UNIX_EPOCH);
    let classes = PlainClasses::build(&snapshot.compiled, min);
    let superuser = case.superuser.then_some(case.principal);
    let with = plan_with(&snapshot, &request, now, superuser, Some(&classes));
    let without = plan_with(&snapshot, &request, now, superuser, None);
    (with.to_json().to_string(), without.to_json().to_string())
}

/// The same plan, whichever classes are formed; and each way of building a term from classes is taken often
/// enough to say so.
#[test]
fn plans_with_plain_classes_are_the_plans_without_them() {
    let mut runner = TestRunner::new(Config {
        cases: 1000,
        ..Config::default()
    });
    super::TERMS_WITH_CLASSES.with(|c| c.set([0; 3]));
    let outcome = runner.run(
        &(case(), prop_oneof![1 => Just(1usize), 4 => 2usize..5]),
        |(case, min)| {
            let (with, without) = both(&case, min);
            prop_assert_eq!(with, without, "{:#?}", case);
            Ok(())
        },
    );
    if let Err(e) = outcome {
        panic!("{e}");
    }
    let [alone, merged, several] = super::TERMS_WITH_CLASSES.with(|c| c.get());
    assert!(
        alone >= 60 && merged >= 60 && several >= 20,
        "terms from one class alone {alone}, one class and other patterns {merged}, several classes {several}"
    );
}

/// Through `plan` itself, with the snapshot's own classes (of the default size): a class of 20 denies attached to
/// everyone, and two denies outside it among them in policy order, one whose pattern repeats a later member's, one
/// whose `p*` covers several members' patterns.
#[test]
fn the_snapshot_classes_give_the_plan_without_them() {
    // Everything is allowed but what the denies take away.
    let mut yaml = String::from("kind: Group\nname: g0\nmembers: [u0]\n---\nkind: Policy\nid: all\neffect: allow\nactions: [\"*\"]\nresources: [\"*\"]\n---\nkind: PolicyAttachment\nid: all-a\npolicy: all\nprincipal_selector: {}\n");
    let mut policy = |id: &str, resources: &str, selector: &str| {
        yaml += &format!(
            "---\nkind: Policy\nid: {id}\neffect: deny\nactions: [\"*\"]\nresources: {resources}\nconditions:\n  - path: environment.time\n    op: after\n    values: [\"2026-12-01T00:00:00Z\"]\n---\nkind: PolicyAttachment\nid: {id}-a\npolicy: {id}\nprincipal_selector: {selector}\n"
        );
    };
    for i in 0..20 {
        policy(
            &format!("p{i:02}"),
            &format!("[\"k:t{i}-*\", \"k:t{i}-x\"]"),
            "{}",
        );
    }
    policy("p00a", "[\"k:t8-*\"]", "{groups: [g0]}");
    policy("p05b", "[\"k:t1*\"]", "{id: u0}");
    let set = SourceSet::from_files([(PathBuf::from("p.yaml"), yaml.clone())]);
    let snapshot = crate::compile::build(&set).unwrap_or_else(|d| panic!("{d}\n{yaml}"));
    let position = |id: &str| {
        snapshot
            .compiled
            .policies
            .iter()
            .position(|p| &*p.id == id)
            .expect("the policy") as u32
    };
    let classes = snapshot.plain_classes();
    assert!(
        classes.is_member(position("p00")),
        "the 20 denies form a class"
    );
    assert!(
        !classes.is_member(position("p05b")),
        "one deny of its own is no class"
    );
    let request = PlanRequest::from_json(json!({
        "principal": {"id": "u0"}, "action": "ReadKey", "environment": {"time": "2026-12-03T00:00:00Z"},
    }))
    .expect("a valid plan request");
    let now = Moment::from(jiff::Timestamp::UNIX_EPOCH);
    super::TERMS_WITH_CLASSES.with(|c| c.set([0; 3]));
    let with = super::plan(&snapshot, &request, now, None).to_json();
    // The deny term was built from the class, with the other two denies' patterns merged in.
    assert_eq!(super::TERMS_WITH_CLASSES.with(|c| c.get()), [0, 1, 0]);
    let without = plan_with(&snapshot, &request, now, None, None).to_json();
    assert_eq!(with, without);
    // What pruning the whole list keeps, in policy order: `k:t8-*` from p00a, before p08 (whose copy is the
    // repeat), and `k:t1*` from p05b, which covers every `k:t1...` pattern of p01 and p10 to p19.
    let values = &with["filter"]["not"]["values"];
    assert_eq!(
        values,
        &json!([
            "k:t0-*", "k:t8-*", "k:t2-*", "k:t3-*", "k:t4-*", "k:t5-*", "k:t1*", "k:t6-*",
            "k:t7-*", "k:t9-*"
        ]),
        "{with:#}"
    );
}
