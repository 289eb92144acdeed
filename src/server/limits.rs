//! Connection-level controls for every listener (gRPC over TCP and the Unix socket, HTTP/JSON):
//!
//! - **accept errors**: `EMFILE`/`ENFILE` (and any other accept error) back off for a moment with a rate-limited
//!   log line, and accepting resumes once descriptors are free; the loop never spins;
//! - **a cap on open connections**: past it a new connection is closed at once and counted;
//! - **a handshake timeout**: a connection must deliver its first 33 bytes (the HTTP/2 preface and a frame
//!   header, or the start of a TLS handshake or an HTTP/1 request line) within it, so slowloris clients and
//!   stalled TLS handshakes are closed;
//! - **an idle timeout**: a connection that sends nothing for this long is closed (the server's HTTP/2
//!   keepalive PINGs make live clients answer well within it).
//!
//! Each closed connection is counted in `arbiter_connections_rejected_total{limit}`; open connections are the
//! gauge `arbiter_open_connections`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tonic::transport::server::Connected;

/// `AsyncWrite` for a connection wrapper, forwarding every call to one field: the wrappers in this server only
/// look at what the client sends.
macro_rules! forward_async_write {
    ($wrapper:ident<IO: $($bound:path),+>, $field:tt) => {
        impl<IO: $($bound +)+ Unpin> tokio::io::AsyncWrite for $wrapper<IO> {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.get_mut().$field).poll_write(cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.get_mut().$field).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.$field.is_write_vectored()
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().$field).poll_flush(cx)
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().$field).poll_shutdown(cx)
            }
        }
    };
}
pub(crate) use forward_async_write;

/// Bytes a connection must deliver within the handshake timeout.
const HANDSHAKE_BYTES: u64 = 24 + 9;
/// Pause after a failed `accept`.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The counters of the connection controls.
#[derive(Clone)]
pub struct ConnectionMetrics {
    pub open: Gauge,
    pub rejected_limit: Counter,
    pub handshake_timeouts: Counter,
    pub idle_timeouts: Counter,
    pub accept_errors: Counter,
}

impl ConnectionMetrics {
    /// Registered with the current recorder.
    pub fn register() -> Self {
        ConnectionMetrics {
            open: metrics::gauge!(crate::metrics::OPEN_CONNECTIONS),
            rejected_limit: metrics::counter!(crate::metrics::CONNECTIONS_REJECTED_TOTAL, "limit" => "max_connections"),
            handshake_timeouts: metrics::counter!(crate::metrics::CONNECTIONS_REJECTED_TOTAL, "limit" => "handshake_timeout"),
            idle_timeouts: metrics::counter!(crate::metrics::CONNECTIONS_REJECTED_TOTAL, "limit" => "idle_timeout"),
            accept_errors: metrics::counter!(crate::metrics::ACCEPT_ERRORS_TOTAL),
        }
    }
}

/// The limits shared by every listener of one server.
#[derive(Clone)]
pub struct ConnectionGate {
    permits: Arc<Semaphore>,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    metrics: ConnectionMetrics,
    last_accept_log: Arc<std::sync::Mutex<Option<Instant>>>,
}

impl std::fmt::Debug for ConnectionGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionGate")
            .field("free", &self.permits.available_permits())
            .field("handshake_timeout", &self.handshake_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

impl ConnectionGate {
    pub fn new(
        max_connections: usize,
        handshake_timeout: Duration,
        idle_timeout: Duration,
        metrics: ConnectionMetrics,
    ) -> Self {
        ConnectionGate {
            permits: Arc::new(Semaphore::new(
                max_connections.clamp(1, Semaphore::MAX_PERMITS),
            )),
            handshake_timeout,
            idle_timeout,
            metrics,
            last_accept_log: Arc::new(std::sync::Mutex::new(None)),
        }
    }

    /// Admits an accepted connection, or `None` (closing it) when the cap is reached.
    pub fn admit<IO>(&self, io: IO) -> Option<Guarded<IO>> {
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                self.metrics.open.increment(1.0);
                Some(Guarded::new(io, permit, self))
            }
            Err(_) => {
                self.metrics.rejected_limit.increment(1);
                None
            }
        }
    }

    /// After a failed `accept`: a log line at most every 5 s, then a short pause, so the loop never spins
    /// (`EMFILE` leaves the pending connection in the queue, so an immediate retry fails again).
    pub async fn accept_failed(&self, error: &io::Error) {
        self.metrics.accept_errors.increment(1);
        let log = match self.last_accept_log.lock() {
            Ok(mut last) => {
                let now = Instant::now();
                let due = last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(5));
                if due {
                    *last = Some(now);
                }
                due
            }
            Err(_) => false,
        };
        if log {
            tracing::error!(error = %error, "accept failed (backing off; out of file descriptors?)");
        }
        tokio::time::sleep(ACCEPT_BACKOFF).await;
    }
}

/// A stream of admitted connections from any listener: `accept` is retried with a back-off, and connections over
/// the cap are dropped (closed) here.
pub fn incoming<L>(
    mut listener: L,
    gate: ConnectionGate,
) -> impl tokio_stream::Stream<Item = io::Result<Guarded<L::Io>>>
where
    L: Listener,
{
    async_stream_like(move |tx| async move {
        loop {
            match listener.accept().await {
                Ok(io) => {
                    if let Some(conn) = gate.admit(io) {
                        if tx.send(Ok(conn)).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => gate.accept_failed(&e).await,
            }
        }
    })
}

/// [`incoming`] with a TLS handshake on each connection, run off the accept loop under the handshake timeout,
/// with the configuration current at that moment (it is reloaded when its files change). A failed handshake
/// closes the connection; it is logged at debug level.
pub fn incoming_tls<L>(
    mut listener: L,
    gate: ConnectionGate,
    tls: Arc<super::tls::TlsReloader>,
) -> impl tokio_stream::Stream<Item = io::Result<TlsConn<Guarded<L::Io>>>>
where
    L: Listener,
    L::Io: AsyncRead + AsyncWrite + Unpin,
{
    async_stream_like(move |tx| async move {
        loop {
            match listener.accept().await {
                Ok(io) => {
                    let Some(conn) = gate.admit(io) else {
                        continue;
                    };
                    let acceptor = tls.acceptor();
                    let tx = tx.clone();
                    let timeout = gate.handshake_timeout;
                    let timeouts = gate.metrics.handshake_timeouts.clone();
                    tokio::spawn(async move {
                        match tokio::time::timeout(timeout, acceptor.accept(conn)).await {
                            Ok(Ok(stream)) => {
                                let _ = tx.send(Ok(TlsConn(stream))).await;
                            }
                            Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                            Err(_) => {
                                timeouts.increment(1);
                                tracing::debug!("TLS handshake timed out");
                            }
                        }
                    });
                }
                Err(e) => gate.accept_failed(&e).await,
            }
            if tx.is_closed() {
                return;
            }
        }
    })
}

/// A server-side TLS connection.
pub struct TlsConn<IO>(tokio_rustls::server::TlsStream<IO>);

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsConn<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

forward_async_write!(TlsConn<IO: AsyncRead, AsyncWrite>, 0);

impl<IO: Connected> Connected for TlsConn<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.0.get_ref().0.connect_info()
    }
}

/// A listener the gate can accept from.
pub trait Listener: Send + 'static {
    type Io: Send + 'static;
    fn accept(&mut self) -> impl Future<Output = io::Result<Self::Io>> + Send;
}

impl Listener for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&mut self) -> io::Result<Self::Io> {
        let (stream, _) = tokio::net::TcpListener::accept(self).await?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}

impl Listener for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept(&mut self) -> io::Result<Self::Io> {
        let (stream, _) = tokio::net::UnixListener::accept(self).await?;
        Ok(stream)
    }
}

/// A stream fed by a task through a small channel (the task ends when the stream is dropped).
fn async_stream_like<T, F, Fut>(body: F) -> tokio_stream::wrappers::ReceiverStream<T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(body(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// A connection under the handshake and idle timeouts, holding its slot under the cap until dropped.
pub struct Guarded<IO> {
    io: IO,
    _permit: OwnedSemaphorePermit,
    open: Gauge,
    received: u64,
    idle_timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    handshake_timeouts: Counter,
    idle_timeouts: Counter,
}

impl<IO> Guarded<IO> {
    fn new(io: IO, permit: OwnedSemaphorePermit, gate: &ConnectionGate) -> Self {
        Guarded {
            io,
            _permit: permit,
            open: gate.metrics.open.clone(),
            received: 0,
            idle_timeout: gate.idle_timeout,
            deadline: Box::pin(tokio::time::sleep(
                gate.handshake_timeout.min(gate.idle_timeout),
            )),
            handshake_timeouts: gate.metrics.handshake_timeouts.clone(),
            idle_timeouts: gate.metrics.idle_timeouts.clone(),
        }
    }
}

impl<IO> Drop for Guarded<IO> {
    fn drop(&mut self) {
        self.open.decrement(1.0);
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let n = (buf.filled().len() - before) as u64;
                if n > 0 {
                    this.received += n;
                    // Once the handshake bytes are in, every read pushes the idle deadline back.
                    if this.received >= HANDSHAKE_BYTES {
                        let next = tokio::time::Instant::now() + this.idle_timeout;
                        this.deadline.as_mut().reset(next);
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    let handshaking = this.received < HANDSHAKE_BYTES;
                    if handshaking {
                        this.handshake_timeouts.increment(1);
                    } else {
                        this.idle_timeouts.increment(1);
                    }
                    let what = if handshaking { "handshake" } else { "idle" };
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("connection closed by the {what} timeout"),
                    )))
                }
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }
}

forward_async_write!(Guarded<IO: AsyncWrite>, io);

impl<IO: Connected> Connected for Guarded<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}
