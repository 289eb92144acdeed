//! `arbiter plan --request FILE|-`: the query plan of SPEC section 7, as the JSON filter tree or, with
//! `--format sql`, a parameterised SQLite `WHERE` clause for a table mapping.

use clap::{Args, ValueEnum};
use crate::moment::Moment;

use super::{EXIT_INVALID, EXIT_OK};
use crate::plan::sql::SqlMapping;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// The plan: `{kind, filter, revision, actions, residual, policies}` (and `sql` with `--sql-mapping`).
    Json,
    /// `{kind, where, params, exact, revision}`: the filter as a SQLite `WHERE` clause with numbered parameters.
    Sql,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub set: super::PolicySet,
    /// The plan request as JSON (a principal, `action` or `actions`, an environment, and optionally known
    /// `resource` fields `uri` (a URI or glob) and `owner`): a file, or `-` for standard input.
    #[arg(long, value_name = "FILE|-")]
    pub request: String,
    /// Output: the JSON filter tree, or a SQL `WHERE` clause.
    #[arg(long, value_enum, default_value = "json")]
    pub format: PlanFormat,
    /// The table mapping for SQL, as JSON; the defaults are `{"uri": "uri", "owner": "owner", "columns": {},
    /// "json": "attributes"}`. It replaces a `sql` mapping in the request; with `--format json` the plan then
    /// carries `sql` too.
    #[arg(long, value_name = "FILE")]
    pub sql_mapping: Option<String>,
}

pub fn run(args: PlanArgs) -> i32 {
    let Ok(value) = super::read_json_arg("plan request", &args.request) else {
        return EXIT_INVALID;
    };
    let raw = crate::request::from_json_value::<crate::plan::RawPlanRequest>(value);
    let (request, in_request) = match raw.and_then(|mut raw| {
        let sql = raw.sql.take();
        raw.normalize().map(|r| (r, sql))
    }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: invalid plan request: {e}");
            return EXIT_INVALID;
        }
    };
    // `--sql-mapping` wins over a mapping in the request.
    let mapping = match &args.sql_mapping {
        None => in_request,
        Some(path) => {
            let Ok(value) = super::read_json_arg("SQL mapping", path) else {
                return EXIT_INVALID;
            };
            match crate::request::from_json_value::<SqlMapping>(value) {
                Ok(m) => Some(m),
                Err(e) => {
                    eprintln!("error: {path}: invalid SQL mapping: {e}");
                    return EXIT_INVALID;
                }
            }
        }
    };
    let Some(snapshot) = args.set.load() else {
        return EXIT_INVALID;
    };
    let plan = crate::plan::plan(
        &snapshot,
        &request,
        Moment::now(),
        Some(&args.set.superuser),
    );
    let sql = match (&mapping, args.format) {
        (None, PlanFormat::Json) => None,
        (m, _) => match plan.to_sql(&m.clone().unwrap_or_default()) {
            Ok(sql) => Some(sql),
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_INVALID;
            }
        },
    };
    let out = match (args.format, sql) {
        (PlanFormat::Sql, Some(sql)) => serde_json::json!({
            "kind": plan.kind.as_str(),
            "where": sql.where_clause,
            "params": sql.params,
            "exact": sql.exact,
            "revision": plan.revision,
        }),
        (_, sql) => {
            let mut out = plan.to_json();
            if let Some(sql) = sql {
                out["sql"] = serde_json::to_value(sql).unwrap_or_default();
            }
            out
        }
    };
    super::print_out(&(serde_json::to_string_pretty(&out).unwrap_or_default() + "\n"));
    EXIT_OK
}
