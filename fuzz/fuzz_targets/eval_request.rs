//! Fuzz target: arbitrary JSON requests evaluated against a fixed policy set (the shipped default pack).
#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use arbiter::{EvalOptions, Request, Snapshot};
use libfuzzer_sys::fuzz_target;

static PACK: LazyLock<Snapshot> = LazyLock::new(|| {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let sources = arbiter::load::load_dir(&dir).expect("the default pack loads");
    arbiter::build(&sources).expect("the default pack builds")
});

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(request) = Request::from_json(value) else {
        return;
    };
    let options = EvalOptions {
        superuser: Some("admin"),
        explain: true,
    };
    let decision = arbiter::evaluate(&PACK, &request, jiff::Timestamp::UNIX_EPOCH, &options);
    // The superuser aside, an allow always names the allows that granted it.
    assert!(!decision.allowed || !decision.policies.is_empty());
});
