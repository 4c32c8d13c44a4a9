//! `listRouters`: the VPC routers the caller (an admin) may see.

use uuid::Uuid;

use super::ROUTER_FIELDS;
use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Flag, Id, Spec, SyncCommand, Text};
use crate::server::registry::ADMINS;
use crate::server::{Ctx, Reply};
use crate::services::owner::ListArgs;
use crate::services::related::Related;
use crate::store::{network, router, vpc, zone};

use super::super::views::router_view;

const ID: Arg<Id> = Arg::opt("id", "the ID of the router");
const NAME: Arg<Text> = Arg::opt("name", "the name of the router");
const STATE: Arg<Text> = Arg::opt("state", "only routers in this state");
const ZONE: Arg<Id> = Arg::opt("zoneid", "only routers of this zone");
const VPC: Arg<Id> = Arg::opt("vpcid", "only the router of this VPC");
const NETWORK: Arg<Id> = Arg::opt("networkid", "only routers serving this tier");
const FOR_VPC: Arg<Flag> = Arg::opt("forvpc", "true: only VPC routers (all routers are)");
const POD: Arg<Id> = Arg::opt("podid", "accepted; there are no pods");
const HOST: Arg<Id> = Arg::opt("hostid", "accepted; there are no hosts");
const CLUSTER: Arg<Id> = Arg::opt("clusterid", "accepted; there are no clusters");
const VERSION: Arg<Text> = Arg::opt("version", "accepted; every router runs this version");
const HEALTH_CHECKS_FAILED: Arg<Flag> =
    Arg::opt("healthchecksfailed", "accepted; no health checks fail");
const FETCH_HEALTH_CHECKS: Arg<Flag> =
    Arg::opt("fetchhealthcheckresults", "accepted; no health checks run");

/// `listRouters`.
pub struct ListRouters {
    id: Option<Uuid>,
    name: Option<String>,
    state: Option<String>,
    zone: Option<Uuid>,
    vpc: Option<Uuid>,
    network: Option<Uuid>,
    for_vpc: Option<bool>,
    list: ListArgs,
}

impl Command for ListRouters {
    const NAME: &'static str = "listRouters";

    fn spec() -> Spec {
        Spec::new("Lists VPC virtual routers")
            .roles(ADMINS)
            .param(ID)
            .param(NAME)
            .param(STATE)
            .param(ZONE)
            .param(VPC)
            .param(NETWORK)
            .param(FOR_VPC)
            .param(POD)
            .param(HOST)
            .param(CLUSTER)
            .param(VERSION)
            .param(HEALTH_CHECKS_FAILED)
            .param(FETCH_HEALTH_CHECKS)
            .params(ListArgs::specs())
            .returns("router", ROUTER_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListRouters {
            id: args.get(&ID)?,
            name: args.text(&NAME)?,
            state: args.text(&STATE)?,
            zone: args.get(&ZONE)?,
            vpc: args.get(&VPC)?,
            network: args.get(&NETWORK)?,
            for_vpc: args.get(&FOR_VPC)?,
            list: ListArgs::parse(args)?,
        })
    }
}

impl SyncCommand for ListRouters {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let empty = Ok(Reply::empty_list());
        if self.for_vpc == Some(false) {
            return empty;
        }
        let scope = self.list.scope(ctx, self.id.is_some()).await?;
        let mut filter = router::RouterFilter {
            uuids: self.id.map(|u| vec![u]),
            keyword: self.list.keyword.clone(),
            state: self.state,
            name: self.name,
            scope,
            ..Default::default()
        };
        if let Some(z) = self.zone {
            match zone::get_by_uuid(db, z).await? {
                Some(z) => filter.zone_id = Some(z.id),
                None => return empty,
            }
        }
        let mut vpc_id = None;
        if let Some(v) = self.vpc {
            match vpc::get_by_uuid(db, v).await? {
                Some(v) => vpc_id = Some(v.id),
                None => return empty,
            }
        }
        if let Some(n) = self.network {
            match network::get_by_uuid(db, n).await? {
                Some(n) if n.vpc_id.is_some() && vpc_id.is_none_or(|v| Some(v) == n.vpc_id) => {
                    vpc_id = n.vpc_id;
                }
                _ => return empty,
            }
        }
        filter.vpc_id = vpc_id;
        let page = self.list.page(ctx).await?;
        let listed = router::list(db, &filter, page).await?;
        let related = Related::for_routers(db, &listed.items).await?;
        let hypervisor = ctx.app.network.hypervisor();
        let mut items: Vec<serde_json::Value> = listed
            .items
            .iter()
            .map(|r| router_view(&related, r, true, hypervisor))
            .collect();
        super::change_offering::fill_offerings(db, &listed.items, &mut items).await?;
        Ok(Reply::List {
            count: listed.total as u64,
            items,
        })
    }
}
