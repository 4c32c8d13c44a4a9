//! Load balancer stickiness policies (CloudStack's
//! `load_balancer_stickiness_policies`, createLBStickinessPolicy): one live
//! policy per rule (a unique index), its `param` pairs kept as a JSON array
//! of `[name, value]`. Removal is soft, as CloudStack's.

use sqlx::FromRow;

use super::query::Arg;
use super::table::Table;
use super::{Exec, Result, new_uuid, now_ms};

const TABLE: Table<Policy> = Table::new(
    "load_balancer_stickiness_policies",
    "id, uuid, load_balancer_id, name, description, method_name, params, display, state",
);

/// A live policy row.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct Policy {
    pub id: i64,
    #[sqlx(try_from = "super::text::Stored")]
    pub uuid: uuid::Uuid,
    pub load_balancer_id: i64,
    pub name: String,
    pub description: Option<String>,
    /// `LbCookie`, `AppCookie` or `SourceBased`.
    pub method_name: String,
    /// JSON array of `[name, value]`.
    pub params: String,
    pub display: bool,
    /// `Add` until the router has it, then `Active`.
    pub state: String,
}

impl Policy {
    /// The `param` pairs, in the order given.
    pub fn param_pairs(&self) -> Vec<(String, String)> {
        serde_json::from_str(&self.params).unwrap_or_default()
    }
}

/// What createLBStickinessPolicy stores.
pub struct NewPolicy<'a> {
    pub load_balancer_id: i64,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub method_name: &'a str,
    pub params: &'a [(String, String)],
    pub display: bool,
}

/// Stores a new policy (state Add); returns its id.
pub async fn create<'a>(ex: impl Into<Exec<'a>>, new: NewPolicy<'_>) -> Result<i64> {
    let params = serde_json::to_string(new.params).unwrap_or_else(|_| "[]".into());
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "INSERT INTO load_balancer_stickiness_policies (uuid, load_balancer_id, name, \
             description, method_name, params, display, state, created) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'Add', $8) RETURNING id",
        )
        .bind(new_uuid())
        .bind(new.load_balancer_id)
        .bind(new.name)
        .bind(new.description)
        .bind(new.method_name)
        .bind(params)
        .bind(new.display)
        .bind(now_ms())
        .fetch_one(c)
        .await?
    }))
}

async fn live_where<'a>(
    ex: impl Into<Exec<'a>>,
    column: &str,
    value: Arg,
) -> Result<Option<Policy>> {
    Ok(TABLE.live(ex, &[(column, value)]).await?.into_iter().next())
}

/// A live policy by internal id.
pub async fn by_id<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<Option<Policy>> {
    live_where(ex, "id", id.into()).await
}

/// A live policy by UUID.
pub async fn by_uuid<'a>(ex: impl Into<Exec<'a>>, uuid: uuid::Uuid) -> Result<Option<Policy>> {
    live_where(ex, "uuid", uuid.into()).await
}

/// The live policy of a rule, if it has one.
pub async fn of_rule<'a>(ex: impl Into<Exec<'a>>, rule_id: i64) -> Result<Option<Policy>> {
    live_where(ex, "load_balancer_id", rule_id.into()).await
}

/// The live policies of these rules, in one statement.
pub async fn of_rules<'a>(ex: impl Into<Exec<'a>>, rule_ids: &[i64]) -> Result<Vec<Policy>> {
    TABLE
        .live_by_ids(ex, "removed IS NULL", "load_balancer_id", rule_ids, "id")
        .await
}

/// Sets a live policy's state (`Add`, `Active`).
pub async fn set_state<'a>(ex: impl Into<Exec<'a>>, id: i64, state: &str) -> Result<bool> {
    TABLE.set_state(ex, id, state).await
}

/// Marks a policy removed (state Revoke); false when it already was.
pub async fn remove<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<bool> {
    TABLE.soft_delete(ex, id, "Revoke").await
}

/// Makes a removed policy live again (the undo of a refused delete).
pub async fn restore<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<()> {
    let mut ex = ex.into();
    on_db!(&mut ex, c => {
        sqlx::query(
            "UPDATE load_balancer_stickiness_policies SET removed = NULL, state = 'Active' \
             WHERE id = $1",
        )
        .bind(id)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(())
}

/// Marks every live policy of a rule removed (the rule is being deleted).
pub async fn remove_of_rule<'a>(ex: impl Into<Exec<'a>>, rule_id: i64) -> Result<()> {
    let mut ex = ex.into();
    on_db!(&mut ex, c => {
        sqlx::query(
            "UPDATE load_balancer_stickiness_policies SET removed = $2, state = 'Revoke' \
             WHERE load_balancer_id = $1 AND removed IS NULL",
        )
        .bind(rule_id)
        .bind(now_ms())
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(())
}
