//! Async jobs (CloudStack table `async_job`, reference/cloudstack.md §1.8).
//!
//! Life of a job: [`insert`] (status 0, no owner) → a manager claims it ([`claim`] for
//! the job it just accepted, [`claim_next`] for any job left pending) → [`complete`]
//! (status 1 or 2 with the result). A manager that restarts lists what it owned with
//! [`jobs_in_progress_for`] and completes or [`release`]s each job.
//!
//! Jobs sharing a `sync_object` (e.g. `vpc:42`) run one at a time, oldest first: a job
//! is claimable only when no older in-progress job has the same sync object, and the
//! claimer must also take the object's row in `async_job_sync_lock` — the primary key
//! there keeps two managers from running jobs of one object even when ids commit out
//! of order on PostgreSQL. A job that cannot be claimed now stays pending; whoever
//! completes a job should call [`claim_next`] to start the next one.
//!
//! Kept whole because claiming a job (`claim`, `claim_next`) and its sync-object lock
//! (`take_sync_lock`, `free_sync_lock`) are one protocol on the queue order of `HEAD_OF_QUEUE`.

use sqlx::FromRow;

use super::query::{self, Where};
use super::text::{Stored, StoredOpt};
use super::{Backend, Exec, Listed, Page, Result, atomically, new_uuid, now_ms};
use uuid::Uuid;

/// `status` of a job that has not finished.
pub const STATUS_IN_PROGRESS: i64 = 0;
/// `status` of a job that succeeded.
pub const STATUS_SUCCEEDED: i64 = 1;
/// `status` of a job that failed.
pub const STATUS_FAILED: i64 = 2;
/// `status` of a cancelled job.
pub const STATUS_CANCELLED: i64 = 3;

/// An `async_job` row.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct Job {
    /// Internal key (also the queue order).
    pub id: i64,
    /// API `jobid`.
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    /// The user who submitted the command.
    pub user_id: i64,
    /// That user's account.
    pub account_id: i64,
    /// The command (CloudStack reports the command class name here).
    pub cmd: String,
    /// The command's parameters, JSON text.
    pub cmd_info: String,
    /// `jobinstancetype` (`Vpc`, `Network` …).
    pub instance_type: Option<String>,
    /// `jobinstanceid`: the UUID of the object the job works on.
    #[sqlx(try_from = "StoredOpt")]
    pub instance_uuid: Option<Uuid>,
    /// Jobs with the same sync object run one at a time.
    pub sync_object: Option<String>,
    /// One of the `STATUS_*` constants.
    pub status: i64,
    /// 0 on success, the error code (530, 431 …) on failure.
    pub result_code: i64,
    /// `object` or `text`.
    pub result_type: Option<String>,
    /// The `jobresult` JSON text.
    pub result: Option<String>,
    /// The manager running the job; None while it waits to be claimed.
    pub owner_manager: Option<String>,
    /// Submission time (epoch ms).
    pub created: i64,
    /// Last claim or state change (epoch ms).
    pub last_updated: i64,
    /// Completion time (epoch ms).
    pub completed: Option<i64>,
}

/// A job to submit.
#[derive(Clone, Debug, Default)]
pub struct NewJob {
    /// The submitting user.
    pub user_id: i64,
    /// That user's account.
    pub account_id: i64,
    /// The command name.
    pub cmd: String,
    /// The command's parameters, JSON text.
    pub cmd_info: String,
    /// `jobinstancetype`.
    pub instance_type: Option<String>,
    /// `jobinstanceid` (a UUID).
    pub instance_uuid: Option<Uuid>,
    /// Serialize with other jobs on this object (e.g. `vpc:42`).
    pub sync_object: Option<String>,
    /// The job's id when the caller chose it (`customjobid`); None: a new
    /// random UUID.
    pub uuid: Option<Uuid>,
}

/// How a job ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// [`STATUS_SUCCEEDED`], [`STATUS_FAILED`] or [`STATUS_CANCELLED`].
    pub status: i64,
    /// 0 on success, else the error code.
    pub result_code: i64,
    /// `object` or `text`.
    pub result_type: String,
    /// The `jobresult` JSON text.
    pub result: String,
}

impl Outcome {
    /// Success with a JSON result object (e.g. `{"vpc":{…}}`).
    pub fn succeeded(result: impl Into<String>) -> Outcome {
        Outcome {
            status: STATUS_SUCCEEDED,
            result_code: 0,
            result_type: "object".into(),
            result: result.into(),
        }
    }

    /// Failure with an error code and a JSON result (`{"errorcode":…,"errortext":…}`).
    pub fn failed(result_code: i64, result: impl Into<String>) -> Outcome {
        Outcome {
            status: STATUS_FAILED,
            result_code,
            result_type: "object".into(),
            result: result.into(),
        }
    }
}

/// Filters of a job list; every set field must match.
#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    /// Only jobs of this account.
    pub account_id: Option<i64>,
    /// Only jobs of this user.
    pub user_id: Option<i64>,
    /// Only jobs of accounts in the subtree rooted at this domain path.
    pub domain_path_prefix: Option<String>,
    /// Only this status.
    pub status: Option<i64>,
    /// Only jobs working on this object (UUID).
    pub instance_uuid: Option<Uuid>,
}

const COLUMNS: &str = "j.id, j.uuid, j.user_id, j.account_id, j.cmd, j.cmd_info, \
                       j.instance_type, j.instance_uuid, j.sync_object, j.status, \
                       j.result_code, j.result_type, j.result, j.owner_manager, j.created, \
                       j.last_updated, j.completed";

/// Submits a job: in progress, owned by nobody yet.
pub async fn insert<'a>(ex: impl Into<Exec<'a>>, new: NewJob) -> Result<Job> {
    let mut ex = ex.into();
    let now = now_ms();
    let id: i64 = on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "INSERT INTO async_job (uuid, user_id, account_id, cmd, cmd_info, instance_type, \
             instance_uuid, sync_object, status, result_code, created, last_updated) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, 0, $9, $9) RETURNING id",
        )
        .bind(new.uuid.map_or_else(new_uuid, |u| u.to_string()))
        .bind(new.user_id)
        .bind(new.account_id)
        .bind(&new.cmd)
        .bind(&new.cmd_info)
        .bind(&new.instance_type)
        .bind(new.instance_uuid.map(|u| u.to_string()))
        .bind(&new.sync_object)
        .bind(now)
        .fetch_one(c)
        .await?
    });
    Ok(get_by_id(ex, id).await?.expect("a job row just inserted"))
}

async fn get_where<'a>(ex: impl Into<Exec<'a>>, w: Where) -> Result<Vec<Job>> {
    let sql = format!("SELECT {COLUMNS} FROM async_job j{} ORDER BY j.id", w.sql());
    query::fetch_all(&mut ex.into(), sql, w.args()).await
}

/// A job by internal id.
pub async fn get_by_id<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<Option<Job>> {
    let mut w = Where::new();
    w.eq("j.id", id);
    Ok(get_where(ex, w).await?.into_iter().next())
}

/// A job by its API `jobid`.
pub async fn get_by_uuid<'a>(ex: impl Into<Exec<'a>>, uuid: Uuid) -> Result<Option<Job>> {
    let mut w = Where::new();
    w.eq("j.uuid", uuid);
    Ok(get_where(ex, w).await?.into_iter().next())
}

// A job may start only at the head of its sync object's queue.
const HEAD_OF_QUEUE: &str = "(j.sync_object IS NULL OR NOT EXISTS (SELECT 1 FROM async_job o \
     WHERE o.sync_object = j.sync_object AND o.status = 0 AND o.id < j.id))";

/// Claims one pending job for `owner` if it is at the head of its sync object's queue.
/// False if it is owned already, finished, or has to wait for another job.
pub async fn claim<'a>(ex: impl Into<Exec<'a>>, job_id: i64, owner: &str) -> Result<bool> {
    let owner = owner.to_string();
    atomically(ex.into(), move |tx| {
        Box::pin(async move {
            let mut ex = Exec::Tx(tx);
            let sql = format!(
                "UPDATE async_job SET owner_manager = $2, last_updated = $3 WHERE id IN \
                 (SELECT j.id FROM async_job j WHERE j.id = $1 AND j.status = 0 \
                  AND j.owner_manager IS NULL AND {HEAD_OF_QUEUE}) \
                 AND owner_manager IS NULL RETURNING id, sync_object"
            );
            let claimed: Option<(i64, Option<String>)> = on_db!(&mut ex, c => {
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(job_id)
                    .bind(&owner)
                    .bind(now_ms())
                    .fetch_optional(c)
                    .await?
            });
            match claimed {
                None => Ok(false),
                Some((id, sync_object)) => take_sync_lock(&mut ex, id, sync_object).await,
            }
        })
    })
    .await
}

/// Claims the oldest pending job that may start now, for `owner`. On PostgreSQL,
/// managers polling at the same time skip each other's candidates (`SKIP LOCKED`).
pub async fn claim_next<'a>(ex: impl Into<Exec<'a>>, owner: &str) -> Result<Option<Job>> {
    let owner = owner.to_string();
    atomically(ex.into(), move |tx| {
        Box::pin(async move {
            let mut ex = Exec::Tx(tx);
            let lock = match ex.backend() {
                Backend::Postgres => " FOR UPDATE SKIP LOCKED",
                // SQLite runs one writer at a time (BEGIN IMMEDIATE): nothing to skip.
                Backend::Sqlite => "",
            };
            let sql = format!(
                "UPDATE async_job SET owner_manager = $1, last_updated = $2 WHERE id = \
                 (SELECT j.id FROM async_job j WHERE j.status = 0 AND j.owner_manager IS NULL \
                  AND {HEAD_OF_QUEUE} ORDER BY j.id LIMIT 1{lock}) \
                 AND owner_manager IS NULL RETURNING id, sync_object"
            );
            let claimed: Option<(i64, Option<String>)> = on_db!(&mut ex, c => {
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(&owner)
                    .bind(now_ms())
                    .fetch_optional(c)
                    .await?
            });
            let Some((id, sync_object)) = claimed else {
                return Ok(None);
            };
            if !take_sync_lock(&mut ex, id, sync_object).await? {
                return Ok(None);
            }
            get_by_id(ex, id).await
        })
    })
    .await
}

/// Takes the sync-object lock for a job just claimed in this transaction, or undoes
/// the claim. A lock left by a job that is no longer running is taken over.
async fn take_sync_lock(
    ex: &mut Exec<'_>,
    job_id: i64,
    sync_object: Option<String>,
) -> Result<bool> {
    let Some(sync_object) = sync_object else {
        return Ok(true);
    };
    let taken = on_db!(ex, c => {
        sqlx::query(
            "INSERT INTO async_job_sync_lock (sync_object, job_id, acquired) VALUES ($1, $2, $3) \
             ON CONFLICT (sync_object) DO UPDATE SET job_id = excluded.job_id, \
             acquired = excluded.acquired \
             WHERE async_job_sync_lock.job_id = excluded.job_id OR NOT EXISTS \
             (SELECT 1 FROM async_job h WHERE h.id = async_job_sync_lock.job_id \
              AND h.status = 0 AND h.owner_manager IS NOT NULL)",
        )
        .bind(&sync_object)
        .bind(job_id)
        .bind(now_ms())
        .execute(c)
        .await?
        .rows_affected()
    });
    if taken == 1 {
        return Ok(true);
    }
    on_db!(ex, c => {
        sqlx::query("UPDATE async_job SET owner_manager = NULL WHERE id = $1")
            .bind(job_id)
            .execute(c)
            .await?;
    });
    Ok(false)
}

/// Records how a job ended and frees its sync object. False if it had ended already.
pub async fn complete<'a>(ex: impl Into<Exec<'a>>, job_id: i64, outcome: Outcome) -> Result<bool> {
    atomically(ex.into(), move |tx| {
        Box::pin(async move {
            let mut ex = Exec::Tx(tx);
            let now = now_ms();
            let done = on_db!(&mut ex, c => {
                sqlx::query(
                    "UPDATE async_job SET status = $2, result_code = $3, result_type = $4, \
                     result = $5, completed = $6, last_updated = $6 WHERE id = $1 AND status = 0",
                )
                .bind(job_id)
                .bind(outcome.status)
                .bind(outcome.result_code)
                .bind(&outcome.result_type)
                .bind(&outcome.result)
                .bind(now)
                .execute(c)
                .await?
                .rows_affected()
            });
            free_sync_lock(&mut ex, job_id).await?;
            Ok(done == 1)
        })
    })
    .await
}

/// Gives an in-progress job back to the queue (owner cleared, sync object freed), e.g.
/// when a manager shuts down before running it.
pub async fn release<'a>(ex: impl Into<Exec<'a>>, job_id: i64) -> Result<bool> {
    atomically(ex.into(), move |tx| {
        Box::pin(async move {
            let mut ex = Exec::Tx(tx);
            let done = on_db!(&mut ex, c => {
                sqlx::query(
                    "UPDATE async_job SET owner_manager = NULL, last_updated = $2 \
                     WHERE id = $1 AND status = 0",
                )
                .bind(job_id)
                .bind(now_ms())
                .execute(c)
                .await?
                .rows_affected()
            });
            free_sync_lock(&mut ex, job_id).await?;
            Ok(done == 1)
        })
    })
    .await
}

async fn free_sync_lock(ex: &mut Exec<'_>, job_id: i64) -> Result<()> {
    on_db!(ex, c => {
        sqlx::query("DELETE FROM async_job_sync_lock WHERE job_id = $1")
            .bind(job_id)
            .execute(c)
            .await?;
    });
    Ok(())
}

/// The in-progress jobs `owner` had claimed: what a restarting manager must fail or
/// resume.
pub async fn jobs_in_progress_for<'a>(ex: impl Into<Exec<'a>>, owner: &str) -> Result<Vec<Job>> {
    let mut w = Where::new();
    w.push("j.status = 0").eq("j.owner_manager", owner);
    get_where(ex, w).await
}

/// The id of the running job that holds `sync_object`, if any.
pub async fn sync_object_holder<'a>(
    ex: impl Into<Exec<'a>>,
    sync_object: &str,
) -> Result<Option<i64>> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "SELECT l.job_id FROM async_job_sync_lock l JOIN async_job j ON j.id = l.job_id \
             WHERE l.sync_object = $1 AND j.status = 0 AND j.owner_manager IS NOT NULL",
        )
        .bind(sync_object)
        .fetch_optional(c)
        .await?
    }))
}

/// Lists jobs, newest first.
pub async fn list<'a>(
    ex: impl Into<Exec<'a>>,
    filter: &JobFilter,
    page: Page,
) -> Result<Listed<Job>> {
    let mut w = Where::new();
    w.eq_opt("j.account_id", filter.account_id)
        .eq_opt("j.user_id", filter.user_id)
        .eq_opt("j.status", filter.status)
        .eq_opt("j.instance_uuid", filter.instance_uuid)
        .starts_with_opt("d.path", filter.domain_path_prefix.as_deref());
    let from =
        "async_job j JOIN account a ON a.id = j.account_id JOIN domain d ON d.id = a.domain_id";
    query::list(&mut ex.into(), COLUMNS, from, &w, "j.id DESC", page).await
}

/// Deletes the jobs that finished before `before` (epoch ms), CloudStack's
/// `job.expire.minutes` purge; returns how many. One statement, so several
/// managers running it at once each delete a row at most once, and a job
/// still holding a sync lock row is kept.
pub async fn purge_finished<'a>(ex: impl Into<Exec<'a>>, before: i64) -> Result<u64> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query(
            "DELETE FROM async_job WHERE status <> 0 AND completed IS NOT NULL \
             AND completed < $1 \
             AND NOT EXISTS (SELECT 1 FROM async_job_sync_lock l WHERE l.job_id = async_job.id)",
        )
        .bind(before)
        .execute(c)
        .await?
        .rows_affected()
    }))
}
