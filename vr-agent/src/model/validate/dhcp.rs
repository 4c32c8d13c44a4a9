//! DHCP leases per tier.

use std::collections::{BTreeMap, HashSet};

use vpc_proto::v1 as pb;

use super::{Result, bad, hostname, ipv4, mac, missing, text};
use crate::model::*;

pub(super) fn dhcp(router: &Router, wire: &[pb::TierDhcp]) -> Result<BTreeMap<u32, Vec<DhcpHost>>> {
    let mut out = BTreeMap::new();
    for (i, d) in wire.iter().enumerate() {
        let f = |name: &str| format!("dhcp[{i}].{name}");
        let tier = router.tiers.get(&d.device_index).ok_or_else(|| {
            missing(
                f("device_index"),
                format!("eth{} serves no tier", d.device_index),
            )
        })?;
        let hosts = dhcp_hosts(&f("entries"), tier, &d.entries)?;
        if out.insert(d.device_index, hosts).is_some() {
            return Err(bad(
                f("device_index"),
                format!("eth{} has two lease lists", d.device_index),
            ));
        }
    }
    Ok(out)
}

/// Validates the leases of one tier.
pub(crate) fn dhcp_hosts(
    field: &str,
    tier: &Tier,
    entries: &[pb::DhcpEntry],
) -> Result<Vec<DhcpHost>> {
    let mut hosts: Vec<DhcpHost> = Vec::with_capacity(entries.len());
    // Hashed: a tier may hold thousands of leases.
    let (mut macs, mut ips, mut names) = (HashSet::new(), HashSet::new(), HashSet::new());
    for (k, e) in entries.iter().enumerate() {
        let f = |name: &str| format!("{field}[{k}].{name}");
        let host = DhcpHost {
            mac: mac(&f("mac_address"), &e.mac_address)?,
            ip: ipv4(&f("ip_address"), &e.ip_address)?,
            hostname: hostname(&f("hostname"), &e.hostname)?,
            default_gateway: e.default_gateway,
        };
        text::ipv6(&f("ip6_address"), &e.ip6_address)?;
        text::duid(&f("duid"), &e.duid)?;
        if !tier.cidr.contains(&host.ip)
            || host.ip == tier.gateway
            || host.ip == tier.cidr.network()
            || host.ip == tier.cidr.broadcast()
        {
            return Err(bad(
                f("ip_address"),
                format!("{} is not a VM address of the tier {}", host.ip, tier.cidr),
            ));
        }
        if !macs.insert(host.mac) {
            return Err(bad(
                f("mac_address"),
                format!("{} has two leases", host.mac),
            ));
        }
        if !ips.insert(host.ip) {
            return Err(bad(f("ip_address"), format!("{} is leased twice", host.ip)));
        }
        if !names.insert(host.hostname.clone()) {
            return Err(bad(
                f("hostname"),
                format!("{} names two VMs", host.hostname),
            ));
        }
        hosts.push(host);
    }
    Ok(hosts)
}
