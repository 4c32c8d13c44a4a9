//! The zone's public IP ranges, one command per file: `createVlanIpRange`,
//! `listVlanIpRanges`, `deleteVlanIpRange`; the checks of a range's VLAN and
//! addresses (pure) and its view.

mod create;
mod delete;
mod list;

pub use create::CreateVlanIpRange;
pub use delete::DeleteVlanIpRange;
pub use list::ListVlanIpRanges;

use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::{MAX_VLAN, zone_uuid_and_name};
use crate::error::Error;
use crate::server::registry::{FieldSpec, field};
use crate::store::{Db, vlan, zone};

/// How an untagged public range's VLAN is stored and shown.
const UNTAGGED: &str = "vlan://untagged";

// ---------------------------------------------------------------- views

async fn range_view(db: &Db, r: &vlan::VlanRange) -> Result<Value, Error> {
    let zone_uuid = zone_uuid_and_name(db, r.zone_id)
        .await?
        .map(|(uuid, _)| uuid);
    let physnet_uuid = match r.physical_network_id {
        Some(id) => zone::physical_network_by_id(db, id).await?.map(|p| p.uuid),
        None => None,
    };
    Ok(json!({
        "id": r.uuid,
        "forvirtualnetwork": true,
        "zoneid": zone_uuid,
        "vlan": r.vlan_id,
        "gateway": r.gateway,
        "netmask": r.netmask,
        "startip": r.start_ip,
        "endip": r.end_ip,
        "description": format!("{}-{}", r.start_ip, r.end_ip),
        "physicalnetworkid": physnet_uuid,
        "forsystemvms": false,
    }))
}

const RANGE_FIELDS: &[FieldSpec] = &[
    field("id", "string", "the ID of the public IP range"),
    field(
        "forvirtualnetwork",
        "boolean",
        "true: the range serves public IPs of virtual (VPC) networks",
    ),
    field("zoneid", "string", "the ID of the zone"),
    field(
        "vlan",
        "string",
        "the VLAN of the range: vlan://<n> or vlan://untagged",
    ),
    field("gateway", "string", "the gateway of the range's subnet"),
    field("netmask", "string", "the netmask of the range's subnet"),
    field("startip", "string", "the first address of the range"),
    field("endip", "string", "the last address of the range"),
    field("description", "string", "the range as startip-endip"),
    field(
        "physicalnetworkid",
        "string",
        "the ID of the physical network",
    ),
    field(
        "forsystemvms",
        "boolean",
        "whether the range is reserved for system VMs (never)",
    ),
];

// ---------------------------------------------------------------- checks

/// A public range's VLAN as stored: `vlan://<n>` or `vlan://untagged`.
pub fn normalize_public_vlan(text: Option<&str>) -> Result<String, Error> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(UNTAGGED.to_string());
    };
    let lower = text.to_ascii_lowercase();
    let tag = lower.strip_prefix("vlan://").unwrap_or(&lower);
    if tag == "untagged" {
        return Ok(UNTAGGED.to_string());
    }
    match tag.parse::<u64>() {
        Ok(n) if (1..=MAX_VLAN).contains(&n) && tag.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(format!("vlan://{n}"))
        }
        _ => Err(Error::invalid(format!(
            "vlan {text} is invalid: use untagged or a VLAN id from 1 to {MAX_VLAN}"
        ))),
    }
}

/// The addresses of a range as sent: `end` empty or absent means `start`.
struct RangeText<'a> {
    gateway: &'a str,
    netmask: &'a str,
    start: &'a str,
    end: Option<&'a str>,
}

/// A checked public range: the addresses and the subnet they belong to.
struct CheckedRange {
    gateway: Ipv4Addr,
    netmask: Ipv4Addr,
    start: Ipv4Addr,
    end: Ipv4Addr,
    subnet: ipnet::Ipv4Net,
}

fn ipv4(name: &str, text: &str) -> Result<Ipv4Addr, Error> {
    text.trim()
        .parse()
        .map_err(|_| Error::invalid(format!("{name} {text} is not an IPv4 address")))
}

/// Checks a range: addresses, a netmask with room for a gateway and a
/// range, the range inside the gateway's subnet, neither the gateway nor
/// the subnet's network or broadcast address in it, and not too large.
fn check_range(text: &RangeText<'_>) -> Result<CheckedRange, Error> {
    let gateway = ipv4("gateway", text.gateway)?;
    let netmask = ipv4("netmask", text.netmask)?;
    let start = ipv4("startip", text.start)?;
    let end = match text.end.filter(|e| !e.is_empty()) {
        Some(end) => ipv4("endip", end)?,
        None => start,
    };
    let prefix = ipnet::ipv4_mask_to_prefix(netmask)
        .map_err(|_| Error::invalid(format!("netmask {netmask} is not a valid netmask")))?;
    if prefix > 30 {
        return Err(Error::invalid(format!(
            "netmask {netmask} leaves no room for a gateway and a range"
        )));
    }
    let subnet = ipnet::Ipv4Net::new(gateway, prefix)
        .map_err(|_| Error::invalid(format!("netmask {netmask} is not a valid netmask")))?
        .trunc();
    if u32::from(start) > u32::from(end) {
        return Err(Error::invalid(format!(
            "startip {start} is greater than endip {end}"
        )));
    }
    for (name, ip) in [("startip", start), ("endip", end)] {
        if !subnet.contains(&ip) {
            return Err(Error::invalid(format!(
                "{name} {ip} is not in the subnet {subnet} of gateway {gateway}"
            )));
        }
    }
    let (first, last) = (u32::from(start), u32::from(end));
    if (first..=last).contains(&u32::from(gateway)) {
        return Err(Error::invalid(format!(
            "The gateway {gateway} may not be inside the range {start}-{end}"
        )));
    }
    for (what, ip) in [
        ("network address", subnet.network()),
        ("broadcast address", subnet.broadcast()),
    ] {
        if ip == gateway || (first..=last).contains(&u32::from(ip)) {
            return Err(Error::invalid(format!(
                "The {what} {ip} of subnet {subnet} may not be the gateway or in the range"
            )));
        }
    }
    if last - first >= vlan::MAX_RANGE_SIZE {
        return Err(Error::invalid(format!(
            "The range {start}-{end} is too large: at most {} addresses per range",
            vlan::MAX_RANGE_SIZE
        )));
    }
    Ok(CheckedRange {
        gateway,
        netmask,
        start,
        end,
        subnet,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_vlans_are_stored_as_uris() {
        assert_eq!(normalize_public_vlan(None).unwrap(), UNTAGGED);
        assert_eq!(normalize_public_vlan(Some("untagged")).unwrap(), UNTAGGED);
        assert_eq!(
            normalize_public_vlan(Some("vlan://UNTAGGED")).unwrap(),
            UNTAGGED
        );
        assert_eq!(normalize_public_vlan(Some("42")).unwrap(), "vlan://42");
        assert_eq!(
            normalize_public_vlan(Some("vlan://42")).unwrap(),
            "vlan://42"
        );
        for bad in ["0", "4095", "x", "vlan://", "+5"] {
            assert!(normalize_public_vlan(Some(bad)).is_err(), "{bad}");
        }
    }

    fn range<'a>(gateway: &'a str, start: &'a str, end: Option<&'a str>) -> RangeText<'a> {
        RangeText {
            gateway,
            netmask: "255.255.255.0",
            start,
            end,
        }
    }

    #[test]
    fn a_range_without_an_end_is_one_address() {
        let r = check_range(&range("198.51.100.1", "198.51.100.10", Some(""))).unwrap();
        assert_eq!(r.start, r.end);
        assert_eq!(r.subnet.to_string(), "198.51.100.0/24");
    }

    #[test]
    fn ranges_that_hold_the_gateway_or_leave_the_subnet_are_refused() {
        let text = |r: RangeText<'_>| check_range(&r).err().map(|e| e.text()).unwrap_or_default();
        assert!(
            text(range("198.51.100.1", "198.51.100.0", Some("198.51.100.9")))
                .contains("gateway 198.51.100.1 may not be inside")
        );
        assert!(
            text(range("198.51.100.1", "198.51.100.10", Some("198.51.101.9")))
                .contains("is not in the subnet")
        );
        assert!(
            text(range(
                "198.51.100.1",
                "198.51.100.20",
                Some("198.51.100.10")
            ))
            .contains("is greater than")
        );
        assert!(
            text(range(
                "198.51.100.1",
                "198.51.100.200",
                Some("198.51.100.255")
            ))
            .contains("broadcast address")
        );
        assert!(text(range("not-an-ip", "198.51.100.2", None)).contains("gateway not-an-ip"));
    }
}
