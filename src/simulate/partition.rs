//! The finite partition the lockout search explores, complete by construction.
//!
//! A request variable is anything a reachable condition, selector or assumption reads that the guard does not
//! pin (`resource.owner`, `environment.time`, `principal.<claim>`, `resource.<attr>`, ...). Variables compared
//! with each other through `${...}`, or nested in one another (`resource.a` and `resource.a.b`), form one
//! [`Group`] and are chosen together. For every group this module builds a list of rows (one value per
//! variable) that holds a witness for every combination of three-valued outcomes the group's predicates can
//! produce, then keeps one row per distinct outcome vector, computed by the real evaluator.
//!
//! Candidates per variable, from the literals of every predicate on the group (pooled):
//! - absent, a map (the wrong type for every operator but `exists`), `true` and `false`;
//! - numbers: every literal, and points strictly inside every interval between sorted literals and beyond
//!   both ends (whole numbers where the interval holds them; `environment.port` only whole numbers 1 to 65535);
//! - strings: one witness per cell of the Boolean algebra of the equality, prefix, suffix and glob languages
//!   (a product automaton, the empty string included), and the renderings of instants and IPs below when a
//!   time or network operator reads the variable;
//! - instants: the timeline cut at every instant literal, then, when `time_of_day` or `weekday` reads it, every
//!   piece between consecutive window boundaries, local midnights and UTC-offset changes of every zone
//!   involved, through year 9999 (a segment of constant offsets repeats weekly, so once a full week of one
//!   combination of offsets has been seen, later segments with the same combination are skipped);
//! - IPs: every interval between CIDR bounds and equality literals, in both families (IPv4-mapped addresses
//!   behave as IPv4);
//! - lists: every membership pattern that changes an outcome (the closure under union of the elements'
//!   contributions).
//!
//! Groups of `k` linked variables take `k` distinct candidates per cell, so every equality and order
//! arrangement between them is realisable. What cannot be covered exactly (prefix relations between two
//! attributes, an order relation on instants read by `time_of_day`/`weekday`, a partition over its budget) makes
//! the group incomplete: the analysis then says "inconclusive", never "safe".

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use jiff::tz::TimeZone;
use crate::moment::Moment;
use serde_json::{json, Map, Value};

use super::witness::{witnesses, Pattern};
use crate::eval::{claim_matches, eval_condition, Ctx};
use crate::ir::condition::{Condition, Lit, NumArg, Op, Operand, TimeArg};
use crate::ir::path::{AttrPath, Field, Part, Segment, Target};
use crate::request::{parse_rfc3339, Environment, Principal, Request, Resource, SourceIp};

/// Most product states a string witness search may visit.
const STRING_STATES: usize = 20_000;
/// Most list signatures (membership patterns) per variable.
const LIST_SIGNATURES: usize = 4_096;
/// Most joint rows built for one group before deduplication.
const GROUP_ROWS: usize = 60_000;
/// Most candidate instants for one time variable.
const TIME_POINTS: usize = 200_000;

/// A request variable: something a predicate reads that the guard does not fix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Var {
    Owner,
    SourceIp,
    Port,
    Time,
    Attr(PartKey, Vec<String>),
}

/// `Part` with an order, for sorting variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PartKey {
    Principal,
    Resource,
    Environment,
}

impl std::fmt::Display for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Var::Owner => f.write_str("resource.owner"),
            Var::SourceIp => f.write_str("environment.source_ip"),
            Var::Port => f.write_str("environment.port"),
            Var::Time => f.write_str("environment.time"),
            Var::Attr(part, segs) => {
                let part = match part {
                    PartKey::Principal => "principal",
                    PartKey::Resource => "resource",
                    PartKey::Environment => "environment",
                };
                write!(f, "{part}.{}", segs.join("."))
            }
        }
    }
}

/// A value a variable takes in a candidate request.
#[derive(Debug, Clone, PartialEq)]
pub enum Choice {
    Absent,
    Json(Value),
    Ip(IpAddr),
    Time(Moment),
}

/// A predicate the search decides: a condition, or one selector test on a claim.
#[derive(Debug, Clone, Copy)]
pub enum Pred<'a> {
    Condition(&'a Condition),
    Claim(&'a [Box<str>], &'a [Lit]),
}

impl Pred<'_> {
    /// The variables this predicate reads, its own path first.
    pub fn vars(&self, action: &str) -> Vec<Var> {
        match self {
            Pred::Condition(c) => std::iter::once(&c.path)
                .chain(c.references())
                .filter_map(|p| var_of(p, action))
                .collect(),
            Pred::Claim(path, _) => vec![claim_var(path)],
        }
    }

    /// Evaluates the predicate on a request: a condition's three values, or a selector test's two.
    pub fn outcome(&self, ctx: &Ctx) -> u8 {
        match self {
            Pred::Condition(c) => eval_condition(c, ctx) as u8,
            Pred::Claim(path, values) => 4 + claim_matches(path, values, ctx) as u8,
        }
    }
}

/// The variable of a selector claim path.
pub fn claim_var(path: &[Box<str>]) -> Var {
    Var::Attr(
        PartKey::Principal,
        path.iter().map(|s| s.to_string()).collect(),
    )
}

/// The variable a path names once the action is known; `None` for fields the guard fixes.
pub fn var_of(path: &AttrPath, action: &str) -> Option<Var> {
    match &path.target {
        Target::Field(f) => match f {
            Field::ResourceOwner => Some(Var::Owner),
            Field::EnvironmentSourceIp => Some(Var::SourceIp),
            Field::EnvironmentPort => Some(Var::Port),
            Field::EnvironmentTime => Some(Var::Time),
            Field::PrincipalId | Field::PrincipalGroups | Field::Action | Field::ResourceUri => {
                None
            }
        },
        Target::Attribute { part, segments } => {
            let part = match part {
                Part::Principal => PartKey::Principal,
                Part::Resource => PartKey::Resource,
                Part::Environment => PartKey::Environment,
            };
            let segs = segments
                .iter()
                .map(|s| match s {
                    Segment::Name(n) => n.to_string(),
                    Segment::Action => action.to_string(),
                })
                .collect();
            Some(Var::Attr(part, segs))
        }
    }
}

/// The part of a candidate request that the search pins: principal, action and resource URI.
#[derive(Debug, Clone)]
pub struct Fixed {
    pub principal_id: String,
    /// The groups the request carries (the directory adds its own at decision time).
    pub request_groups: Vec<String>,
    /// The groups conditions read: the request's and the directory's.
    pub groups: Vec<String>,
    pub action: String,
    /// `None`: the request has no resource URI.
    pub uri: Option<String>,
}

impl Fixed {
    /// The values of a pinned field, for references to it.
    fn values(&self, field: Field) -> Vec<String> {
        match field {
            Field::PrincipalId => vec![self.principal_id.clone()],
            Field::PrincipalGroups => self.groups.clone(),
            Field::Action => vec![self.action.clone()],
            Field::ResourceUri => self.uri.iter().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// The groups conditions read, as the evaluator's context holds them.
    pub fn group_refs(&self) -> Vec<&str> {
        self.groups.iter().map(String::as_str).collect()
    }

    /// The request with these variables assigned. A variable nested in another is written into the outer
    /// one's map (rows never nest a value inside a non-map: see [`consistent`]).
    pub fn request(&self, assigned: &[(Var, Choice)]) -> Request {
        let mut r = Request {
            principal: Principal {
                id: self.principal_id.clone(),
                groups: self.request_groups.clone(),
                attributes: Map::new(),
            },
            action: self.action.clone(),
            resource: Resource {
                uri: self.uri.clone(),
                owner: None,
                attributes: Map::new(),
            },
            environment: Environment::default(),
        };
        let mut order: Vec<&(Var, Choice)> = assigned.iter().collect();
        order.sort_by_key(|(v, _)| match v {
            Var::Attr(_, segs) => segs.len(),
            _ => 0,
        });
        for (var, choice) in order {
            match (var, choice) {
                (_, Choice::Absent) => {}
                (Var::Owner, Choice::Json(Value::String(s))) => r.resource.owner = Some(s.clone()),
                (Var::SourceIp, Choice::Ip(ip)) => r.environment.source_ip = Some((*ip).into()),
                (Var::SourceIp, Choice::Json(Value::String(text))) => {
                    r.environment.source_ip = text.parse::<IpAddr>().ok().map(|addr| SourceIp {
                        addr,
                        text: text.as_str().into(),
                    })
                }
                (Var::Port, Choice::Json(v)) => r.environment.port = v.as_u64().map(|p| p as u32),
                (Var::Time, Choice::Time(t)) => r.environment.time = Some(*t),
                (Var::Attr(part, segs), Choice::Json(v)) => {
                    let map = match part {
                        PartKey::Principal => &mut r.principal.attributes,
                        PartKey::Resource => &mut r.resource.attributes,
                        PartKey::Environment => &mut r.environment.attributes,
                    };
                    insert_path(map, segs, v.clone());
                }
                _ => {}
            }
        }
        r
    }
}

fn insert_path(map: &mut Map<String, Value>, segs: &[String], value: Value) {
    let Some((first, rest)) = segs.split_first() else {
        return;
    };
    if rest.is_empty() {
        match (map.get_mut(first.as_str()), value) {
            // An outer map already holding nested choices keeps them.
            (Some(Value::Object(_)), Value::Object(v)) if v.is_empty() => {}
            (_, value) => {
                map.insert(first.clone(), value);
            }
        }
        return;
    }
    let entry = map
        .entry(first.clone())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    if let Value::Object(inner) = entry {
        insert_path(inner, rest, value);
    }
}

/// Variables chosen together, with one row per distinct outcome vector of the group's predicates.
#[derive(Debug, Clone)]
pub struct Group {
    pub vars: Vec<Var>,
    pub rows: Vec<Vec<Choice>>,
    /// Why some cell may have no row: the analysis is then inconclusive.
    pub incomplete: Option<String>,
    /// True when `rows` holds one row per outcome vector; false for one variable of a group too large to
    /// tabulate, whose rows are all its candidates (the search combines them exhaustively).
    pub tabulated: bool,
}

/// The groups of variables that `preds` read, with their rows. `as_of` bounds `environment.time` from below.
pub fn groups(preds: &[Pred], fixed: &Fixed, as_of: Moment) -> Vec<Group> {
    let mut vars: Vec<Var> = Vec::new();
    let mut links: Vec<(usize, usize)> = Vec::new();
    let index = |v: Var, vars: &mut Vec<Var>| match vars.iter().position(|x| *x == v) {
        Some(i) => i,
        None => {
            vars.push(v);
            vars.len() - 1
        }
    };
    let mut pred_vars: Vec<Vec<usize>> = Vec::new();
    for p in preds {
        let ids: Vec<usize> = p
            .vars(&fixed.action)
            .into_iter()
            .map(|v| index(v, &mut vars))
            .collect();
        for w in ids.windows(2) {
            links.push((w[0], w[1]));
        }
        pred_vars.push(ids);
    }
    for i in 0..vars.len() {
        for j in 0..vars.len() {
            if i != j && nested_in(&vars[j], &vars[i]) {
                links.push((i, j));
            }
        }
    }
    // Union-find over the links.
    let mut parent: Vec<usize> = (0..vars.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for (a, b) in links {
        let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
        if ra != rb {
            parent[ra.max(rb)] = ra.min(rb);
        }
    }
    let mut members: Vec<(usize, Vec<usize>)> = Vec::new();
    for i in 0..vars.len() {
        let r = root(&mut parent, i);
        match members.iter_mut().find(|(x, _)| *x == r) {
            Some((_, m)) => m.push(i),
            None => members.push((r, vec![i])),
        }
    }
    members
        .into_iter()
        .flat_map(|(_, ids)| {
            let group_preds: Vec<Pred> = preds
                .iter()
                .zip(&pred_vars)
                .filter(|(_, pv)| pv.iter().any(|v| ids.contains(v)))
                .map(|(p, _)| *p)
                .collect();
            let mut group_vars: Vec<Var> = ids.iter().map(|&i| vars[i].clone()).collect();
            group_vars.sort();
            build_group(group_vars, &group_preds, fixed, as_of)
        })
        .collect()
}

/// True when `inner` is a path strictly inside `outer` (`resource.a.b` inside `resource.a`).
fn nested_in(inner: &Var, outer: &Var) -> bool {
    match (inner, outer) {
        (Var::Attr(p, a), Var::Attr(q, b)) => p == q && a.len() > b.len() && a.starts_with(b),
        _ => false,
    }
}

/// A row is consistent when no variable holds a value inside an outer variable that is absent or not a map.
fn consistent(vars: &[Var], row: &[Choice]) -> bool {
    for (i, inner) in vars.iter().enumerate() {
        if matches!(row[i], Choice::Absent) {
            continue;
        }
        for (j, outer) in vars.iter().enumerate() {
            if nested_in(inner, outer) && !matches!(row[j], Choice::Json(Value::Object(_))) {
                return false;
            }
        }
    }
    true
}

/// What the group's predicates say, pooled over its variables.
#[derive(Debug, Default)]
struct Atoms {
    patterns: Vec<Pattern>,
    /// Parallel to `patterns`: an equality literal (a string matching it is that literal).
    literal: Vec<bool>,
    numbers: Vec<f64>,
    instants: Vec<Moment>,
    boundaries: Vec<u32>,
    zones: Vec<TimeZone>,
    /// A time operator reads a variable of the group.
    timey: bool,
    cidrs: Vec<IpNet>,
    ips: Vec<IpAddr>,
    /// A network operator (or an IP-typed field) reads a variable of the group.
    netty: bool,
    /// `lt`/`le`/`gt`/`ge`/`before`/`after` between two variables.
    order_relation: bool,
    /// `starts_with`/`ends_with` between two variables.
    string_relation: bool,
    /// `equals`/`contains_all` between two variables (a list's elements against another variable's value).
    member_relation: bool,
    /// Set when `environment.time` is in the group: where its instants start.
    time_from: Option<Moment>,
}

impl Atoms {
    fn pattern(&mut self, p: Pattern, literal: bool) {
        let literal = literal || p.is_literal();
        if let Some(i) = self.patterns.iter().position(|x| *x == p) {
            self.literal[i] |= literal;
        } else {
            self.patterns.push(p);
            self.literal.push(literal);
        }
    }

    /// A string literal: a pattern, and an instant or IP when it reads as one (equality compares typed values
    /// by value).
    fn string_literal(&mut self, s: &str) {
        self.pattern(Pattern::literal(s), true);
        if let Some(t) = parse_rfc3339(s) {
            self.instants.push(t);
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            self.ips.push(ip.to_canonical());
        }
    }

    fn lit(&mut self, l: &Lit) {
        match l {
            Lit::Str(s) => self.string_literal(s),
            Lit::Num(n) => self.numbers.push(*n),
            Lit::Bool(_) => {}
        }
    }

    fn gather(&mut self, pred: &Pred, fixed: &Fixed, group: &[Var]) {
        let c = match pred {
            Pred::Claim(_, values) => {
                values.iter().for_each(|v| self.lit(v));
                return;
            }
            Pred::Condition(c) => c,
        };
        let in_group = |p: &AttrPath| var_of(p, &fixed.action).is_some_and(|v| group.contains(&v));
        let pinned = |p: &AttrPath| match &p.target {
            Target::Field(f) if var_of(p, &fixed.action).is_none() => Some(fixed.values(*f)),
            _ => None,
        };
        let path_pinned = pinned(&c.path);
        match &c.op {
            Op::Equals(ops) | Op::ContainsAll(ops) => {
                for o in ops.iter() {
                    match o {
                        Operand::Lit(l) => self.lit(l),
                        Operand::Ref(p) => {
                            if in_group(p) && in_group(&c.path) {
                                self.member_relation = true;
                            }
                            for v in pinned(p).unwrap_or_default() {
                                self.string_literal(&v);
                            }
                        }
                    }
                }
                // `principal.id equals ${resource.x}`: the pinned values are the group's literals.
                for v in path_pinned.unwrap_or_default() {
                    self.string_literal(&v);
                }
            }
            Op::StartsWith(ops) | Op::EndsWith(ops) => {
                let starts = matches!(c.op, Op::StartsWith(_));
                let shape = |s: &str| {
                    if starts {
                        Pattern::prefix(s)
                    } else {
                        Pattern::suffix(s)
                    }
                };
                for o in ops.iter() {
                    match o {
                        Operand::Lit(Lit::Str(s)) => self.pattern(shape(s), false),
                        Operand::Lit(_) => {}
                        Operand::Ref(p) if in_group(p) && in_group(&c.path) => {
                            self.string_relation = true
                        }
                        Operand::Ref(p) => {
                            for v in pinned(p).unwrap_or_default() {
                                self.pattern(shape(&v), false);
                            }
                        }
                    }
                }
                // `principal.id starts_with ${resource.p}`: the operand is one of the pinned value's prefixes
                // (suffixes), a finite set of literals.
                for v in path_pinned.unwrap_or_default() {
                    let chars: Vec<(usize, char)> = v.char_indices().collect();
                    let mut cuts: Vec<usize> = chars.iter().map(|(i, _)| *i).collect();
                    cuts.push(v.len());
                    for cut in cuts {
                        let part = if starts { &v[..cut] } else { &v[cut..] };
                        self.pattern(Pattern::literal(part), true);
                    }
                }
            }
            Op::Glob(globs) => {
                for g in globs.iter() {
                    self.pattern(Pattern::glob(g.as_str()), false);
                }
            }
            Op::Compare(_, NumArg::Num(n)) => self.numbers.push(*n),
            Op::Compare(_, NumArg::Ref(p)) => {
                if in_group(p) {
                    self.order_relation = true;
                }
            }
            Op::Before(a) | Op::After(a) => {
                self.timey = true;
                match a {
                    TimeArg::At(t) => self.instants.push(*t),
                    TimeArg::Ref(p) => {
                        if in_group(p) {
                            self.order_relation = true;
                        }
                        // `environment.time after ${principal.id}`: the pinned values that read as instants
                        // are cuts, as literals would be.
                        for v in pinned(p).unwrap_or_default() {
                            self.instants.extend(parse_rfc3339(&v));
                        }
                    }
                }
                // `principal.id before ${environment.time}`: the same, the pinned field being compared.
                for v in path_pinned.unwrap_or_default() {
                    self.instants.extend(parse_rfc3339(&v));
                }
            }
            Op::TimeOfDay(windows, zone) => {
                self.timey = true;
                for w in windows.iter() {
                    self.boundaries.push(w.start);
                    self.boundaries.push(w.end);
                }
                if !self.zones.contains(zone) {
                    self.zones.push(zone.clone());
                }
            }
            Op::Weekday(_, zone) => {
                self.timey = true;
                if !self.zones.contains(zone) {
                    self.zones.push(zone.clone());
                }
            }
            Op::Cidr(nets) => {
                self.netty = true;
                self.cidrs.extend(nets.iter().copied());
            }
            Op::Exists | Op::IsTrue => {}
        }
    }
}

/// Builds one group: candidates per variable, their consistent product, one row per outcome vector.
fn build_group(vars: Vec<Var>, preds: &[Pred], fixed: &Fixed, as_of: Moment) -> Vec<Group> {
    let mut atoms = Atoms::default();
    for p in preds {
        atoms.gather(p, fixed, &vars);
    }
    if vars.contains(&Var::Time) || vars.contains(&Var::SourceIp) {
        atoms.timey |= vars.contains(&Var::Time);
        atoms.netty |= vars.contains(&Var::SourceIp);
    }
    // Linked typed fields and attributes draw from one pool: the port's range and the time's start are cuts
    // for the attributes too, so equal and ordered arrangements between them have the same candidates.
    if vars.contains(&Var::Port) {
        atoms.numbers.extend([1.0, 65_535.0]);
    }
    if vars.contains(&Var::Time) {
        atoms.instants.push(as_of);
        atoms.time_from = Some(as_of);
    }
    let copies = vars.len();
    let mut incomplete: Option<String> = None;
    let mut note = |why: String| {
        incomplete.get_or_insert(why);
    };
    if atoms.string_relation {
        note(format!(
            "`starts_with`/`ends_with` between two request attributes ({}) is not covered exhaustively",
            names(&vars)
        ));
    }
    if atoms.order_relation && !atoms.zones.is_empty() {
        note(format!(
            "an order between two request instants that `time_of_day`/`weekday` also read ({}) is not covered exhaustively",
            names(&vars)
        ));
    }
    let mut cache = Candidates::default();
    let per_var: Vec<Vec<Choice>> = vars
        .iter()
        .map(|v| cache.of(v, &atoms, preds, fixed, as_of, copies, &vars, &mut note))
        .collect();
    // The consistent product, then one row per outcome vector (by the real evaluator).
    let total: usize = per_var.iter().map(Vec::len).product();
    let mut rows: Vec<Vec<Choice>> = Vec::new();
    if total > GROUP_ROWS {
        // Too many combinations to tabulate: the search walks them one variable at a time instead, deciding
        // each predicate as soon as its variables are chosen. That is exhaustive too; only the time budget can
        // cut it short (and then the guard is inconclusive).
        return vars
            .into_iter()
            .zip(per_var)
            .map(|(var, rows)| Group {
                vars: vec![var],
                rows: rows.into_iter().map(|c| vec![c]).collect(),
                incomplete: incomplete.clone(),
                tabulated: false,
            })
            .collect();
    }
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let mut row = Vec::with_capacity(vars.len());
    product(&per_var, &mut row, &mut |row| {
        if !consistent(&vars, row) {
            return;
        }
        let assigned: Vec<(Var, Choice)> = vars.iter().cloned().zip(row.iter().cloned()).collect();
        let request = fixed.request(&assigned);
        let groups = fixed.group_refs();
        let ctx = Ctx {
            request: (&request).into(),
            groups: &groups,
            time: request.environment.time.unwrap_or(as_of),
        };
        let vector: Vec<u8> = preds.iter().map(|p| p.outcome(&ctx)).collect();
        if seen.insert(vector) {
            rows.push(row.to_vec());
        }
    });
    vec![Group {
        vars,
        rows,
        incomplete,
        tabulated: true,
    }]
}

fn names(vars: &[Var]) -> String {
    vars.iter()
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn product(per_var: &[Vec<Choice>], row: &mut Vec<Choice>, f: &mut dyn FnMut(&[Choice])) {
    if row.len() == per_var.len() {
        f(row);
        return;
    }
    for c in &per_var[row.len()] {
        row.push(c.clone());
        product(per_var, row, f);
        row.pop();
    }
}

/// Candidate values, with the string witnesses shared by the variables of one group.
#[derive(Default)]
struct Candidates {
    strings: Option<(Vec<String>, Vec<Vec<bool>>, bool)>,
}

impl Candidates {
    /// Every string cell's witnesses (`copies` each), with their match vectors.
    fn strings(&mut self, atoms: &Atoms, copies: usize) -> &(Vec<String>, Vec<Vec<bool>>, bool) {
        self.strings.get_or_insert_with(|| {
            let w = witnesses(
                &Pattern::glob("*"),
                &atoms.patterns,
                true,
                STRING_STATES,
                copies,
            );
            let mut out = Vec::new();
            let mut vectors = Vec::new();
            // Each witness stays a distinct copy: a witness made realistic (`""` as `x`) must not become another
            // witness of its cell, or equality arrangements between linked variables would be lost.
            let raw: HashSet<&str> = w
                .by_vector
                .iter()
                .flat_map(|(_, strings)| strings.iter().map(String::as_str))
                .collect();
            let mut taken: HashSet<String> = HashSet::new();
            for (v, strings) in &w.by_vector {
                for s in strings {
                    let real = realistic(s, &atoms.patterns, v);
                    let real = if real != *s && (raw.contains(real.as_str()) || taken.contains(&real)) {
                        s.clone()
                    } else {
                        real
                    };
                    taken.insert(real.clone());
                    out.push(real);
                    vectors.push(v.clone());
                }
            }
            (out, vectors, w.complete)
        })
    }

    /// The string witnesses and their match vectors; an incomplete search is noted.
    fn string_cells(
        &mut self,
        atoms: &Atoms,
        copies: usize,
        group: &[Var],
        note: &mut dyn FnMut(String),
    ) -> (Vec<String>, Vec<Vec<bool>>) {
        let (strings, vectors, complete) = self.strings(atoms, copies).clone();
        if !complete {
            note(format!(
                "the string patterns on {} have more than {STRING_STATES} combinations",
                names(group)
            ));
        }
        (strings, vectors)
    }

    #[allow(clippy::too_many_arguments)]
    fn of(
        &mut self,
        var: &Var,
        atoms: &Atoms,
        preds: &[Pred],
        fixed: &Fixed,
        as_of: Moment,
        copies: usize,
        group: &[Var],
        note: &mut dyn FnMut(String),
    ) -> Vec<Choice> {
        let mut out = vec![Choice::Absent];
        match var {
            Var::Time => {
                let (points, complete) = time_points(atoms, as_of, last_instant(), copies);
                if !complete {
                    note(format!("`{var}` has more than {TIME_POINTS} cells"));
                }
                // `environment.time` is never absent: an unset time is the instant of the call.
                return points.into_iter().map(Choice::Time).collect();
            }
            Var::SourceIp if atoms.patterns.is_empty() => {
                out.extend(ip_points(atoms, copies).into_iter().map(Choice::Ip));
                return out;
            }
            Var::SourceIp => {
                // Text operators read the address as sent: every spelling that changes a text outcome.
                let (_, vectors) = self.string_cells(atoms, copies, group, note);
                let texts: Vec<String> = interpreted_texts(atoms, copies, &mut *note)
                    .into_iter()
                    .filter(|t| t.parse::<IpAddr>().is_ok())
                    .collect();
                if group.len() > 1 {
                    note(format!(
                        "{} are read both as text and as IPs, and compared with each other",
                        names(group)
                    ));
                } else {
                    check_mixed(var, atoms, preds, fixed, as_of, &[], &vectors, &texts, note);
                }
                out.extend(texts.into_iter().map(|t| Choice::Json(Value::String(t))));
                return out;
            }
            Var::Port => {
                out.extend(
                    number_points(&atoms.numbers, copies, Some((1.0, 65_535.0)))
                        .into_iter()
                        .map(|n| Choice::Json(json!(n as u64))),
                );
                return out;
            }
            Var::Owner | Var::Attr(..) => {}
        }
        let (strings, vectors) = self.string_cells(atoms, copies, group, note);
        let mut texts: Vec<String> = strings.clone();
        // Instants and IPs written as strings, for the operators that read a string as one.
        let interpreted = interpreted_texts(atoms, copies, &mut *note);
        let mixed = !atoms.patterns.is_empty() && !interpreted.is_empty();
        for t in &interpreted {
            if !texts.contains(t) {
                texts.push(t.clone());
            }
        }
        if mixed {
            if group.len() > 1 {
                note(format!(
                    "{} are read both as text and as instants or IPs, and compared with each other",
                    names(group)
                ));
            } else {
                check_mixed(
                    var, atoms, preds, fixed, as_of, &strings, &vectors, &texts, note,
                );
            }
        }
        for s in texts {
            if matches!(var, Var::Owner) && s.is_empty() {
                continue; // an empty owner is an absent one
            }
            out.push(Choice::Json(Value::String(s)));
        }
        if !matches!(var, Var::Owner) {
            out.push(Choice::Json(json!({})));
            out.push(Choice::Json(json!(true)));
            out.push(Choice::Json(json!(false)));
            for n in number_points(&atoms.numbers, copies, None) {
                out.push(Choice::Json(number(n)));
            }
        }
        if group.len() > 1
            && group
                .iter()
                .all(|v| matches!(v, Var::Owner | Var::Attr(..)))
        {
            out = keep_per_class(out, atoms, preds, fixed, as_of, copies, group);
        }
        if matches!(var, Var::Owner) {
            return out;
        }
        // List elements: operators on a list read its elements only through equality and text matching, so
        // instants and IPs written as text matter there only when another variable of the group can equal them:
        // a typed field, or another attribute (which a time or network operator may read) compared with the list.
        let typed_peer = group.iter().any(|v| matches!(v, Var::Time | Var::SourceIp))
            || atoms.member_relation;
        let scalars: Vec<Value> = out
            .iter()
            .filter_map(|c| match c {
                Choice::Json(Value::String(s))
                    if !typed_peer && interpreted.contains(s) && !strings.contains(s) =>
                {
                    None
                }
                Choice::Json(v) if !v.is_object() => Some(v.clone()),
                _ => None,
            })
            .chain([json!([])])
            .collect();
        let others: Vec<&Var> = group.iter().filter(|v| *v != var).collect();
        match lists(var, &scalars, preds, fixed, &others) {
            Some(lists) => out.extend(lists.into_iter().map(Choice::Json)),
            None => note(format!(
                "lists in `{var}` have more than {LIST_SIGNATURES} membership patterns"
            )),
        }
        out
    }
}

/// The earliest instant a request may carry (RFC 3339 years start at 1).
fn first_instant() -> Moment {
    Moment::FIRST_RFC3339
}

/// The latest instant a request may carry: the last nanosecond of year 9999.
fn last_instant() -> Moment {
    Moment::LAST
}

/// In a group of linked attributes: keeps `copies` values per joint class, the class of a value being the
/// outcomes of every predicate that reads one variable alone, with that variable set to the value, for every
/// variable of the group. Values of one class are interchangeable in every role; `copies` of each let every
/// equality arrangement between the group's variables be realised. Under an order relation (`lt ${...}`,
/// `before ${...}`) numbers and instants are all kept, so every order arrangement is too.
#[allow(clippy::too_many_arguments)]
fn keep_per_class(
    values: Vec<Choice>,
    atoms: &Atoms,
    preds: &[Pred],
    fixed: &Fixed,
    as_of: Moment,
    copies: usize,
    group: &[Var],
) -> Vec<Choice> {
    let own: Vec<(usize, &Var)> = preds
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let vars = p.vars(&fixed.action);
            (vars.len() == 1)
                .then_some(i)
                .zip(group.iter().find(|g| **g == vars[0]))
        })
        .collect();
    let mut per_class: HashMap<Vec<u8>, usize> = HashMap::new();
    values
        .into_iter()
        .filter(|c| {
            let Choice::Json(v) = c else {
                return true;
            };
            let ordered = atoms.order_relation
                && (v.is_number() || v.as_str().is_some_and(|s| parse_rfc3339(s).is_some()));
            if ordered {
                return true;
            }
            let mut class: Vec<u8> = vec![match v {
                Value::String(_) => 0,
                Value::Number(_) => 1,
                Value::Bool(_) => 2,
                _ => 3,
            }];
            // The literals of predicates that read two variables at once (`equals ["nobody", "${...}"]`)
            // distinguish values too: which text patterns match, and where a number sits among the literals.
            if let Value::String(text) = v {
                class.extend(atoms.patterns.iter().map(|p| p.matches(text) as u8));
            }
            if let Some(n) = v.as_f64() {
                class.extend(atoms.numbers.iter().map(|l| n.total_cmp(l) as i8 as u8));
            }
            for var in group {
                let request = fixed.request(&[(var.clone(), c.clone())]);
                let groups = fixed.group_refs();
                let ctx = Ctx {
                    request: (&request).into(),
                    groups: &groups,
                    time: as_of,
                };
                class.extend(
                    own.iter()
                        .filter(|(_, v)| *v == var)
                        .map(|(i, _)| preds[*i].outcome(&ctx)),
                );
            }
            let n = per_class.entry(class).or_insert(0);
            *n += 1;
            *n <= copies
        })
        .collect()
}

/// A JSON number, whole when it is one.
fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        json!(n as i64)
    } else {
        json!(n)
    }
}

/// A witness that reads like a real value: a trailing separator gets a character after it when that keeps the
/// string in its cell (`…:policies:` becomes `…:policies:x`).
pub fn realistic(s: &str, patterns: &[Pattern], vector: &[bool]) -> String {
    if s.ends_with([':', '/', '-', '.', '_']) || s.is_empty() {
        for extra in ["x", "a", "0", "q"] {
            let t = format!("{s}{extra}");
            if patterns
                .iter()
                .zip(vector)
                .all(|(p, want)| p.matches(&t) == *want)
            {
                return t;
            }
        }
    }
    s.to_string()
}

/// Instants and IPs as text, when a time or network operator reads the group.
fn interpreted_texts(atoms: &Atoms, copies: usize, note: &mut dyn FnMut(String)) -> Vec<String> {
    // Canonical spellings first (counterexamples read best with them), other spellings after.
    let mut out = Vec::new();
    let mut other = Vec::new();
    let spell = !atoms.patterns.is_empty();
    if atoms.timey {
        let (mut points, complete) = time_points(atoms, first_instant(), last_instant(), copies);
        if !complete {
            note(format!("instants have more than {TIME_POINTS} cells"));
        }
        if let Some(from) = atoms.time_from {
            // The same instants `environment.time` takes, so the two can be equal.
            let (more, complete) = time_points(atoms, from, last_instant(), copies);
            if !complete {
                note(format!("instants have more than {TIME_POINTS} cells"));
            }
            for t in more {
                if !points.contains(&t) {
                    points.push(t);
                }
            }
        }
        for t in points {
            let text = t.to_string();
            if spell {
                // Another spelling of the same instant, for text predicates that tell them apart.
                if let Some(stem) = text.strip_suffix('Z') {
                    other.push(format!("{stem}+00:00"));
                }
            }
            out.push(text);
        }
    }
    if atoms.netty {
        for ip in ip_points(atoms, copies) {
            if spell {
                match ip {
                    IpAddr::V4(v4) => {
                        // IPv4-mapped, dotted and in hex (`::ffff:a00:1`): both compare as the IPv4 address.
                        other.push(v4.to_ipv6_mapped().to_string());
                        let [a, b, c, d] = v4.octets();
                        other.push(format!(
                            "::ffff:{:x}:{:x}",
                            u16::from_be_bytes([a, b]),
                            u16::from_be_bytes([c, d])
                        ));
                    }
                    IpAddr::V6(v6) => other.push(v6.to_string().to_uppercase()),
                }
            }
            out.push(ip.to_string());
        }
        // IPv6 spellings that begin or end like a text pattern (`b::1` for `starts_with b`).
        for p in &atoms.patterns {
            let (head, tail) = (p.head(), p.tail());
            for text in [
                format!("{head}::"),
                format!("{head}::1"),
                format!("{head}:0::1"),
                format!("{head}0::1"),
                format!("::{tail}"),
                format!("1::{tail}"),
                format!("0:0::{tail}"),
            ] {
                if text.parse::<IpAddr>().is_ok() {
                    other.push(text);
                }
            }
        }
    }
    for t in other {
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// For a variable read both as text and as an instant or IP: every combination of a text cell and an
/// interpreted cell must have a candidate, except where an equality literal pins the string.
#[allow(clippy::too_many_arguments)]
fn check_mixed(
    var: &Var,
    atoms: &Atoms,
    preds: &[Pred],
    fixed: &Fixed,
    as_of: Moment,
    strings: &[String],
    vectors: &[Vec<bool>],
    texts: &[String],
    note: &mut dyn FnMut(String),
) {
    let vector_of = |s: &str| -> Vec<u8> {
        let assigned = [(var.clone(), Choice::Json(Value::String(s.to_string())))];
        let request = fixed.request(&assigned);
        let groups = fixed.group_refs();
        let ctx = Ctx {
            request: (&request).into(),
            groups: &groups,
            time: as_of,
        };
        preds.iter().map(|p| p.outcome(&ctx)).collect()
    };
    let text_cells: HashSet<Vec<bool>> = vectors.iter().cloned().collect();
    let mut interp_cells: HashSet<Vec<u8>> = HashSet::new();
    let mut realized: HashSet<(Vec<bool>, Vec<u8>)> = HashSet::new();
    // The interpreted outcome of a string: the predicates' outcomes with every text pattern's answer removed,
    // which is what a string of the same instant or IP in another spelling would give.
    let interp = |s: &str| -> Vec<u8> {
        let mut v = vector_of(s);
        for (i, p) in preds.iter().enumerate() {
            let text = match p {
                Pred::Claim(..) => true,
                // `equals` reads `environment.source_ip` as an IP, by value.
                Pred::Condition(c) if matches!(c.op, Op::Equals(_)) => *var != Var::SourceIp,
                Pred::Condition(c) => matches!(
                    c.op,
                    Op::ContainsAll(_) | Op::StartsWith(_) | Op::EndsWith(_) | Op::Glob(_)
                ),
            };
            if text {
                v[i] = u8::MAX;
            }
        }
        v
    };
    for s in strings.iter().chain(texts) {
        let text: Vec<bool> = atoms.patterns.iter().map(|p| p.matches(s)).collect();
        let i = interp(s);
        interp_cells.insert(i.clone());
        realized.insert((text, i));
    }
    // What kind of string an interpreted cell holds: an instant, an IP, or neither (every interpreted
    // predicate faults or is false).
    let kind_of = |i: &Vec<u8>| -> Kind {
        strings
            .iter()
            .chain(texts)
            .find(|s| interp(s) == *i)
            .map_or(Kind::Other, |s| {
                if parse_rfc3339(s).is_some() {
                    Kind::Instant
                } else if s.parse::<IpAddr>().is_ok() {
                    Kind::Ip
                } else {
                    Kind::Other
                }
            })
    };
    for t in &text_cells {
        let pinned = t.iter().zip(&atoms.literal).any(|(m, l)| *m && *l);
        if pinned {
            continue;
        }
        let required: Vec<&Pattern> = atoms
            .patterns
            .iter()
            .zip(t)
            .filter(|(_, m)| **m)
            .map(|(p, _)| p)
            .collect();
        for i in &interp_cells {
            let kind = kind_of(i);
            if kind != Kind::Other && required.iter().any(|p| !could_spell(p, kind)) {
                continue; // no instant (IP) is spelled inside this text cell
            }
            if !realized.contains(&(t.clone(), i.clone())) {
                let example = |want: &dyn Fn(&str) -> bool| {
                    strings
                        .iter()
                        .chain(texts)
                        .find(|s| want(s))
                        .cloned()
                        .unwrap_or_default()
                };
                let text = example(&|s| {
                    atoms
                        .patterns
                        .iter()
                        .map(|p| p.matches(s))
                        .eq(t.iter().copied())
                });
                let value = example(&|s| interp(s) == *i);
                note(format!(
                    "`{var}` is read both as text and as an instant or IP, and no value is both like `{text}` as text and like `{value}` as a value"
                ));
                return;
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Instant,
    Ip,
    Other,
}

/// False when no RFC 3339 instant (or no IP) can match `p`: it needs a character such strings never hold, or
/// its fixed start or end cannot begin or end one.
fn could_spell(p: &Pattern, kind: Kind) -> bool {
    let allowed = |c: char| match kind {
        Kind::Instant => c.is_ascii_digit() || "-:.+TtZz".contains(c),
        Kind::Ip => c.is_ascii_hexdigit() || ":.".contains(c),
        Kind::Other => true,
    };
    if !p.chars().all(allowed) {
        return false;
    }
    match kind {
        Kind::Instant => {
            // YYYY-MM-DDTHH:MM:SS, then an optional fraction and an offset ending in a digit or Z.
            const SHAPE: &[&str] = &[
                "d", "d", "d", "d", "-", "d", "d", "-", "d", "d", "Tt", "d", "d", ":", "d", "d",
                ":", "d", "d",
            ];
            let head_ok = p.head().chars().zip(SHAPE).all(|(c, class)| {
                if *class == "d" {
                    c.is_ascii_digit()
                } else {
                    class.contains(c)
                }
            });
            let tail_ok = p
                .tail()
                .chars()
                .last()
                .is_none_or(|c| c.is_ascii_digit() || c == 'Z' || c == 'z');
            head_ok && tail_ok
        }
        // An IP's text ends with a hex digit, or with `::` (so a tail ending in `:` may be one).
        Kind::Ip => {
            let tail = p.tail();
            tail.is_empty() || tail.ends_with(|c: char| c.is_ascii_hexdigit() || c == ':')
        }
        Kind::Other => true,
    }
}

/// Every membership pattern of a list that changes an outcome: the closure under union of the elements'
/// contributions to each predicate on `var` (and, in a linked group, which elements it holds). `None` when the
/// closure is over its budget.
fn lists(
    var: &Var,
    elements: &[Value],
    preds: &[Pred],
    fixed: &Fixed,
    others: &[&Var],
) -> Option<Vec<Value>> {
    // In a linked group, which elements a list holds matters for every element another variable can equal:
    // strings for the typed string fields, numbers for the port, anything for attributes.
    let comparable = |e: &Value| {
        others.iter().any(|o| match o {
            Var::Owner | Var::SourceIp | Var::Time => e.is_string(),
            Var::Port => e.is_number(),
            Var::Attr(..) => !e.is_array() && !e.is_object(),
        })
    };
    let sig = |e: &Value, index: usize| -> Vec<bool> {
        let mut bits = element_bits(var, e, preds, fixed);
        bits.extend(
            elements
                .iter()
                .enumerate()
                .filter(|(_, x)| comparable(x))
                .map(|(i, _)| i == index),
        );
        bits
    };
    let element_sigs: Vec<Vec<bool>> = elements
        .iter()
        .enumerate()
        .map(|(i, e)| sig(e, i))
        .collect();
    let width = element_sigs.first().map_or(0, Vec::len);
    let mut seen: HashMap<Vec<bool>, Vec<Value>> = HashMap::new();
    let mut order: Vec<Vec<bool>> = Vec::new();
    let mut queue: VecDeque<Vec<bool>> = VecDeque::new();
    seen.insert(vec![false; width], Vec::new());
    order.push(vec![false; width]);
    queue.push_back(vec![false; width]);
    while let Some(s) = queue.pop_front() {
        for (e, es) in elements.iter().zip(&element_sigs) {
            let next: Vec<bool> = s.iter().zip(es).map(|(a, b)| *a || *b).collect();
            if seen.contains_key(&next) {
                continue;
            }
            if seen.len() >= LIST_SIGNATURES {
                return None;
            }
            let mut list = seen[&s].clone();
            list.push(e.clone());
            seen.insert(next.clone(), list);
            order.push(next.clone());
            queue.push_back(next);
        }
    }
    Some(
        order
            .into_iter()
            .map(|s| Value::Array(seen.remove(&s).unwrap_or_default()))
            .collect(),
    )
}

/// What one list element contributes to each predicate on `var`, as bits that combine by union.
fn element_bits(var: &Var, e: &Value, preds: &[Pred], fixed: &Fixed) -> Vec<bool> {
    let eq = |v: &Value, l: &str| matches!(v, Value::String(s) if s == l);
    let eq_lit = |v: &Value, l: &Lit| match (v, l) {
        (Value::String(s), Lit::Str(x)) => **s == **x,
        (Value::Number(n), Lit::Num(x)) => n.as_f64() == Some(*x),
        (Value::Bool(b), Lit::Bool(x)) => b == x,
        _ => false,
    };
    let mut bits = Vec::new();
    for p in preds {
        let c = match p {
            Pred::Claim(path, values) => {
                if claim_var(path) == *var {
                    bits.push(values.iter().any(|l| eq_lit(e, l)));
                }
                continue;
            }
            Pred::Condition(c) => c,
        };
        let is_path = var_of(&c.path, &fixed.action).as_ref() == Some(var);
        let pinned = |p: &AttrPath| match &p.target {
            Target::Field(f) if var_of(p, &fixed.action).is_none() => fixed.values(*f),
            _ => Vec::new(),
        };
        let operands: &[Operand] = match &c.op {
            Op::Equals(o) | Op::ContainsAll(o) | Op::StartsWith(o) | Op::EndsWith(o) => o,
            Op::Glob(globs) => {
                if is_path {
                    let s = e.as_str();
                    bits.push(s.is_some_and(|s| globs.iter().any(|g| g.matches(s))));
                    bits.push(s.is_none());
                }
                continue;
            }
            _ => continue,
        };
        if is_path {
            // Literal and pinned values, element by element.
            let mut values: Vec<Value> = Vec::new();
            for o in operands {
                match o {
                    Operand::Lit(Lit::Str(s)) => values.push(json!(s.to_string())),
                    Operand::Lit(Lit::Num(n)) => values.push(json!(n)),
                    Operand::Lit(Lit::Bool(b)) => values.push(json!(b)),
                    Operand::Ref(r) => values.extend(pinned(r).into_iter().map(Value::String)),
                }
            }
            let same = |a: &Value, b: &Value| match (a, b) {
                (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
                _ => a == b,
            };
            match &c.op {
                Op::Equals(_) => bits.push(values.iter().any(|v| same(e, v))),
                Op::ContainsAll(_) => bits.extend(values.iter().map(|v| same(e, v))),
                Op::StartsWith(_) | Op::EndsWith(_) => {
                    let starts = matches!(c.op, Op::StartsWith(_));
                    let s = e.as_str();
                    bits.push(s.is_some_and(|s| {
                        values
                            .iter()
                            .any(|v| v.as_str().is_some_and(|p| has_affix(starts, s, p)))
                    }));
                    bits.push(s.is_none());
                }
                _ => {}
            }
        } else if let Target::Field(f) = &c.path.target {
            // `principal.id equals ${var}` and the like: the element against the pinned field's values.
            let values = fixed.values(*f);
            match &c.op {
                Op::Equals(_) => bits.push(values.iter().any(|v| eq(e, v))),
                Op::ContainsAll(_) => bits.push(!values.iter().any(|v| eq(e, v))),
                Op::StartsWith(_) | Op::EndsWith(_) => {
                    let starts = matches!(c.op, Op::StartsWith(_));
                    let s = e.as_str();
                    bits.push(s.is_some_and(|p| values.iter().any(|v| has_affix(starts, v, p))));
                    bits.push(s.is_none());
                }
                _ => {}
            }
        }
    }
    bits
}

/// `s` starts (or ends) with `affix`.
fn has_affix(starts: bool, s: &str, affix: &str) -> bool {
    if starts {
        s.starts_with(affix)
    } else {
        s.ends_with(affix)
    }
}

/// The next double up (towards +infinity), for points inside intervals too narrow for anything else.
fn next_up(x: f64) -> f64 {
    if x.is_nan() || x == f64::INFINITY {
        return x;
    }
    if x == 0.0 {
        return f64::from_bits(1);
    }
    let bits = x.to_bits();
    f64::from_bits(if x > 0.0 { bits + 1 } else { bits - 1 })
}

fn next_down(x: f64) -> f64 {
    -next_up(-x)
}

/// Numbers: every literal, and `copies` points strictly inside every interval between sorted literals and
/// beyond both ends, whole numbers first. With `range`, only whole numbers inside it.
pub fn number_points(literals: &[f64], copies: usize, range: Option<(f64, f64)>) -> Vec<f64> {
    let mut lits: Vec<f64> = literals.iter().copied().filter(|n| n.is_finite()).collect();
    if let Some((lo, hi)) = range {
        // The ends of the range are cells of their own, as they are for a number compared with this one.
        lits.extend([lo, hi]);
    }
    lits.sort_by(|a, b| a.total_cmp(b));
    lits.dedup_by(|a, b| a == b);
    let (lo, hi) = range.unwrap_or((f64::MIN, f64::MAX));
    let whole = range.is_some();
    let mut bounds: Vec<Option<f64>> = vec![None];
    bounds.extend(lits.iter().map(|&n| Some(n)));
    bounds.push(None);
    let mut out: Vec<f64> = Vec::new();
    for &n in &lits {
        if (lo..=hi).contains(&n) && (!whole || n.fract() == 0.0) {
            out.push(n);
        }
    }
    for w in bounds.windows(2) {
        let (a, a_open) = match w[0] {
            Some(x) if x >= lo => (x, true),
            _ => (lo, false),
        };
        let (b, b_open) = match w[1] {
            Some(x) if x <= hi => (x, true),
            _ => (hi, false),
        };
        let inside = |x: f64| (x > a || !a_open && x >= a) && (x < b || !b_open && x <= b);
        let mut got: Vec<f64> = Vec::new();
        // Whole numbers first, from the low end (or near zero when the interval is unbounded below).
        let start = if a_open {
            a.floor() + 1.0
        } else if b_open {
            (b.ceil() - copies as f64 - 1.0).max(a)
        } else {
            0.0f64.clamp(a, b)
        };
        let mut x = start;
        while got.len() < copies && inside(x) && x.is_finite() {
            got.push(x);
            let next = x + 1.0;
            if next == x {
                break;
            }
            x = next;
        }
        if !whole && got.len() < copies && a_open && b_open {
            for j in 1..=copies {
                let x = a + (b - a) * j as f64 / (copies + 1) as f64;
                if inside(x) && !got.contains(&x) && got.len() < copies {
                    got.push(x);
                }
            }
        }
        if !whole && got.len() < copies {
            // Intervals too narrow (or too far out) for the above: neighbouring doubles.
            let (mut x, step): (f64, fn(f64) -> f64) = if a_open {
                (next_up(a), next_up)
            } else {
                (next_down(b), next_down)
            };
            while got.len() < copies && inside(x) {
                if !got.contains(&x) {
                    got.push(x);
                }
                x = step(x);
            }
        }
        out.extend(got);
    }
    out.sort_by(|a, b| a.total_cmp(b));
    out.dedup();
    out
}

/// IPs: `copies` addresses in every interval between CIDR bounds and equality literals, in both families,
/// host addresses first. IPv6 addresses avoid the IPv4-mapped range, whose addresses behave as IPv4.
fn ip_points(atoms: &Atoms, copies: usize) -> Vec<IpAddr> {
    let mut v4_cuts: Vec<u128> = vec![0, 1 << 32];
    let mapped = u128::from(Ipv4Addr::UNSPECIFIED.to_ipv6_mapped());
    let mut v6_cuts: Vec<u128> = vec![0, u128::MAX, mapped, mapped + (1 << 32)];
    for net in &atoms.cidrs {
        match net {
            IpNet::V4(n) => {
                v4_cuts.push(u32::from(n.network()) as u128);
                v4_cuts.push(u32::from(n.broadcast()) as u128 + 1);
            }
            IpNet::V6(n) => {
                v6_cuts.push(u128::from(n.network()));
                v6_cuts.push(u128::from(n.broadcast()).saturating_add(1));
            }
        }
    }
    for ip in &atoms.ips {
        match ip.to_canonical() {
            IpAddr::V4(a) => {
                v4_cuts.push(u32::from(a) as u128);
                v4_cuts.push(u32::from(a) as u128 + 1);
            }
            IpAddr::V6(a) => {
                v6_cuts.push(u128::from(a));
                v6_cuts.push(u128::from(a).saturating_add(1));
            }
        }
    }
    let mut out = Vec::new();
    let mut spread = |cuts: &mut Vec<u128>, make: &dyn Fn(u128) -> IpAddr| {
        cuts.sort_unstable();
        cuts.dedup();
        for w in cuts.windows(2) {
            let (a, b) = (w[0], w[1]);
            if b <= a {
                continue;
            }
            if (mapped..mapped + (1 << 32)).contains(&a) && make(a).is_ipv6() {
                continue;
            }
            let len = b - a;
            // A host address: past the network address when the interval has room for every copy after it.
            let first = if len > 2 && len > copies as u128 { a + 1 } else { a };
            for i in 0..copies as u128 {
                let x = first + i;
                if x < b {
                    out.push(make(x));
                }
            }
        }
    };
    spread(&mut v4_cuts, &|x| IpAddr::V4(Ipv4Addr::from(x as u32)));
    spread(&mut v6_cuts, &|x| IpAddr::V6(Ipv6Addr::from(x)));
    // The cuts end at the last address (the intervals are half-open): it is a cell of its own.
    out.push(IpAddr::V6(Ipv6Addr::from(u128::MAX)));
    out
}

/// Instants from `lo` to `hi` (inclusive), one per cell of the partition the group's time predicates induce, or
/// `copies` per cell; `false` when there are more than [`TIME_POINTS`].
///
/// The timeline is cut at every instant literal (each a cell of its own). Without `time_of_day` or `weekday`,
/// the open intervals between cuts are the other cells. Otherwise, inside each interval the local time of day
/// and weekday in every zone change only at window boundaries, local midnights and offset changes: the
/// interval is walked segment by segment between offset changes of any zone, and each segment contributes its
/// start and every boundary in every zone. The joint state of a segment repeats weekly, so a segment whose
/// combination of offsets has already been walked for a whole week is skipped, and a walk stops after a week.
/// Every offset change through `hi` is visited, so combinations that first occur decades ahead are found.
fn time_points(
    atoms: &Atoms,
    lo: Moment,
    hi: Moment,
    copies: usize,
) -> (Vec<Moment>, bool) {
    // The same time predicates recur across cells and searches: remember recent partitions.
    type Key = (
        Vec<Moment>,
        Vec<u32>,
        Vec<String>,
        Moment,
        Moment,
        usize,
    );
    thread_local! {
        static CACHE: std::cell::RefCell<HashMap<Key, (Vec<Moment>, bool)>> = Default::default();
    }
    let mut instants = atoms.instants.clone();
    instants.sort();
    instants.dedup();
    let mut boundaries = atoms.boundaries.clone();
    boundaries.sort_unstable();
    boundaries.dedup();
    let zones: Vec<String> = atoms.zones.iter().map(|z| format!("{z:?}")).collect();
    let key: Key = (instants, boundaries, zones, lo, hi, copies);
    if let Some(hit) = CACHE.with(|c| c.borrow().get(&key).cloned()) {
        return hit;
    }
    let result = time_points_uncached(atoms, lo, hi, copies);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= 256 {
            c.clear();
        }
        c.insert(key, result.clone());
    });
    result
}

fn time_points_uncached(
    atoms: &Atoms,
    lo: Moment,
    hi: Moment,
    copies: usize,
) -> (Vec<Moment>, bool) {
    let mut cuts: Vec<Moment> = atoms
        .instants
        .iter()
        .copied()
        .filter(|t| *t > lo && *t < hi)
        .collect();
    cuts.sort();
    cuts.dedup();
    let mut edges = vec![lo];
    edges.extend(cuts.iter().copied());
    edges.push(hi);
    let mut out: Vec<Moment> = vec![lo];
    out.extend(cuts.iter().copied());
    if hi > lo {
        out.push(hi);
    }
    let mut boundaries: Vec<i64> = atoms.boundaries.iter().map(|&b| b as i64).collect();
    boundaries.push(0);
    boundaries.sort_unstable();
    boundaries.dedup();
    for w in edges.windows(2) {
        let (a, b) = (w[0], w[1]);
        if atoms.zones.is_empty() {
            // The open interval (a, b): `copies` points, whole seconds after `a` where they fit, then the
            // nanoseconds right after `a` (an interval of a second and a nanosecond holds one whole second).
            let mut got = Vec::with_capacity(copies);
            let mut x = a;
            while got.len() < copies {
                let step = x.checked_add_seconds(1).filter(|y| *y < b);
                let next = step.or_else(|| x.checked_add_nanos(1).filter(|y| *y < b));
                match next {
                    Some(y) => {
                        got.push(y);
                        x = y;
                    }
                    None => break,
                }
            }
            let mut x = a;
            while got.len() < copies {
                match x.checked_add_nanos(1).filter(|y| *y < b) {
                    Some(y) => {
                        if !got.contains(&y) {
                            got.push(y);
                        }
                        x = y;
                    }
                    None => break,
                }
            }
            out.extend(got);
            continue;
        }
        let mut points = walk_zones(atoms, &boundaries, a, b);
        points.sort();
        points.dedup();
        // Whole seconds first, so they stand for their state when they can (counterexamples read better).
        points.sort_by_key(|t| t.subsec_nanosecond() != 0);
        // Keep `copies` points per joint state (which cut interval; every zone's window interval and weekday).
        let mut per_state: HashMap<Vec<i64>, usize> = HashMap::new();
        for p in points {
            let key = time_state(p, &atoms.zones, &boundaries);
            let n = per_state.entry(key).or_insert(0);
            if *n < copies {
                *n += 1;
                out.push(p);
                // The nanoseconds after `p` in the same state, so that a state walked once still has `copies`
                // distinct instants.
                let state = time_state(p, &atoms.zones, &boundaries);
                let mut q = p;
                for _ in 1..copies {
                    match q.checked_add_nanos(1).filter(|q| *q < b) {
                        Some(next) if time_state(next, &atoms.zones, &boundaries) == state => {
                            out.push(next);
                            q = next;
                        }
                        _ => break,
                    }
                }
            }
        }
        if out.len() > TIME_POINTS {
            return (out, false);
        }
    }
    out.retain(|t| *t >= lo && *t <= hi);
    out.sort();
    out.dedup();
    (out, true)
}

/// The joint state of an instant: in every zone, which interval between boundaries its second of the day lies
/// in, and its weekday.
fn time_state(t: Moment, zones: &[TimeZone], boundaries: &[i64]) -> Vec<i64> {
    let mut key = Vec::with_capacity(zones.len() * 2);
    for z in zones {
        let local = t.local(z);
        key.push(boundaries.partition_point(|&b| b <= i64::from(local.second_of_day)) as i64);
        key.push(i64::from(local.weekday));
    }
    key
}

/// Points inside the open interval `(a, b)`: the start of every piece of constant joint state (see
/// [`time_points`]).
fn walk_zones(atoms: &Atoms, boundaries: &[i64], a: Moment, b: Moment) -> Vec<Moment> {
    let week = 7 * 86_400;
    let mut out = Vec::new();
    // The piece right after `a` (one nanosecond on) has a state of its own when a boundary falls within the
    // next second; a whole second after `a` is added too, to stand for the piece when it reads better.
    let first = a.checked_add_nanos(1).filter(|x| *x < b);
    let Some(mut start) = first else {
        return out;
    };
    if let Some(whole) = a.checked_add_seconds(1).filter(|x| *x < b) {
        out.push(whole);
    }
    // Offset combinations walked for a whole week, and shorter segments by (offsets, weekly phase, length in
    // whole seconds, whether the end has a fraction): a segment with the same key covers exactly the same
    // states (an end past a whole second takes in the piece that starts there).
    let mut walked: HashSet<Vec<i64>> = HashSet::new();
    let mut short: HashSet<(Vec<i64>, i64, i64, bool)> = HashSet::new();
    loop {
        let offsets: Vec<i64> = atoms.zones.iter().map(|z| start.offset_in(z)).collect();
        let mut end = b;
        for z in &atoms.zones {
            if let Some(t) = start.next_offset_change(z) {
                end = end.min(t);
            }
        }
        let start_s = start.as_second();
        let end_s = end.as_second();
        let long = end_s - start_s >= week;
        let fresh = !walked.contains(&offsets)
            && (long
                || short.insert((
                    offsets.clone(),
                    start_s.rem_euclid(week),
                    end_s - start_s,
                    end.subsec_nanosecond() != 0,
                )));
        if fresh {
            out.push(start);
            // Boundaries up to `end`: through its whole second when `end` has a fraction (the piece between
            // that second and `end` has a state of its own).
            let limit = (end_s + i64::from(end.subsec_nanosecond() != 0)).min(start_s + week + 1);
            for off in &offsets {
                let off = *off;
                let first_day = (start_s + off).div_euclid(86_400);
                let last_day = (limit + off).div_euclid(86_400);
                for day in first_day..=last_day {
                    for &bd in boundaries {
                        let t = day * 86_400 + bd - off;
                        if t > start_s && t < limit {
                            if let Some(ts) = Moment::from_second(t) {
                                if ts > start && ts < end {
                                    out.push(ts);
                                }
                            }
                        }
                    }
                }
            }
            if long {
                walked.insert(offsets);
            }
        }
        if end >= b {
            break;
        }
        start = end;
    }
    out
}

#[cfg(test)]
#[path = "partition_tests.rs"]
mod tests;
