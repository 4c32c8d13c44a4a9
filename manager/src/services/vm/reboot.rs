//! `rebootVirtualMachine`: the VM restarts in place through the driver; its
//! NICs, addresses and leases stay, so the router is not told.

use serde_json::Value;
use uuid::Uuid;

use super::{
    ID, VM_FIELDS, check_state, job_vm, live_vm, sees_admin_fields, submission, vm_result,
};
use crate::error::Error;
use crate::orchestration::RouterDriver;
use crate::provision;
use crate::server::Ctx;
use crate::server::command::{Args, AsyncCommand, Command, IdJob, Spec, Submission};
use crate::server::jobs::JobCtx;
use crate::server::registry::{ALL, fields};
use crate::store::vm;

/// `rebootVirtualMachine`.
pub struct RebootVirtualMachine {
    id: Uuid,
}

impl Command for RebootVirtualMachine {
    const NAME: &'static str = "rebootVirtualMachine";

    fn spec() -> Spec {
        Spec::new("Reboots a running VM")
            .roles(ALL)
            .param(ID)
            .returns("virtualmachine", fields(VM_FIELDS))
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(RebootVirtualMachine {
            id: args.need(&ID)?,
        })
    }
}

impl AsyncCommand for RebootVirtualMachine {
    /// A second reboot of a running VM changes nothing it keeps.
    const RERUN: bool = true;
    type Job = IdJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<IdJob>, Error> {
        let v = live_vm(ctx, self.id, ID.name()).await?;
        check_state(&v, &[vm::STATE_RUNNING], "reboot")?;
        submission(&ctx.app.db, &v, IdJob { id: v.id }).await
    }

    async fn run(job: &JobCtx, payload: IdJob) -> Result<Value, Error> {
        let v = job_vm(&job.app, payload.id).await?;
        check_state(&v, &[vm::STATE_RUNNING], "reboot")?;
        let view = provision::state::vm_view(&job.app.db, &v).await?;
        let driver = job.app.network.element.driver();
        let rebooted = match driver.stop_vm(&view).await {
            Ok(()) => driver.start_vm(&view).await,
            Err(e) => Err(e),
        };
        rebooted.map_err(|e| {
            Error::internal(format!("Unable to reboot virtual machine {}: {e}", v.uuid))
        })?;
        vm_result(&job.app.db, payload.id, sees_admin_fields(job.caller.role)).await
    }
}
