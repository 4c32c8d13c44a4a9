//! The built-in network gurus: guest networks on VLANs and on VXLAN, private
//! gateways, the public network and the link-local control network.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::*;

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

/// Guest tiers of one isolation method: the same design and vnet
/// allocation, under the name and claim of that method (CloudStack has a
/// guru per method; so does the registry).
#[derive(Debug, Clone, Copy)]
pub struct GuestGuru {
    name: &'static str,
    claims: &'static [(IsolationMethod, NetworkTraffic)],
}

/// Guest tiers on VLAN-isolated physical networks (`vlan://N`).
pub const GUEST_VLAN_GURU: GuestGuru = GuestGuru {
    name: "GuestVlan",
    claims: &[(IsolationMethod::Vlan, NetworkTraffic::Guest)],
};

/// Guest tiers on VXLAN-isolated physical networks (`vxlan://N`).
pub const GUEST_VXLAN_GURU: GuestGuru = GuestGuru {
    name: "GuestVxlan",
    claims: &[(IsolationMethod::Vxlan, NetworkTraffic::Guest)],
};

impl NetworkGuru for GuestGuru {
    fn name(&self) -> &'static str {
        self.name
    }
    fn claims(&self) -> &'static [(IsolationMethod, NetworkTraffic)] {
        self.claims
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
