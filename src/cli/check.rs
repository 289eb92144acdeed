//! `arbiter check [DIR]`: validate a policy directory, printing every error and warning with file:line:col.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use jiff::Timestamp;

use super::{load_snapshot, print_diagnostics, EXIT_FINDING, EXIT_INVALID, EXIT_OK};
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
}

pub fn run(args: CheckArgs) -> i32 {
    match load_snapshot(&args.dir) {
        Ok(snapshot) => {
            for w in snapshot.warnings.iter() {
                eprintln!("{w}");
            }
            // The set's own LockoutGuards, as `serve` checks them at start-up: `check` never passes a set that
            // `serve` refuses.
            let options = LockoutOptions {
                as_of: Timestamp::now(),
                budget: args.budget,
                superuser: Some(args.superuser.clone()),
            };
            let findings = match analyze(None, &snapshot, &options) {
                Ok(f) => f,
                Err(errors) => {
                    for e in errors {
                        eprintln!("{}: error: {}", e.location, e.message);
                    }
                    return EXIT_INVALID;
                }
            };
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
                "{}: ok: {} policies, {} attachments, {} groups, {} guards, {} warnings (revision {})\n",
                args.dir.display(),
                snapshot.policy_count(),
                snapshot.attachment_count(),
                snapshot.group_count(),
                snapshot.compiled.guards.len(),
                snapshot.warnings.len(),
                snapshot.revision
            ));
            EXIT_OK
        }
        Err(diags) => {
            print_diagnostics(&diags);
            EXIT_INVALID
        }
    }
}
