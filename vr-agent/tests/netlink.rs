//! Kernel tests of the netlink executor. Each test runs on its own thread in a
//! fresh, anonymous network namespace (`unshare(CLONE_NEWNET)` on that thread
//! only), so nothing reaches the host's namespace; the `ip` and `sh` children
//! the thread forks inherit that namespace. Results are checked independently
//! of the agent, with `ip -j`. Needs root.

#[path = "netlink/harness.rs"]
mod harness;
#[path = "netlink/json.rs"]
mod json;

use std::process::Command;
use std::time::{Duration, Instant};

use harness::{addresses, in_netns, ip, link_by_mac, owned_rules, route_get, routes, set, sysctl};
use json::JsonExt;
use nix::sched::{CloneFlags, unshare};
use vpc_proto::v1 as pb;
use vr_agent::apply::netlink::{NetReport, Netlink, NetlinkError};
use vr_agent::model::{Mac, Router};
use vr_agent::plan::net::{NetPlan, plan};

const MAC1: &str = "02:00:00:00:00:01";
const MAC2: &str = "02:00:00:00:00:02";
const MAC3: &str = "02:00:00:00:00:03";
const MAC4: &str = "02:00:00:00:00:04";

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// Creates the router's NICs as veth ends with the NICs' MACs. They start
/// misnamed, `eth2` holds NIC 3's MAC (so NIC 2 can only get its name after
/// that link has been moved aside), and `nic1` is already up.
fn make_nics() {
    for (name, mac, peer) in [
        ("nic1", MAC1, "peer1"),
        ("nic2", MAC2, "peer2"),
        ("eth2", MAC3, "peer3"),
        ("nic4", MAC4, "peer4"),
    ] {
        ip(&format!(
            "link add {name} address {mac} type veth peer name {peer}"
        ));
        ip(&format!("link set {peer} up"));
    }
    ip("link set nic1 up");
}

fn connect() -> Netlink {
    Netlink::connect().expect("netlink connection")
}

async fn apply(nl: &Netlink, plan: &NetPlan, released: &[Mac]) -> NetReport {
    nl.apply(plan, released)
        .await
        .unwrap_or_else(|e| panic!("apply failed: {e}"))
}

fn mac(s: &str) -> Mac {
    s.parse().unwrap()
}

// ---------------------------------------------------------------------------
// Desired states
// ---------------------------------------------------------------------------

fn nic(index: u32, mac: &str, role: pb::NicRole, mtu: u32) -> pb::Nic {
    pb::Nic {
        device_index: index,
        mac_address: mac.into(),
        role: role as i32,
        mtu,
        ..Default::default()
    }
}

fn tier(index: u32, cidr: &str, gateway: &str) -> pb::GuestNetwork {
    pb::GuestNetwork {
        device_index: index,
        cidr: cidr.into(),
        gateway: gateway.into(),
        ..Default::default()
    }
}

fn public_ip(index: u32, address: &str, gateway: &str, source_nat: bool) -> pb::PublicIp {
    pb::PublicIp {
        add: true,
        ip_address: address.into(),
        prefix_length: 24,
        gateway: gateway.into(),
        device_index: index,
        source_nat,
        ..Default::default()
    }
}

/// Plan A: public NIC eth1 (source NAT 203.0.113.10/24 via .1), tiers on eth2
/// (MTU 1450) and eth3, a private gateway on eth4 with one static route.
fn config_a() -> pb::RouterConfig {
    pb::RouterConfig {
        nics: vec![
            nic(1, MAC1, pb::NicRole::Public, 0),
            nic(2, MAC2, pb::NicRole::Guest, 1450),
            nic(3, MAC3, pb::NicRole::Guest, 0),
            nic(4, MAC4, pb::NicRole::Private, 0),
        ],
        guest_networks: vec![
            tier(2, "10.1.1.0/24", "10.1.1.1"),
            tier(3, "10.1.2.0/24", "10.1.2.1"),
        ],
        public_ips: vec![
            public_ip(1, "203.0.113.10", "203.0.113.1", true),
            public_ip(4, "172.16.0.10", "172.16.0.1", false),
        ],
        static_routes: vec![pb::StaticRoute {
            cidr: "192.168.50.0/24".into(),
            next_hop: "172.16.0.1".into(),
            gateway_ip: "172.16.0.10".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Plan B: plan A without the second tier and the static route, with another
/// source-NAT IP.
fn config_b() -> pb::RouterConfig {
    let mut c = config_a();
    c.guest_networks.truncate(1);
    c.static_routes.clear();
    c.public_ips[0] = public_ip(1, "203.0.113.20", "203.0.113.1", true);
    c
}

/// Plan A without the private gateway NIC (unplugged).
fn config_without_eth4() -> pb::RouterConfig {
    let mut c = config_a();
    c.nics.retain(|n| n.device_index != 4);
    c.public_ips.retain(|p| p.device_index != 4);
    c.static_routes.clear();
    c
}

fn plan_of(config: &pb::RouterConfig) -> NetPlan {
    plan(&Router::from_config(config).expect("valid config"))
}

/// Everything plan A puts in the kernel.
fn assert_plan_a_applied() {
    assert_eq!(link_by_mac(MAC1), ("eth1".into(), 1500, true));
    assert_eq!(link_by_mac(MAC2), ("eth2".into(), 1450, true));
    assert_eq!(link_by_mac(MAC3), ("eth3".into(), 1500, true));
    assert_eq!(link_by_mac(MAC4), ("eth4".into(), 1500, true));
    assert_eq!(addresses("eth1"), ["203.0.113.10/24"]);
    assert_eq!(addresses("eth2"), ["10.1.1.1/24"]);
    assert_eq!(addresses("eth3"), ["10.1.2.1/24"]);
    assert_eq!(addresses("eth4"), ["172.16.0.10/24"]);
    assert_eq!(
        routes("101"),
        set(&[
            "default via 203.0.113.1 dev eth1 proto 196",
            "203.0.113.0/24 dev eth1 proto 196",
            "throw 10.1.1.0/24 proto 196",
            "throw 10.1.2.0/24 proto 196",
        ])
    );
    assert_eq!(
        routes("102"),
        set(&[
            "10.1.1.0/24 dev eth2 proto 196",
            "throw 10.1.2.0/24 proto 196"
        ])
    );
    assert_eq!(
        routes("103"),
        set(&[
            "10.1.2.0/24 dev eth3 proto 196",
            "throw 10.1.1.0/24 proto 196"
        ])
    );
    assert_eq!(
        routes("104"),
        set(&[
            "default via 172.16.0.1 dev eth4 proto 196",
            "172.16.0.0/24 dev eth4 proto 196",
            "throw 10.1.1.0/24 proto 196",
            "throw 10.1.2.0/24 proto 196",
        ])
    );
    // The main table also holds the kernel's connected routes.
    assert_eq!(
        routes("main"),
        set(&[
            "default via 203.0.113.1 dev eth1 proto 196",
            "192.168.50.0/24 via 172.16.0.1 dev eth4 proto 196",
            "10.1.1.0/24 dev eth2 proto kernel",
            "10.1.2.0/24 dev eth3 proto kernel",
            "172.16.0.0/24 dev eth4 proto kernel",
            "203.0.113.0/24 dev eth1 proto kernel",
        ])
    );
    assert_eq!(
        owned_rules(),
        [
            "1001 0x65 101",
            "1002 0x66 102",
            "1003 0x67 103",
            "1004 0x68 104"
        ]
    );
    assert_eq!(sysctl("net.ipv4.ip_forward"), "1");
    assert_eq!(sysctl("net.ipv4.conf.all.rp_filter"), "2");
    for dev in ["eth1", "eth2", "eth3", "eth4"] {
        assert_eq!(
            sysctl(&format!("net.ipv4.conf.{dev}.rp_filter")),
            "2",
            "{dev}"
        );
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn plan_is_applied_and_reapplying_changes_nothing() {
    in_netns(|| async {
        make_nics();
        let nl = connect();
        let plan = plan_of(&config_a());

        let report = apply(&nl, &plan, &[]).await;
        let at = |line: &str| report.changes.iter().position(|c| c == line);
        assert!(
            at("set link nic1 down").is_some()
                && at("set link nic1 down") < at("rename link nic1 to eth1"),
            "a running link is set down before its rename: {:#?}",
            report.changes
        );
        assert!(
            report
                .changes
                .iter()
                .any(|c| c.starts_with("rename link eth2 to vrtmp")),
            "{:#?}",
            report.changes
        );
        assert!(
            report
                .changes
                .contains(&"add address 10.1.1.1/24 dev eth2".to_string()),
            "{:#?}",
            report.changes
        );
        assert_eq!(
            report.added_addresses.len(),
            4,
            "{:?}",
            report.added_addresses
        );
        assert_plan_a_applied();

        // The tables work: a reply marked for eth1 leaves by eth1's gateway,
        // a tier destination is thrown back to the main table.
        assert!(route_get("198.51.100.7 mark 0x65").contains("via 203.0.113.1 dev eth1"));
        assert!(route_get("10.1.2.9 mark 0x65").contains("dev eth3"));
        assert!(route_get("192.168.50.9").contains("via 172.16.0.1 dev eth4"));

        let again = apply(&nl, &plan, &[]).await;
        assert_eq!(
            again,
            NetReport::default(),
            "a second apply changes nothing"
        );
        assert_eq!(nl.drift(&plan).await.expect("drift"), Vec::<String>::new());
        assert_plan_a_applied();
    });
}

#[test]
fn stale_owned_routes_rules_and_addresses_are_removed() {
    in_netns(|| async {
        make_nics();
        let nl = connect();
        apply(&nl, &plan_of(&config_a()), &[]).await;
        // Agent-owned leftovers the plan does not know: a route with the
        // agent's protocol, a rule in its priority range, an address on eth2.
        ip("route add 198.51.100.0/24 via 203.0.113.1 dev eth1 table 101 proto 196");
        ip("rule add from 10.9.0.0/16 lookup 150 priority 1500");
        ip("addr add 10.1.1.99/24 dev eth2");

        let plan = plan_of(&config_b());
        let report = apply(&nl, &plan, &[]).await;
        for line in [
            "delete route table 101 198.51.100.0/24 via 203.0.113.1 dev eth1",
            "delete route table 101 throw 10.1.2.0/24",
            "delete route table main 192.168.50.0/24 via 172.16.0.1 dev eth4",
            "delete address 10.1.1.99/24 dev eth2",
            "delete address 10.1.2.1/24 dev eth3",
            "delete address 203.0.113.10/24 dev eth1",
            "add address 203.0.113.20/24 dev eth1",
        ] {
            assert!(
                report.changes.iter().any(|c| c == line),
                "missing {line:?} in {:#?}",
                report.changes
            );
        }
        assert!(
            report
                .changes
                .iter()
                .any(|c| c.starts_with("delete rule priority 1500")),
            "{:#?}",
            report.changes
        );

        assert_eq!(addresses("eth1"), ["203.0.113.20/24"]);
        assert_eq!(addresses("eth2"), ["10.1.1.1/24"]);
        assert_eq!(addresses("eth3"), Vec::<String>::new());
        assert_eq!(
            routes("101"),
            set(&[
                "default via 203.0.113.1 dev eth1 proto 196",
                "203.0.113.0/24 dev eth1 proto 196",
                "throw 10.1.1.0/24 proto 196"
            ])
        );
        assert_eq!(routes("102"), set(&["10.1.1.0/24 dev eth2 proto 196"]));
        assert_eq!(routes("103"), set(&["throw 10.1.1.0/24 proto 196"]));
        assert!(
            !routes("main")
                .iter()
                .any(|r| r.starts_with("192.168.50.0/24"))
        );
        assert_eq!(
            owned_rules(),
            [
                "1001 0x65 101",
                "1002 0x66 102",
                "1003 0x67 103",
                "1004 0x68 104"
            ]
        );

        assert_eq!(apply(&nl, &plan, &[]).await, NetReport::default());
    });
}

#[test]
fn foreign_routes_are_left_alone() {
    in_netns(|| async {
        make_nics();
        let nl = connect();
        let plan = plan_of(&config_a());
        apply(&nl, &plan, &[]).await;
        ip("route add 198.51.100.0/24 via 203.0.113.1 dev eth1 table 101 proto static");
        ip("route add 198.51.100.0/24 via 172.16.0.1 dev eth4 proto boot");
        ip("rule add fwmark 0x99 lookup 101 priority 500");

        assert_eq!(apply(&nl, &plan, &[]).await, NetReport::default());
        // A smaller plan removes owned routes of table 101 but not these.
        apply(&nl, &plan_of(&config_b()), &[]).await;
        assert!(routes("101").contains("198.51.100.0/24 via 203.0.113.1 dev eth1 proto static"));
        assert!(routes("main").contains("198.51.100.0/24 via 172.16.0.1 dev eth4 proto boot"));
        assert!(routes("main").contains("10.1.1.0/24 dev eth2 proto kernel"));
        assert!(ip("-4 rule show").contains("500:\tfrom all fwmark 0x99 lookup 101"));
        let observed = nl.observe().await.expect("observe");
        assert!(
            observed
                .routes
                .iter()
                .all(|r| r.destination.to_string() != "198.51.100.0/24")
        );

        // A foreign route holding a planned (table, destination) is not
        // replaced: the apply reports nothing, drift keeps naming it.
        let plan = plan_of(&config_b());
        ip("route del default table main");
        ip("route add default via 203.0.113.254 dev eth1 proto boot");
        assert_eq!(apply(&nl, &plan, &[]).await, NetReport::default());
        assert!(routes("main").contains("default via 203.0.113.254 dev eth1 proto boot"));
        assert_eq!(
            nl.drift(&plan).await.expect("drift"),
            ["add route table main 0.0.0.0/0 via 203.0.113.1 dev eth1"]
        );
    });
}

#[test]
fn unknown_mac_is_reported_not_found() {
    in_netns(|| async {
        make_nics();
        let nl = connect();
        let mut config = config_a();
        config
            .nics
            .push(nic(5, "02:00:00:00:00:55", pb::NicRole::Guest, 0));
        let err = nl
            .apply(&plan_of(&config), &[])
            .await
            .expect_err("a NIC without link");
        assert!(
            matches!(&err, NetlinkError::LinkNotFound { mac } if mac.to_string() == "02:00:00:00:00:55"),
            "{err:?}"
        );
        // Nothing was changed before the error.
        assert_eq!(link_by_mac(MAC1), ("nic1".into(), 1500, true));
        assert_eq!(link_by_mac(MAC3), ("eth2".into(), 1500, false));
        assert!(addresses("nic1").is_empty());
        assert!(owned_rules().is_empty());
    });
}

#[test]
fn released_nic_loses_its_addresses_and_goes_down() {
    in_netns(|| async {
        make_nics();
        let nl = connect();
        apply(&nl, &plan_of(&config_a()), &[]).await;
        let plan = plan_of(&config_without_eth4());
        let report = apply(&nl, &plan, &[mac(MAC4)]).await;
        assert!(
            report
                .changes
                .contains(&"delete address 172.16.0.10/24 dev eth4".to_string()),
            "{:#?}",
            report.changes
        );
        assert!(
            report.changes.contains(&"set link eth4 down".to_string()),
            "{:#?}",
            report.changes
        );

        let (name, _, up) = link_by_mac(MAC4);
        assert_eq!((name.as_str(), up), ("eth4", false));
        assert!(addresses("eth4").is_empty());
        assert!(routes("104").is_empty());
        assert!(!routes("main").iter().any(|r| r.contains("eth4")));
        assert_eq!(
            owned_rules(),
            ["1001 0x65 101", "1002 0x66 102", "1003 0x67 103"]
        );
        assert_eq!(apply(&nl, &plan, &[mac(MAC4)]).await, NetReport::default());
    });
}

#[test]
fn drift_reports_a_deleted_route_and_apply_repairs_it() {
    in_netns(|| async {
        make_nics();
        let nl = connect();
        let plan = plan_of(&config_a());
        apply(&nl, &plan, &[]).await;
        ip("route del default table 101");
        ip("rule del priority 1003");

        let drift = nl.drift(&plan).await.expect("drift");
        assert_eq!(
            drift,
            [
                "add route table 101 0.0.0.0/0 via 203.0.113.1 dev eth1",
                "add rule priority 1003 fwmark 0x67 lookup 103"
            ]
        );
        let report = apply(&nl, &plan, &[]).await;
        assert_eq!(report.changes, drift);
        assert_eq!(nl.drift(&plan).await.expect("drift"), Vec::<String>::new());
        assert_plan_a_applied();
    });
}

#[test]
fn a_replaced_target_is_reported_as_drift_and_replaced() {
    in_netns(|| async {
        make_nics();
        let nl = connect();
        let plan = plan_of(&config_a());
        apply(&nl, &plan, &[]).await;
        // Same table and destination, another gateway, still the agent's.
        ip("route replace default via 203.0.113.254 dev eth1 table 101 proto 196");
        let drift = nl.drift(&plan).await.expect("drift");
        assert_eq!(
            drift,
            [
                "replace route table 101 0.0.0.0/0 via 203.0.113.254 dev eth1 with table 101 0.0.0.0/0 via 203.0.113.1 dev eth1"
            ]
        );
        apply(&nl, &plan, &[]).await;
        assert_plan_a_applied();
    });
}

#[test]
fn gratuitous_arp_reaches_the_upstream_neighbour() {
    in_netns(|| async {
        // The upstream namespace: a second anonymous namespace, kept alive
        // by an open descriptor of it.
        let upstream = std::thread::spawn(|| {
            unshare(CloneFlags::CLONE_NEWNET).expect("unshare");
            std::fs::File::open("/proc/thread-self/ns/net").expect("open netns")
        })
        .join()
        .expect("upstream thread");
        let upstream_path = format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            std::os::fd::AsRawFd::as_raw_fd(&upstream)
        );
        let in_upstream = |argv: &[&str]| -> String {
            let mut cmd = Command::new("nsenter");
            cmd.arg(format!("--net={upstream_path}")).args(argv);
            let out = cmd.output().expect("nsenter");
            assert!(
                out.status.success(),
                "{argv:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };

        ip(&format!(
            "link add nic1 address {MAC1} type veth peer name up0"
        ));
        ip(&format!("link set up0 netns {upstream_path}"));
        in_upstream(&["ip", "addr", "add", "203.0.113.1/24", "dev", "up0"]);
        in_upstream(&[
            "sh",
            "-c",
            "echo 1 > /proc/sys/net/ipv4/conf/up0/arp_accept",
        ]);
        in_upstream(&["ip", "link", "set", "up0", "up"]);

        let config = pb::RouterConfig {
            nics: vec![nic(1, MAC1, pb::NicRole::Public, 0)],
            public_ips: vec![public_ip(1, "203.0.113.10", "203.0.113.1", true)],
            ..Default::default()
        };
        let nl = connect();
        apply(&nl, &plan_of(&config), &[]).await;

        // The upstream router never asked for 203.0.113.10; only the
        // gratuitous ARP can have taught it the address's MAC.
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let neigh = json::parse(&in_upstream(&[
                "ip", "-j", "-4", "neigh", "show", "dev", "up0",
            ]));
            let entry = neigh
                .items()
                .iter()
                .find(|n| n.str("dst") == Some("203.0.113.10"))
                .cloned();
            if let Some(entry) = entry {
                assert_eq!(entry.str("lladdr"), Some(MAC1));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no neighbour entry upstream: {neigh:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    });
}

#[test]
fn a_tier_gateway_is_announced_so_vms_forget_a_replaced_router() {
    in_netns(|| async {
        // A VM of the tier, in a second anonymous namespace, that still
        // holds the gateway's entry with the MAC of the router this one
        // replaces (restartVPC cleanup=true).
        let vm = std::thread::spawn(|| {
            unshare(CloneFlags::CLONE_NEWNET).expect("unshare");
            std::fs::File::open("/proc/thread-self/ns/net").expect("open netns")
        })
        .join()
        .expect("VM thread");
        let vm_path = format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            std::os::fd::AsRawFd::as_raw_fd(&vm)
        );
        let in_vm = |argv: &[&str]| -> String {
            let out = Command::new("nsenter")
                .arg(format!("--net={vm_path}"))
                .args(argv)
                .output()
                .expect("nsenter");
            assert!(
                out.status.success(),
                "{argv:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        ip(&format!(
            "link add nic2 address {MAC2} type veth peer name vm0"
        ));
        ip(&format!("link set vm0 netns {vm_path}"));
        in_vm(&["ip", "addr", "add", "10.1.1.5/24", "dev", "vm0"]);
        in_vm(&["ip", "link", "set", "vm0", "up"]);
        let old_router = "02:00:00:00:00:99";
        in_vm(&[
            "ip",
            "neigh",
            "replace",
            "10.1.1.1",
            "lladdr",
            old_router,
            "dev",
            "vm0",
            "nud",
            "reachable",
        ]);

        let config = pb::RouterConfig {
            nics: vec![nic(2, MAC2, pb::NicRole::Guest, 0)],
            guest_networks: vec![tier(2, "10.1.1.0/24", "10.1.1.1")],
            ..Default::default()
        };
        let nl = connect();
        apply(&nl, &plan_of(&config), &[]).await;

        // The VM learns the new MAC at once; when the replaced router teaches
        // it the old one again (an ARP of its own while both still run), a
        // repeated announcement puts it right within a second.
        let learns_mac2 = |within: Duration| {
            let in_vm = &in_vm;
            async move {
                let deadline = Instant::now() + within;
                loop {
                    let neigh =
                        json::parse(&in_vm(&["ip", "-j", "-4", "neigh", "show", "dev", "vm0"]));
                    let lladdr = neigh
                        .items()
                        .iter()
                        .find(|n| n.str("dst") == Some("10.1.1.1"))
                        .and_then(|n| n.str("lladdr").map(str::to_string));
                    if lladdr.as_deref() == Some(MAC2) {
                        return;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "the VM still sends to {lladdr:?}: {neigh:?}"
                    );
                    // Not a thread sleep: the repeats run on this runtime.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        learns_mac2(Duration::from_millis(500)).await;
        in_vm(&[
            "ip",
            "neigh",
            "replace",
            "10.1.1.1",
            "lladdr",
            old_router,
            "dev",
            "vm0",
            "nud",
            "reachable",
        ]);
        learns_mac2(Duration::from_millis(1500)).await;
    });
}
