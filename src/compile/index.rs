//! The candidate index: principal key (id, group, everyone) → resource-prefix trie → entries.
//!
//! Each (attachment, resource pattern) pair is filed under every principal key its selector names and under
//! the literal prefix of the pattern (the text before its first `*`). A lookup walks the request URI through
//! the trie of each bucket the principal falls into, so its cost depends on the URI length and the number of
//! near candidates, not on the size of the policy set. Entries are then confirmed exactly by the evaluator.

use std::collections::HashMap;

/// One indexed (attachment, resource pattern) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub attachment: u32,
    pub policy: u32,
    /// Index into the policy's `resources`.
    pub resource: u32,
}

#[derive(Debug, Default, Clone)]
struct Node {
    /// Sorted by byte.
    children: Vec<(u8, u32)>,
    entries: Vec<Entry>,
}

/// A byte trie keyed by the literal prefix of resource patterns.
#[derive(Debug, Clone)]
pub struct PrefixTrie {
    nodes: Vec<Node>,
}

impl Default for PrefixTrie {
    fn default() -> Self {
        PrefixTrie {
            nodes: vec![Node::default()],
        }
    }
}

impl PrefixTrie {
    pub fn insert(&mut self, prefix: &str, entry: Entry) {
        let mut at = 0usize;
        for &b in prefix.as_bytes() {
            at = match self.nodes[at].children.binary_search_by_key(&b, |c| c.0) {
                Ok(i) => self.nodes[at].children[i].1 as usize,
                Err(i) => {
                    let next = self.nodes.len();
                    self.nodes.push(Node::default());
                    self.nodes[at].children.insert(i, (b, next as u32));
                    next
                }
            };
        }
        self.nodes[at].entries.push(entry);
    }

    /// Calls `f` for every entry whose prefix is a prefix of `key`.
    #[inline]
    pub fn for_each_prefix_of(&self, key: &str, mut f: impl FnMut(&Entry)) {
        let mut at = 0usize;
        let mut bytes = key.as_bytes().iter();
        loop {
            let node = &self.nodes[at];
            node.entries.iter().for_each(&mut f);
            let Some(&b) = bytes.next() else { return };
            match node.children.binary_search_by_key(&b, |c| c.0) {
                Ok(i) => at = node.children[i].1 as usize,
                Err(_) => return,
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.len() == 1 && self.nodes[0].entries.is_empty()
    }

    fn shrink(&mut self) {
        self.nodes.shrink_to_fit();
        for n in &mut self.nodes {
            n.children.shrink_to_fit();
            n.entries.shrink_to_fit();
        }
    }
}

/// Which principals an attachment can apply to, as far as the index is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKey {
    Id(Box<str>),
    Group(Box<str>),
    Everyone,
}

/// The whole index of a snapshot.
#[derive(Debug, Clone, Default)]
pub struct Index {
    by_id: HashMap<Box<str>, PrefixTrie>,
    by_group: HashMap<Box<str>, PrefixTrie>,
    everyone: PrefixTrie,
}

impl Index {
    pub fn insert(&mut self, key: &PrincipalKey, resource_prefix: &str, entry: Entry) {
        let trie = match key {
            PrincipalKey::Id(id) => self.by_id.entry(id.clone()).or_default(),
            PrincipalKey::Group(g) => self.by_group.entry(g.clone()).or_default(),
            PrincipalKey::Everyone => &mut self.everyone,
        };
        trie.insert(resource_prefix, entry);
    }

    pub fn shrink(&mut self) {
        self.everyone.shrink();
        self.by_id.values_mut().for_each(PrefixTrie::shrink);
        self.by_group.values_mut().for_each(PrefixTrie::shrink);
        self.by_id.shrink_to_fit();
        self.by_group.shrink_to_fit();
    }

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
        let mut t = PrefixTrie::default();
        t.insert("", e(0));
        t.insert("kylo:", e(1));
        t.insert("kylo:kylo:vault:keys:", e(2));
        t.insert("kylo:kylo:admin:", e(3));
        t.insert("kylo:kylo:vault:keys:k1", e(4));
        let mut got = Vec::new();
        t.for_each_prefix_of("kylo:kylo:vault:keys:k1", |x| got.push(x.policy));
        assert_eq!(got, vec![0, 1, 2, 4]);
        got.clear();
        t.for_each_prefix_of("other", |x| got.push(x.policy));
        assert_eq!(got, vec![0]);
    }
}
