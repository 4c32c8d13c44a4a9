//! Physical networks: `createPhysicalNetwork`, `listPhysicalNetworks`,
//! `updatePhysicalNetwork`, `deletePhysicalNetwork`.

use serde_json::{Value, json};

use super::{MAX_VLAN, paging, required_physnet, spec, zone_param, zone_uuid_and_name};
use crate::api::Params;
use crate::error::Error;
use crate::server::jobs::JobBody;
use crate::server::registry::{CommandSpec, FieldSpec, Kind, ParamType::*, field, opt, req};
use crate::server::{Reply, page};
use crate::store::{self, Db, zone};
use crate::{handler, job_body};

/// Highest VXLAN network identifier CloudStack accepts.
const MAX_VXLAN: u64 = 16_777_214;
/// The only broadcast domain range of a physical network in an Advanced zone.
const BROADCAST_ZONE: &str = "ZONE";

// ---------------------------------------------------------------- views

async fn physnet_view(db: &Db, pn: &zone::PhysicalNetwork) -> Result<Value, Error> {
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

// ---------------------------------------------------------------- commands

/// The physical network commands.
pub(super) fn commands() -> Vec<CommandSpec> {
    let mut list_physnets = vec![
        opt("id", Uuid, "the ID of the physical network"),
        opt("zoneid", Uuid, "only the physical networks of this zone"),
        opt("name", String, "the name of the physical network"),
    ];
    list_physnets.extend(paging());
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
    ]
}

/// The job bodies of the physical network commands.
pub(super) fn job_bodies() -> Vec<(&'static str, JobBody)> {
    vec![
        ("createPhysicalNetwork", create_physical_network_job),
        ("updatePhysicalNetwork", update_physical_network_job),
        ("deletePhysicalNetwork", delete_physical_network_job),
    ]
}

// ---------------------------------------------------------------- parameters

/// `VLAN` or `VXLAN` from the `isolationmethods` list (default VLAN).
fn isolation_method(params: &Params) -> Result<&'static str, Error> {
    let methods = params.list("isolationmethods")?.unwrap_or_default();
    match methods.as_slice() {
        [] => Ok("VLAN"),
        [one] if one.eq_ignore_ascii_case("vlan") => Ok("VLAN"),
        [one] if one.eq_ignore_ascii_case("vxlan") => Ok("VXLAN"),
        [one] => Err(Error::invalid(format!(
            "isolationmethods {one} is not supported: use VLAN or VXLAN"
        ))),
        _ => Err(Error::invalid(
            "Only one isolation method can be given for a physical network",
        )),
    }
}

/// Checks a guest VLAN/VNI range such as `100-199,300-310` (single ids too)
/// for the isolation method and returns it in canonical form. The pieces may
/// not overlap.
pub fn parse_vnet_range(method: &str, text: &str) -> Result<std::string::String, Error> {
    let max = if method == "VXLAN" {
        MAX_VXLAN
    } else {
        MAX_VLAN
    };
    let bad = |why: &str| {
        Error::invalid(format!(
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
        let number = |s: &str| -> Result<u64, Error> {
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

fn state_param(params: &Params) -> Result<Option<&'static str>, Error> {
    match params.string("state")?.as_deref() {
        None | Some("") => Ok(None),
        Some(s) if s.eq_ignore_ascii_case("enabled") => Ok(Some("Enabled")),
        Some(s) if s.eq_ignore_ascii_case("disabled") => Ok(Some("Disabled")),
        Some(s) => Err(Error::invalid(format!(
            "state {s} is neither Enabled nor Disabled"
        ))),
    }
}

// ---------------------------------------------------------------- physical networks

handler!(create_physical_network, |ctx, params| {
    let z = zone_param(ctx, params, "zoneid")
        .await?
        .ok_or_else(|| Error::missing_param(ctx.command, "zoneid"))?;
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
        return Err(Error::invalid(format!(
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
                store::StoreError::Duplicate(_) => Error::invalid(format!(
                    "A physical network named {name} exists in zone {} already",
                    z.uuid
                )),
                other => other.into(),
            })?;
    let submitted = ctx
        .submit_job(
            json!({ "id": created.id }),
            Some(("PhysicalNetwork", &created.uuid)),
            format!("physicalnetwork:{}", created.id),
        )
        .await;
    // Async-create answers with the new id only when its job exists;
    // without one the row would stay half-created, so it goes again.
    let job_id = match submitted {
        Ok(job_id) => job_id,
        Err(e) => {
            if let Err(undo) = zone::remove_physical_network(&ctx.app.db, created.id).await {
                tracing::error!(error = %undo, "removing a row whose job could not be submitted");
            }
            return Err(e);
        }
    };
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
            Error::invalid("The physical network was deleted before its creation finished")
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
        return Err(Error::invalid("The physical network was deleted"));
    }
    let pn = zone::physical_network_by_id(db, id)
        .await?
        .ok_or_else(|| Error::internal("physical network vanished"))?;
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
            store::StoreError::Conflict(why) => Error::in_use(format!(
                "The physical network {uuid} cannot be deleted: {why}; delete them first"
            )),
            other => other.into(),
        })?;
    Ok(json!({ "success": true }))
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
                parse_vnet_range("VLAN", bad)
                    .map_err(crate::api::ApiError::from)
                    .unwrap_err()
                    .code,
                431,
                "{bad}"
            );
        }
        assert!(parse_vnet_range("VXLAN", "1-16777214").is_ok());
        assert!(parse_vnet_range("VXLAN", "1-16777215").is_err());
    }
}
