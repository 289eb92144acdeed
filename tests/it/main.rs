//! The integration tests, in one binary (one link of the crate and its server stack instead of one per file):
//! each module is one area, and `common` holds the helpers they share (a server harness on an ephemeral port,
//! request builders, bounded waits). `tests/metrics.rs` is the one apart: the metrics recorder is process-wide.

mod author;
mod cli;
mod common;
mod deploy;
mod doors_ext_authz;
mod doors_http;
mod doors_nginx;
mod doors_tokens;
mod doors_uds;
mod engine_api;
mod engine_diagnostics;
mod engine_differential;
mod engine_incremental;
mod engine_index;
mod engine_semantics;
mod fmt;
mod fuzz_regressions;
mod hardening_concurrency;
mod hardening_fail_closed;
mod hardening_limits;
mod hardening_reload_faults;
mod hardening_tls;
mod hardening_transport;
mod import_cm;
mod plan_api;
mod plan_sqlite;
mod schema;
mod server_cli;
mod server_grpc;
mod server_grpc_exchange;
mod server_reload;
mod simulate_lockout;
mod simulate_property;
