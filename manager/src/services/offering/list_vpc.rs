//! `listVPCOfferings`: a root admin sees every offering; other callers
//! those their domain may use (restricted to no domain, or to theirs or
//! one above it), as CloudStack lists them. `domainid` narrows to the
//! offerings of a domain, `zoneid` to those usable in a zone.

use uuid::Uuid;

use super::scope::Scope;
use super::views::{VPC_OFFERING_FIELDS, vpc_offering_view};
use super::{OfferingListArgs, SERVICES, STATE, with_services};
use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Flag, Id, Spec, SyncCommand, Text};
use crate::server::registry::ALL;
use crate::server::{Ctx, Reply};
use crate::store::{Db, domain, offering, zone};

const ID: Arg<Id> = Arg::opt("id", "the ID of the VPC offering");
const NAME: Arg<Text> = Arg::opt("name", "the name of the VPC offering");
const IS_DEFAULT: Arg<Flag> = Arg::opt("isdefault", "only the default (or non-default) offerings");
const ZONE: Arg<Id> = Arg::opt("zoneid", "only offerings usable in this zone");
const DOMAIN: Arg<Id> = Arg::opt(
    "domainid",
    "only offerings the accounts of this domain may use",
);

/// `listVPCOfferings`.
pub struct ListVpcOfferings {
    id: Option<Uuid>,
    name: Option<String>,
    is_default: Option<bool>,
    zone: Option<Uuid>,
    domain: Option<Uuid>,
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
            .param(DOMAIN)
            .params(OfferingListArgs::paging_specs())
            .returns("vpcoffering", VPC_OFFERING_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListVpcOfferings {
            id: args.get(&ID)?,
            name: args.text(&NAME)?,
            is_default: args.get(&IS_DEFAULT)?,
            zone: args.get(&ZONE)?,
            domain: args.get(&DOMAIN)?,
            list: OfferingListArgs::parse(args)?,
        })
    }
}

impl SyncCommand for ListVpcOfferings {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let mut filter = self.list.filter(self.id, self.name, self.is_default)?;
        if let Some(id) = self.zone {
            let z = zone::get_by_uuid(db, id)
                .await?
                .filter(|z| z.removed.is_none())
                .ok_or_else(|| Error::invalid_id(ZONE.name(), id))?;
            filter.zone_id = Some(z.id);
        }
        // A caller other than the root admin sees what its domain may use.
        if !ctx.caller.is_root_admin() {
            filter.usable_in_domain = Some(ctx.caller.domain_path.clone());
        }
        if let Some(id) = self.domain {
            let d = domain::get_by_uuid(db, id)
                .await?
                .filter(|d| d.removed.is_none())
                .ok_or_else(|| Error::invalid_id(DOMAIN.name(), id))?;
            if !ctx.caller.covers_domain(&d.path) {
                return Err(Error::permission_denied(format!(
                    "The caller has no access to domain {id}"
                )));
            }
            filter.usable_in_domain = Some(d.path);
        }
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
        let mut items = Vec::with_capacity(rows.len());
        for (o, services) in &rows {
            let mut view = vpc_offering_view(o, services);
            Scope::load(db, o.id).await?.add_to(&mut view);
            items.push(view);
        }
        Ok(Reply::List { count, items })
    }
}
