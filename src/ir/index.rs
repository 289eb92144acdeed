//! The candidate index: principal key (id, group, everyone) → resource-prefix trie → entries.
//!
//! Each (attachment, resource pattern) pair is filed under every principal key its selector names and under
//! the literal prefix of the pattern (the text before its first `*`). A lookup walks the request URI through
//! the trie of each bucket the principal falls into, so its cost depends on the URI length and the number of
//! near candidates, not on the size of the policy set. Entries are then confirmed exactly by the evaluator.
//! The tries are built from sorted prefixes straight into path-compressed flat arrays, one set of arrays
//! shared by every trie of the index.

use super::FastMap;

/// One indexed (attachment, resource pattern) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub attachment: u32,
    pub policy: u32,
    /// Index into the policy's `resources`.
    pub resource: u32,
}

/// One (principal key, resource prefix, entry) triple while the index is built; `slot` numbers the key.
#[derive(Debug, Clone, Copy)]
struct Item<'a> {
    slot: u32,
    prefix: &'a str,
    entry: Entry,
}

/// A frozen node: ranges into the arena's flat arrays.
#[derive(Debug, Default, Clone, Copy)]
struct Node {
    /// The bytes on the edge from the parent (empty for the root).
    label: (u32, u32),
    children: (u32, u32),
    entries: (u32, u32),
}

/// The flat arrays every trie of an index lives in: a lookup touches a handful of contiguous cache lines rather
/// than one heap node per byte, and a build allocates them once rather than per principal key.
#[derive(Debug, Clone, Default)]
struct Arena {
    nodes: Vec<Node>,
    /// The first label byte of each node (parallel to `nodes`), sorted within each node's children.
    first_bytes: Vec<u8>,
    labels: Vec<u8>,
    entries: Vec<Entry>,
}

/// One path-compressed byte trie of the arena, keyed by the literal prefix of resource patterns: its root node,
/// and its entries (contiguous, since a trie is laid out in one go).
#[derive(Debug, Clone, Copy, Default)]
struct Trie {
    root: u32,
    entries: (u32, u32),
}

impl Trie {
    fn is_empty(self) -> bool {
        self.entries.0 == self.entries.1
    }
}

impl Arena {
    /// Lays the trie of `items` out, breadth first, so that the children of a node are contiguous. `items` are
    /// sorted by prefix bytes (equal prefixes in insertion order). In sorted order the prefixes under a node form
    /// one run: those that end at the node come first (its entries), then one run per next byte (its children),
    /// and a child's edge label is the common prefix of the first and last prefix of its run. No node is ever
    /// built per byte; a trie of n prefixes takes at most 2n + 1 nodes. `runs` is scratch space.
    fn freeze(&mut self, items: &[Item<'_>], runs: &mut Vec<(usize, usize, usize)>) -> Trie {
        let root = self.nodes.len();
        let first_entry = self.entries.len() as u32;
        self.nodes.push(Node::default());
        self.first_bytes.push(0);
        // Run `k` (the prefixes below it and the depth, in bytes matched, at the node) is node `root + k`:
        // nodes and runs are pushed in step.
        runs.clear();
        runs.push((0, items.len(), 0));
        let mut k = 0;
        while k < runs.len() {
            let (lo, hi, depth) = runs[k];
            let entries_start = self.entries.len() as u32;
            let mut i = lo;
            while i < hi && items[i].prefix.len() == depth {
                self.entries.push(items[i].entry);
                i += 1;
            }
            let children_start = self.nodes.len() as u32;
            while i < hi {
                let byte = items[i].prefix.as_bytes()[depth];
                let mut j = i + 1;
                while j < hi && items[j].prefix.as_bytes()[depth] == byte {
                    j += 1;
                }
                let (first, last) = (items[i].prefix.as_bytes(), items[j - 1].prefix.as_bytes());
                let mut end = depth + 1;
                while end < first.len() && end < last.len() && first[end] == last[end] {
                    end += 1;
                }
                let label_start = self.labels.len() as u32;
                self.labels.extend_from_slice(&first[depth..end]);
                self.nodes.push(Node {
                    label: (label_start, self.labels.len() as u32),
                    ..Node::default()
                });
                self.first_bytes.push(byte);
                runs.push((i, j, end));
                i = j;
            }
            let (entries_end, children_end) = (self.entries.len() as u32, self.nodes.len() as u32);
            let node = &mut self.nodes[root + k];
            node.entries = (entries_start, entries_end);
            node.children = (children_start, children_end);
            k += 1;
        }
        Trie {
            root: root as u32,
            entries: (first_entry, self.entries.len() as u32),
        }
    }

    /// Calls `f` for every entry of `trie` whose prefix is a prefix of `key`.
    #[inline]
    fn for_each_prefix_of(&self, trie: Trie, key: &str, mut f: impl FnMut(&Entry)) {
        let key = key.as_bytes();
        let mut at = trie.root as usize;
        let mut matched = 0usize;
        loop {
            let node = self.nodes[at];
            self.entries[node.entries.0 as usize..node.entries.1 as usize]
                .iter()
                .for_each(&mut f);
            let Some(&b) = key.get(matched) else { return };
            let (lo, hi) = (node.children.0 as usize, node.children.1 as usize);
            let Ok(i) = self.first_bytes[lo..hi].binary_search(&b) else {
                return;
            };
            let child = lo + i;
            let (ls, le) = self.nodes[child].label;
            let label = &self.labels[ls as usize..le as usize];
            if !key[matched..].starts_with(label) {
                return;
            }
            matched += label.len();
            at = child;
        }
    }

    /// Every entry of `trie`, whatever its prefix.
    fn entries(&self, trie: Trie) -> &[Entry] {
        &self.entries[trie.entries.0 as usize..trie.entries.1 as usize]
    }
}

/// Which principals an attachment can apply to, as far as the index is concerned (borrowed from its selector).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalKey<'a> {
    Id(&'a str),
    Group(&'a str),
    Everyone,
}

/// The whole index of a snapshot.
#[derive(Debug, Clone)]
pub struct Index {
    arena: Arena,
    by_id: FastMap<Box<str>, Trie>,
    by_group: FastMap<Box<str>, Trie>,
    everyone: Trie,
}

impl Default for Index {
    fn default() -> Self {
        IndexBuilder::default().finish()
    }
}

/// Collects (principal key, resource prefix, entry) triples; [`IndexBuilder::finish`] freezes them. The keys
/// and prefixes are borrowed from the compiled attachments' selectors and policies' resource patterns.
#[derive(Debug, Default)]
pub struct IndexBuilder<'a> {
    /// Each key's number, in order of first insertion.
    slots: FastMap<PrincipalKey<'a>, u32>,
    keys: Vec<PrincipalKey<'a>>,
    items: Vec<Item<'a>>,
}

impl<'a> IndexBuilder<'a> {
    pub fn insert(&mut self, key: PrincipalKey<'a>, resource_prefix: &'a str, entry: Entry) {
        let next = self.keys.len() as u32;
        let slot = *self.slots.entry(key).or_insert(next);
        if slot == next {
            self.keys.push(key);
        }
        self.items.push(Item {
            slot,
            prefix: resource_prefix,
            entry,
        });
    }

    /// Sorts the triples once, by key and then prefix, and lays each key's trie out in the shared arena.
    pub fn finish(mut self) -> Index {
        // Stable: entries with the same key and prefix keep their insertion order.
        self.items.sort_by(|a, b| {
            a.slot
                .cmp(&b.slot)
                .then_with(|| a.prefix.as_bytes().cmp(b.prefix.as_bytes()))
        });
        let (n, keys) = (self.items.len(), self.keys.len());
        let mut arena = Arena {
            nodes: Vec::with_capacity(2 * n + keys + 1),
            first_bytes: Vec::with_capacity(2 * n + keys + 1),
            labels: Vec::with_capacity(self.items.iter().map(|i| i.prefix.len()).sum()),
            entries: Vec::with_capacity(n),
        };
        let (ids, groups) = self.keys.iter().fold((0, 0), |(i, g), k| match k {
            PrincipalKey::Id(_) => (i + 1, g),
            PrincipalKey::Group(_) => (i, g + 1),
            PrincipalKey::Everyone => (i, g),
        });
        let mut by_id = FastMap::with_capacity_and_hasher(ids, Default::default());
        let mut by_group = FastMap::with_capacity_and_hasher(groups, Default::default());
        let mut everyone = None;
        let mut runs = Vec::new();
        for run in self.items.chunk_by(|a, b| a.slot == b.slot) {
            let trie = arena.freeze(run, &mut runs);
            match self.keys[run[0].slot as usize] {
                PrincipalKey::Id(id) => {
                    by_id.insert(Box::from(id), trie);
                }
                PrincipalKey::Group(g) => {
                    by_group.insert(Box::from(g), trie);
                }
                PrincipalKey::Everyone => everyone = Some(trie),
            }
        }
        let everyone = everyone.unwrap_or_else(|| arena.freeze(&[], &mut runs));
        arena.nodes.shrink_to_fit();
        arena.first_bytes.shrink_to_fit();
        arena.labels.shrink_to_fit();
        Index {
            arena,
            by_id,
            by_group,
            everyone,
        }
    }
}

impl Index {
    /// Calls `f` with every entry that may apply to a principal with this id and these (effective) groups,
    /// for a resource with this URI. The same attachment may be reported more than once.
    #[inline]
    pub fn candidates(&self, id: &str, groups: &[&str], uri: &str, mut f: impl FnMut(&Entry)) {
        if !self.everyone.is_empty() {
            self.arena.for_each_prefix_of(self.everyone, uri, &mut f);
        }
        if let Some(&t) = self.by_id.get(id) {
            self.arena.for_each_prefix_of(t, uri, &mut f);
        }
        if !self.by_group.is_empty() {
            for g in groups {
                if let Some(&t) = self.by_group.get(*g) {
                    self.arena.for_each_prefix_of(t, uri, &mut f);
                }
            }
        }
    }

    /// Calls `f` with every entry that may apply to a principal with this id and these (effective) groups, for
    /// any resource: what the query plan starts from, when the URI is not known.
    pub fn candidates_any_resource(&self, id: &str, groups: &[&str], mut f: impl FnMut(&Entry)) {
        self.arena.entries(self.everyone).iter().for_each(&mut f);
        if let Some(&t) = self.by_id.get(id) {
            self.arena.entries(t).iter().for_each(&mut f);
        }
        for g in groups {
            if let Some(&t) = self.by_group.get(*g) {
                self.arena.entries(t).iter().for_each(&mut f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(n: u32) -> Entry {
        Entry {
            attachment: n,
            policy: n,
            resource: 0,
        }
    }

    /// What `candidates` reports, in order.
    fn found(index: &Index, id: &str, groups: &[&str], uri: &str) -> Vec<u32> {
        let mut got = Vec::new();
        index.candidates(id, groups, uri, |x| got.push(x.policy));
        got
    }

    #[test]
    fn trie_reports_every_prefix_and_nothing_else() {
        let mut b = IndexBuilder::default();
        for (i, p) in [
            "",
            "kylo:",
            "kylo:kylo:vault:keys:",
            "kylo:kylo:admin:",
            "kylo:kylo:vault:keys:k1",
        ]
        .into_iter()
        .enumerate()
        {
            b.insert(PrincipalKey::Everyone, p, e(i as u32));
        }
        // Same prefix: insertion order.
        b.insert(PrincipalKey::Everyone, "kylo:", e(5));
        let index = b.finish();
        assert_eq!(
            found(&index, "u", &[], "kylo:kylo:vault:keys:k1"),
            vec![0, 1, 5, 2, 4]
        );
        assert_eq!(found(&index, "u", &[], "other"), vec![0]);
    }

    #[test]
    fn an_empty_index_reports_nothing() {
        let index = Index::default();
        assert!(found(&index, "u", &["g"], "kylo:").is_empty());
        let mut any = 0;
        index.candidates_any_resource("u", &["g"], |_| any += 1);
        assert_eq!(any, 0);
    }

    proptest::proptest! {
        /// Every trie of the shared arena reports exactly the entries filed under its key whose prefix starts
        /// the URI, each once; and for any resource, exactly those filed under the principal's keys.
        #[test]
        fn tries_sharing_one_arena_agree_with_a_plain_prefix_check(
            filed in proptest::collection::vec((0u8..5, "[ab:]{0,6}"), 0..40),
            principal in 0u8..3,
            groups in proptest::collection::vec(0u8..3, 0..3),
            uris in proptest::collection::vec("[ab:c]{0,8}", 1..6),
        ) {
            // Keys 0 and 1 are ids, 2 and 3 groups, 4 everyone; names overlap across kinds on purpose.
            let names = ["x", "y", "x", "z", ""];
            let key = |k: u8| match k {
                0 | 1 => PrincipalKey::Id(names[k as usize]),
                2 | 3 => PrincipalKey::Group(names[k as usize]),
                _ => PrincipalKey::Everyone,
            };
            let mut b = IndexBuilder::default();
            for (i, (k, p)) in filed.iter().enumerate() {
                b.insert(key(*k), p, e(i as u32));
            }
            let index = b.finish();
            let id = ["x", "y", "w"][principal as usize];
            let group_names: Vec<&str> = groups.iter().map(|g| ["x", "z", "y"][*g as usize]).collect();
            let applies = |k: PrincipalKey| match k {
                PrincipalKey::Id(i) => i == id,
                PrincipalKey::Group(g) => group_names.contains(&g),
                PrincipalKey::Everyone => true,
            };
            // A group named twice is walked twice: count with repeats, as the index reports.
            let times = |k: PrincipalKey| match k {
                PrincipalKey::Group(g) => group_names.iter().filter(|n| **n == g).count(),
                other => usize::from(applies(other)),
            };
            for uri in &uris {
                let mut got = found(&index, id, &group_names, uri);
                got.sort_unstable();
                let mut want: Vec<u32> = filed
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, p))| uri.starts_with(p.as_str()))
                    .flat_map(|(i, (k, _))| std::iter::repeat_n(i as u32, times(key(*k))))
                    .collect();
                want.sort_unstable();
                proptest::prop_assert_eq!(got, want);
            }
            let mut any = Vec::new();
            index.candidates_any_resource(id, &group_names, |x| any.push(x.policy));
            any.sort_unstable();
            let mut want: Vec<u32> = filed
                .iter()
                .enumerate()
                .flat_map(|(i, (k, _))| std::iter::repeat_n(i as u32, times(key(*k))))
                .collect();
            want.sort_unstable();
            proptest::prop_assert_eq!(any, want);
        }
    }
}
