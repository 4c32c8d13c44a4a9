//! `deleteUserData`: registered userdata of the caller's account (or the one
//! named by `account` + `domainid`) that no live VM uses.

use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand};
use crate::server::registry::ALL;
use crate::server::{Ctx, Reply};
use crate::services::owner::OwnerArgs;
use crate::store::userdata;

const ID: Arg<Id> = Arg::req("id", "the ID of the userdata");

/// `deleteUserData`.
pub struct DeleteUserData {
    id: Uuid,
    owner: OwnerArgs,
}

impl Command for DeleteUserData {
    const NAME: &'static str = "deleteUserData";

    fn spec() -> Spec {
        Spec::new("Deletes registered userdata that no VM uses")
            .roles(ALL)
            .param(ID)
            .params(OwnerArgs::specs())
            .returns("userdata", Vec::new())
            .since("4.18")
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DeleteUserData {
            id: args.need(&ID)?,
            owner: OwnerArgs::parse(args)?,
        })
    }
}

impl SyncCommand for DeleteUserData {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let owner = self.owner.resolve(ctx).await?;
        let Some(u) = userdata::by_uuid(db, self.id)
            .await?
            .filter(|u| u.account_id == owner.account_id)
        else {
            return Err(Error::invalid(format!(
                "A UserData with id '{}' does not exist for account {} in specified domain id",
                self.id, owner.account_name
            )));
        };
        if userdata::vms_using(db, u.id).await? > 0 {
            return Err(Error::internal(format!(
                "Userdata {} cannot be removed as it is being used by some instances",
                u.name
            )));
        }
        userdata::remove(db, u.id).await?;
        Ok(Reply::Success)
    }
}
