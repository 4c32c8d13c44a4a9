//! How many elements each ACL item has in its chain, kept beside the live
//! table.
//!
//! A one-item change carries the item's count from the elements that go to
//! those that come (see [`Ruleset::carry_needs_indexed`]). That needs one
//! fact the changed sets alone do not give: whether an item that loses
//! elements and gains none keeps others elsewhere in its chain (their
//! count must then be refreshed too, or the item's total shrinks). Finding
//! it by parsing every element's tag costs a walk of the chain, 10,000
//! elements for one item; the index answers it by a lookup, and is kept
//! right across a change by looking only at the sets that changed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::acl::item_of_element;
use super::render::{SMALL_MIDDLE, middles, set_difference};
use super::{Chain, Ruleset};

/// Per ACL chain, how many elements each item has in the chain's sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemIndex {
    chains: HashMap<String, HashMap<String, u32>>,
}

/// The chains the index covers: the tiers' ACL chains, whose elements are
/// tagged with their item (see [`super::acl`]).
fn indexed(chain: &Chain) -> bool {
    chain.hook.is_none() && chain.name.starts_with("ACL_")
}

/// The items of `chain`'s elements, counted.
fn count_chain(chain: &Chain) -> HashMap<String, u32> {
    let mut out: HashMap<String, u32> = HashMap::new();
    for set in &chain.sets {
        for item in set.elements.iter().filter_map(|e| item_of_element(e)) {
            match out.get_mut(item) {
                Some(n) => *n += 1,
                None => {
                    out.insert(item.to_string(), 1);
                }
            }
        }
    }
    out
}

/// Whether two versions of a chain have the same sets, by name and order,
/// differing in a few elements each, so that the index is changed by the
/// elements that differ. A chain whose sets change more (a list replaced)
/// is counted again: cheaper than diffing its sets through hash sets.
fn few_differ(old: &Chain, new: &Chain) -> bool {
    old.sets.len() == new.sets.len()
        && old.sets.iter().zip(&new.sets).all(|(a, b)| {
            a.name == b.name
                && (Arc::ptr_eq(&a.elements, &b.elements) || {
                    let (om, nm, _) = middles(&a.elements, &b.elements);
                    om.len() + nm.len() <= SMALL_MIDDLE
                })
        })
}

impl ItemIndex {
    /// The index of `ruleset`, from every element of its ACL chains.
    pub fn of(ruleset: &Ruleset) -> ItemIndex {
        ItemIndex {
            chains: ruleset
                .chains
                .iter()
                .filter(|c| indexed(c))
                .map(|c| (c.name.clone(), count_chain(c)))
                .collect(),
        }
    }

    /// How many elements `item` has in `chain`; `None` when the chain is
    /// not indexed.
    pub fn count(&self, chain: &str, item: &str) -> Option<u32> {
        let items = self.chains.get(chain)?;
        Some(items.get(item).copied().unwrap_or(0))
    }

    /// Whether the index covers `chain`.
    pub fn covers(&self, chain: &str) -> bool {
        self.chains.contains_key(chain)
    }

    /// Brings the index of `old` to that of `new`: a chain whose sets keep
    /// their names and differ in a few elements is changed by the elements
    /// that go and come in the sets that differ (sets shared by both plans
    /// are skipped without a look), any other chain is counted again.
    pub fn update(&mut self, old: &Ruleset, new: &Ruleset) {
        let before: HashMap<&str, &Chain> =
            old.chains.iter().map(|c| (c.name.as_str(), c)).collect();
        let mut present: HashSet<&str> = HashSet::new();
        for chain in new.chains.iter().filter(|c| indexed(c)) {
            present.insert(chain.name.as_str());
            let was = before
                .get(chain.name.as_str())
                .filter(|o| few_differ(o, chain));
            if was.is_none() || !self.chains.contains_key(&chain.name) {
                self.chains.insert(chain.name.clone(), count_chain(chain));
                continue;
            }
            let (Some(old_chain), Some(items)) = (was, self.chains.get_mut(&chain.name)) else {
                continue;
            };
            for (a, b) in old_chain.sets.iter().zip(&chain.sets) {
                if Arc::ptr_eq(&a.elements, &b.elements) {
                    continue;
                }
                let (gone, came) = set_difference(&a.elements, &b.elements);
                for item in gone.into_iter().filter_map(|e| item_of_element(e)) {
                    if let Some(n) = items.get_mut(item) {
                        *n -= 1;
                        if *n == 0 {
                            items.remove(item);
                        }
                    }
                }
                for item in came.into_iter().filter_map(|e| item_of_element(e)) {
                    match items.get_mut(item) {
                        Some(n) => *n += 1,
                        None => {
                            items.insert(item.to_string(), 1);
                        }
                    }
                }
            }
        }
        self.chains
            .retain(|name, _| present.contains(name.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::nft::Set;
    use proptest::prelude::*;

    fn element(key: u32, item: u32) -> String {
        format!(
            "10.0.{}.{} comment \"{} item-{item}\"",
            key / 256,
            key % 256,
            item
        )
    }

    fn chain(name: &str, sets: &[Vec<(u32, u32)>]) -> Chain {
        Chain {
            name: name.into(),
            sets: sets
                .iter()
                .enumerate()
                .map(|(k, elements)| Set {
                    name: format!("{}_s{k}", name.to_ascii_lowercase()),
                    kind: "set",
                    spec: "type ipv4_addr; counter;".into(),
                    elements: elements.iter().map(|&(e, i)| element(e, i)).collect(),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_index_counts_each_items_elements_per_acl_chain_only() {
        let mut forward = chain("filter_forward", &[vec![(1, 1)]]);
        forward.hook = Some("type filter hook forward priority filter;".into());
        let ruleset = Ruleset {
            chains: vec![
                chain("ACL_INBOUND_eth2", &[vec![(1, 1), (2, 1)], vec![(3, 2)]]),
                forward,
            ],
        };
        let index = ItemIndex::of(&ruleset);
        assert_eq!(index.count("ACL_INBOUND_eth2", "item-1"), Some(2));
        assert_eq!(index.count("ACL_INBOUND_eth2", "item-2"), Some(1));
        assert_eq!(index.count("ACL_INBOUND_eth2", "item-3"), Some(0));
        assert_eq!(index.count("filter_forward", "item-1"), None);
        assert!(!index.covers("ACL_OUTBOUND_eth2"));
    }

    /// A change to a table of two ACL chains, each of up to three sets of
    /// elements `(key, item)`: elements removed, added, their item changed,
    /// a set shared by both plans, a chain's sets renamed, a chain gone.
    #[derive(Debug, Clone)]
    enum Step {
        Remove(usize, usize, usize),
        Add(usize, usize, u32, u32),
        Retag(usize, usize, usize, u32),
        RenameSets(usize),
        DropChain(usize),
        /// Every element of a set given to one item (a list replaced).
        RetagAll(usize, usize, u32),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0..2usize, 0..3usize, 0..50usize).prop_map(|(c, s, k)| Step::Remove(c, s, k)),
            (0..2usize, 0..3usize, 0..400u32, 0..12u32)
                .prop_map(|(c, s, e, i)| Step::Add(c, s, e, i)),
            (0..2usize, 0..3usize, 0..50usize, 0..12u32)
                .prop_map(|(c, s, k, i)| Step::Retag(c, s, k, i)),
            (0..2usize).prop_map(Step::RenameSets),
            (0..2usize).prop_map(Step::DropChain),
            (0..2usize, 0..3usize, 0..12u32).prop_map(|(c, s, i)| Step::RetagAll(c, s, i)),
        ]
    }

    fn table() -> impl Strategy<Value = Vec<Vec<Vec<(u32, u32)>>>> {
        prop::collection::vec(
            prop::collection::vec(prop::collection::vec((0..400u32, 0..12u32), 0..40), 3),
            2,
        )
    }

    /// `old` changed by `step`, sharing the sets the step does not touch.
    fn changed(old: &Ruleset, step: &Step) -> Ruleset {
        let mut new = old.clone();
        let chains = &mut new.chains;
        let edit = |chains: &mut Vec<Chain>, c: usize, s: usize, f: &dyn Fn(&mut Vec<String>)| {
            if let Some(set) = chains.get_mut(c).and_then(|ch| ch.sets.get_mut(s)) {
                let mut elements: Vec<String> = set.elements.to_vec();
                f(&mut elements);
                set.elements = elements.into();
            }
        };
        match *step {
            Step::Remove(c, s, k) => edit(chains, c, s, &|e| {
                if k < e.len() {
                    e.remove(k);
                }
            }),
            Step::Add(c, s, key, item) => edit(chains, c, s, &|e| {
                let new = element(key, item);
                let prefix = new.split(" comment").next().unwrap_or_default().to_string();
                // Keys are unique in a set, as the kernel keeps them.
                if !e.iter().any(|x| x.starts_with(&format!("{prefix} "))) {
                    e.insert(e.len() / 2, new);
                }
            }),
            Step::Retag(c, s, k, item) => edit(chains, c, s, &|e| {
                if let Some(x) = e.get_mut(k) {
                    let key = x.split(" comment").next().unwrap_or_default().to_string();
                    *x = format!("{key} comment \"{item} item-{item}\"");
                }
            }),
            Step::RetagAll(c, s, item) => edit(chains, c, s, &|e| {
                for x in e.iter_mut() {
                    let key = x.split(" comment").next().unwrap_or_default().to_string();
                    *x = format!("{key} comment \"{item} item-{item}\"");
                }
            }),
            Step::RenameSets(c) => {
                if let Some(chain) = chains.get_mut(c) {
                    for set in &mut chain.sets {
                        set.name.push('x');
                    }
                }
            }
            Step::DropChain(c) => {
                if c < chains.len() {
                    chains.remove(c);
                }
            }
        }
        new
    }

    fn unique_keys(sets: &[Vec<(u32, u32)>]) -> Vec<Vec<(u32, u32)>> {
        sets.iter()
            .map(|set| {
                let mut seen = HashSet::new();
                set.iter()
                    .copied()
                    .filter(|(k, _)| seen.insert(*k))
                    .collect()
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn the_index_kept_across_changes_equals_the_index_built_from_nothing(
            tables in table(),
            steps in prop::collection::vec(step(), 1..12),
        ) {
            let names = ["ACL_INBOUND_eth2", "ACL_OUTBOUND_eth2"];
            let mut ruleset = Ruleset {
                chains: tables
                    .iter()
                    .zip(names)
                    .map(|(sets, name)| chain(name, &unique_keys(sets)))
                    .collect(),
            };
            let mut index = ItemIndex::of(&ruleset);
            for step in &steps {
                let next = changed(&ruleset, step);
                index.update(&ruleset, &next);
                prop_assert_eq!(&index, &ItemIndex::of(&next), "after {:?}", step);
                ruleset = next;
            }
        }
    }
}
