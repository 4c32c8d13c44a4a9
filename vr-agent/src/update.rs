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

use crate::model::{Invalid, InvalidKind, Limits, Mac, Router, shown};

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
            Undo::Config(before) => *config = *before,
        }
    }

    /// Whether the change left `config` as it was.
    pub fn unchanged(&self, config: &pb::RouterConfig) -> bool {
        match self {
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
            Undo::Config(before) => **before == *config,
        }
    }
}

/// Items put into a list, each with its index in the list after the change.
pub type Placed<'a> = Vec<(usize, &'a pb::AclItem)>;

/// Changed items at most for which a whole list is checked item by item.
const FEW_CHANGES: usize = 32;

/// How `new` differs from `old`, both in number order: the numbers of the
/// items of `old` that go or change, and the items of `new` that come or
/// change, with their indexes in `new`; `None` when a list is not in number
/// order or more than [`FEW_CHANGES`] items differ. One walk over both
/// lists, comparing items of the same number, nothing copied.
fn few_changes<'a>(
    old: &pb::NetworkAcl,
    new: &'a pb::NetworkAcl,
) -> Option<(Vec<u32>, Placed<'a>)> {
    let (a, b) = (&old.items, &new.items);
    if !a.is_sorted_by_key(|i| i.number) || !b.is_sorted_by_key(|i| i.number) {
        return None;
    }
    let (mut removed, mut added) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    loop {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x.number == y.number => {
                if x != y {
                    removed.push(x.number);
                    added.push((j, y));
                }
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.number < y.number => {
                removed.push(x.number);
                i += 1;
            }
            (Some(x), None) => {
                removed.push(x.number);
                i += 1;
            }
            (_, Some(y)) => {
                added.push((j, y));
                j += 1;
            }
            (None, None) => break,
        }
        if removed.len() + added.len() > FEW_CHANGES {
            return None;
        }
    }
    Some((removed, added))
}

/// A list's labels, without its items.
fn labels_of(acl: &pb::NetworkAcl) -> pb::NetworkAcl {
    pb::NetworkAcl {
        device_index: acl.device_index,
        mac_address: acl.mac_address.clone(),
        private_gateway: acl.private_gateway,
        acl_id: acl.acl_id.clone(),
        acl_name: acl.acl_name.clone(),
        items: Vec::new(),
    }
}

/// Whether two lists have the same labels (their items aside).
fn labels_equal(a: &pb::NetworkAcl, b: &pb::NetworkAcl) -> bool {
    a.device_index == b.device_index
        && a.mac_address == b.mac_address
        && a.private_gateway == b.private_gateway
        && a.acl_id == b.acl_id
        && a.acl_name == b.acl_name
}

/// How an edit of one NIC's list was taken ([`apply_edit_in_place`]).
#[derive(Debug)]
pub enum Edit {
    /// The NIC holds no list, or another one than the edit's.
    NotHeld,
    /// Made in place: the new validated router (boxed: it is large beside
    /// the other answers) and what undoes it.
    Applied(Box<Router>, Undo),
    /// Not one the in-place path takes (the list held is not in number
    /// order, or the edit empties it): the whole list after the edit, to
    /// be applied as a [`Change::SetNetworkAcl`].
    Whole(pb::NetworkAcl),
}

/// Ids at most this many are looked for one by one; more through a set.
const FEW_IDS: usize = 16;

/// An edit of one NIC's list (EditNetworkAcl: `edit`'s items added or
/// replacing the items with their ids, the items with the ids `removed`
/// taken out), made to `config` in place and validated against `router`
/// (the validated form of `config`) by checking only the items that come:
/// the same list, and the same errors, as [`edited_acl`] then
/// [`apply_in_place`] would give, with work in proportion to the edit
/// (besides one look at each item's id and number).
pub fn apply_edit_in_place(
    config: &mut pb::RouterConfig,
    router: &Router,
    edit: pb::NetworkAcl,
    removed: &[String],
    limits: &Limits,
) -> Result<Edit, Invalid> {
    let Some(at) = config
        .network_acls
        .iter()
        .position(|a| a.device_index == edit.device_index)
    else {
        return Ok(Edit::NotHeld);
    };
    let held = &config.network_acls[at];
    if edit.acl_id.is_empty() || held.acl_id != edit.acl_id {
        return Ok(Edit::NotHeld);
    }
    let gone: Vec<&str> = removed
        .iter()
        .map(String::as_str)
        .chain(edit.items.iter().map(|i| i.id.as_str()))
        .collect();
    let set: std::collections::HashSet<&str> = if gone.len() > FEW_IDS {
        gone.iter().copied().collect()
    } else {
        Default::default()
    };
    let goes = |id: &str| {
        if gone.len() > FEW_IDS {
            set.contains(id)
        } else {
            gone.contains(&id)
        }
    };
    let taken: Vec<usize> = held
        .items
        .iter()
        .enumerate()
        .filter(|(_, i)| goes(&i.id))
        .map(|(k, _)| k)
        .collect();
    let len = held.items.len() - taken.len() + edit.items.len();
    if len == 0 || !held.items.is_sorted_by_key(|i| i.number) {
        let whole = edited_acl(config, edit, removed);
        return Ok(whole.map_or(Edit::NotHeld, Edit::Whole));
    }
    // Each added item's index in the list after the edit: the items that
    // stay come first among equal numbers, then the edit's in its order
    // (what sorting the whole list by number gives).
    let mut order: Vec<usize> = (0..edit.items.len()).collect();
    order.sort_by_key(|&k| edit.items[k].number);
    let mut added: Vec<(usize, &pb::AclItem)> = Vec::with_capacity(order.len());
    for (rank, &k) in order.iter().enumerate() {
        let number = edit.items[k].number;
        let held_before = held.items.partition_point(|i| i.number <= number);
        let taken_before = taken
            .iter()
            .filter(|&&t| held.items[t].number <= number)
            .count();
        added.push((held_before - taken_before + rank, &edit.items[k]));
    }
    limits.check_acl_edit("acl", len, &added)?;
    let numbers: Vec<u32> = taken.iter().map(|&t| held.items[t].number).collect();
    let labels = labels_of(&edit);
    let Some(next) = router.with_acl_edit(&labels, &numbers, &added, limits.acl_elements_per_entry)
    else {
        let whole = edited_acl(config, edit, removed);
        return Ok(whole.map_or(Edit::NotHeld, Edit::Whole));
    };
    let next = next?;
    let positions: Vec<u32> = added.iter().map(|(i, _)| *i as u32).collect();
    let inserted: Vec<u32> = added.iter().map(|(_, item)| item.number).collect();
    // Valid: the list is changed in place.
    let list = &mut config.network_acls[at];
    let mut taken_items = Vec::with_capacity(taken.len());
    for &k in taken.iter().rev() {
        taken_items.push(list.items.remove(k));
    }
    taken_items.reverse();
    let mut items = edit.items;
    let mut placed: Vec<(u32, pb::AclItem)> = order
        .iter()
        .zip(&positions)
        .map(|(&k, &i)| (i, std::mem::take(&mut items[k])))
        .collect();
    placed.sort_by_key(|(i, _)| *i);
    for (i, item) in placed {
        list.items.insert(i as usize, item);
    }
    let old_items = std::mem::take(&mut list.items);
    let before = std::mem::replace(
        list,
        pb::NetworkAcl {
            items: old_items,
            ..labels
        },
    );
    let mut positions = positions;
    positions.sort_unstable();
    Ok(Edit::Applied(
        Box::new(next),
        Undo::AclEdit {
            index: before.device_index,
            labels: before,
            taken: taken_items,
            inserted,
            at: positions,
        },
    ))
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

    /// The sample with ids on the web list's items (`i10`, `i20`, ...).
    fn with_ids() -> pb::RouterConfig {
        let mut config = sample_config();
        for item in &mut config.network_acls[0].items {
            item.id = format!("i{}", item.number);
        }
        config
    }

    fn web_edit(items: Vec<pb::AclItem>) -> pb::NetworkAcl {
        let held = &with_ids().network_acls[0];
        pb::NetworkAcl {
            items,
            ..labels_of(held)
        }
    }

    fn held_item(number: u32) -> pb::AclItem {
        with_ids().network_acls[0]
            .items
            .iter()
            .find(|i| i.number == number)
            .cloned()
            .unwrap()
    }

    /// The edit made in place and made whole (the edited list, set) give
    /// the same state and router, or the same error and nothing changed;
    /// the undo gives the state back, and the journal record replays to
    /// the state after. Returns whether the edit was made in place.
    fn both_ways(edit: pb::NetworkAcl, removed: &[&str]) -> Result<bool, Invalid> {
        let config = with_ids();
        let router = Router::from_config(&config).unwrap();
        let removed: Vec<String> = removed.iter().map(|s| s.to_string()).collect();
        let whole = edited_acl(&config, edit.clone(), &removed).expect("held");
        let expected = super::apply(
            &config,
            &router,
            Change::SetNetworkAcl(Some(whole)),
            &Limits::default(),
        );
        let mut in_place = config.clone();
        let got = apply_edit_in_place(&mut in_place, &router, edit, &removed, &Limits::default());
        match (expected, got) {
            (Ok((next, next_router)), Ok(Edit::Applied(got_router, undo))) => {
                assert_eq!(in_place, next);
                assert_eq!(*got_router, next_router);
                let (index, numbers, at) = match &undo {
                    Undo::AclEdit {
                        index, taken, at, ..
                    } => (
                        *index,
                        taken.iter().map(|i| i.number).collect::<Vec<_>>(),
                        at,
                    ),
                    other => panic!("{other:?}"),
                };
                let dir = tempfile::tempdir().unwrap();
                let store = crate::state::StateStore::open(dir.path()).unwrap();
                let first = crate::state::Desired {
                    generation: 1,
                    config: config.clone(),
                };
                store.save(&first).unwrap();
                let second = crate::state::Desired {
                    generation: 2,
                    config: in_place.clone(),
                };
                let replaced = crate::state::Replaced::AclEdit {
                    index,
                    removed: &numbers,
                    at,
                };
                store.save_replaced(replaced, &second).unwrap();
                assert!(store.journal_path().exists(), "journaled");
                let loaded = crate::state::StateStore::open(dir.path())
                    .unwrap()
                    .load()
                    .unwrap();
                assert_eq!(loaded, Some(second));
                let mut back = in_place.clone();
                undo.undo(&mut back);
                assert_eq!(back, config);
                Ok(true)
            }
            (Ok((next, next_router)), Ok(Edit::Whole(acl))) => {
                let (got, got_router) = super::apply(
                    &config,
                    &router,
                    Change::SetNetworkAcl(Some(acl)),
                    &Limits::default(),
                )
                .unwrap();
                assert_eq!((got, got_router), (next, next_router));
                Ok(false)
            }
            (Err(want), Err(got)) => {
                assert_eq!(got.to_string(), want.to_string());
                assert_eq!(in_place, config, "a refused edit changes nothing");
                Err(got)
            }
            (want, got) => panic!("whole: {want:?}\nin place: {got:?}"),
        }
    }

    #[test]
    fn an_edit_in_place_gives_the_list_the_whole_list_gives() {
        use pb::{AclAction::*, Protocol::*, TrafficType::*};
        let mut port = held_item(20);
        port.start_port = Some(2222);
        port.end_port = Some(2222);
        assert_eq!(both_ways(web_edit(vec![port]), &[]), Ok(true), "update");
        let mut new =
            crate::testing::item(25, Allow, Ingress, Udp, &["10.9.0.0/16"], Some((53, 53)));
        new.id = "n25".into();
        assert_eq!(both_ways(web_edit(vec![new.clone()]), &[]), Ok(true), "add");
        assert_eq!(both_ways(web_edit(vec![]), &["i30"]), Ok(true), "delete");
        let mut moved = held_item(10);
        moved.number = 60;
        assert_eq!(
            both_ways(web_edit(vec![moved.clone()]), &[]),
            Ok(true),
            "move"
        );
        let mut flipped = held_item(40);
        flipped.action = Deny as i32;
        assert_eq!(both_ways(web_edit(vec![flipped]), &[]), Ok(true), "flip");
        let mut first = new.clone();
        first.number = 1;
        first.id = "n1".into();
        assert_eq!(
            both_ways(
                web_edit(vec![moved, new, first]),
                &["i30", "i50", "nothing"]
            ),
            Ok(true),
            "several at once"
        );
        let mut relabelled = web_edit(vec![]);
        relabelled.acl_name = "renamed".into();
        assert_eq!(both_ways(relabelled, &[]), Ok(true), "labels");
        let all: Vec<&str> = ["i10", "i20", "i30", "i40", "i50"].into();
        assert_eq!(both_ways(web_edit(vec![]), &all), Ok(false), "emptied");
    }

    #[test]
    fn an_edit_in_place_refuses_what_the_whole_list_refuses() {
        use pb::{AclAction::*, Protocol::*, TrafficType::*};
        let mut twice = crate::testing::item(20, Allow, Ingress, Udp, &[], Some((53, 53)));
        twice.id = "other".into();
        let err = both_ways(web_edit(vec![twice.clone()]), &[]).unwrap_err();
        assert!(err.to_string().contains("used by two items"), "{err}");
        let mut zero = twice.clone();
        zero.number = 0;
        both_ways(web_edit(vec![zero]), &[]).unwrap_err();
        let mut bad = twice.clone();
        bad.number = 35;
        bad.cidrs = vec!["10.0.0.0/33".into()];
        both_ways(web_edit(vec![bad]), &[]).unwrap_err();
        let mut no_action = twice.clone();
        no_action.number = 36;
        no_action.action = 0;
        // Two bad items: the one first in the list after the edit names
        // the error.
        let mut earlier = twice;
        earlier.number = 5;
        earlier.id = "bad id!".into();
        let err = both_ways(web_edit(vec![no_action, earlier]), &[]).unwrap_err();
        assert!(err.field.ends_with("[0].id"), "{err}");
        let mut wrong_mac = web_edit(vec![]);
        wrong_mac.mac_address = mac(3);
        both_ways(wrong_mac, &[]).unwrap_err();
        let mut wide = held_item(20);
        wide.cidrs = (0..2000)
            .map(|k| format!("10.{}.{}.0/24", k / 250, k % 250))
            .collect();
        both_ways(web_edit(vec![wide]), &[]).unwrap_err();
    }

    #[test]
    fn an_edit_that_changes_nothing_is_unchanged() {
        let config = with_ids();
        let router = Router::from_config(&config).unwrap();
        let mut in_place = config.clone();
        let edit = web_edit(vec![held_item(30)]);
        let Ok(Edit::Applied(_, undo)) =
            apply_edit_in_place(&mut in_place, &router, edit, &[], &Limits::default())
        else {
            panic!("made in place");
        };
        assert!(undo.unchanged(&in_place));
        assert_eq!(in_place, config);
        let mut other = held_item(30);
        other.start_port = Some(81);
        other.end_port = Some(81);
        let Ok(Edit::Applied(_, undo)) = apply_edit_in_place(
            &mut in_place,
            &router,
            web_edit(vec![other]),
            &[],
            &Limits::default(),
        ) else {
            panic!("made in place");
        };
        assert!(!undo.unchanged(&in_place));
    }

    #[test]
    fn an_edit_of_another_list_is_not_held() {
        let config = with_ids();
        let router = Router::from_config(&config).unwrap();
        let mut edit = web_edit(vec![]);
        edit.acl_id = "another".into();
        let mut in_place = config.clone();
        let got = apply_edit_in_place(
            &mut in_place,
            &router,
            edit,
            &["i10".into()],
            &Limits::default(),
        );
        assert!(matches!(got, Ok(Edit::NotHeld)), "{got:?}");
        assert_eq!(in_place, config);
    }

    /// A whole list that differs from the one held in a few items gives
    /// the router (or the error) that checking every item gives, and a
    /// journal record that replays to it.
    fn set_both_ways(items: Vec<pb::AclItem>) -> Result<(), Invalid> {
        let config = with_ids();
        let router = Router::from_config(&config).unwrap();
        let acl = web_edit(items);
        let held = &config.network_acls[0];
        let want = router.with_acl_from(&acl, Limits::default().acl_elements_per_entry, Some(held));
        let mut got_config = config.clone();
        let got = apply_in_place(
            &mut got_config,
            &router,
            Change::SetNetworkAcl(Some(acl.clone())),
            &Limits::default(),
        );
        match (want, got) {
            (Ok(want), Ok((got, undo))) => {
                assert_eq!(got, want);
                let Undo::Acl {
                    index,
                    delta: Some((removed, at)),
                    ..
                } = &undo
                else {
                    panic!("found item by item: {undo:?}");
                };
                let dir = tempfile::tempdir().unwrap();
                let store = crate::state::StateStore::open(dir.path()).unwrap();
                store
                    .save(&crate::state::Desired {
                        generation: 1,
                        config: config.clone(),
                    })
                    .unwrap();
                let second = crate::state::Desired {
                    generation: 2,
                    config: got_config.clone(),
                };
                let replaced = crate::state::Replaced::AclEdit {
                    index: *index,
                    removed,
                    at,
                };
                store.save_replaced(replaced, &second).unwrap();
                let loaded = crate::state::StateStore::open(dir.path())
                    .unwrap()
                    .load()
                    .unwrap();
                assert_eq!(loaded, Some(second));
                Ok(())
            }
            (Err(want), Err(got)) => {
                assert_eq!(got.to_string(), want.to_string());
                assert_eq!(got_config, config, "a refused list changes nothing");
                Err(got)
            }
            (want, got) => panic!("whole: {want:?}\nitem by item: {got:?}"),
        }
    }

    #[test]
    fn a_whole_list_with_a_few_changes_is_checked_in_those_alone() {
        use pb::{AclAction::*, Protocol::*, TrafficType::*};
        let held = with_ids().network_acls[0].items.clone();
        let mut update = held.clone();
        update[1].start_port = Some(2222);
        update[1].end_port = Some(2222);
        set_both_ways(update).unwrap();
        let mut add = held.clone();
        let mut new =
            crate::testing::item(25, Allow, Ingress, Udp, &["10.9.0.0/16"], Some((53, 53)));
        new.id = "n25".into();
        add.insert(2, new.clone());
        set_both_ways(add).unwrap();
        let mut delete = held.clone();
        delete.remove(2);
        set_both_ways(delete).unwrap();
        let mut moved = held.clone();
        let mut first = moved.remove(0);
        first.number = 60;
        moved.push(first);
        set_both_ways(moved).unwrap();
        let mut flip = held.clone();
        flip[3].action = Deny as i32;
        set_both_ways(flip).unwrap();
        let mut twice = held.clone();
        let mut again = new.clone();
        again.number = 20;
        twice.insert(2, again);
        let err = set_both_ways(twice).unwrap_err();
        assert!(err.to_string().contains("used by two items"), "{err}");
        let mut bad = held.clone();
        bad[4].cidrs = vec!["nowhere".into()];
        set_both_ways(bad).unwrap_err();
    }
}
