//! Robustness: the default driver, a manager killed mid-job, a database outage,
//! failed pushes, query counts.
//!
//! The tests that need routers to run start the real `vpc-manager` binary on
//! the netns driver with a namespace prefix of their own ([`Binary`]), so a
//! SIGKILL hits a real process; a guard removes the prefix's namespaces and
//! processes on drop, also when a test panics.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use vpc_manager::driver::NetnsDriver;
use vpc_manager::orchestration::agent::{AgentCommand, AgentError};
use vpc_manager::provision::monitor;
use vpc_manager::settings::AgentTransport;
use vpc_manager::store::{Page, router};

use crate::support::api::{Client, TestManager, http, job_ok, on_both_backends, run_job};
use crate::support::e2e::purge_prefix;
use crate::support::netns::{agent_path, namespaces};
use crate::support::postgres::Cluster;
use crate::support::vpc::{SMALL, TEMPLATE, create_tier, create_vpc, vm_params, zone_env};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The `vpc-manager serve` binary with a settings file of its own, its
/// stderr in a file, and a namespace prefix of its own.
struct Binary {
    dir: tempfile::TempDir,
    port: u16,
    prefix: String,
    child: Option<Child>,
}

impl Binary {
    /// A manager whose settings are only its addresses and `extra` (TOML
    /// lines): whatever else it does is the stock default.
    fn new(extra: &str) -> Binary {
        vpc_integration::require_root();
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("k{}{n}-", std::process::id() % 100_000);
        purge_prefix(&prefix);
        let dir = tempfile::tempdir().expect("temp dir");
        // dnsmasq in the routers runs as nobody and must reach its files.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\nnetns_prefix = \"{prefix}\"\n\
             agent_path = \"{}\"\nbootstrap_zone = true\n{extra}",
            dir.path().join("data").display(),
            agent_path().display(),
        );
        std::fs::write(dir.path().join("manager.toml"), config).unwrap();
        Binary {
            dir,
            port,
            prefix,
            child: None,
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts it (again) and waits for `/healthz`; returns the admin client.
    async fn start(&mut self) -> Client {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("manager.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_vpc-manager"))
            .args(["serve", "--config"])
            .arg(self.dir.path().join("manager.toml"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start vpc-manager");
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        let started = Instant::now();
        loop {
            let up = tokio::time::timeout(
                Duration::from_millis(200),
                tokio::net::TcpStream::connect(addr),
            )
            .await;
            if let Ok(Ok(_)) = up
                && http(addr, "GET", "/healthz", "", &[]).await.status == 200
            {
                break;
            }
            let child = self.child.as_mut().unwrap();
            assert!(
                child.try_wait().unwrap().is_none(),
                "vpc-manager exited early:\n{}",
                self.log()
            );
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "vpc-manager did not come up:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let ini = std::fs::read_to_string(self.data_dir().join("cloudstack.ini")).unwrap();
        let value = |k: &str| {
            ini.lines()
                .find_map(|l| l.strip_prefix(&format!("{k} = ")))
                .unwrap()
                .to_string()
        };
        Client {
            addr,
            key: value("key"),
            secret: value("secret"),
        }
    }

    /// What it logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("manager.log")).unwrap_or_default()
    }

    /// SIGKILL, as a crash or the OOM killer would.
    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The names the driver gives this manager's namespaces (no side
    /// effect: nothing is started).
    fn names(&self) -> NetnsDriver {
        NetnsDriver::new(
            &self.prefix,
            self.data_dir(),
            agent_path(),
            AgentTransport::Unix,
            Arc::default(),
            None,
        )
        .unwrap()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        self.kill9();
        purge_prefix(&self.prefix);
    }
}

/// The ids a VPC test needs from a bootstrapped manager.
struct Zone {
    zone: String,
    vpc_offering: String,
    tier_offering: String,
}

async fn bootstrapped(admin: &Client) -> Zone {
    let first = |v: &Value, key: &str| v[key][0]["id"].as_str().unwrap().to_string();
    Zone {
        zone: first(&admin.ok("listZones", &[]).await, "zone"),
        vpc_offering: first(
            &admin.ok("listVPCOfferings", &[("isdefault", "true")]).await,
            "vpcoffering",
        ),
        tier_offering: first(
            &admin
                .ok("listNetworkOfferings", &[("forvpc", "true")])
                .await,
            "networkoffering",
        ),
    }
}

fn vpc_params<'a>(z: &'a Zone, name: &'a str, cidr: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("name", name),
        ("cidr", cidr),
        ("zoneid", &z.zone),
        ("vpcofferingid", &z.vpc_offering),
    ]
}

async fn routers(admin: &Client) -> Vec<Value> {
    admin.ok("listRouters", &[("listall", "true")]).await["router"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Item 1: `vpc-manager serve` with nothing said about the driver runs
/// routers as namespaces, and its routers say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stock_binary_runs_routers_for_real() {
    let mut m = Binary::new("");
    let admin = m.start().await;
    let z = bootstrapped(&admin).await;
    let vpc = job_ok(&admin, "createVPC", &vpc_params(&z, "real", "10.40.0.0/16")).await;
    let vpc_id = vpc["vpc"]["id"].as_str().unwrap();
    let listed = admin.ok("listRouters", &[("vpcid", vpc_id)]).await;
    let r = &listed["router"][0];
    assert_eq!(r["state"], "Running", "{r}");
    assert_eq!(r["hypervisor"], "netns", "{r}");
    let ns = m.names().router_ns(r["name"].as_str().unwrap());
    assert!(
        namespaces(&m.prefix).contains(&ns),
        "no namespace {ns} runs the router: {:?}",
        namespaces(&m.prefix)
    );
    assert!(!m.log().contains("nothing runs"), "{}", m.log());
}

/// Item 1: the recording driver only by name, with a warning at start and
/// `hypervisor` Simulator on every router, and nothing running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulation_must_be_asked_for_and_says_so() {
    let mut m = Binary::new("driver = \"simulated\"\n");
    let admin = m.start().await;
    assert!(
        m.log().contains("nothing runs"),
        "no warning at start:\n{}",
        m.log()
    );
    let z = bootstrapped(&admin).await;
    job_ok(&admin, "createVPC", &vpc_params(&z, "fake", "10.41.0.0/16")).await;
    let all = routers(&admin).await;
    assert_eq!(all.len(), 1);
    for r in &all {
        assert_eq!(r["hypervisor"], "Simulator", "{r}");
    }
    assert_eq!(namespaces(&m.prefix), Vec::<String>::new());
}

/// GetState straight from a router's agent over its Unix socket; false
/// while it does not answer.
async fn agent_answers(names: &NetnsDriver, router: &str) -> bool {
    let socket = names.router_dir(router).join("agent.sock");
    let ask = async {
        let channel = vpc_proto::channel::unix(socket).await.ok()?;
        vpc_proto::v1::virtual_router_client::VirtualRouterClient::new(channel)
            .get_state(vpc_proto::v1::GetStateRequest {})
            .await
            .ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), ask).await,
        Ok(Some(_))
    )
}

/// Why the manager's world is not yet what its database says, or None:
/// every job ended; every Enabled VPC has a Running router whose agent
/// answers; the namespaces that run are exactly the Running routers and
/// VMs (and the zone's own two).
async fn disagreement(m: &Binary, admin: &Client, jobs: &[String]) -> Option<String> {
    for j in jobs {
        let job = admin.ok("queryAsyncJobResult", &[("jobid", j)]).await;
        if job["jobstatus"] == 0 {
            return Some(format!("job {j} still runs"));
        }
    }
    let names = m.names();
    let vpcs = admin.ok("listVPCs", &[("listall", "true")]).await["vpc"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let routers = routers(admin).await;
    for v in &vpcs {
        if v["state"] != "Enabled" {
            continue;
        }
        let Some(r) = routers.iter().find(|r| r["vpcid"] == v["id"]) else {
            return Some(format!("VPC {} is Enabled without a router", v["name"]));
        };
        if r["state"] != "Running" {
            return Some(format!(
                "VPC {}: router {} is {}",
                v["name"], r["name"], r["state"]
            ));
        }
        if !agent_answers(&names, r["name"].as_str().unwrap()).await {
            return Some(format!(
                "VPC {}: router {} does not answer",
                v["name"], r["name"]
            ));
        }
    }
    let vms = admin
        .ok("listVirtualMachines", &[("listall", "true")])
        .await["virtualmachine"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let zone: uuid::Uuid = admin.ok("listZones", &[]).await["zone"][0]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut expected: BTreeSet<String> = [names.zone_ns(&zone), names.upstream_ns(&zone)].into();
    for r in routers.iter().filter(|r| r["state"] == "Running") {
        expected.insert(names.router_ns(r["name"].as_str().unwrap()));
    }
    for v in vms.iter().filter(|v| v["state"] == "Running") {
        expected.insert(names.vm_ns(v["instancename"].as_str().unwrap()));
    }
    let running: BTreeSet<String> = namespaces(&m.prefix).into_iter().collect();
    (running != expected).then(|| {
        format!(
            "namespaces that run but should not: {:?}; that should run but do not: {:?}",
            running.difference(&expected).collect::<Vec<_>>(),
            expected.difference(&running).collect::<Vec<_>>()
        )
    })
}

/// Item 2: SIGKILL during parallel createVPC and deployVirtualMachine, then
/// a restart: within a bounded wait every VPC works (router Running and
/// answering) or is gone/Inactive with nothing running for it, and what
/// runs is exactly what the database says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_killed_mid_create_converges_to_what_its_database_says() {
    let mut m = Binary::new("");
    let admin = m.start().await;
    admin
        .ok(
            "updateConfiguration",
            &[("name", "router.check.interval"), ("value", "1")],
        )
        .await;
    let z = bootstrapped(&admin).await;
    let base = job_ok(&admin, "createVPC", &vpc_params(&z, "base", "10.50.0.0/16")).await;
    let base_id = base["vpc"]["id"].as_str().unwrap().to_string();
    let tier = admin
        .ok(
            "createNetwork",
            &[
                ("name", "t1"),
                ("displaytext", "t1"),
                ("zoneid", &z.zone),
                ("vpcid", &base_id),
                ("networkofferingid", &z.tier_offering),
                ("gateway", "10.50.1.1"),
                ("netmask", "255.255.255.0"),
            ],
        )
        .await["network"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let mut jobs = Vec::new();
    for i in 0..2 {
        let name = format!("vm{i}");
        let started = admin
            .ok(
                "deployVirtualMachine",
                &[
                    ("zoneid", &z.zone),
                    ("serviceofferingid", SMALL),
                    ("templateid", TEMPLATE),
                    ("networkids", &tier),
                    ("name", &name),
                ],
            )
            .await;
        jobs.push(started["jobid"].as_str().unwrap().to_string());
    }
    for i in 0..4 {
        let (name, cidr) = (format!("c{i}"), format!("10.6{i}.0.0/16"));
        let started = admin.ok("createVPC", &vpc_params(&z, &name, &cidr)).await;
        jobs.push(started["jobid"].as_str().unwrap().to_string());
    }
    // Killed while a router is being started: the worst moment.
    let waited = Instant::now();
    let mut caught = false;
    while waited.elapsed() < Duration::from_secs(20) {
        if routers(&admin)
            .await
            .iter()
            .any(|r| r["state"] == "Starting")
        {
            caught = true;
            break;
        }
    }
    m.kill9();
    eprintln!("killed with a router Starting: {caught}");

    let admin = m.start().await;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let why = disagreement(&m, &admin, &jobs).await;
        let Some(why) = why else { break };
        assert!(
            Instant::now() < deadline,
            "90 s after the restart: {why}\n{}",
            m.log()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Item 3: with PostgreSQL stopped a request fails fast with 530 and
/// `/healthz` answers 503 with the reason within a second; once it is
/// back, both work again without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_fails_fast_and_heals_by_itself() {
    let cluster = Arc::new(
        tokio::task::spawn_blocking(Cluster::start_tcp)
            .await
            .unwrap(),
    );
    let url = cluster.create_database().await;
    let m = TestManager::start(Some(url)).await;
    let admin = m.admin();
    admin.ok("listZones", &[]).await;

    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.stop_server())
        .await
        .unwrap();
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(20), admin.call("listZones", &[])).await;
    let took = started.elapsed();
    let (status, body) = answer.expect("a request during the outage got no answer in 20 s");
    assert_eq!(status, 530, "{body}");
    assert_eq!(body["listzonesresponse"]["errorcode"], 530, "{body}");
    assert!(took < Duration::from_secs(5), "the 530 took {took:?}");
    eprintln!("during the outage: listZones answered 530 in {took:?}");

    let started = Instant::now();
    let health = tokio::time::timeout(
        Duration::from_secs(5),
        http(m.addr, "GET", "/healthz", "", &[]),
    )
    .await
    .expect("/healthz got no answer in 5 s");
    let took = started.elapsed();
    assert_eq!(health.status, 503, "{}", health.body);
    assert!(health.body.starts_with("database: "), "{}", health.body);
    assert!(took < Duration::from_secs(1), "/healthz took {took:?}");
    eprintln!(
        "during the outage: /healthz answered 503 in {took:?}: {}",
        health.body.trim()
    );

    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.start_server())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = admin.call("listZones", &[]).await;
        let health = http(m.addr, "GET", "/healthz", "", &[]).await.status;
        if (status, health) == (200, 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "20 s after PostgreSQL came back: listZones {status}, /healthz {health}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    m.stop().await;
}

on_both_backends!(
    a_refused_push_leaves_the_router_resynced_to_the_database,
    |m| {
        // Item 4: the agent takes the first command of a change (PlugNic of
        // a tier's first VM) and refuses the next; the change is reverted.
        let admin = m.admin();
        let env = zone_env(&admin, "resync").await;
        let vpc = create_vpc(&admin, &env, "v", "10.70.0.0/16").await;
        let vpc_id = vpc["id"].as_str().unwrap().to_string();
        let tier = create_tier(&admin, &env, &vpc_id, "t", "10.70.1.1", "255.255.255.0").await;
        let tier_id = tier["id"].as_str().unwrap().to_string();
        m.agent.fail(
            "SetupGuestNetwork",
            AgentError::Failed("dnsmasq would not start".into()),
        );
        let done = run_job(
            &admin,
            "deployVirtualMachine",
            &vm_params(&env, &tier_id, "vm1"),
        )
        .await;
        assert_eq!(done["jobstatus"], 2, "{done}");
        m.agent.unfail("SetupGuestNetwork");
        let failed = m
            .agent
            .commands()
            .iter()
            .filter(|c| c.rpc() == "PlugNic")
            .filter_map(AgentCommand::generation)
            .max()
            .expect("the tier's NIC reached the agent");
        let r = router::list(&m.app.db, &router::RouterFilter::default(), Page::ALL)
            .await
            .unwrap()
            .items
            .remove(0);
        assert!(
            r.config_generation > i64::try_from(failed).unwrap(),
            "after the revert the database is still at generation {} (the failed push's {failed})",
            r.config_generation
        );

        m.agent.clear();
        let report = monitor::resync_once(&m.app, &mut monitor::RouterHealth::new())
            .await
            .unwrap();
        assert_eq!(report.resynced, vec![r.name.clone()], "{report:?}");
        let applied = m
            .agent
            .commands()
            .into_iter()
            .find_map(|c| match c {
                AgentCommand::ApplyConfig(a) => Some(a),
                _ => None,
            })
            .expect("the router got its whole state");
        assert!(applied.generation > failed);
        let config = applied.config.unwrap();
        assert!(
            config.guest_networks.is_empty(),
            "the reverted tier is still on the router: {:?}",
            config.guest_networks
        );
        let r = router::get_by_id(&m.app.db, r.id).await.unwrap().unwrap();
        assert_eq!(r.applied_generation, r.config_generation);
        assert_eq!(m.agent.applied_by(&r.name), applied.generation);
    }
);

/// Runs `command`, and its job to the end when it is asynchronous; returns
/// the job result, or the answer of a synchronous command.
async fn done(admin: &Client, command: &str, params: &[(&str, &str)]) -> Value {
    let answer = admin.ok(command, params).await;
    match answer["jobid"].as_str() {
        Some(job) => {
            let finished = admin.wait_job(job).await;
            assert_eq!(finished["jobstatus"], 1, "{command}: {finished}");
            finished["jobresult"].clone()
        }
        None => answer,
    }
}

/// How many statements `work` sends to the database, read from the server's
/// log (the database logs every statement; markers bracket the work).
async fn statements<T>(
    cluster: &Cluster,
    db: &vpc_manager::store::Db,
    work: impl std::future::Future<Output = T>,
) -> (usize, T) {
    let marker = uuid::Uuid::new_v4().simple().to_string();
    let mark = |what: &str| format!("SELECT 'count-{what}-{marker}'");
    let vpc_manager::store::Db::Postgres(pool) = db else {
        panic!("statements are counted on PostgreSQL")
    };
    sqlx::query(sqlx::AssertSqlSafe(mark("start")))
        .execute(pool)
        .await
        .unwrap();
    let out = work.await;
    sqlx::query(sqlx::AssertSqlSafe(mark("end")))
        .execute(pool)
        .await
        .unwrap();
    let (start, end) = (
        format!("count-start-{marker}"),
        format!("count-end-{marker}"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(cluster.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let from = lines.iter().position(|l| l.contains(&start));
        let to = lines.iter().position(|l| l.contains(&end));
        if let (Some(from), Some(to)) = (from, to) {
            let n = lines[from + 1..to]
                .iter()
                .filter(|l| l.contains("LOG:  execute") || l.contains("LOG:  statement:"))
                .count();
            return (n, out);
        }
        assert!(
            Instant::now() < deadline,
            "the markers never reached the log"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Item 5: a router with 10 tiers, 50 public IPs, 10 ACL lists of 100 items
/// and 20 LB members; statements to load its whole state, and for one
/// health-check round when nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_routers_state_loads_in_a_bounded_number_of_statements() {
    let cluster = tokio::task::spawn_blocking(Cluster::shared).await.unwrap();
    let url = cluster.create_database().await;
    let m = TestManager::start(Some(url.clone())).await;
    let admin = m.admin();
    let env = crate::support::vpc::zone_env_range(
        &admin,
        "q",
        "203.0.113.1",
        "203.0.113.10",
        "203.0.113.100",
    )
    .await;
    admin
        .ok(
            "updateConfiguration",
            &[("name", "vpc.max.networks"), ("value", "10")],
        )
        .await;
    let vpc = create_vpc(&admin, &env, "big", "10.80.0.0/16").await;
    let vpc_id = vpc["id"].as_str().unwrap().to_string();
    let mut lists = Vec::new();
    for l in 0..10 {
        let name = format!("list{l}");
        let list = done(
            &admin,
            "createNetworkACLList",
            &[("name", &name), ("description", &name), ("vpcid", &vpc_id)],
        )
        .await;
        let list_id = list["networkacllist"]["id"]
            .as_str()
            .or(list["id"].as_str())
            .unwrap()
            .to_string();
        for i in 0..100 {
            let (number, port) = ((i + 1).to_string(), (1000 + i).to_string());
            let action = if i % 2 == 0 { "allow" } else { "deny" };
            done(
                &admin,
                "createNetworkACL",
                &[
                    ("aclid", &list_id),
                    ("number", &number),
                    ("protocol", "tcp"),
                    ("startport", &port),
                    ("endport", &port),
                    ("cidrlist", "10.0.0.0/8"),
                    ("action", action),
                    ("traffictype", "ingress"),
                ],
            )
            .await;
        }
        lists.push(list_id);
    }
    let mut tiers = Vec::new();
    for (t, list) in lists.iter().enumerate() {
        let (name, gateway) = (format!("t{t}"), format!("10.80.{}.1", t + 1));
        let offering = if t == 0 {
            &env.tier_offering_lb
        } else {
            &env.tier_offering
        };
        let tier = admin
            .ok(
                "createNetwork",
                &[
                    ("name", &name),
                    ("displaytext", &name),
                    ("zoneid", &env.zone),
                    ("vpcid", &vpc_id),
                    ("networkofferingid", offering),
                    ("gateway", &gateway),
                    ("netmask", "255.255.255.0"),
                    ("aclid", list),
                ],
            )
            .await;
        tiers.push(tier["network"]["id"].as_str().unwrap().to_string());
    }
    let mut members = Vec::new();
    for v in 0..29 {
        let (name, tier) = if v < 20 {
            (format!("m{v}"), &tiers[0])
        } else {
            (format!("o{v}"), &tiers[v - 19])
        };
        let vm = job_ok(
            &admin,
            "deployVirtualMachine",
            &vm_params(&env, tier, &name),
        )
        .await;
        if v < 20 {
            members.push(vm["virtualmachine"]["id"].as_str().unwrap().to_string());
        }
    }
    let mut ips = Vec::new();
    for _ in 0..49 {
        let ip = job_ok(&admin, "associateIpAddress", &[("vpcid", &vpc_id)]).await;
        ips.push(ip["ipaddress"]["id"].as_str().unwrap().to_string());
    }
    let lb = done(
        &admin,
        "createLoadBalancerRule",
        &[
            ("name", "web"),
            ("algorithm", "roundrobin"),
            ("publicport", "80"),
            ("privateport", "8080"),
            ("publicipid", &ips[0]),
            ("networkid", &tiers[0]),
        ],
    )
    .await;
    let lb_id = lb["loadbalancer"]["id"].as_str().unwrap().to_string();
    // Five at a time: the parameter is at most 255 characters.
    for five in members.chunks(5) {
        done(
            &admin,
            "assignToLoadBalancerRule",
            &[("id", &lb_id), ("virtualmachineids", &five.join(","))],
        )
        .await;
    }
    m.stop().await;

    // Every statement of this database is logged from now on; a manager
    // that does not serve (no background loops) does the work.
    let mut admin_db = <sqlx::PgConnection as sqlx::Connection>::connect(&cluster.url())
        .await
        .unwrap();
    let name = url.split('?').next().unwrap().rsplit('/').next().unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {name} SET log_statement = 'all'"
    )))
    .execute(&mut admin_db)
    .await
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let settings = vpc_manager::settings::Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.path().to_path_buf(),
        database_url: Some(url.clone()),
        driver: vpc_manager::settings::DriverKind::Simulated,
        ..Default::default()
    };
    let db = vpc_manager::store::Db::connect(&url).await.unwrap();
    let r = router::list(&db, &router::RouterFilter::default(), Page::ALL)
        .await
        .unwrap()
        .items
        .remove(0);
    let agent = Arc::new(
        vpc_manager::orchestration::recording::RecordingAgentClient::at_generation(
            u64::try_from(r.config_generation).unwrap(),
        ),
    );
    let backend = vpc_manager::provision::Backend {
        agent: agent.clone(),
        driver: Arc::new(vpc_manager::orchestration::recording::RecordingDriver::new()),
        endpoints: Arc::default(),
    };
    let manager = vpc_manager::serve::Manager::start_with(settings, backend)
        .await
        .unwrap();
    let app = manager.app.clone();

    let (load, state) = statements(
        cluster,
        &app.db,
        vpc_manager::provision::state::load_router(&app.db, &r),
    )
    .await;
    let state = state.unwrap().unwrap();
    assert_eq!(state.tiers.len(), 10);
    assert_eq!(state.public_ips.len(), 50);
    assert_eq!(state.acl_lists.len(), 10);
    assert!(state.acl_lists.iter().all(|l| l.items.len() == 100));
    assert_eq!(state.lb_rules[0].backends.len(), 20);
    let dhcp: usize = state.dhcp.iter().map(|d| d.entries.len()).sum();
    assert_eq!(dhcp, 29);

    let (check, report) = statements(
        cluster,
        &app.db,
        monitor::resync_once(&app, &mut monitor::RouterHealth::new()),
    )
    .await;
    assert_eq!(report.unwrap().current, vec![r.name.clone()]);
    eprintln!(
        "statements: whole state of the router {load}; health check with nothing changed {check}"
    );
    assert!(load <= 40, "loading the state took {load} statements");
    assert!(check <= 10, "a health check took {check} statements");
}

on_both_backends!(a_router_left_starting_by_a_dead_job_is_started_again, |m| {
    // Item 2: a router is Starting only while a job holding its VPC's sync
    // object works on it; one left so by a manager that died is started
    // again by the next round, one whose VPC is going is destroyed.
    let admin = m.admin();
    let env = zone_env(&admin, "stuck").await;
    let vpc = create_vpc(&admin, &env, "s", "10.90.0.0/16").await;
    let gone = create_vpc(&admin, &env, "g", "10.91.0.0/16").await;
    let all = router::list(&m.app.db, &router::RouterFilter::default(), Page::ALL)
        .await
        .unwrap()
        .items;
    let vpc_row = vpc_manager::store::vpc::get_by_uuid(&m.app.db, vpc["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    let gone_row = vpc_manager::store::vpc::get_by_uuid(&m.app.db, gone["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    let stuck = all
        .iter()
        .find(|r| r.vpc_id == Some(vpc_row.id))
        .unwrap()
        .clone();
    let doomed = all
        .iter()
        .find(|r| r.vpc_id == Some(gone_row.id))
        .unwrap()
        .clone();
    router::set_state(&m.app.db, stuck.id, router::STATE_STARTING)
        .await
        .unwrap();
    router::set_state(&m.app.db, doomed.id, router::STATE_STARTING)
        .await
        .unwrap();
    vpc_manager::store::vpc::set_state(
        &m.app.db,
        gone_row.id,
        vpc_manager::store::vpc::STATE_INACTIVE,
    )
    .await
    .unwrap();

    let report = monitor::converge_stuck_once(&m.app).await.unwrap();
    assert_eq!(report.restarted, vec![stuck.name.clone()], "{report:?}");
    assert_eq!(report.destroyed, vec![doomed.name.clone()], "{report:?}");
    let now = router::get_by_id(&m.app.db, stuck.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.state, router::STATE_RUNNING);
    assert!(now.config_generation > stuck.config_generation);
    let now = router::get_by_id(&m.app.db, doomed.id)
        .await
        .unwrap()
        .unwrap();
    assert!(now.removed.is_some());
    // Nothing is left to converge.
    let again = monitor::converge_stuck_once(&m.app).await.unwrap();
    assert_eq!(again, monitor::StuckReport::default());
});
