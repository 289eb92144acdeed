//! A plain reference for conditions: three-valued, read from the flattened request (one JSON tree with the typed
//! fields under their reserved names), with globs as regular expressions and instants by regular expression.
//! Written from SPEC section 1 apart from the engine; the differential and the query-plan tests judge by it.

use regex::Regex;
use serde_json::Value;

/// A condition as written in a policy file.
#[derive(Debug, Clone)]
pub struct Cond {
    pub path: String,
    pub op: String,
    pub values: Vec<Value>,
    pub negate: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum T3 {
    T,
    F,
    Unknown,
    Fault,
}

pub fn glob_regex(pattern: &str) -> Regex {
    thread_local! {
        static CACHE: std::cell::RefCell<std::collections::HashMap<String, Regex>> = Default::default();
    }
    CACHE.with(|c| {
        c.borrow_mut()
            .entry(pattern.to_string())
            .or_insert_with(|| {
                let parts: Vec<String> = pattern.split('*').map(regex::escape).collect();
                Regex::new(&format!("^{}$", parts.join(".*"))).unwrap()
            })
            .clone()
    })
}

/// The value at a dotted path of the flattened request (`${action}` is the request's action, one segment).
pub fn lookup<'a>(flat: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.replace("${action}", "\u{0}");
    let segments: Vec<&str> = path.split('.').collect();
    lookup_segments(flat, &segments)
}

/// The value at a path given segment by segment.
pub fn lookup_segments<'a>(flat: &'a Value, segments: &[&str]) -> Option<&'a Value> {
    let action = flat["action"].as_str().unwrap_or("");
    let mut cur = flat;
    for seg in segments {
        let key = if *seg == "\u{0}" { action } else { seg };
        cur = cur.as_object()?.get(key)?;
    }
    (!cur.is_null()).then_some(cur)
}

pub fn elements(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    }
}

pub fn num_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// One condition, three-valued, read the plain way from the flattened request (`segments` overrides how the
/// path splits, for attribute names that hold a dot).
pub fn condition(c: &Cond, segments: Option<&[&str]>, flat: &Value) -> T3 {
    let attr = match segments {
        Some(s) => lookup_segments(flat, s),
        None => lookup(flat, &c.path),
    };
    if c.op == "exists" {
        let t = if attr.is_some() { T3::T } else { T3::F };
        return negate(t, c.negate);
    }
    let Some(attr) = attr else { return T3::Unknown };
    // Resolve values; a missing reference is unknown.
    let mut values = Vec::new();
    let mut ref_to_map = false;
    for v in c.values.iter() {
        match v
            .as_str()
            .and_then(|s| s.strip_prefix("${"))
            .and_then(|s| s.strip_suffix('}'))
        {
            Some(path) => match lookup(flat, path) {
                None => return T3::Unknown,
                Some(r) if r.is_object() => ref_to_map = true,
                Some(r) => values.extend(elements(r).into_iter().cloned()),
            },
            None => values.push(v.clone()),
        }
    }
    // Missing is decided before type: only with every reference present does a map make it a fault.
    if ref_to_map {
        return negate(T3::Fault, c.negate);
    }
    let b = |x: bool| if x { T3::T } else { T3::F };
    let t = match c.op.as_str() {
        "equals" if c.path == "environment.source_ip" => {
            // Read as an IP: IPv4-mapped addresses compare as IPv4.
            let ip = |v: &Value| {
                v.as_str()
                    .and_then(|s| s.parse::<std::net::IpAddr>().ok())
                    .map(|ip| ip.to_canonical())
            };
            b(values.iter().any(|v| ip(v).is_some() && ip(v) == ip(attr)))
        }
        "before" | "after" => match (
            reference_instant(attr),
            values.first().and_then(reference_instant),
        ) {
            (Some(a), Some(v)) => b(if c.op == "before" { a < v } else { a > v }),
            _ => T3::Fault,
        },
        "equals" => {
            if attr.is_object() {
                T3::Fault
            } else {
                b(elements(attr)
                    .iter()
                    .any(|a| values.iter().any(|v| num_eq(a, v))))
            }
        }
        "contains_all" => match attr {
            Value::Array(items) => b(values.iter().all(|v| items.iter().any(|a| num_eq(a, v)))),
            _ => T3::Fault,
        },
        "starts_with" | "ends_with" | "glob" => {
            let els = elements(attr);
            let hit = els.iter().any(|a| {
                a.as_str().is_some_and(|s| {
                    values
                        .iter()
                        .filter_map(Value::as_str)
                        .any(|v| match c.op.as_str() {
                            "starts_with" => s.starts_with(v),
                            "ends_with" => s.ends_with(v),
                            _ => glob_regex(v).is_match(s),
                        })
                })
            });
            // A value that is not a string (a `${...}` to a number) is a fault once a string is compared to it.
            let bad_value = values.iter().any(|v| !v.is_string());
            if hit {
                T3::T
            } else if els.iter().any(|a| !a.is_string()) || (bad_value && !els.is_empty()) {
                T3::Fault
            } else {
                T3::F
            }
        }
        "lt" | "le" | "gt" | "ge" => {
            match (attr.as_f64(), values.first().and_then(Value::as_f64)) {
                (Some(a), Some(v)) => b(match c.op.as_str() {
                    "lt" => a < v,
                    "le" => a <= v,
                    "gt" => a > v,
                    _ => a >= v,
                }),
                _ => T3::Fault,
            }
        }
        "is_true" => match attr {
            Value::Bool(x) => b(*x),
            _ => T3::Fault,
        },
        "cidr" => match attr
            .as_str()
            .and_then(|s| s.parse::<std::net::IpAddr>().ok())
        {
            Some(ip) => {
                let ip = ip.to_canonical();
                b(values.iter().any(|v| {
                    let net: ipnet::IpNet = v.as_str().unwrap().parse().unwrap();
                    net.contains(&ip)
                }))
            }
            None => T3::Fault,
        },
        other => panic!("reference does not know {other}"),
    };
    negate(t, c.negate)
}

/// Strict RFC 3339, read the plain way: the grammar by regular expression, `:60` as `:59`, fraction digits past
/// nanoseconds dropped, years 1 to 9999 in UTC. The instant is nanoseconds since the epoch, worked out on the
/// civil calendar (which, unlike the time library's timestamps, reaches the end of year 9999).
pub fn reference_instant(v: &Value) -> Option<i128> {
    let re = Regex::new(
        r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|([+-])(\d{2}):(\d{2}))$",
    )
    .unwrap();
    let caps = re.captures(v.as_str()?)?;
    let n = |i: usize| caps.get(i).map(|m| m.as_str().parse::<i32>().unwrap());
    let (hour, minute, second) = (n(4)?, n(5)?, n(6)?);
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let offset_minutes = match (n(10), n(11)) {
        (Some(h), Some(m)) if h > 23 || m > 59 => return None,
        (Some(h), Some(m)) => (h * 60 + m) * if &caps[9] == "-" { -1 } else { 1 },
        _ => 0,
    };
    let mut fraction: String = caps
        .get(7)
        .map_or("", |m| &m.as_str()[1..])
        .chars()
        .take(9)
        .collect();
    while fraction.len() < 9 {
        fraction.push('0');
    }
    let date = jiff::civil::Date::new(n(1)? as i16, n(2)? as i8, n(3)? as i8).ok()?;
    let local = date.at(
        hour as i8,
        minute as i8,
        second.min(59) as i8,
        fraction.parse().unwrap(),
    );
    let epoch = jiff::civil::date(1970, 1, 1).at(0, 0, 0, 0);
    let nanos =
        local.duration_since(epoch).as_nanos() - i128::from(offset_minutes) * 60_000_000_000;
    let first = jiff::civil::date(1, 1, 1)
        .at(0, 0, 0, 0)
        .duration_since(epoch)
        .as_nanos();
    let last = jiff::civil::date(9999, 12, 31)
        .at(23, 59, 59, 999_999_999)
        .duration_since(epoch)
        .as_nanos();
    (first..=last).contains(&nanos).then_some(nanos)
}

pub fn negate(t: T3, n: bool) -> T3 {
    match (t, n) {
        (T3::T, true) => T3::F,
        (T3::F, true) => T3::T,
        (t, _) => t,
    }
}
