//! The catalog guest VMs are deployed from (CloudStack tables
//! `service_offering`, `vm_template`) and the service offering each router
//! runs with (`router_service_offering`, changeServiceForRouter).

use sqlx::FromRow;

use super::query::{self, Where};
use super::table::Table;
use super::text::Stored;
use super::{Exec, Listed, Page, Result};
use uuid::Uuid;

/// A `service_offering` row.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct ServiceOffering {
    /// Internal key.
    pub id: i64,
    /// API id.
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    /// Name.
    pub name: String,
    /// Description.
    pub display_text: String,
    /// CPU cores.
    pub cpu: i64,
    /// CPU speed (MHz).
    pub speed: i64,
    /// Memory (MiB).
    pub ram_size: i64,
    /// Whether it is the default offering.
    pub is_default: bool,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Removal time (epoch ms), if removed.
    pub removed: Option<i64>,
    /// The system VM kind it is for (`domainrouter`); None for guest VMs.
    pub system_vm_type: Option<String>,
    /// The ROOT disk of its VMs in GiB; None: the template's size.
    pub root_disk_size: Option<i64>,
    /// Its VMs are started on another host when theirs is lost (`offerha`).
    pub ha_enabled: bool,
}

/// A `vm_template` row.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct Template {
    /// Internal key.
    pub id: i64,
    /// API id.
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    /// Name.
    pub name: String,
    /// Description.
    pub display_text: String,
    /// `NETNS`.
    pub format: String,
    /// The OS type name.
    pub os_type: String,
    /// Usable by every account.
    pub is_public: bool,
    /// Featured.
    pub is_featured: bool,
    /// VMs of it take a password from the router (CloudStack's
    /// `passwordenabled`).
    pub enable_password: bool,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Removal time (epoch ms), if removed.
    pub removed: Option<i64>,
    /// Virtual size in bytes (the ROOT volume of its VMs).
    pub size: i64,
}

/// Filters of the offering and template lists.
#[derive(Clone, Debug, Default)]
pub struct CatalogFilter {
    /// Only this row (API id).
    pub uuid: Option<Uuid>,
    /// Exact name.
    pub name: Option<String>,
    /// Substring of name or display text, case-insensitive.
    pub keyword: Option<String>,
    /// Templates: only public ones.
    pub public: Option<bool>,
    /// Templates: only featured (or non-featured) ones.
    pub featured: Option<bool>,
    /// Service offerings: the system ones (true) instead of those of guest
    /// VMs.
    pub system: bool,
}

const OFFERING_COLUMNS: &str = "id, uuid, name, display_text, cpu, speed, ram_size, is_default, \
     created, removed, system_vm_type, root_disk_size, ha_enabled";
const TEMPLATE_COLUMNS: &str = "id, uuid, name, display_text, format, os_type, is_public, \
     is_featured, enable_password, created, removed, size";
const OFFERINGS: Table<ServiceOffering> = Table::new("service_offering", OFFERING_COLUMNS);
const TEMPLATES: Table<Template> = Table::new("vm_template", TEMPLATE_COLUMNS);

/// A service offering by internal id, removed or not.
pub async fn offering_by_id<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
) -> Result<Option<ServiceOffering>> {
    OFFERINGS.by_id(ex, id).await
}

/// Service offerings by internal id, removed or not, in one statement (list
/// views).
pub async fn offerings_by_ids<'a>(
    ex: impl Into<Exec<'a>>,
    ids: &[i64],
) -> Result<Vec<ServiceOffering>> {
    OFFERINGS.by_ids(ex, ids).await
}

/// A service offering by UUID, removed or not.
pub async fn offering_by_uuid<'a>(
    ex: impl Into<Exec<'a>>,
    uuid: Uuid,
) -> Result<Option<ServiceOffering>> {
    OFFERINGS.by_uuid(ex, uuid).await
}

/// The unique name of CloudStack's default router offering.
pub const ROUTER_OFFERING_UNIQUE_NAME: &str = "Cloud.Com-SoftwareRouter";

/// A service offering by its unique name (the built-in system ones), removed
/// or not.
pub async fn offering_by_unique_name<'a>(
    ex: impl Into<Exec<'a>>,
    unique_name: &str,
) -> Result<Option<ServiceOffering>> {
    OFFERINGS.by(ex, "unique_name", unique_name).await
}

fn catalog_where(filter: &CatalogFilter) -> Where {
    let mut w = Where::new();
    w.push("removed IS NULL")
        .eq_opt("uuid", filter.uuid)
        .eq_opt("name", filter.name.clone())
        .keyword(&["name", "display_text"], filter.keyword.as_deref());
    w
}

/// Lists live service offerings by id.
pub async fn list_offerings<'a>(
    ex: impl Into<Exec<'a>>,
    filter: &CatalogFilter,
    page: Page,
) -> Result<Listed<ServiceOffering>> {
    let mut w = catalog_where(filter);
    w.push(if filter.system {
        "system_vm_type IS NOT NULL"
    } else {
        "system_vm_type IS NULL"
    });
    OFFERINGS.list(ex, &w, "id", page).await
}

/// A template by internal id, removed or not.
pub async fn template_by_id<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<Option<Template>> {
    TEMPLATES.by_id(ex, id).await
}

/// Templates by internal id, removed or not, in one statement (list views).
pub async fn templates_by_ids<'a>(ex: impl Into<Exec<'a>>, ids: &[i64]) -> Result<Vec<Template>> {
    TEMPLATES.by_ids(ex, ids).await
}

/// A template by UUID, removed or not.
pub async fn template_by_uuid<'a>(ex: impl Into<Exec<'a>>, uuid: Uuid) -> Result<Option<Template>> {
    TEMPLATES.by_uuid(ex, uuid).await
}

/// What updateTemplate changes (None: kept).
#[derive(Clone, Debug, Default)]
pub struct TemplateUpdate {
    pub name: Option<String>,
    pub display_text: Option<String>,
    pub enable_password: Option<bool>,
}

/// Updates a live template; false when it was gone.
pub async fn update_template<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
    update: &TemplateUpdate,
) -> Result<bool> {
    let values = [
        ("name", update.name.as_deref().into()),
        ("display_text", update.display_text.as_deref().into()),
        ("enable_password", update.enable_password.into()),
    ];
    TEMPLATES.update_live(ex, id, &values).await
}

/// Lists live templates by id.
pub async fn list_templates<'a>(
    ex: impl Into<Exec<'a>>,
    filter: &CatalogFilter,
    page: Page,
) -> Result<Listed<Template>> {
    let mut w = catalog_where(filter);
    w.eq_opt("is_public", filter.public)
        .eq_opt("is_featured", filter.featured);
    TEMPLATES.list(ex, &w, "id", page).await
}

// ---------------------------------------------------------------- service offering writes

/// A service offering of guest VMs to create (createServiceOffering).
#[derive(Clone, Debug)]
pub struct NewServiceOffering {
    pub name: String,
    pub display_text: String,
    pub cpu: i64,
    pub speed: i64,
    pub ram_size: i64,
    pub root_disk_size: Option<i64>,
    /// `offerha`.
    pub ha_enabled: bool,
}

/// Stores a service offering of guest VMs.
pub async fn create_offering<'a>(
    ex: impl Into<Exec<'a>>,
    new: NewServiceOffering,
) -> Result<ServiceOffering> {
    let mut ex = ex.into();
    let sql = format!(
        "INSERT INTO service_offering (uuid, name, display_text, cpu, speed, ram_size, \
         root_disk_size, created, ha_enabled) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         RETURNING {OFFERING_COLUMNS}"
    );
    Ok(on_db!(&mut ex, c => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(super::new_uuid())
            .bind(&new.name)
            .bind(&new.display_text)
            .bind(new.cpu)
            .bind(new.speed)
            .bind(new.ram_size)
            .bind(new.root_disk_size)
            .bind(super::now_ms())
            .bind(new.ha_enabled)
            .fetch_one(c)
            .await?
    }))
}

/// Renames a live service offering; false when it is gone.
pub async fn update_offering<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
    name: &str,
    display_text: &str,
) -> Result<bool> {
    let values = [("name", name.into()), ("display_text", display_text.into())];
    OFFERINGS.set_live(ex, id, &values).await
}

/// Marks a live service offering removed (its VMs keep it); false when it
/// was gone.
pub async fn remove_offering<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<bool> {
    OFFERINGS.remove(ex, id).await
}

/// The service offering router `router_id` runs with, if
/// changeServiceForRouter gave it one (else the default router offering).
pub async fn router_offering<'a>(ex: impl Into<Exec<'a>>, router_id: i64) -> Result<Option<i64>> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "SELECT service_offering_id FROM router_service_offering WHERE router_id = $1",
        )
        .bind(router_id)
        .fetch_optional(c)
        .await?
    }))
}

/// Records the service offering router `router_id` runs with.
pub async fn set_router_offering<'a>(
    ex: impl Into<Exec<'a>>,
    router_id: i64,
    offering_id: i64,
) -> Result<()> {
    let mut ex = ex.into();
    on_db!(&mut ex, c => {
        sqlx::query(
            "INSERT INTO router_service_offering (router_id, service_offering_id) \
             VALUES ($1, $2) ON CONFLICT (router_id) \
             DO UPDATE SET service_offering_id = excluded.service_offering_id",
        )
        .bind(router_id)
        .bind(offering_id)
        .execute(c)
        .await?;
    });
    Ok(())
}

/// The service offering of a router, as changeServiceForRouter recorded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromRow)]
pub struct RouterOffering {
    pub router_id: i64,
    pub service_offering_id: i64,
}

/// The recorded offerings of the given routers, in one statement (list
/// pages).
pub async fn router_offerings<'a>(
    ex: impl Into<Exec<'a>>,
    router_ids: &[i64],
) -> Result<Vec<RouterOffering>> {
    let mut w = Where::new();
    w.any_of("router_id", router_ids);
    Ok(query::list(
        &mut ex.into(),
        "router_id, service_offering_id",
        "router_service_offering",
        &w,
        "router_id",
        Page::ALL,
    )
    .await?
    .items)
}
