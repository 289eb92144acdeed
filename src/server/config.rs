//! The sidecar's configuration: defaults, `ServerConfig` (what `arbiter serve` flags and `ARBITER_*` variables
//! set), and the errors start-up can end with.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::*;
use crate::decision_log::{self};
use crate::diag::Diagnostics;

/// The full gRPC name of the service.
pub const SERVICE_NAME: &str = "arbiter.v1.Authorizer";
/// Default TCP address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// Largest request message accepted; larger ones get RESOURCE_EXHAUSTED.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Default quiet time before a reload.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(100);
/// Default time allowed for in-flight calls to finish on shutdown.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(10);
/// Default search budget of the lockout check.
pub const DEFAULT_LOCKOUT_BUDGET: Duration = Duration::from_secs(10);
/// The mode of the Unix socket.
pub const UDS_MODE: u32 = 0o600;
/// Default decision-log queue length.
pub const DEFAULT_DECISION_LOG_CAPACITY: usize = 16 * 1024;

/// The transport controls (SPEC section 2, and the README's limits table). Every one has a flag.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections across every listener; more are closed at once.
    pub max_connections: usize,
    /// A new connection must send its first bytes (HTTP/2 preface, TLS hello, request line) within this.
    pub handshake_timeout: Duration,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// Decision calls in flight past which new ones are answered RESOURCE_EXHAUSTED at once.
    pub max_inflight: usize,
    /// The longest a call may take; a shorter `grpc-timeout` is honoured.
    pub request_timeout: Duration,
    /// Request bytes buffered across every stream and connection.
    pub request_bytes_budget: usize,
    /// HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per connection.
    pub max_concurrent_streams: u32,
    /// HTTP/2 initial stream and connection flow-control windows.
    pub stream_window: u32,
    pub connection_window: u32,
    /// HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE.
    pub max_header_list_bytes: u32,
    /// HTTP/2 keepalive: a PING after this much quiet, and the connection closed if it is not answered within
    /// `keepalive_timeout`.
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    /// Connections older than this are asked to go away (GOAWAY), then closed after the grace period.
    pub max_connection_age: Option<Duration>,
    pub max_connection_age_grace: Duration,
    /// `Simulate` calls running at once; more are answered RESOURCE_EXHAUSTED.
    pub simulate_concurrency: usize,
    /// Files and bytes a `Simulate` may propose.
    pub simulate_max_files: usize,
    pub simulate_max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            max_inflight: 4096,
            request_timeout: Duration::from_secs(30),
            request_bytes_budget: 64 * 1024 * 1024,
            max_concurrent_streams: 256,
            stream_window: 1024 * 1024,
            connection_window: 2 * 1024 * 1024,
            max_header_list_bytes: 16 * 1024,
            keepalive_interval: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(20),
            max_connection_age: None,
            max_connection_age_grace: Duration::from_secs(30),
            simulate_concurrency: 2,
            simulate_max_files: 10_000,
            simulate_max_bytes: 32 * 1024 * 1024,
        }
    }
}

/// How to run a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The policy directory.
    pub policies: PathBuf,
    /// TCP address; port 0 picks a free port (see [`RunningServer::tcp_addr`]).
    pub listen: Option<SocketAddr>,
    /// Unix socket path, created with mode 0600.
    pub uds: Option<PathBuf>,
    /// Prometheus `/metrics` address.
    pub metrics_listen: Option<SocketAddr>,
    /// HTTP/JSON address (the HTTP door and `/v1/forward-auth`).
    pub http_listen: Option<SocketAddr>,
    /// A separate gRPC listener for the admin calls (`Simulate`, `GetStatus`); with one (or `admin_uds`), the
    /// other listeners refuse them.
    pub admin_listen: Option<SocketAddr>,
    pub admin_uds: Option<PathBuf>,
    /// Transport controls.
    pub limits: Limits,
    /// Token verification (`--jwks`, `--jwt-key`, `--jwt-*`); `None` verifies no token.
    pub tokens: Option<super::token::TokenSettings>,
    /// TLS (and, with a client CA, mutual TLS) on the TCP listener.
    pub tls: Option<tls::TlsFiles>,
    pub decision_log: Option<decision_log::Target>,
    pub decision_log_capacity: usize,
    /// The principal id that is always allowed.
    pub superuser: String,
    pub debounce: Duration,
    pub grace_period: Duration,
    pub max_message_bytes: usize,
    /// Watch the directory for changes (otherwise only forced reloads).
    pub watch: bool,
    /// Check every load with the lockout simulator (`false` skips the check entirely).
    pub lockout_check: bool,
    /// Publish a set with lockout findings anyway (`--allow-lockout`), logging them.
    pub allow_lockout: bool,
    /// Search budget of the lockout check (per load) and of `Simulate`.
    pub lockout_budget: Duration,
    /// Reload on SIGHUP. The handler is process-wide: leave it off when embedding several servers.
    pub sighup: bool,
    /// Test hook: the first load waits until this is notified, so NOT_SERVING can be observed.
    #[doc(hidden)]
    pub first_load_gate: Option<Arc<Notify>>,
}

impl ServerConfig {
    /// Defaults for everything but the policy directory; TCP on [`DEFAULT_LISTEN`].
    pub fn new(policies: impl Into<PathBuf>) -> Self {
        ServerConfig {
            policies: policies.into(),
            listen: DEFAULT_LISTEN.parse().ok(),
            uds: None,
            metrics_listen: None,
            http_listen: None,
            admin_listen: None,
            admin_uds: None,
            limits: Limits::default(),
            tokens: None,
            tls: None,
            decision_log: None,
            decision_log_capacity: DEFAULT_DECISION_LOG_CAPACITY,
            superuser: crate::DEFAULT_SUPERUSER.to_string(),
            debounce: DEFAULT_DEBOUNCE,
            grace_period: DEFAULT_GRACE_PERIOD,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            watch: true,
            lockout_check: true,
            allow_lockout: false,
            lockout_budget: DEFAULT_LOCKOUT_BUDGET,
            sighup: false,
            first_load_gate: None,
        }
    }
}

/// Why a server could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The first load failed: nothing was ever served.
    #[error("the policy set is invalid ({})", .0.summary())]
    InvalidPolicies(Diagnostics),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

pub(crate) fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> ServeError {
    let what = what.into();
    move |source| ServeError::Io { what, source }
}
