//! Decision changes: replay logged requests (the sidecar's decision-log lines, or bare requests in the JSON
//! request shape) against the current and the proposed set, and group every changed decision by
//! (principal, action) with counts and samples.

use std::collections::BTreeMap;
use std::io::BufRead;

use crate::moment::Moment;
use serde::Serialize;
use serde_json::Value;

use crate::eval::{evaluate, EvalOptions};
use crate::request::{parse_rfc3339, Request};
use crate::snapshot::Snapshot;

/// Samples kept per group.
pub const SAMPLES_PER_GROUP: usize = 3;

/// One logged request, ready to replay.
#[derive(Debug, Clone)]
pub struct Logged {
    pub request: Request,
    pub time: Moment,
}

/// A line that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

/// Parses one line: a decision-log line (the request's fields plus the decision's), a bare request, or a
/// request nested under `"request"` beside the decision's fields (the decision log's earlier shape).
/// Requests without `environment.time` use the line's `timestamp`, else `default_time`.
pub fn parse_line(text: &str, default_time: Moment) -> Result<Logged, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let stamp = value
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(parse_rfc3339);
    let request_value = match value {
        Value::Object(mut obj) if obj.contains_key("request") => {
            obj.remove("request").unwrap_or(Value::Null)
        }
        other => other,
    };
    let request = Request::from_json(request_value).map_err(|e| e.to_string())?;
    let time = request.environment.time.or(stamp).unwrap_or(default_time);
    Ok(Logged { request, time })
}

/// Lines parsed per claim when lines are parsed in parallel.
const LINES_PER_CHUNK: usize = 512;

/// Reads every line of a JSON-lines source; blank lines are skipped, bad lines collected (in line order).
/// The lines are parsed in parallel, one thread per core.
pub fn read_lines(reader: impl BufRead, default_time: Moment) -> (Vec<Logged>, Vec<LineError>) {
    let mut lines = Vec::new();
    let mut read_error = None;
    for (i, line) in reader.lines().enumerate() {
        match line {
            Ok(l) if l.trim().is_empty() => {}
            Ok(l) => lines.push((i + 1, l)),
            Err(e) => {
                read_error = Some(LineError {
                    line: i + 1,
                    message: e.to_string(),
                });
                break;
            }
        }
    }
    let parsed = crate::parallel::map_in_order(&lines, LINES_PER_CHUNK, None, |(_, text)| {
        parse_line(text, default_time)
    });
    let mut ok = Vec::with_capacity(parsed.len());
    let mut errors = Vec::new();
    for ((line, _), result) in lines.iter().zip(parsed) {
        match result {
            Ok(l) => ok.push(l),
            Err(message) => errors.push(LineError {
                line: *line,
                message,
            }),
        }
    }
    errors.extend(read_error);
    (ok, errors)
}

/// Changed decisions for one (principal, action) and direction.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChangeGroup {
    pub principal: String,
    pub action: String,
    pub from: &'static str,
    pub to: &'static str,
    pub count: usize,
    pub samples: Vec<Value>,
}

/// The result of a replay.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct DecisionDiff {
    pub replayed: usize,
    pub changed: usize,
    pub groups: Vec<ChangeGroup>,
}

/// Decides every request with both sets and groups the changes.
pub fn replay(
    current: &Snapshot,
    proposed: &Snapshot,
    requests: &[Logged],
    superuser: Option<&str>,
) -> DecisionDiff {
    let options = EvalOptions {
        superuser,
        explain: false,
    };
    // Deciding is pure, so the requests are decided in parallel; grouping stays in request order.
    let decided = crate::parallel::map_in_order(requests, LINES_PER_CHUNK, None, |l| {
        (
            evaluate(current, &l.request, l.time, &options).allowed,
            evaluate(proposed, &l.request, l.time, &options).allowed,
        )
    });
    let mut groups: BTreeMap<(String, String, bool), ChangeGroup> = BTreeMap::new();
    let mut changed = 0;
    for (l, (before, after)) in requests.iter().zip(decided) {
        if before == after {
            continue;
        }
        changed += 1;
        let word = |a: bool| if a { "allow" } else { "deny" };
        let key = (
            l.request.principal.id.clone(),
            l.request.action.clone(),
            before,
        );
        let g = groups.entry(key).or_insert_with(|| ChangeGroup {
            principal: l.request.principal.id.clone(),
            action: l.request.action.clone(),
            from: word(before),
            to: word(after),
            count: 0,
            samples: Vec::new(),
        });
        g.count += 1;
        if g.samples.len() < SAMPLES_PER_GROUP {
            let mut r = l.request.clone();
            r.environment.time = Some(l.time);
            g.samples.push(r.to_json());
        }
    }
    DecisionDiff {
        replayed: requests.len(),
        changed,
        groups: groups.into_values().collect(),
    }
}
