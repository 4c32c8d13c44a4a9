//! Public IPs of a VPC: purposes, tier binding, port conflicts and release
//! (reference §2.5, §3.5).

use std::net::Ipv4Addr;

use super::{PortRange, Transport};
use crate::error::Error;

/// A public IP acquired for a VPC, with the `T` id type of tiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicIp<T> {
    pub address: Ipv4Addr,
    /// The VPC's source-NAT address.
    pub source_nat: bool,
    /// Static NAT is enabled on it.
    pub static_nat: bool,
    /// The tier it is bound to (`associatednetworkid`), if any yet.
    pub tier: Option<T>,
}

/// What a port rule on a public IP is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RulePurpose {
    PortForwarding,
    LoadBalancing,
}

impl RulePurpose {
    fn label(self) -> &'static str {
        match self {
            Self::PortForwarding => "port forwarding",
            Self::LoadBalancing => "load balancing",
        }
    }
}

/// An existing (non-revoked) PF or LB rule on the IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRule {
    pub purpose: RulePurpose,
    pub protocol: Transport,
    pub public: PortRange,
}

/// Static NAT may be enabled only on an IP that is not the source-NAT IP
/// and carries no PF/LB rules.
pub fn check_enable_static_nat<T>(ip: &PublicIp<T>, rules: &[PortRule]) -> Result<(), Error> {
    if ip.source_nat {
        return Err(Error::invalid(format!(
            "Can't enable static nat on ip address {}: it is the VPC's source nat ip",
            ip.address
        )));
    }
    if ip.static_nat {
        return Err(Error::conflict(format!(
            "Static nat is already enabled on ip address {}",
            ip.address
        )));
    }
    if let Some(r) = rules.first() {
        // CloudStack's wording (FirewallManagerImpl.detectRulesConflict).
        return Err(Error::conflict(format!(
            "There is already firewall rule specified for the ip address {}: static nat can't be \
             enabled while it has {} rules (e.g. {} {})",
            ip.address,
            r.purpose.label(),
            r.protocol.as_str(),
            r.public
        )));
    }
    Ok(())
}

/// A new PF or LB rule may go on the IP when the IP is neither the
/// source-NAT IP nor a static NAT IP, and no existing rule of the same
/// protocol uses any of its public ports.
pub fn check_new_port_rule<T>(
    ip: &PublicIp<T>,
    new: &PortRule,
    existing: &[PortRule],
) -> Result<(), Error> {
    if ip.source_nat {
        return Err(Error::invalid(format!(
            "Can't create {} rule on ip address {}: it is the VPC's source nat ip",
            new.purpose.label(),
            ip.address
        )));
    }
    if ip.static_nat {
        return Err(Error::conflict(format!(
            "There is 1 to 1 Nat rule specified for the ip address {}: can't create {} rule \
             while static nat is enabled on it",
            ip.address,
            new.purpose.label()
        )));
    }
    if let Some(r) = existing
        .iter()
        .find(|r| r.protocol == new.protocol && r.public.overlaps(&new.public))
    {
        return Err(Error::conflict(format!(
            "The range specified, {}, conflicts with the {} rule on ports {} ({}) of ip address {}",
            new.public,
            r.purpose.label(),
            r.public,
            r.protocol.as_str(),
            ip.address
        )));
    }
    Ok(())
}

/// The tier a rule on the IP will live in. An IP already bound to a tier
/// uses that tier (a different `networkid` is refused); an unbound IP needs
/// `networkid`, and the first rule binds it there (the caller stores it).
pub fn bind_tier<T: PartialEq + Clone + std::fmt::Display>(
    ip: &PublicIp<T>,
    networkid: Option<&T>,
) -> Result<T, Error> {
    match (&ip.tier, networkid) {
        (Some(bound), None) => Ok(bound.clone()),
        (Some(bound), Some(asked)) if bound == asked => Ok(bound.clone()),
        (Some(bound), Some(asked)) => Err(Error::invalid(format!(
            "ip address {} is associated with tier {bound}, not with networkid {asked}",
            ip.address
        ))),
        (None, Some(asked)) => Ok(asked.clone()),
        (None, None) => Err(Error::invalid(format!(
            "ip address {} of the VPC is not associated with any tier yet: networkid is required",
            ip.address
        ))),
    }
}

/// disassociateIpAddress: the source-NAT IP stays while the VPC exists.
pub fn check_release<T>(ip: &PublicIp<T>, vpc_exists: bool) -> Result<(), Error> {
    if ip.source_nat && vpc_exists {
        return Err(Error::invalid(format!(
            "ip address {} is used for source nat purposes and can not be disassociated.",
            ip.address
        )));
    }
    Ok(())
}

/// The VM a PF/static NAT rule targets must have a NIC in the tier the IP
/// is (or is being) bound to.
pub fn check_vm_in_tier<T: PartialEq + std::fmt::Display>(
    vm: &str,
    vm_tiers: &[T],
    tier: &T,
) -> Result<(), Error> {
    if vm_tiers.contains(tier) {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "Virtual machine {vm} has no NIC in tier {tier}, the network of the ip address"
    )))
}

/// associateIpAddress: the owner's `public_ip` resource limit (`limit` is
/// the effective limit, -1 unlimited; `current` the addresses it holds).
pub fn check_public_ip_limit(owner: &str, current: i64, limit: i64) -> Result<(), Error> {
    super::check_account_limit("public_ip", owner, current, limit)
}

/// enableStaticNat: a VM address has at most one static NAT IP
/// (`current` is the IP already mapped to it, if any, other than `ip`).
pub fn check_vm_static_nat_free(
    vm: &str,
    ip: Ipv4Addr,
    current: Option<Ipv4Addr>,
) -> Result<(), Error> {
    match current {
        Some(other) if other != ip => Err(Error::invalid(format!(
            "Failed to enable static nat on the ip {ip} as the vm {vm} is already associated \
             with another public ip {other}"
        ))),
        _ => Ok(()),
    }
}

/// A rule needs its tier's network offering to give the service (CloudStack
/// names the services `PortForwarding`, `StaticNat`, `Lb`).
pub fn check_tier_service(tier: &str, service: &str, offered: &[&str]) -> Result<(), Error> {
    if offered.iter().any(|s| s.eq_ignore_ascii_case(service)) {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "Service {service} is not supported in tier {tier}: its network offering does not give it"
    )))
}

/// The VM address a rule targets: the VM's address in the tier, or
/// `vmguestip` when given, which must be that address (secondary addresses
/// are not supported).
pub fn target_address(
    vm: &str,
    nic_address: Ipv4Addr,
    vmguestip: Option<&str>,
) -> Result<Ipv4Addr, Error> {
    let Some(asked) = vmguestip.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(nic_address);
    };
    let asked = super::parse_ipv4("vmguestip", asked)?;
    if asked != nic_address {
        return Err(Error::invalid(format!(
            "Virtual machine {vm} has no address {asked} in the tier of the ip address; its \
             address there is {nic_address} (secondary addresses are not supported)"
        )));
    }
    Ok(asked)
}

/// updateVPC `sourcenatipaddress`: the address must already be acquired
/// for this VPC (`ip_vpc` is the VPC it is acquired for, if any).
pub fn check_new_source_nat<T: PartialEq + std::fmt::Display>(
    address: Ipv4Addr,
    ip_vpc: Option<&T>,
    vpc: &T,
) -> Result<(), Error> {
    match ip_vpc {
        Some(v) if v == vpc => Ok(()),
        _ => Err(Error::invalid(format!(
            "ip address {address} is not acquired for VPC {vpc}; acquire it first"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    fn ip(source_nat: bool, static_nat: bool, tier: Option<u32>) -> PublicIp<u32> {
        PublicIp {
            address: Ipv4Addr::new(203, 0, 113, 5),
            source_nat,
            static_nat,
            tier,
        }
    }

    fn rule(purpose: RulePurpose, protocol: Transport, start: i64, end: i64) -> PortRule {
        PortRule {
            purpose,
            protocol,
            public: PortRange::new("publicport", start, Some(end), 1).unwrap(),
        }
    }

    #[test]
    fn static_nat_on_a_free_ip() {
        check_enable_static_nat(&ip(false, false, None), &[]).unwrap();
    }

    #[test]
    fn static_nat_refusals() {
        assert_err(
            check_enable_static_nat(&ip(true, false, None), &[]),
            431,
            "source nat",
        );
        assert_err(
            check_enable_static_nat(&ip(false, true, None), &[]),
            537,
            "already enabled",
        );
        let pf = [rule(RulePurpose::PortForwarding, Transport::Tcp, 22, 22)];
        assert_err(
            check_enable_static_nat(&ip(false, false, Some(1)), &pf),
            537,
            "port forwarding rules",
        );
    }

    #[test]
    fn port_rules_share_an_ip_without_overlap() {
        let existing = [
            rule(RulePurpose::PortForwarding, Transport::Tcp, 22, 22),
            rule(RulePurpose::LoadBalancing, Transport::Tcp, 80, 90),
        ];
        let free = ip(false, false, Some(1));
        check_new_port_rule(
            &free,
            &rule(RulePurpose::LoadBalancing, Transport::Tcp, 443, 443),
            &existing,
        )
        .unwrap();
        // same port, other protocol
        check_new_port_rule(
            &free,
            &rule(RulePurpose::PortForwarding, Transport::Udp, 80, 80),
            &existing,
        )
        .unwrap();
        check_new_port_rule(
            &free,
            &rule(RulePurpose::PortForwarding, Transport::Tcp, 91, 100),
            &existing,
        )
        .unwrap();
    }

    #[test]
    fn overlapping_port_rules_conflict() {
        let existing = [rule(RulePurpose::LoadBalancing, Transport::Tcp, 80, 90)];
        let free = ip(false, false, Some(1));
        assert_err(
            check_new_port_rule(
                &free,
                &rule(RulePurpose::PortForwarding, Transport::Tcp, 85, 95),
                &existing,
            ),
            537,
            "85-95, conflicts with the load balancing rule on ports 80-90",
        );
        assert_err(
            check_new_port_rule(
                &free,
                &rule(RulePurpose::LoadBalancing, Transport::Tcp, 90, 90),
                &existing,
            ),
            537,
            "203.0.113.5",
        );
    }

    #[test]
    fn port_rules_refused_on_source_or_static_nat_ips() {
        let r = rule(RulePurpose::PortForwarding, Transport::Tcp, 22, 22);
        assert_err(
            check_new_port_rule(&ip(true, false, None), &r, &[]),
            431,
            "source nat",
        );
        assert_err(
            check_new_port_rule(&ip(false, true, Some(1)), &r, &[]),
            537,
            "static nat is enabled",
        );
    }

    #[test]
    fn tier_binding() {
        assert_eq!(bind_tier(&ip(false, false, None), Some(&7)).unwrap(), 7);
        assert_eq!(bind_tier(&ip(false, false, Some(3)), None).unwrap(), 3);
        assert_eq!(bind_tier(&ip(false, false, Some(3)), Some(&3)).unwrap(), 3);
        assert_err(
            bind_tier(&ip(false, false, Some(3)), Some(&4)),
            431,
            "tier 3, not with networkid 4",
        );
        assert_err(
            bind_tier(&ip(false, false, None), None),
            431,
            "networkid is required",
        );
    }

    #[test]
    fn release() {
        check_release(&ip(false, false, Some(1)), true).unwrap();
        check_release(&ip(true, false, None), false).unwrap();
        assert_err(
            check_release(&ip(true, false, None), true),
            431,
            "used for source nat purposes",
        );
    }

    #[test]
    fn vm_must_be_in_the_tier() {
        check_vm_in_tier("vm1", &[1, 2], &2).unwrap();
        assert_err(
            check_vm_in_tier("vm1", &[1], &2),
            431,
            "vm1 has no NIC in tier 2",
        );
        assert_err(check_vm_in_tier::<u32>("vm1", &[], &2), 431, "vm1");
    }

    #[test]
    fn public_ip_limit() {
        check_public_ip_limit("a", 1, 2).unwrap();
        check_public_ip_limit("a", 50, -1).unwrap();
        let e = check_public_ip_limit("a", 2, 2)
            .map_err(crate::api::ApiError::from)
            .unwrap_err();
        assert_eq!((e.code, e.cs_code), (535, 4370));
        assert!(e.text.contains("Type = 'public_ip'"), "{}", e.text);
    }

    #[test]
    fn one_static_nat_ip_per_vm() {
        let a = Ipv4Addr::new(203, 0, 113, 5);
        let b = Ipv4Addr::new(203, 0, 113, 6);
        check_vm_static_nat_free("vm1", a, None).unwrap();
        check_vm_static_nat_free("vm1", a, Some(a)).unwrap();
        assert_err(
            check_vm_static_nat_free("vm1", a, Some(b)),
            431,
            "already associated with another public ip 203.0.113.6",
        );
    }

    #[test]
    fn tier_must_offer_the_service() {
        check_tier_service("web", "Lb", &["Dhcp", "lb"]).unwrap();
        assert_err(
            check_tier_service("web", "Lb", &["Dhcp", "PortForwarding"]),
            431,
            "Service Lb is not supported in tier web",
        );
    }

    #[test]
    fn rule_target_address() {
        let nic = Ipv4Addr::new(10, 1, 1, 20);
        assert_eq!(target_address("vm1", nic, None).unwrap(), nic);
        assert_eq!(target_address("vm1", nic, Some("")).unwrap(), nic);
        assert_eq!(target_address("vm1", nic, Some("10.1.1.20")).unwrap(), nic);
        assert_err(
            target_address("vm1", nic, Some("10.1.1.21")),
            431,
            "no address 10.1.1.21",
        );
        assert_err(target_address("vm1", nic, Some("x")), 431, "vmguestip");
    }

    #[test]
    fn new_source_nat_must_belong_to_the_vpc() {
        let a = Ipv4Addr::new(203, 0, 113, 9);
        check_new_source_nat(a, Some(&"v1"), &"v1").unwrap();
        assert_err(
            check_new_source_nat(a, Some(&"v2"), &"v1"),
            431,
            "203.0.113.9",
        );
        assert_err(
            check_new_source_nat(a, None, &"v1"),
            431,
            "not acquired for VPC v1",
        );
    }
}
