//! The protobuf edge: `TryFrom` conversions from the generated proto types to validated domain requests, and
//! from decisions back to proto responses. Proto types stop here; `eval` only ever sees [`Request`].
//!
//! Both edges (JSON and protobuf) end in [`RawRequest::normalize`], so they agree on what is valid. This module
//! adds what only protobuf has: `google.protobuf.Struct` (converted with a depth limit, iteratively bounded, so a
//! hostile deeply nested Struct is refused rather than recursed into) and `google.protobuf.Timestamp` (range
//! checked, then set on the request directly). Every error names the offending field.

use crate::attr::number_value;
use crate::moment::Moment;
use prost_types::value::Kind;
use serde_json::{Map, Value};

use super::decide::Verdict;
use super::proto;
use super::token::TokenError;
use crate::request::{
    Environment, FieldPath, Principal, RawEnvironment, RawPrincipal, RawRequest, RawResource,
    Request, RequestError, Resource, MAX_ATTRIBUTE_DEPTH,
};

/// Most checks accepted in one `AuthorizeBatch`.
pub const MAX_BATCH_CHECKS: usize = 1024;

/// Seconds of 0001-01-01T00:00:00Z, the start of `google.protobuf.Timestamp`'s range.
const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;
/// Seconds of 9999-12-31T23:59:59Z, the end of `google.protobuf.Timestamp`'s range.
const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;

/// A validated `SimulateRequest`: the proposed files and the requests to replay.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulateInput {
    pub files: Vec<(std::path::PathBuf, String)>,
    pub requests: Vec<Request>,
}

impl TryFrom<proto::SimulateRequest> for SimulateInput {
    type Error = RequestError;

    fn try_from(msg: proto::SimulateRequest) -> Result<Self, RequestError> {
        let files = simulate_files(msg.files)?;
        let mut requests = Vec::with_capacity(msg.requests.len());
        for (i, r) in msg.requests.into_iter().enumerate() {
            let input = AuthorizeInput::try_from(r)
                .map_err(|e| RequestError::new(format!("requests[{i}].{}", e.field), e.message))?;
            requests.push(input.request);
        }
        Ok(SimulateInput { files, requests })
    }
}

/// The files of a proposed set: each a relative path ending in `.yaml` or `.yml`, without `.`-prefixed or `..`
/// components.
pub fn simulate_files(
    files: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<(std::path::PathBuf, String)>, RequestError> {
    let mut out = Vec::new();
    for (path, text) in files {
        let field = format!("files[{path:?}]");
        let p = std::path::Path::new(&path);
        let policy_name = crate::load::is_policy_file(&path);
        let plain = p.components().all(|c| match c {
            std::path::Component::Normal(n) => !n.to_string_lossy().starts_with('.'),
            _ => false,
        });
        if path.is_empty() || !policy_name || !plain {
            return Err(RequestError::new(
                field,
                "must be a relative path ending in .yaml or .yml, without `.`-prefixed or `..` components",
            ));
        }
        out.push((p.to_path_buf(), text));
    }
    Ok(out)
}

/// The proto form of a validated request (for counterexamples and replayed requests).
pub fn request_to_proto(r: &Request) -> proto::AuthorizeRequest {
    let attributes = |m: &Map<String, Value>| (!m.is_empty()).then(|| json_to_struct(m));
    proto::AuthorizeRequest {
        principal: Some(proto::Principal {
            id: r.principal.id.clone(),
            groups: r.principal.groups.clone(),
            attributes: attributes(&r.principal.attributes),
            token: String::new(),
        }),
        action: r.action.clone(),
        resource: Some(proto::Resource {
            uri: r.resource.uri.clone().unwrap_or_default(),
            owner: r.resource.owner.clone().unwrap_or_default(),
            attributes: attributes(&r.resource.attributes),
        }),
        environment: Some(proto::Environment {
            time: r.environment.time.map(timestamp_to_proto),
            source_ip: r
                .environment
                .source_ip
                .as_ref()
                .map(|ip| ip.text.to_string())
                .unwrap_or_default(),
            port: r.environment.port.unwrap_or(0),
            attributes: attributes(&r.environment.attributes),
        }),
        explain: false,
    }
}

/// At most [`MAX_BATCH_CHECKS`] checks in one batch.
pub(crate) fn check_batch_size(checks: usize) -> Result<(), RequestError> {
    if checks > MAX_BATCH_CHECKS {
        return Err(RequestError::new(
            "checks",
            format!("{checks} checks, more than the limit of {MAX_BATCH_CHECKS}"),
        ));
    }
    Ok(())
}

/// A `PlanResourcesRequest` as the JSON plan request, and the time it sets.
pub fn plan_from_proto(
    msg: proto::PlanResourcesRequest,
) -> Result<(crate::plan::RawPlanRequest, Option<Moment>), RequestError> {
    let (environment, time) = match msg.environment {
        Some(e) => {
            let (raw, time) = environment(e)?;
            (Some(raw), time)
        }
        None => (None, None),
    };
    let non_empty = |s: String| (!s.is_empty()).then_some(s);
    let raw = crate::plan::RawPlanRequest {
        principal: msg.principal.map(principal).transpose()?,
        action: non_empty(msg.action),
        actions: (!msg.actions.is_empty()).then_some(msg.actions),
        environment,
        resource: msg.resource.map(|r| crate::plan::RawKnownResource {
            uri: non_empty(r.uri),
            owner: non_empty(r.owner),
        }),
        sql: msg.sql.map(|m| {
            let defaults = crate::plan::sql::SqlMapping::default();
            crate::plan::sql::SqlMapping {
                uri: non_empty(m.uri).unwrap_or(defaults.uri),
                owner: non_empty(m.owner).unwrap_or(defaults.owner),
                columns: m.columns.into_iter().collect(),
                json: non_empty(m.json).or(defaults.json),
            }
        }),
    };
    Ok((raw, time))
}

/// A plan answer as a `PlanResourcesResponse`.
pub fn plan_response(answer: &super::decide::PlanAnswer) -> proto::PlanResourcesResponse {
    use crate::plan::PlanKind;
    let mut out = proto::PlanResourcesResponse {
        revision: answer.revision.clone(),
        sql: answer.sql.as_ref().map(|sql| proto::SqlFilter {
            r#where: sql.where_clause.clone(),
            params: Some(prost_types::ListValue {
                values: sql.params.iter().map(json_to_value).collect(),
            }),
            exact: sql.exact,
        }),
        ..Default::default()
    };
    match (&answer.plan, &answer.unauthenticated) {
        (Some(plan), _) => {
            out.kind = match plan.kind {
                PlanKind::AlwaysAllowed => proto::PlanKind::AlwaysAllowed,
                PlanKind::AlwaysDenied => proto::PlanKind::AlwaysDenied,
                PlanKind::Conditional => proto::PlanKind::Conditional,
            } as i32;
            out.filter = Some(json_to_value(&plan.filter.to_json()));
            out.actions = plan.actions.clone();
            out.residual = plan.residual();
            out.policies = plan.policies().iter().map(|p| p.to_string()).collect();
        }
        (None, cause) => {
            out.kind = proto::PlanKind::AlwaysDenied as i32;
            out.filter = Some(json_to_value(&Value::Bool(false)));
            out.reason = crate::eval::Reason::Unauthenticated.as_str().into();
            out.explanation = cause.as_ref().map(|c| c.to_string()).unwrap_or_default();
        }
    }
    out
}

/// JSON map to Struct. Only used on validated requests, whose depth is bounded.
pub(crate) fn json_to_struct(m: &Map<String, Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: m
            .iter()
            .map(|(k, v)| (k.clone(), json_to_value(v)))
            .collect(),
    }
}

fn json_to_value(v: &Value) -> prost_types::Value {
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(json_to_value).collect(),
        }),
        Value::Object(m) => Kind::StructValue(json_to_struct(m)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// A validated `AuthorizeRequest`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthorizeInput {
    pub request: Request,
    pub explain: bool,
    /// The request's token failed verification: the answer is DENY `unauthenticated`, with this cause.
    pub unauthenticated: Option<TokenError>,
}

/// A validated `AuthorizeBatchRequest`: the shared principal and environment, and each check.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchInput {
    pub principal: Principal,
    pub environment: Environment,
    pub checks: Vec<CheckInput>,
    pub explain: bool,
    /// As in [`AuthorizeInput`]: every check is DENY `unauthenticated`.
    pub unauthenticated: Option<TokenError>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CheckInput {
    pub action: String,
    pub resource: Resource,
}

/// Turns a principal carrying a token into the token's principal (or reports why it was not accepted); see
/// `ServiceState::identify`. [`no_tokens`] leaves the principal as it is.
pub type Identify<'a> = &'a dyn Fn(&mut RawPrincipal) -> Result<Option<TokenError>, RequestError>;

/// An [`Identify`] for edges that verify no token: a token is then refused by [`RawRequest::normalize`].
pub fn no_tokens(_: &mut RawPrincipal) -> Result<Option<TokenError>, RequestError> {
    Ok(None)
}

impl AuthorizeInput {
    /// Validates a request read from JSON or protobuf: identity first, then every rule of `normalize`. An
    /// unset `time` is "now"; a set one overrides the text form.
    pub fn from_raw(
        mut raw: RawRequest,
        time: Option<Moment>,
        identify: Identify<'_>,
    ) -> Result<AuthorizeInput, RequestError> {
        let unauthenticated = identify(raw.principal.get_or_insert_with(Default::default))?;
        let explain = raw.explain.take().unwrap_or(false);
        let mut request = raw.normalize()?;
        if time.is_some() {
            request.environment.time = time;
        }
        Ok(AuthorizeInput {
            request,
            explain,
            unauthenticated,
        })
    }

    /// [`AuthorizeInput::from_raw`] on a protobuf message.
    pub fn from_proto(
        msg: proto::AuthorizeRequest,
        identify: Identify<'_>,
    ) -> Result<AuthorizeInput, RequestError> {
        let principal = msg.principal.map(principal).transpose()?;
        let resource = msg
            .resource
            .map(|r| resource(&FieldPath::Root("resource"), r))
            .transpose()?;
        let (environment, time) = match msg.environment {
            Some(e) => {
                let (raw, time) = environment(e)?;
                (Some(raw), time)
            }
            None => (None, None),
        };
        let raw = RawRequest {
            principal,
            action: Some(msg.action),
            resource,
            environment,
            explain: Some(msg.explain),
        };
        AuthorizeInput::from_raw(raw, time, identify)
    }
}

impl TryFrom<proto::AuthorizeRequest> for AuthorizeInput {
    type Error = RequestError;

    fn try_from(msg: proto::AuthorizeRequest) -> Result<Self, RequestError> {
        AuthorizeInput::from_proto(msg, &no_tokens)
    }
}

/// An `AuthorizeBatchRequest` before validation, from protobuf or JSON.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBatch {
    #[serde(default)]
    pub principal: Option<RawPrincipal>,
    #[serde(default)]
    pub environment: Option<RawEnvironment>,
    #[serde(default)]
    pub checks: Vec<RawCheck>,
    #[serde(default)]
    pub explain: Option<bool>,
}

/// One check of a [`RawBatch`].
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub resource: Option<RawResource>,
}

impl BatchInput {
    /// Validates a batch: at most [`MAX_BATCH_CHECKS`], the shared principal (identity first) and environment
    /// once, then each check by the rules of `normalize`, errors naming `checks[i]`.
    pub fn from_raw(
        batch: RawBatch,
        time: Option<Moment>,
        identify: Identify<'_>,
    ) -> Result<BatchInput, RequestError> {
        check_batch_size(batch.checks.len())?;
        let mut principal = batch.principal.unwrap_or_default();
        let unauthenticated = identify(&mut principal)?;
        // The shared parts are validated once, with a stand-in action that is then discarded.
        let base = RawRequest {
            principal: Some(principal),
            action: Some("-".into()),
            resource: None,
            environment: batch.environment,
            explain: None,
        }
        .normalize()?;
        let mut checks = Vec::with_capacity(batch.checks.len());
        let checks_root = FieldPath::Root("checks");
        for (i, check) in batch.checks.into_iter().enumerate() {
            let prefix = checks_root.index(i);
            let at =
                |e: RequestError| RequestError::new(format!("{prefix}.{}", e.field), e.message);
            // Each check is validated by the same rules, with a stand-in principal that is then discarded.
            let one = RawRequest {
                principal: Some(RawPrincipal {
                    id: Some("-".into()),
                    ..RawPrincipal::default()
                }),
                action: check.action,
                resource: check.resource,
                environment: None,
                explain: None,
            }
            .normalize()
            .map_err(at)?;
            checks.push(CheckInput {
                action: one.action,
                resource: one.resource,
            });
        }
        let mut environment = base.environment;
        if time.is_some() {
            environment.time = time;
        }
        Ok(BatchInput {
            principal: base.principal,
            environment,
            checks,
            explain: batch.explain.unwrap_or(false),
            unauthenticated,
        })
    }

    /// [`BatchInput::from_raw`] on a protobuf message.
    pub fn from_proto(
        msg: proto::AuthorizeBatchRequest,
        identify: Identify<'_>,
    ) -> Result<BatchInput, RequestError> {
        check_batch_size(msg.checks.len())?;
        let principal = msg.principal.map(principal).transpose()?;
        let (environment, time) = match msg.environment {
            Some(e) => {
                let (raw, time) = environment(e)?;
                (Some(raw), time)
            }
            None => (None, None),
        };
        let checks_root = FieldPath::Root("checks");
        let checks = msg
            .checks
            .into_iter()
            .enumerate()
            .map(|(i, check)| {
                Ok(RawCheck {
                    action: Some(check.action),
                    resource: check
                        .resource
                        .map(|r| resource(&checks_root.index(i).key("resource"), r))
                        .transpose()?,
                })
            })
            .collect::<Result<_, RequestError>>()?;
        let batch = RawBatch {
            principal,
            environment,
            checks,
            explain: Some(msg.explain),
        };
        BatchInput::from_raw(batch, time, identify)
    }
}

impl TryFrom<proto::AuthorizeBatchRequest> for BatchInput {
    type Error = RequestError;

    fn try_from(msg: proto::AuthorizeBatchRequest) -> Result<Self, RequestError> {
        BatchInput::from_proto(msg, &no_tokens)
    }
}

fn principal(p: proto::Principal) -> Result<RawPrincipal, RequestError> {
    Ok(RawPrincipal {
        id: Some(p.id),
        groups: Some(p.groups),
        attributes: p
            .attributes
            .map(|s| struct_to_json(&FieldPath::Root("principal.attributes"), s))
            .transpose()?,
        token: (!p.token.is_empty()).then_some(p.token),
    })
}

fn resource(field: &FieldPath<'_>, r: proto::Resource) -> Result<RawResource, RequestError> {
    Ok(RawResource {
        uri: Some(r.uri),
        owner: Some(r.owner),
        attributes: r
            .attributes
            .map(|s| struct_to_json(&field.key("attributes"), s))
            .transpose()?,
    })
}

fn environment(e: proto::Environment) -> Result<(RawEnvironment, Option<Moment>), RequestError> {
    let time = e
        .time
        .map(|t| timestamp_from_proto("environment.time", &t))
        .transpose()?;
    let raw = RawEnvironment {
        // The time is set on the validated request directly, not through text.
        time: None,
        source_ip: Some(e.source_ip),
        port: Some(Value::from(e.port)),
        attributes: e
            .attributes
            .map(|s| struct_to_json(&FieldPath::Root("environment.attributes"), s))
            .transpose()?,
    };
    Ok((raw, time))
}

/// A `google.protobuf.Timestamp` within its documented range (years 1 to 9999, nanos in `0..1e9`).
pub fn timestamp_from_proto(
    field: &str,
    t: &prost_types::Timestamp,
) -> Result<Moment, RequestError> {
    if !(MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&t.seconds)
        || !(0..1_000_000_000).contains(&t.nanos)
    {
        return Err(RequestError::new(
            field,
            format!(
                "seconds {} and nanos {} are outside the range of an RFC 3339 timestamp (years 1 to 9999)",
                t.seconds, t.nanos
            ),
        ));
    }
    Moment::new(t.seconds, t.nanos)
        .ok_or_else(|| RequestError::new(field, "not a valid instant".to_string()))
}

pub fn timestamp_to_proto(t: impl Into<Moment>) -> prost_types::Timestamp {
    let t = t.into();
    prost_types::Timestamp {
        seconds: t.as_second(),
        nanos: t.subsec_nanosecond() as i32,
    }
}

/// Converts a Struct to a JSON map, refusing nesting deeper than [`MAX_ATTRIBUTE_DEPTH`] (the limit the JSON
/// edge applies) and non-finite numbers. Recursion is bounded by the depth limit.
pub fn struct_to_json(
    field: &FieldPath<'_>,
    s: prost_types::Struct,
) -> Result<Map<String, Value>, RequestError> {
    fields_to_json(field, s.fields, 1)
}

fn fields_to_json(
    field: &FieldPath<'_>,
    fields: std::collections::BTreeMap<String, prost_types::Value>,
    depth: usize,
) -> Result<Map<String, Value>, RequestError> {
    let mut map = Map::with_capacity(fields.len());
    for (k, v) in fields {
        let v = value_to_json(&field.key(&k), v, depth)?;
        map.insert(k, v);
    }
    Ok(map)
}

fn value_to_json(
    field: &FieldPath<'_>,
    v: prost_types::Value,
    depth: usize,
) -> Result<Value, RequestError> {
    if depth > MAX_ATTRIBUTE_DEPTH {
        return Err(RequestError::new(
            field.to_string(),
            format!("nested deeper than {MAX_ATTRIBUTE_DEPTH} levels"),
        ));
    }
    Ok(match v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(b),
        Some(Kind::StringValue(s)) => Value::String(s),
        Some(Kind::NumberValue(n)) => number(field, n)?,
        Some(Kind::StructValue(s)) => Value::Object(fields_to_json(field, s.fields, depth + 1)?),
        Some(Kind::ListValue(l)) => Value::Array(
            l.values
                .into_iter()
                .map(|v| value_to_json(field, v, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// Struct numbers are doubles; whole numbers within ±2^53 become JSON integers (numbers compare by value, so
/// this only changes how they print).
fn number(field: &FieldPath<'_>, n: f64) -> Result<Value, RequestError> {
    number_value(n)
        .ok_or_else(|| RequestError::new(field.to_string(), format!("{n} is not a finite number")))
}

/// The proto response for a batch's verdicts, decided on `revision`.
pub fn batch_response(verdicts: &[Verdict], revision: &str) -> proto::AuthorizeBatchResponse {
    proto::AuthorizeBatchResponse {
        results: verdicts.iter().map(|v| response(v, revision)).collect(),
        revision: revision.to_string(),
    }
}

/// Builds the proto response for one verdict. The decision enum is derived from `allowed` alone; the
/// explanation is given both as JSON text and as a Struct.
pub fn response(verdict: &Verdict, revision: &str) -> proto::AuthorizeResponse {
    let explanation = verdict.explanation_json();
    proto::AuthorizeResponse {
        decision: if verdict.decision.allowed {
            proto::Decision::Allow as i32
        } else {
            proto::Decision::Deny as i32
        },
        policies: verdict
            .decision
            .policies
            .iter()
            .map(|p| p.to_string())
            .collect(),
        reason: verdict.decision.reason.as_str().to_string(),
        revision: revision.to_string(),
        explanation: explanation
            .as_ref()
            .and_then(|e| serde_json::to_string(e).ok())
            .unwrap_or_default(),
        call_id: verdict.call_id.to_string(),
        time: Some(timestamp_to_proto(verdict.time)),
        explanation_struct: match &explanation {
            Some(Value::Object(map)) => Some(json_to_struct(map)),
            _ => None,
        },
        undetermined_allow: verdict
            .decision
            .undetermined_allow
            .iter()
            .map(|p| p.to_string())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::{ListValue, Struct};
    use std::collections::BTreeMap;

    fn nested(depth: usize) -> prost_types::Value {
        let mut v = prost_types::Value {
            kind: Some(Kind::NumberValue(1.0)),
        };
        for _ in 0..depth {
            v = prost_types::Value {
                kind: Some(Kind::StructValue(Struct {
                    fields: BTreeMap::from([("a".to_string(), v)]),
                })),
            };
        }
        v
    }

    fn request_with_principal_attr(v: prost_types::Value) -> proto::AuthorizeRequest {
        proto::AuthorizeRequest {
            principal: Some(proto::Principal {
                id: "alice".into(),
                groups: vec![],
                attributes: Some(Struct {
                    fields: BTreeMap::from([("x".to_string(), v)]),
                }),
                token: String::new(),
            }),
            action: "ReadKey".into(),
            ..Default::default()
        }
    }

    #[test]
    fn depth_limit_matches_the_json_edge() {
        // A value at depth 32 is accepted, 33 is not.
        let ok = AuthorizeInput::try_from(request_with_principal_attr(nested(31)));
        assert!(ok.is_ok(), "{ok:?}");
        let err = AuthorizeInput::try_from(request_with_principal_attr(nested(32))).unwrap_err();
        assert!(err.field.starts_with("principal.attributes.x"), "{err}");
        assert!(err.message.contains("nested deeper"), "{err}");
    }

    #[test]
    fn numbers_and_lists_convert() {
        let v = prost_types::Value {
            kind: Some(Kind::ListValue(ListValue {
                values: vec![
                    prost_types::Value {
                        kind: Some(Kind::NumberValue(443.0)),
                    },
                    prost_types::Value {
                        kind: Some(Kind::NumberValue(0.5)),
                    },
                    prost_types::Value {
                        kind: Some(Kind::NullValue(0)),
                    },
                ],
            })),
        };
        let input = AuthorizeInput::try_from(request_with_principal_attr(v)).unwrap();
        assert_eq!(
            input.request.principal.attributes["x"],
            serde_json::json!([443, 0.5, null])
        );
        let nan = prost_types::Value {
            kind: Some(Kind::NumberValue(f64::NAN)),
        };
        let err = AuthorizeInput::try_from(request_with_principal_attr(nan)).unwrap_err();
        assert_eq!(err.field, "principal.attributes.x");
    }

    #[test]
    fn timestamps_are_range_checked() {
        let ok = prost_types::Timestamp {
            seconds: 1_795_435_200,
            nanos: 5,
        };
        let t = timestamp_from_proto("environment.time", &ok).unwrap();
        assert_eq!(timestamp_to_proto(t), ok);
        for bad in [
            prost_types::Timestamp {
                seconds: MAX_TIMESTAMP_SECONDS + 1,
                nanos: 0,
            },
            prost_types::Timestamp {
                seconds: MIN_TIMESTAMP_SECONDS - 1,
                nanos: 0,
            },
            prost_types::Timestamp {
                seconds: 0,
                nanos: -1,
            },
            prost_types::Timestamp {
                seconds: 0,
                nanos: 1_000_000_000,
            },
        ] {
            let err = timestamp_from_proto("environment.time", &bad).unwrap_err();
            assert_eq!(err.field, "environment.time");
        }
        // The extremes print as RFC 3339 that the JSON edge reads back.
        for (seconds, nanos) in [
            (MIN_TIMESTAMP_SECONDS, 999_999_999),
            (MAX_TIMESTAMP_SECONDS, 0),
        ] {
            let t = timestamp_from_proto("t", &prost_types::Timestamp { seconds, nanos }).unwrap();
            assert_eq!(crate::request::parse_rfc3339(&t.to_string()), Some(t));
        }
        // The proto's last instant, past the time library's own timestamps.
        let last = prost_types::Timestamp {
            seconds: 253_402_300_799,
            nanos: 999_999_999,
        };
        let t = timestamp_from_proto("environment.time", &last).unwrap();
        assert_eq!(t.to_string(), "9999-12-31T23:59:59.999999999Z");
        assert_eq!(timestamp_to_proto(t), last);
    }

    #[test]
    fn requests_round_trip_through_proto() {
        let r = Request::from_json(serde_json::json!({
            "principal": {"id": "carol", "groups": ["hr"], "attributes": {"department": "security", "level": 3}},
            "action": "EncryptWithKey",
            "resource": {"uri": "kylo:kylo:vault:keys:k2", "owner": "bob",
                         "attributes": {"permissions": {"EncryptWithKey": ["hr"]}, "global": true}},
            "environment": {"time": "2026-11-23T12:00:00.5Z", "source_ip": "10.1.2.3", "port": 443,
                            "attributes": {"x": null}}
        }))
        .unwrap();
        let back = AuthorizeInput::try_from(request_to_proto(&r)).unwrap();
        assert_eq!(back.request, r);
    }

    #[test]
    fn simulate_file_names_are_checked() {
        for bad in [
            "",
            "/etc/a.yaml",
            "../a.yaml",
            "a/../b.yaml",
            ".hidden/a.yaml",
            "a.txt",
        ] {
            let msg = proto::SimulateRequest {
                files: [(bad.to_string(), String::new())].into(),
                requests: vec![],
            };
            let err = SimulateInput::try_from(msg).unwrap_err();
            assert!(err.field.starts_with("files["), "{bad}: {err}");
        }
        let msg = proto::SimulateRequest {
            files: [("policies/a.yml".to_string(), String::new())].into(),
            requests: vec![proto::AuthorizeRequest::default()],
        };
        let err = SimulateInput::try_from(msg).unwrap_err();
        assert_eq!(err.field, "requests[0].principal.id");
    }

    #[test]
    fn batch_errors_name_the_check() {
        let msg = proto::AuthorizeBatchRequest {
            principal: Some(proto::Principal {
                id: "alice".into(),
                ..Default::default()
            }),
            environment: None,
            checks: vec![
                proto::Check {
                    action: "ReadKey".into(),
                    resource: None,
                },
                proto::Check {
                    action: String::new(),
                    resource: None,
                },
            ],
            explain: false,
        };
        let err = BatchInput::try_from(msg).unwrap_err();
        assert_eq!(err.field, "checks[1].action");
    }
}
