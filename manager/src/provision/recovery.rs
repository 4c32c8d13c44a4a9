//! What a manager does at start about the jobs it was running when it died
//! (SIGKILL, power loss): such a job is failed ([`crate::server::jobs`]), and
//! its failure must mean what a failure of the same job means when it ends
//! normally, or the objects it half-made keep running unseen.
//!
//! - `createVPC`: the VPC is destroyed, as the job does when the start
//!   fails (CloudStack destroys a VPC whose start failed): its router is
//!   removed through the driver, its rows go;
//! - `deployVirtualMachine`: the VM is removed through the driver and
//!   expunged, as the job does when the start fails; its VPC's router is
//!   marked for resync, so it forgets the VM's DHCP lease;
//! - every other job leaves objects the background loops converge: rows are
//!   the intent and routers behind them get their whole state again
//!   (`monitor::resync_once`), routers left Starting or Stopping are started
//!   again or stopped (`monitor::converge_stuck_once`).

use serde_json::Value;

use crate::error::Error;
use crate::orchestration::RouterDriver;
use crate::server::App;
use crate::store::{job, network, router, vm};

/// Undoes what an abandoned job did, when its kind needs it (see the module
/// documentation). Failures are logged: recovery goes on with the next job,
/// and what is left is converged by the background loops.
pub async fn undo_abandoned(app: &App, j: &job::Job) {
    let info: Value = serde_json::from_str(&j.cmd_info).unwrap_or_default();
    let Some(id) = info["id"].as_i64() else {
        return;
    };
    let undone = match j.cmd.as_str() {
        "createVPC" => undo_create_vpc(app, id).await,
        "deployVirtualMachine" => undo_deploy_vm(app, id).await,
        _ => return,
    };
    match undone {
        Ok(()) => tracing::warn!(job = %j.uuid, cmd = %j.cmd, id, "undid an abandoned job"),
        Err(e) => {
            tracing::error!(job = %j.uuid, cmd = %j.cmd, id, error = %e, "undoing an abandoned job failed")
        }
    }
}

async fn undo_create_vpc(app: &App, vpc_id: i64) -> Result<(), Error> {
    let _guard = app.network.lock_vpc(vpc_id).await;
    // Inactive first: if the destroy fails half-way the VPC garbage
    // collector finishes it, and the API shows a VPC that is going.
    super::vpc::destroy_vpc(&app.db, &app.network, vpc_id).await
}

async fn undo_deploy_vm(app: &App, vm_id: i64) -> Result<(), Error> {
    let db = &app.db;
    let Some(v) = vm::get_by_id(db, vm_id)
        .await?
        .filter(|v| v.removed.is_none())
    else {
        return Ok(());
    };
    let vpc_id = vpc_of_vm(app, vm_id).await?;
    let _guard = match vpc_id {
        Some(id) => Some(app.network.lock_vpc(id).await),
        None => None,
    };
    let view = super::state::vm_view(db, &v).await?;
    if let Err(e) = app.network.element.driver().destroy_vm(&view).await {
        // The row goes anyway: the sweeper removes a namespace nobody knows.
        tracing::warn!(vm = %v.instance_name, error = %e, "the driver could not remove an abandoned VM");
    }
    vm::expunge(db, vm_id).await?;
    if let Some(vpc_id) = vpc_id
        && let Some(r) = super::running_router(db, vpc_id).await?
    {
        super::resync_after_failure(db, r.id).await;
    }
    Ok(())
}

/// The VPC of a VM's first tier in a VPC.
async fn vpc_of_vm(app: &App, vm_id: i64) -> Result<Option<i64>, Error> {
    for n in router::nics_of(&app.db, router::NicOwner::Vm(vm_id)).await? {
        if let Some(vpc_id) = network::get_by_id(&app.db, n.network_id)
            .await?
            .and_then(|t| t.vpc_id)
        {
            return Ok(Some(vpc_id));
        }
    }
    Ok(None)
}
