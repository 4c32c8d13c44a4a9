//! ACL items (reference §2.8, §3.8), one command per file: createNetworkACL,
//! updateNetworkACLItem, moveNetworkAclItem, deleteNetworkACL and
//! listNetworkACLs.
//!
//! Every change of an item is a `RouterChange` (`changes`) applied under
//! its VPC's lock: the item's row changes with the router's generation in one
//! transaction, then the whole list goes to the router; a failed push puts
//! the row back as it was and fails the job. An item of a global list is
//! changed the same way under the locks of every VPC using the list, and
//! reaches all their routers (`changes::apply_edit`).

mod changes;
mod create;
mod delete;
mod list;
mod move_item;
mod rows;
mod update;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::item_view;
use super::list_sync;
use crate::error::Error;
use crate::provision::change::VpcLock;
use crate::server::App;
use crate::server::command::{Arg, Args, Flag, Int, Spec, Submission, Text, Texts};
use crate::server::registry::{ALL, FieldSpec, ParamSpec, field};
use crate::store::{Db, acl};
use rows::ItemFields;
use uuid::Uuid;

pub use create::CreateAclItem;
pub use delete::DeleteAclItem;
pub use list::ListAclItems;
pub use move_item::MoveAclItem;
pub use update::UpdateAclItem;

const ITEM_FIELDS: &[FieldSpec] = &[
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
    // Not CloudStack's: the router's per-item hit counters.
    field(
        "packets",
        "long",
        "listNetworkACLs only, not in CloudStack: the packets this item decided on the \
         VPC's router since it was applied (summed over the tiers using the list); \
         absent when the router did not answer within a second",
    ),
    field(
        "bytes",
        "long",
        "listNetworkACLs only, not in CloudStack: the bytes of those packets",
    ),
];

// The parameters describing an item, shared by create and update.
const START_PORT: Arg<Int> = Arg::opt("startport", "the first port (tcp and udp)");
const END_PORT: Arg<Int> = Arg::opt("endport", "the last port; default startport");
const CIDRS: Arg<Texts> = Arg::opt(
    "cidrlist",
    "the source CIDRs (IPv4 or IPv6); default 0.0.0.0/0,::/0",
);
const ICMP_TYPE: Arg<Int> = Arg::opt("icmptype", "the ICMP type (icmp only; -1: any)");
const ICMP_CODE: Arg<Int> = Arg::opt("icmpcode", "the ICMP code (icmp only; -1: any)");
const TRAFFIC_TYPE: Arg<Text> = Arg::opt("traffictype", "Ingress (default) or Egress");
const NUMBER: Arg<Int> = Arg::opt(
    "number",
    "the position in the list, unique in it; default one past the highest",
);
const ACTION: Arg<Text> = Arg::opt("action", "Allow (default) or Deny");
const REASON: Arg<Text> = Arg::opt("reason", "why the item exists");
const FOR_DISPLAY: Arg<Flag> = Arg::opt("fordisplay", "accepted; every item is displayed");

/// What `listApis` shows of the parameters describing an item.
fn item_params() -> Vec<ParamSpec> {
    vec![
        START_PORT.spec(),
        END_PORT.spec(),
        CIDRS.spec(),
        ICMP_TYPE.spec(),
        ICMP_CODE.spec(),
        TRAFFIC_TYPE.spec(),
        NUMBER.spec(),
        ACTION.spec(),
        REASON.spec(),
        FOR_DISPLAY.spec(),
    ]
}

/// The item fields of a request; `protocol` and `partial` are read by the
/// command (create requires the protocol, only update has
/// `partialupgrade`).
fn fields_of(
    args: &Args<'_>,
    protocol: Option<String>,
    partial: Option<bool>,
) -> Result<ItemFields, Error> {
    Ok(ItemFields {
        protocol: protocol.filter(|p| !p.is_empty()),
        start_port: args.get(&START_PORT)?.map(i64::from),
        end_port: args.get(&END_PORT)?.map(i64::from),
        icmp_type: args.get(&ICMP_TYPE)?.map(i64::from),
        icmp_code: args.get(&ICMP_CODE)?.map(i64::from),
        cidrs: args.get(&CIDRS)?,
        action: args.text(&ACTION)?,
        traffic_type: args.text(&TRAFFIC_TYPE)?,
        number: args.get(&NUMBER)?.map(i64::from),
        reason: args.get(&REASON)?,
        partial,
    })
}

/// The job of a command on one item: the item and its VPC, by row id (no
/// VPC: an item of a global list).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemJob {
    pub id: i64,
    pub vpc_id: Option<i64>,
}

/// The job of a command that changes one item as its `fields` say
/// (updateNetworkACLItem, moveNetworkAclItem): the item and its VPC, by
/// row id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EditJob<F> {
    pub id: i64,
    pub vpc_id: Option<i64>,
    pub fields: F,
}

/// A job on the live `item` of `list`: its instance is the item, and it
/// runs one at a time with the other jobs of its VPC (of its list, for a
/// global list).
fn item_submission<J>(
    job: J,
    item: &acl::AclItem,
    list: &acl::AclList,
    vpc_id: Option<i64>,
) -> Submission<J> {
    Submission::new(job, ("NetworkAclItem", item.uuid), list_sync(list, vpc_id))
}

/// The spec of a command that answers with items (`networkacl`).
fn item_spec(description: &'static str, params: Vec<ParamSpec>) -> Spec {
    Spec::new(description)
        .roles(ALL)
        .params(params)
        .returns("networkacl", ITEM_FIELDS)
}

/// The list of an item.
async fn list_of(db: &Db, item: &acl::AclItem) -> Result<acl::AclList, Error> {
    acl::get_by_id(db, item.acl_id)
        .await?
        .ok_or_else(|| Error::internal("an ACL item's list is gone"))
}

/// The live item named by `id` with its list (431 when it names none).
async fn item_param(db: &Db, id: Uuid) -> Result<(acl::AclItem, acl::AclList), Error> {
    let item = acl::item_by_uuid(db, id)
        .await?
        .filter(|i| i.removed.is_none())
        .ok_or_else(|| Error::invalid_id("id", id))?;
    let list = list_of(db, &item).await?;
    Ok((item, list))
}

/// The lock an item change runs under: its VPC's, or, for a global list,
/// none yet: the change takes the locks of the VPCs using the list when it
/// is applied (`changes::apply_edit`), while the list's sync object keeps
/// its jobs one at a time.
pub(super) enum ListLock<'a> {
    Vpc(VpcLock<'a>),
    Global(&'a App),
}

impl<'a> ListLock<'a> {
    /// Takes the lock of `vpc_id` (nothing for a global list).
    async fn take(app: &'a App, vpc_id: Option<i64>) -> Result<Self, Error> {
        Ok(match vpc_id {
            Some(v) => ListLock::Vpc(app.network.lock(&app.db, v).await?),
            None => ListLock::Global(app),
        })
    }

    /// The store.
    fn db(&self) -> &'a Db {
        match self {
            ListLock::Vpc(l) => l.db(),
            ListLock::Global(app) => &app.db,
        }
    }
}

/// What an item job works on: its VPC's lock, and the item and its list as
/// they are once the lock is held.
struct LockedItem<'a> {
    lock: ListLock<'a>,
    item: acl::AclItem,
    list: acl::AclList,
}

impl<'a> LockedItem<'a> {
    /// Locks the job's VPC, then reads its item and list.
    async fn take(app: &'a App, id: i64, vpc_id: Option<i64>) -> Result<Self, Error> {
        let db = &app.db;
        let lock = ListLock::take(app, vpc_id).await?;
        let item = acl::item_by_id(db, id)
            .await?
            .filter(|i| i.removed.is_none())
            .ok_or_else(|| Error::invalid("The ACL item was deleted meanwhile"))?;
        let list = list_of(db, &item).await?;
        Ok(LockedItem { lock, item, list })
    }
}

/// `{"networkacl": ...}` of the live item `id`.
async fn item_result(db: &Db, id: i64, list: &acl::AclList) -> Result<Value, Error> {
    let item = acl::item_by_id(db, id)
        .await?
        .ok_or_else(|| Error::invalid("The ACL item was deleted meanwhile"))?;
    Ok(json!({ "networkacl": item_view(&item, list) }))
}

/// Revokes the locked item through the change protocol (the pushed list
/// leaves it out), then removes its row once the router has the list
/// without it: deleteNetworkACL, and a createNetworkACL whose job died.
async fn revoke_and_remove(locked: &LockedItem<'_>) -> Result<(), Error> {
    let LockedItem { lock, item, list } = locked;
    let db = lock.db();
    let edit = changes::ItemEdit::Revoked {
        item_id: item.id,
        old_state: item.state,
    };
    changes::apply_edit(lock, list, edit).await?;
    acl::remove_item(db, item.id).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_jobs_read_rows_of_the_previous_version_and_of_global_lists() {
        let old: ItemJob = serde_json::from_str(r#"{"id":3,"vpc_id":2}"#).unwrap();
        assert_eq!((old.id, old.vpc_id), (3, Some(2)));
        let global: ItemJob = serde_json::from_str(r#"{"id":3,"vpc_id":null}"#).unwrap();
        assert_eq!(global.vpc_id, None);
        let edit: EditJob<u8> = serde_json::from_str(r#"{"id":4,"vpc_id":7,"fields":1}"#).unwrap();
        assert_eq!(edit.vpc_id, Some(7));
    }
}
