//! ACL compilation (pure): a numbered, first-match item list into a few
//! ordered set lookups per action, whatever the list's size.
//!
//! Each (item, CIDR) pair is an *entry*: a box in packet space (address,
//! family and protocol, then destination port or ICMP type, then ICMP code).
//! Entries are dealt into layers: an entry's layer is one more than the
//! highest layer of an earlier entry (lower item number) of the other action
//! whose box intersects its own, or 0 when there is none. A layer becomes one
//! set lookup per action and key shape; the chain walks layers in order and
//! the first lookup that hits decides.
//!
//! Why that equals first match over the numbered list: take a packet `p` and
//! the first entry `e` (in item order) that matches it, with action `a`.
//! Every other entry `f` matching `p` with the other action comes after `e`
//! (`e` is first) and intersects `e` (both hold `p`), so `layer(f) >
//! layer(e)`. Hence in layers up to `layer(e)` every entry that matches `p`
//! has action `a`, and layer `layer(e)` has one (`e`). The first layer where
//! `p` hits anything is therefore at most `layer(e)` and only `a`'s lookups
//! hit there, in whatever order the lookups of that layer are walked: the
//! verdict is `a`. With no matching entry no lookup hits and the chain's
//! default applies, as for the list. (The proof only needs `layer(f) >
//! layer(e)`, so the layering may be coarser than the minimum and stay
//! correct.) `eval` checks this on random lists against a plain first-match
//! evaluator.
//!
//! An entry whose box lies inside the box of an earlier entry is left out
//! first: the earlier entry matches every packet it would, so it never
//! decides (the proof above holds for the list without it).
//!
//! The number of layers is the length of the longest chain of entries, each
//! intersecting the one before with the other action, and does not grow with
//! the item count: items that do not overlap collapse into the same lookups.
//! Overlap is found with an index over the boxes sorted by address
//! ([`index`]), not by comparing every pair; set elements are placed as
//! [`crate::plan::boxes`] explains, within a bound of
//! [`ELEMENTS_PER_ENTRY`] elements per entry (the agent's
//! `--max-acl-elements-per-item`), past which the list is refused naming the
//! items being cut. Item addresses are prefixes, so placement only ever cuts
//! ports, protocols or ICMP fields, and lists met so far stay near one
//! element per entry; the bound guards against what is not foreseen.

pub mod eval;
pub mod incremental;
pub mod index;

use std::collections::BTreeMap;

use ipnet::IpNet;

use crate::model::{AclRule, Action, Match};
use crate::plan::boxes::{Box3, Span, place};
pub use incremental::compile_from;
use index::{Index, Step, intersects};

/// Set elements allowed per entry (one (item, CIDR) pair) of a chain.
pub const ELEMENTS_PER_ENTRY: usize = 4;

/// The key shapes an ACL item can need; a layer gets one set per shape and
/// action used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Shape {
    V4Ports,
    V4Proto,
    V4Icmp,
    V6Ports,
    V6Proto,
    V6Icmp,
}

impl Shape {
    pub fn v6(self) -> bool {
        matches!(self, Shape::V6Ports | Shape::V6Proto | Shape::V6Icmp)
    }

    /// Fields in the key: the protocol-only shapes have two.
    pub fn fields(self) -> usize {
        match self {
            Shape::V4Proto | Shape::V6Proto => 2,
            _ => 3,
        }
    }
}

/// One set lookup of the compiled chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub layer: u32,
    pub action: Action,
    pub shape: Shape,
    /// In the order the kernel must receive them.
    pub elements: Vec<Box3>,
    /// Per element, the number of the item it came from: the kernel counts
    /// the packets each element decides, and an item's counters are the sum
    /// over its elements.
    pub items: Vec<u32>,
    /// Per element, which of its item's CIDRs it came from (the entry; an
    /// incremental compile finds an element's place from it).
    pub origins: Vec<u32>,
    /// Cuts the placement of this set made (its budget is checked again
    /// by an incremental compile).
    pub cuts: usize,
}

/// The lookups of one direction of one ACL, in the order a packet walks them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compiled {
    pub lookups: Vec<Lookup>,
    /// Number of layers (0 for an empty list).
    pub layers: u32,
}

impl Compiled {
    /// Set elements over all lookups.
    pub fn elements(&self) -> usize {
        self.lookups.iter().map(|l| l.elements.len()).sum()
    }
}

/// A list whose sets would need more elements than the bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the list needs more than {bound} set elements ({per} per item and CIDR): items {} \
     overlap items of the same action so that they are cut into many pieces; \
     merge them or make them disjoint",
    shown_numbers(.items)
)]
pub struct TooManyElements {
    pub bound: usize,
    pub per: usize,
    /// Item numbers, the most cut first.
    pub items: Vec<u32>,
}

fn shown_numbers(items: &[u32]) -> String {
    items
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Items named in a refusal, at most.
const NAMED_ITEMS: usize = 10;

fn addr_span(net: &IpNet) -> Span {
    match net {
        IpNet::V4(n) => (
            u32::from(n.network()) as u128,
            u32::from(n.broadcast()) as u128,
        ),
        IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast())),
    }
}

const FULL16: Span = (0, 65535);

/// The IP protocol number of ICMP in a family.
pub fn icmp_protocol(v6: bool) -> u8 {
    if v6 { 58 } else { 1 }
}

/// An entry's box in packet space and its key shape and box. Packet space
/// has four fields: address; family and protocol as `family * 256 +
/// protocol`; destination port or ICMP type; ICMP code.
pub fn entry_boxes(rule: &AclRule) -> Vec<(Shape, [Span; 4], Box3)> {
    rule.cidrs.iter().map(|net| entry_box(rule, net)).collect()
}

/// The entry of `rule` for one of its CIDRs (see [`entry_boxes`]).
pub fn entry_box(rule: &AclRule, net: &IpNet) -> (Shape, [Span; 4], Box3) {
    let byte = |v: Option<u8>| v.map_or((0, 255), |b| (b as u128, b as u128));
    let v6 = matches!(net, IpNet::V6(_));
    let family = if v6 { 256 } else { 0 };
    let addr = addr_span(net);
    let proto = |p: u8| (family + p as u128, family + p as u128);
    match rule.matches {
        Match::All => (
            if v6 { Shape::V6Proto } else { Shape::V4Proto },
            [addr, (family, family + 255), FULL16, FULL16],
            [addr, (0, 255), (0, 0)],
        ),
        Match::Protocol(p) => (
            if v6 { Shape::V6Proto } else { Shape::V4Proto },
            [addr, proto(p), FULL16, FULL16],
            [addr, (p as u128, p as u128), (0, 0)],
        ),
        Match::Ports {
            protocol,
            first,
            last,
        } => (
            if v6 { Shape::V6Ports } else { Shape::V4Ports },
            [addr, proto(protocol), (first as u128, last as u128), FULL16],
            [
                addr,
                (protocol as u128, protocol as u128),
                (first as u128, last as u128),
            ],
        ),
        Match::Icmp { icmp_type, code } => (
            if v6 { Shape::V6Icmp } else { Shape::V4Icmp },
            [addr, proto(icmp_protocol(v6)), byte(icmp_type), byte(code)],
            [addr, byte(icmp_type), byte(code)],
        ),
    }
}

/// Entries of one prefix compared when looking for a shadowing entry.
const SHADOW_PROBES: usize = 16;

/// Entries already layered, by family and address prefix. Item addresses
/// are prefixes, so the entries whose box can hold another entry's box are
/// those on one of its (at most 33 or 129) enclosing prefixes: a handful of
/// hash lookups instead of a walk over boxes whose bounds say little.
#[derive(Default)]
struct ByPrefix(
    std::collections::HashMap<(bool, Span), Vec<usize>, std::hash::BuildHasherDefault<Mix>>,
);

/// A plain multiply-and-rotate hash: the keys are our own prefixes, not
/// input an attacker picks to collide (a collision costs a compare, never
/// a wrong answer), and SipHash was a fifth of the compile time.
#[derive(Default)]
struct Mix(u64);

impl std::hash::Hasher for Mix {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
}

impl ByPrefix {
    fn key(space: &[Span; 4]) -> (bool, Span) {
        (space[1].0 >= 256, space[0])
    }

    fn insert(&mut self, spaces: &[[Span; 4]], i: usize) {
        self.0.entry(Self::key(&spaces[i])).or_default().push(i);
    }

    /// Whether an inserted entry's box holds all of entry `i`'s box.
    fn shadows(&self, spaces: &[[Span; 4]], i: usize) -> bool {
        let (v6, (lo, hi)) = Self::key(&spaces[i]);
        let bits = if v6 { 128 } else { 32 };
        let inside = |outer: &[Span; 4]| {
            outer
                .iter()
                .zip(&spaces[i])
                .all(|(o, s)| o.0 <= s.0 && s.1 <= o.1)
        };
        // The prefix's own size, then every wider prefix up to the family.
        let own = 128 - (hi - lo).leading_zeros().min(128);
        (own..=bits).any(|width| {
            let span = if width >= 128 {
                (0, u128::MAX)
            } else {
                let size = 1u128 << width;
                let start = lo & !(size - 1);
                (start, start + (size - 1))
            };
            // Only the first few entries of a prefix are compared: finding a
            // shadowed entry saves lookups but is never needed for the
            // verdict, and a prefix holding thousands of entries (a port
            // each from one /12) must not make this quadratic.
            self.0
                .get(&(v6, span))
                .is_some_and(|list| list.iter().take(SHADOW_PROBES).any(|&j| inside(&spaces[j])))
        })
    }
}

fn kind(action: Action) -> usize {
    match action {
        Action::Allow => 0,
        Action::Deny => 1,
    }
}

/// Compiles one direction's items (in number order) into layered lookups,
/// within [`ELEMENTS_PER_ENTRY`] elements per entry.
pub fn compile(rules: &[&AclRule]) -> Result<Compiled, TooManyElements> {
    compile_bounded(rules, ELEMENTS_PER_ENTRY)
}

/// [`compile`] within `per_entry` elements per entry.
pub fn compile_bounded(rules: &[&AclRule], per_entry: usize) -> Result<Compiled, TooManyElements> {
    struct Entry {
        number: u32,
        origin: u32,
        action: Action,
        shape: Shape,
        key: Box3,
    }
    let mut entries = Vec::new();
    let mut spaces = Vec::new();
    for rule in rules {
        for (origin, net) in rule.cidrs.iter().enumerate() {
            let (shape, space, key) = entry_box(rule, net);
            entries.push(Entry {
                number: rule.number,
                origin: origin as u32,
                action: rule.action,
                shape,
                key,
            });
            spaces.push(space);
        }
    }
    if entries.is_empty() {
        return Ok(Compiled::default());
    }

    // Layers, in item order. A node's mark of an action is one more than
    // the highest layer of an entry of that action below it, so a subtree
    // whose mark of the other action is not above the best found so far
    // cannot raise it and is skipped.
    //
    // An entry inside the box of an earlier entry never decides a packet
    // (the earlier one matches first), so it is left out: it would only
    // lengthen chains. Lists collect such shadowed items over the years.
    let mut index = Index::new(&spaces);
    let mut by_prefix = ByPrefix::default();
    let mut layers: Vec<Option<u32>> = vec![None; entries.len()];
    for (i, entry) in entries.iter().enumerate() {
        if by_prefix.shadows(&spaces, i) {
            continue;
        }
        by_prefix.insert(&spaces, i);
        let other = 1 - kind(entry.action);
        let mut best = 0u32;
        index.walk_preferring(Some(other), |node| {
            if node.marks[other] <= best || !intersects(node.bounds, &spaces[i]) {
                return Step::Skip;
            }
            if node.leaf.is_some() {
                best = node.marks[other];
            }
            Step::Descend
        });
        layers[i] = Some(best);
        index.mark(i, kind(entry.action), best + 1);
    }

    // One set per layer, action and shape; deny before allow within a layer
    // (either order gives the same verdict, see above).
    let mut groups: BTreeMap<(u32, usize, Shape), Vec<usize>> = BTreeMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let Some(layer) = layers[i] else { continue };
        let order = match entry.action {
            Action::Deny => 0,
            Action::Allow => 1,
        };
        groups
            .entry((layer, order, entry.shape))
            .or_default()
            .push(i);
    }
    let bound = per_entry.saturating_mul(entries.len());
    let mut budget = bound;
    let mut compiled = Compiled {
        lookups: Vec::with_capacity(groups.len()),
        layers: layers.iter().flatten().max().map_or(0, |l| l + 1),
    };
    for ((layer, _, shape), members) in groups {
        let boxes: Vec<Box3> = members.iter().map(|&i| entries[i].key).collect();
        match place(&boxes, &mut budget) {
            Ok(placement) => compiled.lookups.push(Lookup {
                layer,
                action: entries[members[0]].action,
                shape,
                items: placement
                    .owners
                    .iter()
                    .map(|&k| entries[members[k]].number)
                    .collect(),
                origins: placement
                    .owners
                    .iter()
                    .map(|&k| entries[members[k]].origin)
                    .collect(),
                cuts: placement.cuts,
                elements: placement.elements,
            }),
            Err(over) => {
                let mut cut: Vec<(u32, u32)> = over
                    .pieces
                    .iter()
                    .zip(&members)
                    .filter(|(pieces, _)| **pieces > 1)
                    .map(|(pieces, &i)| (*pieces, entries[i].number))
                    .collect();
                if cut.is_empty() {
                    cut = members.iter().map(|&i| (0, entries[i].number)).collect();
                }
                cut.sort_by_key(|&(pieces, number)| (u32::MAX - pieces, number));
                let mut items: Vec<u32> = Vec::new();
                for (_, number) in cut {
                    if !items.contains(&number) {
                        items.push(number);
                    }
                    if items.len() == NAMED_ITEMS {
                        break;
                    }
                }
                return Err(TooManyElements {
                    bound,
                    per: per_entry,
                    items,
                });
            }
        }
    }
    Ok(compiled)
}
