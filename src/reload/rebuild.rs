//! Rebuild and gate: read, hash, parse, validate, compile and lockout-check the whole policy directory off the
//! executor, and publish it only if it is valid, new and safe; otherwise keep the last good snapshot and report.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use crate::moment::Moment;

use crate::compile::ParseCache;
use crate::diag::Diagnostics;
use crate::load::load_dir;
use crate::metrics::Metrics;
use crate::simulate::{Finding, LockoutOptions};
use crate::snapshot::{Snapshot, SnapshotStore};

/// Longest `last_reload_error` kept, in bytes.
const MAX_ERROR_TEXT: usize = 16 * 1024;

/// A refused reload, as shown by `GetStatus`.
#[derive(Debug, Clone)]
pub struct ReloadFailure {
    /// Every error, one per line, with file:line:col.
    pub message: String,
    pub at: Moment,
    /// The content hash of the refused set, when it could be read.
    pub revision: Option<String>,
}

/// Reload history shared with `GetStatus`. Decisions never read it; a publication (the snapshot and the
/// history together) and [`ReloadStatus::view`] take a short lock, so that a status is of one moment.
#[derive(Debug, Default)]
pub struct ReloadStatus {
    last_error: ArcSwapOption<ReloadFailure>,
    ok: AtomicU64,
    failed: AtomicU64,
    moment: Mutex<()>,
}

/// The reload history and the snapshot served, read at one moment: a new revision always comes with its
/// reload counted and the last error cleared, and a count never runs ahead of its snapshot.
#[derive(Debug, Clone)]
pub struct StatusView {
    pub last_error: Option<Arc<ReloadFailure>>,
    /// Snapshots published, the first load included.
    pub reloads_ok: u64,
    /// Reloads refused.
    pub reloads_failed: u64,
    pub snapshot: Option<Arc<Snapshot>>,
}

impl ReloadStatus {
    /// The history and `store`'s snapshot, read together.
    pub fn view(&self, store: &SnapshotStore) -> StatusView {
        self.at_one_moment(|status| StatusView {
            last_error: status.last_error.load_full(),
            reloads_ok: status.ok.load(Ordering::Relaxed),
            reloads_failed: status.failed.load(Ordering::Relaxed),
            snapshot: store.load(),
        })
    }

    /// Runs `f` with no view or other update in between.
    fn at_one_moment<T>(&self, f: impl FnOnce(&Self) -> T) -> T {
        let _moment = self
            .moment
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(self)
    }

    pub fn last_error(&self) -> Option<Arc<ReloadFailure>> {
        self.last_error.load_full()
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
    /// The parsed files of the last build: a rebuild re-parses only the files that changed. Locked by a
    /// reload's blocking task for its build (never across an await, never on the decision path).
    parsed: Arc<Mutex<ParseCache>>,
    /// Held for a whole reload, from reading the served snapshot to publishing: reloads from the watch loop,
    /// SIGHUP and `ReloadingEngine::reload` run one at a time, so each is checked against the set it replaces.
    serial: tokio::sync::Mutex<()>,
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
            parsed: Arc::default(),
            serial: tokio::sync::Mutex::new(()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads and builds the directory off the executor and publishes it if it is valid and new (or `force`).
    pub async fn reload(&self, force: bool) -> Outcome {
        let _one_at_a_time = self.serial.lock().await;
        let dir = self.dir.clone();
        let current = self.store.load();
        let failed = self.status.last_error().and_then(|f| f.revision.clone());
        let lockout = self.lockout.clone();
        let parsed = self.parsed.clone();
        let started = Instant::now();
        let built = tokio::task::spawn_blocking(move || {
            // A poisoned cache (a panic mid-build) is emptied and the lock cleared: this build parses
            // everything again, and the ones after it use the cache as usual.
            let mut cache = parsed.lock().unwrap_or_else(|poisoned| {
                parsed.clear_poison();
                let mut cache = poisoned.into_inner();
                *cache = ParseCache::default();
                cache
            });
            build(&dir, current, failed, force, lockout.as_ref(), &mut cache)
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
                let previous = self.status.at_one_moment(|status| {
                    status.last_error.store(None);
                    status.ok.fetch_add(1, Ordering::Relaxed);
                    self.store.publish(snapshot.clone())
                });
                // Where plans are served (plans were asked of the snapshot replaced), the new one's plain
                // classes are found now, off the executor, rather than by the next plan request (tens of
                // milliseconds at 100,000 policies; decisions never read them).
                if previous.as_ref().is_some_and(|p| p.plain_classes_asked()) {
                    let warm = snapshot.clone();
                    tokio::task::spawn_blocking(move || {
                        warm.plain_classes();
                    });
                }
                if let Some(previous) = previous {
                    // Freed on a blocking thread, not on the executor, when the last reader lets go of it here.
                    tokio::task::spawn_blocking(move || drop(previous));
                }
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
                // The first few warnings in full, then a count: `arbiter check` prints them all.
                for w in snapshot.warnings.iter().take(LOGGED_WARNINGS) {
                    tracing::warn!("{w}");
                }
                let more = snapshot.warnings.len().saturating_sub(LOGGED_WARNINGS);
                if more > 0 {
                    tracing::warn!(
                        more,
                        "and {more} more warnings; `arbiter check` lists them all"
                    );
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
                self.status
                    .at_one_moment(|status| status.last_error.store(None));
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
                let failure = Arc::new(ReloadFailure {
                    message,
                    at: Moment::now(),
                    revision,
                });
                self.status.at_one_moment(|status| {
                    status.failed.fetch_add(1, Ordering::Relaxed);
                    status.last_error.store(Some(failure));
                });
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
    cache: &mut ParseCache,
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
    let snapshot = match crate::compile::build_cached(&sources, cache) {
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
        as_of: Moment::now(),
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

/// Warnings logged in full per reload; the rest are counted.
pub const LOGGED_WARNINGS: usize = 5;

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

#[cfg(test)]
mod tests {
    use super::*;

    /// 20 denies attached to everyone (one plain class), with a comment that makes each version's text differ.
    fn write_set(dir: &Path, version: u32) {
        let mut yaml = format!("# version {version}\n");
        for i in 0..20 {
            yaml += &format!(
                "---\nkind: Policy\nid: p{i:02}\neffect: deny\nactions: [\"*\"]\nresources: [\"k:t{i}-*\"]\n---\nkind: PolicyAttachment\nid: p{i:02}-a\npolicy: p{i:02}\nprincipal_selector: {{}}\n"
            );
        }
        std::fs::write(dir.join("p.yaml"), yaml).expect("the set is written");
    }

    async fn publish(reloader: &Reloader) -> Arc<Snapshot> {
        match reloader.reload(true).await {
            Outcome::Published(snapshot) => snapshot,
            other => panic!("expected a publication, got {other:?}"),
        }
    }

    /// Polls (generous bound, no asserted duration) until the snapshot's plain classes are found.
    async fn found(snapshot: &Snapshot) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if snapshot.has_plain_classes() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// A snapshot that replaces one on which plans were made gets its plain classes found by the reloader; one
    /// that replaces a snapshot nobody planned on does not.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn plain_classes_are_found_after_publishing_where_plans_are_served() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = Arc::new(SnapshotStore::new());
        let reloader = Reloader::new(
            dir.path().to_path_buf(),
            store.clone(),
            Arc::new(ReloadStatus::default()),
            Metrics::noop(),
            None,
        );
        write_set(dir.path(), 1);
        let first = publish(&reloader).await;
        write_set(dir.path(), 2);
        let second = publish(&reloader).await;
        // Nobody planned on the first: the second is left alone (watched for half a second, in which a warm-up of
        // 20 policies would finish; the correct code passes however long it is watched).
        for _ in 0..50 {
            assert!(!first.has_plain_classes() && !second.has_plain_classes());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        // A plan on the served snapshot finds its classes; the next publication's are then found too.
        assert!(
            second.plain_classes().is_member(0),
            "the 20 denies form a class"
        );
        write_set(dir.path(), 3);
        let third = publish(&reloader).await;
        assert!(!Arc::ptr_eq(&second, &third));
        assert!(
            found(&third).await,
            "the new snapshot's classes were not found"
        );
    }
}
