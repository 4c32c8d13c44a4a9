//! Pods (CloudStack table `host_pod_ref`) and clusters (`cluster`): the
//! groups a zone's hosts sit in (zone → pod → cluster → host).

use sqlx::FromRow;
use uuid::Uuid;

use super::query::Where;
use super::table::Table;
use super::text::Stored;
use super::{Exec, Listed, Page, Result, new_uuid, now_ms};

/// A `host_pod_ref` row.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct Pod {
    /// Internal key.
    pub id: i64,
    /// API id.
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    /// Name, unique among the live pods of its zone.
    pub name: String,
    /// The zone.
    pub data_center_id: i64,
    /// Gateway of the pod's management network.
    pub gateway: String,
    /// Network address of the pod's management network.
    pub cidr_address: String,
    /// Prefix length of the pod's management network.
    pub cidr_size: i64,
    /// First address of the reserved system range.
    pub start_ip: String,
    /// Last address of the reserved system range, if given.
    pub end_ip: Option<String>,
    /// `Enabled` or `Disabled`.
    pub allocation_state: String,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Removal time (epoch ms), if removed.
    pub removed: Option<i64>,
}

/// A pod to create.
#[derive(Clone, Debug)]
pub struct NewPod {
    /// Name.
    pub name: String,
    /// The zone.
    pub zone_id: i64,
    /// Gateway.
    pub gateway: String,
    /// Network address (the gateway with the netmask applied).
    pub cidr_address: String,
    /// Prefix length.
    pub cidr_size: i64,
    /// Start of the reserved range.
    pub start_ip: String,
    /// End of the reserved range.
    pub end_ip: Option<String>,
    /// `Enabled` or `Disabled`.
    pub allocation_state: String,
}

/// A `cluster` row.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct Cluster {
    /// Internal key.
    pub id: i64,
    /// API id.
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    /// Name, unique among the live clusters of its pod.
    pub name: String,
    /// The pod.
    pub pod_id: i64,
    /// The zone.
    pub data_center_id: i64,
    /// The hypervisor of its hosts.
    pub hypervisor_type: String,
    /// `CloudManaged` or `ExternalManaged`.
    pub cluster_type: String,
    /// `Enabled` or `Disabled`.
    pub allocation_state: String,
    /// `Managed` (the only state this manager knows).
    pub managed_state: String,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Removal time (epoch ms), if removed.
    pub removed: Option<i64>,
}

/// A cluster to create.
#[derive(Clone, Debug)]
pub struct NewCluster {
    /// Name.
    pub name: String,
    /// The pod.
    pub pod_id: i64,
    /// The zone.
    pub zone_id: i64,
    /// Hypervisor.
    pub hypervisor: String,
    /// `CloudManaged` or `ExternalManaged`.
    pub cluster_type: String,
    /// `Enabled` or `Disabled`.
    pub allocation_state: String,
}

/// Filters of a pod or cluster list; every set field must match.
#[derive(Clone, Debug, Default)]
pub struct GroupFilter {
    /// Only this one (API id).
    pub uuid: Option<Uuid>,
    /// Exact name.
    pub name: Option<String>,
    /// Only in this zone (internal id).
    pub zone_id: Option<i64>,
    /// Only in this pod (clusters; internal id).
    pub pod_id: Option<i64>,
    /// Only this allocation state.
    pub allocation_state: Option<String>,
    /// Only of this hypervisor (clusters).
    pub hypervisor: Option<String>,
    /// Only of this type (clusters).
    pub cluster_type: Option<String>,
    /// Substring of the name, case-insensitive.
    pub keyword: Option<String>,
}

const POD_COLUMNS: &str = "id, uuid, name, data_center_id, gateway, cidr_address, cidr_size, \
     start_ip, end_ip, allocation_state, created, removed";
const CLUSTER_COLUMNS: &str = "id, uuid, name, pod_id, data_center_id, hypervisor_type, \
     cluster_type, allocation_state, managed_state, created, removed";
const PODS: Table<Pod> = Table::new("host_pod_ref", POD_COLUMNS);
const CLUSTERS: Table<Cluster> = Table::new("cluster", CLUSTER_COLUMNS);

/// Creates a pod; a live pod of the same name in the zone is a `Duplicate`.
pub async fn create_pod<'a>(ex: impl Into<Exec<'a>>, new: NewPod) -> Result<Pod> {
    let mut ex = ex.into();
    let id: i64 = on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "INSERT INTO host_pod_ref (uuid, name, data_center_id, gateway, cidr_address, \
             cidr_size, start_ip, end_ip, allocation_state, created) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(new_uuid())
        .bind(&new.name)
        .bind(new.zone_id)
        .bind(&new.gateway)
        .bind(&new.cidr_address)
        .bind(new.cidr_size)
        .bind(&new.start_ip)
        .bind(&new.end_ip)
        .bind(&new.allocation_state)
        .bind(now_ms())
        .fetch_one(c)
        .await?
    });
    Ok(pod_by_id(ex, id).await?.expect("pod just inserted"))
}

/// A pod by internal id, removed or not.
pub async fn pod_by_id<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<Option<Pod>> {
    PODS.by_id(ex, id).await
}

/// A pod by UUID, removed or not.
pub async fn pod_by_uuid<'a>(ex: impl Into<Exec<'a>>, uuid: Uuid) -> Result<Option<Pod>> {
    PODS.by_uuid(ex, uuid).await
}

/// Pods by internal id, removed or not (list views).
pub async fn pods_by_ids<'a>(ex: impl Into<Exec<'a>>, ids: &[i64]) -> Result<Vec<Pod>> {
    PODS.by_ids(ex, ids).await
}

/// Lists live pods by name.
pub async fn list_pods<'a>(
    ex: impl Into<Exec<'a>>,
    filter: &GroupFilter,
    page: Page,
) -> Result<Listed<Pod>> {
    let mut w = Where::new();
    w.push("removed IS NULL")
        .eq_opt("uuid", filter.uuid)
        .eq_opt("name", filter.name.clone())
        .eq_opt("data_center_id", filter.zone_id)
        .eq_opt("allocation_state", filter.allocation_state.clone())
        .keyword(&["name"], filter.keyword.as_deref());
    PODS.list(ex, &w, "name, id", page).await
}

/// Creates a cluster; a live cluster of the same name in the pod is a
/// `Duplicate`.
pub async fn create_cluster<'a>(ex: impl Into<Exec<'a>>, new: NewCluster) -> Result<Cluster> {
    let mut ex = ex.into();
    let id: i64 = on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "INSERT INTO cluster (uuid, name, pod_id, data_center_id, hypervisor_type, \
             cluster_type, allocation_state, created) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(new_uuid())
        .bind(&new.name)
        .bind(new.pod_id)
        .bind(new.zone_id)
        .bind(&new.hypervisor)
        .bind(&new.cluster_type)
        .bind(&new.allocation_state)
        .bind(now_ms())
        .fetch_one(c)
        .await?
    });
    Ok(cluster_by_id(ex, id).await?.expect("cluster just inserted"))
}

/// A cluster by internal id, removed or not.
pub async fn cluster_by_id<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<Option<Cluster>> {
    CLUSTERS.by_id(ex, id).await
}

/// A cluster by UUID, removed or not.
pub async fn cluster_by_uuid<'a>(ex: impl Into<Exec<'a>>, uuid: Uuid) -> Result<Option<Cluster>> {
    CLUSTERS.by_uuid(ex, uuid).await
}

/// The live cluster `name` of a pod.
pub async fn cluster_by_name<'a>(
    ex: impl Into<Exec<'a>>,
    pod_id: i64,
    name: &str,
) -> Result<Option<Cluster>> {
    let mut w = Where::new();
    w.push("removed IS NULL")
        .eq("pod_id", pod_id)
        .eq("name", name.to_string());
    CLUSTERS.first(ex, &w).await
}

/// Clusters by internal id, removed or not (list views).
pub async fn clusters_by_ids<'a>(ex: impl Into<Exec<'a>>, ids: &[i64]) -> Result<Vec<Cluster>> {
    CLUSTERS.by_ids(ex, ids).await
}

/// Lists live clusters by name.
pub async fn list_clusters<'a>(
    ex: impl Into<Exec<'a>>,
    filter: &GroupFilter,
    page: Page,
) -> Result<Listed<Cluster>> {
    let mut w = Where::new();
    w.push("removed IS NULL")
        .eq_opt("uuid", filter.uuid)
        .eq_opt("name", filter.name.clone())
        .eq_opt("data_center_id", filter.zone_id)
        .eq_opt("pod_id", filter.pod_id)
        .eq_opt("cluster_type", filter.cluster_type.clone())
        .eq_opt("allocation_state", filter.allocation_state.clone())
        .keyword(&["name"], filter.keyword.as_deref());
    if let Some(h) = &filter.hypervisor {
        let p = w.arg(h.to_lowercase());
        w.push(format!("LOWER(hypervisor_type) = {p}"));
    }
    CLUSTERS.list(ex, &w, "name, id", page).await
}
