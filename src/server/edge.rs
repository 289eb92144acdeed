//! The HTTP/2 edge around every gRPC service: counts calls in flight (for graceful shutdown and the
//! `arbiter_inflight_calls` gauge) and corrects a status code that tonic picks before our code runs: a request
//! larger than the decoding limit is `OUT_OF_RANGE` in tonic; the contract says `RESOURCE_EXHAUSTED`. The error is
//! produced before any handler runs and travels as a trailers-only response, so the status sits in the response
//! headers where this layer can rewrite it. (Messages that do not decode are handled by `codec`.)

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::HeaderMap;
use metrics::Gauge;
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

#[derive(Debug, Clone)]
pub struct EdgeLayer {
    inflight: InFlight,
    max_message_bytes: usize,
}

impl EdgeLayer {
    pub fn new(inflight: InFlight, max_message_bytes: usize) -> Self {
        EdgeLayer {
            inflight,
            max_message_bytes,
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

impl<S, B, RB> Service<http::Request<B>> for Edge<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let guard = self.layer.inflight.enter();
        let limit = self.layer.max_message_bytes;
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut response = fut.await?;
            drop(guard);
            fix_status(response.headers_mut(), limit);
            Ok(response)
        })
    }
}

fn fix_status(headers: &mut HeaderMap, limit: usize) {
    // Cheap pre-check on the raw code before decoding the (percent-encoded) message.
    let code = match headers.get("grpc-status").map(|v| v.as_bytes()) {
        Some(b"11") => Code::OutOfRange,
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
    fn rewrites_only_the_known_error() {
        let mut h = headers(Status::out_of_range(
            "Error, decoded message length too large: found 5 bytes, the limit is: 4 bytes",
        ));
        fix_status(&mut h, 4);
        let s = Status::from_header_map(&h).unwrap();
        assert_eq!(s.code(), Code::ResourceExhausted);

        for other in [
            Status::internal("something else"),
            Status::out_of_range("x"),
        ] {
            let mut h = headers(other.clone());
            fix_status(&mut h, 4);
            assert_eq!(Status::from_header_map(&h).unwrap().code(), other.code());
        }
    }
}
