//! `listNetworkOfferings`: every offering is an Isolated offering for Guest
//! traffic, so a filter on another guest IP type or traffic type lists none.

use uuid::Uuid;

use super::views::{NETWORK_OFFERING_FIELDS, network_offering_view};
use super::{OfferingListArgs, SERVICES, STATE, ZONE, with_services};
use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Flag, Id, Spec, SyncCommand, Text};
use crate::server::registry::ALL;
use crate::server::{Ctx, Reply};
use crate::store::{Db, offering, vm};

const ID: Arg<Id> = Arg::opt("id", "the ID of the network offering");
const NAME: Arg<Text> = Arg::opt("name", "the name of the network offering");
const FOR_VPC: Arg<Flag> = Arg::opt(
    "forvpc",
    "true: only offerings for VPC tiers; false: only the others",
);
const IS_DEFAULT: Arg<Flag> = Arg::opt("isdefault", "only default (or non-default) offerings");
const GUEST_IP_TYPE: Arg<Text> = Arg::opt(
    "guestiptype",
    "only offerings of this guest IP type (all are Isolated)",
);
const TRAFFIC_TYPE: Arg<Text> = Arg::opt(
    "traffictype",
    "only offerings of this traffic type (all are Guest)",
);

/// `listNetworkOfferings`.
pub struct ListNetworkOfferings {
    id: Option<Uuid>,
    name: Option<String>,
    for_vpc: Option<bool>,
    is_default: Option<bool>,
    guest_ip_type: Option<String>,
    traffic_type: Option<String>,
    list: OfferingListArgs,
}

impl Command for ListNetworkOfferings {
    const NAME: &'static str = "listNetworkOfferings";

    fn spec() -> Spec {
        Spec::new("Lists network offerings")
            .roles(ALL)
            .param(ID)
            .param(NAME)
            .param(FOR_VPC)
            .param(STATE)
            .param(IS_DEFAULT)
            .param(GUEST_IP_TYPE)
            .param(TRAFFIC_TYPE)
            .param(SERVICES)
            .param(ZONE)
            .params(OfferingListArgs::paging_specs())
            .returns("networkoffering", NETWORK_OFFERING_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListNetworkOfferings {
            id: args.get(&ID)?,
            name: args.text(&NAME)?,
            for_vpc: args.get(&FOR_VPC)?,
            is_default: args.get(&IS_DEFAULT)?,
            guest_ip_type: args.text(&GUEST_IP_TYPE)?,
            traffic_type: args.text(&TRAFFIC_TYPE)?,
            list: OfferingListArgs::parse(args)?,
        })
    }
}

impl SyncCommand for ListNetworkOfferings {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let other_kind = self
            .guest_ip_type
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("Isolated"))
            || self
                .traffic_type
                .as_deref()
                .is_some_and(|t| !t.eq_ignore_ascii_case("Guest"));
        if other_kind {
            return Ok(Reply::empty_list());
        }
        let filter = offering::OfferingFilter {
            for_vpc: self.for_vpc,
            ..self.list.filter(self.id, self.name, self.is_default)?
        };
        let page = self.list.page(ctx).await?;
        let (count, rows) = with_services(
            db,
            self.list.services,
            page,
            async |p| Ok(offering::list_network_offerings(db, &filter, p).await?),
            async |db: &Db, o: &offering::NetworkOffering| {
                Ok(offering::network_offering_services(db, o.id).await?)
            },
        )
        .await?;
        let router_offering = vm::offering_by_unique_name(db, vm::ROUTER_OFFERING_UNIQUE_NAME)
            .await?
            .map(|o| o.uuid);
        let items = rows
            .iter()
            .map(|(o, services)| network_offering_view(o, services, router_offering))
            .collect();
        Ok(Reply::List { count, items })
    }
}
