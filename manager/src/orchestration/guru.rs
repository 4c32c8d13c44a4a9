//! Network gurus: they design networks, acquire their vnets when they are
//! implemented, and reserve addresses for NICs. A guru is chosen by the
//! physical network's isolation method and the network's traffic type; the
//! registry refuses two gurus claiming the same pair, so one network can never
//! be claimed by two gurus.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use uuid::Uuid;

/// Re-exported so `orchestration::guru::BoxFuture` keeps naming the one
/// definition in [`crate::future`], which the gurus' and allocators' async
/// methods return.
pub use crate::future::BoxFuture;

/// How a physical network isolates its networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IsolationMethod {
    /// No isolation (untagged / link-local).
    None,
    Vlan,
    Vxlan,
}

impl IsolationMethod {
    const ALL: [IsolationMethod; 3] = [
        IsolationMethod::None,
        IsolationMethod::Vlan,
        IsolationMethod::Vxlan,
    ];

    /// Parses CloudStack's names (`VLAN`, `VXLAN`, `None`/empty), ignoring case.
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "" | "none" => Some(IsolationMethod::None),
            "vlan" => Some(IsolationMethod::Vlan),
            "vxlan" => Some(IsolationMethod::Vxlan),
            _ => None,
        }
    }
}

/// What a network carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NetworkTraffic {
    /// A VPC tier.
    Guest,
    Public,
    /// A private gateway's network.
    Private,
    /// The link-local control network.
    Control,
}

/// The lifecycle state of a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NetworkState {
    Allocated,
    Implemented,
    Shutdown,
    Destroyed,
}

/// Errors of gurus and of the allocators they use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuruError {
    #[error("invalid network: {0}")]
    Invalid(String),
    #[error("guru {guru} cannot handle {isolation:?}/{traffic:?} networks")]
    WrongGuru {
        guru: &'static str,
        isolation: IsolationMethod,
        traffic: NetworkTraffic,
    },
    #[error("no vnet is free in the range of physical network {0}")]
    NoFreeVnet(Uuid),
    #[error("no address is free in {0}")]
    NoFreeAddress(Ipv4Net),
    #[error("allocator failed: {0}")]
    Allocator(String),
}

/// What a caller asks a guru to design.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    pub id: Uuid,
    pub name: String,
    pub traffic: NetworkTraffic,
    pub isolation: IsolationMethod,
    pub physical_network_id: Option<Uuid>,
    pub cidr: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    /// A VLAN/VNI given by the caller (private gateways, specifyVlan offerings).
    pub vlan: Option<u32>,
    pub mtu: Option<u32>,
    pub network_domain: Option<String>,
    /// For tiers: the VPC CIDR the tier must lie in.
    pub vpc_cidr: Option<Ipv4Net>,
}

/// A network after `design`: validated, state Allocated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesignedNetwork {
    pub id: Uuid,
    pub name: String,
    pub guru: &'static str,
    pub traffic: NetworkTraffic,
    pub isolation: IsolationMethod,
    pub state: NetworkState,
    pub physical_network_id: Option<Uuid>,
    pub cidr: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    /// Set at design time when the caller gave the VLAN/VNI.
    pub broadcast_uri: Option<String>,
    pub mtu: u32,
    pub network_domain: Option<String>,
}

/// A network after `implement`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImplementedNetwork {
    pub network: DesignedNetwork,
    pub broadcast_uri: Option<String>,
    /// The vnet acquired from the physical network's range by `implement`
    /// (None when the caller fixed the VLAN or none is needed); `shutdown`
    /// gives exactly this back.
    pub acquired_vnet: Option<u32>,
}

/// A NIC to reserve an address for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicRequest {
    pub network_id: Uuid,
    /// The VM or router the NIC belongs to.
    pub owner_id: Uuid,
    pub requested_ip: Option<Ipv4Addr>,
    pub requested_mac: Option<String>,
}

/// A NIC with its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservedNic {
    pub network_id: Uuid,
    pub owner_id: Uuid,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub mac: String,
    pub broadcast_uri: Option<String>,
}

/// The seam to the store for vnets: a physical network's VLAN/VNI range.
pub trait VnetAllocator: Send {
    /// Takes a free vnet of the physical network for `network_id`.
    fn acquire_vnet(
        &mut self,
        physical_network_id: Uuid,
        network_id: Uuid,
    ) -> BoxFuture<'_, Result<u32, GuruError>>;
    /// Gives a vnet back to the range.
    fn release_vnet(
        &mut self,
        physical_network_id: Uuid,
        vnet: u32,
    ) -> BoxFuture<'_, Result<(), GuruError>>;
}

/// The seam to the store for IP and MAC addresses.
pub trait AddressAllocator: Send {
    /// Takes `requested` (when given and free) or a free address of `cidr`
    /// outside `excluded`, for `network_id`.
    fn allocate_ip(
        &mut self,
        network_id: Uuid,
        cidr: Ipv4Net,
        requested: Option<Ipv4Addr>,
        excluded: Vec<Ipv4Addr>,
    ) -> BoxFuture<'_, Result<Ipv4Addr, GuruError>>;
    /// Gives an address back.
    fn release_ip(
        &mut self,
        network_id: Uuid,
        ip: Ipv4Addr,
    ) -> BoxFuture<'_, Result<(), GuruError>>;
    /// A fresh MAC address for a NIC on `network_id`.
    fn allocate_mac(&mut self, network_id: Uuid) -> BoxFuture<'_, Result<String, GuruError>>;
}

/// A network guru.
pub trait NetworkGuru: Send + Sync {
    /// The configuration name (`GuestVlan`, ...).
    fn name(&self) -> &'static str;
    /// The (isolation method, traffic type) pairs this guru handles.
    fn claims(&self) -> &'static [(IsolationMethod, NetworkTraffic)];
    fn can_handle(&self, isolation: IsolationMethod, traffic: NetworkTraffic) -> bool {
        self.claims().contains(&(isolation, traffic))
    }
    /// Validates and shapes a network; its state is Allocated.
    fn design(&self, spec: &NetworkSpec) -> Result<DesignedNetwork, GuruError>;
    /// Acquires what the network needs to carry traffic (its vnet). By
    /// default nothing: the network's broadcast URI was fixed at design.
    fn implement<'a>(
        &'a self,
        network: &'a DesignedNetwork,
        _vnets: &'a mut dyn VnetAllocator,
    ) -> BoxFuture<'a, Result<ImplementedNetwork, GuruError>> {
        Box::pin(async move { Ok(implement_fixed(network)) })
    }
    /// Reserves an IP and a MAC for a NIC on the network; by default from
    /// the network's own CIDR.
    fn reserve<'a>(
        &'a self,
        network: &'a ImplementedNetwork,
        nic: &'a NicRequest,
        addresses: &'a mut dyn AddressAllocator,
    ) -> BoxFuture<'a, Result<ReservedNic, GuruError>> {
        Box::pin(reserve_in(network, nic, addresses))
    }
    /// Gives a NIC's IP back.
    fn release<'a>(
        &'a self,
        nic: &'a ReservedNic,
        addresses: &'a mut dyn AddressAllocator,
    ) -> BoxFuture<'a, Result<(), GuruError>> {
        Box::pin(async move { addresses.release_ip(nic.network_id, nic.ip).await })
    }
    /// Gives back what `implement` took; the network is Allocated again.
    fn shutdown<'a>(
        &'a self,
        network: &'a ImplementedNetwork,
        vnets: &'a mut dyn VnetAllocator,
    ) -> BoxFuture<'a, Result<DesignedNetwork, GuruError>> {
        Box::pin(async move {
            let mut designed = network.network.clone();
            if let Some(vnet) = network.acquired_vnet {
                let physical = designed.physical_network_id.ok_or_else(|| {
                    GuruError::Invalid("the network has no physical network".into())
                })?;
                vnets.release_vnet(physical, vnet).await?;
                designed.broadcast_uri = None;
            }
            designed.state = NetworkState::Allocated;
            Ok(designed)
        })
    }
    /// The network is deleted; nothing is left to give back.
    fn trash(&self, network: &DesignedNetwork) -> Result<DesignedNetwork, GuruError> {
        let mut trashed = network.clone();
        trashed.state = NetworkState::Destroyed;
        Ok(trashed)
    }
}

const LINK_LOCAL: Ipv4Net = match Ipv4Net::new(Ipv4Addr::new(169, 254, 0, 0), 16) {
    Ok(net) => net,
    Err(_) => panic!("169.254.0.0/16 is a valid CIDR"),
};

/// The link-local control network.
pub fn link_local() -> Ipv4Net {
    LINK_LOCAL
}

fn check_claim(
    guru: &dyn NetworkGuru,
    isolation: IsolationMethod,
    traffic: NetworkTraffic,
) -> Result<(), GuruError> {
    if guru.can_handle(isolation, traffic) {
        Ok(())
    } else {
        Err(GuruError::WrongGuru {
            guru: guru.name(),
            isolation,
            traffic,
        })
    }
}

/// Checks a CIDR and gateway pair and returns the gateway (the first host when
/// none is given).
fn check_cidr_gateway(
    cidr: Option<Ipv4Net>,
    gateway: Option<Ipv4Addr>,
) -> Result<(Ipv4Net, Ipv4Addr), GuruError> {
    let cidr = cidr.ok_or_else(|| GuruError::Invalid("a CIDR is required".into()))?;
    if cidr != cidr.trunc() {
        return Err(GuruError::Invalid(format!(
            "{cidr} is not a network address (expected {})",
            cidr.trunc()
        )));
    }
    if cidr.prefix_len() > 30 {
        return Err(GuruError::Invalid(format!(
            "{cidr} is too small for a gateway and hosts"
        )));
    }
    let gateway = match gateway {
        Some(g) => g,
        None => cidr
            .hosts()
            .next()
            .ok_or_else(|| GuruError::Invalid(format!("{cidr} has no host address")))?,
    };
    if !cidr.contains(&gateway) || gateway == cidr.network() || gateway == cidr.broadcast() {
        return Err(GuruError::Invalid(format!(
            "gateway {gateway} is not a host address of {cidr}"
        )));
    }
    Ok((cidr, gateway))
}

fn check_vnet(isolation: IsolationMethod, vnet: u32) -> Result<(), GuruError> {
    let max = match isolation {
        IsolationMethod::Vlan => 4094,
        IsolationMethod::Vxlan => 16_777_215,
        IsolationMethod::None => 0,
    };
    if vnet == 0 || vnet > max {
        return Err(GuruError::Invalid(format!(
            "vnet {vnet} is outside 1-{max} for {isolation:?}"
        )));
    }
    Ok(())
}

/// The broadcast URI of a vnet: `vlan://N` or `vxlan://N`.
pub fn broadcast_uri(isolation: IsolationMethod, vnet: u32) -> Option<String> {
    match isolation {
        IsolationMethod::Vlan => Some(format!("vlan://{vnet}")),
        IsolationMethod::Vxlan => Some(format!("vxlan://{vnet}")),
        IsolationMethod::None => None,
    }
}

fn designed(
    guru: &'static str,
    spec: &NetworkSpec,
    cidr: Ipv4Net,
    gateway: Option<Ipv4Addr>,
    broadcast_uri: Option<String>,
) -> DesignedNetwork {
    DesignedNetwork {
        id: spec.id,
        name: spec.name.clone(),
        guru,
        traffic: spec.traffic,
        isolation: spec.isolation,
        state: NetworkState::Allocated,
        physical_network_id: spec.physical_network_id,
        cidr,
        gateway,
        broadcast_uri,
        mtu: spec.mtu.unwrap_or(0),
        network_domain: spec.network_domain.clone(),
    }
}

/// Reserves an address of the network's CIDR (never its gateway) and a MAC.
async fn reserve_in(
    network: &ImplementedNetwork,
    nic: &NicRequest,
    addresses: &mut dyn AddressAllocator,
) -> Result<ReservedNic, GuruError> {
    let net = &network.network;
    if nic.network_id != net.id {
        return Err(GuruError::Invalid(format!(
            "the NIC is for network {}, not {}",
            nic.network_id, net.id
        )));
    }
    if let Some(ip) = nic.requested_ip
        && !net.cidr.contains(&ip)
    {
        return Err(GuruError::Invalid(format!(
            "requested address {ip} is outside {}",
            net.cidr
        )));
    }
    // A tier's router NIC asks for the gateway itself; everyone else avoids it.
    let excluded: Vec<Ipv4Addr> = net
        .gateway
        .filter(|g| nic.requested_ip != Some(*g))
        .into_iter()
        .collect();
    let ip = addresses
        .allocate_ip(net.id, net.cidr, nic.requested_ip, excluded)
        .await?;
    let mac = match &nic.requested_mac {
        Some(mac) => mac.clone(),
        None => addresses.allocate_mac(net.id).await?,
    };
    Ok(ReservedNic {
        network_id: net.id,
        owner_id: nic.owner_id,
        ip,
        prefix: net.cidr.prefix_len(),
        gateway: net.gateway,
        mac,
        broadcast_uri: network.broadcast_uri.clone(),
    })
}

/// Shared logic of the two guest gurus (VLAN and VXLAN).
async fn implement_guest(
    network: &DesignedNetwork,
    vnets: &mut dyn VnetAllocator,
) -> Result<ImplementedNetwork, GuruError> {
    let mut implemented = network.clone();
    implemented.state = NetworkState::Implemented;
    if let Some(uri) = &network.broadcast_uri {
        return Ok(ImplementedNetwork {
            broadcast_uri: Some(uri.clone()),
            network: implemented,
            acquired_vnet: None,
        });
    }
    let physical = network.physical_network_id.ok_or_else(|| {
        GuruError::Invalid("a guest network needs a physical network to take a vnet from".into())
    })?;
    let vnet = vnets.acquire_vnet(physical, network.id).await?;
    if let Err(e) = check_vnet(network.isolation, vnet) {
        // A range the store should never hold; do not keep the vnet.
        vnets.release_vnet(physical, vnet).await?;
        return Err(e);
    }
    let uri = broadcast_uri(network.isolation, vnet);
    implemented.broadcast_uri = uri.clone();
    Ok(ImplementedNetwork {
        network: implemented,
        broadcast_uri: uri,
        acquired_vnet: Some(vnet),
    })
}

fn design_guest(guru: &dyn NetworkGuru, spec: &NetworkSpec) -> Result<DesignedNetwork, GuruError> {
    check_claim(guru, spec.isolation, spec.traffic)?;
    let (cidr, gateway) = check_cidr_gateway(spec.cidr, spec.gateway)?;
    if let Some(vpc) = spec.vpc_cidr
        && !vpc.contains(&cidr)
    {
        return Err(GuruError::Invalid(format!(
            "tier CIDR {cidr} is not inside the VPC CIDR {vpc}"
        )));
    }
    let uri = match spec.vlan {
        Some(v) => {
            check_vnet(spec.isolation, v)?;
            broadcast_uri(spec.isolation, v)
        }
        None => None,
    };
    Ok(designed(guru.name(), spec, cidr, Some(gateway), uri))
}

/// Plain (already-designed) implementation: no vnet to take.
fn implement_fixed(network: &DesignedNetwork) -> ImplementedNetwork {
    let mut implemented = network.clone();
    implemented.state = NetworkState::Implemented;
    ImplementedNetwork {
        broadcast_uri: network.broadcast_uri.clone(),
        network: implemented,
        acquired_vnet: None,
    }
}

/// Guest tiers on VLAN-isolated physical networks (`vlan://N`).
#[derive(Debug, Default, Clone, Copy)]
pub struct GuestVlanGuru;

impl NetworkGuru for GuestVlanGuru {
    fn name(&self) -> &'static str {
        "GuestVlan"
    }
    fn claims(&self) -> &'static [(IsolationMethod, NetworkTraffic)] {
        &[(IsolationMethod::Vlan, NetworkTraffic::Guest)]
    }
    fn design(&self, spec: &NetworkSpec) -> Result<DesignedNetwork, GuruError> {
        design_guest(self, spec)
    }
    fn implement<'a>(
        &'a self,
        network: &'a DesignedNetwork,
        vnets: &'a mut dyn VnetAllocator,
    ) -> BoxFuture<'a, Result<ImplementedNetwork, GuruError>> {
        Box::pin(implement_guest(network, vnets))
    }
}

/// Guest tiers on VXLAN-isolated physical networks (`vxlan://N`).
#[derive(Debug, Default, Clone, Copy)]
pub struct GuestVxlanGuru;

impl NetworkGuru for GuestVxlanGuru {
    fn name(&self) -> &'static str {
        "GuestVxlan"
    }
    fn claims(&self) -> &'static [(IsolationMethod, NetworkTraffic)] {
        &[(IsolationMethod::Vxlan, NetworkTraffic::Guest)]
    }
    fn design(&self, spec: &NetworkSpec) -> Result<DesignedNetwork, GuruError> {
        design_guest(self, spec)
    }
    fn implement<'a>(
        &'a self,
        network: &'a DesignedNetwork,
        vnets: &'a mut dyn VnetAllocator,
    ) -> BoxFuture<'a, Result<ImplementedNetwork, GuruError>> {
        Box::pin(implement_guest(network, vnets))
    }
}

/// Private gateway networks: the caller gives the VLAN, CIDR and gateway.
#[derive(Debug, Default, Clone, Copy)]
pub struct PrivateGatewayGuru;

impl NetworkGuru for PrivateGatewayGuru {
    fn name(&self) -> &'static str {
        "PrivateGateway"
    }
    fn claims(&self) -> &'static [(IsolationMethod, NetworkTraffic)] {
        &[
            (IsolationMethod::Vlan, NetworkTraffic::Private),
            (IsolationMethod::Vxlan, NetworkTraffic::Private),
        ]
    }
    fn design(&self, spec: &NetworkSpec) -> Result<DesignedNetwork, GuruError> {
        check_claim(self, spec.isolation, spec.traffic)?;
        if spec.gateway.is_none() {
            return Err(GuruError::Invalid(
                "a private gateway network needs a gateway".into(),
            ));
        }
        let (cidr, gateway) = check_cidr_gateway(spec.cidr, spec.gateway)?;
        let vlan = spec
            .vlan
            .ok_or_else(|| GuruError::Invalid("a private gateway network needs a VLAN".into()))?;
        check_vnet(spec.isolation, vlan)?;
        let uri = broadcast_uri(spec.isolation, vlan);
        Ok(designed(self.name(), spec, cidr, Some(gateway), uri))
    }
}

/// Public networks (tagged or untagged); addresses come from public IP ranges.
#[derive(Debug, Default, Clone, Copy)]
pub struct PublicGuru;

impl NetworkGuru for PublicGuru {
    fn name(&self) -> &'static str {
        "Public"
    }
    fn claims(&self) -> &'static [(IsolationMethod, NetworkTraffic)] {
        &[
            (IsolationMethod::None, NetworkTraffic::Public),
            (IsolationMethod::Vlan, NetworkTraffic::Public),
            (IsolationMethod::Vxlan, NetworkTraffic::Public),
        ]
    }
    fn design(&self, spec: &NetworkSpec) -> Result<DesignedNetwork, GuruError> {
        check_claim(self, spec.isolation, spec.traffic)?;
        if spec.gateway.is_none() {
            return Err(GuruError::Invalid(
                "a public network needs a gateway".into(),
            ));
        }
        let (cidr, gateway) = check_cidr_gateway(spec.cidr, spec.gateway)?;
        let uri = match spec.vlan {
            Some(v) if spec.isolation != IsolationMethod::None => {
                check_vnet(spec.isolation, v)?;
                broadcast_uri(spec.isolation, v)
            }
            _ => Some("vlan://untagged".to_string()),
        };
        Ok(designed(self.name(), spec, cidr, Some(gateway), uri))
    }
}

/// The link-local control network (169.254.0.0/16, no gateway).
#[derive(Debug, Default, Clone, Copy)]
pub struct ControlGuru;

impl NetworkGuru for ControlGuru {
    fn name(&self) -> &'static str {
        "Control"
    }
    fn claims(&self) -> &'static [(IsolationMethod, NetworkTraffic)] {
        &[
            (IsolationMethod::None, NetworkTraffic::Control),
            (IsolationMethod::Vlan, NetworkTraffic::Control),
            (IsolationMethod::Vxlan, NetworkTraffic::Control),
        ]
    }
    fn design(&self, spec: &NetworkSpec) -> Result<DesignedNetwork, GuruError> {
        check_claim(self, spec.isolation, spec.traffic)?;
        if let Some(cidr) = spec.cidr
            && cidr != LINK_LOCAL
        {
            return Err(GuruError::Invalid(format!(
                "the control network is {LINK_LOCAL}, not {cidr}"
            )));
        }
        let mut net = designed(self.name(), spec, LINK_LOCAL, None, None);
        net.isolation = IsolationMethod::None;
        Ok(net)
    }
}

/// Errors building a registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "unknown network guru {0:?} (known: GuestVlan, GuestVxlan, PrivateGateway, Public, Control)"
    )]
    UnknownGuru(String),
    #[error("network gurus {first} and {second} both claim {isolation:?}/{traffic:?} networks")]
    Clash {
        first: &'static str,
        second: &'static str,
        isolation: IsolationMethod,
        traffic: NetworkTraffic,
    },
    #[error("network guru {0} is enabled twice")]
    Duplicate(&'static str),
    #[error("no network guru handles {isolation:?}/{traffic:?} networks")]
    NoGuru {
        isolation: IsolationMethod,
        traffic: NetworkTraffic,
    },
}

/// The names of every built-in guru, in their default order.
pub const ALL_GURUS: [&str; 5] = [
    "GuestVlan",
    "GuestVxlan",
    "PrivateGateway",
    "Public",
    "Control",
];

/// A built-in guru by its configuration name (case-insensitive).
pub fn guru_by_name(name: &str) -> Option<Box<dyn NetworkGuru>> {
    let guru: Box<dyn NetworkGuru> = match name.trim().to_ascii_lowercase().as_str() {
        "guestvlan" => Box::new(GuestVlanGuru),
        "guestvxlan" => Box::new(GuestVxlanGuru),
        "privategateway" => Box::new(PrivateGatewayGuru),
        "public" => Box::new(PublicGuru),
        "control" => Box::new(ControlGuru),
        _ => return None,
    };
    Some(guru)
}

/// The enabled gurus, at most one per (isolation method, traffic type).
pub struct GuruRegistry {
    gurus: Vec<Box<dyn NetworkGuru>>,
    by_claim: HashMap<(IsolationMethod, NetworkTraffic), usize>,
}

impl fmt::Debug for GuruRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuruRegistry")
            .field("gurus", &self.names())
            .finish()
    }
}

impl GuruRegistry {
    /// Builds a registry; refuses two gurus that claim the same pair.
    pub fn new(gurus: Vec<Box<dyn NetworkGuru>>) -> Result<Self, RegistryError> {
        let mut by_claim: HashMap<(IsolationMethod, NetworkTraffic), usize> = HashMap::new();
        for (i, guru) in gurus.iter().enumerate() {
            if gurus[..i].iter().any(|g| g.name() == guru.name()) {
                return Err(RegistryError::Duplicate(guru.name()));
            }
            // Use can_handle over every pair, so a guru whose can_handle says
            // more than its claims is caught too.
            for isolation in IsolationMethod::ALL {
                for traffic in [
                    NetworkTraffic::Guest,
                    NetworkTraffic::Public,
                    NetworkTraffic::Private,
                    NetworkTraffic::Control,
                ] {
                    if !guru.can_handle(isolation, traffic) {
                        continue;
                    }
                    if let Some(&other) = by_claim.get(&(isolation, traffic)) {
                        return Err(RegistryError::Clash {
                            first: gurus[other].name(),
                            second: guru.name(),
                            isolation,
                            traffic,
                        });
                    }
                    by_claim.insert((isolation, traffic), i);
                }
            }
        }
        Ok(GuruRegistry { gurus, by_claim })
    }

    /// Builds a registry of the built-in gurus with these names.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<Self, RegistryError> {
        let gurus = names
            .iter()
            .map(|n| {
                guru_by_name(n.as_ref())
                    .ok_or_else(|| RegistryError::UnknownGuru(n.as_ref().to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(gurus)
    }

    /// Every built-in guru.
    pub fn all() -> Self {
        Self::from_names(&ALL_GURUS).expect("the built-in gurus do not clash")
    }

    /// The one guru for this pair.
    pub fn choose(
        &self,
        isolation: IsolationMethod,
        traffic: NetworkTraffic,
    ) -> Result<&dyn NetworkGuru, RegistryError> {
        self.by_claim
            .get(&(isolation, traffic))
            .map(|&i| self.gurus[i].as_ref())
            .ok_or(RegistryError::NoGuru { isolation, traffic })
    }

    /// The guru with this name (as stored on a designed network).
    pub fn by_name(&self, name: &str) -> Option<&dyn NetworkGuru> {
        self.gurus
            .iter()
            .find(|g| g.name() == name)
            .map(|g| g.as_ref())
    }

    /// The names of the enabled gurus.
    pub fn names(&self) -> Vec<&'static str> {
        self.gurus.iter().map(|g| g.name()).collect()
    }
}

impl Default for GuruRegistry {
    fn default() -> Self {
        Self::all()
    }
}
