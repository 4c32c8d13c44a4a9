//! `deleteUser`: the user is marked removed, so its keys and sessions stop
//! working. CloudStack refuses the system account's users and a caller
//! deleting itself.

use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Args, Command, Spec, SyncCommand};
use crate::server::registry::ADMINS;
use crate::server::{Ctx, Reply};
use crate::store::user;

use super::{USER_ID, check_not_system, managed_user};

/// `deleteUser`.
pub struct DeleteUser {
    id: Uuid,
}

impl Command for DeleteUser {
    const NAME: &'static str = "deleteUser";

    fn spec() -> Spec {
        Spec::new("Deletes a user")
            .roles(ADMINS)
            .param(USER_ID)
            .returns("success", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DeleteUser {
            id: args.need(&USER_ID)?,
        })
    }
}

impl SyncCommand for DeleteUser {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let u = managed_user(ctx, self.id).await?;
        check_not_system(ctx, &u, "deleting").await?;
        if u.id == ctx.caller.user_id {
            return Err(Error::invalid(
                "The caller is requesting to delete itself. As a security measure, \
                 ACS will not allow this operation.",
            ));
        }
        user::remove(&ctx.app.db, u.id).await?;
        Ok(Reply::Success)
    }
}
