//! The HTTP/JSON door (`--http-listen`, SPEC section 6): the same decisions as gRPC, for `curl`, scripts and
//! SOAR playbooks, and `/v1/forward-auth` for proxies.
//!
//! | route | answer |
//! |---|---|
//! | `POST /v1/authorize` | one decision; the body is the request JSON of `arbiter eval` |
//! | `POST /v1/authorize/batch` | `{principal, environment, checks: [{action, resource}], explain}` |
//! | `POST /v1/plan` | the query plan: `{principal, action \| actions, environment, resource: {uri, owner}, sql}` |
//! | `POST /v1/simulate` | `{files: {path: yaml}, requests: [...]}`: the report of `arbiter simulate --format json` |
//! | `GET /v1/status` | the loaded set and the reload history |
//! | `GET /healthz`, `GET /readyz` | liveness; readiness (503 until the first set is loaded, and while stopping) |
//! | `GET /v1/openapi.json` | the OpenAPI 3 document of this API (`openapi/arbiter.json` in the repository) |
//! | any `/v1/forward-auth...` | nginx `auth_request`, Traefik ForwardAuth, Envoy HTTP ext_authz (see `forward_auth`) |
//!
//! `Authorization: Bearer <token>` is the request's token (as `principal.token`). Errors are JSON,
//! `{"error": {"code", "field", "message"}}`, with 400 (bad input, naming the field), 404, 405, 413 (a body over
//! the message limit), 415 (not `application/json`), 500 (an engine bug, never an ALLOW) or 503 (no policy set
//! yet, or stopping).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use crate::moment::Moment;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::convert::{no_tokens, AuthorizeInput, BatchInput, RawBatch};
use super::decide::{guarded, DoorError, ServiceState, Verdict};
use super::edge::InFlight;
use super::forward_auth;
use crate::request::{RawRequest, RequestError};
use crate::shutdown::Trigger;
use crate::simulate::replay::Logged;

/// The OpenAPI document served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../../openapi/arbiter.json");

/// A response body.
pub type Body = Full<Bytes>;

/// What every HTTP handler reads.
#[derive(Debug, Clone)]
pub struct HttpDoor {
    pub state: Arc<ServiceState>,
    pub max_body_bytes: usize,
    /// Whether `/v1/simulate` and `/v1/status` are served here (not when an admin listener serves them).
    pub admin: bool,
    /// The connection limits (this listener's own gate).
    pub gate: super::limits::ConnectionGate,
    /// The longest a request body may take to arrive (`--request-timeout`).
    pub body_timeout: Duration,
    pub stopping: Trigger,
    pub inflight: InFlight,
}

/// Serves HTTP/1.1 on `listener` until `stop` is pulled, then lets every open request finish.
pub async fn serve(
    listener: TcpListener,
    door: HttpDoor,
    stop: Trigger,
) -> Result<(), tonic::transport::Error> {
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.pulled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    door.gate.accept_failed(&e).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let Some(stream) = door.gate.admit(stream) else {
            continue;
        };
        let door = door.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| {
                let door = door.clone();
                async move { Ok::<_, Infallible>(door.handle(req, Some(peer)).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "http: connection error");
                    }
                }
                _ = stop.pulled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
        // Reap finished connections as we go.
        while connections.try_join_next().is_some() {}
    }
    while connections.join_next().await.is_some() {}
    Ok(())
}

impl HttpDoor {
    /// Routes one request.
    pub async fn handle(
        &self,
        req: http::Request<Incoming>,
        peer: Option<SocketAddr>,
    ) -> http::Response<Body> {
        let _guard = self.inflight.enter();
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        if path == "/v1/forward-auth" || path.starts_with("/v1/forward-auth/") {
            return forward_auth::handle(self, req, peer);
        }
        match (method.clone(), path.as_str()) {
            (Method::POST, "/v1/authorize") => self.json_call(req, Self::authorize).await,
            (Method::POST, "/v1/authorize/batch") => self.json_call(req, Self::batch).await,
            (Method::POST, "/v1/plan") => self.json_call(req, Self::plan).await,
            (Method::POST, "/v1/simulate") if !self.admin => admin_elsewhere(),
            (Method::GET | Method::HEAD, "/v1/status") if !self.admin => admin_elsewhere(),
            (Method::POST, "/v1/simulate") => self.simulate(req).await,
            (Method::GET | Method::HEAD, "/v1/status") => ok(self.status()),
            (Method::GET | Method::HEAD, "/healthz") => ok(json!({"status": "ok"})),
            (Method::GET | Method::HEAD, "/readyz") => self.ready(),
            (Method::GET | Method::HEAD, "/v1/openapi.json") => {
                let mut response =
                    http::Response::new(Full::new(Bytes::from_static(OPENAPI.as_bytes())));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                response
            }
            (_, "/v1/authorize" | "/v1/authorize/batch" | "/v1/plan" | "/v1/simulate") => {
                not_allowed("POST")
            }
            (_, "/v1/status" | "/healthz" | "/readyz" | "/v1/openapi.json") => {
                not_allowed("GET, HEAD")
            }
            _ => error(
                StatusCode::NOT_FOUND,
                "not_found",
                "",
                &format!("no route {path}: see /v1/openapi.json"),
            ),
        }
    }

    /// Reads a JSON body (checking the media type and the size), then runs `call` on it.
    async fn json_call(
        &self,
        req: http::Request<Incoming>,
        call: fn(&Self, Value, &HeaderMap) -> Result<Value, HttpError>,
    ) -> http::Response<Body> {
        let headers = req.headers().clone();
        match self
            .read_json(req)
            .await
            .and_then(|body| call(self, body, &headers))
        {
            Ok(value) => ok(value),
            Err(e) => e.response(),
        }
    }

    async fn read_json(&self, req: http::Request<Incoming>) -> Result<Value, HttpError> {
        if self.stopping.is_pulled() {
            return Err(HttpError::unavailable("the server is stopping"));
        }
        let media = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        match media.as_deref() {
            Some("application/json") => {}
            other => {
                return Err(HttpError {
                    status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    code: "unsupported_media_type",
                    field: "content-type".into(),
                    message: format!(
                        "the body must be application/json, found {}",
                        other.unwrap_or("no content-type")
                    ),
                })
            }
        }
        let limit = self.max_body_bytes;
        let collected = tokio::time::timeout(
            self.body_timeout,
            Limited::new(req.into_body(), limit).collect(),
        )
        .await;
        let Ok(collected) = collected else {
            return Err(HttpError {
                status: StatusCode::REQUEST_TIMEOUT,
                code: "deadline_exceeded",
                field: "body".into(),
                message: format!(
                    "the body did not arrive within {:?} (--request-timeout)",
                    self.body_timeout
                ),
            });
        };
        let bytes = match collected {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(HttpError {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    code: "resource_exhausted",
                    field: "body".into(),
                    message: format!("request body larger than the limit of {limit} bytes"),
                })
            }
            Err(e) => {
                return Err(HttpError::invalid(
                    "body",
                    &format!("cannot read the body: {e}"),
                ))
            }
        };
        let value = serde_json::from_slice::<Value>(&bytes)
            .map_err(|e| HttpError::invalid("body", &format!("not JSON: {e}")))?;
        if !value.is_object() {
            return Err(HttpError::invalid("body", "must be a JSON object"));
        }
        Ok(value)
    }

    fn authorize(&self, body: Value, headers: &HeaderMap) -> Result<Value, HttpError> {
        let state = &*self.state;
        let input = guarded("reading the request", || {
            let mut raw = RawRequest::from_json(body)?;
            bearer_into(headers, raw.principal.get_or_insert_with(Default::default))?;
            AuthorizeInput::from_raw(raw, None, &|p| state.identify(p))
        })?;
        let (verdict, snapshot) = state.decide(input)?;
        Ok(verdict_json(&verdict, &snapshot.revision))
    }

    fn batch(&self, body: Value, headers: &HeaderMap) -> Result<Value, HttpError> {
        let state = &*self.state;
        let input = guarded("reading the request", || {
            let mut raw: RawBatch = crate::request::from_json_value(body)?;
            bearer_into(headers, raw.principal.get_or_insert_with(Default::default))?;
            BatchInput::from_raw(raw, None, &|p| state.identify(p))
        })?;
        let (verdicts, snapshot) = state.decide_batch(input)?;
        Ok(json!({
            "results": verdicts.iter().map(|v| verdict_json(v, &snapshot.revision)).collect::<Vec<_>>(),
            "revision": snapshot.revision,
        }))
    }

    fn plan(&self, body: Value, headers: &HeaderMap) -> Result<Value, HttpError> {
        let raw = guarded("reading the request", || {
            let mut raw: crate::plan::RawPlanRequest = crate::request::from_json_value(body)?;
            bearer_into(headers, raw.principal.get_or_insert_with(Default::default))?;
            Ok(raw)
        })?;
        Ok(self.state.plan(raw, None)?.to_json())
    }

    async fn simulate(&self, req: http::Request<Incoming>) -> http::Response<Body> {
        let body = match self.read_json(req).await {
            Ok(b) => b,
            Err(e) => return e.response(),
        };
        let size = body
            .get("files")
            .and_then(Value::as_object)
            .map_or((0, 0), |files| {
                (
                    files.len(),
                    files
                        .iter()
                        .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
                        .sum(),
                )
            });
        if let Err(e) = self.state.check_simulate_size(size.0, size.1) {
            return HttpError::from(e).response();
        }
        let slot = match self.state.simulation_slot() {
            Ok(slot) => slot,
            Err(e) => return HttpError::from(e).response(),
        };
        let parsed = guarded("reading the request", || simulate_input(body));
        let (files, requests) = match parsed {
            Ok(p) => p,
            Err(e) => return HttpError::from(e).response(),
        };
        let current = match self.state.snapshot() {
            Ok(s) => s,
            Err(e) => return HttpError::from(e).response(),
        };
        let superuser = self.state.superuser.clone();
        let budget = self.state.lockout_budget;
        let report = tokio::task::spawn_blocking(move || {
            // The slot is held until the work ends, even when the caller has gone (a deadline).
            let _slot = slot;
            let now = Moment::now();
            let sources = crate::load::SourceSet::from_files(files);
            let logged: Vec<Logged> = requests
                .into_iter()
                .map(|request| Logged {
                    time: request.environment.time.unwrap_or(now),
                    request,
                })
                .collect();
            let options = crate::simulate::LockoutOptions {
                as_of: now,
                budget,
                superuser: Some(superuser),
            };
            crate::simulate::report::simulate(Some(&current), &sources, Some(&logged), &options)
        })
        .await;
        match report {
            Ok(report) => ok(serde_json::to_value(&report).unwrap_or(Value::Null)),
            Err(_) => HttpError::from(super::decide::internal_panic("simulating")).response(),
        }
    }

    fn status(&self) -> Value {
        let state = &*self.state;
        let view = state.reload.view(&state.store);
        let failure = view.last_error;
        let mut status = json!({
            "revision": null,
            "loaded_at": null,
            "policies": 0,
            "attachments": 0,
            "groups": 0,
            "guards": 0,
            "warnings": 0,
            "last_reload_error": failure.as_ref().map(|f| f.message.clone()).unwrap_or_default(),
            "last_reload_error_at": failure.as_ref().map(|f| f.at.to_string()),
            "reloads_ok": view.reloads_ok,
            "reloads_failed": view.reloads_failed,
        });
        if let Some(snapshot) = view.snapshot {
            status["revision"] = json!(snapshot.revision);
            status["loaded_at"] = json!(snapshot.loaded_at.to_string());
            status["policies"] = json!(snapshot.policy_count());
            status["attachments"] = json!(snapshot.attachment_count());
            status["groups"] = json!(snapshot.group_count());
            status["guards"] = json!(snapshot.compiled.guards.len());
            status["warnings"] = json!(snapshot.warnings.len());
        }
        if let Some(tls) = &state.tls {
            status["tls"] = json!({
                "not_after": tls.not_after().map(|t| t.to_string()),
                "last_reload_error": tls.last_error().unwrap_or_default(),
            });
        }
        if let Some(tokens) = &state.tokens {
            status["token_keys"] = json!({
                "revision": tokens.keys_revision(),
                "last_reload_error": tokens.last_error().unwrap_or_default(),
            });
        }
        status
    }

    fn ready(&self) -> http::Response<Body> {
        if self.stopping.is_pulled() {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "",
                "the server is stopping",
            );
        }
        match self.state.store.load() {
            Some(snapshot) => ok(json!({"status": "ready", "revision": snapshot.revision})),
            None => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "",
                "no policy set is loaded yet",
            ),
        }
    }
}

/// `Authorization: Bearer <token>` as the principal's token. A token in the body too is an error.
pub fn bearer_into(
    headers: &HeaderMap,
    principal: &mut crate::request::RawPrincipal,
) -> Result<(), RequestError> {
    let Some(token) = bearer(headers)? else {
        return Ok(());
    };
    if principal.token.as_deref().is_some_and(|t| !t.is_empty()) {
        return Err(RequestError::new(
            "principal.token",
            "give the token in the body or in the Authorization header, not both",
        ));
    }
    principal.token = Some(token);
    Ok(())
}

/// The bearer token of an `Authorization` header, if any; another scheme is an error.
pub fn bearer(headers: &HeaderMap) -> Result<Option<String>, RequestError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| RequestError::new("authorization", "is not visible ASCII"))?;
    match text.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim().to_string()))
        }
        _ => Err(RequestError::new(
            "authorization",
            "must be `Bearer <token>`",
        )),
    }
}

/// A decision as JSON: the fields of `arbiter eval`'s output, plus the call id.
pub fn verdict_json(verdict: &Verdict, revision: &str) -> Value {
    let mut out = Map::new();
    out.insert("decision".into(), json!(verdict.decision.decision_str()));
    out.insert("policies".into(), json!(verdict.decision.policies));
    out.insert("reason".into(), json!(verdict.decision.reason.as_str()));
    out.insert(
        "undetermined_allow".into(),
        json!(verdict.decision.undetermined_allow),
    );
    out.insert("revision".into(), json!(revision));
    out.insert("call_id".into(), json!(&*verdict.call_id));
    out.insert("time".into(), json!(verdict.time.to_string()));
    if let Some(explanation) = verdict.explanation_json() {
        out.insert("explanation".into(), explanation);
    }
    Value::Object(out)
}

/// The body of `POST /v1/simulate`: the files (checked as `Simulate` checks them) and the requests.
#[allow(clippy::type_complexity)]
fn simulate_input(
    body: Value,
) -> Result<
    (
        Vec<(std::path::PathBuf, String)>,
        Vec<crate::request::Request>,
    ),
    RequestError,
> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[serde(default)]
        files: std::collections::BTreeMap<String, String>,
        #[serde(default)]
        requests: Vec<Value>,
    }
    let body: Body = crate::request::from_json_value(body)?;
    let files = super::convert::simulate_files(body.files)?;
    let mut requests = Vec::with_capacity(body.requests.len());
    for (i, r) in body.requests.into_iter().enumerate() {
        let at =
            |e: RequestError| RequestError::new(format!("requests[{i}].{}", e.field), e.message);
        let raw = RawRequest::from_json(r).map_err(at)?;
        requests.push(
            AuthorizeInput::from_raw(raw, None, &no_tokens)
                .map_err(at)?
                .request,
        );
    }
    Ok((files, requests))
}

/// An HTTP error answer.
#[derive(Debug, Clone)]
pub struct HttpError {
    pub status: StatusCode,
    pub code: &'static str,
    pub field: String,
    pub message: String,
}

impl HttpError {
    fn invalid(field: &str, message: &str) -> HttpError {
        HttpError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_argument",
            field: field.into(),
            message: message.into(),
        }
    }

    fn unavailable(message: &str) -> HttpError {
        HttpError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            field: String::new(),
            message: message.into(),
        }
    }

    pub fn response(&self) -> http::Response<Body> {
        error(self.status, self.code, &self.field, &self.message)
    }
}

impl From<DoorError> for HttpError {
    fn from(e: DoorError) -> HttpError {
        match e {
            DoorError::Invalid(e) => HttpError::invalid(&e.field, &e.message),
            DoorError::Unavailable(m) => HttpError::unavailable(&m),
            DoorError::Exhausted(m) => HttpError {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: "resource_exhausted",
                field: String::new(),
                message: m,
            },
            DoorError::Internal(m) => HttpError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "internal",
                field: String::new(),
                message: m,
            },
        }
    }
}

impl From<RequestError> for HttpError {
    fn from(e: RequestError) -> HttpError {
        HttpError::invalid(&e.field, &e.message)
    }
}

/// `403`: the admin routes are served on the admin listener.
fn admin_elsewhere() -> http::Response<Body> {
    error(
        StatusCode::FORBIDDEN,
        "permission_denied",
        "",
        "served on the admin listener (--admin-listen / --admin-uds) only",
    )
}

/// `405` with the `Allow` header.
fn not_allowed(allow: &'static str) -> http::Response<Body> {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "",
        &format!("use {allow}"),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// `200` with a JSON body.
pub fn ok(value: Value) -> http::Response<Body> {
    json_response(StatusCode::OK, &value)
}

/// A JSON answer with `status`.
pub fn json_response(status: StatusCode, value: &Value) -> http::Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = http::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A JSON error: `{"error": {"code", "field", "message"}}`.
pub fn error(status: StatusCode, code: &str, field: &str, message: &str) -> http::Response<Body> {
    json_response(
        status,
        &json!({"error": {"code": code, "field": field, "message": message}}),
    )
}
