//! The element's site-to-site VPN service (CloudStack's
//! `Site2SiteVpnServiceProvider`): the VPC's whole VPN (gateway address and
//! connections) sent with the generation, like the static routes.

use vpc_proto::v1 as pb;

use super::VpcVirtualRouterElement;
use crate::orchestration::agent::{AgentCommand, AgentReply};
use crate::orchestration::element::{ElementError, ElementResult};
use crate::orchestration::model::{RouterState, RouterView};
use crate::orchestration::wire;

impl VpcVirtualRouterElement {
    /// Replaces the router's VPN with what `state` holds (none: stopped).
    pub async fn set_vpn(&self, state: &RouterState, generation: u64) -> ElementResult {
        self.apply(
            &state.router,
            AgentCommand::SetVpn(pb::SetVpnRequest {
                generation,
                vpn: Some(
                    state
                        .vpn
                        .as_ref()
                        .map(|v| wire::vpn(&state.vpc, v))
                        .unwrap_or_default(),
                ),
            }),
        )
        .await
    }

    /// Each VPN connection's live state as the router's charon reports it
    /// (GetState).
    pub async fn vpn_status(
        &self,
        router: &RouterView,
    ) -> ElementResult<Vec<pb::VpnConnectionStatus>> {
        let rpc = "GetState";
        let reply = self
            .agent()
            .send(
                router,
                AgentCommand::GetState(pb::GetStateRequest::default()),
            )
            .await
            .map_err(|source| ElementError::Agent {
                router: router.name.clone(),
                rpc,
                source,
            })?;
        match reply {
            AgentReply::State(s) => Ok(s.vpn),
            AgentReply::Applied(_) => Err(ElementError::UnexpectedReply {
                router: router.name.clone(),
                rpc,
            }),
        }
    }
}
