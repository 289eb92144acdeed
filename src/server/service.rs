//! The `arbiter.v1.Authorizer` gRPC service: `Authorize`, `AuthorizeBatch`, `GetStatus`, `PlanResources` and
//! `Simulate`. The decision path itself is `decide`, shared with the other doors; this file maps protobuf in and
//! out. [`AuthorizerRoutes`] serves `Authorize` and `AuthorizeBatch` with the hand-written wire format of `wire`
//! over the exchange of `unary`, and every other call with the generated service.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::server::{NamedService, UnaryService};
use tonic::{Request, Response, Status};

use super::convert;
use super::decide::{guarded, internal_panic, DoorError, ServiceState, Verdict};
use super::proto;
use super::unary;
use super::proto::authorizer_server::AuthorizerServer;
use super::wire_request::Validated;
use super::wire::{
    AuthorizeMessage, AuthorizeReply, BatchMessage, BatchReply, WireCall, WireMessage,
};
use crate::snapshot::Snapshot;

/// The tonic service.
#[derive(Debug, Clone)]
pub struct AuthorizerService {
    state: Arc<ServiceState>,
    /// Whether `Simulate` and `GetStatus` are served here (not when an admin listener serves them).
    admin: bool,
}

impl AuthorizerService {
    pub fn new(state: Arc<ServiceState>) -> Self {
        AuthorizerService { state, admin: true }
    }

    /// Serves the admin calls (`Simulate`, `GetStatus`) on this listener, or refuses them.
    pub fn serving_admin(mut self, admin: bool) -> Self {
        self.admin = admin;
        self
    }

    fn admin(&self, call: &str) -> Result<(), Status> {
        if self.admin {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "{call} is served on the admin listener (--admin-listen / --admin-uds) only"
            )))
        }
    }
}

impl ServiceState {
    /// One `Authorize` call, synchronously: validate, identify, evaluate against one snapshot, record, log.
    pub fn authorize(
        &self,
        msg: AuthorizeMessage,
    ) -> Result<(Verdict, Arc<Snapshot>), Status> {
        let input = guarded("reading the request", || {
            msg.validate(&|p| self.identify(p))
        })?;
        Ok(match input {
            Validated::Wire(input) => self.decide_wire(input)?,
            Validated::Owned(input) => self.decide(input)?,
        })
    }

    /// One `AuthorizeBatch` call, as [`ServiceState::authorize`], every check against one snapshot.
    pub fn authorize_batch(
        &self,
        msg: BatchMessage,
    ) -> Result<(Vec<Verdict>, Arc<Snapshot>), Status> {
        let input = guarded("reading the request", || {
            msg.validate(&|p| self.identify(p))
        })?;
        Ok(self.decide_batch(input)?)
    }
}

const AUTHORIZE_PATH: &str = "/arbiter.v1.Authorizer/Authorize";
const AUTHORIZE_BATCH_PATH: &str = "/arbiter.v1.Authorizer/AuthorizeBatch";

/// The `arbiter.v1.Authorizer` routes: `Authorize` and `AuthorizeBatch` through [`unary::serve`], decided
/// synchronously by [`unary::Decide`] (an unusual request goes to tonic's unary path with `wire::WireCodec`, and
/// is decided in a ready future); everything else through the generated server.
#[derive(Debug, Clone)]
pub struct AuthorizerRoutes {
    generated: AuthorizerServer<AuthorizerService>,
    wire: Wire,
    max_message_bytes: usize,
}

impl AuthorizerRoutes {
    /// Both routes decode at most `max_message_bytes` per message.
    pub fn new(service: AuthorizerService, max_message_bytes: usize) -> Self {
        AuthorizerRoutes {
            wire: Wire(service.state.clone()),
            generated: AuthorizerServer::new(service).max_decoding_message_size(max_message_bytes),
            max_message_bytes,
        }
    }
}

impl NamedService for AuthorizerRoutes {
    const NAME: &'static str = <AuthorizerServer<AuthorizerService> as NamedService>::NAME;
}

impl<B> tower::Service<http::Request<B>> for AuthorizerRoutes
where
    B: http_body::Body + Unpin + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Unpin + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>,
    >;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let max = self.max_message_bytes;
        let wire = self.wire.clone();
        match req.uri().path() {
            AUTHORIZE_PATH => Box::pin(async move {
                Ok(unary::serve::<AuthorizeMessage, _, _>(wire, req, max).await)
            }),
            AUTHORIZE_BATCH_PATH => Box::pin(async move {
                Ok(unary::serve::<BatchMessage, _, _>(wire, req, max).await)
            }),
            _ => self.generated.call(req),
        }
    }
}

/// `Authorize` and `AuthorizeBatch` on the wire format of `wire`, decided synchronously: directly by `unary`, and
/// in a ready future by tonic's unary path.
#[derive(Debug, Clone)]
struct Wire(Arc<ServiceState>);

impl unary::Decide<AuthorizeMessage> for Wire {
    fn decide(&self, message: AuthorizeMessage) -> Result<AuthorizeReply, Status> {
        let (verdict, snapshot) = self.0.authorize(message)?;
        Ok(AuthorizeReply::new(verdict, snapshot))
    }
}

impl unary::Decide<BatchMessage> for Wire {
    fn decide(&self, message: BatchMessage) -> Result<BatchReply, Status> {
        let (verdicts, snapshot) = self.0.authorize_batch(message)?;
        Ok(BatchReply::new(verdicts, snapshot))
    }
}

/// For tonic's unary path, which `unary` hands unusual requests.
impl<M: WireCall> UnaryService<M> for Wire
where
    Wire: unary::Decide<M>,
{
    type Response = M::Reply;
    type Future = Ready<Result<Response<M::Reply>, Status>>;

    fn call(&mut self, request: Request<M>) -> Self::Future {
        ready(unary::Decide::decide(self, request.into_inner()).map(Response::new))
    }
}

impl From<DoorError> for Status {
    fn from(e: DoorError) -> Status {
        match e {
            DoorError::Invalid(e) => {
                Status::invalid_argument(format!("{}: {}", e.field, e.message))
            }
            DoorError::Unavailable(m) => Status::unavailable(m),
            DoorError::Exhausted(m) => Status::resource_exhausted(m),
            DoorError::Internal(m) => Status::internal(m),
        }
    }
}

/// The generated service's trait. [`AuthorizerRoutes`] serves `Authorize` and `AuthorizeBatch` itself, so their
/// methods here are reached only by a direct call of the trait; they decide prost's message the same way.
#[tonic::async_trait]
impl proto::authorizer_server::Authorizer for AuthorizerService {
    async fn authorize(
        &self,
        request: Request<proto::AuthorizeRequest>,
    ) -> Result<Response<proto::AuthorizeResponse>, Status> {
        let msg = WireMessage::Decoded(Box::new(request.into_inner()));
        let (verdict, snapshot) = self.state.authorize(msg)?;
        Ok(Response::new(convert::response(&verdict, &snapshot.revision)))
    }

    async fn authorize_batch(
        &self,
        request: Request<proto::AuthorizeBatchRequest>,
    ) -> Result<Response<proto::AuthorizeBatchResponse>, Status> {
        let msg = WireMessage::Decoded(Box::new(request.into_inner()));
        let (verdicts, snapshot) = self.state.authorize_batch(msg)?;
        Ok(Response::new(convert::batch_response(
            &verdicts,
            &snapshot.revision,
        )))
    }

    async fn get_status(
        &self,
        _request: Request<proto::GetStatusRequest>,
    ) -> Result<Response<proto::Status>, Status> {
        self.admin("GetStatus")?;
        let state = &*self.state;
        let view = state.reload.view(&state.store);
        let failure = view.last_error;
        let mut status = proto::Status {
            last_reload_error: failure
                .as_ref()
                .map(|f| f.message.clone())
                .unwrap_or_default(),
            last_reload_error_at: failure.as_ref().map(|f| convert::timestamp_to_proto(f.at)),
            reloads_ok: view.reloads_ok,
            reloads_failed: view.reloads_failed,
            ..Default::default()
        };
        if let Some(snapshot) = view.snapshot {
            status.revision = snapshot.revision.clone();
            status.loaded_at = Some(convert::timestamp_to_proto(snapshot.loaded_at));
            status.policies = snapshot.policy_count() as u32;
            status.attachments = snapshot.attachment_count() as u32;
            status.groups = snapshot.group_count() as u32;
            status.guards = snapshot.compiled.guards.len() as u32;
            status.warnings = snapshot.warnings.len() as u32;
        }
        if let Some(tls) = &state.tls {
            status.tls_not_after = tls.not_after().map(convert::timestamp_to_proto);
            status.tls_reload_error = tls.last_error().unwrap_or_default();
        }
        Ok(Response::new(status))
    }

    async fn plan_resources(
        &self,
        request: Request<proto::PlanResourcesRequest>,
    ) -> Result<Response<proto::PlanResourcesResponse>, Status> {
        let (raw, time) = guarded("reading the request", || {
            convert::plan_from_proto(request.into_inner())
        })?;
        let answer = self.state.plan(raw, time)?;
        Ok(Response::new(convert::plan_response(&answer)))
    }

    /// The lockout simulator on a proposed set (`files`) against the snapshot being served, with `requests`
    /// replayed against both. Runs off the executor.
    async fn simulate(
        &self,
        request: Request<proto::SimulateRequest>,
    ) -> Result<Response<proto::SimulateResponse>, Status> {
        self.admin("Simulate")?;
        let state = &*self.state;
        let msg = request.into_inner();
        state.check_simulate_size(
            msg.files.len(),
            msg.files.iter().map(|(k, v)| k.len() + v.len()).sum(),
        )?;
        let slot = state.simulation_slot()?;
        let input = catch_unwind(AssertUnwindSafe(|| convert::SimulateInput::try_from(msg)))
            .map_err(|_| Status::from(internal_panic("reading the request")))?
            .map_err(|e| Status::from(DoorError::Invalid(e)))?;
        let current = state.snapshot()?;
        let superuser = state.superuser.clone();
        let budget = state.lockout_budget;
        let report = tokio::task::spawn_blocking(move || {
            // The slot is held until the work ends, even when the caller has gone (a deadline).
            let _slot = slot;
            catch_unwind(AssertUnwindSafe(|| {
                super::simulate::run(&current, input, &superuser, budget)
            }))
        })
        .await
        .map_err(|_| Status::from(internal_panic("simulating")))?
        .map_err(|_| Status::from(internal_panic("simulating")))?;
        Ok(Response::new(report))
    }
}
