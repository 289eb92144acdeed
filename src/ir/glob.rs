//! The policy language's globs: `*` matches any run of characters (including `:` and the empty run), nothing
//! else is special, and matching is anchored, case-sensitive and linear-time.
//!
//! A pattern is split once at compile time into its literal pieces; matching checks the fixed prefix and suffix
//! and then finds the middle pieces left to right, which is correct for `*`-only patterns and never backtracks.

use std::fmt;
use std::sync::Arc;

/// Characters reserved for future glob syntax; a pattern that uses them is rejected.
pub const RESERVED: &[char] = &['?', '[', ']', '{', '}', '\\'];

/// Longest glob pattern accepted, in bytes.
pub const MAX_GLOB_LEN: usize = 1024;
// Piece offsets and lengths are stored as u16.
const _: () = assert!(MAX_GLOB_LEN <= u16::MAX as usize);

/// Most `*` wildcards in one pattern.
pub const MAX_GLOB_STARS: usize = 16;

/// A compiled glob pattern. Its pieces are shared (`Arc`), so a clone (the query plan copies patterns into its
/// filter) allocates nothing; matching reads them exactly as it would owned strings.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Glob {
    text: Arc<str>,
    kind: Kind,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Kind {
    /// No `*`: plain equality.
    Exact,
    /// `*` alone.
    Any,
    /// `prefix*middle*...*suffix`: the pieces are byte ranges of the text (patterns are at most
    /// [`MAX_GLOB_LEN`] bytes), so a pattern holds one allocation, or two with middle pieces.
    Pattern {
        prefix_len: u16,
        suffix_len: u16,
        /// The non-empty pieces between the first and the last `*`, as `(start, end)` in the text.
        middle: Option<Arc<[(u16, u16)]>>,
        min_len: u16,
    },
}

/// Why a pattern was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    #[error("`{0}` is reserved in globs; only `*` is a wildcard")]
    Reserved(char),
    #[error("glob is longer than {MAX_GLOB_LEN} bytes")]
    TooLong,
    #[error("glob has more than {MAX_GLOB_STARS} `*` wildcards")]
    TooManyStars,
    #[error("glob is empty")]
    Empty,
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError::Empty);
        }
        if pattern.len() > MAX_GLOB_LEN {
            return Err(GlobError::TooLong);
        }
        if let Some(c) = pattern.chars().find(|c| RESERVED.contains(c)) {
            return Err(GlobError::Reserved(c));
        }
        if pattern.matches('*').count() > MAX_GLOB_STARS {
            return Err(GlobError::TooManyStars);
        }
        let kind = if !pattern.contains('*') {
            Kind::Exact
        } else if pattern.bytes().all(|b| b == b'*') {
            Kind::Any
        } else {
            // Lengths and offsets fit in u16: the pattern is at most MAX_GLOB_LEN bytes.
            let offset = |piece: &str| (piece.as_ptr() as usize - pattern.as_ptr() as usize) as u16;
            let pieces: Vec<&str> = pattern.split('*').collect();
            let prefix = pieces[0];
            let suffix = pieces[pieces.len() - 1];
            let middle: Vec<(u16, u16)> = pieces[1..pieces.len() - 1]
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| (offset(p), offset(p) + p.len() as u16))
                .collect();
            let min_len = prefix.len()
                + suffix.len()
                + middle.iter().map(|&(a, b)| usize::from(b - a)).sum::<usize>();
            Kind::Pattern {
                prefix_len: prefix.len() as u16,
                suffix_len: suffix.len() as u16,
                middle: (!middle.is_empty()).then(|| middle.into()),
                min_len: min_len as u16,
            }
        };
        Ok(Glob {
            text: pattern.into(),
            kind,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the pattern has no wildcard.
    pub fn is_exact(&self) -> bool {
        matches!(self.kind, Kind::Exact)
    }

    /// True when the pattern is all `*`: it matches every string, the empty one included.
    pub fn matches_everything(&self) -> bool {
        matches!(self.kind, Kind::Any)
    }

    /// The literal text every match starts with.
    pub fn literal_prefix(&self) -> &str {
        match &self.kind {
            Kind::Exact => &self.text,
            Kind::Any => "",
            Kind::Pattern { prefix_len, .. } => &self.text[..usize::from(*prefix_len)],
        }
    }

    pub fn matches(&self, s: &str) -> bool {
        match &self.kind {
            Kind::Exact => *self.text == *s,
            Kind::Any => true,
            Kind::Pattern {
                prefix_len,
                suffix_len,
                middle,
                min_len,
            } => {
                let text = &*self.text;
                let prefix = &text[..usize::from(*prefix_len)];
                let suffix = &text[text.len() - usize::from(*suffix_len)..];
                if s.len() < usize::from(*min_len) || !s.starts_with(prefix) || !s.ends_with(suffix) {
                    return false;
                }
                let mut rest = &s[prefix.len()..s.len() - suffix.len()];
                for &(start, end) in middle.iter().flat_map(|m| m.iter()) {
                    let piece = &text[usize::from(start)..usize::from(end)];
                    match rest.find(piece) {
                        Some(at) => rest = &rest[at + piece.len()..],
                        None => return false,
                    }
                }
                true
            }
        }
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.text)
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Glob::new(p).unwrap().matches(s)
    }

    #[test]
    fn star_matches_any_run_including_colons_and_empty() {
        assert!(m("kylo:kylo:vault:keys:*", "kylo:kylo:vault:keys:k1"));
        assert!(m("kylo:kylo:vault:keys:*", "kylo:kylo:vault:keys:"));
        assert!(m("kylo:*", "kylo:kylo:vault:keys:a:b"));
        assert!(m("*WithKey", "EncryptWithKey"));
        assert!(!m("*WithKey", "EncryptWithKeys"));
        assert!(m("Read*", "Read"));
        assert!(m("a*b*c", "abc"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "acb"));
        assert!(!m("ab*ba", "aba"), "prefix and suffix must not overlap");
        assert!(m("*", ""));
        assert!(m("**", "x"));
    }

    #[test]
    fn pieces_are_found_in_any_shape() {
        assert!(m("a**b*c", "abc"));
        assert!(m("a**b*c", "a-b-c"));
        assert!(!m("a**b*c", "a-c-b"));
        assert!(m("*mid*", "amidb"));
        assert!(!m("*mid*", "mi-d"));
        // Multi-byte characters around and between the stars.
        assert!(m("é*ü*ß", "é-ü-ß"));
        assert!(m("é*ü*ß", "éüß"));
        assert!(!m("é*ü*ß", "éß"));
        assert!(m("*€", "1 €"));
        // The longest pattern accepted, with stars: its pieces' offsets reach the end of the text.
        let long = format!("{}*{}*{}", "a".repeat(400), "b".repeat(400), "c".repeat(MAX_GLOB_LEN - 802));
        assert_eq!(long.len(), MAX_GLOB_LEN);
        let g = Glob::new(&long).unwrap();
        let text = format!("{}x{}y{}", "a".repeat(400), "b".repeat(400), "c".repeat(MAX_GLOB_LEN - 802));
        assert!(g.matches(&text));
        assert!(!g.matches(&text[..text.len() - 1]));
        assert_eq!(g.literal_prefix().len(), 400);
    }

    #[test]
    fn matching_is_anchored_and_case_sensitive() {
        assert!(!m("key", "keys"));
        assert!(!m("key", "akey"));
        assert!(!m("Read*", "read"));
        assert!(m("key", "key"));
    }

    #[test]
    fn reserved_characters_are_rejected() {
        for p in ["a?", "[ab]", "{a,b}", "a\\*", "x]"] {
            assert!(matches!(Glob::new(p), Err(GlobError::Reserved(_))), "{p}");
        }
        assert_eq!(Glob::new(""), Err(GlobError::Empty));
    }

    #[test]
    fn literal_prefix_is_text_before_first_star() {
        assert_eq!(Glob::new("kylo:*:x").unwrap().literal_prefix(), "kylo:");
        assert_eq!(Glob::new("*x").unwrap().literal_prefix(), "");
        assert_eq!(Glob::new("abc").unwrap().literal_prefix(), "abc");
    }
}
