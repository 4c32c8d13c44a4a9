//! ACL chains: the compiled lookups of one direction (see
//! [`crate::plan::acl`]) as set lookups, layer by layer.

use std::net::Ipv4Addr;

use super::{Chain, Set, inbound_chain, outbound_chain};
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

/// The elements of `lookup`'s set as written in a script. With `before`,
/// the elements the set begins and ends with as it did before (same box,
/// item and id) are taken from the set planned then instead of written
/// again: a one-item change to a set of thousands writes one element.
fn elements(
    lookup: &Lookup,
    ids: &std::collections::BTreeMap<u32, &str>,
    before: Option<&Before>,
    set_name: &str,
) -> Vec<String> {
    let render = |k: usize| {
        let number = lookup.items[k];
        let id = ids.get(&number).copied().unwrap_or_default();
        tagged(render_box(lookup.shape, &lookup.elements[k]), number, id)
    };
    let n = lookup.elements.len();
    let old = before.and_then(|b| {
        let at = b.compiled.lookups.iter().position(|l| {
            (l.layer, l.action, l.shape) == (lookup.layer, lookup.action, lookup.shape)
        })?;
        let set = b.chain.sets.get(at).filter(|s| s.name == set_name)?;
        let old = &b.compiled.lookups[at];
        (set.elements.len() == old.elements.len()).then_some((old, &set.elements, b.ids))
    });
    let Some((old, strings, old_ids)) = old else {
        return (0..n).map(render).collect();
    };
    let same = |k: usize, j: usize| {
        lookup.elements[k] == old.elements[j]
            && lookup.items[k] == old.items[j]
            && ids.get(&lookup.items[k]) == old_ids.get(&old.items[j])
    };
    let m = old.elements.len();
    let head = (0..n.min(m)).take_while(|&k| same(k, k)).count();
    let tail = (0..(n - head).min(m - head))
        .take_while(|&t| same(n - 1 - t, m - 1 - t))
        .count();
    let mut out = Vec::with_capacity(n);
    out.extend_from_slice(&strings[..head]);
    out.extend((head..n - tail).map(render));
    out.extend_from_slice(&strings[m - tail..]);
    out
}

/// One ACL chain: a rule per compiled lookup, in layer order, each a set
/// lookup with the item's verdict, then the direction's default. A set is
/// named after its layer, action and shape (`<chain>_l<layer>_<action>_
/// <shape>`), so adding or removing an item that keeps its layer changes
/// only elements.
///
/// Every set carries a counter per element (`counter` in its declaration)
/// and every element the number of its item as comment: the kernel counts
/// the packets each element decides, in the same lookup, and the agent
/// sums them per item ([`super::counters`]). Per-element counters keep one
/// lookup per set; named counters would need a second lookup (an object
/// map) per layer. An element that stays across a change keeps its count.
/// What an ACL chain was planned from, to render its next version from.
pub(super) struct Before<'a> {
    pub compiled: &'a Compiled,
    pub ids: &'a std::collections::BTreeMap<u32, &'a str>,
    pub chain: &'a Chain,
}

pub(super) fn acl_chain(
    index: u32,
    direction: Direction,
    compiled: &Compiled,
    has_items: bool,
    ids: &std::collections::BTreeMap<u32, &str>,
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
    };
    for lookup in &compiled.lookups {
        // Allow in an egress chain returns, so the packet goes on to the
        // ingress ACL of the network it is going to.
        let (verdict, action) = match (lookup.action, direction) {
            (Action::Allow, Direction::Ingress) => ("accept", "allow"),
            (Action::Allow, Direction::Egress) => ("return", "allow"),
            (Action::Deny, _) => ("drop", "deny"),
        };
        let set_name = format!(
            "{}_l{}_{action}_{}",
            name.to_ascii_lowercase(),
            lookup.layer,
            suffix(lookup.shape)
        );
        chain
            .rules
            .push(format!("{} @{set_name} {verdict}", key(lookup.shape, addr)));
        let elements = elements(lookup, ids, before, &set_name);
        chain.sets.push(Set {
            name: set_name,
            kind: "set",
            spec: format!("type {}; flags interval; counter;", set_type(lookup.shape)),
            elements,
        });
    }
    // Ingress defaults to deny. Egress defaults to allow until the NIC has an
    // egress item, then to deny (the original VPC specification's promise).
    if direction == Direction::Ingress || has_items {
        chain.rules.push("drop".into());
    }
    chain
}
