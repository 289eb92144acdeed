//! Witness strings for glob languages: real intersection and difference of `*`-only patterns.
//!
//! Each pattern is a small NFA (one state per token, `*` loops). [`witnesses`] explores the product of a
//! "universe" pattern with any number of other patterns, deterministically (sets of NFA states), breadth first,
//! and keeps the shortest string for every distinct combination of "which patterns match" that a string of the
//! universe can produce. So a deny on `kylo:kylo:admin:policies:prod-*` inside a guard on
//! `kylo:kylo:admin:policies:*` yields both `...:prod-…` (inside) and another policy name (outside).

use std::collections::{HashMap, VecDeque};

/// One token of a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Char(char),
    Star,
}

/// A pattern as an NFA over its tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    toks: Vec<Tok>,
}

impl Pattern {
    /// A glob: `*` is a wildcard.
    pub fn glob(text: &str) -> Pattern {
        Pattern {
            toks: text
                .chars()
                .map(|c| if c == '*' { Tok::Star } else { Tok::Char(c) })
                .collect(),
        }
    }

    /// A literal string: `*` is an ordinary character.
    pub fn literal(text: &str) -> Pattern {
        Pattern {
            toks: text.chars().map(Tok::Char).collect(),
        }
    }

    pub fn prefix(text: &str) -> Pattern {
        let mut p = Pattern::literal(text);
        p.toks.push(Tok::Star);
        p
    }

    pub fn suffix(text: &str) -> Pattern {
        let mut p = Pattern::literal(text);
        p.toks.insert(0, Tok::Star);
        p
    }

    /// The characters before the first `*` (all of them for a literal).
    pub fn head(&self) -> String {
        self.toks
            .iter()
            .map_while(|t| match t {
                Tok::Char(c) => Some(*c),
                Tok::Star => None,
            })
            .collect()
    }

    /// The characters after the last `*` (empty when the pattern ends with `*`; all of them for a literal).
    pub fn tail(&self) -> String {
        let mut out: Vec<char> = self
            .toks
            .iter()
            .rev()
            .map_while(|t| match t {
                Tok::Char(c) => Some(*c),
                Tok::Star => None,
            })
            .collect();
        out.reverse();
        out.into_iter().collect()
    }

    /// True when the pattern has no `*`: it matches one string only.
    pub fn is_literal(&self) -> bool {
        !self.toks.contains(&Tok::Star)
    }

    /// Every character a matching string must contain.
    pub fn chars(&self) -> impl Iterator<Item = char> + '_ {
        self.toks.iter().filter_map(|t| match t {
            Tok::Char(c) => Some(*c),
            Tok::Star => None,
        })
    }

    /// Adds the epsilon closure (a `*` may match nothing).
    fn close(&self, states: &mut Vec<u16>) {
        let mut i = 0;
        while i < states.len() {
            let s = states[i] as usize;
            if s < self.toks.len() && self.toks[s] == Tok::Star && !states.contains(&(s as u16 + 1))
            {
                states.push(s as u16 + 1);
            }
            i += 1;
        }
        states.sort_unstable();
        states.dedup();
    }

    fn start(&self) -> Vec<u16> {
        let mut s = vec![0];
        self.close(&mut s);
        s
    }

    fn step(&self, states: &[u16], c: char) -> Vec<u16> {
        let mut next = Vec::new();
        for &s in states {
            match self.toks.get(s as usize) {
                Some(Tok::Star) => next.push(s),
                Some(Tok::Char(x)) if *x == c => next.push(s + 1),
                _ => {}
            }
        }
        self.close(&mut next);
        next
    }

    fn accepts(&self, states: &[u16]) -> bool {
        states.contains(&(self.toks.len() as u16))
    }

    /// True when `s` matches (for checks and tests).
    pub fn matches(&self, s: &str) -> bool {
        let mut st = self.start();
        for c in s.chars() {
            st = self.step(&st, c);
            if st.is_empty() {
                return false;
            }
        }
        self.accepts(&st)
    }
}

/// The result of a witness search.
#[derive(Debug, Clone, Default)]
pub struct Witnesses {
    /// Witnesses per distinct match vector (bit `i` set when pattern `i` matches), shortest first, up to the
    /// number of copies asked for (fewer only when the cell has fewer strings).
    pub by_vector: Vec<(Vec<bool>, Vec<String>)>,
    /// False when the state budget ran out before the search finished.
    pub complete: bool,
}

impl Witnesses {
    /// The first (shortest) witness of every vector.
    pub fn firsts(&self) -> impl Iterator<Item = (&[bool], &str)> {
        self.by_vector
            .iter()
            .filter_map(|(v, w)| w.first().map(|s| (v.as_slice(), s.as_str())))
    }
}

/// Explores strings of `universe` and returns witnesses for every achievable match vector over `patterns`:
/// `copies` distinct strings per vector (or every string of a smaller cell). The empty string counts only when
/// `allow_empty`.
///
/// The product of the patterns' NFAs is explored breadth first over sets of states, each visited at most `copies`
/// times, with one flag for "non-empty so far": so a `*` universe whose every non-empty string leads back to the
/// start state still yields a witness (an empty candidate set is never a proof). Characters that no pattern
/// mentions all behave alike, so the alphabet is the patterns' characters plus one fresh character.
pub fn witnesses(
    universe: &Pattern,
    patterns: &[Pattern],
    allow_empty: bool,
    max_states: usize,
    copies: usize,
) -> Witnesses {
    let copies = copies.max(1);
    let mut alphabet: Vec<char> = universe
        .chars()
        .chain(patterns.iter().flat_map(|p| p.chars()))
        .collect();
    alphabet.sort_unstable();
    alphabet.dedup();
    if let Some(fresh) = "xqzjkw0123456789".chars().find(|c| !alphabet.contains(c)) {
        alphabet.push(fresh);
    }

    type State = (Vec<u16>, Vec<Vec<u16>>, bool);
    let start: State = (
        universe.start(),
        patterns.iter().map(Pattern::start).collect(),
        false,
    );
    let mut visits: HashMap<State, usize> = HashMap::new();
    let mut queue: VecDeque<(State, String)> = VecDeque::new();
    // Keyed by the vector and by emptiness: the empty string is a cell of its own (a request with no URI, an
    // empty attribute) even where a pattern treats it like other strings.
    let mut found: HashMap<(Vec<bool>, bool), Vec<String>> = HashMap::new();
    let mut order: Vec<(Vec<bool>, bool)> = Vec::new();
    visits.insert(start.clone(), 1);
    queue.push_back((start, String::new()));
    let mut complete = true;
    'search: while let Some(((u, ps, nonempty), text)) = queue.pop_front() {
        if universe.accepts(&u) && (allow_empty || nonempty) {
            let vector: Vec<bool> = patterns
                .iter()
                .zip(&ps)
                .map(|(p, s)| p.accepts(s))
                .collect();
            let key = (vector, text.is_empty());
            let slot = found.entry(key.clone()).or_insert_with(|| {
                order.push(key);
                Vec::new()
            });
            if slot.len() < copies {
                slot.push(text.clone());
            }
        }
        for &c in &alphabet {
            let nu = universe.step(&u, c);
            if nu.is_empty() {
                continue;
            }
            let nps: Vec<Vec<u16>> = patterns
                .iter()
                .zip(&ps)
                .map(|(p, s)| p.step(s, c))
                .collect();
            let state = (nu, nps, true);
            let seen = visits.get(&state).copied().unwrap_or(0);
            if seen >= copies {
                continue;
            }
            if seen == 0 && visits.len() >= max_states {
                complete = false;
                break 'search;
            }
            visits.insert(state.clone(), seen + 1);
            let mut t = text.clone();
            t.push(c);
            queue.push_back((state, t));
        }
    }
    Witnesses {
        by_vector: order
            .into_iter()
            .map(|k| {
                let s = found.remove(&k).unwrap_or_default();
                (k.0, s)
            })
            .collect(),
        complete,
    }
}

/// A string in `L(a) \ L(b)`, if any: used to tell whether a guard pattern was narrowed.
pub fn difference_witness(a: &Pattern, b: &Pattern) -> Option<String> {
    witnesses(a, std::slice::from_ref(b), true, 50_000, 1)
        .firsts()
        .find(|(v, _)| !v[0])
        .map(|(_, s)| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nfa_matches_like_the_glob_matcher() {
        for (p, s, want) in [
            ("kylo:*", "kylo:a:b", true),
            ("*WithKey", "EncryptWithKey", true),
            ("a*b*c", "acb", false),
            ("ab*ba", "aba", false),
            ("*", "", true),
        ] {
            assert_eq!(Pattern::glob(p).matches(s), want, "{p} {s}");
        }
        assert!(Pattern::literal("a*").matches("a*"));
        assert!(!Pattern::literal("a*").matches("ab"));
    }

    #[test]
    fn finds_intersection_and_difference() {
        let guard = Pattern::glob("kylo:kylo:admin:policies:*");
        let deny = Pattern::glob("*:prod-*");
        let w = witnesses(&guard, std::slice::from_ref(&deny), false, 10_000, 1);
        assert!(w.complete);
        let inside = w
            .firsts()
            .find(|(v, _)| v[0])
            .map(|(_, s)| s.to_string())
            .unwrap();
        let outside = w
            .firsts()
            .find(|(v, _)| !v[0])
            .map(|(_, s)| s.to_string())
            .unwrap();
        assert!(guard.matches(&inside) && deny.matches(&inside), "{inside}");
        assert!(
            guard.matches(&outside) && !deny.matches(&outside),
            "{outside}"
        );
    }

    #[test]
    fn builds_conjunction_witnesses() {
        let w = witnesses(
            &Pattern::glob("*"),
            &[Pattern::prefix("adm"), Pattern::suffix("@corp")],
            false,
            10_000,
            1,
        );
        let both = w
            .firsts()
            .find(|(v, _)| v[0] && v[1])
            .map(|(_, s)| s.to_string())
            .unwrap();
        assert!(both.starts_with("adm") && both.ends_with("@corp"), "{both}");
        assert_eq!(w.by_vector.len(), 4);
    }

    #[test]
    fn difference_of_globs() {
        assert!(
            difference_witness(&Pattern::glob("kylo:*"), &Pattern::glob("kylo:kylo:*")).is_some()
        );
        assert!(
            difference_witness(&Pattern::glob("kylo:kylo:*"), &Pattern::glob("kylo:*")).is_none()
        );
        assert!(difference_witness(&Pattern::glob("Read*"), &Pattern::glob("*")).is_none());
    }

    #[test]
    fn a_star_universe_has_witnesses_even_when_every_pattern_is_a_star() {
        let w = witnesses(&Pattern::glob("*"), &[Pattern::glob("*")], false, 1_000, 1);
        assert!(w.complete);
        let all: Vec<&str> = w.firsts().map(|(_, s)| s).collect();
        assert_eq!(all.len(), 1);
        assert!(!all[0].is_empty());
        // The empty string is a cell of its own.
        let w = witnesses(&Pattern::glob("*"), &[], true, 1_000, 1);
        assert_eq!(
            w.firsts().map(|(_, s)| s).collect::<Vec<_>>(),
            vec!["", "x"]
        );
    }

    #[test]
    fn copies_are_distinct_members_of_the_same_cell() {
        let p = [Pattern::prefix("ab"), Pattern::literal("zeta")];
        let w = witnesses(&Pattern::glob("*"), &p, true, 10_000, 3);
        for (vector, strings) in &w.by_vector {
            let mut unique = strings.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), strings.len());
            for s in strings {
                let got: Vec<bool> = p.iter().map(|x| x.matches(s)).collect();
                assert_eq!(&got, vector, "{s}");
            }
            // `zeta` and the empty string are cells of one string; every other cell is infinite.
            let want = if vector[1] || strings[0].is_empty() {
                1
            } else {
                3
            };
            assert_eq!(strings.len(), want, "{vector:?}");
        }
    }
}
