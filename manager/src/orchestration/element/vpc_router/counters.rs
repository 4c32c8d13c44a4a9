//! The ACL items' hit counters as the router's kernel holds them (GetState
//! with `acl_counters_only`): a listing shows them beside each item.

use vpc_proto::v1 as pb;

use super::VpcVirtualRouterElement;
use crate::orchestration::agent::{AgentCommand, AgentReply};
use crate::orchestration::element::{ElementError, ElementResult};
use crate::orchestration::model::RouterView;

impl VpcVirtualRouterElement {
    /// The counts of every ACL item that decided a packet on the router,
    /// per NIC, direction and item number, with the id of the NIC's list.
    pub async fn acl_counters(
        &self,
        router: &RouterView,
    ) -> ElementResult<Vec<pb::AclItemCounters>> {
        let rpc = "GetState";
        let reply = self
            .agent()
            .send(
                router,
                AgentCommand::GetState(pb::GetStateRequest {
                    acl_counters_only: true,
                    ..Default::default()
                }),
            )
            .await
            .map_err(|source| ElementError::Agent {
                router: router.name.clone(),
                rpc,
                source,
            })?;
        match reply {
            AgentReply::State(s) => Ok(s.acl_counters),
            AgentReply::Applied(_) => Err(ElementError::UnexpectedReply {
                router: router.name.clone(),
                rpc,
            }),
        }
    }
}
