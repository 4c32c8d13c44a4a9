//! Robustness: the default driver, a manager killed mid-job, a database outage,
//! failed pushes, query counts.
//!
//! The tests that need routers to run start the real `vpc-manager` binary on
//! the netns driver with a namespace prefix of their own ([`Binary`]), so a
//! SIGKILL hits a real process; a guard removes the prefix's namespaces and
//! processes on drop, also when a test panics.

mod binary;
mod queries;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vpc_manager::orchestration::agent::{AgentCommand, AgentError};
use vpc_manager::provision::monitor;
use vpc_manager::store::{Page, router};

use crate::support::api::{Client, TestManager, http, job_ok, on_both_backends, run_job};
use crate::support::netns::namespaces;
use crate::support::postgres::Cluster;
use crate::support::vpc::{SMALL, TEMPLATE, create_tier, create_vpc, vm_params, zone_env};
use binary::{Binary, agent_answers, bootstrapped, routers, vpc_params};

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
        let report = monitor::resync_once(&m.app.plane(), &mut monitor::RouterHealth::new())
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
    let vpc_row = vpc_manager::store::vpc::get_by_uuid(
        &m.app.db,
        vpc["id"].as_str().unwrap().parse().unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    let gone_row = vpc_manager::store::vpc::get_by_uuid(
        &m.app.db,
        gone["id"].as_str().unwrap().parse().unwrap(),
    )
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

    let report = monitor::converge_stuck_once(&m.app.plane()).await.unwrap();
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
    let again = monitor::converge_stuck_once(&m.app.plane()).await.unwrap();
    assert_eq!(again, monitor::StuckReport::default());
});
