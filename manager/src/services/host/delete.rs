//! `deleteHost`: removes a host in Maintenance with nothing on it; any
//! other host only when `forced`, as CloudStack's. Forced, what runs there
//! goes first, as CloudStack's HA manager does for a deleted host: each
//! running router (CloudStack's routers are HA-enabled) is restarted on
//! another host, here make-before-break while the host agent answers
//! ([`relocate::move_router`]); each running VM is stopped (the stop every
//! `stopVirtualMachine` runs: on its host agent, and its leases off the
//! router). What could not move or stop is destroyed on the host agent if
//! it answers and left Stopped with no host.

use uuid::Uuid;

use super::host_by_id;
use super::planner::Placing;
use crate::error::Error;
use crate::orchestration::RouterDriver;
use crate::provision::{placement, relocate, state};
use crate::server::command::{Arg, Args, Command, Flag, Id, Spec, SyncCommand};
use crate::server::registry::ROOT;
use crate::server::{App, Ctx, Reply};
use crate::store::{host, router, vm};

const ID: Arg<Id> = Arg::req("id", "the host ID");
const FORCED: Arg<Flag> = Arg::opt(
    "forced",
    "Force delete the host: the routers and VMs on it are stopped",
);
const FORCED_DESTROY_LOCAL_STORAGE: Arg<Flag> = Arg::opt(
    "forcedestroylocalstorage",
    "accepted; hosts here have no local storage",
);

/// `deleteHost`.
pub struct DeleteHost {
    id: Uuid,
    forced: bool,
}

impl Command for DeleteHost {
    const NAME: &'static str = "deleteHost";

    fn spec() -> Spec {
        Spec::new("Deletes a host.")
            .roles(ROOT)
            .param(ID)
            .param(FORCED)
            .param(FORCED_DESTROY_LOCAL_STORAGE)
            .returns("host", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(DeleteHost {
            id: args.need(&ID)?,
            forced: args.get(&FORCED)?.unwrap_or(false),
        })
    }
}

impl SyncCommand for DeleteHost {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let h = host_by_id(ctx, self.id, ID.name()).await?;
        if h.resource_state != host::RESOURCE_MAINTENANCE && !self.forced {
            return Err(Error::internal(format!(
                "Host {} cannot be deleted as it is not in maintenance mode. Either put the host \
                 into maintenance or perform a forced deletion.",
                h.uuid
            )));
        }
        let (routers, vms) = relocate::residents(&ctx.app.db, h.id).await?;
        if !self.forced {
            let state = routers
                .first()
                .map(|r| r.state.as_str())
                .or_else(|| vms.first().map(|v| v.state.as_str()));
            if let Some(state) = state {
                return Err(Error::internal(format!(
                    "Unable to delete the host as there are vms in {state} state using this host \
                     and isForced=false specified"
                )));
            }
        }
        for r in &routers {
            clear_router(&ctx.app, h.id, r).await;
        }
        for v in &vms {
            clear_vm(&ctx.app, v).await;
        }
        host::remove(&ctx.app.db, h.id).await?;
        Ok(Reply::Success)
    }
}

/// A router of a host being deleted: moved to another host if it runs,
/// else (or if that fails) destroyed on the host agent, best effort.
async fn clear_router(app: &App, host_id: i64, r: &router::Router) {
    let db = &app.db;
    let moved: Result<(), Error> = async {
        if r.state != router::STATE_RUNNING {
            return Err(Error::invalid("not running"));
        }
        let label = format!("DomainRouter|{}", r.name);
        let target = placement::choose_except(
            db,
            r.zone_id,
            Placing::Router { vpc: r.vpc_id },
            Some(host_id),
            &label,
        )
        .await?
        .ok_or_else(|| Error::invalid("no other host in its zone"))?;
        let _lock = match r.vpc_id {
            Some(vpc) => Some(app.network.lock(db, vpc).await?),
            None => None,
        };
        let now = router::get_by_id(db, r.id)
            .await?
            .filter(|n| {
                n.removed.is_none()
                    && n.host_id == Some(host_id)
                    && n.state == router::STATE_RUNNING
            })
            .ok_or_else(|| Error::invalid("changed meanwhile"))?;
        relocate::move_router(db, &app.network, &now, target).await
    }
    .await;
    if let Err(e) = moved {
        tracing::warn!(router = %r.name, error = %e.text(), "deleteHost: the router stays behind; destroying it on the host");
        if let Ok(view) = crate::provision::vpc::router_view(db, r).await
            && let Err(e) = app.network.element.driver().destroy_router(&view).await
        {
            tracing::warn!(router = %r.name, error = %e, "deleteHost: destroying the router on its host failed");
        }
    }
}

/// A VM of a host being deleted: stopped (forced) if it runs; destroyed on
/// the host agent, best effort.
async fn clear_vm(app: &App, v: &vm::Vm) {
    if v.state == vm::STATE_RUNNING
        && let Err(e) = crate::services::vm::stop_vm(app, v.id, true).await
    {
        tracing::warn!(vm = %v.instance_name, error = %e.text(), "deleteHost: stopping the VM failed");
    }
    if let Ok(view) = state::vm_view(&app.db, v).await
        && let Err(e) = app.network.element.driver().destroy_vm(&view).await
    {
        tracing::warn!(vm = %v.instance_name, error = %e, "deleteHost: destroying the VM on its host failed");
    }
}
