//! Compiling a changed list from the compile of the list before it.
//!
//! A one-item change to a list of thousands should not deal every entry
//! into layers and place every set again. An entry (one CIDR of an item)
//! that intersects no other entry of its list is *isolated*: it shadows
//! nothing and nothing shadows it, it raises no other entry's layer and
//! takes layer 0 itself, and its set element is its own box, which cuts no
//! other box and is cut by none. So when every entry that goes (from the
//! old list) and every entry that comes (in the new list) is isolated in
//! its list, the full compile of the new list equals the old compile with
//! the elements of the entries that go taken out of their layer-0 sets and
//! those of the entries that come put in, each at the place the placement
//! order gives it (widest first, see [`crate::plan::boxes`]).
//!
//! Two things of the full compile depend on more than overlap, and are
//! checked too:
//! - the look for a shadowing entry compares only the first
//!   [`SHADOW_PROBES`] entries of an address prefix, so an isolated entry
//!   could move another into or out of that window: the change must leave
//!   every prefix it touches with no more entries than the window holds;
//! - the element budget (per entry times entries) and the cuts it allows are
//!   spent set by set: each set's elements and cuts are checked against
//!   what the full compile would have left at that set.
//!
//! Anything else (a change touching overlapping entries, or more than a
//! few items) is compiled whole. [`compile_from`] is the entry point; the
//! tests compare it with the full compile over random sequences of changes.

use super::*;
use crate::plan::boxes::placement_order;

/// Items changed (gone or come) above which the list is compiled whole.
const MAX_CHANGED_ITEMS: usize = 16;

/// Compiles `rules` (in number order) knowing that `old` is the compile of
/// `old_rules` within the same `per_entry`: incrementally when the change
/// allows it (see the module), else in full. The result is the same.
pub fn compile_from(
    old_rules: &[&AclRule],
    old: &Compiled,
    rules: &[&AclRule],
    per_entry: usize,
) -> Result<Compiled, TooManyElements> {
    match incremental(old_rules, old, rules, per_entry) {
        Some(compiled) => Ok(compiled),
        None => compile_bounded(rules, per_entry),
    }
}

/// Whether two versions of an item make the same entries.
fn same_entries(a: &AclRule, b: &AclRule) -> bool {
    // A rule the list before and after share is the same rule.
    std::ptr::eq(a, b)
        || a.number == b.number
            && a.action == b.action
            && a.matches == b.matches
            && a.cidrs == b.cidrs
}

/// One entry of a changed item.
struct Changed {
    number: u32,
    origin: u32,
    action: Action,
    shape: Shape,
    space: [Span; 4],
    key: Box3,
}

fn changed_entries(rules: &[&AclRule]) -> Vec<Changed> {
    let mut out = Vec::new();
    for rule in rules {
        for (origin, net) in rule.cidrs.iter().enumerate() {
            let (shape, space, key) = entry_box(rule, net);
            out.push(Changed {
                number: rule.number,
                origin: origin as u32,
                action: rule.action,
                shape,
                space,
                key,
            });
        }
    }
    out
}

/// Whether every entry of `changed` is isolated in `list` (which holds
/// them) and leaves its prefix's shadow window whole; also the number of
/// entries in `list`.
fn isolated(list: &[&AclRule], changed: &[Changed]) -> Option<usize> {
    let mut same_prefix = vec![0usize; changed.len()];
    let mut entries = 0;
    for rule in list {
        for (origin, net) in rule.cidrs.iter().enumerate() {
            entries += 1;
            if changed.is_empty() {
                continue;
            }
            // Both tests below need the addresses to overlap (a prefix's
            // key holds its addresses): an entry whose addresses meet no
            // changed entry's is passed without its box.
            let (first, last) = addr_span(net);
            if !changed
                .iter()
                .any(|c| first <= c.space[0].1 && c.space[0].0 <= last)
            {
                continue;
            }
            let (_, space, _) = entry_box(rule, net);
            for (k, c) in changed.iter().enumerate() {
                if c.number == rule.number && c.origin == origin as u32 {
                    continue;
                }
                if intersects(&space, &c.space) {
                    return None;
                }
                if ByPrefix::key(&space) == ByPrefix::key(&c.space) {
                    same_prefix[k] += 1;
                    if same_prefix[k] + 1 > SHADOW_PROBES {
                        return None;
                    }
                }
            }
        }
    }
    Some(entries)
}

fn group_order(action: Action) -> usize {
    match action {
        Action::Deny => 0,
        Action::Allow => 1,
    }
}

/// The compile of `rules` from `old` (the compile of `old_rules`), or
/// `None` when the change is not one the module's argument covers.
pub(crate) fn incremental(
    old_rules: &[&AclRule],
    old: &Compiled,
    rules: &[&AclRule],
    per_entry: usize,
) -> Option<Compiled> {
    // Both lists are in number order: walk them together.
    let (mut gone, mut came): (Vec<&AclRule>, Vec<&AclRule>) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    loop {
        match (old_rules.get(i), rules.get(j)) {
            (Some(a), Some(b)) if a.number == b.number => {
                if !same_entries(a, b) {
                    gone.push(a);
                    came.push(b);
                }
                i += 1;
                j += 1;
            }
            (Some(a), None) => {
                gone.push(a);
                i += 1;
            }
            (Some(a), Some(b)) if a.number < b.number => {
                gone.push(a);
                i += 1;
            }
            (_, Some(b)) => {
                came.push(b);
                j += 1;
            }
            (None, None) => break,
        }
        if gone.len() + came.len() > MAX_CHANGED_ITEMS {
            return None;
        }
    }
    if rules.is_empty() {
        return None;
    }
    let gone = changed_entries(&gone);
    let came = changed_entries(&came);
    isolated(old_rules, &gone)?;
    let entries = isolated(rules, &came)?;

    let mut out = old.clone();
    for e in &gone {
        let at = out
            .lookups
            .iter()
            .position(|l| l.layer == 0 && l.action == e.action && l.shape == e.shape)?;
        let lookup = &mut out.lookups[at];
        let k = (0..lookup.items.len())
            .find(|&k| lookup.items[k] == e.number && lookup.origins[k] == e.origin)?;
        if lookup.elements[k] != e.key {
            return None;
        }
        lookup.elements.remove(k);
        lookup.items.remove(k);
        lookup.origins.remove(k);
        if lookup.elements.is_empty() {
            out.lookups.remove(at);
        }
    }
    // The box an element of the new list came from, for its place.
    let source = |number: u32, origin: u32| -> Option<Box3> {
        let at = rules.binary_search_by_key(&number, |r| r.number).ok()?;
        let net = rules[at].cidrs.get(origin as usize)?;
        Some(entry_box(rules[at], net).2)
    };
    for e in &came {
        let group = (0u32, group_order(e.action), e.shape);
        let at = out
            .lookups
            .partition_point(|l| (l.layer, group_order(l.action), l.shape) < group);
        let exists = out
            .lookups
            .get(at)
            .is_some_and(|l| (l.layer, group_order(l.action), l.shape) == group);
        if !exists {
            out.lookups.insert(
                at,
                Lookup {
                    layer: 0,
                    action: e.action,
                    shape: e.shape,
                    elements: Vec::new(),
                    items: Vec::new(),
                    origins: Vec::new(),
                    cuts: 0,
                },
            );
        }
        let lookup = &mut out.lookups[at];
        let wanted = placement_order(&e.key);
        // Elements are in placement order of the boxes they came from.
        let (mut lo, mut hi) = (0, lookup.items.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if placement_order(&source(lookup.items[mid], lookup.origins[mid])?) < wanted {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let k = lo;
        lookup.elements.insert(k, e.key);
        lookup.items.insert(k, e.number);
        lookup.origins.insert(k, e.origin);
    }
    // The budget the full compile would spend, set by set.
    let mut budget = per_entry.saturating_mul(entries);
    for lookup in &out.lookups {
        if lookup.elements.len() > budget || lookup.cuts > budget.saturating_mul(2) {
            return None;
        }
        budget -= lookup.elements.len();
    }
    out.layers = out.lookups.iter().map(|l| l.layer + 1).max().unwrap_or(0);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Direction, Router};
    use crate::plan::nft::{NftOptions, plan, plan_from};
    use crate::testing::acls::{Generator, Rng};
    use crate::testing::{mac, sample_config};
    use vpc_proto::v1 as pb;

    /// A small random item: CIDRs in 10.0.0.0/24 of lengths 27 to 32, so
    /// that some items overlap and most do not.
    fn small_rule(rng: &mut Rng, number: u32) -> AclRule {
        let cidr = |rng: &mut Rng| -> IpNet {
            let len = rng.range(27, 32) as u8;
            let at = rng.range(0, 255) as u8;
            let net = ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(10, 0, 0, at), len).unwrap();
            net.trunc().into()
        };
        let mut cidrs = vec![cidr(rng)];
        if rng.chance(15) {
            cidrs.push(cidr(rng));
        }
        let matches = match rng.range(0, 5) {
            0 => Match::All,
            1 => Match::Icmp {
                icmp_type: rng.chance(50).then(|| rng.range(0, 3) as u8),
                code: None,
            },
            2 => Match::Protocol(47),
            _ => {
                let first = rng.range(1, 40) as u16;
                Match::Ports {
                    protocol: if rng.chance(50) { 6 } else { 17 },
                    first,
                    last: first + rng.range(0, 3) as u16,
                }
            }
        };
        AclRule {
            number,
            id: String::new(),
            action: if rng.chance(50) {
                Action::Allow
            } else {
                Action::Deny
            },
            direction: Direction::Ingress,
            matches,
            cidrs,
        }
    }

    /// One random change: an item added, deleted, renumbered, flipped or
    /// given other ports or CIDRs.
    fn small_change(rng: &mut Rng, rules: &mut Vec<AclRule>) {
        let free = |rules: &[AclRule], rng: &mut Rng| loop {
            let n = rng.range(1, 200);
            if rules.iter().all(|r| r.number != n) {
                break n;
            }
        };
        let k = if rules.is_empty() {
            0
        } else {
            rng.range(0, rules.len() as u32 - 1) as usize
        };
        match rng.range(0, 5) {
            _ if rules.is_empty() => {
                let n = free(rules, rng);
                rules.push(small_rule(rng, n));
            }
            0 => {
                let n = free(rules, rng);
                rules.push(small_rule(rng, n));
            }
            1 => {
                rules.remove(k);
            }
            2 => rules[k].number = free(rules, rng),
            3 => {
                rules[k].action = match rules[k].action {
                    Action::Allow => Action::Deny,
                    Action::Deny => Action::Allow,
                }
            }
            _ => {
                let number = rules[k].number;
                rules[k] = small_rule(rng, number);
            }
        }
        rules.sort_by_key(|r| r.number);
    }

    #[test]
    fn incremental_compiles_equal_full_compiles_over_random_changes() {
        let mut rng = Rng::new(17);
        let (mut taken, mut steps) = (0, 0);
        for case in 0..300 {
            let per_entry = [1, 2, 4][case % 3];
            let len = rng.range(0, 30);
            let mut rules: Vec<AclRule> = (1..=len).map(|n| small_rule(&mut rng, n * 3)).collect();
            let refs: Vec<&AclRule> = rules.iter().collect();
            let Ok(mut compiled) = compile_bounded(&refs, per_entry) else {
                continue;
            };
            for _ in 0..20 {
                let old = rules.clone();
                small_change(&mut rng, &mut rules);
                let (old_refs, refs): (Vec<&AclRule>, Vec<&AclRule>) =
                    (old.iter().collect(), rules.iter().collect());
                let full = compile_bounded(&refs, per_entry);
                let fast = incremental(&old_refs, &compiled, &refs, per_entry);
                steps += 1;
                if let Some(fast) = &fast {
                    taken += 1;
                    assert_eq!(Ok(fast), full.as_ref(), "{old:?}\n->\n{rules:?}");
                }
                assert_eq!(compile_from(&old_refs, &compiled, &refs, per_entry), full);
                match full {
                    Ok(full) => compiled = full,
                    Err(_) => {
                        rules = old;
                    }
                }
            }
        }
        println!("incremental compile taken in {taken} of {steps} changes");
        assert!(
            taken * 5 > steps,
            "only {taken} of {steps} changes were incremental"
        );
    }

    /// Changes to a generator's list: items added (isolated ones, and
    /// overlapping ones from another list of the generator), deleted,
    /// renumbered, flipped, given another port or the other direction.
    fn generator_change(
        rng: &mut Rng,
        items: &mut Vec<pb::AclItem>,
        spare: &[pb::AclItem],
        fresh: &mut u32,
    ) {
        let free = |items: &[pb::AclItem], rng: &mut Rng| loop {
            let n = rng.range(1, 5000);
            if items.iter().all(|i| i.number != n) {
                break n;
            }
        };
        // Half the changes touch an item added here (isolated unless
        // changed to overlap), half any item.
        let added: Vec<usize> = (0..items.len())
            .filter(|&k| {
                items[k]
                    .cidrs
                    .first()
                    .is_some_and(|c| c.starts_with("10.20."))
            })
            .collect();
        let k = if !added.is_empty() && rng.chance(50) {
            added[rng.range(0, added.len() as u32 - 1) as usize]
        } else {
            rng.range(0, items.len() as u32 - 1) as usize
        };
        match rng.range(0, 6) {
            0 | 1 => {
                *fresh += 1;
                let number = free(items, rng);
                let port = rng.range(1, 60000);
                items.push(crate::testing::item(
                    number,
                    if rng.chance(50) {
                        pb::AclAction::Allow
                    } else {
                        pb::AclAction::Deny
                    },
                    pb::TrafficType::Ingress,
                    pb::Protocol::Tcp,
                    &[&format!("10.20.{}.{}/32", *fresh / 250, *fresh % 250)],
                    Some((port, port)),
                ));
            }
            2 => {
                let mut item = spare[rng.range(0, spare.len() as u32 - 1) as usize].clone();
                item.number = free(items, rng);
                items.push(item);
            }
            3 => {
                items.remove(k);
            }
            4 => items[k].number = free(items, rng),
            5 => {
                items[k].action = if items[k].action == pb::AclAction::Allow as i32 {
                    pb::AclAction::Deny as i32
                } else {
                    pb::AclAction::Allow as i32
                }
            }
            _ => {
                if items[k].start_port.is_some() {
                    let port = rng.range(1, 60000);
                    items[k].start_port = Some(port);
                    items[k].end_port = Some(port);
                } else {
                    items[k].traffic_type =
                        if items[k].traffic_type == pb::TrafficType::Ingress as i32 {
                            pb::TrafficType::Egress as i32
                        } else {
                            pb::TrafficType::Ingress as i32
                        };
                }
            }
        }
    }

    #[test]
    fn incremental_compiles_equal_full_compiles_over_the_generators() {
        let base = Router::from_config(&sample_config()).expect("valid sample");
        for generator in Generator::ALL {
            let mut rng = Rng::new(7);
            let mut items = generator.items(400, 1);
            let spare = generator.items(400, 2);
            let mut fresh = 0;
            let acl = |items: &[pb::AclItem]| pb::NetworkAcl {
                device_index: 2,
                mac_address: mac(2),
                items: items.to_vec(),
                ..Default::default()
            };
            let mut router = base
                .with_acl(&acl(&items), ELEMENTS_PER_ENTRY)
                .expect("valid");
            let options = NftOptions::default();
            let mut ruleset = plan(&router, &options);
            let (mut taken, mut steps) = (0, 0);
            for _ in 0..60 {
                let before = items.clone();
                generator_change(&mut rng, &mut items, &spare, &mut fresh);
                let fresh = base.with_acl(&acl(&items), ELEMENTS_PER_ENTRY);
                let Ok(next) =
                    router.with_acl_from(&acl(&items), ELEMENTS_PER_ENTRY, Some(&acl(&before)))
                else {
                    // Past the element bound (an overlapping item from the
                    // other list): the full compile refuses it too.
                    assert!(fresh.is_err(), "{}", generator.name());
                    items = before;
                    continue;
                };
                // Validated and compiled from the list before, or from
                // nothing: the same.
                assert!(
                    fresh.expect("valid").acls[&2] == next.acls[&2],
                    "{}",
                    generator.name()
                );
                let (old, new) = (&router.acls[&2], &next.acls[&2]);
                for direction in [Direction::Ingress, Direction::Egress] {
                    let list: Vec<&AclRule> = new.rules(direction).collect();
                    let old_list: Vec<&AclRule> = old.rules(direction).collect();
                    let full = compile_bounded(&list, ELEMENTS_PER_ENTRY).expect("fits");
                    assert_eq!(new.compiled(direction), &full, "{}", generator.name());
                    steps += 1;
                    if incremental(
                        &old_list,
                        old.compiled(direction),
                        &list,
                        ELEMENTS_PER_ENTRY,
                    )
                    .is_some()
                    {
                        taken += 1;
                    }
                }
                // The table planned from the one before is the table
                // planned from nothing.
                let next_ruleset = plan_from(&next, &options, Some((&router, &ruleset)));
                assert!(
                    next_ruleset == plan(&next, &options),
                    "{}",
                    generator.name()
                );
                ruleset = next_ruleset;
                router = next;
            }
            println!(
                "{}: incremental compile taken in {taken} of {steps} (changes x directions)",
                generator.name()
            );
            assert!(taken > 0, "{}: never incremental", generator.name());
        }
    }
}
