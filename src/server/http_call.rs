//! An HTTP request seen by a proxy (Envoy ext_authz, nginx `auth_request`, Traefik ForwardAuth), turned into an
//! Arbiter request and decided, for both proxy doors.
//!
//! - **Action and resource**: `context_extensions` `arbiter.action` / `arbiter.resource` when the proxy sets them
//!   (ext_authz), else the first `HttpMapping` route matching the method and path. No route: DENY
//!   `no_applicable_policy`, with the reason in the explanation.
//! - **Principal**, in this order: the `Authorization: Bearer` token (verified; a bad one is `unauthenticated`);
//!   the mTLS peer principal, when the mapping's `principal.mtls` is set; the trusted header named by
//!   `principal.header` (and `principal.groups_header`, comma-separated). None of them: `unauthenticated`.
//! - **Environment**: the client's address and port.

use std::sync::Arc;

use super::convert::AuthorizeInput;
use super::decide::{DoorError, ServiceState, Verdict};
use super::token::TokenError;
use crate::request::{RawEnvironment, RawPrincipal, RawRequest, RawResource, RequestError};
use crate::snapshot::Snapshot;

/// What a proxy tells about one HTTP request.
pub struct HttpCall<'a> {
    pub method: &'a str,
    /// The path, possibly with a query string.
    pub path: &'a str,
    /// A request header by lower-case name (several values joined with commas).
    pub header: &'a dyn Fn(&str) -> Option<String>,
    /// How many times a header was sent.
    pub header_count: &'a dyn Fn(&str) -> usize,
    pub source_ip: Option<String>,
    pub port: Option<u32>,
    /// The mTLS peer principal (ext_authz `source.principal`).
    pub peer_principal: Option<&'a str>,
    /// `context_extensions` `arbiter.action` and `arbiter.resource`.
    pub action: Option<&'a str>,
    pub resource: Option<&'a str>,
}

/// Maps and decides one HTTP request against one snapshot.
pub fn decide(
    state: &ServiceState,
    call: HttpCall<'_>,
) -> Result<(Verdict, Arc<Snapshot>), DoorError> {
    let snapshot = state.snapshot()?;
    let environment = RawEnvironment {
        time: None,
        source_ip: call.source_ip.clone(),
        port: call.port.map(serde_json::Value::from),
        attributes: None,
    };
    let (action, uri) = match call.action.filter(|a| !a.is_empty()) {
        Some(action) => (action.to_string(), call.resource.map(str::to_string)),
        None => match snapshot.compiled.http.resolve(call.method, call.path) {
            Some(mapped) => (mapped.action, mapped.resource),
            None => {
                let why = format!(
                    "no HttpMapping route matches {} {}",
                    call.method,
                    call.path.split('?').next().unwrap_or("")
                );
                // The environment is still validated: a bad address is bad input, never a silent deny.
                let env = RawRequest {
                    principal: Some(RawPrincipal {
                        id: Some("-".into()),
                        ..RawPrincipal::default()
                    }),
                    action: Some("-".into()),
                    resource: None,
                    environment: Some(environment),
                    explain: None,
                }
                .normalize()?
                .environment;
                let verdict = state.unmapped(&snapshot, why, env);
                return Ok((verdict, snapshot));
            }
        },
    };
    let principal = principal(&snapshot, &call)?;
    let raw = RawRequest {
        principal: Some(principal),
        action: Some(action),
        resource: Some(RawResource {
            uri,
            owner: None,
            attributes: None,
        }),
        environment: Some(environment),
        explain: None,
    };
    let input = AuthorizeInput::from_raw(raw, None, &|p| {
        if p.token.is_none() && p.id.is_none() {
            // No credentials at all: a stand-in principal, answered `unauthenticated`.
            let why = missing_credentials(&snapshot);
            p.id = Some("-".into());
            state.metrics.unauthenticated.increment(1);
            return Ok(Some(TokenError::NoCredentials(why)));
        }
        state.identify(p)
    })?;
    state.decide_on(snapshot.clone(), input)
}

/// The principal from the bearer token, the mTLS peer or the trusted headers, in that order; an empty principal
/// (no id, no token) when there is none.
fn principal(snapshot: &Snapshot, call: &HttpCall<'_>) -> Result<RawPrincipal, RequestError> {
    let mut principal = RawPrincipal::default();
    if let Some(auth) = (call.header)("authorization") {
        let mut headers = http::HeaderMap::new();
        let value = http::HeaderValue::from_str(&auth)
            .map_err(|_| RequestError::new("authorization", "is not visible ASCII"))?;
        headers.insert(http::header::AUTHORIZATION, value);
        principal.token = super::http::bearer(&headers)?;
        return Ok(principal);
    }
    let source = &snapshot.compiled.http.principal;
    if source.mtls {
        if let Some(peer) = call.peer_principal.filter(|p| !p.is_empty()) {
            principal.id = Some(peer.to_string());
            return Ok(principal);
        }
    }
    if let Some(header) = &source.header {
        // A trusted header sent twice means a client's own value may have been appended, not replaced.
        for name in [Some(header), source.groups_header.as_ref()]
            .into_iter()
            .flatten()
        {
            if (call.header_count)(name) > 1 {
                return Err(RequestError::new(
                    name.to_string(),
                    "a trusted header must be sent once (the proxy must replace the client's own)",
                ));
            }
        }
        if let Some(id) = (call.header)(header).filter(|v| !v.trim().is_empty()) {
            principal.id = Some(id.trim().to_string());
            if let Some(groups_header) = &source.groups_header {
                let groups = (call.header)(groups_header).unwrap_or_default();
                principal.groups = Some(
                    groups
                        .split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_string)
                        .collect(),
                );
            }
        }
    }
    Ok(principal)
}

fn missing_credentials(snapshot: &Snapshot) -> String {
    let source = &snapshot.compiled.http.principal;
    let mut tried = vec!["no bearer token".to_string()];
    if source.mtls {
        tried.push("no mTLS peer principal".into());
    }
    if let Some(h) = &source.header {
        tried.push(format!("no `{h}` header"));
    }
    tried.join(", ")
}
