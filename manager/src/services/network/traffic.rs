//! The traffic types of a physical network: `addTrafficType`,
//! `listTrafficTypes`.

use serde_json::{Value, json};
use sha1::{Digest, Sha1};

use super::{page_of, required_physnet, spec};
use crate::error::Error;
use crate::server::jobs::JobBody;
use crate::server::registry::{CommandSpec, FieldSpec, Kind, ParamType::*, field, opt, req};
use crate::server::{Reply, page};
use crate::store::{self, zone};
use crate::{handler, job_body};

/// The traffic types `addTrafficType` knows, in their canonical spelling.
const TRAFFIC_TYPES: [&str; 4] = ["Guest", "Public", "Management", "Storage"];

// ---------------------------------------------------------------- views

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

// ---------------------------------------------------------------- commands

/// The traffic type commands.
pub(super) fn commands() -> Vec<CommandSpec> {
    vec![
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
    ]
}

/// The job bodies of the traffic type commands.
pub(super) fn job_bodies() -> Vec<(&'static str, JobBody)> {
    vec![("addTrafficType", add_traffic_type_job)]
}

// ---------------------------------------------------------------- traffic types

fn canonical_traffic_type(text: &str) -> Result<&'static str, Error> {
    TRAFFIC_TYPES
        .iter()
        .copied()
        .find(|t| t.eq_ignore_ascii_case(text.trim()))
        .ok_or_else(|| {
            Error::invalid(format!(
                "traffictype {text} is not supported: use one of {}",
                TRAFFIC_TYPES.join(", ")
            ))
        })
}

fn duplicate_traffic_type(pn: &zone::PhysicalNetwork, traffic_type: &str) -> Error {
    Error::invalid(format!(
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
        .ok_or_else(|| Error::internal("physical network vanished"))?;
    let added = zone::add_traffic_type(db, id, traffic_type, info["label"].as_str())
        .await
        .map_err(|e| match e {
            store::StoreError::Duplicate(_) => duplicate_traffic_type(&pn, traffic_type),
            store::StoreError::NotFound { .. } => {
                Error::invalid(format!("The physical network {} was deleted", pn.uuid))
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

#[cfg(test)]
mod tests {
    use super::*;

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
