//! The `vpc.agent.v1.VirtualRouter` gRPC service.

use tonic::{Request, Response, Status};
use vpc_proto::v1::virtual_router_server::VirtualRouter;
use vpc_proto::v1::*;

/// The router service.
#[derive(Debug, Default)]
pub struct RouterService {}

impl RouterService {
    pub fn new() -> Self {
        Self::default()
    }
}

fn not_yet(rpc: &str) -> Status {
    Status::unimplemented(format!("{rpc} is not implemented by this agent yet"))
}

#[tonic::async_trait]
impl VirtualRouter for RouterService {
    async fn plug_nic(
        &self,
        _: Request<PlugNicRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        Err(not_yet("PlugNic"))
    }
    async fn unplug_nic(
        &self,
        _: Request<UnplugNicRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        Err(not_yet("UnplugNic"))
    }
    async fn setup_guest_network(
        &self,
        _: Request<SetupGuestNetworkRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        Err(not_yet("SetupGuestNetwork"))
    }
    async fn destroy_guest_network(
        &self,
        _: Request<DestroyGuestNetworkRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        Err(not_yet("DestroyGuestNetwork"))
    }
    async fn ip_assoc(
        &self,
        _: Request<IpAssocRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        Err(not_yet("IpAssoc"))
    }
    async fn set_source_nat(
        &self,
        _: Request<SetSourceNatRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        Err(not_yet("SetSourceNat"))
    }
    async fn set_static_routes(
        &self,
        _: Request<SetStaticRoutesRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        Err(not_yet("SetStaticRoutes"))
    }
    async fn set_network_acl(
        &self,
        _: Request<SetNetworkAclRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        Err(not_yet("SetNetworkAcl"))
    }
    async fn set_port_forwarding_rules(
        &self,
        _: Request<SetPortForwardingRulesRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        Err(not_yet("SetPortForwardingRules"))
    }
    async fn set_static_nat_rules(
        &self,
        _: Request<SetStaticNatRulesRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        Err(not_yet("SetStaticNatRules"))
    }
    async fn set_load_balancer_rules(
        &self,
        _: Request<SetLoadBalancerRulesRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        Err(not_yet("SetLoadBalancerRules"))
    }
    async fn set_dhcp_entries(
        &self,
        _: Request<SetDhcpEntriesRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        Err(not_yet("SetDhcpEntries"))
    }
    async fn apply_config(
        &self,
        _: Request<ApplyConfigRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        Err(not_yet("ApplyConfig"))
    }
    async fn get_state(
        &self,
        _: Request<GetStateRequest>,
    ) -> Result<Response<GetStateResponse>, Status> {
        Err(not_yet("GetState"))
    }
}
