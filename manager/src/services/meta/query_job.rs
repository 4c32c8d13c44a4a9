//! `queryAsyncJobResult`: the status and result of one job the caller may
//! see.

use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand};
use crate::server::registry::ALL;
use crate::server::{Ctx, Reply};
use crate::store::job;

use super::job_view::{JOB_FIELDS, job_view, may_see};

const JOB_ID: Arg<Id> = Arg::req("jobid", "the ID of the async job");

/// `queryAsyncJobResult`.
pub struct QueryAsyncJobResult {
    job_id: Uuid,
}

impl Command for QueryAsyncJobResult {
    const NAME: &'static str = "queryAsyncJobResult";

    fn spec() -> Spec {
        Spec::new("Returns the status and result of an async job")
            .roles(ALL)
            .param(JOB_ID)
            .returns("asyncjobs", JOB_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(QueryAsyncJobResult {
            job_id: args.need(&JOB_ID)?,
        })
    }
}

impl SyncCommand for QueryAsyncJobResult {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let id = self.job_id;
        let Some(j) = job::get_by_uuid(&ctx.app.db, id).await? else {
            return Err(Error::invalid_id(JOB_ID.name(), id));
        };
        if !may_see(ctx, j.account_id).await? {
            return Err(Error::permission_denied(format!(
                "Account {} does not have permission to access job {id}",
                ctx.caller.account_name
            )));
        }
        // CloudStack answers the job's fields directly under the envelope.
        Ok(Reply::Raw(job_view(ctx, &j).await?))
    }
}
