//! The ACL items' hit counters as the router's kernel holds them (GetState
//! with `acl_counters_only`): a listing shows them beside each item.

use vpc_proto::v1 as pb;

use super::VpcVirtualRouterElement;
use crate::orchestration::element::ElementResult;
use crate::orchestration::model::RouterView;

impl VpcVirtualRouterElement {
    /// The counts of every ACL item that decided a packet on the router,
    /// per NIC, direction and item number, with the id of the NIC's list.
    pub async fn acl_counters(
        &self,
        router: &RouterView,
    ) -> ElementResult<Vec<pb::AclItemCounters>> {
        let state = self
            .get_state(
                router,
                pb::GetStateRequest {
                    acl_counters_only: true,
                    ..Default::default()
                },
            )
            .await?;
        Ok(state.acl_counters)
    }
}
