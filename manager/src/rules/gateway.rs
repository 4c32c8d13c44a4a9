//! Private gateways of a VPC (reference §2.6, §3.6).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::{overlaps, parse_ipv4, parse_netmask};
use crate::error::Error;

/// An existing private gateway in the zone on the same kind of network:
/// those of this VPC, and those of other VPCs sharing a private network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingGateway {
    /// Belongs to the VPC the new gateway is for.
    pub same_vpc: bool,
    /// Normalised VLAN (see [`normalize_vlan`]) or, for a gateway riding on
    /// an isolated network, that network's id prefixed with `network:`.
    pub vlan: String,
    pub cidr: Ipv4Net,
    pub ip: Ipv4Addr,
}

/// createPrivateGateway's parameters.
#[derive(Debug, Clone, Default)]
pub struct NewGateway<'a> {
    pub ip_address: &'a str,
    pub gateway: &'a str,
    pub netmask: &'a str,
    pub vlan: Option<&'a str>,
    pub associated_network: Option<&'a str>,
    pub caller_is_root: bool,
}

/// What createPrivateGateway goes on with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedGateway {
    pub ip: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub cidr: Ipv4Net,
    /// `vlan://<n>`, `untagged`, or `network:<id>` for an associated network.
    pub vlan: String,
}

/// Normalises a VLAN as CloudStack writes broadcast URIs: `123` and
/// `vlan://123` are the same VLAN (`vlan://123`); `untagged` is kept.
pub fn normalize_vlan(text: &str) -> Result<String, Error> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    if lower == "untagged" || lower == "vlan://untagged" {
        return Ok("vlan://untagged".into());
    }
    let id = lower.strip_prefix("vlan://").unwrap_or(&lower);
    match id.parse::<u16>() {
        Ok(n) if (1..=4094).contains(&n) => Ok(format!("vlan://{n}")),
        _ => Err(Error::invalid(format!(
            "Invalid vlan {t:?}: expected a VLAN id 1-4094, vlan://<id> or untagged"
        ))),
    }
}

/// Validates a new private gateway of a VPC against the existing gateways
/// (one per VLAN and CIDR per VPC; an IP used once per private network,
/// whichever VPC uses it) and the VPC's tier CIDRs.
pub fn validate_private_gateway(
    req: &NewGateway<'_>,
    existing: &[ExistingGateway],
    tier_cidrs: &[Ipv4Net],
) -> Result<CheckedGateway, Error> {
    let vlan = match (
        req.vlan.filter(|v| !v.trim().is_empty()),
        req.associated_network.filter(|n| !n.trim().is_empty()),
    ) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(Error::invalid(
                "Exactly one of vlan and associatednetworkid must be given for a private gateway",
            ));
        }
        (Some(v), None) => {
            if !req.caller_is_root {
                return Err(Error::invalid(format!(
                    "Only the ROOT admin may specify a vlan ({v}) for a private gateway"
                )));
            }
            normalize_vlan(v)?
        }
        (None, Some(n)) => format!("network:{}", n.trim()),
    };
    let ip = parse_ipv4("ipaddress", req.ip_address)?;
    let gateway = parse_ipv4("gateway", req.gateway)?;
    let prefix = parse_netmask("netmask", req.netmask)?;
    if prefix > 30 {
        return Err(Error::invalid(format!(
            "netmask {} (/{prefix}) leaves no room for both ipaddress and gateway",
            req.netmask.trim()
        )));
    }
    let cidr = Ipv4Net::new(gateway, prefix)
        .expect("prefix from a netmask is at most 32")
        .trunc();
    for (name, addr) in [("gateway", gateway), ("ipaddress", ip)] {
        if addr == cidr.network() || addr == cidr.broadcast() {
            return Err(Error::invalid(format!(
                "{name} {addr} is the network or broadcast address of {cidr}"
            )));
        }
    }
    if !cidr.contains(&ip) {
        return Err(Error::invalid(format!(
            "ipaddress {ip} is not in the subnet {cidr} of gateway {gateway}"
        )));
    }
    if ip == gateway {
        return Err(Error::invalid(format!(
            "ipaddress and gateway must differ (both are {ip})"
        )));
    }
    if let Some(t) = tier_cidrs.iter().find(|t| overlaps(t, &cidr)) {
        return Err(Error::invalid(format!(
            "Private gateway subnet {cidr} overlaps with the tier cidr {t} of the VPC"
        )));
    }
    if existing
        .iter()
        .any(|g| g.same_vpc && g.vlan == vlan && g.cidr == cidr)
    {
        return Err(Error::invalid(format!(
            "Private network for the vlan: {vlan} and cidr {cidr} already exists for this VPC"
        )));
    }
    if existing
        .iter()
        .any(|g| g.vlan == vlan && g.cidr == cidr && g.ip == ip)
    {
        return Err(Error::invalid(format!(
            "Private ip address {ip} is already used for a private gateway on {vlan}"
        )));
    }
    Ok(CheckedGateway {
        ip,
        gateway,
        cidr,
        vlan,
    })
}

/// A private gateway's VLAN must lie outside the physical network's guest
/// vnet range (`ranges`, inclusive): those VLANs are handed out to tiers
/// (CloudStack refuses them as "used for dynamic vlan allocation").
pub fn check_vlan_not_dynamic(vlan: u32, ranges: &[(i64, i64)]) -> Result<(), Error> {
    let v = i64::from(vlan);
    if let Some((first, last)) = ranges.iter().find(|(a, b)| (*a..=*b).contains(&v)) {
        return Err(Error::invalid(format!(
            "The VLAN tag {vlan} is already being used for dynamic vlan allocation for the \
             guest networks of the physical network (range {first}-{last}); pick a VLAN \
             outside it"
        )));
    }
    Ok(())
}

/// deletePrivateGateway: a non-root caller may not delete a gateway whose
/// offering specifies a VLAN (431), and no gateway goes while static routes
/// use it (530, a CloudRuntimeException in CloudStack).
pub fn check_gateway_deletable(
    gateway: impl std::fmt::Display,
    route_count: usize,
    caller_is_root: bool,
    offering_specifies_vlan: bool,
) -> Result<(), Error> {
    if offering_specifies_vlan && !caller_is_root {
        return Err(Error::invalid(format!(
            "Unable to delete private gateway {gateway}: it has a specified vlan, \
             which only the ROOT admin may remove"
        )));
    }
    if route_count > 0 {
        return Err(Error::internal(format!(
            "Can't delete private gateway {gateway} as it has {route_count} static routes \
             applied. Remove the routes first"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    fn req<'a>(ip: &'a str, gw: &'a str, mask: &'a str) -> NewGateway<'a> {
        NewGateway {
            ip_address: ip,
            gateway: gw,
            netmask: mask,
            vlan: Some("100"),
            associated_network: None,
            caller_is_root: true,
        }
    }

    #[test]
    fn accepted() {
        let g =
            validate_private_gateway(&req("172.16.0.2", "172.16.0.1", "255.255.255.0"), &[], &[])
                .unwrap();
        assert_eq!(g.cidr, net("172.16.0.0/24"));
        assert_eq!(g.vlan, "vlan://100");
        let assoc = NewGateway {
            vlan: None,
            associated_network: Some("n-1"),
            caller_is_root: false,
            ..req("172.16.0.2", "172.16.0.1", "255.255.255.0")
        };
        assert_eq!(
            validate_private_gateway(&assoc, &[], &[]).unwrap().vlan,
            "network:n-1"
        );
    }

    #[test]
    fn vlan_forms() {
        assert_eq!(normalize_vlan("vlan://42").unwrap(), "vlan://42");
        assert_eq!(normalize_vlan(" 42 ").unwrap(), "vlan://42");
        assert_eq!(normalize_vlan("Untagged").unwrap(), "vlan://untagged");
        assert_err(normalize_vlan("4095"), 431, "\"4095\"");
        assert_err(normalize_vlan("vxlan://5"), 431, "vxlan://5");
    }

    #[test]
    fn vlan_or_network_exactly_one_and_vlan_root_only() {
        let both = NewGateway {
            associated_network: Some("n-1"),
            ..req("172.16.0.2", "172.16.0.1", "255.255.255.0")
        };
        assert_err(
            validate_private_gateway(&both, &[], &[]),
            431,
            "Exactly one",
        );
        let none = NewGateway {
            vlan: None,
            ..req("172.16.0.2", "172.16.0.1", "255.255.255.0")
        };
        assert_err(
            validate_private_gateway(&none, &[], &[]),
            431,
            "Exactly one",
        );
        let user = NewGateway {
            caller_is_root: false,
            ..req("172.16.0.2", "172.16.0.1", "255.255.255.0")
        };
        assert_err(
            validate_private_gateway(&user, &[], &[]),
            431,
            "Only the ROOT admin",
        );
    }

    #[test]
    fn addresses_must_be_consistent() {
        assert_err(
            validate_private_gateway(&req("172.16.1.2", "172.16.0.1", "255.255.255.0"), &[], &[]),
            431,
            "172.16.1.2 is not in the subnet",
        );
        assert_err(
            validate_private_gateway(&req("172.16.0.1", "172.16.0.1", "255.255.255.0"), &[], &[]),
            431,
            "must differ",
        );
        assert_err(
            validate_private_gateway(
                &req("172.16.0.255", "172.16.0.1", "255.255.255.0"),
                &[],
                &[],
            ),
            431,
            "broadcast",
        );
        assert_err(
            validate_private_gateway(&req("172.16.0.2", "172.16.0.0", "255.255.255.0"), &[], &[]),
            431,
            "gateway 172.16.0.0",
        );
        assert_err(
            validate_private_gateway(&req("x", "172.16.0.1", "255.255.255.0"), &[], &[]),
            431,
            "ipaddress",
        );
        assert_err(
            validate_private_gateway(&req("172.16.0.2", "172.16.0.1", "255.255.0.255"), &[], &[]),
            431,
            "netmask",
        );
    }

    #[test]
    fn one_gateway_per_vlan_and_cidr() {
        let existing = [ExistingGateway {
            same_vpc: true,
            vlan: "vlan://100".into(),
            cidr: net("172.16.0.0/24"),
            ip: "172.16.0.2".parse().unwrap(),
        }];
        assert_err(
            validate_private_gateway(
                &req("172.16.0.3", "172.16.0.1", "255.255.255.0"),
                &existing,
                &[],
            ),
            431,
            "vlan: vlan://100 and cidr 172.16.0.0/24 already exists",
        );
        // same cidr on another vlan is fine
        let other = NewGateway {
            vlan: Some("vlan://200"),
            ..req("172.16.0.3", "172.16.0.1", "255.255.255.0")
        };
        validate_private_gateway(&other, &existing, &[]).unwrap();
    }

    #[test]
    fn ip_not_reused_in_the_network() {
        let existing = [ExistingGateway {
            same_vpc: false,
            vlan: "vlan://100".into(),
            cidr: net("172.16.0.0/24"),
            ip: "172.16.0.2".parse().unwrap(),
        }];
        // another VPC's gateway on the same private network: its IP is taken
        assert_err(
            validate_private_gateway(
                &req("172.16.0.2", "172.16.0.1", "255.255.255.0"),
                &existing,
                &[],
            ),
            431,
            "172.16.0.2 is already used",
        );
        // but the network itself may be shared with another address
        validate_private_gateway(
            &req("172.16.0.3", "172.16.0.1", "255.255.255.0"),
            &existing,
            &[],
        )
        .unwrap();
    }

    #[test]
    fn subnet_must_not_overlap_tiers() {
        let tiers = [net("10.1.0.0/16")];
        assert_err(
            validate_private_gateway(&req("10.1.9.2", "10.1.9.1", "255.255.255.0"), &[], &tiers),
            431,
            "tier cidr 10.1.0.0/16",
        );
    }

    #[test]
    fn vlan_outside_the_guest_range() {
        check_vlan_not_dynamic(500, &[(100, 199)]).unwrap();
        check_vlan_not_dynamic(99, &[(100, 199), (300, 399)]).unwrap();
        assert_err(
            check_vlan_not_dynamic(300, &[(100, 199), (300, 399)]),
            431,
            "range 300-399",
        );
        assert_err(
            check_vlan_not_dynamic(100, &[(100, 199)]),
            431,
            "VLAN tag 100",
        );
    }

    #[test]
    fn delete_checks() {
        check_gateway_deletable("pg", 0, true, true).unwrap();
        check_gateway_deletable("pg", 0, false, false).unwrap();
        assert_err(
            check_gateway_deletable("pg", 2, true, true),
            530,
            "2 static routes",
        );
        assert_err(check_gateway_deletable("pg1", 0, false, true), 431, "pg1");
    }
}
