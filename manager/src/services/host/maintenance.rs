//! `prepareHostForMaintenance` and `cancelHostMaintenance`: a host in
//! maintenance takes no new routers or VMs. Preparing moves the host to
//! PrepareForMaintenance, then to Maintenance once nothing runs there; a
//! host that still runs routers or VMs (they are not moved off yet) ends in
//! ErrorInMaintenance, as CloudStack's does when migrations fail.
//! Cancelling makes any of the maintenance states Enabled again.

use serde_json::{Value, json};
use uuid::Uuid;

use super::views::HOST_FIELDS;
use super::{host_by_id, host_views};
use crate::error::Error;
use crate::server::Ctx;
use crate::server::command::{Arg, Args, AsyncCommand, Command, Id, IdJob, Spec, Submission};
use crate::server::jobs::JobCtx;
use crate::server::registry::ROOT;
use crate::store::{Db, host};

const ID: Arg<Id> = Arg::req("id", "the host ID");

/// The states CloudStack's `ResourceState.canAttemptMaintenance` allows.
const MAY_PREPARE: &[&str] = &[
    host::RESOURCE_ENABLED,
    host::RESOURCE_DISABLED,
    host::RESOURCE_ERROR_IN_MAINTENANCE,
];

/// `prepareHostForMaintenance`.
pub struct PrepareHostForMaintenance {
    id: Uuid,
}

impl Command for PrepareHostForMaintenance {
    const NAME: &'static str = "prepareHostForMaintenance";

    fn spec() -> Spec {
        Spec::new("Prepares a host for maintenance.")
            .roles(ROOT)
            .param(ID)
            .returns("host", HOST_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(PrepareHostForMaintenance {
            id: args.need(&ID)?,
        })
    }
}

fn submission(h: &host::Host) -> Submission<IdJob> {
    Submission::new(
        IdJob { id: h.id },
        ("Host", h.uuid),
        format!("host:{}", h.id),
    )
}

/// `{"host": {...}}` of host `id` as it is now.
async fn host_result(db: &Db, id: i64) -> Result<Value, Error> {
    let h = host::get_by_id(db, id)
        .await?
        .ok_or_else(|| Error::internal("host vanished"))?;
    let mut views = host_views(db, std::slice::from_ref(&h)).await?;
    Ok(json!({ "host": views.remove(0) }))
}

impl AsyncCommand for PrepareHostForMaintenance {
    type Job = IdJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<IdJob>, Error> {
        let h = host_by_id(ctx, self.id, ID.name()).await?;
        if !MAY_PREPARE.contains(&h.resource_state.as_str()) {
            return Err(Error::internal(format!(
                "Host is already in state {}. Cannot recall for maintenance until resolved.",
                h.resource_state
            )));
        }
        Ok(submission(&h))
    }

    async fn run(job: &JobCtx, payload: IdJob) -> Result<Value, Error> {
        let db = &job.app.db;
        if !host::transit_resource_state(
            db,
            payload.id,
            MAY_PREPARE,
            host::RESOURCE_PREPARE_FOR_MAINTENANCE,
        )
        .await?
        {
            return Err(Error::internal(format!(
                "Unable to prepare for maintenance host {}",
                payload.id
            )));
        }
        let (routers, vms) = host::loads(db, &[payload.id])
            .await?
            .get(&payload.id)
            .copied()
            .unwrap_or_default();
        let to = if routers + vms == 0 {
            host::RESOURCE_MAINTENANCE
        } else {
            tracing::warn!(
                host = payload.id,
                routers,
                vms,
                "the host still runs routers or VMs, which are not moved off yet: ErrorInMaintenance"
            );
            host::RESOURCE_ERROR_IN_MAINTENANCE
        };
        host::transit_resource_state(
            db,
            payload.id,
            &[host::RESOURCE_PREPARE_FOR_MAINTENANCE],
            to,
        )
        .await?;
        host_result(db, payload.id).await
    }
}

/// `cancelHostMaintenance`.
pub struct CancelHostMaintenance {
    id: Uuid,
}

impl Command for CancelHostMaintenance {
    const NAME: &'static str = "cancelHostMaintenance";

    fn spec() -> Spec {
        Spec::new("Cancels host maintenance.")
            .roles(ROOT)
            .param(ID)
            .returns("host", HOST_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(CancelHostMaintenance {
            id: args.need(&ID)?,
        })
    }
}

/// The maintenance states (CloudStack's `ResourceState.isMaintenanceState`).
const IN_MAINTENANCE: &[&str] = &[
    host::RESOURCE_PREPARE_FOR_MAINTENANCE,
    host::RESOURCE_ERROR_IN_MAINTENANCE,
    host::RESOURCE_MAINTENANCE,
];

impl AsyncCommand for CancelHostMaintenance {
    type Job = IdJob;

    async fn submit(self, ctx: &Ctx) -> Result<Submission<IdJob>, Error> {
        let h = host_by_id(ctx, self.id, ID.name()).await?;
        if !host::is_maintenance_state(&h.resource_state) {
            return Err(Error::internal(format!(
                "Cannot perform cancelMaintenance when resource state is {}, hostId = {}",
                h.resource_state, h.uuid
            )));
        }
        Ok(submission(&h))
    }

    async fn run(job: &JobCtx, payload: IdJob) -> Result<Value, Error> {
        let db = &job.app.db;
        if !host::transit_resource_state(db, payload.id, IN_MAINTENANCE, host::RESOURCE_ENABLED)
            .await?
        {
            return Err(Error::internal("Internal error cancelling maintenance."));
        }
        host_result(db, payload.id).await
    }
}
