//! A tier leaves the router: shut down when idle (network GC) or
//! destroyed when deleted (the element's `shutdown`/`destroy` through the
//! change protocol, then the router's NIC and the vnet go back), and the
//! guru's `trash` of a deleted tier.

use uuid::Uuid;

use crate::error::Error;
use crate::orchestration::model::RouterState;
use crate::orchestration::{ElementResult, NetworkElement};
use crate::provision::change::{RouterChange, VpcLock};
use crate::provision::{Network, RouterElement};
use crate::store::{self, Db, Page, Tx, network, router, vnet, vpc};

use super::vnets::TxVnets;
use super::{guru_error, guru_of, live_tier, physical_of, tier_network, tier_of_lock, tier_view};

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
            tier_uuid: tier.uuid,
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
