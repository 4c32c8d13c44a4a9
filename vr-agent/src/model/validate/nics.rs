//! NICs, the tiers they serve and the public IPs they hold.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::Ipv4Net;
use vpc_proto::v1 as pb;

use super::{Result, bad, domain, ip, ipv4, mac, missing, mtu, network4, text};
use crate::model::*;

pub(super) fn nics(wire: &[pb::Nic]) -> Result<BTreeMap<u32, Nic>> {
    let mut out = BTreeMap::new();
    let mut macs = BTreeSet::new();
    for (i, n) in wire.iter().enumerate() {
        let f = |name: &str| format!("nics[{i}].{name}");
        if n.device_index > MAX_DEVICE_INDEX {
            return Err(bad(
                f("device_index"),
                format!("{} is above {MAX_DEVICE_INDEX}", n.device_index),
            ));
        }
        let mac = mac(&f("mac_address"), &n.mac_address)?;
        text::identifier(&f("network_id"), &n.network_id)?;
        let role = match pb::NicRole::try_from(n.role) {
            Ok(pb::NicRole::Guest) => Role::Guest,
            Ok(pb::NicRole::Public) => Role::Public,
            Ok(pb::NicRole::Private) => Role::Private,
            Ok(pb::NicRole::Control) => Role::Control,
            _ => {
                return Err(bad(
                    f("role"),
                    "is required (GUEST, PUBLIC, PRIVATE or CONTROL)",
                ));
            }
        };
        let control_address = if role == Role::Control {
            let addr = ipv4(&f("ip_address"), &n.ip_address)?;
            let net = Ipv4Net::new(addr, n.prefix_length as u8)
                .ok()
                .filter(|_| (1..=32).contains(&n.prefix_length))
                .ok_or_else(|| {
                    bad(
                        f("prefix_length"),
                        format!("{} is outside 1..32", n.prefix_length),
                    )
                })?;
            Some(net)
        } else {
            // Only a control NIC's address is used; any other must still be
            // an address, not free text.
            if !n.ip_address.is_empty() {
                ipv4(&f("ip_address"), &n.ip_address)?;
            }
            None
        };
        if !macs.insert(mac) {
            return Err(bad(f("mac_address"), format!("{mac} is used by two NICs")));
        }
        let nic = Nic {
            index: n.device_index,
            mac,
            role,
            mtu: mtu(&f("mtu"), n.mtu)?,
            control_address,
        };
        if out.insert(n.device_index, nic).is_some() {
            return Err(bad(
                f("device_index"),
                format!("eth{} is plugged twice", n.device_index),
            ));
        }
    }
    Ok(out)
}

/// The plugged NIC at `index`, which must have one of `roles`; its MAC must be
/// `mac` when one is given.
pub(super) fn nic_ref<'a>(
    nics: &'a BTreeMap<u32, Nic>,
    field: &str,
    index: u32,
    mac_field: Option<(&str, &str)>,
    roles: &[Role],
) -> Result<&'a Nic> {
    let nic = nics
        .get(&index)
        .ok_or_else(|| missing(field, format!("no NIC is plugged at eth{index}")))?;
    if !roles.contains(&nic.role) {
        return Err(bad(
            field,
            format!("eth{index} is a {:?} NIC, expected {roles:?}", nic.role),
        ));
    }
    if let Some((mac_field, value)) = mac_field.filter(|(_, v)| !v.is_empty()) {
        let given = mac(mac_field, value)?;
        if given != nic.mac {
            return Err(missing(
                mac_field,
                format!("eth{index} has MAC {}, not {given}", nic.mac),
            ));
        }
    }
    Ok(nic)
}

pub(super) fn tiers(
    nics: &BTreeMap<u32, Nic>,
    wire: &[pb::GuestNetwork],
) -> Result<BTreeMap<u32, Tier>> {
    let mut out: BTreeMap<u32, Tier> = BTreeMap::new();
    for (i, g) in wire.iter().enumerate() {
        let f = |name: &str| format!("guest_networks[{i}].{name}");
        nic_ref(
            nics,
            &f("device_index"),
            g.device_index,
            Some((&f("mac_address"), &g.mac_address)),
            &[Role::Guest],
        )?;
        text::identifier(&f("network_id"), &g.network_id)?;
        let cidr = network4(&f("cidr"), &g.cidr)?;
        let gateway = ipv4(&f("gateway"), &g.gateway)?;
        text::ipv6_net(&f("ip6_cidr"), &g.ip6_cidr)?;
        text::ipv6(&f("ip6_gateway"), &g.ip6_gateway)?;
        for (k, d) in g.dns6_servers.iter().enumerate() {
            if d.is_empty() {
                return Err(bad(f(&format!("dns6_servers[{k}]")), "is empty"));
            }
            text::ipv6(&f(&format!("dns6_servers[{k}]")), d)?;
        }
        if !cidr.contains(&gateway)
            || gateway == cidr.network()
            || (cidr.prefix_len() < 31 && gateway == cidr.broadcast())
        {
            return Err(bad(
                f("gateway"),
                format!("{gateway} is not a host address of {cidr}"),
            ));
        }
        for other in out.values() {
            if other.cidr.contains(&cidr.network()) || cidr.contains(&other.cidr.network()) {
                return Err(bad(
                    f("cidr"),
                    format!(
                        "{cidr} overlaps the tier {} on eth{}",
                        other.cidr, other.index
                    ),
                ));
            }
        }
        let dns_servers = g
            .dns_servers
            .iter()
            .enumerate()
            .map(|(k, d)| ip(&f(&format!("dns_servers[{k}]")), d))
            .collect::<Result<Vec<_>>>()?;
        let tier = Tier {
            index: g.device_index,
            network_id: g.network_id.clone(),
            cidr,
            gateway,
            domain: domain(&f("domain_name"), &g.domain_name)?,
            dns_servers,
            external_dns_only: g.external_dns_only,
            mtu: mtu(&f("mtu"), g.mtu)?,
        };
        if out.insert(g.device_index, tier).is_some() {
            return Err(bad(
                f("device_index"),
                format!("eth{} serves two tiers", g.device_index),
            ));
        }
    }
    Ok(out)
}

pub(super) fn public_ips(
    nics: &BTreeMap<u32, Nic>,
    wire: &[pb::PublicIp],
) -> Result<Vec<PublicIp>> {
    let mut out: Vec<PublicIp> = Vec::new();
    for (i, p) in wire.iter().enumerate() {
        let f = |name: &str| format!("public_ips[{i}].{name}");
        let nic = nic_ref(
            nics,
            &f("device_index"),
            p.device_index,
            Some((&f("mac_address"), &p.mac_address)),
            &[Role::Public, Role::Private],
        )?;
        let address = ipv4(&f("ip_address"), &p.ip_address)?;
        text::broadcast_uri(&f("vlan"), &p.vlan)?;
        if !(1..=32).contains(&p.prefix_length) {
            return Err(bad(
                f("prefix_length"),
                format!("{} is outside 1..32", p.prefix_length),
            ));
        }
        let gateway = ipv4(&f("gateway"), &p.gateway)?;
        let subnet = Ipv4Net::new(address, p.prefix_length as u8)
            .expect("checked")
            .trunc();
        if !subnet.contains(&gateway) || gateway == address {
            return Err(bad(
                f("gateway"),
                format!("{gateway} is not another address of {subnet}"),
            ));
        }
        if out.iter().any(|o| o.address == address) {
            return Err(bad(
                f("ip_address"),
                format!("{address} is associated twice"),
            ));
        }
        if p.source_nat && out.iter().any(|o| o.source_nat) {
            return Err(bad(
                f("source_nat"),
                "the router already has a source-NAT IP",
            ));
        }
        out.push(PublicIp {
            address,
            prefix_len: p.prefix_length as u8,
            gateway,
            index: nic.index,
            source_nat: p.source_nat,
            one_to_one_nat: p.one_to_one_nat,
            private_gateway: p.private_gateway || nic.role == Role::Private,
        });
    }
    Ok(out)
}
