//! Prometheus `/metrics` of the real server. Its own test binary (process), apart from `tests/it`, because the
//! metrics recorder is process-wide: other tests' servers would add to the counts asserted here.

#[path = "it/common/mod.rs"]
mod common;

use common::{allow, Harness};

async fn scrape(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    (status, body)
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_exposes_the_spec_names() {
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("d.jsonl");
    let h = Harness::start_with(&[("p.yaml", &allow("p1", "ReadKey"))], move |c| {
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        c.decision_log = Some(arbiter::decision_log::Target::File(log));
    })
    .await;
    let addr = h.server.metrics_addr().expect("metrics address");
    assert!(h.allowed("ReadKey").await);
    assert!(!h.allowed("DeleteKey").await);
    assert!(!h.allowed("UpdateKey").await);
    assert!(common::is_allow(&h.authorize("admin", "DeleteKey").await));

    // A failed reload shows in arbiter_reloads_total{result="error"}.
    h.write("bad.yaml", "kind: Nonsense\n");
    h.eventually("the failed reload", || async {
        h.status().await.reloads_failed == 1
    })
    .await;

    let (status, text) = scrape(addr, "/metrics").await;
    assert_eq!(status, 200);
    for name in [
        "arbiter_decisions_total",
        "arbiter_decision_duration_seconds",
        "arbiter_reloads_total",
        "arbiter_snapshot_policies",
        "arbiter_decision_log_dropped_total",
        "arbiter_superuser_decisions_total",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    assert_eq!(
        value(&text, "arbiter_decisions_total{decision=\"allow\"}"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "arbiter_decisions_total{decision=\"deny\"}"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "arbiter_superuser_decisions_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "arbiter_reloads_total{result=\"ok\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "arbiter_reloads_total{result=\"error\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "arbiter_snapshot_policies"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "arbiter_decision_log_dropped_total"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "arbiter_decision_duration_seconds_count"),
        Some(4.0),
        "{text}"
    );
    assert!(
        text.contains("arbiter_decision_duration_seconds_bucket{le="),
        "a histogram:\n{text}"
    );

    let (status, _) = scrape(addr, "/other").await;
    assert_eq!(status, 404);
    h.stop().await;
}
