//! Fail closed (hardening issue): an evaluation fault anywhere, in a policy set that passed validation, yields
//! DENY with reason `error`, through the real gRPC server and through `arbiter eval`. A fault never grants, a
//! negated fault stays a fault, and a faulting deny overrides an allow that holds.

use crate::common;

use arbiter::server::proto::{self, AuthorizeRequest, Decision};
use common::Harness;
use prost_types::value::Kind;
use prost_types::{Struct, Value};

/// One allow per operator, each conditioned on `resource.v` (or a reference), attached to everyone; plus a deny
/// of `DeleteKey` on `principal.suspended is_true` over an unconditional allow of `DeleteKey`.
fn policies() -> String {
    let mut out = String::new();
    let rule = |id: &str, action: &str, effect: &str, conditions: &str| {
        format!(
            "kind: Policy\nid: {id}\neffect: {effect}\nactions: [{action}]\nresources: [\"*\"]\n{conditions}---\n\
             kind: PolicyAttachment\nid: {id}-all\npolicy: {id}\nprincipal_selector: {{}}\n---\n"
        )
    };
    for (action, op, values, negate) in CASES {
        let values = if values.is_empty() {
            String::new()
        } else {
            format!("\n    values: {values}")
        };
        let negate = if *negate { "\n    negate: true" } else { "" };
        out.push_str(&rule(
            &format!("allow-{action}"),
            action,
            "allow",
            &format!("conditions:\n  - path: resource.v\n    op: {op}{values}{negate}\n"),
        ));
    }
    out.push_str(&rule(
        "allow-port-below-limit",
        "UpdateKey",
        "allow",
        "conditions:\n  - path: environment.port\n    op: lt\n    values: [\"${principal.limit}\"]\n",
    ));
    out.push_str(&rule("allow-delete", "DeleteKey", "allow", ""));
    out.push_str(&rule(
        "deny-suspended",
        "DeleteKey",
        "deny",
        "conditions:\n  - path: principal.suspended\n    op: is_true\n",
    ));
    out
}

/// (action, operator, values, negate): each is given a `resource.v` of the wrong type below.
const CASES: &[(&str, &str, &str, bool)] = &[
    ("OpLt", "lt", "[10]", false),
    ("OpGe", "ge", "[10]", true),
    ("OpBefore", "before", "[\"2030-01-01T00:00:00Z\"]", false),
    ("OpCidr", "cidr", "[\"10.0.0.0/8\"]", false),
    ("OpCidrNegated", "cidr", "[\"10.0.0.0/8\"]", true),
    ("OpGlob", "glob", "[\"a*\"]", false),
    ("OpStartsWith", "starts_with", "[\"a\"]", true),
    ("OpContainsAll", "contains_all", "[\"a\"]", false),
    ("OpIsTrue", "is_true", "", false),
    ("OpIsTrueNegated", "is_true", "", true),
    ("OpLe", "le", "[10]", false),
    ("OpGtNegated", "gt", "[10]", true),
    ("OpAfter", "after", "[\"2020-01-01T00:00:00Z\"]", true),
    (
        "OpTimeOfDay",
        "time_of_day",
        "[\"00:00-12:00\", \"12:00-00:00\"]",
        false,
    ),
    (
        "OpWeekday",
        "weekday",
        "[mon, tue, wed, thu, fri, sat, sun]",
        false,
    ),
];

fn wrong_value(op: &str) -> Value {
    let kind = match op {
        // A string where a number, an instant's string would do is exercised by `lt`/`ge`; the rest get a number
        // or a boolean where a string or list is needed.
        "lt" | "ge" | "le" | "gt" => Kind::StringValue("5".into()),
        // A window covering the whole day and every weekday: only the fault can keep them from holding.
        "before" | "after" | "time_of_day" | "weekday" | "cidr" | "glob" | "starts_with" => {
            Kind::NumberValue(5.0)
        }
        "contains_all" => Kind::StringValue("a".into()),
        "is_true" => Kind::StringValue("true".into()),
        other => panic!("no wrong value for {other}"),
    };
    Value { kind: Some(kind) }
}

fn with_resource_v(action: &str, v: Value) -> AuthorizeRequest {
    let mut r = common::request("alice", action);
    r.resource.as_mut().unwrap().attributes = Some(Struct {
        fields: [("v".to_string(), v)].into(),
    });
    r
}

fn with_principal_attr(action: &str, name: &str, v: Value) -> AuthorizeRequest {
    let mut r = common::request("alice", action);
    r.principal.as_mut().unwrap().attributes = Some(Struct {
        fields: [(name.to_string(), v)].into(),
    });
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluation_faults_deny_with_reason_error_through_the_server() {
    let h = Harness::start(&[("p.yaml", &policies())]).await;
    let ask = |r: AuthorizeRequest| {
        let mut client = h.client.clone();
        async move { client.authorize(r).await.expect("authorize").into_inner() }
    };

    for (action, op, _, negate) in CASES {
        let d = ask(with_resource_v(action, wrong_value(op))).await;
        assert_eq!(
            (d.decision, d.reason.as_str()),
            (Decision::Deny as i32, "error"),
            "{action}: `{op}` (negate: {negate}) on a wrong type must deny with `error`"
        );
        assert!(d.policies.is_empty(), "{action}: {:?}", d.policies);
        // Missing is not a fault (nor a grant).
        let d = ask(common::request("alice", action)).await;
        assert_eq!(
            (d.decision, d.reason.as_str()),
            (Decision::Deny as i32, "no_applicable_policy"),
            "{action}"
        );
    }

    // A reference that resolves to a string where `lt` needs a number.
    let mut r = with_principal_attr(
        "UpdateKey",
        "limit",
        Value {
            kind: Some(Kind::StringValue("1024".into())),
        },
    );
    r.environment = Some(proto::Environment {
        port: 80,
        ..Default::default()
    });
    let d = ask(r.clone()).await;
    assert_eq!(
        (d.decision, d.reason.as_str()),
        (Decision::Deny as i32, "error")
    );
    // The same with a number is allowed: the test can tell the two apart.
    r.principal.as_mut().unwrap().attributes = Some(Struct {
        fields: [(
            "limit".to_string(),
            Value {
                kind: Some(Kind::NumberValue(1024.0)),
            },
        )]
        .into(),
    });
    assert!(common::is_allow(&ask(r).await));

    // A faulting deny overrides an allow that holds, and names itself.
    let d = ask(with_principal_attr(
        "DeleteKey",
        "suspended",
        Value {
            kind: Some(Kind::StringValue("yes".into())),
        },
    ))
    .await;
    assert_eq!(
        (d.decision, d.reason.as_str()),
        (Decision::Deny as i32, "error")
    );
    assert_eq!(d.policies, vec!["deny-suspended"]);
    // Without the attribute the deny is undetermined (missing): it still applies, as `denied`.
    let d = ask(common::request("alice", "DeleteKey")).await;
    assert_eq!(d.decision, Decision::Deny as i32);
    // With a proper `false` the allow stands.
    let d = ask(with_principal_attr(
        "DeleteKey",
        "suspended",
        Value {
            kind: Some(Kind::BoolValue(false)),
        },
    ))
    .await;
    assert!(common::is_allow(&d), "{d:?}");

    // The same fault in a batch: the faulting check denies with `error`, the others are unaffected.
    let batch = h
        .client
        .clone()
        .authorize_batch(proto::AuthorizeBatchRequest {
            principal: common::request("alice", "x").principal,
            environment: None,
            checks: vec![
                proto::Check {
                    action: "OpLt".into(),
                    resource: with_resource_v("OpLt", wrong_value("lt")).resource,
                },
                proto::Check {
                    action: "DeleteKey".into(),
                    resource: None,
                },
            ],
            explain: false,
        })
        .await
        .expect("batch")
        .into_inner();
    assert_eq!(batch.results[0].reason, "error");
    assert_eq!(batch.results[0].decision, Decision::Deny as i32);
    h.stop().await;
}

fn eval_cli(dir: &std::path::Path, request: &str) -> serde_json::Value {
    let policies = dir.to_str().unwrap();
    let out = common::arbiter(
        &["eval", "--policies", policies, "--request", "-"],
        Some(request),
    );
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

#[test]
fn evaluation_faults_deny_with_reason_error_through_arbiter_eval() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.yaml"), policies()).unwrap();

    let d = eval_cli(
        dir.path(),
        r#"{"principal": {"id": "alice", "attributes": {"limit": "1024"}}, "action": "UpdateKey",
            "resource": {"uri": "k"}, "environment": {"port": 80}}"#,
    );
    assert_eq!(d["decision"], "deny", "{d}");
    assert_eq!(d["reason"], "error", "{d}");

    let d = eval_cli(
        dir.path(),
        r#"{"principal": {"id": "alice", "attributes": {"suspended": "yes"}}, "action": "DeleteKey"}"#,
    );
    assert_eq!(
        (d["decision"].as_str(), d["reason"].as_str()),
        (Some("deny"), Some("error")),
        "{d}"
    );
    assert_eq!(d["policies"], serde_json::json!(["deny-suspended"]));

    let d = eval_cli(
        dir.path(),
        r#"{"principal": {"id": "alice"}, "action": "OpIsTrueNegated", "resource": {"attributes": {"v": "true"}}}"#,
    );
    assert_eq!(
        (d["decision"].as_str(), d["reason"].as_str()),
        (Some("deny"), Some("error")),
        "{d}"
    );

    // Control: a well-typed request through the same binary is allowed.
    let d = eval_cli(
        dir.path(),
        r#"{"principal": {"id": "alice", "attributes": {"limit": 1024}}, "action": "UpdateKey",
            "environment": {"port": 80}}"#,
    );
    assert_eq!(d["decision"], "allow", "{d}");
}
