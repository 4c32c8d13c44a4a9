//! Private gateways: createPrivateGateway, deletePrivateGateway and
//! listPrivateGateways (reference §2.6, §3.6).
//!
//! A gateway is a private network (traffic type PrivateGateway, designed by
//! the private gateway guru on the VLAN the root admin gives) plus a router
//! NIC on it holding the gateway's address, with an ACL list
//! (`default_deny` unless told otherwise). createPrivateGateway stores the
//! network and the gateway (Creating) during the request; its job plugs the
//! NIC (PlugNic, IpAssoc, SetSourceNat when asked, SetNetworkAcl) and makes
//! it Ready, or removes every row again when the router refuses.

mod create;

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{check_vpc_access, log_revert, page_of, scope_filter, vpc_by_id, vpc_param, vpc_sync};
use crate::error::Error;
use crate::orchestration::VpcProvider;
use crate::provision::{self, state};
use crate::rules::gateway as rule;
use crate::server::jobs::JobBody;
use crate::server::registry::{ALL, CommandSpec, FieldSpec, Kind, ParamType::*, field, opt, req};
use crate::server::{Ctx, Reply, page};
use crate::services::owner;
use crate::services::related::Related;
use crate::store::{Db, Page, gateway, network, router};
use crate::{handler, job_body};

fn gateway_fields() -> Vec<FieldSpec> {
    vec![
        field("id", "string", "the ID of the private gateway"),
        field("gateway", "string", "the next hop on the private network"),
        field("netmask", "string", "the netmask of the private network"),
        field(
            "ipaddress",
            "string",
            "the router's address on the private network",
        ),
        field("zoneid", "string", "the zone of the gateway"),
        field("zonename", "string", "the name of the zone"),
        field(
            "vlan",
            "string",
            "the VLAN of the private network (admins only)",
        ),
        field("vpcid", "string", "the VPC of the gateway"),
        field("vpcname", "string", "the name of the VPC"),
        field(
            "physicalnetworkid",
            "string",
            "the physical network carrying it",
        ),
        field("state", "string", "Creating, Ready or Deleting"),
        field(
            "sourcenatsupported",
            "boolean",
            "whether traffic leaving through it is source-NATed",
        ),
        field("aclid", "string", "the ACL list of the gateway"),
        field("aclname", "string", "the name of the ACL list"),
        field("account", "string", "the owner's account"),
        field("domainid", "string", "the owner's domain"),
        field("domain", "string", "the name of the owner's domain"),
    ]
}

/// The commands of this file.
pub(super) fn commands() -> Vec<CommandSpec> {
    let mut list_params = vec![
        opt("id", Uuid, "the ID of the private gateway"),
        opt("vpcid", Uuid, "only gateways of this VPC"),
        opt("ipaddress", String, "only the gateway with this address"),
        opt("vlan", String, "only gateways on this VLAN"),
        opt("state", String, "only gateways in this state"),
    ];
    list_params.extend(owner::list_params());
    vec![
        CommandSpec {
            name: "createPrivateGateway",
            description: "Creates a private gateway of a VPC on a VLAN",
            kind: Kind::AsyncCreate,
            roles: ALL,
            params: vec![
                req("vpcid", Uuid, "the VPC"),
                req(
                    "ipaddress",
                    String,
                    "the router's address on the private network",
                ),
                req("gateway", String, "the next hop on the private network"),
                req("netmask", String, "the netmask of the private network"),
                opt(
                    "vlan",
                    String,
                    "the VLAN of the private network, N or vlan://N (ROOT admin only)",
                ),
                opt(
                    "physicalnetworkid",
                    Uuid,
                    "the physical network; default the zone's only guest physical network",
                ),
                opt(
                    "sourcenatsupported",
                    Boolean,
                    "true: source-NAT traffic leaving through the gateway (default false)",
                ),
                opt(
                    "aclid",
                    Uuid,
                    "the ACL list of the gateway; default default_deny",
                ),
                opt(
                    "associatednetworkid",
                    Uuid,
                    "instead of a VLAN: an isolated network to ride on",
                ),
                opt(
                    "bypassvlanoverlapcheck",
                    Boolean,
                    "ROOT admin: accept a VLAN a tier of the zone uses",
                ),
            ],
            object: "privategateway",
            response: gateway_fields(),
            since: "",
            handler: create::CREATE_GATEWAY,
            job: None,
        },
        CommandSpec {
            name: "deletePrivateGateway",
            description: "Deletes a private gateway that no static route uses",
            kind: Kind::Async,
            roles: ALL,
            params: vec![req("id", Uuid, "the ID of the private gateway")],
            object: "privategateway",
            response: vec![],
            since: "",
            handler: delete_gateway,
            job: None,
        },
        CommandSpec {
            name: "listPrivateGateways",
            description: "Lists private gateways",
            kind: Kind::Sync,
            roles: ALL,
            params: list_params,
            object: "privategateway",
            response: gateway_fields(),
            since: "",
            handler: list_gateways,
            job: None,
        },
    ]
}

/// The job bodies of this file.
pub(super) fn job_bodies() -> Vec<(&'static str, JobBody)> {
    vec![
        ("createPrivateGateway", create::CREATE_GATEWAY_JOB),
        ("deletePrivateGateway", delete_gateway_job),
    ]
}

/// The subnet of a stored gateway.
fn subnet_of(g: &gateway::PrivateGateway) -> Option<Ipv4Net> {
    let gw: Ipv4Addr = g.gateway.parse().ok()?;
    let mask: Ipv4Addr = g.netmask.parse().ok()?;
    let prefix = ipnet::ipv4_mask_to_prefix(mask).ok()?;
    Ipv4Net::new(gw, prefix).ok().map(|n| n.trunc())
}

/// A broadcast URI in the rules' VLAN form (`vlan://N` whatever the scheme).
fn vlan_form(uri: &str) -> std::string::String {
    format!("vlan://{}", uri.rsplit("://").next().unwrap_or(uri))
}

/// `privategateway` of a response; `full` adds the VLAN (admins only).
/// `related` holds the page's rows ([`Related::for_gateways`]).
fn gateway_view(
    related: &Related,
    g: &gateway::PrivateGateway,
    full: bool,
) -> Result<Value, Error> {
    let v = related
        .vpc(g.vpc_id)
        .ok_or_else(|| Error::internal(format!("VPC {} is gone", g.vpc_id)))?;
    let mut view = json!({
        "id": g.uuid,
        "gateway": g.gateway,
        "netmask": g.netmask,
        "ipaddress": g.ip4_address,
        "vpcid": v.uuid,
        "vpcname": v.name,
        "state": g.state,
        "sourcenatsupported": g.source_nat,
        "hasannotations": false,
    });
    if let Some(z) = related.zone_row(v.zone_id) {
        view["zoneid"] = json!(z.uuid);
        view["zonename"] = json!(z.name);
    }
    if let Some(n) = related.network(g.network_id)
        && let Some(pid) = n.physical_network_id
        && let Some(p) = related.physical_network(pid)
    {
        view["physicalnetworkid"] = json!(p.uuid);
    }
    if let Some(id) = g.network_acl_id
        && let Some(l) = related.acl_list(id)
    {
        view["aclid"] = json!(l.uuid);
        view["aclname"] = json!(l.name);
    }
    if full {
        view["vlan"] = json!(g.broadcast_uri.rsplit("://").next().unwrap_or_default());
        view["broadcasturi"] = json!(g.broadcast_uri);
    }
    // `domainpath` is the domain's stored path here, as these views have
    // always shown it.
    if let Some(a) = related.account(g.account_id) {
        view["account"] = json!(a.account_name);
    }
    if let Some(d) = related.domain(g.domain_id) {
        view["domainid"] = json!(d.uuid);
        view["domain"] = json!(d.name);
        view["domainpath"] = json!(d.path);
    }
    Ok(view)
}

/// Removes a gateway's rows: its router NIC, its static routes, the gateway
/// and its private network.
async fn remove_rows(db: &Db, g: &gateway::PrivateGateway) -> Result<(), Error> {
    let mut tx = db.begin().await?;
    let nics = router::list_nics(
        &mut tx,
        &router::NicFilter {
            network_id: Some(g.network_id),
            role: Some(router::ROLE_PRIVATE.into()),
            ..Default::default()
        },
        Page::ALL,
    )
    .await?
    .items;
    for nic in nics.iter().filter(|n| n.router_id.is_some()) {
        router::remove_nic(&mut tx, nic.id).await?;
    }
    gateway::remove_routes(
        &mut tx,
        &gateway::RouteFilter {
            vpc_gateway_id: Some(g.id),
            ..Default::default()
        },
    )
    .await?;
    gateway::remove(&mut tx, g.id).await?;
    network::remove(&mut tx, g.network_id).await?;
    tx.commit().await?;
    Ok(())
}

/// The live gateway of a job.
async fn job_gateway(db: &Db, info: &Value) -> Result<gateway::PrivateGateway, Error> {
    gateway::get_by_id(db, info["id"].as_i64().unwrap_or_default())
        .await?
        .filter(|g| g.removed.is_none())
        .ok_or_else(|| Error::invalid("The private gateway was deleted meanwhile"))
}

fn gateway_uuid(g: &gateway::PrivateGateway) -> Result<Uuid, Error> {
    Uuid::parse_str(&g.uuid)
        .map_err(|_| Error::internal(format!("stored gateway id {} is bad", g.uuid)))
}

/// The live gateway named by `id`, which the caller may act on.
async fn gateway_param(ctx: &Ctx, id: &str) -> Result<gateway::PrivateGateway, Error> {
    let g = gateway::get_by_uuid(&ctx.app.db, id)
        .await?
        .filter(|g| g.removed.is_none())
        .ok_or_else(|| Error::invalid_id("id", id))?;
    check_vpc_access(ctx, &vpc_by_id(&ctx.app.db, g.vpc_id).await?)?;
    Ok(g)
}

/// The static routes through a gateway (none may remain when it goes).
async fn routes_via(db: &Db, g: &gateway::PrivateGateway) -> Result<usize, Error> {
    let n = gateway::count_routes_via(db, g.id).await?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

handler!(delete_gateway, |ctx, params| {
    let id = params.required_uuid(ctx.command, "id")?.to_string();
    let g = gateway_param(ctx, &id).await?;
    // Every gateway here sits on a VLAN the root admin gave (CloudStack's
    // private gateway offering specifies the VLAN).
    rule::check_gateway_deletable(
        &g.uuid,
        routes_via(&ctx.app.db, &g).await?,
        ctx.caller.is_root_admin(),
        true,
    )?;
    if g.state != gateway::GATEWAY_READY {
        return Err(Error::invalid(format!(
            "Private gateway {} is {}; only a Ready gateway can be deleted",
            g.uuid, g.state
        )));
    }
    let job_id = ctx
        .submit_job(
            json!({ "id": g.id }),
            Some(("PrivateGateway", &g.uuid)),
            vpc_sync(g.vpc_id),
        )
        .await?;
    Ok(Reply::Job { job_id })
});

job_body!(delete_gateway_job, |job, info| {
    let app = &job.app;
    let db = &app.db;
    let g = job_gateway(db, info).await?;
    let _guard = app.network.lock_vpc(g.vpc_id).await;
    // Checked again: a route may have come meanwhile.
    rule::check_gateway_deletable(&g.uuid, routes_via(db, &g).await?, true, false)?;
    let id = gateway_uuid(&g)?;
    // The gateway as the router has it, taken before it leaves the state.
    let view = state::load(db, g.vpc_id)
        .await?
        .and_then(|s| s.private_gateways.into_iter().find(|p| p.id == id));
    let mut tx = db.begin().await?;
    gateway::set_state(&mut tx, g.id, gateway::GATEWAY_DELETING).await?;
    let generation = match &view {
        Some(_) => provision::bump(&mut tx, g.vpc_id).await?,
        None => None,
    };
    tx.commit().await?;
    if let Some(view) = view {
        let pushed = provision::push(
            db,
            &app.network,
            g.vpc_id,
            generation,
            move |element, state, gen_| {
                Box::pin(async move { element.delete_private_gateway(state, gen_, &view).await })
            },
        )
        .await;
        if let Err(e) = pushed {
            log_revert(
                "a private gateway being deleted",
                gateway::set_state(db, g.id, gateway::GATEWAY_READY).await,
            );
            return Err(e);
        }
    }
    remove_rows(db, &g).await?;
    Ok(json!({ "success": true }))
});

handler!(list_gateways, |ctx, params| {
    let db = &ctx.app.db;
    let scope = owner::list_scope(ctx, params).await?;
    let page = page(ctx, params).await?;
    let (account_id, domain_path_prefix, domain_id) = scope_filter(&scope);
    let mut filter = gateway::GatewayFilter {
        uuids: params.uuid("id")?.map(|u| vec![u.to_string()]),
        ip4_address: params.string("ipaddress")?.filter(|s| !s.is_empty()),
        state: params.string("state")?.filter(|s| !s.is_empty()),
        account_id,
        domain_path_prefix,
        domain_id,
        ..Default::default()
    };
    if let Some(id) = params.uuid("vpcid")? {
        // A VPC named explicitly (and accessible) shows its gateways
        // whatever the ownership filters say.
        let v = vpc_param(ctx, "vpcid", &id.to_string()).await?;
        filter = gateway::GatewayFilter {
            vpc_id: Some(v.id),
            account_id: None,
            domain_path_prefix: None,
            domain_id: None,
            ..filter
        };
    }
    let full = ctx.caller.is_root_admin();
    let (count, rows) = match params.string("vlan")?.filter(|s| !s.trim().is_empty()) {
        None => {
            let listed = gateway::list(db, &filter, page).await?;
            (listed.total as u64, listed.items)
        }
        Some(vlan) => {
            let wanted = rule::normalize_vlan(&vlan)?;
            let all: Vec<gateway::PrivateGateway> = gateway::list(db, &filter, Page::ALL)
                .await?
                .items
                .into_iter()
                .filter(|g| vlan_form(&g.broadcast_uri) == wanted)
                .collect();
            (all.len() as u64, page_of(all, page))
        }
    };
    let related = Related::for_gateways(db, &rows).await?;
    let mut items = Vec::new();
    for g in &rows {
        items.push(gateway_view(&related, g, full)?);
    }
    Ok(Reply::List { count, items })
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_uris_compare_as_vlans() {
        assert_eq!(vlan_form("vlan://500"), "vlan://500");
        assert_eq!(vlan_form("vxlan://500"), "vlan://500");
        assert_eq!(vlan_form("500"), "vlan://500");
    }
}
