//! `disableAccount` (async: its users can no longer call the API) and
//! `enableAccount`.

use serde_json::{Value, json};

use crate::error::Error;
use crate::server::command::{
    Arg, Args, AsyncCommand, Command, Flag, IdJob, Spec, Submission, SyncCommand,
};
use crate::server::jobs::JobCtx;
use crate::server::registry::ADMINS;
use crate::server::{Ctx, Reply};
use crate::store::account;

use super::super::args::AccountRef;
use super::super::views::{ACCOUNT_FIELDS, account_view};
use super::{account_sync, check_state_change, reloaded};

const LOCK: Arg<Flag> = Arg::req("lock", "lock the account (only disabling is supported)");

/// `disableAccount`.
pub struct DisableAccount {
    account: AccountRef,
    lock: Option<bool>,
}

impl Command for DisableAccount {
    const NAME: &'static str = "disableAccount";

    fn spec() -> Spec {
        Spec::new("Disables an account: its users can no longer call the API")
            .roles(ADMINS)
            .params(AccountRef::specs())
            .param(LOCK)
            .returns("account", ACCOUNT_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DisableAccount {
            account: AccountRef::parse(args)?,
            lock: args.get(&LOCK)?,
        })
    }
}

impl AsyncCommand for DisableAccount {
    type Job = IdJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<IdJob>, Error> {
        let a = self.account.managed(ctx).await?;
        check_state_change(ctx, &a)?;
        if self.lock != Some(true) {
            return Err(Error::invalid(
                "lock=true is required: this manager disables accounts by locking them",
            ));
        }
        Ok(Submission::new(
            IdJob { id: a.id },
            ("Account", a.uuid),
            account_sync(a.id),
        ))
    }

    async fn run(job: &JobCtx, payload: IdJob) -> Result<Value, Error> {
        let db = &job.app.db;
        account::set_state(db, payload.id, account::STATE_DISABLED).await?;
        let a = account::get_by_id(db, payload.id)
            .await?
            .ok_or_else(|| Error::invalid("the account is gone"))?;
        Ok(json!({ "account": { "id": a.uuid, "name": a.account_name, "state": a.state } }))
    }
}

/// `enableAccount`.
pub struct EnableAccount {
    account: AccountRef,
}

impl Command for EnableAccount {
    const NAME: &'static str = "enableAccount";

    fn spec() -> Spec {
        Spec::new("Enables a disabled account")
            .roles(ADMINS)
            .params(AccountRef::specs())
            .returns("account", ACCOUNT_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(EnableAccount {
            account: AccountRef::parse(args)?,
        })
    }
}

impl SyncCommand for EnableAccount {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let a = self.account.managed(ctx).await?;
        account::set_state(&ctx.app.db, a.id, account::STATE_ENABLED).await?;
        let updated = reloaded(ctx, a.id).await?;
        Ok(Reply::Object(account_view(ctx, &updated).await?))
    }
}
