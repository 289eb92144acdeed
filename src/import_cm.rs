//! CipherTrust Manager policies and policy attachments (the JSON of its REST API, of `ksctl`, and of
//! `terraform show -json` for the Thales provider) converted to Arbiter documents. Pure: the CLI edge reads the
//! files and writes the result (`arbiter import cm`).
//!
//! Whatever cannot be carried over exactly is reported as a warning naming the input file and a JSON pointer,
//! never dropped silently, and the conversion fails closed: an allow that cannot be imported exactly is left out
//! (it grants nothing), a deny that cannot is kept broader (it denies at least as much).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::ast::OpName;
use crate::parse::is_valid_id;

/// One thing the importer could not carry over as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportWarning {
    /// The input file.
    pub file: PathBuf,
    /// A JSON pointer into it (RFC 6901), to the field concerned.
    pub pointer: String,
    /// What was done about it.
    pub message: String,
}

/// The result of an import: the documents as YAML text, a TestSuite skeleton, and the warnings.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    /// Policies and attachments, as one multi-document YAML file.
    pub policies_yaml: String,
    /// One allow probe and one outsider probe per policy (`kind: TestSuite`).
    pub suite_yaml: String,
    /// How many policies and attachments were written.
    pub policies: usize,
    /// Attachments written.
    pub attachments: usize,
    /// Everything not carried over exactly.
    pub warnings: Vec<ImportWarning>,
    /// What stops the import: a deny (or a policy that may be one) that cannot be carried over. Leaving it out
    /// would grant what CM denies, so nothing is written.
    pub errors: Vec<ImportWarning>,
}

/// A policy or an attachment found in some input, with where it was found.
struct Found<'a> {
    file: &'a Path,
    pointer: String,
    object: &'a Map<String, Value>,
}

/// Collects the CM objects of one parsed input: single objects, arrays, list responses (`{"resources": [...]}`)
/// and `terraform show -json` output (state `values` or plan `planned_values`, modules included).
fn collect<'a>(
    file: &'a Path,
    value: &'a Value,
    pointer: String,
    policies: &mut Vec<Found<'a>>,
    attachments: &mut Vec<Found<'a>>,
    ignored: &mut Vec<ImportWarning>,
) {
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect(file, item, format!("{pointer}/{i}"), policies, attachments, ignored);
            }
        }
        Value::Object(map) => {
            for key in ["values", "planned_values"] {
                if let Some(module) = map.get(key).and_then(|v| v.get("root_module")) {
                    terraform_module(file, module, format!("{pointer}/{key}/root_module"), policies, attachments);
                    return;
                }
            }
            if is_attachment(map) {
                attachments.push(Found { file, pointer, object: map });
            } else if is_policy(map) {
                policies.push(Found { file, pointer, object: map });
            } else if let Some(Value::Array(_)) = map.get("resources") {
                collect(file, &map["resources"], format!("{pointer}/resources"), policies, attachments, ignored);
            } else {
                ignored.push(ImportWarning {
                    file: file.to_path_buf(),
                    pointer,
                    message: "not a CM policy (no `actions`, `effect` or `allow`) or attachment (no `policy` and selector): ignored".into(),
                });
            }
        }
        _ => ignored.push(ImportWarning {
            file: file.to_path_buf(),
            pointer,
            message: "not a JSON object or array: ignored".into(),
        }),
    }
}

fn terraform_module<'a>(
    file: &'a Path,
    module: &'a Value,
    pointer: String,
    policies: &mut Vec<Found<'a>>,
    attachments: &mut Vec<Found<'a>>,
) {
    if let Some(Value::Array(resources)) = module.get("resources") {
        for (i, r) in resources.iter().enumerate() {
            let Some(Value::Object(values)) = r.get("values") else {
                continue;
            };
            let at = format!("{pointer}/resources/{i}/values");
            match r.get("type").and_then(Value::as_str) {
                Some("ciphertrust_policies") => policies.push(Found { file, pointer: at, object: values }),
                Some("ciphertrust_policy_attachments") => {
                    attachments.push(Found { file, pointer: at, object: values })
                }
                _ => {}
            }
        }
    }
    if let Some(Value::Array(children)) = module.get("child_modules") {
        for (i, child) in children.iter().enumerate() {
            terraform_module(file, child, format!("{pointer}/child_modules/{i}"), policies, attachments);
        }
    }
}

fn is_attachment(map: &Map<String, Value>) -> bool {
    map.contains_key("policy")
        && (map.contains_key("principalSelector") || map.contains_key("principal_selector"))
}

fn is_policy(map: &Map<String, Value>) -> bool {
    map.contains_key("actions") || map.contains_key("allow") || map.contains_key("effect")
}

/// Escapes one JSON-pointer token.
fn token(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Ids from names: characters outside `[A-Za-z0-9._-]` become `-`, and repeats get `-2`, `-3`...
struct Ids {
    taken: HashSet<String>,
}

impl Ids {
    fn make(&mut self, name: &str, fallback: &str) -> String {
        let mut base: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' })
            .collect();
        while base.contains("--") {
            base = base.replace("--", "-");
        }
        let base = base.trim_matches('-').to_string();
        let base = if base.is_empty() || base == crate::validate::RESERVED_POLICY_ID {
            format!("{fallback}{}", if base.is_empty() { "" } else { "-1" })
        } else {
            base
        };
        let mut id = base.clone();
        let mut n = 2;
        while !is_valid_id(&id) || !self.taken.insert(id.clone()) {
            id = format!("{base}-{n}");
            n += 1;
        }
        id
    }
}

/// The fields of a CM policy that are read-only metadata: known, and not policy content.
const POLICY_METADATA: &[&str] = &["id", "uri", "account", "createdAt", "updatedAt", "application", "devAccount"];
/// The fields of a CM attachment that are read-only metadata.
const ATTACHMENT_METADATA: &[&str] = &["id", "uri", "account", "createdAt", "updatedAt", "application", "devAccount", "name"];

/// A converted policy, before it is written.
struct Policy {
    id: String,
    effect: &'static str,
    /// `include_descendant_accounts` on a deny: its attachments drop their `acct` claim, so that the deny still
    /// reaches principals of sub-accounts.
    descendants: bool,
    description: String,
    actions: Vec<String>,
    resources: Vec<String>,
    /// `(path, op, values, negate)`.
    conditions: Vec<(String, OpName, Vec<Value>, bool)>,
}

/// Where a problem is, and whether it is fatal.
struct Report<'r> {
    file: &'r Path,
    pointer: &'r str,
    warnings: &'r mut Vec<ImportWarning>,
    errors: &'r mut Vec<ImportWarning>,
}

impl Report<'_> {
    fn at(&self, field: &str, message: String) -> ImportWarning {
        let pointer = if field.is_empty() {
            self.pointer.to_string()
        } else {
            format!("{}/{field}", self.pointer)
        };
        ImportWarning { file: self.file.to_path_buf(), pointer, message }
    }
    fn warn(&mut self, field: &str, message: String) {
        let w = self.at(field, message);
        self.warnings.push(w);
    }
    fn fail(&mut self, field: &str, message: String) {
        let e = self.at(field, message);
        self.errors.push(e);
    }
}

/// Converts every CM policy and attachment found in `inputs` (file and parsed JSON).
pub fn convert(inputs: &[(PathBuf, Value)]) -> Imported {
    let mut found_policies = Vec::new();
    let mut found_attachments = Vec::new();
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    for (file, value) in inputs {
        collect(file, value, String::new(), &mut found_policies, &mut found_attachments, &mut warnings);
    }
    let mut ids = Ids { taken: HashSet::new() };
    let mut policies: Vec<Policy> = Vec::new();
    // CM's ids are unique; its names need not be. Each to the imported policies it names.
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
    for found in &found_policies {
        let mut report = Report { file: found.file, pointer: &found.pointer, warnings: &mut warnings, errors: &mut errors };
        if let Some(p) = policy(found, &mut ids, &mut report) {
            if let Some(id) = found.object.get("id").and_then(Value::as_str) {
                by_id.insert(id.to_string(), policies.len());
            }
            if let Some(name) = found.object.get("name").and_then(Value::as_str) {
                by_name.entry(name.to_string()).or_default().push(policies.len());
            }
            policies.push(p);
        }
    }
    let mut attachments_yaml = String::new();
    let mut attached: HashMap<String, Vec<Map<String, Value>>> = HashMap::new();
    let mut attachment_count = 0;
    for found in &found_attachments {
        let mut report = Report { file: found.file, pointer: &found.pointer, warnings: &mut warnings, errors: &mut errors };
        let Some(reference) = found.object.get("policy").and_then(Value::as_str) else {
            report.warn("policy", "an attachment whose `policy` is not a string: not imported".into());
            continue;
        };
        let targets: Vec<usize> = match (by_id.get(reference), by_name.get(reference)) {
            (Some(&i), _) => vec![i],
            (None, Some(named)) if named.len() == 1 => named.clone(),
            (None, Some(named)) => {
                // Several policies share this name: attach it to every deny among them, never to an allow.
                let denies: Vec<usize> = named.iter().copied().filter(|&i| policies[i].effect == "deny").collect();
                report.warn(
                    "policy",
                    format!("`{reference}` names {} policies: attached to the {} denies among them, to no allow", named.len(), denies.len()),
                );
                denies
            }
            (None, None) => {
                report.warn("policy", format!("attachment names policy `{reference}`, which is not among the imported policies (by id or name): not imported"));
                continue;
            }
        };
        for i in targets {
            let policy = &policies[i];
            let Some(selector) = attachment(found, policy, &mut report) else {
                continue;
            };
            let name = found
                .object
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("{}-attachment", policy.id));
            let id = ids.make(&name, "attachment");
            let _ = write!(
                attachments_yaml,
                "---\n# From {} at {}\nkind: PolicyAttachment\nid: {}\npolicy: {}\nprincipal_selector: {}\n",
                found.file.display(),
                if found.pointer.is_empty() { "/" } else { &found.pointer },
                json!(id),
                json!(policy.id),
                Value::Object(selector.clone())
            );
            attached.entry(policy.id.clone()).or_default().push(selector);
            attachment_count += 1;
        }
    }

    let mut policies_yaml = String::from(
        "# Imported from CipherTrust Manager by `arbiter import cm`. Review the warnings it printed.\n",
    );
    for p in &policies {
        let _ = write!(policies_yaml, "---\nkind: Policy\nid: {}\n", json!(p.id));
        let _ = writeln!(policies_yaml, "description: {}", json!(p.description));
        let _ = writeln!(policies_yaml, "effect: {}", p.effect);
        let _ = writeln!(policies_yaml, "actions: {}", json!(p.actions));
        let _ = writeln!(policies_yaml, "resources: {}", json!(p.resources));
        if !p.conditions.is_empty() {
            policies_yaml.push_str("conditions:\n");
            for (path, op, values, negate) in &p.conditions {
                let _ = write!(policies_yaml, "  - {{path: {}, op: {}", json!(path), op.as_str());
                if !values.is_empty() {
                    let _ = write!(policies_yaml, ", values: {}", Value::Array(values.clone()));
                }
                if *negate {
                    policies_yaml.push_str(", negate: true");
                }
                policies_yaml.push_str("}\n");
            }
        }
    }
    policies_yaml.push_str(&attachments_yaml);
    let suite_yaml = suite(&policies, &attached);
    Imported {
        policies_yaml,
        suite_yaml,
        policies: policies.len(),
        attachments: attachment_count,
        warnings,
        errors,
    }
}

/// One CM policy; `None` when it is left out. An allow that cannot be imported exactly is left out with a
/// warning (it grants nothing); a deny, or a policy that may be one, that cannot be imported is an error.
fn policy(found: &Found, ids: &mut Ids, report: &mut Report) -> Option<Policy> {
    let o = found.object;
    let name = o
        .get("name")
        .and_then(Value::as_str)
        .or_else(|| o.get("id").and_then(Value::as_str))
        .unwrap_or("")
        .to_string();
    // Whether CM could deny with it: `deny`, an obligation on deny, or anything but a clear allow.
    let may_deny = match o.get("effect") {
        Some(Value::String(e)) => e != "allow" && e != "obligate_on_allow",
        Some(v) if !v.is_null() => true,
        _ => o.get("allow") != Some(&Value::Bool(true)),
    };
    let give_up = |report: &mut Report, field: &str, why: String| {
        if may_deny {
            report.fail(field, format!("policy `{name}` may deny, and cannot be imported: {why}; leaving it out would allow what CM denies"));
        } else {
            report.warn(field, format!("allow `{name}` not imported: {why}; it is left out (it grants nothing)"));
        }
        None
    };
    if name.is_empty() {
        return give_up(report, "", "it has no `name` (or `id`)".into());
    }
    let effect = match o.get("effect").and_then(Value::as_str) {
        Some("allow") => "allow",
        Some("deny") => "deny",
        Some("obligate_on_deny") => {
            report.warn("effect", "effect `obligate_on_deny` imported as `deny`: Arbiter has no obligations, so the obligation is dropped (the denial is kept)".into());
            "deny"
        }
        Some("obligate_on_allow") => {
            return give_up(report, "effect", "effect `obligate_on_allow` grants only with an obligation Arbiter cannot enforce".into());
        }
        Some(other) => return give_up(report, "effect", format!("unknown effect `{other}`")),
        None if o.get("effect").is_some_and(|e| !e.is_null()) => {
            return give_up(report, "effect", "`effect` is not a string".into());
        }
        // No effect: `allow: true` allows; anything else denies.
        None => {
            if o.get("allow") == Some(&Value::Bool(true)) {
                "allow"
            } else {
                "deny"
            }
        }
    };
    let deny = effect == "deny";
    let actions: Vec<String> = match o.get("actions") {
        Some(Value::Array(items)) if !items.is_empty() && items.iter().all(Value::is_string) => {
            items.iter().filter_map(|a| a.as_str().map(str::to_string)).collect()
        }
        _ => return give_up(report, "actions", "`actions` must be a non-empty list of strings".into()),
    };
    let resources: Vec<String> = match o.get("resources") {
        None | Some(Value::Null) => vec!["*".into()],
        Some(Value::Array(items)) if items.is_empty() => {
            report.warn("resources", "an empty `resources` list read as every resource, as an absent one is".into());
            vec!["*".into()]
        }
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            items.iter().filter_map(|r| r.as_str().map(str::to_string)).collect()
        }
        _ => return give_up(report, "resources", "`resources` must be a list of strings".into()),
    };
    for (i, r) in resources.iter().enumerate() {
        if r.chars().any(|c| c.is_ascii_uppercase()) {
            report.warn(&format!("resources/{i}"), format!("resource pattern `{r}` has upper-case letters; CipherTrust Manager lower-cases key names in URIs, so it may never match"));
        }
    }
    let mut conditions = Vec::new();
    if let Some(list) = o.get("conditions").filter(|c| !c.is_null()) {
        let Value::Array(items) = list else {
            return give_up(report, "conditions", "`conditions` must be a list".into());
        };
        for (i, c) in items.iter().enumerate() {
            match condition(c) {
                Ok(converted) => conditions.push(converted),
                Err(why) if deny => report.warn(
                    &format!("conditions/{i}"),
                    format!("condition left out of deny `{name}` ({why}): the deny now applies more widely than in CM (fails closed)"),
                ),
                Err(why) => return give_up(report, &format!("conditions/{i}"), why),
            }
        }
    }
    let descendants = o.get("include_descendant_accounts") == Some(&Value::Bool(true));
    if descendants && deny {
        report.warn("include_descendant_accounts", "`include_descendant_accounts` on a deny: its attachments drop their `acct` claim, so that the deny still reaches principals of sub-accounts (and those of other accounts)".into());
    } else if descendants {
        report.warn("include_descendant_accounts", "`include_descendant_accounts` is not carried over: the allow applies to the accounts its attachments select, not to their sub-accounts".into());
    }
    for key in o.keys() {
        let known = matches!(
            key.as_str(),
            "name" | "description" | "effect" | "allow" | "actions" | "resources" | "conditions" | "include_descendant_accounts"
        ) || POLICY_METADATA.contains(&key.as_str());
        if known {
            continue;
        }
        if deny {
            report.warn(&token(key), format!("field `{key}` is not carried over"));
        } else {
            return give_up(report, &token(key), format!("field `{key}` is not known, so the allow cannot be imported exactly"));
        }
    }
    let cm_id = o.get("id").and_then(Value::as_str).map(|id| format!(", id {id}")).unwrap_or_default();
    let description = match o.get("description").and_then(Value::as_str) {
        Some(d) if !d.is_empty() => format!("{d} (CM policy `{name}`{cm_id})"),
        _ => format!("CM policy `{name}`{cm_id}"),
    };
    Some(Policy {
        id: ids.make(&name, "policy"),
        effect,
        descendants: descendants && deny,
        description,
        actions,
        resources,
        conditions,
    })
}

/// One CM condition `{path, op, values, negate}`, or why it cannot be converted exactly.
fn condition(c: &Value) -> Result<(String, OpName, Vec<Value>, bool), String> {
    let path = c.get("path").and_then(Value::as_str).ok_or("a condition without a string `path`")?;
    let path = path.strip_prefix("context.").ok_or_else(|| format!("path `{path}` is not rooted at `context.`"))?;
    let op_text = c.get("op").and_then(Value::as_str).ok_or("a condition without a string `op`")?;
    let op = OpName::parse(op_text).ok_or_else(|| format!("operator `{op_text}` has no exact translation"))?;
    let negate = match c.get("negate") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("`negate` is not a boolean".into()),
    };
    let strings: Vec<&str> = match c.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().map(|v| v.as_str().ok_or("a value is not a string")).collect::<Result<_, _>>()?,
        Some(_) => return Err("`values` is not a list".into()),
    };
    // CM sends every value as a string; the numeric operators read numbers.
    let values = match op {
        OpName::Lt | OpName::Le | OpName::Gt | OpName::Ge => strings
            .iter()
            .map(|s| {
                s.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite())
                    .map(whole_or_float)
                    .ok_or_else(|| format!("`{op_text}` value `{s}` is not a number"))
            })
            .collect::<Result<_, _>>()?,
        OpName::Exists | OpName::IsTrue => {
            if !strings.is_empty() {
                return Err(format!("`{op_text}` takes no values"));
            }
            Vec::new()
        }
        _ => strings.iter().map(|s| json!(s)).collect(),
    };
    Ok((path.to_string(), op, values, negate))
}

/// `256`, not `256.0`, for whole numbers JSON holds exactly.
fn whole_or_float(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() <= 9_007_199_254_740_992.0 {
        json!(n as i64)
    } else {
        json!(n)
    }
}

/// The selector of one CM attachment of `policy`, or `None` (with a warning) when it is left out. What cannot be
/// matched exactly leaves an allow's attachment out (it would select more principals) and is dropped from a
/// deny's (the deny then selects more).
fn attachment(found: &Found, policy: &Policy, report: &mut Report) -> Option<Map<String, Value>> {
    let o = found.object;
    let deny = policy.effect == "deny";
    let (field, raw) = match (o.get("principalSelector"), o.get("principal_selector")) {
        (Some(s), _) => ("principalSelector", s),
        (None, Some(s)) => ("principal_selector", s),
        (None, None) => unreachable!("is_attachment checked for a selector"),
    };
    // Terraform keeps the selector as JSON text.
    let parsed;
    let raw = match raw {
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(v) => {
                parsed = v;
                &parsed
            }
            Err(e) if deny => {
                report.warn(field, format!("selector is not JSON ({e}): the deny is attached to every principal"));
                return Some(Map::new());
            }
            Err(e) => {
                report.warn(field, format!("selector is not JSON ({e}): attachment not imported"));
                return None;
            }
        },
        other => other,
    };
    let Value::Object(claims) = raw else {
        if deny {
            report.warn(field, "selector is not a map: the deny is attached to every principal".into());
            return Some(Map::new());
        }
        report.warn(field, "selector is not a map: attachment not imported".into());
        return None;
    };
    if let Some(j) = o.get("jurisdiction").and_then(Value::as_str).filter(|j| !j.is_empty()) {
        if !deny {
            report.warn("jurisdiction", format!("jurisdiction `{j}` cannot be carried over: the allow's attachment is left out (without it, it would grant in every jurisdiction)"));
            return None;
        }
        report.warn("jurisdiction", format!("jurisdiction `{j}` is not carried over: the deny applies in every jurisdiction"));
    }
    // Nested claims (`{"cust": {"groups": [...]}}`) become dotted selector keys (`cust.groups`).
    let mut flat = Vec::new();
    flatten_claims("", claims, &mut flat);
    let mut selector = Map::new();
    let both_ids = flat.iter().any(|(c, _)| c == "user") && flat.iter().any(|(c, _)| c == "id");
    for (claim, value) in flat {
        // CM's `user` claim is the principal's id; a selector naming both cannot be read as one id.
        let key = if claim == "user" { "id".to_string() } else { claim.clone() };
        let at = format!("{field}/{}", claim.split('.').map(token).collect::<Vec<_>>().join("/"));
        let dropped = if both_ids && key == "id" {
            Some("both `user` and `id` name the principal")
        } else if deny && policy.descendants && key == "acct" {
            continue;
        } else {
            None
        };
        let values: Option<Vec<Value>> = match value {
            _ if dropped.is_some() => None,
            Value::String(_) | Value::Number(_) | Value::Bool(_) => Some(vec![value.clone()]),
            Value::Array(items)
                if !items.is_empty() && items.iter().all(|i| i.is_string() || i.is_number() || i.is_boolean()) =>
            {
                Some(items.clone())
            }
            _ => None,
        };
        match values {
            Some(values) => {
                selector.insert(key, Value::Array(values));
            }
            None if deny => report.warn(&at, format!("selector claim `{claim}` cannot be matched exactly ({}): left out of the deny's selector, which selects more principals", dropped.unwrap_or("a value Arbiter cannot match"))),
            None => {
                report.warn(&at, format!("selector claim `{claim}` cannot be matched exactly ({}): attachment not imported (it would select more principals)", dropped.unwrap_or("a value Arbiter cannot match")));
                return None;
            }
        }
    }
    for key in o.keys() {
        let known = matches!(key.as_str(), "policy" | "principalSelector" | "principal_selector" | "jurisdiction")
            || ATTACHMENT_METADATA.contains(&key.as_str());
        if !known {
            report.warn(&token(key), format!("field `{key}` is not carried over"));
        }
    }
    Some(selector)
}

fn flatten_claims<'v>(prefix: &str, claims: &'v Map<String, Value>, out: &mut Vec<(String, &'v Value)>) {
    for (key, value) in claims {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match value {
            Value::Object(inner) if !inner.is_empty() => flatten_claims(&path, inner, out),
            other => out.push((path, other)),
        }
    }
}

/// The TestSuite skeleton: per policy, a request its first attachment selects with attributes that satisfy
/// its simple conditions (expecting the policy's effect), and the same request from an outsider (expecting a
/// denial). Conditions a skeleton cannot satisfy are for the author to fill in.
fn suite(policies: &[Policy], attached: &HashMap<String, Vec<Map<String, Value>>>) -> String {
    let mut out = String::from(
        "# Probes written by `arbiter import cm`: one request each policy should decide, and one from an outsider.\n\
         # Run with `arbiter test --policies DIR DIR/tests`; edit the ones whose conditions need other values.\n\
         kind: TestSuite\nname: cm import\nnow: \"2026-01-05T12:00:00Z\"\ntests:\n",
    );
    let mut any = false;
    for p in policies {
        let Some(selector) = attached.get(&p.id).and_then(|s| s.first()) else {
            continue;
        };
        any = true;
        let action = p.actions.iter().find(|a| !a.contains('*')).cloned().unwrap_or_else(|| {
            crate::validate::VOCABULARY
                .iter()
                .find(|v| crate::ir::glob::Glob::new(&p.actions[0]).is_ok_and(|g| g.matches(v)))
                .map_or_else(|| p.actions[0].replace('*', "Probe"), |v| v.to_string())
        });
        let uri = p.resources[0].replace('*', "probe");
        let mut principal = Map::new();
        let mut principal_attributes = Map::new();
        let mut groups = Vec::new();
        principal.insert("id".into(), json!("probe-user"));
        for (key, values) in selector {
            let first = values.as_array().and_then(|v| v.first()).cloned().unwrap_or(Value::Null);
            match key.as_str() {
                "id" => {
                    principal.insert("id".into(), first);
                }
                "groups" => groups.push(first),
                claim => set_path(&mut principal_attributes, claim, first),
            }
        }
        let mut resource_attributes = Map::new();
        let mut environment_attributes = Map::new();
        let mut owner = None;
        for (path, op, values, negate) in &p.conditions {
            let Some(value) = satisfying(*op, values, *negate) else {
                continue;
            };
            let Some((part, rest)) = path.split_once('.') else {
                continue;
            };
            if rest.contains("${") {
                continue;
            }
            // The request's own fields are set as such; attributes go in the attribute maps.
            let target = match (part, rest) {
                ("principal", "id") => {
                    principal.insert("id".into(), value);
                    continue;
                }
                ("principal", "groups") => {
                    groups.push(value);
                    continue;
                }
                ("resource", "owner") => {
                    owner = Some(value);
                    continue;
                }
                ("resource", "uri") | ("environment", "time" | "source_ip" | "port") => continue,
                ("principal", _) => &mut principal_attributes,
                ("resource", _) => &mut resource_attributes,
                ("environment", _) => &mut environment_attributes,
                _ => continue,
            };
            set_path(target, rest, value);
        }
        if !groups.is_empty() {
            principal.insert("groups".into(), Value::Array(groups));
        }
        if !principal_attributes.is_empty() {
            principal.insert("attributes".into(), Value::Object(principal_attributes));
        }
        let mut resource = Map::new();
        resource.insert("uri".into(), json!(uri));
        if let Some(owner) = owner {
            resource.insert("owner".into(), owner);
        }
        if !resource_attributes.is_empty() {
            resource.insert("attributes".into(), Value::Object(resource_attributes));
        }
        let environment = json!({"attributes": environment_attributes});
        let _ = write!(
            out,
            "  - name: {}\n    principal: {}\n    action: {}\n    resource: {}\n    environment: {environment}\n    expect: {}\n    expect_policies: [{}]\n",
            json!(format!("{} decides for its principals", p.id)),
            Value::Object(principal.clone()),
            json!(action),
            Value::Object(resource.clone()),
            p.effect,
            json!(p.id)
        );
        // A selector of every principal has no outsider.
        if selector.is_empty() {
            continue;
        }
        let _ = write!(
            out,
            "  - name: {}\n    principal: {{\"id\": \"probe-outsider\"}}\n    action: {}\n    resource: {}\n    expect: deny\n",
            json!(format!("{} does not reach outsiders", p.id)),
            json!(action),
            Value::Object(resource),
        );
    }
    if !any {
        out.push_str("  []\n");
    }
    out
}

/// A value that makes `op` hold (or, negated, fail) where a simple one exists.
fn satisfying(op: OpName, values: &[Value], negate: bool) -> Option<Value> {
    let first = values.first();
    match (op, negate) {
        (OpName::Equals, false) | (OpName::StartsWith, false) | (OpName::EndsWith, false) => first.cloned(),
        (OpName::ContainsAll, false) => Some(Value::Array(values.to_vec())),
        (OpName::IsTrue, false) => Some(json!(true)),
        (OpName::IsTrue, true) => Some(json!(false)),
        (OpName::Exists, false) => Some(json!("probe")),
        (OpName::Gt, false) | (OpName::Ge, false) => first.and_then(Value::as_f64).map(|n| whole_or_float(n + 1.0)),
        (OpName::Lt, false) | (OpName::Le, false) => first.and_then(Value::as_f64).map(|n| whole_or_float(n - 1.0)),
        _ => None,
    }
}

/// Sets `value` at a dotted path in nested maps.
fn set_path(map: &mut Map<String, Value>, path: &str, value: Value) {
    let mut parts = path.split('.').peekable();
    let mut current = map;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            current.insert(part.to_string(), value);
            return;
        }
        let entry = current.entry(part.to_string()).or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(next) = entry else { return };
        current = next;
    }
}
