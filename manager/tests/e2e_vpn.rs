//! End to end, with real packets: two VPCs on this host, each the other's
//! customer gateway, through the manager's API only. A VM in one reaches a
//! VM in the other through the tunnel (TCP and ping, each side seeing the
//! other's real address) while the tiers' ACLs decide; a wrong pre-shared key
//! shows as Error with charon's reason; resetVpnConnection reconnects;
//! deleting the connections tears the tunnel down and closes the IKE ports
//! (the router's live nft table, read through GetState).
//!
//! The time from createVpnConnection to Connected is printed
//! (`scripts/bench/vpn.sh` collects it); nothing asserts on it.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::api::{Client, id, job_ok, run_job};
use support::e2e::{E2e, blocking, ping_ok, tcp_ok};
use vpc_integration::{Netns, TcpEchoServer};
use vpc_manager::settings::AgentTransport;

fn s(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .to_string()
}

/// The source address a server at `to` sees for a connection from `from`.
async fn seen_as(from: &Netns, to: SocketAddr) -> Option<IpAddr> {
    let from = from.clone();
    blocking(move || vpc_integration::tcp_probe(&from, to, Duration::from_secs(2)).ok())
        .await
        .map(|r| r.seen_as.ip())
}

/// One side: a VPC with a tier whose ACL lets `peer_cidr` in on TCP 7000
/// and 7300 and ICMP, a VM, and the VPC's VPN gateway.
struct Side {
    vpc: String,
    router: String,
    gateway: String,
    public_ip: String,
    vm: Netns,
    vm_ip: Ipv4Addr,
}

async fn side(
    e: &E2e,
    admin: &Client,
    name: &str,
    cidr: &str,
    tier_gw: &str,
    peer_cidr: &str,
) -> Side {
    let vpc = s(&e.vpc(admin, name, cidr).await, "id");
    let acl = id(
        &job_ok(
            admin,
            "createNetworkACLList",
            &[("name", name), ("description", name), ("vpcid", &vpc)],
        )
        .await,
        "networkacllist",
    );
    // 7000: the echo servers; 7300: iperf3 (the throughput bench).
    for (protocol, ports) in [("tcp", Some("7000")), ("tcp", Some("7300")), ("icmp", None)] {
        let mut p = vec![
            ("aclid", acl.as_str()),
            ("protocol", protocol),
            ("cidrlist", peer_cidr),
            ("action", "Allow"),
            ("traffictype", "Ingress"),
        ];
        if let Some(port) = ports {
            p.extend([("startport", port), ("endport", port)]);
        } else {
            p.extend([("icmptype", "-1"), ("icmpcode", "-1")]);
        }
        job_ok(admin, "createNetworkACL", &p).await;
    }
    let tier = s(
        &e.tier(admin, &vpc, "web", tier_gw, Some(&acl), false).await,
        "id",
    );
    let vm = e.vm(admin, &tier, &format!("{name}-vm")).await;
    let vm_ip = e.lease(&vm).await;
    let router = s(
        &admin.ok("listRouters", &[("vpcid", &vpc)]).await["router"][0],
        "name",
    );
    let gw = job_ok(admin, "createVpnGateway", &[("vpcid", &vpc)]).await["vpngateway"].clone();
    Side {
        vpc,
        router,
        gateway: s(&gw, "id"),
        public_ip: s(&gw, "publicip"),
        vm: e.vm_ns(&vm),
        vm_ip,
    }
}

const PSK: &str = "shared secret of a and b";

/// createVpnCustomerGateway for the peer at `gateway` with `cidr` behind it.
async fn customer(admin: &Client, name: &str, gateway: &str, cidr: &str) -> String {
    let p = customer_params(name, gateway, cidr, PSK);
    let done = job_ok(admin, "createVpnCustomerGateway", &p).await;
    s(&done["vpncustomergateway"], "id")
}

fn customer_params<'a>(
    name: &'a str,
    gateway: &'a str,
    cidr: &'a str,
    psk: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("name", name),
        ("gateway", gateway),
        ("cidrlist", cidr),
        ("ipsecpsk", psk),
        ("ikepolicy", "aes128-sha256;modp2048"),
        ("esppolicy", "aes128-sha256"),
        ("dpd", "true"),
    ]
}

/// updateVpnCustomerGateway with key `psk` (the connections using it restart).
async fn update(admin: &Client, id: &str, gateway: &str, psk: &str) {
    let mut p = customer_params("to-b", gateway, "10.82.0.0/16", psk);
    p.push(("id", id));
    job_ok(admin, "updateVpnCustomerGateway", &p).await;
}

/// Polls listVpnConnections until `conn` is in `state`; returns the row and
/// how long it took.
async fn wait_state(admin: &Client, conn: &str, state: &str) -> (Value, Duration) {
    let started = Instant::now();
    loop {
        let row = admin.ok("listVpnConnections", &[("id", conn)]).await["vpnconnection"][0].clone();
        if row["state"] == state {
            return (row, started.elapsed());
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "connection {conn} not {state}: {row}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// iperf3 for 3 s from `from` to a server in `to` (at `ip`); Mbit/s
/// received. The server is the test's own process, ended by its pid.
fn throughput(from: &Netns, to: &Netns, ip: Ipv4Addr) -> f64 {
    let mut server = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            to.name(),
            "iperf3",
            "-s",
            "-1",
            "-p",
            "7300",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("iperf3 server");
    std::thread::sleep(Duration::from_millis(300));
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            from.name(),
            "iperf3",
            "-c",
            &ip.to_string(),
            "-p",
            "7300",
            "-t",
            "3",
            "-J",
        ])
        .output()
        .expect("iperf3 client");
    let _ = server.kill();
    let _ = server.wait();
    let report: Value = serde_json::from_slice(&out.stdout).expect("iperf3 JSON");
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("no throughput in {report}"))
        / 1e6
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_vpcs_reach_each_other_through_a_site_to_site_tunnel() {
    let e = E2e::start(AgentTransport::Unix).await;
    let admin = e.admin();
    let a = side(
        &e,
        &admin,
        "vpn-a",
        "10.81.0.0/16",
        "10.81.1.1",
        "10.82.0.0/16",
    )
    .await;
    let b = side(
        &e,
        &admin,
        "vpn-b",
        "10.82.0.0/16",
        "10.82.1.1",
        "10.81.0.0/16",
    )
    .await;
    let (b_vm, a_vm) = (b.vm.clone(), a.vm.clone());
    let (_srv_b, _srv_a) = blocking(move || {
        (
            TcpEchoServer::start(&b_vm, SocketAddr::from(([0, 0, 0, 0], 7000))).unwrap(),
            TcpEchoServer::start(&a_vm, SocketAddr::from(([0, 0, 0, 0], 7000))).unwrap(),
        )
    })
    .await;
    let to_b = SocketAddr::from((b.vm_ip, 7000));
    let to_a = SocketAddr::from((a.vm_ip, 7000));
    assert!(!tcp_ok(&a.vm, to_b).await, "no route between the VPCs yet");

    // Each VPC is the other's customer gateway. B only answers (passive), so
    // the tunnel is A's to bring up.
    let cg_b = customer(&admin, "to-b", &b.public_ip, "10.82.0.0/16").await;
    let cg_a = customer(&admin, "to-a", &a.public_ip, "10.81.0.0/16").await;
    let conn_b = job_ok(
        &admin,
        "createVpnConnection",
        &[
            ("s2svpngatewayid", &b.gateway),
            ("s2scustomergatewayid", &cg_a),
            ("passive", "true"),
        ],
    )
    .await["vpnconnection"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let started = Instant::now();
    let conn_a = job_ok(
        &admin,
        "createVpnConnection",
        &[
            ("s2svpngatewayid", &a.gateway),
            ("s2scustomergatewayid", &cg_b),
        ],
    )
    .await["vpnconnection"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_state(&admin, &conn_a, "Connected").await;
    let connected = started.elapsed();
    // Packets pass once the child SA is installed on both ends.
    let mut passing = None;
    while started.elapsed() < Duration::from_secs(30) {
        if tcp_ok(&a.vm, to_b).await {
            passing = Some(started.elapsed());
            break;
        }
    }
    let passing = passing.expect("A's VM reaches B's VM through the tunnel");
    println!(
        "vpn-bench: createVpnConnection to Connected {} ms, to packets passing {} ms (userspace IPsec, kernel-libipsec)",
        connected.as_millis(),
        passing.as_millis()
    );

    // Real addresses both ways; ping too.
    assert_eq!(seen_as(&a.vm, to_b).await, Some(IpAddr::V4(a.vm_ip)));
    assert_eq!(seen_as(&b.vm, to_a).await, Some(IpAddr::V4(b.vm_ip)));
    assert!(ping_ok(&a.vm, b.vm_ip).await);
    assert!(ping_ok(&b.vm, a.vm_ip).await);
    // The tiers' ACLs still decide: B's tier lets only port 7000 in.
    let _other = {
        let b_vm = b.vm.clone();
        blocking(move || {
            TcpEchoServer::start(&b_vm, SocketAddr::from(([0, 0, 0, 0], 7001))).unwrap()
        })
        .await
    };
    assert!(
        !tcp_ok(&a.vm, SocketAddr::from((b.vm_ip, 7001))).await,
        "B's ACL refuses 7001"
    );
    let listed = admin.ok("listVpnConnections", &[("vpcid", &a.vpc)]).await;
    assert_eq!(listed["count"], 1);

    // A wrong key on A's side: Error, with charon's reason.
    update(&admin, &cg_b, &b.public_ip, "not the shared secret").await;
    let (row, _) = wait_state(&admin, &conn_a, "Error").await;
    let reason = row["reason"].as_str().unwrap_or_default().to_string();
    assert!(
        reason.contains("AUTHENTICATION_FAILED") || reason.contains("MAC"),
        "{row}"
    );
    assert!(!tcp_ok(&a.vm, to_b).await, "no tunnel with a wrong key");

    // The right key again, then resetVpnConnection: connected again.
    update(&admin, &cg_b, &b.public_ip, PSK).await;
    let reset = run_job(&admin, "resetVpnConnection", &[("id", &conn_a)]).await;
    assert_eq!(reset["jobstatus"], 1, "{reset}");
    let (_, again) = wait_state(&admin, &conn_a, "Connected").await;
    println!(
        "vpn-bench: resetVpnConnection to Connected {} ms",
        again.as_millis()
    );
    let mut back = false;
    for _ in 0..40 {
        if tcp_ok(&a.vm, to_b).await {
            back = true;
            break;
        }
    }
    assert!(back, "the tunnel carries traffic again after the reset");

    if std::env::var_os("VPN_BENCH_THROUGHPUT").is_some() {
        let (from, to) = (a.vm.clone(), b.vm.clone());
        let mbps = blocking(move || throughput(&from, &to, b.vm_ip)).await;
        println!(
            "vpn-bench: TCP throughput through the tunnel {mbps:.0} Mbit/s (userspace IPsec, kernel-libipsec, aes128-sha256)"
        );
    }

    // A new router (restartVPC with cleanup) reconnects by itself: its
    // configuration carries the VPN.
    let restarted = run_job(&admin, "restartVPC", &[("id", &a.vpc), ("cleanup", "true")]).await;
    assert_eq!(restarted["jobstatus"], 1, "{restarted}");
    let router_a = s(
        &admin.ok("listRouters", &[("vpcid", &a.vpc)]).await["router"][0],
        "name",
    );
    let started = Instant::now();
    let mut back = false;
    while started.elapsed() < Duration::from_secs(30) {
        if tcp_ok(&a.vm, to_b).await {
            back = true;
            break;
        }
    }
    assert!(
        back,
        "the new router {router_a} brought the tunnel up again"
    );
    println!(
        "vpn-bench: restartVPC cleanup=true to packets passing {} ms",
        started.elapsed().as_millis()
    );
    wait_state(&admin, &conn_a, "Connected").await;

    // Deleting the connections tears the tunnel down and closes the ports.
    let ports = "udp dport { 500, 4500 }";
    let table = e.agent_state(&router_a).await.unwrap().live_ruleset;
    assert!(table.contains(ports), "{table}");
    job_ok(&admin, "deleteVpnConnection", &[("id", &conn_a)]).await;
    job_ok(&admin, "deleteVpnConnection", &[("id", &conn_b)]).await;
    for r in [&router_a, &b.router] {
        let state = e.agent_state(r).await.unwrap();
        assert!(
            !state.live_ruleset.contains(ports),
            "{}",
            state.live_ruleset
        );
        assert!(state.vpn.is_empty());
    }
    assert!(
        !tcp_ok(&a.vm, to_b).await,
        "no tunnel, no way between the VPCs"
    );
    job_ok(&admin, "deleteVpnGateway", &[("id", &a.gateway)]).await;
    job_ok(&admin, "deleteVpnGateway", &[("id", &b.gateway)]).await;
    e.finish().await;
}
