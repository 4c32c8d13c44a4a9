//! Events (CloudStack table `event`): one row per state of an action (an
//! async command's Scheduled, Started and Completed; a sync command's
//! Completed), with its type (`VPC.CREATE`), level, the acting user and the
//! account and domain it is filed under.

use sqlx::FromRow;

use super::Scope;
use super::query::{self, Where};
use super::text::Stored;
use super::{Exec, Listed, Page, Result, new_uuid, now_ms};
use uuid::Uuid;

/// `level` of an action that went well.
pub const LEVEL_INFO: &str = "INFO";
/// `level` of an action that failed.
pub const LEVEL_ERROR: &str = "ERROR";

/// `state` of the row an async-create command leaves when it made its entity.
pub const STATE_CREATED: &str = "Created";
/// `state` of the row left when an async command's job is queued.
pub const STATE_SCHEDULED: &str = "Scheduled";
/// `state` of the row left when a job starts.
pub const STATE_STARTED: &str = "Started";
/// `state` of the row left when an action ended (either way).
pub const STATE_COMPLETED: &str = "Completed";

/// An event with the names lists show.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct Event {
    pub id: i64,
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    #[sqlx(rename = "type")]
    pub event_type: String,
    pub state: String,
    pub level: String,
    pub description: String,
    pub resource_type: Option<String>,
    pub resource_uuid: Option<String>,
    pub start_id: i64,
    pub archived: bool,
    pub created: i64,
    pub username: Option<String>,
    pub account_id: i64,
    pub account_name: String,
    pub domain_uuid: String,
    pub domain_name: String,
    pub domain_path: String,
    /// The UUID of the row with id `start_id`, if any.
    pub parent_uuid: Option<String>,
}

/// An event to store.
#[derive(Clone, Debug)]
pub struct NewEvent<'a> {
    pub event_type: &'a str,
    pub state: &'a str,
    pub level: &'a str,
    pub description: &'a str,
    pub user_id: i64,
    pub account_id: i64,
    pub resource_type: Option<&'a str>,
    pub resource_uuid: Option<String>,
    /// The id of the action's first row (0 for the first row itself).
    pub start_id: i64,
}

/// The filters of `listEvents`; every set field must match.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub uuid: Option<Uuid>,
    pub event_type: Option<String>,
    pub level: Option<String>,
    /// Case-insensitive substring of the type, level or description.
    pub keyword: Option<String>,
    /// Epoch ms, inclusive.
    pub created_from: Option<i64>,
    /// Epoch ms, inclusive.
    pub created_to: Option<i64>,
    pub resource_uuid: Option<String>,
    pub resource_type: Option<String>,
    pub start_id: Option<i64>,
    pub archived: Option<bool>,
    /// Only rows of these owners.
    pub scope: Scope,
}

const COLUMNS: &str = "e.id, e.uuid, e.type, e.state, e.level, e.description, e.resource_type, \
     e.resource_uuid, e.start_id, e.archived, e.created, u.username, e.account_id, \
     a.account_name, d.uuid AS domain_uuid, d.name AS domain_name, d.path AS domain_path, \
     p.uuid AS parent_uuid";
const FROM: &str = "event e JOIN account a ON a.id = e.account_id \
     JOIN domain d ON d.id = e.domain_id LEFT JOIN users u ON u.id = e.user_id \
     LEFT JOIN event p ON p.id = e.start_id";

/// Stores an event under its account's domain; returns its id, or 0 when
/// the account has no row (nothing is stored then).
pub async fn insert<'a>(ex: impl Into<Exec<'a>>, new: &NewEvent<'_>) -> Result<i64> {
    let mut ex = ex.into();
    let id: Option<i64> = on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "INSERT INTO event (uuid, type, state, level, description, user_id, account_id, \
             domain_id, resource_type, resource_uuid, start_id, created) \
             SELECT $1, $2, $3, $4, $5, $6, a.id, a.domain_id, $8, $9, $10, $11 \
             FROM account a WHERE a.id = $7 RETURNING id",
        )
        .bind(new_uuid())
        .bind(new.event_type)
        .bind(new.state)
        .bind(new.level)
        .bind(new.description)
        .bind(new.user_id)
        .bind(new.account_id)
        .bind(new.resource_type)
        .bind(new.resource_uuid.as_deref())
        .bind(new.start_id)
        .bind(now_ms())
        .fetch_optional(c)
        .await?
    });
    Ok(id.unwrap_or(0))
}

/// The id of the first row of the action whose job is `job_uuid` (its
/// Scheduled row), or 0.
pub async fn start_of_job<'a>(ex: impl Into<Exec<'a>>, job_uuid: &str) -> Result<i64> {
    let mut ex = ex.into();
    let found: Option<i64> = on_db!(&mut ex, c => {
        sqlx::query_scalar("SELECT event_id FROM event_job WHERE job_uuid = $1")
            .bind(job_uuid)
            .fetch_optional(c)
            .await?
    });
    Ok(found.unwrap_or(0))
}

/// Remembers that the action of job `job_uuid` started with event `event_id`.
pub async fn link_job<'a>(ex: impl Into<Exec<'a>>, job_uuid: &str, event_id: i64) -> Result<()> {
    let mut ex = ex.into();
    on_db!(&mut ex, c => {
        sqlx::query("INSERT INTO event_job (job_uuid, event_id) VALUES ($1, $2)")
            .bind(job_uuid)
            .bind(event_id)
            .execute(c)
            .await?
            .rows_affected()
    });
    Ok(())
}

/// The events that match `filter`, newest first (CloudStack's order).
pub async fn list<'a>(
    ex: impl Into<Exec<'a>>,
    filter: &EventFilter,
    page: Page,
) -> Result<Listed<Event>> {
    let mut w = Where::new();
    w.eq_opt("e.uuid", filter.uuid)
        .scoped("e.", &filter.scope)
        .eq_opt("e.resource_uuid", filter.resource_uuid.clone())
        .eq_opt("e.start_id", filter.start_id)
        .eq_opt("e.archived", filter.archived);
    if let Some(t) = &filter.event_type {
        let p = w.arg(t.to_uppercase());
        w.push(format!("UPPER(e.type) = {p}"));
    }
    if let Some(l) = &filter.level {
        let p = w.arg(l.to_uppercase());
        w.push(format!("UPPER(e.level) = {p}"));
    }
    if let Some(t) = &filter.resource_type {
        let p = w.arg(t.to_lowercase());
        w.push(format!("LOWER(e.resource_type) = {p}"));
    }
    if let Some(from) = filter.created_from {
        let p = w.arg(from);
        w.push(format!("e.created >= {p}"));
    }
    if let Some(to) = filter.created_to {
        let p = w.arg(to);
        w.push(format!("e.created <= {p}"));
    }
    w.keyword(
        &["e.type", "e.level", "e.description"],
        filter.keyword.as_deref(),
    );
    query::list(&mut ex.into(), COLUMNS, FROM, &w, "e.id DESC", page).await
}
