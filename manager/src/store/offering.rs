//! VPC offerings and network (tier) offerings, each with its (service, provider) map
//! (CloudStack tables `vpc_offerings` + `vpc_offering_service_map`, `network_offerings`
//! + `ntwk_offering_service_map`; reference/cloudstack.md §2.2, §2.4).
//!
//! Kept whole because VPC and network offerings are the two halves of one offering model and share
//! its service maps and filters.

use sqlx::FromRow;

use super::query::{self, Arg, Where};
use super::table::Table;
use super::text::Stored;
use super::{Exec, Listed, Page, Result, atomically, new_uuid, now_ms};
use uuid::Uuid;

crate::text_enum! {
    /// An offering's state (column `state`).
    pub enum State {
        /// `state` of an offering that can be used.
        Enabled = "Enabled",
        /// `state` of an offering that cannot be used for new VPCs/tiers.
        Disabled = "Disabled",
    }
}

/// `state` of an offering that can be used.
pub const STATE_ENABLED: State = State::Enabled;
/// `state` of an offering that cannot be used for new VPCs/tiers.
pub const STATE_DISABLED: State = State::Disabled;
/// The provider of every VPC service the virtual router gives.
pub const PROVIDER_VPC_VIRTUAL_ROUTER: &str = "VpcVirtualRouter";

/// One service of an offering and the provider giving it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, FromRow)]
pub struct ServiceProvider {
    /// `Dhcp`, `SourceNat`, `NetworkACL` …
    pub service: String,
    /// `VpcVirtualRouter` …
    pub provider: String,
}

impl ServiceProvider {
    /// A (service, provider) pair.
    pub fn new(service: &str, provider: &str) -> ServiceProvider {
        ServiceProvider {
            service: service.to_string(),
            provider: provider.to_string(),
        }
    }
}

/// A `vpc_offerings` row.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct VpcOffering {
    /// Internal key.
    pub id: i64,
    /// API id.
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    /// Display name.
    pub name: String,
    /// Stable name of a built-in offering; None for offerings created through the API.
    pub unique_name: Option<String>,
    /// Description.
    pub display_text: String,
    /// [`STATE_ENABLED`] or [`STATE_DISABLED`].
    #[sqlx(try_from = "String")]
    pub state: State,
    /// Whether this is the default offering.
    pub is_default: bool,
    /// DistributedRouter capability.
    pub distributed_router: bool,
    /// RedundantRouter capability.
    pub redundant_router: bool,
    /// `NATTED` or `ROUTED`.
    pub network_mode: String,
    /// `ipv4` or `dualstack`.
    pub internet_protocol: String,
    /// Order in lists (updateVPCOffering `sortkey`).
    pub sort_key: i64,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Removal time (epoch ms), if removed.
    pub removed: Option<i64>,
}

/// A VPC offering to create.
#[derive(Clone, Debug)]
pub struct NewVpcOffering {
    /// Display name.
    pub name: String,
    /// Stable name (built-in offerings only).
    pub unique_name: Option<String>,
    /// Description.
    pub display_text: String,
    /// Initial state.
    pub state: String,
    /// Whether it is the default offering.
    pub is_default: bool,
    /// DistributedRouter capability.
    pub distributed_router: bool,
    /// RedundantRouter capability.
    pub redundant_router: bool,
    /// `NATTED` or `ROUTED`.
    pub network_mode: String,
    /// `ipv4` or `dualstack`.
    pub internet_protocol: String,
    /// Its services.
    pub services: Vec<ServiceProvider>,
}

/// A `network_offerings` row.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct NetworkOffering {
    /// Internal key.
    pub id: i64,
    /// API id.
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    /// Display name.
    pub name: String,
    /// Stable name of a built-in offering.
    pub unique_name: Option<String>,
    /// Description.
    pub display_text: String,
    /// `Guest`.
    pub traffic_type: String,
    /// `Isolated` (VPC tiers are isolated networks).
    pub guest_type: String,
    /// [`STATE_ENABLED`] or [`STATE_DISABLED`].
    #[sqlx(try_from = "String")]
    pub state: State,
    /// Whether it is a default offering.
    pub is_default: bool,
    /// Usable for VPC tiers.
    pub for_vpc: bool,
    /// Whether the creator picks the VLAN.
    pub specify_vlan: bool,
    /// Conserve mode.
    pub conserve_mode: bool,
    /// Networks stay implemented without VMs.
    pub is_persistent: bool,
    /// `Optional` or `Required`.
    pub availability: String,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Removal time (epoch ms), if removed.
    pub removed: Option<i64>,
}

/// A network offering to create.
#[derive(Clone, Debug)]
pub struct NewNetworkOffering {
    /// Display name.
    pub name: String,
    /// Stable name (built-in offerings only).
    pub unique_name: Option<String>,
    /// Description.
    pub display_text: String,
    /// Initial state.
    pub state: String,
    /// Whether it is a default offering.
    pub is_default: bool,
    /// Usable for VPC tiers.
    pub for_vpc: bool,
    /// Networks stay implemented without VMs.
    pub is_persistent: bool,
    /// Its services.
    pub services: Vec<ServiceProvider>,
}

/// Filters of an offering list; every set field must match.
#[derive(Clone, Debug, Default)]
pub struct OfferingFilter {
    /// Only this offering (API id).
    pub uuid: Option<Uuid>,
    /// Exact name.
    pub name: Option<String>,
    /// Substring of name or display text, case-insensitive.
    pub keyword: Option<String>,
    /// Only this state.
    pub state: Option<String>,
    /// Only default (or only non-default) offerings.
    pub is_default: Option<bool>,
    /// Network offerings only: usable (or not) for VPC tiers.
    pub for_vpc: Option<bool>,
    /// VPC offerings only: those an account of the domain with this path
    /// may use (restricted to no domain, or to it or a domain above it).
    pub usable_in_domain: Option<String>,
    /// VPC offerings only: those usable in this zone (restricted to no
    /// zone, or to it among others).
    pub zone_id: Option<i64>,
}

/// A domain or zone a VPC offering is restricted to.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct ScopeEntry {
    /// Internal key of the domain or zone.
    pub id: i64,
    /// Its API id.
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    /// Its name.
    pub name: String,
    /// A domain's path (`/a/b/`); empty for a zone.
    pub path: String,
}

/// The domains a VPC offering is restricted to, by id (none: every domain).
pub async fn vpc_offering_domains<'a>(
    ex: impl Into<Exec<'a>>,
    offering_id: i64,
) -> Result<Vec<ScopeEntry>> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_as(
            "SELECT d.id, d.uuid, d.name, d.path FROM vpc_offering_domain o \
             JOIN domain d ON d.id = o.domain_id WHERE o.vpc_offering_id = $1 ORDER BY d.id",
        )
        .bind(offering_id)
        .fetch_all(c)
        .await?
    }))
}

/// The zones a VPC offering is restricted to, by id (none: every zone).
pub async fn vpc_offering_zones<'a>(
    ex: impl Into<Exec<'a>>,
    offering_id: i64,
) -> Result<Vec<ScopeEntry>> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_as(
            "SELECT z.id, z.uuid, z.name, '' AS path FROM vpc_offering_zone o \
             JOIN data_center z ON z.id = o.zone_id WHERE o.vpc_offering_id = $1 ORDER BY z.id",
        )
        .bind(offering_id)
        .fetch_all(c)
        .await?
    }))
}

/// Restricts a VPC offering to `domain_ids` (empty: every domain), in place
/// of what it had.
pub async fn set_vpc_offering_domains(
    tx: &mut super::Tx,
    offering_id: i64,
    domain_ids: &[i64],
) -> Result<()> {
    let mut ex = Exec::Tx(tx);
    on_db!(&mut ex, c => {
        sqlx::query("DELETE FROM vpc_offering_domain WHERE vpc_offering_id = $1")
            .bind(offering_id)
            .execute(c)
            .await?;
    });
    for &d in domain_ids {
        on_db!(&mut ex, c => {
            sqlx::query(
                "INSERT INTO vpc_offering_domain (vpc_offering_id, domain_id) VALUES ($1, $2)",
            )
            .bind(offering_id)
            .bind(d)
            .execute(c)
            .await?;
        });
    }
    Ok(())
}

/// Restricts a VPC offering to `zone_ids` (empty: every zone), in place of
/// what it had.
pub async fn set_vpc_offering_zones(
    tx: &mut super::Tx,
    offering_id: i64,
    zone_ids: &[i64],
) -> Result<()> {
    let mut ex = Exec::Tx(tx);
    on_db!(&mut ex, c => {
        sqlx::query("DELETE FROM vpc_offering_zone WHERE vpc_offering_id = $1")
            .bind(offering_id)
            .execute(c)
            .await?;
    });
    for &z in zone_ids {
        on_db!(&mut ex, c => {
            sqlx::query("INSERT INTO vpc_offering_zone (vpc_offering_id, zone_id) VALUES ($1, $2)")
                .bind(offering_id)
                .bind(z)
                .execute(c)
                .await?;
        });
    }
    Ok(())
}

const VPC_COLUMNS: &str = "id, uuid, name, unique_name, display_text, state, is_default, \
     distributed_router, redundant_router, network_mode, internet_protocol, sort_key, created, removed";
const NETWORK_COLUMNS: &str = "id, uuid, name, unique_name, display_text, traffic_type, \
     guest_type, state, is_default, for_vpc, specify_vlan, conserve_mode, is_persistent, \
     availability, created, removed";
const VPC_OFFERINGS: Table<VpcOffering> = Table::new("vpc_offerings", VPC_COLUMNS);
const NETWORK_OFFERINGS: Table<NetworkOffering> = Table::new("network_offerings", NETWORK_COLUMNS);

/// Creates a VPC offering and its services, atomically.
pub async fn create_vpc_offering<'a>(
    ex: impl Into<Exec<'a>>,
    new: NewVpcOffering,
) -> Result<VpcOffering> {
    atomically(ex.into(), move |tx| {
        Box::pin(async move {
            let mut ex = Exec::Tx(tx);
            let id: i64 = on_db!(&mut ex, c => {
                sqlx::query_scalar(
                    "INSERT INTO vpc_offerings (uuid, name, unique_name, display_text, state, \
                     is_default, distributed_router, redundant_router, network_mode, \
                     internet_protocol, created) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
                )
                .bind(new_uuid())
                .bind(&new.name)
                .bind(&new.unique_name)
                .bind(&new.display_text)
                .bind(&new.state)
                .bind(new.is_default)
                .bind(new.distributed_router)
                .bind(new.redundant_router)
                .bind(&new.network_mode)
                .bind(&new.internet_protocol)
                .bind(now_ms())
                .fetch_one(c)
                .await?
            });
            VPC_SERVICES.insert(&mut ex, id, &new.services).await?;
            Ok(vpc_offering_by_id(ex, id)
                .await?
                .expect("offering just inserted"))
        })
    })
    .await
}

/// A VPC offering by internal id, removed or not.
pub async fn vpc_offering_by_id<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
) -> Result<Option<VpcOffering>> {
    VPC_OFFERINGS.by_id(ex, id).await
}

/// A VPC offering by UUID, removed or not.
pub async fn vpc_offering_by_uuid<'a>(
    ex: impl Into<Exec<'a>>,
    uuid: Uuid,
) -> Result<Option<VpcOffering>> {
    VPC_OFFERINGS.by_uuid(ex, uuid).await
}

/// VPC offerings by internal id, removed or not, in one statement (list views).
pub async fn vpc_offerings_by_ids<'a>(
    ex: impl Into<Exec<'a>>,
    ids: &[i64],
) -> Result<Vec<VpcOffering>> {
    VPC_OFFERINGS.by_ids(ex, ids).await
}

/// A built-in VPC offering by its stable name.
pub async fn vpc_offering_by_unique_name<'a>(
    ex: impl Into<Exec<'a>>,
    unique_name: &str,
) -> Result<Option<VpcOffering>> {
    VPC_OFFERINGS.by(ex, "unique_name", unique_name).await
}

/// Lists live VPC offerings (by sort key, then creation).
pub async fn list_vpc_offerings<'a>(
    ex: impl Into<Exec<'a>>,
    filter: &OfferingFilter,
    page: Page,
) -> Result<Listed<VpcOffering>> {
    let w = offering_where(filter, false);
    VPC_OFFERINGS.list(ex, &w, "sort_key, id", page).await
}

/// The services of a VPC offering.
pub async fn vpc_offering_services<'a>(
    ex: impl Into<Exec<'a>>,
    offering_id: i64,
) -> Result<Vec<ServiceProvider>> {
    VPC_SERVICES.of(ex.into(), offering_id).await
}

/// A service of a VPC or network offering, with the offering (batch loads).
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct OfferingService {
    /// The offering.
    pub offering_id: i64,
    /// `Dhcp`, `SourceNat`, `NetworkACL` …
    pub service: String,
    /// `VpcVirtualRouter` …
    pub provider: String,
}

/// The services of the given VPC offerings in one statement, in the order
/// `vpc_offering_services` gives each offering's.
pub async fn vpc_offerings_services<'a>(
    ex: impl Into<Exec<'a>>,
    ids: &[i64],
) -> Result<Vec<OfferingService>> {
    VPC_SERVICES.of_each(ex.into(), ids).await
}

/// Changes a live VPC offering's name, display text, state or sort key (None keeps a
/// field); false if it does not exist or was removed.
pub async fn update_vpc_offering<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
    name: Option<&str>,
    display_text: Option<&str>,
    state: Option<&str>,
    sort_key: Option<i64>,
) -> Result<bool> {
    let values = [
        ("name", name.into()),
        ("display_text", display_text.into()),
        ("state", state.into()),
        ("sort_key", sort_key.into()),
    ];
    VPC_OFFERINGS.update_live(ex, id, &values).await
}

/// Marks a VPC offering removed (the caller refuses defaults and offerings in use).
pub async fn remove_vpc_offering<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<bool> {
    VPC_OFFERINGS.remove(ex, id).await
}

/// Creates a network offering and its services, atomically.
pub async fn create_network_offering<'a>(
    ex: impl Into<Exec<'a>>,
    new: NewNetworkOffering,
) -> Result<NetworkOffering> {
    atomically(ex.into(), move |tx| {
        Box::pin(async move {
            let mut ex = Exec::Tx(tx);
            let id: i64 = on_db!(&mut ex, c => {
                sqlx::query_scalar(
                    "INSERT INTO network_offerings (uuid, name, unique_name, display_text, \
                     traffic_type, guest_type, state, is_default, for_vpc, is_persistent, created) \
                     VALUES ($1, $2, $3, $4, 'Guest', 'Isolated', $5, $6, $7, $8, $9) RETURNING id",
                )
                .bind(new_uuid())
                .bind(&new.name)
                .bind(&new.unique_name)
                .bind(&new.display_text)
                .bind(&new.state)
                .bind(new.is_default)
                .bind(new.for_vpc)
                .bind(new.is_persistent)
                .bind(now_ms())
                .fetch_one(c)
                .await?
            });
            NETWORK_SERVICES.insert(&mut ex, id, &new.services).await?;
            Ok(network_offering_by_id(ex, id)
                .await?
                .expect("offering just inserted"))
        })
    })
    .await
}

/// A network offering by internal id, removed or not.
pub async fn network_offering_by_id<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
) -> Result<Option<NetworkOffering>> {
    NETWORK_OFFERINGS.by_id(ex, id).await
}

/// A network offering by UUID, removed or not.
pub async fn network_offering_by_uuid<'a>(
    ex: impl Into<Exec<'a>>,
    uuid: Uuid,
) -> Result<Option<NetworkOffering>> {
    NETWORK_OFFERINGS.by_uuid(ex, uuid).await
}

/// Network offerings by internal id, removed or not, in one statement (list
/// views).
pub async fn network_offerings_by_ids<'a>(
    ex: impl Into<Exec<'a>>,
    ids: &[i64],
) -> Result<Vec<NetworkOffering>> {
    NETWORK_OFFERINGS.by_ids(ex, ids).await
}

/// A built-in network offering by its stable name.
pub async fn network_offering_by_unique_name<'a>(
    ex: impl Into<Exec<'a>>,
    unique_name: &str,
) -> Result<Option<NetworkOffering>> {
    NETWORK_OFFERINGS.by(ex, "unique_name", unique_name).await
}

/// Lists live network offerings.
pub async fn list_network_offerings<'a>(
    ex: impl Into<Exec<'a>>,
    filter: &OfferingFilter,
    page: Page,
) -> Result<Listed<NetworkOffering>> {
    let w = offering_where(filter, true);
    NETWORK_OFFERINGS.list(ex, &w, "id", page).await
}

/// The services of a network offering.
pub async fn network_offering_services<'a>(
    ex: impl Into<Exec<'a>>,
    offering_id: i64,
) -> Result<Vec<ServiceProvider>> {
    NETWORK_SERVICES.of(ex.into(), offering_id).await
}

/// The services of the given network offerings in one statement, in the
/// order `network_offering_services` gives each offering's.
pub async fn network_offerings_services<'a>(
    ex: impl Into<Exec<'a>>,
    ids: &[i64],
) -> Result<Vec<OfferingService>> {
    NETWORK_SERVICES.of_each(ex.into(), ids).await
}

/// Where one kind of offering keeps its services: the map table and the
/// column naming the offering. VPC and network offerings read them alike.
struct ServiceMap {
    table: &'static str,
    offering_column: &'static str,
}

const VPC_SERVICES: ServiceMap = ServiceMap {
    table: "vpc_offering_service_map",
    offering_column: "vpc_offering_id",
};

const NETWORK_SERVICES: ServiceMap = ServiceMap {
    table: "ntwk_offering_service_map",
    offering_column: "network_offering_id",
};

impl ServiceMap {
    /// One offering's services, in the order they were stored.
    async fn of(&self, mut ex: Exec<'_>, offering_id: i64) -> Result<Vec<ServiceProvider>> {
        let mut w = Where::new();
        w.eq(self.offering_column, offering_id);
        let sql = format!(
            "SELECT service, provider FROM {}{} ORDER BY id",
            self.table,
            w.sql()
        );
        query::fetch_all(&mut ex, sql, w.args()).await
    }

    /// Stores an offering's services, in the order given.
    async fn insert(
        &self,
        ex: &mut Exec<'_>,
        offering_id: i64,
        services: &[ServiceProvider],
    ) -> Result<()> {
        let sql = format!(
            "INSERT INTO {} ({}, service, provider) VALUES ($1, $2, $3)",
            self.table, self.offering_column
        );
        for sp in services {
            let args = [
                Arg::from(offering_id),
                Arg::from(sp.service.as_str()),
                Arg::from(sp.provider.as_str()),
            ];
            query::execute(ex, sql.clone(), &args).await?;
        }
        Ok(())
    }

    /// The services of several offerings in one statement, each offering's
    /// in the order [`ServiceMap::of`] gives them.
    async fn of_each(&self, mut ex: Exec<'_>, ids: &[i64]) -> Result<Vec<OfferingService>> {
        let column = self.offering_column;
        query::fetch_by_ids(
            &mut ex,
            &format!("{column} AS offering_id, service, provider"),
            self.table,
            None,
            column,
            ids,
            &format!("{column}, id"),
        )
        .await
    }
}

fn offering_where(filter: &OfferingFilter, network: bool) -> Where {
    let mut w = Where::new();
    w.push("removed IS NULL")
        .eq_opt("uuid", filter.uuid)
        .eq_opt("name", filter.name.clone())
        .eq_opt("state", filter.state.clone())
        .eq_opt("is_default", filter.is_default)
        .keyword(&["name", "display_text"], filter.keyword.as_deref());
    if network {
        w.eq_opt("for_vpc", filter.for_vpc);
    } else {
        if let Some(path) = &filter.usable_in_domain {
            // A domain is usable by its own accounts and those below it: the
            // offering's domain path is a prefix of the account's.
            let p = w.arg(path.clone());
            w.push(format!(
                "(NOT EXISTS (SELECT 1 FROM vpc_offering_domain od \
                   WHERE od.vpc_offering_id = vpc_offerings.id) \
                 OR EXISTS (SELECT 1 FROM vpc_offering_domain od \
                   JOIN domain d ON d.id = od.domain_id \
                   WHERE od.vpc_offering_id = vpc_offerings.id \
                   AND substr({p}, 1, length(d.path)) = d.path))"
            ));
        }
        if let Some(zone) = filter.zone_id {
            let p = w.arg(zone);
            w.push(format!(
                "(NOT EXISTS (SELECT 1 FROM vpc_offering_zone oz \
                   WHERE oz.vpc_offering_id = vpc_offerings.id) \
                 OR EXISTS (SELECT 1 FROM vpc_offering_zone oz \
                   WHERE oz.vpc_offering_id = vpc_offerings.id AND oz.zone_id = {p}))"
            ));
        }
    }
    w
}

/// Changes a live network offering's name, description or state (None
/// keeps each); false when it is gone.
pub async fn update_network_offering<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
    name: Option<&str>,
    display_text: Option<&str>,
    state: Option<&str>,
) -> Result<bool> {
    let values = [
        ("name", name.into()),
        ("display_text", display_text.into()),
        ("state", state.into()),
    ];
    NETWORK_OFFERINGS.update_live(ex, id, &values).await
}

/// How many live networks use a network offering.
pub async fn networks_of_offering<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<i64> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM networks WHERE network_offering_id = $1 AND removed IS NULL",
        )
        .bind(id)
        .fetch_one(c)
        .await?
    }))
}

/// Marks a network offering removed (the caller refuses defaults and
/// offerings in use); false when it was gone.
pub async fn remove_network_offering<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<bool> {
    NETWORK_OFFERINGS.remove(ex, id).await
}
