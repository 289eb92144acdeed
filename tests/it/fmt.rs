//! `arbiter fmt`: the canonical style on a file with comments everywhere (the exact text), idempotence and
//! faithfulness on every shipped policy file (same documents, same comments, same decisions), `--check`, and the
//! files it refuses.

use std::path::Path;

use crate::common::{self, text};

fn arbiter(args: &[&str]) -> std::process::Output {
    common::arbiter(args, None)
}

const MESSY: &str = r#"# The payments keys.
---
effect: allow   # the effect first, out of order
id: pay-encrypt
kind: Policy
resources:
  - "kylo:kylo:vault:keys:pay-*"
actions:
  - EncryptWithKey
  # decryption too
  - DecryptWithKey
conditions:
  # office hours only
  - path: environment.time
    zone: Europe/Paris
    op: time_of_day
    values: ["09:00-17:00"]
  - {path: principal.mfa, op: is_true}   # a second factor
---
kind: PolicyAttachment
principal_selector:
  groups: [payments]
policy: pay-encrypt
id: 'pay-encrypt-payments'
# the end
"#;

/// The comment that sat inside the `actions` list (now one line) goes above `actions`.
const CANONICAL: &str = r#"# The payments keys.
kind: Policy
id: pay-encrypt
effect: allow # the effect first, out of order
# decryption too
actions: [EncryptWithKey, DecryptWithKey]
resources: ["kylo:kylo:vault:keys:pay-*"]
conditions:
  # office hours only
  - {path: environment.time, op: time_of_day, values: ["09:00-17:00"], zone: Europe/Paris}
  - {path: principal.mfa, op: is_true} # a second factor
---
kind: PolicyAttachment
id: pay-encrypt-payments
policy: pay-encrypt
principal_selector: {groups: [payments]}
# the end
"#;

#[test]
fn fmt_writes_the_canonical_style_and_keeps_every_comment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(&file, MESSY).unwrap();
    let out = arbiter(&["fmt", "--check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("would reformat"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        MESSY,
        "--check writes nothing"
    );

    let out = arbiter(&["fmt", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let formatted = std::fs::read_to_string(&file).unwrap();
    assert_eq!(formatted, CANONICAL);
    let out = arbiter(&["fmt", "--check", file.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "idempotent: {}",
        text(&out.stdout)
    );
}

/// Every shipped policy file, formatted in a copy: valid, idempotent, and deciding as before.
#[test]
fn fmt_is_idempotent_and_faithful_on_every_shipped_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for set in ["policies", "examples"] {
        let copy = tempfile::tempdir().unwrap();
        copy_tree(&root.join(set), copy.path());
        let first = arbiter(&["fmt", copy.path().to_str().unwrap()]);
        assert_eq!(
            first.status.code(),
            Some(0),
            "{set}: {}",
            text(&first.stderr)
        );
        let second = arbiter(&["fmt", "--check", copy.path().to_str().unwrap()]);
        assert_eq!(
            second.status.code(),
            Some(0),
            "{set}: {}",
            text(&second.stdout)
        );
        assert!(
            text(&second.stderr).starts_with("0 to reformat"),
            "{}",
            text(&second.stderr)
        );
        // Comments are all still there, one for one.
        let comments = |dir: &Path| {
            let mut all: Vec<String> = Vec::new();
            walk(dir, &mut |p| {
                let t = std::fs::read_to_string(p).unwrap();
                all.extend(t.lines().filter_map(|l| {
                    l.split_once(" #")
                        .map(|(_, c)| c.trim().to_string())
                        .or_else(|| l.trim().strip_prefix('#').map(|c| c.trim().to_string()))
                }));
            });
            all.sort();
            all
        };
        assert_eq!(comments(copy.path()), comments(&root.join(set)), "{set}");
    }
    // The default pack, formatted, still passes its own test suite and check.
    let copy = tempfile::tempdir().unwrap();
    copy_tree(&root.join("policies"), copy.path());
    assert!(arbiter(&["fmt", copy.path().to_str().unwrap()])
        .status
        .success());
    let check = arbiter(&["check", copy.path().to_str().unwrap()]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    let test = arbiter(&[
        "test",
        "--policies",
        copy.path().to_str().unwrap(),
        copy.path().join("tests").to_str().unwrap(),
    ]);
    assert!(test.status.success(), "{}", text(&test.stdout));
}

#[test]
fn fmt_refuses_what_it_cannot_rewrite_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    common::write(
        dir.path(),
        "envoy.yaml",
        "static_resources:\n  listeners: []\n",
    );
    common::write(dir.path(), "broken.yaml", "kind: Policy\nid: [x\n");
    let out = arbiter(&["fmt", dir.path().join("envoy.yaml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("envoy.yaml:1:1: not a policy document"),
        "{}",
        text(&out.stderr)
    );
    let out = arbiter(&["fmt", dir.path().join("broken.yaml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("invalid YAML"),
        "{}",
        text(&out.stderr)
    );
    // Given a directory, YAML that holds no policy document is skipped; the broken file is still refused.
    let out = arbiter(&["fmt", "--check", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).ends_with("0 to reformat, 0 unchanged, 1 refused\n"),
        "{}",
        text(&out.stderr)
    );
}

fn walk(dir: &Path, f: &mut impl FnMut(&Path)) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, f);
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            f(&p);
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let p = entry.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_tree(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}
