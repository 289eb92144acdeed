//! Arbiter: an ABAC policy decision point implementing the CipherTrust Manager model.
//!
//! Embedded use goes through a small façade: [`Engine`] (a compiled policy set: [`Engine::from_dir`],
//! [`Engine::from_sources`], [`Engine::decide`], [`Engine::decide_batch`]), [`Request`] (built with
//! [`Request::builder`], no JSON needed), [`RequestRef`] (a request borrowed from the caller's data, decided by
//! [`Engine::decide_ref`] with no copy), [`Decision`], [`ReloadingEngine`] (follows a directory with the
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
//! Everything below the façade is `pub(crate)`. The `internals` feature makes those modules public (and hidden
//! from the documentation) for this crate's own integration tests, benchmarks and fuzz targets; they are not an
//! API.
//!
//! Data flows one way: files → `load` → `source` / `parse` → `validate` → `compile` (IR and index) → `snapshot`
//! → `eval` → gRPC server / CLI, with `engine` as the façade. The simulator reuses compile and evaluate.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// Without `internals`, items below the façade that only the crate's own tests and benchmarks call would be
// reported unused; with it (every test build) nothing public is, so this hides no more than a test build does.
#![cfg_attr(not(feature = "internals"), allow(dead_code))]

/// Declares a module below the façade: `pub(crate)`, or public (and hidden from the documentation) with the
/// `internals` feature, which this crate's own tests, benchmarks and fuzz targets turn on. An embedder sees the
/// façade only.
macro_rules! internal {
    ($($(#[$attr:meta])* $name:ident;)*) => {$(
        $(#[$attr])*
        #[cfg(feature = "internals")]
        #[doc(hidden)]
        pub mod $name;
        $(#[$attr])*
        #[cfg(not(feature = "internals"))]
        pub(crate) mod $name;
    )*};
}

internal! {
    ast;
    attr;
    #[cfg(feature = "cli")]
    cli;
    compile;
    #[cfg(feature = "server")]
    decision_log;
    diag;
    eval;
    fmt;
    import_cm;
    ir;
    load;
    moment;
    #[cfg(feature = "server")]
    metrics;
    parallel;
    parse;
    #[cfg(feature = "server")]
    reload;
    request;
    request_ref;
    #[cfg(feature = "server")]
    server;
    #[cfg(feature = "server")]
    shutdown;
    simulate;
    snapshot;
    source;
    testsuite;
    validate;
}
mod engine;
mod error;
pub mod plan;

#[cfg(feature = "internals")]
#[doc(hidden)]
pub use compile::build;
pub use diag::{Code, Diagnostic, Diagnostics, Pos, Severity};
#[cfg(feature = "server")]
pub use engine::ReloadingEngine;
pub use engine::{simulate, Engine};
pub use error::Error;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub use eval::{evaluate, evaluate_ref, EvalOptions};
pub use eval::{
    CandidateExplanation, ConditionExplanation, Decision, Explanation, NearMiss, Reason,
    ReferenceExplanation, Truth, MAX_NEAR_MISSES,
};
pub use moment::Moment;
pub use plan::sql::{SqlFilter, SqlMapping};
pub use plan::{Plan, PlanKind, PlanRequest};
pub use request::{Request, RequestBuilder, RequestError};
pub use request_ref::{Groups, RequestRef};
pub use simulate::report::SimulationReport as Report;
pub use simulate::LockoutOptions as SimulateOptions;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub use snapshot::{Snapshot, SnapshotStore};

/// The generated gRPC types of `arbiter.v1` (messages, and the `Authorizer` client and server), for Rust
/// clients of the sidecar.
#[cfg(feature = "server")]
pub use server::proto;

/// The `arbiter` command line; the binary is this one call.
#[cfg(feature = "cli")]
#[doc(hidden)]
pub fn run_cli() -> i32 {
    cli::main()
}

/// The superuser's default principal id.
pub const DEFAULT_SUPERUSER: &str = "admin";
