//! The HTTP/JSON door, driven with plain `curl`: decisions, batches, tokens in `Authorization`, simulate,
//! status, health and readiness, the OpenAPI document, every error as JSON naming the field with its status
//! (400, 404, 405, 413, 415), and the whole API checked against its OpenAPI document by schemathesis.

use std::path::Path;

use serde_json::{json, Value};

use crate::common::tokens::{claims, jwks, Signer};
use crate::common::*;

const POLICIES: &str = "\
kind: Policy
id: read
effect: allow
actions: [ReadKey]
resources: [\"kylo:kylo:vault:keys:*\"]
conditions:
  - path: principal.department
    op: equals
    values: [security]
---
kind: PolicyAttachment
id: read-ops
policy: read
principal_selector: {groups: [ops]}
---
kind: Policy
id: no-export
effect: deny
actions: [ExportKey]
resources: [\"*\"]
---
kind: PolicyAttachment
id: no-export-all
policy: no-export
principal_selector: {}
";

pub struct Http {
    pub h: Harness,
    pub base: String,
    pub signer: Signer,
    _keys: tempfile::TempDir,
}

pub async fn start_http(
    files: &[(&str, &str)],
    configure: impl FnOnce(&mut arbiter::server::ServerConfig),
) -> Http {
    let signer = Signer::new(jsonwebtoken::Algorithm::ES256, "k1");
    let keys = tempfile::tempdir().unwrap();
    let jwks_path = keys.path().join("jwks.json");
    std::fs::write(&jwks_path, jwks(&[&signer])).unwrap();
    let h = Harness::start_with(files, move |c| {
        c.http_listen = Some("127.0.0.1:0".parse().unwrap());
        c.tokens = Some(arbiter::server::token::TokenSettings {
            jwks: vec![jwks_path],
            ..Default::default()
        });
        configure(c);
    })
    .await;
    let base = format!("http://{}", h.server.http_addr().unwrap());
    Http {
        h,
        base,
        signer,
        _keys: keys,
    }
}

/// One `curl` call: the status and the body (JSON when it parses, else a string), and the response headers.
pub async fn curl(
    method: &str,
    url: &str,
    headers: &[&str],
    body: Option<&str>,
) -> (u16, Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let header_file = dir.path().join("headers");
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args(["-sS", "-X", method, "-o", "-", "-w", "\n%{http_code}", "-D"])
        .arg(&header_file)
        .arg(url);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(body) = body {
        let file = dir.path().join("body");
        std::fs::write(&file, body).unwrap();
        cmd.arg("--data-binary").arg(format!("@{}", file.display()));
    }
    let (status, stdout, stderr) = run_bounded(&mut cmd).await;
    assert!(status.success(), "curl failed: {stderr}");
    let (body, code) = stdout.rsplit_once('\n').unwrap();
    let value = serde_json::from_str(body).unwrap_or(Value::String(body.to_string()));
    let headers = std::fs::read_to_string(header_file).unwrap_or_default();
    (code.parse().unwrap(), value, headers.to_ascii_lowercase())
}

const JSON: &str = "content-type: application/json";

fn ops_request(id: &str) -> Value {
    json!({
        "principal": {"id": id, "groups": ["ops"], "attributes": {"department": "security"}},
        "action": "ReadKey",
        "resource": {"uri": "kylo:kylo:vault:keys:k1"},
        "environment": {"source_ip": "10.0.0.1", "port": 443}
    })
}

fn assert_error(status: u16, body: &Value, expected_status: u16, code: &str, field: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["field"], field, "{body}");
    assert!(
        !body["error"]["message"].as_str().unwrap().is_empty(),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_batches_and_tokens_over_curl() {
    if !external("curl", &["curl", "--version"]) {
        return;
    }
    let t = start_http(&[("p.yaml", POLICIES)], |_| {}).await;
    let url = format!("{}/v1/authorize", t.base);
    let revision = t.h.status().await.revision;

    let (status, body, _) = curl(
        "POST",
        &url,
        &[JSON],
        Some(&ops_request("alice").to_string()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["decision"], "allow");
    assert_eq!(body["reason"], "allowed");
    assert_eq!(body["policies"], json!(["read"]));
    assert_eq!(body["revision"], revision);
    assert_eq!(body["undetermined_allow"], json!([]));
    assert!(!body["call_id"].as_str().unwrap().is_empty());
    assert!(body.get("explanation").is_none());

    // `explain` gives the explanation as an object, not as escaped text.
    let mut explained = ops_request("alice");
    explained["explain"] = json!(true);
    explained["action"] = json!("ExportKey");
    let (status, body, _) = curl("POST", &url, &[JSON], Some(&explained.to_string())).await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["decision"].as_str(), body["reason"].as_str()),
        (Some("deny"), Some("denied"))
    );
    assert!(body["explanation"].is_object(), "{body}");
    // The same explanation as every door's: candidates with their conditions' values, and near misses.
    let candidates = body["explanation"]["candidates"].as_array().unwrap();
    assert!(
        candidates
            .iter()
            .all(|c| c["location"].as_str().unwrap().contains("p.yaml:")),
        "{body}"
    );
    assert!(body["explanation"]["near_misses"].is_array(), "{body}");

    // The token in `Authorization: Bearer`.
    let token = t.signer.sign(&claims(
        "carol",
        json!({"groups": ["ops"], "department": "security"}),
    ));
    let bare = json!({"action": "ReadKey", "resource": {"uri": "kylo:kylo:vault:keys:k1"}});
    let bearer = format!("authorization: Bearer {token}");
    let (status, body, _) = curl("POST", &url, &[JSON, &bearer], Some(&bare.to_string())).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (200, Some("allowed")),
        "{body}"
    );
    let (status, body, _) = curl(
        "POST",
        &url,
        &[JSON, "authorization: Bearer x.y.z"],
        Some(&bare.to_string()),
    )
    .await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (200, Some("unauthenticated")),
        "{body}"
    );
    assert!(body["explanation"]["unauthenticated"].is_string(), "{body}");
    let mut both = bare.clone();
    both["principal"] = json!({"token": token});
    let (status, body, _) = curl("POST", &url, &[JSON, &bearer], Some(&both.to_string())).await;
    assert_error(status, &body, 400, "invalid_argument", "principal.token");
    let (status, body, _) = curl(
        "POST",
        &url,
        &[JSON, "authorization: Basic YTpi"],
        Some(&bare.to_string()),
    )
    .await;
    assert_error(status, &body, 400, "invalid_argument", "authorization");

    // A batch: one principal, the checks in order.
    let batch = json!({
        "principal": {"id": "alice", "groups": ["ops"], "attributes": {"department": "security"}},
        "checks": [
            {"action": "ReadKey", "resource": {"uri": "kylo:kylo:vault:keys:k1"}},
            {"action": "ExportKey", "resource": {"uri": "kylo:kylo:vault:keys:k1"}},
            {"action": "ReadKey", "resource": {"uri": "kylo:kylo:other:k1"}}
        ]
    });
    let (status, body, _) = curl(
        "POST",
        &format!("{url}/batch"),
        &[JSON],
        Some(&batch.to_string()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let reasons: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["allowed", "denied", "no_applicable_policy"]);
    assert_eq!(body["revision"], revision);
    let mut bad = batch.clone();
    bad["checks"][1]["action"] = json!("");
    let (status, body, _) = curl(
        "POST",
        &format!("{url}/batch"),
        &[JSON],
        Some(&bad.to_string()),
    )
    .await;
    assert_error(status, &body, 400, "invalid_argument", "checks[1].action");
    t.h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_json_naming_the_field_with_its_status() {
    if !external("curl", &["curl", "--version"]) {
        return;
    }
    let t = start_http(&[("p.yaml", POLICIES)], |c| c.max_message_bytes = 4096).await;
    let url = format!("{}/v1/authorize", t.base);
    let cases: Vec<(Value, &str)> = vec![
        (json!({"action": "ReadKey"}), "principal.id"),
        (json!({"principal": {"id": "a"}, "action": ""}), "action"),
        (
            json!({"principal": {"id": "a"}, "action": "R", "environment": {"source_ip": "300.1.1.1"}}),
            "environment.source_ip",
        ),
        (
            json!({"principal": {"id": "a"}, "action": "R", "environment": {"time": "2026-13-01T00:00:00Z"}}),
            "environment.time",
        ),
        (
            json!({"principal": {"id": "a"}, "action": "R", "environment": {"port": 70000}}),
            "environment.port",
        ),
        (
            json!({"principal": {"id": "a", "groups": [""]}, "action": "R"}),
            "principal.groups[0]",
        ),
        (
            json!({"principal": {"id": "a", "attributes": {"id": "x"}}, "action": "R"}),
            "principal.attributes.id",
        ),
    ];
    for (body, field) in cases {
        let (status, answer, _) = curl("POST", &url, &[JSON], Some(&body.to_string())).await;
        assert_error(status, &answer, 400, "invalid_argument", field);
    }
    // An unknown field is named in the message.
    let (status, answer, _) = curl(
        "POST",
        &url,
        &[JSON],
        Some(r#"{"principal": {"id": "a"}, "action": "R", "colour": 1}"#),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("colour"),
        "{answer}"
    );
    for body in ["{", "[1, 2]", "null"] {
        let (status, answer, _) = curl("POST", &url, &[JSON], Some(body)).await;
        assert_error(status, &answer, 400, "invalid_argument", "body");
    }
    let small = ops_request("a").to_string();
    let (status, answer, _) = curl("POST", &url, &["content-type: text/plain"], Some(&small)).await;
    assert_error(
        status,
        &answer,
        415,
        "unsupported_media_type",
        "content-type",
    );
    let (status, answer, _) = curl("POST", &url, &["content-type:"], Some(&small)).await;
    assert_error(
        status,
        &answer,
        415,
        "unsupported_media_type",
        "content-type",
    );
    let mut big = ops_request("a");
    big["principal"]["attributes"]["pad"] = json!("x".repeat(5000));
    let (status, answer, _) = curl("POST", &url, &[JSON], Some(&big.to_string())).await;
    assert_error(status, &answer, 413, "resource_exhausted", "body");
    let (status, answer, _) = curl("GET", &url, &[], None).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    let (status, answer, _) = curl("GET", &format!("{}/v2/nothing", t.base), &[], None).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    // Simulate's files are checked like the RPC's.
    let sim = json!({"files": {"../escape.yaml": "kind: Group\nname: g\n"}});
    let (status, answer, _) = curl(
        "POST",
        &format!("{}/v1/simulate", t.base),
        &[JSON],
        Some(&sim.to_string()),
    )
    .await;
    assert_error(
        status,
        &answer,
        400,
        "invalid_argument",
        "files[\"../escape.yaml\"]",
    );
    t.h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_health_readiness_simulate_and_the_openapi_document() {
    if !external("curl", &["curl", "--version"]) {
        return;
    }
    let t = start_http(&[("p.yaml", POLICIES)], |_| {}).await;
    let revision = t.h.status().await.revision;
    let (status, body, _) = curl("GET", &format!("{}/v1/status", t.base), &[], None).await;
    assert_eq!(status, 200);
    assert_eq!(body["revision"], revision);
    assert_eq!(body["policies"], 2);
    assert_eq!(body["attachments"], 2);
    assert_eq!(body["reloads_failed"], 0);
    let (status, body, _) = curl("GET", &format!("{}/healthz", t.base), &[], None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body, _) = curl("GET", &format!("{}/readyz", t.base), &[], None).await;
    assert_eq!(
        (status, body["revision"].as_str()),
        (200, Some(revision.as_str()))
    );

    let (status, body, headers) =
        curl("GET", &format!("{}/v1/openapi.json", t.base), &[], None).await;
    assert_eq!(status, 200);
    assert!(headers.contains("content-type: application/json"));
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/arbiter.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        body, file,
        "the served document is the one in the repository"
    );
    for path in [
        "/v1/authorize",
        "/v1/authorize/batch",
        "/v1/simulate",
        "/v1/status",
        "/healthz",
        "/readyz",
        "/v1/forward-auth",
    ] {
        assert!(file["paths"].get(path).is_some(), "{path} is documented");
    }

    // Simulate: a proposed set that stops alice's reads, replayed.
    let proposed = POLICIES.replace("values: [security]", "values: [finance]");
    let sim = json!({"files": {"p.yaml": proposed}, "requests": [ops_request("alice")]});
    let (status, body, _) = curl(
        "POST",
        &format!("{}/v1/simulate", t.base),
        &[JSON],
        Some(&sim.to_string()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["valid"], true, "{body}");
    assert_eq!(body["current_revision"], revision);
    assert!(body["changes"].to_string().contains("alice"), "{body}");
    let broken = json!({"files": {"p.yaml": "kind: Policy\nid: x\neffect: alow\n"}});
    let (status, body, _) = curl(
        "POST",
        &format!("{}/v1/simulate", t.base),
        &[JSON],
        Some(&broken.to_string()),
    )
    .await;
    assert_eq!(
        (status, body["valid"].as_bool()),
        (200, Some(false)),
        "{body}"
    );
    assert!(body["errors"].to_string().contains("p.yaml:3"), "{body}");

    // A clean stop (readiness while stopping is answered 503 by `HttpDoor::ready`, not observable here without a race).
    t.h.server.shutdown();
    tokio::time::timeout(WAIT, t.h.server.wait())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_outside_the_openapi_document() {
    if !external("curl", &["curl", "--version"])
        || !external("schemathesis", &["schemathesis", "--version"])
    {
        return;
    }
    let t = start_http(&[("p.yaml", POLICIES)], |c| c.max_message_bytes = 64 * 1024).await;
    let scratch = tempfile::tempdir().unwrap();
    let (status, stdout, stderr) = run_bounded(
        tokio::process::Command::new("schemathesis")
            .current_dir(scratch.path())
            .args(["run", &format!("{}/v1/openapi.json", t.base)])
            .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance"])
            .args(["--max-examples", "40", "--generation-deterministic", "--request-timeout", "20"])
            .env("SCHEMATHESIS_HOOKS", "")
            .env("NO_COLOR", "1"),
    )
    .await;
    assert!(
        status.success(),
        "schemathesis found problems:\n{stdout}\n{stderr}"
    );
    t.h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_over_curl_with_tokens_sql_and_errors() {
    if !external("curl", &["curl", "--version"]) {
        return;
    }
    let t = start_http(&[("p.yaml", POLICIES)], |_| {}).await;
    let url = format!("{}/v1/plan", t.base);
    let revision = t.h.status().await.revision;
    let mut ask = ops_request("alice");
    ask.as_object_mut().unwrap().remove("resource");
    ask["actions"] = json!(["ReadKey", "ExportKey"]);
    ask.as_object_mut().unwrap().remove("action");

    // Reading is allowed, exporting denied everywhere: both together, nowhere.
    let (status, body, _) = curl("POST", &url, &[JSON], Some(&ask.to_string())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kind"], "always_denied", "{body}");
    assert_eq!(body["filter"], false);
    assert_eq!(body["revision"], revision);
    ask["actions"] = json!(["ReadKey"]);
    ask["sql"] = json!({"columns": {"alg": "alg"}});
    let (status, body, _) = curl("POST", &url, &[JSON], Some(&ask.to_string())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kind"], "conditional", "{body}");
    assert_eq!(body["policies"], json!(["read"]), "{body}");
    assert_eq!(body["sql"]["exact"], true, "{body}");
    assert!(
        body["sql"]["where"].as_str().unwrap().contains("GLOB ?1"),
        "{body}"
    );

    // The bearer token names the principal; a bad one plans nothing.
    let token = t.signer.sign(&claims(
        "carol",
        json!({"groups": ["ops"], "department": "security"}),
    ));
    let bare = json!({"action": "ReadKey"});
    let bearer = format!("authorization: Bearer {token}");
    let (status, body, _) = curl("POST", &url, &[JSON, &bearer], Some(&bare.to_string())).await;
    assert_eq!(
        (status, body["kind"].as_str()),
        (200, Some("conditional")),
        "{body}"
    );
    let (status, body, _) = curl(
        "POST",
        &url,
        &[JSON, "authorization: Bearer x.y.z"],
        Some(&bare.to_string()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kind"], "always_denied", "{body}");
    assert_eq!(body["reason"], "unauthenticated", "{body}");
    assert!(!body["explanation"].as_str().unwrap().is_empty(), "{body}");

    // Errors name the field.
    let both = json!({"principal": {"id": "alice"}, "action": "ReadKey", "actions": ["ReadKey"]});
    let (status, body, _) = curl("POST", &url, &[JSON], Some(&both.to_string())).await;
    assert_error(status, &body, 400, "invalid_argument", "actions");
    let bad_column = json!({"principal": {"id": "alice"}, "action": "ReadKey",
        "sql": {"columns": {"alg": "alg; DROP TABLE keys"}}});
    let (status, body, _) = curl("POST", &url, &[JSON], Some(&bad_column.to_string())).await;
    assert_error(status, &body, 400, "invalid_argument", "sql.columns.alg");
    let bad_glob =
        json!({"principal": {"id": "alice"}, "action": "ReadKey", "resource": {"uri": "k?"}});
    let (status, body, _) = curl("POST", &url, &[JSON], Some(&bad_glob.to_string())).await;
    assert_error(status, &body, 400, "invalid_argument", "resource.uri");
    let (status, _, headers) = curl("GET", &url, &[], None).await;
    assert_eq!(status, 405);
    assert!(headers.contains("allow: post"), "{headers}");
    t.h.stop().await;
}
