//! VPCs (CloudStack reference §2.3, §3.2, §3.3), one command per file:
//! `createVPC` (async-create: the row now, the router and source-NAT address
//! in the job), `updateVPC`, `deleteVPC`, `restartVPC`, `listVPCs`; and the
//! VPC routers (`router`).

mod create;
mod delete;
mod list;
mod restart;
mod router;
mod update;
mod views;

use serde_json::json;
use uuid::Uuid;

use crate::error::Error;
use crate::server::Ctx;
use crate::server::command::{Arg, Flag, Int, Text};
use crate::server::registry::{FieldSpec, Registry, field};
use crate::services::owner::{self, OWNER_FIELDS};
use crate::services::related::Related;
use crate::store::{Db, config, vpc};

pub use create::CreateVpc;
pub use delete::DeleteVpc;
pub use list::ListVpcs;
pub use restart::RestartVpc;
pub(crate) use router::{check_destination, not_running};
pub use update::UpdateVpc;
pub use views::vpc_view;

/// `fordisplay`, which the commands of this family accept and ignore.
const FOR_DISPLAY: Arg<Flag> = Arg::opt("fordisplay", "accepted; every VPC is displayed");

/// Registers the VPC commands.
pub fn register(registry: &mut Registry) {
    registry.job::<CreateVpc>();
    registry.job::<UpdateVpc>();
    registry.job::<DeleteVpc>();
    registry.job::<RestartVpc>();
    registry.sync::<ListVpcs>();
    registry.sync::<router::ListRouters>();
    registry.sync::<router::ChangeServiceForRouter>();
    registry.job::<router::StopRouter>();
    registry.job::<router::DestroyRouter>();
    registry.job::<router::StartRouter>();
    registry.job::<router::RebootRouter>();
    registry.job::<router::MigrateSystemVm>();
}

const VPC_FIELDS: &[&[FieldSpec]] = &[
    &[
        field("id", "string", "the ID of the VPC"),
        field("name", "string", "the name of the VPC"),
        field("displaytext", "string", "the description of the VPC"),
        field(
            "state",
            "string",
            "Enabled, or Inactive while it is deleted",
        ),
        field("zoneid", "string", "the zone of the VPC"),
        field("zonename", "string", "the name of the zone"),
        field("cidr", "string", "the super CIDR of the VPC's tiers"),
        field("vpcofferingid", "string", "the offering of the VPC"),
        field("vpcofferingname", "string", "the name of the offering"),
        field(
            "service",
            "list",
            "the services of the offering, with providers",
        ),
        field("network", "list", "the tiers of the VPC"),
        field(
            "restartrequired",
            "boolean",
            "whether the VPC needs a restart",
        ),
        field("networkdomain", "string", "the DNS domain of the tiers"),
    ],
    OWNER_FIELDS,
    &[
        field("created", "date", "when the VPC was created"),
        field("publicmtu", "integer", "the MTU of the router's public NIC"),
        field("dns1", "string", "the first IPv4 DNS server of the VPC"),
        field("dns2", "string", "the second IPv4 DNS server of the VPC"),
    ],
];

/// `publicmtu` (createVPC, updateVPC): the MTU of the router's public NIC.
/// Its range depends on `vr.public.interface.max.mtu`, so the command
/// checks it ([`crate::rules::vpc::check_public_mtu`]); the registry checks
/// the type.
const PUBLIC_MTU: Arg<Int> = Arg::opt(
    "publicmtu",
    "MTU of the router's public NIC, 68 to vr.public.interface.max.mtu (default 1500)",
);

/// `dns1`/`dns2` of createVPC: the upstream resolvers of the router's DNS
/// (also handed to VMs after the router), instead of the zone's.
const DNS1: Arg<Text> = Arg::opt(
    "dns1",
    "the first IPv4 DNS server of the VPC (default the zone's dns1)",
);
const DNS2: Arg<Text> = Arg::opt("dns2", "the second IPv4 DNS server of the VPC (needs dns1)");

/// The largest `publicmtu` (`vr.public.interface.max.mtu`).
async fn max_public_mtu(db: &Db) -> Result<i64, Error> {
    Ok(config::value_i64(db, "vr.public.interface.max.mtu")
        .await?
        .unwrap_or(vpc::DEFAULT_PUBLIC_MTU))
}

/// The live VPC `id` (given as parameter `param`), which the caller may act on.
pub async fn live_vpc(ctx: &Ctx, id: Uuid, param: &str) -> Result<vpc::Vpc, Error> {
    let v = vpc::get_by_uuid(&ctx.app.db, id)
        .await?
        .filter(|v| v.removed.is_none())
        .ok_or_else(|| Error::invalid_id(param, id))?;
    owner::check_access(ctx, v.account_id, &v.domain_path, &format!("VPC {id}"))?;
    Ok(v)
}

/// The live VPC named by parameter `param`, which the caller may act on
/// (431 when it names none, 531 when it is someone else's), for the
/// commands on objects of a VPC (ACL lists, gateways, routes).
pub(crate) async fn vpc_param(ctx: &Ctx, param: &str, id: Uuid) -> Result<vpc::Vpc, Error> {
    let v = vpc::get_by_uuid(&ctx.app.db, id)
        .await?
        .filter(|v| v.removed.is_none())
        .ok_or_else(|| Error::invalid_id(param, id))?;
    check_vpc_access(ctx, &v)?;
    Ok(v)
}

/// Checks that the caller may act on objects of `v` (531). The text does
/// not name the VPC: a caller who named an object of someone else's VPC
/// must not learn which VPC that is.
pub(crate) fn check_vpc_access(ctx: &Ctx, v: &vpc::Vpc) -> Result<(), Error> {
    owner::check_access(ctx, v.account_id, &v.domain_path, "objects of this VPC")
}

/// A job's result: `{"vpc": {...}}`.
async fn vpc_result(db: &Db, id: i64) -> Result<serde_json::Value, Error> {
    let v = vpc::get_by_id(db, id)
        .await?
        .filter(|v| v.removed.is_none())
        .ok_or_else(|| Error::invalid("The VPC was deleted meanwhile"))?;
    let related = Related::for_vpcs(db, std::slice::from_ref(&v), true).await?;
    Ok(json!({ "vpc": vpc_view(&related, &v, true) }))
}
