//! The query plan through the library: the three-valued rules on the cases that matter (an undetermined deny
//! removes the resource, an undetermined allow grants nothing), known resource fields, several actions, leaves
//! SQL cannot express, and the JSON form.

use arbiter::{Engine, PlanKind, PlanRequest, Request, SqlMapping};
use serde_json::{json, Value};

fn engine(yaml: &str) -> Engine {
    Engine::from_sources([("p.yaml", yaml)]).unwrap()
}

fn plan(engine: &Engine, ask: Value) -> arbiter::Plan {
    engine.plan(&PlanRequest::from_json(ask).unwrap())
}

fn key(attributes: Value) -> arbiter::request::Resource {
    Request::from_json(json!({"principal": {"id": "x"}, "action": "x",
        "resource": {"uri": "kylo:kylo:vault:keys:k1", "attributes": attributes}}))
    .unwrap()
    .resource
}

/// Every key to everyone.
macro_rules! keys_for_all {
    () => {
        "
kind: Policy
id: keys
effect: allow
actions: ['*']
resources: ['kylo:kylo:vault:keys:*']
---
kind: PolicyAttachment
id: keys
policy: keys
principal_selector: {}
"
    };
}

const KEYS_BUT_LOW_LEVELS: &str = concat!(
    keys_for_all!(),
    "---
kind: Policy
id: no-low-levels
effect: deny
actions: [ExportKey]
resources: ['*']
conditions:
  - {path: resource.level, op: lt, values: [3]}
---
kind: PolicyAttachment
id: no-low-levels
policy: no-low-levels
principal_selector: {}
",
);

#[test]
fn an_undetermined_deny_removes_the_resource() {
    let e = engine(KEYS_BUT_LOW_LEVELS);
    let p = plan(
        &e,
        json!({"principal": {"id": "alice"}, "action": "ExportKey"}),
    );
    assert_eq!(p.kind, PlanKind::Conditional);
    // Allowed only where the deny's condition is false: a level that is a number, 3 or more.
    assert!(p.allows(&key(json!({"level": 3}))));
    assert!(!p.allows(&key(json!({"level": 2}))));
    assert!(
        !p.allows(&key(json!({}))),
        "a missing level leaves the deny undetermined"
    );
    assert!(
        !p.allows(&key(json!({"level": "7"}))),
        "a string is a fault"
    );
    let filter = p.to_json()["filter"].to_string();
    assert!(filter.contains(r#""negate":true"#), "{filter}");
    assert_eq!(p.policies().len(), 2, "{filter}");
    // Other actions: the deny does not apply.
    let read = plan(
        &e,
        json!({"principal": {"id": "alice"}, "action": "ReadKey"}),
    );
    assert!(read.allows(&key(json!({}))));
}

/// A deny on `glob` and its negation of one attribute: "not false" of each is `not` of the other's leaf, and the
/// two must not be read as `x and not x` (the deny applies wherever the attribute is missing or not a string).
#[test]
fn a_deny_on_a_glob_and_its_negation_is_not_folded_away() {
    let e = engine(concat!(
        keys_for_all!(),
        "---
kind: Policy
id: both
effect: deny
actions: ['*']
resources: ['*']
conditions:
  - {path: resource.tag, op: glob, values: ['*'], negate: true}
  - {path: resource.tag, op: glob, values: ['*']}
---
kind: PolicyAttachment
id: both
policy: both
principal_selector: {}
",
    ));
    let p = plan(
        &e,
        json!({"principal": {"id": "alice"}, "action": "ReadKey"}),
    );
    for attributes in [json!({}), json!({"tag": 5}), json!({"tag": "x"})] {
        let allowed = e
            .decide(
                &Request::from_json(json!({"principal": {"id": "alice"}, "action": "ReadKey",
                    "resource": {"uri": "kylo:kylo:vault:keys:k1", "attributes": attributes}}))
                .unwrap(),
            )
            .allowed;
        assert_eq!(
            p.allows(&key(attributes.clone())),
            allowed,
            "{attributes}: {}",
            p.to_json()
        );
    }
    assert!(
        !p.allows(&key(json!({}))),
        "the deny is undetermined: it applies"
    );
}

#[test]
fn an_undetermined_allow_grants_nothing() {
    let e = engine(
        "
kind: Policy
id: mfa
effect: allow
actions: [ReadKey]
resources: ['*']
conditions:
  - {path: resource.mfa_required, op: is_true, negate: true}
---
kind: PolicyAttachment
id: mfa
policy: mfa
principal_selector: {}
",
    );
    let p = plan(
        &e,
        json!({"principal": {"id": "alice"}, "action": "ReadKey"}),
    );
    assert_eq!(p.kind, PlanKind::Conditional);
    assert!(p.allows(&key(json!({"mfa_required": false}))));
    assert!(!p.allows(&key(json!({"mfa_required": true}))));
    assert!(
        !p.allows(&key(json!({}))),
        "missing: not granted, even negated"
    );
    assert!(!p.allows(&key(json!({"mfa_required": "false"}))));
}

#[test]
fn known_fields_and_several_actions_narrow_the_plan() {
    let e = Engine::from_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/policies")).unwrap();
    // Keys carol owns: every action is allowed on them.
    let owned = plan(
        &e,
        json!({"principal": {"id": "carol"}, "actions": ["DeleteKey", "ExportKey"],
               "resource": {"uri": "kylo:kylo:vault:keys:*", "owner": "carol"}}),
    );
    assert_eq!(owned.kind, PlanKind::AlwaysAllowed, "{}", owned.to_json());
    // Outside the keys, nothing is.
    let users = plan(
        &e,
        json!({"principal": {"id": "carol"}, "action": "DeleteKey",
               "resource": {"uri": "kylo:kylo:admin:users:*"}}),
    );
    assert_eq!(users.kind, PlanKind::AlwaysDenied);
    // Both actions: the group grant covers EncryptWithKey but not DeleteKey, so only ownership is left.
    let both = plan(
        &e,
        json!({"principal": {"id": "carol", "groups": ["hr"]}, "actions": ["EncryptWithKey", "DeleteKey"]}),
    );
    let filter = both.to_json()["filter"].to_string();
    assert!(filter.contains("resource.owner"), "{filter}");
    assert!(!filter.contains("permissions"), "{filter}");
    // The superuser is always allowed.
    let admin = plan(
        &e,
        json!({"principal": {"id": "admin"}, "action": "DeleteKey"}),
    );
    assert_eq!(admin.kind, PlanKind::AlwaysAllowed);
    assert_eq!(admin.policies(), ["superuser".into()]);
}

#[test]
fn conditions_sql_cannot_say_are_residual_and_widen_the_where() {
    let e = engine(
        "
kind: Policy
id: fresh
effect: allow
actions: [ReadKey]
resources: ['*']
conditions:
  - {path: resource.expires, op: after, values: ['${environment.time}']}
  - {path: principal.groups, op: contains_all, values: ['${resource.required}']}
---
kind: PolicyAttachment
id: fresh
policy: fresh
principal_selector: {}
",
    );
    let p = plan(
        &e,
        json!({"principal": {"id": "alice", "groups": ["a", "b"]}, "action": "ReadKey",
               "environment": {"time": "2026-06-01T00:00:00Z"}}),
    );
    assert!(p.residual());
    let json = p.to_json();
    let filter = json["filter"].to_string();
    assert!(
        filter.contains(r#""values":["2026-06-01T00:00:00Z"]"#),
        "{filter}"
    );
    assert!(
        filter.contains(r#""bindings":{"principal.groups":["a","b"]}"#),
        "{filter}"
    );
    let sql = p.to_sql(&SqlMapping::default()).unwrap();
    assert!(!sql.exact);
    assert_eq!(sql.where_clause, "1", "both leaves widen to true");
    assert!(p.allows(&key(
        json!({"expires": "2026-07-01T00:00:00Z", "required": ["a"]})
    )));
    assert!(!p.allows(&key(
        json!({"expires": "2026-07-01T00:00:00Z", "required": ["c"]})
    )));
    assert!(!p.allows(&key(
        json!({"expires": "2026-05-01T00:00:00Z", "required": ["a"]})
    )));
    assert!(p
        .to_sql(&SqlMapping {
            uri: "uri; --".into(),
            ..SqlMapping::default()
        })
        .is_err());
}

#[test]
fn a_deny_that_covers_every_allowed_resource_leaves_nothing() {
    // The deny applies on every key when the source is outside 10/8; the allow is on keys: `x and not x`.
    let e = engine(
        "
kind: Policy
id: keys
effect: allow
actions: [ExportKey]
resources: ['kylo:kylo:vault:keys:*']
---
kind: PolicyAttachment
id: keys
policy: keys
principal_selector: {}
---
kind: Policy
id: corp-only
effect: deny
actions: [ExportKey]
resources: ['kylo:kylo:vault:keys:*']
conditions:
  - {path: environment.source_ip, op: cidr, values: [10.0.0.0/8], negate: true}
---
kind: PolicyAttachment
id: corp-only
policy: corp-only
principal_selector: {}
",
    );
    let outside = plan(
        &e,
        json!({"principal": {"id": "a"}, "action": "ExportKey", "environment": {"source_ip": "192.168.1.1"}}),
    );
    assert_eq!(
        outside.kind,
        PlanKind::AlwaysDenied,
        "{}",
        outside.to_json()
    );
    let inside = plan(
        &e,
        json!({"principal": {"id": "a"}, "action": "ExportKey", "environment": {"source_ip": "10.1.1.1"}}),
    );
    assert_eq!(inside.kind, PlanKind::Conditional, "{}", inside.to_json());
}

#[test]
fn mappings_that_cannot_be_read_are_refused_naming_the_field() {
    let e = engine(KEYS_BUT_LOW_LEVELS);
    let p = plan(
        &e,
        json!({"principal": {"id": "alice"}, "action": "ExportKey"}),
    );
    let same = SqlMapping {
        owner: "uri".into(),
        ..SqlMapping::default()
    };
    assert_eq!(p.to_sql(&same).unwrap_err().field, "owner");
    let typed = SqlMapping {
        columns: [("owner".to_string(), "o2".to_string())].into(),
        ..SqlMapping::default()
    };
    assert_eq!(p.to_sql(&typed).unwrap_err().field, "columns.owner");
    let err = PlanRequest::from_json(json!({"principal": {"id": "a"}, "action": ""})).unwrap_err();
    assert_eq!(err.field, "action");
    let err = PlanRequest::from_json(json!({"principal": {"id": "a"}, "actions": ["R", ""]}))
        .unwrap_err();
    assert_eq!(err.field, "actions[1]");
}
