//! Process signals for `arbiter serve`: SIGTERM/SIGINT start a graceful shutdown, SIGHUP forces a reload.
//!
//! Also a tiny level-triggered [`Trigger`] (a `watch` channel) used to tell the server's tasks to stop.

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Completes on the first SIGTERM or SIGINT, returning its name. If the handlers cannot be installed, it logs
/// the problem and never completes (the process can still be killed).
pub async fn terminate() -> &'static str {
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "cannot install SIGTERM/SIGINT handlers");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// A stream of SIGHUPs, or `None` when the handler cannot be installed.
pub fn hangups() -> Option<tokio::signal::unix::Signal> {
    match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, "cannot install the SIGHUP handler; reloads come from file events only");
            None
        }
    }
}

/// A one-way switch: once pulled it stays pulled, and every waiter, early or late, sees it.
#[derive(Clone, Debug)]
pub struct Trigger {
    tx: std::sync::Arc<watch::Sender<bool>>,
}

impl Default for Trigger {
    fn default() -> Self {
        Self::new()
    }
}

impl Trigger {
    pub fn new() -> Self {
        Trigger {
            tx: std::sync::Arc::new(watch::channel(false).0),
        }
    }

    pub fn pull(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_pulled(&self) -> bool {
        *self.tx.borrow()
    }

    /// A receiver for `wait_for(|pulled| *pulled)`.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }

    /// Completes once pulled.
    pub async fn pulled(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|p| *p).await;
    }
}
