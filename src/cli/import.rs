//! `arbiter import cm FILE|DIR... --out DIR`: CipherTrust Manager policies and attachments (REST API, `ksctl`
//! or `terraform show -json` JSON) written as Arbiter YAML with a TestSuite skeleton, then checked as
//! `arbiter check` would. Every field not carried over exactly is a warning with its file and JSON pointer.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::EXIT_INVALID;
use crate::import_cm::convert;

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// CipherTrust Manager: policies and policy attachments as JSON (the REST API's objects, arrays or
    /// `{"resources": [...]}` lists; `ksctl` files; `terraform show -json` output).
    Cm(CmArgs),
}

#[derive(Debug, Args)]
pub struct CmArgs {
    /// JSON files, or directories searched for `*.json`.
    #[arg(value_name = "FILE|DIR", required = true)]
    pub inputs: Vec<PathBuf>,
    /// The directory to write `cm-import.yaml` and `tests/cm-import.test.yaml` into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace those two files when they exist.
    #[arg(long)]
    pub force: bool,
    /// The superuser's principal id, for the check of the result.
    #[arg(long, value_name = "NAME", default_value = crate::DEFAULT_SUPERUSER, env = "ARBITER_SUPERUSER")]
    pub superuser: String,
}

pub fn run(command: ImportCommand) -> i32 {
    let ImportCommand::Cm(args) = command;
    let mut inputs = Vec::new();
    for path in &args.inputs {
        if let Err(e) = read_inputs(path, &mut inputs) {
            eprintln!("error: {e}");
            return EXIT_INVALID;
        }
    }
    let imported = convert(&inputs);
    let print = |label: &str, w: &crate::import_cm::ImportWarning| {
        eprintln!(
            "{}: {}: {label}: {}",
            w.file.display(),
            if w.pointer.is_empty() { "/" } else { &w.pointer },
            w.message
        );
    };
    for w in &imported.warnings {
        print("warning", w);
    }
    for e in &imported.errors {
        print("error", e);
    }
    if !imported.errors.is_empty() {
        eprintln!(
            "error: {} policies may deny and cannot be imported; nothing was written (fix them in the input, or \
             remove them if they are not wanted)",
            imported.errors.len()
        );
        return EXIT_INVALID;
    }
    let policies = args.out.join("cm-import.yaml");
    let suite = args.out.join("tests").join("cm-import.test.yaml");
    for file in [&policies, &suite] {
        if file.exists() && !args.force {
            eprintln!(
                "error: {} exists; pass --force to replace it",
                file.display()
            );
            return EXIT_INVALID;
        }
    }
    let written = std::fs::create_dir_all(args.out.join("tests"))
        .and_then(|_| std::fs::write(&policies, &imported.policies_yaml))
        .and_then(|_| std::fs::write(&suite, &imported.suite_yaml));
    if let Err(e) = written {
        eprintln!("error: cannot write to {}: {e}", args.out.display());
        return EXIT_INVALID;
    }
    eprintln!(
        "imported {} policies and {} attachments into {} ({} warnings); probes in {}",
        imported.policies,
        imported.attachments,
        policies.display(),
        imported.warnings.len(),
        suite.display()
    );
    // The result must be a valid set, its probes included, as `arbiter check` sees it; then the probes run.
    let checked = super::check::run(super::check::CheckArgs {
        dir: args.out.clone(),
        superuser: args.superuser.clone(),
        budget: std::time::Duration::from_secs(10),
        format: super::check::Format::Text,
    });
    if checked != super::EXIT_OK || imported.policies == 0 {
        return checked;
    }
    super::test::run(super::test::TestArgs {
        set: super::PolicySet {
            policies: args.out.clone(),
            superuser: args.superuser,
        },
        filter: None,
        format: super::test::Format::Text,
        paths: vec![args.out.join("tests")],
    })
}

/// Reads `path` (a JSON file, or a directory searched recursively for `*.json`, in name order) into `out`.
fn read_inputs(path: &Path, out: &mut Vec<(PathBuf, serde_json::Value)>) -> Result<(), String> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
            .collect();
        entries.sort();
        for entry in entries {
            if entry.is_dir() || entry.extension().is_some_and(|x| x == "json") {
                read_inputs(&entry, out)?;
            }
        }
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let value = serde_json::from_str(&text).map_err(|e| format!("{}: invalid JSON: {e}", path.display()))?;
    out.push((path.to_path_buf(), value));
    Ok(())
}
