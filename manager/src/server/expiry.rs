//! Expiry and clean-up: expired login sessions and finished jobs are purged
//! on a schedule, so the tables do not grow without end.
//!
//! CloudStack keeps a finished job for `job.expire.minutes` (default 1440,
//! one day) and ends a session after the servlet's 30 idle minutes
//! ([`crate::server::auth::SESSION_TTL_MS`], slid on every use). Each purge
//! is a plain `DELETE … WHERE` by time: managers sharing one PostgreSQL
//! database may all run it, a row goes once, and nobody needs a lock.

use std::sync::Arc;
use std::time::Duration;

use crate::server::App;
use crate::store::{self, StoreError, config, job, session};

/// How often the purges run.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// CloudStack's default of `job.expire.minutes`.
const DEFAULT_JOB_EXPIRE_MINUTES: i64 = 1440;

/// What one purge removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    /// Expired login sessions.
    pub sessions: u64,
    /// Jobs finished more than `job.expire.minutes` ago.
    pub jobs: u64,
}

/// The epoch ms before which a finished job is purged, `minutes` after `now`.
pub fn job_cutoff(now: i64, minutes: i64) -> i64 {
    now.saturating_sub(minutes.max(1).saturating_mul(60_000))
}

/// Runs both purges once.
pub async fn purge_once(app: &App) -> Result<Purged, StoreError> {
    let now = store::now_ms();
    let sessions = session::purge_expired(&app.db, now).await?;
    let minutes = config::value_i64(&app.db, "job.expire.minutes")
        .await?
        .unwrap_or(DEFAULT_JOB_EXPIRE_MINUTES);
    let jobs = job::purge_finished(&app.db, job_cutoff(now, minutes)).await?;
    Ok(Purged { sessions, jobs })
}

/// Runs [`purge_once`] every [`PURGE_INTERVAL`], on one live manager of the
/// cluster.
pub async fn run(app: Arc<App>) {
    loop {
        tokio::time::sleep(PURGE_INTERVAL).await;
        if !crate::cluster::runs_loop(&app.db, app.jobs.owner(), crate::cluster::LOOP_EXPIRY).await
        {
            continue;
        }
        match purge_once(&app).await {
            Ok(Purged {
                sessions: 0,
                jobs: 0,
            }) => {}
            Ok(p) => tracing::info!(sessions = p.sessions, jobs = p.jobs, "expired rows purged"),
            Err(e) => tracing::warn!(error = %e, "purging expired sessions and jobs failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_jobs_are_kept_for_the_configured_minutes() {
        assert_eq!(job_cutoff(10 * 60_000, 3), 7 * 60_000);
        assert_eq!(job_cutoff(10 * 60_000, 0), 9 * 60_000, "at least a minute");
        assert!(job_cutoff(0, i64::MAX) < 0, "no overflow");
    }
}
