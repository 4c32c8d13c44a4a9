//! Zones (CloudStack reference §2.10): `createZone`, `listZones`,
//! `updateZone`, `deleteZone`. Only Advanced zones: VPCs need them.

use serde_json::{Value, json};

use crate::api::Params;
use crate::error::Error;
use crate::handler;
use crate::server::registry::{
    ALL, CommandSpec, FieldSpec, Kind, ParamType::*, ROOT, field, opt, req,
};
use crate::server::{Ctx, Reply, page};
use crate::store::{self, zone};

fn zone_view(ctx: &Ctx, z: &zone::Zone) -> Value {
    let mut view = json!({
        "id": z.uuid,
        "name": z.name,
        "description": z.description,
        "dns1": z.dns1,
        "dns2": z.dns2,
        "networktype": z.network_type,
        "allocationstate": z.allocation_state,
        "securitygroupsenabled": false,
        "localstorageenabled": false,
        "domain": z.network_domain,
        "type": "Core",
    });
    // Internal DNS and the guest CIDR are infrastructure details for admins.
    if ctx.caller.is_root_admin() {
        view["internaldns1"] = json!(z.internal_dns1);
        view["internaldns2"] = json!(z.internal_dns2);
        view["guestcidraddress"] = json!(z.guest_cidr);
    }
    view
}

fn fields() -> Vec<FieldSpec> {
    vec![
        field("id", "string", "the ID of the zone"),
        field("name", "string", "the name of the zone"),
        field("networktype", "string", "Advanced"),
        field("allocationstate", "string", "Enabled or Disabled"),
        field("dns1", "string", "the first public DNS server"),
        field("internaldns1", "string", "the first internal DNS server"),
    ]
}

/// The commands of this module.
pub fn commands() -> Vec<CommandSpec> {
    vec![
        CommandSpec {
            name: "createZone",
            description: "Creates an Advanced zone",
            kind: Kind::Sync,
            roles: ROOT,
            params: vec![
                req("name", String, "the name of the zone"),
                req(
                    "networktype",
                    String,
                    "the network type; only Advanced is supported",
                ),
                req("dns1", String, "the first public DNS server"),
                req("internaldns1", String, "the first internal DNS server"),
                opt("dns2", String, "the second public DNS server"),
                opt("internaldns2", String, "the second internal DNS server"),
                opt("guestcidraddress", String, "the guest CIDR of the zone"),
                opt("domain", String, "the network domain of the zone"),
                opt("description", String, "a description of the zone"),
                opt("allocationstate", String, "Enabled or Disabled"),
            ],
            object: "zone",
            response: fields(),
            since: "",
            handler: create_zone,
            job: None,
        },
        CommandSpec {
            name: "listZones",
            description: "Lists zones",
            kind: Kind::Sync,
            roles: ALL,
            params: vec![
                opt("id", Uuid, "the ID of the zone"),
                opt("ids", List, "IDs of zones"),
                opt("name", String, "the name of the zone"),
                opt("available", Boolean, "only zones the caller can use"),
                opt("networktype", String, "only zones of this network type"),
                opt("keyword", String, "a substring of the name"),
                opt("page", Integer, "the page to return"),
                opt("pagesize", Integer, "the number of zones per page"),
            ],
            object: "zone",
            response: fields(),
            since: "",
            handler: list_zones,
            job: None,
        },
        CommandSpec {
            name: "updateZone",
            description: "Updates a zone",
            kind: Kind::Sync,
            roles: ROOT,
            params: vec![
                req("id", Uuid, "the ID of the zone"),
                opt("allocationstate", String, "Enabled or Disabled"),
            ],
            object: "zone",
            response: fields(),
            since: "",
            handler: update_zone,
            job: None,
        },
        CommandSpec {
            name: "deleteZone",
            description: "Deletes a zone that has no physical networks",
            kind: Kind::Sync,
            roles: ROOT,
            params: vec![req("id", Uuid, "the ID of the zone")],
            object: "zone",
            response: vec![],
            since: "",
            handler: delete_zone,
            job: None,
        },
    ]
}

fn check_ip(name: &str, value: Option<&str>) -> Result<(), Error> {
    match value {
        Some(v) if v.parse::<std::net::IpAddr>().is_err() => {
            Err(Error::invalid(format!("{name} {v} is not an IP address")))
        }
        _ => Ok(()),
    }
}

fn allocation_state(params: &Params) -> Result<Option<&'static str>, Error> {
    match params.string("allocationstate")?.as_deref() {
        None => Ok(None),
        Some(s) if s.eq_ignore_ascii_case("enabled") => Ok(Some("Enabled")),
        Some(s) if s.eq_ignore_ascii_case("disabled") => Ok(Some("Disabled")),
        Some(s) => Err(Error::invalid(format!(
            "allocationstate {s} is neither Enabled nor Disabled"
        ))),
    }
}

/// The live zone named by the required UUID parameter `name` (431 when it
/// names none).
pub(crate) async fn required_zone(
    ctx: &Ctx,
    params: &Params,
    name: &str,
) -> Result<zone::Zone, Error> {
    zone_by_id(ctx, params.required_uuid(ctx.command, name)?, name).await
}

/// The live zone `id`, given as parameter `name`.
pub(crate) async fn zone_by_id(ctx: &Ctx, id: uuid::Uuid, name: &str) -> Result<zone::Zone, Error> {
    let id = id.to_string();
    zone::get_by_uuid(&ctx.app.db, &id)
        .await?
        .filter(|z| z.removed.is_none())
        .ok_or_else(|| Error::invalid_id(name, &id))
}

handler!(create_zone, |ctx, params| {
    let network_type = params.required_string(ctx.command, "networktype")?;
    if !network_type.eq_ignore_ascii_case("advanced") {
        return Err(Error::invalid(format!(
            "networktype {network_type} is not supported: VPCs need Advanced zones"
        )));
    }
    for name in ["dns1", "dns2", "internaldns1", "internaldns2"] {
        check_ip(name, params.get(name))?;
    }
    if let Some(cidr) = params.get("guestcidraddress") {
        cidr.parse::<ipnet::Ipv4Net>()
            .map_err(|_| Error::invalid(format!("guestcidraddress {cidr} is not an IPv4 CIDR")))?;
    }
    let name = params.required_string(ctx.command, "name")?;
    let created = zone::create(
        &ctx.app.db,
        zone::NewZone {
            name: name.clone(),
            description: params.string("description")?,
            dns1: params.string("dns1")?,
            dns2: params.string("dns2")?,
            internal_dns1: params.string("internaldns1")?,
            internal_dns2: params.string("internaldns2")?,
            guest_cidr: params.string("guestcidraddress")?,
            domain_id: None,
            network_domain: params.string("domain")?,
        },
    )
    .await
    .map_err(|e| match e {
        store::StoreError::Duplicate(_) => {
            Error::invalid(format!("A zone with name {name} already exists"))
        }
        other => other.into(),
    })?;
    if let Some(state) = allocation_state(params)? {
        zone::set_allocation_state(&ctx.app.db, created.id, state).await?;
    }
    let z = zone::get_by_id(&ctx.app.db, created.id)
        .await?
        .ok_or_else(|| Error::internal("zone vanished"))?;
    Ok(Reply::Object(zone_view(ctx, &z)))
});

handler!(list_zones, |ctx, params| {
    let mut uuids: Option<Vec<std::string::String>> = params
        .uuid_list("ids")?
        .map(|v| v.iter().map(|u| u.to_string()).collect());
    if let Some(id) = params.uuid("id")? {
        uuids = Some(vec![id.to_string()]);
    }
    if let Some(kind) = params.string("networktype")?
        && !kind.eq_ignore_ascii_case("advanced")
    {
        return Ok(Reply::List {
            count: 0,
            items: vec![],
        });
    }
    let mut filter = zone::ZoneFilter {
        uuids,
        name: params.string("name")?,
        keyword: params.string("keyword")?,
        ..Default::default()
    };
    // Users only see zones they can deploy into.
    if !ctx.caller.is_root_admin() || params.boolean("available")? == Some(true) {
        filter.allocation_state = Some("Enabled".into());
    }
    let listed = zone::list(&ctx.app.db, &filter, page(ctx, params).await?).await?;
    let items = listed.items.iter().map(|z| zone_view(ctx, z)).collect();
    Ok(Reply::List {
        count: listed.total as u64,
        items,
    })
});

handler!(update_zone, |ctx, params| {
    let z = required_zone(ctx, params, "id").await?;
    if let Some(state) = allocation_state(params)? {
        zone::set_allocation_state(&ctx.app.db, z.id, state).await?;
    }
    let z = zone::get_by_id(&ctx.app.db, z.id)
        .await?
        .ok_or_else(|| Error::internal("zone vanished"))?;
    Ok(Reply::Object(zone_view(ctx, &z)))
});

handler!(delete_zone, |ctx, params| {
    let z = required_zone(ctx, params, "id").await?;
    if !zone::physical_networks(&ctx.app.db, z.id).await?.is_empty() {
        return Err(Error::in_use(format!(
            "The zone {} still has physical networks; delete them first",
            z.uuid
        )));
    }
    zone::remove(&ctx.app.db, z.id).await?;
    Ok(Reply::Success)
});
