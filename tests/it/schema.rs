//! `arbiter schema`: the JSON Schema of policy files. Every shipped policy, example and test suite validates
//! against it with the `jsonschema` crate (an implementation of the standard, not of this crate), what the
//! printed schema says equals the shipped file, and typical mistakes fail it.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn schema() -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_arbiter"))
        .arg("schema")
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let shipped: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/policy.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(printed, shipped);
    assert_eq!(
        printed["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    printed
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(path);
        }
    }
}

/// Every YAML document of `text`, as JSON.
fn documents(path: &Path, text: &str) -> Vec<Value> {
    arbiter::source::parse_documents(path, text)
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|d| d.to_json())
        .collect()
}

#[test]
fn every_shipped_policy_example_and_suite_validates() {
    let validator =
        jsonschema::draft202012::new(&schema()).expect("the schema is valid draft 2020-12");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    yaml_files(&root.join("policies"), &mut files);
    yaml_files(&root.join("examples"), &mut files);
    let mut kinds = std::collections::BTreeSet::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for doc in documents(file, &text) {
            // Other YAML in examples (an Envoy or Kubernetes file) is not a policy document.
            let Some(kind) = doc.get("kind").and_then(Value::as_str) else {
                continue;
            };
            if !arbiter::parse::KINDS.contains(&kind) {
                continue;
            }
            let errors: Vec<String> = validator
                .iter_errors(&doc)
                .map(|e| format!("{e} at {}", e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{}: {kind}: {errors:?}", file.display());
            kinds.insert(kind.to_string());
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} documents found");
    for kind in arbiter::parse::KINDS {
        assert!(
            kinds.contains(kind),
            "no shipped {kind} was checked: {kinds:?}"
        );
    }
}

#[test]
fn typical_mistakes_fail_the_schema() {
    let validator = jsonschema::draft202012::new(&schema()).unwrap();
    let policy = "kind: Policy\nid: p\neffect: allow\nactions: [ReadKey]\nresources: [\"kylo:*\"]\nconditions:\n  - {path: resource.owner, op: equals, values: [bob]}\n";
    let valid = &documents(Path::new("p.yaml"), policy)[0];
    assert!(validator.is_valid(valid));
    for (mistake, from, to) in [
        ("effect in capitals", "effect: allow", "effect: Allow"),
        ("unknown field", "actions:", "actoins:"),
        ("misspelt operator", "op: equals", "op: equal"),
        ("scalar values", "values: [bob]", "values: bob"),
        ("invalid id", "id: p", "id: \"p q\""),
        ("empty actions", "actions: [ReadKey]", "actions: []"),
        ("unknown kind", "kind: Policy", "kind: Polcy"),
        ("reserved id", "id: p", "id: superuser"),
        (
            "reserved glob character",
            "actions: [ReadKey]",
            "actions: [\"Read?\"]",
        ),
    ] {
        let doc = &documents(Path::new("p.yaml"), &policy.replace(from, to))[0];
        assert!(
            !validator.is_valid(doc),
            "{mistake} passed the schema: {doc}"
        );
    }
    // What the parser accepts, the schema accepts: `negate: null` reads as false.
    let nulls = policy.replace("values: [bob]}", "values: [bob], negate: null}");
    assert!(validator.is_valid(&documents(Path::new("p.yaml"), &nulls)[0]));
    let group = "kind: Group\nname: g\nsystem: null\nmembers: null\n";
    assert!(validator.is_valid(&documents(Path::new("g.yaml"), group)[0]));
    let suite = "kind: TestSuite\nname: s\ntests:\n  - name: t\n    principal: {id: bob}\n    action: ReadKey\n    expect: alow\n";
    assert!(!validator.is_valid(&documents(Path::new("s.yaml"), suite)[0]));
    assert!(validator.is_valid(&documents(Path::new("s.yaml"), &suite.replace("alow", "allow"))[0]));
}
