//! A policy author's day, through the binary and the gRPC door: explanations that show values and near misses,
//! `undetermined_allow`, `arbiter test` with reasons, filters and CI formats, and `arbiter check` catching every
//! mistake in one pass with hints. Each assertion reads the rendered text or JSON a person or a tool would see.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

use crate::common::{self, arbiter, text, Harness};
use arbiter::server::proto;

fn json_out(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

/// A payments team: encrypting needs `mfa`, office hours in Paris and owning the key's team; reading needs
/// nothing; a deny on heavily used keys.
const PAYMENTS: &str = r#"kind: Policy
id: pay-encrypt
effect: allow
actions: [EncryptWithKey]
resources: ["kylo:kylo:vault:keys:pay-*"]
conditions:
  - {path: principal.mfa, op: is_true}
  - {path: environment.time, op: time_of_day, values: ["09:00-17:00"], zone: Europe/Paris}
  - {path: resource.owner, op: equals, values: ["${principal.team}"]}
---
kind: PolicyAttachment
id: pay-encrypt-payments
policy: pay-encrypt
principal_selector: {groups: [payments]}
---
kind: Policy
id: pay-read
effect: allow
actions: [ReadKey]
resources: ["kylo:kylo:vault:keys:pay-*"]
---
kind: PolicyAttachment
id: pay-read-payments
policy: pay-read
principal_selector: {groups: [payments]}
---
kind: Policy
id: worn-keys
effect: deny
actions: [EncryptWithKey]
resources: ["kylo:kylo:vault:keys:pay-*"]
conditions:
  - {path: resource.uses, op: gt, values: [1000]}
---
kind: PolicyAttachment
id: worn-keys-payments
policy: worn-keys
principal_selector: {groups: [payments]}
"#;

fn payments_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::write(dir.path(), "p.yaml", PAYMENTS);
    dir
}

fn eval_explained(dir: &Path, request: Value) -> Value {
    let out = arbiter(
        &[
            "eval",
            "--policies",
            dir.to_str().unwrap(),
            "--request",
            "-",
            "--explain",
        ],
        Some(&request.to_string()),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    json_out(&out)
}

fn encrypt(principal: Value, owner: &str, uses: u32) -> Value {
    json!({
        "principal": principal,
        "action": "EncryptWithKey",
        "resource": {"uri": "kylo:kylo:vault:keys:pay-1", "owner": owner, "attributes": {"uses": uses}},
        "environment": {"time": "2026-11-23T12:00:00Z"},
    })
}

#[test]
fn explain_shows_values_references_zones_locations_and_a_missing_claim() {
    let dir = payments_dir();
    let file = dir.path().join("p.yaml").display().to_string();
    let v = eval_explained(
        dir.path(),
        encrypt(
            json!({"id": "bob", "groups": ["payments"], "attributes": {"team": "t1"}}),
            "t1",
            5,
        ),
    );
    // The allow applied but could not be decided: it is named, whatever the reason says.
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["reason"], "no_applicable_policy");
    assert_eq!(v["undetermined_allow"], json!(["pay-encrypt"]));
    let e = &v["explanation"];
    assert_eq!(e["undetermined_allow"], json!(["pay-encrypt"]));

    let allow = &e["candidates"][0];
    assert_eq!(allow["policy"], "pay-encrypt");
    assert_eq!(allow["location"], format!("{file}:1:1"));
    assert_eq!(allow["outcome"], "unknown");
    assert_eq!(
        allow["conditions"][0],
        json!({
            "path": "principal.mfa", "value": null, "problem": "missing", "op": "is_true", "negate": false,
            "values": [], "outcome": "unknown", "location": format!("{file}:7:5"),
        })
    );
    assert_eq!(
        allow["conditions"][1],
        json!({
            "path": "environment.time", "value": "2026-11-23T12:00:00Z", "op": "time_of_day", "negate": false,
            "values": ["09:00-17:00"], "zone": "Europe/Paris", "local": "2026-11-23T13:00:00 Mon", "outcome": "true",
            "location": format!("{file}:8:5"),
        })
    );
    assert_eq!(
        allow["conditions"][2],
        json!({
            "path": "resource.owner", "value": "t1", "op": "equals", "negate": false, "values": ["t1"],
            "references": [{"reference": "${principal.team}", "value": "t1"}], "outcome": "true",
            "location": format!("{file}:9:5"),
        })
    );
    let deny = &e["candidates"][1];
    assert_eq!(
        (&deny["policy"], &deny["effect"], &deny["outcome"]),
        (&json!("worn-keys"), &json!("deny"), &json!("false"))
    );
    assert_eq!(deny["conditions"][0]["value"], 5);
    assert_eq!(deny["conditions"][0]["values"], json!([1000]));

    // The read policy reached the principal, but not for this action.
    assert_eq!(
        e["near_misses"],
        json!([{
            "policy": "pay-read", "effect": "allow", "attachment": "pay-read-payments", "missed": "action",
            "wanted": ["ReadKey"], "location": format!("{file}:22:1"),
        }])
    );
    assert_eq!(e["near_misses_omitted"], 0);
}

#[test]
fn explain_names_wrong_types_and_missing_references() {
    let dir = payments_dir();
    // `mfa` is a string: a fault, so the reason is `error`; the team reference is missing.
    let v = eval_explained(
        dir.path(),
        encrypt(
            json!({"id": "bob", "groups": ["payments"], "attributes": {"mfa": "yes"}}),
            "t1",
            5,
        ),
    );
    assert_eq!(v["reason"], "error");
    assert_eq!(v["undetermined_allow"], json!(["pay-encrypt"]));
    let allow = &v["explanation"]["candidates"][0];
    assert_eq!(allow["outcome"], "fault");
    assert_eq!(allow["conditions"][0]["value"], "yes");
    assert_eq!(allow["conditions"][0]["problem"], "wrong type: string");
    assert_eq!(allow["conditions"][0]["outcome"], "fault");
    let owner = &allow["conditions"][2];
    assert_eq!(owner["values"], json!([null]));
    assert_eq!(
        owner["references"],
        json!([{"reference": "${principal.team}", "value": null, "problem": "missing"}])
    );
    assert_eq!(owner["outcome"], "unknown");
    assert!(
        owner.get("problem").is_none(),
        "the attribute itself is fine: {owner}"
    );
}

#[test]
fn near_misses_name_the_selector_and_are_bounded() {
    let dir = payments_dir();
    // Fifteen more attachments of the read policy, to groups the principal is not in.
    let extra: String = (0..15)
        .map(|i| {
            format!("---\nkind: PolicyAttachment\nid: read-{i:02}\npolicy: pay-read\nprincipal_selector: {{groups: [team-{i:02}]}}\n")
        })
        .collect();
    common::write(dir.path(), "more.yaml", &extra);
    let request = json!({
        "principal": {"id": "eve", "groups": ["ops"]},
        "action": "ReadKey",
        "resource": {"uri": "kylo:kylo:vault:keys:pay-1"},
    });
    let v = eval_explained(dir.path(), request);
    let e = &v["explanation"];
    assert_eq!(e["candidates"], json!([]));
    let misses = e["near_misses"].as_array().unwrap();
    assert_eq!(misses.len(), 10, "{misses:?}");
    // 15 + pay-read-payments missed the selector; sorted by policy, then attachment.
    assert_eq!(e["near_misses_omitted"], 6);
    assert_eq!(misses[0]["attachment"], "pay-read-payments");
    assert_eq!(misses[0]["missed"], "principal_selector");
    assert_eq!(misses[0]["wanted"], json!({"groups": ["payments"]}));
    assert_eq!(misses[1]["attachment"], "read-00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_answers_undetermined_allow_and_the_explanation_as_a_struct() {
    let h = Harness::start(&[("p.yaml", PAYMENTS)]).await;
    let mut request = proto::AuthorizeRequest {
        principal: Some(proto::Principal {
            id: "bob".into(),
            groups: vec!["payments".into()],
            ..Default::default()
        }),
        action: "EncryptWithKey".into(),
        resource: Some(proto::Resource {
            uri: "kylo:kylo:vault:keys:pay-1".into(),
            // Known, so that the deny on worn keys does not apply.
            attributes: Some(prost_types::Struct {
                fields: [(
                    "uses".to_string(),
                    prost_types::Value {
                        kind: Some(prost_types::value::Kind::NumberValue(5.0)),
                    },
                )]
                .into(),
            }),
            ..Default::default()
        }),
        environment: Some(proto::Environment {
            time: Some(prost_types::Timestamp {
                seconds: 1_795_435_200,
                nanos: 0,
            }),
            ..Default::default()
        }),
        explain: false,
    };
    let r = h
        .client
        .clone()
        .authorize(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.reason, "no_applicable_policy");
    // Without `explain`: the missing claim is visible all the same.
    assert_eq!(r.undetermined_allow, vec!["pay-encrypt".to_string()]);
    assert!(r.explanation.is_empty());

    request.explain = true;
    let r = h
        .client
        .clone()
        .authorize(request)
        .await
        .unwrap()
        .into_inner();
    let e: Value = serde_json::from_str(&r.explanation).unwrap();
    assert_eq!(e["undetermined_allow"], json!(["pay-encrypt"]));
    assert_eq!(
        e["candidates"][0]["conditions"][0]["problem"],
        json!("missing")
    );
    assert_eq!(e["near_misses"][0]["missed"], "action");
    let s = r.explanation_struct.expect("explanation_struct");
    let Some(prost_types::value::Kind::ListValue(misses)) = &s.fields["near_misses"].kind else {
        panic!("near_misses is a list: {s:?}");
    };
    assert_eq!(misses.values.len(), 1);
    h.stop().await;
}

/// Two tests on the payments set: one passes on its reason, one expects the wrong reason.
const SUITE: &str = r#"kind: TestSuite
name: payments
now: "2026-11-23T12:00:00Z"
tests:
  - name: missing mfa grants nothing
    principal: {id: bob, groups: [payments], attributes: {team: t1}}
    action: EncryptWithKey
    resource: {uri: "kylo:kylo:vault:keys:pay-1", owner: t1, attributes: {uses: 5}}
    expect: deny
    expect_reason: no_applicable_policy
  - name: missing mfa is a denial
    principal: {id: bob, groups: [payments], attributes: {team: t1}}
    action: EncryptWithKey
    resource: {uri: "kylo:kylo:vault:keys:pay-1", owner: t1, attributes: {uses: 5}}
    expect: deny
    expect_reason: denied
"#;

fn run_suite(policies: &Path, suite: &str, extra: &[&str]) -> Output {
    let sdir = tempfile::tempdir().unwrap();
    common::write(sdir.path(), "s.yaml", suite);
    let path = sdir.path().join("s.yaml");
    let mut args = vec!["test", "--policies", policies.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push(path.to_str().unwrap());
    arbiter(&args, None)
}

#[test]
fn test_asserts_reasons_and_a_failure_shows_why() {
    let dir = payments_dir();
    let out = run_suite(dir.path(), SUITE, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("ok    payments / missing mfa grants nothing\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAIL  payments / missing mfa is a denial ("),
        "{stdout}"
    );
    assert!(
        stdout.contains("      expected reason denied, got no_applicable_policy\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "      got deny, reason no_applicable_policy, policies [], undetermined allows [\"pay-encrypt\"]\n"
        ),
        "{stdout}"
    );
    // The explanation, indented under the failure: the value that was missing, and where the condition is.
    assert!(
        stdout.contains("      |   principal.mfa is_true []: value null (missing) -> unknown ("),
        "{stdout}"
    );
    assert!(
        stdout.contains("      |   environment.time time_of_day [\"09:00-17:00\"] in Europe/Paris: value \"2026-11-23T12:00:00Z\" (local 2026-11-23T13:00:00 Mon) -> true"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().last(), Some("1 passed, 1 failed"));
}

#[test]
fn test_filters_by_name_and_refuses_a_filter_matching_nothing() {
    let dir = payments_dir();
    let out = run_suite(dir.path(), SUITE, &["--filter", "grants"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(text(&out.stdout).lines().last(), Some("1 passed, 0 failed"));
    // The suite's name is part of what the expression sees, written either way.
    let out = run_suite(dir.path(), SUITE, &["--filter", "^payments/missing mfa is"]);
    assert_eq!(text(&out.stdout).lines().last(), Some("0 passed, 1 failed"));
    let out = run_suite(
        dir.path(),
        SUITE,
        &["--filter", "^payments / missing mfa is"],
    );
    assert_eq!(text(&out.stdout).lines().last(), Some("0 passed, 1 failed"));
    let out = run_suite(dir.path(), SUITE, &["--filter", "no such test"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no test matches --filter"));
    let out = run_suite(dir.path(), SUITE, &["--filter", "("]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an invalid expression is a usage error"
    );
}

#[test]
fn test_reports_json_for_ci() {
    let dir = payments_dir();
    let out = run_suite(dir.path(), SUITE, &["--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let v = json_out(&out);
    assert_eq!(
        (v["passed"].as_u64(), v["failed"].as_u64()),
        (Some(1), Some(1))
    );
    let results = v["results"].as_array().unwrap();
    assert_eq!(results[0]["passed"], true);
    assert!(results[0]["decision"].get("explanation").is_none());
    let failed = &results[1];
    assert_eq!(failed["test"], "missing mfa is a denial");
    assert_eq!(
        failed["expected"],
        json!({"decision": "deny", "reason": "denied"})
    );
    assert_eq!(
        failed["failures"],
        json!(["expected reason denied, got no_applicable_policy"])
    );
    assert_eq!(
        failed["decision"]["explanation"]["undetermined_allow"],
        json!(["pay-encrypt"])
    );
    assert!(failed["location"]
        .as_str()
        .unwrap()
        .ends_with("s.yaml:11:5"));
    // The summary goes to standard error, so standard output stays one JSON document.
    assert_eq!(text(&out.stderr).trim_end(), "1 passed, 1 failed");
}

#[test]
fn test_reports_junit_xml_that_a_junit_reader_accepts() {
    if !common::external("python3", &["python3", "--version"]) {
        return;
    }
    let dir = payments_dir();
    // A test name with characters XML must escape.
    let suite = SUITE.replace("missing mfa is a denial", "<mfa> & \"reasons\"");
    let out = run_suite(dir.path(), &suite, &["--format", "junit"]);
    assert_eq!(out.status.code(), Some(1));
    let xml = text(&out.stdout);
    // Read back by Python's XML parser: counts, names and the failure as a JUnit consumer sees them.
    let script = r#"
import sys, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.read())
suite = root.find("testsuite")
cases = suite.findall("testcase")
failure = cases[1].find("failure")
print(root.tag, root.get("tests"), root.get("failures"), suite.get("name"), len(cases))
print(cases[1].get("name"), cases[1].get("file").endswith("s.yaml"), cases[1].get("line"))
print(failure.get("message"))
print("undetermined allows" in failure.text and "principal.mfa is_true" in failure.text)
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(xml.as_bytes())
        .unwrap();
    let parsed = child.wait_with_output().unwrap();
    assert!(parsed.status.success(), "{}\n{xml}", text(&parsed.stderr));
    assert_eq!(
        text(&parsed.stdout),
        "testsuites 2 1 payments 2\n<mfa> & \"reasons\" True 11\nexpected reason denied, got no_applicable_policy\nTrue\n"
    );
}

#[test]
fn test_suite_mistakes_name_the_valid_fields_and_unknown_policies_are_warned_about() {
    let dir = payments_dir();
    let bad = SUITE
        .replace("expect_reason: denied", "expect_reson: denied")
        .replace(
            "owner: t1, attributes: {uses: 5}}\n    expect: deny\n    expect_reason: no",
            "id: k}\n    expect: deny\n    expect_reason: no",
        );
    let out = run_suite(dir.path(), &bad, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(":16:5: error: unknown field `expect_reson` in test [E0005]"),
        "{err}"
    );
    assert!(err.contains("help: did you mean `expect_reason`?"), "{err}");
    // The request's mistake names the request field, at the test's `resource:`.
    assert!(
        err.contains(":8:15: error: invalid request: `resource.id`: unknown field `id`, expected one of `uri`, `owner`, `attributes`"),
        "{err}"
    );

    let out = run_suite(
        dir.path(),
        &SUITE.replace("expect_reason: denied", "colour: red"),
        &[],
    );
    assert!(
        text(&out.stderr).contains("help: expected one of: name, description, principal, action, resource, environment, expect, expect_reason, expect_policies"),
        "{}",
        text(&out.stderr)
    );

    let typo = SUITE.replace(
        "expect_reason: denied",
        "expect_reason: no_applicable_policy\n    expect_policies: [pay-encrpyt]",
    );
    let out = run_suite(dir.path(), &typo, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a warning does not stop the run"
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("warning: test `missing mfa is a denial` expects policy `pay-encrpyt`, which the policy set does not have [W0007]"),
        "{err}"
    );
    assert!(err.contains("help: did you mean `pay-encrypt`?"), "{err}");
}

fn check(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["check", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    arbiter(&args, None)
}

#[test]
fn check_reports_every_error_in_one_pass_with_hints() {
    let dir = tempfile::tempdir().unwrap();
    common::write(
        dir.path(),
        "a.yaml",
        r#"kind: Policy
id: p1
effect: Allow
actions: [ReadKey]
resources: ["kylo:kylo:vault:keys:*"]
---
kind: Policy
id: p1
effect: allow
actions: [ReadKey]
resources: ["kylo:kylo:vault:keys:*"]
conditions:
  - {path: environment.source_ip, op: cdir, values: ["10.0.0.0/8"]}
  - {path: environment.source_ip, op: cidr, values: 10.0.0.0/8}
  - {path: environment.time, op: time_of_day, values: ["09:00-17:00"], zone: Europe/Pairs}
  - {path: environment.time, op: weekday, values: [monday, Tue, fri]}
---
kind: PolicyAttachment
id: a1
policy: p1
principal_selector: {groups: [payments]}
---
kind: TestSuite
name: s
tests:
  - name: t
    principal: {id: bob}
    action: ReadKey
    expect: alow
"#,
    );
    let out = check(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    let has = |needle: &str| assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    // The bad effect leaves the first policy out; its duplicate id is still reported, in the same pass.
    has("a.yaml:3:9: error: invalid effect `Allow` [E0010]");
    has("a.yaml:8:5: error: duplicate policy id `p1` [E0012]");
    has("help: did you mean `cidr`?");
    has("a.yaml:14:53: error: `values` must be a list, found a string [E0007]");
    has("help: write a one-item list: `values: [\"10.0.0.0/8\"]`");
    has("help: did you mean `Europe/Paris`?");
    // Full and capitalised weekday names: one error, with the list as it should read.
    has("a.yaml:16:52: error: weekdays are written `mon` … `sun`, found `monday`, `Tue` [E0021]");
    has("help: write `values: [mon, tue, fri]`");
    assert_eq!(err.matches("[E0021]").count(), 1, "{err}");
    // The TestSuite document is checked too.
    has("a.yaml:29:13: error: `expect` must be `allow` or `deny`, found `alow` [E0027]");
    has("help: did you mean `allow`?");
    assert!(err.trim_end().ends_with("7 errors, 0 warnings"), "{err}");
}

#[test]
fn check_warns_about_conditions_that_always_fault_and_likely_typos() {
    let dir = tempfile::tempdir().unwrap();
    common::write(
        dir.path(),
        "a.yaml",
        r#"kind: Policy
id: p
effect: deny
actions: [ReadKey]
resources: ["kylo:kylo:vault:keys:*"]
conditions:
  - {path: environment.port, op: cidr, values: ["10.0.0.0/8"]}
  - {path: environment.source_ip, op: time_of_day, values: ["09:00-17:00"]}
  - {path: environment.source_ip, op: cidr, values: ["10.0.0.0/8"], zone: Europe/Paris}
  - {path: environment.time, op: before, values: ["2027-01-01T00:00:00Z"]}
  - {path: principal.groups, op: contains_all, values: [ops]}
---
kind: PolicyAttachment
id: a
policy: p
principal_selector: {group: [payments], Id: [bob], acct: [kylo], tid: [contoso], uid: [7], grp: [x]}
"#,
    );
    let out = check(dir.path(), &[]);
    let err = text(&out.stderr);
    // Warnings only: the set is valid (a fault is a defined outcome), and `check` passes.
    assert_eq!(out.status.code(), Some(0), "{err}");
    let has = |needle: &str| assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    has("a.yaml:7:12: warning: `cidr` cannot read `environment.port`, which is a number: the condition faults whenever it is set [W0004]");
    has("help: `cidr` reads an IP address (`environment.source_ip`, or an attribute holding one)");
    has("a.yaml:8:12: warning: `time_of_day` cannot read `environment.source_ip`, which is an IP address");
    has("a.yaml:9:75: warning: `zone` is not read by `cidr` [W0005]");
    has("a.yaml:16:22: warning: selector key `group` names a claim, not the principal's `groups` [W0006]");
    has("a.yaml:16:41: warning: selector key `Id` names a claim, not the principal's `id` [W0006]");
    // Operators that can read the field, and claims that are no near miss (`tid`, `uid`, `grp` are common claim
    // names), give nothing.
    assert_eq!(err.matches("[W0004]").count(), 2, "{err}");
    assert_eq!(err.matches("[W0006]").count(), 2, "{err}");
}

#[test]
fn check_explains_yaml_indentation() {
    let dir = tempfile::tempdir().unwrap();
    common::write(
        dir.path(),
        "a.yaml",
        "kind: Policy\nid: p\neffect: allow\nactions: [ReadKey]\n resources: [\"x\"]\n",
    );
    common::write(
        dir.path(),
        "b.yaml",
        "kind: Policy\nid: q\neffect: allow\nactions: [ReadKey]\nresources: [\"c:\\d\"]\n",
    );
    let err = text(&check(dir.path(), &[]).stderr);
    assert!(
        err.contains(
            "b.yaml:5:13: error: invalid YAML: an unknown escape in a double-quoted string"
        ),
        "{err}"
    );
    assert!(
        err.contains(
            "a.yaml:5:2: error: invalid YAML: this line is not indented like the keys of its map"
        ),
        "{err}"
    );
    assert!(
        err.contains("help: keys of one map start in the same column"),
        "{err}"
    );
}

#[test]
fn check_speaks_json_for_editors_and_ci() {
    let dir = tempfile::tempdir().unwrap();
    common::write(
        dir.path(),
        "a.yaml",
        "kind: Policy\nid: p\neffect: alow\nactions: [ReadKey]\nresources: [\"x\"]\n",
    );
    let out = check(dir.path(), &["--format", "json"]);
    assert_eq!(out.status.code(), Some(2));
    let v = json_out(&out);
    assert_eq!(v["valid"], false);
    assert_eq!(
        v["errors"],
        json!([{
            "severity": "error", "code": "E0010", "file": dir.path().join("a.yaml").display().to_string(),
            "line": 3, "col": 9, "message": "invalid effect `alow`", "help": "did you mean `allow`?",
        }])
    );
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));

    // The shipped pack, with a suite beside it naming a policy the pack lacks: valid, with the warning listed.
    let pack = tempfile::tempdir().unwrap();
    for (rel, body) in common::default_pack() {
        common::write(pack.path(), &rel, &body);
    }
    common::write(
        pack.path(),
        "tests/extra.test.yaml",
        "kind: TestSuite\nname: x\ntests:\n  - name: t\n    principal: {id: bob}\n    action: ReadKey\n    expect: deny\n    expect_policies: [no-such-policy]\n",
    );
    let out = check(pack.path(), &["--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let v = json_out(&out);
    assert_eq!(v["valid"], true);
    assert_eq!(v["errors"], json!([]));
    assert_eq!(v["summary"]["lockouts"], 0);
    let codes: Vec<&str> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"W0007"), "{v}");
}

#[test]
fn simulate_base_outside_a_repository_suggests_current() {
    let dir = payments_dir();
    let out = arbiter(
        &[
            "simulate",
            "--base",
            "HEAD",
            "--proposed",
            dir.path().to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("is not inside a git repository") && err.contains("`--current DIR`"),
        "{err}"
    );
    assert!(!err.contains("fatal:"), "no raw git error: {err}");

    let help = text(&arbiter(&["simulate", "--help"], None).stdout);
    assert!(
        help.contains("--format <FORMAT>") && help.contains("Report format: `text` for people"),
        "{help}"
    );
}

#[test]
fn a_request_field_written_beside_its_part_is_pointed_to_its_place() {
    let out = arbiter(
        &["eval", "--request", "-"],
        Some(
            r#"{"principal": {"id": "bob"}, "action": "ReadKey", "uri": "kylo:kylo:vault:keys:k"}"#,
        ),
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).trim_end(),
        "error: invalid request: uri: unknown field `uri`, expected one of `principal`, `action`, `resource`, \
         `environment`, `explain`; did you mean `resource.uri`?"
    );
    // Inside a part, the path names the part.
    let out = arbiter(
        &["eval", "--request", "-"],
        Some(r#"{"principal": {"id": "bob"}, "action": "ReadKey", "resource": {"id": "k"}}"#),
    );
    assert!(
        text(&out.stderr).contains(
            "resource.id: unknown field `id`, expected one of `uri`, `owner`, `attributes`"
        ),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn explanations_say_why_a_value_is_unreadable_and_skip_policies_that_applied() {
    let dir = tempfile::tempdir().unwrap();
    common::write(
        dir.path(),
        "p.yaml",
        r#"kind: Policy
id: fresh
effect: allow
actions: [ReadKey]
resources: ["*"]
conditions:
  - {path: resource.created, op: after, values: ["2026-01-01T00:00:00Z"]}
  - {path: resource.from, op: cidr, values: ["10.0.0.0/8"]}
---
kind: PolicyAttachment
id: fresh-ops
policy: fresh
principal_selector: {groups: [ops]}
---
kind: PolicyAttachment
id: fresh-audit
policy: fresh
principal_selector: {groups: [audit]}
"#,
    );
    let v = eval_explained(
        dir.path(),
        json!({
            "principal": {"id": "eve", "groups": ["ops"]},
            "action": "ReadKey",
            "resource": {"uri": "k", "attributes": {"created": "yesterday", "from": "the office"}},
        }),
    );
    let conditions = &v["explanation"]["candidates"][0]["conditions"];
    // Strings are the right type for these operators, but not readable as an instant or an address.
    assert_eq!(conditions[0]["problem"], "not an RFC 3339 instant");
    assert_eq!(conditions[1]["problem"], "not an IP address");
    // The policy applied through `fresh-ops`: its other attachment is no near miss.
    assert_eq!(v["explanation"]["near_misses"], json!([]), "{v}");

    // The superuser's explanation says so, rather than listing nothing.
    let v = eval_explained(
        dir.path(),
        json!({"principal": {"id": "admin"}, "action": "ReadKey"}),
    );
    assert_eq!(v["explanation"]["superuser"], true);
    assert_eq!(v["explanation"]["candidates"], json!([]));
}

#[test]
fn a_bad_effect_or_a_yaml_error_hides_no_other_mistake() {
    let dir = tempfile::tempdir().unwrap();
    // A bad effect leaves the policy out; its glob, condition and zone mistakes are still reported.
    common::write(
        dir.path(),
        "a.yaml",
        r#"kind: Policy
id: p
effect: Deny
actions: [ReadKey]
resources: ["kylo:{a}"]
conditions:
  - {path: environment.source_ip, op: cidr, values: ["10.0.0.1/8"]}
  - {path: environment.time, op: time_of_day, values: ["09:00-17:00"], zone: Europe/Pairs}
---
kind: PolicyAttachment
id: a
policy: q
principal_selector: {}
"#,
    );
    // A YAML error in the second document: the first is still read, so its id is known to `a.yaml`.
    common::write(
        dir.path(),
        "b.yaml",
        "kind: Policy\nid: q\neffect: allow\nactions: [ReadKey]\nresources: [\"*\"]\n---\nkind: Policy\nid: r\n effect: allow\n---\nkind: Policy\nid: s\n",
    );
    let out = check(dir.path(), &[]);
    let err = text(&out.stderr);
    let has = |needle: &str| assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    has("a.yaml:3:9: error: invalid effect `Deny` [E0010]");
    has("help: did you mean `deny`?");
    has("a.yaml:5:13: error: invalid resource glob `kylo:{a}`");
    has("a.yaml:7:54: error: invalid CIDR `10.0.0.1/8`: host bits are set");
    has("help: did you mean `Europe/Paris`?");
    has("b.yaml:9:8: error: invalid YAML");
    // `q` is defined before the YAML error: the attachment naming it is fine.
    assert!(!err.contains("names policy `q`"), "{err}");
    assert!(err.trim_end().ends_with("5 errors, 0 warnings"), "{err}");
}

#[test]
fn a_duplicate_points_at_the_first_id_and_near_misses_rank_allows_first() {
    let dir = tempfile::tempdir().unwrap();
    common::write(
        dir.path(),
        "a.yaml",
        "kind: Policy\nid: p\neffect: allow\nactions: [ReadKey]\nresources: [\"*\"]\n---\nkind: Policy\nid: p\neffect: deny\nactions: [ReadKey]\nresources: [\"*\"]\n",
    );
    let err = text(&check(dir.path(), &[]).stderr);
    assert!(err.contains("help: first defined at "), "{err}");
    assert!(
        err.contains("a.yaml:2:5"),
        "the first id, not its document: {err}"
    );

    let dir = payments_dir();
    common::write(
        dir.path(),
        "deny.yaml",
        "kind: Policy\nid: a-no-reads\neffect: deny\nactions: [ReadKey]\nresources: [\"*\"]\n---\nkind: PolicyAttachment\nid: a-no-reads-all\npolicy: a-no-reads\nprincipal_selector: {groups: [payments]}\n",
    );
    let v = eval_explained(
        dir.path(),
        encrypt(
            json!({"id": "bob", "groups": ["payments"], "attributes": {"team": "t1", "mfa": true}}),
            "t1",
            5,
        ),
    );
    let misses: Vec<(&str, &str)> = v["explanation"]["near_misses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["effect"].as_str().unwrap(), m["policy"].as_str().unwrap()))
        .collect();
    assert_eq!(misses, [("allow", "pay-read"), ("deny", "a-no-reads")]);
}
