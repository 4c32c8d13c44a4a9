//! `resetPasswordForVirtualMachine` (async): a Stopped VM of a
//! password-enabled template gets a new password, shown once in the job's
//! result; the router's password server hands it to the VM when it starts
//! again. CloudStack's checks, in its order and with its texts.

use serde_json::Value;
use uuid::Uuid;

use super::{ID, VM_FIELDS, job_vm, live_vm, password, sees_admin_fields, submission, vm_result};
use crate::error::Error;
use crate::server::Ctx;
use crate::server::command::{Args, AsyncCommand, Command, IdJob, Spec, Submission};
use crate::server::jobs::JobCtx;
use crate::server::registry::{ALL, fields};
use crate::store::vm;

/// `resetPasswordForVirtualMachine`.
pub struct ResetPasswordForVirtualMachine {
    id: Uuid,
}

impl Command for ResetPasswordForVirtualMachine {
    const NAME: &'static str = "resetPasswordForVirtualMachine";

    fn spec() -> Spec {
        Spec::new("Gives a stopped VM of a password-enabled template a new password, returned once")
            .roles(ALL)
            .param(ID)
            .returns("virtualmachine", fields(VM_FIELDS))
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ResetPasswordForVirtualMachine {
            id: args.need(&ID)?,
        })
    }
}

/// CloudStack's checks before a password reset: the template takes
/// passwords, and the VM is Stopped.
async fn check(app: &crate::server::App, v: &vm::Vm) -> Result<(), Error> {
    let enabled = vm::template_by_id(&app.db, v.template_id)
        .await?
        .is_some_and(|t| t.enable_password);
    if !enabled {
        return Err(Error::invalid(
            "Fail to reset password for the virtual machine, the template is not password enabled",
        ));
    }
    if v.state == vm::STATE_ERROR || v.state == vm::STATE_EXPUNGING {
        return Err(Error::invalid(format!(
            "Vm with id {} is not in the right state",
            v.uuid
        )));
    }
    if v.state != vm::STATE_STOPPED {
        return Err(Error::invalid(format!(
            "Vm {} ({}) should be stopped to do password reset",
            v.uuid, v.display_name
        )));
    }
    Ok(())
}

impl AsyncCommand for ResetPasswordForVirtualMachine {
    /// A second run makes another password, and its result shows the one
    /// the VM then has.
    const RERUN: bool = true;
    type Job = IdJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<IdJob>, Error> {
        let v = live_vm(ctx, self.id, ID.name()).await?;
        check(&ctx.app, &v).await?;
        submission(&ctx.app.db, &v, IdJob { id: v.id }).await
    }

    /// The password is made here, not at submission, so that it is never
    /// stored in clear in the job's request.
    async fn run(job: &JobCtx, payload: IdJob) -> Result<Value, Error> {
        let app = &job.app;
        // A start queued before this job has run: the VM must still be
        // Stopped.
        let v = job_vm(app, payload.id).await?;
        check(app, &v).await?;
        // The view first: if it cannot be read, the job fails with the old
        // password still in place, not a new one nobody was shown.
        let result = vm_result(&app.db, v.id, sees_admin_fields(job.caller.role)).await?;
        let clear = password::renew(app, v.id).await?;
        Ok(password::shown(result, &clear))
    }
}
