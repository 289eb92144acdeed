//! `arbiter test [--policies DIR] PATH...`: run TestSuite files; prints `N passed, N failed` last.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use jiff::Timestamp;

use super::{print_diagnostics, EXIT_FINDING, EXIT_INVALID, EXIT_OK};
use crate::diag::Diagnostics;
use crate::testsuite::{parse_suites, run_suite, suite_files};

#[derive(Debug, Args)]
pub struct TestArgs {
    #[command(flatten)]
    pub set: super::PolicySet,
    /// Suite files or directories holding them.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
}

pub fn run(args: TestArgs) -> i32 {
    let Some(snapshot) = args.set.load() else {
        return EXIT_INVALID;
    };
    let mut diags = Diagnostics::new();
    let files = suite_files(&args.paths, &mut diags);
    let mut suites = Vec::new();
    for (path, text) in &files {
        suites.extend(parse_suites(path, text, &mut diags));
    }
    if diags.has_errors() {
        diags.attach_snippets(|p| {
            files
                .iter()
                .find(|(f, _)| f.as_ref() == p)
                .map(|(_, t)| t.as_str())
        });
        diags.sort();
        print_diagnostics(&diags);
        return EXIT_INVALID;
    }
    if suites.is_empty() {
        eprintln!("error: no `kind: TestSuite` documents found in the given paths");
        return EXIT_INVALID;
    }
    let now = Timestamp::now();
    let (mut passed, mut failed) = (0usize, 0usize);
    for suite in &suites {
        for r in run_suite(&snapshot, suite, Some(&args.set.superuser), now) {
            if r.passed {
                passed += 1;
                super::print_out(&format!("ok    {} / {}\n", r.suite, r.test));
            } else {
                failed += 1;
                let got: Vec<&str> = r.decision.policies.iter().map(Arc::as_ref).collect();
                super::print_out(&format!(
                    "FAIL  {} / {} ({})\n      expected {}, got {} {:?} (reason {})\n",
                    r.suite,
                    r.test,
                    r.location,
                    r.expected,
                    r.decision.decision_str(),
                    got,
                    r.decision.reason.as_str()
                ));
            }
        }
    }
    super::print_out(&format!("{passed} passed, {failed} failed\n"));
    if failed > 0 {
        EXIT_FINDING
    } else {
        EXIT_OK
    }
}
