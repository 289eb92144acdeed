//! Hot reload of the token keys (`--jwks`, `--jwt-key`): `notify` on the directories holding the key files
//! (so editors' write-and-rename and Kubernetes' symlink swaps are seen), a short debounce, then
//! `Verifier::reload`. A file that does not read keeps the last good keys; SIGHUP and forced reloads re-read
//! them too (see `Supervisor`).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::token::Verifier;
use crate::shutdown::Trigger;

/// Quiet time after the last change before the keys are re-read.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// Re-reads the keys, logging the outcome.
pub fn reload_keys(verifier: &Verifier) {
    match verifier.reload() {
        Ok(true) => tracing::info!(revision = %verifier.keys_revision(), "token keys reloaded"),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "token keys not reloaded; the last good keys stay"),
    }
}

/// Watches the key files until `stop` is pulled. Without a working `notify`, keys change only on SIGHUP.
pub fn spawn(verifier: Arc<Verifier>, stop: Trigger, sighup: bool) {
    let dirs: HashSet<PathBuf> = verifier
        .settings()
        .files()
        .map(|f| match f.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        })
        .collect();
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            let _ = tx.try_send(());
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the token keys; they reload on SIGHUP only");
            return;
        }
    };
    for dir in &dirs {
        if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch a key directory");
        }
    }
    let mut hangups = if sighup {
        crate::shutdown::hangups()
    } else {
        None
    };
    tokio::spawn(async move {
        let _watcher = watcher;
        loop {
            tokio::select! {
                _ = stop.pulled() => return,
                got = rx.recv() => if got.is_none() { return },
                Some(()) = async {
                    match hangups.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                } => {}
            }
            // Debounce: wait until the directory has been quiet for a moment.
            loop {
                tokio::select! {
                    _ = stop.pulled() => return,
                    _ = tokio::time::sleep(DEBOUNCE) => break,
                    got = rx.recv() => if got.is_none() { return },
                }
            }
            let verifier = verifier.clone();
            let _ = tokio::task::spawn_blocking(move || reload_keys(&verifier)).await;
        }
    });
}
