//! Erosion findings: changes that weaken the safety net itself even when no request is denied yet: a removed or
//! weakened guard, a removed or demoted system group, and a guarded group left with no members.

use crate::ir::Guard;
use crate::snapshot::Snapshot;

use super::witness::{difference_witness, Pattern};
use super::{Finding, FindingKind};

fn finding(guard: &str, message: String) -> Finding {
    let mut f = Finding::new(FindingKind::Erosion, guard, message);
    f.hint = Some(super::ACCEPT_HINT.to_string());
    f
}

/// The same guard: same principal (groups as a set), same rules and same assumptions (both as sets).
pub fn same_guard(a: &Guard, b: &Guard) -> bool {
    weakened(a, b).is_empty() && weakened(b, a).is_empty()
}

/// True when every string `inner` matches, `outer` matches too.
fn contains(outer: &str, inner: &str) -> bool {
    difference_witness(&Pattern::glob(inner), &Pattern::glob(outer)).is_none()
}

fn weakened(current: &Guard, proposed: &Guard) -> Vec<String> {
    let mut out = Vec::new();
    let mut groups_now: Vec<&str> = current.groups.iter().map(|g| &**g).collect();
    let mut groups_then: Vec<&str> = proposed.groups.iter().map(|g| &**g).collect();
    groups_now.sort_unstable();
    groups_then.sort_unstable();
    if current.principal_id != proposed.principal_id || groups_now != groups_then {
        out.push(format!(
            "its principal changed from `{}` {:?} to `{}` {:?}",
            current.principal_id, groups_now, proposed.principal_id, groups_then
        ));
    }
    for rule in current.must_allow.iter() {
        for a in rule.actions.iter() {
            for r in rule.resources.iter() {
                let kept = proposed.must_allow.iter().any(|p| {
                    p.actions.iter().any(|pa| contains(pa.as_str(), a.as_str()))
                        && p.resources
                            .iter()
                            .any(|pr| contains(pr.as_str(), r.as_str()))
                });
                if !kept {
                    out.push(format!("it no longer requires `{a}` on `{r}`"));
                }
            }
        }
    }
    // Assumptions compare as sets (`AssumptionKey`: values sorted, positions aside).
    for c in proposed.assumption_keys.iter() {
        if !current.assumption_keys.contains(c) {
            out.push(format!("it newly assumes `{} {}`", c.path, c.op.as_str()));
        }
    }
    out
}

/// Every erosion from `current` to `proposed`.
pub fn erosion(current: &Snapshot, proposed: &Snapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    for g in current.compiled.guards.iter() {
        match proposed.compiled.guards.iter().find(|p| p.id == g.id) {
            None => out.push(finding(&g.id, format!("guard `{}` is removed", g.id))),
            Some(p) => {
                for why in weakened(g, p) {
                    out.push(finding(
                        &g.id,
                        format!("guard `{}` is weakened: {why}", g.id),
                    ));
                }
            }
        }
    }
    for g in current.compiled.groups.iter().filter(|g| g.system) {
        match proposed.compiled.groups.iter().find(|p| p.name == g.name) {
            None => out.push(finding("", format!("system group `{}` is removed", g.name))),
            Some(p) if !p.system => out.push(finding(
                "",
                format!("system group `{}` is no longer a system group", g.name),
            )),
            Some(_) => {}
        }
    }
    for guard in current.compiled.guards.iter() {
        for name in guard.groups.iter() {
            let before = current.compiled.groups.iter().find(|g| g.name == *name);
            let after = proposed.compiled.groups.iter().find(|g| g.name == *name);
            if let Some(before) = before {
                if !before.members.is_empty() && after.is_none_or(|a| a.members.is_empty()) {
                    out.push(finding(
                        &guard.id,
                        format!(
                            "every member of group `{name}`, guarded by `{}`, is removed",
                            guard.id
                        ),
                    ));
                }
            }
        }
    }
    out
}
