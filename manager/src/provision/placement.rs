//! Placing a new router or VM on a host of its zone: the planner's
//! candidates read from the database, its answer recorded on the row.

use crate::error::{Capacity, Error};
use crate::services::host::planner::{self, Placing, Plan};
use crate::store::{Exec, host, router, vm};

/// The host a new router or VM of `zone_id` goes on: None when the zone
/// has no host at all (the manager's default host agent runs it); CloudStack's
/// insufficient-server-capacity error (533) when hosts exist but none may
/// take it, or not the one an admin named. `label` names it in that error
/// (`DomainRouter|r-4-VM`, `User|i-2-9-VM`).
pub async fn choose<'a>(
    ex: impl Into<Exec<'a>>,
    zone_id: i64,
    what: Placing,
    wanted: Option<i64>,
    label: &str,
) -> Result<Option<i64>, Error> {
    let mut ex = ex.into();
    let hosts = host::live_in_zone(ex.reborrow(), zone_id).await?;
    let ids: Vec<i64> = hosts.iter().map(|h| h.id).collect();
    let loads = host::loads(ex.reborrow(), &ids).await?;
    let router_vpcs = host::router_vpcs_in_zone(ex.reborrow(), zone_id).await?;
    let candidates = planner::candidates(&hosts, &loads, &router_vpcs);
    match planner::place(&candidates, what, wanted) {
        Plan::On(id) => Ok(Some(id)),
        Plan::Default => Ok(None),
        Plan::NoCapacity => Err(Error::insufficient(
            Capacity::Server,
            format!("Unable to create a deployment for VM[{label}]"),
        )),
    }
}

/// The host a router or VM leaving host `except` goes to: as [`choose`]
/// among the zone's hosts other than `except`. None when no other host
/// exists at all.
pub async fn choose_except<'a>(
    ex: impl Into<Exec<'a>>,
    zone_id: i64,
    what: Placing,
    except: Option<i64>,
    label: &str,
) -> Result<Option<i64>, Error> {
    let mut ex = ex.into();
    let hosts: Vec<host::Host> = host::live_in_zone(ex.reborrow(), zone_id)
        .await?
        .into_iter()
        .filter(|h| Some(h.id) != except)
        .collect();
    if hosts.is_empty() {
        return Ok(None);
    }
    let ids: Vec<i64> = hosts.iter().map(|h| h.id).collect();
    let loads = host::loads(ex.reborrow(), &ids).await?;
    let router_vpcs = host::router_vpcs_in_zone(ex.reborrow(), zone_id).await?;
    let candidates = planner::candidates(&hosts, &loads, &router_vpcs);
    match planner::place(&candidates, what, None) {
        Plan::On(id) => Ok(Some(id)),
        Plan::Default => Ok(None),
        Plan::NoCapacity => Err(Error::insufficient(
            Capacity::Server,
            format!("Unable to create a deployment for VM[{label}]"),
        )),
    }
}

/// Places a new router of a VPC and records where.
pub async fn place_router<'a>(
    ex: impl Into<Exec<'a>>,
    r: &router::Router,
) -> Result<Option<i64>, Error> {
    let mut ex = ex.into();
    let label = format!("DomainRouter|{}", r.name);
    let on = choose(
        ex.reborrow(),
        r.zone_id,
        Placing::Router { vpc: r.vpc_id },
        None,
        &label,
    )
    .await?;
    if on.is_some() {
        host::set_router_host(ex, r.id, on).await?;
    }
    Ok(on)
}

/// Places a new VM (on `wanted` when an admin named a host) and records
/// where.
pub async fn place_vm<'a>(
    ex: impl Into<Exec<'a>>,
    v: &vm::Vm,
    wanted: Option<i64>,
) -> Result<Option<i64>, Error> {
    let mut ex = ex.into();
    let label = format!("User|{}", v.instance_name);
    let on = choose(ex.reborrow(), v.zone_id, Placing::Vm, wanted, &label).await?;
    if on.is_some() {
        host::set_vm_host(ex, v.id, on).await?;
    }
    Ok(on)
}
