//! VPC tiers (CloudStack reference §2.4, §3.4), one command per file:
//! `createNetwork` with a `vpcid` (synchronous, as in CloudStack),
//! `listNetworks`, and the async `updateNetwork`, `deleteNetwork` and
//! `restartNetwork`. A tier is created Allocated; its first VM implements it
//! (`provision::tier`).

mod create;
mod delete;
mod list;
mod restart;
mod update;
mod views;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::Error;
use crate::server::jobs::vpc_sync;
use crate::server::registry::{FieldSpec, Registry, field};
use crate::server::{Ctx, Role};
use crate::services::owner::{self, OWNER_FIELDS};
use crate::services::related::Related;
use crate::store::{Db, network};

pub use create::CreateNetwork;
pub use delete::DeleteNetwork;
pub use list::ListNetworks;
pub use restart::RestartNetwork;
pub use update::UpdateNetwork;
pub use views::network_view;

/// Registers the tier commands.
pub fn register(registry: &mut Registry) {
    registry.sync::<CreateNetwork>();
    registry.sync::<ListNetworks>();
    registry.job::<UpdateNetwork>();
    registry.job::<DeleteNetwork>();
    registry.job::<RestartNetwork>();
}

const NETWORK_FIELDS: &[&[FieldSpec]] = &[
    &[
        field("id", "string", "the ID of the network"),
        field("name", "string", "the name of the network"),
        field("displaytext", "string", "the description of the network"),
        field("cidr", "string", "the CIDR of the tier"),
        field("gateway", "string", "the gateway (the router's address)"),
        field("netmask", "string", "the netmask of the tier"),
        field("state", "string", "Allocated, Implemented, Shutdown"),
        field("traffictype", "string", "Guest"),
        field("type", "string", "the guest type: Isolated"),
        field("broadcastdomaintype", "string", "Vlan or Vxlan"),
        field(
            "broadcasturi",
            "string",
            "the tier's vnet URI, once implemented (admins only)",
        ),
        field("vlan", "string", "the tier's vnet (admins only)"),
        field("zoneid", "string", "the zone"),
        field("zonename", "string", "the name of the zone"),
        field("vpcid", "string", "the VPC of the tier"),
        field("vpcname", "string", "the name of the VPC"),
        field("aclid", "string", "the ACL list of the tier, if any"),
        field("aclname", "string", "the name of that ACL list"),
        field("networkofferingid", "string", "the network offering"),
        field("networkofferingname", "string", "the name of the offering"),
        field("networkdomain", "string", "the DNS domain of the tier"),
        field("physicalnetworkid", "string", "the physical network"),
        field("service", "list", "the services of the tier"),
    ],
    OWNER_FIELDS,
    &[
        field(
            "restartrequired",
            "boolean",
            "whether the tier needs a restart",
        ),
        field(
            "ispersistent",
            "boolean",
            "whether it stays implemented without VMs",
        ),
        field(
            "canusefordeploy",
            "boolean",
            "whether VMs can be deployed in it",
        ),
        field("created", "date", "when the tier was created"),
    ],
];

/// The live tier (Guest network of a VPC) `id`, given as parameter `param`,
/// which the caller may act on.
pub async fn live_tier(ctx: &Ctx, id: Uuid, param: &str) -> Result<network::Network, Error> {
    let t = network::get_by_uuid(&ctx.app.db, id)
        .await?
        .filter(|t| t.removed.is_none() && t.traffic_type == network::TRAFFIC_GUEST)
        .ok_or_else(|| Error::invalid_id(param, id))?;
    owner::check_access(ctx, t.account_id, &t.domain_path, &format!("network {id}"))?;
    Ok(t)
}

/// Jobs on a tier run one at a time with the other jobs of its VPC.
fn sync_object(t: &network::Network) -> String {
    match t.vpc_id {
        Some(v) => vpc_sync(v),
        None => format!("network:{}", t.id),
    }
}

/// Whether the caller sees the admin-only fields.
fn sees_admin_fields(role: Role) -> bool {
    role != Role::User
}

/// The live tier `id` a job works on, with its VPC.
async fn job_tier(db: &Db, id: i64) -> Result<(network::Network, i64), Error> {
    let t = network::get_by_id(db, id)
        .await?
        .filter(|t| t.removed.is_none())
        .ok_or_else(|| Error::invalid("The network was deleted meanwhile"))?;
    let vpc_id = t
        .vpc_id
        .ok_or_else(|| Error::invalid(format!("Network {} is not a VPC tier", t.uuid)))?;
    Ok((t, vpc_id))
}

/// The job result of a tier: `{"network": {...}}`.
async fn network_result(db: &Db, id: i64, admin: bool) -> Result<Value, Error> {
    let t = network::get_by_id(db, id)
        .await?
        .filter(|t| t.removed.is_none())
        .ok_or_else(|| Error::invalid("The network was deleted meanwhile"))?;
    let related = Related::for_networks(db, std::slice::from_ref(&t)).await?;
    Ok(json!({ "network": network_view(&related, &t, admin) }))
}
