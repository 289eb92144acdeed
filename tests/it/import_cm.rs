//! `arbiter import cm`: CipherTrust Manager JSON (REST list responses, single objects and arrays, `ksctl` files,
//! `terraform show -json`) to Arbiter YAML that `check` accepts, decides as written, and comes with probes that
//! pass; every field not carried over is a warning naming the file and a JSON pointer. The inputs are written
//! here from CM's documented format, not produced by the importer's own code.

use std::path::Path;

use serde_json::{json, Value};

use crate::common::{self, arbiter, text};

/// A REST list response (`GET /api/v1/admin/policies`), with CM's read-only fields.
const REST_POLICIES: &str = r#"{"skip": 0, "limit": 10, "total": 4, "resources": [
  {"id": "0b7c2f9e-aaaa-4e2b-8c1d-000000000001", "uri": "kylo:kylo:admin:policies:read kek", "account": "kylo:kylo:admin:accounts:kylo",
   "createdAt": "2025-06-01T10:00:00Z", "updatedAt": "2025-06-01T10:00:00Z",
   "name": "read kek", "actions": ["ReadKey", "EncryptWithKey"], "resources": ["kylo:kylo:vault:keys:kek-*"],
   "allow": true, "effect": "allow", "include_descendant_accounts": true,
   "conditions": [{"path": "context.resource.alg", "op": "equals", "values": ["aes", "rsa"]},
                  {"path": "context.resource.size", "op": "ge", "values": ["256"], "negate": false}]},
  {"id": "0b7c2f9e-aaaa-4e2b-8c1d-000000000002", "name": "no-export", "actions": ["ExportKey"], "allow": false,
   "conditions": [{"path": "context.resource.exportable", "op": "empty", "values": []}]},
  {"id": "0b7c2f9e-aaaa-4e2b-8c1d-000000000003", "name": "obligated use", "actions": ["UseKey"], "allow": true,
   "effect": "obligate_on_allow"},
  {"id": "0b7c2f9e-aaaa-4e2b-8c1d-000000000004", "name": "Masters", "actions": ["ReadKey"], "allow": true,
   "resources": ["kylo:*:vault:keys:Master-*"],
   "conditions": [{"path": "context.principal.level", "op": "empty", "values": []}]}
]}"#;

/// Attachments as an array (`ksctl policy attachments list` items): by CM id, by name, with nested claims.
const ATTACHMENTS: &str = r#"[
  {"id": "att-1", "policy": "0b7c2f9e-aaaa-4e2b-8c1d-000000000001",
   "principalSelector": {"acct": "kylo", "cust": {"groups": ["payments"]}}},
  {"id": "att-2", "policy": "no-export", "principalSelector": {"groups": ["payments"]}, "jurisdiction": "eu"},
  {"id": "att-4", "policy": "read kek", "principalSelector": {"groups": ["auditors"]}, "jurisdiction": "us"},
  {"id": "att-3", "policy": "obligated use", "principalSelector": {"user": "bob"}}
]"#;

/// One `ksctl` policy file: a single object. Its name collides with the REST policy's id-to-be.
const KSCTL: &str = r#"{"name": "read/kek", "actions": ["ReadKey"], "effect": "deny",
  "resources": ["kylo:kylo:vault:keys:kek-retired-*"], "color": "red"}"#;

/// `terraform show -json` state with the Thales provider's resources, one in a child module; the selector is
/// JSON text, as the provider stores it.
const TERRAFORM: &str = r#"{"format_version": "1.0", "terraform_version": "1.9.5", "values": {"root_module": {
  "resources": [
    {"address": "ciphertrust_policies.policy", "mode": "managed", "type": "ciphertrust_policies", "name": "policy",
     "values": {"id": "tf-0001", "name": "mypolicy", "actions": ["ReadKey"], "allow": true, "effect": "allow",
                "resources": null,
                "conditions": [{"path": "context.resource.alg", "op": "equals", "values": ["aes"], "negate": false}]}}
  ],
  "child_modules": [{"address": "module.cm", "resources": [
    {"address": "module.cm.ciphertrust_policy_attachments.a", "mode": "managed", "type": "ciphertrust_policy_attachments",
     "name": "a", "values": {"id": "tf-att-1", "policy": "tf-0001",
                            "principal_selector": "{\"acct\":\"pers-jsmith\",\"user\":\"apitestuser\"}", "jurisdiction": ""}}
  ]}]
}}}"#;

fn inputs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::write(dir.path(), "rest/policies.json", REST_POLICIES);
    common::write(dir.path(), "rest/attachments.json", ATTACHMENTS);
    common::write(dir.path(), "ksctl/read-kek.json", KSCTL);
    common::write(dir.path(), "terraform.json", TERRAFORM);
    dir
}

fn eval(out: &Path, request: Value) -> (String, String) {
    let o = arbiter(
        &[
            "eval",
            "--policies",
            out.to_str().unwrap(),
            "--request",
            "-",
        ],
        Some(&request.to_string()),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    (
        v["decision"].as_str().unwrap().to_string(),
        v["reason"].as_str().unwrap().to_string(),
    )
}

#[test]
fn import_writes_a_set_that_check_accepts_and_that_decides_as_cm_would() {
    let input = inputs();
    let out = tempfile::tempdir().unwrap();
    let outdir = out.path().join("imported");
    let o = arbiter(
        &[
            "import",
            "cm",
            input.path().to_str().unwrap(),
            "--out",
            outdir.to_str().unwrap(),
        ],
        None,
    );
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        text(&o.stdout).contains(": ok: 4 policies, 3 attachments"),
        "{}",
        text(&o.stdout)
    );

    let yaml = std::fs::read_to_string(outdir.join("cm-import.yaml")).unwrap();
    // Ids from names, made valid and unique; CM's values (strings) typed for the numeric operator.
    assert!(yaml.contains("id: \"read-kek\"\n"), "{yaml}");
    assert!(
        yaml.contains("id: \"read-kek-2\"\n"),
        "the ksctl policy's name collides once made valid: {yaml}"
    );
    assert!(
        yaml.contains("{path: \"resource.size\", op: ge, values: [256]}"),
        "{yaml}"
    );
    // Absent resources mean every resource.
    assert!(yaml.contains("id: \"mypolicy\"\ndescription: \"CM policy `mypolicy`, id tf-0001\"\neffect: allow\nactions: [\"ReadKey\"]\nresources: [\"*\"]"), "{yaml}");
    // The selector: `user` is the principal id, nested claims are dotted paths.
    assert!(
        yaml.contains("principal_selector: {\"acct\":[\"kylo\"],\"cust.groups\":[\"payments\"]}"),
        "{yaml}"
    );
    assert!(
        yaml.contains("principal_selector: {\"acct\":[\"pers-jsmith\"],\"id\":[\"apitestuser\"]}"),
        "{yaml}"
    );

    // Decisions, through the binary: the group grant with its conditions.
    let payments = |action: &str, alg: &str| {
        json!({
            "principal": {"id": "carol", "attributes": {"acct": "kylo", "cust": {"groups": ["payments"]}}},
            "action": action,
            "resource": {"uri": "kylo:kylo:vault:keys:kek-7", "attributes": {"alg": alg, "size": 256}},
        })
    };
    assert_eq!(eval(&outdir, payments("EncryptWithKey", "aes")).0, "allow");
    assert_eq!(eval(&outdir, payments("EncryptWithKey", "des")).0, "deny");
    // The deny whose `empty` condition could not be translated applies to every export (fails closed).
    let mut export = payments("ExportKey", "aes");
    export["principal"]["groups"] = json!(["payments"]);
    assert_eq!(
        eval(&outdir, export),
        ("deny".to_string(), "denied".to_string())
    );
    // The obligation policy and its attachment are left out: bob is granted nothing.
    let bob = json!({"principal": {"id": "bob"}, "action": "UseKey", "resource": {"uri": "kylo:kylo:vault:keys:k"}});
    assert_eq!(
        eval(&outdir, bob),
        ("deny".to_string(), "no_applicable_policy".to_string())
    );

    // The probes pass as written.
    let o = arbiter(
        &[
            "test",
            "--policies",
            outdir.to_str().unwrap(),
            outdir.join("tests").to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert_eq!(text(&o.stdout).lines().last(), Some("6 passed, 0 failed"));
}

#[test]
fn everything_not_carried_over_is_a_warning_with_file_and_pointer() {
    let input = inputs();
    let out = tempfile::tempdir().unwrap();
    let o = arbiter(
        &[
            "import",
            "cm",
            input.path().to_str().unwrap(),
            "--out",
            out.path().to_str().unwrap(),
        ],
        None,
    );
    let err = text(&o.stderr);
    let rest = input
        .path()
        .join("rest/policies.json")
        .display()
        .to_string();
    let attachments = input
        .path()
        .join("rest/attachments.json")
        .display()
        .to_string();
    let ksctl = input
        .path()
        .join("ksctl/read-kek.json")
        .display()
        .to_string();
    let has = |needle: String| assert!(err.contains(&needle), "missing {needle:?} in:\n{err}");
    has(format!("{rest}: /resources/0/include_descendant_accounts: warning: `include_descendant_accounts` is not carried over: the allow applies to the accounts its attachments select"));
    has(format!("{rest}: /resources/1/conditions/0: warning: condition left out of deny `no-export` (operator `empty` has no exact translation)"));
    has(format!("{rest}: /resources/2/effect: warning: allow `obligated use` not imported: effect `obligate_on_allow`"));
    has(format!("{rest}: /resources/3/resources/0: warning: resource pattern `kylo:*:vault:keys:Master-*` has upper-case letters"));
    has(format!("{rest}: /resources/3/conditions/0: warning: allow `Masters` not imported: operator `empty` has no exact translation"));
    has(format!(
        "{attachments}: /1/jurisdiction: warning: jurisdiction `eu` is not carried over: the deny applies in every jurisdiction"
    ));
    has(format!("{attachments}: /2/jurisdiction: warning: jurisdiction `us` cannot be carried over: the allow's attachment is left out"));
    has(format!("{attachments}: /3/policy: warning: attachment names policy `obligated use`, which is not among the imported policies"));
    has(format!(
        "{ksctl}: /color: warning: field `color` is not carried over"
    ));
    // Read-only metadata is known, and not warned about.
    assert!(!err.contains("createdAt") && !err.contains("/uri"), "{err}");

    // A second import does not overwrite without --force.
    let again = arbiter(
        &[
            "import",
            "cm",
            input.path().to_str().unwrap(),
            "--out",
            out.path().to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again.stderr).contains("exists; pass --force to replace it"));
    let forced = arbiter(
        &[
            "import",
            "cm",
            input.path().to_str().unwrap(),
            "--out",
            out.path().to_str().unwrap(),
            "--force",
        ],
        None,
    );
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced.stderr));
}

#[test]
fn invalid_json_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    common::write(dir.path(), "bad.json", "{\"name\": ");
    let out = tempfile::tempdir().unwrap();
    let o = arbiter(
        &[
            "import",
            "cm",
            dir.path().join("bad.json").to_str().unwrap(),
            "--out",
            out.path().to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("bad.json: invalid JSON"),
        "{}",
        text(&o.stderr)
    );
}

/// A deny that cannot be carried over stops the import: leaving it out would allow what CM denies.
#[test]
fn a_deny_that_cannot_be_imported_stops_the_import() {
    let dir = tempfile::tempdir().unwrap();
    common::write(
        dir.path(),
        "p.json",
        r#"[{"name": "no-deletes", "effect": "deny", "resources": ["kylo:kylo:vault:keys:*"]},
            {"name": "maybe", "allow": false, "actions": "DeleteKey"},
            {"name": "odd", "effect": "block", "actions": ["ReadKey"]},
            {"name": "fine", "effect": "allow", "actions": ["ReadKey"]},
            {"colour": "blue"}]"#,
    );
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("x");
    let o = arbiter(
        &[
            "import",
            "cm",
            dir.path().to_str().unwrap(),
            "--out",
            target.to_str().unwrap(),
        ],
        None,
    );
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("/0/actions: error: policy `no-deletes` may deny, and cannot be imported: `actions` must be a non-empty list"), "{err}");
    // No `effect` and `allow` not true: a deny.
    assert!(
        err.contains("/1/actions: error: policy `maybe` may deny"),
        "{err}"
    );
    assert!(err.contains("/2/effect: error: policy `odd` may deny, and cannot be imported: unknown effect `block`"), "{err}");
    assert!(err.contains("/4: warning: not a CM policy"), "{err}");
    assert!(
        err.contains("3 policies may deny and cannot be imported; nothing was written"),
        "{err}"
    );
    assert!(!target.exists(), "nothing is written");
}

/// Attachments are narrowed for allows and widened for denies, never the other way.
#[test]
fn attachments_fail_closed_on_names_claims_and_accounts() {
    let dir = tempfile::tempdir().unwrap();
    common::write(
        dir.path(),
        "p.json",
        r#"{"resources": [
            {"id": "1", "name": "keys", "effect": "allow", "actions": ["ReadKey"]},
            {"id": "2", "name": "keys", "effect": "deny", "actions": ["ReadKey"], "resources": ["kylo:kylo:vault:keys:secret-*"],
             "include_descendant_accounts": true},
            {"id": "3", "name": "ops", "effect": "allow", "actions": ["UseKey"]}
        ]}"#,
    );
    common::write(
        dir.path(),
        "a.json",
        r#"[{"policy": "keys", "principalSelector": {"groups": ["contractors"], "acct": "kylo"}},
            {"policy": "3", "principalSelector": {"user": "alice", "id": "bob"}}]"#,
    );
    let out = tempfile::tempdir().unwrap();
    let o = arbiter(
        &[
            "import",
            "cm",
            dir.path().to_str().unwrap(),
            "--out",
            out.path().to_str().unwrap(),
        ],
        None,
    );
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("`keys` names 2 policies: attached to the 1 denies among them, to no allow"),
        "{err}"
    );
    assert!(err.contains("cannot be matched exactly (both `user` and `id` name the principal): attachment not imported"), "{err}");
    let yaml = std::fs::read_to_string(out.path().join("cm-import.yaml")).unwrap();
    // The deny reaches contractors of every account (sub-accounts included); the allow reaches no one.
    assert!(
        yaml.contains("policy: \"keys-2\"\nprincipal_selector: {\"groups\":[\"contractors\"]}"),
        "{yaml}"
    );
    assert_eq!(yaml.matches("kind: PolicyAttachment").count(), 1, "{yaml}");
    let contractor = |account: &str| {
        json!({"principal": {"id": "c", "groups": ["contractors"], "attributes": {"acct": account}},
               "action": "ReadKey", "resource": {"uri": "kylo:kylo:vault:keys:secret-1"}})
    };
    assert_eq!(
        eval(out.path(), contractor("kylo-sub")),
        ("deny".to_string(), "denied".to_string())
    );
}
