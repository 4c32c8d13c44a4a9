//! `listZones`: every zone for root admins; the Enabled ones for everyone
//! else (and for `available=true`).

use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Flag, Id, Ids, Int, Spec, SyncCommand, Text};
use crate::server::list_paging::Paging;
use crate::server::registry::ALL;
use crate::server::{Ctx, Reply};
use crate::store::zone;

use super::{ZONE_FIELDS, zone_view};

const ID: Arg<Id> = Arg::opt("id", "the ID of the zone");
const IDS: Arg<Ids> = Arg::opt("ids", "IDs of zones");
const NAME: Arg<Text> = Arg::opt("name", "the name of the zone");
const AVAILABLE: Arg<Flag> = Arg::opt("available", "only zones the caller can use");
const NETWORK_TYPE: Arg<Text> = Arg::opt("networktype", "only zones of this network type");
const KEYWORD: Arg<Text> = Arg::opt("keyword", "a substring of the name");
const PAGE_SIZE: Arg<Int> = Arg::opt("pagesize", "the number of zones per page");

/// `listZones`.
pub struct ListZones {
    id: Option<Uuid>,
    ids: Option<Vec<Uuid>>,
    name: Option<String>,
    available: Option<bool>,
    network_type: Option<String>,
    paging: Paging,
}

impl Command for ListZones {
    const NAME: &'static str = "listZones";

    fn spec() -> Spec {
        Spec::new("Lists zones")
            .roles(ALL)
            .param(ID)
            .param(IDS)
            .param(NAME)
            .param(AVAILABLE)
            .param(NETWORK_TYPE)
            .params(Paging::specs_described(KEYWORD, PAGE_SIZE))
            .returns("zone", ZONE_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListZones {
            ids: args.get(&IDS)?,
            id: args.get(&ID)?,
            network_type: args.get(&NETWORK_TYPE)?,
            name: args.get(&NAME)?,
            available: args.get(&AVAILABLE)?,
            paging: Paging::parse(args)?,
        })
    }
}

impl SyncCommand for ListZones {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        // `id` wins over `ids`.
        let uuids = match self.id {
            Some(id) => Some(vec![id]),
            None => self.ids,
        };
        if let Some(kind) = &self.network_type
            && !kind.eq_ignore_ascii_case("advanced")
        {
            return Ok(Reply::empty_list());
        }
        let mut filter = zone::ZoneFilter {
            uuids,
            name: self.name,
            keyword: self.paging.keyword.clone(),
            ..Default::default()
        };
        // Users only see zones they can deploy into.
        if !ctx.caller.is_root_admin() || self.available == Some(true) {
            filter.allocation_state = Some("Enabled".into());
        }
        let page = self.paging.page(ctx).await?;
        let listed = zone::list(&ctx.app.db, &filter, page).await?;
        let items = listed.items.iter().map(|z| zone_view(ctx, z)).collect();
        Ok(Reply::List {
            count: listed.total as u64,
            items,
        })
    }
}
