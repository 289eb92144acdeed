//! One simulation end to end (validity, lockouts, decision changes) and its text and JSON renderings, shared by
//! `arbiter simulate` and the `Simulate` RPC.

use std::fmt::Write;

use serde::Serialize;

use super::replay::{replay, DecisionDiff, Logged};
use super::{analyze, Finding, FindingKind, LockoutOptions};
use crate::load::SourceSet;
use crate::snapshot::Snapshot;

/// Everything one simulation found. `--format json` prints this.
#[derive(Debug, Clone, Serialize, Default)]
pub struct SimulationReport {
    pub valid: bool,
    /// Errors in the proposed set (and anything else that made the analysis impossible), with file:line:col.
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    /// Lockout, inconclusive and erosion findings.
    pub lockouts: Vec<Finding>,
    /// Decisions that changed, grouped; present when requests were replayed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<DecisionDiff>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,
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
/// `current` is either a built snapshot (the live one, for the RPC) or sources to build.
pub fn simulate(
    current: Option<&Snapshot>,
    proposed_sources: &SourceSet,
    requests: Option<&[Logged]>,
    options: &LockoutOptions,
) -> SimulationReport {
    let proposed_revision = proposed_sources.revision();
    let proposed = match crate::compile::build(proposed_sources) {
        Ok(s) => s,
        Err(d) => {
            return SimulationReport::invalid(
                d.errors().map(|e| e.to_string()).collect(),
                proposed_revision,
            )
        }
    };
    let warnings = proposed.warnings.iter().map(|w| w.to_string()).collect();
    let lockouts = match analyze(current, &proposed, options) {
        Ok(f) => f,
        Err(errors) => {
            return SimulationReport::invalid(
                errors
                    .into_iter()
                    .map(|e| format!("{}: error: {}", e.location, e.message))
                    .collect(),
                proposed_revision,
            )
        }
    };
    let changes = match (current, requests) {
        (Some(c), Some(r)) => Some(replay(c, &proposed, r, options.superuser.as_deref())),
        _ => None,
    };
    SimulationReport {
        valid: true,
        errors: Vec::new(),
        warnings,
        lockouts,
        changes,
        current_revision: current.map(|c| c.revision.clone()),
        proposed_revision,
    }
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
                &format!("lockouts: {} finding(s)", report.lockouts.len())
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
            if let Some(cx) = &f.counterexample {
                let _ = writeln!(out, "    counterexample: {cx}");
            }
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
            format!("{} finding(s)", report.lockouts.len())
        }
    );
    out
}
