//! At the CLI edge: reading the current policy set from a git revision (`--base origin/main`), with `git ls-tree` and `git show`,
//! so the simulator works in CI and in pre-commit hooks without a second checkout.
//!
//! The revision's tree is walked the way `load::load_dir` walks a directory: `*.yaml` / `*.yml` files
//! recursively, names beginning with `.` skipped, symlinks followed (resolved inside the revision's tree,
//! relative to the link, as the file system would), and each real file read once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::load::{is_policy_file, SourceSet};

/// Most symlinks followed while resolving one path (as the kernel's limit, a loop ends here).
const MAX_LINKS: usize = 40;

fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}

/// Kinds of tree entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Link,
    /// A submodule: no content in this tree.
    Other,
}

/// The whole tree of a revision, by full path from the repository root.
struct Tree<'a> {
    dir: &'a Path,
    rev: &'a str,
    kinds: HashMap<String, Kind>,
    children: BTreeMap<String, Vec<String>>,
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

impl<'a> Tree<'a> {
    fn read(dir: &'a Path, rev: &'a str) -> Result<Tree<'a>, String> {
        let listing = git(dir, &["ls-tree", "-r", "-t", "-z", "--full-tree", rev])?;
        let mut kinds = HashMap::new();
        let mut children: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for entry in listing.split(|b| *b == 0).filter(|e| !e.is_empty()) {
            let entry = String::from_utf8_lossy(entry);
            let Some((meta, full)) = entry.split_once('\t') else {
                continue;
            };
            let kind = match meta.split(' ').next().unwrap_or("") {
                "100644" | "100755" => Kind::File,
                "040000" => Kind::Dir,
                "120000" => Kind::Link,
                _ => Kind::Other,
            };
            let (parent, name) = full.rsplit_once('/').unwrap_or(("", full));
            children
                .entry(parent.to_string())
                .or_default()
                .push(name.to_string());
            kinds.insert(full.to_string(), kind);
        }
        Ok(Tree {
            dir,
            rev,
            kinds,
            children,
        })
    }

    fn show(&self, full: &str) -> Result<Vec<u8>, String> {
        git(self.dir, &["show", &format!("{}:{full}", self.rev)])
    }

    /// Follows every symlink in `path` (a full path), as the file system would: a link's target is relative to
    /// the link's directory. `Ok(None)` when it leads nowhere in this revision (dangling, absolute, outside the
    /// repository, or a loop).
    fn resolve(&self, path: &str) -> Result<Option<(String, Kind)>, String> {
        let mut pending: Vec<String> = path.split('/').rev().map(str::to_string).collect();
        let mut cur = String::new();
        let mut kind = Kind::Dir;
        let mut links = 0;
        while let Some(comp) = pending.pop() {
            match comp.as_str() {
                "" | "." => continue,
                ".." => {
                    if cur.is_empty() {
                        return Ok(None);
                    }
                    cur = parent_of(&cur).to_string();
                    kind = Kind::Dir;
                    continue;
                }
                _ => {}
            }
            if kind != Kind::Dir {
                return Ok(None);
            }
            let next = join(&cur, &comp);
            match self.kinds.get(&next) {
                None => return Ok(None),
                Some(Kind::Link) => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Ok(None);
                    }
                    let target = String::from_utf8_lossy(&self.show(&next)?).to_string();
                    if target.starts_with('/') {
                        return Ok(None);
                    }
                    pending.extend(target.split('/').rev().map(str::to_string));
                }
                Some(k) => {
                    cur = next;
                    kind = *k;
                }
            }
        }
        Ok(Some((cur, kind)))
    }

    /// Collects `(name relative to the policy directory, real full path)` for every policy file under `real`
    /// (reached as `rel`), as `load::load_dir` does.
    fn walk(
        &self,
        real: &str,
        rel: &str,
        seen_dirs: &mut HashSet<String>,
        found: &mut Vec<(String, String)>,
    ) -> Result<(), String> {
        if !seen_dirs.insert(real.to_string()) {
            return Ok(());
        }
        for name in self.children.get(real).into_iter().flatten() {
            if name.starts_with('.') {
                continue;
            }
            let shown = join(rel, name);
            let policy_name = is_policy_file(name);
            match self.resolve(&join(real, name))? {
                Some((target, Kind::File)) if policy_name => found.push((shown, target)),
                Some((target, Kind::Dir)) if !policy_name => {
                    self.walk(&target, &shown, seen_dirs, found)?
                }
                Some((_, Kind::Dir)) => {
                    return Err(format!(
                        "{shown} at {}: is a directory, but its name is a policy file's (`.yaml`/`.yml`)",
                        self.rev
                    ))
                }
                Some(_) if policy_name => {
                    return Err(format!("{shown} at {}: is not a regular file", self.rev))
                }
                None if policy_name => {
                    return Err(format!(
                        "{shown} at {}: a symlink whose target is not in the revision",
                        self.rev
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The policy files under `dir` as they are at `rev`, named as they would be in the working tree.
pub fn load_revision(dir: &Path, rev: &str) -> Result<SourceSet, String> {
    if rev.starts_with('-') {
        return Err(format!("invalid revision `{rev}`"));
    }
    let inside = git(dir, &["rev-parse", "--show-prefix"]).map_err(|e| {
        if e.contains("not a git repository") {
            format!(
                "{} is not inside a git repository, so there is no revision to read the current set from; \
                 compare with a directory instead: `--current DIR` (the live policies, or a checkout of `{rev}`)",
                dir.display()
            )
        } else {
            e
        }
    })?;
    let prefix = String::from_utf8_lossy(&inside)
        .trim()
        .trim_end_matches('/')
        .to_string();
    let tree = Tree::read(dir, rev)?;
    let mut found = Vec::new();
    // A directory that does not exist at that revision is an empty current set.
    if let Some((real, Kind::Dir)) = tree.resolve(&prefix)? {
        tree.walk(&real, "", &mut HashSet::new(), &mut found)?;
    }
    // The same real file reached through two names is read once, under its first name.
    found.sort();
    let mut seen_files = HashSet::new();
    let mut files = Vec::new();
    for (rel, real) in found {
        if !seen_files.insert(real.clone()) {
            continue;
        }
        let blob = tree.show(&real)?;
        let text =
            String::from_utf8(blob).map_err(|_| format!("{rel} at {rev} is not valid UTF-8"))?;
        files.push((PathBuf::from(dir).join(rel), text));
    }
    Ok(SourceSet::from_files(files).with_root(dir))
}
