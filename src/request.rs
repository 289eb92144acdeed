//! The domain request: principal, action, resource and environment, validated and normalised once at the edge.
//!
//! Both edges (JSON for the CLI, test suites and decision logs; protobuf for gRPC) build a [`RawRequest`] and
//! call [`RawRequest::normalize`], so the two can never disagree on what is valid. Errors name the offending
//! field. Empty typed strings and a zero port mean absent; JSON `null` means absent.

use std::net::IpAddr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::compile::path::{ENVIRONMENT_RESERVED, PRINCIPAL_RESERVED, RESOURCE_RESERVED};

/// Deepest nesting accepted inside an attribute map.
pub const MAX_ATTRIBUTE_DEPTH: usize = 32;
/// Most values (map entries and list elements, counted recursively) accepted in one request's attributes.
pub const MAX_ATTRIBUTE_VALUES: usize = 10_000;
/// Longest string accepted in a request field or attribute.
pub const MAX_STRING_BYTES: usize = 64 * 1024;

/// A validated authorization request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    pub principal: Principal,
    pub action: String,
    pub resource: Resource,
    pub environment: Environment,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Principal {
    pub id: String,
    pub groups: Vec<String>,
    pub attributes: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resource {
    pub uri: Option<String>,
    pub owner: Option<String>,
    pub attributes: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Environment {
    /// `None` means "the instant the call was received".
    pub time: Option<Timestamp>,
    pub source_ip: Option<IpAddr>,
    pub port: Option<u32>,
    pub attributes: Map<String, Value>,
}

/// Where a value sits in a request (`resource.attributes.permissions`, `checks[2].resource`), as a chain of
/// borrowed segments on the stack. It is rendered only when an error names it, so walking a valid request's
/// attributes builds no strings.
#[derive(Debug, Clone, Copy)]
pub enum FieldPath<'a> {
    Root(&'a str),
    Key(&'a FieldPath<'a>, &'a str),
    Index(&'a FieldPath<'a>, usize),
}

impl<'a> FieldPath<'a> {
    pub fn key(&'a self, key: &'a str) -> FieldPath<'a> {
        FieldPath::Key(self, key)
    }

    pub fn index(&'a self, index: usize) -> FieldPath<'a> {
        FieldPath::Index(self, index)
    }
}

impl std::fmt::Display for FieldPath<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldPath::Root(name) => f.write_str(name),
            FieldPath::Key(parent, key) => write!(f, "{parent}.{key}"),
            FieldPath::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// Invalid request input, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RequestError {
    pub field: String,
    pub message: String,
}

impl RequestError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        RequestError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The request as received, before validation: the JSON mapping of the proto, also built from protobuf.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<RawPrincipal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<RawResource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<RawEnvironment>,
    /// `AuthorizeRequest.explain`: accepted so that the proto's JSON mapping reads as is; `arbiter eval` honours
    /// it like `--explain`. It is not part of the decided request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explain: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrincipal {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnvironment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(default, alias = "sourceIp", skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Map<String, Value>>,
}

impl RawRequest {
    /// Reads the JSON request shape of SPEC section 3 (a decision-log line included, see
    /// [`DECISION_LOG_FIELDS`]); unknown fields are errors.
    pub fn from_json(mut value: Value) -> Result<RawRequest, RequestError> {
        if let Value::Object(map) = &mut value {
            for key in DECISION_LOG_FIELDS {
                map.remove(key);
            }
        }
        serde_json::from_value(value).map_err(|e| RequestError::new("request", e.to_string()))
    }

    /// Validates and normalises. Every rule of SPEC section 1 on request input lives here.
    pub fn normalize(self) -> Result<Request, RequestError> {
        let principal = self.principal.unwrap_or_default();
        let id = principal.id.unwrap_or_default();
        if id.is_empty() {
            return Err(RequestError::new("principal.id", "must not be empty"));
        }
        check_len("principal.id", &id)?;
        let groups = principal.groups.unwrap_or_default();
        for (i, g) in groups.iter().enumerate() {
            if g.is_empty() {
                return Err(RequestError::new(
                    format!("principal.groups[{i}]"),
                    "must not be empty",
                ));
            }
            check_len("principal.groups", g)?;
        }
        let action = self.action.unwrap_or_default();
        if action.is_empty() {
            return Err(RequestError::new("action", "must not be empty"));
        }
        check_len("action", &action)?;

        let resource = self.resource.unwrap_or_default();
        let environment = self.environment.unwrap_or_default();

        let mut budget = MAX_ATTRIBUTE_VALUES;
        let principal_attributes = attributes(
            "principal.attributes",
            principal.attributes,
            &PRINCIPAL_RESERVED,
            &mut budget,
        )?;
        let resource_attributes = attributes(
            "resource.attributes",
            resource.attributes,
            &RESOURCE_RESERVED,
            &mut budget,
        )?;
        let environment_attributes = attributes(
            "environment.attributes",
            environment.attributes,
            &ENVIRONMENT_RESERVED,
            &mut budget,
        )?;

        let time = match environment.time.as_deref() {
            None | Some("") => None,
            Some(t) => Some(parse_rfc3339(t).ok_or_else(|| {
                RequestError::new(
                    "environment.time",
                    format!("`{t}` is not an RFC 3339 instant"),
                )
            })?),
        };
        let source_ip = match environment.source_ip.as_deref() {
            None | Some("") => None,
            Some(ip) => Some(ip.parse::<IpAddr>().map_err(|_| {
                RequestError::new(
                    "environment.source_ip",
                    format!("`{ip}` is not an IP address"),
                )
            })?),
        };
        let port = match environment.port {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_u64() {
                Some(0) => None,
                Some(p) if p <= 65_535 => Some(p as u32),
                _ => {
                    return Err(RequestError::new(
                        "environment.port",
                        format!("{n} is not a port number"),
                    ))
                }
            },
            Some(other) => {
                return Err(RequestError::new(
                    "environment.port",
                    format!("must be a number, found {}", json_type(&other)),
                ))
            }
        };
        let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
        let uri = non_empty(resource.uri);
        let owner = non_empty(resource.owner);
        for (field, v) in [("resource.uri", &uri), ("resource.owner", &owner)] {
            if let Some(v) = v {
                check_len(field, v)?;
            }
        }
        Ok(Request {
            principal: Principal {
                id,
                groups,
                attributes: principal_attributes,
            },
            action,
            resource: Resource {
                uri,
                owner,
                attributes: resource_attributes,
            },
            environment: Environment {
                time,
                source_ip,
                port,
                attributes: environment_attributes,
            },
        })
    }
}

/// The top-level keys a decision-log line adds around the request (see `crate::decision_log`). A request read
/// as JSON may carry them, so that a logged line can be fed back to `arbiter eval` as it is; they describe the
/// logged decision, not the request, and are set aside.
pub const DECISION_LOG_FIELDS: [&str; 9] = [
    "timestamp",
    "call_id",
    "check",
    "decision",
    "reason",
    "policies",
    "revision",
    "duration_us",
    "explanation",
];

impl Request {
    /// Parses the JSON request shape of SPEC section 3.
    pub fn from_json(value: Value) -> Result<Request, RequestError> {
        RawRequest::from_json(value)?.normalize()
    }

    /// The JSON request shape, as read by `arbiter eval` and the simulator's `--requests`.
    pub fn to_raw(&self) -> RawRequest {
        let map = |m: &Map<String, Value>| (!m.is_empty()).then(|| m.clone());
        RawRequest {
            principal: Some(RawPrincipal {
                id: Some(self.principal.id.clone()),
                groups: Some(self.principal.groups.clone()),
                attributes: map(&self.principal.attributes),
            }),
            action: Some(self.action.clone()),
            resource: Some(RawResource {
                uri: self.resource.uri.clone(),
                owner: self.resource.owner.clone(),
                attributes: map(&self.resource.attributes),
            }),
            environment: Some(RawEnvironment {
                time: self.environment.time.map(|t| t.to_string()),
                source_ip: self.environment.source_ip.map(|ip| ip.to_string()),
                port: self.environment.port.map(Value::from),
                attributes: map(&self.environment.attributes),
            }),
            explain: None,
        }
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.to_raw()).unwrap_or(Value::Null)
    }
}

fn check_len(field: &str, s: &str) -> Result<(), RequestError> {
    if s.len() > MAX_STRING_BYTES {
        return Err(RequestError::new(
            field,
            format!("longer than {MAX_STRING_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// An attribute name is held to the string limit too; the error names the map, not the (huge) key.
fn check_key(field: &str, key: &str) -> Result<(), RequestError> {
    if key.len() > MAX_STRING_BYTES {
        return Err(RequestError::new(
            field,
            format!("an attribute name is longer than {MAX_STRING_BYTES} bytes"),
        ));
    }
    Ok(())
}

fn attributes(
    field: &str,
    map: Option<Map<String, Value>>,
    reserved: &[&str],
    budget: &mut usize,
) -> Result<Map<String, Value>, RequestError> {
    let map = map.unwrap_or_default();
    for name in reserved {
        if map.contains_key(*name) {
            let part = field.trim_end_matches(".attributes");
            return Err(RequestError::new(
                format!("{field}.{name}"),
                format!("`{name}` is reserved; set `{part}.{name}` instead"),
            ));
        }
    }
    let root = FieldPath::Root(field);
    for (k, v) in &map {
        check_key(field, k)?;
        check_value(&root.key(k), v, 1, budget)?;
    }
    Ok(map)
}

fn check_value(
    field: &FieldPath<'_>,
    v: &Value,
    depth: usize,
    budget: &mut usize,
) -> Result<(), RequestError> {
    if depth > MAX_ATTRIBUTE_DEPTH {
        return Err(RequestError::new(
            field.to_string(),
            format!("nested deeper than {MAX_ATTRIBUTE_DEPTH} levels"),
        ));
    }
    if *budget == 0 {
        return Err(RequestError::new(
            field.to_string(),
            format!("attributes hold more than {MAX_ATTRIBUTE_VALUES} values"),
        ));
    }
    *budget -= 1;
    match v {
        Value::String(s) if s.len() > MAX_STRING_BYTES => Err(RequestError::new(
            field.to_string(),
            format!("longer than {MAX_STRING_BYTES} bytes"),
        )),
        Value::Array(items) => items
            .iter()
            .try_for_each(|i| check_value(field, i, depth + 1, budget)),
        Value::Object(m) => m.iter().try_for_each(|(k, i)| {
            if k.len() > MAX_STRING_BYTES {
                return Err(RequestError::new(
                    field.to_string(),
                    format!("an attribute name is longer than {MAX_STRING_BYTES} bytes"),
                ));
            }
            check_value(&field.key(k), i, depth + 1, budget)
        }),
        Value::Number(n) if n.as_f64().is_none_or(|f| !f.is_finite()) => {
            Err(RequestError::new(field.to_string(), "number out of range"))
        }
        _ => Ok(()),
    }
}

/// JSON type names for messages.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// Strict RFC 3339: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    let shape_ok = b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't')
        && b[13] == b':'
        && b[16] == b':'
        && (matches!(b[b.len() - 1], b'Z' | b'z') || {
            let n = b.len();
            n >= 25 && matches!(b[n - 6], b'+' | b'-') && b[n - 3] == b':'
        });
    if !shape_ok {
        return None;
    }
    s.parse::<Timestamp>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(v: Value) -> Result<Request, RequestError> {
        Request::from_json(v)
    }

    #[test]
    fn minimal_request_and_absent_markers() {
        let r = req(json!({"principal": {"id": "a"}, "action": "ReadKey",
            "resource": {"uri": "", "owner": ""}, "environment": {"source_ip": "", "port": 0}}))
        .unwrap();
        assert_eq!(r.resource.uri, None);
        assert_eq!(r.resource.owner, None);
        assert_eq!(r.environment.source_ip, None);
        assert_eq!(r.environment.port, None);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!({"action": "x"}), "principal.id"),
            (
                json!({"principal": {"id": ""}, "action": "x"}),
                "principal.id",
            ),
            (json!({"principal": {"id": "a"}}), "action"),
            (
                json!({"principal": {"id": "a"}, "action": "x", "environment": {"source_ip": "10.1"}}),
                "environment.source_ip",
            ),
            (
                json!({"principal": {"id": "a"}, "action": "x", "environment": {"time": "2026-11-23 12:00:00"}}),
                "environment.time",
            ),
            (
                json!({"principal": {"id": "a"}, "action": "x", "environment": {"port": 70000}}),
                "environment.port",
            ),
            (
                json!({"principal": {"id": "a", "attributes": {"groups": ["x"]}}, "action": "x"}),
                "principal.attributes.groups",
            ),
            (
                json!({"principal": {"id": "a"}, "action": "x", "resource": {"attributes": {"owner": "b"}}}),
                "resource.attributes.owner",
            ),
            (
                json!({"principal": {"id": "a"}, "action": "x", "environment": {"attributes": {"time": "b"}}}),
                "environment.attributes.time",
            ),
        ];
        for (input, field) in cases {
            let err = req(input.clone()).unwrap_err();
            assert_eq!(err.field, field, "{input}");
        }
    }

    #[test]
    fn deep_attributes_are_rejected() {
        let mut v = json!(1);
        for _ in 0..40 {
            v = json!({ "a": v });
        }
        let err = req(json!({"principal": {"id": "a", "attributes": {"deep": v}}, "action": "x"}))
            .unwrap_err();
        assert!(err.message.contains("nested deeper"), "{err}");
    }

    #[test]
    fn strict_rfc3339() {
        assert!(parse_rfc3339("2026-11-23T12:00:00Z").is_some());
        assert!(parse_rfc3339("2026-11-23T12:00:00.5+01:00").is_some());
        assert!(parse_rfc3339("2026-11-23 12:00:00Z").is_none());
        assert!(parse_rfc3339("2026-11-23").is_none());
        assert!(parse_rfc3339("2026-11-23T12:00:00").is_none());
    }

    #[test]
    fn round_trips_through_json() {
        let r = req(json!({"principal": {"id": "carol", "groups": ["hr"], "attributes": {"department": "security"}},
            "action": "EncryptWithKey",
            "resource": {"uri": "kylo:kylo:vault:keys:k2", "owner": "bob",
                         "attributes": {"permissions": {"EncryptWithKey": ["hr"]}}},
            "environment": {"time": "2026-11-23T12:00:00Z", "source_ip": "10.1.2.3", "port": 443}}))
        .unwrap();
        assert_eq!(Request::from_json(r.to_json()).unwrap(), r);
    }
}
