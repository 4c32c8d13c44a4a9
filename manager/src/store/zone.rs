//! Zones (CloudStack table `data_center`), their physical networks and the traffic
//! types each physical network carries.
//!
//! Kept whole because it is the repository of the zone's own tables: zones, their physical networks
//! and those networks' traffic types.

use sqlx::FromRow;

use super::query::{self, Where};
use super::table::Table;
use super::text::Stored;
use super::{Exec, Listed, OrNotFound, Page, Result, StoreError, atomically, new_uuid, now_ms};
use uuid::Uuid;

/// A `data_center` row.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct Zone {
    /// Internal key.
    pub id: i64,
    /// API id.
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    /// Name, unique among live zones.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// First public DNS server.
    pub dns1: Option<String>,
    /// Second public DNS server.
    pub dns2: Option<String>,
    /// First internal DNS server.
    pub internal_dns1: Option<String>,
    /// Second internal DNS server.
    pub internal_dns2: Option<String>,
    /// Default guest CIDR.
    pub guest_cidr: Option<String>,
    /// `Advanced` (VPCs need it) or `Basic`.
    pub network_type: String,
    /// `Enabled` or `Disabled`.
    pub allocation_state: String,
    /// Dedicated to this domain, if any.
    pub domain_id: Option<i64>,
    /// DNS domain of the zone's networks.
    pub network_domain: Option<String>,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Removal time (epoch ms), if removed.
    pub removed: Option<i64>,
}

/// A zone to create.
#[derive(Clone, Debug, Default)]
pub struct NewZone {
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// First public DNS server.
    pub dns1: Option<String>,
    /// Second public DNS server.
    pub dns2: Option<String>,
    /// First internal DNS server.
    pub internal_dns1: Option<String>,
    /// Second internal DNS server.
    pub internal_dns2: Option<String>,
    /// Default guest CIDR.
    pub guest_cidr: Option<String>,
    /// Dedicated to this domain.
    pub domain_id: Option<i64>,
    /// DNS domain of the zone's networks.
    pub network_domain: Option<String>,
}

/// Filters of a zone list; every set field must match.
#[derive(Clone, Debug, Default)]
pub struct ZoneFilter {
    /// Only these zones (API ids).
    pub uuids: Option<Vec<Uuid>>,
    /// Exact name.
    pub name: Option<String>,
    /// Substring of the name, case-insensitive.
    pub keyword: Option<String>,
    /// Only this allocation state.
    pub allocation_state: Option<String>,
}

/// A `physical_network` row.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct PhysicalNetwork {
    /// Internal key.
    pub id: i64,
    /// API id.
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    /// The zone.
    pub zone_id: i64,
    /// Name.
    pub name: String,
    /// `VLAN` or `VXLAN`: picks the guest network guru.
    pub isolation_method: String,
    /// Guest VLAN/VNI range, e.g. `100-199` or `100-199,300-399`.
    pub vnet_range: Option<String>,
    /// `Enabled` or `Disabled`.
    pub state: String,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Removal time (epoch ms), if removed.
    pub removed: Option<i64>,
}

/// One traffic type a physical network carries.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct TrafficType {
    /// The physical network.
    pub physical_network_id: i64,
    /// `Guest`, `Public` or `Management`.
    pub traffic_type: String,
    /// Host-side label (bridge or device name).
    pub label: Option<String>,
}

const ZONE_COLUMNS: &str = "id, uuid, name, description, dns1, dns2, internal_dns1, \
     internal_dns2, guest_cidr, network_type, allocation_state, domain_id, network_domain, \
     created, removed";
const PHYSNET_COLUMNS: &str =
    "id, uuid, zone_id, name, isolation_method, vnet_range, state, created, removed";
const TABLE: Table<Zone> = Table::new("data_center", ZONE_COLUMNS);
const PHYSNETS: Table<PhysicalNetwork> = Table::new("physical_network", PHYSNET_COLUMNS);

/// Creates an Advanced zone, Enabled.
pub async fn create<'a>(ex: impl Into<Exec<'a>>, new: NewZone) -> Result<Zone> {
    let mut ex = ex.into();
    let id: i64 = on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "INSERT INTO data_center (uuid, name, description, dns1, dns2, internal_dns1, \
             internal_dns2, guest_cidr, network_type, allocation_state, domain_id, \
             network_domain, created) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'Advanced', 'Enabled', $9, $10, $11) \
             RETURNING id",
        )
        .bind(new_uuid())
        .bind(&new.name)
        .bind(&new.description)
        .bind(&new.dns1)
        .bind(&new.dns2)
        .bind(&new.internal_dns1)
        .bind(&new.internal_dns2)
        .bind(&new.guest_cidr)
        .bind(new.domain_id)
        .bind(&new.network_domain)
        .bind(now_ms())
        .fetch_one(c)
        .await?
    });
    Ok(get_by_id(ex, id).await?.expect("zone just inserted"))
}

/// A zone by internal id, removed or not.
pub async fn get_by_id<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<Option<Zone>> {
    TABLE.by_id(ex, id).await
}

/// A zone by UUID, removed or not.
pub async fn get_by_uuid<'a>(ex: impl Into<Exec<'a>>, uuid: Uuid) -> Result<Option<Zone>> {
    TABLE.by_uuid(ex, uuid).await
}

/// Zones by internal id, removed or not, in one statement (list views).
pub async fn by_ids<'a>(ex: impl Into<Exec<'a>>, ids: &[i64]) -> Result<Vec<Zone>> {
    TABLE.by_ids(ex, ids).await
}

/// Lists live zones by name.
pub async fn list<'a>(
    ex: impl Into<Exec<'a>>,
    filter: &ZoneFilter,
    page: Page,
) -> Result<Listed<Zone>> {
    let mut w = Where::new();
    w.push("removed IS NULL")
        .eq_opt("name", filter.name.clone())
        .eq_opt("allocation_state", filter.allocation_state.clone())
        .keyword(&["name"], filter.keyword.as_deref())
        .any_of_opt("uuid", filter.uuids.as_deref());
    TABLE.list(ex, &w, "name, id", page).await
}

/// Enables or disables a live zone.
pub async fn set_allocation_state<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
    state: &str,
) -> Result<bool> {
    TABLE
        .set_live(ex, id, &[("allocation_state", state.into())])
        .await
}

/// Marks a zone removed.
pub async fn remove<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<bool> {
    TABLE.remove(ex, id).await
}

/// Creates a physical network in a live zone, with the traffic types it carries
/// (`(traffic type, label)`), atomically.
pub async fn create_physical_network<'a>(
    ex: impl Into<Exec<'a>>,
    zone_id: i64,
    name: &str,
    isolation_method: &str,
    vnet_range: Option<&str>,
    traffic_types: &[(&str, Option<&str>)],
) -> Result<PhysicalNetwork> {
    let name = name.to_string();
    let isolation_method = isolation_method.to_string();
    let vnet_range = vnet_range.map(str::to_string);
    let traffic: Vec<(String, Option<String>)> = traffic_types
        .iter()
        .map(|(t, l)| (t.to_string(), l.map(str::to_string)))
        .collect();
    atomically(ex.into(), move |tx| {
        Box::pin(async move {
            let mut ex = Exec::Tx(tx);
            let id: Option<i64> = on_db!(&mut ex, c => {
                sqlx::query_scalar(
                    "INSERT INTO physical_network (uuid, zone_id, name, isolation_method, \
                     vnet_range, state, created) \
                     SELECT $1, z.id, $3, $4, $5, 'Enabled', $6 FROM data_center z \
                     WHERE z.id = $2 AND z.removed IS NULL RETURNING id",
                )
                .bind(new_uuid())
                .bind(zone_id)
                .bind(&name)
                .bind(&isolation_method)
                .bind(&vnet_range)
                .bind(now_ms())
                .fetch_optional(c)
                .await?
            });
            let id = id.or_not_found("zone", zone_id)?;
            for (traffic_type, label) in &traffic {
                on_db!(&mut ex, c => {
                    sqlx::query(
                        "INSERT INTO physical_network_traffic_types \
                         (physical_network_id, traffic_type, label) VALUES ($1, $2, $3)",
                    )
                    .bind(id)
                    .bind(traffic_type)
                    .bind(label)
                    .execute(c)
                    .await?;
                });
            }
            Ok(physical_network_by_id(ex, id)
                .await?
                .expect("physical network just inserted"))
        })
    })
    .await
}

/// A physical network by internal id, removed or not.
pub async fn physical_network_by_id<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
) -> Result<Option<PhysicalNetwork>> {
    PHYSNETS.by_id(ex, id).await
}

/// Physical networks by internal id, removed or not, in one statement (list
/// views).
pub async fn physical_networks_by_ids<'a>(
    ex: impl Into<Exec<'a>>,
    ids: &[i64],
) -> Result<Vec<PhysicalNetwork>> {
    PHYSNETS.by_ids(ex, ids).await
}

/// The live physical networks of a zone.
pub async fn physical_networks<'a>(
    ex: impl Into<Exec<'a>>,
    zone_id: i64,
) -> Result<Vec<PhysicalNetwork>> {
    let mut w = Where::new();
    w.push("removed IS NULL").eq("zone_id", zone_id);
    PHYSNETS.all(ex, &w, "id").await
}

/// The live physical network of a zone that carries `traffic_type` (the first one if
/// several do).
pub async fn physical_network_for_traffic<'a>(
    ex: impl Into<Exec<'a>>,
    zone_id: i64,
    traffic_type: &str,
) -> Result<Option<PhysicalNetwork>> {
    let mut w = Where::new();
    w.push("p.removed IS NULL")
        .eq("p.zone_id", zone_id)
        .eq("t.traffic_type", traffic_type);
    let sql = format!(
        "SELECT p.id, p.uuid, p.zone_id, p.name, p.isolation_method, p.vnet_range, p.state, \
         p.created, p.removed FROM physical_network p \
         JOIN physical_network_traffic_types t ON t.physical_network_id = p.id{} ORDER BY p.id",
        w.sql()
    );
    Ok(query::fetch_all(&mut ex.into(), sql, w.args())
        .await?
        .into_iter()
        .next())
}

/// The traffic types of a physical network.
pub async fn traffic_types<'a>(
    ex: impl Into<Exec<'a>>,
    physical_network_id: i64,
) -> Result<Vec<TrafficType>> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_as(
            "SELECT physical_network_id, traffic_type, label FROM physical_network_traffic_types \
             WHERE physical_network_id = $1 ORDER BY id",
        )
        .bind(physical_network_id)
        .fetch_all(c)
        .await?
    }))
}

/// Filters of a physical network list; every set field must match.
#[derive(Clone, Debug, Default)]
pub struct PhysicalNetworkFilter {
    /// Only this physical network (API id).
    pub uuid: Option<Uuid>,
    /// Only the networks of this zone.
    pub zone_id: Option<i64>,
    /// Exact name.
    pub name: Option<String>,
    /// Substring of the name, case-insensitive.
    pub keyword: Option<String>,
}

/// A physical network by UUID, removed or not.
pub async fn physical_network_by_uuid<'a>(
    ex: impl Into<Exec<'a>>,
    uuid: Uuid,
) -> Result<Option<PhysicalNetwork>> {
    PHYSNETS.by_uuid(ex, uuid).await
}

/// Lists live physical networks, by zone then creation.
pub async fn list_physical_networks<'a>(
    ex: impl Into<Exec<'a>>,
    filter: &PhysicalNetworkFilter,
    page: Page,
) -> Result<Listed<PhysicalNetwork>> {
    let mut w = Where::new();
    w.push("removed IS NULL")
        .eq_opt("uuid", filter.uuid)
        .eq_opt("zone_id", filter.zone_id)
        .eq_opt("name", filter.name.clone())
        .keyword(&["name"], filter.keyword.as_deref());
    PHYSNETS.list(ex, &w, "zone_id, id", page).await
}

/// Changes a live physical network's guest VLAN/VNI range or state (None keeps a
/// field); false if it does not exist or was removed.
pub async fn update_physical_network<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
    vnet_range: Option<&str>,
    state: Option<&str>,
) -> Result<bool> {
    let values = [("vnet_range", vnet_range.into()), ("state", state.into())];
    PHYSNETS.update_live(ex, id, &values).await
}

/// Marks a physical network removed. Refused (Conflict) while a live public IP range
/// is on it.
pub async fn remove_physical_network<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<bool> {
    atomically(ex.into(), move |tx| {
        Box::pin(async move {
            let mut ex = Exec::Tx(tx);
            let ranges: i64 = on_db!(&mut ex, c => {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM vlan WHERE physical_network_id = $1 AND removed IS NULL",
                )
                .bind(id)
                .fetch_one(c)
                .await?
            });
            if ranges > 0 {
                return Err(StoreError::Conflict(format!(
                    "the physical network still has {ranges} public IP ranges"
                )));
            }
            PHYSNETS.remove(ex, id).await
        })
    })
    .await
}

/// Adds a traffic type to a live physical network. Duplicate when the network carries
/// that type already; NotFound when the network does not exist or was removed.
pub async fn add_traffic_type<'a>(
    ex: impl Into<Exec<'a>>,
    physical_network_id: i64,
    traffic_type: &str,
    label: Option<&str>,
) -> Result<TrafficType> {
    let mut ex = ex.into();
    let added: Option<TrafficType> = on_db!(&mut ex, c => {
        sqlx::query_as(
            "INSERT INTO physical_network_traffic_types (physical_network_id, traffic_type, label) \
             SELECT p.id, $2, $3 FROM physical_network p WHERE p.id = $1 AND p.removed IS NULL \
             RETURNING physical_network_id, traffic_type, label",
        )
        .bind(physical_network_id)
        .bind(traffic_type)
        .bind(label)
        .fetch_optional(c)
        .await?
    });
    added.or_not_found("physical network", physical_network_id)
}
