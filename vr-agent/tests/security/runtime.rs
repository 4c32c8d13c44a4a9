//! The running router: forged source addresses, a corrupt state file, a failing
//! dnsmasq, drift, and what GetState and health report.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use vpc_integration::{Netns, UdpEchoServer, run_in_netns, tcp_probe, udp_probe};

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
    let _web = vpc_integration::TcpEchoServer::start(&r.vm1, addr("0.0.0.0:80")).unwrap();
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
