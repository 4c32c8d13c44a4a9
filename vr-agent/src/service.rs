//! The `vpc.agent.v1.VirtualRouter` gRPC service: each RPC becomes one
//! [`Change`] of the agent's desired state.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use vpc_proto::v1::virtual_router_server::VirtualRouter;
use vpc_proto::v1::*;

use crate::agent::{Agent, AgentError, Applied};
use crate::model::InvalidKind;
use crate::update::Change;

/// The router service, backed by the agent.
#[derive(Clone)]
pub struct RouterService {
    agent: Arc<Agent>,
}

impl RouterService {
    /// Serves `agent`.
    pub fn new(agent: Arc<Agent>) -> Self {
        Self { agent }
    }

    async fn change(
        &self,
        generation: u64,
        change: Change,
    ) -> Result<Response<ApplyResponse>, Status> {
        let Applied {
            generation,
            micros,
            unchanged,
            dhcp_failures,
        } = self
            .agent
            .change(generation, change)
            .await
            .map_err(status)?;
        Ok(Response::new(ApplyResponse {
            generation,
            apply_micros: micros,
            unchanged,
            dhcp_failures,
        }))
    }
}

/// Maps agent errors to gRPC codes; the message names the field at fault.
pub fn status(error: AgentError) -> Status {
    match error {
        AgentError::Invalid(invalid) => match invalid.kind {
            InvalidKind::Argument => Status::invalid_argument(invalid.to_string()),
            InvalidKind::NotFound => Status::not_found(invalid.to_string()),
        },
        e @ (AgentError::Stale { .. } | AgentError::NoState(_)) => {
            Status::failed_precondition(e.to_string())
        }
        e @ AgentError::LinkNotFound(_) => Status::not_found(e.to_string()),
        e @ AgentError::NotAtBase(_) => Status::aborted(e.to_string()),
        e @ (AgentError::State(_) | AgentError::Apply(_)) => Status::internal(e.to_string()),
    }
}

#[tonic::async_trait]
impl VirtualRouter for RouterService {
    async fn plug_nic(
        &self,
        r: Request<PlugNicRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        let r = r.into_inner();
        self.change(r.generation, Change::PlugNic(r.nic)).await
    }

    async fn unplug_nic(
        &self,
        r: Request<UnplugNicRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        let r = r.into_inner();
        self.change(
            r.generation,
            Change::UnplugNic {
                index: r.device_index,
                mac: r.mac_address,
            },
        )
        .await
    }

    async fn setup_guest_network(
        &self,
        r: Request<SetupGuestNetworkRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        let r = r.into_inner();
        self.change(r.generation, Change::SetupGuestNetwork(r.network))
            .await
    }

    async fn destroy_guest_network(
        &self,
        r: Request<DestroyGuestNetworkRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        let r = r.into_inner();
        self.change(
            r.generation,
            Change::DestroyGuestNetwork {
                index: r.device_index,
            },
        )
        .await
    }

    async fn ip_assoc(
        &self,
        r: Request<IpAssocRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        let r = r.into_inner();
        self.change(r.generation, Change::IpAssoc(r.ips)).await
    }

    async fn set_source_nat(
        &self,
        r: Request<SetSourceNatRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        let r = r.into_inner();
        self.change(r.generation, Change::SetSourceNat(r.rules))
            .await
    }

    async fn set_static_routes(
        &self,
        r: Request<SetStaticRoutesRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        let r = r.into_inner();
        self.change(r.generation, Change::SetStaticRoutes(r.routes))
            .await
    }

    async fn set_network_acl(
        &self,
        r: Request<SetNetworkAclRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        let r = r.into_inner();
        self.change(r.generation, Change::SetNetworkAcl(r.acl))
            .await
    }

    async fn edit_network_acl(
        &self,
        r: Request<EditNetworkAclRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        let r = r.into_inner();
        self.change(
            r.generation,
            Change::EditNetworkAcl {
                base: r.base_generation,
                acl: r.acl,
                removed: r.removed,
            },
        )
        .await
    }

    async fn set_port_forwarding_rules(
        &self,
        r: Request<SetPortForwardingRulesRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        let r = r.into_inner();
        self.change(r.generation, Change::SetPortForwarding(r.rules))
            .await
    }

    async fn set_static_nat_rules(
        &self,
        r: Request<SetStaticNatRulesRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        let r = r.into_inner();
        self.change(r.generation, Change::SetStaticNat(r.rules))
            .await
    }

    async fn set_load_balancer_rules(
        &self,
        r: Request<SetLoadBalancerRulesRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        let r = r.into_inner();
        self.change(r.generation, Change::SetLoadBalancers(r.rules))
            .await
    }

    async fn set_dhcp_entries(
        &self,
        r: Request<SetDhcpEntriesRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        let r = r.into_inner();
        self.change(r.generation, Change::SetDhcpEntries(r.dhcp))
            .await
    }

    async fn set_vm_data(
        &self,
        r: Request<SetVmDataRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        let r = r.into_inner();
        self.change(r.generation, Change::SetVmData(r.vm_data))
            .await
    }

    async fn set_vpn(&self, r: Request<SetVpnRequest>) -> Result<Response<ApplyResponse>, Status> {
        let r = r.into_inner();
        self.change(r.generation, Change::SetVpn(r.vpn)).await
    }

    async fn apply_config(
        &self,
        r: Request<ApplyConfigRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        let r = r.into_inner();
        self.change(r.generation, Change::ApplyConfig(r.config))
            .await
    }

    async fn get_state(
        &self,
        request: Request<GetStateRequest>,
    ) -> Result<Response<GetStateResponse>, Status> {
        let state = if request.get_ref().summary {
            self.agent.summary().await
        } else if request.get_ref().acl_counters_only {
            self.agent.counters_only().await
        } else {
            self.agent.state().await
        };
        Ok(Response::new(state))
    }
}
