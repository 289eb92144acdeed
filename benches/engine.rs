//! Arbiter-only in-process benchmarks (no peers feature needed): decision latency per policy-set size (for the
//! growth target), compile/reload time per size (parse + validate + compile + swap), lockout analysis of the
//! 10,000-policy set, replay of 100,000 logged requests (read + decide against two sets), and the server's own
//! per-call work for `Authorize` outside the transport (protobuf decoding, conversion, decision, response).

#[path = "workload/mod.rs"]
mod workload;

use std::hint::black_box;
use std::io::Cursor;
use std::time::Duration;

use arbiter::server::convert::{self, request_to_proto, AuthorizeInput};
use arbiter::server::decide::ServiceState;
use arbiter::server::proto;
use arbiter::server::wire::{self, WireMessage};
use arbiter::simulate::replay::{read_lines, replay};
use arbiter::simulate::{analyze, LockoutOptions};
use arbiter::SnapshotStore;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use prost::Message;
use workload::{requests, workload, BENCH_REQUESTS, SIZES};

/// The `arbiter` binary's allocator, so that allocation costs here are the server's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn decide(c: &mut Criterion) {
    let mut group = c.benchmark_group("arbiter_decide");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for size in SIZES {
        let w = workload(size);
        let reqs = requests(&w, BENCH_REQUESTS, size as u64);
        let snapshot = w.snapshot();
        let options = arbiter::EvalOptions::default();
        let now = jiff::Timestamp::UNIX_EPOCH;
        // Request construction + evaluation (as in the peer comparison).
        let mut i = 0usize;
        group.bench_function(BenchmarkId::new("build+evaluate", size), |b| {
            b.iter(|| {
                let r = &reqs[i % reqs.len()];
                i += 1;
                let request = r.to_raw().normalize().unwrap();
                black_box(arbiter::evaluate(&snapshot, &request, now, &options).allowed)
            })
        });
        // The same, through the request builder and through a borrowed request (the embedder's other two
        // entry points).
        group.bench_function(BenchmarkId::new("builder+evaluate", size), |b| {
            b.iter(|| {
                let r = &reqs[i % reqs.len()];
                i += 1;
                let request = r.to_request();
                black_box(arbiter::evaluate(&snapshot, &request, now, &options).allowed)
            })
        });
        group.bench_function(BenchmarkId::new("borrowed+evaluate", size), |b| {
            b.iter(|| {
                let r = &reqs[i % reqs.len()];
                i += 1;
                r.with_request_ref(|request| {
                    let decision = arbiter::evaluate_ref(&snapshot, request, now, &options);
                    black_box(decision.unwrap().allowed)
                })
            })
        });
        // Evaluation alone, on pre-built requests.
        let built: Vec<_> = reqs
            .iter()
            .map(|r| r.to_raw().normalize().unwrap())
            .collect();
        group.bench_function(BenchmarkId::new("evaluate", size), |b| {
            b.iter(|| {
                let r = &built[i % built.len()];
                i += 1;
                black_box(arbiter::evaluate(&snapshot, r, now, &options).allowed)
            })
        });
    }
    group.finish();
}

fn reload(c: &mut Criterion) {
    let mut group = c.benchmark_group("reload");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    let store = SnapshotStore::new();
    for size in SIZES {
        let files = workload(size).yaml_files();
        // From file texts in memory (the directory walk is the reloader's and is not included).
        // The previous snapshot is dropped after the timing, as the reloader drops it on a blocking thread
        // after the swap.
        group.bench_function(BenchmarkId::new("parse+validate+compile+swap", size), |b| {
            b.iter_with_large_drop(|| {
                let sources = arbiter::load::SourceSet::from_files(files.clone());
                let snapshot = arbiter::build(&sources).expect("compiles");
                store.publish(std::sync::Arc::new(snapshot))
            })
        });
        // The reloader's rebuild after a one-file edit: the other files' documents come from its parse cache.
        // Each iteration edits the last file (a comment that alternates), so every build sees a change.
        let mut cache = arbiter::compile::ParseCache::default();
        let _ = arbiter::compile::build_cached(
            &arbiter::load::SourceSet::from_files(files.clone()),
            &mut cache,
        );
        let mut flip = false;
        group.bench_function(BenchmarkId::new("one-file-edit", size), |b| {
            b.iter_with_large_drop(|| {
                flip = !flip;
                let mut edited = files.clone();
                if let Some((_, text)) = edited.last_mut() {
                    text.push_str(if flip { "# edit\n" } else { "# edit 2\n" });
                }
                let sources = arbiter::load::SourceSet::from_files(edited);
                let snapshot =
                    arbiter::compile::build_cached(&sources, &mut cache).expect("compiles");
                store.publish(std::sync::Arc::new(snapshot))
            })
        });
    }
    group.finish();
}

fn simulate(c: &mut Criterion) {
    let mut group = c.benchmark_group("simulate");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    let w = workload(10_000);
    let current = w.snapshot();
    let proposed = w.lockout_benchmark_edit().snapshot();
    let options = LockoutOptions {
        as_of: "2026-11-22T00:00:00Z".parse().unwrap(),
        budget: Duration::from_secs(10),
        superuser: Some(arbiter::DEFAULT_SUPERUSER.to_string()),
    };
    group.bench_function("lockout_analysis/10000", |b| {
        b.iter(|| {
            black_box(
                analyze(Some(&current), &proposed, &options)
                    .expect("no guard errors")
                    .len(),
            )
        })
    });

    // The most expensive partition the benchmark builds: the default pack plus a deny read through time
    // windows and weekdays in five zones whose offset combinations shift for decades (Casablanca, Cairo,
    // Lord Howe, Paris, New York), an instant attribute under the same treatment, a string attribute under six
    // text patterns, a list claim under contains_all, and a two-attribute relation.
    let worst = r#"kind: Policy
id: worst
effect: deny
actions: ["*"]
resources: ["kylo:kylo:admin:*"]
conditions:
  - {path: environment.time, op: time_of_day, values: ["01:30-02:30", "23:00-23:45"], zone: Africa/Casablanca}
  - {path: environment.time, op: time_of_day, values: ["02:00-03:00"], zone: Africa/Cairo}
  - {path: environment.time, op: weekday, values: [sat, sun], zone: Australia/Lord_Howe}
  - {path: environment.time, op: time_of_day, values: ["22:00-06:00"], zone: Europe/Paris}
  - {path: environment.time, op: weekday, values: [mon], zone: America/New_York}
  - {path: resource.created, op: time_of_day, values: ["03:00-04:00"], zone: Europe/Paris}
  - {path: resource.tier, op: starts_with, values: [pr, st]}
  - {path: resource.tier, op: ends_with, values: [od, ge]}
  - {path: resource.tier, op: glob, values: ["p*d", "*a*"]}
  - {path: principal.tags, op: contains_all, values: [a, b, c, d, e, f]}
  - {path: resource.a, op: equals, values: ["${resource.b}"]}
---
kind: PolicyAttachment
id: worst
policy: worst
principal_selector: {groups: [admin]}
"#;
    let mut files: Vec<(std::path::PathBuf, String)> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))
            .expect("policies/")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .map(|p| {
                let text = std::fs::read_to_string(&p).expect("readable");
                (p, text)
            })
            .collect();
    files.push(("worst.yaml".into(), worst.to_string()));
    let worst_set = arbiter::build(&arbiter::load::SourceSet::from_files(files)).expect("compiles");
    group.bench_function("lockout_analysis/worst_partition", |b| {
        b.iter(|| {
            black_box(
                analyze(None, &worst_set, &options)
                    .expect("no guard errors")
                    .len(),
            )
        })
    });

    // 100,000 decision-log style lines (the SPEC section 3 JSON request shape), read and replayed.
    let reqs = requests(&w, 100_000, 7);
    let mut log = String::new();
    for r in &reqs {
        log.push_str(&serde_json::to_string(&r.to_json()).unwrap());
        log.push('\n');
    }
    let now: arbiter::Moment = jiff::Timestamp::UNIX_EPOCH.into();
    group.bench_function("replay_read+decide/100000", |b| {
        b.iter(|| {
            let (logged, errors) = read_lines(Cursor::new(log.as_bytes()), now);
            assert!(errors.is_empty());
            black_box(replay(&current, &proposed, &logged, Some("admin")).changed)
        })
    });
    let (logged, _) = read_lines(Cursor::new(log.as_bytes()), now);
    group.bench_function("replay_decide_only/100000", |b| {
        b.iter(|| black_box(replay(&current, &proposed, &logged, Some("admin")).changed))
    });
    group.finish();
}

/// What the server does per `Authorize` call besides HTTP/2: decode the protobuf request (with its
/// `google.protobuf.Struct` resource attributes), then `ServiceState::authorize` (validate, evaluate, record
/// metrics through the Prometheus recorder), then write the response. Timed twice: through prost and the proto
/// conversion, and through the hand-written wire path the server takes (`arbiter::server::wire`). The steps are
/// also timed cumulatively, so the cost of each shows as a difference.
fn authorize_edge(c: &mut Criterion) {
    let mut group = c.benchmark_group("authorize_edge");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    let size = 10_000;
    let w = workload(size);
    let bodies: Vec<Vec<u8>> = requests(&w, BENCH_REQUESTS, size as u64)
        .iter()
        .map(|r| request_to_proto(&r.to_raw().normalize().unwrap()).encode_to_vec())
        .collect();
    let _ = arbiter::metrics::install_recorder();
    let state = ServiceState::new(
        std::sync::Arc::new(SnapshotStore::with(w.snapshot())),
        Default::default(),
        arbiter::DEFAULT_SUPERUSER.to_string(),
        None,
        arbiter::metrics::Metrics::register(),
        Duration::from_secs(10),
    );
    let mut i = 0usize;
    let mut next = || {
        i += 1;
        bodies[i % bodies.len()].as_slice()
    };
    group.bench_function(BenchmarkId::new("decode", size), |b| {
        b.iter(|| black_box(proto::AuthorizeRequest::decode(next()).unwrap()))
    });
    group.bench_function(BenchmarkId::new("decode+convert", size), |b| {
        b.iter(|| {
            let msg = proto::AuthorizeRequest::decode(next()).unwrap();
            black_box(AuthorizeInput::try_from(msg).unwrap())
        })
    });
    group.bench_function(BenchmarkId::new("decode+authorize+encode", size), |b| {
        b.iter(|| {
            let msg = proto::AuthorizeRequest::decode(next()).unwrap();
            let (verdict, snapshot) = state
                .authorize(WireMessage::Decoded(Box::new(msg)))
                .unwrap();
            black_box(convert::response(&verdict, &snapshot.revision).encode_to_vec())
        })
    });
    // The hand-written wire path the server takes (`arbiter::server::wire`), beside prost's above.
    group.bench_function(BenchmarkId::new("wire decode", size), |b| {
        b.iter(|| black_box(wire::decode_authorize(next()).unwrap()))
    });
    group.bench_function(BenchmarkId::new("wire decode+validate", size), |b| {
        b.iter(|| {
            let msg = wire::decode_authorize(next()).unwrap();
            black_box(msg.validate(&convert::no_tokens).unwrap())
        })
    });
    let mut out = Vec::with_capacity(1024);
    group.bench_function(
        BenchmarkId::new("wire decode+authorize+encode", size),
        |b| {
            b.iter(|| {
                let msg = wire::decode_authorize(next()).unwrap();
                let (verdict, snapshot) = state.authorize(msg).unwrap();
                out.clear();
                wire::AuthorizeReply::new(verdict, snapshot).encode(&mut out);
                black_box(out.len())
            })
        },
    );
    group.finish();
}

/// The query plan (SPEC section 7) for a team member's `EncryptWithKey` and `DeleteKey`: candidate attachments,
/// conditions decided or left on the resource, simplification; and the plan with its SQL rendering.
fn plan(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for size in SIZES {
        let w = workload(size);
        let snapshot = w.snapshot();
        let team = w.teams / 2;
        let principal = arbiter::Request::builder(format!("u{team}-0"))
            .action("EncryptWithKey")
            .source_ip("10.1.2.3")
            .time("2026-12-03T12:00:00Z".parse().unwrap())
            .build()
            .unwrap();
        let now: arbiter::Moment = jiff::Timestamp::UNIX_EPOCH.into();
        for action in ["EncryptWithKey", "DeleteKey"] {
            let request = arbiter::PlanRequest::new(principal.clone(), [action]);
            group.bench_function(BenchmarkId::new(format!("plan/{action}"), size), |b| {
                b.iter(|| black_box(arbiter::plan::plan(&snapshot, &request, now, None).kind))
            });
        }
        let request = arbiter::PlanRequest::new(principal.clone(), ["EncryptWithKey"]);
        let mapping = arbiter::SqlMapping::default();
        group.bench_function(BenchmarkId::new("plan+sql/EncryptWithKey", size), |b| {
            b.iter(|| {
                let plan = arbiter::plan::plan(&snapshot, &request, now, None);
                black_box(plan.to_sql(&mapping).unwrap().params.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decide, reload, simulate, authorize_edge, plan);
criterion_main!(benches);
