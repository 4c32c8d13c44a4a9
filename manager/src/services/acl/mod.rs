//! Network ACL lists and their items (CloudStack reference §2.8, §3.8), one
//! command per file.
//!
//! A list belongs to one VPC, or is global: one of the two built-in lists
//! `default_allow` / `default_deny` that everyone sees and no one changes,
//! or a list the root admin made without a VPC, which everyone sees and
//! uses and only the root admin changes (CloudStack's vpc id 0). A list is
//! attached to tiers and private gateways of its VPC (a global one to those
//! of any VPC); every change to its items pushes the whole list, sorted by
//! number, to every NIC of the router that uses it
//! (`NetworkAcl::apply_network_acl`). Each kind of change is a
//! [`RouterChange`](crate::provision::change::RouterChange) applied through
//! the VPC's lock, so a push that fails undoes the change; a change to a
//! global list's items is a
//! [`SharedChange`](crate::provision::change::SharedChange) applied under the
//! locks of every VPC using the list (`items::changes`).
//!
//! - [`lists`]: createNetworkACLList, updateNetworkACLList,
//!   deleteNetworkACLList, listNetworkACLLists, replaceNetworkACLList;
//! - [`items`]: createNetworkACL, updateNetworkACLItem, moveNetworkAclItem,
//!   deleteNetworkACL, listNetworkACLs;
//! - [`md5`]: the digest of moveNetworkAclItem's `aclconsistencyhash`.

mod items;
mod lists;
mod md5;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::Error;
use crate::orchestration::model::RouterState;
use crate::orchestration::{ElementResult, NetworkAcl};
use crate::provision::{self, RouterElement};
use crate::rules::acl::GlobalRefusal;
use crate::server::Ctx;
use crate::server::jobs::vpc_sync;
use crate::server::registry::Registry;
use crate::services::vpc::check_vpc_access;
use crate::store::{Db, acl, network, vpc};

pub use items::{CreateAclItem, DeleteAclItem, ListAclItems, MoveAclItem, UpdateAclItem};
pub use lists::{CreateAclList, DeleteAclList, ListAclLists, ReplaceAclList, UpdateAclList};

/// Registers the ACL commands.
pub fn register(registry: &mut Registry) {
    registry.job::<CreateAclList>();
    registry.job::<UpdateAclList>();
    registry.job::<DeleteAclList>();
    registry.sync::<ListAclLists>();
    registry.job::<ReplaceAclList>();
    registry.job::<CreateAclItem>();
    registry.job::<UpdateAclItem>();
    registry.job::<MoveAclItem>();
    registry.job::<DeleteAclItem>();
    registry.sync::<ListAclItems>();
}

/// The rules' picture of a stored list.
fn rules_list(list: &acl::AclList) -> crate::rules::acl::AclList<'_> {
    crate::rules::acl::AclList {
        name: &list.name,
        is_default: list.is_builtin(),
        is_global: list.is_global,
    }
}

/// The live list named by parameter `param` (431 when it names none).
async fn list_param(db: &Db, param: &str, id: Uuid) -> Result<acl::AclList, Error> {
    acl::get_by_uuid(db, id)
        .await?
        .filter(|l| l.removed.is_none())
        .ok_or_else(|| Error::invalid_id(param, id))
}

/// The live VPC of a list (None for the built-ins).
async fn vpc_of(db: &Db, list: &acl::AclList) -> Result<Option<vpc::Vpc>, Error> {
    match list.vpc_id {
        None => Ok(None),
        Some(id) => Ok(Some(vpc::get_by_id(db, id).await?.ok_or_else(|| {
            Error::internal(format!("the VPC of ACL list {} is gone", list.uuid))
        })?)),
    }
}

/// The VPC of a list the caller wants to change (None for a global list):
/// the built-ins are refused (431, CloudStack's "cannot be modified"), a
/// global list to anyone but the root admin (531 with `refusal`), and a
/// list of a VPC the caller may not act on (531).
async fn mutable_list_vpc(
    ctx: &Ctx,
    list: &acl::AclList,
    refusal: GlobalRefusal,
) -> Result<Option<vpc::Vpc>, Error> {
    crate::rules::acl::check_list_modifiable(
        &rules_list(list),
        ctx.caller.is_root_admin(),
        refusal,
    )?;
    if list.is_global {
        return Ok(None);
    }
    let v = vpc_of(&ctx.app.db, list)
        .await?
        .ok_or_else(|| Error::internal("a list that is not built-in has no VPC"))?;
    check_vpc_access(ctx, &v)?;
    Ok(Some(v))
}

/// The sync object of the jobs that change a global list or its items.
///
/// A job has one sync object, and the jobs of one VPC run one at a time on
/// `vpc:<id>`. A change to a global list reaches the routers of many VPCs;
/// queueing it on each of their sync objects would need a job to hold
/// several queues at once, and two such jobs could each wait at the head of
/// a queue the other needs. So its jobs queue on the list (one change of
/// the list's items at a time, in submission order, as the items' numbers
/// and moves must see each other), and each job orders itself against the
/// VPCs' own jobs by their locks, taken in ascending VPC id
/// ([`VpcLockSet`](crate::provision::change::VpcLockSet)): a
/// replaceNetworkACLList on one of those VPCs runs wholly before or wholly
/// after it.
fn global_list_sync(list_id: i64) -> String {
    format!("networkacl:{list_id}")
}

/// The sync object of a job changing `list` (or its items) whose VPC is
/// `vpc_id` (None: a global list).
fn list_sync(list: &acl::AclList, vpc_id: Option<i64>) -> String {
    match vpc_id {
        Some(v) => vpc_sync(v),
        None => global_list_sync(list.id),
    }
}

/// The live tier named by `id` (431 when it names none or not a VPC tier)
/// and its VPC, which the caller must be allowed to act on (531).
async fn tier_param(
    ctx: &Ctx,
    param: &str,
    id: Uuid,
) -> Result<(network::Network, vpc::Vpc), Error> {
    let db = &ctx.app.db;
    let tier = network::get_by_uuid(db, id)
        .await?
        .filter(|n| n.removed.is_none())
        .ok_or_else(|| Error::invalid_id(param, id))?;
    let Some(vpc_id) = tier
        .vpc_id
        .filter(|_| tier.traffic_type == network::TRAFFIC_GUEST)
    else {
        return Err(Error::invalid(format!(
            "Network {id} is not a tier of a VPC: network ACLs apply to VPC tiers only"
        )));
    };
    let v = vpc::get_by_id(db, vpc_id)
        .await?
        .ok_or_else(|| Error::internal(format!("the VPC of tier {id} is gone")))?;
    check_vpc_access(ctx, &v)?;
    Ok((tier, v))
}

/// `networkacllist` of a list response; `v` is the list's VPC (none for
/// the built-in lists).
fn list_view(list: &acl::AclList, v: Option<&vpc::Vpc>) -> Value {
    let mut view = json!({
        "id": list.uuid,
        "name": list.name,
        "description": list.description,
        "fordisplay": true,
    });
    if let Some(v) = v {
        view["vpcid"] = json!(v.uuid);
        view["vpcname"] = json!(v.name);
    }
    view
}

/// `networkacl` of an item response: ports and `cidrlist` are strings,
/// ICMP type/code and `number` numbers (reference §2.8).
fn item_view(item: &acl::AclItem, list: &acl::AclList) -> Value {
    let mut view = json!({
        "id": item.uuid,
        "protocol": item.protocol,
        "traffictype": item.traffic_type,
        "state": item.state,
        "cidrlist": item.cidrs().join(","),
        "aclid": list.uuid,
        "aclname": list.name,
        "number": item.number,
        "action": item.action,
        "fordisplay": true,
        "tags": [],
    });
    if let Some(p) = item.start_port {
        view["startport"] = json!(p.to_string());
    }
    if let Some(p) = item.end_port {
        view["endport"] = json!(p.to_string());
    }
    if let Some(t) = item.icmp_type {
        view["icmptype"] = json!(t);
    }
    if let Some(c) = item.icmp_code {
        view["icmpcode"] = json!(c);
    }
    if let Some(r) = &item.reason {
        view["reason"] = json!(r);
    }
    view
}

/// The id the router state gives a stored list.
fn list_uuid(list: &acl::AclList) -> Result<Uuid, Error> {
    Ok(list.uuid)
}

/// Whether the list is on the VPC's router: attached to a tier or private
/// gateway that has a NIC there. Only then does a change of its items reach
/// the router (bump its generation and get pushed); otherwise the change is
/// stored and goes with the next full configuration. Read from the NICs,
/// tiers and gateways alone: no item of any list.
async fn list_on_router(db: &Db, vpc_id: i64, list: &acl::AclList) -> Result<bool, Error> {
    Ok(provision::state::acl_lists_on_router(db, vpc_id)
        .await?
        .binary_search(&list.id)
        .is_ok())
}

/// Pushes the list `id` — all its live items, sorted by number — to every
/// tier and private gateway of `state` that uses it (nothing when none
/// does any more).
async fn push_list(
    element: &RouterElement,
    state: &RouterState,
    generation: u64,
    id: Uuid,
) -> ElementResult {
    let Some(view) = state.acl_list(id) else {
        return Ok(());
    };
    element
        .apply_network_acl(
            &state.router,
            generation,
            view,
            &state.tiers,
            &state.private_gateways,
        )
        .await
}
