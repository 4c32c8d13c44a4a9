//! The netns driver against the kernel and the real `vr-agent`: routers and
//! VMs as namespaces, bridges per segment, supervision, adoption after a
//! manager restart, the TCP + mutual TLS path, and the sweeper. Run as root;
//! every test has its own namespace prefix and leaves nothing behind, also
//! when it fails.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use support::netns::*;
use uuid::Uuid;
use vpc_manager::agent_client::GrpcAgentClient;
use vpc_manager::driver::netns::{NetnsDriver, OnPrem, tls_from_pki};
use vpc_manager::orchestration::agent::{
    AgentClient, AgentCommand, AgentEndpoint, AgentReply, RouterDriver,
};
use vpc_manager::orchestration::model::{NicRole, RouterNicView, RouterView, VmNicView, VmView};
use vpc_manager::pki::Pki;
use vpc_manager::settings::AgentTransport;
use vpc_proto::v1 as pb;

const PUBLIC_MAC: &str = "02:0a:00:00:00:01";
const GUEST_MAC: &str = "02:0a:00:00:00:02";
const VM_MAC: &str = "02:0a:00:00:01:01";
const PRIVATE_MAC: &str = "02:0a:00:00:00:03";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

fn nic(
    index: u32,
    mac: &str,
    role: NicRole,
    cidr: (&str, u8),
    gateway: Option<&str>,
    uri: Option<&str>,
) -> RouterNicView {
    RouterNicView {
        device_index: index,
        mac: mac.into(),
        role,
        network_id: Uuid::new_v4(),
        ip: Some(cidr.0.parse().unwrap()),
        prefix: cidr.1,
        gateway: gateway.map(|g| g.parse().unwrap()),
        mtu: 0,
        broadcast_uri: uri.map(String::from),
    }
}

/// A router with a public NIC (eth0, 203.0.113.10/24 via .1) and a tier
/// NIC (eth1, 10.1.1.1/24 on VLAN 100).
fn router(zone: Uuid) -> RouterView {
    RouterView {
        id: Uuid::new_v4(),
        name: "r-1-VM".into(),
        zone_id: zone,
        generation: 0,
        nics: vec![
            nic(
                0,
                PUBLIC_MAC,
                NicRole::Public,
                ("203.0.113.10", 24),
                Some("203.0.113.1"),
                Some("untagged"),
            ),
            nic(
                1,
                GUEST_MAC,
                NicRole::Guest,
                ("10.1.1.1", 24),
                None,
                Some("vlan://100"),
            ),
        ],
        host: None,
    }
}

fn vm(zone: Uuid) -> VmView {
    VmView {
        id: Uuid::new_v4(),
        hostname: "web-1".into(),
        instance_name: "i-2-3-VM".into(),
        zone_id: zone,
        nics: vec![VmNicView {
            device_index: 0,
            mac: VM_MAC.into(),
            network_id: Uuid::new_v4(),
            broadcast_uri: Some("vlan://100".into()),
            ip: Some(Ipv4Addr::new(10, 1, 1, 50)),
            prefix: 24,
            gateway: Some(Ipv4Addr::new(10, 1, 1, 1)),
            default: true,
        }],
        host: None,
    }
}

/// The router's whole config: public IP with source NAT, the tier with a
/// DHCP entry for the VM.
fn config(r: &RouterView) -> pb::RouterConfig {
    let pb_nic = |n: &RouterNicView, role: pb::NicRole| pb::Nic {
        device_index: n.device_index,
        mac_address: n.mac.clone(),
        role: role as i32,
        network_id: n.network_id.to_string(),
        ..Default::default()
    };
    pb::RouterConfig {
        router_name: r.name.clone(),
        vpc_id: "vpc-1".into(),
        vpc_cidr: "10.1.0.0/16".into(),
        nics: vec![
            pb_nic(&r.nics[0], pb::NicRole::Public),
            pb_nic(&r.nics[1], pb::NicRole::Guest),
        ],
        guest_networks: vec![pb::GuestNetwork {
            device_index: 1,
            mac_address: GUEST_MAC.into(),
            network_id: r.nics[1].network_id.to_string(),
            cidr: "10.1.1.0/24".into(),
            gateway: "10.1.1.1".into(),
            domain_name: "cs1.internal".into(),
            ..Default::default()
        }],
        public_ips: vec![pb::PublicIp {
            add: true,
            ip_address: "203.0.113.10".into(),
            prefix_length: 24,
            gateway: "203.0.113.1".into(),
            device_index: 0,
            mac_address: PUBLIC_MAC.into(),
            source_nat: true,
            vlan: "untagged".into(),
            ..Default::default()
        }],
        source_nat_rules: vec![pb::SourceNatRule {
            device_index: 0,
            nat_ip: "203.0.113.10".into(),
            source_cidrs: vec![],
        }],
        dhcp: vec![pb::TierDhcp {
            device_index: 1,
            entries: vec![pb::DhcpEntry {
                mac_address: VM_MAC.into(),
                ip_address: "10.1.1.50".into(),
                hostname: "web-1".into(),
                default_gateway: true,
                ..Default::default()
            }],
        }],
        ..Default::default()
    }
}

/// [`config`] plus a private gateway on NIC 2 (172.16.0.10/24 on VLAN 200)
/// with a static route to the on-premises 192.168.50.0/24.
fn config_with_gateway(r: &RouterView) -> pb::RouterConfig {
    let mut c = config(r);
    c.nics.push(pb::Nic {
        device_index: 2,
        mac_address: PRIVATE_MAC.into(),
        role: pb::NicRole::Private as i32,
        network_id: r.nics[2].network_id.to_string(),
        ..Default::default()
    });
    c.public_ips.push(pb::PublicIp {
        add: true,
        ip_address: "172.16.0.10".into(),
        prefix_length: 24,
        gateway: "172.16.0.1".into(),
        device_index: 2,
        mac_address: PRIVATE_MAC.into(),
        private_gateway: true,
        vlan: "vlan://200".into(),
        ..Default::default()
    });
    c.static_routes.push(pb::StaticRoute {
        cidr: "192.168.50.0/24".into(),
        next_hop: "172.16.0.1".into(),
        gateway_ip: "172.16.0.10".into(),
        id: "route-1".into(),
    });
    c
}

async fn state(client: &GrpcAgentClient, r: &RouterView) -> pb::GetStateResponse {
    match client
        .send(r, AgentCommand::GetState(pb::GetStateRequest::default()))
        .await
    {
        Ok(AgentReply::State(s)) => *s,
        other => panic!("GetState: {other:?}"),
    }
}

/// Name, bridge and kind of each link of a namespace, for assertions.
fn bridge_ports(ns: &str, bridge: &str) -> Vec<String> {
    let mut ports: Vec<String> = links(ns)
        .into_iter()
        .filter(|(_, master, _)| master.as_deref() == Some(bridge))
        .map(|(name, _, _)| name)
        .collect();
    ports.sort();
    ports
}

fn has_link(ns: &str, name: &str) -> bool {
    links(ns).iter().any(|(n, _, _)| n == name)
}

#[test]
fn a_router_and_a_vm_run_in_namespaces_are_supervised_adopted_and_swept() {
    let lab = NetnsLab::new("a");
    let rt = runtime();
    rt.block_on(router_and_vm(&lab));
    drop(rt);
    assert_eq!(lab.namespaces(), Vec::<String>::new());
}

async fn router_and_vm(lab: &NetnsLab) {
    let zone = Uuid::new_v4();
    let driver = lab.driver(AgentTransport::Unix, None);
    let r = router(zone);
    let (rns, zns, upns) = (
        driver.router_ns(&r.name),
        driver.zone_ns(&zone),
        driver.upstream_ns(&zone),
    );
    assert_eq!(rns, format!("{}r-1-VM", lab.prefix));

    // Start: namespaces, bridges, the agent answering on its socket.
    let started = std::time::Instant::now();
    let endpoint = driver.start_router(&r).await.unwrap();
    eprintln!("router started in {:?}", started.elapsed());
    let socket = driver.router_dir(&r.name).join("agent.sock");
    assert_eq!(endpoint, AgentEndpoint::UnixSocket(socket));
    assert_eq!(lab.endpoints.get(&r.name), Some(endpoint.clone()));
    assert_eq!(lab.namespaces(), {
        let mut v = vec![rns.clone(), zns.clone(), upns.clone()];
        v.sort();
        v
    });
    assert_eq!(bridge_ports(&zns, "brpub"), ["up-pub", "v020a00000001"]);
    assert_eq!(bridge_ports(&zns, "brv100"), ["v020a00000002"]);
    assert!(has_link(&rns, "eth0") && has_link(&rns, "eth1"));
    let client = GrpcAgentClient::new(lab.endpoints.clone());
    assert_eq!(state(&client, &r).await.generation, 0);

    // The agent configures the router; upstream reaches its public IP.
    let applied = client
        .send(
            &r,
            AgentCommand::ApplyConfig(pb::ApplyConfigRequest {
                generation: 1,
                config: Some(config(&r)),
            }),
        )
        .await;
    assert!(matches!(applied, Ok(AgentReply::Applied(_))), "{applied:?}");
    assert!(
        eventually(Duration::from_secs(5), || ping(&upns, "203.0.113.10")).await,
        "upstream cannot ping the public IP"
    );

    // A VM on the tier takes its address from the router by DHCP.
    let v = vm(zone);
    let vns = driver.vm_ns(&v.instance_name);
    let started = std::time::Instant::now();
    driver.start_vm(&v).await.unwrap();
    assert!(
        eventually(Duration::from_secs(10), || driver
            .vm_lease(&v.instance_name, 0)
            .is_some())
        .await,
        "no lease; udhcpc log:\n{}",
        std::fs::read_to_string(driver.vm_dir(&v.instance_name).join("udhcpc-eth0.log"))
            .unwrap_or_default()
    );
    eprintln!("VM leased in {:?}", started.elapsed());
    let lease = driver.vm_lease(&v.instance_name, 0).unwrap();
    assert_eq!(
        (lease.ip, lease.prefix, lease.router),
        (
            Ipv4Addr::new(10, 1, 1, 50),
            24,
            Some(Ipv4Addr::new(10, 1, 1, 1))
        )
    );
    let resolv = std::fs::read_to_string(format!("/etc/netns/{vns}/resolv.conf")).unwrap();
    assert!(resolv.contains("nameserver 10.1.1.1"), "{resolv}");
    assert_eq!(
        bridge_ports(&zns, "brv100"),
        ["v020a00000002", "v020a00000101"]
    );
    assert!(ping(&vns, "10.1.1.1"), "the VM cannot ping its router");
    assert!(
        eventually(Duration::from_secs(5), || ping(&vns, "203.0.113.1")).await,
        "the VM cannot reach upstream through source NAT"
    );

    // The sweeper leaves alone what the database knows, and the zone that
    // holds their NICs, even when the zone is not named.
    let known = vec![r.name.clone(), v.instance_name.clone()];
    assert_eq!(driver.sweep(&known).await, Vec::<String>::new());
    assert_eq!(lab.namespaces().len(), 4);

    // A hot-plugged private gateway on VLAN 200 with an on-premises network
    // behind it; the router answers the network behind through its route.
    let mut r = r;
    r.nics.push(nic(
        2,
        PRIVATE_MAC,
        NicRole::Private,
        ("172.16.0.10", 24),
        Some("172.16.0.1"),
        Some("vlan://200"),
    ));
    driver.plug_nic(&r, &r.nics[2]).await.unwrap();
    let applied = client
        .send(
            &r,
            AgentCommand::ApplyConfig(pb::ApplyConfigRequest {
                generation: 2,
                config: Some(config_with_gateway(&r)),
            }),
        )
        .await;
    assert!(matches!(applied, Ok(AgentReply::Applied(_))), "{applied:?}");
    let onprem = OnPrem {
        address: "172.16.0.1/24".parse().unwrap(),
        behind: vec!["192.168.50.1/24".parse().unwrap()],
        routes: vec![(
            "10.1.0.0/16".parse().unwrap(),
            "172.16.0.10".parse().unwrap(),
        )],
    };
    let opns = driver.onprem(&zone, "vlan://200", &onprem).await.unwrap();
    assert_eq!(opns, driver.onprem_ns(&zone, "vlan://200").unwrap());
    assert_eq!(
        driver.onprem(&zone, "vlan://200", &onprem).await.unwrap(),
        opns,
        "idempotent"
    );
    assert_eq!(bridge_ports(&zns, "brv200"), ["op-v200", "v020a00000003"]);
    assert!(
        eventually(Duration::from_secs(5), || exec(
            &opns,
            &[
                "ping",
                "-c",
                "1",
                "-W",
                "1",
                "-I",
                "192.168.50.1",
                "172.16.0.10"
            ]
        )
        .status
        .success())
        .await,
        "the on-premises network cannot reach the private gateway"
    );

    // A killed agent is restarted by its supervisor and keeps its state.
    let first = driver.agent_pid(&r.name).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || driver
            .agent_pid(&r.name)
            .is_some_and(|p| p != first))
        .await,
        "the agent was not restarted"
    );
    assert_eq!(driver.agent_starts(&r.name), 2);
    assert_eq!(state(&client, &r).await.generation, 2);

    // A deleted namespace is re-created with its NICs; the agent restarts in
    // it from its persisted state, and its old helpers (dnsmasq) go.
    let second = driver.agent_pid(&r.name).unwrap();
    let old_dnsmasq = state(&client, &r).await.dnsmasq[0].pid;
    assert!(process_alive(old_dnsmasq));
    assert!(run(&["ip", "netns", "del", &rns]).unwrap().status.success());
    assert!(
        eventually(Duration::from_secs(10), || driver
            .agent_pid(&r.name)
            .is_some_and(|p| p != second)
            && has_link(&rns, "eth2"))
        .await,
        "the router was not repaired"
    );
    assert!(!process_alive(second) && !process_alive(old_dnsmasq));
    assert_eq!(state(&client, &r).await.generation, 2);
    assert!(
        eventually(Duration::from_secs(5), || ping(&upns, "203.0.113.10")).await,
        "upstream cannot ping the repaired router"
    );
    assert!(
        eventually(Duration::from_secs(5), || ping(&vns, "10.1.1.1")).await,
        "the VM cannot ping the repaired router"
    );

    // A manager restart: the next driver adopts the running processes.
    let agent = driver.agent_pid(&r.name).unwrap();
    let dhcp = driver.dhcp_client_pid(&v.instance_name, 0).unwrap();
    driver.shutdown().await;
    assert!(process_alive(agent) && process_alive(dhcp));
    let driver = lab.driver(AgentTransport::Unix, None);
    assert_eq!(driver.start_router(&r).await.unwrap(), endpoint);
    driver.start_vm(&v).await.unwrap();
    assert_eq!(driver.agent_pid(&r.name), Some(agent));
    assert_eq!(driver.agent_starts(&r.name), 0, "adopted, not started");
    assert_eq!(driver.dhcp_client_pid(&v.instance_name, 0), Some(dhcp));
    assert_eq!(pids(&vns), [dhcp as i32]);
    // Starting again is idempotent too.
    driver.start_router(&r).await.unwrap();
    assert_eq!(driver.agent_pid(&r.name), Some(agent));

    // Unplug and plug the tier NIC (twice: idempotent).
    driver.unplug_nic(&r, &r.nics[1]).await.unwrap();
    assert!(!has_link(&rns, "eth1"));
    assert_eq!(bridge_ports(&zns, "brv100"), ["v020a00000101"]);
    driver.plug_nic(&r, &r.nics[1]).await.unwrap();
    driver.plug_nic(&r, &r.nics[1]).await.unwrap();
    assert!(has_link(&rns, "eth1"));
    assert_eq!(
        bridge_ports(&zns, "brv100"),
        ["v020a00000002", "v020a00000101"]
    );

    // Stop and destroy: namespaces, processes, files and empty bridges go.
    let vm_dir = driver.vm_dir(&v.instance_name);
    driver.stop_vm(&v).await.unwrap();
    assert!(!process_alive(dhcp));
    assert!(!std::path::Path::new(&format!("/etc/netns/{vns}")).exists());
    assert_eq!(bridge_ports(&zns, "brv100"), ["v020a00000002"]);
    driver.destroy_vm(&v).await.unwrap();
    assert!(!vm_dir.exists());
    let agent = driver.agent_pid(&r.name).unwrap();
    let router_dir = driver.router_dir(&r.name);
    driver.stop_router(&r).await.unwrap();
    assert!(!process_alive(agent));
    assert_eq!(lab.endpoints.get(&r.name), None);
    assert!(router_dir.join("state").exists(), "stop keeps the state");
    assert!(!has_link(&zns, "brv100"), "the empty bridge stays");
    assert_eq!(bridge_ports(&zns, "brpub"), ["up-pub"]);
    assert_eq!(bridge_ports(&zns, "brv200"), ["op-v200"]);
    driver.destroy_router(&r).await.unwrap();
    assert!(!router_dir.exists());
    assert_eq!(lab.namespaces(), {
        let mut v = vec![zns.clone(), upns.clone(), opns.clone()];
        v.sort();
        v
    });

    // The sweeper: a stray router namespace with a process in it goes, a
    // known one stays, and so does a known zone with its upstream.
    let stray = driver.router_ns("r-99-VM");
    let known = driver.router_ns("r-98-VM");
    for ns in [&stray, &known] {
        assert!(run(&["ip", "netns", "add", ns]).unwrap().status.success());
    }
    let mut sleeper = std::process::Command::new("ip")
        .args(["netns", "exec", &stray, "sleep", "60"])
        .spawn()
        .unwrap();
    assert!(eventually(Duration::from_secs(2), || pids(&stray).len() == 1).await);
    let removed = driver.sweep(&["r-98-VM".to_string(), zns.clone()]).await;
    assert_eq!(removed, [stray]);
    assert!(sleeper.wait().is_ok());
    let mut left = vec![known.clone(), zns.clone(), upns.clone(), opns.clone()];
    left.sort();
    assert_eq!(lab.namespaces(), left);
    let mut all = driver.sweep(&[]).await;
    all.sort();
    assert_eq!(all, left);
    assert_eq!(lab.namespaces(), Vec::<String>::new());
}

#[test]
fn a_router_on_vxlan_is_reached_over_tcp_with_mutual_tls_from_inside_its_namespace() {
    let lab = NetnsLab::new("b");
    let rt = runtime();
    rt.block_on(router_over_tcp(&lab));
    drop(rt);
    assert_eq!(lab.namespaces(), Vec::<String>::new());
}

async fn router_over_tcp(lab: &NetnsLab) {
    let zone = Uuid::new_v4();
    let pki = Arc::new(Pki::load_or_create(lab.dir.path()).unwrap());
    let driver: NetnsDriver = lab.driver(AgentTransport::Tcp, Some(tls_from_pki(pki.clone())));
    let r = RouterView {
        id: Uuid::new_v4(),
        name: "r-7-VM".into(),
        zone_id: zone,
        generation: 0,
        nics: vec![
            nic(
                0,
                "02:0b:00:00:00:01",
                NicRole::Control,
                ("169.254.0.5", 16),
                None,
                None,
            ),
            nic(
                1,
                "02:0b:00:00:00:02",
                NicRole::Guest,
                ("10.2.1.1", 24),
                None,
                Some("vxlan://5000"),
            ),
        ],
        host: None,
    };
    let endpoint = driver.start_router(&r).await.unwrap();
    assert_eq!(
        endpoint,
        AgentEndpoint::Tcp((IpAddr::V4(Ipv4Addr::new(169, 254, 0, 5)), 3922).into())
    );
    let zns = driver.zone_ns(&zone);
    // A real VXLAN device is a port of the segment's bridge.
    assert_eq!(bridge_ports(&zns, "brx5000"), ["v020b00000002", "vx5000"]);
    assert!(
        links(&zns)
            .iter()
            .any(|(n, _, kind)| n == "vx5000" && kind.as_deref() == Some("vxlan"))
    );
    assert_eq!(bridge_ports(&zns, "brctl"), ["v020b00000001"]);
    let key = driver.router_dir(&r.name).join("tls/agent.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // The manager's client: mutual TLS over a socket made in the namespace.
    let client = GrpcAgentClient::new(lab.endpoints.clone())
        .with_tls(pki.client_identity())
        .with_connector(driver.tcp_connector());
    assert_eq!(state(&client, &r).await.generation, 0);

    driver.destroy_router(&r).await.unwrap();
    assert!(!has_link(&zns, "brx5000") && !has_link(&zns, "vx5000"));
    assert_eq!(driver.sweep(&[]).await, [zns]);
}
