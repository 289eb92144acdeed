//! The `Authorize` and `AuthorizeBatch` calls' protobuf on the hot path, read and written by hand with prost's wire
//! primitives.
//!
//! - **Reading.** [`decode_authorize`] reads an encoded `AuthorizeRequest` into a [`WireRequest`]: every string
//!   and every `google.protobuf.Struct` value in one [`AttrDoc`], without prost's `BTreeMap` of boxed values, a
//!   `String` per string, or a JSON map per `Struct`. It reads the form every protobuf library writes: each
//!   singular field at most once, each map key once (in any order), at most [`MAX_FAST_MAP_ENTRIES`] entries
//!   per map, each `Value` with one kind, no groups, nesting within [`MAX_ATTRIBUTE_DEPTH`] and finite
//!   numbers. Anything else (a field repeated, which protobuf merges or overrides; a truncated or ill-typed
//!   field; invalid UTF-8; a fault) is decoded by prost and validated by [`AuthorizeInput::from_proto`], as
//!   before. The fast reader is meant to give the same answer, errors included: `wire_tests` checks it against
//!   prost over random and damaged messages. A hostile message that is read fast up to a late anomaly is read
//!   twice (bounded by the message size limit). [`decode_batch`] reads an `AuthorizeBatchRequest` the same
//!   way, and turns its parts into the owned ones of [`BatchInput::from_raw`].
//! - **Writing.** [`AuthorizeReply`] writes an `AuthorizeResponse` from the verdict and the snapshot's revision,
//!   byte for byte what prost writes for [`convert::response`], without copying the policy ids and strings into
//!   a message first; [`BatchReply`] writes an `AuthorizeBatchResponse` of them. A reply with an explanation
//!   is built and encoded by prost.
//!
//! `super::unary` decodes and writes both around the handler for the usual request (one plain message), and
//! hands anything else to tonic's generic unary path through [`WireCodec`]; validation is the handler's either
//! way.

use std::sync::Arc;

use bytes::{Buf, BufMut};
use prost::encoding::{
    decode_key, decode_varint, encode_key, encode_varint, encoded_len_varint, key_len, skip_field,
    DecodeContext, WireType,
};
use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

use super::convert::{
    self, AuthorizeInput, BatchInput, Identify, RawBatch, RawCheck, MAX_BATCH_CHECKS,
};
use super::decide::Verdict;
use super::proto;
use crate::moment::Moment;
use crate::snapshot::Snapshot;
use super::wire_request::{
    Validated, WireEnvironment, WirePrincipal, WireRequest, WireResource,
};
use crate::attr::{AttrDoc, Span};
use crate::request::{RequestError, MAX_ATTRIBUTE_DEPTH};

/// A decoded request message, not yet validated: its parts as read by the fast reader (`R`, and
/// `environment.time`), or prost's message `P` for a message outside the fast reader's form.
#[derive(Debug)]
// The large variant is the common one: boxing it would cost an allocation on every call.
#[allow(clippy::large_enum_variant)]
pub enum WireMessage<R, P> {
    Read(R, Option<prost_types::Timestamp>),
    Decoded(Box<P>),
}

/// A decoded `AuthorizeRequest`.
pub type AuthorizeMessage = WireMessage<WireRequest, proto::AuthorizeRequest>;

/// A decoded `AuthorizeBatchRequest`.
pub type BatchMessage = WireMessage<RawBatch, proto::AuthorizeBatchRequest>;

/// A message's parts as the fast reader reads them, and `environment.time`.
type Parts<R> = (R, Option<prost_types::Timestamp>);

/// Decodes with the fast reader `read`, or with prost for a message outside its form. A message that does not
/// decode is `INVALID_ARGUMENT`, worded as the codec words it for every other message.
fn decode_with<R, P: Message + Default>(
    bytes: &[u8],
    read: fn(&[u8]) -> Read<Parts<R>>,
) -> Result<WireMessage<R, P>, Status> {
    match read(bytes) {
        Ok((parts, time)) => Ok(WireMessage::Read(parts, time)),
        Err(Fallback) => P::decode(bytes)
            .map(|msg| WireMessage::Decoded(Box::new(msg)))
            .map_err(|e| super::codec::decode_error::<P>(&e.to_string())),
    }
}

/// Decodes an `AuthorizeRequest` ([`decode_with`]).
pub fn decode_authorize(bytes: &[u8]) -> Result<AuthorizeMessage, Status> {
    decode_with(bytes, read_fast)
}

/// Decodes an `AuthorizeBatchRequest` ([`decode_with`]).
pub fn decode_batch(bytes: &[u8]) -> Result<BatchMessage, Status> {
    decode_with(bytes, read_batch)
}

/// `environment.time` checked as [`convert`] checks it.
fn checked_time(time: Option<prost_types::Timestamp>) -> Result<Option<Moment>, RequestError> {
    time.map(|t| convert::timestamp_from_proto("environment.time", &t))
        .transpose()
}

impl AuthorizeMessage {
    /// Validates the message as [`AuthorizeInput::from_proto`] validates prost's: the time first, then the
    /// rest ([`WireRequest::validate`]).
    pub fn validate(self, identify: Identify<'_>) -> Result<Validated, RequestError> {
        match self {
            WireMessage::Read(request, time) => request.validate(checked_time(time)?, identify),
            WireMessage::Decoded(msg) => {
                AuthorizeInput::from_proto(*msg, identify).map(Validated::Owned)
            }
        }
    }
}

impl BatchMessage {
    /// Validates the batch as [`BatchInput::from_proto`] validates prost's: the number of checks first, then
    /// the time, then the rest.
    pub fn validate(self, identify: Identify<'_>) -> Result<BatchInput, RequestError> {
        match self {
            WireMessage::Read(batch, time) => {
                convert::check_batch_size(batch.checks.len())?;
                BatchInput::from_raw(batch, checked_time(time)?, identify)
            }
            WireMessage::Decoded(msg) => BatchInput::from_proto(*msg, identify),
        }
    }
}

/// Whether the fast reader reads `bytes` itself (for tests counting both paths).
#[cfg(test)]
pub(crate) fn reads_fast(bytes: &[u8]) -> bool {
    read_fast(bytes).is_ok()
}

/// Whether the fast reader reads the batch `bytes` itself (for tests counting both paths).
#[cfg(test)]
pub(crate) fn batch_reads_fast(bytes: &[u8]) -> bool {
    read_batch(bytes).is_ok()
}

/// The message is outside the fast reader's form: prost reads it.
#[derive(Debug)]
struct Fallback;

type Read<T> = Result<T, Fallback>;

/// A cursor over one message's bytes.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.buf.is_empty()
    }

    fn key(&mut self) -> Read<(u32, WireType)> {
        decode_key(&mut self.buf).map_err(|_| Fallback)
    }

    fn varint(&mut self, wire_type: WireType) -> Read<u64> {
        expect(wire_type, WireType::Varint)?;
        decode_varint(&mut self.buf).map_err(|_| Fallback)
    }

    fn double(&mut self, wire_type: WireType) -> Read<f64> {
        expect(wire_type, WireType::SixtyFourBit)?;
        if self.buf.len() < 8 {
            return Err(Fallback);
        }
        Ok(self.buf.get_f64_le())
    }

    /// A length-delimited field's bytes, as a reader of their own.
    fn delimited(&mut self, wire_type: WireType) -> Read<Reader<'a>> {
        expect(wire_type, WireType::LengthDelimited)?;
        let len = decode_varint(&mut self.buf).map_err(|_| Fallback)?;
        if len > self.buf.len() as u64 {
            return Err(Fallback);
        }
        let (inner, rest) = self.buf.split_at(len as usize);
        self.buf = rest;
        Ok(Reader { buf: inner })
    }

    /// A string, stored in `doc`.
    fn string(&mut self, wire_type: WireType, doc: &mut AttrDoc) -> Read<Span> {
        let bytes = self.delimited(wire_type)?.buf;
        let s = std::str::from_utf8(bytes).map_err(|_| Fallback)?;
        doc.push_str(s).ok_or(Fallback)
    }

    /// An unknown field, skipped as prost skips it. Groups are left to prost, which counts their nesting; a
    /// varint, fixed or length-delimited field only checks prost's recursion budget, which a message read fast
    /// never exhausts (see the assertion under [`expect`]).
    fn skip(&mut self, tag: u32, wire_type: WireType) -> Read<()> {
        if matches!(wire_type, WireType::StartGroup | WireType::EndGroup) {
            return Err(Fallback);
        }
        skip_field(wire_type, tag, &mut self.buf, DecodeContext::default()).map_err(|_| Fallback)
    }
}

fn expect(got: WireType, want: WireType) -> Read<()> {
    if got == want {
        Ok(())
    } else {
        Err(Fallback)
    }
}

// Prost's recursion budget is 100 nested messages, and a merge fails only when none is left. Each attribute
// level spends three (a `Value`, its `Struct`, the map entry); above the attribute maps an `AuthorizeRequest`
// spends one (the principal, resource or environment) and an `AuthorizeBatchRequest` two (a check and its
// resource), so a value at depth d is merged with 99 - 3d left in a batch. What a value at the deepest level read
// fast may hold (an empty struct or list with unknown fields) spends two more, leaving 97 - 3d, which must stay
// at least 1. Past `MAX_ATTRIBUTE_DEPTH` the fast reader hands the message to prost, so no message it reads itself
// would exhaust prost's budget, which its skipping of unknown fields (with a fresh budget) relies on.
const _: () = assert!(3 * MAX_ATTRIBUTE_DEPTH + 4 <= 100);

/// Reads every field of the message in `r`: `read` reads a field it knows and returns `false` for one it does
/// not, which is skipped as prost skips it. A field numbered in `singular` may occur once: a second occurrence,
/// which protobuf merges or overrides, goes to prost.
fn read_fields<'a>(
    mut r: Reader<'a>,
    singular: &[u32],
    mut read: impl FnMut(u32, WireType, &mut Reader<'a>) -> Read<bool>,
) -> Read<()> {
    let mut seen = 0u64;
    while !r.done() {
        let (tag, wire_type) = r.key()?;
        if singular.contains(&tag) {
            let bit = 1u64 << tag;
            if seen & bit != 0 {
                return Err(Fallback);
            }
            seen |= bit;
        }
        if !read(tag, wire_type, &mut r)? {
            r.skip(tag, wire_type)?;
        }
    }
    Ok(())
}

/// The request's parts, its strings and attribute maps in one document, and `environment.time`.
fn read_fast(bytes: &[u8]) -> Read<Parts<WireRequest>> {
    let mut request = WireRequest {
        doc: AttrDoc::with_capacity(bytes.len()),
        ..WireRequest::default()
    };
    let mut time = None;
    read_fields(Reader { buf: bytes }, &[1, 2, 3, 4, 5], |tag, wire_type, r| {
        let doc = &mut request.doc;
        match tag {
            1 => request.principal = Some(read_principal(r.delimited(wire_type)?, doc)?),
            2 => request.action = r.string(wire_type, doc)?,
            3 => request.resource = Some(read_resource(r.delimited(wire_type)?, doc)?),
            4 => {
                let (environment, at) = read_environment(r.delimited(wire_type)?, doc)?;
                request.environment = Some(environment);
                time = at;
            }
            5 => request.explain = r.varint(wire_type)? != 0,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok((request, time))
}

/// The batch's parts as [`BatchInput::from_proto`] would build them, and `environment.time`.
fn read_batch(bytes: &[u8]) -> Read<Parts<RawBatch>> {
    let mut doc = AttrDoc::with_capacity(bytes.len());
    let mut batch = RawBatch {
        explain: Some(false),
        ..RawBatch::default()
    };
    let mut time = None;
    read_fields(Reader { buf: bytes }, &[1, 2, 4], |tag, wire_type, r| {
        match tag {
            1 => {
                let principal = read_principal(r.delimited(wire_type)?, &mut doc)?;
                batch.principal = Some(principal.to_raw(&doc));
            }
            2 => {
                let (environment, at) = read_environment(r.delimited(wire_type)?, &mut doc)?;
                batch.environment = Some(environment.to_raw(&doc));
                time = at;
            }
            // Past the limit the batch is refused; prost decodes it, so that a decoding error still comes
            // first, and nothing more is built here.
            3 if batch.checks.len() == MAX_BATCH_CHECKS => return Err(Fallback),
            3 => batch.checks.push(read_check(r.delimited(wire_type)?, &mut doc)?),
            4 => batch.explain = Some(r.varint(wire_type)? != 0),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok((batch, time))
}

fn read_check(r: Reader<'_>, doc: &mut AttrDoc) -> Read<RawCheck> {
    let mut check = RawCheck {
        action: Some(String::new()),
        resource: None,
    };
    read_fields(r, &[1, 2], |tag, wire_type, r| {
        match tag {
            1 => {
                let action = r.string(wire_type, doc)?;
                check.action = Some(doc.text(action).to_string());
            }
            2 => {
                let resource = read_resource(r.delimited(wire_type)?, doc)?;
                check.resource = Some(resource.to_raw(doc));
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(check)
}

fn read_principal(r: Reader<'_>, doc: &mut AttrDoc) -> Read<WirePrincipal> {
    let mut principal = WirePrincipal::default();
    read_fields(r, &[1, 3, 4], |tag, wire_type, r| {
        match tag {
            1 => principal.id = r.string(wire_type, doc)?,
            2 => principal.groups.push(r.string(wire_type, doc)?),
            3 => principal.attributes = Some(read_struct(r.delimited(wire_type)?, 1, doc)?),
            4 => principal.token = Some(r.string(wire_type, doc)?).filter(|t| !t.is_empty()),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(principal)
}

fn read_resource(r: Reader<'_>, doc: &mut AttrDoc) -> Read<WireResource> {
    let mut resource = WireResource::default();
    read_fields(r, &[1, 2, 3], |tag, wire_type, r| {
        match tag {
            1 => resource.uri = r.string(wire_type, doc)?,
            2 => resource.owner = r.string(wire_type, doc)?,
            3 => resource.attributes = Some(read_struct(r.delimited(wire_type)?, 1, doc)?),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(resource)
}

fn read_environment(
    r: Reader<'_>,
    doc: &mut AttrDoc,
) -> Read<(WireEnvironment, Option<prost_types::Timestamp>)> {
    let (mut environment, mut time) = (WireEnvironment::default(), None);
    read_fields(r, &[1, 2, 3, 4], |tag, wire_type, r| {
        match tag {
            1 => time = Some(read_timestamp(r.delimited(wire_type)?)?),
            2 => environment.source_ip = r.string(wire_type, doc)?,
            3 => environment.port = r.varint(wire_type)? as u32,
            4 => environment.attributes = Some(read_struct(r.delimited(wire_type)?, 1, doc)?),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok((environment, time))
}

fn read_timestamp(r: Reader<'_>) -> Read<prost_types::Timestamp> {
    let mut t = prost_types::Timestamp::default();
    read_fields(r, &[1, 2], |tag, wire_type, r| {
        match tag {
            1 => t.seconds = r.varint(wire_type)? as i64,
            2 => t.nanos = r.varint(wire_type)? as i32,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(t)
}

/// The most entries a map read fast may hold: evaluation finds a key in a document's map by going through its
/// entries, so a message with a larger map goes to prost, and its maps become JSON maps, looked up by hash.
const MAX_FAST_MAP_ENTRIES: usize = 32;

/// A `Struct` whose values sit at `depth` (1 for an attribute map's own keys), as a map node of `doc`; returns
/// its index. Its entries stay in the order they were written (the document gives JSON in key order); a key
/// written twice, which protobuf's map reading overrides, goes to prost.
fn read_struct(r: Reader<'_>, depth: usize, doc: &mut AttrDoc) -> Read<u32> {
    let map = doc.open_map();
    let (mut entries, mut max_key) = (0, None::<Span>);
    read_fields(r, &[], |tag, wire_type, r| {
        if tag != 1 {
            return Ok(false);
        }
        entries += 1;
        if entries > MAX_FAST_MAP_ENTRIES {
            return Err(Fallback);
        }
        let at = doc.next_node();
        let (mut key, mut has_value) = (None, false);
        read_fields(r.delimited(wire_type)?, &[1, 2], |tag, wire_type, entry| {
            match tag {
                1 => key = Some(entry.string(wire_type, doc)?),
                2 => {
                    read_value(entry.delimited(wire_type)?, depth, doc)?;
                    has_value = true;
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        // An entry without a value is a null, at this depth all the same.
        if !has_value {
            read_value(Reader { buf: &[] }, depth, doc)?;
        }
        // A missing key is the empty one.
        let key = key.unwrap_or_default();
        // A key past the greatest so far is new (in key order, every key is); any other is searched for among
        // the entries before it.
        if max_key.is_none_or(|max| doc.text(max) < doc.text(key)) {
            max_key = Some(key);
        } else if doc.keys(map + 1, at).any(|k| k == doc.text(key)) {
            return Err(Fallback);
        }
        doc.set_key(at, key);
        Ok(true)
    })?;
    doc.close(map);
    Ok(map)
}

/// A `Value` at `depth`, added to `doc`.
fn read_value(r: Reader<'_>, depth: usize, doc: &mut AttrDoc) -> Read<()> {
    if depth > MAX_ATTRIBUTE_DEPTH {
        return Err(Fallback);
    }
    let mut kinds = 0;
    read_fields(r, &[], |tag, wire_type, r| {
        match tag {
            1 => {
                r.varint(wire_type)?;
                doc.push_null();
            }
            2 => {
                let n = r.double(wire_type)?;
                if !n.is_finite() {
                    return Err(Fallback);
                }
                doc.push_number(n);
            }
            3 => {
                let s = r.string(wire_type, doc)?;
                doc.push_string(s);
            }
            4 => doc.push_bool(r.varint(wire_type)? != 0),
            5 => {
                read_struct(r.delimited(wire_type)?, depth + 1, doc)?;
            }
            6 => read_list(r.delimited(wire_type)?, depth + 1, doc)?,
            _ => return Ok(false),
        }
        // A second kind replaces or merges into the first: prost's to decide.
        kinds += 1;
        if kinds > 1 {
            return Err(Fallback);
        }
        Ok(true)
    })?;
    if kinds == 0 {
        doc.push_null();
    }
    Ok(())
}

fn read_list(r: Reader<'_>, depth: usize, doc: &mut AttrDoc) -> Read<()> {
    let list = doc.open_list();
    read_fields(r, &[], |tag, wire_type, r| {
        if tag != 1 {
            return Ok(false);
        }
        read_value(r.delimited(wire_type)?, depth, doc)?;
        Ok(true)
    })?;
    doc.close(list);
    Ok(())
}

/// An `AuthorizeResponse` to write.
#[derive(Debug)]
pub enum AuthorizeReply {
    /// Written by hand from the verdict (no explanation), naming the revision of the snapshot that decided.
    Verdict {
        verdict: Verdict,
        snapshot: Arc<Snapshot>,
    },
    /// Built and encoded by prost (an explanation, a token's failure).
    Message(proto::AuthorizeResponse),
}

const DECISION: u32 = 1;
const POLICIES: u32 = 2;
const REASON: u32 = 3;
const REVISION: u32 = 4;
const CALL_ID: u32 = 6;
const TIME: u32 = 7;
const UNDETERMINED_ALLOW: u32 = 9;
const SECONDS: u32 = 1;
const NANOS: u32 = 2;

impl AuthorizeReply {
    /// The reply to `verdict`, decided on `snapshot`.
    pub fn new(verdict: Verdict, snapshot: Arc<Snapshot>) -> AuthorizeReply {
        if explained(&verdict) {
            AuthorizeReply::Message(convert::response(&verdict, &snapshot.revision))
        } else {
            AuthorizeReply::Verdict { verdict, snapshot }
        }
    }

    /// The encoded length, as prost computes it.
    pub fn encoded_len(&self) -> usize {
        match self {
            AuthorizeReply::Message(m) => m.encoded_len(),
            AuthorizeReply::Verdict { verdict, snapshot } => {
                verdict_len(verdict, &snapshot.revision)
            }
        }
    }

    /// Writes the message, fields in number order, defaults left out: as prost writes it.
    pub fn encode(&self, buf: &mut impl BufMut) {
        match self {
            AuthorizeReply::Message(m) => m.encode_raw(buf),
            AuthorizeReply::Verdict { verdict, snapshot } => {
                encode_verdict(verdict, &snapshot.revision, buf)
            }
        }
    }
}

/// An `AuthorizeBatchResponse` to write.
#[derive(Debug)]
pub enum BatchReply {
    /// Written by hand from the verdicts (none explained), naming the revision of the snapshot that decided.
    Verdicts {
        verdicts: Vec<Verdict>,
        snapshot: Arc<Snapshot>,
    },
    /// Built and encoded by prost (an explanation, a token's failure).
    Message(proto::AuthorizeBatchResponse),
}

const RESULTS: u32 = 1;
const BATCH_REVISION: u32 = 2;

impl BatchReply {
    /// The reply to `verdicts`, decided on `snapshot`.
    pub fn new(verdicts: Vec<Verdict>, snapshot: Arc<Snapshot>) -> BatchReply {
        if verdicts.iter().any(explained) {
            BatchReply::Message(convert::batch_response(&verdicts, &snapshot.revision))
        } else {
            BatchReply::Verdicts { verdicts, snapshot }
        }
    }

    /// The encoded length, as prost computes it.
    pub fn encoded_len(&self) -> usize {
        match self {
            BatchReply::Message(m) => m.encoded_len(),
            BatchReply::Verdicts { verdicts, snapshot } => {
                let revision = &snapshot.revision;
                verdicts
                    .iter()
                    .map(|v| delimited_len(RESULTS, verdict_len(v, revision)))
                    .sum::<usize>()
                    + str_len(BATCH_REVISION, revision)
            }
        }
    }

    /// Writes the message as prost writes it: each result a nested `AuthorizeResponse`, then the revision.
    pub fn encode(&self, buf: &mut impl BufMut) {
        match self {
            BatchReply::Message(m) => m.encode_raw(buf),
            BatchReply::Verdicts { verdicts, snapshot } => {
                let revision = &snapshot.revision;
                for v in verdicts {
                    encode_key(RESULTS, WireType::LengthDelimited, buf);
                    encode_varint(verdict_len(v, revision) as u64, buf);
                    encode_verdict(v, revision, buf);
                }
                put_str(BATCH_REVISION, revision, buf);
            }
        }
    }
}

/// Whether the reply to `verdict` carries an explanation (which prost writes).
fn explained(verdict: &Verdict) -> bool {
    verdict.unauthenticated.is_some()
        || verdict.unmapped.is_some()
        || verdict.decision.explanation.is_some()
}

/// The length of an unexplained verdict's `AuthorizeResponse`.
fn verdict_len(verdict: &Verdict, revision: &str) -> usize {
    let d = &verdict.decision;
    key_len(DECISION)
        + 1
        + d.policies
            .iter()
            .map(|p| delimited_len(POLICIES, p.len()))
            .sum::<usize>()
        + str_len(REASON, d.reason.as_str())
        + str_len(REVISION, revision)
        + str_len(CALL_ID, &verdict.call_id)
        + delimited_len(TIME, timestamp_len(verdict.time))
        + d.undetermined_allow
            .iter()
            .map(|p| delimited_len(UNDETERMINED_ALLOW, p.len()))
            .sum::<usize>()
}

/// Writes an unexplained verdict's `AuthorizeResponse` (fields in number order, defaults left out).
fn encode_verdict(verdict: &Verdict, revision: &str, buf: &mut impl BufMut) {
    let d = &verdict.decision;
    let decision = if d.allowed {
        proto::Decision::Allow
    } else {
        proto::Decision::Deny
    };
    encode_key(DECISION, WireType::Varint, buf);
    encode_varint(decision as u64, buf);
    for p in &d.policies {
        put_item(POLICIES, p, buf);
    }
    put_str(REASON, d.reason.as_str(), buf);
    put_str(REVISION, revision, buf);
    put_str(CALL_ID, &verdict.call_id, buf);
    encode_key(TIME, WireType::LengthDelimited, buf);
    encode_varint(timestamp_len(verdict.time) as u64, buf);
    let (seconds, nanos) = timestamp_parts(verdict.time);
    if seconds != 0 {
        encode_key(SECONDS, WireType::Varint, buf);
        encode_varint(seconds as u64, buf);
    }
    if nanos != 0 {
        encode_key(NANOS, WireType::Varint, buf);
        encode_varint(nanos as u64, buf);
    }
    for p in &d.undetermined_allow {
        put_item(UNDETERMINED_ALLOW, p, buf);
    }
}

fn timestamp_parts(t: Moment) -> (i64, i32) {
    let t = convert::timestamp_to_proto(t);
    (t.seconds, t.nanos)
}

fn timestamp_len(t: Moment) -> usize {
    let (seconds, nanos) = timestamp_parts(t);
    let field = |tag, v: u64| {
        if v == 0 {
            0
        } else {
            key_len(tag) + encoded_len_varint(v)
        }
    };
    // Negative integers are written as ten-byte varints (their two's complement), as prost writes them.
    field(SECONDS, seconds as u64) + field(NANOS, nanos as i64 as u64)
}

fn delimited_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// A singular string field's length; an empty string is left out.
fn str_len(tag: u32, s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        delimited_len(tag, s.len())
    }
}

/// A singular string field; an empty string is left out.
fn put_str(tag: u32, s: &str, buf: &mut impl BufMut) {
    if !s.is_empty() {
        put_item(tag, s, buf);
    }
}

/// A string, written even when empty (an item of a repeated field).
fn put_item(tag: u32, s: &str, buf: &mut impl BufMut) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(s.len() as u64, buf);
    buf.put_slice(s.as_bytes());
}

/// A request message read by hand, and the reply written by hand: what `unary` decodes and writes, and
/// [`WireCodec`] for tonic's unary path.
pub trait WireCall: Send + 'static {
    type Reply: Send + 'static;
    fn decode(bytes: &[u8]) -> Result<Self, Status>
    where
        Self: Sized;
    fn reply_len(reply: &Self::Reply) -> usize;
    fn encode_reply(reply: &Self::Reply, buf: &mut impl BufMut);
}

impl WireCall for AuthorizeMessage {
    type Reply = AuthorizeReply;
    fn decode(bytes: &[u8]) -> Result<Self, Status> {
        decode_authorize(bytes)
    }
    fn reply_len(reply: &AuthorizeReply) -> usize {
        reply.encoded_len()
    }
    fn encode_reply(reply: &AuthorizeReply, buf: &mut impl BufMut) {
        reply.encode(buf)
    }
}

impl WireCall for BatchMessage {
    type Reply = BatchReply;
    fn decode(bytes: &[u8]) -> Result<Self, Status> {
        decode_batch(bytes)
    }
    fn reply_len(reply: &BatchReply) -> usize {
        reply.encoded_len()
    }
    fn encode_reply(reply: &BatchReply, buf: &mut impl BufMut) {
        reply.encode(buf)
    }
}

/// The codec of the `Authorize` and `AuthorizeBatch` routes on tonic's unary path, which `unary` hands what it does
/// not answer itself: a message `M` in, its reply out.
#[derive(Debug)]
pub struct WireCodec<M>(std::marker::PhantomData<fn() -> M>);

impl<M> Default for WireCodec<M> {
    fn default() -> Self {
        WireCodec(std::marker::PhantomData)
    }
}

impl<M: WireCall> Codec for WireCodec<M> {
    type Encode = M::Reply;
    type Decode = M;
    type Encoder = WireCodec<M>;
    type Decoder = WireCodec<M>;

    fn encoder(&mut self) -> Self::Encoder {
        WireCodec::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        WireCodec::default()
    }
}

impl<M: WireCall> Encoder for WireCodec<M> {
    type Item = M::Reply;
    type Error = Status;

    fn encode(&mut self, item: M::Reply, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.reserve(M::reply_len(&item));
        M::encode_reply(&item, buf);
        Ok(())
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

impl<M: WireCall> Decoder for WireCodec<M> {
    type Item = M;
    type Error = Status;

    /// Decodes the message where tonic decodes every other (so a unary body's extra messages are decoded, and
    /// a bad one refused, as before); validation is the handler's.
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<M>, Status> {
        let len = buf.remaining();
        // The receive buffer is contiguous: this shares it (no copy).
        let bytes = buf.copy_to_bytes(len);
        M::decode(&bytes).map(Some)
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}
