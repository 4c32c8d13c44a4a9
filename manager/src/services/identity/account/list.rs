//! `listAccounts`: the caller's own account for users; for admins the
//! accounts of a domain (or of its subtree) they cover.

use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Int, Spec, SyncCommand, Text};
use crate::server::registry::ALL;
use crate::server::{Ctx, Reply, Role};
use crate::store::account;

use super::super::args::Paging;
use super::super::domain_or_own;
use super::super::views::{ACCOUNT_FIELDS, account_view};

const ID: Arg<Id> = Arg::opt("id", "the ID of the account");
const NAME: Arg<Text> = Arg::opt("name", "the name of the account");
const DOMAIN: Arg<Id> = Arg::opt("domainid", "the accounts of this domain");
const ACCOUNT_TYPE: Arg<Int> = Arg::opt("accounttype", "0 user, 1 root admin, 2 domain admin");
const STATE: Arg<Text> = Arg::opt("state", "enabled or disabled");

/// `listAccounts`.
pub struct ListAccounts {
    id: Option<Uuid>,
    name: Option<String>,
    domain: Option<Uuid>,
    account_type: Option<i32>,
    state: Option<String>,
    paging: Paging,
}

impl Command for ListAccounts {
    const NAME: &'static str = "listAccounts";

    fn spec() -> Spec {
        Spec::new("Lists accounts")
            .roles(ALL)
            .param(ID)
            .param(NAME)
            .param(DOMAIN)
            .param(ACCOUNT_TYPE)
            .param(STATE)
            .params(Paging::specs())
            .returns("account", ACCOUNT_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListAccounts {
            id: args.get(&ID)?,
            name: args.get(&NAME)?,
            domain: args.get(&DOMAIN)?,
            account_type: args.get(&ACCOUNT_TYPE)?,
            state: args.get(&STATE)?,
            paging: Paging::parse(args)?,
        })
    }
}

impl SyncCommand for ListAccounts {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let caller = &ctx.caller;
        let mut filter = account::AccountFilter {
            name: self.name,
            keyword: self.paging.list.keyword.clone(),
            state: self.state,
            account_type: self.account_type.map(i64::from),
            uuids: self.id.map(|u| vec![u]),
            ..Default::default()
        };
        let recursive = self.paging.recursive || self.paging.list_all;
        if caller.role == Role::User {
            // A user sees its own account, and only when the id asked for
            // (if any) is its own.
            filter.uuids = Some(vec![caller.account_uuid]).filter(|_| {
                filter
                    .uuids
                    .as_ref()
                    .is_none_or(|u| u.contains(&caller.account_uuid))
            });
            if filter.uuids.is_none() {
                return Ok(Reply::empty_list());
            }
        } else {
            let d = domain_or_own(ctx, self.domain, DOMAIN.name()).await?;
            if recursive || filter.uuids.is_some() {
                filter.domain_path_prefix = Some(d.path.clone());
            } else {
                filter.domain_id = Some(d.id);
            }
        }
        let page = self.paging.page(ctx).await?;
        let listed = account::list(&ctx.app.db, &filter, page).await?;
        let mut items = Vec::with_capacity(listed.items.len());
        for a in &listed.items {
            items.push(account_view(ctx, a).await?);
        }
        Ok(Reply::List {
            count: listed.total as u64,
            items,
        })
    }
}
