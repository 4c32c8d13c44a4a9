//! `resetSSHKeyForVirtualMachine` (async): a Stopped VM gets the public
//! keys of other key pairs of its owner; it reads them from its router when
//! it starts again (only Running VMs are on the router, so nothing is
//! pushed now). CloudStack's checks, in its order and with its texts.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{ID, VM_FIELDS, job_vm, live_vm, sees_admin_fields, submission, vm_result};
use crate::error::Error;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Spec, Submission, Text, Texts};
use crate::server::jobs::JobCtx;
use crate::server::registry::{ALL, fields};
use crate::services::owner::OwnerArgs;
use crate::services::userdata;
use crate::store::{vm, vmdata};

const KEY_PAIR: Arg<Text> = Arg::opt("keypair", "the SSH key pair whose key the VM gets");
const KEY_PAIRS: Arg<Texts> = Arg::opt(
    "keypairs",
    "the SSH key pairs whose keys the VM gets (instead of keypair)",
);

/// `resetSSHKeyForVirtualMachine`.
pub struct ResetSshKeyForVirtualMachine {
    id: Uuid,
    names: Vec<String>,
    owner: OwnerArgs,
}

/// The job: the VM and the keys it gets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResetSshKeyJob {
    pub id: i64,
    pub public_keys: String,
    pub keypair_names: String,
}

impl Command for ResetSshKeyForVirtualMachine {
    const NAME: &'static str = "resetSSHKeyForVirtualMachine";

    fn spec() -> Spec {
        Spec::new("Gives a stopped VM the public keys of other SSH key pairs")
            .roles(ALL)
            .param(ID)
            .param(KEY_PAIR)
            .param(KEY_PAIRS)
            .params(OwnerArgs::specs())
            .returns("virtualmachine", fields(VM_FIELDS))
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        let names = match args.get(&KEY_PAIRS)? {
            Some(names) => names,
            None => args.text(&KEY_PAIR)?.into_iter().collect(),
        };
        Ok(ResetSshKeyForVirtualMachine {
            id: args.need(&ID)?,
            names,
            owner: OwnerArgs::parse(args)?,
        })
    }
}

/// CloudStack's state checks before an SSH key reset.
fn check_stopped(v: &vm::Vm) -> Result<(), Error> {
    if v.state == vm::STATE_ERROR || v.state == vm::STATE_EXPUNGING {
        return Err(Error::invalid(
            "Vm with specified id is not in the right state",
        ));
    }
    if v.state != vm::STATE_STOPPED {
        return Err(Error::invalid(format!(
            "Vm {} ({}) should be stopped to do SSH Key reset",
            v.uuid, v.display_name
        )));
    }
    Ok(())
}

impl AsyncCommand for ResetSshKeyForVirtualMachine {
    /// It writes the same keys again.
    const RERUN: bool = true;
    type Job = ResetSshKeyJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<ResetSshKeyJob>, Error> {
        let owner = self.owner.resolve(ctx).await?;
        let v = live_vm(ctx, self.id, ID.name()).await?;
        check_stopped(&v)?;
        if self.names.is_empty() {
            return Err(Error::invalid("'keypair' or 'keyparis' must be specified"));
        }
        let mut tx = ctx.app.db.begin().await?;
        let (public_keys, keypair_names) =
            userdata::key_pairs(&mut tx, owner.account_id, &self.names).await?;
        tx.commit().await?;
        submission(
            &ctx.app.db,
            &v,
            ResetSshKeyJob {
                id: v.id,
                public_keys,
                keypair_names,
            },
        )
        .await
    }

    async fn run(job: &JobCtx, payload: ResetSshKeyJob) -> Result<Value, Error> {
        let app = &job.app;
        // Jobs of the VM's VPC run one at a time: a start queued before this
        // one has run; the VM must still be Stopped.
        let v = job_vm(app, payload.id).await?;
        check_stopped(&v)?;
        let mut row = vmdata::get(&app.db, v.id).await?;
        row.public_keys = payload.public_keys;
        row.keypair_names = payload.keypair_names;
        vmdata::set(&app.db, &row).await?;
        vm_result(&app.db, v.id, sees_admin_fields(job.caller.role)).await
    }
}
