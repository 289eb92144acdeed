//! The `arbiter.v1.Authorizer` gRPC service: `Authorize`, `AuthorizeBatch`, `GetStatus` and `Simulate`.
//!
//! The decision path takes one snapshot (`SnapshotStore::load`, a single atomic load) per call or per batch,
//! takes "now" once, evaluates synchronously (no `.await`, no lock, no I/O), records metrics through handles
//! registered at start-up, and hands the decision-log entry to a bounded queue without waiting. Evaluation runs
//! under `catch_unwind`: an engine bug answers INTERNAL, never ALLOW, and never tears down the connection.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tonic::{Request, Response, Status};

use super::convert::{self, AuthorizeInput, BatchInput};
use super::proto;
use crate::decision_log::{DecisionLogger, Entry, Subject};
use crate::eval::{evaluate, Decision, EvalOptions, Reason};
use crate::metrics::Metrics;
use crate::reload::ReloadStatus;
use crate::request::{Request as DomainRequest, RequestError, Resource};
use crate::snapshot::{Snapshot, SnapshotStore};

/// Everything the service reads.
#[derive(Debug)]
pub struct ServiceState {
    pub store: Arc<SnapshotStore>,
    pub reload: Arc<ReloadStatus>,
    pub superuser: String,
    pub log: Option<DecisionLogger>,
    pub metrics: Metrics,
    /// Search budget of `Simulate`'s lockout analysis.
    pub lockout_budget: Duration,
    call_prefix: String,
    calls: AtomicU64,
}

impl ServiceState {
    pub fn new(
        store: Arc<SnapshotStore>,
        reload: Arc<ReloadStatus>,
        superuser: String,
        log: Option<DecisionLogger>,
        metrics: Metrics,
        lockout_budget: Duration,
    ) -> Self {
        // Call ids are `<process prefix>-<counter>`: unique within a process, and across restarts in practice.
        let mixed = (Timestamp::now().as_nanosecond() as u64)
            ^ u64::from(std::process::id()).rotate_left(40);
        let prefix = (mixed ^ (mixed >> 32)) as u32;
        ServiceState {
            store,
            reload,
            superuser,
            log,
            metrics,
            lockout_budget,
            call_prefix: format!("{prefix:08x}"),
            calls: AtomicU64::new(0),
        }
    }

    /// `<prefix>-<counter in hex>`, written into a stack buffer: the `Arc` is the call's only allocation for it.
    fn next_call_id(&self) -> Arc<str> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let prefix = self.call_prefix.as_bytes();
        let mut buf = [0u8; 8 + 1 + 16];
        buf[..prefix.len()].copy_from_slice(prefix);
        buf[prefix.len()] = b'-';
        let digits = (16 - n.leading_zeros() as usize / 4).max(1);
        let start = prefix.len() + 1;
        for (i, slot) in buf[start..start + digits].iter_mut().enumerate() {
            let nibble = (n >> (4 * (digits - 1 - i))) & 0xf;
            *slot = b"0123456789abcdef"[nibble as usize];
        }
        Arc::from(std::str::from_utf8(&buf[..start + digits]).unwrap_or("call"))
    }

    fn snapshot(&self) -> Result<Arc<Snapshot>, Status> {
        self.store
            .load()
            .ok_or_else(|| Status::unavailable("no policy set is loaded yet"))
    }

    fn options(&self, explain: bool) -> EvalOptions<'_> {
        EvalOptions {
            superuser: Some(self.superuser.as_str()),
            explain,
        }
    }

    /// Metrics and the superuser audit line for one decision.
    #[inline]
    fn record(&self, decision: &Decision, request: &DomainRequest, call_id: &str, seconds: f64) {
        if decision.allowed {
            self.metrics.allow.increment(1);
        } else {
            self.metrics.deny.increment(1);
        }
        self.metrics.decision_duration.record(seconds);
        if decision.reason == Reason::Superuser {
            self.metrics.superuser.increment(1);
            tracing::info!(
                call_id,
                principal = %request.principal.id,
                action = %request.action,
                resource = request.resource.uri.as_deref().unwrap_or(""),
                "superuser decision: allowed by the superuser rule"
            );
        }
    }

    /// One `Authorize` call, synchronously: validate, evaluate against one snapshot, record, log, respond.
    pub fn authorize(
        &self,
        msg: proto::AuthorizeRequest,
    ) -> Result<proto::AuthorizeResponse, Status> {
        let started = Instant::now();
        let input = catch_unwind(AssertUnwindSafe(|| AuthorizeInput::try_from(msg)))
            .map_err(|_| internal_panic("reading the request"))?
            .map_err(invalid)?;
        let snapshot = self.snapshot()?;
        let now = Timestamp::now();
        let options = self.options(input.explain);
        let decision = catch_unwind(AssertUnwindSafe(|| {
            evaluate(&snapshot, &input.request, now, &options)
        }))
        .map_err(|_| internal_panic("evaluating"))?;
        let elapsed = started.elapsed();
        let call_id = self.next_call_id();
        let time = input.request.environment.time.unwrap_or(now);
        self.record(&decision, &input.request, &call_id, elapsed.as_secs_f64());
        let response = convert::response(&decision, &snapshot.revision, &call_id, time);
        if let Some(log) = &self.log {
            let DomainRequest {
                principal,
                action,
                resource,
                mut environment,
            } = input.request;
            environment.time = Some(time);
            log.log(Entry {
                timestamp: now,
                call_id,
                check: None,
                subject: Arc::new(Subject {
                    principal,
                    environment,
                }),
                action,
                resource,
                allowed: decision.allowed,
                reason: decision.reason,
                policies: decision.policies,
                revision: snapshot.revision.clone(),
                duration_us: elapsed.as_micros() as u64,
            });
        }
        Ok(response)
    }
}

/// The tonic service.
#[derive(Debug, Clone)]
pub struct AuthorizerService {
    state: Arc<ServiceState>,
}

impl AuthorizerService {
    pub fn new(state: Arc<ServiceState>) -> Self {
        AuthorizerService { state }
    }
}

fn invalid(e: RequestError) -> Status {
    Status::invalid_argument(format!("{}: {}", e.field, e.message))
}

fn internal_panic(what: &str) -> Status {
    tracing::error!("{what} panicked; answered INTERNAL");
    Status::internal(format!("internal error while {what}"))
}

#[tonic::async_trait]
impl proto::authorizer_server::Authorizer for AuthorizerService {
    async fn authorize(
        &self,
        request: Request<proto::AuthorizeRequest>,
    ) -> Result<Response<proto::AuthorizeResponse>, Status> {
        self.state
            .authorize(request.into_inner())
            .map(Response::new)
    }

    async fn authorize_batch(
        &self,
        request: Request<proto::AuthorizeBatchRequest>,
    ) -> Result<Response<proto::AuthorizeBatchResponse>, Status> {
        let state = &*self.state;
        let msg = request.into_inner();
        let input = catch_unwind(AssertUnwindSafe(|| BatchInput::try_from(msg)))
            .map_err(|_| internal_panic("reading the request"))?
            .map_err(invalid)?;
        let snapshot = state.snapshot()?;
        let now = Timestamp::now();
        let options = state.options(input.explain);
        let call_id = state.next_call_id();
        let BatchInput {
            principal,
            environment,
            checks,
            ..
        } = input;
        let time = environment.time.unwrap_or(now);
        // One request is reused for every check: only the action and resource change.
        let mut request = DomainRequest {
            principal,
            action: String::new(),
            resource: Resource::default(),
            environment,
        };
        let subject = state.log.as_ref().map(|_| {
            let mut environment = request.environment.clone();
            environment.time = Some(time);
            Arc::new(Subject {
                principal: request.principal.clone(),
                environment,
            })
        });
        let mut results = Vec::with_capacity(checks.len());
        for (i, check) in checks.into_iter().enumerate() {
            let started = Instant::now();
            request.action = check.action;
            request.resource = check.resource;
            let decision = catch_unwind(AssertUnwindSafe(|| {
                evaluate(&snapshot, &request, now, &options)
            }))
            .map_err(|_| internal_panic("evaluating"))?;
            let elapsed = started.elapsed();
            state.record(&decision, &request, &call_id, elapsed.as_secs_f64());
            results.push(convert::response(
                &decision,
                &snapshot.revision,
                &call_id,
                time,
            ));
            if let (Some(log), Some(subject)) = (&state.log, &subject) {
                log.log(Entry {
                    timestamp: now,
                    call_id: call_id.clone(),
                    check: Some(i as u32),
                    subject: subject.clone(),
                    action: std::mem::take(&mut request.action),
                    resource: std::mem::take(&mut request.resource),
                    allowed: decision.allowed,
                    reason: decision.reason,
                    policies: decision.policies,
                    revision: snapshot.revision.clone(),
                    duration_us: elapsed.as_micros() as u64,
                });
            }
        }
        Ok(Response::new(proto::AuthorizeBatchResponse {
            results,
            revision: snapshot.revision.clone(),
        }))
    }

    async fn get_status(
        &self,
        _request: Request<proto::GetStatusRequest>,
    ) -> Result<Response<proto::Status>, Status> {
        let state = &*self.state;
        let failure = state.reload.last_error();
        let mut status = proto::Status {
            last_reload_error: failure
                .as_ref()
                .map(|f| f.message.clone())
                .unwrap_or_default(),
            last_reload_error_at: failure.as_ref().map(|f| convert::timestamp_to_proto(f.at)),
            reloads_ok: state.reload.reloads_ok(),
            reloads_failed: state.reload.reloads_failed(),
            ..Default::default()
        };
        if let Some(snapshot) = state.store.load() {
            status.revision = snapshot.revision.clone();
            status.loaded_at = Some(convert::timestamp_to_proto(snapshot.loaded_at));
            status.policies = snapshot.policy_count() as u32;
            status.attachments = snapshot.attachment_count() as u32;
            status.groups = snapshot.group_count() as u32;
            status.guards = snapshot.compiled.guards.len() as u32;
            status.warnings = snapshot.warnings.len() as u32;
        }
        Ok(Response::new(status))
    }

    /// The lockout simulator on a proposed set (`files`) against the snapshot being served, with `requests`
    /// replayed against both. Runs off the executor.
    async fn simulate(
        &self,
        request: Request<proto::SimulateRequest>,
    ) -> Result<Response<proto::SimulateResponse>, Status> {
        let state = &*self.state;
        let input = catch_unwind(AssertUnwindSafe(|| {
            convert::SimulateInput::try_from(request.into_inner())
        }))
        .map_err(|_| internal_panic("reading the request"))?
        .map_err(invalid)?;
        let current = state.snapshot()?;
        let superuser = state.superuser.clone();
        let budget = state.lockout_budget;
        let report = tokio::task::spawn_blocking(move || {
            catch_unwind(AssertUnwindSafe(|| {
                super::simulate::run(&current, input, &superuser, budget)
            }))
        })
        .await
        .map_err(|_| internal_panic("simulating"))?
        .map_err(|_| internal_panic("simulating"))?;
        Ok(Response::new(report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_are_the_prefix_and_the_counter_in_hex() {
        let state = ServiceState::new(
            Arc::new(SnapshotStore::new()),
            Arc::default(),
            "admin".into(),
            None,
            Metrics::noop(),
            Duration::from_secs(1),
        );
        for n in [0u64, 1, 9, 10, 15, 16, 255, 4096, 0xdead_beef, u64::MAX] {
            state.calls.store(n, Ordering::Relaxed);
            let expected = format!("{}-{n:x}", state.call_prefix);
            assert_eq!(&*state.next_call_id(), expected.as_str());
        }
    }
}
