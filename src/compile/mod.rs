//! Lowering a policy set into the evaluation IR (`crate::ir`) and its index, and the entry points ([`build`],
//! [`build_with`], [`build_cached`]) that take source files all the way to a [`Snapshot`]: each file is parsed
//! and its policies compiled on its own (in parallel, or taken from a [`ParseCache`]), then the whole set is
//! validated, and attachments, groups, guards and the index are compiled.

pub mod condition;
pub mod http;

// The IR lives in `crate::ir`; these names stay reachable from here for the compiler's own code.
pub use crate::ir::{
    glob, index, path, Attachment, Compiled, FastMap, Group, Guard, GuardRule, Policy, Selector,
    SelectorKey, SelectorTest,
};

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::ast::{PolicySetDoc, Scalar};
use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::load::{SourceFile, SourceSet};
use crate::snapshot::Snapshot;
use condition::{compile_condition, Condition, Lit};
use glob::Glob;
use index::{Entry, IndexBuilder, PrincipalKey};

/// Parses, validates and compiles a whole source set. On any error, every diagnostic is returned (sorted) and
/// no snapshot exists. Warnings travel inside the snapshot. `kind: TestSuite` documents play no part.
pub fn build(sources: &SourceSet) -> Result<Snapshot, Diagnostics> {
    build_from(sources, false, None)
}

/// [`build`], as `arbiter check` runs it: with `check_suites`, the TestSuite documents among the sources are
/// validated too, their errors failing the build and their `expect_policies` checked against the set.
pub fn build_with(sources: &SourceSet, check_suites: bool) -> Result<Snapshot, Diagnostics> {
    build_from(sources, check_suites, None)
}

/// [`build`], re-parsing only the files whose path or text is not in `cache` (the reloader's incremental
/// rebuild), or that it holds at another detail (filled by [`parse_sources`]). The result is the same as
/// [`build`]'s: reading a file (whether whole or, alone, in pieces, which read as one pass does) is a function
/// of its path and text alone. The cache keeps only what a build reads again (see [`Detail::Build`]).
pub fn build_cached(sources: &SourceSet, cache: &mut ParseCache) -> Result<Snapshot, Diagnostics> {
    build_from(sources, false, Some(cache))
}

/// The documents, compiled policies, attachments and groups, and diagnostics of each file of the previous
/// build, by path, with the SHA-256 digest of the text they were read from. After a build it holds exactly that
/// build's files.
#[derive(Debug, Default)]
pub struct ParseCache {
    files: HashMap<Arc<Path>, Arc<ParsedFile>>,
}

impl ParseCache {
    /// Files held.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether no file is held.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// The digest of a file's text and what was read from it.
#[derive(Debug)]
struct ParsedFile {
    digest: [u8; 32],
    detail: Detail,
    parsed: Parsed,
}

/// How much of a file's documents the cache keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detail {
    /// Every document whole ([`parse_sources`] returns them).
    Full,
    /// What a build reads again when the file is unchanged: policies' ids, origins and effects, and the
    /// actions validation warns about (validation), attachments, groups, guards and mappings (compiled per
    /// build), the compiled policies and the diagnostics. Policies' resources, conditions and descriptions are
    /// compiled already and test suites are not part of a served build, so they are dropped: at 100,000
    /// policies that is most of the cache.
    Build,
}

impl Parsed {
    /// This file's reading, keeping what `detail` says.
    fn keep(&self, detail: Detail) -> Parsed {
        if detail == Detail::Full {
            return self.clone();
        }
        let set = &self.set;
        Parsed {
            set: PolicySetDoc {
                policies: set
                    .policies
                    .iter()
                    .map(|p| {
                        Arc::new(crate::ast::PolicyDoc {
                            origin: p.origin.clone(),
                            id: p.id.clone(),
                            description: None,
                            effect: p.effect,
                            // Validation reads actions only to warn about unknown ones.
                            actions: p
                                .actions
                                .iter()
                                .filter(|a| !crate::validate::action_needs_no_warning(&a.value))
                                .cloned()
                                .collect(),
                            resources: Vec::new(),
                            conditions: Vec::new(),
                        })
                    })
                    .collect(),
                attachments: set.attachments.clone(),
                groups: set.groups.clone(),
                guards: set.guards.clone(),
                mappings: set.mappings.clone(),
                incomplete: set.incomplete.clone(),
                suites: Vec::new(),
                suite_diags: Diagnostics::new(),
            },
            diags: self.diags.clone(),
            policies: self.policies.clone(),
            attachments: self.attachments.clone(),
            groups: self.groups.clone(),
            policy_diags: self.policy_diags.clone(),
        }
    }
}

/// One file read on its own: its documents, its parse diagnostics, and its policies, attachments and groups
/// compiled (with the policies' diagnostics apart, added to the set's after validation, where compiling always
/// reported them).
#[derive(Debug, Clone)]
struct Parsed {
    set: PolicySetDoc,
    diags: Diagnostics,
    policies: Vec<Policy>,
    attachments: Arc<FileAttachments>,
    groups: Arc<[Group]>,
    policy_diags: Diagnostics,
}

/// The attachments of one file compiled in its file's pass: all but the index of the policy each names, which
/// depends on the whole set and is looked up by name (in the file's documents) in each build.
#[derive(Debug)]
struct FileAttachments {
    /// In the order of the file's attachment documents, each `policy` not yet set.
    compiled: Box<[Attachment]>,
    /// Selector mistakes, by attachment: reported when the policy it names exists (an attachment naming none
    /// is reported for that alone).
    diags: Box<[(usize, Diagnostic)]>,
}

/// What the files of a set read into, merged in file order.
struct FilesRead {
    set: PolicySetDoc,
    diags: Diagnostics,
    policies: Vec<Policy>,
    /// Each file's compiled attachments, in file order.
    attachments: Vec<Arc<FileAttachments>>,
    /// Each file's compiled groups, in file order.
    groups: Vec<Arc<[Group]>>,
    policy_diags: Diagnostics,
}

/// One file to its documents (YAML, then AST) and its compiled policies, attachments and groups, on its own;
/// its YAML is cut into pieces parsed on every core when `in_pieces` says so.
fn parse_one(file: &SourceFile, in_pieces: bool) -> Parsed {
    let mut set = PolicySetDoc::default();
    let mut diags = Diagnostics::new();
    // Documents before a YAML error are still read: their own mistakes and ids count in this pass.
    let (docs, error) = if in_pieces {
        crate::source::parse_documents_in_pieces(&file.path, file.text())
    } else {
        crate::source::parse_documents_partial(&file.path, file.text())
    };
    crate::parse::parse_file(&file.path, &docs, &mut set, &mut diags);
    if let Some(d) = error {
        diags.push(d);
        set.incomplete.unparsed.push(file.path.clone());
    }
    let mut policy_diags = Diagnostics::new();
    let policies = compile_policies(&set, &mut policy_diags);
    let attachments = compile_attachments(&set);
    let groups = compile_groups(&set);
    Parsed {
        set,
        diags,
        policies,
        attachments,
        groups,
        policy_diags,
    }
}

/// Every file parsed, in parallel, and merged in file order; files unchanged since the build that filled
/// `cache` are taken from it.
pub fn parse_sources(
    sources: &SourceSet,
    cache: Option<&mut ParseCache>,
) -> (PolicySetDoc, Diagnostics) {
    let read = read_sources(sources, cache, Detail::Full);
    (read.set, read.diags)
}

/// [`parse_sources`], with the policies, attachments and groups compiled file by file, and the policies'
/// diagnostics. A file kept from a cache of another detail is read again.
fn read_sources(sources: &SourceSet, cache: Option<&mut ParseCache>, detail: Detail) -> FilesRead {
    let previous = cache.as_deref();
    // What the cache holds of each file as it is now (the digests computed on every core).
    if previous.is_some() {
        sources.digest_all();
    }
    let kept: Vec<(&SourceFile, Option<&Arc<ParsedFile>>)> = sources
        .files
        .iter()
        .map(|file| {
            let kept = previous.and_then(|c| c.files.get(&file.path));
            (file, kept.filter(|p| p.digest == *file.digest() && p.detail == detail))
        })
        .collect();
    // Files share the cores; when fewer are to be read than there are cores (after an edit), each is cut into
    // pieces that do.
    let cores = crate::parallel::cores();
    let in_pieces = kept.iter().filter(|(_, k)| k.is_none()).count() < cores;
    let per_file = crate::source::on_parser_threads(&kept, |&(file, kept)| {
        match kept {
            Some(kept) => (kept.parsed.clone(), None),
            None => {
                let parsed = parse_one(file, in_pieces);
                let cached = previous.map(|_| {
                    let digest = *file.digest();
                    Arc::new(ParsedFile {
                        digest,
                        detail,
                        parsed: parsed.keep(detail),
                    })
                });
                (parsed, cached)
            }
        }
    });
    let mut set = PolicySetDoc::default();
    let mut diags = Diagnostics::new();
    let mut policies = Vec::new();
    let mut attachments = Vec::with_capacity(sources.files.len());
    let mut groups = Vec::with_capacity(sources.files.len());
    let mut policy_diags = Diagnostics::new();
    let mut files = HashMap::with_capacity(sources.files.len());
    for (file, (parsed, cached)) in sources.files.iter().zip(per_file) {
        set.append(parsed.set);
        diags.extend(parsed.diags);
        policies.extend(parsed.policies);
        attachments.push(parsed.attachments);
        groups.push(parsed.groups);
        policy_diags.extend(parsed.policy_diags);
        if let Some(cache) = previous {
            if let Some(cached) = cached.or_else(|| cache.files.get(&file.path).cloned()) {
                files.insert(file.path.clone(), cached);
            }
        }
    }
    if let Some(cache) = cache {
        cache.files = files;
    }
    FilesRead {
        set,
        diags,
        policies,
        attachments,
        groups,
        policy_diags,
    }
}

fn build_from(
    sources: &SourceSet,
    check_suites: bool,
    cache: Option<&mut ParseCache>,
) -> Result<Snapshot, Diagnostics> {
    // A build's cache holds no test suites, so checking them reads every file whole.
    let detail = if check_suites {
        Detail::Full
    } else {
        Detail::Build
    };
    let FilesRead {
        mut set,
        mut diags,
        policies,
        attachments,
        groups,
        policy_diags,
    } = read_sources(sources, cache, detail);
    let attachment_policies = crate::validate::validate(&set, &mut diags);
    if check_suites {
        let ids: std::collections::HashSet<&str> = set
            .policies
            .iter()
            .map(|p| p.id.value.as_str())
            .chain(
                set.incomplete
                    .policy_ids
                    .iter()
                    .map(|(_, id)| id.value.as_str()),
            )
            .collect();
        let names: Vec<&str> = ids.iter().copied().collect();
        crate::validate::validate_suites(
            &set.suites,
            |id| ids.contains(id),
            names.iter().copied(),
            &mut diags,
        );
        diags.extend(std::mem::take(&mut set.suite_diags));
    }
    let compiled = compile(
        &set,
        policies,
        &attachment_policies,
        &attachments,
        &groups,
        policy_diags,
        &mut diags,
    );
    diags.attach_snippets(|p| sources.text_of(p));
    diags.sort();
    if diags.has_errors() {
        return Err(diags);
    }
    let compiled = compiled.ok_or_else(|| diags.clone())?;
    // The documents themselves are not kept: everything decisions and the simulator need is compiled.
    drop(set);
    Ok(Snapshot::new(sources.revision(), compiled, diags))
}

fn compile_globs(
    file: &Path,
    items: &[crate::ast::At<String>],
    what: &str,
    diags: &mut Diagnostics,
) -> Vec<Glob> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match Glob::new(&item.value) {
            Ok(g) => out.push(g),
            Err(e) => diags.push(Diagnostic::error(
                Code::InvalidGlob,
                file,
                item.pos,
                format!("invalid {what} glob `{}`: {e}", item.value),
            )),
        }
    }
    out
}

/// The policies of `set` compiled (globs, conditions), and the mistakes of the incomplete ones reported.
/// Runs per file, on the parser threads.
fn compile_policies(set: &PolicySetDoc, diags: &mut Diagnostics) -> Vec<Policy> {
    let mut policies = Vec::with_capacity(set.policies.len());
    for p in &set.policies {
        let file = &p.origin.file;
        let actions = compile_globs(file, &p.actions, "action", diags);
        let resources = compile_globs(file, &p.resources, "resource", diags);
        let conditions: Vec<Condition> = p
            .conditions
            .iter()
            .filter_map(|c| compile_condition(file, c, diags))
            .collect();
        policies.push(Policy {
            id: p.id.value.as_str().into(),
            effect: p.effect,
            actions: actions.into(),
            resources: resources.into(),
            conditions: conditions.into(),
            origin: p.origin.clone(),
        });
    }
    // Policies left out for a bad id or effect: their other mistakes are reported in the same pass.
    for p in &set.incomplete.policies {
        let file = &p.origin.file;
        compile_globs(file, &p.actions, "action", diags);
        compile_globs(file, &p.resources, "resource", diags);
        for c in &p.conditions {
            compile_condition(file, c, diags);
        }
    }
    policies
}

/// The attachments of one file compiled, but for the index of the policy each names.
fn compile_attachments(set: &PolicySetDoc) -> Arc<FileAttachments> {
    let mut diags = Vec::new();
    let compiled = set
        .attachments
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let tests = a
                .selector
                .iter()
                .map(|entry| {
                    let key = match entry.key.value.as_str() {
                        "id" => SelectorKey::Id,
                        "groups" => SelectorKey::Groups,
                        claim => SelectorKey::Claim(claim.split('.').map(Box::from).collect()),
                    };
                    if let SelectorKey::Claim(parts) = &key {
                        if parts.iter().any(|p| p.is_empty()) {
                            diags.push((
                                i,
                                Diagnostic::error(
                                    Code::InvalidSelector,
                                    &a.origin.file,
                                    entry.key.pos,
                                    format!("invalid selector key `{}`", entry.key.value),
                                ),
                            ));
                        }
                    }
                    let values = entry
                        .values
                        .iter()
                        .map(|v| match &v.value {
                            Scalar::Str(s) => Lit::Str(s.as_str().into()),
                            Scalar::Num(n) => Lit::Num(*n),
                            Scalar::Bool(b) => Lit::Bool(*b),
                        })
                        .collect();
                    SelectorTest { key, values }
                })
                .collect();
            Attachment {
                id: a.id.value.as_str().into(),
                policy: u32::MAX,
                selector: Selector { tests },
                origin: a.origin.clone(),
            }
        })
        .collect();
    Arc::new(FileAttachments {
        compiled,
        diags: diags.into(),
    })
}

/// The groups of one file compiled.
fn compile_groups(set: &PolicySetDoc) -> Arc<[Group]> {
    set.groups
        .iter()
        .map(|g| Group {
            name: g.name.value.as_str().into(),
            system: g.system,
            members: g
                .members
                .iter()
                .map(|m| Arc::from(m.value.as_str()))
                .collect(),
            origin: g.origin.clone(),
        })
        .collect()
}

/// Compiles every document, `policies` (with `policy_diags`), `attachments` and `groups` being those of
/// [`compile_policies`], [`compile_attachments`] and [`compile_groups`] over the files of `set`, and
/// `attachment_policies` what validation found each attachment names. Returns `None` when something could not
/// be compiled (the errors are in `diags`).
fn compile(
    set: &PolicySetDoc,
    policies: Vec<Policy>,
    attachment_policies: &[Option<u32>],
    file_attachments: &[Arc<FileAttachments>],
    file_groups: &[Arc<[Group]>],
    policy_diags: Diagnostics,
    diags: &mut Diagnostics,
) -> Option<Compiled> {
    let errors_before = diags.errors().count();
    diags.extend(policy_diags);
    // The compiled policies are those of `set.policies`, in the same order.
    debug_assert_eq!(policies.len(), set.policies.len());
    // Sorted by id: the (id, position) pairs are sorted, then each policy moves once, and `rank` says where the
    // policy of each position went.
    let mut order: Vec<(&str, u32)> = policies
        .iter()
        .enumerate()
        .map(|(i, p)| (&*p.id, i as u32))
        .collect();
    order.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let order: Vec<u32> = order.into_iter().map(|(_, i)| i).collect();
    let mut rank = vec![0u32; policies.len()];
    for (to, &from) in order.iter().enumerate() {
        rank[from as usize] = to as u32;
    }
    let mut slots: Vec<Option<Policy>> = policies.into_iter().map(Some).collect();
    let policies: Vec<Policy> = order
        .iter()
        .map(|&from| slots[from as usize].take().expect("each position once"))
        .collect();
    drop(slots);

    // The files' compiled attachments come in the order of the set's attachment documents, whose policies
    // validation found.
    let mut attachments = Vec::with_capacity(set.attachments.len());
    let mut named = attachment_policies.iter();
    for file in file_attachments {
        let mut mistakes = file.diags.iter().peekable();
        for (i, (a, named)) in file.compiled.iter().zip(named.by_ref()).enumerate() {
            let policy = named.map(|at| rank[at as usize]);
            while let Some((_, d)) = mistakes.next_if(|(at, _)| *at == i) {
                if policy.is_some() {
                    diags.push(d.clone());
                }
            }
            if let Some(policy) = policy {
                attachments.push(Attachment {
                    policy,
                    ..a.clone()
                });
            }
        }
    }

    let groups: Vec<Group> = file_groups.iter().flat_map(|file| file.iter().cloned()).collect();
    // Each member's groups, in the order the groups are written.
    // Built in its final form: most members are in one group, so each list is allocated once, and the map is
    // hashed once.
    let members = groups.iter().map(|g| g.members.len()).sum();
    let mut membership: FastMap<Arc<str>, Box<[Arc<str>]>> =
        FastMap::with_capacity_and_hasher(members, Default::default());
    for g in &groups {
        for m in g.members.iter() {
            match membership.entry(m.clone()) {
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(Box::new([g.name.clone()]));
                }
                std::collections::hash_map::Entry::Occupied(mut list) => {
                    if !list.get().contains(&g.name) {
                        let mut grown = std::mem::take(list.get_mut()).into_vec();
                        grown.push(g.name.clone());
                        *list.get_mut() = grown.into_boxed_slice();
                    }
                }
            }
        }
    }

    let mut guards = Vec::with_capacity(set.guards.len());
    for g in &set.guards {
        let file = &g.origin.file;
        let must_allow = g
            .must_allow
            .iter()
            .map(|m| GuardRule {
                actions: compile_globs(file, &m.actions, "action", diags).into(),
                resources: compile_globs(file, &m.resources, "resource", diags).into(),
            })
            .collect();
        let assuming: Vec<Condition> = g
            .assuming
            .iter()
            .filter_map(|c| compile_condition(file, c, diags))
            .collect();
        guards.push(Guard {
            id: g.id.value.as_str().into(),
            principal_id: g.principal.id.value.as_str().into(),
            groups: g
                .principal
                .groups
                .iter()
                .map(|s| Arc::from(s.value.as_str()))
                .collect(),
            must_allow,
            assuming: assuming.into(),
            origin: g.origin.clone(),
            principal_pos: g.principal.id.pos,
            assumption_keys: g
                .assuming
                .iter()
                .map(|c| crate::ir::AssumptionKey {
                    path: c.path.value.as_str().into(),
                    op: c.op.value,
                    negate: c.negate,
                    zone: c.zone.as_ref().map(|z| z.value.as_str().into()),
                    values: c.values.as_ref().map(|v| {
                        let mut all: Vec<String> =
                            v.value.iter().map(|s| format!("{:?}", s.value)).collect();
                        all.sort();
                        all.dedup();
                        all.into()
                    }),
                })
                .collect(),
        });
    }

    if diags.errors().count() > errors_before {
        return None;
    }

    let mut index = IndexBuilder::default();
    for (ai, a) in attachments.iter().enumerate() {
        let keys = principal_keys(&a.selector);
        let policy = &policies[a.policy as usize];
        for (ri, r) in policy.resources.iter().enumerate() {
            let entry = Entry {
                attachment: ai as u32,
                policy: a.policy,
                resource: ri as u32,
            };
            for &key in &keys {
                index.insert(key, r.literal_prefix(), entry);
            }
        }
    }
    let index = index.finish();
    let http = http::compile_mappings(&set.mappings, diags);

    Some(Compiled {
        policies,
        attachments,
        groups,
        guards,
        membership,
        index,
        http,
    })
}

/// The index keys a selector is filed under: its ids if it names any, else its groups, else everyone.
fn principal_keys(selector: &Selector) -> SmallVec<[PrincipalKey<'_>; 2]> {
    let strings = |key: SelectorKey| {
        selector.tests.iter().find(|t| t.key == key).map(|t| {
            t.values.iter().filter_map(|v| match v {
                Lit::Str(s) => Some(&**s),
                _ => None,
            })
        })
    };
    if let Some(ids) = strings(SelectorKey::Id) {
        return ids.map(PrincipalKey::Id).collect();
    }
    if let Some(groups) = strings(SelectorKey::Groups) {
        return groups.map(PrincipalKey::Group).collect();
    }
    smallvec::smallvec![PrincipalKey::Everyone]
}
