//! VPC private gateways (CloudStack table `vpc_gateways`) and static routes
//! (`static_routes`).
//!
//! Kept whole because static routes point at private gateways and are counted and removed with
//! them.

use sqlx::FromRow;

use super::Scope;
use super::query::Where;
use super::table::Table;
use super::text::{Stored, StoredOpt};
use super::{Exec, Listed, OrNotFound, Page, Result, new_uuid, now_ms};
use ipnet::Ipv4Net;
use std::net::Ipv4Addr;
use uuid::Uuid;

crate::text_enum! {
    /// A private gateway's state (column `state`).
    pub enum GatewayState {
        /// A gateway being set up.
        Creating = "Creating",
        /// A gateway the router serves.
        Ready = "Ready",
        /// A gateway being torn down.
        Deleting = "Deleting",
    }
}

/// A gateway being set up.
pub const GATEWAY_CREATING: GatewayState = GatewayState::Creating;
/// A gateway the router serves.
pub const GATEWAY_READY: GatewayState = GatewayState::Ready;
/// A gateway being torn down.
pub const GATEWAY_DELETING: GatewayState = GatewayState::Deleting;

crate::text_enum! {
    /// A static route's state (column `state`).
    pub enum RouteState {
        /// Written but not yet due on the router.
        Staged = "Staged",
        /// A route waiting to be pushed to the router.
        Add = "Add",
        /// A route the router applies.
        Active = "Active",
        /// A route waiting to be withdrawn.
        Revoke = "Revoke",
    }
}

/// Written but not yet due on the router.
pub const ROUTE_STAGED: RouteState = RouteState::Staged;
/// A route waiting to be pushed to the router.
pub const ROUTE_ADD: RouteState = RouteState::Add;
/// A route the router applies.
pub const ROUTE_ACTIVE: RouteState = RouteState::Active;
/// A route waiting to be withdrawn.
pub const ROUTE_REVOKE: RouteState = RouteState::Revoke;

/// A `vpc_gateways` row, with the path of its domain.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct PrivateGateway {
    /// Internal key.
    pub id: i64,
    /// API id.
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    /// The VPC.
    pub vpc_id: i64,
    /// The private network created for it.
    pub network_id: i64,
    /// The router's address on it.
    #[sqlx(try_from = "Stored")]
    pub ip4_address: Ipv4Addr,
    /// The upstream gateway.
    #[sqlx(try_from = "Stored")]
    pub gateway: Ipv4Addr,
    /// Netmask.
    #[sqlx(try_from = "Stored")]
    pub netmask: Ipv4Addr,
    /// `vlan://<n>` / `vxlan://<n>`.
    pub broadcast_uri: String,
    /// Whether traffic leaving through it is source-NATed.
    pub source_nat: bool,
    /// The ACL list of its NIC.
    pub network_acl_id: Option<i64>,
    /// One of the `GATEWAY_*` states.
    #[sqlx(try_from = "String")]
    pub state: GatewayState,
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

/// A private gateway to create (state Creating).
#[derive(Clone, Debug, Default)]
pub struct NewPrivateGateway {
    /// The VPC.
    pub vpc_id: i64,
    /// The private network.
    pub network_id: i64,
    /// The router's address.
    pub ip4_address: String,
    /// The upstream gateway.
    pub gateway: String,
    /// Netmask.
    pub netmask: String,
    /// Broadcast URI.
    pub broadcast_uri: String,
    /// Source NAT.
    pub source_nat: bool,
    /// ACL list.
    pub network_acl_id: Option<i64>,
    /// The owner.
    pub account_id: i64,
    /// The owner's domain.
    pub domain_id: i64,
}

/// Filters of a private gateway list; every set field must match.
#[derive(Clone, Debug, Default)]
pub struct GatewayFilter {
    /// Only this gateway (internal id).
    pub id: Option<i64>,
    /// Only these gateways (API ids).
    pub uuids: Option<Vec<Uuid>>,
    /// Only gateways of this VPC.
    pub vpc_id: Option<i64>,
    /// Only this address.
    pub ip4_address: Option<String>,
    /// Only this broadcast URI.
    pub broadcast_uri: Option<String>,
    /// Only this state.
    pub state: Option<String>,
    /// Only rows of these owners.
    pub scope: Scope,
    /// Only gateways using this ACL list.
    pub network_acl_id: Option<i64>,
}

/// A `static_routes` row.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct StaticRoute {
    /// Internal key.
    pub id: i64,
    /// API id.
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    /// The VPC.
    pub vpc_id: i64,
    /// The private gateway it goes through (or None with a next hop).
    pub vpc_gateway_id: Option<i64>,
    /// Destination CIDR.
    #[sqlx(try_from = "Stored")]
    pub cidr: Ipv4Net,
    /// Next-hop address.
    #[sqlx(try_from = "StoredOpt")]
    pub next_hop: Option<Ipv4Addr>,
    /// One of the `ROUTE_*` states.
    #[sqlx(try_from = "String")]
    pub state: RouteState,
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

/// A static route to create (state Staged).
#[derive(Clone, Debug, Default)]
pub struct NewStaticRoute {
    /// The VPC.
    pub vpc_id: i64,
    /// The private gateway.
    pub vpc_gateway_id: Option<i64>,
    /// Destination CIDR.
    pub cidr: String,
    /// Next hop.
    pub next_hop: Option<String>,
    /// The owner.
    pub account_id: i64,
    /// The owner's domain.
    pub domain_id: i64,
}

/// Filters of a static route list; every set field must match.
#[derive(Clone, Debug, Default)]
pub struct RouteFilter {
    /// Only this route (internal id).
    pub id: Option<i64>,
    /// Only these routes (API ids).
    pub uuids: Option<Vec<Uuid>>,
    /// Only routes of this VPC.
    pub vpc_id: Option<i64>,
    /// Only routes through this gateway.
    pub vpc_gateway_id: Option<i64>,
    /// Only this destination.
    pub cidr: Option<String>,
    /// Only this state.
    pub state: Option<String>,
    /// Only rows of these owners.
    pub scope: Scope,
}

const GW_COLUMNS: &str = "g.id, g.uuid, g.vpc_id, g.network_id, g.ip4_address, g.gateway, \
     g.netmask, g.broadcast_uri, g.source_nat, g.network_acl_id, g.state, g.account_id, \
     g.domain_id, d.path AS domain_path, g.created, g.removed";
const GW_FROM: &str = "vpc_gateways g JOIN domain d ON d.id = g.domain_id";
const ROUTE_COLUMNS: &str = "s.id, s.uuid, s.vpc_id, s.vpc_gateway_id, s.cidr, s.next_hop, \
     s.state, s.account_id, s.domain_id, d.path AS domain_path, s.created, s.removed";
const ROUTE_FROM: &str = "static_routes s JOIN domain d ON d.id = s.domain_id";
const TABLE: Table<PrivateGateway> = Table::joined("vpc_gateways", GW_COLUMNS, GW_FROM, "g.");
const ROUTES: Table<StaticRoute> = Table::joined("static_routes", ROUTE_COLUMNS, ROUTE_FROM, "s.");

/// Creates a private gateway, Creating, on its private network's physical
/// network (copied for the unique address index of migration 0013).
pub async fn create<'a>(ex: impl Into<Exec<'a>>, new: NewPrivateGateway) -> Result<PrivateGateway> {
    let mut ex = ex.into();
    let id: i64 = on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "INSERT INTO vpc_gateways (uuid, vpc_id, network_id, ip4_address, gateway, netmask, \
             broadcast_uri, source_nat, network_acl_id, state, account_id, domain_id, created, \
             physical_network_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'Creating', $10, $11, $12, \
             (SELECT physical_network_id FROM networks WHERE id = $3)) RETURNING id",
        )
        .bind(new_uuid())
        .bind(new.vpc_id)
        .bind(new.network_id)
        .bind(&new.ip4_address)
        .bind(&new.gateway)
        .bind(&new.netmask)
        .bind(&new.broadcast_uri)
        .bind(new.source_nat)
        .bind(new.network_acl_id)
        .bind(new.account_id)
        .bind(new.domain_id)
        .bind(now_ms())
        .fetch_one(c)
        .await?
    });
    get_by_id(ex, id).await?.or_not_found("private gateway", id)
}

/// A private gateway by internal id, removed or not.
pub async fn get_by_id<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<Option<PrivateGateway>> {
    TABLE.by_id(ex, id).await
}

/// Private gateways by internal id, removed or not, in one statement (list
/// views).
pub async fn by_ids<'a>(ex: impl Into<Exec<'a>>, ids: &[i64]) -> Result<Vec<PrivateGateway>> {
    TABLE.by_ids(ex, ids).await
}

/// A private gateway by UUID, removed or not.
pub async fn get_by_uuid<'a>(
    ex: impl Into<Exec<'a>>,
    uuid: Uuid,
) -> Result<Option<PrivateGateway>> {
    TABLE.by_uuid(ex, uuid).await
}

/// The live private gateways of a VPC, by creation order.
pub async fn of_vpc<'a>(ex: impl Into<Exec<'a>>, vpc_id: i64) -> Result<Vec<PrivateGateway>> {
    let filter = GatewayFilter {
        vpc_id: Some(vpc_id),
        ..Default::default()
    };
    Ok(list(ex, &filter, Page::ALL).await?.items)
}

/// Lists live private gateways by creation order.
pub async fn list<'a>(
    ex: impl Into<Exec<'a>>,
    filter: &GatewayFilter,
    page: Page,
) -> Result<Listed<PrivateGateway>> {
    let mut w = Where::new();
    w.push("g.removed IS NULL")
        .eq_opt("g.id", filter.id)
        .eq_opt("g.vpc_id", filter.vpc_id)
        .eq_opt("g.ip4_address", filter.ip4_address.clone())
        .eq_opt("g.broadcast_uri", filter.broadcast_uri.clone())
        .eq_opt("g.state", filter.state.clone())
        .scoped("g.", &filter.scope)
        .eq_opt("g.network_acl_id", filter.network_acl_id)
        .any_of_opt("g.uuid", filter.uuids.as_deref());
    TABLE.list(ex, &w, "g.id", page).await
}

/// Sets the state of a live private gateway.
pub async fn set_state<'a>(ex: impl Into<Exec<'a>>, id: i64, state: GatewayState) -> Result<bool> {
    TABLE.set_state(ex, id, state.as_str()).await
}

/// Replaces (or clears) the ACL list of a live private gateway.
pub async fn set_acl<'a>(ex: impl Into<Exec<'a>>, id: i64, acl_id: Option<i64>) -> Result<bool> {
    TABLE
        .set_live(ex, id, &[("network_acl_id", acl_id.into())])
        .await
}

/// Marks a live private gateway removed (state Deleting).
pub async fn remove<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<bool> {
    TABLE.soft_delete(ex, id, GATEWAY_DELETING.as_str()).await
}

/// Creates a static route, Staged.
pub async fn create_route<'a>(ex: impl Into<Exec<'a>>, new: NewStaticRoute) -> Result<StaticRoute> {
    let mut ex = ex.into();
    let id: i64 = on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "INSERT INTO static_routes (uuid, vpc_id, vpc_gateway_id, cidr, next_hop, state, \
             account_id, domain_id, created) VALUES ($1, $2, $3, $4, $5, 'Staged', $6, $7, $8) \
             RETURNING id",
        )
        .bind(new_uuid())
        .bind(new.vpc_id)
        .bind(new.vpc_gateway_id)
        .bind(&new.cidr)
        .bind(&new.next_hop)
        .bind(new.account_id)
        .bind(new.domain_id)
        .bind(now_ms())
        .fetch_one(c)
        .await?
    });
    route_by_id(ex, id).await?.or_not_found("static route", id)
}

/// A static route by internal id, removed or not.
pub async fn route_by_id<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<Option<StaticRoute>> {
    ROUTES.by_id(ex, id).await
}

/// A static route by UUID, removed or not.
pub async fn route_by_uuid<'a>(ex: impl Into<Exec<'a>>, uuid: Uuid) -> Result<Option<StaticRoute>> {
    ROUTES.by_uuid(ex, uuid).await
}

/// Lists live static routes by creation order.
pub async fn list_routes<'a>(
    ex: impl Into<Exec<'a>>,
    filter: &RouteFilter,
    page: Page,
) -> Result<Listed<StaticRoute>> {
    let mut w = Where::new();
    w.push("s.removed IS NULL")
        .eq_opt("s.id", filter.id)
        .eq_opt("s.vpc_id", filter.vpc_id)
        .eq_opt("s.vpc_gateway_id", filter.vpc_gateway_id)
        .eq_opt("s.cidr", filter.cidr.clone())
        .eq_opt("s.state", filter.state.clone())
        .scoped("s.", &filter.scope)
        .any_of_opt("s.uuid", filter.uuids.as_deref());
    ROUTES.list(ex, &w, "s.id", page).await
}

/// Sets the state of a live static route.
pub async fn set_route_state<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
    state: RouteState,
) -> Result<bool> {
    ROUTES.set_state(ex, id, state.as_str()).await
}

/// Marks a live static route removed (state Revoke).
pub async fn remove_route<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<bool> {
    ROUTES.soft_delete(ex, id, ROUTE_REVOKE.as_str()).await
}

/// Marks every live static route `filter` selects removed; how many.
pub async fn remove_routes<'a>(ex: impl Into<Exec<'a>>, filter: &RouteFilter) -> Result<usize> {
    let mut ex = ex.into();
    let routes = list_routes(ex.reborrow(), filter, Page::ALL).await?.items;
    for r in &routes {
        remove_route(ex.reborrow(), r.id).await?;
    }
    Ok(routes.len())
}

/// The live static routes of a VPC that go through a gateway (to refuse deleting a
/// gateway still in use).
pub async fn count_routes_via<'a>(ex: impl Into<Exec<'a>>, vpc_gateway_id: i64) -> Result<i64> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM static_routes WHERE vpc_gateway_id = $1 AND removed IS NULL",
        )
        .bind(vpc_gateway_id)
        .fetch_one(c)
        .await?
    }))
}
