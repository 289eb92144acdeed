//! Resource limits and hostile input (hardening issue): every limit is enforced, with an error naming
//! `file:line:col` (policy files) or the field (requests), and the limit itself is accepted. Nothing here asserts
//! a duration: pathological inputs must simply finish with the right answer.

use crate::common;

use std::path::{Path, PathBuf};

use arbiter::compile::glob::{Glob, GlobError, MAX_GLOB_LEN, MAX_GLOB_STARS};
use arbiter::compile::path::MAX_PATH_SEGMENTS;
use arbiter::load::{load_dir, SourceSet, MAX_TOTAL_BYTES};
use arbiter::request::{MAX_ATTRIBUTE_DEPTH, MAX_ATTRIBUTE_VALUES, MAX_STRING_BYTES};
use arbiter::server::proto;
use arbiter::source::{parse_documents, MAX_DOCUMENTS_PER_FILE, MAX_FILE_BYTES, MAX_YAML_DEPTH};
use arbiter::{EvalOptions, Request};
use common::{allow, request, Harness};
use prost_types::value::Kind;
use prost_types::{Struct, Value};
use serde_json::json;
use tonic::Code;

/// Builds a one-file policy set and returns every error, rendered.
fn build_errors(name: &str, text: &str) -> Vec<String> {
    let set = SourceSet::from_files([(PathBuf::from(name), text.to_string())]);
    match arbiter::build(&set) {
        Ok(_) => Vec::new(),
        Err(diags) => diags.errors().map(|d| d.to_string()).collect(),
    }
}

fn one_error(name: &str, text: &str) -> String {
    let errors = build_errors(name, text);
    assert!(!errors.is_empty(), "expected an error for {name}");
    errors[0].clone()
}

fn policy_with_resource(resource: &str) -> String {
    format!(
        "kind: Policy\nid: p\neffect: allow\nactions: [ReadKey]\nresources: [\"{resource}\"]\n---\n\
         kind: PolicyAttachment\nid: a\npolicy: p\nprincipal_selector: {{}}\n"
    )
}

fn policy_with_condition(path: &str, value: &str) -> String {
    format!(
        "kind: Policy\nid: p\neffect: allow\nactions: [ReadKey]\nresources: [\"*\"]\nconditions:\n\
         \x20 - path: {path}\n    op: equals\n    values: [\"{value}\"]\n---\n\
         kind: PolicyAttachment\nid: a\npolicy: p\nprincipal_selector: {{}}\n"
    )
}

// ---- policy files ----------------------------------------------------------------------------------------

#[test]
fn file_larger_than_the_limit_is_refused_before_parsing() {
    let big = "#".repeat(MAX_FILE_BYTES + 1);
    let err = parse_documents(Path::new("big.yaml"), &big).unwrap_err();
    assert_eq!(err.location(), "big.yaml:1:1");
    assert!(err.message.contains("larger than the limit"), "{err}");

    // From disk: refused from its size alone (a sparse file: nothing is read).
    let dir = tempfile::tempdir().unwrap();
    let f = std::fs::File::create(dir.path().join("big.yaml")).unwrap();
    f.set_len(MAX_FILE_BYTES as u64 + 1).unwrap();
    let diags = load_dir(dir.path()).unwrap_err();
    let err = diags.errors().next().unwrap().to_string();
    assert!(err.contains("big.yaml:1:1: error: file is"), "{err}");
    assert!(err.contains("larger than the limit"), "{err}");
}

#[test]
fn policy_set_larger_than_the_total_limit_is_refused() {
    // Each file is exactly at the per-file limit (allowed); together they pass the total. Sparse files: the
    // limit is checked from sizes, before any file is read.
    let dir = tempfile::tempdir().unwrap();
    let n = MAX_TOTAL_BYTES / MAX_FILE_BYTES as u64 + 1;
    for i in 0..n {
        let f = std::fs::File::create(dir.path().join(format!("f{i}.yaml"))).unwrap();
        f.set_len(MAX_FILE_BYTES as u64).unwrap();
    }
    let diags = load_dir(dir.path()).unwrap_err();
    let errors: Vec<String> = diags.errors().map(|d| d.to_string()).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("more than the limit of 134217728 bytes"),
        "{errors:?}"
    );
    assert!(
        errors[0].starts_with(&dir.path().display().to_string()),
        "{errors:?}"
    );
}

#[test]
fn too_many_documents_in_one_file_is_refused() {
    let file = |n: usize| format!("a: 1\n{}", "---\na: 1\n".repeat(n - 1));
    let at_limit = file(MAX_DOCUMENTS_PER_FILE);
    let docs = parse_documents(Path::new("many.yaml"), &at_limit).expect("at the limit");
    assert_eq!(docs.len(), MAX_DOCUMENTS_PER_FILE);

    let over = file(MAX_DOCUMENTS_PER_FILE + 1);
    let err = parse_documents(Path::new("many.yaml"), &over).unwrap_err();
    assert!(err.location().starts_with("many.yaml:"), "{err}");
    assert!(err.message.contains("documents"), "{err}");
}

#[test]
fn deep_yaml_nesting_is_refused() {
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let err = parse_documents(Path::new("deep.yaml"), &deep).unwrap_err();
    assert!(err.location().starts_with("deep.yaml:1:"), "{err}");
    assert!(err.message.starts_with("invalid YAML"), "{err}");
    // Block style too.
    let mut block = String::new();
    for i in 0..200 {
        block.push_str(&" ".repeat(i * 2));
        block.push_str("a:\n");
    }
    let err = parse_documents(Path::new("deep.yaml"), &block).unwrap_err();
    assert!(err.location().starts_with("deep.yaml:"), "{err}");
    // Moderate nesting is fine.
    let ok = format!("{}1{}", "[".repeat(20), "]".repeat(20));
    parse_documents(Path::new("ok.yaml"), &ok).expect("20 levels");
}

/// The deepest document the parser accepts goes through the whole build, and through a test suite, on a small
/// stack (the 2 MiB of a Tokio blocking thread): nothing downstream recurses more than the depth limit allows.
#[test]
fn the_deepest_accepted_document_builds_on_a_small_stack() {
    // `levels` nested collections inside `outer` enclosing ones reach the limit exactly.
    let deep = |open: &str, close: &str, outer: usize| {
        let levels = MAX_YAML_DEPTH - outer;
        format!("{}1{}", open.repeat(levels), close.repeat(levels))
    };
    let policy = format!(
        "kind: Policy\nid: p\neffect: allow\nactions: [ReadKey]\nresources: [\"*\"]\nconditions:\n  - path: resource.x\n    op: equals\n    values: {}\n",
                deep("[", "]", 3)
    );
    let suite = format!(
        "kind: TestSuite\nname: deep\ntests:\n  - name: deep\n    principal: {{id: a, attributes: {}}}\n    action: ReadKey\n    expect: deny\n",
                deep("{a: ", "}", 5)
    );
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            let errors = build_errors("deep.yaml", &policy);
            assert!(
                !errors.is_empty() && errors.iter().all(|e| !e.contains("invalid YAML")),
                "parsed, then refused as a condition value: {errors:?}"
            );
            let mut diags = arbiter::diag::Diagnostics::new();
            let file: std::sync::Arc<Path> = Path::new("t.test.yaml").into();
            let suites = arbiter::testsuite::parse_suites(&[(file, suite)], &mut diags);
            // Read whole, then refused by the request's own nesting limit, as every door refuses it.
            assert_eq!(suites.len(), 1, "{diags:?}");
            let errors: Vec<String> = diags.errors().map(|d| d.to_string()).collect();
            assert!(
                errors.len() == 1 && errors[0].contains("nested deeper than"),
                "{errors:?}"
            );
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
}

#[test]
fn billion_laughs_is_refused() {
    let mut doc = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for w in names.windows(2) {
        let refs = vec![format!("*{}", w[0]); 9].join(",");
        doc.push_str(&format!("{}: &{} [{refs}]\n", w[1], w[1]));
    }
    doc.push_str("kind: Policy\n");
    let err = parse_documents(Path::new("lol.yaml"), &doc).unwrap_err();
    assert!(err.location().starts_with("lol.yaml:"), "{err}");
    assert!(err.message.starts_with("invalid YAML"), "{err}");
    // Through the whole build: one error, no snapshot.
    let errors = build_errors("lol.yaml", &doc);
    assert_eq!(errors.len(), 1, "{errors:?}");

    // A few aliases are fine.
    let ok = "x: &x [1, 2]\ny: [*x, *x]\n";
    parse_documents(Path::new("ok.yaml"), ok).expect("small aliases");
}

#[test]
fn glob_length_and_wildcard_limits() {
    let long = "k".repeat(MAX_GLOB_LEN + 1);
    let err = one_error("g.yaml", &policy_with_resource(&long));
    assert!(err.starts_with("g.yaml:5:"), "{err}");
    assert!(err.contains("longer than 1024 bytes"), "{err}");

    let stars = "*x".repeat(MAX_GLOB_STARS + 1);
    let err = one_error("g.yaml", &policy_with_resource(&stars));
    assert!(err.starts_with("g.yaml:5:"), "{err}");
    assert!(err.contains("more than 16 `*` wildcards"), "{err}");

    // At the limits: accepted.
    assert!(build_errors("g.yaml", &policy_with_resource(&"k".repeat(MAX_GLOB_LEN))).is_empty());
    assert!(build_errors(
        "g.yaml",
        &policy_with_resource(&"*x".repeat(MAX_GLOB_STARS))
    )
    .is_empty());
    assert_eq!(Glob::new(&long).unwrap_err(), GlobError::TooLong);
}

#[test]
fn pathological_glob_matching_is_linear() {
    // `*a*a*...*a*b` against `aaaa...`: exponential for a backtracking matcher, linear here.
    let pattern = format!("{}*b", "*a".repeat(MAX_GLOB_STARS - 1));
    let glob = Glob::new(&pattern).unwrap();
    let text = "a".repeat(MAX_STRING_BYTES);
    assert!(!glob.matches(&text));
    assert!(glob.matches(&format!("{text}b")));
    assert!(!glob.matches(&format!("b{text}")));

    // The same through a compiled policy and a request at the string limit.
    let set = SourceSet::from_files([(PathBuf::from("p.yaml"), policy_with_resource(&pattern))]);
    let snapshot = arbiter::build(&set).unwrap();
    let decide = |uri: &str| {
        let r = Request::from_json(json!({
            "principal": {"id": "alice"}, "action": "ReadKey", "resource": {"uri": uri}
        }))
        .unwrap();
        arbiter::evaluate(
            &snapshot,
            &r,
            jiff::Timestamp::UNIX_EPOCH,
            &EvalOptions::default(),
        )
        .allowed
    };
    assert!(!decide(&text));
    assert!(decide(&format!("{}b", &text[1..])));
}

#[test]
fn attribute_path_segment_limit() {
    let long = format!("resource{}", ".a".repeat(MAX_PATH_SEGMENTS));
    let err = one_error("p.yaml", &policy_with_condition(&long, "x"));
    assert!(err.starts_with("p.yaml:7:"), "{err}");
    assert!(err.contains("more than 32 segments"), "{err}");
    // The same limit inside a `${...}` reference.
    let err = one_error(
        "p.yaml",
        &policy_with_condition("resource.owner", &format!("${{{long}}}")),
    );
    assert!(err.starts_with("p.yaml:9:"), "{err}");
    assert!(err.contains("more than 32 segments"), "{err}");
    // At the limit.
    let ok = format!("resource{}", ".a".repeat(MAX_PATH_SEGMENTS - 1));
    assert!(build_errors("p.yaml", &policy_with_condition(&ok, "x")).is_empty());
}

// ---- requests (JSON edge) ---------------------------------------------------------------------------------

fn nested_json(depth: usize) -> serde_json::Value {
    let mut v = json!(1);
    for _ in 0..depth {
        v = json!({ "a": v });
    }
    v
}

fn json_request(attributes: serde_json::Value) -> Result<Request, arbiter::request::RequestError> {
    Request::from_json(json!({
        "principal": {"id": "alice", "attributes": attributes},
        "action": "ReadKey"
    }))
}

#[test]
fn request_attribute_limits_name_the_field() {
    // Depth.
    let err = json_request(json!({ "deep": nested_json(MAX_ATTRIBUTE_DEPTH) })).unwrap_err();
    assert!(err.field.starts_with("principal.attributes.deep"), "{err}");
    assert!(err.message.contains("nested deeper than 32"), "{err}");
    json_request(json!({ "deep": nested_json(MAX_ATTRIBUTE_DEPTH - 1) })).expect("at the limit");

    // Total values.
    let many: Vec<u32> = (0..MAX_ATTRIBUTE_VALUES as u32).collect();
    let err = json_request(json!({ "many": many })).unwrap_err();
    assert_eq!(err.field, "principal.attributes.many", "{err}");
    assert!(err.message.contains("more than 10000 values"), "{err}");
    let fits: Vec<u32> = (0..MAX_ATTRIBUTE_VALUES as u32 - 1).collect();
    json_request(json!({ "many": fits })).expect("at the limit");

    // String length, in values and in attribute names.
    let err = json_request(json!({ "s": "x".repeat(MAX_STRING_BYTES + 1) })).unwrap_err();
    assert_eq!(err.field, "principal.attributes.s", "{err}");
    assert!(err.message.contains("longer than 65536 bytes"), "{err}");
    json_request(json!({ "s": "x".repeat(MAX_STRING_BYTES) })).expect("at the limit");
    let mut key = serde_json::Map::new();
    key.insert("k".repeat(MAX_STRING_BYTES + 1), json!(1));
    let err = json_request(json!({ "m": key })).unwrap_err();
    assert_eq!(err.field, "principal.attributes.m", "{err}");
    assert!(err.message.contains("attribute name is longer"), "{err}");
    let err = json_request(serde_json::Value::Object(key)).unwrap_err();
    assert_eq!(err.field, "principal.attributes", "{err}");

    // Typed fields.
    let err = Request::from_json(json!({
        "principal": {"id": "alice"}, "action": "x".repeat(MAX_STRING_BYTES + 1)
    }))
    .unwrap_err();
    assert_eq!(err.field, "action");
}

// ---- requests (gRPC edge) ---------------------------------------------------------------------------------

fn number(n: f64) -> Value {
    Value {
        kind: Some(Kind::NumberValue(n)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_struct_size_and_batch_limits_are_invalid_argument() {
    let h = Harness::start(&[("p.yaml", &allow("p1", "ReadKey"))]).await;

    // A Struct holding more values than the limit.
    let mut r = request("alice", "ReadKey");
    let fields = (0..=MAX_ATTRIBUTE_VALUES)
        .map(|i| (format!("k{i}"), number(i as f64)))
        .collect();
    r.resource.as_mut().unwrap().attributes = Some(Struct { fields });
    let err = h.client.clone().authorize(r).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().starts_with("resource.attributes."),
        "{}",
        err.message()
    );
    assert!(
        err.message().contains("more than 10000 values"),
        "{}",
        err.message()
    );

    // An attribute name longer than the string limit.
    let mut r = request("alice", "ReadKey");
    r.principal.as_mut().unwrap().attributes = Some(Struct {
        fields: [("k".repeat(MAX_STRING_BYTES + 1), number(1.0))].into(),
    });
    let err = h.client.clone().authorize(r).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().starts_with("principal.attributes:"),
        "{}",
        err.message()
    );

    // A batch at the check limit is served; one more is refused naming `checks`.
    let batch = |n: usize| proto::AuthorizeBatchRequest {
        principal: request("alice", "ReadKey").principal,
        environment: None,
        checks: (0..n)
            .map(|_| proto::Check {
                action: "ReadKey".into(),
                resource: None,
            })
            .collect(),
        explain: false,
    };
    let ok = h
        .client
        .clone()
        .authorize_batch(batch(arbiter::server::convert::MAX_BATCH_CHECKS))
        .await
        .expect("at the limit")
        .into_inner();
    assert_eq!(ok.results.len(), 1024);
    assert!(ok.results.iter().all(common::is_allow));
    let err = h
        .client
        .clone()
        .authorize_batch(batch(arbiter::server::convert::MAX_BATCH_CHECKS + 1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(
        err.message(),
        "checks: 1025 checks, more than the limit of 1024"
    );

    // The server is unharmed.
    assert!(h.allowed("ReadKey").await);
    h.stop().await;
}
