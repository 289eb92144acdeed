//! Property: over random small policy sets, whenever a brute-force search over a grid of guarded requests
//! finds one the set denies, the simulator reports a finding too (it never calls a lockout safe).

use std::path::PathBuf;
use std::time::Duration;

use arbiter::eval::{evaluate, EvalOptions};
use arbiter::load::SourceSet;
use arbiter::simulate::{analyze, LockoutOptions};
use arbiter::Request;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use serde_json::json;

const GUARD: &str = "kind: LockoutGuard\nid: guard\nprincipal: {id: probe, groups: [admin]}\nmust_allow:\n  - actions: [DeletePolicy, ReadUser]\n    resources: [\"kylo:kylo:admin:*\"]\n";

const CONDITIONS: &[&str] = &[
    "  - path: environment.time\n    op: time_of_day\n    values: [\"22:00-06:00\"]\n    zone: Europe/Paris",
    "  - path: environment.time\n    op: time_of_day\n    values: [\"09:00-17:00\"]",
    "  - path: environment.time\n    op: weekday\n    values: [sat, sun]\n    zone: Asia/Tokyo",
    "  - path: environment.time\n    op: after\n    values: [\"2026-11-25T00:00:00Z\"]",
    "  - path: environment.source_ip\n    op: exists\n  - path: environment.source_ip\n    op: cidr\n    values: [\"10.0.0.0/8\"]",
    "  - path: environment.source_ip\n    op: exists\n  - path: environment.source_ip\n    op: cidr\n    values: [\"10.0.0.0/8\"]\n    negate: true",
    "  - path: resource.tier\n    op: exists\n  - path: resource.tier\n    op: equals\n    values: [prod]",
    "  - path: principal.level\n    op: exists\n  - path: principal.level\n    op: lt\n    values: [3]",
    "  - path: resource.locked\n    op: exists\n  - path: resource.locked\n    op: is_true\n    negate: true",
];
const ACTIONS: &[&str] = &["\"*\"", "Delete*", "ReadUser", "\"*Policy\""];
const RESOURCES: &[&str] = &[
    "\"*\"",
    "\"kylo:kylo:admin:*\"",
    "\"kylo:kylo:admin:policies:prod-*\"",
    "\"kylo:kylo:admin:users:*\"",
];
const SELECTORS: &[&str] = &[
    "{groups: [admin]}",
    "{}",
    "{id: probe}",
    "{groups: [admin], tier: gold}",
];

#[derive(Debug, Clone)]
struct Pol {
    deny: bool,
    action: usize,
    resource: usize,
    selector: usize,
    conditions: Vec<usize>,
}

fn pol() -> impl Strategy<Value = Pol> {
    (
        prop::bool::weighted(0.8),
        0..ACTIONS.len(),
        0..RESOURCES.len(),
        0..SELECTORS.len(),
        prop::collection::vec(0..CONDITIONS.len(), 1..3),
    )
        .prop_map(|(deny, action, resource, selector, conditions)| Pol {
            deny,
            action,
            resource,
            selector,
            conditions,
        })
}

fn render(pols: &[Pol]) -> String {
    // An unconditional allow for the guard's group, so findings come from the random policies.
    let mut out = String::from(GUARD);
    out += "---\nkind: Policy\nid: base\neffect: allow\nactions: [\"*\"]\nresources: [\"*\"]\n---\nkind: PolicyAttachment\nid: base\npolicy: base\nprincipal_selector: {groups: [admin]}\n";
    for (i, p) in pols.iter().enumerate() {
        out += &format!(
            "---\nkind: Policy\nid: p{i}\neffect: {}\nactions: [{}]\nresources: [{}]\n",
            if p.deny { "deny" } else { "allow" },
            ACTIONS[p.action],
            RESOURCES[p.resource]
        );
        if !p.conditions.is_empty() {
            out += "conditions:\n";
            for c in &p.conditions {
                out += CONDITIONS[*c];
                out += "\n";
            }
        }
        out += &format!(
            "---\nkind: PolicyAttachment\nid: a{i}\npolicy: p{i}\nprincipal_selector: {}\n",
            SELECTORS[p.selector]
        );
    }
    out
}

fn grid_request(i: u64, as_of: Timestamp) -> Request {
    // A deterministic walk over the grid: each coordinate from its own digit of `i`.
    let pick = |n: u64, k: u64| ((i / n) % k) as usize;
    let actions = ["DeletePolicy", "ReadUser"];
    let uris = [
        "kylo:kylo:admin:policies:prod-1",
        "kylo:kylo:admin:policies:x",
        "kylo:kylo:admin:users:u",
        "kylo:kylo:admin:",
    ];
    let ips = [
        None,
        Some("10.1.1.1"),
        Some("192.168.1.1"),
        Some("2001:db8::1"),
    ];
    let tiers = [None, Some("prod"), Some("dev")];
    let levels = [None, Some(1), Some(5)];
    let locked = [None, Some(true), Some(false)];
    let claims = [None, Some("gold")];
    let hours = (i * 7919) % (24 * 9); // hours over nine days
    let time = as_of
        .checked_add(SignedDuration::from_secs(hours as i64 * 3600 + 1800))
        .unwrap();
    let mut resource_attrs = serde_json::Map::new();
    if let Some(t) = tiers[pick(1, 3)] {
        resource_attrs.insert("tier".into(), json!(t));
    }
    if let Some(l) = locked[pick(3, 3)] {
        resource_attrs.insert("locked".into(), json!(l));
    }
    let mut principal_attrs = serde_json::Map::new();
    if let Some(l) = levels[pick(9, 3)] {
        principal_attrs.insert("level".into(), json!(l));
    }
    if let Some(c) = claims[pick(27, 2)] {
        principal_attrs.insert("tier".into(), json!(c));
    }
    Request::from_json(json!({
        "principal": {"id": "probe", "groups": ["admin"], "attributes": principal_attrs},
        "action": actions[pick(54, 2)],
        "resource": {"uri": uris[pick(108, 4)], "attributes": resource_attrs},
        "environment": {"time": time.to_string(), "source_ip": ips[pick(432, 4)].unwrap_or("")},
    }))
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn simulator_finds_every_lockout_the_grid_finds(pols in prop::collection::vec(pol(), 1..5)) {
        let yaml = render(&pols);
        let set = SourceSet::from_files([(PathBuf::from("p.yaml"), yaml.clone())]);
        let snapshot = arbiter::build(&set).unwrap_or_else(|d| panic!("{d}\n{yaml}"));
        let as_of: Timestamp = "2026-11-23T12:00:00Z".parse().unwrap();
        let denied = (0..1728u64).map(|i| grid_request(i, as_of)).find(|r| {
            !evaluate(&snapshot, r, r.environment.time.unwrap(), &EvalOptions::default()).allowed
        });
        let options = LockoutOptions { as_of, budget: Duration::from_secs(30), superuser: Some("admin".into()) };
        let findings = analyze(None, &snapshot, &options).unwrap();
        if let Some(r) = denied {
            prop_assert!(!findings.is_empty(), "grid found a denied guarded request the simulator missed:\n{}\n{}", yaml, r.to_json());
        }
    }
}
