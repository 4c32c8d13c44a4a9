//! Where the service layer meets the plug-ins: the running manager's network
//! element (the VPC virtual router over an agent client and a router driver),
//! per-VPC serialization of changes, and what provisioning needs of the
//! running manager ([`Plane`]: the store and the network side, never the API
//! server). How a change reaches a router is owned by one place, the change
//! protocol of [`change`] (`VpcLock::apply`).

pub mod change;
pub mod flood;
pub mod host_monitor;
pub mod hosts;
pub mod lock;
pub mod monitor;
pub mod placement;
pub mod readopt;
pub mod relocate;
pub mod state;
pub mod tier;
pub mod vpc;
pub mod vpn;

use std::sync::Arc;

use crate::error::Error;
use crate::orchestration::agent::{AgentEndpoint, Endpoints, SharedAgent, SharedDriver};
use crate::orchestration::recording::{RecordingAgentClient, RecordingDriver};
use crate::orchestration::{ElementError, Plugins, VpcVirtualRouterElement};
use crate::store::{self, Exec, Tx, router};

/// The element the manager runs with.
pub type RouterElement = VpcVirtualRouterElement;

/// The agent client and router driver a manager runs with.
#[derive(Clone)]
pub struct Backend {
    pub agent: SharedAgent,
    pub driver: SharedDriver,
    /// Where routers' agents listen (shared by the driver and the client).
    pub endpoints: Arc<Endpoints>,
}

impl Backend {
    /// Routers that exist only in the manager's records: every command is
    /// accepted and remembered, nothing runs. For API development and tests
    /// that check the commands the manager produces.
    pub fn simulated() -> Backend {
        Backend {
            agent: Arc::new(RecordingAgentClient::new()),
            driver: Arc::new(RecordingDriver::new()),
            endpoints: Arc::default(),
        }
    }
}

/// What provisioning needs of the running manager: its store and its
/// network side. Provisioning never sees the API server's state.
#[derive(Clone)]
pub struct Plane {
    pub db: store::Db,
    pub network: Arc<Network>,
    /// This manager's name among the cluster's members: background work is
    /// shared out by it ([`crate::cluster::Shares`]).
    pub member: String,
    /// The members sharing the work, as the heartbeat last read them: the
    /// router checks take a gone member's routers when it changes.
    pub members: crate::cluster::Members,
}

/// The sync object of jobs that change a VPC's router (its tiers, rules,
/// VMs): they run one at a time per VPC; the monitor leaves alone a VPC
/// whose sync object a job holds.
pub fn vpc_sync(vpc_id: i64) -> String {
    format!("vpc:{vpc_id}")
}

/// The network side of the running manager.
pub struct Network {
    pub plugins: Plugins,
    pub element: RouterElement,
    /// Where routers' agents listen.
    pub endpoints: Arc<Endpoints>,
    locks: lock::VpcLocks,
}

impl Network {
    pub fn new(plugins: Plugins, backend: Backend) -> Network {
        Network {
            plugins,
            element: VpcVirtualRouterElement::new(backend.agent, backend.driver),
            endpoints: backend.endpoints,
            locks: lock::VpcLocks::default(),
        }
    }

    /// What runs this manager's routers (listRouters' `hypervisor`).
    pub fn hypervisor(&self) -> &'static str {
        use crate::orchestration::RouterDriver;
        self.element.driver().hypervisor()
    }

    /// Fills the endpoint book from the routers the database knows (at
    /// start, so a restarted manager reaches the routers that kept running),
    /// and makes the book read the database for routers it does not hold
    /// (started by another manager since).
    pub async fn load_endpoints(&self, db: &store::Db) -> store::Result<usize> {
        let lookup_db = db.clone();
        self.endpoints.set_lookup(Arc::new(move |name: String| {
            let db = lookup_db.clone();
            Box::pin(async move {
                let filter = router::RouterFilter {
                    name: Some(name.clone()),
                    ..Default::default()
                };
                match router::list(&db, &filter, store::Page::first(1)).await {
                    Ok(listed) => listed
                        .items
                        .into_iter()
                        .next()?
                        .agent_endpoint
                        .as_deref()
                        .and_then(AgentEndpoint::from_text),
                    Err(e) => {
                        tracing::warn!(router = %name, error = %e, "reading a router's endpoint failed");
                        None
                    }
                }
            })
        }));
        let routers = router::list(db, &router::RouterFilter::default(), store::Page::ALL).await?;
        let mut n = 0;
        for r in routers.items {
            if let Some(e) = r
                .agent_endpoint
                .as_deref()
                .and_then(AgentEndpoint::from_text)
            {
                self.endpoints.set(&r.name, e);
                n += 1;
            }
        }
        Ok(n)
    }
}

/// The generation a change carries to a router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation {
    pub router_id: i64,
    pub generation: u64,
    /// The generation before the bump when the router had applied it (it
    /// was current): what an edit-form push is made against. None when the
    /// router was behind: only its whole state can be sent.
    pub base: Option<u64>,
}

/// What an edit-form push of the next change is made against: the router's
/// generation when it has applied it, None when it is behind (only its
/// whole state can then be sent).
fn edit_base(applied: i64, config: i64) -> Option<u64> {
    if applied >= config {
        u64::try_from(config).ok()
    } else {
        None
    }
}

/// Bumps the config generation of the VPC's router when it is Running (in the
/// change's transaction). None: no running router; the change is stored only.
async fn bump(tx: &mut Tx, vpc_id: i64) -> store::Result<Option<Generation>> {
    let Some(r) = running_router(&mut *tx, vpc_id).await? else {
        return Ok(None);
    };
    let generation = router::bump_generation(&mut *tx, r.id).await?;
    let base = edit_base(r.applied_generation, r.config_generation);
    Ok(Some(Generation {
        router_id: r.id,
        generation: u64::try_from(generation).unwrap_or_default(),
        base,
    }))
}

/// The live router of a VPC, whatever its state.
pub async fn vpc_router<'a>(
    ex: impl Into<Exec<'a>>,
    vpc_id: i64,
) -> store::Result<Option<router::Router>> {
    let filter = router::RouterFilter {
        vpc_id: Some(vpc_id),
        ..Default::default()
    };
    Ok(router::list(ex, &filter, store::Page::ALL)
        .await?
        .items
        .into_iter()
        .next())
}

/// The VPC's router if it is Running.
pub async fn running_router<'a>(
    ex: impl Into<Exec<'a>>,
    vpc_id: i64,
) -> store::Result<Option<router::Router>> {
    Ok(vpc_router(ex, vpc_id)
        .await?
        .filter(|r| r.state == router::STATE_RUNNING))
}

/// After a failed push the router may hold part of the change under the
/// change's generation (an agent that persisted it and then failed to
/// apply, or the first of several commands): the caller's revert alone
/// would leave router and database at the same generation with different
/// states, both looking current. A new generation makes the router look
/// behind, so the monitor sends it the database's whole state. It is taken
/// before the caller reverts, under the caller's VPC lock, which the monitor
/// also takes: the resync sees the reverted rows.
pub async fn resync_after_failure(db: &store::Db, router_id: i64) {
    match router::bump_generation(db, router_id).await {
        Ok(generation) => {
            tracing::info!(
                router_id,
                generation,
                "failed push: the router will get its whole state again"
            );
        }
        Err(e) => {
            tracing::error!(router_id, error = %e, "failed push: marking the router for resync failed");
        }
    }
}

/// A revert after a failed push must not hide the push's error: its own
/// failure is only logged.
fn log_revert<T, E: std::fmt::Display>(what: &str, result: Result<T, E>) {
    if let Err(e) = result {
        tracing::error!(error = %e, "reverting {what} after a failed push");
    }
}

/// The API error of a failed element operation.
fn element_error(e: ElementError) -> Error {
    match e {
        ElementError::Unsupported(text) | ElementError::Invalid(text) => Error::invalid(text),
        other => Error::internal(format!("Failed to apply the change on the router: {other}")),
    }
}

/// The configuration the business rules read (`vpc.max.networks`,
/// `network.guest.cidr.limit`, `allow.non.rfc1918.compliant.ips`,
/// `denied.routes`), from the `configuration` table.
pub async fn rules_config(db: &store::Db) -> Result<crate::rules::Config, Error> {
    use store::config;
    let defaults = crate::rules::Config::default();
    let denied = config::value(db, "denied.routes")
        .await?
        .unwrap_or_default();
    Ok(crate::rules::Config {
        vpc_max_networks: config::value_i64(db, "vpc.max.networks")
            .await?
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(defaults.vpc_max_networks),
        guest_cidr_limit: config::value_i64(db, "network.guest.cidr.limit")
            .await?
            .and_then(|v| u8::try_from(v).ok())
            .unwrap_or(defaults.guest_cidr_limit),
        allow_non_rfc1918: config::value_bool(db, "allow.non.rfc1918.compliant.ips")
            .await?
            .unwrap_or(defaults.allow_non_rfc1918),
        denied_routes: crate::rules::route::parse_denied_routes(&denied)?,
    })
}

#[cfg(test)]
mod tests {
    use super::edit_base;

    #[test]
    fn only_a_current_router_gets_edits() {
        assert_eq!(edit_base(7, 7), Some(7));
        assert_eq!(edit_base(6, 7), None, "behind: the whole state goes");
        assert_eq!(edit_base(0, 0), Some(0));
    }
}
