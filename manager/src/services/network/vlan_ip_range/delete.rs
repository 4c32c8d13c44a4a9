//! `deleteVlanIpRange`: only a range none of whose addresses is allocated.

use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand};
use crate::server::registry::ROOT;
use crate::server::{Ctx, Reply};
use crate::store::{self, vlan};

const ID: Arg<Id> = Arg::req("id", "the ID of the public IP range");

/// `deleteVlanIpRange`.
pub struct DeleteVlanIpRange {
    id: Uuid,
}

impl Command for DeleteVlanIpRange {
    const NAME: &'static str = "deleteVlanIpRange";

    fn spec() -> Spec {
        Spec::new("Deletes a public IP range none of whose addresses is allocated")
            .roles(ROOT)
            .param(ID)
            .returns("vlaniprange", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DeleteVlanIpRange {
            id: args.need(&ID)?,
        })
    }
}

impl SyncCommand for DeleteVlanIpRange {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let id = self.id;
        let r = vlan::range_by_uuid(&ctx.app.db, id)
            .await?
            .filter(|r| r.removed.is_none())
            .ok_or_else(|| Error::invalid_id(ID.name(), id))?;
        // The store checks for allocated addresses in its transaction.
        vlan::remove_range(&ctx.app.db, r.id)
            .await
            .map_err(|e| match e {
                store::StoreError::Conflict(why) => Error::in_use(format!(
                    "The public IP range {}-{} cannot be deleted: {why}",
                    r.start_ip, r.end_ip
                )),
                other => other.into(),
            })?;
        Ok(Reply::Success)
    }
}
