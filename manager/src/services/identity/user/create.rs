//! `createUser`: a user in an account the caller may manage.

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Spec, SyncCommand, Text};
use crate::server::registry::ADMINS;
use crate::server::{Ctx, Reply};
use crate::services::owner::account_in_domain;
use crate::store::{self, user};

use super::super::args::{NewUserArgs, USER_DOMAIN};
use super::super::views::{USER_FIELDS, user_view};
use super::super::{Target, denied, domain_or_own, may_manage_account};

const ACCOUNT: Arg<Text> = Arg::req("account", "the account of the user");

/// `createUser`.
pub struct CreateUser {
    account: String,
    user: NewUserArgs,
}

impl Command for CreateUser {
    const NAME: &'static str = "createUser";

    fn spec() -> Spec {
        Spec::new("Creates a user in an account")
            .roles(ADMINS)
            .params(NewUserArgs::specs(vec![ACCOUNT.spec()]))
            .returns("user", USER_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(CreateUser {
            account: args.need(&ACCOUNT)?,
            user: NewUserArgs::parse(args)?,
        })
    }
}

impl SyncCommand for CreateUser {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let d = domain_or_own(ctx, self.user.domain, USER_DOMAIN.name()).await?;
        let name = self.account;
        let a = account_in_domain(ctx, &d, &name).await?;
        if !may_manage_account(&ctx.caller, Target::of(&a)) {
            return Err(denied(ctx, &format!("account {}", a.uuid)));
        }
        let created = user::create(&ctx.app.db, self.user.row(a.id))
            .await
            .map_err(|e| match e {
                store::StoreError::Duplicate(_) => Error::invalid(format!(
                    "The user name is already used in domain {}",
                    d.uuid
                )),
                other => other.into(),
            })?;
        Ok(Reply::Object(user_view(&created, &a, &d)))
    }
}
