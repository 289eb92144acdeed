//! Fuzz regression tests: owns replaying every stored fuzz input (`fuzz/seeds/<target>/`,
//! `fuzz/regressions/<target>/` and `fuzz/corpus/<target>/`) through the same code as the five cargo-fuzz
//! targets in `fuzz/fuzz_targets/` (policy_file, path_reference, patterns, eval_request, proto_request), so
//! the ordinary `cargo test` (and CI, which never runs the fuzzers) catches a panic or a broken invariant that a
//! fuzzer once found. Each target body here is a copy of its fuzz target's body: keep the two in step.

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use arbiter::compile::condition::{parse_cidr, parse_window, parse_zone};
use arbiter::compile::glob::Glob;
use arbiter::compile::path::{parse_value_text, AttrPath, ValueText};
use arbiter::server::convert::{AuthorizeInput, BatchInput};
use arbiter::server::proto::{AuthorizeBatchRequest, AuthorizeRequest};
use arbiter::{EvalOptions, Request, Snapshot};
use prost::Message;

/// The directories whose files are replayed, under `fuzz/`, each with the target's name appended.
const INPUT_DIRS: [&str; 3] = ["seeds", "regressions", "corpus"];

/// Every input file stored for `target`, sorted. Hidden files (libFuzzer's bookkeeping) are skipped. Fails when
/// there is none, so an emptied or moved directory cannot pass silently.
fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for dir in INPUT_DIRS {
        let dir = fuzz.join(dir).join(target);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry
                .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
                .path();
            let hidden = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if path.is_file() && !hidden {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(
        !files.is_empty(),
        "no fuzz inputs found for `{target}` under {}/{{{}}}/{target}",
        fuzz.display(),
        INPUT_DIRS.join(",")
    );
    files
}

/// Runs `body` on every input of `target` and fails, naming each input, if any of them panicked.
fn replay(target: &str, body: impl Fn(&[u8])) {
    let files = inputs(target);
    let mut failures = Vec::new();
    for path in &files {
        let data = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| body(&data))) {
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("(non-string panic payload)");
            failures.push(format!("{}: {message}", path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} `{target}` fuzz inputs failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

/// What a `fuzz_target!(|text: &str| ...)` receives: libFuzzer-sys hands such a target the longest valid UTF-8
/// prefix of the input (`arbitrary`'s `arbitrary_take_rest` for `&str`).
fn fuzz_str(data: &[u8]) -> &str {
    match std::str::from_utf8(data) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(&data[..e.valid_up_to()]).expect("a valid UTF-8 prefix"),
    }
}

/// `fuzz/fuzz_targets/policy_file.rs`.
#[test]
fn policy_file() {
    replay("policy_file", |data| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let set =
            arbiter::load::SourceSet::from_files([(PathBuf::from("fuzz.yaml"), text.to_string())]);
        let _ = arbiter::build(&set);
    });
}

/// `fuzz/fuzz_targets/path_reference.rs`.
#[test]
fn path_reference() {
    replay("path_reference", |data| {
        let text = fuzz_str(data);
        let _ = AttrPath::parse(text);
        if let Ok(ValueText::Reference(path)) = parse_value_text(text) {
            let _ = path.uses_action();
        }
    });
}

/// `fuzz/fuzz_targets/patterns.rs`.
#[test]
fn patterns() {
    replay("patterns", |data| {
        let text = fuzz_str(data);
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
}

/// The shipped default pack, as `fuzz/fuzz_targets/eval_request.rs` loads it.
static PACK: LazyLock<Snapshot> = LazyLock::new(|| {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let sources = arbiter::load::load_dir(&dir).expect("the default pack loads");
    arbiter::build(&sources).expect("the default pack builds")
});

/// `fuzz/fuzz_targets/eval_request.rs`.
#[test]
fn eval_request() {
    LazyLock::force(&PACK);
    replay("eval_request", |data| {
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
}

/// `fuzz/fuzz_targets/proto_request.rs`.
#[test]
fn proto_request() {
    replay("proto_request", |data| {
        if let Ok(msg) = AuthorizeRequest::decode(data) {
            let _ = AuthorizeInput::try_from(msg);
        }
        if let Ok(msg) = AuthorizeBatchRequest::decode(data) {
            let _ = BatchInput::try_from(msg);
        }
    });
}
