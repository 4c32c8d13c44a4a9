//! Building filtered, paged list queries once for both backends.
//!
//! List commands combine optional filters (id, ids, keyword, domain subtree, account …),
//! so their WHERE clause is assembled at run time. Only column names written in this
//! crate and `$N` placeholders go into the SQL text; every value is bound.
//!
//! Kept whole because it is the one builder of filtered, paged SQL for both backends; a tenth is
//! its tests.

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, FromRow};

use super::{Exec, Result};

/// A row type both backends decode: the result of every generic query here.
pub(crate) trait Row:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

impl<T> Row for T where T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{}

/// A value bound to a `$N` placeholder.
#[derive(Clone, Debug)]
pub(crate) enum Arg {
    Int(i64),
    Text(String),
    Bool(bool),
    /// An integer column's value or NULL.
    OptInt(Option<i64>),
    /// A text column's value or NULL.
    OptText(Option<String>),
    /// A boolean column's value or NULL.
    OptBool(Option<bool>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_string())
    }
}

impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}

impl From<uuid::Uuid> for Arg {
    /// The hyphenated lower-case text every `uuid` column holds.
    fn from(v: uuid::Uuid) -> Self {
        Arg::Text(v.to_string())
    }
}

impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::OptInt(v)
    }
}

impl From<Option<bool>> for Arg {
    fn from(v: Option<bool>) -> Self {
        Arg::OptBool(v)
    }
}

impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::OptText(v.map(str::to_string))
    }
}

/// Binds every [`Arg`] of `$args` to the query `$q`, in order.
macro_rules! bind_args {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for arg in $args {
            q = match arg {
                $crate::store::query::Arg::Int(v) => q.bind(*v),
                $crate::store::query::Arg::Text(v) => q.bind(v.clone()),
                $crate::store::query::Arg::Bool(v) => q.bind(*v),
                $crate::store::query::Arg::OptInt(v) => q.bind(*v),
                $crate::store::query::Arg::OptText(v) => q.bind(v.clone()),
                $crate::store::query::Arg::OptBool(v) => q.bind(*v),
            };
        }
        q
    }};
}
pub(crate) use bind_args;

/// Which owners' rows a list shows: the list's `account`, `domainid` and
/// `isrecursive` parameters and the caller's rights, resolved to ids and a
/// domain path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Only this account's objects.
    pub account_id: Option<i64>,
    /// Only objects in the subtree at this domain path.
    pub domain_path_prefix: Option<String>,
    /// Only objects of exactly this domain.
    pub domain_id: Option<i64>,
}

impl Scope {
    /// One account's objects.
    pub fn account(account_id: i64) -> Scope {
        Scope {
            account_id: Some(account_id),
            ..Scope::default()
        }
    }

    /// Whether the list shows an object of account `account_id` in domain
    /// `domain_id` at `domain_path` (for lists filtered in memory).
    pub fn shows(&self, account_id: i64, domain_id: i64, domain_path: &str) -> bool {
        self.account_id.is_none_or(|a| a == account_id)
            && self.domain_id.is_none_or(|d| d == domain_id)
            && self
                .domain_path_prefix
                .as_deref()
                .is_none_or(|p| domain_path.starts_with(p))
    }
}

/// A WHERE clause under construction: clauses joined with AND, values numbered in order.
#[derive(Debug, Default)]
pub(crate) struct Where {
    clauses: Vec<String>,
    args: Vec<Arg>,
}

impl Where {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Registers a value and returns its placeholder (`$3`).
    pub(crate) fn arg(&mut self, value: impl Into<Arg>) -> String {
        self.args.push(value.into());
        format!("${}", self.args.len())
    }

    /// Adds a clause written by the caller (column names and placeholders only).
    pub(crate) fn push(&mut self, clause: impl Into<String>) -> &mut Self {
        self.clauses.push(clause.into());
        self
    }

    /// `column = value`.
    pub(crate) fn eq(&mut self, column: &str, value: impl Into<Arg>) -> &mut Self {
        let p = self.arg(value);
        self.push(format!("{column} = {p}"))
    }

    /// `column = value` when a value is given.
    pub(crate) fn eq_opt<V: Into<Arg>>(&mut self, column: &str, value: Option<V>) -> &mut Self {
        if let Some(v) = value {
            self.eq(column, v);
        }
        self
    }

    /// `column IN (values…)`; an empty list matches nothing.
    pub(crate) fn any_of<V: Into<Arg> + Clone>(&mut self, column: &str, values: &[V]) -> &mut Self {
        if values.is_empty() {
            return self.push("1 = 0");
        }
        let placeholders: Vec<String> = values.iter().map(|v| self.arg(v.clone())).collect();
        self.push(format!("{column} IN ({})", placeholders.join(", ")))
    }

    /// `column IN (values…)` when a list is given (an empty one matches
    /// nothing).
    pub(crate) fn any_of_opt<V: Into<Arg> + Clone>(
        &mut self,
        column: &str,
        values: Option<&[V]>,
    ) -> &mut Self {
        match values {
            Some(values) => self.any_of(column, values),
            None => self,
        }
    }

    /// Case-insensitive substring match on any of `columns` (CloudStack's `keyword`).
    pub(crate) fn keyword(&mut self, columns: &[&str], keyword: Option<&str>) -> &mut Self {
        let Some(keyword) = keyword.filter(|k| !k.is_empty()) else {
            return self;
        };
        let p = self.arg(format!("%{}%", escape_like(&keyword.to_lowercase())));
        let any: Vec<String> = columns
            .iter()
            .map(|c| format!("LOWER({c}) LIKE {p} ESCAPE '\\'"))
            .collect();
        self.push(format!("({})", any.join(" OR ")))
    }

    /// `column` starts with `prefix` (exactly; no pattern characters).
    pub(crate) fn starts_with(&mut self, column: &str, prefix: &str) -> &mut Self {
        let p = self.arg(prefix);
        self.push(format!("SUBSTR({column}, 1, LENGTH({p})) = {p}"))
    }

    /// `column` starts with `prefix` when one is given.
    pub(crate) fn starts_with_opt(&mut self, column: &str, prefix: Option<&str>) -> &mut Self {
        match prefix {
            Some(prefix) => self.starts_with(column, prefix),
            None => self,
        }
    }

    /// The rows `scope` shows: `{alias}account_id` and `{alias}domain_id`
    /// equal to its ids when set, the owner's domain path (`d.path`, the
    /// domain joined as `d`) under its prefix.
    pub(crate) fn scoped(&mut self, alias: &str, scope: &Scope) -> &mut Self {
        self.eq_opt(&format!("{alias}account_id"), scope.account_id)
            .eq_opt(&format!("{alias}domain_id"), scope.domain_id)
            .starts_with_opt("d.path", scope.domain_path_prefix.as_deref())
    }

    /// ` WHERE …` or nothing.
    pub(crate) fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    pub(crate) fn args(&self) -> &[Arg] {
        &self.args
    }
}

fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// Which slice of a list to return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// Rows to skip.
    pub offset: i64,
    /// Rows to return at most; `None` for all.
    pub limit: Option<i64>,
}

impl Page {
    /// Every row.
    pub const ALL: Page = Page {
        offset: 0,
        limit: None,
    };

    /// CloudStack's `page` (1-based) and `pagesize`.
    pub fn new(page: i64, page_size: i64) -> Page {
        Page {
            offset: (page.max(1) - 1).saturating_mul(page_size.max(0)),
            limit: Some(page_size.max(0)),
        }
    }

    /// The first `limit` rows.
    pub fn first(limit: i64) -> Page {
        Page {
            offset: 0,
            limit: Some(limit.max(0)),
        }
    }

    /// The number of matching rows when this page's `returned` rows tell it
    /// without a COUNT(*): every row when there is no limit, and the rows
    /// up to here when the page came back short but not empty (or is the
    /// first page). None when rows may follow or the page lies past the end.
    fn total_of(&self, returned: usize) -> Option<i64> {
        let returned = i64::try_from(returned).ok()?;
        let short = self.limit.is_none_or(|limit| returned < limit);
        (short && (returned > 0 || self.offset <= 0))
            .then(|| self.offset.max(0).saturating_add(returned))
    }

    fn sql(&self) -> String {
        // Integers we computed, not user text: safe to inline. i64::MAX stands for "no
        // limit" because SQLite and PostgreSQL disagree on LIMIT NULL / LIMIT -1.
        format!(
            " LIMIT {} OFFSET {}",
            self.limit.unwrap_or(i64::MAX),
            self.offset.max(0)
        )
    }
}

impl Default for Page {
    fn default() -> Self {
        Page::ALL
    }
}

/// One page of a list and the number of rows matching the filters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed<T> {
    /// All matching rows (CloudStack's `count`), whatever the page.
    pub total: i64,
    /// The rows of the requested page.
    pub items: Vec<T>,
}

impl<T> Listed<T> {
    /// Converts every item, keeping the total.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Listed<U> {
        Listed {
            total: self.total,
            items: self.items.into_iter().map(f).collect(),
        }
    }
}

/// Runs `SELECT {columns} FROM {from}{where} ORDER BY {order}` for one page, plus the
/// matching COUNT(*) when the page alone does not tell it.
pub(crate) async fn list<T>(
    ex: &mut Exec<'_>,
    columns: &str,
    from: &str,
    filter: &Where,
    order: &str,
    page: Page,
) -> Result<Listed<T>>
where
    T: Row,
{
    let where_sql = filter.sql();
    let select = format!(
        "SELECT {columns} FROM {from}{where_sql} ORDER BY {order}{}",
        page.sql()
    );
    let items: Vec<T> = on_db!(ex, c => {
        bind_args!(sqlx::query_as(AssertSqlSafe(select)), filter.args())
            .fetch_all(c)
            .await?
    });
    if let Some(total) = page.total_of(items.len()) {
        return Ok(Listed { total, items });
    }
    let count_sql = format!("SELECT COUNT(*) FROM {from}{where_sql}");
    let total: i64 = on_db!(ex, c => {
        bind_args!(sqlx::query_scalar(AssertSqlSafe(count_sql)), filter.args())
            .fetch_one(c)
            .await?
    });
    Ok(Listed { total, items })
}

/// Runs a SELECT assembled at run time and returns every row.
pub(crate) async fn fetch_all<T>(ex: &mut Exec<'_>, sql: String, args: &[Arg]) -> Result<Vec<T>>
where
    T: Row,
{
    Ok(on_db!(ex, c => {
        bind_args!(sqlx::query_as(AssertSqlSafe(sql)), args).fetch_all(c).await?
    }))
}

/// Ids per statement in [`fetch_by_ids`]: far below the bound parameters
/// either backend takes (SQLite 32,766, PostgreSQL 65,535), and more than a
/// page of any list holds, so a page costs one statement per table.
const IDS_PER_STATEMENT: usize = 1000;

/// Every row of `SELECT columns FROM from WHERE [clause AND] column IN
/// (ids…)`, the ids deduplicated, ordered by `order`: the rows a page of a
/// list refers to (its zones, owners, offerings …) in one statement per
/// table instead of one per row. `clause` is a fixed condition every row
/// must meet (`removed IS NULL` for the live rows of a parent). Rows of one
/// id are always in the same statement, so they keep `order` among
/// themselves whatever the number of ids.
pub(crate) async fn fetch_by_ids<T>(
    ex: &mut Exec<'_>,
    columns: &str,
    from: &str,
    clause: Option<&str>,
    column: &str,
    ids: &[i64],
    order: &str,
) -> Result<Vec<T>>
where
    T: Row,
{
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let mut rows = Vec::new();
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        let mut w = Where::new();
        if let Some(clause) = clause {
            w.push(clause);
        }
        w.any_of(column, chunk);
        let sql = format!("SELECT {columns} FROM {from}{} ORDER BY {order}", w.sql());
        rows.extend(fetch_all::<T>(ex, sql, w.args()).await?);
    }
    Ok(rows)
}

/// The first row of `SELECT columns FROM from{w}`: a lookup by a key the
/// WHERE clause makes unique (one column or several).
pub(crate) async fn fetch_first<T>(
    ex: &mut Exec<'_>,
    columns: &str,
    from: &str,
    w: &Where,
) -> Result<Option<T>>
where
    T: Row,
{
    let sql = format!("SELECT {columns} FROM {from}{}", w.sql());
    Ok(fetch_all(ex, sql, w.args()).await?.into_iter().next())
}

/// Runs an UPDATE, DELETE or INSERT assembled at run time; how many rows it
/// changed.
pub(crate) async fn execute(ex: &mut Exec<'_>, sql: String, args: &[Arg]) -> Result<u64> {
    Ok(on_db!(ex, c => {
        bind_args!(sqlx::query(AssertSqlSafe(sql)), args)
            .execute(c)
            .await?
            .rows_affected()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_numbers_placeholders_in_order() {
        let mut w = Where::new();
        w.push("removed IS NULL")
            .eq("account_id", 7)
            .any_of("uuid", &["a", "b"])
            .keyword(&["name"], Some("50%_off"));
        assert_eq!(
            w.sql(),
            " WHERE removed IS NULL AND account_id = $1 AND uuid IN ($2, $3) \
             AND (LOWER(name) LIKE $4 ESCAPE '\\')"
        );
        assert!(matches!(&w.args()[3], Arg::Text(t) if t == "%50\\%\\_off%"));
    }

    #[test]
    fn empty_id_list_matches_nothing() {
        let mut w = Where::new();
        w.any_of::<&str>("uuid", &[]);
        assert_eq!(w.sql(), " WHERE 1 = 0");
    }

    #[test]
    fn a_short_or_unlimited_page_tells_the_total_without_a_count() {
        assert_eq!(Page::ALL.total_of(0), Some(0));
        assert_eq!(Page::ALL.total_of(700), Some(700));
        assert_eq!(Page::new(1, 20).total_of(7), Some(7));
        assert_eq!(Page::new(3, 20).total_of(7), Some(47));
        assert_eq!(Page::new(1, 20).total_of(0), Some(0));
        // A full page may have rows after it; an empty page past the end
        // says nothing about how many rows lie before it.
        assert_eq!(Page::new(1, 20).total_of(20), None);
        assert_eq!(Page::new(3, 20).total_of(0), None);
    }

    #[test]
    fn pages_are_one_based() {
        assert_eq!(
            Page::new(3, 20),
            Page {
                offset: 40,
                limit: Some(20)
            }
        );
        assert_eq!(Page::ALL.sql(), format!(" LIMIT {} OFFSET 0", i64::MAX));
    }
}
