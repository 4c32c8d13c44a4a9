//! CloudStack's VPC business rules as pure functions (reference §3.2–§3.8).
//!
//! Nothing here touches the database or the network: every check takes the
//! values it needs (the request's parameters, the existing objects as small
//! structs, the configuration as [`Config`]) and answers with the value the
//! command goes on with, or the [`Error`] CloudStack would have returned,
//! with CloudStack's code and a text that names the offending value.
//!
//! One file per resource: [`vpc`], [`tier`], [`ip`] (public IP purposes and
//! port conflicts), [`nat`] (port forwarding), [`lb`], [`gateway`] (private
//! gateways), [`route`] (static routes), [`vpn`] (site-to-site VPN) and [`acl`] (network ACL lists and
//! items). The helpers shared by them live here.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::error::Error;

pub mod acl;
pub mod gateway;
pub mod ip;
pub mod lb;
pub mod lb_sticky;
pub mod nat;
pub mod route;
pub mod tier;
pub mod vpc;
pub mod vpn;

/// The configuration keys the rules depend on (reference §3.9), with
/// CloudStack's defaults from [`Config::default`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `vpc.max.networks`: most tiers a VPC may have.
    pub vpc_max_networks: u32,
    /// `network.guest.cidr.limit`: shortest tier prefix a non-root caller may
    /// ask for.
    pub guest_cidr_limit: u8,
    /// `allow.non.rfc1918.compliant.ips`: accept public ranges as VPC CIDRs.
    pub allow_non_rfc1918: bool,
    /// `denied.routes`: CIDRs static routes may not overlap.
    pub denied_routes: Vec<Ipv4Net>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            vpc_max_networks: 3,
            guest_cidr_limit: 22,
            allow_non_rfc1918: false,
            denied_routes: Vec::new(),
        }
    }
}

/// The 535 of a resource limit that `requested` more resources of
/// `resource_type` would pass, in CloudStack's words
/// (`ResourceLimitManagerImpl`): the account's limit, or a domain's.
pub fn limit_exceeded(
    resource_type: &str,
    exceeded: &crate::store::limit::Exceeded,
    requested: i64,
) -> Error {
    use crate::store::limit::Exceeded;
    Error::limit_exceeded(match exceeded {
        Exceeded::Account { name, max, current } => format!(
            "Maximum amount of resources of Type = '{resource_type}' for Account Name = {name} \
             is exceeded: Resource Limit = {max}, Current Resource Amount = {current}, \
             Requested Resource Amount = {requested}."
        ),
        Exceeded::Domain { uuid, max, current } => format!(
            "Maximum domain resource limits of Type '{resource_type}' for Domain Id = {uuid} \
             is exceeded: Domain Resource Limit = {max}, Current Domain Resource Amount = \
             {current}, Requested Resource Amount = {requested}."
        ),
    })
}

/// Checks the owner's `resource_type` limit before one more resource is
/// created: `limit` is the effective limit (-1 unlimited), `current` what
/// the owner holds, `owner` names the account in the text.
pub fn check_account_limit(
    resource_type: &str,
    owner: &str,
    current: i64,
    limit: i64,
) -> Result<(), Error> {
    if limit < 0 || current < limit {
        return Ok(());
    }
    let exceeded = crate::store::limit::Exceeded::Account {
        name: owner.to_string(),
        max: limit,
        current,
    };
    Err(limit_exceeded(resource_type, &exceeded, 1))
}

/// Longest `name` CloudStack stores for VPCs, tiers, ACL lists, LB rules.
pub const MAX_NAME_LEN: usize = 255;
/// Longest `displaytext` / `description`.
pub const MAX_DISPLAY_TEXT_LEN: usize = 255;

/// Whether two subnets share at least one address. For CIDR blocks this is
/// the same as "one contains the other".
pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(b) || b.contains(a)
}

/// Parses an IPv4 CIDR such as `10.1.0.0/16`. The address must be the
/// network address (host bits clear), so that `10.1.2.3/16` is refused with
/// a hint naming the canonical form rather than silently widened.
pub fn parse_ipv4_cidr(param: &str, text: &str) -> Result<Ipv4Net, Error> {
    let trimmed = text.trim();
    let net: Ipv4Net = trimmed.parse().map_err(|_| {
        Error::invalid(format!(
            "{param} {trimmed:?} is not a valid IPv4 CIDR (expected a.b.c.d/n)"
        ))
    })?;
    if net.trunc() != net {
        return Err(Error::invalid(format!(
            "{param} {trimmed} has host bits set; did you mean {}?",
            net.trunc()
        )));
    }
    Ok(net)
}

/// Parses an IPv4 CIDR parameter whose host bits may be set, keeping them
/// (createVPC's `cidr`, which CloudStack stores as given).
pub fn parse_ipv4_cidr_with_host_bits(param: &str, text: &str) -> Result<Ipv4Net, Error> {
    let trimmed = text.trim();
    trimmed.parse().map_err(|_| {
        Error::invalid(format!(
            "{param} {trimmed:?} is not a valid IPv4 CIDR (expected a.b.c.d/n)"
        ))
    })
}

/// Parses an IPv4 address parameter.
pub fn parse_ipv4(param: &str, text: &str) -> Result<Ipv4Addr, Error> {
    text.trim().parse().map_err(|_| {
        Error::invalid(format!(
            "{param} {:?} is not a valid IPv4 address",
            text.trim()
        ))
    })
}

/// Parses a MAC address given as six hexadecimal octets separated by `:`
/// or `-` into the stored form (`02:00:0a:0b:0c:0d`, lower case). As
/// CloudStack (`NetUtils.isValidMac`, `isUnicastMac`), a multicast or
/// broadcast address (low bit of the first octet set) is refused.
pub fn parse_mac(param: &str, text: &str) -> Result<String, Error> {
    let trimmed = text.trim();
    let octets: Vec<&str> = trimmed.split([':', '-']).collect();
    let well_formed = octets.len() == 6
        && octets
            .iter()
            .all(|o| o.len() == 2 && o.bytes().all(|b| b.is_ascii_hexdigit()));
    if !well_formed {
        return Err(Error::invalid(format!(
            "{param} {trimmed:?} is not a valid MAC address (expected six hexadecimal octets, \
             aa:bb:cc:dd:ee:ff)"
        )));
    }
    let first = u8::from_str_radix(octets[0], 16).unwrap_or(1);
    if first & 1 == 1 {
        return Err(Error::invalid(format!(
            "{param} {trimmed} is a multicast address; a NIC needs a unicast MAC address"
        )));
    }
    Ok(octets.join(":").to_ascii_lowercase())
}

/// Parses a dotted netmask (`255.255.255.0`) into a prefix length; the mask
/// must be contiguous.
pub fn parse_netmask(param: &str, text: &str) -> Result<u8, Error> {
    let mask = parse_ipv4(param, text)?;
    ipnet::ipv4_mask_to_prefix(mask).map_err(|_| {
        Error::invalid(format!(
            "{param} {mask} is not a valid netmask (its one bits must be contiguous)"
        ))
    })
}

/// Refuses a string parameter longer than `max` characters.
pub fn check_length(param: &str, value: &str, max: usize) -> Result<(), Error> {
    if value.chars().count() > max {
        return Err(Error::too_long(param, max));
    }
    Ok(())
}

/// Refuses an empty or blank required name.
pub fn check_name(param: &str, value: &str) -> Result<(), Error> {
    if value.trim().is_empty() {
        return Err(Error::invalid(format!("{param} must not be empty")));
    }
    check_length(param, value, MAX_NAME_LEN)
}

/// Longest network domain CloudStack accepts.
pub const MAX_NETWORK_DOMAIN_LEN: usize = 190;

/// Checks a DNS network domain: dot-separated labels of 1–63 characters from
/// `[a-z0-9-]` (upper case accepted, DNS is case-insensitive) that neither
/// start nor end with '-', at most 190 characters in all.
pub fn validate_network_domain(domain: &str) -> Result<(), Error> {
    let bad = |why: &str| {
        Error::invalid(format!(
            "Invalid network domain {domain:?}: {why}. Total length shouldn't exceed \
             {MAX_NETWORK_DOMAIN_LEN} chars; each label must be 1-63 characters of \
             a-z, 0-9 and '-', not starting or ending with '-'"
        ))
    };
    if domain.is_empty() {
        return Err(bad("it is empty"));
    }
    if domain.len() > MAX_NETWORK_DOMAIN_LEN {
        return Err(bad("it is too long"));
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return Err(bad("it has an empty label"));
        }
        if label.len() > 63 {
            return Err(bad(&format!(
                "label {label:?} is longer than 63 characters"
            )));
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(bad(&format!(
                "label {label:?} has a character outside a-z, 0-9, '-'"
            )));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad(&format!("label {label:?} starts or ends with '-'")));
        }
    }
    Ok(())
}

/// An inclusive port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    /// Checks `start`..=`end` (end defaults to start) against `min..=65535`.
    /// `what` names the parameters in the error (e.g. `publicport`).
    pub fn new(what: &str, start: i64, end: Option<i64>, min: i64) -> Result<Self, Error> {
        let end = end.unwrap_or(start);
        for (label, port) in [("start", start), ("end", end)] {
            if !(min..=65535).contains(&port) {
                // The request's parameter: startport/endport for `port`,
                // publicport/publicendport for `publicport` …
                let param = match (what.strip_suffix("port"), label) {
                    (Some(""), _) => format!("{label}port"),
                    (Some(prefix), "end") => format!("{prefix}endport"),
                    _ => what.to_string(),
                };
                return Err(Error::invalid(format!(
                    "Invalid {what} {label} port {port} (parameter {param}): ports must be \
                     between {min} and 65535"
                )));
            }
        }
        if start > end {
            return Err(Error::invalid(format!(
                "Invalid {what} range {start}-{end}: the start port is greater than the end port"
            )));
        }
        // Both values were range-checked above.
        Ok(Self {
            start: start as u16,
            end: end as u16,
        })
    }

    /// Number of ports in the range.
    pub fn len(&self) -> u32 {
        u32::from(self.end) - u32::from(self.start) + 1
    }

    /// Always false: a range holds at least one port.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether the two ranges share a port.
    pub fn overlaps(&self, other: &PortRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// Transport protocol of a port forwarding or load balancing rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    /// Parses `tcp`/`udp` (case-insensitive).
    pub fn parse(text: &str) -> Result<Self, Error> {
        match text.trim().to_ascii_lowercase().as_str() {
            "tcp" => Ok(Self::Tcp),
            "udp" => Ok(Self::Udp),
            _ => Err(Error::invalid(format!(
                "Invalid protocol {text:?}: only tcp and udp are supported"
            ))),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    pub fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[track_caller]
    pub fn assert_err<T: std::fmt::Debug>(r: Result<T, Error>, code: u16, needle: &str) {
        let e = r
            .map_err(crate::api::ApiError::from)
            .expect_err("expected an error");
        assert_eq!(e.code, code, "{e}");
        assert!(e.text.contains(needle), "{needle:?} not in {:?}", e.text);
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::*;

    #[test]
    fn mac_addresses_are_unicast_six_octets() {
        assert_eq!(
            parse_mac("macaddress", "02-AA-bb-0c-0d-0e").unwrap(),
            "02:aa:bb:0c:0d:0e"
        );
        for bad in [
            "02:aa:bb:0c:0d",
            "02:aa:bb:0c:0d:0g",
            "2:aa:bb:0c:0d:0e",
            "",
        ] {
            let e = parse_mac("macaddress", bad)
                .map_err(crate::api::ApiError::from)
                .unwrap_err();
            assert!(e.code == 431 && e.text.contains("macaddress"), "{bad}: {e}");
        }
        let e = parse_mac("macaddress", "01:00:5e:00:00:01")
            .map_err(crate::api::ApiError::from)
            .unwrap_err();
        assert!(e.text.contains("multicast"), "{e}");
    }

    #[test]
    fn cidr_parsing() {
        assert_eq!(
            parse_ipv4_cidr("cidr", " 10.0.0.0/16 ").unwrap(),
            net("10.0.0.0/16")
        );
        assert_err(
            parse_ipv4_cidr("cidr", "10.0.0.1/16"),
            431,
            "did you mean 10.0.0.0/16",
        );
        assert_err(parse_ipv4_cidr("cidr", "10.0.0.0/33"), 431, "10.0.0.0/33");
        assert_err(
            parse_ipv4_cidr("cidr", "10.0.0.0"),
            431,
            "not a valid IPv4 CIDR",
        );
        assert_err(parse_ipv4_cidr("cidr", "fd00::/8"), 431, "fd00::/8");
    }

    #[test]
    fn netmask_parsing() {
        assert_eq!(parse_netmask("netmask", "255.255.255.0").unwrap(), 24);
        assert_eq!(parse_netmask("netmask", "0.0.0.0").unwrap(), 0);
        assert_err(parse_netmask("netmask", "255.0.255.0"), 431, "contiguous");
        assert_err(parse_netmask("netmask", "24"), 431, "\"24\"");
    }

    #[test]
    fn overlap_is_symmetric() {
        assert!(overlaps(&net("10.0.0.0/16"), &net("10.0.1.0/24")));
        assert!(overlaps(&net("10.0.1.0/24"), &net("10.0.0.0/16")));
        assert!(!overlaps(&net("10.0.0.0/24"), &net("10.0.1.0/24")));
    }

    #[test]
    fn network_domain_syntax() {
        for ok in ["cloud.internal", "a", "my-vpc.example.COM", "x1.y2"] {
            validate_network_domain(ok).unwrap();
        }
        let long_label = "a".repeat(64);
        let long_total = ["abcdefghij"; 20].join(".");
        for (bad, why) in [
            ("", "empty"),
            ("-a.b", "\"-a\""),
            ("a-.b", "\"a-\""),
            ("a..b", "empty label"),
            ("a_b.c", "\"a_b\""),
            (long_label.as_str(), "longer than 63"),
            (long_total.as_str(), "too long"),
        ] {
            assert_err(validate_network_domain(bad), 431, why);
        }
        validate_network_domain(&"a".repeat(63)).unwrap();
    }

    #[test]
    fn port_ranges() {
        let r = PortRange::new("publicport", 80, None, 1).unwrap();
        assert_eq!((r.start, r.end, r.len()), (80, 80, 1));
        assert_eq!(PortRange::new("p", 1, Some(65535), 1).unwrap().len(), 65535);
        assert_err(
            PortRange::new("publicport", 0, None, 1),
            431,
            "publicport start port 0",
        );
        assert_err(
            PortRange::new("publicport", 80, Some(70000), 1),
            431,
            "70000",
        );
        assert_err(PortRange::new("publicport", 90, Some(80), 1), 431, "90-80");
        assert!(PortRange::new("p", 0, None, 0).is_ok());
        let a = PortRange::new("p", 80, Some(90), 1).unwrap();
        let b = PortRange::new("p", 90, Some(95), 1).unwrap();
        let c = PortRange::new("p", 91, Some(95), 1).unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a) && !a.overlaps(&c));
        assert_eq!(a.to_string(), "80-90");
    }

    #[test]
    fn names_and_lengths() {
        check_name("name", "web").unwrap();
        assert_err(check_name("name", "  "), 431, "name must not be empty");
        assert_err(check_name("name", &"x".repeat(256)), 431, "255");
        check_length("displaytext", &"é".repeat(255), 255).unwrap();
    }

    #[test]
    fn transports() {
        assert_eq!(Transport::parse("TCP").unwrap(), Transport::Tcp);
        assert_eq!(Transport::parse("udp").unwrap().as_str(), "udp");
        assert_err(Transport::parse("icmp"), 431, "\"icmp\"");
    }
}
