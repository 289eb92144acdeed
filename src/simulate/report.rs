//! One simulation end to end (validity, lockouts, decision changes) and its text and JSON renderings, shared by
//! `arbiter simulate` and the `Simulate` RPC.

use std::fmt::Write;

use serde::Serialize;

use super::replay::{replay, DecisionDiff, Logged};
use super::{analyze, Finding, FindingKind, LockoutOptions};
use crate::load::SourceSet;
use crate::snapshot::Snapshot;

/// Findings counted by kind.
#[derive(Debug, Clone, Copy, Serialize, Default, PartialEq, Eq)]
pub struct Summary {
    /// Guarded requests denied (one per set of blocking policies).
    pub lockouts: usize,
    /// Guards, system groups or guarded memberships weakened or removed.
    pub erosion: usize,
    /// Guards not proven safe (budget or an inexact partition).
    pub inconclusive: usize,
}

impl Summary {
    /// Counts `findings` by kind.
    pub fn of(findings: &[Finding]) -> Summary {
        let count = |k: FindingKind| findings.iter().filter(|f| f.kind == k).count();
        Summary {
            lockouts: count(FindingKind::Lockout),
            erosion: count(FindingKind::Erosion),
            inconclusive: count(FindingKind::Inconclusive),
        }
    }
}

/// Everything one simulation found. `--format json` prints this; every field is present (`null` or `[]` when
/// empty).
#[derive(Debug, Clone, Serialize, Default)]
pub struct SimulationReport {
    /// False when the proposed set (or a guard) is invalid; `errors` then says why.
    pub valid: bool,
    /// Findings by kind.
    pub summary: Summary,
    /// Errors in the proposed set (and anything else that made the analysis impossible), with file:line:col.
    pub errors: Vec<String>,
    /// Warnings of the proposed set.
    pub warnings: Vec<String>,
    /// Lockout, inconclusive and erosion findings.
    pub lockouts: Vec<Finding>,
    /// Decisions that changed, grouped; `null` when no requests were replayed.
    pub changes: Option<DecisionDiff>,
    /// Content hash of the current set, when there is one.
    pub current_revision: Option<String>,
    /// Content hash of the proposed set.
    pub proposed_revision: String,
}

impl SimulationReport {
    /// 0 safe, 1 a finding (inconclusive included), 2 invalid input.
    pub fn exit_code(&self) -> i32 {
        if !self.valid {
            2
        } else if !self.lockouts.is_empty() {
            1
        } else {
            0
        }
    }

    fn invalid(errors: Vec<String>, proposed_revision: String) -> Self {
        SimulationReport {
            valid: false,
            errors,
            proposed_revision,
            ..Default::default()
        }
    }
}

/// Builds the proposed set, checks every guard, and replays `requests` (if any) against both sets.
/// `current` is the set being replaced (the live one, for the RPC), if any.
pub fn simulate(
    current: Option<&Snapshot>,
    proposed_sources: &SourceSet,
    requests: Option<&[Logged]>,
    options: &LockoutOptions,
) -> SimulationReport {
    let (mut report, proposed) = check(current, proposed_sources, options);
    if let (Some(c), Some(p), Some(r)) = (current, proposed.as_ref(), requests) {
        report.changes = Some(replay(c, p, r, options.superuser.as_deref()));
    }
    report
}

/// The one simulation flow of the CLI and the `Simulate` RPC: builds the proposed set and checks every guard
/// (validity, lockouts, erosion). Returns the proposed snapshot too when it is valid, for replaying requests.
pub fn check(
    current: Option<&Snapshot>,
    proposed_sources: &SourceSet,
    options: &LockoutOptions,
) -> (SimulationReport, Option<Snapshot>) {
    let proposed_revision = proposed_sources.revision();
    let proposed = match crate::compile::build(proposed_sources) {
        Ok(s) => s,
        Err(d) => {
            let errors = d.errors().map(|e| e.to_string()).collect();
            return (SimulationReport::invalid(errors, proposed_revision), None);
        }
    };
    let warnings = proposed.warnings.iter().map(|w| w.to_string()).collect();
    let lockouts = match analyze(current, &proposed, options) {
        Ok(f) => f,
        Err(errors) => {
            let errors = errors
                .into_iter()
                .map(|e| format!("{}: error: {}", e.location, e.message))
                .collect();
            return (SimulationReport::invalid(errors, proposed_revision), None);
        }
    };
    let report = SimulationReport {
        valid: true,
        summary: Summary::of(&lockouts),
        errors: Vec::new(),
        warnings,
        lockouts,
        changes: None,
        current_revision: current.map(|c| c.revision.clone()),
        proposed_revision,
    };
    (report, Some(proposed))
}

/// ANSI styling, on only for terminals.
struct Style(bool);

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// The human-readable report.
pub fn render_text(report: &SimulationReport, color: bool) -> String {
    let s = Style(color);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "arbiter simulate: {} → {}",
        report
            .current_revision
            .as_deref()
            .unwrap_or("(no current set)"),
        report.proposed_revision
    );
    if !report.valid {
        let _ = writeln!(out, "{}", s.paint("1;31", "the proposed set is invalid:"));
        for e in &report.errors {
            let _ = writeln!(out, "{e}");
        }
        let _ = writeln!(out, "result: invalid ({} errors)", report.errors.len());
        return out;
    }
    for w in &report.warnings {
        let _ = writeln!(out, "{w}");
    }
    let sum = report.summary;
    if report.lockouts.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            s.paint("1;32", "lockouts: none: every guard holds")
        );
    } else {
        let _ = writeln!(
            out,
            "{}",
            s.paint(
                "1;31",
                &format!(
                    "findings: {} lockout(s), {} erosion(s), {} inconclusive",
                    sum.lockouts, sum.erosion, sum.inconclusive
                )
            )
        );
    }
    for f in &report.lockouts {
        let label = match f.kind {
            FindingKind::Lockout => s.paint("1;31", "LOCKOUT"),
            FindingKind::Inconclusive => s.paint("1;33", "INCONCLUSIVE"),
            FindingKind::Erosion => s.paint("1;33", "EROSION"),
        };
        let _ = writeln!(out, "  {label} {}", f.message);
        if let Some(at) = &f.location {
            let _ = writeln!(out, "    guard at: {at}");
        }
        if f.kind == FindingKind::Lockout {
            let blocking = if f.blocking.is_empty() {
                "no policy allows it".to_string()
            } else {
                f.blocking.join(", ")
            };
            let _ = writeln!(
                out,
                "    blocking: {blocking} (reason {})",
                f.reason.unwrap_or("denied")
            );
            for u in &f.undetermined {
                let _ = writeln!(
                    out,
                    "    undetermined: `{}` in `{}` ({})",
                    u.attribute, u.policy, u.cause
                );
            }
            let _ = writeln!(out, "    blocked cells ({}):", f.cells.len());
            for c in &f.cells {
                let _ = writeln!(
                    out,
                    "      {} {} on {}",
                    c.principal,
                    c.action,
                    c.resource.as_deref().unwrap_or("(no URI)")
                );
            }
            if let Some(cx) = &f.counterexample {
                let _ = writeln!(out, "    counterexample: {cx}");
            }
        }
        if let Some(hint) = &f.hint {
            let _ = writeln!(out, "    hint: {hint}");
        }
    }
    if let Some(changes) = &report.changes {
        let _ = writeln!(
            out,
            "decision changes: {} of {} replayed requests changed",
            changes.changed, changes.replayed
        );
        for g in &changes.groups {
            let _ = writeln!(
                out,
                "  {} {}: {} → {} ×{}",
                g.principal, g.action, g.from, g.to, g.count
            );
            for sample in &g.samples {
                let _ = writeln!(out, "    e.g. {sample}");
            }
        }
    }
    let _ = writeln!(
        out,
        "result: {}",
        if report.lockouts.is_empty() {
            "safe".to_string()
        } else {
            format!(
                "{} finding(s): {} lockout(s), {} erosion(s), {} inconclusive",
                report.lockouts.len(),
                sum.lockouts,
                sum.erosion,
                sum.inconclusive
            )
        }
    );
    out
}
