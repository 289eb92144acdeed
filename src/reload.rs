//! Hot reload: watch the policy directory, debounce, rebuild the whole set off the executor, swap it in.
//!
//! - `notify` watches the directory (recursively, following symlinks), never single files, so editors'
//!   write-and-rename, `git checkout` and Kubernetes ConfigMap `..data` symlink swaps are all seen. Should the
//!   native watcher be unavailable, a polling watcher takes over.
//! - Events are debounced: a reload starts once the directory has been quiet for `debounce`, or at the latest
//!   `max(1 s, 10 × debounce)` after the first event of a burst, so a storm of edits still reloads regularly.
//! - A `.yaml`/`.yml` file that was written to and not yet closed holds the reload back until it is closed (or
//!   has been silent for `max(2 s, 20 × debounce)`): a writer that truncates a file and writes it in several
//!   pieces through one open file is never read half-way. (Separate processes each appending a piece cannot be
//!   told apart from finished edits; a half file that does not parse is refused like any invalid set.)
//! - The set is read, hashed, parsed, validated, compiled and lockout-checked in `spawn_blocking`. The same
//!   content as the snapshot being served is not rebuilt (its revision, a content hash, is unchanged); neither is
//!   content that already failed. On success the snapshot is published with `arc-swap` and the revision changes.
//! - A failed build keeps the last good snapshot. The failure goes to the log, to `GetStatus.last_reload_error`
//!   and to `arbiter_reloads_total{result="error"}`.
//! - The lockout check (`crate::simulate::analyze`, the simulator's own analysis) checks the guards of the set
//!   being served and of the new set against the new set, and the erosion of the guards. A finding refuses the
//!   set the same way (`arbiter_reloads_total{result="lockout"}`) unless lockouts are allowed, in which case the
//!   findings are logged as warnings and the set is published.
//! - SIGHUP (and [`ReloadRequest`]) forces a rebuild and re-creates the watch.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use jiff::Timestamp;
use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::diag::Diagnostics;
use crate::load::load_dir;
use crate::metrics::Metrics;
use crate::shutdown::Trigger;
use crate::simulate::{Finding, LockoutOptions};
use crate::snapshot::{Snapshot, SnapshotStore};

/// Longest `last_reload_error` kept, in bytes.
const MAX_ERROR_TEXT: usize = 16 * 1024;

/// A refused reload, as shown by `GetStatus`.
#[derive(Debug, Clone)]
pub struct ReloadFailure {
    /// Every error, one per line, with file:line:col.
    pub message: String,
    pub at: Timestamp,
    /// The content hash of the refused set, when it could be read.
    pub revision: Option<String>,
}

/// Reload history shared with `GetStatus`. Lock-free.
#[derive(Debug, Default)]
pub struct ReloadStatus {
    last_error: ArcSwapOption<ReloadFailure>,
    ok: AtomicU64,
    failed: AtomicU64,
}

impl ReloadStatus {
    pub fn last_error(&self) -> Option<Arc<ReloadFailure>> {
        self.last_error.load_full()
    }
    /// Snapshots published, the first load included.
    pub fn reloads_ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }
    /// Reloads refused.
    pub fn reloads_failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

/// What one reload did.
#[derive(Debug)]
pub enum Outcome {
    /// A new snapshot is being served.
    Published(Arc<Snapshot>),
    /// The files hold what is already served (or what already failed): nothing was rebuilt.
    Unchanged,
    /// The set was refused; the last good snapshot (if any) keeps serving.
    Failed(Diagnostics),
}

enum Built {
    /// A new snapshot, with the lockout findings that were allowed through.
    Snapshot(Box<Snapshot>, Vec<Finding>),
    Unchanged,
    AlreadyFailed,
    Failed {
        revision: Option<String>,
        diagnostics: Diagnostics,
        /// Refused by the lockout check (the set itself is valid).
        lockout: bool,
    },
}

/// The lockout check run on every load.
#[derive(Debug, Clone)]
pub struct LockoutCheck {
    /// Publish a set with findings anyway (`--allow-lockout`), logging them as warnings.
    pub allow: bool,
    /// The superuser name (a guard protecting it is an error).
    pub superuser: String,
    /// Search budget per load; running out is an "inconclusive" finding.
    pub budget: Duration,
}

/// Loads, builds and publishes the policy directory.
#[derive(Debug)]
pub struct Reloader {
    dir: PathBuf,
    store: Arc<SnapshotStore>,
    status: Arc<ReloadStatus>,
    metrics: Metrics,
    lockout: Option<LockoutCheck>,
}

impl Reloader {
    pub fn new(
        dir: PathBuf,
        store: Arc<SnapshotStore>,
        status: Arc<ReloadStatus>,
        metrics: Metrics,
        lockout: Option<LockoutCheck>,
    ) -> Self {
        Reloader {
            dir,
            store,
            status,
            metrics,
            lockout,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads and builds the directory off the executor and publishes it if it is valid and new (or `force`).
    pub async fn reload(&self, force: bool) -> Outcome {
        let dir = self.dir.clone();
        let current = self.store.load();
        let failed = self.status.last_error().and_then(|f| f.revision.clone());
        let lockout = self.lockout.clone();
        let started = Instant::now();
        let built = tokio::task::spawn_blocking(move || {
            build(&dir, current, failed, force, lockout.as_ref())
        })
        .await;
        let elapsed = started.elapsed();
        let built = built.unwrap_or_else(|e| Built::Failed {
            revision: None,
            diagnostics: internal_error(&self.dir, &format!("the reload task failed: {e}")),
            lockout: false,
        });
        match built {
            Built::Snapshot(snapshot, allowed_findings) => {
                let snapshot: Arc<Snapshot> = Arc::from(snapshot);
                if let Some(previous) = self.store.publish(snapshot.clone()) {
                    // Freed on a blocking thread, not on the executor, when the last reader lets go of it here.
                    tokio::task::spawn_blocking(move || drop(previous));
                }
                self.status.last_error.store(None);
                self.status.ok.fetch_add(1, Ordering::Relaxed);
                self.metrics.reloads_ok.increment(1);
                self.metrics.reload_duration.record(elapsed.as_secs_f64());
                self.metrics
                    .snapshot_policies
                    .set(snapshot.policy_count() as f64);
                tracing::info!(
                    revision = %snapshot.revision,
                    policies = snapshot.policy_count(),
                    attachments = snapshot.attachment_count(),
                    groups = snapshot.group_count(),
                    warnings = snapshot.warnings.len(),
                    elapsed_ms = elapsed.as_millis() as u64,
                    dir = %self.dir.display(),
                    "policy set loaded"
                );
                for w in snapshot.warnings.iter() {
                    tracing::warn!("{w}");
                }
                for f in &allowed_findings {
                    tracing::warn!(
                        guard = %f.guard,
                        kind = f.kind.as_str(),
                        "published despite a lockout finding (lockouts allowed): {}",
                        f.message
                    );
                }
                Outcome::Published(snapshot)
            }
            Built::Unchanged => {
                // The files on disk are what is served: an earlier failure is no longer current.
                self.status.last_error.store(None);
                tracing::debug!(dir = %self.dir.display(), "policy files unchanged");
                Outcome::Unchanged
            }
            Built::AlreadyFailed => {
                tracing::debug!(dir = %self.dir.display(), "policy files still hold the set that failed");
                Outcome::Unchanged
            }
            Built::Failed {
                revision,
                diagnostics,
                lockout,
            } => {
                self.status.failed.fetch_add(1, Ordering::Relaxed);
                if lockout {
                    self.metrics.reloads_lockout.increment(1);
                } else {
                    self.metrics.reloads_error.increment(1);
                }
                let message = render_errors(&diagnostics);
                match self.store.load() {
                    Some(serving) => tracing::error!(
                        dir = %self.dir.display(),
                        errors = diagnostics.errors().count(),
                        serving = %serving.revision,
                        "policy set refused; keeping the last good snapshot:\n{message}"
                    ),
                    // The first load: the caller reports every error.
                    None => tracing::error!(
                        dir = %self.dir.display(),
                        errors = diagnostics.errors().count(),
                        "the policy set is invalid"
                    ),
                }
                self.status.last_error.store(Some(Arc::new(ReloadFailure {
                    message,
                    at: Timestamp::now(),
                    revision,
                })));
                Outcome::Failed(diagnostics)
            }
        }
    }
}

fn build(
    dir: &Path,
    current: Option<Arc<Snapshot>>,
    failed: Option<String>,
    force: bool,
    lockout: Option<&LockoutCheck>,
) -> Built {
    let sources = match load_dir(dir) {
        Ok(s) => s,
        Err(diagnostics) => {
            return Built::Failed {
                revision: None,
                diagnostics,
                lockout: false,
            }
        }
    };
    let revision = sources.revision();
    if !force {
        if current.as_ref().map(|c| c.revision.as_str()) == Some(revision.as_str()) {
            return Built::Unchanged;
        }
        if failed.as_deref() == Some(revision.as_str()) {
            return Built::AlreadyFailed;
        }
    }
    let snapshot = match crate::compile::build(&sources) {
        Ok(snapshot) => snapshot,
        Err(diagnostics) => {
            return Built::Failed {
                revision: Some(revision),
                diagnostics,
                lockout: false,
            }
        }
    };
    let Some(check) = lockout else {
        return Built::Snapshot(Box::new(snapshot), Vec::new());
    };
    let options = LockoutOptions {
        as_of: Timestamp::now(),
        budget: check.budget,
        superuser: Some(check.superuser.clone()),
    };
    match crate::simulate::analyze(current.as_deref(), &snapshot, &options) {
        Ok(findings) if findings.is_empty() || check.allow => {
            Built::Snapshot(Box::new(snapshot), findings)
        }
        Ok(findings) => Built::Failed {
            revision: Some(revision),
            diagnostics: findings_to_diagnostics(dir, &findings, &snapshot, current.as_deref()),
            lockout: true,
        },
        Err(errors) => {
            let mut diagnostics = Diagnostics::new();
            for e in errors {
                let origin = guard_origin(&e.guard, &snapshot, current.as_deref());
                let (file, pos) = origin.unwrap_or((Arc::from(dir), crate::diag::Pos::WHOLE_FILE));
                diagnostics.push(crate::diag::Diagnostic::error(
                    crate::diag::Code::InvalidGuard,
                    &file,
                    pos,
                    e.message,
                ));
            }
            Built::Failed {
                revision: Some(revision),
                diagnostics,
                lockout: false,
            }
        }
    }
}

fn guard_origin(
    id: &str,
    proposed: &Snapshot,
    current: Option<&Snapshot>,
) -> Option<(Arc<Path>, crate::diag::Pos)> {
    std::iter::once(proposed)
        .chain(current)
        .flat_map(|s| s.compiled.guards.iter())
        .find(|g| &*g.id == id)
        .map(|g| (g.origin.file.clone(), g.origin.pos))
}

/// Lockout findings as errors at their guard's position, with the counterexample as help.
pub fn findings_to_diagnostics(
    dir: &Path,
    findings: &[Finding],
    proposed: &Snapshot,
    current: Option<&Snapshot>,
) -> Diagnostics {
    let mut diagnostics = Diagnostics::new();
    for f in findings {
        let (file, pos) = guard_origin(&f.guard, proposed, current)
            .unwrap_or((Arc::from(dir), crate::diag::Pos::WHOLE_FILE));
        let mut d = crate::diag::Diagnostic::error(
            crate::diag::Code::Lockout,
            &file,
            pos,
            format!("{}: {}", f.kind.as_str(), f.message),
        );
        if let Some(example) = &f.counterexample {
            d = d.with_help(format!(
                "counterexample (try it with `arbiter eval`): {example}"
            ));
        }
        diagnostics.push(d);
    }
    diagnostics
}

fn internal_error(dir: &Path, message: &str) -> Diagnostics {
    let mut d = Diagnostics::new();
    d.push(crate::diag::Diagnostic::error(
        crate::diag::Code::Internal,
        dir,
        crate::diag::Pos::WHOLE_FILE,
        message,
    ));
    d
}

/// The errors (not the warnings) one per line, cut to a sane length.
pub fn render_errors(diagnostics: &Diagnostics) -> String {
    let mut out = String::new();
    let total = diagnostics.errors().count();
    for (i, d) in diagnostics.errors().enumerate() {
        let line = d.to_string();
        if out.len() + line.len() > MAX_ERROR_TEXT {
            out.push_str(&format!("... and {} more errors\n", total - i));
            break;
        }
        out.push_str(&line);
        if !line.ends_with('\n') {
            out.push('\n');
        }
    }
    out.trim_end().to_string()
}

/// Asks the reload loop for a forced reload (what SIGHUP does).
#[derive(Debug, Clone)]
pub struct ReloadRequest {
    tx: mpsc::Sender<()>,
}

impl ReloadRequest {
    pub fn channel() -> (ReloadRequest, mpsc::Receiver<()>) {
        let (tx, rx) = mpsc::channel(1);
        (ReloadRequest { tx }, rx)
    }

    /// Requests a forced reload. Requests made while one is pending coalesce.
    pub fn request(&self) {
        let _ = self.tx.try_send(());
    }
}

/// A file-system change, reduced to what the debouncer needs.
#[derive(Debug)]
enum Change {
    /// Data written to a file that may still be open.
    Written(PathBuf),
    /// A file opened for writing was closed.
    Closed(PathBuf),
    /// Paths removed or renamed away.
    Gone(Vec<PathBuf>),
    /// Anything else that may change the set (creation, rename, metadata, rescan).
    Other,
}

fn is_policy_name(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(crate::load::is_policy_file)
}

/// Events on regular files that can never be policy files (editor swap files, backups) are ignored.
fn is_irrelevant(event: &notify::Event) -> bool {
    !event.paths.is_empty()
        && event.paths.iter().all(|p| {
            !is_policy_name(p) && std::fs::metadata(p).map(|m| m.is_file()).unwrap_or(false)
        })
}

fn classify(event: notify::Event) -> Option<Change> {
    if event.need_rescan() {
        return Some(Change::Other);
    }
    // Opens and reads (ours included) change nothing.
    let closed_write = matches!(
        event.kind,
        EventKind::Access(AccessKind::Close(AccessMode::Write))
    );
    if (matches!(event.kind, EventKind::Access(_)) && !closed_write) || is_irrelevant(&event) {
        return None;
    }
    match event.kind {
        EventKind::Access(_) => Some(Change::Closed(event.paths.into_iter().next()?)),
        EventKind::Modify(ModifyKind::Data(_)) | EventKind::Modify(ModifyKind::Any) => {
            match event.paths.into_iter().next() {
                Some(p) if is_policy_name(&p) => Some(Change::Written(p)),
                _ => Some(Change::Other),
            }
        }
        EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) => {
            Some(Change::Gone(event.paths))
        }
        _ => Some(Change::Other),
    }
}

/// Whether `event` removes or renames away `dir` itself.
fn removes_root(event: &notify::Event, dir: &Path) -> bool {
    matches!(
        event.kind,
        EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
    ) && event.paths.iter().any(|p| p == dir)
}

/// Starts watching `dir`; native watcher first, polling as the fallback.
/// `root_lost` is raised when the watched directory itself is removed or renamed away: a directory re-created
/// at once may reuse the inode number, so its identity alone cannot tell that the watch went stale.
fn watch(
    dir: &Path,
    tx: mpsc::UnboundedSender<Change>,
    root_lost: Arc<AtomicBool>,
) -> Option<Box<dyn Watcher + Send>> {
    let handler = {
        let tx = tx.clone();
        let dir = dir.to_path_buf();
        move |res: notify::Result<notify::Event>| match res {
            Ok(event) => {
                if removes_root(&event, &dir) {
                    root_lost.store(true, Ordering::SeqCst);
                }
                if let Some(change) = classify(event) {
                    let _ = tx.send(change);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "file watch error; rescanning");
                let _ = tx.send(Change::Other);
            }
        }
    };
    match notify::recommended_watcher(handler) {
        Ok(mut w) => match w.watch(dir, RecursiveMode::Recursive) {
            Ok(()) => return Some(Box::new(w)),
            Err(e) => {
                tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the policy directory natively; polling every 2 s")
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "no native file watcher; polling the policy directory every 2 s")
        }
    }
    let handler = move |res: notify::Result<notify::Event>| {
        if let Ok(event) = res {
            if classify(event).is_some() {
                let _ = tx.send(Change::Other);
            }
        }
    };
    let config = notify::Config::default().with_poll_interval(Duration::from_secs(2));
    match notify::PollWatcher::new(handler, config) {
        Ok(mut w) => match w.watch(dir, RecursiveMode::Recursive) {
            Ok(()) => Some(Box::new(w)),
            Err(e) => {
                tracing::error!(error = %e, dir = %dir.display(), "cannot watch the policy directory; reload with SIGHUP");
                None
            }
        },
        Err(e) => {
            tracing::error!(error = %e, "cannot watch the policy directory; reload with SIGHUP");
            None
        }
    }
}

/// The identity (device, inode) of the directory `path` names now, following symlinks.
fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// How often the watched directory itself is checked for being replaced (deleted and re-created, renamed
/// away, or re-pointed when it is a symlink), which a watch on the old directory cannot see.
const ROOT_CHECK: Duration = Duration::from_secs(1);

/// The file watch: started before the first load so that no change is missed.
pub struct Watch {
    dir: PathBuf,
    enabled: bool,
    /// The directory the watch was set on.
    root: Option<(u64, u64)>,
    /// Raised by the watcher when that directory itself went away.
    root_lost: Arc<AtomicBool>,
    watcher: Option<Box<dyn Watcher + Send>>,
    tx: mpsc::UnboundedSender<Change>,
    rx: mpsc::UnboundedReceiver<Change>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("dir", &self.dir)
            .field("watching", &self.watcher.is_some())
            .finish()
    }
}

impl Watch {
    /// Starts watching `dir` when `enabled`; otherwise only forced reloads happen.
    pub fn start(dir: &Path, enabled: bool) -> Watch {
        let (tx, rx) = mpsc::unbounded_channel();
        let root = identity(dir);
        let root_lost = Arc::new(AtomicBool::new(false));
        let watcher = if enabled && root.is_some() {
            watch(dir, tx.clone(), root_lost.clone())
        } else {
            None
        };
        Watch {
            dir: dir.to_path_buf(),
            enabled,
            root,
            root_lost,
            watcher,
            tx,
            rx,
        }
    }

    fn rewatch(&mut self) {
        if self.enabled {
            self.watcher = None;
            self.root_lost.store(false, Ordering::SeqCst);
            self.root = identity(&self.dir);
            if self.root.is_some() {
                self.watcher = watch(&self.dir, self.tx.clone(), self.root_lost.clone());
            }
        }
    }

    /// Re-creates the watch if the directory was replaced; true when it was.
    fn check_root(&mut self) -> bool {
        let lost = self.root_lost.load(Ordering::SeqCst);
        if !self.enabled || (!lost && identity(&self.dir) == self.root) {
            return false;
        }
        tracing::info!(dir = %self.dir.display(), "the policy directory was replaced; watching the new one");
        self.rewatch();
        true
    }
}

/// Debounce timing.
#[derive(Debug, Clone, Copy)]
pub struct Debounce {
    /// Quiet time before a reload.
    pub quiet: Duration,
}

impl Debounce {
    fn max_wait(self) -> Duration {
        (self.quiet * 10).max(Duration::from_secs(1))
    }
    fn open_write_wait(self) -> Duration {
        (self.quiet * 20).max(Duration::from_secs(2))
    }
}

/// The reload loop: file events (debounced), forced requests and SIGHUP, until `stop` is pulled.
pub async fn run(
    reloader: Arc<Reloader>,
    mut watch: Watch,
    debounce: Debounce,
    mut forced: mpsc::Receiver<()>,
    sighup: bool,
    stop: Trigger,
) {
    let mut hangups = if sighup {
        crate::shutdown::hangups()
    } else {
        None
    };
    let mut root_check = tokio::time::interval(ROOT_CHECK);
    root_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let force = tokio::select! {
            _ = stop.pulled() => return,
            _ = root_check.tick() => {
                if !watch.check_root() {
                    continue;
                }
                false
            }
            Some(()) = forced.recv() => true,
            _ = hangup(&mut hangups) => {
                tracing::info!("SIGHUP: reloading");
                watch.rewatch();
                true
            }
            Some(change) = watch.rx.recv() => {
                                let force = match settle(change, &mut watch.rx, &mut forced, debounce, &stop).await {
                    Some(force) => force,
                    None => return,
                };
                // A burst that removed the directory itself leaves the watch stale: re-create it first.
                watch.check_root();
                force
            }
        };
        reloader.reload(force).await;
    }
}

async fn hangup(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            if s.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// Waits until a burst of changes has settled. Returns whether a forced reload was requested meanwhile, or
/// `None` when stopping.
async fn settle(
    first: Change,
    rx: &mut mpsc::UnboundedReceiver<Change>,
    forced: &mut mpsc::Receiver<()>,
    debounce: Debounce,
    stop: &Trigger,
) -> Option<bool> {
    let started = tokio::time::Instant::now();
    let mut last = started;
    let mut open_writes: HashSet<PathBuf> = HashSet::new();
    note(first, &mut open_writes);
    loop {
        let deadline = if open_writes.is_empty() {
            (last + debounce.quiet).min(started + debounce.max_wait())
        } else {
            (last + debounce.open_write_wait())
                .min(started + debounce.max_wait() + debounce.open_write_wait())
        };
        tokio::select! {
            _ = stop.pulled() => return None,
            Some(()) = forced.recv() => return Some(true),
            change = rx.recv() => match change {
                Some(change) => {
                    last = tokio::time::Instant::now();
                    note(change, &mut open_writes);
                }
                None => return Some(false),
            },
            _ = tokio::time::sleep_until(deadline) => {
                if !open_writes.is_empty() {
                    tracing::warn!(files = ?open_writes, "policy files still open for writing; reloading anyway");
                }
                return Some(false);
            }
        }
    }
}

fn note(change: Change, open_writes: &mut HashSet<PathBuf>) {
    match change {
        Change::Written(p) => {
            open_writes.insert(p);
        }
        Change::Closed(p) => {
            open_writes.remove(&p);
        }
        Change::Gone(paths) => {
            for p in paths {
                open_writes.remove(&p);
            }
        }
        Change::Other => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// File systems commonly hand a directory re-created at once the inode number it had, so only the
    /// watcher's report of the removal tells that the watch is stale. (Where the number differs the identity
    /// check alone already catches it.)
    #[test]
    fn a_directory_recreated_in_place_is_rewatched() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("policies");
        std::fs::create_dir(&dir).unwrap();
        let mut watch = Watch::start(&dir, true);
        assert!(!watch.check_root(), "nothing changed yet");
        std::fs::remove_dir(&dir).unwrap();
        std::fs::create_dir(&dir).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !watch.check_root() {
            assert!(
                Instant::now() < deadline,
                "the replaced directory was never noticed"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!watch.check_root(), "re-watched once, then settled");
        assert!(watch.watcher.is_some());
    }
}
