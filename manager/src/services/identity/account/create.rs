//! `createAccount`: an account with its first user, in one transaction.

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Int, Spec, SyncCommand, Text};
use crate::server::registry::ADMINS;
use crate::server::{Ctx, Reply};
use crate::store::{self, account, user};

use super::super::args::{NewUserArgs, USER_DOMAIN};
use super::super::views::{ACCOUNT_FIELDS, account_view};
use super::super::{Target, denied, domain_or_own, may_manage_account};

const ACCOUNT_TYPE: Arg<Int> = Arg::opt(
    "accounttype",
    "0 user (default), 1 root admin, 2 domain admin",
);
const ACCOUNT: Arg<Text> = Arg::opt("account", "the account name; default the user name");
const NETWORK_DOMAIN: Arg<Text> = Arg::opt(
    "networkdomain",
    "the network domain of the account's networks",
);

/// `createAccount`.
pub struct CreateAccount {
    account_type: i64,
    /// The account's name; None (absent or empty): the user name.
    name: Option<String>,
    network_domain: Option<String>,
    user: NewUserArgs,
}

impl Command for CreateAccount {
    const NAME: &'static str = "createAccount";

    fn spec() -> Spec {
        Spec::new("Creates an account with its first user")
            .roles(ADMINS)
            .params(NewUserArgs::specs(vec![
                ACCOUNT_TYPE.spec(),
                ACCOUNT.spec(),
                NETWORK_DOMAIN.spec(),
            ]))
            .returns("account", ACCOUNT_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(CreateAccount {
            account_type: args
                .get(&ACCOUNT_TYPE)?
                .map(i64::from)
                .unwrap_or(account::TYPE_USER),
            name: args.text(&ACCOUNT)?,
            network_domain: args.get(&NETWORK_DOMAIN)?,
            user: NewUserArgs::parse(args)?,
        })
    }
}

impl SyncCommand for CreateAccount {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let account_type = self.account_type;
        if ![
            account::TYPE_USER,
            account::TYPE_ADMIN,
            account::TYPE_DOMAIN_ADMIN,
        ]
        .contains(&account_type)
        {
            return Err(Error::invalid(
                "accounttype must be 0 (user), 1 (root admin) or 2 (domain admin)",
            ));
        }
        if account_type == account::TYPE_ADMIN && !ctx.caller.is_root_admin() {
            return Err(denied(ctx, "root admin accounts"));
        }
        let d = domain_or_own(ctx, self.user.domain, USER_DOMAIN.name()).await?;
        // CloudStack: root admin accounts live in ROOT only.
        if account_type == account::TYPE_ADMIN && d.parent_id.is_some() {
            return Err(Error::invalid(format!(
                "Invalid account type {account_type} given for an account in domain {}; unable \
                 to create user of admin role type in non-ROOT domain.",
                d.uuid
            )));
        }
        // The new account's first user would otherwise hold the caller's own
        // rights (or more) under another name.
        let target = Target {
            account_id: 0,
            account_type,
            domain_path: &d.path,
        };
        if !may_manage_account(&ctx.caller, target) {
            return Err(denied(ctx, "accounts of this role in this domain"));
        }
        let name = self.name.unwrap_or_else(|| self.user.username.clone());
        let new_account = account::NewAccount {
            account_name: name.clone(),
            account_type,
            domain_id: d.id,
            network_domain: self.network_domain,
        };
        let mut tx = ctx.app.db.begin().await?;
        let created = match account::create(&mut tx, new_account).await {
            Ok(a) => a,
            Err(store::StoreError::Duplicate(_)) => {
                return Err(Error::invalid(format!(
                    "The account {name} already exists in domain {}",
                    d.uuid
                )));
            }
            Err(e) => return Err(e.into()),
        };
        match user::create(&mut tx, self.user.row(created.id)).await {
            Ok(_) => {}
            Err(store::StoreError::Duplicate(_)) => {
                return Err(Error::invalid(format!(
                    "The user name is already used in domain {}",
                    d.uuid
                )));
            }
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        Ok(Reply::Object(account_view(ctx, &created).await?))
    }
}
