//! Compiled conditions (IR): operators with their values checked, parsed and pre-built once (globs, CIDRs, time
//! windows, zones, instants, `${...}` references), so evaluation never parses anything.

use std::sync::Arc;

use ipnet::IpNet;
use jiff::tz::TimeZone;
use crate::moment::Moment;

use super::glob::Glob;
use super::path::AttrPath;
use crate::ast::OpName;
use crate::diag::Pos;

/// A literal value of a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Str(Box<str>),
    Num(f64),
    Bool(bool),
}

/// A `values` element: a literal, or a reference to another attribute of the same request.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Lit(Lit),
    Ref(AttrPath),
}

/// The single numeric operand of `lt`, `le`, `gt`, `ge`.
#[derive(Debug, Clone, PartialEq)]
pub enum NumArg {
    Num(f64),
    Ref(AttrPath),
}

/// The single instant operand of `before` and `after`.
#[derive(Debug, Clone, PartialEq)]
pub enum TimeArg {
    At(Moment),
    Ref(AttrPath),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
}

/// A half-open window `[start, end)` in seconds after local midnight; `start > end` wraps midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: u32,
    pub end: u32,
}

impl Window {
    pub fn contains(&self, second_of_day: u32) -> bool {
        if self.start < self.end {
            self.start <= second_of_day && second_of_day < self.end
        } else {
            second_of_day >= self.start || second_of_day < self.end
        }
    }
}

/// An operator with its compiled values.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Equals(Box<[Operand]>),
    ContainsAll(Box<[Operand]>),
    StartsWith(Box<[Operand]>),
    EndsWith(Box<[Operand]>),
    Glob(Arc<[Glob]>),
    Compare(Cmp, NumArg),
    Before(TimeArg),
    After(TimeArg),
    TimeOfDay(Box<[Window]>, TimeZone),
    /// Bit `n` set for weekday `n`, Monday = 0.
    Weekday(u8, TimeZone),
    Cidr(Box<[IpNet]>),
    Exists,
    IsTrue,
}

/// A compiled condition.
#[derive(Debug, Clone)]
pub struct Condition {
    pub path: AttrPath,
    pub op_name: OpName,
    pub op: Op,
    pub negate: bool,
    pub pos: Pos,
    /// The zone as written (for explanations and the simulator); UTC when absent.
    pub zone_text: Option<Box<str>>,
}

impl Condition {
    /// Every `${...}` reference among the values.
    pub fn references(&self) -> Vec<&AttrPath> {
        let mut out = Vec::new();
        match &self.op {
            Op::Equals(v) | Op::ContainsAll(v) | Op::StartsWith(v) | Op::EndsWith(v) => {
                out.extend(v.iter().filter_map(|o| match o {
                    Operand::Ref(p) => Some(p),
                    Operand::Lit(_) => None,
                }))
            }
            Op::Compare(_, NumArg::Ref(p))
            | Op::Before(TimeArg::Ref(p))
            | Op::After(TimeArg::Ref(p)) => out.push(p),
            _ => {}
        }
        out
    }
}

pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
