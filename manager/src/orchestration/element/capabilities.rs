//! The element traits, after CloudStack's `NetworkElement` and its service
//! capabilities (`SourceNatServiceProvider`, `StaticNatServiceProvider`, …,
//! `VpcProvider`): what an element must do for each service it provides.
//! They are object-safe, their async methods returning
//! [`BoxFuture`](crate::future::BoxFuture), like every seam of the manager.

use uuid::Uuid;

use super::ElementResult;
use crate::future::BoxFuture;
use crate::orchestration::agent::AgentEndpoint;
use crate::orchestration::model::{
    AclListView, DhcpEntryView, LbRuleView, PortForwardView, PrivateGatewayView, PublicIpView,
    RouterState, RouterView, StaticNatView, StaticRouteView, TierView,
};

/// The lifecycle of a network (tier) on an element.
pub trait NetworkElement: Send + Sync {
    fn name(&self) -> &'static str;
    /// Makes the tier work: the router's NIC, the tier itself and its ACL.
    fn implement<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        tier: &'a TierView,
        acl: Option<&'a AclListView>,
    ) -> BoxFuture<'a, ElementResult>;
    /// A VM NIC joins the tier; `entries` is the tier's full lease list
    /// including it.
    fn prepare<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        tier: &'a TierView,
        entries: &'a [DhcpEntryView],
    ) -> BoxFuture<'a, ElementResult>;
    /// A VM NIC leaves the tier; `entries` is the tier's full lease list
    /// without it.
    fn release<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        tier: &'a TierView,
        entries: &'a [DhcpEntryView],
    ) -> BoxFuture<'a, ElementResult>;
    /// The tier is idle (network GC): remove it from the router.
    fn shutdown<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        tier: &'a TierView,
    ) -> BoxFuture<'a, ElementResult>;
    /// The tier is deleted.
    fn destroy<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        tier: &'a TierView,
    ) -> BoxFuture<'a, ElementResult>;
}

/// Source NAT for the VPC.
pub trait SourceNat: Send + Sync {
    /// Pushes the VPC's whole source NAT list.
    fn apply_source_nat<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        public_ips: &'a [PublicIpView],
        gateways: &'a [PrivateGatewayView],
    ) -> BoxFuture<'a, ElementResult>;
}

/// Static NAT.
pub trait StaticNat: Send + Sync {
    /// Pushes the VPC's whole static NAT list (live mappings only).
    fn apply_static_nats<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        rules: &'a [StaticNatView],
    ) -> BoxFuture<'a, ElementResult>;
}

/// Port forwarding.
pub trait PortForwarding: Send + Sync {
    /// Pushes the VPC's whole port forwarding list (live rules only).
    fn apply_port_forwards<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        rules: &'a [PortForwardView],
    ) -> BoxFuture<'a, ElementResult>;
}

/// Load balancing.
pub trait Lb: Send + Sync {
    /// Refuses a rule the element cannot serve (before anything is stored).
    fn validate_lb_rule(&self, rule: &LbRuleView) -> ElementResult;
    /// Pushes the VPC's whole LB list (live rules only).
    fn apply_lb_rules<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        rules: &'a [LbRuleView],
    ) -> BoxFuture<'a, ElementResult>;
}

/// Network ACLs.
pub trait NetworkAcl: Send + Sync {
    /// Pushes the list's full, sorted item list to every tier and private
    /// gateway among `tiers`/`gateways` that uses it.
    fn apply_network_acl<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        list: &'a AclListView,
        tiers: &'a [TierView],
        gateways: &'a [PrivateGatewayView],
    ) -> BoxFuture<'a, ElementResult>;
    /// Sends a few items of the list as an edit of what the router holds
    /// at generation `base`, to every tier and private gateway using it:
    /// `touched` holds the items the change wrote, the live ones (added or
    /// changed) and the others (taken out). Refused with
    /// [`AgentError::NotAtBase`](crate::orchestration::AgentError::NotAtBase)
    /// when the router is not at `base`; the caller then sends the whole list.
    fn edit_network_acl<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        base: u64,
        touched: &'a AclListView,
        tiers: &'a [TierView],
        gateways: &'a [PrivateGatewayView],
    ) -> BoxFuture<'a, ElementResult>;
    /// Replaces the list of one tier (None removes the tier's ACL).
    fn replace_tier_acl<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        tier: &'a TierView,
        list: Option<&'a AclListView>,
    ) -> BoxFuture<'a, ElementResult>;
    /// Replaces the list of one private gateway (None removes its ACL).
    fn replace_gateway_acl<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        gateway: &'a PrivateGatewayView,
        list: Option<&'a AclListView>,
    ) -> BoxFuture<'a, ElementResult>;
}

/// DHCP for a tier.
pub trait Dhcp: Send + Sync {
    /// Pushes the tier's whole lease list.
    fn apply_dhcp_entries<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        tier: &'a TierView,
        entries: &'a [DhcpEntryView],
    ) -> BoxFuture<'a, ElementResult>;
}

/// DNS for a tier: the router answers `<hostname>.<domain>` for its leases.
pub trait Dns: Send + Sync {
    /// Pushes the tier's whole host list.
    fn apply_dns_entries<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        tier: &'a TierView,
        entries: &'a [DhcpEntryView],
    ) -> BoxFuture<'a, ElementResult>;
}

/// VM user data and metadata.
pub trait UserData: Send + Sync {
    fn save_user_data<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        vm_id: Uuid,
        user_data: &'a str,
    ) -> BoxFuture<'a, ElementResult>;
}

/// The public side of the VPC: IP association.
pub trait Gateway: Send + Sync {
    /// Associates (add) or disassociates the given IPs.
    fn apply_ips<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        ips: &'a [PublicIpView],
    ) -> BoxFuture<'a, ElementResult>;
}

/// The VPC itself.
pub trait VpcProvider: Send + Sync {
    /// Starts the VPC's router and pushes its whole configuration.
    fn implement_vpc<'a>(
        &'a self,
        state: &'a RouterState,
        generation: u64,
    ) -> BoxFuture<'a, ElementResult<AgentEndpoint>>;
    /// Stops the VPC's router.
    fn shutdown_vpc<'a>(&'a self, router: &'a RouterView) -> BoxFuture<'a, ElementResult>;
    /// Puts a private gateway (already in `state`) on the router.
    fn create_private_gateway<'a>(
        &'a self,
        state: &'a RouterState,
        generation: u64,
        gateway_id: Uuid,
    ) -> BoxFuture<'a, ElementResult>;
    /// Removes a private gateway; `state` is the state without it.
    fn delete_private_gateway<'a>(
        &'a self,
        state: &'a RouterState,
        generation: u64,
        gateway: &'a PrivateGatewayView,
    ) -> BoxFuture<'a, ElementResult>;
    /// Pushes the VPC's whole list of live static routes.
    fn apply_static_routes<'a>(
        &'a self,
        router: &'a RouterView,
        generation: u64,
        routes: &'a [StaticRouteView],
    ) -> BoxFuture<'a, ElementResult>;
}
