//! The gRPC surface of the real server over a real tonic client: decisions, batch, status, input validation
//! (INVALID_ARGUMENT naming the field, RESOURCE_EXHAUSTED), health, reflection, the Unix socket, the decision
//! log, and graceful shutdown with a call in flight.

use crate::common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use arbiter::server::proto::authorizer_client::AuthorizerClient;
use arbiter::server::proto::{self, AuthorizeRequest, AuthorizeResponse, Decision};
use common::{allow, connect_uds, deny, is_allow, request, Harness, WAIT};
use prost_types::value::Kind;
use prost_types::{Struct, Value};
use tonic::Code;

fn default_pack() -> Vec<(String, String)> {
    common::default_pack()
}

async fn pack_harness(configure: impl FnOnce(&mut arbiter::server::ServerConfig)) -> Harness {
    let files = default_pack();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    Harness::start_with(&refs, configure).await
}

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.into())),
    }
}

fn list(items: &[&str]) -> Value {
    Value {
        kind: Some(Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(|s| string(s)).collect(),
        })),
    }
}

fn object(fields: Vec<(&str, Value)>) -> Struct {
    Struct {
        fields: fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn key_request(principal: &str, groups: &[&str], action: &str, owner: &str) -> AuthorizeRequest {
    AuthorizeRequest {
        principal: Some(proto::Principal {
            id: principal.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            attributes: None,
            token: String::new(),
        }),
        action: action.into(),
        resource: Some(proto::Resource {
            uri: "kylo:kylo:vault:keys:k2".into(),
            owner: owner.into(),
            attributes: Some(object(vec![(
                "permissions",
                Value {
                    kind: Some(Kind::StructValue(object(vec![(
                        "EncryptWithKey",
                        list(&["hr"]),
                    )]))),
                },
            )])),
        }),
        environment: Some(proto::Environment {
            time: Some(prost_types::Timestamp {
                seconds: 1_795_435_200,
                nanos: 0,
            }),
            source_ip: "10.1.2.3".into(),
            port: 443,
            attributes: None,
        }),
        explain: false,
    }
}

async fn authorize(h: &Harness, r: AuthorizeRequest) -> Result<AuthorizeResponse, tonic::Status> {
    h.client.clone().authorize(r).await.map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_reasons_and_policies() {
    let h = pack_harness(|_| {}).await;
    let revision = h.status().await.revision;

    // Group grant through the key's permissions.
    let r = authorize(&h, key_request("carol", &["hr"], "EncryptWithKey", "bob"))
        .await
        .unwrap();
    assert_eq!(r.decision, Decision::Allow as i32);
    assert_eq!(r.reason, "allowed");
    assert_eq!(r.policies, vec!["key-group-usage-grant"]);
    assert_eq!(r.revision, revision);
    assert!(!r.call_id.is_empty());
    assert_eq!(r.time.as_ref().map(|t| t.seconds), Some(1_795_435_200));
    assert!(r.explanation.is_empty());
    assert!(r.explanation_struct.is_none());

    // No applicable policy.
    let r = authorize(&h, key_request("carol", &["hr"], "DeleteKey", "bob"))
        .await
        .unwrap();
    assert_eq!(r.decision, Decision::Deny as i32);
    assert_eq!(r.reason, "no_applicable_policy");
    assert!(r.policies.is_empty());

    // The superuser.
    let r = authorize(&h, key_request("admin", &[], "DeleteKey", "bob"))
        .await
        .unwrap();
    assert_eq!(r.decision, Decision::Allow as i32);
    assert_eq!(r.reason, "superuser");
    assert_eq!(r.policies, vec!["superuser"]);

    // Explain returns JSON.
    let mut req = key_request("bob", &[], "DeleteKey", "bob");
    req.explain = true;
    let r = authorize(&h, req).await.unwrap();
    assert!(is_allow(&r));
    let explanation: serde_json::Value = serde_json::from_str(&r.explanation).unwrap();
    assert!(explanation["candidates"].is_array(), "{explanation}");
    // The same explanation as a Struct.
    let structured = r.explanation_struct.expect("explanation_struct");
    let keys: Vec<&String> = structured.fields.keys().collect();
    let expected: Vec<&String> = explanation.as_object().unwrap().keys().collect();
    assert_eq!(
        keys.iter().collect::<std::collections::BTreeSet<_>>(),
        expected.iter().collect::<std::collections::BTreeSet<_>>()
    );
    assert!(matches!(
        structured.fields["candidates"].kind,
        Some(prost_types::value::Kind::ListValue(_))
    ));

    // Unset time: the response carries the instant used.
    let mut req = key_request("bob", &[], "DeleteKey", "bob");
    req.environment = None;
    let r = authorize(&h, req).await.unwrap();
    let t = r.time.unwrap();
    let now = jiff::Timestamp::now().as_second();
    assert!((now - t.seconds).abs() < 60);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn superuser_flag_is_honoured() {
    let h = pack_harness(|c| c.superuser = "root".into()).await;
    let r = authorize(&h, key_request("root", &[], "DeleteKey", "x"))
        .await
        .unwrap();
    assert_eq!(r.reason, "superuser");
    let r = authorize(&h, key_request("admin", &[], "DeleteKey", "x"))
        .await
        .unwrap();
    assert_eq!(r.decision, Decision::Deny as i32);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_answers_in_order_from_one_snapshot() {
    let h = pack_harness(|_| {}).await;
    let base = key_request("carol", &["hr"], "x", "bob");
    let checks = ["EncryptWithKey", "DeleteKey", "CreateKey", "DecryptWithKey"]
        .iter()
        .map(|a| proto::Check {
            action: a.to_string(),
            resource: base.resource.clone(),
        })
        .collect();
    let r = h
        .client
        .clone()
        .authorize_batch(proto::AuthorizeBatchRequest {
            principal: base.principal.clone(),
            environment: base.environment.clone(),
            checks,
            explain: false,
        })
        .await
        .unwrap()
        .into_inner();
    let decisions: Vec<bool> = r.results.iter().map(is_allow).collect();
    assert_eq!(decisions, vec![true, false, true, false]);
    assert!(r.results.iter().all(|x| x.revision == r.revision));
    assert_eq!(r.results[2].policies, vec!["create-key-all-users"]);

    // Too many checks.
    let checks = (0..1025)
        .map(|_| proto::Check {
            action: "ReadKey".into(),
            resource: None,
        })
        .collect();
    let err = h
        .client
        .clone()
        .authorize_batch(proto::AuthorizeBatchRequest {
            principal: base.principal.clone(),
            environment: None,
            checks,
            explain: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("checks:"), "{}", err.message());

    // A bad check names its index.
    let err = h
        .client
        .clone()
        .authorize_batch(proto::AuthorizeBatchRequest {
            principal: base.principal.clone(),
            environment: None,
            checks: vec![
                proto::Check {
                    action: "ReadKey".into(),
                    resource: None,
                },
                proto::Check {
                    action: String::new(),
                    resource: None,
                },
            ],
            explain: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("checks[1].action:"),
        "{}",
        err.message()
    );
    h.stop().await;
}

fn nested(depth: usize) -> Value {
    let mut v = Value {
        kind: Some(Kind::NumberValue(1.0)),
    };
    for _ in 0..depth {
        v = Value {
            kind: Some(Kind::StructValue(object(vec![("a", v)]))),
        };
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_invalid_argument_naming_the_field() {
    let h = Harness::start(&[("p.yaml", &allow("p1", "ReadKey"))]).await;
    let ok = || request("alice", "ReadKey");
    let mut cases: Vec<(&str, AuthorizeRequest)> = Vec::new();

    let mut r = ok();
    r.action.clear();
    cases.push(("action", r));
    let mut r = ok();
    r.principal.as_mut().unwrap().id.clear();
    cases.push(("principal.id", r));
    let mut r = ok();
    r.principal = None;
    cases.push(("principal.id", r));
    let mut r = ok();
    r.environment = Some(proto::Environment {
        source_ip: "10.0.0.300".into(),
        ..Default::default()
    });
    cases.push(("environment.source_ip", r));
    let mut r = ok();
    r.environment = Some(proto::Environment {
        time: Some(prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        }),
        ..Default::default()
    });
    cases.push(("environment.time", r));
    let mut r = ok();
    r.environment = Some(proto::Environment {
        time: Some(prost_types::Timestamp {
            seconds: 0,
            nanos: -5,
        }),
        ..Default::default()
    });
    cases.push(("environment.time", r));
    let mut r = ok();
    r.environment = Some(proto::Environment {
        port: 70_000,
        ..Default::default()
    });
    cases.push(("environment.port", r));
    let mut r = ok();
    r.principal.as_mut().unwrap().attributes = Some(object(vec![("groups", list(&["x"]))]));
    cases.push(("principal.attributes.groups", r));
    let mut r = ok();
    r.resource.as_mut().unwrap().attributes = Some(object(vec![(
        "n",
        Value {
            kind: Some(Kind::NumberValue(f64::INFINITY)),
        },
    )]));
    cases.push(("resource.attributes.n", r));
    // Nested one level beyond the limit: refused by the conversion, naming the path.
    let mut r = ok();
    r.principal.as_mut().unwrap().attributes = Some(object(vec![("deep", nested(32))]));
    cases.push(("principal.attributes.deep", r));
    // Nested far beyond: refused while decoding (prost's recursion limit), still naming the map.
    let mut r = ok();
    r.environment = Some(proto::Environment {
        attributes: Some(object(vec![("deep", nested(200))])),
        ..Default::default()
    });
    cases.push(("environment.attributes", r));

    for (field, r) in cases {
        let err = authorize(&h, r).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert!(
            err.message().starts_with(field),
            "expected the message to name `{field}`: {}",
            err.message()
        );
    }
    // A hostile message nested 3000 levels deep, built as raw bytes (no recursion on the client side).
    let err = raw_unary(&h, deeply_nested_request(3000))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().starts_with("principal.attributes"),
        "{}",
        err.message()
    );

    // Invalid UTF-8 in a string field (`action`, field 2) is the caller's fault, named, never INTERNAL.
    let err = raw_unary(&h, vec![0x12, 0x02, 0xff, 0xfe])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().starts_with("AuthorizeRequest: "),
        "{}",
        err.message()
    );

    // At the limit is fine.
    let mut r = ok();
    r.principal.as_mut().unwrap().attributes = Some(object(vec![("deep", nested(31))]));
    assert!(authorize(&h, r).await.is_ok());
    // The server still answers normally.
    assert!(h.allowed("ReadKey").await);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_are_resource_exhausted() {
    let h = Harness::start(&[("p.yaml", &allow("p1", "ReadKey"))]).await;
    let mut r = request("alice", "ReadKey");
    r.principal.as_mut().unwrap().attributes =
        Some(object(vec![("blob", string(&"x".repeat(5 * 1024 * 1024)))]));
    let err = authorize(&h, r).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    // The connection is still usable.
    assert!(h.allowed("ReadKey").await);

    // A smaller configured limit applies too.
    let small = Harness::start_with(&[("p.yaml", &allow("p1", "ReadKey"))], |c| {
        c.max_message_bytes = 64 * 1024
    })
    .await;
    let mut r = request("alice", "ReadKey");
    r.principal.as_mut().unwrap().attributes =
        Some(object(vec![("blob", string(&"x".repeat(100 * 1024)))]));
    let err = authorize(&small, r).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    h.stop().await;
    small.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_the_snapshot() {
    let h = pack_harness(|_| {}).await;
    let s = h.status().await;
    assert_eq!(s.revision.len(), 16);
    assert_eq!(s.revision, common::disk_revision(h.dir.path()));
    assert_eq!((s.policies, s.attachments, s.groups), (5, 5, 2));
    assert_eq!(s.guards, 1);
    assert!(s.loaded_at.is_some());
    assert!(s.last_reload_error.is_empty());
    assert_eq!((s.reloads_ok, s.reloads_failed), (1, 0));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_reports_lockouts_and_changes() {
    let h = pack_harness(|_| {}).await;
    let current = h.status().await.revision;
    let mut files: std::collections::HashMap<String, String> = default_pack()
        .into_iter()
        .map(|(name, text)| (format!("policies/{name}"), text))
        .collect();
    files.insert("policies/lockout.yaml".into(), common::LOCKOUT.into());
    let mut admin = request("ops", "DeletePolicy");
    admin.principal.as_mut().unwrap().groups = vec!["admin".into()];
    admin.resource.as_mut().unwrap().uri = "kylo:kylo:admin:policies:p1".into();
    let unchanged = key_request("carol", &["hr"], "EncryptWithKey", "bob");
    let r = h
        .client
        .clone()
        .simulate(proto::SimulateRequest {
            files: files.clone(),
            requests: vec![admin.clone(), unchanged.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.valid, "{:?}", r.errors);
    assert_eq!(r.current_revision, current);
    assert_ne!(r.proposed_revision, current);
    let lockout = r
        .lockouts
        .iter()
        .find(|l| l.kind == "lockout")
        .unwrap_or_else(|| panic!("a lockout: {:?}", r.lockouts));
    assert_eq!(lockout.guard, "admins-keep-policy-control");
    assert_eq!(lockout.policies, vec!["no-policy-deletes"]);
    let example = lockout.counterexample.clone().expect("a counterexample");
    assert_eq!(example.action, "DeletePolicy");
    // The counterexample is valid input for Authorize; the server (current set) allows it.
    assert!(authorize(&h, example).await.is_ok());
    assert_eq!(r.replayed, 2);
    assert_eq!(r.changes.len(), 1, "{:?}", r.changes);
    let change = &r.changes[0];
    assert_eq!(change.request.as_ref().unwrap().action, "DeletePolicy");
    assert!(is_allow(change.current.as_ref().unwrap()));
    let proposed = change.proposed.as_ref().unwrap();
    assert_eq!(proposed.decision, Decision::Deny as i32);
    assert_eq!(proposed.policies, vec!["no-policy-deletes"]);
    assert_eq!(proposed.revision, r.proposed_revision);

    // The same set without the lockout: no findings, no changes.
    files.remove("policies/lockout.yaml");
    let r = h
        .client
        .clone()
        .simulate(proto::SimulateRequest {
            files: files.clone(),
            requests: vec![admin.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        r.valid && r.lockouts.is_empty() && r.changes.is_empty(),
        "{r:?}"
    );

    // An invalid proposed set.
    files.insert("policies/bad.yaml".into(), "kind: Nonsense\n".into());
    let r = h
        .client
        .clone()
        .simulate(proto::SimulateRequest {
            files,
            requests: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!r.valid);
    assert!(
        r.errors.iter().any(|e| e.contains("policies/bad.yaml")),
        "{:?}",
        r.errors
    );

    // Bad input names the field.
    let err = h
        .client
        .clone()
        .simulate(proto::SimulateRequest {
            files: [("../x.yaml".to_string(), String::new())].into(),
            requests: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("files["), "{}", err.message());
    let err = h
        .client
        .clone()
        .simulate(proto::SimulateRequest {
            files: Default::default(),
            requests: vec![request("alice", "")],
        })
        .await
        .unwrap_err();
    assert!(
        err.message().starts_with("requests[0].action"),
        "{}",
        err.message()
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_not_serving_until_the_first_snapshot() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::ServingStatus;

    let dir = tempfile::tempdir().unwrap();
    common::write(dir.path(), "p.yaml", &allow("p1", "ReadKey"));
    let gate = Arc::new(tokio::sync::Notify::new());
    let mut config = arbiter::server::ServerConfig::new(dir.path());
    config.listen = Some("127.0.0.1:0".parse().unwrap());
    config.first_load_gate = Some(gate.clone());
    config.grace_period = Duration::from_secs(60);
    let server = arbiter::server::start(config, std::future::pending())
        .await
        .unwrap();
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", server.tcp_addr().unwrap()))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut health = HealthClient::new(channel.clone());
    let check = |service: &str| HealthCheckRequest {
        service: service.into(),
    };
    for service in ["", "arbiter.v1.Authorizer"] {
        let s = health.check(check(service)).await.unwrap().into_inner();
        assert_eq!(s.status, ServingStatus::NotServing as i32, "{service:?}");
    }
    let err = AuthorizerClient::new(channel.clone())
        .authorize(request("alice", "ReadKey"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);

    let mut watch = health
        .watch(check("arbiter.v1.Authorizer"))
        .await
        .unwrap()
        .into_inner();
    gate.notify_one();
    server.ready().await.unwrap();
    for service in ["", "arbiter.v1.Authorizer"] {
        let s = health.check(check(service)).await.unwrap().into_inner();
        assert_eq!(s.status, ServingStatus::Serving as i32, "{service:?}");
    }
    // A watcher sees the transition.
    let mut last = None;
    while last != Some(ServingStatus::Serving as i32) {
        last = tokio::time::timeout(WAIT, watch.message())
            .await
            .unwrap()
            .unwrap()
            .map(|m| m.status);
    }
    let r = AuthorizerClient::new(channel)
        .authorize(request("alice", "ReadKey"))
        .await
        .unwrap();
    assert!(is_allow(r.get_ref()));

    // On shutdown an open Watch stream sees NOT_SERVING and ends, so it does not hold the drain (the grace
    // period here is a minute).
    server.shutdown();
    let mut statuses = Vec::new();
    while let Some(m) = tokio::time::timeout(WAIT, watch.message())
        .await
        .expect("the watch stream ends")
        .unwrap()
    {
        statuses.push(m.status);
    }
    assert_eq!(statuses.last(), Some(&(ServingStatus::NotServing as i32)));
    tokio::time::timeout(WAIT, server.wait())
        .await
        .expect("shutdown is not held by the watch")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_services() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let h = Harness::start(&[("p.yaml", &allow("p1", "ReadKey"))]).await;
    let addr = h.server.tcp_addr().unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ServerReflectionClient::new(channel);
    let ask = |m: MessageRequest| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(m),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(vec![
            ask(MessageRequest::ListServices(String::new())),
            ask(MessageRequest::FileContainingSymbol(
                "arbiter.v1.Authorizer".into(),
            )),
        ]))
        .await
        .unwrap()
        .into_inner();
    let first = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = first.message_response else {
        panic!("unexpected {first:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "arbiter.v1.Authorizer",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    let second = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = second.message_response else {
        panic!("unexpected {second:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_has_mode_0600_and_serves() {
    let sockdir = tempfile::tempdir().unwrap();
    let sock = sockdir.path().join("arbiter.sock");
    // A stale socket from a crashed run is replaced.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let sock2 = sock.clone();
    let h = Harness::start_with(&[("p.yaml", &allow("p1", "ReadKey"))], move |c| {
        c.uds = Some(sock2);
    })
    .await;
    let meta = std::fs::symlink_metadata(&sock).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // No leftover private directory next to the socket.
    assert_eq!(std::fs::read_dir(sockdir.path()).unwrap().count(), 1);

    let path = sock.clone();
    let channel = connect_uds(&path).await;
    let r = AuthorizerClient::new(channel)
        .authorize(request("alice", "ReadKey"))
        .await
        .unwrap()
        .into_inner();
    assert!(is_allow(&r));
    h.stop().await;
    assert!(!sock.exists(), "the socket is removed on shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decision_log_lines_replay_as_requests() {
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("decisions.jsonl");
    let log2 = log.clone();
    let h = pack_harness(move |c| {
        c.decision_log = Some(arbiter::decision_log::Target::File(log2));
    })
    .await;
    let mut responses = Vec::new();
    responses.push(
        authorize(&h, key_request("carol", &["hr"], "EncryptWithKey", "bob"))
            .await
            .unwrap(),
    );
    let mut no_time = key_request("dave", &[], "DeleteKey", "bob");
    no_time.environment = None;
    responses.push(authorize(&h, no_time).await.unwrap());
    responses.push(
        authorize(&h, key_request("admin", &[], "DeleteKey", "bob"))
            .await
            .unwrap(),
    );
    let base = key_request("carol", &["hr"], "x", "bob");
    let batch = h
        .client
        .clone()
        .authorize_batch(proto::AuthorizeBatchRequest {
            principal: base.principal.clone(),
            environment: base.environment.clone(),
            checks: vec![
                proto::Check {
                    action: "EncryptWithKey".into(),
                    resource: base.resource.clone(),
                },
                proto::Check {
                    action: "DeleteKey".into(),
                    resource: base.resource.clone(),
                },
            ],
            explain: false,
        })
        .await
        .unwrap()
        .into_inner();
    let revision = h.status().await.revision;
    let snapshot = arbiter::build(&arbiter::load::load_dir(h.dir.path()).unwrap()).unwrap();
    h.stop().await; // flushes the log

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 5, "{text}");
    for (i, line) in lines.iter().enumerate() {
        for field in [
            "timestamp",
            "call_id",
            "principal",
            "action",
            "resource",
            "environment",
            "decision",
            "reason",
            "policies",
            "revision",
            "duration_us",
        ] {
            assert!(line.get(field).is_some(), "line {i} lacks {field}: {line}");
        }
        assert!(arbiter::request::parse_rfc3339(line["timestamp"].as_str().unwrap()).is_some());
        assert_eq!(line["revision"], revision.as_str());
        assert!(line["duration_us"].is_u64());
        // The line itself re-parses as the request, carries its resolved time, and replays to the same decision.
        let request = arbiter::Request::from_json(line.clone()).expect("the line re-parses");
        let time = request
            .environment
            .time
            .expect("the resolved time is logged");
        let replayed = arbiter::evaluate(
            &snapshot,
            &request,
            time,
            &arbiter::EvalOptions {
                superuser: Some("admin"),
                explain: false,
            },
        );
        assert_eq!(line["decision"], replayed.decision_str(), "line {i}");
        assert_eq!(line["reason"], replayed.reason.as_str(), "line {i}");
    }
    for (line, r) in lines.iter().zip(&responses) {
        assert_eq!(line["call_id"], r.call_id.as_str());
        assert_eq!(line["decision"], if is_allow(r) { "allow" } else { "deny" });
        assert_eq!(line["policies"], serde_json::to_value(&r.policies).unwrap());
        let t = r.time.as_ref().unwrap();
        let logged =
            arbiter::request::parse_rfc3339(line["environment"]["time"].as_str().unwrap()).unwrap();
        assert_eq!(logged.as_second(), t.seconds);
        assert_eq!(logged.subsec_nanosecond(), t.nanos as u32);
    }
    assert_eq!(
        lines[0]["resource"]["attributes"]["permissions"]["EncryptWithKey"][0],
        "hr"
    );
    assert_eq!(lines[2]["reason"], "superuser");
    assert_eq!(lines[3]["check"], 0);
    assert_eq!(lines[4]["check"], 1);
    assert_eq!(lines[3]["call_id"], batch.results[0].call_id.as_str());
    assert_eq!(lines[4]["action"], "DeleteKey");
    assert_eq!(lines[4]["decision"], "deny");
}

/// Graceful shutdown: with a call in flight (its request body held back by the client), shutdown closes the
/// listener, the call still completes, and the server then stops cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_the_call_in_flight() {
    let h = Harness::start(&[("p.yaml", &allow("p1", "ReadKey"))]).await;
    let addr = h.server.tcp_addr().unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();

    // A unary call whose single message is sent only when we say so.
    let (tx, rx) = tokio::sync::mpsc::channel::<AuthorizeRequest>(1);
    let call = tokio::spawn(async move {
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.unwrap();
        let codec = tonic_prost::ProstCodec::<AuthorizeRequest, AuthorizeResponse>::default();
        let path = http::uri::PathAndQuery::from_static("/arbiter.v1.Authorizer/Authorize");
        grpc.client_streaming(
            tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx)),
            path,
            codec,
        )
        .await
    });
    common::eventually("the call to be in flight", || async {
        h.server.in_flight() == 1
    })
    .await;

    h.server.shutdown();
    // New connections are refused once the listener is closed.
    common::eventually("the listener to close", || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    assert_eq!(h.server.in_flight(), 1, "the call is still in flight");
    tx.send(request("alice", "ReadKey")).await.unwrap();
    drop(tx);
    let response = tokio::time::timeout(WAIT, call)
        .await
        .expect("the call completes")
        .unwrap()
        .expect("the in-flight call succeeds")
        .into_inner();
    assert!(is_allow(&response));
    tokio::time::timeout(WAIT, h.server.wait())
        .await
        .expect("the server stops")
        .expect("cleanly");
}

/// A call that never finishes is abandoned after the grace period; the server still stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_period_bounds_shutdown() {
    let h = Harness::start_with(&[("p.yaml", &deny("p1", "ReadKey"))], |c| {
        c.grace_period = Duration::from_millis(300)
    })
    .await;
    let addr = h.server.tcp_addr().unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let (_tx, rx) = tokio::sync::mpsc::channel::<AuthorizeRequest>(1);
    let _call = tokio::spawn(async move {
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.unwrap();
        let codec = tonic_prost::ProstCodec::<AuthorizeRequest, AuthorizeResponse>::default();
        let path = http::uri::PathAndQuery::from_static("/arbiter.v1.Authorizer/Authorize");
        grpc.client_streaming(
            tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx)),
            path,
            codec,
        )
        .await
    });
    common::eventually("the call to be in flight", || async {
        h.server.in_flight() == 1
    })
    .await;
    h.server.shutdown();
    tokio::time::timeout(WAIT, h.server.wait())
        .await
        .expect("the server stops after the grace period")
        .expect("cleanly");
}

/// Length-delimited protobuf field.
fn ld(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let mut n = body.len();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(body);
    out
}

/// An AuthorizeRequest whose principal attribute `deep` nests `depth` Structs, encoded iteratively.
fn deeply_nested_request(depth: usize) -> Vec<u8> {
    // Value{number_value: 1.0}
    let mut value = vec![0x11];
    value.extend_from_slice(&1.0f64.to_le_bytes());
    let entry = |key: &str, value: &[u8]| {
        let mut e = ld(0x0a, key.as_bytes());
        e.extend(ld(0x12, value));
        e
    };
    for _ in 0..depth {
        // Value{struct_value: Struct{fields: {"a": value}}}
        let strukt = ld(0x0a, &entry("a", &value));
        value = ld(0x2a, &strukt);
    }
    let attributes = ld(0x0a, &entry("deep", &value));
    let mut principal = ld(0x0a, b"alice");
    principal.extend(ld(0x1a, &attributes));
    let mut request = ld(0x0a, &principal);
    request.extend(ld(0x12, b"ReadKey"));
    request
}

#[derive(Debug, Clone, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        let out = src.chunk().to_vec();
        src.advance(out.len());
        Ok(Some(out))
    }
}

async fn raw_unary(h: &Harness, body: Vec<u8>) -> Result<Vec<u8>, tonic::Status> {
    let addr = h.server.tcp_addr().unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static("/arbiter.v1.Authorizer/Authorize");
    grpc.unary(tonic::Request::new(body), path, RawCodec)
        .await
        .map(|r| r.into_inner())
}

/// `PlanResources` over the default pack: carol (group `hr`) may encrypt with keys she owns or whose
/// `permissions.EncryptWithKey` lists `hr`; the SQL mapping comes back rendered; bad input names the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_resources_answers_a_filter_over_the_default_pack() {
    let h = pack_harness(|_| {}).await;
    let mut client = h.client.clone();
    let plan = client
        .plan_resources(proto::PlanResourcesRequest {
            principal: Some(proto::Principal {
                id: "carol".into(),
                groups: vec!["hr".into()],
                ..Default::default()
            }),
            action: "EncryptWithKey".into(),
            resource: Some(proto::KnownResource {
                uri: "kylo:kylo:vault:keys:*".into(),
                owner: String::new(),
            }),
            sql: Some(proto::SqlMapping::default()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plan.kind, proto::PlanKind::Conditional as i32);
    assert_eq!(
        plan.policies,
        ["key-group-usage-grant", "key-owner-full-access"]
    );
    let filter = format!("{:?}", plan.filter);
    assert!(
        filter.contains("resource.permissions.EncryptWithKey"),
        "{filter}"
    );
    assert!(filter.contains("carol"), "{filter}");
    let sql = plan.sql.expect("sql asked for");
    assert!(sql.exact);
    assert!(
        sql.r#where.contains("json_each(\"attributes\""),
        "{}",
        sql.r#where
    );
    assert_eq!(plan.revision, h.status().await.revision);

    let admin = client
        .plan_resources(proto::PlanResourcesRequest {
            principal: Some(proto::Principal {
                id: "admin".into(),
                ..Default::default()
            }),
            actions: vec!["DeleteKey".into(), "CreatePolicy".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(admin.kind, proto::PlanKind::AlwaysAllowed as i32);
    assert_eq!(admin.policies, ["superuser"]);

    let err = client
        .plan_resources(proto::PlanResourcesRequest {
            principal: Some(proto::Principal {
                id: "carol".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("actions"), "{}", err.message());
    h.stop().await;
}
