//! The host agent as its own process (`vpc-manager host-agent` on a Unix
//! socket): a manager drives a real router and VMs only through it; the
//! host agent killed with SIGKILL and started again costs the data plane
//! nothing (continuous ping between two tiers, losses counted), finds its
//! router and VMs again and reports them in its inventory, and the system
//! keeps working: a new ACL item reaches the router, a new VM starts. And a
//! manager restarted on the same data starts only what its (in-process)
//! host agent does not run. The gRPC surface alone: `host_agent_grpc.rs`.

mod support;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::api::{id, job_ok};
use support::e2e::{E2e, blocking, new_prefix, ping_ok};
use vpc_manager::driver::NetnsDriver;
use vpc_manager::settings::AgentTransport;
use vpc_proto::host::v1 as pb;

/// A `vpc-manager host-agent` child, killed (by pid) when dropped.
struct HostAgentProcess {
    child: Child,
}

impl HostAgentProcess {
    fn start(socket: &Path, data_dir: &Path, prefix: &str, log: &Path) -> HostAgentProcess {
        Self::start_listening(
            &format!("unix:{}", socket.display()),
            &[],
            data_dir,
            prefix,
            log,
        )
    }

    /// On `listen`, with `extra` arguments.
    fn start_listening(
        listen: &str,
        extra: &[String],
        data_dir: &Path,
        prefix: &str,
        log: &Path,
    ) -> HostAgentProcess {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("host agent log");
        let child = Command::new(env!("CARGO_BIN_EXE_vpc-manager"))
            .args(["host-agent", "--listen", listen])
            .args(extra)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--netns-prefix", prefix])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("vpc-manager host-agent starts");
        HostAgentProcess { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, by pid, and reap.
    fn kill(mut self) {
        self.kill_now();
    }

    fn kill_now(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.wait();
    }
}

impl Drop for HostAgentProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill_now();
        }
    }
}

/// The host agent's inventory, asked straight on its socket; None while it
/// does not answer.
async fn inventory(socket: &Path) -> Option<pb::InventoryResponse> {
    let ask = async {
        let channel = vpc_proto::channel::unix(socket.to_path_buf()).await.ok()?;
        pb::host_agent_client::HostAgentClient::new(channel)
            .inventory(pb::InventoryRequest {})
            .await
            .ok()
            .map(tonic::Response::into_inner)
    };
    tokio::time::timeout(Duration::from_secs(2), ask)
        .await
        .ok()
        .flatten()
}

/// Waits until the host agent answers its inventory.
async fn answering(socket: &Path, within: Duration) -> pb::InventoryResponse {
    let started = Instant::now();
    loop {
        if let Some(i) = inventory(socket).await {
            return i;
        }
        assert!(
            started.elapsed() < within,
            "the host agent on {} did not answer within {within:?}",
            socket.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `ping -c count -i interval` from `ns` to `to`: (sent, received).
fn ping_counts(ns: &str, to: Ipv4Addr, count: u32, interval: &str) -> (u32, u32) {
    let out = Command::new("timeout")
        .args(["60", "ip", "netns", "exec", ns, "ping", "-n", "-q"])
        .args(["-c", &count.to_string(), "-i", interval, "-W", "1"])
        .arg(to.to_string())
        .output()
        .expect("ping runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no ping summary in {text:?}"));
    let number = |key: &str| -> u32 {
        let before = line.split(key).next().unwrap_or_default();
        before
            .split_whitespace()
            .last()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {key:?} in {line:?}"))
    };
    (number(" packets transmitted"), number(" received"))
}

fn router_entry<'a>(inventory: &'a pb::InventoryResponse, name: &str) -> &'a pb::RouterEntry {
    inventory
        .routers
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("router {name} not in the inventory: {inventory:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn routers_keep_forwarding_while_the_host_agent_is_killed_and_it_takes_them_back() {
    vpc_integration::require_root();
    let prefix = new_prefix();
    let host_dir = tempfile::tempdir().expect("host agent dir");
    // dnsmasq in the routers runs as nobody and must reach its files.
    std::fs::set_permissions(
        host_dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .expect("chmod the host agent dir");
    let data: PathBuf = host_dir.path().join("data");
    let socket = host_dir.path().join("host.sock");
    let log = host_dir.path().join("host-agent.log");
    let first = HostAgentProcess::start(&socket, &data, &prefix, &log);
    answering(&socket, Duration::from_secs(30)).await;

    // The manager's netns driver is not used: this one only reads names and
    // leases from the host agent's directory.
    let reader = NetnsDriver::new(
        &prefix,
        &data,
        vpc_manager::driver::default_agent_path(),
        AgentTransport::Unix,
        Default::default(),
        None,
    )
    .expect("a reader of the host agent's files");
    let url = format!("unix://{}", socket.display());
    let e = E2e::start_with(
        prefix.clone(),
        AgentTransport::Unix,
        |s| s.host_agent_url = Some(url),
        Some(reader),
    )
    .await;
    assert!(
        !e.m.data_dir.path().join("host-agent.sock").exists(),
        "no host agent in-process when one is named"
    );
    let admin = e.admin();

    let vpc = e.vpc(&admin, "hosted", "10.81.0.0/16").await;
    let vpc_id = vpc["id"].as_str().unwrap().to_string();
    let router = admin.ok("listRouters", &[("vpcid", &vpc_id)]).await["router"][0].clone();
    let router_name = router["name"].as_str().unwrap().to_string();
    let acl = id(
        &job_ok(
            &admin,
            "createNetworkACLList",
            &[
                ("name", "icmp"),
                ("description", "icmp"),
                ("vpcid", &vpc_id),
            ],
        )
        .await,
        "networkacllist",
    );
    job_ok(
        &admin,
        "createNetworkACL",
        &[
            ("aclid", &acl),
            ("number", "10"),
            ("protocol", "icmp"),
            ("icmptype", "-1"),
            ("icmpcode", "-1"),
            ("cidrlist", "10.81.0.0/16"),
            ("action", "Allow"),
            ("traffictype", "Ingress"),
        ],
    )
    .await;
    let a = e
        .tier(&admin, &vpc_id, "a", "10.81.1.1", Some(&acl), false)
        .await;
    let b = e
        .tier(&admin, &vpc_id, "b", "10.81.2.1", Some(&acl), false)
        .await;
    let vm_a = e.vm(&admin, a["id"].as_str().unwrap(), "a1").await;
    let vm_b = e.vm(&admin, b["id"].as_str().unwrap(), "b1").await;
    let _ = e.lease(&vm_a).await;
    let ip_b = e.lease(&vm_b).await;
    let ns_a = e.vm_ns(&vm_a);
    assert!(ping_ok(&ns_a, ip_b).await, "tier a reaches tier b");

    let before = answering(&socket, Duration::from_secs(5)).await;
    let entry = router_entry(&before, &router_name);
    assert_eq!(entry.state, pb::RunState::Running as i32, "{entry:?}");
    let agent_pid = entry.agent_pid;
    assert!(agent_pid > 0, "{entry:?}");
    assert_eq!(
        before
            .vms
            .iter()
            .filter(|v| v.state == pb::RunState::Running as i32)
            .count(),
        2,
        "{before:?}"
    );

    // Continuous ping across the router (10 per second for 10 s) while the
    // host agent is killed and, a second later, started again.
    let from = ns_a.name().to_string();
    let pinging = blocking(move || ping_counts(&from, ip_b, 100, "0.1"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed_pid = first.pid();
    first.kill();
    assert!(
        !Path::new(&format!("/proc/{killed_pid}")).exists(),
        "the host agent is gone"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let restarting = Instant::now();
    let second = HostAgentProcess::start(&socket, &data, &prefix, &log);
    let after = answering(&socket, Duration::from_secs(30)).await;
    println!(
        "the restarted host agent answered its inventory {:?} after it was started, with one \
         router and two VMs taken back",
        restarting.elapsed()
    );
    let (sent, received) = pinging.await;
    let lost = sent - received;
    println!(
        "host agent SIGKILLed and restarted under a continuous ping: {sent} sent, {received} \
         received, {lost} lost"
    );
    assert!(lost <= 1, "{lost} of {sent} pings lost");

    // The restarted host agent took the router and the VMs back: the same
    // agent process, reached where the database says.
    let entry = router_entry(&after, &router_name);
    assert_eq!(entry.state, pb::RunState::Running as i32, "{entry:?}");
    assert_eq!(
        entry.agent_pid, agent_pid,
        "the router's agent kept running"
    );
    let expected = format!(
        "unix://{}",
        data.join("routers")
            .join(&router_name)
            .join("agent.sock")
            .display()
    );
    assert_eq!(entry.agent_endpoint, expected);
    assert_eq!(
        after
            .vms
            .iter()
            .filter(|v| v.state == pb::RunState::Running as i32)
            .count(),
        2,
        "{after:?}"
    );
    assert_eq!(after.prefix, prefix);

    // A later change reaches the router: a deny item before the allow.
    job_ok(
        &admin,
        "createNetworkACL",
        &[
            ("aclid", &acl),
            ("number", "5"),
            ("protocol", "icmp"),
            ("icmptype", "-1"),
            ("icmpcode", "-1"),
            ("cidrlist", "10.81.1.0/24"),
            ("action", "Deny"),
            ("traffictype", "Ingress"),
        ],
    )
    .await;
    assert!(!ping_ok(&ns_a, ip_b).await, "the new deny item is applied");
    // And the restarted host agent starts a new VM for the manager.
    let vm_b2 = e.vm(&admin, b["id"].as_str().unwrap(), "b2").await;
    let _ = e.lease(&vm_b2).await;
    let last = answering(&socket, Duration::from_secs(5)).await;
    assert!(
        last.vms
            .iter()
            .any(|v| v.instance_name == vm_b2["instancename"].as_str().unwrap()),
        "{last:?}"
    );

    // The host agent goes first: it must not repair what the clean-up
    // removes.
    drop(second);
    e.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_manager_starts_only_what_its_host_does_not_run() {
    let e = E2e::start(AgentTransport::Unix).await;
    let admin = e.admin();
    let kept = e.vpc(&admin, "kept", "10.82.0.0/16").await;
    let broken = e.vpc(&admin, "broken", "10.83.0.0/16").await;
    let router_of = |vpc: &serde_json::Value| {
        let admin = admin.clone();
        let vpc = vpc["id"].as_str().unwrap().to_string();
        async move {
            admin.ok("listRouters", &[("vpcid", &vpc)]).await["router"][0]["name"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let (kept_router, broken_router) = (router_of(&kept).await, router_of(&broken).await);
    let tier = e
        .tier(
            &admin,
            kept["id"].as_str().unwrap(),
            "t",
            "10.82.1.1",
            None,
            false,
        )
        .await;
    let vm = e.vm(&admin, tier["id"].as_str().unwrap(), "v1").await;
    let _ = e.lease(&vm).await;
    let instance = vm["instancename"].as_str().unwrap().to_string();
    let kept_pid = e.driver.agent_pid(&kept_router).expect("agent runs");
    let broken_pid = e.driver.agent_pid(&broken_router).expect("agent runs");
    let dhcp_pid = e
        .driver
        .dhcp_client_pid(&instance, 0)
        .expect("DHCP client runs");

    // While no manager runs, one router's agent dies (nobody restarts it).
    let e = e
        .restart_manager(|| {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(broken_pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        })
        .await;

    // The new host agent took the live router and VM back as they were;
    // the manager started only the router whose agent was gone.
    assert_eq!(e.driver.agent_pid(&kept_router), Some(kept_pid));
    assert_eq!(
        e.driver.agent_starts(&kept_router),
        0,
        "taken back, not started"
    );
    assert_eq!(e.driver.dhcp_client_pid(&instance, 0), Some(dhcp_pid));
    assert_eq!(
        e.driver.agent_starts(&broken_router),
        1,
        "the router without a live agent is started again"
    );
    assert_ne!(e.driver.agent_pid(&broken_router), Some(broken_pid));
    let state = e
        .agent_state(&broken_router)
        .await
        .expect("the restarted agent answers");
    assert!(state.generation > 0, "it holds its configuration again");

    // The manager works through the new host agent: a second VM on the
    // kept router's tier takes its address from that router.
    let admin = e.admin();
    let vm2 = e.vm(&admin, tier["id"].as_str().unwrap(), "v2").await;
    let ip2 = e.lease(&vm2).await;
    assert_eq!(
        ip2.to_string(),
        vm2["nic"][0]["ipaddress"].as_str().unwrap()
    );
    e.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_manager_drives_a_host_agent_on_tcp_with_the_cluster_ca() {
    use vpc_manager::orchestration::RouterDriver;
    vpc_integration::require_root();
    let prefix = new_prefix();
    let host_dir = tempfile::tempdir().expect("host agent dir");
    std::fs::set_permissions(
        host_dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .expect("chmod the host agent dir");
    let data = host_dir.path().join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let reader = NetnsDriver::new(
        &prefix,
        &data,
        vpc_manager::driver::default_agent_path(),
        AgentTransport::Unix,
        Default::default(),
        None,
    )
    .expect("a reader of the host agent's files");
    // The manager first: it makes the database and the cluster CA; the
    // host agent, not yet running, is reached at the first call.
    let url = format!("https://127.0.0.1:{port}");
    let e = E2e::start_with(
        prefix.clone(),
        AgentTransport::Unix,
        |s| s.host_agent_url = Some(url),
        Some(reader),
    )
    .await;
    let manager_dir = e.m.data_dir.path().to_path_buf();
    let host = HostAgentProcess::start_listening(
        &format!("tcp://127.0.0.1:{port}"),
        &[
            "--database-url".into(),
            e.m.database_url(),
            "--database-key-file".into(),
            manager_dir.join("database.key").display().to_string(),
        ],
        &data,
        &prefix,
        &host_dir.path().join("host-agent.log"),
    );
    let driver = e.m.app.network.element.driver().clone();
    let started = Instant::now();
    loop {
        match driver.inventory().await {
            Ok(Some(_)) => break,
            other => {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "the host agent on TCP is not reached: {other:?}; its log: {}",
                    std::fs::read_to_string(host_dir.path().join("host-agent.log"))
                        .unwrap_or_default()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert_eq!(
        std::fs::read_to_string(data.join("pki").join("ca.pem")).expect("the host agent's CA"),
        std::fs::read_to_string(manager_dir.join("pki").join("ca.pem")).expect("the manager's CA"),
        "one CA, taken from the database"
    );

    let admin = e.admin();
    let vpc = e.vpc(&admin, "tcp", "10.84.0.0/16").await;
    let tier = e
        .tier(
            &admin,
            vpc["id"].as_str().unwrap(),
            "t",
            "10.84.1.1",
            None,
            false,
        )
        .await;
    let vm = e.vm(&admin, tier["id"].as_str().unwrap(), "v1").await;
    let ip = e.lease(&vm).await;
    assert_eq!(ip.to_string(), vm["nic"][0]["ipaddress"].as_str().unwrap());
    let router = admin
        .ok("listRouters", &[("vpcid", vpc["id"].as_str().unwrap())])
        .await["router"][0]
        .clone();
    assert_eq!(router["state"], "Running", "{router}");
    assert!(
        data.join("routers")
            .join(router["name"].as_str().unwrap())
            .join("agent.sock")
            .exists(),
        "the router runs under the host agent's directory"
    );

    drop(host);
    e.finish().await;
}

/// Whether the zone end `port` of a NIC is on a segment: up and a port of
/// a bridge (`ip -j link` in the zone namespace).
fn on_segment(zone_ns: &str, port: &str) -> bool {
    let out = Command::new("ip")
        .args(["-j", "-n", zone_ns, "link", "show", "dev", port])
        .output()
        .expect("ip runs");
    assert!(
        out.status.success(),
        "no port {port} in {zone_ns}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j");
    let link = &links[0];
    let up = link["flags"]
        .as_array()
        .is_some_and(|f| f.iter().any(|f| f == "UP"));
    up && link["master"].is_string()
}

/// `ip` in a namespace, asserted to succeed.
fn ip_in(ns: &str, args: &[&str]) {
    let out = Command::new("ip")
        .args(["-n", ns])
        .args(args)
        .output()
        .expect("ip runs");
    assert!(
        out.status.success(),
        "ip -n {ns} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One ping from `ns` to `to`, a second to answer.
fn answers(ns: &str, to: &str) -> bool {
    Command::new("ip")
        .args([
            "netns", "exec", ns, "ping", "-n", "-q", "-c", "1", "-W", "1", to,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_in_standby_stays_off_its_segments_across_a_host_agent_restart_until_activated() {
    use support::host_agent::HostAgentProcess as AgentProcess;
    vpc_integration::require_root();
    let mut agent = AgentProcess::start(new_prefix());
    agent.wait_listening().await;
    let socket = agent.dir().join("host-agent.sock");
    let client = || {
        let socket = socket.clone();
        async move {
            let channel = vpc_proto::channel::unix(socket)
                .await
                .expect("the host agent");
            pb::host_agent_client::HostAgentClient::new(channel)
        }
    };
    // A router with a public NIC (its upstream on the segment answers for
    // the gateway) and a guest NIC, as a move starts it on its target.
    let zone = uuid::Uuid::new_v4();
    let public_mac = "02:00:5e:77:00:01";
    let guest_mac = "02:00:5e:77:00:02";
    let router = pb::Router {
        id: uuid::Uuid::new_v4().to_string(),
        name: "r-9077-VM".into(),
        zone_id: zone.to_string(),
        generation: 3,
        nics: vec![
            pb::RouterNic {
                device_index: 1,
                mac_address: public_mac.into(),
                role: pb::NicRole::Public as i32,
                network_id: uuid::Uuid::new_v4().to_string(),
                ip_address: "203.0.113.77".into(),
                prefix_length: 24,
                gateway: "203.0.113.1".into(),
                mtu: 0,
                broadcast_uri: Some("vlan://untagged".into()),
            },
            pb::RouterNic {
                device_index: 2,
                mac_address: guest_mac.into(),
                role: pb::NicRole::Guest as i32,
                network_id: uuid::Uuid::new_v4().to_string(),
                ip_address: "10.77.1.1".into(),
                prefix_length: 24,
                gateway: String::new(),
                mtu: 0,
                broadcast_uri: Some("vlan://377".into()),
            },
        ],
    };
    client()
        .await
        .start_router(pb::StartRouterRequest {
            router: Some(router.clone()),
            standby: true,
            tls: None,
        })
        .await
        .unwrap_or_else(|e| panic!("standby start: {e}\n{}", agent.log()));
    let names = vpc_manager::driver::netns::names::Names::new(&agent.prefix).unwrap();
    let zone_ns = names.zone_ns(&zone);
    let router_ns = names.router_ns(&router.name);
    let upstream_ns = names.upstream_ns(&zone);
    let ports: Vec<String> = [public_mac, guest_mac]
        .iter()
        .map(|m| vpc_manager::driver::netns::names::zone_port(m).unwrap())
        .collect();
    // The router's public address, as its agent would set it from its
    // configuration: in standby no one on the segment reaches it.
    ip_in(
        &router_ns,
        &["addr", "add", "203.0.113.77/24", "dev", "eth1"],
    );
    ip_in(&router_ns, &["link", "set", "eth1", "up"]);
    for port in &ports {
        assert!(
            !on_segment(&zone_ns, port),
            "{port} is off its segment in standby"
        );
    }
    assert!(
        !answers(&upstream_ns, "203.0.113.77"),
        "standby answers no one"
    );

    // The host agent killed (SIGKILL) and started again: it takes the router
    // back, still in standby.
    let pid_before =
        router_entry(&inventory(&socket).await.expect("inventory"), &router.name).agent_pid;
    agent.restart(None);
    agent.wait_listening().await;
    let after = answering(&socket, Duration::from_secs(30)).await;
    let entry = router_entry(&after, &router.name);
    assert_eq!(entry.state, pb::RunState::Running as i32, "{entry:?}");
    assert_eq!(entry.agent_pid, pid_before, "the same agent, taken back");
    for port in &ports {
        assert!(
            !on_segment(&zone_ns, port),
            "{port} stays off its segment after the host agent's restart"
        );
    }
    assert!(
        !answers(&upstream_ns, "203.0.113.77"),
        "the router taken back in standby still answers no one"
    );

    // ActivateRouter puts it on its segments; a later restart keeps it there.
    client()
        .await
        .activate_router(pb::RouterRequest {
            router: Some(router.clone()),
        })
        .await
        .unwrap_or_else(|e| panic!("activate: {e}\n{}", agent.log()));
    for port in &ports {
        assert!(
            on_segment(&zone_ns, port),
            "{port} on its segment once activated"
        );
    }
    assert!(
        answers(&upstream_ns, "203.0.113.77"),
        "the activated router answers"
    );
    agent.restart(None);
    agent.wait_listening().await;
    answering(&socket, Duration::from_secs(30)).await;
    for port in &ports {
        assert!(
            on_segment(&zone_ns, port),
            "{port} stays on its segment after a restart once activated"
        );
    }
    assert!(answers(&upstream_ns, "203.0.113.77"));
    client()
        .await
        .destroy_router(pb::RouterRequest {
            router: Some(router.clone()),
        })
        .await
        .expect("destroyed");
}
