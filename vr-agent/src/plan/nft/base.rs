//! The base chains hooked into netfilter: marks, destination NAT, the
//! forward-path ACL dispatch, what the router serves, and source NAT.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::{
    CHAIN_DSTNAT, CHAIN_FORWARD, CHAIN_INPUT, CHAIN_MANGLE, CHAIN_SRCNAT, Chain, NftOptions, Set,
    cidr_list, has_acl_chains, ifname, inbound_chain, outbound_chain, quoted_list,
};
use crate::model::*;

pub(super) fn mangle(router: &Router) -> Chain {
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
        subchains: Vec::new(),
    }
}

pub(super) fn dstnat(router: &Router) -> Chain {
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
    port_forwards(router, &mut sets, &mut rules);
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
/// No two forwards claim the same public port (validation), so no two
/// elements overlap and the order of the lookups does not matter; the hash
/// map comes first since most new flows to a forward match there. Every
/// forward is elements of named maps, so adding, removing or moving one is
/// an element change.
fn port_forwards(router: &Router, sets: &mut Vec<Set>, rules: &mut Vec<String>) {
    let proto = |p: L4| match p {
        L4::Tcp => 6,
        L4::Udp => 17,
    };
    let ports = |(first, last): (u16, u16)| {
        if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        }
    };
    // The key of an element: public address, protocol, port(s).
    let key = |r: &PortForward, public: String| {
        format!("{} . {} . {public}", r.public_ip, proto(r.protocol))
    };
    let same = |r: &PortForward| format!("{} : {}", key(r, ports(r.public_ports)), r.private_ip);
    let shifted = |r: &PortForward| {
        (0..=(r.public_ports.1 - r.public_ports.0))
            .map(|k| {
                format!(
                    "{} : {} . {}",
                    key(r, (r.public_ports.0 + k).to_string()),
                    r.private_ip,
                    r.private_ports.0 + k
                )
            })
            .collect::<Vec<_>>()
    };
    // One element per source CIDR (aggregated once per rule) and element.
    let sourced = |r: &PortForward, elements: Vec<String>| {
        let sources = Ipv4Net::aggregate(&r.sources);
        elements
            .iter()
            .flat_map(|element| sources.iter().map(move |s| format!("{s} . {element}")))
            .collect::<Vec<_>>()
    };
    // (map, what the rule matches first, key, map spec, elements).
    let mut maps: [(&str, &str, &str, &str, Vec<String>); 5] = [
        (
            "pf_port",
            "",
            "ip daddr . meta l4proto . th dport",
            "type ipv4_addr . inet_proto . inet_service : ipv4_addr;",
            Vec::new(),
        ),
        (
            "pf_same_port",
            "",
            "ip daddr . meta l4proto . th dport",
            "type ipv4_addr . inet_proto . inet_service : ipv4_addr; flags interval;",
            Vec::new(),
        ),
        (
            "pf_shifted",
            "",
            "ip daddr . meta l4proto . th dport",
            "type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service;",
            Vec::new(),
        ),
        (
            "pf_sources",
            "",
            "ip saddr . ip daddr . meta l4proto . th dport",
            "type ipv4_addr . ipv4_addr . inet_proto . inet_service : ipv4_addr; flags interval;",
            Vec::new(),
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
            Vec::new(),
        ),
    ];
    for r in &router.port_forwards {
        let keeps_port = r.public_ports == r.private_ports;
        let single = r.public_ports.0 == r.public_ports.1;
        match (r.sources.is_empty(), keeps_port) {
            (true, true) if single => maps[0].4.push(same(r)),
            (true, true) => maps[1].4.push(same(r)),
            (true, false) => maps[2].4.extend(shifted(r)),
            (false, true) => maps[3].4.extend(sourced(r, vec![same(r)])),
            (false, false) => maps[4].4.extend(sourced(r, shifted(r))),
        }
    }
    for (name, guard, key, spec, elements) in maps {
        if elements.is_empty() {
            continue;
        }
        rules.push(format!("{guard}dnat ip to {key} map @{name}"));
        sets.push(Set {
            name: name.into(),
            kind: "map",
            spec: spec.into(),
            elements: elements.into(),
        });
    }
}

pub(super) fn forward(router: &Router) -> Chain {
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
        let mut statics: Vec<String> = router
            .static_nats
            .iter()
            .filter(|s| s.index == nic.index)
            .map(|s| s.private_ip.to_string())
            .collect();
        statics.sort();
        statics.dedup();
        if !statics.is_empty() {
            let name = format!("static_nat_src_{}", dev_name(nic.index));
            rules.push(format!(
                "oifname {} ip saddr @{name} accept",
                ifname(nic.index)
            ));
            sets.push(Set {
                name,
                kind: "set",
                spec: "type ipv4_addr;".into(),
                elements: statics.into(),
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

pub(super) fn srcnat(router: &Router) -> Chain {
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
        subchains: Vec::new(),
    }
}
