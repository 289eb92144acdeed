//! The decision path every door shares (gRPC, HTTP/JSON, ext_authz, forward-auth): identity from a token, one
//! snapshot per call or batch, evaluation, metrics and the decision log.
//!
//! A call takes one snapshot (`SnapshotStore::load`, a single atomic load), takes "now" once, evaluates
//! synchronously (no `.await`, no lock, no I/O), records metrics through handles registered at start-up, and
//! hands the decision-log entry to a bounded queue without waiting. Evaluation runs under `catch_unwind`: an
//! engine bug is an internal error, never ALLOW. A token is verified before anything else; when it fails, the
//! answer is DENY `unauthenticated` and no policy is evaluated.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::moment::Moment;
use serde_json::{json, Map, Value};

use super::convert::{AuthorizeInput, BatchInput};
use super::wire_request::{Decidable, WireInput};
use super::token::{TokenError, Verifier};
use crate::decision_log::{DecisionLogger, Entry, Subject};
use crate::eval::{evaluate_view, Decision, EvalOptions, Reason};
use crate::metrics::Metrics;
use crate::reload::ReloadStatus;
use crate::request::{RawPrincipal, Request, RequestError, Resource};
use crate::request_ref::RequestView;
use crate::snapshot::{Snapshot, SnapshotStore};

/// Why a door could not decide. Each door maps it to its own status (gRPC code, HTTP status).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DoorError {
    /// Bad input, naming the field.
    #[error("{}: {}", .0.field, .0.message)]
    Invalid(RequestError),
    /// No snapshot yet.
    #[error("{0}")]
    Unavailable(String),
    /// A limit was reached (simulations running, proposed files); retry later or send less.
    #[error("{0}")]
    Exhausted(String),
    /// An engine bug; never an ALLOW.
    #[error("{0}")]
    Internal(String),
}

impl From<RequestError> for DoorError {
    fn from(e: RequestError) -> Self {
        DoorError::Invalid(e)
    }
}

/// One decided check, as every door answers it.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub decision: Decision,
    /// The id of this call in the decision log (shared by the checks of a batch).
    pub call_id: Arc<str>,
    /// The instant decided for.
    pub time: Moment,
    /// Why the token was not accepted (reason `unauthenticated`).
    pub unauthenticated: Option<TokenError>,
    /// Why an HTTP request could not be mapped to an action (reason `no_applicable_policy`).
    pub unmapped: Option<String>,
}

impl Verdict {
    /// A decision replayed outside any call (by `Simulate`): no call id.
    pub fn replayed(decision: Decision, time: Moment) -> Verdict {
        Verdict {
            decision,
            call_id: Arc::from(""),
            time,
            unauthenticated: None,
            unmapped: None,
        }
    }

    /// The explanation as JSON: the evaluator's, or the token's failure. `None` when neither applies.
    pub fn explanation_json(&self) -> Option<Value> {
        if let Some(cause) = &self.unauthenticated {
            return Some(json!({ "unauthenticated": cause.to_string(), "cause": cause.kind() }));
        }
        if let Some(why) = &self.unmapped {
            return Some(json!({ "unmapped": why }));
        }
        self.decision
            .explanation
            .as_ref()
            .and_then(|e| serde_json::to_value(e).ok())
    }
}

/// Everything the doors read.
#[derive(Debug)]
pub struct ServiceState {
    pub store: Arc<SnapshotStore>,
    pub reload: Arc<ReloadStatus>,
    pub superuser: String,
    pub log: Option<DecisionLogger>,
    pub metrics: Metrics,
    /// Search budget of `Simulate`'s lockout analysis.
    pub lockout_budget: Duration,
    /// Token verification, when keys are configured.
    pub tokens: Option<Arc<Verifier>>,
    /// The TCP listener's TLS, for the status.
    pub tls: Option<Arc<super::tls::TlsReloader>>,
    /// Slots for `Simulate` calls running at once, and the caps on what one may propose.
    simulations: Arc<tokio::sync::Semaphore>,
    simulate_max_files: usize,
    simulate_max_bytes: usize,
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
        let mixed = (jiff::Timestamp::now().as_nanosecond() as u64)
            ^ u64::from(std::process::id()).rotate_left(40);
        let prefix = (mixed ^ (mixed >> 32)) as u32;
        ServiceState {
            store,
            reload,
            superuser,
            log,
            metrics,
            lockout_budget,
            tokens: None,
            tls: None,
            simulations: Arc::new(tokio::sync::Semaphore::new(2)),
            simulate_max_files: usize::MAX,
            simulate_max_bytes: usize::MAX,
            call_prefix: format!("{prefix:08x}"),
            calls: AtomicU64::new(0),
        }
    }

    /// With token verification.
    pub fn with_tokens(mut self, tokens: Option<Arc<Verifier>>) -> Self {
        self.tokens = tokens;
        self
    }

    /// With the TLS reloader, whose certificate expiry the status reports.
    pub fn with_tls(mut self, tls: Option<Arc<super::tls::TlsReloader>>) -> Self {
        self.tls = tls;
        self
    }

    /// With `Simulate`'s limits: calls at once, files and bytes proposed.
    pub fn with_simulate_limits(
        mut self,
        concurrency: usize,
        max_files: usize,
        max_bytes: usize,
    ) -> Self {
        self.simulations = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        self.simulate_max_files = max_files;
        self.simulate_max_bytes = max_bytes;
        self
    }

    /// A slot for one `Simulate`, held until dropped; none free is RESOURCE_EXHAUSTED at once.
    pub fn simulation_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, DoorError> {
        self.simulations.clone().try_acquire_owned().map_err(|_| {
            self.metrics.simulate_rejected.increment(1);
            DoorError::Exhausted(
                "every Simulate slot is busy (--simulate-concurrency); retry later".into(),
            )
        })
    }

    /// The caps on a proposed set: `files` files holding `bytes` bytes.
    pub fn check_simulate_size(&self, files: usize, bytes: usize) -> Result<(), DoorError> {
        let over = if files > self.simulate_max_files {
            Some((
                "files",
                format!(
                    "{files} files, more than the limit of {}",
                    self.simulate_max_files
                ),
            ))
        } else if bytes > self.simulate_max_bytes {
            Some((
                "files",
                format!(
                    "{bytes} bytes of files, more than the limit of {}",
                    self.simulate_max_bytes
                ),
            ))
        } else {
            None
        };
        match over {
            Some((field, message)) => {
                self.metrics.simulate_rejected.increment(1);
                Err(DoorError::Exhausted(format!(
                    "{field}: {message} (--simulate-max-files, --simulate-max-bytes)"
                )))
            }
            None => Ok(()),
        }
    }

    /// `<prefix>-<counter in hex>`, written into a stack buffer: the `Arc` is the call's only allocation for it.
    pub(crate) fn next_call_id(&self) -> Arc<str> {
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

    /// The snapshot being served.
    pub fn snapshot(&self) -> Result<Arc<Snapshot>, DoorError> {
        self.store
            .load()
            .ok_or_else(|| DoorError::Unavailable("no policy set is loaded yet".into()))
    }

    fn options(&self, explain: bool) -> EvalOptions<'_> {
        EvalOptions {
            superuser: Some(self.superuser.as_str()),
            explain,
        }
    }

    /// Replaces a principal's token with the principal it carries. A token together with an explicit id, groups
    /// or attributes is invalid input (nothing unverified may stand beside the claims). A token that fails
    /// verification leaves a stand-in principal and returns the cause: the door answers `unauthenticated`.
    pub fn identify(
        &self,
        principal: &mut RawPrincipal,
    ) -> Result<Option<TokenError>, RequestError> {
        let Some(token) = principal.token.take().filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        if principal.id.as_deref().is_some_and(|id| !id.is_empty()) {
            return Err(RequestError::new(
                "principal.id",
                "must be empty when principal.token is given (the token names the principal)",
            ));
        }
        if principal.groups.as_ref().is_some_and(|g| !g.is_empty()) {
            return Err(RequestError::new(
                "principal.groups",
                "must be empty when principal.token is given (the token names the groups)",
            ));
        }
        // Every principal attribute comes from the verified claims: none may be added beside them.
        if principal.attributes.as_ref().is_some_and(|a| !a.is_empty()) {
            return Err(RequestError::new(
                "principal.attributes",
                "must be empty when principal.token is given (the token's claims are the attributes)",
            ));
        }
        let verified = match &self.tokens {
            None => Err(TokenError::NoKeys),
            Some(verifier) => verifier.verify(&token, Moment::now().as_second()),
        };
        match verified {
            Ok(claims) => {
                let attributes = claims.attributes.clone();
                principal.id = Some(claims.id.clone());
                principal.groups = Some(claims.groups.clone());
                principal.attributes = Some(attributes);
                Ok(None)
            }
            Err(cause) => {
                self.metrics.unauthenticated.increment(1);
                // The rest of the request is still validated, with a stand-in principal.
                principal.id = Some("-".into());
                principal.groups = None;
                principal.attributes = Some(Map::new());
                Ok(Some(cause))
            }
        }
    }

    /// Metrics and the superuser audit line for one decision.
    #[inline]
    fn record(&self, decision: &Decision, request: RequestView<'_>, call_id: &str, seconds: f64) {
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
                principal = %request.principal_id,
                action = %request.action,
                resource = request.uri.unwrap_or(""),
                "superuser decision: allowed by the superuser rule"
            );
        }
    }

    /// Evaluates one request (or answers `unauthenticated`) against `snapshot`.
    fn evaluate(
        &self,
        snapshot: &Snapshot,
        request: RequestView<'_>,
        now: Moment,
        explain: bool,
        unauthenticated: Option<&TokenError>,
    ) -> Result<Decision, DoorError> {
        if unauthenticated.is_some() {
            return Ok(Decision {
                allowed: false,
                reason: Reason::Unauthenticated,
                policies: Vec::new(),
                undetermined_allow: Vec::new(),
                explanation: None,
            });
        }
        let options = self.options(explain);
        catch_unwind(AssertUnwindSafe(|| {
            evaluate_view(snapshot, request, now, &options)
        }))
        .map_err(|_| internal_panic("evaluating"))
    }

    /// One request: evaluate against one snapshot, record, log. Returns the verdict and the snapshot.
    pub fn decide(&self, input: AuthorizeInput) -> Result<(Verdict, Arc<Snapshot>), DoorError> {
        let snapshot = self.snapshot()?;
        self.decide_on(snapshot, input)
    }

    /// [`ServiceState::decide`] on a snapshot the caller already holds (the HTTP doors read its routes first).
    pub fn decide_on(
        &self,
        snapshot: Arc<Snapshot>,
        input: AuthorizeInput,
    ) -> Result<(Verdict, Arc<Snapshot>), DoorError> {
        let AuthorizeInput {
            request,
            explain,
            unauthenticated,
        } = input;
        self.decide_request(snapshot, request, explain, unauthenticated)
    }

    /// One request the gRPC door decides from the document it read ([`WireInput`]), as [`ServiceState::decide`].
    pub fn decide_wire(&self, input: WireInput) -> Result<(Verdict, Arc<Snapshot>), DoorError> {
        let snapshot = self.snapshot()?;
        let explain = input.explain();
        self.decide_request(snapshot, input, explain, None)
    }

    /// Evaluates, records and logs one request, owned or read into a document.
    fn decide_request(
        &self,
        snapshot: Arc<Snapshot>,
        request: impl Decidable,
        explain: bool,
        unauthenticated: Option<TokenError>,
    ) -> Result<(Verdict, Arc<Snapshot>), DoorError> {
        let started = Instant::now();
        let now = Moment::now();
        let view = request.view();
        let decision = self.evaluate(&snapshot, view, now, explain, unauthenticated.as_ref())?;
        let elapsed = started.elapsed();
        let call_id = self.next_call_id();
        let time = view.time.unwrap_or(now);
        self.record(&decision, view, &call_id, elapsed.as_secs_f64());
        if let Some(log) = &self.log {
            let Request {
                principal,
                action,
                resource,
                mut environment,
            } = request.into_request();
            environment.time = Some(time);
            log.log(Entry {
                timestamp: now,
                call_id: call_id.clone(),
                check: None,
                subject: Arc::new(Subject {
                    principal: unauthenticated_principal(principal, &unauthenticated),
                    environment,
                }),
                action,
                resource,
                allowed: decision.allowed,
                reason: decision.reason,
                policies: decision.policies.clone(),
                undetermined_allow: decision.undetermined_allow.clone(),
                revision: snapshot.revision.clone(),
                duration_us: elapsed.as_micros() as u64,
                cause: unauthenticated.as_ref().map(|c| c.to_string().into()),
            });
        }
        Ok((
            Verdict {
                decision,
                call_id,
                time,
                unauthenticated,
                unmapped: None,
            },
            snapshot,
        ))
    }

    /// An HTTP request no `HttpMapping` route maps: DENY `no_applicable_policy`, counted and logged with the
    /// reason in `cause` (no policy is evaluated: there is no action).
    pub fn unmapped(
        &self,
        snapshot: &Snapshot,
        why: String,
        environment: crate::request::Environment,
    ) -> Verdict {
        let now = Moment::now();
        let call_id = self.next_call_id();
        let decision = Decision {
            allowed: false,
            reason: Reason::NoApplicablePolicy,
            policies: Vec::new(),
            undetermined_allow: Vec::new(),
            explanation: None,
        };
        self.metrics.deny.increment(1);
        if let Some(log) = &self.log {
            let mut environment = environment;
            environment.time = Some(now);
            log.log(Entry {
                timestamp: now,
                call_id: call_id.clone(),
                check: None,
                subject: Arc::new(Subject {
                    principal: crate::request::Principal::default(),
                    environment,
                }),
                action: String::new(),
                resource: Resource::default(),
                allowed: false,
                reason: decision.reason,
                policies: Vec::new(),
                undetermined_allow: Vec::new(),
                revision: snapshot.revision.clone(),
                duration_us: 0,
                cause: Some(format!("unmapped: {why}").into()),
            });
        }
        Verdict {
            decision,
            call_id,
            time: now,
            unauthenticated: None,
            unmapped: Some(why),
        }
    }

    /// Every check of a batch against one snapshot, with one "now" and one call id.
    pub fn decide_batch(
        &self,
        input: BatchInput,
    ) -> Result<(Vec<Verdict>, Arc<Snapshot>), DoorError> {
        let snapshot = self.snapshot()?;
        let now = Moment::now();
        let call_id = self.next_call_id();
        let BatchInput {
            principal,
            environment,
            checks,
            explain,
            unauthenticated,
        } = input;
        let time = environment.time.unwrap_or(now);
        // One request is reused for every check: only the action and resource change.
        let mut request = Request {
            principal,
            action: String::new(),
            resource: Resource::default(),
            environment,
        };
        let subject = self.log.as_ref().map(|_| {
            let mut environment = request.environment.clone();
            environment.time = Some(time);
            Arc::new(Subject {
                principal: unauthenticated_principal(request.principal.clone(), &unauthenticated),
                environment,
            })
        });
        let cause: Option<Arc<str>> = unauthenticated.as_ref().map(|c| c.to_string().into());
        let mut verdicts = Vec::with_capacity(checks.len());
        for (i, check) in checks.into_iter().enumerate() {
            let started = Instant::now();
            request.action = check.action;
            request.resource = check.resource;
            let view = RequestView::from(&request);
            let decision = self.evaluate(&snapshot, view, now, explain, unauthenticated.as_ref())?;
            let elapsed = started.elapsed();
            self.record(&decision, view, &call_id, elapsed.as_secs_f64());
            if let (Some(log), Some(subject)) = (&self.log, &subject) {
                log.log(Entry {
                    timestamp: now,
                    call_id: call_id.clone(),
                    check: Some(i as u32),
                    subject: subject.clone(),
                    action: std::mem::take(&mut request.action),
                    resource: std::mem::take(&mut request.resource),
                    allowed: decision.allowed,
                    reason: decision.reason,
                    policies: decision.policies.clone(),
                    undetermined_allow: decision.undetermined_allow.clone(),
                    revision: snapshot.revision.clone(),
                    duration_us: elapsed.as_micros() as u64,
                    cause: cause.clone(),
                });
            }
            verdicts.push(Verdict {
                decision,
                call_id: call_id.clone(),
                time,
                unauthenticated: unauthenticated.clone(),
                unmapped: None,
            });
        }
        Ok((verdicts, snapshot))
    }
}

/// A query plan as every door answers it.
#[derive(Debug, Clone)]
pub struct PlanAnswer {
    /// `None` when the token failed verification (the answer is then "always denied").
    pub plan: Option<crate::plan::Plan>,
    pub sql: Option<crate::plan::sql::SqlFilter>,
    pub unauthenticated: Option<TokenError>,
    pub revision: String,
}

impl PlanAnswer {
    /// The JSON answer of `POST /v1/plan` and `arbiter plan`.
    pub fn to_json(&self) -> Value {
        let mut out = match (&self.plan, &self.unauthenticated) {
            (Some(plan), _) => plan.to_json(),
            (None, cause) => json!({
                "kind": crate::plan::PlanKind::AlwaysDenied.as_str(),
                "filter": false,
                "revision": self.revision,
                "reason": Reason::Unauthenticated.as_str(),
                "explanation": cause.as_ref().map(|c| c.to_string()).unwrap_or_default(),
            }),
        };
        if let Some(sql) = &self.sql {
            out["sql"] = serde_json::to_value(sql).unwrap_or_default();
        }
        out
    }
}

impl ServiceState {
    /// A query plan (SPEC section 7): identity first (a token that fails plans nothing: always denied, reason
    /// `unauthenticated`), then one snapshot, then the plan, under `catch_unwind` like every decision.
    pub fn plan(
        &self,
        mut raw: crate::plan::RawPlanRequest,
        time: Option<Moment>,
    ) -> Result<PlanAnswer, DoorError> {
        let mapping = raw.sql.take();
        let unauthenticated = self.identify(raw.principal.get_or_insert_with(Default::default))?;
        let mut request = raw.normalize()?;
        if time.is_some() {
            request.request.environment.time = time;
        }
        let snapshot = self.snapshot()?;
        let plan = match unauthenticated {
            Some(_) => None,
            None => Some(
                catch_unwind(AssertUnwindSafe(|| {
                    crate::plan::plan(
                        &snapshot,
                        &request,
                        Moment::now(),
                        Some(self.superuser.as_str()),
                    )
                }))
                .map_err(|_| internal_panic("planning"))?,
            ),
        };
        let sql = match (mapping, &plan) {
            (Some(mapping), Some(plan)) => Some(plan.to_sql(&mapping).map_err(|e| {
                DoorError::Invalid(RequestError::new(format!("sql.{}", e.field), e.message))
            })?),
            _ => None,
        };
        Ok(PlanAnswer {
            plan,
            sql,
            unauthenticated,
            revision: snapshot.revision.clone(),
        })
    }
}

/// The logged principal of an unauthenticated call: no id (the token is never logged).
fn unauthenticated_principal(
    principal: crate::request::Principal,
    unauthenticated: &Option<TokenError>,
) -> crate::request::Principal {
    match unauthenticated {
        Some(_) => crate::request::Principal::default(),
        None => principal,
    }
}

/// The error for a panic caught on the decision path, logged.
pub fn internal_panic(what: &str) -> DoorError {
    tracing::error!("{what} panicked; answered with an internal error");
    DoorError::Internal(format!("internal error while {what}"))
}

/// Runs `f` (reading a request) under `catch_unwind`.
pub fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, RequestError>) -> Result<T, DoorError> {
    catch_unwind(AssertUnwindSafe(f))
        .map_err(|_| internal_panic(what))?
        .map_err(DoorError::Invalid)
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
