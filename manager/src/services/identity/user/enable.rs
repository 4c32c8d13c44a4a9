//! `enableUser`: CloudStack's enableUser enables the user and its account
//! and starts the count of wrong passwords again, which is how a user
//! disabled by `incorrect.login.attempts.allowed` gets back in.

use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Args, Command, Spec, SyncCommand};
use crate::server::registry::ADMINS;
use crate::server::{Ctx, Reply};
use crate::store::{account, user};

use super::super::views::USER_FIELDS;
use super::{USER_ID, managed_user, user_reply};

/// `enableUser`.
pub struct EnableUser {
    id: Uuid,
}

impl Command for EnableUser {
    const NAME: &'static str = "enableUser";

    fn spec() -> Spec {
        Spec::new("Enables a user (and its account), forgetting its wrong passwords")
            .roles(ADMINS)
            .param(USER_ID)
            .returns("user", USER_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(EnableUser {
            id: args.need(&USER_ID)?,
        })
    }
}

impl SyncCommand for EnableUser {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let u = managed_user(ctx, self.id).await?;
        let mut tx = ctx.app.db.begin().await?;
        user::set_state(&mut tx, u.id, account::STATE_ENABLED.as_str()).await?;
        account::set_state(&mut tx, u.account_id, account::STATE_ENABLED).await?;
        user::reset_login_attempts(&mut tx, u.id).await?;
        tx.commit().await?;
        user_reply(ctx, u.id).await
    }
}
