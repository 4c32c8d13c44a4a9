//! Wire form to validated model: every field checked, every reference resolved.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};
use vpc_proto::v1 as pb;

use super::*;

/// Whether the caller sent something malformed or referred to something the
/// router does not have. Maps to INVALID_ARGUMENT and NOT_FOUND.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidKind {
    Argument,
    NotFound,
}

/// A rejected desired state, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    pub kind: InvalidKind,
    pub field: String,
    pub message: String,
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        kind: InvalidKind::Argument,
        field: field.into(),
        message: message.into(),
    }
}

fn missing(field: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        kind: InvalidKind::NotFound,
        field: field.into(),
        message: message.into(),
    }
}

type Result<T> = std::result::Result<T, Invalid>;

fn ipv4(field: &str, value: &str) -> Result<Ipv4Addr> {
    if value.is_empty() {
        return Err(bad(field, "is required"));
    }
    value
        .parse()
        .map_err(|_| bad(field, format!("{value:?} is not an IPv4 address")))
}

fn ip(field: &str, value: &str) -> Result<IpAddr> {
    value
        .parse()
        .map_err(|_| bad(field, format!("{value:?} is not an IP address")))
}

/// A network CIDR whose host bits are zero.
fn network4(field: &str, value: &str) -> Result<Ipv4Net> {
    if value.is_empty() {
        return Err(bad(field, "is required"));
    }
    let net: Ipv4Net = value
        .parse()
        .map_err(|_| bad(field, format!("{value:?} is not an IPv4 CIDR")))?;
    if net.trunc() != net {
        return Err(bad(
            field,
            format!("{value} has host bits set (network is {})", net.trunc()),
        ));
    }
    Ok(net)
}

fn network(field: &str, value: &str) -> Result<IpNet> {
    let net: IpNet = value
        .parse()
        .map_err(|_| bad(field, format!("{value:?} is not a CIDR")))?;
    if net.trunc() != net {
        return Err(bad(
            field,
            format!("{value} has host bits set (network is {})", net.trunc()),
        ));
    }
    Ok(net)
}

fn networks4(field: &str, values: &[String]) -> Result<Vec<Ipv4Net>> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| network4(&format!("{field}[{i}]"), v))
        .collect()
}

fn mac(field: &str, value: &str) -> Result<Mac> {
    if value.is_empty() {
        return Err(bad(field, "is required"));
    }
    value
        .to_ascii_lowercase()
        .parse()
        .map_err(|_| bad(field, format!("{value:?} is not a MAC address")))
}

fn mtu(field: &str, value: u32) -> Result<Option<u32>> {
    match value {
        0 => Ok(None),
        68..=65535 => Ok(Some(value)),
        _ => Err(bad(field, format!("{value} is outside 68..65535"))),
    }
}

fn port(field: &str, value: u32) -> Result<u16> {
    match value {
        1..=65535 => Ok(value as u16),
        _ => Err(bad(field, format!("{value} is outside 1..65535"))),
    }
}

/// A range whose end defaults to its start.
fn port_range(field: &str, first: u32, last: u32) -> Result<(u16, u16)> {
    let first = port(&format!("{field}_start_port"), first)?;
    let last = if last == 0 {
        first
    } else {
        port(&format!("{field}_end_port"), last)?
    };
    if last < first {
        return Err(bad(
            format!("{field}_end_port"),
            format!("{last} is below the start port {first}"),
        ));
    }
    Ok((first, last))
}

fn l4(field: &str, value: i32) -> Result<L4> {
    match pb::Protocol::try_from(value) {
        Ok(pb::Protocol::Tcp) => Ok(L4::Tcp),
        Ok(pb::Protocol::Udp) => Ok(L4::Udp),
        _ => Err(bad(field, "must be PROTOCOL_TCP or PROTOCOL_UDP")),
    }
}

fn hostname(field: &str, value: &str) -> Result<String> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(bad(
            field,
            format!("{value:?} is not a host name (letters, digits, inner hyphens, at most 63)"),
        ))
    }
}

fn domain(field: &str, value: &str) -> Result<String> {
    if value.is_empty() {
        return Ok(String::new());
    }
    let ok = value.len() <= 253 && value.split('.').all(|label| hostname(field, label).is_ok());
    if ok {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(bad(field, format!("{value:?} is not a DNS domain")))
    }
}

impl Router {
    /// Validates a desired state and resolves its references.
    pub fn from_config(config: &pb::RouterConfig) -> Result<Router> {
        let mut router = Router::default();
        router.nics = nics(&config.nics)?;
        router.tiers = tiers(&router.nics, &config.guest_networks)?;
        router.public_ips = public_ips(&router.nics, &config.public_ips)?;
        router.source_nat = source_nat(&router, &config.source_nat_rules)?;
        router.static_routes = static_routes(&router, &config.static_routes)?;
        router.acls = acls(&router.nics, &config.network_acls)?;
        router.port_forwards = port_forwards(&router, &config.port_forwarding_rules)?;
        router.static_nats = static_nats(&router, &config.static_nat_rules)?;
        router.load_balancers = load_balancers(&router, &config.load_balancer_rules)?;
        check_public_port_conflicts(&router)?;
        router.dhcp = dhcp(&router, &config.dhcp)?;
        Ok(router)
    }
}

fn nics(wire: &[pb::Nic]) -> Result<BTreeMap<u32, Nic>> {
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
fn nic_ref<'a>(
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

fn tiers(nics: &BTreeMap<u32, Nic>, wire: &[pb::GuestNetwork]) -> Result<BTreeMap<u32, Tier>> {
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
        let cidr = network4(&f("cidr"), &g.cidr)?;
        let gateway = ipv4(&f("gateway"), &g.gateway)?;
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

fn public_ips(nics: &BTreeMap<u32, Nic>, wire: &[pb::PublicIp]) -> Result<Vec<PublicIp>> {
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

fn held_ip<'a>(router: &'a Router, field: &str, value: &str) -> Result<&'a PublicIp> {
    let address = ipv4(field, value)?;
    router
        .public_ips
        .iter()
        .find(|p| p.address == address)
        .ok_or_else(|| {
            missing(
                field,
                format!("{address} is not associated with the router"),
            )
        })
}

fn in_tier(router: &Router, field: &str, value: &str) -> Result<Ipv4Addr> {
    let address = ipv4(field, value)?;
    match router.tier_of(address) {
        Some(t) if t.gateway != address => Ok(address),
        Some(_) => Err(bad(
            field,
            format!("{address} is the router's own tier address"),
        )),
        None => Err(bad(
            field,
            format!("{address} is not inside any tier of the router"),
        )),
    }
}

fn source_nat(router: &Router, wire: &[pb::SourceNatRule]) -> Result<Vec<SourceNat>> {
    let mut out: Vec<SourceNat> = Vec::new();
    for (i, r) in wire.iter().enumerate() {
        let f = |name: &str| format!("source_nat_rules[{i}].{name}");
        let nic = nic_ref(
            &router.nics,
            &f("device_index"),
            r.device_index,
            None,
            &[Role::Public, Role::Private],
        )?;
        let held = held_ip(router, &f("nat_ip"), &r.nat_ip)?;
        if held.index != nic.index {
            return Err(bad(
                f("nat_ip"),
                format!(
                    "{} is held on eth{}, not eth{}",
                    held.address, held.index, nic.index
                ),
            ));
        }
        let mut sources = networks4(&f("source_cidrs"), &r.source_cidrs)?;
        if sources.is_empty() {
            sources = router.tier_cidrs();
        }
        if out.iter().any(|o| o.index == nic.index) {
            return Err(bad(
                f("device_index"),
                format!("eth{} has two source NAT rules", nic.index),
            ));
        }
        out.push(SourceNat {
            index: nic.index,
            nat_ip: held.address,
            sources,
        });
    }
    Ok(out)
}

fn static_routes(router: &Router, wire: &[pb::StaticRoute]) -> Result<Vec<StaticRoute>> {
    let link_local: Ipv4Net = "169.254.0.0/16".parse().expect("constant");
    let mut out: Vec<StaticRoute> = Vec::new();
    for (i, r) in wire.iter().enumerate() {
        let f = |name: &str| format!("static_routes[{i}].{name}");
        let cidr = network4(&f("cidr"), &r.cidr)?;
        if link_local.contains(&cidr.network()) || cidr.contains(&link_local.network()) {
            return Err(bad(
                f("cidr"),
                format!("{cidr} overlaps the link-local range 169.254.0.0/16"),
            ));
        }
        if let Some(t) = router
            .tiers
            .values()
            .find(|t| t.cidr.contains(&cidr.network()) || cidr.contains(&t.cidr.network()))
        {
            return Err(bad(
                f("cidr"),
                format!("{cidr} overlaps the tier {}", t.cidr),
            ));
        }
        let next_hop = ipv4(&f("next_hop"), &r.next_hop)?;
        let gateway = held_ip(router, &f("gateway_ip"), &r.gateway_ip)?;
        if !gateway.private_gateway {
            return Err(bad(
                f("gateway_ip"),
                format!("{} is not a private gateway address", gateway.address),
            ));
        }
        if !gateway.subnet().contains(&next_hop) {
            return Err(bad(
                f("next_hop"),
                format!(
                    "{next_hop} is not in the private gateway's network {}",
                    gateway.subnet()
                ),
            ));
        }
        if let Some(o) = out
            .iter()
            .find(|o| o.cidr.contains(&cidr.network()) || cidr.contains(&o.cidr.network()))
        {
            return Err(bad(
                f("cidr"),
                format!("{cidr} overlaps the static route {}", o.cidr),
            ));
        }
        out.push(StaticRoute {
            cidr,
            next_hop,
            index: gateway.index,
        });
    }
    Ok(out)
}

impl Router {
    /// This router with NIC `acl.device_index`'s ACL replaced (removed when
    /// the list is empty), validating only that ACL: a one-item change to a
    /// long list must not re-validate every other list of the router.
    pub fn with_acl(&self, acl: &pb::NetworkAcl) -> Result<Router> {
        let nic = nic_ref(
            &self.nics,
            "acl.device_index",
            acl.device_index,
            Some(("acl.mac_address", &acl.mac_address)),
            &[Role::Guest, Role::Private],
        )?;
        let mut next = self.clone();
        if acl.items.is_empty() {
            next.acls.remove(&nic.index);
        } else {
            next.acls
                .insert(nic.index, self::acl("acl.items", nic.index, &acl.items)?);
        }
        Ok(next)
    }
}

fn acls(nics: &BTreeMap<u32, Nic>, wire: &[pb::NetworkAcl]) -> Result<BTreeMap<u32, Acl>> {
    let mut out = BTreeMap::new();
    for (i, a) in wire.iter().enumerate() {
        let f = |name: &str| format!("network_acls[{i}].{name}");
        let nic = nic_ref(
            nics,
            &f("device_index"),
            a.device_index,
            Some((&f("mac_address"), &a.mac_address)),
            &[Role::Guest, Role::Private],
        )?;
        let acl = acl(&f("items"), nic.index, &a.items)?;
        if out.insert(nic.index, acl).is_some() {
            return Err(bad(
                f("device_index"),
                format!("eth{} has two ACLs", nic.index),
            ));
        }
    }
    Ok(out)
}

/// Validates one NIC's item list and sorts it by number.
pub(crate) fn acl(field: &str, index: u32, items: &[pb::AclItem]) -> Result<Acl> {
    let mut rules = Vec::with_capacity(items.len());
    let mut numbers = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let f = |name: &str| format!("{field}[{i}].{name}");
        if !numbers.insert(item.number) {
            return Err(bad(
                f("number"),
                format!("{} is used by two items", item.number),
            ));
        }
        let action = match pb::AclAction::try_from(item.action) {
            Ok(pb::AclAction::Allow) => Action::Allow,
            Ok(pb::AclAction::Deny) => Action::Deny,
            _ => return Err(bad(f("action"), "is required (ALLOW or DENY)")),
        };
        let direction = match pb::TrafficType::try_from(item.traffic_type) {
            Ok(pb::TrafficType::Ingress) => Direction::Ingress,
            Ok(pb::TrafficType::Egress) => Direction::Egress,
            _ => return Err(bad(f("traffic_type"), "is required (INGRESS or EGRESS)")),
        };
        let has_ports = item.start_port.is_some() || item.end_port.is_some();
        let has_icmp =
            item.icmp_type.is_some_and(|t| t != -1) || item.icmp_code.is_some_and(|c| c != -1);
        let protocol = pb::Protocol::try_from(item.protocol).unwrap_or(pb::Protocol::Unspecified);
        if has_ports && !matches!(protocol, pb::Protocol::Tcp | pb::Protocol::Udp) {
            return Err(bad(
                f("start_port"),
                "ports apply to TCP and UDP items only",
            ));
        }
        if has_icmp && protocol != pb::Protocol::Icmp {
            return Err(bad(
                f("icmp_type"),
                "ICMP type and code apply to ICMP items only",
            ));
        }
        let matches = match protocol {
            pb::Protocol::All => Match::All,
            pb::Protocol::Tcp | pb::Protocol::Udp => {
                let number = if protocol == pb::Protocol::Tcp { 6 } else { 17 };
                let (first, last) = match (item.start_port, item.end_port) {
                    (None, None) => (1, 65535),
                    (Some(s), e) => port_range(&f("item"), s, e.unwrap_or(s))?,
                    (None, Some(_)) => {
                        return Err(bad(f("start_port"), "is required with end_port"));
                    }
                };
                Match::Ports {
                    protocol: number,
                    first,
                    last,
                }
            }
            pb::Protocol::Icmp => {
                let byte = |name: &str, v: Option<i32>| -> Result<Option<u8>> {
                    match v {
                        None | Some(-1) => Ok(None),
                        Some(v @ 0..=255) => Ok(Some(v as u8)),
                        Some(v) => Err(bad(f(name), format!("{v} is outside -1..255"))),
                    }
                };
                Match::Icmp {
                    icmp_type: byte("icmp_type", item.icmp_type)?,
                    code: byte("icmp_code", item.icmp_code)?,
                }
            }
            pb::Protocol::Number => match item.protocol_number {
                n @ 0..=255 => Match::Protocol(n as u8),
                n => return Err(bad(f("protocol_number"), format!("{n} is outside 0..255"))),
            },
            pb::Protocol::Unspecified => return Err(bad(f("protocol"), "is required")),
        };
        let mut cidrs = item
            .cidrs
            .iter()
            .enumerate()
            .map(|(k, c)| network(&f(&format!("cidrs[{k}]")), c))
            .collect::<Result<Vec<_>>>()?;
        if cidrs.is_empty() {
            cidrs = vec![
                "0.0.0.0/0".parse().expect("constant"),
                "::/0".parse().expect("constant"),
            ];
        }
        rules.push(AclRule {
            number: item.number,
            action,
            direction,
            matches,
            cidrs,
        });
    }
    rules.sort_by_key(|r| r.number);
    Ok(Acl { index, rules })
}

/// PF ranges wider than this with a port shift are refused: each shifted port
/// becomes one map element.
pub const MAX_SHIFTED_PORTS: u32 = 4096;

fn port_forwards(router: &Router, wire: &[pb::PortForwardingRule]) -> Result<Vec<PortForward>> {
    let mut out = Vec::with_capacity(wire.len());
    for (i, r) in wire.iter().enumerate() {
        let f = |name: &str| format!("port_forwarding_rules[{i}].{name}");
        let public_ip = held_ip(router, &f("public_ip"), &r.public_ip)?.address;
        let protocol = l4(&f("protocol"), r.protocol)?;
        let public_ports = port_range(&f("public"), r.public_start_port, r.public_end_port)?;
        let private_ports = port_range(&f("private"), r.private_start_port, r.private_end_port)?;
        let width = |p: (u16, u16)| u32::from(p.1 - p.0);
        if width(public_ports) != width(private_ports) {
            return Err(bad(
                f("private_end_port"),
                "the public and private port ranges differ in length",
            ));
        }
        if public_ports != private_ports && width(public_ports) >= MAX_SHIFTED_PORTS {
            return Err(bad(
                f("public_end_port"),
                format!("a shifted port range may span at most {MAX_SHIFTED_PORTS} ports"),
            ));
        }
        out.push(PortForward {
            id: r.id.clone(),
            public_ip,
            protocol,
            public_ports,
            private_ip: in_tier(router, &f("private_ip"), &r.private_ip)?,
            private_ports,
            sources: networks4(&f("source_cidrs"), &r.source_cidrs)?,
        });
    }
    Ok(out)
}

fn static_nats(router: &Router, wire: &[pb::StaticNatRule]) -> Result<Vec<StaticNat>> {
    let mut out: Vec<StaticNat> = Vec::with_capacity(wire.len());
    for (i, r) in wire.iter().enumerate() {
        let f = |name: &str| format!("static_nat_rules[{i}].{name}");
        let held = held_ip(router, &f("public_ip"), &r.public_ip)?;
        if held.source_nat {
            return Err(bad(
                f("public_ip"),
                format!("{} is the source-NAT IP", held.address),
            ));
        }
        let private_ip = in_tier(router, &f("private_ip"), &r.private_ip)?;
        if out.iter().any(|o| o.public_ip == held.address) {
            return Err(bad(
                f("public_ip"),
                format!("{} is mapped twice", held.address),
            ));
        }
        if out.iter().any(|o| o.private_ip == private_ip) {
            return Err(bad(
                f("private_ip"),
                format!("{private_ip} already has a static NAT IP"),
            ));
        }
        out.push(StaticNat {
            public_ip: held.address,
            private_ip,
            index: held.index,
        });
    }
    Ok(out)
}

fn load_balancers(router: &Router, wire: &[pb::LoadBalancerRule]) -> Result<Vec<LoadBalancer>> {
    let mut out = Vec::with_capacity(wire.len());
    for (i, r) in wire.iter().enumerate() {
        let f = |name: &str| format!("load_balancer_rules[{i}].{name}");
        let algorithm = match pb::LbAlgorithm::try_from(r.algorithm) {
            Ok(pb::LbAlgorithm::RoundRobin) => Algorithm::RoundRobin,
            Ok(pb::LbAlgorithm::Source) => Algorithm::SourceHash,
            Ok(pb::LbAlgorithm::LeastConn) => {
                return Err(bad(
                    f("algorithm"),
                    "leastconn is not supported by the VPC router: its in-kernel balancer keeps no connection counts; use ROUND_ROBIN or SOURCE",
                ));
            }
            _ => return Err(bad(f("algorithm"), "is required (ROUND_ROBIN or SOURCE)")),
        };
        let public_ip = held_ip(router, &f("public_ip"), &r.public_ip)?.address;
        let protocol = l4(&f("protocol"), r.protocol)?;
        let public_port = port(&f("public_port"), r.public_port)?;
        let backends = r
            .backends
            .iter()
            .enumerate()
            .map(|(k, b)| {
                let bf = |name: &str| f(&format!("backends[{k}].{name}"));
                let address = in_tier(router, &bf("ip_address"), &b.ip_address)?;
                let p = if b.port == 0 { r.private_port } else { b.port };
                Ok((address, port(&bf("port"), p)?))
            })
            .collect::<Result<Vec<_>>>()?;
        out.push(LoadBalancer {
            id: r.id.clone(),
            public_ip,
            protocol,
            public_port,
            algorithm,
            backends,
            sources: networks4(&f("source_cidrs"), &r.source_cidrs)?,
        });
    }
    Ok(out)
}

/// Two rules may not claim the same public IP, protocol and port, and a
/// static NAT IP takes no other rule (CloudStack: one purpose per IP).
fn check_public_port_conflicts(router: &Router) -> Result<()> {
    let mut claims: Vec<(Ipv4Addr, L4, (u16, u16), String)> = Vec::new();
    let pf = router.port_forwards.iter().enumerate().map(|(i, r)| {
        (
            r.public_ip,
            r.protocol,
            r.public_ports,
            format!("port_forwarding_rules[{i}]"),
        )
    });
    let lb = router.load_balancers.iter().enumerate().map(|(i, r)| {
        (
            r.public_ip,
            r.protocol,
            (r.public_port, r.public_port),
            format!("load_balancer_rules[{i}]"),
        )
    });
    for (ip, proto, ports, field) in pf.chain(lb) {
        if router.static_nats.iter().any(|s| s.public_ip == ip) {
            return Err(bad(
                format!("{field}.public_ip"),
                format!("{ip} is used for static NAT"),
            ));
        }
        if let Some((_, _, _, other)) = claims.iter().find(|(oip, oproto, oports, _)| {
            *oip == ip && *oproto == proto && oports.0 <= ports.1 && ports.0 <= oports.1
        }) {
            return Err(bad(
                format!("{field}.public_ip"),
                format!(
                    "{ip} {} {}-{} conflicts with {other}",
                    proto.name(),
                    ports.0,
                    ports.1
                ),
            ));
        }
        claims.push((ip, proto, ports, field));
    }
    Ok(())
}

fn dhcp(router: &Router, wire: &[pb::TierDhcp]) -> Result<BTreeMap<u32, Vec<DhcpHost>>> {
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
    for (k, e) in entries.iter().enumerate() {
        let f = |name: &str| format!("{field}[{k}].{name}");
        let host = DhcpHost {
            mac: mac(&f("mac_address"), &e.mac_address)?,
            ip: ipv4(&f("ip_address"), &e.ip_address)?,
            hostname: hostname(&f("hostname"), &e.hostname)?,
            default_gateway: e.default_gateway,
        };
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
        if hosts.iter().any(|h| h.mac == host.mac) {
            return Err(bad(
                f("mac_address"),
                format!("{} has two leases", host.mac),
            ));
        }
        if hosts.iter().any(|h| h.ip == host.ip) {
            return Err(bad(f("ip_address"), format!("{} is leased twice", host.ip)));
        }
        if hosts.iter().any(|h| h.hostname == host.hostname) {
            return Err(bad(
                f("hostname"),
                format!("{} names two VMs", host.hostname),
            ));
        }
        hosts.push(host);
    }
    Ok(hosts)
}
