//! The VPC virtual router element: the one element for VPC services. Its
//! router lifecycle (start, resync, reboot, health check) is here; the
//! services it provides, one trait each, are in [`services`].

mod counters;
mod services;
mod vm_data;
mod vpn;

use vpc_proto::v1 as pb;

use crate::orchestration::agent::{
    AgentCommand, AgentEndpoint, AgentReply, SharedAgent, SharedDriver,
};
use crate::orchestration::element::{ElementError, ElementResult};
use crate::orchestration::model::{DhcpEntryView, NicRole, RouterState, RouterView, TierView};
use crate::orchestration::wire;

/// The VPC virtual router: the one element for VPC services.
pub struct VpcVirtualRouterElement {
    agent: SharedAgent,
    driver: SharedDriver,
}

/// The element's configuration name.
pub const VPC_VIRTUAL_ROUTER: &str = "VpcVirtualRouter";

impl std::fmt::Debug for VpcVirtualRouterElement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The agent client and driver are trait objects: name what runs
        // the routers instead.
        f.debug_struct("VpcVirtualRouterElement")
            .field("hypervisor", &self.driver.hypervisor())
            .finish_non_exhaustive()
    }
}

impl VpcVirtualRouterElement {
    /// The element over the agent client and router driver the manager
    /// picked at start.
    pub fn new(agent: SharedAgent, driver: SharedDriver) -> Self {
        VpcVirtualRouterElement { agent, driver }
    }

    /// The agent client the element sends commands with.
    pub fn agent(&self) -> &SharedAgent {
        &self.agent
    }

    /// The driver the element starts routers and plugs NICs with.
    pub fn driver(&self) -> &SharedDriver {
        &self.driver
    }

    /// Sends one mutating command and returns the agent's answer.
    async fn send(
        &self,
        router: &RouterView,
        command: AgentCommand,
    ) -> ElementResult<pb::ApplyResponse> {
        let rpc = command.rpc();
        tracing::debug!(router = %router.name, rpc, generation = ?command.generation(), "agent command");
        match self.agent.send(router, command).await {
            Ok(AgentReply::Applied(reply)) => Ok(reply),
            Ok(AgentReply::State(_)) => Err(ElementError::UnexpectedReply {
                router: router.name.clone(),
                rpc,
            }),
            Err(source) => Err(ElementError::Agent {
                router: router.name.clone(),
                rpc,
                source,
            }),
        }
    }

    /// Sends one mutating command; of the agent's answer only success
    /// matters.
    async fn apply(&self, router: &RouterView, command: AgentCommand) -> ElementResult {
        self.send(router, command).await.map(drop)
    }

    async fn set_acl(
        &self,
        router: &RouterView,
        generation: u64,
        acl: pb::NetworkAcl,
    ) -> ElementResult {
        self.apply(
            router,
            AgentCommand::SetNetworkAcl(pb::SetNetworkAclRequest {
                generation,
                acl: Some(acl),
            }),
        )
        .await
    }

    async fn set_dhcp(
        &self,
        router: &RouterView,
        generation: u64,
        tier: &TierView,
        entries: &[DhcpEntryView],
    ) -> ElementResult {
        self.apply(
            router,
            AgentCommand::SetDhcpEntries(pb::SetDhcpEntriesRequest {
                generation,
                dhcp: Some(wire::tier_dhcp(tier, entries)),
            }),
        )
        .await
    }

    async fn remove_tier(
        &self,
        router: &RouterView,
        generation: u64,
        tier: &TierView,
    ) -> ElementResult {
        self.apply(
            router,
            AgentCommand::DestroyGuestNetwork(pb::DestroyGuestNetworkRequest {
                generation,
                device_index: tier.device_index,
            }),
        )
        .await?;
        self.apply(
            router,
            AgentCommand::UnplugNic(pb::UnplugNicRequest {
                generation,
                device_index: tier.device_index,
                mac_address: tier.mac.clone(),
            }),
        )
        .await?;
        self.driver
            .unplug_nic(router, &wire::tier_nic_view(tier))
            .await?;
        Ok(())
    }

    /// Replaces the router's whole configuration with one ApplyConfig built
    /// from `state` (router start, reboot, restartVPC without cleanup, and a
    /// router that fell behind).
    pub async fn resync(&self, state: &RouterState, generation: u64) -> ElementResult {
        let config = wire::router_config(state)?;
        self.apply(
            &state.router,
            AgentCommand::ApplyConfig(pb::ApplyConfigRequest {
                generation,
                config: Some(config),
            }),
        )
        .await
    }

    /// Starts the router and pushes its whole configuration.
    pub async fn start_router(
        &self,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult<AgentEndpoint> {
        // Build first so nothing starts with a configuration we would refuse.
        wire::router_config(state)?;
        let endpoint = self.driver.start_router(&state.router).await?;
        self.resync(state, generation).await?;
        Ok(endpoint)
    }

    /// Resyncs the router when its agent reports a generation lower than the
    /// one in the database (`state.router.generation`). Returns whether it
    /// resynced.
    pub async fn resync_if_behind(
        &self,
        state: &RouterState,
        reported: u64,
    ) -> ElementResult<bool> {
        if reported >= state.router.generation {
            return Ok(false);
        }
        tracing::info!(
            router = %state.router.name,
            reported,
            expected = state.router.generation,
            "router fell behind; resyncing"
        );
        self.resync(state, state.router.generation).await?;
        Ok(true)
    }

    /// Asks the agent for its applied generation and resyncs when it is
    /// behind. Returns whether it resynced.
    pub async fn check_router(&self, state: &RouterState) -> ElementResult<bool> {
        let reported = self.agent_generation(&state.router).await?;
        self.resync_if_behind(state, reported).await
    }

    /// The generation the router's agent has applied (GetState). Only the
    /// router's name is needed to reach it, so a health check can compare
    /// generations before (and instead of) loading the whole state.
    pub async fn agent_generation(&self, router: &RouterView) -> ElementResult<u64> {
        // A summary: the generation without the whole state or an `nft
        // list` on the router, at every health check.
        let state = self
            .get_state(
                router,
                pb::GetStateRequest {
                    summary: true,
                    ..Default::default()
                },
            )
            .await?;
        Ok(state.generation)
    }

    /// GetState with `request` on the router's agent.
    pub(super) async fn get_state(
        &self,
        router: &RouterView,
        request: pb::GetStateRequest,
    ) -> ElementResult<pb::GetStateResponse> {
        let rpc = "GetState";
        let reply = self
            .agent
            .send(router, AgentCommand::GetState(request))
            .await
            .map_err(|source| ElementError::Agent {
                router: router.name.clone(),
                rpc,
                source,
            })?;
        match reply {
            AgentReply::State(s) => Ok(*s),
            AgentReply::Applied(_) => Err(ElementError::UnexpectedReply {
                router: router.name.clone(),
                rpc,
            }),
        }
    }

    /// Reboots the router: stop, start, then its whole configuration.
    pub async fn reboot_router(
        &self,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult<AgentEndpoint> {
        wire::router_config(state)?;
        self.driver.stop_router(&state.router).await?;
        self.start_router(state, generation).await
    }

    /// restartVPC without cleanup: the running router gets its whole
    /// configuration again, in one ApplyConfig.
    pub async fn restart_vpc(&self, state: &RouterState, generation: u64) -> ElementResult {
        self.resync(state, generation).await
    }

    /// updateVPC `publicmtu`: the router's public NIC again (PlugNic of the
    /// NIC already plugged replaces it in the agent's state, which sets the
    /// link's MTU). Nothing when the router has no public NIC yet: it gets
    /// the MTU with the NIC.
    pub async fn apply_public_nic(&self, state: &RouterState, generation: u64) -> ElementResult {
        let Some(public) = state.router.nics.iter().find(|n| n.role == NicRole::Public) else {
            return Ok(());
        };
        self.apply(
            &state.router,
            AgentCommand::PlugNic(pb::PlugNicRequest {
                generation,
                nic: Some(wire::nic(public)),
            }),
        )
        .await
    }

    /// Stops the router.
    pub async fn stop_router(&self, router: &RouterView) -> ElementResult {
        Ok(self.driver.stop_router(router).await?)
    }

    /// Destroys the router.
    pub async fn destroy_router(&self, router: &RouterView) -> ElementResult {
        Ok(self.driver.destroy_router(router).await?)
    }
}
