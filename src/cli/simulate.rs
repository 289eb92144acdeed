//! `arbiter simulate`: the lockout simulator. Exit 0 safe, 1 a finding (lockout, inconclusive or erosion),
//! 2 invalid input (including an invalid proposed set).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use crate::moment::Moment;

use super::git_base as git;
use super::{print_diagnostics, EXIT_INVALID};
use crate::load::load_dir;
use crate::request::parse_rfc3339;
use crate::simulate::replay::read_lines;
use crate::simulate::report::{render_text, simulate};
use crate::simulate::LockoutOptions;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The proposed policy directory.
    #[arg(long, value_name = "DIR")]
    pub proposed: PathBuf,
    /// The current policy directory.
    #[arg(long, value_name = "DIR", conflicts_with = "base")]
    pub current: Option<PathBuf>,
    /// Read the current set from this git revision (same directory), e.g. `origin/main`.
    #[arg(long, value_name = "GIT_REV")]
    pub base: Option<String>,
    /// Replay these logged requests (decision-log JSON lines, or bare requests) against both sets.
    #[arg(long, value_name = "FILE.jsonl")]
    pub requests: Option<PathBuf>,
    /// Report format: `text` for people, `json` for CI and editors (every field present).
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Time starts here (RFC 3339); default now.
    #[arg(long, value_name = "RFC3339")]
    pub as_of: Option<String>,
    /// Search budget per guard, e.g. `10s`, `500ms`; running out is reported as inconclusive.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = super::parse_duration)]
    pub budget: Duration,
    /// The superuser's principal id (a guard may not name it).
    #[arg(long, value_name = "NAME", default_value = crate::DEFAULT_SUPERUSER, env = "ARBITER_SUPERUSER")]
    pub superuser: String,
}

pub fn run(args: SimulateArgs) -> i32 {
    let budget = args.budget;
    let as_of = match args.as_of.as_deref() {
        None => Moment::now(),
        Some(t) => match parse_rfc3339(t) {
            Some(t) => t,
            None => {
                eprintln!("error: --as-of: `{t}` is not an RFC 3339 instant");
                return EXIT_INVALID;
            }
        },
    };
    let proposed = match load_dir(&args.proposed) {
        Ok(s) => s,
        Err(d) => {
            print_diagnostics(&d);
            return EXIT_INVALID;
        }
    };
    let current_sources = match (&args.current, &args.base) {
        (Some(dir), _) => match load_dir(dir) {
            Ok(s) => Some(s),
            Err(d) => {
                eprintln!("error: the current set is unreadable:");
                print_diagnostics(&d);
                return EXIT_INVALID;
            }
        },
        (None, Some(rev)) => match git::load_revision(&args.proposed, rev) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("error: --base {rev}: {e}");
                return EXIT_INVALID;
            }
        },
        (None, None) => None,
    };
    let current = match current_sources.as_ref().map(crate::compile::build) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(d)) => {
            eprintln!("error: the current set is invalid, so it cannot be compared:");
            print_diagnostics(&d);
            return EXIT_INVALID;
        }
    };
    let requests = match &args.requests {
        None => None,
        Some(path) => {
            let file = match std::fs::File::open(path) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("error: {}: {e}", path.display());
                    return EXIT_INVALID;
                }
            };
            let (requests, errors) = read_lines(std::io::BufReader::new(file), as_of);
            if !errors.is_empty() {
                for e in &errors {
                    eprintln!("{}:{}: error: {}", path.display(), e.line, e.message);
                }
                return EXIT_INVALID;
            }
            if current.is_none() {
                eprintln!("error: --requests needs --current or --base to compare with");
                return EXIT_INVALID;
            }
            Some(requests)
        }
    };
    let options = LockoutOptions {
        as_of,
        budget,
        superuser: Some(args.superuser.clone()),
    };
    let report = simulate(current.as_ref(), &proposed, requests.as_deref(), &options);
    let text = match args.format {
        Format::Json => serde_json::to_string_pretty(&report).unwrap_or_default() + "\n",
        Format::Text => {
            let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            render_text(&report, color)
        }
    };
    super::print_out(&text);
    report.exit_code()
}
