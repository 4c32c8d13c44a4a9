//! Network ACLs: the item lists of tiers and private gateways.

use std::collections::{BTreeMap, BTreeSet};

use vpc_proto::v1 as pb;

use super::nics::nic_ref;
use super::{Result, bad, network, port_range, text};
use crate::model::*;

impl Router {
    /// This router with NIC `acl.device_index`'s ACL replaced (removed when
    /// the list is empty), validating only that ACL: a one-item change to a
    /// long list must not re-validate every other list of the router.
    /// `per_entry` bounds the set elements per item and CIDR.
    pub fn with_acl(&self, acl: &pb::NetworkAcl, per_entry: usize) -> Result<Router> {
        self.with_acl_from(acl, per_entry, None)
    }

    /// [`Router::with_acl`], given the list this router's ACL of that NIC
    /// was validated from: its items that come again unchanged are taken
    /// as validated then instead of being parsed again.
    pub fn with_acl_from(
        &self,
        acl: &pb::NetworkAcl,
        per_entry: usize,
        before: Option<&pb::NetworkAcl>,
    ) -> Result<Router> {
        let nic = nic_ref(
            &self.nics,
            "acl.device_index",
            acl.device_index,
            Some(("acl.mac_address", &acl.mac_address)),
            &[Role::Guest, Role::Private],
        )?;
        labels("acl", acl)?;
        let mut next = self.clone();
        if acl.items.is_empty() {
            next.acls.remove(&nic.index);
        } else {
            next.acls.insert(
                nic.index,
                std::sync::Arc::new(self::acl(
                    "acl.items",
                    nic.index,
                    &acl.items,
                    per_entry,
                    self.acls
                        .get(&nic.index)
                        .map(|a| &**a)
                        .zip(before.map(|b| b.items.as_slice())),
                )?),
            );
        }
        Ok(next)
    }

    /// This router with an edit of NIC `labels.device_index`'s list, which
    /// it holds: the items numbered `removed` taken out and `added` put in
    /// (in any order, each with its index in the list after the edit, of
    /// `len` items), the list labelled `labels`. Only the added items are
    /// checked, with the errors the whole list would give (the items that
    /// stay were checked when they came); `None` when this router holds no
    /// list for that NIC.
    pub fn with_acl_edit(
        &self,
        labels: &pb::NetworkAcl,
        removed: &[u32],
        added: &[(usize, &pb::AclItem)],
        per_entry: usize,
    ) -> Option<Result<Router>> {
        let old = self.acls.get(&labels.device_index)?;
        Some(self.edited(labels, old, removed, added, per_entry))
    }

    fn edited(
        &self,
        labels: &pb::NetworkAcl,
        old: &Acl,
        removed: &[u32],
        added: &[(usize, &pb::AclItem)],
        per_entry: usize,
    ) -> Result<Router> {
        let nic = nic_ref(
            &self.nics,
            "acl.device_index",
            labels.device_index,
            Some(("acl.mac_address", &labels.mac_address)),
            &[Role::Guest, Role::Private],
        )?;
        self::labels("acl", labels)?;
        let kept = |number: u32| {
            !removed.contains(&number)
                && old
                    .rules
                    .binary_search_by_key(&number, |r| r.number)
                    .is_ok()
        };
        let mut came: Vec<std::sync::Arc<AclRule>> = Vec::with_capacity(added.len());
        for &(i, item) in added {
            let f = |name: &str| format!("acl.items[{i}].{name}");
            first_checks(&f, item)?;
            if kept(item.number) || came.iter().any(|r| r.number == item.number) {
                return Err(bad(
                    f("number"),
                    format!("{} is used by two items", item.number),
                ));
            }
            came.push(std::sync::Arc::new(item_rule(&f, item)?));
        }
        // Checked in the order given (the first bad item is the one the
        // whole list names), merged by number.
        came.sort_by_key(|r| r.number);
        // The rules that stay and those that came, merged by number.
        let mut rules = Vec::with_capacity(old.rules.len() + came.len());
        let mut came = came.into_iter().peekable();
        for rule in old.rules.iter().filter(|r| !removed.contains(&r.number)) {
            while let Some(new) = came.next_if(|c| c.number < rule.number) {
                rules.push(new);
            }
            rules.push(rule.clone());
        }
        rules.extend(came);
        let acl = compiled_acl("acl.items", nic.index, rules, per_entry, Some(old))?;
        let mut next = self.clone();
        next.acls.insert(nic.index, std::sync::Arc::new(acl));
        Ok(next)
    }
}

pub(super) fn acls(
    nics: &BTreeMap<u32, Nic>,
    wire: &[pb::NetworkAcl],
    per_entry: usize,
) -> Result<BTreeMap<u32, std::sync::Arc<Acl>>> {
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
        labels(&format!("network_acls[{i}]"), a)?;
        let acl = acl(&f("items"), nic.index, &a.items, per_entry, None)?;
        if out.insert(nic.index, std::sync::Arc::new(acl)).is_some() {
            return Err(bad(
                f("device_index"),
                format!("eth{} has two ACLs", nic.index),
            ));
        }
    }
    Ok(out)
}

/// The list's id and name, which only label it, still have their grammar.
fn labels(field: &str, acl: &pb::NetworkAcl) -> Result<()> {
    text::identifier(&format!("{field}.acl_id"), &acl.acl_id)?;
    text::name(&format!("{field}.acl_name"), &acl.acl_name)
}

/// Validates one NIC's item list, sorts it by number and compiles each
/// direction within `per_entry` set elements per item and CIDR. With
/// `previous` (the NIC's list before, validated and compiled within the
/// same bound, and the items it came from), an item that comes again
/// unchanged is taken as validated then, and the list is compiled from the
/// previous compile when the change allows (see
/// [`crate::plan::acl::incremental`]).
pub(crate) fn acl(
    field: &str,
    index: u32,
    items: &[pb::AclItem],
    per_entry: usize,
    previous: Option<(&Acl, &[pb::AclItem])>,
) -> Result<Acl> {
    let mut rules = Vec::with_capacity(items.len());
    let mut numbers = BTreeSet::new();
    let before: std::collections::HashMap<u32, &pb::AclItem> = previous
        .map(|(_, items)| items.iter().map(|i| (i.number, i)).collect())
        .unwrap_or_default();
    let previous = previous.map(|(acl, _)| acl);
    for (i, item) in items.iter().enumerate() {
        let f = |name: &str| format!("{field}[{i}].{name}");
        let validated = previous
            .filter(|_| before.get(&item.number) == Some(&item))
            .and_then(|old| {
                let at = old.rules.binary_search_by_key(&item.number, |r| r.number);
                at.ok().map(|at| &old.rules[at])
            });
        if let Some(rule) = validated {
            if !numbers.insert(item.number) {
                return Err(bad(
                    f("number"),
                    format!("{} is used by two items", item.number),
                ));
            }
            rules.push(rule.clone());
            continue;
        }
        first_checks(&f, item)?;
        if !numbers.insert(item.number) {
            return Err(bad(
                f("number"),
                format!("{} is used by two items", item.number),
            ));
        }
        rules.push(std::sync::Arc::new(item_rule(&f, item)?));
    }
    rules.sort_by_key(|r| r.number);
    compiled_acl(field, index, rules, per_entry, previous)
}

/// The ACL of NIC `index` made of `rules` (in number order), each direction
/// compiled within `per_entry` elements per item and CIDR, from `previous`'s
/// compile when the change allows.
fn compiled_acl(
    field: &str,
    index: u32,
    rules: Vec<std::sync::Arc<AclRule>>,
    per_entry: usize,
    previous: Option<&Acl>,
) -> Result<Acl> {
    let compile = |direction: Direction| {
        let list: Vec<&AclRule> = rules
            .iter()
            .map(|r| &**r)
            .filter(|r| r.direction == direction)
            .collect();
        let compiled = match previous {
            Some(old) => {
                let old_list: Vec<&AclRule> = old.rules(direction).collect();
                crate::plan::acl::compile_from(&old_list, old.compiled(direction), &list, per_entry)
            }
            None => crate::plan::acl::compile_bounded(&list, per_entry),
        };
        compiled.map_err(|e| {
            let name = match direction {
                Direction::Ingress => "ingress",
                Direction::Egress => "egress",
            };
            bad(field, format!("{name}: {e}"))
        })
    };
    let ingress = compile(Direction::Ingress)?;
    let egress = compile(Direction::Egress)?;
    Ok(Acl {
        index,
        rules,
        ingress,
        egress,
    })
}

/// The checks of an item that come before the look for its number in the
/// rest of the list (the order fixes which error a bad item gets).
fn first_checks(f: &dyn Fn(&str) -> String, item: &pb::AclItem) -> Result<()> {
    text::identifier(&f("id"), &item.id)?;
    // CloudStack numbers ACL items from 1 (createNetworkACL refuses a
    // number below 1; the manager never sends 0).
    if item.number == 0 {
        return Err(bad(
            f("number"),
            "0 is not an item number (they start at 1)",
        ));
    }
    Ok(())
}

/// The rest of an item's checks, and the rule it makes.
fn item_rule(f: &dyn Fn(&str) -> String, item: &pb::AclItem) -> Result<AclRule> {
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
    Ok(AclRule {
        number: item.number,
        id: item.id.clone(),
        action,
        direction,
        matches,
        cidrs,
    })
}
