//! `disableAccount` (async: its users can no longer call the API; with
//! `lock=true` the account is `locked` and its VMs keep running; with
//! `lock=false`, CloudStack's disable, it is `disabled` and its running VMs
//! are stopped too) and `enableAccount`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::Error;
use crate::server::command::{
    Arg, Args, AsyncCommand, Command, Flag, Spec, Submission, SyncCommand,
};
use crate::server::jobs::JobCtx;
use crate::server::registry::ADMINS;
use crate::server::{Ctx, Reply};
use crate::store::{Scope, account, vm};

use super::super::args::AccountRef;
use super::super::views::{ACCOUNT_FIELDS, account_view};
use super::{account_sync, check_state_change, reloaded};

const LOCK: Arg<Flag> = Arg::req(
    "lock",
    "true: lock the account (its users are refused); false: disable it (its VMs stop too)",
);

/// The job of disableAccount. `lock` is absent from the rows of the
/// previous version, which only locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisableAccountJob {
    pub id: i64,
    #[serde(default = "locked")]
    pub lock: bool,
}

fn locked() -> bool {
    true
}

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
    /// A disabled or locked account stays so; VMs stopped already stay
    /// stopped.
    const RERUN: bool = true;
    type Job = DisableAccountJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<DisableAccountJob>, Error> {
        let a = self.account.managed(ctx).await?;
        check_state_change(ctx, &a)?;
        Ok(Submission::new(
            DisableAccountJob {
                id: a.id,
                lock: self.lock != Some(false),
            },
            ("Account", a.uuid),
            account_sync(a.id),
        ))
    }

    async fn run(job: &JobCtx, payload: DisableAccountJob) -> Result<Value, Error> {
        let db = &job.app.db;
        let a = account::get_by_id(db, payload.id)
            .await?
            .ok_or_else(|| Error::invalid("the account is gone"))?;
        if payload.lock {
            // CloudStack's lockAccount: enabled → locked, locked stays
            // locked, any other state is refused; the VMs keep running.
            match a.state {
                account::State::Locked => {}
                account::State::Enabled => {
                    account::set_state(db, payload.id, account::STATE_LOCKED).await?;
                }
                account::State::Disabled => {
                    return Err(Error::internal("Failed to lock account"));
                }
            }
        } else {
            // The users are refused first, then the VMs stop, as in
            // CloudStack, whose disable fails when a VM does not stop.
            account::set_state(db, payload.id, account::STATE_DISABLED).await?;
            stop_vms_of(&job.app, payload.id).await?;
        }
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

/// Stops every running VM of an account; the error names those that did not
/// stop.
async fn stop_vms_of(app: &crate::server::App, account_id: i64) -> Result<(), Error> {
    let running = vm::list(
        &app.db,
        &vm::VmFilter {
            scope: Scope::account(account_id),
            state: Some(vm::STATE_RUNNING.as_str().to_string()),
            ..Default::default()
        },
        crate::store::Page::ALL,
    )
    .await?
    .items;
    let mut failed = Vec::new();
    for v in running {
        if let Err(e) = crate::services::vm::stop_vm(app, v.id, false).await {
            failed.push(format!("{}: {}", v.uuid, e.text()));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::internal(format!(
            "Failed to disable account: unable to stop VMs {}",
            failed.join("; ")
        )))
    }
}
