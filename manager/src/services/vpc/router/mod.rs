//! VPC routers (reference §2.4 listRouters; stop/start/reboot;
//! changeServiceForRouter; destroyRouter), one command per file: for admins and domain
//! admins, never for users.

mod change_offering;
mod destroy;
mod list;
mod migrate;
mod reboot;
mod start;
mod stop;

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::error::Error;
use crate::provision;
use crate::provision::change::VpcLock;
use crate::server::command::{Arg, Id, Submission};
use crate::server::jobs::vpc_sync;
use crate::server::registry::{FieldSpec, field};
use crate::server::{App, Ctx};
use crate::services::owner;
use crate::services::related::Related;
use crate::store::{Db, router};

use super::views::router_view;

pub use change_offering::ChangeServiceForRouter;
pub use destroy::DestroyRouter;
pub use list::ListRouters;
pub use migrate::MigrateSystemVm;
pub(crate) use migrate::{check_destination, not_running};
pub use reboot::RebootRouter;
pub use start::StartRouter;
pub use stop::StopRouter;

const ROUTER_FIELDS: &[FieldSpec] = &[
    field("id", "string", "the ID of the router"),
    field("name", "string", "the name of the router (r-<id>-VM)"),
    field(
        "state",
        "string",
        "Starting, Running, Stopping, Stopped, Error",
    ),
    field("vpcid", "string", "the VPC the router serves"),
    field("vpcname", "string", "the name of that VPC"),
    field("zoneid", "string", "the zone of the router"),
    field("hostid", "string", "the ID of the host the router runs on"),
    field("hostname", "string", "the name of that host"),
    field("publicip", "string", "the router's source NAT address"),
    field("nic", "list", "the router's NICs"),
    field("role", "string", "VIRTUAL_ROUTER"),
    field(
        "configcurrent",
        "boolean",
        "whether the router has applied its latest configuration",
    ),
    field(
        "configgeneration",
        "long",
        "the generation of the wanted configuration",
    ),
    field(
        "appliedgeneration",
        "long",
        "the generation the router confirmed",
    ),
    field("account", "string", "the owner of the router's VPC"),
    field("domainid", "string", "the owner's domain"),
    field("created", "date", "when the router was created"),
    field(
        "serviceofferingid",
        "string",
        "the system offering the router runs with",
    ),
    field("serviceofferingname", "string", "the name of that offering"),
];

/// `id` of the commands on one router.
const ID: Arg<Id> = Arg::req("id", "the ID of the router");

/// The job of a command on one router.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouterJob {
    /// The router's row id.
    pub id: i64,
    /// A forced stop (stopRouter, rebootRouter).
    #[serde(default)]
    pub forced: bool,
}

/// The live router `id`, which the caller may act on.
async fn live_router_of(ctx: &Ctx, id: Uuid) -> Result<router::Router, Error> {
    let r = router::get_by_uuid(&ctx.app.db, id)
        .await?
        .filter(|r| r.removed.is_none())
        .ok_or_else(|| Error::invalid_id(ID.name(), id))?;
    owner::check_access(ctx, r.account_id, &r.domain_path, &format!("router {id}"))?;
    Ok(r)
}

/// The job on router `r`; jobs on a router run one at a time with the other
/// jobs of its VPC.
fn submission(r: &router::Router, forced: bool) -> Submission<RouterJob> {
    let job = RouterJob { id: r.id, forced };
    Submission::new(
        job,
        ("DomainRouter", r.uuid),
        vpc_sync(r.vpc_id.unwrap_or_default()),
    )
}

/// Stops a router; `forced`, a router that could not be stopped is marked
/// Stopped all the same (CloudStack's forced stop), the failure logged.
async fn stop(app: &App, r: &router::Router, forced: bool) -> Result<(), Error> {
    match provision::vpc::stop_router(&app.db, &app.network, r).await {
        Err(e) if forced => {
            tracing::warn!(router = %r.uuid, error = %e, "forced stop: the router could not be stopped; marked Stopped");
            router::set_state(&app.db, r.id, router::STATE_STOPPED).await?;
            Ok(())
        }
        other => other,
    }
}

/// A job's result: `{"router": {...}}`.
async fn router_result(app: &App, id: i64) -> Result<serde_json::Value, Error> {
    let r = router::get_by_id(&app.db, id)
        .await?
        .ok_or_else(|| Error::invalid("The router was destroyed meanwhile"))?;
    let hypervisor = app.network.hypervisor();
    let related = Related::for_routers(&app.db, std::slice::from_ref(&r)).await?;
    let mut views = [router_view(&related, &r, true, hypervisor)];
    change_offering::fill_offerings(&app.db, std::slice::from_ref(&r), &mut views).await?;
    let [view] = views;
    Ok(json!({ "router": view }))
}

/// The live router `id` a job works on, with its VPC's lock held: the
/// job's changes reach the router in order with the VPC's other changes.
async fn locked_router(app: &App, id: i64) -> Result<(router::Router, VpcLock<'_>), Error> {
    let r = live_router(&app.db, id).await?;
    let lock = app
        .network
        .lock(&app.db, r.vpc_id.unwrap_or_default())
        .await?;
    Ok((r, lock))
}

/// The live router `id` a job works on.
async fn live_router(db: &Db, id: i64) -> Result<router::Router, Error> {
    router::get_by_id(db, id)
        .await?
        .filter(|r| r.removed.is_none())
        .ok_or_else(|| Error::invalid("The router was destroyed meanwhile"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_router_job_stored_by_the_previous_version_still_reads() {
        let job: RouterJob = serde_json::from_str(r#"{"id": 4, "forced": true}"#).unwrap();
        assert_eq!((job.id, job.forced), (4, true));
        // startRouter's body read no `forced`; a missing one is false.
        let job: RouterJob = serde_json::from_str(r#"{"id": 4}"#).unwrap();
        assert!(!job.forced);
    }
}
