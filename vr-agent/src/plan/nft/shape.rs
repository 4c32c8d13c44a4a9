//! The shape of the agent's table: its chains (hooked or not, with their
//! rule counts) and its named sets and maps (with their element counts).
//!
//! The reconcile loop compares the shape of the planned [`Ruleset`] with the
//! shape of the live table as `nft -j list table` reports it. Rule text is
//! not compared here because nft prints rules in its own normal form; the
//! shape alone catches a rule inserted, deleted or moved to another chain,
//! an element added or removed, and a chain or set created or dropped by
//! hand, whenever it happens, including right after an apply.

use std::collections::BTreeMap;

use super::Ruleset;

/// Chains (hooked, rule count) and sets or maps (element count), by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    pub chains: BTreeMap<String, (bool, usize)>,
    pub sets: BTreeMap<String, usize>,
}

impl Ruleset {
    /// The shape the table has once this ruleset is loaded.
    pub fn shape(&self) -> Shape {
        let mut shape = Shape::default();
        for chain in &self.chains {
            shape.chains.insert(
                chain.name.clone(),
                (chain.hook.is_some(), chain.rules.len()),
            );
            for sub in &chain.subchains {
                shape
                    .chains
                    .insert(sub.name.clone(), (false, sub.rules.len()));
            }
            for set in &chain.sets {
                shape.sets.insert(set.name.clone(), set.elements.len());
            }
        }
        shape
    }
}

impl Shape {
    /// The shape of `nft -j list table` output.
    pub fn from_json(text: &str) -> Result<Shape, String> {
        let doc: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("nft -j output: {e}"))?;
        let items = doc
            .get("nftables")
            .and_then(|v| v.as_array())
            .ok_or("nft -j output has no \"nftables\" array")?;
        let mut shape = Shape::default();
        let mut rules: BTreeMap<String, usize> = BTreeMap::new();
        for item in items {
            let name = |o: &serde_json::Value| {
                o.get("name")
                    .and_then(|n| n.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            if let Some(chain) = item.get("chain") {
                shape
                    .chains
                    .insert(name(chain), (chain.get("hook").is_some(), 0));
            } else if let Some(set) = item.get("set").or_else(|| item.get("map")) {
                let elements = set
                    .get("elem")
                    .and_then(|e| e.as_array())
                    .map_or(0, |e| e.len());
                shape.sets.insert(name(set), elements);
            } else if let Some(rule) = item.get("rule") {
                let chain = rule
                    .get("chain")
                    .and_then(|c| c.as_str())
                    .unwrap_or_default();
                *rules.entry(chain.to_string()).or_default() += 1;
            }
        }
        for (chain, count) in rules {
            shape.chains.entry(chain).or_insert((false, 0)).1 = count;
        }
        Ok(shape)
    }

    /// How `live` differs from `self` (the planned shape), one line each.
    pub fn differences(&self, live: &Shape) -> Vec<String> {
        let mut out = Vec::new();
        for (name, (hooked, rules)) in &self.chains {
            match live.chains.get(name) {
                None => out.push(format!("chain {name} is missing")),
                Some((h, _)) if h != hooked => out.push(format!("chain {name} changed its hook")),
                Some((_, n)) if n != rules => {
                    out.push(format!("chain {name} has {n} rules, {rules} planned"))
                }
                Some(_) => {}
            }
        }
        for name in live.chains.keys().filter(|n| !self.chains.contains_key(*n)) {
            out.push(format!("chain {name} is not planned"));
        }
        for (name, elements) in &self.sets {
            match live.sets.get(name) {
                None => out.push(format!("set {name} is missing")),
                Some(n) if n != elements => {
                    out.push(format!("set {name} has {n} elements, {elements} planned"))
                }
                Some(_) => {}
            }
        }
        for name in live.sets.keys().filter(|n| !self.sets.contains_key(*n)) {
            out.push(format!("set {name} is not planned"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = r#"{"nftables": [
        {"metainfo": {"version": "1.0.6"}},
        {"table": {"family": "inet", "name": "vpc", "handle": 1}},
        {"set": {"family": "inet", "name": "s", "table": "vpc", "type": "ipv4_addr",
                 "handle": 2, "elem": ["10.0.0.1", "10.0.0.2"]}},
        {"map": {"family": "inet", "name": "m", "table": "vpc", "type": "ipv4_addr",
                 "map": "mark", "handle": 3}},
        {"chain": {"family": "inet", "table": "vpc", "name": "ACL", "handle": 4}},
        {"chain": {"family": "inet", "table": "vpc", "name": "fwd", "handle": 5,
                   "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
        {"rule": {"family": "inet", "table": "vpc", "chain": "fwd", "handle": 6, "expr": []}},
        {"rule": {"family": "inet", "table": "vpc", "chain": "fwd", "handle": 7, "expr": []}}
    ]}"#;

    #[test]
    fn the_live_shape_counts_rules_per_chain_and_elements_per_set() {
        let shape = Shape::from_json(LISTING).unwrap();
        assert_eq!(
            shape.chains,
            BTreeMap::from([("ACL".into(), (false, 0)), ("fwd".into(), (true, 2))])
        );
        assert_eq!(
            shape.sets,
            BTreeMap::from([("m".into(), 0), ("s".into(), 2)])
        );
    }

    #[test]
    fn an_extra_rule_a_lost_element_and_a_foreign_chain_are_differences() {
        let planned = Shape::from_json(LISTING).unwrap();
        let mut live = planned.clone();
        assert!(planned.differences(&live).is_empty());
        live.chains.insert("fwd".into(), (true, 3));
        live.sets.insert("s".into(), 1);
        live.chains.insert("mine".into(), (false, 1));
        assert_eq!(
            planned.differences(&live),
            [
                "chain fwd has 3 rules, 2 planned",
                "chain mine is not planned",
                "set s has 1 elements, 2 planned"
            ]
        );
    }
}
