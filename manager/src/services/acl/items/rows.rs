//! ACL item rows: what a request asks for ([`ItemFields`], [`MoveFields`]),
//! the business rules' picture of an item and the stored row, converted into
//! one another and checked; the renumbering of a move.

use serde::{Deserialize, Serialize};

use super::super::md5::md5_hex;
use crate::error::Error;
use crate::rules::PortRange;
use crate::rules::acl::{self as rule, AclProtocol, Action, TrafficType};
use crate::store::acl;

pub(super) fn action_text(a: Action) -> &'static str {
    match a {
        Action::Allow => "Allow",
        Action::Deny => "Deny",
    }
}

pub(super) fn traffic_text(t: TrafficType) -> &'static str {
    match t {
        TrafficType::Ingress => "Ingress",
        TrafficType::Egress => "Egress",
    }
}

/// The row of a checked item.
pub(super) fn stored(
    checked: &rule::AclItem,
    acl_id: i64,
    reason: Option<std::string::String>,
) -> acl::NewAclItem {
    acl::NewAclItem {
        acl_id,
        number: Some(i64::from(checked.number)),
        action: action_text(checked.action).into(),
        traffic_type: traffic_text(checked.traffic_type).into(),
        protocol: checked.protocol.as_string(),
        start_port: checked.ports.map(|p| i64::from(p.start)),
        end_port: checked.ports.map(|p| i64::from(p.end)),
        icmp_type: checked.icmp_type.map(i64::from),
        icmp_code: checked.icmp_code.map(i64::from),
        cidrs: checked.cidrs.iter().map(|c| c.to_string()).collect(),
        reason,
    }
}

/// A stored row as it is, to put it back after a failed push.
pub(super) fn as_new(item: &acl::AclItem) -> acl::NewAclItem {
    acl::NewAclItem {
        acl_id: item.acl_id,
        number: Some(item.number),
        action: item.action.clone(),
        traffic_type: item.traffic_type.clone(),
        protocol: item.protocol.clone(),
        start_port: item.start_port,
        end_port: item.end_port,
        icmp_type: item.icmp_type,
        icmp_code: item.icmp_code,
        cidrs: item.cidrs().into_iter().map(str::to_string).collect(),
        reason: item.reason.clone(),
    }
}

/// The rules' picture of a stored item.
pub(super) fn checked_of(item: &acl::AclItem) -> Result<rule::AclItem, Error> {
    Ok(rule::AclItem {
        number: u32::try_from(item.number).unwrap_or_default(),
        protocol: AclProtocol::parse(&item.protocol)?,
        ports: item
            .start_port
            .map(|s| PortRange::new("port", s, item.end_port, 0))
            .transpose()?,
        icmp_type: item.icmp_type.and_then(|v| i32::try_from(v).ok()),
        icmp_code: item.icmp_code.and_then(|v| i32::try_from(v).ok()),
        cidrs: rule::parse_cidr_list(&item.cidrs())?,
        action: Action::parse(Some(&item.action))?,
        traffic_type: TrafficType::parse(Some(&item.traffic_type))?,
    })
}

/// The numbers a new item is checked against ([`checked_new`]) when the
/// list's items are counted rather than read: the asked number when an
/// item has it (refused as taken), and the highest (a new item without a
/// number goes one past it). The same answer as all the list's numbers
/// give.
pub(super) fn numbers_to_check(numbers: &acl::ItemNumbers) -> Vec<u32> {
    numbers
        .max
        .into_iter()
        .chain(numbers.taken)
        .filter_map(|n| u32::try_from(n).ok())
        .collect()
}

/// The item fields a request gives (createNetworkACL, updateNetworkACLItem),
/// stored in the update's job under the parameters' names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemFields {
    /// None when absent or empty.
    pub protocol: Option<String>,
    #[serde(rename = "startport")]
    pub start_port: Option<i64>,
    #[serde(rename = "endport")]
    pub end_port: Option<i64>,
    #[serde(rename = "icmptype")]
    pub icmp_type: Option<i64>,
    #[serde(rename = "icmpcode")]
    pub icmp_code: Option<i64>,
    #[serde(rename = "cidrlist")]
    pub cidrs: Option<Vec<String>>,
    /// None when absent or empty.
    pub action: Option<String>,
    /// None when absent or empty.
    #[serde(rename = "traffictype")]
    pub traffic_type: Option<String>,
    pub number: Option<i64>,
    /// An empty reason clears it.
    pub reason: Option<String>,
    /// updateNetworkACLItem's `partialupgrade` (None: true).
    #[serde(rename = "partialupgrade")]
    pub partial: Option<bool>,
}

/// Where moveNetworkAclItem puts an item, stored in its job under the
/// parameters' names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveFields {
    /// The item it goes after (None: to the top).
    #[serde(rename = "previousaclruleid")]
    pub previous: Option<String>,
    /// The item it goes before (None: to the bottom).
    #[serde(rename = "nextaclruleid")]
    pub next: Option<String>,
    #[serde(rename = "aclconsistencyhash")]
    pub consistency_hash: Option<String>,
}

/// The `cidrlist` of an item's fields.
fn cidrs_of(fields: &ItemFields) -> Vec<&str> {
    fields
        .cidrs
        .as_deref()
        .map(|a| a.iter().map(String::as_str).collect())
        .unwrap_or_default()
}

/// The item `fields` describe, as the rules take it.
fn new_item<'a>(fields: &'a ItemFields, cidrs: &'a [&'a str]) -> rule::NewAclItem<'a> {
    rule::NewAclItem {
        protocol: fields.protocol.as_deref().unwrap_or_default(),
        start_port: fields.start_port,
        end_port: fields.end_port,
        icmp_type: fields.icmp_type,
        icmp_code: fields.icmp_code,
        cidrs,
        action: fields.action.as_deref(),
        traffic_type: fields.traffic_type.as_deref(),
        number: fields.number,
    }
}

/// The item `fields` describe, checked against the list's other numbers.
pub(super) fn checked_new(fields: &ItemFields, taken: &[u32]) -> Result<rule::AclItem, Error> {
    let cidrs = cidrs_of(fields);
    rule::validate_item(&new_item(fields, &cidrs), taken)
}

/// The row `item` becomes with the changes `fields` (updateNetworkACLItem).
pub(super) fn merged(
    item: &acl::AclItem,
    fields: &ItemFields,
    taken_by_others: &[u32],
) -> Result<acl::NewAclItem, Error> {
    let cidrs = cidrs_of(fields);
    let partial = fields.partial.unwrap_or(true);
    let checked = rule::validate_update(
        &checked_of(item)?,
        &new_item(fields, &cidrs),
        partial,
        taken_by_others,
    )?;
    let reason = match &fields.reason {
        Some(r) => Some(r.clone()),
        None if partial => item.reason.clone(),
        None => None,
    };
    Ok(stored(&checked, item.acl_id, reason))
}

/// Refuses a move when the client saw the list in another order (the MD5 of
/// the item ids in number order differs), as CloudStack does.
pub(super) fn check_consistency(items: &[acl::ItemPlace], hash: Option<&str>) -> Result<(), Error> {
    let Some(hash) = hash.filter(|h| !h.trim().is_empty()) else {
        return Ok(());
    };
    let ids: std::string::String = items.iter().map(|i| i.uuid.to_string()).collect();
    if !md5_hex(ids.as_bytes()).eq_ignore_ascii_case(hash.trim()) {
        return Err(Error::invalid(
            "It seems that the access control list in the database is not in the state that \
             you used to apply the changes (aclconsistencyhash differs); read the list again \
             and retry",
        ));
    }
    Ok(())
}

/// The renumbering of a move as (item id, new number), checked: linear in
/// the list's size, whatever the number of items renumbered.
pub(super) fn renumbering(
    items: &[acl::ItemPlace],
    moving: &acl::AclItem,
    fields: &MoveFields,
) -> Result<Vec<(i64, i64)>, Error> {
    check_consistency(items, fields.consistency_hash.as_deref())?;
    // The move rule works on the ids as the client gives them: text.
    let texts: Vec<std::string::String> = items.iter().map(|i| i.uuid.to_string()).collect();
    let positioned: Vec<rule::Positioned<'_>> = items
        .iter()
        .zip(&texts)
        .map(|(i, id)| rule::Positioned {
            id,
            number: u32::try_from(i.number).unwrap_or_default(),
        })
        .collect();
    let changes = rule::move_item(
        &positioned,
        &moving.uuid.to_string(),
        fields.previous.as_deref(),
        fields.next.as_deref(),
    )?;
    let row_of: std::collections::HashMap<&str, i64> = texts
        .iter()
        .zip(items)
        .map(|(text, i)| (text.as_str(), i.id))
        .collect();
    Ok(changes
        .into_iter()
        .filter_map(|(uuid, number)| row_of.get(uuid.as_str()).map(|id| (*id, i64::from(number))))
        .collect())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// Fields as a job row of either version stores them.
    fn item_fields(stored: Value) -> ItemFields {
        serde_json::from_value(stored).unwrap()
    }

    fn move_fields(stored: Value) -> MoveFields {
        serde_json::from_value(stored).unwrap()
    }

    /// The item id a one-letter name stands for (`a` is `…00a`).
    fn uuid_of(letter: &str) -> uuid::Uuid {
        format!("00000000-0000-0000-0000-00000000000{letter}")
            .parse()
            .unwrap()
    }

    fn row(id: i64, letter: &str, number: i64) -> acl::AclItem {
        acl::AclItem {
            id,
            uuid: uuid_of(letter),
            acl_id: 9,
            number,
            action: "Allow".into(),
            traffic_type: "Ingress".into(),
            protocol: "tcp".into(),
            start_port: Some(22),
            end_port: Some(22),
            icmp_type: None,
            icmp_code: None,
            cidr_list: "10.0.0.0/8".into(),
            state: acl::ITEM_ACTIVE,
            reason: Some("ssh".into()),
            created: 0,
            removed: None,
        }
    }

    fn place(row: &acl::AclItem) -> acl::ItemPlace {
        acl::ItemPlace {
            id: row.id,
            uuid: row.uuid,
            number: row.number,
        }
    }

    #[test]
    fn stored_rows_round_trip_through_the_rules() {
        let item = row(1, "a", 3);
        let checked = checked_of(&item).unwrap();
        let back = stored(&checked, item.acl_id, item.reason.clone());
        let same = as_new(&item);
        assert_eq!(
            (back.number, back.protocol, back.start_port, back.end_port),
            (same.number, same.protocol, same.start_port, same.end_port)
        );
        assert_eq!(back.cidrs, same.cidrs);
        assert_eq!(
            (back.action, back.traffic_type),
            (same.action, same.traffic_type)
        );
    }

    #[test]
    fn partial_update_keeps_the_reason_and_full_update_drops_it() {
        let item = row(1, "a", 3);
        let partial = merged(&item, &item_fields(json!({ "action": "deny" })), &[]).unwrap();
        assert_eq!(partial.action, "Deny");
        assert_eq!(partial.start_port, Some(22));
        assert_eq!(partial.reason.as_deref(), Some("ssh"));
        let full = merged(
            &item,
            &item_fields(json!({ "protocol": "udp", "partialupgrade": false })),
            &[],
        )
        .unwrap();
        assert_eq!((full.protocol.as_str(), full.start_port), ("udp", None));
        assert_eq!(full.cidrs, ["0.0.0.0/0", "::/0"]);
        assert_eq!(full.reason, None);
        let clash = merged(&item, &item_fields(json!({ "number": 4 })), &[4])
            .map_err(crate::api::ApiError::from)
            .unwrap_err();
        assert_eq!(clash.code, 431);
    }

    #[test]
    fn moves_honour_the_consistency_hash() {
        let rows = [row(1, "a", 1), row(2, "b", 2), row(3, "c", 3)];
        let items: Vec<acl::ItemPlace> = rows.iter().map(place).collect();
        let (a, b, c) = (uuid_of("a"), uuid_of("b"), uuid_of("c"));
        let fields = move_fields(json!({ "previousaclruleid": a, "nextaclruleid": b }));
        assert_eq!(
            renumbering(&items, &rows[2], &fields).unwrap(),
            vec![(3, 2), (2, 3)]
        );
        let good = move_fields(json!({
            "nextaclruleid": a,
            "aclconsistencyhash": md5_hex(format!("{a}{b}{c}").as_bytes()),
        }));
        assert_eq!(
            renumbering(&items, &rows[2], &good).unwrap(),
            vec![(3, 1), (1, 2), (2, 3)]
        );
        let stale = move_fields(
            json!({ "nextaclruleid": a, "aclconsistencyhash": md5_hex(format!("{a}{c}{b}").as_bytes()) }),
        );
        let e = renumbering(&items, &rows[2], &stale)
            .map_err(crate::api::ApiError::from)
            .unwrap_err();
        assert_eq!(e.code, 431);
        assert!(e.text.contains("aclconsistencyhash"), "{}", e.text);
    }

    #[test]
    fn update_fields_read_the_job_rows_the_previous_version_stored() {
        // The previous version stored every field, absent ones as null.
        let stored = json!({
            "protocol": "tcp", "startport": 80, "endport": null, "icmptype": null,
            "icmpcode": null, "cidrlist": ["10.1.0.0/16"], "action": null,
            "traffictype": "Egress", "number": 7, "reason": "", "partialupgrade": false,
        });
        let fields = item_fields(stored.clone());
        assert_eq!(fields.protocol.as_deref(), Some("tcp"));
        assert_eq!((fields.start_port, fields.end_port), (Some(80), None));
        assert_eq!(fields.cidrs, Some(vec!["10.1.0.0/16".to_string()]));
        assert_eq!(fields.traffic_type.as_deref(), Some("Egress"));
        assert_eq!((fields.number, fields.partial), (Some(7), Some(false)));
        assert_eq!(fields.reason.as_deref(), Some(""));
        assert_eq!(serde_json::to_value(&fields).unwrap(), stored);
    }
}
