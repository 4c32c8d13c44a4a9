//! Accounts, one command (or family) per file: `createAccount`
//! ([`create`]), `listAccounts` ([`list`]), `updateAccount` ([`update`]),
//! `disableAccount` (a job) and `enableAccount` ([`state`]),
//! `deleteAccount` ([`delete`], a job).

mod create;
mod delete;
mod list;
mod state;
mod update;

use crate::error::Error;
use crate::server::Ctx;
use crate::store::account;

use super::denied;

pub use create::CreateAccount;
pub use delete::DeleteAccount;
pub use list::ListAccounts;
pub use state::{DisableAccount, EnableAccount};
pub use update::UpdateAccount;

/// The sync object of jobs on account `id`: they run one at a time.
fn account_sync(id: i64) -> String {
    format!("account:{id}")
}

/// Refuses changes to the caller's own account and to root admin accounts
/// for non-root callers.
fn check_state_change(ctx: &Ctx, a: &account::Account) -> Result<(), Error> {
    if a.id == ctx.caller.account_id {
        return Err(Error::invalid("An account cannot disable or delete itself"));
    }
    if a.account_type == account::TYPE_ADMIN && !ctx.caller.is_root_admin() {
        return Err(denied(ctx, &format!("account {}", a.uuid)));
    }
    Ok(())
}

/// Account row `id` as it is now (after a change).
async fn reloaded(ctx: &Ctx, id: i64) -> Result<account::Account, Error> {
    account::get_by_id(&ctx.app.db, id)
        .await?
        .ok_or_else(|| Error::internal("account vanished"))
}
