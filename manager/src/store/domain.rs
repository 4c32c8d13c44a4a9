//! Domains: the tree that owns accounts (CloudStack table `domain`).
//!
//! A domain's `path` is `/` for ROOT and `/<name>/…/` below it, so a subtree is every
//! row whose path starts with the subtree root's path.

use sqlx::FromRow;

use super::query::{self, Where};
use super::table::Table;
use super::text::Stored;
use super::{Exec, Listed, OrNotFound, Page, Result, StoreError, atomically, new_uuid, now_ms};
use uuid::Uuid;

/// The path of the ROOT domain.
pub const ROOT_PATH: &str = "/";
/// The name of the ROOT domain.
pub const ROOT_NAME: &str = "ROOT";

/// A `domain` row.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct Domain {
    /// Internal key.
    pub id: i64,
    /// API id.
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    /// None for ROOT.
    pub parent_id: Option<i64>,
    /// Name, unique among its siblings.
    pub name: String,
    /// `/` for ROOT, `/a/b/` for a grandchild.
    pub path: String,
    /// 0 for ROOT, 1 for its children …
    pub level: i64,
    /// DNS domain for networks of this domain's accounts.
    pub network_domain: Option<String>,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Removal time (epoch ms), if removed.
    pub removed: Option<i64>,
}

impl Domain {
    /// CloudStack's `domainpath` response field: `ROOT` or `ROOT/a/b`.
    pub fn display_path(&self) -> String {
        format!("{ROOT_NAME}{}", self.path.trim_end_matches('/'))
    }
}

/// A domain to create.
#[derive(Clone, Debug)]
pub struct NewDomain {
    /// The parent domain (must not be removed).
    pub parent_id: i64,
    /// Name; must not contain `/`.
    pub name: String,
    /// DNS domain for its networks.
    pub network_domain: Option<String>,
}

/// Filters of a domain list; every set field must match.
#[derive(Clone, Debug, Default)]
pub struct DomainFilter {
    /// Only this domain.
    pub uuid: Option<Uuid>,
    /// Exact name.
    pub name: Option<String>,
    /// Depth (ROOT is 0).
    pub level: Option<i64>,
    /// Substring of the name, case-insensitive.
    pub keyword: Option<String>,
    /// Only domains whose path starts with this one (the subtree, root included).
    pub path_prefix: Option<String>,
    /// Only direct children of this domain.
    pub parent_id: Option<i64>,
}

pub(crate) const COLUMNS: &str =
    "id, uuid, parent_id, name, path, level, network_domain, created, removed";
const TABLE: Table<Domain> = Table::new("domain", COLUMNS);

/// The ROOT domain.
pub async fn root<'a>(ex: impl Into<Exec<'a>>) -> Result<Domain> {
    get_by_path(ex, ROOT_PATH)
        .await?
        .or_not_found("domain", ROOT_PATH)
}

/// A domain by internal id, removed or not.
pub async fn get_by_id<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<Option<Domain>> {
    TABLE.by_id(ex, id).await
}

/// A domain by UUID, removed or not (the API resolves removed ids too).
pub async fn get_by_uuid<'a>(ex: impl Into<Exec<'a>>, uuid: Uuid) -> Result<Option<Domain>> {
    TABLE.by_uuid(ex, uuid).await
}

/// Domains by internal id, removed or not, in one statement (list views).
pub async fn by_ids<'a>(ex: impl Into<Exec<'a>>, ids: &[i64]) -> Result<Vec<Domain>> {
    TABLE.by_ids(ex, ids).await
}

/// The live domain at `path` (`/` or `/a/b/`).
pub async fn get_by_path<'a>(ex: impl Into<Exec<'a>>, path: &str) -> Result<Option<Domain>> {
    let mut w = Where::new();
    w.push("removed IS NULL").eq("path", path);
    TABLE.first(ex, &w).await
}

/// Creates a child domain of a live parent.
pub async fn create<'a>(ex: impl Into<Exec<'a>>, new: NewDomain) -> Result<Domain> {
    if new.name.is_empty() || new.name.contains('/') {
        return Err(StoreError::Conflict(format!(
            "invalid domain name {:?}: it must be non-empty and contain no '/'",
            new.name
        )));
    }
    let mut ex = ex.into();
    let parent = get_by_id(ex.reborrow(), new.parent_id)
        .await?
        .filter(|p| p.removed.is_none())
        .or_not_found("domain", new.parent_id)?;
    let path = format!("{}{}/", parent.path, new.name);
    Ok(on_db!(&mut ex, c => {
        sqlx::query_as(
            "INSERT INTO domain (uuid, parent_id, name, path, level, network_domain, created) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             RETURNING id, uuid, parent_id, name, path, level, network_domain, created, removed",
        )
        .bind(new_uuid())
        .bind(parent.id)
        .bind(&new.name)
        .bind(&path)
        .bind(parent.level + 1)
        .bind(&new.network_domain)
        .bind(now_ms())
        .fetch_one(c)
        .await?
    }))
}

/// Lists live domains, ordered by path (so parents come before their children).
pub async fn list<'a>(
    ex: impl Into<Exec<'a>>,
    filter: &DomainFilter,
    page: Page,
) -> Result<Listed<Domain>> {
    let mut w = Where::new();
    w.push("removed IS NULL")
        .eq_opt("uuid", filter.uuid)
        .eq_opt("name", filter.name.clone())
        .eq_opt("level", filter.level)
        .eq_opt("parent_id", filter.parent_id)
        .keyword(&["name"], filter.keyword.as_deref());
    if let Some(prefix) = &filter.path_prefix {
        w.starts_with("path", prefix);
    }
    TABLE.list(ex, &w, "path, id", page).await
}

/// The live domains of the subtree rooted at `path`, the root included.
pub async fn subtree<'a>(ex: impl Into<Exec<'a>>, path: &str) -> Result<Vec<Domain>> {
    let filter = DomainFilter {
        path_prefix: Some(path.to_string()),
        ..DomainFilter::default()
    };
    Ok(list(ex, &filter, Page::ALL).await?.items)
}

/// Renames a domain and rewrites the paths of its whole subtree, atomically.
pub async fn rename<'a>(ex: impl Into<Exec<'a>>, id: i64, name: &str) -> Result<Domain> {
    if name.is_empty() || name.contains('/') {
        return Err(StoreError::Conflict(format!(
            "invalid domain name {name:?}: it must be non-empty and contain no '/'"
        )));
    }
    let name = name.to_string();
    atomically(ex.into(), move |tx| {
        Box::pin(async move {
            let mut ex = Exec::Tx(tx);
            let domain = get_by_id(ex.reborrow(), id)
                .await?
                .filter(|d| d.removed.is_none() && d.parent_id.is_some())
                .or_not_found("domain", id)?;
            let parent_path = &domain.path[..domain.path.len() - domain.name.len() - 1];
            let new_path = format!("{parent_path}{name}/");
            on_db!(&mut ex, c => {
                sqlx::query("UPDATE domain SET name = $2 WHERE id = $1")
                    .bind(id)
                    .bind(&name)
                    .execute(c)
                    .await?;
            });
            // The subtree keeps its suffix below the renamed domain.
            on_db!(&mut ex, c => {
                sqlx::query(
                    "UPDATE domain SET path = $2 || SUBSTR(path, LENGTH($1) + 1) \
                     WHERE SUBSTR(path, 1, LENGTH($1)) = $1 AND removed IS NULL",
                )
                .bind(&domain.path)
                .bind(&new_path)
                .execute(c)
                .await?;
            });
            get_by_id(ex, id).await?.or_not_found("domain", id)
        })
    })
    .await
}

/// Sets the network domain of a domain.
pub async fn set_network_domain<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
    network_domain: Option<&str>,
) -> Result<bool> {
    TABLE
        .set_live(ex, id, &[("network_domain", network_domain.into())])
        .await
}

/// Marks a domain removed. Refused while it has live child domains or accounts.
pub async fn remove<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<bool> {
    let mut ex = ex.into();
    let dependents: i64 = on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM domain WHERE parent_id = $1 AND removed IS NULL) \
                  + (SELECT COUNT(*) FROM account WHERE domain_id = $1 AND removed IS NULL)",
        )
        .bind(id)
        .fetch_one(c)
        .await?
    });
    if dependents > 0 {
        return Err(StoreError::Conflict(format!(
            "domain {id} still has {dependents} live child domains or accounts"
        )));
    }
    // ROOT (no parent) is never removed.
    let sql = "UPDATE domain SET removed = $2 WHERE id = $1 AND removed IS NULL \
               AND parent_id IS NOT NULL";
    let args = [id.into(), now_ms().into()];
    Ok(query::execute(&mut ex, sql.to_string(), &args).await? == 1)
}
