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
