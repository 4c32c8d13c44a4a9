//! Static routes of a VPC (reference §2.7, §3.7).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::{overlaps, parse_ipv4, parse_ipv4_cidr};
use crate::error::Error;

/// Link-local addresses, used by the VR's control NIC.
pub const LINK_LOCAL: &str = "169.254.0.0/16";

/// State of a private gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayState {
    Creating,
    Ready,
    Deleting,
}

/// A route of the VPC that is not being revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExistingRoute {
    pub cidr: Ipv4Net,
}

/// Parses the zone setting `denied.routes`: comma-separated CIDRs, empty by
/// default.
pub fn parse_denied_routes(text: &str) -> Result<Vec<Ipv4Net>, Error> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| parse_ipv4_cidr("denied.routes entry", s))
        .collect()
}

/// Checks a static route's CIDR: valid IPv4, outside the VPC CIDR, outside
/// link-local, outside every `denied.routes` entry (all 431), and not
/// overlapping another route of the VPC (537).
pub fn validate_route_cidr(
    cidr: &str,
    vpc_cidr: &Ipv4Net,
    denied: &[Ipv4Net],
    existing: &[ExistingRoute],
) -> Result<Ipv4Net, Error> {
    let net = parse_ipv4_cidr("cidr", cidr)?;
    if overlaps(&net, vpc_cidr) {
        return Err(Error::invalid(format!(
            "Static route cidr {net} overlaps the VPC cidr {vpc_cidr}; it must be outside of it"
        )));
    }
    let link_local: Ipv4Net = LINK_LOCAL.parse().expect("constant");
    if overlaps(&net, &link_local) {
        return Err(Error::invalid(format!(
            "Static route cidr {net} overlaps the link-local range {link_local}"
        )));
    }
    if let Some(d) = denied.iter().find(|d| overlaps(d, &net)) {
        return Err(Error::invalid(format!(
            "Static route cidr {net} overlaps {d}, which is in the denied.routes setting"
        )));
    }
    if let Some(r) = existing.iter().find(|r| overlaps(&r.cidr, &net)) {
        return Err(Error::conflict(format!(
            "New static route cidr {net} conflicts with the existing static route {} of the VPC",
            r.cidr
        )));
    }
    Ok(net)
}

/// The route goes through a private gateway, which must be Ready.
pub fn check_gateway_ready(
    gateway: impl std::fmt::Display,
    state: GatewayState,
) -> Result<(), Error> {
    if state != GatewayState::Ready {
        return Err(Error::invalid(format!(
            "Gateway {gateway} is not in Ready state ({state:?}); can't add a static route through it"
        )));
    }
    Ok(())
}

/// Where a route points: a private gateway or a next-hop address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    Gateway(&'a str),
    NextHop(Ipv4Addr),
}

/// Exactly one of `gatewayid` and `nexthop`; a `nexthop` requires `vpcid`.
pub fn route_target<'a>(
    gatewayid: Option<&'a str>,
    nexthop: Option<&'a str>,
    vpcid_given: bool,
) -> Result<Target<'a>, Error> {
    match (
        gatewayid.filter(|s| !s.is_empty()),
        nexthop.filter(|s| !s.is_empty()),
    ) {
        (Some(g), None) => Ok(Target::Gateway(g)),
        (None, Some(n)) => {
            if !vpcid_given {
                return Err(Error::invalid("vpcid is required when nexthop is given"));
            }
            Ok(Target::NextHop(parse_ipv4("nexthop", n)?))
        }
        _ => Err(Error::invalid(
            "Exactly one of gatewayid and nexthop must be given for a static route",
        )),
    }
}

/// A next hop must be reachable: inside the VPC CIDR, a public IP VLAN
/// subnet of the VPC, or a private gateway subnet (`reachable`).
pub fn check_next_hop(
    hop: Ipv4Addr,
    vpc_cidr: &Ipv4Net,
    reachable: &[Ipv4Net],
) -> Result<(), Error> {
    if vpc_cidr.contains(&hop) || reachable.iter().any(|n| n.contains(&hop)) {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "nexthop {hop} is neither in the VPC cidr {vpc_cidr} nor in a public or private \
         gateway subnet of the VPC"
    )))
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    fn vpc() -> Ipv4Net {
        net("10.1.0.0/16")
    }

    #[test]
    fn accepted() {
        assert_eq!(
            validate_route_cidr("192.168.50.0/24", &vpc(), &[], &[]).unwrap(),
            net("192.168.50.0/24")
        );
        let existing = [ExistingRoute {
            cidr: net("192.168.0.0/24"),
        }];
        validate_route_cidr("192.168.1.0/24", &vpc(), &[], &existing).unwrap();
        validate_route_cidr("0.0.0.0/1", &net("192.168.0.0/16"), &[], &[]).unwrap();
    }

    #[test]
    fn invalid_or_inside_vpc_or_link_local() {
        assert_err(
            validate_route_cidr("300.0.0.0/8", &vpc(), &[], &[]),
            431,
            "300.0.0.0/8",
        );
        assert_err(
            validate_route_cidr("10.1.5.0/24", &vpc(), &[], &[]),
            431,
            "overlaps the VPC cidr",
        );
        assert_err(
            validate_route_cidr("10.0.0.0/8", &vpc(), &[], &[]),
            431,
            "overlaps the VPC cidr",
        );
        assert_err(
            validate_route_cidr("169.254.1.0/24", &vpc(), &[], &[]),
            431,
            "link-local",
        );
        assert_err(
            validate_route_cidr("0.0.0.0/0", &vpc(), &[], &[]),
            431,
            "VPC cidr",
        );
    }

    #[test]
    fn denied_routes() {
        let denied = parse_denied_routes(" 172.16.0.0/12, ,192.0.2.0/24").unwrap();
        assert_eq!(denied, vec![net("172.16.0.0/12"), net("192.0.2.0/24")]);
        assert!(parse_denied_routes("").unwrap().is_empty());
        assert_err(parse_denied_routes("1.2.3.0/24,junk"), 431, "junk");
        assert_err(
            validate_route_cidr("172.20.0.0/16", &vpc(), &denied, &[]),
            431,
            "denied.routes",
        );
        validate_route_cidr("172.32.0.0/16", &vpc(), &denied, &[]).unwrap();
    }

    #[test]
    fn overlapping_routes_conflict() {
        let existing = [ExistingRoute {
            cidr: net("192.168.0.0/16"),
        }];
        let e = validate_route_cidr("192.168.7.0/24", &vpc(), &[], &existing)
            .map_err(crate::api::ApiError::from)
            .unwrap_err();
        assert_eq!((e.code, e.cs_code), (537, 4360));
        assert!(e.text.contains("192.168.0.0/16"), "{}", e.text);
    }

    #[test]
    fn gateway_must_be_ready() {
        check_gateway_ready("pg", GatewayState::Ready).unwrap();
        assert_err(
            check_gateway_ready("pg", GatewayState::Creating),
            431,
            "Creating",
        );
        assert_err(
            check_gateway_ready("pg", GatewayState::Deleting),
            431,
            "not in Ready state",
        );
    }

    #[test]
    fn targets() {
        assert_eq!(
            route_target(Some("g"), None, false).unwrap(),
            Target::Gateway("g")
        );
        assert_eq!(
            route_target(None, Some("10.1.0.9"), true).unwrap(),
            Target::NextHop(Ipv4Addr::new(10, 1, 0, 9))
        );
        assert_err(
            route_target(None, Some("10.1.0.9"), false),
            431,
            "vpcid is required",
        );
        assert_err(
            route_target(Some("g"), Some("10.1.0.9"), true),
            431,
            "Exactly one",
        );
        assert_err(route_target(None, None, true), 431, "Exactly one");
        assert_err(route_target(None, Some("x"), true), 431, "nexthop");
    }

    #[test]
    fn next_hop_reachability() {
        check_next_hop(Ipv4Addr::new(10, 1, 3, 4), &vpc(), &[]).unwrap();
        check_next_hop(
            Ipv4Addr::new(172, 16, 0, 9),
            &vpc(),
            &[net("172.16.0.0/24")],
        )
        .unwrap();
        assert_err(
            check_next_hop(Ipv4Addr::new(8, 8, 8, 8), &vpc(), &[]),
            431,
            "8.8.8.8",
        );
    }
}
