//! Async jobs: lifecycle, sync objects, recovery and concurrent claimers.

use std::collections::HashSet;

use vpc_manager::store::job::{self, NewJob, Outcome};
use vpc_manager::store::{Page, account, domain};

use crate::support::store::on_both_backends;
use crate::{job_for, new_account, new_user};

on_both_backends!(job_lifecycle_claim_complete_and_query, |db, url| {
    let root = domain::root(&db).await.unwrap();
    let acct = new_account(&db, root.id, "jobs", account::TYPE_USER).await;
    let u = new_user(&db, acct.id, "jobs").await;
    let j = job::insert(
        &db,
        NewJob {
            instance_type: Some("Vpc".into()),
            instance_uuid: Some(uuid::Uuid::new_v4()),
            ..job_for(&u, "createVPC", Some("vpc:1"))
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (j.status, j.owner_manager.as_deref()),
        (job::STATUS_IN_PROGRESS, None)
    );

    assert!(job::claim(&db, j.id, "m1").await.unwrap());
    assert!(!job::claim(&db, j.id, "m2").await.unwrap(), "claimed twice");
    assert_eq!(
        job::sync_object_holder(&db, "vpc:1").await.unwrap(),
        Some(j.id)
    );
    assert!(
        job::complete(&db, j.id, Outcome::succeeded(r#"{"vpc":{"id":"v-1"}}"#))
            .await
            .unwrap()
    );
    assert!(
        !job::complete(&db, j.id, Outcome::failed(530, "{}"))
            .await
            .unwrap(),
        "completed twice"
    );
    assert_eq!(job::sync_object_holder(&db, "vpc:1").await.unwrap(), None);

    let done = job::get_by_uuid(&db, j.uuid).await.unwrap().unwrap();
    assert_eq!(
        (done.status, done.result_code, done.result_type.as_deref()),
        (1, 0, Some("object"))
    );
    assert_eq!(done.result.as_deref(), Some(r#"{"vpc":{"id":"v-1"}}"#));
    assert!(done.completed.is_some());
    let mine = job::list(
        &db,
        &job::JobFilter {
            account_id: Some(acct.id),
            ..Default::default()
        },
        Page::ALL,
    )
    .await
    .unwrap();
    assert_eq!(mine.items, vec![done]);
    let in_root = job::list(
        &db,
        &job::JobFilter {
            domain_path_prefix: Some("/".into()),
            status: Some(1),
            ..Default::default()
        },
        Page::ALL,
    )
    .await
    .unwrap();
    assert_eq!(in_root.total, 1);
});

on_both_backends!(
    jobs_sharing_a_sync_object_run_one_at_a_time_in_order,
    |db, url| {
        let root = domain::root(&db).await.unwrap();
        let u = new_user(&db, new_account(&db, root.id, "sync", 0).await.id, "sync").await;
        let a = job::insert(&db, job_for(&u, "updateVPC", Some("vpc:7")))
            .await
            .unwrap();
        let b = job::insert(&db, job_for(&u, "restartVPC", Some("vpc:7")))
            .await
            .unwrap();
        let c = job::insert(&db, job_for(&u, "restartVPC", Some("vpc:8")))
            .await
            .unwrap();

        assert!(
            !job::claim(&db, b.id, "m1").await.unwrap(),
            "B must wait for the older A"
        );
        assert!(job::claim(&db, a.id, "m1").await.unwrap());
        assert!(!job::claim(&db, b.id, "m2").await.unwrap(), "A holds vpc:7");
        let next = job::claim_next(&db, "m2")
            .await
            .unwrap()
            .expect("C may start");
        assert_eq!((next.id, next.owner_manager.as_deref()), (c.id, Some("m2")));
        assert!(job::claim_next(&db, "m2").await.unwrap().is_none());

        job::complete(&db, a.id, Outcome::succeeded("{}"))
            .await
            .unwrap();
        let next = job::claim_next(&db, "m2")
            .await
            .unwrap()
            .expect("B after A");
        assert_eq!(next.id, b.id);
        assert_eq!(
            job::sync_object_holder(&db, "vpc:7").await.unwrap(),
            Some(b.id)
        );
    }
);

on_both_backends!(
    restarting_manager_finds_its_jobs_and_can_release_them,
    |db, url| {
        let root = domain::root(&db).await.unwrap();
        let u = new_user(&db, new_account(&db, root.id, "rec", 0).await.id, "rec").await;
        let mut ids = Vec::new();
        for i in 0..3 {
            let j = job::insert(&db, job_for(&u, "deleteVPC", Some(&format!("vpc:{i}"))))
                .await
                .unwrap();
            assert!(
                job::claim(&db, j.id, if i < 2 { "m1" } else { "m2" })
                    .await
                    .unwrap()
            );
            ids.push(j.id);
        }
        let owned: Vec<i64> = job::jobs_in_progress_for(&db, "m1")
            .await
            .unwrap()
            .iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(owned, ids[..2]);
        job::complete(
            &db,
            ids[0],
            Outcome::failed(530, r#"{"errorcode":530,"errortext":"manager restarted"}"#),
        )
        .await
        .unwrap();
        assert!(job::release(&db, ids[1]).await.unwrap());
        assert!(
            job::jobs_in_progress_for(&db, "m1")
                .await
                .unwrap()
                .is_empty()
        );
        let taken = job::claim_next(&db, "m2")
            .await
            .unwrap()
            .expect("released job is pending again");
        assert_eq!(taken.id, ids[1]);
        assert_eq!(job::jobs_in_progress_for(&db, "m2").await.unwrap().len(), 2);
    }
);

on_both_backends!(
    concurrent_claimers_never_share_a_job_or_a_sync_object,
    |db, url| {
        let root = domain::root(&db).await.unwrap();
        let u = new_user(&db, new_account(&db, root.id, "par", 0).await.id, "par").await;
        for i in 0..40 {
            let sync = match i % 4 {
                0 => Some("vpc:a"),
                1 => Some("vpc:b"),
                _ => None,
            };
            job::insert(&db, job_for(&u, "work", sync)).await.unwrap();
        }
        let mut tasks = Vec::new();
        for m in 0..6 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(j) = job::claim_next(&db, &format!("m{m}"))
                    .await
                    .expect("claim_next")
                {
                    got.push((j.id, j.sync_object));
                }
                got
            }));
        }
        let mut claimed = Vec::new();
        for t in tasks {
            claimed.extend(t.await.unwrap());
        }
        let unique: HashSet<i64> = claimed.iter().map(|(id, _)| *id).collect();
        assert_eq!(
            unique.len(),
            claimed.len(),
            "a job was claimed twice: {claimed:?}"
        );
        // 20 free jobs, plus only the first job of each of the two sync objects.
        assert_eq!(claimed.len(), 22, "{claimed:?}");
        for obj in ["vpc:a", "vpc:b"] {
            let holders = claimed
                .iter()
                .filter(|(_, s)| s.as_deref() == Some(obj))
                .count();
            assert_eq!(holders, 1, "{obj} runs {holders} jobs at once");
        }
    }
);
