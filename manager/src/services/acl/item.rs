//! ACL items: createNetworkACL, updateNetworkACLItem, moveNetworkAclItem,
//! deleteNetworkACL and listNetworkACLs (reference §2.8, §3.8).
//!
//! Every change follows the change protocol (`provision`): under the VPC's
//! lock the item's row changes with the router's generation in one
//! transaction, then the whole list goes to the router; a failed push puts
//! the row back as it was and fails the job.

mod rows;

use std::collections::HashMap;

use serde_json::{Value, json};
use tokio::sync::OwnedMutexGuard;

use super::{
    bump_if, item_view, items_of, list_on_router, list_param, log_revert, mutable_list_vpc,
    push_list, scope_covers, tier_param, vpc_of, vpc_sync,
};
use crate::error::Error;
use crate::rules::acl::{AclProtocol, Action, TrafficType};
use crate::server::jobs::{JobBody, JobCtx};
use crate::server::registry::{ALL, CommandSpec, FieldSpec, Kind, ParamType::*, field, opt, req};
use crate::server::{App, Ctx, Reply, page, page_of};
use crate::services::owner;
use crate::store::{Db, Page, acl, vpc};
use crate::{handler, job_body};
use rows::{
    action_text, as_new, checked_new, fields_of, merged, numbers_taken, renumbering, stored,
    traffic_text,
};

fn item_fields() -> Vec<FieldSpec> {
    vec![
        field("id", "string", "the ID of the ACL item"),
        field(
            "protocol",
            "string",
            "tcp, udp, icmp, all or a protocol number",
        ),
        field("startport", "string", "the first port"),
        field("endport", "string", "the last port"),
        field("traffictype", "string", "Ingress or Egress"),
        field("state", "string", "Staged, Add, Active or Revoke"),
        field("cidrlist", "string", "the comma-separated source CIDRs"),
        field("icmptype", "integer", "the ICMP type (-1: any)"),
        field("icmpcode", "integer", "the ICMP code (-1: any)"),
        field("aclid", "string", "the ID of the ACL list"),
        field("aclname", "string", "the name of the ACL list"),
        field("number", "integer", "the position of the item in its list"),
        field("action", "string", "Allow or Deny"),
        field("reason", "string", "why the item exists"),
        field(
            "fordisplay",
            "boolean",
            "whether the item is shown to users",
        ),
        field("tags", "list", "the tags of the item"),
    ]
}

/// The parameters describing an item, shared by create and update.
fn item_params() -> Vec<crate::server::registry::ParamSpec> {
    vec![
        opt("startport", Integer, "the first port (tcp and udp)"),
        opt("endport", Integer, "the last port; default startport"),
        opt(
            "cidrlist",
            List,
            "the source CIDRs (IPv4 or IPv6); default 0.0.0.0/0,::/0",
        ),
        opt("icmptype", Integer, "the ICMP type (icmp only; -1: any)"),
        opt("icmpcode", Integer, "the ICMP code (icmp only; -1: any)"),
        opt("traffictype", String, "Ingress (default) or Egress"),
        opt(
            "number",
            Integer,
            "the position in the list, unique in it; default one past the highest",
        ),
        opt("action", String, "Allow (default) or Deny"),
        opt("reason", String, "why the item exists"),
        opt("fordisplay", Boolean, "accepted; every item is displayed"),
    ]
}

/// The commands of this file.
pub(super) fn commands() -> Vec<CommandSpec> {
    let mut create_params = vec![
        req(
            "protocol",
            String,
            "tcp, udp, icmp, all or an IP protocol number 0-255",
        ),
        opt("aclid", Uuid, "the ACL list to add the item to"),
        opt(
            "networkid",
            Uuid,
            "without aclid: the tier whose ACL list gets the item",
        ),
    ];
    create_params.extend(item_params());
    let mut update_params = vec![
        req("id", Uuid, "the ID of the ACL item"),
        opt(
            "protocol",
            String,
            "tcp, udp, icmp, all or a protocol number",
        ),
        opt(
            "partialupgrade",
            Boolean,
            "true (default): only the given fields change; false: the others go back \
             to their defaults",
        ),
        opt("customid", String, "accepted; ids cannot be changed"),
    ];
    update_params.extend(item_params());
    let mut list_params = vec![
        opt("id", Uuid, "the ID of the ACL item"),
        opt("networkid", Uuid, "only items of the list of this tier"),
        opt("aclid", Uuid, "only items of this ACL list"),
        opt("traffictype", String, "only Ingress or Egress items"),
        opt("action", String, "only Allow or Deny items"),
        opt("protocol", String, "only items of this protocol"),
        opt("fordisplay", Boolean, "accepted; every item is displayed"),
    ];
    list_params.extend(owner::list_params());
    vec![
        CommandSpec {
            name: "createNetworkACL",
            description: "Adds an item to a network ACL list",
            kind: Kind::AsyncCreate,
            roles: ALL,
            params: create_params,
            object: "networkacl",
            response: item_fields(),
            since: "",
            handler: create_item,
            job: None,
        },
        CommandSpec {
            name: "updateNetworkACLItem",
            description: "Changes an item of a network ACL list",
            kind: Kind::Async,
            roles: ALL,
            params: update_params,
            object: "networkacl",
            response: item_fields(),
            since: "",
            handler: update_item,
            job: None,
        },
        CommandSpec {
            name: "moveNetworkAclItem",
            description: "Moves an item of a network ACL list between two others, renumbering \
                          the items after it when needed",
            kind: Kind::Async,
            roles: ALL,
            params: vec![
                req("id", Uuid, "the ID of the ACL item to move"),
                opt(
                    "previousaclruleid",
                    Uuid,
                    "the item it goes after (absent: to the top)",
                ),
                opt(
                    "nextaclruleid",
                    Uuid,
                    "the item it goes before (absent: to the bottom)",
                ),
                opt(
                    "aclconsistencyhash",
                    String,
                    "MD5 of the list's item IDs in number order, to refuse the move when \
                     the list changed meanwhile",
                ),
            ],
            object: "networkacl",
            response: item_fields(),
            since: "",
            handler: move_item,
            job: None,
        },
        CommandSpec {
            name: "deleteNetworkACL",
            description: "Deletes an item of a network ACL list",
            kind: Kind::Async,
            roles: ALL,
            params: vec![req("id", Uuid, "the ID of the ACL item")],
            object: "networkacl",
            response: vec![],
            since: "",
            handler: delete_item,
            job: None,
        },
        CommandSpec {
            name: "listNetworkACLs",
            description: "Lists the items of network ACL lists",
            kind: Kind::Sync,
            roles: ALL,
            params: list_params,
            object: "networkacl",
            response: item_fields(),
            since: "",
            handler: list_items,
            job: None,
        },
    ]
}

/// The job bodies of this file.
pub(super) fn job_bodies() -> Vec<(&'static str, JobBody)> {
    vec![
        ("createNetworkACL", create_item_job),
        ("updateNetworkACLItem", update_item_job),
        ("moveNetworkAclItem", move_item_job),
        ("deleteNetworkACL", delete_item_job),
    ]
}

/// The list of an item.
async fn list_of(db: &Db, item: &acl::AclItem) -> Result<acl::AclList, Error> {
    acl::get_by_id(db, item.acl_id)
        .await?
        .ok_or_else(|| Error::internal("an ACL item's list is gone"))
}

/// The live item named by `id` with its list (431 when it names none).
async fn item_param(db: &Db, id: &str) -> Result<(acl::AclItem, acl::AclList), Error> {
    let item = acl::item_by_uuid(db, id)
        .await?
        .filter(|i| i.removed.is_none())
        .ok_or_else(|| Error::invalid_id("id", id))?;
    let list = list_of(db, &item).await?;
    Ok((item, list))
}

/// What an item job works on: its VPC (locked while this lives), and the
/// item and its list as they are once the lock is held.
struct ItemJob {
    _guard: OwnedMutexGuard<()>,
    vpc_id: i64,
    item: acl::AclItem,
    list: acl::AclList,
}

/// Locks the job's VPC, then reads its item and list.
async fn job_item(job: &JobCtx, info: &Value) -> Result<ItemJob, Error> {
    let db = &job.app.db;
    let vpc_id = info["vpc_id"].as_i64().unwrap_or_default();
    let _guard = job.app.network.lock_vpc(vpc_id).await;
    let id = info["id"].as_i64().unwrap_or_default();
    let item = acl::item_by_id(db, id)
        .await?
        .filter(|i| i.removed.is_none())
        .ok_or_else(|| Error::invalid("The ACL item was deleted meanwhile"))?;
    let list = list_of(db, &item).await?;
    Ok(ItemJob {
        _guard,
        vpc_id,
        item,
        list,
    })
}

/// Submits the job of a change to `item` of a list of VPC `vpc_id` (info:
/// `id`, `vpc_id` and, when given, `fields`).
async fn submit_item_job(
    ctx: &Ctx,
    item: &acl::AclItem,
    vpc_id: i64,
    fields: Option<Value>,
) -> Result<std::string::String, Error> {
    let mut info = json!({ "id": item.id, "vpc_id": vpc_id });
    if let Some(fields) = fields {
        info["fields"] = fields;
    }
    ctx.submit_job(info, Some(("NetworkAclItem", &item.uuid)), vpc_sync(vpc_id))
        .await
}

/// `{"networkacl": ...}` of the live item `id`.
async fn item_result(db: &Db, id: i64, list: &acl::AclList) -> Result<Value, Error> {
    let item = acl::item_by_id(db, id)
        .await?
        .ok_or_else(|| Error::invalid("The ACL item was deleted meanwhile"))?;
    Ok(json!({ "networkacl": item_view(&item, list) }))
}

handler!(create_item, |ctx, params| {
    let db = &ctx.app.db;
    let list = match (params.uuid("aclid")?, params.uuid("networkid")?) {
        (Some(id), _) => list_param(db, "aclid", &id.to_string()).await?,
        (None, Some(id)) => {
            let (tier, _) = tier_param(ctx, "networkid", &id.to_string()).await?;
            let acl_id = tier.network_acl_id.ok_or_else(|| {
                Error::invalid(format!(
                    "Tier {} has no ACL list to add the item to; attach one with \
                     replaceNetworkACLList or give aclid",
                    tier.uuid
                ))
            })?;
            acl::get_by_id(db, acl_id)
                .await?
                .ok_or_else(|| Error::internal("a tier's ACL list is gone"))?
        }
        (None, None) => {
            return Err(Error::invalid(
                "Give aclid (the ACL list) or networkid (the tier whose list gets the item)",
            ));
        }
    };
    let v = mutable_list_vpc(ctx, &list).await?;
    let fields = fields_of(params)?;
    let _guard = ctx.app.network.lock_vpc(v.id).await;
    // The numbers are read and the item added under the list's row lock, so
    // that parallel creates on any manager number one after another.
    let mut tx = db.begin().await?;
    acl::lock_list(&mut tx, list.id).await?;
    let items = items_of(&mut tx, list.id).await?;
    let checked = checked_new(&fields, &numbers_taken(&items, None))?;
    let reason = fields["reason"].as_str().map(str::to_string);
    let item = acl::create_item(&mut tx, stored(&checked, list.id, reason)).await?;
    tx.commit().await?;
    match submit_item_job(ctx, &item, v.id, None).await {
        Ok(job_id) => Ok(Reply::Created {
            id: item.uuid,
            job_id,
        }),
        Err(e) => {
            log_revert(
                "an item whose job was not submitted",
                acl::remove_item(db, item.id).await,
            );
            Err(e)
        }
    }
});

/// Puts an item in `state` (with the router's generation when the list is
/// on the router) and pushes the list; when the push fails, `undo` runs and
/// the push's error is returned.
async fn set_state_and_push<U, Fut>(
    app: &App,
    vpc_id: i64,
    list: &acl::AclList,
    item_id: i64,
    state: &str,
    undo: U,
) -> Result<(), Error>
where
    U: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let db = &app.db;
    let on_router = list_on_router(db, vpc_id, list).await?;
    let mut tx = db.begin().await?;
    acl::set_item_state(&mut tx, item_id, state).await?;
    let generation = bump_if(&mut tx, vpc_id, on_router).await?;
    tx.commit().await?;
    if let Err(e) = push_list(app, vpc_id, generation, list).await {
        undo().await;
        return Err(e);
    }
    Ok(())
}

job_body!(create_item_job, |job, info| {
    let app = &job.app;
    let db = &app.db;
    let ItemJob {
        _guard,
        vpc_id,
        item,
        list,
    } = job_item(job, info).await?;
    set_state_and_push(app, vpc_id, &list, item.id, acl::ITEM_ADD, || async {
        log_revert("a new ACL item", acl::remove_item(db, item.id).await);
    })
    .await?;
    acl::set_item_state(db, item.id, acl::ITEM_ACTIVE).await?;
    item_result(db, item.id, &list).await
});

handler!(update_item, |ctx, params| {
    let db = &ctx.app.db;
    let id = params.required_uuid(ctx.command, "id")?.to_string();
    let (item, list) = item_param(db, &id).await?;
    let v = mutable_list_vpc(ctx, &list).await?;
    let fields = fields_of(params)?;
    // Checked now for an immediate answer, and again in the job.
    let items = items_of(db, list.id).await?;
    merged(&item, &fields, &numbers_taken(&items, Some(item.id)))?;
    let job_id = submit_item_job(ctx, &item, v.id, Some(fields)).await?;
    Ok(Reply::Job { job_id })
});

job_body!(update_item_job, |job, info| {
    let app = &job.app;
    let db = &app.db;
    let ItemJob {
        _guard,
        vpc_id,
        item,
        list,
    } = job_item(job, info).await?;
    let items = items_of(db, list.id).await?;
    let new = merged(
        &item,
        &info["fields"],
        &numbers_taken(&items, Some(item.id)),
    )?;
    let on_router = list_on_router(db, vpc_id, &list).await?;
    let mut tx = db.begin().await?;
    acl::update_item(&mut tx, item.id, new).await?;
    acl::set_item_state(&mut tx, item.id, acl::ITEM_ADD).await?;
    let generation = bump_if(&mut tx, vpc_id, on_router).await?;
    tx.commit().await?;
    if let Err(e) = push_list(app, vpc_id, generation, &list).await {
        let mut tx = db.begin().await?;
        acl::update_item(&mut tx, item.id, as_new(&item)).await?;
        acl::set_item_state(&mut tx, item.id, &item.state).await?;
        log_revert("an ACL item's old values", tx.commit().await);
        return Err(e);
    }
    acl::set_item_state(db, item.id, acl::ITEM_ACTIVE).await?;
    item_result(db, item.id, &list).await
});

handler!(move_item, |ctx, params| {
    let db = &ctx.app.db;
    let id = params.required_uuid(ctx.command, "id")?.to_string();
    let (item, list) = item_param(db, &id).await?;
    let v = mutable_list_vpc(ctx, &list).await?;
    let fields = json!({
        "previousaclruleid": params.uuid("previousaclruleid")?.map(|u| u.to_string()),
        "nextaclruleid": params.uuid("nextaclruleid")?.map(|u| u.to_string()),
        "aclconsistencyhash": params.string("aclconsistencyhash")?,
    });
    renumbering(&items_of(db, list.id).await?, &item, &fields)?;
    let job_id = submit_item_job(ctx, &item, v.id, Some(fields)).await?;
    Ok(Reply::Job { job_id })
});

job_body!(move_item_job, |job, info| {
    let app = &job.app;
    let db = &app.db;
    let ItemJob {
        _guard,
        vpc_id,
        item,
        list,
    } = job_item(job, info).await?;
    let items = items_of(db, list.id).await?;
    let changes = renumbering(&items, &item, &info["fields"])?;
    if changes.is_empty() {
        // Already in place: nothing changes on the router either.
        return item_result(db, item.id, &list).await;
    }
    let old: Vec<(i64, i64)> = items
        .iter()
        .filter(|i| changes.iter().any(|(id, _)| *id == i.id))
        .map(|i| (i.id, i.number))
        .collect();
    let on_router = list_on_router(db, vpc_id, &list).await?;
    let mut tx = db.begin().await?;
    acl::renumber_items(&mut tx, changes).await?;
    let generation = bump_if(&mut tx, vpc_id, on_router).await?;
    tx.commit().await?;
    if let Err(e) = push_list(app, vpc_id, generation, &list).await {
        log_revert("ACL item numbers", acl::renumber_items(db, old).await);
        return Err(e);
    }
    item_result(db, item.id, &list).await
});

handler!(delete_item, |ctx, params| {
    let db = &ctx.app.db;
    let id = params.required_uuid(ctx.command, "id")?.to_string();
    let (item, list) = item_param(db, &id).await?;
    let v = mutable_list_vpc(ctx, &list).await?;
    let job_id = submit_item_job(ctx, &item, v.id, None).await?;
    Ok(Reply::Job { job_id })
});

job_body!(delete_item_job, |job, info| {
    let app = &job.app;
    let db = &app.db;
    let ItemJob {
        _guard,
        vpc_id,
        item,
        list,
    } = job_item(job, info).await?;
    // Revoked first: the pushed list leaves it out; removed once the
    // router has the list without it.
    set_state_and_push(app, vpc_id, &list, item.id, acl::ITEM_REVOKE, || async {
        log_revert(
            "a revoked ACL item",
            acl::set_item_state(db, item.id, &item.state).await,
        );
    })
    .await?;
    acl::remove_item(db, item.id).await?;
    Ok(json!({ "success": true }))
});

handler!(list_items, |ctx, params| {
    let db = &ctx.app.db;
    let scope = owner::list_scope(ctx, params).await?;
    let page = page(ctx, params).await?;
    let text = |name: &str| -> Result<Option<std::string::String>, Error> {
        Ok(params.string(name)?.filter(|v| !v.is_empty()))
    };
    let mut filter = acl::AclItemFilter {
        uuids: params.uuid("id")?.map(|u| vec![u.to_string()]),
        traffic_type: text("traffictype")?
            .map(|t| TrafficType::parse(Some(&t)).map(traffic_text))
            .transpose()?
            .map(str::to_string),
        action: text("action")?
            .map(|a| Action::parse(Some(&a)).map(action_text))
            .transpose()?
            .map(str::to_string),
        protocol: text("protocol")?
            .map(|p| AclProtocol::parse(&p).map(|p| p.as_string()))
            .transpose()?,
        ..Default::default()
    };
    // A list or tier named explicitly (and accessible) shows its items
    // whatever the ownership filters say; an item named by `id` shows only
    // when its VPC is in the caller's scope, as CloudStack filters by-id
    // lookups by the permitted VPCs. The built-in lists' items (everyone's)
    // show only when asked for, by list or by id.
    let by_id = filter.uuids.is_some();
    let mut named = false;
    if let Some(id) = params.uuid("aclid")? {
        let list = list_param(db, "aclid", &id.to_string()).await?;
        if let Some(v) = vpc_of(db, &list).await? {
            super::check_vpc_access(ctx, &v)?;
        }
        filter.acl_id = Some(list.id);
        named = true;
    }
    if let Some(id) = params.uuid("networkid")? {
        let (tier, _) = tier_param(ctx, "networkid", &id.to_string()).await?;
        match tier.network_acl_id {
            Some(acl_id) if filter.acl_id.is_none_or(|a| a == acl_id) => {
                filter.acl_id = Some(acl_id);
                named = true;
            }
            _ => {
                return Ok(Reply::List {
                    count: 0,
                    items: vec![],
                });
            }
        }
    }
    let keyword = text("keyword")?.map(|k| k.to_lowercase());
    let mut lists: HashMap<i64, (acl::AclList, Option<vpc::Vpc>)> = HashMap::new();
    let mut shown = Vec::new();
    for item in acl::list_items(db, &filter, Page::ALL).await?.items {
        if let Some(k) = &keyword {
            let reason = item.reason.as_deref().unwrap_or_default().to_lowercase();
            if !reason.contains(k) && !item.protocol.to_lowercase().contains(k) {
                continue;
            }
        }
        if let std::collections::hash_map::Entry::Vacant(e) = lists.entry(item.acl_id) {
            let Some(list) = acl::get_by_id(db, item.acl_id).await? else {
                continue;
            };
            let v = vpc_of(db, &list).await?;
            e.insert((list, v));
        }
        let visible = match &lists[&item.acl_id].1 {
            None => named || by_id,
            Some(v) => named || scope_covers(&scope, v),
        };
        if visible {
            shown.push(item);
        }
    }
    let count = shown.len() as u64;
    let items = page_of(shown, page)
        .iter()
        .map(|i| item_view(i, &lists[&i.acl_id].0))
        .collect();
    Ok(Reply::List { count, items })
});
