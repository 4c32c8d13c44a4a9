//! The running router: forged source addresses, a corrupt state file, a failing
//! dnsmasq, drift, and what GetState and health report.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::time::{Duration, Instant};

use vpc_integration::{
    Netns, TcpEchoServer, UdpEchoServer, run_in_netns, tcp_connect, tcp_probe, udp_probe,
};
use vpc_proto::v1 as pb;
use vr_agent::state::{Desired, STATE_FILE, StateStore};
use vr_agent::testing::mac;

use crate::fixture::{RouterLab, addr, allow_all_ingress};

const SHORT: Duration = Duration::from_millis(700);

/// Sends a few datagrams from `source` (an address of `ns`) to `target`.
fn send_from(ns: &Netns, source: &str, target: SocketAddr) {
    let bind: SocketAddr = format!("{source}:0").parse().unwrap();
    run_in_netns(ns, move || {
        let socket = UdpSocket::bind(bind).expect("bind the forged source");
        for _ in 0..3 {
            // A forged packet may draw an ICMP error; only arrival matters.
            let _ = socket.send_to(b"forged\n", target);
            std::thread::sleep(Duration::from_millis(30));
        }
        Ok(())
    })
    .unwrap();
}

/// The router of the fixture with every tier open to ingress, so that only
/// source validation can stop a packet.
fn open_router(name: &str) -> RouterLab {
    let mut r = RouterLab::start(name);
    let mut config = r.base_config();
    let onprem = config
        .network_acls
        .iter()
        .find(|a| a.device_index == 4)
        .cloned()
        .unwrap();
    config.network_acls = vec![allow_all_ingress(2), allow_all_ingress(3), onprem];
    r.apply_config(config);
    r
}

#[test]
fn forged_sources_from_a_tier_reach_no_network_while_the_real_address_does() {
    let r = open_router("spoof_tier");
    let up = UdpEchoServer::start(&r.up, addr("0.0.0.0:7100")).unwrap();
    let other_tier = UdpEchoServer::start(&r.vm2, addr("0.0.0.0:7100")).unwrap();
    let onprem = UdpEchoServer::start(&r.oph, addr("0.0.0.0:7100")).unwrap();
    let targets = [
        ("upstream", addr("203.0.113.1:7100"), &up),
        ("another tier", addr("10.1.2.5:7100"), &other_tier),
        ("on-premises", addr("192.168.50.10:7100"), &onprem),
    ];
    // Outside the VPC, another tier's address, a public address, and the
    // address leased to another VM of vm1's own tier (app-2, 10.1.1.7).
    let forged = ["198.18.0.5", "10.1.2.77", "203.0.113.50", "10.1.1.7"];
    for source in forged {
        r.lab
            .addr_add(&r.vm1, "eth0", &format!("{source}/32"))
            .unwrap();
    }
    for source in forged {
        for (_, target, _) in &targets {
            send_from(&r.vm1, source, *target);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    for (name, _, server) in &targets {
        let peers = server.peers();
        assert!(peers.is_empty(), "forged packets reached {name}: {peers:?}");
    }

    // The VM's real address still goes everywhere, replies included.
    let seen = |target| {
        udp_probe(&r.vm1, target, Duration::from_secs(3))
            .unwrap()
            .seen_as
            .ip()
            .to_string()
    };
    assert_eq!(seen(addr("203.0.113.1:7100")), "203.0.113.10", "source NAT");
    assert_eq!(seen(addr("10.1.2.5:7100")), "10.1.1.5", "tier to tier");
    assert_eq!(
        seen(addr("192.168.50.10:7100")),
        "172.16.0.10",
        "private gateway NAT"
    );
    // A DHCP client with no address yet still gets its lease (0.0.0.0 source).
    r.unconfigure_vm1();
    let lease = r
        .lab
        .dhcp_client(&r.vm1, "eth0", Duration::from_secs(10))
        .expect("lease from 0.0.0.0");
    assert_eq!(lease.ip.to_string(), "10.1.1.5");
}

#[test]
fn forged_sources_from_upstream_and_on_premises_do_not_enter_the_vpc() {
    let r = open_router("spoof_edge");
    let vm1 = UdpEchoServer::start(&r.vm1, addr("0.0.0.0:7100")).unwrap();
    let vm3 = UdpEchoServer::start(&r.vm3, addr("0.0.0.0:7100")).unwrap();
    // Upstream pretends to be a tier VM and reaches vm3 through its static
    // NAT address; on-premises pretends to be a VM of the other tier.
    r.lab.addr_add(&r.up, "u0", "10.1.2.77/32").unwrap();
    r.lab.addr_add(&r.op, "lo", "10.1.2.78/32").unwrap();
    send_from(&r.up, "10.1.2.77", addr("203.0.113.12:7100"));
    send_from(&r.op, "10.1.2.78", addr("10.1.1.5:7100"));
    // On-premises pretends to be upstream, towards the VPC.
    r.lab.addr_add(&r.op, "lo", "203.0.113.99/32").unwrap();
    send_from(&r.op, "203.0.113.99", addr("10.1.1.5:7100"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(vm3.peers().is_empty(), "{:?}", vm3.peers());
    assert!(vm1.peers().is_empty(), "{:?}", vm1.peers());

    // Real addresses pass, and replies to an on-premises network the router
    // has no route for leave by the private gateway (connmark).
    let seen = udp_probe(&r.up, addr("203.0.113.12:7100"), Duration::from_secs(3)).unwrap();
    assert_eq!(seen.seen_as.ip().to_string(), "203.0.113.1");
    let _web = TcpEchoServer::start(&r.vm1, addr("0.0.0.0:80")).unwrap();
    let seen = tcp_probe(&r.op, addr("10.1.1.5:80"), SHORT).expect("reply by the private gateway");
    assert_eq!(seen.seen_as.ip().to_string(), "192.168.60.1");
}

#[test]
fn without_source_nat_tier_addresses_do_not_leave_by_the_public_nic() {
    let mut r = open_router("spoof_nonat");
    let mut config = r.state().config.unwrap();
    config.source_nat_rules.retain(|s| s.device_index != 1);
    r.apply_config(config);
    let up = UdpEchoServer::start(&r.up, addr("0.0.0.0:7100")).unwrap();
    // vm1 has no public address at all: its private source must not leak.
    send_from(&r.vm1, "10.1.1.5", addr("203.0.113.1:7100"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(up.peers().is_empty(), "{:?}", up.peers());
    // vm3 has a static NAT address and still goes out with it.
    let seen = udp_probe(&r.vm3, addr("203.0.113.1:7100"), Duration::from_secs(3)).unwrap();
    assert_eq!(seen.seen_as.ip().to_string(), "203.0.113.12");
}

/// Waits up to `timeout` for `f` to hold, polling.
fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn nft(r: &RouterLab, args: &[&str]) -> String {
    let mut argv = vec!["nft"];
    argv.extend_from_slice(args);
    r.lab.exec(&r.r, &argv).unwrap().stdout
}

#[test]
fn a_corrupt_state_file_keeps_traffic_and_apply_config_restores_the_router() {
    let mut r = RouterLab::start("corrupt_state");
    let mut config = r.base_config();
    config.network_acls = vec![allow_all_ingress(2)];
    r.apply_config(config.clone());
    let _web = TcpEchoServer::start(&r.vm1, addr("0.0.0.0:7000")).unwrap();
    let web = addr("10.1.1.5:7000");
    assert!(tcp_connect(&r.vm2, web, SHORT).unwrap());

    r.kill_agent();
    std::fs::write(r.state_dir.join(STATE_FILE), b"\xff\xff\xff not a state").unwrap();
    // The fixture waits until the new agent answers GetState.
    r.spawn_agent();
    let state = r.state();
    assert!(
        state.state_file_error.contains("kept as"),
        "{}",
        state.state_file_error
    );
    assert!(!state.serving, "no desired state: not serving");
    assert_eq!(state.generation, 0);
    let aside: Vec<String> = std::fs::read_dir(&r.state_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{STATE_FILE}.corrupt-")))
        .collect();
    assert_eq!(aside.len(), 1, "the unreadable file is kept aside");
    // The live table is kept, through reconcile ticks too.
    std::thread::sleep(Duration::from_millis(1200));
    assert!(
        tcp_connect(&r.vm2, web, SHORT).unwrap(),
        "traffic that passed still passes"
    );
    // Restarted before the resync, it still waits (no "first start" that
    // would load an empty table).
    r.kill_agent();
    r.spawn_agent();
    let state = r.state();
    assert!(state.state_file_error.contains("kept as"), "{state:?}");
    std::thread::sleep(Duration::from_millis(1200));
    assert!(
        tcp_connect(&r.vm2, web, SHORT).unwrap(),
        "still passes after a restart"
    );

    // A partial change cannot be applied to an empty state: refused.
    let generation = r.next_generation();
    let err = r
        .call(move |mut c| async move {
            c.set_network_acl(pb::SetNetworkAclRequest {
                generation,
                acl: Some(allow_all_ingress(3)),
            })
            .await
        })
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");

    // The resync restores everything.
    config.network_acls = vec![allow_all_ingress(2), allow_all_ingress(3)];
    r.apply_config(config.clone());
    let state = r.state();
    assert_eq!(state.state_file_error, "");
    assert!(state.serving);
    assert_eq!(state.config.unwrap(), config);
    assert!(tcp_connect(&r.vm2, web, SHORT).unwrap());
    let _app = TcpEchoServer::start(&r.vm2, addr("0.0.0.0:7000")).unwrap();
    assert!(
        tcp_connect(&r.vm1, addr("10.1.2.5:7000"), SHORT).unwrap(),
        "the new config is applied"
    );
    assert!(
        state
            .dnsmasq
            .iter()
            .any(|d| d.device_index == 2 && d.running)
    );
}

/// Binds TCP port 53 on eth3's gateway address inside the router before the
/// agent sets the tier up, so that its dnsmasq cannot start.
fn occupy_dns_of_tier_2(r: &RouterLab) -> TcpListener {
    r.lab.addr_add(&r.r, "t3", "10.1.2.1/24").unwrap();
    r.lab.link_up(&r.r, "t3").unwrap();
    run_in_netns(&r.r, || {
        Ok(TcpListener::bind("10.1.2.1:53").expect("bind the tier's DNS port"))
    })
    .unwrap()
}

#[test]
fn one_tiers_dhcp_failure_is_reported_and_retried_while_other_tiers_change() {
    let mut r = RouterLab::start("dhcp_failure");
    let squatter = occupy_dns_of_tier_2(&r);
    let mut config = r.base_config();
    config.network_acls = vec![allow_all_ingress(2), allow_all_ingress(3)];
    let reply = r
        .try_apply_config(config)
        .expect("the state applies although eth3's dnsmasq cannot start");
    assert_eq!(
        reply
            .dhcp_failures
            .iter()
            .map(|f| f.device_index)
            .collect::<Vec<_>>(),
        [3],
        "{reply:?}"
    );
    let _web = TcpEchoServer::start(&r.vm1, addr("0.0.0.0:7000")).unwrap();
    let web = addr("10.1.1.5:7000");
    assert!(tcp_connect(&r.vm2, web, SHORT).unwrap());

    // Another tier's ACL change applies, proven by packets.
    let generation = r.next_generation();
    let reply = r
        .call(move |mut c| async move {
            c.set_network_acl(pb::SetNetworkAclRequest {
                generation,
                acl: Some(pb::NetworkAcl {
                    device_index: 2,
                    mac_address: mac(2),
                    ..Default::default()
                }),
            })
            .await
        })
        .expect("an ACL change on eth2 is not held back by eth3's DHCP");
    assert_eq!(reply.dhcp_failures.len(), 1, "{reply:?}");
    assert!(
        reply.dhcp_failures[0]
            .error
            .contains("Address already in use"),
        "{:?}",
        reply.dhcp_failures
    );
    assert!(
        !tcp_connect(&r.vm2, web, SHORT).unwrap(),
        "eth2's ingress now denies"
    );

    let state = r.state();
    let eth3 = state.dnsmasq.iter().find(|d| d.device_index == 3).unwrap();
    assert!(!eth3.running && !eth3.error.is_empty(), "{eth3:?}");
    assert!(
        state.part_errors.iter().any(|p| p.part == "dnsmasq"),
        "{state:?}"
    );
    assert!(
        state
            .dnsmasq
            .iter()
            .any(|d| d.device_index == 2 && d.running)
    );
    assert!(state.serving, "everything but eth3's DHCP is applied");

    // Once the port is free, the retry starts it and DNS answers on eth3.
    drop(squatter);
    wait_for("eth3's dnsmasq to start", Duration::from_secs(10), || {
        let state = r.state();
        state
            .dnsmasq
            .iter()
            .any(|d| d.device_index == 3 && d.running)
            && state.part_errors.is_empty()
    });
    let out = r
        .lab
        .exec(&r.vm2, &["busybox", "nslookup", "web-1", "10.1.2.1"])
        .expect("nslookup through eth3's dnsmasq");
    assert!(out.stdout.contains("10.1.1.5"), "{}", out.stdout);
    let repairs = r.state().repairs.unwrap();
    assert!(
        repairs.last_repaired.iter().any(|l| l.contains("eth3")),
        "{repairs:?}"
    );
}

#[test]
fn a_rule_inserted_right_after_an_apply_is_removed_at_the_next_tick() {
    let mut r = RouterLab::start("drift_first_tick");
    r.apply_config(r.base_config());
    let _web = TcpEchoServer::start(&r.vm1, addr("0.0.0.0:7000")).unwrap();
    let web = addr("10.1.1.5:7000");
    assert!(
        !tcp_connect(&r.vm2, web, SHORT).unwrap(),
        "eth2 does not allow 7000"
    );
    // Ticks without drift repair nothing (the planned shape matches).
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(r.state().repairs.unwrap().drift_found, 0);

    let mut config = r.base_config();
    config.network_acls[0].items.pop();
    r.apply_config(config);
    nft(
        &r,
        &["insert", "rule", "inet", "vpc", "filter_forward", "accept"],
    );
    wait_for("the inserted rule to go", Duration::from_secs(5), || {
        !nft(&r, &["list", "chain", "inet", "vpc", "filter_forward"])
            .lines()
            .any(|l| l.trim() == "accept")
    });
    assert!(
        !tcp_connect(&r.vm2, web, SHORT).unwrap(),
        "the hole is closed"
    );
    let repairs = r.state().repairs.unwrap();
    assert_eq!(
        (repairs.drift_found, repairs.repaired),
        (1, 1),
        "{repairs:?}"
    );
    assert!(repairs.last_repair_unix_ms > 0);
    assert!(
        repairs
            .last_repaired
            .iter()
            .any(|l| l.contains("filter_forward")),
        "{repairs:?}"
    );

    // A rule changed in place (same shape) is found too.
    std::thread::sleep(Duration::from_millis(1200));
    let listed = nft(
        &r,
        &["-a", "list", "chain", "inet", "vpc", "filter_forward"],
    );
    let handle = listed
        .lines()
        .find(|l| l.contains("ct state invalid drop"))
        .and_then(|l| l.rsplit("# handle ").next())
        .unwrap()
        .trim()
        .to_string();
    nft(
        &r,
        &[
            "replace",
            "rule",
            "inet",
            "vpc",
            "filter_forward",
            "handle",
            &handle,
            "accept",
        ],
    );
    wait_for("the replaced rule to go", Duration::from_secs(5), || {
        !nft(&r, &["list", "chain", "inet", "vpc", "filter_forward"])
            .lines()
            .any(|l| l.trim() == "accept")
    });
    assert!(
        !tcp_connect(&r.vm2, web, SHORT).unwrap(),
        "the hole is closed again"
    );
    assert_eq!(r.state().repairs.unwrap().repaired, 2);
}

#[test]
fn a_killed_dnsmasq_shows_dead_until_the_reconcile_loop_restarts_it() {
    let mut r = RouterLab::start("dnsmasq_dead");
    r.kill_agent();
    r.reconcile_interval = "3".into();
    r.spawn_agent();
    r.apply_config(r.base_config());
    let before = r.state();
    let eth2 = before.dnsmasq.iter().find(|d| d.device_index == 2).unwrap();
    assert!(eth2.running, "{eth2:?}");
    let pid = eth2.pid;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("the kill", Duration::from_secs(5), || {
        !vpc_integration::process_exists(pid)
    });
    let state = r.state();
    let eth2 = state.dnsmasq.iter().find(|d| d.device_index == 2).unwrap();
    assert!(
        !eth2.running,
        "a dead dnsmasq is not shown as running: {eth2:?}"
    );
    wait_for("the restart", Duration::from_secs(10), || {
        r.state()
            .dnsmasq
            .iter()
            .any(|d| d.device_index == 2 && d.running && d.pid != pid)
    });
    let repairs = r.state().repairs.unwrap();
    assert!(repairs.repaired >= 1, "{repairs:?}");
    assert!(
        repairs
            .last_repaired
            .iter()
            .any(|l| l.contains("eth2: dnsmasq")),
        "{repairs:?}"
    );
}

#[test]
fn the_agent_is_not_serving_while_it_cannot_apply_its_state() {
    let mut r = RouterLab::start("not_serving");
    r.apply_config(r.base_config());
    assert!(r.state().serving);
    // eth3 loses the MAC the state names: the state cannot be applied at
    // the next start.
    r.kill_agent();
    let ip = |r: &RouterLab, args: &[&str]| {
        r.lab.ip(&r.r, args).unwrap();
    };
    ip(&r, &["link", "set", "eth3", "down"]);
    ip(&r, &["link", "set", "eth3", "address", "02:00:00:00:00:99"]);
    r.spawn_agent();
    let state = r.state();
    assert!(!state.serving, "{state:?}");
    assert!(
        state
            .part_errors
            .iter()
            .any(|p| p.part == "netlink" && p.error.contains("02:00:00:00:00:03")),
        "{:?}",
        state.part_errors
    );
    // The link comes back: the reconcile loop applies, and it serves again.
    ip(&r, &["link", "set", "eth3", "address", &mac(3)]);
    wait_for("serving again", Duration::from_secs(10), || {
        r.state().serving
    });
    let state = r.state();
    assert!(state.part_errors.is_empty(), "{:?}", state.part_errors);
    assert!(state.last_error.is_empty());
}

/// A state with only a public NIC and its address: no control NIC yet.
fn public_only() -> pb::RouterConfig {
    let mut config = vr_agent::testing::sample_config();
    config.nics.retain(|n| n.device_index == 1);
    config
        .public_ips
        .retain(|p| p.device_index == 1 && p.source_nat);
    config.guest_networks.clear();
    config.source_nat_rules.clear();
    config.static_routes.clear();
    config.network_acls.clear();
    config.port_forwarding_rules.clear();
    config.static_nat_rules.clear();
    config.load_balancer_rules.clear();
    config.dhcp.clear();
    config
}

#[test]
fn the_agent_port_stays_closed_on_the_public_nic_until_a_control_nic_is_known() {
    let listen = ["--listen", "tcp://0.0.0.0:3922", "--insecure"];
    let mut r = RouterLab::start_with("agent_port", listen.iter().map(|s| s.to_string()).collect());
    let agent = addr("203.0.113.10:3922");
    let restart = |r: &mut RouterLab| {
        r.kill_agent();
        StateStore::open(&r.state_dir)
            .unwrap()
            .save(&Desired {
                generation: 1,
                config: public_only(),
            })
            .unwrap();
        r.spawn_agent();
        // Up once the loopback reaches it and the public address is set.
        wait_for("the agent", Duration::from_secs(10), || {
            tcp_connect(&r.r, addr("127.0.0.1:3922"), SHORT).unwrap()
                && r.lab
                    .addresses(&r.r, "eth1")
                    .is_ok_and(|a| a.iter().any(|a| a.starts_with("203.0.113.10")))
        });
    };
    restart(&mut r);
    assert!(
        !tcp_connect(&r.up, agent, SHORT).unwrap(),
        "the agent port is open on the public NIC"
    );
    r.extra_args.push("--open-agent-port-before-control".into());
    restart(&mut r);
    assert!(
        tcp_connect(&r.up, agent, SHORT).unwrap(),
        "opened explicitly"
    );
}
