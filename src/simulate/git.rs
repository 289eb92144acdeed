//! Reading the current policy set from a git revision (`--base origin/main`), with `git ls-tree` and `git show`,
//! so the simulator works in CI and in pre-commit hooks without a second checkout.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::load::SourceSet;

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

/// The policy files under `dir` as they are at `rev`, named as they would be in the working tree.
pub fn load_revision(dir: &Path, rev: &str) -> Result<SourceSet, String> {
    if rev.starts_with('-') {
        return Err(format!("invalid revision `{rev}`"));
    }
    let prefix = String::from_utf8_lossy(&git(dir, &["rev-parse", "--show-prefix"])?)
        .trim()
        .to_string();
    let listing = git(dir, &["ls-tree", "-r", "-z", "--full-name", rev, "--", "."])?;
    let mut files = Vec::new();
    for entry in listing.split(|b| *b == 0).filter(|e| !e.is_empty()) {
        let entry = String::from_utf8_lossy(entry);
        let Some((meta, full)) = entry.split_once('\t') else {
            continue;
        };
        let mode = meta.split(' ').next().unwrap_or("");
        // Regular files only (symlinks in a tree are their target's text; submodules have no content here).
        if !(mode == "100644" || mode == "100755") {
            continue;
        }
        let rel = full.strip_prefix(&prefix).unwrap_or(full);
        let hidden = rel.split('/').any(|c| c.starts_with('.'));
        if hidden || !(rel.ends_with(".yaml") || rel.ends_with(".yml")) {
            continue;
        }
        let blob = git(dir, &["show", &format!("{rev}:{full}")])?;
        let text =
            String::from_utf8(blob).map_err(|_| format!("{full} at {rev} is not valid UTF-8"))?;
        files.push((PathBuf::from(dir).join(rel), text));
    }
    Ok(SourceSet::from_files(files).with_root(dir))
}
