//! The ACL items' hit counters, read from `nft -j list table`.
//!
//! Each element of an ACL set carries a counter and, as its comment, the
//! number of the item it came from (see [`super::acl`]); an item's counts
//! are the sum over its elements in every set of its NIC's chain of one
//! direction. Sums are per NIC, direction and item number.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::Direction;

/// Packets and bytes, by (NIC index, direction, item number, item id; the id
/// is empty for an item sent without one).
pub type ItemCounters = BTreeMap<(u32, Direction, u32, String), (u64, u64)>;

/// Packets and bytes, by (ACL chain, item as [`super::acl::item_of_tag`]
/// names it): what a rebuilt chain carries over to its new elements.
pub type ChainCounts = BTreeMap<(String, String), (u64, u64)>;

/// The NIC and direction of an ACL set, from its name
/// (`acl_inbound_eth<N>_l…` or `acl_outbound_eth<N>_l…`).
fn set_owner(name: &str) -> Option<(u32, Direction)> {
    let (direction, rest) = if let Some(rest) = name.strip_prefix("acl_inbound_eth") {
        (Direction::Ingress, rest)
    } else if let Some(rest) = name.strip_prefix("acl_outbound_eth") {
        (Direction::Egress, rest)
    } else {
        return None;
    };
    let (index, _) = rest.split_once('_')?;
    Some((index.parse().ok()?, direction))
}

/// One counted element: NIC index, direction, tag, packets, bytes.
type Tagged = (u32, Direction, String, u64, u64);

/// Every counted, tagged element of the ACL sets in a JSON listing (of the
/// table or of single sets): (NIC index, direction, tag, packets, bytes).
fn tagged_elements(json: &str) -> Result<Vec<Tagged>, String> {
    let mut out = Vec::new();
    // `nft -j -f` of several `list set` commands prints one document each.
    for doc in serde_json::Deserializer::from_str(json).into_iter::<Value>() {
        let doc = doc.map_err(|e| format!("nft -j output: {e}"))?;
        let items = doc
            .get("nftables")
            .and_then(Value::as_array)
            .ok_or("nft -j output has no \"nftables\" array")?;
        for set in items.iter().filter_map(|i| i.get("set")) {
            let Some(owner) = set.get("name").and_then(Value::as_str).and_then(set_owner) else {
                continue;
            };
            for element in set
                .get("elem")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|e| e.get("elem"))
            {
                let tag = element.get("comment").and_then(Value::as_str);
                let counter = element.get("counter");
                let count =
                    |field: &str| counter.and_then(|c| c.get(field)).and_then(Value::as_u64);
                if let (Some(tag), Some(packets), Some(bytes)) =
                    (tag, count("packets"), count("bytes"))
                {
                    out.push((owner.0, owner.1, tag.to_string(), packets, bytes));
                }
            }
        }
    }
    Ok(out)
}

/// The items' counts in a JSON listing of the table. Elements without an
/// item comment or a counter (not the agent's) are skipped.
pub fn item_counters(json: &str) -> Result<ItemCounters, String> {
    let mut out = ItemCounters::new();
    for (index, direction, tag, packets, bytes) in tagged_elements(json)? {
        let (number, id) = tag.split_once(' ').unwrap_or((tag.as_str(), ""));
        let Ok(number) = number.parse::<u32>() else {
            continue;
        };
        let sum = out
            .entry((index, direction, number, id.to_string()))
            .or_default();
        sum.0 += packets;
        sum.1 += bytes;
    }
    // Items that decided nothing are left out, as if they had no element.
    out.retain(|_, (packets, _)| *packets > 0);
    Ok(out)
}

/// The counts per ACL chain and item in a JSON listing, for carrying them
/// over to the elements that replace these.
pub fn chain_counts(json: &str) -> Result<ChainCounts, String> {
    let mut out = ChainCounts::new();
    for (index, direction, tag, packets, bytes) in tagged_elements(json)? {
        let Some(item) = super::acl::item_of_tag(&tag) else {
            continue;
        };
        let chain = match direction {
            Direction::Ingress => super::inbound_chain(index),
            Direction::Egress => super::outbound_chain(index),
        };
        let sum = out.entry((chain, item.to_string())).or_default();
        sum.0 += packets;
        sum.1 += bytes;
    }
    out.retain(|_, (packets, _)| *packets > 0);
    Ok(out)
}

/// The counts per ACL chain and item in nft's text answer to `get element`
/// on the ACL set `set` (nft prints that answer as text even with `-j`):
/// every `counter packets P bytes B comment "<tag>"` in it.
pub fn chain_counts_of_elements(set: &str, text: &str) -> ChainCounts {
    let mut out = ChainCounts::new();
    let Some((index, direction)) = set_owner(set) else {
        return out;
    };
    let chain = match direction {
        Direction::Ingress => super::inbound_chain(index),
        Direction::Egress => super::outbound_chain(index),
    };
    for part in text.split("counter packets ").skip(1) {
        let mut words = part.split_whitespace();
        let packets = words.next().and_then(|w| w.parse::<u64>().ok());
        let bytes = (words.next() == Some("bytes"))
            .then(|| words.next().and_then(|w| w.parse::<u64>().ok()))
            .flatten();
        let tag = part
            .split_once("comment \"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(tag, _)| tag);
        if let (Some(packets), Some(bytes), Some(item)) =
            (packets, bytes, tag.and_then(super::acl::item_of_tag))
        {
            let sum = out.entry((chain.clone(), item.to_string())).or_default();
            sum.0 += packets;
            sum.1 += bytes;
        }
    }
    out.retain(|_, (packets, _)| *packets > 0);
    out
}

/// The counts per ACL chain and item of elements of the ACL set `set`
/// read back one by one (their comments and counts), as
/// [`chain_counts_of_elements`] reads nft's text answer.
pub fn chain_counts_of_read<'a>(
    set: &str,
    elements: impl IntoIterator<Item = (&'a str, (u64, u64))>,
) -> ChainCounts {
    let mut out = ChainCounts::new();
    let Some((index, direction)) = set_owner(set) else {
        return out;
    };
    let chain = match direction {
        Direction::Ingress => super::inbound_chain(index),
        Direction::Egress => super::outbound_chain(index),
    };
    for (tag, (packets, bytes)) in elements {
        if let Some(item) = super::acl::item_of_tag(tag) {
            let sum = out.entry((chain.clone(), item.to_string())).or_default();
            sum.0 += packets;
            sum.1 += bytes;
        }
    }
    out.retain(|_, (packets, _)| *packets > 0);
    out
}

/// A JSON listing with every counter's values removed: what the table *is*,
/// without what traffic did to it, so two listings of an unchanged table
/// compare equal while packets flow.
pub fn without_counts(json: &str) -> String {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                if let Some(counter) = map.get_mut("counter")
                    && counter.is_object()
                {
                    *counter = Value::Null;
                }
                map.values_mut().for_each(strip);
            }
            Value::Array(list) => list.iter_mut().for_each(strip),
            _ => {}
        }
    }
    match serde_json::from_str::<Value>(json) {
        Ok(mut doc) => {
            strip(&mut doc);
            doc.to_string()
        }
        Err(_) => json.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The shape of nft 1.0.6's listing of an ACL set with counters.
    const LISTING: &str = r#"{"nftables": [
        {"metainfo": {"version": "1.0.6"}},
        {"set": {"family": "inet", "name": "acl_inbound_eth2_l0_allow_v4_ports",
          "table": "vpc", "type": ["ipv4_addr", "inet_proto", "inet_service"],
          "flags": ["interval"], "stmt": [{"counter": null}], "elem": [
            {"elem": {"val": {"concat": [{"prefix": {"addr": "10.0.0.0", "len": 8}}, "tcp",
              {"range": [80, 90]}]}, "comment": "7", "counter": {"packets": 5, "bytes": 300}}},
            {"elem": {"val": {"concat": [{"prefix": {"addr": "10.1.0.0", "len": 16}}, "udp",
              53]}, "comment": "7", "counter": {"packets": 2, "bytes": 100}}},
            {"elem": {"val": {"concat": [{"prefix": {"addr": "10.2.0.0", "len": 16}}, "udp",
              53]}, "comment": "9 web-9", "counter": {"packets": 0, "bytes": 0}}}]}},
        {"set": {"family": "inet", "name": "acl_inbound_eth2_l1_deny_v4_proto",
          "table": "vpc", "elem": [
            {"elem": {"val": "x", "comment": "9 web-9", "counter": {"packets": 1, "bytes": 60}}}]}},
        {"set": {"family": "inet", "name": "acl_outbound_eth12_l0_deny_v4_proto",
          "table": "vpc", "elem": [
            {"elem": {"val": "x", "comment": "7", "counter": {"packets": 4, "bytes": 40}}}]}},
        {"set": {"family": "inet", "name": "static_nat", "table": "vpc", "elem": [
            {"elem": {"val": "x", "comment": "7", "counter": {"packets": 4, "bytes": 40}}}]}}
    ]}"#;

    #[test]
    fn counts_are_summed_per_nic_direction_and_item_over_every_set() {
        let counts = item_counters(LISTING).unwrap();
        assert_eq!(
            counts,
            BTreeMap::from([
                ((2, Direction::Ingress, 7, String::new()), (7, 400)),
                ((2, Direction::Ingress, 9, "web-9".into()), (1, 60)),
                ((12, Direction::Egress, 7, String::new()), (4, 40)),
            ])
        );
    }

    #[test]
    fn chain_counts_follow_the_item_id_and_read_one_document_per_listed_set() {
        let two = format!("{LISTING}\n{LISTING}");
        let counts = chain_counts(&two).unwrap();
        assert_eq!(
            counts,
            BTreeMap::from([
                (("ACL_INBOUND_eth2".into(), "7".into()), (14, 800)),
                (("ACL_INBOUND_eth2".into(), "web-9".into()), (2, 120)),
                (("ACL_OUTBOUND_eth12".into(), "7".into()), (8, 80)),
            ])
        );
    }

    #[test]
    fn get_element_answers_are_read_per_item() {
        let text = "table inet vpc {\n\tset acl_outbound_eth3_l0_allow_v4_ports {\n\
            \t\telements = { 10.0.0.0/8 . tcp . 80-90 counter packets 5 bytes 300 comment \"7 a\",\n\
            \t\t\t     10.1.0.0/16 . udp . 53 counter packets 2 bytes 20 comment \"7 a\",\n\
            \t\t\t     10.2.0.0/16 . udp . 53 counter packets 1 bytes 9 comment \"8\" }\n\t}\n}\n";
        assert_eq!(
            chain_counts_of_elements("acl_outbound_eth3_l0_allow_v4_ports", text),
            BTreeMap::from([
                (("ACL_OUTBOUND_eth3".into(), "a".into()), (7, 320)),
                (("ACL_OUTBOUND_eth3".into(), "8".into()), (1, 9)),
            ])
        );
        assert!(chain_counts_of_elements("static_nat", text).is_empty());
    }

    #[test]
    fn elements_read_back_are_summed_per_item() {
        let read = [
            ("7 a", (5, 300)),
            ("7 a", (2, 20)),
            ("8", (1, 9)),
            ("9", (0, 0)),
        ];
        assert_eq!(
            chain_counts_of_read("acl_inbound_eth3_l1_deny_v4_proto", read),
            BTreeMap::from([
                (("ACL_INBOUND_eth3".into(), "a".into()), (7, 320)),
                (("ACL_INBOUND_eth3".into(), "8".into()), (1, 9)),
            ])
        );
        assert!(chain_counts_of_read("pf_shifted", read).is_empty());
    }

    #[test]
    fn a_listing_without_the_array_is_an_error() {
        assert!(item_counters("{}").is_err());
        assert!(item_counters("not json").is_err());
    }

    #[test]
    fn listings_that_differ_only_in_counts_compare_equal_once_stripped() {
        let moved = LISTING.replace("\"packets\": 5", "\"packets\": 6");
        assert_ne!(moved, LISTING);
        assert_eq!(without_counts(&moved), without_counts(LISTING));
        let changed = LISTING.replace("\"comment\": \"7\"", "\"comment\": \"8\"");
        assert_ne!(without_counts(&changed), without_counts(LISTING));
    }
}
