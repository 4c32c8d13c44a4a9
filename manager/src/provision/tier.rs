//! Tiers on the router and VM NICs on tiers, through the network guru that
//! designed the tier (DESIGN §2, CloudStack's NetworkGuru lifecycle):
//!
//! - [`design_tier`]: the guru of the zone's Guest physical network shapes a
//!   new tier (state Allocated);
//! - [`implement_tier`]: the guru takes a vnet from the physical network's
//!   range, the router gets a NIC on the tier (the tier gateway), and the
//!   element plugs it and sets the tier up (PlugNic, SetupGuestNetwork,
//!   SetNetworkAcl when the tier has a list);
//! - [`shutdown_tier`] / [`destroy_tier`]: the element removes the tier from
//!   the router (DestroyGuestNetwork, UnplugNic), the NIC goes and the guru
//!   gives the vnet back (state Allocated again);
//! - [`reserve_nic`] / [`release_nic`]: a VM NIC's address in the tier.
//!
//! Every function that changes a tier expects the caller to hold the VPC's
//! lock ([`super::Network::lock_vpc`]); the transactions also lock the VPC
//! row, so managers sharing PostgreSQL do not interleave either.

use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnet::Ipv4Net;
use uuid::Uuid;

use crate::error::Error;
use crate::orchestration::guru::{
    AddressAllocator, BoxFuture, DesignedNetwork, GuruError, ImplementedNetwork, NetworkSpec,
    NetworkState, NicRequest, ReservedNic, VnetAllocator,
};
use crate::orchestration::model::{AclListView, RouterState, TierView};
use crate::orchestration::{
    ElementError, IsolationMethod, NetworkElement, NetworkGuru, RouterDriver,
};
use crate::orchestration::{NetworkTraffic, wire};
use crate::server::App;
use crate::store::{self, Page, Tx, network, router, vm, vnet, vpc, zone};

use super::{bump, push, vpc_router};

fn corrupt(what: &str, value: &str) -> Error {
    Error::internal(format!("stored {what} {value:?} is not valid"))
}

fn uuid_of(text: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(text).map_err(|_| corrupt("UUID", text))
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
    app: &'g App,
    tier: &network::Network,
    isolation: IsolationMethod,
) -> Result<&'g dyn NetworkGuru, Error> {
    let gurus = &app.network.plugins.gurus;
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
    app: &App,
    physical: &zone::PhysicalNetwork,
    isolation: IsolationMethod,
    spec: TierDesign<'_>,
) -> Result<DesignedNetwork, Error> {
    let guru = app
        .network
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
        physical_network_id: Some(uuid_of(&physical.uuid)?),
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
    let cidr_text = tier.cidr.clone().unwrap_or_default();
    let cidr = Ipv4Net::from_str(&cidr_text).map_err(|_| corrupt("tier CIDR", &cidr_text))?;
    let gateway = tier
        .gateway
        .as_deref()
        .map(|g| {
            g.parse::<Ipv4Addr>()
                .map_err(|_| corrupt("tier gateway", g))
        })
        .transpose()?;
    let implemented = tier.state == network::STATE_IMPLEMENTED;
    let designed = DesignedNetwork {
        id: uuid_of(&tier.uuid)?,
        name: tier.name.clone(),
        guru: guru.name(),
        traffic: NetworkTraffic::Guest,
        isolation,
        state: if implemented {
            NetworkState::Implemented
        } else {
            NetworkState::Allocated
        },
        physical_network_id: physical.map(|p| uuid_of(&p.uuid)).transpose()?,
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

/// Vnets of one physical network for one tier, inside the caller's
/// transaction. The range's rows are created on first need, so a range set
/// or widened on the physical network is picked up.
struct TxVnets<'t> {
    tx: &'t mut Tx,
    physical: &'t zone::PhysicalNetwork,
    network_id: i64,
}

impl VnetAllocator for TxVnets<'_> {
    fn acquire_vnet(
        &mut self,
        physical_network_id: Uuid,
        _network_id: Uuid,
    ) -> BoxFuture<'_, Result<u32, GuruError>> {
        Box::pin(async move {
            let store_error = |e: store::StoreError| GuruError::Allocator(e.to_string());
            let pn = self.physical;
            let mut taken = vnet::allocate(&mut *self.tx, pn.id, self.network_id)
                .await
                .map_err(store_error)?;
            if taken.is_none()
                && let Some(range) = pn.vnet_range.as_deref().filter(|r| !r.is_empty())
            {
                vnet::populate(&mut *self.tx, pn.id, range)
                    .await
                    .map_err(store_error)?;
                taken = vnet::allocate(&mut *self.tx, pn.id, self.network_id)
                    .await
                    .map_err(store_error)?;
            }
            let taken = taken.ok_or(GuruError::NoFreeVnet(physical_network_id))?;
            taken
                .parse()
                .map_err(|_| GuruError::Allocator(format!("stored vnet {taken:?} is not a number")))
        })
    }

    fn release_vnet(
        &mut self,
        _physical_network_id: Uuid,
        vnet_number: u32,
    ) -> BoxFuture<'_, Result<(), GuruError>> {
        Box::pin(async move {
            vnet::release(&mut *self.tx, self.physical.id, &vnet_number.to_string())
                .await
                .map_err(|e| GuruError::Allocator(e.to_string()))?;
            Ok(())
        })
    }
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

/// The router's live NIC on a tier, if the tier is plugged.
async fn router_nic<'a>(
    ex: impl Into<store::Exec<'a>>,
    tier_id: i64,
) -> Result<Option<router::Nic>, Error> {
    Ok(router::list_nics(
        ex,
        &router::NicFilter {
            network_id: Some(tier_id),
            role: Some(router::ROLE_GUEST.into()),
            ..Default::default()
        },
        Page::ALL,
    )
    .await?
    .items
    .into_iter()
    .find(|n| n.router_id.is_some()))
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

/// Implements an Allocated tier (its first VM, restartNetwork): a vnet from
/// the physical network's range, the broadcast URI, the router's NIC on the
/// tier holding the gateway, state Implemented and a new generation in one
/// transaction; then the element puts the tier on the router. When that
/// fails every row is put back (vnet released, NIC removed, Allocated).
/// A tier that is Implemented already is left as it is. Returns the tier.
pub async fn implement_tier(app: &App, tier_id: i64) -> Result<network::Network, Error> {
    let db = &app.db;
    let tier = live_tier(db, tier_id).await?;
    let vpc_id = tier
        .vpc_id
        .ok_or_else(|| Error::internal("only VPC tiers are implemented here"))?;
    let (pn, isolation) = physical_of(db, &tier).await?;
    let guru = guru_of(app, &tier, isolation)?;

    let mut tx = db.begin().await?;
    vpc::lock(&mut tx, vpc_id).await?;
    let tier = live_tier(&mut tx, tier_id).await?;
    if tier.state != network::STATE_ALLOCATED {
        tx.commit().await?;
        return Ok(tier);
    }
    let r = vpc_router(&mut tx, vpc_id).await?.ok_or_else(|| {
        Error::internal(format!(
            "Unable to implement network {}: its VPC has no router",
            tier.uuid
        ))
    })?;
    let designed = tier_network(&tier, guru, isolation, Some(&pn))?.network;
    let implemented = {
        let mut vnets = TxVnets {
            tx: &mut tx,
            physical: &pn,
            network_id: tier.id,
        };
        guru.implement(&designed, &mut vnets)
            .await
            .map_err(guru_error)?
    };
    let vnet_text = implemented.acquired_vnet.map(|v| v.to_string());
    network::set_vnet(
        &mut tx,
        tier.id,
        vnet_text.as_deref(),
        implemented.broadcast_uri.as_deref(),
    )
    .await?;
    let nic = router::create_nic(
        &mut tx,
        router::NewNic {
            owner: router::NicOwner::Router(r.id),
            network_id: tier.id,
            device_index: None,
            ip4_address: tier.gateway.clone(),
            netmask: tier.netmask.clone(),
            gateway: None,
            role: router::ROLE_GUEST.into(),
        },
    )
    .await?;
    network::set_state(&mut tx, tier.id, network::STATE_IMPLEMENTED).await?;
    let generation = bump(&mut tx, vpc_id).await?;
    tx.commit().await?;

    let tier_uuid = uuid_of(&tier.uuid)?;
    let pushed = push(db, &app.network, vpc_id, generation, |element, state, g| {
        Box::pin(async move {
            let (view, acl) = tier_with_acl(state, tier_uuid)?;
            element.implement(&state.router, g, view, acl).await
        })
    })
    .await;
    if let Err(e) = pushed {
        unplug_quietly(app, vpc_id, tier_uuid).await;
        let mut tx = db.begin().await?;
        vpc::lock(&mut tx, vpc_id).await?;
        if let Some(v) = &vnet_text {
            vnet::release(&mut tx, pn.id, v).await?;
        }
        router::remove_nic(&mut tx, nic.id).await?;
        network::set_vnet(&mut tx, tier.id, None, None).await?;
        network::set_state(&mut tx, tier.id, network::STATE_ALLOCATED).await?;
        tx.commit().await?;
        return Err(e);
    }
    live_tier(db, tier_id).await
}

/// After a failed implement: the driver may have plugged the tier's NIC
/// before the agent refused; take it out again (best effort, the NIC row is
/// about to go).
async fn unplug_quietly(app: &App, vpc_id: i64, tier_uuid: Uuid) {
    let state = match super::state::load(&app.db, vpc_id).await {
        Ok(Some(state)) => state,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "loading the router state to unplug a failed tier");
            return;
        }
    };
    if let Some(view) = state.tiers.iter().find(|t| t.id == tier_uuid) {
        let nic = wire::tier_nic_view(view);
        if let Err(e) = app
            .network
            .element
            .driver()
            .unplug_nic(&state.router, &nic)
            .await
        {
            tracing::warn!(error = %e, tier = %tier_uuid, "unplugging the NIC of a tier that failed to implement");
        }
    }
}

/// How a tier leaves the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TakeDown {
    /// Network GC: the tier is idle.
    Shutdown,
    /// deleteNetwork.
    Destroy,
}

/// Takes an Implemented tier off the router: state Shutdown and a new
/// generation; the element's `shutdown`/`destroy` (DestroyGuestNetwork,
/// UnplugNic); then the router's NIC is removed and the guru gives the vnet
/// back (state Allocated). When the element fails the tier is Implemented
/// again and nothing else changed.
async fn take_down(app: &App, tier_id: i64, how: TakeDown) -> Result<network::Network, Error> {
    let db = &app.db;
    let tier = live_tier(db, tier_id).await?;
    let vpc_id = tier
        .vpc_id
        .ok_or_else(|| Error::internal("only VPC tiers are shut down here"))?;
    if tier.state != network::STATE_IMPLEMENTED {
        return Ok(tier);
    }
    let (pn, isolation) = physical_of(db, &tier).await?;
    let guru = guru_of(app, &tier, isolation)?;

    let mut tx = db.begin().await?;
    vpc::lock(&mut tx, vpc_id).await?;
    let tier = live_tier(&mut tx, tier_id).await?;
    if tier.state != network::STATE_IMPLEMENTED {
        tx.commit().await?;
        return Ok(tier);
    }
    network::set_state(&mut tx, tier.id, network::STATE_SHUTDOWN).await?;
    // The tier's view (its NIC) stays in the state loaded for the push.
    let generation = bump(&mut tx, vpc_id).await?;
    tx.commit().await?;

    let tier_uuid = uuid_of(&tier.uuid)?;
    let pushed = push(db, &app.network, vpc_id, generation, |element, state, g| {
        Box::pin(async move {
            let view = tier_view(state, tier_uuid)?;
            match how {
                TakeDown::Shutdown => element.shutdown(&state.router, g, view).await,
                TakeDown::Destroy => element.destroy(&state.router, g, view).await,
            }
        })
    })
    .await;
    if let Err(e) = pushed {
        network::set_state(db, tier.id, network::STATE_IMPLEMENTED).await?;
        return Err(e);
    }

    let mut tx = db.begin().await?;
    vpc::lock(&mut tx, vpc_id).await?;
    if let Some(nic) = router_nic(&mut tx, tier.id).await? {
        router::remove_nic(&mut tx, nic.id).await?;
    }
    let implemented = tier_network(&tier, guru, isolation, Some(&pn))?;
    {
        let mut vnets = TxVnets {
            tx: &mut tx,
            physical: &pn,
            network_id: tier.id,
        };
        guru.shutdown(&implemented, &mut vnets)
            .await
            .map_err(guru_error)?;
    }
    // Whatever else the tier holds goes back too (nothing, unless a vnet
    // row was left behind by an interrupted earlier attempt).
    vnet::release_for_network(&mut tx, tier.id).await?;
    network::set_vnet(&mut tx, tier.id, None, None).await?;
    network::set_state(&mut tx, tier.id, network::STATE_ALLOCATED).await?;
    tx.commit().await?;
    live_tier(db, tier_id).await
}

/// Shuts an idle tier down (network GC): it leaves the router and gives its
/// vnet back; it is Allocated again and the next VM implements it anew.
pub async fn shutdown_tier(app: &App, tier_id: i64) -> Result<network::Network, Error> {
    take_down(app, tier_id, TakeDown::Shutdown).await
}

/// Takes a tier that is being deleted off the router (see [`shutdown_tier`]).
pub async fn destroy_tier(app: &App, tier_id: i64) -> Result<network::Network, Error> {
    take_down(app, tier_id, TakeDown::Destroy).await
}

/// The guru's last word on a tier being deleted (its `trash`): nothing is
/// left to give back once the tier is off the router, but a guru may refuse.
pub async fn trash_tier(app: &App, tier: &network::Network) -> Result<(), Error> {
    let (pn, isolation) = physical_of(&app.db, tier).await?;
    let guru = guru_of(app, tier, isolation)?;
    let designed = tier_network(tier, guru, isolation, Some(&pn))?.network;
    guru.trash(&designed).map_err(guru_error)?;
    Ok(())
}

/// Re-sends an Implemented tier to the router (restartNetwork without
/// cleanup): PlugNic, SetupGuestNetwork and its ACL again, then its DHCP
/// list, under a new generation.
pub async fn resend_tier(app: &App, tier_id: i64) -> Result<(), Error> {
    let db = &app.db;
    let tier = live_tier(db, tier_id).await?;
    let vpc_id = tier
        .vpc_id
        .ok_or_else(|| Error::internal("only VPC tiers are restarted here"))?;
    let mut tx = db.begin().await?;
    vpc::lock(&mut tx, vpc_id).await?;
    let generation = bump(&mut tx, vpc_id).await?;
    tx.commit().await?;
    let tier_uuid = uuid_of(&tier.uuid)?;
    push(db, &app.network, vpc_id, generation, |element, state, g| {
        Box::pin(async move {
            let (view, acl) = tier_with_acl(state, tier_uuid)?;
            element.implement(&state.router, g, view, acl).await?;
            element
                .prepare(&state.router, g, view, state.dhcp_of(tier_uuid))
                .await
        })
    })
    .await
}

/// Pushes the tiers' whole DHCP lists after VMs joined them (`joined`) or
/// left them: the element's `prepare` or `release` per tier, all under the
/// generation the caller bumped with the change.
pub async fn push_dhcp(
    app: &App,
    vpc_id: i64,
    generation: Option<super::Generation>,
    tier_uuids: Vec<Uuid>,
    joined: bool,
) -> Result<(), Error> {
    push(
        &app.db,
        &app.network,
        vpc_id,
        generation,
        |element, state, g| {
            Box::pin(async move {
                for id in tier_uuids {
                    let view = tier_view(state, id)?;
                    let entries = state.dhcp_of(id);
                    if joined {
                        element.prepare(&state.router, g, view, entries).await?;
                    } else {
                        element.release(&state.router, g, view, entries).await?;
                    }
                }
                Ok(())
            })
        },
    )
    .await
}

/// The addresses of one tier, inside the caller's transaction: the lowest
/// address no live NIC on the tier holds (or the one asked for, when free).
struct TxAddresses<'t> {
    tx: &'t mut Tx,
    network_id: i64,
}

impl AddressAllocator for TxAddresses<'_> {
    fn allocate_ip(
        &mut self,
        _network_id: Uuid,
        cidr: Ipv4Net,
        requested: Option<Ipv4Addr>,
        excluded: Vec<Ipv4Addr>,
    ) -> BoxFuture<'_, Result<Ipv4Addr, GuruError>> {
        Box::pin(async move {
            let nics = router::list_nics(
                &mut *self.tx,
                &router::NicFilter {
                    network_id: Some(self.network_id),
                    ..Default::default()
                },
                Page::ALL,
            )
            .await
            .map_err(|e| GuruError::Allocator(e.to_string()))?
            .items;
            let used: Vec<Ipv4Addr> = nics
                .iter()
                .filter_map(|n| n.ip4_address.as_deref())
                .filter_map(|ip| ip.parse().ok())
                .chain(excluded)
                .collect();
            pick_address(cidr, requested, &used)
        })
    }

    fn release_ip(
        &mut self,
        _network_id: Uuid,
        ip: Ipv4Addr,
    ) -> BoxFuture<'_, Result<(), GuruError>> {
        // A VPC VM keeps its address while it is stopped (CloudStack keeps
        // the NIC's IP for the VM): release only marks the NIC unused; the
        // address is freed when the VM is expunged.
        Box::pin(async move {
            let nics = router::list_nics(
                &mut *self.tx,
                &router::NicFilter {
                    network_id: Some(self.network_id),
                    ip4_address: Some(ip.to_string()),
                    ..Default::default()
                },
                Page::ALL,
            )
            .await
            .map_err(|e| GuruError::Allocator(e.to_string()))?
            .items;
            for n in nics.iter().filter(|n| n.vm_id.is_some()) {
                router::set_nic_state(&mut *self.tx, n.id, vm::NIC_ALLOCATED)
                    .await
                    .map_err(|e| GuruError::Allocator(e.to_string()))?;
            }
            Ok(())
        })
    }

    fn allocate_mac(&mut self, _network_id: Uuid) -> BoxFuture<'_, Result<String, GuruError>> {
        // The store draws the MAC when it creates the NIC (unique among live
        // NICs); this one only fills the reservation.
        Box::pin(async move { Ok(router::random_mac()) })
    }
}

/// `requested` when it is a free host address of `cidr`, else the lowest
/// free host address; never one of `used`, the network or the broadcast
/// address.
pub fn pick_address(
    cidr: Ipv4Net,
    requested: Option<Ipv4Addr>,
    used: &[Ipv4Addr],
) -> Result<Ipv4Addr, GuruError> {
    let usable = |ip: &Ipv4Addr| {
        cidr.contains(ip) && *ip != cidr.network() && *ip != cidr.broadcast() && !used.contains(ip)
    };
    match requested {
        Some(ip) if usable(&ip) => Ok(ip),
        Some(ip) => Err(GuruError::Invalid(format!(
            "the requested address {ip} is not available in {cidr}"
        ))),
        None => cidr
            .hosts()
            .find(usable)
            .ok_or(GuruError::NoFreeAddress(cidr)),
    }
}

/// Reserves a VM NIC on a tier (inside the caller's transaction, which has
/// locked the VPC row): the guru picks `requested` when it is free, else the
/// tier's lowest free address, never the gateway; the NIC row is created
/// with the VM as holder, in state Allocated.
pub async fn reserve_nic(
    app: &App,
    tx: &mut Tx,
    tier: &network::Network,
    vm_row: &vm::Vm,
    device_index: i64,
    requested: Option<Ipv4Addr>,
) -> Result<router::Nic, Error> {
    let (pn, isolation) = physical_of(&mut *tx, tier).await?;
    let guru = guru_of(app, tier, isolation)?;
    let network = tier_network(tier, guru, isolation, Some(&pn))?;
    let reserved: ReservedNic = {
        let mut addresses = TxAddresses {
            tx: &mut *tx,
            network_id: tier.id,
        };
        guru.reserve(
            &network,
            &NicRequest {
                network_id: network.network.id,
                owner_id: uuid_of(&vm_row.uuid)?,
                requested_ip: requested,
                requested_mac: None,
            },
            &mut addresses,
        )
        .await
        .map_err(|e| match e {
            GuruError::Invalid(text) => Error::insufficient(
                crate::error::Capacity::GuestNetwork,
                format!(
                    "Unable to acquire Guest IP address for network {}: {text}",
                    tier.uuid
                ),
            ),
            other => guru_error(other),
        })?
    };
    let nic = router::create_nic(
        &mut *tx,
        router::NewNic {
            owner: router::NicOwner::Vm(vm_row.id),
            network_id: tier.id,
            device_index: Some(device_index),
            ip4_address: Some(reserved.ip.to_string()),
            netmask: tier.netmask.clone(),
            gateway: tier.gateway.clone(),
            role: router::ROLE_GUEST.into(),
        },
    )
    .await?;
    Ok(nic)
}

/// Releases a VM NIC (the VM stops): the guru's `release`; the address stays
/// the VM's (see [`TxAddresses`]).
pub async fn release_nic(
    app: &App,
    tx: &mut Tx,
    tier: &network::Network,
    nic: &router::Nic,
) -> Result<(), Error> {
    let (pn, isolation) = physical_of(&mut *tx, tier).await?;
    let guru = guru_of(app, tier, isolation)?;
    let network = tier_network(tier, guru, isolation, Some(&pn))?;
    let Some(ip) = nic.ip4_address.as_deref().and_then(|ip| ip.parse().ok()) else {
        return Ok(());
    };
    let reserved = ReservedNic {
        network_id: network.network.id,
        owner_id: Uuid::nil(),
        ip,
        prefix: network.network.cidr.prefix_len(),
        gateway: network.network.gateway,
        mac: nic.mac_address.clone(),
        broadcast_uri: network.broadcast_uri.clone(),
    };
    let mut addresses = TxAddresses {
        tx: &mut *tx,
        network_id: tier.id,
    };
    guru.release(&reserved, &mut addresses)
        .await
        .map_err(guru_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn the_lowest_free_host_address_is_picked() {
        let cidr = net("10.1.1.0/29");
        let gateway = ip("10.1.1.1");
        assert_eq!(
            pick_address(cidr, None, &[gateway]).unwrap(),
            ip("10.1.1.2")
        );
        let used = [gateway, ip("10.1.1.2"), ip("10.1.1.4")];
        assert_eq!(pick_address(cidr, None, &used).unwrap(), ip("10.1.1.3"));
        let full: Vec<Ipv4Addr> = cidr.hosts().collect();
        assert_eq!(
            pick_address(cidr, None, &full).unwrap_err(),
            GuruError::NoFreeAddress(cidr)
        );
    }

    #[test]
    fn a_requested_address_must_be_a_free_host_of_the_cidr() {
        let cidr = net("10.1.1.0/24");
        let used = [ip("10.1.1.1"), ip("10.1.1.7")];
        assert_eq!(
            pick_address(cidr, Some(ip("10.1.1.50")), &used).unwrap(),
            ip("10.1.1.50")
        );
        for bad in ["10.1.1.7", "10.1.1.1", "10.1.1.0", "10.1.1.255", "10.1.2.5"] {
            assert!(
                matches!(
                    pick_address(cidr, Some(ip(bad)), &used),
                    Err(GuruError::Invalid(_))
                ),
                "{bad}"
            );
        }
    }
}
