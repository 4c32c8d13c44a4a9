//! `listPods`: the live pods, by name.

use std::collections::HashMap;

use uuid::Uuid;

use super::views::{POD_FIELDS, pod_view};
use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand, Text};
use crate::server::list_paging::Paging;
use crate::server::registry::ROOT;
use crate::server::{Ctx, Reply};
use crate::services::zone::zone_by_id;
use crate::store::{pod, zone};

const ID: Arg<Id> = Arg::opt("id", "list Pods by ID");
const NAME: Arg<Text> = Arg::opt("name", "list Pods by name");
const ZONE: Arg<Id> = Arg::opt("zoneid", "list Pods by Zone ID");
const ALLOCATION_STATE: Arg<Text> = Arg::opt("allocationstate", "list pods by allocation state");

/// `listPods`.
pub struct ListPods {
    id: Option<Uuid>,
    name: Option<String>,
    zone: Option<Uuid>,
    allocation_state: Option<String>,
    paging: Paging,
}

impl Command for ListPods {
    const NAME: &'static str = "listPods";

    fn spec() -> Spec {
        Spec::new("Lists all Pods.")
            .roles(ROOT)
            .param(ID)
            .param(NAME)
            .param(ZONE)
            .param(ALLOCATION_STATE)
            .params(Paging::specs())
            .returns("pod", POD_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListPods {
            id: args.get(&ID)?,
            name: args.text(&NAME)?,
            zone: args.get(&ZONE)?,
            allocation_state: args.text(&ALLOCATION_STATE)?,
            paging: Paging::parse(args)?,
        })
    }
}

impl SyncCommand for ListPods {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let zone_id = match self.zone {
            Some(id) => Some(zone_by_id(ctx, id, ZONE.name()).await?.id),
            None => None,
        };
        let filter = pod::GroupFilter {
            uuid: self.id,
            name: self.name,
            zone_id,
            allocation_state: self.allocation_state,
            keyword: self.paging.keyword.clone(),
            ..Default::default()
        };
        let listed = pod::list_pods(db, &filter, self.paging.page(ctx).await?).await?;
        let zone_ids: Vec<i64> = listed.items.iter().map(|p| p.data_center_id).collect();
        let zones: HashMap<i64, zone::Zone> = zone::by_ids(db, &zone_ids)
            .await?
            .into_iter()
            .map(|z| (z.id, z))
            .collect();
        let items = listed
            .items
            .iter()
            .map(|p| pod_view(p, zones.get(&p.data_center_id)))
            .collect();
        Ok(Reply::List {
            count: listed.total as u64,
            items,
        })
    }
}
