//! The query plan against per-row `Authorize`, with a real database: random policy sets and random resource tables
//! (missing attributes, wrong types, lists, nested maps, SQL's own special characters) are stored in SQLite; the
//! rows the plan's `WHERE` returns (checked with `Plan::allows` when the plan says it is not exact) must be exactly
//! the rows for which the engine answers ALLOW for every action. A second property reads the plan's JSON filter
//! with the plain reference of `common::reference`, written apart from the engine, and asks the same.
//!
//! The generator's literals are its own: SQL `LIKE` characters in URIs, a URI that differs only in case, numbers
//! stored as text, `7` next to `7.0`, a dotted action, JSON `null` inside lists.

use std::collections::BTreeSet;

use crate::common::reference::{self, glob_regex, T3};
use arbiter::{Engine, PlanKind, PlanRequest, Request, SqlMapping};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Map, Value};

const ACTIONS: &[&str] = &["EncryptWithKey", "ReadKey", "Do.It"];
const ACTION_PATTERNS: &[&str] = &["*", "*WithKey", "ReadKey", "Do.It", "*Key"];
const URI_PATTERNS: &[&str] = &[
    "*",
    "kylo:kylo:vault:keys:*",
    "kylo:kylo:vault:keys:k1",
    "kylo:*:k1",
    "*:k2",
    "kylo:kylo:vault:keys:k*",
    "kylo:kylo:admin:*",
    "a_%*",
];
const URIS: &[Option<&str>] = &[
    Some("kylo:kylo:vault:keys:k1"),
    Some("kylo:kylo:vault:keys:k2"),
    Some("kylo:kylo:vault:keys:K1"),
    Some("kylo:kylo:admin:users:u1"),
    Some("a_%x"),
    Some("ab%x"),
    Some(""),
    None,
];
const NOW: &str = "2026-06-01T00:00:00Z";

/// (path, op, values): conditions on the resource, on the request, and both.
fn conditions() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("resource.owner", "equals", json!(["${principal.id}"])),
        (
            "resource.permissions.${action}",
            "equals",
            json!(["${principal.groups}"]),
        ),
        ("resource.level", "lt", json!([3])),
        ("resource.level", "ge", json!([5])),
        ("resource.level", "equals", json!([1])),
        ("resource.alg", "equals", json!(["AES", 7])),
        ("resource.alg", "starts_with", json!(["AE"])),
        ("resource.tags", "contains_all", json!(["pci"])),
        ("resource.tags", "equals", json!(["pci", "gdpr"])),
        ("resource.name", "glob", json!(["key-*", "*_x"])),
        ("resource.name", "ends_with", json!(["-prod", ""])),
        ("resource.global", "is_true", Value::Null),
        ("resource.global", "equals", json!([true])),
        ("resource.flag", "exists", Value::Null),
        ("resource.uri", "starts_with", json!(["kylo:kylo:vault:"])),
        ("resource.owner", "exists", Value::Null),
        ("principal.dept", "equals", json!(["ops"])),
        ("resource.region", "equals", json!(["${principal.region}"])),
        ("resource.level", "lt", json!(["${principal.max}"])),
        (
            "resource.name",
            "starts_with",
            json!(["${principal.prefix}"]),
        ),
        ("resource.expires", "after", json!(["${environment.time}"])),
        ("resource.ip", "cidr", json!(["10.0.0.0/8"])),
        (
            "principal.groups",
            "contains_all",
            json!(["${resource.required}"]),
        ),
        ("resource.label", "equals", json!(["${resource.alg}"])),
        ("resource.meta.deep", "equals", json!(["x"])),
        ("resource.alg.sub", "exists", Value::Null),
        // A path written with a dot and the same path through `${action}` for the action `Do.It`.
        ("resource.permissions.${action}", "glob", json!(["*"])),
        ("resource.permissions.Do.It", "glob", json!(["*"])),
        // `${action}` inside a reference to the resource: one leaf per action, never merged.
        (
            "principal.groups",
            "equals",
            json!(["${resource.permissions.${action}}"]),
        ),
        // Above 2^53, numbers compare as doubles.
        ("resource.level", "le", json!([9007199254740992u64])),
    ]
}

#[derive(Debug, Clone)]
struct Pol {
    deny: bool,
    actions: Vec<&'static str>,
    resources: Vec<&'static str>,
    conditions: Vec<(usize, bool)>,
}

#[derive(Debug, Clone)]
struct Case {
    policies: Vec<Pol>,
    /// (policy, selector: None = everyone, Some(group))
    attachments: Vec<(usize, Option<&'static str>)>,
    principal: Value,
    actions: Vec<&'static str>,
    known_uri: Option<&'static str>,
    known_owner: Option<&'static str>,
    rows: Vec<Row>,
}

#[derive(Debug, Clone)]
struct Row {
    uri: Option<&'static str>,
    owner: Option<&'static str>,
    alg: Value,
    level: Value,
    attributes: Option<Map<String, Value>>,
}

fn pick(choices: Vec<Value>) -> impl Strategy<Value = Option<Value>> {
    prop::option::weighted(0.7, prop::sample::select(choices))
}

fn row_strategy() -> impl Strategy<Value = Row> {
    (
        (
            prop::sample::select(URIS),
            prop::sample::select(&[None, Some(""), Some("u1"), Some("u2")][..]),
            prop::sample::select(vec![
                Value::Null,
                json!("AES"),
                json!("AESX"),
                json!(7),
                json!(7.0),
                json!("7"),
                json!("DES"),
            ]),
            prop::sample::select(vec![
                Value::Null,
                json!(1),
                json!(1.0),
                json!(3),
                json!(5.5),
                json!("4"),
                json!(2.5),
                json!(9007199254740993u64),
            ]),
            prop::bool::weighted(0.9),
        ),
        (
            pick(vec![
                json!(["g1"]),
                json!("g2"),
                json!([1]),
                json!({"x": 1}),
                json!([]),
            ]),
            pick(vec![json!(["g2", "g1"]), json!("g1"), json!(["g3"])]),
            pick(vec![
                json!(["pci"]),
                json!(["pci", "gdpr"]),
                json!([]),
                json!("pci"),
                json!([1, "pci"]),
                json!({"a": 1}),
            ]),
            pick(vec![
                json!("key-1"),
                json!("k_x"),
                json!("x-prod"),
                json!(5),
                json!(["key-2", 3]),
                json!([]),
                json!([null]),
                json!("kx"),
            ]),
            pick(vec![json!(true), json!(false), json!("true"), json!(1)]),
            pick(vec![Value::Null, json!(0), json!("x")]),
        ),
        (
            pick(vec![
                json!("eu"),
                json!("us"),
                json!(["us", "eu"]),
                json!({}),
            ]),
            pick(vec![
                json!("2026-07-01T00:00:00Z"),
                json!("2026-01-01T00:00:00Z"),
                json!("bad"),
                json!(5),
            ]),
            pick(vec![json!("10.1.1.1"), json!("11.0.0.1"), json!(3)]),
            pick(vec![
                json!(["g1"]),
                json!(["g1", "g3"]),
                json!("g1"),
                json!([]),
            ]),
            pick(vec![json!("AES"), json!(7), json!("x")]),
            pick(vec![
                json!({"deep": "x"}),
                json!({"deep": ["y", "x"]}),
                json!("x"),
                json!({"deep": {"a": 1}}),
            ]),
            // A key that a column maps: the column alone is read.
            prop::option::weighted(0.2, Just(json!("RSA"))),
        ),
    )
        .prop_map(
            |(
                (uri, owner, alg, level, has_json),
                (perm_enc, perm_read, tags, name, global, flag),
                (region, expires, ip, required, label, meta, shadowed_alg),
            )| {
                let mut attributes = Map::new();
                let mut permissions = Map::new();
                for (action, v) in [("EncryptWithKey", perm_enc), ("Do.It", perm_read)] {
                    if let Some(v) = v {
                        permissions.insert(action.into(), v);
                    }
                }
                if !permissions.is_empty() {
                    attributes.insert("permissions".into(), Value::Object(permissions));
                }
                for (k, v) in [
                    ("tags", tags),
                    ("name", name),
                    ("global", global),
                    ("flag", flag),
                    ("region", region),
                    ("expires", expires),
                    ("ip", ip),
                    ("required", required),
                    ("label", label),
                    ("meta", meta),
                    ("alg", shadowed_alg),
                ] {
                    if let Some(v) = v {
                        attributes.insert(k.into(), v);
                    }
                }
                Row {
                    uri,
                    owner,
                    alg,
                    level,
                    attributes: has_json.then_some(attributes),
                }
            },
        )
}

fn case_strategy() -> impl Strategy<Value = Case> {
    let n_conditions = conditions().len();
    let pol = (
        prop::bool::weighted(0.35),
        proptest::sample::subsequence(ACTION_PATTERNS, 1..=2),
        proptest::sample::subsequence(URI_PATTERNS, 1..=2),
        prop::collection::vec((0..n_conditions, any::<bool>()), 0..3),
    )
        .prop_map(|(deny, actions, resources, conditions)| Pol {
            deny,
            actions,
            resources,
            conditions,
        });
    let principal = (
        prop::sample::select(&["u1", "u2"][..]),
        proptest::sample::subsequence(&["g1", "g2"][..], 0..=2),
        pick(vec![json!("ops"), json!("sec")]),
        pick(vec![json!("eu"), json!(["eu", "us"]), json!({"k": 1})]),
        pick(vec![json!(4), json!("4")]),
        pick(vec![json!("key"), json!(5), json!(["k", "x-"])]),
    )
        .prop_map(|(id, groups, dept, region, max, prefix)| {
            let mut attributes = Map::new();
            for (k, v) in [
                ("dept", dept),
                ("region", region),
                ("max", max),
                ("prefix", prefix),
            ] {
                if let Some(v) = v {
                    attributes.insert(k.into(), v);
                }
            }
            json!({"id": id, "groups": groups, "attributes": attributes})
        });
    (
        prop::collection::vec(pol, 1..6),
        principal,
        proptest::sample::subsequence(ACTIONS, 1..=2),
        prop::option::weighted(0.2, Just("kylo:kylo:vault:keys:*")),
        prop::option::weighted(0.2, Just("u1")),
        prop::collection::vec(row_strategy(), 8..20),
    )
        .prop_flat_map(
            |(policies, principal, actions, known_uri, known_owner, rows)| {
                let n = policies.len();
                (
                    Just(policies),
                    prop::collection::vec(
                        (
                            0..n,
                            prop::option::weighted(0.4, prop::sample::select(&["g1", "g2"][..])),
                        ),
                        1..7,
                    ),
                    Just((principal, actions, known_uri, known_owner, rows)),
                )
            },
        )
        .prop_map(
            |(policies, attachments, (principal, actions, known_uri, known_owner, rows))| Case {
                policies,
                attachments,
                principal,
                actions,
                known_uri,
                known_owner,
                rows,
            },
        )
}

fn render(case: &Case) -> String {
    let all = conditions();
    let mut out = String::new();
    for (i, p) in case.policies.iter().enumerate() {
        out.push_str(&format!(
            "kind: Policy\nid: p{i}\neffect: {}\nactions: {}\nresources: {}\n",
            if p.deny { "deny" } else { "allow" },
            json!(p.actions),
            json!(p.resources)
        ));
        if !p.conditions.is_empty() {
            out.push_str("conditions:\n");
            for &(c, negate) in &p.conditions {
                let (path, op, values) = &all[c];
                out.push_str(&format!(
                    "  - {{path: \"{path}\", op: {op}, negate: {negate}"
                ));
                if !values.is_null() {
                    out.push_str(&format!(", values: {values}"));
                }
                out.push_str("}\n");
            }
        }
        out.push_str("---\n");
    }
    for (i, (p, group)) in case.attachments.iter().enumerate() {
        let selector = match group {
            None => "{}".to_string(),
            Some(g) => format!("{{groups: [{g}]}}"),
        };
        out.push_str(&format!(
            "kind: PolicyAttachment\nid: a{i}\npolicy: p{p}\nprincipal_selector: {selector}\n---\n"
        ));
    }
    // The directory adds g2 to u2, so plans must see the directory's groups.
    out.push_str("kind: Group\nname: g2\nmembers: [u2]\n");
    out
}

/// The resource of a row under the mapping: the JSON object, with the attributes mapped to columns read from the
/// columns only.
fn resource_json(row: &Row) -> Value {
    let mut attributes = row.attributes.clone().unwrap_or_default();
    for (k, v) in [("alg", &row.alg), ("level", &row.level)] {
        attributes.remove(k);
        if !v.is_null() {
            attributes.insert(k.into(), v.clone());
        }
    }
    json!({"uri": row.uri.unwrap_or(""), "owner": row.owner.unwrap_or(""), "attributes": attributes})
}

fn mapping() -> SqlMapping {
    SqlMapping {
        columns: [
            ("alg".into(), "alg".into()),
            ("level".into(), "level".into()),
        ]
        .into(),
        ..SqlMapping::default()
    }
}

struct Built {
    engine: Engine,
    plan: arbiter::Plan,
    /// Per row: ALLOW for every action by per-row `Authorize`, and the row satisfies the known fields.
    expected: Vec<bool>,
}

fn build(case: &Case) -> Built {
    let yaml = render(case);
    let engine = Engine::from_sources([("gen.yaml", yaml.clone())])
        .unwrap_or_else(|e| panic!("generated set invalid: {e}\n{yaml}"));
    let environment = json!({"time": NOW, "source_ip": "10.0.0.1"});
    let mut request =
        json!({"principal": case.principal, "actions": case.actions, "environment": environment});
    request["resource"] = json!({"uri": case.known_uri, "owner": case.known_owner});
    let plan_request = PlanRequest::from_json(request).expect("valid plan request");
    let plan = engine.plan(&plan_request);
    let expected = case
        .rows
        .iter()
        .map(|row| {
            let known = case
                .known_uri
                .is_none_or(|g| glob_regex(g).is_match(row.uri.unwrap_or("")))
                && case.known_owner.is_none_or(|o| row.owner == Some(o));
            known
                && case.actions.iter().all(|action| {
                    let r = json!({"principal": case.principal, "action": action,
                        "resource": resource_json(row), "environment": environment});
                    engine
                        .decide(&Request::from_json(r).expect("generated row valid"))
                        .allowed
                })
        })
        .collect();
    Built {
        engine,
        plan,
        expected,
    }
}

fn sqlite_rows(case: &Case, sql: &arbiter::SqlFilter) -> BTreeSet<usize> {
    use rusqlite::types::Value as Sql;
    let db = rusqlite::Connection::open_in_memory().unwrap();
    db.execute_batch(
        "CREATE TABLE res (id INTEGER PRIMARY KEY, uri TEXT, owner TEXT, alg, level, attributes TEXT)",
    )
    .unwrap();
    let to_sql = |v: &Value| match v {
        Value::Null => Sql::Null,
        Value::String(s) => Sql::Text(s.clone()),
        Value::Number(n) if n.is_f64() => Sql::Real(n.as_f64().unwrap()),
        Value::Number(n) => Sql::Integer(n.as_i64().expect("generated integers fit in i64")),
        other => panic!("not a column value: {other}"),
    };
    for (i, row) in case.rows.iter().enumerate() {
        db.execute(
            "INSERT INTO res VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            rusqlite::params_from_iter([
                Sql::Integer(i as i64),
                row.uri.map_or(Sql::Null, |u| Sql::Text(u.into())),
                row.owner.map_or(Sql::Null, |o| Sql::Text(o.into())),
                to_sql(&row.alg),
                to_sql(&row.level),
                row.attributes.as_ref().map_or(Sql::Null, |a| {
                    Sql::Text(Value::Object(a.clone()).to_string())
                }),
            ]),
        )
        .unwrap();
    }
    let query = format!("SELECT id FROM res WHERE {}", sql.where_clause);
    let params: Vec<Sql> = sql.params.iter().map(to_sql).collect();
    let mut stmt = db
        .prepare(&query)
        .unwrap_or_else(|e| panic!("{e}\n{query}"));
    let rows = stmt
        .query_map(rusqlite::params_from_iter(params), |r| r.get::<_, i64>(0))
        .unwrap_or_else(|e| panic!("{e}\n{query}"));
    rows.map(|r| r.unwrap() as usize).collect()
}

/// Runs `check` over 2,000 random cases; returns how many were conditional with an exact `WHERE` (so that a
/// generator that only ever produced constants would fail the test).
fn run(check: impl Fn(&Case, &Built) -> Result<(), TestCaseError>) -> (usize, usize) {
    let mut runner = TestRunner::new(Config {
        cases: 2_000,
        failure_persistence: None,
        ..Config::default()
    });
    let counts = std::cell::Cell::new((0usize, 0usize));
    runner
        .run(&case_strategy(), |case| {
            let built = build(&case);
            let (mut conditional, mut exact) = counts.get();
            if built.plan.kind == PlanKind::Conditional {
                conditional += 1;
                exact += usize::from(!built.plan.residual());
            }
            counts.set((conditional, exact));
            check(&case, &built)
        })
        .unwrap_or_else(|e| panic!("{e}"));
    counts.get()
}

#[test]
fn sql_where_returns_exactly_the_rows_authorize_allows() {
    let (conditional, exact) = run(|case, built| {
        let sql = built.plan.to_sql(&mapping()).unwrap();
        let returned = sqlite_rows(case, &sql);
        let allowed: BTreeSet<usize> = (0..case.rows.len())
            .filter(|&i| built.expected[i])
            .collect();
        let context = || {
            format!(
                "\npolicies:\n{}\nplan: {}\nwhere: {}\nparams: {:?}",
                render(case),
                built.plan.to_json(),
                sql.where_clause,
                sql.params
            )
        };
        prop_assert!(
            allowed.is_subset(&returned),
            "the WHERE dropped allowed rows {:?}{}",
            allowed.difference(&returned).collect::<Vec<_>>(),
            context()
        );
        prop_assert_eq!(sql.exact, !built.plan.residual(), "{}", context());
        let checked: BTreeSet<usize> = returned
            .iter()
            .copied()
            .filter(|&i| {
                let r =
                    arbiter::Request::from_json(json!({"principal": {"id": "x"}, "action": "x",
                    "resource": resource_json(&case.rows[i])}))
                    .unwrap();
                sql.exact || built.plan.allows(&r.resource)
            })
            .collect();
        prop_assert_eq!(&checked, &allowed, "rows differ{}", context());
        // The plan's own in-memory check agrees on every row, returned or not.
        for (i, row) in case.rows.iter().enumerate() {
            let r = arbiter::Request::from_json(
                json!({"principal": {"id": "x"}, "action": "x", "resource": resource_json(row)}),
            )
            .unwrap();
            prop_assert_eq!(
                built.plan.allows(&r.resource),
                built.expected[i],
                "row {}{}",
                i,
                context()
            );
        }
        let _ = &built.engine;
        Ok(())
    });
    assert!(conditional >= 400, "only {conditional} conditional plans");
    assert!(
        exact >= 200,
        "only {exact} conditional plans with an exact WHERE"
    );
}

/// The JSON filter, read by the plain reference: a leaf holds when its condition is true.
fn holds(node: &Value, resource: &Value) -> bool {
    match node {
        Value::Bool(b) => *b,
        Value::Object(m) if m.contains_key("and") => m["and"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| holds(c, resource)),
        Value::Object(m) if m.contains_key("or") => m["or"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| holds(c, resource)),
        Value::Object(m) if m.contains_key("not") => !holds(&m["not"], resource),
        Value::Object(m) => {
            let mut flat =
                json!({"resource": resource, "principal": {}, "environment": {}, "action": ""});
            for (path, value) in m
                .get("bindings")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                match path.split_once('.') {
                    Some((part, name)) => flat[part][name] = value.clone(),
                    None => flat[path.as_str()] = value.clone(),
                }
            }
            let cond = reference::Cond {
                path: m["path"].as_str().unwrap().into(),
                op: m["op"].as_str().unwrap().into(),
                values: m
                    .get("values")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                negate: m.get("negate").and_then(Value::as_bool).unwrap_or(false),
            };
            let segments: Option<Vec<&str>> = m.get("segments").map(|s| {
                std::iter::once("resource")
                    .chain(s.as_array().unwrap().iter().map(|v| v.as_str().unwrap()))
                    .collect()
            });
            reference::condition(&cond, segments.as_deref(), &flat) == T3::T
        }
        other => panic!("not a filter node: {other}"),
    }
}

#[test]
fn json_filter_read_by_the_reference_passes_exactly_the_allowed_rows() {
    let (conditional, _) = run(|case, built| {
        let plan = built.plan.to_json();
        for (i, row) in case.rows.iter().enumerate() {
            let r = resource_json(row);
            // The reference's flattened resource: typed fields beside the attributes, absent when empty.
            let mut resource = r["attributes"].clone();
            for k in ["uri", "owner"] {
                if let Some(s) = r[k].as_str().filter(|s| !s.is_empty()) {
                    resource[k] = json!(s);
                }
            }
            let known = case
                .known_uri
                .is_none_or(|g| glob_regex(g).is_match(row.uri.unwrap_or("")))
                && case.known_owner.is_none_or(|o| row.owner == Some(o));
            if !known {
                continue;
            }
            prop_assert_eq!(
                holds(&plan["filter"], &resource),
                built.expected[i],
                "row {} {}\npolicies:\n{}\nplan: {}",
                i,
                r,
                render(case),
                plan
            );
        }
        Ok(())
    });
    assert!(conditional >= 400, "only {conditional} conditional plans");
}
