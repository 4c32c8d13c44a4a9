//! `deleteAccount` (async): an account with its users, VMs and VPCs.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::Error;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Id, IdJob, Spec, Submission};
use crate::server::jobs::JobCtx;
use crate::server::registry::ADMINS;
use crate::store::account;

use super::super::args::AccountRef;
use super::{account_sync, check_state_change};

const ID: Arg<Id> = Arg::req("id", "the ID of the account");

/// `deleteAccount`.
pub struct DeleteAccount {
    account: AccountRef,
}

impl Command for DeleteAccount {
    const NAME: &'static str = "deleteAccount";

    fn spec() -> Spec {
        Spec::new("Deletes an account with its users")
            .roles(ADMINS)
            .param(ID)
            .returns("account", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        let id: Uuid = args.need(&ID)?;
        Ok(DeleteAccount {
            account: AccountRef {
                id_name: ID.name(),
                id: Some(id),
                // Not a parameter of this command, but read (and its
                // length checked) as before; the id wins over it.
                name: args.params().string("account")?,
                domain: None,
            },
        })
    }
}

impl AsyncCommand for DeleteAccount {
    /// What is removed already stays removed; the purge finds the rest.
    const RERUN: bool = true;
    type Job = IdJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<IdJob>, Error> {
        let a = self.account.managed(ctx).await?;
        check_state_change(ctx, &a)?;
        Ok(Submission::new(
            IdJob { id: a.id },
            ("Account", a.uuid),
            account_sync(a.id),
        ))
    }

    async fn run(job: &JobCtx, payload: IdJob) -> Result<Value, Error> {
        // Its VMs and VPCs go with it, everything in them included.
        crate::provision::vpc::purge_account(&job.app.db, &job.app.network, payload.id).await?;
        account::remove(&job.app.db, payload.id).await?;
        Ok(json!({ "success": true }))
    }
}
