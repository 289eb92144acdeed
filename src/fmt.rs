//! `arbiter fmt`: policy files in one canonical style, comments kept.
//!
//! The style: documents separated by `---`; each kind's fields in one order (`kind`, `id`, `description`,
//! `effect`, `actions`, `resources`, `conditions`...); lists of scalars and maps of scalars on one line
//! (`[ReadKey, UseKey]`, `{groups: [admin]}`); one condition, route or `must_allow` entry per line as a flow map;
//! test cases as block maps; two-space indentation; strings plain when they read back as themselves and hold no
//! `:`, `*`, `$` or flow punctuation, double-quoted otherwise.
//!
//! Comments are carried by line: a comment on its own line goes above the field or list entry that followed it
//! in the source, one at the end of a line stays at the end of that field's line. The result is checked before
//! it is returned: it must read back to the same documents with the same comments, or the file is refused.

use std::fmt::Write as _;
use std::path::Path;

use crate::source::{parse_documents, Key, Node, NodeValue};

/// Why a file was left as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FmtError {
    /// Not valid YAML (the diagnostic, rendered).
    #[error("{0}")]
    Yaml(String),
    /// A document that is not a policy document (no known `kind`).
    #[error("{file}:{line}:{col}: not a policy document (`kind` is missing or unknown); fmt leaves the file as it is")]
    NotPolicy {
        /// The file.
        file: String,
        /// Where the document starts.
        line: u32,
        /// Its column.
        col: u32,
    },
    /// The canonical text would not read back the same (a safety net; it names what differed).
    #[error("{0}: fmt would change {1}; the file is left as it is")]
    NotFaithful(String, &'static str),
}

/// The fields of each kind, in canonical order (the parser's order); fields not listed keep their order after
/// these.
fn field_order(kind: &str) -> &'static [&'static str] {
    use crate::parse::*;
    match kind {
        "Policy" => POLICY_FIELDS,
        "PolicyAttachment" => ATTACHMENT_FIELDS,
        "Group" => GROUP_FIELDS,
        "LockoutGuard" => GUARD_FIELDS,
        "HttpMapping" => MAPPING_FIELDS,
        "TestSuite" => SUITE_FIELDS,
        _ => &[],
    }
}

/// Lists printed one entry per line, and the order of each entry's fields.
fn entry_order(key: &str) -> Option<&'static [&'static str]> {
    use crate::parse::*;
    match key {
        "conditions" | "assuming" => Some(CONDITION_FIELDS),
        "must_allow" => Some(MUST_ALLOW_FIELDS),
        "routes" => Some(ROUTE_FIELDS),
        "tests" => Some(TEST_FIELDS),
        _ => None,
    }
}

/// One output line; `source` is the source line of the field or entry it starts, for placing comments.
struct Line {
    text: String,
    source: Option<u32>,
    trailing: Option<String>,
}

/// Where each document's lines start in the output, for comments that sit above a `---`.
struct DocStarts(Vec<usize>);

/// A comment of the source: its line, whether it ended a line of content, and its text after `#`.
struct Comment {
    line: u32,
    right: bool,
    text: String,
}

/// Formats one file's text. `Ok` holds the canonical text (equal to `text` when it already was).
pub fn format(file: &Path, text: &str) -> Result<String, FmtError> {
    let docs = parse_documents(file, text).map_err(|d| FmtError::Yaml(d.to_string()))?;
    let comments = comments(text);
    let mut lines: Vec<Line> = Vec::new();
    let mut starts = DocStarts(Vec::new());
    for (i, doc) in docs.iter().enumerate() {
        let kind = match &doc.value {
            NodeValue::Map(entries) => entries.iter().find(|(k, _)| k.name == "kind").and_then(|(_, v)| match &v.value {
                NodeValue::Str(s) if !field_order(s).is_empty() => Some(s.as_str()),
                _ => None,
            }),
            _ => None,
        };
        let (Some(kind), NodeValue::Map(entries)) = (kind, &doc.value) else {
            return Err(FmtError::NotPolicy {
                file: file.display().to_string(),
                line: doc.pos.line,
                col: doc.pos.col,
            });
        };
        if i > 0 {
            lines.push(Line { text: "---".into(), source: None, trailing: None });
        }
        starts.0.push(lines.len());
        for (key, value) in ordered(entries, field_order(kind)) {
            field(&mut lines, "", key, value);
        }
    }
    place_comments(&mut lines, &starts, text, comments);
    let mut out = String::with_capacity(text.len());
    for line in &lines {
        out.push_str(&line.text);
        if let Some(c) = &line.trailing {
            let _ = write!(out, " #{c}");
        }
        out.push('\n');
    }
    faithful(file, text, &docs, &out)?;
    Ok(out)
}

/// Entries in `order`, then the others in source order.
fn ordered<'e>(entries: &'e [(Key, Node)], order: &[&str]) -> Vec<&'e (Key, Node)> {
    let mut out: Vec<&(Key, Node)> = Vec::with_capacity(entries.len());
    for name in order {
        out.extend(entries.iter().filter(|(k, _)| k.name == *name));
    }
    out.extend(entries.iter().filter(|(k, _)| !order.contains(&k.name.as_str())));
    out
}

/// One `key: value` field at `indent`; the entry lists get one line per entry.
fn field(lines: &mut Vec<Line>, indent: &str, key: &Key, value: &Node) {
    let name = key_text(&key.name);
    if let (Some(order), NodeValue::Seq(items)) = (entry_order(&key.name), &value.value) {
        if !items.is_empty() && items.iter().all(|i| matches!(i.value, NodeValue::Map(_))) {
            lines.push(Line { text: format!("{indent}{name}:"), source: Some(key.pos.line), trailing: None });
            for (n, item) in items.iter().enumerate() {
                let NodeValue::Map(entries) = &item.value else { continue };
                if key.name == "tests" {
                    // Test cases are blocks of several lines: a blank line between them.
                    if n > 0 {
                        lines.push(Line { text: String::new(), source: None, trailing: None });
                    }
                    // A test case: a block map, one field per line.
                    for (n, (k, v)) in ordered(entries, order).into_iter().enumerate() {
                        let lead = if n == 0 { format!("{indent}  - ") } else { format!("{indent}    ") };
                        let text = format!("{lead}{}: {}", key_text(&k.name), flow(v, false));
                        let source = if n == 0 { item.pos.line.min(k.pos.line) } else { k.pos.line };
                        lines.push(Line { text, source: Some(source), trailing: None });
                    }
                } else {
                    let text = format!("{indent}  - {}", flow_map(&ordered(entries, order)));
                    lines.push(Line { text, source: Some(item.pos.line), trailing: None });
                }
            }
            return;
        }
    }
    let text = format!("{indent}{name}: {}", flow(value, false));
    // A list of scalars too long for one line: one item per line.
    if let NodeValue::Seq(items) = &value.value {
        let scalars = items.iter().all(|i| !matches!(i.value, NodeValue::Seq(_) | NodeValue::Map(_)));
        if text.chars().count() > MAX_LINE && scalars {
            lines.push(Line { text: format!("{indent}{name}:"), source: Some(key.pos.line), trailing: None });
            for item in items {
                let text = format!("{indent}  - {}", flow(item, false));
                lines.push(Line { text, source: Some(item.pos.line), trailing: None });
            }
            return;
        }
    }
    lines.push(Line { text, source: Some(key.pos.line), trailing: None });
}

/// Lists of scalars longer than this many characters on one line are written one item per line.
const MAX_LINE: usize = 100;

/// A value on one line.
fn flow(node: &Node, in_flow: bool) -> String {
    match &node.value {
        NodeValue::Null => "null".into(),
        NodeValue::Bool(b) => b.to_string(),
        NodeValue::Int(i) => i.to_string(),
        NodeValue::Float(f) if f.is_nan() => ".nan".into(),
        NodeValue::Float(f) if f.is_infinite() => (if *f > 0.0 { ".inf" } else { "-.inf" }).into(),
        NodeValue::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.1}"),
        NodeValue::Float(f) => format!("{f:?}"),
        NodeValue::Str(s) => string(s, in_flow),
        NodeValue::Seq(items) => {
            let parts: Vec<String> = items.iter().map(|i| flow(i, true)).collect();
            format!("[{}]", parts.join(", "))
        }
        NodeValue::Map(entries) => flow_map(&entries.iter().collect::<Vec<_>>()),
    }
}

fn flow_map(entries: &[&(Key, Node)]) -> String {
    let parts: Vec<String> = entries
        .iter()
        .map(|(k, v)| format!("{}: {}", key_text(&k.name), flow(v, true)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

fn key_text(name: &str) -> String {
    string(name, true)
}

/// A string plain when that is unambiguous, double-quoted (JSON escapes, which YAML reads) otherwise.
fn string(s: &str, in_flow: bool) -> String {
    // Prose (a description) may hold `,`, `'` and brackets outside flow collections.
    let prose = |c: char| !in_flow && matches!(c, ',' | '\'' | '(' | ')' | ';' | '!' | '?');
    let plain = !s.is_empty()
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ' ' | '@' | '+') || prose(c)
        })
        && !s.ends_with(' ')
        && !s.contains("  ")
        && reads_as_string(s);
    if plain {
        s.to_string()
    } else {
        serde_json::Value::from(s).to_string()
    }
}

/// Whether `s`, written plain, reads back as that string (not a number, boolean or null).
fn reads_as_string(s: &str) -> bool {
    let doc = format!("v: {s}\n");
    match parse_documents(Path::new("-"), &doc).as_deref() {
        Ok([node]) => match &node.value {
            NodeValue::Map(entries) => matches!(&entries[0].1.value, NodeValue::Str(t) if t == s),
            _ => false,
        },
        _ => false,
    }
}

/// Every comment of `text`, with its line.
fn comments(text: &str) -> Vec<Comment> {
    let mut options = granit_parser::Options::default();
    options.set_emit_comments(true);
    let mut out = Vec::new();
    for event in granit_parser::Parser::new_from_str_with_options(text, options) {
        let Ok((granit_parser::Event::Comment(body, placement), span)) = event else {
            continue;
        };
        out.push(Comment {
            line: span.start.line() as u32,
            right: placement == granit_parser::Placement::Right,
            text: body.into_owned(),
        });
    }
    out
}

/// Puts each comment back. One at the end of a line stays at the end of the line of the field it ended. One
/// on its own line goes above the field or entry that followed it in the source; when what followed was part
/// of a field now written on one line (an item of a list), above that field; when it was a `---`, above the next
/// document's first field. Comments after everything go last.
fn place_comments(lines: &mut Vec<Line>, starts: &DocStarts, text: &str, comments: Vec<Comment>) {
    let source_lines: Vec<&str> = text.lines().collect();
    // The first line after `line` (1-based) that holds content, neither blank nor a comment.
    let next_content = |line: u32| {
        (line as usize..source_lines.len())
            .find(|&i| {
                let t = source_lines[i].trim();
                !t.is_empty() && !t.starts_with('#')
            })
            .map(|i| (i as u32 + 1, source_lines[i].trim()))
    };
    fn owner(lines: &[Line], line: u32) -> Option<usize> {
        lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.source.is_some_and(|s| s <= line))
            .max_by_key(|(i, l)| (l.source, std::cmp::Reverse(*i)))
            .map(|(i, _)| i)
    }
    let mut above: Vec<(usize, String)> = Vec::new();
    let mut tail = Vec::new();
    for c in comments {
        let on_separator = source_lines
            .get(c.line as usize - 1)
            .is_some_and(|l| l.trim_start().starts_with("---"));
        if c.right && !on_separator {
            if let Some(i) = owner(lines, c.line) {
                if lines[i].trailing.is_none() {
                    lines[i].trailing = Some(c.text);
                } else {
                    // A second comment that ended a line now joined to this one: above it.
                    above.push((i, c.text));
                }
                continue;
            }
        }
        // A comment on a `---` line belongs to the document it opens.
        let from = if on_separator { c.line - 1 } else { c.line };
        let target = match next_content(from) {
            None => None,
            Some((_, t)) if t.starts_with("---") => {
                // Above the next document's first line.
                let next_entity = lines
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.source.is_some_and(|s| s > c.line))
                    .min_by_key(|(i, l)| (l.source, *i))
                    .map(|(i, _)| i);
                next_entity.map(|i| starts.0.iter().copied().filter(|&s| s <= i).max().unwrap_or(0))
            }
            Some((line, _)) => lines
                .iter()
                .position(|l| l.source == Some(line))
                .or_else(|| owner(lines, c.line))
                .or_else(|| starts.0.first().copied()),
        };
        match target {
            Some(i) => above.push((i, c.text)),
            None => tail.push(c.text),
        }
    }
    // Insert from the last target up; comments for one target keep their source order.
    above.sort_by_key(|(i, _)| *i);
    for (i, text) in above.into_iter().rev() {
        let indent: String = lines[i].text.chars().take_while(|c| *c == ' ').collect();
        lines.insert(i, Line { text: format!("{indent}#{text}"), source: None, trailing: None });
    }
    for text in tail {
        lines.push(Line { text: format!("#{text}"), source: None, trailing: None });
    }
}

/// The safety net: the canonical text must hold the same documents and the same comments as the source.
fn faithful(file: &Path, source: &str, docs: &[Node], out: &str) -> Result<(), FmtError> {
    let name = file.display().to_string();
    let again = parse_documents(file, out).map_err(|_| FmtError::NotFaithful(name.clone(), "its YAML"))?;
    let json = |d: &[Node]| d.iter().map(Node::to_json).collect::<Vec<_>>();
    if json(&again) != json(docs) {
        return Err(FmtError::NotFaithful(name, "its content"));
    }
    let texts = |t: &str| {
        let mut c: Vec<String> = comments(t).into_iter().map(|c| c.text).collect();
        c.sort();
        c
    };
    if texts(out) != texts(source) {
        return Err(FmtError::NotFaithful(name, "its comments"));
    }
    Ok(())
}
