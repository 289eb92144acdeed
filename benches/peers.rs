//! In-process decision latency, side by side in one run: Arbiter vs `cedar-policy` vs `regorus` on the same
//! generated policy sets (10 / 1,000 / 10,000 policies) and the same request mix. Request (and, for Cedar,
//! entity) construction from the neutral request is inside the timed loop on every side: `arbiter` builds an owned
//! request through `RawRequest::normalize` (the doors' path), `arbiter_borrowed` a `RequestRef` over the neutral
//! request's strings. Every side allocates with jemalloc, the `arbiter` binary's allocator.
//! Needs `--features peers`; agreement is asserted by `tests/peer_agreement.rs`.

#[path = "workload/mod.rs"]
mod workload;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use workload::{requests, workload, BENCH_REQUESTS, SIZES};

/// The `arbiter` binary's allocator, so that allocation costs here are the server's (and, beside the peers, every
/// side's).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn decide(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for size in SIZES {
        let w = workload(size);
        let reqs = requests(&w, BENCH_REQUESTS, size as u64);
        let snapshot = w.snapshot();
        let options = arbiter::EvalOptions::default();
        let now = jiff::Timestamp::UNIX_EPOCH;
        let mut i = 0usize;
        group.bench_function(BenchmarkId::new("arbiter", size), |b| {
            b.iter(|| {
                let r = &reqs[i % reqs.len()];
                i += 1;
                let request = r.to_raw().normalize().unwrap();
                black_box(arbiter::evaluate(&snapshot, &request, now, &options).allowed)
            })
        });
        // The same decisions through a borrowed request: the attribute map is built and the time parsed per call,
        // the strings are borrowed from the neutral request (Cedar's API takes owned values only).
        group.bench_function(BenchmarkId::new("arbiter_borrowed", size), |b| {
            b.iter(|| {
                let r = &reqs[i % reqs.len()];
                i += 1;
                r.with_request_ref(|request| {
                    let decision = arbiter::evaluate_ref(&snapshot, request, now, &options);
                    black_box(decision.expect("valid request").allowed)
                })
            })
        });
        let cedar = workload::cedar::CedarSet::new(&w);
        group.bench_function(BenchmarkId::new("cedar", size), |b| {
            b.iter(|| {
                let r = &reqs[i % reqs.len()];
                i += 1;
                black_box(cedar.decide(r).decision())
            })
        });
        drop(cedar);
        if size <= 1_000 {
            let mut rego = workload::rego::RegoSet::new(&w);
            group.bench_function(BenchmarkId::new("rego", size), |b| {
                b.iter(|| {
                    let r = &reqs[i % reqs.len()];
                    i += 1;
                    black_box(rego.decide(r))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, decide);
criterion_main!(benches);
