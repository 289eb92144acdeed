//! The incremental rebuild: over random sequences of file edits (new files, changed texts, deletions, broken
//! YAML, ids that collide across files, actions validation warns about), a build that re-parses only changed files
//! through a `ParseCache` gives the same documents, diagnostics and decisions as a build from scratch (the build's
//! cache keeps only part of each document, so both kinds of cache are checked).

use std::path::PathBuf;

use arbiter::compile::{build, build_cached, parse_sources, ParseCache};
use arbiter::eval::{evaluate, EvalOptions};
use arbiter::load::SourceSet;
use arbiter::Request;
use proptest::prelude::*;

const PATHS: [&str; 4] = ["a.yaml", "b.yaml", "sub/c.yaml", "d.yml"];
const NAMES: [&str; 4] = ["p1", "p2", "p3", "readers"];

/// One document, as an author might write it, or garbage.
fn document() -> impl Strategy<Value = String> {
    let name = prop::sample::select(&NAMES[..]);
    prop_oneof![
        (
            name.clone(),
            prop::sample::select(&["allow", "deny", "alow"][..]),
            // Actions validation warns about (a misspelling, another service's) among those it does not.
            prop::collection::vec(
                prop::sample::select(&["ReadKey", "Read*", "*", "ReadKye", "acme.Rotate"][..]),
                1..3,
            ),
        )
            .prop_map(|(id, effect, actions)| format!(
                "kind: Policy\nid: {id}\neffect: {effect}\nactions: [\"{}\"]\nresources: [\"*\"]\n",
                actions.join("\", \"")
            )),
        (name.clone(), name.clone(), prop::sample::select(&["groups", "id", "group"][..]))
            .prop_map(|(id, policy, key)| format!(
                "kind: PolicyAttachment\nid: {id}\npolicy: {policy}\nprincipal_selector: {{{key}: [readers]}}\n"
            )),
        prop::collection::vec(prop::sample::select(&["alice", "bob"][..]), 0..3).prop_map(|members| format!(
            "kind: Group\nname: readers\nmembers: [{}]\n",
            members.join(", ")
        )),
        // Policies whose compiling reports: a bad glob, an unknown zone, a type mismatch.
        (name.clone(), prop::sample::select(&["[", "kylo:*"][..])).prop_map(|(id, glob)| format!(
            "kind: Policy\nid: {id}\neffect: allow\nactions: [ReadKey]\nresources: [\"{glob}\"]\n"
        )),
        (name.clone(), prop::sample::select(&["Europe/Pairs", "Europe/Paris"][..])).prop_map(|(id, zone)| format!(
            "kind: Policy\nid: {id}\neffect: deny\nactions: [ReadKey]\nresources: [\"*\"]\nconditions:\n  - {{path: environment.time, op: time_of_day, values: [\"08:00-18:00\"], zone: {zone}}}\n  - {{path: environment.port, op: cidr, values: [\"10.0.0.0/8\"]}}\n"
        )),
        // A guard, checked against the set.
        Just("kind: LockoutGuard\nid: g\nprincipal: {id: probe, groups: [readers]}\nmust_allow:\n  - actions: [ReadKey]\n    resources: [\"*\"]\n".to_string()),
        // Text no parser should accept, and text it reads as something else.
        "[a-z:\\[\\]{} \n-]{0,24}",
    ]
}

fn file_text() -> impl Strategy<Value = String> {
    prop::collection::vec(document(), 1..4).prop_map(|docs| docs.join("---\n"))
}

/// An edit: a file's new text, or its deletion.
fn edit() -> impl Strategy<Value = (usize, Option<String>)> {
    (0..PATHS.len(), prop::option::weighted(0.8, file_text()))
}

fn sources(files: &[Option<String>]) -> SourceSet {
    SourceSet::from_files(
        files
            .iter()
            .zip(PATHS)
            .filter_map(|(text, path)| Some((PathBuf::from(path), text.clone()?))),
    )
}

fn decisions(snapshot: &arbiter::Snapshot) -> Vec<(bool, Vec<String>)> {
    ["alice", "bob", "carol"]
        .iter()
        .map(|who| {
            let request = Request::builder(*who)
                .group(if *who == "carol" { "readers" } else { "others" })
                .action("ReadKey")
                .resource("kylo:kylo:vault:keys:k")
                .build()
                .unwrap();
            let d = evaluate(
                snapshot,
                &request,
                jiff::Timestamp::UNIX_EPOCH,
                &EvalOptions::default(),
            );
            (
                d.allowed,
                d.policies.iter().map(|p| p.to_string()).collect(),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn an_incremental_rebuild_is_a_full_rebuild(
        start in prop::collection::vec(prop::option::of(file_text()), PATHS.len()),
        edits in prop::collection::vec(edit(), 1..10),
    ) {
        let mut files = start;
        let mut cache = ParseCache::default();
        let mut documents_cache = ParseCache::default();
        // The first build fills the caches.
        let _ = build_cached(&sources(&files), &mut cache);
        let _ = parse_sources(&sources(&files), Some(&mut documents_cache));
        for (file, text) in edits {
            files[file] = text;
            let set = sources(&files);
            // The documents and diagnostics, compared whole.
            let cached = parse_sources(&set, Some(&mut documents_cache));
            prop_assert_eq!(&cached, &parse_sources(&set, None));
            prop_assert_eq!(documents_cache.len(), set.files.len());
            // The snapshots: the same errors, or the same revision, warnings and decisions.
            match (build_cached(&set, &mut cache), build(&set)) {
                (Ok(a), Ok(b)) => {
                    prop_assert_eq!(&a.revision, &b.revision);
                    prop_assert_eq!(&a.warnings, &b.warnings);
                    prop_assert_eq!(decisions(&a), decisions(&b));
                }
                (Err(a), Err(b)) => prop_assert_eq!(a, b),
                (a, b) => prop_assert!(false, "cached {:?} but full {:?}", a.is_ok(), b.is_ok()),
            }
        }
        // A build's cache, asked for whole documents, reads again what it did not keep.
        let set = sources(&files);
        prop_assert_eq!(parse_sources(&set, Some(&mut cache)), parse_sources(&set, None));
    }
}

/// A policy document of six lines whose id, `p<i>`, sits on its third line, column 5.
fn six_line_policy(i: usize) -> String {
    format!(
        "---\nkind: Policy\nid: p{i}\neffect: allow\nactions: [ReadKey]\nresources: [\"kylo:*\"]\n"
    )
}

/// A large file read alone (the first build of a one-file set, or the rebuild after it is edited) is cut at its
/// document markers and parsed on every core. What it reads is what one pass reads: every document, each
/// mistake at the line counted here from the text, and a YAML error exactly as the one-pass parser reports it.
#[test]
fn a_large_file_read_in_pieces_is_read_as_in_one_pass() {
    let text: String = (0..1200).map(six_line_policy).collect();
    assert!(text.len() > 64 * 1024, "large enough to be cut");
    let set = |text: &str| SourceSet::from_files([(PathBuf::from("big.yaml"), text.to_string())]);
    let unused_at = |snapshot: &arbiter::Snapshot| -> Vec<u32> {
        let mut lines: Vec<u32> = snapshot
            .warnings
            .iter()
            .filter(|d| d.code == arbiter::Code::UnusedPolicy)
            .inspect(|d| assert_eq!(d.pos.col, 5, "{d:?}"))
            .map(|d| d.pos.line)
            .collect();
        lines.sort_unstable();
        lines
    };
    let expected: Vec<u32> = (0..1200).map(|i| 6 * i + 3).collect();

    let mut cache = ParseCache::default();
    let first = build_cached(&set(&text), &mut cache).expect("valid");
    assert_eq!(unused_at(&first), expected);

    // An edit near the end: the rebuild reads the file again, in pieces.
    let edited = text.replace("id: p790\n", "id: p790b\n");
    let again = build_cached(&set(&edited), &mut cache).expect("valid");
    assert_eq!(unused_at(&again), expected);
    assert_eq!(
        again.warnings,
        build(&set(&edited)).expect("valid").warnings
    );

    // A YAML mistake in document 600: reported as one pass reports it, at its line.
    let broken = text.replace(
        "id: p600\neffect: allow\nactions: [ReadKey]\n",
        "id: p600\neffect: allow\nactions: [ReadKey\n",
    );
    let (_, one_pass) =
        arbiter::source::parse_documents_partial(std::path::Path::new("big.yaml"), &broken);
    let one_pass = one_pass.expect("a YAML error");
    let errors = build_cached(&set(&broken), &mut cache).expect_err("broken YAML");
    let yaml: Vec<_> = errors
        .iter()
        .filter(|d| d.code == arbiter::Code::Yaml)
        .collect();
    assert_eq!(yaml.len(), 1, "{errors:?}");
    assert_eq!(yaml[0].pos, one_pass.pos);
    assert_eq!(yaml[0].message, one_pass.message);
    assert!(
        (6 * 600 + 5..=6 * 600 + 8).contains(&one_pass.pos.line),
        "{one_pass:?}"
    );
}
