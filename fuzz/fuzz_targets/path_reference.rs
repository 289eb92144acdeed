//! Fuzz target: the attribute path parser and the `${...}` reference parser.
#![no_main]

use arbiter::compile::path::{parse_value_text, AttrPath, ValueText};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = AttrPath::parse(text);
    if let Ok(ValueText::Reference(path)) = parse_value_text(text) {
        let _ = path.uses_action();
    }
});
