//! Site-to-site VPN rules (CloudStack's `Site2SiteVpnManagerImpl` and
//! `NetUtils.isValidS2SVpnPolicy`): customer gateway parameters, the peer's
//! CIDR list, and the checks of a new connection against its VPC and the
//! VPC's other connections. Texts are CloudStack's.

use ipnet::Ipv4Net;

use crate::error::Error;

/// CloudStack's `site2site.vpn.customergateway.subnets.limit` default.
pub const DEFAULT_SUBNETS_LIMIT: i64 = 10;
/// CloudStack's `site2site.vpn.vpngateway.connection.limit` default.
pub const DEFAULT_CONNECTION_LIMIT: i64 = 4;
/// The longest lifetime either phase may have (one day).
pub const MAX_LIFETIME: i64 = 86_400;
/// Phase 1 lifetime when none is given (one day).
pub const DEFAULT_IKE_LIFETIME: i64 = 86_400;
/// Phase 2 lifetime when none is given (one hour).
pub const DEFAULT_ESP_LIFETIME: i64 = 3_600;
/// The IKE versions `ikeversion` takes; `ike` (the default) initiates IKEv2
/// and answers either.
pub const IKE_VERSIONS: &[&str] = &["ike", "ikev1", "ikev2"];
/// The longest pre-shared key accepted (strongSwan takes far longer; this
/// bounds what a file and a gRPC message carry).
pub const MAX_PSK_LEN: usize = 256;

const CIPHERS: &[&str] = &["3des", "aes128", "aes192", "aes256"];
const HASHES: &[&str] = &["md5", "sha1", "sha256", "sha384", "sha512"];
const DH_GROUPS: &[&str] = &[
    "modp1024", "modp1536", "modp2048", "modp3072", "modp4096", "modp6144", "modp8192",
];

/// Which policy a check is about: IKE needs a DH group (strongSwan requires
/// one for phase 1), ESP may go without (no PFS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    Ike,
    Esp,
}

/// One proposal of a policy: `cipher-hash[;dhgroup]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub cipher: String,
    pub hash: String,
    pub dh_group: Option<String>,
}

/// A policy (`aes128-sha1;modp1536,aes256-sha256;modp2048`) as proposals, or
/// `None` when CloudStack would refuse it.
pub fn parse_policy(kind: PolicyKind, policy: &str) -> Option<Vec<Proposal>> {
    if policy.is_empty() {
        return None;
    }
    policy
        .split(',')
        .map(|one| {
            let (cipher_hash, group) = match one.split_once(';') {
                Some((ch, g)) => (ch, Some(g)),
                None => (one, None),
            };
            let (cipher, hash) = cipher_hash.split_once('-')?;
            if !CIPHERS.contains(&cipher) || !HASHES.contains(&hash) {
                return None;
            }
            match group {
                None if kind == PolicyKind::Ike => None,
                Some(g) if !DH_GROUPS.contains(&g) => None,
                _ => Some(Proposal {
                    cipher: cipher.to_string(),
                    hash: hash.to_string(),
                    dh_group: group.map(str::to_string),
                }),
            }
        })
        .collect()
}

/// The proposal in strongSwan's syntax (`aes128-sha1-modp1536`).
pub fn strongswan_proposal(p: &Proposal) -> String {
    match &p.dh_group {
        Some(g) => format!("{}-{}-{g}", p.cipher, p.hash),
        None => format!("{}-{}", p.cipher, p.hash),
    }
}

/// A customer gateway as its create or update gives it, defaults not yet
/// applied.
#[derive(Clone, Default)]
pub struct CustomerGatewayRequest<'a> {
    pub gateway: &'a str,
    pub cidr_list: &'a str,
    pub ipsec_psk: &'a str,
    pub ike_policy: &'a str,
    pub esp_policy: &'a str,
    pub ike_lifetime: Option<i64>,
    pub esp_lifetime: Option<i64>,
    pub ike_version: Option<&'a str>,
}

/// A customer gateway's checked values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedCustomerGateway {
    pub cidrs: Vec<Ipv4Net>,
    pub ike_lifetime: i64,
    pub esp_lifetime: i64,
    pub ike_version: String,
}

/// Checks a customer gateway in CloudStack's order (gateway, CIDR list,
/// policies, lifetimes, then the subnets' count and overlaps); the key is
/// checked after the policies, before the lifetimes.
pub fn check_customer_gateway(
    r: &CustomerGatewayRequest<'_>,
    subnets_limit: i64,
) -> Result<CheckedCustomerGateway, Error> {
    if !valid_gateway(r.gateway) {
        return Err(Error::invalid(format!(
            "The customer gateway ip/Domain {} is invalid!",
            r.gateway
        )));
    }
    let cidrs = parse_cidr_list(r.cidr_list).ok_or_else(|| {
        Error::invalid(format!(
            "The customer gateway peer cidr list {} contains an invalid cidr!",
            r.cidr_list
        ))
    })?;
    if parse_policy(PolicyKind::Ike, r.ike_policy).is_none() {
        return Err(Error::invalid(format!(
            "The customer gateway IKE policy {} is invalid!  Verify the required Diffie Hellman (DH) group is specified.",
            r.ike_policy
        )));
    }
    if parse_policy(PolicyKind::Esp, r.esp_policy).is_none() {
        return Err(Error::invalid(format!(
            "The customer gateway ESP policy {} is invalid!",
            r.esp_policy
        )));
    }
    check_psk(r.ipsec_psk)?;
    let ike_lifetime = r.ike_lifetime.unwrap_or(DEFAULT_IKE_LIFETIME);
    if !(0..=MAX_LIFETIME).contains(&ike_lifetime) {
        return Err(Error::invalid(format!(
            "The IKE lifetime {ike_lifetime} of vpn connection is invalid!"
        )));
    }
    let esp_lifetime = r.esp_lifetime.unwrap_or(DEFAULT_ESP_LIFETIME);
    if !(0..=MAX_LIFETIME).contains(&esp_lifetime) {
        return Err(Error::invalid(format!(
            "The ESP lifetime {esp_lifetime} of vpn connection is invalid!"
        )));
    }
    let ike_version = r.ike_version.unwrap_or("ike");
    if !IKE_VERSIONS.contains(&ike_version) {
        return Err(Error::invalid(format!(
            "The IKE version {ike_version} is invalid: use one of ike, ikev1, ikev2"
        )));
    }
    check_cidr_list(&cidrs, subnets_limit)?;
    Ok(CheckedCustomerGateway {
        cidrs,
        ike_lifetime,
        esp_lifetime,
        ike_version: ike_version.to_string(),
    })
}

/// The key goes into strongSwan's configuration as a quoted string: CloudStack
/// documents that it may hold no newline and no double quote. Control
/// characters and backslashes are refused too, so the key means the same in
/// every file it is written to.
fn check_psk(psk: &str) -> Result<(), Error> {
    if psk.is_empty() {
        return Err(Error::invalid("The IPsec pre-shared key must not be empty"));
    }
    if psk.len() > MAX_PSK_LEN {
        return Err(Error::invalid(format!(
            "The IPsec pre-shared key is longer than {MAX_PSK_LEN} characters"
        )));
    }
    if psk.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
        return Err(Error::invalid(
            "The IPsec pre-shared key cannot contain newline, double quotes, backslashes or control characters",
        ));
    }
    Ok(())
}

/// An IPv4 address or a DNS name (CloudStack's `isValidIp4 ||
/// verifyDomainName`).
pub fn valid_gateway(gateway: &str) -> bool {
    if gateway.parse::<std::net::Ipv4Addr>().is_ok() {
        return true;
    }
    // A dotted quad that does not parse is no name either.
    if gateway
        .split('.')
        .all(|l| l.chars().all(|c| c.is_ascii_digit()))
    {
        return false;
    }
    !gateway.is_empty()
        && gateway.len() <= 253
        && gateway.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// A comma-separated list of IPv4 CIDRs (no blanks), or `None`.
pub fn parse_cidr_list(list: &str) -> Option<Vec<Ipv4Net>> {
    list.split(',')
        .map(|c| {
            let (addr, len) = c.split_once('/')?;
            let addr: std::net::Ipv4Addr = addr.parse().ok()?;
            let len: u8 = len.parse().ok()?;
            Ipv4Net::new(addr, len).ok()
        })
        .collect()
}

/// CloudStack's `checkCustomerGatewayCidrList`: at most `limit` subnets, none
/// overlapping another.
pub fn check_cidr_list(cidrs: &[Ipv4Net], limit: i64) -> Result<(), Error> {
    if i64::try_from(cidrs.len()).unwrap_or(i64::MAX) > limit {
        return Err(Error::invalid(format!(
            "Too many subnets of customer gateway! The limit is {limit}"
        )));
    }
    for (i, a) in cidrs.iter().enumerate() {
        for b in &cidrs[i + 1..] {
            if overlap(a, b) {
                return Err(Error::invalid(format!(
                    "The subnet of customer gateway {a} is overlapped with another subnet {b} of customer gateway!"
                )));
            }
        }
    }
    Ok(())
}

/// Whether two networks share an address.
pub fn overlap(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// A connection of the same VPN gateway that exists already: the name and
/// subnets of its customer gateway.
pub struct OtherConnection<'a> {
    pub customer_gateway_name: &'a str,
    pub cidrs: Vec<Ipv4Net>,
}

/// CloudStack's checks of a new connection after the duplicate check: the
/// peer's subnets are outside the VPC's CIDR, the gateway has room for one
/// more connection, and no subnet overlaps another connection's.
pub fn check_new_connection(
    customer_gateway_id: &str,
    cidrs: &[Ipv4Net],
    vpc_cidr: &Ipv4Net,
    others: &[OtherConnection<'_>],
    connection_limit: i64,
) -> Result<(), Error> {
    for cidr in cidrs {
        if overlap(vpc_cidr, cidr) {
            return Err(Error::invalid(format!(
                "The subnets of customer gateway {customer_gateway_id}'s subnet {cidr} is overlapped with VPC cidr {vpc_cidr}!"
            )));
        }
    }
    if i64::try_from(others.len()).unwrap_or(i64::MAX) >= connection_limit {
        return Err(Error::invalid(format!(
            "There are too many VPN connections with current VPN gateway! The limit is {connection_limit}"
        )));
    }
    for other in others {
        for old in &other.cidrs {
            for cidr in cidrs {
                if overlap(cidr, old) {
                    return Err(Error::invalid(format!(
                        "The new connection's remote subnet {cidr} is overlapped with existed VPN connection to customer gateway {}'s subnet {old}",
                        other.customer_gateway_name
                    )));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn request<'a>() -> CustomerGatewayRequest<'a> {
        CustomerGatewayRequest {
            gateway: "198.51.100.20",
            cidr_list: "10.20.0.0/16,10.30.0.0/24",
            ipsec_psk: "secret key",
            ike_policy: "aes128-sha1;modp1536",
            esp_policy: "aes128-sha1",
            ..Default::default()
        }
    }

    #[test]
    fn ike_policies_need_a_dh_group_and_esp_policies_do_not() {
        assert!(parse_policy(PolicyKind::Ike, "aes128-sha1").is_none());
        assert!(parse_policy(PolicyKind::Esp, "aes128-sha1").is_some());
        let p = parse_policy(PolicyKind::Ike, "aes256-sha256;modp2048,3des-md5;modp1024").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(strongswan_proposal(&p[0]), "aes256-sha256-modp2048");
        assert_eq!(strongswan_proposal(&p[1]), "3des-md5-modp1024");
    }

    #[test]
    fn unknown_ciphers_hashes_groups_and_blank_proposals_are_refused() {
        for bad in [
            "",
            "aes128",
            "des-sha1;modp1024",
            "aes128-sha3;modp1024",
            "aes128-sha1;modp768",
            "aes128-sha1;modp1024,",
            "aes128-sha1-modp1024",
        ] {
            assert!(parse_policy(PolicyKind::Ike, bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn defaults_apply_and_lifetimes_over_a_day_are_refused() {
        let ok = check_customer_gateway(&request(), DEFAULT_SUBNETS_LIMIT).unwrap();
        assert_eq!((ok.ike_lifetime, ok.esp_lifetime), (86_400, 3_600));
        assert_eq!(ok.ike_version, "ike");
        let r = CustomerGatewayRequest {
            ike_lifetime: Some(86_401),
            ..request()
        };
        let e = check_customer_gateway(&r, DEFAULT_SUBNETS_LIMIT).unwrap_err();
        assert_eq!(
            e.text(),
            "The IKE lifetime 86401 of vpn connection is invalid!"
        );
        let r = CustomerGatewayRequest {
            esp_lifetime: Some(90_000),
            ..request()
        };
        let e = check_customer_gateway(&r, DEFAULT_SUBNETS_LIMIT).unwrap_err();
        assert!(e.text().contains("ESP lifetime 90000"), "{}", e.text());
    }

    #[test]
    fn gateway_may_be_an_address_or_a_name_but_not_a_bad_quad() {
        assert!(valid_gateway("203.0.113.9"));
        assert!(valid_gateway("vpn.example.org"));
        assert!(!valid_gateway("300.1.1.1"));
        assert!(!valid_gateway("bad name"));
        assert!(!valid_gateway(""));
    }

    #[test]
    fn keys_that_would_break_a_quoted_string_are_refused() {
        for bad in ["", "a\"b", "a\nb", "a\\b"] {
            let r = CustomerGatewayRequest {
                ipsec_psk: bad,
                ..request()
            };
            assert!(check_customer_gateway(&r, 10).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn overlapping_or_too_many_peer_subnets_are_refused() {
        let r = CustomerGatewayRequest {
            cidr_list: "10.20.0.0/16,10.20.5.0/24",
            ..request()
        };
        let e = check_customer_gateway(&r, 10).unwrap_err();
        assert_eq!(
            e.text(),
            "The subnet of customer gateway 10.20.0.0/16 is overlapped with another subnet 10.20.5.0/24 of customer gateway!"
        );
        let e = check_customer_gateway(&request(), 1).unwrap_err();
        assert_eq!(
            e.text(),
            "Too many subnets of customer gateway! The limit is 1"
        );
        let r = CustomerGatewayRequest {
            cidr_list: "10.20.0.0/16, 10.3.0.0/24",
            ..request()
        };
        assert!(check_customer_gateway(&r, 10).is_err());
    }

    #[test]
    fn a_connection_may_not_reach_into_its_vpc_or_another_connections_subnets() {
        let vpc = net("10.1.0.0/16");
        let e = check_new_connection("cg", &[net("10.1.5.0/24")], &vpc, &[], 4).unwrap_err();
        assert!(e.text().contains("overlapped with VPC cidr 10.1.0.0/16"));
        let other = OtherConnection {
            customer_gateway_name: "office",
            cidrs: vec![net("10.9.0.0/16")],
        };
        let e = check_new_connection("cg", &[net("10.9.1.0/24")], &vpc, &[other], 4).unwrap_err();
        assert_eq!(
            e.text(),
            "The new connection's remote subnet 10.9.1.0/24 is overlapped with existed VPN connection to customer gateway office's subnet 10.9.0.0/16"
        );
        let full: Vec<OtherConnection> = (0..4)
            .map(|i| OtherConnection {
                customer_gateway_name: "x",
                cidrs: vec![net(&format!("10.{}.0.0/16", 100 + i))],
            })
            .collect();
        let e = check_new_connection("cg", &[net("10.50.0.0/16")], &vpc, &full, 4).unwrap_err();
        assert!(e.text().contains("The limit is 4"));
        check_new_connection("cg", &[net("10.50.0.0/16")], &vpc, &full[..3], 4).unwrap();
    }
}
