//! Guest VMs (CloudStack table `vm_instance`), their offerings and templates.

use sqlx::FromRow;

use super::query::{self, Arg, Where};
use super::text::Stored;
use super::{Exec, Listed, OrNotFound, Page, Result, atomically, new_uuid, now_ms};
use std::net::Ipv4Addr;
use uuid::Uuid;

crate::text_enum! {
    /// A VM's state (column `state`).
    pub enum State {
        /// A VM being started.
        Starting = "Starting",
        /// A VM that runs.
        Running = "Running",
        /// A VM being stopped.
        Stopping = "Stopping",
        /// A VM that is down (keeps its NICs and addresses).
        Stopped = "Stopped",
        /// A VM destroyed but not expunged (still holds its addresses).
        Destroyed = "Destroyed",
        /// A VM expunged: its row is removed and its NICs are gone.
        Expunging = "Expunging",
        /// A VM whose start failed.
        Error = "Error",
    }
}

/// A new VM is Stopped until its first start.
impl Default for State {
    fn default() -> Self {
        State::Stopped
    }
}

/// A VM being started.
pub const STATE_STARTING: State = State::Starting;
/// A VM that runs.
pub const STATE_RUNNING: State = State::Running;
/// A VM being stopped.
pub const STATE_STOPPING: State = State::Stopping;
/// A VM that is down (keeps its NICs and addresses).
pub const STATE_STOPPED: State = State::Stopped;
/// A VM destroyed but not expunged (still holds its addresses).
pub const STATE_DESTROYED: State = State::Destroyed;
/// A VM expunged: its row is removed and its NICs are gone.
pub const STATE_EXPUNGING: State = State::Expunging;
/// A VM whose start failed.
pub const STATE_ERROR: State = State::Error;

/// NIC state of a VM NIC in use by a running VM.
pub const NIC_RESERVED: &str = "Reserved";
/// NIC state of a VM NIC of a VM that does not run (the address stays reserved).
pub const NIC_ALLOCATED: &str = "Allocated";

/// A `vm_instance` row, with the path of its domain.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct Vm {
    /// Internal key.
    pub id: i64,
    /// API id.
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    /// The user's name, also the host name.
    pub name: String,
    /// `i-<account id>-<id>-VM`.
    pub instance_name: String,
    /// Display name.
    pub display_name: String,
    /// The zone.
    pub zone_id: i64,
    /// The owner.
    pub account_id: i64,
    /// The owner's domain.
    pub domain_id: i64,
    /// The owning domain's path.
    pub domain_path: String,
    /// The service offering.
    pub service_offering_id: i64,
    /// The template.
    pub template_id: i64,
    /// One of the `STATE_*` values.
    #[sqlx(try_from = "String")]
    pub state: State,
    /// The host it runs on (None until placed).
    pub host_id: Option<i64>,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Removal (expunge) time (epoch ms), if removed.
    pub removed: Option<i64>,
}

/// A VM to create.
#[derive(Clone, Debug, Default)]
pub struct NewVm {
    /// Name (host name).
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// The zone.
    pub zone_id: i64,
    /// The owner.
    pub account_id: i64,
    /// The owner's domain.
    pub domain_id: i64,
    /// The service offering.
    pub service_offering_id: i64,
    /// The template.
    pub template_id: i64,
    /// Initial state.
    pub state: State,
}

/// Filters of a VM list; every set field must match.
#[derive(Clone, Debug, Default)]
pub struct VmFilter {
    /// Only this VM (internal id).
    pub id: Option<i64>,
    /// Only these VMs (API ids).
    pub uuids: Option<Vec<Uuid>>,
    /// Exact name, case-insensitive.
    pub name: Option<String>,
    /// Substring of the name or display name, case-insensitive.
    pub keyword: Option<String>,
    /// Only this zone.
    pub zone_id: Option<i64>,
    /// Only this owner.
    pub account_id: Option<i64>,
    /// Only this domain.
    pub domain_id: Option<i64>,
    /// Only VMs of the subtree rooted at this domain path.
    pub domain_path_prefix: Option<String>,
    /// Only this state.
    pub state: Option<String>,
    /// Only VMs with a live NIC on this network.
    pub network_id: Option<i64>,
    /// Only VMs with a live NIC on a tier of this VPC.
    pub vpc_id: Option<i64>,
    /// Only VMs of this service offering.
    pub service_offering_id: Option<i64>,
    /// Only VMs of this template.
    pub template_id: Option<i64>,
}

const COLUMNS: &str = "v.id, v.uuid, v.name, v.instance_name, v.display_name, v.zone_id, \
     v.account_id, v.domain_id, d.path AS domain_path, v.service_offering_id, v.template_id, \
     v.state, v.host_id, v.created, v.removed";
const FROM: &str = "vm_instance v JOIN domain d ON d.id = v.domain_id";

/// Creates a VM named `i-<account id>-<id>-VM` internally.
pub async fn create<'a>(ex: impl Into<Exec<'a>>, new: NewVm) -> Result<Vm> {
    atomically(ex.into(), move |tx| {
        Box::pin(async move {
            let mut ex = Exec::Tx(tx);
            let uuid = new_uuid();
            let id: i64 = on_db!(&mut ex, c => {
                sqlx::query_scalar(
                    "INSERT INTO vm_instance (uuid, name, instance_name, display_name, zone_id, \
                     account_id, domain_id, service_offering_id, template_id, state, created) \
                     VALUES ($1, $2, $1, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                )
                .bind(&uuid)
                .bind(&new.name)
                .bind(&new.display_name)
                .bind(new.zone_id)
                .bind(new.account_id)
                .bind(new.domain_id)
                .bind(new.service_offering_id)
                .bind(new.template_id)
                .bind(new.state.as_str())
                .bind(now_ms())
                .fetch_one(c)
                .await?
            });
            on_db!(&mut ex, c => {
                sqlx::query("UPDATE vm_instance SET instance_name = $2 WHERE id = $1")
                    .bind(id)
                    .bind(format!("i-{}-{id}-VM", new.account_id))
                    .execute(c)
                    .await?;
            });
            get_by_id(ex, id).await?.or_not_found("vm", id)
        })
    })
    .await
}

async fn get<'a, V: Into<Arg>>(
    ex: impl Into<Exec<'a>>,
    column: &str,
    value: V,
) -> Result<Option<Vm>> {
    query::fetch_by(&mut ex.into(), COLUMNS, FROM, column, value).await
}

/// A VM by internal id, removed or not.
pub async fn get_by_id<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<Option<Vm>> {
    get(ex, "v.id", id).await
}

/// VMs by internal id, removed or not, in one statement (list views).
pub async fn by_ids<'a>(ex: impl Into<Exec<'a>>, ids: &[i64]) -> Result<Vec<Vm>> {
    query::fetch_by_ids(&mut ex.into(), COLUMNS, FROM, "v.id", ids, "v.id").await
}

/// A VM by UUID, removed or not.
pub async fn get_by_uuid<'a>(ex: impl Into<Exec<'a>>, uuid: Uuid) -> Result<Option<Vm>> {
    get(ex, "v.uuid", uuid).await
}

/// A VM by instance name (`i-2-9-VM`, the name its host agent reports),
/// removed or not.
pub async fn get_by_instance_name<'a>(ex: impl Into<Exec<'a>>, name: &str) -> Result<Option<Vm>> {
    get(ex, "v.instance_name", name.to_string()).await
}

/// Lists live (not expunged) VMs by creation order.
pub async fn list<'a>(
    ex: impl Into<Exec<'a>>,
    filter: &VmFilter,
    page: Page,
) -> Result<Listed<Vm>> {
    let mut w = Where::new();
    w.push("v.removed IS NULL")
        .eq_opt("v.id", filter.id)
        .eq_opt("v.zone_id", filter.zone_id)
        .eq_opt("v.account_id", filter.account_id)
        .eq_opt("v.domain_id", filter.domain_id)
        .eq_opt("v.state", filter.state.clone())
        .eq_opt("v.service_offering_id", filter.service_offering_id)
        .eq_opt("v.template_id", filter.template_id)
        .keyword(&["v.name", "v.display_name"], filter.keyword.as_deref());
    if let Some(name) = &filter.name {
        let p = w.arg(name.to_lowercase());
        w.push(format!("LOWER(v.name) = {p}"));
    }
    if let Some(network_id) = filter.network_id {
        let p = w.arg(network_id);
        w.push(format!(
            "v.id IN (SELECT vm_id FROM nics WHERE network_id = {p} AND removed IS NULL \
             AND vm_id IS NOT NULL)"
        ));
    }
    if let Some(vpc_id) = filter.vpc_id {
        let p = w.arg(vpc_id);
        w.push(format!(
            "v.id IN (SELECT n.vm_id FROM nics n JOIN networks t ON t.id = n.network_id \
             WHERE t.vpc_id = {p} AND n.removed IS NULL AND n.vm_id IS NOT NULL)"
        ));
    }
    if let Some(uuids) = &filter.uuids {
        w.any_of("v.uuid", uuids);
    }
    if let Some(prefix) = &filter.domain_path_prefix {
        w.starts_with("d.path", prefix);
    }
    query::list(&mut ex.into(), COLUMNS, FROM, &w, "v.id", page).await
}

/// Sets the state of a live VM; false when there is none.
pub async fn set_state<'a>(ex: impl Into<Exec<'a>>, id: i64, state: State) -> Result<bool> {
    let state = state.as_str();
    query::set_live_state(&mut ex.into(), "vm_instance", id, state).await
}

/// Sets the state only when it is one of `from` (compare-and-set); false otherwise.
pub async fn transition<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
    from: &[State],
    to: State,
) -> Result<bool> {
    let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
    let mut w = Where::new();
    let p = w.arg(to.as_str());
    w.eq("id", id)
        .push("removed IS NULL")
        .any_of("state", &from);
    let sql = format!("UPDATE vm_instance SET state = {p}{}", w.sql());
    let mut ex = ex.into();
    let done = on_db!(&mut ex, c => {
        query::bind_args!(sqlx::query(sqlx::AssertSqlSafe(sql)), w.args())
            .execute(c)
            .await?
            .rows_affected()
    });
    Ok(done == 1)
}

/// Expunges a VM: the row is marked removed (state Expunging) and its NICs removed,
/// which frees their addresses. False when it already was.
pub async fn expunge<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<bool> {
    remove_with_nics(ex.into(), "vm_instance", "Expunging", "vm_id", id).await
}

/// Marks a live machine row (a VM or a router) of `table` removed in `state`
/// and its live NICs (`nic_owner` = id) removed and Deallocated, in one
/// transaction and at one instant, so no NIC outlives its machine or keeps
/// an address; false when the machine already was removed.
pub(crate) async fn remove_with_nics(
    ex: Exec<'_>,
    table: &'static str,
    state: &'static str,
    nic_owner: &'static str,
    id: i64,
) -> Result<bool> {
    atomically(ex, move |tx| {
        Box::pin(async move {
            let mut ex = Exec::Tx(tx);
            let now = now_ms();
            let machine = format!(
                "UPDATE {table} SET removed = $2, state = '{state}' \
                 WHERE id = $1 AND removed IS NULL"
            );
            let done = on_db!(&mut ex, c => {
                sqlx::query(sqlx::AssertSqlSafe(machine))
                    .bind(id)
                    .bind(now)
                    .execute(c)
                    .await?
                    .rows_affected()
            });
            let nics = format!(
                "UPDATE nics SET removed = $2, state = 'Deallocated' \
                 WHERE {nic_owner} = $1 AND removed IS NULL"
            );
            on_db!(&mut ex, c => {
                sqlx::query(sqlx::AssertSqlSafe(nics))
                    .bind(id)
                    .bind(now)
                    .execute(c)
                    .await?;
            });
            Ok(done == 1)
        })
    })
    .await
}

/// Sets the state of every live NIC of a VM.
pub async fn set_nics_state<'a>(ex: impl Into<Exec<'a>>, vm_id: i64, state: &str) -> Result<u64> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query("UPDATE nics SET state = $2 WHERE vm_id = $1 AND removed IS NULL")
            .bind(vm_id)
            .bind(state)
            .execute(c)
            .await?
            .rows_affected()
    }))
}

/// Whether the account has a live VM named `name` (case-insensitive), other than
/// `except`.
pub async fn name_taken<'a>(
    ex: impl Into<Exec<'a>>,
    account_id: i64,
    name: &str,
    except: Option<i64>,
) -> Result<bool> {
    let mut ex = ex.into();
    let count: i64 = on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM vm_instance WHERE account_id = $1 AND LOWER(name) = $2 \
             AND removed IS NULL AND id <> $3",
        )
        .bind(account_id)
        .bind(name.to_lowercase())
        .bind(except.unwrap_or(-1))
        .fetch_one(c)
        .await?
    });
    Ok(count > 0)
}

/// The live (not expunged) VMs with a NIC on a network, with their states.
pub async fn vms_on_network<'a>(ex: impl Into<Exec<'a>>, network_id: i64) -> Result<Vec<Vm>> {
    let filter = VmFilter {
        network_id: Some(network_id),
        ..Default::default()
    };
    Ok(list(ex, &filter, Page::ALL).await?.items)
}

/// The live VMs of an account (for the `user_vm` resource limit).
pub async fn count_for_account<'a>(ex: impl Into<Exec<'a>>, account_id: i64) -> Result<i64> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM vm_instance WHERE account_id = $1 AND removed IS NULL",
        )
        .bind(account_id)
        .fetch_one(c)
        .await?
    }))
}

/// One VM NIC's DHCP lease as the router serves it.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct DhcpEntry {
    /// The NIC's MAC.
    pub mac: String,
    /// The NIC's address.
    #[sqlx(try_from = "Stored")]
    pub ip: Ipv4Addr,
    /// The VM's name (its host name).
    pub hostname: String,
    /// Whether this is the VM's first NIC (the one with the default route).
    pub default_nic: bool,
}

/// The DHCP leases of a network: every live NIC with an address of a VM that is
/// starting or running (a stopped VM keeps its address but has no lease).
pub async fn dhcp_entries<'a>(ex: impl Into<Exec<'a>>, network_id: i64) -> Result<Vec<DhcpEntry>> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_as(
            "SELECT n.mac_address AS mac, n.ip4_address AS ip, v.name AS hostname, \
             (n.device_index = 0) AS default_nic \
             FROM nics n JOIN vm_instance v ON v.id = n.vm_id \
             WHERE n.network_id = $1 AND n.removed IS NULL AND v.removed IS NULL \
             AND v.state IN ('Starting', 'Running') \
             AND n.ip4_address IS NOT NULL ORDER BY n.id",
        )
        .bind(network_id)
        .fetch_all(c)
        .await?
    }))
}

// ---------------------------------------------------------------- offerings and templates

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

/// A service offering by internal id, removed or not.
pub async fn offering_by_id<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
) -> Result<Option<ServiceOffering>> {
    query::fetch_by(
        &mut ex.into(),
        OFFERING_COLUMNS,
        "service_offering",
        "id",
        id,
    )
    .await
}

/// Service offerings by internal id, removed or not, in one statement (list
/// views).
pub async fn offerings_by_ids<'a>(
    ex: impl Into<Exec<'a>>,
    ids: &[i64],
) -> Result<Vec<ServiceOffering>> {
    query::fetch_by_ids(
        &mut ex.into(),
        OFFERING_COLUMNS,
        "service_offering",
        "id",
        ids,
        "id",
    )
    .await
}

/// A service offering by UUID, removed or not.
pub async fn offering_by_uuid<'a>(
    ex: impl Into<Exec<'a>>,
    uuid: Uuid,
) -> Result<Option<ServiceOffering>> {
    query::fetch_by(
        &mut ex.into(),
        OFFERING_COLUMNS,
        "service_offering",
        "uuid",
        uuid,
    )
    .await
}

/// The unique name of CloudStack's default router offering.
pub const ROUTER_OFFERING_UNIQUE_NAME: &str = "Cloud.Com-SoftwareRouter";

/// A service offering by its unique name (the built-in system ones), removed
/// or not.
pub async fn offering_by_unique_name<'a>(
    ex: impl Into<Exec<'a>>,
    unique_name: &str,
) -> Result<Option<ServiceOffering>> {
    query::fetch_by(
        &mut ex.into(),
        OFFERING_COLUMNS,
        "service_offering",
        "unique_name",
        unique_name.to_string(),
    )
    .await
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
    query::list(
        &mut ex.into(),
        OFFERING_COLUMNS,
        "service_offering",
        &w,
        "id",
        page,
    )
    .await
}

/// A template by internal id, removed or not.
pub async fn template_by_id<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<Option<Template>> {
    query::fetch_by(&mut ex.into(), TEMPLATE_COLUMNS, "vm_template", "id", id).await
}

/// Templates by internal id, removed or not, in one statement (list views).
pub async fn templates_by_ids<'a>(ex: impl Into<Exec<'a>>, ids: &[i64]) -> Result<Vec<Template>> {
    query::fetch_by_ids(
        &mut ex.into(),
        TEMPLATE_COLUMNS,
        "vm_template",
        "id",
        ids,
        "id",
    )
    .await
}

/// A template by UUID, removed or not.
pub async fn template_by_uuid<'a>(ex: impl Into<Exec<'a>>, uuid: Uuid) -> Result<Option<Template>> {
    query::fetch_by(
        &mut ex.into(),
        TEMPLATE_COLUMNS,
        "vm_template",
        "uuid",
        uuid,
    )
    .await
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
    let mut ex = ex.into();
    let done = on_db!(&mut ex, c => {
        sqlx::query(
            "UPDATE vm_template SET name = COALESCE($2, name), \
             display_text = COALESCE($3, display_text), \
             enable_password = COALESCE($4, enable_password) \
             WHERE id = $1 AND removed IS NULL",
        )
        .bind(id)
        .bind(update.name.as_deref())
        .bind(update.display_text.as_deref())
        .bind(update.enable_password)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(done == 1)
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
    query::list(
        &mut ex.into(),
        TEMPLATE_COLUMNS,
        "vm_template",
        &w,
        "id",
        page,
    )
    .await
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
    let mut ex = ex.into();
    let done = on_db!(&mut ex, c => {
        sqlx::query(
            "UPDATE service_offering SET name = $2, display_text = $3 \
             WHERE id = $1 AND removed IS NULL",
        )
        .bind(id)
        .bind(name)
        .bind(display_text)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(done == 1)
}

/// Marks a live service offering removed (its VMs keep it); false when it
/// was gone.
pub async fn remove_offering<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<bool> {
    let mut ex = ex.into();
    let done = on_db!(&mut ex, c => {
        sqlx::query("UPDATE service_offering SET removed = $2 WHERE id = $1 AND removed IS NULL")
            .bind(id)
            .bind(super::now_ms())
            .execute(c)
            .await?
            .rows_affected()
    });
    Ok(done == 1)
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
