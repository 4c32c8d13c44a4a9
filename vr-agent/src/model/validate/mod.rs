//! Wire form to validated model: every field checked, every reference resolved.
//!
//! One submodule per group of resources: `nics` (NICs, tiers, public IPs),
//! `rules` (ACLs), `nat` (source NAT, static routes, port forwarding, static
//! NAT, load balancers and their conflicts), `dhcp` (leases), `vmdata`
//! (what VMs read from the metadata and password servers) and `vpn`
//! (site-to-site VPN connections).

mod dhcp;
pub mod limits;
mod nat;
#[cfg(test)]
mod nat_change_tests;
mod nics;
mod rules;
mod sticky;
pub mod text;
pub mod vmdata;
mod vpn;

use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};
use vpc_proto::v1 as pb;

use super::*;
pub(crate) use text::{domain, hostname, shown};

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
        .map_err(|_| bad(field, format!("{} is not an IPv4 address", shown(value))))
}

fn ip(field: &str, value: &str) -> Result<IpAddr> {
    value
        .parse()
        .map_err(|_| bad(field, format!("{} is not an IP address", shown(value))))
}

/// A network CIDR whose host bits are zero.
fn network4(field: &str, value: &str) -> Result<Ipv4Net> {
    if value.is_empty() {
        return Err(bad(field, "is required"));
    }
    let net: Ipv4Net = value
        .parse()
        .map_err(|_| bad(field, format!("{} is not an IPv4 CIDR", shown(value))))?;
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
        .map_err(|_| bad(field, format!("{} is not a CIDR", shown(value))))?;
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
        .map_err(|_| bad(field, format!("{} is not a MAC address", shown(value))))
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

impl Router {
    /// Validates a desired state and resolves its references, under the
    /// default [`limits::Limits`].
    pub fn from_config(config: &pb::RouterConfig) -> Result<Router> {
        Self::from_config_with(config, &limits::Limits::default())
    }

    /// `self` with the port forwards `wire` in place of its own, checked as
    /// [`Router::from_config_with`] checks them, with the same errors;
    /// `before` is the list `self` was validated from. Only the rules
    /// between those both lists begin and end with are parsed (the others
    /// are the same wire rules, checked against the same router), and
    /// their public ports are checked against the claims of the rest
    /// ([`nat::port_forwards_clear`]); a conflict found so is reported by
    /// the whole check, which names the pair the whole state names. Nothing
    /// else is checked again: nothing it is checked against changes with
    /// the forwards. Returns the new router and where the lists differ.
    pub fn with_port_forwards(
        &self,
        before: &[pb::PortForwardingRule],
        wire: &[pb::PortForwardingRule],
    ) -> Result<(Router, Splice)> {
        if before.len() != self.port_forwards.len() {
            // Not the list `self` was validated from: checked whole.
            let forwards = nat::port_forwards(self, wire)?;
            let router = self.with_nat(forwards, self.static_nats.clone());
            nat::check_public_port_conflicts(&router)?;
            return Ok((router, Splice::whole(before.len(), wire.len())));
        }
        let splice = Splice::of(before, wire);
        let parsed = nat::port_forwards_from(self, &wire[splice.inserted_range()], splice.at)?;
        let forwards = splice.apply(&self.port_forwards, parsed);
        let router = self.with_nat(forwards, self.static_nats.clone());
        if !nat::port_forwards_clear(&router, splice.inserted_range()) {
            nat::check_public_port_conflicts(&router)?;
        }
        Ok((router, splice))
    }

    /// [`Router::with_port_forwards`] for the static NATs: the rules that
    /// differ are checked alone and against the others
    /// ([`nat::static_nats_clear`]); any of them refused, the whole list is
    /// checked again for the error it gives.
    pub fn with_static_nats(
        &self,
        before: &[pb::StaticNatRule],
        wire: &[pb::StaticNatRule],
    ) -> Result<(Router, Splice)> {
        let splice = Splice::of(before, wire);
        let alone = (before.len() == self.static_nats.len())
            .then(|| nat::static_nats_alone(self, &wire[splice.inserted_range()], splice.at))
            .flatten();
        if let Some(parsed) = alone {
            let nats = splice.apply(&self.static_nats, parsed);
            let router = self.with_nat(self.port_forwards.clone(), nats);
            if nat::static_nats_clear(&router, splice.inserted_range()) {
                return Ok((router, splice));
            }
        }
        let nats = nat::static_nats(self, wire)?;
        let router = self.with_nat(self.port_forwards.clone(), nats);
        nat::check_public_port_conflicts(&router)?;
        Ok((router, Splice::whole(before.len(), wire.len())))
    }

    /// A copy of `self` with these NAT lists (the old ones are not copied).
    fn with_nat(&self, port_forwards: Vec<PortForward>, static_nats: Vec<StaticNat>) -> Router {
        Router {
            nics: self.nics.clone(),
            tiers: self.tiers.clone(),
            public_ips: self.public_ips.clone(),
            source_nat: self.source_nat.clone(),
            static_routes: self.static_routes.clone(),
            acls: self.acls.clone(),
            port_forwards,
            static_nats,
            load_balancers: self.load_balancers.clone(),
            dhcp: self.dhcp.clone(),
            vm_data: self.vm_data.clone(),
            vpn: self.vpn.clone(),
        }
    }

    /// Validates a desired state under `limits` (those that shape the
    /// result, such as the ACL element bound; list sizes are checked by
    /// [`limits::Limits::check`] before).
    pub fn from_config_with(config: &pb::RouterConfig, limits: &limits::Limits) -> Result<Router> {
        text::identifier("router_name", &config.router_name)?;
        text::identifier("vpc_id", &config.vpc_id)?;
        if !config.vpc_cidr.is_empty() {
            network4("vpc_cidr", &config.vpc_cidr)?;
        }
        let mut router = Router::default();
        router.nics = nics::nics(&config.nics)?;
        router.tiers = nics::tiers(&router.nics, &config.guest_networks)?;
        router.public_ips = nics::public_ips(&router.nics, &config.public_ips)?;
        router.source_nat = nat::source_nat(&router, &config.source_nat_rules)?;
        router.static_routes = nat::static_routes(&router, &config.static_routes)?;
        router.acls = rules::acls(
            &router.nics,
            &config.network_acls,
            limits.acl_elements_per_entry,
        )?;
        router.port_forwards = nat::port_forwards(&router, &config.port_forwarding_rules)?;
        router.static_nats = nat::static_nats(&router, &config.static_nat_rules)?;
        router.load_balancers = nat::load_balancers(&router, &config.load_balancer_rules)?;
        nat::check_public_port_conflicts(&router)?;
        router.dhcp = dhcp::dhcp(&router, &config.dhcp)?;
        router.vm_data = vmdata::vm_data(&router, &config.vm_data)?;
        router.vpn = vpn::vpn(&router, config.vpn.as_ref())?;
        Ok(router)
    }
}
