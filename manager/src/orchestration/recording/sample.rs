//! Sample views shared by tests: a VPC 10.1.0.0/16 whose router `r-1-VM`
//! (generation 7) has a control NIC (eth0), a public NIC (eth1), two tiers
//! `web` (eth2, 10.1.1.0/24) and `app` (eth3, 10.1.2.0/24) that both use ACL
//! list `acl-web`, and a private gateway (eth4, 172.16.0.10/24, VLAN 100,
//! source NAT) using list `acl-onprem`.

use std::net::{IpAddr, Ipv4Addr};

use uuid::Uuid;

use crate::orchestration::model::*;

pub const VPC: Uuid = Uuid::from_u128(0x100);
pub const ZONE: Uuid = Uuid::from_u128(0x10);
pub const ROUTER: Uuid = Uuid::from_u128(0x200);
pub const WEB: Uuid = Uuid::from_u128(0x302);
pub const APP: Uuid = Uuid::from_u128(0x303);
pub const PUBLIC_NET: Uuid = Uuid::from_u128(0x301);
pub const CONTROL_NET: Uuid = Uuid::from_u128(0x300);
pub const GATEWAY: Uuid = Uuid::from_u128(0x400);
pub const GATEWAY_NET: Uuid = Uuid::from_u128(0x304);
pub const ACL_WEB: Uuid = Uuid::from_u128(0x500);
pub const ACL_ONPREM: Uuid = Uuid::from_u128(0x501);

/// The MAC of router NIC `index`.
pub fn mac(index: u32) -> String {
    format!("02:00:00:00:00:{index:02x}")
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("sample address")
}

pub fn router() -> RouterView {
    RouterView {
        id: ROUTER,
        name: "r-1-VM".into(),
        zone_id: ZONE,
        generation: 7,
        nics: vec![
            RouterNicView {
                device_index: 0,
                mac: mac(0),
                role: NicRole::Control,
                network_id: CONTROL_NET,
                ip: Some(IpAddr::V4(ip("169.254.3.7"))),
                prefix: 16,
                gateway: None,
                mtu: 0,
                broadcast_uri: None,
            },
            RouterNicView {
                device_index: 1,
                mac: mac(1),
                role: NicRole::Public,
                network_id: PUBLIC_NET,
                ip: Some(IpAddr::V4(ip("203.0.113.10"))),
                prefix: 24,
                gateway: Some(IpAddr::V4(ip("203.0.113.1"))),
                mtu: 1500,
                broadcast_uri: Some("untagged".into()),
            },
        ],
        host: None,
    }
}

pub fn tier(id: Uuid, name: &str, index: u32) -> TierView {
    let n = index - 1;
    TierView {
        id,
        name: name.into(),
        cidr: format!("10.1.{n}.0/24").parse().expect("sample cidr"),
        gateway: ip(&format!("10.1.{n}.1")),
        domain: format!("{name}.vpc.internal"),
        dns_servers: vec!["192.0.2.53".into()],
        mtu: 1450,
        broadcast_uri: Some(format!("vxlan://{}", 5000 + index)),
        acl_id: Some(ACL_WEB),
        device_index: index,
        mac: mac(index),
    }
}

pub fn web() -> TierView {
    tier(WEB, "web", 2)
}

pub fn app() -> TierView {
    tier(APP, "app", 3)
}

pub fn acl_item(
    n: u128,
    number: u32,
    action: AclAction,
    traffic: AclTraffic,
    protocol: AclProtocol,
    cidrs: &[&str],
    ports: Option<(u16, u16)>,
) -> AclItemView {
    AclItemView {
        id: Uuid::from_u128(0x5000 + n),
        number,
        action,
        traffic,
        protocol,
        cidrs: cidrs.iter().map(|c| c.to_string()).collect(),
        start_port: ports.map(|p| p.0),
        end_port: ports.map(|p| p.1),
        icmp_type: None,
        icmp_code: None,
        state: RuleState::Active,
    }
}

/// `acl-web`, stored out of order: 30, 10, 20 and a revoked 40.
pub fn acl_web() -> AclListView {
    use AclAction::*;
    use AclTraffic::*;
    let mut revoked = acl_item(4, 40, Deny, Ingress, AclProtocol::All, &[], None);
    revoked.state = RuleState::Revoke;
    AclListView {
        id: ACL_WEB,
        name: "acl-web".into(),
        items: vec![
            acl_item(3, 30, Allow, Egress, AclProtocol::All, &["0.0.0.0/0"], None),
            acl_item(
                1,
                10,
                Allow,
                Ingress,
                AclProtocol::Tcp,
                &["0.0.0.0/0"],
                Some((80, 80)),
            ),
            acl_item(
                2,
                20,
                Deny,
                Ingress,
                AclProtocol::Tcp,
                &["10.0.0.0/8"],
                Some((22, 22)),
            ),
            revoked,
        ],
    }
}

pub fn acl_onprem() -> AclListView {
    AclListView {
        id: ACL_ONPREM,
        name: "acl-onprem".into(),
        items: vec![acl_item(
            10,
            1,
            AclAction::Allow,
            AclTraffic::Ingress,
            AclProtocol::All,
            &["10.1.0.0/16"],
            None,
        )],
    }
}

pub fn private_gateway() -> PrivateGatewayView {
    PrivateGatewayView {
        id: GATEWAY,
        network_id: GATEWAY_NET,
        ip: ip("172.16.0.10"),
        prefix: 24,
        gateway: ip("172.16.0.1"),
        vlan: "vlan://100".into(),
        source_nat_supported: true,
        acl_id: Some(ACL_ONPREM),
        device_index: 4,
        mac: mac(4),
        mtu: 1500,
    }
}

pub fn public_ip(n: u128, address: &str, source_nat: bool, one_to_one_nat: bool) -> PublicIpView {
    PublicIpView {
        id: Uuid::from_u128(0x600 + n),
        address: ip(address),
        prefix: 24,
        gateway: ip("203.0.113.1"),
        nic_index: 1,
        mac: mac(1),
        source_nat,
        one_to_one_nat,
        private_gateway: false,
        vlan: "vlan://untagged".into(),
        add: true,
    }
}

pub fn public_ips() -> Vec<PublicIpView> {
    vec![
        public_ip(10, "203.0.113.10", true, false),
        public_ip(11, "203.0.113.11", false, false),
        public_ip(12, "203.0.113.12", false, true),
    ]
}

pub fn route(n: u128, cidr: &str, state: RuleState) -> StaticRouteView {
    StaticRouteView {
        id: Uuid::from_u128(0x700 + n),
        cidr: cidr.parse().expect("sample route"),
        next_hop: ip("172.16.0.1"),
        gateway_ip: Some(ip("172.16.0.10")),
        state,
    }
}

pub fn routes() -> Vec<StaticRouteView> {
    vec![
        route(1, "192.168.50.0/24", RuleState::Active),
        route(2, "192.168.60.0/24", RuleState::Revoke),
        route(3, "192.168.70.0/24", RuleState::Add),
    ]
}

pub fn port_forward() -> PortForwardView {
    PortForwardView {
        id: Uuid::from_u128(0x800),
        public_ip: ip("203.0.113.11"),
        protocol: L4Protocol::Tcp,
        public_start_port: 2222,
        public_end_port: 2222,
        private_ip: ip("10.1.1.5"),
        private_start_port: 22,
        private_end_port: 22,
        source_cidrs: vec![],
        state: RuleState::Active,
    }
}

pub fn static_nat() -> StaticNatView {
    StaticNatView {
        id: Uuid::from_u128(0x612),
        public_ip: ip("203.0.113.12"),
        private_ip: ip("10.1.2.6"),
        state: RuleState::Active,
    }
}

pub fn lb_rule(algorithm: LbAlgorithm) -> LbRuleView {
    LbRuleView {
        id: Uuid::from_u128(0x900),
        name: "web".into(),
        public_ip: ip("203.0.113.11"),
        protocol: L4Protocol::Tcp,
        public_port: 80,
        private_port: 8080,
        algorithm,
        backends: vec![
            LbBackendView {
                vm_id: Uuid::from_u128(0xa01),
                ip: ip("10.1.1.5"),
                port: None,
            },
            LbBackendView {
                vm_id: Uuid::from_u128(0xa02),
                ip: ip("10.1.2.5"),
                port: Some(8081),
            },
        ],
        source_cidrs: vec![],
        state: RuleState::Active,
        stickiness: None,
    }
}

pub fn dhcp_entry(mac: &str, address: &str, hostname: &str) -> DhcpEntryView {
    DhcpEntryView {
        mac: mac.into(),
        ip: ip(address),
        hostname: hostname.into(),
        default_gateway: true,
        ip6: None,
        duid: None,
    }
}

/// The whole sample.
pub fn state() -> RouterState {
    RouterState {
        vpc: VpcView {
            id: VPC,
            name: "vpc-1".into(),
            cidr: "10.1.0.0/16".parse().expect("sample vpc"),
            network_domain: "vpc.internal".into(),
            zone_id: Uuid::from_u128(0x1),
        },
        router: router(),
        tiers: vec![web(), app()],
        public_ips: public_ips(),
        private_gateways: vec![private_gateway()],
        acl_lists: vec![acl_web(), acl_onprem()],
        static_routes: routes(),
        port_forwards: vec![port_forward()],
        static_nats: vec![static_nat()],
        lb_rules: vec![lb_rule(LbAlgorithm::RoundRobin)],
        vm_data: Vec::new(),
        vpn: None,
        dhcp: vec![TierDhcpView {
            tier_id: WEB,
            entries: vec![dhcp_entry("02:00:00:00:aa:05", "10.1.1.5", "web-1")],
        }],
    }
}
