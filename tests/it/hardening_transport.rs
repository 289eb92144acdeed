//! Transport controls against the real server, each reproducing an attack or fault that went unchecked before:
//! slowloris and idle connections closed by their timeouts, the connection cap, accept errors under a small
//! descriptor limit (`prlimit`) without spinning, load shedding, the deadline, the shared budget of buffered
//! request bytes, `Simulate`'s caps and concurrency limit, the admin listener, and non-gRPC content types.
//! Every load here is small, bounded in time, and on loopback.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use arbiter::server::proto::{self, SimulateRequest};
use tonic::Code;

use crate::common::*;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An empty SETTINGS frame.
const SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

/// Reads until the server closes the connection (EOF or reset); panics if it stays open past [`WAIT`].
fn closed_by_server(mut stream: TcpStream) {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return,
        }
        assert!(
            started.elapsed() < WAIT,
            "the server kept the connection open"
        );
    }
}

fn policies() -> [(&'static str, String); 1] {
    [("p.yaml", allow("p1", "ReadKey"))]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_idle_connections_are_closed() {
    let files = policies();
    let h = Harness::start_with(&[(files[0].0, files[0].1.as_str())], |c| {
        c.limits.handshake_timeout = Duration::from_millis(500);
        c.limits.idle_timeout = Duration::from_secs(2);
        // Live clients answer the keepalive PINGs well within the idle timeout.
        c.limits.keepalive_interval = Duration::from_millis(300);
        c.limits.keepalive_timeout = Duration::from_secs(1);
    })
    .await;
    let addr = h.server.tcp_addr().unwrap();
    let slow = tokio::task::spawn_blocking(move || {
        // The preface at one byte every 100 ms: 2.4 s, far past the handshake timeout.
        let mut stream = TcpStream::connect(addr).unwrap();
        let started = std::time::Instant::now();
        for b in PREFACE {
            if stream.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            assert!(started.elapsed() < WAIT);
        }
        closed_by_server(stream);
    });
    let idle = tokio::task::spawn_blocking(move || {
        // A complete handshake, then silence.
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(PREFACE).unwrap();
        stream.write_all(SETTINGS).unwrap();
        closed_by_server(stream);
    });
    let silent =
        tokio::task::spawn_blocking(move || closed_by_server(TcpStream::connect(addr).unwrap()));
    for t in [slow, idle, silent] {
        tokio::time::timeout(WAIT * 2, t).await.unwrap().unwrap();
    }
    // A real client is still served.
    assert!(h.allowed("ReadKey").await);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_and_the_others_served() {
    let files = policies();
    let h = Harness::start_with(&[(files[0].0, files[0].1.as_str())], |c| {
        c.limits.max_connections = 3;
    })
    .await;
    // The harness's client holds one connection; two more fill the cap.
    assert!(h.allowed("ReadKey").await);
    let addr = h.server.tcp_addr().unwrap();
    let held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(PREFACE).unwrap();
            s
        })
        .collect();
    // Give the accept loop the two connections before the third.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let over = TcpStream::connect(addr).unwrap();
    tokio::task::spawn_blocking(move || closed_by_server(over))
        .await
        .unwrap();
    assert!(
        h.allowed("ReadKey").await,
        "the connections under the cap are served"
    );
    drop(held);
    h.eventually("a freed slot admits a new client", || async {
        let Ok(Ok(mut client)) = tokio::time::timeout(
            Duration::from_secs(2),
            arbiter::server::proto::authorizer_client::AuthorizerClient::connect(format!(
                "http://{addr}"
            )),
        )
        .await
        else {
            return false;
        };
        client.authorize(request("alice", "ReadKey")).await.is_ok()
    })
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_descriptors_backs_off_instead_of_spinning() {
    if !external("prlimit (util-linux)", &["prlimit", "--version"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "p.yaml", &allow("p1", "ReadKey"));
    // Ports no client socket of another test can take meanwhile (see `free_port`).
    let port = free_port();
    let metrics_port = free_port();
    let mut server = tokio::process::Command::new("prlimit")
        .arg("--nofile=64")
        .arg(env!("CARGO_BIN_EXE_arbiter"))
        .args(["serve", "--policies"])
        .arg(dir.path())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
        .args(["--log", "error"])
        .kill_on_drop(true)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = server.id().unwrap();
    // The server's standard error is read as it comes, so that a full pipe can never block its logging (and with
    // it the server), and kept for the failure message.
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut stderr = server.stderr.take().unwrap();
    let sink = log.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    eventually("the server listens", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    // Serving first: the first load reads the policy files, and must not meet the exhaustion below (a first
    // load that fails ends `serve`, as it should).
    let served = poll_until(|| async {
        let Ok(mut client) = arbiter::server::proto::authorizer_client::AuthorizerClient::connect(
            format!("http://127.0.0.1:{port}"),
        )
        .await
        else {
            return false;
        };
        client.authorize(request("alice", "ReadKey")).await.is_ok()
    })
    .await;
    assert!(served, "the server never served: {}", log.lock().unwrap());
    // More sockets than the server has descriptors for.
    let clients: Vec<TcpStream> = (0..120)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    let cpu = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat.rsplit(") ").next().unwrap().split(' ').collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu(pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used_ticks = cpu(pid) - before;
    // A spinning accept loop burns the whole 2 s (200 ticks); backing off uses a small fraction.
    assert!(
        used_ticks < 100,
        "the accept loop used {used_ticks} ticks of CPU in 2 s"
    );
    // Descriptors freed: the server recovers.
    drop(clients);
    let recovered = poll_until(|| async {
        let Ok(Ok(mut client)) = tokio::time::timeout(
            Duration::from_secs(2),
            arbiter::server::proto::authorizer_client::AuthorizerClient::connect(format!(
                "http://127.0.0.1:{port}"
            )),
        )
        .await
        else {
            return false;
        };
        client.authorize(request("alice", "ReadKey")).await.is_ok()
    })
    .await;
    assert!(
        recovered,
        "no new client was served within {WAIT:?} after the descriptors were freed; the server said:\n{}",
        log.lock().unwrap()
    );
    // The metrics endpoint needs a descriptor too, so the count is read once they are free again.
    eventually("the accept errors are counted", || {
        let url = format!("http://127.0.0.1:{metrics_port}/metrics");
        async move {
            let (_, metrics, _) =
                run_bounded(tokio::process::Command::new("curl").args(["-s", &url])).await;
            metrics
                .lines()
                .find(|l| l.starts_with("arbiter_accept_errors_total"))
                .and_then(|l| l.split(' ').next_back())
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(|n| n > 0.0)
        }
    })
    .await;
    let _ = server.start_kill();
    let _ = server.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_max_inflight_are_shed_at_once() {
    let files = policies();
    let h = Harness::start_with(&[(files[0].0, files[0].1.as_str())], |c| {
        c.limits.max_inflight = 1;
        // The stalled call below must stay in flight for the whole of a slow machine's wait, not end at the
        // default 30 s deadline while the test is still polling.
        c.limits.request_timeout = Duration::from_secs(600);
    })
    .await;
    assert!(h.allowed("ReadKey").await);
    let addr = h.server.tcp_addr().unwrap();
    // A health watch is a stream that stays open: it never counts against the decision limit.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let mut watch = health
        .watch(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let _ = watch.message().await.unwrap();
    assert!(
        h.allowed("ReadKey").await,
        "a watch does not crowd decisions out"
    );
    // A decision call whose request never completes is in flight until the deadline.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.unwrap();
    let mut send_stalled = || {
        let call = http::Request::post(format!("http://{addr}/arbiter.v1.Authorizer/Authorize"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (response, mut body) = client.send_request(call, false).unwrap();
        body.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 100, 10]), false)
            .unwrap();
        (response, body)
    };
    let (mut response, mut stalled) = send_stalled();
    let started = std::time::Instant::now();
    loop {
        // A stalled call that has an answer already was shed itself: the server had not yet let go of the
        // previous decision when it arrived (its answer reaches the client before the server drops it). Another.
        if tokio::time::timeout(Duration::from_millis(1), &mut response)
            .await
            .is_ok()
        {
            (response, stalled) = send_stalled();
        }
        match h
            .client
            .clone()
            .authorize(request("alice", "ReadKey"))
            .await
        {
            Err(e) => {
                assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
                assert!(e.message().contains("max-inflight"), "{}", e.message());
                break;
            }
            Ok(_) => assert!(
                started.elapsed() < WAIT,
                "timed out after {WAIT:?} waiting for the stalled call to be in flight and the next decision shed"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Health itself is never shed.
    health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    // The stalled call cancelled, decisions are served again.
    stalled.send_reset(h2::Reason::CANCEL);
    drop(stalled);
    drop(response);
    h.eventually("decisions are served again", || async {
        h.client
            .clone()
            .authorize(request("alice", "ReadKey"))
            .await
            .is_ok()
    })
    .await;
    h.stop().await;
}

fn big_attribute_request(bytes: usize) -> proto::AuthorizeRequest {
    padded(request("alice", "ReadKey"), bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_request_bytes_share_one_budget_that_is_given_back() {
    let files = policies();
    let h = Harness::start_with(&[(files[0].0, files[0].1.as_str())], |c| {
        c.limits.request_bytes_budget = 100_000;
    })
    .await;
    // One call larger than the whole budget: refused, not buffered.
    let e = h
        .client
        .clone()
        .authorize(big_attribute_request(300_000))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("budget"), "{}", e.message());
    // Its bytes were given back: calls within the budget pass, many times over the budget in total.
    for _ in 0..20 {
        let r = h
            .client
            .clone()
            .authorize(big_attribute_request(40_000))
            .await
            .unwrap()
            .into_inner();
        assert!(is_allow(&r));
    }
    h.stop().await;
}

/// A set large enough that one `Simulate` of it takes a while.
fn large_set(n: usize) -> String {
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!(
            "kind: Policy\nid: p{i}\neffect: allow\nactions: [ReadKey]\nresources: [\"kylo:kylo:vault:keys:t{i}-*\"]\n\
             conditions:\n  - path: resource.classification\n    op: equals\n    values: [c{i}]\n---\n\
             kind: PolicyAttachment\nid: a{i}\npolicy: p{i}\nprincipal_selector: {{groups: [g{}]}}\n---\n",
            i % 50
        ));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_has_caps_a_concurrency_limit_and_a_deadline() {
    let files = policies();
    let h = Harness::start_with(&[(files[0].0, files[0].1.as_str())], |c| {
        c.limits.simulate_concurrency = 1;
        c.limits.simulate_max_files = 2;
    })
    .await;
    let sim = |files: Vec<(&str, String)>| SimulateRequest {
        files: files.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        requests: vec![],
    };
    let three = sim(vec![
        ("a.yaml", String::new()),
        ("b.yaml", String::new()),
        ("c.yaml", String::new()),
    ]);
    let e = h.client.clone().simulate(three).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(e.message().starts_with("files:"), "{}", e.message());

    // Concurrent simulations past the limit are refused at once; the others complete.
    let big = large_set(3000);
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let mut client = h.client.clone();
            let request = sim(vec![("p.yaml", big.clone())]);
            tokio::spawn(async move { client.simulate(request).await })
        })
        .collect();
    let mut refused = 0;
    let mut completed = 0;
    for c in calls {
        match c.await.unwrap() {
            Ok(r) => {
                assert!(r.into_inner().valid);
                completed += 1;
            }
            Err(e) => {
                assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
                refused += 1;
            }
        }
    }
    assert!(
        completed >= 1 && refused >= 1,
        "completed {completed}, refused {refused}"
    );

    // A client deadline shorter than the call: DEADLINE_EXCEEDED, from the server. (curl sends the header and
    // waits for the server's answer; a gRPC client would give up on its own first.)
    if external("curl", &["curl", "--version"]) {
        let dir = tempfile::tempdir().unwrap();
        let body = prost::Message::encode_to_vec(&sim(vec![("p.yaml", big)]));
        let mut frame = vec![0u8];
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
        frame.extend_from_slice(&body);
        let file = dir.path().join("frame");
        std::fs::write(&file, frame).unwrap();
        let (ok, stdout, stderr) = run_bounded(tokio::process::Command::new("curl").args([
            "-s",
            "--http2-prior-knowledge",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
            "-H",
            "grpc-timeout: 5m",
            "--data-binary",
            &format!("@{}", file.display()),
            &format!(
                "http://{}/arbiter.v1.Authorizer/Simulate",
                h.server.tcp_addr().unwrap()
            ),
        ]))
        .await;
        assert!(ok.success(), "{stderr}");
        assert!(
            stdout.to_ascii_lowercase().contains("grpc-status: 4"),
            "{stdout}"
        );
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_calls_move_to_the_admin_listener() {
    let files = policies();
    let h = Harness::start_with(&[(files[0].0, files[0].1.as_str())], |c| {
        c.admin_listen = Some("127.0.0.1:0".parse().unwrap());
        c.http_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let e = h
        .client
        .clone()
        .get_status(proto::GetStatusRequest {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = h
        .client
        .clone()
        .simulate(SimulateRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(
        h.allowed("ReadKey").await,
        "decisions stay on the main listener"
    );
    let mut admin = arbiter::server::proto::authorizer_client::AuthorizerClient::connect(format!(
        "http://{}",
        h.server.admin_addr().unwrap()
    ))
    .await
    .unwrap();
    assert!(!admin
        .get_status(proto::GetStatusRequest {})
        .await
        .unwrap()
        .into_inner()
        .revision
        .is_empty());
    if external("curl", &["curl", "--version"]) {
        let (status, body, _) = crate::doors_http::curl(
            "GET",
            &format!("http://{}/v1/status", h.server.http_addr().unwrap()),
            &[],
            None,
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("permission_denied"))
        );
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_grpc_content_types_are_served() {
    if !external("curl", &["curl", "--version"]) {
        return;
    }
    let files = policies();
    let h = Harness::start_with(&[(files[0].0, files[0].1.as_str())], |_| {}).await;
    let url = format!(
        "http://{}/arbiter.v1.Authorizer/GetStatus",
        h.server.tcp_addr().unwrap()
    );
    // The answer is decided on the headers alone. The request has no body, so it ends with its headers: a body
    // still on its way when the answer and the stream's reset come back made curl report no status at all
    // (exit 92) now and then.
    let (code, stdout, stderr) = run_bounded(tokio::process::Command::new("curl").args([
        "-s",
        "--http2-prior-knowledge",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        "content-type: text/plain",
        "--data-binary",
        "",
        &url,
    ]))
    .await;
    assert_eq!(stdout, "415", "curl exited {code}: {stderr}");
    h.stop().await;
}

/// `VmRSS` or `VmHWM` of a process, in KiB.
fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_messages_on_many_streams_stay_within_the_byte_budget() {
    const STREAMS: usize = 40;
    const MESSAGE: usize = 4 * 1024 * 1024;
    const BUDGET: usize = 16 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "p.yaml", &allow("p1", "ReadKey"));
    let budget = BUDGET.to_string();
    // Stalled streams end at the deadline, so every stream answers and the test has an end.
    let (mut server, port) = spawn_serve(
        dir.path(),
        &[
            "--request-bytes-budget",
            &budget,
            "--request-timeout",
            "3s",
            "--log",
            "error",
        ],
    )
    .await;
    let pid = server.id().unwrap();
    let before = memory_kib(pid, "VmRSS:");

    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut responses = Vec::new();
    for _ in 0..STREAMS {
        let mut client = client.clone().ready().await.unwrap();
        let request = http::Request::post(format!(
            "http://127.0.0.1:{port}/arbiter.v1.Authorizer/Authorize"
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
        let (response, mut body) = client.send_request(request, false).unwrap();
        // A frame announcing a 4 MiB message, then all of it but the last KiB; never the end.
        let mut data = vec![0u8];
        data.extend_from_slice(&(MESSAGE as u32).to_be_bytes());
        data.extend(std::iter::repeat_n(0u8, MESSAGE - 1024));
        body.send_data(bytes::Bytes::from(data), false).unwrap();
        responses.push(tokio::spawn(async move {
            let _body = body;
            let response = response.await.ok()?;
            response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        }));
    }
    let mut statuses = Vec::new();
    for r in responses {
        statuses.push(
            tokio::time::timeout(WAIT, r)
                .await
                .expect("every stream is answered")
                .unwrap(),
        );
    }
    let peak = memory_kib(pid, "VmHWM:");
    let exhausted = statuses
        .iter()
        .filter(|s| s.as_deref() == Some("8"))
        .count();
    assert!(
        exhausted > 0,
        "streams past the budget are RESOURCE_EXHAUSTED: {statuses:?}"
    );
    // 160 MiB offered; the server's peak stays near the 16 MiB budget (plus buffers in flight and slack).
    let grown_mib = peak.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 64,
        "the server grew by {grown_mib} MiB for a {} MiB budget",
        BUDGET >> 20
    );
    // The bytes were given back: a normal call passes.
    let mut c = arbiter::server::proto::authorizer_client::AuthorizerClient::connect(format!(
        "http://127.0.0.1:{port}"
    ))
    .await
    .unwrap();
    assert!(is_allow(
        &c.authorize(request("alice", "ReadKey"))
            .await
            .unwrap()
            .into_inner()
    ));
    let _ = server.start_kill();
    let _ = server.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_leaves_only_whole_lines_in_the_decision_log() {
    let disk = tempfile::tempdir().unwrap();
    // A 64 KiB tmpfs: the decision log fills it within a few hundred calls.
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(disk.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        // Mounting needs root with CAP_SYS_ADMIN; `decision_log`'s unit tests cover the cut-back on any machine.
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(disk.path().to_path_buf());
    let log = disk.path().join("decisions.jsonl");
    let log2 = log.clone();
    let files = policies();
    let h = Harness::start_with(&[(files[0].0, files[0].1.as_str())], move |c| {
        c.decision_log = Some(arbiter::decision_log::Target::File(log2));
    })
    .await;
    let whole_lines = |text: &str| {
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "a partial line is left: {:?}",
            &text[text.len().saturating_sub(80)..]
        );
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line).expect("every line is whole JSON");
        }
        text.lines().count()
    };
    // Well past the disk's size, in small batches so that writes fail part-way through lines.
    for _ in 0..40 {
        let calls: Vec<_> = (0..25)
            .map(|_| {
                let mut c = h.client.clone();
                tokio::spawn(async move { c.authorize(request("alice", "ReadKey")).await.unwrap() })
            })
            .collect();
        for c in calls {
            c.await.unwrap();
        }
    }
    h.eventually("the lost lines are counted", || async {
        std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) > 32 * 1024
    })
    .await;
    // The writer thread may still be in the middle of a line (or of cutting a failed one back) when the calls
    // have returned: wait until it has caught up. A partial line that stays fails here, at the bound.
    let settled = || std::fs::read_to_string(&log).is_ok_and(|t| t.is_empty() || t.ends_with('\n'));
    h.eventually("the writer leaves whole lines", || async { settled() })
        .await;
    let written = whole_lines(&std::fs::read_to_string(&log).unwrap());
    assert!(
        written > 0 && written < 1000,
        "{written} lines written of 1000"
    );
    // Space again: the next lines start clean.
    std::fs::write(&log, "").unwrap();
    for _ in 0..10 {
        h.authorize("alice", "ReadKey").await;
    }
    h.eventually("new lines are written after the disk has room", || async {
        std::fs::read_to_string(&log)
            .map(|t| t.lines().count() >= 10)
            .unwrap_or(false)
            && settled()
    })
    .await;
    whole_lines(&std::fs::read_to_string(&log).unwrap());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_warnings_are_summarised_in_the_log() {
    // 20 policies no attachment uses: 20 warnings, which `arbiter check` lists in full.
    let dir = tempfile::tempdir().unwrap();
    let mut text = allow("used", "ReadKey");
    for i in 0..20 {
        text.push_str(&format!(
            "---\nkind: Policy\nid: unused-{i}\neffect: allow\nactions: [ReadKey]\nresources: [\"*\"]\n"
        ));
    }
    write(dir.path(), "p.yaml", &text);
    let (server, port) = spawn_serve(dir.path(), &["--log", "warn"]).await;
    eventually("the first load is published", || async {
        let Ok(mut c) = arbiter::server::proto::authorizer_client::AuthorizerClient::connect(
            format!("http://127.0.0.1:{port}"),
        )
        .await
        else {
            return false;
        };
        c.get_status(proto::GetStatusRequest {})
            .await
            .is_ok_and(|s| !s.into_inner().revision.is_empty())
    })
    .await;
    let _ = std::process::Command::new("kill")
        .arg(server.id().unwrap().to_string())
        .status();
    let out = tokio::time::timeout(WAIT, server.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let listed = stderr
        .lines()
        .filter(|l| l.contains("is not used by any attachment") || l.contains("W0001"))
        .count();
    assert!(listed <= 5, "{listed} warnings logged in full:\n{stderr}");
    assert!(stderr.contains("and 15 more warnings"), "{stderr}");
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .arg("check")
        .arg(dir.path())
        .output()
        .unwrap();
    let all = String::from_utf8_lossy(&check.stdout).to_string()
        + &String::from_utf8_lossy(&check.stderr);
    assert_eq!(all.matches("W0001").count(), 20, "{all}");
}

/// Polls `check` until it holds, for at most [`WAIT`]; whether it did.
async fn poll_until<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while started.elapsed() < WAIT {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}
