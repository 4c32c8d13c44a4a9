//! Network gurus: they design networks, acquire their vnets when they are
//! implemented, and reserve addresses for NICs. A guru is chosen by the
//! physical network's isolation method and the network's traffic type; the
//! registry refuses two gurus claiming the same pair, so one network can never
//! be claimed by two gurus.
//!
//! This file holds what a guru is (its trait, the allocators it uses and
//! what it designs, implements and reserves) and the checks the gurus
//! share; the five built-in gurus are in [`builtin`], the registry that
//! enables them in [`registry`].
//!
//! Kept whole because it is the guru contract: the types, traits and address helpers every built-in
//! guru shares.

mod builtin;
mod registry;

pub use builtin::{
    ControlGuru, GUEST_VLAN_GURU, GUEST_VXLAN_GURU, GuestGuru, PrivateGatewayGuru, PublicGuru,
};
pub use registry::{ALL_GURUS, GuruRegistry, RegistryError, guru_by_name};

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

pub(in crate::orchestration) const LINK_LOCAL: Ipv4Net =
    match Ipv4Net::new(Ipv4Addr::new(169, 254, 0, 0), 16) {
        Ok(net) => net,
        Err(_) => panic!("169.254.0.0/16 is a valid CIDR"),
    };

/// The link-local control network.
pub fn link_local() -> Ipv4Net {
    LINK_LOCAL
}

pub(in crate::orchestration) fn check_claim(
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
pub(in crate::orchestration) fn check_cidr_gateway(
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

pub(in crate::orchestration) fn check_vnet(
    isolation: IsolationMethod,
    vnet: u32,
) -> Result<(), GuruError> {
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
