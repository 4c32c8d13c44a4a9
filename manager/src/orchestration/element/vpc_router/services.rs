//! The services the VPC virtual router provides, one capability trait each:
//! every change becomes agent commands carrying the caller's generation, and
//! everything is built and checked before the first command is sent.
//!
//! Kept whole because it holds one short impl per capability trait of the element, as CloudStack's
//! VpcVirtualRouterElement does.

use uuid::Uuid;
use vpc_proto::v1 as pb;

use super::{VPC_VIRTUAL_ROUTER, VpcVirtualRouterElement};
use crate::future::BoxFuture;
use crate::orchestration::agent::{AgentCommand, AgentEndpoint};
use crate::orchestration::element::{
    Dhcp, Dns, ElementError, ElementResult, Gateway, Lb, NetworkAcl, NetworkElement,
    PortForwarding, SourceNat, StaticNat, UserData, VpcProvider,
};
use crate::orchestration::model::{
    AclListView, DhcpEntryView, LbRuleView, PortForwardView, PrivateGatewayView, PublicIpView,
    RouterState, RouterView, StaticNatView, StaticRouteView, TierView,
};
use crate::orchestration::wire;

impl NetworkElement for VpcVirtualRouterElement {
    fn name(&self) -> &'static str {
        VPC_VIRTUAL_ROUTER
    }

    fn implement<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        tier: &'a TierView,
        acl: Option<&'a AclListView>,
    ) -> BoxFuture<'a, ElementResult> {
        Box::pin(async move {
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
        })
    }

    fn prepare<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        tier: &'a TierView,
        entries: &'a [DhcpEntryView],
    ) -> BoxFuture<'a, ElementResult> {
        Box::pin(self.set_dhcp(router, generation, tier, entries))
    }

    fn release<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        tier: &'a TierView,
        entries: &'a [DhcpEntryView],
    ) -> BoxFuture<'a, ElementResult> {
        Box::pin(self.set_dhcp(router, generation, tier, entries))
    }

    fn shutdown<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        tier: &'a TierView,
    ) -> BoxFuture<'a, ElementResult> {
        Box::pin(self.remove_tier(router, generation, tier))
    }

    fn destroy<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        tier: &'a TierView,
    ) -> BoxFuture<'a, ElementResult> {
        Box::pin(self.remove_tier(router, generation, tier))
    }
}

impl SourceNat for VpcVirtualRouterElement {
    fn apply_source_nat<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        public_ips: &'a [PublicIpView],
        gateways: &'a [PrivateGatewayView],
    ) -> BoxFuture<'a, ElementResult> {
        Box::pin(async move {
            self.apply(
                router,
                AgentCommand::SetSourceNat(pb::SetSourceNatRequest {
                    generation,
                    rules: wire::source_nat_rules(public_ips, gateways),
                }),
            )
            .await
        })
    }
}

impl StaticNat for VpcVirtualRouterElement {
    fn apply_static_nats<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        rules: &'a [StaticNatView],
    ) -> BoxFuture<'a, ElementResult> {
        Box::pin(async move {
            self.apply(
                router,
                AgentCommand::SetStaticNatRules(pb::SetStaticNatRulesRequest {
                    generation,
                    rules: wire::static_nats(rules),
                }),
            )
            .await
        })
    }
}

impl PortForwarding for VpcVirtualRouterElement {
    fn apply_port_forwards<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        rules: &'a [PortForwardView],
    ) -> BoxFuture<'a, ElementResult> {
        Box::pin(async move {
            let rules = wire::port_forwards(rules)?;
            self.apply(
                router,
                AgentCommand::SetPortForwardingRules(pb::SetPortForwardingRulesRequest {
                    generation,
                    rules,
                }),
            )
            .await
        })
    }
}

impl Lb for VpcVirtualRouterElement {
    fn validate_lb_rule(&self, rule: &LbRuleView) -> ElementResult {
        wire::check_lb_rule(rule)
    }

    fn apply_lb_rules<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        rules: &'a [LbRuleView],
    ) -> BoxFuture<'a, ElementResult> {
        Box::pin(async move {
            let rules = wire::lb_rules(rules)?;
            self.apply(
                router,
                AgentCommand::SetLoadBalancerRules(pb::SetLoadBalancerRulesRequest {
                    generation,
                    rules,
                }),
            )
            .await
        })
    }
}

/// The ACL of every tier and private gateway NIC among `tiers`/`gateways`
/// that uses `list`, with the list's items.
fn nic_acls(
    list: &AclListView,
    tiers: &[TierView],
    gateways: &[PrivateGatewayView],
) -> Result<Vec<pb::NetworkAcl>, ElementError> {
    let mut acls = Vec::new();
    for tier in tiers.iter().filter(|t| t.acl_id == Some(list.id)) {
        acls.push(wire::tier_acl(tier, Some(list))?);
    }
    for gateway in gateways.iter().filter(|g| g.acl_id == Some(list.id)) {
        acls.push(wire::gateway_acl(gateway, Some(list))?);
    }
    Ok(acls)
}

impl NetworkAcl for VpcVirtualRouterElement {
    fn apply_network_acl<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        list: &'a AclListView,
        tiers: &'a [TierView],
        gateways: &'a [PrivateGatewayView],
    ) -> BoxFuture<'a, ElementResult> {
        Box::pin(async move {
            for acl in nic_acls(list, tiers, gateways)? {
                self.set_acl(router, generation, acl).await?;
            }
            Ok(())
        })
    }

    fn edit_network_acl<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        base: u64,
        touched: &'a AclListView,
        tiers: &'a [TierView],
        gateways: &'a [PrivateGatewayView],
    ) -> BoxFuture<'a, ElementResult> {
        Box::pin(async move {
            let removed: Vec<String> = touched
                .items
                .iter()
                .filter(|i| !i.state.is_live())
                .map(|i| i.id.to_string())
                .collect();
            for acl in nic_acls(touched, tiers, gateways)? {
                self.apply(
                    router,
                    AgentCommand::EditNetworkAcl(pb::EditNetworkAclRequest {
                        generation,
                        base_generation: base,
                        acl: Some(acl),
                        removed: removed.clone(),
                    }),
                )
                .await?;
            }
            Ok(())
        })
    }

    fn replace_tier_acl<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        tier: &'a TierView,
        list: Option<&'a AclListView>,
    ) -> BoxFuture<'a, ElementResult> {
        Box::pin(async move {
            let acl = wire::tier_acl(tier, list)?;
            self.set_acl(router, generation, acl).await
        })
    }

    fn replace_gateway_acl<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        gateway: &'a PrivateGatewayView,
        list: Option<&'a AclListView>,
    ) -> BoxFuture<'a, ElementResult> {
        Box::pin(async move {
            let acl = wire::gateway_acl(gateway, list)?;
            self.set_acl(router, generation, acl).await
        })
    }
}

impl Dhcp for VpcVirtualRouterElement {
    fn apply_dhcp_entries<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        tier: &'a TierView,
        entries: &'a [DhcpEntryView],
    ) -> BoxFuture<'a, ElementResult> {
        Box::pin(self.set_dhcp(router, generation, tier, entries))
    }
}

impl Dns for VpcVirtualRouterElement {
    /// The agent's DNS answers for every DHCP lease, so the host list is the
    /// lease list.
    fn apply_dns_entries<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        tier: &'a TierView,
        entries: &'a [DhcpEntryView],
    ) -> BoxFuture<'a, ElementResult> {
        Box::pin(self.set_dhcp(router, generation, tier, entries))
    }
}

impl UserData for VpcVirtualRouterElement {
    /// Agent protocol v1 has no user-data RPC: refused without sending.
    fn save_user_data<'a>(
        &'a self,
        router: &'a RouterView,
        _generation: u64,
        vm_id: Uuid,
        _user_data: &'a str,
    ) -> BoxFuture<'a, ElementResult> {
        Box::pin(async move {
            Err(ElementError::Unsupported(format!(
                "router {} cannot serve user data for VM {vm_id}: agent protocol v1 has no user-data \
                 command",
                router.name
            )))
        })
    }
}

impl Gateway for VpcVirtualRouterElement {
    fn apply_ips<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        ips: &'a [PublicIpView],
    ) -> BoxFuture<'a, ElementResult> {
        Box::pin(async move {
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
        })
    }
}

impl VpcProvider for VpcVirtualRouterElement {
    fn implement_vpc<'a>(
        &'a self,
        state: &'a RouterState,
        generation: u64,
    ) -> BoxFuture<'a, ElementResult<AgentEndpoint>> {
        Box::pin(self.start_router(state, generation))
    }

    fn shutdown_vpc<'a>(&'a self, router: &'a RouterView) -> BoxFuture<'a, ElementResult> {
        Box::pin(self.stop_router(router))
    }

    fn create_private_gateway<'a>(
        &'a self,
        state: &'a RouterState,
        generation: u64,
        gateway_id: Uuid,
    ) -> BoxFuture<'a, ElementResult> {
        Box::pin(async move {
            let router = &state.router;
            let gateway = state
                .private_gateways
                .iter()
                .find(|g| g.id == gateway_id)
                .ok_or_else(|| {
                    ElementError::Invalid(format!(
                        "private gateway {gateway_id} is not in the state"
                    ))
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
        })
    }

    fn delete_private_gateway<'a>(
        &'a self,
        state: &'a RouterState,
        generation: u64,
        gateway: &'a PrivateGatewayView,
    ) -> BoxFuture<'a, ElementResult> {
        Box::pin(async move {
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
        })
    }

    fn apply_static_routes<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        routes: &'a [StaticRouteView],
    ) -> BoxFuture<'a, ElementResult> {
        Box::pin(async move {
            self.apply(
                router,
                AgentCommand::SetStaticRoutes(pb::SetStaticRoutesRequest {
                    generation,
                    routes: wire::static_routes(routes),
                }),
            )
            .await
        })
    }
}
