//! Moving a running router or VM to another host (`migrateSystemVm`,
//! `migrateVirtualMachine`, `prepareHostForMaintenance`, a forced
//! `deleteHost`).
//!
//! A router moves make-before-break: the same router (its row, NICs, MACs
//! and addresses) is started on the target host in standby, its guest,
//! public and private ports off their segments, and given the database's
//! whole configuration with a new generation; only once its agent reports
//! that generation does the old one go. Then, in one transaction, the
//! router is recorded on the target host with the new agent's endpoint and
//! generation, and the new one's ports join their segments and announce
//! its addresses (gratuitous ARP). Traffic stops only between the old
//! router's destruction and that announcement. Until the old router goes,
//! any failure destroys the new one and leaves the old serving (undo).
//! After it, a switch that fails (not recorded, or not activated) does not
//! leave the router down: it is started again at once from the database's
//! state, on the host the database records it on (a plain start on the
//! target), else back on its old host, whose row then names it again; the
//! move then fails, the router running.
//!
//! A VM moves cold (a namespace VM has no memory to carry): destroyed on
//! its host, recorded on the target, started there with the same NICs
//! (MACs), so it takes the same addresses from the router by DHCP. If it
//! cannot start there it is started again where it was.
//!
//! After each move the flood lists of the VXLAN segments concerned are
//! sent at once ([`flood::sync_segments`]), not at the flood loop's next
//! round.

use super::{Network, element_error, flood, state};
use crate::error::Error;
use crate::orchestration::RouterDriver;
use crate::orchestration::agent::AgentEndpoint;
use crate::orchestration::model::{RouterState, RouterView};
use crate::store::{Db, host, router, vm};

/// The VXLAN segments of a router's NICs.
fn router_segments(view: &RouterView) -> Vec<String> {
    view.nics
        .iter()
        .filter_map(|n| n.broadcast_uri.clone())
        .filter(|u| u.starts_with("vxlan://"))
        .collect()
}

/// The host row `id`, live.
async fn live_host(db: &Db, id: i64) -> Result<host::Host, Error> {
    host::get_by_id(db, id)
        .await?
        .filter(|h| h.removed.is_none())
        .ok_or_else(|| Error::invalid(format!("The host {id} was removed meanwhile")))
}

/// Sends the flood lists of `segments` now (errors only logged: the flood
/// loop repairs them).
async fn flood_now(
    db: &Db,
    net: &Network,
    zone: uuid::Uuid,
    segments: &[String],
    joining: &[flood::Joining],
    left: &[host::Host],
) {
    if let Err(e) =
        flood::sync_segments(db, net.element.driver(), zone, segments, joining, left).await
    {
        tracing::warn!(error = %e, "sending flood lists after a move failed; the loop will");
    }
}

/// Moves the running router `r` to host `target`, make-before-break (see
/// the module's text). The caller holds the router's VPC lock.
pub async fn move_router(
    db: &Db,
    net: &Network,
    r: &router::Router,
    target: i64,
) -> Result<(), Error> {
    if r.host_id == Some(target) {
        return Ok(());
    }
    let to = live_host(db, target).await?;
    let from = match r.host_id {
        Some(id) => host::get_by_id(db, id).await?,
        None => None,
    };
    let generation = {
        let mut tx = db.begin().await?;
        let g = router::bump_generation(&mut tx, r.id).await?;
        tx.commit().await?;
        g
    };
    let loaded: RouterState = state::load_router(db, r)
        .await?
        .ok_or_else(|| Error::invalid("The VPC was deleted meanwhile"))?;
    let old_view = loaded.router.clone();
    let mut new_state = loaded;
    new_state.router.host = Some(to.url.clone());
    let new_view = new_state.router.clone();
    let segments = router_segments(&new_view);
    let old_endpoint = r
        .agent_endpoint
        .as_deref()
        .and_then(AgentEndpoint::from_text);
    let restore_endpoint = || {
        if let Some(e) = &old_endpoint {
            net.endpoints.set(&r.name, e.clone());
        }
    };
    let joining: Vec<flood::Joining> = segments
        .iter()
        .map(|uri| flood::Joining {
            host: to.clone(),
            broadcast_uri: uri.clone(),
        })
        .collect();
    // The target joins the router's segments first, so the standby router
    // can reach the other hosts the moment it takes over, and they it.
    flood_now(db, net, old_view.zone_id, &segments, &joining, &[]).await;

    // Make: the new router, configured, answering no one. Its endpoint is
    // this manager's alone until the switch: a failed call must not swap
    // it for the database's (the old router's).
    net.endpoints.pin(&r.name, true);
    let made = make_standby(
        net,
        &new_state,
        u64::try_from(generation).unwrap_or_default(),
    )
    .await;
    if made.is_err() {
        net.endpoints.pin(&r.name, false);
    }
    let endpoint = match made {
        Ok(endpoint) => endpoint,
        Err(e) => {
            undo_standby(net, &new_view).await;
            restore_endpoint();
            let left = [to.clone()];
            flood_now(db, net, old_view.zone_id, &segments, &[], &left).await;
            return Err(e);
        }
    };

    // Break: the old router goes.
    let driver = net.element.driver();
    let destroyed = driver.destroy_router(&old_view).await;
    if destroyed.is_err() {
        net.endpoints.pin(&r.name, false);
    }
    if let Err(e) = destroyed {
        undo_standby(net, &new_view).await;
        restore_endpoint();
        let left = [to.clone()];
        flood_now(db, net, old_view.zone_id, &segments, &[], &left).await;
        return Err(Error::internal(format!(
            "Unable to migrate the router {}: stopping it on its host failed: {e}",
            r.uuid
        )));
    }

    // Switch: recorded on the target with the new agent, in one transaction.
    let switched = record_switch(db, r.id, to.id, &endpoint, generation).await;
    net.endpoints.set(&r.name, endpoint);
    net.endpoints.pin(&r.name, false);
    let activated = match &switched {
        Ok(()) => {
            let activated = driver.activate_router(&new_view).await;
            let left: Vec<host::Host> = from.iter().cloned().collect();
            flood_now(db, net, new_view.zone_id, &segments, &[], &left).await;
            activated.map_err(|e| format!("activating it on the target host failed: {e}"))
        }
        Err(e) => Err(format!("recording it on the target host failed: {e}")),
    };
    let Err(why) = activated else {
        return Ok(());
    };
    // The old router is gone: the router must not stay down until the
    // host monitor notices. It starts again at once, from the database's
    // state, where the database places it first, else on the other host.
    tracing::warn!(router = %r.name, error = %why, "the switch of a moved router failed; starting it again");
    let order = restart_order(switched.is_ok(), from.as_ref().map(|h| h.id), to.id);
    match restart_after_break(db, net, r, &new_view, &order, to.id).await {
        Ok(on) if on == to.id => Ok(()),
        Ok(_) => Err(Error::internal(format!(
            "Unable to migrate the router {}: {why}; it was started again on its host",
            r.uuid
        ))),
        Err(e) => Err(Error::internal(format!(
            "Unable to migrate the router {}: {why}; starting it again failed: {e}",
            r.uuid
        ))),
    }
}

/// The hosts, in order, on which a moved router whose old copy is gone is
/// started again after its switch failed: the one the database records it
/// on first (the target when the switch was `switched`, else its old host
/// `from`), then the other one.
fn restart_order(switched: bool, from: Option<i64>, to: i64) -> Vec<i64> {
    let mut order = match (switched, from) {
        (true, Some(from)) => vec![to, from],
        (false, Some(from)) => vec![from, to],
        (_, None) => vec![to],
    };
    order.dedup();
    order
}

/// Starts router `r` again from the database's state on the first host of
/// `order` where it starts (recording it there first, so the row always
/// names where it runs or was last tried); returns that host. The standby
/// copy on the target (`new_view`, `to`) is destroyed before the router
/// starts on another host (when its host agent answers; otherwise it stays
/// in standby, also across that host agent's restart).
async fn restart_after_break(
    db: &Db,
    net: &Network,
    r: &router::Router,
    new_view: &RouterView,
    order: &[i64],
    to: i64,
) -> Result<i64, Error> {
    let mut last = Error::internal("no host to start it on");
    let mut standby_gone = false;
    for &host_id in order {
        if host_id != to && !standby_gone {
            undo_standby(net, new_view).await;
            standby_gone = true;
        }
        if let Err(e) = live_host(db, host_id).await {
            last = e;
            continue;
        }
        let placed = async {
            let mut tx = db.begin().await?;
            host::set_router_host(&mut tx, r.id, Some(host_id)).await?;
            tx.commit().await?;
            Ok::<_, Error>(())
        };
        if let Err(e) = placed.await {
            last = e;
            continue;
        }
        let row = router::get_by_id(db, r.id)
            .await?
            .ok_or_else(|| Error::invalid("The router was destroyed meanwhile"))?;
        match super::vpc::start_router(db, net, &row).await {
            Ok(()) => return Ok(host_id),
            Err(e) => {
                tracing::warn!(router = %r.name, host = host_id, error = %e, "the router did not start again there");
                last = e;
            }
        }
    }
    Err(last)
}

/// Records a moved router on host `to` with its new agent and the
/// generation it applied, in one transaction.
async fn record_switch(
    db: &Db,
    router_id: i64,
    to: i64,
    endpoint: &AgentEndpoint,
    generation: i64,
) -> Result<(), Error> {
    let mut tx = db.begin().await?;
    host::set_router_host(&mut tx, router_id, Some(to)).await?;
    router::set_agent_endpoint(&mut tx, router_id, Some(&endpoint.to_text())).await?;
    router::set_state(&mut tx, router_id, router::STATE_RUNNING).await?;
    router::mark_applied(&mut tx, router_id, generation).await?;
    tx.commit().await?;
    Ok(())
}

/// Starts `state`'s router in standby on its host, gives it its whole
/// configuration at `generation`, and waits until its agent reports it.
async fn make_standby(
    net: &Network,
    state: &RouterState,
    generation: u64,
) -> Result<AgentEndpoint, Error> {
    let element = &net.element;
    let endpoint = element
        .driver()
        .start_router_standby(&state.router)
        .await
        .map_err(|e| {
            Error::internal(format!(
                "Unable to migrate the router {}: starting it on the target host failed: {e}",
                state.router.id
            ))
        })?;
    element
        .resync(state, generation)
        .await
        .map_err(element_error)?;
    let reported = element
        .agent_generation(&state.router)
        .await
        .map_err(element_error)?;
    if reported < generation {
        return Err(Error::internal(format!(
            "Unable to migrate the router {}: its agent on the target host reports generation \
             {reported}, not {generation}",
            state.router.id
        )));
    }
    Ok(endpoint)
}

/// Destroys a standby router that will not take over (errors logged: the
/// host agent's sweeper removes what is left).
async fn undo_standby(net: &Network, view: &RouterView) {
    if let Err(e) = net.element.driver().destroy_router(view).await {
        tracing::error!(router = %view.name, error = %e, "removing the standby router of a failed move");
    }
}

/// Moves the running VM `v` to host `target`: destroyed where it runs,
/// recorded on the target, started there with the same NICs; started again
/// where it was if it cannot start there.
pub async fn move_vm(db: &Db, net: &Network, v: &vm::Vm, target: i64) -> Result<(), Error> {
    if v.host_id == Some(target) {
        return Ok(());
    }
    let to = live_host(db, target).await?;
    let from = match v.host_id {
        Some(id) => host::get_by_id(db, id).await?,
        None => None,
    };
    let old_view = state::vm_view(db, v).await?;
    let segments: Vec<String> = old_view
        .nics
        .iter()
        .filter_map(|n| n.broadcast_uri.clone())
        .collect();
    let driver = net.element.driver();
    driver.destroy_vm(&old_view).await.map_err(|e| {
        Error::internal(format!(
            "Unable to migrate the VM {}: stopping it on its host failed: {e}",
            v.uuid
        ))
    })?;
    host::set_vm_host(db, v.id, Some(to.id)).await?;
    let left: Vec<host::Host> = from.into_iter().collect();
    flood_now(db, net, old_view.zone_id, &segments, &[], &left).await;
    let mut new_view = old_view.clone();
    new_view.host = Some(to.url.clone());
    if let Err(e) = driver.start_vm(&new_view).await {
        tracing::warn!(vm = %v.uuid, error = %e, "the moved VM did not start on its new host; starting it where it was");
        let _ = driver.destroy_vm(&new_view).await;
        host::set_vm_host(db, v.id, v.host_id).await?;
        let joined: Vec<host::Host> = vec![to];
        flood_now(db, net, old_view.zone_id, &segments, &[], &joined).await;
        if let Err(back) = driver.start_vm(&old_view).await {
            tracing::error!(vm = %v.uuid, error = %back, "the VM did not start again where it was");
            vm::transition(db, v.id, &[vm::STATE_RUNNING], vm::STATE_STOPPED).await?;
        }
        return Err(Error::internal(format!(
            "Unable to migrate the VM {}: starting it on the target host failed: {e}",
            v.uuid
        )));
    }
    Ok(())
}

/// The routers and VMs recorded on host `host_id` (live, not Destroyed,
/// Expunging or Error).
pub async fn residents(db: &Db, host_id: i64) -> Result<(Vec<router::Router>, Vec<vm::Vm>), Error> {
    let (router_ids, vm_ids) = host::residents(db, host_id).await?;
    let mut routers = Vec::new();
    for id in router_ids {
        if let Some(r) = router::get_by_id(db, id).await? {
            routers.push(r);
        }
    }
    let vms = vm::by_ids(db, &vm_ids).await?;
    Ok((routers, vms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_router_down_after_a_failed_switch_starts_where_the_database_places_it_first() {
        assert_eq!(restart_order(true, Some(1), 2), [2, 1]);
        assert_eq!(restart_order(false, Some(1), 2), [1, 2]);
        assert_eq!(restart_order(true, None, 2), [2]);
        assert_eq!(restart_order(false, None, 2), [2]);
    }
}
