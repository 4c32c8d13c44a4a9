//! `migrateSystemVm` for a VPC's router: moves it to another host. The
//! router is stopped on its host agent, recorded on the new host and
//! started there from the database's state (same NICs and addresses).

use serde_json::{Value, json};
use uuid::Uuid;

use super::{locked_router, router_result};
use crate::error::Error;
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
            return Err(Error::invalid(format!(
                "VM is not Running, unable to migrate the vm {}",
                r.uuid
            )));
        }
        if r.host_id == Some(target.id) {
            return Err(Error::invalid(format!(
                "The router {} already runs on host {}",
                r.uuid, target.uuid
            )));
        }
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
        if r.host_id != Some(payload.host_id) {
            provision::vpc::stop_router(&app.db, &app.network, &r).await?;
            host::set_router_host(&app.db, r.id, Some(payload.host_id)).await?;
        }
        let moved = router::get_by_id(&app.db, r.id)
            .await?
            .ok_or_else(|| Error::invalid("The router was destroyed meanwhile"))?;
        if moved.state != router::STATE_RUNNING {
            provision::vpc::start_router(&app.db, &app.network, &moved).await?;
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
