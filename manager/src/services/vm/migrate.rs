//! `migrateVirtualMachine` (root admins, as CloudStack's): moves a running
//! VM to another host. Here the move is cold ([`provision::relocate::
//! move_vm`]): a namespace VM has no memory to carry live, so it restarts
//! on the target with the same NICs (MACs) and takes the same addresses
//! from the router. Without `hostid` the planner picks a host when
//! `autoselect` is true; the checks and texts are CloudStack's.

use serde_json::Value;
use uuid::Uuid;

use super::{VM_FIELDS, job_vm, live_vm, submission, tiers_of_vm, vm_result};
use crate::error::Error;
use crate::orchestration::RouterDriver;
use crate::provision;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Flag, Id, Spec, Submission};
use crate::server::jobs::JobCtx;
use crate::server::registry::{ROOT, fields};
use crate::services::host::planner::Placing;
use crate::services::vpc::{check_destination, not_running};
use crate::store::{host, vm};

const VM: Arg<Id> = Arg::req("virtualmachineid", "the ID of the virtual machine");
const HOST: Arg<Id> = Arg::opt("hostid", "Destination Host ID to migrate VM to.");
const STORAGE: Arg<Id> = Arg::opt(
    "storageid",
    "Destination storage pool ID (refused: VMs here have no volumes to move)",
);
const AUTOSELECT: Arg<Flag> = Arg::opt(
    "autoselect",
    "Automatically select a destination host if hostid is not given. false by default",
);

/// `migrateVirtualMachine`.
pub struct MigrateVirtualMachine {
    vm: Uuid,
    host: Option<Uuid>,
    storage: Option<Uuid>,
    autoselect: bool,
}

/// The job: the VM and the host it moves to.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MigrateVmJob {
    pub id: i64,
    pub host_id: i64,
}

impl Command for MigrateVirtualMachine {
    const NAME: &'static str = "migrateVirtualMachine";

    fn spec() -> Spec {
        Spec::new(
            "Attempts Migration of a VM to a different host (here a cold move: the VM restarts \
             on the host with the same MACs and addresses)",
        )
        .roles(ROOT)
        .param(VM)
        .param(HOST)
        .param(STORAGE)
        .param(AUTOSELECT)
        .returns("virtualmachine", fields(VM_FIELDS))
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(MigrateVirtualMachine {
            vm: args.need(&VM)?,
            host: args.get(&HOST)?,
            storage: args.get(&STORAGE)?,
            autoselect: args.get(&AUTOSELECT)?.unwrap_or(false),
        })
    }
}

impl AsyncCommand for MigrateVirtualMachine {
    /// A VM an earlier run moved is started on its new host again; one
    /// still on its old host is moved again (its destroy there is
    /// idempotent).
    const RERUN: bool = true;
    type Job = MigrateVmJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<MigrateVmJob>, Error> {
        if self.storage.is_some() {
            return Err(Error::invalid(
                "VMs here have no volumes on storage pools to migrate: give hostid",
            ));
        }
        if self.host.is_none() && !self.autoselect {
            return Err(Error::invalid(
                "Either hostId or storageId must be specified",
            ));
        }
        let v = live_vm(ctx, self.vm, VM.name()).await?;
        if v.state != vm::STATE_RUNNING {
            return Err(not_running());
        }
        let label = format!("User|{}", v.instance_name);
        let target = match self.host {
            Some(h) => {
                let target = crate::services::host::host_by_id(ctx, h, HOST.name()).await?;
                check_destination(v.host_id, &target)?;
                if target.data_center_id != v.zone_id {
                    return Err(Error::invalid(format!(
                        "Cannot migrate VM, destination host {} is not in the VM's zone",
                        target.uuid
                    )));
                }
                target.id
            }
            None => auto_target(&ctx.app.db, &v, &label).await?,
        };
        submission(
            &ctx.app.db,
            &v,
            MigrateVmJob {
                id: v.id,
                host_id: target,
            },
        )
        .await
    }

    async fn run(job: &JobCtx, payload: MigrateVmJob) -> Result<Value, Error> {
        let app = &job.app;
        let v = job_vm(app, payload.id).await?;
        let (_, vpc_id) = tiers_of_vm(&app.db, v.id).await?;
        let _lock = match vpc_id {
            Some(id) => Some(app.network.lock(&app.db, id).await?),
            None => None,
        };
        let v = job_vm(app, payload.id).await?;
        if v.state != vm::STATE_RUNNING {
            return Err(not_running());
        }
        if v.host_id == Some(payload.host_id) {
            // An earlier run of this job moved it: it is started there
            // again (the driver's start is idempotent) in case that run was
            // cut off before.
            let view = provision::state::vm_view(&app.db, &v).await?;
            app.network
                .element
                .driver()
                .start_vm(&view)
                .await
                .map_err(|e| {
                    Error::internal(format!("Unable to migrate the VM {}: {e}", v.uuid))
                })?;
            return vm_result(&app.db, v.id, true).await;
        }
        let target = host::get_by_id(&app.db, payload.host_id)
            .await?
            .filter(|h| h.removed.is_none())
            .ok_or_else(|| Error::invalid("The destination host was removed meanwhile"))?;
        check_destination(v.host_id, &target)?;
        provision::relocate::move_vm(&app.db, &app.network, &v, target.id).await?;
        vm_result(&app.db, v.id, true).await
    }
}

/// The planner's host for a VM leaving its host (any Up and Enabled host
/// of its zone but its own); CloudStack's text when there is none.
async fn auto_target(db: &crate::store::Db, v: &vm::Vm, label: &str) -> Result<i64, Error> {
    let placed = provision::placement::choose_except(db, v.zone_id, Placing::Vm, v.host_id, label)
        .await
        .map_err(|_| Error::internal("Unable to find a server to migrate the vm to"))?;
    placed.ok_or_else(|| Error::internal("Unable to find a server to migrate the vm to"))
}
