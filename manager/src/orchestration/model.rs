//! Plain views of the rows the orchestration layer works on. The service layer
//! loads rows from the store and fills these in; nothing here touches the
//! database.
//!
//! Kept whole because it is the one vocabulary of views that elements, gurus and the wire share:
//! plain types, no logic to split by.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use uuid::Uuid;

/// A VPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpcView {
    pub id: Uuid,
    pub name: String,
    /// The VPC's super CIDR.
    pub cidr: Ipv4Net,
    pub network_domain: String,
    pub zone_id: Uuid,
}

/// A tier (guest network of a VPC) as the router serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierView {
    pub id: Uuid,
    pub name: String,
    /// The tier CIDR (its prefix length is the tier netmask).
    pub cidr: Ipv4Net,
    /// The tier gateway, which is the router's own address on the tier.
    pub gateway: Ipv4Addr,
    pub domain: String,
    /// DNS servers handed to VMs after the router (CloudStack's dns1/dns2).
    pub dns_servers: Vec<String>,
    /// 0 = do not send an MTU by DHCP.
    pub mtu: u32,
    /// The tier's broadcast URI (`vlan://N`, `vxlan://N`), once implemented.
    pub broadcast_uri: Option<String>,
    /// The ACL list attached to the tier, if any.
    pub acl_id: Option<Uuid>,
    /// The device index of the router's NIC on this tier.
    pub device_index: u32,
    /// The MAC of the router's NIC on this tier.
    pub mac: String,
}

impl TierView {
    /// The prefix length of the tier netmask.
    pub fn prefix(&self) -> u8 {
        self.cidr.prefix_len()
    }
}

/// Converts a dotted netmask ("255.255.255.0") to a prefix length. Refuses
/// masks whose one bits are not contiguous.
pub fn netmask_to_prefix(netmask: &str) -> Option<u8> {
    let mask: Ipv4Addr = netmask.trim().parse().ok()?;
    let bits = u32::from(mask);
    let ones = bits.leading_ones();
    if bits.checked_shl(ones).unwrap_or(0) != 0 {
        return None;
    }
    u8::try_from(ones).ok()
}

/// What a router NIC connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NicRole {
    Guest,
    Public,
    Private,
    Control,
}

impl NicRole {
    /// The protocol value.
    pub fn to_proto(self) -> vpc_proto::v1::NicRole {
        use vpc_proto::v1::NicRole as P;
        match self {
            NicRole::Guest => P::Guest,
            NicRole::Public => P::Public,
            NicRole::Private => P::Private,
            NicRole::Control => P::Control,
        }
    }
}

/// One NIC of a router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterNicView {
    pub device_index: u32,
    pub mac: String,
    pub role: NicRole,
    pub network_id: Uuid,
    pub ip: Option<IpAddr>,
    pub prefix: u8,
    pub gateway: Option<IpAddr>,
    /// 0 leaves the link's MTU as it is.
    pub mtu: u32,
    /// Where the NIC is plugged: `vlan://N`, `vxlan://N`, `untagged` (the
    /// public network), or None (the control network).
    pub broadcast_uri: Option<String>,
}

/// A VPC virtual router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterView {
    pub id: Uuid,
    pub name: String,
    /// The zone the router runs in.
    pub zone_id: Uuid,
    /// The config generation the database holds for the router.
    pub generation: u64,
    pub nics: Vec<RouterNicView>,
    /// The URL of the host agent of the host it runs on; None: the
    /// manager's default host agent (or driver).
    pub host: Option<String>,
}

impl RouterView {
    /// The NIC with this device index.
    pub fn nic(&self, device_index: u32) -> Option<&RouterNicView> {
        self.nics.iter().find(|n| n.device_index == device_index)
    }
}

/// One NIC of a guest VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmNicView {
    pub device_index: u32,
    pub mac: String,
    /// The tier's id.
    pub network_id: Uuid,
    /// The tier's broadcast URI (`vlan://N`, `vxlan://N`): the bridge the
    /// NIC is plugged into.
    pub broadcast_uri: Option<String>,
    /// The address reserved for the NIC (the VM takes it by DHCP).
    pub ip: Option<Ipv4Addr>,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    /// Whether the VM's default route goes through this NIC.
    pub default: bool,
}

/// A guest VM as the driver runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmView {
    pub id: Uuid,
    /// The host name (the VM's name).
    pub hostname: String,
    /// `i-<account>-<id>-VM`: the name the driver's namespace carries.
    pub instance_name: String,
    pub zone_id: Uuid,
    pub nics: Vec<VmNicView>,
    /// The URL of the host agent of the host it runs on; None: the
    /// manager's default host agent (or driver).
    pub host: Option<String>,
}

/// A public IP (or a private gateway's IP) held by the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicIpView {
    pub id: Uuid,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// The device index of the NIC holding the IP.
    pub nic_index: u32,
    /// The MAC of that NIC.
    pub mac: String,
    pub source_nat: bool,
    pub one_to_one_nat: bool,
    pub private_gateway: bool,
    /// The VLAN / vnet of the network (informational).
    pub vlan: String,
    /// false: the IP is being released and must be disassociated.
    pub add: bool,
}

/// The lifecycle state of a rule (ACL item, static route, NAT/LB rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleState {
    Staged,
    Add,
    Active,
    Revoke,
}

impl RuleState {
    /// Whether the rule belongs on the router (Add or Active).
    pub fn is_live(self) -> bool {
        matches!(self, RuleState::Add | RuleState::Active)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AclAction {
    Allow,
    Deny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AclTraffic {
    Ingress,
    Egress,
}

/// The protocol of an ACL item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AclProtocol {
    All,
    Tcp,
    Udp,
    Icmp,
    /// An IP protocol number.
    Number(u8),
}

/// The layer-4 protocol of a NAT or LB rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L4Protocol {
    Tcp,
    Udp,
}

impl L4Protocol {
    pub fn to_proto(self) -> i32 {
        match self {
            L4Protocol::Tcp => vpc_proto::v1::Protocol::Tcp as i32,
            L4Protocol::Udp => vpc_proto::v1::Protocol::Udp as i32,
        }
    }
}

/// One item of an ACL list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclItemView {
    pub id: Uuid,
    pub number: u32,
    pub action: AclAction,
    pub traffic: AclTraffic,
    pub protocol: AclProtocol,
    pub cidrs: Vec<String>,
    pub start_port: Option<u16>,
    pub end_port: Option<u16>,
    pub icmp_type: Option<i32>,
    pub icmp_code: Option<i32>,
    pub state: RuleState,
}

/// An ACL list with its items (all states; the element keeps the live ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclListView {
    pub id: Uuid,
    pub name: String,
    pub items: Vec<AclItemView>,
}

/// A private gateway of the VPC and the router NIC that serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateGatewayView {
    pub id: Uuid,
    /// The private network's id.
    pub network_id: Uuid,
    /// The gateway's own address on the router.
    pub ip: Ipv4Addr,
    pub prefix: u8,
    /// The next hop on the private network.
    pub gateway: Ipv4Addr,
    /// The broadcast URI of the private network (`vlan://N`).
    pub vlan: String,
    pub source_nat_supported: bool,
    pub acl_id: Option<Uuid>,
    pub device_index: u32,
    pub mac: String,
    pub mtu: u32,
}

/// A static route of the VPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticRouteView {
    pub id: Uuid,
    pub cidr: Ipv4Net,
    pub next_hop: Ipv4Addr,
    /// The private gateway's IP on the router the route leaves by, if any.
    pub gateway_ip: Option<Ipv4Addr>,
    pub state: RuleState,
}

/// A port forwarding rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForwardView {
    pub id: Uuid,
    pub public_ip: Ipv4Addr,
    pub protocol: L4Protocol,
    pub public_start_port: u16,
    pub public_end_port: u16,
    pub private_ip: Ipv4Addr,
    pub private_start_port: u16,
    pub private_end_port: u16,
    pub source_cidrs: Vec<String>,
    pub state: RuleState,
}

/// CloudStack's stickiness methods of the VR's HAProxy provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StickinessMethod {
    LbCookie,
    AppCookie,
    SourceBased,
}

impl StickinessMethod {
    /// Parses CloudStack's method names, case-insensitive.
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "lbcookie" => Some(Self::LbCookie),
            "appcookie" => Some(Self::AppCookie),
            "sourcebased" => Some(Self::SourceBased),
            _ => None,
        }
    }

    /// The name as CloudStack writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LbCookie => "LbCookie",
            Self::AppCookie => "AppCookie",
            Self::SourceBased => "SourceBased",
        }
    }
}

/// A rule's stickiness policy as the router gets it: the method and
/// CloudStack's `param` pairs, checked by `rules::lb_sticky`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickinessView {
    pub method: StickinessMethod,
    pub params: Vec<(String, String)>,
}

impl StickinessView {
    /// Cookie methods read HTTP (served by the router's HAProxy).
    pub fn needs_http(&self) -> bool {
        self.method != StickinessMethod::SourceBased
    }
}

/// A static NAT mapping (keyed by the public IP's id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticNatView {
    pub id: Uuid,
    pub public_ip: Ipv4Addr,
    pub private_ip: Ipv4Addr,
    pub state: RuleState,
}

/// A load balancing algorithm as CloudStack names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LbAlgorithm {
    RoundRobin,
    Source,
    LeastConn,
}

impl LbAlgorithm {
    /// Parses CloudStack's names: `roundrobin`, `source`, `leastconn`.
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "roundrobin" => Some(LbAlgorithm::RoundRobin),
            "source" => Some(LbAlgorithm::Source),
            "leastconn" => Some(LbAlgorithm::LeastConn),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LbAlgorithm::RoundRobin => "roundrobin",
            LbAlgorithm::Source => "source",
            LbAlgorithm::LeastConn => "leastconn",
        }
    }
}

/// One backend of a load balancer rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbBackendView {
    pub vm_id: Uuid,
    pub ip: Ipv4Addr,
    /// None: the rule's private port.
    pub port: Option<u16>,
}

/// A load balancer rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbRuleView {
    pub id: Uuid,
    pub name: String,
    pub public_ip: Ipv4Addr,
    pub protocol: L4Protocol,
    pub public_port: u16,
    pub private_port: u16,
    pub algorithm: LbAlgorithm,
    pub backends: Vec<LbBackendView>,
    pub source_cidrs: Vec<String>,
    pub state: RuleState,
    /// The rule's stickiness policy (createLBStickinessPolicy), if any.
    pub stickiness: Option<StickinessView>,
}

/// One VM NIC's static DHCP lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpEntryView {
    pub mac: String,
    pub ip: Ipv4Addr,
    pub hostname: String,
    pub default_gateway: bool,
    pub ip6: Option<String>,
    pub duid: Option<String>,
}

/// The DHCP leases of one tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierDhcpView {
    pub tier_id: Uuid,
    pub entries: Vec<DhcpEntryView>,
}

/// Everything needed to build a router's whole configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterState {
    pub vpc: VpcView,
    pub router: RouterView,
    pub tiers: Vec<TierView>,
    pub public_ips: Vec<PublicIpView>,
    pub private_gateways: Vec<PrivateGatewayView>,
    pub acl_lists: Vec<AclListView>,
    pub static_routes: Vec<StaticRouteView>,
    pub port_forwards: Vec<PortForwardView>,
    pub static_nats: Vec<StaticNatView>,
    pub lb_rules: Vec<LbRuleView>,
    pub dhcp: Vec<TierDhcpView>,
    /// What each tier's VMs read from the router (user data, metadata,
    /// keys), for the same VM NICs as the tier's DHCP list.
    pub vm_data: Vec<TierVmDataView>,
    /// The site-to-site VPN, when the VPC has a VPN gateway.
    pub vpn: Option<VpnView>,
}

/// The VPC's VPN gateway with its connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpnView {
    /// The gateway's public address (the VPC's source NAT address).
    pub public_ip: Ipv4Addr,
    pub connections: Vec<VpnConnectionView>,
}

/// One VPN connection with its customer gateway's values.
#[derive(Clone, PartialEq, Eq)]
pub struct VpnConnectionView {
    pub id: Uuid,
    /// The peer's address or DNS name.
    pub peer: String,
    pub remote_cidrs: Vec<Ipv4Net>,
    pub psk: String,
    /// In strongSwan's syntax.
    pub ike_proposals: Vec<String>,
    pub esp_proposals: Vec<String>,
    pub ike_lifetime: u64,
    pub esp_lifetime: u64,
    pub dpd: bool,
    pub ike_version: String,
    pub passive: bool,
    pub force_encap: bool,
    pub split_connections: bool,
    pub reset_serial: u64,
}

// The key stays out of logs and panics.
impl std::fmt::Debug for VpnConnectionView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VpnConnectionView")
            .field("id", &self.id)
            .field("peer", &self.peer)
            .field("remote_cidrs", &self.remote_cidrs)
            .field("psk", &"<secret>")
            .field("passive", &self.passive)
            .field("reset_serial", &self.reset_serial)
            .finish_non_exhaustive()
    }
}

/// What one VM NIC reads from the router's metadata server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmDataView {
    pub mac: String,
    pub ip: Ipv4Addr,
    pub vm_id: Uuid,
    pub hostname: String,
    pub service_offering: String,
    pub zone_name: String,
    /// Decoded; empty when none.
    pub user_data: Vec<u8>,
    pub public_keys: Vec<String>,
    /// The password the router's password server hands out until the VM
    /// acknowledges it; empty when none.
    pub password: String,
    /// The values of its registered user data's params, served as metadata
    /// files of their names, in name order.
    pub details: Vec<(String, String)>,
    /// `CloudStack-{<cloud.identifier>}`, empty when the cloud has none.
    pub cloud_identifier: String,
    /// The host it runs on, when `global.allow.expose.host.hostname` allows
    /// it; empty otherwise.
    pub hypervisor_host_name: String,
}

/// The VM data of one tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierVmDataView {
    pub tier_id: Uuid,
    pub vms: Vec<VmDataView>,
}

impl RouterState {
    /// The VM data of a tier (empty when none is known).
    pub fn vm_data_of(&self, tier_id: Uuid) -> &[VmDataView] {
        self.vm_data
            .iter()
            .find(|d| d.tier_id == tier_id)
            .map(|d| d.vms.as_slice())
            .unwrap_or(&[])
    }

    /// The ACL list with this id.
    pub fn acl_list(&self, id: Uuid) -> Option<&AclListView> {
        self.acl_lists.iter().find(|l| l.id == id)
    }

    /// The DHCP leases of a tier (empty when none are known).
    pub fn dhcp_of(&self, tier_id: Uuid) -> &[DhcpEntryView] {
        self.dhcp
            .iter()
            .find(|d| d.tier_id == tier_id)
            .map(|d| d.entries.as_slice())
            .unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmasks_convert_to_prefixes() {
        assert_eq!(netmask_to_prefix("255.255.255.0"), Some(24));
        assert_eq!(netmask_to_prefix("255.255.0.0"), Some(16));
        assert_eq!(netmask_to_prefix("255.255.255.255"), Some(32));
        assert_eq!(netmask_to_prefix("0.0.0.0"), Some(0));
        assert_eq!(netmask_to_prefix("255.255.255.128"), Some(25));
        assert_eq!(netmask_to_prefix("255.0.255.0"), None);
        assert_eq!(netmask_to_prefix("nonsense"), None);
    }

    #[test]
    fn live_states_are_add_and_active() {
        assert!(RuleState::Add.is_live());
        assert!(RuleState::Active.is_live());
        assert!(!RuleState::Revoke.is_live());
        assert!(!RuleState::Staged.is_live());
    }

    #[test]
    fn lb_algorithms_parse_cloudstack_names() {
        assert_eq!(
            LbAlgorithm::parse("RoundRobin"),
            Some(LbAlgorithm::RoundRobin)
        );
        assert_eq!(LbAlgorithm::parse("source"), Some(LbAlgorithm::Source));
        assert_eq!(
            LbAlgorithm::parse("leastconn"),
            Some(LbAlgorithm::LeastConn)
        );
        assert_eq!(LbAlgorithm::parse("random"), None);
    }
}
