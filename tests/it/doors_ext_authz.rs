//! Envoy ext_authz v3 (`envoy.service.auth.v3.Authorization/Check`) on the gRPC listener, with `kind:
//! HttpMapping` routes: allowed with the decision headers, denied 403 / unauthenticated 401 with a JSON body,
//! bad input 400 naming the field, the principal from a bearer token, the mTLS peer or a trusted header, the
//! action from `context_extensions`; and mapping documents validated and hot-reloaded like policies.

use std::collections::HashMap;

use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse, HttpResponse};
use envoy_types::pb::envoy::config::core::v3::{address, socket_address, Address, SocketAddress};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use serde_json::{json, Value};
use tonic::transport::Channel;

use crate::common::tokens::{claims, jwks, Signer};
use crate::common::*;

pub const MAPPING: &str = "\
kind: HttpMapping
id: kylo-rest
principal:
  mtls: true
  header: X-Forwarded-User
  groups_header: x-forwarded-groups
routes:
  - method: GET
    path: /v1/keys/{name}
    action: ReadKey
    resource: kylo:kylo:vault:keys:{name}
  - method: [POST, PUT]
    path: /v1/keys/{name}/export
    action: ExportKey
    resource: kylo:kylo:vault:keys:{name}
";

pub const POLICIES: &str = "\
kind: Policy
id: ops-read-inside
effect: allow
actions: [ReadKey, ExportKey]
resources: [\"kylo:kylo:vault:keys:*\"]
conditions:
  - path: environment.source_ip
    op: cidr
    values: [10.0.0.0/8]
---
kind: PolicyAttachment
id: ops-read-inside-ops
policy: ops-read-inside
principal_selector: {groups: [ops]}
---
kind: PolicyAttachment
id: ops-read-inside-mesh
policy: ops-read-inside
principal_selector: {id: [\"spiffe://cluster.local/ns/pay/sa/api\"]}
---
kind: Policy
id: no-export-db
effect: deny
actions: [ExportKey]
resources: [\"kylo:kylo:vault:keys:db-*\"]
---
kind: PolicyAttachment
id: no-export-db-all
policy: no-export-db
principal_selector: {}
";

fn check(method: &str, path: &str, headers: &[(&str, &str)], source: &str) -> CheckRequest {
    let (ip, port) = source.rsplit_once(':').unwrap();
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: ip.into(),
                        port_specifier: Some(socket_address::PortSpecifier::PortValue(
                            port.parse().unwrap(),
                        )),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            }),
            request: Some(Request {
                http: Some(HttpRequest {
                    method: method.into(),
                    path: path.into(),
                    host: "kylo.example".into(),
                    scheme: "https".into(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

async fn client(h: &Harness) -> AuthorizationClient<Channel> {
    AuthorizationClient::connect(format!("http://{}", h.server.tcp_addr().unwrap()))
        .await
        .unwrap()
}

/// The gRPC code, the HTTP status of a denial (0 when allowed), the denial's JSON body, the headers set.
fn outcome(r: &CheckResponse) -> (i32, i32, Value, HashMap<String, String>) {
    let code = r.status.as_ref().map_or(-1, |s| s.code);
    match &r.http_response {
        Some(HttpResponse::OkResponse(ok)) => {
            let headers = ok
                .headers
                .iter()
                .filter_map(|h| h.header.as_ref())
                .map(|h| (h.key.clone(), h.value.clone()))
                .collect();
            (code, 0, Value::Null, headers)
        }
        Some(HttpResponse::DeniedResponse(d)) => {
            let headers = d
                .headers
                .iter()
                .filter_map(|h| h.header.as_ref())
                .map(|h| (h.key.clone(), h.value.clone()))
                .collect();
            (
                code,
                d.status.as_ref().map_or(0, |s| s.code),
                serde_json::from_str(&d.body).unwrap(),
                headers,
            )
        }
        other => panic!("unexpected http_response {other:?}"),
    }
}

const OK: i32 = 0;
const INVALID_ARGUMENT: i32 = 3;
const PERMISSION_DENIED: i32 = 7;
const UNAUTHENTICATED: i32 = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_map_routes_and_answer_like_envoy_expects() {
    let signer = Signer::new(jsonwebtoken::Algorithm::EdDSA, "ed");
    let keys = tempfile::tempdir().unwrap();
    let jwks_path = keys.path().join("jwks.json");
    std::fs::write(&jwks_path, jwks(&[&signer])).unwrap();
    let h = Harness::start_with(
        &[("p.yaml", POLICIES), ("mapping.yaml", MAPPING)],
        move |c| {
            c.tokens = Some(arbiter::server::token::TokenSettings {
                jwks: vec![jwks_path],
                ..Default::default()
            });
        },
    )
    .await;
    let mut envoy = client(&h).await;
    let user = [
        ("x-forwarded-user", "alice"),
        ("x-forwarded-groups", "ops, audit"),
    ];
    let call = |r: CheckRequest| {
        let mut envoy = envoy.clone();
        async move { outcome(&envoy.check(r).await.unwrap().into_inner()) }
    };

    // Allowed: OK, with the decision for the upstream.
    let (code, http, _, headers) = call(check(
        "GET",
        "/v1/keys/web-1?version=3",
        &user,
        "10.1.2.3:50000",
    ))
    .await;
    assert_eq!((code, http), (OK, 0));
    assert_eq!(headers["x-arbiter-decision"], "allow");
    assert_eq!(headers["x-arbiter-policies"], "ops-read-inside");
    assert!(!headers["x-arbiter-call-id"].is_empty());

    // The source address decides: outside 10/8 no policy applies.
    let (code, http, body, _) =
        call(check("GET", "/v1/keys/web-1", &user, "192.168.1.9:50000")).await;
    assert_eq!((code, http), (PERMISSION_DENIED, 403));
    assert_eq!(body["reason"], "no_applicable_policy");
    assert_eq!(body["decision"], "deny");

    // A deny applies: 403 naming it.
    let (code, http, body, headers) = call(check(
        "POST",
        "/v1/keys/db-main/export",
        &user,
        "10.1.2.3:1",
    ))
    .await;
    assert_eq!((code, http), (PERMISSION_DENIED, 403));
    assert_eq!(
        (body["reason"].as_str(), body["policies"].clone()),
        (Some("denied"), json!(["no-export-db"]))
    );
    assert_eq!(headers["content-type"], "application/json");
    // The method matters: DELETE on that path is not mapped.
    let (code, http, body, _) = call(check(
        "DELETE",
        "/v1/keys/db-main/export",
        &user,
        "10.1.2.3:1",
    ))
    .await;
    assert_eq!(
        (code, http, body["reason"].as_str()),
        (PERMISSION_DENIED, 403, Some("no_applicable_policy"))
    );
    assert!(
        body["explanation"]["unmapped"]
            .as_str()
            .unwrap()
            .contains("DELETE /v1/keys/db-main/export"),
        "{body}"
    );

    // No credentials: 401.
    let (code, http, body, headers) = call(check("GET", "/v1/keys/web-1", &[], "10.1.2.3:1")).await;
    assert_eq!(
        (code, http, body["reason"].as_str()),
        (UNAUTHENTICATED, 401, Some("unauthenticated"))
    );
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert!(
        body["explanation"]["unauthenticated"]
            .as_str()
            .unwrap()
            .contains("no bearer token"),
        "{body}"
    );

    // A bearer token comes first; a bad one is 401 even with a trusted header.
    let token = signer.sign(&claims("carol", json!({"groups": ["ops"]})));
    let bearer = format!("Bearer {token}");
    let (code, _, _, _) = call(check(
        "GET",
        "/v1/keys/web-1",
        &[("authorization", &bearer)],
        "10.9.9.9:1",
    ))
    .await;
    assert_eq!(code, OK);
    let mut with_bad = user.to_vec();
    with_bad.push(("authorization", "Bearer nope"));
    let (code, http, _, _) = call(check("GET", "/v1/keys/web-1", &with_bad, "10.9.9.9:1")).await;
    assert_eq!((code, http), (UNAUTHENTICATED, 401));

    // The mTLS peer principal, when the mapping allows it.
    let mut mesh = check("GET", "/v1/keys/web-1", &[], "10.4.4.4:1");
    mesh.attributes
        .as_mut()
        .unwrap()
        .source
        .as_mut()
        .unwrap()
        .principal = "spiffe://cluster.local/ns/pay/sa/api".into();
    let (code, _, _, headers) = call(mesh).await;
    assert_eq!(
        (code, headers["x-arbiter-policies"].as_str()),
        (OK, "ops-read-inside")
    );

    // `context_extensions` name the action and resource for a path no route maps.
    let mut extended = check("GET", "/internal/anything", &user, "10.1.1.1:1");
    extended.attributes.as_mut().unwrap().context_extensions = [
        ("arbiter.action".to_string(), "ReadKey".to_string()),
        (
            "arbiter.resource".to_string(),
            "kylo:kylo:vault:keys:web-2".to_string(),
        ),
    ]
    .into();
    assert_eq!(call(extended).await.0, OK);

    // Bad input: 400 naming the field, never an ALLOW.
    let (code, http, body, _) = call(check("GET", "/v1/keys/web-1", &user, "not-an-ip:1")).await;
    assert_eq!((code, http), (INVALID_ARGUMENT, 400));
    assert_eq!(body["error"]["field"], "environment.source_ip", "{body}");
    let long = format!("/v1/keys/{}", "k".repeat(70 * 1024));
    let (code, http, body, _) = call(check("GET", &long, &user, "10.1.1.1:1")).await;
    assert_eq!((code, http), (INVALID_ARGUMENT, 400));
    assert_eq!(body["error"]["field"], "resource.uri", "{body}");
    // An empty CheckRequest is denied.
    let r = envoy
        .check(CheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_ne!(outcome(&r).0, OK);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mappings_are_validated_and_reloaded_like_policies() {
    // Every mistake is reported with file:line:col and its code.
    let bad = "\
kind: HttpMapping
id: broken
routes:
  - method: get
    path: v1/keys/{name}
    action: ReadKey
  - path: /v1/keys/{name}/{name}
    action: ReadKey
  - path: /v1/keys/{name}
    action: ReadKey
    resource: kylo:kylo:vault:keys:{id}
  - path: /v1/a{b}
    action: X
  - path: /ok
    actoin: X
";
    let err = arbiter::Engine::from_sources([("m.yaml", bad)]).unwrap_err();
    let text = err.to_string();
    for expected in [
        "m.yaml:4:13",
        "upper-case HTTP method",
        "m.yaml:5:11",
        "must start with `/`",
        "m.yaml:7:11",
        "appears twice",
        "m.yaml:11:15",
        "`{id}` is not a capture",
        "m.yaml:12:11",
        "a capture is a whole segment",
        "m.yaml:15:5",
        "unknown field `actoin`",
        "E0030",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let twice = format!(
        "{MAPPING}---\n{}",
        MAPPING.replace("mtls: true", "mtls: false")
    );
    let text = arbiter::Engine::from_sources([("m.yaml", twice.as_str())])
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("duplicate HttpMapping id `kylo-rest`"),
        "{text}"
    );

    // Hot reload: a new route is served; a broken edit keeps the last good routes.
    let h = Harness::start(&[("p.yaml", POLICIES), ("mapping.yaml", MAPPING)]).await;
    let mut envoy = client(&h).await;
    let user = [("x-forwarded-user", "alice"), ("x-forwarded-groups", "ops")];
    let reads = check("GET", "/v2/key/web-1", &user, "10.0.0.1:1");
    assert_eq!(
        outcome(&envoy.check(reads.clone()).await.unwrap().into_inner()).1,
        403
    );
    let v2 = format!(
        "{MAPPING}  - method: GET\n    path: /v2/key/{{name}}\n    action: ReadKey\n    resource: kylo:kylo:vault:keys:{{name}}\n"
    );
    h.write("mapping.yaml", &v2);
    let envoy2 = envoy.clone();
    eventually("the new route is served", || {
        let mut envoy = envoy2.clone();
        let reads = reads.clone();
        async move { outcome(&envoy.check(reads).await.unwrap().into_inner()).0 == OK }
    })
    .await;
    h.write(
        "mapping.yaml",
        &v2.replace("path: /v2/key/{name}", "path: /v2/key/{name"),
    );
    h.eventually("the broken edit is refused", || async {
        h.status().await.reloads_failed > 0
    })
    .await;
    assert_eq!(
        outcome(&envoy.check(reads).await.unwrap().into_inner()).0,
        OK
    );
    h.stop().await;
}
