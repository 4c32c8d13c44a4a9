//! Unit tests of the element against the recording doubles, and of the gurus.
//!
//! Kept whole because it is the layer's one unit-test module: its cases share the doubles and
//! samples set up here.

use std::net::Ipv4Addr;
use std::sync::Arc;

use uuid::Uuid;
use vpc_proto::v1 as pb;

use super::agent::{
    AgentClient, AgentCommand, AgentEndpoint, AgentError, AgentReply, RouterDriver, SharedAgent,
    SharedDriver,
};
use super::element::*;
use super::guru::*;
use super::model::*;
use super::recording::sample::{self, mac};
use super::recording::*;
use super::{PluginError, Plugins};

type Element = RecordedElement;

fn element() -> Element {
    RecordedElement::new(RecordingAgentClient::new(), RecordingDriver::new())
}

fn pb_item(
    id: u128,
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
        id: Uuid::from_u128(0x5000 + id).to_string(),
        ..Default::default()
    }
}

/// `acl-web` as the agent must receive it: sorted, without the revoked item.
fn web_items() -> Vec<pb::AclItem> {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    vec![
        pb_item(1, 10, Allow, Ingress, Tcp, &["0.0.0.0/0"], Some((80, 80))),
        pb_item(2, 20, Deny, Ingress, Tcp, &["10.0.0.0/8"], Some((22, 22))),
        pb_item(3, 30, Allow, Egress, All, &["0.0.0.0/0"], None),
    ]
}

fn set_acl(
    generation: u64,
    index: u32,
    private_gateway: bool,
    list: &AclListView,
    items: Vec<pb::AclItem>,
) -> AgentCommand {
    AgentCommand::SetNetworkAcl(pb::SetNetworkAclRequest {
        generation,
        acl: Some(pb::NetworkAcl {
            device_index: index,
            mac_address: mac(index),
            private_gateway,
            acl_id: list.id.to_string(),
            acl_name: list.name.clone(),
            items,
        }),
    })
}

#[tokio::test]
async fn implementing_a_tier_plugs_sets_up_and_applies_its_acl() {
    let e = element();
    let router = sample::router();
    let tier = sample::web();
    e.implement(&router, 8, &tier, Some(&sample::acl_web()))
        .await
        .unwrap();
    assert_eq!(
        e.driver().calls(),
        vec![DriverCall::PlugNic("r-1-VM".into(), 2, mac(2))]
    );
    assert_eq!(
        e.agent().commands(),
        vec![
            AgentCommand::PlugNic(pb::PlugNicRequest {
                generation: 8,
                nic: Some(pb::Nic {
                    device_index: 2,
                    mac_address: mac(2),
                    role: pb::NicRole::Guest as i32,
                    mtu: 1450,
                    network_id: sample::WEB.to_string(),
                    ip_address: String::new(),
                    prefix_length: 0,
                }),
            }),
            AgentCommand::SetupGuestNetwork(pb::SetupGuestNetworkRequest {
                generation: 8,
                network: Some(pb::GuestNetwork {
                    device_index: 2,
                    mac_address: mac(2),
                    network_id: sample::WEB.to_string(),
                    cidr: "10.1.1.0/24".into(),
                    gateway: "10.1.1.1".into(),
                    domain_name: "web.vpc.internal".into(),
                    dns_servers: vec!["192.0.2.53".into()],
                    mtu: 1450,
                    ..Default::default()
                }),
            }),
            set_acl(8, 2, false, &sample::acl_web(), web_items()),
        ]
    );
}

#[tokio::test]
async fn implementing_a_tier_without_a_list_sends_no_acl() {
    let e = element();
    let mut tier = sample::web();
    tier.acl_id = None;
    e.implement(&sample::router(), 8, &tier, None)
        .await
        .unwrap();
    assert_eq!(e.agent().rpcs(), vec!["PlugNic", "SetupGuestNetwork"]);
}

#[tokio::test]
async fn the_element_serves_its_capabilities_as_trait_objects() {
    let e = element();
    // As a manager that picks its plug-ins at start holds them.
    let network: &dyn NetworkElement = &*e;
    let provider: &dyn VpcProvider = &*e;
    let nat: &dyn SourceNat = &*e;
    assert_eq!(network.name(), VPC_VIRTUAL_ROUTER);
    provider
        .apply_static_routes(&sample::router(), 8, &sample::routes())
        .await
        .unwrap();
    nat.apply_source_nat(&sample::router(), 9, &[], &[])
        .await
        .unwrap();
    assert_eq!(e.agent().rpcs(), vec!["SetStaticRoutes", "SetSourceNat"]);
    assert_eq!(e.agent().applied_generation(), 9);
    assert!(format!("{:?}", *e).contains(SIMULATOR));
}

#[tokio::test]
async fn a_shared_agent_and_driver_forward_to_what_they_hold() {
    // Code written against `impl AgentClient` / `impl RouterDriver` takes
    // the manager's shared trait objects too.
    async fn probe(agent: &impl AgentClient, router: &RouterView) -> u64 {
        match agent
            .send(
                router,
                AgentCommand::GetState(pb::GetStateRequest::default()),
            )
            .await
        {
            Ok(AgentReply::State(state)) => state.generation,
            other => panic!("{other:?}"),
        }
    }
    async fn stop(driver: &impl RouterDriver, router: &RouterView) -> &'static str {
        driver.stop_router(router).await.unwrap();
        driver.hypervisor()
    }
    let agent = Arc::new(RecordingAgentClient::at_generation(4));
    let driver = Arc::new(RecordingDriver::new());
    let shared_agent: SharedAgent = agent.clone();
    let shared_driver: SharedDriver = driver.clone();
    let router = sample::router();
    assert_eq!(probe(&shared_agent, &router).await, 4);
    assert_eq!(stop(&shared_driver, &router).await, SIMULATOR);
    assert_eq!(agent.rpcs(), vec!["GetState"]);
    assert_eq!(
        driver.calls(),
        vec![DriverCall::StopRouter("r-1-VM".into())]
    );
}

#[tokio::test]
async fn a_failed_hot_plug_sends_nothing_to_the_agent() {
    let e = element();
    e.driver().fail_plug();
    let err = e
        .implement(
            &sample::router(),
            8,
            &sample::web(),
            Some(&sample::acl_web()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ElementError::Driver(_)), "{err}");
    assert!(e.agent().commands().is_empty());
}

#[tokio::test]
async fn an_agent_failure_stops_the_sequence_and_names_the_rpc() {
    let e = element();
    e.agent()
        .fail("SetupGuestNetwork", AgentError::Refused("cidr: bad".into()));
    let err = e
        .implement(
            &sample::router(),
            8,
            &sample::web(),
            Some(&sample::acl_web()),
        )
        .await
        .unwrap_err();
    assert_eq!(e.agent().rpcs(), vec!["PlugNic", "SetupGuestNetwork"]);
    assert!(err.to_string().contains("SetupGuestNetwork"), "{err}");
    assert!(err.to_string().contains("r-1-VM"), "{err}");
}

#[tokio::test]
async fn adding_an_acl_item_pushes_the_sorted_list_to_every_tier_and_gateway_using_it() {
    let e = element();
    let mut list = sample::acl_web();
    list.items.push(sample::acl_item(
        5,
        5,
        AclAction::Deny,
        AclTraffic::Ingress,
        AclProtocol::Icmp,
        &["192.0.2.0/24"],
        None,
    ));
    let mut other = sample::tier(Uuid::from_u128(0x309), "db", 5);
    other.acl_id = Some(Uuid::from_u128(0x999));
    let mut gateway = sample::private_gateway();
    gateway.acl_id = Some(sample::ACL_WEB);
    e.apply_network_acl(
        &sample::router(),
        9,
        &list,
        &[sample::web(), sample::app(), other],
        &[gateway],
    )
    .await
    .unwrap();
    let mut items = web_items();
    items.insert(
        0,
        pb_item(
            5,
            5,
            pb::AclAction::Deny,
            pb::TrafficType::Ingress,
            pb::Protocol::Icmp,
            &["192.0.2.0/24"],
            None,
        ),
    );
    assert_eq!(
        e.agent().commands(),
        vec![
            set_acl(9, 2, false, &list, items.clone()),
            set_acl(9, 3, false, &list, items.clone()),
            set_acl(9, 4, true, &list, items),
        ]
    );
    assert!(e.driver().calls().is_empty());
}

#[tokio::test]
async fn acl_items_carry_protocol_numbers_and_icmp_type_and_code() {
    let mut numbered = sample::acl_item(
        1,
        1,
        AclAction::Allow,
        AclTraffic::Egress,
        AclProtocol::Number(47),
        &[],
        Some((1, 2)),
    );
    numbered.icmp_type = Some(8);
    let item = super::wire::acl_item(&numbered);
    assert_eq!(item.protocol, pb::Protocol::Number as i32);
    assert_eq!(item.protocol_number, 47);
    assert_eq!((item.start_port, item.end_port), (None, None));
    assert_eq!(item.icmp_type, None);

    let mut icmp = sample::acl_item(
        2,
        2,
        AclAction::Deny,
        AclTraffic::Ingress,
        AclProtocol::Icmp,
        &[],
        None,
    );
    icmp.icmp_type = Some(8);
    icmp.icmp_code = Some(-1);
    let item = super::wire::acl_item(&icmp);
    assert_eq!((item.icmp_type, item.icmp_code), (Some(8), Some(-1)));

    let mut tcp = sample::acl_item(
        3,
        3,
        AclAction::Allow,
        AclTraffic::Ingress,
        AclProtocol::Tcp,
        &[],
        None,
    );
    tcp.start_port = Some(443);
    let item = super::wire::acl_item(&tcp);
    assert_eq!((item.start_port, item.end_port), (Some(443), Some(443)));
}

#[tokio::test]
async fn duplicate_live_item_numbers_are_refused_before_sending() {
    let e = element();
    let mut list = sample::acl_web();
    list.items.push(sample::acl_item(
        9,
        10,
        AclAction::Deny,
        AclTraffic::Ingress,
        AclProtocol::All,
        &[],
        None,
    ));
    let err = e
        .apply_network_acl(&sample::router(), 9, &list, &[sample::web()], &[])
        .await
        .unwrap_err();
    assert!(matches!(err, ElementError::Invalid(_)), "{err}");
    assert!(e.agent().commands().is_empty());
}

#[tokio::test]
async fn replacing_a_tier_list_with_none_sends_an_empty_acl() {
    let e = element();
    e.replace_tier_acl(&sample::router(), 3, &sample::web(), None)
        .await
        .unwrap();
    assert_eq!(
        e.agent().commands(),
        vec![AgentCommand::SetNetworkAcl(pb::SetNetworkAclRequest {
            generation: 3,
            acl: Some(pb::NetworkAcl {
                device_index: 2,
                mac_address: mac(2),
                ..Default::default()
            }),
        })]
    );
}

#[tokio::test]
async fn static_routes_push_the_whole_live_list() {
    let e = element();
    e.apply_static_routes(&sample::router(), 11, &sample::routes())
        .await
        .unwrap();
    let route = |n: u128, cidr: &str| pb::StaticRoute {
        cidr: cidr.into(),
        next_hop: "172.16.0.1".into(),
        gateway_ip: "172.16.0.10".into(),
        id: Uuid::from_u128(0x700 + n).to_string(),
    };
    assert_eq!(
        e.agent().commands(),
        vec![AgentCommand::SetStaticRoutes(pb::SetStaticRoutesRequest {
            generation: 11,
            routes: vec![route(1, "192.168.50.0/24"), route(3, "192.168.70.0/24")],
        })]
    );
}

#[tokio::test]
async fn creating_a_private_gateway_plugs_associates_snats_and_applies_its_acl() {
    let e = element();
    let state = sample::state();
    e.create_private_gateway(&state, 12, sample::GATEWAY)
        .await
        .unwrap();
    assert_eq!(
        e.driver().calls(),
        vec![DriverCall::PlugNic("r-1-VM".into(), 4, mac(4))]
    );
    let commands = e.agent().commands();
    assert_eq!(
        commands,
        vec![
            AgentCommand::PlugNic(pb::PlugNicRequest {
                generation: 12,
                nic: Some(pb::Nic {
                    device_index: 4,
                    mac_address: mac(4),
                    role: pb::NicRole::Private as i32,
                    mtu: 1500,
                    network_id: sample::GATEWAY_NET.to_string(),
                    ..Default::default()
                }),
            }),
            AgentCommand::IpAssoc(pb::IpAssocRequest {
                generation: 12,
                ips: vec![pb::PublicIp {
                    add: true,
                    ip_address: "172.16.0.10".into(),
                    prefix_length: 24,
                    gateway: "172.16.0.1".into(),
                    device_index: 4,
                    mac_address: mac(4),
                    private_gateway: true,
                    vlan: "vlan://100".into(),
                    ..Default::default()
                }],
            }),
            AgentCommand::SetSourceNat(pb::SetSourceNatRequest {
                generation: 12,
                rules: vec![
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
            }),
            set_acl(
                12,
                4,
                true,
                &sample::acl_onprem(),
                vec![pb_item(
                    10,
                    1,
                    pb::AclAction::Allow,
                    pb::TrafficType::Ingress,
                    pb::Protocol::All,
                    &["10.1.0.0/16"],
                    None,
                )],
            ),
        ]
    );
}

#[tokio::test]
async fn a_private_gateway_without_source_nat_sends_no_snat() {
    let e = element();
    let mut state = sample::state();
    state.private_gateways[0].source_nat_supported = false;
    e.create_private_gateway(&state, 12, sample::GATEWAY)
        .await
        .unwrap();
    assert_eq!(
        e.agent().rpcs(),
        vec!["PlugNic", "IpAssoc", "SetNetworkAcl"]
    );
}

#[tokio::test]
async fn deleting_a_private_gateway_disassociates_resnats_and_unplugs() {
    let e = element();
    let gateway = sample::private_gateway();
    let mut state = sample::state();
    state.private_gateways.clear();
    e.delete_private_gateway(&state, 13, &gateway)
        .await
        .unwrap();
    let commands = e.agent().commands();
    assert_eq!(
        e.agent().rpcs(),
        vec!["IpAssoc", "SetSourceNat", "UnplugNic"]
    );
    let AgentCommand::IpAssoc(assoc) = &commands[0] else {
        panic!()
    };
    assert!(!assoc.ips[0].add && assoc.ips[0].private_gateway);
    let AgentCommand::SetSourceNat(snat) = &commands[1] else {
        panic!()
    };
    assert_eq!(snat.rules.len(), 1);
    assert_eq!(snat.rules[0].nat_ip, "203.0.113.10");
    assert_eq!(
        commands[2],
        AgentCommand::UnplugNic(pb::UnplugNicRequest {
            generation: 13,
            device_index: 4,
            mac_address: mac(4),
        })
    );
    assert_eq!(
        e.driver().calls(),
        vec![DriverCall::UnplugNic("r-1-VM".into(), 4, mac(4))]
    );
}

#[tokio::test]
async fn public_ip_association_is_one_ip_assoc() {
    let e = element();
    let mut released = sample::public_ip(11, "203.0.113.11", false, false);
    released.add = false;
    e.apply_ips(&sample::router(), 14, &[released])
        .await
        .unwrap();
    assert_eq!(
        e.agent().commands(),
        vec![AgentCommand::IpAssoc(pb::IpAssocRequest {
            generation: 14,
            ips: vec![pb::PublicIp {
                add: false,
                ip_address: "203.0.113.11".into(),
                prefix_length: 24,
                gateway: "203.0.113.1".into(),
                device_index: 1,
                mac_address: mac(1),
                vlan: "vlan://untagged".into(),
                ..Default::default()
            }],
        })]
    );
}

#[tokio::test]
async fn nat_rules_push_the_whole_live_list() {
    let e = element();
    let router = sample::router();
    let mut revoked = sample::port_forward();
    revoked.id = Uuid::from_u128(0x801);
    revoked.state = RuleState::Revoke;
    e.apply_port_forwards(&router, 15, &[sample::port_forward(), revoked])
        .await
        .unwrap();
    e.apply_static_nats(&router, 16, &[sample::static_nat()])
        .await
        .unwrap();
    assert_eq!(
        e.agent().commands(),
        vec![
            AgentCommand::SetPortForwardingRules(pb::SetPortForwardingRulesRequest {
                generation: 15,
                rules: vec![pb::PortForwardingRule {
                    id: Uuid::from_u128(0x800).to_string(),
                    public_ip: "203.0.113.11".into(),
                    protocol: pb::Protocol::Tcp as i32,
                    public_start_port: 2222,
                    public_end_port: 2222,
                    private_ip: "10.1.1.5".into(),
                    private_start_port: 22,
                    private_end_port: 22,
                    source_cidrs: vec![],
                }],
            }),
            AgentCommand::SetStaticNatRules(pb::SetStaticNatRulesRequest {
                generation: 16,
                rules: vec![pb::StaticNatRule {
                    id: Uuid::from_u128(0x612).to_string(),
                    public_ip: "203.0.113.12".into(),
                    private_ip: "10.1.2.6".into(),
                }],
            }),
        ]
    );
}

#[tokio::test]
async fn lb_rules_push_the_whole_list() {
    let e = element();
    let mut source = sample::lb_rule(LbAlgorithm::Source);
    source.id = Uuid::from_u128(0x901);
    e.apply_lb_rules(
        &sample::router(),
        17,
        &[sample::lb_rule(LbAlgorithm::RoundRobin), source],
    )
    .await
    .unwrap();
    let commands = e.agent().commands();
    let [AgentCommand::SetLoadBalancerRules(req)] = commands.as_slice() else {
        panic!("{commands:?}")
    };
    assert_eq!(req.generation, 17);
    assert_eq!(req.rules.len(), 2);
    assert_eq!(req.rules[0].algorithm, pb::LbAlgorithm::RoundRobin as i32);
    assert_eq!(req.rules[1].algorithm, pb::LbAlgorithm::Source as i32);
    assert_eq!(
        req.rules[0].backends,
        vec![
            pb::LbBackend {
                ip_address: "10.1.1.5".into(),
                port: 0,
                vm_id: Uuid::from_u128(0xa01).to_string(),
            },
            pb::LbBackend {
                ip_address: "10.1.2.5".into(),
                port: 8081,
                vm_id: Uuid::from_u128(0xa02).to_string(),
            },
        ]
    );
    assert_eq!(req.rules[0].public_port, 80);
    assert_eq!(req.rules[0].private_port, 8080);
}

#[tokio::test]
async fn leastconn_on_udp_is_refused_before_anything_is_sent() {
    // Issue 15: leastconn is served for TCP (the router's HAProxy); UDP
    // cannot be proxied, so it is refused here.
    let e = element();
    let mut rule = sample::lb_rule(LbAlgorithm::LeastConn);
    rule.protocol = L4Protocol::Udp;
    let err = e.validate_lb_rule(&rule).unwrap_err();
    assert!(err.to_string().contains("leastconn"), "{err}");
    let err = e
        .apply_lb_rules(
            &sample::router(),
            18,
            &[sample::lb_rule(LbAlgorithm::RoundRobin), rule.clone()],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ElementError::Unsupported(_)), "{err}");
    assert!(err.to_string().contains("leastconn"), "{err}");
    assert!(e.agent().commands().is_empty());

    let mut state = sample::state();
    state.lb_rules.push(rule);
    assert!(e.resync(&state, 19).await.is_err());
    assert!(e.start_router(&state, 19).await.is_err());
    assert!(e.agent().commands().is_empty());
    assert!(e.driver().calls().is_empty());
}

#[tokio::test]
async fn dhcp_entries_push_the_tiers_full_list() {
    let e = element();
    let router = sample::router();
    let tier = sample::web();
    let first = sample::dhcp_entry("02:00:00:00:aa:05", "10.1.1.5", "web-1");
    let mut second = sample::dhcp_entry("02:00:00:00:aa:06", "10.1.1.6", "web-2");
    second.default_gateway = false;
    e.prepare(&router, 20, &tier, &[first.clone(), second])
        .await
        .unwrap();
    e.release(&router, 21, &tier, std::slice::from_ref(&first))
        .await
        .unwrap();
    let entry = |m: &str, ip: &str, host: &str, default_gateway: bool| pb::DhcpEntry {
        mac_address: m.into(),
        ip_address: ip.into(),
        hostname: host.into(),
        default_gateway,
        ..Default::default()
    };
    assert_eq!(
        e.agent().commands(),
        vec![
            AgentCommand::SetDhcpEntries(pb::SetDhcpEntriesRequest {
                generation: 20,
                dhcp: Some(pb::TierDhcp {
                    device_index: 2,
                    entries: vec![
                        entry("02:00:00:00:aa:05", "10.1.1.5", "web-1", true),
                        entry("02:00:00:00:aa:06", "10.1.1.6", "web-2", false),
                    ],
                }),
            }),
            AgentCommand::SetDhcpEntries(pb::SetDhcpEntriesRequest {
                generation: 21,
                dhcp: Some(pb::TierDhcp {
                    device_index: 2,
                    entries: vec![entry("02:00:00:00:aa:05", "10.1.1.5", "web-1", true)],
                }),
            }),
        ]
    );
}

#[tokio::test]
async fn shutting_a_tier_down_destroys_it_and_unplugs_its_nic() {
    let e = element();
    e.shutdown(&sample::router(), 22, &sample::app())
        .await
        .unwrap();
    assert_eq!(
        e.agent().commands(),
        vec![
            AgentCommand::DestroyGuestNetwork(pb::DestroyGuestNetworkRequest {
                generation: 22,
                device_index: 3,
            }),
            AgentCommand::UnplugNic(pb::UnplugNicRequest {
                generation: 22,
                device_index: 3,
                mac_address: mac(3),
            }),
        ]
    );
    assert_eq!(
        e.driver().calls(),
        vec![DriverCall::UnplugNic("r-1-VM".into(), 3, mac(3))]
    );
}

#[tokio::test]
async fn user_data_is_refused_without_sending() {
    let e = element();
    let err = e
        .save_user_data(&sample::router(), 1, Uuid::from_u128(1), "#!/bin/sh")
        .await
        .unwrap_err();
    assert!(matches!(err, ElementError::Unsupported(_)));
    assert!(e.agent().commands().is_empty());
}

#[tokio::test]
async fn starting_a_router_sends_one_apply_config_with_the_whole_state() {
    let e = element();
    let state = sample::state();
    let endpoint = e.implement_vpc(&state, 7).await.unwrap();
    assert_eq!(
        endpoint,
        AgentEndpoint::UnixSocket("/run/vpc/r-1-VM.sock".into())
    );
    assert_eq!(
        e.driver().calls(),
        vec![DriverCall::StartRouter("r-1-VM".into())]
    );
    let commands = e.agent().commands();
    assert_eq!(
        commands,
        vec![AgentCommand::ApplyConfig(pb::ApplyConfigRequest {
            generation: 7,
            config: Some(super::wire::router_config(&state).unwrap()),
        })]
    );
}

#[test]
fn the_whole_config_holds_every_part_of_the_state() {
    let state = sample::state();
    let config = super::wire::router_config(&state).unwrap();
    assert_eq!(config.router_name, "r-1-VM");
    assert_eq!(config.vpc_id, sample::VPC.to_string());
    assert_eq!(config.vpc_cidr, "10.1.0.0/16");
    let nics: Vec<(u32, i32)> = config
        .nics
        .iter()
        .map(|n| (n.device_index, n.role))
        .collect();
    assert_eq!(
        nics,
        vec![
            (0, pb::NicRole::Control as i32),
            (1, pb::NicRole::Public as i32),
            (2, pb::NicRole::Guest as i32),
            (3, pb::NicRole::Guest as i32),
            (4, pb::NicRole::Private as i32),
        ]
    );
    assert_eq!(config.nics[0].ip_address, "169.254.3.7");
    assert_eq!(config.nics[0].prefix_length, 16);
    assert_eq!(config.nics[1].ip_address, "");
    assert_eq!(config.guest_networks.len(), 2);
    let ips: Vec<&str> = config
        .public_ips
        .iter()
        .map(|p| p.ip_address.as_str())
        .collect();
    assert_eq!(
        ips,
        vec![
            "203.0.113.10",
            "203.0.113.11",
            "203.0.113.12",
            "172.16.0.10"
        ]
    );
    assert!(config.public_ips[0].source_nat);
    assert!(config.public_ips[2].one_to_one_nat);
    assert!(config.public_ips[3].private_gateway);
    assert_eq!(config.source_nat_rules.len(), 2);
    assert_eq!(config.static_routes.len(), 2);
    let acls: Vec<(u32, usize, bool)> = config
        .network_acls
        .iter()
        .map(|a| (a.device_index, a.items.len(), a.private_gateway))
        .collect();
    assert_eq!(acls, vec![(2, 3, false), (3, 3, false), (4, 1, true)]);
    assert_eq!(config.network_acls[0].items, web_items());
    assert_eq!(config.port_forwarding_rules.len(), 1);
    assert_eq!(config.static_nat_rules.len(), 1);
    assert_eq!(config.load_balancer_rules.len(), 1);
    assert_eq!(config.dhcp.len(), 1);
    assert_eq!(config.dhcp[0].device_index, 2);
}

#[test]
fn the_whole_config_refuses_a_missing_acl_list_and_duplicate_device_indexes() {
    let mut state = sample::state();
    state.acl_lists.retain(|l| l.id != sample::ACL_ONPREM);
    assert!(matches!(
        super::wire::router_config(&state),
        Err(ElementError::Invalid(_))
    ));
    let mut state = sample::state();
    state.tiers[1].device_index = 1;
    state.tiers[1].mac = mac(1);
    assert!(super::wire::router_config(&state).is_ok());
    let mut nic = state.router.nics[1].clone();
    nic.mac = "02:00:00:00:ff:ff".into();
    state.router.nics.push(nic);
    assert!(super::wire::router_config(&state).is_err());
}

#[tokio::test]
async fn a_router_that_fell_behind_is_resynced_at_the_database_generation() {
    let e = RecordedElement::new(
        RecordingAgentClient::at_generation(5),
        RecordingDriver::new(),
    );
    let state = sample::state();
    assert!(e.check_router(&state).await.unwrap());
    let commands = e.agent().commands();
    assert_eq!(commands.len(), 2);
    assert_eq!(commands[0].rpc(), "GetState");
    assert_eq!(commands[1].rpc(), "ApplyConfig");
    assert_eq!(commands[1].generation(), Some(7));
    assert_eq!(e.agent().applied_generation(), 7);

    e.agent().clear();
    assert!(!e.check_router(&state).await.unwrap());
    assert_eq!(e.agent().rpcs(), vec!["GetState"]);
    assert!(!e.resync_if_behind(&state, 7).await.unwrap());
    assert!(!e.resync_if_behind(&state, 9).await.unwrap());
    assert_eq!(e.agent().rpcs(), vec!["GetState"]);
}

#[tokio::test]
async fn a_stale_generation_surfaces_as_an_agent_error() {
    let e = RecordedElement::new(
        RecordingAgentClient::at_generation(30),
        RecordingDriver::new(),
    );
    let err = e
        .apply_static_routes(&sample::router(), 29, &sample::routes())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        ElementError::Agent {
            source: AgentError::StaleGeneration {
                sent: 29,
                applied: 30
            },
            ..
        }
    ));
}

#[tokio::test]
async fn a_tier_given_another_list_than_its_own_is_refused_before_anything_happens() {
    let e = element();
    let err = e
        .implement(
            &sample::router(),
            8,
            &sample::web(),
            Some(&sample::acl_onprem()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ElementError::Invalid(_)), "{err}");
    let err = e
        .implement(&sample::router(), 8, &sample::web(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, ElementError::Invalid(_)), "{err}");
    assert!(e.agent().commands().is_empty());
    assert!(e.driver().calls().is_empty());
}

#[tokio::test]
async fn bad_port_ranges_are_refused_before_sending() {
    let e = element();
    let mut uneven = sample::port_forward();
    uneven.public_end_port = 2230;
    let err = e
        .apply_port_forwards(&sample::router(), 8, &[uneven])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("differ in length"), "{err}");
    let mut reversed = sample::port_forward();
    reversed.private_start_port = 23;
    reversed.private_end_port = 22;
    assert!(
        e.apply_port_forwards(&sample::router(), 8, &[reversed])
            .await
            .is_err()
    );
    let mut revoked_bad = sample::port_forward();
    revoked_bad.public_end_port = 1;
    revoked_bad.state = RuleState::Revoke;
    e.apply_port_forwards(&sample::router(), 8, &[revoked_bad])
        .await
        .unwrap();
    let mut list = sample::acl_web();
    list.items[1].start_port = Some(90);
    assert!(
        e.apply_network_acl(&sample::router(), 8, &list, &[sample::web()], &[])
            .await
            .is_err()
    );
    // Only the revoked-rule push (an empty list) was sent.
    assert_eq!(
        e.agent().commands(),
        vec![AgentCommand::SetPortForwardingRules(
            pb::SetPortForwardingRulesRequest {
                generation: 8,
                rules: vec![],
            }
        )]
    );
}

#[tokio::test]
async fn reboot_and_restart_resend_the_whole_config() {
    let e = element();
    let state = sample::state();
    e.reboot_router(&state, 7).await.unwrap();
    assert_eq!(
        e.driver().calls(),
        vec![
            DriverCall::StopRouter("r-1-VM".into()),
            DriverCall::StartRouter("r-1-VM".into()),
        ]
    );
    e.restart_vpc(&state, 8).await.unwrap();
    let commands = e.agent().commands();
    assert_eq!(e.agent().rpcs(), vec!["ApplyConfig", "ApplyConfig"]);
    assert_eq!(commands[0].generation(), Some(7));
    assert_eq!(commands[1].generation(), Some(8));
    e.shutdown_vpc(&state.router).await.unwrap();
    e.destroy_router(&state.router).await.unwrap();
    assert_eq!(
        e.driver().calls()[2..],
        [
            DriverCall::StopRouter("r-1-VM".into()),
            DriverCall::DestroyRouter("r-1-VM".into()),
        ]
    );
}

// ---------------------------------------------------------------------------
// Gurus
// ---------------------------------------------------------------------------

const PHYS: Uuid = Uuid::from_u128(0xf00);

fn spec(traffic: NetworkTraffic, isolation: IsolationMethod) -> NetworkSpec {
    NetworkSpec {
        id: Uuid::from_u128(0xabc),
        name: "web".into(),
        traffic,
        isolation,
        physical_network_id: Some(PHYS),
        cidr: Some("10.1.1.0/24".parse().unwrap()),
        gateway: None,
        vlan: None,
        mtu: Some(1450),
        network_domain: Some("web.vpc.internal".into()),
        vpc_cidr: Some("10.1.0.0/16".parse().unwrap()),
    }
}

#[test]
fn the_registry_chooses_exactly_one_guru_per_pair() {
    use IsolationMethod::*;
    use NetworkTraffic::*;
    let registry = GuruRegistry::all();
    assert_eq!(registry.choose(Vlan, Guest).unwrap().name(), "GuestVlan");
    assert_eq!(registry.choose(Vxlan, Guest).unwrap().name(), "GuestVxlan");
    assert_eq!(
        registry.choose(Vlan, Private).unwrap().name(),
        "PrivateGateway"
    );
    assert_eq!(registry.choose(None, Public).unwrap().name(), "Public");
    assert_eq!(registry.choose(Vlan, Control).unwrap().name(), "Control");
    assert!(matches!(
        registry.choose(None, Guest),
        Err(RegistryError::NoGuru { .. })
    ));
    // For every pair, the chosen guru is the only enabled one that handles it.
    for isolation in [None, Vlan, Vxlan] {
        for traffic in [Guest, Public, Private, Control] {
            let handlers: Vec<&str> = super::guru::ALL_GURUS
                .iter()
                .map(|n| guru_by_name(n).unwrap())
                .filter(|g| g.can_handle(isolation, traffic))
                .map(|g| g.name())
                .collect();
            assert!(
                handlers.len() <= 1,
                "{isolation:?}/{traffic:?}: {handlers:?}"
            );
            assert_eq!(
                registry.choose(isolation, traffic).ok().map(|g| g.name()),
                handlers.first().copied()
            );
        }
    }
}

/// A guru that also claims VLAN guest networks.
struct Greedy;

impl NetworkGuru for Greedy {
    fn name(&self) -> &'static str {
        "Greedy"
    }
    fn claims(&self) -> &'static [(IsolationMethod, NetworkTraffic)] {
        &[(IsolationMethod::Vlan, NetworkTraffic::Guest)]
    }
    fn design(&self, spec: &NetworkSpec) -> Result<DesignedNetwork, GuruError> {
        GUEST_VLAN_GURU.design(spec)
    }
    fn implement<'a>(
        &'a self,
        network: &'a DesignedNetwork,
        vnets: &'a mut dyn VnetAllocator,
    ) -> BoxFuture<'a, Result<ImplementedNetwork, GuruError>> {
        GUEST_VLAN_GURU.implement(network, vnets)
    }
    fn reserve<'a>(
        &'a self,
        network: &'a ImplementedNetwork,
        nic: &'a NicRequest,
        addresses: &'a mut dyn AddressAllocator,
    ) -> BoxFuture<'a, Result<ReservedNic, GuruError>> {
        Box::pin(async move { GUEST_VLAN_GURU.reserve(network, nic, addresses).await })
    }
}

#[test]
fn the_registry_refuses_two_gurus_claiming_one_network() {
    let err = GuruRegistry::new(vec![Box::new(GUEST_VLAN_GURU), Box::new(Greedy)]).unwrap_err();
    assert_eq!(
        err,
        RegistryError::Clash {
            first: "GuestVlan",
            second: "Greedy",
            isolation: IsolationMethod::Vlan,
            traffic: NetworkTraffic::Guest,
        }
    );
    assert!(err.to_string().contains("both claim"));
    assert!(matches!(
        GuruRegistry::from_names(&["GuestVlan", "guestvlan"]),
        Err(RegistryError::Duplicate("GuestVlan"))
    ));
    assert!(matches!(
        GuruRegistry::from_names(&["GuestVlan", "Nope"]),
        Err(RegistryError::UnknownGuru(n)) if n == "Nope"
    ));
    // Greedy alone is fine.
    let registry = GuruRegistry::new(vec![Box::new(Greedy)]).unwrap();
    assert_eq!(
        registry
            .choose(IsolationMethod::Vlan, NetworkTraffic::Guest)
            .unwrap()
            .name(),
        "Greedy"
    );
}

#[test]
fn registries_built_from_names_enable_only_those_gurus() {
    let registry = GuruRegistry::from_names(&["GuestVxlan", "Control"]).unwrap();
    assert_eq!(registry.names(), vec!["GuestVxlan", "Control"]);
    assert!(
        registry
            .choose(IsolationMethod::Vlan, NetworkTraffic::Guest)
            .is_err()
    );
    assert!(registry.by_name("GuestVxlan").is_some());
    assert_eq!(
        GuruRegistry::default().names(),
        super::guru::ALL_GURUS.to_vec()
    );
}

#[test]
fn guest_design_validates_and_allocates() {
    let guru = GUEST_VLAN_GURU;
    let net = guru
        .design(&spec(NetworkTraffic::Guest, IsolationMethod::Vlan))
        .unwrap();
    assert_eq!(net.state, NetworkState::Allocated);
    assert_eq!(net.gateway, Some(Ipv4Addr::new(10, 1, 1, 1)));
    assert_eq!(net.broadcast_uri, Option::None);
    assert_eq!(net.mtu, 1450);
    assert_eq!(net.guru, "GuestVlan");

    let mut outside = spec(NetworkTraffic::Guest, IsolationMethod::Vlan);
    outside.cidr = Some("10.2.1.0/24".parse().unwrap());
    assert!(guru.design(&outside).is_err());
    let mut bad_gateway = spec(NetworkTraffic::Guest, IsolationMethod::Vlan);
    bad_gateway.gateway = Some(Ipv4Addr::new(10, 1, 1, 255));
    assert!(guru.design(&bad_gateway).is_err());
    let mut not_network = spec(NetworkTraffic::Guest, IsolationMethod::Vlan);
    not_network.cidr = Some("10.1.1.7/24".parse().unwrap());
    assert!(guru.design(&not_network).is_err());
    let mut no_cidr = spec(NetworkTraffic::Guest, IsolationMethod::Vlan);
    no_cidr.cidr = Option::None;
    assert!(guru.design(&no_cidr).is_err());
    // Wrong guru for the network.
    assert!(matches!(
        guru.design(&spec(NetworkTraffic::Guest, IsolationMethod::Vxlan)),
        Err(GuruError::WrongGuru { .. })
    ));
    let mut big_vlan = spec(NetworkTraffic::Guest, IsolationMethod::Vlan);
    big_vlan.vlan = Some(5000);
    assert!(guru.design(&big_vlan).is_err());
    let mut fixed = spec(NetworkTraffic::Guest, IsolationMethod::Vlan);
    fixed.vlan = Some(42);
    assert_eq!(
        guru.design(&fixed).unwrap().broadcast_uri.as_deref(),
        Some("vlan://42")
    );
}

#[tokio::test]
async fn guest_gurus_take_a_vnet_and_give_it_back() {
    let mut vnets = MemoryVnetAllocator::with_range(PHYS, 100, 101);
    let vlan = GUEST_VLAN_GURU
        .design(&spec(NetworkTraffic::Guest, IsolationMethod::Vlan))
        .unwrap();
    let implemented = GUEST_VLAN_GURU.implement(&vlan, &mut vnets).await.unwrap();
    assert_eq!(implemented.broadcast_uri.as_deref(), Some("vlan://100"));
    assert_eq!(implemented.acquired_vnet, Some(100));
    assert_eq!(implemented.network.state, NetworkState::Implemented);

    let vxlan = GUEST_VXLAN_GURU
        .design(&spec(NetworkTraffic::Guest, IsolationMethod::Vxlan))
        .unwrap();
    let second = GUEST_VXLAN_GURU
        .implement(&vxlan, &mut vnets)
        .await
        .unwrap();
    assert_eq!(second.broadcast_uri.as_deref(), Some("vxlan://101"));
    assert!(matches!(
        GUEST_VXLAN_GURU.implement(&vxlan, &mut vnets).await,
        Err(GuruError::NoFreeVnet(_))
    ));
    assert_eq!(vnets.taken(PHYS), vec![100, 101]);

    let back = GUEST_VLAN_GURU
        .shutdown(&implemented, &mut vnets)
        .await
        .unwrap();
    assert_eq!(back.state, NetworkState::Allocated);
    assert_eq!(back.broadcast_uri, Option::None);
    assert_eq!(vnets.taken(PHYS), vec![101]);
    assert_eq!(
        GUEST_VLAN_GURU.trash(&back).unwrap().state,
        NetworkState::Destroyed
    );

    // A VLAN the caller fixed is never taken from nor given back to the range.
    let mut fixed_spec = spec(NetworkTraffic::Guest, IsolationMethod::Vlan);
    fixed_spec.vlan = Some(42);
    let fixed = GUEST_VLAN_GURU.design(&fixed_spec).unwrap();
    let implemented = GUEST_VLAN_GURU.implement(&fixed, &mut vnets).await.unwrap();
    assert_eq!(implemented.acquired_vnet, Option::None);
    assert_eq!(implemented.broadcast_uri.as_deref(), Some("vlan://42"));
    let back = GUEST_VLAN_GURU
        .shutdown(&implemented, &mut vnets)
        .await
        .unwrap();
    assert_eq!(back.broadcast_uri.as_deref(), Some("vlan://42"));
    assert_eq!(vnets.taken(PHYS), vec![101]);
}

#[tokio::test]
async fn a_vnet_outside_the_isolation_range_is_given_back() {
    let mut vnets = MemoryVnetAllocator::with_range(PHYS, 4095, 4095);
    let net = GUEST_VLAN_GURU
        .design(&spec(NetworkTraffic::Guest, IsolationMethod::Vlan))
        .unwrap();
    assert!(GUEST_VLAN_GURU.implement(&net, &mut vnets).await.is_err());
    assert!(vnets.taken(PHYS).is_empty());
}

#[test]
fn a_minimal_state_builds_and_tiers_without_lists_get_no_acl() {
    let mut state = sample::state();
    state.private_gateways.clear();
    state.static_routes.clear();
    state.tiers[1].acl_id = None;
    let config = super::wire::router_config(&state).unwrap();
    assert_eq!(config.network_acls.len(), 1);
    assert_eq!(config.network_acls[0].device_index, 2);
    assert_eq!(config.source_nat_rules.len(), 1);
    assert_eq!(config.nics.len(), 4);

    state.tiers.clear();
    state.dhcp.clear();
    state.port_forwards.clear();
    state.static_nats.clear();
    state.lb_rules.clear();
    let config = super::wire::router_config(&state).unwrap();
    assert!(config.guest_networks.is_empty());
    assert!(config.network_acls.is_empty());
    assert!(config.dhcp.is_empty());
}

#[tokio::test]
async fn reserve_hands_out_addresses_and_macs_and_release_returns_them() {
    let mut vnets = MemoryVnetAllocator::with_range(PHYS, 100, 200);
    let mut addresses = MemoryAddressAllocator::new();
    let net = GUEST_VLAN_GURU
        .design(&spec(NetworkTraffic::Guest, IsolationMethod::Vlan))
        .unwrap();
    let net = GUEST_VLAN_GURU.implement(&net, &mut vnets).await.unwrap();
    let router_nic = NicRequest {
        network_id: net.network.id,
        owner_id: Uuid::from_u128(1),
        requested_ip: Some(Ipv4Addr::new(10, 1, 1, 1)),
        requested_mac: Some(mac(2)),
    };
    let reserved = GUEST_VLAN_GURU
        .reserve(&net, &router_nic, &mut addresses)
        .await
        .unwrap();
    assert_eq!(reserved.ip, Ipv4Addr::new(10, 1, 1, 1));
    assert_eq!(reserved.mac, mac(2));
    assert_eq!(reserved.prefix, 24);
    assert_eq!(reserved.broadcast_uri.as_deref(), Some("vlan://100"));

    let vm_nic = NicRequest {
        network_id: net.network.id,
        owner_id: Uuid::from_u128(2),
        requested_ip: Option::None,
        requested_mac: Option::None,
    };
    let vm = GUEST_VLAN_GURU
        .reserve(&net, &vm_nic, &mut addresses)
        .await
        .unwrap();
    assert_eq!(vm.ip, Ipv4Addr::new(10, 1, 1, 2));
    assert_eq!(vm.gateway, Some(Ipv4Addr::new(10, 1, 1, 1)));
    assert_eq!(vm.mac, "02:00:00:00:00:01");

    let mut outside = vm_nic.clone();
    outside.requested_ip = Some(Ipv4Addr::new(10, 9, 9, 9));
    assert!(
        GUEST_VLAN_GURU
            .reserve(&net, &outside, &mut addresses)
            .await
            .is_err()
    );
    let mut taken = vm_nic.clone();
    taken.requested_ip = Some(Ipv4Addr::new(10, 1, 1, 2));
    assert!(
        GUEST_VLAN_GURU
            .reserve(&net, &taken, &mut addresses)
            .await
            .is_err()
    );

    GUEST_VLAN_GURU.release(&vm, &mut addresses).await.unwrap();
    assert_eq!(
        addresses.used(net.network.id),
        vec![Ipv4Addr::new(10, 1, 1, 1)]
    );
}

#[tokio::test]
async fn control_guru_hands_out_link_local_addresses() {
    let mut vnets = MemoryVnetAllocator::default();
    let mut addresses = MemoryAddressAllocator::new();
    let mut control_spec = spec(NetworkTraffic::Control, IsolationMethod::None);
    control_spec.cidr = Option::None;
    let net = ControlGuru.design(&control_spec).unwrap();
    assert_eq!(net.cidr, link_local());
    assert_eq!(net.gateway, Option::None);
    let net = ControlGuru.implement(&net, &mut vnets).await.unwrap();
    assert_eq!(net.broadcast_uri, Option::None);
    let nic = NicRequest {
        network_id: net.network.id,
        owner_id: Uuid::from_u128(1),
        requested_ip: Option::None,
        requested_mac: Option::None,
    };
    let reserved = ControlGuru
        .reserve(&net, &nic, &mut addresses)
        .await
        .unwrap();
    assert!(link_local().contains(&reserved.ip));
    assert_eq!(reserved.prefix, 16);

    let mut wrong = spec(NetworkTraffic::Control, IsolationMethod::None);
    wrong.cidr = Some("10.0.0.0/16".parse().unwrap());
    assert!(ControlGuru.design(&wrong).is_err());
}

#[test]
fn private_and_public_gurus_need_their_vlan_and_gateway() {
    let mut private = spec(NetworkTraffic::Private, IsolationMethod::Vlan);
    private.cidr = Some("172.16.0.0/24".parse().unwrap());
    private.vpc_cidr = Option::None;
    assert!(PrivateGatewayGuru.design(&private).is_err(), "no gateway");
    private.gateway = Some(Ipv4Addr::new(172, 16, 0, 1));
    assert!(PrivateGatewayGuru.design(&private).is_err(), "no vlan");
    private.vlan = Some(100);
    let net = PrivateGatewayGuru.design(&private).unwrap();
    assert_eq!(net.broadcast_uri.as_deref(), Some("vlan://100"));

    let mut public = spec(NetworkTraffic::Public, IsolationMethod::None);
    public.cidr = Some("203.0.113.0/24".parse().unwrap());
    public.gateway = Some(Ipv4Addr::new(203, 0, 113, 1));
    let net = PublicGuru.design(&public).unwrap();
    assert_eq!(net.broadcast_uri.as_deref(), Some("vlan://untagged"));
    public.isolation = IsolationMethod::Vlan;
    public.vlan = Some(20);
    let net = PublicGuru.design(&public).unwrap();
    assert_eq!(net.broadcast_uri.as_deref(), Some("vlan://20"));
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

#[test]
fn plugins_default_to_everything() {
    let plugins = Plugins::from_config(Option::None, Option::None).unwrap();
    assert_eq!(plugins.gurus.names().len(), 5);
    assert!(plugins.element_enabled("VpcVirtualRouter"));
    assert_eq!(Plugins::default().elements(), plugins.elements());
}

#[test]
fn plugins_follow_the_configuration() {
    let plugins = Plugins::from_config(
        Some(vec!["GuestVxlan".into(), "Public".into()]),
        Some(vec![]),
    )
    .unwrap();
    assert_eq!(plugins.gurus.names(), vec!["GuestVxlan", "Public"]);
    assert!(!plugins.element_enabled("VpcVirtualRouter"));
    assert!(matches!(
        Plugins::from_config(Option::None, Some(vec!["F5".into()])),
        Err(PluginError::UnknownElement(n)) if n == "F5"
    ));
    assert!(matches!(
        Plugins::from_config(Some(vec!["Bogus".into()]), Option::None),
        Err(PluginError::Gurus(RegistryError::UnknownGuru(_)))
    ));
}
