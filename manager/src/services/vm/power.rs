//! Starting, stopping, rebooting and destroying a VM. Starting implements
//! the VM's tiers that are not yet (their first VM) and pushes each tier's
//! whole DHCP list with the VM in it (the element's `prepare`); stopping
//! pushes the lists without it (the element's `release`) while the VM keeps
//! its addresses; expunging frees them.

use serde_json::json;

use super::{nics_of, sees_admin_fields, sync_object, vm_param, vm_result};
use crate::error::Error;
use crate::orchestration::RouterDriver;
use crate::provision::{self, tier as tiers};
use crate::server::jobs::JobBody;
use crate::server::registry::Handler;
use crate::server::{App, Reply, Role};
use crate::services::ip::common;
use crate::store::{Page, config, network, rule, vlan, vm, vpc};
use crate::{handler, job_body};

pub(super) const START: Handler = start_vm;
pub(super) const STOP: Handler = stop_vm;
pub(super) const REBOOT: Handler = reboot_vm;
pub(super) const DESTROY: Handler = destroy_vm;
pub(super) const START_JOB: JobBody = start_vm_job;
pub(super) const STOP_JOB: JobBody = stop_vm_job;
pub(super) const REBOOT_JOB: JobBody = reboot_vm_job;
pub(super) const DESTROY_JOB: JobBody = destroy_vm_job;

async fn live_vm(app: &App, id: i64) -> Result<vm::Vm, Error> {
    vm::get_by_id(&app.db, id)
        .await?
        .filter(|v| v.removed.is_none())
        .ok_or_else(|| Error::invalid("The virtual machine was expunged meanwhile"))
}

/// The VM's tiers (in NIC order) with its NICs, and their VPC.
async fn tiers_of_vm(
    app: &App,
    vm_id: i64,
) -> Result<
    (
        Vec<(network::Network, crate::store::router::Nic)>,
        Option<i64>,
    ),
    Error,
> {
    let mut out = Vec::new();
    for nic in nics_of(&app.db, vm_id).await? {
        let t = network::get_by_id(&app.db, nic.network_id)
            .await?
            .ok_or_else(|| Error::internal("a VM NIC on a network that is gone"))?;
        out.push((t, nic));
    }
    let vpc_id = out.iter().find_map(|(t, _)| t.vpc_id);
    Ok((out, vpc_id))
}

fn tier_uuids(tiers: &[(network::Network, crate::store::router::Nic)]) -> Vec<uuid::Uuid> {
    tiers
        .iter()
        .filter_map(|(t, _)| uuid::Uuid::parse_str(&t.uuid).ok())
        .collect()
}

/// Starts a Stopped VM: implements its tiers that are not yet, then marks
/// it Running with its NICs in use and a new generation, and pushes its
/// tiers' DHCP lists. When the push fails the VM is Stopped again.
pub(super) async fn start(app: &App, vm_id: i64) -> Result<(), Error> {
    let db = &app.db;
    let v = live_vm(app, vm_id).await?;
    let (tiers_of, vpc_id) = tiers_of_vm(app, v.id).await?;
    let Some(vpc_id) = vpc_id else {
        vm::transition(db, v.id, &[vm::STATE_STOPPED], vm::STATE_RUNNING).await?;
        return Ok(());
    };
    let _guard = app.network.lock_vpc(vpc_id).await;
    for (t, _) in &tiers_of {
        if t.state != network::STATE_IMPLEMENTED {
            tiers::implement_tier(app, t.id).await?;
        }
    }
    let mut tx = db.begin().await?;
    vpc::lock(&mut tx, vpc_id).await?;
    if !vm::transition(&mut tx, v.id, &[vm::STATE_STOPPED], vm::STATE_RUNNING).await? {
        return Err(Error::invalid(format!(
            "Unable to start virtual machine {}: it is not Stopped",
            v.uuid
        )));
    }
    vm::set_nics_state(&mut tx, v.id, vm::NIC_RESERVED).await?;
    let generation = provision::bump(&mut tx, vpc_id).await?;
    tx.commit().await?;
    if let Err(e) = tiers::push_dhcp(app, vpc_id, generation, tier_uuids(&tiers_of), true).await {
        let mut tx = db.begin().await?;
        vm::transition(&mut tx, v.id, &[vm::STATE_RUNNING], vm::STATE_STOPPED).await?;
        vm::set_nics_state(&mut tx, v.id, vm::NIC_ALLOCATED).await?;
        tx.commit().await?;
        return Err(e);
    }
    drop(_guard);
    // The router serves the VM's lease; now the VM itself runs and takes it.
    let view = provision::state::vm_view(db, &v).await?;
    if let Err(e) = app.network.element.driver().start_vm(&view).await {
        if let Err(undo) = stop(app, vm_id, true).await {
            tracing::error!(vm = %v.uuid, error = %undo, "stopping a VM that failed to start");
        }
        return Err(Error::internal(format!(
            "Unable to start virtual machine {}: {e}",
            v.uuid
        )));
    }
    Ok(())
}

/// Stops a Running VM: its NICs are released (the guru keeps their
/// addresses for the VM), it is Stopped with a new generation, and its
/// tiers' DHCP lists go to the router without it. When the push fails the
/// VM runs again, unless `forced`.
pub(super) async fn stop(app: &App, vm_id: i64, forced: bool) -> Result<(), Error> {
    let db = &app.db;
    let v = live_vm(app, vm_id).await?;
    if v.state == vm::STATE_STOPPED {
        return Ok(());
    }
    let (tiers_of, vpc_id) = tiers_of_vm(app, v.id).await?;
    // The VM stops first, then the router forgets its leases.
    let view = provision::state::vm_view(db, &v).await?;
    if let Err(e) = app.network.element.driver().stop_vm(&view).await {
        if !forced {
            return Err(Error::internal(format!(
                "Unable to stop virtual machine {}: {e}",
                v.uuid
            )));
        }
        tracing::warn!(vm = %v.uuid, error = %e, "forced stop: the driver could not stop the VM");
    }
    let Some(vpc_id) = vpc_id else {
        vm::transition(db, v.id, &[vm::STATE_RUNNING], vm::STATE_STOPPED).await?;
        return Ok(());
    };
    let _guard = app.network.lock_vpc(vpc_id).await;
    let mut tx = db.begin().await?;
    vpc::lock(&mut tx, vpc_id).await?;
    if !vm::transition(&mut tx, v.id, &[vm::STATE_RUNNING], vm::STATE_STOPPED).await? {
        tx.commit().await?;
        let now = live_vm(app, vm_id).await?;
        if now.state == vm::STATE_STOPPED {
            return Ok(());
        }
        return Err(Error::invalid(format!(
            "Unable to stop virtual machine {}: it is in state {}",
            now.uuid, now.state
        )));
    }
    for (t, nic) in &tiers_of {
        tiers::release_nic(app, &mut tx, t, nic).await?;
    }
    let generation = provision::bump(&mut tx, vpc_id).await?;
    tx.commit().await?;
    if let Err(e) = tiers::push_dhcp(app, vpc_id, generation, tier_uuids(&tiers_of), false).await {
        if forced {
            tracing::warn!(vm = %v.uuid, error = %e, "forced stop: the router still serves the VM's leases");
            return Ok(());
        }
        let mut tx = db.begin().await?;
        vm::transition(&mut tx, v.id, &[vm::STATE_STOPPED], vm::STATE_RUNNING).await?;
        vm::set_nics_state(&mut tx, v.id, vm::NIC_RESERVED).await?;
        tx.commit().await?;
        return Err(e);
    }
    Ok(())
}

/// Before a VM is expunged, what points at it goes (CloudStack's VM
/// clean-up): its port forwarding rules, static NAT to it and its load
/// balancer memberships; the router gets the VPC's remaining lists.
async fn release_vm_rules(app: &App, v: &vm::Vm) -> Result<(), Error> {
    let db = &app.db;
    let Some(vpc_id) = super::vpc_of(db, v.id).await? else {
        return Ok(());
    };
    let _guard = app.network.lock_vpc(vpc_id).await;
    let mut tx = db.begin().await?;
    vpc::lock(&mut tx, vpc_id).await?;
    let forwards = rule::remove_all(
        &mut tx,
        &rule::RuleFilter {
            vm_id: Some(v.id),
            ..Default::default()
        },
    )
    .await?;
    let nats = vlan::list_ips(
        &mut tx,
        &vlan::PublicIpFilter {
            vm_id: Some(v.id),
            ..Default::default()
        },
        Page::ALL,
    )
    .await?
    .items;
    for ip in &nats {
        vlan::set_static_nat(&mut tx, ip.id, None, None).await?;
    }
    let balancers = rule::list(
        &mut tx,
        &rule::RuleFilter {
            vpc_id: Some(vpc_id),
            purpose: Some(rule::PURPOSE_LOAD_BALANCING.into()),
            ..Default::default()
        },
        Page::ALL,
    )
    .await?
    .items;
    let mut members = 0;
    for lb in &balancers {
        for m in rule::members_with_vms(&mut tx, lb.id).await? {
            if m.vm_id == Some(v.id) {
                rule::remove_member(&mut tx, lb.id, &m.instance_ip).await?;
                members += 1;
            }
        }
    }
    if forwards == 0 && nats.is_empty() && members == 0 {
        tx.commit().await?;
        return Ok(());
    }
    let generation = provision::bump(&mut tx, vpc_id).await?;
    tx.commit().await?;
    if let Err(e) = common::push_nat_and_lb(app, vpc_id, generation).await {
        // The VM goes anyway; the router keeps stale rules until the VPC is
        // restarted, which the flag asks for.
        tracing::warn!(vm = %v.uuid, error = %e, "withdrawing an expunged VM's rules failed");
        vpc::set_restart_required(db, vpc_id, true).await?;
    }
    Ok(())
}

/// 431 unless the VM is in one of `states`.
fn check_state(v: &vm::Vm, states: &[&str], action: &str) -> Result<(), Error> {
    if states.contains(&v.state.as_str()) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "Unable to {action} virtual machine {} ({}): it is in state {}",
            v.uuid, v.display_name, v.state
        )))
    }
}

async fn submit(
    ctx: &crate::server::Ctx,
    v: &vm::Vm,
    info: serde_json::Value,
) -> Result<Reply, Error> {
    let sync = sync_object(&ctx.app.db, v).await?;
    let job_id = ctx
        .submit_job(info, Some(("VirtualMachine", &v.uuid)), sync)
        .await?;
    Ok(Reply::Job { job_id })
}

handler!(start_vm, |ctx, params| {
    let v = vm_param(ctx, params, "id").await?;
    if v.state == vm::STATE_RUNNING {
        return Err(Error::invalid(format!(
            "The virtual machine {} ({}) is already running",
            v.uuid, v.display_name
        )));
    }
    check_state(&v, &[vm::STATE_STOPPED], "start")?;
    submit(ctx, &v, json!({ "id": v.id })).await
});

job_body!(start_vm_job, |job, info| {
    let id = info["id"].as_i64().unwrap_or_default();
    start(&job.app, id).await?;
    vm_result(&job.app.db, id, sees_admin_fields(job.caller.role)).await
});

handler!(stop_vm, |ctx, params| {
    let v = vm_param(ctx, params, "id").await?;
    check_state(
        &v,
        &[vm::STATE_RUNNING, vm::STATE_STOPPED, vm::STATE_STARTING],
        "stop",
    )?;
    let forced = params.boolean("forced")?.unwrap_or(false);
    submit(ctx, &v, json!({ "id": v.id, "forced": forced })).await
});

job_body!(stop_vm_job, |job, info| {
    let id = info["id"].as_i64().unwrap_or_default();
    stop(&job.app, id, info["forced"].as_bool().unwrap_or(false)).await?;
    vm_result(&job.app.db, id, sees_admin_fields(job.caller.role)).await
});

handler!(reboot_vm, |ctx, params| {
    let v = vm_param(ctx, params, "id").await?;
    check_state(&v, &[vm::STATE_RUNNING], "reboot")?;
    submit(ctx, &v, json!({ "id": v.id })).await
});

job_body!(reboot_vm_job, |job, info| {
    let id = info["id"].as_i64().unwrap_or_default();
    // The VM restarts in place: its NICs, addresses and leases stay.
    let v = live_vm(&job.app, id).await?;
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
    vm_result(&job.app.db, id, sees_admin_fields(job.caller.role)).await
});

handler!(destroy_vm, |ctx, params| {
    let v = vm_param(ctx, params, "id").await?;
    let expunge = params.boolean("expunge")?.unwrap_or(false);
    if expunge && ctx.caller.role == Role::User {
        let allowed = config::value_bool(&ctx.app.db, "allow.user.expunge.recover.vm")
            .await?
            .unwrap_or(false);
        if !allowed {
            return Err(Error::permission_denied(
                "Parameter expunge can be passed by Admin only. Or when the \
                 allow.user.expunge.recover.vm key is set.",
            ));
        }
    }
    submit(ctx, &v, json!({ "id": v.id, "expunge": expunge })).await
});

job_body!(destroy_vm_job, |job, info| {
    let app = &job.app;
    let id = info["id"].as_i64().unwrap_or_default();
    let expunge = info["expunge"].as_bool().unwrap_or(false);
    let v = live_vm(app, id).await?;
    if v.state == vm::STATE_RUNNING || v.state == vm::STATE_STARTING {
        stop(app, id, false).await?;
    }
    if expunge {
        release_vm_rules(app, &v).await?;
        let view = provision::state::vm_view(&app.db, &v).await?;
        app.network
            .element
            .driver()
            .destroy_vm(&view)
            .await
            .map_err(|e| {
                Error::internal(format!("Unable to expunge virtual machine {}: {e}", v.uuid))
            })?;
        vm::expunge(&app.db, id).await?;
    } else if v.state != vm::STATE_DESTROYED {
        vm::set_state(&app.db, id, vm::STATE_DESTROYED).await?;
    }
    vm_result(&app.db, id, sees_admin_fields(job.caller.role)).await
});
