//! A request borrowed from the caller's own data ([`RequestRef`]), and the view every evaluation reads
//! ([`RequestView`]): of an owned [`Request`], a borrowed one, or a request the gRPC door read into an
//! [`AttrDoc`]. All three are decided by the same code, after the same checks: a borrowed request copies
//! nothing and allocates nothing before its decision.

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::attr::{Attr, AttrDoc, Span};
use crate::moment::Moment;
use crate::request::{
    check_identity_and_attributes, check_time, check_uri_owner, parse_ip, Request, RequestError,
};

/// The principal's groups, as the caller holds them.
#[derive(Debug, Clone, Copy)]
pub enum Groups<'a> {
    /// A slice of `String`s (as a [`Request`] holds them).
    Strings(&'a [String]),
    /// A slice of `&str`.
    Strs(&'a [&'a str]),
}

impl Default for Groups<'_> {
    fn default() -> Self {
        Groups::Strs(&[])
    }
}

impl<'a> Groups<'a> {
    /// Each group, in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        let (strings, strs): (&'a [String], &'a [&'a str]) = match *self {
            Groups::Strings(s) => (s, &[]),
            Groups::Strs(s) => (&[], s),
        };
        strings.iter().map(String::as_str).chain(strs.iter().copied())
    }
}

impl<'a> From<&'a [String]> for Groups<'a> {
    fn from(groups: &'a [String]) -> Self {
        Groups::Strings(groups)
    }
}

impl<'a> From<&'a Vec<String>> for Groups<'a> {
    fn from(groups: &'a Vec<String>) -> Self {
        Groups::Strings(groups)
    }
}

impl<'a> From<&'a [&'a str]> for Groups<'a> {
    fn from(groups: &'a [&'a str]) -> Self {
        Groups::Strs(groups)
    }
}

impl<'a, const N: usize> From<&'a [&'a str; N]> for Groups<'a> {
    fn from(groups: &'a [&'a str; N]) -> Self {
        Groups::Strs(groups)
    }
}

/// An authorization request that borrows every string and map from the caller: the same request as [`Request`]
/// (SPEC section 3), checked by the same rules when it is decided ([`crate::Engine::decide_ref`]), without copying
/// a string or building a map. As at every door, `Some("")` is absent for the URI, the owner and the address, and
/// port 0 is absent; an empty principal id, action or group is an error, and so are an address that is not an IP,
/// a string over 64 KiB, a reserved name, too deep a value or too many values in the attribute maps, and a time
/// before year 1.
///
/// ```
/// use arbiter::{Engine, RequestRef};
///
/// let engine = Engine::from_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))?;
/// let groups = ["admin"];
/// let request = RequestRef {
///     principal_id: "carol",
///     groups: (&groups).into(),
///     action: "EncryptWithKey",
///     resource_uri: Some("kylo:kylo:vault:keys:k1"),
///     source_ip: Some("10.1.2.3"),
///     ..RequestRef::default()
/// };
/// let decision = engine.decide_ref(&request)?;
/// assert!(decision.allowed);
///
/// // The same checks as every door: the error names the field.
/// let bad = RequestRef { source_ip: Some("10.1"), ..request };
/// assert!(engine.decide_ref(&bad).unwrap_err().to_string().contains("environment.source_ip"));
/// # Ok::<(), arbiter::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestRef<'a> {
    /// `principal.id`: non-empty.
    pub principal_id: &'a str,
    /// `principal.groups`: each non-empty.
    pub groups: Groups<'a>,
    /// `principal.attributes` (claims).
    pub principal_attributes: Option<&'a Map<String, Value>>,
    /// `action`: non-empty.
    pub action: &'a str,
    /// `resource.uri`.
    pub resource_uri: Option<&'a str>,
    /// `resource.owner`.
    pub resource_owner: Option<&'a str>,
    /// `resource.attributes`.
    pub resource_attributes: Option<&'a Map<String, Value>>,
    /// `environment.time`; `None`: decided at `now` ([`crate::Engine::decide_ref_at`]; the current instant for
    /// [`crate::Engine::decide_ref`]).
    pub time: Option<Moment>,
    /// `environment.source_ip`, as text (an IPv4 or IPv6 address).
    pub source_ip: Option<&'a str>,
    /// `environment.port`.
    pub port: Option<u16>,
    /// `environment.attributes`.
    pub environment_attributes: Option<&'a Map<String, Value>>,
}

impl<'a> RequestRef<'a> {
    /// Checks the request with the rules every door applies; the view is what evaluation reads.
    pub(crate) fn view(&self) -> Result<RequestView<'a>, RequestError> {
        let non_empty = |s: Option<&'a str>| s.filter(|s| !s.is_empty());
        let mut view = RequestView {
            principal_id: self.principal_id,
            groups: ViewGroups::Given(self.groups),
            principal_attributes: self.principal_attributes.map(Attr::Map),
            action: self.action,
            uri: non_empty(self.resource_uri),
            owner: non_empty(self.resource_owner),
            resource_attributes: self.resource_attributes.map(Attr::Map),
            time: self.time,
            source_ip: None,
            port: self.port.filter(|&p| p != 0).map(u32::from),
            environment_attributes: self.environment_attributes.map(Attr::Map),
        };
        view.check(self.source_ip)?;
        Ok(view)
    }

    /// The same request, owned and checked (the error names the field at fault).
    pub fn to_request(&self) -> Result<Request, crate::Error> {
        let view = self.view().map_err(crate::Error::Request)?;
        Ok(view.to_request())
    }
}

/// The groups a [`RequestView`] holds: as the caller gave them, or stored in a document.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ViewGroups<'a> {
    Given(Groups<'a>),
    Doc(&'a AttrDoc, &'a [Span]),
}

impl<'a> ViewGroups<'a> {
    /// Each group, in order.
    #[inline]
    pub(crate) fn iter(&self) -> ViewGroupsIter<'a> {
        match *self {
            ViewGroups::Given(Groups::Strings(groups)) => ViewGroupsIter::Strings(groups.iter()),
            ViewGroups::Given(Groups::Strs(groups)) => ViewGroupsIter::Strs(groups.iter()),
            ViewGroups::Doc(doc, spans) => ViewGroupsIter::Doc(doc, spans.iter()),
        }
    }
}

/// The groups of a [`ViewGroups`].
#[derive(Debug, Clone)]
pub(crate) enum ViewGroupsIter<'a> {
    Strings(std::slice::Iter<'a, String>),
    Strs(std::slice::Iter<'a, &'a str>),
    Doc(&'a AttrDoc, std::slice::Iter<'a, Span>),
}

impl<'a> Iterator for ViewGroupsIter<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        match self {
            ViewGroupsIter::Strings(groups) => groups.next().map(String::as_str),
            ViewGroupsIter::Strs(groups) => groups.next().copied(),
            ViewGroupsIter::Doc(doc, spans) => spans.next().map(|s| doc.text(*s)),
        }
    }
}

/// A request as evaluation and the checks read it, borrowed from a [`Request`], a [`RequestRef`] or a request
/// the gRPC door read into an [`AttrDoc`]. Each attribute map is an [`Attr`] of shape map.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub principal_id: &'a str,
    pub(crate) groups: ViewGroups<'a>,
    pub(crate) principal_attributes: Option<Attr<'a>>,
    pub action: &'a str,
    /// `None` when absent (never empty once checked).
    pub uri: Option<&'a str>,
    /// `None` when absent (never empty once checked).
    pub owner: Option<&'a str>,
    pub(crate) resource_attributes: Option<Attr<'a>>,
    pub time: Option<Moment>,
    /// The address and its text as sent.
    pub source_ip: Option<(IpAddr, &'a str)>,
    pub port: Option<u32>,
    pub(crate) environment_attributes: Option<Attr<'a>>,
}

impl<'a> From<&'a Request> for RequestView<'a> {
    fn from(r: &'a Request) -> Self {
        RequestView {
            principal_id: &r.principal.id,
            groups: ViewGroups::Given(Groups::Strings(&r.principal.groups)),
            principal_attributes: Some(Attr::Map(&r.principal.attributes)),
            action: &r.action,
            uri: r.resource.uri.as_deref(),
            owner: r.resource.owner.as_deref(),
            resource_attributes: Some(Attr::Map(&r.resource.attributes)),
            time: r.environment.time,
            source_ip: r.environment.source_ip.as_ref().map(|ip| (ip.addr, &*ip.text)),
            port: r.environment.port,
            environment_attributes: Some(Attr::Map(&r.environment.attributes)),
        }
    }
}

impl<'a> RequestView<'a> {
    /// Applies the checks every door applies, in their order, to a view whose address is still text
    /// (`source_ip` is left `None` and set here from `source_ip_text`).
    pub(crate) fn check(&mut self, source_ip_text: Option<&'a str>) -> Result<(), RequestError> {
        check_identity_and_attributes(self)?;
        check_time(self.time)?;
        if let Some(text) = source_ip_text.filter(|s| !s.is_empty()) {
            self.source_ip = Some((parse_ip(text)?, text));
        }
        check_uri_owner(self.uri, self.owner)
    }

    /// An owned copy.
    pub(crate) fn to_request(self) -> Request {
        let map = |m: Option<Attr<'_>>| m.map(Attr::to_json_map).unwrap_or_default();
        Request {
            principal: crate::request::Principal {
                id: self.principal_id.to_string(),
                groups: self.groups.iter().map(str::to_string).collect(),
                attributes: map(self.principal_attributes),
            },
            action: self.action.to_string(),
            resource: crate::request::Resource {
                uri: self.uri.map(str::to_string),
                owner: self.owner.map(str::to_string),
                attributes: map(self.resource_attributes),
            },
            environment: crate::request::Environment {
                time: self.time,
                source_ip: self.source_ip.map(|(addr, text)| crate::request::SourceIp {
                    addr,
                    text: text.into(),
                }),
                port: self.port,
                attributes: map(self.environment_attributes),
            },
        }
    }
}
