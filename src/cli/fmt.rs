//! `arbiter fmt [--check] PATH...`: rewrite policy files in the canonical style (comments kept), or with
//! `--check` list the files that are not in it (exit 1). Files fmt cannot rewrite faithfully are refused
//! (exit 2), and say why.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{EXIT_FINDING, EXIT_INVALID, EXIT_OK};
use crate::fmt::{format, FmtError};

#[derive(Debug, Args)]
pub struct FmtArgs {
    /// Change nothing; list the files that are not formatted, and exit 1 if there are any.
    #[arg(long)]
    pub check: bool,
    /// Policy files, or directories searched for `*.yaml` / `*.yml` (YAML files there that hold no policy
    /// document, such as a proxy's configuration, are skipped).
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
}

pub fn run(args: FmtArgs) -> i32 {
    let mut files = Vec::new();
    for path in &args.paths {
        if path.is_dir() {
            walk(path, &mut files);
        } else {
            files.push((path.clone(), true));
        }
    }
    let (mut changed, mut unchanged, mut refused) = (0usize, 0usize, 0usize);
    for (file, explicit) in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{}: error: cannot read: {e}", file.display());
                refused += 1;
                continue;
            }
        };
        match format(&file, &text) {
            Ok(out) if out == text => unchanged += 1,
            Ok(out) => {
                changed += 1;
                if args.check {
                    super::print_out(&format!("would reformat {}\n", file.display()));
                } else if let Err(e) = std::fs::write(&file, out) {
                    eprintln!("{}: error: cannot write: {e}", file.display());
                    refused += 1;
                } else {
                    super::print_out(&format!("formatted {}\n", file.display()));
                }
            }
            Err(FmtError::NotPolicy { .. }) if !explicit => {}
            Err(e) => {
                eprintln!("{e}");
                refused += 1;
            }
        }
    }
    let verb = if args.check { "to reformat" } else { "reformatted" };
    eprintln!("{changed} {verb}, {unchanged} unchanged, {refused} refused");
    if refused > 0 {
        EXIT_INVALID
    } else if args.check && changed > 0 {
        EXIT_FINDING
    } else {
        EXIT_OK
    }
}

/// `*.yaml` and `*.yml` under `dir`, in name order, hidden names skipped.
fn walk(dir: &Path, out: &mut Vec<(PathBuf, bool)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
            continue;
        }
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push((path, false));
        }
    }
}
