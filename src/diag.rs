//! Diagnostics: source positions, errors and warnings, their ordering, and how they are rendered.
//!
//! Every stage from loading to compiling reports problems here rather than stopping at the first one, so an
//! operator sees every mistake in a policy set at once, sorted by file and line.

use std::fmt;
use std::path::{Path, PathBuf};

/// A position in a policy file: 1-based line and column (characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub col: u32,
}

impl Pos {
    /// Where an error about a whole file or directory (unreadable, too large, not UTF-8) is placed: its start,
    /// so that every diagnostic still reads `file:line:col` with 1-based numbers.
    pub const WHOLE_FILE: Pos = Pos::new(1, 1);

    /// A position at `line`, `col` (both 1-based).
    pub const fn new(line: u32, col: u32) -> Self {
        Pos { line, col }
    }
}

/// How bad a diagnostic is. Errors make a policy set invalid; warnings never do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Makes the set invalid.
    Error,
    /// Worth a look; never fails a check.
    Warning,
}

/// What a diagnostic is about: a stable code that tools and tests match on instead of the message text, shown
/// as `E0007` (errors) or `W0001` (warnings). Codes are never renumbered; new ones are added at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Code {
    /// A file or directory cannot be read, is not UTF-8, or is not a regular file.
    Unreadable,
    /// Over a size limit (file, total bytes, file count, YAML nesting).
    TooLarge,
    /// Not valid YAML (syntax, anchors, duplicate keys).
    Yaml,
    /// A document's `kind` is unknown.
    UnknownKind,
    /// A field is not known for its document.
    UnknownField,
    /// A required field is missing.
    MissingField,
    /// A field holds the wrong type (a map where a list is needed, ...).
    WrongType,
    /// A field that must not be empty is.
    EmptyValue,
    /// An id has characters outside `[A-Za-z0-9._-]`.
    InvalidId,
    /// `effect` is neither `allow` nor `deny`.
    InvalidEffect,
    /// `op` is not a known operator.
    UnknownOperator,
    /// Two documents share an id, or two groups a name.
    Duplicate,
    /// An attachment names a policy that does not exist.
    MissingPolicy,
    /// The policy id `superuser` is reserved.
    ReservedId,
    /// An attribute path is invalid.
    InvalidPath,
    /// A `${...}` reference is malformed.
    InvalidReference,
    /// A glob uses a reserved character, or is empty.
    InvalidGlob,
    /// A CIDR is malformed or has host bits set.
    InvalidCidr,
    /// A time zone is unknown.
    InvalidZone,
    /// A `time_of_day` window is malformed.
    InvalidWindow,
    /// A `weekday` value is not `mon` … `sun`.
    InvalidWeekday,
    /// An instant is not strict RFC 3339.
    InvalidInstant,
    /// A value has the wrong type for its operator.
    ValueType,
    /// An operator has the wrong number of values.
    ValueCount,
    /// A principal selector key is invalid.
    InvalidSelector,
    /// A LockoutGuard is invalid (it protects the superuser, ...).
    InvalidGuard,
    /// A `kind: TestSuite` document is invalid.
    InvalidTestSuite,
    /// A reload refused by a lockout finding.
    Lockout,
    /// Something failed inside Arbiter itself.
    Internal,
    /// Warning: a policy that no attachment uses.
    UnusedPolicy,
    /// Warning: a selector names a group no `Group` document defines.
    UndefinedGroup,
    /// Warning: an action outside the vocabulary.
    UnknownAction,
    /// An `HttpMapping` route is invalid (path template, method, `{var}` reference).
    InvalidRoute,
    /// Warning: an operator on a typed field that can never read it (`cidr` on `environment.port`): the
    /// condition faults whenever the field is set.
    OperatorType,
    /// Warning: `zone:` on a condition whose operator does not read it (only `time_of_day` and `weekday` do).
    UnusedZone,
    /// Warning: a selector key that looks like a misspelt `id` or `groups` (it would name a claim instead).
    SelectorKey,
    /// Warning: a test's `expect_policies` names a policy the set does not have.
    UnknownTestPolicy,
}

impl Code {
    /// Every code, in declaration order (the order that numbers them).
    const ALL: [Code; 37] = [
        Code::Unreadable,
        Code::TooLarge,
        Code::Yaml,
        Code::UnknownKind,
        Code::UnknownField,
        Code::MissingField,
        Code::WrongType,
        Code::EmptyValue,
        Code::InvalidId,
        Code::InvalidEffect,
        Code::UnknownOperator,
        Code::Duplicate,
        Code::MissingPolicy,
        Code::ReservedId,
        Code::InvalidPath,
        Code::InvalidReference,
        Code::InvalidGlob,
        Code::InvalidCidr,
        Code::InvalidZone,
        Code::InvalidWindow,
        Code::InvalidWeekday,
        Code::InvalidInstant,
        Code::ValueType,
        Code::ValueCount,
        Code::InvalidSelector,
        Code::InvalidGuard,
        Code::InvalidTestSuite,
        Code::Lockout,
        Code::Internal,
        Code::UnusedPolicy,
        Code::UndefinedGroup,
        Code::UnknownAction,
        Code::InvalidRoute,
        Code::OperatorType,
        Code::UnusedZone,
        Code::SelectorKey,
        Code::UnknownTestPolicy,
    ];

    /// Warnings never make a set invalid.
    pub fn is_warning(self) -> bool {
        matches!(
            self,
            Code::UnusedPolicy
                | Code::UndefinedGroup
                | Code::UnknownAction
                | Code::OperatorType
                | Code::UnusedZone
                | Code::SelectorKey
                | Code::UnknownTestPolicy
        )
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Errors are numbered from E0001 and warnings from W0001, each in declaration order.
        let warning = self.is_warning();
        let number = Code::ALL
            .iter()
            .take_while(|c| *c != self)
            .filter(|c| c.is_warning() == warning)
            .count()
            + 1;
        write!(f, "{}{number:04}", if warning { 'W' } else { 'E' })
    }
}

/// One problem found in a policy set, anchored at `file:line:col`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// What it is about, stably.
    pub code: Code,
    /// The file it is in.
    pub file: PathBuf,
    /// Where in the file.
    pub pos: Pos,
    /// What is wrong, in one line.
    pub message: String,
    /// A hint: "did you mean ...", or how to fix it.
    pub help: Option<String>,
    /// The source line the position points into, for the caret display.
    pub snippet: Option<String>,
}

impl Diagnostic {
    /// An error at `file:pos`.
    pub fn error(code: Code, file: &Path, pos: Pos, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            file: file.to_path_buf(),
            pos,
            message: message.into(),
            help: None,
            snippet: None,
        }
    }

    /// A warning at `file:pos`.
    pub fn warning(code: Code, file: &Path, pos: Pos, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, file, pos, message)
        }
    }

    /// The same diagnostic with a hint.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Whether it makes the set invalid.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:col`, the anchor every diagnostic starts with.
    pub fn location(&self) -> String {
        format!("{}:{}:{}", self.file.display(), self.pos.line, self.pos.col)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}: {label}: {} [{}]",
            self.location(),
            self.message,
            self.code
        )?;
        if let Some(line) = &self.snippet {
            let gutter = self.pos.line.to_string();
            let pad = " ".repeat(gutter.len());
            let caret = " ".repeat(self.pos.col.saturating_sub(1) as usize);
            write!(f, "\n{pad} |\n{gutter} | {line}\n{pad} | {caret}^")?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  = help: {help}")?;
        }
        Ok(())
    }
}

/// An ordered collection of diagnostics from one run over a policy set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// None yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.items.push(diagnostic);
    }

    /// Adds all of `other`.
    pub fn extend(&mut self, other: Diagnostics) {
        self.items.extend(other.items);
    }

    /// Whether any is an error.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }

    /// The errors, in order.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| d.is_error())
    }

    /// The warnings, in order.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| !d.is_error())
    }

    /// All of them, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Sorts by file, line, column, then errors before warnings, and removes exact repeats.
    pub fn sort(&mut self) {
        self.items.sort_by(|a, b| {
            (&a.file, a.pos, a.severity, &a.message).cmp(&(&b.file, b.pos, b.severity, &b.message))
        });
        self.items.dedup();
    }

    /// Fills in the source line of each diagnostic whose file is among `sources`.
    pub fn attach_snippets<'a>(&mut self, sources: impl Fn(&Path) -> Option<&'a str>) {
        // Each file's lines are split once, however many diagnostics point into it.
        let mut lines: std::collections::HashMap<PathBuf, Option<Vec<&'a str>>> =
            std::collections::HashMap::new();
        for d in &mut self.items {
            if d.snippet.is_some() || d.pos.line == 0 {
                continue;
            }
            let file_lines = lines
                .entry(d.file.clone())
                .or_insert_with(|| sources(&d.file).map(|text| text.lines().collect()));
            if let Some(file_lines) = file_lines {
                d.snippet = file_lines
                    .get(d.pos.line as usize - 1)
                    .map(|l| l.trim_end().to_string());
            }
        }
    }

    /// A one-line summary such as `2 errors, 1 warning`.
    pub fn summary(&self) -> String {
        let errors = self.errors().count();
        let warnings = self.warnings().count();
        format!(
            "{} {}, {} {}",
            errors,
            plural(errors, "error"),
            warnings,
            plural(warnings, "warning")
        )
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

impl std::error::Error for Diagnostics {}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.items {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}

/// The closest candidate to `input` by edit distance, when it is close enough to be a likely typo.
///
/// Bounded, since both sides can come from a hostile file: no suggestion for names longer than
/// [`SUGGEST_MAX_LEN`] bytes or among more than [`SUGGEST_MAX_CANDIDATES`] candidates, candidates whose length
/// alone rules them out are skipped, and ties go to the smallest name so that the result never depends on the
/// candidates' order.
pub fn did_you_mean<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    if input.len() > SUGGEST_MAX_LEN {
        return None;
    }
    let candidates: Vec<&str> = candidates
        .into_iter()
        .take(SUGGEST_MAX_CANDIDATES + 1)
        .collect();
    if candidates.len() > SUGGEST_MAX_CANDIDATES {
        return None;
    }
    candidates
        .into_iter()
        .filter(|c| c.len() <= SUGGEST_MAX_LEN)
        .filter_map(|c| {
            let allowed = (c.len().max(input.len()) / 3).max(1);
            if c.len().abs_diff(input.len()) > allowed {
                return None;
            }
            let d = strsim::osa_distance(input, c);
            (d <= allowed).then_some((d, c))
        })
        .min()
        .map(|(_, c)| c)
}

/// Longest name (input or candidate) that "did you mean" considers.
pub const SUGGEST_MAX_LEN: usize = 64;
/// Most candidates that "did you mean" compares against.
pub const SUGGEST_MAX_CANDIDATES: usize = 1_000;

/// `did you mean `x`?` help text when a close candidate exists.
pub fn suggestion<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    did_you_mean(input, candidates).map(|c| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_numbered_in_declaration_order_and_never_shift() {
        for (i, code) in Code::ALL.iter().enumerate() {
            assert_eq!(*code as usize, i, "Code::ALL lists every code in order");
        }
        // Numbers already published stay what they were.
        assert_eq!(Code::Unreadable.to_string(), "E0001");
        assert_eq!(Code::Internal.to_string(), "E0029");
        assert_eq!(Code::UnusedPolicy.to_string(), "W0001");
        assert_eq!(Code::UnknownAction.to_string(), "W0003");
        assert_eq!(Code::InvalidRoute.to_string(), "E0030");
        assert_eq!(Code::OperatorType.to_string(), "W0004");
        assert_eq!(Code::UnknownTestPolicy.to_string(), "W0007");
    }

    #[test]
    fn suggestions_are_bounded_and_deterministic() {
        assert_eq!(
            did_you_mean("RedKey", ["ReadKey", "ReadKeys"]),
            Some("ReadKey")
        );
        // Ties go to the smallest name, whatever the order.
        assert_eq!(did_you_mean("ab", ["ax", "aa"]), Some("aa"));
        assert_eq!(did_you_mean("ab", ["aa", "ax"]), Some("aa"));
        let long = "x".repeat(SUGGEST_MAX_LEN + 1);
        assert_eq!(did_you_mean(&long[1..], [long.as_str()]), None);
        assert_eq!(did_you_mean(&long, [&long[1..]]), None);
        let many: Vec<String> = (0..=SUGGEST_MAX_CANDIDATES)
            .map(|i| format!("g{i}"))
            .collect();
        assert_eq!(did_you_mean("g1", many.iter().map(String::as_str)), None);
        assert_eq!(
            did_you_mean("g1", many[..10].iter().map(String::as_str)),
            Some("g1")
        );
    }
}
