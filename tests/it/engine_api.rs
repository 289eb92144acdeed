//! The embedding API: `Engine`, the request builder, `Error`, `ReloadingEngine` and `simulate`.

use std::time::{Duration, Instant};

use arbiter::{Engine, Error, ReloadingEngine, Request};

const POLICY: &str = "kind: Policy\nid: readers\neffect: allow\nactions: [ReadKey]\nresources: [\"*\"]\n---\nkind: PolicyAttachment\nid: readers\npolicy: readers\nprincipal_selector: {groups: [readers]}\n";

fn read(who: &str, group: &str) -> Request {
    Request::builder(who)
        .group(group)
        .action("ReadKey")
        .resource("kylo:kylo:vault:keys:k")
        .build()
        .unwrap()
}

#[test]
fn decides_like_the_sidecar() {
    let engine = Engine::from_sources([("p.yaml", POLICY)]).unwrap();
    let d = engine.decide(&read("alice", "readers"));
    assert!(d.allowed);
    assert_eq!(d.policies, ["readers".into()]);
    assert_eq!(d.reason.as_str(), "allowed");
    let d = engine.decide(&read("bob", "others"));
    assert!(!d.allowed);
    assert_eq!(d.reason.as_str(), "no_applicable_policy");
    // The superuser rule is on by default and can be switched off.
    assert!(engine.decide(&read("admin", "none")).allowed);
    assert!(
        !engine
            .clone()
            .with_superuser(None)
            .decide(&read("admin", "none"))
            .allowed
    );
    let batch = engine.decide_batch(&[read("alice", "readers"), read("bob", "x")]);
    assert_eq!(
        batch.iter().map(|d| d.allowed).collect::<Vec<_>>(),
        [true, false]
    );
    assert!(engine.explain(&read("bob", "x")).explanation.is_some());
}

#[test]
fn every_error_is_one_error_type() {
    let bad = "kind: Policy\nid: p\neffect: alow\nactions: [\"*\"]\nresources: [\"*\"]\n---\nkind: Group\nname: g\nmembrs: []\n";
    let err = Engine::from_sources([("bad.yaml", bad)]).unwrap_err();
    let Error::Invalid(diags) = &err else {
        panic!("{err}")
    };
    let codes: Vec<String> = diags.errors().map(|d| d.code.to_string()).collect();
    assert_eq!(codes, ["E0010", "E0005"], "{diags}");
    let boxed: Box<dyn std::error::Error> = Box::new(err);
    assert!(boxed.to_string().contains("bad.yaml:3:9"), "{boxed}");

    let err = Request::builder("").action("ReadKey").build().unwrap_err();
    assert!(
        matches!(&err, Error::Request(e) if e.field == "principal.id"),
        "{err}"
    );
    let err = Request::builder("a")
        .action("ReadKey")
        .source_ip("10.1")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("environment.source_ip"), "{err}");
    assert!(matches!(
        Engine::from_dir("/nonexistent/dir"),
        Err(Error::Invalid(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloading_engine_follows_the_directory_and_keeps_the_last_good_set() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.yaml"), POLICY).unwrap();
    let engine = ReloadingEngine::watch(dir.path()).await.unwrap();
    assert!(engine.engine().decide(&read("alice", "readers")).allowed);

    // A new group is allowed once the edit is picked up (bounded poll, no asserted duration).
    std::fs::write(
        dir.path().join("p.yaml"),
        POLICY.replace("[readers]", "[writers]"),
    )
    .unwrap();
    let deadline = Instant::now() + crate::common::WAIT;
    while !engine.engine().decide(&read("carol", "writers")).allowed {
        assert!(Instant::now() < deadline, "the edit was never picked up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A bad edit never replaces the set being served.
    std::fs::write(dir.path().join("p.yaml"), "kind: Policy\nid: [").unwrap();
    assert!(engine.reload().await.is_err());
    assert!(engine.engine().decide(&read("carol", "writers")).allowed);
    engine.stop().await;
}

/// Years 1 to 9999 in UTC, to the last nanosecond: past the time library's own last timestamp
/// (`9999-12-30T22:00:00.999999999Z`), with local times in zones east of UTC on 10000-01-01.
#[test]
fn the_last_hours_of_year_9999_are_decided() {
    let policy = r#"kind: Policy
id: tail
effect: allow
actions: [ReadKey]
resources: ["*"]
conditions:
  - {path: environment.time, op: after, values: ["9999-12-31T12:00:00Z"]}
  - {path: environment.time, op: time_of_day, values: ["08:00-09:00"], zone: Asia/Tokyo}
  - {path: environment.time, op: weekday, values: [sat], zone: Asia/Tokyo}
---
kind: PolicyAttachment
id: tail
policy: tail
principal_selector: {groups: [readers]}
"#;
    let engine = Engine::from_sources([("p.yaml", policy)]).unwrap();
    let at = |time: &str| {
        let request = Request::from_json(serde_json::json!({
            "principal": {"id": "alice", "groups": ["readers"]},
            "action": "ReadKey",
            "resource": {"uri": "kylo:kylo:vault:keys:k"},
            "environment": {"time": time},
        }));
        request.map(|r| engine.decide(&r))
    };
    // 08:30 on Saturday 10000-01-01 in Tokyo.
    let d = at("9999-12-31T23:30:00Z").unwrap();
    assert!(d.allowed, "{d:?}");
    // 08:59:59.999999999 is inside [08:00, 09:00); the next nanosecond is past year 9999.
    let d = at("9999-12-31T23:59:59.999999999Z").unwrap();
    assert_eq!(d.reason.as_str(), "allowed");
    let d = at("9999-12-31T22:30:00Z").unwrap();
    assert_eq!(d.reason.as_str(), "no_applicable_policy", "07:30 in Tokyo");
    assert!(
        at("9999-12-31T20:00:00-04:00").is_err(),
        "10000-01-01 in UTC"
    );
    // The request builder takes the same instants.
    let r = Request::builder("alice")
        .group("readers")
        .action("ReadKey")
        .resource("kylo:kylo:vault:keys:k")
        .moment("9999-12-31T23:30:00Z".parse().unwrap())
        .build()
        .unwrap();
    assert!(engine.decide(&r).allowed);
}
