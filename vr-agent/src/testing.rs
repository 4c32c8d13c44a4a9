//! Sample desired states shared by tests and benchmarks.

pub mod acls;

use vpc_proto::v1 as pb;

/// The MAC the sample gives NIC `index`.
pub fn mac(index: u32) -> String {
    format!("02:00:00:00:00:{index:02x}")
}

fn nic(index: u32, role: pb::NicRole) -> pb::Nic {
    pb::Nic {
        device_index: index,
        mac_address: mac(index),
        role: role as i32,
        ..Default::default()
    }
}

fn public_ip(ip: &str, index: u32, gateway: &str, source_nat: bool) -> pb::PublicIp {
    pb::PublicIp {
        add: true,
        ip_address: ip.into(),
        prefix_length: 24,
        gateway: gateway.into(),
        device_index: index,
        mac_address: mac(index),
        source_nat,
        private_gateway: index == 4,
        ..Default::default()
    }
}

/// A tier on guest NIC `index` with CIDR `10.1.<index-1>.0/24`.
pub fn tier(index: u32) -> pb::GuestNetwork {
    let n = index - 1;
    pb::GuestNetwork {
        device_index: index,
        mac_address: mac(index),
        network_id: format!("tier-{n}"),
        cidr: format!("10.1.{n}.0/24"),
        gateway: format!("10.1.{n}.1"),
        domain_name: format!("tier{n}.vpc.internal"),
        mtu: 1500,
        ..Default::default()
    }
}

/// An ACL item.
pub fn item(
    number: u32,
    action: pb::AclAction,
    traffic: pb::TrafficType,
    protocol: pb::Protocol,
    cidrs: &[&str],
    ports: Option<(u32, u32)>,
) -> pb::AclItem {
    pb::AclItem {
        number,
        action: action as i32,
        traffic_type: traffic as i32,
        protocol: protocol as i32,
        cidrs: cidrs.iter().map(|c| c.to_string()).collect(),
        start_port: ports.map(|p| p.0),
        end_port: ports.map(|p| p.1),
        ..Default::default()
    }
}

/// A router with a control NIC (eth0), a public NIC (eth1, 203.0.113.0/24),
/// two tiers (eth2 10.1.1.0/24, eth3 10.1.2.0/24), a private gateway (eth4,
/// 172.16.0.10/24) with a static route, ACLs, source NAT, port forwarding,
/// static NAT, a load balancer and DHCP entries.
pub fn sample_config() -> pb::RouterConfig {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    let mut control = nic(0, pb::NicRole::Control);
    control.ip_address = "169.254.3.7".into();
    control.prefix_length = 16;
    pb::RouterConfig {
        router_name: "r-1-VM".into(),
        vpc_id: "vpc-1".into(),
        vpc_cidr: "10.1.0.0/16".into(),
        nics: vec![
            control,
            nic(1, pb::NicRole::Public),
            nic(2, pb::NicRole::Guest),
            nic(3, pb::NicRole::Guest),
            nic(4, pb::NicRole::Private),
        ],
        guest_networks: vec![tier(2), tier(3)],
        public_ips: vec![
            public_ip("203.0.113.10", 1, "203.0.113.1", true),
            public_ip("203.0.113.11", 1, "203.0.113.1", false),
            pb::PublicIp {
                one_to_one_nat: true,
                ..public_ip("203.0.113.12", 1, "203.0.113.1", false)
            },
            public_ip("172.16.0.10", 4, "172.16.0.1", false),
        ],
        source_nat_rules: vec![
            pb::SourceNatRule {
                device_index: 1,
                nat_ip: "203.0.113.10".into(),
                source_cidrs: vec![],
            },
            pb::SourceNatRule {
                device_index: 4,
                nat_ip: "172.16.0.10".into(),
                source_cidrs: vec![],
            },
        ],
        static_routes: vec![pb::StaticRoute {
            cidr: "192.168.50.0/24".into(),
            next_hop: "172.16.0.1".into(),
            gateway_ip: "172.16.0.10".into(),
            id: "route-1".into(),
        }],
        network_acls: vec![
            pb::NetworkAcl {
                device_index: 2,
                mac_address: mac(2),
                acl_id: "acl-web".into(),
                items: vec![
                    item(10, Deny, Ingress, Tcp, &["10.1.2.128/25"], Some((22, 22))),
                    item(
                        20,
                        Allow,
                        Ingress,
                        Tcp,
                        &["10.1.2.0/24", "10.0.0.0/8"],
                        Some((22, 22)),
                    ),
                    item(30, Allow, Ingress, Tcp, &[], Some((80, 80))),
                    item(40, Allow, Ingress, Icmp, &["10.1.0.0/16"], None),
                    item(50, Allow, Egress, All, &["0.0.0.0/0"], None),
                ],
                ..Default::default()
            },
            pb::NetworkAcl {
                device_index: 4,
                mac_address: mac(4),
                private_gateway: true,
                acl_id: "acl-onprem".into(),
                items: vec![
                    item(1, Allow, Ingress, All, &["10.1.0.0/16"], None),
                    item(2, Allow, Egress, All, &[], None),
                ],
                ..Default::default()
            },
        ],
        port_forwarding_rules: vec![
            pb::PortForwardingRule {
                id: "pf-ssh".into(),
                public_ip: "203.0.113.11".into(),
                protocol: Tcp as i32,
                public_start_port: 2222,
                private_ip: "10.1.1.5".into(),
                private_start_port: 22,
                ..Default::default()
            },
            pb::PortForwardingRule {
                id: "pf-range".into(),
                public_ip: "203.0.113.11".into(),
                protocol: Udp as i32,
                public_start_port: 5000,
                public_end_port: 5010,
                private_ip: "10.1.2.5".into(),
                private_start_port: 5000,
                private_end_port: 5010,
                source_cidrs: vec!["198.51.100.0/24".into()],
            },
        ],
        static_nat_rules: vec![pb::StaticNatRule {
            id: "ip-12".into(),
            public_ip: "203.0.113.12".into(),
            private_ip: "10.1.2.6".into(),
        }],
        load_balancer_rules: vec![pb::LoadBalancerRule {
            id: "lb-web".into(),
            name: "web".into(),
            public_ip: "203.0.113.11".into(),
            protocol: Tcp as i32,
            public_port: 80,
            private_port: 8080,
            algorithm: pb::LbAlgorithm::RoundRobin as i32,
            backends: vec![
                pb::LbBackend {
                    ip_address: "10.1.1.5".into(),
                    ..Default::default()
                },
                pb::LbBackend {
                    ip_address: "10.1.2.5".into(),
                    port: 8081,
                    ..Default::default()
                },
            ],
            ..Default::default()
        }],
        dhcp: vec![pb::TierDhcp {
            device_index: 2,
            entries: vec![pb::DhcpEntry {
                mac_address: "02:00:00:00:aa:05".into(),
                ip_address: "10.1.1.5".into(),
                hostname: "web-1".into(),
                default_gateway: true,
                ..Default::default()
            }],
        }],
        vm_data: Vec::new(),
        vpn: None,
    }
}
