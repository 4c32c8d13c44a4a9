//! `startVirtualMachine`, and the start every deployment runs: the VM's
//! tiers are implemented when they are not yet (their first VM), the VM is
//! Running with its NICs in use and the router gets the tiers' DHCP lists
//! with it (the element's `prepare`), then the VM itself starts.

use serde_json::Value;
use uuid::Uuid;

use super::{
    ID, VM_FIELDS, check_state, job_vm, live_vm, revert_vm, sees_admin_fields, stop, submission,
    tier_uuids, tiers_of_vm, vm_result,
};
use crate::error::Error;
use crate::orchestration::model::RouterState;
use crate::orchestration::{ElementResult, RouterDriver};
use crate::provision::change::RouterChange;
use crate::provision::{self, RouterElement, tier as tiers};
use crate::server::command::{Args, AsyncCommand, Command, IdJob, Spec, Submission};
use crate::server::jobs::JobCtx;
use crate::server::registry::{ALL, fields};
use crate::server::{App, Ctx};
use crate::store::{Db, Tx, network, vm, vpc};

/// `startVirtualMachine`.
pub struct StartVirtualMachine {
    id: Uuid,
}

impl Command for StartVirtualMachine {
    const NAME: &'static str = "startVirtualMachine";

    fn spec() -> Spec {
        Spec::new("Starts a stopped VM")
            .roles(ALL)
            .param(ID)
            .returns("virtualmachine", fields(VM_FIELDS))
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(StartVirtualMachine {
            id: args.need(&ID)?,
        })
    }
}

impl AsyncCommand for StartVirtualMachine {
    /// A VM an earlier run started is started again idempotently
    /// ([`start`]).
    const RERUN: bool = true;
    type Job = IdJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<IdJob>, Error> {
        let v = live_vm(ctx, self.id, ID.name()).await?;
        if v.state == vm::STATE_RUNNING {
            return Err(Error::invalid(format!(
                "The virtual machine {} ({}) is already running",
                v.uuid, v.display_name
            )));
        }
        check_state(&v, &[vm::STATE_STOPPED], "start")?;
        submission(&ctx.app.db, &v, IdJob { id: v.id }).await
    }

    async fn run(job: &JobCtx, payload: IdJob) -> Result<Value, Error> {
        start(&job.app, payload.id).await?;
        vm_result(&job.app.db, payload.id, sees_admin_fields(job.caller.role)).await
    }
}

/// Starts a Stopped VM: deploys its VPC's router again if it was destroyed,
/// implements its tiers that are not yet, then marks
/// it Running with its NICs in use and a new generation, and pushes its
/// tiers' DHCP lists. When the push fails the VM is Stopped again. A VM an
/// earlier run of the job started already gets the lists and the driver's
/// start again (both idempotent), so the job can run twice.
pub(crate) async fn start(app: &App, vm_id: i64) -> Result<(), Error> {
    let db = &app.db;
    let v = job_vm(app, vm_id).await?;
    let (tiers_of, vpc_id) = tiers_of_vm(db, v.id).await?;
    let Some(vpc_id) = vpc_id else {
        vm::transition(db, v.id, &[vm::STATE_STOPPED], vm::STATE_RUNNING).await?;
        return Ok(());
    };
    let lock = app.network.lock(db, vpc_id).await?;
    provision::vpc::redeploy_router_if_gone(&lock).await?;
    for (t, _) in &tiers_of {
        if t.state != network::STATE_IMPLEMENTED {
            tiers::implement_tier(&lock, t.id).await?;
        }
    }
    lock.apply(&StartVm {
        vpc_id,
        vm_id: v.id,
        vm_uuid: v.uuid,
        tiers: tier_uuids(&tiers_of),
    })
    .await?;
    drop(lock);
    // The router serves the VM's lease; now the VM itself runs and takes it.
    let view = provision::state::vm_view(db, &v).await?;
    let segments: Vec<String> = view
        .nics
        .iter()
        .filter_map(|n| n.broadcast_uri.clone())
        .collect();
    provision::flood::sync_after_placement(
        db,
        app.network.element.driver(),
        view.zone_id,
        &segments,
    )
    .await;
    if let Err(e) = app.network.element.driver().start_vm(&view).await {
        if let Err(undo) = stop::stop(app, vm_id, true).await {
            tracing::error!(vm = %v.uuid, error = %undo, "stopping a VM that failed to start");
        }
        return Err(Error::internal(format!(
            "Unable to start virtual machine {}: {e}",
            v.uuid
        )));
    }
    Ok(())
}

/// A VM joins its tiers: Running, its NICs in use, and the tiers' DHCP
/// lists with it on the router.
struct StartVm {
    vpc_id: i64,
    vm_id: i64,
    vm_uuid: Uuid,
    tiers: Vec<Uuid>,
}

impl RouterChange for StartVm {
    /// Whether the VM was Stopped (and is now Running); false when an
    /// earlier run of the same job started it already, which then only
    /// sends the DHCP lists again.
    type Written = bool;

    fn what(&self) -> &'static str {
        "a started VM"
    }

    async fn write(&self, tx: &mut Tx) -> Result<bool, Error> {
        vpc::lock(&mut *tx, self.vpc_id).await?;
        let started = vm::transition(
            &mut *tx,
            self.vm_id,
            &[vm::STATE_STOPPED],
            vm::STATE_RUNNING,
        )
        .await?;
        if !started
            && !vm::get_by_id(&mut *tx, self.vm_id)
                .await?
                .is_some_and(|v| v.removed.is_none() && v.state == vm::STATE_RUNNING)
        {
            return Err(Error::invalid(format!(
                "Unable to start virtual machine {}: it is not Stopped",
                self.vm_uuid
            )));
        }
        vm::set_nics_state(&mut *tx, self.vm_id, vm::NIC_RESERVED).await?;
        Ok(started)
    }

    async fn push(
        &self,
        element: &RouterElement,
        state: &RouterState,
        generation: u64,
    ) -> ElementResult {
        tiers::send_dhcp(element, state, generation, &self.tiers, true).await
    }

    /// Stopped again, unless an earlier run had started it.
    async fn undo(&self, db: &Db, started: &bool) -> Result<(), Error> {
        if !*started {
            return Ok(());
        }
        revert_vm(
            db,
            self.vm_id,
            vm::STATE_RUNNING,
            vm::STATE_STOPPED,
            vm::NIC_ALLOCATED,
        )
        .await
    }
}
