//! End to end, with real packets, for operations on the netns driver: a
//! private gateway with a static route to an on-premises network; a router
//! repaired without any API call after its agent is killed or its whole
//! namespace deleted; rebootRouter and `restartVPC cleanup=true` on a real
//! router; a teardown that leaves no namespace, process or bridge; a router
//! reached over TCP with mutual TLS; and network GC shutting an idle tier
//! down and a started VM bringing it back.

mod support;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::api::{Client, id, job_ok};
use support::e2e::{E2e, blocking, tcp_ok};
use vpc_integration::{Netns, TcpEchoServer};
use vpc_manager::driver::netns::OnPrem;
use vpc_manager::settings::AgentTransport;

/// Upstream's address (the public range's gateway).
const UPSTREAM: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

fn listen(ns: &Netns, port: u16) -> TcpEchoServer {
    TcpEchoServer::start(ns, SocketAddr::from(([0, 0, 0, 0], port))).expect("listener")
}

fn s(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .to_string()
}

/// The source address a server at `to` sees for a connection from `from`
/// (None when the connection fails).
async fn seen_as(from: &Netns, to: SocketAddr) -> Option<IpAddr> {
    let from = from.clone();
    blocking(move || vpc_integration::tcp_probe(&from, to, Duration::from_secs(2)).ok())
        .await
        .map(|r| r.seen_as.ip())
}

/// Polls `check` every 100 ms until it holds; panics with `what` after
/// `limit`. Returns how long it took.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `ip <args>`'s standard output.
fn ip(args: &[&str]) -> String {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("ip");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn namespaces() -> Vec<String> {
    ip(&["netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// The VPC's only router as listRouters shows it.
async fn router_of(admin: &Client, vpc: &str) -> Value {
    let list = admin.ok("listRouters", &[("vpcid", vpc)]).await;
    assert_eq!(list["count"], 1, "{list}");
    list["router"][0].clone()
}

/// The ACL list named `name` (a default one).
async fn acl_list(admin: &Client, name: &str) -> String {
    s(
        &admin.ok("listNetworkACLLists", &[("name", name)]).await["networkacllist"][0],
        "id",
    )
}

/// The MAC of the router's NIC in network `network`.
fn router_mac(router: &Value, network: &str) -> String {
    router["nic"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["networkid"] == network)
        .map(|n| s(n, "macaddress").to_lowercase())
        .unwrap_or_else(|| panic!("the router has no NIC in {network}: {router}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn private_gateway_repairs_reboot_restart_and_a_clean_teardown() {
    let e = E2e::start(AgentTransport::Unix).await;
    let admin = e.admin();
    let zone: uuid::Uuid = e.zone.parse().unwrap();

    let vpc = e.vpc(&admin, "ops", "10.90.0.0/16").await;
    let vpc_id = s(&vpc, "id");
    let allow = acl_list(&admin, "default_allow").await;
    let a = e
        .tier(&admin, &vpc_id, "a", "10.90.1.1", Some(&allow), false)
        .await;
    let b = e
        .tier(&admin, &vpc_id, "b", "10.90.2.1", Some(&allow), false)
        .await;
    let a1 = e.vm(&admin, &s(&a, "id"), "a1").await;
    let b1 = e.vm(&admin, &s(&b, "id"), "b1").await;
    let a1_ip = e.lease(&a1).await;
    let b1_ip = e.lease(&b1).await;
    let (a1_ns, b1_ns) = (e.vm_ns(&a1), e.vm_ns(&b1));
    let router = router_of(&admin, &vpc_id).await;
    let router_name = s(&router, "name");
    let source_nat: IpAddr = s(&router, "publicip").parse().unwrap();

    // Use case 3: a private gateway on VLAN 3001, an on-premises network
    // 192.168.50.0/24 behind 172.16.1.1, and a static route to it.
    let onprem = e
        .driver
        .onprem(
            &zone,
            "vlan://3001",
            &OnPrem {
                address: "172.16.1.1/24".parse().unwrap(),
                behind: vec!["192.168.50.1/24".parse().unwrap()],
                routes: vec![(
                    "10.90.0.0/16".parse().unwrap(),
                    "172.16.1.2".parse().unwrap(),
                )],
            },
        )
        .await
        .expect("on-premises namespace");
    let onprem_ns = Netns::existing(&onprem);
    let gateway = job_ok(
        &admin,
        "createPrivateGateway",
        &[
            ("vpcid", &vpc_id),
            ("vlan", "3001"),
            ("ipaddress", "172.16.1.2"),
            ("gateway", "172.16.1.1"),
            ("netmask", "255.255.255.0"),
            // The default is default_deny: nothing would pass the gateway.
            ("aclid", &allow),
        ],
    )
    .await;
    let gateway_id = id(&gateway, "privategateway");
    assert_eq!(gateway["privategateway"]["state"], "Ready", "{gateway}");
    let onprem_target = SocketAddr::from(([192, 168, 50, 1], 9000));
    let (srv_a, srv_b, srv_up, srv_op) = {
        let (x, y, u, o) = (
            a1_ns.clone(),
            b1_ns.clone(),
            e.upstream(),
            onprem_ns.clone(),
        );
        blocking(move || {
            (
                listen(&x, 80),
                listen(&y, 80),
                listen(&u, 7000),
                listen(&o, 9000),
            )
        })
        .await
    };
    assert!(
        !tcp_ok(&a1_ns, onprem_target).await,
        "no route to the on-premises network yet"
    );
    let route = job_ok(
        &admin,
        "createStaticRoute",
        &[("cidr", "192.168.50.0/24"), ("gatewayid", &gateway_id)],
    )
    .await;
    let route_id = id(&route, "staticroute");
    assert_eq!(
        seen_as(&a1_ns, onprem_target).await,
        Some(IpAddr::V4(a1_ip)),
        "a1 reaches the on-premises server, which sees a1 itself, and its replies return"
    );
    assert_eq!(
        seen_as(&b1_ns, onprem_target).await,
        Some(IpAddr::V4(b1_ip))
    );

    let b1_80 = SocketAddr::from((b1_ip, 80));
    let a1_80 = SocketAddr::from((a1_ip, 80));
    let upstream = SocketAddr::from((UPSTREAM, 7000));
    // Everything a working router gives: both tiers, upstream, on-premises.
    let all_paths = |why: &'static str| {
        let (a1_ns, b1_ns) = (a1_ns.clone(), b1_ns.clone());
        async move {
            assert!(tcp_ok(&a1_ns, b1_80).await, "{why}: a1 to b1");
            assert!(tcp_ok(&b1_ns, a1_80).await, "{why}: b1 to a1");
            assert_eq!(
                seen_as(&a1_ns, upstream).await,
                Some(source_nat),
                "{why}: a1 to upstream"
            );
            assert_eq!(
                seen_as(&a1_ns, onprem_target).await,
                Some(IpAddr::V4(a1_ip)),
                "{why}: a1 to on-premises"
            );
        }
    };
    all_paths("before any damage").await;

    // A killed agent: traffic keeps flowing (the kernel state stays), the
    // driver restarts the agent, and it answers with the current generation.
    let generation = router_of(&admin, &vpc_id).await["configgeneration"].clone();
    let starts = e.driver.agent_starts(&router_name);
    let pid = e.driver.agent_pid(&router_name).expect("the agent runs");
    let killed = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(
        tcp_ok(&a1_ns, b1_80).await,
        "packets pass while the agent is down"
    );
    eventually(Duration::from_secs(15), "the agent restarts", || {
        let (e, name) = (&e, router_name.clone());
        async move {
            e.driver.agent_starts(&name) > starts
                && e.driver.agent_pid(&name).is_some_and(|p| p != pid)
                && e.agent_state(&name)
                    .await
                    .is_some_and(|st| st.generation > 0 && st.last_error.is_empty())
        }
    })
    .await;
    let kill_repair = killed.elapsed();
    let state = e.agent_state(&router_name).await.unwrap();
    assert_eq!(
        Value::from(state.generation),
        generation,
        "the restarted agent holds the database's generation"
    );
    let listed = router_of(&admin, &vpc_id).await;
    assert_eq!(
        (listed["state"].clone(), listed["configcurrent"].clone()),
        (Value::from("Running"), Value::from(true)),
        "{listed}"
    );
    all_paths("after the agent was killed").await;

    // The whole namespace deleted: the driver re-creates it with its NICs
    // and restarts the agent, which applies its saved state.
    let router_ns = e.driver.router_ns(&router_name);
    let starts = e.driver.agent_starts(&router_name);
    let deleted = Instant::now();
    assert!(
        std::process::Command::new("ip")
            .args(["netns", "del", &router_ns])
            .status()
            .unwrap()
            .success()
    );
    eventually(
        Duration::from_secs(30),
        "traffic through a re-created router",
        || {
            let (e, name, a1_ns) = (&e, router_name.clone(), a1_ns.clone());
            async move { e.driver.agent_starts(&name) > starts && tcp_ok(&a1_ns, b1_80).await }
        },
    )
    .await;
    let ns_repair = deleted.elapsed();
    all_paths("after the namespace was deleted").await;
    eventually(
        Duration::from_secs(10),
        "DHCP serves both tiers again",
        || {
            let (e, name) = (&e, router_name.clone());
            async move {
                e.agent_state(&name)
                    .await
                    .is_some_and(|st| st.dnsmasq.len() == 2 && st.last_error.is_empty())
            }
        },
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "the router is listed current",
        || {
            let admin = admin.clone();
            let vpc_id = vpc_id.clone();
            async move {
                let r = router_of(&admin, &vpc_id).await;
                r["state"] == "Running" && r["configcurrent"] == true
            }
        },
    )
    .await;
    let listed = router_of(&admin, &vpc_id).await;
    assert_eq!(listed["name"], router_name.as_str(), "the same router");

    // rebootRouter on a real router.
    let rebooted = Instant::now();
    job_ok(&admin, "rebootRouter", &[("id", &s(&listed, "id"))]).await;
    let reboot_time = rebooted.elapsed();
    all_paths("after rebootRouter").await;

    // restartVPC cleanup=true: a new router replaces the old one.
    let restarted = Instant::now();
    job_ok(
        &admin,
        "restartVPC",
        &[("id", &vpc_id), ("cleanup", "true")],
    )
    .await;
    let restart_time = restarted.elapsed();
    let new_router = router_of(&admin, &vpc_id).await;
    let new_name = s(&new_router, "name");
    assert_ne!(new_name, router_name, "a new router: {new_router}");
    assert_eq!(new_router["state"], "Running");
    assert!(
        !namespaces().contains(&router_ns),
        "the old router's namespace is gone"
    );
    assert!(namespaces().contains(&e.driver.router_ns(&new_name)));
    let source_nat_after: IpAddr = s(&new_router, "publicip").parse().unwrap();
    assert_eq!(source_nat_after, source_nat, "the VPC keeps its address");
    // The new router announces the tiers' gateways again shortly after it
    // took them over, so VMs the old one taught its MAC meanwhile follow.
    eventually(
        Duration::from_secs(10),
        "traffic through the new router",
        || {
            let (a1_ns, b1_ns) = (a1_ns.clone(), b1_ns.clone());
            async move { tcp_ok(&a1_ns, b1_80).await && tcp_ok(&b1_ns, a1_80).await }
        },
    )
    .await;
    all_paths("after restartVPC cleanup=true").await;
    let state = e
        .agent_state(&new_name)
        .await
        .expect("the new agent answers");
    assert_eq!(state.dnsmasq.len(), 2, "DHCP on both tiers");
    let restart_traffic = restarted.elapsed();

    eprintln!(
        "timings: agent SIGKILL to an agent answering with its state {kill_repair:?}; \
         namespace deleted to traffic between tiers {ns_repair:?}; rebootRouter {reboot_time:?}; \
         restartVPC cleanup=true job {restart_time:?} (all paths checked after {restart_traffic:?})"
    );
    let peers = srv_up.peers();
    assert!(
        peers.iter().all(|p| p.ip() == source_nat),
        "upstream only ever saw the source NAT address: {peers:?}"
    );
    assert!(!srv_a.peers().is_empty() && !srv_b.peers().is_empty() && !srv_op.peers().is_empty());
    drop((srv_a, srv_b, srv_up, srv_op));

    // Teardown through the API leaves no namespace, process or bridge.
    let agent = e.driver.agent_pid(&new_name).expect("the new agent runs");
    job_ok(&admin, "deleteStaticRoute", &[("id", &route_id)]).await;
    job_ok(&admin, "deletePrivateGateway", &[("id", &gateway_id)]).await;
    for vm in [&a1, &b1] {
        job_ok(
            &admin,
            "destroyVirtualMachine",
            &[("id", &s(vm, "id")), ("expunge", "true")],
        )
        .await;
    }
    for tier in [&a, &b] {
        job_ok(&admin, "deleteNetwork", &[("id", &s(tier, "id"))]).await;
    }
    job_ok(&admin, "deleteVPC", &[("id", &vpc_id)]).await;
    e.driver
        .remove_onprem(&zone, "vlan://3001")
        .await
        .expect("on-premises namespace removed");
    let left: Vec<String> = namespaces()
        .into_iter()
        .filter(|n| {
            [&e.driver.router_ns(&new_name), &router_ns, &onprem].contains(&n)
                || [&a1, &b1]
                    .iter()
                    .any(|vm| *n == e.driver.vm_ns(&s(vm, "instancename")))
        })
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    assert!(
        !std::path::Path::new(&format!("/proc/{agent}")).exists(),
        "the agent {agent} still runs"
    );
    let bridges = ip(&[
        "-n",
        &e.driver.zone_ns(&zone),
        "-o",
        "link",
        "show",
        "type",
        "bridge",
    ]);
    let guest_bridges: Vec<&str> = bridges
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(str::trim))
        .filter(|b| b.starts_with("brv") || b.starts_with("brx"))
        .collect();
    assert!(
        guest_bridges.is_empty(),
        "guest bridges left: {guest_bridges:?}"
    );
    assert!(
        bridges.contains("brpub"),
        "the zone keeps its public bridge"
    );
    // What stays (the zone and its upstream) runs no process.
    for ns in namespaces().iter().filter(|n| n.starts_with(&e.prefix)) {
        let pids = ip(&["netns", "pids", ns]);
        assert!(pids.trim().is_empty(), "{ns} still runs {pids}");
    }
    e.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_router_over_mutual_tls_and_network_gc_of_an_idle_tier() {
    let e = E2e::start(AgentTransport::Tcp).await;
    let admin = e.admin();

    let vpc = e.vpc(&admin, "tls", "10.91.0.0/16").await;
    let vpc_id = s(&vpc, "id");
    let router = router_of(&admin, &vpc_id).await;
    let router_name = s(&router, "name");
    let router_ns = e.driver.router_ns(&router_name);
    assert!(
        router["agentendpoint"]
            .as_str()
            .is_some_and(|ep| ep.contains(":3922")),
        "the agent is reached over TCP: {router}"
    );
    let out = job_ok(
        &admin,
        "createNetworkACLList",
        &[("name", "out"), ("description", "out"), ("vpcid", &vpc_id)],
    )
    .await;
    let out = id(&out, "networkacllist");
    let app = e
        .tier(&admin, &vpc_id, "app", "10.91.1.1", Some(&out), false)
        .await;
    let app1 = e.vm(&admin, &s(&app, "id"), "app1").await;
    let app1_ip = e.lease(&app1).await;
    assert_eq!(app1_ip.to_string(), s(&app1["nic"][0], "ipaddress"));
    let app1_ns = e.vm_ns(&app1);
    let up = e.upstream();
    let srv_up = blocking(move || listen(&up, 7000)).await;
    let upstream = SocketAddr::from((UPSTREAM, 7000));
    assert!(
        tcp_ok(&app1_ns, upstream).await,
        "egress is open by default"
    );

    // A rule change over mutual TLS takes effect on packets.
    job_ok(
        &admin,
        "createNetworkACL",
        &[
            ("aclid", &out),
            ("protocol", "tcp"),
            ("startport", "7000"),
            ("endport", "7000"),
            ("cidrlist", "0.0.0.0/0"),
            ("action", "Deny"),
            ("traffictype", "Egress"),
        ],
    )
    .await;
    assert!(!tcp_ok(&app1_ns, upstream).await, "the egress deny holds");
    assert_eq!(router_of(&admin, &vpc_id).await["configcurrent"], true);

    // Network GC: the only VM of tier batch stops; the idle tier is shut
    // down (its vnet and router NIC go) and a start brings it back.
    let batch = e
        .tier(&admin, &vpc_id, "batch", "10.91.2.1", None, false)
        .await;
    let batch_id = s(&batch, "id");
    let batch1 = e.vm(&admin, &batch_id, "batch1").await;
    let batch1_ip = e.lease(&batch1).await;
    let instance = s(&batch1, "instancename");
    let mac = router_mac(&router_of(&admin, &vpc_id).await, &batch_id);
    assert!(ip(&["-n", &router_ns, "-o", "link"]).contains(&mac));
    let network_state = |id: String| {
        let admin = admin.clone();
        async move {
            s(
                &admin.ok("listNetworks", &[("id", &id)]).await["network"][0],
                "state",
            )
        }
    };
    assert_eq!(network_state(batch_id.clone()).await, "Implemented");
    for (name, value) in [("network.gc.interval", "1"), ("network.gc.wait", "1")] {
        admin
            .ok("updateConfiguration", &[("name", name), ("value", value)])
            .await;
    }
    job_ok(&admin, "stopVirtualMachine", &[("id", &s(&batch1, "id"))]).await;
    assert!(
        e.driver.vm_lease(&instance, 0).is_none(),
        "a stopped VM holds no lease"
    );
    let gc = eventually(
        Duration::from_secs(15),
        "the idle tier is shut down",
        || {
            let (state, id) = (network_state, batch_id.clone());
            async move { state(id).await == "Allocated" }
        },
    )
    .await;
    assert!(
        !ip(&["-n", &router_ns, "-o", "link"]).contains(&mac),
        "the router's NIC in the idle tier is gone"
    );
    assert_eq!(
        network_state(s(&app, "id")).await,
        "Implemented",
        "the tier in use stays"
    );
    job_ok(&admin, "startVirtualMachine", &[("id", &s(&batch1, "id"))]).await;
    assert_eq!(network_state(batch_id.clone()).await, "Implemented");
    let mac = router_mac(&router_of(&admin, &vpc_id).await, &batch_id);
    assert!(
        ip(&["-n", &router_ns, "-o", "link"]).contains(&mac),
        "the router has a NIC in the tier again"
    );
    let relet = Instant::now();
    assert_eq!(e.lease(&batch1).await, batch1_ip, "the same address again");
    let relet = relet.elapsed();
    assert_eq!(
        seen_as(&e.vm_ns(&batch1), upstream).await,
        Some(s(&router, "publicip").parse().unwrap()),
        "the tier routes again"
    );
    eprintln!("timings: idle tier shut down {gc:?} after its VM stopped; lease again {relet:?}");
    drop(srv_up);

    for vm in [&app1, &batch1] {
        job_ok(
            &admin,
            "destroyVirtualMachine",
            &[("id", &s(vm, "id")), ("expunge", "true")],
        )
        .await;
    }
    for tier in [&app, &batch] {
        job_ok(&admin, "deleteNetwork", &[("id", &s(tier, "id"))]).await;
    }
    job_ok(&admin, "deleteVPC", &[("id", &vpc_id)]).await;
    assert!(!namespaces().contains(&router_ns));
    e.finish().await;
}
