//! Hosts (CloudStack table `host`): the host agents that run routers and VMs,
//! their state as the managers see it (`status`) and as the admin set it
//! (`resource_state`), and which routers and VMs run on each.
//!
//! Kept whole because it is the one repository of `host` and of where routers and VMs run; each
//! function is one statement or transaction.

use sqlx::FromRow;
use uuid::Uuid;

use super::query::{self, Where};
use super::table::Table;
use super::text::Stored;
use super::{Exec, Listed, Page, Result, atomically, new_uuid, now_ms, router, vm};

/// `status`: the host agent answers.
pub const STATUS_UP: &str = "Up";
/// `status`: the host agent stopped answering (not yet Down).
pub const STATUS_DISCONNECTED: &str = "Disconnected";
/// `status`: silent for longer than the timeout.
pub const STATUS_DOWN: &str = "Down";

/// `resource_state`: new routers and VMs may be placed here.
pub const RESOURCE_ENABLED: &str = "Enabled";
/// `resource_state`: no new placement; what runs keeps running.
pub const RESOURCE_DISABLED: &str = "Disabled";
/// `resource_state`: routers are being moved off.
pub const RESOURCE_PREPARE_FOR_MAINTENANCE: &str = "PrepareForMaintenance";
/// `resource_state`: moving routers off failed.
pub const RESOURCE_ERROR_IN_MAINTENANCE: &str = "ErrorInMaintenance";
/// `resource_state`: nothing is placed here; the host may be serviced.
pub const RESOURCE_MAINTENANCE: &str = "Maintenance";

/// Whether `state` is one of the maintenance states CloudStack's
/// `ResourceState.isMaintenanceState` names.
pub fn is_maintenance_state(state: &str) -> bool {
    matches!(
        state,
        RESOURCE_PREPARE_FOR_MAINTENANCE | RESOURCE_ERROR_IN_MAINTENANCE | RESOURCE_MAINTENANCE
    )
}

/// A `host` row.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct Host {
    /// Internal key.
    pub id: i64,
    /// API id.
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    /// Name.
    pub name: String,
    /// `Routing`.
    #[sqlx(rename = "type")]
    pub host_type: String,
    /// `Up`, `Disconnected`, `Down` …
    pub status: String,
    /// `Enabled`, `Disabled`, `PrepareForMaintenance`, `Maintenance` …
    pub resource_state: String,
    /// How managers reach its host agent.
    pub url: String,
    /// The address `listHosts` shows.
    pub private_ip_address: Option<String>,
    /// The zone.
    pub data_center_id: i64,
    /// The pod.
    pub pod_id: i64,
    /// The cluster.
    pub cluster_id: Option<i64>,
    /// The hypervisor its host agent reports.
    pub hypervisor_type: String,
    /// Where other hosts reach its VTEPs.
    pub underlay_address: Option<String>,
    /// The underlay's MTU.
    pub underlay_mtu: Option<i64>,
    /// The host agent's version.
    pub version: Option<String>,
    /// CPUs.
    pub cpus: Option<i64>,
    /// Memory, bytes.
    pub ram: Option<i64>,
    /// Last answer of the host agent (epoch ms).
    pub last_ping: Option<i64>,
    /// When it was found disconnected (epoch ms).
    pub disconnected: Option<i64>,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Removal time (epoch ms), if removed.
    pub removed: Option<i64>,
}

/// A host to record.
#[derive(Clone, Debug, Default)]
pub struct NewHost {
    /// Name.
    pub name: String,
    /// Host agent address.
    pub url: String,
    /// The address `listHosts` shows.
    pub ip_address: Option<String>,
    /// The zone.
    pub zone_id: i64,
    /// The pod.
    pub pod_id: i64,
    /// The cluster.
    pub cluster_id: Option<i64>,
    /// Hypervisor.
    pub hypervisor: String,
    /// `Enabled` or `Disabled`.
    pub resource_state: String,
    /// Underlay address and MTU.
    pub underlay_address: Option<String>,
    /// Underlay MTU.
    pub underlay_mtu: Option<i64>,
    /// Host agent version.
    pub version: Option<String>,
    /// CPUs.
    pub cpus: Option<i64>,
    /// Memory, bytes.
    pub ram: Option<i64>,
}

/// Filters of a host list; every set field must match.
#[derive(Clone, Debug, Default)]
pub struct HostFilter {
    /// Only this one.
    pub uuid: Option<Uuid>,
    /// Exact name.
    pub name: Option<String>,
    /// Zone (internal id).
    pub zone_id: Option<i64>,
    /// Pod (internal id).
    pub pod_id: Option<i64>,
    /// Cluster (internal id).
    pub cluster_id: Option<i64>,
    /// `status`.
    pub status: Option<String>,
    /// `resource_state`.
    pub resource_state: Option<String>,
    /// Hypervisor, any case.
    pub hypervisor: Option<String>,
    /// Substring of the name, case-insensitive.
    pub keyword: Option<String>,
}

const COLUMNS: &str = "id, uuid, name, type, status, resource_state, url, private_ip_address, \
     data_center_id, pod_id, cluster_id, hypervisor_type, underlay_address, underlay_mtu, \
     version, cpus, ram, last_ping, disconnected, created, removed";
const TABLE: Table<Host> = Table::new("host", COLUMNS);

/// Records a host, Up; a live host of the zone with the same url is a
/// `Duplicate`.
pub async fn create<'a>(ex: impl Into<Exec<'a>>, new: NewHost) -> Result<Host> {
    let mut ex = ex.into();
    let now = now_ms();
    let id: i64 = on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "INSERT INTO host (uuid, name, type, status, resource_state, url, \
             private_ip_address, data_center_id, pod_id, cluster_id, hypervisor_type, \
             underlay_address, underlay_mtu, version, cpus, ram, last_ping, created) \
             VALUES ($1, $2, 'Routing', 'Up', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
             $14, $15, $15) RETURNING id",
        )
        .bind(new_uuid())
        .bind(&new.name)
        .bind(&new.resource_state)
        .bind(&new.url)
        .bind(&new.ip_address)
        .bind(new.zone_id)
        .bind(new.pod_id)
        .bind(new.cluster_id)
        .bind(&new.hypervisor)
        .bind(&new.underlay_address)
        .bind(new.underlay_mtu)
        .bind(&new.version)
        .bind(new.cpus)
        .bind(new.ram)
        .bind(now)
        .fetch_one(c)
        .await?
    });
    Ok(get_by_id(ex, id).await?.expect("host just inserted"))
}

/// A host by internal id, removed or not.
pub async fn get_by_id<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<Option<Host>> {
    TABLE.by_id(ex, id).await
}

/// A host by UUID, removed or not.
pub async fn get_by_uuid<'a>(ex: impl Into<Exec<'a>>, uuid: Uuid) -> Result<Option<Host>> {
    TABLE.by_uuid(ex, uuid).await
}

/// The live host of `zone_id` whose host agent is at `url`.
pub async fn live_by_url<'a>(
    ex: impl Into<Exec<'a>>,
    zone_id: i64,
    url: &str,
) -> Result<Option<Host>> {
    let mut w = Where::new();
    w.push("removed IS NULL")
        .eq("data_center_id", zone_id)
        .eq("url", url.to_string());
    TABLE.first(ex, &w).await
}

/// Hosts by internal id, removed or not (list views).
pub async fn by_ids<'a>(ex: impl Into<Exec<'a>>, ids: &[i64]) -> Result<Vec<Host>> {
    TABLE.by_ids(ex, ids).await
}

/// Every live host of a zone (the planner's candidates), by id.
pub async fn live_in_zone<'a>(ex: impl Into<Exec<'a>>, zone_id: i64) -> Result<Vec<Host>> {
    let mut w = Where::new();
    w.push("removed IS NULL").eq("data_center_id", zone_id);
    TABLE.all(ex, &w, "id").await
}

/// Lists live hosts by name.
pub async fn list<'a>(
    ex: impl Into<Exec<'a>>,
    filter: &HostFilter,
    page: Page,
) -> Result<Listed<Host>> {
    let mut w = Where::new();
    w.push("removed IS NULL")
        .eq_opt("uuid", filter.uuid)
        .eq_opt("name", filter.name.clone())
        .eq_opt("data_center_id", filter.zone_id)
        .eq_opt("pod_id", filter.pod_id)
        .eq_opt("cluster_id", filter.cluster_id)
        .keyword(&["name"], filter.keyword.as_deref());
    for (column, value) in [
        ("status", &filter.status),
        ("resource_state", &filter.resource_state),
        ("hypervisor_type", &filter.hypervisor),
    ] {
        if let Some(v) = value {
            let p = w.arg(v.to_lowercase());
            w.push(format!("LOWER({column}) = {p}"));
        }
    }
    TABLE.list(ex, &w, "name, id", page).await
}

/// Sets the resource state of a live host if it is one of `from`; false
/// when it was not (a concurrent change wins, never both).
pub async fn transit_resource_state<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
    from: &[&str],
    to: &str,
) -> Result<bool> {
    let mut w = Where::new();
    w.push("removed IS NULL").eq("id", id);
    w.any_of("resource_state", from);
    let p = w.arg(to);
    let sql = format!("UPDATE host SET resource_state = {p}{}", w.sql());
    let mut ex = ex.into();
    let done = on_db!(&mut ex, c => {
        query::bind_args!(sqlx::query(sqlx::AssertSqlSafe(sql)), w.args())
            .execute(c)
            .await?
            .rows_affected()
    });
    Ok(done == 1)
}

/// What a host agent reported about itself (`Describe`).
#[derive(Clone, Debug, Default)]
pub struct Described {
    /// Hypervisor.
    pub hypervisor: Option<String>,
    /// Underlay address.
    pub underlay_address: Option<String>,
    /// Underlay MTU.
    pub underlay_mtu: Option<i64>,
    /// Version.
    pub version: Option<String>,
    /// CPUs.
    pub cpus: Option<i64>,
    /// Memory, bytes.
    pub ram: Option<i64>,
}

/// Records that the host agent answered now: Up, with what it reported.
pub async fn mark_up<'a>(ex: impl Into<Exec<'a>>, id: i64, d: &Described) -> Result<bool> {
    let mut ex = ex.into();
    let done = on_db!(&mut ex, c => {
        sqlx::query(
            "UPDATE host SET status = 'Up', last_ping = $2, disconnected = NULL, \
             hypervisor_type = COALESCE($3, hypervisor_type), underlay_address = $4, \
             underlay_mtu = $5, version = COALESCE($6, version), cpus = COALESCE($7, cpus), \
             ram = COALESCE($8, ram) WHERE id = $1 AND removed IS NULL",
        )
        .bind(id)
        .bind(now_ms())
        .bind(&d.hypervisor)
        .bind(&d.underlay_address)
        .bind(d.underlay_mtu)
        .bind(&d.version)
        .bind(d.cpus)
        .bind(d.ram)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(done == 1)
}

/// Sets the status of a live host (`Disconnected` also records when).
pub async fn set_status<'a>(ex: impl Into<Exec<'a>>, id: i64, status: &str) -> Result<bool> {
    let mut ex = ex.into();
    let done = on_db!(&mut ex, c => {
        sqlx::query(
            "UPDATE host SET status = $2, \
             disconnected = CASE WHEN $2 = 'Up' THEN NULL ELSE COALESCE(disconnected, $3) END \
             WHERE id = $1 AND removed IS NULL",
        )
        .bind(id)
        .bind(status)
        .bind(now_ms())
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(done == 1)
}

/// Moves a live host's status from `from` to `to` and says whether it did:
/// the update is conditional on the status read, so of two managers that
/// saw the same status only one moves it. Up (also Up to Up, an answer of
/// an Up host) records the answer's time and clears `disconnected`; any
/// other status keeps the first time the host was found silent.
pub async fn transit_status<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
    from: &str,
    to: &str,
) -> Result<bool> {
    let mut ex = ex.into();
    let done = on_db!(&mut ex, c => {
        sqlx::query(
            "UPDATE host SET status = $3, \
             last_ping = CASE WHEN $3 = 'Up' THEN $4 ELSE last_ping END, \
             disconnected = CASE WHEN $3 = 'Up' THEN NULL ELSE COALESCE(disconnected, $4) END \
             WHERE id = $1 AND status = $2 AND removed IS NULL",
        )
        .bind(id)
        .bind(from)
        .bind(to)
        .bind(now_ms())
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(done == 1)
}

/// A VM a lost host ran, as [`stop_vms_on`] left it.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct LostVm {
    pub id: i64,
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    pub account_id: i64,
    pub instance_name: String,
}

/// The VMs running (or starting) on a host whose service offering asks for
/// HA (`ha_enabled`): started on another host when the host is lost.
pub async fn ha_vms_on<'a>(ex: impl Into<Exec<'a>>, host_id: i64) -> Result<Vec<LostVm>> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_as(
            "SELECT v.id, v.uuid, v.account_id, v.instance_name FROM vm_instance v \
             JOIN service_offering o ON o.id = v.service_offering_id \
             WHERE v.host_id = $1 AND v.removed IS NULL AND o.ha_enabled = $2 \
             AND v.state IN ('Starting', 'Running') ORDER BY v.id",
        )
        .bind(host_id)
        .bind(true)
        .fetch_all(c)
        .await?
    }))
}

/// Marks the VMs of a Down host Stopped with no host (CloudStack's VMs of a
/// host that is Down and not restarted by HA); returns them.
pub async fn stop_vms_on<'a>(ex: impl Into<Exec<'a>>, host_id: i64) -> Result<Vec<LostVm>> {
    let mut ex = ex.into();
    let vms: Vec<LostVm> = on_db!(&mut ex, c => {
        sqlx::query_as(
            "SELECT id, uuid, account_id, instance_name FROM vm_instance \
             WHERE host_id = $1 AND removed IS NULL \
             AND state IN ('Starting', 'Running', 'Stopping', 'Stopped') ORDER BY id",
        )
        .bind(host_id)
        .fetch_all(c)
        .await?
    });
    on_db!(&mut ex, c => {
        sqlx::query(
            "UPDATE vm_instance SET host_id = NULL, \
             state = CASE WHEN state IN ('Starting', 'Running', 'Stopping') THEN 'Stopped' \
             ELSE state END \
             WHERE host_id = $1 AND removed IS NULL \
             AND state IN ('Starting', 'Running', 'Stopping', 'Stopped')",
        )
        .bind(host_id)
        .execute(c)
        .await?;
    });
    Ok(vms)
}

/// Removes a host: its live VMs and routers no longer run anywhere (they
/// are Stopped, with no host, as CloudStack's forced `deleteHost` leaves
/// them), in one transaction.
pub async fn remove<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<bool> {
    atomically(ex.into(), move |tx| {
        Box::pin(async move {
            let mut ex = Exec::Tx(tx);
            for sql in [
                "UPDATE vm_instance SET host_id = NULL, \
                 state = CASE WHEN state IN ('Destroyed', 'Expunging') THEN state ELSE 'Stopped' END \
                 WHERE host_id = $1 AND removed IS NULL",
                "UPDATE domain_router SET host_id = NULL, \
                 state = CASE WHEN state = 'Destroyed' THEN state ELSE 'Stopped' END \
                 WHERE host_id = $1 AND removed IS NULL",
            ] {
                on_db!(&mut ex, c => {
                    sqlx::query(sql).bind(id).execute(c).await?;
                });
            }
            let done = on_db!(&mut ex, c => {
                sqlx::query(
                    "UPDATE host SET removed = $2, status = 'Removed' \
                     WHERE id = $1 AND removed IS NULL",
                )
                .bind(id)
                .bind(now_ms())
                .execute(c)
                .await?
                .rows_affected()
            });
            Ok(done == 1)
        })
    })
    .await
}

/// How many live routers and VMs run on each host (routers, VMs), for the
/// hosts asked about; hosts with none are absent.
pub async fn loads<'a>(
    ex: impl Into<Exec<'a>>,
    host_ids: &[i64],
) -> Result<std::collections::HashMap<i64, (i64, i64)>> {
    let mut ex = ex.into();
    let mut out: std::collections::HashMap<i64, (i64, i64)> = Default::default();
    if host_ids.is_empty() {
        return Ok(out);
    }
    for (table, is_router) in [("domain_router", true), ("vm_instance", false)] {
        let mut w = Where::new();
        w.push("removed IS NULL")
            .push("state NOT IN ('Destroyed', 'Expunging', 'Error')");
        w.any_of("host_id", host_ids);
        let sql = format!(
            "SELECT host_id, COUNT(*) FROM {table}{} GROUP BY host_id",
            w.sql()
        );
        let rows: Vec<(i64, i64)> = on_db!(&mut ex, c => {
            query::bind_args!(sqlx::query_as(sqlx::AssertSqlSafe(sql)), w.args())
                .fetch_all(c)
                .await?
        });
        for (host, n) in rows {
            let slot = out.entry(host).or_default();
            if is_router {
                slot.0 = n;
            } else {
                slot.1 = n;
            }
        }
    }
    Ok(out)
}

/// The VPC of every live router on a host of `zone_id`: (host, VPC id), the
/// planner's view of how VPCs are spread.
pub async fn router_vpcs_in_zone<'a>(
    ex: impl Into<Exec<'a>>,
    zone_id: i64,
) -> Result<Vec<(i64, i64)>> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_as(
            "SELECT host_id, vpc_id FROM domain_router WHERE zone_id = $1 \
             AND removed IS NULL AND host_id IS NOT NULL AND vpc_id IS NOT NULL \
             AND state <> 'Destroyed'",
        )
        .bind(zone_id)
        .fetch_all(c)
        .await?
    }))
}

/// The distinct hypervisors of the live hosts (of one zone when given).
pub async fn hypervisors<'a>(ex: impl Into<Exec<'a>>, zone_id: Option<i64>) -> Result<Vec<String>> {
    let mut w = Where::new();
    w.push("removed IS NULL").eq_opt("data_center_id", zone_id);
    let sql = format!(
        "SELECT DISTINCT hypervisor_type FROM host{} ORDER BY hypervisor_type",
        w.sql()
    );
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        query::bind_args!(sqlx::query_scalar(sqlx::AssertSqlSafe(sql)), w.args())
            .fetch_all(c)
            .await?
    }))
}

/// The live routers and VMs recorded on host `host_id` (ids: routers,
/// VMs), whatever their state but Destroyed, Expunging or Error, as
/// [`loads`] counts them.
pub async fn residents<'a>(ex: impl Into<Exec<'a>>, host_id: i64) -> Result<(Vec<i64>, Vec<i64>)> {
    let mut ex = ex.into();
    let mut out = (Vec::new(), Vec::new());
    for (table, is_router) in [("domain_router", true), ("vm_instance", false)] {
        let sql = format!(
            "SELECT id FROM {table} WHERE host_id = $1 AND removed IS NULL \
             AND state NOT IN ('Destroyed', 'Expunging', 'Error') ORDER BY id"
        );
        let ids: Vec<i64> = on_db!(&mut ex, c => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(host_id)
                .fetch_all(c)
                .await?
        });
        if is_router {
            out.0 = ids;
        } else {
            out.1 = ids;
        }
    }
    Ok(out)
}

/// Places a router on a host (or none).
pub async fn set_router_host<'a>(
    ex: impl Into<Exec<'a>>,
    router_id: i64,
    host_id: Option<i64>,
) -> Result<bool> {
    router::TABLE
        .set_live(ex, router_id, &[("host_id", host_id.into())])
        .await
}

/// Places a VM on a host (or none).
pub async fn set_vm_host<'a>(
    ex: impl Into<Exec<'a>>,
    vm_id: i64,
    host_id: Option<i64>,
) -> Result<bool> {
    vm::TABLE
        .set_live(ex, vm_id, &[("host_id", host_id.into())])
        .await
}

/// Gives every live router and VM of `zone_id` that has no host yet (a
/// database from before hosts existed) to `host_id`; how many of each.
pub async fn adopt_unplaced<'a>(
    ex: impl Into<Exec<'a>>,
    zone_id: i64,
    host_id: i64,
) -> Result<(u64, u64)> {
    atomically(ex.into(), move |tx| {
        Box::pin(async move {
            let mut ex = Exec::Tx(tx);
            let routers = on_db!(&mut ex, c => {
                sqlx::query(
                    "UPDATE domain_router SET host_id = $2 \
                     WHERE zone_id = $1 AND host_id IS NULL AND removed IS NULL",
                )
                .bind(zone_id)
                .bind(host_id)
                .execute(c)
                .await?
                .rows_affected()
            });
            let vms = on_db!(&mut ex, c => {
                sqlx::query(
                    "UPDATE vm_instance SET host_id = $2 \
                     WHERE zone_id = $1 AND host_id IS NULL AND removed IS NULL",
                )
                .bind(zone_id)
                .bind(host_id)
                .execute(c)
                .await?
                .rows_affected()
            });
            Ok((routers, vms))
        })
    })
    .await
}

/// Renames a live host.
pub async fn rename<'a>(ex: impl Into<Exec<'a>>, id: i64, name: &str) -> Result<bool> {
    TABLE.set_live(ex, id, &[("name", name.into())]).await
}

/// One VXLAN segment member for the flood lists: a live NIC of a router or
/// VM that runs (or starts) on a live host, with that host's URL and
/// underlay address.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SegmentMember {
    pub host_id: i64,
    pub url: String,
    pub underlay_address: Option<String>,
    pub broadcast_uri: String,
    #[sqlx(try_from = "Stored")]
    pub zone_uuid: Uuid,
}

/// Every member of a VXLAN segment (see [`SegmentMember`]). A router in
/// Error counts: the router monitor marks it so when its agent does not
/// answer (e.g. reached through a host agent that died), while its data
/// plane may well forward; dropping its host from the others' flood lists
/// would cut the traffic the control plane's loss must not disturb, and an
/// extra flood target costs only copies.
pub async fn vxlan_members<'a>(ex: impl Into<Exec<'a>>) -> Result<Vec<SegmentMember>> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_as(
            "SELECT h.id AS host_id, h.url, h.underlay_address, n.broadcast_uri, \
             z.uuid AS zone_uuid \
             FROM nics c \
             JOIN networks n ON n.id = c.network_id \
             LEFT JOIN domain_router r ON r.id = c.router_id \
             LEFT JOIN vm_instance v ON v.id = c.vm_id \
             JOIN host h ON h.id = COALESCE(r.host_id, v.host_id) \
             JOIN data_center z ON z.id = h.data_center_id \
             WHERE c.removed IS NULL AND h.removed IS NULL \
             AND n.broadcast_uri LIKE 'vxlan://%' \
             AND ((r.id IS NOT NULL AND r.removed IS NULL \
                   AND r.state IN ('Starting', 'Running', 'Error')) \
               OR (v.id IS NOT NULL AND v.removed IS NULL \
                   AND v.state IN ('Starting', 'Running'))) \
             ORDER BY h.id, n.broadcast_uri",
        )
        .fetch_all(c)
        .await?
    }))
}
