//! The domain request: principal, action, resource and environment, validated and normalised once at the edge.
//!
//! Both edges (JSON for the CLI, test suites and decision logs; protobuf for gRPC) build a [`RawRequest`] and
//! call [`RawRequest::normalize`], so the two can never disagree on what is valid. Errors name the offending
//! field. Empty typed strings and a zero port mean absent; JSON `null` means absent.

use std::net::IpAddr;

pub use crate::moment::parse_rfc3339;
use crate::moment::Moment;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ir::path::{ENVIRONMENT_RESERVED, PRINCIPAL_RESERVED, RESOURCE_RESERVED};
use crate::attr::{Attr, Shape};
use crate::request_ref::RequestView;

/// Deepest nesting accepted inside an attribute map.
pub const MAX_ATTRIBUTE_DEPTH: usize = 32;
/// Most values (map entries and list elements, counted recursively) accepted in one request's attributes.
pub const MAX_ATTRIBUTE_VALUES: usize = 10_000;
/// Longest string accepted in a request field or attribute.
pub const MAX_STRING_BYTES: usize = 64 * 1024;

/// A validated authorization request (build one with [`Request::builder`] or [`Request::from_json`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    /// Who asks.
    pub principal: Principal,
    /// What they ask to do, e.g. `EncryptWithKey`.
    pub action: String,
    /// On what.
    pub resource: Resource,
    /// When, from where.
    pub environment: Environment,
}

/// The principal of a [`Request`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Principal {
    /// Non-empty; compared exactly.
    pub id: String,
    /// The groups the request carries (the directory adds its own at decision time).
    pub groups: Vec<String>,
    /// Claims, read as `principal.<claim>`.
    pub attributes: Map<String, Value>,
}

/// The resource of a [`Request`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resource {
    /// `resource.uri`; `None` is absent (matched as the empty string by resource patterns).
    pub uri: Option<String>,
    /// `resource.owner`.
    pub owner: Option<String>,
    /// Read as `resource.<attr>`.
    pub attributes: Map<String, Value>,
}

/// The environment of a [`Request`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Environment {
    /// `None` means "the instant the call was received".
    pub time: Option<Moment>,
    /// `environment.source_ip`.
    pub source_ip: Option<SourceIp>,
    /// `environment.port` (1 to 65535).
    pub port: Option<u32>,
    /// Read as `environment.<attr>`.
    pub attributes: Map<String, Value>,
}

/// `environment.source_ip`: the address, which `cidr` and `equals` read, and its text as sent, which
/// `starts_with`, `ends_with` and `glob` match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceIp {
    /// The address.
    pub addr: IpAddr,
    /// The text as sent.
    pub text: Box<str>,
}

impl From<IpAddr> for SourceIp {
    fn from(addr: IpAddr) -> Self {
        SourceIp {
            addr,
            text: addr.to_string().into(),
        }
    }
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
    /// The field at fault, as a path into the request's JSON shape (`principal.groups[0]`), or `request`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl RequestError {
    /// An error about `field`.
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
    /// A compact JWS: only the server's doors verify it (they replace it with its principal before
    /// [`RawRequest::normalize`], which refuses a token still present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
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
        from_json_value(value)
    }

    /// Validates and normalises. Every rule of SPEC section 1 on request input lives here, and in the checks it
    /// shares with [`RequestBuilder::build`] and [`crate::RequestRef`], which apply them in the same order.
    pub fn normalize(self) -> Result<Request, RequestError> {
        let RawRequest {
            principal,
            action,
            resource,
            environment,
            explain: _,
        } = self;
        let RawPrincipal {
            id,
            groups,
            attributes: principal_attributes,
            token,
        } = principal.unwrap_or_default();
        if token.as_deref().is_some_and(|t| !t.is_empty()) {
            return Err(RequestError::new(
                "principal.token",
                "tokens are verified by the server (`arbiter serve --jwks`), not here",
            ));
        }
        let RawResource {
            uri,
            owner,
            attributes: resource_attributes,
        } = resource.unwrap_or_default();
        let RawEnvironment {
            time,
            source_ip,
            port,
            attributes: environment_attributes,
        } = environment.unwrap_or_default();
        let mut request = Request {
            principal: Principal {
                id: id.unwrap_or_default(),
                groups: groups.unwrap_or_default(),
                attributes: principal_attributes.unwrap_or_default(),
            },
            action: action.unwrap_or_default(),
            resource: Resource {
                uri: non_empty(uri),
                owner: non_empty(owner),
                attributes: resource_attributes.unwrap_or_default(),
            },
            environment: Environment {
                time: None,
                source_ip: None,
                port: None,
                attributes: environment_attributes.unwrap_or_default(),
            },
        };
        check_identity_and_attributes(&RequestView::from(&request))?;
        request.environment.time = match time.as_deref() {
            None | Some("") => None,
            Some(t) => Some(parse_rfc3339(t).ok_or_else(|| {
                RequestError::new(
                    "environment.time",
                    format!("`{t}` is not an RFC 3339 instant"),
                )
            })?),
        };
        request.environment.source_ip = parse_source_ip(source_ip)?;
        request.environment.port = match port {
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
        check_uri_owner(
            request.resource.uri.as_deref(),
            request.resource.owner.as_deref(),
        )?;
        Ok(request)
    }
}

/// An empty typed string means absent.
fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// The rules on a request's id, groups, action and attributes, in the order their errors are reported; they read
/// the request in place, owned or borrowed.
pub(crate) fn check_identity_and_attributes(request: &RequestView<'_>) -> Result<(), RequestError> {
    let id = request.principal_id;
    if id.is_empty() {
        return Err(RequestError::new("principal.id", "must not be empty"));
    }
    check_len("principal.id", id)?;
    for (i, g) in request.groups.iter().enumerate() {
        if g.is_empty() {
            return Err(RequestError::new(
                format!("principal.groups[{i}]"),
                "must not be empty",
            ));
        }
        check_len("principal.groups", g)?;
    }
    if request.action.is_empty() {
        return Err(RequestError::new("action", "must not be empty"));
    }
    check_len("action", request.action)?;
    let mut budget = MAX_ATTRIBUTE_VALUES;
    for (field, map, reserved) in [
        (
            "principal.attributes",
            request.principal_attributes,
            &PRINCIPAL_RESERVED[..],
        ),
        (
            "resource.attributes",
            request.resource_attributes,
            &RESOURCE_RESERVED[..],
        ),
        (
            "environment.attributes",
            request.environment_attributes,
            &ENVIRONMENT_RESERVED[..],
        ),
    ] {
        if let Some(map) = map {
            check_attributes(field, map, reserved, &mut budget)?;
        }
    }
    Ok(())
}

/// A time given as a [`Moment`] (the builder's, a borrowed request's) must be one a door would read: RFC 3339
/// reaches years 1 to 9999 only, where a `Moment` goes further back.
pub(crate) fn check_time(time: Option<Moment>) -> Result<(), RequestError> {
    match time {
        Some(t) if t < Moment::FIRST_RFC3339 => Err(RequestError::new(
            "environment.time",
            format!("`{t}` is not an RFC 3339 instant"),
        )),
        _ => Ok(()),
    }
}

/// `environment.source_ip` as sent; empty means absent.
fn parse_source_ip(text: Option<String>) -> Result<Option<SourceIp>, RequestError> {
    match text {
        None => Ok(None),
        Some(ip) if ip.is_empty() => Ok(None),
        Some(ip) => Ok(Some(SourceIp {
            addr: parse_ip(&ip)?,
            text: ip.into(),
        })),
    }
}

/// The address in a non-empty `environment.source_ip`.
pub(crate) fn parse_ip(text: &str) -> Result<IpAddr, RequestError> {
    text.parse::<IpAddr>().map_err(|_| {
        RequestError::new(
            "environment.source_ip",
            format!("`{text}` is not an IP address"),
        )
    })
}

/// The length rule on `resource.uri` and `resource.owner` (reported last).
pub(crate) fn check_uri_owner(uri: Option<&str>, owner: Option<&str>) -> Result<(), RequestError> {
    for (field, v) in [("resource.uri", uri), ("resource.owner", owner)] {
        if let Some(v) = v {
            check_len(field, v)?;
        }
    }
    Ok(())
}

/// The top-level keys a decision-log line adds around the request (see `crate::decision_log`). A request read
/// as JSON may carry them, so that a logged line can be fed back to `arbiter eval` as it is; they describe the
/// logged decision, not the request, and are set aside.
pub const DECISION_LOG_FIELDS: [&str; 11] = [
    "timestamp",
    "call_id",
    "check",
    "decision",
    "reason",
    "policies",
    "revision",
    "duration_us",
    "explanation",
    "cause",
    "undetermined_allow",
];

/// Reads a JSON request shape, an error naming the field it is about (`principal.groups[0]`, or `request` for the
/// whole). Maps must be JSON objects: serde would also read a struct from an array of its fields.
pub fn from_json_value<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, RequestError> {
    if let Some(field) = array_for_object(&value, "") {
        return Err(RequestError::new(
            field,
            "must be a JSON object, found an array",
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        if path == "." {
            return RequestError::new("request", message);
        }
        // A top-level key the request does not have may be one of its parts' (`uri` beside `resource`).
        let hint = if path.contains(['.', '[']) {
            String::new()
        } else {
            misplaced_field_hint(&message)
        };
        RequestError::new(path, message + &hint)
    })
}

/// For an unknown top-level field that belongs inside one of the request's parts (`uri` written beside
/// `resource` rather than in it), where it belongs.
fn misplaced_field_hint(message: &str) -> String {
    let Some(name) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
    else {
        return String::new();
    };
    let parts: Vec<String> = [
        ("principal", &["id", "groups", "attributes", "token"][..]),
        ("resource", &["uri", "owner", "attributes"][..]),
        (
            "environment",
            &["time", "source_ip", "sourceIp", "port", "attributes"][..],
        ),
    ]
    .iter()
    .filter(|(_, fields)| fields.contains(&name))
    .map(|(part, _)| format!("`{part}.{name}`"))
    .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", parts.join(" or "))
    }
}

/// The first of the request's maps (`principal`, `resource`, `environment`, `checks[i]`, `checks[i].resource`)
/// given as an array.
fn array_for_object(value: &Value, prefix: &str) -> Option<String> {
    let Value::Object(map) = value else {
        return None;
    };
    for key in ["principal", "resource", "environment"] {
        if let Some(Value::Array(_)) = map.get(key) {
            return Some(format!("{prefix}{key}"));
        }
    }
    if let Some(Value::Array(checks)) = map.get("checks") {
        for (i, check) in checks.iter().enumerate() {
            if check.is_array() {
                return Some(format!("checks[{i}]"));
            }
            if let Some(field) = array_for_object(check, &format!("checks[{i}].")) {
                return Some(field);
            }
        }
    }
    None
}

/// Builds a [`Request`] without JSON; [`RequestBuilder::build`] applies the same validation as every door.
///
/// ```
/// let request = arbiter::Request::builder("carol")
///     .group("hr")
///     .claim("department", "security")
///     .action("EncryptWithKey")
///     .resource("kylo:kylo:vault:keys:k2")
///     .owner("bob")
///     .resource_attribute("permissions", serde_json::json!({"EncryptWithKey": ["hr"]}))
///     .source_ip("10.1.2.3")
///     .port(443)
///     .build()?;
/// assert_eq!(request.principal.groups, ["hr"]);
/// # Ok::<(), arbiter::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct RequestBuilder {
    /// The request as set so far; [`RequestBuilder::build`] checks it in place. Boxed, so that each step of a
    /// chain moves a pointer rather than the whole request.
    request: Box<Request>,
    /// `environment.source_ip` as given, parsed by [`RequestBuilder::build`] so that its error surfaces there.
    source_ip: Option<String>,
}

impl RequestBuilder {
    /// Adds a group the principal belongs to (the directory's `Group` documents add theirs at decision time).
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.request.principal.groups.push(group.into());
        self
    }

    /// Sets a principal claim, read as `principal.<name>`.
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.request
            .principal
            .attributes
            .insert(name.into(), value.into());
        self
    }

    /// The action, e.g. `EncryptWithKey`.
    pub fn action(mut self, action: impl Into<String>) -> Self {
        self.request.action = action.into();
        self
    }

    /// The resource URI, e.g. `kylo:kylo:vault:keys:k1` (empty means absent).
    pub fn resource(mut self, uri: impl Into<String>) -> Self {
        self.request.resource.uri = Some(uri.into());
        self
    }

    /// The resource's owner, read as `resource.owner` (empty means absent).
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.request.resource.owner = Some(owner.into());
        self
    }

    /// Sets a resource attribute, read as `resource.<name>` (nested maps with dots).
    pub fn resource_attribute(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.request
            .resource
            .attributes
            .insert(name.into(), value.into());
        self
    }

    /// The instant of the request; without one, the engine decides at the current instant.
    pub fn time(self, time: jiff::Timestamp) -> Self {
        self.moment(time.into())
    }

    /// The instant of the request as a [`Moment`], which also reaches the last hours of year 9999 (past
    /// [`jiff::Timestamp`]'s range).
    pub fn moment(mut self, time: Moment) -> Self {
        self.request.environment.time = Some(time);
        self
    }

    /// The caller's address, as text (`cidr` and `equals` read it as an IP; empty means absent).
    pub fn source_ip(mut self, ip: impl Into<String>) -> Self {
        self.source_ip = Some(ip.into());
        self
    }

    /// The port the call came to (0 means absent).
    pub fn port(mut self, port: u16) -> Self {
        self.request.environment.port = (port != 0).then_some(u32::from(port));
        self
    }

    /// Sets an environment attribute, read as `environment.<name>`.
    pub fn environment_attribute(
        mut self,
        name: impl Into<String>,
        value: impl Into<Value>,
    ) -> Self {
        self.request
            .environment
            .attributes
            .insert(name.into(), value.into());
        self
    }

    /// Validates the request with the rules every door applies ([`RawRequest::normalize`]'s); the error names
    /// the field at fault.
    pub fn build(self) -> Result<Request, crate::Error> {
        let RequestBuilder {
            mut request,
            source_ip,
        } = self;
        let checked = (|| {
            check_identity_and_attributes(&RequestView::from(&*request))?;
            check_time(request.environment.time)?;
            request.environment.source_ip = parse_source_ip(source_ip)?;
            let resource = &mut request.resource;
            resource.uri = non_empty(resource.uri.take());
            resource.owner = non_empty(resource.owner.take());
            check_uri_owner(resource.uri.as_deref(), resource.owner.as_deref())
        })();
        checked.map_err(crate::Error::Request)?;
        Ok(*request)
    }
}

impl Request {
    /// Starts a request for the principal `id`.
    pub fn builder(id: impl Into<String>) -> RequestBuilder {
        let mut b = RequestBuilder::default();
        b.request.principal.id = id.into();
        b
    }

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
                token: None,
            }),
            action: Some(self.action.clone()),
            resource: Some(RawResource {
                uri: self.resource.uri.clone(),
                owner: self.resource.owner.clone(),
                attributes: map(&self.resource.attributes),
            }),
            environment: Some(RawEnvironment {
                time: self.environment.time.map(|t| t.to_string()),
                source_ip: self
                    .environment
                    .source_ip
                    .as_ref()
                    .map(|ip| ip.text.to_string()),
                port: self.environment.port.map(Value::from),
                attributes: map(&self.environment.attributes),
            }),
            explain: None,
        }
    }

    /// The request in the JSON shape `arbiter eval` reads (SPEC section 3).
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

fn check_attributes(
    field: &str,
    map: Attr<'_>,
    reserved: &[&str],
    budget: &mut usize,
) -> Result<(), RequestError> {
    for name in reserved {
        if map.get(name).is_some() {
            let part = field.trim_end_matches(".attributes");
            return Err(RequestError::new(
                format!("{field}.{name}"),
                format!("`{name}` is reserved; set `{part}.{name}` instead"),
            ));
        }
    }
    let root = FieldPath::Root(field);
    for (k, v) in map.entries() {
        check_key(field, k)?;
        check_value(&root.key(k), v, 1, budget)?;
    }
    Ok(())
}

fn check_value(
    field: &FieldPath<'_>,
    v: Attr<'_>,
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
    match v.shape() {
        Shape::Str(s) if s.len() > MAX_STRING_BYTES => Err(RequestError::new(
            field.to_string(),
            format!("longer than {MAX_STRING_BYTES} bytes"),
        )),
        Shape::List => v
            .items()
            .try_for_each(|i| check_value(field, i, depth + 1, budget)),
        Shape::Map => v.entries().try_for_each(|(k, i)| {
            if k.len() > MAX_STRING_BYTES {
                return Err(RequestError::new(
                    field.to_string(),
                    format!("an attribute name is longer than {MAX_STRING_BYTES} bytes"),
                ));
            }
            check_value(&field.key(k), i, depth + 1, budget)
        }),
        Shape::Num(n) if n.is_none_or(|f| !f.is_finite()) => {
            Err(RequestError::new(field.to_string(), "number out of range"))
        }
        _ => Ok(()),
    }
}

/// Most entries of a map that [`attribute`] scans rather than hashes the key.
const SCANNED_ENTRIES: usize = 8;

/// The value of `key` in an attribute map. Request attributes are mostly small maps, where comparing each key is
/// cheaper than hashing the one asked for; larger maps are looked up by hash.
#[inline]
pub fn attribute<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    if map.len() <= SCANNED_ENTRIES {
        map.iter().find_map(|(k, v)| (k == key).then_some(v))
    } else {
        map.get(key)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    proptest::proptest! {
        /// Scanned or hashed, a key finds what the map holds for it, at every size around the cut.
        #[test]
        fn attribute_finds_what_the_map_holds(
            keys in proptest::collection::vec("[a-c]{0,3}", 0..20),
            asked in "[a-c]{0,3}",
        ) {
            let map: Map<String, Value> =
                keys.iter().enumerate().map(|(i, k)| (k.clone(), Value::from(i))).collect();
            proptest::prop_assert_eq!(attribute(&map, &asked), map.get(&asked));
        }
    }

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
        // Strictness: no comma before the fraction, offsets within ±23:59, real dates.
        assert!(parse_rfc3339("2026-11-23T12:00:00,5Z").is_none());
        assert!(parse_rfc3339("2026-11-23T12:00:00+24:00").is_none());
        assert!(parse_rfc3339("2026-11-23T12:00:00+23:59").is_some());
        assert!(parse_rfc3339("2026-02-29T12:00:00Z").is_none());
        assert!(parse_rfc3339("2028-02-29T12:00:00Z").is_some());
        assert!(parse_rfc3339("2026-11-23T12:00:00.Z").is_none());
        // Any number of fraction digits, nanoseconds kept.
        let t = parse_rfc3339("2026-11-23T12:00:00.1234567891234Z").unwrap();
        assert_eq!(t.subsec_nanosecond(), 123_456_789);
        assert_eq!(
            parse_rfc3339("2026-11-23t12:00:00.5z")
                .unwrap()
                .subsec_nanosecond(),
            500_000_000
        );
        // A leap second reads as :59.
        assert_eq!(
            parse_rfc3339("2016-12-31T23:59:60Z"),
            parse_rfc3339("2016-12-31T23:59:59Z")
        );
        // Years 1 to 9999 in UTC.
        assert!(parse_rfc3339("0000-12-31T23:59:59Z").is_none());
        assert!(parse_rfc3339("0001-01-01T00:00:00Z").is_some());
        assert!(parse_rfc3339("0001-01-01T00:30:00+01:00").is_none());
        let last = parse_rfc3339("9999-12-31T23:59:59.9999999999Z").unwrap();
        assert_eq!(last.to_string(), "9999-12-31T23:59:59.999999999Z");
        assert!(parse_rfc3339("9999-12-31T20:00:00-04:00").is_none());
        assert_eq!(
            parse_rfc3339("9999-12-31T19:59:59-04:00"),
            Moment::from_second(253_402_300_799)
        );
        assert!(parse_rfc3339("9999-12-31T19:59:59-04:00") < Some(last));
        assert_eq!(
            parse_rfc3339("2026-11-23T13:00:00+01:00"),
            parse_rfc3339("2026-11-23T12:00:00Z")
        );
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
