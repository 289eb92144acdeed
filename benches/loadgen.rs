//! gRPC load generator: starts the real `arbiter serve` binary on a generated policy set, drives it with tonic
//! clients at a fixed concurrency for a fixed duration, and reports throughput and p50 / p99 / p99.9 from an
//! HDR histogram. Request bodies are encoded once before the run (like `h2load -d`), so the client's cost per
//! call is the same for every RPC. Phases, in one run: `Authorize` and the same server's `grpc.health.v1.Health/Check`, alternating
//! for `--rounds` rounds (the median of the rounds' ratios is reported), then a steady phase and a reload storm (the policy directory rewritten N times a second), reporting
//! p99 in each and failed calls. It also reports the server's resident memory.
//!
//! `cargo bench --bench loadgen -- [--policies N] [--concurrency C] [--connections K] [--duration SECS]
//!  [--rounds R] [--storm-rate PER_SEC] [--skip-storm]
//!  [--write-dir DIR --write-frame FILE --write-json FILE --write-batch-frame FILE --write-model FILE]`
//!
//! The `--write-*` flags only write files and exit: the policy directory, a gRPC-framed `AuthorizeRequest` (for
//! `h2load -d`) and the same request as the HTTP door's JSON, a framed `AuthorizeBatchRequest` of
//! `BATCH_CHECKS` checks (the first request's principal and environment, the first `BATCH_CHECKS` requests'
//! actions and resources), and the model (the set and the first `BENCH_REQUESTS` requests with Arbiter's outcomes, as JSON,
//! which `benches/scripts/cerbos_side_by_side.py` translates for Cerbos).

#[path = "support/server.rs"]
mod server_process;
#[path = "workload/mod.rs"]
mod workload;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbiter::server::convert::request_to_proto;
use arbiter::server::proto::{self, authorizer_client::AuthorizerClient};
use bytes::{BufMut, Bytes};
use hdrhistogram::Histogram;
use prost::Message;
use server_process::{rss_kib, start_server, write_dir};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use workload::{requests, workload};

struct Args {
    policies: usize,
    concurrency: usize,
    connections: usize,
    duration: Duration,
    storm_rate: u32,
    rounds: usize,
    skip_storm: bool,
    write_dir: Option<PathBuf>,
    write_frame: Option<PathBuf>,
    write_json: Option<PathBuf>,
    write_model: Option<PathBuf>,
    write_batch_frame: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        policies: 1_000,
        concurrency: 32,
        connections: 4,
        duration: Duration::from_secs(5),
        storm_rate: 20,
        rounds: 3,
        skip_storm: false,
        write_dir: None,
        write_frame: None,
        write_json: None,
        write_model: None,
        write_batch_frame: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--policies" => a.policies = val().parse().unwrap(),
            "--concurrency" => a.concurrency = val().parse().unwrap(),
            "--connections" => a.connections = val().parse().unwrap(),
            "--duration" => a.duration = Duration::from_secs_f64(val().parse().unwrap()),
            "--storm-rate" => a.storm_rate = val().parse().unwrap(),
            "--rounds" => a.rounds = val().parse::<usize>().unwrap().max(1),
            "--skip-storm" => a.skip_storm = true,
            "--write-dir" => a.write_dir = Some(val().into()),
            "--write-frame" => a.write_frame = Some(val().into()),
            "--write-json" => a.write_json = Some(val().into()),
            "--write-model" => a.write_model = Some(val().into()),
            "--write-batch-frame" => a.write_batch_frame = Some(val().into()),
            "--bench" => {} // passed by `cargo bench`
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// A gRPC codec that sends request bodies encoded once, before the run (as `h2load -d` does), and decodes each
/// response into `M`. The client then does the same work per call for `Authorize` as for `Health/Check`, so
/// the throughput ratio measures the server, not the cost of building and encoding the requests.
struct PreEncoded<M>(std::marker::PhantomData<M>);

impl<M> Default for PreEncoded<M> {
    fn default() -> Self {
        PreEncoded(std::marker::PhantomData)
    }
}

struct BytesEncoder;

impl tonic::codec::Encoder for BytesEncoder {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

struct MessageDecoder<M>(std::marker::PhantomData<M>);

impl<M: Message + Default + Send + 'static> tonic::codec::Decoder for MessageDecoder<M> {
    type Item = M;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<M>, tonic::Status> {
        M::decode(src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

impl<M: Message + Default + Send + 'static> tonic::codec::Codec for PreEncoded<M> {
    type Encode = Bytes;
    type Decode = M;
    type Encoder = BytesEncoder;
    type Decoder = MessageDecoder<M>;

    fn encoder(&mut self) -> BytesEncoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> MessageDecoder<M> {
        MessageDecoder(std::marker::PhantomData)
    }
}

/// One unary call with a pre-encoded body; `Ok` when the server answered with status OK.
async fn unary<M: Message + Default + Send + 'static>(
    grpc: &mut tonic::client::Grpc<Channel>,
    path: &'static str,
    body: Bytes,
) -> bool {
    if grpc.ready().await.is_err() {
        return false;
    }
    grpc.unary(
        tonic::Request::new(body),
        http::uri::PathAndQuery::from_static(path),
        PreEncoded::<M>::default(),
    )
    .await
    .is_ok()
}

#[derive(Default)]
struct PhaseResult {
    calls: u64,
    failed: u64,
    hist: Option<Histogram<u64>>,
    elapsed: Duration,
}

impl PhaseResult {
    fn throughput(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }
    fn q(&self, q: f64) -> f64 {
        self.hist.as_ref().unwrap().value_at_quantile(q) as f64 / 1000.0
    }
    fn print(&self, name: &str) {
        println!(
            "{name:<24} {:>10.0} calls/s  p50 {:>7.3} ms  p99 {:>7.3} ms  p99.9 {:>7.3} ms  calls {}  failed {}",
            self.throughput(),
            self.q(0.5),
            self.q(0.99),
            self.q(0.999),
            self.calls,
            self.failed
        );
    }
}

#[derive(Clone, Copy)]
enum Call {
    Authorize,
    Health,
}

async fn phase(
    channels: &[Channel],
    reqs: &Arc<Vec<Bytes>>,
    concurrency: usize,
    duration: Duration,
    call: Call,
) -> PhaseResult {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = vec![];
    for t in 0..concurrency {
        let channel = channels[t % channels.len()].clone();
        let reqs = reqs.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let (mut calls, mut failed) = (0u64, 0u64);
            let mut grpc = tonic::client::Grpc::new(channel);
            // An empty `HealthCheckRequest` (service "") encodes to no bytes.
            let health_body = Bytes::from(
                HealthCheckRequest {
                    service: String::new(),
                }
                .encode_to_vec(),
            );
            let mut i = t * 7919;
            while Instant::now() < deadline {
                let start = Instant::now();
                let ok = match call {
                    Call::Authorize => {
                        let body = reqs[i % reqs.len()].clone();
                        unary::<proto::AuthorizeResponse>(
                            &mut grpc,
                            "/arbiter.v1.Authorizer/Authorize",
                            body,
                        )
                        .await
                    }
                    Call::Health => {
                        unary::<HealthCheckResponse>(
                            &mut grpc,
                            "/grpc.health.v1.Health/Check",
                            health_body.clone(),
                        )
                        .await
                    }
                };
                hist.record((start.elapsed().as_micros() as u64).max(1))
                    .ok();
                calls += 1;
                failed += (!ok) as u64;
                i += 1;
            }
            (hist, calls, failed)
        }));
    }
    let mut result = PhaseResult::default();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for t in tasks {
        let (h, c, f) = t.await.unwrap();
        hist.add(h).unwrap();
        result.calls += c;
        result.failed += f;
    }
    result.elapsed = started.elapsed();
    // Microseconds; `q` reports milliseconds.
    result.hist = Some(hist);
    result
}

async fn status(channel: &Channel) -> proto::Status {
    AuthorizerClient::new(channel.clone())
        .get_status(proto::GetStatusRequest {})
        .await
        .expect("status")
        .into_inner()
}

/// Checks in the `--write-batch-frame` request.
const BATCH_CHECKS: usize = 16;

/// A gRPC length-prefixed message (uncompressed), as `h2load -d` sends it.
fn grpc_frame(body: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(body);
    frame
}

fn main() {
    let a = args();
    let w = workload(a.policies);
    let files = w.yaml_files();
    let neutral = requests(&w, 1024, 42);
    let reqs: Vec<proto::AuthorizeRequest> = neutral
        .iter()
        .map(|r| request_to_proto(&r.to_raw().normalize().unwrap()))
        .collect();
    if a.write_dir.is_some()
        || a.write_frame.is_some()
        || a.write_json.is_some()
        || a.write_model.is_some()
        || a.write_batch_frame.is_some()
    {
        if let Some(path) = &a.write_model {
            let model = w.model_json(&neutral[..workload::BENCH_REQUESTS]);
            std::fs::write(path, serde_json::to_string(&model).unwrap()).unwrap();
        }
        if let Some(path) = &a.write_batch_frame {
            let first = &reqs[0];
            let batch = proto::AuthorizeBatchRequest {
                principal: first.principal.clone(),
                environment: first.environment.clone(),
                checks: reqs[..BATCH_CHECKS]
                    .iter()
                    .map(|r| proto::Check {
                        action: r.action.clone(),
                        resource: r.resource.clone(),
                    })
                    .collect(),
                explain: false,
            };
            std::fs::write(path, grpc_frame(&batch.encode_to_vec())).unwrap();
        }
        if let Some(path) = &a.write_json {
            // The same request as the frame, in the HTTP door's JSON (for h2load --h1 against /v1/authorize).
            let json = neutral[0].to_raw().normalize().unwrap().to_json();
            std::fs::write(path, json.to_string()).unwrap();
        }
        if let Some(dir) = &a.write_dir {
            write_dir(dir, &files);
        }
        if let Some(path) = &a.write_frame {
            std::fs::write(path, grpc_frame(&reqs[0].encode_to_vec())).unwrap();
        }
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("policies");
    write_dir(&dir, &files);
    let server = start_server(&dir);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Wait for SERVING.
        let started = Instant::now();
        let channels: Vec<Channel> = loop {
            let mut chans = vec![];
            for _ in 0..a.connections {
                match Endpoint::from_shared(server.addr.clone()).unwrap().connect().await {
                    Ok(c) => chans.push(c),
                    Err(_) => break,
                }
            }
            if chans.len() == a.connections {
                let mut h = HealthClient::new(chans[0].clone());
                if let Ok(r) = h.check(HealthCheckRequest { service: String::new() }).await {
                    if r.into_inner().status == 1 {
                        break chans;
                    }
                }
            }
            assert!(started.elapsed() < Duration::from_secs(60), "server did not become SERVING");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        println!(
            "server up with {} policies in {:.0} ms (first load incl. lockout check); concurrency {}, connections {}, {:?} per phase",
            a.policies,
            started.elapsed().as_secs_f64() * 1e3,
            a.concurrency,
            a.connections,
            a.duration
        );
        let reqs: Arc<Vec<Bytes>> = Arc::new(reqs.iter().map(|r| Bytes::from(r.encode_to_vec())).collect());
        // Warm-up.
        phase(&channels, &reqs, a.concurrency, Duration::from_secs(1), Call::Authorize).await;
        // Authorize and Health/Check alternate, `rounds` times each, so that drift in the machine's load
        // touches both; each round's ratio is of two adjacent phases, and the median ratio is reported.
        let mut ratios = vec![];
        for round in 1..=a.rounds {
            let authz = phase(&channels, &reqs, a.concurrency, a.duration, Call::Authorize).await;
            let health = phase(&channels, &reqs, a.concurrency, a.duration, Call::Health).await;
            authz.print(&format!("Authorize ({round})"));
            health.print(&format!("Health/Check ({round})"));
            ratios.push(authz.throughput() / health.throughput());
        }
        let mut sorted = ratios.clone();
        sorted.sort_by(f64::total_cmp);
        println!(
            "ratio Authorize/Health throughput: median {:.3} (rounds: {})",
            sorted[sorted.len() / 2],
            ratios.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>().join(", ")
        );
        let (rss, hwm) = rss_kib(server.child.id());
        println!("server resident memory: VmRSS {:.1} MiB, VmHWM {:.1} MiB", rss as f64 / 1024.0, hwm as f64 / 1024.0);

        if a.skip_storm {
            return;
        }
        let before = status(&channels[0]).await;
        let steady = phase(&channels, &reqs, a.concurrency, a.duration, Call::Authorize).await;
        // Storm: rewrite one policy file `storm_rate` times a second (alternating two valid versions).
        let stop = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(AtomicU64::new(0));
        let (target, original) = files.iter().find(|(p, _)| p.to_string_lossy().starts_with("policies-")).unwrap().clone();
        // The variant adds one harmless team policy, so every version is valid and passes the lockout guard.
        let variant = format!(
            "{original}---\nkind: Policy\nid: storm-extra\neffect: allow\nactions: [CreateKey]\n\
             resources: [\"kylo:kylo:vault:keys:storm-*\"]\n---\nkind: PolicyAttachment\nid: storm-extra-all\n\
             policy: storm-extra\nprincipal_selector: {{}}\n"
        );
        let writer = {
            let (stop, writes, path) = (stop.clone(), writes.clone(), dir.join(&target));
            let period = Duration::from_secs_f64(1.0 / a.storm_rate as f64);
            std::thread::spawn(move || {
                let mut n = 0u64;
                let next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let text = if n.is_multiple_of(2) { &variant } else { &original };
                    // Editor-style write-and-rename.
                    let tmp = path.with_extension("yaml.tmp~");
                    std::fs::write(&tmp, text).unwrap();
                    std::fs::rename(&tmp, &path).unwrap();
                    n += 1;
                    writes.store(n, Ordering::Relaxed);
                    let due = next + period * n as u32;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
            })
        };
        let storm = phase(&channels, &reqs, a.concurrency, a.duration, Call::Authorize).await;
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let after = status(&channels[0]).await;
        steady.print("Authorize steady");
        storm.print("Authorize reload storm");
        println!(
            "storm: {} rewrites at {}/s; reloads ok {} failed {} during the storm; p99 storm/steady {:.2}; failed calls {}",
            writes.load(Ordering::Relaxed),
            a.storm_rate,
            after.reloads_ok - before.reloads_ok,
            after.reloads_failed - before.reloads_failed,
            storm.q(0.99) / steady.q(0.99),
            steady.failed + storm.failed
        );
    });
}
