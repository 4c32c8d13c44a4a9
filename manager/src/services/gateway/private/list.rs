//! `listPrivateGateways`: the gateways the caller may see, or those of a VPC
//! it names; `vlan` compares VLANs whatever the broadcast scheme.

use uuid::Uuid;

use super::super::vpc_param;
use super::{GATEWAY_FIELDS, gateway_view, vlan_form};
use crate::error::Error;
use crate::rules::gateway as rule;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand, Text};
use crate::server::registry::{ALL, fields};
use crate::server::{Ctx, Reply, page_of};
use crate::services::owner::ListArgs;
use crate::services::owner::Scope;
use crate::services::related::Related;
use crate::services::tags::{self, ResourceType, TAGS_FILTER};
use crate::store::{Page, gateway};

const ID: Arg<Id> = Arg::opt("id", "the ID of the private gateway");
const VPC: Arg<Id> = Arg::opt("vpcid", "only gateways of this VPC");
const IP_ADDRESS: Arg<Text> = Arg::opt("ipaddress", "only the gateway with this address");
const VLAN: Arg<Text> = Arg::opt("vlan", "only gateways on this VLAN");
const STATE: Arg<Text> = Arg::opt("state", "only gateways in this state");

/// `listPrivateGateways`.
pub struct ListPrivateGateways {
    id: Option<Uuid>,
    vpc: Option<Uuid>,
    ip_address: Option<String>,
    vlan: Option<String>,
    state: Option<String>,
    tags: Option<Vec<std::collections::BTreeMap<String, String>>>,
    list: ListArgs,
}

impl Command for ListPrivateGateways {
    const NAME: &'static str = "listPrivateGateways";

    fn spec() -> Spec {
        Spec::new("Lists private gateways")
            .roles(ALL)
            .param(ID)
            .param(VPC)
            .param(IP_ADDRESS)
            .param(VLAN)
            .param(STATE)
            .param(TAGS_FILTER)
            .params(ListArgs::specs())
            .returns("privategateway", fields(GATEWAY_FIELDS))
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListPrivateGateways {
            id: args.get(&ID)?,
            vpc: args.get(&VPC)?,
            ip_address: args.text(&IP_ADDRESS)?,
            // A blank VLAN filters nothing.
            vlan: args.get(&VLAN)?.filter(|s| !s.trim().is_empty()),
            state: args.text(&STATE)?,
            tags: args.get(&TAGS_FILTER)?,
            list: ListArgs::parse(args)?,
        })
    }
}

impl SyncCommand for ListPrivateGateways {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let scope = self.list.scope(ctx, self.id.is_some()).await?;
        let page = self.list.page(ctx).await?;
        let tagged = tags::narrow(
            &ctx.app.db,
            ResourceType::PrivateGateway,
            self.tags.as_deref(),
            self.id.map(|u| vec![u]),
        )
        .await?;
        let mut filter = gateway::GatewayFilter {
            uuids: tagged,
            ip4_address: self.ip_address,
            state: self.state,
            scope,
            ..Default::default()
        };
        if let Some(id) = self.vpc {
            // A VPC named explicitly (and accessible) shows its gateways
            // whatever the ownership filters say.
            let v = vpc_param(ctx, VPC.name(), id).await?;
            filter = gateway::GatewayFilter {
                vpc_id: Some(v.id),
                scope: Scope::default(),
                ..filter
            };
        }
        let full = ctx.caller.is_root_admin();
        let (count, rows) = match self.vlan {
            None => {
                let listed = gateway::list(db, &filter, page).await?;
                (listed.total as u64, listed.items)
            }
            Some(vlan) => {
                let wanted = rule::normalize_vlan(&vlan)?;
                let all: Vec<gateway::PrivateGateway> = gateway::list(db, &filter, Page::ALL)
                    .await?
                    .items
                    .into_iter()
                    .filter(|g| vlan_form(&g.broadcast_uri) == wanted)
                    .collect();
                (all.len() as u64, page_of(all, page))
            }
        };
        let related = Related::for_gateways(db, &rows).await?;
        let mut items = Vec::new();
        for g in &rows {
            items.push(gateway_view(&related, g, full)?);
        }
        tags::attach(&ctx.app.db, ResourceType::PrivateGateway, &mut items).await?;
        Ok(Reply::List { count, items })
    }
}
