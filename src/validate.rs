//! Cross-document checks over a parsed policy set: unique ids and names, attachments that name real
//! policies, the reserved `superuser` id, and the advisory warnings of `arbiter check`.

// foldhash: these maps hold every id of the set on each reload (SipHash showed in reload profiles).
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

use crate::ast::{At, Origin, PolicySetDoc, Scalar, TestSuiteDoc};
use crate::diag::{did_you_mean, suggestion, Code, Diagnostic, Diagnostics};

/// The policy id that names the superuser rule in decisions; no policy may take it.
pub const RESERVED_POLICY_ID: &str = "superuser";

/// The action vocabulary of SPEC section 1. Actions outside it are warned about, never rejected.
pub const VOCABULARY: &[&str] = &[
    "CreateKey",
    "ReadKey",
    "UpdateKey",
    "DeleteKey",
    "ExportKey",
    "UseKey",
    "EncryptWithKey",
    "DecryptWithKey",
    "SignWithKey",
    "VerifyWithKey",
    "WrapWithKey",
    "UnwrapWithKey",
    "GrantKeyPermissions",
    "CreateUser",
    "ReadUser",
    "UpdateUser",
    "DeleteUser",
    "CreateGroup",
    "ReadGroup",
    "UpdateGroup",
    "DeleteGroup",
    "AddGroupMember",
    "RemoveGroupMember",
    "CreatePolicy",
    "ReadPolicy",
    "UpdatePolicy",
    "DeletePolicy",
    "CreatePolicyAttachment",
    "ReadPolicyAttachment",
    "DeletePolicyAttachment",
    "CreateCA",
    "ReadCA",
    "IssueCertificate",
    "RevokeCertificate",
];

/// Runs every cross-document check, pushing errors and warnings into `diags`. Returns, for each of
/// `set.attachments`, the position in `set.policies` of the policy it names (the first, if the id repeats), or
/// `None` when no policy of `set.policies` has that id: compiling reads it rather than looking every name up again.
pub fn validate(set: &PolicySetDoc, diags: &mut Diagnostics) -> Vec<Option<u32>> {
    // Documents left out for other errors take part too, so that one pass reports every mistake. Each id maps
    // to where it first appears: one of `set.policies`, or past them a left-out policy's.
    let policy_ids = unique(
        diags,
        "policy id",
        set.policies
            .iter()
            .map(|p| (&p.origin, &p.id))
            .chain(set.incomplete.policy_ids.iter().map(|(o, id)| (o, id))),
    );
    unique(
        diags,
        "attachment id",
        set.attachments.iter().map(|a| (&a.origin, &a.id)).chain(
            set.incomplete
                .attachments
                .iter()
                .filter_map(|a| a.id.as_ref().map(|id| (&a.origin, id))),
        ),
    );
    // Also the groups defined, which selectors are checked against below.
    let defined = unique(
        diags,
        "group name",
        set.groups.iter().map(|g| (&g.origin, &g.name)),
    );
    unique(
        diags,
        "guard id",
        set.guards.iter().map(|g| (&g.origin, &g.id)),
    );

    for p in &set.policies {
        if p.id.value == RESERVED_POLICY_ID {
            diags.push(
                Diagnostic::error(
                    Code::ReservedId,
                    &p.origin.file,
                    p.id.pos,
                    "the policy id `superuser` is reserved",
                )
                .with_help("the superuser rule is reported under this id; choose another"),
            );
        }
    }

    let complete_ids = || {
        policy_ids
            .iter()
            .filter(|(_, &i)| i < set.policies.len())
            .map(|(&id, _)| id)
    };
    // Whether an attachment names the policy, by where its id first appears.
    let mut used = vec![false; set.policies.len() + set.incomplete.policy_ids.len()];
    // Suggestions compare a name with every candidate: bounded per build, so that thousands of unknown names
    // cannot make validation quadratic.
    let mut suggestions_left = MAX_SUGGESTIONS;
    // Attachments left out for other errors still have the policy they name checked.
    let mut attachment_policies = Vec::with_capacity(set.attachments.len());
    let references = set
        .attachments
        .iter()
        .map(|a| (&a.origin, a.id.value.as_str(), &a.policy))
        .chain(set.incomplete.attachments.iter().map(|a| {
            let id = a.id.as_ref().map_or("", |id| id.value.as_str());
            (&a.origin, id, &a.policy)
        }));
    for (origin, id, policy) in references {
        let name = policy.value.as_str();
        let named = policy_ids.get(name).copied();
        if attachment_policies.len() < set.attachments.len() {
            attachment_policies.push(named.filter(|&i| i < set.policies.len()).map(|i| i as u32));
        }
        if let Some(i) = named {
            used[i] = true;
        } else {
            let who = if id.is_empty() {
                "an attachment".to_string()
            } else {
                format!("attachment `{id}`")
            };
            let mut d = Diagnostic::error(
                Code::MissingPolicy,
                &origin.file,
                policy.pos,
                format!("{who} names policy `{name}`, which does not exist"),
            );
            if suggestions_left > 0 {
                suggestions_left -= 1;
                d.help = suggestion(name, complete_ids());
            }
            if let Some(file) = set.incomplete.unparsed.first() {
                d.help = Some(format!(
                    "{}it may be defined after the YAML error in {}, which stopped reading that file",
                    d.help.map(|h| format!("{h} Or ")).unwrap_or_default(),
                    file.display()
                ));
            }
            diags.push(d);
        }
    }

    // Without repeated ids, each policy's id first appears where the policy is.
    let repeated = policy_ids.len() < set.policies.len() + set.incomplete.policy_ids.len();
    for (j, p) in set.policies.iter().enumerate() {
        let first = if repeated {
            policy_ids.get(p.id.value.as_str()).copied()
        } else {
            Some(j)
        };
        if !first.is_some_and(|i| used[i]) {
            diags.push(
                Diagnostic::warning(
                    Code::UnusedPolicy,
                    &p.origin.file,
                    p.id.pos,
                    format!("policy `{}` is not used by any attachment", p.id.value),
                )
                .with_help("add a PolicyAttachment, or remove the policy"),
            );
        }
        for action in &p.actions {
            warn_unknown_action(&p.origin, action, diags);
        }
    }
    for g in &set.guards {
        for entry in &g.must_allow {
            for action in &entry.actions {
                warn_unknown_action(&g.origin, action, diags);
            }
        }
    }

    for a in &set.attachments {
        for entry in &a.selector {
            warn_selector_key(&a.origin, &entry.key, diags);
        }
    }

    if !set.groups.is_empty() {
        for a in &set.attachments {
            for entry in a.selector.iter().filter(|e| e.key.value == "groups") {
                for v in &entry.values {
                    if let Scalar::Str(name) = &v.value {
                        if !defined.contains_key(name.as_str()) {
                            let mut d = Diagnostic::warning(Code::UndefinedGroup,
                                &a.origin.file,
                                v.pos,
                                format!("selector names group `{name}`, which no Group document defines"),
                            );
                            if suggestions_left > 0 {
                                suggestions_left -= 1;
                                d.help = suggestion(name, defined.keys().copied());
                            }
                            diags.push(d);
                        }
                    }
                }
            }
        }
    }
    attachment_policies
}

/// A selector key that is not `id` or `groups` names a claim; one that reads like a misspelling of either
/// (`group`, `Groups`, `ids`) would silently never match, so it is worth a warning.
fn warn_selector_key(origin: &Origin, key: &At<String>, diags: &mut Diagnostics) {
    let name = key.value.as_str();
    if name == "id" || name == "groups" || name.contains('.') {
        return;
    }
    let lower = name.to_ascii_lowercase();
    // Short claim names near `id` are common and legitimate (`uid`, `tid`, `sid`, `kid`): only its case
    // variants and plural are flagged. Names near `groups` are flagged from four letters on.
    let meant = if lower == "id" || lower == "ids" {
        "id"
    } else if lower.len() >= 4 && did_you_mean(&lower, ["groups"]).is_some() {
        "groups"
    } else {
        return;
    };
    diags.push(
        Diagnostic::warning(
            Code::SelectorKey,
            &origin.file,
            key.pos,
            format!("selector key `{name}` names a claim, not the principal's `{meant}`"),
        )
        .with_help(format!(
            "did you mean `{meant}`? If `{name}` is a claim the token carries, ignore this"
        )),
    );
}

/// Warns about each `expect_policies` entry that names no policy of the set (`exists` says which do);
/// `superuser` always exists.
pub fn validate_suites<'a>(
    suites: &[TestSuiteDoc],
    exists: impl Fn(&str) -> bool,
    ids: impl Iterator<Item = &'a str> + Clone,
    diags: &mut Diagnostics,
) {
    for suite in suites {
        for test in &suite.tests {
            for p in test.expect_policies.iter().flatten() {
                if p.value == RESERVED_POLICY_ID || exists(&p.value) {
                    continue;
                }
                // "Did you mean" against the set's ids, for the first few only (each compares every id).
                let hint = (diags.len() < MAX_SUGGESTIONS)
                    .then(|| suggestion(&p.value, ids.clone()))
                    .flatten();
                diags.push(
                    Diagnostic::warning(
                        Code::UnknownTestPolicy,
                        &suite.origin.file,
                        p.pos,
                        format!(
                            "test `{}` expects policy `{}`, which the policy set does not have",
                            test.name.value, p.value
                        ),
                    )
                    .with_help(hint.unwrap_or_else(|| {
                        "the test can never pass as written; check the id".to_string()
                    })),
                );
            }
        }
    }
}

/// Most "did you mean" suggestions against the set's own names (policy ids, groups) in one validation.
const MAX_SUGGESTIONS: usize = 100;

/// Whether validation lets an action pattern pass without a warning: a glob, or a name in the vocabulary.
pub(crate) fn action_needs_no_warning(name: &str) -> bool {
    name.contains('*') || VOCABULARY.contains(&name)
}

fn warn_unknown_action(origin: &Origin, action: &At<String>, diags: &mut Diagnostics) {
    let name = action.value.as_str();
    if action_needs_no_warning(name) {
        return;
    }
    let mut d = Diagnostic::warning(
        Code::UnknownAction,
        &origin.file,
        action.pos,
        format!("action `{name}` is not in the CipherTrust action vocabulary"),
    );
    d.help = Some(
        suggestion(name, VOCABULARY.iter().copied())
            .unwrap_or_else(|| "this is fine if another service defines it".to_string()),
    );
    diags.push(d);
}

/// Reports every name given twice, and maps each name to the position of its first item.
fn unique<'a>(
    diags: &mut Diagnostics,
    what: &str,
    items: impl Iterator<Item = (&'a Origin, &'a At<String>)>,
) -> HashMap<&'a str, usize> {
    let mut items: Vec<_> = items.collect();
    let mut names = HashMap::with_capacity_and_hasher(items.len(), Default::default());
    let mut repeated = false;
    for (i, (_, name)) in items.iter().enumerate() {
        match names.entry(name.value.as_str()) {
            std::collections::hash_map::Entry::Occupied(_) => repeated = true,
            std::collections::hash_map::Entry::Vacant(first) => {
                first.insert(i);
            }
        }
    }
    // Most sets repeat no name, and then nothing needs ordering.
    if !repeated {
        return names;
    }
    // In the order they are written (files in load order, then by position), whichever documents they are.
    // Files load in path order, so path then position is the order they are written in.
    items.sort_by(|(a, x), (b, y)| (&a.file, x.pos).cmp(&(&b.file, y.pos)));
    let mut first: HashMap<&str, (&Origin, crate::diag::Pos)> = HashMap::default();
    for (origin, name) in items {
        if let Some((prev, at)) = first.get(name.value.as_str()) {
            diags.push(
                Diagnostic::error(
                    Code::Duplicate,
                    &origin.file,
                    name.pos,
                    format!("duplicate {what} `{}`", name.value),
                )
                .with_help(format!(
                    "first defined at {}:{}:{}",
                    prev.file.display(),
                    at.line,
                    at.col
                )),
            );
        } else {
            first.insert(&name.value, (origin, name.pos));
        }
    }
    names
}
