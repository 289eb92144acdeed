//! `/v1/forward-auth`: the decision for a request a proxy is about to forward (nginx `auth_request`, Traefik
//! ForwardAuth, Envoy's HTTP ext_authz). Answers 200 (allowed), 401 (`unauthenticated`, with
//! `WWW-Authenticate: Bearer`) or 403, with a JSON body holding the reason and policies, and the headers
//! `x-arbiter-decision`, `x-arbiter-reason`, `x-arbiter-policies` and `x-arbiter-call-id`.
//!
//! The original request is read from, in order:
//! - method: `X-Original-Method` (nginx), `X-Forwarded-Method` (Traefik), else this request's method;
//! - path: `X-Original-URI` (nginx), `X-Forwarded-Uri` (Traefik), else what follows `/v1/forward-auth` (Envoy's
//!   HTTP ext_authz appends the original path to the configured prefix);
//! - client: `X-Real-IP`, the last `X-Forwarded-For` entry (the one the proxy added), else the connection's
//!   peer; port:
//!   `X-Forwarded-Port`;
//! - credentials: `Authorization`, then the mapping's trusted headers (see `http_call`).

use std::net::SocketAddr;

use http::{header, HeaderValue, StatusCode};
use hyper::body::Incoming;

use super::decide::Verdict;
use super::http::{json_response, verdict_json, Body, HttpDoor, HttpError};
use super::http_call::{self, HttpCall};
use crate::eval::Reason;
use crate::request::RequestError;

/// Answers one forward-auth request.
pub fn handle(
    door: &HttpDoor,
    req: http::Request<Incoming>,
    peer: Option<SocketAddr>,
) -> http::Response<Body> {
    if door.stopping.is_pulled() {
        return super::http::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "",
            "the server is stopping",
        );
    }
    match read(&req, peer) {
        Ok(forwarded) => {
            let header = |name: &str| forwarded.header(name);
            let header_count = |name: &str| forwarded.headers.get_all(name).iter().count();
            let call = HttpCall {
                method: &forwarded.method,
                path: &forwarded.path,
                header: &header,
                header_count: &header_count,
                source_ip: forwarded.source_ip.clone(),
                port: forwarded.port,
                peer_principal: None,
                action: None,
                resource: None,
            };
            match http_call::decide(&door.state, call) {
                Ok((verdict, snapshot)) => respond(&verdict, &snapshot.revision),
                Err(e) => HttpError::from(e).response(),
            }
        }
        Err(e) => HttpError::from(e).response(),
    }
}

/// The original request, as the proxy describes it.
struct Forwarded {
    method: String,
    path: String,
    source_ip: Option<String>,
    port: Option<u32>,
    headers: http::HeaderMap,
}

impl Forwarded {
    /// Every value of a header, comma-joined (all were checked to be visible ASCII).
    fn header(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!values.is_empty()).then(|| values.join(","))
    }
}

fn read(
    req: &http::Request<Incoming>,
    peer: Option<SocketAddr>,
) -> Result<Forwarded, RequestError> {
    let headers = req.headers();
    for (name, value) in headers {
        if value.to_str().is_err() {
            return Err(RequestError::new(name.as_str(), "is not visible ASCII"));
        }
    }
    let forwarded = Forwarded {
        method: String::new(),
        path: String::new(),
        source_ip: None,
        port: None,
        headers: headers.clone(),
    };
    // Envoy's HTTP ext_authz appends the original path (and query) to the configured prefix.
    let suffix = req
        .uri()
        .path()
        .strip_prefix("/v1/forward-auth")
        .unwrap_or("");
    let suffix = match (suffix, req.uri().query()) {
        ("", _) => "/".to_string(),
        (path, Some(q)) => format!("{path}?{q}"),
        (path, None) => path.to_string(),
    };
    let method = forwarded
        .header("x-original-method")
        .or_else(|| forwarded.header("x-forwarded-method"))
        .unwrap_or_else(|| req.method().as_str().to_string());
    let path = forwarded
        .header("x-original-uri")
        .or_else(|| forwarded.header("x-forwarded-uri"))
        .unwrap_or(suffix);
    let ip = |name: &str, text: &str| -> Result<String, RequestError> {
        let text = text.trim();
        text.parse::<std::net::IpAddr>()
            .map(|_| text.to_string())
            .map_err(|_| RequestError::new(name, format!("`{text}` is not an IP address")))
    };
    let source_ip = match (
        forwarded.header("x-real-ip"),
        forwarded.header("x-forwarded-for"),
    ) {
        (Some(real), _) => Some(ip("x-real-ip", &real)?),
        // The last entry is the one the nearest proxy added; earlier ones are whatever the client sent.
        (None, Some(chain)) => Some(ip(
            "x-forwarded-for",
            chain.rsplit(',').next().unwrap_or(""),
        )?),
        (None, None) => peer.map(|p| p.ip().to_string()),
    };
    let port = match forwarded.header("x-forwarded-port") {
        None => None,
        Some(p) => match p.trim().parse::<u16>() {
            Ok(p) => Some(u32::from(p)),
            Err(_) => {
                return Err(RequestError::new(
                    "x-forwarded-port",
                    format!("`{p}` is not a port number"),
                ))
            }
        },
    };
    Ok(Forwarded {
        method,
        path,
        source_ip,
        port,
        ..forwarded
    })
}

fn respond(verdict: &Verdict, revision: &str) -> http::Response<Body> {
    let status = if verdict.decision.allowed {
        StatusCode::OK
    } else if verdict.decision.reason == Reason::Unauthenticated {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::FORBIDDEN
    };
    let mut response = json_response(status, &verdict_json(verdict, revision));
    let h = response.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set("x-arbiter-decision", verdict.decision.decision_str());
    set("x-arbiter-reason", verdict.decision.reason.as_str());
    set("x-arbiter-policies", &decision_policies(verdict));
    set("x-arbiter-call-id", &verdict.call_id);
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// The determining policies, comma-separated.
pub fn decision_policies(verdict: &Verdict) -> String {
    verdict
        .decision
        .policies
        .iter()
        .map(|p| &**p)
        .collect::<Vec<_>>()
        .join(",")
}
