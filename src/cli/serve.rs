//! `arbiter serve`: the gRPC sidecar.

use clap::Args;

use super::EXIT_INVALID;

#[derive(Debug, Args)]
pub struct ServeArgs {}

pub fn run(_args: ServeArgs) -> i32 {
    eprintln!("error: `arbiter serve` is not available in this build yet");
    EXIT_INVALID
}
