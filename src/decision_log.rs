//! The decision log: one JSON line per decision, written off the request path.
//!
//! `Authorize` hands each entry to a bounded queue with `try_send` and never waits: when the queue is full the
//! entry is dropped and counted in `arbiter_decision_log_dropped_total`. A dedicated writer thread (not a task on
//! the async executor, so disk stalls cannot hold up decisions) serialises the entries and writes them through
//! a buffer, flushing whenever the queue runs empty. When the output fails (a full disk, a closed pipe) the lines
//! are discarded and counted in `arbiter_decision_log_write_errors_total`; decisions are never held up.
//!
//! Line format (one JSON object per line):
//!
//! ```json
//! {"timestamp": "2026-11-23T12:00:00.000123Z", "call_id": "5f3a9c1e-2a",
//!  "principal": {...}, "action": "ReadKey", "resource": {...}, "environment": {"time": ..., ...},
//!  "decision": "allow", "reason": "allowed", "policies": ["key-owner-full-access"],
//!  "revision": "9f86d081884c7d65", "duration_us": 14}
//! ```
//!
//! A line *is* a request in the JSON request shape of SPEC section 3 ([`Request::to_json`]), with
//! `environment.time` set to the instant the decision was made for, plus the decision's fields
//! ([`crate::request::DECISION_LOG_FIELDS`], which request readers set aside). So a line replays exactly
//! (`arbiter simulate --requests`) and `arbiter eval --request` reads it as it is. Lines of an `AuthorizeBatch`
//! share the call id and add `"check": <index>`.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::moment::Moment;
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
    pub timestamp: Moment,
    pub call_id: Arc<str>,
    /// The index of the check within an `AuthorizeBatch`.
    pub check: Option<u32>,
    pub subject: Arc<Subject>,
    pub action: String,
    pub resource: Resource,
    pub allowed: bool,
    pub reason: Reason,
    pub policies: Vec<Arc<str>>,
    /// Allows that matched but were undetermined (written only when there are some).
    pub undetermined_allow: Vec<Arc<str>>,
    pub revision: String,
    pub duration_us: u64,
    /// Why a token was not accepted (reason `unauthenticated`); never the token itself.
    pub cause: Option<Arc<str>>,
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
        if let Value::Object(request) = self.request().to_json() {
            for (key, value) in request {
                line[key.as_str()] = value;
            }
        }
        line["decision"] = json!(if self.allowed { "allow" } else { "deny" });
        line["reason"] = json!(self.reason.as_str());
        line["policies"] = json!(self.policies);
        if !self.undetermined_allow.is_empty() {
            line["undetermined_allow"] = json!(self.undetermined_allow);
        }
        line["revision"] = json!(self.revision);
        line["duration_us"] = json!(self.duration_us);
        if let Some(cause) = &self.cause {
            line["cause"] = json!(&**cause);
        }
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
    write_errors_count: Arc<AtomicU64>,
}

impl std::fmt::Debug for DecisionLogger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionLogger")
            .field("dropped", &self.dropped())
            .field("write_errors", &self.write_errors())
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

    /// Lines lost because the output failed (also `arbiter_decision_log_write_errors_total`).
    pub fn write_errors(&self) -> u64 {
        self.write_errors_count.load(Ordering::Relaxed)
    }

    /// Writes every entry queued so far, flushes, and stops the writer. Later entries are dropped (and counted).
    pub async fn close(&self) {
        let (ack_tx, ack_rx) = oneshot::channel();
        if self.tx.send(Msg::Close(ack_tx)).await.is_ok() {
            let _ = ack_rx.await;
        }
    }
}

/// Opens the target and starts the writer thread. `write_errors` counts lines that could not be written.
pub fn open(
    target: &Target,
    capacity: usize,
    dropped: Counter,
    write_errors: Counter,
) -> io::Result<DecisionLogger> {
    let out: Box<dyn Output> = match target {
        Target::Stdout => Box::new(io::stdout()),
        Target::File(path) => Box::new(OpenOptions::new().create(true).append(true).open(path)?),
    };
    spawn(out, capacity, dropped, write_errors)
}

/// Where lines go. A file can be cut back to where a failed batch began, so that a write failing part-way (a
/// full disk) never leaves a partial line: the next line starts clean.
pub trait Output: Write + Send {
    /// The length before a batch, when the output can be cut back to it.
    fn mark(&mut self) -> Option<u64> {
        None
    }
    /// Cuts the output back to `len`.
    fn rewind(&mut self, _len: u64) -> io::Result<()> {
        Ok(())
    }
}

impl Output for io::Stdout {}

impl Output for std::fs::File {
    fn mark(&mut self) -> Option<u64> {
        self.metadata().ok().map(|m| m.len())
    }
    fn rewind(&mut self, len: u64) -> io::Result<()> {
        // Only ever cut what this batch added: a file rotated away meanwhile (copytruncate) is left alone.
        if self.metadata()?.len() >= len {
            self.set_len(len)?;
        }
        Ok(())
    }
}

/// Starts the writer thread on any output (tests inject failing ones).
pub fn spawn(
    out: Box<dyn Output>,
    capacity: usize,
    dropped: Counter,
    write_errors: Counter,
) -> io::Result<DecisionLogger> {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let write_errors_count = Arc::new(AtomicU64::new(0));
    let lost = LostLines {
        counter: write_errors,
        count: write_errors_count.clone(),
        reported: 0,
    };
    std::thread::Builder::new()
        .name("arbiter-decision-log".into())
        .spawn(move || writer(rx, LineBuffer::new(out, lost)))?;
    Ok(DecisionLogger {
        tx,
        dropped,
        dropped_count: Arc::new(AtomicU64::new(0)),
        write_errors_count,
    })
}

/// Lines that could not be written: counted in the metric and locally, logged sparingly.
struct LostLines {
    counter: Counter,
    count: Arc<AtomicU64>,
    reported: u64,
}

impl LostLines {
    fn add(&mut self, lines: u64, error: &io::Error) {
        if lines == 0 {
            return;
        }
        self.counter.increment(lines);
        let total = self.count.fetch_add(lines, Ordering::Relaxed) + lines;
        // The first failure, then about every 10,000 lost lines.
        if self.reported == 0 || total / 10_000 > self.reported / 10_000 {
            tracing::error!(error = %error, lost = total, "cannot write the decision log");
        }
        self.reported = total;
    }
}

/// Whole lines, buffered and written in batches. Every line is either written or counted as lost: a failed
/// flush counts all the lines it held (some may have reached the output) and discards them, so a failing output
/// (a full disk) never holds memory or stalls the writer.
struct LineBuffer {
    out: Box<dyn Output>,
    buf: Vec<u8>,
    lines: u64,
    lost: LostLines,
}

impl LineBuffer {
    const CAPACITY: usize = 64 * 1024;

    fn new(out: Box<dyn Output>, lost: LostLines) -> Self {
        LineBuffer {
            out,
            buf: Vec::with_capacity(Self::CAPACITY),
            lines: 0,
            lost,
        }
    }

    fn push(&mut self, entry: &Entry) {
        if self.buf.len() >= Self::CAPACITY {
            self.flush();
        }
        match serde_json::to_writer(&mut self.buf, &entry.to_json()) {
            Ok(()) => {
                self.buf.push(b'\n');
                self.lines += 1;
            }
            Err(e) => self.lost.add(1, &io::Error::other(e)),
        }
    }

    fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let mark = self.out.mark();
        let result = self
            .out
            .write_all(&self.buf)
            .and_then(|()| self.out.flush());
        if let Err(e) = result {
            // Whatever part of the batch reached the file is cut off: every line is whole or absent.
            if let Some(len) = mark {
                if let Err(cut) = self.out.rewind(len) {
                    tracing::error!(error = %cut, "cannot cut a partial decision-log line");
                    // At least end it, so that the next line starts clean.
                    let _ = self.out.write_all(b"\n");
                }
            }
            self.lost.add(self.lines, &e);
        }
        self.buf.clear();
        self.lines = 0;
    }
}

fn writer(mut rx: mpsc::Receiver<Msg>, mut out: LineBuffer) {
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            Msg::Entry(entry) => {
                out.push(&entry);
                if rx.is_empty() {
                    out.flush();
                }
            }
            Msg::Close(ack) => {
                rx.close();
                while let Ok(msg) = rx.try_recv() {
                    match msg {
                        Msg::Entry(entry) => out.push(&entry),
                        Msg::Close(other) => {
                            let _ = other.send(());
                        }
                    }
                }
                out.flush();
                let _ = ack.send(());
                return;
            }
        }
    }
    out.flush();
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
            undetermined_allow: vec![],
            revision: "r".into(),
            duration_us: 3,
            cause: None,
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
            write_errors_count: Arc::new(AtomicU64::new(0)),
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
                "principal",
                "action",
                "resource",
                "environment",
                "decision",
                "reason",
                "policies",
                "revision",
                "duration_us"
            ]
        );
        assert_eq!(line["decision"], "deny");
        assert_eq!(line["reason"], "no_applicable_policy");
        // The whole line reads back as the request it logged.
        let request = Request::from_json(line.clone()).unwrap();
        assert_eq!(request, entry(1).request());
        assert_eq!(request.environment.port, Some(443));
        // Undetermined allows are written when there are some, and a line carrying them still replays.
        let mut forgot = entry(3);
        forgot.undetermined_allow = vec![Arc::from("needs-mfa")];
        let line = forgot.to_json();
        assert_eq!(line["undetermined_allow"], json!(["needs-mfa"]));
        assert_eq!(Request::from_json(line).unwrap(), forgot.request());
        // After close, entries are dropped, not queued forever.
        logger.log(entry(2));
        assert_eq!(logger.dropped(), 1);
    }

    /// An output that fails every write, like `/dev/full`.
    struct Full;
    impl Output for Full {}
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from_raw_os_error(28))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A real file on a disk that fills up after `room` more bytes: the write that crosses it stops part-way.
    struct FillingDisk {
        file: std::fs::File,
        room: usize,
    }
    impl Write for FillingDisk {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::from_raw_os_error(28));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.file.write(&buf[..n])
        }
        fn flush(&mut self) -> io::Result<()> {
            self.file.flush()
        }
    }
    impl Output for FillingDisk {
        fn mark(&mut self) -> Option<u64> {
            self.file.mark()
        }
        fn rewind(&mut self, len: u64) -> io::Result<()> {
            self.file.rewind(len)
        }
    }

    #[test]
    fn a_disk_filling_up_mid_line_leaves_only_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.jsonl");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        let one_line = serde_json::to_vec(&entry(0).to_json()).unwrap().len() + 1;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        // Room for two and a half lines: the first batch fits, the second stops inside a line.
        let disk = FillingDisk {
            file,
            room: one_line * 5 / 2,
        };
        let logger = spawn(Box::new(disk), 1024, Counter::noop(), Counter::noop()).unwrap();
        logger.log(entry(1));
        logger.log(entry(2));
        // Let the writer take the first batch on its own.
        std::thread::sleep(std::time::Duration::from_millis(200));
        for n in 3..6 {
            logger.log(entry(n));
        }
        rt.block_on(logger.close());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "a partial line was left: {text:?}"
        );
        let written = text.lines().count() as u64;
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line).expect("every line is whole JSON");
        }
        // Every line is written or counted as lost, and something was lost.
        assert_eq!(written + logger.write_errors(), 5);
        assert!(logger.write_errors() > 0);
    }

    #[test]
    fn a_failing_output_counts_every_lost_line() {
        let logger = spawn(Box::new(Full), 1024, Counter::noop(), Counter::noop()).unwrap();
        for n in 0..100 {
            logger.log(entry(n));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(logger.close());
        assert_eq!(logger.dropped(), 0);
        assert_eq!(logger.write_errors(), 100);
    }
}
