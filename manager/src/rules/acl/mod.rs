//! Network ACL lists and items (reference §2.8, §3.8).

use std::net::IpAddr;

use ipnet::IpNet;

use super::{PortRange, check_name};
use crate::error::Error;

/// Names of the two built-in lists, which can be neither changed nor
/// deleted.
pub const DEFAULT_ALLOW: &str = "default_allow";
pub const DEFAULT_DENY: &str = "default_deny";

/// Default `cidrlist` of an item.
pub const DEFAULT_CIDRS: [&str; 2] = ["0.0.0.0/0", "::/0"];

/// The list an item goes into (or a list being changed or deleted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AclList<'a> {
    pub name: &'a str,
    /// One of the built-in `default_allow` / `default_deny` lists.
    pub is_default: bool,
    /// A global list (vpc id 0) that is not a default one.
    pub is_global: bool,
}

/// Refuses changes to a built-in list (431, as CloudStack's
/// InvalidParameterValueException) and changes to a global list by anyone
/// but the root admin (531, PermissionDeniedException with `refusal`, the
/// text CloudStack gives for that command).
pub fn check_list_modifiable(
    list: &AclList<'_>,
    caller_is_root: bool,
    refusal: GlobalRefusal,
) -> Result<(), Error> {
    if list.is_default {
        return Err(Error::invalid(format!(
            "Default ACL list {} cannot be modified",
            list.name
        )));
    }
    if list.is_global && !caller_is_root {
        return Err(Error::permission_denied(refusal.text()));
    }
    Ok(())
}

/// What a command refused on a global list says: CloudStack's text for
/// each (NetworkACLServiceImpl, CreateNetworkACLListCmd).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlobalRefusal {
    CreateList,
    UpdateList,
    DeleteList,
    CreateItem,
    UpdateItem,
    MoveItem,
    DeleteItem,
}

impl GlobalRefusal {
    /// The error text.
    pub fn text(self) -> &'static str {
        match self {
            GlobalRefusal::CreateList => "Only Root Admin can create global ACLs.",
            GlobalRefusal::UpdateList => "Must be Root Admin to update a global ACL.",
            GlobalRefusal::DeleteList => "Only Root Admin can delete global ACLs.",
            GlobalRefusal::CreateItem => "Only Root Admins can create rules for a global ACL.",
            GlobalRefusal::UpdateItem => "Only Root Admins can update global ACLs.",
            GlobalRefusal::MoveItem => "Must be Root Admin to move global ACL rules.",
            GlobalRefusal::DeleteItem => "Only Root Admin can delete global ACL rules.",
        }
    }
}

/// createNetworkACLList without a VPC makes a global list: the root admin's
/// alone (531 for anyone else).
pub fn check_global_list_creator(caller_is_root: bool) -> Result<(), Error> {
    if caller_is_root {
        Ok(())
    } else {
        Err(Error::permission_denied(GlobalRefusal::CreateList.text()))
    }
}

/// deleteNetworkACLList: not for the built-in lists (431), and not while
/// tiers or private gateways use the list (530).
pub fn check_list_deletable(
    list: &AclList<'_>,
    tiers: usize,
    gateways: usize,
) -> Result<(), Error> {
    if list.is_default {
        return Err(Error::invalid(format!(
            "Default ACL list {} cannot be removed",
            list.name
        )));
    }
    if tiers > 0 || gateways > 0 {
        return Err(Error::internal(format!(
            "ACL {} is still associated with {tiers} tier(s) and {gateways} private gateway(s); \
             replace it there first",
            list.name
        )));
    }
    Ok(())
}

/// createNetworkACLList: a name is required, description ≤ 255.
pub fn validate_list(name: &str, description: Option<&str>) -> Result<(), Error> {
    check_name("name", name)?;
    if let Some(d) = description {
        super::check_length("description", d, super::MAX_DISPLAY_TEXT_LEN)?;
    }
    Ok(())
}

/// A list may be attached to a tier or gateway of `target_vpc` when it is a
/// default/global list (`list_vpc` None) or belongs to that VPC.
pub fn check_list_in_vpc<T: PartialEq + std::fmt::Display>(
    list: &str,
    list_vpc: Option<&T>,
    target_vpc: &T,
) -> Result<(), Error> {
    match list_vpc {
        Some(v) if v != target_vpc => Err(Error::invalid(format!(
            "ACL list {list} and the network do not belong to the same VPC \
             (list in {v}, network in {target_vpc})"
        ))),
        _ => Ok(()),
    }
}

/// replaceNetworkACLList on a tier needs an offering with the NetworkACL
/// service.
pub fn check_tier_takes_acl(tier: &str, offering_has_acl: bool) -> Result<(), Error> {
    if offering_has_acl {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "Network ACL can't be applied to tier {tier}: its offering does not provide the NetworkACL service"
    )))
}

/// An item's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclProtocol {
    Tcp,
    Udp,
    Icmp,
    All,
    /// Any other IP protocol number.
    Number(u8),
}

impl AclProtocol {
    /// Parses `tcp`, `udp`, `icmp`, `all` (case-insensitive) or a protocol
    /// number 0–255; `1` becomes `icmp`, like CloudStack does.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let t = text.trim().to_ascii_lowercase();
        Ok(match t.as_str() {
            "tcp" => Self::Tcp,
            "udp" => Self::Udp,
            "icmp" | "1" => Self::Icmp,
            "all" => Self::All,
            _ => match t.parse::<u8>() {
                Ok(n) => Self::Number(n),
                Err(_) => {
                    return Err(Error::invalid(format!(
                        "Invalid protocol {:?}: use tcp, udp, icmp, all or a protocol number 0-255",
                        text.trim()
                    )));
                }
            },
        })
    }

    /// The wire form (`tcp`, ..., or the number).
    pub fn as_string(&self) -> String {
        match self {
            Self::Tcp => "tcp".into(),
            Self::Udp => "udp".into(),
            Self::Icmp => "icmp".into(),
            Self::All => "all".into(),
            Self::Number(n) => n.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
}

impl Action {
    /// `Allow` (default when absent) or `Deny`, case-insensitive.
    pub fn parse(text: Option<&str>) -> Result<Self, Error> {
        match text.map(|t| t.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("allow") => Ok(Self::Allow),
            Some("deny") => Ok(Self::Deny),
            Some(_) => Err(Error::invalid(format!(
                "Invalid action {:?}: use Allow or Deny",
                text.unwrap_or_default()
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrafficType {
    Ingress,
    Egress,
}

impl TrafficType {
    /// `Ingress` (default when absent) or `Egress`, case-insensitive.
    pub fn parse(text: Option<&str>) -> Result<Self, Error> {
        match text.map(|t| t.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("ingress") => Ok(Self::Ingress),
            Some("egress") => Ok(Self::Egress),
            Some(_) => Err(Error::invalid(format!(
                "Invalid traffictype {:?}: use Ingress or Egress",
                text.unwrap_or_default()
            ))),
        }
    }
}

/// The number a new item gets when none is given: one past the highest.
pub fn next_number(existing: &[u32]) -> u32 {
    existing
        .iter()
        .copied()
        .max()
        .map_or(1, |m| m.saturating_add(1))
}

/// Parses the `cidrlist`: each entry a valid IPv4 or IPv6 CIDR with host
/// bits clear; absent or empty means `0.0.0.0/0,::/0`.
pub fn parse_cidr_list(cidrs: &[&str]) -> Result<Vec<IpNet>, Error> {
    let given: Vec<&str> = cidrs
        .iter()
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
        .collect();
    let list = if given.is_empty() {
        DEFAULT_CIDRS.to_vec()
    } else {
        given
    };
    list.into_iter()
        .map(|c| {
            let net: IpNet = c.parse().map_err(|_| {
                Error::invalid(format!("Source cidrs formatting error {c}: not a CIDR"))
            })?;
            if net.trunc() != net {
                return Err(Error::invalid(format!(
                    "Source cidrs formatting error {c}: host bits set, did you mean {}?",
                    net.trunc()
                )));
            }
            Ok(net)
        })
        .collect()
}

/// createNetworkACL's parameters.
#[derive(Debug, Clone, Default)]
pub struct NewAclItem<'a> {
    pub protocol: &'a str,
    pub start_port: Option<i64>,
    pub end_port: Option<i64>,
    pub icmp_type: Option<i64>,
    pub icmp_code: Option<i64>,
    pub cidrs: &'a [&'a str],
    pub action: Option<&'a str>,
    pub traffic_type: Option<&'a str>,
    pub number: Option<i64>,
}

/// A checked ACL item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclItem {
    pub number: u32,
    pub protocol: AclProtocol,
    /// Only for tcp/udp.
    pub ports: Option<PortRange>,
    /// Only for icmp; -1 means any.
    pub icmp_type: Option<i32>,
    pub icmp_code: Option<i32>,
    pub cidrs: Vec<IpNet>,
    pub action: Action,
    pub traffic_type: TrafficType,
}

/// Validates an item against its list's other item numbers (`taken`; for an
/// update, leave out the item's own number). The list itself is checked by
/// [`check_list_modifiable`].
pub fn validate_item(req: &NewAclItem<'_>, taken: &[u32]) -> Result<AclItem, Error> {
    let protocol = AclProtocol::parse(req.protocol)?;
    let ports = match (req.start_port, req.end_port) {
        (None, None) => None,
        (None, Some(e)) => {
            return Err(Error::invalid(format!(
                "endport {e} given without startport"
            )));
        }
        (Some(s), e) => {
            if !matches!(protocol, AclProtocol::Tcp | AclProtocol::Udp) {
                return Err(Error::invalid(format!(
                    "Can specify start/end port only for protocols tcp and udp, not {}",
                    protocol.as_string()
                )));
            }
            Some(PortRange::new("port", s, e, 0)?)
        }
    };
    let is_icmp = protocol == AclProtocol::Icmp;
    if !is_icmp && (req.icmp_type.is_some() || req.icmp_code.is_some()) {
        return Err(Error::invalid(format!(
            "icmptype and icmpcode can only be given for protocol icmp, not {}",
            protocol.as_string()
        )));
    }
    let icmp = |name: &str, v: Option<i64>, max: i64| -> Result<Option<i32>, Error> {
        if !is_icmp {
            return Ok(None);
        }
        let v = v.unwrap_or(-1);
        if v != -1 && !(0..=max).contains(&v) {
            return Err(Error::invalid(format!(
                "Invalid {name} {v}: use -1 (any) or 0-{max}"
            )));
        }
        Ok(Some(v as i32))
    };
    let icmp_type = icmp("icmptype", req.icmp_type, 255)?;
    let icmp_code = icmp("icmpcode", req.icmp_code, 16)?;
    let number = match req.number {
        None => next_number(taken),
        Some(n) if n < 1 || n > i64::from(u32::MAX) => {
            return Err(Error::invalid(format!(
                "Invalid number [{n}]. Number cannot be < 1"
            )));
        }
        Some(n) => n as u32,
    };
    if taken.contains(&number) {
        return Err(Error::invalid(format!(
            "ACL item with number {number} already exists in the ACL list; numbers must be unique"
        )));
    }
    Ok(AclItem {
        number,
        protocol,
        ports,
        icmp_type,
        icmp_code,
        cidrs: parse_cidr_list(req.cidrs)?,
        action: Action::parse(req.action)?,
        traffic_type: TrafficType::parse(req.traffic_type)?,
    })
}

/// Whether `addr` is in one of the item's CIDRs (used when evaluating).
pub fn cidrs_match(cidrs: &[IpNet], addr: IpAddr) -> bool {
    cidrs.iter().any(|c| c.contains(&addr))
}

/// updateNetworkACLItem: merges `upd` into `current` and validates the
/// result against the numbers of the list's *other* items.
///
/// With `partial` (CloudStack's default `partialupgrade=true`) every field
/// absent from `upd` keeps its current value; otherwise absent fields go
/// back to their defaults (Allow, Ingress, `0.0.0.0/0,::/0`, no ports, any
/// ICMP). An empty `upd.protocol` keeps the current protocol in both modes,
/// and the number is kept when not given. Ports and ICMP type/code are only
/// carried over while the protocol stays the same.
pub fn validate_update(
    current: &AclItem,
    upd: &NewAclItem<'_>,
    partial: bool,
    taken_by_others: &[u32],
) -> Result<AclItem, Error> {
    let protocol = if upd.protocol.trim().is_empty() {
        current.protocol
    } else {
        AclProtocol::parse(upd.protocol)?
    };
    let carry = partial && protocol == current.protocol;
    let no_ports = upd.start_port.is_none() && upd.end_port.is_none();
    let (start_port, end_port) = match current.ports {
        Some(p) if carry && no_ports => (Some(i64::from(p.start)), Some(i64::from(p.end))),
        _ => (upd.start_port, upd.end_port),
    };
    let keep = |given: Option<i64>, now: Option<i32>| match given {
        None if carry => now.map(i64::from),
        other => other,
    };
    let icmp_type = keep(upd.icmp_type, current.icmp_type);
    let icmp_code = keep(upd.icmp_code, current.icmp_code);
    let current_cidrs: Vec<String> = current.cidrs.iter().map(|c| c.to_string()).collect();
    let current_cidrs: Vec<&str> = current_cidrs.iter().map(String::as_str).collect();
    let cidrs: &[&str] = if partial && upd.cidrs.iter().all(|c| c.trim().is_empty()) {
        &current_cidrs
    } else {
        upd.cidrs
    };
    let action = match (upd.action, partial, current.action) {
        (Some(a), _, _) => Some(a),
        (None, true, Action::Deny) => Some("Deny"),
        _ => None,
    };
    let traffic_type = match (upd.traffic_type, partial, current.traffic_type) {
        (Some(t), _, _) => Some(t),
        (None, true, TrafficType::Egress) => Some("Egress"),
        _ => None,
    };
    let protocol_text = protocol.as_string();
    let merged = NewAclItem {
        protocol: &protocol_text,
        start_port,
        end_port,
        icmp_type,
        icmp_code,
        cidrs,
        action,
        traffic_type,
        number: Some(upd.number.unwrap_or(i64::from(current.number))),
    };
    validate_item(&merged, taken_by_others)
}

/// One item of a list, as moveNetworkAclItem sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Positioned<'a> {
    pub id: &'a str,
    pub number: u32,
}

/// moveNetworkAclItem: puts `moving` right after `previous` and right
/// before `next` (no `previous` = to the top, no `next` = to the bottom;
/// when both are given they must be neighbours). Returns the renumbering as
/// `(id, new number)` pairs: the moved item takes the first free number
/// after its predecessor, and following items are shifted by the smallest
/// amount needed to keep numbers unique and ascending. Nothing else changes.
pub fn move_item(
    items: &[Positioned<'_>],
    moving: &str,
    previous: Option<&str>,
    next: Option<&str>,
) -> Result<Vec<(String, u32)>, Error> {
    if previous.is_none() && next.is_none() {
        return Err(Error::invalid(
            "Give previousaclruleid, nextaclruleid or both to move an ACL item",
        ));
    }
    let Some(me) = items.iter().find(|i| i.id == moving) else {
        return Err(Error::invalid(format!(
            "ACL item {moving} is not in this ACL list"
        )));
    };
    let mut others: Vec<Positioned<'_>> =
        items.iter().copied().filter(|i| i.id != moving).collect();
    others.sort_by_key(|i| i.number);
    let index_of = |name: &str, id: &str| -> Result<usize, Error> {
        if id == moving {
            return Err(Error::invalid(format!(
                "{name} {id} is the item being moved"
            )));
        }
        others.iter().position(|i| i.id == id).ok_or_else(|| {
            Error::invalid(format!(
                "{name} {id} is not in the same ACL list as {moving}"
            ))
        })
    };
    let prev_idx = previous
        .map(|p| index_of("previousaclruleid", p))
        .transpose()?;
    let next_idx = next.map(|n| index_of("nextaclruleid", n)).transpose()?;
    let pos = match (prev_idx, next_idx) {
        (Some(p), Some(n)) if p + 1 != n => {
            return Err(Error::invalid(format!(
                "ACL items {} and {} are not consecutive; can't move {moving} between them",
                previous.unwrap_or_default(),
                next.unwrap_or_default()
            )));
        }
        (Some(p), _) => p + 1,
        (None, Some(_)) => 0,
        (None, None) => unreachable!("checked above"),
    };
    let lower = if pos == 0 { 0 } else { others[pos - 1].number };
    let upper = others.get(pos).map(|i| i.number);
    if me.number > lower && upper.is_none_or(|u| me.number < u) {
        return Ok(Vec::new());
    }
    let new_number = lower
        .checked_add(1)
        .ok_or_else(|| Error::invalid(format!("No rule number left after {lower}")))?;
    let mut changes = vec![(moving.to_string(), new_number)];
    let mut needed = new_number;
    for item in &others[pos..] {
        if item.number > needed {
            break;
        }
        needed = needed
            .checked_add(1)
            .ok_or_else(|| Error::invalid("Renumbering would exceed the highest rule number"))?;
        changes.push((item.id.to_string(), needed));
    }
    Ok(changes)
}

/// Name of the list createNetworkACL makes for a tier that has none when
/// the rule is given by `networkid`.
pub fn auto_list_name(vpc_name: &str, tier_name: &str, tier_uuid: &str) -> String {
    format!("VPC_{vpc_name}_Tier_{tier_name}_ACL_{tier_uuid}")
}

#[cfg(test)]
mod tests;
