//! Hot reload: watch the policy directory, debounce, rebuild the whole set off the executor, swap it in.
//!
//! - `notify` watches the directory (recursively, following symlinks), never single files, so editors'
//!   write-and-rename, `git checkout` and Kubernetes ConfigMap `..data` symlink swaps are all seen. Should the
//!   native watcher be unavailable, a polling watcher takes over.
//! - Events are debounced: a reload starts once the directory has been quiet for `debounce`, or at the latest
//!   `max(1 s, 10 × debounce)` after the first event of a burst, so a storm of edits still reloads regularly.
//! - A `.yaml`/`.yml` file that was written to and not yet closed holds the reload back until it is closed (or
//!   has been silent for `max(2 s, 20 × debounce)`): a writer that truncates a file and writes it in several
//!   pieces through one open file is never read half-way. (Separate processes each appending a piece cannot be
//!   told apart from finished edits; a half file that does not parse is refused like any invalid set.)
//! - The set is read, hashed, parsed, validated, compiled and lockout-checked in `spawn_blocking`. The same
//!   content as the snapshot being served is not rebuilt (its revision, a content hash, is unchanged); neither is
//!   content that already failed. On success the snapshot is published with `arc-swap` and the revision changes.
//! - A failed build keeps the last good snapshot. The failure goes to the log, to `GetStatus.last_reload_error`
//!   and to `arbiter_reloads_total{result="error"}`.
//! - The lockout check (`crate::simulate::analyze`, the simulator's own analysis) checks the guards of the set
//!   being served and of the new set against the new set, and the erosion of the guards. A finding refuses the
//!   set the same way (`arbiter_reloads_total{result="lockout"}`) unless lockouts are allowed, in which case the
//!   findings are logged as warnings and the set is published.
//! - SIGHUP (and [`ReloadRequest`]) forces a rebuild and re-creates the watch.

mod rebuild;
mod watch;

pub use rebuild::*;
pub use watch::*;
