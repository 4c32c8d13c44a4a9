//! Guest VMs (CloudStack table `vm_instance`), their offerings and templates.

use sqlx::FromRow;

use super::{Exec, Result};

/// One VM NIC's DHCP lease as the router serves it.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct DhcpEntry {
    /// The NIC's MAC.
    pub mac: String,
    /// The NIC's address.
    pub ip: String,
    /// The VM's name (its host name).
    pub hostname: String,
    /// Whether this is the VM's first NIC (the one with the default route).
    pub default_nic: bool,
}

/// The DHCP leases of a network: every live VM NIC with an address on it.
pub async fn dhcp_entries<'a>(ex: impl Into<Exec<'a>>, network_id: i64) -> Result<Vec<DhcpEntry>> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_as(
            "SELECT n.mac_address AS mac, n.ip4_address AS ip, v.name AS hostname, \
             (n.device_index = 0) AS default_nic \
             FROM nics n JOIN vm_instance v ON v.id = n.vm_id \
             WHERE n.network_id = $1 AND n.removed IS NULL AND v.removed IS NULL \
             AND n.ip4_address IS NOT NULL ORDER BY n.id",
        )
        .bind(network_id)
        .fetch_all(c)
        .await?
    }))
}
