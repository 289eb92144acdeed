//! Compiling conditions: operators with their values checked, parsed and pre-built once (globs, CIDRs, time
//! windows, zones, instants, `${...}` references), so evaluation never parses anything.

use std::path::Path;

use ipnet::IpNet;
use jiff::tz::{Offset, TimeZone};

use super::glob::Glob;
use super::path::{parse_value_text, AttrPath, PathError, ValueText};
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
    let mut ok = true;
    let mut fail = |code: Code, pos: Pos, message: String, help: Option<String>| {
        let mut d = Diagnostic::error(code, file, pos, message);
        d.help = help;
        diags.push(d);
    };
    let path = match AttrPath::parse(&doc.path.value) {
        Ok(p) => Some(p),
        Err(PathError { message, help }) => {
            fail(
                Code::InvalidPath,
                doc.path.pos,
                format!("invalid path `{}`: {message}", doc.path.value),
                help,
            );
            None
        }
    };
    let zone = match &doc.zone {
        None => Some(TimeZone::UTC),
        Some(z) => match parse_zone(&z.value) {
            Some(tz) => Some(tz),
            None => {
                let help = if z.value.contains('/')
                    || z.value.chars().all(|c| c.is_ascii_alphabetic())
                {
                    Some("use an IANA zone name such as `Europe/Paris`, or an offset such as `+02:00`".into())
                } else {
                    Some("write the offset as `±HH:MM`, e.g. `+05:30`".into())
                };
                fail(
                    Code::InvalidZone,
                    z.pos,
                    format!("unknown time zone `{}`", z.value),
                    help,
                );
                None
            }
        },
    };
    let op_name = doc.op.value;
    let values_pos = doc.values.as_ref().map(|v| v.pos).unwrap_or(doc.pos);
    let values: &[At<Scalar>] = doc
        .values
        .as_ref()
        .map(|v| v.value.as_slice())
        .unwrap_or(&[]);
    let name = op_name.as_str();

    // Arity first: every operator but `exists` and `is_true` needs values; some need exactly one.
    match op_name {
        OpName::Exists | OpName::IsTrue => {
            if !values.is_empty() {
                fail(
                    Code::ValueCount,
                    values_pos,
                    format!("`{name}` takes no values"),
                    Some("remove `values`".into()),
                );
                ok = false;
            }
        }
        OpName::Lt | OpName::Le | OpName::Gt | OpName::Ge | OpName::Before | OpName::After => {
            if values.len() != 1 {
                fail(
                    Code::ValueCount,
                    values_pos,
                    format!("`{name}` takes exactly one value, found {}", values.len()),
                    None,
                );
                ok = false;
            }
        }
        _ => {
            if values.is_empty() {
                fail(
                    Code::ValueCount,
                    values_pos,
                    format!("`{name}` needs at least one value"),
                    None,
                );
                ok = false;
            }
        }
    }
    if !ok {
        return None;
    }

    let operand = |v: &At<Scalar>,
                   fail: &mut dyn FnMut(Code, Pos, String, Option<String>)|
     -> Option<Operand> {
        match &v.value {
            Scalar::Str(s) => match parse_value_text(s) {
                Ok(ValueText::Literal(l)) => Some(Operand::Lit(Lit::Str(l.into()))),
                Ok(ValueText::Reference(p)) => Some(Operand::Ref(p)),
                Err(e) => {
                    fail(Code::InvalidReference, v.pos, e.message, e.help);
                    None
                }
            },
            Scalar::Num(n) => Some(Operand::Lit(Lit::Num(*n))),
            Scalar::Bool(b) => Some(Operand::Lit(Lit::Bool(*b))),
        }
    };
    let wrong_type = |v: &At<Scalar>, expected: &str| {
        (
            v.pos,
            format!(
                "`{name}` needs {expected}, found {} `{}`",
                v.value.type_name(),
                scalar_text(&v.value)
            ),
        )
    };

    let op = match op_name {
        OpName::Equals | OpName::ContainsAll | OpName::StartsWith | OpName::EndsWith => {
            let string_only = matches!(op_name, OpName::StartsWith | OpName::EndsWith);
            let mut operands = Vec::new();
            for v in values {
                if string_only && !matches!(v.value, Scalar::Str(_)) {
                    let (pos, msg) = wrong_type(v, "string values");
                    fail(
                        Code::ValueType,
                        pos,
                        msg,
                        Some(format!("quote it: \"{}\"", scalar_text(&v.value))),
                    );
                    ok = false;
                    continue;
                }
                match operand(v, &mut fail) {
                    Some(o) => operands.push(o),
                    None => ok = false,
                }
            }
            let operands = operands.into_boxed_slice();
            match op_name {
                OpName::Equals => Op::Equals(operands),
                OpName::ContainsAll => Op::ContainsAll(operands),
                OpName::StartsWith => Op::StartsWith(operands),
                _ => Op::EndsWith(operands),
            }
        }
        OpName::Glob => {
            let mut globs = Vec::new();
            for v in values {
                let Scalar::Str(s) = &v.value else {
                    let (pos, msg) = wrong_type(v, "glob patterns (strings)");
                    fail(Code::ValueType, pos, msg, None);
                    ok = false;
                    continue;
                };
                if s.contains("${") {
                    fail(
                        Code::InvalidGlob,
                        v.pos,
                        "`glob` patterns cannot hold `${...}` references".into(),
                        None,
                    );
                    ok = false;
                    continue;
                }
                match Glob::new(s) {
                    Ok(g) => globs.push(g),
                    Err(e) => {
                        fail(
                            Code::InvalidGlob,
                            v.pos,
                            format!("invalid glob `{s}`: {e}"),
                            None,
                        );
                        ok = false;
                    }
                }
            }
            Op::Glob(globs.into())
        }
        OpName::Lt | OpName::Le | OpName::Gt | OpName::Ge => {
            let cmp = match op_name {
                OpName::Lt => Cmp::Lt,
                OpName::Le => Cmp::Le,
                OpName::Gt => Cmp::Gt,
                _ => Cmp::Ge,
            };
            let v = &values[0];
            let arg = match operand(v, &mut fail) {
                Some(Operand::Lit(Lit::Num(n))) => Some(NumArg::Num(n)),
                Some(Operand::Ref(p)) => Some(NumArg::Ref(p)),
                Some(Operand::Lit(_)) => {
                    let (pos, msg) = wrong_type(v, "a number");
                    let help =
                        matches!(&v.value, Scalar::Str(s) if s.parse::<f64>().is_ok()).then(|| {
                            "remove the quotes: strings are never compared as numbers".to_string()
                        });
                    fail(Code::ValueType, pos, msg, help);
                    None
                }
                None => None,
            };
            match arg {
                Some(a) => Op::Compare(cmp, a),
                None => return None,
            }
        }
        OpName::Before | OpName::After => {
            let v = &values[0];
            let arg = match operand(v, &mut fail) {
                Some(Operand::Lit(Lit::Str(s))) => match parse_rfc3339(&s) {
                    Some(t) => Some(TimeArg::At(t)),
                    None => {
                        fail(
                            Code::InvalidInstant,
                            v.pos,
                            format!("`{s}` is not an RFC 3339 instant"),
                            Some("write e.g. \"2027-01-01T00:00:00Z\"".into()),
                        );
                        None
                    }
                },
                Some(Operand::Ref(p)) => Some(TimeArg::Ref(p)),
                Some(Operand::Lit(_)) => {
                    let (pos, msg) = wrong_type(v, "an RFC 3339 instant (a string)");
                    fail(Code::ValueType, pos, msg, None);
                    None
                }
                None => None,
            };
            match (arg, op_name) {
                (Some(a), OpName::Before) => Op::Before(a),
                (Some(a), _) => Op::After(a),
                (None, _) => return None,
            }
        }
        OpName::TimeOfDay => {
            let mut windows = Vec::new();
            for v in values {
                match &v.value {
                    Scalar::Str(s) => match parse_window(s) {
                        Ok(w) => windows.push(w),
                        Err(msg) => {
                            fail(Code::InvalidWindow, v.pos, format!("invalid time window `{s}`: {msg}"), Some(
                                "write `HH:MM-HH:MM`, e.g. `08:00-18:00`; a window may wrap midnight".into(),
                            ));
                            ok = false;
                        }
                    },
                    _ => {
                        let (pos, msg) = wrong_type(v, "time windows such as \"08:00-18:00\"");
                        fail(Code::ValueType, pos, msg, None);
                        ok = false;
                    }
                }
            }
            Op::TimeOfDay(windows.into(), zone.clone().unwrap_or(TimeZone::UTC))
        }
        OpName::Weekday => {
            let mut mask = 0u8;
            for v in values {
                let day = match &v.value {
                    Scalar::Str(s) => WEEKDAYS.iter().position(|d| d == s),
                    _ => None,
                };
                match day {
                    Some(d) => mask |= 1 << d,
                    None => {
                        let text = scalar_text(&v.value);
                        let help = suggestion(&text.to_lowercase(), WEEKDAYS)
                            .or_else(|| Some(format!("expected one of: {}", WEEKDAYS.join(", "))));
                        fail(
                            Code::InvalidWeekday,
                            v.pos,
                            format!("invalid weekday `{text}`"),
                            help,
                        );
                        ok = false;
                    }
                }
            }
            Op::Weekday(mask, zone.clone().unwrap_or(TimeZone::UTC))
        }
        OpName::Cidr => {
            let mut nets = Vec::new();
            for v in values {
                let Scalar::Str(s) = &v.value else {
                    let (pos, msg) = wrong_type(v, "CIDR blocks (strings)");
                    fail(Code::ValueType, pos, msg, None);
                    ok = false;
                    continue;
                };
                match parse_cidr(s) {
                    Ok(n) => nets.push(n),
                    Err((msg, help)) => {
                        fail(
                            Code::InvalidCidr,
                            v.pos,
                            format!("invalid CIDR `{s}`: {msg}"),
                            help,
                        );
                        ok = false;
                    }
                }
            }
            Op::Cidr(nets.into())
        }
        OpName::Exists => Op::Exists,
        OpName::IsTrue => Op::IsTrue,
    };
    if !ok || zone.is_none() {
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
