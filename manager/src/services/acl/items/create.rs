//! `createNetworkACL` (async-create): the item's row (Staged) in the request,
//! numbered under the list's row lock; the job sends the list with it to the
//! router (`ItemEdit::New`) and makes it Active. With `networkid` on a tier
//! that has no list, the list is made and attached first, as CloudStack does.

use serde_json::Value;
use uuid::Uuid;

use super::super::{list_param, list_sync, mutable_list_vpc, tier_param};
use super::changes::{ItemEdit, apply_edit};
use super::rows::{ItemFields, checked_new, numbers_to_check, stored};
use super::{
    ItemJob, ListLock, LockedItem, fields_of, item_params, item_result, item_spec, list_of,
    revoke_and_remove,
};
use crate::error::Error;
use crate::rules::acl::GlobalRefusal;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Id, Spec, Submission, Text};
use crate::server::jobs::JobCtx;
use crate::server::{App, Ctx};
use crate::store::{Db, Tx, acl, network, offering, vpc};

const PROTOCOL: Arg<Text> = Arg::req(
    "protocol",
    "tcp, udp, icmp, all or an IP protocol number 0-255",
);
const ACL: Arg<Id> = Arg::opt("aclid", "the ACL list to add the item to");
const TIER: Arg<Id> = Arg::opt(
    "networkid",
    "without aclid: the tier whose ACL list gets the item",
);

/// `createNetworkACL`.
pub struct CreateAclItem {
    acl: Option<Uuid>,
    tier: Option<Uuid>,
    fields: ItemFields,
}

impl Command for CreateAclItem {
    const NAME: &'static str = "createNetworkACL";

    fn spec() -> Spec {
        let mut params = vec![PROTOCOL.spec(), ACL.spec(), TIER.spec()];
        params.extend(item_params());
        item_spec("Adds an item to a network ACL list", params)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(CreateAclItem {
            acl: args.get(&ACL)?,
            tier: args.get(&TIER)?,
            fields: fields_of(args, Some(args.need(&PROTOCOL)?), None)?,
        })
    }
}

impl AsyncCommand for CreateAclItem {
    /// Safe to run again: it marks the stored item Add, sends its list and marks it Active, from
    /// whatever state a cut-off run left.
    const RERUN: bool = true;
    const CREATES: bool = true;
    type Job = ItemJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<ItemJob>, Error> {
        let db = &ctx.app.db;
        // The list (None: the tier's, made below), the VPC whose lock and
        // jobs order the item (None: a global list) and the tier without a
        // list.
        let (list, vpc, bare_tier) = match (self.acl, self.tier) {
            (Some(id), _) => {
                let list = list_param(db, ACL.name(), id).await?;
                let v = mutable_list_vpc(ctx, &list, GlobalRefusal::CreateItem).await?;
                (Some(list), v, None)
            }
            (None, Some(id)) => {
                let (tier, v) = tier_param(ctx, TIER.name(), id).await?;
                match tier.network_acl_id {
                    Some(acl_id) => {
                        let list = acl::get_by_id(db, acl_id)
                            .await?
                            .ok_or_else(|| Error::internal("a tier's ACL list is gone"))?;
                        let v = mutable_list_vpc(ctx, &list, GlobalRefusal::CreateItem).await?;
                        (Some(list), v, None)
                    }
                    None => {
                        check_tier_offering_has_acl(db, &tier).await?;
                        (None, Some(v), Some(tier))
                    }
                }
            }
            (None, None) => {
                return Err(Error::invalid(
                    "Give aclid (the ACL list) or networkid (the tier whose list gets the item)",
                ));
            }
        };
        let vpc_id = vpc.as_ref().map(|v| v.id);
        let (item, list) = {
            // A global list's items are numbered under its row lock alone:
            // its jobs, not the item's row, wait for the VPCs' locks.
            let _lock = match vpc_id {
                Some(v) => Some(ctx.app.network.lock(db, v).await?),
                None => None,
            };
            // The numbers are read and the item added under the list's row
            // lock, so that parallel creates on any manager number one after
            // another.
            let mut tx = db.begin().await?;
            let list = match (list, bare_tier, &vpc) {
                (Some(list), _, _) => list,
                (None, Some(tier), Some(v)) => list_for_bare_tier(&mut tx, v, &tier).await?,
                _ => return Err(Error::internal("no ACL list and no tier")),
            };
            acl::lock_list(&mut tx, list.id).await?;
            if acl::get_by_id(&mut tx, list.id)
                .await?
                .is_none_or(|l| l.removed.is_some())
            {
                return Err(Error::invalid("The ACL list was deleted meanwhile"));
            }
            // Counted by the database: a list of 10,000 items is not read
            // to add one.
            let numbers = acl::item_numbers(&mut tx, list.id, self.fields.number, None).await?;
            // A list grows only here; the router agent bounds it again.
            let max = crate::store::config::value_i64(&mut tx, "network.acl.max.items")
                .await?
                .unwrap_or(i64::MAX);
            if numbers.count >= max {
                return Err(Error::limit_exceeded(format!(
                    "Number of items per network ACL list cannot surpass [{max}] \
                     (network.acl.max.items): list {} already has {} items",
                    list.uuid, numbers.count
                )));
            }
            let checked = checked_new(&self.fields, &numbers_to_check(&numbers))?;
            let item =
                acl::create_item(&mut tx, stored(&checked, list.id, self.fields.reason)).await?;
            tx.commit().await?;
            (item, list)
        };
        Ok(Submission::created(
            ItemJob {
                id: item.id,
                vpc_id,
            },
            ("NetworkAclItem", item.uuid),
            list_sync(&list, vpc_id),
        ))
    }

    async fn run(job: &JobCtx, payload: ItemJob) -> Result<Value, Error> {
        let db = &job.app.db;
        let LockedItem { lock, item, list } =
            LockedItem::take(&job.app, payload.id, payload.vpc_id).await?;
        apply_edit(&lock, &list, ItemEdit::New { item_id: item.id }).await?;
        acl::set_item_state(db, item.id, acl::ITEM_ACTIVE).await?;
        item_result(db, item.id, &list).await
    }

    /// The item goes, as when its push fails. One that never left Staged
    /// is only a row; one the job had started to send may be on the router,
    /// so it leaves through the change protocol, as deleteNetworkACL's do.
    async fn abandon(app: &App, payload: ItemJob) -> Result<(), Error> {
        let db = &app.db;
        let lock = ListLock::take(app, payload.vpc_id).await?;
        let Some(item) = acl::item_by_id(db, payload.id)
            .await?
            .filter(|i| i.removed.is_none())
        else {
            return Ok(());
        };
        if item.state == acl::ITEM_STAGED {
            acl::remove_item(db, item.id).await?;
            return Ok(());
        }
        let list = list_of(db, &item).await?;
        revoke_and_remove(&LockedItem { lock, item, list }).await
    }
}

/// CloudStack creates a list for a tier that has none only when its offering
/// gives the NetworkACL service (NetworkACLServiceImpl, its text).
async fn check_tier_offering_has_acl(db: &Db, tier: &network::Network) -> Result<(), Error> {
    let services = offering::network_offering_services(db, tier.network_offering_id).await?;
    if services.iter().any(|s| s.service == "NetworkACL") {
        Ok(())
    } else {
        Err(Error::invalid(
            "Network Offering does not support NetworkACL service",
        ))
    }
}

/// The list of a tier that had none when `createNetworkACL networkid=` came:
/// as CloudStack does for backward compatibility, a new list of the VPC,
/// named `VPC_<vpc>_Tier_<tier>_ACL_<tier uuid>`, attached to the tier in the
/// item's transaction. The item's job then pushes the list, which the router
/// state already shows on the tier. A tier that got a list meanwhile keeps it.
async fn list_for_bare_tier(
    tx: &mut Tx,
    v: &vpc::Vpc,
    tier: &network::Network,
) -> Result<acl::AclList, Error> {
    let live = network::get_by_id(&mut *tx, tier.id)
        .await?
        .filter(|t| t.removed.is_none())
        .ok_or_else(|| Error::invalid("The tier was deleted meanwhile"))?;
    if let Some(acl_id) = live.network_acl_id {
        return acl::get_by_id(&mut *tx, acl_id)
            .await?
            .ok_or_else(|| Error::internal("a tier's ACL list is gone"));
    }
    let name = format!("VPC_{}_Tier_{}_ACL_{}", v.name, tier.name, tier.uuid);
    let description = format!("ACL for {name}");
    let list = acl::create_list(&mut *tx, v.id, &name, &description).await?;
    network::set_acl(&mut *tx, tier.id, Some(list.id)).await?;
    Ok(list)
}
