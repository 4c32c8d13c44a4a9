//! `deleteNetworkACL`: the item is revoked through the change protocol (the
//! pushed list leaves it out), then removed once the router has the list
//! without it.

use serde_json::{Value, json};
use uuid::Uuid;

use super::super::mutable_list_vpc;
use super::{ItemJob, LockedItem, item_param, item_submission, revoke_and_remove};
use crate::error::Error;
use crate::rules::acl::GlobalRefusal;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Id, Spec, Submission};
use crate::server::jobs::JobCtx;
use crate::server::registry::ALL;
use crate::store::acl;

const ID: Arg<Id> = Arg::req("id", "the ID of the ACL item");

/// `deleteNetworkACL`.
pub struct DeleteAclItem {
    id: Uuid,
}

impl Command for DeleteAclItem {
    const NAME: &'static str = "deleteNetworkACL";

    fn spec() -> Spec {
        Spec::new("Deletes an item of a network ACL list")
            .roles(ALL)
            .param(ID)
            .returns("networkacl", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DeleteAclItem {
            id: args.need(&ID)?,
        })
    }
}

impl AsyncCommand for DeleteAclItem {
    /// Safe to run again: an item an earlier run removed is done; one it
    /// left marked Revoke is sent out of its list and removed again.
    const RERUN: bool = true;
    type Job = ItemJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<ItemJob>, Error> {
        let (item, list) = item_param(&ctx.app.db, self.id).await?;
        let vpc_id = mutable_list_vpc(ctx, &list, GlobalRefusal::DeleteItem)
            .await?
            .map(|v| v.id);
        let job = ItemJob {
            id: item.id,
            vpc_id,
        };
        Ok(item_submission(job, &item, &list, vpc_id))
    }

    async fn run(job: &JobCtx, payload: ItemJob) -> Result<Value, Error> {
        let removed = acl::item_by_id(&job.app.db, payload.id)
            .await?
            .is_none_or(|i| i.removed.is_some());
        if removed {
            return Ok(json!({ "success": true }));
        }
        let locked = LockedItem::take(&job.app, payload.id, payload.vpc_id).await?;
        revoke_and_remove(&locked).await?;
        Ok(json!({ "success": true }))
    }
}
