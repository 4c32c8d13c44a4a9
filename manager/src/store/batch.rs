//! Batch loads for building a router's whole state (`provision::state`): one
//! statement per table for every row the state needs, keyed by the ids the
//! caller collected, instead of one statement per tier, list, item or
//! member. A big router (10 tiers, 10 ACL lists of 100 items, 50 addresses,
//! 20 LB members) then loads in a bounded number of statements, whatever
//! its size.

use sqlx::FromRow;

use super::query::{self, Where};
use super::text::{Stored, StoredOpt};
use super::{Exec, Result, acl};
use std::net::Ipv4Addr;
use uuid::Uuid;

/// ACL lists by internal id, removed or not (as `acl::get_by_id`).
pub async fn acl_lists<'a>(ex: impl Into<Exec<'a>>, ids: &[i64]) -> Result<Vec<acl::AclList>> {
    let mut w = Where::new();
    w.any_of("id", ids);
    let sql = format!(
        "SELECT {} FROM network_acl{} ORDER BY id",
        acl::COLUMNS,
        w.sql()
    );
    query::fetch_all(&mut ex.into(), sql, w.args()).await
}

/// The live items of the given ACL lists, by list and number.
pub async fn acl_items<'a>(ex: impl Into<Exec<'a>>, list_ids: &[i64]) -> Result<Vec<acl::AclItem>> {
    let mut w = Where::new();
    w.push("removed IS NULL").any_of("acl_id", list_ids);
    let sql = format!(
        "SELECT {} FROM network_acl_item{} ORDER BY acl_id, number",
        acl::ITEM_COLUMNS,
        w.sql()
    );
    query::fetch_all(&mut ex.into(), sql, w.args()).await
}

/// The items of list `list_id` among `item_ids` that are not removed, by
/// number (what an edit of a few items sends).
pub async fn acl_items_among<'a>(
    ex: impl Into<Exec<'a>>,
    list_id: i64,
    item_ids: &[i64],
) -> Result<Vec<acl::AclItem>> {
    let mut w = Where::new();
    w.push("removed IS NULL")
        .any_of("acl_id", &[list_id])
        .any_of("id", item_ids);
    let sql = format!(
        "SELECT {} FROM network_acl_item{} ORDER BY number",
        acl::ITEM_COLUMNS,
        w.sql()
    );
    query::fetch_all(&mut ex.into(), sql, w.args()).await
}

/// One DHCP lease of a tier (as `vm::dhcp_entries`, with the tier).
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct TierDhcpEntry {
    /// The tier (network) the lease is on.
    pub network_id: i64,
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

/// The DHCP leases of the given tiers: every live NIC with an address of a
/// VM that is starting or running, in NIC order.
pub async fn dhcp_entries<'a>(
    ex: impl Into<Exec<'a>>,
    network_ids: &[i64],
) -> Result<Vec<TierDhcpEntry>> {
    let mut w = Where::new();
    w.push("n.removed IS NULL AND v.removed IS NULL")
        .push("v.state IN ('Starting', 'Running') AND n.ip4_address IS NOT NULL")
        .any_of("n.network_id", network_ids);
    let sql = format!(
        "SELECT n.network_id, n.mac_address AS mac, n.ip4_address AS ip, v.name AS hostname, \
         (n.device_index = 0) AS default_nic \
         FROM nics n JOIN vm_instance v ON v.id = n.vm_id{} ORDER BY n.id",
        w.sql()
    );
    query::fetch_all(&mut ex.into(), sql, w.args()).await
}

/// A load balancer member with its VM's UUID.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct LbMember {
    /// The rule (`firewall_rules.id` of the load balancer).
    pub load_balancer_id: i64,
    /// The member's address.
    #[sqlx(try_from = "Stored")]
    pub instance_ip: Ipv4Addr,
    /// The VM's UUID, when the VM row still exists.
    #[sqlx(try_from = "StoredOpt")]
    pub vm_uuid: Option<Uuid>,
}

/// The members of the given load balancers, in the order they were added.
pub async fn lb_members<'a>(ex: impl Into<Exec<'a>>, lb_ids: &[i64]) -> Result<Vec<LbMember>> {
    let mut w = Where::new();
    w.any_of("m.load_balancer_id", lb_ids);
    let sql = format!(
        "SELECT m.load_balancer_id, m.instance_ip, v.uuid AS vm_uuid \
         FROM load_balancer_vm_map m LEFT JOIN vm_instance v ON v.id = m.vm_id{} ORDER BY m.id",
        w.sql()
    );
    query::fetch_all(&mut ex.into(), sql, w.args()).await
}
