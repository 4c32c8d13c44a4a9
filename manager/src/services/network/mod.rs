//! Physical networks, their traffic types and the zone's public IP ranges:
//! `createPhysicalNetwork`, `listPhysicalNetworks`, `updatePhysicalNetwork`,
//! `deletePhysicalNetwork`, `addTrafficType`, `listTrafficTypes`,
//! `createVlanIpRange`, `listVlanIpRanges`, `deleteVlanIpRange`. All of them
//! are for the root admin, as in CloudStack.
//!
//! One file per idea: [`physical`] (physical networks), [`traffic`] (their
//! traffic types) and [`ranges`] (public IP ranges); this module assembles
//! their commands and keeps the helpers they share.

mod physical;
mod ranges;
mod traffic;

pub use physical::parse_vnet_range;
pub use ranges::normalize_public_vlan;

use crate::api::Params;
use crate::error::Error;
use crate::server::jobs::JobBody;
use crate::server::registry::{
    CommandSpec, FieldSpec, Handler, Kind, ParamSpec, ParamType::*, ROOT, opt,
};
use crate::server::{Ctx, page_of};
use crate::store::{Db, zone};

/// Highest VLAN id of an 802.1Q tag.
const MAX_VLAN: u64 = 4094;

// ---------------------------------------------------------------- views

async fn zone_uuid_and_name(
    db: &Db,
    zone_id: i64,
) -> Result<Option<(std::string::String, std::string::String)>, Error> {
    Ok(zone::get_by_id(db, zone_id)
        .await?
        .map(|z| (z.uuid, z.name)))
}

fn paging() -> Vec<ParamSpec> {
    vec![
        opt("keyword", String, "a substring to match"),
        opt("page", Integer, "the page to return"),
        opt("pagesize", Integer, "the number of objects per page"),
    ]
}

// ---------------------------------------------------------------- commands

/// One root-admin command of this module.
fn spec(
    name: &'static str,
    description: &'static str,
    kind: Kind,
    params: Vec<ParamSpec>,
    object: &'static str,
    response: Vec<FieldSpec>,
    handler: Handler,
) -> CommandSpec {
    CommandSpec {
        name,
        description,
        kind,
        roles: ROOT,
        params,
        object,
        response,
        since: "",
        handler,
        job: None,
    }
}

/// The commands of this module.
pub fn commands() -> Vec<CommandSpec> {
    let mut all = physical::commands();
    all.extend(traffic::commands());
    all.extend(ranges::commands());
    all
}

/// The job bodies of this module's async commands.
pub fn job_bodies() -> Vec<(&'static str, JobBody)> {
    let mut bodies = physical::job_bodies();
    bodies.extend(traffic::job_bodies());
    bodies
}

// ---------------------------------------------------------------- parameters

/// The live zone named by parameter `name`, if given.
async fn zone_param(ctx: &Ctx, params: &Params, name: &str) -> Result<Option<zone::Zone>, Error> {
    let Some(id) = params.uuid(name)? else {
        return Ok(None);
    };
    let id = id.to_string();
    let z = zone::get_by_uuid(&ctx.app.db, &id)
        .await?
        .filter(|z| z.removed.is_none())
        .ok_or_else(|| Error::invalid_id(name, &id))?;
    Ok(Some(z))
}

/// The live physical network named by parameter `name`, if given.
async fn physnet_param(
    ctx: &Ctx,
    params: &Params,
    name: &str,
) -> Result<Option<zone::PhysicalNetwork>, Error> {
    let Some(id) = params.uuid(name)? else {
        return Ok(None);
    };
    let id = id.to_string();
    let pn = zone::physical_network_by_uuid(&ctx.app.db, &id)
        .await?
        .filter(|p| p.removed.is_none())
        .ok_or_else(|| Error::invalid_id(name, &id))?;
    Ok(Some(pn))
}

/// The live physical network named by the required parameter `name`.
async fn required_physnet(
    ctx: &Ctx,
    params: &Params,
    name: &str,
) -> Result<zone::PhysicalNetwork, Error> {
    params.required_uuid(ctx.command, name)?;
    physnet_param(ctx, params, name)
        .await?
        .ok_or_else(|| Error::missing_param(ctx.command, name))
}
