//! Tests of `wire` against prost: random `AuthorizeRequest`s (deep and wide attribute maps, numbers that are
//! not finite, timestamps out of range, tokens), some of them damaged (merged with another message, unknown
//! fields, truncated, a byte changed, attributes out of key order), must read exactly as prost and the proto
//! conversion read them; random verdicts must be written byte for byte as prost writes `convert::response`.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;

use prost::encoding::{encode_key, encode_varint, WireType};
use prost::Message;
use prost_types::value::Kind;
use proptest::prelude::*;
use proptest::test_runner::{RngAlgorithm, TestCaseError, TestRng, TestRunner};

use super::convert::{self, no_tokens, AuthorizeInput, BatchInput};
use super::decide::Verdict;
use super::token::TokenError;
use super::proto;
use super::wire::{decode_authorize, decode_batch, AuthorizeReply, BatchReply, WireMessage};
use super::wire_request::{Validated, WireRequest};
use crate::attr::Attr;
use crate::eval::{Decision, Reason};
use crate::moment::Moment;
use crate::ir::path::{ENVIRONMENT_RESERVED, PRINCIPAL_RESERVED, RESOURCE_RESERVED};
use crate::request::{
    FieldPath, RawPrincipal, Request, RequestError, MAX_ATTRIBUTE_DEPTH, MAX_STRING_BYTES,
};
use crate::request_ref::RequestView;

/// A runner of `cases` cases with a fixed seed: the tests assert how often each path is taken, which must not vary between runs.
fn runner(cases: u32) -> TestRunner {
    let config = ProptestConfig {
        cases,
        ..ProptestConfig::default()
    };
    TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
}

/// Text from outside any alphabet the code knows: empty, ASCII, dots, multi-byte characters.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-c]{1,3}",
        "[a-zA-Z0-9._:/*-]{1,12}",
        "\\PC{0,6}",
    ]
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        (-1000i64..1000).prop_map(|n| n as f64),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(-0.0),
        Just(9_007_199_254_740_993.0),
        (-100i32..100).prop_map(|n| n as f64 / 8.0),
    ]
}

fn leaf() -> impl Strategy<Value = Option<Kind>> {
    prop_oneof![
        Just(None),
        (0..3i32).prop_map(|n| Some(Kind::NullValue(n))),
        number().prop_map(|n| Some(Kind::NumberValue(n))),
        text().prop_map(|s| Some(Kind::StringValue(s))),
        any::<bool>().prop_map(|b| Some(Kind::BoolValue(b))),
    ]
}

fn value() -> BoxedStrategy<prost_types::Value> {
    let leaf = leaf().prop_map(|kind| prost_types::Value { kind });
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::btree_map(text(), inner.clone(), 0..4).prop_map(|fields| {
                prost_types::Value {
                    kind: Some(Kind::StructValue(prost_types::Struct { fields })),
                }
            }),
            prop::collection::vec(inner, 0..4).prop_map(|values| prost_types::Value {
                kind: Some(Kind::ListValue(prost_types::ListValue { values })),
            }),
        ]
    })
    .boxed()
}

/// A chain of `levels` structs and lists around a leaf or an empty struct or list: as deep as the limit, or
/// just past it.
fn chain() -> BoxedStrategy<prost_types::Value> {
    let depths = (MAX_ATTRIBUTE_DEPTH - 2)..(MAX_ATTRIBUTE_DEPTH + 3);
    let end = prop_oneof![
        3 => leaf(),
        1 => Just(Some(Kind::StructValue(prost_types::Struct::default()))),
        1 => Just(Some(Kind::ListValue(prost_types::ListValue::default()))),
    ];
    (depths, prop::collection::vec(any::<bool>(), MAX_ATTRIBUTE_DEPTH + 3), end).prop_map(
        |(levels, lists, kind)| {
            let mut v = prost_types::Value { kind };
            for list in lists.into_iter().take(levels) {
                let kind = if list {
                    Kind::ListValue(prost_types::ListValue { values: vec![v] })
                } else {
                    Kind::StructValue(prost_types::Struct {
                        fields: BTreeMap::from([("d".to_string(), v)]),
                    })
                };
                v = prost_types::Value { kind: Some(kind) };
            }
            v
        },
    )
    .boxed()
}

/// An attribute name: text, a name reserved in some part (`id`, `uri`, `time`, ...), or one just past the
/// length limit.
fn attribute_name() -> impl Strategy<Value = String> {
    let reserved: Vec<&str> = PRINCIPAL_RESERVED
        .iter()
        .chain(RESOURCE_RESERVED.iter())
        .chain(ENVIRONMENT_RESERVED.iter())
        .copied()
        .collect();
    prop_oneof![
        30 => text(),
        2 => prop::sample::select(reserved).prop_map(str::to_string),
        1 => Just("k".repeat(MAX_STRING_BYTES + 1)),
    ]
}

/// Attribute maps: small ones of any values, and wide ones around the fast reader's entry limit.
fn attributes() -> BoxedStrategy<Option<prost_types::Struct>> {
    let fields = prop_oneof![
        12 => prop::collection::btree_map(attribute_name(), prop_oneof![4 => value(), 1 => chain()], 0..5),
        1 => prop::collection::btree_map("[a-z]{1,4}", value(), 30..36),
    ];
    prop::option::weighted(0.6, fields.prop_map(|fields| prost_types::Struct { fields })).boxed()
}

/// A URI or owner: text, or one just past the length limit.
fn uri_text() -> impl Strategy<Value = String> {
    prop_oneof![30 => text(), 1 => Just("u".repeat(MAX_STRING_BYTES + 1))]
}

fn timestamp() -> impl Strategy<Value = prost_types::Timestamp> {
    let seconds = prop_oneof![
        1_500_000_000i64..1_900_000_000,
        Just(0),
        Just(-62_135_596_801),
        Just(253_402_300_799),
        any::<i64>(),
    ];
    let nanos = prop_oneof![Just(0), 0..1_000_000_000i32, any::<i32>()];
    (seconds, nanos).prop_map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos })
}

fn principal() -> BoxedStrategy<proto::Principal> {
    (
        text(),
        prop::collection::vec(text(), 0..3),
        attributes(),
        prop_oneof![
            16 => Just(String::new()),
            2 => text(),
            1 => Just("fail".to_string()),
            1 => Just("expired".to_string()),
        ],
    )
        .prop_map(|(id, groups, attributes, token)| proto::Principal {
            id,
            groups,
            attributes,
            token,
        })
        .boxed()
}

fn resource() -> BoxedStrategy<proto::Resource> {
    (uri_text(), uri_text(), attributes())
        .prop_map(|(uri, owner, attributes)| proto::Resource {
            uri,
            owner,
            attributes,
        })
        .boxed()
}

fn environment() -> BoxedStrategy<proto::Environment> {
    let source_ip = prop_oneof![
        Just(String::new()),
        Just("10.1.2.3".to_string()),
        Just("::1".to_string()),
        text()
    ];
    let port = prop_oneof![Just(0u32), 1..65536u32, any::<u32>()];
    (prop::option::of(timestamp()), source_ip, port, attributes())
        .prop_map(|(time, source_ip, port, attributes)| proto::Environment {
            time,
            source_ip,
            port,
            attributes,
        })
        .boxed()
}

fn request() -> BoxedStrategy<proto::AuthorizeRequest> {
    let (principal, resource, environment) = (principal(), resource(), environment());
    (
        prop::option::weighted(0.9, principal),
        text(),
        prop::option::weighted(0.8, resource),
        prop::option::of(environment),
        any::<bool>(),
    )
        .prop_map(
            |(principal, action, resource, environment, explain)| proto::AuthorizeRequest {
                principal,
                action,
                resource,
                environment,
                explain,
            },
        )
    .boxed()
}

/// What is done to the encoded message before it is read.
#[derive(Debug, Clone)]
enum Damage {
    None,
    /// Another message appended: protobuf merges the two.
    Merged(Box<proto::AuthorizeRequest>),
    /// An unknown field appended, of each wire type (a group included).
    Unknown(u32, u8),
    Truncated(usize),
    ByteChanged(usize, u8),
    /// The resource's attributes written in another key order.
    Reordered(Vec<usize>),
    /// One of the resource's attributes written again with another value, at any place among the others: the
    /// last one counts.
    Repeated(usize, usize, prost_types::Value),
    /// An attribute whose value is two values' encodings one after the other (protobuf replaces a scalar kind
    /// and merges a struct or list into one of the same kind).
    TwoKinds(String, prost_types::Value, prost_types::Value),
    /// A field holding a message written twice inside a message (protobuf merges the two): the resource's
    /// attributes, the environment's time, or an attribute's value.
    NestedRepeat(Nested),
}

#[derive(Debug, Clone)]
enum Nested {
    Attributes(prost_types::Struct),
    Time(i32),
    Value(String, prost_types::Value, prost_types::Value),
}

fn damage() -> BoxedStrategy<Damage> {
    prop_oneof![
        6 => Just(Damage::None),
        1 => request().prop_map(|m| Damage::Merged(Box::new(m))),
        1 => (6u32..40, 0u8..6).prop_map(|(t, w)| Damage::Unknown(t, w)),
        1 => any::<usize>().prop_map(Damage::Truncated),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Damage::ByteChanged(i, b)),
        2 => prop::collection::vec(any::<usize>(), 5).prop_map(Damage::Reordered),
        2 => (any::<usize>(), any::<usize>(), value()).prop_map(|(i, p, v)| Damage::Repeated(i, p, v)),
        1 => (text(), value(), value()).prop_map(|(k, a, b)| Damage::TwoKinds(k, a, b)),
        2 => prop_oneof![
            attributes().prop_map(|a| Nested::Attributes(a.unwrap_or_default())),
            any::<i32>().prop_map(Nested::Time),
            (text(), value(), value()).prop_map(|(k, a, b)| Nested::Value(k, a, b)),
        ]
        .prop_map(Damage::NestedRepeat),
    ]
    .boxed()
}

fn encode(msg: &proto::AuthorizeRequest, damage: &Damage) -> Vec<u8> {
    let mut bytes = msg.encode_to_vec();
    match damage {
        Damage::None => {}
        Damage::Merged(other) => other.encode(&mut bytes).unwrap(),
        Damage::Unknown(tag, wire) => unknown_field(*tag, *wire, &mut bytes),
        Damage::Truncated(at) => bytes.truncate(at % (bytes.len() + 1)),
        Damage::ByteChanged(at, b) => {
            if !bytes.is_empty() {
                let i = at % bytes.len();
                bytes[i] = *b;
            }
        }
        Damage::Reordered(order) => {
            bytes = with_entries(msg, |entries| {
                let n = entries.len();
                for (i, pick) in order.iter().enumerate() {
                    if n > 1 {
                        entries.swap(i % n, pick % n);
                    }
                }
            })
        }
        Damage::Repeated(at, position, value) => {
            let keys: Vec<String> = msg
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter().flat_map(|a| a.fields.keys().cloned()))
                .collect();
            if !keys.is_empty() {
                let key = keys[at % keys.len()].clone();
                bytes = with_entries(msg, |entries| {
                    let position = position % (entries.len() + 1);
                    entries.insert(position, entry(&key, &value.encode_to_vec()))
                });
            }
        }
        Damage::TwoKinds(key, a, b) => {
            let mut both = a.encode_to_vec();
            both.extend(b.encode_to_vec());
            bytes = with_entries(msg, |entries| entries.push(entry(key, &both)));
        }
        Damage::NestedRepeat(Nested::Attributes(more)) => {
            bytes = with_resource_tail(msg, |tail| {
                prost::encoding::message::encode(3, more, tail)
            })
        }
        Damage::NestedRepeat(Nested::Value(key, a, b)) => {
            // One entry whose field 2 (the value) is written twice.
            let mut inner = Vec::new();
            prost::encoding::string::encode(1, key, &mut inner);
            prost::encoding::message::encode(2, a, &mut inner);
            prost::encoding::message::encode(2, b, &mut inner);
            let mut one = Vec::new();
            encode_key(1, WireType::LengthDelimited, &mut one);
            encode_varint(inner.len() as u64, &mut one);
            one.extend(inner);
            bytes = with_entries(msg, |entries| entries.push(one));
        }
        Damage::NestedRepeat(Nested::Time(nanos)) => {
            let mut without = msg.clone();
            let mut environment = without.environment.take().unwrap_or_default();
            let more = prost_types::Timestamp {
                seconds: 0,
                nanos: *nanos,
            };
            let mut env_bytes = environment.encode_to_vec();
            prost::encoding::message::encode(1, &more, &mut env_bytes);
            environment.time = None;
            bytes = without.encode_to_vec();
            encode_key(4, WireType::LengthDelimited, &mut bytes);
            encode_varint(env_bytes.len() as u64, &mut bytes);
            bytes.extend(env_bytes);
        }
    }
    bytes
}

/// The message with `tail` written at the end of its resource (a resource added when it has none).
fn with_resource_tail(msg: &proto::AuthorizeRequest, tail: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut without = msg.clone();
    let resource = without.resource.take().unwrap_or_default();
    let mut resource_bytes = resource.encode_to_vec();
    tail(&mut resource_bytes);
    let mut bytes = without.encode_to_vec();
    encode_key(3, WireType::LengthDelimited, &mut bytes);
    encode_varint(resource_bytes.len() as u64, &mut bytes);
    bytes.extend(resource_bytes);
    bytes
}

/// An unknown field `tag` of wire type `wire` (a group included), appended.
fn unknown_field(tag: u32, wire: u8, bytes: &mut Vec<u8>) {
    let wire_type = WireType::try_from(u64::from(wire)).unwrap();
    encode_key(tag, wire_type, bytes);
    match wire_type {
        WireType::Varint => encode_varint(300, bytes),
        WireType::SixtyFourBit => bytes.extend_from_slice(&[7; 8]),
        WireType::ThirtyTwoBit => bytes.extend_from_slice(&[7; 4]),
        WireType::LengthDelimited => {
            encode_varint(3, bytes);
            bytes.extend_from_slice(b"abc");
        }
        WireType::StartGroup => encode_key(tag, WireType::EndGroup, bytes),
        WireType::EndGroup => {}
    }
}

/// One entry of a Struct (its field 1), as a one-entry Struct's encoding, with the value's bytes as given.
fn entry(key: &str, value: &[u8]) -> Vec<u8> {
    let mut inner = Vec::new();
    prost::encoding::string::encode(1, &key.to_string(), &mut inner);
    encode_key(2, WireType::LengthDelimited, &mut inner);
    encode_varint(value.len() as u64, &mut inner);
    inner.extend_from_slice(value);
    let mut out = Vec::new();
    encode_key(1, WireType::LengthDelimited, &mut out);
    encode_varint(inner.len() as u64, &mut out);
    out.extend(inner);
    out
}

/// The message with its resource attributes' entries changed by `change` (each entry is a one-entry Struct's
/// encoding; a Struct is the concatenation of its entries), and a resource added when it has none.
fn with_entries(msg: &proto::AuthorizeRequest, change: impl FnOnce(&mut Vec<Vec<u8>>)) -> Vec<u8> {
    let mut without = msg.clone();
    let mut resource = without.resource.take().unwrap_or_default();
    let mut entries: Vec<Vec<u8>> = resource
        .attributes
        .take()
        .map(|a| a.fields)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            prost_types::Struct {
                fields: BTreeMap::from([(k, v)]),
            }
            .encode_to_vec()
        })
        .collect();
    change(&mut entries);
    let mut resource_bytes = resource.encode_to_vec();
    encode_key(3, WireType::LengthDelimited, &mut resource_bytes);
    encode_varint(entries.iter().map(Vec::len).sum::<usize>() as u64, &mut resource_bytes);
    resource_bytes.extend(entries.concat());
    let mut bytes = without.encode_to_vec();
    encode_key(3, WireType::LengthDelimited, &mut bytes);
    encode_varint(resource_bytes.len() as u64, &mut bytes);
    bytes.extend(resource_bytes);
    bytes
}

/// Identity as the tests see it: the token `fail` is refused as invalid input, the token `expired` leaves a
/// stand-in principal and a cause (as the server's does), and any other is left for validation to refuse.
fn identify(p: &mut RawPrincipal) -> Result<Option<TokenError>, RequestError> {
    match p.token.as_deref() {
        Some("fail") => Err(RequestError::new("principal.token", "refused by the test")),
        Some("expired") => {
            *p = RawPrincipal {
                id: Some("-".into()),
                attributes: Some(Default::default()),
                ..RawPrincipal::default()
            };
            Ok(Some(TokenError::Expired))
        }
        _ => no_tokens(p),
    }
}

/// Prost's message, a decoding error worded as the codec words it.
fn prost_decode<P: Message + Default>(bytes: &[u8]) -> Result<P, String> {
    P::decode(bytes)
        .map_err(|e| super::codec::decode_error::<P>(&e.to_string()).message().to_string())
}

/// The reference: prost's message and the proto conversion, errors worded as the codec words them.
fn reference(bytes: &[u8]) -> Result<AuthorizeInput, String> {
    let msg = prost_decode::<proto::AuthorizeRequest>(bytes)?;
    AuthorizeInput::from_proto(msg, &identify).map_err(|e| format!("{}: {}", e.field, e.message))
}

/// The fast reader and its validation.
fn fast_validated(bytes: &[u8]) -> Result<Validated, String> {
    decode_authorize(bytes)
        .map_err(|status| status.message().to_string())?
        .validate(&identify)
        .map_err(|e| format!("{}: {}", e.field, e.message))
}

fn fast(bytes: &[u8]) -> Result<AuthorizeInput, String> {
    fast_validated(bytes).map(Validated::into_input)
}

/// Each attribute map the fast reader read reads as the proto conversion's map of prost's message, valid or not.
fn maps_read_as(read: &WireRequest, msg: &proto::AuthorizeRequest) -> Result<(), TestCaseError> {
    let maps = [
        (
            read.principal.as_ref().and_then(|p| p.attributes),
            msg.principal.as_ref().and_then(|p| p.attributes.clone()),
        ),
        (
            read.resource.as_ref().and_then(|r| r.attributes),
            msg.resource.as_ref().and_then(|r| r.attributes.clone()),
        ),
        (
            read.environment.as_ref().and_then(|e| e.attributes),
            msg.environment.as_ref().and_then(|e| e.attributes.clone()),
        ),
    ];
    for (at, sent) in maps {
        prop_assert_eq!(at.is_some(), sent.is_some());
        if let (Some(at), Some(sent)) = (at, sent) {
            let want = convert::struct_to_json(&FieldPath::Root("attributes"), sent)
                .map_err(|e| TestCaseError::fail(format!("read fast, but {e:?}")))?;
            same_attr(Attr::Doc(read.doc.get(at)), Attr::Map(&want))?;
        }
    }
    Ok(())
}

/// Evaluation reads the same attributes from `view` (decided from the document) as from the owned request:
/// every key `get` finds, what it finds (shape, items, entries, recursively), and nothing else.
fn reads_as(view: RequestView<'_>, owned: &Request) -> Result<(), TestCaseError> {
    let maps = [
        (view.principal_attributes, &owned.principal.attributes),
        (view.resource_attributes, &owned.resource.attributes),
        (view.environment_attributes, &owned.environment.attributes),
    ];
    for (read, want) in maps {
        match read {
            Some(read) => same_attr(read, Attr::Map(want))?,
            None => prop_assert!(want.is_empty()),
        }
    }
    Ok(())
}

fn same_attr(read: Attr<'_>, want: Attr<'_>) -> Result<(), TestCaseError> {
    prop_assert_eq!(read.shape(), want.shape());
    prop_assert_eq!(read.is_list(), want.is_list());
    prop_assert_eq!(read.is_map(), want.is_map());
    prop_assert_eq!(read.items().count(), want.items().count());
    for (r, w) in read.items().zip(want.items()) {
        same_attr(r, w)?;
    }
    prop_assert_eq!(read.entries().count(), want.entries().count());
    for (key, w) in want.entries() {
        let r = read.get(key);
        prop_assert!(r.is_some(), "{key:?} is not found");
        same_attr(r.unwrap(), w)?;
    }
    for (key, _) in read.entries() {
        prop_assert!(want.get(key).is_some(), "{key:?} is found but not sent");
    }
    prop_assert_eq!(read.to_json(), want.to_json());
    Ok(())
}

/// Policies that read attributes under the keys "a", "b" and "c", with operators of every kind, allow and
/// deny (a deny guarded by `exists`, so that it bites only on a present attribute), and `${...}` references into
/// the attributes.
const ATTRIBUTE_POLICIES: &str = r#"
kind: Policy
id: eq
effect: allow
actions: ["*"]
resources: ["*"]
conditions: [{path: resource.a, op: equals, values: ["b", "a", 1, true]}]
---
kind: Policy
id: nested
effect: allow
actions: ["*"]
resources: ["*"]
conditions: [{path: resource.b.c, op: exists}]
---
kind: Policy
id: all
effect: deny
actions: ["*"]
resources: ["*"]
conditions: [{path: resource.c, op: exists}, {path: resource.c, op: contains_all, values: ["a", "b"]}]
---
kind: Policy
id: prefix
effect: allow
actions: ["*"]
resources: ["*"]
conditions: [{path: principal.a, op: starts_with, values: ["a", "c"]}]
---
kind: Policy
id: flag
effect: deny
actions: ["*"]
resources: ["*"]
conditions: [{path: environment.b, op: exists}, {path: environment.b, op: is_true}]
---
kind: Policy
id: reference
effect: allow
actions: ["*"]
resources: ["*"]
conditions: [{path: resource.b, op: equals, values: ["${principal.b}", "${environment.a.a}"]}]
---
kind: Policy
id: number
effect: deny
actions: ["*"]
resources: ["*"]
conditions: [{path: principal.c, op: exists}, {path: principal.c, op: lt, values: [0]}]
---
kind: Policy
id: suffix
effect: allow
actions: ["*"]
resources: ["*"]
conditions: [{path: environment.a, op: ends_with, values: ["b"]}, {path: resource.a, op: exists}]
"#;

/// The snapshot of [`ATTRIBUTE_POLICIES`], each attached to everyone.
fn attribute_snapshot() -> crate::snapshot::Snapshot {
    let mut text = ATTRIBUTE_POLICIES.to_string();
    for id in ["eq", "nested", "all", "prefix", "flag", "reference", "number", "suffix"] {
        text.push_str(&format!(
            "---\nkind: PolicyAttachment\nid: {id}-all\npolicy: {id}\nprincipal_selector: {{}}\n"
        ));
    }
    let set = crate::load::SourceSet::from_files([(std::path::PathBuf::from("p.yaml"), text)]);
    crate::compile::build(&set).unwrap()
}

/// The request as JSON text: the attribute maps in their order.
fn text_of(r: &Result<AuthorizeInput, String>) -> Result<String, String> {
    r.as_ref()
        .map(|i| format!("{} {} {:?}", i.request.to_json(), i.explain, i.unauthenticated))
        .map_err(Clone::clone)
}

#[test]
fn the_fast_reader_reads_as_prost_and_the_proto_conversion() {
    let mut runner = runner(3000);
    let (fast_read, handed_over, decided, reordered_read) =
        (Cell::new(0), Cell::new(0), Cell::new(0), Cell::new(0));
    let from_document = Cell::new(0);
    let count = |c: &Cell<usize>| c.set(c.get() + 1);
    runner
        .run(&(request(), damage()), |(msg, damage)| {
            let bytes = encode(&msg, &damage);
            let want = reference(&bytes);
            if let (Ok(WireMessage::Read(read, _)), Ok(msg)) = (
                decode_authorize(&bytes),
                prost_decode::<proto::AuthorizeRequest>(&bytes),
            ) {
                maps_read_as(&read, &msg)?;
            }
            let validated = fast_validated(&bytes);
            if let (Ok(Validated::Wire(input)), Ok(want)) = (&validated, &want) {
                count(&from_document);
                reads_as(input.view(), &want.request)?;
            }
            let got = validated.map(Validated::into_input);
            prop_assert_eq!(text_of(&got), text_of(&want));
            prop_assert_eq!(got.is_ok(), want.is_ok());
            if let (Ok(g), Ok(w)) = (&got, &want) {
                prop_assert_eq!(g, w);
            }
            if super::wire::reads_fast(&bytes) {
                count(&fast_read);
                if matches!(damage, Damage::Reordered(_)) {
                    count(&reordered_read);
                }
            } else {
                count(&handed_over);
            }
            if got.is_ok() {
                count(&decided);
            }
            Ok(())
        })
        .unwrap();
    // Both paths, valid requests and out-of-order maps must all have been exercised (with the fixed seed:
    // 1,195 read fast, 1,805 handed to prost, 293 valid, 200 reordered and read fast, 204 valid and decided
    // from the document).
    let (fast_read, handed_over, decided, reordered_read) = (
        fast_read.get(),
        handed_over.get(),
        decided.get(),
        reordered_read.get(),
    );
    assert!(fast_read >= 600, "{fast_read} read fast");
    assert!(handed_over >= 300, "{handed_over} handed to prost");
    assert!(decided >= 200, "{decided} valid");
    assert!(reordered_read >= 100, "{reordered_read} reordered and read fast");
    let from_document = from_document.get();
    assert!(from_document >= 150, "{from_document} valid and decided from the document");
}

/// Attribute values over a few keys and scalars, so that the policies of [`ATTRIBUTE_POLICIES`] find them.
fn small_value() -> BoxedStrategy<prost_types::Value> {
    let leaf = prop_oneof![
        Just(None),
        Just(Some(Kind::NullValue(0))),
        prop_oneof![Just(-1.0), Just(0.0), Just(1.0), Just(2.5)].prop_map(|n| Some(Kind::NumberValue(n))),
        "[abc]{1,2}".prop_map(|s| Some(Kind::StringValue(s))),
        any::<bool>().prop_map(|b| Some(Kind::BoolValue(b))),
    ]
    .prop_map(|kind| prost_types::Value { kind });
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            small_struct(inner.clone()).prop_map(|s| prost_types::Value {
                kind: Some(Kind::StructValue(s)),
            }),
            prop::collection::vec(inner, 0..3).prop_map(|values| prost_types::Value {
                kind: Some(Kind::ListValue(prost_types::ListValue { values })),
            }),
        ]
    })
    .boxed()
}

fn small_struct(
    values: impl Strategy<Value = prost_types::Value>,
) -> impl Strategy<Value = prost_types::Struct> {
    prop::collection::btree_map("[abc]", values, 0..4)
        .prop_map(|fields| prost_types::Struct { fields })
}

/// Requests whose attribute maps hold what [`ATTRIBUTE_POLICIES`] read, some with their entries out of order.
fn attribute_request() -> BoxedStrategy<(proto::AuthorizeRequest, bool)> {
    let attributes = || prop::option::weighted(0.9, small_struct(small_value()));
    (
        ("[abc]{1,2}", prop::collection::vec("[abc]", 0..2), attributes()),
        attributes(),
        ("[abc]{1,2}", attributes()),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |((id, groups, principal), resource, (source_ip, environment), explain, reversed)| {
                let msg = proto::AuthorizeRequest {
                    principal: Some(proto::Principal {
                        id,
                        groups,
                        attributes: principal,
                        token: String::new(),
                    }),
                    action: "Use".into(),
                    resource: Some(proto::Resource {
                        uri: "r".into(),
                        owner: String::new(),
                        attributes: resource,
                    }),
                    environment: Some(proto::Environment {
                        time: None,
                        // Not an address: the request goes through the proto conversion, and is refused.
                        source_ip: if source_ip == "c" { source_ip } else { String::new() },
                        port: 0,
                        attributes: environment,
                    }),
                    explain,
                };
                (msg, reversed)
            },
        )
        .boxed()
}

/// A request decided from the document the fast reader filled decides as the owned request the proto
/// conversion builds, explanation included, over policies that read its attributes with every kind of
/// operator, a `${...}` reference into them, and deny policies.
#[test]
fn requests_decided_from_their_document_decide_as_owned_requests() {
    let snapshot = attribute_snapshot();
    let now = Moment::new(1_800_000_000, 0).unwrap();
    let (from_document, allowed, denied_by_policy) = (Cell::new(0), Cell::new(0), Cell::new(0));
    let count = |c: &Cell<usize>| c.set(c.get() + 1);
    runner(1500)
        .run(&attribute_request(), |(msg, reversed)| {
            let bytes = if reversed {
                // Each attribute map's entries written in reverse order, as a client may write them.
                with_entries(&msg, |entries| entries.reverse())
            } else {
                msg.encode_to_vec()
            };
            let want = reference(&bytes);
            prop_assert_eq!(text_of(&fast(&bytes)), text_of(&want));
            let (Ok(Validated::Wire(input)), Ok(owned)) = (fast_validated(&bytes), want) else {
                return Ok(());
            };
            count(&from_document);
            let options = crate::eval::EvalOptions {
                superuser: Some("admin"),
                explain: owned.explain,
            };
            let decided = crate::eval::evaluate_view(&snapshot, input.view(), now, &options);
            let want = crate::eval::evaluate(&snapshot, &owned.request, now, &options);
            prop_assert_eq!(&decided, &want);
            if decided.allowed {
                count(&allowed);
            } else if matches!(decided.reason, Reason::Denied | Reason::Error) {
                count(&denied_by_policy);
            }
            Ok(())
        })
        .unwrap();
    let (from_document, allowed, denied_by_policy) =
        (from_document.get(), allowed.get(), denied_by_policy.get());
    assert!(from_document >= 1000, "{from_document} decided from the document");
    // With the fixed seed: 1,235 decided from the document, 48 allowed, 983 denied by a policy or a fault.
    assert!(allowed >= 25, "{allowed} allowed");
    assert!(denied_by_policy >= 500, "{denied_by_policy} denied by a policy or a fault");
}

#[test]
fn the_benchmark_request_is_read_fast() {
    let msg = proto::AuthorizeRequest {
        principal: Some(proto::Principal {
            id: "u1".into(),
            groups: vec!["team1".into()],
            ..Default::default()
        }),
        action: "CreateKey".into(),
        resource: Some(proto::Resource {
            uri: "kylo:kylo:vault:keys:k1".into(),
            owner: "u2".into(),
            attributes: Some(convert::json_to_struct(
                serde_json::json!({"permissions": {"Sign": ["team1"]}, "global": false})
                    .as_object()
                    .unwrap(),
            )),
        }),
        environment: Some(proto::Environment {
            time: Some(prost_types::Timestamp {
                seconds: 1_800_000_000,
                nanos: 0,
            }),
            source_ip: "10.1.2.3".into(),
            ..Default::default()
        }),
        explain: false,
    };
    let bytes = msg.encode_to_vec();
    assert!(super::wire::reads_fast(&bytes));
    assert!(matches!(fast_validated(&bytes), Ok(Validated::Wire(_))));
    assert_eq!(text_of(&fast(&bytes)), text_of(&reference(&bytes)));
}

fn reason() -> impl Strategy<Value = Reason> {
    prop_oneof![
        Just(Reason::Superuser),
        Just(Reason::Allowed),
        Just(Reason::Denied),
        Just(Reason::NoApplicablePolicy),
        Just(Reason::Error),
    ]
}

/// Text as long as real policy ids, revisions and call ids, so that a result's length takes two bytes.
fn id_text() -> impl Strategy<Value = String> {
    prop_oneof![3 => text(), 1 => "[a-z0-9:-]{40,120}"]
}

fn ids() -> impl Strategy<Value = Vec<Arc<str>>> {
    prop::collection::vec(id_text().prop_map(Arc::from), 0..4)
}

/// Why a reply is explained: not at all (most), a token's failure, or an unmapped HTTP request.
fn explained() -> impl Strategy<Value = (Option<TokenError>, Option<String>)> {
    prop_oneof![
        6 => Just((None, None)),
        1 => Just((Some(TokenError::Expired), None)),
        1 => text().prop_map(|why| (None, Some(why))),
    ]
}

/// A decision's generated parts: allowed, reason, policies, undetermined allows.
type DecisionParts = (bool, Reason, Vec<Arc<str>>, Vec<Arc<str>>);

/// The verdict the reply tests write: a decision from its parts, the call id, the time, and the identity step's
/// outcome (a token's failure, or a principal the mapping could not find), either of which explains the reply.
fn verdict_of(
    (allowed, reason, policies, undetermined_allow): DecisionParts,
    call_id: &str,
    time: Moment,
    (unauthenticated, unmapped): (Option<TokenError>, Option<String>),
) -> Verdict {
    let decision = Decision {
        allowed,
        reason,
        policies,
        undetermined_allow,
        explanation: None,
    };
    Verdict {
        call_id: Arc::from(call_id),
        unauthenticated,
        unmapped,
        ..Verdict::replayed(decision, time)
    }
}

/// An empty snapshot at `revision`.
fn snapshot_at(revision: String) -> crate::snapshot::Snapshot {
    let mut snapshot = crate::compile::build(&crate::load::SourceSet::default()).unwrap();
    snapshot.revision = revision;
    snapshot
}

/// What `encode` writes must be prost's bytes `want`, and as long as `encoded_len` says.
fn written_as(
    encoded_len: usize,
    encode: impl FnOnce(&mut Vec<u8>),
    want: Vec<u8>,
) -> Result<(), TestCaseError> {
    let mut got = Vec::new();
    encode(&mut got);
    prop_assert_eq!(encoded_len, got.len());
    prop_assert_eq!(got, want);
    Ok(())
}

#[test]
fn replies_are_written_as_prost_writes_the_response() {
    let mut runner = runner(2000);
    let seconds = prop_oneof![
        Just(0i64),
        -62_135_596_800i64..253_402_300_799,
        1_700_000_000i64..1_800_000_000
    ];
    let nanos = prop_oneof![Just(0i32), 0..1_000_000_000i32];
    let verdict = (
        (any::<bool>(), reason(), ids(), ids()),
        (id_text(), seconds, nanos, id_text()),
        explained(),
    );
    let (by_hand, by_prost) = (Cell::new(0), Cell::new(0));
    runner
        .run(
            &verdict,
            |(parts, (call_id, s, n, revision), why)| {
                let verdict = verdict_of(parts, &call_id, Moment::new(s, n).unwrap(), why);
                let explained = verdict.explanation_json().is_some();
                let snapshot = snapshot_at(revision);
                let want = convert::response(&verdict, &snapshot.revision).encode_to_vec();
                let reply = AuthorizeReply::new(verdict, Arc::new(snapshot));
                let written = matches!(reply, AuthorizeReply::Verdict { .. });
                prop_assert_eq!(written, !explained, "written by hand exactly when unexplained");
                let c = if written { &by_hand } else { &by_prost };
                c.set(c.get() + 1);
                written_as(reply.encoded_len(), |buf| reply.encode(buf), want)
            },
        )
        .unwrap();
    // With the fixed seed: 1,520 by hand, 480 by prost.
    assert!(by_hand.get() >= 1000, "{} written by hand", by_hand.get());
    assert!(by_prost.get() >= 200, "{} written by prost", by_prost.get());
}


fn check() -> BoxedStrategy<proto::Check> {
    (text(), prop::option::weighted(0.8, resource()))
        .prop_map(|(action, resource)| proto::Check { action, resource })
        .boxed()
}

fn batch() -> BoxedStrategy<proto::AuthorizeBatchRequest> {
    let check = check();
    // A few batches over the limit of checks, which is checked before anything else.
    let checks = prop_oneof![
        20 => prop::collection::vec(check.clone(), 0..4),
        1 => check.prop_map(|c| vec![c; convert::MAX_BATCH_CHECKS + 1]),
    ];
    (
        prop::option::weighted(0.9, principal()),
        prop::option::of(environment()),
        checks,
        any::<bool>(),
    )
        .prop_map(
            |(principal, environment, checks, explain)| proto::AuthorizeBatchRequest {
                principal,
                environment,
                checks,
                explain,
            },
        )
        .boxed()
}

fn batch_reference(bytes: &[u8]) -> Result<String, String> {
    let msg = prost_decode::<proto::AuthorizeBatchRequest>(bytes)?;
    BatchInput::from_proto(msg, &identify)
        .map(|input| format!("{input:?}"))
        .map_err(|e| format!("{}: {}", e.field, e.message))
}

fn batch_fast(bytes: &[u8]) -> Result<String, String> {
    decode_batch(bytes)
        .map_err(|status| status.message().to_string())?
        .validate(&identify)
        .map(|input| format!("{input:?}"))
        .map_err(|e| format!("{}: {}", e.field, e.message))
}

#[test]
fn batches_are_read_as_prost_and_the_proto_conversion_read_them() {
    let mut runner = runner(1500);
    let damage = prop_oneof![
        6 => Just(None),
        1 => batch().prop_map(|b| Some(BatchDamage::Merged(Box::new(b)))),
        1 => (6u32..40, 0u8..6).prop_map(|(t, w)| Some(BatchDamage::Unknown(t, w))),
        1 => any::<usize>().prop_map(|at| Some(BatchDamage::Truncated(at))),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Some(BatchDamage::ByteChanged(i, b))),
        2 => (check(), check_extra()).prop_map(|(c, extra)| Some(BatchDamage::InCheck(c, extra))),
    ];
    let (fast_read, handed_over, decided) = (Cell::new(0), Cell::new(0), Cell::new(0));
    let count = |c: &Cell<usize>| c.set(c.get() + 1);
    runner
        .run(&(batch(), damage), |(msg, damage)| {
            let mut bytes = msg.encode_to_vec();
            match damage {
                None => {}
                Some(BatchDamage::Merged(other)) => other.encode(&mut bytes).unwrap(),
                Some(BatchDamage::Unknown(tag, wire)) => unknown_field(tag, wire, &mut bytes),
                Some(BatchDamage::Truncated(at)) => bytes.truncate(at % (bytes.len() + 1)),
                Some(BatchDamage::ByteChanged(at, b)) if !bytes.is_empty() => {
                    let i = at % bytes.len();
                    bytes[i] = b;
                }
                Some(BatchDamage::ByteChanged(..)) => {}
                Some(BatchDamage::InCheck(check, extra)) => {
                    // One more check, with a field written after its own.
                    let mut one = check.encode_to_vec();
                    match extra {
                        CheckExtra::Action(action) => {
                            prost::encoding::string::encode(1, &action, &mut one)
                        }
                        CheckExtra::Resource(resource) => {
                            prost::encoding::message::encode(2, &resource, &mut one)
                        }
                        CheckExtra::Unknown(tag, wire) => unknown_field(tag, wire, &mut one),
                    }
                    encode_key(3, WireType::LengthDelimited, &mut bytes);
                    encode_varint(one.len() as u64, &mut bytes);
                    bytes.extend(one);
                }
            }
            let (got, want) = (batch_fast(&bytes), batch_reference(&bytes));
            prop_assert_eq!(&got, &want);
            count(if super::wire::batch_reads_fast(&bytes) {
                &fast_read
            } else {
                &handed_over
            });
            if got.is_ok() {
                count(&decided);
            }
            Ok(())
        })
        .unwrap();
    // With the fixed seed: 587 read fast, 913 handed to prost, 157 valid.
    let (fast_read, handed_over, decided) = (fast_read.get(), handed_over.get(), decided.get());
    assert!(fast_read >= 500, "{fast_read} read fast");
    assert!(handed_over >= 150, "{handed_over} handed to prost");
    assert!(decided >= 80, "{decided} valid");
}

#[derive(Debug, Clone)]
enum BatchDamage {
    Merged(Box<proto::AuthorizeBatchRequest>),
    Unknown(u32, u8),
    Truncated(usize),
    ByteChanged(usize, u8),
    /// A check with a field written again after its own (protobuf overrides the action and merges the
    /// resource), or an unknown field.
    InCheck(proto::Check, CheckExtra),
}

#[derive(Debug, Clone)]
enum CheckExtra {
    Action(String),
    Resource(proto::Resource),
    Unknown(u32, u8),
}

fn check_extra() -> BoxedStrategy<CheckExtra> {
    // A partial resource: merged field by field into the check's own.
    let partial = (prop::option::of(text()), attributes()).prop_map(|(uri, attributes)| {
        proto::Resource {
            uri: uri.unwrap_or_default(),
            owner: String::new(),
            attributes,
        }
    });
    prop_oneof![
        text().prop_map(CheckExtra::Action),
        partial.prop_map(CheckExtra::Resource),
        (3u32..40, 0u8..6).prop_map(|(t, w)| CheckExtra::Unknown(t, w)),
    ]
    .boxed()
}

#[test]
fn batch_replies_are_written_as_prost_writes_them() {
    let mut runner = runner(500);
    let one = (
        (any::<bool>(), reason(), ids(), ids()),
        (id_text(), explained()),
    );
    let (by_hand, by_prost, long) = (Cell::new(0), Cell::new(0), Cell::new(0));
    let count = |c: &Cell<usize>| c.set(c.get() + 1);
    runner
        .run(
            &(prop::collection::vec(one, 0..4), id_text()),
            |(verdicts, revision)| {
                let verdicts: Vec<Verdict> = verdicts
                    .into_iter()
                    .enumerate()
                    .map(|(i, (parts, (call_id, why)))| {
                        let time = Moment::new(1_800_000_000 + i as i64, 5).unwrap();
                        verdict_of(parts, &call_id, time, why)
                    })
                    .collect();
                let any_explained = verdicts.iter().any(|v| v.explanation_json().is_some());
                let snapshot = snapshot_at(revision);
                let results: Vec<proto::AuthorizeResponse> = verdicts
                    .iter()
                    .map(|v| convert::response(v, &snapshot.revision))
                    .collect();
                if results.iter().any(|r| r.encoded_len() >= 128) {
                    count(&long);
                }
                let want = proto::AuthorizeBatchResponse {
                    results,
                    revision: snapshot.revision.clone(),
                }
                .encode_to_vec();
                let reply = BatchReply::new(verdicts, Arc::new(snapshot));
                let written = matches!(reply, BatchReply::Verdicts { .. });
                prop_assert_eq!(written, !any_explained, "written by hand exactly when none is explained");
                count(if written { &by_hand } else { &by_prost });
                written_as(reply.encoded_len(), |buf| reply.encode(buf), want)
            },
        )
        .unwrap();
    // With the fixed seed: 335 by hand, 165 by prost, 293 batches with a result of 128 bytes or more (a
    // two-byte length).
    assert!(by_hand.get() >= 200, "{} written by hand", by_hand.get());
    assert!(by_prost.get() >= 40, "{} written by prost", by_prost.get());
    assert!(long.get() >= 50, "{} batches with a long result", long.get());
}

#[test]
fn too_many_checks_is_the_first_error_on_both_paths() {
    let check = proto::Check {
        action: "CreateKey".into(),
        resource: None,
    };
    let msg = proto::AuthorizeBatchRequest {
        // An empty id, and a time out of range: errors that come after the number of checks.
        principal: Some(proto::Principal::default()),
        environment: Some(proto::Environment {
            time: Some(prost_types::Timestamp {
                seconds: i64::MAX,
                nanos: 0,
            }),
            ..Default::default()
        }),
        checks: vec![check; convert::MAX_BATCH_CHECKS + 1],
        explain: false,
    };
    let bytes = msg.encode_to_vec();
    // Past the limit nothing more is built: prost decodes the batch (a decoding error would come first).
    assert!(!super::wire::batch_reads_fast(&bytes));
    let got = batch_fast(&bytes);
    assert_eq!(got, batch_reference(&bytes));
    assert!(got.unwrap_err().starts_with("checks: 1025 checks"));
    // At the limit, the batch is read fast and the time is the first error.
    let mut at_limit = msg.clone();
    at_limit.checks.pop();
    let bytes = at_limit.encode_to_vec();
    assert!(super::wire::batch_reads_fast(&bytes));
    let got = batch_fast(&bytes);
    assert_eq!(got, batch_reference(&bytes));
    assert!(got.unwrap_err().starts_with("environment.time:"));
}

/// A batch of one check whose resource attributes hold `{"d": ...}` nested `depth` levels deep, ending in an
/// empty struct that holds an unknown field: the deepest a fast read goes at `MAX_ATTRIBUTE_DEPTH`.
fn deep_batch(depth: usize) -> Vec<u8> {
    let wrap = |tag: u32, inner: Vec<u8>| {
        let mut out = Vec::new();
        encode_key(tag, WireType::LengthDelimited, &mut out);
        encode_varint(inner.len() as u64, &mut out);
        out.extend(inner);
        out
    };
    // A Struct's entry `"d"` holding a Value's bytes.
    let entry = |value: Vec<u8>| {
        let mut e = Vec::new();
        prost::encoding::string::encode(1, &"d".to_string(), &mut e);
        e.extend(wrap(2, value));
        wrap(1, e)
    };
    let mut unknown = Vec::new();
    unknown_field(9, 0, &mut unknown);
    let mut value = wrap(5, unknown);
    for _ in 1..depth {
        value = wrap(5, entry(value));
    }
    let resource = wrap(3, entry(value));
    let mut check = Vec::new();
    prost::encoding::string::encode(1, &"CreateKey".to_string(), &mut check);
    check.extend(wrap(2, resource));
    let mut bytes = proto::AuthorizeBatchRequest {
        principal: Some(proto::Principal {
            id: "u1".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec();
    bytes.extend(wrap(3, check));
    bytes
}

#[test]
fn the_deepest_value_read_fast_leaves_prost_a_budget_in_a_batch() {
    let bytes = deep_batch(MAX_ATTRIBUTE_DEPTH);
    assert!(super::wire::batch_reads_fast(&bytes));
    let want = batch_reference(&bytes);
    assert!(want.is_ok(), "{want:?}");
    assert_eq!(batch_fast(&bytes), want);
    // One level deeper, prost reads it, and refuses it.
    let bytes = deep_batch(MAX_ATTRIBUTE_DEPTH + 1);
    assert!(!super::wire::batch_reads_fast(&bytes));
    let want = batch_reference(&bytes);
    assert!(want.is_err(), "{want:?}");
    assert_eq!(batch_fast(&bytes), want);
}
