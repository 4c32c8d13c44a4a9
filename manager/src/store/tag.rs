//! Resource tags (CloudStack's `resource_tags`): a key and value on one
//! resource, named by its type (`Vpc`, `Network`, `UserVm` ...) and UUID,
//! owned by the resource's account. A key appears once per resource.

use sqlx::FromRow;

use super::Scope;
use super::query::{self, Where};
use super::{Exec, Page, Result, new_uuid, now_ms};

/// A tag with its owner's names, as lists show it.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct Tag {
    pub id: i64,
    pub key: String,
    pub value: String,
    pub resource_type: String,
    pub resource_id: i64,
    pub resource_uuid: String,
    pub account_id: i64,
    pub domain_id: i64,
    pub customer: Option<String>,
    pub account_name: String,
    pub domain_uuid: String,
    pub domain_name: String,
    pub domain_path: String,
}

/// A tag to store.
#[derive(Clone, Debug)]
pub struct NewTag<'a> {
    pub key: &'a str,
    pub value: &'a str,
    pub resource_type: &'a str,
    pub resource_id: i64,
    pub resource_uuid: &'a str,
    pub account_id: i64,
    pub domain_id: i64,
    pub customer: Option<&'a str>,
}

/// Filters of a tag list; every set field must match.
#[derive(Clone, Debug, Default)]
pub struct TagFilter {
    pub resource_type: Option<String>,
    /// Only the tags of these resources (API ids).
    pub resource_uuids: Option<Vec<String>>,
    pub key: Option<String>,
    pub value: Option<String>,
    pub customer: Option<String>,
    /// Only rows of these owners.
    pub scope: Scope,
}

const COLUMNS: &str = "t.id, t.tag_key AS key, t.tag_value AS value, t.resource_type, \
     t.resource_id, t.resource_uuid, t.account_id, t.domain_id, t.customer, a.account_name, \
     d.uuid AS domain_uuid, d.name AS domain_name, d.path AS domain_path";
const FROM: &str =
    "resource_tags t JOIN account a ON a.id = t.account_id JOIN domain d ON d.id = t.domain_id";

/// Stores a tag; `Duplicate` when the resource has the key already.
pub async fn create<'a>(ex: impl Into<Exec<'a>>, new: NewTag<'_>) -> Result<i64> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "INSERT INTO resource_tags (uuid, tag_key, tag_value, resource_type, resource_id, \
             resource_uuid, account_id, domain_id, customer, created) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(new_uuid())
        .bind(new.key)
        .bind(new.value)
        .bind(new.resource_type)
        .bind(new.resource_id)
        .bind(new.resource_uuid)
        .bind(new.account_id)
        .bind(new.domain_id)
        .bind(new.customer)
        .bind(now_ms())
        .fetch_one(c)
        .await?
    }))
}

/// The tags that match `filter`, by resource and key order of creation.
pub async fn list<'a>(ex: impl Into<Exec<'a>>, filter: &TagFilter) -> Result<Vec<Tag>> {
    let mut w = Where::new();
    w.eq_opt("t.resource_type", filter.resource_type.clone())
        .eq_opt("t.tag_key", filter.key.clone())
        .eq_opt("t.tag_value", filter.value.clone())
        .eq_opt("t.customer", filter.customer.clone())
        .scoped("t.", &filter.scope);
    if let Some(uuids) = &filter.resource_uuids {
        w.any_of("t.resource_uuid", uuids);
    }
    Ok(
        query::list(&mut ex.into(), COLUMNS, FROM, &w, "t.id", Page::ALL)
            .await?
            .items,
    )
}

/// The UUIDs of the resources of `resource_type` holding a tag that matches
/// any of `pairs` (key, and value when given), as CloudStack's `tags[i]`
/// list filters do.
pub async fn resources_matching<'a>(
    ex: impl Into<Exec<'a>>,
    resource_type: &str,
    pairs: &[(String, Option<String>)],
) -> Result<Vec<String>> {
    let mut w = Where::new();
    w.eq("t.resource_type", resource_type);
    let mut any = Vec::new();
    for (key, value) in pairs {
        let k = w.arg(key.clone());
        match value {
            Some(v) => {
                let v = w.arg(v.clone());
                any.push(format!("(t.tag_key = {k} AND t.tag_value = {v})"));
            }
            None => any.push(format!("t.tag_key = {k}")),
        }
    }
    if any.is_empty() {
        w.push("1 = 0");
    } else {
        w.push(format!("({})", any.join(" OR ")));
    }
    let tags: Vec<Tag> = query::list(&mut ex.into(), COLUMNS, FROM, &w, "t.id", Page::ALL)
        .await?
        .items;
    let mut uuids: Vec<String> = tags.into_iter().map(|t| t.resource_uuid).collect();
    uuids.sort();
    uuids.dedup();
    Ok(uuids)
}

/// Deletes the tags of the given ids; how many went.
pub async fn delete<'a>(ex: impl Into<Exec<'a>>, ids: &[i64]) -> Result<u64> {
    let mut ex = ex.into();
    let mut gone = 0;
    for id in ids {
        gone += on_db!(&mut ex, c => {
            sqlx::query("DELETE FROM resource_tags WHERE id = $1")
                .bind(*id)
                .execute(c)
                .await?
                .rows_affected()
        });
    }
    Ok(gone)
}
