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

/// A borrowed request and the builder are checked by the same rules as every door: over random fields, valid or
/// not, `RequestRef::to_request` and `RequestBuilder::build` give exactly what `RawRequest::normalize` gives for the
/// same values (the same request, or the same error naming the same field), and `Engine::decide_ref` decides what
/// `Engine::decide` decides. The referee reads the time as text, so a `Moment` no door would accept is caught.
mod borrowed {
    use arbiter::request::{RawEnvironment, RawPrincipal, RawRequest, RawResource};
    use arbiter::{Engine, Moment, Request, RequestRef};
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use serde_json::{json, Map, Value};
    use std::sync::LazyLock;

    /// The shipped policies.
    static ENGINE: LazyLock<Engine> = LazyLock::new(|| {
        Engine::from_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))
            .expect("shipped policies")
    });

    /// Text that is mostly ordinary, sometimes empty, rarely past the string limit.
    fn text(ordinary: &'static [&'static str]) -> impl Strategy<Value = String> {
        prop_oneof![
            1 => Just(String::new()),
            12 => prop::sample::select(ordinary).prop_map(str::to_string),
            1 => Just("x".repeat(arbiter::request::MAX_STRING_BYTES + 1)),
        ]
    }

    fn nested(depth: usize) -> Value {
        (0..depth).fold(json!(1), |v, _| json!({ "n": v }))
    }

    /// Attribute maps with the names the shipped policies read, reserved names, and values at and past the
    /// limits on depth, length and (across the three maps) the number of values.
    fn attributes() -> impl Strategy<Value = Option<Map<String, Value>>> {
        let key = prop_oneof![
            8 => prop::sample::select(&["permissions", "global", "dept", "level", ""][..]),
            1 => prop::sample::select(&["id", "groups", "uri", "owner", "time", "source_ip", "port"][..]),
        ];
        let value = prop_oneof![
            4 => Just(json!({"ReadKey": ["readers"], "EncryptWithKey": ["ops", "readers"]})),
            3 => Just(json!(true)),
            2 => Just(json!("ops")),
            2 => Just(json!(3)),
            1 => Just(json!(null)),
            1 => Just(json!(["a", 2, [true]])),
            1 => Just(nested(31)),
            1 => Just(nested(32)),
            1 => Just(json!("y".repeat(arbiter::request::MAX_STRING_BYTES + 1))),
            1 => Just(Value::Array(vec![json!(0); 3_400])),
        ];
        prop::option::of(
            prop::collection::vec((key, value), 0..4).prop_map(|entries| {
                entries
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect()
            }),
        )
    }

    #[derive(Debug, Clone)]
    struct Fields {
        id: String,
        groups: Vec<String>,
        /// Whether the borrowed request holds its groups as `&[&str]` rather than `&[String]`.
        borrowed_groups: bool,
        action: String,
        uri: Option<String>,
        owner: Option<String>,
        time: Option<Moment>,
        source_ip: Option<String>,
        port: Option<u16>,
        principal: Option<Map<String, Value>>,
        resource: Option<Map<String, Value>>,
        environment: Option<Map<String, Value>>,
    }

    fn instant() -> impl Strategy<Value = Moment> {
        prop_oneof![
            prop::sample::select(
                &[
                    "2026-06-01T00:00:00Z",
                    "2026-06-01T02:00:00.4+02:00",
                    "9999-12-31T23:59:59.999999999Z",
                    "0001-01-01T00:00:00Z",
                ][..]
            )
            .prop_map(|t| t.parse::<Moment>().expect("instant")),
            // Before year 1: a `Moment`, never an RFC 3339 instant.
            (1i64..=1_000_000_000).prop_map(|back| {
                let first = Moment::FIRST_RFC3339.as_second();
                Moment::new(first - back, 0).expect("in jiff's range")
            }),
            Just(Moment::from(jiff::Timestamp::MIN)),
        ]
    }

    fn fields() -> impl Strategy<Value = Fields> {
        (
            (
                text(&["alice", "bob", "carol", "admin"]),
                prop::collection::vec(text(&["readers", "ops", "admin"]), 0..3),
                any::<bool>(),
                text(&["ReadKey", "EncryptWithKey", "CreateKey"]),
                prop::option::of(text(&["kylo:kylo:vault:keys:k"])),
                prop::option::of(text(&["alice", "bob"])),
            ),
            (
                prop::option::weighted(0.3, instant()),
                prop::option::of(prop::sample::select(
                    &[
                        "",
                        "10.1.2.3",
                        "10.1",
                        "::1",
                        "2001:DB8::5",
                        " 10.1.2.3",
                        "::ffff:10.1.2.3",
                    ][..],
                )),
                prop::option::of(prop_oneof![Just(0u16), Just(443), Just(65535)]),
            ),
            (attributes(), attributes(), attributes()),
        )
            .prop_map(
                |(
                    (id, groups, borrowed_groups, action, uri, owner),
                    (time, source_ip, port),
                    (principal, resource, environment),
                )| Fields {
                    id,
                    groups,
                    borrowed_groups,
                    action,
                    uri,
                    owner,
                    time,
                    source_ip: source_ip.map(str::to_string),
                    port,
                    principal,
                    resource,
                    environment,
                },
            )
    }

    impl Fields {
        fn borrowed<'a>(&'a self, strs: &'a [&'a str]) -> RequestRef<'a> {
            RequestRef {
                principal_id: &self.id,
                groups: if self.borrowed_groups {
                    strs.into()
                } else {
                    (&self.groups).into()
                },
                principal_attributes: self.principal.as_ref(),
                action: &self.action,
                resource_uri: self.uri.as_deref(),
                resource_owner: self.owner.as_deref(),
                resource_attributes: self.resource.as_ref(),
                time: self.time,
                source_ip: self.source_ip.as_deref(),
                port: self.port,
                environment_attributes: self.environment.as_ref(),
            }
        }

        fn built(&self) -> Result<Request, arbiter::Error> {
            let mut b = Request::builder(self.id.clone()).action(self.action.clone());
            for g in &self.groups {
                b = b.group(g.clone());
            }
            if let Some(uri) = &self.uri {
                b = b.resource(uri.clone());
            }
            if let Some(owner) = &self.owner {
                b = b.owner(owner.clone());
            }
            if let Some(t) = self.time {
                b = b.moment(t);
            }
            if let Some(ip) = &self.source_ip {
                b = b.source_ip(ip.clone());
            }
            if let Some(p) = self.port {
                b = b.port(p);
            }
            for (k, v) in self.principal.iter().flatten() {
                b = b.claim(k.clone(), v.clone());
            }
            for (k, v) in self.resource.iter().flatten() {
                b = b.resource_attribute(k.clone(), v.clone());
            }
            for (k, v) in self.environment.iter().flatten() {
                b = b.environment_attribute(k.clone(), v.clone());
            }
            b.build()
        }

        fn raw(&self) -> RawRequest {
            RawRequest {
                principal: Some(RawPrincipal {
                    id: Some(self.id.clone()),
                    groups: Some(self.groups.clone()),
                    attributes: self.principal.clone(),
                    token: None,
                }),
                action: Some(self.action.clone()),
                resource: Some(RawResource {
                    uri: self.uri.clone(),
                    owner: self.owner.clone(),
                    attributes: self.resource.clone(),
                }),
                environment: Some(RawEnvironment {
                    time: self.time.map(|t| t.to_string()),
                    source_ip: self.source_ip.clone(),
                    port: self.port.map(Value::from),
                    attributes: self.environment.clone(),
                }),
                explain: None,
            }
        }
    }

    /// The request error inside a façade error.
    fn request_error<T>(r: Result<T, arbiter::Error>) -> Result<T, arbiter::RequestError> {
        r.map_err(|e| match e {
            arbiter::Error::Request(e) => e,
            other => panic!("not a request error: {other}"),
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

        #[test]
        fn borrowed_and_built_requests_are_checked_and_decided_like_owned_ones(f in fields()) {
            let strs: Vec<&str> = f.groups.iter().map(String::as_str).collect();
            let borrowed = f.borrowed(&strs);
            let owned = f.raw().normalize();
            prop_assert_eq!(&request_error(borrowed.to_request()), &owned);
            prop_assert_eq!(&request_error(f.built()), &owned);
            let engine = &*ENGINE;
            let now: Moment = "2026-06-01T12:00:00Z".parse().unwrap();
            let decided = request_error(engine.decide_ref_at(&borrowed, now));
            match (decided, owned) {
                (Ok(got), Ok(request)) => prop_assert_eq!(got, engine.decide_at(&request, now)),
                (Err(got), Err(want)) => prop_assert_eq!(got, want),
                (got, want) => prop_assert!(false, "borrowed {:?}, owned {:?}", got, want),
            }
        }
    }

    /// The generator above reaches valid requests that the shipped policies allow and deny, so the decisions
    /// compared are not all the same one.
    #[test]
    fn the_generated_requests_reach_allows_denies_and_errors() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let (mut allowed, mut denied, mut invalid) = (0, 0, 0);
        let now: Moment = "2026-06-01T12:00:00Z".parse().unwrap();
        for _ in 0..600 {
            let f = fields().new_tree(&mut runner).unwrap().current();
            let strs: Vec<&str> = f.groups.iter().map(String::as_str).collect();
            match ENGINE.decide_ref_at(&f.borrowed(&strs), now) {
                Ok(d) if d.allowed && d.reason.as_str() != "superuser" => allowed += 1,
                Ok(d) if !d.allowed => denied += 1,
                Ok(_) => {}
                Err(_) => invalid += 1,
            }
        }
        eprintln!("{allowed} allowed, {denied} denied, {invalid} invalid");
        assert!(allowed >= 30 && denied >= 30 && invalid >= 30);
    }
}
