//! Source address validation on every NIC, before anything is routed.
//!
//! A packet whose source address cannot have come from behind the NIC it
//! arrived on is forged: it is dropped in prerouting at priority `raw`, before
//! connection tracking, so it never creates a conntrack entry, never reaches
//! NAT and never leaves by another NIC. The kernel's `rp_filter` stays loose
//! (see `apply::netlink::sysctl`): strict mode would judge sources by the main
//! table and break the replies that policy routing sends back by the NIC
//! their connection came in on; the planned state knows better which
//! networks sit behind which NIC.
//!
//! What each role may send (CloudStack's VR: strict `rp_filter` on tier NICs
//! and `FORWARD -s <vpc cidr> ! -d <vpc cidr> -j ACCEPT` towards the public
//! network):
//! - a tier NIC: only its tier's CIDR, and a VM the manager gave a static
//!   lease only from its own MAC; `0.0.0.0` only for DHCP to the router;
//! - a guest NIC without a tier: nothing (it has no network yet);
//! - a public or private gateway NIC: anything except the networks the
//!   router reaches through another NIC (the tiers, the other public and
//!   private gateway subnets, static routes through other NICs). On-premises
//!   networks are not all listed in static routes (replies find their way
//!   back through the connmark and the NIC's own table), so a private gateway
//!   cannot be limited to its subnet and routes without cutting them off; the
//!   private gateway's ACL filters them further.
//!
//! The control NIC carries no routed traffic at all: the forward chain drops
//! what comes from it (see `base::forward`).

use std::collections::BTreeMap;

use ipnet::Ipv4Net;

use super::{CHAIN_ANTISPOOF, Chain, Set, cidr_list, ifname, quoted_list};
use crate::model::*;

/// The set of the VM addresses with a static lease on a tier.
pub fn leased_ips_set(index: u32) -> String {
    format!("leased_ip_{}", dev_name(index))
}

/// The set of the (address, MAC) pairs of those leases.
pub fn leased_pairs_set(index: u32) -> String {
    format!("leased_mac_{}", dev_name(index))
}

/// The networks the router reaches through each public or private gateway
/// NIC: the subnets of its addresses and the static routes through it.
fn networks_behind(router: &Router) -> BTreeMap<u32, Vec<Ipv4Net>> {
    let mut out: BTreeMap<u32, Vec<Ipv4Net>> = BTreeMap::new();
    for ip in &router.public_ips {
        out.entry(ip.index).or_default().push(ip.subnet());
    }
    for route in &router.static_routes {
        out.entry(route.index).or_default().push(route.cidr);
    }
    out
}

/// `nets` without the addresses in `minus`, as prefixes: a network that
/// holds one of `minus` is split in halves until the halves are clear of it.
pub fn exclude(nets: &[Ipv4Net], minus: &[Ipv4Net]) -> Vec<Ipv4Net> {
    let mut out = Vec::new();
    let mut todo: Vec<Ipv4Net> = Ipv4Net::aggregate(&nets.to_vec());
    while let Some(net) = todo.pop() {
        if minus.iter().any(|m| m.contains(&net)) {
            continue;
        }
        if !minus.iter().any(|m| net.contains(m)) {
            out.push(net);
            continue;
        }
        // `net` strictly holds a longer prefix of `minus`, so it is no /32.
        if let Ok(halves) = net.subnets(net.prefix_len() + 1) {
            todo.extend(halves);
        }
    }
    Ipv4Net::aggregate(&out)
}

/// The prerouting chain that drops forged sources.
pub(super) fn chain(router: &Router) -> Chain {
    let mut rules = Vec::new();
    let mut sets = Vec::new();
    if !router.tiers.is_empty() {
        // A DHCP client asks before it has an address: from 0.0.0.0, to the
        // router's dnsmasq (the input chain accepts udp 67 from tiers).
        rules.push(format!(
            "iifname {} ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept",
            quoted_list(router.tiers.keys().map(|i| ifname(*i)))
        ));
    }
    for nic in router.nics_with(Role::Guest) {
        let Some(tier) = router.tiers.get(&nic.index) else {
            rules.push(format!(
                "iifname {} meta nfproto ipv4 drop",
                ifname(nic.index)
            ));
            continue;
        };
        rules.push(format!(
            "iifname {} ip saddr != {} drop",
            ifname(nic.index),
            tier.cidr
        ));
        let leases: Vec<&DhcpHost> = router
            .dhcp
            .get(&nic.index)
            .map(|hosts| hosts.iter().filter(|h| tier.cidr.contains(&h.ip)).collect())
            .unwrap_or_default();
        if leases.is_empty() {
            continue;
        }
        // A VM's leased address is its own: another VM of the tier using it
        // (its MAC differs) is forged. Addresses without a lease (a VM's
        // secondary IPs) stay free within the tier.
        let mut ips: Vec<String> = leases.iter().map(|h| h.ip.to_string()).collect();
        ips.sort();
        ips.dedup();
        let mut pairs: Vec<String> = leases
            .iter()
            .map(|h| format!("{} . {}", h.ip, h.mac))
            .collect();
        pairs.sort();
        pairs.dedup();
        let (ip_set, pair_set) = (leased_ips_set(nic.index), leased_pairs_set(nic.index));
        rules.push(format!(
            "iifname {} ip saddr @{ip_set} ip saddr . ether saddr != @{pair_set} drop",
            ifname(nic.index)
        ));
        sets.push(Set {
            name: ip_set,
            kind: "set",
            spec: "type ipv4_addr;".into(),
            elements: ips.into(),
        });
        sets.push(Set {
            name: pair_set,
            kind: "set",
            spec: "type ipv4_addr . ether_addr;".into(),
            elements: pairs.into(),
        });
    }
    let behind = networks_behind(router);
    let tiers = router.tier_cidrs();
    for nic in router
        .nics
        .values()
        .filter(|n| matches!(n.role, Role::Public | Role::Private))
    {
        let own = behind.get(&nic.index).cloned().unwrap_or_default();
        let mut elsewhere: Vec<Ipv4Net> = tiers.clone();
        elsewhere.extend(
            behind
                .iter()
                .filter(|(index, _)| **index != nic.index)
                .flat_map(|(_, nets)| nets.iter().copied()),
        );
        let forged = exclude(&elsewhere, &own);
        if !forged.is_empty() {
            rules.push(format!(
                "iifname {} ip saddr {} drop",
                ifname(nic.index),
                cidr_list(&forged)
            ));
        }
    }
    Chain {
        name: CHAIN_ANTISPOOF.into(),
        hook: Some("type filter hook prerouting priority raw; policy accept;".into()),
        sets,
        rules,
        subchains: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<Ipv4Net> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn excluding_a_network_splits_only_the_prefixes_that_hold_it() {
        assert_eq!(
            exclude(&nets(&["10.0.0.0/8"]), &nets(&["10.128.0.0/9"])),
            nets(&["10.0.0.0/9"])
        );
        assert_eq!(
            exclude(&nets(&["10.0.0.0/30"]), &nets(&["10.0.0.1/32"])),
            nets(&["10.0.0.0/32", "10.0.0.2/31"])
        );
        assert_eq!(
            exclude(
                &nets(&["10.0.0.0/24", "192.168.0.0/16"]),
                &nets(&["0.0.0.0/1"])
            ),
            nets(&["192.168.0.0/16"])
        );
        assert_eq!(
            exclude(&nets(&["172.16.0.0/24"]), &nets(&["10.0.0.0/8"])),
            nets(&["172.16.0.0/24"])
        );
    }
}
