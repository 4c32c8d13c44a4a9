//! `updateAccount`: a new name or network domain for an account the caller
//! may manage.

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Spec, SyncCommand, Text};
use crate::server::registry::ADMINS;
use crate::server::{Ctx, Reply};
use crate::store::account;

use super::super::args::AccountRef;
use super::super::views::{ACCOUNT_FIELDS, account_view};
use super::reloaded;

const NEW_NAME: Arg<Text> = Arg::opt("newname", "the new name of the account");
const NETWORK_DOMAIN: Arg<Text> = Arg::opt("networkdomain", "the new network domain");

/// `updateAccount`.
pub struct UpdateAccount {
    account: AccountRef,
    /// None when absent or empty: the name stays.
    new_name: Option<String>,
    network_domain: Option<String>,
}

impl Command for UpdateAccount {
    const NAME: &'static str = "updateAccount";

    fn spec() -> Spec {
        Spec::new("Renames an account or changes its network domain")
            .roles(ADMINS)
            .params(AccountRef::specs())
            .param(NEW_NAME)
            .param(NETWORK_DOMAIN)
            .returns("account", ACCOUNT_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(UpdateAccount {
            account: AccountRef::parse(args)?,
            new_name: args.text(&NEW_NAME)?,
            network_domain: args.get(&NETWORK_DOMAIN)?,
        })
    }
}

impl SyncCommand for UpdateAccount {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let a = self.account.managed(ctx).await?;
        account::update(
            &ctx.app.db,
            a.id,
            self.new_name.as_deref(),
            self.network_domain.as_deref(),
        )
        .await?;
        let updated = reloaded(ctx, a.id).await?;
        Ok(Reply::Object(account_view(ctx, &updated).await?))
    }
}
