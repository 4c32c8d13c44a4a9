//! ACL chains: each ACL item becomes boxes (one span per key field) in the
//! sets of its run, one set per key shape.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::IpNet;

use super::{Chain, Set, inbound_chain, outbound_chain};
use crate::model::*;
use crate::plan::boxes::{Box3, Span, disjoint};

/// The key shapes an ACL item can need; a run gets one set per shape used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Shape {
    V4Ports,
    V4Proto,
    V4Icmp,
    V6Ports,
    V6Proto,
    V6Icmp,
}

impl Shape {
    fn suffix(self) -> &'static str {
        match self {
            Shape::V4Ports => "v4_ports",
            Shape::V4Proto => "v4_proto",
            Shape::V4Icmp => "v4_icmp",
            Shape::V6Ports => "v6_ports",
            Shape::V6Proto => "v6_proto",
            Shape::V6Icmp => "v6_icmp",
        }
    }

    fn v6(self) -> bool {
        matches!(self, Shape::V6Ports | Shape::V6Proto | Shape::V6Icmp)
    }

    fn set_type(self) -> &'static str {
        match self {
            Shape::V4Ports => "ipv4_addr . inet_proto . inet_service",
            Shape::V4Proto => "ipv4_addr . inet_proto",
            Shape::V4Icmp => "ipv4_addr . icmp_type . icmp_code",
            Shape::V6Ports => "ipv6_addr . inet_proto . inet_service",
            Shape::V6Proto => "ipv6_addr . inet_proto",
            Shape::V6Icmp => "ipv6_addr . icmpv6_type . icmpv6_code",
        }
    }

    /// The match expression, given `saddr` or `daddr`.
    fn key(self, addr: &str) -> String {
        match self {
            Shape::V4Ports => format!("ip {addr} . meta l4proto . th dport"),
            Shape::V4Proto => format!("ip {addr} . meta l4proto"),
            Shape::V4Icmp => format!("ip {addr} . icmp type . icmp code"),
            Shape::V6Ports => format!("ip6 {addr} . meta l4proto . th dport"),
            Shape::V6Proto => format!("ip6 {addr} . meta l4proto"),
            Shape::V6Icmp => format!("ip6 {addr} . icmpv6 type . icmpv6 code"),
        }
    }

    fn fields(self) -> usize {
        match self {
            Shape::V4Proto | Shape::V6Proto => 2,
            _ => 3,
        }
    }
}

fn addr_span(net: &IpNet) -> Span {
    match net {
        IpNet::V4(n) => (
            u32::from(n.network()) as u128,
            u32::from(n.broadcast()) as u128,
        ),
        IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast())),
    }
}

/// The boxes (one span per key field) an item adds to its run's sets.
fn item_boxes(rule: &AclRule) -> Vec<(Shape, Box3)> {
    let byte = |v: Option<u8>| v.map_or((0, 255), |b| (b as u128, b as u128));
    let mut out = Vec::new();
    for net in &rule.cidrs {
        let v6 = matches!(net, IpNet::V6(_));
        let addr = addr_span(net);
        let (shape, rest): (Shape, [Span; 2]) = match rule.matches {
            Match::All => (
                if v6 { Shape::V6Proto } else { Shape::V4Proto },
                [(0, 255), (0, 0)],
            ),
            Match::Protocol(p) => (
                if v6 { Shape::V6Proto } else { Shape::V4Proto },
                [(p as u128, p as u128), (0, 0)],
            ),
            Match::Ports {
                protocol,
                first,
                last,
            } => (
                if v6 { Shape::V6Ports } else { Shape::V4Ports },
                [
                    (protocol as u128, protocol as u128),
                    (first as u128, last as u128),
                ],
            ),
            Match::Icmp { icmp_type, code } => (
                if v6 { Shape::V6Icmp } else { Shape::V4Icmp },
                [byte(icmp_type), byte(code)],
            ),
        };
        out.push((shape, [addr, rest[0], rest[1]]));
    }
    out
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

/// One ACL chain: each run of consecutive items with the same action becomes
/// one set lookup per key shape, so a packet's cost follows the number of
/// action changes, not the number of items. First match wins because runs are
/// checked in item-number order.
pub(super) fn acl_chain(index: u32, direction: Direction, rules: &[&AclRule]) -> Chain {
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
    let mut start = 0;
    while start < rules.len() {
        let action = rules[start].action;
        let end = rules[start..]
            .iter()
            .position(|r| r.action != action)
            .map_or(rules.len(), |p| start + p);
        let run = &rules[start..end];
        let mut by_shape: BTreeMap<Shape, Vec<Box3>> = BTreeMap::new();
        for rule in run {
            for (shape, b) in item_boxes(rule) {
                by_shape.entry(shape).or_default().push(b);
            }
        }
        // Allow in an egress chain returns, so the packet goes on to the
        // ingress ACL of the network it is going to.
        let verdict = match (action, direction) {
            (Action::Allow, Direction::Ingress) => "accept",
            (Action::Allow, Direction::Egress) => "return",
            (Action::Deny, _) => "drop",
        };
        for (shape, boxes) in by_shape {
            let set_name = format!(
                "{}_{}_{}",
                name.to_ascii_lowercase(),
                run[0].number,
                shape.suffix()
            );
            let elements = disjoint(boxes)
                .iter()
                .map(|b| render_box(shape, b))
                .collect();
            chain
                .rules
                .push(format!("{} @{set_name} {verdict}", shape.key(addr)));
            chain.sets.push(Set {
                name: set_name,
                kind: "set",
                spec: format!("type {}; flags interval;", shape.set_type()),
                elements,
            });
        }
        start = end;
    }
    // Ingress defaults to deny. Egress defaults to allow until the NIC has an
    // egress item, then to deny (the original VPC specification's promise).
    if direction == Direction::Ingress || !rules.is_empty() {
        chain.rules.push("drop".into());
    }
    chain
}
