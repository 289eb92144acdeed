//! The watch: `notify` on the policy directory (with a polling fallback), debouncing, open-write hold-back,
//! SIGHUP and forced requests, and the loop that asks `Reloader::reload` for a rebuild.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::shutdown::Trigger;

use super::rebuild::Reloader;

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

/// The reload loop: file events (debounced), forced requests and SIGHUP, until `stop` is pulled. `hangups` is
/// installed by the caller before it announces anything, so that an early SIGHUP becomes a reload rather than the
/// signal's default action, which ends the process.
pub async fn run(
    reloader: Arc<Reloader>,
    mut watch: Watch,
    debounce: Debounce,
    mut forced: mpsc::Receiver<()>,
    mut hangups: Option<tokio::signal::unix::Signal>,
    stop: Trigger,
) {
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
    use std::time::Instant;

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
