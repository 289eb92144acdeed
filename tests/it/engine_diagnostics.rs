//! Every kind of policy-file mistake yields its own error at the right file:line:col, with a hint where one
//! helps, and all of them are reported together.

use std::path::PathBuf;

use arbiter::diag::Diagnostics;
use arbiter::load::SourceSet;

fn errors_of(files: &[(&str, &str)]) -> Diagnostics {
    let set = SourceSet::from_files(files.iter().map(|(p, t)| (PathBuf::from(p), t.to_string())));
    match arbiter::build(&set) {
        Ok(_) => panic!("expected the set to be invalid"),
        Err(d) => d,
    }
}

/// One broken document and the first line of the error it must produce.
fn single(text: &str) -> String {
    let diags = errors_of(&[("p/x.yaml", text)]);
    let errors: Vec<String> = diags.errors().map(|d| d.to_string()).collect();
    assert_eq!(
        errors.len(),
        1,
        "expected exactly one error, got:\n{}",
        errors.join("\n")
    );
    errors[0].clone()
}

const ATTACH: &str = "---\nkind: PolicyAttachment\nid: a\npolicy: p\nprincipal_selector: {}\n";

fn policy(body: &str) -> String {
    format!("kind: Policy\nid: p\neffect: allow\nactions: [ReadKey]\nresources: [\"kylo:*\"]\n{body}{ATTACH}")
}

#[test]
fn unknown_field_with_suggestion() {
    let e = single(&format!(
        "kind: Policy\nid: p\neffect: allow\nactions: [ReadKey]\nresources: [y]\nresource: [x]\n{ATTACH}"
    ));
    assert!(
        e.starts_with("p/x.yaml:6:1: error: unknown field `resource` in Policy"),
        "{e}"
    );
    assert!(e.contains("help: did you mean `resources`?"), "{e}");
}

#[test]
fn missing_required_field_is_reported_too() {
    // `resource` is unknown AND `resources` is missing: both are reported.
    let diags = errors_of(&[(
        "p/x.yaml",
        &format!("kind: Policy\nid: p\neffect: allow\nactions: [ReadKey]\nresource: [x]\n{ATTACH}"),
    )]);
    let all = diags.to_string();
    assert!(
        all.contains("p/x.yaml:1:1: error: missing field `resources` in Policy"),
        "{all}"
    );
}

#[test]
fn unknown_operator() {
    let e = single(&policy(
        "conditions:\n  - path: resource.owner\n    op: equal\n    values: [x]\n",
    ));
    assert!(
        e.starts_with("p/x.yaml:8:9: error: unknown operator `equal`"),
        "{e}"
    );
    assert!(e.contains("did you mean `equals`?"), "{e}");
}

#[test]
fn unknown_kind() {
    let e = single("kind: Polcy\nid: p\n");
    assert!(
        e.starts_with("p/x.yaml:1:7: error: unknown kind `Polcy`"),
        "{e}"
    );
    assert!(e.contains("did you mean `Policy`?"), "{e}");
}

#[test]
fn duplicate_policy_id_across_files() {
    let p = "kind: Policy\nid: dup\neffect: allow\nactions: [ReadKey]\nresources: [x]\n---\nkind: PolicyAttachment\nid: a1\npolicy: dup\nprincipal_selector: {}\n";
    let q = "kind: Policy\nid: dup\neffect: deny\nactions: [ReadKey]\nresources: [x]\n";
    let diags = errors_of(&[("p/a.yaml", p), ("p/b.yaml", q)]);
    let errors: Vec<String> = diags.errors().map(|d| d.to_string()).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("p/b.yaml:2:5: error: duplicate policy id `dup`"),
        "{}",
        errors[0]
    );
    assert!(
        errors[0].contains("first defined at p/a.yaml:2:5"),
        "{}",
        errors[0]
    );
}

#[test]
fn duplicate_group_name() {
    let e = single("kind: Group\nname: hr\nmembers: []\n---\nkind: Group\nname: hr\n");
    assert!(
        e.starts_with("p/x.yaml:6:7: error: duplicate group name `hr`"),
        "{e}"
    );
}

#[test]
fn attachment_to_missing_policy() {
    let e = single(
        "kind: Policy\nid: key-owner\neffect: allow\nactions: [ReadKey]\nresources: [x]\n---\n\
         kind: PolicyAttachment\nid: a\npolicy: key-ownr\nprincipal_selector: {}\n---\n\
         kind: PolicyAttachment\nid: b\npolicy: key-owner\nprincipal_selector: {}\n",
    );
    assert!(
        e.starts_with(
            "p/x.yaml:9:9: error: attachment `a` names policy `key-ownr`, which does not exist"
        ),
        "{e}"
    );
    assert!(e.contains("did you mean `key-owner`?"), "{e}");
}

#[test]
fn missing_principal_selector() {
    let e = single("kind: Policy\nid: p\neffect: allow\nactions: [ReadKey]\nresources: [x]\n---\nkind: PolicyAttachment\nid: a\npolicy: p\n");
    assert!(
        e.starts_with(
            "p/x.yaml:7:1: error: missing field `principal_selector` in PolicyAttachment"
        ),
        "{e}"
    );
    assert!(e.contains("principal_selector: {}"), "{e}");
}

#[test]
fn bad_cidr_with_host_bits() {
    let e = single(&policy("conditions:\n  - path: environment.source_ip\n    op: cidr\n    values: [\"10.1.2.3/8\"]\n"));
    assert!(
        e.starts_with("p/x.yaml:9:14: error: invalid CIDR `10.1.2.3/8`: host bits are set"),
        "{e}"
    );
    assert!(e.contains("did you mean `10.0.0.0/8`?"), "{e}");
}

#[test]
fn bad_time_window() {
    let e = single(&policy(
        "conditions:\n  - path: environment.time\n    op: time_of_day\n    values: [\"09:00-09:00\"]\n",
    ));
    assert!(
        e.starts_with(
            "p/x.yaml:9:14: error: invalid time window `09:00-09:00`: start and end are equal"
        ),
        "{e}"
    );
    let e = single(&policy(
        "conditions:\n  - path: environment.time\n    op: time_of_day\n    values: [\"9-17\"]\n",
    ));
    assert!(
        e.starts_with("p/x.yaml:9:14: error: invalid time window `9-17`"),
        "{e}"
    );
}

#[test]
fn bad_zone() {
    let e = single(&policy(
        "conditions:\n  - path: environment.time\n    op: weekday\n    values: [mon]\n    zone: Europe/Pariss\n",
    ));
    assert!(
        e.starts_with("p/x.yaml:10:11: error: unknown time zone `Europe/Pariss`"),
        "{e}"
    );
}

#[test]
fn bad_glob() {
    let e = single(&format!(
        "kind: Policy\nid: p\neffect: allow\nactions: [\"Read?\"]\nresources: [x]\n{ATTACH}"
    ));
    assert!(
        e.starts_with("p/x.yaml:4:11: error: invalid action glob `Read?`: `?` is reserved in globs; only `*` is a wildcard"),
        "{e}"
    );
}

#[test]
fn malformed_reference() {
    let e = single(&policy(
        "conditions:\n  - path: resource.owner\n    op: equals\n    values: [\"${principal.id\"]\n",
    ));
    assert!(
        e.starts_with("p/x.yaml:9:14: error: malformed reference in `${principal.id`"),
        "{e}"
    );
    let e = single(&policy("conditions:\n  - path: resource.owner\n    op: equals\n    values: [\"u-${principal.id}\"]\n"));
    assert!(e.contains("must be the whole value"), "{e}");
    let e = single(&policy(
        "conditions:\n  - path: resource.${principal.id}\n    op: exists\n",
    ));
    assert!(
        e.starts_with("p/x.yaml:7:11: error: invalid path `resource.${principal.id}`"),
        "{e}"
    );
}

#[test]
fn wrong_value_type_for_operator() {
    let e = single(&policy(
        "conditions:\n  - path: environment.port\n    op: lt\n    values: [\"1024\"]\n",
    ));
    assert!(
        e.starts_with("p/x.yaml:9:14: error: `lt` needs a number, found a string `1024`"),
        "{e}"
    );
    assert!(e.contains("remove the quotes"), "{e}");
    let e = single(&policy(
        "conditions:\n  - path: environment.time\n    op: before\n    values: [\"tomorrow\"]\n",
    ));
    assert!(
        e.starts_with("p/x.yaml:9:14: error: `tomorrow` is not an RFC 3339 instant"),
        "{e}"
    );
}

#[test]
fn empty_actions() {
    let e = single(&format!(
        "kind: Policy\nid: p\neffect: allow\nactions: []\nresources: [x]\n{ATTACH}"
    ));
    assert!(
        e.starts_with("p/x.yaml:4:10: error: `actions` must not be empty"),
        "{e}"
    );
}

#[test]
fn reserved_superuser_id() {
    let e = single("kind: Policy\nid: superuser\neffect: allow\nactions: [ReadKey]\nresources: [x]\n---\nkind: PolicyAttachment\nid: a\npolicy: superuser\nprincipal_selector: {}\n");
    assert!(
        e.starts_with("p/x.yaml:2:5: error: the policy id `superuser` is reserved"),
        "{e}"
    );
}

#[test]
fn bad_effect_and_bad_id() {
    let diags = errors_of(&[(
        "p/x.yaml",
        "kind: Policy\nid: \"bad id\"\neffect: alow\nactions: [ReadKey]\nresources: [x]\n",
    )]);
    let all = diags.to_string();
    assert!(
        all.contains("p/x.yaml:2:5: error: invalid id `bad id`"),
        "{all}"
    );
    assert!(
        all.contains("p/x.yaml:3:9: error: invalid effect `alow`"),
        "{all}"
    );
    assert!(all.contains("did you mean `allow`?"), "{all}");
}

#[test]
fn values_on_exists_and_missing_values() {
    let e = single(&policy(
        "conditions:\n  - path: resource.owner\n    op: exists\n    values: [x]\n",
    ));
    assert!(
        e.starts_with("p/x.yaml:9:13: error: `exists` takes no values"),
        "{e}"
    );
    let e = single(&policy(
        "conditions:\n  - path: resource.owner\n    op: equals\n",
    ));
    assert!(
        e.starts_with("p/x.yaml:7:5: error: `equals` needs at least one value"),
        "{e}"
    );
}

#[test]
fn invalid_yaml_is_an_error_with_position() {
    let e = single("kind: Policy\nid: [unclosed\n");
    assert!(e.starts_with("p/x.yaml:"), "{e}");
    assert!(e.contains("invalid YAML"), "{e}");
}

#[test]
fn every_error_is_collected_and_sorted_by_file_and_line() {
    let a = format!(
        "kind: Policy\nid: p\neffect: allow\nactions: [ReadKey]\nresources: [x]\nconditions:\n  - path: resource.owner\n    op: bogus\n    values: [x]\n  - path: environment.source_ip\n    op: cidr\n    values: [\"300.0.0.0/8\"]\n{ATTACH}"
    );
    let b = "kind: Group\nname: g\nmemberz: [x]\n";
    let diags = errors_of(&[("p/b.yaml", b), ("p/a.yaml", &a)]);
    let locations: Vec<String> = diags.errors().map(|d| d.location()).collect();
    assert_eq!(
        locations,
        vec!["p/a.yaml:8:9", "p/a.yaml:12:14", "p/b.yaml:3:1"]
    );
}

#[test]
fn rendering_shows_the_source_line_and_a_caret() {
    let e = single(&policy(
        "conditions:\n  - path: resource.owner\n    op: equal\n    values: [x]\n",
    ));
    assert!(e.contains("8 |     op: equal\n  |         ^"), "{e}");
}

#[test]
fn warnings_do_not_fail_the_set() {
    let text = "kind: Policy\nid: unused\neffect: allow\nactions: [FetchPasword]\nresources: [x]\n---\nkind: Policy\nid: used\neffect: allow\nactions: [ReadKey]\nresources: [x]\n---\nkind: PolicyAttachment\nid: a\npolicy: used\nprincipal_selector: {groups: [hrr]}\n---\nkind: Group\nname: hr\n";
    let set = SourceSet::from_files([(PathBuf::from("p/w.yaml"), text.to_string())]);
    let snapshot = arbiter::build(&set).expect("warnings only");
    let warnings: Vec<String> = snapshot.warnings.iter().map(|d| d.to_string()).collect();
    let all = warnings.join("\n");
    assert!(
        all.contains("p/w.yaml:2:5: warning: policy `unused` is not used by any attachment"),
        "{all}"
    );
    assert!(all.contains("p/w.yaml:4:11: warning: action `FetchPasword` is not in the CipherTrust action vocabulary"), "{all}");
    assert!(
        all.contains(
            "p/w.yaml:16:31: warning: selector names group `hrr`, which no Group document defines"
        ),
        "{all}"
    );
    assert!(all.contains("did you mean `hr`?"), "{all}");
}

#[test]
fn test_suites_are_skipped_by_the_loader() {
    let text = "kind: TestSuite\nname: s\ntests: []\n";
    let set = SourceSet::from_files([(PathBuf::from("p/t.yaml"), text.to_string())]);
    let snapshot = arbiter::build(&set).expect("a suite alone is a valid (empty) set");
    assert_eq!(snapshot.policy_count(), 0);
}

#[test]
fn an_attachment_missing_its_selector_still_has_its_policy_checked() {
    let diags = errors_of(&[("p/x.yaml", "kind: PolicyAttachment\nid: a\npolicy: nope\n")]);
    let errors: Vec<String> = diags.errors().map(|d| d.to_string()).collect();
    let all = errors.join("\n");
    assert_eq!(errors.len(), 2, "{all}");
    assert!(
        all.contains("p/x.yaml:1:1: error: missing field `principal_selector` in PolicyAttachment"),
        "{all}"
    );
    assert!(
        all.contains(
            "p/x.yaml:3:9: error: attachment `a` names policy `nope`, which does not exist"
        ),
        "{all}"
    );
}

#[test]
fn a_policy_left_out_for_an_error_is_not_also_reported_missing() {
    // The bad effect is the only error: the attachment names a policy that is there, only broken.
    let e = single(&format!(
        "kind: Policy\nid: p\neffect: allw\nactions: [ReadKey]\nresources: [x]\n{ATTACH}"
    ));
    assert!(
        e.starts_with("p/x.yaml:3:9: error: invalid effect `allw`"),
        "{e}"
    );
}

#[test]
fn group_names_are_any_non_empty_string() {
    let text = "kind: Group\nname: \"Key Users\"\nmembers: [alice]\n---\nkind: Policy\nid: p\neffect: allow\n\
                actions: [ReadKey]\nresources: [\"*\"]\n---\nkind: PolicyAttachment\nid: a\npolicy: p\n\
                principal_selector: {groups: [\"Key Users\"]}\n";
    let set = SourceSet::from_files([(PathBuf::from("p/g.yaml"), text.to_string())]);
    let snapshot = arbiter::build(&set).expect("a group name with a space is valid");
    let request = arbiter::Request::from_json(serde_json::json!({
        "principal": {"id": "alice"}, "action": "ReadKey", "resource": {"uri": "k"}
    }))
    .unwrap();
    let decision = arbiter::evaluate(
        &snapshot,
        &request,
        "2026-11-23T12:00:00Z".parse::<jiff::Timestamp>().unwrap(),
        &arbiter::EvalOptions::default(),
    );
    assert!(decision.allowed, "{decision:?}");

    let e = single("kind: Group\nname: \"\"\n");
    assert!(
        e.starts_with("p/x.yaml:2:7: error: `name` must not be empty"),
        "{e}"
    );
}

/// Data-driven: each kind of mistake and the stable code it carries (tools match on codes, not on wording).
#[test]
fn every_error_has_its_stable_code() {
    use arbiter::diag::Code;
    let cond = |c: &str| policy(&format!("conditions:\n  - {c}\n"));
    let cases: Vec<(String, Code, &str)> = vec![
        ("kind: Polcy\nid: p\n".into(), Code::UnknownKind, "E0004"),
        (policy("colour: red\n"), Code::UnknownField, "E0005"),
        (
            "kind: Policy\nid: p\neffect: allow\nactions: [ReadKey]\n".into(),
            Code::MissingField,
            "E0006",
        ),
        (policy("description: [x]\n"), Code::WrongType, "E0007"),
        (
            policy("")
                .replace("id: p\n", "id: \"p q\"\n")
                .replace("policy: p", "policy: \"p q\""),
            Code::InvalidId,
            "E0009",
        ),
        (
            policy("").replace("effect: allow", "effect: alow"),
            Code::InvalidEffect,
            "E0010",
        ),
        (
            cond("{path: resource.owner, op: equal, values: [x]}"),
            Code::UnknownOperator,
            "E0011",
        ),
        (
            format!(
                "{}---\n{}",
                policy(""),
                policy("").replace("id: a\n", "id: b\n")
            ),
            Code::Duplicate,
            "E0012",
        ),
        (
            "kind: PolicyAttachment\nid: a\npolicy: nope\nprincipal_selector: {}\n".to_string(),
            Code::MissingPolicy,
            "E0013",
        ),
        (
            policy("")
                .replace("id: p\n", "id: superuser\n")
                .replace("policy: p", "policy: superuser"),
            Code::ReservedId,
            "E0014",
        ),
        (
            cond("{path: resource., op: exists}"),
            Code::InvalidPath,
            "E0015",
        ),
        (
            cond("{path: resource.owner, op: equals, values: [\"${nope.x}\"]}"),
            Code::InvalidReference,
            "E0016",
        ),
        (
            cond("{path: resource.owner, op: glob, values: [\"a?\"]}"),
            Code::InvalidGlob,
            "E0017",
        ),
        (
            cond("{path: environment.source_ip, op: cidr, values: [\"10.0.0.1/8\"]}"),
            Code::InvalidCidr,
            "E0018",
        ),
        (
            cond("{path: environment.time, op: weekday, values: [mon], zone: Europe/Pairs}"),
            Code::InvalidZone,
            "E0019",
        ),
        (
            cond("{path: environment.time, op: time_of_day, values: [\"08:00-08:00\"]}"),
            Code::InvalidWindow,
            "E0020",
        ),
        (
            cond("{path: environment.time, op: weekday, values: [monday]}"),
            Code::InvalidWeekday,
            "E0021",
        ),
        (
            cond("{path: environment.time, op: before, values: [\"2026-01-01 00:00:00Z\"]}"),
            Code::InvalidInstant,
            "E0022",
        ),
        (
            cond("{path: resource.n, op: lt, values: [\"3\"]}"),
            Code::ValueType,
            "E0023",
        ),
        (
            cond("{path: resource.n, op: lt, values: [1, 2]}"),
            Code::ValueCount,
            "E0024",
        ),
        ("kind: Policy\nid: [\n".into(), Code::Yaml, "E0003"),
    ];
    for (text, code, shown) in cases {
        let diags = errors_of(&[("p/x.yaml", &text)]);
        let found: Vec<Code> = diags.errors().map(|d| d.code).collect();
        assert!(
            found.contains(&code),
            "expected {code:?} for:\n{text}\ngot: {diags}"
        );
        assert_eq!(code.to_string(), shown);
        let rendered = diags.errors().find(|d| d.code == code).unwrap().to_string();
        assert!(
            rendered
                .lines()
                .next()
                .unwrap()
                .ends_with(&format!("[{shown}]")),
            "{rendered}"
        );
    }
    // Warnings have codes of their own.
    let set = SourceSet::from_files([(
        PathBuf::from("w.yaml"),
        "kind: Policy\nid: lonely\neffect: allow\nactions: [FetchPassword]\nresources: [x]\n"
            .to_string(),
    )]);
    let snapshot = arbiter::build(&set).unwrap();
    let codes: Vec<String> = snapshot
        .warnings
        .iter()
        .map(|w| w.code.to_string())
        .collect();
    assert!(
        codes.contains(&"W0001".to_string()) && codes.contains(&"W0003".to_string()),
        "{codes:?}"
    );
}
