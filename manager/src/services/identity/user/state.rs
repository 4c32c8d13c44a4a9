//! `disableUser` (async in CloudStack: the user can no longer call the API)
//! and `lockUser` (the user is locked out the same way, state `locked`);
//! `enableUser` ([`super::enable`]) brings either back. The system user is
//! refused with CloudStack's texts.

use serde_json::Value;
use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Args, AsyncCommand, Command, IdJob, Spec, Submission, SyncCommand};
use crate::server::jobs::JobCtx;
use crate::server::registry::ADMINS;
use crate::server::{Ctx, Reply};
use crate::store::user;

use super::super::views::{USER_FIELDS, user_view};
use super::{USER_ID, check_not_system, managed_user, user_reply};

/// `state` of a locked user (CloudStack's `locked`).
const STATE_LOCKED: &str = "locked";
/// `state` of a disabled user.
const STATE_DISABLED: &str = "disabled";

/// `disableUser`.
pub struct DisableUser {
    id: Uuid,
}

impl Command for DisableUser {
    const NAME: &'static str = "disableUser";

    fn spec() -> Spec {
        Spec::new("Disables a user: its keys and sessions no longer work")
            .roles(ADMINS)
            .param(USER_ID)
            .returns("user", USER_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DisableUser {
            id: args.need(&USER_ID)?,
        })
    }
}

impl AsyncCommand for DisableUser {
    /// A disabled user stays disabled.
    const RERUN: bool = true;
    type Job = IdJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<IdJob>, Error> {
        let u = managed_user(ctx, self.id).await?;
        check_not_system(ctx, &u, "disabling").await?;
        Ok(Submission::new(
            IdJob { id: u.id },
            ("User", u.uuid),
            format!("user:{}", u.id),
        ))
    }

    async fn run(job: &JobCtx, payload: IdJob) -> Result<Value, Error> {
        let db = &job.app.db;
        user::set_state(db, payload.id, STATE_DISABLED).await?;
        let u = user::get_by_id(db, payload.id)
            .await?
            .filter(|u| u.removed.is_none())
            .ok_or_else(|| Error::invalid("The user was deleted meanwhile"))?;
        let (a, d) = super::owner_of_in(db, &u).await?;
        Ok(serde_json::json!({ "user": user_view(&u, &a, &d) }))
    }
}

/// `lockUser`.
pub struct LockUser {
    id: Uuid,
}

impl Command for LockUser {
    const NAME: &'static str = "lockUser";

    fn spec() -> Spec {
        Spec::new("Locks a user: its keys and sessions no longer work")
            .roles(ADMINS)
            .param(USER_ID)
            .returns("user", USER_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(LockUser {
            id: args.need(&USER_ID)?,
        })
    }
}

impl SyncCommand for LockUser {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let u = managed_user(ctx, self.id).await?;
        check_not_system(ctx, &u, "locking").await?;
        user::set_state(&ctx.app.db, u.id, STATE_LOCKED).await?;
        user_reply(ctx, u.id).await
    }
}
