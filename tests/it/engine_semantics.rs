//! Data-driven checks of the decision semantics of SPEC section 1: every operator on each of its outcomes
//! (true, false, unknown, fault), negation, references, zones, deny overrides and the decision reasons.

use std::path::PathBuf;

use arbiter::eval::{evaluate, EvalOptions, Truth};
use arbiter::load::SourceSet;
use arbiter::{Decision, Reason, Request, Snapshot};
use jiff::Timestamp;
use serde_json::{json, Value};

fn snapshot(yaml: &str) -> Snapshot {
    let set = SourceSet::from_files([(PathBuf::from("t.yaml"), yaml.to_string())]);
    arbiter::build(&set).unwrap_or_else(|d| panic!("invalid test policies:\n{d}"))
}

fn now() -> Timestamp {
    "2026-11-23T12:00:00Z".parse().unwrap()
}

/// A request for principal `u` on key `k` with extra JSON merged in.
fn request(extra: Value) -> Request {
    let mut base = json!({
        "principal": {"id": "u", "groups": ["g1"]},
        "action": "EncryptWithKey",
        "resource": {"uri": "kylo:kylo:vault:keys:k"},
    });
    merge(&mut base, extra);
    Request::from_json(base).expect("valid test request")
}

fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

fn decide(s: &Snapshot, r: &Request) -> Decision {
    evaluate(
        s,
        r,
        now(),
        &EvalOptions {
            superuser: Some("admin"),
            explain: true,
        },
    )
}

/// The outcome of one condition (YAML lines under `conditions:`) on one request.
fn truth(condition: &str, extra: Value) -> Truth {
    let yaml = format!(
        "kind: Policy\nid: probe\neffect: allow\nactions: [\"*\"]\nresources: [\"*\"]\nconditions:\n{condition}\n---\n\
         kind: PolicyAttachment\nid: a\npolicy: probe\nprincipal_selector: {{}}\n"
    );
    let s = snapshot(&yaml);
    let d = decide(&s, &request(extra));
    d.explanation.unwrap().candidates[0].conditions[0].outcome
}

fn cond(path: &str, op: &str, values: &str) -> String {
    format!("  - path: {path}\n    op: {op}\n    values: {values}")
}

use Truth::{False, Fault, True, Unknown};

#[test]
fn equals() {
    let c = cond("resource.owner", "equals", "[\"${principal.id}\"]");
    assert_eq!(truth(&c, json!({"resource": {"owner": "u"}})), True);
    assert_eq!(truth(&c, json!({"resource": {"owner": "v"}})), False);
    assert_eq!(truth(&c, json!({})), Unknown, "missing attribute");
    assert_eq!(
        truth(&c, json!({"resource": {"owner": ""}})),
        Unknown,
        "empty typed string is absent"
    );
    // A list attribute: any element equals any value.
    let c = cond("principal.tags", "equals", "[b, z]");
    assert_eq!(
        truth(
            &c,
            json!({"principal": {"attributes": {"tags": ["a", "b"]}}})
        ),
        True
    );
    assert_eq!(
        truth(&c, json!({"principal": {"attributes": {"tags": ["a"]}}})),
        False
    );
    assert_eq!(
        truth(&c, json!({"principal": {"attributes": {"tags": {"b": 1}}}})),
        Fault,
        "a map"
    );
    assert_eq!(
        truth(&c, json!({"principal": {"attributes": {"tags": null}}})),
        Unknown,
        "null is absent"
    );
    // Numbers compare by value; no coercion between types.
    let c = cond("resource.level", "equals", "[1]");
    assert_eq!(
        truth(&c, json!({"resource": {"attributes": {"level": 1.0}}})),
        True
    );
    assert_eq!(
        truth(&c, json!({"resource": {"attributes": {"level": "1"}}})),
        False
    );
    let c = cond("resource.flag", "equals", "[true]");
    assert_eq!(
        truth(&c, json!({"resource": {"attributes": {"flag": true}}})),
        True
    );
    assert_eq!(
        truth(&c, json!({"resource": {"attributes": {"flag": "true"}}})),
        False
    );
}

#[test]
fn references_to_lists_and_action_segments() {
    let c = cond(
        "resource.permissions.${action}",
        "equals",
        "[\"${principal.groups}\"]",
    );
    let perms = |v: Value| json!({"resource": {"attributes": {"permissions": v}}});
    assert_eq!(
        truth(&c, perms(json!({"EncryptWithKey": ["g0", "g1"]}))),
        True
    );
    assert_eq!(truth(&c, perms(json!({"EncryptWithKey": ["g0"]}))), False);
    assert_eq!(truth(&c, perms(json!({"DecryptWithKey": ["g1"]}))), Unknown);
    // `${action}` stays one segment even when the action holds a dot.
    let dotted = json!({"action": "a.b", "resource": {"attributes": {"permissions": {"a.b": ["g1"], "a": {"b": ["g1"]}}}}});
    assert_eq!(truth(&c, dotted), True);
    let no_split =
        json!({"action": "a.b", "resource": {"attributes": {"permissions": {"a": {"b": ["g1"]}}}}});
    assert_eq!(truth(&c, no_split), Unknown);
    // Directory groups are part of principal.groups.
    let with_dir = format!(
        "kind: Policy\nid: p\neffect: allow\nactions: [\"*\"]\nresources: [\"*\"]\nconditions:\n{c}\n---\n\
         kind: PolicyAttachment\nid: a\npolicy: p\nprincipal_selector: {{}}\n---\nkind: Group\nname: hr\nmembers: [u]\n"
    );
    let s = snapshot(&with_dir);
    let d = decide(&s, &request(perms(json!({"EncryptWithKey": ["hr"]}))));
    assert!(d.allowed, "{d:?}");
    // A missing reference makes the condition unknown.
    let c = cond("resource.owner", "equals", "[\"${principal.boss}\"]");
    assert_eq!(truth(&c, json!({"resource": {"owner": "x"}})), Unknown);
}

#[test]
fn contains_all() {
    let c = cond("principal.roles", "contains_all", "[a, b]");
    let roles = |v: Value| json!({"principal": {"attributes": {"roles": v}}});
    assert_eq!(truth(&c, roles(json!(["b", "c", "a"]))), True);
    assert_eq!(truth(&c, roles(json!(["a"]))), False);
    assert_eq!(truth(&c, roles(json!("a"))), Fault, "not a list");
    assert_eq!(truth(&c, json!({})), Unknown);
}

#[test]
fn string_operators() {
    let email = |v: Value| json!({"principal": {"attributes": {"email": v}}});
    let c = cond("principal.email", "ends_with", "[\"@example.com\"]");
    assert_eq!(truth(&c, email(json!("a@example.com"))), True);
    assert_eq!(truth(&c, email(json!("a@example.org"))), False);
    assert_eq!(truth(&c, email(json!(5))), Fault);
    let c = cond("principal.email", "starts_with", "[admin, root]");
    assert_eq!(truth(&c, email(json!("root@x"))), True);
    assert_eq!(truth(&c, email(json!("user@x"))), False);
    let c = cond("resource.uri", "glob", "[\"kylo:*:keys:*\"]");
    assert_eq!(truth(&c, json!({})), True);
    assert_eq!(
        truth(&c, json!({"resource": {"uri": "kylo:kylo:vault:users:k"}})),
        False
    );
}

#[test]
fn numeric_comparisons() {
    let port = |p: Value| json!({"environment": {"port": p}});
    assert_eq!(
        truth(&cond("environment.port", "lt", "[1024]"), port(json!(443))),
        True
    );
    assert_eq!(
        truth(&cond("environment.port", "lt", "[443]"), port(json!(443))),
        False
    );
    assert_eq!(
        truth(&cond("environment.port", "le", "[443]"), port(json!(443))),
        True
    );
    assert_eq!(
        truth(&cond("environment.port", "gt", "[443]"), port(json!(444))),
        True
    );
    assert_eq!(
        truth(&cond("environment.port", "ge", "[443.0]"), port(json!(443))),
        True
    );
    assert_eq!(
        truth(&cond("environment.port", "lt", "[1024]"), json!({})),
        Unknown
    );
    let c = cond("resource.size", "lt", "[1024]");
    assert_eq!(
        truth(&c, json!({"resource": {"attributes": {"size": "10"}}})),
        Fault,
        "\"10\" is not a number"
    );
    let c = cond("resource.level", "le", "[\"${principal.clearance}\"]");
    let both = |l: Value, c: Value| json!({"resource": {"attributes": {"level": l}}, "principal": {"attributes": {"clearance": c}}});
    assert_eq!(truth(&c, both(json!(2), json!(3))), True);
    assert_eq!(truth(&c, both(json!(4), json!(3))), False);
    assert_eq!(truth(&c, both(json!(4), json!("3"))), Fault);
}

#[test]
fn instants() {
    let at = |t: &str| json!({"environment": {"time": t}});
    let c = cond("environment.time", "before", "[\"2027-01-01T00:00:00Z\"]");
    assert_eq!(truth(&c, at("2026-12-31T23:59:59Z")), True);
    assert_eq!(truth(&c, at("2027-01-01T00:00:00Z")), False, "strict");
    assert_eq!(
        truth(&c, at("2027-01-01T00:59:59+01:00")),
        True,
        "offsets are instants"
    );
    assert_eq!(
        truth(&c, json!({})),
        True,
        "unset time is the call's now (2026-11-23)"
    );
    let c = cond("environment.time", "after", "[\"2026-11-23T12:00:00Z\"]");
    assert_eq!(truth(&c, at("2026-11-23T12:00:00Z")), False, "strict");
    let c = cond("resource.expires", "after", "[\"2026-01-01T00:00:00Z\"]");
    assert_eq!(
        truth(
            &c,
            json!({"resource": {"attributes": {"expires": "2026-06-01T00:00:00Z"}}})
        ),
        True
    );
    assert_eq!(
        truth(&c, json!({"resource": {"attributes": {"expires": "June"}}})),
        Fault
    );
}

#[test]
fn time_of_day_and_weekday_with_zones_and_dst() {
    let at = |t: &str| json!({"environment": {"time": t}});
    let paris = |op: &str, v: &str| {
        format!(
            "{}\n    zone: Europe/Paris",
            cond("environment.time", op, v)
        )
    };
    let c = paris("time_of_day", "[\"08:00-18:00\"]");
    // Winter: Paris is UTC+1. Summer: UTC+2.
    assert_eq!(
        truth(&c, at("2026-12-15T07:00:00Z")),
        True,
        "08:00 CET, start inclusive"
    );
    assert_eq!(truth(&c, at("2026-12-15T06:59:59Z")), False);
    assert_eq!(
        truth(&c, at("2026-12-15T17:00:00Z")),
        False,
        "18:00 CET, end exclusive"
    );
    assert_eq!(truth(&c, at("2026-07-15T06:00:00Z")), True, "08:00 CEST");
    assert_eq!(truth(&c, at("2026-07-15T16:00:00Z")), False, "18:00 CEST");
    // The DST change on 2026-03-29: 01:00Z is 03:00 CEST.
    let c = paris("time_of_day", "[\"02:00-03:00\"]");
    assert_eq!(truth(&c, at("2026-03-29T00:59:59Z")), False, "01:59:59 CET");
    assert_eq!(
        truth(&c, at("2026-03-29T01:00:00Z")),
        False,
        "03:00 CEST: 02:xx never happened"
    );
    // Windows that wrap midnight, several windows, fixed offsets.
    let c = cond(
        "environment.time",
        "time_of_day",
        "[\"22:00-06:00\", \"12:00-13:00\"]",
    );
    assert_eq!(truth(&c, at("2026-11-23T23:30:00Z")), True);
    assert_eq!(truth(&c, at("2026-11-23T05:59:59Z")), True);
    assert_eq!(truth(&c, at("2026-11-23T12:30:00Z")), True);
    assert_eq!(truth(&c, at("2026-11-23T06:00:00Z")), False);
    let c = format!(
        "{}\n    zone: \"+05:30\"",
        cond("environment.time", "time_of_day", "[\"09:00-10:00\"]")
    );
    assert_eq!(truth(&c, at("2026-11-23T03:45:00Z")), True);
    // Weekday in a zone: Sunday 23:30 UTC is Monday in Tokyo.
    let c = format!(
        "{}\n    zone: Asia/Tokyo",
        cond("environment.time", "weekday", "[mon]")
    );
    assert_eq!(truth(&c, at("2026-11-22T23:30:00Z")), True);
    let c = cond("environment.time", "weekday", "[mon]");
    assert_eq!(
        truth(&c, at("2026-11-22T23:30:00Z")),
        False,
        "still Sunday in UTC"
    );
    let c = cond("resource.when", "weekday", "[mon]");
    assert_eq!(
        truth(&c, json!({"resource": {"attributes": {"when": 5}}})),
        Fault
    );
}

#[test]
fn cidr() {
    let ip = |s: &str| json!({"environment": {"source_ip": s}});
    let c = cond(
        "environment.source_ip",
        "cidr",
        "[\"10.0.0.0/8\", \"2001:db8::/32\"]",
    );
    assert_eq!(truth(&c, ip("10.1.2.3")), True);
    assert_eq!(truth(&c, ip("11.1.2.3")), False);
    assert_eq!(truth(&c, ip("2001:db8::1")), True);
    assert_eq!(
        truth(&c, ip("::ffff:10.1.2.3")),
        True,
        "IPv4-mapped compares as IPv4"
    );
    assert_eq!(truth(&c, ip("fe80::1")), False);
    assert_eq!(truth(&c, json!({})), Unknown);
    let c = cond("environment.source_ip", "cidr", "[\"10.0.0.0/8\"]");
    assert_eq!(
        truth(&c, ip("2001:db8::1")),
        False,
        "other family is not a fault"
    );
    let c = cond("principal.ip", "cidr", "[\"10.0.0.0/8\"]");
    assert_eq!(
        truth(
            &c,
            json!({"principal": {"attributes": {"ip": "not-an-ip"}}})
        ),
        Fault
    );
}

#[test]
fn exists_and_is_true_and_negate() {
    let c = "  - path: resource.global\n    op: exists";
    assert_eq!(
        truth(c, json!({"resource": {"attributes": {"global": false}}})),
        True
    );
    assert_eq!(truth(c, json!({})), False, "exists is never unknown");
    let c = "  - path: resource.global\n    op: is_true";
    assert_eq!(
        truth(c, json!({"resource": {"attributes": {"global": true}}})),
        True
    );
    assert_eq!(
        truth(c, json!({"resource": {"attributes": {"global": false}}})),
        False
    );
    assert_eq!(
        truth(c, json!({"resource": {"attributes": {"global": "true"}}})),
        Fault
    );
    assert_eq!(truth(c, json!({})), Unknown);
    let c = "  - path: resource.global\n    op: is_true\n    negate: true";
    assert_eq!(
        truth(c, json!({"resource": {"attributes": {"global": false}}})),
        True
    );
    assert_eq!(
        truth(c, json!({})),
        Unknown,
        "negate leaves unknown unknown"
    );
    assert_eq!(
        truth(c, json!({"resource": {"attributes": {"global": 1}}})),
        Fault
    );
    let c = "  - path: resource.global\n    op: exists\n    negate: true";
    assert_eq!(truth(c, json!({})), True);
}

const TWO: &str = "\
kind: Policy
id: b-allow
effect: allow
actions: [\"*\"]
resources: [\"kylo:kylo:vault:keys:*\"]
---
kind: Policy
id: a-allow
effect: allow
actions: [\"*WithKey\"]
resources: [\"*\"]
---
kind: Policy
id: night-deny
effect: deny
actions: [\"*\"]
resources: [\"*\"]
conditions:
  - path: principal.clearance
    op: lt
    values: [3]
---
kind: PolicyAttachment
id: a1
policy: b-allow
principal_selector: {}
---
kind: PolicyAttachment
id: a2
policy: a-allow
principal_selector: {groups: [g1]}
---
kind: PolicyAttachment
id: a3
policy: night-deny
principal_selector: {department: [ops, sec]}
";

#[test]
fn deny_overrides_and_reasons() {
    let s = snapshot(TWO);
    let ops = |clearance: Value| json!({"principal": {"attributes": {"department": "ops", "clearance": clearance}}});
    // Allows that hold are listed sorted.
    let d = decide(&s, &request(json!({})));
    assert_eq!((d.allowed, d.reason), (true, Reason::Allowed));
    assert_eq!(
        d.policies.iter().map(|p| &**p).collect::<Vec<_>>(),
        ["a-allow", "b-allow"]
    );
    // A deny that holds wins.
    let d = decide(&s, &request(ops(json!(1))));
    assert_eq!((d.allowed, d.reason), (false, Reason::Denied));
    assert_eq!(
        d.policies.iter().map(|p| &**p).collect::<Vec<_>>(),
        ["night-deny"]
    );
    // A deny that does not hold does not apply.
    let d = decide(&s, &request(ops(json!(5))));
    assert!(d.allowed);
    // An undetermined deny (missing attribute) applies: DENY, reason denied.
    let d = decide(
        &s,
        &request(json!({"principal": {"attributes": {"department": "ops"}}})),
    );
    assert_eq!((d.allowed, d.reason), (false, Reason::Denied));
    assert_eq!(
        d.policies.iter().map(|p| &**p).collect::<Vec<_>>(),
        ["night-deny"]
    );
    // An undetermined deny from a fault: DENY, reason error.
    let d = decide(&s, &request(ops(json!("high"))));
    assert_eq!((d.allowed, d.reason), (false, Reason::Error));
    // The selector: a claim the principal lacks never matches; a list claim intersects.
    let d = decide(
        &s,
        &request(
            json!({"principal": {"attributes": {"department": ["hr", "sec"], "clearance": 0}}}),
        ),
    );
    assert!(!d.allowed);
    let d = decide(
        &s,
        &request(json!({"principal": {"attributes": {"department": "hr", "clearance": 0}}})),
    );
    assert!(d.allowed);
    // No applicable policy.
    let d = decide(
        &s,
        &request(
            json!({"principal": {"groups": []}, "action": "ReadUser", "resource": {"uri": "kylo:kylo:admin:users:x"}}),
        ),
    );
    assert_eq!((d.allowed, d.reason), (false, Reason::NoApplicablePolicy));
    assert!(d.policies.is_empty());
}

#[test]
fn an_allow_that_faults_denies_with_reason_error() {
    let s = snapshot(
        "kind: Policy\nid: p\neffect: allow\nactions: [\"*\"]\nresources: [\"*\"]\nconditions:\n  - path: environment.port\n    op: lt\n    values: [\"${principal.limit}\"]\n---\nkind: PolicyAttachment\nid: a\npolicy: p\nprincipal_selector: {}\n",
    );
    let d = decide(
        &s,
        &request(
            json!({"environment": {"port": 80}, "principal": {"attributes": {"limit": "1024"}}}),
        ),
    );
    assert_eq!((d.allowed, d.reason), (false, Reason::Error));
    let d = decide(&s, &request(json!({"environment": {"port": 80}})));
    assert_eq!(
        (d.allowed, d.reason),
        (false, Reason::NoApplicablePolicy),
        "missing is not a fault"
    );
    let d = decide(
        &s,
        &request(
            json!({"environment": {"port": 80}, "principal": {"attributes": {"limit": 1024}}}),
        ),
    );
    assert!(d.allowed);
}

#[test]
fn exists_guards_a_deny_against_absence() {
    let s = snapshot(
        "kind: Policy\nid: allow-all\neffect: allow\nactions: [\"*\"]\nresources: [\"*\"]\n---\n\
         kind: Policy\nid: deny-revoked\neffect: deny\nactions: [\"*\"]\nresources: [\"*\"]\nconditions:\n\
         \x20 - path: principal.revoked\n    op: exists\n  - path: principal.revoked\n    op: is_true\n---\n\
         kind: PolicyAttachment\nid: a\npolicy: allow-all\nprincipal_selector: {}\n---\n\
         kind: PolicyAttachment\nid: b\npolicy: deny-revoked\nprincipal_selector: {}\n",
    );
    assert!(
        decide(&s, &request(json!({}))).allowed,
        "absent: the deny does not bite"
    );
    assert!(
        !decide(
            &s,
            &request(json!({"principal": {"attributes": {"revoked": true}}}))
        )
        .allowed
    );
    assert!(
        decide(
            &s,
            &request(json!({"principal": {"attributes": {"revoked": false}}}))
        )
        .allowed
    );
}

#[test]
fn superuser_is_exact_and_can_be_renamed_or_switched_off() {
    let s = snapshot(TWO);
    let r = request(
        json!({"principal": {"id": "admin", "groups": [], "attributes": {"department": "ops", "clearance": 0}}}),
    );
    let d = decide(&s, &r);
    assert_eq!((d.allowed, d.reason), (true, Reason::Superuser));
    assert_eq!(
        d.policies.iter().map(|p| &**p).collect::<Vec<_>>(),
        ["superuser"]
    );
    let off = evaluate(
        &s,
        &r,
        now(),
        &EvalOptions {
            superuser: None,
            explain: false,
        },
    );
    assert!(!off.allowed);
    let renamed = evaluate(
        &s,
        &r,
        now(),
        &EvalOptions {
            superuser: Some("root"),
            explain: false,
        },
    );
    assert!(!renamed.allowed);
    let r = request(
        json!({"principal": {"id": "Admin", "groups": [], "attributes": {"department": "ops", "clearance": 0}}}),
    );
    assert!(!decide(&s, &r).allowed, "case-sensitive");
}

#[test]
fn absent_uri_matches_only_star() {
    let s = snapshot(TWO);
    let d = decide(&s, &request(json!({"resource": {"uri": ""}})));
    assert_eq!(
        d.policies.iter().map(|p| &**p).collect::<Vec<_>>(),
        ["a-allow"]
    );
}

#[test]
fn a_missing_reference_is_unknown_even_when_the_attribute_has_the_wrong_type() {
    let c = cond("resource.level", "ge", "[\"${principal.clearance}\"]");
    assert_eq!(
        truth(&c, json!({"resource": {"attributes": {"level": "2"}}})),
        Unknown
    );
    let c = cond("resource.tags", "equals", "[\"${principal.team}\"]");
    assert_eq!(
        truth(&c, json!({"resource": {"attributes": {"tags": {"a": 1}}}})),
        Unknown
    );
    assert_eq!(
        truth(
            &c,
            json!({"resource": {"attributes": {"tags": {"a": 1}}}, "principal": {"attributes": {"team": "x"}}})
        ),
        Fault
    );
}
