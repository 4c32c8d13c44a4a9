//! Jobs of a manager that stops answering are taken over by a live one, on
//! PostgreSQL: a job whose owner's heartbeat is older than
//! `cluster.heartbeat.threshold` runs again there when its command is safe to
//! run twice (a deployVirtualMachine and a createVPC cut off in the middle
//! end usable), and otherwise fails (its half-made work undone) with a text
//! naming the manager; a job whose owner keeps beating is left alone.
//! A manager stopping gracefully (SIGTERM) gives its share of the background
//! work at once and keeps beating until its running job ends.

mod support;

use std::time::Duration;

use support::api::{Client, TestManager};
use support::postgres::fresh_database;
use support::restart::planted_not_rerun;
use vpc_manager::server::jobs::taken_over_text;
use vpc_manager::store::{Db, cluster, domain, job, user};

/// A deadlock guard for waits that must end, not a speed assertion.
const MUST_END: Duration = Duration::from_secs(60);
const THRESHOLD_MS: &str = "2000";

/// A job of a command that is not run again (it fails when taken over),
/// claimed by `owner`.
async fn planted_job(db: &Db, admin: &user::User, name: &str, owner: &str) -> job::Job {
    let j = planted_not_rerun(db, admin, name).await;
    assert!(job::claim(db, j.id, owner).await.expect("claim"));
    j
}

/// Polls a job until it ends.
async fn until_done(admin: &Client, job_id: &str) -> serde_json::Value {
    tokio::time::timeout(MUST_END, async {
        loop {
            let job = admin.ok("queryAsyncJobResult", &[("jobid", job_id)]).await;
            if job["jobstatus"] != 0 {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("job {job_id} never ended"))
}

/// A beat every 200 ms and a manager Down after [`THRESHOLD_MS`].
async fn fast_heartbeat(admin: &Client) {
    for (name, value) in [
        ("cluster.heartbeat.interval", "200"),
        ("cluster.heartbeat.threshold", THRESHOLD_MS),
    ] {
        admin
            .ok("updateConfiguration", &[("name", name), ("value", value)])
            .await;
    }
}

/// The root admin's user row.
async fn admin_user(db: &Db) -> user::User {
    let root = domain::root(db).await.expect("root");
    user::get_by_username(db, root.id, "admin")
        .await
        .expect("admin")
        .expect("admin")
}

async fn member(db: &Db, name: &str) -> cluster::Member {
    cluster::join(
        db,
        &cluster::Joining {
            name: name.into(),
            address: "127.0.0.1:1".into(),
            version: "test".into(),
            ..Default::default()
        },
    )
    .await
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_managers_jobs_are_taken_over_and_a_beating_ones_are_not() {
    let url = fresh_database().await;
    let m = TestManager::start(Some(url.clone())).await;
    let admin = m.admin();
    fast_heartbeat(&admin).await;
    let db = Db::connect(&url).await.expect("database");
    let admin_user = admin_user(&db).await;

    // Two other managers: one keeps beating, one went silent.
    let live = member(&db, "live-manager").await;
    member(&db, "dead-manager").await;
    let beating = {
        let db = db.clone();
        tokio::spawn(async move {
            loop {
                let _ = cluster::heartbeat(&db, live.id).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let orphan = planted_job(&db, &admin_user, "orphan", "dead-manager").await;
    let kept = planted_job(&db, &admin_user, "kept", "live-manager").await;

    let failed = until_done(&admin, &orphan.uuid.to_string()).await;
    assert_eq!(failed["jobstatus"], 2, "{failed}");
    assert_eq!(failed["jobresultcode"], 530);
    assert_eq!(
        failed["jobresult"]["errortext"],
        taken_over_text("dead-manager")
    );
    // Its sync object is free again.
    let sync = orphan.sync_object.clone().expect("sync object");
    assert_eq!(
        job::sync_object_holder(&db, &sync).await.expect("holder"),
        None
    );

    // Several thresholds later the beating manager still has its job.
    tokio::time::sleep(Duration::from_millis(3 * 2000)).await;
    let still = job::get_by_id(&db, kept.id)
        .await
        .expect("read")
        .expect("job");
    assert_eq!(still.status, 0, "a live manager's job is not taken");
    assert_eq!(still.owner_manager.as_deref(), Some("live-manager"));

    // It goes silent too: its job is taken over in turn.
    beating.abort();
    let failed = until_done(&admin, &kept.uuid.to_string()).await;
    assert_eq!(failed["jobstatus"], 2, "{failed}");
    assert_eq!(
        failed["jobresult"]["errortext"],
        taken_over_text("live-manager")
    );
    db.close().await;
    m.stop().await;
}

/// A job whose command is safe to run again (`restartVPC`) is not failed
/// when its manager goes silent: a live manager queues it again and runs it
/// to success, and the router gets its state once more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_managers_rerunnable_job_runs_again_elsewhere() {
    let url = fresh_database().await;
    let m = TestManager::start(Some(url.clone())).await;
    let admin = m.admin();
    fast_heartbeat(&admin).await;
    let env = support::vpc::zone_env(&admin, "zone-rerun").await;
    let v = support::vpc::create_vpc(&admin, &env, "rerun", "10.5.0.0/16").await;
    let vpc_uuid: uuid::Uuid = v["id"].as_str().unwrap().parse().unwrap();
    let db = Db::connect(&url).await.expect("database");
    let vpc_row = vpc_manager::store::vpc::get_by_uuid(&db, vpc_uuid)
        .await
        .expect("read")
        .expect("vpc");
    let admin_user = admin_user(&db).await;
    member(&db, "gone-manager").await;
    let pushes_before = m.agent.sent().len();
    let j = job::insert(
        &db,
        job::NewJob {
            user_id: admin_user.id,
            account_id: admin_user.account_id,
            cmd: "restartVPC".into(),
            cmd_info: serde_json::json!({ "id": vpc_row.id, "cleanup": false }).to_string(),
            instance_type: Some("Vpc".into()),
            instance_uuid: Some(vpc_uuid),
            sync_object: Some(vpc_manager::server::jobs::vpc_sync(vpc_row.id)),
            uuid: None,
        },
    )
    .await
    .expect("job");
    assert!(job::claim(&db, j.id, "gone-manager").await.expect("claim"));

    let done = until_done(&admin, &j.uuid.to_string()).await;
    assert_eq!(done["jobstatus"], 1, "run again, not failed: {done}");
    assert_eq!(done["jobresult"]["success"], true, "{done}");
    let again = job::get_by_id(&db, j.id).await.expect("read").expect("job");
    assert_ne!(again.owner_manager.as_deref(), Some("gone-manager"));
    assert!(
        m.agent.sent().len() > pushes_before,
        "the restart reached the router again"
    );
    db.close().await;
    m.stop().await;
}

/// A deployVirtualMachine and a createVPC whose manager dies in the middle
/// (after the VM was marked Running, while its DHCP list is on the way to
/// the router; after the new VPC's router was made, while it starts) run
/// again on the manager that takes them over, from their stored payloads,
/// and succeed: the VM runs with its router serving it, the VPC's router
/// runs, and both are usable afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_managers_deploy_and_create_vpc_jobs_run_again_and_succeed() {
    use vpc_manager::store::{router, vm, vpc};
    let url = fresh_database().await;
    let dying = TestManager::start(Some(url.clone())).await;
    let admin = dying.admin();
    fast_heartbeat(&admin).await;
    let env = support::vpc::zone_env(&admin, "zone-again").await;
    let v = support::vpc::create_vpc(&admin, &env, "again", "10.7.0.0/16").await;
    let vpc_id = v["id"].as_str().unwrap().to_string();
    let web = support::vpc::create_tier(&admin, &env, &vpc_id, "web", "10.7.1.1", "255.255.255.0")
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The tier's first VM implements it, so the next one's first router
    // command is its DHCP list.
    support::vpc::deploy_vm(&admin, &env, &web, "first").await;
    let db = Db::connect(&url).await.expect("database");

    // Every router command of the dying manager waits from now on.
    dying.agent.hold();
    let deploy = admin
        .ok(
            "deployVirtualMachine",
            &support::vpc::vm_params(&env, &web, "second"),
        )
        .await;
    let created = admin
        .ok(
            "createVPC",
            &[
                ("name", "fresh"),
                ("displaytext", "fresh"),
                ("cidr", "10.8.0.0/16"),
                ("zoneid", &env.zone),
                ("vpcofferingid", &env.vpc_offering),
            ],
        )
        .await;
    let vm_uuid: uuid::Uuid = deploy["id"].as_str().unwrap().parse().unwrap();
    let new_vpc: uuid::Uuid = created["id"].as_str().unwrap().parse().unwrap();
    let jobs = [
        deploy["jobid"].as_str().unwrap().to_string(),
        created["jobid"].as_str().unwrap().to_string(),
    ];
    until("the VM is Running, its DHCP list on the way", || async {
        vm::get_by_uuid(&db, vm_uuid)
            .await
            .expect("read")
            .is_some_and(|v| v.state == vm::STATE_RUNNING)
    })
    .await;
    let new_vpc_row = vpc::get_by_uuid(&db, new_vpc)
        .await
        .expect("read")
        .expect("vpc");
    until("the new VPC's router is starting", || async {
        vpc_manager::provision::vpc_router(&db, new_vpc_row.id)
            .await
            .expect("read")
            .is_some_and(|r| r.state == router::STATE_STARTING)
    })
    .await;
    let dead = dying.app.jobs.owner().to_string();
    for j in &jobs {
        let row = job::get_by_uuid(&db, j.parse().unwrap())
            .await
            .expect("read")
            .expect("job");
        assert_eq!(row.status, 0, "{row:?}");
        assert_eq!(row.owner_manager.as_deref(), Some(dead.as_str()));
    }

    // The manager dies: its heartbeat stops, its jobs stop where they are.
    let app = dying.app.clone();
    dying.kill().await;
    app.jobs.fence();
    let live = TestManager::start(Some(url.clone())).await;
    let admin = live.admin();
    for j in &jobs {
        let done = until_done(&admin, j).await;
        assert_eq!(done["jobstatus"], 1, "run again, not failed: {done}");
        let row = job::get_by_uuid(&db, j.parse().unwrap())
            .await
            .expect("read")
            .expect("job");
        assert_eq!(row.owner_manager.as_deref(), Some(live.app.jobs.owner()));
    }
    let vm_done = until_done(&admin, &jobs[0]).await;
    assert_eq!(
        vm_done["jobresult"]["virtualmachine"]["state"], "Running",
        "{vm_done}"
    );
    let vpc_done = until_done(&admin, &jobs[1]).await;
    assert_eq!(vpc_done["jobresult"]["vpc"]["id"], new_vpc.to_string());

    // The VM runs with its router serving it: its NIC is in its tier's
    // DHCP list, and the router holds what the database last gave it.
    let state = vpc_manager::provision::state::load(&db, {
        vpc::get_by_uuid(&db, vpc_id.parse().unwrap())
            .await
            .expect("read")
            .expect("vpc")
            .id
    })
    .await
    .expect("state")
    .expect("router");
    let address = vm_done["jobresult"]["virtualmachine"]["nic"][0]["ipaddress"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        state
            .dhcp
            .iter()
            .flat_map(|t| &t.entries)
            .any(|e| e.ip.to_string() == address),
        "{address} in the router's DHCP lists: {:?}",
        state.dhcp
    );
    let vms = admin
        .ok("listVirtualMachines", &[("listall", "true")])
        .await;
    assert_eq!(vms["count"], 2, "one VM per deployment: {vms}");
    for (vpc_row, what) in [(state.vpc.id, "the first VPC"), (new_vpc, "the new VPC")] {
        let row = vpc::get_by_uuid(&db, vpc_row)
            .await
            .expect("read")
            .expect("vpc");
        let r = vpc_manager::provision::vpc_router(&db, row.id)
            .await
            .expect("read")
            .expect("router");
        until(what, || {
            let db = db.clone();
            let agent = live.agent.clone();
            let (uuid, name) = (r.uuid, r.name.clone());
            async move {
                let r = router::get_by_uuid(&db, uuid).await.expect("read");
                r.is_some_and(|r| {
                    r.state == router::STATE_RUNNING
                        && r.applied_generation == r.config_generation
                        && agent.applied_by(&name) == u64::try_from(r.applied_generation).unwrap()
                })
            }
        })
        .await;
    }
    let routers = admin
        .ok(
            "listRouters",
            &[("listall", "true"), ("vpcid", &new_vpc.to_string())],
        )
        .await;
    assert_eq!(routers["count"], 1, "one router for the new VPC: {routers}");
    let ips = admin
        .ok("listPublicIpAddresses", &[("vpcid", &new_vpc.to_string())])
        .await;
    assert_eq!(ips["count"], 1, "one source NAT address: {ips}");

    // Both are usable: the new VPC takes a tier and a VM, the VM stops.
    let tier = support::vpc::create_tier(
        &admin,
        &env,
        &new_vpc.to_string(),
        "app",
        "10.8.1.1",
        "255.255.255.0",
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    support::vpc::deploy_vm(&admin, &env, &tier, "third").await;
    support::api::job_ok(
        &admin,
        "stopVirtualMachine",
        &[("id", &vm_uuid.to_string())],
    )
    .await;
    db.close().await;
    live.stop().await;
}

/// A manager cut off from its database stops the jobs it runs before the
/// other managers would count it Down (self-fencing), and when the database
/// is back it runs again what nobody took over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_cut_off_from_its_database_stops_its_jobs_until_it_is_back() {
    use sqlx::Connection;
    let url = fresh_database().await;
    let m = TestManager::start(Some(url.clone())).await;
    let admin = m.admin();
    fast_heartbeat(&admin).await;
    let env = support::vpc::zone_env(&admin, "zone-fence").await;
    let v = support::vpc::create_vpc(&admin, &env, "fence", "10.6.0.0/16").await;
    let vpc = v["id"].as_str().unwrap().to_string();

    // A restart that waits on its router.
    m.agent.hold();
    let started = admin.ok("restartVPC", &[("id", &vpc)]).await;
    let job_id = started["jobid"].as_str().unwrap().to_string();
    let until = |what: &'static str, done: Box<dyn Fn() -> bool + Send>| async move {
        tokio::time::timeout(MUST_END, async {
            while !done() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("never {what}"));
    };
    let app = m.app.clone();
    until("running", Box::new(move || app.jobs.running_count() == 1)).await;

    // The database goes away for this manager: no new connection is
    // allowed and its open ones are ended.
    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("url");
    let name = options.get_database().expect("database name").to_string();
    // The operator works from the server's maintenance database.
    let mut operator = sqlx::PgConnection::connect_with(&options.database("postgres"))
        .await
        .expect("connect");
    let cut = format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false");
    sqlx::query(sqlx::AssertSqlSafe(cut))
        .execute(&mut operator)
        .await
        .expect("cut");
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1",
    )
    .bind(&name)
    .execute(&mut operator)
    .await
    .expect("end the manager's connections");

    let app = m.app.clone();
    until(
        "fenced",
        Box::new(move || app.jobs.is_fenced() && app.jobs.running_count() == 0),
    )
    .await;
    m.agent.release();
    let back = format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true");
    sqlx::query(sqlx::AssertSqlSafe(back))
        .execute(&mut operator)
        .await
        .expect("back");
    let db = Db::connect(&url).await.expect("database");
    let row = job::get_by_uuid(&db, job_id.parse().unwrap());
    let stopped = row.await.expect("read").expect("job");
    assert!(
        stopped.status == 0 || stopped.status == 1,
        "a fenced job is not failed: {stopped:?}"
    );

    let done = until_done(&admin, &job_id).await;
    assert_eq!(done["jobstatus"], 1, "run again once back: {done}");
    let app = m.app.clone();
    until("unfenced", Box::new(move || !app.jobs.is_fenced())).await;
    operator.close().await.expect("close");
    m.stop().await;
}

/// Polls `done` every 50 ms until it holds; panics after [`MUST_END`].
async fn until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    tokio::time::timeout(MUST_END, async {
        while !done().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: never"));
}

/// A graceful stop (SIGTERM) of the manager running a job: its row says
/// at once that it is leaving, and the others stop counting it among the
/// members sharing the background work at their next heartbeats (not after
/// the threshold); meanwhile it keeps beating, so its job, held past
/// several thresholds, is not taken over and ends on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_manager_gives_its_share_at_once_and_finishes_its_job() {
    let url = fresh_database().await;
    let first = TestManager::start(Some(url.clone())).await;
    let admin = first.admin();
    fast_heartbeat(&admin).await;
    let env = support::vpc::zone_env(&admin, "zone-leave").await;
    let v = support::vpc::create_vpc(&admin, &env, "leave", "10.6.0.0/16").await;
    let vpc = v["id"].as_str().expect("vpc id").to_string();
    let mut managers = vec![
        first,
        TestManager::start(Some(url.clone())).await,
        TestManager::start(Some(url.clone())).await,
    ];
    let db = Db::connect(&url).await.expect("database");
    let mut all: Vec<String> = managers
        .iter()
        .map(|m| m.app.jobs.owner().to_string())
        .collect();
    all.sort();
    for m in &managers {
        let members = m.app.members.clone();
        let all = all.clone();
        until("every manager sees the three", move || {
            let ok = *members.subscribe().borrow() == all;
            async move { ok }
        })
        .await;
    }

    // Router commands wait, on every manager: the restart's job holds.
    for m in &managers {
        m.agent.hold();
    }
    let started = admin
        .ok("restartVPC", &[("id", vpc.as_str()), ("cleanup", "false")])
        .await;
    let job_uuid: uuid::Uuid = started["jobid"]
        .as_str()
        .expect("jobid")
        .parse()
        .expect("uuid");
    let owner = tokio::time::timeout(MUST_END, async {
        loop {
            let j = job::get_by_uuid(&db, job_uuid).await.expect("read");
            if let Some(owner) = j.and_then(|j| j.owner_manager) {
                return owner;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the restart is claimed");
    let at = managers
        .iter()
        .position(|m| m.app.jobs.owner() == owner)
        .expect("a manager of this test claimed it");
    let stopping = managers.remove(at);
    let agents: Vec<_> = managers
        .iter()
        .map(|m| m.agent.clone())
        .chain([stopping.agent.clone()])
        .collect();
    let stopped_at = tokio::time::Instant::now();
    let stop = tokio::spawn(stopping.stop());

    let row = || async {
        cluster::list(&db, None, Some(&owner))
            .await
            .expect("read")
            .pop()
            .expect("its row")
    };
    until("its row says it is leaving", || async {
        row().await.leaving.is_some()
    })
    .await;
    let mut rest: Vec<String> = all.iter().filter(|m| **m != owner).cloned().collect();
    rest.sort();
    for m in &managers {
        let members = m.app.members.clone();
        let want = rest.clone();
        until("the others no longer count it", move || {
            let ok = *members.subscribe().borrow() == want;
            async move { ok }
        })
        .await;
        let shares = vpc_manager::cluster::Shares::read(&m.app.db, m.app.jobs.owner())
            .await
            .expect("shares");
        assert_eq!(shares.live(), rest.as_slice());
    }
    let taken = stopped_at.elapsed();
    eprintln!(
        "a stopping manager's share was taken by the others {} ms after the stop began \
         (heartbeat 200 ms, threshold {THRESHOLD_MS} ms)",
        taken.as_millis()
    );

    // Three thresholds on, it still beats (Up) and its job is its own.
    tokio::time::sleep(Duration::from_millis(3 * 2000)).await;
    let now = vpc_manager::store::now_ms();
    let r = row().await;
    assert_eq!(r.stopped, None);
    assert_eq!(r.state_at(now, 2000), cluster::MemberState::Up, "{r:?}");
    let j = job::get_by_uuid(&db, job_uuid)
        .await
        .expect("read")
        .expect("job");
    assert_eq!(j.status, 0, "still running");
    assert_eq!(j.owner_manager.as_deref(), Some(owner.as_str()));

    // Let it end: it succeeds where it ran, and then the manager leaves.
    for a in &agents {
        a.release();
    }
    tokio::time::timeout(MUST_END, stop)
        .await
        .expect("the stop ends")
        .expect("stop task");
    let j = job::get_by_uuid(&db, job_uuid)
        .await
        .expect("read")
        .expect("job");
    assert_eq!(j.status, 1, "succeeded: {j:?}");
    assert_eq!(j.owner_manager.as_deref(), Some(owner.as_str()));
    assert!(row().await.stopped.is_some(), "it left");
    db.close().await;
    for m in managers {
        m.stop().await;
    }
}
