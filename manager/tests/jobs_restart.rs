//! What a manager does at start with jobs it left behind: a job it was
//! running when it died runs again when its command is safe to run twice,
//! and otherwise fails with a clear text; a job it released at a graceful
//! shutdown runs again. None stays pending.

mod support;

use support::api::TestManager;
use support::restart::{DeadManager, dead_manager, planted_delete_domain, planted_not_rerun};
use vpc_manager::server::jobs::ABANDONED;
use vpc_manager::store::job;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_job_fails_or_runs_again_and_a_released_job_runs_at_the_next_start() {
    let DeadManager {
        dir,
        settings,
        db,
        admin,
    } = dead_manager().await;
    let mut jobs = Vec::new();
    for name in ["crashed", "released"] {
        jobs.push(planted_delete_domain(&db, &admin, name).await.0);
    }
    let failing = planted_not_rerun(&db, &admin, "crashed-too").await;
    // The first and the last job were running on this manager when it died;
    // the second was given back at a graceful shutdown (pending, no owner).
    assert!(job::claim(&db, jobs[0].id, "manager-1").await.unwrap());
    assert!(job::claim(&db, failing.id, "manager-1").await.unwrap());
    db.close().await;

    let (second, _) = TestManager::start_real(settings, dir).await;
    let client = second.admin();

    // deleteDomain is safe to run twice: it runs again.
    let crashed = client.wait_job(&jobs[0].uuid.to_string()).await;
    assert_eq!(crashed["jobstatus"], 1, "run again: {crashed}");
    let released = client.wait_job(&jobs[1].uuid.to_string()).await;
    assert_eq!(released["jobstatus"], 1, "the released job ran: {released}");
    for name in ["crashed", "released"] {
        let left = client.ok("listDomains", &[("name", name)]).await;
        assert_eq!(left, serde_json::json!({}), "domain {name} is gone");
    }
    // deleteFirewallRule is not: it fails.
    let failed = client.wait_job(&failing.uuid.to_string()).await;
    assert_eq!(failed["jobstatus"], 2, "{failed}");
    assert_eq!(failed["jobresultcode"], 530);
    assert_eq!(failed["jobresult"]["errortext"], ABANDONED);

    second.stop().await;
}
