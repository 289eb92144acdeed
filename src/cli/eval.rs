//! `arbiter eval --request FILE|-`: one decision as JSON, optionally with `--explain`.

use clap::Args;
use crate::moment::Moment;
use serde_json::json;

use super::{EXIT_INVALID, EXIT_OK};
use crate::eval::{evaluate, EvalOptions};
use crate::request::RawRequest;

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub set: super::PolicySet,
    /// The request as JSON: a file, or `-` for standard input.
    #[arg(long, value_name = "FILE|-")]
    pub request: String,
    /// List every candidate policy with each condition's outcome (also set by `"explain": true` in the request).
    #[arg(long)]
    pub explain: bool,
}

pub fn run(args: EvalArgs) -> i32 {
    let mut explain = args.explain;
    let Ok(value) = super::read_json_arg("request", &args.request) else {
        return EXIT_INVALID;
    };
    let request = match RawRequest::from_json(value) {
        Ok(raw) => {
            explain |= raw.explain.unwrap_or(false);
            raw.normalize()
        }
        Err(e) => Err(e),
    };
    let request = match request {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: invalid request: {e}");
            return EXIT_INVALID;
        }
    };
    let Some(snapshot) = args.set.load() else {
        return EXIT_INVALID;
    };
    let now = Moment::now();
    let options = EvalOptions {
        superuser: Some(&args.set.superuser),
        explain,
    };
    let decision = evaluate(&snapshot, &request, now, &options);
    let mut out = json!({
        "decision": decision.decision_str(),
        "policies": decision.policies,
        "reason": decision.reason.as_str(),
        "undetermined_allow": decision.undetermined_allow,
        "revision": snapshot.revision,
        "time": request.environment.time.unwrap_or(now).to_string(),
    });
    if let Some(explanation) = &decision.explanation {
        out["explanation"] = serde_json::to_value(explanation).unwrap_or_default();
    }
    super::print_out(&(serde_json::to_string_pretty(&out).unwrap_or_default() + "\n"));
    EXIT_OK
}
