//! Rendering a [`Ruleset`] as an nft script: the whole table, or the
//! changes from a previous ruleset.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::acl::element_key;
use super::{Chain, Ruleset, Set, TABLE};

/// Above this many removed elements in one chain, rebuilding its sets is
/// cheaper than deleting elements: nft reads the whole interval set back
/// before each batch of deletions.
const MAX_ELEMENT_DELETIONS: usize = 32;

/// True when two versions of a chain differ only in the elements of sets
/// (not maps) that keep their names and types, and few enough elements go
/// that deleting them beats rebuilding.
fn only_elements_differ(old: &Chain, new: &Chain) -> bool {
    let same_shape = old.hook == new.hook
        && old.rules == new.rules
        && old.sets.len() == new.sets.len()
        && old.sets.iter().zip(&new.sets).all(|(a, b)| {
            a.kind == "set" && a.name == b.name && a.kind == b.kind && a.spec == b.spec
        });
    if !same_shape {
        return false;
    }
    let mut deletions = 0;
    for (a, b) in old.sets.iter().zip(&new.sets) {
        let kept: BTreeSet<&String> = b.elements.iter().collect();
        deletions += a.elements.iter().filter(|e| !kept.contains(e)).count();
        if deletions > MAX_ELEMENT_DELETIONS {
            return false;
        }
    }
    true
}

fn render_set_body(set: &Set) -> String {
    let mut body = set.spec.clone();
    if !set.elements.is_empty() {
        let _ = write!(body, " elements = {{ {} }};", set.elements.join(", "));
    }
    body
}

impl Ruleset {
    /// A script replacing the whole table in one transaction. `table` first
    /// makes the `delete` valid when the table does not exist yet.
    pub fn render_full(&self) -> String {
        let mut out =
            format!("table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n");
        for chain in &self.chains {
            for set in &chain.sets {
                let _ = writeln!(
                    out,
                    "\t{} {} {{ {} }}",
                    set.kind,
                    set.name,
                    render_set_body(set)
                );
            }
        }
        for chain in &self.chains {
            let _ = writeln!(out, "\tchain {} {{", chain.name);
            if let Some(hook) = &chain.hook {
                let _ = writeln!(out, "\t\t{hook}");
            }
            for rule in &chain.rules {
                let _ = writeln!(out, "\t\t{rule}");
            }
            out.push_str("\t}\n");
        }
        out.push_str("}\n");
        out
    }

    /// A script changing `old` into `self` in one transaction, touching only
    /// the chains whose rules, sets or hook differ; `None` when nothing does.
    /// Base chains whose hook changed force a full replacement.
    pub fn render_update(&self, old: &Ruleset) -> Option<String> {
        let old_by_name: BTreeMap<&str, &Chain> =
            old.chains.iter().map(|c| (c.name.as_str(), c)).collect();
        let new_by_name: BTreeMap<&str, &Chain> =
            self.chains.iter().map(|c| (c.name.as_str(), c)).collect();
        let removed: Vec<&Chain> = old
            .chains
            .iter()
            .filter(|c| !new_by_name.contains_key(c.name.as_str()))
            .collect();
        let added: Vec<&Chain> = self
            .chains
            .iter()
            .filter(|c| !old_by_name.contains_key(c.name.as_str()))
            .collect();
        let changed: Vec<(&Chain, &Chain)> = self
            .chains
            .iter()
            .filter_map(|c| {
                old_by_name
                    .get(c.name.as_str())
                    .filter(|o| **o != c)
                    .map(|o| (*o, c))
            })
            .collect();
        if removed.is_empty() && added.is_empty() && changed.is_empty() {
            return None;
        }
        if changed.iter().any(|(o, n)| o.hook != n.hook)
            || removed.iter().chain(&added).any(|c| c.hook.is_some())
        {
            return Some(self.render_full());
        }
        let t = format!("inet {TABLE}");
        let mut out = String::new();
        // 0. Chains whose rules stay and whose sets differ only in elements
        //    get element deltas: the cost follows the size of the change, not
        //    of the list. Maps are rebuilt (deleting a map element by text
        //    would need its exact data as well).
        let (element_only, changed): (Vec<_>, Vec<_>) = changed
            .into_iter()
            .partition(|(o, n)| only_elements_differ(o, n));
        let mut additions = String::new();
        for (old_chain, new_chain) in &element_only {
            for (old_set, new_set) in old_chain.sets.iter().zip(&new_chain.sets) {
                let before: BTreeSet<&String> = old_set.elements.iter().collect();
                let after: BTreeSet<&String> = new_set.elements.iter().collect();
                let gone: Vec<&str> = before.difference(&after).map(|e| element_key(e)).collect();
                let new: Vec<&str> = after.difference(&before).map(|e| e.as_str()).collect();
                if !gone.is_empty() {
                    let _ = writeln!(
                        out,
                        "delete element {t} {} {{ {} }}",
                        old_set.name,
                        gone.join(", ")
                    );
                }
                if !new.is_empty() {
                    let _ = writeln!(
                        additions,
                        "add element {t} {} {{ {} }}",
                        new_set.name,
                        new.join(", ")
                    );
                }
            }
        }
        // 1. Empty the chains that change or go, dropping their references to
        //    sets and to other chains.
        for chain in changed
            .iter()
            .map(|(o, _)| *o)
            .chain(removed.iter().copied())
        {
            let _ = writeln!(out, "flush chain {t} {}", chain.name);
        }
        // 2. Remove chains and the sets they owned.
        for chain in &removed {
            let _ = writeln!(out, "delete chain {t} {}", chain.name);
        }
        for chain in changed
            .iter()
            .map(|(o, _)| *o)
            .chain(removed.iter().copied())
        {
            for set in &chain.sets {
                let _ = writeln!(out, "delete {} {t} {}", set.kind, set.name);
            }
        }
        // 3. Declare new chains before any rule jumps to them.
        for chain in &added {
            let _ = writeln!(out, "add chain {t} {}", chain.name);
        }
        // 4. Sets, then rules, of new and changed chains.
        let rebuilt: Vec<&Chain> = added
            .iter()
            .copied()
            .chain(changed.iter().map(|(_, n)| *n))
            .collect();
        for chain in &rebuilt {
            for set in &chain.sets {
                let _ = writeln!(
                    out,
                    "add {} {t} {} {{ {} }}",
                    set.kind,
                    set.name,
                    render_set_body(set)
                );
            }
        }
        for chain in &rebuilt {
            for rule in &chain.rules {
                let _ = writeln!(out, "add rule {t} {} {rule}", chain.name);
            }
        }
        out.push_str(&additions);
        Some(out)
    }
}
