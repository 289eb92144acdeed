//! Verified tokens over gRPC (`Principal.token`): every accepted algorithm, claims as the principal, each failure
//! answered DENY `unauthenticated` with its cause (and never the token) in the explanation and the decision log,
//! the invalid combinations, and hot reload of the keys.

use std::path::PathBuf;
use std::time::Duration;

use arbiter::server::proto::{self, AuthorizeBatchRequest, AuthorizeRequest, Check};
use arbiter::server::token::TokenSettings;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

use crate::common::tokens::{claims, jwks, now, unsigned, Signer};
use crate::common::*;

const POLICIES: &str = "\
kind: Policy
id: read-security
effect: allow
actions: [ReadKey]
resources: [\"*\"]
conditions:
  - path: principal.department
    op: equals
    values: [security]
---
kind: PolicyAttachment
id: read-security-ops
policy: read-security
principal_selector: {groups: [ops]}
";

const ISSUER: &str = "https://idp.example";
const AUDIENCE: &str = "arbiter";

fn token_request(token: &str) -> AuthorizeRequest {
    let mut r = request("", "ReadKey");
    r.principal = Some(proto::Principal {
        token: token.into(),
        ..Default::default()
    });
    r
}

fn good_claims(sub: &str) -> Value {
    claims(
        sub,
        json!({"iss": ISSUER, "aud": AUDIENCE, "groups": ["ops"], "department": "security"}),
    )
}

struct Keys {
    _dir: tempfile::TempDir,
    jwks: PathBuf,
}

fn keys_file(signers: &[&Signer]) -> Keys {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks(signers)).unwrap();
    Keys {
        _dir: dir,
        jwks: path,
    }
}

async fn harness(keys: &Keys, configure: impl FnOnce(&mut TokenSettings)) -> Harness {
    let mut settings = TokenSettings {
        jwks: vec![keys.jwks.clone()],
        issuers: vec![ISSUER.into()],
        audiences: vec![AUDIENCE.into()],
        leeway: Duration::from_secs(5),
        ..Default::default()
    };
    configure(&mut settings);
    Harness::start_with(&[("p.yaml", POLICIES)], move |c| c.tokens = Some(settings)).await
}

async fn decide(
    h: &Harness,
    r: AuthorizeRequest,
) -> Result<proto::AuthorizeResponse, tonic::Status> {
    h.client.clone().authorize(r).await.map(|r| r.into_inner())
}

fn cause_of(r: &proto::AuthorizeResponse) -> String {
    let e: Value = serde_json::from_str(&r.explanation).unwrap();
    e["unauthenticated"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_become_the_principal_for_every_accepted_algorithm() {
    let signers = [
        Signer::new(Algorithm::RS256, "rsa"),
        Signer::new(Algorithm::PS256, "rsa-pss"),
        Signer::new(Algorithm::ES256, "p256"),
        Signer::new(Algorithm::ES384, "p384"),
        Signer::new(Algorithm::EdDSA, "ed"),
    ];
    let keys = keys_file(&signers.iter().collect::<Vec<_>>());
    let h = harness(&keys, |_| {}).await;
    for s in &signers {
        let r = decide(&h, token_request(&s.sign(&good_claims("alice"))))
            .await
            .unwrap();
        assert!(is_allow(&r), "{:?}: {r:?}", s.alg);
        assert_eq!(r.reason, "allowed");
        assert_eq!(r.policies, ["read-security"]);
        // A claim the condition reads decides: another department is not allowed.
        let mut other = good_claims("alice");
        other["department"] = json!("finance");
        let r = decide(&h, token_request(&s.sign(&other))).await.unwrap();
        assert_eq!(r.reason, "no_applicable_policy", "{:?}", s.alg);
        // Without the groups claim the attachment does not apply.
        let mut no_groups = good_claims("alice");
        no_groups.as_object_mut().unwrap().remove("groups");
        let r = decide(&h, token_request(&s.sign(&no_groups)))
            .await
            .unwrap();
        assert_eq!(r.reason, "no_applicable_policy", "{:?}", s.alg);
    }
    // The superuser is the token's subject like any other principal.
    let r = decide(&h, token_request(&signers[2].sign(&good_claims("admin"))))
        .await
        .unwrap();
    assert_eq!(r.reason, "superuser");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failure_is_unauthenticated_with_its_cause_and_never_the_token() {
    let signer = Signer::new(Algorithm::ES256, "k1");
    let stranger = Signer::new(Algorithm::ES256, "k1");
    let other_kid = Signer::new(Algorithm::ES256, "k2");
    let keys = keys_file(&[&signer]);
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("decisions.jsonl");
    let log2 = log.clone();
    let mut settings = TokenSettings {
        jwks: vec![keys.jwks.clone()],
        issuers: vec![ISSUER.into()],
        audiences: vec![AUDIENCE.into()],
        leeway: Duration::from_secs(5),
        ..Default::default()
    };
    settings.leeway = Duration::from_secs(5);
    let h = Harness::start_with(&[("p.yaml", POLICIES)], move |c| {
        c.tokens = Some(settings);
        c.decision_log = Some(arbiter::decision_log::Target::File(log2));
    })
    .await;

    let with = |edit: &dyn Fn(&mut Value)| {
        let mut c = good_claims("alice");
        edit(&mut c);
        c
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            signer.sign(&with(&|c| c["exp"] = json!(now() - 3600))),
            "expired",
        ),
        (
            "not yet valid",
            signer.sign(&with(&|c| c["nbf"] = json!(now() + 3600))),
            "not valid yet",
        ),
        (
            "bad signature",
            stranger.sign(&good_claims("alice")),
            "bad signature",
        ),
        (
            "unknown kid",
            other_kid.sign(&good_claims("alice")),
            "unknown kid `k2`",
        ),
        (
            "wrong audience",
            signer.sign(&with(&|c| c["aud"] = json!("someone-else"))),
            "wrong audience",
        ),
        (
            "no audience",
            signer.sign(&with(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            })),
            "missing claim `aud`",
        ),
        (
            "wrong issuer",
            signer.sign(&with(&|c| c["iss"] = json!("https://evil.example"))),
            "wrong issuer",
        ),
        (
            "no expiry",
            signer.sign(&with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            })),
            "missing claim `exp`",
        ),
        (
            "no subject",
            signer.sign(&with(&|c| {
                c.as_object_mut().unwrap().remove("sub");
            })),
            "missing claim `sub`",
        ),
        (
            "groups not strings",
            signer.sign(&with(&|c| c["groups"] = json!([1, 2]))),
            "claim `groups`",
        ),
        (
            "alg none",
            unsigned(json!({"alg": "none", "typ": "JWT"}), &good_claims("alice")),
            "algorithm `none` is refused",
        ),
        (
            "HMAC",
            unsigned(json!({"alg": "HS256", "kid": "k1"}), &good_claims("alice")),
            "algorithm `HS256` is refused",
        ),
        ("garbage", "not.a.token".to_string(), "not a compact JWS"),
        ("one part", "abc".to_string(), "not a compact JWS"),
    ];
    for (what, token, expected) in &cases {
        let r = decide(&h, token_request(token)).await.unwrap();
        assert!(!is_allow(&r), "{what}");
        assert_eq!(r.reason, "unauthenticated", "{what}");
        assert!(r.policies.is_empty(), "{what}");
        let cause = cause_of(&r);
        assert!(
            cause.contains(expected),
            "{what}: cause {cause:?}, expected {expected:?}"
        );
        assert!(
            !r.explanation.contains(token.as_str()),
            "{what}: the token leaked"
        );
        let structured = r.explanation_struct.as_ref().expect("explanation_struct");
        assert!(structured.fields.contains_key("cause"), "{what}");
    }
    h.stop().await;
    let lines = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), cases.len());
    for (line, (what, token, expected)) in lines.iter().zip(&cases) {
        assert_eq!(line["reason"], "unauthenticated", "{what}");
        assert!(
            line["cause"].as_str().unwrap().contains(expected),
            "{what}: {line}"
        );
        assert!(
            !line.to_string().contains(token.as_str()),
            "{what}: the token leaked into the log"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_with_an_explicit_principal_is_invalid_argument() {
    let signer = Signer::new(Algorithm::EdDSA, "ed");
    let keys = keys_file(&[&signer]);
    let h = harness(&keys, |_| {}).await;
    let token = signer.sign(&good_claims("alice"));

    let mut r = token_request(&token);
    r.principal.as_mut().unwrap().id = "mallory".into();
    let e = decide(&h, r).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().starts_with("principal.id:"), "{}", e.message());

    let mut r = token_request(&token);
    r.principal.as_mut().unwrap().groups = vec!["admin".into()];
    let e = decide(&h, r).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().starts_with("principal.groups:"),
        "{}",
        e.message()
    );

    // Nothing unverified stands beside the claims: no explicit attribute either, new or repeating a claim.
    let attributes = |key: &str| prost_types::Struct {
        fields: [(
            key.to_string(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::StringValue("security".into())),
            },
        )]
        .into(),
    };
    for key in ["department", "clearance"] {
        let mut r = token_request(&token);
        r.principal.as_mut().unwrap().attributes = Some(attributes(key));
        let e = decide(&h, r).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(
            e.message().starts_with("principal.attributes:"),
            "{}",
            e.message()
        );
    }

    // A bad rest of the request is still bad input, with a bad token too.
    let mut r = token_request("junk");
    r.environment = Some(proto::Environment {
        source_ip: "not an ip".into(),
        ..Default::default()
    });
    let e = decide(&h, r).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().starts_with("environment.source_ip:"),
        "{}",
        e.message()
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_pem_keys_and_a_dotted_groups_claim() {
    let signer = Signer::new(Algorithm::ES384, "ignored");
    let dir = tempfile::tempdir().unwrap();
    // A PEM key's kid is its file name without the extension.
    let pem = dir.path().join("idp-2026.pem");
    std::fs::write(&pem, &signer.public_pem).unwrap();
    let settings = TokenSettings {
        pem_keys: vec![pem],
        groups_claim: "cust.groups".into(),
        id_claim: "preferred_username".into(),
        ..Default::default()
    };
    let h = Harness::start_with(&[("p.yaml", POLICIES)], move |c| c.tokens = Some(settings)).await;
    let claims = json!({
        "preferred_username": "carol",
        "sub": "a5f0",
        "exp": now() + 300,
        "cust": {"groups": ["ops"]},
        "department": "security",
    });
    let token = signer.sign_with_kid(Some("idp-2026"), &claims);
    let batch = AuthorizeBatchRequest {
        principal: Some(proto::Principal {
            token: token.clone(),
            ..Default::default()
        }),
        environment: None,
        checks: vec![
            Check {
                action: "ReadKey".into(),
                resource: None,
            },
            Check {
                action: "DeleteKey".into(),
                resource: None,
            },
        ],
        explain: false,
    };
    let r = h
        .client
        .clone()
        .authorize_batch(batch.clone())
        .await
        .unwrap()
        .into_inner();
    let reasons: Vec<&str> = r.results.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(reasons, ["allowed", "no_applicable_policy"]);
    // Without a kid, every key of the algorithm's family is tried.
    let r = decide(&h, token_request(&signer.sign_with_kid(None, &claims)))
        .await
        .unwrap();
    assert!(is_allow(&r), "{r:?}");
    // Another kid is unknown.
    let r = decide(
        &h,
        token_request(&signer.sign_with_kid(Some("idp-2025"), &claims)),
    )
    .await
    .unwrap();
    assert_eq!(r.reason, "unauthenticated");
    // Every check of a batch with a bad token is unauthenticated.
    let mut bad = batch;
    bad.principal.as_mut().unwrap().token = token.replace('.', "x");
    let r = h
        .client
        .clone()
        .authorize_batch(bad)
        .await
        .unwrap()
        .into_inner();
    assert!(
        r.results.iter().all(|r| r.reason == "unauthenticated"),
        "{r:?}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_reload_when_the_file_changes_and_a_bad_file_keeps_the_last_good() {
    let old = Signer::new(Algorithm::ES256, "2025");
    let new = Signer::new(Algorithm::ES256, "2026");
    let keys = keys_file(&[&old]);
    let h = harness(&keys, |_| {}).await;
    let old_token = old.sign(&good_claims("alice"));
    let new_token = new.sign(&good_claims("alice"));
    assert!(is_allow(
        &decide(&h, token_request(&old_token)).await.unwrap()
    ));
    assert_eq!(
        decide(&h, token_request(&new_token)).await.unwrap().reason,
        "unauthenticated"
    );

    // Rotation by write-and-rename, as editors and deploy tools do.
    let tmp = keys.jwks.with_extension("tmp");
    std::fs::write(&tmp, jwks(&[&new])).unwrap();
    std::fs::rename(&tmp, &keys.jwks).unwrap();
    eventually("the new key is used", || async {
        is_allow(&decide(&h, token_request(&new_token)).await.unwrap())
    })
    .await;
    // The old key is gone, even for a token verified (and cached) before.
    let r = decide(&h, token_request(&old_token)).await.unwrap();
    assert_eq!(r.reason, "unauthenticated");
    assert!(cause_of(&r).contains("unknown kid `2025`"), "{r:?}");

    // One odd key (an HMAC secret) beside a good one is left out; the good one is used.
    let odd = format!(
        "{{\"keys\": [{{\"kty\": \"oct\", \"k\": \"c2VjcmV0\"}}, {}]}}",
        serde_json::to_string(&new.jwk()).unwrap()
    );
    std::fs::write(&keys.jwks, odd).unwrap();
    h.server.reload();
    assert!(is_allow(
        &decide(&h, token_request(&new_token)).await.unwrap()
    ));

    // A file with no usable key keeps the last good keys, on a watch event and on a forced reload alike.
    std::fs::write(
        &keys.jwks,
        "{\"keys\": [{\"kty\": \"oct\", \"k\": \"c2VjcmV0\"}]}",
    )
    .unwrap();
    h.server.reload();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(is_allow(
        &decide(&h, token_request(&new_token)).await.unwrap()
    ));

    // An explicitly empty JWKS revokes every key.
    std::fs::write(&keys.jwks, "{\"keys\": []}").unwrap();
    h.server.reload();
    let r = decide(&h, token_request(&new_token)).await.unwrap();
    assert_eq!(r.reason, "unauthenticated", "{r:?}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_keys_a_token_is_unauthenticated_and_bad_key_files_stop_the_start() {
    let h = Harness::start(&[("p.yaml", POLICIES)]).await;
    let signer = Signer::new(Algorithm::ES256, "k");
    let r = decide(&h, token_request(&signer.sign(&good_claims("alice"))))
        .await
        .unwrap();
    assert_eq!(r.reason, "unauthenticated");
    assert!(cause_of(&r).contains("no token keys"), "{r:?}");
    h.stop().await;

    for (name, text, expected) in [
        (
            "hmac.json",
            r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#,
            "HMAC",
        ),
        (
            "p521.json",
            r#"{"keys": [{"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}]}"#,
            "P-256 and P-384",
        ),
        ("broken.json", "{", "not a JWKS document"),
        (
            "short-ed.json",
            r#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}]}"#,
            "32 bytes",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let policies = dir.path().join("policies");
        write(&policies, "p.yaml", POLICIES);
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let mut config = arbiter::server::ServerConfig::new(&policies);
        config.listen = Some("127.0.0.1:0".parse().unwrap());
        config.tokens = Some(TokenSettings {
            jwks: vec![file],
            ..Default::default()
        });
        let e = arbiter::server::start(config, std::future::pending())
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(name) && text.contains(expected),
            "{name}: {text}"
        );
    }
}
