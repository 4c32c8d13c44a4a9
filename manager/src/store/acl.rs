//! Network ACL lists (CloudStack table `network_acl`) and their rules
//! (`network_acl_item`).
//!
//! The 0002 migration seeds the two built-in lists, id 1 `default_deny` and id 2
//! `default_allow`, with one Ingress and one Egress rule each. Built-in lists have no
//! VPC; they and their rules cannot be changed or removed (Conflict). Global lists
//! (`is_global`, made by the root admin) have no VPC either, and change like any other.
//!
//! Kept whole because lists and their items change under one rule (built-in lists refused), checked
//! once here for both.

use sqlx::FromRow;

use super::query::Where;
use super::table::Table;
use super::text::Stored;
use super::{Exec, Listed, OrNotFound, Page, Result, StoreError, atomically, new_uuid, now_ms};
use uuid::Uuid;

/// Id of the built-in list that denies everything.
pub const DEFAULT_DENY_ID: i64 = 1;
/// Id of the built-in list that allows everything.
pub const DEFAULT_ALLOW_ID: i64 = 2;
/// Name of [`DEFAULT_DENY_ID`].
pub const DEFAULT_DENY: &str = "default_deny";
/// Name of [`DEFAULT_ALLOW_ID`].
pub const DEFAULT_ALLOW: &str = "default_allow";

crate::text_enum! {
    /// An ACL item's state (column `state`).
    pub enum ItemState {
        /// Written but not yet due on the router (CloudStack's Staged).
        Staged = "Staged",
        /// A rule waiting to be pushed to the router.
        Add = "Add",
        /// A rule the router applies.
        Active = "Active",
        /// A rule waiting to be withdrawn from the router.
        Revoke = "Revoke",
    }
}

/// Written but not yet due on the router.
pub const ITEM_STAGED: ItemState = ItemState::Staged;
/// A rule waiting to be pushed to the router.
pub const ITEM_ADD: ItemState = ItemState::Add;
/// A rule the router applies.
pub const ITEM_ACTIVE: ItemState = ItemState::Active;
/// A rule waiting to be withdrawn from the router.
pub const ITEM_REVOKE: ItemState = ItemState::Revoke;

/// A `network_acl` row.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct AclList {
    /// Internal key.
    pub id: i64,
    /// API id.
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// The VPC; None for the built-in and the global lists.
    pub vpc_id: Option<i64>,
    /// A global list: made by the root admin without a VPC, usable by
    /// every VPC (CloudStack's vpc id 0 beside the built-ins).
    pub is_global: bool,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Removal time (epoch ms), if removed.
    pub removed: Option<i64>,
}

impl AclList {
    /// Whether this is one of the two built-in, immutable lists.
    pub fn is_builtin(&self) -> bool {
        self.vpc_id.is_none() && !self.is_global
    }
}

/// A `network_acl_item` row.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct AclItem {
    /// Internal key.
    pub id: i64,
    /// API id.
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    /// The list.
    pub acl_id: i64,
    /// Position in the list, unique among its live rules.
    pub number: i64,
    /// `Allow` or `Deny`.
    pub action: String,
    /// `Ingress` or `Egress`.
    pub traffic_type: String,
    /// `tcp`, `udp`, `icmp`, `all` or a protocol number.
    pub protocol: String,
    /// First port.
    pub start_port: Option<i64>,
    /// Last port.
    pub end_port: Option<i64>,
    /// ICMP type.
    pub icmp_type: Option<i64>,
    /// ICMP code.
    pub icmp_code: Option<i64>,
    /// Comma-separated CIDRs.
    pub cidr_list: String,
    /// One of the `ITEM_*` states.
    #[sqlx(try_from = "String")]
    pub state: ItemState,
    /// Free text.
    pub reason: Option<String>,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Removal time (epoch ms), if removed.
    pub removed: Option<i64>,
}

impl AclItem {
    /// The CIDRs of `cidr_list`.
    pub fn cidrs(&self) -> Vec<&str> {
        self.cidr_list
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect()
    }
}

/// A rule to add to a list (state Staged).
#[derive(Clone, Debug, Default)]
pub struct NewAclItem {
    /// The list (not a built-in one).
    pub acl_id: i64,
    /// Position; None takes one past the highest live number.
    pub number: Option<i64>,
    /// `Allow` or `Deny`.
    pub action: String,
    /// `Ingress` or `Egress`.
    pub traffic_type: String,
    /// Protocol.
    pub protocol: String,
    /// First port.
    pub start_port: Option<i64>,
    /// Last port.
    pub end_port: Option<i64>,
    /// ICMP type.
    pub icmp_type: Option<i64>,
    /// ICMP code.
    pub icmp_code: Option<i64>,
    /// CIDRs (joined with commas when stored).
    pub cidrs: Vec<String>,
    /// Free text.
    pub reason: Option<String>,
}

/// Filters of an ACL list listing; every set field must match.
#[derive(Clone, Debug, Default)]
pub struct AclFilter {
    /// Only this list (internal id).
    pub id: Option<i64>,
    /// Only these lists (API ids).
    pub uuids: Option<Vec<Uuid>>,
    /// Exact name.
    pub name: Option<String>,
    /// Substring of the name or description, case-insensitive.
    pub keyword: Option<String>,
    /// Only lists of this VPC (plus the built-ins when `include_builtin`).
    pub vpc_id: Option<i64>,
    /// Whether the built-in lists are listed too.
    pub include_builtin: bool,
}

/// Filters of a rule listing; every set field must match.
#[derive(Clone, Debug, Default)]
pub struct AclItemFilter {
    /// Only this rule (internal id).
    pub id: Option<i64>,
    /// Only these rules (API ids).
    pub uuids: Option<Vec<Uuid>>,
    /// Only rules of this list.
    pub acl_id: Option<i64>,
    /// Only this direction.
    pub traffic_type: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this protocol.
    pub protocol: Option<String>,
    /// Only this state.
    pub state: Option<String>,
}

pub(super) const COLUMNS: &str = "id, uuid, name, description, vpc_id, is_global, created, removed";
pub(super) const ITEM_COLUMNS: &str = "id, uuid, acl_id, number, action, traffic_type, protocol, \
     start_port, end_port, icmp_type, icmp_code, cidr_list, state, reason, created, removed";
const TABLE: Table<AclList> = Table::new("network_acl", COLUMNS);
const ITEMS: Table<AclItem> = Table::new("network_acl_item", ITEM_COLUMNS);

/// Creates a list of a VPC.
pub async fn create_list<'a>(
    ex: impl Into<Exec<'a>>,
    vpc_id: i64,
    name: &str,
    description: &str,
) -> Result<AclList> {
    let mut ex = ex.into();
    let id: i64 = on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "INSERT INTO network_acl (uuid, name, description, vpc_id, created) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(new_uuid())
        .bind(name)
        .bind(description)
        .bind(vpc_id)
        .bind(now_ms())
        .fetch_one(c)
        .await?
    });
    get_by_id(ex, id).await?.or_not_found("network ACL", id)
}

/// Creates a global list: no VPC, usable by every VPC's tiers and private
/// gateways.
pub async fn create_global_list<'a>(
    ex: impl Into<Exec<'a>>,
    name: &str,
    description: &str,
) -> Result<AclList> {
    let mut ex = ex.into();
    let id: i64 = on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "INSERT INTO network_acl (uuid, name, description, vpc_id, is_global, created) \
             VALUES ($1, $2, $3, NULL, TRUE, $4) RETURNING id",
        )
        .bind(new_uuid())
        .bind(name)
        .bind(description)
        .bind(now_ms())
        .fetch_one(c)
        .await?
    });
    get_by_id(ex, id).await?.or_not_found("network ACL", id)
}

/// The VPCs whose live tiers or private gateways use the list `acl_id`,
/// ascending: the routers a change of its items must reach.
pub async fn user_vpcs<'a>(ex: impl Into<Exec<'a>>, acl_id: i64) -> Result<Vec<i64>> {
    let mut ex = ex.into();
    let ids: Vec<i64> = on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "SELECT vpc_id FROM networks WHERE network_acl_id = $1 AND removed IS NULL \
               AND vpc_id IS NOT NULL \
             UNION \
             SELECT vpc_id FROM vpc_gateways WHERE network_acl_id = $1 AND removed IS NULL \
             ORDER BY 1",
        )
        .bind(acl_id)
        .fetch_all(c)
        .await?
    });
    Ok(ids)
}

/// A list by internal id, removed or not.
pub async fn get_by_id<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<Option<AclList>> {
    TABLE.by_id(ex, id).await
}

/// A list by UUID, removed or not.
pub async fn get_by_uuid<'a>(ex: impl Into<Exec<'a>>, uuid: Uuid) -> Result<Option<AclList>> {
    TABLE.by_uuid(ex, uuid).await
}

/// Lists live lists by id (the built-ins first).
pub async fn list<'a>(
    ex: impl Into<Exec<'a>>,
    filter: &AclFilter,
    page: Page,
) -> Result<Listed<AclList>> {
    let mut w = Where::new();
    w.push("removed IS NULL")
        .eq_opt("id", filter.id)
        .eq_opt("name", filter.name.clone())
        .keyword(&["name", "description"], filter.keyword.as_deref());
    match (filter.vpc_id, filter.include_builtin) {
        (Some(vpc), true) => {
            let p = w.arg(vpc);
            w.push(format!("(vpc_id = {p} OR vpc_id IS NULL)"));
        }
        (Some(vpc), false) => {
            w.eq("vpc_id", vpc);
        }
        (None, true) => {}
        (None, false) => {
            w.push("vpc_id IS NOT NULL");
        }
    }
    w.any_of_opt("uuid", filter.uuids.as_deref());
    TABLE.list(ex, &w, "id", page).await
}

/// A live list that may be changed: NotFound when missing or removed, Conflict for a
/// built-in one.
pub async fn mutable_list<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<AclList> {
    let list = get_by_id(ex, id)
        .await?
        .filter(|l| l.removed.is_none())
        .or_not_found("network ACL", id)?;
    if list.is_builtin() {
        return Err(StoreError::Conflict(format!(
            "the default network ACL {} cannot be modified",
            list.name
        )));
    }
    Ok(list)
}

/// Locks a list's row until the transaction ends, so that reading its
/// items' numbers and adding an item are one step for every manager (two
/// auto-numbered items would otherwise take the same number). PostgreSQL
/// takes a row lock (`FOR UPDATE`); SQLite needs nothing, as its
/// transactions (`BEGIN IMMEDIATE`) hold the database's write lock.
pub async fn lock_list(tx: &mut super::Tx, id: i64) -> Result<()> {
    let mut ex = Exec::Tx(tx);
    if ex.backend() == super::Backend::Postgres {
        on_db!(&mut ex, c => {
            sqlx::query("SELECT id FROM network_acl WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(c)
                .await?;
        });
    }
    Ok(())
}

/// [`lock_list`], then whether the list is still live: a tier or private
/// gateway taking a global list does so under this lock, which a change of
/// the list's items and its deletion take too (they then see the new
/// user, or it sees them).
pub async fn lock_live_list(tx: &mut super::Tx, id: i64) -> Result<bool> {
    lock_list(tx, id).await?;
    Ok(get_by_id(&mut *tx, id)
        .await?
        .is_some_and(|l| l.removed.is_none()))
}

/// Renames a list and/or changes its description (refused for the built-ins).
pub async fn update_list<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
    name: Option<String>,
    description: Option<String>,
) -> Result<AclList> {
    atomically(ex.into(), move |tx| {
        Box::pin(async move {
            let mut ex = Exec::Tx(tx);
            mutable_list(ex.reborrow(), id).await?;
            on_db!(&mut ex, c => {
                sqlx::query(
                    "UPDATE network_acl SET name = COALESCE($2, name), \
                     description = COALESCE($3, description) WHERE id = $1",
                )
                .bind(id)
                .bind(&name)
                .bind(&description)
                .execute(c)
                .await?;
            });
            get_by_id(ex, id).await?.or_not_found("network ACL", id)
        })
    })
    .await
}

/// Marks a list and its rules removed (refused for the built-ins); false when it
/// already was removed.
pub async fn remove_list<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<bool> {
    atomically(ex.into(), move |tx| {
        Box::pin(async move {
            let mut ex = Exec::Tx(tx);
            match get_by_id(ex.reborrow(), id).await? {
                None => return Ok(false),
                Some(l) if l.removed.is_some() => return Ok(false),
                Some(l) if l.is_builtin() => {
                    return Err(StoreError::Conflict(format!(
                        "the default network ACL {} cannot be removed",
                        l.name
                    )));
                }
                Some(_) => {}
            }
            let now = now_ms();
            ITEMS.remove_where(ex.reborrow(), "acl_id", id, now).await?;
            Ok(TABLE.remove_where(ex, "id", id, now).await? == 1)
        })
    })
    .await
}

/// Adds a rule, Staged, to a list that is not built-in. A number another live rule
/// of the list has is refused (Duplicate).
pub async fn create_item<'a>(ex: impl Into<Exec<'a>>, new: NewAclItem) -> Result<AclItem> {
    atomically(ex.into(), move |tx| {
        Box::pin(async move {
            let mut ex = Exec::Tx(tx);
            mutable_list(ex.reborrow(), new.acl_id).await?;
            let number = match new.number {
                Some(n) => n,
                None => on_db!(&mut ex, c => {
                    sqlx::query_scalar::<_, i64>(
                        "SELECT COALESCE(MAX(number), 0) + 1 FROM network_acl_item \
                         WHERE acl_id = $1 AND removed IS NULL",
                    )
                    .bind(new.acl_id)
                    .fetch_one(c)
                    .await?
                }),
            };
            let id: i64 = on_db!(&mut ex, c => {
                sqlx::query_scalar(
                    "INSERT INTO network_acl_item (uuid, acl_id, number, action, traffic_type, \
                     protocol, start_port, end_port, icmp_type, icmp_code, cidr_list, state, \
                     reason, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
                     'Staged', $12, $13) RETURNING id",
                )
                .bind(new_uuid())
                .bind(new.acl_id)
                .bind(number)
                .bind(&new.action)
                .bind(&new.traffic_type)
                .bind(&new.protocol)
                .bind(new.start_port)
                .bind(new.end_port)
                .bind(new.icmp_type)
                .bind(new.icmp_code)
                .bind(new.cidrs.join(","))
                .bind(&new.reason)
                .bind(now_ms())
                .fetch_one(c)
                .await?
            });
            item_by_id(ex, id)
                .await?
                .or_not_found("network ACL item", id)
        })
    })
    .await
}

/// A rule by internal id, removed or not.
pub async fn item_by_id<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<Option<AclItem>> {
    ITEMS.by_id(ex, id).await
}

/// A rule by UUID, removed or not.
pub async fn item_by_uuid<'a>(ex: impl Into<Exec<'a>>, uuid: Uuid) -> Result<Option<AclItem>> {
    ITEMS.by_uuid(ex, uuid).await
}

/// Lists live rules by list and number.
pub async fn list_items<'a>(
    ex: impl Into<Exec<'a>>,
    filter: &AclItemFilter,
    page: Page,
) -> Result<Listed<AclItem>> {
    let mut w = Where::new();
    w.push("removed IS NULL")
        .eq_opt("id", filter.id)
        .eq_opt("acl_id", filter.acl_id)
        .eq_opt("traffic_type", filter.traffic_type.clone())
        .eq_opt("action", filter.action.clone())
        .eq_opt("protocol", filter.protocol.clone())
        .eq_opt("state", filter.state.clone())
        .any_of_opt("uuid", filter.uuids.as_deref());
    ITEMS.list(ex, &w, "acl_id, number", page).await
}

/// What the checks of an item's number need of its list's live items,
/// counted by the database instead of read row by row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ItemNumbers {
    /// How many live items the list has.
    pub count: i64,
    /// The highest number among them.
    pub max: Option<i64>,
    /// The number asked about, when one of them (other than the one left
    /// out) has it.
    pub taken: Option<i64>,
}

/// [`ItemNumbers`] of the live items of list `acl_id`, asking whether one
/// other than item `except` has `number`: one statement, whatever the
/// list's size.
pub async fn item_numbers<'a>(
    ex: impl Into<Exec<'a>>,
    acl_id: i64,
    number: Option<i64>,
    except: Option<i64>,
) -> Result<ItemNumbers> {
    let mut ex = ex.into();
    let (count, max, taken): (i64, Option<i64>, i64) = on_db!(&mut ex, c => {
        sqlx::query_as(
            "SELECT COUNT(*), MAX(number), \
             COALESCE(SUM(CASE WHEN number = $2 AND id <> $3 THEN 1 ELSE 0 END), 0) \
             FROM network_acl_item WHERE acl_id = $1 AND removed IS NULL",
        )
        .bind(acl_id)
        .bind(number)
        .bind(except.unwrap_or(0))
        .fetch_one(c)
        .await?
    });
    Ok(ItemNumbers {
        count,
        max,
        taken: number.filter(|_| taken > 0),
    })
}

/// Where a live item stands in its list: what a move needs of every item.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct ItemPlace {
    /// Internal key.
    pub id: i64,
    /// API id.
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    /// Position in the list.
    pub number: i64,
}

/// The live items of list `acl_id` in number order, three columns each
/// (a move reads the whole order, since `aclconsistencyhash` covers it).
pub async fn item_places<'a>(ex: impl Into<Exec<'a>>, acl_id: i64) -> Result<Vec<ItemPlace>> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_as(
            "SELECT id, uuid, number FROM network_acl_item \
             WHERE acl_id = $1 AND removed IS NULL ORDER BY number",
        )
        .bind(acl_id)
        .fetch_all(c)
        .await?
    }))
}

async fn item_of_mutable_list(ex: &mut Exec<'_>, id: i64) -> Result<AclItem> {
    let item = item_by_id(ex.reborrow(), id)
        .await?
        .filter(|i| i.removed.is_none())
        .or_not_found("network ACL item", id)?;
    mutable_list(ex.reborrow(), item.acl_id).await?;
    Ok(item)
}

/// Sets the state of a live rule of a list that is not built-in.
pub async fn set_item_state<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
    state: ItemState,
) -> Result<bool> {
    let state = state.as_str();
    atomically(ex.into(), move |tx| {
        Box::pin(async move {
            let mut ex = Exec::Tx(tx);
            item_of_mutable_list(&mut ex, id).await?;
            ITEMS.set_state(ex, id, state).await
        })
    })
    .await
}

/// Replaces the fields of a live rule (its list stays); state goes back to Staged.
/// Refused for rules of the built-in lists.
pub async fn update_item<'a>(ex: impl Into<Exec<'a>>, id: i64, new: NewAclItem) -> Result<AclItem> {
    atomically(ex.into(), move |tx| {
        Box::pin(async move {
            let mut ex = Exec::Tx(tx);
            let old = item_of_mutable_list(&mut ex, id).await?;
            on_db!(&mut ex, c => {
                sqlx::query(
                    "UPDATE network_acl_item SET number = $2, action = $3, traffic_type = $4, \
                     protocol = $5, start_port = $6, end_port = $7, icmp_type = $8, \
                     icmp_code = $9, cidr_list = $10, reason = $11, state = 'Staged' \
                     WHERE id = $1",
                )
                .bind(id)
                .bind(new.number.unwrap_or(old.number))
                .bind(&new.action)
                .bind(&new.traffic_type)
                .bind(&new.protocol)
                .bind(new.start_port)
                .bind(new.end_port)
                .bind(new.icmp_type)
                .bind(new.icmp_code)
                .bind(new.cidrs.join(","))
                .bind(&new.reason)
                .execute(c)
                .await?;
            });
            item_by_id(ex, id)
                .await?
                .or_not_found("network ACL item", id)
        })
    })
    .await
}

/// Marks a live rule removed (its number becomes free); refused for rules of the
/// built-in lists.
pub async fn remove_item<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<bool> {
    atomically(ex.into(), move |tx| {
        Box::pin(async move {
            let mut ex = Exec::Tx(tx);
            item_of_mutable_list(&mut ex, id).await?;
            ITEMS.soft_delete(ex, id, ITEM_REVOKE.as_str()).await
        })
    })
    .await
}

/// Gives live rules new numbers in one go (moveNetworkAclItem and its undo). Each rule
/// first takes a temporary negative number, so the unique index on live numbers never
/// sees two rules with the same number while they swap places.
pub async fn renumber_items<'a>(ex: impl Into<Exec<'a>>, numbers: Vec<(i64, i64)>) -> Result<()> {
    atomically(ex.into(), move |tx| {
        Box::pin(async move {
            let mut ex = Exec::Tx(tx);
            for (id, _) in &numbers {
                on_db!(&mut ex, c => {
                    sqlx::query(
                        "UPDATE network_acl_item SET number = -id WHERE id = $1 \
                         AND removed IS NULL",
                    )
                    .bind(id)
                    .execute(c)
                    .await?;
                });
            }
            for (id, number) in &numbers {
                on_db!(&mut ex, c => {
                    sqlx::query(
                        "UPDATE network_acl_item SET number = $2 WHERE id = $1 \
                         AND removed IS NULL",
                    )
                    .bind(id)
                    .bind(number)
                    .execute(c)
                    .await?;
                });
            }
            Ok(())
        })
    })
    .await
}
