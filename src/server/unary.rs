//! The unary exchange of `Authorize` and `AuthorizeBatch` over HTTP/2, for the form every client sends: no
//! `grpc-encoding` other than `identity`, then the request body as one uncompressed message within the size
//! limit, then the end of the stream. The message is decoded from the received bytes (no copy when they came in
//! one DATA frame), decided, and answered with the reply as one body chunk and the trailers `grpc-status: 0`; an
//! error is a trailers-only response. This skips tonic's generic streaming decoder and encoder, which cost more
//! per call than deciding does.
//!
//! Everything else goes to tonic's `Grpc::unary`, with the bytes and the frame (or error) already read put back
//! in front of the rest of the body ([`Replay`]), so it is answered exactly as before:
//! - another `grpc-encoding` (tonic refuses a compression it does not accept);
//! - a compressed message, a message larger than the limit, a second message or stray bytes after the first,
//!   request trailers, a body error (a client's `CANCEL` included), or a stream that ends before one whole
//!   message. A first message that was whole is then decoded a second time, by tonic.
//!
//! As in tonic, a first message that does not decode is refused at once, without waiting for the end of the
//! stream, and a decision waits for the end of the stream. `tests/it/server_grpc_exchange.rs` sends both kinds
//! over a raw HTTP/2 client and checks the answers against tonic's.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, HeaderName};
use http_body::{Body as HttpBody, Frame};
use http_body_util::BodyExt;
use tonic::body::Body;
use tonic::server::{Grpc, UnaryService};
use tonic::Status;

use super::wire::{WireCall, WireCodec};

/// A gRPC message's prefix: the compressed flag and the length (big-endian `u32`).
const PREFIX: usize = 5;

/// A route's handler, which decides a decoded message synchronously (as a `UnaryService` too, for tonic).
pub(crate) trait Decide<M: WireCall> {
    fn decide(&self, message: M) -> Result<M::Reply, Status>;
}

/// `grpc-encoding`, the request's compression.
const GRPC_ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");

/// Serves one unary call of message `M` with `service`, decoding at most `max_message_bytes`.
pub(crate) async fn serve<M, S, B>(
    service: S,
    request: http::Request<B>,
    max_message_bytes: usize,
) -> http::Response<Body>
where
    M: WireCall,
    S: Decide<M> + UnaryService<M, Response = M::Reply> + Send,
    B: HttpBody + Unpin + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Unpin + Send,
{
    // tonic reads `identity` as no compression.
    if request
        .headers()
        .get(GRPC_ENCODING)
        .is_some_and(|encoding| encoding != "identity")
    {
        return by_tonic::<M, _, _>(service, request, max_message_bytes).await;
    }
    let (parts, mut body) = request.into_parts();
    let mut received = Received::Nothing;
    let mut message: Option<M> = None;
    let ended = loop {
        let frame = match body.frame().await {
            None => break Ended::Stream,
            Some(Ok(frame)) => frame,
            Some(Err(e)) => break Ended::Unusual(Some(Err(e))),
        };
        let mut data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                let frame = frame.map_data(|mut d| d.copy_to_bytes(d.remaining()));
                break Ended::Unusual(Some(Ok(frame)));
            }
        };
        // Shares the frame's buffer when it is `Bytes` (as it is from hyper).
        let data = data.copy_to_bytes(data.remaining());
        if data.is_empty() {
            continue;
        }
        if message.is_some() {
            // More after one whole message.
            break Ended::Unusual(Some(Ok(Frame::data(data))));
        }
        received.push(data, max_message_bytes);
        match progress(received.bytes(), max_message_bytes) {
            Progress::More(whole) => received.reserve(whole),
            Progress::Unusual => break Ended::Unusual(None),
            Progress::Whole => match M::decode(&received.bytes()[PREFIX..]) {
                Ok(m) => message = Some(m),
                Err(status) => return status.into_http(),
            },
        }
    };
    let message = match (ended, message) {
        (Ended::Stream, Some(message)) => message,
        (ended, _) => {
            let (next, rest) = match ended {
                Ended::Stream => (None, None),
                Ended::Unusual(next) => (next, Some(body)),
            };
            let replay = Replay {
                received: received.into_bytes(),
                next,
                rest,
            };
            let request = http::Request::from_parts(parts, replay);
            return by_tonic::<M, _, _>(service, request, max_message_bytes).await;
        }
    };
    // The request's bytes go before the decision, as tonic lets go of them (the budget has them back already).
    drop((parts, body, received));
    match service.decide(message) {
        Ok(reply) => respond::<M>(&reply),
        Err(status) => status.into_http(),
    }
}

/// How reading the request body ended.
enum Ended<E> {
    /// At the end of the stream.
    Stream,
    /// Early, at what tonic must answer: this frame or error (or none, when the bytes read already are).
    Unusual(Option<Result<Frame<Bytes>, E>>),
}

/// The reply to a decided call: `content-type: application/grpc`, the message, trailers `grpc-status: 0`.
fn respond<M: WireCall>(reply: &M::Reply) -> http::Response<Body> {
    // A `Vec` rather than a `BytesMut`: prost's varints are written a byte at a time, which a `Vec` inlines.
    let mut message = Vec::with_capacity(PREFIX + M::reply_len(reply));
    message.extend_from_slice(&[0; PREFIX]);
    M::encode_reply(reply, &mut message);
    // The prefix is the length written, as tonic writes it.
    let Ok(len) = u32::try_from(message.len() - PREFIX) else {
        let len = message.len() - PREFIX;
        return Status::resource_exhausted(format!(
            "Cannot return body with more than 4GB of data but got {len} bytes"
        ))
        .into_http();
    };
    message[1..PREFIX].copy_from_slice(&len.to_be_bytes());
    let mut response = http::Response::new(Body::new(OneMessage {
        message: Some(Bytes::from(message)),
        ended: false,
    }));
    *response.version_mut() = http::Version::HTTP_2;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    response
}

/// The call as tonic's generic unary path serves it.
async fn by_tonic<M, S, B>(
    service: S,
    request: http::Request<B>,
    max_message_bytes: usize,
) -> http::Response<Body>
where
    M: WireCall,
    S: UnaryService<M, Response = M::Reply> + Send,
    B: HttpBody + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    let mut grpc = Grpc::new(WireCodec::<M>::default())
        .apply_max_message_size_config(Some(max_message_bytes), None);
    grpc.unary(service, request).await
}

/// The request bytes read so far: none, one DATA frame's (shared, not copied), or several joined.
enum Received {
    Nothing,
    One(Bytes),
    Joined(BytesMut),
}

impl Received {
    /// Adds a DATA frame's bytes. Joining two frames allocates once for the whole message when its prefix is
    /// known by then, as tonic does.
    fn push(&mut self, data: Bytes, max_message_bytes: usize) {
        *self = match std::mem::replace(self, Received::Nothing) {
            Received::Nothing => Received::One(data),
            Received::One(first) => {
                let mut prefix = [0u8; PREFIX];
                let from_first = first.len().min(PREFIX);
                let from_data = (PREFIX - from_first).min(data.len());
                prefix[..from_first].copy_from_slice(&first[..from_first]);
                prefix[from_first..from_first + from_data].copy_from_slice(&data[..from_data]);
                let whole = match progress(&prefix[..from_first + from_data], max_message_bytes) {
                    Progress::More(whole) => whole,
                    Progress::Whole | Progress::Unusual => 0,
                };
                let mut joined = BytesMut::with_capacity((first.len() + data.len()).max(whole));
                joined.extend_from_slice(&first);
                joined.extend_from_slice(&data);
                Received::Joined(joined)
            }
            Received::Joined(mut joined) => {
                joined.extend_from_slice(&data);
                Received::Joined(joined)
            }
        }
    }

    /// Room for `whole` bytes in all, for a message whose prefix was still incomplete when frames were joined.
    fn reserve(&mut self, whole: usize) {
        if let Received::Joined(joined) = self {
            joined.reserve(whole.saturating_sub(joined.len()));
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Received::Nothing => &[],
            Received::One(bytes) => bytes,
            Received::Joined(bytes) => bytes,
        }
    }

    fn into_bytes(self) -> Bytes {
        match self {
            Received::Nothing => Bytes::new(),
            Received::One(bytes) => bytes,
            Received::Joined(bytes) => bytes.freeze(),
        }
    }
}

/// What the bytes received so far hold.
#[derive(Debug, PartialEq)]
enum Progress {
    /// Less than one message: the bytes it takes in all, once its prefix is read (else 0).
    More(usize),
    /// Exactly one uncompressed message within the limit.
    Whole,
    /// A compressed or oversized message, or more than one message: tonic's to answer.
    Unusual,
}

fn progress(bytes: &[u8], max_message_bytes: usize) -> Progress {
    if bytes.len() < PREFIX {
        return Progress::More(0);
    }
    let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
    if bytes[0] != 0 || len > max_message_bytes {
        return Progress::Unusual;
    }
    match (bytes.len() - PREFIX).cmp(&len) {
        std::cmp::Ordering::Less => Progress::More(PREFIX + len),
        std::cmp::Ordering::Equal => Progress::Whole,
        std::cmp::Ordering::Greater => Progress::Unusual,
    }
}

/// A request body given to tonic after part of it was read: the bytes received, then the frame (or error) that
/// made the call unusual, then the rest of the body.
struct Replay<B: HttpBody> {
    received: Bytes,
    next: Option<Result<Frame<Bytes>, B::Error>>,
    rest: Option<B>,
}

impl<B> HttpBody for Replay<B>
where
    B: HttpBody + Unpin,
    B::Error: Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        if !this.received.is_empty() {
            return Poll::Ready(Some(Ok(Frame::data(std::mem::take(&mut this.received)))));
        }
        if let Some(next) = this.next.take() {
            return Poll::Ready(Some(next));
        }
        let Some(rest) = this.rest.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(rest).poll_frame(cx) {
            Poll::Ready(None) => {
                this.rest = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(frame)) => Poll::Ready(Some(
                frame.map(|frame| frame.map_data(|mut d| d.copy_to_bytes(d.remaining()))),
            )),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.received.is_empty()
            && self.next.is_none()
            && self.rest.as_ref().is_none_or(HttpBody::is_end_stream)
    }
}

/// A reply body: one message, then the trailers of a successful call.
struct OneMessage {
    message: Option<Bytes>,
    ended: bool,
}

impl HttpBody for OneMessage {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if let Some(message) = self.message.take() {
            return Poll::Ready(Some(Ok(Frame::data(message))));
        }
        if self.ended {
            return Poll::Ready(None);
        }
        self.ended = true;
        let mut trailers = HeaderMap::with_capacity(1);
        trailers.insert(Status::GRPC_STATUS, HeaderValue::from_static("0"));
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(flag: u8, len: u32, body: &[u8]) -> Vec<u8> {
        let mut out = vec![flag];
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn progress_reads_the_prefix() {
        assert_eq!(progress(&[], 10), Progress::More(0));
        assert_eq!(progress(&[0, 0, 0], 10), Progress::More(0));
        assert_eq!(progress(&framed(0, 0, &[]), 10), Progress::Whole);
        assert_eq!(progress(&framed(0, 3, b"ab"), 10), Progress::More(8));
        assert_eq!(progress(&framed(0, 3, b"abc"), 10), Progress::Whole);
        assert_eq!(progress(&framed(0, 3, b"abcd"), 10), Progress::Unusual);
        assert_eq!(progress(&framed(1, 3, b"abc"), 10), Progress::Unusual);
        assert_eq!(progress(&framed(0, 11, b""), 10), Progress::Unusual);
        assert_eq!(progress(&framed(0, 10, b""), 10), Progress::More(15));
    }

    #[test]
    fn received_frames_join_in_order() {
        let mut received = Received::Nothing;
        assert_eq!(received.bytes(), b"");
        received.push(Bytes::from_static(b"ab"), 1000);
        assert!(matches!(received, Received::One(_)));
        received.push(Bytes::from_static(b"cd"), 1000);
        received.push(Bytes::from_static(b"e"), 1000);
        received.reserve(100);
        assert!(matches!(&received, Received::Joined(b) if b.capacity() >= 100));
        assert_eq!(received.bytes(), b"abcde");
        assert_eq!(&received.into_bytes()[..], b"abcde");
        // A prefix split across the two frames joined: room for the whole message at once.
        let mut received = Received::Nothing;
        received.push(Bytes::from_static(&[0, 0, 0]), 1000);
        received.push(Bytes::from_static(&[1, 44, b'x']), 1000);
        assert!(matches!(&received, Received::Joined(b) if b.capacity() >= 5 + 300));
        // Past the limit, no room is made for it.
        let mut received = Received::Nothing;
        received.push(Bytes::from_static(&[0, 0, 0]), 100);
        received.push(Bytes::from_static(&[1, 44, b'x']), 100);
        assert!(matches!(&received, Received::Joined(b) if b.capacity() < 300));
    }

    /// Polls `body` to its end, without a runtime (every body here is ready at once).
    fn frames<B: HttpBody + Unpin>(mut body: B) -> Vec<Result<Frame<B::Data>, B::Error>> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut out = Vec::new();
        while let Poll::Ready(Some(frame)) = Pin::new(&mut body).poll_frame(&mut cx) {
            out.push(frame);
        }
        assert!(body.is_end_stream());
        out
    }

    #[test]
    fn a_replay_gives_the_bytes_read_then_the_frame_then_the_rest() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-t", HeaderValue::from_static("1"));
        let replay = Replay {
            received: Bytes::from_static(b"abc"),
            next: Some(Ok(Frame::trailers(trailers.clone()))),
            rest: Some(http_body_util::Full::new(Bytes::from_static(b"de"))),
        };
        assert!(!replay.is_end_stream());
        let got = frames(replay);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].as_ref().unwrap().data_ref().unwrap(), &b"abc"[..]);
        assert_eq!(got[1].as_ref().unwrap().trailers_ref(), Some(&trailers));
        assert_eq!(got[2].as_ref().unwrap().data_ref().unwrap(), &b"de"[..]);
        // Nothing read and the stream ended: nothing to give.
        let empty: Replay<http_body_util::Full<Bytes>> = Replay {
            received: Bytes::new(),
            next: None,
            rest: None,
        };
        assert!(empty.is_end_stream());
        assert!(frames(empty).is_empty());
    }

    #[test]
    fn a_reply_is_one_message_then_the_trailers_of_success() {
        let body = OneMessage {
            message: Some(Bytes::from_static(b"reply")),
            ended: false,
        };
        let got = frames(body);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].as_ref().unwrap().data_ref().unwrap(), &b"reply"[..]);
        let trailers = got[1].as_ref().unwrap().trailers_ref().unwrap();
        assert_eq!(trailers.len(), 1);
        assert_eq!(trailers["grpc-status"], "0");
    }
}
