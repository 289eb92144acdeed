//! The unary exchange of `Authorize` and `AuthorizeBatch` byte by byte, over a raw HTTP/2 client: the server's
//! own path for one uncompressed message (`src/server/unary.rs`) must answer exactly as tonic's generic path,
//! which still answers everything else. Each request is sent as a client may send it: whole, split across DATA
//! frames, followed by a second message or by trailers, compressed, truncated, empty, too large, or malformed
//! and never ended.

use std::time::Duration;

use arbiter::server::proto::{
    self, AuthorizeBatchRequest, AuthorizeBatchResponse, AuthorizeResponse,
};
use bytes::Bytes;
use prost::Message;
use tonic::Code;

use crate::common::*;

const AUTHORIZE: &str = "/arbiter.v1.Authorizer/Authorize";
const AUTHORIZE_BATCH: &str = "/arbiter.v1.Authorizer/AuthorizeBatch";

/// What the server sent back, as it came off the wire.
#[derive(Debug)]
struct Answer {
    http_status: http::StatusCode,
    headers: http::HeaderMap,
    body: Vec<u8>,
    trailers: Option<http::HeaderMap>,
}

impl Answer {
    /// The gRPC status: from the trailers, or from the headers of a trailers-only answer.
    fn status(&self) -> tonic::Status {
        let map = self.trailers.as_ref().unwrap_or(&self.headers);
        tonic::Status::from_header_map(map).expect("a grpc-status")
    }

    /// The one reply message of a successful call.
    fn message<M: Message + Default>(&self) -> M {
        assert_eq!(self.status().code(), Code::Ok, "{self:?}");
        assert!(self.body.len() >= 5, "{self:?}");
        assert_eq!(self.body[0], 0, "an uncompressed reply");
        let len = u32::from_be_bytes(self.body[1..5].try_into().unwrap()) as usize;
        assert_eq!(self.body.len(), 5 + len, "exactly one reply message");
        M::decode(&self.body[5..]).unwrap()
    }

    /// The response headers other than `date`, which hyper adds with the current second.
    fn headers_but_date(&self) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<_> = self
            .headers
            .iter()
            .filter(|(name, _)| *name != "date")
            .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
            .collect();
        out.sort();
        out
    }
}

/// One message, gRPC-framed: the compressed flag, the length, the bytes.
fn framed(flag: u8, message: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// How the request body is sent.
struct Send {
    headers: Vec<(&'static str, &'static str)>,
    frames: Vec<Vec<u8>>,
    trailers: Option<http::HeaderMap>,
    /// Whether the stream is ended after the frames (or the trailers).
    end: bool,
}

impl Send {
    fn frames(frames: Vec<Vec<u8>>) -> Send {
        Send {
            headers: Vec::new(),
            frames,
            trailers: None,
            end: true,
        }
    }
}

/// Sends one call on a fresh HTTP/2 connection and reads the whole answer, within [`WAIT`].
async fn exchange(addr: std::net::SocketAddr, path: &str, send: Send) -> Answer {
    tokio::time::timeout(WAIT, async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (client, connection) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut client = client.ready().await.unwrap();
        let mut request = http::Request::post(format!("http://{addr}{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        for (name, value) in &send.headers {
            request = request.header(*name, *value);
        }
        let nothing = send.frames.is_empty() && send.trailers.is_none();
        let (response, mut body) = client
            .send_request(request.body(()).unwrap(), nothing && send.end)
            .unwrap();
        let count = send.frames.len();
        for (i, frame) in send.frames.into_iter().enumerate() {
            let last = i + 1 == count && send.trailers.is_none() && send.end;
            body.send_data(Bytes::from(frame), last).unwrap();
        }
        if let Some(trailers) = send.trailers {
            body.send_trailers(trailers).unwrap();
        }
        let response = response.await.unwrap();
        let (parts, mut received) = response.into_parts();
        let mut bytes = Vec::new();
        while let Some(chunk) = received.data().await {
            let chunk = chunk.unwrap();
            let _ = received.flow_control().release_capacity(chunk.len());
            bytes.extend_from_slice(&chunk);
        }
        let trailers = received.trailers().await.unwrap();
        // The request stream stays open until here when it is never ended.
        drop(body);
        Answer {
            http_status: parts.status,
            headers: parts.headers,
            body: bytes,
            trailers,
        }
    })
    .await
    .expect("the call is answered")
}

/// A request alice is allowed, decided at a fixed time.
fn allowed_request() -> proto::AuthorizeRequest {
    let mut r = request("alice", "ReadKey");
    r.environment = Some(proto::Environment {
        time: Some(prost_types::Timestamp {
            seconds: 1_800_000_000,
            nanos: 5,
        }),
        ..Default::default()
    });
    r
}

/// An allowed request of exactly `bytes` bytes, padded with a resource attribute.
fn sized_request(bytes: usize) -> proto::AuthorizeRequest {
    (0..bytes)
        .map(|pad| padded(allowed_request(), pad))
        .find(|r| r.encoded_len() == bytes)
        .expect("a padding that makes the size")
}

/// A request the policies deny.
fn denied_request() -> proto::AuthorizeRequest {
    let mut r = allowed_request();
    r.action = "DeleteKey".into();
    r
}

async fn harness() -> Harness {
    Harness::start_with(&[("p.yaml", &allow("p1", "ReadKey"))], |c| {
        c.max_message_bytes = 4096;
    })
    .await
}

/// The message without its call id, which differs from call to call.
fn without_call_id(mut r: AuthorizeResponse) -> AuthorizeResponse {
    assert!(!r.call_id.is_empty());
    r.call_id.clear();
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_is_answered_as_tonic_answers_it() {
    let h = harness().await;
    let addr = h.server.tcp_addr().unwrap();
    let message = allowed_request().encode_to_vec();
    let batch = AuthorizeBatchRequest {
        principal: allowed_request().principal,
        checks: vec![
            proto::Check {
                action: "ReadKey".into(),
                resource: allowed_request().resource,
            },
            proto::Check {
                action: "DeleteKey".into(),
                resource: allowed_request().resource,
            },
        ],
        environment: allowed_request().environment,
        explain: false,
    }
    .encode_to_vec();
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-extra", http::HeaderValue::from_static("1"));
    for (path, message) in [(AUTHORIZE, &message), (AUTHORIZE_BATCH, &batch)] {
        // Request trailers send the same call through tonic's generic path.
        let by_tonic = Send {
            trailers: Some(trailers.clone()),
            ..Send::frames(vec![framed(0, message)])
        };
        let tonic = exchange(addr, path, by_tonic).await;
        let fast = exchange(addr, path, Send::frames(vec![framed(0, message)])).await;
        // tonic reads `grpc-encoding: identity` as no compression.
        let identity = Send {
            headers: vec![("grpc-encoding", "identity")],
            ..Send::frames(vec![framed(0, message)])
        };
        let identity = exchange(addr, path, identity).await;
        for other in [&tonic, &identity] {
            assert_eq!(fast.http_status, other.http_status);
            assert_eq!(fast.headers_but_date(), other.headers_but_date());
            assert_eq!(fast.trailers, other.trailers, "{path}");
        }
        assert_eq!(
            fast.trailers.as_ref().map(|t| t.get("grpc-status")),
            Some(Some(&http::HeaderValue::from_static("0")))
        );
        if path == AUTHORIZE {
            let reply: AuthorizeResponse = fast.message();
            assert!(is_allow(&reply));
            let reply = without_call_id(reply);
            assert_eq!(reply, without_call_id(tonic.message()));
            assert_eq!(reply, without_call_id(identity.message()));
        } else {
            let mut replies: Vec<AuthorizeBatchResponse> =
                vec![fast.message(), tonic.message(), identity.message()];
            assert_eq!(replies[0].results.len(), 2);
            assert!(is_allow(&replies[0].results[0]) && !is_allow(&replies[0].results[1]));
            for r in replies
                .iter_mut()
                .flat_map(|reply| reply.results.iter_mut())
            {
                r.call_id.clear();
            }
            assert_eq!(replies[0], replies[1]);
            assert_eq!(replies[0], replies[2]);
        }
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_split_across_data_frames_reads_as_one() {
    let h = harness().await;
    let addr = h.server.tcp_addr().unwrap();
    let whole = framed(0, &allowed_request().encode_to_vec());
    let want = without_call_id(
        exchange(addr, AUTHORIZE, Send::frames(vec![whole.clone()]))
            .await
            .message(),
    );
    // Every cut of the message into two frames, then one byte per frame.
    let mut splits: Vec<Vec<Vec<u8>>> = (1..whole.len())
        .map(|cut| vec![whole[..cut].to_vec(), whole[cut..].to_vec()])
        .collect();
    splits.push(whole.iter().map(|b| vec![*b]).collect());
    for frames in splits {
        let cuts = frames.len();
        let got = exchange(addr, AUTHORIZE, Send::frames(frames)).await;
        assert_eq!(without_call_id(got.message()), want, "{cuts} frames");
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusual_requests_are_answered_as_tonic_answers_them() {
    let h = harness().await;
    let addr = h.server.tcp_addr().unwrap();
    let allowed = allowed_request().encode_to_vec();
    let denied = denied_request().encode_to_vec();
    // A string field whose length runs past the end of the message.
    let malformed = vec![0x12, 0x40, b'x'];
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-extra", http::HeaderValue::from_static("1"));

    // (what, path's request, status code, part of the message)
    let refused: Vec<(&str, Send, Code, &str)> = vec![
        (
            "an empty body",
            Send::frames(vec![]),
            Code::Internal,
            "Missing request message.",
        ),
        (
            "a truncated message",
            Send::frames(vec![framed(0, &allowed)[..20].to_vec()]),
            Code::Internal,
            "Unexpected EOF decoding stream.",
        ),
        (
            "a prefix cut short",
            Send::frames(vec![vec![0, 0, 0]]),
            Code::Internal,
            "Unexpected EOF decoding stream.",
        ),
        (
            "the compressed flag without grpc-encoding",
            Send::frames(vec![framed(1, &allowed)]),
            Code::Internal,
            "compressed-flag but no grpc-encoding was specified",
        ),
        (
            "an invalid compressed flag",
            Send::frames(vec![framed(2, &allowed)]),
            Code::Internal,
            "invalid compression flag: 2",
        ),
        (
            "a compression the server does not accept",
            Send {
                headers: vec![("grpc-encoding", "gzip")],
                ..Send::frames(vec![framed(1, &allowed)])
            },
            Code::Unimplemented,
            "Content is compressed with `gzip` which isn't supported",
        ),
        (
            "a message over the size limit",
            Send::frames(vec![framed(0, &vec![0u8; 5000])]),
            Code::ResourceExhausted,
            "request message larger than the limit of 4096 bytes",
        ),
        (
            "a malformed message",
            Send::frames(vec![framed(0, &malformed)]),
            Code::InvalidArgument,
            "AuthorizeRequest: ",
        ),
        (
            "a malformed message on a stream never ended",
            Send {
                end: false,
                ..Send::frames(vec![framed(0, &malformed)])
            },
            Code::InvalidArgument,
            "AuthorizeRequest: ",
        ),
        (
            "a malformed second message",
            Send::frames(vec![framed(0, &allowed), framed(0, &malformed)]),
            Code::InvalidArgument,
            "AuthorizeRequest: ",
        ),
        (
            "a compression the server does not accept, on an uncompressed message",
            Send {
                headers: vec![("grpc-encoding", "gzip")],
                ..Send::frames(vec![framed(0, &allowed)])
            },
            Code::Unimplemented,
            "Content is compressed with `gzip` which isn't supported",
        ),
        (
            "part of a message, then trailers",
            Send {
                trailers: Some(trailers.clone()),
                ..Send::frames(vec![framed(0, &allowed)[..20].to_vec()])
            },
            Code::Internal,
            "Missing request message.",
        ),
        (
            "trailers alone",
            Send {
                trailers: Some(trailers.clone()),
                ..Send::frames(vec![])
            },
            Code::Internal,
            "Missing request message.",
        ),
        (
            "stray bytes after the message",
            Send::frames(vec![framed(0, &allowed), vec![0, 0, 0]]),
            Code::Internal,
            "Unexpected EOF decoding stream.",
        ),
        (
            "stray bytes after the message, in its frame",
            Send::frames(vec![[framed(0, &allowed), vec![0]].concat()]),
            Code::Internal,
            "Unexpected EOF decoding stream.",
        ),
        (
            "a second message over the size limit",
            Send::frames(vec![framed(0, &allowed), framed(0, &vec![0u8; 5000])]),
            Code::ResourceExhausted,
            "request message larger than the limit of 4096 bytes",
        ),
        (
            "a compressed second message",
            Send::frames(vec![framed(0, &allowed), framed(1, &allowed)]),
            Code::Internal,
            "compressed-flag but no grpc-encoding was specified",
        ),
        (
            "a prefix over the size limit, split across frames",
            Send::frames(vec![vec![0, 0], vec![0, 0x20, 0], vec![1; 100]]),
            Code::ResourceExhausted,
            "request message larger than the limit of 4096 bytes",
        ),
        (
            "one byte over the size limit",
            Send::frames(vec![framed(0, &sized_request(4097).encode_to_vec())]),
            Code::ResourceExhausted,
            "request message larger than the limit of 4096 bytes",
        ),
    ];
    let batch_refused: Vec<(&str, Send, Code, &str)> = vec![
        (
            "a malformed batch",
            Send::frames(vec![framed(0, &malformed)]),
            Code::InvalidArgument,
            "AuthorizeBatchRequest: ",
        ),
        (
            "an empty batch body",
            Send::frames(vec![]),
            Code::Internal,
            "Missing request message.",
        ),
    ];
    let calls = refused.into_iter().map(|call| (AUTHORIZE, call)).chain(
        batch_refused
            .into_iter()
            .map(|call| (AUTHORIZE_BATCH, call)),
    );
    for (path, (what, send, code, message)) in calls {
        let answer = exchange(addr, path, send).await;
        assert_eq!(answer.http_status, http::StatusCode::OK, "{what}");
        assert!(
            answer.body.is_empty() && answer.trailers.is_none(),
            "{what}: trailers only: {answer:?}"
        );
        let status = answer.status();
        assert_eq!(status.code(), code, "{what}: {status:?}");
        assert!(status.message().contains(message), "{what}: {status:?}");
    }
    let gzip = exchange(
        addr,
        AUTHORIZE,
        Send {
            headers: vec![("grpc-encoding", "gzip")],
            ..Send::frames(vec![framed(1, &allowed)])
        },
    )
    .await;
    assert_eq!(
        gzip.headers
            .get("grpc-accept-encoding")
            .map(|v| v.as_bytes()),
        Some(&b"identity"[..])
    );

    // Answered, from the first message.
    let want = without_call_id(
        exchange(addr, AUTHORIZE, Send::frames(vec![framed(0, &allowed)]))
            .await
            .message(),
    );
    let answered: Vec<(&str, Send)> = vec![
        (
            "two messages in one frame",
            Send::frames(vec![[framed(0, &allowed), framed(0, &denied)].concat()]),
        ),
        (
            "two messages in two frames",
            Send::frames(vec![framed(0, &allowed), framed(0, &denied)]),
        ),
        (
            "a message and request trailers",
            Send {
                trailers: Some(trailers.clone()),
                ..Send::frames(vec![framed(0, &allowed)])
            },
        ),
        (
            "an empty frame after the message",
            Send::frames(vec![framed(0, &allowed), vec![]]),
        ),
    ];
    let at_the_limit = exchange(
        addr,
        AUTHORIZE,
        Send::frames(vec![framed(0, &sized_request(4096).encode_to_vec())]),
    )
    .await;
    assert!(
        is_allow(&at_the_limit.message()),
        "a message of exactly the limit is decided"
    );
    for (what, send) in answered {
        let answer = exchange(addr, AUTHORIZE, send).await;
        assert_eq!(without_call_id(answer.message()), want, "{what}");
    }
    // A message whose stream is never ended is waited for, as tonic waits: the call is still unanswered a moment
    // later (and ends at its deadline).
    let waiting = tokio::time::timeout(
        Duration::from_millis(300),
        exchange(
            addr,
            AUTHORIZE,
            Send {
                end: false,
                ..Send::frames(vec![framed(0, &allowed)])
            },
        ),
    )
    .await;
    assert!(
        waiting.is_err(),
        "answered before the stream ended: {waiting:?}"
    );
    h.stop().await;
}
