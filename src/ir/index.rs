//! The candidate index: principal key (id, group, everyone) → resource-prefix trie → entries.
//!
//! Each (attachment, resource pattern) pair is filed under every principal key its selector names and under
//! the literal prefix of the pattern (the text before its first `*`). A lookup walks the request URI through
//! the trie of each bucket the principal falls into, so its cost depends on the URI length and the number of
//! near candidates, not on the size of the policy set. Entries are then confirmed exactly by the evaluator.
//! The tries are built from sorted prefixes straight into path-compressed flat arrays.

use super::FastMap;

/// One indexed (attachment, resource pattern) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub attachment: u32,
    pub policy: u32,
    /// Index into the policy's `resources`.
    pub resource: u32,
}

/// The prefixes of one trie while it is built; [`TrieBuilder::freeze`] turns them into a [`PrefixTrie`].
#[derive(Debug, Clone, Default)]
struct TrieBuilder<'a> {
    items: Vec<(&'a str, Entry)>,
}

impl<'a> TrieBuilder<'a> {
    fn insert(&mut self, prefix: &'a str, entry: Entry) {
        self.items.push((prefix, entry));
    }

    /// Sorts the prefixes, then lays the path-compressed trie out flat, breadth first, so that the children of a
    /// node are contiguous. In sorted order the prefixes under a node form one run: those that end at the node
    /// come first (its entries), then one run per next byte (its children), and a child's edge label is the
    /// common prefix of the first and last prefix of its run. No node is ever built per byte.
    ///
    /// `runs` is scratch space, shared by the tries of one index. A trie of n prefixes has at most 2n + 1 nodes
    /// and labels no longer than the prefixes together, so its arrays are allocated once (then trimmed).
    fn freeze(mut self, runs: &mut Vec<(usize, usize, usize)>) -> PrefixTrie {
        // Stable: entries with the same prefix keep their insertion order.
        self.items
            .sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let items = &self.items;
        let max_nodes = 2 * items.len() + 1;
        let mut trie = PrefixTrie {
            nodes: Vec::with_capacity(max_nodes),
            first_bytes: Vec::with_capacity(max_nodes),
            labels: Vec::with_capacity(items.iter().map(|(p, _)| p.len()).sum()),
            entries: Vec::with_capacity(items.len()),
        };
        trie.nodes.push(Node::default());
        trie.first_bytes.push(0);
        // For each frozen node: the run of prefixes below it and the depth (bytes matched) at the node.
        runs.clear();
        runs.push((0, items.len(), 0));
        let mut at = 0;
        while at < runs.len() {
            let (lo, hi, depth) = runs[at];
            let entries_start = trie.entries.len() as u32;
            let mut i = lo;
            while i < hi && items[i].0.len() == depth {
                trie.entries.push(items[i].1);
                i += 1;
            }
            let children_start = trie.nodes.len() as u32;
            while i < hi {
                let byte = items[i].0.as_bytes()[depth];
                let mut j = i + 1;
                while j < hi && items[j].0.as_bytes()[depth] == byte {
                    j += 1;
                }
                let (first, last) = (items[i].0.as_bytes(), items[j - 1].0.as_bytes());
                let mut end = depth + 1;
                while end < first.len() && end < last.len() && first[end] == last[end] {
                    end += 1;
                }
                let label_start = trie.labels.len() as u32;
                trie.labels.extend_from_slice(&first[depth..end]);
                trie.nodes.push(Node {
                    label: (label_start, trie.labels.len() as u32),
                    ..Node::default()
                });
                trie.first_bytes.push(byte);
                runs.push((i, j, end));
                i = j;
            }
            let (entries_end, children_end) = (trie.entries.len() as u32, trie.nodes.len() as u32);
            let node = &mut trie.nodes[at];
            node.entries = (entries_start, entries_end);
            node.children = (children_start, children_end);
            at += 1;
        }
        trie.nodes.shrink_to_fit();
        trie.first_bytes.shrink_to_fit();
        trie.labels.shrink_to_fit();
        trie
    }
}

/// A frozen node: ranges into the trie's flat arrays.
#[derive(Debug, Default, Clone, Copy)]
struct Node {
    /// The bytes on the edge from the parent (empty for the root).
    label: (u32, u32),
    children: (u32, u32),
    entries: (u32, u32),
}

/// A path-compressed byte trie keyed by the literal prefix of resource patterns, stored in flat arrays so that
/// a lookup touches a handful of contiguous cache lines rather than one heap node per byte.
#[derive(Debug, Clone)]
pub struct PrefixTrie {
    nodes: Vec<Node>,
    /// The first label byte of each node (parallel to `nodes`), sorted within each node's children.
    first_bytes: Vec<u8>,
    labels: Vec<u8>,
    entries: Vec<Entry>,
}

impl PrefixTrie {
    /// Calls `f` for every entry whose prefix is a prefix of `key`.
    #[inline]
    pub fn for_each_prefix_of(&self, key: &str, mut f: impl FnMut(&Entry)) {
        let key = key.as_bytes();
        let mut at = 0usize;
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

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry, whatever its prefix.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
}

/// Which principals an attachment can apply to, as far as the index is concerned (borrowed from its selector).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKey<'a> {
    Id(&'a str),
    Group(&'a str),
    Everyone,
}

/// The whole index of a snapshot.
#[derive(Debug, Clone)]
pub struct Index {
    by_id: FastMap<Box<str>, PrefixTrie>,
    by_group: FastMap<Box<str>, PrefixTrie>,
    everyone: PrefixTrie,
}

impl Default for Index {
    fn default() -> Self {
        IndexBuilder::default().finish()
    }
}

/// Collects (principal key, resource prefix, entry) triples; [`IndexBuilder::finish`] freezes them. The
/// prefixes are borrowed from the compiled policies' resource patterns.
#[derive(Debug, Default)]
pub struct IndexBuilder<'a> {
    by_id: FastMap<&'a str, TrieBuilder<'a>>,
    by_group: FastMap<&'a str, TrieBuilder<'a>>,
    everyone: TrieBuilder<'a>,
}

impl<'a> IndexBuilder<'a> {
    pub fn insert(&mut self, key: PrincipalKey<'a>, resource_prefix: &'a str, entry: Entry) {
        let trie = match key {
            PrincipalKey::Id(id) => self.by_id.entry(id).or_default(),
            PrincipalKey::Group(g) => self.by_group.entry(g).or_default(),
            PrincipalKey::Everyone => &mut self.everyone,
        };
        trie.insert(resource_prefix, entry);
    }

    pub fn finish(self) -> Index {
        let mut runs = Vec::new();
        let mut freeze = |map: FastMap<&'a str, TrieBuilder<'a>>| -> FastMap<Box<str>, PrefixTrie> {
            map.into_iter()
                .map(|(k, t)| (Box::from(k), t.freeze(&mut runs)))
                .collect()
        };
        let by_id = freeze(self.by_id);
        let by_group = freeze(self.by_group);
        Index {
            by_id,
            by_group,
            everyone: self.everyone.freeze(&mut runs),
        }
    }
}

impl Index {
    /// Calls `f` with every entry that may apply to a principal with this id and these (effective) groups,
    /// for a resource with this URI. The same attachment may be reported more than once.
    #[inline]
    pub fn candidates(&self, id: &str, groups: &[&str], uri: &str, mut f: impl FnMut(&Entry)) {
        if !self.everyone.is_empty() {
            self.everyone.for_each_prefix_of(uri, &mut f);
        }
        if let Some(t) = self.by_id.get(id) {
            t.for_each_prefix_of(uri, &mut f);
        }
        if !self.by_group.is_empty() {
            for g in groups {
                if let Some(t) = self.by_group.get(*g) {
                    t.for_each_prefix_of(uri, &mut f);
                }
            }
        }
    }
}

impl Index {
    /// Calls `f` with every entry that may apply to a principal with this id and these (effective) groups, for
    /// any resource: what the query plan starts from, when the URI is not known.
    pub fn candidates_any_resource(&self, id: &str, groups: &[&str], mut f: impl FnMut(&Entry)) {
        self.everyone.entries().iter().for_each(&mut f);
        if let Some(t) = self.by_id.get(id) {
            t.entries().iter().for_each(&mut f);
        }
        for g in groups {
            if let Some(t) = self.by_group.get(*g) {
                t.entries().iter().for_each(&mut f);
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

    #[test]
    fn trie_reports_every_prefix_and_nothing_else() {
        let mut b = TrieBuilder::default();
        b.insert("", e(0));
        b.insert("kylo:", e(1));
        b.insert("kylo:kylo:vault:keys:", e(2));
        b.insert("kylo:kylo:admin:", e(3));
        b.insert("kylo:kylo:vault:keys:k1", e(4));
        let t = b.freeze(&mut Vec::new());
        let mut got = Vec::new();
        t.for_each_prefix_of("kylo:kylo:vault:keys:k1", |x| got.push(x.policy));
        assert_eq!(got, vec![0, 1, 2, 4]);
        got.clear();
        t.for_each_prefix_of("other", |x| got.push(x.policy));
        assert_eq!(got, vec![0]);
    }

    proptest::proptest! {
        /// The frozen, path-compressed trie reports exactly the entries whose prefix starts the key, each once.
        #[test]
        fn frozen_trie_agrees_with_a_plain_prefix_check(
            prefixes in proptest::collection::vec("[ab:]{0,6}", 0..24),
            keys in proptest::collection::vec("[ab:c]{0,8}", 1..8),
        ) {
            let mut b = TrieBuilder::default();
            for (i, p) in prefixes.iter().enumerate() {
                b.insert(p, e(i as u32));
            }
            let t = b.freeze(&mut Vec::new());
            for key in &keys {
                let mut got = Vec::new();
                t.for_each_prefix_of(key, |x| got.push(x.policy));
                got.sort_unstable();
                let want: Vec<u32> = prefixes
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| key.starts_with(p.as_str()))
                    .map(|(i, _)| i as u32)
                    .collect();
                proptest::prop_assert_eq!(got, want);
            }
        }
    }
}
