//! Resource limits (CloudStack table `resource_limit`; updateResourceLimit,
//! reference/cloudstack.md §2.10 and §3.2).
//!
//! A limit set on an account or domain wins; otherwise the `max.account.*` /
//! `max.domain.*` configuration default applies. As in CloudStack, root admin
//! accounts and the ROOT domain are unlimited. `-1` means unlimited.
//!
//! [`check`] counts an account's resources (and each of its domains') in the
//! transaction that then creates more, under the account's row lock
//! ([`lock_owner`]), so that parallel creates on any number of managers
//! never pass a limit.

use sqlx::FromRow;

use super::query::Where;
use super::table::Table;
use super::{Exec, OrNotFound, Result, account, config, domain};
use uuid::Uuid;

/// The value meaning "no limit".
pub const UNLIMITED: i64 = -1;

/// CloudStack's resource types: API code, stored name, and the suffix of the
/// `max.account.*` / `max.domain.*` configuration keys.
pub const RESOURCE_TYPES: &[(i64, &str, &str)] = &[
    (0, "user_vm", "user.vms"),
    (1, "public_ip", "public.ips"),
    (2, "volume", "volumes"),
    (3, "snapshot", "snapshots"),
    (4, "template", "templates"),
    (5, "project", "projects"),
    (6, "network", "networks"),
    (7, "vpc", "vpcs"),
    (8, "cpu", "cpus"),
    (9, "memory", "memory"),
    (10, "primary_storage", "primary.storage"),
    (11, "secondary_storage", "secondary.storage"),
];

/// The stored name of an API resource type code (`7` → `vpc`).
pub fn type_name(code: i64) -> Option<&'static str> {
    RESOURCE_TYPES.iter().find(|t| t.0 == code).map(|t| t.1)
}

/// The API code of a stored resource type name (`vpc` → `7`).
pub fn type_code(name: &str) -> Option<i64> {
    RESOURCE_TYPES.iter().find(|t| t.1 == name).map(|t| t.0)
}

fn config_suffix(name: &str) -> Result<&'static str> {
    RESOURCE_TYPES
        .iter()
        .find(|t| t.1 == name)
        .map(|t| t.2)
        .or_not_found("resource type", name)
}

/// A `resource_limit` row: set on exactly one of an account or a domain.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct ResourceLimit {
    /// Internal key.
    pub id: i64,
    /// Resource type name (`vpc` …).
    #[sqlx(rename = "type")]
    pub resource_type: String,
    /// The limit, `-1` for unlimited.
    pub max: i64,
    /// The account it applies to.
    pub account_id: Option<i64>,
    /// The domain it applies to.
    pub domain_id: Option<i64>,
}

const LIMITS: Table<ResourceLimit> =
    Table::new("resource_limit", "id, type, max, account_id, domain_id");

/// The limit explicitly set on an account, if any.
pub async fn get_for_account<'a>(
    ex: impl Into<Exec<'a>>,
    account_id: i64,
    resource_type: &str,
) -> Result<Option<ResourceLimit>> {
    get_for(ex.into(), "account_id", account_id, resource_type).await
}

/// The limit explicitly set on a domain, if any.
pub async fn get_for_domain<'a>(
    ex: impl Into<Exec<'a>>,
    domain_id: i64,
    resource_type: &str,
) -> Result<Option<ResourceLimit>> {
    get_for(ex.into(), "domain_id", domain_id, resource_type).await
}

/// The limit of type `resource_type` set on the account or domain whose id
/// stands in `owner_column`.
async fn get_for(
    ex: Exec<'_>,
    owner_column: &'static str,
    owner_id: i64,
    resource_type: &str,
) -> Result<Option<ResourceLimit>> {
    let mut w = Where::new();
    w.eq(owner_column, owner_id).eq("type", resource_type);
    LIMITS.first(ex, &w).await
}

/// The limit in force for an account: unlimited for root admins, else the account's
/// own limit, else `max.account.<type>` (unlimited if that key is not declared).
pub async fn effective_for_account<'a>(
    ex: impl Into<Exec<'a>>,
    account_id: i64,
    resource_type: &str,
) -> Result<i64> {
    let suffix = config_suffix(resource_type)?;
    let mut ex = ex.into();
    let account = account::get_by_id(ex.reborrow(), account_id)
        .await?
        .or_not_found("account", account_id)?;
    if account.account_type == account::TYPE_ADMIN {
        return Ok(UNLIMITED);
    }
    if let Some(limit) = get_for_account(ex.reborrow(), account_id, resource_type).await? {
        return Ok(limit.max);
    }
    let key = format!("max.account.{suffix}");
    Ok(config::value_i64(ex, &key).await?.unwrap_or(UNLIMITED))
}

/// The limit in force for a domain: unlimited for ROOT, else the domain's own limit,
/// else `max.domain.<type>` (unlimited if that key is not declared).
pub async fn effective_for_domain<'a>(
    ex: impl Into<Exec<'a>>,
    domain_id: i64,
    resource_type: &str,
) -> Result<i64> {
    let suffix = config_suffix(resource_type)?;
    let mut ex = ex.into();
    let domain = domain::get_by_id(ex.reborrow(), domain_id)
        .await?
        .or_not_found("domain", domain_id)?;
    if domain.parent_id.is_none() {
        return Ok(UNLIMITED);
    }
    if let Some(limit) = get_for_domain(ex.reborrow(), domain_id, resource_type).await? {
        return Ok(limit.max);
    }
    let key = format!("max.domain.{suffix}");
    Ok(config::value_i64(ex, &key).await?.unwrap_or(UNLIMITED))
}

/// Sets an account's limit (insert or replace); returns the row.
pub async fn set_for_account<'a>(
    ex: impl Into<Exec<'a>>,
    account_id: i64,
    resource_type: &str,
    max: i64,
) -> Result<ResourceLimit> {
    upsert(ex.into(), "account_id", account_id, resource_type, max).await
}

/// Sets a domain's limit (insert or replace); returns the row.
pub async fn set_for_domain<'a>(
    ex: impl Into<Exec<'a>>,
    domain_id: i64,
    resource_type: &str,
    max: i64,
) -> Result<ResourceLimit> {
    upsert(ex.into(), "domain_id", domain_id, resource_type, max).await
}

/// Inserts or replaces the limit of the account or domain whose id stands in
/// `owner_column`: the partial unique index on `(type, owner_column)` is the
/// conflict target, so an owner has at most one row per type.
async fn upsert(
    mut ex: Exec<'_>,
    owner_column: &'static str,
    owner_id: i64,
    resource_type: &str,
    max: i64,
) -> Result<ResourceLimit> {
    config_suffix(resource_type)?;
    let sql = format!(
        "INSERT INTO resource_limit (type, max, {owner_column}) VALUES ($1, $2, $3) \
         ON CONFLICT (type, {owner_column}) WHERE {owner_column} IS NOT NULL \
         DO UPDATE SET max = excluded.max \
         RETURNING id, type, max, account_id, domain_id"
    );
    Ok(on_db!(&mut ex, c => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(resource_type)
            .bind(max)
            .bind(owner_id)
            .fetch_one(c)
            .await?
    }))
}

/// Removes an account's own limit so the default applies again.
pub async fn clear_for_account<'a>(
    ex: impl Into<Exec<'a>>,
    account_id: i64,
    resource_type: &str,
) -> Result<bool> {
    let mut ex = ex.into();
    let done = on_db!(&mut ex, c => {
        sqlx::query("DELETE FROM resource_limit WHERE account_id = $1 AND type = $2")
            .bind(account_id)
            .bind(resource_type)
            .execute(c)
            .await?
            .rows_affected()
    });
    Ok(done == 1)
}

/// The live resources of each counted type, as SQL rows (`account_id`,
/// `domain_id`, `n`: how much of the type one row holds). Types not listed
/// here are not counted.
fn counted(resource_type: &str) -> Option<&'static str> {
    Some(match resource_type {
        "vpc" => "SELECT account_id, domain_id, 1 AS n FROM vpc WHERE removed IS NULL",
        // Tiers (and any other guest network); private gateway networks are
        // the gateway's, not a network the account asked for.
        "network" => {
            "SELECT account_id, domain_id, 1 AS n FROM networks \
             WHERE removed IS NULL AND traffic_type = 'Guest'"
        }
        "public_ip" => {
            "SELECT account_id, domain_id, 1 AS n FROM user_ip_address WHERE state <> 'Free'"
        }
        "user_vm" => "SELECT account_id, domain_id, 1 AS n FROM vm_instance WHERE removed IS NULL",
        // CPUs and memory (MiB) of the VMs, from their service offerings.
        "cpu" => {
            "SELECT v.account_id, v.domain_id, s.cpu AS n FROM vm_instance v \
             JOIN service_offering s ON s.id = v.service_offering_id WHERE v.removed IS NULL"
        }
        "memory" => {
            "SELECT v.account_id, v.domain_id, s.ram_size AS n FROM vm_instance v \
             JOIN service_offering s ON s.id = v.service_offering_id WHERE v.removed IS NULL"
        }
        _ => return None,
    })
}

/// How many `resource_type` resources account `account_id` holds.
pub async fn count_for_account<'a>(
    ex: impl Into<Exec<'a>>,
    account_id: i64,
    resource_type: &str,
) -> Result<i64> {
    let Some(rows) = counted(resource_type) else {
        return Ok(0);
    };
    // SUM of BIGINT is NUMERIC on PostgreSQL: cast back.
    let sql = format!(
        "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM ({rows}) r WHERE r.account_id = $1"
    );
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        // The SQL is built from the constants of `counted` only.
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone())).bind(account_id).fetch_one(c).await?
    }))
}

/// How many `resource_type` resources the accounts of the domain at `path`
/// and of its sub-domains hold.
pub async fn count_for_domain<'a>(
    ex: impl Into<Exec<'a>>,
    path: &str,
    resource_type: &str,
) -> Result<i64> {
    let Some(rows) = counted(resource_type) else {
        return Ok(0);
    };
    let sql = format!(
        "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM ({rows}) r WHERE r.domain_id IN \
         (SELECT id FROM domain WHERE SUBSTR(path, 1, LENGTH($1)) = $1)"
    );
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone())).bind(path).fetch_one(c).await?
    }))
}

/// Locks what an account's resource counts depend on until the transaction
/// ends, so that counting and creating are one step for every manager: on
/// PostgreSQL the account's row and the rows of its domain and the domains
/// above it but ROOT (unlimited), `FOR UPDATE`, account first, domains by
/// id; SQLite needs nothing, as its transactions (`BEGIN IMMEDIATE`) hold
/// the database's write lock.
pub async fn lock_owner(tx: &mut super::Tx, account_id: i64) -> Result<()> {
    let mut ex = Exec::Tx(tx);
    if ex.backend() != super::Backend::Postgres {
        return Ok(());
    }
    on_db!(&mut ex, c => {
        sqlx::query("SELECT id FROM account WHERE id = $1 FOR UPDATE")
            .bind(account_id)
            .fetch_optional(c)
            .await?;
    });
    on_db!(&mut ex, c => {
        sqlx::query(
            "SELECT d.id FROM domain d, domain own, account a \
             WHERE a.id = $1 AND own.id = a.domain_id AND d.parent_id IS NOT NULL \
             AND SUBSTR(own.path, 1, LENGTH(d.path)) = d.path \
             ORDER BY d.id FOR UPDATE OF d",
        )
        .bind(account_id)
        .fetch_all(c)
        .await?;
    });
    Ok(())
}

/// A limit that one more request would pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exceeded {
    /// The account's own limit.
    Account {
        /// The account's name.
        name: String,
        /// The limit in force.
        max: i64,
        /// What the account holds.
        current: i64,
    },
    /// The limit of the account's domain or of a domain above it.
    Domain {
        /// The domain's UUID.
        uuid: Uuid,
        /// The limit in force.
        max: i64,
        /// What the domain's accounts hold.
        current: i64,
    },
}

/// Locks the account ([`lock_owner`]) and checks that `requested` more
/// `resource_type` resources fit its own limit and the limit of every domain
/// above it; the first limit they would pass, if any. Call it in the
/// transaction that then creates the resources, so that the count still
/// holds when they are written.
pub async fn check(
    tx: &mut super::Tx,
    account_id: i64,
    resource_type: &str,
    requested: i64,
) -> Result<Option<Exceeded>> {
    lock_owner(tx, account_id).await?;
    let a = account::get_by_id(&mut *tx, account_id)
        .await?
        .or_not_found("account", account_id)?;
    let max = effective_for_account(&mut *tx, account_id, resource_type).await?;
    if max != UNLIMITED {
        let current = count_for_account(&mut *tx, account_id, resource_type).await?;
        if current + requested > max {
            return Ok(Some(Exceeded::Account {
                name: a.account_name,
                max,
                current,
            }));
        }
    }
    // The account's domain, then each parent up to (not including) ROOT.
    let mut next = Some(a.domain_id);
    while let Some(domain_id) = next {
        let d = domain::get_by_id(&mut *tx, domain_id)
            .await?
            .or_not_found("domain", domain_id)?;
        next = d.parent_id;
        let max = effective_for_domain(&mut *tx, d.id, resource_type).await?;
        if max == UNLIMITED {
            continue;
        }
        let current = count_for_domain(&mut *tx, &d.path, resource_type).await?;
        if current + requested > max {
            return Ok(Some(Exceeded::Domain {
                uuid: d.uuid,
                max,
                current,
            }));
        }
    }
    Ok(None)
}
