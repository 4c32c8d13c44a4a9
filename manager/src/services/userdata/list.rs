//! `listUserData`: the registered userdata the caller may see, by id, name
//! or keyword (a substring of the name).

use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand, Text};
use crate::server::registry::ALL;
use crate::server::{Ctx, Reply, page_of};
use crate::services::owner::ListArgs;
use crate::store::userdata;

use super::{USER_DATA_FIELDS, view};

const ID: Arg<Id> = Arg::opt("id", "the ID of the userdata");
const NAME: Arg<Text> = Arg::opt("name", "only the userdata of this name");

/// `listUserData`.
pub struct ListUserData {
    id: Option<Uuid>,
    name: Option<String>,
    list: ListArgs,
}

impl Command for ListUserData {
    const NAME: &'static str = "listUserData";

    fn spec() -> Spec {
        Spec::new("Lists registered userdata")
            .roles(ALL)
            .param(ID)
            .param(NAME)
            .params(ListArgs::specs())
            .returns("userdata", USER_DATA_FIELDS)
            .since("4.18")
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListUserData {
            id: args.get(&ID)?,
            name: args.text(&NAME)?,
            list: ListArgs::parse(args)?,
        })
    }
}

impl SyncCommand for ListUserData {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let scope = self.list.scope(ctx, self.id.is_some()).await?;
        let page = self.list.page(ctx).await?;
        let keyword = self.list.keyword.as_deref();
        let rows: Vec<_> = userdata::all(&ctx.app.db)
            .await?
            .into_iter()
            .filter(|u| {
                scope.shows(u.account_id, u.domain_id, &u.domain_path)
                    && self.id.is_none_or(|i| i == u.uuid)
                    && self.name.as_deref().is_none_or(|n| n == u.name)
                    && keyword.is_none_or(|w| u.name.contains(w))
            })
            .collect();
        let count = rows.len() as u64;
        let items = page_of(rows, page).iter().map(view).collect();
        Ok(Reply::List { count, items })
    }
}
