//! A tier on the router: implement (its first VM, restartNetwork: a vnet,
//! the router's NIC, the element's `implement`), re-send (restartNetwork),
//! and the DHCP lists of a VM's start or stop. Each router change is a
//! [`RouterChange`] applied under the VPC's lock: the rows and the
//! generation in one transaction, the element's push, and on failure the
//! rows put back.

use uuid::Uuid;

use crate::error::Error;
use crate::orchestration::model::RouterState;
use crate::orchestration::{ElementResult, IsolationMethod, NetworkElement, RouterDriver, wire};
use crate::provision::change::{RouterChange, VpcLock};
use crate::provision::{Network, RouterElement, state, vpc_router};
use crate::store::{Db, Tx, network, router, vnet, vpc, zone};

use super::vnets::TxVnets;
use super::{
    guru_error, guru_of, live_tier, physical_of, tier_network, tier_of_lock, tier_view,
    tier_with_acl,
};

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
        tier_uuid: tier.uuid,
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
                ip4_address: tier.gateway,
                netmask: tier.netmask,
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

/// Re-sends an Implemented tier to the router (restartNetwork without
/// cleanup): PlugNic, SetupGuestNetwork and its ACL again, then its DHCP
/// list, under a new generation.
pub async fn resend_tier(lock: &VpcLock<'_>, tier_id: i64) -> Result<(), Error> {
    let tier = tier_of_lock(lock, tier_id).await?;
    lock.apply(&Resend {
        vpc_id: lock.vpc_id(),
        tier_uuid: tier.uuid,
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
        // What the tier's VMs read from the router follows the same VMs.
        element.set_vm_data(state, generation, view).await?;
    }
    Ok(())
}
