//! `listStaticRoutes`: the routes the caller may see, or those of a VPC or
//! private gateway it names.

use uuid::Uuid;

use super::super::{check_vpc_access, vpc_by_id, vpc_param};
use super::{ROUTE_FIELDS, route_view};
use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand, Text};
use crate::server::registry::{ALL, fields};
use crate::server::{Ctx, Reply};
use crate::services::owner::ListArgs;
use crate::services::owner::Scope;
use crate::services::related::Related;
use crate::services::tags::{self, ResourceType, TAGS_FILTER};
use crate::store::gateway;

const ID: Arg<Id> = Arg::opt("id", "the ID of the static route");
const VPC: Arg<Id> = Arg::opt("vpcid", "only routes of this VPC");
const GATEWAY: Arg<Id> = Arg::opt("gatewayid", "only routes through this private gateway");
const STATE: Arg<Text> = Arg::opt("state", "only routes in this state");

/// `listStaticRoutes`.
pub struct ListStaticRoutes {
    id: Option<Uuid>,
    vpc: Option<Uuid>,
    gateway: Option<Uuid>,
    state: Option<String>,
    tags: Option<Vec<std::collections::BTreeMap<String, String>>>,
    list: ListArgs,
}

impl Command for ListStaticRoutes {
    const NAME: &'static str = "listStaticRoutes";

    fn spec() -> Spec {
        Spec::new("Lists static routes")
            .roles(ALL)
            .param(ID)
            .param(VPC)
            .param(GATEWAY)
            .param(STATE)
            .param(TAGS_FILTER)
            .params(ListArgs::specs())
            .returns("staticroute", fields(ROUTE_FIELDS))
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListStaticRoutes {
            id: args.get(&ID)?,
            vpc: args.get(&VPC)?,
            gateway: args.get(&GATEWAY)?,
            state: args.text(&STATE)?,
            tags: args.get(&TAGS_FILTER)?,
            list: ListArgs::parse(args)?,
        })
    }
}

impl SyncCommand for ListStaticRoutes {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let scope = self.list.scope(ctx, self.id.is_some()).await?;
        let page = self.list.page(ctx).await?;
        let tagged = tags::narrow(
            &ctx.app.db,
            ResourceType::StaticRoute,
            self.tags.as_deref(),
            self.id.map(|u| vec![u]),
        )
        .await?;
        let mut filter = gateway::RouteFilter {
            uuids: tagged,
            state: self.state,
            scope,
            ..Default::default()
        };
        // A VPC or gateway named explicitly (and accessible) shows its routes
        // whatever the ownership filters say.
        let mut named = None;
        if let Some(id) = self.vpc {
            named = Some(vpc_param(ctx, VPC.name(), id).await?.id);
        }
        if let Some(id) = self.gateway {
            let g = gateway::get_by_uuid(db, id)
                .await?
                .filter(|g| g.removed.is_none())
                .ok_or_else(|| Error::invalid_id(GATEWAY.name(), id))?;
            check_vpc_access(ctx, &vpc_by_id(db, g.vpc_id).await?)?;
            filter.vpc_gateway_id = Some(g.id);
            named = Some(named.unwrap_or(g.vpc_id));
        }
        if let Some(vpc_id) = named {
            filter = gateway::RouteFilter {
                vpc_id: Some(vpc_id),
                scope: Scope::default(),
                ..filter
            };
        }
        let listed = gateway::list_routes(db, &filter, page).await?;
        let related = Related::for_routes(db, &listed.items).await?;
        let mut items = Vec::new();
        for r in &listed.items {
            items.push(route_view(&related, r)?);
        }
        tags::attach(&ctx.app.db, ResourceType::StaticRoute, &mut items).await?;
        Ok(Reply::List {
            count: listed.total as u64,
            items,
        })
    }
}
