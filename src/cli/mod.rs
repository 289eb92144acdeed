//! The `arbiter` command line: argument definitions and dispatch, one file per subcommand.
//!
//! Exit codes (SPEC section 3): 0 success; 1 the check found a problem (a failing test, a lockout finding);
//! 2 invalid input or usage.

mod check;
mod eval;
mod serve;
mod simulate;
mod test;

use std::path::Path;

use clap::{Parser, Subcommand};

use crate::diag::Diagnostics;
use crate::load::load_dir;
use crate::snapshot::Snapshot;

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: the check found a problem.
pub const EXIT_FINDING: i32 = 1;
/// Exit code: invalid input or usage.
pub const EXIT_INVALID: i32 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "arbiter",
    version,
    about = "ABAC policy decision point with a lockout simulator"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a policy directory and print every error and warning with file:line:col.
    Check(check::CheckArgs),
    /// Decide one request (JSON) and print the decision as JSON.
    Eval(eval::EvalArgs),
    /// Run `kind: TestSuite` files against a policy directory.
    Test(test::TestArgs),
    /// Check a proposed policy change for administrator lockout and show whose access it changes.
    Simulate(simulate::SimulateArgs),
    /// Serve gRPC `Authorize` on a hot-reloaded policy directory.
    Serve(serve::ServeArgs),
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                EXIT_INVALID
            } else {
                EXIT_OK
            };
        }
    };
    match cli.command {
        Command::Check(args) => check::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Test(args) => test::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Simulate(args) => simulate::run(args),
    }
}

/// Loads and builds a policy directory, printing every diagnostic on failure.
pub(crate) fn load_snapshot(dir: &Path) -> Result<Snapshot, Diagnostics> {
    let sources = load_dir(dir)?;
    crate::compile::build(&sources)
}

/// Prints diagnostics to stderr followed by a summary line.
/// Writes a report to standard output. A closed pipe (`| head`) is not worth a panic, and the exit code still
/// tells the outcome, so write errors are ignored.
pub(crate) fn print_out(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

pub(crate) fn print_diagnostics(diags: &Diagnostics) {
    for d in diags.iter() {
        eprintln!("{d}");
    }
    eprintln!("{}", diags.summary());
}
