//! The lockout simulator: proves, before a change goes live, that a proposed policy set keeps every
//! LockoutGuard's principals allowed, and reports erosion of the guards themselves.
//!
//! It reuses `compile` and `eval`: both sets are built by `compile::build`, and every counterexample is decided
//! by `eval::evaluate` (with the superuser rule off) before it is reported.

pub mod erosion;
pub mod lockout;
pub mod partition;
pub mod replay;
pub mod report;
pub mod witness;

use std::time::{Duration, Instant};

use crate::moment::Moment;
use serde::Serialize;

use crate::snapshot::Snapshot;

/// Settings of one analysis.
#[derive(Debug, Clone)]
pub struct LockoutOptions {
    /// Time starts here: instants before it are not considered.
    pub as_of: Moment,
    /// Wall-clock budget for each guard; running out is an "inconclusive" finding for that guard.
    pub budget: Duration,
    /// The superuser name: a guard whose principal is the superuser is invalid.
    pub superuser: Option<String>,
}

/// What kind of finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A guarded request is denied.
    Lockout,
    /// The search did not finish or is not proven complete: never called safe.
    Inconclusive,
    /// A guard, a system group or a guarded group's membership was weakened or removed.
    Erosion,
}

impl FindingKind {
    /// `lockout`, `inconclusive` or `erosion`.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Lockout => "lockout",
            FindingKind::Inconclusive => "inconclusive",
            FindingKind::Erosion => "erosion",
        }
    }
}

/// One guarded (principal, action, resource) cell that the proposed set denies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    /// The guard principal's id.
    pub principal: String,
    /// The action.
    pub action: String,
    /// `null` for a request with no resource URI.
    pub resource: Option<String>,
}

/// One lockout-analysis finding. Every field is always present in JSON (`null` or `[]` when empty).
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Lockout, inconclusive or erosion.
    pub kind: FindingKind,
    /// The guard's id; empty for a system group's erosion.
    pub guard: String,
    /// Where the guard is written, `file:line:col`.
    pub location: Option<String>,
    /// One line for people.
    pub message: String,
    /// For lockouts: the policies that denied; empty means no policy allows it.
    pub blocking: Vec<String>,
    /// For lockouts: the decision's reason.
    pub reason: Option<&'static str>,
    /// For lockouts: the conditions of blocking denies that were undetermined, and why.
    pub undetermined: Vec<lockout::Undetermined>,
    /// For lockouts: every guarded cell denied by the same policies.
    pub cells: Vec<Cell>,
    /// For lockouts: a request, valid for `Authorize` and `arbiter eval`, that the proposed set denies.
    pub counterexample: Option<serde_json::Value>,
    /// How to proceed when the finding is intended.
    pub hint: Option<String>,
}

impl Finding {
    pub(crate) fn new(kind: FindingKind, guard: &str, message: String) -> Finding {
        Finding {
            kind,
            guard: guard.to_string(),
            location: None,
            message,
            blocking: Vec::new(),
            reason: None,
            undetermined: Vec::new(),
            cells: Vec::new(),
            counterexample: None,
            hint: None,
        }
    }
}

/// How to accept a finding that is intended.
pub const ACCEPT_HINT: &str =
    "if this change is intended, update or remove the LockoutGuard in the same change, \
or start `arbiter serve` with `--allow-lockout` to publish it anyway";

/// An error that makes the analysis impossible (a guard naming the superuser).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardError {
    pub guard: String,
    pub location: String,
    pub message: String,
}

fn location(g: &crate::ir::Guard) -> String {
    format!(
        "{}:{}:{}",
        g.origin.file.display(),
        g.origin.pos.line,
        g.origin.pos.col
    )
}

/// Every guard of `current` (if any) and of `proposed`, checked against `proposed`, plus erosion findings.
/// Each guard gets its own time budget.
pub fn analyze(
    current: Option<&Snapshot>,
    proposed: &Snapshot,
    options: &LockoutOptions,
) -> Result<Vec<Finding>, Vec<GuardError>> {
    let mut guards: Vec<&crate::ir::Guard> = Vec::new();
    for g in current
        .iter()
        .flat_map(|c| c.compiled.guards.iter())
        .chain(proposed.compiled.guards.iter())
    {
        if !guards
            .iter()
            .any(|x| x.id == g.id && erosion::same_guard(x, g))
        {
            guards.push(g);
        }
    }
    let errors: Vec<GuardError> = guards
        .iter()
        .filter(|g| options.superuser.as_deref() == Some(&*g.principal_id))
        .map(|g| GuardError {
            guard: g.id.to_string(),
            location: format!(
                "{}:{}:{}",
                g.origin.file.display(),
                g.principal_pos.line,
                g.principal_pos.col
            ),
            message: format!(
                "guard `{}` protects the superuser `{}`, who is always allowed; name a real principal",
                g.id, g.principal_id
            ),
        })
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut findings = Vec::new();
    if let Some(current) = current {
        findings.extend(erosion::erosion(current, proposed));
    }
    for g in guards {
        let deadline = Instant::now() + options.budget;
        let outcome = lockout::check_guard(
            proposed,
            g,
            options.as_of,
            deadline,
            options.superuser.as_deref(),
        );
        // One finding per set of blocking policies, listing every cell they block.
        let mut grouped: Vec<Finding> = Vec::new();
        for c in outcome.counterexamples {
            let cell = Cell {
                principal: c.request.principal.id.clone(),
                action: c.request.action.clone(),
                resource: c.request.resource.uri.clone(),
            };
            if let Some(f) = grouped.iter_mut().find(|f| f.blocking == c.blocking) {
                f.cells.push(cell);
                continue;
            }
            let blocked_by = if c.blocking.is_empty() {
                "denied: no policy allows it".to_string()
            } else {
                let undetermined = if c.undetermined.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (undetermined: {})",
                        c.undetermined
                            .iter()
                            .map(|u| format!("`{}` {} in `{}`", u.attribute, u.cause, u.policy))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                format!(
                    "denied by {}{undetermined}",
                    c.blocking
                        .iter()
                        .map(|b| format!("`{b}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let mut f = Finding::new(
                FindingKind::Lockout,
                &g.id,
                format!(
                    "guard `{}`: `{}` on `{}` for `{}` is {blocked_by}",
                    g.id,
                    cell.action,
                    cell.resource.as_deref().unwrap_or("(no URI)"),
                    cell.principal,
                ),
            );
            f.location = Some(location(g));
            f.blocking = c.blocking;
            f.reason = Some(c.reason);
            f.undetermined = c.undetermined;
            f.counterexample = Some(c.request.to_json());
            f.cells.push(cell);
            f.hint = Some(ACCEPT_HINT.to_string());
            grouped.push(f);
        }
        findings.extend(grouped);
        if let Some(why) = outcome.inconclusive {
            let mut f = Finding::new(
                FindingKind::Inconclusive,
                &g.id,
                format!("guard `{}`: inconclusive: {why}", g.id),
            );
            f.location = Some(location(g));
            f.hint = Some(
                "raise `--budget`, or narrow the guard with `assuming:`; an inconclusive guard is never called safe"
                    .to_string(),
            );
            findings.push(f);
        }
    }
    Ok(findings)
}
