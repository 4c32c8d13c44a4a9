//! One repository's rows: the lookups and writes every table with an `id`,
//! a `uuid` and a `removed` time needs (by id, by UUID, by many ids, one page
//! of a list, a column or state change of a live row, a soft delete),
//! written once over [`query`]'s builders instead of once per repository.

use std::marker::PhantomData;

use uuid::Uuid;

use super::query::{self, Arg, Row, Where};
use super::{Exec, Listed, Page, Result, now_ms};

/// Where the rows of type `T` live: the table's own name (for UPDATE), the
/// columns a SELECT returns, the FROM they are read from (the table and its
/// joins) and the prefix the table's own columns carry in those (`n.` for
/// `networks n`, empty for a bare table).
pub(crate) struct Table<T> {
    name: &'static str,
    columns: &'static str,
    from: &'static str,
    prefix: &'static str,
    row: PhantomData<fn() -> T>,
}

// Not derived: a derive would ask `T: Copy`, and rows are not.
impl<T> Clone for Table<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Table<T> {}

impl<T: Row> Table<T> {
    /// A table read on its own: `SELECT columns FROM name`.
    pub(crate) const fn new(name: &'static str, columns: &'static str) -> Self {
        Self::joined(name, columns, name, "")
    }

    /// A table read with joins: `SELECT columns FROM from`, its own columns
    /// named `{prefix}id`, `{prefix}uuid` … (`prefix` is `n.` or empty).
    pub(crate) const fn joined(
        name: &'static str,
        columns: &'static str,
        from: &'static str,
        prefix: &'static str,
    ) -> Self {
        Table {
            name,
            columns,
            from,
            prefix,
            row: PhantomData,
        }
    }

    /// The table's own column `name` as the SELECT names it (`n.id`).
    fn column(self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The row whose own column `column` holds `value`, removed or not: the
    /// lookup by a unique key.
    pub(crate) async fn by<'a>(
        self,
        ex: impl Into<Exec<'a>>,
        column: &str,
        value: impl Into<Arg>,
    ) -> Result<Option<T>> {
        let mut w = Where::new();
        w.eq(&self.column(column), value);
        self.first(ex, &w).await
    }

    /// The row with internal id `id`, removed or not.
    pub(crate) async fn by_id<'a>(self, ex: impl Into<Exec<'a>>, id: i64) -> Result<Option<T>> {
        self.by(ex, "id", id).await
    }

    /// The row with API id `uuid`, removed or not.
    pub(crate) async fn by_uuid<'a>(
        self,
        ex: impl Into<Exec<'a>>,
        uuid: Uuid,
    ) -> Result<Option<T>> {
        self.by(ex, "uuid", uuid).await
    }

    /// The rows with these internal ids, removed or not, by id, in one
    /// statement per thousand ids (the rows a page of a list refers to).
    pub(crate) async fn by_ids<'a>(self, ex: impl Into<Exec<'a>>, ids: &[i64]) -> Result<Vec<T>> {
        let id = self.column("id");
        let (columns, from) = (self.columns, self.from);
        query::fetch_by_ids(&mut ex.into(), columns, from, None, &id, ids, &id).await
    }

    /// The rows whose own column `column` holds one of `ids` and that meet
    /// `clause` (the live rows of some parents), ordered by `order`.
    pub(crate) async fn live_by_ids<'a>(
        self,
        ex: impl Into<Exec<'a>>,
        clause: &str,
        column: &str,
        ids: &[i64],
        order: &str,
    ) -> Result<Vec<T>> {
        let column = self.column(column);
        let (columns, from, clause) = (self.columns, self.from, Some(clause));
        query::fetch_by_ids(&mut ex.into(), columns, from, clause, &column, ids, order).await
    }

    /// The first row `w` selects (a lookup by a key `w` makes unique).
    pub(crate) async fn first<'a>(self, ex: impl Into<Exec<'a>>, w: &Where) -> Result<Option<T>> {
        query::fetch_first(&mut ex.into(), self.columns, self.from, w).await
    }

    /// Every row `w` selects, ordered by `order`.
    pub(crate) async fn all<'a>(
        self,
        ex: impl Into<Exec<'a>>,
        w: &Where,
        order: &str,
    ) -> Result<Vec<T>> {
        let (columns, from, filter) = (self.columns, self.from, w.sql());
        let sql = format!("SELECT {columns} FROM {from}{filter} ORDER BY {order}");
        query::fetch_all(&mut ex.into(), sql, w.args()).await
    }

    /// The live rows whose own columns hold the values given (`[("vpc_id",
    /// …)]`), by id.
    pub(crate) async fn live<'a>(
        self,
        ex: impl Into<Exec<'a>>,
        values: &[(&str, Arg)],
    ) -> Result<Vec<T>> {
        let mut w = Where::new();
        w.push(self.column("removed IS NULL"));
        for (column, value) in values {
            w.eq(&self.column(column), value.clone());
        }
        self.all(ex, &w, &self.column("id")).await
    }

    /// One page of the rows `w` selects, ordered by `order`, with the total.
    pub(crate) async fn list<'a>(
        self,
        ex: impl Into<Exec<'a>>,
        w: &Where,
        order: &str,
        page: Page,
    ) -> Result<Listed<T>> {
        query::list(&mut ex.into(), self.columns, self.from, w, order, page).await
    }

    /// Sets the columns of the live row `id` to the values given
    /// (`[("dns1", …), ("dns2", …)]`); false when there is no such row.
    pub(crate) async fn set_live<'a>(
        self,
        ex: impl Into<Exec<'a>>,
        id: i64,
        values: &[(&str, Arg)],
    ) -> Result<bool> {
        self.write_live(ex.into(), id, values, false).await
    }

    /// Changes the columns of the live row `id` whose value is given (a NULL
    /// value keeps the column as is: `col = COALESCE($n, col)`); false when
    /// there is no such row.
    pub(crate) async fn update_live<'a>(
        self,
        ex: impl Into<Exec<'a>>,
        id: i64,
        values: &[(&str, Arg)],
    ) -> Result<bool> {
        self.write_live(ex.into(), id, values, true).await
    }

    /// `UPDATE name SET … WHERE id = $n AND removed IS NULL` with the values
    /// given, each as is or (`keep_null`) as `COALESCE(value, column)`.
    async fn write_live(
        self,
        mut ex: Exec<'_>,
        id: i64,
        values: &[(&str, Arg)],
        keep_null: bool,
    ) -> Result<bool> {
        let mut w = Where::new();
        let set: Vec<String> = values
            .iter()
            .map(|(column, value)| {
                let p = w.arg(value.clone());
                if keep_null {
                    format!("{column} = COALESCE({p}, {column})")
                } else {
                    format!("{column} = {p}")
                }
            })
            .collect();
        w.eq("id", id).push("removed IS NULL");
        let sql = format!("UPDATE {} SET {}{}", self.name, set.join(", "), w.sql());
        Ok(query::execute(&mut ex, sql, w.args()).await? == 1)
    }

    /// Sets the state of the live row `id`; false when there is none.
    pub(crate) async fn set_state<'a>(
        self,
        ex: impl Into<Exec<'a>>,
        id: i64,
        state: &str,
    ) -> Result<bool> {
        self.set_live(ex, id, &[("state", state.into())]).await
    }

    /// Marks the live row `id` removed (a table without a state); false when
    /// it already was.
    pub(crate) async fn remove<'a>(self, ex: impl Into<Exec<'a>>, id: i64) -> Result<bool> {
        self.set_live(ex, id, &[("removed", now_ms().into())]).await
    }

    /// Marks removed, at `now`, the live rows whose column `column` holds
    /// `value` (`id` for one row, `acl_id` for a list's items: a parent and
    /// its children go with one time); how many.
    pub(crate) async fn remove_where<'a>(
        self,
        ex: impl Into<Exec<'a>>,
        column: &str,
        value: impl Into<Arg>,
        now: i64,
    ) -> Result<u64> {
        let mut w = Where::new();
        let removed = w.arg(now);
        w.eq(column, value).push("removed IS NULL");
        let sql = format!("UPDATE {} SET removed = {removed}{}", self.name, w.sql());
        query::execute(&mut ex.into(), sql, w.args()).await
    }

    /// Marks the live row `id` removed, in `state`; false when it already was.
    pub(crate) async fn soft_delete<'a>(
        self,
        ex: impl Into<Exec<'a>>,
        id: i64,
        state: &str,
    ) -> Result<bool> {
        let values = [("removed", now_ms().into()), ("state", state.into())];
        self.set_live(ex, id, &values).await
    }
}
