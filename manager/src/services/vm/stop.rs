//! `stopVirtualMachine`, and the stop that destroy and a failed start run:
//! the VM stops first, then its NICs are released (the guru keeps their
//! addresses for the VM), it is Stopped and its tiers' DHCP lists go to the
//! router without it (the element's `release`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{
    ID, TierNic, VM_FIELDS, check_state, job_vm, live_vm, revert_vm, sees_admin_fields, submission,
    tier_uuids, tiers_of_vm, vm_result,
};
use crate::error::Error;
use crate::orchestration::model::RouterState;
use crate::orchestration::{ElementResult, RouterDriver};
use crate::provision::change::RouterChange;
use crate::provision::{self, Network, RouterElement, tier as tiers};
use crate::server::command::{Arg, Args, AsyncCommand, Command, Flag, Spec, Submission};
use crate::server::jobs::JobCtx;
use crate::server::registry::{ALL, fields};
use crate::server::{App, Ctx};
use crate::store::{Db, Tx, vm, vpc};

const FORCED: Arg<Flag> = Arg::opt("forced", "true: stop even if the router cannot be told");

/// `stopVirtualMachine`.
pub struct StopVirtualMachine {
    id: Uuid,
    forced: bool,
}

/// The job of `stopVirtualMachine`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StopVmJob {
    /// The VM's row id.
    pub id: i64,
    /// Stopped even when the driver or the router cannot be told.
    #[serde(default)]
    pub forced: bool,
}

impl Command for StopVirtualMachine {
    const NAME: &'static str = "stopVirtualMachine";

    fn spec() -> Spec {
        Spec::new("Stops a running VM; it keeps its addresses")
            .roles(ALL)
            .param(ID)
            .param(FORCED)
            .returns("virtualmachine", fields(VM_FIELDS))
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(StopVirtualMachine {
            id: args.need(&ID)?,
            forced: args.get(&FORCED)?.unwrap_or(false),
        })
    }
}

impl AsyncCommand for StopVirtualMachine {
    /// A Stopped VM is left as it is ([`stop`]).
    const RERUN: bool = true;
    type Job = StopVmJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<StopVmJob>, Error> {
        let v = live_vm(ctx, self.id, ID.name()).await?;
        check_state(
            &v,
            &[vm::STATE_RUNNING, vm::STATE_STOPPED, vm::STATE_STARTING],
            "stop",
        )?;
        let job = StopVmJob {
            id: v.id,
            forced: self.forced,
        };
        submission(&ctx.app.db, &v, job).await
    }

    async fn run(job: &JobCtx, payload: StopVmJob) -> Result<Value, Error> {
        stop(&job.app, payload.id, payload.forced).await?;
        vm_result(&job.app.db, payload.id, sees_admin_fields(job.caller.role)).await
    }
}

/// Stops a Running VM: its NICs are released (the guru keeps their
/// addresses for the VM), it is Stopped with a new generation, and its
/// tiers' DHCP lists go to the router without it. When the push fails the
/// VM runs again, unless `forced`.
pub(crate) async fn stop(app: &App, vm_id: i64, forced: bool) -> Result<(), Error> {
    let db = &app.db;
    let v = job_vm(app, vm_id).await?;
    if v.state == vm::STATE_STOPPED {
        return Ok(());
    }
    let (tiers_of, vpc_id) = tiers_of_vm(db, v.id).await?;
    // The VM stops first, then the router forgets its leases.
    let view = provision::state::vm_view(db, &v).await?;
    if let Err(e) = app.network.element.driver().stop_vm(&view).await {
        if !forced {
            return Err(Error::internal(format!(
                "Unable to stop virtual machine {}: {e}",
                v.uuid
            )));
        }
        tracing::warn!(vm = %v.uuid, error = %e, "forced stop: the driver could not stop the VM");
    }
    let Some(vpc_id) = vpc_id else {
        vm::transition(db, v.id, &[vm::STATE_RUNNING], vm::STATE_STOPPED).await?;
        return Ok(());
    };
    let lock = app.network.lock(db, vpc_id).await?;
    let change = StopVm {
        network: &app.network,
        vpc_id,
        vm_id: v.id,
        tiers: &tiers_of,
        tier_uuids: tier_uuids(&tiers_of),
        forced,
    };
    match lock.apply_or_refused(&change).await? {
        Ok(true) => Ok(()),
        Ok(false) => {
            let now = job_vm(app, vm_id).await?;
            if now.state == vm::STATE_STOPPED {
                return Ok(());
            }
            Err(Error::invalid(format!(
                "Unable to stop virtual machine {}: it is in state {}",
                now.uuid, now.state
            )))
        }
        Err(e) if forced => {
            tracing::warn!(vm = %v.uuid, error = %e, "forced stop: the router still serves the VM's leases");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// A VM leaves its tiers: Stopped, its NICs released, and the tiers' DHCP
/// lists without it on the router.
struct StopVm<'a> {
    network: &'a Network,
    vpc_id: i64,
    vm_id: i64,
    tiers: &'a [TierNic],
    tier_uuids: Vec<Uuid>,
    forced: bool,
}

impl RouterChange for StopVm<'_> {
    /// Whether the VM was Running (and is now Stopped).
    type Written = bool;

    fn what(&self) -> &'static str {
        "a stopped VM"
    }

    async fn write(&self, tx: &mut Tx) -> Result<bool, Error> {
        vpc::lock(&mut *tx, self.vpc_id).await?;
        if !vm::transition(
            &mut *tx,
            self.vm_id,
            &[vm::STATE_RUNNING],
            vm::STATE_STOPPED,
        )
        .await?
        {
            return Ok(false);
        }
        for (t, nic) in self.tiers {
            tiers::release_nic(self.network, &mut *tx, t, nic).await?;
        }
        Ok(true)
    }

    fn reaches_router(&self, stopped: &bool) -> bool {
        *stopped
    }

    async fn push(
        &self,
        element: &RouterElement,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult {
        tiers::send_dhcp(element, state, generation, &self.tier_uuids, false).await
    }

    /// The VM runs again, unless the stop is forced: it then stays Stopped
    /// and the router forgets its leases with the resync that follows.
    async fn undo(&self, db: &Db, _: &bool) -> Result<(), Error> {
        if self.forced {
            return Ok(());
        }
        revert_vm(
            db,
            self.vm_id,
            vm::STATE_STOPPED,
            vm::STATE_RUNNING,
            vm::NIC_RESERVED,
        )
        .await
    }
}
