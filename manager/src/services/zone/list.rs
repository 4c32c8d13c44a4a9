//! `listZones`: every zone for root admins; the Enabled ones for everyone
//! else (and for `available=true`).

use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Flag, Id, Ids, Int, Spec, SyncCommand, Text};
use crate::server::registry::ALL;
use crate::server::{Ctx, Reply, paging};
use crate::store::zone;

use super::{fields, zone_view};

const ID: Arg<Id> = Arg::opt("id", "the ID of the zone");
const IDS: Arg<Ids> = Arg::opt("ids", "IDs of zones");
const NAME: Arg<Text> = Arg::opt("name", "the name of the zone");
const AVAILABLE: Arg<Flag> = Arg::opt("available", "only zones the caller can use");
const NETWORK_TYPE: Arg<Text> = Arg::opt("networktype", "only zones of this network type");
const KEYWORD: Arg<Text> = Arg::opt("keyword", "a substring of the name");
const PAGE: Arg<Int> = Arg::opt("page", "the page to return");
const PAGE_SIZE: Arg<Int> = Arg::opt("pagesize", "the number of zones per page");

/// `listZones`.
pub struct ListZones {
    id: Option<Uuid>,
    ids: Option<Vec<Uuid>>,
    name: Option<String>,
    available: Option<bool>,
    network_type: Option<String>,
    keyword: Option<String>,
    page: Option<i64>,
    page_size: Option<i64>,
}

impl Command for ListZones {
    const NAME: &'static str = "listZones";

    fn spec() -> Spec {
        Spec {
            description: "Lists zones",
            roles: ALL,
            params: vec![
                ID.spec(),
                IDS.spec(),
                NAME.spec(),
                AVAILABLE.spec(),
                NETWORK_TYPE.spec(),
                KEYWORD.spec(),
                PAGE.spec(),
                PAGE_SIZE.spec(),
            ],
            object: "zone",
            response: fields(),
            since: "",
        }
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        let params = args.params();
        Ok(ListZones {
            ids: args.get(&IDS)?,
            id: args.get(&ID)?,
            network_type: args.get(&NETWORK_TYPE)?,
            name: args.get(&NAME)?,
            keyword: args.get(&KEYWORD)?,
            available: args.get(&AVAILABLE)?,
            // Read as 64-bit: the registry checked they are 32-bit integers.
            page: params.long(PAGE.name())?,
            page_size: params.long(PAGE_SIZE.name())?,
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
            return Ok(Reply::List {
                count: 0,
                items: vec![],
            });
        }
        let mut filter = zone::ZoneFilter {
            uuids,
            name: self.name,
            keyword: self.keyword,
            ..Default::default()
        };
        // Users only see zones they can deploy into.
        if !ctx.caller.is_root_admin() || self.available == Some(true) {
            filter.allocation_state = Some("Enabled".into());
        }
        let page = paging(ctx, self.page, self.page_size).await?;
        let listed = zone::list(&ctx.app.db, &filter, page).await?;
        let items = listed.items.iter().map(|z| zone_view(ctx, z)).collect();
        Ok(Reply::List {
            count: listed.total as u64,
            items,
        })
    }
}
