//! The async job object that `queryAsyncJobResult` and `listAsyncJobs`
//! show, its documented fields, and who may see a job.

use serde_json::{Value, json};

use crate::error::Error;
use crate::server::registry::{FieldSpec, field};
use crate::server::{Ctx, Role, date};
use crate::store::{account, job, user};

/// The documented fields of a job.
pub(super) const JOB_FIELDS: &[FieldSpec] = &[
    field("jobid", "string", "the ID of the job"),
    field("accountid", "string", "the account that submitted the job"),
    field("userid", "string", "the user that submitted the job"),
    field("cmd", "string", "the command the job runs"),
    field(
        "jobstatus",
        "integer",
        "0 in progress, 1 succeeded, 2 failed",
    ),
    field(
        "jobresultcode",
        "integer",
        "0 on success, else the error code",
    ),
    field("jobresulttype", "string", "object or text"),
    field(
        "jobresult",
        "object",
        "the result: the object, or errorcode and errortext",
    ),
    field(
        "jobinstancetype",
        "string",
        "the type of the object the job works on",
    ),
    field(
        "jobinstanceid",
        "string",
        "the ID of the object the job works on",
    ),
    field("created", "date", "when the job was submitted"),
    field("completed", "date", "when the job finished"),
];

/// A job as queryAsyncJobResult and listAsyncJobs show it.
pub(super) async fn job_view(ctx: &Ctx, j: &job::Job) -> Result<Value, Error> {
    let account_uuid = account::get_by_id(&ctx.app.db, j.account_id)
        .await?
        .map(|a| a.uuid);
    let user_uuid = user::get_by_id(&ctx.app.db, j.user_id)
        .await?
        .map(|u| u.uuid);
    let result = j
        .result
        .as_deref()
        .and_then(|r| serde_json::from_str::<Value>(r).ok());
    Ok(json!({
        "jobid": j.uuid,
        "accountid": account_uuid,
        "userid": user_uuid,
        "cmd": j.cmd,
        "jobstatus": j.status,
        "jobprocstatus": 0,
        "jobresultcode": j.result_code,
        "jobresulttype": j.result_type.clone().unwrap_or_else(|| "object".into()),
        "jobresult": result,
        "jobinstancetype": j.instance_type,
        "jobinstanceid": j.instance_uuid,
        "created": date(j.created),
        "completed": j.completed.map(date),
    }))
}

/// Whether the caller may see jobs of account `account_id`: users their
/// own, domain admins their subtree, root everything.
pub(super) async fn may_see(ctx: &Ctx, account_id: i64) -> Result<bool, Error> {
    let caller = &ctx.caller;
    Ok(match caller.role {
        Role::Admin => true,
        Role::User => account_id == caller.account_id,
        Role::DomainAdmin => account::get_by_id(&ctx.app.db, account_id)
            .await?
            .is_some_and(|a| a.domain_path.starts_with(&caller.domain_path)),
    })
}
