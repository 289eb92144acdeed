//! The candidate index: principal key (id, group, everyone) → resource-prefix trie → entries.
//!
//! Each (attachment, resource pattern) pair is filed under every principal key its selector names and under
//! the literal prefix of the pattern (the text before its first `*`). A lookup walks the request URI through
//! the trie of each bucket the principal falls into, so its cost depends on the URI length and the number of
//! near candidates, not on the size of the policy set. Entries are then confirmed exactly by the evaluator.
//! The tries are built byte by byte, then frozen path-compressed into flat arrays.

use std::collections::HashMap;

/// One indexed (attachment, resource pattern) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub attachment: u32,
    pub policy: u32,
    /// Index into the policy's `resources`.
    pub resource: u32,
}

/// A node of the trie while it is built: one per byte of every inserted prefix.
#[derive(Debug, Default, Clone)]
struct BuildNode {
    /// Sorted by byte.
    children: Vec<(u8, u32)>,
    entries: Vec<Entry>,
}

/// The byte trie under construction; [`TrieBuilder::freeze`] turns it into a [`PrefixTrie`].
#[derive(Debug, Clone)]
struct TrieBuilder {
    nodes: Vec<BuildNode>,
}

impl Default for TrieBuilder {
    fn default() -> Self {
        TrieBuilder {
            nodes: vec![BuildNode::default()],
        }
    }
}

impl TrieBuilder {
    fn insert(&mut self, prefix: &str, entry: Entry) {
        let mut at = 0usize;
        for &b in prefix.as_bytes() {
            at = match self.nodes[at].children.binary_search_by_key(&b, |c| c.0) {
                Ok(i) => self.nodes[at].children[i].1 as usize,
                Err(i) => {
                    let next = self.nodes.len();
                    self.nodes.push(BuildNode::default());
                    self.nodes[at].children.insert(i, (b, next as u32));
                    next
                }
            };
        }
        self.nodes[at].entries.push(entry);
    }

    /// Path-compresses the trie (chains of single-child nodes without entries become one labelled edge) and
    /// lays it out flat, breadth first, so that the children of a node are contiguous.
    fn freeze(&self) -> PrefixTrie {
        let mut trie = PrefixTrie {
            nodes: Vec::new(),
            first_bytes: Vec::new(),
            labels: Vec::new(),
            entries: Vec::new(),
        };
        // The builder node each frozen node ends at.
        let mut ends: Vec<usize> = vec![0];
        trie.nodes.push(Node::default());
        trie.first_bytes.push(0);
        let mut at = 0;
        while at < ends.len() {
            let built = &self.nodes[ends[at]];
            let entries_start = trie.entries.len() as u32;
            trie.entries.extend_from_slice(&built.entries);
            let children_start = trie.nodes.len() as u32;
            for &(byte, child) in &built.children {
                let label_start = trie.labels.len() as u32;
                trie.labels.push(byte);
                let mut end = child as usize;
                while self.nodes[end].entries.is_empty() && self.nodes[end].children.len() == 1 {
                    let (b, next) = self.nodes[end].children[0];
                    trie.labels.push(b);
                    end = next as usize;
                }
                trie.nodes.push(Node {
                    label: (label_start, trie.labels.len() as u32),
                    ..Node::default()
                });
                trie.first_bytes.push(byte);
                ends.push(end);
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
        trie.entries.shrink_to_fit();
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
}

/// Which principals an attachment can apply to, as far as the index is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKey {
    Id(Box<str>),
    Group(Box<str>),
    Everyone,
}

type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

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

/// Collects (principal key, resource prefix, entry) triples; [`IndexBuilder::finish`] freezes them.
#[derive(Debug, Default)]
pub struct IndexBuilder {
    by_id: HashMap<Box<str>, TrieBuilder>,
    by_group: HashMap<Box<str>, TrieBuilder>,
    everyone: TrieBuilder,
}

impl IndexBuilder {
    pub fn insert(&mut self, key: &PrincipalKey, resource_prefix: &str, entry: Entry) {
        let trie = match key {
            PrincipalKey::Id(id) => self.by_id.entry(id.clone()).or_default(),
            PrincipalKey::Group(g) => self.by_group.entry(g.clone()).or_default(),
            PrincipalKey::Everyone => &mut self.everyone,
        };
        trie.insert(resource_prefix, entry);
    }

    pub fn finish(self) -> Index {
        let freeze = |map: HashMap<Box<str>, TrieBuilder>| -> FastMap<Box<str>, PrefixTrie> {
            map.into_iter().map(|(k, t)| (k, t.freeze())).collect()
        };
        Index {
            by_id: freeze(self.by_id),
            by_group: freeze(self.by_group),
            everyone: self.everyone.freeze(),
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
        let t = b.freeze();
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
            let t = b.freeze();
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
