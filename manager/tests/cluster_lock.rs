//! The per-VPC lock across managers (`provision::lock`), on a real
//! PostgreSQL server: two managers (two pools, two lock tables, as two
//! processes have) never hold one VPC's lock at once; other VPCs do not
//! wait; a holder whose session dies, or a waiter that gives up, leaves no
//! lock behind.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::Row;
use vpc_manager::provision::lock::{VPC_LOCK_CLASS, VpcLocks};
use vpc_manager::store::Db;

use support::postgres::fresh_database;

/// A deadlock guard for waits that must end, not a speed assertion.
const MUST_END: Duration = Duration::from_secs(30);

/// One manager: its own pool on the shared database and its own locks.
struct Manager {
    db: Db,
    locks: VpcLocks,
}

async fn manager(url: &str) -> Arc<Manager> {
    let db = Db::connect(url).await.expect("connect a manager");
    Arc::new(Manager {
        db,
        locks: VpcLocks::default(),
    })
}

async fn database() -> String {
    fresh_database().await
}

fn pool(db: &Db) -> &sqlx::PgPool {
    match db {
        Db::Postgres(pool) => pool,
        Db::Sqlite(_) => panic!("these tests run on PostgreSQL"),
    }
}

/// The backend pids holding (granted) the advisory lock of `vpc_id` in this
/// test's database (the other tests' databases share the server).
async fn holders(db: &Db, vpc_id: i64) -> Vec<i32> {
    sqlx::query(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND classid = $1::oid AND objid = $2::oid AND objsubid = 2",
    )
    .bind(i64::from(VPC_LOCK_CLASS))
    .bind(vpc_id)
    .fetch_all(pool(db))
    .await
    .expect("read pg_locks")
    .iter()
    .map(|row| row.get::<i32, _>(0))
    .collect()
}

/// Waits until nobody holds the VPC's lock in the database (its release
/// runs on a task after the guard is dropped).
async fn until_free(db: &Db, vpc_id: i64) {
    tokio::time::timeout(MUST_END, async {
        while !holders(db, vpc_id).await.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the VPC's database lock is released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_managers_never_hold_one_vpc_at_once() {
    let url = database().await;
    let a = manager(&url).await;
    let b = manager(&url).await;
    sqlx::query("CREATE TABLE lock_probe (n BIGINT NOT NULL)")
        .execute(pool(&a.db))
        .await
        .expect("probe table");
    sqlx::query("INSERT INTO lock_probe VALUES (0)")
        .execute(pool(&a.db))
        .await
        .expect("probe row");
    let inside = Arc::new(AtomicUsize::new(0));
    let most_inside = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..16 {
        let m = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (inside, most_inside) = (inside.clone(), most_inside.clone());
        tasks.push(tokio::spawn(async move {
            let held = m.locks.hold(&m.db, 1).await.expect("lock VPC 1");
            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
            most_inside.fetch_max(now, Ordering::SeqCst);
            // A read-modify-write that loses updates unless serialized.
            let n: i64 = sqlx::query_scalar("SELECT n FROM lock_probe")
                .fetch_one(pool(&m.db))
                .await
                .expect("read probe");
            tokio::time::sleep(Duration::from_millis(10)).await;
            sqlx::query("UPDATE lock_probe SET n = $1")
                .bind(n + 1)
                .execute(pool(&m.db))
                .await
                .expect("write probe");
            inside.fetch_sub(1, Ordering::SeqCst);
            drop(held);
        }));
    }
    for t in tasks {
        tokio::time::timeout(MUST_END, t)
            .await
            .expect("every holder gets its turn")
            .expect("task");
    }
    let n: i64 = sqlx::query_scalar("SELECT n FROM lock_probe")
        .fetch_one(pool(&a.db))
        .await
        .expect("read probe");
    assert_eq!(n, 16, "an update was lost: two holders overlapped");
    assert_eq!(most_inside.load(Ordering::SeqCst), 1);
    until_free(&a.db, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_vpcs_do_not_wait() {
    let url = database().await;
    let a = manager(&url).await;
    let b = manager(&url).await;
    let one = a.locks.hold(&a.db, 1).await.expect("lock VPC 1");
    let two = tokio::time::timeout(MUST_END, b.locks.hold(&b.db, 2))
        .await
        .expect("VPC 2 is not behind VPC 1")
        .expect("lock VPC 2");
    assert_eq!(holders(&a.db, 1).await.len(), 1);
    assert_eq!(holders(&a.db, 2).await.len(), 1);
    drop((one, two));
    until_free(&a.db, 1).await;
    until_free(&a.db, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holders_lock_goes_with_its_session() {
    let url = database().await;
    let a = manager(&url).await;
    let b = manager(&url).await;
    let held = a.locks.hold(&a.db, 3).await.expect("lock VPC 3");
    let pids = holders(&a.db, 3).await;
    assert_eq!(pids.len(), 1, "one session holds the lock");
    // What a killed manager's sessions come to: the server ends them.
    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pids[0])
        .fetch_one(pool(&b.db))
        .await
        .expect("terminate the holder's session");
    assert!(ended);
    let taken = tokio::time::timeout(MUST_END, b.locks.hold(&b.db, 3))
        .await
        .expect("the lock of a dead session is free")
        .expect("lock VPC 3");
    assert_eq!(holders(&b.db, 3).await.len(), 1);
    drop(taken);
    // The first holder's release fails on its dead session; it closes it.
    drop(held);
    until_free(&b.db, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_that_gives_up_leaves_no_lock() {
    let url = database().await;
    let a = manager(&url).await;
    let b = manager(&url).await;
    let held = a.locks.hold(&a.db, 4).await.expect("lock VPC 4");
    // B waits in the database, then its request is cancelled.
    let gave_up = tokio::time::timeout(Duration::from_millis(300), b.locks.hold(&b.db, 4)).await;
    assert!(gave_up.is_err(), "B must wait while A holds the lock");
    drop(held);
    until_free(&a.db, 4).await;
    // Had B's session been pooled while waiting, it would now hold the lock
    // with nobody to release it; a third manager would wait forever.
    let c = manager(&url).await;
    let again = tokio::time::timeout(MUST_END, c.locks.hold(&c.db, 4))
        .await
        .expect("nobody kept VPC 4 locked")
        .expect("lock VPC 4");
    drop(again);
    until_free(&c.db, 4).await;
    // And B itself can lock it again.
    let b_again = tokio::time::timeout(MUST_END, b.locks.hold(&b.db, 4))
        .await
        .expect("B locks VPC 4 again")
        .expect("lock VPC 4");
    drop(b_again);
    until_free(&b.db, 4).await;
}

#[tokio::test]
async fn on_sqlite_the_lock_is_the_managers_own() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = Db::connect(&dir.path().join("m.db").display().to_string())
        .await
        .expect("SQLite");
    let locks = VpcLocks::default();
    let held = locks.hold(&db, 5).await.expect("lock VPC 5");
    let second = tokio::time::timeout(Duration::from_millis(200), locks.hold(&db, 5)).await;
    assert!(second.is_err(), "a second holder waits");
    drop(held);
    let again = tokio::time::timeout(MUST_END, locks.hold(&db, 5))
        .await
        .expect("free after the holder is gone")
        .expect("lock VPC 5");
    drop(again);
}
