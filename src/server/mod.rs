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

pub mod codec;
pub mod convert;
pub mod edge;
pub mod service;
pub mod simulate;
pub mod tls;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tonic::transport::server::{Router, TcpIncoming};
use tonic::transport::Server;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;
use tower::layer::util::{Identity, Stack};

use crate::decision_log::{self, DecisionLogger};
use crate::diag::Diagnostics;
use crate::metrics::{self, Metrics};
use crate::reload::{
    self, Debounce, LockoutCheck, Outcome, ReloadRequest, ReloadStatus, Reloader, Watch,
};
use crate::shutdown::Trigger;
use crate::snapshot::SnapshotStore;
use edge::{EdgeLayer, InFlight};
use service::{AuthorizerService, ServiceState};

/// The generated protobuf types, client and server of `proto/arbiter/v1/authorizer.proto`.
#[allow(clippy::all, missing_docs, rustdoc::all)]
pub mod proto {
    tonic::include_proto!("arbiter.v1");

    /// The encoded FileDescriptorSet (with its imports), served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/arbiter_descriptor.bin"));
}

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

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> ServeError {
    let what = what.into();
    move |source| ServeError::Io { what, source }
}

/// A started server.
#[derive(Debug)]
pub struct RunningServer {
    tcp_addr: Option<SocketAddr>,
    uds_path: Option<PathBuf>,
    metrics_addr: Option<SocketAddr>,
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

    /// Forces a reload, as SIGHUP does.
    pub fn reload(&self) {
        self.reload.request();
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
    let max_message_bytes = config.max_message_bytes.max(1024);

    // TLS material is read before anything is bound, so a bad file fails the start cleanly.
    let tls_config = match &config.tls {
        Some(files) if config.listen.is_some() => Some(files.load()?),
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
    let uds = match &config.uds {
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
    let state = Arc::new(ServiceState::new(
        store.clone(),
        status.clone(),
        config.superuser.clone(),
        log.clone(),
        metrics.clone(),
        config.lockout_budget,
    ));
    let health = HealthReporter::new();
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    health
        .set_service_status(SERVICE_NAME, ServingStatus::NotServing)
        .await;
    let inflight = InFlight::new(metrics.inflight.clone());
    let stop_serving = Trigger::new();
    let service = AuthorizerService::new(state);
    let edge = EdgeLayer::new(inflight.clone(), max_message_bytes);

    let mut serving = Vec::new();
    if let Some(listener) = tcp {
        let router = router(&service, &health, &edge, max_message_bytes, tls_config)?;
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let stop = stop_serving.clone();
        serving.push(tokio::spawn(async move {
            router
                .serve_with_incoming_shutdown(incoming, stop.pulled())
                .await
        }));
        tracing::info!(addr = %tcp_addr.map(|a| a.to_string()).unwrap_or_default(), "gRPC listening on TCP");
    }
    let mut uds_inode = None;
    if let Some((listener, inode)) = uds {
        uds_inode = Some(inode);
        let router = router(&service, &health, &edge, max_message_bytes, None)?;
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
        let stop = stop_serving.clone();
        serving.push(tokio::spawn(async move {
            router
                .serve_with_incoming_shutdown(incoming, stop.pulled())
                .await
        }));
        if let Some(path) = &config.uds {
            tracing::info!(path = %path.display(), "gRPC listening on a Unix socket (mode 0600)");
        }
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
        sighup: config.sighup,
        gate: config.first_load_gate.clone(),
        health,
        stop: stop.clone(),
        stop_serving,
        serving,
        grace: config.grace_period,
        log,
        uds: config.uds.clone().zip(uds_inode),
        metrics_stop,
        ready: ready_tx,
        inflight: inflight.clone(),
    };
    let task = tokio::spawn(supervisor.run());
    Ok(RunningServer {
        tcp_addr,
        uds_path: config.uds,
        metrics_addr,
        ready,
        stop,
        reload: reload_request,
        inflight,
        task,
    })
}

type ArbiterRouter = Router<Stack<EdgeLayer, Identity>>;

fn router(
    service: &AuthorizerService,
    health: &HealthReporter,
    edge: &EdgeLayer,
    max_message_bytes: usize,
    tls: Option<tonic::transport::ServerTlsConfig>,
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
        tonic_health::server::HealthService::from_health_reporter(health.clone()),
    );
    let authorizer = proto::authorizer_server::AuthorizerServer::new(service.clone())
        .max_decoding_message_size(max_message_bytes);
    let mut builder = Server::builder();
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tls)
            .map_err(|e| ServeError::Config(format!("invalid TLS configuration: {}", chain(&e))))?;
    }
    Ok(builder
        .layer(edge.clone())
        .add_service(authorizer)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha))
}

/// An error with its sources, `outer: inner: ...` (tonic's own text is only "transport error").
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Binds a Unix socket that is never reachable with a wider mode than 0600: it is bound inside a fresh 0700
/// directory, narrowed to 0600, then renamed into place. A stale socket (nobody listening) is replaced; any
/// other existing file is an error. Returns the listener and the socket's inode.
fn bind_uds(path: &Path) -> Result<(UnixListener, u64), ServeError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ServeError::Config(format!(
                    "{} is in use by another server",
                    path.display()
                )));
            }
            std::fs::remove_file(path).map_err(io_error(format!(
                "cannot remove stale socket {}",
                path.display()
            )))?;
        }
        Ok(_) => {
            return Err(ServeError::Config(format!(
                "{} exists and is not a socket",
                path.display()
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(format!("cannot use {}", path.display()))(e)),
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let nonce = jiff::Timestamp::now().as_nanosecond() as u64;
    let private = parent.join(format!(".arbiter-uds-{}-{nonce:x}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(io_error(format!(
            "cannot create a directory next to {}",
            path.display()
        )))?;
    let result = (|| {
        let tmp = private.join("socket");
        let listener = std::os::unix::net::UnixListener::bind(&tmp)
            .map_err(io_error(format!("cannot bind {}", path.display())))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(UDS_MODE)).map_err(
            io_error(format!("cannot set the mode of {}", path.display())),
        )?;
        std::fs::rename(&tmp, path)
            .map_err(io_error(format!("cannot create {}", path.display())))?;
        let inode = std::fs::symlink_metadata(path)
            .map(|m| m.ino())
            .map_err(io_error(format!("cannot stat {}", path.display())))?;
        listener
            .set_nonblocking(true)
            .map_err(io_error("cannot configure the socket"))?;
        let listener =
            UnixListener::from_std(listener).map_err(io_error("cannot register the socket"))?;
        Ok((listener, inode))
    })();
    let _ = std::fs::remove_dir_all(&private);
    result
}

struct Supervisor {
    reloader: Arc<Reloader>,
    watch: Option<Watch>,
    debounce: Debounce,
    forced: Option<tokio::sync::mpsc::Receiver<()>>,
    sighup: bool,
    gate: Option<Arc<Notify>>,
    health: HealthReporter,
    stop: Trigger,
    stop_serving: Trigger,
    serving: Vec<JoinHandle<Result<(), tonic::transport::Error>>>,
    grace: Duration,
    log: Option<DecisionLogger>,
    uds: Option<(PathBuf, u64)>,
    metrics_stop: Trigger,
    ready: watch::Sender<Option<Result<String, Diagnostics>>>,
    inflight: InFlight,
}

impl Supervisor {
    async fn run(mut self) -> Result<(), ServeError> {
        if let Some(gate) = self.gate.take() {
            tokio::select! {
                _ = gate.notified() => {}
                _ = self.stop.pulled() => {}
            }
        }
        let first = if self.stop.is_pulled() {
            None
        } else {
            Some(self.reloader.reload(false).await)
        };
        let failure = match first {
            Some(Outcome::Published(snapshot)) => {
                self.health
                    .set_service_status("", ServingStatus::Serving)
                    .await;
                self.health
                    .set_service_status(SERVICE_NAME, ServingStatus::Serving)
                    .await;
                self.ready.send_replace(Some(Ok(snapshot.revision.clone())));
                tracing::info!(revision = %snapshot.revision, "serving");
                None
            }
            Some(Outcome::Failed(diags)) => Some(diags),
            Some(Outcome::Unchanged) | None => {
                let mut d = Diagnostics::new();
                d.push(crate::diag::Diagnostic::error(
                    crate::diag::Code::Internal,
                    self.reloader.dir(),
                    crate::diag::Pos::WHOLE_FILE,
                    "the server stopped before the first load",
                ));
                Some(d)
            }
        };
        if let Some(diags) = failure {
            self.ready.send_replace(Some(Err(diags.clone())));
            self.grace = Duration::ZERO;
            self.stop_all(None).await;
            return Err(ServeError::InvalidPolicies(diags));
        }

        let reload_stop = Trigger::new();
        let (Some(watch), Some(forced)) = (self.watch.take(), self.forced.take()) else {
            self.stop_all(None).await;
            return Ok(());
        };
        let reload_task = tokio::spawn(reload::run(
            self.reloader.clone(),
            watch,
            self.debounce,
            forced,
            self.sighup,
            reload_stop.clone(),
        ));
        self.stop.pulled().await;
        self.stop_all(Some((reload_stop, reload_task))).await;
        Ok(())
    }

    async fn stop_all(&mut self, reload: Option<(Trigger, JoinHandle<()>)>) {
        tracing::info!(
            in_flight = self.inflight.get(),
            grace_ms = self.grace.as_millis() as u64,
            "shutting down: closing the listeners and draining in-flight calls"
        );
        self.health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        self.health
            .set_service_status(SERVICE_NAME, ServingStatus::NotServing)
            .await;
        self.stop_serving.pull();
        // Ends open `Health/Watch` streams (after they have seen NOT_SERVING), so they do not hold the drain.
        self.health.clear_service_status("").await;
        self.health.clear_service_status(SERVICE_NAME).await;
        let mut serving = std::mem::take(&mut self.serving);
        let drained = tokio::time::timeout(self.grace, async {
            for task in serving.iter_mut() {
                match task.await {
                    Ok(Err(e)) => tracing::error!(error = %e, "gRPC server error"),
                    Err(e) => tracing::error!(error = %e, "gRPC server task failed"),
                    Ok(Ok(())) => {}
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                in_flight = self.inflight.get(),
                "grace period over; abandoning the calls still in flight"
            );
            for task in &serving {
                task.abort();
            }
        }
        if let Some((stop, task)) = reload {
            stop.pull();
            let _ = task.await;
        }
        self.metrics_stop.pull();
        if let Some(log) = &self.log {
            if tokio::time::timeout(Duration::from_secs(10), log.close())
                .await
                .is_err()
            {
                tracing::warn!("the decision log did not flush within 10 s");
            }
        }
        if let Some((path, inode)) = &self.uds {
            // Only our own socket: another server may have replaced it meanwhile.
            if std::fs::symlink_metadata(path).is_ok_and(|m| m.ino() == *inode) {
                let _ = std::fs::remove_file(path);
            }
        }
        tracing::info!("stopped");
    }
}
