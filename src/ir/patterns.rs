//! Lists of URI patterns: gathering them with a copy of each text in one buffer, and dropping the patterns
//! another one covers. The query plan's URI leaves and the shared plain terms (`ir::plain`) are built with them.

use super::glob::Glob;

/// URI patterns gathered for one leaf, with a copy of each one's text in one buffer. In a large set the
/// patterns live in scattered heap blocks; copying each text where it is gathered (and read anyway) lets
/// pruning and the leaf's key read the copies, in order, instead of visiting every block again.
#[derive(Debug, Default)]
pub(crate) struct PatternList<'g> {
    globs: Vec<&'g Glob>,
    texts: String,
    /// Per pattern: where its text ends in `texts`, and the length of its literal head.
    spans: Vec<(u32, u32)>,
}

impl<'g> PatternList<'g> {
    pub(crate) fn push(&mut self, glob: &'g Glob) {
        self.texts.push_str(glob.as_str());
        self.spans
            .push((self.texts.len() as u32, glob.literal_prefix().len() as u32));
        self.globs.push(glob);
    }

    pub(crate) fn len(&self) -> usize {
        self.globs.len()
    }

    /// Pattern `i`.
    pub(crate) fn glob(&self, i: usize) -> &'g Glob {
        self.globs[i]
    }

    /// The copy of pattern `i`'s text.
    pub(crate) fn text(&self, i: usize) -> &str {
        let start = if i == 0 {
            0
        } else {
            self.spans[i - 1].0 as usize
        };
        &self.texts[start..self.spans[i].0 as usize]
    }

    fn head(&self, i: usize) -> &str {
        &self.text(i)[..self.spans[i].1 as usize]
    }

    /// `p` when pattern `i` is `p*` with `p` literal.
    fn star_prefix(&self, i: usize) -> Option<&str> {
        let text = self.text(i);
        let head = self.spans[i].1 as usize;
        (head + 1 == text.len() && text.ends_with('*')).then(|| &text[..head])
    }
}

/// `p` when the pattern is `p*` with `p` literal: the patterns that cover others.
pub(crate) fn star_prefix(glob: &Glob) -> Option<&str> {
    let (text, head) = (glob.as_str(), glob.literal_prefix().len());
    (head + 1 == text.len() && text.ends_with('*')).then(|| &text[..head])
}

impl PatternList<'_> {

    /// The positions of the patterns that stay when repeats and covered patterns go (see [`prune_covered`]),
    /// in order.
    pub(crate) fn pruned(&self) -> Vec<usize> {
        type Set<'a> = std::collections::HashSet<&'a str, foldhash::fast::RandomState>;
        // One pass drops repeats and collects the `p*` prefixes; a second drops what they cover.
        let mut star_prefixes = Set::with_capacity_and_hasher(self.len(), Default::default());
        let mut others = Set::default();
        let mut unique = Vec::with_capacity(self.len());
        for i in 0..self.len() {
            let fresh = match self.star_prefix(i) {
                Some(p) => star_prefixes.insert(p),
                None => others.insert(self.text(i)),
            };
            if fresh {
                unique.push(i);
            }
        }
        // Only prefixes of these lengths can be in the set: a handful, whatever the number of patterns.
        let mut lengths: Vec<usize> = star_prefixes.iter().map(|p| p.len()).collect();
        lengths.sort_unstable();
        lengths.dedup();
        unique.retain(|&i| {
            let own = self.star_prefix(i);
            let head = self.head(i);
            !lengths
                .iter()
                .take_while(|&&n| n <= head.len())
                .filter_map(|&n| head.get(..n))
                .any(|p| Some(p) != own && star_prefixes.contains(p))
        });
        unique
    }
}

/// Drops repeated patterns and those another pattern covers (`p*` covers every pattern whose matches all start
/// with `p`). Linear in the patterns and their length: the `p*` prefixes go in a set, and each pattern looks up
/// the prefixes of its literal head.
pub(crate) fn prune_covered(globs: Vec<&Glob>) -> Vec<&Glob> {
    let mut list = PatternList::default();
    globs.into_iter().for_each(|g| list.push(g));
    list.pruned().into_iter().map(|i| list.globs[i]).collect()
}

