//! Item 5: the statements a big router's state load and a health check
//! send, counted from PostgreSQL's own statement log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use vpc_manager::provision::monitor;
use vpc_manager::store::{Page, router};

use crate::support::api::{Client, TestManager, job_ok};
use crate::support::postgres::Cluster;
use crate::support::vpc::{create_vpc, vm_params};

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
        database_key_file: Some(crate::support::api::suite_database_key(data.path())),
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
