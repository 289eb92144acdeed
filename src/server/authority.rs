//! Any `:authority` on the gRPC listeners (SPEC section 6): a thin HTTP/2 frame layer on each accepted connection.
//!
//! gRPC C-core (Python, C++, Ruby, PHP, C#) sends the Unix socket's path as `:authority` (`tmp%2Farbiter.sock`),
//! grpc-java the raw path; h2, under tonic, resets every such stream with PROTOCOL_ERROR before any service sees
//! it. This layer reads the client's bytes before h2 does:
//!
//! - the 24-byte preface passes; a connection that does not start with it passes untouched from then on;
//! - frames other than HEADERS/CONTINUATION pass as they arrive (payloads are copied straight through);
//! - each header block (HEADERS plus its CONTINUATIONs) is decoded with an HPACK decoder that mirrors the
//!   client's dynamic table, until the connection's first `:authority` decides its mode (clients send one
//!   authority per connection):
//!   - valid (`localhost:50051`, a host name): the block passes as it came, and so does every later byte of the
//!     connection, untouched and undecoded, so ordinary clients pay nothing per call;
//!   - invalid (a socket path): that block and every later one are re-encoded as literals without indexing (so
//!     the server's table is never referenced again), with an invalid `:authority` replaced by `localhost`, and
//!     split into frames no larger than the default maximum frame size.
//!
//! Responses (server to client) are not touched. A block that does not decode closes the connection, as h2
//! would. Over TLS the layer sits inside the TLS stream.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// The client connection preface.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// SETTINGS_MAX_FRAME_SIZE as the server leaves it (16 KiB): re-encoded blocks are split to fit.
const MAX_FRAME: usize = 16_384;
/// The largest header block fragment buffered (h2 refuses far smaller header lists: 16 KiB decoded).
const MAX_BLOCK: usize = 64 * 1024;
/// The most frames (HEADERS and CONTINUATIONs) one header block may take.
const MAX_BLOCK_FRAMES: usize = 16;
/// The most bytes one header block may decode to: a block of references into the dynamic table cannot expand
/// past it (an "HPACK bomb" is refused, not decoded).
const MAX_DECODED: usize = 256 * 1024;
/// SETTINGS_HEADER_TABLE_SIZE the server allows the client's encoder (h2's default; never changed here).
const CLIENT_TABLE_SIZE: usize = 4_096;
/// Header blocks without any `:authority` after which a connection passes untouched.
const MAX_UNDECIDED_BLOCKS: u32 = 8;
/// What replaces an `:authority` that is not a valid URI authority.
const REPLACEMENT: &[u8] = b"localhost";

const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

enum Phase {
    /// Reading the preface.
    Preface,
    /// Reading frames.
    Frames,
    /// Not HTTP/2 with prior knowledge: everything passes.
    Transparent,
}

/// A header block being collected.
struct Block {
    stream: u32,
    end_stream: bool,
    fragment: Vec<u8>,
    /// The frames as received, passed on while no rewrite is needed.
    original: Vec<u8>,
    /// HEADERS and CONTINUATION frames so far.
    frames: usize,
}

/// An accepted connection whose request header blocks are read (and repaired) before h2 reads them.
pub struct AuthorityFix<IO> {
    io: IO,
    phase: Phase,
    /// Bytes read from the client, not yet handled.
    raw: BytesMut,
    /// Bytes ready for h2.
    out: BytesMut,
    /// Payload bytes of the current non-header frame still to pass.
    passing: usize,
    block: Option<Block>,
    decoder: loona_hpack::Decoder<'static>,
    /// Set at the first invalid `:authority`: every later block is re-encoded.
    rewriting: bool,
    /// Blocks passed without an `:authority` to decide the mode.
    undecided_blocks: u32,
    eof: bool,
}

impl<IO> AuthorityFix<IO> {
    pub fn new(io: IO) -> Self {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(CLIENT_TABLE_SIZE);
        AuthorityFix {
            io,
            phase: Phase::Preface,
            raw: BytesMut::new(),
            out: BytesMut::new(),
            passing: 0,
            block: None,
            decoder,
            rewriting: false,
            undecided_blocks: 0,
            eof: false,
        }
    }

    /// Handles as much of `raw` as possible; `Ok(true)` when something moved.
    fn process(&mut self) -> io::Result<bool> {
        match self.phase {
            Phase::Transparent => {
                let moved = !self.raw.is_empty();
                let raw = self.raw.split();
                self.out.unsplit(raw);
                Ok(moved)
            }
            Phase::Preface => {
                let n = self.raw.len().min(PREFACE.len());
                if self.raw[..n] != PREFACE[..n] {
                    self.phase = Phase::Transparent;
                    return Ok(true);
                }
                if n < PREFACE.len() {
                    return Ok(false);
                }
                let preface = self.raw.split_to(PREFACE.len());
                self.out.unsplit(preface);
                self.phase = Phase::Frames;
                Ok(true)
            }
            Phase::Frames => self.frame(),
        }
    }

    fn frame(&mut self) -> io::Result<bool> {
        if self.passing > 0 {
            let n = self.passing.min(self.raw.len());
            if n == 0 {
                return Ok(false);
            }
            let chunk = self.raw.split_to(n);
            self.out.unsplit(chunk);
            self.passing -= n;
            return Ok(true);
        }
        if self.raw.len() < 9 {
            return Ok(false);
        }
        let len = (usize::from(self.raw[0]) << 16)
            | (usize::from(self.raw[1]) << 8)
            | usize::from(self.raw[2]);
        let kind = self.raw[3];
        let flags = self.raw[4];
        let stream =
            u32::from_be_bytes([self.raw[5], self.raw[6], self.raw[7], self.raw[8]]) & 0x7fff_ffff;
        if kind != HEADERS && kind != CONTINUATION {
            if self.block.is_some() {
                return Err(protocol("a frame interrupted a header block"));
            }
            let header = self.raw.split_to(9);
            self.out.unsplit(header);
            self.passing = len;
            return Ok(true);
        }
        if len > MAX_FRAME {
            return Err(protocol("header frame larger than the maximum frame size"));
        }
        if self.raw.len() < 9 + len {
            return Ok(false);
        }
        let frame = self.raw.split_to(9 + len);
        let payload = &frame[9..];
        if kind == HEADERS {
            if self.block.is_some() {
                return Err(protocol("a HEADERS frame interrupted a header block"));
            }
            let fragment = headers_fragment(payload, flags)?;
            self.block = Some(Block {
                stream,
                end_stream: flags & END_STREAM != 0,
                fragment: fragment.to_vec(),
                original: frame.to_vec(),
                frames: 1,
            });
        } else {
            let Some(block) = self.block.as_mut() else {
                return Err(protocol("CONTINUATION without a header block"));
            };
            if block.stream != stream {
                return Err(protocol("CONTINUATION on another stream"));
            }
            block.fragment.extend_from_slice(payload);
            block.original.extend_from_slice(&frame);
            block.frames += 1;
            if block.fragment.len() > MAX_BLOCK || block.frames > MAX_BLOCK_FRAMES {
                return Err(protocol("header block too large"));
            }
        }
        if flags & END_HEADERS != 0 {
            if let Some(block) = self.block.take() {
                self.finish(block)?;
            }
        }
        Ok(true)
    }

    /// Decodes a complete block; passes it or re-encodes it.
    fn finish(&mut self, block: Block) -> io::Result<()> {
        let mut headers: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut decoded = 0usize;
        self.decoder
            .decode_with_cb(&block.fragment, |name, value| {
                decoded += name.len() + value.len() + 32;
                if decoded <= MAX_DECODED {
                    headers.push((name.into_owned(), value.into_owned()));
                }
            })
            .map_err(|e| protocol(&format!("header block does not decode: {e:?}")))?;
        if decoded > MAX_DECODED {
            return Err(protocol("header block decodes to more than 256 KiB"));
        }
        let mut invalid = false;
        for (name, value) in headers.iter_mut() {
            if name.as_slice() == b":authority"
                && http::uri::Authority::try_from(value.as_slice()).is_err()
            {
                *value = REPLACEMENT.to_vec();
                invalid = true;
            }
        }
        if invalid && !self.rewriting {
            tracing::debug!("replacing an invalid :authority with localhost on this connection");
            self.rewriting = true;
        }
        if !self.rewriting {
            self.out.extend_from_slice(&block.original);
            let seen_authority = headers
                .iter()
                .any(|(name, _)| name.as_slice() == b":authority");
            self.undecided_blocks += 1;
            if seen_authority || self.undecided_blocks >= MAX_UNDECIDED_BLOCKS {
                // A valid authority: the rest of the connection passes untouched.
                self.phase = Phase::Transparent;
            }
            return Ok(());
        }
        let mut encoded = Vec::with_capacity(block.fragment.len() + 64);
        for (name, value) in &headers {
            encode_literal(name, value, &mut encoded);
        }
        let mut chunks = encoded.chunks(MAX_FRAME).peekable();
        let mut first = true;
        // An empty block still needs its HEADERS frame.
        let empty: &[u8] = &[];
        let mut next = chunks.next().unwrap_or(empty);
        loop {
            let last = chunks.peek().is_none();
            let mut flags = if last { END_HEADERS } else { 0 };
            let kind = if first {
                if block.end_stream {
                    flags |= END_STREAM;
                }
                HEADERS
            } else {
                CONTINUATION
            };
            let len = next.len();
            self.out.put_u8((len >> 16) as u8);
            self.out.put_u8((len >> 8) as u8);
            self.out.put_u8(len as u8);
            self.out.put_u8(kind);
            self.out.put_u8(flags);
            self.out.put_u32(block.stream);
            self.out.extend_from_slice(next);
            first = false;
            match chunks.next() {
                Some(chunk) => next = chunk,
                None => break,
            }
        }
        Ok(())
    }
}

/// The header block fragment of a HEADERS payload, without padding and priority.
fn headers_fragment(payload: &[u8], flags: u8) -> io::Result<&[u8]> {
    let mut start = 0;
    let mut end = payload.len();
    if flags & PADDED != 0 {
        let pad = usize::from(*payload.first().ok_or_else(|| protocol("bad padding"))?);
        start = 1;
        end = end
            .checked_sub(pad)
            .filter(|e| *e >= start)
            .ok_or_else(|| protocol("bad padding"))?;
    }
    if flags & PRIORITY != 0 {
        start += 5;
    }
    if start > end {
        return Err(protocol("short HEADERS frame"));
    }
    Ok(&payload[start..end])
}

/// HPACK "literal header field without indexing, new name" (RFC 7541 section 6.2.2), no Huffman.
fn encode_literal(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    out.push(0x00);
    encode_length(name.len(), out);
    out.extend_from_slice(name);
    encode_length(value.len(), out);
    out.extend_from_slice(value);
}

/// An HPACK integer with a 7-bit prefix and the Huffman bit clear.
fn encode_length(mut n: usize, out: &mut Vec<u8>) {
    if n < 127 {
        out.push(n as u8);
        return;
    }
    out.push(127);
    n -= 127;
    while n >= 128 {
        out.push((n % 128) as u8 | 0x80);
        n /= 128;
    }
    out.push(n as u8);
}

fn protocol(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("HTTP/2: {what}"))
}

impl<IO: AsyncRead + Unpin> AsyncRead for AuthorityFix<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.out.is_empty() {
                let n = this.out.len().min(buf.remaining());
                buf.put_slice(&this.out[..n]);
                this.out.advance(n);
                return Poll::Ready(Ok(()));
            }
            if let Phase::Transparent = this.phase {
                if this.raw.is_empty() {
                    return Pin::new(&mut this.io).poll_read(cx, buf);
                }
            }
            // A payload being passed is read straight into the caller's buffer.
            if this.passing > 0 && this.raw.is_empty() {
                let limit = this.passing.min(buf.remaining());
                let mut sub = ReadBuf::new(buf.initialize_unfilled_to(limit));
                match Pin::new(&mut this.io).poll_read(cx, &mut sub) {
                    Poll::Ready(Ok(())) => {
                        let n = sub.filled().len();
                        buf.advance(n);
                        this.passing -= n;
                        return Poll::Ready(Ok(()));
                    }
                    other => return other,
                }
            }
            if this.process()? {
                continue;
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.io).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    if read.filled().is_empty() {
                        this.eof = true;
                    } else {
                        this.raw.extend_from_slice(read.filled());
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

super::limits::forward_async_write!(AuthorityFix<IO: AsyncWrite>, io);

impl<IO: Connected> Connected for AuthorityFix<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![
            (payload.len() >> 16) as u8,
            (payload.len() >> 8) as u8,
            payload.len() as u8,
            kind,
            flags,
        ];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn request_block(encoder: &mut loona_hpack::Encoder<'_>, authority: &[u8]) -> Vec<u8> {
        encoder.encode([
            (&b":method"[..], &b"POST"[..]),
            (b":scheme", b"http"),
            (b":path", b"/arbiter.v1.Authorizer/Authorize"),
            (b":authority", authority),
            (b"te", b"trailers"),
            (b"content-type", b"application/grpc"),
        ])
    }

    /// Runs bytes through the layer and decodes the header blocks h2 would see.
    async fn through(input: Vec<u8>) -> (Vec<u8>, Vec<Vec<(Vec<u8>, Vec<u8>)>>) {
        let mut fix = AuthorityFix::new(std::io::Cursor::new(input));
        let mut out = Vec::new();
        fix.read_to_end(&mut out).await.unwrap();
        let mut decoder = loona_hpack::Decoder::new();
        let mut blocks = Vec::new();
        let mut at = PREFACE.len();
        let mut pending: Vec<u8> = Vec::new();
        while at + 9 <= out.len() {
            let len = (usize::from(out[at]) << 16)
                | (usize::from(out[at + 1]) << 8)
                | usize::from(out[at + 2]);
            let (kind, flags) = (out[at + 3], out[at + 4]);
            let payload = &out[at + 9..at + 9 + len];
            if kind == HEADERS || kind == CONTINUATION {
                pending.extend_from_slice(
                    headers_fragment(payload, if kind == HEADERS { flags } else { 0 }).unwrap(),
                );
                if flags & END_HEADERS != 0 {
                    blocks.push(decoder.decode(&pending).unwrap());
                    pending.clear();
                }
            }
            at += 9 + len;
        }
        (out, blocks)
    }

    fn authority(block: &[(Vec<u8>, Vec<u8>)]) -> &[u8] {
        &block.iter().find(|(n, _)| n == b":authority").unwrap().1
    }

    #[tokio::test]
    async fn valid_authorities_pass_byte_for_byte() {
        let mut encoder = loona_hpack::Encoder::new();
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[]));
        for stream in [1, 3] {
            let block = request_block(&mut encoder, b"localhost:50051");
            input.extend(frame(HEADERS, END_HEADERS, stream, &block));
            input.extend(frame(0x0, END_STREAM, stream, &[0, 0, 0, 0, 2, 8, 1]));
        }
        let (out, blocks) = through(input.clone()).await;
        assert_eq!(out, input);
        assert_eq!(blocks.len(), 2);
    }

    #[tokio::test]
    async fn a_valid_first_authority_lets_the_connection_pass_undecoded() {
        let mut encoder = loona_hpack::Encoder::new();
        let mut input = PREFACE.to_vec();
        input.extend(frame(
            HEADERS,
            END_HEADERS,
            1,
            &request_block(&mut encoder, b"localhost"),
        ));
        // Not even HPACK: once the mode is decided nothing more is decoded.
        input.extend(frame(HEADERS, END_HEADERS, 3, &[0xff, 0xff, 0xff]));
        let mut fix = AuthorityFix::new(std::io::Cursor::new(input.clone()));
        let mut out = Vec::new();
        fix.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, input);
    }

    #[tokio::test]
    async fn socket_paths_become_localhost_on_every_later_block() {
        let mut encoder = loona_hpack::Encoder::new();
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[]));
        // The same invalid authority three times: the client's encoder refers to its table after the first.
        let authorities: [&[u8]; 4] = [
            b"tmp%2Farbiter.sock",
            b"/tmp/arbiter.sock",
            b"tmp%2Farbiter.sock",
            b"ok:1",
        ];
        for (i, a) in authorities.iter().enumerate() {
            let block = request_block(&mut encoder, a);
            // Split the second block over HEADERS + CONTINUATION, with padding on the HEADERS frame.
            if i == 1 {
                let (head, tail) = block.split_at(block.len() / 2);
                let mut padded = vec![3u8];
                padded.extend_from_slice(head);
                padded.extend_from_slice(&[0, 0, 0]);
                input.extend(frame(HEADERS, PADDED, 2 * i as u32 + 1, &padded));
                input.extend(frame(CONTINUATION, END_HEADERS, 2 * i as u32 + 1, tail));
            } else {
                input.extend(frame(
                    HEADERS,
                    END_HEADERS | END_STREAM,
                    2 * i as u32 + 1,
                    &block,
                ));
            }
        }
        let (_, blocks) = through(input).await;
        let seen: Vec<&[u8]> = blocks.iter().map(|b| authority(b)).collect();
        assert_eq!(
            seen,
            [&b"localhost"[..], b"localhost", b"localhost", b"ok:1"]
        );
        for block in &blocks {
            assert!(block
                .iter()
                .any(|(n, v)| n == b":path" && v == b"/arbiter.v1.Authorizer/Authorize"));
            assert!(block.iter().any(|(n, v)| n == b"te" && v == b"trailers"));
        }
    }

    #[tokio::test]
    async fn a_large_rewritten_block_is_split_into_frames() {
        let mut encoder = loona_hpack::Encoder::new();
        let mut input = PREFACE.to_vec();
        let big = vec![b'x'; 40_000];
        let block = encoder.encode([(&b":authority"[..], &b"/tmp/s"[..]), (b"x-big", &big)]);
        let chunks: Vec<&[u8]> = block.chunks(MAX_FRAME).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let flags = if i + 1 == chunks.len() {
                END_HEADERS
            } else {
                0
            };
            let kind = if i == 0 { HEADERS } else { CONTINUATION };
            input.extend(frame(kind, flags, 1, chunk));
        }
        let (out, blocks) = through(input).await;
        assert_eq!(blocks.len(), 1);
        assert_eq!(authority(&blocks[0]), b"localhost");
        assert!(blocks[0]
            .iter()
            .any(|(n, v)| n == b"x-big" && v.len() == 40_000));
        // Every frame fits the default maximum frame size.
        let mut at = PREFACE.len();
        while at + 9 <= out.len() {
            let len = (usize::from(out[at]) << 16)
                | (usize::from(out[at + 1]) << 8)
                | usize::from(out[at + 2]);
            assert!(len <= MAX_FRAME);
            at += 9 + len;
        }
    }

    #[tokio::test]
    async fn other_protocols_pass_untouched() {
        let input = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n".to_vec();
        let (out, _) = through(input.clone()).await;
        assert_eq!(out, input);
    }

    #[tokio::test]
    async fn hpack_bombs_and_continuation_floods_close_the_connection() {
        // One 4,000-byte header in the dynamic table, then a block of 1-byte references to it: 16 KiB of frame
        // that would decode to 64 MiB.
        let mut bomb = vec![0x40, 0x01, b'x'];
        bomb.push(0x7f);
        encode_length_tail(4000 - 127, &mut bomb);
        bomb.extend(std::iter::repeat_n(b'y', 4000));
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_HEADERS, 1, &bomb));
        let mut refs = Vec::new();
        refs.extend(std::iter::repeat_n(0xbe_u8, MAX_FRAME));
        input.extend(frame(HEADERS, END_HEADERS, 3, &refs));
        let mut fix = AuthorityFix::new(std::io::Cursor::new(input));
        let mut out = Vec::new();
        let err = fix.read_to_end(&mut out).await.unwrap_err();
        assert!(err.to_string().contains("256 KiB"), "{err}");

        // A header block that never ends: empty CONTINUATIONs.
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, 0, 1, &[0x82]));
        for _ in 0..100 {
            input.extend(frame(CONTINUATION, 0, 1, &[]));
        }
        let mut fix = AuthorityFix::new(std::io::Cursor::new(input));
        let err = fix.read_to_end(&mut Vec::new()).await.unwrap_err();
        assert!(err.to_string().contains("too large"), "{err}");

        // A header frame over the maximum frame size.
        let mut input = PREFACE.to_vec();
        input.extend(frame(HEADERS, END_HEADERS, 1, &vec![0x82; MAX_FRAME + 1]));
        let mut fix = AuthorityFix::new(std::io::Cursor::new(input));
        assert!(fix.read_to_end(&mut Vec::new()).await.is_err());
    }

    /// The continuation bytes of an HPACK integer whose prefix is already full.
    fn encode_length_tail(mut n: usize, out: &mut Vec<u8>) {
        while n >= 128 {
            out.push((n % 128) as u8 | 0x80);
            n /= 128;
        }
        out.push(n as u8);
    }

    #[test]
    fn lengths_use_the_hpack_integer_encoding() {
        for (n, expected) in [
            (5usize, vec![5u8]),
            (126, vec![126]),
            (127, vec![127, 0]),
            (1337, vec![127, 186, 9]),
        ] {
            let mut out = Vec::new();
            encode_length(n, &mut out);
            assert_eq!(out, expected, "{n}");
        }
    }
}
