//! `listVPCs`.

use std::collections::HashMap;

use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Flag, Id, Spec, SyncCommand, Text, Texts};
use crate::server::registry::{ALL, fields};
use crate::server::{Ctx, Reply, counted_page};
use crate::services::offering::gives_all;
use crate::services::owner::ListArgs;
use crate::services::related::{Related, services_by_offering};
use crate::services::tags::{self, ResourceType, TAGS_FILTER};
use crate::store::{Page, offering, vpc, zone};

use super::{FOR_DISPLAY, VPC_FIELDS, vpc_view};

const ID: Arg<Id> = Arg::opt("id", "the ID of the VPC");
const ZONE: Arg<Id> = Arg::opt("zoneid", "only VPCs of this zone");
const NAME: Arg<Text> = Arg::opt("name", "only VPCs of this name");
const DISPLAY_TEXT: Arg<Text> = Arg::opt("displaytext", "only VPCs with this description");
const CIDR: Arg<Text> = Arg::opt("cidr", "only VPCs with this CIDR");
const OFFERING: Arg<Id> = Arg::opt("vpcofferingid", "only VPCs of this offering");
const SERVICES: Arg<Texts> = Arg::opt(
    "supportedservices",
    "only VPCs whose offering gives all these services",
);
const STATE: Arg<Text> = Arg::opt("state", "Enabled or Inactive");
const RESTART_REQUIRED: Arg<Flag> = Arg::opt(
    "restartrequired",
    "only VPCs that need (or do not need) a restart",
);

/// `listVPCs`.
pub struct ListVpcs {
    id: Option<Uuid>,
    zone: Option<Uuid>,
    name: Option<String>,
    display_text: Option<String>,
    cidr: Option<String>,
    offering: Option<Uuid>,
    services: Option<Vec<String>>,
    state: Option<String>,
    restart_required: Option<bool>,
    tags: Option<Vec<std::collections::BTreeMap<String, String>>>,
    list: ListArgs,
}

impl Command for ListVpcs {
    const NAME: &'static str = "listVPCs";

    fn spec() -> Spec {
        Spec::new("Lists VPCs")
            .roles(ALL)
            .param(ID)
            .param(ZONE)
            .param(NAME)
            .param(DISPLAY_TEXT)
            .param(CIDR)
            .param(OFFERING)
            .param(SERVICES)
            .param(STATE)
            .param(RESTART_REQUIRED)
            .param(FOR_DISPLAY)
            .param(TAGS_FILTER)
            .params(ListArgs::specs())
            .returns("vpc", fields(VPC_FIELDS))
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListVpcs {
            id: args.get(&ID)?,
            zone: args.get(&ZONE)?,
            name: args.text(&NAME)?,
            display_text: args.text(&DISPLAY_TEXT)?,
            cidr: args.text(&CIDR)?,
            offering: args.get(&OFFERING)?,
            services: args.get(&SERVICES)?,
            state: args.text(&STATE)?,
            restart_required: args.get(&RESTART_REQUIRED)?,
            tags: args.get(&TAGS_FILTER)?,
            list: ListArgs::parse(args)?,
        })
    }
}

impl SyncCommand for ListVpcs {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let scope = self.list.scope(ctx, self.id.is_some()).await?;
        let none = Reply::empty_list();
        let zone_id = match self.zone {
            Some(z) => match zone::get_by_uuid(db, z).await? {
                Some(z) => Some(z.id),
                None => return Ok(none),
            },
            None => None,
        };
        let offering_id = match self.offering {
            Some(o) => match offering::vpc_offering_by_uuid(db, o).await? {
                Some(o) => Some(o.id),
                None => return Ok(none),
            },
            None => None,
        };
        let tagged = tags::narrow(
            &ctx.app.db,
            ResourceType::Vpc,
            self.tags.as_deref(),
            self.id.map(|u| vec![u]),
        )
        .await?;
        let filter = vpc::VpcFilter {
            uuids: tagged,
            name: self.name,
            keyword: self.list.keyword.clone(),
            zone_id,
            scope,
            state: self.state,
            vpc_offering_id: offering_id,
            restart_required: self.restart_required,
            ..Default::default()
        };
        let wanted = self.services;
        let in_memory = self.display_text.is_some() || self.cidr.is_some() || wanted.is_some();
        let page = self.list.page(ctx).await?;
        let listed = vpc::list(db, &filter, if in_memory { Page::ALL } else { page }).await?;
        // The services of every offering the rows use, in one statement, for
        // the `supportedservices` filter.
        let offered = match &wanted {
            Some(_) => {
                let ids: Vec<i64> = listed.items.iter().map(|v| v.vpc_offering_id).collect();
                services_by_offering(offering::vpc_offerings_services(db, &ids).await?)
            }
            None => HashMap::new(),
        };
        let mut rows = Vec::new();
        for v in listed.items {
            if self
                .display_text
                .as_ref()
                .is_some_and(|t| *t != v.display_text)
                || self.cidr.as_ref().is_some_and(|c| *c != v.cidr.to_string())
            {
                continue;
            }
            if let Some(wanted) = &wanted {
                let services = offered
                    .get(&v.vpc_offering_id)
                    .map_or(&[][..], Vec::as_slice);
                if !gives_all(services, wanted) {
                    continue;
                }
            }
            rows.push(v);
        }
        let (count, rows) = counted_page(rows, listed.total, in_memory, page);
        let related = Related::for_vpcs(db, &rows, true).await?;
        let items = rows.iter().map(|v| vpc_view(&related, v, true)).collect();
        let mut items: Vec<serde_json::Value> = items;
        tags::attach(&ctx.app.db, ResourceType::Vpc, &mut items).await?;
        Ok(Reply::List { count, items })
    }
}
