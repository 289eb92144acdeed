//! Fuzz target: glob, CIDR, time-window and zone compilation, and glob matching (the first line is the pattern,
//! the rest the subject).
#![no_main]

use arbiter::compile::condition::{parse_cidr, parse_window, parse_zone};
use arbiter::compile::glob::Glob;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let (pattern, subject) = text.split_once('\n').unwrap_or((text, ""));
    if let Ok(glob) = Glob::new(pattern) {
        let _ = glob.matches(subject);
        let _ = glob.literal_prefix();
    }
    let _ = parse_cidr(pattern);
    if let Ok(window) = parse_window(pattern) {
        let _ = window.contains(subject.len() as u32 % 86_400);
    }
    let _ = parse_zone(pattern);
});
