//! `listTrafficTypes`: the traffic types of one physical network.

use uuid::Uuid;

use super::super::{Paging, live_physnet};
use super::{PHYSNET, TRAFFIC_TYPE_FIELDS, traffic_type_view};
use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Spec, SyncCommand, Text};
use crate::server::registry::ROOT;
use crate::server::{Ctx, Reply, page_of};
use crate::store::zone;

const KEYWORD: Arg<Text> = Arg::opt("keyword", "a substring of the traffic type");

/// `listTrafficTypes`.
pub struct ListTrafficTypes {
    physnet: Uuid,
    paging: Paging,
}

impl Command for ListTrafficTypes {
    const NAME: &'static str = "listTrafficTypes";

    fn spec() -> Spec {
        Spec::new("Lists the traffic types of a physical network")
            .roles(ROOT)
            .param(PHYSNET)
            .params(Paging::specs_with(KEYWORD))
            .returns("traffictype", TRAFFIC_TYPE_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListTrafficTypes {
            physnet: args.need(&PHYSNET)?,
            paging: Paging::parse(args)?,
        })
    }
}

impl SyncCommand for ListTrafficTypes {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let pn = live_physnet(ctx, self.physnet, PHYSNET.name()).await?;
        let keyword = self.paging.keyword.as_deref().map(str::to_lowercase);
        let all: Vec<_> = zone::traffic_types(&ctx.app.db, pn.id)
            .await?
            .into_iter()
            .filter(|t| {
                keyword
                    .as_deref()
                    .is_none_or(|k| t.traffic_type.to_lowercase().contains(k))
            })
            .collect();
        let count = all.len() as u64;
        let items = page_of(all, self.paging.page(ctx).await?)
            .iter()
            .map(|t| traffic_type_view(&pn, t))
            .collect();
        Ok(Reply::List { count, items })
    }
}
