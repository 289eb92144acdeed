//! Lockout simulator cases: each a current/proposed pair with the findings it must (or must not) produce.
//! Every counterexample is re-checked here through `arbiter::evaluate` and must be a DENY.

use std::path::PathBuf;
use std::time::Duration;

use arbiter::eval::{evaluate, EvalOptions};
use arbiter::load::{load_dir, SourceSet};
use arbiter::simulate::{analyze, Finding, FindingKind, LockoutOptions};
use arbiter::{Moment, Request, Snapshot};
use jiff::Timestamp;

fn pack() -> SourceSet {
    load_dir(&PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies"
    )))
    .unwrap()
}

fn build(set: &SourceSet) -> Snapshot {
    arbiter::build(set).unwrap_or_else(|d| panic!("{d}"))
}

/// The default pack plus `extra` files (a file named like a pack file replaces it).
fn proposed(extra: &[(&str, &str)]) -> SourceSet {
    let mut files: Vec<(PathBuf, String)> = pack()
        .files
        .iter()
        .map(|f| (f.path.to_path_buf(), f.text().to_string()))
        .collect();
    for (name, text) in extra {
        let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/policies")).join(name);
        files.retain(|(p, _)| *p != path);
        if !text.is_empty() {
            files.push((path, text.to_string()));
        }
    }
    SourceSet::from_files(files)
}

fn as_of() -> Timestamp {
    "2026-11-23T12:00:00Z".parse().unwrap()
}

fn analyze_change(extra: &[(&str, &str)]) -> Vec<Finding> {
    analyze_checked(&build(&pack()), &build(&proposed(extra)))
}

/// Analyzes `proposed` against `current` and re-checks every counterexample through the evaluator.
fn analyze_checked(current: &Snapshot, proposed: &Snapshot) -> Vec<Finding> {
    analyze_checked_from(current, proposed, as_of().into())
}

/// [`analyze_checked`], time starting at `as_of`.
fn analyze_checked_from(current: &Snapshot, proposed: &Snapshot, as_of: Moment) -> Vec<Finding> {
    let options = LockoutOptions {
        as_of,
        budget: Duration::from_secs(20),
        superuser: Some("admin".into()),
    };
    let findings = analyze(Some(current), proposed, &options).expect("guards valid");
    for f in &findings {
        if let Some(cx) = &f.counterexample {
            let request = Request::from_json(cx.clone()).expect("counterexample is valid input");
            let time = request
                .environment
                .time
                .expect("counterexamples carry their time");
            // As `arbiter eval` decides it: the superuser rule on.
            let d = evaluate(
                proposed,
                &request,
                time,
                &EvalOptions {
                    superuser: Some("admin"),
                    ..EvalOptions::default()
                },
            );
            assert!(!d.allowed, "counterexample is not denied: {cx}");
            let got: Vec<String> = d.policies.iter().map(|p| p.to_string()).collect();
            assert_eq!(got, f.blocking, "blocking policies reproduce");
        }
    }
    findings
}

fn lockouts(f: &[Finding]) -> Vec<&Finding> {
    f.iter()
        .filter(|f| f.kind == FindingKind::Lockout)
        .collect()
}

fn assert_lockout_by(findings: &[Finding], policy: &str) -> serde_json::Value {
    let hit = lockouts(findings)
        .into_iter()
        .find(|f| f.blocking.iter().any(|b| b == policy))
        .unwrap_or_else(|| panic!("no lockout by `{policy}` in {findings:#?}"));
    hit.counterexample.clone().unwrap()
}

fn assert_safe(findings: &[Finding]) {
    assert!(
        findings.is_empty(),
        "expected no finding, got {findings:#?}"
    );
}

const ATTACH_ADMINS: &str = "---\nkind: PolicyAttachment\nid: deny-attach\npolicy: change\nprincipal_selector: {groups: [admin]}\n";

fn deny(conditions: &str, resources: &str) -> String {
    format!(
        "kind: Policy\nid: change\neffect: deny\nactions: [\"*\"]\nresources: {resources}\nconditions:\n{conditions}\n{ATTACH_ADMINS}"
    )
}

#[test]
fn the_default_pack_is_safe() {
    assert_safe(&analyze_change(&[]));
}

#[test]
fn deny_for_admins_at_night_in_paris() {
    let f = analyze_change(&[(
        "night.yaml",
        &deny(
            "  - path: environment.time\n    op: time_of_day\n    values: [\"22:00-06:00\"]\n    zone: Europe/Paris",
            "[\"*\"]",
        ),
    )]);
    let cx = assert_lockout_by(&f, "change");
    let t: Timestamp = cx["environment"]["time"].as_str().unwrap().parse().unwrap();
    let local = t.to_zoned(jiff::tz::TimeZone::get("Europe/Paris").unwrap());
    assert!(local.hour() >= 22 || local.hour() < 6, "{local}");
    assert!(t >= as_of());
}

#[test]
fn deny_from_outside_the_admin_network() {
    let f = analyze_change(&[(
        "net.yaml",
        &deny("  - path: environment.source_ip\n    op: cidr\n    values: [\"10.0.0.0/8\"]\n    negate: true", "[\"*\"]"),
    )]);
    let cx = assert_lockout_by(&f, "change");
    // Outside 10/8, or absent (an undetermined deny applies).
    let ip = cx["environment"]["source_ip"].as_str();
    assert!(ip.is_none_or(|ip| !ip.starts_with("10.")), "{cx}");
}

#[test]
fn assuming_declares_the_admin_network() {
    let guard = "kind: LockoutGuard\nid: admins-keep-policy-control\nprincipal: {id: guard-probe, groups: [admin]}\nassuming:\n  - path: environment.source_ip\n    op: cidr\n    values: [\"10.0.0.0/8\"]\nmust_allow:\n  - actions: [CreatePolicy, ReadPolicy, UpdatePolicy, DeletePolicy]\n    resources: [\"kylo:kylo:admin:policies:*\"]\n  - actions: [CreatePolicyAttachment, ReadPolicyAttachment, DeletePolicyAttachment]\n    resources: [\"kylo:kylo:admin:policy-attachments:*\"]\n  - actions: [CreateUser, ReadUser, UpdateUser, DeleteUser]\n    resources: [\"kylo:kylo:admin:users:*\"]\n  - actions: [CreateGroup, ReadGroup, UpdateGroup, DeleteGroup, AddGroupMember, RemoveGroupMember]\n    resources: [\"kylo:kylo:admin:groups:*\"]\n";
    let d = deny("  - path: environment.source_ip\n    op: cidr\n    values: [\"10.0.0.0/8\"]\n    negate: true", "[\"*\"]");
    // Against a current set that already assumed it: the tightening is declared, so no finding.
    let current = build(&proposed(&[("guards.yaml", guard)]));
    let next = build(&proposed(&[("guards.yaml", guard), ("net.yaml", &d)]));
    let options = LockoutOptions {
        as_of: as_of().into(),
        budget: Duration::from_secs(20),
        superuser: Some("admin".into()),
    };
    assert_safe(&analyze(Some(&current), &next, &options).unwrap());
    // Adding the assumption in the same change is an erosion of the guard.
    let f = analyze_change(&[("guards.yaml", guard), ("net.yaml", &d)]);
    assert!(
        f.iter()
            .any(|f| f.kind == FindingKind::Erosion && f.message.contains("newly assumes")),
        "{f:#?}"
    );
}

#[test]
fn deny_on_a_resource_attribute() {
    let f = analyze_change(&[(
        "attr.yaml",
        &deny(
            "  - path: resource.locked\n    op: is_true",
            "[\"kylo:kylo:admin:*\"]",
        ),
    )]);
    let cx = assert_lockout_by(&f, "change");
    assert!(cx["resource"]["uri"]
        .as_str()
        .unwrap()
        .starts_with("kylo:kylo:admin:"));
}

#[test]
fn a_deny_guarded_by_exists_on_an_attribute_is_still_found() {
    let f = analyze_change(&[(
        "attr.yaml",
        &deny("  - path: resource.tier\n    op: exists\n  - path: resource.tier\n    op: equals\n    values: [prod]", "[\"kylo:kylo:admin:*\"]"),
    )]);
    let cx = assert_lockout_by(&f, "change");
    assert_eq!(cx["resource"]["attributes"]["tier"], "prod");
}

#[test]
fn deleting_the_admin_attachment() {
    let admin = "kind: Policy\nid: admin-full-access\ndescription: x\neffect: allow\nactions: [\"*\"]\nresources: [\"*\"]\n";
    let f = analyze_change(&[("admin.yaml", admin)]);
    let l = lockouts(&f);
    assert!(!l.is_empty(), "{f:#?}");
    assert!(
        l.iter().all(|f| f.blocking.is_empty()),
        "no policy allows it"
    );
    assert!(
        l[0].message.ends_with("is denied: no policy allows it"),
        "{}",
        l[0].message
    );
}

#[test]
fn re_pointing_the_admin_attachment() {
    let admin = "kind: Policy\nid: admin-full-access\neffect: allow\nactions: [\"*\"]\nresources: [\"*\"]\n---\nkind: Policy\nid: read-only\neffect: allow\nactions: [\"Read*\"]\nresources: [\"*\"]\n---\nkind: PolicyAttachment\nid: admin-full-access-admin-group\npolicy: read-only\nprincipal_selector: {groups: [admin]}\n";
    let f = analyze_change(&[("admin.yaml", admin)]);
    let l = lockouts(&f);
    assert!(!l.is_empty(), "{f:#?}");
    let cx = l[0].counterexample.as_ref().unwrap();
    assert!(!cx["action"].as_str().unwrap().starts_with("Read"), "{cx}");
}

#[test]
fn a_selector_that_no_longer_matches() {
    let admin = "kind: Policy\nid: admin-full-access\neffect: allow\nactions: [\"*\"]\nresources: [\"*\"]\n---\nkind: PolicyAttachment\nid: a\npolicy: admin-full-access\nprincipal_selector: {groups: [admins]}\n";
    assert!(!lockouts(&analyze_change(&[("admin.yaml", admin)])).is_empty());
    let by_claim = "kind: Policy\nid: admin-full-access\neffect: allow\nactions: [\"*\"]\nresources: [\"*\"]\n---\nkind: PolicyAttachment\nid: a\npolicy: admin-full-access\nprincipal_selector: {groups: [admin], mfa: true}\n";
    let f = analyze_change(&[("admin.yaml", by_claim)]);
    let cx = lockouts(&f)[0].counterexample.clone().unwrap();
    assert_ne!(
        cx["principal"]["attributes"]["mfa"],
        serde_json::json!(true),
        "{cx}"
    );
}

#[test]
fn a_narrower_action_glob() {
    let admin = "kind: Policy\nid: admin-full-access\neffect: allow\nactions: [\"*Policy\", \"*User\", \"*Group\", \"*Member\"]\nresources: [\"*\"]\n---\nkind: PolicyAttachment\nid: a\npolicy: admin-full-access\nprincipal_selector: {groups: [admin]}\n";
    let f = analyze_change(&[("admin.yaml", admin)]);
    let cx = lockouts(&f)[0].counterexample.clone().unwrap();
    assert!(
        cx["action"].as_str().unwrap().ends_with("PolicyAttachment"),
        "{cx}"
    );
}

#[test]
fn deny_on_the_admin_namespace_and_on_a_sub_glob() {
    let f = analyze_change(&[("ns.yaml", &format!("kind: Policy\nid: change\neffect: deny\nactions: [\"*\"]\nresources: [\"kylo:kylo:admin:*\"]\n{ATTACH_ADMINS}"))]);
    assert_lockout_by(&f, "change");
    let f = analyze_change(&[("ns.yaml", &format!("kind: Policy\nid: change\neffect: deny\nactions: [Delete*]\nresources: [\"kylo:kylo:admin:policies:prod-*\"]\n{ATTACH_ADMINS}"))]);
    let cx = assert_lockout_by(&f, "change");
    assert!(
        cx["resource"]["uri"]
            .as_str()
            .unwrap()
            .starts_with("kylo:kylo:admin:policies:prod-"),
        "{cx}"
    );
    assert_eq!(cx["action"], "DeletePolicy");
}

#[test]
fn a_sunday_only_deny() {
    let f = analyze_change(&[("sun.yaml", &deny("  - path: environment.time\n    op: weekday\n    values: [sun]\n    zone: America/New_York", "[\"*\"]"))]);
    let cx = assert_lockout_by(&f, "change");
    let t: Timestamp = cx["environment"]["time"].as_str().unwrap().parse().unwrap();
    let local = t.to_zoned(jiff::tz::TimeZone::get("America/New_York").unwrap());
    assert_eq!(local.weekday(), jiff::civil::Weekday::Sunday);
}

#[test]
fn a_deny_that_needs_a_built_string_witness() {
    let f = analyze_change(&[("w.yaml", &deny("  - path: principal.email\n    op: exists\n  - path: principal.email\n    op: starts_with\n    values: [adm]\n  - path: principal.email\n    op: ends_with\n    values: [\"@contractor.example\"]", "[\"*\"]"))]);
    let cx = assert_lockout_by(&f, "change");
    let email = cx["principal"]["attributes"]["email"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        email.starts_with("adm") && email.ends_with("@contractor.example"),
        "{cx}"
    );
}

#[test]
fn a_deny_that_needs_two_attributes_equal() {
    let f = analyze_change(&[("eq.yaml", &deny("  - path: resource.created_by\n    op: exists\n  - path: principal.department\n    op: exists\n  - path: resource.created_by\n    op: equals\n    values: [\"${principal.department}\"]", "[\"*\"]"))]);
    let cx = assert_lockout_by(&f, "change");
    assert_eq!(
        cx["resource"]["attributes"]["created_by"], cx["principal"]["attributes"]["department"],
        "{cx}"
    );
}

#[test]
fn safe_changes_have_no_finding() {
    let other_group = "kind: Policy\nid: hr-read\neffect: allow\nactions: [ReadUser]\nresources: [\"kylo:kylo:admin:users:*\"]\n---\nkind: PolicyAttachment\nid: hr-read\npolicy: hr-read\nprincipal_selector: {groups: [hr]}\n---\nkind: Policy\nid: hr-deny\neffect: deny\nactions: [\"*\"]\nresources: [\"kylo:kylo:admin:*\"]\n---\nkind: PolicyAttachment\nid: hr-deny\npolicy: hr-deny\nprincipal_selector: {groups: [contractors]}\n";
    assert_safe(&analyze_change(&[("hr.yaml", other_group)]));
}

#[test]
fn a_deny_wholly_before_as_of_is_not_a_finding() {
    let f = analyze_change(&[(
        "past.yaml",
        &deny(
            "  - path: environment.time\n    op: before\n    values: [\"2026-01-01T00:00:00Z\"]",
            "[\"*\"]",
        ),
    )]);
    assert_safe(&f);
    let f = analyze_change(&[(
        "future.yaml",
        &deny(
            "  - path: environment.time\n    op: after\n    values: [\"2027-01-01T00:00:00Z\"]",
            "[\"*\"]",
        ),
    )]);
    assert_lockout_by(&f, "change");
}

#[test]
fn erosion_findings() {
    let f = analyze_change(&[("guards.yaml", "")]);
    assert!(
        f.iter()
            .any(|f| f.kind == FindingKind::Erosion && f.message.contains("is removed")),
        "{f:#?}"
    );
    let weaker = "kind: LockoutGuard\nid: admins-keep-policy-control\nprincipal: {id: guard-probe, groups: [admin]}\nmust_allow:\n  - actions: [CreatePolicy]\n    resources: [\"kylo:kylo:admin:policies:*\"]\n";
    let f = analyze_change(&[("guards.yaml", weaker)]);
    assert!(
        f.iter().any(|f| f.kind == FindingKind::Erosion
            && f.message.contains("no longer requires `DeletePolicy`")),
        "{f:#?}"
    );
    let demoted = "kind: Group\nname: admin\nsystem: false\nmembers: []\n---\nkind: Group\nname: global\nsystem: true\nmembers: []\n";
    let f = analyze_change(&[("groups.yaml", demoted)]);
    assert!(
        f.iter().any(|f| f
            .message
            .contains("system group `admin` is no longer a system group")),
        "{f:#?}"
    );
    let removed = "kind: Group\nname: global\nsystem: true\nmembers: []\n";
    let f = analyze_change(&[("groups.yaml", removed)]);
    assert!(
        f.iter()
            .any(|f| f.message.contains("system group `admin` is removed")),
        "{f:#?}"
    );
}

#[test]
fn emptying_a_guarded_group() {
    let with_members = "kind: Group\nname: admin\nsystem: true\nmembers: [alice, bob]\n---\nkind: Group\nname: global\nsystem: true\nmembers: []\n";
    let current = build(&proposed(&[("groups.yaml", with_members)]));
    let next = build(&pack());
    let options = LockoutOptions {
        as_of: as_of().into(),
        budget: Duration::from_secs(20),
        superuser: Some("admin".into()),
    };
    let f = analyze(Some(&current), &next, &options).unwrap();
    assert!(
        f.iter()
            .any(|f| f.message.contains("every member of group `admin`")),
        "{f:#?}"
    );
}

#[test]
fn a_guard_on_the_superuser_is_an_error() {
    let g = "kind: LockoutGuard\nid: g\nprincipal: {id: admin}\nmust_allow:\n  - actions: [ReadKey]\n    resources: [\"*\"]\n";
    let s = build(&proposed(&[("g2.yaml", g)]));
    let options = LockoutOptions {
        as_of: as_of().into(),
        budget: Duration::from_secs(5),
        superuser: Some("admin".into()),
    };
    let errors = analyze(None, &s, &options).unwrap_err();
    assert_eq!(errors[0].guard, "g");
}

#[test]
fn a_guard_with_a_different_principal_is_weakened() {
    let moved = "kind: LockoutGuard\nid: admins-keep-policy-control\nprincipal: {id: guard-probe, groups: [global]}\nmust_allow:\n  - actions: [CreatePolicy, ReadPolicy, UpdatePolicy, DeletePolicy]\n    resources: [\"kylo:kylo:admin:policies:*\"]\n  - actions: [CreatePolicyAttachment, ReadPolicyAttachment, DeletePolicyAttachment]\n    resources: [\"kylo:kylo:admin:policy-attachments:*\"]\n  - actions: [CreateUser, ReadUser, UpdateUser, DeleteUser]\n    resources: [\"kylo:kylo:admin:users:*\"]\n  - actions: [CreateGroup, ReadGroup, UpdateGroup, DeleteGroup, AddGroupMember, RemoveGroupMember]\n    resources: [\"kylo:kylo:admin:groups:*\"]\n";
    let f = analyze_change(&[("guards.yaml", moved)]);
    assert!(
        f.iter()
            .any(|f| f.kind == FindingKind::Erosion && f.message.contains("principal changed")),
        "{f:#?}"
    );
    // The current guard still applies to the proposed set, and the proposed guard is checked too: `global`
    // members cannot manage policies, which is a lockout of the proposed guard.
    assert!(f.iter().any(|f| f.kind == FindingKind::Lockout), "{f:#?}");
}

#[test]
fn running_out_of_budget_is_inconclusive_never_safe() {
    let current = build(&pack());
    let next = build(&proposed(&[(
        "night.yaml",
        &deny("  - path: environment.time\n    op: time_of_day\n    values: [\"22:00-06:00\"]\n    zone: Europe/Paris", "[\"*\"]"),
    )]));
    let options = LockoutOptions {
        as_of: as_of().into(),
        budget: Duration::ZERO,
        superuser: Some("admin".into()),
    };
    let f = analyze(Some(&current), &next, &options).unwrap();
    assert!(
        f.iter().any(|f| f.kind == FindingKind::Inconclusive),
        "{f:#?}"
    );
}

#[test]
fn directory_members_of_guarded_groups_are_checked() {
    // alice is an admin through the directory; a deny aimed at her id locks her out.
    let groups = "kind: Group\nname: admin\nsystem: true\nmembers: [alice]\n---\nkind: Group\nname: global\nsystem: true\nmembers: []\n";
    let d = "kind: Policy\nid: change\neffect: deny\nactions: [\"*\"]\nresources: [\"*\"]\n---\nkind: PolicyAttachment\nid: deny-attach\npolicy: change\nprincipal_selector: {id: alice}\n";
    let current = build(&proposed(&[("groups.yaml", groups)]));
    let next = build(&proposed(&[("groups.yaml", groups), ("alice.yaml", d)]));
    let options = LockoutOptions {
        as_of: as_of().into(),
        budget: Duration::from_secs(20),
        superuser: Some("admin".into()),
    };
    let f = analyze(Some(&current), &next, &options).unwrap();
    let cx = assert_lockout_by(&f, "change");
    assert_eq!(cx["principal"]["id"], "alice");
}

#[test]
fn the_superuser_as_a_directory_member_is_not_a_guard_principal() {
    // The superuser is always allowed, so a deny aimed at its id locks no one out: `arbiter eval` would allow.
    let groups = "kind: Group\nname: admin\nsystem: true\nmembers: [admin]\n---\nkind: Group\nname: global\nsystem: true\nmembers: []\n";
    let d = "kind: Policy\nid: change\neffect: deny\nactions: [\"*\"]\nresources: [\"kylo:kylo:admin:*\"]\n---\nkind: PolicyAttachment\nid: deny-attach\npolicy: change\nprincipal_selector: {id: [admin]}\n";
    assert_safe(&analyze_change(&[("groups.yaml", groups), ("su.yaml", d)]));
}

#[test]
fn an_assumption_on_the_uri_with_no_policy_left() {
    // The guard only assumes team resources; with the admin attachment gone nothing allows them.
    let guard = "kind: LockoutGuard\nid: admins-keep-policy-control\nprincipal: {id: guard-probe, groups: [admin]}\nassuming:\n  - path: resource.uri\n    op: glob\n    values: [\"kylo:kylo:admin:*:team-*\"]\nmust_allow:\n  - actions: [CreatePolicy, ReadPolicy, UpdatePolicy, DeletePolicy]\n    resources: [\"kylo:kylo:admin:policies:*\"]\n";
    let admin = "kind: Policy\nid: admin-full-access\neffect: allow\nactions: [\"*\"]\nresources: [\"*\"]\n";
    let current = build(&proposed(&[("guards.yaml", guard)]));
    let next = build(&proposed(&[("guards.yaml", guard), ("admin.yaml", admin)]));
    let f = analyze_checked(&current, &next);
    let l = lockouts(&f);
    assert!(!l.is_empty(), "{f:#?}");
    let cx = l[0].counterexample.as_ref().unwrap();
    let uri = cx["resource"]["uri"].as_str().unwrap();
    assert!(uri.starts_with("kylo:kylo:admin:policies:team-"), "{cx}");
    assert!(l[0].blocking.is_empty(), "no policy allows it");
}

#[test]
fn a_uri_literal_with_a_star_is_a_witness_verbatim() {
    // `equals` compares exactly: the deny bites on the resource literally named `…:policies:*`.
    let f = analyze_change(&[(
        "star.yaml",
        &deny(
            "  - path: resource.uri\n    op: equals\n    values: [\"kylo:kylo:admin:policies:*\"]",
            "[\"kylo:kylo:admin:*\"]",
        ),
    )]);
    let cx = assert_lockout_by(&f, "change");
    assert_eq!(cx["resource"]["uri"], "kylo:kylo:admin:policies:*", "{cx}");
}

#[test]
fn a_reference_compared_with_the_uri_is_witnessed() {
    // "No self-delete": the equal arrangement of the URI and the pinned principal id is a lockout.
    let no_self_delete = "kind: Policy\nid: no-self-delete\neffect: deny\nactions: [DeleteUser]\nresources: [\"kylo:kylo:admin:users:*\"]\nconditions:\n  - path: resource.uri\n    op: ends_with\n    values: [\"${principal.id}\"]\n---\nkind: PolicyAttachment\nid: no-self-delete\npolicy: no-self-delete\nprincipal_selector: {}\n";
    let f = analyze_change(&[("self.yaml", no_self_delete)]);
    let cx = assert_lockout_by(&f, "no-self-delete");
    let id = cx["principal"]["id"].as_str().unwrap();
    assert!(
        cx["resource"]["uri"].as_str().unwrap().ends_with(id),
        "{cx}"
    );
    assert_eq!(cx["action"], "DeleteUser");
    // A reference to the action, compared with the URI.
    let f = analyze_change(&[(
        "act.yaml",
        &deny(
            "  - path: resource.uri\n    op: ends_with\n    values: [\"${action}\"]",
            "[\"kylo:kylo:admin:*\"]",
        ),
    )]);
    let cx = assert_lockout_by(&f, "change");
    let action = cx["action"].as_str().unwrap();
    assert!(
        cx["resource"]["uri"].as_str().unwrap().ends_with(action),
        "{cx}"
    );
    // The pinned id on the left, the URI referenced: only a guarded principal whose id is a URI matches.
    let members = "kind: Group\nname: admin\nsystem: true\nmembers: [\"kylo:kylo:admin:users:root\"]\n---\nkind: Group\nname: global\nsystem: true\nmembers: []\n";
    let f = analyze_change(&[
        ("groups.yaml", members),
        (
            "id.yaml",
            &deny(
                "  - path: principal.id\n    op: equals\n    values: [\"${resource.uri}\"]",
                "[\"kylo:kylo:admin:*\"]",
            ),
        ),
    ]);
    let cx = assert_lockout_by(&f, "change");
    assert_eq!(cx["resource"]["uri"], "kylo:kylo:admin:users:root", "{cx}");
}

#[test]
fn an_incomplete_witness_search_is_inconclusive_never_safe() {
    // Seven globs that must all match `resource.owner`: the shortest such owner lies beyond the witness search's
    // state budget, so the search cannot cover every combination and must say so.
    let guard = "kind: LockoutGuard\nid: g\nprincipal: {id: probe, groups: [admin]}\nmust_allow:\n  - actions: [DeletePolicy]\n    resources: [\"kylo:kylo:admin:policies:*\"]\n";
    let mut conditions = String::from("  - path: resource.owner\n    op: exists");
    for g in [
        "abcdefgh", "ijklmnop", "qrstuvwx", "yzABCDEF", "GHIJKLMN", "OPQRSTUV", "WXYZ0123",
    ] {
        conditions += &format!("\n  - path: resource.owner\n    op: glob\n    values: [\"*{g}*\"]");
    }
    let current = build(&proposed(&[("guards.yaml", guard)]));
    let next = build(&proposed(&[
        ("guards.yaml", guard),
        ("owner.yaml", &deny(&conditions, "[\"kylo:kylo:admin:*\"]")),
    ]));
    let f = analyze_checked(&current, &next);
    assert!(!f.is_empty(), "never safe");
    assert!(
        f.iter()
            .all(|f| f.kind == FindingKind::Inconclusive || f.kind == FindingKind::Lockout),
        "{f:#?}"
    );
}

fn cx_time(cx: &serde_json::Value) -> Timestamp {
    cx["environment"]["time"].as_str().unwrap().parse().unwrap()
}

/// A counterexample's time, also in the last hours of year 9999.
fn cx_moment(cx: &serde_json::Value) -> Moment {
    cx["environment"]["time"].as_str().unwrap().parse().unwrap()
}

/// The time of the lockout that a deny for admins on every resource, with `conditions`, causes when time starts
/// at `as_of`.
fn lockout_time_from(conditions: &str, as_of: &str) -> Moment {
    let deny = deny(conditions, "[\"*\"]");
    let f = analyze_checked_from(
        &build(&pack()),
        &build(&proposed(&[("d.yaml", &deny)])),
        as_of.parse().unwrap(),
    );
    cx_moment(&assert_lockout_by(&f, "change"))
}

/// The last hours of year 9999 are past the time library's own timestamps (`9999-12-30T22:00:00.999999999Z`,
/// a Friday 07:00 in Tokyo): a deny that only applies on Saturday in Tokyo is found there.
#[test]
fn the_last_hours_of_year_9999_are_searched() {
    let t = lockout_time_from(
        "  - path: environment.time\n    op: after\n    values: [\"9999-12-31T00:00:00Z\"]\n  - path: environment.time\n    op: weekday\n    values: [sat]\n    zone: Asia/Tokyo",
        "9999-12-30T00:00:00Z",
    );
    assert!(t >= "9999-12-31T15:00:00Z".parse().unwrap(), "{t}");
}

/// A cut at a fraction of a second bounds a piece of time of its own: between the whole second before it and
/// the cut, it is already Saturday.
#[test]
fn the_piece_before_a_fractional_cut_is_searched() {
    let t = lockout_time_from(
        "  - path: environment.time\n    op: before\n    values: [\"2027-01-02T00:00:00.5Z\"]\n  - path: environment.time\n    op: weekday\n    values: [sat]",
        "2027-01-01T12:00:00Z",
    );
    assert!(t >= "2027-01-02T00:00:00Z".parse().unwrap(), "{t}");
    assert!(t < "2027-01-02T00:00:00.5Z".parse().unwrap(), "{t}");
}

#[test]
fn time_conditions_are_combined_across_the_whole_future() {
    let after =
        "  - path: environment.time\n    op: after\n    values: [\"2027-01-01T00:00:00Z\"]\n";
    let cutoff: Timestamp = "2027-01-01T00:00:00Z".parse().unwrap();
    // A weekend deny that only starts next year.
    let f = analyze_change(&[(
        "t.yaml",
        &deny(
            &format!("{after}  - path: environment.time\n    op: weekday\n    values: [sat, sun]"),
            "[\"kylo:kylo:admin:*\"]",
        ),
    )]);
    let t = cx_time(&assert_lockout_by(&f, "change"));
    assert!(t > cutoff, "{t}");
    assert!(matches!(
        t.to_zoned(jiff::tz::TimeZone::UTC).weekday(),
        jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
    ));
    // A lunchtime deny that only starts next year.
    let f = analyze_change(&[(
        "t.yaml",
        &deny(
            &format!("{after}  - path: environment.time\n    op: time_of_day\n    values: [\"12:00-13:00\"]"),
            "[\"kylo:kylo:admin:*\"]",
        ),
    )]);
    let t = cx_time(&assert_lockout_by(&f, "change"));
    assert!(
        t > cutoff && t.to_zoned(jiff::tz::TimeZone::UTC).hour() == 12,
        "{t}"
    );
    // Two windows in two zones that overlap only under summer time (as_of is in winter).
    let f = analyze_change(&[(
        "t.yaml",
        &deny(
            "  - path: environment.time\n    op: time_of_day\n    values: [\"07:00-08:00\"]\n    zone: Europe/Paris\n  - path: environment.time\n    op: time_of_day\n    values: [\"05:15-05:30\"]",
            "[\"kylo:kylo:admin:*\"]",
        ),
    )]);
    let t = cx_time(&assert_lockout_by(&f, "change"));
    let utc = t.to_zoned(jiff::tz::TimeZone::UTC);
    assert!(utc.hour() == 5 && (15..30).contains(&utc.minute()), "{t}");
    // Two admin allows that leave a gap: before an instant, and a daily window straddling it.
    let admin = "kind: Policy\nid: admin-full-access\neffect: allow\nactions: [\"*\"]\nresources: [\"*\"]\nconditions:\n  - path: environment.time\n    op: before\n    values: [\"2030-01-01T02:30:00Z\"]\n---\nkind: PolicyAttachment\nid: admin-full-access-admin-group\npolicy: admin-full-access\nprincipal_selector: {groups: [admin]}\n---\nkind: Policy\nid: admin-maintenance\neffect: allow\nactions: [\"*\"]\nresources: [\"*\"]\nconditions:\n  - path: environment.time\n    op: time_of_day\n    values: [\"02:00-03:00\"]\n---\nkind: PolicyAttachment\nid: admin-maintenance\npolicy: admin-maintenance\nprincipal_selector: {groups: [admin]}\n";
    let f = analyze_change(&[("admin.yaml", admin)]);
    let l = lockouts(&f);
    assert!(!l.is_empty(), "{f:#?}");
    assert!(l[0].blocking.is_empty(), "no policy allows it");
    let t = cx_time(l[0].counterexample.as_ref().unwrap());
    assert!(t >= "2030-01-01T02:30:00Z".parse().unwrap(), "{t}");
}

#[cfg(unix)]
#[test]
fn a_base_revision_follows_symlinked_files_like_the_directory_loader() {
    use std::os::unix::fs::symlink;
    use std::process::Command;
    let repo = tempfile::tempdir().unwrap();
    let root = repo.path();
    let dir = root.join("policies");
    std::fs::create_dir_all(root.join("shared")).unwrap();
    std::fs::create_dir_all(dir.join("..2026_11_22_00_00_00.1")).unwrap();
    for f in &pack().files {
        let name = f.path.file_name().unwrap().to_str().unwrap();
        match name {
            // The guard lives outside the directory, linked in.
            "guards.yaml" => {
                std::fs::write(root.join("shared/guards.yaml"), f.text()).unwrap();
                symlink("../shared/guards.yaml", dir.join("guards.yaml")).unwrap();
            }
            // Kubernetes ConfigMap layout: `keys.yaml -> ..data/keys.yaml`, `..data -> ..2026_…`.
            "keys.yaml" => {
                std::fs::write(dir.join("..2026_11_22_00_00_00.1/keys.yaml"), f.text()).unwrap();
                symlink("..data/keys.yaml", dir.join("keys.yaml")).unwrap();
            }
            _ => std::fs::write(dir.join(name), f.text()).unwrap(),
        }
    }
    symlink("..2026_11_22_00_00_00.1", dir.join("..data")).unwrap();
    // A second name for a file already loaded is read once.
    symlink("admin.yaml", dir.join("z-admin-again.yaml")).unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(root)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "pack"]);
    let from_dir = load_dir(&dir).unwrap();
    let from_git = arbiter::cli::git_base::load_revision(&dir, "HEAD").unwrap();
    assert_eq!(from_git.files.len(), from_dir.files.len());
    assert_eq!(from_git.revision(), from_dir.revision());
    // So removing the linked guard is seen as erosion against `--base HEAD`.
    let current = build(&from_git);
    let next = build(&proposed(&[("guards.yaml", "")]));
    let f = analyze_checked(&current, &next);
    assert!(
        f.iter()
            .any(|f| f.kind == FindingKind::Erosion && f.message.contains("is removed")),
        "{f:#?}"
    );
}

// Regression cases for each class of miss of the hand-picked witness lists (each was answered "safe").

/// The default pack's first guard rule, with `assuming:` conditions (so type faults can be ruled out).
fn guard_assuming(conditions: &str) -> String {
    format!("kind: LockoutGuard\nid: admins-keep-policy-control\nprincipal: {{id: guard-probe, groups: [admin]}}\nmust_allow:\n  - actions: [CreatePolicy, ReadPolicy, UpdatePolicy, DeletePolicy]\n    resources: [\"kylo:kylo:admin:policies:*\"]\nassuming:\n{conditions}\n")
}

fn analyze_with_guard(guard: &str, change: &str) -> Vec<Finding> {
    let current = build(&proposed(&[("guards.yaml", guard)]));
    analyze_checked(
        &current,
        &build(&proposed(&[
            ("guards.yaml", guard),
            ("change.yaml", change),
        ])),
    )
}

fn star_guard() -> &'static str {
    "kind: LockoutGuard\nid: admins-keep-everything\nprincipal: {id: probe, groups: [admin]}\nmust_allow: [{actions: [\"*\"], resources: [\"*\"]}]\n"
}

#[test]
fn star_patterns_everywhere_still_have_witnesses() {
    let deny_all = "kind: Policy\nid: change\neffect: deny\nactions: [\"*\"]\nresources: [\"*\"]\n---\nkind: PolicyAttachment\nid: deny-attach\npolicy: change\nprincipal_selector: {}\n";
    let f = analyze_change(&[("star.yaml", &format!("{}---\n{deny_all}", star_guard()))]);
    assert_lockout_by(&f, "change");
    // An attribute whose only constraint is `glob "*"`.
    let f = analyze_change(&[(
        "glob.yaml",
        &deny(
            "  - path: resource.tag\n    op: glob\n    values: [\"*\"]",
            "[\"*\"]",
        ),
    )]);
    assert_lockout_by(&f, "change");
}

#[test]
fn equality_literals_on_typed_values_are_witnesses() {
    let f = analyze_change(&[(
        "ip.yaml",
        &deny(
            "  - path: environment.source_ip\n    op: exists\n  - path: environment.source_ip\n    op: equals\n    values: [\"10.1.2.3\"]",
            "[\"*\"]",
        ),
    )]);
    let cx = assert_lockout_by(&f, "change");
    assert_eq!(cx["environment"]["source_ip"], "10.1.2.3");
    let f = analyze_change(&[(
        "t.yaml",
        &deny(
            "  - path: environment.time\n    op: equals\n    values: [\"2027-03-04T05:06:07.5Z\"]",
            "[\"*\"]",
        ),
    )]);
    let cx = assert_lockout_by(&f, "change");
    assert_eq!(
        cx_time(&cx),
        "2027-03-04T05:06:07.5Z".parse::<Timestamp>().unwrap()
    );
}

#[test]
fn narrow_numeric_gaps_are_found() {
    let f = analyze_change(&[(
        "n.yaml",
        &deny(
            "  - path: resource.n\n    op: gt\n    values: [10]\n  - path: resource.n\n    op: lt\n    values: [10.2]",
            "[\"*\"]",
        ),
    )]);
    let cx = assert_lockout_by(&f, "change");
    let n = cx["resource"]["attributes"]["n"].as_f64();
    // Absent `n` leaves the deny undetermined, which applies too; any witness must sit in the gap or be absent.
    assert!(n.is_none_or(|n| n > 10.0 && n < 10.2), "{cx}");
    let f = analyze_change(&[(
        "port.yaml",
        &deny(
            "  - path: environment.port\n    op: exists\n  - path: environment.port\n    op: gt\n    values: [100.2]\n  - path: environment.port\n    op: lt\n    values: [101.7]",
            "[\"*\"]",
        ),
    )]);
    let cx = assert_lockout_by(&f, "change");
    assert_eq!(cx["environment"]["port"], 101);
}

#[test]
fn an_instant_gap_of_one_second_is_found() {
    let f = analyze_change(&[(
        "gap.yaml",
        &deny(
            "  - path: environment.time\n    op: after\n    values: [\"2027-01-01T00:00:00Z\"]\n  - path: environment.time\n    op: before\n    values: [\"2027-01-01T00:00:01Z\"]",
            "[\"*\"]",
        ),
    )]);
    let cx = assert_lockout_by(&f, "change");
    let t = cx_time(&cx);
    assert!(
        t > "2027-01-01T00:00:00Z".parse().unwrap() && t < "2027-01-01T00:00:01Z".parse().unwrap()
    );
}

#[test]
fn time_operators_on_a_resource_instant_are_partitioned() {
    // Assumed a real instant, so only the window and the weekday can make the deny apply.
    let guard = guard_assuming(
        "  - path: resource.created\n    op: after\n    values: [\"1970-01-01T00:00:00Z\"]",
    );
    let f = analyze_with_guard(
        &guard,
        &deny(
            "  - path: resource.created\n    op: time_of_day\n    values: [\"03:00-03:30\"]\n    zone: Asia/Kolkata\n  - path: resource.created\n    op: weekday\n    values: [sun]\n    zone: Asia/Kolkata",
            "[\"*\"]",
        ),
    );
    let cx = assert_lockout_by(&f, "change");
    let t: Timestamp = cx["resource"]["attributes"]["created"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let local = t.to_zoned(jiff::tz::TimeZone::get("Asia/Kolkata").unwrap());
    assert_eq!(local.weekday(), jiff::civil::Weekday::Sunday, "{local}");
    assert!(local.hour() == 3 && local.minute() < 30, "{local}");
}

#[test]
fn offset_combinations_far_ahead_are_covered() {
    // Denied only at 23:30-00:00 Cairo time while it is 23:30-00:00 in Paris too: the two zones share an offset
    // only in some years' autumn weeks (Cairo leaves summer time before Paris does), and never in 2026.
    let f = analyze_change(&[(
        "tz.yaml",
        &deny(
            "  - path: environment.time\n    op: time_of_day\n    values: [\"23:30-23:59\"]\n    zone: Africa/Cairo\n  - path: environment.time\n    op: time_of_day\n    values: [\"23:30-23:59\"]\n    zone: Europe/Paris",
            "[\"*\"]",
        ),
    )]);
    let cx = assert_lockout_by(&f, "change");
    let t = cx_time(&cx);
    for zone in ["Africa/Cairo", "Europe/Paris"] {
        let local = t.to_zoned(jiff::tz::TimeZone::get(zone).unwrap());
        assert!(
            local.hour() == 23 && local.minute() >= 30,
            "{zone}: {local}"
        );
    }
}

#[test]
fn list_membership_with_many_literals_is_exhaustive() {
    // Assumed a list holding `a`, so the deny applies only when it holds: every one of six values present.
    let guard = guard_assuming("  - path: principal.tags\n    op: contains_all\n    values: [a]");
    let f = analyze_with_guard(
        &guard,
        &deny(
            "  - path: principal.tags\n    op: contains_all\n    values: [a, b, c, d, e, f]",
            "[\"*\"]",
        ),
    );
    let cx = assert_lockout_by(&f, "change");
    let tags = cx["principal"]["attributes"]["tags"].as_array().unwrap();
    for t in ["a", "b", "c", "d", "e", "f"] {
        assert!(tags.contains(&serde_json::json!(t)), "{cx}");
    }
}

#[test]
fn a_list_claim_meeting_a_selector_and_a_condition_at_once() {
    let policy = "kind: Policy\nid: change\neffect: deny\nactions: [\"*\"]\nresources: [\"*\"]\nconditions:\n  - path: principal.team\n    op: exists\n  - path: principal.team\n    op: equals\n    values: [blue]\n---\nkind: PolicyAttachment\nid: deny-attach\npolicy: change\nprincipal_selector: {team: [red]}\n";
    let f = analyze_change(&[("team.yaml", policy)]);
    let cx = assert_lockout_by(&f, "change");
    let team = &cx["principal"]["attributes"]["team"];
    assert!(
        team.as_array()
            .is_some_and(|t| t.contains(&"red".into()) && t.contains(&"blue".into())),
        "{cx}"
    );
}

#[test]
fn relation_chains_are_partitioned_together() {
    // Assumed strings (or lists of them), so no type fault can make the deny apply: only a = b = c = zeta.
    let strings = ["a", "b", "c"]
        .map(|k| format!("  - path: resource.{k}\n    op: glob\n    values: [\"*\"]"))
        .join("\n");
    let f = analyze_with_guard(
        &guard_assuming(&strings),
        &deny(
            "  - path: resource.a\n    op: equals\n    values: [\"${resource.b}\"]\n  - path: resource.b\n    op: equals\n    values: [\"${resource.c}\"]\n  - path: resource.c\n    op: equals\n    values: [zeta]",
            "[\"*\"]",
        ),
    );
    let cx = assert_lockout_by(&f, "change");
    // The deny held (nothing undetermined): the three values are linked through `zeta`, as strings or lists.
    let l = lockouts(&f);
    assert!(l.iter().all(|f| f.undetermined.is_empty()), "{f:#?}");
    let c = &cx["resource"]["attributes"]["c"];
    assert!(
        c == "zeta" || c.as_array().is_some_and(|l| l.contains(&"zeta".into())),
        "{cx}"
    );
}

#[test]
fn a_request_with_no_uri_is_guarded_by_star() {
    // Admins keep `*` only on URIs under `kylo:`; a request with no URI is matched as the empty string.
    let admin = "kind: Policy\nid: admin-full-access\ndescription: x\neffect: allow\nactions: [\"*\"]\nresources: [\"kylo:*\"]\n---\nkind: PolicyAttachment\nid: admin-full-access-admin-group\npolicy: admin-full-access\nprincipal_selector: {groups: [admin]}\n";
    let f = analyze_change(&[("admin.yaml", admin), ("star.yaml", star_guard())]);
    let l = lockouts(&f);
    assert!(
        l.iter()
            .any(|f| f.cells.iter().any(|c| c.resource.is_none())),
        "{f:#?}"
    );
}

#[test]
fn reordered_assumptions_are_not_erosion() {
    let guard = |windows: &str| {
        format!("kind: LockoutGuard\nid: admins-keep-policy-control\nprincipal: {{id: guard-probe, groups: [admin]}}\nmust_allow:\n  - actions: [CreatePolicy, ReadPolicy, UpdatePolicy, DeletePolicy]\n    resources: [\"kylo:kylo:admin:policies:*\"]\nassuming:\n  - path: environment.time\n    op: time_of_day\n    values: {windows}\n")
    };
    let current = build(&proposed(&[(
        "guards.yaml",
        &guard("[\"08:00-12:00\", \"13:00-18:00\"]"),
    )]));
    let reordered = build(&proposed(&[(
        "guards.yaml",
        &guard("[\"13:00-18:00\", \"08:00-12:00\"]"),
    )]));
    assert_safe(&analyze_checked(&current, &reordered));
}

#[test]
fn every_blocked_cell_is_reported_with_the_guard_location() {
    let f = analyze_change(&[(
        "all.yaml",
        &deny(
            "  - path: action\n    op: glob\n    values: [\"*\"]",
            "[\"kylo:kylo:admin:*\"]",
        ),
    )]);
    let l = lockouts(&f);
    assert_eq!(
        l.len(),
        1,
        "one finding per set of blocking policies: {f:#?}"
    );
    // 17 actions in the default guard, each on its own resource pattern.
    assert_eq!(l[0].cells.len(), 17, "{:#?}", l[0].cells);
    assert!(
        l[0].location
            .as_deref()
            .is_some_and(|at| at.ends_with("guards.yaml:3:1")),
        "{:?}",
        l[0].location
    );
    assert!(l[0]
        .hint
        .as_deref()
        .is_some_and(|h| h.contains("--allow-lockout")));
}

#[test]
fn an_undetermined_deny_names_the_missing_attribute() {
    let f = analyze_change(&[(
        "u.yaml",
        &deny(
            "  - path: resource.tier\n    op: equals\n    values: [prod]",
            "[\"*\"]",
        ),
    )]);
    let l = lockouts(&f);
    let undetermined = l.iter().flat_map(|f| &f.undetermined).collect::<Vec<_>>();
    assert!(
        undetermined.iter().any(|u| u.attribute == "resource.tier"
            && u.cause == "missing"
            && u.policy == "change"),
        "{f:#?}"
    );
    assert!(
        l.iter().any(|f| f.message.contains("undetermined")),
        "{f:#?}"
    );
}

// Cases from a review of the partition: each answered "safe" while `arbiter eval` denies a guarded request.

/// The default pack with `files` added or replaced (an empty text removes a file), analysed against itself.
fn analyze_set(files: &[(&str, &str)]) -> Vec<Finding> {
    let set = build(&proposed(files));
    analyze_checked(&set, &set)
}

fn assert_not_safe(f: &[Finding]) {
    assert!(
        f.iter()
            .any(|f| matches!(f.kind, FindingKind::Lockout | FindingKind::Inconclusive)),
        "expected a lockout or an inconclusive search, got {f:#?}"
    );
}

#[test]
fn literals_of_two_variable_predicates_shape_linked_values() {
    let policy = "kind: Policy\nid: admin-full-access\ndescription: x\neffect: allow\nactions: [\"*\"]\nresources: [\"kylo:kylo:admin:policies:*\"]\nconditions:\n  - path: resource.approver\n    op: equals\n    values: [\"nobody\", \"${resource.requester}\"]\n    negate: true\n---\nkind: PolicyAttachment\nid: admin-full-access-admin-group\npolicy: admin-full-access\nprincipal_selector: {groups: [admin]}\n";
    let guard = "kind: LockoutGuard\nid: admins-keep-policy-control\nprincipal: {id: guard-probe, groups: [admin]}\nassuming:\n  - {path: resource.approver, op: equals, values: [\"${resource.requester}\"], negate: true}\nmust_allow:\n  - actions: [UpdatePolicy]\n    resources: [\"kylo:kylo:admin:policies:*\"]\n";
    let f = analyze_set(&[("admin.yaml", policy), ("guards.yaml", guard)]);
    let l = lockouts(&f);
    assert!(!l.is_empty(), "{f:#?}");
    assert_eq!(
        l[0].counterexample.as_ref().unwrap()["resource"]["attributes"]["approver"],
        "nobody"
    );
}

#[test]
fn text_conditions_reach_the_uri_through_a_linked_attribute() {
    // Equal to the URI: exact.
    let equal = "kind: Policy\nid: change\neffect: deny\nactions: [\"*\"]\nresources: [\"*\"]\nconditions:\n  - {path: resource.owner, op: exists}\n  - {path: resource.owner, op: equals, values: [\"${resource.uri}\"]}\n  - {path: resource.owner, op: glob, values: [\"*:prod-*\"]}\n---\nkind: PolicyAttachment\nid: change\npolicy: change\nprincipal_selector: {}\n";
    let f = analyze_set(&[("change.yaml", equal)]);
    let cx = assert_lockout_by(&f, "change");
    assert!(
        cx["resource"]["uri"].as_str().unwrap().contains(":prod-"),
        "{cx}"
    );
    // A prefix of the URI with text conditions of its own: never called safe.
    let prefix = "kind: Policy\nid: change\neffect: deny\nactions: [\"*\"]\nresources: [\"*\"]\nconditions:\n  - {path: resource.owner, op: exists}\n  - {path: resource.uri, op: starts_with, values: [\"${resource.owner}\"]}\n  - {path: resource.owner, op: glob, values: [\"*:prod-*\"]}\n---\nkind: PolicyAttachment\nid: change\npolicy: change\nprincipal_selector: {}\n";
    assert_not_safe(&analyze_set(&[("change.yaml", prefix)]));
    // The action, through the owner (a string, never a list).
    let action = "kind: Policy\nid: change\neffect: deny\nactions: [\"*\"]\nresources: [\"*\"]\nconditions:\n  - {path: resource.owner, op: exists}\n  - {path: resource.owner, op: equals, values: [\"${action}\"]}\n  - {path: resource.owner, op: equals, values: [DeletePolicy]}\n---\nkind: PolicyAttachment\nid: change\npolicy: change\nprincipal_selector: {}\n";
    let guard = "kind: LockoutGuard\nid: admins-keep-policy-control\nprincipal: {id: guard-probe, groups: [admin]}\nmust_allow:\n  - actions: [\"*Policy\"]\n    resources: [\"kylo:kylo:admin:policies:*\"]\n";
    let cx = assert_lockout_by(
        &analyze_set(&[("change.yaml", action), ("guards.yaml", guard)]),
        "change",
    );
    assert_eq!(cx["action"], "DeletePolicy");
}

#[test]
fn claim_segments_split_action_cells() {
    let policy = "kind: Policy\nid: admin-full-access\ndescription: x\neffect: allow\nactions: [\"*\"]\nresources: [\"kylo:kylo:vault:keys:*\"]\nconditions:\n  - {path: \"principal.perms.${action}\", op: equals, values: [\"yes\"]}\n---\nkind: PolicyAttachment\nid: admin-full-access-admin-group\npolicy: admin-full-access\nprincipal_selector:\n  groups: [admin]\n  perms.CreateKey: [\"yes\"]\n";
    let guard = "kind: LockoutGuard\nid: admins-keep-policy-control\nprincipal: {id: guard-probe, groups: [admin]}\nassuming:\n  - {path: \"principal.perms.${action}\", op: equals, values: [\"yes\"]}\nmust_allow:\n  - actions: [\"*Key\"]\n    resources: [\"kylo:kylo:vault:keys:*\"]\n";
    let f = analyze_set(&[("admin.yaml", policy), ("guards.yaml", guard)]);
    let l = lockouts(&f);
    assert!(
        l.iter()
            .any(|f| f.cells.iter().any(|c| c.action != "CreateKey")),
        "{f:#?}"
    );
}

#[test]
fn an_instant_attribute_after_the_time_of_the_call() {
    let policy = "kind: Policy\nid: change\neffect: deny\nactions: [\"*\"]\nresources: [\"*\"]\nconditions:\n  - {path: resource.locked_until, op: after, values: [\"${environment.time}\"]}\n---\nkind: PolicyAttachment\nid: change\npolicy: change\nprincipal_selector: {}\n";
    let guard = "kind: LockoutGuard\nid: admins-keep-policy-control\nprincipal: {id: guard-probe, groups: [admin]}\nassuming:\n  - {path: resource.locked_until, op: before, values: [\"2100-01-01T00:00:00Z\"]}\nmust_allow:\n  - actions: [CreatePolicy]\n    resources: [\"kylo:kylo:admin:policies:*\"]\n";
    let f = analyze_set(&[("change.yaml", policy), ("guards.yaml", guard)]);
    let cx = assert_lockout_by(&f, "change");
    let until: Timestamp = cx["resource"]["attributes"]["locked_until"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(until > cx_time(&cx), "{cx}");
}

#[test]
fn a_port_equal_to_an_attribute_under_a_literal_past_the_range() {
    let policy = "kind: Policy\nid: change\neffect: deny\nactions: [\"*\"]\nresources: [\"*\"]\nconditions:\n  - {path: environment.port, op: equals, values: [\"${resource.blocked_port}\"]}\n---\nkind: PolicyAttachment\nid: change\npolicy: change\nprincipal_selector: {}\n";
    let guard = "kind: LockoutGuard\nid: admins-keep-policy-control\nprincipal: {id: guard-probe, groups: [admin]}\nassuming:\n  - {path: environment.port, op: exists}\n  - {path: resource.blocked_port, op: lt, values: [65536]}\nmust_allow:\n  - actions: [CreatePolicy]\n    resources: [\"kylo:kylo:admin:policies:*\"]\n";
    let f = analyze_set(&[("change.yaml", policy), ("guards.yaml", guard)]);
    let cx = assert_lockout_by(&f, "change");
    assert_eq!(
        cx["environment"]["port"], cx["resource"]["attributes"]["blocked_port"],
        "{cx}"
    );
}

#[test]
fn the_last_ipv6_address_is_a_cell() {
    let f = analyze_change(&[(
        "ip.yaml",
        &deny(
            "  - path: environment.source_ip\n    op: exists\n  - path: environment.source_ip\n    op: cidr\n    values: [\"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128\"]",
            "[\"*\"]",
        ),
    )]);
    let cx = assert_lockout_by(&f, "change");
    assert_eq!(
        cx["environment"]["source_ip"],
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    );
}

// Cases from a second review.

fn star_actions_guard() -> &'static str {
    "kind: LockoutGuard\nid: admins-keep-policy-control\nprincipal: {id: guard-probe, groups: [admin]}\nmust_allow:\n  - actions: [\"*\"]\n    resources: [\"kylo:kylo:admin:policies:*\"]\n"
}

#[test]
fn the_action_linked_through_the_owner_to_the_principal_id() {
    let policy = "kind: Policy\nid: change\neffect: deny\nactions: [\"*\"]\nresources: [\"kylo:kylo:admin:policies:*\"]\nconditions:\n  - {path: resource.owner, op: exists}\n  - {path: action, op: equals, values: [\"${resource.owner}\"]}\n  - {path: resource.owner, op: equals, values: [\"${principal.id}\"]}\n---\nkind: PolicyAttachment\nid: change\npolicy: change\nprincipal_selector: {}\n";
    let f = analyze_set(&[
        ("change.yaml", policy),
        ("guards.yaml", star_actions_guard()),
    ]);
    let cx = assert_lockout_by(&f, "change");
    assert_eq!(cx["action"], "guard-probe", "{cx}");
    // Linked to a field whose values are not enumerated (the source IP): never called safe.
    let ip = "kind: Policy\nid: change\neffect: deny\nactions: [\"*\"]\nresources: [\"kylo:kylo:admin:policies:*\"]\nconditions:\n  - {path: resource.owner, op: exists}\n  - {path: environment.source_ip, op: exists}\n  - {path: action, op: equals, values: [\"${resource.owner}\"]}\n  - {path: resource.owner, op: equals, values: [\"${environment.source_ip}\"]}\n---\nkind: PolicyAttachment\nid: change\npolicy: change\nprincipal_selector: {}\n";
    assert_not_safe(&analyze_set(&[
        ("change.yaml", ip),
        ("guards.yaml", star_actions_guard()),
    ]));
}

#[test]
fn an_ip_equal_by_value_and_matched_by_its_text() {
    let policy = "kind: Policy\nid: change\neffect: deny\nactions: [\"*\"]\nresources: [\"*\"]\nconditions:\n  - {path: environment.source_ip, op: exists}\n  - {path: environment.source_ip, op: equals, values: [\"10.0.0.1\"]}\n  - {path: environment.source_ip, op: ends_with, values: [\":1\"]}\n---\nkind: PolicyAttachment\nid: change\npolicy: change\nprincipal_selector: {}\n";
    let f = analyze_set(&[("change.yaml", policy)]);
    let cx = assert_lockout_by(&f, "change");
    let ip = cx["environment"]["source_ip"].as_str().unwrap();
    assert!(ip.ends_with(":1"), "{cx}");
}

#[test]
fn the_second_after_an_instant_literal_is_a_piece_of_its_own() {
    // 2030-06-30 is a Sunday: only the last second of it lies after the literal.
    let policy = "kind: Policy\nid: change\neffect: deny\nactions: [\"*\"]\nresources: [\"*\"]\nconditions:\n  - {path: environment.time, op: after, values: [\"2030-06-30T23:59:59Z\"]}\n  - {path: environment.time, op: before, values: [\"2030-07-06T00:00:00Z\"]}\n  - {path: environment.time, op: weekday, values: [sun]}\n---\nkind: PolicyAttachment\nid: change\npolicy: change\nprincipal_selector: {}\n";
    let f = analyze_set(&[("change.yaml", policy)]);
    let cx = assert_lockout_by(&f, "change");
    let t = cx_time(&cx);
    assert!(
        t > "2030-06-30T23:59:59Z".parse().unwrap() && t < "2030-07-01T00:00:00Z".parse().unwrap(),
        "{cx}"
    );
}

#[test]
fn the_action_as_a_prefix_of_the_principal_id() {
    let policy = "kind: Policy\nid: change\neffect: deny\nactions: [\"*\"]\nresources: [\"*\"]\nconditions:\n  - {path: principal.id, op: starts_with, values: [\"${action}\"]}\n  - {path: action, op: equals, values: [\"${principal.id}\"], negate: true}\n---\nkind: PolicyAttachment\nid: change\npolicy: change\nprincipal_selector: {}\n";
    let f = analyze_set(&[
        ("change.yaml", policy),
        ("guards.yaml", star_actions_guard()),
    ]);
    let cx = assert_lockout_by(&f, "change");
    let action = cx["action"].as_str().unwrap();
    assert!(
        "guard-probe".starts_with(action) && action != "guard-probe",
        "{cx}"
    );
}

#[test]
fn an_ip_text_ending_with_a_colon() {
    let policy = "kind: Policy\nid: change\neffect: deny\nactions: [\"*\"]\nresources: [\"*\"]\nconditions:\n  - {path: environment.source_ip, op: ends_with, values: [\":\"]}\n---\nkind: PolicyAttachment\nid: change\npolicy: change\nprincipal_selector: {}\n";
    let guard = "kind: LockoutGuard\nid: admins-keep-policy-control\nprincipal: {id: guard-probe, groups: [admin]}\nassuming:\n  - {path: environment.source_ip, op: cidr, values: [\"fd00::/8\"]}\nmust_allow:\n  - actions: [CreatePolicy]\n    resources: [\"kylo:kylo:admin:policies:*\"]\n";
    assert_not_safe(&analyze_set(&[
        ("change.yaml", policy),
        ("guards.yaml", guard),
    ]));
}

/// A guard whose principal id reads as an instant, and a deny for its requests between that instant and a
/// second later: the pinned id is a cut of the timeline like a literal.
#[test]
fn a_pinned_field_that_reads_as_an_instant_cuts_the_timeline() {
    let guard = "kind: LockoutGuard\nid: instant-named\nprincipal: {id: \"2027-06-01T00:00:00Z\", groups: [admin]}\nmust_allow:\n  - actions: [ReadUser]\n    resources: [\"kylo:kylo:admin:users:*\"]\n";
    let deny = deny(
        "  - path: environment.time\n    op: after\n    values: [\"${principal.id}\"]\n  - path: environment.time\n    op: before\n    values: [\"2027-06-01T00:00:01Z\"]",
        "[\"*\"]",
    );
    let f = analyze_checked(
        &build(&proposed(&[("g.yaml", guard)])),
        &build(&proposed(&[("g.yaml", guard), ("d.yaml", &deny)])),
    );
    let t = cx_moment(&assert_lockout_by(&f, "change"));
    assert!(t > "2027-06-01T00:00:00Z".parse().unwrap(), "{t}");
    assert!(t < "2027-06-01T00:00:01Z".parse().unwrap(), "{t}");
}

/// `environment.time equals ${resource.uri}`: the URI's cells are names from the policies, which cannot stand
/// for every instant the time may take, so the answer is never "safe".
#[test]
fn the_uri_compared_with_the_time_is_never_safe() {
    let f = analyze_change(&[(
        "d.yaml",
        &deny(
            "  - path: environment.time\n    op: equals\n    values: [\"${resource.uri}\"]",
            "[\"*\"]",
        ),
    )]);
    assert!(
        !f.is_empty(),
        "a request at the instant its URI names is denied"
    );
}
