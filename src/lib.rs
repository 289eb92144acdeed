//! Arbiter: an ABAC policy decision point implementing the CipherTrust Manager model.
//!
//! Data flows one way: files → [`load`] → [`source`] / [`parse`] → [`validate`] → [`compile`] (IR and index)
//! → [`snapshot`] → [`eval`] → gRPC server / CLI. The simulator reuses compile and evaluate.
#![forbid(unsafe_code)]

pub mod ast;
pub mod cli;
pub mod compile;
pub mod decision_log;
pub mod diag;
pub mod eval;
pub mod load;
pub mod metrics;
pub mod parallel;
pub mod parse;
pub mod reload;
pub mod request;
pub mod server;
pub mod shutdown;
pub mod simulate;
pub mod snapshot;
pub mod source;
pub mod testsuite;
pub mod validate;

pub use compile::build;
pub use eval::{evaluate, Decision, EvalOptions, Reason};
pub use request::Request;
pub use snapshot::{Snapshot, SnapshotStore};

/// The superuser's default principal id.
pub const DEFAULT_SUPERUSER: &str = "admin";
