//! `kind: TestSuite` documents: reading them (with positions for every mistake) and running them against a
//! snapshot through the real evaluator.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;

use crate::diag::{suggestion, Code, Diagnostic, Diagnostics, Pos};
use crate::eval::{evaluate, Decision, EvalOptions};
use crate::request::{parse_rfc3339, RawRequest, Request};
use crate::snapshot::Snapshot;
use crate::source::{parse_documents, Node, NodeValue};

const SUITE_FIELDS: &[&str] = &["kind", "name", "description", "now", "tests"];
const TEST_FIELDS: &[&str] = &[
    "name",
    "description",
    "principal",
    "action",
    "resource",
    "environment",
    "expect",
    "expect_policies",
];

/// One test case, its request already validated.
#[derive(Debug, Clone)]
pub struct TestCase {
    pub name: String,
    pub pos: Pos,
    pub request: Request,
    pub expect_allow: bool,
    pub expect_policies: Option<Vec<String>>,
}

/// One suite from one document.
#[derive(Debug, Clone)]
pub struct TestSuite {
    pub file: Arc<Path>,
    pub name: String,
    pub now: Option<Timestamp>,
    pub tests: Vec<TestCase>,
}

/// The outcome of one test.
#[derive(Debug, Clone)]
pub struct TestResult {
    pub suite: String,
    pub test: String,
    pub location: String,
    pub passed: bool,
    pub decision: Decision,
    pub expected: String,
}

/// Reads every TestSuite document in `text`; other kinds are ignored.
pub fn parse_suites(file: &Arc<Path>, text: &str, diags: &mut Diagnostics) -> Vec<TestSuite> {
    let docs = match parse_documents(file, text) {
        Ok(d) => d,
        Err(d) => {
            diags.push(d);
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for doc in &docs {
        let NodeValue::Map(entries) = &doc.value else {
            continue;
        };
        let is_suite = entries
            .iter()
            .any(|(k, v)| k.name == "kind" && v.value == NodeValue::Str("TestSuite".into()));
        if is_suite {
            if let Some(s) = parse_suite(file, doc, entries, diags) {
                out.push(s);
            }
        }
    }
    out
}

fn unknown_fields(
    file: &Path,
    entries: &[(crate::source::Key, Node)],
    known: &[&str],
    diags: &mut Diagnostics,
) {
    for (k, _) in entries {
        if !known.contains(&k.name.as_str()) {
            let mut d = Diagnostic::error(
                Code::InvalidTestSuite,
                file,
                k.pos,
                format!("unknown field `{}` in TestSuite", k.name),
            );
            d.help = suggestion(&k.name, known.iter().copied());
            diags.push(d);
        }
    }
}

fn get<'n>(entries: &'n [(crate::source::Key, Node)], name: &str) -> Option<&'n Node> {
    entries.iter().find(|(k, _)| k.name == name).map(|(_, v)| v)
}

fn parse_suite(
    file: &Arc<Path>,
    doc: &Node,
    entries: &[(crate::source::Key, Node)],
    diags: &mut Diagnostics,
) -> Option<TestSuite> {
    unknown_fields(file, entries, SUITE_FIELDS, diags);
    let name = match get(entries, "name").map(|n| &n.value) {
        Some(NodeValue::Str(s)) => s.clone(),
        _ => {
            diags.push(Diagnostic::error(
                Code::InvalidTestSuite,
                file,
                doc.pos,
                "a TestSuite needs a string `name`",
            ));
            String::new()
        }
    };
    let now = match get(entries, "now") {
        None => None,
        Some(n) => match &n.value {
            NodeValue::Str(s) if parse_rfc3339(s).is_some() => parse_rfc3339(s),
            _ => {
                diags.push(Diagnostic::error(
                    Code::InvalidTestSuite,
                    file,
                    n.pos,
                    "`now` must be an RFC 3339 instant",
                ));
                None
            }
        },
    };
    let tests = match get(entries, "tests").map(|n| (n.pos, &n.value)) {
        Some((_, NodeValue::Seq(items))) => items
            .iter()
            .filter_map(|t| parse_test(file, t, diags))
            .collect(),
        Some((pos, _)) => {
            diags.push(Diagnostic::error(
                Code::InvalidTestSuite,
                file,
                pos,
                "`tests` must be a list",
            ));
            Vec::new()
        }
        None => {
            diags.push(Diagnostic::error(
                Code::InvalidTestSuite,
                file,
                doc.pos,
                "missing field `tests` in TestSuite",
            ));
            Vec::new()
        }
    };
    Some(TestSuite {
        file: file.clone(),
        name,
        now,
        tests,
    })
}

fn parse_test(file: &Path, node: &Node, diags: &mut Diagnostics) -> Option<TestCase> {
    let NodeValue::Map(entries) = &node.value else {
        diags.push(Diagnostic::error(
            Code::InvalidTestSuite,
            file,
            node.pos,
            "a test must be a map",
        ));
        return None;
    };
    unknown_fields(file, entries, TEST_FIELDS, diags);
    let name = match get(entries, "name").map(|n| &n.value) {
        Some(NodeValue::Str(s)) => s.clone(),
        _ => {
            diags.push(Diagnostic::error(
                Code::InvalidTestSuite,
                file,
                node.pos,
                "a test needs a string `name`",
            ));
            return None;
        }
    };
    let expect_allow = match get(entries, "expect").map(|n| (n.pos, &n.value)) {
        Some((_, NodeValue::Str(s))) if s == "allow" => true,
        Some((_, NodeValue::Str(s))) if s == "deny" => false,
        Some((pos, _)) => {
            diags.push(Diagnostic::error(
                Code::InvalidTestSuite,
                file,
                pos,
                "`expect` must be `allow` or `deny`",
            ));
            return None;
        }
        None => {
            diags.push(Diagnostic::error(
                Code::InvalidTestSuite,
                file,
                node.pos,
                format!("test `{name}` has no `expect`"),
            ));
            return None;
        }
    };
    let expect_policies = match get(entries, "expect_policies") {
        None => None,
        Some(n) => match n.to_json() {
            serde_json::Value::Array(items) if items.iter().all(|i| i.is_string()) => Some(
                items
                    .into_iter()
                    .filter_map(|i| i.as_str().map(str::to_string))
                    .collect(),
            ),
            _ => {
                diags.push(Diagnostic::error(
                    Code::InvalidTestSuite,
                    file,
                    n.pos,
                    "`expect_policies` must be a list of policy ids",
                ));
                return None;
            }
        },
    };
    let mut raw = serde_json::Map::new();
    for key in ["principal", "action", "resource", "environment"] {
        if let Some(n) = get(entries, key) {
            raw.insert(key.to_string(), n.to_json());
        }
    }
    let request = serde_json::from_value::<RawRequest>(serde_json::Value::Object(raw))
        .map_err(|e| e.to_string())
        .and_then(|r| r.normalize().map_err(|e| e.to_string()));
    match request {
        Ok(request) => Some(TestCase {
            name,
            pos: node.pos,
            request,
            expect_allow,
            expect_policies,
        }),
        Err(e) => {
            diags.push(Diagnostic::error(
                Code::InvalidTestSuite,
                file,
                node.pos,
                format!("test `{name}`: invalid request: {e}"),
            ));
            None
        }
    }
}

/// Collects the suite files named by `paths`: files as given, directories searched for `*.yaml` / `*.yml`.
pub fn suite_files(paths: &[PathBuf], diags: &mut Diagnostics) -> Vec<(Arc<Path>, String)> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            match crate::load::load_dir(path) {
                Ok(set) => out.extend(set.files.into_iter().map(|f| (f.path, f.text))),
                Err(d) => diags.extend(d),
            }
        } else {
            match std::fs::read_to_string(path) {
                Ok(text) => out.push((Arc::from(path.as_path()), text)),
                Err(e) => diags.push(Diagnostic::error(
                    Code::InvalidTestSuite,
                    path,
                    Pos::default(),
                    format!("cannot read: {e}"),
                )),
            }
        }
    }
    out
}

/// Runs every test of `suite`. Tests without `environment.time` use the suite's `now`, else `now`.
pub fn run_suite(
    snapshot: &Snapshot,
    suite: &TestSuite,
    superuser: Option<&str>,
    now: Timestamp,
) -> Vec<TestResult> {
    let now = suite.now.unwrap_or(now);
    let options = EvalOptions {
        superuser,
        explain: false,
    };
    suite
        .tests
        .iter()
        .map(|t| {
            let decision = evaluate(snapshot, &t.request, now, &options);
            let mut passed = decision.allowed == t.expect_allow;
            let mut expected = (if t.expect_allow { "allow" } else { "deny" }).to_string();
            if let Some(want) = &t.expect_policies {
                let mut want_sorted = want.clone();
                want_sorted.sort();
                let got: Vec<&str> = decision.policies.iter().map(|p| &**p).collect();
                passed &= got == want_sorted.iter().map(String::as_str).collect::<Vec<_>>();
                expected = format!("{expected} {want_sorted:?}");
            }
            TestResult {
                suite: suite.name.clone(),
                test: t.name.clone(),
                location: format!("{}:{}:{}", suite.file.display(), t.pos.line, t.pos.col),
                passed,
                decision,
                expected,
            }
        })
        .collect()
}
