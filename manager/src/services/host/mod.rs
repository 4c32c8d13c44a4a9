//! Hosts and the groups they sit in (CloudStack's zone → pod → cluster →
//! host), one command per file: `createPod`, `listPods`, `addCluster`,
//! `listClusters`, `addHost`, `listHosts`, `updateHost`,
//! `prepareHostForMaintenance`, `cancelHostMaintenance`, `deleteHost`. All
//! are root admins' commands, as in CloudStack. The placement of routers
//! and VMs on hosts is [`planner`] (pure).

mod add;
mod add_cluster;
mod create_pod;
mod delete;
mod ha;
mod list;
mod list_clusters;
mod list_pods;
mod maintenance;
pub mod planner;
mod update;
mod views;

use uuid::Uuid;

use crate::error::Error;
use crate::server::Ctx;
use crate::server::registry::Registry;
use crate::store::{host, pod};

pub use add::{AddHost, local_host_name};
pub use add_cluster::AddCluster;
pub use create_pod::CreatePod;
pub use delete::DeleteHost;
pub use ha::{RouterHa, RouterHaJob, VmHa, VmHaJob};
pub use list::ListHosts;
pub use list_clusters::ListClusters;
pub use list_pods::ListPods;
pub use maintenance::{CancelHostMaintenance, PrepareHostForMaintenance};
pub use update::UpdateHost;
pub(crate) use views::host_views;

/// Registers the host commands.
pub fn register(registry: &mut Registry) {
    registry.sync::<CreatePod>();
    registry.sync::<ListPods>();
    registry.sync::<AddCluster>();
    registry.sync::<ListClusters>();
    registry.sync::<AddHost>();
    registry.sync::<ListHosts>();
    registry.sync::<UpdateHost>();
    registry.job::<PrepareHostForMaintenance>();
    registry.job::<CancelHostMaintenance>();
    registry.sync::<DeleteHost>();
    registry.internal::<RouterHa>();
    registry.internal::<VmHa>();
}

/// The live pod `id`, given as parameter `name`.
pub(crate) async fn pod_by_id(ctx: &Ctx, id: Uuid, name: &str) -> Result<pod::Pod, Error> {
    pod::pod_by_uuid(&ctx.app.db, id)
        .await?
        .filter(|p| p.removed.is_none())
        .ok_or_else(|| Error::invalid_id(name, id))
}

/// The live cluster `id`, given as parameter `name`.
pub(crate) async fn cluster_by_id(ctx: &Ctx, id: Uuid, name: &str) -> Result<pod::Cluster, Error> {
    pod::cluster_by_uuid(&ctx.app.db, id)
        .await?
        .filter(|c| c.removed.is_none())
        .ok_or_else(|| Error::invalid_id(name, id))
}

/// The live host `id`, given as parameter `name`.
pub(crate) async fn host_by_id(ctx: &Ctx, id: Uuid, name: &str) -> Result<host::Host, Error> {
    host::get_by_uuid(&ctx.app.db, id)
        .await?
        .filter(|h| h.removed.is_none())
        .ok_or_else(|| Error::invalid_id(name, id))
}

/// The host row `id` as it is now (after a change).
async fn reloaded(ctx: &Ctx, id: i64) -> Result<host::Host, Error> {
    host::get_by_id(&ctx.app.db, id)
        .await?
        .ok_or_else(|| Error::internal("host vanished"))
}

/// `Enabled` or `Disabled` from `given` (any case), for pods and clusters;
/// CloudStack's text for anything else.
fn grouping_allocation_state(given: Option<&str>) -> Result<&'static str, Error> {
    match given {
        None | Some("") => Ok("Enabled"),
        Some(s) if s.eq_ignore_ascii_case("enabled") => Ok("Enabled"),
        Some(s) if s.eq_ignore_ascii_case("disabled") => Ok("Disabled"),
        Some(s) => Err(Error::invalid(format!(
            "Unable to resolve Allocation State '{s}' to a supported state"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_allocation_states_default_to_enabled_and_refuse_others() {
        assert_eq!(grouping_allocation_state(None).unwrap(), "Enabled");
        assert_eq!(
            grouping_allocation_state(Some("disabled")).unwrap(),
            "Disabled"
        );
        assert_eq!(
            grouping_allocation_state(Some("Maintenance"))
                .unwrap_err()
                .text(),
            "Unable to resolve Allocation State 'Maintenance' to a supported state"
        );
    }
}
