//! Source NAT, static routes, port forwarding, static NAT and load balancers,
//! and the conflicts between rules that claim the same public port.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use vpc_proto::v1 as pb;

use super::nics::nic_ref;
use super::{Result, bad, ipv4, l4, missing, network4, networks4, port, port_range, text};
use crate::model::*;

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

pub(super) fn source_nat(router: &Router, wire: &[pb::SourceNatRule]) -> Result<Vec<SourceNat>> {
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

pub(super) fn static_routes(router: &Router, wire: &[pb::StaticRoute]) -> Result<Vec<StaticRoute>> {
    let link_local: Ipv4Net = "169.254.0.0/16".parse().expect("constant");
    let mut out: Vec<StaticRoute> = Vec::new();
    for (i, r) in wire.iter().enumerate() {
        let f = |name: &str| format!("static_routes[{i}].{name}");
        text::identifier(&f("id"), &r.id)?;
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

/// PF ranges wider than this with a port shift are refused: each shifted port
/// becomes one map element.
pub const MAX_SHIFTED_PORTS: u32 = 4096;

pub(super) fn port_forwards(
    router: &Router,
    wire: &[pb::PortForwardingRule],
) -> Result<Vec<PortForward>> {
    port_forwards_from(router, wire, 0)
}

/// [`port_forwards`] of the rules `wire`, the first of which stands at
/// index `first` of its list (the index the errors name).
pub(super) fn port_forwards_from(
    router: &Router,
    wire: &[pb::PortForwardingRule],
    first: usize,
) -> Result<Vec<PortForward>> {
    let mut out = Vec::with_capacity(wire.len());
    for (i, r) in (first..).zip(wire) {
        let f = |name: &str| format!("port_forwarding_rules[{i}].{name}");
        text::identifier(&f("id"), &r.id)?;
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
            id: r.id.as_str().into(),
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

pub(super) fn static_nats(router: &Router, wire: &[pb::StaticNatRule]) -> Result<Vec<StaticNat>> {
    let mut out: Vec<StaticNat> = Vec::with_capacity(wire.len());
    let (mut publics, mut privates) = (HashSet::new(), HashSet::new());
    for (i, r) in wire.iter().enumerate() {
        let nat = static_nat(router, i, r)?;
        let f = |name: &str| format!("static_nat_rules[{i}].{name}");
        if !publics.insert(nat.public_ip) {
            return Err(bad(
                f("public_ip"),
                format!("{} is mapped twice", nat.public_ip),
            ));
        }
        if !privates.insert(nat.private_ip) {
            return Err(bad(
                f("private_ip"),
                format!("{} already has a static NAT IP", nat.private_ip),
            ));
        }
        out.push(nat);
    }
    Ok(out)
}

/// One static NAT rule, the `i`th of its list, checked alone (what
/// [`static_nats`] checks but for the addresses mapped twice).
fn static_nat(router: &Router, i: usize, r: &pb::StaticNatRule) -> Result<StaticNat> {
    let f = |name: &str| format!("static_nat_rules[{i}].{name}");
    text::identifier(&f("id"), &r.id)?;
    let held = held_ip(router, &f("public_ip"), &r.public_ip)?;
    if held.source_nat {
        return Err(bad(
            f("public_ip"),
            format!("{} is the source-NAT IP", held.address),
        ));
    }
    let private_ip = in_tier(router, &f("private_ip"), &r.private_ip)?;
    Ok(StaticNat {
        public_ip: held.address,
        private_ip,
        index: held.index,
    })
}

/// The static NATs `wire` (the first at index `first` of its list), each
/// checked alone; `None` when one is refused (the whole list's check then
/// names the first rule at fault, which may be another one).
pub(super) fn static_nats_alone(
    router: &Router,
    wire: &[pb::StaticNatRule],
    first: usize,
) -> Option<Vec<StaticNat>> {
    (first..)
        .zip(wire)
        .map(|(i, r)| static_nat(router, i, r).ok())
        .collect()
}

/// Whether the static NATs of `router` at `changed`, put among the others
/// (valid together before), leave every public and private address mapped
/// once and take no public IP a port forward or load balancer uses: what
/// [`static_nats`] and [`check_public_port_conflicts`] would find for them.
/// One pass over the router's rules; nothing is formatted.
pub(super) fn static_nats_clear(router: &Router, changed: std::ops::Range<usize>) -> bool {
    let nats = &router.static_nats;
    let mut publics: Vec<Ipv4Addr> = nats[changed.clone()].iter().map(|s| s.public_ip).collect();
    let mut privates: Vec<Ipv4Addr> = nats[changed.clone()].iter().map(|s| s.private_ip).collect();
    for list in [&mut publics, &mut privates] {
        list.sort_unstable();
        if list.windows(2).any(|w| w[0] == w[1]) {
            return false;
        }
    }
    let (before, after) = (&nats[..changed.start], &nats[changed.end..]);
    let kept = before.iter().chain(after);
    let taken = |list: &[Ipv4Addr], ip: &Ipv4Addr| list.binary_search(ip).is_ok();
    if kept
        .into_iter()
        .any(|s| taken(&publics, &s.public_ip) || taken(&privates, &s.private_ip))
    {
        return false;
    }
    let claimed = router
        .port_forwards
        .iter()
        .map(|r| r.public_ip)
        .chain(router.load_balancers.iter().map(|r| r.public_ip));
    !claimed.into_iter().any(|ip| taken(&publics, &ip))
}

pub(super) fn load_balancers(
    router: &Router,
    wire: &[pb::LoadBalancerRule],
) -> Result<Vec<LoadBalancer>> {
    let mut out = Vec::with_capacity(wire.len());
    for (i, r) in wire.iter().enumerate() {
        let f = |name: &str| format!("load_balancer_rules[{i}].{name}");
        text::identifier(&f("id"), &r.id)?;
        text::name(&f("name"), &r.name)?;
        let algorithm = match pb::LbAlgorithm::try_from(r.algorithm) {
            Ok(pb::LbAlgorithm::RoundRobin) => Algorithm::RoundRobin,
            Ok(pb::LbAlgorithm::Source) => Algorithm::SourceHash,
            Ok(pb::LbAlgorithm::LeastConn) => Algorithm::LeastConn,
            _ => {
                return Err(bad(
                    f("algorithm"),
                    "is required (ROUND_ROBIN, SOURCE or LEAST_CONN)",
                ));
            }
        };
        let public_ip = held_ip(router, &f("public_ip"), &r.public_ip)?.address;
        let protocol = l4(&f("protocol"), r.protocol)?;
        // HAProxy, which serves least connections, proxies TCP only.
        if algorithm == Algorithm::LeastConn && protocol != L4::Tcp {
            return Err(bad(
                f("algorithm"),
                "LEAST_CONN balances TCP only (the router's HAProxy serves it); use ROUND_ROBIN or SOURCE for UDP",
            ));
        }
        let public_port = port(&f("public_port"), r.public_port)?;
        let stickiness = super::sticky::stickiness(
            &f("stickiness"),
            r.stickiness.as_ref(),
            protocol == L4::Tcp,
            (&public_ip.to_string(), u32::from(public_port)),
        )?;
        let backends = r
            .backends
            .iter()
            .enumerate()
            .map(|(k, b)| {
                let bf = |name: &str| f(&format!("backends[{k}].{name}"));
                text::identifier(&bf("vm_id"), &b.vm_id)?;
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
            stickiness,
        });
    }
    Ok(out)
}

/// Two rules may not claim the same public IP, protocol and port, and a
/// static NAT IP takes no other rule (CloudStack: one purpose per IP).
///
/// The claims are sorted by IP, protocol and first port, so an overlap is
/// always with the claim that reaches furthest among those before it: one
/// sort and one pass, O(n log n) for n rules. A claim's field name is
/// written only for the error.
pub(super) fn check_public_port_conflicts(router: &Router) -> Result<()> {
    struct Claim {
        ip: Ipv4Addr,
        protocol: L4,
        ports: (u16, u16),
        /// Position in the request: port forwards first, then balancers.
        order: usize,
    }
    let forwards = router.port_forwards.len();
    let field = |order: usize| {
        if order < forwards {
            format!("port_forwarding_rules[{order}]")
        } else {
            format!("load_balancer_rules[{}]", order - forwards)
        }
    };
    let static_nat_ips: HashSet<Ipv4Addr> =
        router.static_nats.iter().map(|s| s.public_ip).collect();
    let pf = router
        .port_forwards
        .iter()
        .map(|r| (r.public_ip, r.protocol, r.public_ports));
    let lb = router
        .load_balancers
        .iter()
        .map(|r| (r.public_ip, r.protocol, (r.public_port, r.public_port)));
    let mut claims = Vec::with_capacity(forwards + router.load_balancers.len());
    for (order, (ip, protocol, ports)) in pf.chain(lb).enumerate() {
        if static_nat_ips.contains(&ip) {
            return Err(bad(
                format!("{}.public_ip", field(order)),
                format!("{ip} is used for static NAT"),
            ));
        }
        claims.push(Claim {
            ip,
            protocol,
            ports,
            order,
        });
    }
    claims.sort_by_key(|c| (c.ip, c.protocol, c.ports.0, c.order));
    // Every claim overlapping an earlier one (in this order) overlaps the
    // earlier claim that reaches furthest, so only that one is kept. The pair
    // found first is reported, naming its later rule in request order.
    let mut reach: Option<&Claim> = None;
    for claim in &claims {
        match reach {
            Some(r) if r.ip == claim.ip && r.protocol == claim.protocol => {
                if claim.ports.0 <= r.ports.1 {
                    let (earlier, later) = if r.order < claim.order {
                        (r, claim)
                    } else {
                        (claim, r)
                    };
                    return Err(bad(
                        format!("{}.public_ip", field(later.order)),
                        format!(
                            "{} {} {}-{} conflicts with {}",
                            later.ip,
                            later.protocol.name(),
                            later.ports.0,
                            later.ports.1,
                            field(earlier.order)
                        ),
                    ));
                }
                if claim.ports.1 > r.ports.1 {
                    reach = Some(claim);
                }
            }
            _ => reach = Some(claim),
        }
    }
    Ok(())
}

/// Whether the port forwards of `router` at `changed`, put among the
/// other claims (which held no conflict together before), claim no public
/// port another rule claims and no static NAT IP: what
/// [`check_public_port_conflicts`] would find for them. The changed claims
/// are sorted (a handful for a one-rule change) and every other claim is
/// looked up among them: one pass over the router's rules, O(n log k),
/// nothing allocated per rule or formatted.
pub(super) fn port_forwards_clear(router: &Router, changed: std::ops::Range<usize>) -> bool {
    let mut claims: Vec<(Ipv4Addr, L4, (u16, u16))> = router.port_forwards[changed.clone()]
        .iter()
        .map(|r| (r.public_ip, r.protocol, r.public_ports))
        .collect();
    if claims.is_empty() {
        return true;
    }
    if router
        .static_nats
        .iter()
        .any(|s| claims.iter().any(|c| c.0 == s.public_ip))
    {
        return false;
    }
    claims.sort_unstable();
    // Sorted by first port, intervals that do not overlap their successor
    // overlap nothing: their ends then grow with their starts.
    let same_key =
        |a: &(Ipv4Addr, L4, (u16, u16)), b: &(Ipv4Addr, L4, (u16, u16))| a.0 == b.0 && a.1 == b.1;
    if claims
        .windows(2)
        .any(|w| same_key(&w[0], &w[1]) && w[1].2.0 <= w[0].2.1)
    {
        return false;
    }
    // The first changed claim of the same IP and protocol ending at or
    // after `first` is the only one that can overlap [first, last].
    let overlaps = |ip: Ipv4Addr, protocol: L4, (first, last): (u16, u16)| {
        let k = claims.partition_point(|c| (c.0, c.1, c.2.1) < (ip, protocol, first));
        claims
            .get(k)
            .is_some_and(|c| c.0 == ip && c.1 == protocol && c.2.0 <= last)
    };
    let forwards = &router.port_forwards;
    let kept = forwards[..changed.start]
        .iter()
        .chain(&forwards[changed.end..])
        .map(|r| (r.public_ip, r.protocol, r.public_ports));
    let balancers = router
        .load_balancers
        .iter()
        .map(|r| (r.public_ip, r.protocol, (r.public_port, r.public_port)));
    !kept
        .chain(balancers)
        .any(|(ip, protocol, ports)| overlaps(ip, protocol, ports))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use proptest::prelude::*;

    use super::*;

    fn forward(ip: u8, protocol: L4, ports: (u16, u16)) -> PortForward {
        PortForward {
            id: "".into(),
            public_ip: Ipv4Addr::new(203, 0, 113, ip),
            protocol,
            public_ports: ports,
            private_ip: Ipv4Addr::new(10, 1, 1, 5),
            private_ports: ports,
            sources: Vec::new(),
        }
    }

    /// The pairwise check the sweep replaces.
    fn conflicts_pairwise(router: &Router) -> bool {
        let f = &router.port_forwards;
        (0..f.len()).any(|i| {
            (0..i).any(|j| {
                f[i].public_ip == f[j].public_ip
                    && f[i].protocol == f[j].protocol
                    && f[i].public_ports.0 <= f[j].public_ports.1
                    && f[j].public_ports.0 <= f[i].public_ports.1
            })
        })
    }

    #[test]
    fn fifty_thousand_port_forwards_are_checked_in_well_under_a_second() {
        // Pairwise, this is 1.25 billion comparisons.
        let mut router = Router {
            port_forwards: (1..=50_000u16)
                .map(|p| forward((p % 3) as u8 + 10, L4::Tcp, (p, p)))
                .collect(),
            ..Router::default()
        };
        let started = Instant::now();
        check_public_port_conflicts(&router).unwrap();
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
        // One wide range at the end overlaps thousands of them.
        router
            .port_forwards
            .push(forward(11, L4::Tcp, (40_000, 40_100)));
        let err = check_public_port_conflicts(&router).unwrap_err();
        assert_eq!(err.field, "port_forwarding_rules[50000].public_ip", "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    proptest! {
        #[test]
        fn the_sweep_finds_a_conflict_exactly_when_a_pair_overlaps(
            rules in proptest::collection::vec(
                (0u8..3, any::<bool>(), 1u16..60, 0u16..8),
                0..24,
            )
        ) {
            let router = Router {
                port_forwards: rules
                    .iter()
                    .map(|&(ip, udp, first, width)| {
                        let protocol = if udp { L4::Udp } else { L4::Tcp };
                        forward(ip + 10, protocol, (first, first + width))
                    })
                    .collect(),
                ..Router::default()
            };
            let found = check_public_port_conflicts(&router);
            prop_assert_eq!(found.is_err(), conflicts_pairwise(&router), "{:?}", found);
        }
    }
}
