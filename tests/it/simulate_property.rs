//! End to end, as a property: over random small policy sets and guards, a brute-force search samples guarded
//! requests from a wide generator that never looks at the policies' literals (any strings over the patterns'
//! alphabet and beyond, numbers, instants decades ahead, IPs of both families, lists, maps, requests with no
//! URI) and decides them with the real evaluator. Whenever it finds a denied one, the simulator must report a
//! finding (a lockout, or "inconclusive"); and every lockout it reports must be a request the evaluator denies.

use std::path::PathBuf;
use std::time::Duration;

use arbiter::eval::{evaluate, EvalOptions};
use arbiter::load::SourceSet;
use arbiter::simulate::{analyze, FindingKind, LockoutOptions};
use arbiter::Request;
use jiff::Timestamp;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Map, Value};

const ZONES: &[&str] = &[
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Africa/Cairo",
    "+05:30",
];
const PATHS: &[&str] = &[
    "resource.x",
    "principal.c",
    "environment.time",
    "environment.source_ip",
    "environment.port",
    "resource.owner",
    "resource.uri",
    "action",
];

fn as_of() -> Timestamp {
    "2026-11-23T12:00:00Z".parse().unwrap()
}

fn quoted(values: &[String]) -> String {
    serde_json::to_string(values).unwrap()
}

fn condition() -> BoxedStrategy<String> {
    let path = prop::sample::select(PATHS);
    let strings = prop::collection::vec("[ab:]{0,3}", 1..3);
    let op = prop_oneof![
        strings
            .clone()
            .prop_map(|v| format!("op: equals\n    values: {}", quoted(&v))),
        strings
            .clone()
            .prop_map(|v| format!("op: starts_with\n    values: {}", quoted(&v))),
        strings
            .clone()
            .prop_map(|v| format!("op: ends_with\n    values: {}", quoted(&v))),
        prop::collection::vec("[ab:*]{1,4}", 1..3)
            .prop_map(|v| format!("op: glob\n    values: {}", quoted(&v))),
        (prop::sample::select(&["lt", "ge"][..]), -3i32..70_000)
            .prop_map(|(op, n)| format!("op: {op}\n    values: [{n}]")),
        (
            prop::sample::select(&["before", "after"][..]),
            0i64..(40 * 366 * 86_400)
        )
            .prop_map(|(op, s)| {
                let t = Timestamp::from_second(1_795_435_200 + s).unwrap();
                format!("op: {op}\n    values: [\"{t}\"]")
            }),
        (0u32..24, 0u32..24, prop::sample::select(ZONES))
            .prop_filter("start = end", |(a, b, _)| a != b)
            .prop_map(|(a, b, z)| format!(
                "op: time_of_day\n    values: [\"{a:02}:00-{b:02}:30\"]\n    zone: \"{z}\""
            )),
        (
            prop::sample::select(&["mon", "sat", "sun"][..]),
            prop::sample::select(ZONES)
        )
            .prop_map(|(d, z)| format!("op: weekday\n    values: [{d}]\n    zone: \"{z}\"")),
        prop::sample::select(&["10.0.0.0/8", "2001:db8::/32", "192.0.2.0/24"][..])
            .prop_map(|c| format!("op: cidr\n    values: [\"{c}\"]")),
        Just("op: exists".to_string()),
        Just("op: is_true".to_string()),
        Just("op: equals\n    values: [\"${principal.id}\"]".to_string()),
    ];
    (path, op, any::<bool>())
        .prop_map(|(path, op, negate)| {
            format!(
                "  - path: {path}\n    {op}\n{}",
                if negate { "    negate: true\n" } else { "" }
            )
        })
        .boxed()
}

#[derive(Debug, Clone)]
struct Pol {
    deny: bool,
    actions: &'static str,
    resources: &'static str,
    selector: &'static str,
    conditions: Vec<String>,
}

fn policy() -> impl Strategy<Value = Pol> {
    (
        prop::bool::weighted(0.6),
        prop::sample::select(
            &[
                "[\"*\"]",
                "[\"Read*\"]",
                "[\"*Policy\"]",
                "[DeletePolicy, ReadUser]",
                "[\"*a*\"]",
            ][..],
        ),
        prop::sample::select(
            &[
                "[\"*\"]",
                "[\"kylo:kylo:admin:*\"]",
                "[\"kylo:kylo:admin:policies:prod-*\"]",
                "[\"*:b*\"]",
                "[\"k*\"]",
            ][..],
        ),
        prop::sample::select(
            &[
                "{}",
                "{groups: [admin]}",
                "{id: probe}",
                "{c: [a, b]}",
                "{groups: [other]}",
            ][..],
        ),
        prop::collection::vec(condition(), 0..3),
    )
        .prop_map(|(deny, actions, resources, selector, conditions)| Pol {
            deny,
            actions,
            resources,
            selector,
            conditions,
        })
}

const GUARD_ACTIONS: &[&str] = &["[\"*\"]", "[DeletePolicy, ReadUser]", "[\"Read*\"]"];
const GUARD_RESOURCES: &[&str] = &[
    "[\"*\"]",
    "[\"kylo:kylo:admin:*\"]",
    "[\"kylo:kylo:admin:policies:*\"]",
];

fn render(guard: (usize, usize), base: bool, pols: &[Pol]) -> String {
    let mut out = format!(
        "kind: LockoutGuard\nid: guard\nprincipal: {{id: probe, groups: [admin]}}\nmust_allow:\n  - actions: {}\n    resources: {}\n",
        GUARD_ACTIONS[guard.0], GUARD_RESOURCES[guard.1]
    );
    if base {
        out += "---\nkind: Policy\nid: base\neffect: allow\nactions: [\"*\"]\nresources: [\"*\"]\n---\nkind: PolicyAttachment\nid: base\npolicy: base\nprincipal_selector: {groups: [admin]}\n";
    }
    for (i, p) in pols.iter().enumerate() {
        out += &format!(
            "---\nkind: Policy\nid: p{i}\neffect: {}\nactions: {}\nresources: {}\n",
            if p.deny { "deny" } else { "allow" },
            p.actions,
            p.resources
        );
        if !p.conditions.is_empty() {
            out += "conditions:\n";
            for c in &p.conditions {
                out += c;
            }
        }
        out += &format!(
            "---\nkind: PolicyAttachment\nid: a{i}\npolicy: p{i}\nprincipal_selector: {}\n",
            p.selector
        );
    }
    out
}

/// A wide value generator, blind to the policies' literals.
fn any_value() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-4i64..5).prop_map(|n| json!(n)),
        any::<i32>().prop_map(|n| json!(n)),
        (-1.0e5f64..1.0e5).prop_map(|f| json!(f)),
        "[ab:*x]{0,5}".prop_map(Value::String),
        ".{0,3}".prop_map(Value::String),
        (1_700_000_000i64..4_102_444_800)
            .prop_map(|s| json!(Timestamp::from_second(s).unwrap().to_string())),
        any::<u32>().prop_map(|a| json!(std::net::Ipv4Addr::from(a).to_string())),
        prop::collection::vec("[ab:x]{0,3}", 0..4).prop_map(|v| json!(v)),
        Just(json!({"a": 1})),
    ]
    .boxed()
}

fn request() -> impl Strategy<Value = Value> {
    let action = prop_oneof![
        prop::sample::select(
            &[
                "DeletePolicy",
                "ReadUser",
                "ReadPolicy",
                "ReadKey",
                "CreatePolicy"
            ][..]
        )
        .prop_map(String::from),
        "[A-Za-z:*]{1,8}",
        "Read[a-z]{0,3}",
    ];
    let uri = prop_oneof![
        Just(String::new()),
        "kylo:kylo:admin:policies:[a-z:-]{0,6}",
        "kylo:kylo:admin:[a-z:]{0,8}",
        "[kab:*-]{0,10}",
        "kylo:kylo:admin:policies:prod-[a-z]{0,3}",
    ];
    (
        action,
        uri,
        any_value(),
        any_value(),
        prop_oneof![0i64..(7 * 86_400), 0i64..(40 * 366 * 86_400)],
        prop_oneof![
            Just(String::new()),
            any::<u32>().prop_map(|a| std::net::Ipv4Addr::from(a).to_string()),
            (0u8..255).prop_map(|b| format!("10.0.0.{b}")),
            any::<u128>().prop_map(|a| std::net::Ipv6Addr::from(a).to_string()),
        ],
        prop_oneof![Just(0u32), 1u32..=65_535],
        prop_oneof![Just(String::new()), "[ab:]{1,3}", Just("probe".to_string())],
    )
        .prop_map(|(action, uri, x, c, secs, ip, port, owner)| {
            let mut principal_attrs = Map::new();
            if !c.is_null() {
                principal_attrs.insert("c".into(), c);
            }
            let mut resource_attrs = Map::new();
            if !x.is_null() {
                resource_attrs.insert("x".into(), x);
            }
            let time = Timestamp::from_second(as_of().as_second() + secs).unwrap();
            json!({
                "principal": {"id": "probe", "groups": ["admin"], "attributes": principal_attrs},
                "action": action,
                "resource": {"uri": uri, "owner": owner, "attributes": resource_attrs},
                "environment": {"time": time.to_string(), "source_ip": ip, "port": port},
            })
        })
}

fn guarded(r: &Request, guard: (usize, usize)) -> bool {
    let glob = |patterns: &str, s: &str| {
        let list: Vec<String> = serde_json::from_str(
            &patterns.replace("DeletePolicy, ReadUser", "\"DeletePolicy\", \"ReadUser\""),
        )
        .unwrap();
        list.iter()
            .any(|p| arbiter::compile::glob::Glob::new(p).unwrap().matches(s))
    };
    glob(GUARD_ACTIONS[guard.0], &r.action)
        && glob(
            GUARD_RESOURCES[guard.1],
            r.resource.uri.as_deref().unwrap_or(""),
        )
}

#[test]
fn the_simulator_finds_every_lockout_that_sampling_finds() {
    let mut runner = TestRunner::new(Config {
        cases: 2_000,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        (0..GUARD_ACTIONS.len(), 0..GUARD_RESOURCES.len()),
        prop::bool::weighted(0.7),
        prop::collection::vec(policy(), 1..4),
        prop::collection::vec(request(), 48),
    );
    let found = std::cell::Cell::new(0u32);
    runner
        .run(&strategy, |(guard, base, pols, requests)| {
            let yaml = render(guard, base, &pols);
            let set = SourceSet::from_files([(PathBuf::from("p.yaml"), yaml.clone())]);
            let snapshot = arbiter::build(&set).unwrap_or_else(|d| panic!("{d}\n{yaml}"));
            let options = LockoutOptions {
                as_of: as_of().into(),
                budget: Duration::from_secs(60),
                superuser: Some("admin".into()),
            };
            let findings = analyze(None, &snapshot, &options).unwrap();
            // Every reported lockout is real.
            for f in findings.iter().filter(|f| f.kind == FindingKind::Lockout) {
                let cx = f
                    .counterexample
                    .clone()
                    .expect("a lockout has a counterexample");
                let r = Request::from_json(cx.clone()).expect("counterexamples are valid input");
                let d = evaluate(
                    &snapshot,
                    &r,
                    r.environment.time.unwrap(),
                    &EvalOptions::default(),
                );
                prop_assert!(!d.allowed, "false alarm: {cx}\n{yaml}");
                prop_assert!(
                    guarded(&r, guard),
                    "counterexample outside the guard: {cx}\n{yaml}"
                );
            }
            // Every lockout the sampling finds is reported.
            let denied = requests.iter().find_map(|v| {
                let r = Request::from_json(v.clone()).ok()?;
                let time = r.environment.time?;
                (guarded(&r, guard)
                    && !evaluate(&snapshot, &r, time, &EvalOptions::default()).allowed)
                    .then_some(v)
            });
            if let Some(v) = denied {
                found.set(found.get() + 1);
                prop_assert!(
                    !findings.is_empty(),
                    "sampling found a denied guarded request the simulator missed:\n{v}\n{yaml}"
                );
            }
            Ok(())
        })
        .unwrap();
    // The generator must reach lockouts often enough for the property to mean something.
    assert!(
        found.get() > 200,
        "only {} sets had a sampled lockout",
        found.get()
    );
}
