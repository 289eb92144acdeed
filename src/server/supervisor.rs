//! Supervision: waits for the first load (health turns SERVING once it is published), runs the reload loop,
//! and on shutdown stops the listeners, drains calls in flight within the grace period, stops the reload loop,
//! flushes the decision log and removes the Unix socket.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use super::*;
use crate::decision_log::DecisionLogger;
use crate::diag::Diagnostics;
use crate::reload::{self, Debounce, Outcome, Reloader, Watch};
use crate::shutdown::Trigger;
use edge::InFlight;

pub(super) struct Supervisor {
    pub(super) reloader: Arc<Reloader>,
    pub(super) watch: Option<Watch>,
    pub(super) debounce: Debounce,
    pub(super) forced: Option<tokio::sync::mpsc::Receiver<()>>,
    /// SIGHUP, taken over before the listeners are announced (see [`reload::run`]); `None` when SIGHUP reloads
    /// are off.
    pub(super) hangups: Option<tokio::signal::unix::Signal>,
    pub(super) gate: Option<Arc<Notify>>,
    pub(super) health: HealthReporter,
    pub(super) stop: Trigger,
    pub(super) stop_serving: Trigger,
    pub(super) serving: Vec<JoinHandle<Result<(), tonic::transport::Error>>>,
    pub(super) grace: Duration,
    pub(super) log: Option<DecisionLogger>,
    /// The Unix sockets to remove on shutdown, with their inodes.
    pub(super) sockets: Vec<(PathBuf, u64)>,
    pub(super) metrics_stop: Trigger,
    pub(super) ready: watch::Sender<Option<Result<String, Diagnostics>>>,
    pub(super) inflight: InFlight,
}

impl Supervisor {
    pub(super) async fn run(mut self) -> Result<(), ServeError> {
        if let Some(gate) = self.gate.take() {
            tokio::select! {
                _ = gate.notified() => {}
                _ = self.stop.pulled() => {}
            }
        }
        let first = if self.stop.is_pulled() {
            None
        } else {
            Some(self.reloader.reload(false).await)
        };
        let failure = match first {
            Some(Outcome::Published(snapshot)) => {
                self.health
                    .set_service_status("", ServingStatus::Serving)
                    .await;
                self.health
                    .set_service_status(SERVICE_NAME, ServingStatus::Serving)
                    .await;
                self.ready.send_replace(Some(Ok(snapshot.revision.clone())));
                tracing::info!(revision = %snapshot.revision, "serving");
                None
            }
            Some(Outcome::Failed(diags)) => Some(diags),
            Some(Outcome::Unchanged) | None => {
                let mut d = Diagnostics::new();
                d.push(crate::diag::Diagnostic::error(
                    crate::diag::Code::Internal,
                    self.reloader.dir(),
                    crate::diag::Pos::WHOLE_FILE,
                    "the server stopped before the first load",
                ));
                Some(d)
            }
        };
        if let Some(diags) = failure {
            self.ready.send_replace(Some(Err(diags.clone())));
            self.grace = Duration::ZERO;
            self.stop_all(None).await;
            return Err(ServeError::InvalidPolicies(diags));
        }

        let reload_stop = Trigger::new();
        let (Some(watch), Some(forced)) = (self.watch.take(), self.forced.take()) else {
            self.stop_all(None).await;
            return Ok(());
        };
        let reload_task = tokio::spawn(reload::run(
            self.reloader.clone(),
            watch,
            self.debounce,
            forced,
            self.hangups.take(),
            reload_stop.clone(),
        ));
        self.stop.pulled().await;
        self.stop_all(Some((reload_stop, reload_task))).await;
        Ok(())
    }

    async fn stop_all(&mut self, reload: Option<(Trigger, JoinHandle<()>)>) {
        tracing::info!(
            in_flight = self.inflight.get(),
            grace_ms = self.grace.as_millis() as u64,
            "shutting down: closing the listeners and draining in-flight calls"
        );
        self.health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        self.health
            .set_service_status(SERVICE_NAME, ServingStatus::NotServing)
            .await;
        self.stop_serving.pull();
        // Ends open `Health/Watch` streams (after they have seen NOT_SERVING), so they do not hold the drain.
        self.health.clear_service_status("").await;
        self.health.clear_service_status(SERVICE_NAME).await;
        let mut serving = std::mem::take(&mut self.serving);
        let drained = tokio::time::timeout(self.grace, async {
            for task in serving.iter_mut() {
                match task.await {
                    Ok(Err(e)) => tracing::error!(error = %e, "gRPC server error"),
                    Err(e) => tracing::error!(error = %e, "gRPC server task failed"),
                    Ok(Ok(())) => {}
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                in_flight = self.inflight.get(),
                "grace period over; abandoning the calls still in flight"
            );
            for task in &serving {
                task.abort();
            }
        }
        if let Some((stop, task)) = reload {
            stop.pull();
            let _ = task.await;
        }
        self.metrics_stop.pull();
        if let Some(log) = &self.log {
            if tokio::time::timeout(Duration::from_secs(10), log.close())
                .await
                .is_err()
            {
                tracing::warn!("the decision log did not flush within 10 s");
            }
        }
        for (path, inode) in &self.sockets {
            // Only our own socket: another server may have replaced it meanwhile.
            if std::fs::symlink_metadata(path).is_ok_and(|m| m.ino() == *inode) {
                let _ = std::fs::remove_file(path);
            }
        }
        tracing::info!("stopped");
    }
}
