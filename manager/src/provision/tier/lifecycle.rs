//! A tier on the router: implement (its first VM, restartNetwork), re-send,
//! shut down (network GC), destroy (deleteNetwork) and trash. Each router
//! change is a [`RouterChange`] applied under the VPC's lock: the rows and
//! the generation in one transaction, the element's push, and on failure
//! the rows put back.

use uuid::Uuid;

use crate::error::Error;
use crate::orchestration::guru::{BoxFuture, GuruError, VnetAllocator};
use crate::orchestration::model::RouterState;
use crate::orchestration::{ElementResult, IsolationMethod, NetworkElement, RouterDriver, wire};
use crate::provision::change::{RouterChange, VpcLock};
use crate::provision::{Network, RouterElement, state, vpc_router};
use crate::store::{self, Db, Page, Tx, network, router, vnet, vpc, zone};

use super::{
    guru_error, guru_of, live_tier, physical_of, tier_network, tier_view, tier_with_acl, uuid_of,
};

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

/// Implements an Allocated tier (its first VM, restartNetwork): a vnet from
/// the physical network's range, the broadcast URI, the router's NIC on the
/// tier holding the gateway, state Implemented and a new generation in one
/// transaction; then the element puts the tier on the router. When that
/// fails every row is put back (vnet released, NIC removed, Allocated).
/// A tier that is Implemented already is left as it is. Returns the tier.
pub async fn implement_tier(lock: &VpcLock<'_>, tier_id: i64) -> Result<network::Network, Error> {
    let db = lock.db();
    let tier = tier_of_lock(lock, tier_id).await?;
    let (physical, isolation) = physical_of(db, &tier).await?;
    // Refused before anything is written when no guru takes the tier.
    guru_of(lock.network(), &tier, isolation)?;
    lock.apply(&Implement {
        network: lock.network(),
        vpc_id: lock.vpc_id(),
        tier_id,
        tier_uuid: uuid_of(&tier.uuid)?,
        physical,
        isolation,
    })
    .await?;
    live_tier(db, tier_id).await
}

/// The change of [`implement_tier`].
struct Implement<'n> {
    network: &'n Network,
    vpc_id: i64,
    tier_id: i64,
    tier_uuid: Uuid,
    physical: zone::PhysicalNetwork,
    isolation: IsolationMethod,
}

/// What [`Implement`] wrote.
enum Implemented {
    /// The tier was no longer Allocated (another change implemented it).
    Already,
    /// The router's new NIC and the vnet the guru took.
    Now { nic_id: i64, vnet: Option<String> },
}

impl RouterChange for Implement<'_> {
    type Written = Implemented;

    fn what(&self) -> &'static str {
        "an implemented tier"
    }

    async fn write(&self, tx: &mut Tx) -> Result<Implemented, Error> {
        vpc::lock(&mut *tx, self.vpc_id).await?;
        let tier = live_tier(&mut *tx, self.tier_id).await?;
        if tier.state != network::STATE_ALLOCATED {
            return Ok(Implemented::Already);
        }
        let r = vpc_router(&mut *tx, self.vpc_id).await?.ok_or_else(|| {
            Error::internal(format!(
                "Unable to implement network {}: its VPC has no router",
                tier.uuid
            ))
        })?;
        let guru = guru_of(self.network, &tier, self.isolation)?;
        let designed = tier_network(&tier, guru, self.isolation, Some(&self.physical))?.network;
        let implemented = {
            let mut vnets = TxVnets {
                tx: &mut *tx,
                physical: &self.physical,
                network_id: tier.id,
            };
            guru.implement(&designed, &mut vnets)
                .await
                .map_err(guru_error)?
        };
        let vnet_text = implemented.acquired_vnet.map(|v| v.to_string());
        network::set_vnet(
            &mut *tx,
            tier.id,
            vnet_text.as_deref(),
            implemented.broadcast_uri.as_deref(),
        )
        .await?;
        let nic = router::create_nic(
            &mut *tx,
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
        network::set_state(&mut *tx, tier.id, network::STATE_IMPLEMENTED).await?;
        Ok(Implemented::Now {
            nic_id: nic.id,
            vnet: vnet_text,
        })
    }

    fn reaches_router(&self, written: &Implemented) -> bool {
        matches!(written, Implemented::Now { .. })
    }

    async fn push(
        &self,
        element: &RouterElement,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult {
        let (view, acl) = tier_with_acl(state, self.tier_uuid)?;
        element
            .implement(&state.router, generation, view, acl)
            .await
    }

    async fn undo(&self, db: &Db, written: &Implemented) -> Result<(), Error> {
        let Implemented::Now { nic_id, vnet } = written else {
            return Ok(());
        };
        unplug_quietly(db, self.network, self.vpc_id, self.tier_uuid).await;
        let mut tx = db.begin().await?;
        vpc::lock(&mut tx, self.vpc_id).await?;
        if let Some(v) = vnet {
            vnet::release(&mut tx, self.physical.id, v).await?;
        }
        router::remove_nic(&mut tx, *nic_id).await?;
        network::set_vnet(&mut tx, self.tier_id, None, None).await?;
        network::set_state(&mut tx, self.tier_id, network::STATE_ALLOCATED).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// After a failed implement: the driver may have plugged the tier's NIC
/// before the agent refused; take it out again (best effort, the NIC row is
/// about to go).
async fn unplug_quietly(db: &Db, network: &Network, vpc_id: i64, tier_uuid: Uuid) {
    let state = match state::load(db, vpc_id).await {
        Ok(Some(state)) => state,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "loading the router state to unplug a failed tier");
            return;
        }
    };
    if let Some(view) = state.tiers.iter().find(|t| t.id == tier_uuid) {
        let nic = wire::tier_nic_view(view);
        if let Err(e) = network
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
enum How {
    /// Network GC: the tier is idle.
    Shutdown,
    /// deleteNetwork.
    Destroy,
}

/// The first step of [`take_down`]: state Shutdown and the element's
/// `shutdown`/`destroy` (DestroyGuestNetwork, UnplugNic).
struct TakeDown {
    vpc_id: i64,
    tier_id: i64,
    tier_uuid: Uuid,
    how: How,
}

/// What [`TakeDown`] wrote: the tier as it was read under the lock, and
/// whether it was still Implemented (and is now Shutdown).
struct Taken {
    tier: network::Network,
    down: bool,
}

impl RouterChange for TakeDown {
    type Written = Taken;

    fn what(&self) -> &'static str {
        "a tier taken off the router"
    }

    async fn write(&self, tx: &mut Tx) -> Result<Taken, Error> {
        vpc::lock(&mut *tx, self.vpc_id).await?;
        let tier = live_tier(&mut *tx, self.tier_id).await?;
        if tier.state != network::STATE_IMPLEMENTED {
            return Ok(Taken { tier, down: false });
        }
        // The tier's view (its NIC) stays in the state loaded for the push.
        network::set_state(&mut *tx, tier.id, network::STATE_SHUTDOWN).await?;
        Ok(Taken { tier, down: true })
    }

    fn reaches_router(&self, written: &Taken) -> bool {
        written.down
    }

    async fn push(
        &self,
        element: &RouterElement,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult {
        let view = tier_view(state, self.tier_uuid)?;
        match self.how {
            How::Shutdown => element.shutdown(&state.router, generation, view).await,
            How::Destroy => element.destroy(&state.router, generation, view).await,
        }
    }

    async fn undo(&self, db: &Db, written: &Taken) -> Result<(), Error> {
        if written.down {
            network::set_state(db, self.tier_id, network::STATE_IMPLEMENTED).await?;
        }
        Ok(())
    }
}

/// Takes an Implemented tier off the router: state Shutdown and a new
/// generation; the element's `shutdown`/`destroy` (DestroyGuestNetwork,
/// UnplugNic); then the router's NIC is removed and the guru gives the vnet
/// back (state Allocated). When the element fails the tier is Implemented
/// again and nothing else changed.
async fn take_down(lock: &VpcLock<'_>, tier_id: i64, how: How) -> Result<network::Network, Error> {
    let db = lock.db();
    let tier = tier_of_lock(lock, tier_id).await?;
    if tier.state != network::STATE_IMPLEMENTED {
        return Ok(tier);
    }
    let (pn, isolation) = physical_of(db, &tier).await?;
    let guru = guru_of(lock.network(), &tier, isolation)?;
    let taken = lock
        .apply(&TakeDown {
            vpc_id: lock.vpc_id(),
            tier_id,
            tier_uuid: uuid_of(&tier.uuid)?,
            how,
        })
        .await?;
    if !taken.down {
        return Ok(taken.tier);
    }
    let tier = taken.tier;

    let mut tx = db.begin().await?;
    vpc::lock(&mut tx, lock.vpc_id()).await?;
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
pub async fn shutdown_tier(lock: &VpcLock<'_>, tier_id: i64) -> Result<network::Network, Error> {
    take_down(lock, tier_id, How::Shutdown).await
}

/// Takes a tier that is being deleted off the router (see [`shutdown_tier`]).
pub async fn destroy_tier(lock: &VpcLock<'_>, tier_id: i64) -> Result<network::Network, Error> {
    take_down(lock, tier_id, How::Destroy).await
}

/// The guru's last word on a tier being deleted (its `trash`): nothing is
/// left to give back once the tier is off the router, but a guru may refuse.
pub async fn trash_tier(db: &Db, network: &Network, tier: &network::Network) -> Result<(), Error> {
    let (pn, isolation) = physical_of(db, tier).await?;
    let guru = guru_of(network, tier, isolation)?;
    let designed = tier_network(tier, guru, isolation, Some(&pn))?.network;
    guru.trash(&designed).map_err(guru_error)?;
    Ok(())
}

/// Re-sends an Implemented tier to the router (restartNetwork without
/// cleanup): PlugNic, SetupGuestNetwork and its ACL again, then its DHCP
/// list, under a new generation.
pub async fn resend_tier(lock: &VpcLock<'_>, tier_id: i64) -> Result<(), Error> {
    let tier = tier_of_lock(lock, tier_id).await?;
    lock.apply(&Resend {
        vpc_id: lock.vpc_id(),
        tier_uuid: uuid_of(&tier.uuid)?,
    })
    .await
}

/// The change of [`resend_tier`]: no row changes, only the generation.
struct Resend {
    vpc_id: i64,
    tier_uuid: Uuid,
}

impl RouterChange for Resend {
    type Written = ();

    fn what(&self) -> &'static str {
        "a re-sent tier"
    }

    async fn write(&self, tx: &mut Tx) -> Result<(), Error> {
        // The VPC row's lock orders this generation with other managers'.
        vpc::lock(&mut *tx, self.vpc_id).await?;
        Ok(())
    }

    async fn push(
        &self,
        element: &RouterElement,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult {
        let (view, acl) = tier_with_acl(state, self.tier_uuid)?;
        element
            .implement(&state.router, generation, view, acl)
            .await?;
        element
            .prepare(
                &state.router,
                generation,
                view,
                state.dhcp_of(self.tier_uuid),
            )
            .await
    }

    async fn undo(&self, _db: &Db, _written: &()) -> Result<(), Error> {
        Ok(())
    }
}

/// Sends the tiers' whole DHCP lists after VMs joined them (`joined`) or
/// left them: the element's `prepare` or `release` per tier, all under one
/// generation (the push of a VM's start or stop).
pub async fn send_dhcp(
    element: &RouterElement,
    state: &RouterState,
    generation: u64,
    tiers: &[Uuid],
    joined: bool,
) -> ElementResult {
    for id in tiers {
        let view = tier_view(state, *id)?;
        let entries = state.dhcp_of(*id);
        if joined {
            element
                .prepare(&state.router, generation, view, entries)
                .await?;
        } else {
            element
                .release(&state.router, generation, view, entries)
                .await?;
        }
    }
    Ok(())
}
