//! Two evaluators of one ACL direction for a packet, kept apart on purpose:
//! [`first_match`] reads the numbered items as CloudStack defines them (the
//! first item that matches decides), [`walk`] reads the compiled lookups as
//! the kernel walks the chain (the first set that holds the packet's key
//! decides). Tests compare them on random lists and packets; the benchmark
//! and the end-to-end test use them to know each probe's fate.

use crate::model::{AclRule, Action, Match};
use crate::plan::acl::index::holds;
use crate::plan::acl::{Compiled, Shape, icmp_protocol};

/// The fields of a packet an ACL item can look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    pub v6: bool,
    /// The source (ingress) or destination (egress) address.
    pub addr: u128,
    pub protocol: u8,
    /// Destination port (TCP and UDP).
    pub port: u16,
    /// ICMP type and code (ICMP and ICMPv6).
    pub icmp: (u8, u8),
}

fn item_matches(rule: &AclRule, p: &Packet) -> bool {
    let addressed = rule.cidrs.iter().any(|net| match net {
        ipnet::IpNet::V4(n) => {
            !p.v6
                && u32::from(n.network()) as u128 <= p.addr
                && p.addr <= u32::from(n.broadcast()) as u128
        }
        ipnet::IpNet::V6(n) => {
            p.v6 && u128::from(n.network()) <= p.addr && p.addr <= u128::from(n.broadcast())
        }
    });
    addressed
        && match rule.matches {
            Match::All => true,
            Match::Protocol(n) => p.protocol == n,
            Match::Ports {
                protocol,
                first,
                last,
            } => p.protocol == protocol && first <= p.port && p.port <= last,
            Match::Icmp { icmp_type, code } => {
                p.protocol == icmp_protocol(p.v6)
                    && icmp_type.is_none_or(|t| t == p.icmp.0)
                    && code.is_none_or(|c| c == p.icmp.1)
            }
        }
}

/// The action of the first item (in number order) matching `p`, if any.
pub fn first_match(rules: &[&AclRule], p: &Packet) -> Option<Action> {
    rules.iter().find(|r| item_matches(r, p)).map(|r| r.action)
}

/// The key a lookup of `shape` builds from `p`, or `None` when the rule's
/// implied match (the family; ICMP for the ICMP shapes) fails first.
fn key(shape: Shape, p: &Packet) -> Option<[u128; 3]> {
    if shape.v6() != p.v6 {
        return None;
    }
    let addr = p.addr;
    match shape {
        Shape::V4Ports | Shape::V6Ports => Some([addr, p.protocol as u128, p.port as u128]),
        Shape::V4Proto | Shape::V6Proto => Some([addr, p.protocol as u128, 0]),
        Shape::V4Icmp | Shape::V6Icmp => (p.protocol == icmp_protocol(p.v6)).then_some([
            addr,
            p.icmp.0 as u128,
            p.icmp.1 as u128,
        ]),
    }
}

/// The action of the first lookup holding `p`'s key, if any.
pub fn walk(compiled: &Compiled, p: &Packet) -> Option<Action> {
    compiled
        .lookups
        .iter()
        .find(|l| key(l.shape, p).is_some_and(|k| l.elements.iter().any(|e| holds(e, &k))))
        .map(|l| l.action)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::Direction;
    use crate::plan::acl::{ELEMENTS_PER_ENTRY, compile};

    /// Items over a small space (addresses in 10.0.0.0/26 and 2001:db8::/122,
    /// ports 1-24, four ICMP types and codes, four protocols) so that random
    /// items overlap often and in every way.
    fn small_item() -> impl Strategy<Value = (bool, u8, u8, u8, u16, u16, u8, u8, bool)> {
        (
            any::<bool>(),
            0u8..=6,
            26u8..=32,
            0u8..64,
            1u16..=24,
            0u16..=8,
            0u8..=4,
            0u8..=4,
            prop::bool::weighted(0.15),
        )
    }

    fn rule(
        number: u32,
        (allow, kind, len, at, port, span, t, c, v6): (bool, u8, u8, u8, u16, u16, u8, u8, bool),
    ) -> AclRule {
        let cidr: ipnet::IpNet = if len == 26 && at % 7 == 0 {
            // Now and then the whole family.
            if v6 { "::/0" } else { "0.0.0.0/0" }.parse().unwrap()
        } else if v6 {
            let addr = std::net::Ipv6Addr::from((0x2001_0db8_u128 << 96) | at as u128);
            ipnet::Ipv6Net::new(addr, 96 + len).unwrap().trunc().into()
        } else {
            let addr = std::net::Ipv4Addr::new(10, 0, 0, at);
            ipnet::Ipv4Net::new(addr, len).unwrap().trunc().into()
        };
        let matches = match kind {
            0 => Match::All,
            1 | 2 => Match::Ports {
                protocol: if kind == 1 { 6 } else { 17 },
                first: port,
                last: port.saturating_add(span).min(24),
            },
            3 => Match::Icmp {
                icmp_type: (t < 4).then_some(t),
                code: (c < 4).then_some(c),
            },
            4 => Match::Protocol(6),
            5 => Match::Protocol(icmp_protocol(v6)),
            _ => Match::Protocol(47),
        };
        AclRule {
            number,
            id: String::new(),
            action: if allow { Action::Allow } else { Action::Deny },
            direction: Direction::Ingress,
            matches,
            cidrs: vec![cidr],
        }
    }

    fn packet((v6, at, protocol, port, t, c): (bool, u8, u8, u16, u8, u8)) -> Packet {
        let protocol = [6, 17, 1, 58, 47, 50][protocol as usize % 6];
        Packet {
            v6,
            addr: if v6 {
                (0x2001_0db8_u128 << 96) | at as u128
            } else {
                u32::from(std::net::Ipv4Addr::new(10, 0, 0, at)) as u128
            },
            protocol,
            port,
            icmp: (t, c),
        }
    }

    /// The kernel's rule for one set, element by element in order.
    fn kernel_accepts(elements: &[crate::plan::boxes::Box3]) -> bool {
        elements.iter().enumerate().all(|(i, e)| {
            let (lo, hi) = ([e[0].0, e[1].0, e[2].0], [e[0].1, e[1].1, e[2].1]);
            elements[..i]
                .iter()
                .all(|p| !holds(p, &lo) && !holds(p, &hi))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn the_layered_lookups_decide_every_packet_as_first_match_over_the_list(
            items in prop::collection::vec(small_item(), 0..40),
            packets in prop::collection::vec(
                (prop::bool::weighted(0.15), 0u8..64, 0u8..6, 0u16..=26, 0u8..5, 0u8..5),
                200,
            ),
        ) {
            let rules: Vec<AclRule> = items
                .into_iter()
                .enumerate()
                .map(|(i, it)| rule(i as u32 + 1, it))
                .collect();
            let refs: Vec<&AclRule> = rules.iter().collect();
            let compiled = compile(&refs).expect("small lists fit the bound");
            prop_assert!(compiled.elements() <= ELEMENTS_PER_ENTRY * rules.len());
            for lookup in &compiled.lookups {
                prop_assert!(kernel_accepts(&lookup.elements), "{:?}", lookup);
            }
            for p in packets {
                let p = packet(p);
                prop_assert_eq!(walk(&compiled, &p), first_match(&refs, &p), "{:?}", p);
            }
        }
    }

    fn nested(ports: &[(u16, u16)]) -> Vec<AclRule> {
        let cidrs = ["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.1.0/24"];
        cidrs
            .iter()
            .zip(ports)
            .enumerate()
            .map(|(i, (c, &(first, last)))| AclRule {
                number: i as u32 + 1,
                id: String::new(),
                action: if i % 2 == 0 {
                    Action::Deny
                } else {
                    Action::Allow
                },
                direction: Direction::Ingress,
                matches: Match::Ports {
                    protocol: 6,
                    first,
                    last,
                },
                cidrs: vec![c.parse().unwrap()],
            })
            .collect()
    }

    #[test]
    fn alternating_overlapping_items_need_one_layer_per_change_of_action() {
        // Each item overlaps the one before with the other action, and
        // sticks out of it (its ports go further), so none is shadowed.
        let rules = nested(&[(1, 100), (50, 200), (150, 300), (250, 400)]);
        let refs: Vec<&AclRule> = rules.iter().collect();
        assert_eq!(compile(&refs).unwrap().layers, 4);
        // The same items, ports apart: nothing overlaps, one layer.
        let apart = nested(&[(100, 100), (101, 101), (102, 102), (103, 103)]);
        let refs: Vec<&AclRule> = apart.iter().collect();
        let compiled = compile(&refs).unwrap();
        assert_eq!(compiled.layers, 1);
        assert_eq!(compiled.lookups.len(), 2, "one deny and one allow set");
    }

    #[test]
    fn an_item_inside_an_earlier_one_is_left_out() {
        // Every later item lies inside the first (all ports of 0.0.0.0/0):
        // they can never decide, so they add no layer and no element.
        let rules = nested(&[(1, 65535), (50, 200), (150, 300), (250, 400)]);
        let refs: Vec<&AclRule> = rules.iter().collect();
        let compiled = compile(&refs).unwrap();
        assert_eq!(compiled.layers, 1);
        assert_eq!(compiled.elements(), 1);
        assert_eq!(compiled.lookups[0].action, Action::Deny);
    }
}
