//! Plain classes: policies that the query plan can take as one block, found once per snapshot.
//!
//! A policy is *plain* when nothing about it reads the resource but its URI patterns: none of its conditions
//! reads `resource.*` (path or reference), it has patterns and none is all `*`, and it has exactly one attachment,
//! whose selector names exactly one principal key (no tests: everyone; or one `id` or `groups` test with one
//! string). Plain policies filed under the same key with the same effect, actions and conditions form a class.
//! For one plan request every member of a class is decided alike (same actions, same conditions read from the
//! same request, a selector the principal met by reaching the key), so the plan decides the class once and,
//! when the URI is not known, takes its patterns as one list, pruned here once, instead of visiting every member
//! (a set of 100,000 policies has a class of 25,000 denies attached to everyone).
//!
//! The members' patterns and ids are fresh copies laid out together, so a plan that reads them walks memory in
//! order. Classes smaller than [`MIN_CLASS`] are not formed: their members stay ordinary candidates.

use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use super::condition::{NumArg, Op, Operand, TimeArg};
use super::glob::Glob;
use super::index::PrincipalKey;
use super::path::{AttrPath, Field, Part, Target};
use super::patterns::{covered, lengths, star_prefix, PatternList};
use super::{Compiled, FastMap, Lit, Policy, Selector, SelectorKey};
use crate::ast::Effect;

/// Fewest members of a class; smaller groups gain nothing over visiting each policy.
pub const MIN_CLASS: usize = 16;

/// The plain classes of one compiled set, by principal key.
#[derive(Debug, Default)]
pub struct PlainClasses {
    classes: Vec<PlainClass>,
    /// Per policy: whether it belongs to a class (the plan then skips it among the candidates).
    member: Vec<bool>,
    everyone: Vec<u32>,
    by_id: FastMap<Box<str>, Vec<u32>>,
    by_group: FastMap<Box<str>, Vec<u32>>,
}

/// Plain policies with one key, effect, action list and condition list.
#[derive(Debug)]
pub struct PlainClass {
    pub effect: Effect,
    /// Its members, in policy order (sorted ids).
    pub members: Box<[u32]>,
    /// Every member's patterns, member after member, each member's in its own order.
    pub patterns: Box<[Glob]>,
    /// Where each member's patterns end in `patterns`.
    pub ends: Box<[u32]>,
    /// `patterns` without repeats and without those another covers, in order: the class's URI leaf when the
    /// class is the only plain term of its effect in a plan.
    pub kept: Arc<[Glob]>,
    /// The members' ids, in member order.
    pub ids: Box<[Arc<str>]>,
    /// Per kept pattern: the member (policy number) it comes from.
    kept_policy: Box<[u32]>,
    /// Per kept pattern: its position in `patterns` (ascending).
    kept_at: Box<[u32]>,
    /// The kept patterns' positions in `kept`, sorted by literal head.
    kept_by_head: Box<[u32]>,
    /// The first occurrence of each text in `patterns` (positions), sorted by text.
    by_text: Box<[u32]>,
    /// The `p*` prefixes among the patterns, sorted, without repeats.
    stars: Box<[Box<str>]>,
    /// Their lengths, ascending, without repeats.
    star_lengths: Box<[usize]>,
}

impl PlainClasses {
    /// Finds the classes of at least `min` members (`min` is [`MIN_CLASS`] outside tests).
    pub fn build(compiled: &Compiled, min: usize) -> PlainClasses {
        let policies = &compiled.policies;
        // Each policy's attachment, when it has exactly one.
        let mut only: Vec<Option<u32>> = vec![None; policies.len()];
        let mut seen = vec![false; policies.len()];
        for (i, a) in compiled.attachments.iter().enumerate() {
            let p = a.policy as usize;
            only[p] = if seen[p] { None } else { Some(i as u32) };
            seen[p] = true;
        }
        // Plain policies by key and a hash of what they share; in one bucket, groups of policies alike.
        let mut buckets: FastMap<(PrincipalKey<'_>, u64), Vec<Vec<u32>>> = FastMap::default();
        let hasher = foldhash::fast::FixedState::default();
        for (p, policy) in policies.iter().enumerate() {
            let Some(a) = only[p] else { continue };
            let Some(key) = single_key(&compiled.attachments[a as usize].selector) else {
                continue;
            };
            if !is_plain(policy) {
                continue;
            }
            let groups = buckets
                .entry((key, hasher.hash_one(Shared(policy))))
                .or_default();
            // Groups in one bucket differ only where hashes collide, or by a NaN: a few are compared, no more.
            match groups
                .iter_mut()
                .take(8)
                .find(|g| alike(&policies[g[0] as usize], policy))
            {
                Some(group) => group.push(p as u32),
                None => groups.push(vec![p as u32]),
            }
        }
        let mut found: Vec<(PrincipalKey<'_>, Vec<u32>)> = buckets
            .into_iter()
            .flat_map(|((key, _), groups)| groups.into_iter().map(move |g| (key, g)))
            .filter(|(_, members)| members.len() >= min.max(1))
            .collect();
        // In policy order, whatever the map's.
        found.sort_unstable_by_key(|(_, members)| members[0]);

        let mut out = PlainClasses {
            member: vec![false; policies.len()],
            ..PlainClasses::default()
        };
        for (key, members) in found {
            let number = out.classes.len() as u32;
            members.iter().for_each(|&p| out.member[p as usize] = true);
            out.classes.push(PlainClass::new(policies, members));
            match key {
                PrincipalKey::Everyone => out.everyone.push(number),
                PrincipalKey::Id(id) => out.by_id.entry(id.into()).or_default().push(number),
                PrincipalKey::Group(g) => out.by_group.entry(g.into()).or_default().push(number),
            }
        }
        out
    }

    /// Whether policy `p` belongs to a class.
    #[inline]
    pub fn is_member(&self, p: u32) -> bool {
        self.member.get(p as usize).copied().unwrap_or(false)
    }

    /// Class number `c`.
    pub fn class(&self, c: u32) -> &PlainClass {
        &self.classes[c as usize]
    }

    /// The classes a principal with this id and these (effective) groups reaches, sorted, without repeats: the
    /// same keys the index's candidate lookup visits.
    pub fn reached(&self, id: &str, groups: &[&str]) -> Vec<u32> {
        let mut out = self.everyone.clone();
        if let Some(c) = self.by_id.get(id) {
            out.extend_from_slice(c);
        }
        if !self.by_group.is_empty() {
            for g in groups {
                if let Some(c) = self.by_group.get(*g) {
                    out.extend_from_slice(c);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

impl PlainClass {
    fn new(policies: &[Policy], members: Vec<u32>) -> PlainClass {
        let mut patterns = Vec::new();
        let mut ends = Vec::with_capacity(members.len());
        let mut ids = Vec::with_capacity(members.len());
        for &p in &members {
            let policy = &policies[p as usize];
            // Fresh copies, allocated one after the other.
            patterns.extend(
                policy
                    .resources
                    .iter()
                    .map(|g| Glob::new(g.as_str()).expect("a compiled pattern compiles again")),
            );
            ends.push(patterns.len() as u32);
            ids.push(Arc::from(&*policy.id));
        }
        let mut list = PatternList::default();
        patterns.iter().for_each(|g| list.push(g));
        let kept_at: Vec<u32> = list.pruned().into_iter().map(|i| i as u32).collect();
        let kept: Arc<[Glob]> = kept_at
            .iter()
            .map(|&i| patterns[i as usize].clone())
            .collect();
        let kept_policy = kept_at
            .iter()
            .map(|&at| member_of(&members, &ends, at))
            .collect();
        let mut kept_by_head: Vec<u32> = (0..kept.len() as u32).collect();
        kept_by_head.sort_by(|&a, &b| {
            kept[a as usize]
                .literal_prefix()
                .cmp(kept[b as usize].literal_prefix())
        });
        // Stable: among equal texts the first occurrence comes first, and stays.
        let mut by_text: Vec<u32> = (0..patterns.len() as u32).collect();
        by_text.sort_by(|&a, &b| patterns[a as usize].as_str().cmp(patterns[b as usize].as_str()));
        by_text.dedup_by(|b, a| patterns[*a as usize].as_str() == patterns[*b as usize].as_str());
        let mut stars: Vec<Box<str>> = patterns.iter().filter_map(star_prefix).map(Into::into).collect();
        stars.sort_unstable();
        stars.dedup();
        let star_lengths = lengths(stars.iter().map(|p| &**p)).into();
        PlainClass {
            effect: policies[members[0] as usize].effect,
            members: members.into(),
            patterns: patterns.into(),
            ends: ends.into(),
            kept,
            ids: ids.into(),
            kept_policy,
            kept_at: kept_at.into(),
            kept_by_head: kept_by_head.into(),
            by_text: by_text.into(),
            stars: stars.into(),
            star_lengths,
        }
    }

    /// A member: its actions and conditions are every member's.
    pub fn representative(&self) -> u32 {
        self.members[0]
    }

    /// The patterns of member `m` (a position in `members`).
    pub fn member_patterns(&self, m: usize) -> &[Glob] {
        let start = if m == 0 { 0 } else { self.ends[m - 1] as usize };
        &self.patterns[start..self.ends[m] as usize]
    }

    /// The patterns that stay when `extra`, the patterns of policies outside the class (policy number and
    /// pattern, in policy order), join the class's: exactly what pruning the whole list in policy order keeps
    /// ([`PatternList::pruned`]), in that order. A pattern stays when it is the first of its text and no other
    /// `p*` covers it; the class's kept patterns already satisfy that among themselves, so only what the extras
    /// add is looked up (the lookups grow with the extras and the class patterns they cover); the result is
    /// still a new list as long as the class's.
    pub fn merged<'a>(&'a self, extra: &[(u32, &'a Glob)]) -> Vec<&'a Glob> {
        type Set<'s> = std::collections::HashSet<&'s str, foldhash::fast::RandomState>;
        let extra_stars: Set = extra.iter().filter_map(|(_, g)| star_prefix(g)).collect();
        let extra_lengths = lengths(extra_stars.iter().copied());
        let covered_by_extra = |g: &Glob| {
            covered(g.literal_prefix(), star_prefix(g), &extra_lengths, |p| {
                extra_stars.contains(p)
            })
        };
        // Kept class patterns an extra `p*` covers go. Only the shortest such prefixes need their range read:
        // what a longer one covers, a shorter one that starts it covers too (`own` aside, which differs).
        let mut gone = vec![false; self.kept.len()];
        for &p in &extra_stars {
            if covered(p, None, &extra_lengths, |q| q.len() < p.len() && extra_stars.contains(q)) {
                continue;
            }
            let heads = &self.kept_by_head;
            let from = heads.partition_point(|&k| self.kept[k as usize].literal_prefix() < p);
            for &k in heads[from..]
                .iter()
                .take_while(|&&k| self.kept[k as usize].literal_prefix().starts_with(p))
            {
                if covered_by_extra(&self.kept[k as usize]) {
                    gone[k as usize] = true;
                }
            }
        }
        // Extras stay when they are the first of their text and nothing covers them; a class pattern whose
        // text an earlier extra has goes.
        let mut seen = Set::default();
        let mut staying: Vec<(u32, &Glob)> = Vec::new();
        for &(policy, g) in extra {
            if !seen.insert(g.as_str()) {
                continue;
            }
            if let Some(at) = self.first_of(g.as_str()) {
                if member_of(&self.members, &self.ends, at) < policy {
                    continue;
                }
                if let Ok(k) = self.kept_at.binary_search(&at) {
                    gone[k] = true;
                }
            }
            if !self.covers(g) && !covered_by_extra(g) {
                staying.push((policy, g));
            }
        }
        // Both lists are in policy order (a policy is in the class or among the extras, never both).
        let mut out = Vec::with_capacity(self.kept.len() + staying.len());
        let mut staying = staying.into_iter().peekable();
        for (k, g) in self.kept.iter().enumerate() {
            while let Some((_, x)) = staying.next_if(|(p, _)| *p < self.kept_policy[k]) {
                out.push(x);
            }
            if !gone[k] {
                out.push(g);
            }
        }
        out.extend(staying.map(|(_, x)| x));
        out
    }

    /// The position in `patterns` of the first pattern with this text.
    fn first_of(&self, text: &str) -> Option<u32> {
        self.by_text
            .binary_search_by(|&i| self.patterns[i as usize].as_str().cmp(text))
            .ok()
            .map(|i| self.by_text[i])
    }

    /// Whether one of the class's `p*` patterns covers `g` (one that is not `g` itself).
    fn covers(&self, g: &Glob) -> bool {
        covered(g.literal_prefix(), star_prefix(g), &self.star_lengths, |p| {
            self.stars.binary_search_by(|s| (**s).cmp(p)).is_ok()
        })
    }
}

/// The member (policy number) that pattern `at` of a class comes from, given where each member's patterns end.
fn member_of(members: &[u32], ends: &[u32], at: u32) -> u32 {
    members[ends.partition_point(|&end| end <= at)]
}

/// The one principal key a selector is filed under, when meeting that key is meeting the selector.
fn single_key(selector: &Selector) -> Option<PrincipalKey<'_>> {
    match &selector.tests[..] {
        [] => Some(PrincipalKey::Everyone),
        [test] => match (&test.key, &test.values[..]) {
            (SelectorKey::Id, [Lit::Str(id)]) => Some(PrincipalKey::Id(id)),
            (SelectorKey::Groups, [Lit::Str(g)]) => Some(PrincipalKey::Group(g)),
            _ => None,
        },
        _ => None,
    }
}

/// True when nothing about the policy reads the resource but its patterns, and no pattern is all `*`.
fn is_plain(policy: &Policy) -> bool {
    !policy.resources.is_empty()
        && !policy.resources.iter().any(Glob::matches_everything)
        && !policy
            .conditions
            .iter()
            .any(|c| reads_resource(&c.path) || c.references().into_iter().any(reads_resource))
}

/// True when a path reads the resource (its URI, its owner or an attribute).
pub(crate) fn reads_resource(path: &AttrPath) -> bool {
    matches!(
        path.target,
        Target::Field(Field::ResourceUri | Field::ResourceOwner)
            | Target::Attribute {
                part: Part::Resource,
                ..
            }
    )
}

/// Whether two policies are decided alike for every request: the same effect, actions and conditions
/// (positions aside). A number that is not equal to itself (NaN) makes policies unlike, which only costs
/// sharing.
fn alike(a: &Policy, b: &Policy) -> bool {
    a.effect == b.effect
        && a.actions == b.actions
        && a.conditions.len() == b.conditions.len()
        && a.conditions.iter().zip(b.conditions.iter()).all(|(x, y)| {
            x.path == y.path
                && x.op_name == y.op_name
                && x.negate == y.negate
                && x.zone_text == y.zone_text
                && x.op == y.op
        })
}

/// What [`alike`] compares, hashed: policies alike hash alike (but `0.0` and `-0.0`, which only costs sharing),
/// so a bucket holds one group unless hashes collide or a NaN makes alike-looking policies unlike.
struct Shared<'a>(&'a Policy);

impl std::hash::Hash for Shared<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let policy = self.0;
        policy.effect.hash(state);
        policy.actions.len().hash(state);
        policy.actions.iter().for_each(|g| g.as_str().hash(state));
        policy.conditions.len().hash(state);
        for c in policy.conditions.iter() {
            c.path.text.hash(state);
            c.op_name.hash(state);
            c.negate.hash(state);
            c.zone_text.hash(state);
            hash_values(&c.op, state);
        }
    }
}

/// The values of a condition's operator, hashed (numbers by their bits; zones are hashed as written).
fn hash_values<H: std::hash::Hasher>(op: &Op, state: &mut H) {
    let path = |p: &AttrPath, state: &mut H| p.text.hash(state);
    let operands = |v: &[Operand], state: &mut H| {
        v.len().hash(state);
        for o in v {
            match o {
                Operand::Lit(Lit::Str(s)) => (0u8, &**s).hash(state),
                Operand::Lit(Lit::Num(n)) => (1u8, n.to_bits()).hash(state),
                Operand::Lit(Lit::Bool(b)) => (2u8, b).hash(state),
                Operand::Ref(p) => {
                    3u8.hash(state);
                    path(p, state)
                }
            }
        }
    };
    std::mem::discriminant(op).hash(state);
    match op {
        Op::Equals(v) | Op::ContainsAll(v) | Op::StartsWith(v) | Op::EndsWith(v) => {
            operands(v, state)
        }
        Op::Glob(globs) => globs.iter().for_each(|g| g.as_str().hash(state)),
        Op::Compare(cmp, arg) => {
            std::mem::discriminant(cmp).hash(state);
            match arg {
                NumArg::Num(n) => n.to_bits().hash(state),
                NumArg::Ref(p) => path(p, state),
            }
        }
        Op::Before(arg) | Op::After(arg) => match arg {
            TimeArg::At(t) => t.hash(state),
            TimeArg::Ref(p) => path(p, state),
        },
        Op::TimeOfDay(windows, _) => windows
            .iter()
            .for_each(|w| (w.start, w.end).hash(state)),
        Op::Weekday(mask, _) => mask.hash(state),
        Op::Cidr(nets) => nets.hash(state),
        Op::Exists | Op::IsTrue => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy(n: usize, resources: &[String]) -> Policy {
        Policy {
            id: format!("p{n:03}").into(),
            effect: Effect::Deny,
            actions: Arc::from([Glob::new("*").expect("a glob")]),
            resources: resources
                .iter()
                .map(|r| Glob::new(r).expect("a glob"))
                .collect(),
            conditions: Arc::from([]),
            origin: crate::ast::Origin {
                file: Arc::from(std::path::Path::new("p.yaml")),
                pos: Default::default(),
            },
        }
    }

    proptest! {
        /// A class's patterns merged with those of policies outside it are what pruning the whole list, in
        /// policy order, keeps: over short patterns with `*` and a two-byte character, so that repeats and
        /// covers across the two sides are common.
        #[test]
        fn merging_into_a_class_prunes_as_the_whole_list(
            sets in proptest::collection::vec(
                (proptest::collection::vec("[aé*]{1,3}", 1..4), any::<bool>()), 1..14),
        ) {
            let policies: Vec<Policy> = sets.iter().enumerate().map(|(n, (r, _))| policy(n, r)).collect();
            let members: Vec<u32> = (0..sets.len() as u32).filter(|&n| sets[n as usize].1).collect();
            prop_assume!(!members.is_empty());
            let class = PlainClass::new(&policies, members.clone());
            let extra: Vec<(u32, &Glob)> = (0..sets.len() as u32)
                .filter(|n| !members.contains(n))
                .flat_map(|n| policies[n as usize].resources.iter().map(move |g| (n, g)))
                .collect();
            let mut whole = PatternList::default();
            policies.iter().flat_map(|p| p.resources.iter()).for_each(|g| whole.push(g));
            let expected: Vec<&str> = whole.pruned().into_iter().map(|i| whole.text(i)).collect();
            let merged: Vec<&str> = class.merged(&extra).into_iter().map(Glob::as_str).collect();
            prop_assert_eq!(merged, expected);
        }
    }
}
