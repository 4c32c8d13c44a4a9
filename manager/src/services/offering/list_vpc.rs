//! `listVPCOfferings`.

use uuid::Uuid;

use super::views::{VPC_OFFERING_FIELDS, vpc_offering_view};
use super::{OfferingListArgs, SERVICES, STATE, ZONE, with_services};
use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Flag, Id, Spec, SyncCommand, Text};
use crate::server::registry::ALL;
use crate::server::{Ctx, Reply};
use crate::store::{Db, offering};

const ID: Arg<Id> = Arg::opt("id", "the ID of the VPC offering");
const NAME: Arg<Text> = Arg::opt("name", "the name of the VPC offering");
const IS_DEFAULT: Arg<Flag> = Arg::opt("isdefault", "only the default (or non-default) offerings");

/// `listVPCOfferings`.
pub struct ListVpcOfferings {
    id: Option<Uuid>,
    name: Option<String>,
    is_default: Option<bool>,
    list: OfferingListArgs,
}

impl Command for ListVpcOfferings {
    const NAME: &'static str = "listVPCOfferings";

    fn spec() -> Spec {
        Spec::new("Lists VPC offerings")
            .roles(ALL)
            .param(ID)
            .param(NAME)
            .param(STATE)
            .param(IS_DEFAULT)
            .param(SERVICES)
            .param(ZONE)
            .params(OfferingListArgs::paging_specs())
            .returns("vpcoffering", VPC_OFFERING_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListVpcOfferings {
            id: args.get(&ID)?,
            name: args.text(&NAME)?,
            is_default: args.get(&IS_DEFAULT)?,
            list: OfferingListArgs::parse(args)?,
        })
    }
}

impl SyncCommand for ListVpcOfferings {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let filter = self.list.filter(self.id, self.name, self.is_default)?;
        let page = self.list.page(ctx).await?;
        let (count, rows) = with_services(
            db,
            self.list.services,
            page,
            async |p| Ok(offering::list_vpc_offerings(db, &filter, p).await?),
            async |db: &Db, o: &offering::VpcOffering| {
                Ok(offering::vpc_offering_services(db, o.id).await?)
            },
        )
        .await?;
        let items = rows
            .iter()
            .map(|(o, services)| vpc_offering_view(o, services))
            .collect();
        Ok(Reply::List { count, items })
    }
}
