//! Public IP ranges (CloudStack table `vlan`) and their addresses (`user_ip_address`).
//!
//! Creating a range also creates one `Free` row per address, as CloudStack does, so
//! allocation is a single conditional UPDATE and every address has a UUID from the
//! start. Addresses are IPv4; each row also keeps the address as an integer so ranges
//! can be compared in SQL.
//!
//! Kept whole because a range and its addresses are created and removed together, one `Free` row
//! per address.

use std::net::Ipv4Addr;

use sqlx::{AssertSqlSafe, FromRow};

use super::Scope;
use super::query::{self, Arg, Where, bind_args};
use super::table::Table;
use super::text::{Stored, StoredOpt};
use super::{Backend, Exec, Listed, Page, Result, StoreError, atomically, new_uuid, now_ms};
use uuid::Uuid;

crate::text_enum! {
    /// A public address's state (column `state`).
    pub enum IpState {
        /// `state` of an address nobody holds.
        Free = "Free",
        /// `state` of an address an account holds.
        Allocated = "Allocated",
        /// `state` of an address being given back (its router may still hold it).
        Releasing = "Releasing",
    }
}

/// `state` of an address nobody holds.
pub const IP_FREE: IpState = IpState::Free;
/// `state` of an address an account holds.
pub const IP_ALLOCATED: IpState = IpState::Allocated;
/// `state` of an address being given back (its router may still hold it).
pub const IP_RELEASING: IpState = IpState::Releasing;

/// The largest range created in one call (a /16).
pub const MAX_RANGE_SIZE: u32 = 65_536;
// Rows per INSERT when creating a range's addresses: 3 values per row stays far below
// both backends' limits on bound parameters.
const INSERT_BATCH: usize = 500;

/// A `vlan` row: one public IP range of a zone.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct VlanRange {
    /// Internal key.
    pub id: i64,
    /// API id.
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    /// The zone.
    pub zone_id: i64,
    /// The physical network carrying it.
    pub physical_network_id: Option<i64>,
    /// `vlan://<n>` or `untagged`.
    pub vlan_id: String,
    /// The range's gateway.
    #[sqlx(try_from = "Stored")]
    pub gateway: Ipv4Addr,
    /// The range's netmask.
    #[sqlx(try_from = "Stored")]
    pub netmask: Ipv4Addr,
    /// First address.
    #[sqlx(try_from = "Stored")]
    pub start_ip: Ipv4Addr,
    /// Last address.
    #[sqlx(try_from = "Stored")]
    pub end_ip: Ipv4Addr,
    /// First address as an integer.
    pub start_num: i64,
    /// Last address as an integer.
    pub end_num: i64,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Removal time (epoch ms), if removed.
    pub removed: Option<i64>,
}

/// A public IP range to create.
#[derive(Clone, Debug)]
pub struct NewVlanRange {
    /// The zone (must be live).
    pub zone_id: i64,
    /// The physical network carrying it.
    pub physical_network_id: Option<i64>,
    /// `vlan://<n>` or `untagged`.
    pub vlan_id: String,
    /// Gateway.
    pub gateway: Ipv4Addr,
    /// Netmask.
    pub netmask: Ipv4Addr,
    /// First address.
    pub start_ip: Ipv4Addr,
    /// Last address (inclusive).
    pub end_ip: Ipv4Addr,
}

/// A `user_ip_address` row: one public address.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct PublicIp {
    /// Internal key.
    pub id: i64,
    /// API id.
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    /// The zone.
    pub zone_id: i64,
    /// The range it belongs to.
    pub vlan_db_id: i64,
    /// The address.
    #[sqlx(try_from = "Stored")]
    pub public_ip_address: Ipv4Addr,
    /// The address as an integer.
    pub ip_num: i64,
    /// [`IP_FREE`] or [`IP_ALLOCATED`].
    #[sqlx(try_from = "String")]
    pub state: IpState,
    /// Allocation time (epoch ms).
    pub allocated: Option<i64>,
    /// The holding account.
    pub account_id: Option<i64>,
    /// The holding account's domain.
    pub domain_id: Option<i64>,
    /// The VPC it is associated with.
    pub vpc_id: Option<i64>,
    /// The tier it is associated with.
    pub associated_network_id: Option<i64>,
    /// The VPC's source-NAT address.
    pub source_nat: bool,
    /// Static NAT enabled on it.
    pub one_to_one_nat: bool,
    /// The VM behind it (static NAT).
    pub vm_id: Option<i64>,
    /// The VM address behind it (static NAT).
    #[sqlx(try_from = "StoredOpt")]
    pub vm_ip: Option<Ipv4Addr>,
}

/// Filters of a public IP list; every set field must match.
#[derive(Clone, Debug, Default)]
pub struct PublicIpFilter {
    /// Only this address (API id).
    pub uuid: Option<Uuid>,
    /// Only these addresses (API ids).
    pub uuids: Option<Vec<Uuid>>,
    /// Only this zone.
    pub zone_id: Option<i64>,
    /// Only this exact address.
    pub address: Option<String>,
    /// Only addresses held by these owners.
    pub scope: Scope,
    /// Only addresses of this VPC.
    pub vpc_id: Option<i64>,
    /// Only this state.
    pub state: Option<String>,
    /// Only (non-)source-NAT addresses.
    pub source_nat: Option<bool>,
    /// Only addresses associated with this tier.
    pub associated_network_id: Option<i64>,
    /// Only addresses with (without) static NAT.
    pub one_to_one_nat: Option<bool>,
    /// Only addresses whose static NAT goes to this VM.
    pub vm_id: Option<i64>,
    /// Only addresses somebody holds (any state but Free).
    pub held_only: bool,
}

/// Who takes an address.
#[derive(Clone, Copy, Debug, Default)]
pub struct IpOwner {
    /// The account.
    pub account_id: i64,
    /// Its domain.
    pub domain_id: i64,
    /// The VPC, if the address goes to one.
    pub vpc_id: Option<i64>,
    /// Whether it becomes the VPC's source-NAT address.
    pub source_nat: bool,
}

const RANGE_COLUMNS: &str = "id, uuid, zone_id, physical_network_id, vlan_id, gateway, netmask, \
     start_ip, end_ip, start_num, end_num, created, removed";
const IP_COLUMNS: &str = "id, uuid, zone_id, vlan_db_id, public_ip_address, ip_num, state, \
     allocated, account_id, domain_id, vpc_id, associated_network_id, source_nat, one_to_one_nat, vm_id, vm_ip";
const RANGES: Table<VlanRange> = Table::new("vlan", RANGE_COLUMNS);
const IPS: Table<PublicIp> = Table::new("user_ip_address", IP_COLUMNS);

/// Whether two inclusive ranges `[a_start, a_end]` and `[b_start, b_end]` share a value.
pub fn ranges_overlap(a_start: i64, a_end: i64, b_start: i64, b_end: i64) -> bool {
    a_start <= b_end && b_start <= a_end
}

/// The first live range of the zone that shares an address with `[start, end]`.
pub async fn overlapping_range<'a>(
    ex: impl Into<Exec<'a>>,
    zone_id: i64,
    start: Ipv4Addr,
    end: Ipv4Addr,
) -> Result<Option<VlanRange>> {
    let mut w = Where::new();
    w.push("removed IS NULL").eq("zone_id", zone_id);
    let (s, e) = (
        w.arg(i64::from(u32::from(start))),
        w.arg(i64::from(u32::from(end))),
    );
    // The SQL form of `ranges_overlap`.
    w.push(format!("start_num <= {e} AND {s} <= end_num"));
    let sql = format!(
        "SELECT {RANGE_COLUMNS} FROM vlan{} ORDER BY start_num",
        w.sql()
    );
    Ok(query::fetch_all(&mut ex.into(), sql, w.args())
        .await?
        .into_iter()
        .next())
}

/// Creates a range and a `Free` row per address, atomically. Refused (Conflict) when
/// the range is empty, larger than [`MAX_RANGE_SIZE`], or overlaps a live range of the
/// zone.
pub async fn create_range<'a>(ex: impl Into<Exec<'a>>, new: NewVlanRange) -> Result<VlanRange> {
    let (start, end) = (u32::from(new.start_ip), u32::from(new.end_ip));
    if start > end || end - start >= MAX_RANGE_SIZE {
        return Err(StoreError::Conflict(format!(
            "invalid public IP range {}-{}: the end must not precede the start and it may \
             hold at most {MAX_RANGE_SIZE} addresses",
            new.start_ip, new.end_ip
        )));
    }
    atomically(ex.into(), move |tx| {
        Box::pin(async move {
            let mut ex = Exec::Tx(tx);
            if let Some(other) =
                overlapping_range(ex.reborrow(), new.zone_id, new.start_ip, new.end_ip).await?
            {
                return Err(StoreError::Conflict(format!(
                    "the IP range {}-{} overlaps the range {}-{} of this zone",
                    new.start_ip, new.end_ip, other.start_ip, other.end_ip
                )));
            }
            let id: i64 = on_db!(&mut ex, c => {
                sqlx::query_scalar(
                    "INSERT INTO vlan (uuid, zone_id, physical_network_id, vlan_id, gateway, \
                     netmask, start_ip, end_ip, start_num, end_num, created) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
                )
                .bind(new_uuid())
                .bind(new.zone_id)
                .bind(new.physical_network_id)
                .bind(&new.vlan_id)
                .bind(new.gateway.to_string())
                .bind(new.netmask.to_string())
                .bind(new.start_ip.to_string())
                .bind(new.end_ip.to_string())
                .bind(i64::from(start))
                .bind(i64::from(end))
                .bind(now_ms())
                .fetch_one(c)
                .await?
            });
            let addresses: Vec<u32> = (start..=end).collect();
            for chunk in addresses.chunks(INSERT_BATCH) {
                let mut args = vec![Arg::Int(new.zone_id), Arg::Int(id)];
                let mut rows = Vec::with_capacity(chunk.len());
                for &n in chunk {
                    let base = args.len();
                    args.push(Arg::Text(new_uuid()));
                    args.push(Arg::Text(Ipv4Addr::from(n).to_string()));
                    args.push(Arg::Int(i64::from(n)));
                    rows.push(format!(
                        "(${}, $1, $2, ${}, ${}, 'Free')",
                        base + 1,
                        base + 2,
                        base + 3
                    ));
                }
                let sql = format!(
                    "INSERT INTO user_ip_address (uuid, zone_id, vlan_db_id, public_ip_address, \
                     ip_num, state) VALUES {}",
                    rows.join(", ")
                );
                on_db!(&mut ex, c => {
                    bind_args!(sqlx::query(AssertSqlSafe(sql)), &args).execute(c).await?;
                });
            }
            Ok(range_by_id(ex, id).await?.expect("range just inserted"))
        })
    })
    .await
}

/// A range by internal id, removed or not.
pub async fn range_by_id<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<Option<VlanRange>> {
    RANGES.by_id(ex, id).await
}

/// Ranges by internal id, removed or not, in one statement (list views).
pub async fn ranges_by_ids<'a>(ex: impl Into<Exec<'a>>, ids: &[i64]) -> Result<Vec<VlanRange>> {
    RANGES.by_ids(ex, ids).await
}

/// A range by UUID, removed or not.
pub async fn range_by_uuid<'a>(ex: impl Into<Exec<'a>>, uuid: Uuid) -> Result<Option<VlanRange>> {
    RANGES.by_uuid(ex, uuid).await
}

/// The live ranges of a zone (all zones if None), by first address.
pub async fn list_ranges<'a>(
    ex: impl Into<Exec<'a>>,
    zone_id: Option<i64>,
    page: Page,
) -> Result<Listed<VlanRange>> {
    let mut w = Where::new();
    w.push("removed IS NULL").eq_opt("zone_id", zone_id);
    RANGES.list(ex, &w, "zone_id, start_num", page).await
}

/// Deletes a range's addresses and marks it removed, atomically. Refused (Conflict)
/// while any of its addresses is held.
pub async fn remove_range<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<bool> {
    atomically(ex.into(), move |tx| {
        Box::pin(async move {
            let mut ex = Exec::Tx(tx);
            let held: i64 = on_db!(&mut ex, c => {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM user_ip_address WHERE vlan_db_id = $1 AND state <> 'Free'",
                )
                .bind(id)
                .fetch_one(c)
                .await?
            });
            if held > 0 {
                return Err(StoreError::Conflict(format!(
                    "{held} addresses of the range are still allocated"
                )));
            }
            on_db!(&mut ex, c => {
                sqlx::query("DELETE FROM user_ip_address WHERE vlan_db_id = $1")
                    .bind(id)
                    .execute(c)
                    .await?;
            });
            RANGES.remove(ex, id).await
        })
    })
    .await
}

/// Allocates the lowest free address of the zone (or exactly `address` when given) to
/// `owner`; None when nothing (or not that address) is free. Concurrent allocations
/// never get the same address.
pub async fn allocate_ip<'a>(
    ex: impl Into<Exec<'a>>,
    zone_id: i64,
    address: Option<Ipv4Addr>,
    owner: IpOwner,
) -> Result<Option<PublicIp>> {
    let mut ex = ex.into();
    let lock = match ex.backend() {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let mut w = Where::new();
    let args_owner = [
        w.arg(now_ms()),
        w.arg(owner.account_id),
        w.arg(owner.domain_id),
    ];
    let vpc = match owner.vpc_id {
        Some(v) => w.arg(v),
        None => "NULL".to_string(),
    };
    let source_nat = w.arg(owner.source_nat);
    w.push("state = 'Free'").eq("zone_id", zone_id);
    if let Some(address) = address {
        w.eq("ip_num", i64::from(u32::from(address)));
    }
    let sql = format!(
        "UPDATE user_ip_address SET state = 'Allocated', allocated = {}, account_id = {}, \
         domain_id = {}, vpc_id = {vpc}, source_nat = {source_nat} WHERE id = \
         (SELECT id FROM user_ip_address{} ORDER BY ip_num LIMIT 1{lock}) AND state = 'Free' \
         RETURNING {IP_COLUMNS}",
        args_owner[0],
        args_owner[1],
        args_owner[2],
        w.sql()
    );
    Ok(on_db!(&mut ex, c => {
        bind_args!(sqlx::query_as(AssertSqlSafe(sql)), w.args())
            .fetch_optional(c)
            .await?
    }))
}

/// Returns an address to the pool: Free, with no owner, VPC, tier or NAT.
pub async fn release_ip<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<bool> {
    let mut ex = ex.into();
    let done = on_db!(&mut ex, c => {
        sqlx::query(
            "UPDATE user_ip_address SET state = 'Free', allocated = NULL, account_id = NULL, \
             domain_id = NULL, vpc_id = NULL, associated_network_id = NULL, \
             source_nat = FALSE, one_to_one_nat = FALSE, vm_id = NULL, vm_ip = NULL \
             WHERE id = $1 AND state <> 'Free'",
        )
        .bind(id)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(done == 1)
}

/// Associates an allocated address with a tier (None to detach) and sets static NAT.
pub async fn set_association<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
    network_id: Option<i64>,
    one_to_one_nat: bool,
) -> Result<bool> {
    let mut ex = ex.into();
    let done = on_db!(&mut ex, c => {
        sqlx::query(
            "UPDATE user_ip_address SET associated_network_id = $2, one_to_one_nat = $3 \
             WHERE id = $1 AND state = 'Allocated'",
        )
        .bind(id)
        .bind(network_id)
        .bind(one_to_one_nat)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(done == 1)
}

/// An address by internal id.
pub async fn ip_by_id<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<Option<PublicIp>> {
    IPS.by_id(ex, id).await
}

/// Addresses by internal id in one statement (list views).
pub async fn ips_by_ids<'a>(ex: impl Into<Exec<'a>>, ids: &[i64]) -> Result<Vec<PublicIp>> {
    IPS.by_ids(ex, ids).await
}

/// An address by UUID.
pub async fn ip_by_uuid<'a>(ex: impl Into<Exec<'a>>, uuid: Uuid) -> Result<Option<PublicIp>> {
    IPS.by_uuid(ex, uuid).await
}

/// Lists addresses by address.
pub async fn list_ips<'a>(
    ex: impl Into<Exec<'a>>,
    filter: &PublicIpFilter,
    page: Page,
) -> Result<Listed<PublicIp>> {
    let mut w = Where::new();
    w.eq_opt("uuid", filter.uuid)
        .eq_opt("zone_id", filter.zone_id)
        .eq_opt("public_ip_address", filter.address.clone())
        .eq_opt("account_id", filter.scope.account_id)
        .eq_opt("vpc_id", filter.vpc_id)
        .eq_opt("state", filter.state.clone())
        .eq_opt("source_nat", filter.source_nat)
        .eq_opt("domain_id", filter.scope.domain_id)
        .eq_opt("associated_network_id", filter.associated_network_id)
        .eq_opt("one_to_one_nat", filter.one_to_one_nat)
        .eq_opt("vm_id", filter.vm_id)
        .any_of_opt("uuid", filter.uuids.as_deref());
    if filter.held_only {
        w.push("state <> 'Free'");
    }
    // The table has no domain path: the subtree is asked of `domain`.
    if let Some(prefix) = &filter.scope.domain_path_prefix {
        let p = w.arg(prefix.as_str());
        w.push(format!(
            "domain_id IN (SELECT id FROM domain WHERE SUBSTR(path, 1, LENGTH({p})) = {p})"
        ));
    }
    IPS.list(ex, &w, "ip_num", page).await
}

/// Makes `ip_id` the VPC's only source-NAT address.
pub async fn set_source_nat<'a>(ex: impl Into<Exec<'a>>, vpc_id: i64, ip_id: i64) -> Result<()> {
    let mut ex = ex.into();
    on_db!(&mut ex, c => {
        sqlx::query(
            "UPDATE user_ip_address SET source_nat = (id = $2) \
             WHERE vpc_id = $1 AND state = 'Allocated'",
        )
        .bind(vpc_id)
        .bind(ip_id)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(())
}

/// Sets the state of a held address (e.g. [`IP_RELEASING`], or back to
/// [`IP_ALLOCATED`]).
pub async fn set_ip_state<'a>(ex: impl Into<Exec<'a>>, id: i64, state: IpState) -> Result<bool> {
    let state = state.as_str();
    let mut ex = ex.into();
    let done = on_db!(&mut ex, c => {
        sqlx::query("UPDATE user_ip_address SET state = $2 WHERE id = $1 AND state <> 'Free'")
            .bind(id)
            .bind(state)
            .execute(c)
            .await?
            .rows_affected()
    });
    Ok(done == 1)
}

/// Sets an allocated address's tier and static NAT target together: with a VM
/// (id and address) static NAT is on, without it off.
pub async fn set_static_nat<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
    network_id: Option<i64>,
    vm: Option<(i64, &str)>,
) -> Result<bool> {
    let mut ex = ex.into();
    let done = on_db!(&mut ex, c => {
        sqlx::query(
            "UPDATE user_ip_address SET associated_network_id = $2, one_to_one_nat = $3, \
             vm_id = $4, vm_ip = $5 WHERE id = $1 AND state = 'Allocated'",
        )
        .bind(id)
        .bind(network_id)
        .bind(vm.is_some())
        .bind(vm.map(|(vm_id, _)| vm_id))
        .bind(vm.map(|(_, ip)| ip.to_string()))
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(done == 1)
}
