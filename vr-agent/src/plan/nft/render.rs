//! Rendering a [`Ruleset`] as an nft script: the whole table, or the
//! changes from a previous ruleset.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::acl::{element_key, item_of_element, with_counts};
use super::counters::ChainCounts;
use super::items::ItemIndex;
use super::{Chain, Ruleset, Set, Subchain, TABLE};

/// Hit counts carried over to the elements that replace an item's
/// elements, so that an item's counts survive a change that keeps the item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Carry {
    /// (chain, item) whose elements in an element-only change are all
    /// deleted and added again, so that the first added gets the item's
    /// whole count.
    pub refreshed: BTreeSet<(String, String)>,
    /// The counts each (chain, item) had, read before the change.
    pub counts: ChainCounts,
}

/// What a change must read before it runs so that counts survive it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CarryNeeds {
    /// The old ACL sets of rebuilt chains holding items that stay: read
    /// whole.
    pub sets: Vec<String>,
    /// The old elements (keys, by set) of the items refreshed in an
    /// element-only change: read one by one (`nft get element`), so a
    /// one-item change does not list a set of thousands.
    pub elements: BTreeMap<String, Vec<String>>,
    pub refreshed: BTreeSet<(String, String)>,
}

/// Items with their elements, each with its set.
type ItemElements<'a> = BTreeMap<&'a str, BTreeSet<(&'a str, &'a str)>>;

/// The items (per element) of a chain's sets, with the set of each element.
fn items_of(chain: &Chain) -> ItemElements<'_> {
    let mut out: BTreeMap<&str, BTreeSet<(&str, &str)>> = BTreeMap::new();
    for set in &chain.sets {
        for element in set.elements.iter() {
            if let Some(item) = item_of_element(element) {
                out.entry(item)
                    .or_default()
                    .insert((set.name.as_str(), element.as_str()));
            }
        }
    }
    out
}

/// [`items_of`] both versions of a chain whose sets keep their names, for
/// the items that can have changed alone: those owning an element in the
/// part of a set that differs (see [`middles`]). An item whose elements
/// all stay has the same elements in both and needs nothing.
fn items_of_changed<'a>(old: &'a Chain, new: &'a Chain) -> (ItemElements<'a>, ItemElements<'a>) {
    let mut candidates: BTreeSet<&str> = BTreeSet::new();
    for (a, b) in old.sets.iter().zip(&new.sets) {
        if std::sync::Arc::ptr_eq(&a.elements, &b.elements) {
            continue;
        }
        let (om, nm, _) = middles(&a.elements, &b.elements);
        if om.len() + nm.len() > SMALL_MIDDLE {
            return (items_of(old), items_of(new));
        }
        candidates.extend(om.iter().chain(nm).filter_map(|e| item_of_element(e)));
    }
    let only = |chain: &'a Chain| {
        let mut out: BTreeMap<&str, BTreeSet<(&str, &str)>> = BTreeMap::new();
        if candidates.is_empty() {
            return out;
        }
        for set in &chain.sets {
            for element in set.elements.iter() {
                if let Some(item) = item_of_element(element).filter(|i| candidates.contains(i)) {
                    out.entry(item)
                        .or_default()
                        .insert((set.name.as_str(), element.as_str()));
                }
            }
        }
        out
    };
    (only(old), only(new))
}

/// The old elements (set, key) to read so that the items of an
/// element-only change keep their counts when only the elements that go
/// are deleted and only those that come are added: the elements that go of
/// every item that also gains one. `None` when the chain needs its items
/// refreshed whole ([`items_of_changed`]): a set changes in more than a few
/// elements, the index does not cover the chain, or an item loses elements
/// and gains none while it keeps others (their count would be lost).
fn moved_counts<'a>(
    old: &'a Chain,
    new: &'a Chain,
    index: &ItemIndex,
) -> Option<Vec<(&'a str, &'a str)>> {
    if !index.covers(&old.name) {
        return None;
    }
    let mut gone: Vec<(&str, &str, &str)> = Vec::new();
    let mut came: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for (a, b) in old.sets.iter().zip(&new.sets) {
        if std::sync::Arc::ptr_eq(&a.elements, &b.elements) {
            continue;
        }
        let (om, nm, _) = middles(&a.elements, &b.elements);
        if om.len() + nm.len() > SMALL_MIDDLE {
            return None;
        }
        let (g, c) = set_difference(&a.elements, &b.elements);
        for element in g {
            if let Some(item) = item_of_element(element) {
                gone.push((item, a.name.as_str(), element.as_str()));
            }
        }
        came.extend(c.into_iter().filter_map(|e| item_of_element(e)));
    }
    let mut losing: BTreeMap<&str, u32> = BTreeMap::new();
    for (item, _, _) in &gone {
        *losing.entry(item).or_default() += 1;
    }
    for (item, lost) in losing {
        if !came.contains(item) && index.count(&old.name, item)? > lost {
            return None;
        }
    }
    Some(
        gone.into_iter()
            .filter(|(item, _, _)| came.contains(item))
            .map(|(_, set, element)| (set, element_key(element)))
            .collect(),
    )
}

/// Gives the first element of each item of `counts` in `chain` its carried
/// count (once per item: `given` remembers).
fn carry_into(
    chain: &str,
    element: &str,
    counts: &ChainCounts,
    given: &mut BTreeSet<(String, String)>,
) -> String {
    let Some(item) = item_of_element(element) else {
        return element.to_string();
    };
    let key = (chain.to_string(), item.to_string());
    match counts.get(&key) {
        Some(&count) if !given.contains(&key) => {
            given.insert(key);
            with_counts(element, count)
        }
        _ => element.to_string(),
    }
}

/// The parts of two element lists that differ: what lies between their
/// common beginning and their common end, and the common parts of `old`
/// (the same elements, at the same places, as in `new`).
pub(super) fn middles<'a>(
    old: &'a [String],
    new: &'a [String],
) -> (&'a [String], &'a [String], [&'a [String]; 2]) {
    let p = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let s = old[p..]
        .iter()
        .rev()
        .zip(new[p..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    (
        &old[p..old.len() - s],
        &new[p..new.len() - s],
        [&old[..p], &old[old.len() - s..]],
    )
}

/// Middles at most this long are diffed on their own; longer ones through
/// hash sets of the whole lists.
pub(super) const SMALL_MIDDLE: usize = 16;

/// The elements of `old` that are not in `new`, and of `new` not in `old`,
/// each in its list's order. A one-item change leaves the lists equal but
/// for a few elements in the middle: only those are compared.
pub(super) fn set_difference<'a>(
    old: &'a [String],
    new: &'a [String],
) -> (Vec<&'a String>, Vec<&'a String>) {
    let (om, nm, common) = middles(old, new);
    if om.len() + nm.len() <= SMALL_MIDDLE {
        // An element of one middle may still be in the common part (a list
        // holding an element twice): looked for there too.
        let in_common = |e: &String| common.iter().any(|part| part.contains(e));
        let gone = om
            .iter()
            .filter(|e| !nm.contains(e) && !in_common(e))
            .collect();
        let came = nm
            .iter()
            .filter(|e| !om.contains(e) && !in_common(e))
            .collect();
        return (gone, came);
    }
    let before: std::collections::HashSet<&String> = old.iter().collect();
    let after: std::collections::HashSet<&String> = new.iter().collect();
    (
        old.iter().filter(|e| !after.contains(e)).collect(),
        new.iter().filter(|e| !before.contains(e)).collect(),
    )
}

/// Above this many removed elements in one chain, rebuilding its sets is
/// cheaper than deleting elements: nft reads the whole interval set back
/// before each batch of deletions (the netlink path does not, but falls
/// back on the text path when the kernel refuses a batch).
const MAX_ELEMENT_DELETIONS: usize = 256;

/// True when two versions of a chain differ only in the elements of sets
/// or maps that keep their names and types, and few enough elements go
/// that deleting them beats rebuilding.
fn only_elements_differ(old: &Chain, new: &Chain) -> bool {
    let same_shape = old.hook == new.hook
        && old.rules == new.rules
        && old.subchains == new.subchains
        && old.sets.len() == new.sets.len()
        && old
            .sets
            .iter()
            .zip(&new.sets)
            .all(|(a, b)| a.name == b.name && a.kind == b.kind && a.spec == b.spec);
    if !same_shape {
        return false;
    }
    let mut deletions = 0;
    for (a, b) in old.sets.iter().zip(&new.sets) {
        if std::sync::Arc::ptr_eq(&a.elements, &b.elements) {
            continue;
        }
        deletions += set_difference(&a.elements, &b.elements).0.len();
        if deletions > MAX_ELEMENT_DELETIONS {
            return false;
        }
    }
    true
}

fn render_set_body(
    chain: &str,
    set: &Set,
    counts: &ChainCounts,
    given: &mut BTreeSet<(String, String)>,
) -> String {
    let mut body = set.spec.clone();
    if !set.elements.is_empty() {
        let elements: Vec<String> = set
            .elements
            .iter()
            .map(|e| carry_into(chain, e, counts, given))
            .collect();
        let _ = write!(body, " elements = {{ {} }};", elements.join(", "));
    }
    body
}

/// The chains of a change: removed, added, rebuilt (old, new) and changed
/// in set elements only (old, new).
type Classes<'a> = (
    Vec<&'a Chain>,
    Vec<&'a Chain>,
    Vec<(&'a Chain, &'a Chain)>,
    Vec<(&'a Chain, &'a Chain)>,
);

fn classify<'a>(new: &'a Ruleset, old: &'a Ruleset) -> Classes<'a> {
    let old_by_name: BTreeMap<&str, &Chain> =
        old.chains.iter().map(|c| (c.name.as_str(), c)).collect();
    let new_by_name: BTreeMap<&str, &Chain> =
        new.chains.iter().map(|c| (c.name.as_str(), c)).collect();
    let removed = old
        .chains
        .iter()
        .filter(|c| !new_by_name.contains_key(c.name.as_str()))
        .collect();
    let added = new
        .chains
        .iter()
        .filter(|c| !old_by_name.contains_key(c.name.as_str()))
        .collect();
    let changed: Vec<(&Chain, &Chain)> = new
        .chains
        .iter()
        .filter_map(|c| {
            old_by_name
                .get(c.name.as_str())
                .filter(|o| **o != c)
                .map(|o| (*o, c))
        })
        .collect();
    let (element_only, rebuilt) = changed
        .into_iter()
        .partition(|(o, n)| only_elements_differ(o, n));
    (removed, added, rebuilt, element_only)
}

/// The element changes of one set or map: the old elements that go and
/// the new ones that come (with carried counts written in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementDelta {
    pub set: String,
    /// The set's declaration body (its type, flags, `counter`).
    pub spec: String,
    pub delete: Vec<String>,
    pub add: Vec<String>,
}

/// The element deltas of chains changed in elements only. An item that
/// stays and changes elements has all of its elements deleted and added
/// again, the first with its carried count.
fn element_deltas(
    element_only: &[(&Chain, &Chain)],
    carry: &Carry,
    given: &mut BTreeSet<(String, String)>,
) -> Vec<ElementDelta> {
    let mut out = Vec::new();
    for (old_chain, new_chain) in element_only {
        // The chain's refreshed items, looked up once per element without
        // allocating.
        let items: std::collections::HashSet<&str> = carry
            .refreshed
            .iter()
            .filter(|(chain, _)| *chain == old_chain.name)
            .map(|(_, item)| item.as_str())
            .collect();
        let refreshed = |e: &String| {
            !items.is_empty() && item_of_element(e).is_some_and(|item| items.contains(item))
        };
        for (old_set, new_set) in old_chain.sets.iter().zip(&new_chain.sets) {
            if items.is_empty()
                && (std::sync::Arc::ptr_eq(&old_set.elements, &new_set.elements)
                    || old_set.elements == new_set.elements)
            {
                continue;
            }
            // A map element whose data changes keeps its key: it goes and
            // comes back.
            let (gone, came) = set_difference(&old_set.elements, &new_set.elements);
            let (delete, add): (Vec<String>, Vec<String>) = if items.is_empty() {
                (
                    gone.into_iter().cloned().collect(),
                    came.into_iter()
                        .map(|e| carry_into(&new_chain.name, e, &carry.counts, given))
                        .collect(),
                )
            } else {
                // Elements of refreshed items go and come even where they
                // stay, in their lists' order.
                let gone: std::collections::HashSet<&String> = gone.into_iter().collect();
                let came: std::collections::HashSet<&String> = came.into_iter().collect();
                (
                    old_set
                        .elements
                        .iter()
                        .filter(|e| gone.contains(e) || refreshed(e))
                        .cloned()
                        .collect(),
                    new_set
                        .elements
                        .iter()
                        .filter(|e| came.contains(e) || refreshed(e))
                        .map(|e| carry_into(&new_chain.name, e, &carry.counts, given))
                        .collect(),
                )
            };
            if !delete.is_empty() || !add.is_empty() {
                out.push(ElementDelta {
                    set: new_set.name.clone(),
                    spec: new_set.spec.clone(),
                    delete,
                    add,
                });
            }
        }
    }
    out
}

impl Ruleset {
    /// The change from `old` to `self` as element changes alone, or `None`
    /// when a chain, rule, set or hook changes too (the caller then takes
    /// [`Ruleset::render_update_with`]). Empty when nothing changes.
    pub fn element_changes(&self, old: &Ruleset, carry: &Carry) -> Option<Vec<ElementDelta>> {
        let (removed, added, changed, element_only) = classify(self, old);
        if !(removed.is_empty() && added.is_empty() && changed.is_empty()) {
            return None;
        }
        Some(element_deltas(&element_only, carry, &mut BTreeSet::new()))
    }

    /// The old sets' specs by name, for reading elements back.
    pub fn set_specs(&self) -> BTreeMap<&str, &str> {
        self.chains
            .iter()
            .flat_map(|c| &c.sets)
            .map(|s| (s.name.as_str(), s.spec.as_str()))
            .collect()
    }
}

/// An element (by position in its set) that starts at a carried count
/// (packets, bytes).
pub type Carried = (usize, (u64, u64));

/// A regular chain rebuilt whole in one transaction: its rules and its
/// subchains' flushed, its sets deleted, its subchains that go deleted and
/// those that come created, its new sets created with their elements, its
/// new rules and its subchains' added (what
/// [`Ruleset::render_update_with`] writes for it as a script).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRebuild<'a> {
    pub chain: &'a str,
    /// The chain's sets before, deleted once its rules are gone.
    pub old_sets: Vec<&'a str>,
    /// The chain's subchains before, flushed with it.
    pub old_subchains: Vec<&'a str>,
    /// The chain's sets after, each with the elements that start at a
    /// carried count.
    pub sets: Vec<(&'a Set, Vec<Carried>)>,
    pub rules: &'a [String],
    /// The chain's subchains after (those not there before are created).
    pub subchains: &'a [Subchain],
}

/// A change of regular chains and elements only: no chain comes or goes,
/// no base chain changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainChanges<'a> {
    pub rebuilt: Vec<ChainRebuild<'a>>,
    pub elements: Vec<ElementDelta>,
}

/// The elements of `set` (in `chain`) that start at a carried count: each
/// item's first element, once per item over the change (`given`).
fn carried_positions(
    chain: &str,
    set: &Set,
    counts: &ChainCounts,
    given: &mut BTreeSet<(String, String)>,
) -> Vec<Carried> {
    let of_chain: std::collections::HashMap<&str, (u64, u64)> = counts
        .iter()
        .filter(|((c, _), _)| c == chain)
        .map(|((_, item), count)| (item.as_str(), *count))
        .collect();
    if of_chain.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (k, element) in set.elements.iter().enumerate() {
        let Some(item) = item_of_element(element) else {
            continue;
        };
        if let Some(&count) = of_chain.get(item)
            && given.insert((chain.to_string(), item.to_string()))
        {
            out.push((k, count));
        }
    }
    out
}

impl Ruleset {
    /// The change from `old` to `self` as regular chains rebuilt whole and
    /// element changes, or `None` when a chain comes or goes or a base
    /// chain changes (the caller then takes nft). Carried counts are given
    /// as [`Ruleset::render_update_with`] gives them.
    pub fn chain_changes<'a>(
        &'a self,
        old: &'a Ruleset,
        carry: &Carry,
    ) -> Option<ChainChanges<'a>> {
        let (removed, added, changed, element_only) = classify(self, old);
        if !removed.is_empty()
            || !added.is_empty()
            || changed
                .iter()
                .any(|(o, n)| o.hook.is_some() || n.hook.is_some())
        {
            return None;
        }
        let mut given = BTreeSet::new();
        let elements = element_deltas(&element_only, carry, &mut given);
        let rebuilt = changed
            .iter()
            .map(|&(o, n)| ChainRebuild {
                chain: n.name.as_str(),
                old_sets: o.sets.iter().map(|s| s.name.as_str()).collect(),
                old_subchains: o.subchains.iter().map(|s| s.name.as_str()).collect(),
                sets: n
                    .sets
                    .iter()
                    .map(|s| (s, carried_positions(&n.name, s, &carry.counts, &mut given)))
                    .collect(),
                rules: &n.rules,
                subchains: &n.subchains,
            })
            .collect();
        Some(ChainChanges { rebuilt, elements })
    }
}

impl Ruleset {
    /// A script replacing the whole table in one transaction. `table` first
    /// makes the `delete` valid when the table does not exist yet.
    pub fn render_full(&self) -> String {
        self.render_full_with(&ChainCounts::new())
    }

    /// [`Ruleset::render_full`], each item's first element starting at the
    /// count `counts` holds for it.
    pub fn render_full_with(&self, counts: &ChainCounts) -> String {
        let mut given = BTreeSet::new();
        let mut out =
            format!("table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n");
        // Subchains are declared before the maps whose elements go to them;
        // their rules come with their chain's, after the sets.
        for sub in self.chains.iter().flat_map(|c| &c.subchains) {
            let _ = writeln!(out, "\tchain {} {{\n\t}}", sub.name);
        }
        for chain in &self.chains {
            for set in &chain.sets {
                let _ = writeln!(
                    out,
                    "\t{} {} {{ {} }}",
                    set.kind,
                    set.name,
                    render_set_body(&chain.name, set, counts, &mut given)
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
            for sub in &chain.subchains {
                let _ = writeln!(out, "\tchain {} {{", sub.name);
                for rule in &sub.rules {
                    let _ = writeln!(out, "\t\t{rule}");
                }
                out.push_str("\t}\n");
            }
        }
        out.push_str("}\n");
        out
    }

    /// A script changing `old` into `self` in one transaction, touching only
    /// the chains whose rules, sets or hook differ; `None` when nothing does.
    /// Base chains whose hook changed force a full replacement.
    pub fn render_update(&self, old: &Ruleset) -> Option<String> {
        self.render_update_with(old, &Carry::default())
    }

    /// What must be read before changing `old` into `self` so that the
    /// items that stay keep their counts: in a rebuilt ACL chain every item
    /// that stays, in an element-only change every item that stays and
    /// loses or changes an element; and the old sets holding them.
    pub fn carry_needs(&self, old: &Ruleset) -> CarryNeeds {
        self.carry_needs_with(old, None)
    }

    /// [`Ruleset::carry_needs`] for an element-only change, made with the
    /// [`ItemIndex`] of `old` in the time of the change rather than of the
    /// chain: an item that loses elements and gains others has only those
    /// that go read, and their count goes to the first that comes (the
    /// elements it keeps keep theirs, so its total is the same as when all
    /// of its elements are refreshed). A chain where that does not hold
    /// (an item losing elements while it keeps others and gains none, or a
    /// change of many elements) is handled as [`Ruleset::carry_needs`]
    /// does.
    pub fn carry_needs_indexed(&self, old: &Ruleset, index: &ItemIndex) -> CarryNeeds {
        self.carry_needs_with(old, Some(index))
    }

    fn carry_needs_with(&self, old: &Ruleset, index: Option<&ItemIndex>) -> CarryNeeds {
        let (_, _, rebuilt, element_only) = classify(self, old);
        let mut needs = CarryNeeds::default();
        let mut sets = BTreeSet::new();
        // A rebuilt chain: its old sets holding an element of an item the
        // new chain has too (none when every item differs, as when a
        // tier's list is replaced by another list).
        for (o, n) in &rebuilt {
            let staying: std::collections::HashSet<&str> = n
                .sets
                .iter()
                .flat_map(|s| s.elements.iter())
                .filter_map(|e| item_of_element(e))
                .collect();
            if staying.is_empty() {
                continue;
            }
            for set in &o.sets {
                if set
                    .elements
                    .iter()
                    .any(|e| item_of_element(e).is_some_and(|i| staying.contains(i)))
                {
                    sets.insert(set.name.clone());
                }
            }
        }
        for (o, n) in &element_only {
            if let Some(reads) = index.and_then(|index| moved_counts(o, n, index)) {
                for (set, key) in reads {
                    needs
                        .elements
                        .entry(set.to_string())
                        .or_default()
                        .push(key.to_string());
                }
                continue;
            }
            let (before, after) = items_of_changed(o, n);
            for (item, old_elements) in &before {
                let Some(new_elements) = after.get(item) else {
                    continue;
                };
                if old_elements == new_elements {
                    continue;
                }
                for (set, element) in old_elements {
                    needs
                        .elements
                        .entry(set.to_string())
                        .or_default()
                        .push(element_key(element).to_string());
                }
                needs.refreshed.insert((o.name.clone(), item.to_string()));
            }
        }
        needs.sets = sets.into_iter().collect();
        needs
    }

    /// [`Ruleset::render_update`], carrying `carry`'s counts over to the
    /// elements that replace the ones that go.
    pub fn render_update_with(&self, old: &Ruleset, carry: &Carry) -> Option<String> {
        let (removed, added, changed, element_only) = classify(self, old);
        if removed.is_empty() && added.is_empty() && changed.is_empty() && element_only.is_empty() {
            return None;
        }
        let mut given = BTreeSet::new();
        if changed.iter().any(|(o, n)| o.hook != n.hook)
            || removed.iter().chain(&added).any(|c| c.hook.is_some())
        {
            return Some(self.render_full_with(&carry.counts));
        }
        let t = format!("inet {TABLE}");
        let mut out = String::new();
        // 0. Chains whose rules stay and whose sets differ only in elements
        //    get element deltas: the cost follows the size of the change, not
        //    of the list. Map elements are deleted by key.
        let mut additions = String::new();
        for delta in element_deltas(&element_only, carry, &mut given) {
            if !delta.delete.is_empty() {
                let keys: Vec<&str> = delta.delete.iter().map(|e| element_key(e)).collect();
                let _ = writeln!(
                    out,
                    "delete element {t} {} {{ {} }}",
                    delta.set,
                    keys.join(", ")
                );
            }
            if !delta.add.is_empty() {
                let _ = writeln!(
                    additions,
                    "add element {t} {} {{ {} }}",
                    delta.set,
                    delta.add.join(", ")
                );
            }
        }
        // 1. Empty the chains that change or go and their subchains,
        //    dropping their references to sets and to other chains.
        let emptied: Vec<&Chain> = changed
            .iter()
            .map(|(o, _)| *o)
            .chain(removed.iter().copied())
            .collect();
        for chain in &emptied {
            let _ = writeln!(out, "flush chain {t} {}", chain.name);
            for sub in &chain.subchains {
                let _ = writeln!(out, "flush chain {t} {}", sub.name);
            }
        }
        // 2. Remove the sets and maps they owned (a map's elements can go
        //    to a subchain), then the chains and subchains that go.
        for chain in &emptied {
            for set in &chain.sets {
                let _ = writeln!(out, "delete {} {t} {}", set.kind, set.name);
            }
        }
        let kept = |sub: &Subchain, of: &Chain| of.subchains.iter().any(|s| s.name == sub.name);
        for (o, n) in &changed {
            for sub in o.subchains.iter().filter(|s| !kept(s, n)) {
                let _ = writeln!(out, "delete chain {t} {}", sub.name);
            }
        }
        for chain in &removed {
            for sub in &chain.subchains {
                let _ = writeln!(out, "delete chain {t} {}", sub.name);
            }
            let _ = writeln!(out, "delete chain {t} {}", chain.name);
        }
        // 3. Declare new chains and subchains before any rule or map goes
        //    to them.
        for chain in &added {
            let _ = writeln!(out, "add chain {t} {}", chain.name);
            for sub in &chain.subchains {
                let _ = writeln!(out, "add chain {t} {}", sub.name);
            }
        }
        for (o, n) in &changed {
            for sub in n.subchains.iter().filter(|s| !kept(s, o)) {
                let _ = writeln!(out, "add chain {t} {}", sub.name);
            }
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
                    render_set_body(&chain.name, set, &carry.counts, &mut given)
                );
            }
        }
        for chain in &rebuilt {
            for rule in &chain.rules {
                let _ = writeln!(out, "add rule {t} {} {rule}", chain.name);
            }
            for sub in &chain.subchains {
                for rule in &sub.rules {
                    let _ = writeln!(out, "add rule {t} {} {rule}", sub.name);
                }
            }
        }
        out.push_str(&additions);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl_chain(sets: &[(&str, &[&str])], rules: usize) -> Chain {
        Chain {
            name: "ACL_INBOUND_eth2".into(),
            hook: None,
            sets: sets
                .iter()
                .map(|(name, elements)| Set {
                    name: name.to_string(),
                    kind: "set",
                    spec: "type ipv4_addr; flags interval; counter;".into(),
                    elements: elements.iter().map(|e| e.to_string()).collect(),
                })
                .collect(),
            rules: (0..rules).map(|k| format!("rule {k}")).collect(),
            subchains: Vec::new(),
        }
    }

    fn ruleset(chain: Chain) -> Ruleset {
        Ruleset {
            chains: vec![chain],
        }
    }

    const A: &str = r#"10.0.0.0/8 comment "1 a""#;
    const B: &str = r#"10.1.0.0/16 comment "2 b""#;
    const B_RENUMBERED: &str = r#"10.1.0.0/16 comment "5 b""#;
    const C: &str = r#"10.2.0.0/16 comment "3 c""#;

    #[test]
    fn set_differences_found_in_the_middle_equal_those_of_whole_sets() {
        let list = |v: &[u32]| -> Vec<String> { v.iter().map(|n| n.to_string()).collect() };
        fn whole<'a>(old: &'a [String], new: &'a [String]) -> (Vec<&'a String>, Vec<&'a String>) {
            let gone: Vec<&String> = old.iter().filter(|e| !new.contains(e)).collect();
            let came: Vec<&String> = new.iter().filter(|e| !old.contains(e)).collect();
            (gone, came)
        }
        let cases: [(&[u32], &[u32]); 7] = [
            (&[1, 2, 3, 4], &[1, 2, 3, 4]),
            (&[1, 2, 3, 4], &[1, 2, 5, 4]),
            (&[1, 2, 3, 4], &[1, 3, 4]),
            (&[1, 2, 3, 4], &[1, 2, 3, 4, 5]),
            (&[1, 2, 3, 4], &[5, 1, 2, 3, 4]),
            // An element of the middle that is also in the common part.
            (&[1, 2, 1, 4], &[1, 2, 9, 4]),
            (&[1, 2, 3], &[3, 2, 1]),
        ];
        for (old, new) in cases {
            let (old, new) = (list(old), list(new));
            assert_eq!(
                set_difference(&old, &new),
                whole(&old, &new),
                "{old:?} {new:?}"
            );
        }
        let long: Vec<String> = (0..100).map(|n| n.to_string()).collect();
        let reversed: Vec<String> = long.iter().rev().cloned().collect();
        assert_eq!(set_difference(&long, &reversed), whole(&long, &reversed));
    }

    #[test]
    fn adding_or_deleting_an_item_reads_nothing_and_keeps_the_other_elements() {
        let old = ruleset(acl_chain(&[("s", &[A, B])], 1));
        let new = ruleset(acl_chain(&[("s", &[A, B, C])], 1));
        assert_eq!(new.carry_needs(&old), CarryNeeds::default());
        assert_eq!(
            new.render_update(&old).unwrap(),
            format!("add element inet vpc s {{ {C} }}\n")
        );
        assert_eq!(old.carry_needs(&new), CarryNeeds::default());
    }

    #[test]
    fn a_renumbered_item_is_deleted_and_added_again_with_its_count() {
        let old = ruleset(acl_chain(&[("s", &[A, B])], 1));
        let new = ruleset(acl_chain(&[("s", &[A, B_RENUMBERED])], 1));
        let needs = new.carry_needs(&old);
        let item = ("ACL_INBOUND_eth2".to_string(), "b".to_string());
        assert!(needs.sets.is_empty(), "no set is read whole");
        assert_eq!(
            needs.elements,
            BTreeMap::from([("s".to_string(), vec!["10.1.0.0/16".to_string()])])
        );
        assert_eq!(needs.refreshed, BTreeSet::from([item.clone()]));
        let carry = Carry {
            refreshed: needs.refreshed,
            counts: ChainCounts::from([(item, (3, 384))]),
        };
        assert_eq!(
            new.render_update_with(&old, &carry).unwrap(),
            "delete element inet vpc s { 10.1.0.0/16 }\n\
             add element inet vpc s { 10.1.0.0/16 counter packets 3 bytes 384 comment \"5 b\" }\n"
        );
    }

    #[test]
    fn with_the_index_a_renumbered_item_reads_and_moves_only_its_changed_elements() {
        // b has two elements; renumbering it changes both tags.
        const B2: &str = r#"10.9.0.0/16 comment "2 b""#;
        const B2_RENUMBERED: &str = r#"10.9.0.0/16 comment "5 b""#;
        let old = ruleset(acl_chain(&[("s", &[A, B]), ("t", &[B2, C])], 2));
        let new = ruleset(acl_chain(
            &[("s", &[A, B_RENUMBERED]), ("t", &[B2_RENUMBERED, C])],
            2,
        ));
        let index = ItemIndex::of(&old);
        let needs = new.carry_needs_indexed(&old, &index);
        assert!(needs.refreshed.is_empty(), "no item is refreshed whole");
        assert_eq!(
            needs.elements,
            BTreeMap::from([
                ("s".to_string(), vec!["10.1.0.0/16".to_string()]),
                ("t".to_string(), vec!["10.9.0.0/16".to_string()]),
            ])
        );
        let item = ("ACL_INBOUND_eth2".to_string(), "b".to_string());
        let carry = Carry {
            refreshed: needs.refreshed,
            counts: ChainCounts::from([(item, (3, 384))]),
        };
        // The item's whole count goes to its first new element, once.
        assert_eq!(
            new.render_update_with(&old, &carry).unwrap(),
            "delete element inet vpc s { 10.1.0.0/16 }\n\
             delete element inet vpc t { 10.9.0.0/16 }\n\
             add element inet vpc s { 10.1.0.0/16 counter packets 3 bytes 384 comment \"5 b\" }\n\
             add element inet vpc t { 10.9.0.0/16 comment \"5 b\" }\n"
        );
    }

    #[test]
    fn with_the_index_adding_or_deleting_an_item_reads_nothing() {
        let old = ruleset(acl_chain(&[("s", &[A, B])], 1));
        let new = ruleset(acl_chain(&[("s", &[A, B, C])], 1));
        assert_eq!(
            new.carry_needs_indexed(&old, &ItemIndex::of(&old)),
            CarryNeeds::default()
        );
        assert_eq!(
            old.carry_needs_indexed(&new, &ItemIndex::of(&new)),
            CarryNeeds::default()
        );
    }

    #[test]
    fn an_item_losing_an_element_it_does_not_replace_is_refreshed_whole() {
        // b keeps 10.1.0.0/16 and loses 10.9.0.0/16: its count is carried
        // by refreshing the element it keeps, found through the index.
        const B2: &str = r#"10.9.0.0/16 comment "2 b""#;
        let old = ruleset(acl_chain(&[("s", &[A, B]), ("t", &[B2, C])], 2));
        let new = ruleset(acl_chain(&[("s", &[A, B]), ("t", &[C])], 2));
        let index = ItemIndex::of(&old);
        let needs = new.carry_needs_indexed(&old, &index);
        assert_eq!(needs, new.carry_needs(&old));
        assert_eq!(
            needs.refreshed,
            BTreeSet::from([("ACL_INBOUND_eth2".to_string(), "b".to_string())])
        );
    }

    #[test]
    fn a_rebuilt_chain_gives_each_staying_item_its_count_once() {
        let old = ruleset(acl_chain(&[("s", &[A, B])], 1));
        let new = ruleset(acl_chain(&[("s", &[A]), ("t", &[B, C])], 2));
        let needs = new.carry_needs(&old);
        assert_eq!(needs.sets, ["s"], "the old sets holding a and b");
        assert!(needs.refreshed.is_empty(), "the whole chain is rebuilt");
        let chain = "ACL_INBOUND_eth2".to_string();
        let carry = Carry {
            refreshed: BTreeSet::new(),
            counts: ChainCounts::from([
                ((chain.clone(), "a".into()), (1, 10)),
                ((chain, "b".into()), (2, 20)),
            ]),
        };
        let script = new.render_update_with(&old, &carry).unwrap();
        assert!(
            script.contains(r#"10.0.0.0/8 counter packets 1 bytes 10 comment "1 a""#),
            "{script}"
        );
        assert!(
            script.contains(r#"10.1.0.0/16 counter packets 2 bytes 20 comment "2 b""#),
            "{script}"
        );
        assert_eq!(script.matches("counter packets").count(), 2, "{script}");
        // The full replacement carries the same way.
        let full = new.render_full_with(&carry.counts);
        assert_eq!(full.matches("counter packets").count(), 2, "{full}");
    }

    #[test]
    fn a_rebuilt_chain_empties_its_subchains_drops_its_maps_before_them_and_makes_new_ones_first() {
        let with_subs = |subs: &[&str], map: &[&str]| {
            let mut chain = acl_chain(&[("s", &[A])], 1);
            chain.sets.push(Set {
                name: "m".into(),
                kind: "map",
                spec: "type ipv4_addr . inet_proto : verdict; flags interval;".into(),
                elements: map.iter().map(|e| e.to_string()).collect(),
            });
            chain.subchains = subs
                .iter()
                .map(|name| Subchain {
                    name: name.to_string(),
                    rules: vec![format!("rule of {name}")],
                })
                .collect();
            ruleset(chain)
        };
        let old = with_subs(&["SUB_a", "SUB_b"], &["10.0.0.0/9 . 0-255 : jump SUB_a"]);
        let new = with_subs(&["SUB_b", "SUB_c"], &["10.128.0.0/9 . 0-255 : jump SUB_c"]);
        let script = new.render_update(&old).unwrap();
        let at = |line: &str| {
            script
                .lines()
                .position(|l| l == line)
                .unwrap_or_else(|| panic!("{line:?} not in\n{script}"))
        };
        let t = "inet vpc";
        // Nothing refers to a subchain that goes once the chains are
        // flushed and the map is deleted; the map's new elements need the
        // new subchain.
        assert!(at(&format!("flush chain {t} SUB_a")) < at(&format!("delete map {t} m")));
        assert!(at(&format!("delete map {t} m")) < at(&format!("delete chain {t} SUB_a")));
        assert!(
            at(&format!("add chain {t} SUB_c"))
                < at(&format!(
                    "add map {t} m {{ type ipv4_addr . inet_proto : verdict; flags interval; elements = {{ 10.128.0.0/9 . 0-255 : jump SUB_c }}; }}"
                ))
        );
        assert!(
            at(&format!("flush chain {t} SUB_b"))
                < at(&format!("add rule {t} SUB_b rule of SUB_b"))
        );
        assert!(
            !script.contains(&format!("delete chain {t} SUB_b")),
            "{script}"
        );
        assert!(
            !script.contains(&format!("add chain {t} SUB_b")),
            "{script}"
        );
        // The shape counts subchains as chains and maps as sets.
        let shape = new.shape();
        assert_eq!(shape.chains.get("SUB_c"), Some(&(false, 1)));
        assert_eq!(shape.sets.get("m"), Some(&1));
        // A full load declares subchains before the maps that jump to them.
        let full = new.render_full();
        assert!(
            full.find("chain SUB_c {").unwrap() < full.find("map m {").unwrap(),
            "{full}"
        );
    }
}
