//! Guest VMs (CloudStack table `vm_instance`). Their offerings and templates
//! are in [`super::catalog`], re-exported here as the callers name them.
//!
//! Kept whole because it is the repository of `vm_instance` and of the NICs and leases read about
//! VMs.

use sqlx::FromRow;

use super::Scope;
use super::query::{self, Where};
use super::table::Table;
use super::text::Stored;
use super::{Exec, Listed, OrNotFound, Page, Result, atomically, new_uuid, now_ms};
use std::net::Ipv4Addr;
use uuid::Uuid;

pub use super::catalog::{
    CatalogFilter, NewServiceOffering, ROUTER_OFFERING_UNIQUE_NAME, RouterOffering,
    ServiceOffering, Template, TemplateUpdate, create_offering, list_offerings, list_templates,
    offering_by_id, offering_by_unique_name, offering_by_uuid, offerings_by_ids, remove_offering,
    router_offering, router_offerings, set_router_offering, template_by_id, template_by_uuid,
    templates_by_ids, update_offering, update_template,
};

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
    /// Only rows of these owners.
    pub scope: Scope,
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
pub(super) const TABLE: Table<Vm> = Table::joined("vm_instance", COLUMNS, FROM, "v.");

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

/// A VM by internal id, removed or not.
pub async fn get_by_id<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<Option<Vm>> {
    TABLE.by_id(ex, id).await
}

/// VMs by internal id, removed or not, in one statement (list views).
pub async fn by_ids<'a>(ex: impl Into<Exec<'a>>, ids: &[i64]) -> Result<Vec<Vm>> {
    TABLE.by_ids(ex, ids).await
}

/// A VM by UUID, removed or not.
pub async fn get_by_uuid<'a>(ex: impl Into<Exec<'a>>, uuid: Uuid) -> Result<Option<Vm>> {
    TABLE.by_uuid(ex, uuid).await
}

/// A VM by instance name (`i-2-9-VM`, the name its host agent reports),
/// removed or not.
pub async fn get_by_instance_name<'a>(ex: impl Into<Exec<'a>>, name: &str) -> Result<Option<Vm>> {
    TABLE.by(ex, "instance_name", name).await
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
        .scoped("v.", &filter.scope)
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
    w.any_of_opt("v.uuid", filter.uuids.as_deref());
    TABLE.list(ex, &w, "v.id", page).await
}

/// Sets the state of a live VM; false when there is none.
pub async fn set_state<'a>(ex: impl Into<Exec<'a>>, id: i64, state: State) -> Result<bool> {
    TABLE.set_state(ex, id, state.as_str()).await
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
