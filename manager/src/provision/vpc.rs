//! The life of a VPC on its router: start (source-NAT address, public NIC,
//! router started with its whole configuration), destroy (router, addresses,
//! rules, routes, gateways, ACL lists, then the row), restart (with or
//! without a new router), router stop/start/reboot, and the garbage
//! collector that finishes VPCs left Inactive.
//!
//! (Over 400 lines: the VPC's start, destroy and restart share their router
//! and address steps. Adoption at a manager's start is in [`super::readopt`].)

use std::net::Ipv4Addr;
use std::time::Duration;

use super::Plane;
use crate::error::Error;
use crate::orchestration::model::RouterView;
use crate::orchestration::{VpcProvider, agent::AgentEndpoint};
use crate::store::{self, Db, Page, acl, config, gateway, network, router, rule, vlan, vpc};

use super::{Network, element_error, state};

/// The device index of a router's public NIC (0 is kept for the control NIC).
pub const PUBLIC_NIC_INDEX: i64 = 1;

/// Gives the VPC its source-NAT address (exactly `address` when given) and
/// its router a public NIC holding it, unless both exist already.
async fn ensure_source_nat(
    tx: &mut store::Tx,
    v: &vpc::Vpc,
    r: &router::Router,
    address: Option<Ipv4Addr>,
) -> Result<(), Error> {
    let existing = vlan::list_ips(
        &mut *tx,
        &vlan::PublicIpFilter {
            vpc_id: Some(v.id),
            source_nat: Some(true),
            state: Some(vlan::IP_ALLOCATED.into()),
            ..Default::default()
        },
        Page::ALL,
    )
    .await?
    .items
    .into_iter()
    .next();
    let ip = match existing {
        Some(ip) => ip,
        None => {
            let owner = vlan::IpOwner {
                account_id: v.account_id,
                domain_id: v.domain_id,
                vpc_id: Some(v.id),
                source_nat: true,
            };
            vlan::allocate_ip(&mut *tx, v.zone_id, address, owner)
                .await?
                .ok_or_else(|| match address {
                    Some(a) => Error::invalid(format!(
                        "The source NAT address {a} is not a free public address of the zone"
                    )),
                    None => Error::insufficient(
                        crate::error::Capacity::SourceNat,
                        format!(
                            "Insufficient address capacity: no free public address in zone {} \
                             for the source NAT of VPC {}",
                            v.zone_id, v.uuid
                        ),
                    ),
                })?
        }
    };
    vpc::set_source_nat_ip(&mut *tx, v.id, Some(ip.id)).await?;
    let nics = router::list_nics(
        &mut *tx,
        &router::NicFilter {
            owner: Some(router::NicOwner::Router(r.id)),
            role: Some(router::ROLE_PUBLIC.into()),
            ..Default::default()
        },
        Page::ALL,
    )
    .await?;
    if nics.items.is_empty() {
        let range = vlan::range_by_id(&mut *tx, ip.vlan_db_id)
            .await?
            .ok_or_else(|| Error::internal("a public address without its range"))?;
        let public = network::public_network(&mut *tx, v.zone_id).await?;
        router::create_nic(
            &mut *tx,
            router::NewNic {
                owner: router::NicOwner::Router(r.id),
                network_id: public.id,
                device_index: Some(PUBLIC_NIC_INDEX),
                ip4_address: Some(ip.public_ip_address),
                netmask: Some(range.netmask),
                gateway: Some(range.gateway),
                role: router::ROLE_PUBLIC.into(),
            },
        )
        .await?;
    }
    Ok(())
}

/// The VPC's live router, created (Stopped) when it has none. A new router
/// gets a NIC on every implemented tier and every private gateway of the
/// VPC, as CloudStack's VPC router deployment plugs the VPC's networks: a
/// VPC whose router was destroyed (`destroyRouter`) gets it back whole at
/// its next start or restart. The public NIC comes with the source NAT
/// address ([`ensure_source_nat`]).
pub async fn ensure_router(tx: &mut store::Tx, v: &vpc::Vpc) -> Result<router::Router, Error> {
    if let Some(r) = super::vpc_router(&mut *tx, v.id).await? {
        return Ok(r);
    }
    let r = router::create(&mut *tx, new_router(v)).await?;
    super::placement::place_router(&mut *tx, &r).await?;
    let r = router::get_by_id(&mut *tx, r.id).await?.unwrap_or(r);
    // After the public NIC's index, which ensure_source_nat fills next.
    let mut device_index = PUBLIC_NIC_INDEX;
    let mut next_index = || {
        device_index += 1;
        Some(device_index)
    };
    for tier in network::tiers_of_vpc(&mut *tx, v.id).await? {
        if tier.state != network::STATE_IMPLEMENTED {
            continue;
        }
        router::create_nic(
            &mut *tx,
            router::NewNic {
                owner: router::NicOwner::Router(r.id),
                network_id: tier.id,
                device_index: next_index(),
                ip4_address: tier.gateway,
                netmask: tier.netmask,
                gateway: None,
                role: router::ROLE_GUEST.into(),
            },
        )
        .await?;
    }
    for g in gateway::of_vpc(&mut *tx, v.id).await? {
        router::create_nic(
            &mut *tx,
            router::NewNic {
                owner: router::NicOwner::Router(r.id),
                network_id: g.network_id,
                device_index: next_index(),
                ip4_address: Some(g.ip4_address),
                netmask: Some(g.netmask),
                gateway: Some(g.gateway),
                role: router::ROLE_PRIVATE.into(),
            },
        )
        .await?;
    }
    Ok(r)
}

/// Deploys the VPC's router again when it has none (it was destroyed by
/// `destroyRouter`), whole: what CloudStack's VPC element does when a VM of
/// the VPC starts and its router is gone. Call it with the VPC's lock held.
pub async fn redeploy_router_if_gone(lock: &super::change::VpcLock<'_>) -> Result<(), Error> {
    let vpc_id = lock.vpc_id();
    if super::vpc_router(lock.db(), vpc_id).await?.is_some() {
        return Ok(());
    }
    start_vpc(lock.db(), lock.network(), vpc_id, None).await
}

/// Starts the VPC: source-NAT address, public NIC, router started with its
/// whole configuration. The router ends Running, or Error with the error.
pub async fn start_vpc(
    db: &Db,
    net: &Network,
    vpc_id: i64,
    source_nat: Option<Ipv4Addr>,
) -> Result<(), Error> {
    let v = vpc::get_by_id(db, vpc_id)
        .await?
        .filter(|v| v.removed.is_none())
        .ok_or_else(|| Error::invalid("The VPC was deleted meanwhile"))?;
    let mut tx = db.begin().await?;
    let r = ensure_router(&mut tx, &v).await?;
    ensure_source_nat(&mut tx, &v, &r, source_nat).await?;
    tx.commit().await?;
    start_router(db, net, &r).await
}

/// Starts a router and pushes its whole configuration with a new generation.
pub async fn start_router(db: &Db, net: &Network, r: &router::Router) -> Result<(), Error> {
    let mut tx = db.begin().await?;
    router::set_state(&mut tx, r.id, router::STATE_STARTING).await?;
    let generation = router::bump_generation(&mut tx, r.id).await?;
    tx.commit().await?;
    let state = load_for_start(db, r).await?;
    let segments: Vec<String> = state
        .router
        .nics
        .iter()
        .filter_map(|n| n.broadcast_uri.clone())
        .collect();
    super::flood::sync_after_placement(db, net.element.driver(), state.router.zone_id, &segments)
        .await;
    let started = net
        .element
        .implement_vpc(&state, u64::try_from(generation).unwrap_or_default())
        .await;
    record_start(db, r, generation, started).await
}

async fn load_for_start(
    db: &Db,
    r: &router::Router,
) -> Result<crate::orchestration::model::RouterState, Error> {
    state::load_router(db, r)
        .await?
        .ok_or_else(|| Error::invalid("The VPC was deleted meanwhile"))
}

/// Records how a router's (re)start ended: Running with its endpoint and the
/// generation applied, or Error.
async fn record_start(
    db: &Db,
    r: &router::Router,
    generation: i64,
    started: crate::orchestration::ElementResult<AgentEndpoint>,
) -> Result<(), Error> {
    match started {
        Ok(endpoint) => {
            let mut tx = db.begin().await?;
            router::set_agent_endpoint(&mut tx, r.id, Some(&endpoint.to_text())).await?;
            router::set_state(&mut tx, r.id, router::STATE_RUNNING).await?;
            router::mark_applied(&mut tx, r.id, generation).await?;
            tx.commit().await?;
            Ok(())
        }
        Err(e) => {
            router::set_state(db, r.id, router::STATE_ERROR).await?;
            Err(element_error(e))
        }
    }
}

/// The view of a router with the NICs it has (for driver calls).
pub async fn router_view(db: &Db, r: &router::Router) -> Result<RouterView, Error> {
    match state::load_router(db, r).await? {
        Some(s) => Ok(s.router),
        None => Ok(RouterView {
            id: r.uuid,
            name: r.name.clone(),
            zone_id: state::zone_uuid(db, r.zone_id).await.unwrap_or_default(),
            generation: u64::try_from(r.config_generation).unwrap_or_default(),
            nics: Vec::new(),
            host: state::host_url(db, r.host_id).await?,
        }),
    }
}

/// Stops a router (its rows stay; startRouter brings it back).
pub async fn stop_router(db: &Db, net: &Network, r: &router::Router) -> Result<(), Error> {
    let view = router_view(db, r).await?;
    router::set_state(db, r.id, router::STATE_STOPPING).await?;
    if let Err(e) = net.element.shutdown_vpc(&view).await {
        router::set_state(db, r.id, router::STATE_ERROR).await?;
        return Err(element_error(e));
    }
    router::set_state(db, r.id, router::STATE_STOPPED).await?;
    Ok(())
}

/// Reboots a running router: stop, start, whole configuration.
pub async fn reboot_router(db: &Db, net: &Network, r: &router::Router) -> Result<(), Error> {
    let mut tx = db.begin().await?;
    let generation = router::bump_generation(&mut tx, r.id).await?;
    tx.commit().await?;
    let state = load_for_start(db, r).await?;
    let started = net
        .element
        .reboot_router(&state, u64::try_from(generation).unwrap_or_default())
        .await;
    record_start(db, r, generation, started).await
}

/// Destroys a router and its rows.
pub async fn destroy_router(db: &Db, net: &Network, r: &router::Router) -> Result<(), Error> {
    let view = router_view(db, r).await?;
    net.element
        .destroy_router(&view)
        .await
        .map_err(element_error)?;
    router::remove(db, r.id).await?;
    Ok(())
}

/// restartVPC. Without cleanup the running router gets its whole
/// configuration again (one ApplyConfig with a new generation); with
/// cleanup a new router is started with the same configuration first, then
/// the old one is destroyed. Failures set `restartrequired`.
pub async fn restart_vpc(db: &Db, net: &Network, vpc_id: i64, cleanup: bool) -> Result<(), Error> {
    let result = restart_inner(db, net, vpc_id, cleanup).await;
    vpc::set_restart_required(db, vpc_id, result.is_err()).await?;
    result
}

async fn restart_inner(db: &Db, net: &Network, vpc_id: i64, cleanup: bool) -> Result<(), Error> {
    let v = vpc::get_by_id(db, vpc_id)
        .await?
        .filter(|v| v.removed.is_none())
        .ok_or_else(|| Error::invalid("The VPC was deleted meanwhile"))?;
    let old = super::vpc_router(db, vpc_id).await?;
    let Some(old) = old.filter(|_| cleanup) else {
        // No cleanup (or no router yet): (re)start the one router in place.
        let r = {
            let mut tx = db.begin().await?;
            let r = ensure_router(&mut tx, &v).await?;
            ensure_source_nat(&mut tx, &v, &r, None).await?;
            tx.commit().await?;
            r
        };
        if r.state == router::STATE_RUNNING {
            let generation = {
                let mut tx = db.begin().await?;
                let g = router::bump_generation(&mut tx, r.id).await?;
                tx.commit().await?;
                g
            };
            let state = state::load_router(db, &r)
                .await?
                .ok_or_else(|| Error::invalid("The VPC was deleted meanwhile"))?;
            net.element
                .restart_vpc(&state, u64::try_from(generation).unwrap_or_default())
                .await
                .map_err(element_error)?;
            router::mark_applied(db, r.id, generation).await?;
            return Ok(());
        }
        return start_router(db, net, &r).await;
    };
    // A new router with the old one's NIC layout (new MACs), started while
    // the old one still serves.
    let mut tx = db.begin().await?;
    let new = router::create(&mut tx, new_router(&v)).await?;
    super::placement::place_router(&mut tx, &new).await?;
    let new = router::get_by_id(&mut tx, new.id).await?.unwrap_or(new);
    let nics = router::nics_of(&mut tx, router::NicOwner::Router(old.id)).await?;
    for n in nics {
        router::create_nic(
            &mut tx,
            router::NewNic {
                owner: router::NicOwner::Router(new.id),
                network_id: n.network_id,
                device_index: Some(n.device_index),
                ip4_address: n.ip4_address,
                netmask: n.netmask,
                gateway: n.gateway,
                role: n.role.clone(),
            },
        )
        .await?;
    }
    tx.commit().await?;
    if let Err(e) = start_router(db, net, &new).await {
        // The old router keeps serving; the new one goes.
        if let Err(undo) = destroy_router(db, net, &new).await {
            tracing::error!(error = %undo, router = %new.name, "removing a router that failed to start");
            router::remove(db, new.id).await?;
        }
        return Err(e);
    }
    if let Err(e) = destroy_router(db, net, &old).await {
        tracing::warn!(error = %e, router = %old.name, "the replaced router could not be destroyed; removing its rows");
        router::remove(db, old.id).await?;
    }
    Ok(())
}

/// Marks a live VPC Inactive and destroys its routers, so that nothing serves
/// it any more; None when the VPC is gone already.
async fn deactivate(db: &Db, net: &Network, vpc_id: i64) -> Result<Option<vpc::Vpc>, Error> {
    let Some(v) = vpc::get_by_id(db, vpc_id)
        .await?
        .filter(|v| v.removed.is_none())
    else {
        return Ok(None);
    };
    vpc::set_state(db, v.id, vpc::STATE_INACTIVE).await?;
    let routers = router::list(
        db,
        &router::RouterFilter {
            vpc_id: Some(v.id),
            ..Default::default()
        },
        Page::ALL,
    )
    .await?
    .items;
    for r in &routers {
        destroy_router(db, net, r).await?;
    }
    Ok(Some(v))
}

/// The row of a new (Stopped) router for VPC `v`.
fn new_router(v: &vpc::Vpc) -> router::NewRouter {
    router::NewRouter {
        vpc_id: Some(v.id),
        zone_id: v.zone_id,
        account_id: v.account_id,
        domain_id: v.domain_id,
    }
}

/// Removes everything of an Inactive VPC, then its row (CloudStack's
/// destroyVpc cleanup). Safe to run again after a partial failure.
pub async fn destroy_vpc(db: &Db, net: &Network, vpc_id: i64) -> Result<(), Error> {
    let Some(v) = deactivate(db, net, vpc_id).await? else {
        return Ok(());
    };
    let mut tx = db.begin().await?;
    // Rules on the VPC's addresses, then the addresses.
    let ips = vlan::list_ips(
        &mut tx,
        &vlan::PublicIpFilter {
            vpc_id: Some(v.id),
            ..Default::default()
        },
        Page::ALL,
    )
    .await?
    .items;
    for ip in &ips {
        rule::remove_all(
            &mut tx,
            &rule::RuleFilter {
                ip_address_id: Some(ip.id),
                ..Default::default()
            },
        )
        .await?;
        vlan::release_ip(&mut tx, ip.id).await?;
    }
    vpc::set_source_nat_ip(&mut tx, v.id, None).await?;
    // Its VPN gateway and connections (CloudStack's cleanupVpnConnectionByVpc
    // and cleanupVpnGatewayByVpc).
    store::vpn::remove_of_vpc(&mut tx, v.id).await?;
    // Static routes, private gateways and their networks.
    gateway::remove_routes(
        &mut tx,
        &gateway::RouteFilter {
            vpc_id: Some(v.id),
            ..Default::default()
        },
    )
    .await?;
    let gateways = gateway::of_vpc(&mut tx, v.id).await?;
    for g in gateways {
        gateway::remove(&mut tx, g.id).await?;
        network::remove(&mut tx, g.network_id).await?;
    }
    // The VPC's own ACL lists.
    let lists = acl::list(
        &mut tx,
        &acl::AclFilter {
            vpc_id: Some(v.id),
            ..Default::default()
        },
        Page::ALL,
    )
    .await?
    .items;
    for l in lists.into_iter().filter(|l| l.vpc_id == Some(v.id)) {
        acl::remove_list(&mut tx, l.id).await?;
    }
    vpc::remove(&mut tx, v.id).await?;
    tx.commit().await?;
    Ok(())
}

/// Retries the cleanup of every Inactive VPC; returns how many it finished.
pub async fn collect_inactive(db: &Db, net: &Network) -> Result<usize, Error> {
    let inactive = vpc::list(
        db,
        &vpc::VpcFilter {
            state: Some(vpc::STATE_INACTIVE.into()),
            ..Default::default()
        },
        Page::ALL,
    )
    .await?
    .items;
    let mut done = 0;
    for v in inactive {
        let _guard = net.lock(db, v.id).await?;
        match destroy_vpc(db, net, v.id).await {
            Ok(()) => done += 1,
            Err(e) => {
                tracing::warn!(vpc = %v.uuid, error = %e, "Inactive VPC cleanup failed; retrying at the next run")
            }
        }
    }
    Ok(done)
}

/// The VPC garbage collector: every `vpc.cleanup.interval` seconds (read
/// every second, so a change takes effect at once), finishes the cleanup of Inactive VPCs;
/// one live manager of the cluster runs it.
pub async fn run_gc(plane: Plane) {
    let mut waited = 0i64;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        waited += 1;
        let interval = config::value_i64(&plane.db, "vpc.cleanup.interval")
            .await
            .ok()
            .flatten()
            .unwrap_or(3600)
            .max(1);
        if waited < interval {
            continue;
        }
        waited = 0;
        if !crate::cluster::runs_loop(&plane.db, &plane.member, crate::cluster::LOOP_VPC_GC).await {
            continue;
        }
        match collect_inactive(&plane.db, &plane.network).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(vpcs = n, "Inactive VPCs cleaned up"),
            Err(e) => tracing::warn!(error = %e, "VPC garbage collection failed"),
        }
    }
}

/// Removes a VPC with everything in it, tiers included (deleting its
/// account): routers first, then tiers (their vnets given back, their rules
/// gone), then the rest as [`destroy_vpc`] does.
pub async fn purge_vpc(db: &Db, net: &Network, vpc_id: i64) -> Result<(), Error> {
    let Some(v) = deactivate(db, net, vpc_id).await? else {
        return Ok(());
    };
    let tiers = network::tiers_of_vpc(db, v.id).await?;
    for t in &tiers {
        for v in store::vm::vms_on_network(db, t.id).await? {
            destroy_vm_quietly(db, net, &v).await;
        }
    }
    let mut tx = db.begin().await?;
    for t in tiers {
        for vm in store::vm::vms_on_network(&mut tx, t.id).await? {
            store::vm::expunge(&mut tx, vm.id).await?;
        }
        rule::remove_all(
            &mut tx,
            &rule::RuleFilter {
                network_id: Some(t.id),
                ..Default::default()
            },
        )
        .await?;
        store::vnet::release_for_network(&mut tx, t.id).await?;
        network::remove(&mut tx, t.id).await?;
    }
    tx.commit().await?;
    destroy_vpc(db, net, v.id).await
}

/// Removes a VM from its driver; a failure is logged (the namespace sweeper
/// removes what is left once the row is gone).
async fn destroy_vm_quietly(db: &Db, net: &Network, v: &store::vm::Vm) {
    use crate::orchestration::RouterDriver;
    match state::vm_view(db, v).await {
        Ok(view) => {
            if let Err(e) = net.element.driver().destroy_vm(&view).await {
                tracing::warn!(vm = %v.uuid, error = %e, "the driver could not remove a VM");
            }
        }
        Err(e) => tracing::warn!(vm = %v.uuid, error = %e, "a VM's view could not be built"),
    }
}

/// Deleting an account removes its VMs and its VPCs with everything in them.
pub async fn purge_account(db: &Db, net: &Network, account_id: i64) -> Result<(), Error> {
    let vms = store::vm::list(
        db,
        &store::vm::VmFilter {
            scope: store::Scope::account(account_id),
            ..Default::default()
        },
        Page::ALL,
    )
    .await?
    .items;
    for vm in vms {
        destroy_vm_quietly(db, net, &vm).await;
        store::vm::expunge(db, vm.id).await?;
    }
    let vpcs = vpc::list(
        db,
        &vpc::VpcFilter {
            scope: store::Scope::account(account_id),
            ..Default::default()
        },
        Page::ALL,
    )
    .await?
    .items;
    for v in vpcs {
        let _guard = net.lock(db, v.id).await?;
        purge_vpc(db, net, v.id).await?;
    }
    // Its customer gateways (CloudStack's deleteCustomerGatewayByAccount).
    store::vpn::remove_customer_gateways_of_account(db, account_id).await?;
    Ok(())
}
