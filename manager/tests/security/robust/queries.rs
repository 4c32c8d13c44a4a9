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
    // The second manager below opens the secrets this one sealed with the
    // suite's database key.
    let data = tempfile::tempdir().unwrap();
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
        monitor::resync_once(&app.plane(), &mut monitor::RouterHealth::new()),
    )
    .await;
    assert_eq!(report.unwrap().current, vec![r.name.clone()]);
    eprintln!(
        "statements: whole state of the router {load}; health check with nothing changed {check}"
    );
    assert!(load <= 40, "loading the state took {load} statements");
    assert!(check <= 10, "a health check took {check} statements");
}

/// Runs list command `command` with `params` as the root admin, the way the
/// API does after authentication (no HTTP, so only the command's own
/// statements reach the log); returns the count and the rows.
async fn list_as_admin(
    app: &Arc<vpc_manager::server::App>,
    command: &str,
    params: &[(&str, &str)],
) -> (u64, Vec<Value>) {
    use vpc_manager::server::{Caller, Ctx, Reply, Role};
    use vpc_manager::store::{account, domain};
    let root = domain::root(&app.db).await.unwrap();
    let admin = account::get_by_name(&app.db, root.id, "admin")
        .await
        .unwrap()
        .unwrap();
    let spec = app.registry.get(command).unwrap();
    let ctx = Ctx {
        app: app.clone(),
        caller: Caller {
            user_id: 0,
            user_uuid: uuid::Uuid::nil(),
            account_id: admin.id,
            account_uuid: admin.uuid,
            account_name: admin.account_name.clone(),
            account_type: 1,
            domain_id: root.id,
            domain_uuid: root.uuid,
            domain_path: root.path.clone(),
            role: Role::Admin,
        },
        command: spec.name,
        custom_job_id: None,
        http_post: false,
    };
    let params = vpc_manager::api::Params::from_pairs(
        params
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect(),
    );
    match (spec.handler)(&ctx, &params).await {
        Ok(Reply::List { count, items }) => (count, items),
        Ok(_) => panic!("{command} answered with something other than a list"),
        Err(e) => panic!("{command} failed: {e:?}"),
    }
}

/// Item 5 (list views): 500 VPCs, each with its router (a public and a
/// control NIC), a tier and a VM in it, listed a page at a time. A page
/// costs a constant number of statements (one per table it shows, not
/// several per row), the same for 50 rows as for 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_vpcs_routers_tiers_or_vms_costs_a_bounded_number_of_statements() {
    use vpc_manager::store::{network, vm, vpc};
    let cluster = tokio::task::spawn_blocking(Cluster::shared).await.unwrap();
    let url = cluster.create_database().await;
    let m = TestManager::start(Some(url.clone())).await;
    let admin = m.admin();
    let env = crate::support::vpc::zone_env(&admin, "pages").await;
    let first = create_vpc(&admin, &env, "v0", "10.0.0.0/16").await;
    let vpc0 = first["id"].as_str().unwrap();
    let tier0 =
        crate::support::vpc::create_tier(&admin, &env, vpc0, "t0", "10.0.1.1", "255.255.255.0")
            .await;
    let tier0 = tier0["id"].as_str().unwrap().to_string();
    let vm0 = crate::support::vpc::deploy_vm(&admin, &env, &tier0, "vm0").await;
    // The second manager below opens the secrets this one sealed with the
    // suite's database key.
    let data = tempfile::tempdir().unwrap();
    m.stop().await;

    // 499 more VPCs like the first (same zone, offering and owner), each
    // with a router holding a public and a control NIC, written straight to
    // the store: the API would take minutes to start 500 routers.
    let db = vpc_manager::store::Db::connect(&url).await.unwrap();
    let v0 = vpc::get_by_uuid(&db, first["id"].as_str().unwrap().parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let public = network::public_network(&db, v0.zone_id).await.unwrap();
    let routers = router::list(&db, &router::RouterFilter::default(), Page::ALL)
        .await
        .unwrap()
        .items;
    assert_eq!(routers.len(), 1, "createVPC starts one router");
    let t0 = network::get_by_uuid(&db, tier0.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let allow = vpc_manager::store::acl::list(
        &db,
        &vpc_manager::store::acl::AclFilter {
            name: Some(vpc_manager::store::acl::DEFAULT_ALLOW.into()),
            include_builtin: true,
            ..Default::default()
        },
        Page::ALL,
    )
    .await
    .unwrap()
    .items
    .remove(0);
    let m0 = vm::get_by_uuid(&db, vm0["id"].as_str().unwrap().parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    for i in 1..500 {
        let v = vpc::create(
            &db,
            vpc::NewVpc {
                name: format!("v{i}"),
                display_text: format!("v{i}"),
                zone_id: v0.zone_id,
                cidr: format!("172.{}.{}.0/24", 16 + i / 256, i % 256),
                account_id: v0.account_id,
                domain_id: v0.domain_id,
                vpc_offering_id: v0.vpc_offering_id,
                network_domain: v0.network_domain.clone(),
            },
        )
        .await
        .unwrap();
        let r = router::create(
            &db,
            router::NewRouter {
                vpc_id: Some(v.id),
                zone_id: v.zone_id,
                account_id: v.account_id,
                domain_id: v.domain_id,
            },
        )
        .await
        .unwrap();
        let t = network::create(
            &db,
            network::NewNetwork {
                name: format!("t{i}"),
                display_text: format!("t{i}"),
                zone_id: t0.zone_id,
                physical_network_id: t0.physical_network_id,
                vpc_id: Some(v.id),
                account_id: t0.account_id,
                domain_id: t0.domain_id,
                network_offering_id: t0.network_offering_id,
                cidr: Some(v.cidr.to_string()),
                gateway: t0.gateway.map(|a| a.to_string()),
                netmask: t0.netmask.map(|a| a.to_string()),
                network_domain: t0.network_domain.clone(),
                network_acl_id: Some(allow.id),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let guest = vm::create(
            &db,
            vm::NewVm {
                name: format!("vm{i}"),
                display_name: format!("vm{i}"),
                zone_id: m0.zone_id,
                account_id: m0.account_id,
                domain_id: m0.domain_id,
                service_offering_id: m0.service_offering_id,
                template_id: m0.template_id,
                state: m0.state,
            },
        )
        .await
        .unwrap();
        router::create_nic(
            &db,
            router::NewNic {
                owner: router::NicOwner::Vm(guest.id),
                network_id: t.id,
                device_index: Some(0),
                ip4_address: Some(format!("10.0.1.{}", 10 + i % 200).parse().unwrap()),
                netmask: Some("255.255.255.0".parse().unwrap()),
                gateway: Some("10.0.1.1".parse().unwrap()),
                role: router::ROLE_GUEST.into(),
            },
        )
        .await
        .unwrap();
        for (index, role) in [(0, router::ROLE_PUBLIC), (1, router::ROLE_CONTROL)] {
            router::create_nic(
                &db,
                router::NewNic {
                    owner: router::NicOwner::Router(r.id),
                    network_id: public.id,
                    device_index: Some(index),
                    ip4_address: Some(format!("203.0.113.{}", 100 + i % 100).parse().unwrap()),
                    netmask: Some("255.255.255.0".parse().unwrap()),
                    gateway: Some("203.0.113.1".parse().unwrap()),
                    role: role.into(),
                },
            )
            .await
            .unwrap();
        }
    }

    // Every statement of this database is logged from now on; a manager
    // that does not serve (no background loops) runs the commands.
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
    let settings = vpc_manager::settings::Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.path().to_path_buf(),
        database_url: Some(url.clone()),
        driver: vpc_manager::settings::DriverKind::Simulated,
        database_key_file: Some(crate::support::api::suite_database_key(data.path())),
        ..Default::default()
    };
    let backend = vpc_manager::provision::Backend {
        agent: Arc::new(vpc_manager::orchestration::recording::RecordingAgentClient::new()),
        driver: Arc::new(vpc_manager::orchestration::recording::RecordingDriver::new()),
        endpoints: Arc::default(),
    };
    let manager = vpc_manager::serve::Manager::start_with(settings, backend)
        .await
        .unwrap();
    let app = manager.app.clone();

    let mut report = Vec::new();
    for (command, size) in [
        ("listVPCs", "50"),
        ("listVPCs", "500"),
        ("listRouters", "50"),
        ("listRouters", "500"),
        ("listNetworks", "50"),
        ("listNetworks", "500"),
        ("listVirtualMachines", "50"),
        ("listVirtualMachines", "500"),
    ] {
        let params = [("listall", "true"), ("page", "1"), ("pagesize", size)];
        let (n, (count, items)) =
            statements(cluster, &app.db, list_as_admin(&app, command, &params)).await;
        assert_eq!(count, 500, "{command}: every row is counted");
        assert_eq!(items.len().to_string(), size, "{command}: a full page");
        // The rows still show what they refer to, read from the batch.
        let row = &items[items.len() - 1];
        assert_eq!(row["zoneid"], env.zone.as_str(), "{command}: {row}");
        assert_eq!(row["account"], "admin", "{command}: {row}");
        assert!(row["domainid"].is_string(), "{command}: {row}");
        match command {
            "listRouters" => {
                assert_eq!(row["nic"].as_array().unwrap().len(), 2, "{row}");
                assert_eq!(row["publicnetworkid"], public.uuid.to_string(), "{row}");
                assert!(row["vpcname"].is_string(), "{row}");
            }
            "listVPCs" => {
                assert!(row["vpcofferingname"].is_string(), "{row}");
                assert!(!row["service"].as_array().unwrap().is_empty(), "{row}");
                assert_eq!(row["network"].as_array().unwrap().len(), 1, "{row}");
            }
            "listNetworks" => {
                assert!(row["networkofferingname"].is_string(), "{row}");
                assert!(row["vpcname"].is_string(), "{row}");
                assert!(row["aclname"].is_string(), "{row}");
            }
            _ => {
                assert!(row["serviceofferingname"].is_string(), "{row}");
                assert!(row["templatename"].is_string(), "{row}");
                assert_eq!(row["nic"][0]["vpcid"], row["vpcid"], "{row}");
                assert!(row["vpcid"].is_string(), "{row}");
            }
        }
        report.push((command, size, n));
    }
    eprintln!("statements per page: {report:?}");
    for pair in report.chunks(2) {
        let ((command, _, small), (_, _, big)) = (pair[0], pair[1]);
        assert!(big <= 15, "{command}: a page of 500 took {big} statements");
        assert_eq!(
            small, big,
            "{command}: 50 rows took {small} statements, 500 took {big}"
        );
    }
}
