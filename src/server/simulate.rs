//! `Simulate`: the lockout simulator over gRPC. The proposed set is built with `compile::build`, analysed with
//! `crate::simulate::analyze` against the snapshot being served (its guards and the proposed set's), and each
//! replayed request is decided by `eval::evaluate` under both sets: the simulator's own code, no second evaluator.

use std::time::Duration;

use jiff::Timestamp;

use super::convert::{self, SimulateInput};
use super::proto;
use crate::eval::{evaluate, EvalOptions};
use crate::load::SourceSet;
use crate::request::Request;
use crate::simulate::{analyze, FindingKind, LockoutOptions};
use crate::snapshot::Snapshot;

/// Runs one simulation (blocking: call it off the executor).
pub fn run(
    current: &Snapshot,
    input: SimulateInput,
    superuser: &str,
    budget: Duration,
) -> proto::SimulateResponse {
    let sources = SourceSet::from_files(input.files);
    let mut response = proto::SimulateResponse {
        current_revision: current.revision.clone(),
        proposed_revision: sources.revision(),
        ..Default::default()
    };
    let proposed = match crate::compile::build(&sources) {
        Ok(s) => s,
        Err(diags) => {
            response.errors = diags.errors().map(|d| d.to_string()).collect();
            return response;
        }
    };
    response.warnings = proposed.warnings.iter().map(|w| w.to_string()).collect();
    let now = Timestamp::now();
    let options = LockoutOptions {
        as_of: now,
        budget,
        superuser: Some(superuser.to_string()),
    };
    let findings = match analyze(Some(current), &proposed, &options) {
        Ok(f) => f,
        Err(errors) => {
            response.errors = errors
                .into_iter()
                .map(|e| format!("{}: error: {}", e.location, e.message))
                .collect();
            return response;
        }
    };
    response.valid = true;
    for f in &findings {
        match f.kind {
            FindingKind::Lockout => response.lockout_count += 1,
            FindingKind::Erosion => response.erosion_count += 1,
            FindingKind::Inconclusive => response.inconclusive_count += 1,
        }
    }
    response.lockouts = findings
        .into_iter()
        .map(|f| proto::Lockout {
            guard: f.guard,
            policies: f.blocking.clone(),
            blocking: f.blocking,
            counterexample: f
                .counterexample
                .and_then(|v| Request::from_json(v).ok())
                .map(|r| convert::request_to_proto(&r)),
            message: f.message,
            kind: f.kind.as_str().to_string(),
            location: f.location.unwrap_or_default(),
            reason: f.reason.unwrap_or_default().to_string(),
            cells: f
                .cells
                .into_iter()
                .map(|c| proto::LockoutCell {
                    principal: c.principal,
                    action: c.action,
                    resource: c.resource.unwrap_or_default(),
                })
                .collect(),
            undetermined: f
                .undetermined
                .into_iter()
                .map(|u| proto::UndeterminedCondition {
                    policy: u.policy,
                    attribute: u.attribute,
                    cause: u.cause.to_string(),
                })
                .collect(),
            hint: f.hint.unwrap_or_default(),
        })
        .collect();
    let eval_options = EvalOptions {
        superuser: Some(superuser),
        explain: false,
    };
    response.replayed = input.requests.len() as u32;
    for mut request in input.requests {
        let time = request.environment.time.unwrap_or(now);
        request.environment.time = Some(time);
        let before = evaluate(current, &request, time, &eval_options);
        let after = evaluate(&proposed, &request, time, &eval_options);
        if before.allowed != after.allowed {
            response.changes.push(proto::DecisionChange {
                request: Some(convert::request_to_proto(&request)),
                current: Some(convert::response(&before, &current.revision, "", time)),
                proposed: Some(convert::response(&after, &proposed.revision, "", time)),
            });
        }
    }
    response
}
