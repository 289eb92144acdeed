//! `kind: HttpMapping` documents → `ir::http::HttpRoutes`, every problem a diagnostic at file:line:col: a path
//! template that is not absolute or holds a malformed or repeated `{var}`, a method that is not an HTTP token, an
//! `action` or `resource` naming a capture the path does not have, two mappings with one id, two that both say
//! where the principal comes from.

use std::collections::HashSet;
use std::sync::Arc;

use crate::ast::{At, HttpMappingDoc};
use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::ir::http::{HttpRoutes, Part, PrincipalSource, Route, Segment, Template};

/// Compiles every mapping, in order.
pub fn compile_mappings(mappings: &[HttpMappingDoc], diags: &mut Diagnostics) -> HttpRoutes {
    let mut out = HttpRoutes::default();
    let mut ids = HashSet::new();
    let mut principal_from: Option<&HttpMappingDoc> = None;
    for m in mappings {
        let file = &m.origin.file;
        let mut problems: Vec<(crate::diag::Pos, String)> = Vec::new();
        let mut error = |pos, message: String| problems.push((pos, message));
        if !ids.insert(m.id.value.as_str()) {
            diags.push(Diagnostic::error(
                Code::Duplicate,
                file,
                m.id.pos,
                format!("duplicate HttpMapping id `{}`", m.id.value),
            ));
            continue;
        }
        if let Some(p) = &m.principal {
            if let Some(first) = principal_from {
                diags.push(
                    Diagnostic::error(
                        Code::Duplicate,
                        file,
                        p.pos,
                        format!(
                            "HttpMapping `{}` also says where the principal comes from",
                            m.id.value
                        ),
                    )
                    .with_help(format!(
                        "only one mapping may; `{}` already does",
                        first.id.value
                    )),
                );
            } else {
                principal_from = Some(m);
                let header = |h: &Option<At<String>>, error: &mut dyn FnMut(_, String)| {
                    h.as_ref().and_then(|h| {
                        let name = h.value.to_ascii_lowercase();
                        if is_header_name(&name) {
                            Some(Box::from(name))
                        } else {
                            error(h.pos, format!("`{}` is not an HTTP header name", h.value));
                            None
                        }
                    })
                };
                out.principal = PrincipalSource {
                    mtls: p.mtls,
                    header: header(&p.header, &mut error),
                    groups_header: header(&p.groups_header, &mut error),
                };
            }
        }
        let mapping: Arc<str> = m.id.value.as_str().into();
        for r in &m.routes {
            let mut ok = true;
            let mut methods = Vec::with_capacity(r.methods.len());
            for method in &r.methods {
                if !method.value.is_empty() && method.value.bytes().all(|b| b.is_ascii_uppercase())
                {
                    methods.push(Box::from(method.value.as_str()));
                } else {
                    error(
                        method.pos,
                        format!(
                            "method `{}` must be an upper-case HTTP method or `*`",
                            method.value
                        ),
                    );
                    ok = false;
                }
            }
            let (segments, names) = match path_template(&r.path.value) {
                Ok(parsed) => parsed,
                Err(why) => {
                    error(r.path.pos, format!("path `{}`: {why}", r.path.value));
                    continue;
                }
            };
            let action = template(&r.action, &names, &mut error);
            let resource = r.resource.as_ref().map(|t| template(t, &names, &mut error));
            if r.action.value.is_empty() {
                error(r.action.pos, "`action` must not be empty".into());
                ok = false;
            }
            match (action, resource) {
                (Some(action), resource) if ok && resource.as_ref().is_none_or(Option::is_some) => {
                    out.routes.push(Route {
                        mapping: mapping.clone(),
                        methods: methods.into(),
                        segments: segments.into(),
                        action,
                        resource: resource.flatten(),
                        origin: crate::ast::Origin {
                            file: file.clone(),
                            pos: r.pos,
                        },
                    })
                }
                _ => {}
            }
        }
        for (pos, message) in problems {
            diags.push(Diagnostic::error(Code::InvalidRoute, file, pos, message));
        }
    }
    out
}

/// `/a/{b}/c` → segments and capture names; an error says what is wrong.
fn path_template(path: &str) -> Result<(Vec<Segment>, Vec<String>), String> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err("must start with `/`".into());
    };
    if path.contains(['?', '#']) {
        return Err("must not hold a query or a fragment".into());
    }
    let mut segments = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for segment in rest.split('/') {
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            if !is_var_name(name) {
                return Err(format!(
                    "`{{{name}}}` is not a capture (use letters, digits and `_`)"
                ));
            }
            if names.iter().any(|n| n == name) {
                return Err(format!("`{{{name}}}` appears twice"));
            }
            names.push(name.to_string());
            segments.push(Segment::Capture);
        } else if segment.contains(['{', '}']) {
            return Err(format!(
                "segment `{segment}`: a capture is a whole segment, `{{name}}`"
            ));
        } else {
            segments.push(Segment::Literal(segment.into()));
        }
    }
    Ok((segments, names))
}

/// `text {var} text` with every `{var}` one of `names`.
fn template(
    text: &At<String>,
    names: &[String],
    error: &mut dyn FnMut(crate::diag::Pos, String),
) -> Option<Template> {
    let mut parts = Vec::new();
    let mut rest = text.value.as_str();
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            error(text.pos, format!("`{}`: `}}` without `{{`", text.value));
            return None;
        }
        if open > 0 {
            parts.push(Part::Text(rest[..open].into()));
        }
        let Some(close) = rest[open..].find('}') else {
            error(text.pos, format!("`{}`: `{{` without `}}`", text.value));
            return None;
        };
        let name = &rest[open + 1..open + close];
        match names.iter().position(|n| n == name) {
            Some(i) => parts.push(Part::Capture(i)),
            None => {
                error(
                    text.pos,
                    format!(
                        "`{{{name}}}` is not a capture of the route's path (it has: {})",
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    ),
                );
                return None;
            }
        }
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.into()));
    }
    Some(Template(parts.into()))
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
