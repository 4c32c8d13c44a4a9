//! `changeServiceForRouter` (CloudStack's UpgradeRouterCmd): a stopped
//! router takes another system offering for routers, which it runs with
//! from its next start. Every router shows its offering (`serviceofferingid`,
//! `serviceofferingname`; the default router offering until changed).

use std::collections::HashMap;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand};
use crate::server::registry::ADMINS;
use crate::server::{Ctx, Reply};
use crate::store::{Db, router, vm};

use super::{ID, ROUTER_FIELDS, live_router_of, router_result};

const OFFERING: Arg<Id> = Arg::req(
    "serviceofferingid",
    "the system offering for routers the router runs with from its next start",
);

/// `changeServiceForRouter`.
pub struct ChangeServiceForRouter {
    id: Uuid,
    offering: Uuid,
}

impl Command for ChangeServiceForRouter {
    const NAME: &'static str = "changeServiceForRouter";

    fn spec() -> Spec {
        Spec::new("Changes the service offering of a stopped router")
            .roles(ADMINS)
            .param(ID)
            .param(OFFERING)
            .returns("router", ROUTER_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ChangeServiceForRouter {
            id: args.need(&ID)?,
            offering: args.need(&OFFERING)?,
        })
    }
}

impl SyncCommand for ChangeServiceForRouter {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let r = live_router_of(ctx, self.id).await?;
        let o = vm::offering_by_uuid(db, self.offering)
            .await?
            .filter(|o| o.removed.is_none())
            .ok_or_else(|| {
                Error::invalid(format!(
                    "Unable to find service offering with id {}",
                    self.offering
                ))
            })?;
        // CloudStack's checks, in its order (upgradeRouter).
        if o.system_vm_type.as_deref() != Some("domainrouter") {
            return Err(Error::invalid(format!(
                "Cannot upgrade router vm to a non system service offering {}",
                o.uuid
            )));
        }
        if r.state != router::STATE_STOPPED {
            return Err(Error::invalid(format!(
                "Unable to upgrade router {} in state {}; make sure the router is stopped \
                 and not in an error state before upgrading.",
                r.name, r.state
            )));
        }
        vm::set_router_offering(db, r.id, o.id).await?;
        let mut result = router_result(&ctx.app, r.id).await?;
        Ok(Reply::Object(result["router"].take()))
    }
}

/// Sets `serviceofferingid`/`serviceofferingname` of the router objects of
/// a page (`views[i]` shows `routers[i]`): each router's own offering, or
/// the default router offering. Three statements for the whole page.
pub(super) async fn fill_offerings(
    db: &Db,
    routers: &[router::Router],
    views: &mut [Value],
) -> Result<(), Error> {
    if routers.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = routers.iter().map(|r| r.id).collect();
    let own: HashMap<i64, i64> = vm::router_offerings(db, &ids)
        .await?
        .into_iter()
        .map(|o| (o.router_id, o.service_offering_id))
        .collect();
    let mut wanted: Vec<i64> = own.values().copied().collect();
    wanted.sort_unstable();
    wanted.dedup();
    let offerings: HashMap<i64, vm::ServiceOffering> = vm::offerings_by_ids(db, &wanted)
        .await?
        .into_iter()
        .map(|o| (o.id, o))
        .collect();
    let default = vm::offering_by_unique_name(db, vm::ROUTER_OFFERING_UNIQUE_NAME).await?;
    for (r, view) in routers.iter().zip(views.iter_mut()) {
        let offering = match own.get(&r.id) {
            Some(id) => offerings.get(id),
            None => default.as_ref(),
        };
        if let Some(o) = offering {
            view["serviceofferingid"] = json!(o.uuid);
            view["serviceofferingname"] = json!(o.name);
        }
    }
    Ok(())
}
