//! The HTTP/2 edge around every gRPC service, before any handler runs:
//!
//! - counts calls in flight (for graceful shutdown and the `arbiter_inflight_calls` gauge);
//! - sheds load: past `--max-inflight` calls, a decision call (`Authorize`, `AuthorizeBatch`, ext_authz `Check`)
//!   is answered RESOURCE_EXHAUSTED at once and counted in `arbiter_shed_total`;
//! - refuses a request whose content-type is not `application/grpc...` (HTTP 415, INVALID_ARGUMENT);
//! - holds every request's buffered bytes against one budget shared by all streams and connections
//!   (`--request-bytes-budget`): a stream that would go past it fails at once with RESOURCE_EXHAUSTED, its bytes
//!   are given back, and so are every call's when its body is dropped (`arbiter_request_bytes_rejected_total`);
//! - corrects status codes tonic picks before our code runs: a request larger than the decoding limit is
//!   `OUT_OF_RANGE` in tonic and `RESOURCE_EXHAUSTED` in the contract; a call past its deadline (`grpc-timeout`,
//!   capped by `--request-timeout`) is `CANCELLED` in tonic and `DEADLINE_EXCEEDED` in gRPC
//!   (`arbiter_timed_out_total`). Both errors travel as trailers-only responses, so the status sits in the
//!   response headers where this layer can rewrite it. (Messages that do not decode are handled by `codec`.)

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame, SizeHint};
use metrics::{Counter, Gauge};
use tonic::{Code, Status};
use tower::{Layer, Service};

/// gRPC calls in flight, shared by every listener of one server.
#[derive(Debug, Clone)]
pub struct InFlight {
    count: Arc<AtomicUsize>,
    gauge: Gauge,
}

impl InFlight {
    pub fn new(gauge: Gauge) -> Self {
        InFlight {
            count: Arc::new(AtomicUsize::new(0)),
            gauge,
        }
    }

    pub fn get(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    pub(crate) fn enter(&self) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        self.gauge.increment(1.0);
        InFlightGuard(self.clone())
    }
}

/// Counts one call in flight until dropped.
pub(crate) struct InFlightGuard(InFlight);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
        self.0.gauge.decrement(1.0);
    }
}

/// The edge's settings and counters.
#[derive(Debug, Clone)]
pub struct EdgeLayer {
    inflight: InFlight,
    max_message_bytes: usize,
    /// Decision calls in flight past which new ones are shed.
    max_inflight: usize,
    budget: Arc<ByteBudget>,
    shed: Counter,
    timed_out: Counter,
    /// The longest a call may take (a shorter `grpc-timeout` wins).
    request_timeout: Duration,
    /// Decision calls in flight (until their response body ends), what `max_inflight` bounds: long-lived
    /// streams (health `Watch`, reflection) never crowd decisions out.
    decisions: Arc<AtomicUsize>,
}

/// One decision call in flight, until dropped.
struct DecisionGuard(Arc<AtomicUsize>);

impl Drop for DecisionGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Request bytes buffered across every stream and connection, against one limit.
#[derive(Debug)]
pub struct ByteBudget {
    used: AtomicUsize,
    limit: usize,
    rejected: Counter,
}

impl ByteBudget {
    pub fn new(limit: usize, rejected: Counter) -> Arc<Self> {
        Arc::new(ByteBudget {
            used: AtomicUsize::new(0),
            limit: limit.max(1),
            rejected,
        })
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    fn take(&self, n: usize) -> bool {
        let before = self.used.fetch_add(n, Ordering::AcqRel);
        if before + n > self.limit {
            self.used.fetch_sub(n, Ordering::AcqRel);
            self.rejected.increment(1);
            false
        } else {
            true
        }
    }

    fn give(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

impl EdgeLayer {
    pub fn new(
        inflight: InFlight,
        max_message_bytes: usize,
        max_inflight: usize,
        budget: Arc<ByteBudget>,
        shed: Counter,
        timed_out: Counter,
        request_timeout: Duration,
    ) -> Self {
        EdgeLayer {
            inflight,
            max_message_bytes,
            max_inflight: max_inflight.max(1),
            budget,
            shed,
            timed_out,
            request_timeout,
            decisions: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;
    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Edge<S> {
    inner: S,
    layer: EdgeLayer,
}

/// The calls that decide, and are shed under overload (health, reflection and the admin calls are not).
fn is_decision_call(path: &str) -> bool {
    matches!(
        path,
        "/arbiter.v1.Authorizer/Authorize"
            | "/arbiter.v1.Authorizer/AuthorizeBatch"
            | "/envoy.service.auth.v3.Authorization/Check"
    )
}

fn status_response(
    status: Status,
    http_status: http::StatusCode,
) -> http::Response<tonic::body::Body> {
    let mut response = status.into_http::<tonic::body::Body>();
    *response.status_mut() = http_status;
    response
}

impl<S, B> Service<http::Request<B>> for Edge<S>
where
    S: Service<http::Request<BudgetBody<B>>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: HttpBody<Data = Bytes>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let grpc = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        if !grpc {
            let status = Status::invalid_argument("content-type must be application/grpc");
            return Box::pin(std::future::ready(Ok(status_response(
                status,
                http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ))));
        }
        // A decision call counts from here until its response body ends; past the limit it is shed at once.
        let decision = if is_decision_call(req.uri().path()) {
            let before = self.layer.decisions.fetch_add(1, Ordering::AcqRel);
            let guard = DecisionGuard(self.layer.decisions.clone());
            if before >= self.layer.max_inflight {
                drop(guard);
                self.layer.shed.increment(1);
                let status = Status::resource_exhausted(format!(
                    "overloaded: {} decision calls in flight (--max-inflight); retry with backoff",
                    self.layer.max_inflight
                ));
                return Box::pin(std::future::ready(Ok(status_response(
                    status,
                    http::StatusCode::OK,
                ))));
            }
            Some(guard)
        } else {
            None
        };
        let guard = self.layer.inflight.enter();
        let limit = self.layer.max_message_bytes;
        let exceeded = Arc::new(AtomicBool::new(false));
        let req = req.map(|body| BudgetBody {
            inner: body,
            budget: self.layer.budget.clone(),
            held: 0,
            exceeded: exceeded.clone(),
        });
        let timed_out = self.layer.timed_out.clone();
        let deadline = deadline(req.headers(), self.layer.request_timeout);
        let fut = self.inner.call(req);
        Box::pin(async move {
            let response = match tokio::time::timeout(deadline, fut).await {
                Ok(response) => response?,
                Err(_) => {
                    timed_out.increment(1);
                    let status = Status::deadline_exceeded(
                        "the call's deadline (grpc-timeout, or --request-timeout) passed",
                    );
                    return Ok(status_response(status, http::StatusCode::OK));
                }
            };
            // The call stays in flight until its response body is done (streams included).
            let mut response = response.map(|body| {
                tonic::body::Body::new(InFlightBody {
                    inner: body,
                    _guard: guard,
                    _decision: decision,
                })
            });
            if exceeded.load(Ordering::Acquire) {
                let status = Status::resource_exhausted(
                    "the server's budget of buffered request bytes is spent; retry with backoff",
                );
                let _ = status.add_header(response.headers_mut());
            } else {
                fix_status(response.headers_mut(), limit, &timed_out);
            }
            Ok(response)
        })
    }
}

/// How long a call may run: the client's `grpc-timeout` up to the server's maximum. tonic's own timer for the
/// header (outside this layer) answers CANCELLED; this one ends a little earlier, so the client gets the
/// DEADLINE_EXCEEDED that gRPC defines.
fn deadline(headers: &HeaderMap, max: Duration) -> Duration {
    let asked = headers
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout);
    match asked {
        Some(asked) if asked < max => {
            let margin = (asked / 20).clamp(Duration::from_micros(100), Duration::from_millis(5));
            asked.saturating_sub(margin)
        }
        _ => max,
    }
}

/// `grpc-timeout`: at most 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
fn parse_grpc_timeout(text: &str) -> Option<Duration> {
    if text.len() < 2 || text.len() > 9 {
        return None;
    }
    let (digits, unit) = text.split_at(text.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// A response body that keeps its call counted in flight until it is done or dropped.
struct InFlightBody {
    inner: tonic::body::Body,
    _guard: InFlightGuard,
    _decision: Option<DecisionGuard>,
}

impl HttpBody for InFlightBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body whose buffered bytes are held against the [`ByteBudget`] until it is dropped.
pub struct BudgetBody<B> {
    inner: B,
    budget: Arc<ByteBudget>,
    held: usize,
    exceeded: Arc<AtomicBool>,
}

/// The error a body gives once the budget is spent.
#[derive(Debug, thiserror::Error)]
#[error("the budget of buffered request bytes is spent")]
pub struct BudgetSpent;

impl<B> Drop for BudgetBody<B> {
    fn drop(&mut self) {
        self.budget.give(self.held);
    }
}

impl<B> HttpBody for BudgetBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len();
                    if !this.budget.take(n) {
                        this.exceeded.store(true, Ordering::Release);
                        return Poll::Ready(Some(Err(Box::new(BudgetSpent))));
                    }
                    this.held += n;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn fix_status(headers: &mut HeaderMap, limit: usize, timed_out: &Counter) {
    // Cheap pre-check on the raw code before decoding the (percent-encoded) message.
    let code = match headers.get("grpc-status").map(|v| v.as_bytes()) {
        Some(b"11") => Code::OutOfRange,
        Some(b"1") => Code::Cancelled,
        _ => return,
    };
    let Some(status) = Status::from_header_map(headers) else {
        return;
    };
    let message = status.message();
    let replacement = match code {
        Code::OutOfRange if message.contains("decoded message length too large") => {
            Status::resource_exhausted(format!(
                "request message larger than the limit of {limit} bytes"
            ))
        }
        Code::Cancelled if message == "Timeout expired" => {
            timed_out.increment(1);
            Status::deadline_exceeded(
                "the call's deadline (grpc-timeout, or --request-timeout) passed",
            )
        }
        _ => return,
    };
    let _ = replacement.add_header(headers);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(status: Status) -> HeaderMap {
        let mut h = HeaderMap::new();
        status.add_header(&mut h).unwrap();
        h
    }

    #[test]
    fn deadlines_are_the_clients_up_to_the_maximum_and_end_a_little_early() {
        let max = Duration::from_secs(30);
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("grpc-timeout", v.parse().unwrap());
            deadline(&h, max)
        };
        assert_eq!(deadline(&HeaderMap::new(), max), max);
        assert_eq!(with("1H"), max);
        assert_eq!(with("100m"), Duration::from_millis(95));
        assert_eq!(with("2S"), Duration::from_millis(1995));
        assert!(with("5m") < Duration::from_millis(5));
        for bad in ["", "5", "m", "123456789S", "5x", "-5S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad}");
        }
    }

    #[test]
    fn rewrites_only_the_known_error() {
        let mut h = headers(Status::out_of_range(
            "Error, decoded message length too large: found 5 bytes, the limit is: 4 bytes",
        ));
        fix_status(&mut h, 4, &Counter::noop());
        let s = Status::from_header_map(&h).unwrap();
        assert_eq!(s.code(), Code::ResourceExhausted);
        let mut h = headers(Status::cancelled("Timeout expired"));
        fix_status(&mut h, 4, &Counter::noop());
        assert_eq!(
            Status::from_header_map(&h).unwrap().code(),
            Code::DeadlineExceeded
        );

        for other in [
            Status::internal("something else"),
            Status::out_of_range("x"),
            Status::cancelled("the client went away"),
        ] {
            let mut h = headers(other.clone());
            fix_status(&mut h, 4, &Counter::noop());
            assert_eq!(Status::from_header_map(&h).unwrap().code(), other.code());
        }
    }
}
