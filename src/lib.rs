//! Arbiter: an ABAC policy decision point implementing the CipherTrust Manager model.
//!
//! Embedded use goes through a small façade: [`Engine`] (a compiled policy set: [`Engine::from_dir`],
//! [`Engine::from_sources`], [`Engine::decide`], [`Engine::decide_batch`]), [`Request`] (built with
//! [`Request::builder`], no JSON needed), [`Decision`], [`ReloadingEngine`] (follows a directory with the
//! sidecar's reload code; feature `server`), [`simulate()`] (the lockout simulator) and one [`Error`].
//!
//! Features: `server` (the gRPC sidecar, hot reload, metrics; tonic, hyper, notify, the Prometheus exporter) and
//! `cli` (the `arbiter` binary; clap), both on by default. `default-features = false` builds the library alone.
//!
//! ```
//! let engine = arbiter::Engine::from_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))?;
//! let request = arbiter::Request::builder("alice")
//!     .action("CreateKey")
//!     .resource("kylo:kylo:vault:keys:k1")
//!     .build()?;
//! let decision = engine.decide(&request);
//! assert!(decision.allowed);
//! assert_eq!(decision.policies, ["create-key-all-users".into()]);
//! # Ok::<(), arbiter::Error>(())
//! ```
//!
//! The modules below the façade are hidden from the documentation and are not a stable API: they stay public
//! only for this crate's own integration tests, benchmarks and fuzz targets.
//!
//! Data flows one way: files → `load` → `source` / `parse` → `validate` → `compile` (IR and index) → `snapshot`
//! → `eval` → gRPC server / CLI, with `engine` as the façade. The simulator reuses compile and evaluate.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[doc(hidden)]
pub mod ast;
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod cli;
#[doc(hidden)]
pub mod compile;
#[cfg(feature = "server")]
#[doc(hidden)]
pub mod decision_log;
#[doc(hidden)]
pub mod diag;
mod engine;
mod error;
#[doc(hidden)]
pub mod eval;
#[doc(hidden)]
pub mod ir;
#[doc(hidden)]
pub mod load;
#[cfg(feature = "server")]
#[doc(hidden)]
pub mod metrics;
#[doc(hidden)]
pub mod parallel;
#[doc(hidden)]
pub mod parse;
pub mod plan;
#[cfg(feature = "server")]
#[doc(hidden)]
pub mod reload;
#[doc(hidden)]
pub mod request;
#[cfg(feature = "server")]
#[doc(hidden)]
pub mod server;
#[cfg(feature = "server")]
#[doc(hidden)]
pub mod shutdown;
#[doc(hidden)]
pub mod simulate;
#[doc(hidden)]
pub mod snapshot;
#[doc(hidden)]
pub mod source;
#[doc(hidden)]
pub mod testsuite;
#[doc(hidden)]
pub mod validate;

#[doc(hidden)]
pub use compile::build;
#[cfg(feature = "server")]
pub use engine::ReloadingEngine;
pub use engine::{simulate, Engine};
pub use error::Error;
#[doc(hidden)]
pub use eval::{evaluate, EvalOptions};
pub use eval::{Decision, Explanation, Reason};
pub use plan::sql::{SqlFilter, SqlMapping};
pub use plan::{Plan, PlanKind, PlanRequest};
pub use request::Request;
pub use request::RequestBuilder;
pub use simulate::report::SimulationReport as Report;
pub use simulate::LockoutOptions as SimulateOptions;
#[doc(hidden)]
pub use snapshot::{Snapshot, SnapshotStore};

/// The superuser's default principal id.
pub const DEFAULT_SUPERUSER: &str = "admin";
