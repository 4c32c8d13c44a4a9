//! The agent as a router, proven with real packets: a router namespace with a
//! public NIC (an upstream namespace behind it), two tier NICs (VMs behind
//! them), a private gateway NIC (an on-premises network behind it) and a
//! control NIC, configured only through the agent's gRPC API.

mod counters;
mod edit;
mod fixture;
mod haproxy;
mod health;
mod layers;
mod nat;
mod reconcile;
mod tls;
mod vm_services;
mod vpn;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fixture::{RouterLab, addr, allow_all_ingress};
use vpc_integration::{TcpEchoServer, tcp_connect, tcp_probe};
use vpc_proto::v1 as pb;
use vr_agent::testing::{item, mac};

const SHORT: Duration = Duration::from_millis(700);

#[test]
fn tier_traffic_follows_ingress_and_egress_acls() {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    let mut r = RouterLab::start("acl_e2e");
    let mut config = r.base_config();
    config.network_acls.clear();
    r.apply_config(config);
    let _web = TcpEchoServer::start(&r.vm1, addr("0.0.0.0:7000")).unwrap();
    let _other = TcpEchoServer::start(&r.vm1, addr("0.0.0.0:7001")).unwrap();
    let web: SocketAddr = addr("10.1.1.5:7000");
    let other: SocketAddr = addr("10.1.1.5:7001");

    assert!(
        !tcp_connect(&r.vm2, web, SHORT).unwrap(),
        "ingress is denied by default"
    );

    let allow_7000 = item(
        20,
        Allow,
        Ingress,
        Tcp,
        &["10.1.2.0/24"],
        Some((7000, 7000)),
    );
    r.set_acl(2, vec![allow_7000.clone()]);
    let seen = tcp_probe(&r.vm2, web, SHORT).expect("allowed port is open");
    assert_eq!(
        seen.seen_as.ip().to_string(),
        "10.1.2.5",
        "tiers talk without NAT"
    );
    assert!(
        !tcp_connect(&r.vm2, other, SHORT).unwrap(),
        "only the allowed port opens"
    );

    let deny_vm2 = item(10, Deny, Ingress, Tcp, &["10.1.2.5/32"], Some((7000, 7000)));
    r.set_acl(2, vec![allow_7000.clone(), deny_vm2]);
    assert!(
        !tcp_connect(&r.vm2, web, SHORT).unwrap(),
        "a deny with a lower number wins"
    );
    assert!(
        tcp_connect(&r.vm3, web, SHORT).unwrap(),
        "the rest of the tier still gets in"
    );

    // Egress: allowed until the tier has an egress item, then denied.
    let _upstream = TcpEchoServer::start(&r.up, addr("0.0.0.0:7000")).unwrap();
    let upstream = addr("203.0.113.1:7000");
    assert!(tcp_connect(&r.vm1, upstream, SHORT).unwrap());
    let dns_only = item(30, Allow, Egress, Udp, &[], Some((53, 53)));
    r.set_acl(2, vec![allow_7000, dns_only]);
    assert!(
        !tcp_connect(&r.vm1, upstream, SHORT).unwrap(),
        "one egress item denies other egress"
    );
    assert!(
        tcp_connect(&r.vm2, upstream, SHORT).unwrap(),
        "other tiers are not affected"
    );
}

#[test]
fn vm_traffic_is_source_natted_forwarded_and_balanced() {
    let mut r = RouterLab::start("nat_e2e");
    let mut config = r.base_config();
    config.network_acls = vec![allow_all_ingress(2), allow_all_ingress(3)];
    r.apply_config(config.clone());
    let upstream = TcpEchoServer::start(&r.up, addr("0.0.0.0:7000")).unwrap();

    let seen = tcp_probe(&r.vm1, addr("203.0.113.1:7000"), SHORT).unwrap();
    assert_eq!(
        seen.seen_as.ip().to_string(),
        "203.0.113.10",
        "source NAT IP"
    );
    let seen = tcp_probe(&r.vm3, addr("203.0.113.1:7000"), SHORT).unwrap();
    assert_eq!(
        seen.seen_as.ip().to_string(),
        "203.0.113.12",
        "static NAT IP outbound"
    );
    assert_eq!(upstream.peers().len(), 2);

    // Port forwarding 203.0.113.11:2222 -> 10.1.1.5:22; static NAT 203.0.113.12 -> 10.1.2.6.
    let ssh = TcpEchoServer::start(&r.vm1, addr("0.0.0.0:22")).unwrap();
    let seen = tcp_probe(&r.up, addr("203.0.113.11:2222"), SHORT).expect("forwarded port");
    assert_eq!(seen.seen_as.ip().to_string(), "203.0.113.1");
    assert_eq!(ssh.peers().len(), 1);
    let vm3 = TcpEchoServer::start(&r.vm3, addr("0.0.0.0:7000")).unwrap();
    tcp_probe(&r.up, addr("203.0.113.12:7000"), SHORT).expect("static NAT inbound");
    assert_eq!(vm3.peers().len(), 1);
    assert!(
        !tcp_connect(&r.up, addr("203.0.113.11:2223"), SHORT).unwrap(),
        "other ports are not forwarded"
    );

    // Every kind of forward, each in its own map: a single port, a range
    // kept as it is, and for clients of some CIDRs only (overlapping CIDRs
    // in one rule), a port kept and a port moved; a forward for other
    // clients does not take this one.
    let forward = |id: &str, public: (u32, u32), private: (u32, u32), sources: &[&str]| {
        pb::PortForwardingRule {
            id: id.into(),
            public_ip: "203.0.113.11".into(),
            protocol: pb::Protocol::Tcp as i32,
            public_start_port: public.0,
            public_end_port: public.1,
            private_ip: "10.1.1.5".into(),
            private_start_port: private.0,
            private_end_port: private.1,
            source_cidrs: sources.iter().map(|s| s.to_string()).collect(),
        }
    };
    let upstream_only = ["203.0.113.0/24", "203.0.113.1/32"];
    config.port_forwarding_rules.extend([
        forward("pf-single", (7101, 7101), (7101, 7101), &[]),
        forward("pf-range", (7200, 7210), (7200, 7210), &[]),
        forward("pf-sourced", (7301, 7301), (7301, 7301), &upstream_only),
        forward(
            "pf-sourced-moved",
            (7401, 7401),
            (7101, 7101),
            &upstream_only,
        ),
        forward("pf-others", (7501, 7501), (7101, 7101), &["192.0.2.0/24"]),
    ]);
    r.apply_config(config.clone());
    let servers: Vec<_> = [7101, 7205, 7301]
        .iter()
        .map(|p| TcpEchoServer::start(&r.vm1, addr(&format!("0.0.0.0:{p}"))).unwrap())
        .collect();
    for public in [7101, 7205, 7301, 7401] {
        let seen = tcp_probe(&r.up, addr(&format!("203.0.113.11:{public}")), SHORT)
            .unwrap_or_else(|e| panic!("forwarded port {public}: {e}"));
        assert_eq!(seen.seen_as.ip().to_string(), "203.0.113.1");
    }
    assert_eq!(
        servers.iter().map(|s| s.peers().len()).collect::<Vec<_>>(),
        [2, 1, 1],
        "7101 directly and through 7401, the range at 7205, the sourced port"
    );
    assert!(
        !tcp_connect(&r.up, addr("203.0.113.11:7501"), SHORT).unwrap(),
        "a forward for other clients is not taken"
    );
    config
        .port_forwarding_rules
        .truncate(config.port_forwarding_rules.len() - 5);
    r.apply_config(config.clone());

    // Load balancer 203.0.113.11:80 -> 10.1.1.5:8080 and 10.1.2.5:8081.
    let a = TcpEchoServer::start(&r.vm1, addr("0.0.0.0:8080")).unwrap();
    let b = TcpEchoServer::start(&r.vm2, addr("0.0.0.0:8081")).unwrap();
    for _ in 0..6 {
        tcp_probe(&r.up, addr("203.0.113.11:80"), SHORT).expect("balanced");
    }
    assert_eq!(
        (a.peers().len(), b.peers().len()),
        (3, 3),
        "round robin alternates"
    );

    config.load_balancer_rules[0].algorithm = pb::LbAlgorithm::Source as i32;
    r.apply_config(config.clone());
    for _ in 0..6 {
        tcp_probe(&r.up, addr("203.0.113.11:80"), SHORT).expect("balanced");
    }
    let (a_new, b_new) = (a.peers().len() - 3, b.peers().len() - 3);
    assert!(
        a_new == 6 || b_new == 6,
        "source hash keeps one client on one backend: {a_new}/{b_new}"
    );

    // leastconn is HAProxy's now: see `haproxy::leastconn_*`.
}

#[test]
fn static_route_reaches_on_prem_and_replies_leave_by_the_private_gateway() {
    let mut r = RouterLab::start("pgw_e2e");
    r.apply_config(r.base_config());
    let onprem = TcpEchoServer::start(&r.oph, addr("0.0.0.0:7000")).unwrap();
    let seen = tcp_probe(&r.vm1, addr("192.168.50.10:7000"), SHORT)
        .expect("static route via the private gateway");
    assert_eq!(
        seen.seen_as.ip().to_string(),
        "172.16.0.10",
        "SNAT to the private gateway address"
    );
    assert_eq!(onprem.peers().len(), 1);

    // A connection from an on-premises address the router has no route for
    // (192.168.60.1): its replies can only find the way back through the
    // connmark and eth4's table; the main table would send them upstream.
    let web = TcpEchoServer::start(&r.vm1, addr("0.0.0.0:80")).unwrap();
    // op's route to the tiers carries "src 192.168.60.1".
    let seen = tcp_probe(&r.op, addr("10.1.1.5:80"), SHORT).expect("reply came back by eth4");
    assert_eq!(seen.seen_as.ip().to_string(), "192.168.60.1");
    assert_eq!(web.peers().len(), 1);

    config_without_route(&mut r);
    assert!(
        !tcp_connect(&r.vm1, addr("192.168.50.10:7000"), SHORT).unwrap(),
        "route removed with the list"
    );
}

fn config_without_route(r: &mut RouterLab) {
    let generation = r.next_generation();
    r.call(|mut c| async move {
        c.set_static_routes(pb::SetStaticRoutesRequest {
            generation,
            routes: vec![],
        })
        .await
    })
    .unwrap();
}

#[test]
fn vm_gets_dhcp_lease_and_resolves_another_vm_through_the_router() {
    let mut r = RouterLab::start("dhcp_e2e");
    r.unconfigure_vm1();
    r.apply_config(r.base_config());
    let lease = r
        .lab
        .dhcp_client(&r.vm1, "eth0", Duration::from_secs(10))
        .expect("lease");
    assert_eq!(lease.ip.to_string(), "10.1.1.5");
    assert_eq!(
        lease.router.map(|a| a.to_string()).as_deref(),
        Some("10.1.1.1")
    );
    assert!(
        lease.dns.iter().any(|d| d.to_string() == "10.1.1.1"),
        "{lease:?}"
    );
    let out = r
        .lab
        .exec(
            &r.vm1,
            &[
                "busybox",
                "nslookup",
                "app-2.tier1.vpc.internal",
                "10.1.1.1",
            ],
        )
        .expect("nslookup");
    assert!(out.stdout.contains("10.1.1.7"), "{}", out.stdout);
}

#[test]
fn ping_survives_an_agent_restart_and_a_deleted_table_is_repaired() {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    let mut r = RouterLab::start("restart_e2e");
    let mut config = r.base_config();
    config.network_acls = vec![pb::NetworkAcl {
        device_index: 2,
        mac_address: mac(2),
        items: vec![item(1, Allow, Ingress, Icmp, &["10.1.2.0/24"], None)],
        ..Default::default()
    }];
    r.apply_config(config);
    assert!(r.lab.ping_ok(&r.vm2, addr_ip("10.1.1.5")));

    let ping = r
        .lab
        .spawn(
            &r.vm2,
            "ping",
            &["ping", "-n", "-i", "0.02", "-w", "4", "10.1.1.5"],
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    r.kill_agent();
    std::thread::sleep(Duration::from_millis(300));
    r.spawn_agent();
    while ping.is_running() {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = ping.log();
    assert!(
        log.contains(" 0% packet loss"),
        "a packet was lost during the restart:\n{log}"
    );
    let state = r.state();
    assert!(state.last_error.is_empty(), "{}", state.last_error);

    r.lab
        .exec(&r.r, &["nft", "delete", "table", "inet", "vpc"])
        .unwrap();
    let started = Instant::now();
    loop {
        let listed = r
            .lab
            .exec_unchecked(
                &r.r,
                &["nft", "list", "table", "inet", "vpc"],
                Duration::from_secs(5),
            )
            .unwrap();
        if listed.status.success() && listed.stdout.contains("ACL_INBOUND_eth2") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "table not repaired"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(r.lab.ping_ok(&r.vm2, addr_ip("10.1.1.5")));
}

fn addr_ip(s: &str) -> std::net::IpAddr {
    s.parse().unwrap()
}

#[test]
fn stale_generations_and_bad_input_are_refused_and_rules_keep_working() {
    use pb::{AclAction::*, Protocol::*, TrafficType::*};
    let mut r = RouterLab::start("refuse_e2e");
    let mut config = r.base_config();
    config.network_acls = vec![allow_all_ingress(2)];
    r.apply_config(config.clone());
    let _web = TcpEchoServer::start(&r.vm1, addr("0.0.0.0:7000")).unwrap();
    assert!(tcp_connect(&r.vm2, addr("10.1.1.5:7000"), SHORT).unwrap());
    let applied = r.state().generation;

    let stale = applied - 1;
    let err = r
        .call(move |mut c| async move {
            c.set_network_acl(pb::SetNetworkAclRequest {
                generation: stale,
                acl: Some(pb::NetworkAcl {
                    device_index: 2,
                    ..Default::default()
                }),
            })
            .await
        })
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");

    let mut bad = item(5, Deny, Ingress, Tcp, &["10.1.2.0/33"], Some((7000, 7000)));
    let generation = r.next_generation();
    let acl = pb::NetworkAcl {
        device_index: 2,
        mac_address: mac(2),
        items: vec![bad.clone()],
        ..Default::default()
    };
    let err = r
        .call(move |mut c| async move {
            c.set_network_acl(pb::SetNetworkAclRequest {
                generation,
                acl: Some(acl),
            })
            .await
        })
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("cidrs[0]"),
        "names the field: {}",
        err.message()
    );

    bad.cidrs = vec!["10.1.2.0/24".into()];
    bad.start_port = Some(70000);
    let generation = r.next_generation();
    let acl = pb::NetworkAcl {
        device_index: 2,
        mac_address: mac(2),
        items: vec![bad],
        ..Default::default()
    };
    let err = r
        .call(move |mut c| async move {
            c.set_network_acl(pb::SetNetworkAclRequest {
                generation,
                acl: Some(acl),
            })
            .await
        })
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    let generation = r.next_generation();
    let nic = pb::Nic {
        device_index: 7,
        mac_address: "02:00:00:00:07:07".into(),
        role: pb::NicRole::Guest as i32,
        ..Default::default()
    };
    let err = r
        .call(move |mut c| async move {
            c.plug_nic(pb::PlugNicRequest {
                generation,
                nic: Some(nic),
            })
            .await
        })
        .unwrap_err();
    assert_eq!(
        err.code(),
        tonic::Code::NotFound,
        "a MAC with no link: {err:?}"
    );

    assert!(
        tcp_connect(&r.vm2, addr("10.1.1.5:7000"), SHORT).unwrap(),
        "previous rules still work"
    );
    let state = r.state();
    assert_eq!(state.generation, applied);
    assert_eq!(state.config.unwrap(), config);
}

#[test]
fn the_same_command_twice_changes_nothing() {
    let mut r = RouterLab::start("idem_e2e");
    let config = r.base_config();
    r.apply_config(config.clone());
    let before = r.state().live_ruleset;
    let response = r.apply_config(config);
    assert!(response.unchanged);
    assert_eq!(r.state().live_ruleset, before);
}
