//! VPC virtual routers (CloudStack table `domain_router`) and NICs (`nics`).
//!
//! A router carries two counters: `config_generation`, bumped by every change of the
//! wanted configuration ([`bump_generation`]), and `applied_generation`, the last one
//! the router confirmed ([`mark_applied`]). The router is in sync when they are equal.
//!
//! Kept whole because it is the repository of the two tables a router's state is read from,
//! `domain_router` and `nics`.

use sqlx::FromRow;

use super::Scope;
use super::query::Where;
use super::table::Table;
use super::text::{Stored, StoredOpt};
use super::{Exec, Listed, OrNotFound, Page, Result, StoreError, atomically, new_uuid, now_ms};
use std::net::Ipv4Addr;
use uuid::Uuid;

crate::text_enum! {
    /// A router's state (column `state`).
    pub enum State {
        /// A router being started.
        Starting = "Starting",
        /// A router that serves.
        Running = "Running",
        /// A router shutting down.
        Stopping = "Stopping",
        /// A router that is down (the initial state).
        Stopped = "Stopped",
        /// A router that failed.
        Error = "Error",
        /// A router that is gone (set by [`remove`]).
        Destroyed = "Destroyed",
    }
}

/// A router being started.
pub const STATE_STARTING: State = State::Starting;
/// A router that serves.
pub const STATE_RUNNING: State = State::Running;
/// A router shutting down.
pub const STATE_STOPPING: State = State::Stopping;
/// A router that is down (the initial state).
pub const STATE_STOPPED: State = State::Stopped;
/// A router that failed.
pub const STATE_ERROR: State = State::Error;
/// A router that is gone (set by [`remove`]).
pub const STATE_DESTROYED: State = State::Destroyed;

/// NIC roles.
pub const ROLE_GUEST: &str = "Guest";
/// The NIC holding the public (source-NAT) addresses.
pub const ROLE_PUBLIC: &str = "Public";
/// A private-gateway NIC.
pub const ROLE_PRIVATE: &str = "Private";
/// The control (link-local) NIC.
pub const ROLE_CONTROL: &str = "Control";

// Attempts at drawing a MAC nobody holds before giving up.
const MAC_ATTEMPTS: usize = 32;

/// A `domain_router` row.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct Router {
    /// Internal key.
    pub id: i64,
    /// API id.
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    /// `r-<id>-VM`.
    pub name: String,
    /// The VPC it serves.
    pub vpc_id: Option<i64>,
    /// The zone.
    pub zone_id: i64,
    /// The owner (of the VPC).
    pub account_id: i64,
    /// The owner's domain.
    pub domain_id: i64,
    /// The owning domain's path.
    pub domain_path: String,
    /// Its state.
    #[sqlx(try_from = "String")]
    pub state: State,
    /// Generation of the wanted configuration.
    pub config_generation: i64,
    /// Last generation the router applied.
    pub applied_generation: i64,
    /// Where its agent listens.
    pub agent_endpoint: Option<String>,
    /// The host it runs on (None until placed).
    pub host_id: Option<i64>,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Removal time (epoch ms), if removed.
    pub removed: Option<i64>,
}

/// A router to create (state Stopped, generations 0).
#[derive(Clone, Debug, Default)]
pub struct NewRouter {
    /// The VPC.
    pub vpc_id: Option<i64>,
    /// The zone.
    pub zone_id: i64,
    /// The owner.
    pub account_id: i64,
    /// The owner's domain.
    pub domain_id: i64,
}

/// Filters of a router list; every set field must match.
#[derive(Clone, Debug, Default)]
pub struct RouterFilter {
    /// Only this router (internal id).
    pub id: Option<i64>,
    /// Only these routers (API ids).
    pub uuids: Option<Vec<Uuid>>,
    /// Substring of the name, case-insensitive.
    pub keyword: Option<String>,
    /// Exactly this name.
    pub name: Option<String>,
    /// Only rows of these owners.
    pub scope: Scope,
    /// Only routers of this VPC.
    pub vpc_id: Option<i64>,
    /// Only this zone.
    pub zone_id: Option<i64>,
    /// Only this state.
    pub state: Option<String>,
    /// Only routers whose applied generation lags (true) or not (false).
    pub out_of_sync: Option<bool>,
}

/// A `nics` row.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct Nic {
    /// Internal key.
    pub id: i64,
    /// API id.
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    /// The router holding it (or None for a VM's NIC).
    pub router_id: Option<i64>,
    /// The VM holding it.
    pub vm_id: Option<i64>,
    /// The network it is on.
    pub network_id: i64,
    /// Position on its router/VM (0 first).
    pub device_index: i64,
    /// Locally administered MAC, unique among live NICs.
    pub mac_address: String,
    /// IPv4 address.
    #[sqlx(try_from = "StoredOpt")]
    pub ip4_address: Option<Ipv4Addr>,
    /// Netmask.
    #[sqlx(try_from = "StoredOpt")]
    pub netmask: Option<Ipv4Addr>,
    /// Gateway.
    #[sqlx(try_from = "StoredOpt")]
    pub gateway: Option<Ipv4Addr>,
    /// One of the `ROLE_*` values.
    pub role: String,
    /// Allocated, Reserved, Releasing ...
    pub state: String,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Removal time (epoch ms), if removed.
    pub removed: Option<i64>,
}

/// Who holds a NIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NicOwner {
    /// A virtual router.
    Router(i64),
    /// A guest VM.
    Vm(i64),
}

/// A NIC to create; the MAC is drawn by [`create_nic`].
#[derive(Clone, Debug)]
pub struct NewNic {
    /// Who holds it.
    pub owner: NicOwner,
    /// The network.
    pub network_id: i64,
    /// Position; None takes the next free index of the owner.
    pub device_index: Option<i64>,
    /// IPv4 address.
    pub ip4_address: Option<Ipv4Addr>,
    /// Netmask.
    pub netmask: Option<Ipv4Addr>,
    /// Gateway.
    pub gateway: Option<Ipv4Addr>,
    /// Role.
    pub role: String,
}

const COLUMNS: &str = "r.id, r.uuid, r.name, r.vpc_id, r.zone_id, r.account_id, r.domain_id, \
     d.path AS domain_path, r.state, r.config_generation, r.applied_generation, \
     r.agent_endpoint, r.host_id, r.created, r.removed";
const FROM: &str = "domain_router r JOIN domain d ON d.id = r.domain_id";
const NIC_COLUMNS: &str = "id, uuid, router_id, vm_id, network_id, device_index, mac_address, \
     ip4_address, netmask, gateway, role, state, created, removed";
pub(super) const TABLE: Table<Router> = Table::joined("domain_router", COLUMNS, FROM, "r.");
const NICS: Table<Nic> = Table::new("nics", NIC_COLUMNS);

/// Creates a router named `r-<id>-VM`, Stopped.
pub async fn create<'a>(ex: impl Into<Exec<'a>>, new: NewRouter) -> Result<Router> {
    atomically(ex.into(), move |tx| {
        Box::pin(async move {
            let mut ex = Exec::Tx(tx);
            let uuid = new_uuid();
            let id: i64 = on_db!(&mut ex, c => {
                sqlx::query_scalar(
                    "INSERT INTO domain_router (uuid, name, vpc_id, zone_id, account_id, \
                     domain_id, state, created) VALUES ($1, $1, $2, $3, $4, $5, 'Stopped', $6) \
                     RETURNING id",
                )
                .bind(&uuid)
                .bind(new.vpc_id)
                .bind(new.zone_id)
                .bind(new.account_id)
                .bind(new.domain_id)
                .bind(now_ms())
                .fetch_one(c)
                .await?
            });
            on_db!(&mut ex, c => {
                sqlx::query("UPDATE domain_router SET name = $2 WHERE id = $1")
                    .bind(id)
                    .bind(format!("r-{id}-VM"))
                    .execute(c)
                    .await?;
            });
            get_by_id(ex, id).await?.or_not_found("router", id)
        })
    })
    .await
}

/// A router by internal id, removed or not.
pub async fn get_by_id<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<Option<Router>> {
    TABLE.by_id(ex, id).await
}

/// A router by UUID, removed or not.
pub async fn get_by_uuid<'a>(ex: impl Into<Exec<'a>>, uuid: Uuid) -> Result<Option<Router>> {
    TABLE.by_uuid(ex, uuid).await
}

/// Lists live routers by creation order.
pub async fn list<'a>(
    ex: impl Into<Exec<'a>>,
    filter: &RouterFilter,
    page: Page,
) -> Result<Listed<Router>> {
    let mut w = Where::new();
    w.push("r.removed IS NULL")
        .eq_opt("r.id", filter.id)
        .eq_opt("r.vpc_id", filter.vpc_id)
        .eq_opt("r.zone_id", filter.zone_id)
        .scoped("r.", &filter.scope)
        .eq_opt("r.name", filter.name.clone())
        .eq_opt("r.state", filter.state.clone())
        .keyword(&["r.name"], filter.keyword.as_deref());
    match filter.out_of_sync {
        Some(true) => {
            w.push("r.applied_generation < r.config_generation");
        }
        Some(false) => {
            w.push("r.applied_generation >= r.config_generation");
        }
        None => {}
    }
    w.any_of_opt("r.uuid", filter.uuids.as_deref());
    TABLE.list(ex, &w, "r.id", page).await
}

/// Sets the state of a live router; false when there is none.
pub async fn set_state<'a>(ex: impl Into<Exec<'a>>, id: i64, state: State) -> Result<bool> {
    TABLE.set_state(ex, id, state.as_str()).await
}

/// Sets the state only when it is `from` (compare-and-set); false otherwise.
pub async fn transition<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
    from: State,
    to: State,
) -> Result<bool> {
    let (from, to) = (from.as_str(), to.as_str());
    let mut ex = ex.into();
    let done = on_db!(&mut ex, c => {
        sqlx::query(
            "UPDATE domain_router SET state = $3 WHERE id = $1 AND state = $2 \
             AND removed IS NULL",
        )
        .bind(id)
        .bind(from)
        .bind(to)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(done == 1)
}

/// Records where the router's agent listens (None clears it).
pub async fn set_agent_endpoint<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
    endpoint: Option<&str>,
) -> Result<bool> {
    TABLE
        .set_live(ex, id, &[("agent_endpoint", endpoint.into())])
        .await
}

/// Increments the router's configuration generation and returns the new value, in one
/// statement: concurrent callers (or transactions) each get a distinct value. Inside a
/// transaction the row stays locked until it ends.
pub async fn bump_generation<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<i64> {
    let mut ex = ex.into();
    let generation: Option<i64> = on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "UPDATE domain_router SET config_generation = config_generation + 1 \
             WHERE id = $1 AND removed IS NULL RETURNING config_generation",
        )
        .bind(id)
        .fetch_optional(c)
        .await?
    });
    generation.or_not_found("router", id)
}

/// Records that the router applied `generation`; the applied generation never goes
/// back. Returns the applied generation afterwards.
pub async fn mark_applied<'a>(ex: impl Into<Exec<'a>>, id: i64, generation: i64) -> Result<i64> {
    let mut ex = ex.into();
    let applied: Option<i64> = on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "UPDATE domain_router SET applied_generation = CASE WHEN $2 > applied_generation \
             THEN $2 ELSE applied_generation END WHERE id = $1 RETURNING applied_generation",
        )
        .bind(id)
        .bind(generation)
        .fetch_optional(c)
        .await?
    });
    applied.or_not_found("router", id)
}

/// Marks a live router removed (Destroyed) and its NICs removed; false when it already
/// was.
pub async fn remove<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<bool> {
    super::vm::remove_with_nics(ex.into(), "domain_router", "Destroyed", "router_id", id).await
}

/// A random locally administered unicast MAC (`02:xx:xx:xx:xx:xx`).
pub fn random_mac() -> String {
    let mut b = [0u8; 5];
    rand::fill(&mut b[..]);
    format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0], b[1], b[2], b[3], b[4]
    )
}

fn owner_column(owner: NicOwner) -> (&'static str, i64) {
    match owner {
        NicOwner::Router(id) => ("router_id", id),
        NicOwner::Vm(id) => ("vm_id", id),
    }
}

/// The device index a new NIC of the owner gets: one past the highest live one, 0 for
/// the first.
pub async fn next_device_index<'a>(ex: impl Into<Exec<'a>>, owner: NicOwner) -> Result<i64> {
    let (column, id) = owner_column(owner);
    let sql = format!(
        "SELECT COALESCE(MAX(device_index) + 1, 0) FROM nics WHERE {column} = $1 \
         AND removed IS NULL"
    );
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_one(c)
            .await?
    }))
}

/// Creates a NIC with a MAC no live NIC has (drawn again on a clash), atomically.
pub async fn create_nic<'a>(ex: impl Into<Exec<'a>>, new: NewNic) -> Result<Nic> {
    atomically(ex.into(), move |tx| {
        Box::pin(async move {
            let mut ex = Exec::Tx(tx);
            let device_index = match new.device_index {
                Some(i) => i,
                None => next_device_index(ex.reborrow(), new.owner).await?,
            };
            let (router_id, vm_id) = match new.owner {
                NicOwner::Router(id) => (Some(id), None),
                NicOwner::Vm(id) => (None, Some(id)),
            };
            for _ in 0..MAC_ATTEMPTS {
                let mac = random_mac();
                // DO NOTHING instead of an error keeps a PostgreSQL transaction usable
                // after a clash on the live-MAC index.
                let id: Option<i64> = on_db!(&mut ex, c => {
                    sqlx::query_scalar(
                        "INSERT INTO nics (uuid, router_id, vm_id, network_id, device_index, \
                         mac_address, ip4_address, netmask, gateway, role, state, created) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'Allocated', $11) \
                         ON CONFLICT DO NOTHING RETURNING id",
                    )
                    .bind(new_uuid())
                    .bind(router_id)
                    .bind(vm_id)
                    .bind(new.network_id)
                    .bind(device_index)
                    .bind(&mac)
                    .bind(new.ip4_address.map(|a| a.to_string()))
                    .bind(new.netmask.map(|a| a.to_string()))
                    .bind(new.gateway.map(|a| a.to_string()))
                    .bind(&new.role)
                    .bind(now_ms())
                    .fetch_optional(c)
                    .await?
                });
                if let Some(id) = id {
                    return nic_by_id(ex, id).await?.or_not_found("nic", id);
                }
            }
            Err(StoreError::Conflict(
                "could not draw a free MAC address".to_string(),
            ))
        })
    })
    .await
}

/// A NIC by internal id, removed or not.
pub async fn nic_by_id<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<Option<Nic>> {
    NICS.by_id(ex, id).await
}

/// A NIC by UUID, removed or not.
pub async fn nic_by_uuid<'a>(ex: impl Into<Exec<'a>>, uuid: Uuid) -> Result<Option<Nic>> {
    NICS.by_uuid(ex, uuid).await
}

/// Filters of a NIC list; every set field must match.
#[derive(Clone, Debug, Default)]
pub struct NicFilter {
    /// Only NICs of this holder.
    pub owner: Option<NicOwner>,
    /// Only NICs on this network.
    pub network_id: Option<i64>,
    /// Only this role.
    pub role: Option<String>,
    /// Only this address.
    pub ip4_address: Option<String>,
}

/// Lists live NICs by holder and device index.
pub async fn list_nics<'a>(
    ex: impl Into<Exec<'a>>,
    filter: &NicFilter,
    page: Page,
) -> Result<Listed<Nic>> {
    let mut w = Where::new();
    w.push("removed IS NULL")
        .eq_opt("network_id", filter.network_id)
        .eq_opt("role", filter.role.clone())
        .eq_opt("ip4_address", filter.ip4_address.clone());
    if let Some(owner) = filter.owner {
        let (column, id) = owner_column(owner);
        w.eq(column, id);
    }
    NICS.list(ex, &w, "router_id, vm_id, device_index, id", page)
        .await
}

/// The live NICs of a router or VM, by device index.
pub async fn nics_of<'a>(ex: impl Into<Exec<'a>>, owner: NicOwner) -> Result<Vec<Nic>> {
    let filter = NicFilter {
        owner: Some(owner),
        ..Default::default()
    };
    Ok(list_nics(ex, &filter, Page::ALL).await?.items)
}

/// The live NICs of the given routers in one statement, by router and
/// device index (as `nics_of` gives each router's).
pub async fn nics_of_routers<'a>(ex: impl Into<Exec<'a>>, router_ids: &[i64]) -> Result<Vec<Nic>> {
    NICS.live_by_ids(
        ex,
        "removed IS NULL",
        "router_id",
        router_ids,
        "router_id, device_index, id",
    )
    .await
}

/// The live NICs of the given VMs in one statement, by VM and device index
/// (as `nics_of` gives each VM's).
pub async fn nics_of_vms<'a>(ex: impl Into<Exec<'a>>, vm_ids: &[i64]) -> Result<Vec<Nic>> {
    NICS.live_by_ids(
        ex,
        "removed IS NULL",
        "vm_id",
        vm_ids,
        "vm_id, device_index, id",
    )
    .await
}

/// Sets the state of a live NIC.
pub async fn set_nic_state<'a>(ex: impl Into<Exec<'a>>, id: i64, state: &str) -> Result<bool> {
    NICS.set_state(ex, id, state).await
}

/// Marks a live NIC removed (its MAC becomes free again); false when it already was.
pub async fn remove_nic<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<bool> {
    NICS.soft_delete(ex, id, "Deallocated").await
}

/// Gives NIC `id` the MAC address `mac` (a VM's NIC whose MAC the client
/// chose). A MAC another live NIC has is refused by the database (Duplicate).
pub async fn set_nic_mac(tx: &mut super::Tx, id: i64, mac: &str) -> Result<()> {
    let mut ex = Exec::Tx(tx);
    on_db!(&mut ex, c => {
        sqlx::query("UPDATE nics SET mac_address = $2 WHERE id = $1")
            .bind(id)
            .bind(mac)
            .execute(c)
            .await?;
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_locally_administered_unicast() {
        for _ in 0..100 {
            let mac = random_mac();
            assert_eq!(mac.len(), 17);
            assert!(mac.starts_with("02:"), "{mac}");
        }
    }
}
