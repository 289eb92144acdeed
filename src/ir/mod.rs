//! The intermediate representation: what `compile` writes and `eval` and `simulate` read. Policies with their
//! compiled matchers and conditions, attachments with their selectors, the group directory, the lockout guards,
//! and the index over them. Nothing here parses policy files or evaluates requests.

pub mod condition;
pub mod glob;
pub mod http;
pub mod index;
pub mod path;
pub mod patterns;
pub mod plain;

use std::sync::Arc;

use crate::ast::{Effect, OpName, Origin};
use crate::diag::Pos;
use condition::{Condition, Lit};
use glob::Glob;
use index::Index;

/// A hash map with `foldhash`, for compiled lookups by policy id, group and principal id (about three times
/// faster than SipHash on short keys). Keys come from policy files; requests only look up, never insert.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub id: Arc<str>,
    pub effect: Effect,
    pub actions: Arc<[Glob]>,
    pub resources: Arc<[Glob]>,
    pub conditions: Arc<[Condition]>,
    pub origin: Origin,
}

impl Policy {
    #[inline]
    pub fn matches_action(&self, action: &str) -> bool {
        self.actions.iter().any(|g| g.matches(action))
    }

    #[inline]
    pub fn matches_resource(&self, uri: &str) -> bool {
        self.resources.iter().any(|g| g.matches(uri))
    }
}

/// What a selector key tests.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectorKey {
    Id,
    Groups,
    /// A claim in the principal's attributes; dots walk nested maps.
    Claim(Box<[Box<str>]>),
}

/// One key of a principal selector with its accepted values.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectorTest {
    pub key: SelectorKey,
    pub values: Box<[Lit]>,
}

/// A compiled principal selector: every test must match. No tests matches everyone. Shared, so that a
/// rebuild reuses the selectors of unchanged files.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Selector {
    pub tests: Arc<[SelectorTest]>,
}

/// A compiled attachment.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub id: Arc<str>,
    pub policy: u32,
    pub selector: Selector,
    pub origin: Origin,
}

/// A group from the directory.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: Arc<str>,
    pub system: bool,
    pub members: Arc<[Arc<str>]>,
    pub origin: Origin,
}

/// A compiled `must_allow` entry.
#[derive(Debug, Clone)]
pub struct GuardRule {
    pub actions: Box<[Glob]>,
    pub resources: Box<[Glob]>,
}

/// A compiled lockout guard.
#[derive(Debug, Clone)]
pub struct Guard {
    pub id: Arc<str>,
    pub principal_id: Arc<str>,
    pub groups: Box<[Arc<str>]>,
    pub must_allow: Box<[GuardRule]>,
    pub assuming: Box<[Condition]>,
    pub origin: Origin,
    /// Where the guard's principal id is written (errors about it point there).
    pub principal_pos: Pos,
    /// The assumptions as written, in a form compared as sets (for erosion): order and positions aside.
    pub assumption_keys: Box<[AssumptionKey]>,
}

/// The IR of one policy set, before it is wrapped in a snapshot.
#[derive(Debug, Clone, Default)]
pub struct Compiled {
    /// Sorted by id, so sorted indices are sorted ids.
    pub policies: Vec<Policy>,
    pub attachments: Vec<Attachment>,
    pub groups: Vec<Group>,
    pub guards: Vec<Guard>,
    /// Principal id → groups the directory gives it.
    pub membership: FastMap<Arc<str>, Box<[Arc<str>]>>,
    pub index: Index,
    /// The `HttpMapping` routes, for the HTTP doors.
    pub http: http::HttpRoutes,
}

/// An assumption of a guard as written, for comparing guards: values sorted, positions dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumptionKey {
    pub path: Box<str>,
    pub op: OpName,
    pub negate: bool,
    pub zone: Option<Box<str>>,
    /// The values as written, sorted and without repeats (`None` when `values` was not written).
    pub values: Option<Box<[String]>>,
}
