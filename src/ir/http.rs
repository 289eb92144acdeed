//! Compiled `HttpMapping` documents: method and path templates to an action and a resource URI, for the HTTP
//! doors (Envoy ext_authz, forward-auth). Routes are tried in file order, then document order; the first whose
//! method and path match wins.
//!
//! A path template is split on `/`: a literal segment matches itself exactly, `{var}` matches one non-empty
//! segment (percent-decoded; a segment that does not decode to UTF-8 matches nothing). The query string is not
//! part of the path. `action` and `resource` are texts with `{var}` references to the captures.

use std::sync::Arc;

use crate::ast::Origin;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(Box<str>),
    /// The capture with this index.
    Capture(usize),
}

/// `action` or `resource` with `{var}` references resolved to capture indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(pub Box<[Part]>);

impl Template {
    fn render(&self, captures: &[String]) -> String {
        let mut out = String::new();
        for part in self.0.iter() {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Capture(i) => out.push_str(captures.get(*i).map_or("", String::as_str)),
            }
        }
        out
    }
}

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(Box<str>),
    Capture,
}

/// A compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    /// The `HttpMapping` id.
    pub mapping: Arc<str>,
    /// Upper-case methods; empty = any.
    pub methods: Box<[Box<str>]>,
    pub segments: Box<[Segment]>,
    pub action: Template,
    pub resource: Option<Template>,
    pub origin: Origin,
}

/// Where the principal of an HTTP request comes from when it carries no bearer token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrincipalSource {
    /// The mTLS peer principal (ext_authz `source.principal`).
    pub mtls: bool,
    /// A trusted header (lower-case) holding the principal id.
    pub header: Option<Box<str>>,
    /// A trusted header (lower-case) holding comma-separated groups.
    pub groups_header: Option<Box<str>>,
}

/// Every route of the set, and the principal source (at most one mapping sets it).
#[derive(Debug, Clone, Default)]
pub struct HttpRoutes {
    pub routes: Vec<Route>,
    pub principal: PrincipalSource,
}

/// What a matched route maps a request to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    pub mapping: Arc<str>,
    pub action: String,
    pub resource: Option<String>,
}

impl HttpRoutes {
    /// The first route matching `method` and `path` (the query string, if any, is ignored).
    pub fn resolve(&self, method: &str, path: &str) -> Option<Mapped> {
        let path = path.split(['?', '#']).next().unwrap_or("");
        let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        // A path a server could normalise into another (`.`, `..`, empty segments) maps to nothing.
        if segments
            .iter()
            .enumerate()
            .any(|(i, s)| *s == "." || *s == ".." || (s.is_empty() && i + 1 < segments.len()))
        {
            return None;
        }
        let mut captures = Vec::new();
        'routes: for route in &self.routes {
            if !route.methods.is_empty()
                && !route.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
            {
                continue;
            }
            if route.segments.len() != segments.len() {
                continue;
            }
            captures.clear();
            for (pattern, segment) in route.segments.iter().zip(&segments) {
                match pattern {
                    Segment::Literal(l) => {
                        if **l != **segment {
                            continue 'routes;
                        }
                    }
                    Segment::Capture => match percent_decode(segment) {
                        Some(v) if is_plain_capture(&v) => captures.push(v),
                        _ => continue 'routes,
                    },
                }
            }
            return Some(Mapped {
                mapping: route.mapping.clone(),
                action: route.action.render(&captures),
                resource: route.resource.as_ref().map(|r| r.render(&captures)),
            });
        }
        None
    }
}

/// A capture that cannot change the shape of the resource URI it is put into: not empty, not `.` or `..`, and
/// without separators (`/`, `\`, `:`) or control characters, once decoded.
fn is_plain_capture(value: &str) -> bool {
    !value.is_empty()
        && value != "."
        && value != ".."
        && !value
            .chars()
            .any(|c| matches!(c, '/' | '\\' | ':') || c.is_control())
}

/// `%XX` decoding; `None` for a malformed escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let text = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(text, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(
        methods: &[&str],
        segments: Vec<Segment>,
        action: Vec<Part>,
        resource: Vec<Part>,
    ) -> Route {
        Route {
            mapping: "m".into(),
            methods: methods.iter().map(|m| Box::from(*m)).collect(),
            segments: segments.into(),
            action: Template(action.into()),
            resource: Some(Template(resource.into())),
            origin: Origin {
                file: Arc::from(std::path::Path::new("m.yaml")),
                pos: crate::diag::Pos::WHOLE_FILE,
            },
        }
    }

    #[test]
    fn first_matching_route_wins_and_captures_are_decoded() {
        let lit = |s: &str| Segment::Literal(s.into());
        let text = |s: &str| Part::Text(s.into());
        let routes = HttpRoutes {
            routes: vec![
                route(
                    &["GET"],
                    vec![lit("v1"), lit("keys"), Segment::Capture],
                    vec![text("ReadKey")],
                    vec![text("kylo:kylo:vault:keys:"), Part::Capture(0)],
                ),
                route(
                    &[],
                    vec![lit("v1"), lit("keys"), Segment::Capture],
                    vec![text("UpdateKey")],
                    vec![text("k:"), Part::Capture(0)],
                ),
            ],
            principal: PrincipalSource::default(),
        };
        let got = routes.resolve("GET", "/v1/keys/db%2Dkey?x=1").unwrap();
        assert_eq!(
            (got.action.as_str(), got.resource.as_deref()),
            ("ReadKey", Some("kylo:kylo:vault:keys:db-key"))
        );
        let got = routes.resolve("PATCH", "/v1/keys/a").unwrap();
        assert_eq!(got.action, "UpdateKey");
        assert_eq!(routes.resolve("GET", "/v1/keys"), None);
        assert_eq!(
            routes.resolve("GET", "/v1/keys/"),
            None,
            "an empty capture matches nothing"
        );
        assert_eq!(routes.resolve("GET", "/v1/keys/a/b"), None);
        assert_eq!(routes.resolve("GET", "/v1/keys/%ff"), None, "not UTF-8");
        assert_eq!(
            routes.resolve("GET", "/v1/keys/%4"),
            None,
            "malformed escape"
        );
        assert_eq!(
            routes.resolve("GET", "v1/keys/a"),
            None,
            "not an absolute path"
        );
    }
}
