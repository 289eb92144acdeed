//! `arbiter test [--policies DIR] [--filter REGEX] [--format text|json|junit] PATH...`: run TestSuite files.
//! The text report ends with `N passed, N failed`; a failing test says which expectation failed and shows its
//! explanation. `json` and `junit` are for CI (the summary line then goes to standard error).

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use crate::moment::Moment;
use regex::Regex;
use serde_json::{json, Value};

use super::{print_diagnostics, EXIT_FINDING, EXIT_INVALID, EXIT_OK};
use crate::diag::Diagnostics;
use crate::testsuite::{parse_suites, run_suite, suite_files, TestResult};

#[derive(Debug, Args)]
pub struct TestArgs {
    #[command(flatten)]
    pub set: super::PolicySet,
    /// Run only the tests whose name, `SUITE/TEST` or `SUITE / TEST` as reported, this regular expression
    /// matches (anywhere in it).
    #[arg(long, value_name = "REGEX")]
    pub filter: Option<Regex>,
    /// `text` for people; `json` (one object with every result) or `junit` (JUnit XML) for CI.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Suite files or directories holding them.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
}

/// How `arbiter test` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Junit,
}

pub fn run(args: TestArgs) -> i32 {
    let Some(snapshot) = args.set.load() else {
        return EXIT_INVALID;
    };
    let mut diags = Diagnostics::new();
    let files = suite_files(&args.paths, &mut diags);
    let suites = parse_suites(&files, &mut diags);
    crate::validate::validate_suites(
        &suites,
        |id| {
            snapshot
                .compiled
                .policies
                .binary_search_by(|p| (*p.id).cmp(id))
                .is_ok()
        },
        snapshot.compiled.policies.iter().map(|p| &*p.id),
        &mut diags,
    );
    diags.attach_snippets(|p| {
        files
            .iter()
            .find(|(f, _)| f.as_ref() == p)
            .map(|(_, t)| t.as_str())
    });
    diags.sort();
    if diags.has_errors() {
        print_diagnostics(&diags);
        return EXIT_INVALID;
    }
    for w in diags.warnings() {
        eprintln!("{w}");
    }
    if suites.is_empty() {
        eprintln!("error: no `kind: TestSuite` documents found in the given paths");
        return EXIT_INVALID;
    }
    let now = Moment::now();
    let keep = |suite: &str, test: &str| {
        args.filter
            .as_ref()
            .is_none_or(|re| {
                // `SUITE/TEST`, or as the report prints it, `SUITE / TEST`.
                re.is_match(&format!("{suite}/{test}")) || re.is_match(&format!("{suite} / {test}"))
            })
    };
    let results: Vec<TestResult> = suites
        .iter()
        .flat_map(|suite| run_suite(&snapshot, suite, Some(&args.set.superuser), now, keep))
        .collect();
    if results.is_empty() && args.filter.is_some() {
        eprintln!("error: no test matches --filter; nothing was run");
        return EXIT_INVALID;
    }
    let failed = results.iter().filter(|r| !r.passed).count();
    let summary = format!("{} passed, {failed} failed", results.len() - failed);
    match args.format {
        Format::Text => super::print_out(&(text(&results) + &summary + "\n")),
        Format::Json => {
            let report = json!({
                "passed": results.len() - failed,
                "failed": failed,
                "revision": snapshot.revision,
                "results": results.iter().map(result_json).collect::<Vec<_>>(),
            });
            super::print_out(&(serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"));
            eprintln!("{summary}");
        }
        Format::Junit => {
            super::print_out(&junit(&results));
            eprintln!("{summary}");
        }
    }
    if failed > 0 {
        EXIT_FINDING
    } else {
        EXIT_OK
    }
}

fn text(results: &[TestResult]) -> String {
    let mut out = String::new();
    for r in results {
        if r.passed {
            let _ = writeln!(out, "ok    {} / {}", r.suite, r.test);
            continue;
        }
        let _ = writeln!(out, "FAIL  {} / {} ({})", r.suite, r.test, r.location);
        for f in &r.failures {
            let _ = writeln!(out, "      {f}");
        }
        let _ = writeln!(out, "      {}", decided(r));
        if let Some(e) = &r.decision.explanation {
            for line in e.to_string().lines() {
                let _ = writeln!(out, "      | {line}");
            }
        }
    }
    out
}

/// `got deny, reason no_applicable_policy, policies []`.
fn decided(r: &TestResult) -> String {
    let d = &r.decision;
    let mut s = format!(
        "got {}, reason {}, policies {:?}",
        d.decision_str(),
        d.reason.as_str(),
        d.policies
    );
    if !d.undetermined_allow.is_empty() {
        let _ = write!(s, ", undetermined allows {:?}", d.undetermined_allow);
    }
    s
}

fn result_json(r: &TestResult) -> Value {
    let d = &r.decision;
    let mut decision = json!({
        "decision": d.decision_str(),
        "reason": d.reason.as_str(),
        "policies": d.policies,
        "undetermined_allow": d.undetermined_allow,
    });
    if let Some(e) = &d.explanation {
        decision["explanation"] = serde_json::to_value(e).unwrap_or_default();
    }
    json!({
        "suite": r.suite,
        "test": r.test,
        "location": r.location,
        "passed": r.passed,
        "expected": r.expected_json,
        "failures": r.failures,
        "decision": decision,
    })
}

/// JUnit XML: one `<testsuite>` per suite (in order of first appearance), one `<testcase>` per test; a failing
/// test's `<failure>` holds its failures, the decision and the explanation.
fn junit(results: &[TestResult]) -> String {
    let failed = results.iter().filter(|r| !r.passed).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"arbiter\" tests=\"{}\" failures=\"{failed}\">",
        results.len()
    );
    // One <testsuite> per suite document: same-named suites in two files stay apart.
    let file_of = |r: &TestResult| r.file.display().to_string();
    let mut suites: Vec<(String, String)> = Vec::new();
    for r in results {
        let key = (r.suite.clone(), file_of(r));
        if !suites.contains(&key) {
            suites.push(key);
        }
    }
    for (suite, file) in &suites {
        let cases: Vec<&TestResult> = results
            .iter()
            .filter(|r| &r.suite == suite && &file_of(r) == file)
            .collect();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" time=\"0\" file=\"{}\">",
            xml(suite),
            cases.len(),
            cases.iter().filter(|r| !r.passed).count(),
            xml(file)
        );
        for r in cases {
            let open = format!(
                "    <testcase classname=\"{}\" name=\"{}\" file=\"{}\" line=\"{}\" time=\"0\"",
                xml(suite),
                xml(&r.test),
                xml(file),
                r.line
            );
            if r.passed {
                let _ = writeln!(out, "{open}/>");
                continue;
            }
            let mut body = r.failures.join("\n") + "\n" + &decided(r) + "\n";
            if let Some(e) = &r.decision.explanation {
                body.push_str(&e.to_string());
            }
            let _ = writeln!(
                out,
                "{open}>\n      <failure message=\"{}\" type=\"expectation\">{}</failure>\n    </testcase>",
                xml(&r.failures.join("; ")),
                xml(&body)
            );
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// Escapes text for XML content and attribute values; characters XML 1.0 cannot hold become U+FFFD.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Kept through attribute-value normalisation, and read back as themselves in content.
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#9;"),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}
