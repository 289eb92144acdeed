//! Witness completeness of the partition, as a property: for random predicate sets and random concrete values
//! drawn from a wide generator that never looks at the predicates' literals (any floats, instants from 1970 to
//! 2100 and beyond, strings over the literals' alphabet and others, IPs of both families, lists of any length,
//! maps), the partition holds a row with exactly the same vector of three-valued outcomes.

use std::path::PathBuf;

use crate::moment::Moment;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

use super::{groups, Choice, Fixed, Pred, Var};
use crate::eval::Ctx;
use crate::load::SourceSet;
use crate::snapshot::Snapshot;

const ZONES: &[&str] = &[
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Africa/Cairo",
    "Africa/Casablanca",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "+05:30",
    "-03:00",
];

fn as_of() -> Moment {
    "2026-11-23T12:00:00Z".parse().unwrap()
}

/// String literals and values share a small alphabet, so prefixes, suffixes and equalities are often hit.
fn small_string() -> impl Strategy<Value = String> {
    "[ab:]{0,3}"
}

fn number_literal() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-3i32..4).prop_map(|n| n as f64),
        (-6i32..7).prop_map(|n| n as f64 / 2.0),
        Just(10.0),
        Just(10.2),
        (-1.0e6f64..1.0e6),
    ]
}

fn instant_literal() -> impl Strategy<Value = Moment> {
    let second = prop_oneof![
        // 2026-11-23 onwards, any second within sixty years.
        4 => (0i64..(60 * 366 * 86_400)).prop_map(|s| 1_795_435_200 + s),
        // The last days of year 9999, past the time library's own timestamps.
        1 => (0i64..(3 * 86_400)).prop_map(|s| 253_402_300_799 - s),
    ];
    // Whole seconds, or a fraction (a cut inside a second).
    let nanos = prop_oneof![Just(0i32), 1i32..1_000_000_000];
    (second, nanos).prop_map(|(s, n)| Moment::new(s, n).unwrap())
}

fn window() -> impl Strategy<Value = String> {
    (0u32..24, 0u32..4, 0u32..24, 0u32..4)
        .prop_filter("start = end", |(a, b, c, d)| (a, b) != (c, d))
        .prop_map(|(a, b, c, d)| format!("{a:02}:{:02}-{c:02}:{:02}", b * 15, d * 15))
}

fn cidr() -> impl Strategy<Value = String> {
    prop_oneof![
        (any::<u32>(), 0u8..=32).prop_map(|(a, len)| {
            let net = ipnet::Ipv4Net::new(std::net::Ipv4Addr::from(a), len)
                .unwrap()
                .trunc();
            net.to_string()
        }),
        (any::<u128>(), 0u8..=128).prop_map(|(a, len)| {
            let net = ipnet::Ipv6Net::new(std::net::Ipv6Addr::from(a), len)
                .unwrap()
                .trunc();
            net.to_string()
        }),
        Just("10.0.0.0/8".to_string()),
        Just("2001:db8::/32".to_string()),
    ]
}

fn quoted(values: &[String]) -> String {
    format!(
        "[{}]",
        values
            .iter()
            .map(|v| serde_json::to_string(v).unwrap())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// One condition on `path`, as YAML. `other` is a second path it may reference.
fn condition(path: &'static str, other: Option<&'static str>) -> BoxedStrategy<String> {
    let zone = prop::sample::select(ZONES);
    let negate = any::<bool>();
    let mut ops: Vec<BoxedStrategy<(String, String)>> = vec![
        prop::collection::vec(
            prop_oneof![
                small_string().prop_map(|s| serde_json::to_string(&s).unwrap()),
                number_literal().prop_map(|n| n.to_string()),
                any::<bool>().prop_map(|b| b.to_string()),
                instant_literal().prop_map(|t| format!("\"{t}\"")),
                Just("\"10.1.2.3\"".to_string()),
            ],
            1..3,
        )
        .prop_map(|v| ("equals".into(), format!("[{}]", v.join(", "))))
        .boxed(),
        prop::collection::vec(small_string(), 1..3)
            .prop_map(|v| ("contains_all".into(), quoted(&v)))
            .boxed(),
        prop::collection::vec(small_string(), 1..3)
            .prop_map(|v| ("starts_with".into(), quoted(&v)))
            .boxed(),
        prop::collection::vec(small_string(), 1..3)
            .prop_map(|v| ("ends_with".into(), quoted(&v)))
            .boxed(),
        prop::collection::vec("[ab:*]{1,4}", 1..3)
            .prop_map(|v| ("glob".into(), quoted(&v)))
            .boxed(),
        (
            prop::sample::select(&["lt", "le", "gt", "ge"][..]),
            number_literal(),
        )
            .prop_map(|(op, n)| (op.to_string(), format!("[{n}]")))
            .boxed(),
        (
            prop::sample::select(&["before", "after"][..]),
            instant_literal(),
        )
            .prop_map(|(op, t)| (op.to_string(), format!("[\"{t}\"]")))
            .boxed(),
        (prop::collection::vec(window(), 1..3), zone.clone())
            .prop_map(|(w, z)| {
                (
                    "time_of_day".into(),
                    format!("{}\n    zone: \"{z}\"", quoted(&w)),
                )
            })
            .boxed(),
        (
            prop::collection::vec(
                prop::sample::select(&["mon", "tue", "wed", "thu", "fri", "sat", "sun"][..]),
                1..4,
            ),
            zone,
        )
            .prop_map(|(d, z)| {
                let d: Vec<String> = d.into_iter().map(String::from).collect();
                (
                    "weekday".into(),
                    format!("{}\n    zone: \"{z}\"", quoted(&d)),
                )
            })
            .boxed(),
        prop::collection::vec(cidr(), 1..3)
            .prop_map(|v| ("cidr".into(), quoted(&v)))
            .boxed(),
        Just(("exists".to_string(), String::new())).boxed(),
        Just(("is_true".to_string(), String::new())).boxed(),
    ];
    if let Some(o) = other {
        ops.push(
            prop::sample::select(&["equals", "contains_all", "lt", "ge", "before", "after"][..])
                .prop_map(move |op| (op.to_string(), format!("[\"${{{o}}}\"]")))
                .boxed(),
        );
    }
    (prop::strategy::Union::new(ops), negate)
        .prop_map(move |((op, values), negate)| {
            let mut c = format!("  - path: {path}\n    op: {op}\n");
            if !values.is_empty() {
                c += &format!("    values: {values}\n");
            }
            if negate {
                c += "    negate: true\n";
            }
            c
        })
        .boxed()
}

/// The typed field conditions that make sense on `path` (the compiler rejects none of these).
fn typed_condition(path: &'static str) -> BoxedStrategy<String> {
    condition(path, None)
}

fn compile(conditions: &[String], selector: &str) -> Snapshot {
    let mut yaml = String::from(
        "kind: Policy\nid: p\neffect: allow\nactions: [\"*\"]\nresources: [\"*\"]\nconditions:\n",
    );
    for c in conditions {
        yaml += c;
    }
    yaml +=
        &format!("---\nkind: PolicyAttachment\nid: a\npolicy: p\nprincipal_selector: {selector}\n");
    let set = SourceSet::from_files([(PathBuf::from("p.yaml"), yaml.clone())]);
    crate::compile::build(&set).unwrap_or_else(|d| panic!("{d}\n{yaml}"))
}

/// A wide generator of attribute values, blind to any literal.
fn any_value() -> BoxedStrategy<Value> {
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-4i64..5).prop_map(|n| json!(n)),
        (-8i64..9).prop_map(|n| json!(n as f64 / 2.0)),
        any::<i32>().prop_map(|n| json!(n)),
        prop::num::f64::NORMAL.prop_map(|f| json!(f)),
        (-2.0e6f64..2.0e6).prop_map(|f| json!(f)),
        "[ab:*x]{0,5}".prop_map(Value::String),
        ".{0,4}".prop_map(Value::String),
        (0i64..4_102_444_800).prop_map(|s| json!(Moment::from_second(s).unwrap().to_string())),
        (1_795_435_200i64..1_795_435_200 + 70 * 366 * 86_400)
            .prop_map(|s| json!(Moment::from_second(s).unwrap().to_string())),
        any::<u32>().prop_map(|a| json!(std::net::Ipv4Addr::from(a).to_string())),
        any::<u128>().prop_map(|a| json!(std::net::Ipv6Addr::from(a).to_string())),
        (0u8..=255).prop_map(|b| json!(format!("10.1.2.{b}"))),
    ];
    scalar
        .prop_recursive(2, 12, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[ab]{1,2}", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
        .boxed()
}

fn choice_for(var: &Var, v: &Value) -> Option<Choice> {
    match var {
        Var::Attr(..) => Some(if v.is_null() {
            Choice::Absent
        } else {
            Choice::Json(v.clone())
        }),
        _ => None,
    }
}

fn fixed() -> Fixed {
    Fixed {
        principal_id: "probe".into(),
        request_groups: vec!["admin".into()],
        groups: vec!["admin".into()],
        action: "ReadKey".into(),
        uri: Some("kylo:kylo:vault:keys:k".into()),
    }
}

/// Checks that every sampled assignment's outcome vector has a row in the partition. Returns false when the
/// partition was declared incomplete (allowed: that is "inconclusive", never "safe").
fn covered(snapshot: &Snapshot, samples: &[Vec<(Var, Choice)>]) -> Result<bool, TestCaseError> {
    covered_with(snapshot, samples, false)
}

/// [`covered`], and with `untabulated`, also a group too large to tabulate: the search combines its variables'
/// candidates exhaustively, and so does this (slowly: for single cases only).
fn covered_with(
    snapshot: &Snapshot,
    samples: &[Vec<(Var, Choice)>],
    untabulated: bool,
) -> Result<bool, TestCaseError> {
    let policy = &snapshot.compiled.policies[0];
    let mut preds: Vec<Pred> = policy.conditions.iter().map(Pred::Condition).collect();
    for t in snapshot.compiled.attachments[0].selector.tests.iter() {
        if let crate::ir::SelectorKey::Claim(path) = &t.key {
            preds.push(Pred::Claim(path, &t.values));
        }
    }
    let fixed = fixed();
    let parts = groups(&preds, &fixed, as_of());
    if !untabulated && parts.iter().any(|g| !g.tabulated) {
        return Ok(false); // walked exhaustively by the search, not tabulated here
    }
    if let Some(why) = parts.iter().find_map(|g| g.incomplete.as_ref()) {
        if std::env::var_os("PARTITION_DEBUG").is_some() {
            eprintln!("INCOMPLETE: {why}");
            if std::env::var_os("PARTITION_DEBUG_FULL").is_some() {
                for c in policy.conditions.iter() {
                    eprintln!("   {} {:?} {:?}", c.path.text, c.op_name, c.op);
                }
            }
        }
        return Ok(false);
    }
    let vector = |assigned: &[(Var, Choice)]| -> Vec<u8> {
        let request = fixed.request(assigned);
        let groups = fixed.group_refs();
        let ctx = Ctx {
            request: (&request).into(),
            groups: &groups,
            time: request.environment.time.unwrap_or(as_of()),
        };
        preds.iter().map(|p| p.outcome(&ctx)).collect()
    };
    // Every combination of the groups' rows (the groups are few and small here).
    let mut achievable = std::collections::HashSet::new();
    let mut stack: Vec<(usize, Vec<(Var, Choice)>)> = vec![(0, Vec::new())];
    while let Some((level, assigned)) = stack.pop() {
        if level == parts.len() {
            achievable.insert(vector(&assigned));
            continue;
        }
        for row in &parts[level].rows {
            let mut next = assigned.clone();
            next.extend(parts[level].vars.iter().cloned().zip(row.iter().cloned()));
            stack.push((level + 1, next));
        }
    }
    for sample in samples {
        let v = vector(sample);
        prop_assert!(
            achievable.contains(&v),
            "no witness for {:?} (vector {:?});\nconditions: {:#?}\nrows: {:#?}",
            sample,
            v,
            policy.conditions,
            parts
        );
    }
    Ok(true)
}

/// `min_complete_percent`: how many partitions must be complete (the rest are declared inconclusive).
fn run(
    cases: u32,
    min_complete_percent: u32,
    strategy: impl Strategy<Value = (Vec<String>, String, Vec<Vec<(Var, Choice)>>)>,
) {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let complete = std::cell::Cell::new(0u32);
    runner
        .run(&strategy, |(conditions, selector, samples)| {
            let snapshot = compile(&conditions, &selector);
            if covered(&snapshot, &samples)? {
                complete.set(complete.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    // Incomplete partitions are allowed (inconclusive), but must stay the exception.
    assert!(
        complete.get() * 100 >= cases * min_complete_percent,
        "only {} of {cases} partitions were complete",
        complete.get()
    );
}

fn attr(path: &str) -> Var {
    let (part, rest) = path.split_once('.').unwrap();
    let part = match part {
        "resource" => super::PartKey::Resource,
        "principal" => super::PartKey::Principal,
        _ => super::PartKey::Environment,
    };
    Var::Attr(part, rest.split('.').map(String::from).collect())
}

/// One attribute read by one to four conditions; 25 values per set (10,000 values in all).
#[test]
fn every_value_of_one_attribute_has_a_witness() {
    let strategy = (
        prop::collection::vec(condition("resource.x", None), 1..5),
        prop::collection::vec(any_value(), 25),
    )
        .prop_map(|(conditions, values)| {
            let var = attr("resource.x");
            let samples = values
                .iter()
                .filter_map(|v| choice_for(&var, v).map(|c| vec![(var.clone(), c)]))
                .collect();
            (conditions, "{}".to_string(), samples)
        });
    run(400, 85, strategy);
}

/// A principal claim read by a selector and by conditions at once (list-valued claims included).
#[test]
fn every_value_of_a_claim_read_by_a_selector_has_a_witness() {
    let strategy = (
        prop::collection::vec(condition("principal.c", None), 1..3),
        prop::collection::vec(small_string(), 1..3),
        prop::collection::vec(any_value(), 25),
    )
        .prop_map(|(conditions, accepted, values)| {
            let var = attr("principal.c");
            let samples = values
                .iter()
                .filter_map(|v| choice_for(&var, v).map(|c| vec![(var.clone(), c)]))
                .collect();
            (conditions, format!("{{c: {}}}", quoted(&accepted)), samples)
        });
    run(150, 85, strategy);
}

/// Two attributes compared through `${...}`, and nested paths; values sometimes equal on purpose.
#[test]
fn every_pair_of_linked_attributes_has_a_witness() {
    let strategy = (
        prop::collection::vec(
            prop_oneof![
                condition("resource.x", Some("resource.y")),
                condition("resource.y", None),
                condition("resource.x.z", None),
            ],
            1..4,
        ),
        prop::collection::vec((any_value(), any_value(), any::<bool>()), 20),
    )
        .prop_map(|(conditions, values)| {
            let (x, y) = (attr("resource.x"), attr("resource.y"));
            let samples = values
                .iter()
                .map(|(a, b, same)| {
                    let b = if *same { a } else { b };
                    vec![
                        (x.clone(), choice_for(&x, a).unwrap()),
                        (y.clone(), choice_for(&y, b).unwrap()),
                    ]
                })
                .collect();
            (conditions, "{}".to_string(), samples)
        });
    // Linked attributes read both as text and as instants or IPs are declared inconclusive.
    run(150, 65, strategy);
}

/// The typed fields: time (from `as_of` on), source IP, port and owner.
#[test]
fn every_value_of_the_typed_fields_has_a_witness() {
    let strategy = (
        prop::collection::vec(
            prop_oneof![
                typed_condition("environment.time"),
                typed_condition("environment.source_ip"),
                typed_condition("environment.port"),
                typed_condition("resource.owner"),
            ],
            1..5,
        ),
        prop::collection::vec(
            (
                prop_oneof![
                    0i64..(80 * 366 * 86_400),
                    0i64..(7 * 86_400),
                    0i64..(253_402_300_799 - 1_795_435_200),
                    // The last days of year 9999.
                    (0i64..(3 * 86_400)).prop_map(|s| 253_402_300_799 - 1_795_435_200 - s),
                ],
                prop_oneof![Just(0i64), 0i64..1_000_000_000],
                prop_oneof![
                    any::<u32>().prop_map(|a| std::net::IpAddr::from(std::net::Ipv4Addr::from(a))),
                    any::<u128>().prop_map(|a| std::net::IpAddr::from(std::net::Ipv6Addr::from(a))),
                    (0u8..=255).prop_map(|b| std::net::IpAddr::from([10, 1, 2, b])),
                ],
                prop_oneof![1u32..=65_535, 1u32..20],
                0u8..3,
                prop_oneof![".{0,3}", "[ab:]{1,4}"],
                any::<u8>(),
            ),
            25,
        ),
    )
        .prop_map(|(conditions, values)| {
            let samples = values
                .into_iter()
                .map(|(secs, nanos, ip, port, spelling, owner, absent)| {
                    // The address as a client may spell it: plain, IPv4-mapped, or in capitals.
                    let text = match (spelling, ip) {
                        (1, std::net::IpAddr::V4(v4)) => v4.to_ipv6_mapped().to_string(),
                        (2, _) => ip.to_string().to_uppercase(),
                        _ => ip.to_string(),
                    };
                    let time = as_of()
                        .checked_add_seconds(secs)
                        .and_then(|t| t.checked_add_nanos(nanos))
                        .unwrap_or(as_of());
                    let pick =
                        |bit: u8, c: Choice| if absent & bit != 0 { Choice::Absent } else { c };
                    vec![
                        (Var::Time, Choice::Time(time)),
                        (Var::SourceIp, pick(1, Choice::Json(json!(text)))),
                        (Var::Port, pick(2, Choice::Json(json!(port)))),
                        (
                            Var::Owner,
                            if owner.is_empty() {
                                Choice::Absent
                            } else {
                                pick(4, Choice::Json(json!(owner)))
                            },
                        ),
                    ]
                })
                .collect();
            (conditions, "{}".to_string(), samples)
        });
    run(300, 85, strategy);
}

/// Typed fields compared with attributes through `${...}`: the attribute sometimes equal to the field's value,
/// sometimes anything.
#[test]
fn every_typed_field_linked_to_an_attribute_has_a_witness() {
    let strategy = (
        prop::collection::vec(
            prop_oneof![
                condition("resource.t", Some("environment.time")),
                condition("resource.p", Some("environment.port")),
                condition("resource.ip", Some("environment.source_ip")),
                condition("resource.o", Some("resource.owner")),
                typed_condition("environment.time"),
                typed_condition("environment.port"),
            ],
            1..4,
        ),
        prop::collection::vec(
            (
                0i64..(60 * 366 * 86_400),
                1u32..=65_535,
                any::<u32>(),
                "[ab:]{1,3}",
                any_value(),
                any::<u8>(),
            ),
            25,
        ),
    )
        .prop_map(|(conditions, values)| {
            let samples = values
                .into_iter()
                .map(|(secs, port, ip, owner, other, pick)| {
                    let time = as_of()
                        .checked_add_seconds(secs)
                        .unwrap();
                    let ip = std::net::Ipv4Addr::from(ip).to_string();
                    // Each attribute equal to its field's value, or anything.
                    let value = |bit: u8, same: Value| {
                        Choice::Json(if pick & bit != 0 { same } else { other.clone() })
                    };
                    vec![
                        (Var::Time, Choice::Time(time)),
                        (Var::Port, Choice::Json(json!(port))),
                        (Var::SourceIp, Choice::Json(json!(ip.clone()))),
                        (Var::Owner, Choice::Json(json!(owner.clone()))),
                        (attr("resource.t"), value(1, json!(time.to_string()))),
                        (attr("resource.p"), value(2, json!(port))),
                        (attr("resource.ip"), value(4, json!(ip))),
                        (attr("resource.o"), value(8, json!(owner))),
                    ]
                    .into_iter()
                    .map(|(v, c)| match c {
                        Choice::Json(Value::Null) => (v, Choice::Absent),
                        c => (v, c),
                    })
                    .collect()
                })
                .collect();
            (conditions, "{}".to_string(), samples)
        });
    run(200, 60, strategy);
}

/// A regression: the cell's two witnesses were `""` and `x`, and making `""` read like a value turned it into `x`
/// too, so `resource.owner` and `resource.o` never held two different strings, and a glob that matches while
/// `equals ${resource.owner}` fails had no witness.
#[test]
fn linked_owner_and_attribute_can_differ_when_one_cell_holds_both() {
    let conditions = vec![
        "  - path: resource.o\n    op: glob\n    values: [\"*\"]\n".to_string(),
        "  - path: resource.o\n    op: equals\n    values: [\"${resource.owner}\"]\n".to_string(),
    ];
    let snapshot = compile(&conditions, "{}");
    let sample = vec![vec![
        (Var::Owner, Choice::Json(json!("a"))),
        (attr("resource.o"), Choice::Json(json!("b"))),
    ]];
    covered(&snapshot, &sample).unwrap();
}

fn cond(path: &str, op: &str, values: &str) -> String {
    format!("  - path: {path}\n    op: {op}\n    values: {values}\n")
}

/// A list whose elements another attribute of the group equals, when that attribute is read as an instant:
/// the list's candidates hold instants written as text too.
#[test]
fn list_elements_hold_instants_an_attribute_compared_with_them_reads() {
    let conditions = vec![
        cond("resource.b", "before", "[\"2020-01-01T00:00:00Z\"]"),
        cond("resource.a", "contains_all", "[\"${resource.b}\"]"),
    ];
    let snapshot = compile(&conditions, "{}");
    let sample = vec![vec![
        (attr("resource.b"), Choice::Json(json!("2019-12-31T23:59:59Z"))),
        (attr("resource.a"), Choice::Json(json!(["2019-12-31T23:59:59Z"]))),
    ]];
    assert!(covered_with(&snapshot, &sample, true).unwrap(), "complete");
}

/// Three linked variables in one IP cell of three addresses (10.0.0.1 to .3 between the cuts of `10.0.0.0/30`
/// and `10.0.0.0/32`): the cell gives three, so each variable can hold its own.
#[test]
fn an_ip_cell_as_small_as_the_copies_gives_every_address() {
    let atoms = super::Atoms {
        cidrs: vec!["10.0.0.0/30".parse().unwrap(), "10.0.0.0/32".parse().unwrap()],
        netty: true,
        ..Default::default()
    };
    let points = super::ip_points(&atoms, 3);
    for ip in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
        let ip: std::net::IpAddr = ip.parse().unwrap();
        assert!(points.contains(&ip), "{ip} missing from {points:?}");
    }
}

/// A state of `time_of_day` and `weekday` walked once (09:00 to 17:00 UTC on a Monday) still has `copies`
/// instants, so three linked variables can each hold their own.
#[test]
fn a_time_state_walked_once_has_every_copy() {
    let atoms = super::Atoms {
        zones: vec![jiff::tz::TimeZone::UTC],
        boundaries: vec![9 * 3600, 17 * 3600],
        timey: true,
        ..Default::default()
    };
    let monday: Moment = "2026-11-23T00:00:00Z".parse().unwrap();
    let (points, complete) =
        super::time_points(&atoms, monday, monday.checked_add_seconds(7 * 86_400).unwrap(), 3);
    assert!(complete);
    let state = |t: Moment| super::time_state(t, &atoms.zones, &[0, 9 * 3600, 17 * 3600]);
    let working: Moment = "2026-11-23T10:00:00Z".parse().unwrap();
    let n = points.iter().filter(|t| state(**t) == state(working)).count();
    assert!(n >= 3, "{n} instants in the state of {working}: {points:?}");
}

/// An open interval of a second and a nanosecond holds one whole second after its start, and every copy.
#[test]
fn a_short_interval_has_every_copy() {
    let conditions = vec![
        cond("resource.t1", "after", "[\"2020-01-01T00:00:00Z\"]"),
        cond("resource.t2", "before", "[\"2020-01-01T00:00:01.000000001Z\"]"),
        cond("resource.t1", "before", "[\"${resource.t2}\"]"),
    ];
    let snapshot = compile(&conditions, "{}");
    let sample = vec![vec![
        (attr("resource.t1"), Choice::Json(json!("2020-01-01T00:00:00.5Z"))),
        (attr("resource.t2"), Choice::Json(json!("2020-01-01T00:00:01Z"))),
    ]];
    assert!(covered(&snapshot, &sample).unwrap(), "tabulated and complete");
}
