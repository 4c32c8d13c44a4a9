//! `listNetworks`: the live Guest tiers the caller may see, with CloudStack's
//! filters, ownership scope and paging.

use std::collections::HashMap;

use uuid::Uuid;

use super::{NETWORK_FIELDS, network_view, sees_admin_fields};
use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Flag, Id, Spec, SyncCommand, Text, Texts};
use crate::server::registry::{ALL, fields};
use crate::server::{Ctx, Reply, counted_page};
use crate::services::offering::gives_all;
use crate::services::owner::ListArgs;
use crate::services::related::{Related, services_by_offering};
use crate::services::tags::{self, ResourceType, TAGS_FILTER};
use crate::store::{Page, network, offering, vpc, zone};

const ID: Arg<Id> = Arg::opt("id", "the ID of the network");
const NAME: Arg<Text> = Arg::opt("name", "only networks of this name");
const VPC: Arg<Id> = Arg::opt("vpcid", "only tiers of this VPC");
const FOR_VPC: Arg<Flag> = Arg::opt(
    "forvpc",
    "true: only VPC tiers; false: only networks outside VPCs",
);
const ZONE: Arg<Id> = Arg::opt("zoneid", "only networks of this zone");
const TRAFFIC_TYPE: Arg<Text> = Arg::opt("traffictype", "only networks of this traffic type");
const TYPE: Arg<Text> = Arg::opt("type", "only networks of this guest type");
const IS_SYSTEM: Arg<Flag> = Arg::opt("issystem", "true: only system networks (none)");
const OFFERING: Arg<Id> = Arg::opt("networkofferingid", "only networks of this offering");
const PHYSICAL: Arg<Id> = Arg::opt(
    "physicalnetworkid",
    "only networks on this physical network",
);
const RESTART_REQUIRED: Arg<Flag> = Arg::opt(
    "restartrequired",
    "only networks that need (or do not need) a restart",
);
const CAN_USE_FOR_DEPLOY: Arg<Flag> = Arg::opt(
    "canusefordeploy",
    "only networks VMs can (or cannot) be deployed in",
);
const SERVICES: Arg<Texts> = Arg::opt(
    "supportedservices",
    "only networks giving all these services",
);
const ACL_TYPE: Arg<Text> = Arg::opt("acltype", "only networks of this ACL type (Account)");

/// `listNetworks`.
pub struct ListNetworks {
    id: Option<Uuid>,
    name: Option<String>,
    vpc: Option<Uuid>,
    for_vpc: Option<bool>,
    zone: Option<Uuid>,
    traffic_type: Option<String>,
    guest_type: Option<String>,
    is_system: Option<bool>,
    offering: Option<Uuid>,
    physical: Option<Uuid>,
    restart_required: Option<bool>,
    can_use_for_deploy: Option<bool>,
    services: Option<Vec<String>>,
    acl_type: Option<String>,
    tags: Option<Vec<std::collections::BTreeMap<String, String>>>,
    list: ListArgs,
}

impl Command for ListNetworks {
    const NAME: &'static str = "listNetworks";

    fn spec() -> Spec {
        Spec::new("Lists the tiers the caller may see")
            .roles(ALL)
            .param(ID)
            .param(NAME)
            .param(VPC)
            .param(FOR_VPC)
            .param(ZONE)
            .param(TRAFFIC_TYPE)
            .param(TYPE)
            .param(IS_SYSTEM)
            .param(OFFERING)
            .param(PHYSICAL)
            .param(RESTART_REQUIRED)
            .param(CAN_USE_FOR_DEPLOY)
            .param(SERVICES)
            .param(ACL_TYPE)
            .param(TAGS_FILTER)
            .params(ListArgs::specs())
            .returns("network", fields(NETWORK_FIELDS))
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListNetworks {
            id: args.get(&ID)?,
            name: args.text(&NAME)?,
            vpc: args.get(&VPC)?,
            for_vpc: args.get(&FOR_VPC)?,
            zone: args.get(&ZONE)?,
            traffic_type: args.text(&TRAFFIC_TYPE)?,
            guest_type: args.text(&TYPE)?,
            is_system: args.get(&IS_SYSTEM)?,
            offering: args.get(&OFFERING)?,
            physical: args.get(&PHYSICAL)?,
            restart_required: args.get(&RESTART_REQUIRED)?,
            can_use_for_deploy: args.get(&CAN_USE_FOR_DEPLOY)?,
            services: args.get(&SERVICES)?,
            acl_type: args.text(&ACL_TYPE)?,
            tags: args.get(&TAGS_FILTER)?,
            list: ListArgs::parse(args)?,
        })
    }
}

/// An empty list (a filter names something that does not exist, or asks
/// for networks this manager never lists).
fn nothing() -> Reply {
    Reply::empty_list()
}

impl ListNetworks {
    /// Whether a filter asks for networks other than VPC tiers: the zone's
    /// public network and private gateway networks are system networks
    /// CloudStack hides here.
    fn other_kind(&self) -> bool {
        let differs = |given: &Option<String>, only: &str| {
            given
                .as_ref()
                .is_some_and(|t| !t.eq_ignore_ascii_case(only))
        };
        differs(&self.traffic_type, network::TRAFFIC_GUEST)
            || differs(&self.guest_type, "Isolated")
            || differs(&self.acl_type, "Account")
            || self.is_system == Some(true)
            || self.for_vpc == Some(false)
            || self.restart_required == Some(true)
            || self.can_use_for_deploy == Some(false)
    }
}

impl SyncCommand for ListNetworks {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let scope = self.list.scope(ctx, self.id.is_some()).await?;
        if self.other_kind() {
            return Ok(nothing());
        }
        let vpc_id = match self.vpc {
            Some(id) => match vpc::get_by_uuid(db, id).await? {
                Some(v) => Some(v.id),
                None => return Ok(nothing()),
            },
            None => None,
        };
        let zone_id = match self.zone {
            Some(id) => match zone::get_by_uuid(db, id).await? {
                Some(z) => Some(z.id),
                None => return Ok(nothing()),
            },
            None => None,
        };
        let offering_id = match self.offering {
            Some(id) => match offering::network_offering_by_uuid(db, id).await? {
                Some(o) => Some(o.id),
                None => return Ok(nothing()),
            },
            None => None,
        };
        let physical_id = match self.physical {
            Some(id) => match zone::physical_network_by_uuid(db, id).await? {
                Some(p) => Some(p.id),
                None => return Ok(nothing()),
            },
            None => None,
        };
        let tagged = tags::narrow(
            &ctx.app.db,
            ResourceType::Network,
            self.tags.as_deref(),
            self.id.map(|u| vec![u]),
        )
        .await?;
        let filter = network::NetworkFilter {
            uuids: tagged,
            keyword: self.list.keyword.clone(),
            zone_id,
            vpc_id,
            in_vpc: Some(true),
            scope,
            traffic_type: Some(network::TRAFFIC_GUEST.into()),
            ..Default::default()
        };
        let name = self.name;
        let wanted = self.services;
        let in_memory =
            name.is_some() || offering_id.is_some() || physical_id.is_some() || wanted.is_some();
        let page = self.list.page(ctx).await?;
        let listed = network::list(db, &filter, if in_memory { Page::ALL } else { page }).await?;
        // The services of every offering the rows use, in one statement, for
        // the `supportedservices` filter.
        let offered = match &wanted {
            Some(_) => {
                let ids: Vec<i64> = listed.items.iter().map(|t| t.network_offering_id).collect();
                services_by_offering(offering::network_offerings_services(db, &ids).await?)
            }
            None => HashMap::new(),
        };
        let mut rows = Vec::new();
        for t in listed.items {
            if name.as_ref().is_some_and(|n| *n != t.name)
                || offering_id.is_some_and(|o| o != t.network_offering_id)
                || physical_id.is_some_and(|p| Some(p) != t.physical_network_id)
            {
                continue;
            }
            if let Some(wanted) = &wanted {
                let services = offered
                    .get(&t.network_offering_id)
                    .map_or(&[][..], Vec::as_slice);
                if !gives_all(services, wanted) {
                    continue;
                }
            }
            rows.push(t);
        }
        let (count, rows) = counted_page(rows, listed.total, in_memory, page);
        let admin = sees_admin_fields(ctx.caller.role);
        let related = Related::for_networks(db, &rows).await?;
        let items = rows
            .iter()
            .map(|t| network_view(&related, t, admin))
            .collect();
        let mut items: Vec<serde_json::Value> = items;
        tags::attach(&ctx.app.db, ResourceType::Network, &mut items).await?;
        Ok(Reply::List { count, items })
    }
}
