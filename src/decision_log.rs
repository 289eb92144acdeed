//! The decision log: one JSON line per decision, written off the request path.
//!
//! `Authorize` hands each entry to a bounded queue with `try_send` and never waits: when the queue is full the
//! entry is dropped and counted in `arbiter_decision_log_dropped_total`. A dedicated writer thread (not a task on
//! the async executor, so disk stalls cannot hold up decisions) serialises the entries and writes them through
//! a buffer, flushing whenever the queue runs empty.
//!
//! Line format (one JSON object per line):
//!
//! ```json
//! {"timestamp": "2026-11-23T12:00:00.000123Z", "call_id": "5f3a9c1e-2a", "request": {...},
//!  "decision": "allow", "reason": "allowed", "policies": ["key-owner-full-access"],
//!  "revision": "9f86d081884c7d65", "duration_us": 14}
//! ```
//!
//! `request` is the JSON request shape of SPEC section 3 ([`Request::to_json`]) with `environment.time` set to
//! the instant the decision was made for, so the line replays exactly (`arbiter simulate --requests`). Lines of
//! an `AuthorizeBatch` share the call id and add `"check": <index>`.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use jiff::Timestamp;
use metrics::Counter;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::eval::Reason;
use crate::request::{Environment, Principal, Request, Resource};

/// Where decision-log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Stdout,
    File(PathBuf),
}

impl Target {
    /// `-` is standard output; anything else a file path (appended to, created if missing).
    pub fn parse(s: &str) -> Target {
        if s == "-" {
            Target::Stdout
        } else {
            Target::File(PathBuf::from(s))
        }
    }
}

/// The part of a request shared by every check of a call: principal and environment, with
/// `environment.time` already resolved to the instant the decision was made for.
#[derive(Debug, Clone)]
pub struct Subject {
    pub principal: Principal,
    pub environment: Environment,
}

/// One decision to log.
#[derive(Debug)]
pub struct Entry {
    pub timestamp: Timestamp,
    pub call_id: Arc<str>,
    /// The index of the check within an `AuthorizeBatch`.
    pub check: Option<u32>,
    pub subject: Arc<Subject>,
    pub action: String,
    pub resource: Resource,
    pub allowed: bool,
    pub reason: Reason,
    pub policies: Vec<Arc<str>>,
    pub revision: String,
    pub duration_us: u64,
}

impl Entry {
    /// The full request this entry decided, with its resolved time.
    pub fn request(&self) -> Request {
        Request {
            principal: self.subject.principal.clone(),
            action: self.action.clone(),
            resource: self.resource.clone(),
            environment: self.subject.environment.clone(),
        }
    }

    /// The log line as a JSON value.
    pub fn to_json(&self) -> Value {
        let mut line = json!({
            "timestamp": self.timestamp.to_string(),
            "call_id": &*self.call_id,
        });
        if let Some(check) = self.check {
            line["check"] = json!(check);
        }
        line["request"] = self.request().to_json();
        line["decision"] = json!(if self.allowed { "allow" } else { "deny" });
        line["reason"] = json!(self.reason.as_str());
        line["policies"] = json!(self.policies);
        line["revision"] = json!(self.revision);
        line["duration_us"] = json!(self.duration_us);
        line
    }
}

enum Msg {
    Entry(Box<Entry>),
    Close(oneshot::Sender<()>),
}

/// The sending side, held by the gRPC service. Cheap to clone.
#[derive(Clone)]
pub struct DecisionLogger {
    tx: mpsc::Sender<Msg>,
    dropped: Counter,
    dropped_count: Arc<AtomicU64>,
}

impl std::fmt::Debug for DecisionLogger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionLogger")
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl DecisionLogger {
    /// Queues an entry without waiting; a full (or closed) queue drops it and counts the drop.
    #[inline]
    pub fn log(&self, entry: Entry) {
        if self.tx.try_send(Msg::Entry(Box::new(entry))).is_err() {
            self.dropped.increment(1);
            self.dropped_count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Entries dropped so far by this log.
    pub fn dropped(&self) -> u64 {
        self.dropped_count.load(Ordering::Relaxed)
    }

    /// Writes every entry queued so far, flushes, and stops the writer. Later entries are dropped (and counted).
    pub async fn close(&self) {
        let (ack_tx, ack_rx) = oneshot::channel();
        if self.tx.send(Msg::Close(ack_tx)).await.is_ok() {
            let _ = ack_rx.await;
        }
    }
}

/// Opens the target and starts the writer thread.
pub fn open(
    target: &Target,
    capacity: usize,
    dropped: Counter,
    write_errors: Counter,
) -> io::Result<DecisionLogger> {
    let out: Box<dyn Write + Send> = match target {
        Target::Stdout => Box::new(io::stdout()),
        Target::File(path) => Box::new(OpenOptions::new().create(true).append(true).open(path)?),
    };
    let (tx, rx) = mpsc::channel(capacity.max(1));
    std::thread::Builder::new()
        .name("arbiter-decision-log".into())
        .spawn(move || writer(rx, BufWriter::with_capacity(64 * 1024, out), write_errors))?;
    Ok(DecisionLogger {
        tx,
        dropped,
        dropped_count: Arc::new(AtomicU64::new(0)),
    })
}

fn writer(mut rx: mpsc::Receiver<Msg>, mut out: BufWriter<Box<dyn Write + Send>>, errors: Counter) {
    let mut failures: u64 = 0;
    let mut write = |out: &mut BufWriter<Box<dyn Write + Send>>, entry: &Entry| {
        let mut line = serde_json::to_vec(&entry.to_json()).unwrap_or_default();
        line.push(b'\n');
        if let Err(e) = out.write_all(&line) {
            errors.increment(1);
            failures += 1;
            if failures == 1 || failures % 10_000 == 0 {
                tracing::error!(error = %e, failures, "cannot write the decision log");
            }
        }
    };
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            Msg::Entry(entry) => {
                write(&mut out, &entry);
                if rx.is_empty() {
                    let _ = out.flush();
                }
            }
            Msg::Close(ack) => {
                rx.close();
                while let Ok(msg) = rx.try_recv() {
                    match msg {
                        Msg::Entry(entry) => write(&mut out, &entry),
                        Msg::Close(other) => {
                            let _ = other.send(());
                        }
                    }
                }
                let _ = out.flush();
                let _ = ack.send(());
                return;
            }
        }
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(n: u32) -> Entry {
        let request = Request::from_json(json!({
            "principal": {"id": "alice", "groups": ["hr"]},
            "action": "ReadKey",
            "resource": {"uri": "kylo:kylo:vault:keys:k1"},
            "environment": {"time": "2026-11-23T12:00:00Z", "port": 443}
        }))
        .unwrap();
        Entry {
            timestamp: "2026-11-23T12:00:01Z".parse().unwrap(),
            call_id: Arc::from(format!("c-{n}")),
            check: None,
            subject: Arc::new(Subject {
                principal: request.principal,
                environment: request.environment,
            }),
            action: request.action,
            resource: request.resource,
            allowed: false,
            reason: Reason::NoApplicablePolicy,
            policies: vec![],
            revision: "r".into(),
            duration_us: 3,
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        // No writer: the queue (capacity 2) fills, and further entries are dropped at once.
        let (tx, _rx) = mpsc::channel(2);
        let logger = DecisionLogger {
            tx,
            dropped: Counter::noop(),
            dropped_count: Arc::new(AtomicU64::new(0)),
        };
        for n in 0..5 {
            logger.log(entry(n));
        }
        assert_eq!(logger.dropped(), 3);
    }

    #[test]
    fn line_shape_and_close_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        let logger = open(
            &Target::File(path.clone()),
            16,
            Counter::noop(),
            Counter::noop(),
        )
        .unwrap();
        logger.log(entry(1));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(logger.close());
        let text = std::fs::read_to_string(&path).unwrap();
        let line: Value = serde_json::from_str(text.trim()).unwrap();
        let keys: Vec<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            keys,
            [
                "timestamp",
                "call_id",
                "request",
                "decision",
                "reason",
                "policies",
                "revision",
                "duration_us"
            ]
        );
        assert_eq!(line["decision"], "deny");
        assert_eq!(line["reason"], "no_applicable_policy");
        let request = Request::from_json(line["request"].clone()).unwrap();
        assert_eq!(request.environment.port, Some(443));
        // After close, entries are dropped, not queued forever.
        logger.log(entry(2));
        assert_eq!(logger.dropped(), 1);
    }
}
