//! Metrics: the metric names of SPEC section 2, the process-wide Prometheus recorder, the `/metrics` HTTP
//! endpoint, and handles registered once so that the decision path does only atomic adds (no registry lookup).
//!
//! Everything is recorded through the `metrics` crate. The recorder is installed once per process, the first
//! time a server is started with a metrics address; every server in the process then renders the same registry.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics::{Counter, Gauge, Histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// `arbiter_decisions_total{decision="allow"|"deny"}`.
pub const DECISIONS_TOTAL: &str = "arbiter_decisions_total";
/// `arbiter_decision_duration_seconds`: time from receiving a request to its decision (histogram).
pub const DECISION_DURATION_SECONDS: &str = "arbiter_decision_duration_seconds";
/// `arbiter_reloads_total{result="ok"|"error"|"lockout"}`.
pub const RELOADS_TOTAL: &str = "arbiter_reloads_total";
/// `arbiter_snapshot_policies`: policies in the snapshot being served.
pub const SNAPSHOT_POLICIES: &str = "arbiter_snapshot_policies";
/// `arbiter_decision_log_dropped_total`: decision-log lines dropped because the queue was full.
pub const DECISION_LOG_DROPPED_TOTAL: &str = "arbiter_decision_log_dropped_total";
/// `arbiter_superuser_decisions_total`: decisions made by the superuser rule.
pub const SUPERUSER_DECISIONS_TOTAL: &str = "arbiter_superuser_decisions_total";
/// `arbiter_open_connections`: connections open on every listener.
pub const OPEN_CONNECTIONS: &str = "arbiter_open_connections";
/// `arbiter_connections_rejected_total{limit}`: connections closed by a limit (`max_connections`,
/// `handshake_timeout`, `idle_timeout`).
pub const CONNECTIONS_REJECTED_TOTAL: &str = "arbiter_connections_rejected_total";
/// `arbiter_accept_errors_total`: failed `accept` calls (each followed by a short back-off).
pub const ACCEPT_ERRORS_TOTAL: &str = "arbiter_accept_errors_total";
/// `arbiter_shed_total`: decision calls answered RESOURCE_EXHAUSTED at once because `--max-inflight` was reached.
pub const SHED_TOTAL: &str = "arbiter_shed_total";
/// `arbiter_timed_out_total`: calls past their deadline (DEADLINE_EXCEEDED).
pub const TIMED_OUT_TOTAL: &str = "arbiter_timed_out_total";
/// `arbiter_request_bytes_rejected_total`: calls refused because the budget of buffered request bytes was spent.
pub const REQUEST_BYTES_REJECTED_TOTAL: &str = "arbiter_request_bytes_rejected_total";
/// `arbiter_simulate_rejected_total`: `Simulate` calls refused by its concurrency limit or its size caps.
pub const SIMULATE_REJECTED_TOTAL: &str = "arbiter_simulate_rejected_total";
/// `arbiter_unauthenticated_total`: requests whose token failed verification (answered DENY `unauthenticated`).
pub const UNAUTHENTICATED_TOTAL: &str = "arbiter_unauthenticated_total";
/// `arbiter_reload_duration_seconds`: time to load, build and swap a policy set (histogram).
pub const RELOAD_DURATION_SECONDS: &str = "arbiter_reload_duration_seconds";
/// `arbiter_inflight_calls`: gRPC calls being processed.
pub const INFLIGHT_CALLS: &str = "arbiter_inflight_calls";
/// `arbiter_decision_log_write_errors_total`: decision-log lines that could not be written.
pub const DECISION_LOG_WRITE_ERRORS_TOTAL: &str = "arbiter_decision_log_write_errors_total";

const DECISION_BUCKETS: &[f64] = &[
    0.000_001,
    0.000_002_5,
    0.000_005,
    0.000_01,
    0.000_025,
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.002_5,
    0.005,
    0.01,
    0.025,
    0.1,
];
const RELOAD_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once) and returns its handle. `None` when another recorder
/// was installed first by an embedding program; metrics then go to that recorder.
pub fn install_recorder() -> Option<PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(DECISION_DURATION_SECONDS.to_string()),
                    DECISION_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(RELOAD_DURATION_SECONDS.to_string()),
                        RELOAD_BUCKETS,
                    )
                });
            let handle = match builder.map(PrometheusBuilder::install_recorder) {
                Ok(Ok(handle)) => Some(handle),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot install the Prometheus recorder; /metrics will be empty");
                    None
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot configure the Prometheus recorder; /metrics will be empty");
                    None
                }
            };
            describe();
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(
        DECISIONS_TOTAL,
        "Decisions made, by decision (allow or deny)."
    );
    describe_histogram!(
        DECISION_DURATION_SECONDS,
        Unit::Seconds,
        "Time from receiving a request to its decision."
    );
    describe_counter!(
        RELOADS_TOTAL,
        "Policy set loads, by result: ok (published), error (invalid) or lockout (refused by the lockout check); on error and lockout the last good snapshot is kept."
    );
    describe_gauge!(SNAPSHOT_POLICIES, "Policies in the snapshot being served.");
    describe_counter!(
        DECISION_LOG_DROPPED_TOTAL,
        "Decision-log lines dropped because the queue was full."
    );
    describe_counter!(
        SUPERUSER_DECISIONS_TOTAL,
        "Decisions made by the superuser rule."
    );
    describe_gauge!(OPEN_CONNECTIONS, "Connections open on every listener.");
    describe_counter!(
        CONNECTIONS_REJECTED_TOTAL,
        "Connections closed by a limit: max_connections, handshake_timeout or idle_timeout."
    );
    describe_counter!(
        ACCEPT_ERRORS_TOTAL,
        "Failed accept calls (out of file descriptors, ...), each followed by a short back-off."
    );
    describe_counter!(
        SHED_TOTAL,
        "Decision calls answered RESOURCE_EXHAUSTED at once because --max-inflight was reached."
    );
    describe_counter!(
        TIMED_OUT_TOTAL,
        "Calls past their deadline (DEADLINE_EXCEEDED)."
    );
    describe_counter!(
        REQUEST_BYTES_REJECTED_TOTAL,
        "Calls refused because the budget of buffered request bytes was spent."
    );
    describe_counter!(
        SIMULATE_REJECTED_TOTAL,
        "Simulate calls refused by the concurrency limit or the size caps."
    );
    describe_counter!(
        UNAUTHENTICATED_TOTAL,
        "Requests whose token failed verification, answered DENY unauthenticated."
    );
    describe_histogram!(
        RELOAD_DURATION_SECONDS,
        Unit::Seconds,
        "Time to load, parse, validate and compile a policy set."
    );
    describe_gauge!(INFLIGHT_CALLS, "gRPC calls being processed.");
    describe_counter!(
        DECISION_LOG_WRITE_ERRORS_TOTAL,
        "Decision-log lines that could not be written."
    );
}

/// Metric handles, registered once. Cloning is cheap (each handle is an `Arc`).
#[derive(Clone)]
pub struct Metrics {
    pub allow: Counter,
    pub deny: Counter,
    pub decision_duration: Histogram,
    pub superuser: Counter,
    pub unauthenticated: Counter,
    pub shed: Counter,
    pub timed_out: Counter,
    pub request_bytes_rejected: Counter,
    pub simulate_rejected: Counter,
    pub reloads_ok: Counter,
    pub reloads_error: Counter,
    pub reloads_lockout: Counter,
    pub reload_duration: Histogram,
    pub snapshot_policies: Gauge,
    pub log_dropped: Counter,
    pub log_write_errors: Counter,
    pub inflight: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Registers every series with the current recorder (so each shows up at zero before it first moves).
    pub fn register() -> Self {
        Metrics {
            allow: counter!(DECISIONS_TOTAL, "decision" => "allow"),
            deny: counter!(DECISIONS_TOTAL, "decision" => "deny"),
            decision_duration: histogram!(DECISION_DURATION_SECONDS),
            superuser: counter!(SUPERUSER_DECISIONS_TOTAL),
            unauthenticated: counter!(UNAUTHENTICATED_TOTAL),
            shed: counter!(SHED_TOTAL),
            timed_out: counter!(TIMED_OUT_TOTAL),
            request_bytes_rejected: counter!(REQUEST_BYTES_REJECTED_TOTAL),
            simulate_rejected: counter!(SIMULATE_REJECTED_TOTAL),
            reloads_ok: counter!(RELOADS_TOTAL, "result" => "ok"),
            reloads_error: counter!(RELOADS_TOTAL, "result" => "error"),
            reloads_lockout: counter!(RELOADS_TOTAL, "result" => "lockout"),
            reload_duration: histogram!(RELOAD_DURATION_SECONDS),
            snapshot_policies: gauge!(SNAPSHOT_POLICIES),
            log_dropped: counter!(DECISION_LOG_DROPPED_TOTAL),
            log_write_errors: counter!(DECISION_LOG_WRITE_ERRORS_TOTAL),
            inflight: gauge!(INFLIGHT_CALLS),
        }
    }

    /// Handles that record nothing, for tests and embedding without metrics.
    pub fn noop() -> Self {
        Metrics {
            allow: Counter::noop(),
            deny: Counter::noop(),
            decision_duration: Histogram::noop(),
            superuser: Counter::noop(),
            unauthenticated: Counter::noop(),
            shed: Counter::noop(),
            timed_out: Counter::noop(),
            request_bytes_rejected: Counter::noop(),
            simulate_rejected: Counter::noop(),
            reloads_ok: Counter::noop(),
            reloads_error: Counter::noop(),
            reloads_lockout: Counter::noop(),
            reload_duration: Histogram::noop(),
            snapshot_policies: Gauge::noop(),
            log_dropped: Counter::noop(),
            log_write_errors: Counter::noop(),
            inflight: Gauge::noop(),
        }
    }
}

/// Binds the metrics address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves Prometheus text at `GET /metrics` until `stop` turns true. Other paths get 404.
pub async fn serve(
    listener: TcpListener,
    handle: Option<PrometheusHandle>,
    mut stop: watch::Receiver<bool>,
) {
    let mut upkeep = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = upkeep.tick() => {
                if let Some(h) = &handle {
                    h.run_upkeep();
                }
            }
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::debug!(error = %e, "metrics: accept failed");
                        continue;
                    }
                };
                let handle = handle.clone();
                let service = service_fn(move |req: Request<Incoming>| {
                    let handle = handle.clone();
                    async move { Ok::<_, Infallible>(respond(&req, handle.as_ref())) }
                });
                tokio::spawn(async move {
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(10))
                        .serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "metrics: connection error");
                    }
                });
            }
        }
    }
}

fn respond(req: &Request<Incoming>, handle: Option<&PrometheusHandle>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        response
    };
    if req.uri().path() != "/metrics" {
        return reply(StatusCode::NOT_FOUND, "not found: try /metrics\n".into());
    }
    if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".into());
    }
    match handle {
        Some(h) => reply(StatusCode::OK, h.render()),
        None => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "another metrics recorder is installed in this process\n".into(),
        ),
    }
}
