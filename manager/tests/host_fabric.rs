//! The network between hosts, on the host agents' side (issue 12): three
//! `vpc-manager host-agent` processes on one fabric ([`support::fabric`]),
//! driven over gRPC as a manager would. A router on host 1 with a VXLAN tier,
//! a VM of that tier on host 2 and one on host 3: with the flood lists set,
//! the VMs take their leases from the router across hosts, with the tier's
//! MTU (the underlay's minus 50) by DHCP option 26, and reach each other,
//! the router and (by source NAT) the upstream; a VTEP taken out of a flood
//! list gets no more floods; the public network and a private-gateway VLAN
//! span hosts. And a
//! standalone host agent's sweeper removes leftovers of its prefix while
//! keeping what its records hold.

mod support;

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::fabric::{Fabric, FabricOptions, LabHost};
use support::netns::{eventually, exec, ping, run};
use uuid::Uuid;
use vpc_manager::agent_client::GrpcAgentClient;
use vpc_manager::host::convert::{router_to_proto, vm_to_proto};
use vpc_manager::orchestration::agent::{
    AgentClient, AgentCommand, AgentEndpoint, AgentReply, Endpoints,
};
use vpc_manager::orchestration::model::{NicRole, RouterNicView, RouterView, VmNicView, VmView};
use vpc_proto::host::v1 as hpb;
use vpc_proto::v1 as pb;

const TIER_URI: &str = "vxlan://5001";
const PUBLIC_MAC: &str = "02:0b:00:00:00:01";
const GUEST_MAC: &str = "02:0b:00:00:00:02";
const R2_PUBLIC_MAC: &str = "02:0b:00:00:02:01";
const PRIVATE_MAC: &str = "02:0b:00:00:00:03";
const R2_PRIVATE_MAC: &str = "02:0b:00:00:02:02";
const PRIVATE_URI: &str = "vlan://300";

/// A private gateway NIC on VLAN 300 and its config entries.
fn private_gateway(config: &mut pb::RouterConfig, nic: &RouterNicView, ip: &str) {
    config.nics.push(pb_nic(nic, pb::NicRole::Private));
    config.public_ips.push(pb::PublicIp {
        add: true,
        ip_address: ip.into(),
        prefix_length: 24,
        gateway: "172.16.0.1".into(),
        device_index: nic.device_index,
        mac_address: nic.mac.clone(),
        private_gateway: true,
        vlan: PRIVATE_URI.into(),
        ..Default::default()
    });
}

fn router_nic(
    index: u32,
    mac: &str,
    role: NicRole,
    ip: &str,
    gateway: Option<&str>,
    uri: &str,
) -> RouterNicView {
    RouterNicView {
        device_index: index,
        mac: mac.into(),
        role,
        network_id: Uuid::new_v4(),
        ip: Some(ip.parse().unwrap()),
        prefix: 24,
        gateway: gateway.map(|g| g.parse().unwrap()),
        mtu: 0,
        broadcast_uri: Some(uri.into()),
    }
}

/// A VM of the tier: `(instance, hostname, MAC, address)`.
struct TierVm {
    instance: &'static str,
    hostname: &'static str,
    mac: &'static str,
    ip: Ipv4Addr,
}

const VMS: [TierVm; 3] = [
    TierVm {
        instance: "i-2-1-VM",
        hostname: "vm-a",
        mac: "02:0b:00:00:01:01",
        ip: Ipv4Addr::new(10, 1, 1, 50),
    },
    TierVm {
        instance: "i-2-2-VM",
        hostname: "vm-b",
        mac: "02:0b:00:00:01:02",
        ip: Ipv4Addr::new(10, 1, 1, 51),
    },
    TierVm {
        instance: "i-2-3-VM",
        hostname: "vm-c",
        mac: "02:0b:00:00:01:03",
        ip: Ipv4Addr::new(10, 1, 1, 52),
    },
];

fn vm_view(zone: Uuid, tier: Uuid, vm: &TierVm) -> VmView {
    VmView {
        id: Uuid::new_v4(),
        hostname: vm.hostname.into(),
        instance_name: vm.instance.into(),
        zone_id: zone,
        nics: vec![VmNicView {
            device_index: 0,
            mac: vm.mac.into(),
            network_id: tier,
            broadcast_uri: Some(TIER_URI.into()),
            ip: Some(vm.ip),
            prefix: 24,
            gateway: Some(Ipv4Addr::new(10, 1, 1, 1)),
            default: true,
        }],
        host: None,
    }
}

/// Router 1: public 203.0.113.10 (untagged) and the tier 10.1.1.0/24 on
/// VXLAN 5001.
fn router1(zone: Uuid) -> RouterView {
    RouterView {
        id: Uuid::new_v4(),
        name: "r-1-VM".into(),
        zone_id: zone,
        generation: 0,
        host: None,
        nics: vec![
            router_nic(
                0,
                PUBLIC_MAC,
                NicRole::Public,
                "203.0.113.10",
                Some("203.0.113.1"),
                "untagged",
            ),
            router_nic(1, GUEST_MAC, NicRole::Guest, "10.1.1.1", None, TIER_URI),
        ],
    }
}

fn public_ip(ip: &str, mac: &str) -> pb::PublicIp {
    pb::PublicIp {
        add: true,
        ip_address: ip.into(),
        prefix_length: 24,
        gateway: "203.0.113.1".into(),
        device_index: 0,
        mac_address: mac.into(),
        source_nat: true,
        vlan: "untagged".into(),
        ..Default::default()
    }
}

fn pb_nic(n: &RouterNicView, role: pb::NicRole) -> pb::Nic {
    pb::Nic {
        device_index: n.device_index,
        mac_address: n.mac.clone(),
        role: role as i32,
        network_id: n.network_id.to_string(),
        ..Default::default()
    }
}

/// Router 1's config: source NAT on the public IP, the tier with a DHCP
/// entry per VM in `vms`. The tier's MTU is left to the router's link.
fn router1_config(r: &RouterView, vms: &[TierVm]) -> pb::RouterConfig {
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
            domain_name: "cs2.internal".into(),
            ..Default::default()
        }],
        public_ips: vec![public_ip("203.0.113.10", PUBLIC_MAC)],
        source_nat_rules: vec![pb::SourceNatRule {
            device_index: 0,
            nat_ip: "203.0.113.10".into(),
            source_cidrs: vec![],
        }],
        dhcp: vec![pb::TierDhcp {
            device_index: 1,
            entries: vms
                .iter()
                .map(|v| pb::DhcpEntry {
                    mac_address: v.mac.into(),
                    ip_address: v.ip.to_string(),
                    hostname: v.hostname.into(),
                    default_gateway: true,
                    ..Default::default()
                })
                .collect(),
        }],
        ..Default::default()
    }
}

/// Starts a router on a host through its host agent and applies `config`
/// through the router's agent; returns the agent client.
async fn start_router(
    host: &LabHost,
    view: &RouterView,
    config: pb::RouterConfig,
    endpoints: &std::sync::Arc<Endpoints>,
) -> GrpcAgentClient {
    let started = host
        .client()
        .await
        .start_router(hpb::StartRouterRequest {
            tls: None,
            router: Some(router_to_proto(view)),
            standby: false,
        })
        .await
        .unwrap_or_else(|e| panic!("{} StartRouter: {e}", host.name))
        .into_inner();
    let endpoint = AgentEndpoint::from_text(&started.agent_endpoint).expect("an endpoint");
    endpoints.set(&view.name, endpoint);
    let agents = GrpcAgentClient::new(endpoints.clone());
    let applied = agents
        .send(
            view,
            AgentCommand::ApplyConfig(pb::ApplyConfigRequest {
                generation: 1,
                config: Some(config),
            }),
        )
        .await;
    assert!(matches!(applied, Ok(AgentReply::Applied(_))), "{applied:?}");
    agents
}

async fn start_vm(host: &LabHost, view: &VmView) {
    host.client()
        .await
        .start_vm(hpb::VmRequest {
            vm: Some(vm_to_proto(view)),
        })
        .await
        .unwrap_or_else(|e| panic!("{} StartVm {}: {e}", host.name, view.instance_name));
}

async fn set_flood_list(host: &LabHost, zone: Uuid, vteps: &[Ipv4Addr]) {
    host.client()
        .await
        .set_flood_list(hpb::FloodListRequest {
            zone_id: zone.to_string(),
            broadcast_uri: TIER_URI.into(),
            remote_vteps: vteps.iter().map(Ipv4Addr::to_string).collect(),
        })
        .await
        .unwrap_or_else(|e| panic!("{} SetFloodList: {e}", host.name));
}

/// The all-zero FDB entries of the tier's VXLAN device on a host, as
/// `bridge -j fdb` reports them.
fn flood_entries(host: &LabHost, zone: Uuid) -> Vec<String> {
    let ns = host.zone_ns(&zone);
    let out = run(&["bridge", "-j", "-n", &ns, "fdb", "show", "dev", "vx5001"]).expect("bridge");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let mut dsts: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["mac"] == "00:00:00:00:00:00")
        .filter_map(|e| e["dst"].as_str().map(String::from))
        .collect();
    dsts.sort();
    dsts
}

/// `ip -j -d link show dev <link>` in a namespace.
fn link_details(ns: &str, link: &str) -> serde_json::Value {
    let out = run(&["ip", "-j", "-d", "-n", ns, "link", "show", "dev", link]).expect("ip");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v[0].clone()
}

/// Waits for a VM's lease on its host; returns the lease record.
async fn lease(host: &LabHost, vm: &TierVm) -> String {
    let got = eventually(Duration::from_secs(30), || {
        host.lease(vm.instance, 0).is_some()
    })
    .await;
    assert!(
        got,
        "{} on {} took no lease; udhcpc log:\n{}",
        vm.instance,
        host.name,
        std::fs::read_to_string(
            host.data_dir
                .join("vms")
                .join(vm.instance)
                .join("udhcpc-eth0.log")
        )
        .unwrap_or_default()
    );
    host.lease(vm.instance, 0).unwrap_or_default()
}

/// One ping with the DF bit and `size` bytes of payload.
fn ping_df(ns: &str, addr: Ipv4Addr, size: u32) -> bool {
    exec(
        ns,
        &[
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            "-M",
            "do",
            "-s",
            &size.to_string(),
            &addr.to_string(),
        ],
    )
    .status
    .success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vms_on_two_hosts_lease_from_a_router_on_a_third_across_vxlan_and_the_public_network_spans_hosts()
 {
    let mut fabric = Fabric::start(FabricOptions::default()).await;
    let upstream = fabric.add_upstream(&["203.0.113.1/24"]);
    let [h1, h2, h3] = [&fabric.hosts[0], &fabric.hosts[1], &fabric.hosts[2]];
    let zone = Uuid::new_v4();
    let tier = Uuid::new_v4();

    // Describe: each host tells its name, underlay and prefix.
    for host in [h1, h2, h3] {
        let d = host
            .client()
            .await
            .describe(hpb::DescribeRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (d.name.as_str(), d.hypervisor.as_str(), d.prefix.as_str()),
            (host.name.as_str(), "netns", host.prefix.as_str())
        );
        assert_eq!(d.underlay_address, host.underlay.to_string());
        assert_eq!(d.underlay_mtu, 1500);
        assert!(d.cpus >= 1 && d.memory_available_bytes > 0);
    }

    // The router on host 1, a VM on host 2 and one on host 3.
    let mut r1 = router1(zone);
    r1.nics.push(router_nic(
        2,
        PRIVATE_MAC,
        NicRole::Private,
        "172.16.0.10",
        Some("172.16.0.1"),
        PRIVATE_URI,
    ));
    let mut r1_config = router1_config(&r1, &VMS[..2]);
    private_gateway(&mut r1_config, &r1.nics[2], "172.16.0.10");
    let endpoints = std::sync::Arc::new(Endpoints::default());
    start_router(h1, &r1, r1_config, &endpoints).await;
    let vm_a = vm_view(zone, tier, &VMS[0]);
    let vm_b = vm_view(zone, tier, &VMS[1]);
    start_vm(h2, &vm_a).await;
    start_vm(h3, &vm_b).await;
    let all = [h1.underlay, h2.underlay, h3.underlay];
    for host in [h1, h2, h3] {
        let others: Vec<Ipv4Addr> = all.into_iter().filter(|a| *a != host.underlay).collect();
        set_flood_list(host, zone, &others).await;
        assert_eq!(
            flood_entries(host, zone),
            others.iter().map(Ipv4Addr::to_string).collect::<Vec<_>>()
        );
    }

    // The VXLAN device binds the host's underlay address, learns nothing
    // itself, and carries the underlay's MTU minus 50, as does its bridge.
    let vx = link_details(&h1.zone_ns(&zone), "vx5001");
    assert_eq!(vx["linkinfo"]["info_data"]["local"], "10.250.0.1", "{vx}");
    assert_eq!(vx["linkinfo"]["info_data"]["port"], 4789, "{vx}");
    assert_eq!(vx["linkinfo"]["info_data"]["learning"], false, "{vx}");
    assert_eq!(vx["mtu"], 1450);
    assert_eq!(link_details(&h1.zone_ns(&zone), "brx5001")["mtu"], 1450);
    assert_eq!(link_details(&h1.ns("r-1-VM"), "eth1")["mtu"], 1450);

    // Leases across hosts, with the tier's MTU by option 26, which the VM's
    // DHCP client (busybox udhcpc) asked for and applied.
    let (a_ns, b_ns) = (h2.ns(VMS[0].instance), h3.ns(VMS[1].instance));
    for (host, vm) in [(h2, &VMS[0]), (h3, &VMS[1])] {
        let record = lease(host, vm).await;
        assert!(record.contains(&format!("ip={}\n", vm.ip)), "{record}");
        assert!(record.contains("router=10.1.1.1\n"), "{record}");
        assert!(record.contains("mtu=1450\n"), "{record}");
        assert_eq!(link_details(&host.ns(vm.instance), "eth0")["mtu"], 1450);
    }
    // The router's dnsmasq announces it because its tier link has 1450.
    let conf = Command::new("grep")
        .args(["-rh", "--include=eth1.conf", "option:mtu"])
        .arg(h1.data_dir.join("routers/r-1-VM"))
        .stderr(Stdio::null())
        .output()
        .expect("grep");
    let conf = String::from_utf8_lossy(&conf.stdout);
    assert_eq!(conf.trim(), "dhcp-option=tag:eth1,option:mtu,1450");

    // Both VMs reach the router and each other across hosts; a full-size
    // frame of the tier passes, one byte more does not leave the VM.
    assert!(
        eventually(Duration::from_secs(10), || ping(&a_ns, "10.1.1.1")).await,
        "VM A (host 2) cannot ping its router (host 1)\n{}",
        fabric.logs()
    );
    assert!(
        ping(&b_ns, "10.1.1.1"),
        "VM B (host 3) cannot ping its router"
    );
    assert!(ping(&a_ns, "10.1.1.51"), "VM A cannot ping VM B");
    assert!(ping(&b_ns, "10.1.1.50"), "VM B cannot ping VM A");
    assert!(ping_df(&a_ns, VMS[1].ip, 1450 - 28), "a 1450-byte packet");
    assert!(!ping_df(&a_ns, VMS[1].ip, 1450 - 27), "1451 bytes with DF");

    // The router's public NIC on host 1 reaches the upstream through the
    // fabric's public bridge; VM A reaches it by source NAT.
    assert!(
        eventually(Duration::from_secs(10), || ping(&upstream, "203.0.113.10")).await,
        "upstream cannot ping router 1's public IP"
    );
    assert!(
        eventually(Duration::from_secs(5), || ping(&a_ns, "203.0.113.1")).await,
        "VM A cannot reach upstream by source NAT"
    );

    // A router on host 2 is on the same public network.
    let r2 = RouterView {
        id: Uuid::new_v4(),
        name: "r-2-VM".into(),
        zone_id: zone,
        generation: 0,
        host: None,
        nics: vec![
            router_nic(
                0,
                R2_PUBLIC_MAC,
                NicRole::Public,
                "203.0.113.11",
                Some("203.0.113.1"),
                "untagged",
            ),
            router_nic(
                1,
                R2_PRIVATE_MAC,
                NicRole::Private,
                "172.16.0.11",
                Some("172.16.0.1"),
                PRIVATE_URI,
            ),
        ],
    };
    let mut r2_config = pb::RouterConfig {
        router_name: r2.name.clone(),
        vpc_id: "vpc-2".into(),
        vpc_cidr: "10.2.0.0/16".into(),
        nics: vec![pb_nic(&r2.nics[0], pb::NicRole::Public)],
        public_ips: vec![public_ip("203.0.113.11", R2_PUBLIC_MAC)],
        ..Default::default()
    };
    private_gateway(&mut r2_config, &r2.nics[1], "172.16.0.11");
    start_router(h2, &r2, r2_config, &endpoints).await;
    assert!(
        eventually(Duration::from_secs(10), || ping(&upstream, "203.0.113.11")).await,
        "upstream cannot ping router 2 (host 2)"
    );
    assert!(ping(&h2.ns("r-2-VM"), "203.0.113.1"));
    assert!(
        ping(&h2.ns("r-2-VM"), "203.0.113.10"),
        "router 2 to router 1"
    );
    // A private-gateway VLAN spans hosts too: router 1 (host 1) and router
    // 2 (host 2) meet on VLAN 300 through the fabric's own bridge for it.
    assert!(
        eventually(Duration::from_secs(10), || ping(
            &h1.ns("r-1-VM"),
            "172.16.0.11"
        ))
        .await,
        "router 1 cannot reach router 2 on VLAN 300"
    );
    assert_eq!(fabric.bridge_ports("brv300").len(), 2);
    // One uplink per host with a public NIC, and the upstream.
    let public_ports = fabric.bridge_ports("brpub");
    assert_eq!(public_ports.len(), 3, "{public_ports:?}");
    assert!(public_ports.contains(&"up-pub".to_string()));
    // Each host's underlay link is on the fabric's underlay bridge.
    assert_eq!(fabric.bridge_ports("underlay").len(), 3);

    // Host 3 out of host 1's flood list: host 1 floods (and, without
    // learning, sends unknown unicast) only to host 2, so VM B loses its
    // router while VM A keeps it; back in, VM B reaches it again.
    set_flood_list(h1, zone, &[h2.underlay]).await;
    assert_eq!(flood_entries(h1, zone), ["10.250.0.2"]);
    assert!(ping(&a_ns, "10.1.1.1"));
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        assert!(!ping(&b_ns, "10.1.1.1"), "host 1 still floods to host 3");
    }
    set_flood_list(h1, zone, &[h3.underlay, h2.underlay]).await;
    assert_eq!(flood_entries(h1, zone), ["10.250.0.2", "10.250.0.3"]);
    assert!(
        eventually(Duration::from_secs(5), || ping(&b_ns, "10.1.1.1")).await,
        "VM B back in the flood list cannot reach its router"
    );

    // A refused flood list names its field and changes nothing.
    let refused = h1
        .client()
        .await
        .set_flood_list(hpb::FloodListRequest {
            zone_id: zone.to_string(),
            broadcast_uri: TIER_URI.into(),
            remote_vteps: vec!["10.250.0.2".into(), "10.250.0.1".into()],
        })
        .await
        .expect_err("its own VTEP");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().starts_with("remote_vteps"),
        "{}",
        refused.message()
    );
    assert_eq!(flood_entries(h1, zone), ["10.250.0.2", "10.250.0.3"]);
    drop(fabric);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_host_agent_sweeps_leftovers_of_its_prefix_but_keeps_what_its_records_hold() {
    let fabric = Fabric::start(FabricOptions {
        hosts: 1,
        extra_args: vec!["--sweep-interval".into(), "1".into()],
        ..Default::default()
    })
    .await;
    let host = &fabric.hosts[0];
    let zone = Uuid::new_v4();
    let vm = vm_view(zone, Uuid::new_v4(), &VMS[2]);
    start_vm(host, &vm).await;
    let (vm_ns, zone_ns) = (host.ns(vm.instance_name.as_str()), host.zone_ns(&zone));

    // Leftovers of a crash: a router namespace no record holds, with a
    // process in it, and a zone namespace nobody uses.
    let leftover = host.ns("r-99-VM");
    let dead_zone = format!("{}zone-deadbeef", host.prefix);
    let other = format!("{}x-r-99-VM", fabric.prefix);
    for ns in [&leftover, &dead_zone, &other] {
        assert!(run(&["ip", "netns", "add", ns]).unwrap().status.success());
    }
    let sleeper = Command::new("ip")
        .args(["netns", "exec", &leftover, "sleep", "600"])
        .stdin(Stdio::null())
        .spawn()
        .expect("sleep in the leftover");
    let sleeper_pid = sleeper.id();

    let exists = |ns: &str| std::path::Path::new("/run/netns").join(ns).exists();
    assert!(
        eventually(Duration::from_secs(15), || !exists(&leftover)
            && !exists(&dead_zone))
        .await,
        "the sweeper left {leftover} or {dead_zone}\n{}",
        fabric.logs()
    );
    assert!(
        eventually(Duration::from_secs(5), || !support::netns::process_alive(
            sleeper_pid
        ))
        .await,
        "the leftover's process survived"
    );
    // What its records hold stays, and so does what is not its prefix.
    assert!(exists(&vm_ns), "the VM's namespace was swept");
    assert!(exists(&zone_ns), "the VM's zone was swept");
    assert!(exists(&other), "another prefix's namespace was swept");
    assert!(exists(&fabric.ns));
    // A few sweeps later the VM still holds its lease and zone link.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(exists(&vm_ns) && exists(&zone_ns));
    assert!(
        support::netns::links(&zone_ns)
            .iter()
            .any(|(name, _, _)| name == "ul0"),
        "the zone lost its underlay link"
    );
    let mut sleeper = sleeper;
    let _ = sleeper.wait();
    drop(fabric);
}

/// TCP bulk throughput (Gbit/s) from `client` to `server` (namespaces) with
/// iperf3 for 3 s.
fn iperf(client: &str, server: &str, to: Ipv4Addr) -> f64 {
    let mut listener = Command::new("ip")
        .args(["netns", "exec", server, "iperf3", "-s", "-1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("iperf3 -s");
    std::thread::sleep(Duration::from_millis(300));
    let out = Command::new("timeout")
        .args(["20", "ip", "netns", "exec", client, "iperf3", "-c"])
        .arg(to.to_string())
        .args(["-t", "3", "-J"])
        .output()
        .expect("iperf3 -c");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(listener.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = listener.wait();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("iperf3 JSON");
    json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .expect("bits_per_second")
        / 1e9
}

/// New TCP connections per second (thousands) from `client` to `server`
/// port 7000 over 3 s: each one a full handshake and close, the server
/// closing first so the client's ports are free again at once.
fn connection_rate(client: &str, server: &str, to: Ipv4Addr) -> f64 {
    use std::io::Read;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let accepting = {
        let stop = stop.clone();
        let ns = vpc_integration::Netns::existing(server);
        std::thread::spawn(move || {
            vpc_integration::run_in_netns(&ns, move || {
                let listener = std::net::TcpListener::bind("0.0.0.0:7000").unwrap();
                listener.set_nonblocking(true).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => drop(stream),
                        Err(_) => std::thread::sleep(Duration::from_micros(200)),
                    }
                }
                Ok(())
            })
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let ns = vpc_integration::Netns::existing(client);
    let measure = Duration::from_secs(3);
    let made = vpc_integration::run_in_netns(&ns, move || {
        let target = std::net::SocketAddr::from((to, 7000));
        let started = Instant::now();
        let mut made = 0u64;
        let mut buf = [0u8; 16];
        while started.elapsed() < measure {
            if let Ok(mut s) = std::net::TcpStream::connect_timeout(&target, Duration::from_secs(1))
            {
                let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
                made += 1;
            }
        }
        Ok(made)
    })
    .expect("connecting");
    stop.store(true, Ordering::Relaxed);
    accepting.join().unwrap().unwrap();
    made as f64 / measure.as_secs_f64() / 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The benchmark of `scripts/bench/fabric.sh` (not a pass/fail test): a
/// router on host 1, VMs A and C on host 2, VM B on host 3, one VXLAN tier;
/// TCP throughput and new-connection rate A→C (one host, through host 2's
/// bridge) and A→B (two hosts, across VXLAN over the fabric), medians of
/// `FABRIC_BENCH_RUNS` (5) runs, printed as a Markdown table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: scripts/bench/fabric.sh"]
async fn fabric_bench_throughput_and_new_connections_one_host_vs_two() {
    let runs: usize = std::env::var("FABRIC_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let fabric = Fabric::start(FabricOptions::default()).await;
    let [h1, h2, h3] = [&fabric.hosts[0], &fabric.hosts[1], &fabric.hosts[2]];
    let zone = Uuid::new_v4();
    let tier = Uuid::new_v4();
    let r1 = router1(zone);
    let endpoints = std::sync::Arc::new(Endpoints::default());
    start_router(h1, &r1, router1_config(&r1, &VMS), &endpoints).await;
    start_vm(h2, &vm_view(zone, tier, &VMS[0])).await;
    start_vm(h3, &vm_view(zone, tier, &VMS[1])).await;
    start_vm(h2, &vm_view(zone, tier, &VMS[2])).await;
    let all = [h1.underlay, h2.underlay, h3.underlay];
    for host in [h1, h2, h3] {
        let others: Vec<Ipv4Addr> = all.into_iter().filter(|a| *a != host.underlay).collect();
        set_flood_list(host, zone, &others).await;
    }
    for (host, vm) in [(h2, &VMS[0]), (h3, &VMS[1]), (h2, &VMS[2])] {
        lease(host, vm).await;
    }
    let a = h2.ns(VMS[0].instance);
    let pairs = [
        (
            "one host (A→C, host 2's bridge)",
            h2.ns(VMS[2].instance),
            VMS[2].ip,
        ),
        (
            "two hosts (A→B, VXLAN over the fabric)",
            h3.ns(VMS[1].instance),
            VMS[1].ip,
        ),
    ];
    for (_, ns, ip) in &pairs {
        assert!(
            eventually(Duration::from_secs(10), || ping(&a, &ip.to_string())).await,
            "{ns} unreachable"
        );
    }
    let mut report = String::from(
        "| VMs | TCP throughput (Gbit/s, iperf3 3 s) | new TCP connections (k/s) |\n|---|---|---|\n",
    );
    for (label, ns, ip) in pairs {
        let (a2, ns2) = (a.clone(), ns.clone());
        let (gbps, conns) = tokio::task::spawn_blocking(move || {
            let gbps: Vec<f64> = (0..runs).map(|_| iperf(&a2, &ns2, ip)).collect();
            let conns: Vec<f64> = (0..runs).map(|_| connection_rate(&a2, &ns2, ip)).collect();
            (gbps, conns)
        })
        .await
        .unwrap();
        eprintln!("{label}: throughput {gbps:.2?} Gbit/s, connections {conns:.2?} k/s");
        report.push_str(&format!(
            "| {label} | {:.2} | {:.2} |\n",
            median(gbps),
            median(conns)
        ));
    }
    println!("\n{report}");
    drop(fabric);
}
