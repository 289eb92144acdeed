//! Shared helpers for the server integration tests: start the real server in-process on an ephemeral port with a
//! temporary policy directory, talk to it with the generated tonic client, and poll with bounded waits.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arbiter::server::proto::authorizer_client::AuthorizerClient;
use arbiter::server::proto::{self, AuthorizeRequest, AuthorizeResponse, Decision};
use arbiter::server::{RunningServer, ServerConfig};
use tonic::transport::Channel;

pub mod reference;
pub mod tokens;

/// Generous bound for "eventually" checks on a loaded 2-core machine.
pub const WAIT: Duration = Duration::from_secs(30);

/// A policy allowing `action` on every resource for every principal, with its attachment.
pub fn allow(id: &str, action: &str) -> String {
    format!(
        "kind: Policy\nid: {id}\neffect: allow\nactions: [{action}]\nresources: [\"*\"]\n---\n\
         kind: PolicyAttachment\nid: {id}-all\npolicy: {id}\nprincipal_selector: {{}}\n"
    )
}

/// A policy denying `action` on every resource for every principal, with its attachment.
pub fn deny(id: &str, action: &str) -> String {
    allow(id, action).replace("effect: allow", "effect: deny")
}

pub fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

/// The revision the server reports for the directory as it is now on disk.
pub fn disk_revision(dir: &Path) -> String {
    arbiter::load::load_dir(dir).unwrap().revision()
}

pub fn request(principal: &str, action: &str) -> AuthorizeRequest {
    AuthorizeRequest {
        principal: Some(proto::Principal {
            id: principal.into(),
            groups: vec![],
            attributes: None,
            token: String::new(),
        }),
        action: action.into(),
        resource: Some(proto::Resource {
            uri: "kylo:kylo:vault:keys:k1".into(),
            owner: String::new(),
            attributes: None,
        }),
        environment: None,
        explain: false,
    }
}

/// `r` with a resource attribute `pad` of `bytes` characters, to make a message of a given size.
pub fn padded(mut r: AuthorizeRequest, bytes: usize) -> AuthorizeRequest {
    r.resource.as_mut().unwrap().attributes = Some(prost_types::Struct {
        fields: [(
            "pad".to_string(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::StringValue("x".repeat(bytes))),
            },
        )]
        .into(),
    });
    r
}

pub fn is_allow(r: &AuthorizeResponse) -> bool {
    r.decision == Decision::Allow as i32
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub server: RunningServer,
    pub client: AuthorizerClient<Channel>,
}

impl Harness {
    /// Writes `files` into a fresh directory and starts a server on 127.0.0.1:0 with a short debounce.
    pub async fn start(files: &[(&str, &str)]) -> Harness {
        Self::start_with(files, |_| {}).await
    }

    pub async fn start_with(
        files: &[(&str, &str)],
        configure: impl FnOnce(&mut ServerConfig),
    ) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        for (rel, text) in files {
            write(dir.path(), rel, text);
        }
        Self::start_in(dir, configure).await
    }

    pub async fn start_in(
        dir: tempfile::TempDir,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> Harness {
        let mut config = ServerConfig::new(dir.path());
        config.listen = Some("127.0.0.1:0".parse().unwrap());
        config.debounce = Duration::from_millis(50);
        config.grace_period = Duration::from_secs(5);
        configure(&mut config);
        let server = arbiter::server::start(config, std::future::pending())
            .await
            .expect("server starts");
        server.ready().await.expect("first load succeeds");
        let client = connect(&server).await;
        Harness {
            dir,
            server,
            client,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        write(self.dir.path(), rel, text)
    }

    pub async fn authorize(&self, principal: &str, action: &str) -> AuthorizeResponse {
        self.client
            .clone()
            .authorize(request(principal, action))
            .await
            .expect("authorize succeeds")
            .into_inner()
    }

    pub async fn allowed(&self, action: &str) -> bool {
        is_allow(&self.authorize("alice", action).await)
    }

    pub async fn status(&self) -> proto::Status {
        self.client
            .clone()
            .get_status(proto::GetStatusRequest {})
            .await
            .expect("status")
            .into_inner()
    }

    /// Polls `check` until it holds; panics after [`WAIT`]. Returns how long it took.
    pub async fn eventually<F, Fut>(&self, what: &str, mut check: F) -> Duration
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        eventually(what, &mut check).await
    }

    pub async fn stop(self) {
        self.server.shutdown();
        tokio::time::timeout(WAIT, self.server.wait())
            .await
            .expect("server stops in time")
            .expect("server stops cleanly");
    }
}

pub async fn eventually<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        if started.elapsed() > WAIT {
            panic!("timed out after {WAIT:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub async fn connect(server: &RunningServer) -> AuthorizerClient<Channel> {
    let addr = server.tcp_addr().expect("TCP address");
    AuthorizerClient::connect(format!("http://{addr}"))
        .await
        .expect("connect")
}

/// The shipped default pack (`policies/*.yaml`, not the test suites), as (name, text).
pub fn default_pack() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&root)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml") && p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// A deny that locks the `admin` group out of `DeletePolicy` (the default pack's guard forbids it).
pub const LOCKOUT: &str = "kind: Policy\nid: no-policy-deletes\neffect: deny\nactions: [DeletePolicy]\n\
resources: [\"kylo:kylo:admin:policies:*\"]\n---\nkind: PolicyAttachment\nid: no-policy-deletes-admins\n\
policy: no-policy-deletes\nprincipal_selector: {groups: [admin]}\n";

/// Whether an outside program a test drives (Python with grpcio, curl, nginx, schemathesis) is here. With
/// `ARBITER_REQUIRE_EXTERNAL` set (as `.ci/run` does, after installing them), a missing one fails the test;
/// otherwise the test says so on standard error and passes without running.
pub fn external(what: &str, probe: &[&str]) -> bool {
    let found = std::process::Command::new(probe[0])
        .args(&probe[1..])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var_os("ARBITER_REQUIRE_EXTERNAL").is_some() {
            panic!("{what} is needed by this test (probe: {probe:?}); `.ci/run` installs it");
        }
        eprintln!("SKIPPED: {what} is not installed (probe: {probe:?}); `.ci/run` installs it");
    }
    found
}

/// Python with grpcio and grpcio-tools.
pub fn python_grpc() -> bool {
    external(
        "Python grpcio and grpcio-tools",
        &["python3", "-c", "import grpc, grpc_tools"],
    )
}

/// Runs a command with a bounded wait; returns its status, standard output and standard error.
pub async fn run_bounded(
    cmd: &mut tokio::process::Command,
) -> (std::process::ExitStatus, String, String) {
    cmd.kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("the command finishes within 120 s")
        .expect("the command runs");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A tonic channel over a Unix socket.
pub async fn connect_uds(path: &Path) -> Channel {
    let path = path.to_path_buf();
    tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .unwrap()
}

/// The `arbiter serve` binary on `127.0.0.1:<free port>` with `args` after `--policies DIR --listen ADDR`, waited
/// for until it accepts connections; killed when dropped. Returns the child and its port.
/// A TCP port on 127.0.0.1 that is free now, for a child process to listen on. It is taken below the kernel's
/// ephemeral range (32768 and up on Linux), so that no other test's client socket or `bind(:0)` can take it
/// between this check and the child's bind; ports are handed out once per test process.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Each test process starts at its own offset, so that parallel test processes rarely meet.
    let base = 20_000 + (std::process::id() % 600) * 20;
    loop {
        let port = (base + NEXT.fetch_add(1, Ordering::Relaxed)) % 12_000 + 20_000;
        if std::net::TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return port as u16;
        }
    }
}

pub async fn spawn_serve(policies: &Path, args: &[&str]) -> (tokio::process::Child, u16) {
    let port = free_port();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .args(["serve", "--policies"])
        .arg(policies)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(args)
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    eventually("the server listens", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    (child, port)
}

/// Runs the `arbiter` binary from the crate root with `args`, feeding `stdin` when given; the
/// `ARBITER_POLICIES` and `ARBITER_SUPERUSER` of the environment are removed so that defaults apply.
pub fn arbiter(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("ARBITER_POLICIES")
        .env_remove("ARBITER_SUPERUSER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run arbiter");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

/// Output bytes as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
