//! Concurrency and fail-closed under faults (hardening issue): a decision log whose every write fails keeps
//! `Authorize` answering and counts each lost line; and a stress test of the snapshot store shows that readers
//! racing a publisher only ever see whole, internally consistent snapshots. Its own test binary, because the
//! metrics recorder is process-wide.

use crate::common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use arbiter::load::SourceSet;
use arbiter::{EvalOptions, Request, Snapshot, SnapshotStore};
use common::{allow, Harness};
use serde_json::json;

async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()
}

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// `/dev/full` fails every write with ENOSPC, as a full disk does: decisions go on, every line is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_decision_log_never_blocks_decisions_and_counts_losses() {
    let h = Harness::start_with(&[("p.yaml", &allow("p1", "ReadKey"))], |c| {
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        c.decision_log = Some(arbiter::decision_log::Target::File(PathBuf::from(
            "/dev/full",
        )));
    })
    .await;
    let addr = h.server.metrics_addr().expect("metrics address");
    const CALLS: usize = 300;
    for i in 0..CALLS {
        let action = if i % 2 == 0 { "ReadKey" } else { "DeleteKey" };
        let d = h.authorize("alice", action).await;
        assert_eq!(common::is_allow(&d), i % 2 == 0, "call {i}");
    }
    // Every line is either dropped at the queue or lost at the write; none is silently gone.
    let counted = |text: &str| {
        value(text, "arbiter_decision_log_write_errors_total")
            + value(text, "arbiter_decision_log_dropped_total")
    };
    let started = std::time::Instant::now();
    let mut text = scrape(addr).await;
    while counted(&text) < CALLS as f64 && started.elapsed() < common::WAIT {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        text = scrape(addr).await;
    }
    assert_eq!(counted(&text), CALLS as f64, "{text}");
    assert!(
        value(&text, "arbiter_decision_log_write_errors_total") > 0.0,
        "{text}"
    );
    // Still answering.
    assert!(h.allowed("ReadKey").await);
    h.stop().await;
}

/// Snapshot `i` allows exactly the action `A{i}` and holds `i + 1` policies.
fn snapshot(i: usize) -> Snapshot {
    let mut text = allow("main", &format!("A{i}"));
    for p in 0..i {
        text.push_str(&format!(
            "---\nkind: Policy\nid: pad-{p}\neffect: allow\nactions: [Pad]\nresources: [\"*\"]\n"
        ));
    }
    arbiter::build(&SourceSet::from_files([(PathBuf::from("p.yaml"), text)])).unwrap()
}

fn request(action: &str) -> Request {
    Request::from_json(json!({"principal": {"id": "alice"}, "action": action})).unwrap()
}

#[test]
fn readers_never_see_a_torn_snapshot() {
    const VERSIONS: usize = 8;
    const READERS: usize = 3;
    const LOADS_PER_READER: usize = 20_000;
    let snapshots: Vec<Arc<Snapshot>> = (0..VERSIONS).map(|i| Arc::new(snapshot(i))).collect();
    let index: Arc<HashMap<String, usize>> = Arc::new(
        snapshots
            .iter()
            .enumerate()
            .map(|(i, s)| (s.revision.clone(), i))
            .collect(),
    );
    assert_eq!(index.len(), VERSIONS, "distinct revisions");
    let requests: Arc<Vec<Request>> =
        Arc::new((0..VERSIONS).map(|i| request(&format!("A{i}"))).collect());

    let store = Arc::new(SnapshotStore::new());
    store.publish(snapshots[0].clone());
    let done = Arc::new(AtomicBool::new(false));
    let publishes = Arc::new(AtomicU64::new(0));

    let writer = {
        let (store, done, publishes) = (store.clone(), done.clone(), publishes.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !done.load(Ordering::Relaxed) {
                i = (i + 1) % VERSIONS;
                store.publish(snapshots[i].clone());
                publishes.fetch_add(1, Ordering::Relaxed);
                std::thread::yield_now();
            }
        })
    };
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (store, index, requests) = (store.clone(), index.clone(), requests.clone());
            std::thread::spawn(move || {
                let mut seen = [0u64; VERSIONS];
                for n in 0..LOADS_PER_READER {
                    let s = store.load().expect("always a snapshot");
                    let i = *index
                        .get(&s.revision)
                        .unwrap_or_else(|| panic!("unknown revision {}", s.revision));
                    assert_eq!(s.policy_count(), i + 1, "policies of revision {i}");
                    // Its own action is allowed, the next version's is not: the compiled index, the policies and
                    // the revision all belong to the same snapshot.
                    let opts = EvalOptions::default();
                    let now = jiff::Timestamp::UNIX_EPOCH;
                    let own = arbiter::evaluate(&s, &requests[i], now, &opts);
                    assert!(own.allowed, "revision {i} must allow A{i} (load {n})");
                    assert_eq!(own.policies.len(), 1);
                    let other = arbiter::evaluate(&s, &requests[(i + 1) % VERSIONS], now, &opts);
                    assert!(!other.allowed, "revision {i} must not allow A{}", i + 1);
                    seen[i] += 1;
                }
                seen
            })
        })
        .collect();
    let mut seen = [0u64; VERSIONS];
    for r in readers {
        for (i, n) in r.join().expect("reader").iter().enumerate() {
            seen[i] += n;
        }
    }
    done.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    eprintln!(
        "publishes: {}, loads per version: {seen:?}",
        publishes.load(Ordering::Relaxed)
    );
    assert!(publishes.load(Ordering::Relaxed) > 0);
    assert!(
        seen.iter().filter(|&&n| n > 0).count() > 1,
        "readers saw more than one version: {seen:?}"
    );
}
