//! Physical networks, their traffic types and the zone's public IP ranges:
//! `createPhysicalNetwork`, `listPhysicalNetworks`, `updatePhysicalNetwork`,
//! `deletePhysicalNetwork`, `addTrafficType`, `listTrafficTypes`,
//! `createVlanIpRange`, `listVlanIpRanges`, `deleteVlanIpRange`. All of them
//! are for the root admin, as in CloudStack.
//!
//! One folder per resource, one file per command: [`physical_network`],
//! [`traffic_type`] and [`vlan_ip_range`]; this module registers their
//! commands and keeps the lookups and paging parameters they share.

mod physical_network;
mod traffic_type;
mod vlan_ip_range;

pub use physical_network::{
    CreatePhysicalNetwork, DeletePhysicalNetwork, ListPhysicalNetworks, UpdatePhysicalNetwork,
    parse_vnet_range,
};
pub use traffic_type::{AddTrafficType, ListTrafficTypes};
pub use vlan_ip_range::{
    CreateVlanIpRange, DeleteVlanIpRange, ListVlanIpRanges, normalize_public_vlan,
};

use uuid::Uuid;

use crate::error::Error;
use crate::server::Ctx;
use crate::server::registry::Registry;
use crate::store::{Db, zone};

/// Highest VLAN id of an 802.1Q tag.
const MAX_VLAN: u64 = 4094;

/// Registers the commands of this module.
pub fn register(registry: &mut Registry) {
    registry.job::<CreatePhysicalNetwork>();
    registry.sync::<ListPhysicalNetworks>();
    registry.job::<UpdatePhysicalNetwork>();
    registry.job::<DeletePhysicalNetwork>();
    registry.job::<AddTrafficType>();
    registry.sync::<ListTrafficTypes>();
    registry.sync::<CreateVlanIpRange>();
    registry.sync::<ListVlanIpRanges>();
    registry.sync::<DeleteVlanIpRange>();
}

/// The sync object of the jobs on one physical network: they run one at a
/// time.
fn physnet_sync(id: i64) -> String {
    format!("physicalnetwork:{id}")
}

// ---------------------------------------------------------------- views

async fn zone_uuid_and_name(db: &Db, zone_id: i64) -> Result<Option<(String, String)>, Error> {
    Ok(zone::get_by_id(db, zone_id)
        .await?
        .map(|z| (z.uuid.to_string(), z.name)))
}

// ---------------------------------------------------------------- paging

use crate::server::list_paging::Paging;

// ---------------------------------------------------------------- lookups

/// The live zone `id` (given as parameter `param`), if given.
async fn zone_param(ctx: &Ctx, id: Option<Uuid>, param: &str) -> Result<Option<zone::Zone>, Error> {
    let Some(id) = id else {
        return Ok(None);
    };
    Ok(Some(live_zone(ctx, id, param).await?))
}

/// The live zone `id` (given as parameter `param`).
async fn live_zone(ctx: &Ctx, id: Uuid, param: &str) -> Result<zone::Zone, Error> {
    zone::get_by_uuid(&ctx.app.db, id)
        .await?
        .filter(|z| z.removed.is_none())
        .ok_or_else(|| Error::invalid_id(param, id))
}

/// The live physical network `id` (given as parameter `param`), if given.
async fn physnet_param(
    ctx: &Ctx,
    id: Option<Uuid>,
    param: &str,
) -> Result<Option<zone::PhysicalNetwork>, Error> {
    let Some(id) = id else {
        return Ok(None);
    };
    Ok(Some(live_physnet(ctx, id, param).await?))
}

/// The live physical network `id` (given as parameter `param`).
async fn live_physnet(ctx: &Ctx, id: Uuid, param: &str) -> Result<zone::PhysicalNetwork, Error> {
    zone::physical_network_by_uuid(&ctx.app.db, id)
        .await?
        .filter(|p| p.removed.is_none())
        .ok_or_else(|| Error::invalid_id(param, id))
}
