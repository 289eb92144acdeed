//! `arbiter check [DIR] [--format text|json]`: validate a policy directory (TestSuite documents in it
//! included), printing every error and warning with file:line:col, then run the set's own LockoutGuards.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use crate::moment::Moment;

use serde_json::{json, Value};

use super::{load_snapshot_checked, print_diagnostics, EXIT_FINDING, EXIT_INVALID, EXIT_OK};
use crate::diag::{Diagnostic, Diagnostics};
use crate::simulate::report::{render_text, SimulationReport, Summary};
use crate::simulate::{analyze, LockoutOptions};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The policy directory.
    #[arg(
        value_name = "DIR",
        default_value = "policies",
        env = "ARBITER_POLICIES"
    )]
    pub dir: PathBuf,
    /// The superuser's principal id (a guard may not name it).
    #[arg(long, value_name = "NAME", default_value = crate::DEFAULT_SUPERUSER, env = "ARBITER_SUPERUSER")]
    pub superuser: String,
    /// Search budget of the lockout check per guard, as on `serve`.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = super::parse_duration, env = "ARBITER_LOCKOUT_BUDGET")]
    pub budget: Duration,
    /// `text` for people; `json` (every diagnostic with its code and position, and the guards' findings) for
    /// editors and CI.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// How `arbiter check` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// One diagnostic as JSON: `{severity, code, file, line, col, message, help}`.
pub(crate) fn diagnostic_json(d: &Diagnostic) -> Value {
    json!({
        "severity": if d.is_error() { "error" } else { "warning" },
        "code": d.code.to_string(),
        "file": d.file.display().to_string(),
        "line": d.pos.line,
        "col": d.pos.col,
        "message": d.message,
        "help": d.help,
    })
}

fn report_json(valid: bool, diags: &Diagnostics, extra: Value) -> Value {
    let mut out = json!({
        "valid": valid,
        "errors": diags.errors().map(diagnostic_json).collect::<Vec<_>>(),
        "warnings": diags.warnings().map(diagnostic_json).collect::<Vec<_>>(),
    });
    if let (Value::Object(out), Value::Object(extra)) = (&mut out, extra) {
        out.extend(extra);
    }
    out
}

pub fn run(args: CheckArgs) -> i32 {
    let json = args.format == Format::Json;
    let print_json =
        |v: Value| super::print_out(&(serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"));
    match load_snapshot_checked(&args.dir) {
        Ok(snapshot) => {
            if !json {
                for w in snapshot.warnings.iter() {
                    eprintln!("{w}");
                }
            }
            // The set's own LockoutGuards, as `serve` checks them at start-up: `check` never passes a set that
            // `serve` refuses.
            let options = LockoutOptions {
                as_of: Moment::now(),
                budget: args.budget,
                superuser: Some(args.superuser.clone()),
            };
            let findings = match analyze(None, &snapshot, &options) {
                Ok(f) => f,
                Err(errors) => {
                    if json {
                        let errors: Vec<Value> = errors
                            .iter()
                            .map(|e| json!({"location": e.location, "message": e.message}))
                            .collect();
                        print_json(report_json(
                            false,
                            &snapshot.warnings,
                            json!({ "guard_errors": errors }),
                        ));
                    }
                    for e in errors {
                        eprintln!("{}: error: {}", e.location, e.message);
                    }
                    return EXIT_INVALID;
                }
            };
            if json {
                let summary = Summary::of(&findings);
                print_json(report_json(
                    true,
                    &snapshot.warnings,
                    json!({
                        "revision": snapshot.revision,
                        "policies": snapshot.policy_count(),
                        "attachments": snapshot.attachment_count(),
                        "groups": snapshot.group_count(),
                        "guards": snapshot.compiled.guards.len(),
                        "summary": summary,
                        "lockouts": findings,
                    }),
                ));
                return if findings.is_empty() {
                    EXIT_OK
                } else {
                    EXIT_FINDING
                };
            }
            if !findings.is_empty() {
                let report = SimulationReport {
                    valid: true,
                    summary: Summary::of(&findings),
                    lockouts: findings,
                    proposed_revision: snapshot.revision.clone(),
                    ..Default::default()
                };
                eprint!("{}", render_text(&report, false));
                eprintln!(
                    "{}: the set fails its own LockoutGuards; `arbiter serve` would refuse it",
                    args.dir.display()
                );
                return EXIT_FINDING;
            }
            super::print_out(&format!(
                "{}: ok: {} policies, {} attachments, {} groups, {} guards, {} warning{} (revision {})\n",
                args.dir.display(),
                snapshot.policy_count(),
                snapshot.attachment_count(),
                snapshot.group_count(),
                snapshot.compiled.guards.len(),
                snapshot.warnings.len(),
                if snapshot.warnings.len() == 1 { "" } else { "s" },
                snapshot.revision
            ));
            EXIT_OK
        }
        Err(diags) => {
            if json {
                print_json(report_json(false, &diags, json!({})));
            } else {
                print_diagnostics(&diags);
            }
            EXIT_INVALID
        }
    }
}
