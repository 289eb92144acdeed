//! Differential test: the indexed evaluator against a small, obviously-correct reference evaluator.
//!
//! The reference loops over every attachment of the parsed documents, matches globs with `regex`, and
//! evaluates conditions straight from the YAML text with its own three-valued logic. Random policy sets
//! (globs, selectors by id / group / claim, directory groups, conditions with `${...}` references, negation,
//! allows and denies) are decided both ways over random requests, including missing and mistyped attributes. Each
//! request is decided twice by the engine: owned (read from JSON) and borrowed (a `RequestRef` over the JSON).

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::common::reference::{self, elements, glob_regex, T3};
use arbiter::eval::{evaluate, evaluate_ref, EvalOptions};
use arbiter::load::SourceSet;
use arbiter::{Request, RequestRef, Snapshot};
use jiff::Timestamp;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

// ---------------------------------------------------------------------------------------------------------
// The generated model, rendered to YAML for the real engine and read directly by the reference.

#[derive(Debug, Clone)]
struct Cond {
    path: &'static str,
    op: &'static str,
    values: Option<Vec<Value>>,
    negate: bool,
}

#[derive(Debug, Clone)]
struct Pol {
    deny: bool,
    actions: Vec<&'static str>,
    resources: Vec<&'static str>,
    conditions: Vec<Cond>,
}

#[derive(Debug, Clone)]
enum Sel {
    Everyone,
    Ids(Vec<&'static str>),
    Groups(Vec<&'static str>),
    Dept(&'static str),
    GroupsAndDept(Vec<&'static str>, &'static str),
}

#[derive(Debug, Clone)]
struct Set {
    policies: Vec<Pol>,
    /// (policy index, selector)
    attachments: Vec<(usize, Sel)>,
    /// (group, members)
    groups: Vec<(&'static str, Vec<&'static str>)>,
}

const ACTIONS: &[&str] = &[
    "ReadKey",
    "EncryptWithKey",
    "DecryptWithKey",
    "DeleteKey",
    "Do.It",
];
const ACTION_PATTERNS: &[&str] = &[
    "*",
    "*WithKey",
    "Read*",
    "*Key",
    "ReadKey",
    "DeleteKey",
    "E*t*Key",
    "Do.It",
];
const URIS: &[&str] = &[
    "kylo:kylo:vault:keys:k1",
    "kylo:kylo:vault:keys:k2",
    "kylo:kylo:admin:users:u1",
    "kylo:kylo:vault:keys:",
    "other",
];
const URI_PATTERNS: &[&str] = &[
    "*",
    "kylo:kylo:vault:keys:*",
    "kylo:kylo:vault:keys:k1",
    "kylo:*:k1",
    "kylo:kylo:admin:*",
    "*:k2",
    "*keys*",
    "kylo:kylo:vault:keys:k",
];
const IDS: &[&str] = &["u1", "u2", "u3"];
const GROUPS: &[&str] = &["g1", "g2", "g3"];
const DEPTS: &[&str] = &["ops", "sec"];

fn cond_strategy() -> impl Strategy<Value = Cond> {
    let c = |path, op, values: Option<Vec<Value>>| Cond {
        path,
        op,
        values,
        negate: false,
    };
    prop_oneof![
        Just(c(
            "resource.owner",
            "equals",
            Some(vec![json!("${principal.id}")])
        )),
        Just(c(
            "resource.permissions.${action}",
            "equals",
            Some(vec![json!("${principal.groups}")])
        )),
        Just(c("principal.dept", "equals", Some(vec![json!("ops")]))),
        Just(c(
            "principal.dept",
            "equals",
            Some(vec![json!("sec"), json!(1)])
        )),
        Just(c(
            "resource.uri",
            "starts_with",
            Some(vec![json!("kylo:kylo:vault")])
        )),
        Just(c(
            "principal.email",
            "ends_with",
            Some(vec![json!("@a.com"), json!("@b.com")])
        )),
        Just(c("resource.uri", "glob", Some(vec![json!("*:k1")]))),
        Just(c("resource.level", "lt", Some(vec![json!(3)]))),
        Just(c(
            "resource.level",
            "ge",
            Some(vec![json!("${principal.clearance}")])
        )),
        Just(c(
            "principal.roles",
            "contains_all",
            Some(vec![json!("r1"), json!("r2")])
        )),
        Just(c(
            "principal.roles",
            "equals",
            Some(vec![json!("${resource.owner}")])
        )),
        Just(c("resource.global", "is_true", None)),
        Just(c("resource.owner", "exists", None)),
        Just(c("principal.groups", "equals", Some(vec![json!("g2")]))),
        Just(c(
            "environment.source_ip",
            "cidr",
            Some(vec![json!("10.0.0.0/8"), json!("2001:db8::/32")])
        )),
        // The source IP is a string: text operators match its text, `equals` reads it as an IP.
        Just(c(
            "environment.source_ip",
            "starts_with",
            Some(vec![json!("10.")])
        )),
        Just(c(
            "environment.source_ip",
            "ends_with",
            Some(vec![json!(":5"), json!(".3")])
        )),
        Just(c("environment.source_ip", "glob", Some(vec![json!("*:*")]))),
        Just(c(
            "environment.source_ip",
            "equals",
            Some(vec![json!("10.1.2.3")])
        )),
        // Instants, strict RFC 3339.
        Just(c(
            "resource.expires",
            "after",
            Some(vec![json!("2026-06-01T00:00:00Z")])
        )),
        Just(c(
            "resource.expires",
            "before",
            Some(vec![json!("2026-06-01T00:00:00.5+02:00")])
        )),
        // The last day of year 9999, past the time library's own timestamps.
        Just(c(
            "resource.expires",
            "before",
            Some(vec![json!("9999-12-31T12:00:00Z")])
        )),
        // One `${...}` to a map and one missing, in both orders: missing decides first.
        Just(c(
            "resource.level",
            "equals",
            Some(vec![
                json!("${resource.meta}"),
                json!("${resource.nothing}")
            ])
        )),
        Just(c(
            "resource.level",
            "equals",
            Some(vec![
                json!("${resource.nothing}"),
                json!("${resource.meta}")
            ])
        )),
    ]
    .prop_flat_map(|c| (Just(c), any::<bool>()))
    .prop_map(|(mut c, negate)| {
        c.negate = negate;
        c
    })
}

fn sample<T: Clone + std::fmt::Debug + 'static>(
    items: &'static [T],
    max: usize,
) -> impl Strategy<Value = Vec<T>> {
    proptest::sample::subsequence(items, 1..=max.min(items.len()))
}

fn pol_strategy() -> impl Strategy<Value = Pol> {
    (
        prop::bool::weighted(0.3),
        sample(ACTION_PATTERNS, 2),
        sample(URI_PATTERNS, 2),
        prop::collection::vec(cond_strategy(), 0..3),
    )
        .prop_map(|(deny, actions, resources, conditions)| Pol {
            deny,
            actions,
            resources,
            conditions,
        })
}

fn sel_strategy() -> impl Strategy<Value = Sel> {
    prop_oneof![
        Just(Sel::Everyone),
        sample(IDS, 2).prop_map(Sel::Ids),
        sample(GROUPS, 2).prop_map(Sel::Groups),
        prop::sample::select(DEPTS).prop_map(Sel::Dept),
        (sample(GROUPS, 2), prop::sample::select(DEPTS))
            .prop_map(|(g, d)| Sel::GroupsAndDept(g, d)),
    ]
}

fn set_strategy() -> impl Strategy<Value = Set> {
    prop::collection::vec(pol_strategy(), 1..6).prop_flat_map(|policies| {
        let n = policies.len();
        (
            Just(policies),
            prop::collection::vec((0..n, sel_strategy()), 0..8),
            prop::collection::vec((prop::sample::select(GROUPS), sample(IDS, 2)), 0..3),
        )
            .prop_map(|(policies, attachments, groups)| {
                let mut seen = BTreeSet::new();
                let groups = groups
                    .into_iter()
                    .filter(|(g, _)| seen.insert(*g))
                    .collect();
                Set {
                    policies,
                    attachments,
                    groups,
                }
            })
    })
}

fn attr_strategy(choices: Vec<Value>) -> impl Strategy<Value = Option<Value>> {
    prop::option::weighted(0.75, prop::sample::select(choices))
}

fn request_strategy() -> impl Strategy<Value = Value> {
    (
        (
            prop::sample::select(IDS),
            proptest::sample::subsequence(GROUPS, 0..=2),
            prop::sample::select(ACTIONS),
            prop::sample::select(URIS),
        ),
        (
            attr_strategy(vec![json!("u1"), json!("u2"), json!("r1")]),
            attr_strategy(vec![json!("ops"), json!("sec"), json!(1), json!(["ops", "x"])]),
            attr_strategy(vec![json!("x@a.com"), json!("y@c.com"), json!(5), json!(["z@b.com"])]),
            attr_strategy(vec![json!(["r1", "r2"]), json!(["r1"]), json!("r1"), json!(["u1", "r2"])]),
            attr_strategy(vec![json!(1), json!(3), json!(2.5), json!("2")]),
            attr_strategy(vec![json!(2), json!(3.0), json!("x")]),
        ),
        (
            attr_strategy(vec![json!(true), json!(false), json!("true")]),
            attr_strategy(vec![json!(["g1"]), json!(["g2", "g3"]), json!("g1"), json!([])]),
            attr_strategy(vec![
                json!("10.1.2.3"),
                json!("11.0.0.1"),
                json!("2001:db8::5"),
                json!("2001:DB8::5"),
                json!("::ffff:10.9.9.9"),
                json!("::ffff:10.1.2.3"),
            ]),
            attr_strategy(vec![
                json!("2026-06-01T00:00:01Z"),
                json!("2026-05-31T23:59:59.999999999Z"),
                json!("2026-06-01T00:00:00.0000000001Z"),
                json!("2026-06-01T02:00:00.4+02:00"),
                json!("2026-06-01T00:00:00,5Z"),
                json!("2026-06-01T00:00:00+24:00"),
                json!("2026-06-01t00:00:00z"),
                json!("2026-02-30T00:00:00Z"),
                json!("2016-12-31T23:59:60Z"),
                json!("0000-06-01T00:00:00Z"),
                json!("0001-01-01T00:00:00Z"),
                json!("9999-12-30T21:59:59Z"),
                json!("9999-12-31T23:59:59.999999999Z"),
                json!("9999-12-31T20:00:00-04:00"),
                json!("10000-01-01T00:00:00Z"),
                json!("0001-01-01T00:00:00+00:01"),
                json!("2026-06-01"),
                json!(5),
            ]),
            attr_strategy(vec![json!({"k": 1}), json!(2), json!([])]),
        ),
    )
        .prop_map(|((id, groups, action, uri), (owner, dept, email, roles, level, clearance), (global, perm, ip, expires, meta))| {
            let mut principal_attrs = Map::new();
            let mut resource_attrs = Map::new();
            for (k, v) in [("dept", dept), ("email", email), ("roles", roles), ("clearance", clearance)] {
                if let Some(v) = v {
                    principal_attrs.insert(k.into(), v);
                }
            }
            for (k, v) in [("level", level), ("global", global), ("expires", expires), ("meta", meta)] {
                if let Some(v) = v {
                    resource_attrs.insert(k.into(), v);
                }
            }
            if let Some(p) = perm {
                resource_attrs.insert("permissions".into(), json!({ action: p }));
            }
            json!({
                "principal": {"id": id, "groups": groups, "attributes": principal_attrs},
                "action": action,
                "resource": {"uri": uri, "owner": owner.and_then(|o| o.as_str().map(str::to_string)).unwrap_or_default(),
                             "attributes": resource_attrs},
                "environment": {"source_ip": ip.and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()},
            })
        })
}

fn render(set: &Set) -> String {
    let mut out = String::new();
    for (i, p) in set.policies.iter().enumerate() {
        out += &format!(
            "---\nkind: Policy\nid: p{i}\neffect: {}\nactions: {}\nresources: {}\n",
            if p.deny { "deny" } else { "allow" },
            serde_json::to_string(&p.actions).unwrap(),
            serde_json::to_string(&p.resources).unwrap()
        );
        if !p.conditions.is_empty() {
            out += "conditions:\n";
            for c in &p.conditions {
                out += &format!(
                    "  - path: \"{}\"\n    op: {}\n    negate: {}\n",
                    c.path, c.op, c.negate
                );
                if let Some(v) = &c.values {
                    out += &format!("    values: {}\n", serde_json::to_string(v).unwrap());
                }
            }
        }
    }
    for (i, (p, sel)) in set.attachments.iter().enumerate() {
        let selector = match sel {
            Sel::Everyone => json!({}),
            Sel::Ids(ids) => json!({ "id": ids }),
            Sel::Groups(g) => json!({ "groups": g }),
            Sel::Dept(d) => json!({ "dept": d }),
            Sel::GroupsAndDept(g, d) => json!({"groups": g, "dept": [d]}),
        };
        out += &format!(
            "---\nkind: PolicyAttachment\nid: a{i}\npolicy: p{p}\nprincipal_selector: {selector}\n"
        );
    }
    for (g, members) in &set.groups {
        out += &format!(
            "---\nkind: Group\nname: {g}\nmembers: {}\n",
            serde_json::to_string(members).unwrap()
        );
    }
    out
}

// ---------------------------------------------------------------------------------------------------------
// The reference evaluator (conditions in `common::reference`).

/// The request as one JSON tree, with typed fields placed under their reserved names.
fn flatten(req: &Value, directory: &[(&str, Vec<&str>)]) -> Value {
    let id = req["principal"]["id"].as_str().unwrap();
    let mut groups: Vec<Value> = req["principal"]["groups"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (g, members) in directory {
        if members.contains(&id) && !groups.contains(&json!(g)) {
            groups.push(json!(g));
        }
    }
    let mut principal = req["principal"]["attributes"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    principal.insert("id".into(), json!(id));
    principal.insert("groups".into(), Value::Array(groups));
    let mut resource = req["resource"]["attributes"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for k in ["uri", "owner"] {
        if let Some(s) = req["resource"][k].as_str().filter(|s| !s.is_empty()) {
            resource.insert(k.into(), json!(s));
        }
    }
    let mut env = Map::new();
    if let Some(s) = req["environment"]["source_ip"]
        .as_str()
        .filter(|s| !s.is_empty())
    {
        env.insert("source_ip".into(), json!(s));
    }
    json!({"principal": principal, "resource": resource, "environment": env, "action": req["action"]})
}

fn selector_matches(sel: &Sel, flat: &Value) -> bool {
    let id = flat["principal"]["id"].as_str().unwrap();
    let groups: Vec<&str> = flat["principal"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let dept_is = |d: &str| {
        flat["principal"]
            .get("dept")
            .is_some_and(|v| elements(v).iter().any(|e| e.as_str() == Some(d)))
    };
    match sel {
        Sel::Everyone => true,
        Sel::Ids(ids) => ids.contains(&id),
        Sel::Groups(g) => g.iter().any(|g| groups.contains(g)),
        Sel::Dept(d) => dept_is(d),
        Sel::GroupsAndDept(g, d) => g.iter().any(|g| groups.contains(g)) && dept_is(d),
    }
}

/// (allowed, reason, policies)
fn reference(set: &Set, req: &Value) -> (bool, &'static str, Vec<String>) {
    let flat = flatten(req, &set.groups);
    let action = req["action"].as_str().unwrap();
    let uri = req["resource"]["uri"].as_str().unwrap_or("");
    let mut applicable = BTreeSet::new();
    for (p, sel) in &set.attachments {
        let pol = &set.policies[*p];
        if selector_matches(sel, &flat)
            && pol.actions.iter().any(|a| glob_regex(a).is_match(action))
            && pol.resources.iter().any(|r| glob_regex(r).is_match(uri))
        {
            applicable.insert(*p);
        }
    }
    let (mut denies, mut allows) = (Vec::new(), Vec::new());
    let (mut deny_held, mut deny_fault, mut allow_fault) = (false, false, false);
    for p in applicable {
        let pol = &set.policies[p];
        let outcomes: Vec<T3> = pol
            .conditions
            .iter()
            .map(|c| {
                let written = reference::Cond {
                    path: c.path.into(),
                    op: c.op.into(),
                    values: c.values.clone().unwrap_or_default(),
                    negate: c.negate,
                };
                reference::condition(&written, None, &flat)
            })
            .collect();
        let holds = outcomes.iter().all(|t| *t == T3::T);
        let not_holds = outcomes.contains(&T3::F);
        let fault = outcomes.contains(&T3::Fault);
        let id = format!("p{p}");
        match (pol.deny, holds, not_holds) {
            (true, true, _) => {
                deny_held = true;
                denies.push(id)
            }
            (true, false, false) => {
                deny_fault |= fault;
                denies.push(id)
            }
            (false, true, _) => allows.push(id),
            (false, false, false) => allow_fault |= fault,
            _ => {}
        }
    }
    denies.sort();
    allows.sort();
    if !denies.is_empty() {
        (
            false,
            if !deny_held && deny_fault {
                "error"
            } else {
                "denied"
            },
            denies,
        )
    } else if !allows.is_empty() {
        (true, "allowed", allows)
    } else if allow_fault {
        (false, "error", vec![])
    } else {
        (false, "no_applicable_policy", vec![])
    }
}

/// The same request read straight from its JSON into a borrowed [`RequestRef`] (empty strings left as they are,
/// for it to read as absent), and decided through it.
fn decide_borrowed(snapshot: &Snapshot, raw: &Value, now: Timestamp) -> arbiter::Decision {
    let (principal, resource) = (&raw["principal"], &raw["resource"]);
    let groups: Vec<&str> = principal["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g.as_str().expect("group"))
        .collect();
    let request = RequestRef {
        principal_id: principal["id"].as_str().expect("id"),
        groups: groups.as_slice().into(),
        // An empty map is given as none at all, which must read the same.
        principal_attributes: principal["attributes"]
            .as_object()
            .filter(|m| !m.is_empty()),
        action: raw["action"].as_str().expect("action"),
        resource_uri: resource["uri"].as_str(),
        resource_owner: resource["owner"].as_str(),
        resource_attributes: resource["attributes"].as_object().filter(|m| !m.is_empty()),
        source_ip: raw["environment"]["source_ip"].as_str(),
        ..RequestRef::default()
    };
    let options = EvalOptions {
        superuser: None,
        explain: false,
    };
    evaluate_ref(snapshot, &request, now, &options).expect("generated request valid")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 700, ..ProptestConfig::default() })]

    /// 700 sets × 16 requests: over 10,000 decisions compared per run.
    #[test]
    fn indexed_evaluator_agrees_with_reference(set in set_strategy(), requests in prop::collection::vec(request_strategy(), 16)) {
        let yaml = render(&set);
        let sources = SourceSet::from_files([(PathBuf::from("gen.yaml"), yaml.clone())]);
        let snapshot = arbiter::build(&sources).unwrap_or_else(|d| panic!("generated set invalid:\n{d}\n{yaml}"));
        let now: Timestamp = "2026-11-23T12:00:00Z".parse().unwrap();
        for raw in requests {
            let request = Request::from_json(raw.clone()).expect("generated request valid");
            let got = evaluate(&snapshot, &request, now, &EvalOptions { superuser: None, explain: false });
            let got = (got.allowed, got.reason.as_str(), got.policies.iter().map(|p| p.to_string()).collect::<Vec<_>>());
            let want = reference(&set, &raw);
            prop_assert_eq!(&got, &want, "\nset:\n{}\nrequest: {}", yaml, raw);
            let borrowed = decide_borrowed(&snapshot, &raw, now);
            let borrowed = (borrowed.allowed, borrowed.reason.as_str(), borrowed.policies.iter().map(|p| p.to_string()).collect::<Vec<_>>());
            prop_assert_eq!(borrowed, want, "borrowed\nset:\n{}\nrequest: {}", yaml, raw);
        }
    }
}
