//! Commands about the API itself, one per file: `listApis`
//! ([`list_apis`]), `queryAsyncJobResult` ([`query_job`]) and
//! `listAsyncJobs` ([`list_jobs`]); the job object the last two share is
//! in [`job_view`].

mod job_view;
mod list_apis;
mod list_jobs;
mod query_job;

use crate::server::registry::Registry;

pub use list_apis::ListApis;
pub use list_jobs::ListAsyncJobs;
pub use query_job::QueryAsyncJobResult;

/// Registers the commands about the API.
pub fn register(registry: &mut Registry) {
    registry.sync::<ListApis>();
    registry.sync::<QueryAsyncJobResult>();
    registry.sync::<ListAsyncJobs>();
}
