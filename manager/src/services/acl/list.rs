//! ACL lists: createNetworkACLList, updateNetworkACLList,
//! deleteNetworkACLList, listNetworkACLLists and replaceNetworkACLList
//! (reference §2.8, §3.8).

use std::collections::HashMap;

use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    bump_if, check_vpc_access, list_param, list_view, log_revert, mutable_list_vpc, rules_list,
    scope_covers, tier_param, vpc_of, vpc_sync,
};
use crate::error::Error;
use crate::orchestration::NetworkAcl;
use crate::provision::{self, state};
use crate::rules;
use crate::server::jobs::JobBody;
use crate::server::registry::{ALL, CommandSpec, FieldSpec, Kind, ParamType::*, field, opt, req};
use crate::server::{App, Ctx, Reply, page, page_of};
use crate::services::owner;
use crate::store::{self, Db, Page, acl, gateway, network, offering, vpc};
use crate::{handler, job_body};

fn list_fields() -> Vec<FieldSpec> {
    vec![
        field("id", "string", "the ID of the ACL list"),
        field("name", "string", "the name of the ACL list"),
        field("description", "string", "the description of the ACL list"),
        field("vpcid", "string", "the VPC of the ACL list"),
        field("vpcname", "string", "the name of the VPC of the ACL list"),
        field(
            "fordisplay",
            "boolean",
            "whether the list is shown to users",
        ),
    ]
}

/// The commands of this file.
pub(super) fn commands() -> Vec<CommandSpec> {
    let mut list_params = vec![
        opt("id", Uuid, "the ID of the ACL list"),
        opt("name", String, "the name of the ACL list"),
        opt(
            "vpcid",
            Uuid,
            "only lists of this VPC (and the default lists)",
        ),
        opt("networkid", Uuid, "only the list attached to this tier"),
        opt("fordisplay", Boolean, "accepted; every list is displayed"),
    ];
    list_params.extend(owner::list_params());
    vec![
        CommandSpec {
            name: "createNetworkACLList",
            description: "Creates a network ACL list for a VPC",
            kind: Kind::AsyncCreate,
            roles: ALL,
            params: vec![
                req("name", String, "the name of the ACL list"),
                opt("description", String, "the description of the ACL list"),
                opt(
                    "vpcid",
                    Uuid,
                    "the VPC the list belongs to (required: lists without a VPC are not supported)",
                ),
                opt("fordisplay", Boolean, "accepted; every list is displayed"),
            ],
            object: "networkacllist",
            response: list_fields(),
            since: "",
            handler: create_list,
            job: None,
        },
        CommandSpec {
            name: "updateNetworkACLList",
            description: "Renames a network ACL list or changes its description",
            kind: Kind::Async,
            roles: ALL,
            params: vec![
                req("id", Uuid, "the ID of the ACL list"),
                opt("name", String, "the new name of the ACL list"),
                opt("description", String, "the new description of the ACL list"),
                opt("fordisplay", Boolean, "accepted; every list is displayed"),
                opt("customid", String, "accepted; ids cannot be changed"),
            ],
            object: "networkacllist",
            response: list_fields(),
            since: "",
            handler: update_list,
            job: None,
        },
        CommandSpec {
            name: "deleteNetworkACLList",
            description: "Deletes a network ACL list that no tier or private gateway uses",
            kind: Kind::Async,
            roles: ALL,
            params: vec![req("id", Uuid, "the ID of the ACL list")],
            object: "networkacllist",
            response: vec![],
            since: "",
            handler: delete_list,
            job: None,
        },
        CommandSpec {
            name: "listNetworkACLLists",
            description: "Lists network ACL lists, the default lists included",
            kind: Kind::Sync,
            roles: ALL,
            params: list_params,
            object: "networkacllist",
            response: list_fields(),
            since: "",
            handler: list_lists,
            job: None,
        },
        CommandSpec {
            name: "replaceNetworkACLList",
            description: "Attaches an ACL list to a tier or a private gateway in place of its current one",
            kind: Kind::Async,
            roles: ALL,
            params: vec![
                req("aclid", Uuid, "the ID of the ACL list"),
                opt("networkid", Uuid, "the tier to attach it to"),
                opt("gatewayid", Uuid, "the private gateway to attach it to"),
            ],
            object: "networkacllist",
            response: vec![],
            since: "",
            handler: replace_list,
            job: None,
        },
    ]
}

/// The job bodies of this file.
pub(super) fn job_bodies() -> Vec<(&'static str, JobBody)> {
    vec![
        ("createNetworkACLList", create_list_job),
        ("updateNetworkACLList", update_list_job),
        ("deleteNetworkACLList", delete_list_job),
        ("replaceNetworkACLList", replace_list_job),
    ]
}

/// The live VPC named by parameter `param`, which the caller may act on.
async fn vpc_param(ctx: &Ctx, param: &str, id: &str) -> Result<vpc::Vpc, Error> {
    let v = vpc::get_by_uuid(&ctx.app.db, id)
        .await?
        .filter(|v| v.removed.is_none())
        .ok_or_else(|| Error::invalid_id(param, id))?;
    check_vpc_access(ctx, &v)?;
    Ok(v)
}

handler!(create_list, |ctx, params| {
    let name = params.required_string(ctx.command, "name")?;
    let description = params.string("description")?.unwrap_or_default();
    rules::acl::validate_list(&name, Some(&description))?;
    let Some(vpc_id) = params.uuid("vpcid")? else {
        return Err(Error::invalid(
            "vpcid is required: ACL lists belong to a VPC (global lists are not supported)",
        ));
    };
    let v = vpc_param(ctx, "vpcid", &vpc_id.to_string()).await?;
    if v.state != vpc::STATE_ENABLED {
        return Err(Error::invalid(format!(
            "VPC {} is {}, not Enabled: no ACL list can be added to it",
            v.uuid, v.state
        )));
    }
    let list = acl::create_list(&ctx.app.db, v.id, &name, &description).await?;
    let submitted = ctx
        .submit_job(
            json!({ "id": list.id }),
            Some(("NetworkAcl", &list.uuid)),
            vpc_sync(v.id),
        )
        .await;
    match submitted {
        Ok(job_id) => Ok(Reply::Created {
            id: list.uuid,
            job_id,
        }),
        Err(e) => {
            // Without its job the list would stay half-created.
            log_revert(
                "a list whose job was not submitted",
                acl::remove_list(&ctx.app.db, list.id).await,
            );
            Err(e)
        }
    }
});

/// `{"networkacllist": ...}` of the live list `id`.
async fn list_result(db: &Db, id: i64) -> Result<Value, Error> {
    let list = acl::get_by_id(db, id)
        .await?
        .filter(|l| l.removed.is_none())
        .ok_or_else(|| Error::invalid("The ACL list was deleted meanwhile"))?;
    let v = vpc_of(db, &list).await?;
    Ok(json!({ "networkacllist": list_view(&list, v.as_ref()) }))
}

job_body!(create_list_job, |job, info| {
    list_result(&job.app.db, info["id"].as_i64().unwrap_or_default()).await
});

handler!(update_list, |ctx, params| {
    let id = params.required_uuid(ctx.command, "id")?.to_string();
    let list = list_param(&ctx.app.db, "id", &id).await?;
    let v = mutable_list_vpc(ctx, &list).await?;
    let name = params.string("name")?.filter(|n| !n.trim().is_empty());
    let description = params.string("description")?;
    if let Some(n) = &name {
        rules::acl::validate_list(n, description.as_deref())?;
    }
    let job_id = ctx
        .submit_job(
            json!({ "id": list.id, "name": name, "description": description }),
            Some(("NetworkAcl", &list.uuid)),
            vpc_sync(v.id),
        )
        .await?;
    Ok(Reply::Job { job_id })
});

job_body!(update_list_job, |job, info| {
    let db = &job.app.db;
    let id = info["id"].as_i64().unwrap_or_default();
    let text = |k: &str| info[k].as_str().map(str::to_string);
    acl::update_list(db, id, text("name"), text("description")).await?;
    list_result(db, id).await
});

/// How many tiers and private gateways use a list.
async fn users_of(db: &Db, acl_id: i64) -> Result<(usize, usize), Error> {
    let tiers = network::list(
        db,
        &network::NetworkFilter {
            network_acl_id: Some(acl_id),
            ..Default::default()
        },
        Page::first(1),
    )
    .await?
    .total;
    let gateways = gateway::list(
        db,
        &gateway::GatewayFilter {
            network_acl_id: Some(acl_id),
            ..Default::default()
        },
        Page::first(1),
    )
    .await?
    .total;
    let count = |n: i64| usize::try_from(n).unwrap_or(usize::MAX);
    Ok((count(tiers), count(gateways)))
}

handler!(delete_list, |ctx, params| {
    let db = &ctx.app.db;
    let id = params.required_uuid(ctx.command, "id")?.to_string();
    let list = list_param(db, "id", &id).await?;
    let (tiers, gateways) = users_of(db, list.id).await?;
    rules::acl::check_list_deletable(&rules_list(&list), tiers, gateways)?;
    let v = mutable_list_vpc(ctx, &list).await?;
    let job_id = ctx
        .submit_job(
            json!({ "id": list.id }),
            Some(("NetworkAcl", &list.uuid)),
            vpc_sync(v.id),
        )
        .await?;
    Ok(Reply::Job { job_id })
});

job_body!(delete_list_job, |job, info| {
    let db = &job.app.db;
    let id = info["id"].as_i64().unwrap_or_default();
    let Some(list) = acl::get_by_id(db, id).await? else {
        return Err(Error::invalid("The ACL list was deleted meanwhile"));
    };
    // Counted again in the job: a tier may have taken the list meanwhile.
    let (tiers, gateways) = users_of(db, list.id).await?;
    rules::acl::check_list_deletable(&rules_list(&list), tiers, gateways)?;
    acl::remove_list(db, list.id).await?;
    Ok(json!({ "success": true }))
});

handler!(list_lists, |ctx, params| {
    let db = &ctx.app.db;
    let scope = owner::list_scope(ctx, params).await?;
    let page = page(ctx, params).await?;
    let mut filter = acl::AclFilter {
        include_builtin: true,
        name: params.string("name")?.filter(|n| !n.is_empty()),
        keyword: params.string("keyword")?.filter(|k| !k.is_empty()),
        uuids: params.uuid("id")?.map(|u| vec![u.to_string()]),
        ..Default::default()
    };
    // A VPC or tier named explicitly (and accessible) shows its lists
    // whatever the ownership filters say.
    let mut named_vpc = false;
    if let Some(id) = params.uuid("vpcid")? {
        filter.vpc_id = Some(vpc_param(ctx, "vpcid", &id.to_string()).await?.id);
        named_vpc = true;
    }
    if let Some(id) = params.uuid("networkid")? {
        let (tier, _) = tier_param(ctx, "networkid", &id.to_string()).await?;
        let Some(acl_id) = tier.network_acl_id else {
            return Ok(Reply::List {
                count: 0,
                items: vec![],
            });
        };
        filter.id = Some(acl_id);
        named_vpc = true;
    }
    let lists = acl::list(db, &filter, Page::ALL).await?.items;
    // The VPCs of every list in one statement: a list is shown when its
    // VPC is, and its view names the VPC.
    let vpc_ids: Vec<i64> = lists.iter().filter_map(|l| l.vpc_id).collect();
    let vpcs: HashMap<i64, vpc::Vpc> = vpc::by_ids(db, &vpc_ids)
        .await?
        .into_iter()
        .map(|v| (v.id, v))
        .collect();
    let mut shown = Vec::new();
    for list in lists {
        let visible = match list.vpc_id {
            None => true,
            Some(vpc_id) => vpcs
                .get(&vpc_id)
                .is_some_and(|v| named_vpc || scope_covers(&scope, v)),
        };
        if visible {
            shown.push(list);
        }
    }
    let count = shown.len() as u64;
    let items = page_of(shown, page)
        .iter()
        .map(|list| list_view(list, list.vpc_id.and_then(|id| vpcs.get(&id))))
        .collect();
    Ok(Reply::List { count, items })
});

/// What replaceNetworkACLList attaches a list to.
enum Target {
    Tier(network::Network),
    Gateway(gateway::PrivateGateway),
}

handler!(replace_list, |ctx, params| {
    let db = &ctx.app.db;
    let acl_id = params.required_uuid(ctx.command, "aclid")?.to_string();
    let list = list_param(db, "aclid", &acl_id).await?;
    let (target, v) = match (params.uuid("networkid")?, params.uuid("gatewayid")?) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(Error::invalid(
                "Give exactly one of networkid and gatewayid: the tier or the private gateway \
                 to attach the ACL list to",
            ));
        }
        (Some(id), None) => {
            let (tier, v) = tier_param(ctx, "networkid", &id.to_string()).await?;
            let services =
                offering::network_offering_services(db, tier.network_offering_id).await?;
            rules::acl::check_tier_takes_acl(
                &tier.name,
                services.iter().any(|s| s.service == "NetworkACL"),
            )?;
            (Target::Tier(tier), v)
        }
        (None, Some(id)) => {
            let id = id.to_string();
            let g = gateway::get_by_uuid(db, &id)
                .await?
                .filter(|g| g.removed.is_none())
                .ok_or_else(|| Error::invalid_id("gatewayid", &id))?;
            let v = vpc::get_by_id(db, g.vpc_id)
                .await?
                .ok_or_else(|| Error::internal("the VPC of a private gateway is gone"))?;
            check_vpc_access(ctx, &v)?;
            (Target::Gateway(g), v)
        }
    };
    let list_vpc = vpc_of(db, &list).await?.map(|lv| lv.uuid);
    rules::acl::check_list_in_vpc(&list.name, list_vpc.as_ref(), &v.uuid)?;
    let (kind, target_id) = match &target {
        Target::Tier(t) => ("tier", t.id),
        Target::Gateway(g) => ("gateway", g.id),
    };
    let job_id = ctx
        .submit_job(
            json!({ "acl_id": list.id, "vpc_id": v.id, kind: target_id }),
            Some(("NetworkAcl", &list.uuid)),
            vpc_sync(v.id),
        )
        .await?;
    Ok(Reply::Job { job_id })
});

/// The ACL list a target has now.
fn attachment(target: &Target) -> Option<i64> {
    match target {
        Target::Tier(t) => t.network_acl_id,
        Target::Gateway(g) => g.network_acl_id,
    }
}

/// Attaches `acl_id` to a target (None detaches).
async fn attach<'a>(
    ex: impl Into<store::Exec<'a>>,
    target: &Target,
    acl_id: Option<i64>,
) -> Result<bool, Error> {
    Ok(match target {
        Target::Tier(t) => network::set_acl(ex, t.id, acl_id).await?,
        Target::Gateway(g) => gateway::set_acl(ex, g.id, acl_id).await?,
    })
}

/// The target of a replace job, as it is now.
async fn target_of(db: &Db, info: &Value) -> Result<Target, Error> {
    let gone = || Error::invalid("The tier or private gateway was deleted meanwhile");
    if let Some(id) = info["tier"].as_i64() {
        let t = network::get_by_id(db, id)
            .await?
            .filter(|t| t.removed.is_none())
            .ok_or_else(gone)?;
        return Ok(Target::Tier(t));
    }
    let id = info["gateway"].as_i64().unwrap_or_default();
    let g = gateway::get_by_id(db, id)
        .await?
        .filter(|g| g.removed.is_none())
        .ok_or_else(gone)?;
    Ok(Target::Gateway(g))
}

/// The target's id as the router state names it.
fn target_uuid(target: &Target) -> Result<Uuid, Error> {
    let text = match target {
        Target::Tier(t) => &t.uuid,
        Target::Gateway(g) => &g.uuid,
    };
    Uuid::parse_str(text).map_err(|_| Error::internal(format!("stored id {text} is bad")))
}

/// Pushes the target's new list to its NIC (nothing when it has none).
async fn push_attachment(
    app: &App,
    vpc_id: i64,
    generation: Option<provision::Generation>,
    target: &Target,
) -> Result<(), Error> {
    let id = target_uuid(target)?;
    let is_tier = matches!(target, Target::Tier(_));
    provision::push(
        &app.db,
        &app.network,
        vpc_id,
        generation,
        move |element, state, g| {
            Box::pin(async move {
                if is_tier {
                    let Some(tier) = state.tiers.iter().find(|t| t.id == id) else {
                        return Ok(());
                    };
                    let list = tier.acl_id.and_then(|l| state.acl_list(l));
                    element.replace_tier_acl(&state.router, g, tier, list).await
                } else {
                    let Some(gw) = state.private_gateways.iter().find(|p| p.id == id) else {
                        return Ok(());
                    };
                    let list = gw.acl_id.and_then(|l| state.acl_list(l));
                    element
                        .replace_gateway_acl(&state.router, g, gw, list)
                        .await
                }
            })
        },
    )
    .await
}

job_body!(replace_list_job, |job, info| {
    let app = &job.app;
    let db = &app.db;
    let vpc_id = info["vpc_id"].as_i64().unwrap_or_default();
    let _guard = app.network.lock_vpc(vpc_id).await;
    let acl_id = info["acl_id"].as_i64().unwrap_or_default();
    acl::get_by_id(db, acl_id)
        .await?
        .filter(|l| l.removed.is_none())
        .ok_or_else(|| Error::invalid("The ACL list was deleted meanwhile"))?;
    let target = target_of(db, info).await?;
    let old = attachment(&target);
    let id = target_uuid(&target)?;
    let on_router = state::load(db, vpc_id).await?.is_some_and(|s| {
        s.tiers.iter().any(|t| t.id == id) || s.private_gateways.iter().any(|g| g.id == id)
    });
    let mut tx = db.begin().await?;
    attach(&mut tx, &target, Some(acl_id)).await?;
    let generation = bump_if(&mut tx, vpc_id, on_router).await?;
    tx.commit().await?;
    if let Err(e) = push_attachment(app, vpc_id, generation, &target).await {
        log_revert("an ACL list attachment", attach(db, &target, old).await);
        return Err(e);
    }
    Ok(json!({ "success": true }))
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_in_memory_skips_and_takes() {
        let rows: Vec<i32> = (1..=7).collect();
        assert_eq!(page_of(rows.clone(), Page::new(2, 3)), vec![4, 5, 6]);
        assert_eq!(page_of(rows.clone(), Page::new(3, 3)), vec![7]);
        assert_eq!(page_of(rows, Page::ALL).len(), 7);
    }
}
