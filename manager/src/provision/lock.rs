//! Per-VPC locks that hold across a cluster of managers.
//!
//! Changes to one VPC must reach its router one at a time and in order, and
//! the checks a command makes before its change (overlapping rules, free
//! ports, numbers in an ACL list) must see every earlier change. Inside one
//! manager a mutex per VPC orders its own tasks. On PostgreSQL, where several
//! managers share the database, the holder also takes a session-level
//! advisory lock keyed by the VPC, on a connection of a small pool kept for
//! locks only:
//! - a manager that dies (or loses its database connection) loses its locks
//!   with its session, so nothing waits for a dead holder;
//! - lock connections never come from the pool queries use, so holders of
//!   many VPCs cannot starve the queries they are about to run; a semaphore
//!   makes the tasks wanting a lock connection queue rather than time out;
//! - the advisory lock is taken after the local mutex, so tasks of one
//!   manager wait on their mutex and each manager holds at most one
//!   database session per locked VPC.
//!
//! On SQLite there is one manager per database; the mutex is the lock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Row};
use tokio::sync::{OnceCell, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

use crate::error::Error;
use crate::store::{Db, StoreError};

/// How many VPCs one manager may hold locked in the database at once (the
/// size of the lock pool); more wait for a free lock connection.
pub const LOCK_CONNECTIONS: usize = 16;

/// The first key of the two-key advisory locks this module takes for VPCs:
/// it keeps VPC locks apart from any other advisory lock (ASCII "VPC1").
pub const VPC_LOCK_CLASS: i32 = 0x5650_4331;
/// The first key of the locks of physical networks ("PHN1"): checks that
/// span the VPCs of a zone (a private gateway's VLAN and address) run under
/// it.
pub const PHYSICAL_NETWORK_LOCK_CLASS: i32 = 0x5048_4e31;

/// Above this many idle entries the local mutex table drops the idle ones.
const LOCAL_TABLE_TRIM: usize = 1024;

/// A lock's class and row id.
type LockKey = (i32, i64);

/// The locks of one manager.
#[derive(Default)]
pub struct VpcLocks {
    local: Mutex<HashMap<LockKey, Arc<tokio::sync::Mutex<()>>>>,
    cluster: OnceCell<ClusterLocks>,
}

/// The database side: the pool of lock sessions and the queue before it.
struct ClusterLocks {
    pool: PgPool,
    permits: Arc<Semaphore>,
}

/// A VPC's lock, held until dropped.
pub struct HeldLock {
    class: i32,
    key: i32,
    cluster: Option<(PoolConnection<Postgres>, OwnedSemaphorePermit)>,
    // Freed as the database lock's release starts: a task of this manager
    // that takes the mutex next waits in the database until it is done.
    _local: OwnedMutexGuard<()>,
}

impl VpcLocks {
    /// Waits for the VPC's lock and takes it. Fails only when the database
    /// cannot be reached to take its part of the lock.
    pub async fn hold(&self, db: &Db, vpc_id: i64) -> Result<HeldLock, Error> {
        self.hold_key(db, VPC_LOCK_CLASS, vpc_id).await
    }

    /// The same for another kind of row (`class`, e.g.
    /// [`PHYSICAL_NETWORK_LOCK_CLASS`]) and its id.
    pub async fn hold_key(&self, db: &Db, class: i32, id: i64) -> Result<HeldLock, Error> {
        let key = lock_key(id)?;
        let local = self.local_mutex(class, id).lock_owned().await;
        let cluster = match db {
            Db::Sqlite(_) => None,
            Db::Postgres(pool) => Some(self.take_in_database(pool, class, key).await?),
        };
        Ok(HeldLock {
            class,
            key,
            cluster,
            _local: local,
        })
    }

    fn local_mutex(&self, class: i32, id: i64) -> Arc<tokio::sync::Mutex<()>> {
        let mut table = self.local.lock().unwrap_or_else(|e| e.into_inner());
        if table.len() > LOCAL_TABLE_TRIM {
            table.retain(|_, m| Arc::strong_count(m) > 1);
        }
        table.entry((class, id)).or_default().clone()
    }

    async fn take_in_database(
        &self,
        pool: &PgPool,
        class: i32,
        key: i32,
    ) -> Result<(PoolConnection<Postgres>, OwnedSemaphorePermit), Error> {
        let cluster = self
            .cluster
            .get_or_init(|| async { ClusterLocks::new(pool) })
            .await;
        let permit = Arc::clone(&cluster.permits)
            .acquire_owned()
            .await
            .map_err(|_| Error::internal("the VPC lock queue is closed"))?;
        let mut waiting = Waiting(Some(cluster.pool.acquire().await.map_err(database)?));
        if let Some(conn) = waiting.0.as_mut() {
            sqlx::query("SELECT pg_advisory_lock($1, $2)")
                .bind(class)
                .bind(key)
                .execute(&mut **conn)
                .await
                .map_err(database)?;
        }
        let conn = waiting
            .0
            .take()
            .ok_or_else(|| Error::internal("lost a lock session"))?;
        Ok((conn, permit))
    }
}

/// A lock session while it waits for its lock. If the wait ends before the
/// lock is granted (the request was cancelled, the query failed), the
/// session is closed rather than handed back to the pool: a lock granted
/// to it later then dies with it instead of staying held by an idle
/// pooled connection.
struct Waiting(Option<PoolConnection<Postgres>>);

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            drop(conn.detach());
        }
    }
}

impl ClusterLocks {
    /// A pool on the same server and database as `pool`, for lock sessions.
    /// Connections open on demand (`connect_lazy_with`), so a manager that
    /// never locks opens none.
    fn new(pool: &PgPool) -> ClusterLocks {
        let options = (*pool.connect_options()).clone();
        let lock_pool = PgPoolOptions::new()
            .max_connections(u32::try_from(LOCK_CONNECTIONS).unwrap_or(u32::MAX))
            .min_connections(0)
            .acquire_timeout(pool.options().get_acquire_timeout())
            .connect_lazy_with(options);
        ClusterLocks {
            pool: lock_pool,
            permits: Arc::new(Semaphore::new(LOCK_CONNECTIONS)),
        }
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        let Some((mut conn, permit)) = self.cluster.take() else {
            return;
        };
        let (class, key) = (self.class, self.key);
        let unlock = async move {
            let released = sqlx::query("SELECT pg_advisory_unlock($1, $2)")
                .bind(class)
                .bind(key)
                .fetch_one(&mut *conn)
                .await
                .and_then(|row| row.try_get::<bool, _>(0));
            if !matches!(released, Ok(true)) {
                // Ending the session releases every lock it holds.
                tracing::warn!(
                    key,
                    result = ?released,
                    "releasing a VPC's database lock failed; closing its session"
                );
                let _ = conn.close().await;
            }
            drop(permit);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(unlock);
            }
            // No runtime left (the process is ending): the connection closes
            // with it, and the server releases the lock with the session.
            Err(_) => drop(unlock),
        }
    }
}

/// The advisory key of a row: its id, which must fit the second key.
fn lock_key(id: i64) -> Result<i32, Error> {
    i32::try_from(id)
        .map_err(|_| Error::internal(format!("row id {id} is out of range for a lock")))
}

fn database(err: sqlx::Error) -> Error {
    Error::from(StoreError::from(err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_the_vpc_row_id() {
        assert_eq!(lock_key(42).ok(), Some(42));
        assert!(lock_key(i64::from(i32::MAX) + 1).is_err());
    }

    #[tokio::test]
    async fn the_local_table_forgets_idle_vpcs_past_its_bound() {
        let locks = VpcLocks::default();
        let kept = locks.local_mutex(VPC_LOCK_CLASS, 0).lock_owned().await;
        for id in 1..=(LOCAL_TABLE_TRIM as i64) {
            drop(locks.local_mutex(VPC_LOCK_CLASS, id));
        }
        // The next look-up trims: only the held one and the new one remain.
        drop(locks.local_mutex(PHYSICAL_NETWORK_LOCK_CLASS, 0));
        let len = locks.local.lock().map(|t| t.len()).unwrap_or_default();
        assert_eq!(len, 2);
        drop(kept);
    }
}
