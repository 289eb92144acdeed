//! Compiling conditions: operators with their values checked, parsed and pre-built once (globs, CIDRs, time
//! windows, zones, instants, `${...}` references), so evaluation never parses anything.

use std::path::Path;

use ipnet::IpNet;
use jiff::tz::{Offset, TimeZone};

use super::glob::Glob;
use super::path::{parse_value_text, AttrPath, Field, PathError, Target, ValueText};
use crate::ast::{At, ConditionDoc, OpName, Scalar};
use crate::diag::{suggestion, Code, Diagnostic, Diagnostics, Pos};
use crate::request::parse_rfc3339;

pub use crate::ir::condition::{
    Cmp, Condition, Lit, NumArg, Op, Operand, TimeArg, Window, WEEKDAYS,
};

/// Compiles one condition; every problem is reported into `diags` at its own position.
pub fn compile_condition(
    file: &Path,
    doc: &ConditionDoc,
    diags: &mut Diagnostics,
) -> Option<Condition> {
    let op_name = doc.op.value;
    let mut c = Compiler {
        file,
        diags,
        name: op_name.as_str(),
        ok: true,
    };
    let path = match AttrPath::parse(&doc.path.value) {
        Ok(p) => Some(p),
        Err(PathError { message, help }) => {
            c.fail(
                Code::InvalidPath,
                doc.path.pos,
                format!("invalid path `{}`: {message}", doc.path.value),
                help,
            );
            None
        }
    };
    if let Some(path) = &path {
        c.warn_field_type(op_name, path, doc.path.pos);
    }
    let zone = c.zone(doc.zone.as_ref());
    if let Some(z) = &doc.zone {
        if !matches!(op_name, OpName::TimeOfDay | OpName::Weekday) {
            c.diags.push(
                Diagnostic::warning(
                    Code::UnusedZone,
                    file,
                    z.pos,
                    format!("`zone` is not read by `{}`", op_name.as_str()),
                )
                .with_help(
                    "only `time_of_day` and `weekday` read a zone; `before` and `after` compare instants, \
                     which carry their own offset. Remove `zone`",
                ),
            );
        }
    }
    let values_pos = doc.values.as_ref().map(|v| v.pos).unwrap_or(doc.pos);
    let values: &[At<Scalar>] = doc
        .values
        .as_ref()
        .map(|v| v.value.as_slice())
        .unwrap_or(&[]);
    if !c.arity(op_name, values, values_pos) {
        return None;
    }
    let zone_or_utc = || zone.clone().unwrap_or(TimeZone::UTC);
    let op = match op_name {
        OpName::Equals | OpName::ContainsAll | OpName::StartsWith | OpName::EndsWith => {
            c.value_list(op_name, values)
        }
        OpName::Glob => c.globs(values),
        OpName::Lt | OpName::Le | OpName::Gt | OpName::Ge => c.compare(op_name, &values[0])?,
        OpName::Before | OpName::After => c.instant(op_name, &values[0])?,
        OpName::TimeOfDay => c.windows(values, zone_or_utc()),
        OpName::Weekday => c.weekdays(values, zone_or_utc()),
        OpName::Cidr => c.cidrs(values),
        OpName::Exists => Op::Exists,
        OpName::IsTrue => Op::IsTrue,
    };
    if !c.ok || zone.is_none() {
        return None;
    }
    Some(Condition {
        path: path?,
        op_name,
        op,
        negate: doc.negate,
        pos: doc.pos,
        zone_text: doc.zone.as_ref().map(|z| z.value.as_str().into()),
    })
}

/// One condition being compiled: where errors go, and whether there was one. One method per operator family.
struct Compiler<'a> {
    file: &'a Path,
    diags: &'a mut Diagnostics,
    /// The operator's name, for messages.
    name: &'static str,
    ok: bool,
}

impl Compiler<'_> {
    fn fail(&mut self, code: Code, pos: Pos, message: String, help: Option<String>) {
        let mut d = Diagnostic::error(code, self.file, pos, message);
        d.help = help;
        self.diags.push(d);
        self.ok = false;
    }

    fn wrong_type(&mut self, v: &At<Scalar>, expected: &str, help: Option<String>) {
        let message = format!(
            "`{}` needs {expected}, found {} `{}`",
            self.name,
            v.value.type_name(),
            scalar_text(&v.value)
        );
        self.fail(Code::ValueType, v.pos, message, help);
    }

    /// Warns when the operator can never read a typed field (`cidr` on `environment.port`): such a condition
    /// faults whenever the field is set. A warning, not an error: a fault is a defined outcome (fail closed).
    fn warn_field_type(&mut self, op: OpName, path: &AttrPath, pos: Pos) {
        let Target::Field(field) = &path.target else {
            return;
        };
        let (kind, reads_it) = match field {
            Field::PrincipalId | Field::Action | Field::ResourceUri | Field::ResourceOwner => (
                "a string",
                !matches!(
                    op,
                    OpName::IsTrue
                        | OpName::ContainsAll
                        | OpName::Lt
                        | OpName::Le
                        | OpName::Gt
                        | OpName::Ge
                ),
            ),
            Field::PrincipalGroups => (
                "a list of strings",
                matches!(
                    op,
                    OpName::Equals
                        | OpName::ContainsAll
                        | OpName::StartsWith
                        | OpName::EndsWith
                        | OpName::Glob
                        | OpName::Exists
                ),
            ),
            Field::EnvironmentTime => (
                "an instant",
                matches!(
                    op,
                    OpName::Equals
                        | OpName::Before
                        | OpName::After
                        | OpName::TimeOfDay
                        | OpName::Weekday
                        | OpName::Exists
                ),
            ),
            Field::EnvironmentSourceIp => (
                "an IP address",
                matches!(
                    op,
                    OpName::Equals
                        | OpName::Cidr
                        | OpName::StartsWith
                        | OpName::EndsWith
                        | OpName::Glob
                        | OpName::Exists
                ),
            ),
            Field::EnvironmentPort => (
                "a number",
                matches!(
                    op,
                    OpName::Equals
                        | OpName::Lt
                        | OpName::Le
                        | OpName::Gt
                        | OpName::Ge
                        | OpName::Exists
                ),
            ),
        };
        if reads_it {
            return;
        }
        let wants = match op {
            OpName::Cidr => "an IP address (`environment.source_ip`, or an attribute holding one)",
            OpName::Before | OpName::After | OpName::TimeOfDay | OpName::Weekday => {
                "an instant (`environment.time`, or an attribute holding an RFC 3339 string)"
            }
            OpName::Lt | OpName::Le | OpName::Gt | OpName::Ge => {
                "a number (`environment.port`, or a numeric attribute)"
            }
            OpName::IsTrue => "a boolean attribute",
            OpName::ContainsAll => "a list (`principal.groups`, or a list attribute)",
            _ => "a string or a list of strings",
        };
        self.diags.push(
            Diagnostic::warning(
                Code::OperatorType,
                self.file,
                pos,
                format!(
                    "`{}` cannot read `{}`, which is {kind}: the condition faults whenever it is set",
                    self.name, path.text
                ),
            )
            .with_help(format!("`{}` reads {wants}", self.name)),
        );
    }

    /// `zone:`, UTC when absent; `None` (reported) when unknown.
    fn zone(&mut self, zone: Option<&At<String>>) -> Option<TimeZone> {
        let Some(z) = zone else {
            return Some(TimeZone::UTC);
        };
        if let Some(tz) = parse_zone(&z.value) {
            return Some(tz);
        }
        let help = if z.value.contains('/') || z.value.chars().all(|c| c.is_ascii_alphabetic()) {
            let names: Vec<_> = jiff::tz::db().available().collect();
            suggestion(&z.value, names.iter().map(|n| n.as_str())).unwrap_or_else(|| {
                "use an IANA zone name such as `Europe/Paris`, or an offset such as `+02:00`".into()
            })
        } else {
            "write the offset as `±HH:MM`, e.g. `+05:30`".into()
        };
        self.fail(
            Code::InvalidZone,
            z.pos,
            format!("unknown time zone `{}`", z.value),
            Some(help),
        );
        None
    }

    /// Every operator but `exists` and `is_true` needs values; some need exactly one.
    fn arity(&mut self, op: OpName, values: &[At<Scalar>], pos: Pos) -> bool {
        let name = self.name;
        let problem = match op {
            OpName::Exists | OpName::IsTrue if !values.is_empty() => Some((
                format!("`{name}` takes no values"),
                Some("remove `values`".into()),
            )),
            OpName::Lt | OpName::Le | OpName::Gt | OpName::Ge | OpName::Before | OpName::After
                if values.len() != 1 =>
            {
                Some((
                    format!("`{name}` takes exactly one value, found {}", values.len()),
                    None,
                ))
            }
            OpName::Exists
            | OpName::IsTrue
            | OpName::Lt
            | OpName::Le
            | OpName::Gt
            | OpName::Ge
            | OpName::Before
            | OpName::After => None,
            _ if values.is_empty() => Some((format!("`{name}` needs at least one value"), None)),
            _ => None,
        };
        match problem {
            Some((message, help)) => {
                self.fail(Code::ValueCount, pos, message, help);
                false
            }
            None => true,
        }
    }

    /// A literal, or a `${...}` reference.
    fn operand(&mut self, v: &At<Scalar>) -> Option<Operand> {
        match &v.value {
            Scalar::Str(s) => match parse_value_text(s) {
                Ok(ValueText::Literal(l)) => Some(Operand::Lit(Lit::Str(l.into()))),
                Ok(ValueText::Reference(p)) => Some(Operand::Ref(p)),
                Err(e) => {
                    self.fail(Code::InvalidReference, v.pos, e.message, e.help);
                    None
                }
            },
            Scalar::Num(n) => Some(Operand::Lit(Lit::Num(*n))),
            Scalar::Bool(b) => Some(Operand::Lit(Lit::Bool(*b))),
        }
    }

    /// `equals`, `contains_all`, `starts_with`, `ends_with`: lists of literals and references.
    fn value_list(&mut self, op: OpName, values: &[At<Scalar>]) -> Op {
        let string_only = matches!(op, OpName::StartsWith | OpName::EndsWith);
        let mut operands = Vec::new();
        for v in values {
            if string_only && !matches!(v.value, Scalar::Str(_)) {
                let help = format!("quote it: \"{}\"", scalar_text(&v.value));
                self.wrong_type(v, "string values", Some(help));
                continue;
            }
            if let Some(o) = self.operand(v) {
                operands.push(o);
            }
        }
        let operands = operands.into_boxed_slice();
        match op {
            OpName::Equals => Op::Equals(operands),
            OpName::ContainsAll => Op::ContainsAll(operands),
            OpName::StartsWith => Op::StartsWith(operands),
            _ => Op::EndsWith(operands),
        }
    }

    /// `glob`: patterns compiled once.
    fn globs(&mut self, values: &[At<Scalar>]) -> Op {
        let mut globs = Vec::new();
        for v in values {
            let Scalar::Str(s) = &v.value else {
                self.wrong_type(v, "glob patterns (strings)", None);
                continue;
            };
            if s.contains("${") {
                self.fail(
                    Code::InvalidGlob,
                    v.pos,
                    "`glob` patterns cannot hold `${...}` references".into(),
                    None,
                );
                continue;
            }
            match Glob::new(s) {
                Ok(g) => globs.push(g),
                Err(e) => self.fail(
                    Code::InvalidGlob,
                    v.pos,
                    format!("invalid glob `{s}`: {e}"),
                    None,
                ),
            }
        }
        Op::Glob(globs.into())
    }

    /// `lt`, `le`, `gt`, `ge`: one number or reference.
    fn compare(&mut self, op: OpName, v: &At<Scalar>) -> Option<Op> {
        let cmp = match op {
            OpName::Lt => Cmp::Lt,
            OpName::Le => Cmp::Le,
            OpName::Gt => Cmp::Gt,
            _ => Cmp::Ge,
        };
        let arg = match self.operand(v)? {
            Operand::Lit(Lit::Num(n)) => NumArg::Num(n),
            Operand::Ref(p) => NumArg::Ref(p),
            Operand::Lit(_) => {
                let help =
                    matches!(&v.value, Scalar::Str(s) if s.parse::<f64>().is_ok()).then(|| {
                        "remove the quotes: strings are never compared as numbers".to_string()
                    });
                self.wrong_type(v, "a number", help);
                return None;
            }
        };
        Some(Op::Compare(cmp, arg))
    }

    /// `before`, `after`: one RFC 3339 instant or reference.
    fn instant(&mut self, op: OpName, v: &At<Scalar>) -> Option<Op> {
        let arg = match self.operand(v)? {
            Operand::Lit(Lit::Str(s)) => match parse_rfc3339(&s) {
                Some(t) => TimeArg::At(t),
                None => {
                    self.fail(
                        Code::InvalidInstant,
                        v.pos,
                        format!("`{s}` is not an RFC 3339 instant"),
                        Some("write e.g. \"2027-01-01T00:00:00Z\"".into()),
                    );
                    return None;
                }
            },
            Operand::Ref(p) => TimeArg::Ref(p),
            Operand::Lit(_) => {
                self.wrong_type(v, "an RFC 3339 instant (a string)", None);
                return None;
            }
        };
        Some(if op == OpName::Before {
            Op::Before(arg)
        } else {
            Op::After(arg)
        })
    }

    /// `time_of_day`: `HH:MM-HH:MM` windows in a zone.
    fn windows(&mut self, values: &[At<Scalar>], zone: TimeZone) -> Op {
        let mut windows = Vec::new();
        for v in values {
            let Scalar::Str(s) = &v.value else {
                self.wrong_type(v, "time windows such as \"08:00-18:00\"", None);
                continue;
            };
            match parse_window(s) {
                Ok(w) => windows.push(w),
                Err(msg) => self.fail(
                    Code::InvalidWindow,
                    v.pos,
                    format!("invalid time window `{s}`: {msg}"),
                    Some(
                        "write `HH:MM-HH:MM`, e.g. `08:00-18:00`; a window may wrap midnight"
                            .into(),
                    ),
                ),
            }
        }
        Op::TimeOfDay(windows.into(), zone)
    }

    /// `weekday`: `mon` … `sun` in a zone. Values written as full or capitalised names (`monday`, `Tue`) are
    /// reported once for the whole list, with the list as it should read.
    fn weekdays(&mut self, values: &[At<Scalar>], zone: TimeZone) -> Op {
        let mut mask = 0u8;
        let mut bad = Vec::new();
        for v in values {
            let day = match &v.value {
                Scalar::Str(s) => WEEKDAYS.iter().position(|d| d == s),
                _ => None,
            };
            match day {
                Some(d) => mask |= 1 << d,
                None => bad.push(v),
            }
        }
        let spelled: Option<Vec<&str>> = bad.iter().map(|v| weekday_spelling(&v.value)).collect();
        match (bad.first(), spelled) {
            (None, _) => {}
            (Some(first), Some(_)) => {
                let found: Vec<String> = bad
                    .iter()
                    .map(|v| format!("`{}`", scalar_text(&v.value)))
                    .collect();
                let fixed: Vec<&str> = values
                    .iter()
                    .map(|v| weekday_spelling(&v.value).unwrap_or("?"))
                    .collect();
                self.fail(
                    Code::InvalidWeekday,
                    first.pos,
                    format!(
                        "weekdays are written `mon` … `sun`, found {}",
                        found.join(", ")
                    ),
                    Some(format!("write `values: [{}]`", fixed.join(", "))),
                );
            }
            (Some(_), None) => {
                for v in bad {
                    let text = scalar_text(&v.value);
                    let help = suggestion(&text.to_lowercase(), WEEKDAYS)
                        .or_else(|| Some(format!("expected one of: {}", WEEKDAYS.join(", "))));
                    self.fail(
                        Code::InvalidWeekday,
                        v.pos,
                        format!("invalid weekday `{text}`"),
                        help,
                    );
                }
            }
        }
        Op::Weekday(mask, zone)
    }

    /// `cidr`: networks with no host bits set.
    fn cidrs(&mut self, values: &[At<Scalar>]) -> Op {
        let mut nets = Vec::new();
        for v in values {
            let Scalar::Str(s) = &v.value else {
                self.wrong_type(v, "CIDR blocks (strings)", None);
                continue;
            };
            match parse_cidr(s) {
                Ok(n) => nets.push(n),
                Err((msg, help)) => self.fail(
                    Code::InvalidCidr,
                    v.pos,
                    format!("invalid CIDR `{s}`: {msg}"),
                    help,
                ),
            }
        }
        Op::Cidr(nets.into())
    }
}

/// The three-letter name a weekday value means when written in full, abbreviated or capitalised (`Monday`,
/// `tues`, `THU`); `None` when it is not a weekday at all.
fn weekday_spelling(value: &Scalar) -> Option<&'static str> {
    const FULL: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let Scalar::Str(s) = value else {
        return None;
    };
    let lower = s.trim().to_lowercase();
    (lower.len() >= 3)
        .then(|| FULL.iter().position(|f| f.starts_with(&lower)))
        .flatten()
        .map(|i| WEEKDAYS[i])
}

fn scalar_text(s: &Scalar) -> String {
    match s {
        Scalar::Str(s) => s.clone(),
        Scalar::Num(n) => n.to_string(),
        Scalar::Bool(b) => b.to_string(),
    }
}

/// `Europe/Paris`, `UTC`, or a fixed offset `±HH:MM`.
pub fn parse_zone(text: &str) -> Option<TimeZone> {
    let b = text.as_bytes();
    if b.len() == 6 && matches!(b[0], b'+' | b'-') && b[3] == b':' {
        let digits = |s: &[u8]| -> Option<i32> {
            (s.iter().all(u8::is_ascii_digit)).then(|| ((s[0] - b'0') * 10 + (s[1] - b'0')) as i32)
        };
        let (h, m) = (digits(&b[1..3])?, digits(&b[4..6])?);
        if h > 23 || m > 59 {
            return None;
        }
        let sign = if b[0] == b'-' { -1 } else { 1 };
        let offset = Offset::from_seconds(sign * (h * 3600 + m * 60)).ok()?;
        return Some(TimeZone::fixed(offset));
    }
    if text.is_empty() || text.starts_with(['+', '-']) {
        return None;
    }
    TimeZone::get(text).ok()
}

fn parse_hhmm(s: &str, allow_24: bool) -> Result<u32, String> {
    let b = s.as_bytes();
    if b.len() != 5
        || b[2] != b':'
        || !b
            .iter()
            .enumerate()
            .all(|(i, c)| i == 2 || c.is_ascii_digit())
    {
        return Err(format!("`{s}` is not HH:MM"));
    }
    let h = ((b[0] - b'0') * 10 + (b[1] - b'0')) as u32;
    let m = ((b[3] - b'0') * 10 + (b[4] - b'0')) as u32;
    if m > 59 || h > 24 || (h == 24 && (m != 0 || !allow_24)) {
        return Err(format!("`{s}` is not a time of day"));
    }
    Ok(h * 3600 + m * 60)
}

/// `HH:MM-HH:MM`; `24:00` is accepted as an end.
pub fn parse_window(s: &str) -> Result<Window, String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| "missing `-` between start and end".to_string())?;
    let start = parse_hhmm(a.trim(), false)?;
    let end = parse_hhmm(b.trim(), true)?;
    if start == end % 86_400 {
        return Err("start and end are equal".into());
    }
    Ok(Window {
        start,
        end: end % 86_400,
    })
}

/// A CIDR with no host bits set.
pub fn parse_cidr(s: &str) -> Result<IpNet, (String, Option<String>)> {
    match s.parse::<IpNet>() {
        Ok(net) if net.trunc() != net => Err((
            "host bits are set".into(),
            Some(format!("did you mean `{}`?", net.trunc())),
        )),
        Ok(net) => Ok(net),
        Err(_) => {
            let help = s.parse::<std::net::IpAddr>().ok().map(|ip| {
                format!(
                    "write a prefix length, e.g. `{ip}/{}`",
                    if ip.is_ipv4() { 32 } else { 128 }
                )
            });
            Err(("not a CIDR block".into(), help))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows() {
        let w = parse_window("08:00-18:00").unwrap();
        assert!(w.contains(8 * 3600) && w.contains(18 * 3600 - 1) && !w.contains(18 * 3600));
        let night = parse_window("22:00-06:00").unwrap();
        assert!(night.contains(23 * 3600) && night.contains(0) && !night.contains(6 * 3600));
        assert!(parse_window("08:00-08:00").is_err());
        assert!(parse_window("8:00-18:00").is_err());
        assert!(parse_window("08:60-18:00").is_err());
        assert!(parse_window("18:00-24:00").unwrap().contains(86_399));
        assert!(
            parse_window("00:00-24:00").is_err(),
            "start = end after wrapping"
        );
    }

    #[test]
    fn zones() {
        assert!(parse_zone("Europe/Paris").is_some());
        assert!(parse_zone("+05:30").is_some());
        assert!(parse_zone("-03:00").is_some());
        assert!(parse_zone("Mars/Olympus").is_none());
        assert!(parse_zone("+5:30").is_none());
    }

    #[test]
    fn cidrs() {
        assert!(parse_cidr("10.0.0.0/8").is_ok());
        assert!(parse_cidr("2001:db8::/32").is_ok());
        assert_eq!(
            parse_cidr("10.0.0.1/8").unwrap_err().1.as_deref(),
            Some("did you mean `10.0.0.0/8`?")
        );
        assert!(parse_cidr("10.0.0.1").is_err());
    }
}
