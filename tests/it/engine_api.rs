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
