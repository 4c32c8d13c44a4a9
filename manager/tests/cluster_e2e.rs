//! The cluster end to end, with real routers and packets: three managers on
//! one PostgreSQL database and one host agent (`vpc-manager host-agent`, its
//! own process). The first manager runs in this test process; the others
//! are `vpc-manager serve` processes, so they can be killed with SIGKILL.
//! A whole VPC (ACL lists and items, two tiers, VMs, a port forward, a load
//! balancer, a private gateway with a static route to an on-premises
//! network) is built with its requests spread round-robin over the
//! managers, and packets prove it. Then a manager is killed in the middle of
//! a `createNetworkACL`, a `deployVirtualMachine` and a `createVPC` job (the
//! router's agent or the host agent paused with SIGSTOP so the job cannot
//! end first): each job is run again on a live manager and succeeds within
//! the heartbeat threshold plus 10 s (the ACL item applied, the VM served by
//! its router, the VPC's router running), and the data plane converges.

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::free_port;

use nix::sys::signal::Signal;
use serde_json::Value;
use support::api::{Client, id, job_ok};
use support::e2e::{E2e, blocking, new_prefix, ping_ok, tcp_ok};
use support::postgres::fresh_database;
use vpc_integration::TcpEchoServer;
use vpc_manager::driver::NetnsDriver;
use vpc_manager::driver::netns::OnPrem;
use vpc_manager::settings::AgentTransport;
use vpc_manager::store::secret::SecretBox;

/// `cluster.heartbeat.threshold` in this test (ms): a silent manager is
/// Down after it, and its jobs are taken over.
const THRESHOLD_MS: u64 = 3000;
/// What the issue allows after the threshold for a taken-over job to end.
const GRACE: Duration = Duration::from_secs(10);

/// A child process (host agent or manager), killed by pid when dropped.
struct Proc {
    child: Child,
    what: String,
}

impl Proc {
    fn spawn(what: &str, args: &[String], log: &Path) -> Proc {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_vpc-manager"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{what} starts: {e}"));
        Proc {
            child,
            what: what.to_string(),
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGKILL, by pid, and reap.
    fn kill9(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.wait();
        eprintln!("killed {} (pid {})", self.what, self.child.id());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill9();
        }
    }
}

/// Sends `sig` to a process this test started (or that runs in one of its
/// namespaces), by pid.
fn signal(pid: i32, sig: Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).expect("signal");
}

/// The pid of the process called `comm` in namespace `ns`.
fn process_in(ns: &str, comm: &str) -> i32 {
    let out = Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .expect("ip netns pids");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == comm)
        })
        .unwrap_or_else(|| panic!("no {comm} in {ns}"))
}

/// A `vpc-manager serve` process on the shared database and host agent.
struct Cluster<'a> {
    dir: &'a Path,
    database: &'a str,
    key: &'a Path,
    host_agent: &'a Path,
    prefix: &'a str,
}

impl Cluster<'_> {
    async fn manager(&self, n: u32, admin: &Client) -> (Proc, Client) {
        let port = free_port();
        let data = self.dir.join(format!("m{n}"));
        std::fs::create_dir_all(&data).expect("data dir");
        let args: Vec<String> = [
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            &data.display().to_string(),
            "--database-url",
            self.database,
            "--database-key-file",
            &self.key.display().to_string(),
            "--host-agent-url",
            &format!("unix://{}", self.host_agent.display()),
            "--netns-prefix",
            self.prefix,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let proc = Proc::spawn(
            &format!("manager {n}"),
            &args,
            &self.dir.join(format!("manager-{n}.log")),
        );
        let client = Client {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            key: admin.key.clone(),
            secret: admin.secret.clone(),
        };
        let started = Instant::now();
        loop {
            // Connected first: the helper panics on a refused connection.
            let answered = match tokio::net::TcpStream::connect(client.addr).await {
                Ok(_) => {
                    tokio::time::timeout(Duration::from_secs(2), client.call("listZones", &[]))
                        .await
                        .ok()
                }
                Err(_) => None,
            };
            if matches!(answered, Some((200, _))) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "manager {n} did not answer; see {}",
                self.dir.join(format!("manager-{n}.log")).display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        (proc, client)
    }
}

/// Polls a job on `client` until it ends; the job and how long it took.
async fn final_state(client: &Client, job: &str, within: Duration) -> (Value, Duration) {
    let started = Instant::now();
    loop {
        let (status, body) = client.call("queryAsyncJobResult", &[("jobid", job)]).await;
        if status == 200 {
            let j = body["queryasyncjobresultresponse"].clone();
            if j["jobstatus"] != 0 {
                return (j, started.elapsed());
            }
        }
        assert!(
            started.elapsed() < within,
            "job {job} not final within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Submits `command` on `client` and returns its job id (the call answers
/// before the job runs).
async fn submit(client: &Client, command: &str, params: &[(&str, &str)]) -> String {
    let started = client.ok(command, params).await;
    started["jobid"]
        .as_str()
        .unwrap_or_else(|| panic!("{command}: no jobid in {started}"))
        .to_string()
}

/// Until `check` holds (packets after a change), at most `within`.
async fn eventually<F, Fut>(what: &str, within: Duration, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < within, "never: {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn listen(ns: &vpc_integration::Netns, port: u16) -> TcpEchoServer {
    TcpEchoServer::start(ns, SocketAddr::from(([0, 0, 0, 0], port))).expect("listener")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_managers_and_a_host_agent_build_a_vpc_and_survive_kill_9() {
    vpc_integration::require_root();
    let prefix = new_prefix();
    let dir = tempfile::tempdir().expect("dir");
    // dnsmasq in the routers runs as nobody and must reach its files.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .expect("chmod");
    let host_data: PathBuf = dir.path().join("host");
    let socket = dir.path().join("host.sock");
    let host_agent = Proc::spawn(
        "host agent",
        &[
            "host-agent".into(),
            "--listen".into(),
            format!("unix:{}", socket.display()),
            "--data-dir".into(),
            host_data.display().to_string(),
            "--netns-prefix".into(),
            prefix.clone(),
        ],
        &dir.path().join("host-agent.log"),
    );
    let started = Instant::now();
    while !socket.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the host agent made no socket"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let database = fresh_database().await;
    let key = dir.path().join("database.key");
    std::fs::write(&key, SecretBox::generate_key_text()).expect("key");

    // Manager 1, in this process; it reads names and leases from the host
    // agent's directory, and bootstraps the zone.
    let reader = NetnsDriver::new(
        &prefix,
        &host_data,
        vpc_manager::driver::default_agent_path(),
        AgentTransport::Unix,
        Default::default(),
        None,
    )
    .expect("a reader of the host agent's files");
    let (url, db, k) = (
        format!("unix://{}", socket.display()),
        database.clone(),
        key.clone(),
    );
    let e = E2e::start_with(
        prefix.clone(),
        AgentTransport::Unix,
        move |s| {
            s.host_agent_url = Some(url);
            s.database_url = Some(db);
            s.database_key_file = Some(k);
        },
        Some(reader),
    )
    .await;
    let m1 = e.admin();
    for (name, value) in [
        ("cluster.heartbeat.interval", "300".to_string()),
        ("cluster.heartbeat.threshold", THRESHOLD_MS.to_string()),
    ] {
        m1.ok("updateConfiguration", &[("name", name), ("value", &value)])
            .await;
    }
    let cluster = Cluster {
        dir: dir.path(),
        database: &database,
        key: &key,
        host_agent: &socket,
        prefix: &prefix,
    };
    let (mut p2, m2) = cluster.manager(2, &m1).await;
    let (mut p3, m3) = cluster.manager(3, &m1).await;
    let servers = m1.ok("listManagementServers", &[]).await;
    let up = servers["managementserver"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "Up")
        .count();
    assert_eq!(up, 3, "{servers}");
    let c = [m1.clone(), m2.clone(), m3.clone()];

    // A whole VPC, its requests round-robin over the three managers.
    let vpc = job_ok(
        &c[1],
        "createVPC",
        &[
            ("name", "rr"),
            ("displaytext", "rr"),
            ("cidr", "10.90.0.0/16"),
            ("zoneid", &e.zone),
            ("vpcofferingid", &e.vpc_offering),
        ],
    )
    .await["vpc"]
        .clone();
    let vpc_id = vpc["id"].as_str().unwrap().to_string();
    let mut acls = Vec::new();
    for (i, name) in ["web", "db"].iter().enumerate() {
        let done = job_ok(
            &c[(i + 2) % 3],
            "createNetworkACLList",
            &[("name", name), ("description", name), ("vpcid", &vpc_id)],
        )
        .await;
        acls.push(id(&done, "networkacllist"));
    }
    job_ok(
        &c[1],
        "createNetworkACL",
        &[
            ("aclid", &acls[0]),
            ("protocol", "tcp"),
            ("startport", "80"),
            ("endport", "80"),
            ("cidrlist", "0.0.0.0/0"),
            ("action", "Allow"),
            ("traffictype", "Ingress"),
        ],
    )
    .await;
    job_ok(
        &c[2],
        "createNetworkACL",
        &[
            ("aclid", &acls[1]),
            ("protocol", "icmp"),
            ("icmptype", "-1"),
            ("icmpcode", "-1"),
            ("cidrlist", "10.90.1.0/24"),
            ("action", "Allow"),
            ("traffictype", "Ingress"),
        ],
    )
    .await;
    let web = e
        .tier(&c[0], &vpc_id, "web", "10.90.1.1", Some(&acls[0]), true)
        .await;
    let db = e
        .tier(&c[1], &vpc_id, "db", "10.90.2.1", Some(&acls[1]), false)
        .await;
    let (web_id, db_id) = (
        web["id"].as_str().unwrap().to_string(),
        db["id"].as_str().unwrap().to_string(),
    );
    let web1 = e.vm(&c[2], &web_id, "web1").await;
    let db1 = e.vm(&c[0], &db_id, "db1").await;
    let (web1_ip, db1_ip) = (e.lease(&web1).await, e.lease(&db1).await);
    let (web1_ns, db1_ns) = (e.vm_ns(&web1), e.vm_ns(&db1));
    let ip = job_ok(&c[1], "associateIpAddress", &[("vpcid", &vpc_id)]).await;
    let public: Ipv4Addr = ip["ipaddress"]["ipaddress"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    job_ok(
        &c[2],
        "createPortForwardingRule",
        &[
            ("ipaddressid", ip["ipaddress"]["id"].as_str().unwrap()),
            ("virtualmachineid", web1["id"].as_str().unwrap()),
            ("networkid", &web_id),
            ("protocol", "tcp"),
            ("publicport", "8080"),
            ("privateport", "80"),
        ],
    )
    .await;
    let (a, b) = (web1_ns.clone(), db1_ns.clone());
    let _servers = blocking(move || vec![listen(&a, 80), listen(&b, 5432)]).await;
    let web80 = SocketAddr::from((web1_ip, 80));
    let db5432 = SocketAddr::from((db1_ip, 5432));
    assert!(tcp_ok(&db1_ns, web80).await, "web allows tcp 80");
    assert!(ping_ok(&web1_ns, db1_ip).await, "db allows ICMP from web");
    assert!(!ping_ok(&db1_ns, web1_ip).await, "web does not allow ICMP");
    assert!(!tcp_ok(&web1_ns, db5432).await, "db denies tcp 5432");
    let upstream = e.upstream();
    let forwarded = SocketAddr::from((public, 8080));
    assert!(
        tcp_ok(&upstream, forwarded).await,
        "the port forward through the public address"
    );

    // A load balancer on a second public address, on manager 3 and 1.
    let lb_ip = job_ok(&c[2], "associateIpAddress", &[("vpcid", &vpc_id)]).await;
    let lb_public: Ipv4Addr = lb_ip["ipaddress"]["ipaddress"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let lb = job_ok(
        &c[0],
        "createLoadBalancerRule",
        &[
            ("publicipid", lb_ip["ipaddress"]["id"].as_str().unwrap()),
            ("name", "web"),
            ("algorithm", "roundrobin"),
            ("publicport", "80"),
            ("privateport", "80"),
            ("networkid", &web_id),
        ],
    )
    .await;
    job_ok(
        &c[1],
        "assignToLoadBalancerRule",
        &[
            ("id", &id(&lb, "loadbalancer")),
            ("virtualmachineids", web1["id"].as_str().unwrap()),
        ],
    )
    .await;
    assert!(
        tcp_ok(&upstream, SocketAddr::from((lb_public, 80))).await,
        "the load balancer"
    );

    // A private gateway to an on-premises network, with a static route,
    // on managers 2 and 3.
    let zone: uuid::Uuid = e.zone.parse().unwrap();
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
    let allow = m1
        .ok("listNetworkACLLists", &[("name", "default_allow")])
        .await["networkacllist"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let gateway = job_ok(
        &c[1],
        "createPrivateGateway",
        &[
            ("vpcid", &vpc_id),
            ("vlan", "3001"),
            ("ipaddress", "172.16.1.2"),
            ("gateway", "172.16.1.1"),
            ("netmask", "255.255.255.0"),
            ("aclid", &allow),
        ],
    )
    .await;
    job_ok(
        &c[2],
        "createStaticRoute",
        &[
            ("cidr", "192.168.50.0/24"),
            ("gatewayid", &id(&gateway, "privategateway")),
        ],
    )
    .await;
    let onprem_ns = vpc_integration::Netns::existing(&onprem);
    let _onprem_server = blocking(move || listen(&onprem_ns, 9000)).await;
    assert!(
        tcp_ok(&web1_ns, SocketAddr::from(([192, 168, 50, 1], 9000))).await,
        "web1 reaches the on-premises network through the private gateway"
    );

    // kill -9 of manager 3 in the middle of a createNetworkACL: the
    // router's agent is paused (SIGSTOP), so the job cannot end before the
    // kill; it goes on again (SIGCONT) once the manager is dead.
    let bound = Duration::from_millis(THRESHOLD_MS) + GRACE;
    let routers = m1
        .ok("listRouters", &[("vpcid", &vpc_id), ("listall", "true")])
        .await;
    let router = routers["router"][0]["name"].as_str().unwrap().to_string();
    let agent = process_in(&e.driver.router_ns(&router), "vr-agent");
    signal(agent, Signal::SIGSTOP);
    let job = submit(
        &m3,
        "createNetworkACL",
        &[
            ("aclid", &acls[1]),
            ("protocol", "tcp"),
            ("startport", "5432"),
            ("endport", "5432"),
            ("cidrlist", "10.90.1.0/24"),
            ("action", "Allow"),
            ("traffictype", "Ingress"),
        ],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    p3.kill9();
    signal(agent, Signal::SIGCONT);
    let (done, took) = final_state(&m1, &job, bound + Duration::from_secs(5)).await;
    eprintln!(
        "createNetworkACL after kill -9: status {} in {took:?}",
        done["jobstatus"]
    );
    assert!(took <= bound, "final in {took:?}, more than {bound:?}");
    assert_eq!(done["jobstatus"], 1, "run again on a live manager: {done}");
    eventually("tcp 5432 to db once the item is applied", bound, || {
        tcp_ok(&web1_ns, db5432)
    })
    .await;

    // kill -9 of manager 2 in the middle of a deployVirtualMachine (its
    // router paused again): run again on a live manager, the VM takes its
    // lease from the router and reaches the db tier through it.
    signal(agent, Signal::SIGSTOP);
    let job = submit(
        &m2,
        "deployVirtualMachine",
        &[
            ("zoneid", &e.zone),
            ("serviceofferingid", &e.service_offering),
            ("templateid", &e.template),
            ("networkids", &web_id),
            ("name", "web2"),
        ],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    p2.kill9();
    signal(agent, Signal::SIGCONT);
    let (done, took) = final_state(&m1, &job, bound + Duration::from_secs(5)).await;
    eprintln!(
        "deployVirtualMachine after kill -9: status {} in {took:?}: {}",
        done["jobstatus"], done["jobresult"]
    );
    assert!(took <= bound, "final in {took:?}, more than {bound:?}");
    assert_eq!(done["jobstatus"], 1, "run again on a live manager: {done}");
    let web2 = done["jobresult"]["virtualmachine"].clone();
    assert_eq!(web2["state"], "Running", "{web2}");
    let listed = m1
        .ok(
            "listVirtualMachines",
            &[("name", "web2"), ("listall", "true")],
        )
        .await;
    assert_eq!(listed["count"], 1, "one VM: {listed}");
    let web2_ns = e.vm_ns(&web2);
    e.lease(&web2).await;
    eventually("web2 reaches db through the router", bound, || {
        ping_ok(&web2_ns, db1_ip)
    })
    .await;

    // A fourth manager, killed in the middle of a createVPC (the host
    // agent paused, so the router cannot start before the kill): run again
    // on a live manager, the VPC's router starts and serves a VM.
    let (mut p4, m4) = cluster.manager(4, &m1).await;
    signal(host_agent.pid(), Signal::SIGSTOP);
    let job = submit(
        &m4,
        "createVPC",
        &[
            ("name", "killed"),
            ("displaytext", "killed"),
            ("cidr", "10.91.0.0/16"),
            ("zoneid", &e.zone),
            ("vpcofferingid", &e.vpc_offering),
        ],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    p4.kill9();
    signal(host_agent.pid(), Signal::SIGCONT);
    let (done, took) = final_state(&m1, &job, bound + Duration::from_secs(5)).await;
    eprintln!(
        "createVPC after kill -9: status {} in {took:?}",
        done["jobstatus"]
    );
    assert!(took <= bound, "final in {took:?}, more than {bound:?}");
    assert_eq!(done["jobstatus"], 1, "run again on a live manager: {done}");
    let vpcs = m1.ok("listVPCs", &[("name", "killed")]).await;
    assert_eq!(vpcs["count"], 1, "{vpcs}");
    let killed_id = vpcs["vpc"][0]["id"].as_str().unwrap().to_string();
    let routers = m1
        .ok("listRouters", &[("vpcid", &killed_id), ("listall", "true")])
        .await;
    assert_eq!(routers["count"], 1, "{routers}");
    assert_eq!(routers["router"][0]["state"], "Running", "{routers}");
    let tier = e
        .tier(&m1, &killed_id, "after", "10.91.1.1", None, false)
        .await;
    let after = e.vm(&m1, tier["id"].as_str().unwrap(), "after1").await;
    e.lease(&after).await;
    // The first VPC still forwards, supervised by the one manager left.
    assert!(tcp_ok(&upstream, forwarded).await);
    assert!(tcp_ok(&web1_ns, db5432).await);
    e.finish().await;
}
