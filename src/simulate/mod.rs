//! The lockout simulator: proves, before a change goes live, that a proposed policy set keeps every
//! LockoutGuard's principals allowed, and reports erosion of the guards themselves.
//!
//! It reuses `compile` and `eval`: both sets are built by `compile::build`, and every counterexample is decided
//! by `eval::evaluate` (with the superuser rule off) before it is reported.

pub mod domain;
pub mod erosion;
pub mod git;
pub mod lockout;
pub mod replay;
pub mod report;
pub mod witness;

use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::Serialize;

use crate::snapshot::Snapshot;

/// Settings of one analysis.
#[derive(Debug, Clone)]
pub struct LockoutOptions {
    /// Time starts here: instants before it are not considered.
    pub as_of: Timestamp,
    /// Wall-clock budget for the whole analysis; running out is an "inconclusive" finding.
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
    /// The search did not finish: never called safe.
    Inconclusive,
    /// A guard, a system group or a guarded group's membership was weakened or removed.
    Erosion,
}

/// One lockout-analysis finding.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub guard: String,
    pub message: String,
    /// For lockouts: the policies that denied; empty means no policy allows it.
    pub blocking: Vec<String>,
    /// For lockouts: the decision's reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// For lockouts: a request, valid for `Authorize` and `arbiter eval`, that the proposed set denies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counterexample: Option<serde_json::Value>,
}

/// An error that makes the analysis impossible (a guard naming the superuser).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardError {
    pub guard: String,
    pub location: String,
    pub message: String,
}

/// Every guard of `current` (if any) and of `proposed`, checked against `proposed`, plus erosion findings.
pub fn analyze(
    current: Option<&Snapshot>,
    proposed: &Snapshot,
    options: &LockoutOptions,
) -> Result<Vec<Finding>, Vec<GuardError>> {
    let mut guards: Vec<&crate::compile::Guard> = Vec::new();
    for g in current
        .iter()
        .flat_map(|c| c.compiled.guards.iter())
        .chain(proposed.compiled.guards.iter())
    {
        if !guards
            .iter()
            .any(|x| x.id == g.id && x.doc.principal == g.doc.principal && same_rules(x, g))
        {
            guards.push(g);
        }
    }
    let errors: Vec<GuardError> = guards
        .iter()
        .filter(|g| options.superuser.as_deref() == Some(&*g.principal_id))
        .map(|g| GuardError {
            guard: g.id.to_string(),
            location: format!("{}:{}:{}", g.origin.file.display(), g.doc.principal.id.pos.line, g.doc.principal.id.pos.col),
            message: format!(
                "guard `{}` protects the superuser `{}`, who is always allowed; name a real principal",
                g.id, g.principal_id
            ),
        })
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    let deadline = Instant::now() + options.budget;
    let mut findings = Vec::new();
    if let Some(current) = current {
        findings.extend(erosion::erosion(current, proposed));
    }
    for g in guards {
        let outcome = lockout::check_guard(
            proposed,
            g,
            options.as_of,
            deadline,
            options.superuser.as_deref(),
        );
        for c in outcome.counterexamples {
            let message = if c.blocking.is_empty() {
                format!(
                    "guard `{}`: `{}` on `{}` is denied: no policy allows it",
                    g.id,
                    c.request.action,
                    c.request.resource.uri.as_deref().unwrap_or("")
                )
            } else {
                format!(
                    "guard `{}`: `{}` on `{}` is denied by {}",
                    g.id,
                    c.request.action,
                    c.request.resource.uri.as_deref().unwrap_or(""),
                    c.blocking
                        .iter()
                        .map(|b| format!("`{b}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            findings.push(Finding {
                kind: FindingKind::Lockout,
                guard: g.id.to_string(),
                message,
                blocking: c.blocking,
                reason: Some(c.reason),
                counterexample: Some(c.request.to_json()),
            });
        }
        if let Some(why) = outcome.inconclusive {
            findings.push(Finding {
                kind: FindingKind::Inconclusive,
                guard: g.id.to_string(),
                message: format!("guard `{}`: inconclusive: {why}", g.id),
                blocking: Vec::new(),
                reason: None,
                counterexample: None,
            });
        }
    }
    Ok(findings)
}

fn same_rules(a: &crate::compile::Guard, b: &crate::compile::Guard) -> bool {
    let strip = |g: &crate::compile::Guard| {
        (
            g.doc
                .must_allow
                .iter()
                .map(|m| {
                    (
                        m.actions
                            .iter()
                            .map(|a| a.value.clone())
                            .collect::<Vec<_>>(),
                        m.resources
                            .iter()
                            .map(|r| r.value.clone())
                            .collect::<Vec<_>>(),
                    )
                })
                .collect::<Vec<_>>(),
            g.doc.assuming.len(),
        )
    };
    strip(a) == strip(b) && erosion::same_assumptions(&a.doc.assuming, &b.doc.assuming)
}
