//! The host agent as its own process (`vpc-manager host-agent` on a Unix
//! socket): a manager drives a real router and VMs only through it; the
//! host agent killed with SIGKILL and started again costs the data plane
//! nothing (continuous ping between two tiers, losses counted), finds its
//! router and VMs again and reports them in its inventory, and the system
//! keeps working: a new ACL item reaches the router, a new VM starts.

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
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("host agent log");
        let child = Command::new(env!("CARGO_BIN_EXE_vpc-manager"))
            .args(["host-agent", "--listen"])
            .arg(format!("unix:{}", socket.display()))
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
    let second = HostAgentProcess::start(&socket, &data, &prefix, &log);
    let after = answering(&socket, Duration::from_secs(30)).await;
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

/// A free TCP port on the loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Inventory over TCP with mutual TLS as `identity` presents itself.
async fn inventory_as(
    port: u16,
    identity: Option<&vpc_manager::pki::ClientIdentity>,
    ca_pem: &str,
) -> Result<pb::InventoryResponse, tonic::Status> {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let mut tls = ClientTlsConfig::new()
        .domain_name(vpc_manager::host::tls::SERVER_NAME)
        .ca_certificate(Certificate::from_pem(ca_pem));
    if let Some(identity) = identity {
        tls = tls.identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem));
    }
    let channel = Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    pb::host_agent_client::HostAgentClient::new(channel)
        .inventory(pb::InventoryRequest {})
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_tcp_the_host_agent_admits_only_the_managers_client_certificate() {
    use vpc_manager::pki::Pki;
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = Pki::load_or_create(dir.path()).expect("the CA");
    let driver = NetnsDriver::new(
        "hta-",
        dir.path(),
        vpc_manager::driver::default_agent_path(),
        AgentTransport::Unix,
        Default::default(),
        None,
    )
    .expect("driver");
    let agent = vpc_manager::host::HostAgent::new(driver, dir.path());
    let port = free_port();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served_pki = Pki::load_or_create(dir.path()).expect("the same CA");
    let server = tokio::spawn(async move {
        vpc_manager::host::server::serve_tcp(agent, addr, &served_pki, async {
            let _ = stopped.await;
        })
        .await
    });

    // The manager's driver, as `host_agent_url = "https://…"` builds it.
    let endpoints = std::sync::Arc::default();
    let driver =
        vpc_manager::host::tls::host_driver(&format!("https://127.0.0.1:{port}"), &pki, endpoints)
            .await
            .expect("a driver");
    let started = Instant::now();
    let inventory = loop {
        match driver.inventory().await {
            Ok(i) => break i,
            Err(e) if started.elapsed() < Duration::from_secs(10) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the manager is refused: {e}"),
        }
    };
    assert_eq!(inventory.prefix, "hta-");
    assert!(inventory.routers.is_empty() && inventory.vms.is_empty());

    // A client certificate from the same CA, for the same name, that is not
    // the manager's own one (another key): refused.
    let other = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(other.path().join("pki")).unwrap();
    for file in ["ca.pem", "ca.key"] {
        std::fs::copy(
            dir.path().join("pki").join(file),
            other.path().join("pki").join(file),
        )
        .unwrap();
    }
    let impostor = Pki::load_or_create(other.path()).expect("the same CA, another client");
    assert_eq!(impostor.ca_pem(), pki.ca_pem(), "one CA");
    assert_ne!(
        impostor.client_identity().cert_pem,
        pki.client_identity().cert_pem
    );
    let refused = inventory_as(port, Some(&impostor.client_identity()), pki.ca_pem())
        .await
        .expect_err("another client certificate of the CA is refused");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused}");

    // A router's certificate (server use only) and no certificate at all:
    // refused too.
    let router = pki.issue_router("r-1-VM").expect("a router certificate");
    let as_router = vpc_manager::pki::ClientIdentity {
        cert_pem: router.cert_pem,
        key_pem: router.key_pem,
        ca_pem: router.ca_pem,
    };
    assert!(
        inventory_as(port, Some(&as_router), pki.ca_pem())
            .await
            .is_err()
    );
    assert!(inventory_as(port, None, pki.ca_pem()).await.is_err());
    // The manager's own identity, by hand, still passes.
    inventory_as(port, Some(&pki.client_identity()), pki.ca_pem())
        .await
        .expect("the manager is admitted");

    let _ = stop.send(());
    server.await.expect("server task").expect("served cleanly");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_its_socket_the_host_agent_serves_health_and_reflection_refuses_bad_fields_and_keeps_driver_texts()
 {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use vpc_manager::orchestration::RouterDriver;
    use vpc_manager::orchestration::model::{NicRole, RouterNicView, RouterView};

    let dir = tempfile::tempdir().expect("temp dir");
    let prefix = new_prefix();
    let driver = NetnsDriver::new(
        &prefix,
        dir.path(),
        vpc_manager::driver::default_agent_path(),
        AgentTransport::Unix,
        Default::default(),
        None,
    )
    .expect("driver");
    let agent = vpc_manager::host::HostAgent::new(driver.clone(), dir.path());
    let socket = dir.path().join("h.sock");
    let listener = vpc_manager::host::server::bind_unix(&socket).expect("bind");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "root only");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(vpc_manager::host::server::serve_unix(
        agent,
        listener,
        async {
            let _ = stopped.await;
        },
    ));

    let channel = vpc_proto::channel::unix(socket.clone())
        .await
        .expect("connects");
    let health = HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: vpc_proto::HOST_AGENT_SERVICE.into(),
        })
        .await
        .expect("health answers")
        .into_inner();
    assert_eq!(
        health.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = ServerReflectionClient::new(channel.clone())
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection answers")
        .into_inner();
    let listed = match answers
        .message()
        .await
        .expect("a reply")
        .and_then(|r| r.message_response)
    {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
        }
        other => panic!("not a service list: {other:?}"),
    };
    assert!(
        listed.iter().any(|s| s == vpc_proto::HOST_AGENT_SERVICE),
        "{listed:?}"
    );

    // A bad field is refused naming it, and nothing ran: no namespace.
    let mut client = pb::host_agent_client::HostAgentClient::new(channel);
    let refused = client
        .start_router(pb::StartRouterRequest {
            router: Some(pb::Router {
                id: "6f1c2a34-0000-4000-8000-000000000001".into(),
                name: "../../etc".into(),
                zone_id: "6f1c2a34-0000-4000-8000-000000000002".into(),
                ..Default::default()
            }),
        })
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().starts_with("router.name: "),
        "{}",
        refused.message()
    );
    let missing_mac = client
        .start_vm(pb::VmRequest {
            vm: Some(pb::Vm {
                id: "6f1c2a34-0000-4000-8000-000000000003".into(),
                instance_name: "i-2-3-VM".into(),
                zone_id: "6f1c2a34-0000-4000-8000-000000000002".into(),
                nics: vec![pb::VmNic {
                    mac_address: "02:00:00:00:00".into(),
                    network_id: "6f1c2a34-0000-4000-8000-000000000004".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        })
        .await
        .expect_err("refused");
    assert_eq!(missing_mac.code(), tonic::Code::InvalidArgument);
    assert!(
        missing_mac
            .message()
            .starts_with("vm.nics[0].mac_address: "),
        "{}",
        missing_mac.message()
    );
    assert!(!Path::new(&format!("/run/netns/{prefix}i-2-3-VM")).exists());

    // A driver failure reads the same through the host agent as from the
    // driver itself.
    let router = RouterView {
        id: uuid::Uuid::from_u128(1),
        name: "r-77-VM".into(),
        zone_id: uuid::Uuid::from_u128(2),
        generation: 1,
        nics: Vec::new(),
    };
    let nic = RouterNicView {
        device_index: 2,
        mac: "02:00:00:00:07:02".into(),
        role: NicRole::Guest,
        network_id: uuid::Uuid::from_u128(3),
        ip: None,
        prefix: 24,
        gateway: None,
        mtu: 0,
        broadcast_uri: Some("vlan://120".into()),
    };
    let direct = driver.plug_nic(&router, &nic).await.expect_err("no router");
    let host = vpc_manager::host::HostDriver::unix(&socket, Default::default());
    let through = host.plug_nic(&router, &nic).await.expect_err("no router");
    assert_eq!(through, direct);
    assert!(direct.0.contains("is not running"), "{direct}");

    let _ = stop.send(());
    server.await.expect("server task").expect("served cleanly");
}
