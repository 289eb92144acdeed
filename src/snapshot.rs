//! The immutable, compiled policy set that decisions read, and the lock-free store that swaps it.
//!
//! A [`Snapshot`] is built whole by `compile::build` (or `compile::build_cached`, the reloader's) and never
//! changes; the query plan's plain classes, derived from it, are found once, on first use. [`SnapshotStore`]
//! publishes it with `arc-swap`: readers take one `load_full()` per call and never block writers or each other,
//! and a reader always sees one complete snapshot, old or new, never a mix.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwapOption;
use jiff::Timestamp;

use crate::diag::Diagnostics;
use crate::ir::plain::PlainClasses;
use crate::ir::Compiled;

/// One compiled, validated policy set.
#[derive(Debug)]
pub struct Snapshot {
    /// Content hash of the files it was built from.
    pub revision: String,
    pub loaded_at: Timestamp,
    pub compiled: Compiled,
    /// Warnings found while building (never errors).
    pub warnings: Diagnostics,
    /// The plain classes the query plan reads, found on first use (see `ir::plain`).
    plain: OnceLock<PlainClasses>,
    /// Whether a plan asked for them (set before they are found).
    plain_asked: AtomicBool,
}

impl Snapshot {
    pub fn new(revision: String, compiled: Compiled, warnings: Diagnostics) -> Self {
        Snapshot {
            revision,
            loaded_at: Timestamp::now(),
            compiled,
            warnings,
            plain: OnceLock::new(),
            plain_asked: AtomicBool::new(false),
        }
    }

    /// The plain classes of the set, found on the first call (a plan request that arrives meanwhile waits for
    /// them). The reloader finds them for each new snapshot off the executor when plans were asked of the one it
    /// replaces.
    pub(crate) fn plain_classes(&self) -> &PlainClasses {
        self.plain_asked.store(true, Ordering::Relaxed);
        self.plain
            .get_or_init(|| PlainClasses::build(&self.compiled, crate::ir::plain::MIN_CLASS))
    }

    /// Whether the plain classes have been found (not while they are being found).
    #[cfg(test)]
    pub(crate) fn has_plain_classes(&self) -> bool {
        self.plain.get().is_some()
    }

    /// Whether the plain classes were asked for, found yet or not: plans are made on this snapshot.
    pub(crate) fn plain_classes_asked(&self) -> bool {
        self.plain_asked.load(Ordering::Relaxed)
    }

    pub fn policy_count(&self) -> usize {
        self.compiled.policies.len()
    }

    pub fn attachment_count(&self) -> usize {
        self.compiled.attachments.len()
    }

    pub fn group_count(&self) -> usize {
        self.compiled.groups.len()
    }
}

/// The current snapshot, swapped atomically. Empty until the first successful load.
#[derive(Debug, Default)]
pub struct SnapshotStore {
    current: ArcSwapOption<Snapshot>,
}

impl SnapshotStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(snapshot: Snapshot) -> Self {
        let store = Self::new();
        store.publish(Arc::new(snapshot));
        store
    }

    /// The current snapshot: one atomic load, no lock.
    #[inline]
    pub fn load(&self) -> Option<Arc<Snapshot>> {
        self.current.load_full()
    }

    /// Replaces the current snapshot; readers in flight keep the one they loaded. Returns the previous one, so
    /// that the caller can drop it off the hot path (dropping 10,000 compiled policies takes milliseconds).
    pub fn publish(&self, snapshot: Arc<Snapshot>) -> Option<Arc<Snapshot>> {
        self.current.swap(Some(snapshot))
    }
}
