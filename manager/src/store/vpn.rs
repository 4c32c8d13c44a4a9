//! Site-to-site VPN (CloudStack's `s2s_vpn_gateway`, `s2s_customer_gateway`
//! and `s2s_vpn_connection`): a VPC's VPN gateway on its source NAT address,
//! the customer gateways an account describes, and the connections between
//! the two. Rows are soft-deleted. A customer gateway's pre-shared key is
//! stored as the router gets it (the state loader builds every resync from
//! these rows); its row type keeps it out of debug output.
//!
//! Kept whole because gateways, customer gateways and connections are removed together, as
//! CloudStack's VPC and account cleanup does.

use sqlx::FromRow;
use uuid::Uuid;

use super::table::Table;
use super::text::Stored;
use super::{Exec, Result, new_uuid, now_ms};

crate::text_enum! {
    /// A connection's state (column `state`), CloudStack's
    /// `Site2SiteVpnConnection.State`.
    pub enum ConnectionState {
        /// Stored, not yet configured on the router.
        Pending = "Pending",
        /// The tunnel is up.
        Connected = "Connected",
        /// Configured, the tunnel is not up (a passive end waits for its peer).
        Disconnected = "Disconnected",
        /// The router could not bring it up; `error` says why.
        Error = "Error",
    }
}

/// An `s2s_vpn_gateway` row with its domain's path.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct VpnGateway {
    /// Internal key.
    pub id: i64,
    /// API id.
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    /// The VPC.
    pub vpc_id: i64,
    /// The public address (`user_ip_address`) the tunnels end on.
    pub addr_id: i64,
    /// The owner.
    pub account_id: i64,
    /// The owner's domain.
    pub domain_id: i64,
    /// The owning domain's path (`/`, `/a/`), for scope checks.
    pub domain_path: String,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Removal time (epoch ms), if removed.
    pub removed: Option<i64>,
}

/// An `s2s_customer_gateway` row with its domain's path.
#[derive(Clone, PartialEq, Eq, FromRow)]
pub struct CustomerGateway {
    /// Internal key.
    pub id: i64,
    /// API id.
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    /// Name, unique among the account's live customer gateways.
    pub name: String,
    /// The peer's public address (or DNS name, as CloudStack accepts).
    pub gateway_ip: String,
    /// The peer's subnets, comma-separated as the API takes them.
    pub guest_cidr_list: String,
    /// The pre-shared key, in clear here; sealed with the database key in
    /// the column.
    #[sqlx(try_from = "super::secret::Sealed")]
    pub ipsec_psk: String,
    /// `cipher-hash[;dhgroup]`, comma-separated.
    pub ike_policy: String,
    /// `cipher-hash[;dhgroup]`, comma-separated.
    pub esp_policy: String,
    /// Phase 1 lifetime, seconds.
    pub ike_lifetime: i64,
    /// Phase 2 lifetime, seconds.
    pub esp_lifetime: i64,
    /// Dead peer detection.
    pub dpd: bool,
    /// Force UDP encapsulation (NAT-T) of ESP.
    pub force_encap: bool,
    /// IKEv2: one child SA per remote subnet.
    pub split_connections: bool,
    /// `ike`, `ikev1` or `ikev2`.
    pub ike_version: String,
    /// The owner.
    pub account_id: i64,
    /// The owner's domain.
    pub domain_id: i64,
    /// The owning domain's path.
    pub domain_path: String,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Removal time (epoch ms), if removed.
    pub removed: Option<i64>,
}

// The key stays out of debug output (logs, panics), sealed or not.
impl std::fmt::Debug for CustomerGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomerGateway")
            .field("id", &self.id)
            .field("uuid", &self.uuid)
            .field("name", &self.name)
            .field("gateway_ip", &self.gateway_ip)
            .field("guest_cidr_list", &self.guest_cidr_list)
            .field("ipsec_psk", &"<secret>")
            .field("ike_policy", &self.ike_policy)
            .field("esp_policy", &self.esp_policy)
            .field("account_id", &self.account_id)
            .field("removed", &self.removed)
            .finish_non_exhaustive()
    }
}

/// What a customer gateway is made of (create and update).
#[derive(Clone, PartialEq, Eq)]
pub struct CustomerGatewayFields {
    pub name: String,
    pub gateway_ip: String,
    pub guest_cidr_list: String,
    pub ipsec_psk: String,
    pub ike_policy: String,
    pub esp_policy: String,
    pub ike_lifetime: i64,
    pub esp_lifetime: i64,
    pub dpd: bool,
    pub force_encap: bool,
    pub split_connections: bool,
    pub ike_version: String,
}

/// An `s2s_vpn_connection` row with its domain's path.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct Connection {
    /// Internal key.
    pub id: i64,
    /// API id.
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    /// The VPC's end.
    pub vpn_gateway_id: i64,
    /// The peer's end.
    pub customer_gateway_id: i64,
    /// Whether the router waits for the peer instead of initiating.
    pub passive: bool,
    /// Its state.
    #[sqlx(try_from = "String")]
    pub state: ConnectionState,
    /// Why the state is Error; empty otherwise.
    pub error: String,
    /// How often it was reset (the router re-initiates when it changes).
    pub resets: i64,
    /// The owner.
    pub account_id: i64,
    /// The owner's domain.
    pub domain_id: i64,
    /// The owning domain's path.
    pub domain_path: String,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Removal time (epoch ms), if removed.
    pub removed: Option<i64>,
}

const GW_COLUMNS: &str = "g.id, g.uuid, g.vpc_id, g.addr_id, g.account_id, g.domain_id, \
     d.path AS domain_path, g.created, g.removed";
const GW_FROM: &str = "s2s_vpn_gateway g JOIN domain d ON d.id = g.domain_id";
const CG_COLUMNS: &str = "c.id, c.uuid, c.name, c.gateway_ip, c.guest_cidr_list, c.ipsec_psk, \
     c.ike_policy, c.esp_policy, c.ike_lifetime, c.esp_lifetime, c.dpd, c.force_encap, \
     c.split_connections, c.ike_version, c.account_id, c.domain_id, d.path AS domain_path, \
     c.created, c.removed";
const CG_FROM: &str = "s2s_customer_gateway c JOIN domain d ON d.id = c.domain_id";
const CONN_COLUMNS: &str = "n.id, n.uuid, n.vpn_gateway_id, n.customer_gateway_id, n.passive, \
     n.state, n.error, n.resets, n.account_id, n.domain_id, d.path AS domain_path, n.created, n.removed";
const CONN_FROM: &str = "s2s_vpn_connection n JOIN domain d ON d.id = n.domain_id";
const GATEWAYS: Table<VpnGateway> = Table::joined("s2s_vpn_gateway", GW_COLUMNS, GW_FROM, "g.");
const CUSTOMER_GATEWAYS: Table<CustomerGateway> =
    Table::joined("s2s_customer_gateway", CG_COLUMNS, CG_FROM, "c.");
const CONNECTIONS: Table<Connection> =
    Table::joined("s2s_vpn_connection", CONN_COLUMNS, CONN_FROM, "n.");

// ---- VPN gateways ----

/// Stores a VPC's VPN gateway; `Duplicate` when the VPC has one.
pub async fn create_gateway(
    ex: impl Into<Exec<'_>>,
    vpc_id: i64,
    addr_id: i64,
    account_id: i64,
    domain_id: i64,
) -> Result<i64> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "INSERT INTO s2s_vpn_gateway (uuid, vpc_id, addr_id, account_id, domain_id, created) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(new_uuid())
        .bind(vpc_id)
        .bind(addr_id)
        .bind(account_id)
        .bind(domain_id)
        .bind(now_ms())
        .fetch_one(c)
        .await?
    }))
}

/// A VPN gateway by internal id, removed or not.
pub async fn gateway_by_id(ex: impl Into<Exec<'_>>, id: i64) -> Result<Option<VpnGateway>> {
    GATEWAYS.by_id(ex, id).await
}

/// A VPN gateway by API id, removed or not.
pub async fn gateway_by_uuid(ex: impl Into<Exec<'_>>, uuid: Uuid) -> Result<Option<VpnGateway>> {
    GATEWAYS.by_uuid(ex, uuid).await
}

/// The live VPN gateway of a VPC.
pub async fn gateway_of_vpc(ex: impl Into<Exec<'_>>, vpc_id: i64) -> Result<Option<VpnGateway>> {
    let rows = GATEWAYS.live(ex, &[("vpc_id", vpc_id.into())]).await?;
    Ok(rows.into_iter().next())
}

/// Every live VPN gateway, oldest first (the caller filters by scope).
pub async fn gateways(ex: impl Into<Exec<'_>>) -> Result<Vec<VpnGateway>> {
    GATEWAYS.live(ex, &[]).await
}

/// Removes a VPN gateway; false when it was gone.
pub async fn remove_gateway(ex: impl Into<Exec<'_>>, id: i64) -> Result<bool> {
    GATEWAYS.remove(ex, id).await
}

// ---- customer gateways ----

/// Stores a customer gateway; `Duplicate` when the account has a live one of
/// that name.
pub async fn create_customer_gateway(
    ex: impl Into<Exec<'_>>,
    f: &CustomerGatewayFields,
    account_id: i64,
    domain_id: i64,
) -> Result<i64> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "INSERT INTO s2s_customer_gateway (uuid, name, gateway_ip, guest_cidr_list, \
             ipsec_psk, ike_policy, esp_policy, ike_lifetime, esp_lifetime, dpd, force_encap, \
             split_connections, ike_version, account_id, domain_id, created) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id",
        )
        .bind(new_uuid())
        .bind(&f.name)
        .bind(&f.gateway_ip)
        .bind(&f.guest_cidr_list)
        .bind(super::secret::seal_with_ring(&f.ipsec_psk))
        .bind(&f.ike_policy)
        .bind(&f.esp_policy)
        .bind(f.ike_lifetime)
        .bind(f.esp_lifetime)
        .bind(f.dpd)
        .bind(f.force_encap)
        .bind(f.split_connections)
        .bind(&f.ike_version)
        .bind(account_id)
        .bind(domain_id)
        .bind(now_ms())
        .fetch_one(c)
        .await?
    }))
}

/// Replaces a live customer gateway's fields; `Duplicate` when the name is
/// another live gateway's of the account.
pub async fn update_customer_gateway(
    ex: impl Into<Exec<'_>>,
    id: i64,
    f: &CustomerGatewayFields,
) -> Result<bool> {
    let mut ex = ex.into();
    let done = on_db!(&mut ex, c => {
        sqlx::query(
            "UPDATE s2s_customer_gateway SET name = $2, gateway_ip = $3, guest_cidr_list = $4, \
             ipsec_psk = $5, ike_policy = $6, esp_policy = $7, ike_lifetime = $8, \
             esp_lifetime = $9, dpd = $10, force_encap = $11, split_connections = $12, \
             ike_version = $13 WHERE id = $1 AND removed IS NULL",
        )
        .bind(id)
        .bind(&f.name)
        .bind(&f.gateway_ip)
        .bind(&f.guest_cidr_list)
        .bind(super::secret::seal_with_ring(&f.ipsec_psk))
        .bind(&f.ike_policy)
        .bind(&f.esp_policy)
        .bind(f.ike_lifetime)
        .bind(f.esp_lifetime)
        .bind(f.dpd)
        .bind(f.force_encap)
        .bind(f.split_connections)
        .bind(&f.ike_version)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(done == 1)
}

/// A customer gateway by internal id, removed or not.
pub async fn customer_gateway_by_id(
    ex: impl Into<Exec<'_>>,
    id: i64,
) -> Result<Option<CustomerGateway>> {
    CUSTOMER_GATEWAYS.by_id(ex, id).await
}

/// A customer gateway by API id, removed or not.
pub async fn customer_gateway_by_uuid(
    ex: impl Into<Exec<'_>>,
    uuid: Uuid,
) -> Result<Option<CustomerGateway>> {
    CUSTOMER_GATEWAYS.by_uuid(ex, uuid).await
}

/// The account's live customer gateway called `name`.
pub async fn customer_gateway_by_name(
    ex: impl Into<Exec<'_>>,
    account_id: i64,
    name: &str,
) -> Result<Option<CustomerGateway>> {
    let values = [("account_id", account_id.into()), ("name", name.into())];
    let rows = CUSTOMER_GATEWAYS.live(ex, &values).await?;
    Ok(rows.into_iter().next())
}

/// Every live customer gateway, oldest first; only `account_id`'s when set.
pub async fn customer_gateways(
    ex: impl Into<Exec<'_>>,
    account_id: Option<i64>,
) -> Result<Vec<CustomerGateway>> {
    match account_id {
        Some(a) => {
            CUSTOMER_GATEWAYS
                .live(ex, &[("account_id", a.into())])
                .await
        }
        None => CUSTOMER_GATEWAYS.live(ex, &[]).await,
    }
}

/// Removes a customer gateway; false when it was gone.
pub async fn remove_customer_gateway(ex: impl Into<Exec<'_>>, id: i64) -> Result<bool> {
    CUSTOMER_GATEWAYS.remove(ex, id).await
}

// ---- connections ----

/// Stores a connection (state Pending); `Duplicate` when the two gateways
/// already have a live one.
pub async fn create_connection(
    ex: impl Into<Exec<'_>>,
    vpn_gateway_id: i64,
    customer_gateway_id: i64,
    passive: bool,
    account_id: i64,
    domain_id: i64,
) -> Result<i64> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "INSERT INTO s2s_vpn_connection (uuid, vpn_gateway_id, customer_gateway_id, passive, \
             state, account_id, domain_id, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             RETURNING id",
        )
        .bind(new_uuid())
        .bind(vpn_gateway_id)
        .bind(customer_gateway_id)
        .bind(passive)
        .bind(ConnectionState::Pending.as_str())
        .bind(account_id)
        .bind(domain_id)
        .bind(now_ms())
        .fetch_one(c)
        .await?
    }))
}

/// A connection by internal id, removed or not.
pub async fn connection_by_id(ex: impl Into<Exec<'_>>, id: i64) -> Result<Option<Connection>> {
    CONNECTIONS.by_id(ex, id).await
}

/// A connection by API id, removed or not.
pub async fn connection_by_uuid(ex: impl Into<Exec<'_>>, uuid: Uuid) -> Result<Option<Connection>> {
    CONNECTIONS.by_uuid(ex, uuid).await
}

/// Every live connection, oldest first (the caller filters by scope).
pub async fn connections(ex: impl Into<Exec<'_>>) -> Result<Vec<Connection>> {
    CONNECTIONS.live(ex, &[]).await
}

/// The live connections of a VPN gateway, oldest first.
pub async fn connections_of_gateway(
    ex: impl Into<Exec<'_>>,
    vpn_gateway_id: i64,
) -> Result<Vec<Connection>> {
    let values = [("vpn_gateway_id", vpn_gateway_id.into())];
    CONNECTIONS.live(ex, &values).await
}

/// The live connections to a customer gateway, oldest first.
pub async fn connections_to_customer(
    ex: impl Into<Exec<'_>>,
    customer_gateway_id: i64,
) -> Result<Vec<Connection>> {
    let values = [("customer_gateway_id", customer_gateway_id.into())];
    CONNECTIONS.live(ex, &values).await
}

/// Sets a live connection's state and error text.
pub async fn set_connection_state(
    ex: impl Into<Exec<'_>>,
    id: i64,
    state: ConnectionState,
    error: &str,
) -> Result<bool> {
    let values = [("state", state.as_str().into()), ("error", error.into())];
    CONNECTIONS.set_live(ex, id, &values).await
}

/// Counts a reset of a live connection (the router re-initiates it).
pub async fn count_reset(ex: impl Into<Exec<'_>>, id: i64) -> Result<bool> {
    let mut ex = ex.into();
    let done = on_db!(&mut ex, c => {
        sqlx::query(
            "UPDATE s2s_vpn_connection SET resets = resets + 1 WHERE id = $1 AND removed IS NULL",
        )
        .bind(id)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(done == 1)
}

/// Brings back a removed connection (its removal was refused by the router).
pub async fn restore_connection(ex: impl Into<Exec<'_>>, id: i64) -> Result<bool> {
    let mut ex = ex.into();
    let done = on_db!(&mut ex, c => {
        sqlx::query("UPDATE s2s_vpn_connection SET removed = NULL WHERE id = $1")
            .bind(id)
            .execute(c)
            .await?
            .rows_affected()
    });
    Ok(done == 1)
}

/// Removes a connection; false when it was gone.
pub async fn remove_connection(ex: impl Into<Exec<'_>>, id: i64) -> Result<bool> {
    CONNECTIONS.remove(ex, id).await
}

/// Removes a VPC's VPN gateway and its connections (the VPC goes): CloudStack's
/// `cleanupVpnConnectionByVpc` then `cleanupVpnGatewayByVpc`.
pub async fn remove_of_vpc(ex: impl Into<Exec<'_>>, vpc_id: i64) -> Result<()> {
    let mut ex = ex.into();
    let now = now_ms();
    on_db!(&mut ex, c => {
        sqlx::query(
            "UPDATE s2s_vpn_connection SET removed = $2 WHERE removed IS NULL AND vpn_gateway_id \
             IN (SELECT id FROM s2s_vpn_gateway WHERE vpc_id = $1)",
        )
        .bind(vpc_id)
        .bind(now)
        .execute(&mut *c)
        .await?;
        sqlx::query("UPDATE s2s_vpn_gateway SET removed = $2 WHERE removed IS NULL AND vpc_id = $1")
            .bind(vpc_id)
            .bind(now)
            .execute(&mut *c)
            .await?
            .rows_affected()
    });
    Ok(())
}

/// Removes an account's customer gateways (the account goes, after its VPCs
/// and so their connections): CloudStack's `deleteCustomerGatewayByAccount`.
pub async fn remove_customer_gateways_of_account(
    ex: impl Into<Exec<'_>>,
    account_id: i64,
) -> Result<()> {
    let mut ex = ex.into();
    let now = now_ms();
    on_db!(&mut ex, c => {
        sqlx::query(
            "UPDATE s2s_vpn_connection SET removed = $2 WHERE removed IS NULL AND \
             customer_gateway_id IN (SELECT id FROM s2s_customer_gateway WHERE account_id = $1)",
        )
        .bind(account_id)
        .bind(now)
        .execute(&mut *c)
        .await?;
        sqlx::query(
            "UPDATE s2s_customer_gateway SET removed = $2 WHERE removed IS NULL AND account_id = $1",
        )
        .bind(account_id)
        .bind(now)
        .execute(&mut *c)
        .await?
        .rows_affected()
    });
    Ok(())
}
