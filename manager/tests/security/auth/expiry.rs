//! Expiry: expired sessions and old finished jobs are purged.

use super::*;

on_both_backends!(
    expired_sessions_and_old_finished_jobs_are_purged,
    |m, url| {
        let admin = m.admin();
        let mut jobs = Vec::new();
        for name in ["old", "recent"] {
            let d = id(&admin.ok("createDomain", &[("name", name)]).await, "domain");
            let started = admin.ok("deleteDomain", &[("id", &d)]).await;
            let job = started["jobid"].as_str().unwrap().to_string();
            assert_eq!(admin.wait_job(&job).await["jobstatus"], 1);
            jobs.push(job);
        }
        let (_, _) = keyed_user(&admin, "sessions").await;
        let r = login(m, "sessions", "pw", "/").await;
        assert_eq!(r.status, 200);
        let key = r.json()["loginresponse"]["sessionkey"]
            .as_str()
            .unwrap()
            .to_string();

        // The old job finished two days ago (job.expire.minutes is one day);
        // the session's idle time ran out.
        exec_sql(
            url,
            "UPDATE async_job SET completed = completed - 172800000 WHERE uuid = $1",
            &[&jobs[0]],
        )
        .await;
        exec_sql(
            url,
            "UPDATE sessions SET expires = 1 WHERE session_key = $1",
            &[&key],
        )
        .await;

        // Two managers purging at once: each row goes once, neither fails.
        let (a, b) = tokio::join!(
            vpc_manager::server::expiry::purge_once(&m.app),
            vpc_manager::server::expiry::purge_once(&m.app)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.jobs + b.jobs, 1, "only the old job");
        assert_eq!(a.sessions + b.sessions, 1, "only the expired session");
        let (status, _) = admin
            .call("queryAsyncJobResult", &[("jobid", &jobs[0])])
            .await;
        assert_eq!(status, 431, "the old job is gone");
        let recent = admin
            .ok("queryAsyncJobResult", &[("jobid", &jobs[1])])
            .await;
        assert_eq!(recent["jobstatus"], 1, "the recent one stays");
        let again = vpc_manager::server::expiry::purge_once(&m.app)
            .await
            .unwrap();
        assert_eq!(again, Default::default());
    }
);
