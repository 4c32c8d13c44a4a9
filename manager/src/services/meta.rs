//! Commands about the API itself: `listApis`, `queryAsyncJobResult`,
//! `listAsyncJobs`.

use serde_json::{Value, json};

use crate::error::Error;
use crate::handler;
use crate::server::registry::{ALL, CommandSpec, Kind, ParamType::*, field, opt, req};
use crate::server::{Ctx, Reply, Role, date, page};
use crate::store::{account, job, user};

/// The commands of this module.
pub fn commands() -> Vec<CommandSpec> {
    vec![
        CommandSpec {
            name: "listApis",
            description: "Lists the APIs the caller may call, with their parameters and responses",
            kind: Kind::Sync,
            roles: ALL,
            params: vec![opt("name", String, "only the API with this name")],
            object: "api",
            response: vec![
                field("name", "string", "the name of the API"),
                field("description", "string", "what the API does"),
                field("isasync", "boolean", "true when the API answers with a job"),
                field("params", "list", "the API's parameters"),
                field("response", "list", "the fields of the API's response"),
            ],
            since: "3.0.0",
            handler: list_apis,
            job: None,
        },
        CommandSpec {
            name: "queryAsyncJobResult",
            description: "Returns the status and result of an async job",
            kind: Kind::Sync,
            roles: ALL,
            params: vec![req("jobid", Uuid, "the ID of the async job")],
            object: "asyncjobs",
            response: job_fields(),
            since: "",
            handler: query_async_job_result,
            job: None,
        },
        CommandSpec {
            name: "listAsyncJobs",
            description: "Lists the async jobs the caller may see",
            kind: Kind::Sync,
            roles: ALL,
            params: vec![
                opt("startdate", Date, "only jobs created on or after this date"),
                opt(
                    "listall",
                    Boolean,
                    "all jobs the caller may see, not only its own",
                ),
                opt("page", Integer, "the page to return"),
                opt("pagesize", Integer, "the number of jobs per page"),
                opt("keyword", String, "not used for jobs"),
            ],
            object: "asyncjobs",
            response: job_fields(),
            since: "",
            handler: list_async_jobs,
            job: None,
        },
    ]
}

fn job_fields() -> Vec<crate::server::registry::FieldSpec> {
    vec![
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
    ]
}

fn api_entry(spec: &CommandSpec) -> Value {
    let params: Vec<Value> = spec
        .params
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "description": p.description,
                "type": p.ty.name(),
                "length": p.length,
                "required": p.required,
                "since": p.since,
                "related": "",
            })
        })
        .collect();
    let response: Vec<Value> = spec
        .response
        .iter()
        .map(|f| json!({ "name": f.name, "description": f.description, "type": f.ty }))
        .collect();
    json!({
        "name": spec.name,
        "description": spec.description,
        "since": spec.since,
        "isasync": spec.kind != Kind::Sync,
        "related": "",
        "type": "",
        "params": params,
        "response": response,
    })
}

handler!(list_apis, |ctx, params| {
    let name = params.string("name")?;
    let apis: Vec<Value> = ctx
        .app
        .registry
        .all()
        .filter(|spec| spec.allows(ctx.caller.role))
        .filter(|spec| name.as_deref().is_none_or(|n| n == spec.name))
        .map(api_entry)
        .collect();
    Ok(Reply::List {
        count: apis.len() as u64,
        items: apis,
    })
});

/// A job as queryAsyncJobResult and listAsyncJobs show it.
async fn job_view(ctx: &Ctx, j: &job::Job) -> Result<Value, Error> {
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
async fn may_see(ctx: &Ctx, account_id: i64) -> Result<bool, Error> {
    let caller = &ctx.caller;
    Ok(match caller.role {
        Role::Admin => true,
        Role::User => account_id == caller.account_id,
        Role::DomainAdmin => account::get_by_id(&ctx.app.db, account_id)
            .await?
            .is_some_and(|a| a.domain_path.starts_with(&caller.domain_path)),
    })
}

handler!(query_async_job_result, |ctx, params| {
    let id = params.required_uuid(ctx.command, "jobid")?.to_string();
    let found = job::get_by_uuid(&ctx.app.db, &id).await?;
    let Some(j) = found else {
        return Err(Error::invalid_id("jobid", &id));
    };
    if !may_see(ctx, j.account_id).await? {
        return Err(Error::permission_denied(format!(
            "Account {} does not have permission to access job {id}",
            ctx.caller.account_name
        )));
    }
    Ok(Reply::Raw(job_view(ctx, &j).await?))
});

handler!(list_async_jobs, |ctx, params| {
    let listall = params.boolean("listall")?.unwrap_or(false);
    let caller = &ctx.caller;
    let mut filter = job::JobFilter::default();
    match (caller.role, listall) {
        (Role::User, _) | (_, false) => filter.account_id = Some(caller.account_id),
        (Role::DomainAdmin, true) => filter.domain_path_prefix = Some(caller.domain_path.clone()),
        (Role::Admin, true) => {}
    }
    let listed = job::list(&ctx.app.db, &filter, page(ctx, params).await?).await?;
    let mut items = Vec::with_capacity(listed.items.len());
    for j in &listed.items {
        items.push(job_view(ctx, j).await?);
    }
    Ok(Reply::List {
        count: listed.total as u64,
        items,
    })
});
