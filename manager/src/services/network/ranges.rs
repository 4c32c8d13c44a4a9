//! The zone's public IP ranges: `createVlanIpRange`, `listVlanIpRanges`,
//! `deleteVlanIpRange`.

use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::{MAX_VLAN, page_of, paging, physnet_param, spec, zone_param, zone_uuid_and_name};
use crate::api::Params;
use crate::error::Error;
use crate::handler;
use crate::server::registry::{CommandSpec, FieldSpec, Kind, ParamType::*, field, opt, req};
use crate::server::{Ctx, Reply, page};
use crate::store::{self, Db, Page, vlan, zone};

/// Why the parameters that dedicate a public range are refused.
const DEDICATION: &str = "dedicating a public range to an account, domain or project is not implemented; every range \
     serves every account";

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

fn range_fields() -> Vec<FieldSpec> {
    vec![
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
    ]
}

// ---------------------------------------------------------------- commands

/// The public IP range commands.
pub(super) fn commands() -> Vec<CommandSpec> {
    let mut list_ranges = vec![
        opt("id", Uuid, "the ID of the public IP range"),
        opt("zoneid", Uuid, "only the ranges of this zone"),
        opt(
            "physicalnetworkid",
            Uuid,
            "only the ranges of this physical network",
        ),
        opt(
            "vlan",
            String,
            "only the ranges of this VLAN (a number, vlan://<n> or untagged)",
        ),
        opt(
            "forvirtualnetwork",
            Boolean,
            "true: ranges of virtual networks (all ranges are)",
        ),
    ];
    list_ranges.extend(paging());
    vec![
        spec(
            "createVlanIpRange",
            "Creates a public IP range in a zone",
            Kind::Sync,
            vec![
                opt(
                    "zoneid",
                    Uuid,
                    "the ID of the zone; default the physical network's zone",
                ),
                opt(
                    "physicalnetworkid",
                    Uuid,
                    "the physical network; default the zone's one carrying Public traffic",
                ),
                opt(
                    "vlan",
                    String,
                    "the VLAN of the range: a number, vlan://<n> or untagged (default)",
                ),
                req("gateway", String, "the gateway of the range's subnet"),
                req("netmask", String, "the netmask of the range's subnet"),
                req("startip", String, "the first address of the range"),
                opt(
                    "endip",
                    String,
                    "the last address of the range; default startip",
                ),
                opt(
                    "forvirtualnetwork",
                    Boolean,
                    "true (default): public IPs of virtual networks; false is not supported",
                ),
                opt(
                    "account",
                    String,
                    "refused: ranges are not dedicated to accounts",
                )
                .refused(DEDICATION),
                opt(
                    "domainid",
                    Uuid,
                    "refused: ranges are not dedicated to domains",
                )
                .refused(DEDICATION),
                opt(
                    "projectid",
                    Uuid,
                    "refused: ranges are not dedicated to projects",
                )
                .refused(DEDICATION),
            ],
            "vlan",
            range_fields(),
            create_vlan_ip_range,
        ),
        spec(
            "listVlanIpRanges",
            "Lists public IP ranges",
            Kind::Sync,
            list_ranges,
            "vlaniprange",
            range_fields(),
            list_vlan_ip_ranges,
        ),
        spec(
            "deleteVlanIpRange",
            "Deletes a public IP range none of whose addresses is allocated",
            Kind::Sync,
            vec![req("id", Uuid, "the ID of the public IP range")],
            "vlaniprange",
            vec![],
            delete_vlan_ip_range,
        ),
    ]
}

// ---------------------------------------------------------------- parameters

/// A public range's VLAN as stored: `vlan://<n>` or `vlan://untagged`.
pub fn normalize_public_vlan(text: Option<&str>) -> Result<std::string::String, Error> {
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

fn ipv4_param(params: &Params, command: &str, name: &str) -> Result<Ipv4Addr, Error> {
    let text = params.required_string(command, name)?;
    text.trim()
        .parse()
        .map_err(|_| Error::invalid(format!("{name} {text} is not an IPv4 address")))
}

/// A checked public range: the addresses and the subnet they belong to.
struct CheckedRange {
    gateway: Ipv4Addr,
    netmask: Ipv4Addr,
    start: Ipv4Addr,
    end: Ipv4Addr,
    subnet: ipnet::Ipv4Net,
}

fn check_range(ctx: &Ctx, params: &Params) -> Result<CheckedRange, Error> {
    let gateway = ipv4_param(params, ctx.command, "gateway")?;
    let netmask = ipv4_param(params, ctx.command, "netmask")?;
    let start = ipv4_param(params, ctx.command, "startip")?;
    let end = match params.string("endip")?.filter(|e| !e.is_empty()) {
        Some(_) => ipv4_param(params, ctx.command, "endip")?,
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

// ---------------------------------------------------------------- public IP ranges

handler!(create_vlan_ip_range, |ctx, params| {
    if params.boolean("forvirtualnetwork")? == Some(false) {
        return Err(Error::invalid(
            "Only ranges for virtual networks (forvirtualnetwork=true) are supported",
        ));
    }
    let db = &ctx.app.db;
    let zone_given = zone_param(ctx, params, "zoneid").await?;
    let physnet_given = physnet_param(ctx, params, "physicalnetworkid").await?;
    let (z, pn) = match (zone_given, physnet_given) {
        (Some(z), Some(pn)) => {
            if pn.zone_id != z.id {
                return Err(Error::invalid(format!(
                    "The physical network {} is not in zone {}",
                    pn.uuid, z.uuid
                )));
            }
            (z, pn)
        }
        (None, Some(pn)) => {
            let z = zone::get_by_id(db, pn.zone_id)
                .await?
                .filter(|z| z.removed.is_none())
                .ok_or_else(|| Error::invalid("The physical network's zone was deleted"))?;
            (z, pn)
        }
        (Some(z), None) => {
            let pn = zone::physical_network_for_traffic(db, z.id, "Public")
                .await?
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "The zone {} has no physical network carrying Public traffic; \
                         add the Public traffic type first",
                        z.uuid
                    ))
                })?;
            (z, pn)
        }
        (None, None) => return Err(Error::missing_param(ctx.command, "zoneid")),
    };
    let carried = zone::traffic_types(db, pn.id).await?;
    if !carried.iter().any(|t| t.traffic_type == "Public") {
        return Err(Error::invalid(format!(
            "The physical network {} does not carry Public traffic",
            pn.uuid
        )));
    }
    let vlan_id = normalize_public_vlan(params.get("vlan"))?;
    let range = check_range(ctx, params)?;
    // Every range of one subnet must agree on the VLAN, gateway and netmask.
    let existing = vlan::list_ranges(db, Some(z.id), Page::ALL).await?;
    for other in &existing.items {
        let other_subnet = other
            .netmask
            .parse::<Ipv4Addr>()
            .ok()
            .and_then(|m| ipnet::ipv4_mask_to_prefix(m).ok())
            .zip(other.gateway.parse::<Ipv4Addr>().ok())
            .and_then(|(prefix, gw)| ipnet::Ipv4Net::new(gw, prefix).ok())
            .map(|n| n.trunc());
        let Some(other_subnet) = other_subnet else {
            continue;
        };
        let shares = other_subnet.contains(&range.subnet) || range.subnet.contains(&other_subnet);
        if shares
            && (other.vlan_id != vlan_id
                || other.gateway != range.gateway.to_string()
                || other.netmask != range.netmask.to_string())
        {
            return Err(Error::invalid(format!(
                "The subnet {} overlaps the range {}-{} (vlan {}, gateway {}, netmask {}); \
                 ranges of one subnet must use the same vlan, gateway and netmask",
                range.subnet,
                other.start_ip,
                other.end_ip,
                other.vlan_id,
                other.gateway,
                other.netmask
            )));
        }
    }
    if let Some(other) = vlan::overlapping_range(db, z.id, range.start, range.end).await? {
        return Err(Error::invalid(format!(
            "The IP range {}-{} overlaps the existing range {}-{} of zone {}",
            range.start, range.end, other.start_ip, other.end_ip, z.uuid
        )));
    }
    let created = vlan::create_range(
        db,
        vlan::NewVlanRange {
            zone_id: z.id,
            physical_network_id: Some(pn.id),
            vlan_id,
            gateway: range.gateway,
            netmask: range.netmask,
            start_ip: range.start,
            end_ip: range.end,
        },
    )
    .await
    .map_err(|e| match e {
        // Overlap found by the store inside its transaction (a concurrent create).
        store::StoreError::Conflict(why) => Error::invalid(why),
        other => other.into(),
    })?;
    Ok(Reply::Object(range_view(db, &created).await?))
});

handler!(list_vlan_ip_ranges, |ctx, params| {
    let db = &ctx.app.db;
    if params.boolean("forvirtualnetwork")? == Some(false) {
        return Ok(Reply::List {
            count: 0,
            items: vec![],
        });
    }
    let zone_id = zone_param(ctx, params, "zoneid").await?.map(|z| z.id);
    let physnet_id = physnet_param(ctx, params, "physicalnetworkid")
        .await?
        .map(|p| p.id);
    let uuid = params.uuid("id")?.map(|u| u.to_string());
    let vlan_id = match params.string("vlan")?.filter(|v| !v.is_empty()) {
        Some(v) => Some(normalize_public_vlan(Some(&v))?),
        None => None,
    };
    let keyword = params.string("keyword")?.map(|k| k.to_lowercase());
    let page = page(ctx, params).await?;
    let matching: Vec<vlan::VlanRange> = vlan::list_ranges(db, zone_id, Page::ALL)
        .await?
        .items
        .into_iter()
        .filter(|r| uuid.as_ref().is_none_or(|u| &r.uuid == u))
        .filter(|r| physnet_id.is_none_or(|p| r.physical_network_id == Some(p)))
        .filter(|r| vlan_id.as_ref().is_none_or(|v| &r.vlan_id == v))
        .filter(|r| {
            keyword.as_deref().is_none_or(|k| {
                [&r.vlan_id, &r.start_ip, &r.end_ip, &r.gateway]
                    .iter()
                    .any(|f| f.to_lowercase().contains(k))
            })
        })
        .collect();
    let count = matching.len() as u64;
    let mut items = Vec::new();
    for r in page_of(matching, page) {
        items.push(range_view(db, &r).await?);
    }
    Ok(Reply::List { count, items })
});

handler!(delete_vlan_ip_range, |ctx, params| {
    let id = params.required_uuid(ctx.command, "id")?.to_string();
    let r = vlan::range_by_uuid(&ctx.app.db, &id)
        .await?
        .filter(|r| r.removed.is_none())
        .ok_or_else(|| Error::invalid_id("id", &id))?;
    vlan::remove_range(&ctx.app.db, r.id)
        .await
        .map_err(|e| match e {
            store::StoreError::Conflict(why) => Error::in_use(format!(
                "The public IP range {}-{} cannot be deleted: {why}",
                r.start_ip, r.end_ip
            )),
            other => other.into(),
        })?;
    Ok(Reply::Success)
});

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
}
