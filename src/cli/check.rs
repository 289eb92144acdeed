//! `arbiter check [DIR]`: validate a policy directory, printing every error and warning with file:line:col.

use std::path::PathBuf;

use clap::Args;

use super::{load_snapshot, print_diagnostics, EXIT_INVALID, EXIT_OK};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The policy directory.
    #[arg(
        value_name = "DIR",
        default_value = "policies",
        env = "ARBITER_POLICIES"
    )]
    pub dir: PathBuf,
}

pub fn run(args: CheckArgs) -> i32 {
    match load_snapshot(&args.dir) {
        Ok(snapshot) => {
            for w in snapshot.warnings.iter() {
                eprintln!("{w}");
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
