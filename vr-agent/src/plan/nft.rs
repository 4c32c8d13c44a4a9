//! The agent's nftables table, planned from the desired state.
//!
//! The agent owns `table inet vpc` and nothing else. The plan is a [`Ruleset`]:
//! chains, each owning the named sets its rules look up. [`Ruleset::render_full`]
//! replaces the whole table in one transaction (first apply, restart, repair);
//! [`Ruleset::render_update`] rebuilds only the chains whose content changed, in
//! one transaction, so changing one tier's ACL does not reload every other
//! tier's sets.
//!
//! Layout (reference: DESIGN §3, CloudStack's router §4.5–4.7):
//! - `mangle_prerouting`: connmark restore for replies, NIC mark for new
//!   connections, so replies leave by the NIC their connection came in on.
//! - `nat_prerouting`: static NAT, port forwarding maps, load balancers.
//! - `filter_forward`: established/related first, then each packet walks the
//!   egress ACL of the NIC it came from and the ingress ACL of the NIC it goes
//!   to, chosen by verdict maps on the interface name.
//! - `filter_input`: DHCP and DNS from the tiers, ICMP, the agent port from
//!   control NICs.
//! - `nat_postrouting`: static NAT out, source NAT per public or private
//!   gateway NIC, hairpin NAT inside a tier.
//! - `ACL_INBOUND_ethN` / `ACL_OUTBOUND_ethN` per tier and private gateway NIC.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};

use super::boxes::{Box3, Span, disjoint};
use crate::model::*;

/// `table inet vpc`: the only table the agent touches.
pub const TABLE: &str = "vpc";
/// `type filter hook prerouting priority mangle`: marks and connmarks.
pub const CHAIN_MANGLE: &str = "mangle_prerouting";
/// `type nat hook prerouting priority dstnat`: static NAT, PF, LB.
pub const CHAIN_DSTNAT: &str = "nat_prerouting";
/// `type filter hook forward priority filter; policy drop`: ACL dispatch.
pub const CHAIN_FORWARD: &str = "filter_forward";
/// `type filter hook input priority filter; policy drop`: what the router serves.
pub const CHAIN_INPUT: &str = "filter_input";
/// `type nat hook postrouting priority srcnat`: SNAT.
pub const CHAIN_SRCNAT: &str = "nat_postrouting";

/// The ingress ACL chain of a NIC (traffic going into its network).
pub fn inbound_chain(index: u32) -> String {
    format!("ACL_INBOUND_{}", dev_name(index))
}

/// The egress ACL chain of a NIC (traffic coming out of its network).
pub fn outbound_chain(index: u32) -> String {
    format!("ACL_OUTBOUND_{}", dev_name(index))
}

/// Options that do not come from the desired state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NftOptions {
    /// The agent's own TCP port, accepted on control NICs.
    pub agent_port: Option<u16>,
}

/// A named set or map owned by one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    pub name: String,
    /// `set` or `map`.
    pub kind: &'static str,
    /// The body before the elements, e.g. `type ipv4_addr; flags interval;`.
    pub spec: String,
    pub elements: Vec<String>,
}

/// A chain with its rules and the sets they use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub name: String,
    /// For base chains: `type filter hook forward priority filter; policy drop;`.
    pub hook: Option<String>,
    pub sets: Vec<Set>,
    pub rules: Vec<String>,
}

/// The whole planned table: regular (ACL) chains first, so that jumps to them
/// resolve when the base chains are added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub chains: Vec<Chain>,
}

/// Plans the table for `router`.
pub fn plan(router: &Router, options: &NftOptions) -> Ruleset {
    plan_from(router, options, None)
}

/// Plans the table for `router`, reusing the ACL chains of `previous` (a
/// router and the ruleset planned for it) for NICs whose ACL did not change.
pub fn plan_from(
    router: &Router,
    options: &NftOptions,
    previous: Option<(&Router, &Ruleset)>,
) -> Ruleset {
    let mut chains = Vec::new();
    for nic in router.nics.values().filter(|n| has_acl_chains(n)) {
        let unchanged = previous.filter(|(old, _)| {
            old.nics.get(&nic.index) == Some(nic)
                && old.acls.get(&nic.index) == router.acls.get(&nic.index)
        });
        if let Some((_, old_rules)) = unchanged {
            let names = [inbound_chain(nic.index), outbound_chain(nic.index)];
            let reused: Vec<&Chain> = names
                .iter()
                .filter_map(|name| old_rules.chains.iter().find(|c| &c.name == name))
                .collect();
            if reused.len() == 2 {
                chains.extend(reused.into_iter().cloned());
                continue;
            }
        }
        let acl = router.acls.get(&nic.index);
        let rules = |d| {
            acl.map(|a| a.rules(d).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        chains.push(acl_chain(
            nic.index,
            Direction::Ingress,
            &rules(Direction::Ingress),
        ));
        chains.push(acl_chain(
            nic.index,
            Direction::Egress,
            &rules(Direction::Egress),
        ));
    }
    chains.push(mangle(router));
    chains.push(dstnat(router));
    chains.push(forward(router));
    chains.push(input(router, options));
    chains.push(srcnat(router));
    Ruleset { chains }
}

fn has_acl_chains(nic: &Nic) -> bool {
    matches!(nic.role, Role::Guest | Role::Private)
}

fn quoted_list<I: IntoIterator<Item = String>>(items: I) -> String {
    let items: Vec<String> = items.into_iter().collect();
    if items.len() == 1 {
        return items.into_iter().next().expect("one");
    }
    format!("{{ {} }}", items.join(", "))
}

fn ifname(index: u32) -> String {
    format!("\"{}\"", dev_name(index))
}

fn cidr_list(nets: &[Ipv4Net]) -> String {
    quoted_list(
        Ipv4Net::aggregate(&nets.to_vec())
            .into_iter()
            .map(|n| n.to_string()),
    )
}

// ---------------------------------------------------------------------------
// ACL chains
// ---------------------------------------------------------------------------

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
fn acl_chain(index: u32, direction: Direction, rules: &[&AclRule]) -> Chain {
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

// ---------------------------------------------------------------------------
// Base chains
// ---------------------------------------------------------------------------

fn mangle(router: &Router) -> Chain {
    let mut rules = vec!["ct state established,related meta mark set ct mark".to_string()];
    let routed: Vec<&Nic> = router.nics.values().filter(|n| n.is_routed()).collect();
    if !routed.is_empty() {
        let map = routed
            .iter()
            .map(|n| format!("{} : {:#x}", ifname(n.index), n.table()));
        rules.push(format!(
            "ct state new meta mark set iifname map {{ {} }}",
            map.collect::<Vec<_>>().join(", ")
        ));
    }
    let mut sets = Vec::new();
    if !router.static_nats.is_empty() {
        // A VM with a static NAT IP sends its new connections out through the
        // NIC that holds that IP (matters with several public NICs), except to
        // networks the router reaches inside: tiers, private gateways, routes.
        let mut internal: Vec<Ipv4Net> = router.tier_cidrs();
        internal.extend(
            router
                .public_ips
                .iter()
                .filter(|p| p.private_gateway)
                .map(|p| p.subnet()),
        );
        internal.extend(router.static_routes.iter().map(|r| r.cidr));
        let nic_of = |ip: Ipv4Addr| {
            router
                .public_ips
                .iter()
                .find(|p| p.address == ip)
                .map(|p| p.index)
        };
        let elements = router
            .static_nats
            .iter()
            .filter_map(|s| {
                nic_of(s.public_ip).map(|i| format!("{} : {:#x}", s.private_ip, NIC_TABLE_BASE + i))
            })
            .collect();
        sets.push(Set {
            name: "static_nat_mark".into(),
            kind: "map",
            spec: "type ipv4_addr : mark;".into(),
            elements,
        });
        rules.push(format!(
            "ct state new ip daddr != {} meta mark set ip saddr map @static_nat_mark",
            cidr_list(&internal)
        ));
    }
    rules.push("ct state new ct mark set meta mark".into());
    Chain {
        name: CHAIN_MANGLE.into(),
        hook: Some("type filter hook prerouting priority mangle; policy accept;".into()),
        sets,
        rules,
    }
}

fn dstnat(router: &Router) -> Chain {
    let mut rules = Vec::new();
    let mut sets = Vec::new();
    if !router.static_nats.is_empty() {
        sets.push(Set {
            name: "static_nat_in".into(),
            kind: "map",
            spec: "type ipv4_addr : ipv4_addr;".into(),
            elements: router
                .static_nats
                .iter()
                .map(|s| format!("{} : {}", s.public_ip, s.private_ip))
                .collect(),
        });
        rules.push("dnat ip to ip daddr map @static_nat_in".into());
    }
    let key = "ip daddr . meta l4proto . th dport";
    let proto = |p: L4| match p {
        L4::Tcp => 6,
        L4::Udp => 17,
    };
    // Equal ranges keep the port (one interval element); shifted ranges map
    // port by port (validation caps their width).
    let same = |r: &PortForward| {
        vec![format!(
            "{} . {} . {}-{} : {}",
            r.public_ip,
            proto(r.protocol),
            r.public_ports.0,
            r.public_ports.1,
            r.private_ip
        )]
    };
    let shifted = |r: &PortForward| {
        (0..=(r.public_ports.1 - r.public_ports.0))
            .map(|k| {
                format!(
                    "{} . {} . {} : {} . {}",
                    r.public_ip,
                    proto(r.protocol),
                    r.public_ports.0 + k,
                    r.private_ip,
                    r.private_ports.0 + k
                )
            })
            .collect::<Vec<_>>()
    };
    for r in router
        .port_forwards
        .iter()
        .filter(|r| !r.sources.is_empty())
    {
        let elements = if r.public_ports == r.private_ports {
            same(r)
        } else {
            shifted(r)
        };
        rules.push(format!(
            "ip saddr {} dnat ip to {key} map {{ {} }}",
            cidr_list(&r.sources),
            elements.join(", ")
        ));
    }
    let open: Vec<&PortForward> = router
        .port_forwards
        .iter()
        .filter(|r| r.sources.is_empty())
        .collect();
    let shifted_elements: Vec<String> = open
        .iter()
        .filter(|r| r.public_ports != r.private_ports)
        .flat_map(|r| shifted(r))
        .collect();
    if !shifted_elements.is_empty() {
        sets.push(Set {
            name: "pf_shifted".into(),
            kind: "map",
            spec: "type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service;".into(),
            elements: shifted_elements,
        });
        rules.push(format!("dnat ip to {key} map @pf_shifted"));
    }
    let same_elements: Vec<String> = open
        .iter()
        .filter(|r| r.public_ports == r.private_ports)
        .flat_map(|r| same(r))
        .collect();
    if !same_elements.is_empty() {
        sets.push(Set {
            name: "pf_same_port".into(),
            kind: "map",
            spec: "type ipv4_addr . inet_proto . inet_service : ipv4_addr; flags interval;".into(),
            elements: same_elements,
        });
        rules.push(format!("dnat ip to {key} map @pf_same_port"));
    }
    for lb in router
        .load_balancers
        .iter()
        .filter(|lb| !lb.backends.is_empty())
    {
        let sources = if lb.sources.is_empty() {
            String::new()
        } else {
            format!("ip saddr {} ", cidr_list(&lb.sources))
        };
        let pick = match lb.algorithm {
            Algorithm::RoundRobin => format!("numgen inc mod {}", lb.backends.len()),
            Algorithm::SourceHash => format!("jhash ip saddr mod {}", lb.backends.len()),
        };
        let backends: Vec<String> = lb
            .backends
            .iter()
            .enumerate()
            .map(|(i, (ip, port))| format!("{i} : {ip} . {port}"))
            .collect();
        rules.push(format!(
            "{sources}ip daddr {} {} dport {} dnat ip to {pick} map {{ {} }}",
            lb.public_ip,
            lb.protocol.name(),
            lb.public_port,
            backends.join(", ")
        ));
    }
    Chain {
        name: CHAIN_DSTNAT.into(),
        hook: Some("type nat hook prerouting priority dstnat; policy accept;".into()),
        sets,
        rules,
    }
}

fn forward(router: &Router) -> Chain {
    let mut rules = vec![
        // Replies and related traffic never walk the ACLs: existing flows keep
        // passing while a new ruleset is swapped in.
        "ct state established,related accept".to_string(),
        "ct state invalid drop".to_string(),
    ];
    let acl_nics: Vec<u32> = router
        .nics
        .values()
        .filter(|n| has_acl_chains(n))
        .map(|n| n.index)
        .collect();
    if !acl_nics.is_empty() {
        let vmap = |chain: fn(u32) -> String| {
            acl_nics
                .iter()
                .map(|i| format!("{} : jump {}", ifname(*i), chain(*i)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        rules.push(format!("iifname vmap {{ {} }}", vmap(outbound_chain)));
        rules.push(format!("oifname vmap {{ {} }}", vmap(inbound_chain)));
    }
    let public: Vec<String> = router
        .nics_with(Role::Public)
        .map(|n| ifname(n.index))
        .collect();
    if !public.is_empty() {
        rules.push(format!("oifname {} accept", quoted_list(public)));
    }
    Chain {
        name: CHAIN_FORWARD.into(),
        hook: Some("type filter hook forward priority filter; policy drop;".into()),
        sets: Vec::new(),
        rules,
    }
}

fn input(router: &Router, options: &NftOptions) -> Chain {
    let mut rules = vec![
        "iif \"lo\" accept".to_string(),
        "ct state established,related accept".to_string(),
        "ct state invalid drop".to_string(),
        "meta l4proto { icmp, ipv6-icmp } accept".to_string(),
    ];
    if !router.tiers.is_empty() {
        let guests = quoted_list(router.tiers.keys().map(|i| ifname(*i)));
        rules.push(format!("iifname {guests} udp dport 67 accept"));
        for tier in router.tiers.values() {
            rules.push(format!(
                "iifname {} ip saddr {} meta l4proto {{ tcp, udp }} th dport 53 accept",
                ifname(tier.index),
                tier.cidr
            ));
        }
    }
    let control: Vec<String> = router
        .nics_with(Role::Control)
        .map(|n| ifname(n.index))
        .collect();
    match (options.agent_port, control.is_empty()) {
        (Some(port), false) => rules.push(format!(
            "iifname {} tcp dport {port} accept",
            quoted_list(control)
        )),
        // Until the manager has told the router which NIC is its control NIC
        // (first boot), the agent must stay reachable; mutual TLS guards it.
        (Some(port), true) => rules.push(format!("tcp dport {port} accept")),
        (None, _) => {}
    }
    Chain {
        name: CHAIN_INPUT.into(),
        hook: Some("type filter hook input priority filter; policy drop;".into()),
        sets: Vec::new(),
        rules,
    }
}

fn srcnat(router: &Router) -> Chain {
    let mut rules = Vec::new();
    let mut sets = Vec::new();
    if !router.static_nats.is_empty() {
        let nic_of = |ip: Ipv4Addr| {
            router
                .public_ips
                .iter()
                .find(|p| p.address == ip)
                .map(|p| p.index)
        };
        sets.push(Set {
            name: "static_nat_out".into(),
            kind: "map",
            spec: "type ifname . ipv4_addr : ipv4_addr;".into(),
            elements: router
                .static_nats
                .iter()
                .filter_map(|s| {
                    nic_of(s.public_ip)
                        .map(|i| format!("{} . {} : {}", ifname(i), s.private_ip, s.public_ip))
                })
                .collect(),
        });
        rules.push("snat ip to oifname . ip saddr map @static_nat_out".into());
    }
    for snat in router.source_nat.iter().filter(|s| !s.sources.is_empty()) {
        rules.push(format!(
            "oifname {} ip saddr {} snat ip to {}",
            ifname(snat.index),
            cidr_list(&snat.sources),
            snat.nat_ip
        ));
    }
    // Hairpin: a VM reaching a forwarded public IP whose target is in its own
    // tier gets the router's tier address as source, so the reply comes back
    // through the router to be un-NATed instead of going straight to the VM.
    for tier in router.tiers.values() {
        rules.push(format!(
            "oifname {} ip saddr {} ct status dnat snat ip to {}",
            ifname(tier.index),
            tier.cidr,
            tier.gateway
        ));
    }
    Chain {
        name: CHAIN_SRCNAT.into(),
        hook: Some("type nat hook postrouting priority srcnat; policy accept;".into()),
        sets,
        rules,
    }
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

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
                let gone: Vec<&str> = before.difference(&after).map(|e| e.as_str()).collect();
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

    /// Number of rules and set elements, for logs.
    pub fn size(&self) -> (usize, usize) {
        let rules = self.chains.iter().map(|c| c.rules.len()).sum();
        let elements = self
            .chains
            .iter()
            .flat_map(|c| &c.sets)
            .map(|s| s.elements.len())
            .sum();
        (rules, elements)
    }
}
