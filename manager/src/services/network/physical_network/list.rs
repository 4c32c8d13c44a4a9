//! `listPhysicalNetworks`.

use uuid::Uuid;

use super::super::{Paging, zone_param};
use super::{PHYSNET_FIELDS, physnet_view};
use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand, Text};
use crate::server::registry::ROOT;
use crate::server::{Ctx, Reply};
use crate::store::zone;

const ID: Arg<Id> = Arg::opt("id", "the ID of the physical network");
const ZONE: Arg<Id> = Arg::opt("zoneid", "only the physical networks of this zone");
const NAME: Arg<Text> = Arg::opt("name", "the name of the physical network");

/// `listPhysicalNetworks`.
pub struct ListPhysicalNetworks {
    id: Option<Uuid>,
    zone: Option<Uuid>,
    name: Option<String>,
    paging: Paging,
}

impl Command for ListPhysicalNetworks {
    const NAME: &'static str = "listPhysicalNetworks";

    fn spec() -> Spec {
        Spec::new("Lists physical networks")
            .roles(ROOT)
            .param(ID)
            .param(ZONE)
            .param(NAME)
            .params(Paging::specs())
            .returns("physicalnetwork", PHYSNET_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListPhysicalNetworks {
            id: args.get(&ID)?,
            zone: args.get(&ZONE)?,
            name: args.text(&NAME)?,
            paging: Paging::parse(args)?,
        })
    }
}

impl SyncCommand for ListPhysicalNetworks {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let zone_id = zone_param(ctx, self.zone, ZONE.name()).await?.map(|z| z.id);
        let filter = zone::PhysicalNetworkFilter {
            uuid: self.id,
            zone_id,
            name: self.name,
            keyword: self.paging.keyword.clone(),
        };
        let listed =
            zone::list_physical_networks(db, &filter, self.paging.page(ctx).await?).await?;
        let mut items = Vec::with_capacity(listed.items.len());
        for pn in &listed.items {
            items.push(physnet_view(db, pn).await?);
        }
        Ok(Reply::List {
            count: listed.total as u64,
            items,
        })
    }
}
