//! Validation of a new VPC tier (reference §2.4, §3.4).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::{Config, check_name, overlaps, parse_ipv4, parse_netmask, validate_network_domain};
use crate::error::Error;

/// A tier that already exists in the VPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingTier {
    pub name: String,
    pub cidr: Ipv4Net,
    /// Its offering provides a public load balancer.
    pub public_lb: bool,
    /// Its network offering (internal id).
    pub offering_id: i64,
}

/// The tier offering as far as the rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TierOffering {
    /// The offering's internal id.
    pub id: i64,
    /// `forvpc=true`: usable for VPC tiers.
    pub for_vpc: bool,
    /// Provides a public load balancer (VR haproxy, not internal LB).
    pub public_lb: bool,
    /// Provides the NetworkACL service (needed to attach an `aclid`).
    pub network_acl: bool,
}

/// Everything about the VPC the tier checks need.
#[derive(Debug, Clone, Default)]
pub struct VpcView<'a> {
    pub name: &'a str,
    pub cidr: Option<Ipv4Net>,
    pub network_domain: &'a str,
    /// Non-system tiers of the VPC.
    pub tiers: &'a [ExistingTier],
    /// Subnets of the VPC's private gateway networks.
    pub private_gateway_cidrs: &'a [Ipv4Net],
}

/// The createNetwork parameters of a tier.
#[derive(Debug, Clone, Default)]
pub struct NewTier<'a> {
    pub name: &'a str,
    pub gateway: Option<&'a str>,
    pub netmask: Option<&'a str>,
    pub network_domain: Option<&'a str>,
    pub offering: TierOffering,
    /// The caller is the root admin (exempt from `network.guest.cidr.limit`).
    pub caller_is_root: bool,
    /// An `aclid` was given.
    pub acl_given: bool,
}

/// What createNetwork goes on with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedTier {
    pub gateway: Ipv4Addr,
    pub cidr: Ipv4Net,
    pub network_domain: String,
}

/// The tier CIDR from `gateway` + `netmask`, both required; the gateway may
/// be neither the network nor the broadcast address of the result.
pub fn tier_cidr(
    gateway: Option<&str>,
    netmask: Option<&str>,
) -> Result<(Ipv4Addr, Ipv4Net), Error> {
    let (Some(gw), Some(mask)) = (
        gateway.filter(|s| !s.trim().is_empty()),
        netmask.filter(|s| !s.trim().is_empty()),
    ) else {
        return Err(Error::invalid(
            "Gateway/netmask are required when create network for VPC",
        ));
    };
    let gw = parse_ipv4("gateway", gw)?;
    let prefix = parse_netmask("netmask", mask)?;
    let cidr = Ipv4Net::new(gw, prefix)
        .expect("prefix from a netmask is at most 32")
        .trunc();
    if prefix > 30 {
        return Err(Error::invalid(format!(
            "netmask {mask} (/{prefix}) leaves no room for a gateway and guests"
        )));
    }
    if gw == cidr.network() {
        return Err(Error::invalid(format!(
            "gateway {gw} is the network address of {cidr}"
        )));
    }
    if gw == cidr.broadcast() {
        return Err(Error::invalid(format!(
            "gateway {gw} is the broadcast address of {cidr}"
        )));
    }
    Ok((gw, cidr))
}

/// All createNetwork checks for a VPC tier, in CloudStack's order: the tier
/// count (530), gateway/netmask, placement inside the VPC and against the
/// other tiers and private gateways, the size limit for non-root callers,
/// the network domain and the offering.
pub fn validate_new_tier(
    req: &NewTier<'_>,
    vpc: &VpcView<'_>,
    config: &Config,
) -> Result<CheckedTier, Error> {
    check_name("name", req.name)?;
    if vpc.tiers.len() >= config.vpc_max_networks as usize {
        return Err(Error::internal(format!(
            "Number of networks per VPC cannot surpass [{}]: VPC {} already has {} tiers",
            config.vpc_max_networks,
            vpc.name,
            vpc.tiers.len()
        )));
    }
    if !req.offering.for_vpc {
        return Err(Error::invalid(format!(
            "Network offering can't be used for VPC networks: the offering of tier {} has forvpc=false",
            req.name
        )));
    }
    let (gateway, cidr) = tier_cidr(req.gateway, req.netmask)?;
    if let Some(vpc_cidr) = vpc.cidr
        && !vpc_cidr.contains(&cidr)
    {
        return Err(Error::invalid(format!(
            "Network cidr {cidr} is not within vpc {} cidr {vpc_cidr}",
            vpc.name
        )));
    }
    if let Some(t) = vpc.tiers.iter().find(|t| overlaps(&t.cidr, &cidr)) {
        return Err(Error::invalid(format!(
            "Network cidr {cidr} overlaps with cidr {} of tier {} in vpc {}",
            t.cidr, t.name, vpc.name
        )));
    }
    if let Some(p) = vpc
        .private_gateway_cidrs
        .iter()
        .find(|p| overlaps(p, &cidr))
    {
        return Err(Error::invalid(format!(
            "Network cidr {cidr} overlaps with private gateway network {p} of vpc {}",
            vpc.name
        )));
    }
    if !req.caller_is_root && cidr.prefix_len() < config.guest_cidr_limit {
        return Err(Error::invalid(format!(
            "Cidr size of {cidr} can't be less than /{} (network.guest.cidr.limit)",
            config.guest_cidr_limit
        )));
    }
    let network_domain = match req.network_domain.filter(|d| !d.is_empty()) {
        Some(d) => {
            validate_network_domain(d)?;
            if !d.eq_ignore_ascii_case(vpc.network_domain) {
                return Err(Error::invalid(format!(
                    "Network domain {d} of the tier must be the VPC's network domain {}",
                    vpc.network_domain
                )));
            }
            d.to_string()
        }
        None => vpc.network_domain.to_string(),
    };
    // CloudStack (VpcManagerImpl, rule 4 of the tier checks) refuses only when
    // another tier's *different* offering has public LB: tiers of the same
    // public-LB offering share the VPC's load balancer.
    if req.offering.public_lb
        && let Some(t) = vpc
            .tiers
            .iter()
            .find(|t| t.public_lb && t.offering_id != req.offering.id)
    {
        return Err(Error::invalid(format!(
            "Public LB service is already enabled on tier {} of vpc {}; only one tier per VPC may have it",
            t.name, vpc.name
        )));
    }
    if req.acl_given && !req.offering.network_acl {
        return Err(Error::invalid(format!(
            "aclid can't be given for tier {}: its offering does not provide the NetworkACL service",
            req.name
        )));
    }
    Ok(CheckedTier {
        gateway,
        cidr,
        network_domain,
    })
}

/// The tier offering against the VPC's (§3.4 rule 9): it must give
/// SourceNat or Gateway (an Isolated VPC offering), and every (service,
/// provider) pair it has must be one the VPC offering has.
pub fn check_offering_services(
    offering: impl std::fmt::Display,
    tier_services: &[(&str, &str)],
    vpc_name: &str,
    vpc_services: &[(&str, &str)],
) -> Result<(), Error> {
    if !tier_services
        .iter()
        .any(|(s, _)| *s == "SourceNat" || *s == "Gateway")
    {
        return Err(Error::invalid(format!(
            "Only network offerings of type Isolated with service SourceNat or Gateway are valid \
             for vpc: network offering {offering} has neither"
        )));
    }
    if let Some((service, provider)) = tier_services.iter().find(|(s, p)| {
        !vpc_services
            .iter()
            .any(|(vs, vp)| vs.eq_ignore_ascii_case(s) && vp.eq_ignore_ascii_case(p))
    }) {
        return Err(Error::invalid(format!(
            "Service/provider combination {service}/{provider} is not supported by VPC \
             {vpc_name} (network offering {offering})"
        )));
    }
    Ok(())
}

/// The stored tier name: with `vpc.tier.name.prepend=true` it is prefixed
/// with the VPC name and `vpc.tier.name.prepend.delimiter` (default a
/// space).
pub fn tier_name(vpc_name: &str, name: &str, prepend: bool, delimiter: &str) -> String {
    if prepend {
        format!("{vpc_name}{delimiter}{name}")
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    fn tier(name: &str, cidr: &str, public_lb: bool) -> ExistingTier {
        ExistingTier {
            name: name.into(),
            cidr: net(cidr),
            public_lb,
            offering_id: 2,
        }
    }

    fn req<'a>(gw: &'a str, mask: &'a str) -> NewTier<'a> {
        NewTier {
            name: "web",
            gateway: Some(gw),
            netmask: Some(mask),
            network_domain: None,
            offering: TierOffering {
                id: 1,
                for_vpc: true,
                public_lb: false,
                network_acl: true,
            },
            caller_is_root: false,
            acl_given: false,
        }
    }

    fn vpc<'a>(tiers: &'a [ExistingTier], pg: &'a [Ipv4Net]) -> VpcView<'a> {
        VpcView {
            name: "prod",
            cidr: Some(net("10.1.0.0/16")),
            network_domain: "prod.internal",
            tiers,
            private_gateway_cidrs: pg,
        }
    }

    #[test]
    fn accepts_a_tier_inside_the_vpc() {
        let c = Config::default();
        let t = validate_new_tier(&req("10.1.1.1", "255.255.255.0"), &vpc(&[], &[]), &c).unwrap();
        assert_eq!(t.cidr, net("10.1.1.0/24"));
        assert_eq!(t.gateway, Ipv4Addr::new(10, 1, 1, 1));
        assert_eq!(t.network_domain, "prod.internal");
        // the gateway may be any host address, e.g. the last one
        let t = validate_new_tier(&req("10.1.1.254", "255.255.255.0"), &vpc(&[], &[]), &c).unwrap();
        assert_eq!(t.cidr, net("10.1.1.0/24"));
    }

    #[test]
    fn gateway_and_netmask_required_and_consistent() {
        assert_err(
            tier_cidr(None, Some("255.255.255.0")),
            431,
            "Gateway/netmask are required",
        );
        assert_err(
            tier_cidr(Some("10.1.1.1"), None),
            431,
            "Gateway/netmask are required",
        );
        assert_err(
            tier_cidr(Some("10.1.1.1"), Some("")),
            431,
            "Gateway/netmask are required",
        );
        assert_err(
            tier_cidr(Some("10.1.1.0"), Some("255.255.255.0")),
            431,
            "network address",
        );
        assert_err(
            tier_cidr(Some("10.1.1.255"), Some("255.255.255.0")),
            431,
            "broadcast address",
        );
        assert_err(
            tier_cidr(Some("10.1.1.x"), Some("255.255.255.0")),
            431,
            "10.1.1.x",
        );
        assert_err(
            tier_cidr(Some("10.1.1.1"), Some("255.0.255.0")),
            431,
            "255.0.255.0",
        );
        assert_err(
            tier_cidr(Some("10.1.1.1"), Some("255.255.255.255")),
            431,
            "no room",
        );
    }

    #[test]
    fn tier_must_be_inside_the_vpc() {
        let c = Config::default();
        assert_err(
            validate_new_tier(&req("10.2.0.1", "255.255.255.0"), &vpc(&[], &[]), &c),
            431,
            "10.2.0.0/24 is not within vpc prod cidr 10.1.0.0/16",
        );
    }

    #[test]
    fn tiers_must_not_overlap() {
        let c = Config::default();
        let tiers = [tier("db", "10.1.0.0/23", false)];
        assert_err(
            validate_new_tier(&req("10.1.1.1", "255.255.255.0"), &vpc(&tiers, &[]), &c),
            431,
            "overlaps with cidr 10.1.0.0/23 of tier db",
        );
        validate_new_tier(&req("10.1.2.1", "255.255.255.0"), &vpc(&tiers, &[]), &c).unwrap();
    }

    #[test]
    fn tiers_must_not_overlap_private_gateways() {
        let c = Config::default();
        let pg = [net("10.1.5.0/24")];
        assert_err(
            validate_new_tier(&req("10.1.5.1", "255.255.255.0"), &vpc(&[], &pg), &c),
            431,
            "private gateway network 10.1.5.0/24",
        );
    }

    #[test]
    fn max_networks_is_a_530() {
        let c = Config::default();
        let tiers = [
            tier("a", "10.1.1.0/24", false),
            tier("b", "10.1.2.0/24", false),
            tier("c", "10.1.3.0/24", false),
        ];
        let e = validate_new_tier(&req("10.1.4.1", "255.255.255.0"), &vpc(&tiers, &[]), &c)
            .map_err(crate::api::ApiError::from)
            .unwrap_err();
        assert_eq!((e.code, e.cs_code), (530, 4250));
        assert!(e.text.contains("cannot surpass [3]"), "{}", e.text);
        let more = Config {
            vpc_max_networks: 4,
            ..Config::default()
        };
        validate_new_tier(&req("10.1.4.1", "255.255.255.0"), &vpc(&tiers, &[]), &more).unwrap();
    }

    #[test]
    fn cidr_limit_applies_to_non_root_only() {
        let c = Config::default();
        // /22 is exactly the limit: allowed
        validate_new_tier(&req("10.1.0.1", "255.255.252.0"), &vpc(&[], &[]), &c).unwrap();
        assert_err(
            validate_new_tier(&req("10.1.0.1", "255.255.248.0"), &vpc(&[], &[]), &c),
            431,
            "10.1.0.0/21 can't be less than /22",
        );
        let root = NewTier {
            caller_is_root: true,
            ..req("10.1.0.1", "255.255.248.0")
        };
        validate_new_tier(&root, &vpc(&[], &[]), &c).unwrap();
    }

    #[test]
    fn network_domain_must_match_the_vpc() {
        let c = Config::default();
        let ok = NewTier {
            network_domain: Some("PROD.internal"),
            ..req("10.1.1.1", "255.255.255.0")
        };
        validate_new_tier(&ok, &vpc(&[], &[]), &c).unwrap();
        let other = NewTier {
            network_domain: Some("other.internal"),
            ..req("10.1.1.1", "255.255.255.0")
        };
        assert_err(
            validate_new_tier(&other, &vpc(&[], &[]), &c),
            431,
            "other.internal",
        );
        let bad = NewTier {
            network_domain: Some("-x.internal"),
            ..req("10.1.1.1", "255.255.255.0")
        };
        assert_err(
            validate_new_tier(&bad, &vpc(&[], &[]), &c),
            431,
            "Invalid network domain",
        );
    }

    #[test]
    fn offering_checks() {
        let c = Config::default();
        let not_vpc = NewTier {
            offering: TierOffering {
                id: 1,
                for_vpc: false,
                public_lb: false,
                network_acl: true,
            },
            ..req("10.1.1.1", "255.255.255.0")
        };
        assert_err(
            validate_new_tier(&not_vpc, &vpc(&[], &[]), &c),
            431,
            "forvpc=false",
        );
        let lb = NewTier {
            offering: TierOffering {
                id: 1,
                for_vpc: true,
                public_lb: true,
                network_acl: true,
            },
            ..req("10.1.2.1", "255.255.255.0")
        };
        let without_lb = [tier("a", "10.1.1.0/24", false)];
        validate_new_tier(&lb, &vpc(&without_lb, &[]), &c).unwrap();
        let with_lb = [tier("a", "10.1.1.0/24", true)];
        assert_err(
            validate_new_tier(&lb, &vpc(&with_lb, &[]), &c),
            431,
            "already enabled on tier a",
        );
    }

    #[test]
    fn second_tier_of_the_same_public_lb_offering_allowed() {
        let c = Config::default();
        let lb = NewTier {
            offering: TierOffering {
                id: 2,
                for_vpc: true,
                public_lb: true,
                network_acl: true,
            },
            ..req("10.1.2.1", "255.255.255.0")
        };
        let same_offering = [tier("a", "10.1.1.0/24", true)];
        validate_new_tier(&lb, &vpc(&same_offering, &[]), &c).unwrap();
    }

    #[test]
    fn aclid_needs_the_network_acl_service() {
        let c = Config::default();
        let with_acl = NewTier {
            acl_given: true,
            ..req("10.1.1.1", "255.255.255.0")
        };
        validate_new_tier(&with_acl, &vpc(&[], &[]), &c).unwrap();
        let no_acl_service = NewTier {
            offering: TierOffering {
                id: 1,
                for_vpc: true,
                public_lb: false,
                network_acl: false,
            },
            ..with_acl
        };
        assert_err(
            validate_new_tier(&no_acl_service, &vpc(&[], &[]), &c),
            431,
            "NetworkACL service",
        );
    }

    #[test]
    fn the_offering_must_fit_the_vpc_offering() {
        let vpc = [
            ("Dhcp", "VpcVirtualRouter"),
            ("SourceNat", "VpcVirtualRouter"),
            ("NetworkACL", "VpcVirtualRouter"),
        ];
        check_offering_services(
            "o",
            &[
                ("Dhcp", "VpcVirtualRouter"),
                ("SourceNat", "VpcVirtualRouter"),
            ],
            "prod",
            &vpc,
        )
        .unwrap();
        assert_err(
            check_offering_services(
                "o",
                &[
                    ("SourceNat", "VpcVirtualRouter"),
                    ("Lb", "VpcVirtualRouter"),
                ],
                "prod",
                &vpc,
            ),
            431,
            "Service/provider combination Lb/VpcVirtualRouter is not supported by VPC prod",
        );
        assert_err(
            check_offering_services("o", &[("Dhcp", "VpcVirtualRouter")], "prod", &vpc),
            431,
            "SourceNat or Gateway",
        );
    }

    #[test]
    fn tier_names() {
        assert_eq!(tier_name("prod", "web", false, " "), "web");
        assert_eq!(tier_name("prod", "web", true, " "), "prod web");
        assert_eq!(tier_name("prod", "web", true, "-"), "prod-web");
    }
}
