//! `updateNetworkACLItem`: new values for an item, checked when asked and
//! again in the job (`ItemEdit::Updated`: the old row comes back when the
//! router refuses the list).

use serde_json::Value;
use uuid::Uuid;

use super::super::mutable_list_vpc;
use super::changes::{ItemEdit, apply_edit};
use super::rows::{ItemFields, merged};
use super::{
    EditJob, LockedItem, fields_of, item_param, item_params, item_result, item_spec,
    item_submission,
};
use crate::error::Error;
use crate::rules::acl::GlobalRefusal;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Flag, Id, Spec, Submission, Text};
use crate::server::jobs::JobCtx;
use crate::services::args::CUSTOM_ID;
use crate::store::{Db, acl};

const ID: Arg<Id> = Arg::req("id", "the ID of the ACL item");
const PROTOCOL: Arg<Text> = Arg::opt("protocol", "tcp, udp, icmp, all or a protocol number");
const PARTIAL: Arg<Flag> = Arg::opt(
    "partialupgrade",
    "true (default): only the given fields change; false: the others go back \
     to their defaults",
);

/// `updateNetworkACLItem`.
pub struct UpdateAclItem {
    id: Uuid,
    fields: ItemFields,
}

/// The job of `updateNetworkACLItem`: the item, its VPC and the new fields.
pub type UpdateAclItemJob = EditJob<ItemFields>;

impl Command for UpdateAclItem {
    const NAME: &'static str = "updateNetworkACLItem";

    fn spec() -> Spec {
        let mut params = vec![ID.spec(), PROTOCOL.spec(), PARTIAL.spec(), CUSTOM_ID.spec()];
        params.extend(item_params());
        item_spec("Changes an item of a network ACL list", params)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(UpdateAclItem {
            id: args.need(&ID)?,
            fields: fields_of(args, args.get(&PROTOCOL)?, args.get(&PARTIAL)?)?,
        })
    }
}

impl AsyncCommand for UpdateAclItem {
    /// Safe to run again: it merges the stored fields into the item as it is now and sends its
    /// list.
    const RERUN: bool = true;
    type Job = UpdateAclItemJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<UpdateAclItemJob>, Error> {
        let db = &ctx.app.db;
        let (item, list) = item_param(db, self.id).await?;
        let v = mutable_list_vpc(ctx, &list, GlobalRefusal::UpdateItem).await?;
        // Checked now for an immediate answer, and again in the job.
        merged(
            &item,
            &self.fields,
            &taken_by_others(db, &item, &self.fields).await?,
        )?;
        let vpc_id = v.map(|v| v.id);
        let job = UpdateAclItemJob {
            id: item.id,
            vpc_id,
            fields: self.fields,
        };
        Ok(item_submission(job, &item, &list, vpc_id))
    }

    async fn run(job: &JobCtx, payload: UpdateAclItemJob) -> Result<Value, Error> {
        let db = &job.app.db;
        let LockedItem { lock, item, list } =
            LockedItem::take(&job.app, payload.id, payload.vpc_id).await?;
        let taken = taken_by_others(db, &item, &payload.fields).await?;
        let new = merged(&item, &payload.fields, &taken)?;
        let id = item.id;
        apply_edit(
            &lock,
            &list,
            ItemEdit::Updated {
                old: Box::new(item),
                new,
            },
        )
        .await?;
        acl::set_item_state(db, id, acl::ITEM_ACTIVE).await?;
        item_result(db, id, &list).await
    }
}

/// The number the updated `item` would take when another item of its list
/// has it (what [`merged`] refuses), counted by the database: the list's
/// other items are not read.
async fn taken_by_others(
    db: &Db,
    item: &acl::AclItem,
    fields: &ItemFields,
) -> Result<Vec<u32>, Error> {
    let number = fields.number.unwrap_or(item.number);
    let numbers = acl::item_numbers(db, item.acl_id, Some(number), Some(item.id)).await?;
    Ok(numbers
        .taken
        .and_then(|n| u32::try_from(n).ok())
        .into_iter()
        .collect())
}
