//! The finite partition the lockout search explores: the request variables that reachable policies read, and
//! for each one the representative values that the policies' own literals induce.
//!
//! Strings get one witness per achievable combination of the patterns applied to them (literals, prefixes,
//! suffixes, globs: so `starts_with a` with `ends_with z` yields `a…z`) plus "absent"; numbers each side of
//! each literal; instants ±1 s; IPs inside and outside each CIDR in both families; lists subsets of their
//! literals; `${...}` relations the equal and not-equal arrangements. The shared time variable gets one instant
//! in every cell of the timeline's partition, never before `as_of`: cut at each instant literal (±1 s), then at
//! every daylight-saving transition of every involved zone, and within each piece at every window boundary in
//! every zone and on each weekday (see `time_points`). Attribute variables also get a mistyped value (a map) to
//! reach faults. A variable whose partition is too large to cover reports so (`Choices::complete`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};

use super::witness::{witnesses, Pattern};
use crate::compile::condition::{Condition, Lit, NumArg, Op, Operand, TimeArg};
use crate::compile::path::{AttrPath, Field, Part, Segment, Target};

/// A request variable: something a condition or selector reads that the guard does not fix.
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

/// A value a variable may take in a counterexample.
#[derive(Debug, Clone, PartialEq)]
pub enum Choice {
    Absent,
    Json(Value),
    Ip(IpAddr),
    Time(Timestamp),
}

/// What the fixed part of a request is for one search: the values references to fixed fields resolve to.
pub struct Fixed<'a> {
    pub principal_id: &'a str,
    pub groups: &'a [String],
    pub action: &'a str,
    pub uri: &'a str,
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

/// The value of a fixed field, as JSON elements, for references to it.
fn fixed_values(path: &AttrPath, fixed: &Fixed) -> Vec<Value> {
    match &path.target {
        Target::Field(Field::PrincipalId) => vec![json!(fixed.principal_id)],
        Target::Field(Field::PrincipalGroups) => fixed.groups.iter().map(|g| json!(g)).collect(),
        Target::Field(Field::Action) => vec![json!(fixed.action)],
        Target::Field(Field::ResourceUri) => vec![json!(fixed.uri)],
        _ => Vec::new(),
    }
}

/// Everything the policies say about one variable.
#[derive(Debug, Clone, Default)]
pub struct Uses {
    patterns: Vec<Pattern>,
    strings: Vec<String>,
    numbers: Vec<f64>,
    bools: bool,
    instants: Vec<Timestamp>,
    cidrs: Vec<IpNet>,
    list: bool,
    windows: Vec<(u32, u32, TimeZone)>,
    weekday_zones: Vec<TimeZone>,
    /// Variables whose values this one is compared with.
    pub related: Vec<Var>,
    /// Claim values a selector accepts.
    selector_values: Vec<Value>,
}

impl Uses {
    /// Records what one condition on this variable needs. `fixed` resolves references to fixed fields.
    pub fn add_condition(&mut self, c: &Condition, fixed: &Fixed) {
        let operands = |ops: &[Operand], this: &mut Uses, as_pattern: fn(&str) -> Pattern| {
            for o in ops {
                match o {
                    Operand::Lit(Lit::Str(s)) => {
                        this.patterns.push(as_pattern(s));
                        this.strings.push(s.to_string());
                    }
                    Operand::Lit(Lit::Num(n)) => this.numbers.push(*n),
                    Operand::Lit(Lit::Bool(_)) => this.bools = true,
                    Operand::Ref(p) => match var_of(p, fixed.action) {
                        Some(v) => this.related.push(v),
                        None => {
                            for v in fixed_values(p, fixed) {
                                if let Value::String(s) = &v {
                                    this.patterns.push(as_pattern(s));
                                    this.strings.push(s.clone());
                                }
                            }
                            if matches!(&p.target, Target::Field(Field::PrincipalGroups)) {
                                this.list = true;
                            }
                        }
                    },
                }
            }
        };
        match &c.op {
            Op::Equals(ops) => operands(ops, self, Pattern::literal),
            Op::ContainsAll(ops) => {
                self.list = true;
                operands(ops, self, Pattern::literal)
            }
            Op::StartsWith(ops) => operands(ops, self, Pattern::prefix),
            Op::EndsWith(ops) => operands(ops, self, Pattern::suffix),
            Op::Glob(globs) => self
                .patterns
                .extend(globs.iter().map(|g| Pattern::glob(g.as_str()))),
            Op::Compare(_, NumArg::Num(n)) => self.numbers.push(*n),
            Op::Compare(_, NumArg::Ref(p)) => {
                self.numbers.push(0.0);
                if let Some(v) = var_of(p, fixed.action) {
                    self.related.push(v);
                }
            }
            Op::Before(a) | Op::After(a) => match a {
                TimeArg::At(t) => self.instants.push(*t),
                TimeArg::Ref(p) => {
                    if let Some(v) = var_of(p, fixed.action) {
                        self.related.push(v);
                    }
                }
            },
            Op::TimeOfDay(ws, z) => self
                .windows
                .extend(ws.iter().map(|w| (w.start, w.end, z.clone()))),
            Op::Weekday(_, z) => self.weekday_zones.push(z.clone()),
            Op::Cidr(nets) => self.cidrs.extend(nets.iter().copied()),
            Op::IsTrue => self.bools = true,
            Op::Exists => {}
        }
    }

    /// Records that this variable is a `${...}` operand of a condition on the fixed field `path` (say
    /// `resource.uri equals ${resource.name}`): the field's pinned values become this variable's literals, so the
    /// equal arrangement is tried (and "some other value" gives the not-equal one).
    pub fn add_fixed_counterpart(&mut self, path: &AttrPath, fixed: &Fixed) {
        for v in fixed_values(path, fixed) {
            if let Value::String(s) = v {
                self.patterns.push(Pattern::literal(&s));
                self.strings.push(s);
            }
        }
        if matches!(&path.target, Target::Field(Field::PrincipalGroups)) {
            self.list = true;
        }
    }

    pub fn add_selector_values(&mut self, values: &[Lit]) {
        for v in values {
            self.selector_values.push(match v {
                Lit::Str(s) => json!(s.to_string()),
                Lit::Num(n) => json!(n),
                Lit::Bool(b) => json!(b),
            });
        }
    }
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

/// The representative values of one variable.
#[derive(Debug, Clone, Default)]
pub struct Choices {
    pub values: Vec<Choice>,
    /// False when the values do not cover the whole partition (a witness search ran out of states): the analysis
    /// is then inconclusive, never safe.
    pub complete: bool,
}

/// The representative values of a variable. `related` are the values already chosen for variables it is
/// compared with (so equal and not-equal arrangements are both tried).
pub fn choices(var: &Var, uses: &Uses, related: &[Choice], as_of: Timestamp) -> Choices {
    let complete = |values, complete| Choices { values, complete };
    let mut out: Vec<Choice> = Vec::new();
    let push = |c: Choice, out: &mut Vec<Choice>| {
        if !out.contains(&c) {
            out.push(c);
        }
    };
    match var {
        Var::Time => {
            let (points, covered) = time_points(uses, related, as_of);
            return complete(points.into_iter().map(Choice::Time).collect(), covered);
        }
        Var::SourceIp => {
            push(Choice::Absent, &mut out);
            for ip in ip_points(&uses.cidrs) {
                push(Choice::Ip(ip), &mut out);
            }
            for r in related {
                if let Choice::Ip(_) = r {
                    push(r.clone(), &mut out);
                }
            }
            return complete(out, true);
        }
        Var::Port => {
            push(Choice::Absent, &mut out);
            for n in number_points(&uses.numbers, related) {
                if (1.0..=65_535.0).contains(&n) && n.fract() == 0.0 {
                    push(Choice::Json(json!(n as u64)), &mut out);
                }
            }
            push(Choice::Json(json!(443)), &mut out);
            return complete(out, true);
        }
        Var::Owner | Var::Attr(..) => {}
    }
    push(Choice::Absent, &mut out);
    // Strings: one witness per combination of the patterns, plus the literals and related values themselves.
    let mut related_strings: Vec<String> = Vec::new();
    for r in related {
        if let Choice::Json(v) = r {
            for e in json_elements(v) {
                if let Value::String(s) = e {
                    related_strings.push(s.clone());
                }
            }
        }
    }
    let mut patterns = uses.patterns.clone();
    patterns.extend(related_strings.iter().map(|s| Pattern::literal(s)));
    for s in uses.strings.iter().chain(&related_strings) {
        push(Choice::Json(json!(s)), &mut out);
    }
    for sv in &uses.selector_values {
        push(Choice::Json(sv.clone()), &mut out);
    }
    let w = witnesses(&Pattern::glob("*"), &patterns, false, 4_000);
    let covered = w.complete;
    for (_, s) in w.by_vector {
        push(Choice::Json(json!(s)), &mut out);
    }
    if matches!(var, Var::Owner) {
        return complete(out, covered);
    }
    // Other types.
    let related_numbers: Vec<Choice> = related
        .iter()
        .filter(|r| matches!(r, Choice::Json(Value::Number(_))))
        .cloned()
        .collect();
    if !uses.numbers.is_empty() || !related_numbers.is_empty() {
        for n in number_points(&uses.numbers, &related_numbers) {
            push(Choice::Json(json!(n)), &mut out);
        }
    }
    if uses.bools {
        push(Choice::Json(json!(true)), &mut out);
        push(Choice::Json(json!(false)), &mut out);
    }
    for t in &uses.instants {
        for d in [-1, 0, 1] {
            if let Ok(x) = t.checked_add(SignedDuration::from_secs(d)) {
                push(Choice::Json(json!(x.to_string())), &mut out);
            }
        }
    }
    for r in related {
        if let Choice::Time(t) = r {
            for d in [-1, 0, 1] {
                if let Ok(x) = t.checked_add(SignedDuration::from_secs(d)) {
                    push(Choice::Json(json!(x.to_string())), &mut out);
                }
            }
        }
    }
    for ip in ip_points(&uses.cidrs) {
        if !uses.cidrs.is_empty() {
            push(Choice::Json(json!(ip.to_string())), &mut out);
        }
    }
    if uses.list
        || related
            .iter()
            .any(|r| matches!(r, Choice::Json(Value::Array(_))))
    {
        let mut lits: Vec<Value> = uses.strings.iter().map(|s| json!(s)).collect();
        lits.extend(related_strings.iter().map(|s| json!(s)));
        lits.extend(uses.numbers.iter().map(|n| json!(n)));
        lits.dedup();
        for subset in subsets(&lits) {
            push(Choice::Json(Value::Array(subset)), &mut out);
        }
        push(Choice::Json(json!(["other-value"])), &mut out);
    }
    // A mistyped value: a map is a fault for every operator but `exists`.
    push(Choice::Json(json!({"_": 0})), &mut out);
    complete(out, covered)
}

fn json_elements(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    }
}

fn subsets(items: &[Value]) -> Vec<Vec<Value>> {
    let n = items.len();
    if n <= 4 {
        (0..(1u32 << n))
            .map(|mask| {
                (0..n)
                    .filter(|i| mask & (1 << i) != 0)
                    .map(|i| items[i].clone())
                    .collect()
            })
            .collect()
    } else {
        let mut out = vec![Vec::new(), items.to_vec()];
        for i in 0..n {
            out.push(vec![items[i].clone()]);
            out.push(
                items
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, v)| v.clone())
                    .collect(),
            );
        }
        out
    }
}

fn number_points(literals: &[f64], related: &[Choice]) -> Vec<f64> {
    let mut base: Vec<f64> = literals.to_vec();
    for r in related {
        if let Choice::Json(Value::Number(n)) = r {
            if let Some(f) = n.as_f64() {
                base.push(f);
            }
        }
    }
    let mut out = vec![0.0];
    for n in base {
        for d in [-1.0, -0.5, 0.0, 0.5, 1.0] {
            out.push(n + d);
        }
    }
    out.sort_by(|a, b| a.total_cmp(b));
    out.dedup();
    out
}

fn ip_points(cidrs: &[IpNet]) -> Vec<IpAddr> {
    let mut out = vec![
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1)),
    ];
    for net in cidrs {
        out.push(net.network());
        out.push(net.broadcast());
        match net {
            IpNet::V4(n) => {
                let lo = u32::from(n.network());
                let hi = u32::from(n.broadcast());
                if let Some(x) = lo.checked_sub(1) {
                    out.push(IpAddr::V4(Ipv4Addr::from(x)));
                }
                if let Some(x) = hi.checked_add(1) {
                    out.push(IpAddr::V4(Ipv4Addr::from(x)));
                }
            }
            IpNet::V6(n) => {
                let lo = u128::from(n.network());
                let hi = u128::from(n.broadcast());
                if let Some(x) = lo.checked_sub(1) {
                    out.push(IpAddr::V6(Ipv6Addr::from(x)));
                }
                if let Some(x) = hi.checked_add(1) {
                    out.push(IpAddr::V6(Ipv6Addr::from(x)));
                }
            }
        }
    }
    out.dedup();
    out
}

/// The earlier of two optional instants, `None` standing for "no limit".
fn earlier(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Most instants tried for the shared time variable; past it the partition is not covered (inconclusive).
const MAX_TIME_POINTS: usize = 50_000;

/// Instants for the shared time variable, all at or after `as_of`, one in every cell of the partition that the
/// conditions induce; `false` when the partition has more cells than [`MAX_TIME_POINTS`].
///
/// The timeline is cut at `as_of` and at each instant literal (±1 s). With no `time_of_day` or `weekday`
/// condition, those cuts are all the cells there are. Otherwise each interval between cuts is split at every
/// daylight-saving transition of every involved zone within a year of its start (offset combinations repeat
/// yearly). Inside such a segment every zone keeps one offset, so the joint state (the local time of day and the
/// weekday in every zone) repeats weekly and changes only at a window boundary or a local midnight: the segment
/// start, and every boundary (and the second before it) in every zone over the segment's first 8 local days,
/// meet every cell.
fn time_points(uses: &Uses, related: &[Choice], as_of: Timestamp) -> (Vec<Timestamp>, bool) {
    let mut instants: Vec<Timestamp> = uses.instants.clone();
    for r in related {
        match r {
            Choice::Time(t) => instants.push(*t),
            Choice::Json(Value::String(s)) => instants.extend(s.parse::<Timestamp>().ok()),
            _ => {}
        }
    }
    let mut cuts = vec![as_of];
    for t in instants {
        for d in [-1, 0, 1] {
            if let Ok(x) = t.checked_add(SignedDuration::from_secs(d)) {
                if x > as_of {
                    cuts.push(x);
                }
            }
        }
    }
    cuts.sort();
    cuts.dedup();
    if uses.windows.is_empty() && uses.weekday_zones.is_empty() {
        return (cuts, true);
    }
    let mut zones: Vec<TimeZone> = vec![TimeZone::UTC];
    for z in uses
        .windows
        .iter()
        .map(|w| &w.2)
        .chain(uses.weekday_zones.iter())
    {
        if !zones.contains(z) {
            zones.push(z.clone());
        }
    }
    // Seconds of the day where some condition may change: local midnight (weekdays) and every window boundary,
    // each with the second before it.
    let mut boundaries: Vec<u32> = vec![0, 86_399];
    for (start, end, _) in &uses.windows {
        for b in [*start, *end] {
            boundaries.push(b);
            boundaries.push((b + 86_399) % 86_400);
        }
    }
    boundaries.sort_unstable();
    boundaries.dedup();
    let times: Vec<Time> = boundaries
        .iter()
        .filter_map(|&b| Time::new((b / 3600) as i8, ((b / 60) % 60) as i8, (b % 60) as i8, 0).ok())
        .collect();
    let year = SignedDuration::from_hours(366 * 24);
    let week_and_a_day = SignedDuration::from_hours(8 * 24);
    let mut out = cuts.clone();
    for (i, &start) in cuts.iter().enumerate() {
        let end = cuts.get(i + 1).copied();
        let horizon = earlier(start.checked_add(year).ok(), end);
        let mut segments = vec![start];
        for zone in &zones {
            for transition in zone.following(start) {
                let t = transition.timestamp();
                if horizon.is_none_or(|h| t >= h) {
                    break;
                }
                segments.push(t);
            }
        }
        segments.sort();
        segments.dedup();
        for (j, &a) in segments.iter().enumerate() {
            out.push(a);
            let b = segments.get(j + 1).copied().or(end);
            let limit = earlier(a.checked_add(week_and_a_day).ok(), b);
            for zone in &zones {
                // The segment's one offset in this zone, so ambiguous local times resolve inside the segment.
                let offset = zone.to_offset(a);
                let first_day: Date = offset.to_datetime(a).date();
                for k in 0..=8 {
                    let Ok(day) = first_day.checked_add(jiff::Span::new().days(k)) else {
                        continue;
                    };
                    for &time in &times {
                        if let Ok(ts) = offset.to_timestamp(day.to_datetime(time)) {
                            if ts >= a && limit.is_none_or(|l| ts < l) {
                                out.push(ts);
                            }
                        }
                    }
                }
            }
            if out.len() > MAX_TIME_POINTS {
                out.sort();
                out.dedup();
                if out.len() > MAX_TIME_POINTS {
                    out.retain(|t| *t >= as_of);
                    return (out, false);
                }
            }
        }
    }
    out.retain(|t| *t >= as_of);
    out.sort();
    out.dedup();
    (out, true)
}
