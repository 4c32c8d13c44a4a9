//! VPC creation, restart and deletion rules (reference §2.3, §3.2, §3.3).

use ipnet::Ipv4Net;

use super::{
    Config, MAX_DISPLAY_TEXT_LEN, check_length, check_name, parse_ipv4_cidr_with_host_bits,
    validate_network_domain,
};
use crate::error::Error;

/// The private ranges a VPC CIDR must lie in unless
/// `allow.non.rfc1918.compliant.ips` is set: RFC 1918 plus the RFC 6598
/// shared address space.
pub const PRIVATE_RANGES: [&str; 4] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
];

/// Whether `cidr` lies entirely inside one of [`PRIVATE_RANGES`].
pub fn is_private_cidr(cidr: &Ipv4Net) -> bool {
    PRIVATE_RANGES
        .iter()
        .map(|r| r.parse::<Ipv4Net>().expect("constant range"))
        .any(|r| r.contains(cidr))
}

/// Validates the `cidr` of createVPC: a well-formed IPv4 CIDR inside a
/// private range unless the configuration allows public ones. Host bits may
/// be set (`10.1.1.1/16`): CloudStack's createVpc checks only the form
/// (`NetUtils.isValidIp4Cidr`) and keeps the text as given, so it is kept
/// here too; every containment check works on the network part.
pub fn validate_vpc_cidr(cidr: &str, config: &Config) -> Result<Ipv4Net, Error> {
    let net = parse_ipv4_cidr_with_host_bits("cidr", cidr)?;
    if !config.allow_non_rfc1918 && !is_private_cidr(&net) {
        return Err(Error::invalid(format!(
            "Guest Cidr {net} is not RFC1918 compliant: it must lie inside 10.0.0.0/8, \
             172.16.0.0/12, 192.168.0.0/16 or 100.64.0.0/10 \
             (allow.non.rfc1918.compliant.ips is false)"
        )));
    }
    Ok(net)
}

/// State of a VPC offering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferingState {
    Enabled,
    Disabled,
}

/// The offering named in createVPC must be Enabled.
pub fn check_offering_enabled(
    offering: impl std::fmt::Display,
    state: OfferingState,
) -> Result<(), Error> {
    match state {
        OfferingState::Enabled => Ok(()),
        OfferingState::Disabled => Err(Error::invalid(format!(
            "Unable to find vpc offering in Enabled state by id {offering}: the offering is Disabled"
        ))),
    }
}

/// Checks the owner's `vpc` resource limit before one more VPC is created.
/// `limit` is the effective limit (account, domain or project), -1 meaning
/// unlimited; `owner` names the account in the text.
pub fn check_vpc_limit(owner: &str, current: i64, limit: i64) -> Result<(), Error> {
    super::check_account_limit("vpc", owner, current, limit)
}

/// The parameters of createVPC the rules look at.
#[derive(Debug, Clone, Default)]
pub struct NewVpc<'a> {
    pub name: &'a str,
    pub display_text: Option<&'a str>,
    pub cidr: &'a str,
    pub network_domain: Option<&'a str>,
}

/// What createVPC goes on with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedVpc {
    pub name: String,
    /// Defaults to the name.
    pub display_text: String,
    pub cidr: Ipv4Net,
    /// `None` when the caller gave none (the service picks the default).
    pub network_domain: Option<String>,
}

/// Validates createVPC's own parameters (the offering state and the limit
/// are separate checks: they need lookups).
pub fn validate_new_vpc(req: &NewVpc<'_>, config: &Config) -> Result<CheckedVpc, Error> {
    check_name("name", req.name)?;
    let display_text = req
        .display_text
        .filter(|d| !d.is_empty())
        .unwrap_or(req.name);
    check_length("displaytext", display_text, MAX_DISPLAY_TEXT_LEN)?;
    let cidr = validate_vpc_cidr(req.cidr, config)?;
    let network_domain = match req.network_domain.filter(|d| !d.is_empty()) {
        Some(d) => {
            validate_network_domain(d)?;
            Some(d.to_string())
        }
        None => None,
    };
    Ok(CheckedVpc {
        name: req.name.to_string(),
        display_text: display_text.to_string(),
        cidr,
        network_domain,
    })
}

/// The default network domain of a VPC whose creator gave none and whose
/// account has none: `cs<hex account id>.<guest.domain.suffix>`.
pub fn default_network_domain(account_id: u64, suffix: &str) -> String {
    format!("cs{account_id:x}.{suffix}")
}

/// VPC states (reference §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VpcState {
    Enabled,
    Inactive,
}

/// Commands that change a VPC (restartVPC, new tiers, gateways, routes)
/// need it Enabled; an Inactive VPC is being deleted.
pub fn check_vpc_enabled(vpc: impl std::fmt::Display, state: VpcState) -> Result<(), Error> {
    match state {
        VpcState::Enabled => Ok(()),
        VpcState::Inactive => Err(Error::invalid(format!(
            "VPC {vpc} is Inactive (being deleted); the operation needs it Enabled"
        ))),
    }
}

/// deleteVPC is refused while the VPC still has (non-system) tiers.
pub fn check_vpc_deletable(vpc: impl std::fmt::Display, tier_count: usize) -> Result<(), Error> {
    if tier_count > 0 {
        return Err(Error::invalid(format!(
            "Can't delete VPC {vpc} as its used by {tier_count} networks; delete its tiers first"
        )));
    }
    Ok(())
}

/// createVPC takes exactly one of `cidr` and `cidrsize`; `cidrsize` only
/// for ROUTED offerings, where an explicit `cidr` is for the root admin.
pub fn check_cidr_or_size(
    cidr: Option<&str>,
    cidr_size: Option<i64>,
    routed: bool,
    caller_is_root: bool,
) -> Result<(), Error> {
    let cidr = cidr.filter(|c| !c.trim().is_empty());
    match (cidr, cidr_size) {
        (None, None) => Err(Error::invalid("cidr or cidrsize must be specified")),
        (Some(_), Some(_)) => Err(Error::invalid(
            "cidr and cidrsize are mutually exclusive; give only one",
        )),
        (None, Some(size)) if !routed => Err(Error::invalid(format!(
            "cidrsize {size} can only be used with a ROUTED VPC offering"
        ))),
        (None, Some(size)) if !(1..=32).contains(&size) => Err(Error::invalid(format!(
            "cidrsize {size} is not a valid IPv4 prefix length"
        ))),
        (Some(c), None) if routed && !caller_is_root => Err(Error::invalid(format!(
            "Only the ROOT admin may give an explicit cidr ({c}) for a ROUTED VPC"
        ))),
        _ => Ok(()),
    }
}

/// CloudStack's `NetworkService.MINIMUM_MTU`: the smallest MTU an IPv4
/// link may have (RFC 791).
pub const MIN_MTU: u32 = 68;

/// `dns1`/`dns2` need an offering with the Dns service, must be IPv4
/// addresses, and `dns2` needs `dns1`.
pub fn check_dns(
    dns1: Option<&str>,
    dns2: Option<&str>,
    offering_has_dns: bool,
) -> Result<(), Error> {
    let dns1 = dns1.filter(|d| !d.trim().is_empty());
    let dns2 = dns2.filter(|d| !d.trim().is_empty());
    if dns1.is_none() && dns2.is_none() {
        return Ok(());
    }
    if !offering_has_dns {
        return Err(Error::invalid(
            "DNS addresses can't be given: the VPC offering does not provide the Dns service",
        ));
    }
    if dns1.is_none() {
        return Err(Error::invalid("dns2 can't be given without dns1"));
    }
    for (name, value) in [("dns1", dns1), ("dns2", dns2)] {
        if let Some(v) = value {
            super::parse_ipv4(name, v)?;
        }
    }
    Ok(())
}

/// `publicmtu` (createVPC, updateVPC) must lie between [`MINIMUM_MTU`] and
/// `max`, `vr.public.interface.max.mtu`. CloudStack clamps a value
/// outside into range and raises an alert; here it is refused (431 naming
/// the parameter and its range), so the router never gets an MTU the caller
/// did not ask for.
pub fn check_public_mtu(mtu: i64, max: i64) -> Result<u32, Error> {
    let min = i64::from(MIN_MTU);
    if !(min..=max).contains(&mtu) {
        return Err(Error::invalid(format!(
            "publicmtu {mtu} is out of range: the router's public interfaces take an MTU from \
             {min} to {max} (vr.public.interface.max.mtu)"
        )));
    }
    u32::try_from(mtu).map_err(|_| Error::invalid(format!("publicmtu {mtu} is not an MTU")))
}

/// A Disabled zone takes no new VPCs from callers other than the root
/// admin (531).
pub fn check_zone_usable(zone: &str, enabled: bool, caller_is_root: bool) -> Result<(), Error> {
    if !enabled && !caller_is_root {
        return Err(Error::permission_denied(format!(
            "Cannot perform this operation, Zone {zone} is currently disabled"
        )));
    }
    Ok(())
}

/// deleteVPCOffering: refused for the built-in offerings and for offerings
/// that VPCs still use.
pub fn check_offering_deletable(
    offering: impl std::fmt::Display,
    is_default: bool,
    vpc_count: usize,
) -> Result<(), Error> {
    if is_default {
        return Err(Error::invalid(format!(
            "Default VPC offering {offering} can't be removed"
        )));
    }
    if vpc_count > 0 {
        return Err(Error::invalid(format!(
            "Can't delete VPC offering {offering} as it's used by {vpc_count} vpcs. \
             To make the offering unavailable, disable it"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    #[test]
    fn private_cidrs_accepted() {
        let c = Config::default();
        for ok in [
            "10.0.0.0/16",
            "172.16.0.0/12",
            "192.168.10.0/24",
            "100.64.0.0/10",
            "10.0.0.0/8",
        ] {
            assert_eq!(validate_vpc_cidr(ok, &c).unwrap(), net(ok));
        }
    }

    #[test]
    fn public_or_straddling_cidrs_refused_unless_allowed() {
        let c = Config::default();
        for bad in [
            "8.8.8.0/24",
            "172.32.0.0/16",
            "10.0.0.0/7",
            "100.128.0.0/16",
        ] {
            assert_err(validate_vpc_cidr(bad, &c), 431, "not RFC1918 compliant");
        }
        let allow = Config {
            allow_non_rfc1918: true,
            ..Config::default()
        };
        assert_eq!(
            validate_vpc_cidr("8.8.8.0/24", &allow).unwrap(),
            net("8.8.8.0/24")
        );
    }

    #[test]
    fn cidr_with_host_bits_kept_as_given() {
        let c = Config::default();
        let kept = validate_vpc_cidr("10.1.1.1/16", &c).unwrap();
        assert_eq!(kept.to_string(), "10.1.1.1/16");
        assert_eq!(kept.trunc(), net("10.1.0.0/16"));
        assert_err(validate_vpc_cidr("8.8.8.8/24", &c), 431, "not RFC1918");
    }

    #[test]
    fn malformed_cidrs_refused() {
        let c = Config::default();
        assert_err(validate_vpc_cidr("ten", &c), 431, "\"ten\"");
        assert_err(validate_vpc_cidr("10.0.0.0/40", &c), 431, "10.0.0.0/40");
    }

    #[test]
    fn offering_must_be_enabled() {
        check_offering_enabled("off-1", OfferingState::Enabled).unwrap();
        assert_err(
            check_offering_enabled("off-1", OfferingState::Disabled),
            431,
            "off-1",
        );
    }

    #[test]
    fn vpc_limit() {
        check_vpc_limit("alice", 19, 20).unwrap();
        check_vpc_limit("alice", 1000, -1).unwrap();
        let e = check_vpc_limit("alice", 20, 20)
            .map_err(crate::api::ApiError::from)
            .unwrap_err();
        assert_eq!((e.code, e.cs_code), (535, 4370));
        assert!(
            e.text
                .starts_with("Maximum amount of resources of Type = 'vpc'"),
            "{}",
            e.text
        );
        assert!(e.text.contains("alice") && e.text.contains("= 20"));
        assert_err(check_vpc_limit("bob", 0, 0), 535, "bob");
    }

    #[test]
    fn new_vpc_defaults_and_checks() {
        let c = Config::default();
        let ok = validate_new_vpc(
            &NewVpc {
                name: "prod",
                cidr: "10.1.0.0/16",
                ..Default::default()
            },
            &c,
        )
        .unwrap();
        assert_eq!(ok.display_text, "prod");
        assert_eq!(ok.network_domain, None);
        let ok = validate_new_vpc(
            &NewVpc {
                name: "prod",
                display_text: Some("Production"),
                cidr: "10.1.0.0/16",
                network_domain: Some("prod.example"),
            },
            &c,
        )
        .unwrap();
        assert_eq!(ok.network_domain.as_deref(), Some("prod.example"));

        let long = "n".repeat(256);
        let base = NewVpc {
            name: "prod",
            cidr: "10.1.0.0/16",
            ..Default::default()
        };
        assert_err(
            validate_new_vpc(
                &NewVpc {
                    name: &long,
                    ..base.clone()
                },
                &c,
            ),
            431,
            "name",
        );
        assert_err(
            validate_new_vpc(
                &NewVpc {
                    display_text: Some(&long),
                    ..base.clone()
                },
                &c,
            ),
            431,
            "displaytext",
        );
        assert_err(
            validate_new_vpc(
                &NewVpc {
                    network_domain: Some("bad_domain"),
                    ..base.clone()
                },
                &c,
            ),
            431,
            "bad_domain",
        );
        assert_err(
            validate_new_vpc(
                &NewVpc {
                    cidr: "1.2.3.0/24",
                    ..base
                },
                &c,
            ),
            431,
            "1.2.3.0/24",
        );
    }

    #[test]
    fn default_domain() {
        assert_eq!(
            default_network_domain(255, "cloud.internal"),
            "csff.cloud.internal"
        );
    }

    #[test]
    fn lifecycle_checks() {
        check_vpc_enabled("v", VpcState::Enabled).unwrap();
        assert_err(check_vpc_enabled("v1", VpcState::Inactive), 431, "v1");
        check_vpc_deletable("v", 0).unwrap();
        assert_err(check_vpc_deletable("v1", 2), 431, "used by 2 networks");
    }
    #[test]
    fn cidr_or_size() {
        check_cidr_or_size(Some("10.0.0.0/16"), None, false, false).unwrap();
        check_cidr_or_size(None, Some(24), true, false).unwrap();
        check_cidr_or_size(Some("10.0.0.0/16"), None, true, true).unwrap();
        assert_err(
            check_cidr_or_size(None, None, false, true),
            431,
            "cidr or cidrsize",
        );
        assert_err(
            check_cidr_or_size(Some(""), None, false, true),
            431,
            "cidr or cidrsize",
        );
        assert_err(
            check_cidr_or_size(Some("10.0.0.0/16"), Some(24), true, true),
            431,
            "mutually exclusive",
        );
        assert_err(
            check_cidr_or_size(None, Some(24), false, true),
            431,
            "ROUTED",
        );
        assert_err(
            check_cidr_or_size(None, Some(40), true, true),
            431,
            "cidrsize 40",
        );
        assert_err(
            check_cidr_or_size(Some("10.0.0.0/16"), None, true, false),
            431,
            "ROOT admin",
        );
    }

    #[test]
    fn dns_parameters() {
        check_dns(None, None, false).unwrap();
        check_dns(Some("8.8.8.8"), None, true).unwrap();
        check_dns(Some("8.8.8.8"), Some("1.1.1.1"), true).unwrap();
        assert_err(check_dns(Some("8.8.8.8"), None, false), 431, "Dns service");
        assert_err(check_dns(None, Some("1.1.1.1"), true), 431, "without dns1");
    }

    #[test]
    fn public_mtu_outside_68_to_the_zone_maximum_is_refused_naming_the_range() {
        assert_eq!(check_public_mtu(68, 1500).ok(), Some(68));
        assert_eq!(check_public_mtu(1500, 1500).ok(), Some(1500));
        assert_eq!(check_public_mtu(9000, 9000).ok(), Some(9000));
        for (mtu, max) in [(67, 1500), (1501, 1500), (0, 1500), (-1, 9000)] {
            let e = check_public_mtu(mtu, max)
                .map_err(crate::api::ApiError::from)
                .expect_err("out of range");
            assert_eq!(e.code, 431);
            assert!(
                e.text.contains("publicmtu") && e.text.contains(&format!("68 to {max}")),
                "{}",
                e.text
            );
        }
        assert_err(check_dns(Some("8.8.8.300"), None, true), 431, "8.8.8.300");
    }

    #[test]
    fn zone_and_offering_deletion() {
        check_zone_usable("z1", true, false).unwrap();
        check_zone_usable("z1", false, true).unwrap();
        assert_err(
            check_zone_usable("z1", false, false),
            531,
            "Zone z1 is currently disabled",
        );
        check_offering_deletable("custom", false, 0).unwrap();
        assert_err(
            check_offering_deletable("Default VPC offering", true, 0),
            431,
            "Default VPC offering",
        );
        assert_err(
            check_offering_deletable("custom", false, 3),
            431,
            "used by 3 vpcs",
        );
    }
}
