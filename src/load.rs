//! Reading a policy directory: the recursive walk, which names count, and the content hash (revision).
//!
//! `*.yaml` / `*.yml` files are collected recursively, symlinks followed, names beginning with `.` skipped (this
//! covers Kubernetes ConfigMap internals such as `..data`), and each real file read once. Problems are
//! diagnostics, never panics: an unreadable or non-UTF-8 file is an error naming the file.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use sha2::{Digest, Sha256};

use crate::diag::{Code, Diagnostic, Diagnostics, Pos};
use crate::source::MAX_FILE_BYTES;

/// Most policy files accepted in one directory.
pub const MAX_FILES: usize = 100_000;
/// Largest policy set accepted: the sum of all its files' sizes, in bytes (checked before any file is read).
pub const MAX_TOTAL_BYTES: u64 = 128 * 1024 * 1024;

/// One policy file's text, named by the path it is reported under. The text is read-only, so that its digest,
/// computed once, always describes it.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: Arc<Path>,
    text: String,
    /// The SHA-256 of `text`, computed once, on first use (the revision and the reloader's parse cache both
    /// read it).
    digest: OnceLock<[u8; 32]>,
}

impl SourceFile {
    /// A file named `path` with this text.
    pub fn new(path: Arc<Path>, text: String) -> SourceFile {
        SourceFile {
            path,
            text,
            digest: OnceLock::new(),
        }
    }

    /// The file's text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The path and the text, given back.
    pub fn into_parts(self) -> (Arc<Path>, String) {
        (self.path, self.text)
    }

    /// The SHA-256 digest of the text.
    pub fn digest(&self) -> &[u8; 32] {
        self.digest
            .get_or_init(|| Sha256::digest(self.text.as_bytes()).into())
    }
}

impl PartialEq for SourceFile {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path && self.text == other.text
    }
}

impl Eq for SourceFile {}

/// The files of one policy set, in sorted path order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceSet {
    pub files: Vec<SourceFile>,
    /// The directory the files were read from; the revision hashes paths relative to it, so `policies` and
    /// `./policies` (or a git revision of the same directory) give the same revision for the same content.
    pub root: Option<PathBuf>,
}

impl SourceSet {
    /// Builds a set from in-memory files (for `Simulate` and tests), sorted by path.
    pub fn from_files(files: impl IntoIterator<Item = (PathBuf, String)>) -> Self {
        let mut files: Vec<SourceFile> = files
            .into_iter()
            .map(|(path, text)| SourceFile::new(Arc::from(path.as_path()), text))
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        SourceSet { files, root: None }
    }

    /// Marks the directory the files came from (see [`SourceSet::root`]).
    pub fn with_root(mut self, root: &Path) -> Self {
        self.root = Some(root.to_path_buf());
        self
    }

    /// Computes every file's digest ([`SourceFile::digest`]) not computed yet: on every core when there is
    /// enough text to be worth the threads (about a millisecond of hashing), else here.
    pub fn digest_all(&self) {
        const PARALLEL_BYTES: usize = 1 << 20;
        let pending: usize = self
            .files
            .iter()
            .filter(|f| f.digest.get().is_none())
            .map(|f| f.text.len())
            .sum();
        if pending >= PARALLEL_BYTES {
            crate::source::on_parser_threads(&self.files, |f| {
                f.digest();
            });
        } else {
            self.files.iter().for_each(|f| {
                f.digest();
            });
        }
    }

    /// A content hash of every file's name and text: the snapshot's revision. It hashes each file's name with
    /// the digest of its text ([`SourceFile::digest`], kept), so that a rebuild after an edit hashes only what
    /// it has not hashed yet.
    pub fn revision(&self) -> String {
        self.digest_all();
        let mut hasher = Sha256::new();
        for f in &self.files {
            let name = match &self.root {
                Some(root) => f.path.strip_prefix(root).unwrap_or(&f.path),
                None => &f.path,
            };
            hasher.update(name.to_string_lossy().as_bytes());
            hasher.update([0]);
            hasher.update(f.digest());
        }
        let digest = hasher.finalize();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn text_of(&self, path: &Path) -> Option<&str> {
        self.files
            .iter()
            .find(|f| &*f.path == path)
            .map(|f| f.text.as_str())
    }
}

/// Whether a file name is a policy file's (`*.yaml` / `*.yml`); every reader of policy directories asks this.
pub fn is_policy_file(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml")
}

/// Reads every policy file under `dir`. All problems are collected before returning.
pub fn load_dir(dir: &Path) -> Result<SourceSet, Diagnostics> {
    let mut diags = Diagnostics::new();
    let mut found = Vec::new();
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {
            let mut seen_dirs = HashSet::new();
            walk(dir, &mut seen_dirs, &mut found, &mut diags);
        }
        Ok(_) => diags.push(Diagnostic::error(
            Code::Unreadable,
            dir,
            Pos::WHOLE_FILE,
            "the policy path is not a directory",
        )),
        Err(e) => diags.push(Diagnostic::error(
            Code::Unreadable,
            dir,
            Pos::WHOLE_FILE,
            format!("cannot read policy directory: {e}"),
        )),
    }
    found.sort();
    if found.len() > MAX_FILES {
        diags.push(Diagnostic::error(
            Code::TooLarge,
            dir,
            Pos::WHOLE_FILE,
            format!(
                "{} policy files, more than the limit of {MAX_FILES}",
                found.len()
            ),
        ));
        return Err(diags);
    }
    let mut seen_files = HashSet::new();
    let mut unique = Vec::with_capacity(found.len());
    let mut total: u64 = 0;
    for path in found {
        // The same real file reached through two names is read once.
        if let Ok(real) = fs::canonicalize(&path) {
            if !seen_files.insert(real) {
                continue;
            }
        }
        total = total.saturating_add(fs::metadata(&path).map(|m| m.len()).unwrap_or(0));
        unique.push(path);
    }
    if total > MAX_TOTAL_BYTES {
        diags.push(Diagnostic::error(
            Code::TooLarge,
            dir,
            Pos::WHOLE_FILE,
            format!(
                "policy files total {total} bytes, more than the limit of {MAX_TOTAL_BYTES} bytes"
            ),
        ));
        return Err(diags);
    }
    let mut files = Vec::new();
    for path in unique {
        match read_text(&path) {
            Ok(text) => files.push((path, text)),
            Err((code, message)) => {
                diags.push(Diagnostic::error(code, &path, Pos::WHOLE_FILE, message))
            }
        }
    }
    if diags.has_errors() {
        diags.sort();
        return Err(diags);
    }
    Ok(SourceSet::from_files(files).with_root(dir))
}

fn read_text(path: &Path) -> Result<String, (Code, String)> {
    let unreadable = |e: std::io::Error| (Code::Unreadable, format!("cannot read file: {e}"));
    let meta = fs::metadata(path).map_err(unreadable)?;
    if meta.len() > MAX_FILE_BYTES as u64 {
        return Err((
            Code::TooLarge,
            format!(
                "file is {} bytes, larger than the limit of {MAX_FILE_BYTES} bytes",
                meta.len()
            ),
        ));
    }
    let bytes = fs::read(path).map_err(unreadable)?;
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        (
            Code::Unreadable,
            format!("file is not valid UTF-8 (invalid byte at offset {offset})"),
        )
    })
}

fn walk(
    dir: &Path,
    seen_dirs: &mut HashSet<PathBuf>,
    found: &mut Vec<PathBuf>,
    diags: &mut Diagnostics,
) {
    // Symlinked directories are followed; a loop is cut at the first repeat of a real directory.
    let real = match fs::canonicalize(dir) {
        Ok(r) => r,
        Err(e) => {
            diags.push(Diagnostic::error(
                Code::Unreadable,
                dir,
                Pos::WHOLE_FILE,
                format!("cannot read directory: {e}"),
            ));
            return;
        }
    };
    if !seen_dirs.insert(real) {
        return;
    }
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            diags.push(Diagnostic::error(
                Code::Unreadable,
                dir,
                Pos::WHOLE_FILE,
                format!("cannot read directory: {e}"),
            ));
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                diags.push(Diagnostic::error(
                    Code::Unreadable,
                    dir,
                    Pos::WHOLE_FILE,
                    format!("cannot read directory: {e}"),
                ));
                continue;
            }
        };
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        match fs::metadata(&path) {
            // A directory (or a FIFO, socket or device) under a policy file's name is an error, never skipped:
            // it most likely replaced a file whose policies would otherwise vanish without a word. (Reading a
            // FIFO would also block the load.)
            Ok(m) if is_policy_file(&name) && !m.is_file() => diags.push(Diagnostic::error(
                Code::Unreadable,
                &path,
                Pos::WHOLE_FILE,
                if m.is_dir() {
                    "is a directory, but its name is a policy file's (`.yaml`/`.yml`)"
                } else {
                    "is not a regular file"
                },
            )),
            Ok(m) if m.is_dir() => walk(&path, seen_dirs, found, diags),
            Ok(m) if m.is_file() && is_policy_file(&name) => found.push(path),
            Ok(_) => {}
            Err(e)
                if is_policy_file(&name)
                    || entry.file_type().map(|t| t.is_symlink()).unwrap_or(false) =>
            {
                // A dangling or looping symlink named like a policy file is a problem the operator must see.
                if is_policy_file(&name) {
                    diags.push(Diagnostic::error(
                        Code::Unreadable,
                        &path,
                        Pos::WHOLE_FILE,
                        format!("cannot read file: {e}"),
                    ));
                }
            }
            Err(_) => {}
        }
    }
}
