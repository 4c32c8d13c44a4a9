//! How each command changes the desired state (pure).
//!
//! A command replaces one part of the router's `RouterConfig`; removing a NIC,
//! a tier or an IP also removes what depended on it, so the result is always a
//! consistent state. The result is then validated as a whole by
//! [`Router::from_config`], so a command can never leave a state that the
//! planners would have to second-guess.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use vpc_proto::v1 as pb;

use crate::model::{Invalid, InvalidKind, Limits, Mac, Router, Splice, shown};

mod edit;
pub use edit::{Edit, Placed, apply_edit_in_place};
use edit::{few_changes, labels_equal, labels_of};

/// One command's change to the desired state.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    PlugNic(Option<pb::Nic>),
    UnplugNic {
        index: u32,
        mac: String,
    },
    SetupGuestNetwork(Option<pb::GuestNetwork>),
    DestroyGuestNetwork {
        index: u32,
    },
    IpAssoc(Vec<pb::PublicIp>),
    SetSourceNat(Vec<pb::SourceNatRule>),
    SetStaticRoutes(Vec<pb::StaticRoute>),
    SetNetworkAcl(Option<pb::NetworkAcl>),
    /// An edit of one NIC's list (EditNetworkAcl): resolved by the agent
    /// into the whole list ([`edited_acl`]) before it is applied.
    EditNetworkAcl {
        base: u64,
        acl: Option<pb::NetworkAcl>,
        removed: Vec<String>,
    },
    SetPortForwarding(Vec<pb::PortForwardingRule>),
    SetStaticNat(Vec<pb::StaticNatRule>),
    SetLoadBalancers(Vec<pb::LoadBalancerRule>),
    SetDhcpEntries(Option<pb::TierDhcp>),
    SetVmData(Option<pb::TierVmData>),
    SetVpn(Option<pb::Vpn>),
    ApplyConfig(Option<pb::RouterConfig>),
}

impl Change {
    /// The RPC name, for logs.
    pub fn rpc(&self) -> &'static str {
        match self {
            Change::PlugNic(_) => "PlugNic",
            Change::UnplugNic { .. } => "UnplugNic",
            Change::SetupGuestNetwork(_) => "SetupGuestNetwork",
            Change::DestroyGuestNetwork { .. } => "DestroyGuestNetwork",
            Change::IpAssoc(_) => "IpAssoc",
            Change::SetSourceNat(_) => "SetSourceNat",
            Change::SetStaticRoutes(_) => "SetStaticRoutes",
            Change::SetNetworkAcl(_) => "SetNetworkAcl",
            Change::EditNetworkAcl { .. } => "EditNetworkAcl",
            Change::SetPortForwarding(_) => "SetPortForwardingRules",
            Change::SetStaticNat(_) => "SetStaticNatRules",
            Change::SetLoadBalancers(_) => "SetLoadBalancerRules",
            Change::SetDhcpEntries(_) => "SetDhcpEntries",
            Change::SetVmData(_) => "SetVmData",
            Change::SetVpn(_) => "SetVpn",
            Change::ApplyConfig(_) => "ApplyConfig",
        }
    }
}

/// The whole list of the NIC `edit` names after the edit: the items of the
/// list `config` holds for it, less those named in `removed` and those an
/// item of `edit` replaces (same id), plus `edit`'s items, by number. None
/// when the NIC holds no list or another one than `edit.acl_id`: the edit
/// was made against a list this agent does not have.
pub fn edited_acl(
    config: &pb::RouterConfig,
    edit: pb::NetworkAcl,
    removed: &[String],
) -> Option<pb::NetworkAcl> {
    let held = config
        .network_acls
        .iter()
        .find(|a| a.device_index == edit.device_index)?;
    if edit.acl_id.is_empty() || held.acl_id != edit.acl_id {
        return None;
    }
    let gone: std::collections::HashSet<&str> = removed
        .iter()
        .map(String::as_str)
        .chain(edit.items.iter().map(|i| i.id.as_str()))
        .collect();
    let mut items: Vec<pb::AclItem> = held
        .items
        .iter()
        .filter(|i| !gone.contains(i.id.as_str()))
        .cloned()
        .collect();
    items.extend(edit.items);
    items.sort_by_key(|i| i.number);
    Some(pb::NetworkAcl { items, ..edit })
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, Invalid> {
    value.ok_or_else(|| Invalid {
        kind: InvalidKind::Argument,
        field: field.into(),
        message: "is required".into(),
    })
}

fn not_found(field: &str, message: String) -> Invalid {
    Invalid {
        kind: InvalidKind::NotFound,
        field: field.into(),
        message,
    }
}

fn conflict(field: &str, message: String) -> Invalid {
    Invalid {
        kind: InvalidKind::Argument,
        field: field.into(),
        message,
    }
}

/// The sizes of the lists a change carries, checked before anything else is
/// done with them.
fn check_sizes(change: &Change, limits: &Limits) -> Result<(), Invalid> {
    match change {
        Change::IpAssoc(ips) => limits.check_public_ips("ips", ips),
        Change::SetSourceNat(rules) => limits.check_source_nats("rules", rules),
        Change::SetStaticRoutes(routes) => limits.check_static_routes("routes", routes),
        Change::SetNetworkAcl(Some(acl)) => limits.check_acl("acl", acl),
        Change::SetPortForwarding(rules) => limits.check_port_forwards("rules", rules),
        Change::SetStaticNat(rules) => limits.check_static_nats("rules", rules),
        Change::SetLoadBalancers(rules) => limits.check_load_balancers("rules", rules),
        Change::SetDhcpEntries(Some(dhcp)) => limits.check_dhcp("dhcp", dhcp),
        Change::SetVmData(Some(data)) => limits.check_vm_data("vm_data", data),
        Change::ApplyConfig(Some(config)) => limits.check(config),
        Change::SetupGuestNetwork(Some(network)) => limits.check(&pb::RouterConfig {
            guest_networks: vec![network.clone()],
            ..Default::default()
        }),
        _ => Ok(()),
    }
}

/// The desired state after `change`, validated, with every list within
/// `limits` (a copy; the agent changes its state in place with
/// [`apply_in_place`]).
pub fn apply(
    config: &pb::RouterConfig,
    router: &Router,
    change: Change,
    limits: &Limits,
) -> Result<(pb::RouterConfig, Router), Invalid> {
    let mut next = config.clone();
    let (router, _) = apply_in_place(&mut next, router, change, limits)?;
    Ok((next, router))
}

/// What puts a config changed by [`apply_in_place`] back as it was.
#[derive(Debug)]
pub enum Undo {
    /// The list of the NIC `index` before (`None`: it had none); the
    /// other lists did not change.
    Acl {
        index: u32,
        before: Option<pb::NetworkAcl>,
        /// When the change was found item by item ([`few_changes`]): the
        /// numbers of the items taken out and the index in the new list of
        /// each item put in, for the journal.
        delta: Option<(Vec<u32>, Vec<u32>)>,
    },
    /// An edit of the list of the NIC `index` ([`apply_edit_in_place`]):
    /// its labels before (no items), the items it took out (in list order)
    /// and the numbers of those it put in.
    AclEdit {
        index: u32,
        labels: pb::NetworkAcl,
        taken: Vec<pb::AclItem>,
        inserted: Vec<u32>,
        /// Of each item put in, its index in the list after the edit.
        at: Vec<u32>,
    },
    /// The port forwards before, and where the list after differs from
    /// them (for the journal); nothing else changed.
    PortForwards(Vec<pb::PortForwardingRule>, Splice),
    /// The static NATs before, and where the list after differs from them.
    StaticNats(Vec<pb::StaticNatRule>, Splice),
    /// The whole config before.
    Config(Box<pb::RouterConfig>),
}

impl Undo {
    /// Puts `config` back as it was before the change.
    pub fn undo(self, config: &mut pb::RouterConfig) {
        match self {
            Undo::Acl { index, before, .. } => {
                set_acl(config, index, before);
            }
            Undo::AclEdit {
                index,
                labels,
                taken,
                inserted,
                ..
            } => {
                let Some(list) = config
                    .network_acls
                    .iter_mut()
                    .find(|a| a.device_index == index)
                else {
                    return;
                };
                // The list is in number order with every number once.
                for number in inserted {
                    if let Ok(k) = list.items.binary_search_by_key(&number, |i| i.number) {
                        list.items.remove(k);
                    }
                }
                for item in taken {
                    let k = list.items.partition_point(|i| i.number < item.number);
                    list.items.insert(k, item);
                }
                let items = std::mem::take(&mut list.items);
                *list = pb::NetworkAcl { items, ..labels };
            }
            Undo::PortForwards(before, _) => config.port_forwarding_rules = before,
            Undo::StaticNats(before, _) => config.static_nat_rules = before,
            Undo::Config(before) => *config = *before,
        }
    }

    /// Whether the change left `config` as it was.
    pub fn unchanged(&self, config: &pb::RouterConfig) -> bool {
        match self {
            // Items found changed item by item: changed, without a look
            // at the lists.
            Undo::Acl {
                delta: Some((removed, at)),
                ..
            } if !removed.is_empty() || !at.is_empty() => false,
            Undo::Acl { index, before, .. } => {
                config
                    .network_acls
                    .iter()
                    .find(|a| a.device_index == *index)
                    == before.as_ref()
            }
            Undo::AclEdit {
                index,
                labels,
                taken,
                inserted,
                ..
            } => {
                let Some(list) = config
                    .network_acls
                    .iter()
                    .find(|a| a.device_index == *index)
                else {
                    return false;
                };
                taken.len() == inserted.len()
                    && labels_equal(list, labels)
                    && taken.iter().all(|t| {
                        list.items
                            .binary_search_by_key(&t.number, |i| i.number)
                            .is_ok_and(|k| list.items[k] == *t)
                    })
            }
            // The splice is the narrowest: empty exactly when the lists are
            // equal.
            Undo::PortForwards(_, splice) | Undo::StaticNats(_, splice) => splice.is_empty(),
            Undo::Config(before) => **before == *config,
        }
    }
}

/// Puts `acl` as the list of the NIC `index` (none for `None`), in place:
/// a list that is replaced keeps its position, so nothing else moves.
fn set_acl(
    config: &mut pb::RouterConfig,
    index: u32,
    acl: Option<pb::NetworkAcl>,
) -> Option<pb::NetworkAcl> {
    let at = config
        .network_acls
        .partition_point(|a| a.device_index < index);
    let held = config
        .network_acls
        .get(at)
        .is_some_and(|a| a.device_index == index);
    match (acl, held) {
        (Some(acl), true) => Some(std::mem::replace(&mut config.network_acls[at], acl)),
        (Some(acl), false) => {
            config.network_acls.insert(at, acl);
            None
        }
        (None, true) => Some(config.network_acls.remove(at)),
        (None, false) => None,
    }
}

/// [`apply`] on `config` itself: validated first, then changed; returns the
/// new validated router and what undoes the change. An ACL change moves
/// the new list in and the old one out without copying the rest of the
/// state (a router's lists hold up to 100,000 items).
///
/// `router` is the validated form of `config`; an ACL change is validated
/// against it alone (the rest of the state is unchanged and already valid).
pub fn apply_in_place(
    config: &mut pb::RouterConfig,
    router: &Router,
    change: Change,
    limits: &Limits,
) -> Result<(Router, Undo), Invalid> {
    check_sizes(&change, limits)?;
    // The NAT lists are checked against the router they change alone and
    // swapped in, without copying or checking the rest of the state.
    let change = match change {
        Change::SetPortForwarding(rules) => {
            let (next, splice) =
                router.with_port_forwards(&config.port_forwarding_rules, &rules)?;
            let before = std::mem::replace(&mut config.port_forwarding_rules, rules);
            return Ok((next, Undo::PortForwards(before, splice)));
        }
        Change::SetStaticNat(rules) => {
            let (next, splice) = router.with_static_nats(&config.static_nat_rules, &rules)?;
            let before = std::mem::replace(&mut config.static_nat_rules, rules);
            return Ok((next, Undo::StaticNats(before, splice)));
        }
        change => change,
    };
    if let Change::SetNetworkAcl(acl) = change {
        let acl = required(acl, "acl")?;
        let index = acl.device_index;
        // Lists are kept in device order (a config built elsewhere is
        // sorted first, once).
        if !config.network_acls.is_sorted_by_key(|a| a.device_index) {
            config.network_acls.sort_by_key(|a| a.device_index);
        }
        let before = config.network_acls.iter().find(|a| a.device_index == index);
        let per_entry = limits.acl_elements_per_entry;
        // A list that differs from the one held in a few items is checked
        // in those items alone (with the errors the whole list gives).
        let few = before.filter(|_| !acl.items.is_empty()).and_then(|b| {
            let (removed, added) = few_changes(b, &acl)?;
            let next = router.with_acl_edit(&labels_of(&acl), &removed, &added, per_entry)?;
            let at = added.iter().map(|(i, _)| *i as u32).collect();
            Some((next, (removed, at)))
        });
        let (next_router, delta) = match few {
            Some((next, delta)) => (next?, Some(delta)),
            None => (router.with_acl_from(&acl, per_entry, before)?, None),
        };
        let before = set_acl(config, index, (!acl.items.is_empty()).then_some(acl));
        return Ok((
            next_router,
            Undo::Acl {
                index,
                before,
                delta,
            },
        ));
    }
    let mut next = config.clone();
    match change {
        Change::PlugNic(nic) => {
            let nic = required(nic, "nic")?;
            let mac = nic.mac_address.to_ascii_lowercase();
            if let Some(existing) = next.nics.iter().find(|n| {
                n.device_index == nic.device_index && !n.mac_address.eq_ignore_ascii_case(&mac)
            }) {
                return Err(conflict(
                    "nic.device_index",
                    format!(
                        "eth{} is plugged with MAC {}; unplug it first",
                        nic.device_index, existing.mac_address
                    ),
                ));
            }
            if let Some(other) = next.nics.iter().find(|n| {
                n.device_index != nic.device_index && n.mac_address.eq_ignore_ascii_case(&mac)
            }) {
                return Err(conflict(
                    "nic.mac_address",
                    format!("{mac} is already plugged as eth{}", other.device_index),
                ));
            }
            next.nics.retain(|n| n.device_index != nic.device_index);
            next.nics.push(nic);
            next.nics.sort_by_key(|n| n.device_index);
        }
        Change::UnplugNic { index, mac } => {
            if !mac.is_empty() && mac.to_ascii_lowercase().parse::<Mac>().is_err() {
                return Err(conflict(
                    "mac_address",
                    format!("{} is not a MAC address", shown(&mac)),
                ));
            }
            let nic = next
                .nics
                .iter()
                .find(|n| n.device_index == index)
                .ok_or_else(|| {
                    not_found("device_index", format!("no NIC is plugged at eth{index}"))
                })?;
            if !mac.is_empty() && !nic.mac_address.eq_ignore_ascii_case(&mac) {
                return Err(not_found(
                    "mac_address",
                    format!("eth{index} has MAC {}, not {mac}", nic.mac_address),
                ));
            }
            remove_nic(&mut next, index);
        }
        Change::SetupGuestNetwork(network) => {
            let network = required(network, "network")?;
            next.guest_networks
                .retain(|g| g.device_index != network.device_index);
            next.guest_networks.push(network);
            next.guest_networks.sort_by_key(|g| g.device_index);
        }
        Change::DestroyGuestNetwork { index } => {
            if !next.guest_networks.iter().any(|g| g.device_index == index) {
                return Err(not_found(
                    "device_index",
                    format!("eth{index} serves no tier"),
                ));
            }
            remove_tier(&mut next, index);
        }
        Change::IpAssoc(ips) => {
            for (i, ip) in ips.into_iter().enumerate() {
                if ip.add {
                    next.public_ips.retain(|p| p.ip_address != ip.ip_address);
                    next.public_ips.push(ip);
                } else {
                    if !next
                        .public_ips
                        .iter()
                        .any(|p| p.ip_address == ip.ip_address)
                    {
                        return Err(not_found(
                            &format!("ips[{i}].ip_address"),
                            format!(
                                "{} is not associated with the router",
                                shown(&ip.ip_address)
                            ),
                        ));
                    }
                    remove_public_ip(&mut next, &ip.ip_address);
                }
            }
        }
        Change::SetSourceNat(rules) => next.source_nat_rules = rules,
        Change::SetStaticRoutes(routes) => next.static_routes = routes,
        Change::SetNetworkAcl(_) => unreachable!("handled above"),
        Change::EditNetworkAcl { .. } => {
            return Err(conflict(
                "acl",
                "an edit is resolved against the agent's list before it is applied".into(),
            ));
        }
        Change::SetPortForwarding(rules) => next.port_forwarding_rules = rules,
        Change::SetStaticNat(rules) => next.static_nat_rules = rules,
        Change::SetLoadBalancers(rules) => next.load_balancer_rules = rules,
        Change::SetDhcpEntries(dhcp) => {
            let dhcp = required(dhcp, "dhcp")?;
            next.dhcp.retain(|d| d.device_index != dhcp.device_index);
            if !dhcp.entries.is_empty() {
                next.dhcp.push(dhcp);
                next.dhcp.sort_by_key(|d| d.device_index);
            }
        }
        Change::SetVmData(data) => {
            let data = required(data, "vm_data")?;
            next.vm_data.retain(|d| d.device_index != data.device_index);
            if !data.vms.is_empty() {
                next.vm_data.push(data);
                next.vm_data.sort_by_key(|d| d.device_index);
            }
        }
        // No connection is no VPN: the stored state keeps one form of it.
        Change::SetVpn(vpn) => next.vpn = vpn.filter(|v| !v.connections.is_empty()),
        Change::ApplyConfig(config) => next = required(config, "config")?,
    }
    // A list that grows by steps (IpAssoc adds IPs) is bounded as a whole.
    limits.check(&next)?;
    let router = Router::from_config_with(&next, limits)?;
    let before = std::mem::replace(config, next);
    Ok((router, Undo::Config(Box::new(before))))
}

/// Removes a NIC and everything that lived on it.
fn remove_nic(config: &mut pb::RouterConfig, index: u32) {
    config.nics.retain(|n| n.device_index != index);
    if config
        .guest_networks
        .iter()
        .any(|g| g.device_index == index)
    {
        remove_tier(config, index);
    }
    config.network_acls.retain(|a| a.device_index != index);
    let ips: Vec<String> = config
        .public_ips
        .iter()
        .filter(|p| p.device_index == index)
        .map(|p| p.ip_address.clone())
        .collect();
    for ip in ips {
        remove_public_ip(config, &ip);
    }
    config.source_nat_rules.retain(|r| r.device_index != index);
}

/// Removes a tier, its leases and ACL, and the NAT rules that point into it.
fn remove_tier(config: &mut pb::RouterConfig, index: u32) {
    let cidr: Option<Ipv4Net> = config
        .guest_networks
        .iter()
        .find(|g| g.device_index == index)
        .and_then(|g| g.cidr.parse().ok());
    config.guest_networks.retain(|g| g.device_index != index);
    config.dhcp.retain(|d| d.device_index != index);
    config.vm_data.retain(|d| d.device_index != index);
    config.network_acls.retain(|a| a.device_index != index);
    let Some(cidr) = cidr else { return };
    let inside = |ip: &str| ip.parse::<Ipv4Addr>().is_ok_and(|ip| cidr.contains(&ip));
    config
        .port_forwarding_rules
        .retain(|r| !inside(&r.private_ip));
    config.static_nat_rules.retain(|r| !inside(&r.private_ip));
    for lb in &mut config.load_balancer_rules {
        lb.backends.retain(|b| !inside(&b.ip_address));
    }
    let cidr_text = cidr.to_string();
    for rule in &mut config.source_nat_rules {
        rule.source_cidrs.retain(|c| *c != cidr_text);
    }
}

/// Removes a public IP and the rules that use it.
fn remove_public_ip(config: &mut pb::RouterConfig, ip: &str) {
    config.public_ips.retain(|p| p.ip_address != ip);
    config.source_nat_rules.retain(|r| r.nat_ip != ip);
    config.static_routes.retain(|r| r.gateway_ip != ip);
    config.port_forwarding_rules.retain(|r| r.public_ip != ip);
    config.static_nat_rules.retain(|r| r.public_ip != ip);
    config.load_balancer_rules.retain(|r| r.public_ip != ip);
    // The VPN ends on its gateway's address: without it there is no VPN.
    if config.vpn.as_ref().is_some_and(|v| v.public_ip == ip) {
        config.vpn = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{mac, sample_config};

    /// The change under the default bounds.
    fn apply(
        config: &pb::RouterConfig,
        router: &Router,
        change: Change,
    ) -> Result<(pb::RouterConfig, Router), Invalid> {
        super::apply(config, router, change, &Limits::default())
    }

    fn sample_router() -> Router {
        Router::from_config(&sample_config()).expect("valid sample")
    }

    #[test]
    fn a_nat_list_change_is_checked_as_the_whole_config_is_and_undone_in_place() {
        let config = sample_config();
        let router = sample_router();
        let limits = Limits::default();
        // A forward of another public port: taken, the rest of the router as it was.
        let mut rules = config.port_forwarding_rules.clone();
        let mut added = rules[0].clone();
        added.id = "pf-new".into();
        added.public_start_port = 40_000;
        added.public_end_port = 0;
        added.private_start_port = 40_000;
        added.private_end_port = 0;
        rules.push(added);
        let mut in_place = config.clone();
        let (next, undo) = apply_in_place(
            &mut in_place,
            &router,
            Change::SetPortForwarding(rules.clone()),
            &limits,
        )
        .expect("valid");
        let mut whole = config.clone();
        whole.port_forwarding_rules = rules.clone();
        assert_eq!(next, Router::from_config(&whole).expect("valid"));
        assert_eq!(in_place, whole);
        assert!(!undo.unchanged(&in_place));
        undo.undo(&mut in_place);
        assert_eq!(in_place, config);

        // A forward of a port the load balancer holds: refused with the error
        // the whole config gives, nothing changed.
        let mut clash = rules;
        let lb = &config.load_balancer_rules[0];
        clash[1].public_ip = lb.public_ip.clone();
        clash[1].protocol = lb.protocol;
        clash[1].public_start_port = lb.public_port;
        clash[1].private_start_port = lb.public_port;
        let mut whole = config.clone();
        whole.port_forwarding_rules = clash.clone();
        let expected = Router::from_config(&whole).expect_err("a clash");
        let mut in_place = config.clone();
        let err = apply_in_place(
            &mut in_place,
            &router,
            Change::SetPortForwarding(clash),
            &limits,
        )
        .expect_err("a clash");
        assert_eq!(format!("{err:?}"), format!("{expected:?}"));
        assert_eq!(in_place, config);

        // A static NAT on an address with port forwards: refused the same way.
        let mut nats = config.static_nat_rules.clone();
        nats[0].public_ip = config.port_forwarding_rules[0].public_ip.clone();
        let mut whole = config.clone();
        whole.static_nat_rules = nats.clone();
        let expected = Router::from_config(&whole).expect_err("taken");
        let err = apply_in_place(&mut in_place, &router, Change::SetStaticNat(nats), &limits)
            .expect_err("taken");
        assert_eq!(format!("{err:?}"), format!("{expected:?}"));
        assert_eq!(in_place, config);
    }

    #[test]
    fn sample_is_valid_and_replugging_the_same_nic_changes_nothing() {
        let config = sample_config();
        let nic = config.nics[2].clone();
        let (next, _) =
            apply(&config, &sample_router(), Change::PlugNic(Some(nic))).expect("valid");
        assert_eq!(next, config);
    }

    #[test]
    fn plugging_another_mac_at_a_used_index_is_refused() {
        let mut nic = sample_config().nics[2].clone();
        nic.mac_address = "02:00:00:00:99:99".into();
        let err = apply(
            &sample_config(),
            &sample_router(),
            Change::PlugNic(Some(nic)),
        )
        .unwrap_err();
        assert_eq!(err.field, "nic.device_index");
    }

    #[test]
    fn unplugging_a_tier_nic_removes_its_tier_leases_acl_and_nat_targets() {
        let (next, router) = apply(
            &sample_config(),
            &sample_router(),
            Change::UnplugNic {
                index: 2,
                mac: mac(2),
            },
        )
        .expect("valid");
        assert!(!router.nics.contains_key(&2));
        assert!(next.guest_networks.iter().all(|g| g.device_index != 2));
        assert!(next.dhcp.is_empty());
        assert!(next.network_acls.iter().all(|a| a.device_index != 2));
        // pf-ssh pointed at 10.1.1.5 in the tier; pf-range points into eth3.
        assert_eq!(next.port_forwarding_rules.len(), 1);
        assert_eq!(next.load_balancer_rules[0].backends.len(), 1);
    }

    #[test]
    fn unplugging_the_public_nic_drops_its_ips_and_the_rules_using_them() {
        let (next, router) = apply(
            &sample_config(),
            &sample_router(),
            Change::UnplugNic {
                index: 1,
                mac: String::new(),
            },
        )
        .expect("valid");
        assert!(router.source_nat_ip().is_none());
        assert!(next.port_forwarding_rules.is_empty());
        assert!(next.static_nat_rules.is_empty());
        assert!(next.load_balancer_rules.is_empty());
        assert_eq!(
            next.source_nat_rules.len(),
            1,
            "the private gateway's SNAT stays"
        );
    }

    #[test]
    fn unknown_nic_or_wrong_mac_is_not_found() {
        let err = apply(
            &sample_config(),
            &sample_router(),
            Change::UnplugNic {
                index: 9,
                mac: String::new(),
            },
        )
        .unwrap_err();
        assert_eq!(
            (err.kind, err.field.as_str()),
            (InvalidKind::NotFound, "device_index")
        );
        let err = apply(
            &sample_config(),
            &sample_router(),
            Change::UnplugNic {
                index: 2,
                mac: mac(3),
            },
        )
        .unwrap_err();
        assert_eq!(
            (err.kind, err.field.as_str()),
            (InvalidKind::NotFound, "mac_address")
        );
    }

    #[test]
    fn disassociating_the_private_gateway_ip_drops_its_routes() {
        let ip = pb::PublicIp {
            add: false,
            ip_address: "172.16.0.10".into(),
            ..Default::default()
        };
        let (next, _) = apply(
            &sample_config(),
            &sample_router(),
            Change::IpAssoc(vec![ip]),
        )
        .expect("valid");
        assert!(next.static_routes.is_empty());
        assert_eq!(next.source_nat_rules.len(), 1);
    }

    #[test]
    fn an_empty_acl_removes_the_nics_list_and_a_missing_one_is_refused() {
        let acl = pb::NetworkAcl {
            device_index: 2,
            ..Default::default()
        };
        let (next, router) = apply(
            &sample_config(),
            &sample_router(),
            Change::SetNetworkAcl(Some(acl)),
        )
        .expect("valid");
        assert!(!router.acls.contains_key(&2));
        assert_eq!(next.network_acls.len(), 1);
        let err = apply(
            &sample_config(),
            &sample_router(),
            Change::SetNetworkAcl(None),
        )
        .unwrap_err();
        assert_eq!(err.field, "acl");
    }

    #[test]
    fn a_duplicate_item_number_is_refused_naming_the_field() {
        let mut acl = sample_config().network_acls[0].clone();
        acl.items[1].number = acl.items[0].number;
        let err = apply(
            &sample_config(),
            &sample_router(),
            Change::SetNetworkAcl(Some(acl)),
        )
        .unwrap_err();
        assert_eq!(err.kind, InvalidKind::Argument);
        assert!(err.field.ends_with(".number"), "{err}");
    }

    #[test]
    fn destroying_an_unknown_tier_is_not_found() {
        let err = apply(
            &sample_config(),
            &sample_router(),
            Change::DestroyGuestNetwork { index: 3 },
        )
        .map(|_| ());
        assert!(err.is_ok());
        let err = apply(
            &sample_config(),
            &sample_router(),
            Change::DestroyGuestNetwork { index: 1 },
        )
        .unwrap_err();
        assert_eq!(err.kind, InvalidKind::NotFound);
    }

    fn item(id: &str, number: u32) -> pb::AclItem {
        pb::AclItem {
            id: id.into(),
            number,
            ..Default::default()
        }
    }

    fn list(acl_id: &str, items: Vec<pb::AclItem>) -> pb::NetworkAcl {
        pb::NetworkAcl {
            device_index: 2,
            acl_id: acl_id.into(),
            items,
            ..Default::default()
        }
    }

    #[test]
    fn an_edit_adds_replaces_and_removes_items_of_the_held_list() {
        let config = pb::RouterConfig {
            network_acls: vec![list("L", vec![item("a", 10), item("b", 20), item("c", 30)])],
            ..Default::default()
        };
        // "b" moves before "a", "d" is new, "c" goes.
        let edit = list("L", vec![item("b", 5), item("d", 25)]);
        let whole = edited_acl(&config, edit, &["c".into()]).unwrap();
        let got: Vec<(&str, u32)> = whole
            .items
            .iter()
            .map(|i| (i.id.as_str(), i.number))
            .collect();
        assert_eq!(got, [("b", 5), ("a", 10), ("d", 25)]);
        assert_eq!(whole.acl_id, "L");
    }

    #[test]
    fn an_edit_of_another_list_or_an_empty_nic_is_not_taken() {
        let config = pb::RouterConfig {
            network_acls: vec![list("L", vec![item("a", 10)])],
            ..Default::default()
        };
        assert!(edited_acl(&config, list("M", vec![item("x", 1)]), &[]).is_none());
        let empty = pb::RouterConfig::default();
        assert!(edited_acl(&empty, list("L", vec![item("x", 1)]), &[]).is_none());
    }
}
