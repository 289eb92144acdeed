//! `arbiter serve`: the gRPC sidecar. Flags (each also from an `ARBITER_*` environment variable), logging set-up,
//! the runtime, signals and exit codes; the server itself lives in `crate::server`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{print_diagnostics, EXIT_INVALID, EXIT_OK};
use crate::decision_log;
use crate::server::{self, Limits, ServeError, ServerConfig};

/// Exit code when the server cannot start or fails while serving (an address in use, an unwritable log).
pub const EXIT_FAILURE: i32 = 1;

#[derive(Debug, Args)]
#[command(after_help = "\
Listening: with neither --listen nor --uds, gRPC is served on 127.0.0.1:50051. With only --uds, only the Unix \
socket is served; give --listen as well for both.

Signals: SIGHUP reloads the policy directory; SIGTERM or SIGINT stops accepting, drains in-flight calls for up to \
--grace-period-secs and exits 0 (a second signal exits at once).

Lockouts: every load is checked with the lockout simulator (the guards of the set being served and of the new \
set, and their erosion). A set with findings is refused like an invalid one, unless --allow-lockout is given.

Exit codes: 0 stopped cleanly; 1 could not start or serve; 2 invalid usage, or the policy set is invalid or \
fails its lockout guards at start-up (every error is printed and nothing is served).")]
pub struct ServeArgs {
    /// The policy directory, watched and hot-reloaded.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "policies",
        env = "ARBITER_POLICIES"
    )]
    pub policies: PathBuf,
    /// gRPC TCP address [default: 127.0.0.1:50051, unless only --uds is given].
    #[arg(long, value_name = "ADDR", env = "ARBITER_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Also (or only) serve gRPC on this Unix socket, created with mode 0600.
    #[arg(long, value_name = "PATH", env = "ARBITER_UDS")]
    pub uds: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR", env = "ARBITER_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Serve the HTTP/JSON API and /v1/forward-auth at http://ADDR (off by default).
    #[arg(long, value_name = "ADDR", env = "ARBITER_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// Verify `Principal.token` and `Authorization: Bearer` tokens with the keys of this JWKS file
    /// (repeatable; re-read when it changes).
    #[arg(long, value_name = "FILE", env = "ARBITER_JWKS", value_delimiter = ',')]
    pub jwks: Vec<PathBuf>,
    /// A PEM public key (RSA, EC P-256/P-384, Ed25519) for tokens; its file name without the extension is
    /// its `kid` (repeatable; re-read when it changes).
    #[arg(
        long,
        value_name = "PEM",
        env = "ARBITER_JWT_KEY",
        value_delimiter = ','
    )]
    pub jwt_key: Vec<PathBuf>,
    /// Accept only tokens with this `iss` (repeatable).
    #[arg(
        long,
        value_name = "ISS",
        env = "ARBITER_JWT_ISSUER",
        value_delimiter = ','
    )]
    pub jwt_issuer: Vec<String>,
    /// Accept only tokens with this `aud` (repeatable).
    #[arg(
        long,
        value_name = "AUD",
        env = "ARBITER_JWT_AUDIENCE",
        value_delimiter = ','
    )]
    pub jwt_audience: Vec<String>,
    /// Clock skew allowed on a token's `exp` and `nbf`, e.g. `30s`.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = super::parse_duration, env = "ARBITER_JWT_LEEWAY")]
    pub jwt_leeway: Duration,
    /// The claim that becomes principal.id (a dotted path).
    #[arg(
        long,
        value_name = "CLAIM",
        default_value = "sub",
        env = "ARBITER_JWT_ID_CLAIM"
    )]
    pub jwt_id_claim: String,
    /// The claim that becomes principal.groups (a dotted path, such as CipherTrust's `cust.groups`).
    #[arg(
        long,
        value_name = "CLAIM",
        default_value = "groups",
        env = "ARBITER_JWT_GROUPS_CLAIM"
    )]
    pub jwt_groups_claim: String,
    /// Serve TLS on the TCP listener with this certificate chain (PEM); needs --tls-key.
    #[arg(
        long,
        value_name = "PEM",
        env = "ARBITER_TLS_CERT",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(
        long,
        value_name = "PEM",
        env = "ARBITER_TLS_KEY",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates that chain to these CA certificates (PEM): mutual TLS. Needs --tls-cert.
    #[arg(
        long,
        value_name = "PEM",
        env = "ARBITER_TLS_CLIENT_CA",
        requires = "tls_cert"
    )]
    pub tls_client_ca: Option<PathBuf>,
    /// Write one JSON line per decision to this file (appended), or to standard output with `-`.
    #[arg(long, value_name = "PATH|-", env = "ARBITER_DECISION_LOG")]
    pub decision_log: Option<String>,
    /// Decision-log queue length; lines beyond it are dropped and counted, never waited for.
    #[arg(long, value_name = "N", default_value_t = server::DEFAULT_DECISION_LOG_CAPACITY, env = "ARBITER_DECISION_LOG_CAPACITY")]
    pub decision_log_capacity: usize,
    /// The principal id that is always allowed (matched exactly on principal.id).
    #[arg(long, value_name = "NAME", default_value = crate::DEFAULT_SUPERUSER, env = "ARBITER_SUPERUSER")]
    pub superuser: String,
    /// Quiet time after a file change before reloading, in milliseconds.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 100,
        env = "ARBITER_DEBOUNCE_MS"
    )]
    pub debounce_ms: u64,
    /// On SIGTERM/SIGINT, how long in-flight calls may take to finish, in seconds.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 10,
        env = "ARBITER_GRACE_PERIOD_SECS"
    )]
    pub grace_period_secs: u64,
    /// Publish a policy set even when the lockout check finds that it locks a guard's principals out (the
    /// findings are logged). Without it such a set is refused like an invalid one. The environment variable
    /// takes `true`/`false`, `1`/`0`, `yes`/`no` or `on`/`off`.
    #[arg(
        long,
        env = "ARBITER_ALLOW_LOCKOUT",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub allow_lockout: bool,
    /// Search budget of the lockout check on each load and of `Simulate`, e.g. `10s` or `500ms`; running out
    /// is an "inconclusive" finding.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = super::parse_duration, env = "ARBITER_LOCKOUT_BUDGET")]
    pub lockout_budget: Duration,
    /// Largest request message accepted, in bytes; larger ones get RESOURCE_EXHAUSTED.
    #[arg(long, value_name = "BYTES", default_value_t = server::DEFAULT_MAX_MESSAGE_BYTES, env = "ARBITER_MAX_MESSAGE_BYTES")]
    pub max_message_bytes: usize,
    /// Serve the admin calls (Simulate, GetStatus and their HTTP forms) on this gRPC address only; the other
    /// listeners then refuse them.
    #[arg(long, value_name = "ADDR", env = "ARBITER_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// Serve the admin calls on this Unix socket only (mode 0600).
    #[arg(long, value_name = "PATH", env = "ARBITER_ADMIN_UDS")]
    pub admin_uds: Option<PathBuf>,
    /// Open connections across every listener; more are closed at once.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_connections, env = "ARBITER_MAX_CONNECTIONS")]
    pub max_connections: usize,
    /// A new connection must send its first bytes (HTTP/2 preface, TLS hello) within this.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = super::parse_duration, env = "ARBITER_HANDSHAKE_TIMEOUT")]
    pub handshake_timeout: Duration,
    /// A connection that sends nothing (not even a keepalive answer) for this long is closed.
    #[arg(long, value_name = "DURATION", default_value = "300s", value_parser = super::parse_duration, env = "ARBITER_IDLE_TIMEOUT")]
    pub idle_timeout: Duration,
    /// Decision calls in flight past which new ones are answered RESOURCE_EXHAUSTED at once (load shedding).
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_inflight, env = "ARBITER_MAX_INFLIGHT")]
    pub max_inflight: usize,
    /// The longest a call may take; a shorter `grpc-timeout` from the client is honoured (DEADLINE_EXCEEDED).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = super::parse_duration, env = "ARBITER_REQUEST_TIMEOUT")]
    pub request_timeout: Duration,
    /// Request bytes buffered at once across every stream and connection; past it a call gets
    /// RESOURCE_EXHAUSTED.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().request_bytes_budget, env = "ARBITER_REQUEST_BYTES_BUDGET")]
    pub request_bytes_budget: usize,
    /// HTTP/2 concurrent streams per connection.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_concurrent_streams, env = "ARBITER_MAX_CONCURRENT_STREAMS")]
    pub max_concurrent_streams: u32,
    /// HTTP/2 initial stream flow-control window, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().stream_window, env = "ARBITER_STREAM_WINDOW")]
    pub stream_window: u32,
    /// HTTP/2 initial connection flow-control window, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().connection_window, env = "ARBITER_CONNECTION_WINDOW")]
    pub connection_window: u32,
    /// HTTP/2 largest header list, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_header_list_bytes, env = "ARBITER_MAX_HEADER_LIST_BYTES")]
    pub max_header_list_bytes: u32,
    /// HTTP/2 keepalive: a PING after this much quiet on a connection.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = super::parse_duration, env = "ARBITER_KEEPALIVE_INTERVAL")]
    pub keepalive_interval: Duration,
    /// HTTP/2 keepalive: the connection is closed when a PING is not answered within this.
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = super::parse_duration, env = "ARBITER_KEEPALIVE_TIMEOUT")]
    pub keepalive_timeout: Duration,
    /// Connections older than this are sent GOAWAY (none by default).
    #[arg(long, value_name = "DURATION", value_parser = super::parse_duration, env = "ARBITER_MAX_CONNECTION_AGE")]
    pub max_connection_age: Option<Duration>,
    /// Time given to a connection's calls after its GOAWAY.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = super::parse_duration, env = "ARBITER_MAX_CONNECTION_AGE_GRACE")]
    pub max_connection_age_grace: Duration,
    /// Simulate calls running at once; more are answered RESOURCE_EXHAUSTED.
    #[arg(long, value_name = "N", default_value_t = Limits::default().simulate_concurrency, env = "ARBITER_SIMULATE_CONCURRENCY")]
    pub simulate_concurrency: usize,
    /// Files one Simulate may propose.
    #[arg(long, value_name = "N", default_value_t = Limits::default().simulate_max_files, env = "ARBITER_SIMULATE_MAX_FILES")]
    pub simulate_max_files: usize,
    /// Bytes of files one Simulate may propose.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().simulate_max_bytes, env = "ARBITER_SIMULATE_MAX_BYTES")]
    pub simulate_max_bytes: usize,
    /// Log filter for standard error (tracing `EnvFilter` syntax, e.g. `info` or `arbiter=debug`).
    #[arg(
        long,
        value_name = "FILTER",
        default_value = "info",
        env = "ARBITER_LOG"
    )]
    pub log: String,
}

impl ServeArgs {
    fn config(&self) -> ServerConfig {
        let listen = match (self.listen, &self.uds) {
            (Some(addr), _) => Some(addr),
            (None, Some(_)) => None,
            (None, None) => server::DEFAULT_LISTEN.parse().ok(),
        };
        ServerConfig {
            policies: self.policies.clone(),
            listen,
            uds: self.uds.clone(),
            metrics_listen: self.metrics_listen,
            http_listen: self.http_listen,
            admin_listen: self.admin_listen,
            admin_uds: self.admin_uds.clone(),
            limits: Limits {
                max_connections: self.max_connections,
                handshake_timeout: self.handshake_timeout,
                idle_timeout: self.idle_timeout,
                max_inflight: self.max_inflight,
                request_timeout: self.request_timeout,
                request_bytes_budget: self.request_bytes_budget,
                max_concurrent_streams: self.max_concurrent_streams,
                stream_window: self.stream_window,
                connection_window: self.connection_window,
                max_header_list_bytes: self.max_header_list_bytes,
                keepalive_interval: self.keepalive_interval,
                keepalive_timeout: self.keepalive_timeout,
                max_connection_age: self.max_connection_age,
                max_connection_age_grace: self.max_connection_age_grace,
                simulate_concurrency: self.simulate_concurrency,
                simulate_max_files: self.simulate_max_files,
                simulate_max_bytes: self.simulate_max_bytes,
            },
            tokens: Some(server::token::TokenSettings {
                jwks: self.jwks.clone(),
                pem_keys: self.jwt_key.clone(),
                issuers: self.jwt_issuer.clone(),
                audiences: self.jwt_audience.clone(),
                leeway: self.jwt_leeway,
                id_claim: self.jwt_id_claim.clone(),
                groups_claim: self.jwt_groups_claim.clone(),
                ..Default::default()
            }),
            tls: match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Some(server::tls::TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    client_ca: self.tls_client_ca.clone(),
                }),
                _ => None,
            },
            decision_log: self
                .decision_log
                .as_deref()
                .map(decision_log::Target::parse),
            decision_log_capacity: self.decision_log_capacity,
            superuser: self.superuser.clone(),
            debounce: Duration::from_millis(self.debounce_ms),
            grace_period: Duration::from_secs(self.grace_period_secs),
            max_message_bytes: self.max_message_bytes,
            watch: true,
            lockout_check: true,
            allow_lockout: self.allow_lockout,
            lockout_budget: self.lockout_budget,
            sighup: true,
            first_load_gate: None,
        }
    }
}

pub fn run(args: ServeArgs) -> i32 {
    init_tracing(&args.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("arbiter")
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    let code = runtime.block_on(serve(args));
    // Calls abandoned after the grace period must not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("warning: invalid --log filter `{filter}` ({e}); using `info`");
        tracing_subscriber::EnvFilter::new("info")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

async fn serve(args: ServeArgs) -> i32 {
    let shutdown = async {
        let signal = crate::shutdown::terminate().await;
        tracing::info!(signal, "shutdown requested");
        tokio::spawn(async {
            let again = crate::shutdown::terminate().await;
            tracing::warn!(signal = again, "second signal: exiting now");
            std::process::exit(EXIT_FAILURE);
        });
    };
    let server = match server::start(args.config(), shutdown).await {
        Ok(s) => s,
        Err(e) => return report(e),
    };
    if let Err(e) = server.ready().await {
        let _ = server.wait().await;
        return report(e);
    }
    match server.wait().await {
        Ok(()) => EXIT_OK,
        Err(e) => report(e),
    }
}

fn report(e: ServeError) -> i32 {
    match e {
        ServeError::InvalidPolicies(diags) => {
            eprintln!("error: the policy set is invalid; nothing is served");
            print_diagnostics(&diags);
            EXIT_INVALID
        }
        ServeError::Config(_) => {
            eprintln!("error: {e}");
            EXIT_INVALID
        }
        ServeError::Io { .. } => {
            eprintln!("error: {e}");
            EXIT_FAILURE
        }
    }
}
