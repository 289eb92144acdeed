//! Translation of a [`Workload`] to one Rego module for `regorus`, and of a [`RequestM`] to its `input`.
//!
//! Each attachment becomes one `deny_ids` / `allow_ids` partial-set rule per resource pattern (Rego ORs rule
//! definitions), yielding the policy id. `effective_groups` unites the request's groups with the directory's
//! `kind: Group` members. Action globs are expanded over the key vocabulary; resource globs (at most one `*`
//! in the generated subset) become `startswith` / `endswith`. Conditions map one to one
//! (`time.clock` in UTC for `time_of_day`, `net.cidr_contains` for `cidr`).

use regorus::{Engine, Value};

use super::{expand_actions, Cond, Effect, Outcome, RequestM, Selector, Workload};

fn q(s: &str) -> String {
    format!("{s:?}")
}

fn glob_rego(pattern: &str, subject: &str) -> Vec<String> {
    let parts: Vec<&str> = pattern.split('*').collect();
    match parts.as_slice() {
        [exact] => vec![format!("{subject} == {}", q(exact))],
        [prefix, suffix] => {
            let mut out = vec![];
            if !prefix.is_empty() {
                out.push(format!("startswith({subject}, {})", q(prefix)));
            }
            if !suffix.is_empty() {
                out.push(format!("endswith({subject}, {})", q(suffix)));
            }
            if !prefix.is_empty() && !suffix.is_empty() {
                out.push(format!(
                    "count({subject}) >= {}",
                    prefix.len() + suffix.len()
                ));
            }
            out
        }
        _ => panic!("the generated subset uses at most one `*` per resource pattern: {pattern}"),
    }
}

fn cond_rego(c: &Cond) -> Vec<String> {
    match c {
        Cond::OwnerIsPrincipal => vec!["input.resource.owner == input.principal.id".into()],
        Cond::PermissionsHaveGroup => vec![
            "some g in input.resource.attributes.permissions[input.action]".into(),
            "effective_groups[g]".into(),
        ],
        Cond::GlobalTrue => vec!["input.resource.attributes.global == true".into()],
        Cond::TimeOfDay { start, end } => vec![
            "[h, m, _] := time.clock(time.parse_rfc3339_ns(input.environment.time))".into(),
            format!("h * 60 + m >= {start}"),
            format!("h * 60 + m < {end}"),
        ],
        Cond::After(t) => vec![format!(
            "time.parse_rfc3339_ns(input.environment.time) > time.parse_rfc3339_ns({})",
            q(t)
        )],
        Cond::Cidr { cidr, negate } => vec![format!(
            "{}net.cidr_contains({}, input.environment.source_ip)",
            if *negate { "not " } else { "" },
            q(cidr)
        )],
        Cond::Classification { value, negate } => vec![format!(
            "input.resource.attributes.classification {} {}",
            if *negate { "!=" } else { "==" },
            q(value)
        )],
    }
}

pub fn module(w: &Workload) -> String {
    let mut out = String::from("package arbiter\n\nimport rego.v1\n\n");
    out.push_str("directory := {\n");
    for g in &w.groups {
        let members: Vec<String> = g.members.iter().map(|m| q(m)).collect();
        out.push_str(&format!("  {}: [{}],\n", q(&g.name), members.join(", ")));
    }
    out.push_str("}\n\n");
    out.push_str("effective_groups contains g if { some g in input.principal.groups }\n");
    out.push_str(
        "effective_groups contains g if { some g, members in directory; input.principal.id in members }\n\n",
    );
    for a in &w.attachments {
        let p = &w.policies[a.policy];
        let head = if p.effect == Effect::Allow {
            "allow_ids"
        } else {
            "deny_ids"
        };
        let mut common = vec![];
        match &a.selector {
            Selector::Everyone => {}
            Selector::Group(g) => common.push(format!("effective_groups[{}]", q(g))),
            Selector::Id(id) => common.push(format!("input.principal.id == {}", q(id))),
        }
        if let Some(list) = expand_actions(&p.actions) {
            let items: Vec<String> = list.iter().map(|a| q(a)).collect();
            common.push(format!("input.action in {{{}}}", items.join(", ")));
        }
        for c in &p.conds {
            common.extend(cond_rego(c));
        }
        for r in &p.resources {
            let mut body = glob_rego(r, "input.resource.uri");
            if r == "*" {
                body.clear();
            }
            body.extend(common.iter().cloned());
            if body.is_empty() {
                body.push("true".into());
            }
            out.push_str(&format!(
                "{head} contains {} if {{\n  {}\n}}\n",
                q(&p.id),
                body.join("\n  ")
            ));
        }
    }
    out.push_str("\nresult := {\"deny\": deny_ids, \"allow\": allow_ids}\n");
    out
}

pub struct RegoSet {
    pub engine: Engine,
}

impl RegoSet {
    pub fn new(w: &Workload) -> RegoSet {
        let mut engine = Engine::new();
        let text = module(w);
        engine
            .add_policy("arbiter.rego".into(), text)
            .unwrap_or_else(|e| panic!("rego parse: {e}"));
        RegoSet { engine }
    }

    /// Builds `input` (timed on the Rego side) and evaluates `data.arbiter.result`.
    pub fn decide(&mut self, r: &RequestM) -> Value {
        self.engine.set_input(Value::from(r.to_json()));
        self.engine
            .eval_rule("data.arbiter.result".into())
            .unwrap_or_else(|e| panic!("rego eval: {e}"))
    }

    pub fn outcome(&mut self, r: &RequestM) -> Outcome {
        let v = self.decide(r);
        let ids = |key: &str| -> Vec<String> {
            let set = &v[key];
            match set {
                Value::Set(s) => s
                    .iter()
                    .map(|x| x.as_string().expect("id").to_string())
                    .collect(),
                Value::Array(a) => a
                    .iter()
                    .map(|x| x.as_string().expect("id").to_string())
                    .collect(),
                other => panic!("unexpected rego value {other:?}"),
            }
        };
        let denies = ids("deny");
        let allows = ids("allow");
        let (allowed, mut policies) = if !denies.is_empty() {
            (false, denies)
        } else if !allows.is_empty() {
            (true, allows)
        } else {
            (false, vec![])
        };
        policies.sort();
        policies.dedup();
        Outcome { allowed, policies }
    }
}
