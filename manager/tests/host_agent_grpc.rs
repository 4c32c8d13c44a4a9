//! The host agent's gRPC surface, without routers: on its Unix socket it
//! answers health and reflection, refuses bad fields naming them before
//! anything runs and hands driver failures back with the driver's text; on
//! TCP with mutual TLS it admits only the manager's own client certificate.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};
use support::free_port;

use support::e2e::new_prefix;
use vpc_manager::driver::NetnsDriver;
use vpc_manager::settings::AgentTransport;
use vpc_proto::host::v1 as pb;

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
            tls: None,
            router: Some(pb::Router {
                id: "6f1c2a34-0000-4000-8000-000000000001".into(),
                name: "../../etc".into(),
                zone_id: "6f1c2a34-0000-4000-8000-000000000002".into(),
                ..Default::default()
            }),
            standby: false,
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
        host: None,
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
    let pki = std::sync::Arc::new(Pki::load_or_create(dir.path()).expect("the CA"));
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
        vpc_manager::host::server::serve_tcp(
            agent,
            addr,
            vpc_manager::host::tls::server_tls(&served_pki).unwrap(),
            async {
                let _ = stopped.await;
            },
        )
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_agent_binary_serves_its_socket_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("h.sock");
    let prefix = new_prefix();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vpc-manager"))
        .args(["host-agent", "--listen"])
        .arg(format!("unix:{}", socket.display()))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--netns-prefix", &prefix])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("vpc-manager host-agent starts");
    let started = Instant::now();
    let inventory = loop {
        let asked = async {
            let channel = vpc_proto::channel::unix(socket.clone()).await.ok()?;
            pb::host_agent_client::HostAgentClient::new(channel)
                .inventory(pb::InventoryRequest {})
                .await
                .ok()
        };
        if let Some(answer) = asked.await {
            break answer.into_inner();
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "host-agent exited early"
        );
        assert!(started.elapsed() < Duration::from_secs(20), "no answer");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(inventory.prefix, prefix);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("host-agent did not stop on SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(!Path::new(&socket).exists(), "its socket is removed");
}
