//! Static routes: createStaticRoute, deleteStaticRoute and listStaticRoutes
//! (reference §2.7, §3.7).
//!
//! A route goes through a Ready private gateway or to a next hop the VPC
//! reaches. Its CIDR is checked during the request (outside the VPC CIDR,
//! link-local and `denied.routes`; no overlap with the VPC's other routes,
//! 537) and stored Staged; the job makes it Add, pushes the VPC's whole
//! route set and makes it Active, or deletes it when the router refuses.
//! Deleting revokes the route, pushes the set without it, then removes it.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_json::{Value, json};

use super::{check_vpc_access, log_revert, scope_filter, vpc_by_id, vpc_param, vpc_sync};
use crate::error::Error;
use crate::orchestration::VpcProvider;
use crate::provision::{self, Generation};
use crate::rules::route::{self as rule, GatewayState, Target};
use crate::server::jobs::JobBody;
use crate::server::registry::{ALL, CommandSpec, FieldSpec, Kind, ParamType::*, field, opt, req};
use crate::server::{App, Ctx, Reply, page};
use crate::services::owner;
use crate::services::related::Related;
use crate::store::{Db, Page, gateway, vlan, vpc};
use crate::{handler, job_body};

fn route_fields() -> Vec<FieldSpec> {
    vec![
        field("id", "string", "the ID of the static route"),
        field("state", "string", "Staged, Add, Active or Revoke"),
        field("cidr", "string", "the destination CIDR"),
        field("vpcid", "string", "the VPC of the route"),
        field(
            "vpcgatewayid",
            "string",
            "the private gateway the route goes through",
        ),
        field(
            "vpcgatewayip",
            "string",
            "the address of that private gateway",
        ),
        field(
            "nexthop",
            "string",
            "the next hop of a route without a gateway",
        ),
        field("account", "string", "the owner's account"),
        field("domainid", "string", "the owner's domain"),
        field("domain", "string", "the name of the owner's domain"),
        field("tags", "list", "the tags of the route"),
    ]
}

/// The commands of this file.
pub(super) fn commands() -> Vec<CommandSpec> {
    let mut list_params = vec![
        opt("id", Uuid, "the ID of the static route"),
        opt("vpcid", Uuid, "only routes of this VPC"),
        opt(
            "gatewayid",
            Uuid,
            "only routes through this private gateway",
        ),
        opt("state", String, "only routes in this state"),
    ];
    list_params.extend(owner::list_params());
    vec![
        CommandSpec {
            name: "createStaticRoute",
            description: "Creates a static route of a VPC through a private gateway or to a next hop",
            kind: Kind::AsyncCreate,
            roles: ALL,
            params: vec![
                req("cidr", String, "the destination CIDR"),
                opt(
                    "gatewayid",
                    Uuid,
                    "the private gateway the route goes through",
                ),
                opt(
                    "nexthop",
                    String,
                    "instead of gatewayid: the next-hop address (needs vpcid)",
                ),
                opt("vpcid", Uuid, "the VPC (required with nexthop)"),
            ],
            object: "staticroute",
            response: route_fields(),
            since: "",
            handler: create_route,
            job: None,
        },
        CommandSpec {
            name: "deleteStaticRoute",
            description: "Deletes a static route",
            kind: Kind::Async,
            roles: ALL,
            params: vec![req("id", Uuid, "the ID of the static route")],
            object: "staticroute",
            response: vec![],
            since: "",
            handler: delete_route,
            job: None,
        },
        CommandSpec {
            name: "listStaticRoutes",
            description: "Lists static routes",
            kind: Kind::Sync,
            roles: ALL,
            params: list_params,
            object: "staticroute",
            response: route_fields(),
            since: "",
            handler: list_routes,
            job: None,
        },
    ]
}

/// The job bodies of this file.
pub(super) fn job_bodies() -> Vec<(&'static str, JobBody)> {
    vec![
        ("createStaticRoute", create_route_job),
        ("deleteStaticRoute", delete_route_job),
    ]
}

/// `staticroute` of a response; `related` holds the page's VPCs, gateways
/// and owners ([`Related::for_routes`]).
fn route_view(related: &Related, r: &gateway::StaticRoute) -> Result<Value, Error> {
    let v = related
        .vpc(r.vpc_id)
        .ok_or_else(|| Error::internal(format!("VPC {} is gone", r.vpc_id)))?;
    let mut view = json!({
        "id": r.uuid,
        "state": r.state,
        "cidr": r.cidr,
        "vpcid": v.uuid,
        "tags": [],
    });
    if let Some(id) = r.vpc_gateway_id
        && let Some(g) = related.private_gateway(id)
    {
        view["vpcgatewayid"] = json!(g.uuid);
        view["vpcgatewayip"] = json!(g.ip4_address);
    }
    if let Some(hop) = &r.next_hop {
        view["nexthop"] = json!(hop);
    }
    // `domainpath` is the domain's stored path here, as these views have
    // always shown it.
    if let Some(a) = related.account(r.account_id) {
        view["account"] = json!(a.account_name);
    }
    if let Some(d) = related.domain(r.domain_id) {
        view["domainid"] = json!(d.uuid);
        view["domain"] = json!(d.name);
        view["domainpath"] = json!(d.path);
    }
    Ok(view)
}

fn gateway_state(state: &str) -> GatewayState {
    match state {
        gateway::GATEWAY_READY => GatewayState::Ready,
        gateway::GATEWAY_CREATING => GatewayState::Creating,
        _ => GatewayState::Deleting,
    }
}

fn subnet(gateway: &str, netmask: &str) -> Option<Ipv4Net> {
    let gw: Ipv4Addr = gateway.parse().ok()?;
    let prefix = ipnet::ipv4_mask_to_prefix(netmask.parse().ok()?).ok()?;
    Ipv4Net::new(gw, prefix).ok().map(|n| n.trunc())
}

/// The subnets a next hop may be in besides the VPC CIDR: those of the
/// VPC's private gateways and of the public ranges of its addresses.
async fn reachable_subnets(db: &Db, vpc_id: i64) -> Result<Vec<Ipv4Net>, Error> {
    let mut nets = Vec::new();
    let gateways = gateway::list(
        db,
        &gateway::GatewayFilter {
            vpc_id: Some(vpc_id),
            ..Default::default()
        },
        Page::ALL,
    )
    .await?
    .items;
    nets.extend(
        gateways
            .iter()
            .filter_map(|g| subnet(&g.gateway, &g.netmask)),
    );
    let ips = vlan::list_ips(
        db,
        &vlan::PublicIpFilter {
            vpc_id: Some(vpc_id),
            ..Default::default()
        },
        Page::ALL,
    )
    .await?
    .items;
    for ip in ips {
        if let Some(range) = vlan::range_by_id(db, ip.vlan_db_id).await?
            && let Some(net) = subnet(&range.gateway, &range.netmask)
            && !nets.contains(&net)
        {
            nets.push(net);
        }
    }
    Ok(nets)
}

/// The VPC's routes that count for overlaps: all but the revoked ones.
async fn other_routes(db: &Db, vpc_id: i64) -> Result<Vec<rule::ExistingRoute>, Error> {
    Ok(gateway::list_routes(
        db,
        &gateway::RouteFilter {
            vpc_id: Some(vpc_id),
            ..Default::default()
        },
        Page::ALL,
    )
    .await?
    .items
    .iter()
    .filter(|r| r.state != gateway::ROUTE_REVOKE)
    .filter_map(|r| r.cidr.parse().ok())
    .map(|cidr| rule::ExistingRoute { cidr })
    .collect())
}

handler!(create_route, |ctx, params| {
    let db = &ctx.app.db;
    let cidr = params.required_string(ctx.command, "cidr")?;
    let gateway_id = params.uuid("gatewayid")?.map(|u| u.to_string());
    let next_hop = params.string("nexthop")?;
    let vpc_id = params.uuid("vpcid")?.map(|u| u.to_string());
    let target = rule::route_target(gateway_id.as_deref(), next_hop.as_deref(), vpc_id.is_some())?;
    let (v, via, hop) = match target {
        Target::Gateway(id) => {
            let g = gateway::get_by_uuid(db, id)
                .await?
                .filter(|g| g.removed.is_none())
                .ok_or_else(|| Error::invalid_id("gatewayid", id))?;
            let v = vpc_by_id(db, g.vpc_id).await?;
            check_vpc_access(ctx, &v)?;
            if let Some(asked) = &vpc_id
                && *asked != v.uuid
            {
                return Err(Error::invalid(format!(
                    "Private gateway {id} does not belong to VPC {asked}"
                )));
            }
            rule::check_gateway_ready(&g.uuid, gateway_state(&g.state))?;
            (v, Some(g.id), None)
        }
        Target::NextHop(ip) => {
            let v = vpc_param(ctx, "vpcid", vpc_id.as_deref().unwrap_or_default()).await?;
            let vpc_cidr: Ipv4Net = v
                .cidr
                .parse()
                .map_err(|_| Error::internal(format!("stored VPC CIDR {} is bad", v.cidr)))?;
            rule::check_next_hop(ip, &vpc_cidr, &reachable_subnets(db, v.id).await?)?;
            (v, None, Some(ip.to_string()))
        }
    };
    if v.state != vpc::STATE_ENABLED {
        return Err(Error::invalid(format!(
            "Can't add static route to VPC {} that is being deleted",
            v.uuid
        )));
    }
    let vpc_cidr: Ipv4Net = v
        .cidr
        .parse()
        .map_err(|_| Error::internal(format!("stored VPC CIDR {} is bad", v.cidr)))?;
    let config = provision::rules_config(db).await?;
    let _guard = ctx.app.network.lock_vpc(v.id).await;
    let net = rule::validate_route_cidr(
        &cidr,
        &vpc_cidr,
        &config.denied_routes,
        &other_routes(db, v.id).await?,
    )?;
    let r = gateway::create_route(
        db,
        gateway::NewStaticRoute {
            vpc_id: v.id,
            vpc_gateway_id: via,
            cidr: net.to_string(),
            next_hop: hop,
            account_id: v.account_id,
            domain_id: v.domain_id,
        },
    )
    .await?;
    let submitted = ctx
        .submit_job(
            json!({ "id": r.id }),
            Some(("StaticRoute", &r.uuid)),
            vpc_sync(v.id),
        )
        .await;
    match submitted {
        Ok(job_id) => Ok(Reply::Created { id: r.uuid, job_id }),
        Err(e) => {
            log_revert(
                "a route whose job was not submitted",
                gateway::remove_route(db, r.id).await,
            );
            Err(e)
        }
    }
});

/// Pushes the VPC's whole set of live static routes.
async fn push_routes(app: &App, vpc_id: i64, generation: Option<Generation>) -> Result<(), Error> {
    provision::push(
        &app.db,
        &app.network,
        vpc_id,
        generation,
        |element, state, g| {
            Box::pin(async move {
                element
                    .apply_static_routes(&state.router, g, &state.static_routes)
                    .await
            })
        },
    )
    .await
}

/// The live route of a job.
async fn job_route(db: &Db, info: &Value) -> Result<gateway::StaticRoute, Error> {
    gateway::route_by_id(db, info["id"].as_i64().unwrap_or_default())
        .await?
        .filter(|r| r.removed.is_none())
        .ok_or_else(|| Error::invalid("The static route was deleted meanwhile"))
}

job_body!(create_route_job, |job, info| {
    let app = &job.app;
    let db = &app.db;
    let r = job_route(db, info).await?;
    let _guard = app.network.lock_vpc(r.vpc_id).await;
    let mut tx = db.begin().await?;
    gateway::set_route_state(&mut tx, r.id, gateway::ROUTE_ADD).await?;
    let generation = provision::bump(&mut tx, r.vpc_id).await?;
    tx.commit().await?;
    if let Err(e) = push_routes(app, r.vpc_id, generation).await {
        log_revert("a new static route", gateway::remove_route(db, r.id).await);
        return Err(e);
    }
    gateway::set_route_state(db, r.id, gateway::ROUTE_ACTIVE).await?;
    let r = job_route(db, info).await?;
    let related = Related::for_routes(db, std::slice::from_ref(&r)).await?;
    Ok(json!({ "staticroute": route_view(&related, &r)? }))
});

/// The live route named by `id`, which the caller may act on.
async fn route_param(ctx: &Ctx, id: &str) -> Result<gateway::StaticRoute, Error> {
    let r = gateway::route_by_uuid(&ctx.app.db, id)
        .await?
        .filter(|r| r.removed.is_none())
        .ok_or_else(|| Error::invalid_id("id", id))?;
    check_vpc_access(ctx, &vpc_by_id(&ctx.app.db, r.vpc_id).await?)?;
    Ok(r)
}

handler!(delete_route, |ctx, params| {
    let id = params.required_uuid(ctx.command, "id")?.to_string();
    let r = route_param(ctx, &id).await?;
    let job_id = ctx
        .submit_job(
            json!({ "id": r.id }),
            Some(("StaticRoute", &r.uuid)),
            vpc_sync(r.vpc_id),
        )
        .await?;
    Ok(Reply::Job { job_id })
});

job_body!(delete_route_job, |job, info| {
    let app = &job.app;
    let db = &app.db;
    let r = job_route(db, info).await?;
    let _guard = app.network.lock_vpc(r.vpc_id).await;
    if r.state == gateway::ROUTE_STAGED {
        // Never reached the router.
        gateway::remove_route(db, r.id).await?;
        return Ok(json!({ "success": true }));
    }
    let mut tx = db.begin().await?;
    gateway::set_route_state(&mut tx, r.id, gateway::ROUTE_REVOKE).await?;
    let generation = provision::bump(&mut tx, r.vpc_id).await?;
    tx.commit().await?;
    if let Err(e) = push_routes(app, r.vpc_id, generation).await {
        log_revert(
            "a revoked static route",
            gateway::set_route_state(db, r.id, &r.state).await,
        );
        return Err(e);
    }
    gateway::remove_route(db, r.id).await?;
    Ok(json!({ "success": true }))
});

handler!(list_routes, |ctx, params| {
    let db = &ctx.app.db;
    let scope = owner::list_scope(ctx, params).await?;
    let page = page(ctx, params).await?;
    let (account_id, domain_path_prefix, domain_id) = scope_filter(&scope);
    let mut filter = gateway::RouteFilter {
        uuids: params.uuid("id")?.map(|u| vec![u.to_string()]),
        state: params.string("state")?.filter(|s| !s.is_empty()),
        account_id,
        domain_path_prefix,
        domain_id,
        ..Default::default()
    };
    // A VPC or gateway named explicitly (and accessible) shows its routes
    // whatever the ownership filters say.
    let mut named = None;
    if let Some(id) = params.uuid("vpcid")? {
        named = Some(vpc_param(ctx, "vpcid", &id.to_string()).await?.id);
    }
    if let Some(id) = params.uuid("gatewayid")? {
        let id = id.to_string();
        let g = gateway::get_by_uuid(db, &id)
            .await?
            .filter(|g| g.removed.is_none())
            .ok_or_else(|| Error::invalid_id("gatewayid", &id))?;
        check_vpc_access(ctx, &vpc_by_id(db, g.vpc_id).await?)?;
        filter.vpc_gateway_id = Some(g.id);
        named = Some(named.unwrap_or(g.vpc_id));
    }
    if let Some(vpc_id) = named {
        filter = gateway::RouteFilter {
            vpc_id: Some(vpc_id),
            account_id: None,
            domain_path_prefix: None,
            domain_id: None,
            ..filter
        };
    }
    let listed = gateway::list_routes(db, &filter, page).await?;
    let related = Related::for_routes(db, &listed.items).await?;
    let mut items = Vec::new();
    for r in &listed.items {
        items.push(route_view(&related, r)?);
    }
    Ok(Reply::List {
        count: listed.total as u64,
        items,
    })
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_from_gateway_and_netmask() {
        assert_eq!(
            subnet("172.16.0.1", "255.255.255.0"),
            Some("172.16.0.0/24".parse().unwrap())
        );
        assert_eq!(subnet("172.16.0.1", "255.0.255.0"), None);
        assert_eq!(gateway_state("Ready"), GatewayState::Ready);
        assert_eq!(gateway_state("Creating"), GatewayState::Creating);
    }
}
