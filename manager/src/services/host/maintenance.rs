//! `prepareHostForMaintenance` and `cancelHostMaintenance`: a host in
//! maintenance takes no new routers or VMs (the planner places only on
//! Enabled hosts). Preparing moves the host to PrepareForMaintenance, then
//! moves everything off it, as CloudStack's moves a host's VMs away by
//! live migration: each running router make-before-break
//! ([`relocate::move_router`], traffic stops for the moment of the
//! switch), each running VM cold ([`relocate::move_vm`]: a namespace VM
//! has no memory to carry, so it restarts on the other host with the same
//! MACs and addresses), each stopped one recorded on the other host for
//! its next start; the planner picks every target. Then the host is in
//! Maintenance; if anything could not move it is in ErrorInMaintenance, as
//! CloudStack's is when migrations fail, and preparing again retries.
//! Cancelling makes any of the maintenance states Enabled again; nothing
//! moves back.

use serde_json::{Value, json};
use uuid::Uuid;

use super::planner::Placing;
use super::views::HOST_FIELDS;
use super::{host_by_id, host_views};
use crate::error::Error;
use crate::provision::{placement, relocate};
use crate::server::command::{Arg, Args, AsyncCommand, Command, Id, IdJob, Spec, Submission};
use crate::server::jobs::JobCtx;
use crate::server::registry::ROOT;
use crate::server::{App, Ctx};
use crate::store::{Db, host, router, vm};

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
    /// A host left PrepareForMaintenance by an earlier run is evacuated
    /// again (moves of routers and VMs already moved do nothing); one in
    /// Maintenance is done.
    const RERUN: bool = true;
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
        // PrepareForMaintenance too: an earlier run of this job was cut off
        // while moving the host's routers and VMs; this one goes on.
        let may_prepare = [MAY_PREPARE, &[host::RESOURCE_PREPARE_FOR_MAINTENANCE]].concat();
        if !host::transit_resource_state(
            db,
            payload.id,
            &may_prepare,
            host::RESOURCE_PREPARE_FOR_MAINTENANCE,
        )
        .await?
        {
            if resource_state(db, payload.id).await?.as_deref() == Some(host::RESOURCE_MAINTENANCE)
            {
                // An earlier run of this job finished.
                return host_result(db, payload.id).await;
            }
            return Err(Error::internal(format!(
                "Unable to prepare for maintenance host {}",
                payload.id
            )));
        }
        let failures = evacuate(&job.app, payload.id).await?;
        let (routers, vms) = host::loads(db, &[payload.id])
            .await?
            .get(&payload.id)
            .copied()
            .unwrap_or_default();
        let to = if failures.is_empty() && routers + vms == 0 {
            host::RESOURCE_MAINTENANCE
        } else {
            tracing::warn!(
                host = payload.id,
                routers,
                vms,
                failures = ?failures,
                "routers or VMs could not be moved off the host: ErrorInMaintenance"
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

/// Moves every router and VM off host `host_id`, each to the planner's
/// choice among the zone's other Up and Enabled hosts, under its VPC's
/// lock. Returns what could not move, one text each.
async fn evacuate(app: &App, host_id: i64) -> Result<Vec<String>, Error> {
    let db = &app.db;
    let (routers, vms) = relocate::residents(db, host_id).await?;
    let mut failures = Vec::new();
    for r in routers {
        let what = Placing::Router { vpc: r.vpc_id };
        let label = format!("DomainRouter|{}", r.name);
        let moved = async {
            let target = target(db, r.zone_id, what, host_id, &label).await?;
            let _lock = match r.vpc_id {
                Some(vpc) => Some(app.network.lock(db, vpc).await?),
                None => None,
            };
            let Some(now) = router::get_by_id(db, r.id)
                .await?
                .filter(|n| n.removed.is_none() && n.host_id == Some(host_id))
            else {
                return Ok(());
            };
            if now.state == router::STATE_RUNNING {
                relocate::move_router(db, &app.network, &now, target).await
            } else if now.state == router::STATE_STOPPED {
                // It starts on the other host next time.
                host::set_router_host(db, now.id, Some(target)).await?;
                Ok(())
            } else {
                Err(Error::invalid(format!("it is {}", now.state.as_str())))
            }
        }
        .await;
        if let Err(e) = moved {
            failures.push(format!("router {}: {}", r.name, e.text()));
        }
    }
    for v in vms {
        let label = format!("User|{}", v.instance_name);
        let moved = async {
            let target = target(db, v.zone_id, Placing::Vm, host_id, &label).await?;
            let vpc = crate::services::vm::vpc_of_vm(db, v.id).await?;
            let _lock = match vpc {
                Some(vpc) => Some(app.network.lock(db, vpc).await?),
                None => None,
            };
            let Some(now) = vm::get_by_id(db, v.id)
                .await?
                .filter(|n| n.removed.is_none() && n.host_id == Some(host_id))
            else {
                return Ok(());
            };
            if now.state == vm::STATE_RUNNING {
                relocate::move_vm(db, &app.network, &now, target).await
            } else if now.state == vm::STATE_STOPPED {
                host::set_vm_host(db, now.id, Some(target)).await?;
                Ok(())
            } else {
                Err(Error::invalid(format!("it is {}", now.state.as_str())))
            }
        }
        .await;
        if let Err(e) = moved {
            failures.push(format!("VM {}: {}", v.instance_name, e.text()));
        }
    }
    Ok(failures)
}

/// The planner's host for a router or VM leaving `host_id`.
async fn target(
    db: &Db,
    zone_id: i64,
    what: Placing,
    host_id: i64,
    label: &str,
) -> Result<i64, Error> {
    placement::choose_except(db, zone_id, what, Some(host_id), label)
        .await?
        .ok_or_else(|| Error::invalid("no other host in its zone"))
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

/// The resource state of live host `id`.
async fn resource_state(db: &Db, id: i64) -> Result<Option<String>, Error> {
    Ok(host::get_by_id(db, id)
        .await?
        .filter(|h| h.removed.is_none())
        .map(|h| h.resource_state))
}

/// The maintenance states (CloudStack's `ResourceState.isMaintenanceState`).
const IN_MAINTENANCE: &[&str] = &[
    host::RESOURCE_PREPARE_FOR_MAINTENANCE,
    host::RESOURCE_ERROR_IN_MAINTENANCE,
    host::RESOURCE_MAINTENANCE,
];

impl AsyncCommand for CancelHostMaintenance {
    /// An Enabled host is done.
    const RERUN: bool = true;
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
            && resource_state(db, payload.id).await?.as_deref() != Some(host::RESOURCE_ENABLED)
        {
            return Err(Error::internal("Internal error cancelling maintenance."));
        }
        host_result(db, payload.id).await
    }
}
