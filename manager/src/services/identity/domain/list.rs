//! `listDomains`: the caller's domain and (admins) the domains below it.

use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Int, Spec, SyncCommand, Text};
use crate::server::registry::ALL;
use crate::server::{Ctx, Reply, Role};
use crate::store::domain;

use super::super::args::Paging;
use super::super::views::{DOMAIN_FIELDS, domain_view};

const ID: Arg<Id> = Arg::opt("id", "the ID of the domain");
const NAME: Arg<Text> = Arg::opt("name", "the name of the domain");
const LEVEL: Arg<Int> = Arg::opt("level", "the level of the domains");

/// `listDomains`.
pub struct ListDomains {
    id: Option<Uuid>,
    name: Option<String>,
    level: Option<i64>,
    paging: Paging,
}

impl Command for ListDomains {
    const NAME: &'static str = "listDomains";

    fn spec() -> Spec {
        Spec::new("Lists domains")
            .roles(ALL)
            .param(ID)
            .param(NAME)
            .param(LEVEL)
            .params(Paging::specs())
            .returns("domain", DOMAIN_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListDomains {
            id: args.get(&ID)?,
            name: args.get(&NAME)?,
            // Read as 64-bit: the registry checked it is a 32-bit integer.
            level: args.params().long(LEVEL.name())?,
            paging: Paging::parse(args)?,
        })
    }
}

impl SyncCommand for ListDomains {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let caller = &ctx.caller;
        // Everyone lists within its own domain's subtree; a user sees only
        // its own domain (filtered below, so the count is of what it sees).
        let filter = domain::DomainFilter {
            uuid: self.id,
            name: self.name,
            level: self.level,
            keyword: self.paging.list.keyword.clone(),
            path_prefix: Some(caller.domain_path.clone()),
            ..Default::default()
        };
        let page = self.paging.page(ctx).await?;
        let listed = domain::list(&ctx.app.db, &filter, page).await?;
        let mut items = Vec::new();
        for d in listed
            .items
            .iter()
            .filter(|d| caller.role != Role::User || d.path == caller.domain_path)
        {
            items.push(domain_view(ctx, d).await?);
        }
        let count = if caller.role == Role::User {
            items.len() as u64
        } else {
            listed.total as u64
        };
        Ok(Reply::List { count, items })
    }
}
