//! Registered user data (CloudStack's `user_data`, `registerUserData`): named,
//! reusable user data of an account, base64 as CloudStack keeps it, with the
//! names of its parameters. Removal is soft, as CloudStack's.

use sqlx::FromRow;

use super::query::{self, Arg, Where};
use super::table::Table;
use super::{Exec, Result, new_uuid, now_ms};

/// A `user_data` row with its owner's names, as the commands show it.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct UserData {
    pub id: i64,
    #[sqlx(try_from = "super::text::Stored")]
    pub uuid: uuid::Uuid,
    pub name: String,
    pub account_id: i64,
    pub domain_id: i64,
    /// Base64.
    pub user_data: String,
    /// Comma-separated parameter names; empty when none.
    pub params: String,
    pub account_name: String,
    #[sqlx(try_from = "super::text::Stored")]
    pub account_uuid: uuid::Uuid,
    #[sqlx(try_from = "super::text::Stored")]
    pub domain_uuid: uuid::Uuid,
    pub domain_name: String,
    pub domain_path: String,
}

const COLUMNS: &str = "u.id, u.uuid, u.name, u.account_id, u.domain_id, u.user_data, u.params, \
     a.account_name, a.uuid AS account_uuid, d.uuid AS domain_uuid, d.name AS domain_name, \
     d.path AS domain_path";
const FROM: &str = "user_data u JOIN account a ON a.id = u.account_id \
     JOIN domain d ON d.id = u.domain_id";
const TABLE: Table<UserData> = Table::joined("user_data", COLUMNS, FROM, "u.");

/// The live row the conditions `(column, value)` single out.
async fn live_where<'a>(
    ex: impl Into<Exec<'a>>,
    conditions: Vec<(&str, Arg)>,
) -> Result<Option<UserData>> {
    let mut w = Where::new();
    w.push("u.removed IS NULL");
    for (column, value) in conditions {
        w.eq(column, value);
    }
    TABLE.first(ex, &w).await
}

/// What registerUserData stores.
pub struct NewUserData<'a> {
    pub name: &'a str,
    pub account_id: i64,
    pub domain_id: i64,
    pub user_data: &'a str,
    pub params: &'a str,
}

/// Stores registered user data; `Duplicate` when the account has live user
/// data of that name.
pub async fn create<'a>(ex: impl Into<Exec<'a>>, new: NewUserData<'_>) -> Result<i64> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "INSERT INTO user_data (uuid, name, account_id, domain_id, user_data, params, \
             created) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(new_uuid())
        .bind(new.name)
        .bind(new.account_id)
        .bind(new.domain_id)
        .bind(new.user_data)
        .bind(new.params)
        .bind(now_ms())
        .fetch_one(c)
        .await?
    }))
}

/// Live user data by internal id.
pub async fn by_id<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<Option<UserData>> {
    live_where(ex, vec![("u.id", id.into())]).await
}

/// Live user data by UUID.
pub async fn by_uuid<'a>(ex: impl Into<Exec<'a>>, uuid: uuid::Uuid) -> Result<Option<UserData>> {
    live_where(ex, vec![("u.uuid", uuid.into())]).await
}

/// The account's live user data called `name`.
pub async fn by_name<'a>(
    ex: impl Into<Exec<'a>>,
    account_id: i64,
    name: &str,
) -> Result<Option<UserData>> {
    live_where(
        ex,
        vec![("u.account_id", account_id.into()), ("u.name", name.into())],
    )
    .await
}

/// The account's live user data with exactly this content.
pub async fn by_content<'a>(
    ex: impl Into<Exec<'a>>,
    account_id: i64,
    user_data: &str,
) -> Result<Option<UserData>> {
    live_where(
        ex,
        vec![
            ("u.account_id", account_id.into()),
            ("u.user_data", user_data.into()),
        ],
    )
    .await
}

/// Every live registered user data, oldest first; the caller filters by
/// scope (a handful per account).
pub async fn all<'a>(ex: impl Into<Exec<'a>>) -> Result<Vec<UserData>> {
    let sql = format!("SELECT {COLUMNS} FROM {FROM} WHERE u.removed IS NULL ORDER BY u.id");
    query::fetch_all(&mut ex.into(), sql, &[]).await
}

/// How many live VMs were deployed with (or given) this user data.
pub async fn vms_using<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<i64> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM vm_user_data d JOIN vm_instance v ON v.id = d.vm_id \
             WHERE d.user_data_id = $1 AND v.removed IS NULL",
        )
        .bind(id)
        .fetch_one(c)
        .await?
    }))
}

/// Marks user data removed; false when it was gone.
pub async fn remove<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<bool> {
    TABLE.remove(ex, id).await
}
