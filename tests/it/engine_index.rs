//! The index keeps a decision's cost independent of the policy count: with 10,000 policies, a request
//! reaches only the entries filed under its principal's keys and its resource's prefixes.

use std::path::PathBuf;

use arbiter::eval::{evaluate, EvalOptions};
use arbiter::load::SourceSet;
use arbiter::{Reason, Request, Snapshot};
use serde_json::json;

/// `teams` teams, each with a group-attached allow, an owner-conditioned allow on its own key space, and a
/// deny on its secrets; plus the shared default-pack style policies attached to everyone.
fn team_set(teams: usize) -> String {
    let mut out = String::from(
        "kind: Policy\nid: create-key\neffect: allow\nactions: [CreateKey]\nresources: [\"kylo:kylo:vault:keys:*\"]\n---\n\
         kind: PolicyAttachment\nid: create-key-all\npolicy: create-key\nprincipal_selector: {}\n",
    );
    for t in 0..teams {
        out += &format!(
            "---\nkind: Policy\nid: team{t}-use\neffect: allow\nactions: [\"*WithKey\", ReadKey]\nresources: [\"kylo:kylo:vault:keys:team{t}-*\"]\n\
             ---\nkind: PolicyAttachment\nid: team{t}-use\npolicy: team{t}-use\nprincipal_selector: {{groups: [team{t}]}}\n\
             ---\nkind: Policy\nid: team{t}-secrets\neffect: deny\nactions: [ExportKey]\nresources: [\"kylo:kylo:vault:keys:team{t}-secret-*\"]\n\
             ---\nkind: PolicyAttachment\nid: team{t}-secrets\npolicy: team{t}-secrets\nprincipal_selector: {{}}\n"
        );
    }
    out
}

fn build(teams: usize) -> Snapshot {
    let set = SourceSet::from_files([(PathBuf::from("teams.yaml"), team_set(teams))]);
    arbiter::build(&set).unwrap_or_else(|d| panic!("{d}"))
}

fn visited(s: &Snapshot, id: &str, groups: &[&str], uri: &str) -> usize {
    let mut n = 0;
    s.compiled.index.candidates(id, groups, uri, |_| n += 1);
    n
}

#[test]
fn ten_thousand_policies_reach_only_near_candidates() {
    let big = build(5_000);
    assert_eq!(big.policy_count(), 10_001);
    let small = build(5);
    for (s, label) in [(&big, "10k"), (&small, "10")] {
        let n = visited(s, "alice", &["team3"], "kylo:kylo:vault:keys:team3-k1");
        // create-key (everyone), team3-use (group), and no deny: team3-secret-* is not a prefix of the URI.
        assert_eq!(n, 2, "{label}: visited {n} entries");
        let n = visited(
            s,
            "alice",
            &["team3"],
            "kylo:kylo:vault:keys:team3-secret-k",
        );
        assert_eq!(n, 3, "{label}: visited {n} entries");
    }
    // Team 4321 exists only in the big set; its lookup is just as small.
    assert_eq!(
        visited(
            &big,
            "bob",
            &["team4321"],
            "kylo:kylo:vault:keys:team4321-k"
        ),
        2
    );
    // Note "team1" is a prefix of "team10", "team100", ...: the trie walks on past the shared prefix but
    // only entries whose whole prefix matches are visited.
    assert_eq!(
        visited(&big, "bob", &["team1"], "kylo:kylo:vault:keys:team1-k"),
        2
    );
}

#[test]
fn decisions_on_the_big_set_are_right() {
    let s = build(5_000);
    let decide = |groups: serde_json::Value, action: &str, uri: &str| {
        let r = Request::from_json(
            json!({"principal": {"id": "alice", "groups": groups}, "action": action,
            "resource": {"uri": uri}}),
        )
        .unwrap();
        evaluate(&s, &r, jiff::Timestamp::UNIX_EPOCH, &EvalOptions::default())
    };
    let d = decide(
        json!(["team4999"]),
        "EncryptWithKey",
        "kylo:kylo:vault:keys:team4999-k",
    );
    assert_eq!((d.allowed, d.reason), (true, Reason::Allowed));
    assert_eq!(
        d.policies.iter().map(|p| &**p).collect::<Vec<_>>(),
        ["team4999-use"]
    );
    let d = decide(
        json!(["team4999"]),
        "EncryptWithKey",
        "kylo:kylo:vault:keys:team4998-k",
    );
    assert_eq!(d.reason, Reason::NoApplicablePolicy);
    let d = decide(
        json!(["team7"]),
        "ExportKey",
        "kylo:kylo:vault:keys:team7-secret-1",
    );
    assert_eq!((d.allowed, d.reason), (false, Reason::Denied));
    assert_eq!(
        d.policies.iter().map(|p| &**p).collect::<Vec<_>>(),
        ["team7-secrets"]
    );
}
