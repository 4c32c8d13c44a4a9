//! SSH key pairs (CloudStack's `ssh_keypairs`): a public key under a name
//! unique in its account, with its fingerprint. The private key of a created
//! pair is never stored (CloudStack returns it once).

use sqlx::FromRow;

use super::{Exec, Result, new_uuid, now_ms};

/// An `ssh_keypairs` row.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct KeyPair {
    pub id: i64,
    pub uuid: String,
    pub name: String,
    pub account_id: i64,
    pub domain_id: i64,
    pub public_key: String,
    pub fingerprint: String,
    pub created: i64,
}

const COLUMNS: &str = "id, uuid, name, account_id, domain_id, public_key, fingerprint, created";

/// Stores a key pair; `Duplicate` when the account has one of that name.
pub async fn create<'a>(
    ex: impl Into<Exec<'a>>,
    name: &str,
    account_id: i64,
    domain_id: i64,
    public_key: &str,
    fingerprint: &str,
) -> Result<KeyPair> {
    let mut ex = ex.into();
    let sql = format!(
        "INSERT INTO ssh_keypairs (uuid, name, account_id, domain_id, public_key, fingerprint, \
         created) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    );
    Ok(on_db!(&mut ex, c => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(new_uuid())
            .bind(name)
            .bind(account_id)
            .bind(domain_id)
            .bind(public_key)
            .bind(fingerprint)
            .bind(now_ms())
            .fetch_one(c)
            .await?
    }))
}

/// The account's key pair called `name`.
pub async fn by_name<'a>(
    ex: impl Into<Exec<'a>>,
    account_id: i64,
    name: &str,
) -> Result<Option<KeyPair>> {
    let mut ex = ex.into();
    let sql = format!("SELECT {COLUMNS} FROM ssh_keypairs WHERE account_id = $1 AND name = $2");
    Ok(on_db!(&mut ex, c => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(account_id)
            .bind(name)
            .fetch_optional(c)
            .await?
    }))
}

/// The account's key pair holding `public_key`, if any.
pub async fn by_public_key<'a>(
    ex: impl Into<Exec<'a>>,
    account_id: i64,
    public_key: &str,
) -> Result<Option<KeyPair>> {
    let mut ex = ex.into();
    let sql =
        format!("SELECT {COLUMNS} FROM ssh_keypairs WHERE account_id = $1 AND public_key = $2");
    Ok(on_db!(&mut ex, c => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(account_id)
            .bind(public_key)
            .fetch_optional(c)
            .await?
    }))
}

/// A key pair with its owner's names, for lists.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct Listed {
    pub id: i64,
    pub uuid: String,
    pub name: String,
    pub account_id: i64,
    pub fingerprint: String,
    pub account_name: String,
    pub domain_id: i64,
    pub domain_uuid: String,
    pub domain_name: String,
    pub domain_path: String,
}

/// Every key pair with its owner, oldest first; the caller filters by scope
/// (a handful per account).
pub async fn all<'a>(ex: impl Into<Exec<'a>>) -> Result<Vec<Listed>> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_as(
            "SELECT k.id, k.uuid, k.name, k.account_id, k.fingerprint, a.account_name, \
             k.domain_id, d.uuid AS domain_uuid, d.name AS domain_name, d.path AS domain_path \
             FROM ssh_keypairs k JOIN account a ON a.id = k.account_id \
             JOIN domain d ON d.id = k.domain_id ORDER BY k.id",
        )
        .fetch_all(c)
        .await?
    }))
}

/// Deletes a key pair; false when it was gone.
pub async fn delete<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<bool> {
    let mut ex = ex.into();
    let done = on_db!(&mut ex, c => {
        sqlx::query("DELETE FROM ssh_keypairs WHERE id = $1")
            .bind(id)
            .execute(c)
            .await?
            .rows_affected()
    });
    Ok(done == 1)
}
