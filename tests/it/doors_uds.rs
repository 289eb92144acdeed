//! The Unix socket serves stock gRPC clients: Python grpcio (gRPC C-core sends the socket path as `:authority`,
//! which the HTTP/2 layer would reset) with default channel options, over both spellings of the target, and the
//! tonic client; the same repair applies on TCP.

use std::path::Path;

use serde_json::Value;

use crate::common::*;

const POLICIES: &str = "\
kind: Policy
id: read
effect: allow
actions: [ReadKey]
resources: [\"*\"]
---
kind: PolicyAttachment
id: read-all
policy: read
principal_selector: {}
";

async fn python_client(target: &str) -> Value {
    let proto_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/grpc_uds_client.py");
    let (status, stdout, stderr) = run_bounded(
        tokio::process::Command::new("python3")
            .arg(script)
            .arg(proto_root)
            .arg(target),
    )
    .await;
    assert!(
        status.success(),
        "python client failed on {target}: {stderr}"
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn check_python_answers(got: &Value, revision: &str) {
    let reasons: Vec<&str> = got["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        ["allowed", "no_applicable_policy", "allowed", "allowed"],
        "{got}"
    );
    assert_eq!(got["decisions"][0]["decision"], "DECISION_ALLOW");
    assert_eq!(
        got["batch"],
        serde_json::json!(["allowed", "no_applicable_policy"])
    );
    assert_eq!(got["revision"], revision);
    let plans = &got["plans"];
    assert_eq!(
        plans["ReadKey"]["kind"], "PLAN_KIND_ALWAYS_ALLOWED",
        "{got}"
    );
    assert_eq!(plans["ReadKey"]["filter"], true, "{got}");
    assert_eq!(plans["ReadKey"]["where"], "1", "{got}");
    assert_eq!(
        plans["DeleteKey"]["kind"], "PLAN_KIND_ALWAYS_DENIED",
        "{got}"
    );
    assert_eq!(plans["DeleteKey"]["where"], "0", "{got}");
    assert_eq!(plans["DeleteKey"]["exact"], true, "{got}");
    assert_eq!(plans["DeleteKey"]["revision"], revision);
    assert_eq!(got["invalid"], "INVALID_ARGUMENT", "{got}");
    assert!(got["invalid_message"]
        .as_str()
        .unwrap()
        .starts_with("principal.id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_grpcio_over_the_socket_with_default_options() {
    if !python_grpc() {
        return;
    }
    let sockdir = tempfile::tempdir().unwrap();
    let sock = sockdir.path().join("arbiter.sock");
    let sock2 = sock.clone();
    let h = Harness::start_with(&[("p.yaml", POLICIES)], move |c| c.uds = Some(sock2)).await;
    let revision = h.status().await.revision;
    // `unix:PATH` and `unix://ABSOLUTE_PATH`: C-core sends `tmp%2F...%2Farbiter.sock` for both.
    for target in [
        format!("unix:{}", sock.display()),
        format!("unix://{}", sock.display()),
    ] {
        check_python_answers(&python_client(&target).await, &revision);
    }
    // TCP, for comparison: the same client with a valid authority.
    let tcp = format!("127.0.0.1:{}", h.server.tcp_addr().unwrap().port());
    check_python_answers(&python_client(&tcp).await, &revision);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_over_the_socket() {
    let sockdir = tempfile::tempdir().unwrap();
    let sock = sockdir.path().join("arbiter.sock");
    let sock2 = sock.clone();
    let h = Harness::start_with(&[("p.yaml", POLICIES)], move |c| c.uds = Some(sock2)).await;
    let path = sock.clone();
    let channel = connect_uds(&path).await;
    let mut client = arbiter::server::proto::authorizer_client::AuthorizerClient::new(channel);
    for _ in 0..3 {
        let r = client
            .authorize(request("alice", "ReadKey"))
            .await
            .unwrap()
            .into_inner();
        assert!(is_allow(&r));
    }
    h.server.shutdown();
    tokio::time::timeout(WAIT, h.server.wait())
        .await
        .unwrap()
        .unwrap();
}
