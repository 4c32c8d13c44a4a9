//! Physical networks, their traffic types and the zone's public IP ranges:
//! `createPhysicalNetwork`, `listPhysicalNetworks`, `updatePhysicalNetwork`,
//! `deletePhysicalNetwork`, `addTrafficType`, `listTrafficTypes`,
//! `createVlanIpRange`, `listVlanIpRanges`, `deleteVlanIpRange`. All of them
//! are for the root admin, as in CloudStack.

use std::net::Ipv4Addr;

use serde_json::{Value, json};
use sha1::{Digest, Sha1};

use crate::api::{ApiError, Params};
use crate::server::jobs::JobBody;
use crate::server::registry::{
    CommandSpec, FieldSpec, Kind, ParamSpec, ParamType::*, ROOT, field, opt, req,
};
use crate::server::{Ctx, Reply, page};
use crate::store::{self, Db, Page, vlan, zone};
use crate::{handler, job_body};

/// Highest VLAN id of an 802.1Q tag.
const MAX_VLAN: u64 = 4094;
/// Highest VXLAN network identifier CloudStack accepts.
const MAX_VXLAN: u64 = 16_777_214;
/// The traffic types `addTrafficType` knows, in their canonical spelling.
const TRAFFIC_TYPES: [&str; 4] = ["Guest", "Public", "Management", "Storage"];
/// The only broadcast domain range of a physical network in an Advanced zone.
const BROADCAST_ZONE: &str = "ZONE";
/// How an untagged public range's VLAN is stored and shown.
const UNTAGGED: &str = "vlan://untagged";

// ---------------------------------------------------------------- views

async fn zone_uuid_and_name(
    db: &Db,
    zone_id: i64,
) -> Result<Option<(std::string::String, std::string::String)>, ApiError> {
    Ok(zone::get_by_id(db, zone_id)
        .await?
        .map(|z| (z.uuid, z.name)))
}

async fn physnet_view(db: &Db, pn: &zone::PhysicalNetwork) -> Result<Value, ApiError> {
    let (zone_uuid, zone_name) = zone_uuid_and_name(db, pn.zone_id).await?.unzip();
    Ok(json!({
        "id": pn.uuid,
        "name": pn.name,
        "zoneid": zone_uuid,
        "zonename": zone_name,
        "isolationmethods": pn.isolation_method,
        "vlan": pn.vnet_range,
        "state": pn.state,
        "broadcastdomainrange": BROADCAST_ZONE,
    }))
}

/// The API id of a traffic type. The store keeps no UUID for these rows, so
/// the id is a name-based (version 5) UUID of the type in the namespace of
/// its physical network: stable, and unique across physical networks.
fn traffic_type_uuid(physnet_uuid: &str, traffic_type: &str) -> std::string::String {
    let namespace = uuid::Uuid::parse_str(physnet_uuid).unwrap_or_default();
    let mut hash = Sha1::new();
    hash.update(namespace.as_bytes());
    hash.update(traffic_type.as_bytes());
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_sha1_bytes(bytes)
        .into_uuid()
        .to_string()
}

fn traffic_type_view(pn: &zone::PhysicalNetwork, t: &zone::TrafficType) -> Value {
    json!({
        "id": traffic_type_uuid(&pn.uuid, &t.traffic_type),
        "traffictype": t.traffic_type,
        "physicalnetworkid": pn.uuid,
        "kvmnetworklabel": t.label,
        "isolationmethods": pn.isolation_method,
    })
}

async fn range_view(db: &Db, r: &vlan::VlanRange) -> Result<Value, ApiError> {
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

fn physnet_fields() -> Vec<FieldSpec> {
    vec![
        field("id", "string", "the ID of the physical network"),
        field("name", "string", "the name of the physical network"),
        field("zoneid", "string", "the ID of the zone"),
        field("zonename", "string", "the name of the zone"),
        field(
            "isolationmethods",
            "string",
            "the isolation method of guest networks: VLAN or VXLAN",
        ),
        field("vlan", "string", "the guest VLAN or VNI range"),
        field("state", "string", "Enabled or Disabled"),
        field(
            "broadcastdomainrange",
            "string",
            "the broadcast domain range (always ZONE)",
        ),
    ]
}

fn traffic_type_fields() -> Vec<FieldSpec> {
    vec![
        field("id", "string", "the ID of the traffic type"),
        field(
            "traffictype",
            "string",
            "Guest, Public, Management or Storage",
        ),
        field(
            "physicalnetworkid",
            "string",
            "the ID of the physical network",
        ),
        field(
            "kvmnetworklabel",
            "string",
            "the host-side label (bridge or device) of the traffic",
        ),
        field(
            "isolationmethods",
            "string",
            "the isolation method of the physical network",
        ),
    ]
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

fn paging() -> Vec<ParamSpec> {
    vec![
        opt("keyword", String, "a substring to match"),
        opt("page", Integer, "the page to return"),
        opt("pagesize", Integer, "the number of objects per page"),
    ]
}

// ---------------------------------------------------------------- commands

/// The commands of this module.
pub fn commands() -> Vec<CommandSpec> {
    let spec = |name, description, kind, params, object, response, handler| CommandSpec {
        name,
        description,
        kind,
        roles: ROOT,
        params,
        object,
        response,
        since: "",
        handler,
    };
    let mut list_physnets = vec![
        opt("id", Uuid, "the ID of the physical network"),
        opt("zoneid", Uuid, "only the physical networks of this zone"),
        opt("name", String, "the name of the physical network"),
    ];
    list_physnets.extend(paging());
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
            "createPhysicalNetwork",
            "Creates a physical network in a zone",
            Kind::AsyncCreate,
            vec![
                req("zoneid", Uuid, "the ID of the zone"),
                req("name", String, "the name of the physical network"),
                opt(
                    "isolationmethods",
                    List,
                    "the isolation method of guest networks: VLAN (default) or VXLAN",
                ),
                opt(
                    "vlan",
                    String,
                    "the guest VLAN/VNI range, e.g. 100-199 or 100-199,300-310",
                ),
                opt(
                    "broadcastdomainrange",
                    String,
                    "the broadcast domain range; only ZONE in Advanced zones",
                ),
                opt(
                    "tags",
                    List,
                    "tags of the physical network (accepted, not kept yet)",
                ),
            ],
            "physicalnetwork",
            physnet_fields(),
            create_physical_network,
        ),
        spec(
            "listPhysicalNetworks",
            "Lists physical networks",
            Kind::Sync,
            list_physnets,
            "physicalnetwork",
            physnet_fields(),
            list_physical_networks,
        ),
        spec(
            "updatePhysicalNetwork",
            "Changes the guest VLAN/VNI range or the state of a physical network",
            Kind::Async,
            vec![
                req("id", Uuid, "the ID of the physical network"),
                opt(
                    "vlan",
                    String,
                    "the new guest VLAN/VNI range, e.g. 100-199 or 100-199,300-310",
                ),
                opt("state", String, "Enabled or Disabled"),
                opt(
                    "tags",
                    List,
                    "tags of the physical network (accepted, not kept yet)",
                ),
            ],
            "physicalnetwork",
            physnet_fields(),
            update_physical_network,
        ),
        spec(
            "deletePhysicalNetwork",
            "Deletes a physical network that has no public IP ranges",
            Kind::Async,
            vec![req("id", Uuid, "the ID of the physical network")],
            "physicalnetwork",
            vec![],
            delete_physical_network,
        ),
        spec(
            "addTrafficType",
            "Adds a traffic type to a physical network",
            Kind::Async,
            vec![
                req("physicalnetworkid", Uuid, "the ID of the physical network"),
                req(
                    "traffictype",
                    String,
                    "Guest, Public, Management or Storage",
                ),
                opt(
                    "kvmnetworklabel",
                    String,
                    "the host-side label (bridge or device) of the traffic",
                ),
                opt(
                    "xennetworklabel",
                    String,
                    "the XenServer network label (accepted, not used)",
                ),
                opt(
                    "vmwarenetworklabel",
                    String,
                    "the VMware network label (accepted, not used)",
                ),
                opt(
                    "hypervnetworklabel",
                    String,
                    "the Hyper-V network label (accepted, not used)",
                ),
                opt(
                    "ovm3networklabel",
                    String,
                    "the OVM3 network label (accepted, not used)",
                ),
            ],
            "traffictype",
            traffic_type_fields(),
            add_traffic_type,
        ),
        spec(
            "listTrafficTypes",
            "Lists the traffic types of a physical network",
            Kind::Sync,
            vec![
                req("physicalnetworkid", Uuid, "the ID of the physical network"),
                opt("keyword", String, "a substring of the traffic type"),
                opt("page", Integer, "the page to return"),
                opt("pagesize", Integer, "the number of objects per page"),
            ],
            "traffictype",
            traffic_type_fields(),
            list_traffic_types,
        ),
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
                    "dedicate the range to this account (accepted, not applied yet)",
                ),
                opt(
                    "domainid",
                    Uuid,
                    "the domain of the account (accepted, not applied yet)",
                ),
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

/// The job bodies of this module's async commands.
pub fn job_bodies() -> Vec<(&'static str, JobBody)> {
    vec![
        ("createPhysicalNetwork", create_physical_network_job),
        ("updatePhysicalNetwork", update_physical_network_job),
        ("deletePhysicalNetwork", delete_physical_network_job),
        ("addTrafficType", add_traffic_type_job),
    ]
}

// ---------------------------------------------------------------- parameters

/// The live zone named by parameter `name`, if given.
async fn zone_param(
    ctx: &Ctx,
    params: &Params,
    name: &str,
) -> Result<Option<zone::Zone>, ApiError> {
    let Some(id) = params.uuid(name)? else {
        return Ok(None);
    };
    let id = id.to_string();
    let z = zone::get_by_uuid(&ctx.app.db, &id)
        .await?
        .filter(|z| z.removed.is_none())
        .ok_or_else(|| ApiError::invalid_id(name, &id))?;
    Ok(Some(z))
}

/// The live physical network named by parameter `name`, if given.
async fn physnet_param(
    ctx: &Ctx,
    params: &Params,
    name: &str,
) -> Result<Option<zone::PhysicalNetwork>, ApiError> {
    let Some(id) = params.uuid(name)? else {
        return Ok(None);
    };
    let id = id.to_string();
    let pn = zone::physical_network_by_uuid(&ctx.app.db, &id)
        .await?
        .filter(|p| p.removed.is_none())
        .ok_or_else(|| ApiError::invalid_id(name, &id))?;
    Ok(Some(pn))
}

/// The live physical network named by the required parameter `name`.
async fn required_physnet(
    ctx: &Ctx,
    params: &Params,
    name: &str,
) -> Result<zone::PhysicalNetwork, ApiError> {
    params.required_uuid(ctx.command, name)?;
    physnet_param(ctx, params, name)
        .await?
        .ok_or_else(|| ApiError::missing_param(ctx.command, name))
}

/// `VLAN` or `VXLAN` from the `isolationmethods` list (default VLAN).
fn isolation_method(params: &Params) -> Result<&'static str, ApiError> {
    let methods = params.list("isolationmethods")?.unwrap_or_default();
    match methods.as_slice() {
        [] => Ok("VLAN"),
        [one] if one.eq_ignore_ascii_case("vlan") => Ok("VLAN"),
        [one] if one.eq_ignore_ascii_case("vxlan") => Ok("VXLAN"),
        [one] => Err(ApiError::param(format!(
            "isolationmethods {one} is not supported: use VLAN or VXLAN"
        ))),
        _ => Err(ApiError::param(
            "Only one isolation method can be given for a physical network",
        )),
    }
}

/// Checks a guest VLAN/VNI range such as `100-199,300-310` (single ids too)
/// for the isolation method and returns it in canonical form. The pieces may
/// not overlap.
pub fn parse_vnet_range(method: &str, text: &str) -> Result<std::string::String, ApiError> {
    let max = if method == "VXLAN" {
        MAX_VXLAN
    } else {
        MAX_VLAN
    };
    let bad = |why: &str| {
        ApiError::param(format!(
            "Invalid {method} range {text}: {why}; write start-end pairs separated by \
             commas, ids from 1 to {max}"
        ))
    };
    let mut pieces: Vec<(u64, u64)> = Vec::new();
    for piece in text.split(',').map(str::trim) {
        if piece.is_empty() {
            return Err(bad("an empty piece"));
        }
        let (start, end) = match piece.split_once('-') {
            Some((s, e)) => (s.trim(), e.trim()),
            None => (piece, piece),
        };
        let number = |s: &str| -> Result<u64, ApiError> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(&format!("{s:?} is not a number")));
            }
            match s.parse::<u64>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(bad(&format!("{s} is out of range"))),
            }
        };
        let (start, end) = (number(start)?, number(end)?);
        if start > end {
            return Err(bad(&format!("{start} is greater than {end}")));
        }
        pieces.push((start, end));
    }
    let mut sorted = pieces.clone();
    sorted.sort_unstable();
    if sorted.windows(2).any(|w| w[1].0 <= w[0].1) {
        return Err(bad("the pieces overlap"));
    }
    Ok(pieces
        .iter()
        .map(|(s, e)| {
            if s == e {
                s.to_string()
            } else {
                format!("{s}-{e}")
            }
        })
        .collect::<Vec<_>>()
        .join(","))
}

fn state_param(params: &Params) -> Result<Option<&'static str>, ApiError> {
    match params.string("state")?.as_deref() {
        None | Some("") => Ok(None),
        Some(s) if s.eq_ignore_ascii_case("enabled") => Ok(Some("Enabled")),
        Some(s) if s.eq_ignore_ascii_case("disabled") => Ok(Some("Disabled")),
        Some(s) => Err(ApiError::param(format!(
            "state {s} is neither Enabled nor Disabled"
        ))),
    }
}

/// A public range's VLAN as stored: `vlan://<n>` or `vlan://untagged`.
pub fn normalize_public_vlan(text: Option<&str>) -> Result<std::string::String, ApiError> {
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
        _ => Err(ApiError::param(format!(
            "vlan {text} is invalid: use untagged or a VLAN id from 1 to {MAX_VLAN}"
        ))),
    }
}

fn ipv4_param(params: &Params, command: &str, name: &str) -> Result<Ipv4Addr, ApiError> {
    let text = params.required_string(command, name)?;
    text.trim()
        .parse()
        .map_err(|_| ApiError::param(format!("{name} {text} is not an IPv4 address")))
}

/// A checked public range: the addresses and the subnet they belong to.
struct CheckedRange {
    gateway: Ipv4Addr,
    netmask: Ipv4Addr,
    start: Ipv4Addr,
    end: Ipv4Addr,
    subnet: ipnet::Ipv4Net,
}

fn check_range(ctx: &Ctx, params: &Params) -> Result<CheckedRange, ApiError> {
    let gateway = ipv4_param(params, ctx.command, "gateway")?;
    let netmask = ipv4_param(params, ctx.command, "netmask")?;
    let start = ipv4_param(params, ctx.command, "startip")?;
    let end = match params.string("endip")?.filter(|e| !e.is_empty()) {
        Some(_) => ipv4_param(params, ctx.command, "endip")?,
        None => start,
    };
    let prefix = ipnet::ipv4_mask_to_prefix(netmask)
        .map_err(|_| ApiError::param(format!("netmask {netmask} is not a valid netmask")))?;
    if prefix > 30 {
        return Err(ApiError::param(format!(
            "netmask {netmask} leaves no room for a gateway and a range"
        )));
    }
    let subnet = ipnet::Ipv4Net::new(gateway, prefix)
        .map_err(|_| ApiError::param(format!("netmask {netmask} is not a valid netmask")))?
        .trunc();
    if u32::from(start) > u32::from(end) {
        return Err(ApiError::param(format!(
            "startip {start} is greater than endip {end}"
        )));
    }
    for (name, ip) in [("startip", start), ("endip", end)] {
        if !subnet.contains(&ip) {
            return Err(ApiError::param(format!(
                "{name} {ip} is not in the subnet {subnet} of gateway {gateway}"
            )));
        }
    }
    let (first, last) = (u32::from(start), u32::from(end));
    if (first..=last).contains(&u32::from(gateway)) {
        return Err(ApiError::param(format!(
            "The gateway {gateway} may not be inside the range {start}-{end}"
        )));
    }
    for (what, ip) in [
        ("network address", subnet.network()),
        ("broadcast address", subnet.broadcast()),
    ] {
        if ip == gateway || (first..=last).contains(&u32::from(ip)) {
            return Err(ApiError::param(format!(
                "The {what} {ip} of subnet {subnet} may not be the gateway or in the range"
            )));
        }
    }
    if last - first >= vlan::MAX_RANGE_SIZE {
        return Err(ApiError::param(format!(
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

/// Applies CloudStack's paging to rows filtered in memory.
fn page_of<T>(items: Vec<T>, page: Page) -> Vec<T> {
    let skip = usize::try_from(page.offset.max(0)).unwrap_or(usize::MAX);
    let take = page.limit.map_or(usize::MAX, |l| {
        usize::try_from(l.max(0)).unwrap_or(usize::MAX)
    });
    items.into_iter().skip(skip).take(take).collect()
}

// ---------------------------------------------------------------- physical networks

handler!(create_physical_network, |ctx, params| {
    let z = zone_param(ctx, params, "zoneid")
        .await?
        .ok_or_else(|| ApiError::missing_param(ctx.command, "zoneid"))?;
    let name = params.required_string(ctx.command, "name")?;
    let method = isolation_method(params)?;
    let vnet = match params.string("vlan")?.filter(|v| !v.is_empty()) {
        Some(v) => Some(parse_vnet_range(method, &v)?),
        None => None,
    };
    if let Some(range) = params
        .string("broadcastdomainrange")?
        .filter(|r| !r.is_empty())
        && !range.eq_ignore_ascii_case(BROADCAST_ZONE)
    {
        return Err(ApiError::param(format!(
            "broadcastdomainrange {range} is not supported: physical networks of \
             Advanced zones have the range ZONE"
        )));
    }
    // Async-create, as in CloudStack: the row exists (and its id is
    // answered) before the job runs; the job finishes and reports it.
    let created =
        zone::create_physical_network(&ctx.app.db, z.id, &name, method, vnet.as_deref(), &[])
            .await
            .map_err(|e| match e {
                store::StoreError::Duplicate(_) => ApiError::param(format!(
                    "A physical network named {name} exists in zone {} already",
                    z.uuid
                )),
                other => other.into(),
            })?;
    let job_id = ctx
        .submit_job(
            json!({ "id": created.id }),
            Some(("PhysicalNetwork", &created.uuid)),
            format!("physicalnetwork:{}", created.id),
        )
        .await?;
    Ok(Reply::Created {
        id: created.uuid,
        job_id,
    })
});

job_body!(create_physical_network_job, |job, info| {
    let db = &job.app.db;
    let id = info["id"].as_i64().unwrap_or_default();
    let created = zone::physical_network_by_id(db, id)
        .await?
        .filter(|p| p.removed.is_none())
        .ok_or_else(|| {
            ApiError::param("The physical network was deleted before its creation finished")
        })?;
    Ok(json!({ "physicalnetwork": physnet_view(db, &created).await? }))
});

handler!(list_physical_networks, |ctx, params| {
    let zone_id = zone_param(ctx, params, "zoneid").await?.map(|z| z.id);
    let filter = zone::PhysicalNetworkFilter {
        uuid: params.uuid("id")?.map(|u| u.to_string()),
        zone_id,
        name: params.string("name")?.filter(|n| !n.is_empty()),
        keyword: params.string("keyword")?,
    };
    let listed =
        zone::list_physical_networks(&ctx.app.db, &filter, page(ctx, params).await?).await?;
    let mut items = Vec::with_capacity(listed.items.len());
    for pn in &listed.items {
        items.push(physnet_view(&ctx.app.db, pn).await?);
    }
    Ok(Reply::List {
        count: listed.total as u64,
        items,
    })
});

handler!(update_physical_network, |ctx, params| {
    let pn = required_physnet(ctx, params, "id").await?;
    let vnet = match params.string("vlan")?.filter(|v| !v.is_empty()) {
        Some(v) => Some(parse_vnet_range(&pn.isolation_method, &v)?),
        None => None,
    };
    let state = state_param(params)?;
    let job_id = ctx
        .submit_job(
            json!({ "id": pn.id, "vnet_range": vnet, "state": state }),
            Some(("PhysicalNetwork", &pn.uuid)),
            format!("physicalnetwork:{}", pn.id),
        )
        .await?;
    Ok(Reply::Job { job_id })
});

job_body!(update_physical_network_job, |job, info| {
    let db = &job.app.db;
    let id = info["id"].as_i64().unwrap_or_default();
    let updated =
        zone::update_physical_network(db, id, info["vnet_range"].as_str(), info["state"].as_str())
            .await?;
    if !updated {
        return Err(ApiError::param("The physical network was deleted"));
    }
    let pn = zone::physical_network_by_id(db, id)
        .await?
        .ok_or_else(|| ApiError::internal("physical network vanished"))?;
    Ok(json!({ "physicalnetwork": physnet_view(db, &pn).await? }))
});

handler!(delete_physical_network, |ctx, params| {
    let pn = required_physnet(ctx, params, "id").await?;
    let job_id = ctx
        .submit_job(
            json!({ "id": pn.id }),
            Some(("PhysicalNetwork", &pn.uuid)),
            format!("physicalnetwork:{}", pn.id),
        )
        .await?;
    Ok(Reply::Job { job_id })
});

job_body!(delete_physical_network_job, |job, info| {
    let db = &job.app.db;
    let id = info["id"].as_i64().unwrap_or_default();
    let uuid = zone::physical_network_by_id(db, id)
        .await?
        .map(|p| p.uuid)
        .unwrap_or_default();
    zone::remove_physical_network(db, id)
        .await
        .map_err(|e| match e {
            store::StoreError::Conflict(why) => ApiError::in_use(format!(
                "The physical network {uuid} cannot be deleted: {why}; delete them first"
            )),
            other => other.into(),
        })?;
    Ok(json!({ "success": true }))
});

// ---------------------------------------------------------------- traffic types

fn canonical_traffic_type(text: &str) -> Result<&'static str, ApiError> {
    TRAFFIC_TYPES
        .iter()
        .copied()
        .find(|t| t.eq_ignore_ascii_case(text.trim()))
        .ok_or_else(|| {
            ApiError::param(format!(
                "traffictype {text} is not supported: use one of {}",
                TRAFFIC_TYPES.join(", ")
            ))
        })
}

fn duplicate_traffic_type(pn: &zone::PhysicalNetwork, traffic_type: &str) -> ApiError {
    ApiError::param(format!(
        "The physical network {} already carries {traffic_type} traffic",
        pn.uuid
    ))
}

handler!(add_traffic_type, |ctx, params| {
    let pn = required_physnet(ctx, params, "physicalnetworkid").await?;
    let traffic_type =
        canonical_traffic_type(&params.required_string(ctx.command, "traffictype")?)?;
    let existing = zone::traffic_types(&ctx.app.db, pn.id).await?;
    if existing.iter().any(|t| t.traffic_type == traffic_type) {
        return Err(duplicate_traffic_type(&pn, traffic_type));
    }
    let label = params.string("kvmnetworklabel")?.filter(|l| !l.is_empty());
    let job_id = ctx
        .submit_job(
            json!({ "physical_network_id": pn.id, "traffic_type": traffic_type, "label": label }),
            Some(("PhysicalNetwork", &pn.uuid)),
            format!("physicalnetwork:{}", pn.id),
        )
        .await?;
    Ok(Reply::Job { job_id })
});

job_body!(add_traffic_type_job, |job, info| {
    let db = &job.app.db;
    let id = info["physical_network_id"].as_i64().unwrap_or_default();
    let traffic_type = info["traffic_type"].as_str().unwrap_or_default();
    let pn = zone::physical_network_by_id(db, id)
        .await?
        .ok_or_else(|| ApiError::internal("physical network vanished"))?;
    let added = zone::add_traffic_type(db, id, traffic_type, info["label"].as_str())
        .await
        .map_err(|e| match e {
            store::StoreError::Duplicate(_) => duplicate_traffic_type(&pn, traffic_type),
            store::StoreError::NotFound { .. } => {
                ApiError::param(format!("The physical network {} was deleted", pn.uuid))
            }
            other => other.into(),
        })?;
    Ok(json!({ "traffictype": traffic_type_view(&pn, &added) }))
});

handler!(list_traffic_types, |ctx, params| {
    let pn = required_physnet(ctx, params, "physicalnetworkid").await?;
    let keyword = params.string("keyword")?.map(|k| k.to_lowercase());
    let all: Vec<_> = zone::traffic_types(&ctx.app.db, pn.id)
        .await?
        .into_iter()
        .filter(|t| {
            keyword
                .as_deref()
                .is_none_or(|k| t.traffic_type.to_lowercase().contains(k))
        })
        .collect();
    let count = all.len() as u64;
    let items = page_of(all, page(ctx, params).await?)
        .iter()
        .map(|t| traffic_type_view(&pn, t))
        .collect();
    Ok(Reply::List { count, items })
});

// ---------------------------------------------------------------- public IP ranges

handler!(create_vlan_ip_range, |ctx, params| {
    if params.boolean("forvirtualnetwork")? == Some(false) {
        return Err(ApiError::param(
            "Only ranges for virtual networks (forvirtualnetwork=true) are supported",
        ));
    }
    let db = &ctx.app.db;
    let zone_given = zone_param(ctx, params, "zoneid").await?;
    let physnet_given = physnet_param(ctx, params, "physicalnetworkid").await?;
    let (z, pn) = match (zone_given, physnet_given) {
        (Some(z), Some(pn)) => {
            if pn.zone_id != z.id {
                return Err(ApiError::param(format!(
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
                .ok_or_else(|| ApiError::param("The physical network's zone was deleted"))?;
            (z, pn)
        }
        (Some(z), None) => {
            let pn = zone::physical_network_for_traffic(db, z.id, "Public")
                .await?
                .ok_or_else(|| {
                    ApiError::param(format!(
                        "The zone {} has no physical network carrying Public traffic; \
                         add the Public traffic type first",
                        z.uuid
                    ))
                })?;
            (z, pn)
        }
        (None, None) => return Err(ApiError::missing_param(ctx.command, "zoneid")),
    };
    let carried = zone::traffic_types(db, pn.id).await?;
    if !carried.iter().any(|t| t.traffic_type == "Public") {
        return Err(ApiError::param(format!(
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
            return Err(ApiError::param(format!(
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
        return Err(ApiError::param(format!(
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
        store::StoreError::Conflict(why) => ApiError::param(why),
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
        .ok_or_else(|| ApiError::invalid_id("id", &id))?;
    vlan::remove_range(&ctx.app.db, r.id)
        .await
        .map_err(|e| match e {
            store::StoreError::Conflict(why) => ApiError::in_use(format!(
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
    fn vnet_ranges_are_checked_and_canonical() {
        assert_eq!(parse_vnet_range("VLAN", "100-199").unwrap(), "100-199");
        assert_eq!(
            parse_vnet_range("VLAN", " 100-199 , 300-310,400").unwrap(),
            "100-199,300-310,400"
        );
        assert_eq!(
            parse_vnet_range("VXLAN", "5000-20000").unwrap(),
            "5000-20000"
        );
        for bad in [
            "",
            "0-10",
            "100-4095",
            "a-b",
            "200-100",
            "1-10,5-20",
            "1-",
            "1,,2",
            "-5",
        ] {
            assert_eq!(
                parse_vnet_range("VLAN", bad).unwrap_err().code,
                431,
                "{bad}"
            );
        }
        assert!(parse_vnet_range("VXLAN", "1-16777214").is_ok());
        assert!(parse_vnet_range("VXLAN", "1-16777215").is_err());
    }

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

    #[test]
    fn traffic_type_ids_are_stable_and_distinct() {
        let pn = "5f0e6a0c-9d2b-4f4e-8a55-3c1d2e7b9a10";
        let a = traffic_type_uuid(pn, "Public");
        assert_eq!(a, traffic_type_uuid(pn, "Public"));
        assert_ne!(a, traffic_type_uuid(pn, "Guest"));
        assert_ne!(
            a,
            traffic_type_uuid("6b1e9e5f-1f0e-4d3c-9a55-2f2f7b1a0c11", "Public")
        );
        assert_eq!(uuid::Uuid::parse_str(&a).unwrap().get_version_num(), 5);
    }
}
