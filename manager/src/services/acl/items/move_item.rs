//! `moveNetworkAclItem`: an item goes between two others, the items after it
//! renumbered when needed (`ItemEdit::Renumbered`: the old numbers come back when
//! the router refuses the list). Refused when the client saw the list in
//! another order (`aclconsistencyhash`).

use serde_json::Value;
use uuid::Uuid;

use super::super::mutable_list_vpc;
use super::changes::{ItemEdit, apply_edit};
use super::rows::{MoveFields, renumbering};
use super::{EditJob, LockedItem, item_param, item_result, item_spec, item_submission};
use crate::error::Error;
use crate::rules::acl::GlobalRefusal;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Id, Spec, Submission, Text};
use crate::server::jobs::JobCtx;
use crate::store::acl;

const ID: Arg<Id> = Arg::req("id", "the ID of the ACL item to move");
const PREVIOUS: Arg<Id> = Arg::opt(
    "previousaclruleid",
    "the item it goes after (absent: to the top)",
);
const NEXT: Arg<Id> = Arg::opt(
    "nextaclruleid",
    "the item it goes before (absent: to the bottom)",
);
const CONSISTENCY_HASH: Arg<Text> = Arg::opt(
    "aclconsistencyhash",
    "MD5 of the list's item IDs in number order, to refuse the move when \
     the list changed meanwhile",
);

/// `moveNetworkAclItem`.
pub struct MoveAclItem {
    id: Uuid,
    fields: MoveFields,
}

/// The job of `moveNetworkAclItem`: the item, its VPC and where it goes.
pub type MoveAclItemJob = EditJob<MoveFields>;

impl Command for MoveAclItem {
    const NAME: &'static str = "moveNetworkAclItem";

    fn spec() -> Spec {
        item_spec(
            "Moves an item of a network ACL list between two others, renumbering \
             the items after it when needed",
            vec![
                ID.spec(),
                PREVIOUS.spec(),
                NEXT.spec(),
                CONSISTENCY_HASH.spec(),
            ],
        )
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(MoveAclItem {
            id: args.need(&ID)?,
            fields: MoveFields {
                previous: args.get(&PREVIOUS)?.map(|u| u.to_string()),
                next: args.get(&NEXT)?.map(|u| u.to_string()),
                consistency_hash: args.get(&CONSISTENCY_HASH)?,
            },
        })
    }
}

impl AsyncCommand for MoveAclItem {
    /// Safe to run again: the renumbering is computed from the numbers as they are now; one already
    /// in place changes nothing.
    const RERUN: bool = true;
    type Job = MoveAclItemJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<MoveAclItemJob>, Error> {
        let db = &ctx.app.db;
        let (item, list) = item_param(db, self.id).await?;
        let vpc_id = mutable_list_vpc(ctx, &list, GlobalRefusal::MoveItem)
            .await?
            .map(|v| v.id);
        renumbering(&acl::item_places(db, list.id).await?, &item, &self.fields)?;
        let job = MoveAclItemJob {
            id: item.id,
            vpc_id,
            fields: self.fields,
        };
        Ok(item_submission(job, &item, &list, vpc_id))
    }

    async fn run(job: &JobCtx, payload: MoveAclItemJob) -> Result<Value, Error> {
        let db = &job.app.db;
        let LockedItem { lock, item, list } =
            LockedItem::take(&job.app, payload.id, payload.vpc_id).await?;
        let items = acl::item_places(db, list.id).await?;
        let numbers = renumbering(&items, &item, &payload.fields)?;
        if numbers.is_empty() {
            // Already in place: nothing changes on the router either.
            return item_result(db, item.id, &list).await;
        }
        let old = items
            .iter()
            .filter(|i| numbers.iter().any(|(id, _)| *id == i.id))
            .map(|i| (i.id, i.number))
            .collect();
        apply_edit(&lock, &list, ItemEdit::Renumbered { numbers, old }).await?;
        item_result(db, item.id, &list).await
    }
}
