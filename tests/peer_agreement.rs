//! Peer agreement (feature `peers`): Arbiter, Cedar and Rego (regorus) give the same decision and the same
//! determining policy ids on every benchmark request, so the benchmark compares like with like.
//! Decisions only; no timing here.

#[path = "../benches/workload/mod.rs"]
mod workload;

use workload::{arbiter_outcome, requests, workload, BENCH_REQUESTS, SIZES};

#[test]
fn the_three_engines_agree_on_every_benchmark_request() {
    for size in SIZES {
        let w = workload(size);
        let snapshot = w.snapshot();
        assert_eq!(snapshot.policy_count(), size);
        let cedar = workload::cedar::CedarSet::new(&w);
        let mut rego = (size <= 1_000).then(|| workload::rego::RegoSet::new(&w));
        let reqs = requests(&w, BENCH_REQUESTS, size as u64);
        let (mut allows, mut with_deny_policy) = (0, 0);
        for (i, r) in reqs.iter().enumerate() {
            let a = arbiter_outcome(&snapshot, r);
            let c = cedar.outcome(r);
            assert_eq!(a, c, "size {size}, request {i}: Arbiter vs Cedar on {r:#?}");
            if let Some(rego) = rego.as_mut() {
                let g = rego.outcome(r);
                assert_eq!(a, g, "size {size}, request {i}: Arbiter vs Rego on {r:#?}");
            }
            allows += a.allowed as usize;
            with_deny_policy += (!a.allowed && !a.policies.is_empty()) as usize;
        }
        // The mix must exercise allow hits, deny hits and misses (no applicable policy).
        let misses = reqs.len() - allows - with_deny_policy;
        eprintln!("size {size}: {allows} allow, {with_deny_policy} deny by policy, {misses} no applicable policy");
        assert!(
            allows > reqs.len() / 10,
            "size {size}: too few allows ({allows})"
        );
        assert!(with_deny_policy > 0, "size {size}: no deny hits");
        assert!(
            misses > reqs.len() / 10,
            "size {size}: too few misses ({misses})"
        );
    }
}
