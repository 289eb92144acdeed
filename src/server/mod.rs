//! The sidecar (`arbiter serve`): listeners, service wiring, start-up, health, reflection and graceful shutdown.
//!
//! [`start`] binds every listener, starts serving with health NOT_SERVING, then loads (and lockout-checks) the
//! policy directory off the executor. Once the first snapshot is published, health turns SERVING and the reload loop starts
//! (`crate::reload`). If the first load fails, nothing is ever decided: the server stops and
//! [`RunningServer::ready`] / [`RunningServer::wait`] report [`ServeError::InvalidPolicies`].
//!
//! Shutdown (the future given to [`start`], or [`RunningServer::shutdown`]): health turns NOT_SERVING, the
//! listeners close, in-flight calls are drained for up to the grace period, the reload loop stops, the decision
//! log is flushed and the Unix socket removed.

mod authority;
pub mod codec;
mod config;
pub mod convert;
pub mod decide;
pub mod edge;
pub mod ext_authz;
pub mod forward_auth;
pub mod http;
pub mod http_call;
mod key_watch;
pub mod limits;
pub mod service;
pub mod simulate;
mod supervisor;
pub mod tls;
pub mod token;
pub(crate) mod unary;
mod uds;
pub mod wire;
pub mod wire_request;
#[cfg(test)]
mod wire_tests;

use authority::AuthorityFix;
pub use config::*;
use supervisor::Supervisor;
use tokio_stream::StreamExt;
use uds::bind_uds;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::server::Router;
use tonic::transport::Server;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;
use tower::layer::util::{Identity, Stack};

use crate::decision_log::{self};
use crate::diag::Diagnostics;
use crate::metrics::{self, Metrics};
use crate::reload::{Debounce, LockoutCheck, ReloadRequest, ReloadStatus, Reloader, Watch};
use crate::shutdown::Trigger;
use crate::snapshot::SnapshotStore;
use decide::ServiceState;
use edge::{EdgeLayer, InFlight};
use service::AuthorizerService;

/// The generated protobuf types, client and server of `proto/arbiter/v1/authorizer.proto`.
#[allow(clippy::all, missing_docs, rustdoc::all)]
pub mod proto {
    tonic::include_proto!("arbiter.v1");

    /// The encoded FileDescriptorSet (with its imports), served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/arbiter_descriptor.bin"));
}

/// A started server.
#[derive(Debug)]
pub struct RunningServer {
    tcp_addr: Option<SocketAddr>,
    uds_path: Option<PathBuf>,
    metrics_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    tokens: Option<Arc<token::Verifier>>,
    ready: watch::Receiver<Option<Result<String, Diagnostics>>>,
    stop: Trigger,
    reload: ReloadRequest,
    inflight: InFlight,
    task: JoinHandle<Result<(), ServeError>>,
}

impl RunningServer {
    /// The bound TCP address.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }
    pub fn uds_path(&self) -> Option<&Path> {
        self.uds_path.as_deref()
    }
    /// The bound metrics address.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }
    /// The bound HTTP/JSON address.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }
    /// The bound admin gRPC address.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Waits for the first load: the revision being served, or every error of an invalid set.
    pub async fn ready(&self) -> Result<String, ServeError> {
        let mut rx = self.ready.clone();
        let outcome = rx.wait_for(|r| r.is_some()).await;
        match outcome.as_deref() {
            Ok(Some(Ok(revision))) => Ok(revision.clone()),
            Ok(Some(Err(diags))) => Err(ServeError::InvalidPolicies(diags.clone())),
            _ => Err(ServeError::Config(
                "the server stopped before loading".into(),
            )),
        }
    }

    /// Forces a reload of the policies and the token keys, as SIGHUP does.
    pub fn reload(&self) {
        self.reload.request();
        if let Some(tokens) = &self.tokens {
            key_watch::reload_keys(tokens);
        }
    }

    /// Starts a graceful shutdown.
    pub fn shutdown(&self) {
        self.stop.pull();
    }

    /// gRPC calls being processed now.
    pub fn in_flight(&self) -> usize {
        self.inflight.get()
    }

    /// Waits for the server to stop.
    pub async fn wait(self) -> Result<(), ServeError> {
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(ServeError::Io {
                what: "the server task failed".into(),
                source: io::Error::other(e.to_string()),
            }),
        }
    }
}

/// Binds the listeners and starts serving; returns once bound. `shutdown` completing starts a graceful
/// shutdown (the CLI passes SIGTERM/SIGINT).
pub async fn start<F>(config: ServerConfig, shutdown: F) -> Result<RunningServer, ServeError>
where
    F: Future<Output = ()> + Send + 'static,
{
    if config.listen.is_none() && config.uds.is_none() {
        return Err(ServeError::Config(
            "nothing to listen on: give a TCP address or a Unix socket path".into(),
        ));
    }
    if config.superuser.is_empty() {
        return Err(ServeError::Config(
            "the superuser name must not be empty".into(),
        ));
    }
    // SIGHUP is taken over before anything is announced: from the first listener's log line on, a SIGHUP is a
    // reload (after the first load, if it comes during it), never the signal's default action, which ends the
    // process.
    let hangups = config.sighup.then(crate::shutdown::hangups).flatten();
    let max_message_bytes = config.max_message_bytes.max(1024);
    if config.limits.idle_timeout <= config.limits.keepalive_interval {
        return Err(ServeError::Config(format!(
            "--idle-timeout ({:?}) must be longer than --keepalive-interval ({:?}), or idle but live clients are cut off",
            config.limits.idle_timeout, config.limits.keepalive_interval
        )));
    }
    let tokens = match &config.tokens {
        Some(settings) if settings.enabled() => Some(Arc::new(
            token::Verifier::new(settings.clone())
                .map_err(|e| ServeError::Config(format!("cannot read the token keys: {e}")))?,
        )),
        _ => None,
    };

    // TLS material is read before anything is bound, so a bad file fails the start cleanly.
    let tls_config = match &config.tls {
        Some(files) if config.listen.is_some() => Some(Arc::new(tls::TlsReloader::load(files)?)),
        Some(_) => {
            return Err(ServeError::Config(
                "TLS is for the TCP listener, and none is configured".into(),
            ))
        }
        None => None,
    };
    // Metrics first, so that every handle below is registered with the recorder.
    let mut metrics_server = None;
    if let Some(addr) = config.metrics_listen {
        let listener = metrics::bind(addr)
            .await
            .map_err(io_error(format!("cannot listen for metrics on {addr}")))?;
        metrics_server = Some((listener, metrics::install_recorder()));
    }
    let metrics = Metrics::register();

    let tcp = match config.listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(io_error(format!("cannot listen on {addr}")))?,
        ),
        None => None,
    };
    let tcp_addr = tcp.as_ref().and_then(|l| l.local_addr().ok());
    let http_listener = match config.http_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(io_error(format!("cannot listen for HTTP on {addr}")))?,
        ),
        None => None,
    };
    let http_addr = http_listener.as_ref().and_then(|l| l.local_addr().ok());
    let uds = match &config.uds {
        Some(path) => Some(bind_uds(path)?),
        None => None,
    };
    let admin_tcp = match config.admin_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(io_error(format!("cannot listen for admin calls on {addr}")))?,
        ),
        None => None,
    };
    let admin_uds = match &config.admin_uds {
        Some(path) => Some(bind_uds(path)?),
        None => None,
    };

    let log = match &config.decision_log {
        Some(target) => Some(
            decision_log::open(
                target,
                config.decision_log_capacity,
                metrics.log_dropped.clone(),
                metrics.log_write_errors.clone(),
            )
            .map_err(io_error(format!("cannot open the decision log {target:?}")))?,
        ),
        None => None,
    };

    let store = Arc::new(SnapshotStore::new());
    let status = Arc::new(ReloadStatus::default());
    let state = Arc::new(
        ServiceState::new(
            store.clone(),
            status.clone(),
            config.superuser.clone(),
            log.clone(),
            metrics.clone(),
            config.lockout_budget,
        )
        .with_tokens(tokens.clone())
        .with_tls(tls_config.clone())
        .with_simulate_limits(
            config.limits.simulate_concurrency,
            config.limits.simulate_max_files,
            config.limits.simulate_max_bytes,
        ),
    );
    let health = HealthReporter::new();
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    health
        .set_service_status(SERVICE_NAME, ServingStatus::NotServing)
        .await;
    let inflight = InFlight::new(metrics.inflight.clone());
    let stop_serving = Trigger::new();
    let admin_separate = config.admin_listen.is_some() || config.admin_uds.is_some();
    let service = AuthorizerService::new(state.clone()).serving_admin(!admin_separate);
    let admin_service = AuthorizerService::new(state.clone()).serving_admin(true);
    let ext_authz = ext_authz::ExtAuthzService::new(state.clone());
    let limits = config.limits.clone();
    let edge = EdgeLayer::new(
        inflight.clone(),
        max_message_bytes,
        limits.max_inflight,
        edge::ByteBudget::new(
            limits.request_bytes_budget,
            metrics.request_bytes_rejected.clone(),
        ),
        metrics.shed.clone(),
        metrics.timed_out.clone(),
        limits.request_timeout,
    );
    // One gate per listener: connections piling up on one (the public TCP port) never lock out another (the
    // local socket, the admin plane).
    let connection_metrics = limits::ConnectionMetrics::register();
    let new_gate = || {
        limits::ConnectionGate::new(
            limits.max_connections,
            limits.handshake_timeout,
            limits.idle_timeout,
            connection_metrics.clone(),
        )
    };
    let services = Services {
        authorizer: &service,
        ext_authz: &ext_authz,
        health: &health,
        limits: &limits,
    };

    let mut serving = Vec::new();
    if let Some(listener) = tcp {
        let router = router(&services, &edge, max_message_bytes)?;
        let stop = stop_serving.clone();
        match &tls_config {
            Some(tls) => {
                let incoming = limits::incoming_tls(listener, new_gate(), tls.clone())
                    .map(|conn| conn.map(AuthorityFix::new));
                serving.push(tokio::spawn(async move {
                    router
                        .serve_with_incoming_shutdown(incoming, stop.pulled())
                        .await
                }));
                let files = tls.files().files().map(PathBuf::from).collect::<Vec<_>>();
                let tls = tls.clone();
                key_watch::watch_files(
                    "the TLS files",
                    &files,
                    stop_serving.clone(),
                    config.sighup,
                    move || tls.reload(),
                );
            }
            None => serving.push(serve_plain(router, listener, new_gate(), &stop_serving)),
        }
        tracing::info!(addr = %tcp_addr.map(|a| a.to_string()).unwrap_or_default(), tls = tls_config.is_some(), "gRPC listening on TCP");
    }
    let mut uds_inode = None;
    if let Some((listener, inode)) = uds {
        uds_inode = Some(inode);
        let router = router(&services, &edge, max_message_bytes)?;
        serving.push(serve_plain(router, listener, new_gate(), &stop_serving));
        if let Some(path) = &config.uds {
            tracing::info!(path = %path.display(), "gRPC listening on a Unix socket (mode 0600)");
        }
    }
    // The admin plane: the same services, with `Simulate` and `GetStatus` served (the others refuse them).
    let admin_services = Services {
        authorizer: &admin_service,
        ..services
    };
    let mut admin_addr = None;
    if let Some(listener) = admin_tcp {
        admin_addr = listener.local_addr().ok();
        let router = router(&admin_services, &edge, max_message_bytes)?;
        serving.push(serve_plain(router, listener, new_gate(), &stop_serving));
        tracing::info!(addr = %admin_addr.map(|a| a.to_string()).unwrap_or_default(), "admin gRPC (Simulate, GetStatus) listening on TCP");
    }
    let mut admin_uds_inode = None;
    if let Some((listener, inode)) = admin_uds {
        admin_uds_inode = Some(inode);
        let router = router(&admin_services, &edge, max_message_bytes)?;
        serving.push(serve_plain(router, listener, new_gate(), &stop_serving));
    }

    if let Some(listener) = http_listener {
        let door = http::HttpDoor {
            state: state.clone(),
            max_body_bytes: max_message_bytes,
            admin: !admin_separate,
            gate: new_gate(),
            body_timeout: limits.request_timeout,
            stopping: stop_serving.clone(),
            inflight: inflight.clone(),
        };
        serving.push(tokio::spawn(http::serve(
            listener,
            door,
            stop_serving.clone(),
        )));
        tracing::info!(addr = %http_addr.map(|a| a.to_string()).unwrap_or_default(), "HTTP/JSON listening");
    }

    let metrics_stop = Trigger::new();
    let mut metrics_addr = None;
    if let Some((listener, handle)) = metrics_server {
        metrics_addr = listener.local_addr().ok();
        tracing::info!(addr = %metrics_addr.map(|a| a.to_string()).unwrap_or_default(), "metrics at /metrics");
        tokio::spawn(metrics::serve(listener, handle, metrics_stop.subscribe()));
    }

    let stop = Trigger::new();
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown => stop.pull(),
                _ = stop.pulled() => {}
            }
        });
    }

    if let Some(tokens) = &tokens {
        key_watch::spawn(tokens.clone(), stop.clone(), config.sighup);
    }
    // The watch starts before the first load so that no change made meanwhile is missed.
    let watch = Watch::start(&config.policies, config.watch);
    let lockout = config.lockout_check.then(|| LockoutCheck {
        allow: config.allow_lockout,
        superuser: config.superuser.clone(),
        budget: config.lockout_budget,
    });
    let reloader = Arc::new(Reloader::new(
        config.policies.clone(),
        store,
        status,
        metrics,
        lockout,
    ));
    let (reload_request, forced) = ReloadRequest::channel();
    let (ready_tx, ready) = watch::channel(None);
    let supervisor = Supervisor {
        reloader,
        watch: Some(watch),
        debounce: Debounce {
            quiet: config.debounce,
        },
        forced: Some(forced),
        hangups,
        gate: config.first_load_gate.clone(),
        health,
        stop: stop.clone(),
        stop_serving,
        serving,
        grace: config.grace_period,
        log,
        sockets: config
            .uds
            .clone()
            .zip(uds_inode)
            .into_iter()
            .chain(config.admin_uds.clone().zip(admin_uds_inode))
            .collect(),
        metrics_stop,
        ready: ready_tx,
        inflight: inflight.clone(),
    };
    let task = tokio::spawn(supervisor.run());
    Ok(RunningServer {
        tcp_addr,
        uds_path: config.uds,
        metrics_addr,
        http_addr,
        admin_addr,
        tokens,
        ready,
        stop,
        reload: reload_request,
        inflight,
        task,
    })
}

type ArbiterRouter = Router<Stack<EdgeLayer, Identity>>;

/// Serves `router` on a plaintext listener, through the connection gate and the `:authority` repair (any
/// authority is accepted, see `authority`), until `stop` is pulled.
fn serve_plain<L>(
    router: ArbiterRouter,
    listener: L,
    gate: limits::ConnectionGate,
    stop: &Trigger,
) -> JoinHandle<Result<(), tonic::transport::Error>>
where
    L: limits::Listener,
    L::Io: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Unpin
        + Send
        + 'static,
{
    let incoming = limits::incoming(listener, gate).map(|conn| conn.map(AuthorityFix::new));
    let stop = stop.clone();
    tokio::spawn(async move {
        router
            .serve_with_incoming_shutdown(incoming, stop.pulled())
            .await
    })
}

/// The gRPC services every listener serves, and the transport limits.
#[derive(Clone, Copy)]
struct Services<'a> {
    authorizer: &'a AuthorizerService,
    ext_authz: &'a ext_authz::ExtAuthzService,
    health: &'a HealthReporter,
    limits: &'a Limits,
}

fn router(
    services: &Services<'_>,
    edge: &EdgeLayer,
    max_message_bytes: usize,
) -> Result<ArbiterRouter, ServeError> {
    let reflection_error = |e: tonic_reflection::server::Error| {
        ServeError::Config(format!("cannot build the reflection service: {e}"))
    };
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(reflection_error)?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(reflection_error)?;
    let health_service = tonic_health::pb::health_server::HealthServer::new(
        tonic_health::server::HealthService::from_health_reporter(services.health.clone()),
    );
    let authorizer = service::AuthorizerRoutes::new(services.authorizer.clone(), max_message_bytes);
    let ext_authz =
        envoy_types::ext_authz::v3::pb::AuthorizationServer::new(services.ext_authz.clone())
            .max_decoding_message_size(max_message_bytes);
    let l = services.limits;
    // The request timeout is the edge's (tonic's own answers CANCELLED).
    let mut builder = Server::builder()
        .max_concurrent_streams(l.max_concurrent_streams)
        .initial_stream_window_size(l.stream_window)
        .initial_connection_window_size(l.connection_window)
        .http2_max_header_list_size(l.max_header_list_bytes)
        .http2_keepalive_interval(Some(l.keepalive_interval))
        .http2_keepalive_timeout(Some(l.keepalive_timeout));
    if let Some(age) = l.max_connection_age {
        builder = builder
            .max_connection_age(age)
            .max_connection_age_grace(l.max_connection_age_grace);
    }
    Ok(builder
        .layer(edge.clone())
        .add_service(authorizer)
        .add_service(ext_authz)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha))
}
