//! Vnets for a tier from its physical network's range, inside the
//! transaction that implements or shuts the tier down (the guru's
//! [`VnetAllocator`]).

use uuid::Uuid;

use crate::orchestration::guru::{BoxFuture, GuruError, VnetAllocator};
use crate::store::{self, Tx, vnet, zone};

/// Vnets of one physical network for one tier, inside the caller's
/// transaction. The range's rows are created on first need, so a range set
/// or widened on the physical network is picked up.
pub(super) struct TxVnets<'t> {
    pub(super) tx: &'t mut Tx,
    pub(super) physical: &'t zone::PhysicalNetwork,
    pub(super) network_id: i64,
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
