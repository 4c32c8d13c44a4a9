//! What VMs read from their router (`vm_user_data`): the user data (base64,
//! as CloudStack keeps it), the public keys of the key pairs a VM was
//! deployed or reset with, its sealed password and the values of its
//! registered user data's parameters; and, per tier, the rows the router's VM data is
//! built from.

use sqlx::FromRow;

use super::query::{self, Where};
use super::{Exec, Result};

/// A `vm_user_data` row.
#[derive(Clone, Debug, Default, PartialEq, Eq, FromRow)]
pub struct VmUserData {
    pub vm_id: i64,
    /// Base64; empty when the VM has none.
    pub user_data: String,
    /// One public key a line; empty when the VM has none.
    pub public_keys: String,
    /// The key pairs' names, comma-separated (CloudStack's `keypairs`).
    pub keypair_names: String,
    /// The VM's password, sealed with the database key; empty when its
    /// template takes none.
    pub password: String,
    /// The registered user data it was given (`userdataid`), if any.
    pub user_data_id: Option<i64>,
    /// The values of that user data's parameters, a JSON object of strings;
    /// empty when none.
    pub user_data_details: String,
}

/// The VM's row, or an empty one.
pub async fn get<'a>(ex: impl Into<Exec<'a>>, vm_id: i64) -> Result<VmUserData> {
    let mut ex = ex.into();
    let row: Option<VmUserData> = on_db!(&mut ex, c => {
        sqlx::query_as(
            "SELECT vm_id, user_data, public_keys, keypair_names, password, user_data_id, \
             user_data_details FROM vm_user_data WHERE vm_id = $1",
        )
        .bind(vm_id)
        .fetch_optional(c)
        .await?
    });
    Ok(row.unwrap_or(VmUserData {
        vm_id,
        ..VmUserData::default()
    }))
}

/// Writes the VM's row.
pub async fn set<'a>(ex: impl Into<Exec<'a>>, row: &VmUserData) -> Result<()> {
    let mut ex = ex.into();
    on_db!(&mut ex, c => {
        sqlx::query(
            "INSERT INTO vm_user_data (vm_id, user_data, public_keys, keypair_names, password, \
             user_data_id, user_data_details) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (vm_id) DO UPDATE SET \
             user_data = excluded.user_data, public_keys = excluded.public_keys, \
             keypair_names = excluded.keypair_names, password = excluded.password, \
             user_data_id = excluded.user_data_id, \
             user_data_details = excluded.user_data_details",
        )
        .bind(row.vm_id)
        .bind(&row.user_data)
        .bind(&row.public_keys)
        .bind(&row.keypair_names)
        .bind(&row.password)
        .bind(row.user_data_id)
        .bind(&row.user_data_details)
        .execute(c)
        .await?;
    });
    Ok(())
}

/// What one VM NIC on a tier reads from the router.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct TierVmRow {
    pub network_id: i64,
    pub mac: String,
    #[sqlx(try_from = "super::text::Stored")]
    pub ip: std::net::Ipv4Addr,
    #[sqlx(try_from = "super::text::Stored")]
    pub vm_uuid: uuid::Uuid,
    /// The host name.
    pub hostname: String,
    pub service_offering: String,
    pub zone_name: String,
    /// Base64, empty when none.
    pub user_data: String,
    /// One key a line, empty when none.
    pub public_keys: String,
    /// Sealed; empty when none.
    pub password: String,
    /// A JSON object of strings; empty when none.
    pub user_data_details: String,
}

/// The VM data rows of the given tiers: the same NICs their DHCP lists hold
/// (live VMs Starting or Running, with an address), in NIC order.
pub async fn for_tiers<'a>(ex: impl Into<Exec<'a>>, network_ids: &[i64]) -> Result<Vec<TierVmRow>> {
    let mut w = Where::new();
    w.push("n.removed IS NULL AND v.removed IS NULL")
        .push("v.state IN ('Starting', 'Running') AND n.ip4_address IS NOT NULL")
        .any_of("n.network_id", network_ids);
    let sql = format!(
        "SELECT n.network_id, n.mac_address AS mac, n.ip4_address AS ip, v.uuid AS vm_uuid, \
         v.name AS hostname, o.name AS service_offering, z.name AS zone_name, \
         COALESCE(d.user_data, '') AS user_data, COALESCE(d.public_keys, '') AS public_keys, \
         COALESCE(d.password, '') AS password, \
         COALESCE(d.user_data_details, '') AS user_data_details \
         FROM nics n JOIN vm_instance v ON v.id = n.vm_id \
         JOIN service_offering o ON o.id = v.service_offering_id \
         JOIN data_center z ON z.id = v.zone_id \
         LEFT JOIN vm_user_data d ON d.vm_id = v.id{} ORDER BY n.id",
        w.sql()
    );
    query::fetch_all(&mut ex.into(), sql, w.args()).await
}
