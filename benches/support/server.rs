//! The real `arbiter serve` process for the benchmarks that measure it from outside (`loadgen`, `scale`):
//! writing a policy directory, starting the binary on an ephemeral port, waiting for `SERVING`, and reading its
//! resident memory. `ARBITER_BIN` names another build to start instead of this one.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use arbiter::server::proto::{authorizer_client::AuthorizerClient, GetStatusRequest};
use tonic::transport::Endpoint;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

pub fn write_dir(dir: &Path, files: &[(PathBuf, String)]) {
    std::fs::create_dir_all(dir).unwrap();
    for (rel, text) in files {
        std::fs::write(dir.join(rel), text).unwrap();
    }
}

/// `(VmRSS, VmHWM)` of a process, in KiB.
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A running server, killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary to start: `ARBITER_BIN` when set (to measure another build beside this one), else this build's.
pub fn server_binary() -> PathBuf {
    std::env::var_os("ARBITER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_arbiter")))
}

pub fn start_server(dir: &Path) -> Server {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(server_binary())
        .args(["serve", "--policies"])
        .arg(dir)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--log",
            "warn",
            "--debounce-ms",
            "100",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("start arbiter serve");
    Server {
        child,
        addr: format!("http://127.0.0.1:{port}"),
    }
}

/// The revision the server is serving (`GetStatus`, on a fresh connection), or `None` when it does not answer.
pub async fn revision(server: &Server) -> Option<String> {
    let channel = Endpoint::from_shared(server.addr.clone())
        .unwrap()
        .connect()
        .await
        .ok()?;
    let status = AuthorizerClient::new(channel)
        .get_status(GetStatusRequest {})
        .await
        .ok()?;
    Some(status.into_inner().revision)
}

/// Polls `GetStatus` until the server serves a revision other than `before` (a reload published), within `bound`.
pub async fn wait_revision_change(server: &Server, before: &str, bound: Duration) -> String {
    let started = Instant::now();
    loop {
        if let Some(now) = revision(server).await.filter(|r| r != before) {
            return now;
        }
        assert!(
            started.elapsed() < bound,
            "no reload published after the edit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `grpc.health.v1.Health/Check` with a fresh connection per attempt (a single channel would wait out
/// gRPC's reconnect backoff) until the server reports `SERVING`; returns the time from the first attempt.
pub async fn wait_serving(server: &Server, bound: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if let Ok(channel) = Endpoint::from_shared(server.addr.clone())
            .unwrap()
            .connect()
            .await
        {
            let mut health = HealthClient::new(channel);
            if let Ok(r) = health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
            {
                if r.into_inner().status == 1 {
                    return started.elapsed();
                }
            }
        }
        assert!(started.elapsed() < bound, "server did not become SERVING");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
