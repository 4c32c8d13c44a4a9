//! The base chains hooked into netfilter: marks, destination NAT, the
//! forward-path ACL dispatch, what the router serves, and source NAT.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::{
    CHAIN_DSTNAT, CHAIN_FORWARD, CHAIN_INPUT, CHAIN_MANGLE, CHAIN_SRCNAT, Chain, NftOptions,
    Ruleset, Set, cidr_list, has_acl_chains, ifname, inbound_chain, outbound_chain, quoted_list,
};
use crate::model::*;

/// The previous table, when its static NAT sets are those `router` gets
/// (the same static NATs on the same public IPs): a change of the port
/// forwards or an ACL then takes those sets as they are instead of
/// rendering them again.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct StaticNatSets<'a>(Option<&'a Ruleset>);

impl<'a> StaticNatSets<'a> {
    pub(super) fn from_previous(router: &Router, previous: Option<(&Router, &'a Ruleset)>) -> Self {
        Self(previous.and_then(|(old, table)| {
            (old.static_nats == router.static_nats && old.public_ips == router.public_ips)
                .then_some(table)
        }))
    }

    /// The set `set` of the chain `chain` as the previous table holds it,
    /// else `render`'s elements.
    fn elements(
        self,
        chain: &str,
        set: &str,
        render: impl FnOnce() -> Vec<String>,
    ) -> std::sync::Arc<[String]> {
        let held = self.0.and_then(|table| {
            let chain = table.chains.iter().find(|c| c.name == chain)?;
            let set = chain.sets.iter().find(|s| s.name == set)?;
            Some(std::sync::Arc::clone(&set.elements))
        });
        held.unwrap_or_else(|| render().into())
    }
}

pub(super) fn mangle(router: &Router, nats: StaticNatSets) -> Chain {
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
        let elements = nats.elements(CHAIN_MANGLE, "static_nat_mark", || {
            router
                .static_nats
                .iter()
                .filter_map(|s| {
                    nic_of(s.public_ip)
                        .map(|i| format!("{} : {:#x}", s.private_ip, NIC_TABLE_BASE + i))
                })
                .collect()
        });
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
        subchains: Vec::new(),
    }
}

/// The DNAT chain; `previous` (the router and table planned before) lets
/// the port forwards' maps be made from the previous ones.
pub(super) fn dstnat(
    router: &Router,
    previous: Option<(&Router, &Ruleset)>,
    nats: StaticNatSets,
) -> Chain {
    let mut rules = Vec::new();
    let mut sets = Vec::new();
    if !router.static_nats.is_empty() {
        sets.push(Set {
            name: "static_nat_in".into(),
            kind: "map",
            spec: "type ipv4_addr : ipv4_addr;".into(),
            elements: nats.elements(CHAIN_DSTNAT, "static_nat_in", || {
                router
                    .static_nats
                    .iter()
                    .map(|s| format!("{} : {}", s.public_ip, s.private_ip))
                    .collect()
            }),
        });
        rules.push("dnat ip to ip daddr map @static_nat_in".into());
    }
    let before = previous.and_then(|(old, table)| {
        let chain = table.chains.iter().find(|c| c.name == CHAIN_DSTNAT)?;
        Some((old, chain))
    });
    port_forwards(router, before, &mut sets, &mut rules);
    // Rules that need connection counts or cookies are HAProxy's (it
    // listens on the public address itself): no DNAT for them.
    for lb in router
        .load_balancers
        .iter()
        .filter(|lb| !lb.backends.is_empty() && !lb.needs_proxy())
    {
        let sources = if lb.sources.is_empty() {
            String::new()
        } else {
            format!("ip saddr {} ", cidr_list(&lb.sources))
        };
        // SourceBased stickiness is a source hash: one client, one backend.
        let by_source = lb.algorithm == Algorithm::SourceHash
            || matches!(lb.stickiness, Some(Stickiness::SourceBased { .. }));
        let pick = if by_source {
            format!("jhash ip saddr mod {}", lb.backends.len())
        } else {
            format!("numgen inc mod {}", lb.backends.len())
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
        subchains: Vec::new(),
    }
}

/// The port forwards' DNAT maps, each a lookup a new flow to the router
/// makes at most once, whatever the number of forwards (issue 17: NAT maps
/// at 10,000 rules cost no measurable forwarding rate):
/// - `pf_port`, a hash map: single ports, any client (most forwards);
/// - `pf_same_port`, an interval map: ranges kept as they are;
/// - `pf_shifted`, a hash map: ranges moved to other ports, port by port
///   (validation caps their width);
/// - `pf_sources` and `pf_sources_shifted`, interval maps on the client's
///   address too: forwards for some source CIDRs only.
///
/// (name, what the rule matches first, key, map spec).
const PF_MAPS: [(&str, &str, &str, &str); 5] = [
    (
        "pf_port",
        "",
        "ip daddr . meta l4proto . th dport",
        "type ipv4_addr . inet_proto . inet_service : ipv4_addr;",
    ),
    (
        "pf_same_port",
        "",
        "ip daddr . meta l4proto . th dport",
        "type ipv4_addr . inet_proto . inet_service : ipv4_addr; flags interval;",
    ),
    (
        "pf_shifted",
        "",
        "ip daddr . meta l4proto . th dport",
        "type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service;",
    ),
    (
        "pf_sources",
        "",
        "ip saddr . ip daddr . meta l4proto . th dport",
        "type ipv4_addr . ipv4_addr . inet_proto . inet_service : ipv4_addr; flags interval;",
    ),
    (
        "pf_sources_shifted",
        // nft refuses this mapping to an address and port ("transport
        // protocol mapping is only valid after transport protocol
        // match") unless the rule matches the protocol first.
        "meta l4proto { tcp, udp } ",
        "ip saddr . ip daddr . meta l4proto . th dport",
        "type ipv4_addr . ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; \
         flags interval;",
    ),
];

/// The map (an index of [`PF_MAPS`]) a forward's elements go to.
fn pf_map_of(r: &PortForward) -> usize {
    let keeps_port = r.public_ports == r.private_ports;
    let single = r.public_ports.0 == r.public_ports.1;
    match (r.sources.is_empty(), keeps_port) {
        (true, true) if single => 0,
        (true, true) => 1,
        (true, false) => 2,
        (false, true) => 3,
        (false, false) => 4,
    }
}

/// A forward's elements, in the map [`pf_map_of`] names.
fn pf_elements(r: &PortForward) -> Vec<String> {
    let proto = match r.protocol {
        L4::Tcp => 6,
        L4::Udp => 17,
    };
    // The key of an element: public address, protocol, port(s).
    let key = |public: std::fmt::Arguments| format!("{} . {proto} . {public}", r.public_ip);
    let same = || {
        let (first, last) = r.public_ports;
        let key = if first == last {
            key(format_args!("{first}"))
        } else {
            key(format_args!("{first}-{last}"))
        };
        format!("{key} : {}", r.private_ip)
    };
    let shifted = || {
        (0..=(r.public_ports.1 - r.public_ports.0))
            .map(|k| {
                format!(
                    "{} : {} . {}",
                    key(format_args!("{}", r.public_ports.0 + k)),
                    r.private_ip,
                    r.private_ports.0 + k
                )
            })
            .collect::<Vec<_>>()
    };
    // One element per source CIDR (aggregated once per rule) and element.
    let sourced = |elements: Vec<String>| {
        let sources = Ipv4Net::aggregate(&r.sources);
        elements
            .iter()
            .flat_map(|element| sources.iter().map(move |s| format!("{s} . {element}")))
            .collect::<Vec<_>>()
    };
    match pf_map_of(r) {
        0 | 1 => vec![same()],
        2 => shifted(),
        3 => sourced(vec![same()]),
        _ => sourced(shifted()),
    }
}

/// The elements of `forwards`, by map, in the forwards' order.
fn pf_elements_of<'a>(forwards: impl IntoIterator<Item = &'a PortForward>) -> [Vec<String>; 5] {
    let mut maps: [Vec<String>; 5] = Default::default();
    for r in forwards {
        maps[pf_map_of(r)].extend(pf_elements(r));
    }
    maps
}

/// The port forwards' maps: their names, the rules looking them up and
/// their elements, in the forwards' order. No two forwards claim the same
/// public port (validation), so no two elements overlap and the order of
/// the lookups does not matter; the hash map comes first since most new
/// flows to a forward match there. Every forward is elements of named
/// maps, so adding, removing or moving one is an element change.
///
/// With `before` (the previous router and its table's DNAT chain), only
/// the forwards between those both lists begin and end with are rendered:
/// their old elements are taken out of the previous maps and their new
/// ones put in their place (issue 17: a change at 10,000 forwards in 5
/// ms); a map they do not touch is the previous one, shared.
fn port_forwards(
    router: &Router,
    before: Option<(&Router, &Chain)>,
    sets: &mut Vec<Set>,
    rules: &mut Vec<String>,
) {
    let maps = before
        .and_then(|(old, chain)| pf_maps_from(old, chain, &router.port_forwards))
        .unwrap_or_else(|| pf_elements_of(&router.port_forwards).map(std::sync::Arc::from));
    for ((name, guard, key, spec), elements) in PF_MAPS.into_iter().zip(maps) {
        if elements.is_empty() {
            continue;
        }
        rules.push(format!("{guard}dnat ip to {key} map @{name}"));
        sets.push(Set {
            name: name.into(),
            kind: "map",
            spec: spec.into(),
            elements,
        });
    }
}

/// The maps of `forwards` made from those of `old` (planned into `chain`),
/// or `None` when the previous maps are not where the forwards put them or
/// most forwards go (the maps are then planned whole).
///
/// A forward's elements are contiguous in its map, in list order, so the
/// splice's elements sit in each map at one place: where its first
/// element that goes is, or, when none goes, after the last element of the
/// nearest forward before the splice in that map (found by comparing
/// strings, one pass over the map; nothing else is rendered).
fn pf_maps_from(
    old: &Router,
    chain: &Chain,
    forwards: &[PortForward],
) -> Option<[std::sync::Arc<[String]>; 5]> {
    let splice = Splice::of(&old.port_forwards, forwards);
    // Most of the list replaced (a whole configuration applied): rendering
    // the new list alone is cheaper than rendering both.
    if splice.removed > old.port_forwards.len() / 2 {
        return None;
    }
    let gone = pf_elements_of(&old.port_forwards[splice.removed_range()]);
    let mut came = pf_elements_of(&forwards[splice.inserted_range()]);
    let mut out: [std::sync::Arc<[String]>; 5] = Default::default();
    for (m, (name, ..)) in PF_MAPS.iter().enumerate() {
        let held = chain
            .sets
            .iter()
            .find(|s| s.name == *name)
            .map_or_else(Default::default, |s| std::sync::Arc::clone(&s.elements));
        if gone[m].is_empty() && came[m].is_empty() {
            out[m] = held;
            continue;
        }
        let at = match gone[m].first() {
            Some(first) => held.iter().position(|e| e == first)?,
            None => match old.port_forwards[..splice.at]
                .iter()
                .rev()
                .find(|r| pf_map_of(r) == m)
            {
                Some(r) => {
                    let last = pf_elements(r).pop()?;
                    held.iter().position(|e| *e == last)? + 1
                }
                None => 0,
            },
        };
        let end = at + gone[m].len();
        if held.get(at..end)? != gone[m].as_slice() {
            return None;
        }
        let mut elements = Vec::with_capacity(held.len() - gone[m].len() + came[m].len());
        elements.extend_from_slice(&held[..at]);
        elements.append(&mut came[m]);
        elements.extend_from_slice(&held[end..]);
        out[m] = std::sync::Arc::from(elements);
    }
    Some(out)
}

pub(super) fn forward(router: &Router, nats: StaticNatSets) -> Chain {
    let mut rules = vec![
        // Replies and related traffic never walk the ACLs: existing flows keep
        // passing while a new ruleset is swapped in.
        "ct state established,related accept".to_string(),
        "ct state invalid drop".to_string(),
    ];
    let control: Vec<String> = router
        .nics_with(Role::Control)
        .map(|n| ifname(n.index))
        .collect();
    if !control.is_empty() {
        // The control network reaches the agent, never the VPC behind it.
        rules.push(format!("iifname {} drop", quoted_list(control)));
    }
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
    // Traffic of the VPC towards a VPN peer leaving by the userspace IPsec
    // device, once the tier's egress ACL let it go (the kernel backend sends
    // it out of the public NIC, accepted below as NATed sources).
    if let Some(vpn) = &router.vpn {
        for c in &vpn.connections {
            rules.push(format!(
                "oifname \"{}\" ip saddr {} ip daddr {} accept",
                crate::plan::vpn::USERSPACE_DEV,
                cidr_list(&c.local),
                cidr_list(&c.remote)
            ));
        }
    }
    // Towards a public network only what is NATed to one of its addresses
    // leaves: an untranslated private or foreign source must not reach the
    // internet (CloudStack's `FORWARD -s <vpc cidr> ! -d <vpc cidr>`).
    // The static NAT sources are a set, so that a static NAT that comes,
    // goes or changes its VM changes elements only.
    let mut sets = Vec::new();
    for nic in router.nics_with(Role::Public) {
        let natted: Vec<Ipv4Net> = router
            .source_nat
            .iter()
            .filter(|s| s.index == nic.index)
            .flat_map(|s| s.sources.iter().copied())
            .collect();
        if !natted.is_empty() {
            rules.push(format!(
                "oifname {} ip saddr {} accept",
                ifname(nic.index),
                cidr_list(&natted)
            ));
        }
        if router.static_nats.iter().any(|s| s.index == nic.index) {
            let name = format!("static_nat_src_{}", dev_name(nic.index));
            let elements = nats.elements(CHAIN_FORWARD, &name, || {
                let mut statics: Vec<String> = router
                    .static_nats
                    .iter()
                    .filter(|s| s.index == nic.index)
                    .map(|s| s.private_ip.to_string())
                    .collect();
                statics.sort();
                statics.dedup();
                statics
            });
            rules.push(format!(
                "oifname {} ip saddr @{name} accept",
                ifname(nic.index)
            ));
            sets.push(Set {
                name,
                kind: "set",
                spec: "type ipv4_addr;".into(),
                elements,
            });
        }
    }
    Chain {
        name: CHAIN_FORWARD.into(),
        hook: Some("type filter hook forward priority filter; policy drop;".into()),
        sets,
        rules,
        subchains: Vec::new(),
    }
}

pub(super) fn input(router: &Router, options: &NftOptions) -> Chain {
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
        // The VM services (metadata on 80, passwords on 8080) answer only
        // the tier's own addresses, on the tier's gateway, whatever the
        // tier's ACL says: cloud-init must reach them before anything else.
        for tier in router.tiers.values() {
            if router.vm_data.contains_key(&tier.index) {
                rules.push(format!(
                    "iifname {} ip saddr {} ip daddr {} tcp dport {{ {}, {} }} accept",
                    ifname(tier.index),
                    tier.cidr,
                    tier.gateway,
                    crate::metadata::METADATA_PORT,
                    crate::metadata::PASSWORD_PORT
                ));
            }
        }
    }
    // IKE, NAT-T and ESP reach the VPN gateway's address only while it has
    // a connection (a Vpn without connections is None).
    if let Some(vpn) = &router.vpn {
        rules.push(format!(
            "ip daddr {} udp dport {{ {IKE_PORT}, {NAT_T_PORT} }} accept",
            vpn.public_ip
        ));
        rules.push(format!(
            "ip daddr {} meta l4proto esp accept",
            vpn.public_ip
        ));
    }
    // HAProxy's listeners: the rule's clients (its source CIDRs, or any)
    // reach the public address and port in the router itself, through the
    // backend tiers' ingress ACLs.
    rules.extend(super::proxy::input_rules(router));
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
        // (first boot), the port stays closed on every NIC, the public one
        // included: the netns driver connects from inside the namespace
        // (the loopback, accepted above). A router VM first reached over
        // another NIC opens it explicitly; mutual TLS still guards it.
        (Some(port), true) if options.open_agent_port_before_control => {
            rules.push(format!("tcp dport {port} accept"))
        }
        (Some(_), true) | (None, _) => {}
    }
    Chain {
        name: CHAIN_INPUT.into(),
        hook: Some("type filter hook input priority filter; policy drop;".into()),
        sets: Vec::new(),
        rules,
        subchains: Vec::new(),
    }
}

/// IKE's UDP port.
pub const IKE_PORT: u16 = 500;
/// IKE and ESP encapsulated in UDP (NAT traversal, and every packet of the
/// userspace backend).
pub const NAT_T_PORT: u16 = 4500;

pub(super) fn srcnat(router: &Router, nats: StaticNatSets) -> Chain {
    let mut rules = Vec::new();
    // What goes through a VPN tunnel keeps its source: the peer routes the
    // VPC's own addresses back (CloudStack's VR exempts it from SNAT the
    // same way). First, so no SNAT rule below sees it.
    if let Some(vpn) = &router.vpn {
        for c in &vpn.connections {
            rules.push(format!(
                "ip saddr {} ip daddr {} accept",
                cidr_list(&c.local),
                cidr_list(&c.remote)
            ));
        }
    }
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
            elements: nats.elements(CHAIN_SRCNAT, "static_nat_out", || {
                router
                    .static_nats
                    .iter()
                    .filter_map(|s| {
                        nic_of(s.public_ip)
                            .map(|i| format!("{} . {} : {}", ifname(i), s.private_ip, s.public_ip))
                    })
                    .collect()
            }),
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
        subchains: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::{NftOptions, Ruleset, plan, plan_from};
    use super::*;
    use crate::testing::sample_config;

    /// The forward of public port slot `slot` (ports 1000 + 10 slot, so
    /// no two slots overlap), of a kind `shape` picks: single port or
    /// range, kept or shifted, for any client or some.
    fn forward(slot: u16, shape: u8) -> PortForward {
        let first = 1000 + 10 * slot;
        let width = u16::from(shape % 3);
        let shift = if shape & 4 != 0 { 5000 } else { 0 };
        PortForward {
            id: format!("pf-{slot}").into(),
            public_ip: Ipv4Addr::new(203, 0, 113, 11),
            protocol: if shape & 8 != 0 { L4::Udp } else { L4::Tcp },
            public_ports: (first, first + width),
            private_ip: Ipv4Addr::new(10, 1, 1, 5 + shape / 16),
            private_ports: (first + shift, first + shift + width),
            sources: match shape % 5 {
                0 => vec!["198.51.100.0/25".parse().unwrap()],
                1 => vec![
                    "198.51.100.0/25".parse().unwrap(),
                    "198.51.100.128/25".parse().unwrap(),
                ],
                _ => Vec::new(),
            },
        }
    }

    fn router(forwards: Vec<PortForward>) -> Router {
        let mut router = Router::from_config(&sample_config()).expect("valid sample");
        router.port_forwards = forwards;
        router
    }

    fn dstnat_of(table: &Ruleset) -> &Chain {
        table
            .chains
            .iter()
            .find(|c| c.name == CHAIN_DSTNAT)
            .expect("a DNAT chain")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn maps_made_from_the_previous_ones_equal_maps_planned_whole(
            held in proptest::collection::vec((0u16..40, any::<u8>()), 0..14),
            at in 0usize..16,
            removed in 0usize..4,
            inserted in proptest::collection::vec((0u16..40, any::<u8>()), 0..4),
        ) {
            // Slots are unique in each list, as validation leaves them.
            let mut seen = std::collections::HashSet::new();
            let old: Vec<PortForward> = held
                .into_iter()
                .filter(|(slot, _)| seen.insert(*slot))
                .map(|(slot, shape)| forward(slot, shape))
                .collect();
            let at = at % (old.len() + 1);
            let removed = removed.min(old.len() - at);
            let mut kept: std::collections::HashSet<u16> = old
                .iter()
                .enumerate()
                .filter(|(i, _)| !(at..at + removed).contains(i))
                .map(|(_, r)| (r.public_ports.0 - 1000) / 10)
                .collect();
            let came: Vec<PortForward> = inserted
                .into_iter()
                .filter(|(slot, _)| kept.insert(*slot))
                .map(|(slot, shape)| forward(slot, shape))
                .collect();
            let mut new = old.clone();
            new.splice(at..at + removed, came);
            let options = NftOptions::default();
            let (old, new) = (router(old), router(new));
            let before = plan(&old, &options);
            let incremental = plan_from(&new, &options, Some((&old, &before)));
            let whole = plan(&new, &options);
            prop_assert_eq!(dstnat_of(&incremental), dstnat_of(&whole));
        }
    }

    /// The static NAT sets of `table`, by name.
    fn static_nat_sets(table: &Ruleset) -> Vec<(&str, &std::sync::Arc<[String]>)> {
        table
            .chains
            .iter()
            .flat_map(|c| &c.sets)
            .filter(|s| s.name.starts_with("static_nat"))
            .map(|s| (s.name.as_str(), &s.elements))
            .collect()
    }

    #[test]
    fn a_forward_change_shares_the_static_nat_sets_and_a_static_nat_change_renders_them() {
        let old = router((0..4).map(|k| forward(k, 0)).collect());
        let options = NftOptions::default();
        let before = plan(&old, &options);
        let names: Vec<&str> = static_nat_sets(&before).iter().map(|s| s.0).collect();
        assert_eq!(
            names,
            [
                "static_nat_mark",
                "static_nat_in",
                "static_nat_src_eth1",
                "static_nat_out"
            ]
        );
        let mut forwards = old.clone();
        forwards.port_forwards[1].private_ip = Ipv4Addr::new(10, 1, 2, 9);
        let after = plan_from(&forwards, &options, Some((&old, &before)));
        assert_eq!(after, plan(&forwards, &options));
        for ((name, a), (_, b)) in static_nat_sets(&before)
            .into_iter()
            .zip(static_nat_sets(&after))
        {
            assert!(std::sync::Arc::ptr_eq(a, b), "{name} rendered again");
        }
        let mut nats = old.clone();
        nats.static_nats[0].private_ip = Ipv4Addr::new(10, 1, 2, 9);
        let after = plan_from(&nats, &options, Some((&old, &before)));
        assert_eq!(after, plan(&nats, &options));
        for ((name, a), (_, b)) in static_nat_sets(&before)
            .into_iter()
            .zip(static_nat_sets(&after))
        {
            assert_ne!(a, b, "{name} kept");
        }
    }

    #[test]
    fn a_change_to_one_map_leaves_the_others_shared() {
        let old = router((0..20).map(|k| forward(k, (k % 16) as u8)).collect());
        let options = NftOptions::default();
        let before = plan(&old, &options);
        // Forward 3 (a single port for any client: pf_port) points elsewhere.
        let mut new = old.clone();
        new.port_forwards[3].private_ip = Ipv4Addr::new(10, 1, 2, 9);
        let after = plan_from(&new, &options, Some((&old, &before)));
        let (a, b) = (dstnat_of(&before), dstnat_of(&after));
        assert_eq!(b, dstnat_of(&plan(&new, &options)));
        let forwards = |c: &Chain| c.sets.iter().filter(|s| s.name.starts_with("pf_")).count();
        assert_eq!(
            (forwards(a), forwards(b)),
            (5, 5),
            "the sample's forwards fill every map"
        );
        for (x, y) in a
            .sets
            .iter()
            .zip(&b.sets)
            .filter(|(x, _)| x.name.starts_with("pf_"))
        {
            let shared = std::sync::Arc::ptr_eq(&x.elements, &y.elements);
            assert_eq!(shared, x.name != "pf_port", "{}", x.name);
        }
        let elements = &b
            .sets
            .iter()
            .find(|s| s.name == "pf_port")
            .unwrap()
            .elements;
        assert!(elements.contains(&"203.0.113.11 . 6 . 1030 : 10.1.2.9".to_string()));
    }
}
