//! Offerings (CloudStack reference §2.2, §2.4), one command per file:
//! `listNetworkOfferings` and `listVPCOfferings`, for every role;
//! `createVPCOffering` (async-create), `updateVPCOffering` and
//! `deleteVPCOffering` for the root admin; `createNetworkOffering`,
//! `updateNetworkOffering` and `deleteNetworkOffering` (tier offerings) for
//! the root admin too.
//!
//! This module registers them and keeps what several of them (and the VPC
//! and tier lists) share: the state and paging parameters, the
//! `supportedservices` filter, the lookups of a VPC offering.

mod create_vpc;
mod delete_vpc;
mod list_network;
mod list_vpc;
mod network_offering;
mod scope;
mod update_vpc;
mod views;

pub use create_vpc::CreateVpcOffering;
pub use delete_vpc::DeleteVpcOffering;
pub use list_network::ListNetworkOfferings;
pub use list_vpc::ListVpcOfferings;
pub use network_offering::{CreateNetworkOffering, DeleteNetworkOffering, UpdateNetworkOffering};
pub use scope::check_vpc_offering_access;
pub use update_vpc::UpdateVpcOffering;
pub(crate) use views::services_view;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Arg, Args, Flag, Id, Int, Text, Texts};
use crate::server::list_paging::Paging;
use crate::server::registry::{ParamSpec, Registry};
use crate::server::{Ctx, page_of};
use crate::store::{Db, Page, offering};

use views::vpc_offering_view;

/// `displaytext` of the offering creates.
pub(crate) const DISPLAY_TEXT: Arg<Text> = Arg::opt(
    "displaytext",
    "the description of the offering; default its name",
);

/// `enable` of the offering creates.
const ENABLE: Arg<Flag> = Arg::opt(
    "enable",
    "true: create the offering Enabled (default Disabled)",
);

/// Registers the offering commands.
pub fn register(registry: &mut Registry) {
    registry.sync::<ListNetworkOfferings>();
    registry.sync::<ListVpcOfferings>();
    registry.job::<CreateVpcOffering>();
    registry.job::<UpdateVpcOffering>();
    registry.job::<DeleteVpcOffering>();
    registry.sync::<CreateNetworkOffering>();
    registry.sync::<UpdateNetworkOffering>();
    registry.sync::<DeleteNetworkOffering>();
}

/// The sync object of the jobs on one VPC offering.
fn vpc_offering_sync(id: i64) -> String {
    format!("vpcoffering:{id}")
}

// ---------------------------------------------------------------- parameters

/// `state` of the lists and of updateVPCOffering.
const STATE: Arg<Text> = Arg::opt("state", "Enabled or Disabled");
/// `supportedservices` of both lists.
const SERVICES: Arg<Texts> = Arg::opt(
    "supportedservices",
    "only offerings giving all these services",
);
/// `zoneid` of listNetworkOfferings: accepted, every network offering
/// serves every zone.
const ZONE: Arg<Id> = Arg::opt(
    "zoneid",
    "only offerings usable in this zone (all offerings are)",
);
const KEYWORD: Arg<Text> = Arg::opt("keyword", "a substring of the name or description");
const PAGE_SIZE: Arg<Int> = Arg::opt("pagesize", "the number of offerings per page");

/// The parameters both lists read the same way: the filters of the store's
/// [`offering::OfferingFilter`] besides `id`, `name` and `isdefault`
/// (described differently by each list), the service filter and paging.
struct OfferingListArgs {
    /// As sent: checked by [`offering_state`] when the list runs.
    state: Option<String>,
    services: Option<Vec<String>>,
    paging: Paging,
}

impl OfferingListArgs {
    /// `keyword`, `page` and `pagesize` for `listApis`.
    fn paging_specs() -> Vec<ParamSpec> {
        Paging::specs_described(KEYWORD, PAGE_SIZE)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(OfferingListArgs {
            state: args.get(&STATE)?,
            services: args.get(&SERVICES)?,
            paging: Paging::parse(args)?,
        })
    }

    /// The store's filter (`state` checked here, first of all).
    fn filter(
        &self,
        id: Option<Uuid>,
        name: Option<String>,
        is_default: Option<bool>,
    ) -> Result<offering::OfferingFilter, Error> {
        Ok(offering::OfferingFilter {
            uuid: id,
            name,
            keyword: self.paging.keyword.clone(),
            state: offering_state(self.state.as_deref())?.map(str::to_string),
            is_default,
            ..Default::default()
        })
    }

    async fn page(&self, ctx: &Ctx) -> Result<Page, Error> {
        self.paging.page(ctx).await
    }
}

/// `Enabled` or `Disabled` (any case); empty means not given.
fn offering_state(text: Option<&str>) -> Result<Option<&'static str>, Error> {
    match text {
        None | Some("") => Ok(None),
        Some(s) if s.eq_ignore_ascii_case(offering::STATE_ENABLED.as_str()) => {
            Ok(Some(offering::STATE_ENABLED.as_str()))
        }
        Some(s) if s.eq_ignore_ascii_case(offering::STATE_DISABLED.as_str()) => {
            Ok(Some(offering::STATE_DISABLED.as_str()))
        }
        Some(s) => Err(Error::invalid(format!(
            "state {s} is neither Enabled nor Disabled"
        ))),
    }
}

// ---------------------------------------------------------------- service filter

/// Whether `services` give every service of `wanted` (names case-insensitive).
pub(crate) fn gives_all(services: &[offering::ServiceProvider], wanted: &[String]) -> bool {
    wanted
        .iter()
        .all(|w| services.iter().any(|s| s.service.eq_ignore_ascii_case(w)))
}

/// Rows of a list with their services: paged by the store unless a filter on
/// services has to run in memory first. Returns the total and the page.
async fn with_services<T, F>(
    db: &Db,
    wanted: Option<Vec<String>>,
    page: Page,
    list: impl AsyncFnOnce(Page) -> Result<crate::store::Listed<T>, Error>,
    services_of: F,
) -> Result<(u64, Vec<(T, Vec<offering::ServiceProvider>)>), Error>
where
    F: AsyncFn(&Db, &T) -> Result<Vec<offering::ServiceProvider>, Error>,
{
    match wanted {
        None => {
            let listed = list(page).await?;
            let mut rows = Vec::with_capacity(listed.items.len());
            for o in listed.items {
                let services = services_of(db, &o).await?;
                rows.push((o, services));
            }
            Ok((listed.total as u64, rows))
        }
        Some(wanted) => {
            let listed = list(Page::ALL).await?;
            let mut rows = Vec::new();
            for o in listed.items {
                let services = services_of(db, &o).await?;
                if gives_all(&services, &wanted) {
                    rows.push((o, services));
                }
            }
            let total = rows.len() as u64;
            Ok((total, page_of(rows, page)))
        }
    }
}

// ---------------------------------------------------------------- VPC offerings

/// 431 when a live VPC offering other than `except` is named `name`.
async fn check_name_free(db: &Db, name: &str, except: Option<i64>) -> Result<(), Error> {
    let filter = offering::OfferingFilter {
        name: Some(name.to_string()),
        ..Default::default()
    };
    let taken = offering::list_vpc_offerings(db, &filter, Page::ALL)
        .await?
        .items
        .iter()
        .any(|o| Some(o.id) != except);
    if taken {
        return Err(Error::invalid(format!(
            "A VPC offering named {name} exists already"
        )));
    }
    Ok(())
}

/// The live VPC offering `id` (given as parameter `param`), or 431.
async fn live_vpc_offering(
    ctx: &Ctx,
    id: Uuid,
    param: &str,
) -> Result<offering::VpcOffering, Error> {
    offering::vpc_offering_by_uuid(&ctx.app.db, id)
        .await?
        .filter(|o| o.removed.is_none())
        .ok_or_else(|| Error::invalid_id(param, id))
}

/// A job's result: `{"vpcoffering": {...}}`.
async fn vpc_offering_result(db: &Db, id: i64) -> Result<Value, Error> {
    let o = offering::vpc_offering_by_id(db, id)
        .await?
        .filter(|o| o.removed.is_none())
        .ok_or_else(|| Error::invalid("The VPC offering was deleted meanwhile"))?;
    let services = offering::vpc_offering_services(db, o.id).await?;
    let mut view = vpc_offering_view(&o, &services);
    scope::Scope::load(db, o.id).await?.add_to(&mut view);
    Ok(json!({ "vpcoffering": view }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_all_matches_service_names_in_any_case() {
        let services = [
            offering::ServiceProvider::new("Dhcp", "VpcVirtualRouter"),
            offering::ServiceProvider::new("Lb", "VpcVirtualRouter"),
        ];
        assert!(gives_all(&services, &["lb".into(), "DHCP".into()]));
        assert!(gives_all(&services, &[]));
        assert!(!gives_all(&services, &["SourceNat".into()]));
    }

    #[test]
    fn offering_states_are_enabled_or_disabled() {
        assert_eq!(offering_state(None).unwrap(), None);
        assert_eq!(offering_state(Some("")).unwrap(), None);
        assert_eq!(
            offering_state(Some("enabled")).unwrap(),
            Some(offering::STATE_ENABLED.as_str())
        );
        assert_eq!(
            offering_state(Some("DISABLED")).unwrap(),
            Some(offering::STATE_DISABLED.as_str())
        );
        assert_eq!(
            crate::api::ApiError::from(offering_state(Some("Gone")).unwrap_err()).code,
            431
        );
    }
}
