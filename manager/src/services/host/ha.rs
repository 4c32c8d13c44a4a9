//! A lost host's router started on another host (CloudStack's HA work for a
//! router, event `ROUTER.HA`): the job the host monitor queues for each
//! router of a host it declared Down
//! ([`crate::provision::host_monitor`]). Under the VPC's lock, the planner
//! places the router on another Up and Enabled host of its zone and the
//! router is started there from the database's state: the same NICs, MACs
//! and addresses (the public ones too; its agent announces them by
//! gratuitous ARP when it applies them), its whole configuration under a
//! new generation. Safe to run again: a router no longer on the lost host
//! is left as it is. Likewise [`VmHa`] for a VM whose offering asks for
//! HA.

use serde_json::{Value, json};

use crate::error::Error;
use crate::provision;
use crate::server::command::InternalJob;
use crate::server::jobs::JobCtx;
use crate::services::host::planner::Placing;
use crate::store::{host, router, vm};

/// The job restarting a router of a lost host elsewhere.
pub struct RouterHa;

/// Its payload: the router and the host it was lost with.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RouterHaJob {
    pub id: i64,
    pub from_host: i64,
}

impl InternalJob for RouterHa {
    const NAME: &'static str = "haRestartRouter";
    const RERUN: bool = true;
    type Job = RouterHaJob;

    async fn run(job: &JobCtx, payload: RouterHaJob) -> Result<Value, Error> {
        let app = &job.app;
        let db = &app.db;
        let Some(r) = router::get_by_id(db, payload.id).await? else {
            return Ok(json!({ "success": true }));
        };
        let _lock = app.network.lock(db, r.vpc_id.unwrap_or_default()).await?;
        // Read again under the lock: the router may have moved or gone.
        let Some(r) = router::get_by_id(db, payload.id)
            .await?
            .filter(|r| r.removed.is_none() && r.state != router::STATE_DESTROYED)
        else {
            return Ok(json!({ "success": true }));
        };
        if r.host_id != Some(payload.from_host) {
            return moved(db, &r).await;
        }
        let target = provision::placement::choose(
            db,
            r.zone_id,
            Placing::Router { vpc: r.vpc_id },
            None,
            &format!("DomainRouter|{}", r.name),
        )
        .await?;
        let from = host::get_by_id(db, payload.from_host).await?;
        if from.is_some_and(|h| h.status == host::STATUS_UP && h.removed.is_none()) {
            // The host came back before this job ran: stop the router there
            // first (best effort; a failure leaves a stale copy that the
            // host's next return check or sweeper removes).
            if let Err(e) = provision::vpc::stop_router(db, &app.network, &r).await {
                tracing::warn!(router = %r.name, error = %e, "stopping a router on its returned host failed");
            }
        }
        let mut tx = db.begin().await?;
        router::set_state(&mut tx, r.id, router::STATE_STOPPED).await?;
        host::set_router_host(&mut tx, r.id, target).await?;
        tx.commit().await?;
        let placed = router::get_by_id(db, r.id)
            .await?
            .ok_or_else(|| Error::invalid("The router was destroyed meanwhile"))?;
        tracing::warn!(router = %r.name, from = payload.from_host, to = ?target, "starting a lost host's router on another host");
        provision::vpc::start_router(db, &app.network, &placed).await?;
        moved(db, &placed).await
    }
}

/// The job's result: the router, its state and host now.
async fn moved(db: &crate::store::Db, r: &router::Router) -> Result<Value, Error> {
    let now = router::get_by_id(db, r.id)
        .await?
        .unwrap_or_else(|| r.clone());
    let on = match now.host_id {
        Some(id) => host::get_by_id(db, id).await?,
        None => None,
    };
    Ok(json!({ "router": {
        "id": now.uuid,
        "name": now.name,
        "state": now.state.to_string(),
        "hostid": on.as_ref().map(|h| h.uuid),
        "hostname": on.as_ref().map(|h| h.name.clone()),
    }}))
}

/// The job starting an HA VM of a lost host on another host (its offering
/// has `offerha`): the host monitor left it Stopped with no host; it is
/// placed by the planner and started as `startVirtualMachine` starts it.
pub struct VmHa;

/// Its payload: the VM.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct VmHaJob {
    pub id: i64,
}

impl InternalJob for VmHa {
    const NAME: &'static str = "haStartVirtualMachine";
    const RERUN: bool = true;
    type Job = VmHaJob;

    async fn run(job: &JobCtx, payload: VmHaJob) -> Result<Value, Error> {
        let app = &job.app;
        let db = &app.db;
        let Some(v) = vm::get_by_id(db, payload.id)
            .await?
            .filter(|v| v.removed.is_none())
        else {
            return Ok(json!({ "success": true }));
        };
        // Started (or placed) meanwhile, by this job before or by a user.
        if v.state != vm::STATE_STOPPED {
            return vm_placed(db, &v).await;
        }
        if v.host_id.is_none() {
            provision::placement::place_vm(db, &v, None).await?;
        }
        tracing::warn!(vm = %v.instance_name, "starting a lost host's HA VM on another host");
        crate::services::vm::start_stopped_vm(app, v.id).await?;
        let v = vm::get_by_id(db, v.id).await?.unwrap_or(v);
        vm_placed(db, &v).await
    }
}

async fn vm_placed(db: &crate::store::Db, v: &vm::Vm) -> Result<Value, Error> {
    let on = match v.host_id {
        Some(id) => host::get_by_id(db, id).await?,
        None => None,
    };
    Ok(json!({ "virtualmachine": {
        "id": v.uuid,
        "name": v.name,
        "state": v.state.to_string(),
        "hostid": on.as_ref().map(|h| h.uuid),
        "hostname": on.as_ref().map(|h| h.name.clone()),
    }}))
}
