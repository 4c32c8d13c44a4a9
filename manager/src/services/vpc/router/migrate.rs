//! `migrateSystemVm` for a VPC's router: moves it to another host,
//! make-before-break ([`provision::relocate::move_router`]): the router is
//! made ready on the new host from the database's state (same NICs, MACs
//! and addresses) while the old one serves, then takes over.

use serde_json::{Value, json};
use uuid::Uuid;

use super::{locked_router, router_result};
use crate::error::Error;
use crate::orchestration::RouterDriver;
use crate::provision;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Id, Spec, Submission};
use crate::server::jobs::{JobCtx, vpc_sync};
use crate::server::registry::{FieldSpec, ROOT, field};
use crate::services::host::planner::Placing;
use crate::store::{host, router};

const VM: Arg<Id> = Arg::req(
    "virtualmachineid",
    "the ID of the virtual machine (a router)",
);
const HOST: Arg<Id> = Arg::opt("hostid", "destination Host ID to migrate VM to");
const STORAGE: Arg<Id> = Arg::opt(
    "storageid",
    "Destination storage pool ID (refused: routers have no volumes here)",
);

const SYSTEMVM_FIELDS: &[FieldSpec] = &[
    field("id", "string", "the ID of the system VM"),
    field("name", "string", "the name of the system VM"),
    field(
        "systemvmtype",
        "string",
        "the system VM type (domainrouter)",
    ),
    field("hostid", "string", "the host ID for the system VM"),
    field("hostname", "string", "the hostname for the system VM"),
    field("state", "string", "the state of the system VM"),
];

/// `migrateSystemVm`.
pub struct MigrateSystemVm {
    vm: Uuid,
    host: Option<Uuid>,
    storage: Option<Uuid>,
}

/// The job: the router and the host it moves to.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MigrateJob {
    pub id: i64,
    pub host_id: i64,
}

impl Command for MigrateSystemVm {
    const NAME: &'static str = "migrateSystemVm";

    fn spec() -> Spec {
        Spec::new("Attempts Migration of a system virtual machine to the host specified.")
            .roles(ROOT)
            .param(VM)
            .param(HOST)
            .param(STORAGE)
            .returns("systemvm", SYSTEMVM_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(MigrateSystemVm {
            vm: args.need(&VM)?,
            host: args.get(&HOST)?,
            storage: args.get(&STORAGE)?,
        })
    }
}

impl AsyncCommand for MigrateSystemVm {
    /// A router an earlier run switched is activated on its new host again;
    /// one still recorded on its old host is moved again (its standby start
    /// and the old copy's destroy are idempotent).
    const RERUN: bool = true;
    type Job = MigrateJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<MigrateJob>, Error> {
        let host_uuid = match (self.host, self.storage) {
            (None, None) => {
                return Err(Error::invalid(
                    "Either hostId or storageId must be specified",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "Only one of hostId and storageId can be specified",
                ));
            }
            (None, Some(_)) => {
                return Err(Error::invalid(
                    "Routers have no volumes to migrate: give hostid",
                ));
            }
            (Some(h), None) => h,
        };
        let r = router::get_by_uuid(&ctx.app.db, self.vm)
            .await?
            .filter(|r| r.removed.is_none())
            .ok_or_else(|| Error::invalid_id(VM.name(), self.vm))?;
        let target = crate::services::host::host_by_id(ctx, host_uuid, HOST.name()).await?;
        if r.state != router::STATE_RUNNING {
            return Err(not_running());
        }
        check_destination(r.host_id, &target)?;
        // The planner checks the target as for a new router: Up, Enabled,
        // in the router's zone.
        provision::placement::choose(
            &ctx.app.db,
            r.zone_id,
            Placing::Router { vpc: r.vpc_id },
            Some(target.id),
            &format!("DomainRouter|{}", r.name),
        )
        .await?;
        Ok(Submission::new(
            MigrateJob {
                id: r.id,
                host_id: target.id,
            },
            ("DomainRouter", r.uuid),
            vpc_sync(r.vpc_id.unwrap_or_default()),
        ))
    }

    async fn run(job: &JobCtx, payload: MigrateJob) -> Result<Value, Error> {
        let app = &job.app;
        let (r, _lock) = locked_router(app, payload.id).await?;
        if r.state != router::STATE_RUNNING {
            return Err(not_running());
        }
        if r.host_id == Some(payload.host_id) {
            // An earlier run of this job switched it: its ports go onto
            // their segments again (idempotent) in case that run was cut
            // off before.
            let view = provision::vpc::router_view(&app.db, &r).await?;
            app.network
                .element
                .driver()
                .activate_router(&view)
                .await
                .map_err(|e| {
                    Error::internal(format!("Unable to migrate the router {}: {e}", r.uuid))
                })?;
        } else {
            let target = host::get_by_id(&app.db, payload.host_id)
                .await?
                .filter(|h| h.removed.is_none())
                .ok_or_else(|| Error::invalid("The destination host was removed meanwhile"))?;
            check_destination(r.host_id, &target)?;
            provision::relocate::move_router(&app.db, &app.network, &r, target.id).await?;
        }
        let view = router_result(app, r.id).await?["router"].clone();
        Ok(json!({ "systemvm": {
            "id": view["id"],
            "name": view["name"],
            "systemvmtype": "domainrouter",
            "hostid": view["hostid"],
            "hostname": view["hostname"],
            "state": view["state"],
            "zoneid": view["zoneid"],
            "zonename": view["zonename"],
        }}))
    }
}

/// CloudStack's refusal of a VM that does not run.
pub(crate) fn not_running() -> Error {
    Error::invalid("VM is not Running, unable to migrate the vm with specified id")
}

/// CloudStack's checks of a migration's destination host: another host
/// than the VM's, Up and Enabled.
pub(crate) fn check_destination(current: Option<i64>, target: &host::Host) -> Result<(), Error> {
    if current == Some(target.id) {
        return Err(Error::invalid(
            "Cannot migrate VM, VM is already present on this host, please specify valid \
             destination host to migrate the VM",
        ));
    }
    if target.status != host::STATUS_UP || target.resource_state != host::RESOURCE_ENABLED {
        return Err(Error::invalid(format!(
            "Cannot migrate VM, destination host is not in correct state, has status: {}, \
             state: {}",
            target.status, target.resource_state
        )));
    }
    Ok(())
}
