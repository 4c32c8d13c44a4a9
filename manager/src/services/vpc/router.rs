//! VPC routers (reference §2.4 listRouters; stop/start/reboot): for admins
//! and domain admins, never for users.

use serde_json::json;

use crate::api::Params;
use crate::error::Error;
use crate::provision;
use crate::server::jobs::{JobBody, vpc_sync};
use crate::server::registry::{
    ADMINS, CommandSpec, FieldSpec, Kind, ParamType::*, field, opt, req,
};
use crate::server::{App, Ctx, Reply, page};
use crate::services::owner;
use crate::services::related::Related;
use crate::store::{Db, network, router, vpc, zone};
use crate::{handler, job_body};

use super::views::router_view;

fn router_fields() -> Vec<FieldSpec> {
    vec![
        field("id", "string", "the ID of the router"),
        field("name", "string", "the name of the router (r-<id>-VM)"),
        field(
            "state",
            "string",
            "Starting, Running, Stopping, Stopped, Error",
        ),
        field("vpcid", "string", "the VPC the router serves"),
        field("vpcname", "string", "the name of that VPC"),
        field("zoneid", "string", "the zone of the router"),
        field("publicip", "string", "the router's source NAT address"),
        field("nic", "list", "the router's NICs"),
        field("role", "string", "VIRTUAL_ROUTER"),
        field(
            "configcurrent",
            "boolean",
            "whether the router has applied its latest configuration",
        ),
        field(
            "configgeneration",
            "long",
            "the generation of the wanted configuration",
        ),
        field(
            "appliedgeneration",
            "long",
            "the generation the router confirmed",
        ),
        field("account", "string", "the owner of the router's VPC"),
        field("domainid", "string", "the owner's domain"),
        field("created", "date", "when the router was created"),
    ]
}

pub fn commands() -> Vec<CommandSpec> {
    let mut list_params = vec![
        opt("id", Uuid, "the ID of the router"),
        opt("name", String, "the name of the router"),
        opt("state", String, "only routers in this state"),
        opt("zoneid", Uuid, "only routers of this zone"),
        opt("vpcid", Uuid, "only the router of this VPC"),
        opt("networkid", Uuid, "only routers serving this tier"),
        opt(
            "forvpc",
            Boolean,
            "true: only VPC routers (all routers are)",
        ),
        opt("podid", Uuid, "accepted; there are no pods"),
        opt("hostid", Uuid, "accepted; there are no hosts"),
        opt("clusterid", Uuid, "accepted; there are no clusters"),
        opt(
            "version",
            String,
            "accepted; every router runs this version",
        ),
        opt(
            "healthchecksfailed",
            Boolean,
            "accepted; no health checks fail",
        ),
        opt(
            "fetchhealthcheckresults",
            Boolean,
            "accepted; no health checks run",
        ),
    ];
    list_params.extend(owner::list_params());
    let one = |name, description, handler| CommandSpec {
        name,
        description,
        kind: Kind::Async,
        roles: ADMINS,
        params: vec![req("id", Uuid, "the ID of the router")],
        object: "router",
        response: router_fields(),
        since: "",
        handler,
        job: None,
    };
    vec![
        CommandSpec {
            name: "listRouters",
            description: "Lists VPC virtual routers",
            kind: Kind::Sync,
            roles: ADMINS,
            params: list_params,
            object: "router",
            response: router_fields(),
            since: "",
            handler: list_routers,
            job: None,
        },
        with_forced(
            one("stopRouter", "Stops a VPC virtual router", stop_router),
            "true: the router is marked Stopped even when it could not be stopped",
        ),
        one(
            "startRouter",
            "Starts a VPC virtual router with its whole configuration",
            start_router,
        ),
        with_forced(
            one(
                "rebootRouter",
                "Reboots a VPC virtual router and re-sends its whole configuration",
                reboot_router,
            ),
            "true: a forced stop (even when the router cannot be stopped), then a start",
        ),
    ]
}

pub fn job_bodies() -> Vec<(&'static str, JobBody)> {
    vec![
        ("stopRouter", stop_router_job),
        ("startRouter", start_router_job),
        ("rebootRouter", reboot_router_job),
    ]
}

async fn router_param(ctx: &Ctx, params: &Params) -> Result<router::Router, Error> {
    let id = params.required_uuid(ctx.command, "id")?.to_string();
    let r = router::get_by_uuid(&ctx.app.db, &id)
        .await?
        .filter(|r| r.removed.is_none())
        .ok_or_else(|| Error::invalid_id("id", &id))?;
    owner::check_access(ctx, r.account_id, &r.domain_path, &format!("router {id}"))?;
    Ok(r)
}

/// `spec` with CloudStack's `forced` parameter (stopRouter, rebootRouter).
fn with_forced(mut spec: CommandSpec, description: &'static str) -> CommandSpec {
    spec.params.push(opt("forced", Boolean, description));
    spec
}

/// Stops a router; `forced`, a router that could not be stopped is marked
/// Stopped all the same (CloudStack's forced stop), the failure logged.
async fn stop(app: &crate::server::App, r: &router::Router, forced: bool) -> Result<(), Error> {
    match provision::vpc::stop_router(&app.db, &app.network, r).await {
        Err(e) if forced => {
            tracing::warn!(router = %r.uuid, error = %e, "forced stop: the router could not be stopped; marked Stopped");
            router::set_state(&app.db, r.id, router::STATE_STOPPED).await?;
            Ok(())
        }
        other => other,
    }
}

async fn submit(ctx: &Ctx, params: &Params, r: &router::Router) -> Result<Reply, Error> {
    let forced = params.boolean("forced")?.unwrap_or(false);
    let job_id = ctx
        .submit_job(
            json!({ "id": r.id, "forced": forced }),
            Some(("DomainRouter", &r.uuid)),
            vpc_sync(r.vpc_id.unwrap_or_default()),
        )
        .await?;
    Ok(Reply::Job { job_id })
}

async fn router_result(app: &App, id: i64) -> Result<serde_json::Value, Error> {
    let r = router::get_by_id(&app.db, id)
        .await?
        .ok_or_else(|| Error::invalid("The router was destroyed meanwhile"))?;
    let hypervisor = app.network.hypervisor();
    let related = Related::for_routers(&app.db, std::slice::from_ref(&r)).await?;
    Ok(json!({ "router": router_view(&related, &r, true, hypervisor) }))
}

async fn live_router(db: &Db, id: i64) -> Result<router::Router, Error> {
    router::get_by_id(db, id)
        .await?
        .filter(|r| r.removed.is_none())
        .ok_or_else(|| Error::invalid("The router was destroyed meanwhile"))
}

handler!(stop_router, |ctx, params| {
    let r = router_param(ctx, params).await?;
    if r.state == router::STATE_STOPPED {
        return Err(Error::invalid(format!(
            "Router {} is already Stopped",
            r.uuid
        )));
    }
    submit(ctx, params, &r).await
});

job_body!(stop_router_job, |job, info| {
    let app = &job.app;
    let r = live_router(&app.db, info["id"].as_i64().unwrap_or_default()).await?;
    let _guard = app.network.lock_vpc(r.vpc_id.unwrap_or_default()).await;
    stop(app, &r, info["forced"].as_bool().unwrap_or(false)).await?;
    router_result(app, r.id).await
});

handler!(start_router, |ctx, params| {
    let r = router_param(ctx, params).await?;
    if r.state == router::STATE_RUNNING {
        return Err(Error::invalid(format!(
            "Router {} is already Running",
            r.uuid
        )));
    }
    submit(ctx, params, &r).await
});

job_body!(start_router_job, |job, info| {
    let app = &job.app;
    let r = live_router(&app.db, info["id"].as_i64().unwrap_or_default()).await?;
    let _guard = app.network.lock_vpc(r.vpc_id.unwrap_or_default()).await;
    provision::vpc::start_router(&app.db, &app.network, &r).await?;
    router_result(app, r.id).await
});

handler!(reboot_router, |ctx, params| {
    let r = router_param(ctx, params).await?;
    if r.state != router::STATE_RUNNING {
        return Err(Error::invalid(format!(
            "Router {} is {}; only a Running router can be rebooted",
            r.uuid, r.state
        )));
    }
    submit(ctx, params, &r).await
});

job_body!(reboot_router_job, |job, info| {
    let app = &job.app;
    let r = live_router(&app.db, info["id"].as_i64().unwrap_or_default()).await?;
    let _guard = app.network.lock_vpc(r.vpc_id.unwrap_or_default()).await;
    if info["forced"].as_bool().unwrap_or(false) {
        stop(app, &r, true).await?;
        let stopped = live_router(&app.db, r.id).await?;
        provision::vpc::start_router(&app.db, &app.network, &stopped).await?;
    } else {
        provision::vpc::reboot_router(&app.db, &app.network, &r).await?;
    }
    router_result(app, r.id).await
});

handler!(list_routers, |ctx, params| {
    let db = &ctx.app.db;
    let empty = Ok(Reply::List {
        count: 0,
        items: vec![],
    });
    if params.boolean("forvpc")? == Some(false) {
        return empty;
    }
    let scope = owner::list_scope(ctx, params).await?;
    let mut filter = router::RouterFilter {
        uuids: params.uuid("id")?.map(|u| vec![u.to_string()]),
        keyword: params.string("keyword")?.filter(|k| !k.is_empty()),
        state: params.string("state")?.filter(|s| !s.is_empty()),
        name: params.string("name")?.filter(|n| !n.is_empty()),
        account_id: scope.account_id,
        domain_id: scope.domain_id,
        domain_path_prefix: scope.domain_path_prefix,
        ..Default::default()
    };
    if let Some(z) = params.uuid("zoneid")? {
        match zone::get_by_uuid(db, &z.to_string()).await? {
            Some(z) => filter.zone_id = Some(z.id),
            None => return empty,
        }
    }
    let mut vpc_id = None;
    if let Some(v) = params.uuid("vpcid")? {
        match vpc::get_by_uuid(db, &v.to_string()).await? {
            Some(v) => vpc_id = Some(v.id),
            None => return empty,
        }
    }
    if let Some(n) = params.uuid("networkid")? {
        match network::get_by_uuid(db, &n.to_string()).await? {
            Some(n) if n.vpc_id.is_some() && vpc_id.is_none_or(|v| Some(v) == n.vpc_id) => {
                vpc_id = n.vpc_id;
            }
            _ => return empty,
        }
    }
    filter.vpc_id = vpc_id;
    let page = page(ctx, params).await?;
    let listed = router::list(db, &filter, page).await?;
    let related = Related::for_routers(db, &listed.items).await?;
    let hypervisor = ctx.app.network.hypervisor();
    let items = listed
        .items
        .iter()
        .map(|r| router_view(&related, r, true, hypervisor))
        .collect();
    Ok(Reply::List {
        count: listed.total as u64,
        items,
    })
});
