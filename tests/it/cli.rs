//! The `arbiter` binary's check, eval and test verbs: output and exit codes (0 ok, 1 finding, 2 invalid).

use std::process::{Command, Output};

use crate::common::{arbiter, text};

fn write(dir: &std::path::Path, name: &str, body: &str) {
    std::fs::create_dir_all(dir.join(name).parent().unwrap()).unwrap();
    std::fs::write(dir.join(name), body).unwrap();
}

#[test]
fn check_accepts_the_shipped_pack_and_rejects_errors_with_exit_2() {
    let out = arbiter(&["check", "policies"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("ok: 5 policies"),
        "{}",
        text(&out.stdout)
    );

    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", "kind: Policy\nid: p\neffect: allow\nactions: [ReadKey]\nresources: [x]\nconditions:\n  - path: resource.owner\n    op: equal\n    values: [x]\n");
    write(
        dir.path(),
        "sub/b.yml",
        "kind: Group\nname: g\nmembrs: []\n",
    );
    write(dir.path(), ".hidden.yaml", "this is: [not valid");
    let out = arbiter(&["check", dir.path().to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    let a = format!(
        "{}:8:9: error: unknown operator `equal`",
        dir.path().join("a.yaml").display()
    );
    let b = format!(
        "{}:3:1: error: unknown field `membrs` in Group",
        dir.path().join("sub/b.yml").display()
    );
    assert!(err.contains(&a), "{err}");
    assert!(err.contains(&b), "{err}");
    assert!(err.find(&a) < err.find(&b), "sorted by file");
    assert!(!err.contains(".hidden"), "hidden files are skipped: {err}");
    assert!(err.trim_end().ends_with("2 errors, 1 warning"), "{err}");
}

#[test]
fn check_follows_symlinks_and_reads_each_real_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let real = tempfile::tempdir().unwrap();
    write(real.path(), "p.yaml", "kind: Policy\nid: p\neffect: allow\nactions: [ReadKey]\nresources: [x]\n---\nkind: PolicyAttachment\nid: a\npolicy: p\nprincipal_selector: {}\n");
    std::os::unix::fs::symlink(real.path().join("p.yaml"), dir.path().join("link.yaml")).unwrap();
    std::os::unix::fs::symlink(real.path(), dir.path().join("linked-dir")).unwrap();
    let out = arbiter(&["check", dir.path().to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("ok: 1 policies"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn eval_prints_the_decision_as_json() {
    let req = r#"{"principal": {"id": "carol", "groups": ["hr"], "attributes": {"department": "security"}},
 "action": "EncryptWithKey",
 "resource": {"uri": "kylo:kylo:vault:keys:k2", "owner": "bob",
              "attributes": {"permissions": {"EncryptWithKey": ["hr"]}}},
 "environment": {"time": "2026-11-23T12:00:00Z", "source_ip": "10.1.2.3", "port": 443, "attributes": {}}}"#;
    let out = arbiter(&["eval", "--request", "-"], Some(req));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["reason"], "allowed");
    assert_eq!(v["policies"], serde_json::json!(["key-group-usage-grant"]));
    assert_eq!(v["revision"].as_str().unwrap().len(), 16);
    assert!(v.get("explanation").is_none());

    let out = arbiter(&["eval", "--request", "-", "--explain"], Some(req));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let candidates = v["explanation"]["candidates"].as_array().unwrap();
    let owner = candidates
        .iter()
        .find(|c| c["policy"] == "key-owner-full-access")
        .unwrap();
    assert_eq!(owner["outcome"], "false");
    assert_eq!(owner["location"], "policies/keys.yaml:16:1");
    assert_eq!(owner["conditions"][0]["outcome"], "false");
    assert_eq!(owner["conditions"][0]["path"], "resource.owner");

    // The proto's JSON mapping carries `explain` in the request itself.
    let with_explain = req.replacen('{', r#"{"explain": true, "#, 1);
    let out = arbiter(&["eval", "--request", "-"], Some(&with_explain));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["explanation"]["candidates"].is_array(), "{v}");

    // A decision-log line is a request with the decision's fields beside it: `eval` reads it as it is.
    let logged = req.replacen(
        '{',
        r#"{"timestamp": "2026-11-23T12:00:00.5Z", "call_id": "c-1", "decision": "deny", "reason": "denied",
            "policies": ["x"], "revision": "r", "duration_us": 3, "check": 0, "#,
        1,
    );
    let out = arbiter(&["eval", "--request", "-"], Some(&logged));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["decision"], "allow",
        "decided afresh, not copied from the line"
    );
    // Any other unknown field is still an error.
    let typo = req.replacen('{', r#"{"acton": "ReadKey", "#, 1);
    let out = arbiter(&["eval", "--request", "-"], Some(&typo));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("acton"), "{}", text(&out.stderr));

    let out = arbiter(
        &["eval", "--request", "-"],
        Some(
            r#"{"principal": {"id": "carol"}, "action": "ReadKey", "environment": {"source_ip": "999.1.1.1"}}"#,
        ),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("environment.source_ip"),
        "{}",
        text(&out.stderr)
    );

    let out = arbiter(
        &["eval", "--request", "-", "--superuser", "carol"],
        Some(r#"{"principal": {"id": "carol"}, "action": "DeletePolicy"}"#),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["decision"].as_str(), v["reason"].as_str()),
        (Some("allow"), Some("superuser"))
    );
}

#[test]
fn test_runs_suites_and_reports_failures_with_exit_1() {
    let out = arbiter(&["test", "policies/tests/default-pack.test.yaml"], None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    let last = stdout.trim_end().lines().last().unwrap();
    assert!(last.ends_with(" passed, 0 failed"), "{last}");

    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "s.yaml", "kind: TestSuite\nname: wrong on purpose\nnow: \"2026-11-23T12:00:00Z\"\ntests:\n  - name: plain user deletes a policy\n    principal: {id: bob}\n    action: DeletePolicy\n    resource: {uri: \"kylo:kylo:admin:policies:p\"}\n    expect: allow\n  - name: owner deletes key\n    principal: {id: bob}\n    action: DeleteKey\n    resource: {uri: \"kylo:kylo:vault:keys:k\", owner: bob}\n    expect: allow\n    expect_policies: [key-owner-full-access]\n");
    let out = arbiter(
        &[
            "test",
            "--policies",
            "policies",
            dir.path().to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("FAIL  wrong on purpose / plain user deletes a policy"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "      expected allow, got deny\n      got deny, reason no_applicable_policy, policies []\n"
        ),
        "{stdout}"
    );
    // The failing test shows its explanation: here, the attachment that almost applied.
    assert!(
        stdout.contains("      | near miss: allow admin-full-access through attachment admin-full-access-admin-group (policies/admin.yaml:"),
        "{stdout}"
    );
    assert_eq!(stdout.trim_end().lines().last(), Some("1 passed, 1 failed"));

    write(dir.path(), "s.yaml", "kind: TestSuite\nname: bad\ntests:\n  - name: t\n    principal: {id: bob}\n    action: DeleteKey\n    expect: maybe\n");
    let out = arbiter(&["test", dir.path().to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("s.yaml:7:13: error: `expect` must be `allow` or `deny`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn pam360_example_suite_passes() {
    let out = arbiter(
        &[
            "test",
            "--policies",
            "examples/pam360-rpa",
            "examples/pam360-rpa/tests.yaml",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).trim_end().ends_with(" passed, 0 failed"));
}

#[test]
fn usage_errors_exit_2() {
    let out = arbiter(&["frobnicate"], None);
    assert_eq!(out.status.code(), Some(2));
    let out = arbiter(&["check", "/nonexistent/dir"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/dir"));
}

fn git(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
}

#[test]
fn simulate_against_a_git_base_with_exit_codes_and_json() {
    let repo = tempfile::tempdir().unwrap();
    let policies = repo.path().join("policies");
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/policies")).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_file() {
            std::fs::create_dir_all(&policies).unwrap();
            std::fs::copy(entry.path(), policies.join(entry.file_name())).unwrap();
        }
    }
    git(repo.path(), &["init", "-q"]);
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-qm", "base"]);
    let p = policies.to_str().unwrap();

    // Unchanged: safe.
    let out = arbiter(&["simulate", "--base", "HEAD", "--proposed", p], None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("result: safe"));

    // A deny on the admin namespace for everyone: a lockout, exit 1, with a counterexample that `eval` denies.
    write(&policies, "freeze.yaml", "kind: Policy\nid: freeze\neffect: deny\nactions: [\"Delete*\"]\nresources: [\"kylo:kylo:admin:*\"]\n---\nkind: PolicyAttachment\nid: freeze\npolicy: freeze\nprincipal_selector: {}\n");
    let out = arbiter(
        &[
            "simulate",
            "--base",
            "HEAD",
            "--proposed",
            p,
            "--format",
            "json",
            "--as-of",
            "2026-11-23T12:00:00Z",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], true);
    let finding = &report["lockouts"][0];
    assert_eq!(finding["kind"], "lockout");
    assert_eq!(finding["guard"], "admins-keep-policy-control");
    assert_eq!(finding["blocking"], serde_json::json!(["freeze"]));
    let cx = serde_json::to_string(&finding["counterexample"]).unwrap();
    let out = arbiter(&["eval", "--policies", p, "--request", "-"], Some(&cx));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"], "deny", "{cx}");
    assert_eq!(v["policies"], serde_json::json!(["freeze"]));

    // Replaying logged requests lists the decision changes.
    let log = repo.path().join("requests.jsonl");
    std::fs::write(&log, "{\"timestamp\":\"2026-11-23T12:00:00Z\",\"request\":{\"principal\":{\"id\":\"alice\",\"groups\":[\"admin\"]},\"action\":\"DeleteUser\",\"resource\":{\"uri\":\"kylo:kylo:admin:users:bob\"}},\"decision\":\"allow\"}\n{\"principal\":{\"id\":\"alice\",\"groups\":[\"admin\"]},\"action\":\"ReadUser\",\"resource\":{\"uri\":\"kylo:kylo:admin:users:bob\"}}\n\n").unwrap();
    let out = arbiter(
        &[
            "simulate",
            "--base",
            "HEAD",
            "--proposed",
            p,
            "--requests",
            log.to_str().unwrap(),
            "--format",
            "json",
        ],
        None,
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["changes"]["replayed"], 2);
    assert_eq!(report["changes"]["changed"], 1);
    let g = &report["changes"]["groups"][0];
    assert_eq!(
        (
            g["principal"].as_str(),
            g["action"].as_str(),
            g["from"].as_str(),
            g["to"].as_str(),
            g["count"].as_u64()
        ),
        (
            Some("alice"),
            Some("DeleteUser"),
            Some("allow"),
            Some("deny"),
            Some(1)
        )
    );

    // An invalid proposed set: exit 2 with the error's position.
    write(
        &policies,
        "freeze.yaml",
        "kind: Policy\nid: freeze\neffect: deny\nactions: []\n",
    );
    let out = arbiter(&["simulate", "--base", "HEAD", "--proposed", p], None);
    assert_eq!(out.status.code(), Some(2));
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(
        all.contains("freeze.yaml:4:10: error: `actions` must not be empty"),
        "{all}"
    );
}

#[test]
fn the_revision_depends_on_content_not_on_how_the_directory_is_named() {
    let a = arbiter(&["check", "policies"], None);
    let b = arbiter(&["check", "./policies/"], None);
    let rev = |o: &Output| {
        text(&o.stdout)
            .rsplit("revision ")
            .next()
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(rev(&a), rev(&b));
    assert_eq!(rev(&a).len(), 17, "16 hex digits and `)`");
}

fn pack_with(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/policies")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    write(dir.path(), "change.yaml", extra);
    dir
}

const DENY_ADMINS: &str = "kind: Policy\nid: freeze\neffect: deny\nactions: [\"*\"]\nresources: [\"*\"]\nconditions:\n  - path: resource.tier\n    op: equals\n    values: [prod]\n---\nkind: PolicyAttachment\nid: freeze\npolicy: freeze\nprincipal_selector: {groups: [admin]}\n";

#[test]
fn check_runs_the_sets_own_guards_like_serve() {
    let dir = pack_with(DENY_ADMINS);
    let out = arbiter(&["check", dir.path().to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("LOCKOUT guard `admins-keep-policy-control`"),
        "{err}"
    );
    assert!(err.contains("`arbiter serve` would refuse it"), "{err}");
}

#[test]
fn simulate_json_has_every_field_and_counts_by_kind() {
    let dir = pack_with(DENY_ADMINS);
    let out = arbiter(
        &[
            "simulate",
            "--proposed",
            dir.path().to_str().unwrap(),
            "--current",
            "policies",
            "--format",
            "json",
            "--as-of",
            "2026-11-23T12:00:00Z",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["summary"],
        serde_json::json!({"lockouts": 1, "erosion": 0, "inconclusive": 0})
    );
    assert!(
        report["changes"].is_null() && report["current_revision"].is_string(),
        "{report}"
    );
    let f = &report["lockouts"][0];
    for field in [
        "kind",
        "guard",
        "location",
        "message",
        "blocking",
        "reason",
        "undetermined",
        "cells",
        "counterexample",
        "hint",
    ] {
        assert!(f.get(field).is_some(), "missing `{field}` in {f}");
    }
    assert_eq!(f["blocking"], serde_json::json!(["freeze"]));
    assert!(
        f["location"].as_str().unwrap().ends_with("guards.yaml:3:1"),
        "{f}"
    );
    assert_eq!(f["cells"].as_array().unwrap().len(), 17, "{f}");
    // The first counterexample leaves `tier` absent: the deny applied undetermined, and the report says so.
    assert_eq!(
        f["undetermined"],
        serde_json::json!([{"policy": "freeze", "attribute": "resource.tier", "cause": "missing"}])
    );
    assert!(
        f["hint"].as_str().unwrap().contains("--allow-lockout"),
        "{f}"
    );
    // The counterexample reproduces with `arbiter eval`.
    let eval = arbiter(
        &[
            "eval",
            "--policies",
            dir.path().to_str().unwrap(),
            "--request",
            "-",
        ],
        Some(&f["counterexample"].to_string()),
    );
    let decision: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert_eq!(decision["decision"], "deny", "{decision}");
    assert_eq!(decision["policies"], serde_json::json!(["freeze"]));
}

#[test]
fn a_huge_budget_is_a_usage_error_not_a_panic() {
    let out = arbiter(
        &[
            "simulate",
            "--proposed",
            "policies",
            "--budget",
            "99999999999999999999999s",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn the_proto_names_its_go_and_java_packages() {
    use prost::Message;
    let set = prost_types::FileDescriptorSet::decode(arbiter::server::proto::FILE_DESCRIPTOR_SET)
        .unwrap();
    let file = set
        .file
        .iter()
        .find(|f| f.name() == "arbiter/v1/authorizer.proto")
        .expect("the service's file");
    let options = file.options.as_ref().expect("file options");
    assert_eq!(options.go_package(), "arbiter/v1;arbiterv1");
    assert_eq!(options.java_package(), "arbiter.v1");
    assert!(options.java_multiple_files());
}

#[test]
fn the_pre_commit_hook_leaves_no_temporary_directory() {
    let repo = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(repo.path())
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .output()
            .expect("git");
        assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    };
    git(&["init", "-q"]);
    let pack = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
    for entry in std::fs::read_dir(pack).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            write(
                repo.path(),
                &format!("policies/{}", path.file_name().unwrap().to_str().unwrap()),
                &std::fs::read_to_string(&path).unwrap(),
            );
        }
    }
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "pack"]);
    // A staged change that locks the admins out: the hook refuses it, and cleans up after itself.
    write(repo.path(), "policies/freeze.yaml", "kind: Policy\nid: freeze\neffect: deny\nactions: [\"*\"]\nresources: [\"*\"]\n---\nkind: PolicyAttachment\nid: freeze\npolicy: freeze\nprincipal_selector: {groups: [admin]}\n");
    git(&["add", "."]);
    let hook = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/git-hooks/pre-commit");
    let out = Command::new("bash")
        .arg(hook)
        .current_dir(repo.path())
        .env("ARBITER", env!("CARGO_BIN_EXE_arbiter"))
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("LOCKOUT"),
        "{}",
        text(&out.stdout)
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
}

#[test]
fn plan_prints_the_filter_or_a_where_clause() {
    let ask = r#"{"principal": {"id": "carol", "groups": ["hr"]}, "action": "EncryptWithKey",
                  "resource": {"uri": "kylo:kylo:vault:keys:*"}}"#;
    let out = arbiter(&["plan", "--request", "-"], Some(ask));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["kind"], "conditional");
    assert_eq!(
        plan["policies"],
        serde_json::json!(["key-group-usage-grant", "key-owner-full-access"])
    );
    let out = arbiter(&["plan", "--request", "-", "--format", "sql"], Some(ask));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let sql: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sql["exact"], true);
    assert!(
        sql["where"].as_str().unwrap().contains("json_each"),
        "{sql}"
    );
    assert_eq!(sql["params"][0], "kylo:kylo:vault:keys:*", "{sql}");

    // A mapping in the request file is honoured.
    let with_mapping = r#"{"principal": {"id": "carol", "groups": ["hr"]}, "action": "EncryptWithKey",
                           "sql": {"owner": "key_owner", "json": "attrs"}}"#;
    let out = arbiter(&["plan", "--request", "-"], Some(with_mapping));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let clause = plan["sql"]["where"].as_str().unwrap();
    assert!(
        clause.contains("\"key_owner\"") && clause.contains("\"attrs\""),
        "{clause}"
    );

    let out = arbiter(
        &["plan", "--request", "-"],
        Some(r#"{"principal": {"id": "carol"}}"#),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("actions"),
        "{}",
        text(&out.stderr)
    );
    let out = arbiter(
        &[
            "plan",
            "--request",
            "-",
            "--sql-mapping",
            "/nonexistent/mapping.json",
        ],
        Some(ask),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("SQL mapping"),
        "{}",
        text(&out.stderr)
    );
}
