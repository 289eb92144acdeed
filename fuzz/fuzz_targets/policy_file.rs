//! Fuzz target: arbitrary bytes as a policy file, through the whole build (YAML, parse, validate, compile).
//! Must never panic, hang or exhaust memory; invalid input is diagnostics.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let set =
        arbiter::load::SourceSet::from_files([(PathBuf::from("fuzz.yaml"), text.to_string())]);
    let _ = arbiter::build(&set);
});
