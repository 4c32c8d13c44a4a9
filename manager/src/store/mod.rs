//! The SQL store: one schema, two backends.
//!
//! SQLite (a file in WAL mode) is the embedded default; PostgreSQL lets several managers
//! share one database. Each backend has its own migrations folder
//! (`migrations/sqlite`, `migrations/postgres`, embedded by `migrations.rs`), but every
//! query is written once, in the SQL both understand (`$1` placeholders, `RETURNING`,
//! `ON CONFLICT`), and expanded for both pools by the crate-internal `on_db!` macro.
//!
//! Conventions the API layer relies on:
//! - internal keys are `i64` ids; every API-visible row also has a `uuid`, a
//!   `uuid::Uuid` stored as hyphenated lower-case text (addresses and CIDRs are
//!   `Ipv4Addr`/`Ipv4Net`, states `text_enum!`s: see `text.rs`);
//! - times are epoch milliseconds (`i64`, see [`now_ms`]);
//! - removed rows keep a `removed` time; `get_by_uuid` still finds them, lists skip them;
//! - functions take anything that converts into an [`Exec`]: `&db` (auto-commit) or
//!   `&mut tx` (inside a transaction from [`Db::begin`] or [`Db::transaction`]).
//!
//! Kept whole because it holds the pool, transaction and error types and the `on_db!` macro that
//! every repository uses.

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Sqlite, Transaction};

/// Expands one query body for whichever backend `$ex` (a `&mut Exec`) runs on; inside
/// the body `$c` is a `&mut SqliteConnection` or a `&mut PgConnection`. Use one query
/// per expansion: `$c` is moved into the first executor call.
macro_rules! on_db {
    ($ex:expr, $c:ident => $body:expr) => {{
        let ex: &mut $crate::store::Exec<'_> = $ex;
        match ex {
            $crate::store::Exec::Db($crate::store::Db::Sqlite(pool)) => {
                let mut conn = pool.acquire().await?;
                let $c = &mut *conn;
                $body
            }
            $crate::store::Exec::Db($crate::store::Db::Postgres(pool)) => {
                let mut conn = pool.acquire().await?;
                let $c = &mut *conn;
                $body
            }
            $crate::store::Exec::Tx($crate::store::Tx::Sqlite(tx)) => {
                let $c = &mut **tx;
                $body
            }
            $crate::store::Exec::Tx($crate::store::Tx::Postgres(tx)) => {
                let $c = &mut **tx;
                $body
            }
        }
    }};
}

mod migrations;
mod query;
mod table;

pub mod account;
pub mod acl;
pub mod batch;
pub mod bootstrap;
pub mod catalog;
pub mod cluster;
pub mod config;
pub mod domain;
pub mod event;
pub mod gateway;
pub mod host;
pub mod job;
pub mod lb_sticky;
pub mod limit;
pub mod network;
pub mod offering;
pub mod pod;
pub mod router;
pub mod rule;
pub mod secret;
pub mod session;
pub mod sshkey;
pub mod tag;
pub mod text;
pub mod user;
pub mod userdata;
pub mod vlan;
pub mod vm;
pub mod vmdata;
pub mod vnet;
pub mod vpc;
pub mod vpn;
pub mod zone;

pub use query::{Listed, Page, Scope};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL names no backend this store supports.
    #[error("unsupported database URL {0:?}: use sqlite://PATH, a file path, or postgres://...")]
    UnsupportedUrl(String),
    /// A query or connection failed.
    #[error("database error: {0}")]
    Sqlx(#[source] sqlx::Error),
    /// Applying the schema migrations failed.
    #[error("schema migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A unique constraint refused the write (what the database said).
    #[error("duplicate entry: {0}")]
    Duplicate(String),
    /// An exclusion constraint refused the write (PostgreSQL's 23P01): the
    /// row overlaps a live one; the constraint's name (migration 0013 names
    /// what overlaps what).
    #[error("overlapping entry (constraint {0})")]
    Overlap(String),
    /// A row the operation depends on does not exist.
    #[error("{what} {key} does not exist")]
    NotFound {
        /// The kind of row ("domain", "account" ...).
        what: &'static str,
        /// How it was looked up.
        key: String,
    },
    /// The request contradicts the stored state (e.g. deleting a range with used IPs).
    #[error("{0}")]
    Conflict(String),
}

/// PostgreSQL's SQLSTATE for a write an exclusion constraint refused.
const EXCLUSION_VIOLATION: &str = "23P01";

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err
            && db.is_unique_violation()
        {
            return StoreError::Duplicate(db.message().to_string());
        }
        if let sqlx::Error::Database(db) = &err
            && db.code().as_deref() == Some(EXCLUSION_VIOLATION)
        {
            return StoreError::Overlap(db.constraint().unwrap_or_default().to_string());
        }
        StoreError::Sqlx(err)
    }
}

/// Result of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Turns a lookup's `None` into [`StoreError::NotFound`]: the row a statement
/// just wrote and reads back, or one an operation depends on, must exist.
pub(crate) trait OrNotFound<T> {
    /// The row, or `NotFound` naming its kind and how it was looked up.
    fn or_not_found(self, what: &'static str, key: impl ToString) -> Result<T>;
}

impl<T> OrNotFound<T> for Option<T> {
    fn or_not_found(self, what: &'static str, key: impl ToString) -> Result<T> {
        self.ok_or_else(|| StoreError::NotFound {
            what,
            key: key.to_string(),
        })
    }
}

/// Which SQL backend a [`Db`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

/// A connection pool to the manager's database.
#[derive(Clone, Debug)]
pub enum Db {
    /// The embedded default: one SQLite file in WAL mode.
    Sqlite(SqlitePool),
    /// A database shared by several managers.
    Postgres(PgPool),
}

/// An open transaction; dropped without [`Tx::commit`] it rolls back.
#[derive(Debug)]
pub enum Tx {
    /// On SQLite (opened with `BEGIN IMMEDIATE`).
    Sqlite(Transaction<'static, Sqlite>),
    /// On PostgreSQL (READ COMMITTED).
    Postgres(Transaction<'static, Postgres>),
}

/// Where a store function runs its statements: the pool, or an open transaction.
#[derive(Debug)]
pub enum Exec<'a> {
    /// Each statement on its own (auto-commit).
    Db(&'a Db),
    /// Inside a transaction.
    Tx(&'a mut Tx),
}

impl<'a> From<&'a Db> for Exec<'a> {
    fn from(db: &'a Db) -> Self {
        Exec::Db(db)
    }
}

impl<'a> From<&'a mut Tx> for Exec<'a> {
    fn from(tx: &'a mut Tx) -> Self {
        Exec::Tx(tx)
    }
}

impl Exec<'_> {
    /// A shorter-lived handle to the same pool or transaction, to pass to another
    /// store function.
    pub fn reborrow(&mut self) -> Exec<'_> {
        match self {
            Exec::Db(db) => Exec::Db(db),
            Exec::Tx(tx) => Exec::Tx(tx),
        }
    }

    /// The backend the statements run on.
    pub fn backend(&self) -> Backend {
        match self {
            Exec::Db(db) => db.backend(),
            Exec::Tx(Tx::Sqlite(_)) => Backend::Sqlite,
            Exec::Tx(Tx::Postgres(_)) => Backend::Postgres,
        }
    }
}

/// A boxed future borrowing a transaction, as [`Db::transaction`] takes it.
pub type TxFuture<'t, T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 't>>;

// SQLite allows one writer at a time; a writer waits this long for the lock before
// failing with "database is locked".
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(15);
const SQLITE_MAX_CONNECTIONS: u32 = 8;
/// How long a query waits for a pooled connection unless the settings say
/// otherwise (`database_acquire_timeout_ms`).
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
const POSTGRES_MAX_CONNECTIONS: u32 = 16;

impl Db {
    /// Connects, applies the backend's migrations, and seeds the built-in rows
    /// ([`bootstrap::seed`]). `url` is `sqlite://PATH[?mode=rwc]`, `sqlite:PATH`, a plain
    /// file path (SQLite, created if missing), or `postgres://...` / `postgresql://...`.
    pub async fn connect(url: &str) -> Result<Db> {
        Db::connect_with(url, DEFAULT_ACQUIRE_TIMEOUT).await
    }

    /// [`Db::connect`] with the longest wait for a pooled connection: when the
    /// database is down every query fails after `acquire_timeout` instead of
    /// hanging (sqlx's default is 30 s); the pool reconnects by itself once
    /// the database is back.
    pub async fn connect_with(url: &str, acquire_timeout: Duration) -> Result<Db> {
        let db = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(POSTGRES_MAX_CONNECTIONS)
                .acquire_timeout(acquire_timeout)
                .connect(url)
                .await?;
            migrations::postgres().run(&pool).await?;
            Db::Postgres(pool)
        } else {
            let options = if url.starts_with("sqlite:") {
                SqliteConnectOptions::from_str(url)?
            } else if url.contains("://") {
                return Err(StoreError::UnsupportedUrl(url.to_string()));
            } else {
                SqliteConnectOptions::new().filename(url)
            };
            let options = options
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // NORMAL is durable across application crashes in WAL mode; only an OS
                // crash can lose the last transactions.
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(SQLITE_BUSY_TIMEOUT);
            let pool = SqlitePoolOptions::new()
                .max_connections(SQLITE_MAX_CONNECTIONS)
                .acquire_timeout(acquire_timeout)
                .connect_with(options)
                .await?;
            migrations::sqlite().run(&pool).await?;
            Db::Sqlite(pool)
        };
        bootstrap::seed(&db).await?;
        Ok(db)
    }

    /// The backend of this pool.
    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Checks that the database answers (for `/healthz`).
    pub async fn ping(&self) -> Result<()> {
        match self {
            Db::Sqlite(pool) => sqlx::query("SELECT 1").execute(pool).await.map(|_| ())?,
            Db::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await.map(|_| ())?,
        }
        Ok(())
    }

    /// Whether the database answers within `budget`, and why not (for
    /// `/healthz`, which must answer even when the database does not). A
    /// pool that cannot connect keeps retrying until its acquire timeout and
    /// then only says it timed out; one direct connection attempt in the
    /// remaining time gives the reason (refused, unknown host …).
    pub async fn health(&self, budget: Duration) -> std::result::Result<(), String> {
        use sqlx::{ConnectOptions, Connection};
        let half = budget / 2;
        match tokio::time::timeout(half, self.ping()).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => {}
        }
        let direct = async {
            match self {
                Db::Postgres(pool) => pool.connect_options().connect().await?.close().await,
                Db::Sqlite(pool) => pool.connect_options().connect().await?.close().await,
            }
        };
        match tokio::time::timeout(half, direct).await {
            Ok(Err(e)) => Err(format!("unreachable: {e}")),
            Ok(Ok(())) => Err(format!("no pooled connection free within {half:?}")),
            Err(_) => Err(format!("no answer within {budget:?}")),
        }
    }

    /// Opens a transaction. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`): a deferred transaction that reads and then writes can fail with
    /// SQLITE_BUSY when another connection wrote in between, whatever the busy timeout.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match self {
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Runs `f` in a transaction: commits when it returns `Ok`, rolls back on `Err`.
    ///
    /// ```ignore
    /// db.transaction(|tx| Box::pin(async move {
    ///     let account = account::create(&mut *tx, new).await?;
    ///     user::create(&mut *tx, user_for(&account)).await
    /// })).await?
    /// ```
    pub async fn transaction<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: for<'t> FnOnce(&'t mut Tx) -> TxFuture<'t, T, E>,
        E: From<StoreError>,
    {
        let mut tx = self.begin().await?;
        match f(&mut tx).await {
            Ok(value) => {
                tx.commit().await?;
                Ok(value)
            }
            Err(err) => {
                // The caller's error matters more than a failed rollback (and the
                // connection rolls back when it is dropped anyway).
                let _ = tx.rollback().await;
                Err(err)
            }
        }
    }

    /// Closes every connection of the pool.
    pub async fn close(&self) {
        match self {
            Db::Sqlite(pool) => pool.close().await,
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

impl Tx {
    /// Makes the transaction's writes permanent.
    pub async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }

    /// Discards the transaction's writes.
    pub async fn rollback(self) -> Result<()> {
        match self {
            Tx::Sqlite(tx) => tx.rollback().await?,
            Tx::Postgres(tx) => tx.rollback().await?,
        }
        Ok(())
    }
}

/// Runs `f` atomically: in a new transaction when `ex` is the pool, or inside the
/// caller's transaction (which then decides whether it commits).
pub(crate) async fn atomically<T, F>(ex: Exec<'_>, f: F) -> Result<T>
where
    F: for<'t> FnOnce(&'t mut Tx) -> TxFuture<'t, T, StoreError>,
{
    match ex {
        Exec::Db(db) => db.transaction(f).await,
        Exec::Tx(tx) => f(tx).await,
    }
}

/// The current time as stored: milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A fresh random (v4) UUID in its lower-case text form.
pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}
