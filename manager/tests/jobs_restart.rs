//! What a manager does at start with jobs it left behind: a job it was
//! running when it died fails with a clear text; a job it released at a
//! graceful shutdown runs again. None stays pending.

mod support;

use support::api::TestManager;
use support::restart::{DeadManager, dead_manager, planted_delete_domain};
use vpc_manager::server::jobs::ABANDONED;
use vpc_manager::store::job;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_job_fails_and_a_released_job_runs_at_the_next_start() {
    let DeadManager {
        dir,
        settings,
        db,
        admin,
    } = dead_manager().await;
    let mut jobs = Vec::new();
    for name in ["crashed", "released"] {
        jobs.push(planted_delete_domain(&db, &admin, name).await);
    }
    // The first job was running on this manager when it died; the second was
    // given back at a graceful shutdown (pending, no owner).
    assert!(job::claim(&db, jobs[0].0.id, "manager-1").await.unwrap());
    db.close().await;

    let (second, _) = TestManager::start_real(settings, dir).await;
    let client = second.admin();

    let crashed = client.wait_job(&jobs[0].0.uuid.to_string()).await;
    assert_eq!(crashed["jobstatus"], 2, "{crashed}");
    assert_eq!(crashed["jobresultcode"], 530);
    assert_eq!(crashed["jobresult"]["errortext"], ABANDONED);
    let released = client.wait_job(&jobs[1].0.uuid.to_string()).await;
    assert_eq!(released["jobstatus"], 1, "the released job ran: {released}");
    let left = client.ok("listDomains", &[("name", "released")]).await;
    assert_eq!(left, serde_json::json!({}), "its domain is gone");

    second.stop().await;
}
