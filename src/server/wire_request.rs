//! An `AuthorizeRequest` as the fast reader of `wire` reads it ([`WireRequest`]): every string and attribute
//! value in one [`AttrDoc`], and the request's fields as places in it.
//!
//! A request that passes the checks every door applies is decided from the document itself ([`WireInput`]):
//! no `String` or JSON map is built for it, unless the decision log keeps a copy. Any other (a token to verify,
//! a port past 65535, a check that fails) becomes the [`RawRequest`] the proto conversion builds and is
//! validated as every door validates it, so that its identity and its error are exactly those of the other
//! paths. Identity is only consulted for a token (without one, `identify` answers "no token" and changes
//! nothing), so the document path does not call it.

use std::net::IpAddr;

use serde_json::Value;
use smallvec::SmallVec;

use super::convert::{AuthorizeInput, Identify};
use crate::attr::{Attr, AttrDoc, Span};
use crate::moment::Moment;
use crate::request::{RawEnvironment, RawPrincipal, RawRequest, RawResource, Request, RequestError};
use crate::request_ref::{RequestView, ViewGroups};

/// A decoded `AuthorizeRequest`: its strings and attribute maps in `doc`.
#[derive(Debug, Clone, Default)]
pub struct WireRequest {
    pub(crate) doc: AttrDoc,
    pub(crate) principal: Option<WirePrincipal>,
    pub(crate) action: Span,
    pub(crate) resource: Option<WireResource>,
    pub(crate) environment: Option<WireEnvironment>,
    pub(crate) explain: bool,
}

/// `AuthorizeRequest.principal`.
#[derive(Debug, Clone, Default)]
pub(crate) struct WirePrincipal {
    pub(crate) id: Span,
    pub(crate) groups: SmallVec<[Span; 4]>,
    /// The map node of the attributes.
    pub(crate) attributes: Option<u32>,
    /// A non-empty token.
    pub(crate) token: Option<Span>,
}

/// `AuthorizeRequest.resource`.
#[derive(Debug, Clone, Default)]
pub(crate) struct WireResource {
    pub(crate) uri: Span,
    pub(crate) owner: Span,
    pub(crate) attributes: Option<u32>,
}

/// `AuthorizeRequest.environment`, without its time (read and checked apart).
#[derive(Debug, Clone, Default)]
pub(crate) struct WireEnvironment {
    pub(crate) source_ip: Span,
    pub(crate) port: u32,
    pub(crate) attributes: Option<u32>,
}

/// A validated `AuthorizeRequest`: decided from its document, or owned.
#[derive(Debug)]
// The document is the common case: boxing it would cost an allocation on every call.
#[allow(clippy::large_enum_variant)]
pub enum Validated {
    Wire(WireInput),
    Owned(AuthorizeInput),
}

impl Validated {
    /// The owned input, to compare the two paths.
    #[cfg(test)]
    pub fn into_input(self) -> AuthorizeInput {
        match self {
            Validated::Owned(input) => input,
            Validated::Wire(input) => AuthorizeInput {
                request: input.view().to_request(),
                explain: input.request.explain,
                unauthenticated: None,
            },
        }
    }
}

/// A [`WireRequest`] that passed every check, with its time and parsed address.
#[derive(Debug)]
pub struct WireInput {
    request: WireRequest,
    time: Option<Moment>,
    source_ip: Option<IpAddr>,
}

impl WireInput {
    /// The request as evaluation reads it.
    pub fn view(&self) -> RequestView<'_> {
        let mut view = self.request.view(self.time);
        view.source_ip = self.source_ip.zip(source_ip_text(&self.request));
        view
    }

    /// Whether the caller asked for an explanation.
    pub fn explain(&self) -> bool {
        self.request.explain
    }
}

/// `environment.source_ip` as sent, when not empty.
fn source_ip_text(request: &WireRequest) -> Option<&str> {
    request
        .environment
        .as_ref()
        .map(|e| request.doc.text(e.source_ip))
        .filter(|s| !s.is_empty())
}

impl WireRequest {
    /// Validates the request with `time` (already checked) as [`AuthorizeInput::from_raw`] validates the
    /// proto conversion's: a request with a token, a port past 65535 or a failed check goes through it, so that
    /// the identity and the error are its own.
    pub fn validate(
        self,
        time: Option<Moment>,
        identify: Identify<'_>,
    ) -> Result<Validated, RequestError> {
        let token = self.principal.as_ref().is_some_and(|p| p.token.is_some());
        let port_in_range = self.environment.as_ref().is_none_or(|e| e.port <= 65_535);
        if !token && port_in_range {
            let mut view = self.view(time);
            let checked = view
                .check(source_ip_text(&self))
                .map(|()| view.source_ip.map(|(addr, _)| addr));
            if let Ok(source_ip) = checked {
                return Ok(Validated::Wire(WireInput {
                    request: self,
                    time,
                    source_ip,
                }));
            }
        }
        AuthorizeInput::from_raw(self.to_raw(), time, identify).map(Validated::Owned)
    }

    /// The request as evaluation reads it, before the checks: the address not yet parsed.
    fn view(&self, time: Option<Moment>) -> RequestView<'_> {
        let doc = &self.doc;
        let non_empty = |s: Span| Some(doc.text(s)).filter(|s| !s.is_empty());
        let attributes = |at: Option<u32>| at.map(|at| Attr::Doc(doc.get(at)));
        let (principal_id, groups, principal_attributes) = match &self.principal {
            Some(p) => (doc.text(p.id), &p.groups[..], attributes(p.attributes)),
            None => ("", &[][..], None),
        };
        let (uri, owner, resource_attributes) = match &self.resource {
            Some(r) => (non_empty(r.uri), non_empty(r.owner), attributes(r.attributes)),
            None => (None, None, None),
        };
        let (port, environment_attributes) = match &self.environment {
            Some(e) => (Some(e.port).filter(|&p| p != 0), attributes(e.attributes)),
            None => (None, None),
        };
        RequestView {
            principal_id,
            groups: ViewGroups::Doc(doc, groups),
            principal_attributes,
            action: doc.text(self.action),
            uri,
            owner,
            resource_attributes,
            time,
            source_ip: None,
            port,
            environment_attributes,
        }
    }

    /// The request as the proto conversion builds it from prost's message.
    pub(crate) fn to_raw(&self) -> RawRequest {
        let doc = &self.doc;
        RawRequest {
            principal: self.principal.as_ref().map(|p| p.to_raw(doc)),
            action: Some(doc.text(self.action).to_string()),
            resource: self.resource.as_ref().map(|r| r.to_raw(doc)),
            environment: self.environment.as_ref().map(|e| e.to_raw(doc)),
            explain: Some(self.explain),
        }
    }
}

/// The attribute map at `at`, as the proto conversion builds it (keys in order).
fn attributes_raw(doc: &AttrDoc, at: Option<u32>) -> Option<serde_json::Map<String, Value>> {
    at.map(|at| Attr::Doc(doc.get(at)).to_json_map())
}

impl WirePrincipal {
    /// The principal as the proto conversion builds it.
    pub(crate) fn to_raw(&self, doc: &AttrDoc) -> RawPrincipal {
        RawPrincipal {
            id: Some(doc.text(self.id).to_string()),
            groups: Some(self.groups.iter().map(|g| doc.text(*g).to_string()).collect()),
            attributes: attributes_raw(doc, self.attributes),
            token: self.token.map(|t| doc.text(t).to_string()),
        }
    }
}

impl WireResource {
    /// The resource as the proto conversion builds it.
    pub(crate) fn to_raw(&self, doc: &AttrDoc) -> RawResource {
        RawResource {
            uri: Some(doc.text(self.uri).to_string()),
            owner: Some(doc.text(self.owner).to_string()),
            attributes: attributes_raw(doc, self.attributes),
        }
    }
}

impl WireEnvironment {
    /// The environment as the proto conversion builds it, without the time.
    pub(crate) fn to_raw(&self, doc: &AttrDoc) -> RawEnvironment {
        RawEnvironment {
            // The time is set on the validated request directly, not through text.
            time: None,
            source_ip: Some(doc.text(self.source_ip).to_string()),
            port: Some(Value::from(self.port)),
            attributes: attributes_raw(doc, self.attributes),
        }
    }
}

/// What the decision path needs of a request: the view evaluation reads, and an owned copy for the decision
/// log (built only when one is kept).
pub(crate) trait Decidable {
    fn view(&self) -> RequestView<'_>;
    fn into_request(self) -> Request;
}

impl Decidable for Request {
    fn view(&self) -> RequestView<'_> {
        RequestView::from(self)
    }

    fn into_request(self) -> Request {
        self
    }
}

impl Decidable for WireInput {
    fn view(&self) -> RequestView<'_> {
        WireInput::view(self)
    }

    fn into_request(self) -> Request {
        WireInput::view(&self).to_request()
    }
}
