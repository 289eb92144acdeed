//! `kind: TestSuite` documents: reading them through the policy parser (`parse.rs`, so a suite gets the same
//! file:line:col errors and hints as a policy) and running them against a snapshot through the real evaluator.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::moment::Moment;

use crate::ast::{PolicySetDoc, TestDoc, TestSuiteDoc};
use crate::diag::{Code, Diagnostic, Diagnostics, Pos};
use crate::eval::{evaluate, Decision, EvalOptions};
use crate::snapshot::Snapshot;

/// The outcome of one test.
#[derive(Debug, Clone)]
pub struct TestResult {
    pub suite: String,
    pub test: String,
    /// Where the test is written, `file:line:col`.
    pub location: String,
    /// The suite's file and the test's line, apart (for JUnit's attributes).
    pub file: Arc<Path>,
    pub line: u32,
    pub passed: bool,
    /// What the test expected, as written: `allow`, `deny reason denied`, `deny [p1, p2]`.
    pub expected: String,
    /// The same as an object: `{"decision", "reason"?, "policies"?}`.
    pub expected_json: serde_json::Value,
    /// Each expectation that did not hold, in words (empty when the test passed).
    pub failures: Vec<String>,
    /// The decision; with its explanation when the test failed.
    pub decision: Decision,
}

/// Reads every TestSuite document in `files` (path and text), in order. Problems in suites go into `diags`;
/// other documents in the same files are left to `arbiter check`.
pub fn parse_suites(files: &[(Arc<Path>, String)], diags: &mut Diagnostics) -> Vec<TestSuiteDoc> {
    let mut set = PolicySetDoc::default();
    for (path, text) in files {
        match crate::source::parse_documents(path, text) {
            Ok(docs) => crate::parse::parse_file(path, &docs, &mut set, &mut Diagnostics::new()),
            Err(d) => diags.push(d),
        }
    }
    diags.extend(set.suite_diags);
    set.suites
}

/// Collects the suite files named by `paths`: files as given, directories searched for `*.yaml` / `*.yml`.
pub fn suite_files(paths: &[PathBuf], diags: &mut Diagnostics) -> Vec<(Arc<Path>, String)> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            match crate::load::load_dir(path) {
                Ok(set) => out.extend(set.files.into_iter().map(|f| f.into_parts())),
                Err(d) => diags.extend(d),
            }
        } else {
            match std::fs::read_to_string(path) {
                Ok(text) => out.push((Arc::from(path.as_path()), text)),
                Err(e) => diags.push(Diagnostic::error(
                    Code::Unreadable,
                    path,
                    Pos::WHOLE_FILE,
                    format!("cannot read: {e}"),
                )),
            }
        }
    }
    out
}

/// Runs every test of `suite` whose name `keep` accepts. Tests without `environment.time` use the suite's
/// `now`, else `now`. A failing test is decided again with an explanation, for its report.
pub fn run_suite(
    snapshot: &Snapshot,
    suite: &TestSuiteDoc,
    superuser: Option<&str>,
    now: Moment,
    keep: impl Fn(&str, &str) -> bool,
) -> Vec<TestResult> {
    let now = suite.now.unwrap_or(now);
    let options = EvalOptions {
        superuser,
        explain: false,
    };
    suite
        .tests
        .iter()
        .filter(|t| keep(&suite.name.value, &t.name.value))
        .map(|t| {
            let decision = evaluate(snapshot, &t.request, now, &options);
            let failures = failures(t, &decision);
            let decision = if failures.is_empty() {
                decision
            } else {
                let explained = EvalOptions {
                    explain: true,
                    ..options
                };
                evaluate(snapshot, &t.request, now, &explained)
            };
            TestResult {
                suite: suite.name.value.clone(),
                test: t.name.value.clone(),
                location: format!(
                    "{}:{}:{}",
                    suite.origin.file.display(),
                    t.pos.line,
                    t.pos.col
                ),
                file: suite.origin.file.clone(),
                line: t.pos.line,
                passed: failures.is_empty(),
                expected: expected(t),
                expected_json: expected_json(t),
                failures,
                decision,
            }
        })
        .collect()
}

fn expected(t: &TestDoc) -> String {
    let mut out = (if t.expect_allow { "allow" } else { "deny" }).to_string();
    if let Some(reason) = &t.expect_reason {
        out.push_str(&format!(" reason {}", reason.value));
    }
    if let Some(policies) = &t.expect_policies {
        let names: Vec<&str> = policies.iter().map(|p| p.value.as_str()).collect();
        out.push_str(&format!(" policies {names:?}"));
    }
    out
}

fn expected_json(t: &TestDoc) -> serde_json::Value {
    let mut out = serde_json::json!({"decision": if t.expect_allow { "allow" } else { "deny" }});
    if let Some(reason) = &t.expect_reason {
        out["reason"] = serde_json::json!(reason.value);
    }
    if let Some(policies) = &t.expect_policies {
        out["policies"] = policies.iter().map(|p| serde_json::json!(p.value)).collect();
    }
    out
}

/// Each expectation of `t` that `decision` does not meet.
fn failures(t: &TestDoc, decision: &Decision) -> Vec<String> {
    let mut out = Vec::new();
    if decision.allowed != t.expect_allow {
        out.push(format!(
            "expected {}, got {}",
            if t.expect_allow { "allow" } else { "deny" },
            decision.decision_str()
        ));
    }
    if let Some(reason) = &t.expect_reason {
        if reason.value != decision.reason.as_str() {
            out.push(format!(
                "expected reason {}, got {}",
                reason.value,
                decision.reason.as_str()
            ));
        }
    }
    if let Some(want) = &t.expect_policies {
        let mut want: Vec<&str> = want.iter().map(|p| p.value.as_str()).collect();
        want.sort_unstable();
        want.dedup();
        let got: Vec<&str> = decision.policies.iter().map(|p| &**p).collect();
        if want != got {
            out.push(format!("expected policies {want:?}, got {got:?}"));
        }
    }
    out
}
