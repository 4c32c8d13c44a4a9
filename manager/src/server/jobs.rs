//! Async jobs: rows in `async_job`, claimed by the manager that runs them.
//!
//! A command submits a job (row with status 0) and answers with its `jobid`.
//! The runner claims pending jobs oldest first (the store holds back a job
//! whose sync object, e.g. `vpc:7`, is held by a running job, so jobs on one
//! object run one at a time, also across managers sharing PostgreSQL), runs
//! each on its own task, and records the result for queryAsyncJobResult.
//!
//! Kept whole because submitting, claiming, running and recording a job are one protocol, driven by
//! the runner here.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::api::ApiError;
use crate::server::context::{App, Caller};
use crate::services::event as events;
use crate::store::{self, event, job, user};
use uuid::Uuid;

pub use crate::provision::vpc_sync;

/// The text of a job that a manager left running when it stopped.
pub const ABANDONED: &str = "The management server that was running this job stopped before the job finished; \
                             the job did not complete. Check the state of the object and run the command again.";

/// What a job body sees.
pub struct JobCtx {
    pub app: Arc<App>,
    pub caller: Caller,
    pub job: job::Job,
}

/// The job runner of one manager.
pub struct Jobs {
    owner: String,
    wake: Notify,
    /// The jobs this manager runs now, to wait for or stop at shutdown.
    running: std::sync::Mutex<std::collections::HashMap<i64, tokio::task::AbortHandle>>,
    /// Notified when a running job ends.
    ended: Notify,
    /// Set while this manager cannot renew its cluster heartbeat: it claims
    /// nothing and runs nothing (see [`Jobs::fence`]).
    fenced: std::sync::atomic::AtomicBool,
}

/// What a command needs to submit a job.
pub struct Submit<'a> {
    pub cmd: &'a str,
    pub info: Value,
    /// `jobinstancetype` and `jobinstanceid`.
    pub instance: Option<(&'a str, Uuid)>,
    /// Jobs with the same sync object run one at a time.
    pub sync_object: Option<String>,
    /// The job's id the caller chose (`customjobid`), already checked by
    /// [`check_custom_job_id`].
    pub custom_id: Option<Uuid>,
}

/// `customjobid`, which every async command takes (CloudStack's
/// `BaseAsyncCmd`): any caller may choose the id of the job it starts, as
/// long as it is a UUID in lower case (CloudStack's pattern) that no job has
/// yet. Checked before the command changes anything; CloudStack's texts.
pub async fn check_custom_job_id(
    db: &store::Db,
    value: Option<&str>,
) -> Result<Option<Uuid>, ApiError> {
    let Some(id) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if !is_lower_case_uuid(id) {
        return Err(ApiError::param(format!(
            "UUID: {id} doesn't follow the UUID format"
        )));
    }
    let uuid = Uuid::parse_str(id)
        .map_err(|_| ApiError::param(format!("UUID: {id} doesn't follow the UUID format")))?;
    if job::get_by_uuid(db, uuid).await?.is_some() {
        return Err(duplicate_job_id(id));
    }
    Ok(Some(uuid))
}

fn duplicate_job_id(id: &str) -> ApiError {
    ApiError::param(format!(
        "UUID: {id} already exists so can't create/update with custom id"
    ))
}

/// 8-4-4-4-12 lower-case hex digits (CloudStack's `IsUuidFormat`).
fn is_lower_case_uuid(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// Inserts a job row for the user and account `by` (user, account) in
/// `tx`, with its Scheduled event when its command has one (CloudStack's
/// ApiServer files it as it queues the job); the runner claims it once `tx`
/// commits.
pub async fn queue(
    tx: &mut store::Tx,
    by: (i64, i64),
    submit: Submit<'_>,
) -> Result<job::Job, store::StoreError> {
    let (user_id, account_id) = by;
    let row = job::insert(
        &mut *tx,
        job::NewJob {
            user_id,
            account_id,
            cmd: submit.cmd.to_string(),
            cmd_info: submit.info.to_string(),
            instance_type: submit.instance.map(|(t, _)| t.to_string()),
            instance_uuid: submit.instance.map(|(_, id)| id),
            sync_object: submit.sync_object,
            uuid: submit.custom_id,
        },
    )
    .await?;
    if let Some(action) = job_action(
        submit.cmd,
        user_id,
        account_id,
        submit.instance.map(|(t, id)| (t, id.to_string())),
    ) {
        let first = events::record(&mut *tx, &action, event::STATE_SCHEDULED, true, 0).await?;
        if first > 0 {
            event::link_job(&mut *tx, &row.uuid.to_string(), first).await?;
        }
    }
    Ok(row)
}

impl Jobs {
    /// A runner for manager `owner` (the job bodies are the registry's).
    pub fn new(owner: String) -> Self {
        Jobs {
            owner,
            wake: Notify::new(),
            running: Default::default(),
            ended: Notify::new(),
            fenced: Default::default(),
        }
    }

    /// Stops every job this manager runs and claims no more: its heartbeat
    /// could not be renewed for long enough that the other managers will
    /// soon count it Down and take its jobs over, and two managers must
    /// never run one job. The stopped jobs' rows stay in progress, for the
    /// take-over or for [`Jobs::unfence`]. Returns how many were stopped.
    pub fn fence(&self) -> usize {
        self.fenced.store(true, std::sync::atomic::Ordering::SeqCst);
        let running = std::mem::take(&mut *self.running());
        for task in running.values() {
            task.abort();
        }
        self.ended.notify_waiters();
        running.len()
    }

    /// Whether this manager is fenced off its jobs.
    pub fn is_fenced(&self) -> bool {
        self.fenced.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Ends a fence once the heartbeat is renewed again: the jobs it
    /// stopped that no other manager took over meanwhile are handled as
    /// after a restart ([`Jobs::recover`]: queued again or failed), then
    /// claiming resumes.
    pub async fn unfence(&self, app: &App) -> Result<usize, store::StoreError> {
        let handled = self.recover(app).await?;
        self.fenced
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.wake.notify_one();
        Ok(handled)
    }

    fn running(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<i64, tokio::task::AbortHandle>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many jobs this manager runs now.
    pub fn running_count(&self) -> usize {
        self.running().len()
    }

    /// At a graceful stop, after claiming stopped: waits up to `wait` for
    /// the running jobs to end, then stops those still running (their rows
    /// stay in progress, for [`Jobs::release_running`] to hand back).
    /// Returns how many were stopped.
    pub async fn drain(&self, wait: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let ended = self.ended.notified();
            if self.running().is_empty() {
                return 0;
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                break;
            }
        }
        let stopped: Vec<tokio::task::AbortHandle> =
            self.running().drain().map(|(_, task)| task).collect();
        for task in &stopped {
            task.abort();
        }
        stopped.len()
    }

    /// This manager's name in job rows.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Inserts a job for `caller` and wakes the runner; returns the job UUID.
    pub async fn submit(
        &self,
        app: &App,
        caller: &Caller,
        submit: Submit<'_>,
    ) -> Result<String, ApiError> {
        let mut tx = app.db.begin().await?;
        let custom_id = submit.custom_id;
        let row = queue(&mut tx, (caller.user_id, caller.account_id), submit)
            .await
            .map_err(|e| match (e, &custom_id) {
                // Taken between the check and the insert by another request.
                (store::StoreError::Duplicate(_), Some(id)) => duplicate_job_id(&id.to_string()),
                (e, _) => e.into(),
            })?;
        tx.commit().await?;
        self.wake.notify_one();
        Ok(row.uuid.to_string())
    }

    /// Wakes the runner (a job was queued in a transaction now committed).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Queues again every job this manager left in progress when it last
    /// stopped whose command is safe to run again, and fails the others:
    /// none stays pending forever. What such a job half-made is undone first
    /// (its command's `abandon`, see
    /// [`crate::server::command::AsyncCommand::abandon`]), while the job still
    /// holds its sync object, so a failed job means the same after a crash
    /// as after an ordinary failure; what a command does not undo, the
    /// background loops converge (rows are the intent: routers behind them
    /// get their whole state again, routers left Starting or Stopping are
    /// started again or stopped).
    pub async fn recover(&self, app: &App) -> Result<usize, store::StoreError> {
        let abandoned = job::jobs_in_progress_for(&app.db, &self.owner).await?;
        for j in &abandoned {
            if reruns(app, j) {
                job::release(&app.db, j.id).await?;
                tracing::warn!(job = %j.uuid, cmd = %j.cmd, "queued again a job left running by the previous start");
                continue;
            }
            fail_abandoned(app, j, ABANDONED).await?;
            tracing::warn!(job = %j.uuid, cmd = %j.cmd, "failed a job left running by the previous start");
        }
        Ok(abandoned.len())
    }

    /// Takes over the jobs of managers that are gone (left, or silent past
    /// `cluster.heartbeat.threshold`). A job whose command is safe to run
    /// again ([`crate::server::command::AsyncCommand::RERUN`]) goes back to
    /// the queue and runs again; any other fails as [`Jobs::recover`] fails
    /// its own after a crash: what it half-made is undone, its sync object
    /// freed, its result says which manager stopped. Each job is moved to
    /// this manager first, so two live managers never both handle one.
    /// Returns how many were taken over.
    pub async fn take_over(&self, app: &App) -> Result<usize, store::StoreError> {
        let threshold = crate::cluster::heartbeat_threshold_ms(&app.db)
            .await
            .unwrap_or(crate::cluster::DEFAULT_HEARTBEAT_THRESHOLD_MS);
        let orphans =
            store::cluster::orphaned_jobs(&app.db, &self.owner, store::now_ms(), threshold).await?;
        let mut taken = 0;
        for (id, from) in orphans {
            if !store::cluster::take_over_job(&app.db, id, &from, &self.owner).await? {
                continue;
            }
            let Some(j) = job::get_by_id(&app.db, id).await? else {
                continue;
            };
            if reruns(app, &j) {
                // Back to the queue, its sync object freed: the next claim
                // (here or on another manager) runs it again in its turn.
                job::release(&app.db, id).await?;
                tracing::warn!(job = %j.uuid, cmd = %j.cmd, from = %from, "queued again a job of a manager that stopped answering");
                taken += 1;
                continue;
            }
            if let Err(e) = fail_abandoned(app, &j, &taken_over_text(&from)).await {
                // Give it back, so the next round (here or on another
                // manager) tries again instead of it staying ours, in
                // progress, with nobody running it.
                store::cluster::take_over_job(&app.db, id, &self.owner, &from).await?;
                return Err(e);
            }
            tracing::warn!(job = %j.uuid, cmd = %j.cmd, from = %from, "failed a job of a manager that stopped answering");
            taken += 1;
        }
        Ok(taken)
    }

    /// Gives every job this manager is running back to the queue, at a
    /// graceful shutdown: the next manager to look (this one restarted, or
    /// another sharing PostgreSQL) claims and runs them again, so job bodies
    /// are written to be safe to run twice.
    pub async fn release_running(&self, app: &App) -> Result<usize, store::StoreError> {
        let running = job::jobs_in_progress_for(&app.db, &self.owner).await?;
        for j in &running {
            job::release(&app.db, j.id).await?;
            tracing::info!(job = %j.uuid, cmd = %j.cmd, "job released for a later start");
        }
        Ok(running.len())
    }

    /// Claims and starts pending jobs until `app` is dropped; wakes on every
    /// submission and completion, and every half second for jobs submitted
    /// through other managers.
    pub async fn run(app: Arc<App>) {
        loop {
            while !app.jobs.is_fenced() {
                match job::claim_next(&app.db, &app.jobs.owner).await {
                    Ok(Some(claimed)) => {
                        let id = claimed.id;
                        // Registered before it can end: the task removes
                        // itself when done, under the same lock.
                        let mut running = app.jobs.running();
                        let task = tokio::spawn(execute(app.clone(), claimed));
                        if app.jobs.is_fenced() {
                            // Fenced while claiming: the row stays in
                            // progress for the take-over or the unfence.
                            task.abort();
                            continue;
                        }
                        running.insert(id, task.abort_handle());
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "claiming jobs failed");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = app.jobs.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }
}

/// Whether the job's command runs again after its manager stopped
/// ([`crate::server::command::AsyncCommand::RERUN`]).
fn reruns(app: &App, j: &job::Job) -> bool {
    app.registry
        .job_entry(&j.cmd)
        .is_some_and(|entry| entry.rerun)
}

/// The result of a job taken over from manager `from`.
pub fn taken_over_text(from: &str) -> String {
    format!(
        "The management server {from} that was running this job stopped answering before the \
         job finished; the job did not complete. Check the state of the object and run the \
         command again."
    )
}

/// Undoes what an abandoned job made (its command's `abandon`) and fails
/// it with `text` (530).
async fn fail_abandoned(app: &App, j: &job::Job, text: &str) -> Result<(), store::StoreError> {
    if let Some(entry) = app.registry.job_entry(&j.cmd) {
        match (entry.abandon)(app, &j.cmd_info).await {
            Ok(()) => {
                tracing::warn!(job = %j.uuid, cmd = %j.cmd, "undid what an abandoned job had made")
            }
            Err(e) => {
                tracing::error!(job = %j.uuid, cmd = %j.cmd, error = %e, "undoing an abandoned job failed")
            }
        }
    }
    let result = json!({ "errorcode": 530, "errortext": text }).to_string();
    job::complete(&app.db, j.id, job::Outcome::failed(530, result)).await?;
    Ok(())
}

/// Takes over the jobs of gone managers at every heartbeat, until aborted.
pub async fn run_takeover(app: Arc<App>) {
    loop {
        tokio::time::sleep(crate::cluster::heartbeat_interval(&app.db).await).await;
        match app.jobs.take_over(&app).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(
                    taken = n,
                    "took over the jobs of a manager that stopped answering"
                );
                app.jobs.wake.notify_one();
            }
            Err(e) => tracing::warn!(error = %e, "taking over the jobs of gone managers failed"),
        }
    }
}

async fn caller_of_job(app: &App, j: &job::Job) -> Result<Caller, ApiError> {
    let identity = user::identity_by_user_id(&app.db, j.user_id)
        .await?
        .ok_or_else(|| ApiError::internal("the job's user no longer exists"))?;
    Ok(Caller::from(identity))
}

/// The event an async command's job leaves, if its command has one.
fn job_action<'a>(
    cmd: &str,
    user_id: i64,
    account_id: i64,
    resource: Option<(&'a str, String)>,
) -> Option<events::Action<'a>> {
    events::event_of(cmd).map(|(event_type, what)| events::Action {
        event_type,
        what,
        user_id,
        account_id,
        resource,
    })
}

/// Stores a job's result and, for a command with an event, its Completed
/// event (INFO or ERROR) in the same transaction.
async fn complete_with_event(
    app: &App,
    claimed: &job::Job,
    row: job::Outcome,
    ok: bool,
) -> Result<(), store::StoreError> {
    let mut tx = app.db.begin().await?;
    job::complete(&mut tx, claimed.id, row).await?;
    if let Some(action) = job_action(
        &claimed.cmd,
        claimed.user_id,
        claimed.account_id,
        claimed_resource(claimed),
    ) {
        let first = event::start_of_job(&mut tx, &claimed.uuid.to_string()).await?;
        events::record(&mut tx, &action, event::STATE_COMPLETED, ok, first).await?;
    }
    tx.commit().await
}

fn claimed_resource(claimed: &job::Job) -> Option<(&str, String)> {
    match (&claimed.instance_type, claimed.instance_uuid) {
        (Some(t), Some(id)) => Some((t.as_str(), id.to_string())),
        _ => None,
    }
}

/// Files the Started event of a job (CloudStack's interceptor does when
/// the job's service method begins). A failure to write it is logged: the
/// job runs anyway.
async fn record_started(app: &App, claimed: &job::Job) {
    let Some(action) = job_action(
        &claimed.cmd,
        claimed.user_id,
        claimed.account_id,
        claimed_resource(claimed),
    ) else {
        return;
    };
    let written = async {
        let first = event::start_of_job(&app.db, &claimed.uuid.to_string()).await?;
        events::record(&app.db, &action, event::STATE_STARTED, true, first).await
    }
    .await;
    if let Err(e) = written {
        tracing::warn!(job = %claimed.uuid, error = %e, "recording a job's Started event failed");
    }
}

async fn execute(app: Arc<App>, claimed: job::Job) {
    let started = std::time::Instant::now();
    // From the submission to this start (milliseconds: the row's clock).
    let queued_ms = store::now_ms().saturating_sub(claimed.created);
    record_started(&app, &claimed).await;
    let body_started = std::time::Instant::now();
    let outcome = run_body(&app, &claimed).await;
    let body_us = body_started.elapsed().as_micros() as u64;
    let (status, code) = match &outcome {
        Ok(_) => ("succeeded", 0),
        Err(e) => ("failed", e.code),
    };
    let row = match outcome {
        Ok(result) => job::Outcome::succeeded(result.to_string()),
        Err(e) => job::Outcome::failed(
            i64::from(e.code),
            json!({ "errorcode": e.code, "errortext": e.text }).to_string(),
        ),
    };
    if let Err(e) = complete_with_event(&app, &claimed, row.clone(), status == "succeeded").await {
        // The result matters more than its event: stored without it.
        tracing::warn!(job = %claimed.uuid, error = %e, "recording a job's Completed event failed");
        if let Err(e) = job::complete(&app.db, claimed.id, row).await {
            tracing::error!(job = %claimed.uuid, error = %e, "recording a job result failed");
        }
    }
    tracing::info!(job = %claimed.uuid, cmd = %claimed.cmd, status, code, queued_ms, body_us, micros = started.elapsed().as_micros() as u64, "job finished");
    app.jobs.running().remove(&claimed.id);
    app.jobs.ended.notify_waiters();
    // A job waiting on the same sync object can start now.
    app.jobs.wake.notify_one();
}

async fn run_body(app: &Arc<App>, claimed: &job::Job) -> Result<Value, ApiError> {
    let entry = app
        .registry
        .job_entry(&claimed.cmd)
        .ok_or_else(|| ApiError::internal(format!("no job body for {}", claimed.cmd)))?;
    let ctx = JobCtx {
        app: app.clone(),
        caller: caller_of_job(app, claimed).await?,
        job: claimed.clone(),
    };
    (entry.run)(&ctx, &claimed.cmd_info).await
}

#[cfg(test)]
mod drain_tests {
    use super::*;

    fn register(jobs: &Jobs, id: i64, task: &tokio::task::JoinHandle<()>) {
        jobs.running().insert(id, task.abort_handle());
    }

    #[tokio::test]
    async fn a_stop_waits_for_jobs_that_end_in_time() {
        let jobs = Arc::new(Jobs::new("m".into()));
        let mine = jobs.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            mine.running().remove(&1);
            mine.ended.notify_waiters();
        });
        register(&jobs, 1, &task);
        assert_eq!(jobs.drain(Duration::from_secs(30)).await, 0);
        assert!(task.await.is_ok(), "the job ran to its end");
        assert_eq!(jobs.running_count(), 0);
    }

    #[tokio::test]
    async fn a_stop_stops_jobs_still_running_at_its_deadline() {
        let jobs = Jobs::new("m".into());
        let task = tokio::spawn(async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        register(&jobs, 2, &task);
        assert_eq!(jobs.drain(Duration::from_millis(50)).await, 1);
        assert!(task.await.expect_err("stopped").is_cancelled());
        assert_eq!(jobs.running_count(), 0);
    }
}
