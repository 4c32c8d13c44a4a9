//! The traffic types of a physical network: `addTrafficType` (async),
//! `listTrafficTypes`; their ids and view.

mod add;
mod list;

pub use add::AddTrafficType;
pub use list::ListTrafficTypes;

use serde_json::{Value, json};
use sha1::{Digest, Sha1};

use crate::error::Error;
use crate::server::command::{Arg, Id};
use crate::server::registry::{FieldSpec, field};
use crate::store::zone;

/// The traffic types `addTrafficType` knows, in their canonical spelling.
const TRAFFIC_TYPES: [&str; 4] = ["Guest", "Public", "Management", "Storage"];

/// `physicalnetworkid` of both commands.
const PHYSNET: Arg<Id> = Arg::req("physicalnetworkid", "the ID of the physical network");

// ---------------------------------------------------------------- views

/// The API id of a traffic type. The store keeps no UUID for these rows, so
/// the id is a name-based (version 5) UUID of the type in the namespace of
/// its physical network: stable, and unique across physical networks.
fn traffic_type_uuid(physnet_uuid: &uuid::Uuid, traffic_type: &str) -> String {
    let namespace = *physnet_uuid;
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

const TRAFFIC_TYPE_FIELDS: &[FieldSpec] = &[
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
];

// ---------------------------------------------------------------- checks

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_type_ids_are_stable_and_distinct() {
        let pn = &"5f0e6a0c-9d2b-4f4e-8a55-3c1d2e7b9a10".parse().unwrap();
        let a = traffic_type_uuid(pn, "Public");
        assert_eq!(a, traffic_type_uuid(pn, "Public"));
        assert_ne!(a, traffic_type_uuid(pn, "Guest"));
        assert_ne!(
            a,
            traffic_type_uuid(
                &"6b1e9e5f-1f0e-4d3c-9a55-2f2f7b1a0c11".parse().unwrap(),
                "Public"
            )
        );
        assert_eq!(uuid::Uuid::parse_str(&a).unwrap().get_version_num(), 5);
    }

    #[test]
    fn traffic_types_take_their_canonical_spelling() {
        assert_eq!(canonical_traffic_type(" public ").unwrap(), "Public");
        assert_eq!(canonical_traffic_type("GUEST").unwrap(), "Guest");
        assert_eq!(
            crate::api::ApiError::from(canonical_traffic_type("Control").unwrap_err()).code,
            431
        );
    }
}
