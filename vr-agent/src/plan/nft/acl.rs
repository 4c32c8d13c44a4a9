//! ACL chains: the compiled lookups of one direction (see
//! [`crate::plan::acl`]) as set lookups, layer by layer.

use std::net::Ipv4Addr;
use std::sync::Arc;

use super::{Chain, Set, Subchain, inbound_chain, outbound_chain};
use crate::model::*;
use crate::plan::acl::{Compiled, Lookup, Shape};
use crate::plan::boxes::{Box3, Span};

fn suffix(shape: Shape) -> &'static str {
    match shape {
        Shape::V4Ports => "v4_ports",
        Shape::V4Proto => "v4_proto",
        Shape::V4Icmp => "v4_icmp",
        Shape::V6Ports => "v6_ports",
        Shape::V6Proto => "v6_proto",
        Shape::V6Icmp => "v6_icmp",
    }
}

fn set_type(shape: Shape) -> &'static str {
    match shape {
        Shape::V4Ports => "ipv4_addr . inet_proto . inet_service",
        Shape::V4Proto => "ipv4_addr . inet_proto",
        Shape::V4Icmp => "ipv4_addr . icmp_type . icmp_code",
        Shape::V6Ports => "ipv6_addr . inet_proto . inet_service",
        Shape::V6Proto => "ipv6_addr . inet_proto",
        Shape::V6Icmp => "ipv6_addr . icmpv6_type . icmpv6_code",
    }
}

/// The match expression, given `saddr` or `daddr`.
fn key(shape: Shape, addr: &str) -> String {
    match shape {
        Shape::V4Ports => format!("ip {addr} . meta l4proto . th dport"),
        Shape::V4Proto => format!("ip {addr} . meta l4proto"),
        Shape::V4Icmp => format!("ip {addr} . icmp type . icmp code"),
        Shape::V6Ports => format!("ip6 {addr} . meta l4proto . th dport"),
        Shape::V6Proto => format!("ip6 {addr} . meta l4proto"),
        Shape::V6Icmp => format!("ip6 {addr} . icmpv6 type . icmpv6 code"),
    }
}

fn render_addr(span: Span, v6: bool) -> String {
    let text = |v: u128| -> String {
        if v6 {
            std::net::Ipv6Addr::from(v).to_string()
        } else {
            Ipv4Addr::from(v as u32).to_string()
        }
    };
    let (lo, hi) = span;
    if lo == hi {
        return text(lo);
    }
    // A span that is exactly one prefix prints as a CIDR, as people write it.
    let bits: u32 = if v6 { 128 } else { 32 };
    match (hi - lo).checked_add(1) {
        // The whole IPv6 space has 2^128 addresses, one more than u128 holds.
        None => return format!("{}/0", text(lo)),
        Some(size) if size.is_power_of_two() && lo % size == 0 => {
            return format!("{}/{}", text(lo), bits - size.trailing_zeros());
        }
        Some(_) => {}
    }
    format!("{}-{}", text(lo), text(hi))
}

fn render_span(span: Span) -> String {
    if span.0 == span.1 {
        span.0.to_string()
    } else {
        format!("{}-{}", span.0, span.1)
    }
}

fn render_box(shape: Shape, b: &Box3) -> String {
    let mut parts = vec![render_addr(b[0], shape.v6()), render_span(b[1])];
    if shape.fields() == 3 {
        parts.push(render_span(b[2]));
    }
    parts.join(" . ")
}

/// The comment that tags an ACL set element with the number of the item it
/// came from, as the element is written in a script.
const ITEM_TAG: &str = " comment \"";

/// An ACL set element as written in a script: the key, then the item it
/// came from as the element's comment: its number, and its id when it has
/// one (`"7"` or `"7 <id>"`; an id is a checked identifier and a number an
/// integer, so nothing needs escaping).
fn tagged(key: String, number: u32, id: &str) -> String {
    if id.is_empty() {
        format!("{key}{ITEM_TAG}{number}\"")
    } else {
        format!("{key}{ITEM_TAG}{number} {id}\"")
    }
}

/// The key of a set or map element: its text without the item tag or the
/// map's data, which `delete element` does not take.
pub(super) fn element_key(element: &str) -> &str {
    let key = element.split_once(ITEM_TAG).map_or(element, |(key, _)| key);
    key.split_once(" : ").map_or(key, |(key, _)| key)
}

/// The item an element counts for, from its tag: the item's id, or its
/// number when it has no id. `None` for an element without a tag.
pub fn item_of_tag(tag: &str) -> Option<&str> {
    match tag.split_once(' ') {
        Some((_, id)) => Some(id),
        None => (!tag.is_empty()).then_some(tag),
    }
}

/// The item an element of a planned ACL set counts for (see
/// [`item_of_tag`]).
pub(super) fn item_of_element(element: &str) -> Option<&str> {
    let (_, tag) = element.split_once(ITEM_TAG)?;
    item_of_tag(tag.strip_suffix('"')?)
}

/// `element` with its counter starting at `packets` and `bytes` (carried
/// over from the elements it replaces).
pub(super) fn with_counts(element: &str, (packets, bytes): (u64, u64)) -> String {
    match element.split_once(ITEM_TAG) {
        Some((key, tag)) => {
            format!("{key} counter packets {packets} bytes {bytes}{ITEM_TAG}{tag}")
        }
        None => element.to_string(),
    }
}

/// Elements of one ACL set at most, where the list's addresses allow it:
/// a lookup with more is split by address into sets of at most this many
/// (see [`shards`]). nf_tables' set of concatenated intervals (pipapo)
/// walks and copies its whole lookup table to delete an element, and
/// copies it to add one, so an element change costs in proportion to the
/// set's size: 22-36 ms in a set of 10,000, well under one in a set of 256.
pub const SHARD_ELEMENTS: usize = 256;

/// A part of the address space holding fewer elements than this gets no
/// set of its own: its elements stay in the lookup's main set.
const SHARD_LEAST: usize = SHARD_ELEMENTS / 4;

/// One set of a lookup: the lookup's elements (positions, in the lookup's
/// order) whose address lies in `prefix` (start, length), or with `None`
/// the lookup's main set, which the chain looks up unguarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub prefix: Option<(u128, u32)>,
    pub members: Vec<usize>,
}

/// The addresses of a prefix (start, length) of a family of `bits`.
fn prefix_span((start, len): (u128, u32), bits: u32) -> Span {
    let host = match bits - len {
        0 => 0,
        width => u128::MAX >> (128 - width),
    };
    (start, start | host)
}

/// The sets `lookup` is split into. A lookup of at most [`SHARD_ELEMENTS`]
/// elements is one set, as before; a larger one is split along the address
/// trie: a prefix holding more elements is halved, recursively, and each
/// resulting prefix holding at least [`SHARD_LEAST`] elements becomes a
/// set of its own, which the chain reaches through a map on the address
/// (see [`acl_chain`]). Elements of smaller prefixes, and those spanning a
/// halved prefix, go to the main set, which comes last. The split depends on the
/// number of elements under each prefix only: a one-item change moves no
/// other element unless it takes a prefix across a threshold (then the
/// chain is rebuilt). Within a layer the lookups of one action may come in
/// any order (see [`crate::plan::acl`]), so splitting a set keeps the
/// verdicts. Many elements of one address (ports of one host), or many
/// spanning a halved prefix, stay together: the bound holds for lists
/// spread over addresses, which is what lists of thousands are.
pub fn shards(lookup: &Lookup) -> Vec<Shard> {
    let n = lookup.elements.len();
    if n <= SHARD_ELEMENTS {
        return vec![Shard {
            prefix: None,
            members: (0..n).collect(),
        }];
    }
    let bits = if lookup.shape.v6() { 128 } else { 32 };
    let span = |k: usize| lookup.elements[k][0];
    // The lowest and highest address of a node's members, kept with the
    // node (found while its parent splits).
    let widen = |(lo, hi): Span, (first, last): Span| (lo.min(first), hi.max(last));
    let mut main = Vec::new();
    let mut out = Vec::new();
    let bounds = (0..n).map(span).fold((u128::MAX, 0), widen);
    let mut stack = vec![((0u128, 0u32), (0..n).collect::<Vec<usize>>(), bounds)];
    while let Some((mut node, mut members, (lo, hi))) = stack.pop() {
        if members.len() > SHARD_ELEMENTS && node.1 < bits {
            // Levels where every member lies in one half split nothing
            // off: the walk goes straight to the longest prefix holding
            // them all (the same sets, without a pass over the members
            // per level).
            let common = ((lo ^ hi).leading_zeros() - (128 - bits)).min(bits);
            if common > node.1 {
                let host = prefix_span((0, common), bits).1;
                node = (lo & !host, common);
            }
        }
        if members.len() <= SHARD_ELEMENTS || node.1 == bits {
            if members.len() >= SHARD_LEAST {
                members.shrink_to_fit();
                out.push(Shard {
                    prefix: Some(node),
                    members,
                });
            } else {
                main.extend(members);
            }
            continue;
        }
        // The low half is kept in `members` (in order, in place), the
        // high half goes to a vector of its own.
        let half = prefix_span((node.0, node.1 + 1), bits).1;
        let mut high = Vec::with_capacity(members.len());
        let (mut low_bounds, mut high_bounds) = ((u128::MAX, 0), (u128::MAX, 0));
        let mut low = 0;
        for i in 0..members.len() {
            let k = members[i];
            let (first, last) = span(k);
            if last <= half {
                members[low] = k;
                low += 1;
                low_bounds = widen(low_bounds, (first, last));
            } else if first > half {
                high.push(k);
                high_bounds = widen(high_bounds, (first, last));
            } else {
                main.push(k);
            }
        }
        members.truncate(low);
        // The low half is taken first: shards come in address order.
        stack.push(((half + 1, node.1 + 1), high, high_bounds));
        stack.push(((node.0, node.1 + 1), members, low_bounds));
    }
    main.sort_unstable();
    out.push(Shard {
        prefix: None,
        members: main,
    });
    out
}

/// The name of a lookup's set: the main set's is `base`, a shard's adds its
/// prefix in hexadecimal and its length.
fn shard_name(base: &str, prefix: Option<(u128, u32)>, v6: bool) -> String {
    match prefix {
        None => base.to_string(),
        Some((start, len)) if v6 => format!("{base}_{start:032x}_{len}"),
        Some((start, len)) => format!("{base}_{start:08x}_{len}"),
    }
}

/// The ids of a list's items by number, looked up in its rules (in number
/// order) instead of copied into a map: a list holds up to 10,000 items and
/// a one-item change looks up a few.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Ids<'a>(pub &'a [Arc<AclRule>]);

impl<'a> Ids<'a> {
    /// The id of the item numbered `number`, if the list has it.
    pub fn get(&self, number: u32) -> Option<&'a str> {
        Some(self.0[self.position(number)?].id.as_str())
    }

    /// Where the item numbered `number` is in the list's rules.
    fn position(&self, number: u32) -> Option<usize> {
        // Lists are mostly numbered evenly (1, 2, 3 or 10, 20, 30): the
        // place is interpolated from the numbers at both ends of the part
        // that can hold it, a few times, before a binary search of what is
        // left. A chain's render compares two ids per element it keeps,
        // and a plain binary search over 10,000 rules (a cache miss per
        // probe) was most of planning a one-item change.
        let rules = self.0;
        let (mut lo, mut hi) = (0, rules.len().checked_sub(1)?);
        for _ in 0..4 {
            let (a, b) = (rules[lo].number, rules[hi].number);
            if number < a || number > b {
                return None;
            }
            let guess = match b - a {
                0 => lo,
                width => {
                    lo + (u64::from(number - a) * (hi - lo) as u64 / u64::from(width)) as usize
                }
            };
            match rules[guess].number.cmp(&number) {
                std::cmp::Ordering::Equal => return Some(guess),
                std::cmp::Ordering::Less => lo = guess + 1,
                // `guess` is above `lo` here: rules[lo] is at most `number`.
                std::cmp::Ordering::Greater => hi = guess - 1,
            }
            if lo > hi {
                return None;
            }
        }
        let at = rules[lo..=hi]
            .binary_search_by_key(&number, |r| r.number)
            .ok()?;
        Some(lo + at)
    }
}

/// Items' rules looked up from the place of the last one found: a set's
/// elements mostly come in the order of their items' numbers, so the next
/// is there or just after, without a search.
struct Finger<'a> {
    ids: Ids<'a>,
    at: std::cell::Cell<usize>,
}

impl<'a> Finger<'a> {
    fn new(ids: Ids<'a>) -> Finger<'a> {
        Finger {
            ids,
            at: std::cell::Cell::new(0),
        }
    }

    fn rule(&self, number: u32) -> Option<&'a Arc<AclRule>> {
        let rules = self.ids.0;
        let at = self.at.get();
        let k = [at, at + 1]
            .into_iter()
            .find(|&k| rules.get(k).is_some_and(|r| r.number == number))
            .or_else(|| self.ids.position(number))?;
        self.at.set(k);
        Some(&rules[k])
    }
}

/// Whether the item numbered `number` has the same id in both lists (the
/// same rule, shared, has).
fn same_id(new: &Finger<'_>, old: &Finger<'_>, number: u32) -> bool {
    match (new.rule(number), old.rule(number)) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a.id == b.id,
        (a, b) => a.map(|r| r.id.as_str()) == b.map(|r| r.id.as_str()),
    }
}

/// One set as it was planned before: the lookup it came from, its members
/// then, its elements as written, and the item ids of its chain then.
struct SetBefore<'a> {
    lookup: &'a Lookup,
    members: &'a [usize],
    elements: &'a Arc<[String]>,
    ids: Ids<'a>,
}

/// The elements of one set of `lookup` (its `members`) as written in a
/// script. With `before` (the same set as planned then), the elements the set
/// begins and ends with as it did before (same box, item and id) are taken
/// from the set planned then instead of written again: a one-item change
/// to a set of thousands writes one element, and a set that stays is the
/// set planned then.
fn elements(
    lookup: &Lookup,
    members: &[usize],
    ids: Ids<'_>,
    before: Option<SetBefore<'_>>,
) -> Arc<[String]> {
    let render = |i: usize| {
        let k = members[i];
        let number = lookup.items[k];
        let id = ids.get(number).unwrap_or_default();
        tagged(render_box(lookup.shape, &lookup.elements[k]), number, id)
    };
    let n = members.len();
    let Some(SetBefore {
        lookup: old,
        members: old_members,
        elements: strings,
        ids: old_ids,
    }) = before.filter(|b| b.members.len() == b.elements.len())
    else {
        return (0..n).map(render).collect();
    };
    let (new_rules, old_rules) = (Finger::new(ids), Finger::new(old_ids));
    let same = |i: usize, j: usize| {
        let (k, o) = (members[i], old_members[j]);
        lookup.elements[k] == old.elements[o]
            && lookup.items[k] == old.items[o]
            && same_id(&new_rules, &old_rules, lookup.items[k])
    };
    let m = old_members.len();
    let head = (0..n.min(m)).take_while(|&k| same(k, k)).count();
    if head == n && n == m {
        return Arc::clone(strings);
    }
    let tail = (0..(n - head).min(m - head))
        .take_while(|&t| same(n - 1 - t, m - 1 - t))
        .count();
    let mut out = Vec::with_capacity(n);
    out.extend_from_slice(&strings[..head]);
    out.extend((head..n - tail).map(render));
    out.extend_from_slice(&strings[m - tail..]);
    out.into()
}

/// What an ACL chain was planned from, to render its next version from.
pub(super) struct Before<'a> {
    pub compiled: &'a Compiled,
    pub ids: Ids<'a>,
    pub chain: &'a Chain,
}

/// The key a sharded lookup's dispatch map is looked up with: the address
/// and the protocol, whatever the lookup's shape. nf_tables keeps a map of
/// address prefixes as a set of concatenated intervals (pipapo) only with
/// two fields or more; a single-field interval map would be a red-black
/// tree, whose elements are start and end pairs. The protocol's field
/// always spans `0-255`.
fn dispatch_key(v6: bool, addr: &str) -> String {
    key(if v6 { Shape::V6Proto } else { Shape::V4Proto }, addr)
}

/// The declaration of a dispatch map.
fn dispatch_spec(v6: bool) -> String {
    format!(
        "type {} : verdict; flags interval;",
        set_type(if v6 { Shape::V6Proto } else { Shape::V4Proto })
    )
}

/// One ACL chain: a rule per compiled lookup, in layer order, each a set
/// lookup with the item's verdict, then the direction's default. A set is
/// named after its layer, action and shape (`<chain>_l<layer>_<action>_
/// <shape>`), so adding or removing an item that keeps its layer changes
/// only elements.
///
/// A lookup split into shards (see [`shards`]) whose verdict ends the
/// packet's walk (accept, drop) is one dispatch map keyed on the address
/// (`<chain>_l…_shards`), whose elements, one per shard prefix, `jump` to
/// a subchain holding that shard's lookup (`ACL_…_l…_<prefix>`), then the
/// main set's rule: a packet pays one map lookup and at most one shard
/// lookup, whatever the number of shards. The shard prefixes are disjoint,
/// so the map holds the one shard whose elements can hold the packet's
/// address; a miss there returns to the rule after the map, so the sets
/// are walked in the order guards would walk them (the shard, then the
/// main set). Subchains are one `jump` deep whatever the number of sharded
/// lookups (nf_tables refuses chains nested past 16, gotos included).
///
/// An egress allow `return`s, which from a subchain would return to the
/// ACL chain instead of leaving it: its shards stay rules guarded by their
/// prefix (`ip daddr <prefix> <key> @set return`), one compare each for
/// the packets outside.
///
/// Every set carries a counter per element (`counter` in its declaration)
/// and every element the number of its item as comment: the kernel counts
/// the packets each element decides, in the same lookup, and the agent
/// sums them per item ([`super::counters`]). Per-element counters keep one
/// lookup per set; named counters would need a second lookup (an object
/// map) per layer. An element that stays across a change keeps its count.
pub(super) fn acl_chain(
    index: u32,
    direction: Direction,
    compiled: &Compiled,
    has_items: bool,
    ids: Ids<'_>,
    before: Option<&Before>,
) -> Chain {
    let (name, addr) = match direction {
        Direction::Ingress => (inbound_chain(index), "saddr"),
        Direction::Egress => (outbound_chain(index), "daddr"),
    };
    let mut chain = Chain {
        name: name.clone(),
        hook: None,
        sets: Vec::new(),
        rules: Vec::new(),
        subchains: Vec::new(),
    };
    // The sets of the chain before, by name, to render from.
    let old_sets: std::collections::HashMap<&str, &Set> = before
        .map(|b| b.chain.sets.iter().map(|s| (s.name.as_str(), s)).collect())
        .unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    for lookup in &compiled.lookups {
        // Allow in an egress chain returns, so the packet goes on to the
        // ingress ACL of the network it is going to.
        let (verdict, action) = match (lookup.action, direction) {
            (Action::Allow, Direction::Ingress) => ("accept", "allow"),
            (Action::Allow, Direction::Egress) => ("return", "allow"),
            (Action::Deny, _) => ("drop", "deny"),
        };
        let base = format!(
            "{lower}_l{}_{action}_{}",
            lookup.layer,
            suffix(lookup.shape)
        );
        let v6 = lookup.shape.v6();
        let bits = if v6 { 128 } else { 32 };
        // The same lookup before and its sets, by name.
        let old = before.and_then(|b| {
            let old = b.compiled.lookups.iter().find(|l| {
                (l.layer, l.action, l.shape) == (lookup.layer, lookup.action, lookup.shape)
            })?;
            let sets: std::collections::HashMap<String, Vec<usize>> = shards(old)
                .into_iter()
                .map(|s| (shard_name(&base, s.prefix, v6), s.members))
                .collect();
            Some((old, sets, b.ids))
        });
        let split = shards(lookup);
        let dispatched = verdict != "return" && split.iter().any(|s| s.prefix.is_some());
        let map_name = format!("{base}_shards");
        if dispatched {
            chain
                .rules
                .push(format!("{} vmap @{map_name}", dispatch_key(v6, addr)));
        }
        let mut dispatch = Vec::new();
        for shard in split {
            let set_name = shard_name(&base, shard.prefix, v6);
            let rule = format!("{} @{set_name} {verdict}", key(lookup.shape, addr));
            match shard.prefix {
                Some(prefix) if dispatched => {
                    // The subchain is named as its set, in the chain's case.
                    let sub = format!("{name}{}", &set_name[lower.len()..]);
                    dispatch.push(format!(
                        "{} . 0-255 : jump {sub}",
                        render_addr(prefix_span(prefix, bits), v6)
                    ));
                    chain.subchains.push(Subchain {
                        name: sub,
                        rules: vec![rule],
                    });
                }
                Some(prefix) => chain.rules.push(format!(
                    "{} {addr} {} {rule}",
                    if v6 { "ip6" } else { "ip" },
                    render_addr(prefix_span(prefix, bits), v6)
                )),
                None => chain.rules.push(rule),
            }
            let was = old.as_ref().and_then(|(old, sets, old_ids)| {
                let members = sets.get(&set_name)?;
                let set = old_sets.get(set_name.as_str())?;
                Some(SetBefore {
                    lookup: old,
                    members,
                    elements: &set.elements,
                    ids: *old_ids,
                })
            });
            let elements = elements(lookup, &shard.members, ids, was);
            chain.sets.push(Set {
                name: set_name,
                kind: "set",
                spec: format!("type {}; flags interval; counter;", set_type(lookup.shape)),
                elements,
            });
        }
        if dispatched {
            chain.sets.push(Set {
                name: map_name,
                kind: "map",
                spec: dispatch_spec(v6),
                elements: dispatch.into(),
            });
        }
    }
    // Ingress defaults to deny. Egress defaults to allow until the NIC has an
    // egress item, then to deny (the original VPC specification's promise).
    if direction == Direction::Ingress || has_items {
        chain.rules.push("drop".into());
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lookup of one /24 per element (one port each), from `10.100.0.0`
    /// on, 250 per /16, plus `extra`.
    fn lookup(n: u32, extra: &[Box3]) -> Lookup {
        let mut elements: Vec<Box3> = (0..n)
            .map(|i| {
                let start = u32::from(Ipv4Addr::new(10, (100 + i / 250) as u8, (i % 250) as u8, 0));
                [(start as u128, start as u128 + 255), (6, 6), (80, 80)]
            })
            .collect();
        elements.extend_from_slice(extra);
        let len = elements.len();
        Lookup {
            layer: 0,
            action: Action::Allow,
            shape: Shape::V4Ports,
            items: (1..=len as u32).collect(),
            origins: vec![0; len],
            cuts: 0,
            elements,
        }
    }

    /// Every element is in exactly one set, in the lookup's order within
    /// it, and a shard's elements lie in its prefix (so the guard lets
    /// through every packet its elements hold: the verdicts are those of
    /// one set).
    fn check(lookup: &Lookup, shards: &[Shard]) {
        let mut seen = vec![0; lookup.elements.len()];
        for shard in shards {
            assert!(shard.members.windows(2).all(|w| w[0] < w[1]));
            for &k in &shard.members {
                seen[k] += 1;
                if let Some(prefix) = shard.prefix {
                    let (lo, hi) = prefix_span(prefix, 32);
                    let (a, b) = lookup.elements[k][0];
                    assert!(lo <= a && b <= hi, "{k} outside {prefix:?}");
                }
            }
        }
        assert!(seen.iter().all(|&s| s == 1), "{seen:?}");
        assert_eq!(shards.last().map(|s| s.prefix), Some(None), "main set last");
    }

    /// [`shards`] as first written: one pass over the members per level
    /// of the trie, however many levels split nothing off.
    fn shards_level_by_level(lookup: &Lookup) -> Vec<Shard> {
        let n = lookup.elements.len();
        if n <= SHARD_ELEMENTS {
            return vec![Shard {
                prefix: None,
                members: (0..n).collect(),
            }];
        }
        let bits = if lookup.shape.v6() { 128 } else { 32 };
        let mut main = Vec::new();
        let mut out = Vec::new();
        let mut stack = vec![((0u128, 0u32), (0..n).collect::<Vec<usize>>())];
        while let Some((node, members)) = stack.pop() {
            if members.len() <= SHARD_ELEMENTS || node.1 == bits {
                if members.len() >= SHARD_LEAST {
                    out.push(Shard {
                        prefix: Some(node),
                        members,
                    });
                } else {
                    main.extend(members);
                }
                continue;
            }
            let half = prefix_span((node.0, node.1 + 1), bits).1;
            let (mut low, mut high) = (Vec::new(), Vec::new());
            for k in members {
                let (first, last) = lookup.elements[k][0];
                if last <= half {
                    low.push(k);
                } else if first > half {
                    high.push(k);
                } else {
                    main.push(k);
                }
            }
            stack.push(((half + 1, node.1 + 1), high));
            stack.push(((node.0, node.1 + 1), low));
        }
        main.sort_unstable();
        out.push(Shard {
            prefix: None,
            members: main,
        });
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
        #[test]
        fn shards_skipping_levels_that_split_nothing_are_those_of_every_level(
            // Elements under a few /8s, /16s and hosts, some spanning
            // wide ranges, many on one address.
            raw in proptest::collection::vec(
                (0u8..3, 0u8..4, 0u32..1 << 16, 0u8..40),
                200..1400,
            ),
            v6 in proptest::bool::ANY,
        ) {
            let elements: Vec<Box3> = raw
                .iter()
                .map(|&(a, b, low, width)| {
                    let start = (u128::from(10 + a) << 24) | (u128::from(b) << 16) | u128::from(low);
                    let start = if v6 { start << 96 } else { start };
                    let size: u128 = match width {
                        0..=29 => 0,
                        30..=37 => 255,
                        _ => if v6 { 1 << 110 } else { 1 << 20 },
                    };
                    let start = if width == 39 { 0 } else { start & !size };
                    [(start, start | size), (6, 6), (80, 80)]
                })
                .collect();
            let n = elements.len();
            let l = Lookup {
                layer: 0,
                action: Action::Allow,
                shape: if v6 { Shape::V6Ports } else { Shape::V4Ports },
                items: (1..=n as u32).collect(),
                origins: vec![0; n],
                cuts: 0,
                elements,
            };
            proptest::prop_assert_eq!(shards(&l), shards_level_by_level(&l));
        }
    }

    #[test]
    fn an_element_kept_in_place_is_written_again_when_its_items_id_changes() {
        use crate::plan::nft::{NftOptions, plan, plan_from};
        let config = crate::testing::sample_config();
        let router = Router::from_config(&config).expect("valid sample");
        let options = NftOptions::default();
        let ruleset = plan(&router, &options);
        let mut acl = config.network_acls[0].clone();
        acl.items[1].id = "renamed".into();
        let next = router.with_acl(&acl, 8).expect("valid");
        let planned = plan_from(&next, &options, Some((&router, &ruleset)));
        assert!(planned == plan(&next, &options));
        assert!(planned != ruleset, "the id is in the element's tag");
        // And back: the ids of the items that stay are the old ones.
        let back = plan_from(&router, &options, Some((&next, &planned)));
        assert!(back == ruleset);
    }

    #[test]
    fn ids_are_found_in_lists_numbered_evenly_or_not() {
        let rule = |number: u32| AclRule {
            number,
            id: format!("id-{number}"),
            action: Action::Allow,
            direction: Direction::Ingress,
            matches: Match::All,
            cidrs: Vec::new(),
        };
        for numbers in [
            vec![1, 2, 3, 4, 5],
            vec![10, 20, 30, 40],
            vec![1, 2, 50, 51, 900, 10_000],
            vec![7],
            // Evenly numbered but for a few at the end, as the bench's.
            (1..=998).chain([1_001, 1_002, 1_010]).collect(),
        ] {
            let rules: Vec<Arc<AclRule>> = numbers.iter().map(|&n| Arc::new(rule(n))).collect();
            let ids = Ids(&rules);
            for n in 0..=10_001 {
                let want = numbers.contains(&n).then(|| format!("id-{n}"));
                assert_eq!(ids.get(n).map(str::to_string), want, "{numbers:?} {n}");
            }
        }
        assert_eq!(Ids(&[]).get(1), None);
    }

    #[test]
    fn a_small_lookup_is_one_set() {
        let l = lookup(SHARD_ELEMENTS as u32, &[]);
        let s = shards(&l);
        assert_eq!(s.len(), 1);
        check(&l, &s);
    }

    #[test]
    fn a_large_lookup_splits_by_address_into_bounded_sets() {
        let wide = [(0u128, u32::MAX as u128), (6, 6), (22, 22)];
        let host = u32::from(Ipv4Addr::new(10, 1, 2, 3)) as u128;
        let l = lookup(10_000, &[wide, [(host, host), (17, 17), (53, 53)]]);
        let s = shards(&l);
        check(&l, &s);
        assert!(
            s.iter().all(|s| s.members.len() <= SHARD_ELEMENTS),
            "{:?}",
            s.iter().map(|s| s.members.len()).collect::<Vec<_>>()
        );
        // 40 prefixes of 250 (one per /16) and the main set with the two
        // elements no shard takes.
        assert_eq!(s.len(), 41);
        assert_eq!(s[40].members, [10_000, 10_001]);
        assert_eq!(
            s[0].prefix,
            Some((u32::from(Ipv4Addr::new(10, 100, 0, 0)) as u128, 16))
        );
    }

    #[test]
    fn an_element_added_or_deleted_moves_no_other_element() {
        let base = lookup(10_000, &[]);
        let lone = u32::from(Ipv4Addr::new(10, 251, 1, 0)) as u128;
        let added = lookup(10_000, &[[(lone, lone + 255), (17, 17), (7000, 7000)]]);
        let mut deleted = lookup(10_000, &[]);
        deleted.elements.remove(100);
        deleted.items.remove(100);
        deleted.origins.remove(100);
        let prefixes = |l: &Lookup| shards(l).into_iter().map(|s| s.prefix).collect::<Vec<_>>();
        assert_eq!(prefixes(&base), prefixes(&added));
        assert_eq!(prefixes(&base), prefixes(&deleted));
        check(&added, &shards(&added));
        check(&deleted, &shards(&deleted));
    }

    /// The sets a packet from `addr` consults, in order, walking the
    /// rendered chain as the kernel does when no set holds its key: a set
    /// lookup is consulted and missed, a guard on a prefix not holding
    /// `addr` skips its rule, a dispatch map jumps to the subchain of the
    /// prefix holding `addr` (or goes on to the next rule), the end of a
    /// subchain returns after the jump, `drop` ends the walk.
    fn consulted(chain: &Chain, addr: u128) -> Vec<String> {
        let rules_of = |name: &str| -> Vec<String> {
            if name == chain.name {
                return chain.rules.clone();
            }
            let sub = chain.subchains.iter().find(|c| c.name == name);
            sub.unwrap_or_else(|| panic!("no chain {name}"))
                .rules
                .clone()
        };
        let set = |name: &str| chain.sets.iter().find(|s| s.name == name).unwrap();
        let holds = |prefix: &str| {
            let net: ipnet::Ipv4Net = prefix.parse().unwrap();
            let (lo, hi) = (u32::from(net.network()), u32::from(net.broadcast()));
            lo as u128 <= addr && addr <= hi as u128
        };
        let mut out = Vec::new();
        let mut stack = Vec::new();
        let (mut rules, mut at) = (rules_of(&chain.name), 0);
        loop {
            let Some(rule) = rules.get(at).cloned() else {
                // The end of a subchain: back after the jump.
                (rules, at) = stack.pop().expect("the ACL chain ends with drop");
                continue;
            };
            at += 1;
            if let Some((_, map)) = rule.split_once(" vmap @") {
                assert_eq!(set(map).kind, "map");
                let to = set(map).elements.iter().find_map(|e| {
                    let (prefix, to) = e.split_once(" . 0-255 : jump ").unwrap();
                    holds(prefix).then(|| to.to_string())
                });
                if let Some(to) = to {
                    stack.push((std::mem::replace(&mut rules, rules_of(&to)), at));
                    at = 0;
                }
            } else if let Some((lookup, name)) = rule.split_once(" @") {
                let guard = lookup
                    .strip_prefix("ip saddr ")
                    .and_then(|g| g.split_once(' '));
                if guard.is_some_and(|(prefix, _)| prefix != "." && !holds(prefix)) {
                    continue;
                }
                let name = name.split(' ').next().unwrap();
                assert_eq!(set(name).kind, "set");
                out.push(name.to_string());
            } else {
                assert_eq!(rule, "drop");
                out.push(rule);
                return out;
            }
        }
    }

    fn ingress_chain(lookups: Vec<Lookup>) -> Chain {
        let compiled = Compiled {
            layers: lookups.len() as u32,
            lookups,
        };
        acl_chain(
            2,
            Direction::Ingress,
            &compiled,
            true,
            Default::default(),
            None,
        )
    }

    #[test]
    fn a_sharded_lookup_dispatches_on_the_address_and_keeps_the_main_name() {
        let chain = ingress_chain(vec![lookup(1_000, &[])]);
        assert_eq!(
            chain.rules,
            [
                "ip saddr . meta l4proto vmap @acl_inbound_eth2_l0_allow_v4_ports_shards",
                "ip saddr . meta l4proto . th dport @acl_inbound_eth2_l0_allow_v4_ports accept",
                "drop",
            ]
        );
        let map = chain.sets.last().unwrap();
        assert_eq!(
            (map.name.as_str(), map.kind, map.spec.as_str()),
            (
                "acl_inbound_eth2_l0_allow_v4_ports_shards",
                "map",
                "type ipv4_addr . inet_proto : verdict; flags interval;"
            )
        );
        assert_eq!(
            map.elements[0],
            "10.100.0.0/16 . 0-255 : jump ACL_INBOUND_eth2_l0_allow_v4_ports_0a640000_16"
        );
        assert_eq!(map.elements.len(), 4);
        assert_eq!(
            chain.subchains[0],
            Subchain {
                name: "ACL_INBOUND_eth2_l0_allow_v4_ports_0a640000_16".into(),
                rules: vec![
                    "ip saddr . meta l4proto . th dport \
                     @acl_inbound_eth2_l0_allow_v4_ports_0a640000_16 accept"
                        .into()
                ],
            }
        );
        assert_eq!(chain.subchains.len(), 4);
        let total: usize = chain
            .sets
            .iter()
            .filter(|s| s.kind == "set")
            .map(|s| s.elements.len())
            .sum();
        assert_eq!(total, 1_000);
    }

    #[test]
    fn a_packet_consults_its_shard_then_the_main_set_of_each_lookup_in_order() {
        // Layer 0 deny sharded, layer 1 allow small, layer 2 allow sharded:
        // every address walks the three lookups in order, seeing of a
        // sharded lookup the shard holding it, if any, then its main set.
        let mut deny = lookup(500, &[]);
        deny.action = Action::Deny;
        let mut small = lookup(3, &[]);
        small.layer = 1;
        let mut allow = lookup(1_000, &[]);
        allow.layer = 2;
        let chain = ingress_chain(vec![deny.clone(), small, allow.clone()]);
        let set = |l: &Lookup, prefix: Option<(u128, u32)>| {
            let action = if l.action == Action::Deny {
                "deny"
            } else {
                "allow"
            };
            shard_name(
                &format!("acl_inbound_eth2_l{}_{action}_v4_ports", l.layer),
                prefix,
                false,
            )
        };
        let at = |a: u8, b: u8| u32::from(Ipv4Addr::new(10, a, b, 7)) as u128;
        let holding = |l: &Lookup, addr: u128| {
            shards(l).into_iter().filter_map(|s| s.prefix).find(|p| {
                let (lo, hi) = prefix_span(*p, 32);
                lo <= addr && addr <= hi
            })
        };
        // Inside a shard of each lookup, of the larger one only, of none.
        for (addr, inside) in [(at(100, 3), 2), (at(103, 9), 1), (at(1, 2), 0)] {
            let mut want = Vec::new();
            want.extend(holding(&deny, addr).map(|p| set(&deny, Some(p))));
            want.push(set(&deny, None));
            want.push("acl_inbound_eth2_l1_allow_v4_ports".into());
            want.extend(holding(&allow, addr).map(|p| set(&allow, Some(p))));
            want.push(set(&allow, None));
            want.push("drop".into());
            assert_eq!(want.len(), 4 + inside, "{addr:x}");
            assert_eq!(consulted(&chain, addr), want, "{addr:x}");
        }
        // Every set and subchain is reached by some rule or map.
        let rules: Vec<&String> = chain
            .rules
            .iter()
            .chain(chain.subchains.iter().flat_map(|c| &c.rules))
            .collect();
        let maps: Vec<&String> = chain.sets.iter().flat_map(|s| s.elements.iter()).collect();
        for set in &chain.sets {
            let used = format!("@{}", set.name);
            assert!(rules.iter().any(|r| r.contains(&used)), "{}", set.name);
        }
        for sub in &chain.subchains {
            let to = format!("jump {}", sub.name);
            assert!(
                rules.iter().chain(&maps).any(|r| r.ends_with(&to)),
                "{}",
                sub.name
            );
        }
    }

    #[test]
    fn an_egress_allow_keeps_guarded_shards_and_an_egress_deny_dispatches() {
        let empty = acl_chain(
            2,
            Direction::Egress,
            &Compiled::default(),
            false,
            Default::default(),
            None,
        );
        assert!(empty.rules.is_empty() && empty.subchains.is_empty());
        // A subchain's `return` would return to the ACL chain, not leave
        // it: an egress allow's shards are guarded rules.
        let mut deny = lookup(600, &[]);
        deny.action = Action::Deny;
        let mut allow = lookup(600, &[]);
        allow.layer = 1;
        let compiled = Compiled {
            lookups: vec![deny, allow],
            layers: 2,
        };
        let chain = acl_chain(
            2,
            Direction::Egress,
            &compiled,
            true,
            Default::default(),
            None,
        );
        assert_eq!(
            chain.rules[0],
            "ip daddr . meta l4proto vmap @acl_outbound_eth2_l0_deny_v4_ports_shards"
        );
        assert_eq!(
            chain.rules[2],
            "ip daddr 10.100.0.0/16 ip daddr . meta l4proto . th dport \
             @acl_outbound_eth2_l1_allow_v4_ports_0a640000_16 return"
        );
        assert!(
            chain
                .subchains
                .iter()
                .all(|s| s.rules[0].ends_with(" drop"))
        );
        assert!(chain.subchains.iter().all(|s| s.name.contains("_l0_deny_")));
        assert_eq!(chain.rules.last().map(String::as_str), Some("drop"));
    }
}
