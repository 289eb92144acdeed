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
//! Data flows one way: files → [`load`] → [`source`] / [`parse`] → [`validate`] → [`compile`] (IR and index)
//! → [`snapshot`] → [`eval`] → gRPC server / CLI. The simulator reuses compile and evaluate.
#![forbid(unsafe_code)]

pub mod ast;
#[cfg(feature = "cli")]
pub mod cli;
pub mod compile;
#[cfg(feature = "server")]
pub mod decision_log;
pub mod diag;
mod engine;
mod error;
pub mod eval;
pub mod load;
#[cfg(feature = "server")]
pub mod metrics;
pub mod parallel;
pub mod parse;
#[cfg(feature = "server")]
pub mod reload;
pub mod request;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod shutdown;
pub mod simulate;
pub mod snapshot;
pub mod source;
pub mod testsuite;
pub mod validate;

pub use compile::build;
#[cfg(feature = "server")]
pub use engine::ReloadingEngine;
pub use engine::{simulate, Engine};
pub use error::Error;
pub use eval::{evaluate, Decision, EvalOptions, Reason};
pub use request::Request;
pub use request::RequestBuilder;
pub use simulate::report::SimulationReport as Report;
pub use simulate::LockoutOptions as SimulateOptions;
pub use snapshot::{Snapshot, SnapshotStore};

/// The superuser's default principal id.
pub const DEFAULT_SUPERUSER: &str = "admin";
