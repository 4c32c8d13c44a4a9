//! Pure conversions from the views to the agent protocol, and the builder of a
//! router's whole configuration.
//!
//! Kept whole because `router_config` builds the whole configuration from the same conversions the
//! element's pushes use.

use std::collections::BTreeSet;
use std::net::IpAddr;

use vpc_proto::v1 as pb;

use super::element::ElementError;
use super::model::{
    AclAction, AclItemView, AclListView, AclProtocol, AclTraffic, DhcpEntryView, L4Protocol,
    LbAlgorithm, LbRuleView, NicRole, PortForwardView, PrivateGatewayView, PublicIpView,
    RouterNicView, RouterState, StaticNatView, StaticRouteView, StickinessMethod, StickinessView,
    TierView, VmDataView, VpcView, VpnView,
};

/// A router NIC.
pub fn nic(view: &RouterNicView) -> pb::Nic {
    let control = view.role == NicRole::Control;
    pb::Nic {
        device_index: view.device_index,
        mac_address: view.mac.clone(),
        role: view.role.to_proto() as i32,
        mtu: view.mtu,
        network_id: view.network_id.to_string(),
        ip_address: match (control, view.ip) {
            (true, Some(ip)) => ip.to_string(),
            _ => String::new(),
        },
        prefix_length: if control { u32::from(view.prefix) } else { 0 },
    }
}

/// The router's NIC on a tier.
pub fn tier_nic_view(tier: &TierView) -> RouterNicView {
    RouterNicView {
        device_index: tier.device_index,
        mac: tier.mac.clone(),
        role: NicRole::Guest,
        network_id: tier.id,
        ip: Some(IpAddr::V4(tier.gateway)),
        prefix: tier.prefix(),
        gateway: None,
        mtu: tier.mtu,
        broadcast_uri: tier.broadcast_uri.clone(),
    }
}

/// The router's NIC on a private gateway's network.
pub fn gateway_nic_view(gateway: &PrivateGatewayView) -> RouterNicView {
    RouterNicView {
        device_index: gateway.device_index,
        mac: gateway.mac.clone(),
        role: NicRole::Private,
        network_id: gateway.network_id,
        ip: Some(IpAddr::V4(gateway.ip)),
        prefix: gateway.prefix,
        gateway: Some(IpAddr::V4(gateway.gateway)),
        mtu: gateway.mtu,
        broadcast_uri: Some(gateway.vlan.clone()),
    }
}

/// A tier as the agent serves it.
pub fn guest_network(tier: &TierView) -> pb::GuestNetwork {
    pb::GuestNetwork {
        device_index: tier.device_index,
        mac_address: tier.mac.clone(),
        network_id: tier.id.to_string(),
        cidr: tier.cidr.to_string(),
        gateway: tier.gateway.to_string(),
        domain_name: tier.domain.clone(),
        dns_servers: tier.dns_servers.clone(),
        mtu: tier.mtu,
        ..Default::default()
    }
}

/// One ACL item.
pub fn acl_item(item: &AclItemView) -> pb::AclItem {
    let (protocol, protocol_number) = match item.protocol {
        AclProtocol::All => (pb::Protocol::All, 0),
        AclProtocol::Tcp => (pb::Protocol::Tcp, 0),
        AclProtocol::Udp => (pb::Protocol::Udp, 0),
        AclProtocol::Icmp => (pb::Protocol::Icmp, 0),
        AclProtocol::Number(n) => (pb::Protocol::Number, u32::from(n)),
    };
    let ports = matches!(item.protocol, AclProtocol::Tcp | AclProtocol::Udp);
    let icmp = item.protocol == AclProtocol::Icmp;
    pb::AclItem {
        number: item.number,
        action: match item.action {
            AclAction::Allow => pb::AclAction::Allow,
            AclAction::Deny => pb::AclAction::Deny,
        } as i32,
        traffic_type: match item.traffic {
            AclTraffic::Ingress => pb::TrafficType::Ingress,
            AclTraffic::Egress => pb::TrafficType::Egress,
        } as i32,
        protocol: protocol as i32,
        protocol_number,
        cidrs: item.cidrs.clone(),
        start_port: item.start_port.filter(|_| ports).map(u32::from),
        end_port: item
            .end_port
            .or(item.start_port)
            .filter(|_| ports && item.start_port.is_some())
            .map(u32::from),
        icmp_type: item.icmp_type.filter(|_| icmp),
        icmp_code: item.icmp_code.filter(|_| icmp),
        id: item.id.to_string(),
    }
}

/// The live items of a list (states Add/Active), sorted by number. Refuses
/// two live items with one number.
pub fn acl_items(list: &AclListView) -> Result<Vec<pb::AclItem>, ElementError> {
    let mut live: Vec<&AclItemView> = list.items.iter().filter(|i| i.state.is_live()).collect();
    live.sort_by_key(|i| i.number);
    for item in &live {
        if let (Some(start), Some(end)) = (item.start_port, item.end_port)
            && start > end
        {
            return Err(ElementError::Invalid(format!(
                "ACL item {} of list {}: start port {start} is above end port {end}",
                item.number, list.id
            )));
        }
    }
    if let Some(pair) = live.windows(2).find(|w| w[0].number == w[1].number) {
        return Err(ElementError::Invalid(format!(
            "ACL list {} has two items numbered {}",
            list.id, pair[0].number
        )));
    }
    Ok(live.into_iter().map(acl_item).collect())
}

/// The ACL of a tier's NIC; no list means an empty item list.
pub fn tier_acl(
    tier: &TierView,
    list: Option<&AclListView>,
) -> Result<pb::NetworkAcl, ElementError> {
    Ok(pb::NetworkAcl {
        device_index: tier.device_index,
        mac_address: tier.mac.clone(),
        private_gateway: false,
        acl_id: list.map(|l| l.id.to_string()).unwrap_or_default(),
        acl_name: list.map(|l| l.name.clone()).unwrap_or_default(),
        items: list.map(acl_items).transpose()?.unwrap_or_default(),
    })
}

/// The ACL of a private gateway's NIC.
pub fn gateway_acl(
    gateway: &PrivateGatewayView,
    list: Option<&AclListView>,
) -> Result<pb::NetworkAcl, ElementError> {
    Ok(pb::NetworkAcl {
        device_index: gateway.device_index,
        mac_address: gateway.mac.clone(),
        private_gateway: true,
        acl_id: list.map(|l| l.id.to_string()).unwrap_or_default(),
        acl_name: list.map(|l| l.name.clone()).unwrap_or_default(),
        items: list.map(acl_items).transpose()?.unwrap_or_default(),
    })
}

/// A public IP.
pub fn public_ip(ip: &PublicIpView) -> pb::PublicIp {
    pb::PublicIp {
        add: ip.add,
        ip_address: ip.address.to_string(),
        prefix_length: u32::from(ip.prefix),
        gateway: ip.gateway.to_string(),
        device_index: ip.nic_index,
        mac_address: ip.mac.clone(),
        source_nat: ip.source_nat,
        one_to_one_nat: ip.one_to_one_nat,
        private_gateway: ip.private_gateway,
        vlan: ip.vlan.clone(),
    }
}

/// A private gateway's own address on the router.
pub fn gateway_ip(gateway: &PrivateGatewayView, add: bool) -> pb::PublicIp {
    pb::PublicIp {
        add,
        ip_address: gateway.ip.to_string(),
        prefix_length: u32::from(gateway.prefix),
        gateway: gateway.gateway.to_string(),
        device_index: gateway.device_index,
        mac_address: gateway.mac.clone(),
        source_nat: false,
        one_to_one_nat: false,
        private_gateway: true,
        vlan: gateway.vlan.clone(),
    }
}

/// The VPC's source NAT rules: the source-NAT public IP on its NIC, and each
/// private gateway that supports source NAT to its own address.
pub fn source_nat_rules(
    public_ips: &[PublicIpView],
    gateways: &[PrivateGatewayView],
) -> Vec<pb::SourceNatRule> {
    let public = public_ips
        .iter()
        .filter(|ip| ip.add && ip.source_nat && !ip.private_gateway)
        .map(|ip| pb::SourceNatRule {
            device_index: ip.nic_index,
            nat_ip: ip.address.to_string(),
            source_cidrs: vec![],
        });
    let private = gateways
        .iter()
        .filter(|g| g.source_nat_supported)
        .map(|g| pb::SourceNatRule {
            device_index: g.device_index,
            nat_ip: g.ip.to_string(),
            source_cidrs: vec![],
        });
    public.chain(private).collect()
}

/// The live static routes (Add/Active).
pub fn static_routes(routes: &[StaticRouteView]) -> Vec<pb::StaticRoute> {
    routes
        .iter()
        .filter(|r| r.state.is_live())
        .map(|r| pb::StaticRoute {
            cidr: r.cidr.to_string(),
            next_hop: r.next_hop.to_string(),
            gateway_ip: r.gateway_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            id: r.id.to_string(),
        })
        .collect()
}

/// The live port forwarding rules.
/// Refuses a port forwarding rule whose ranges are reversed or of unequal
/// length.
pub fn check_port_forward(rule: &PortForwardView) -> Result<(), ElementError> {
    let public = (rule.public_start_port, rule.public_end_port);
    let private = (rule.private_start_port, rule.private_end_port);
    if public.0 == 0 || private.0 == 0 || public.0 > public.1 || private.0 > private.1 {
        return Err(ElementError::Invalid(format!(
            "port forwarding rule {}: port ranges {}-{} -> {}-{} are invalid",
            rule.id, public.0, public.1, private.0, private.1
        )));
    }
    if public.1 - public.0 != private.1 - private.0 {
        return Err(ElementError::Invalid(format!(
            "port forwarding rule {}: public range {}-{} and private range {}-{} differ in length",
            rule.id, public.0, public.1, private.0, private.1
        )));
    }
    Ok(())
}

/// The live port forwarding rules; refuses invalid port ranges.
pub fn port_forwards(
    rules: &[PortForwardView],
) -> Result<Vec<pb::PortForwardingRule>, ElementError> {
    rules
        .iter()
        .filter(|r| r.state.is_live())
        .map(|r| {
            check_port_forward(r)?;
            Ok(pb::PortForwardingRule {
                id: r.id.to_string(),
                public_ip: r.public_ip.to_string(),
                protocol: r.protocol.to_proto(),
                public_start_port: u32::from(r.public_start_port),
                public_end_port: u32::from(r.public_end_port),
                private_ip: r.private_ip.to_string(),
                private_start_port: u32::from(r.private_start_port),
                private_end_port: u32::from(r.private_end_port),
                source_cidrs: r.source_cidrs.clone(),
            })
        })
        .collect()
}

/// The live static NAT mappings.
pub fn static_nats(rules: &[StaticNatView]) -> Vec<pb::StaticNatRule> {
    rules
        .iter()
        .filter(|r| r.state.is_live())
        .map(|r| pb::StaticNatRule {
            id: r.id.to_string(),
            public_ip: r.public_ip.to_string(),
            private_ip: r.private_ip.to_string(),
        })
        .collect()
}

/// Refuses what the VPC router cannot balance: leastconn and cookie
/// stickiness need its HAProxy, which proxies TCP only.
pub fn check_lb_rule(rule: &LbRuleView) -> Result<(), ElementError> {
    if rule.protocol == L4Protocol::Udp {
        if rule.algorithm == LbAlgorithm::LeastConn {
            return Err(ElementError::Unsupported(format!(
                "load balancer rule {} balances udp with leastconn, which the VPC virtual \
                 router serves for tcp only",
                rule.name
            )));
        }
        if rule.stickiness.as_ref().is_some_and(|s| s.needs_http()) {
            return Err(ElementError::Unsupported(format!(
                "load balancer rule {} balances udp with cookie stickiness, which needs http",
                rule.name
            )));
        }
    }
    Ok(())
}

/// A rule's stickiness policy as the agent takes it.
fn stickiness(policy: &StickinessView) -> pb::LbStickiness {
    let method = match policy.method {
        StickinessMethod::LbCookie => pb::LbStickinessMethod::LbCookie,
        StickinessMethod::AppCookie => pb::LbStickinessMethod::AppCookie,
        StickinessMethod::SourceBased => pb::LbStickinessMethod::SourceBased,
    };
    pb::LbStickiness {
        method: method as i32,
        params: policy.params.iter().cloned().collect(),
    }
}

/// The live load balancer rules; refuses leastconn.
pub fn lb_rules(rules: &[LbRuleView]) -> Result<Vec<pb::LoadBalancerRule>, ElementError> {
    rules
        .iter()
        .filter(|r| r.state.is_live())
        .map(|r| {
            check_lb_rule(r)?;
            Ok(pb::LoadBalancerRule {
                id: r.id.to_string(),
                name: r.name.clone(),
                public_ip: r.public_ip.to_string(),
                protocol: r.protocol.to_proto(),
                public_port: u32::from(r.public_port),
                private_port: u32::from(r.private_port),
                algorithm: match r.algorithm {
                    LbAlgorithm::RoundRobin => pb::LbAlgorithm::RoundRobin,
                    LbAlgorithm::Source => pb::LbAlgorithm::Source,
                    LbAlgorithm::LeastConn => pb::LbAlgorithm::LeastConn,
                } as i32,
                backends: r
                    .backends
                    .iter()
                    .map(|b| pb::LbBackend {
                        ip_address: b.ip.to_string(),
                        port: b.port.map(u32::from).unwrap_or(0),
                        vm_id: b.vm_id.to_string(),
                    })
                    .collect(),
                source_cidrs: r.source_cidrs.clone(),
                stickiness: r.stickiness.as_ref().map(stickiness),
            })
        })
        .collect()
}

/// The DHCP leases of a tier.
pub fn tier_dhcp(tier: &TierView, entries: &[DhcpEntryView]) -> pb::TierDhcp {
    pb::TierDhcp {
        device_index: tier.device_index,
        entries: entries
            .iter()
            .map(|e| pb::DhcpEntry {
                mac_address: e.mac.clone(),
                ip_address: e.ip.to_string(),
                hostname: e.hostname.clone(),
                default_gateway: e.default_gateway,
                ip6_address: e.ip6.clone().unwrap_or_default(),
                duid: e.duid.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

/// The VPC's source NAT address: the public address CloudStack's metadata
/// gives a VPC's VMs (`public-ipv4`, `public-hostname`).
pub fn source_nat_ip(state: &RouterState) -> Option<std::net::Ipv4Addr> {
    state
        .public_ips
        .iter()
        .find(|p| p.source_nat && !p.private_gateway)
        .map(|p| p.address)
}

/// What a tier's VMs read from the router, with the metadata files in
/// CloudStack's order (`generateVmData`): service-offering,
/// availability-zone, local-ipv4, local-hostname, public-ipv4,
/// public-hostname, instance-id, vm-id (public-keys follows, from its own
/// field), cloud-identifier, hypervisor-host-name, then the values of the
/// registered user data's params (`userdatadetails`), by name. An empty
/// value is neither listed nor served.
pub fn tier_vm_data(
    tier: &TierView,
    vms: &[VmDataView],
    public_ip: Option<std::net::Ipv4Addr>,
) -> pb::TierVmData {
    let entry = |name: &str, value: String| pb::MetadataEntry {
        name: name.into(),
        value,
    };
    let public = public_ip.map(|ip| ip.to_string()).unwrap_or_default();
    pb::TierVmData {
        device_index: tier.device_index,
        vms: vms
            .iter()
            .map(|vm| pb::VmData {
                mac_address: vm.mac.clone(),
                ip_address: vm.ip.to_string(),
                user_data: vm.user_data.clone(),
                metadata: vec![
                    entry("service-offering", vm.service_offering.clone()),
                    entry("availability-zone", vm.zone_name.clone()),
                    entry("local-ipv4", vm.ip.to_string()),
                    entry("local-hostname", vm.hostname.clone()),
                    entry("public-ipv4", public.clone()),
                    entry("public-hostname", public.clone()),
                    entry("instance-id", vm.vm_id.to_string()),
                    entry("vm-id", vm.vm_id.to_string()),
                    entry("cloud-identifier", vm.cloud_identifier.clone()),
                    entry("hypervisor-host-name", vm.hypervisor_host_name.clone()),
                ]
                .into_iter()
                .chain(vm.details.iter().map(|(k, v)| entry(k, v.clone())))
                .collect(),
                public_keys: vm.public_keys.clone(),
                password: vm.password.clone(),
            })
            .collect(),
    }
}

fn list_of(
    state: &RouterState,
    id: Option<uuid::Uuid>,
) -> Result<Option<&AclListView>, ElementError> {
    match id {
        None => Ok(None),
        Some(id) => state
            .acl_list(id)
            .map(Some)
            .ok_or_else(|| ElementError::Invalid(format!("ACL list {id} is not in the state"))),
    }
}

/// The router's whole desired configuration.
///
/// NICs are the router's NICs plus the tier and private gateway NICs it does
/// not list yet, by device index. Public IPs are the associated ones (private
/// gateway addresses come from the gateways, not from `public_ips`).
pub fn router_config(state: &RouterState) -> Result<pb::RouterConfig, ElementError> {
    let mut nic_views: Vec<RouterNicView> = state.router.nics.clone();
    let extra = state
        .tiers
        .iter()
        .map(tier_nic_view)
        .chain(state.private_gateways.iter().map(gateway_nic_view));
    for view in extra {
        if !nic_views
            .iter()
            .any(|n| n.device_index == view.device_index)
        {
            nic_views.push(view);
        }
    }
    nic_views.sort_by_key(|n| n.device_index);
    let mut seen = BTreeSet::new();
    for n in &nic_views {
        if !seen.insert(n.device_index) {
            return Err(ElementError::Invalid(format!(
                "router {} has two NICs with device index {}",
                state.router.name, n.device_index
            )));
        }
    }

    let mut network_acls = Vec::new();
    for tier in &state.tiers {
        if let Some(list) = list_of(state, tier.acl_id)? {
            network_acls.push(tier_acl(tier, Some(list))?);
        }
    }
    for gateway in &state.private_gateways {
        if let Some(list) = list_of(state, gateway.acl_id)? {
            network_acls.push(gateway_acl(gateway, Some(list))?);
        }
    }

    let public_ips = state
        .public_ips
        .iter()
        .filter(|ip| ip.add && !ip.private_gateway)
        .map(public_ip)
        .chain(state.private_gateways.iter().map(|g| gateway_ip(g, true)))
        .collect();

    let dhcp = state
        .tiers
        .iter()
        .map(|t| (t, state.dhcp_of(t.id)))
        .filter(|(_, entries)| !entries.is_empty())
        .map(|(t, entries)| tier_dhcp(t, entries))
        .collect();

    Ok(pb::RouterConfig {
        router_name: state.router.name.clone(),
        vpc_id: state.vpc.id.to_string(),
        // The router gets the network part: createVPC keeps host bits as given.
        vpc_cidr: state.vpc.cidr.trunc().to_string(),
        nics: nic_views.iter().map(nic).collect(),
        guest_networks: state.tiers.iter().map(guest_network).collect(),
        public_ips,
        source_nat_rules: source_nat_rules(&state.public_ips, &state.private_gateways),
        static_routes: static_routes(&state.static_routes),
        network_acls,
        port_forwarding_rules: port_forwards(&state.port_forwards)?,
        static_nat_rules: static_nats(&state.static_nats),
        load_balancer_rules: lb_rules(&state.lb_rules)?,
        dhcp,
        vm_data: state
            .tiers
            .iter()
            .map(|t| (t, state.vm_data_of(t.id)))
            .filter(|(_, vms)| !vms.is_empty())
            .map(|(t, vms)| tier_vm_data(t, vms, source_nat_ip(state)))
            .collect(),
        vpn: state.vpn.as_ref().map(|v| vpn(&state.vpc, v)),
    })
}

/// The router's VPN: each connection's local side is the VPC's super CIDR
/// (CloudStack's `leftsubnet`), its remote side the peer's subnets.
pub fn vpn(vpc: &VpcView, v: &VpnView) -> pb::Vpn {
    pb::Vpn {
        public_ip: v.public_ip.to_string(),
        connections: v
            .connections
            .iter()
            .map(|c| pb::VpnConnection {
                id: c.id.to_string(),
                peer_address: c.peer.clone(),
                local_cidrs: vec![vpc.cidr.trunc().to_string()],
                remote_cidrs: c
                    .remote_cidrs
                    .iter()
                    .map(|n| n.trunc().to_string())
                    .collect(),
                psk: c.psk.clone(),
                ike_proposals: c.ike_proposals.clone(),
                esp_proposals: c.esp_proposals.clone(),
                ike_lifetime_seconds: c.ike_lifetime,
                esp_lifetime_seconds: c.esp_lifetime,
                dpd: c.dpd,
                ike_version: c.ike_version.clone(),
                passive: c.passive,
                force_encap: c.force_encap,
                split_connections: c.split_connections,
                reset_serial: c.reset_serial,
            })
            .collect(),
    }
}
