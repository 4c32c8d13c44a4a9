//! The router's desired state as typed, validated values.
//!
//! The wire form (`vpc_proto::v1::RouterConfig`) is what the manager sends and
//! what the agent persists; [`Router`] is what the planners read. The only way
//! to get a `Router` is [`Router::from_config`], which checks every field, so
//! planners never see an invalid address, an unknown NIC or a dangling rule.

mod splice;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};

pub use splice::Splice;
pub use validate::limits::Limits;
pub use validate::text::shown;
pub use validate::{Invalid, InvalidKind};

/// The lowest route table number of a NIC: NIC N uses table 100+N, as on
/// CloudStack's router (reference §4.5).
pub const NIC_TABLE_BASE: u32 = 100;
/// The highest device index a NIC may have; keeps tables in 100..=199, clear of
/// the kernel's reserved tables 253-255.
pub const MAX_DEVICE_INDEX: u32 = 99;

/// A MAC address, kept lower-case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl std::str::FromStr for Mac {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let part = parts.next().ok_or(())?;
            if part.len() != 2 {
                return Err(());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| ())?;
        }
        if parts.next().is_some() {
            return Err(());
        }
        Ok(Mac(out))
    }
}

/// What a NIC connects the router to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Guest,
    Public,
    Private,
    Control,
}

/// A plugged NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    pub index: u32,
    pub mac: Mac,
    pub role: Role,
    /// None leaves the link's MTU alone.
    pub mtu: Option<u32>,
    /// The link-local address of a control NIC.
    pub control_address: Option<Ipv4Net>,
}

impl Nic {
    /// The link name the agent gives the NIC.
    pub fn dev(&self) -> String {
        dev_name(self.index)
    }
    /// The NIC's route table, also its fwmark and connmark.
    pub fn table(&self) -> u32 {
        NIC_TABLE_BASE + self.index
    }
    /// True for NICs whose connections are marked so replies leave by them.
    pub fn is_routed(&self) -> bool {
        self.role != Role::Control
    }
}

/// The link name of device index `index`.
pub fn dev_name(index: u32) -> String {
    format!("eth{index}")
}

/// A tier served on a guest NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    pub index: u32,
    pub network_id: String,
    pub cidr: Ipv4Net,
    /// The router's address on the tier, with the tier's prefix length.
    pub gateway: Ipv4Addr,
    pub domain: String,
    pub dns_servers: Vec<std::net::IpAddr>,
    pub external_dns_only: bool,
    pub mtu: Option<u32>,
}

impl Tier {
    /// The gateway address with the tier's prefix, as it sits on the NIC.
    pub fn gateway_net(&self) -> Ipv4Net {
        Ipv4Net::new(self.gateway, self.cidr.prefix_len()).expect("prefix checked")
    }
}

/// A public or private gateway address held by the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicIp {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    pub index: u32,
    pub source_nat: bool,
    pub one_to_one_nat: bool,
    pub private_gateway: bool,
}

impl PublicIp {
    /// The address with its network's prefix, as it sits on the NIC.
    pub fn net(&self) -> Ipv4Net {
        Ipv4Net::new(self.address, self.prefix_len).expect("prefix checked")
    }
    /// The network the address is in.
    pub fn subnet(&self) -> Ipv4Net {
        self.net().trunc()
    }
}

/// Traffic from `sources` leaving NIC `index` is translated to `nat_ip`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceNat {
    pub index: u32,
    pub nat_ip: Ipv4Addr,
    /// Never empty: an empty list on the wire means every tier.
    pub sources: Vec<Ipv4Net>,
}

/// A static route via a private gateway NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticRoute {
    pub cidr: Ipv4Net,
    pub next_hop: Ipv4Addr,
    /// The NIC holding the private gateway address the route was given.
    pub index: u32,
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
}

/// Into the tier (sources matched) or out of it (destinations matched).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    Ingress,
    Egress,
}

/// What an ACL item matches beyond addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// Any protocol.
    All,
    /// TCP or UDP (protocol number 6 or 17) to a destination port range.
    Ports { protocol: u8, first: u16, last: u16 },
    /// ICMP with an optional type and code (None = any).
    Icmp {
        icmp_type: Option<u8>,
        code: Option<u8>,
    },
    /// Any traffic of one IP protocol number.
    Protocol(u8),
}

/// One ACL item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclRule {
    pub number: u32,
    /// The manager's id of the item (checked as an identifier; may be
    /// empty): its hit counters follow it across renumbering.
    pub id: String,
    pub action: Action,
    pub direction: Direction,
    pub matches: Match,
    /// Never empty: an empty list on the wire means 0.0.0.0/0 and ::/0.
    pub cidrs: Vec<IpNet>,
}

/// The ACL of one NIC, items sorted by number.
///
/// Each direction is compiled into set lookups when the list is validated:
/// a list whose sets would pass the element bound is refused like any other
/// invalid input, before it is persisted, and the planner reuses the result
/// instead of compiling a second time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    pub index: u32,
    /// Shared with the list before a change: a one-item change to a list
    /// of 10,000 makes its new list of the same rules without copying
    /// each one (and later freeing it).
    pub rules: Vec<std::sync::Arc<AclRule>>,
    pub ingress: crate::plan::acl::Compiled,
    pub egress: crate::plan::acl::Compiled,
}

impl Acl {
    /// Items of one direction, in number order.
    pub fn rules(&self, direction: Direction) -> impl Iterator<Item = &AclRule> {
        self.rules
            .iter()
            .map(|r| &**r)
            .filter(move |r| r.direction == direction)
    }

    /// The compiled lookups of one direction.
    pub fn compiled(&self, direction: Direction) -> &crate::plan::acl::Compiled {
        match direction {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }
}

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum L4 {
    Tcp,
    Udp,
}

impl L4 {
    /// The name nft uses.
    pub fn name(self) -> &'static str {
        match self {
            L4::Tcp => "tcp",
            L4::Udp => "udp",
        }
    }
}

/// A public port range forwarded to a VM port range of equal length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForward {
    /// Shared: a change to the list copies the other forwards (10,000 of
    /// them) without copying their ids.
    pub id: std::sync::Arc<str>,
    pub public_ip: Ipv4Addr,
    pub protocol: L4,
    pub public_ports: (u16, u16),
    pub private_ip: Ipv4Addr,
    pub private_ports: (u16, u16),
    /// Empty means any client.
    pub sources: Vec<Ipv4Net>,
}

/// A public IP mapped 1:1 to a VM address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticNat {
    pub public_ip: Ipv4Addr,
    pub private_ip: Ipv4Addr,
    /// The NIC holding the public IP.
    pub index: u32,
}

/// How a load balancer picks a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    RoundRobin,
    SourceHash,
    /// Fewest open connections: needs connection counts, so HAProxy serves it.
    LeastConn,
}

/// How an LB cookie is handled (HAProxy's `cookie <name> <mode>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieMode {
    Insert,
    Rewrite,
    Prefix,
}

/// Where an application cookie's value is also looked for in the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlMode {
    PathParameters,
    QueryString,
}

/// A rule's stickiness policy (CloudStack's methods for the VR's HAProxy).
/// Every string in it was checked to be a plain token, safe in HAProxy's
/// configuration without quoting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stickiness {
    /// HAProxy sets a cookie naming the backend.
    LbCookie {
        cookie: String,
        mode: CookieMode,
        nocache: bool,
        indirect: bool,
        postonly: bool,
        domain: Option<String>,
    },
    /// HAProxy learns the application's own cookie.
    AppCookie {
        cookie: String,
        length: u32,
        holdtime: String,
        request_learn: bool,
        mode: UrlMode,
    },
    /// By client address: a source hash in the kernel, a stick table in HAProxy.
    SourceBased { table_size: String, expire: String },
}

/// An L4 load balancer on a public IP and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadBalancer {
    pub id: String,
    pub public_ip: Ipv4Addr,
    pub protocol: L4,
    pub public_port: u16,
    pub algorithm: Algorithm,
    /// Backend address and port; may be empty (nothing is balanced).
    pub backends: Vec<(Ipv4Addr, u16)>,
    /// Empty means any client.
    pub sources: Vec<Ipv4Net>,
    pub stickiness: Option<Stickiness>,
}

impl LoadBalancer {
    /// True when the in-kernel balancer cannot serve the rule (least
    /// connections, cookies): the router's HAProxy does, and nft leaves it.
    pub fn needs_proxy(&self) -> bool {
        self.algorithm == Algorithm::LeastConn
            || matches!(
                self.stickiness,
                Some(Stickiness::LbCookie { .. } | Stickiness::AppCookie { .. })
            )
    }
}

/// A static DHCP lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpHost {
    pub mac: Mac,
    pub ip: Ipv4Addr,
    pub hostname: String,
    pub default_gateway: bool,
}

/// What one VM NIC reads from the router's metadata and password servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmData {
    pub mac: Mac,
    pub ip: Ipv4Addr,
    /// Decoded; empty when the VM has none.
    pub user_data: Vec<u8>,
    /// Metadata files in listing order, empty values left out.
    pub metadata: Vec<(String, String)>,
    pub public_keys: Vec<String>,
    /// A pending one-time password; empty when none is.
    pub password: String,
}

/// The whole validated desired state of a router.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Router {
    pub nics: BTreeMap<u32, Nic>,
    pub tiers: BTreeMap<u32, Tier>,
    pub public_ips: Vec<PublicIp>,
    pub source_nat: Vec<SourceNat>,
    pub static_routes: Vec<StaticRoute>,
    /// Shared: a change to one NIC's list copies the router without
    /// copying the other lists, and an unchanged list compares equal by
    /// address.
    pub acls: BTreeMap<u32, std::sync::Arc<Acl>>,
    pub port_forwards: Vec<PortForward>,
    pub static_nats: Vec<StaticNat>,
    pub load_balancers: Vec<LoadBalancer>,
    pub dhcp: BTreeMap<u32, Vec<DhcpHost>>,
    /// What each tier's VMs read from the router, by guest NIC.
    pub vm_data: BTreeMap<u32, Vec<VmData>>,
    /// The site-to-site VPN; None when it has no connection.
    pub vpn: Option<Vpn>,
}

/// The router's site-to-site VPN: the gateway's public address and at least
/// one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vpn {
    /// One of the router's public IPs.
    pub public_ip: Ipv4Addr,
    /// The public NIC that holds it.
    pub index: u32,
    pub connections: Vec<VpnConnection>,
}

/// Which IKE versions a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IkeVersion {
    /// IKEv2 when initiating, either when responding (strongSwan's 0).
    Any,
    V1,
    V2,
}

/// One validated tunnel. Every text in it is safe inside a quoted
/// strongSwan value.
#[derive(Clone, PartialEq, Eq)]
pub struct VpnConnection {
    /// The manager's UUID, lower-case.
    pub id: String,
    /// An IPv4 address or a DNS name.
    pub peer: String,
    pub local: Vec<Ipv4Net>,
    pub remote: Vec<Ipv4Net>,
    pub psk: String,
    pub ike_proposals: Vec<String>,
    pub esp_proposals: Vec<String>,
    pub ike_lifetime: u64,
    pub esp_lifetime: u64,
    pub dpd: bool,
    pub ike_version: IkeVersion,
    pub passive: bool,
    pub force_encap: bool,
    pub split_connections: bool,
    pub reset_serial: u64,
}

// The key stays out of logs and panics.
impl fmt::Debug for VpnConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VpnConnection")
            .field("id", &self.id)
            .field("peer", &self.peer)
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("psk", &"<secret>")
            .field("ike_proposals", &self.ike_proposals)
            .field("esp_proposals", &self.esp_proposals)
            .field("passive", &self.passive)
            .field("reset_serial", &self.reset_serial)
            .finish_non_exhaustive()
    }
}

impl Router {
    /// NICs of one role, by device index.
    pub fn nics_with(&self, role: Role) -> impl Iterator<Item = &Nic> {
        self.nics.values().filter(move |n| n.role == role)
    }

    /// The public IPs held on NIC `index`, source-NAT IP first.
    pub fn ips_on(&self, index: u32) -> Vec<&PublicIp> {
        let mut ips: Vec<&PublicIp> = self
            .public_ips
            .iter()
            .filter(|p| p.index == index)
            .collect();
        ips.sort_by_key(|p| (!p.source_nat, p.address));
        ips
    }

    /// The source-NAT IP, if one is associated.
    pub fn source_nat_ip(&self) -> Option<&PublicIp> {
        self.public_ips.iter().find(|p| p.source_nat)
    }

    /// Every tier CIDR.
    pub fn tier_cidrs(&self) -> Vec<Ipv4Net> {
        self.tiers.values().map(|t| t.cidr).collect()
    }

    /// The tier whose CIDR contains `ip`.
    pub fn tier_of(&self, ip: Ipv4Addr) -> Option<&Tier> {
        self.tiers.values().find(|t| t.cidr.contains(&ip))
    }
}
