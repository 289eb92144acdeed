//! Benchmark workload generator: CipherTrust-style policy sets (the default pack plus generated per-team
//! policies, attachments and groups) and a deterministic request mix, rendered as Arbiter YAML and, with the
//! `peers` feature, translated to Cedar (`cedar`) and Rego (`rego`).
//!
//! The generated subset is chosen so the three engines mean the same thing on every benchmark request:
//! every attribute a condition reads (`owner`, `global`, `classification`, `time`, `source_ip`) is present in
//! every request, so Arbiter's "undetermined" outcome never arises for a deny. The one attribute that may be
//! missing, `resource.permissions.<action>`, is read only by an `allow` (the default pack's group grant), where
//! "undetermined" and "false" both mean "does not grant"; the peers guard it with `has` / Rego's undefined.
#![allow(dead_code)]

#[cfg(feature = "peers")]
pub mod cedar;
#[cfg(feature = "peers")]
pub mod rego;

use std::path::PathBuf;

use arbiter::request::{RawEnvironment, RawPrincipal, RawRequest, RawResource};
use serde_json::{json, Map, Value};

/// The policy-set sizes the suite measures (total `kind: Policy` documents, default pack included).
pub const SIZES: [usize; 3] = [10, 1_000, 10_000];

/// Requests per benchmark (cycled through, one per iteration) and per agreement check.
pub const BENCH_REQUESTS: usize = 256;

/// The key actions: the first 13 entries of the action vocabulary; generated requests use these.
pub const KEY_ACTIONS: &[&str] = arbiter::validate::VOCABULARY.split_at(13).0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone)]
pub enum Cond {
    /// `resource.owner equals ${principal.id}`
    OwnerIsPrincipal,
    /// `resource.permissions.${action} equals ${principal.groups}` (allow only).
    PermissionsHaveGroup,
    /// `resource.global is_true`
    GlobalTrue,
    /// `environment.time time_of_day "HH:MM-HH:MM"` in UTC, start < end (minutes since midnight).
    TimeOfDay { start: u32, end: u32 },
    /// `environment.time after <instant>`
    After(String),
    /// `environment.source_ip cidr [..]`, optionally negated.
    Cidr { cidr: String, negate: bool },
    /// `resource.classification equals [value]`, optionally negated.
    Classification { value: String, negate: bool },
}

#[derive(Debug, Clone)]
pub struct PolicyM {
    pub id: String,
    pub effect: Effect,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    pub conds: Vec<Cond>,
}

#[derive(Debug, Clone)]
pub enum Selector {
    Everyone,
    Group(String),
    Id(String),
}

#[derive(Debug, Clone)]
pub struct AttachM {
    pub id: String,
    pub policy: usize,
    pub selector: Selector,
}

#[derive(Debug, Clone)]
pub struct GroupM {
    pub name: String,
    pub system: bool,
    pub members: Vec<String>,
}

/// One policy set in engine-neutral form.
#[derive(Debug, Clone)]
pub struct Workload {
    pub policies: Vec<PolicyM>,
    pub attachments: Vec<AttachM>,
    pub groups: Vec<GroupM>,
    pub teams: usize,
}

/// One request in engine-neutral form; each engine builds its own request from it (and that is timed).
#[derive(Debug, Clone)]
pub struct RequestM {
    pub principal: String,
    pub groups: Vec<String>,
    pub action: String,
    pub uri: String,
    pub owner: String,
    /// action → groups
    pub permissions: Vec<(String, Vec<String>)>,
    pub global: bool,
    pub classification: String,
    pub time: String,
    pub source_ip: String,
}

const KEYS: &str = "kylo:kylo:vault:keys:";

fn hhmm(m: u32) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// The default pack, as in `policies/` (groups admin/global, the four key policies, admin full access).
fn default_pack(w: &mut Workload) {
    let all =
        |w: &mut Workload, id: &str, effect, actions: &[&str], resources: &[&str], conds, sel| {
            w.policies.push(PolicyM {
                id: id.into(),
                effect,
                actions: actions.iter().map(|s| s.to_string()).collect(),
                resources: resources.iter().map(|s| s.to_string()).collect(),
                conds,
            });
            w.attachments.push(AttachM {
                id: format!("{id}-attachment"),
                policy: w.policies.len() - 1,
                selector: sel,
            });
        };
    all(
        w,
        "admin-full-access",
        Effect::Allow,
        &["*"],
        &["*"],
        vec![],
        Selector::Group("admin".into()),
    );
    all(
        w,
        "create-key-all-users",
        Effect::Allow,
        &["CreateKey"],
        &["kylo:kylo:vault:keys:*"],
        vec![],
        Selector::Everyone,
    );
    all(
        w,
        "key-owner-full-access",
        Effect::Allow,
        &["*"],
        &["kylo:kylo:vault:keys:*"],
        vec![Cond::OwnerIsPrincipal],
        Selector::Everyone,
    );
    all(
        w,
        "key-group-usage-grant",
        Effect::Allow,
        &["*WithKey", "UseKey", "ReadKey"],
        &["kylo:kylo:vault:keys:*"],
        vec![Cond::PermissionsHaveGroup],
        Selector::Everyone,
    );
    all(
        w,
        "global-group-key-access",
        Effect::Allow,
        &[
            "CreateKey",
            "ReadKey",
            "UpdateKey",
            "UseKey",
            "EncryptWithKey",
            "DecryptWithKey",
            "SignWithKey",
            "VerifyWithKey",
            "WrapWithKey",
            "UnwrapWithKey",
        ],
        &["kylo:kylo:vault:keys:*"],
        vec![Cond::GlobalTrue],
        Selector::Group("global".into()),
    );
    for name in ["admin", "global"] {
        w.groups.push(GroupM {
            name: name.into(),
            system: true,
            members: vec![],
        });
    }
}

/// Builds a set with exactly `size` policies: the default pack (5) plus per-team policies, four per team.
pub fn workload(size: usize) -> Workload {
    let mut w = Workload {
        policies: vec![],
        attachments: vec![],
        groups: vec![],
        teams: 0,
    };
    default_pack(&mut w);
    let mut t = 0;
    while w.policies.len() < size {
        let team = format!("team{t}");
        w.groups.push(GroupM {
            name: team.clone(),
            system: false,
            members: (0..3).map(|i| format!("u{t}-{i}")).collect(),
        });
        for kind in 0..4 {
            if w.policies.len() >= size {
                break;
            }
            let (policy, selector) = match kind {
                // Team members use their team's keys, some only in office hours, some only from the corp net.
                0 => {
                    let mut conds = vec![];
                    if t % 3 == 0 {
                        conds.push(Cond::TimeOfDay {
                            start: 6 * 60,
                            end: 20 * 60,
                        });
                    }
                    if t % 4 == 1 {
                        conds.push(Cond::Cidr {
                            cidr: "10.0.0.0/8".into(),
                            negate: false,
                        });
                    }
                    (
                        PolicyM {
                            id: format!("{team}-use"),
                            effect: Effect::Allow,
                            actions: vec![
                                "EncryptWithKey".into(),
                                "DecryptWithKey".into(),
                                "ReadKey".into(),
                                "UseKey".into(),
                            ],
                            resources: vec![format!("{KEYS}{team}-*")],
                            conds,
                        },
                        Selector::Group(team.clone()),
                    )
                }
                // The team lead manages dev keys that are not secret.
                1 => (
                    PolicyM {
                        id: format!("{team}-lead-dev"),
                        effect: Effect::Allow,
                        actions: vec!["*Key".into()],
                        resources: vec![format!("{KEYS}{team}-dev-*")],
                        conds: vec![Cond::Classification {
                            value: "secret".into(),
                            negate: true,
                        }],
                    },
                    Selector::Id(format!("u{t}-0")),
                ),
                // Nobody in the team deletes or exports prod keys (from outside the corp net, for even teams).
                2 => (
                    PolicyM {
                        id: format!("{team}-prod-guard"),
                        effect: Effect::Deny,
                        actions: vec!["DeleteKey".into(), "ExportKey".into()],
                        resources: vec![format!("{KEYS}{team}-prod-*")],
                        conds: if t % 2 == 0 {
                            vec![Cond::Cidr {
                                cidr: "10.0.0.0/8".into(),
                                negate: true,
                            }]
                        } else {
                            vec![]
                        },
                    },
                    Selector::Group(team.clone()),
                ),
                // Frozen keys: nobody may touch them after the freeze date.
                _ => (
                    PolicyM {
                        id: format!("{team}-freeze"),
                        effect: Effect::Deny,
                        actions: vec!["*".into()],
                        resources: vec![format!("{KEYS}{team}-frozen-*")],
                        conds: vec![Cond::After("2026-12-01T00:00:00Z".into())],
                    },
                    Selector::Everyone,
                ),
            };
            w.policies.push(policy);
            w.attachments.push(AttachM {
                id: format!("{}-attachment", w.policies.last().unwrap().id),
                policy: w.policies.len() - 1,
                selector,
            });
        }
        t += 1;
    }
    w.teams = t.max(1);
    w
}

fn yaml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

impl Workload {
    /// The set as Arbiter YAML, split into files of at most 500 policies (like a real policy repository).
    pub fn yaml_files(&self) -> Vec<(PathBuf, String)> {
        let mut files = vec![];
        let mut groups = String::new();
        for g in &self.groups {
            groups.push_str(&format!(
                "---\nkind: Group\nname: {}\nsystem: {}\nmembers: {}\n",
                g.name,
                g.system,
                yaml_list(&g.members)
            ));
        }
        files.push((PathBuf::from("groups.yaml"), groups));
        files.push((
            PathBuf::from("guards.yaml"),
            include_str!("../../policies/guards.yaml").to_string(),
        ));
        for (chunk_no, chunk) in self.attachments.chunks(500).enumerate() {
            let mut text = String::new();
            for a in chunk {
                let p = &self.policies[a.policy];
                text.push_str(&format!(
                    "---\nkind: Policy\nid: {}\neffect: {}\nactions: {}\nresources: {}\n",
                    p.id,
                    if p.effect == Effect::Allow {
                        "allow"
                    } else {
                        "deny"
                    },
                    yaml_list(&p.actions),
                    yaml_list(&p.resources)
                ));
                if !p.conds.is_empty() {
                    text.push_str("conditions:\n");
                    for c in &p.conds {
                        text.push_str(&cond_yaml(c));
                    }
                }
                let selector = match &a.selector {
                    Selector::Everyone => "{}".to_string(),
                    Selector::Group(g) => format!("{{groups: [{g}]}}"),
                    Selector::Id(id) => format!("{{id: {id}}}"),
                };
                text.push_str(&format!(
                    "---\nkind: PolicyAttachment\nid: {}\npolicy: {}\nprincipal_selector: {selector}\n",
                    a.id, p.id
                ));
            }
            files.push((PathBuf::from(format!("policies-{chunk_no:03}.yaml")), text));
        }
        files
    }

    /// The edit the lockout-analysis benchmarks check: every seventh generated policy's effect flipped.
    pub fn lockout_benchmark_edit(&self) -> Workload {
        let mut changed = self.clone();
        for p in changed.policies.iter_mut().skip(5).step_by(7) {
            p.effect = if p.effect == Effect::Allow {
                Effect::Deny
            } else {
                Effect::Allow
            };
        }
        changed
    }

    pub fn snapshot(&self) -> arbiter::Snapshot {
        let sources = arbiter::load::SourceSet::from_files(self.yaml_files());
        arbiter::build(&sources).unwrap_or_else(|d| panic!("generated set must compile: {d:?}"))
    }
}

fn cond_yaml(c: &Cond) -> String {
    match c {
        Cond::OwnerIsPrincipal => "  - {path: resource.owner, op: equals, values: [\"${principal.id}\"]}\n".into(),
        Cond::PermissionsHaveGroup => {
            "  - {path: \"resource.permissions.${action}\", op: equals, values: [\"${principal.groups}\"]}\n".into()
        }
        Cond::GlobalTrue => "  - {path: resource.global, op: is_true}\n".into(),
        Cond::TimeOfDay { start, end } => format!(
            "  - {{path: environment.time, op: time_of_day, values: [\"{}-{}\"]}}\n",
            hhmm(*start),
            hhmm(*end)
        ),
        Cond::After(t) => format!("  - {{path: environment.time, op: after, values: [\"{t}\"]}}\n"),
        Cond::Cidr { cidr, negate } => {
            format!("  - {{path: environment.source_ip, op: cidr, values: [\"{cidr}\"], negate: {negate}}}\n")
        }
        Cond::Classification { value, negate } => {
            format!("  - {{path: resource.classification, op: equals, values: [\"{value}\"], negate: {negate}}}\n")
        }
    }
}

/// A small deterministic generator (64-bit LCG), so every run sees the same requests.
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Lcg(seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407))
    }
    pub fn step(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.step() % n as u64) as usize
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.step() % 100 < percent
    }
}

/// A realistic mix over `w`'s teams: own-team and cross-team principals, owners and non-owners, group
/// grants, prod/dev/frozen/other keys, in and out of office hours, inside and outside the corp net.
pub fn requests(w: &Workload, count: usize, seed: u64) -> Vec<RequestM> {
    let mut r = Lcg::new(seed);
    let times = [
        "2026-11-23T12:00:00Z",
        "2026-11-23T23:30:00Z",
        "2026-12-05T08:15:00Z",
    ];
    let ips = ["10.1.2.3", "192.168.1.9"];
    (0..count)
        .map(|_| {
            let t = r.below(w.teams);
            let home = if r.chance(15) { r.below(w.teams) } else { t };
            let i = r.below(5);
            let principal = format!("u{home}-{i}");
            let mut groups = vec![];
            if i >= 3 {
                groups.push(format!("team{home}"));
            }
            if r.chance(15) {
                groups.push("global".into());
            }
            if r.chance(2) {
                groups.push("admin".into());
            }
            let kind = ["prod", "dev", "frozen", "misc"][r.below(4)];
            let uri = format!("{KEYS}team{t}-{kind}-k{}", r.below(50));
            let owner = if r.chance(25) {
                principal.clone()
            } else {
                format!("u{t}-9")
            };
            let action = KEY_ACTIONS[r.below(KEY_ACTIONS.len())].to_string();
            let mut permissions = vec![];
            if r.chance(50) {
                permissions.push(("EncryptWithKey".to_string(), vec![format!("team{home}")]));
                permissions.push((
                    "SignWithKey".to_string(),
                    vec!["auditors".to_string(), format!("team{t}")],
                ));
            }
            RequestM {
                principal,
                groups,
                action,
                uri,
                owner,
                permissions,
                global: r.chance(20),
                classification: if r.chance(30) { "secret" } else { "internal" }.into(),
                time: times[r.below(times.len())].into(),
                source_ip: ips[r.below(ips.len())].into(),
            }
        })
        .collect()
}

impl RequestM {
    fn permissions_json(&self) -> Map<String, Value> {
        self.permissions
            .iter()
            .map(|(a, gs)| {
                let groups = gs.iter().map(|g| Value::String(g.clone())).collect();
                (a.clone(), Value::Array(groups))
            })
            .collect()
    }

    fn resource_attributes(&self) -> Map<String, Value> {
        let mut attrs = Map::new();
        attrs.insert("permissions".into(), Value::Object(self.permissions_json()));
        attrs.insert("global".into(), Value::Bool(self.global));
        attrs.insert(
            "classification".into(),
            Value::String(self.classification.clone()),
        );
        attrs
    }

    /// Arbiter's embedding input: the request builder fed from the neutral request, the time and address parsed
    /// and every field checked as at the doors (timed on the Arbiter side).
    pub fn to_request(&self) -> arbiter::Request {
        let time: arbiter::Moment = self.time.parse().expect("benchmark time");
        let mut builder = arbiter::Request::builder(self.principal.clone());
        for group in &self.groups {
            builder = builder.group(group.clone());
        }
        builder
            .action(self.action.clone())
            .resource(self.uri.clone())
            .owner(self.owner.clone())
            .resource_attribute("permissions", Value::Object(self.permissions_json()))
            .resource_attribute("global", self.global)
            .resource_attribute("classification", self.classification.clone())
            .moment(time)
            .source_ip(self.source_ip.clone())
            .build()
            .expect("benchmark request")
    }

    /// Arbiter's borrowed input ([`arbiter::RequestRef`]), passed to `f`: the resource's attribute map is built
    /// and the time parsed on every call (timed on the Arbiter side); every string is borrowed.
    pub fn with_request_ref<T>(&self, f: impl FnOnce(&arbiter::RequestRef) -> T) -> T {
        let attributes = self.resource_attributes();
        let time: arbiter::Moment = self.time.parse().expect("benchmark time");
        f(&arbiter::RequestRef {
            principal_id: &self.principal,
            groups: (&self.groups).into(),
            action: &self.action,
            resource_uri: Some(&self.uri),
            resource_owner: Some(&self.owner),
            resource_attributes: Some(&attributes),
            time: Some(time),
            source_ip: Some(&self.source_ip),
            ..arbiter::RequestRef::default()
        })
    }

    /// Arbiter's edge input, built from the neutral request (timed on the Arbiter side).
    pub fn to_raw(&self) -> RawRequest {
        RawRequest {
            principal: Some(RawPrincipal {
                id: Some(self.principal.clone()),
                groups: Some(self.groups.clone()),
                attributes: None,
                token: None,
            }),
            action: Some(self.action.clone()),
            resource: Some(RawResource {
                uri: Some(self.uri.clone()),
                owner: Some(self.owner.clone()),
                attributes: Some(self.resource_attributes()),
            }),
            environment: Some(RawEnvironment {
                time: Some(self.time.clone()),
                source_ip: Some(self.source_ip.clone()),
                port: None,
                attributes: None,
            }),
            explain: None,
        }
    }

    /// The SPEC section 3 JSON shape (also Rego's `input`).
    pub fn to_json(&self) -> Value {
        json!({
            "principal": {"id": self.principal, "groups": self.groups},
            "action": self.action,
            "resource": {"uri": self.uri, "owner": self.owner, "attributes": Value::Object(self.resource_attributes())},
            "environment": {"time": self.time, "source_ip": self.source_ip},
        })
    }
}

impl Cond {
    /// The condition as plain JSON (the model dump that outside benchmark scripts translate for their peers).
    fn to_model(&self) -> Value {
        match self {
            Cond::OwnerIsPrincipal => json!({"kind": "owner_is_principal"}),
            Cond::PermissionsHaveGroup => json!({"kind": "permissions_have_group"}),
            Cond::GlobalTrue => json!({"kind": "global_true"}),
            Cond::TimeOfDay { start, end } => {
                json!({"kind": "time_of_day", "start_minute": start, "end_minute": end})
            }
            Cond::After(t) => json!({"kind": "after", "instant": t}),
            Cond::Cidr { cidr, negate } => json!({"kind": "cidr", "cidr": cidr, "negate": negate}),
            Cond::Classification { value, negate } => {
                json!({"kind": "classification", "value": value, "negate": negate})
            }
        }
    }
}

impl Workload {
    /// The set and `reqs` as one JSON document, for benchmark scripts that translate the workload to a peer
    /// engine outside Rust (`benches/scripts/cerbos_side_by_side.py`). Each request carries Arbiter's own
    /// outcome (in process, from the same YAML the server loads), so the script checks both servers against it.
    pub fn model_json(&self, reqs: &[RequestM]) -> Value {
        let snapshot = self.snapshot();
        let policies: Vec<Value> = self
            .policies
            .iter()
            .map(|p| {
                json!({
                    "id": p.id,
                    "effect": if p.effect == Effect::Allow { "allow" } else { "deny" },
                    "actions": p.actions,
                    "key_actions": expand_actions(&p.actions),
                    "resources": p.resources,
                    "conditions": p.conds.iter().map(Cond::to_model).collect::<Vec<_>>(),
                })
            })
            .collect();
        let attachments: Vec<Value> = self
            .attachments
            .iter()
            .map(|a| {
                let selector = match &a.selector {
                    Selector::Everyone => json!({}),
                    Selector::Group(g) => json!({"group": g}),
                    Selector::Id(id) => json!({"id": id}),
                };
                json!({"id": a.id, "policy": self.policies[a.policy].id, "selector": selector})
            })
            .collect();
        let groups: Vec<Value> = self
            .groups
            .iter()
            .map(|g| json!({"name": g.name, "system": g.system, "members": g.members}))
            .collect();
        let requests: Vec<Value> = reqs
            .iter()
            .map(|r| {
                let outcome = arbiter_outcome(&snapshot, r);
                json!({
                    "request": r.to_json(),
                    "allowed": outcome.allowed,
                    "policies": outcome.policies,
                })
            })
            .collect();
        json!({
            "admin_group": "admin",
            "key_actions": KEY_ACTIONS,
            "policies": policies,
            "attachments": attachments,
            "groups": groups,
            "requests": requests,
        })
    }
}

/// A neutral decision: allowed, and the determining policy ids, sorted and deduplicated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub allowed: bool,
    pub policies: Vec<String>,
}

pub fn arbiter_outcome(snapshot: &arbiter::Snapshot, req: &RequestM) -> Outcome {
    let request = req
        .to_raw()
        .normalize()
        .expect("generated requests are valid");
    const EPOCH: jiff::Timestamp = jiff::Timestamp::UNIX_EPOCH;
    let options = arbiter::EvalOptions::default();
    let d = arbiter::evaluate(snapshot, &request, EPOCH, &options);
    // The builder and a borrowed request decide exactly the same.
    let built = arbiter::evaluate(snapshot, &req.to_request(), EPOCH, &options);
    assert_eq!(
        built, d,
        "the builder's request decides differently: {req:#?}"
    );
    let borrowed = req.with_request_ref(|r| arbiter::evaluate_ref(snapshot, r, EPOCH, &options));
    assert_eq!(
        borrowed.as_ref(),
        Ok(&d),
        "a borrowed request decides differently: {req:#?}"
    );
    let mut policies: Vec<String> = d.policies.iter().map(|p| p.to_string()).collect();
    policies.sort();
    policies.dedup();
    Outcome {
        allowed: d.allowed,
        policies,
    }
}

/// Glob match with `*` only (the SPEC's glob), used to expand action globs over the vocabulary for peers.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(at) => rest = &rest[at + mid.len()..],
            None => return false,
        }
    }
    true
}

/// The key actions a policy's action patterns cover (peers enumerate them; requests only use these).
pub fn expand_actions(patterns: &[String]) -> Option<Vec<&'static str>> {
    if patterns.iter().any(|p| p == "*") {
        return None;
    }
    Some(
        KEY_ACTIONS
            .iter()
            .copied()
            .filter(|a| patterns.iter().any(|p| glob_match(p, a)))
            .collect(),
    )
}
