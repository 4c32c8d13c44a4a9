//! The element's site-to-site VPN service (CloudStack's
//! `Site2SiteVpnServiceProvider`): the VPC's whole VPN (gateway address and
//! connections) sent with the generation, like the static routes.

use vpc_proto::v1 as pb;

use super::VpcVirtualRouterElement;
use crate::orchestration::agent::AgentCommand;
use crate::orchestration::element::ElementResult;
use crate::orchestration::model::RouterState;
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
}
