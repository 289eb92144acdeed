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

    /// `p` when pattern `i` is `p*` with `p` literal (read from the copy of its text).
    fn star_prefix(&self, i: usize) -> Option<&str> {
        star_prefix_of(self.text(i), self.spans[i].1 as usize)
    }

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
        let lengths = lengths(star_prefixes.iter().copied());
        unique.retain(|&i| {
            !covered(self.head(i), self.star_prefix(i), &lengths, |p| {
                star_prefixes.contains(p)
            })
        });
        unique
    }
}

/// `p` when a pattern with this text and literal head length is `p*` with `p` literal: the patterns that cover
/// others.
fn star_prefix_of(text: &str, head: usize) -> Option<&str> {
    (head + 1 == text.len() && text.ends_with('*')).then(|| &text[..head])
}

/// [`star_prefix_of`] a pattern.
pub(crate) fn star_prefix(glob: &Glob) -> Option<&str> {
    star_prefix_of(glob.as_str(), glob.literal_prefix().len())
}

/// The lengths of some `p*` prefixes, ascending, without repeats: only prefixes of these lengths can be among
/// them (a handful, whatever the number of patterns).
pub(crate) fn lengths<'p>(prefixes: impl Iterator<Item = &'p str>) -> Vec<usize> {
    let mut lengths: Vec<usize> = prefixes.map(str::len).collect();
    lengths.sort_unstable();
    lengths.dedup();
    lengths
}

/// Whether a pattern with this literal head (and `own` star prefix, if it is `own*`) is covered by a `p*`
/// among some prefixes (`is_star`, whose lengths are `lengths`) other than itself.
pub(crate) fn covered(
    head: &str,
    own: Option<&str>,
    lengths: &[usize],
    is_star: impl Fn(&str) -> bool,
) -> bool {
    lengths
        .iter()
        .take_while(|&&n| n <= head.len())
        .filter_map(|&n| head.get(..n))
        .any(|p| Some(p) != own && is_star(p))
}

/// Drops repeated patterns and those another pattern covers (`p*` covers every pattern whose matches all start
/// with `p`). Linear in the patterns and their length: the `p*` prefixes go in a set, and each pattern looks up
/// the prefixes of its literal head.
pub(crate) fn prune_covered(globs: Vec<&Glob>) -> Vec<&Glob> {
    let mut list = PatternList::default();
    globs.into_iter().for_each(|g| list.push(g));
    list.pruned().into_iter().map(|i| list.globs[i]).collect()
}

