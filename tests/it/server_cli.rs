//! `arbiter serve` as a process: the built binary, real signals (SIGHUP, SIGTERM), `ARBITER_*` environment
//! variables, the shipped `policies/` as the default directory, and exit codes.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use arbiter::server::proto::authorizer_client::AuthorizerClient;
use arbiter::server::proto::{AuthorizeRequest, AuthorizeResponse, GetStatusRequest};
use common::{is_allow, request, WAIT};

const BIN: &str = env!("CARGO_BIN_EXE_arbiter");

struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn spawn(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env_remove("RUST_LOG")
            .spawn()
            .expect("spawn arbiter");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads stderr until a line contains `needle`; returns that line.
    fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no `{needle}` on stderr; saw:\n{}", self.seen.join("\n")),
            }
        }
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name}");
    }

    fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("arbiter did not exit; stderr:\n{}", self.seen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn field(line: &str, key: &str) -> String {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in {line}"))
        .trim_matches('"')
        .to_string()
}

async fn metric(addr: &str, series: &str) -> Option<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).await.ok()?;
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn invalid_first_load_prints_every_error_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    common::write(
        dir.path(),
        "a.yaml",
        "kind: Policy\nid: a\neffect: maybe\nactions: [x]\nresources: [\"*\"]\n",
    );
    common::write(dir.path(), "b.yaml", "kind: Nonsense\n");
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--policies"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("a.yaml") && stderr.contains("b.yaml"),
        "{stderr}"
    );
    assert!(!stderr.contains("serving revision="), "{stderr}");
    assert_eq!(
        stderr.matches("unknown kind `Nonsense`").count(),
        1,
        "printed once: {stderr}"
    );
}

#[test]
fn missing_directory_exits_2() {
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--policies",
            "/nonexistent/arbiter",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_documents_every_environment_variable() {
    let out = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "ARBITER_POLICIES",
        "ARBITER_LISTEN",
        "ARBITER_UDS",
        "ARBITER_METRICS_LISTEN",
        "ARBITER_DECISION_LOG",
        "ARBITER_SUPERUSER",
        "ARBITER_DEBOUNCE_MS",
        "ARBITER_GRACE_PERIOD_SECS",
        "ARBITER_MAX_MESSAGE_BYTES",
        "ARBITER_ALLOW_LOCKOUT",
        "ARBITER_LOCKOUT_BUDGET",
    ] {
        assert!(help.contains(var), "{var} missing from:\n{help}");
    }
}

/// A SIGHUP that arrives while the first load is still running (after the listeners are announced) is a reload
/// once the set is served, never the signal's default action, which would end the process.
#[test]
fn a_sighup_during_the_first_load_is_a_reload_not_an_exit() {
    let dir = tempfile::tempdir().unwrap();
    // Enough policies that the first load outlasts the signal's way from this test to the server by far.
    let yaml: String = (0..3_000)
        .map(|i| {
            format!(
                "kind: Policy\nid: p{i}\neffect: allow\nactions: [ReadKey]\n\
                 resources: [\"kylo:kylo:vault:keys:t{i}-*\"]\n---\n"
            )
        })
        .collect();
    std::fs::write(dir.path().join("many.yaml"), yaml).unwrap();
    let mut p = Proc::spawn(
        Command::new(BIN)
            .args(["serve", "--policies"])
            .arg(dir.path())
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"]),
    );
    p.wait_for_line("gRPC listening on TCP");
    p.signal("HUP");
    let first = p.wait_for_line("policy set loaded");
    assert_eq!(field(&first, "policies"), "3000");
    p.wait_for_line("serving");
    p.wait_for_line("SIGHUP: reloading");
    p.wait_for_line("policy set loaded");
    assert!(
        p.child.try_wait().unwrap().is_none(),
        "the server is still running"
    );
    p.signal("TERM");
    assert_eq!(p.wait_exit(), 0);
}

/// The shipped `policies/` is the default; flags come from the environment; SIGHUP reloads; SIGTERM drains a
/// call in flight and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_env_and_default_policies() {
    let mut p = Proc::spawn(
        Command::new(BIN)
            .arg("serve")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("ARBITER_LISTEN", "127.0.0.1:0")
            .env("ARBITER_METRICS_LISTEN", "127.0.0.1:0")
            .env("ARBITER_SUPERUSER", "root"),
    );
    let addr = field(&p.wait_for_line("gRPC listening on TCP"), "addr");
    let metrics = field(&p.wait_for_line("metrics at /metrics"), "addr");
    let loaded = p.wait_for_line("policy set loaded");
    assert_eq!(field(&loaded, "policies"), "5", "the shipped default pack");
    p.wait_for_line("serving");

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = AuthorizerClient::new(channel.clone());
    let r = client
        .authorize(request("root", "DeleteKey"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.reason, "superuser", "ARBITER_SUPERUSER applies");
    let status = client
        .get_status(GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.reloads_ok, 1);

    // SIGHUP forces a reload.
    p.signal("HUP");
    common::eventually("the SIGHUP reload", || {
        let mut client = client.clone();
        async move {
            client
                .get_status(GetStatusRequest {})
                .await
                .unwrap()
                .into_inner()
                .reloads_ok
                == 2
        }
    })
    .await;

    // A call in flight: its message is held back until after SIGTERM.
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
    common::eventually("the call to be in flight", || {
        let metrics = metrics.clone();
        async move { metric(&metrics, "arbiter_inflight_calls").await == Some(1.0) }
    })
    .await;

    p.signal("TERM");
    p.wait_for_line("shutting down");
    let mut owner = request("bob", "DeleteKey");
    owner.resource.as_mut().unwrap().owner = "bob".into();
    tx.send(owner).await.unwrap();
    drop(tx);
    let r = tokio::time::timeout(WAIT, call)
        .await
        .expect("the in-flight call completes")
        .unwrap()
        .expect("and succeeds")
        .into_inner();
    assert!(is_allow(&r), "{r:?}");
    assert_eq!(p.wait_exit(), 0, "stderr:\n{}", p.seen.join("\n"));
}

/// With only `--uds`, there is no TCP listener; the socket is 0600; SIGINT exits 0 and removes the socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uds_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    common::write(dir.path(), "p/p.yaml", &common::allow("p1", "ReadKey"));
    let sock = dir.path().join("arbiter.sock");
    let mut p = Proc::spawn(
        Command::new(BIN)
            .args(["serve", "--policies"])
            .arg(dir.path().join("p"))
            .arg("--uds")
            .arg(&sock),
    );
    p.wait_for_line("serving");
    assert!(
        !p.seen.iter().any(|l| l.contains("listening on TCP")),
        "{:?}",
        p.seen
    );
    let mode = std::fs::symlink_metadata(&sock)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    p.signal("INT");
    assert_eq!(p.wait_exit(), 0);
    assert!(!sock.exists());
}

/// A first load that fails its lockout guards exits 2 with the finding; `--allow-lockout` serves it.
#[test]
fn first_load_lockout_exits_2_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in common::default_pack() {
        common::write(dir.path(), &name, &text);
    }
    common::write(dir.path(), "lockout.yaml", common::LOCKOUT);
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--policies"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("lockout:") && stderr.contains("guards.yaml"),
        "{stderr}"
    );

    let mut p = Proc::spawn(
        Command::new(BIN)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--allow-lockout",
                "--policies",
            ])
            .arg(dir.path()),
    );
    p.wait_for_line("published despite a lockout finding");
    p.wait_for_line("serving");
    p.signal("TERM");
    assert_eq!(p.wait_exit(), 0);

    // The same from the environment, written the way shells and container specs usually write a switch.
    let mut p = Proc::spawn(
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--policies"])
            .arg(dir.path())
            .env("ARBITER_ALLOW_LOCKOUT", "1"),
    );
    p.wait_for_line("published despite a lockout finding");
    p.wait_for_line("serving");
    p.signal("TERM");
    assert_eq!(p.wait_exit(), 0);
}
