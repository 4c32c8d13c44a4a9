//! A starting manager and what already runs (DESIGN §4, §6): it adopts
//! nothing by itself. It asks the host what runs there (the host agent's
//! inventory) and starts only the routers and VMs the database says are
//! Running that the host does not run; for those the host runs, it keeps
//! the endpoint the host reports. The resync monitor then checks each
//! router's configuration.

use std::collections::BTreeMap;

use super::Plane;
use super::vpc::router_view;
use crate::orchestration::RouterDriver;
use crate::orchestration::agent::{AgentEndpoint, HostInventory};
use crate::store::{self, Page, router};

/// What a starting manager does with one router the database holds Running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterAction {
    /// The host runs it: keep it, with the endpoint the host reports (None:
    /// keep the stored one).
    Keep(Option<AgentEndpoint>),
    /// The host does not run it (or its agent is down): start it.
    Start,
}

/// The action for each router the database holds Running, by name. Pure.
pub fn router_actions<'a>(
    running_in_db: impl IntoIterator<Item = &'a str>,
    host: &HostInventory,
) -> BTreeMap<String, RouterAction> {
    running_in_db
        .into_iter()
        .map(|name| {
            let action = match host.routers.get(name) {
                Some(endpoint) => RouterAction::Keep(endpoint.clone()),
                None => RouterAction::Start,
            };
            (name.to_string(), action)
        })
        .collect()
}

/// At a manager's start: asks the driver's host (the default host agent, at
/// `default_url`) what runs and (re)starts the Running routers and VMs
/// placed on it (or on no host) that it does not run. A host that cannot be
/// asked is left alone (nothing is started twice); a driver that keeps no
/// inventory has every such router and VM started, which adopts the ones
/// still running. Routers and VMs of other hosts are their host agents' own
/// (each takes them back from its records when it starts; the host monitor
/// deals with a host that is gone): asking them one by one here made a
/// manager's start take seconds per router.
pub async fn readopt(plane: &Plane, default_url: &str) {
    let db = &plane.db;
    let default_hosts = match default_host_ids(db, default_url).await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e, "the default host is unknown: no router or VM started");
            return;
        }
    };
    let here = |host_id: Option<i64>| host_id.is_none_or(|h| default_hosts.contains(&h));
    let driver = plane.network.element.driver();
    let host = match driver.inventory().await {
        Ok(Some(inventory)) => inventory,
        Ok(None) => HostInventory::default(),
        Err(e) => {
            tracing::warn!(error = %e, "the host's inventory is unknown: no router or VM started");
            return;
        }
    };
    let routers = router::list(
        db,
        &router::RouterFilter {
            state: Some(router::STATE_RUNNING.into()),
            ..Default::default()
        },
        Page::ALL,
    )
    .await
    .map(|l| l.items)
    .unwrap_or_default()
    .into_iter()
    .filter(|r| here(r.host_id))
    .collect::<Vec<_>>();
    let actions = router_actions(routers.iter().map(|r| r.name.as_str()), &host);
    let (mut kept, mut started) = (0usize, 0usize);
    for r in routers {
        let endpoint = match actions.get(&r.name) {
            Some(RouterAction::Keep(endpoint)) => {
                kept += 1;
                match endpoint {
                    Some(e) => e.clone(),
                    None => continue,
                }
            }
            _ => {
                let view = match router_view(db, &r).await {
                    Ok(view) => view,
                    Err(e) => {
                        tracing::warn!(router = %r.name, error = %e, "cannot start router");
                        continue;
                    }
                };
                match driver.start_router(&view).await {
                    Ok(endpoint) => {
                        started += 1;
                        endpoint
                    }
                    Err(e) => {
                        tracing::warn!(router = %r.name, error = %e, "cannot start router");
                        continue;
                    }
                }
            }
        };
        plane.network.endpoints.set(&r.name, endpoint.clone());
        let text = endpoint.to_text();
        if r.agent_endpoint.as_deref() != Some(text.as_str())
            && let Err(e) = router::set_agent_endpoint(db, r.id, Some(&text)).await
        {
            tracing::warn!(router = %r.name, error = %e, "endpoint not recorded");
        }
    }
    let vms = store::vm::list(
        db,
        &store::vm::VmFilter {
            state: Some(store::vm::STATE_RUNNING.into()),
            ..Default::default()
        },
        Page::ALL,
    )
    .await
    .map(|l| l.items)
    .unwrap_or_default();
    let mut vms_started = 0usize;
    for v in vms {
        if !here(v.host_id) || host.vms.contains(&v.instance_name) {
            continue;
        }
        match super::state::vm_view(db, &v).await {
            Ok(view) => match driver.start_vm(&view).await {
                Ok(()) => vms_started += 1,
                Err(e) => tracing::warn!(vm = %v.instance_name, error = %e, "cannot start VM"),
            },
            Err(e) => tracing::warn!(vm = %v.instance_name, error = %e, "cannot start VM"),
        }
    }
    tracing::info!(
        routers_running = kept,
        routers_started = started,
        vms_running = host.vms.len(),
        vms_started,
        "routers and VMs compared with what the host runs"
    );
}

/// The default host agent's host in every zone (ids).
async fn default_host_ids(db: &store::Db, url: &str) -> Result<Vec<i64>, crate::error::Error> {
    let zones = store::zone::list(db, &store::zone::ZoneFilter::default(), Page::ALL).await?;
    let mut ids = Vec::new();
    for z in zones.items {
        if let Some(h) = store::host::live_by_url(db, z.id, url).await? {
            ids.push(h.id);
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_routers_the_host_does_not_run_are_started() {
        let mut host = HostInventory::default();
        let endpoint = AgentEndpoint::UnixSocket("/d/routers/r-1-VM/agent.sock".into());
        host.routers.insert("r-1-VM".into(), Some(endpoint.clone()));
        host.routers.insert("r-9-VM".into(), None);
        let actions = router_actions(["r-1-VM", "r-2-VM"], &host);
        assert_eq!(actions["r-1-VM"], RouterAction::Keep(Some(endpoint)));
        assert_eq!(actions["r-2-VM"], RouterAction::Start);
        assert!(
            !actions.contains_key("r-9-VM"),
            "a router the database does not hold Running is not the manager's to start"
        );
    }
}
