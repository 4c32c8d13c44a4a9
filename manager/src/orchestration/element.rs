//! Network elements: what provides a network's services. The VPC virtual
//! router element turns each change into agent commands; every command carries
//! the generation the caller gives it (the caller bumps the router's generation
//! in the database transaction of the change; the element never invents one).

use std::future::Future;

use uuid::Uuid;
use vpc_proto::v1 as pb;

use super::agent::{
    AgentClient, AgentCommand, AgentEndpoint, AgentError, AgentReply, DriverError, RouterDriver,
};
use super::model::{
    AclListView, DhcpEntryView, LbRuleView, NicRole, PortForwardView, PrivateGatewayView,
    PublicIpView, RouterState, RouterView, StaticNatView, StaticRouteView, TierView,
};
use super::wire;

/// Why an element operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElementError {
    #[error("{rpc} on router {router} failed: {source}")]
    Agent {
        router: String,
        rpc: &'static str,
        #[source]
        source: AgentError,
    },
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// Refused before anything was sent: the element cannot do this.
    #[error("{0}")]
    Unsupported(String),
    /// Refused before anything was sent: the input is inconsistent.
    #[error("{0}")]
    Invalid(String),
    #[error("the agent of router {router} gave an unexpected answer to {rpc}")]
    UnexpectedReply { router: String, rpc: &'static str },
}

/// Result of element operations.
pub type ElementResult<T = ()> = Result<T, ElementError>;

/// The lifecycle of a network (tier) on an element.
pub trait NetworkElement: Send + Sync {
    fn name(&self) -> &'static str;
    /// Makes the tier work: the router's NIC, the tier itself and its ACL.
    fn implement(
        &self,
        router: &RouterView,
        generation: u64,
        tier: &TierView,
        acl: Option<&AclListView>,
    ) -> impl Future<Output = ElementResult> + Send;
    /// A VM NIC joins the tier; `entries` is the tier's full lease list
    /// including it.
    fn prepare(
        &self,
        router: &RouterView,
        generation: u64,
        tier: &TierView,
        entries: &[DhcpEntryView],
    ) -> impl Future<Output = ElementResult> + Send;
    /// A VM NIC leaves the tier; `entries` is the tier's full lease list
    /// without it.
    fn release(
        &self,
        router: &RouterView,
        generation: u64,
        tier: &TierView,
        entries: &[DhcpEntryView],
    ) -> impl Future<Output = ElementResult> + Send;
    /// The tier is idle (network GC): remove it from the router.
    fn shutdown(
        &self,
        router: &RouterView,
        generation: u64,
        tier: &TierView,
    ) -> impl Future<Output = ElementResult> + Send;
    /// The tier is deleted.
    fn destroy(
        &self,
        router: &RouterView,
        generation: u64,
        tier: &TierView,
    ) -> impl Future<Output = ElementResult> + Send;
}

/// Source NAT for the VPC.
pub trait SourceNat: Send + Sync {
    /// Pushes the VPC's whole source NAT list.
    fn apply_source_nat(
        &self,
        router: &RouterView,
        generation: u64,
        public_ips: &[PublicIpView],
        gateways: &[PrivateGatewayView],
    ) -> impl Future<Output = ElementResult> + Send;
}

/// Static NAT.
pub trait StaticNat: Send + Sync {
    /// Pushes the VPC's whole static NAT list (live mappings only).
    fn apply_static_nats(
        &self,
        router: &RouterView,
        generation: u64,
        rules: &[StaticNatView],
    ) -> impl Future<Output = ElementResult> + Send;
}

/// Port forwarding.
pub trait PortForwarding: Send + Sync {
    /// Pushes the VPC's whole port forwarding list (live rules only).
    fn apply_port_forwards(
        &self,
        router: &RouterView,
        generation: u64,
        rules: &[PortForwardView],
    ) -> impl Future<Output = ElementResult> + Send;
}

/// Load balancing.
pub trait Lb: Send + Sync {
    /// Refuses a rule the element cannot serve (before anything is stored).
    fn validate_lb_rule(&self, rule: &LbRuleView) -> ElementResult;
    /// Pushes the VPC's whole LB list (live rules only).
    fn apply_lb_rules(
        &self,
        router: &RouterView,
        generation: u64,
        rules: &[LbRuleView],
    ) -> impl Future<Output = ElementResult> + Send;
}

/// Network ACLs.
pub trait NetworkAcl: Send + Sync {
    /// Pushes the list's full, sorted item list to every tier and private
    /// gateway among `tiers`/`gateways` that uses it.
    fn apply_network_acl(
        &self,
        router: &RouterView,
        generation: u64,
        list: &AclListView,
        tiers: &[TierView],
        gateways: &[PrivateGatewayView],
    ) -> impl Future<Output = ElementResult> + Send;
    /// Replaces the list of one tier (None removes the tier's ACL).
    fn replace_tier_acl(
        &self,
        router: &RouterView,
        generation: u64,
        tier: &TierView,
        list: Option<&AclListView>,
    ) -> impl Future<Output = ElementResult> + Send;
    /// Replaces the list of one private gateway (None removes its ACL).
    fn replace_gateway_acl(
        &self,
        router: &RouterView,
        generation: u64,
        gateway: &PrivateGatewayView,
        list: Option<&AclListView>,
    ) -> impl Future<Output = ElementResult> + Send;
}

/// DHCP for a tier.
pub trait Dhcp: Send + Sync {
    /// Pushes the tier's whole lease list.
    fn apply_dhcp_entries(
        &self,
        router: &RouterView,
        generation: u64,
        tier: &TierView,
        entries: &[DhcpEntryView],
    ) -> impl Future<Output = ElementResult> + Send;
}

/// DNS for a tier: the router answers `<hostname>.<domain>` for its leases.
pub trait Dns: Send + Sync {
    /// Pushes the tier's whole host list.
    fn apply_dns_entries(
        &self,
        router: &RouterView,
        generation: u64,
        tier: &TierView,
        entries: &[DhcpEntryView],
    ) -> impl Future<Output = ElementResult> + Send;
}

/// VM user data and metadata.
pub trait UserData: Send + Sync {
    fn save_user_data(
        &self,
        router: &RouterView,
        generation: u64,
        vm_id: Uuid,
        user_data: &str,
    ) -> impl Future<Output = ElementResult> + Send;
}

/// The public side of the VPC: IP association.
pub trait Gateway: Send + Sync {
    /// Associates (add) or disassociates the given IPs.
    fn apply_ips(
        &self,
        router: &RouterView,
        generation: u64,
        ips: &[PublicIpView],
    ) -> impl Future<Output = ElementResult> + Send;
}

/// The VPC itself.
pub trait VpcProvider: Send + Sync {
    /// Starts the VPC's router and pushes its whole configuration.
    fn implement_vpc(
        &self,
        state: &RouterState,
        generation: u64,
    ) -> impl Future<Output = ElementResult<AgentEndpoint>> + Send;
    /// Stops the VPC's router.
    fn shutdown_vpc(&self, router: &RouterView) -> impl Future<Output = ElementResult> + Send;
    /// Puts a private gateway (already in `state`) on the router.
    fn create_private_gateway(
        &self,
        state: &RouterState,
        generation: u64,
        gateway_id: Uuid,
    ) -> impl Future<Output = ElementResult> + Send;
    /// Removes a private gateway; `state` is the state without it.
    fn delete_private_gateway(
        &self,
        state: &RouterState,
        generation: u64,
        gateway: &PrivateGatewayView,
    ) -> impl Future<Output = ElementResult> + Send;
    /// Pushes the VPC's whole list of live static routes.
    fn apply_static_routes(
        &self,
        router: &RouterView,
        generation: u64,
        routes: &[StaticRouteView],
    ) -> impl Future<Output = ElementResult> + Send;
}

/// The VPC virtual router: the one element for VPC services.
#[derive(Debug)]
pub struct VpcVirtualRouterElement<A, D> {
    agent: A,
    driver: D,
}

/// The element's configuration name.
pub const VPC_VIRTUAL_ROUTER: &str = "VpcVirtualRouter";

impl<A: AgentClient, D: RouterDriver> VpcVirtualRouterElement<A, D> {
    pub fn new(agent: A, driver: D) -> Self {
        VpcVirtualRouterElement { agent, driver }
    }

    pub fn agent(&self) -> &A {
        &self.agent
    }

    pub fn driver(&self) -> &D {
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
        let rpc = "GetState";
        let reply = self
            .agent
            .send(router, AgentCommand::GetState(pb::GetStateRequest {}))
            .await
            .map_err(|source| ElementError::Agent {
                router: router.name.clone(),
                rpc,
                source,
            })?;
        match reply {
            AgentReply::State(s) => Ok(s.generation),
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

impl<A: AgentClient, D: RouterDriver> NetworkElement for VpcVirtualRouterElement<A, D> {
    fn name(&self) -> &'static str {
        VPC_VIRTUAL_ROUTER
    }

    async fn implement(
        &self,
        router: &RouterView,
        generation: u64,
        tier: &TierView,
        acl: Option<&AclListView>,
    ) -> ElementResult {
        if acl.map(|l| l.id) != tier.acl_id {
            return Err(ElementError::Invalid(format!(
                "tier {} uses ACL list {:?}, but list {:?} was given",
                tier.name,
                tier.acl_id,
                acl.map(|l| l.id)
            )));
        }
        // Everything is built before the first side effect.
        let acl = acl.map(|l| wire::tier_acl(tier, Some(l))).transpose()?;
        let nic_view = wire::tier_nic_view(tier);
        self.driver.plug_nic(router, &nic_view).await?;
        self.apply(
            router,
            AgentCommand::PlugNic(pb::PlugNicRequest {
                generation,
                nic: Some(wire::nic(&nic_view)),
            }),
        )
        .await?;
        self.apply(
            router,
            AgentCommand::SetupGuestNetwork(pb::SetupGuestNetworkRequest {
                generation,
                network: Some(wire::guest_network(tier)),
            }),
        )
        .await?;
        if let Some(acl) = acl {
            self.set_acl(router, generation, acl).await?;
        }
        Ok(())
    }

    async fn prepare(
        &self,
        router: &RouterView,
        generation: u64,
        tier: &TierView,
        entries: &[DhcpEntryView],
    ) -> ElementResult {
        self.set_dhcp(router, generation, tier, entries).await
    }

    async fn release(
        &self,
        router: &RouterView,
        generation: u64,
        tier: &TierView,
        entries: &[DhcpEntryView],
    ) -> ElementResult {
        self.set_dhcp(router, generation, tier, entries).await
    }

    async fn shutdown(
        &self,
        router: &RouterView,
        generation: u64,
        tier: &TierView,
    ) -> ElementResult {
        self.remove_tier(router, generation, tier).await
    }

    async fn destroy(
        &self,
        router: &RouterView,
        generation: u64,
        tier: &TierView,
    ) -> ElementResult {
        self.remove_tier(router, generation, tier).await
    }
}

impl<A: AgentClient, D: RouterDriver> SourceNat for VpcVirtualRouterElement<A, D> {
    async fn apply_source_nat(
        &self,
        router: &RouterView,
        generation: u64,
        public_ips: &[PublicIpView],
        gateways: &[PrivateGatewayView],
    ) -> ElementResult {
        self.apply(
            router,
            AgentCommand::SetSourceNat(pb::SetSourceNatRequest {
                generation,
                rules: wire::source_nat_rules(public_ips, gateways),
            }),
        )
        .await
    }
}

impl<A: AgentClient, D: RouterDriver> StaticNat for VpcVirtualRouterElement<A, D> {
    async fn apply_static_nats(
        &self,
        router: &RouterView,
        generation: u64,
        rules: &[StaticNatView],
    ) -> ElementResult {
        self.apply(
            router,
            AgentCommand::SetStaticNatRules(pb::SetStaticNatRulesRequest {
                generation,
                rules: wire::static_nats(rules),
            }),
        )
        .await
    }
}

impl<A: AgentClient, D: RouterDriver> PortForwarding for VpcVirtualRouterElement<A, D> {
    async fn apply_port_forwards(
        &self,
        router: &RouterView,
        generation: u64,
        rules: &[PortForwardView],
    ) -> ElementResult {
        let rules = wire::port_forwards(rules)?;
        self.apply(
            router,
            AgentCommand::SetPortForwardingRules(pb::SetPortForwardingRulesRequest {
                generation,
                rules,
            }),
        )
        .await
    }
}

impl<A: AgentClient, D: RouterDriver> Lb for VpcVirtualRouterElement<A, D> {
    fn validate_lb_rule(&self, rule: &LbRuleView) -> ElementResult {
        wire::check_lb_rule(rule)
    }

    async fn apply_lb_rules(
        &self,
        router: &RouterView,
        generation: u64,
        rules: &[LbRuleView],
    ) -> ElementResult {
        let rules = wire::lb_rules(rules)?;
        self.apply(
            router,
            AgentCommand::SetLoadBalancerRules(pb::SetLoadBalancerRulesRequest {
                generation,
                rules,
            }),
        )
        .await
    }
}

impl<A: AgentClient, D: RouterDriver> NetworkAcl for VpcVirtualRouterElement<A, D> {
    async fn apply_network_acl(
        &self,
        router: &RouterView,
        generation: u64,
        list: &AclListView,
        tiers: &[TierView],
        gateways: &[PrivateGatewayView],
    ) -> ElementResult {
        let mut acls = Vec::new();
        for tier in tiers.iter().filter(|t| t.acl_id == Some(list.id)) {
            acls.push(wire::tier_acl(tier, Some(list))?);
        }
        for gateway in gateways.iter().filter(|g| g.acl_id == Some(list.id)) {
            acls.push(wire::gateway_acl(gateway, Some(list))?);
        }
        for acl in acls {
            self.set_acl(router, generation, acl).await?;
        }
        Ok(())
    }

    async fn replace_tier_acl(
        &self,
        router: &RouterView,
        generation: u64,
        tier: &TierView,
        list: Option<&AclListView>,
    ) -> ElementResult {
        let acl = wire::tier_acl(tier, list)?;
        self.set_acl(router, generation, acl).await
    }

    async fn replace_gateway_acl(
        &self,
        router: &RouterView,
        generation: u64,
        gateway: &PrivateGatewayView,
        list: Option<&AclListView>,
    ) -> ElementResult {
        let acl = wire::gateway_acl(gateway, list)?;
        self.set_acl(router, generation, acl).await
    }
}

impl<A: AgentClient, D: RouterDriver> Dhcp for VpcVirtualRouterElement<A, D> {
    async fn apply_dhcp_entries(
        &self,
        router: &RouterView,
        generation: u64,
        tier: &TierView,
        entries: &[DhcpEntryView],
    ) -> ElementResult {
        self.set_dhcp(router, generation, tier, entries).await
    }
}

impl<A: AgentClient, D: RouterDriver> Dns for VpcVirtualRouterElement<A, D> {
    /// The agent's DNS answers for every DHCP lease, so the host list is the
    /// lease list.
    async fn apply_dns_entries(
        &self,
        router: &RouterView,
        generation: u64,
        tier: &TierView,
        entries: &[DhcpEntryView],
    ) -> ElementResult {
        self.set_dhcp(router, generation, tier, entries).await
    }
}

impl<A: AgentClient, D: RouterDriver> UserData for VpcVirtualRouterElement<A, D> {
    /// Agent protocol v1 has no user-data RPC: refused without sending.
    async fn save_user_data(
        &self,
        router: &RouterView,
        _generation: u64,
        vm_id: Uuid,
        _user_data: &str,
    ) -> ElementResult {
        Err(ElementError::Unsupported(format!(
            "router {} cannot serve user data for VM {vm_id}: agent protocol v1 has no user-data \
             command",
            router.name
        )))
    }
}

impl<A: AgentClient, D: RouterDriver> Gateway for VpcVirtualRouterElement<A, D> {
    async fn apply_ips(
        &self,
        router: &RouterView,
        generation: u64,
        ips: &[PublicIpView],
    ) -> ElementResult {
        if ips.is_empty() {
            return Ok(());
        }
        self.apply(
            router,
            AgentCommand::IpAssoc(pb::IpAssocRequest {
                generation,
                ips: ips.iter().map(wire::public_ip).collect(),
            }),
        )
        .await
    }
}

impl<A: AgentClient, D: RouterDriver> VpcProvider for VpcVirtualRouterElement<A, D> {
    async fn implement_vpc(
        &self,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult<AgentEndpoint> {
        self.start_router(state, generation).await
    }

    async fn shutdown_vpc(&self, router: &RouterView) -> ElementResult {
        self.stop_router(router).await
    }

    async fn create_private_gateway(
        &self,
        state: &RouterState,
        generation: u64,
        gateway_id: Uuid,
    ) -> ElementResult {
        let router = &state.router;
        let gateway = state
            .private_gateways
            .iter()
            .find(|g| g.id == gateway_id)
            .ok_or_else(|| {
                ElementError::Invalid(format!("private gateway {gateway_id} is not in the state"))
            })?;
        let list = match gateway.acl_id {
            Some(id) => Some(state.acl_list(id).ok_or_else(|| {
                ElementError::Invalid(format!("ACL list {id} is not in the state"))
            })?),
            None => None,
        };
        let acl = list
            .map(|l| wire::gateway_acl(gateway, Some(l)))
            .transpose()?;
        let nic_view = wire::gateway_nic_view(gateway);
        self.driver.plug_nic(router, &nic_view).await?;
        self.apply(
            router,
            AgentCommand::PlugNic(pb::PlugNicRequest {
                generation,
                nic: Some(wire::nic(&nic_view)),
            }),
        )
        .await?;
        self.apply(
            router,
            AgentCommand::IpAssoc(pb::IpAssocRequest {
                generation,
                ips: vec![wire::gateway_ip(gateway, true)],
            }),
        )
        .await?;
        if gateway.source_nat_supported {
            self.apply_source_nat(
                router,
                generation,
                &state.public_ips,
                &state.private_gateways,
            )
            .await?;
        }
        if let Some(acl) = acl {
            self.set_acl(router, generation, acl).await?;
        }
        Ok(())
    }

    async fn delete_private_gateway(
        &self,
        state: &RouterState,
        generation: u64,
        gateway: &PrivateGatewayView,
    ) -> ElementResult {
        let router = &state.router;
        self.apply(
            router,
            AgentCommand::IpAssoc(pb::IpAssocRequest {
                generation,
                ips: vec![wire::gateway_ip(gateway, false)],
            }),
        )
        .await?;
        if gateway.source_nat_supported {
            let remaining: Vec<PrivateGatewayView> = state
                .private_gateways
                .iter()
                .filter(|g| g.id != gateway.id)
                .cloned()
                .collect();
            self.apply_source_nat(router, generation, &state.public_ips, &remaining)
                .await?;
        }
        self.apply(
            router,
            AgentCommand::UnplugNic(pb::UnplugNicRequest {
                generation,
                device_index: gateway.device_index,
                mac_address: gateway.mac.clone(),
            }),
        )
        .await?;
        self.driver
            .unplug_nic(router, &wire::gateway_nic_view(gateway))
            .await?;
        Ok(())
    }

    async fn apply_static_routes(
        &self,
        router: &RouterView,
        generation: u64,
        routes: &[StaticRouteView],
    ) -> ElementResult {
        self.apply(
            router,
            AgentCommand::SetStaticRoutes(pb::SetStaticRoutesRequest {
                generation,
                routes: wire::static_routes(routes),
            }),
        )
        .await
    }
}
