//! Hot reload of key and certificate files (the token keys of `--jwks` / `--jwt-key`, the TLS certificate, key
//! and client CA): `notify` on the directories holding the files (so editors' write-and-rename and Kubernetes'
//! symlink swaps are seen), a short debounce, then the owner's reload (`Verifier::reload`,
//! `TlsReloader::reload`), which keeps the last good material when a file does not read. SIGHUP and forced
//! reloads re-read them too.

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

/// Watches the token keys until `stop` is pulled.
pub fn spawn(verifier: Arc<Verifier>, stop: Trigger, sighup: bool) {
    let files: Vec<PathBuf> = verifier.settings().files().map(PathBuf::from).collect();
    watch_files("the token keys", &files, stop, sighup, move || {
        reload_keys(&verifier)
    });
}

/// Watches `files` until `stop` is pulled, calling `reload` (off the executor) after each settled change and on
/// SIGHUP. Without a working `notify`, they change on SIGHUP only.
pub fn watch_files(
    what: &'static str,
    files: &[PathBuf],
    stop: Trigger,
    sighup: bool,
    reload: impl Fn() + Send + Sync + 'static,
) {
    let reload = Arc::new(reload);
    let dirs: HashSet<PathBuf> = files
        .iter()
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
            tracing::warn!(error = %e, "cannot watch {what}; they reload on SIGHUP only");
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
            let reload = reload.clone();
            let _ = tokio::task::spawn_blocking(move || reload()).await;
        }
    });
}
