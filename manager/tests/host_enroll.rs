//! Enrolling a host agent (issue 12, DESIGN §4): a `vpc-manager host-agent`
//! on TCP started with a one-time token waits to be enrolled; `addHost`
//! with the token as `password` gives it a certificate from the cluster CA,
//! after which it serves only with mutual TLS, also after a restart without
//! the token, and runs the routers and VMs placed on it, the routers'
//! agents reached through its relay. A host agent with
//! no certificate of the cluster CA is refused, with or without a wrong
//! token, and nothing is recorded for it.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::Value;
use support::api::{Client, job_ok};
use support::e2e::{E2e, new_prefix};
use support::host_agent::HostAgentProcess;
use support::netns::namespaces;
use vpc_manager::host::enroll::{IDENTITY_DIR, Token};
use vpc_manager::pki::Pki;
use vpc_manager::settings::AgentTransport;

const TOKEN: &str = "enroll-5f0c2a9e41d7b3c8";

async fn add_host(
    admin: &Client,
    zone: &str,
    pod: &str,
    hypervisor: &str,
    url: &str,
    password: Option<&str>,
) -> (u16, Value) {
    let mut params = vec![
        ("zoneid", zone),
        ("podid", pod),
        ("clustername", "enrolled"),
        ("url", url),
        ("hypervisor", hypervisor),
        ("username", "root"),
    ];
    if let Some(p) = password {
        params.push(("password", p));
    }
    admin.call("addHost", &params).await
}

fn error_text(body: &Value) -> String {
    body["addhostresponse"]["errortext"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A TCP proxy in front of a host agent that can lose connections (closes
/// them at once): the network between the manager and a host losing a
/// probe. Stops when dropped.
struct LossyLink {
    port: u16,
    /// Every new connection is lost.
    lose_all: Arc<AtomicBool>,
    /// The next this many new connections are lost.
    lose_next: Arc<AtomicUsize>,
    /// Connections passed on so far.
    passed: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl LossyLink {
    async fn start(to: u16) -> LossyLink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().unwrap().port();
        let lose_all = Arc::new(AtomicBool::new(false));
        let lose_next = Arc::new(AtomicUsize::new(0));
        let passed = Arc::new(AtomicUsize::new(0));
        let (all, next, count) = (lose_all.clone(), lose_next.clone(), passed.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let lost = all.load(Ordering::SeqCst)
                    || next
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                if lost {
                    drop(inbound);
                    continue;
                }
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", to)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        LossyLink {
            port,
            lose_all,
            lose_next,
            passed,
            task,
        }
    }
}

impl Drop for LossyLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrolled_host_agent_whose_probe_was_lost_is_added_again_without_its_token_and_relays_over_one_connection()
 {
    let lab = E2e::start(AgentTransport::Unix).await;
    let admin = lab.admin();
    let agent = HostAgentProcess::start_tcp(new_prefix(), Some(TOKEN));
    agent.wait_listening().await;
    let agent_port: u16 = agent.url().rsplit(':').next().unwrap().parse().unwrap();
    let link = LossyLink::start(agent_port).await;
    let url = format!("https://127.0.0.1:{}", link.port);
    let hosts = admin.ok("listHosts", &[("zoneid", &lab.zone)]).await;
    let default = hosts["host"][0].clone();
    let (pod, hypervisor) = (
        default["podid"].as_str().unwrap().to_string(),
        default["hypervisor"].as_str().unwrap().to_string(),
    );

    // The enrollment completes, then the network loses every probe: addHost
    // fails, the host agent is enrolled (its token spent) and no host row
    // exists.
    let enrolled = agent.dir().join(IDENTITY_DIR).join("host.pem");
    let cut = async {
        while !enrolled.exists() {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        link.lose_all.store(true, Ordering::SeqCst);
    };
    let ((status, body), ()) = tokio::join!(
        add_host(&admin, &lab.zone, &pod, &hypervisor, &url, Some(TOKEN)),
        cut
    );
    assert_eq!(status, 530, "{body}");
    assert!(
        error_text(&body).contains("enrolled, but it does not answer"),
        "{body}"
    );
    let hosts = admin.ok("listHosts", &[("zoneid", &lab.zone)]).await;
    assert_eq!(hosts["count"], 1, "no row for it: {hosts}");
    link.lose_all.store(false, Ordering::SeqCst);

    // addHost again with the same (spent) token, the first probe lost
    // again: the host agent presents the certificate our CA issued it, so
    // it is waited for and added, not enrolled a second time.
    link.lose_next.store(1, Ordering::SeqCst);
    let (status, body) = add_host(&admin, &lab.zone, &pod, &hypervisor, &url, Some(TOKEN)).await;
    assert_eq!(status, 200, "{body}\n{}", agent.log());
    assert_eq!(link.lose_next.load(Ordering::SeqCst), 0, "a probe was lost");
    let added = body["addhostresponse"]["host"][0].clone();
    assert_eq!(added["state"], "Up", "{added}");

    // Without any token, the same: removed, then added again with its
    // first probe lost.
    admin
        .ok(
            "deleteHost",
            &[("id", added["id"].as_str().unwrap()), ("forced", "true")],
        )
        .await;
    link.lose_next.store(1, Ordering::SeqCst);
    let (status, body) = add_host(&admin, &lab.zone, &pod, &hypervisor, &url, None).await;
    assert_eq!(status, 200, "{body}\n{}", agent.log());
    assert_eq!(link.lose_next.load(Ordering::SeqCst), 0, "a probe was lost");
    let host = body["addhostresponse"]["host"][0].clone();
    assert_eq!(host["state"], "Up", "{body}");

    // Its routers' agents are relayed through it over the manager's one
    // channel to it: three routers placed there, their configuration
    // pushed through the relay, open no connection each.
    admin
        .ok(
            "updateHost",
            &[
                ("id", default["id"].as_str().unwrap()),
                ("allocationstate", "Disable"),
            ],
        )
        .await;
    let before = link.passed.load(Ordering::SeqCst);
    for (name, cidr) in [
        ("relayed1", "10.65.0.0/16"),
        ("relayed2", "10.66.0.0/16"),
        ("relayed3", "10.67.0.0/16"),
    ] {
        let vpc = lab.vpc(&admin, name, cidr).await;
        let routers = admin
            .ok("listRouters", &[("vpcid", vpc["id"].as_str().unwrap())])
            .await;
        let router = &routers["router"][0];
        assert_eq!(router["hostid"], host["id"], "{routers}");
        assert_eq!(router["state"], "Running", "{routers}");
    }
    let opened = link.passed.load(Ordering::SeqCst) - before;
    println!(
        "connections opened to the host agent while three relayed routers were started and \
         configured: {opened}"
    );
    assert!(
        opened <= 2,
        "{opened} connections: one channel (and the host monitor's), not one per router"
    );
    lab.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_agent_is_enrolled_with_its_token_and_one_without_a_cluster_certificate_is_refused()
{
    let lab = E2e::start(AgentTransport::Unix).await;
    let admin = lab.admin();
    let mut agent = HostAgentProcess::start_tcp(new_prefix(), Some(TOKEN));
    agent.wait_listening().await;
    let url = agent.url();

    let hosts = admin.ok("listHosts", &[("zoneid", &lab.zone)]).await;
    assert_eq!(hosts["count"], 1, "{hosts}");
    let default = hosts["host"][0].clone();
    let (pod, hypervisor) = (
        default["podid"].as_str().unwrap().to_string(),
        default["hypervisor"].as_str().unwrap().to_string(),
    );

    // Without a token the host agent presents no certificate of the
    // cluster CA: refused with CloudStack's discovery error.
    let (status, body) = add_host(&admin, &lab.zone, &pod, &hypervisor, &url, None).await;
    assert_eq!(status, 530, "{body}");
    let text = error_text(&body);
    assert!(
        text.starts_with(&format!("Could not add host at [{url}]")),
        "{text}"
    );
    // A wrong token: the host agent refuses the proof.
    let (status, body) = add_host(
        &admin,
        &lab.zone,
        &pod,
        &hypervisor,
        &url,
        Some("wrong-token-0123456789"),
    )
    .await;
    assert_eq!(status, 530, "{body}");
    let text = error_text(&body);
    assert!(text.contains("refused the enrollment"), "{text}");
    assert!(
        !text.contains(TOKEN) && !text.contains("wrong-token"),
        "{text}"
    );
    // A token too short to be one is refused before anything is sent.
    let (status, body) = add_host(&admin, &lab.zone, &pod, &hypervisor, &url, Some("short")).await;
    assert_eq!(status, 530, "{body}");
    assert!(error_text(&body).contains("enrollment token"), "{body}");
    // Nothing recorded, nothing stored on the host.
    let hosts = admin.ok("listHosts", &[("zoneid", &lab.zone)]).await;
    assert_eq!(hosts["count"], 1, "{hosts}");
    assert!(!agent.dir().join(IDENTITY_DIR).exists());

    // The right token enrolls it, and it is added Up.
    let (status, body) = add_host(&admin, &lab.zone, &pod, &hypervisor, &url, Some(TOKEN)).await;
    assert_eq!(status, 200, "{body}\n{}", agent.log());
    let added = body["addhostresponse"]["host"][0].clone();
    assert_eq!(added["state"], "Up", "{added}");
    assert_eq!(added["resourcestate"], "Enabled", "{added}");
    let host_id = added["id"].as_str().unwrap().to_string();
    for file in ["host.pem", "host.key", "ca.pem", "manager.pem"] {
        let meta = std::fs::metadata(agent.dir().join(IDENTITY_DIR).join(file)).expect(file);
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{file}");
    }
    // The token is spent: the host agent no longer serves enrollment.
    let pki = Pki::load_or_create(lab.m.data_dir.path()).expect("the cluster CA");
    let again = vpc_manager::host::enroll::enroll(&url, &Token::parse(TOKEN).unwrap(), &pki).await;
    assert!(again.is_err(), "enrolled twice");
    // Adding it a second time is refused as CloudStack refuses a known host.
    let (status, body) = add_host(&admin, &lab.zone, &pod, &hypervisor, &url, Some(TOKEN)).await;
    assert_eq!(status, 530, "{body}");
    assert!(error_text(&body).contains("already added"), "{body}");

    // Restarted without its token, it serves with its certificate and runs
    // what is placed on it.
    agent.restart(None);
    agent.wait_listening().await;
    admin
        .ok(
            "updateHost",
            &[
                ("id", default["id"].as_str().unwrap()),
                ("allocationstate", "Disable"),
            ],
        )
        .await;
    let vpc = lab.vpc(&admin, "enrolled", "10.62.0.0/16").await;
    let vpc_id = vpc["id"].as_str().unwrap().to_string();
    let routers = admin.ok("listRouters", &[("vpcid", &vpc_id)]).await;
    let router = routers["router"][0].clone();
    assert_eq!(router["hostid"], host_id.as_str(), "{routers}");
    assert_eq!(router["state"], "Running", "{routers}");
    let tier = lab
        .tier(&admin, &vpc_id, "t1", "10.62.1.1", None, false)
        .await;
    let vm = job_ok(
        &admin,
        "deployVirtualMachine",
        &[
            ("zoneid", &lab.zone),
            ("serviceofferingid", &lab.service_offering),
            ("templateid", &lab.template),
            ("networkids", tier["id"].as_str().unwrap()),
            ("name", "onenrolled"),
            ("hostid", &host_id),
        ],
    )
    .await["virtualmachine"]
        .clone();
    assert_eq!(vm["state"], "Running", "{vm}");
    let mine = namespaces(&agent.prefix);
    for name in [
        router["name"].as_str().unwrap(),
        vm["instancename"].as_str().unwrap(),
    ] {
        assert!(
            mine.iter().any(|n| n.contains(name)),
            "{name} not among the enrolled host's namespaces {mine:?}"
        );
    }
    // Its routers' agents are reached through the host agent (their Unix
    // sockets are on its host), and the tier and the VM were pushed that
    // way: the router is still Running, not Error.
    let stored = vpc_manager::store::router::get_by_uuid(
        &lab.m.app.db,
        router["id"].as_str().unwrap().parse().unwrap(),
    )
    .await
    .unwrap()
    .expect("the router's row");
    assert_eq!(
        stored.agent_endpoint.as_deref(),
        Some(
            format!(
                "relay://{}/{}",
                url.trim_start_matches("https://"),
                router["name"].as_str().unwrap()
            )
            .as_str()
        )
    );
    let routers = admin.ok("listRouters", &[("vpcid", &vpc_id)]).await;
    assert_eq!(routers["router"][0]["state"], "Running", "{routers}");

    // The host agent never made a CA of its own.
    assert!(!agent.dir().join("pki").exists());
    lab.finish().await;
}
