//! Attribute paths (`resource.permissions.${action}`) and `${...}` references, parsed once at compile time.
//!
//! A path names one of the request's four parts. Reserved names (`principal.id`, `resource.uri`,
//! `environment.time`, ...) resolve to the typed fields; anything else walks the part's attribute map, one
//! segment per dot. `${action}` may stand as a whole segment and always stays one segment.

use std::fmt;

use crate::diag::suggestion;

/// The typed fields that reserved names resolve to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    PrincipalId,
    PrincipalGroups,
    Action,
    ResourceUri,
    ResourceOwner,
    EnvironmentTime,
    EnvironmentSourceIp,
    EnvironmentPort,
}

/// The request part whose attribute map a path walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    Principal,
    Resource,
    Environment,
}

/// One segment of an attribute path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Name(Box<str>),
    /// `${action}`: the request's action, as one segment.
    Action,
}

/// A compiled attribute path.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AttrPath {
    pub text: Box<str>,
    pub target: Target,
}

/// What a path resolves against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Field(Field),
    Attribute {
        part: Part,
        segments: Box<[Segment]>,
    },
}

const ROOTS: [&str; 4] = ["principal", "action", "resource", "environment"];

/// Names reserved in each part; they come only from the typed request fields.
pub const PRINCIPAL_RESERVED: [&str; 2] = ["id", "groups"];
pub const RESOURCE_RESERVED: [&str; 2] = ["uri", "owner"];
pub const ENVIRONMENT_RESERVED: [&str; 3] = ["time", "source_ip", "port"];

/// Deepest attribute path accepted.
pub const MAX_PATH_SEGMENTS: usize = 32;

/// Why a path or reference was rejected, with an optional hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError {
    pub message: String,
    pub help: Option<String>,
}

impl PathError {
    fn new(message: impl Into<String>) -> Self {
        PathError {
            message: message.into(),
            help: None,
        }
    }
    fn help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }
}

impl AttrPath {
    /// Parses a condition path such as `resource.permissions.${action}`.
    pub fn parse(text: &str) -> Result<AttrPath, PathError> {
        let segments = split_segments(text)?;
        let (root, rest) = segments
            .split_first()
            .ok_or_else(|| PathError::new("empty attribute path"))?;
        let Segment::Name(root) = root else {
            return Err(PathError::new("`${action}` cannot start a path"));
        };
        let target = match &**root {
            "action" => {
                if !rest.is_empty() {
                    return Err(PathError::new("`action` is a string and has no attributes"));
                }
                Target::Field(Field::Action)
            }
            "principal" | "resource" | "environment" => {
                let (part, reserved): (Part, &[(&str, Field)]) = match &**root {
                    "principal" => (
                        Part::Principal,
                        &[
                            ("id", Field::PrincipalId),
                            ("groups", Field::PrincipalGroups),
                        ],
                    ),
                    "resource" => (
                        Part::Resource,
                        &[("uri", Field::ResourceUri), ("owner", Field::ResourceOwner)],
                    ),
                    _ => (
                        Part::Environment,
                        &[
                            ("time", Field::EnvironmentTime),
                            ("source_ip", Field::EnvironmentSourceIp),
                            ("port", Field::EnvironmentPort),
                        ],
                    ),
                };
                let Some(first) = rest.first() else {
                    return Err(PathError::new(format!(
                        "`{root}` needs an attribute, as in `{root}.<name>`"
                    )));
                };
                let field = match first {
                    Segment::Name(n) => reserved
                        .iter()
                        .find(|(name, _)| **name == **n)
                        .map(|(_, f)| *f),
                    Segment::Action => None,
                };
                match field {
                    Some(field) if rest.len() == 1 => Target::Field(field),
                    Some(_) => {
                        return Err(PathError::new(format!(
                            "`{}` is a typed field and has no attributes",
                            path_prefix(root, first)
                        )))
                    }
                    None => Target::Attribute {
                        part,
                        segments: rest.to_vec().into_boxed_slice(),
                    },
                }
            }
            other => {
                return Err(
                    PathError::new(format!("unknown attribute root `{other}`")).help(Some(
                        suggestion(other, ROOTS).unwrap_or_else(|| {
                            "a path starts with `principal`, `action`, `resource` or `environment`"
                                .into()
                        }),
                    )),
                )
            }
        };
        Ok(AttrPath {
            text: text.into(),
            target,
        })
    }

    /// True when the path involves the request's action through `${action}`.
    pub fn uses_action(&self) -> bool {
        matches!(&self.target, Target::Attribute { segments, .. } if segments.contains(&Segment::Action))
    }
}

fn path_prefix(root: &str, first: &Segment) -> String {
    match first {
        Segment::Name(n) => format!("{root}.{n}"),
        Segment::Action => format!("{root}.${{action}}"),
    }
}

fn split_segments(text: &str) -> Result<Vec<Segment>, PathError> {
    if text.is_empty() {
        return Err(PathError::new("empty attribute path"));
    }
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        // `${action}` is one segment even when the action itself contains a dot, so it is cut out first.
        let (segment, tail) = if let Some(after) = rest.strip_prefix("${") {
            let end = after.find('}').ok_or_else(|| {
                PathError::new("unclosed `${` in path").help(Some("write `${action}`".into()))
            })?;
            let inner = &after[..end];
            if inner != "action" {
                return Err(PathError::new(format!(
                    "only `${{action}}` may appear inside a path, found `${{{inner}}}`"
                ))
                .help(Some(
                    "to compare with another attribute, put `${...}` in `values`".into(),
                )));
            }
            let tail = &after[end + 1..];
            if !(tail.is_empty() || tail.starts_with('.')) {
                return Err(PathError::new("`${action}` must be a whole path segment"));
            }
            (Segment::Action, tail)
        } else {
            let end = rest.find('.').unwrap_or(rest.len());
            let name = &rest[..end];
            if name.is_empty() {
                return Err(PathError::new(format!("empty segment in path `{text}`")));
            }
            if name.contains("${") || name.contains('}') || name.contains('$') && name.contains('{')
            {
                return Err(PathError::new("`${action}` must be a whole path segment"));
            }
            (Segment::Name(name.into()), &rest[end..])
        };
        out.push(segment);
        if out.len() > MAX_PATH_SEGMENTS {
            return Err(PathError::new(format!(
                "path has more than {MAX_PATH_SEGMENTS} segments"
            )));
        }
        if tail.is_empty() {
            break;
        }
        rest = &tail[1..];
        if rest.is_empty() {
            return Err(PathError::new(format!("path `{text}` ends with a dot")));
        }
    }
    Ok(out)
}

/// A `values` element: a literal, or a `${path}` reference standing as the whole element.
pub enum ValueText<'a> {
    Literal(&'a str),
    Reference(AttrPath),
}

/// Classifies a string value. `${` anywhere but as a whole `${path}` element is an error.
pub fn parse_value_text(text: &str) -> Result<ValueText<'_>, PathError> {
    if let Some(inner) = text.strip_prefix("${").and_then(|t| t.strip_suffix('}')) {
        if inner.is_empty() {
            return Err(PathError::new("empty reference `${}`"));
        }
        // The inner path may itself hold `${action}`, as in `${resource.permissions.${action}}`.
        return AttrPath::parse(inner)
            .map(ValueText::Reference)
            .map_err(|e| PathError {
                message: format!("malformed reference `{text}`: {}", e.message),
                help: e.help,
            });
    }
    if text.contains("${") {
        return Err(
            PathError::new(format!("malformed reference in `{text}`")).help(Some(
                "a `${...}` reference must be the whole value, as in `\"${principal.id}\"`".into(),
            )),
        );
    }
    Ok(ValueText::Literal(text))
}

impl fmt::Debug for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AttrPath({})", self.text)
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names_are_typed_fields() {
        assert_eq!(
            AttrPath::parse("principal.id").unwrap().target,
            Target::Field(Field::PrincipalId)
        );
        assert_eq!(
            AttrPath::parse("action").unwrap().target,
            Target::Field(Field::Action)
        );
        assert_eq!(
            AttrPath::parse("environment.port").unwrap().target,
            Target::Field(Field::EnvironmentPort)
        );
        assert!(AttrPath::parse("principal.id.x").is_err());
    }

    #[test]
    fn nested_attribute_with_action_segment() {
        let p = AttrPath::parse("resource.permissions.${action}").unwrap();
        assert_eq!(
            p.target,
            Target::Attribute {
                part: Part::Resource,
                segments: vec![Segment::Name("permissions".into()), Segment::Action].into()
            }
        );
        assert!(p.uses_action());
    }

    #[test]
    fn bad_paths_are_rejected() {
        for bad in [
            "",
            "resource",
            "resource..x",
            "resource.x.",
            "user.id",
            "resource.${principal.id}",
            "resource.a${action}",
            "resource.${action",
            "action.x",
        ] {
            assert!(AttrPath::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            AttrPath::parse("princpal.id").unwrap_err().help.as_deref(),
            Some("did you mean `principal`?")
        );
    }

    #[test]
    fn value_references_must_be_whole() {
        assert!(matches!(
            parse_value_text("${principal.id}"),
            Ok(ValueText::Reference(_))
        ));
        assert!(matches!(
            parse_value_text("plain"),
            Ok(ValueText::Literal("plain"))
        ));
        assert!(parse_value_text("x-${principal.id}").is_err());
        assert!(parse_value_text("${principal.id").is_err());
        assert!(parse_value_text("${}").is_err());
        assert!(parse_value_text("${bogus.x}").is_err());
    }
}
