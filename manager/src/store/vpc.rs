//! VPCs (CloudStack table `vpc`).

use sqlx::FromRow;

use super::Scope;
use super::query::Where;
use super::table::Table;
use super::text::Stored;
use super::{Exec, Listed, OrNotFound, Page, Result, new_uuid, now_ms};
use ipnet::Ipv4Net;
use uuid::Uuid;

crate::text_enum! {
    /// A VPC's state (column `state`).
    pub enum State {
        /// `state` of a VPC in use.
        Enabled = "Enabled",
        /// `state` of a VPC whose router is gone or being torn down.
        Inactive = "Inactive",
    }
}

/// `state` of a VPC in use.
pub const STATE_ENABLED: State = State::Enabled;
/// `state` of a VPC whose router is gone or being torn down.
pub const STATE_INACTIVE: State = State::Inactive;

/// A `vpc` row, with the path of its domain.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct Vpc {
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
    /// The VPC's super-CIDR.
    #[sqlx(try_from = "Stored")]
    pub cidr: Ipv4Net,
    /// The owner.
    pub account_id: i64,
    /// The owner's domain.
    pub domain_id: i64,
    /// The owning domain's path (`/`, `/a/`), for subtree checks.
    pub domain_path: String,
    /// The offering it was created from.
    pub vpc_offering_id: i64,
    /// [`STATE_ENABLED`] or [`STATE_INACTIVE`].
    #[sqlx(try_from = "String")]
    pub state: State,
    /// DNS domain of its tiers.
    pub network_domain: Option<String>,
    /// Whether a restart is due.
    pub restart_required: bool,
    /// Redundant routers (always false here).
    pub redundant: bool,
    /// Its source-NAT public address (`user_ip_address.id`).
    pub source_nat_ip_id: Option<i64>,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Removal time (epoch ms), if removed.
    pub removed: Option<i64>,
    /// createVPC's `dns1`: the first upstream resolver of the router's DNS
    /// (None: the zone's).
    pub dns1: Option<String>,
    /// createVPC's `dns2`: the second one.
    pub dns2: Option<String>,
    /// The MTU of the router's public NIC (`publicmtu`).
    pub public_mtu: i64,
}

/// CloudStack's `NetworkService.DEFAULT_MTU`: a VPC's public MTU when
/// createVPC is not given one.
pub const DEFAULT_PUBLIC_MTU: i64 = 1500;

/// A VPC to create (state Enabled).
#[derive(Clone, Debug, Default)]
pub struct NewVpc {
    /// Name.
    pub name: String,
    /// Description.
    pub display_text: String,
    /// The zone.
    pub zone_id: i64,
    /// Super-CIDR.
    pub cidr: String,
    /// The owner.
    pub account_id: i64,
    /// The owner's domain.
    pub domain_id: i64,
    /// The offering.
    pub vpc_offering_id: i64,
    /// DNS domain of its tiers.
    pub network_domain: Option<String>,
}

/// Filters of a VPC list; every set field must match.
#[derive(Clone, Debug, Default)]
pub struct VpcFilter {
    /// Only this VPC (internal id).
    pub id: Option<i64>,
    /// Only these VPCs (API ids).
    pub uuids: Option<Vec<Uuid>>,
    /// Exact name.
    pub name: Option<String>,
    /// Substring of the name or description, case-insensitive.
    pub keyword: Option<String>,
    /// Only this zone.
    pub zone_id: Option<i64>,
    /// Only rows of these owners.
    pub scope: Scope,
    /// Only this state.
    pub state: Option<String>,
    /// Only VPCs of this offering.
    pub vpc_offering_id: Option<i64>,
    /// Only VPCs needing (or not needing) a restart.
    pub restart_required: Option<bool>,
}

const COLUMNS: &str = "v.id, v.uuid, v.name, v.display_text, v.zone_id, v.cidr, v.account_id, \
     v.domain_id, d.path AS domain_path, v.vpc_offering_id, v.state, v.network_domain, \
     v.restart_required, v.redundant, v.source_nat_ip_id, v.created, v.removed, v.dns1, v.dns2, \
     v.public_mtu";
const FROM: &str = "vpc v JOIN domain d ON d.id = v.domain_id";
const TABLE: Table<Vpc> = Table::joined("vpc", COLUMNS, FROM, "v.");

/// Creates a VPC, Enabled.
pub async fn create<'a>(ex: impl Into<Exec<'a>>, new: NewVpc) -> Result<Vpc> {
    let mut ex = ex.into();
    let id: i64 = on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "INSERT INTO vpc (uuid, name, display_text, zone_id, cidr, account_id, domain_id, \
             vpc_offering_id, state, network_domain, created) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'Enabled', $9, $10) RETURNING id",
        )
        .bind(new_uuid())
        .bind(&new.name)
        .bind(&new.display_text)
        .bind(new.zone_id)
        .bind(&new.cidr)
        .bind(new.account_id)
        .bind(new.domain_id)
        .bind(new.vpc_offering_id)
        .bind(&new.network_domain)
        .bind(now_ms())
        .fetch_one(c)
        .await?
    });
    get_by_id(ex, id).await?.or_not_found("vpc", id)
}

/// A VPC by internal id, removed or not.
pub async fn get_by_id<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<Option<Vpc>> {
    TABLE.by_id(ex, id).await
}

/// A VPC by UUID, removed or not.
pub async fn get_by_uuid<'a>(ex: impl Into<Exec<'a>>, uuid: Uuid) -> Result<Option<Vpc>> {
    TABLE.by_uuid(ex, uuid).await
}

/// VPCs by internal id, removed or not, in one statement (list views).
pub async fn by_ids<'a>(ex: impl Into<Exec<'a>>, ids: &[i64]) -> Result<Vec<Vpc>> {
    TABLE.by_ids(ex, ids).await
}

/// Lists live VPCs by creation order.
pub async fn list<'a>(
    ex: impl Into<Exec<'a>>,
    filter: &VpcFilter,
    page: Page,
) -> Result<Listed<Vpc>> {
    let mut w = Where::new();
    w.push("v.removed IS NULL")
        .eq_opt("v.id", filter.id)
        .eq_opt("v.name", filter.name.clone())
        .eq_opt("v.zone_id", filter.zone_id)
        .scoped("v.", &filter.scope)
        .eq_opt("v.state", filter.state.clone())
        .eq_opt("v.vpc_offering_id", filter.vpc_offering_id)
        .eq_opt("v.restart_required", filter.restart_required)
        .keyword(&["v.name", "v.display_text"], filter.keyword.as_deref())
        .any_of_opt("v.uuid", filter.uuids.as_deref());
    TABLE.list(ex, &w, "v.id", page).await
}

/// Sets the state of a live VPC; false when there is none.
pub async fn set_state<'a>(ex: impl Into<Exec<'a>>, id: i64, state: State) -> Result<bool> {
    TABLE.set_state(ex, id, state.as_str()).await
}

/// Sets or clears the restart-required flag of a live VPC.
pub async fn set_restart_required<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
    required: bool,
) -> Result<bool> {
    TABLE
        .set_live(ex, id, &[("restart_required", required.into())])
        .await
}

/// Renames a live VPC and/or changes its description (`None` leaves a field as is).
pub async fn update<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
    name: Option<&str>,
    display_text: Option<&str>,
) -> Result<bool> {
    let values = [("name", name.into()), ("display_text", display_text.into())];
    TABLE.update_live(ex, id, &values).await
}

/// Sets the upstream resolvers of a live VPC's router (createVPC's
/// `dns1`/`dns2`; None: the zone's).
pub async fn set_dns<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
    dns1: Option<&str>,
    dns2: Option<&str>,
) -> Result<bool> {
    let values = [("dns1", dns1.into()), ("dns2", dns2.into())];
    TABLE.set_live(ex, id, &values).await
}

/// Sets the MTU of a live VPC's public NIC.
pub async fn set_public_mtu<'a>(ex: impl Into<Exec<'a>>, id: i64, mtu: i64) -> Result<bool> {
    TABLE.set_live(ex, id, &[("public_mtu", mtu.into())]).await
}

/// Records (or clears) the VPC's source-NAT address.
pub async fn set_source_nat_ip<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
    ip_id: Option<i64>,
) -> Result<bool> {
    TABLE
        .set_live(ex, id, &[("source_nat_ip_id", ip_id.into())])
        .await
}

/// Marks a live VPC removed (and Inactive); false when it already was.
pub async fn remove<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<bool> {
    TABLE.soft_delete(ex, id, "Inactive").await
}

/// The live VPCs of an account (for the `vpc` resource limit).
pub async fn count_for_account<'a>(ex: impl Into<Exec<'a>>, account_id: i64) -> Result<i64> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_scalar("SELECT COUNT(*) FROM vpc WHERE account_id = $1 AND removed IS NULL")
            .bind(account_id)
            .fetch_one(c)
            .await?
    }))
}

/// Locks the VPC's row until the transaction ends, so that checks over its
/// tiers (count, CIDR overlaps) and the insert that follows them are not
/// interleaved with another transaction doing the same. PostgreSQL takes a
/// row lock (`FOR UPDATE`); SQLite needs nothing, as its transactions
/// (`BEGIN IMMEDIATE`) already hold the database's write lock.
pub async fn lock(tx: &mut super::Tx, id: i64) -> Result<()> {
    let mut ex = Exec::Tx(tx);
    if ex.backend() == super::Backend::Postgres {
        on_db!(&mut ex, c => {
            sqlx::query("SELECT id FROM vpc WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(c)
                .await?;
        });
    }
    Ok(())
}
