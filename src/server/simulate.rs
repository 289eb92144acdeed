//! `Simulate`: the lockout simulator over gRPC. The proposed set goes through the same flow as `arbiter simulate`
//! (`crate::simulate::report::check`: build, then every guard of the served and the proposed set, and erosion),
//! and each replayed request is decided by `eval::evaluate` under both sets: no second evaluator.

use std::time::Duration;

use crate::moment::Moment;

use super::convert::{self, SimulateInput};
use super::decide::Verdict;
use super::proto;
use crate::eval::{evaluate, EvalOptions};
use crate::load::SourceSet;
use crate::request::Request;
use crate::simulate::{Finding, LockoutOptions};
use crate::snapshot::Snapshot;

/// Runs one simulation (blocking: call it off the executor).
pub fn run(
    current: &Snapshot,
    input: SimulateInput,
    superuser: &str,
    budget: Duration,
) -> proto::SimulateResponse {
    let sources = SourceSet::from_files(input.files);
    let now = Moment::now();
    let options = LockoutOptions {
        as_of: now,
        budget,
        superuser: Some(superuser.to_string()),
    };
    // The same flow as `arbiter simulate`: build the proposed set, check every guard.
    let (report, proposed) = crate::simulate::report::check(Some(current), &sources, &options);
    let mut response = proto::SimulateResponse {
        valid: report.valid,
        errors: report.errors,
        warnings: report.warnings,
        current_revision: current.revision.clone(),
        proposed_revision: report.proposed_revision,
        lockout_count: report.summary.lockouts as u32,
        erosion_count: report.summary.erosion as u32,
        inconclusive_count: report.summary.inconclusive as u32,
        ..Default::default()
    };
    let Some(proposed) = proposed else {
        return response;
    };
    response.lockouts = report.lockouts.into_iter().map(lockout_to_proto).collect();
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
                current: Some(convert::response(
                    &Verdict::replayed(before, time),
                    &current.revision,
                )),
                proposed: Some(convert::response(
                    &Verdict::replayed(after, time),
                    &proposed.revision,
                )),
            });
        }
    }
    response
}

/// A finding in the proto shape: the same field names as the CLI's JSON (`policies` kept as an alias of
/// `blocking`).
fn lockout_to_proto(f: Finding) -> proto::Lockout {
    proto::Lockout {
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
    }
}
