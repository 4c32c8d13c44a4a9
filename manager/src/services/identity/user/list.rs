//! `listUsers`: the users of the caller's account for users; for admins
//! those of an account, or of a domain's subtree, they cover.

use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand, Text};
use crate::server::registry::ALL;
use crate::server::{Ctx, Reply, Role};
use crate::store::user;

use super::super::args::{AccountRef, Paging};
use super::super::domain_or_own;
use super::super::views::{USER_FIELDS, user_view};
use super::owner_of;

const ID: Arg<Id> = Arg::opt("id", "the ID of the user");
const USERNAME: Arg<Text> = Arg::opt("username", "the user name");
const ACCOUNT: Arg<Text> = Arg::opt("account", "the users of this account (with domainid)");
const DOMAIN: Arg<Id> = Arg::opt("domainid", "the users of this domain");
const STATE: Arg<Text> = Arg::opt("state", "enabled or disabled");
/// Not a parameter of listUsers in `listApis`, but read with `account`
/// (CloudStack's `accountid`).
const ACCOUNT_ID: &str = "accountid";

/// `listUsers`.
pub struct ListUsers {
    id: Option<Uuid>,
    username: Option<String>,
    account: Option<String>,
    /// `accountid`: undeclared, so unchecked by the registry; a malformed
    /// value is refused only where it is used (an admin naming an account).
    account_id: Result<Option<Uuid>, Error>,
    domain: Option<Uuid>,
    paging: Paging,
}

impl Command for ListUsers {
    const NAME: &'static str = "listUsers";

    fn spec() -> Spec {
        Spec::new("Lists users")
            .roles(ALL)
            .param(ID)
            .param(USERNAME)
            .param(ACCOUNT)
            .param(DOMAIN)
            .param(STATE)
            .params(Paging::specs())
            .returns("user", USER_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListUsers {
            id: args.get(&ID)?,
            username: args.get(&USERNAME)?,
            account: args.get(&ACCOUNT)?,
            account_id: args.params().uuid(ACCOUNT_ID).map_err(Error::from),
            domain: args.get(&DOMAIN)?,
            paging: Paging::parse(args)?,
        })
    }
}

impl SyncCommand for ListUsers {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let caller = &ctx.caller;
        let mut filter = user::UserFilter {
            uuid: self.id,
            username: self.username,
            keyword: self.paging.list.keyword.clone(),
            ..Default::default()
        };
        if caller.role == Role::User {
            filter.account_id = Some(caller.account_id);
        } else if self.account.is_some() {
            let account = AccountRef {
                id_name: ACCOUNT_ID,
                id: self.account_id?,
                name: self.account,
                domain: self.domain,
            };
            filter.account_id = Some(account.resolve(ctx).await?.id);
        } else {
            filter.domain_path_prefix =
                Some(domain_or_own(ctx, self.domain, DOMAIN.name()).await?.path);
        }
        let page = self.paging.page(ctx).await?;
        let listed = user::list(&ctx.app.db, &filter, page).await?;
        let mut items = Vec::new();
        for u in &listed.items {
            let (a, d) = owner_of(ctx, u).await?;
            items.push(user_view(u, &a, &d));
        }
        Ok(Reply::List {
            count: listed.total as u64,
            items,
        })
    }
}
