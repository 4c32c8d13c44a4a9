//! Tiers on the router and VM NICs on tiers, through the network guru that
//! designed the tier (DESIGN §2, CloudStack's NetworkGuru lifecycle):
//!
//! - [`design_tier`]: the guru of the zone's Guest physical network shapes a
//!   new tier (state Allocated);
//! - [`implement_tier`], [`resend_tier`], [`send_dhcp`]: a tier on the
//!   router, and its DHCP lists; [`shutdown_tier`], [`destroy_tier`],
//!   [`trash_tier`]: a tier off the router; each router change through the
//!   VPC's change protocol ([`super::change`]);
//! - [`nic`]: a VM NIC's address in the tier (reserve, release).
//!
//! Every function that changes a tier's router takes the VPC's lock
//! ([`VpcLock`](super::change::VpcLock)), which also gives it the store and
//! the plug-ins; the transactions also lock the VPC row, so managers sharing
//! PostgreSQL do not interleave either.

mod implement;
mod nic;
mod shutdown;
mod vnets;

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use uuid::Uuid;

use crate::error::Error;
use crate::orchestration::guru::{
    DesignedNetwork, GuruError, ImplementedNetwork, NetworkSpec, NetworkState,
};
use crate::orchestration::model::{AclListView, RouterState, TierView};
use crate::orchestration::{ElementError, IsolationMethod, NetworkGuru, NetworkTraffic};
use crate::store::{self, network, zone};

use super::Network;
use super::change::VpcLock;

pub use implement::{implement_tier, resend_tier, send_dhcp};
pub use nic::{pick_address, release_nic, reserve_nic};
pub use shutdown::{destroy_tier, shutdown_tier, trash_tier};

fn corrupt(what: &str, value: &str) -> Error {
    Error::internal(format!("stored {what} {value:?} is not valid"))
}

/// The API error of a guru's refusal.
pub fn guru_error(e: GuruError) -> Error {
    match e {
        GuruError::Invalid(text) => Error::invalid(text),
        GuruError::NoFreeAddress(cidr) => Error::insufficient(
            crate::error::Capacity::GuestNetwork,
            format!("Unable to acquire Guest IP address: no address is free in {cidr}"),
        ),
        GuruError::NoFreeVnet(physnet) => Error::insufficient(
            crate::error::Capacity::GuestNetwork,
            format!(
                "Unable to allocate a guest vnet: every vnet of physical network {physnet} is in use"
            ),
        ),
        other => Error::internal(other.to_string()),
    }
}

/// The zone's physical network that carries Guest traffic, and its
/// isolation method.
pub async fn guest_physical_network<'a>(
    ex: impl Into<store::Exec<'a>>,
    zone_id: i64,
) -> Result<(zone::PhysicalNetwork, IsolationMethod), Error> {
    let pn = zone::physical_network_for_traffic(ex, zone_id, network::TRAFFIC_GUEST)
        .await?
        .ok_or_else(|| {
            Error::invalid(format!(
                "Unable to find a physical network with Guest traffic in zone {zone_id}"
            ))
        })?;
    let isolation = IsolationMethod::parse(&pn.isolation_method)
        .ok_or_else(|| corrupt("isolation method", &pn.isolation_method))?;
    Ok((pn, isolation))
}

/// The guru a tier was designed by (its stored name), or the one the
/// registry picks for the isolation method.
fn guru_of<'g>(
    network: &'g Network,
    tier: &network::Network,
    isolation: IsolationMethod,
) -> Result<&'g dyn NetworkGuru, Error> {
    let gurus = &network.plugins.gurus;
    if let Some(name) = &tier.guru_name
        && let Some(g) = gurus.by_name(name)
    {
        return Ok(g);
    }
    gurus
        .choose(isolation, NetworkTraffic::Guest)
        .map_err(|e| Error::internal(e.to_string()))
}

/// What a new tier asks its guru.
pub struct TierDesign<'a> {
    pub name: &'a str,
    pub cidr: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub vpc_cidr: Ipv4Net,
    pub network_domain: &'a str,
}

/// Has the guru for the physical network's isolation method design a tier
/// (state Allocated); pure, so it can run before the creating transaction.
pub fn design_tier(
    network: &Network,
    physical: &zone::PhysicalNetwork,
    isolation: IsolationMethod,
    spec: TierDesign<'_>,
) -> Result<DesignedNetwork, Error> {
    let guru = network
        .plugins
        .gurus
        .choose(isolation, NetworkTraffic::Guest)
        .map_err(|e| {
            Error::invalid(format!(
                "No network guru can build tiers on physical network {}: {e}",
                physical.name
            ))
        })?;
    guru.design(&NetworkSpec {
        id: Uuid::new_v4(),
        name: spec.name.to_string(),
        traffic: NetworkTraffic::Guest,
        isolation,
        physical_network_id: Some(physical.uuid),
        cidr: Some(spec.cidr),
        gateway: Some(spec.gateway),
        vlan: None,
        mtu: None,
        network_domain: Some(spec.network_domain.to_string()),
        vpc_cidr: Some(spec.vpc_cidr),
    })
    .map_err(guru_error)
}

/// The designed (and, when it has a vnet, implemented) form of a stored tier.
fn tier_network(
    tier: &network::Network,
    guru: &dyn NetworkGuru,
    isolation: IsolationMethod,
    physical: Option<&zone::PhysicalNetwork>,
) -> Result<ImplementedNetwork, Error> {
    let cidr = tier.cidr.ok_or_else(|| corrupt("tier CIDR", ""))?;
    let gateway = tier.gateway;
    let implemented = tier.state == network::STATE_IMPLEMENTED;
    let designed = DesignedNetwork {
        id: tier.uuid,
        name: tier.name.clone(),
        guru: guru.name(),
        traffic: NetworkTraffic::Guest,
        isolation,
        state: if implemented {
            NetworkState::Implemented
        } else {
            NetworkState::Allocated
        },
        physical_network_id: physical.map(|p| p.uuid),
        cidr,
        gateway,
        broadcast_uri: tier.broadcast_uri.clone(),
        mtu: 0,
        network_domain: tier.network_domain.clone(),
    };
    Ok(ImplementedNetwork {
        broadcast_uri: tier.broadcast_uri.clone(),
        acquired_vnet: tier.vnet.as_deref().and_then(|v| v.parse().ok()),
        network: designed,
    })
}

/// Loads a live tier by id.
async fn live_tier<'a>(ex: impl Into<store::Exec<'a>>, id: i64) -> Result<network::Network, Error> {
    network::get_by_id(ex, id)
        .await?
        .filter(|t| t.removed.is_none())
        .ok_or_else(|| Error::invalid("The network was deleted meanwhile"))
}

/// The tier's physical network (and isolation method).
async fn physical_of<'a>(
    ex: impl Into<store::Exec<'a>>,
    tier: &network::Network,
) -> Result<(zone::PhysicalNetwork, IsolationMethod), Error> {
    let mut ex = ex.into();
    let pn = match tier.physical_network_id {
        Some(id) => zone::physical_network_by_id(ex.reborrow(), id).await?,
        None => None,
    };
    match pn {
        Some(pn) => {
            let isolation = IsolationMethod::parse(&pn.isolation_method)
                .ok_or_else(|| corrupt("isolation method", &pn.isolation_method))?;
            Ok((pn, isolation))
        }
        None => guest_physical_network(ex, tier.zone_id).await,
    }
}

/// The view of tier `id` in a loaded state.
fn tier_view(state: &RouterState, id: Uuid) -> Result<&TierView, ElementError> {
    state
        .tiers
        .iter()
        .find(|t| t.id == id)
        .ok_or_else(|| ElementError::Invalid(format!("tier {id} is not on the router")))
}

/// The view of tier `id` and of its ACL list (if any) in a loaded state.
fn tier_with_acl(
    state: &RouterState,
    id: Uuid,
) -> Result<(&TierView, Option<&AclListView>), ElementError> {
    let view = tier_view(state, id)?;
    let acl =
        match view.acl_id {
            Some(acl) => Some(state.acl_list(acl).ok_or_else(|| {
                ElementError::Invalid(format!("ACL list {acl} is not in the state"))
            })?),
            None => None,
        };
    Ok((view, acl))
}

/// The live VPC tier `tier_id`, which must be a tier of the locked VPC.
async fn tier_of_lock(lock: &VpcLock<'_>, tier_id: i64) -> Result<network::Network, Error> {
    let tier = live_tier(lock.db(), tier_id).await?;
    match tier.vpc_id {
        Some(id) if id == lock.vpc_id() => Ok(tier),
        Some(_) => Err(Error::internal(format!(
            "network {} is not a tier of the locked VPC",
            tier.uuid
        ))),
        None => Err(Error::internal("only VPC tiers are changed here")),
    }
}
