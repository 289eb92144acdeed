//! Scale benchmark: the same workload at 10, 10,000 and 100,000 policies, measured in one run, against the
//! targets for 100,000: decision median ≤ 2× the median at 10, full build < 3 s, the server's resident memory
//! < 300 MiB, lockout analysis < 5 s, query plan < 5 ms.
//!
//! `cargo bench --bench scale [-- --sizes 10,10000,100000] [--samples N]`
//!
//! Every figure is a median: of `--samples` timed batches for the per-call figures (each batch cycles through
//! the workload's 256 benchmark requests), of 3 runs for the builds and analyses. The server figures come from
//! the real `arbiter serve` on the set written to a temporary directory: start-up to the first `SERVING`
//! answer (fresh connection per poll; includes reading, parsing, compiling and the first lockout check), and
//! `VmRSS` 12 s after that (past the allocator's decay time), then 12 s after a one-file edit has been published
//! (a new revision in `GetStatus`).

#[path = "support/server.rs"]
mod server_process;
#[path = "workload/mod.rs"]
mod workload;

use std::hint::black_box;
use std::time::{Duration, Instant};

use arbiter::simulate::{analyze, LockoutOptions};
use server_process::{
    revision, rss_kib, start_server, wait_revision_change, wait_serving, write_dir,
};
use workload::{requests, workload, BENCH_REQUESTS};

/// The `arbiter` binary's allocator, so that the in-process figures (decisions, builds, analyses) allocate like
/// the server measured beside them.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// How long the server idles before its resident memory is read.
const IDLE: Duration = Duration::from_secs(12);

struct Args {
    sizes: Vec<usize>,
    samples: usize,
}

fn args() -> Args {
    let mut a = Args {
        sizes: vec![10, 10_000, 100_000],
        samples: 21,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--sizes" => a.sizes = val().split(',').map(|s| s.parse().unwrap()).collect(),
            "--samples" => a.samples = val().parse::<usize>().unwrap().max(1),
            "--bench" => {} // passed by `cargo bench`
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Median over `samples` batches of the time per call of `f`, each batch `per_batch` calls.
fn per_call(samples: usize, per_batch: usize, mut f: impl FnMut(usize)) -> Duration {
    for i in 0..per_batch {
        f(i); // warm-up
    }
    let times = (0..samples)
        .map(|_| {
            let t = Instant::now();
            for i in 0..per_batch {
                f(i);
            }
            t.elapsed().as_secs_f64() / per_batch as f64
        })
        .collect();
    Duration::from_secs_f64(median(times))
}

/// Median of `runs` runs of `f`.
fn per_run<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    let times = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let out = f();
            let elapsed = t.elapsed().as_secs_f64();
            drop(out); // dropping the result is not part of the operation
            elapsed
        })
        .collect();
    Duration::from_secs_f64(median(times))
}

struct Row {
    size: usize,
    build: Duration,
    decide: Duration,
    evaluate: Duration,
    lockout: Duration,
    /// The first plan on the snapshot, which finds its plain classes.
    plan_first: Duration,
    plan_allow: Duration,
    plan_deny: Duration,
    startup: Duration,
    rss_idle_mib: f64,
    rss_reloaded_mib: f64,
}

fn measure(size: usize, samples: usize, rt: &tokio::runtime::Runtime) -> Row {
    let w = workload(size);
    let files = w.yaml_files();
    // The source sets are made before the timing, and each run's is dropped after it.
    let mut source_sets: Vec<_> = (0..3)
        .map(|_| arbiter::load::SourceSet::from_files(files.clone()))
        .collect();
    let build = per_run(3, || {
        let sources = source_sets.pop().expect("one per run");
        (arbiter::build(&sources).expect("compiles"), sources)
    });
    let snapshot = w.snapshot();
    let reqs = requests(&w, BENCH_REQUESTS, size as u64);
    let options = arbiter::EvalOptions::default();
    let now: arbiter::Moment = jiff::Timestamp::UNIX_EPOCH.into();
    let decide = per_call(samples, 20 * BENCH_REQUESTS, |i| {
        let request = reqs[i % reqs.len()].to_raw().normalize().unwrap();
        black_box(arbiter::evaluate(&snapshot, &request, now, &options).allowed);
    });
    let built: Vec<_> = reqs
        .iter()
        .map(|r| r.to_raw().normalize().unwrap())
        .collect();
    let evaluate = per_call(samples, 20 * BENCH_REQUESTS, |i| {
        black_box(arbiter::evaluate(&snapshot, &built[i % built.len()], now, &options).allowed);
    });

    // Lockout analysis of the benchmark edit (as in `engine`).
    let proposed = w.lockout_benchmark_edit().snapshot();
    let lockout_options = LockoutOptions {
        as_of: "2026-11-22T00:00:00Z".parse().unwrap(),
        budget: Duration::from_secs(60),
        superuser: Some(arbiter::DEFAULT_SUPERUSER.to_string()),
    };
    let lockout = per_run(3, || {
        analyze(Some(&snapshot), &proposed, &lockout_options).expect("no guard errors")
    });
    drop(proposed);

    // The query plan for a team lead, for an action the team's allows cover and one its denies cover.
    let principal = arbiter::Request::builder(format!("u{}-0", w.teams / 2))
        .action("EncryptWithKey")
        .source_ip("10.1.2.3")
        .time("2026-12-03T12:00:00Z".parse().unwrap())
        .build()
        .unwrap();
    let plan_first = {
        let request = arbiter::PlanRequest::new(principal.clone(), ["EncryptWithKey"]);
        let started = std::time::Instant::now();
        black_box(arbiter::plan::plan(&snapshot, &request, now, None).kind);
        started.elapsed()
    };
    let plan_for = |action: &str| {
        let request = arbiter::PlanRequest::new(principal.clone(), [action]);
        per_call(samples, 50, |_| {
            black_box(arbiter::plan::plan(&snapshot, &request, now, None).kind);
        })
    };
    let (plan_allow, plan_deny) = (plan_for("EncryptWithKey"), plan_for("DeleteKey"));
    drop((snapshot, built));

    // The real server on the same set.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("policies");
    write_dir(&dir, &files);
    let server = start_server(&dir);
    let startup = rt.block_on(wait_serving(&server, Duration::from_secs(300)));
    // The allocator returns freed pages after its decay time (10 s), so resident memory is read after that.
    std::thread::sleep(IDLE);
    let (rss_idle, _) = rss_kib(server.child.id());
    let before = rt
        .block_on(revision(&server))
        .expect("the server answers GetStatus");
    // A one-line edit of the last policy file (write and rename); the reload must publish a new revision.
    let (rel, text) = files.last().unwrap();
    let path = dir.join(rel);
    let tmp_path = path.with_extension("yaml.tmp~");
    std::fs::write(&tmp_path, format!("{text}# edited\n")).unwrap();
    std::fs::rename(&tmp_path, &path).unwrap();
    rt.block_on(wait_revision_change(
        &server,
        &before,
        Duration::from_secs(300),
    ));
    std::thread::sleep(IDLE);
    let (rss_reloaded, _) = rss_kib(server.child.id());
    drop(server);

    Row {
        size,
        build,
        decide,
        evaluate,
        lockout,
        plan_first,
        plan_allow,
        plan_deny,
        startup,
        rss_idle_mib: rss_idle as f64 / 1024.0,
        rss_reloaded_mib: rss_reloaded as f64 / 1024.0,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6)
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rows: Vec<Row> = a
        .sizes
        .iter()
        .map(|&size| {
            let row = measure(size, a.samples, &rt);
            eprintln!("measured {size} policies");
            row
        })
        .collect();
    println!("| policies | decision (build + evaluate) | evaluate only | full build | lockout analysis | plan (EncryptWithKey / DeleteKey) | first plan (finds the plain classes) | server start-up | server RSS (idle / after a reload) |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} / {} | {} | {} | {:.1} / {:.1} MiB |",
            r.size,
            us(r.decide),
            us(r.evaluate),
            ms(r.build),
            ms(r.lockout),
            us(r.plan_allow),
            us(r.plan_deny),
            ms(r.plan_first),
            ms(r.startup),
            r.rss_idle_mib,
            r.rss_reloaded_mib
        );
    }
    let smallest = rows.iter().min_by_key(|r| r.size);
    let largest = rows.iter().max_by_key(|r| r.size);
    if let (Some(small), Some(large)) = (smallest, largest) {
        println!(
            "\ngrowth {} → {} policies: decision {:.2}×, evaluate only {:.2}×",
            small.size,
            large.size,
            large.decide.as_secs_f64() / small.decide.as_secs_f64(),
            large.evaluate.as_secs_f64() / small.evaluate.as_secs_f64()
        );
    }
}
