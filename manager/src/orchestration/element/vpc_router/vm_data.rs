//! The element's UserData service: what a tier's VMs read from the router
//! (user data, metadata, public keys), sent as the tier's whole list with
//! the generation, like its DHCP list.

use vpc_proto::v1 as pb;

use super::VpcVirtualRouterElement;
use crate::orchestration::agent::AgentCommand;
use crate::orchestration::element::ElementResult;
use crate::orchestration::model::{RouterState, TierView};
use crate::orchestration::wire;

impl VpcVirtualRouterElement {
    /// Replaces the VM data of `tier` on the router with what `state` holds.
    pub async fn set_vm_data(
        &self,
        state: &RouterState,
        generation: u64,
        tier: &TierView,
    ) -> ElementResult {
        let data = wire::tier_vm_data(tier, state.vm_data_of(tier.id), wire::source_nat_ip(state));
        self.apply(
            &state.router,
            AgentCommand::SetVmData(pb::SetVmDataRequest {
                generation,
                vm_data: Some(data),
            }),
        )
        .await
    }
}
