//! The `arbiter` command line: argument definitions and dispatch, one file per subcommand.
//!
//! Exit codes (SPEC section 3): 0 success; 1 the check found a problem (a failing test, a lockout finding);
//! 2 invalid input or usage.

pub(crate) mod check;
mod eval;
mod fmt;
pub mod git_base;
mod import;
mod plan;
mod schema;
mod serve;
mod simulate;
pub(crate) mod test;

use std::path::Path;

use std::time::Duration;

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
    /// The query plan: which resources a principal may act on, as a filter tree or a SQL `WHERE`.
    Plan(plan::PlanArgs),
    /// Run `kind: TestSuite` files against a policy directory.
    Test(test::TestArgs),
    /// Check a proposed policy change for administrator lockout and show whose access it changes.
    Simulate(simulate::SimulateArgs),
    /// Serve gRPC `Authorize` on a hot-reloaded policy directory.
    Serve(Box<serve::ServeArgs>),
    /// Print the JSON Schema (draft 2020-12) of policy-file documents, for editors and CI.
    Schema,
    /// Rewrite policy files in the canonical style, comments kept (`--check`: list the files that are not).
    Fmt(fmt::FmtArgs),
    /// Import policies from another product: `arbiter import cm FILE|DIR... --out DIR`.
    #[command(subcommand)]
    Import(import::ImportCommand),
}

/// The policy set a verb decides with: `--policies` and `--superuser` (eval, test, plan).
#[derive(Debug, clap::Args)]
pub struct PolicySet {
    /// The policy directory.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "policies",
        env = "ARBITER_POLICIES"
    )]
    pub policies: std::path::PathBuf,
    /// The principal id that is always allowed.
    #[arg(long, value_name = "NAME", default_value = crate::DEFAULT_SUPERUSER, env = "ARBITER_SUPERUSER")]
    pub superuser: String,
}

impl PolicySet {
    /// Loads and builds the set; on failure prints every diagnostic and returns `None`.
    pub(crate) fn load(&self) -> Option<Snapshot> {
        load_snapshot(&self.policies)
            .map_err(|diags| print_diagnostics(&diags))
            .ok()
    }
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
        Command::Plan(args) => plan::run(args),
        Command::Test(args) => test::run(args),
        Command::Serve(args) => serve::run(*args),
        Command::Simulate(args) => simulate::run(args),
        Command::Import(command) => import::run(command),
        Command::Schema => schema::run(),
        Command::Fmt(args) => fmt::run(args),
    }
}

/// Loads and builds a policy directory, printing every diagnostic on failure.
pub(crate) fn load_snapshot(dir: &Path) -> Result<Snapshot, Diagnostics> {
    let sources = load_dir(dir)?;
    crate::compile::build(&sources)
}

/// [`load_snapshot`] as `check` needs it: TestSuite documents in the directory are validated too.
pub(crate) fn load_snapshot_checked(dir: &Path) -> Result<Snapshot, Diagnostics> {
    let sources = load_dir(dir)?;
    crate::compile::build_with(&sources, true)
}

/// Reads a JSON document from a file, or from standard input for `-`; prints the problem and returns `Err`.
pub(crate) fn read_json_arg(what: &str, path: &str) -> Result<serde_json::Value, ()> {
    use std::io::Read;
    let text = if path == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map(|_| s)
    } else {
        std::fs::read_to_string(path)
    };
    let text = text.map_err(|e| eprintln!("error: cannot read the {what} from {path}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| eprintln!("error: {path}: invalid JSON: {e}"))
}

/// Writes a report to standard output. A closed pipe (`| head`) is not worth a panic, and the exit code still
/// tells the outcome, so write errors are ignored.
pub(crate) fn print_out(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// Prints diagnostics to stderr followed by a summary line.
pub(crate) fn print_diagnostics(diags: &Diagnostics) {
    for d in diags.iter() {
        eprintln!("{d}");
    }
    eprintln!("{}", diags.summary());
}

/// `10s`, `500ms`, `2m`, or a bare number of seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration such as `10s` or `500ms`"))?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{s}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("soon").is_err());
        assert!(
            parse_duration("99999999999999999999999s").is_err(),
            "too large is an error, not a panic"
        );
    }
}
