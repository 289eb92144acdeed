//! Envoy ext_authz v3 (`envoy.service.auth.v3.Authorization/Check`) on the gRPC listeners.
//!
//! The HTTP request Envoy describes goes through `http_call` (the `HttpMapping` routes or the
//! `context_extensions` `arbiter.action` / `arbiter.resource`; the bearer token, the mTLS peer principal or a
//! trusted header; `source.address`). The answer:
//! - allowed: status OK, and an `OkHttpResponse` adding `x-arbiter-decision`, `x-arbiter-policies` and
//!   `x-arbiter-call-id` to the upstream request;
//! - denied: PERMISSION_DENIED with a 403 `DeniedHttpResponse`, or UNAUTHENTICATED with a 401 (and
//!   `WWW-Authenticate: Bearer`), the body a JSON object with the reason and policies;
//! - bad input (an unparsable address, a mapped resource over a limit): INVALID_ARGUMENT with a 400 and a JSON
//!   error naming the field; no policy set yet or an internal error: a denial with 503 / 500, never a transport
//!   error that Envoy's `failure_mode_allow` could turn into an ALLOW.

use std::sync::Arc;

use envoy_types::ext_authz::v3::pb::{
    Authorization, CheckRequest, CheckResponse, DeniedHttpResponse, HeaderValue, HeaderValueOption,
    HttpResponse, HttpStatus, OkHttpResponse,
};
use envoy_types::pb::envoy::config::core::v3::{address, socket_address};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use serde_json::json;
use tonic::{Code, Request, Response, Status};

use super::decide::{DoorError, ServiceState, Verdict};
use super::forward_auth::decision_policies;
use super::http::verdict_json;
use super::http_call::{self, HttpCall};
use crate::eval::Reason;

/// The ext_authz service.
#[derive(Debug, Clone)]
pub struct ExtAuthzService {
    state: Arc<ServiceState>,
}

impl ExtAuthzService {
    pub fn new(state: Arc<ServiceState>) -> Self {
        ExtAuthzService { state }
    }

    /// One check, synchronously.
    pub fn check(&self, request: CheckRequest) -> Result<CheckResponse, Status> {
        let attributes = request.attributes.unwrap_or_default();
        let http = attributes.request.as_ref().and_then(|r| r.http.as_ref());
        let method = http.map_or("", |h| h.method.as_str());
        let path = http.map_or("", |h| h.path.as_str());
        let header = |name: &str| -> Option<String> {
            let h = http?;
            if let Some(v) = h.headers.get(name) {
                return Some(v.clone());
            }
            let map = h.header_map.as_ref()?;
            let values: Vec<String> = map
                .headers
                .iter()
                .filter(|hv| hv.key.eq_ignore_ascii_case(name))
                .map(|hv| {
                    if hv.raw_value.is_empty() {
                        hv.value.clone()
                    } else {
                        String::from_utf8_lossy(&hv.raw_value).into_owned()
                    }
                })
                .collect();
            (!values.is_empty()).then(|| values.join(","))
        };
        let header_count = |name: &str| -> usize {
            let Some(h) = http else { return 0 };
            match &h.header_map {
                Some(map) => map
                    .headers
                    .iter()
                    .filter(|hv| hv.key.eq_ignore_ascii_case(name))
                    .count(),
                None => usize::from(h.headers.contains_key(name)),
            }
        };
        let source = attributes.source.as_ref();
        let (source_ip, port) = match source
            .and_then(|p| p.address.as_ref())
            .and_then(|a| a.address.as_ref())
        {
            Some(address::Address::SocketAddress(sa)) => (
                (!sa.address.is_empty()).then(|| sa.address.clone()),
                match sa.port_specifier {
                    Some(socket_address::PortSpecifier::PortValue(p)) if p != 0 => Some(p),
                    _ => None,
                },
            ),
            _ => (None, None),
        };
        let context = &attributes.context_extensions;
        let call = HttpCall {
            method,
            path,
            header: &header,
            header_count: &header_count,
            source_ip,
            port,
            peer_principal: source.map(|p| p.principal.as_str()),
            action: context.get("arbiter.action").map(String::as_str),
            resource: context.get("arbiter.resource").map(String::as_str),
        };
        Ok(match http_call::decide(&self.state, call) {
            Ok((verdict, snapshot)) => answer(&verdict, &snapshot.revision),
            Err(DoorError::Invalid(e)) => denied(
                Code::InvalidArgument,
                &format!("{}: {}", e.field, e.message),
                400,
                json!({"error": {"code": "invalid_argument", "field": e.field, "message": e.message}}),
            ),
            // Envoy decides on a transport error by its own `failure_mode_allow`: answer a denial instead.
            Err(DoorError::Unavailable(m)) => denied(
                Code::Unavailable,
                &m,
                503,
                json!({"error": {"code": "unavailable", "field": "", "message": m}}),
            ),
            Err(DoorError::Exhausted(m)) => denied(
                Code::ResourceExhausted,
                &m,
                429,
                json!({"error": {"code": "resource_exhausted", "field": "", "message": m}}),
            ),
            Err(DoorError::Internal(m)) => denied(
                Code::Internal,
                &m,
                500,
                json!({"error": {"code": "internal", "field": "", "message": m}}),
            ),
        })
    }
}

fn header(key: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn answer(verdict: &Verdict, revision: &str) -> CheckResponse {
    if verdict.decision.allowed {
        return CheckResponse {
            status: Some(RpcStatus {
                code: Code::Ok as i32,
                message: String::new(),
                details: Vec::new(),
            }),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                headers: vec![
                    header("x-arbiter-decision", "allow"),
                    header("x-arbiter-policies", &decision_policies(verdict)),
                    header("x-arbiter-call-id", &verdict.call_id),
                ],
                ..Default::default()
            })),
            ..Default::default()
        };
    }
    let body = verdict_json(verdict, revision);
    if verdict.decision.reason == Reason::Unauthenticated {
        let mut response = denied(Code::Unauthenticated, "unauthenticated", 401, body);
        if let Some(HttpResponse::DeniedResponse(d)) = response.http_response.as_mut() {
            d.headers.push(header("www-authenticate", "Bearer"));
        }
        response
    } else {
        denied(
            Code::PermissionDenied,
            verdict.decision.reason.as_str(),
            403,
            body,
        )
    }
}

fn denied(code: Code, message: &str, http_status: i32, body: serde_json::Value) -> CheckResponse {
    CheckResponse {
        status: Some(RpcStatus {
            code: code as i32,
            message: message.to_string(),
            details: Vec::new(),
        }),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus { code: http_status }),
            headers: vec![header("content-type", "application/json")],
            body: body.to_string(),
        })),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl Authorization for ExtAuthzService {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let msg = request.into_inner();
        let service = self.clone();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || service.check(msg)))
            .map_err(|_| Status::from(super::decide::internal_panic("checking")))?
            .map(Response::new)
    }
}
