//! Guest networks (CloudStack table `networks`): VPC tiers and private-gateway networks.

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
    /// A network's state (column `state`).
    pub enum State {
        /// `state` of a network that has no resources yet.
        Allocated = "Allocated",
        /// `state` of a network with a vnet and a router behind it.
        Implemented = "Implemented",
        /// `state` of a network being shut down.
        Shutdown = "Shutdown",
        /// `state` of a network being destroyed.
        Destroy = "Destroy",
    }
}

/// `state` of a network that has no resources yet.
pub const STATE_ALLOCATED: State = State::Allocated;
/// `state` of a network with a vnet and a router behind it.
pub const STATE_IMPLEMENTED: State = State::Implemented;
/// `state` of a network being shut down.
pub const STATE_SHUTDOWN: State = State::Shutdown;
/// `state` of a network being destroyed.
pub const STATE_DESTROY: State = State::Destroy;

/// `traffic_type` of a VPC tier.
pub const TRAFFIC_GUEST: &str = "Guest";
/// `traffic_type` of a private-gateway network.
pub const TRAFFIC_PRIVATE_GATEWAY: &str = "PrivateGateway";
/// `traffic_type` of a zone's public network (the routers' public NICs).
pub const TRAFFIC_PUBLIC: &str = "Public";

/// A `networks` row, with the path of its domain.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct Network {
    /// Internal key.
    pub id: i64,
    /// API id.
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    /// Name.
    pub name: String,
    /// Description.
    pub display_text: String,
    /// The zone.
    pub zone_id: i64,
    /// The physical network carrying it.
    pub physical_network_id: Option<i64>,
    /// The VPC (None for standalone and private-gateway networks).
    pub vpc_id: Option<i64>,
    /// The owner.
    pub account_id: i64,
    /// The owner's domain.
    pub domain_id: i64,
    /// The owning domain's path.
    pub domain_path: String,
    /// The offering.
    pub network_offering_id: i64,
    /// Its CIDR.
    #[sqlx(try_from = "StoredOpt")]
    pub cidr: Option<Ipv4Net>,
    /// Its gateway (the router's address on it).
    #[sqlx(try_from = "StoredOpt")]
    pub gateway: Option<Ipv4Addr>,
    /// Its netmask.
    #[sqlx(try_from = "StoredOpt")]
    pub netmask: Option<Ipv4Addr>,
    /// DNS domain.
    pub network_domain: Option<String>,
    /// `vlan://100`, `vxlan://5001` ...
    pub broadcast_uri: Option<String>,
    /// The allocated VLAN/VNI.
    pub vnet: Option<String>,
    /// One of the `STATE_*` values.
    #[sqlx(try_from = "String")]
    pub state: State,
    /// The ACL list applied to it.
    pub network_acl_id: Option<i64>,
    /// `Guest`, `Public`, `Control` or `PrivateGateway`.
    pub traffic_type: String,
    /// The guru that designed it.
    pub guru_name: Option<String>,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Removal time (epoch ms), if removed.
    pub removed: Option<i64>,
}

/// A network to create (state Allocated).
#[derive(Clone, Debug, Default)]
pub struct NewNetwork {
    /// Name.
    pub name: String,
    /// Description.
    pub display_text: String,
    /// The zone.
    pub zone_id: i64,
    /// The physical network.
    pub physical_network_id: Option<i64>,
    /// The VPC.
    pub vpc_id: Option<i64>,
    /// The owner.
    pub account_id: i64,
    /// The owner's domain.
    pub domain_id: i64,
    /// The offering.
    pub network_offering_id: i64,
    /// CIDR.
    pub cidr: Option<String>,
    /// Gateway.
    pub gateway: Option<String>,
    /// Netmask.
    pub netmask: Option<String>,
    /// DNS domain.
    pub network_domain: Option<String>,
    /// Broadcast URI, when known at creation (private gateways).
    pub broadcast_uri: Option<String>,
    /// The vnet, when known at creation.
    pub vnet: Option<String>,
    /// ACL list.
    pub network_acl_id: Option<i64>,
    /// Traffic type; empty means `Guest`.
    pub traffic_type: String,
    /// Guru name.
    pub guru_name: Option<String>,
}

/// Filters of a network list; every set field must match.
#[derive(Clone, Debug, Default)]
pub struct NetworkFilter {
    /// Only this network (internal id).
    pub id: Option<i64>,
    /// Only these networks (API ids).
    pub uuids: Option<Vec<Uuid>>,
    /// Substring of the name or description, case-insensitive.
    pub keyword: Option<String>,
    /// Only this zone.
    pub zone_id: Option<i64>,
    /// Only tiers of this VPC.
    pub vpc_id: Option<i64>,
    /// Only networks in a VPC (true) or outside any (false).
    pub in_vpc: Option<bool>,
    /// Only rows of these owners.
    pub scope: Scope,
    /// Only this state.
    pub state: Option<String>,
    /// Only this traffic type.
    pub traffic_type: Option<String>,
    /// Only networks using this ACL list.
    pub network_acl_id: Option<i64>,
}

const COLUMNS: &str = "n.id, n.uuid, n.name, n.display_text, n.zone_id, n.physical_network_id, \
     n.vpc_id, n.account_id, n.domain_id, d.path AS domain_path, n.network_offering_id, n.cidr, \
     n.gateway, n.netmask, n.network_domain, n.broadcast_uri, n.vnet, n.state, n.network_acl_id, \
     n.traffic_type, n.guru_name, n.created, n.removed";
const FROM: &str = "networks n JOIN domain d ON d.id = n.domain_id";
const TABLE: Table<Network> = Table::joined("networks", COLUMNS, FROM, "n.");

/// Creates a network, Allocated.
pub async fn create<'a>(ex: impl Into<Exec<'a>>, new: NewNetwork) -> Result<Network> {
    let traffic_type = if new.traffic_type.is_empty() {
        TRAFFIC_GUEST.to_string()
    } else {
        new.traffic_type.clone()
    };
    let mut ex = ex.into();
    let id: i64 = on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "INSERT INTO networks (uuid, name, display_text, zone_id, physical_network_id, \
             vpc_id, account_id, domain_id, network_offering_id, cidr, gateway, netmask, \
             network_domain, broadcast_uri, vnet, state, network_acl_id, traffic_type, \
             guru_name, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
             $13, $14, $15, 'Allocated', $16, $17, $18, $19) RETURNING id",
        )
        .bind(new_uuid())
        .bind(&new.name)
        .bind(&new.display_text)
        .bind(new.zone_id)
        .bind(new.physical_network_id)
        .bind(new.vpc_id)
        .bind(new.account_id)
        .bind(new.domain_id)
        .bind(new.network_offering_id)
        .bind(&new.cidr)
        .bind(&new.gateway)
        .bind(&new.netmask)
        .bind(&new.network_domain)
        .bind(&new.broadcast_uri)
        .bind(&new.vnet)
        .bind(new.network_acl_id)
        .bind(&traffic_type)
        .bind(&new.guru_name)
        .bind(now_ms())
        .fetch_one(c)
        .await?
    });
    get_by_id(ex, id).await?.or_not_found("network", id)
}

/// A network by internal id, removed or not.
pub async fn get_by_id<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<Option<Network>> {
    TABLE.by_id(ex, id).await
}

/// A network by UUID, removed or not.
pub async fn get_by_uuid<'a>(ex: impl Into<Exec<'a>>, uuid: Uuid) -> Result<Option<Network>> {
    TABLE.by_uuid(ex, uuid).await
}

/// Networks by internal id, removed or not, in one statement (list views).
pub async fn by_ids<'a>(ex: impl Into<Exec<'a>>, ids: &[i64]) -> Result<Vec<Network>> {
    TABLE.by_ids(ex, ids).await
}

/// Lists live networks by creation order.
pub async fn list<'a>(
    ex: impl Into<Exec<'a>>,
    filter: &NetworkFilter,
    page: Page,
) -> Result<Listed<Network>> {
    let mut w = Where::new();
    w.push("n.removed IS NULL")
        .eq_opt("n.id", filter.id)
        .eq_opt("n.zone_id", filter.zone_id)
        .eq_opt("n.vpc_id", filter.vpc_id)
        .scoped("n.", &filter.scope)
        .eq_opt("n.state", filter.state.clone())
        .eq_opt("n.traffic_type", filter.traffic_type.clone())
        .eq_opt("n.network_acl_id", filter.network_acl_id)
        .keyword(&["n.name", "n.display_text"], filter.keyword.as_deref());
    match filter.in_vpc {
        Some(true) => {
            w.push("n.vpc_id IS NOT NULL");
        }
        Some(false) => {
            w.push("n.vpc_id IS NULL");
        }
        None => {}
    }
    w.any_of_opt("n.uuid", filter.uuids.as_deref());
    TABLE.list(ex, &w, "n.id", page).await
}

/// The live tiers (guest networks) of a VPC, by creation order.
pub async fn tiers_of_vpc<'a>(ex: impl Into<Exec<'a>>, vpc_id: i64) -> Result<Vec<Network>> {
    let filter = NetworkFilter {
        vpc_id: Some(vpc_id),
        traffic_type: Some(TRAFFIC_GUEST.into()),
        ..Default::default()
    };
    Ok(list(ex, &filter, Page::ALL).await?.items)
}

/// The live tiers of the given VPCs in one statement, by VPC and creation
/// order (as `tiers_of_vpc` gives each VPC's).
pub async fn tiers_of_vpcs<'a>(ex: impl Into<Exec<'a>>, vpc_ids: &[i64]) -> Result<Vec<Network>> {
    let live = format!("n.removed IS NULL AND n.traffic_type = '{TRAFFIC_GUEST}'");
    TABLE
        .live_by_ids(ex, &live, "vpc_id", vpc_ids, "n.vpc_id, n.id")
        .await
}

/// Sets the state of a live network; false when there is none.
pub async fn set_state<'a>(ex: impl Into<Exec<'a>>, id: i64, state: State) -> Result<bool> {
    TABLE.set_state(ex, id, state.as_str()).await
}

/// Replaces (or clears) the ACL list of a live network.
pub async fn set_acl<'a>(ex: impl Into<Exec<'a>>, id: i64, acl_id: Option<i64>) -> Result<bool> {
    TABLE
        .set_live(ex, id, &[("network_acl_id", acl_id.into())])
        .await
}

/// Records the vnet and broadcast URI of a live network (None clears them).
pub async fn set_vnet<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
    vnet: Option<&str>,
    broadcast_uri: Option<&str>,
) -> Result<bool> {
    let values = [
        ("vnet", vnet.into()),
        ("broadcast_uri", broadcast_uri.into()),
    ];
    TABLE.set_live(ex, id, &values).await
}

/// Renames a live network and/or changes its description (`None` leaves a field as is).
pub async fn update<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
    name: Option<&str>,
    display_text: Option<&str>,
) -> Result<bool> {
    let values = [("name", name.into()), ("display_text", display_text.into())];
    TABLE.update_live(ex, id, &values).await
}

/// Marks a live network removed (state Destroy); false when it already was.
pub async fn remove<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<bool> {
    TABLE.soft_delete(ex, id, "Destroy").await
}

/// The live tiers of a VPC (for the tiers-per-VPC limit).
pub async fn count_tiers<'a>(ex: impl Into<Exec<'a>>, vpc_id: i64) -> Result<i64> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM networks WHERE vpc_id = $1 AND removed IS NULL \
             AND traffic_type = 'Guest'",
        )
        .bind(vpc_id)
        .fetch_one(c)
        .await?
    }))
}

/// The zone's public network (the network of routers' public NICs), created
/// on first use, owned by the system account.
pub async fn public_network<'a>(ex: impl Into<Exec<'a>>, zone_id: i64) -> Result<Network> {
    let mut ex = ex.into();
    let filter = NetworkFilter {
        zone_id: Some(zone_id),
        traffic_type: Some(TRAFFIC_PUBLIC.into()),
        ..Default::default()
    };
    if let Some(n) = list(ex.reborrow(), &filter, Page::ALL)
        .await?
        .items
        .into_iter()
        .next()
    {
        return Ok(n);
    }
    let root = super::domain::root(ex.reborrow()).await?;
    let system =
        super::account::get_by_name(ex.reborrow(), root.id, super::bootstrap::SYSTEM_ACCOUNT)
            .await?
            .or_not_found("account", super::bootstrap::SYSTEM_ACCOUNT)?;
    let offering = super::offering::network_offering_by_unique_name(
        ex.reborrow(),
        super::bootstrap::DEFAULT_VPC_TIER_OFFERING,
    )
    .await?
    .or_not_found(
        "network offering",
        super::bootstrap::DEFAULT_VPC_TIER_OFFERING,
    )?;
    create(
        ex,
        NewNetwork {
            name: "Public".into(),
            display_text: "The zone's public network".into(),
            zone_id,
            account_id: system.id,
            domain_id: root.id,
            network_offering_id: offering.id,
            traffic_type: TRAFFIC_PUBLIC.into(),
            guru_name: Some("Public".into()),
            ..Default::default()
        },
    )
    .await
}
