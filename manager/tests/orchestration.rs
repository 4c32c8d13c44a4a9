//! The plug-in layer driven the way the services drive it: choose a guru,
//! design and implement a tier, start a router, then apply changes, each with
//! the generation the caller bumped.

use std::net::Ipv4Addr;

use uuid::Uuid;
use vpc_manager::orchestration::guru::{NetworkSpec, VnetAllocator};
use vpc_manager::orchestration::model::*;
use vpc_manager::orchestration::recording::sample::{self, mac};
use vpc_manager::orchestration::recording::*;
use vpc_manager::orchestration::*;
use vpc_proto::v1 as pb;

/// What a service does: bump the generation (in its DB transaction) and hand
/// it to the element.
struct Router {
    state: RouterState,
}

impl Router {
    fn bump(&mut self) -> u64 {
        self.state.router.generation += 1;
        self.state.router.generation
    }
}

#[tokio::test]
async fn a_vpc_from_start_to_changes_to_resync() {
    let plugins = Plugins::from_config(None, None).unwrap();
    assert!(plugins.element_enabled(VPC_VIRTUAL_ROUTER));
    let element = RecordedElement::new(RecordingAgentClient::new(), RecordingDriver::new());

    // Start: one ApplyConfig with everything, at the router's generation.
    let mut router = Router {
        state: sample::state(),
    };
    router.state.tiers.truncate(1);
    let generation = router.state.router.generation;
    element
        .implement_vpc(&router.state, generation)
        .await
        .unwrap();
    assert_eq!(element.agent().rpcs(), vec!["ApplyConfig"]);
    assert_eq!(element.agent().applied_generation(), 7);

    // A new VXLAN tier: the registry picks the one guru, which takes a VNI.
    let guru = plugins
        .gurus
        .choose(IsolationMethod::Vxlan, NetworkTraffic::Guest)
        .unwrap();
    let physical = Uuid::from_u128(0xf00);
    let designed = guru
        .design(&NetworkSpec {
            id: sample::APP,
            name: "app".into(),
            traffic: NetworkTraffic::Guest,
            isolation: IsolationMethod::Vxlan,
            physical_network_id: Some(physical),
            cidr: Some("10.1.2.0/24".parse().unwrap()),
            gateway: None,
            vlan: None,
            mtu: Some(1450),
            network_domain: Some("app.vpc.internal".into()),
            vpc_cidr: Some(router.state.vpc.cidr),
        })
        .unwrap();
    let mut vnets = MemoryVnetAllocator::with_range(physical, 5000, 5999);
    let implemented = guru
        .implement(&designed, &mut vnets as &mut dyn VnetAllocator)
        .await
        .unwrap();
    assert_eq!(implemented.broadcast_uri.as_deref(), Some("vxlan://5000"));

    let mut tier = sample::app();
    tier.broadcast_uri = implemented.broadcast_uri.clone();
    tier.gateway = designed.gateway.unwrap();
    router.state.tiers.push(tier.clone());
    let generation = router.bump();
    element.agent().clear();
    element
        .implement(
            &router.state.router,
            generation,
            &tier,
            router.state.acl_list(sample::ACL_WEB),
        )
        .await
        .unwrap();
    assert_eq!(
        element.agent().rpcs(),
        vec!["PlugNic", "SetupGuestNetwork", "SetNetworkAcl"]
    );

    // ACL item #5 goes to both tiers using the list, sorted.
    let list = router
        .state
        .acl_lists
        .iter_mut()
        .find(|l| l.id == sample::ACL_WEB)
        .unwrap();
    list.items.push(sample::acl_item(
        5,
        5,
        AclAction::Allow,
        AclTraffic::Ingress,
        AclProtocol::Udp,
        &["10.1.0.0/16"],
        Some((53, 53)),
    ));
    let list = list.clone();
    let generation = router.bump();
    element.agent().clear();
    element
        .apply_network_acl(
            &router.state.router,
            generation,
            &list,
            &router.state.tiers,
            &router.state.private_gateways,
        )
        .await
        .unwrap();
    let commands = element.agent().commands();
    assert_eq!(commands.len(), 2);
    for (command, index) in commands.iter().zip([2, 3]) {
        let AgentCommand::SetNetworkAcl(req) = command else {
            panic!("{command:?}")
        };
        assert_eq!(req.generation, generation);
        let acl = req.acl.as_ref().unwrap();
        assert_eq!(acl.device_index, index);
        assert_eq!(acl.mac_address, mac(index));
        let numbers: Vec<u32> = acl.items.iter().map(|i| i.number).collect();
        assert_eq!(numbers, vec![5, 10, 20, 30]);
        assert_eq!(acl.items[0].protocol, pb::Protocol::Udp as i32);
    }

    // Revoking a route pushes the remaining live ones.
    router.state.static_routes[0].state = RuleState::Revoke;
    let generation = router.bump();
    element.agent().clear();
    element
        .apply_static_routes(
            &router.state.router,
            generation,
            &router.state.static_routes,
        )
        .await
        .unwrap();
    let AgentCommand::SetStaticRoutes(req) = &element.agent().commands()[0] else {
        panic!()
    };
    let cidrs: Vec<&str> = req.routes.iter().map(|r| r.cidr.as_str()).collect();
    assert_eq!(cidrs, vec!["192.168.70.0/24"]);

    // A new VM in the web tier.
    let entries = vec![
        sample::dhcp_entry("02:00:00:00:aa:05", "10.1.1.5", "web-1"),
        sample::dhcp_entry("02:00:00:00:aa:07", "10.1.1.7", "web-3"),
    ];
    let generation = router.bump();
    element.agent().clear();
    element
        .prepare(&router.state.router, generation, &sample::web(), &entries)
        .await
        .unwrap();
    let AgentCommand::SetDhcpEntries(req) = &element.agent().commands()[0] else {
        panic!()
    };
    assert_eq!(req.dhcp.as_ref().unwrap().entries.len(), 2);

    // Every command so far carried a generation the caller gave, never older
    // than the last one.
    assert_eq!(element.agent().applied_generation(), generation);

    // A late push from a slow manager is refused by the agent.
    let err = element
        .apply_static_routes(
            &router.state.router,
            generation - 1,
            &router.state.static_routes,
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        ElementError::Agent {
            source: AgentError::StaleGeneration { .. },
            ..
        }
    ));

    // The agent restarted from an old snapshot: resync with one ApplyConfig.
    let restarted = RecordedElement::new(
        RecordingAgentClient::at_generation(3),
        RecordingDriver::new(),
    );
    assert!(restarted.check_router(&router.state).await.unwrap());
    let commands = restarted.agent().commands();
    let AgentCommand::ApplyConfig(apply) = &commands[1] else {
        panic!("{commands:?}")
    };
    assert_eq!(apply.generation, router.state.router.generation);
    let config = apply.config.as_ref().unwrap();
    assert_eq!(config.guest_networks.len(), 2);
    assert_eq!(config.static_routes.len(), 1);
    assert_eq!(config.network_acls[0].items.len(), 4);
}

// Issue 15 changed this on purpose: leastconn is served by the router's
// HAProxy, so a TCP rule reaches the agent; only UDP is refused before.
#[tokio::test]
async fn leastconn_reaches_the_agent_for_tcp_and_never_for_udp() {
    let element = RecordedElement::new(RecordingAgentClient::new(), RecordingDriver::new());
    let mut rule = sample::lb_rule(LbAlgorithm::parse("leastconn").unwrap());
    rule.public_ip = Ipv4Addr::new(203, 0, 113, 11);
    element
        .apply_lb_rules(&sample::router(), 8, std::slice::from_ref(&rule))
        .await
        .unwrap();
    match element.agent().commands().remove(0) {
        AgentCommand::SetLoadBalancerRules(r) => {
            assert_eq!(r.rules[0].algorithm, pb::LbAlgorithm::LeastConn as i32)
        }
        other => panic!("{other:?}"),
    }
    element.agent().clear();
    rule.protocol = L4Protocol::Udp;
    let err = element
        .apply_lb_rules(&sample::router(), 9, &[rule])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("leastconn"));
    assert!(element.agent().commands().is_empty());
}

#[test]
fn two_gurus_can_never_claim_one_network() {
    assert!(GuruRegistry::from_names(&["GuestVlan", "GuestVxlan", "Public"]).is_ok());
    assert!(matches!(
        GuruRegistry::from_names(&["Public", "public"]),
        Err(RegistryError::Duplicate(_))
    ));
}
