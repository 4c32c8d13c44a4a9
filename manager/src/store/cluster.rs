//! The managers of one database (CloudStack table `mshost`).
//!
//! A manager [`join`]s under its name when it starts, renews its heartbeat
//! ([`heartbeat`]) while it runs and [`leave`]s when it stops. Whether a
//! manager is Up is decided by its heartbeat's age against a threshold the
//! reader gives ([`Member::state_at`]): a manager killed without leaving
//! turns Down by itself, with nobody writing anything.

use sqlx::FromRow;

use super::{Exec, Result, new_uuid, now_ms};

/// An `mshost` row.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct Member {
    /// Internal key.
    pub id: i64,
    /// API id.
    #[sqlx(try_from = "super::text::Stored")]
    pub uuid: uuid::Uuid,
    /// The manager's name: the owner name of the jobs it claims.
    pub name: String,
    /// Where its API listens (`host:port`).
    pub address: String,
    /// Its version.
    pub version: String,
    /// The OS it runs on (`PRETTY_NAME` of os-release).
    pub os_distribution: String,
    /// The kernel it runs on.
    pub kernel_version: String,
    /// When its host last booted (epoch ms).
    pub last_boot: Option<i64>,
    /// When this run started (epoch ms).
    pub started: i64,
    /// When it last left (epoch ms); None while it runs.
    pub stopped: Option<i64>,
    /// Its last heartbeat (epoch ms).
    pub last_heartbeat: i64,
    /// When it began to leave (epoch ms): it still finishes its running
    /// jobs, but does no share of the background work. None while it runs.
    pub leaving: Option<i64>,
}

/// Whether a manager takes part in the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    /// Running, with a fresh heartbeat.
    Up,
    /// Left, or silent for longer than the threshold.
    Down,
}

impl MemberState {
    /// The text `listManagementServers` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Up => "Up",
            MemberState::Down => "Down",
        }
    }
}

impl Member {
    /// Its state at `now` when a heartbeat older than `threshold_ms` means
    /// Down.
    pub fn state_at(&self, now: i64, threshold_ms: i64) -> MemberState {
        if self.stopped.is_none() && now.saturating_sub(self.last_heartbeat) <= threshold_ms {
            MemberState::Up
        } else {
            MemberState::Down
        }
    }
}

/// What a manager says of itself when it joins.
#[derive(Clone, Debug, Default)]
pub struct Joining {
    pub name: String,
    pub address: String,
    pub version: String,
    pub os_distribution: String,
    pub kernel_version: String,
    pub last_boot: Option<i64>,
}

const COLUMNS: &str = "id, uuid, name, address, version, os_distribution, kernel_version, \
                       last_boot, started, stopped, last_heartbeat, leaving";

/// Records that the manager named `who.name` runs from now: a new row the
/// first time, the same row (and id) when it starts again.
pub async fn join<'a>(ex: impl Into<Exec<'a>>, who: &Joining) -> Result<Member> {
    let now = now_ms();
    let uuid = new_uuid();
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO mshost (uuid, name, address, version, os_distribution, kernel_version, \
             last_boot, started, stopped, last_heartbeat) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $8) \
             ON CONFLICT (name) DO UPDATE SET address = excluded.address, \
             version = excluded.version, os_distribution = excluded.os_distribution, \
             kernel_version = excluded.kernel_version, last_boot = excluded.last_boot, \
             started = excluded.started, stopped = NULL, leaving = NULL, \
             last_heartbeat = excluded.last_heartbeat \
             RETURNING {COLUMNS}"
        )))
        .bind(&uuid)
        .bind(&who.name)
        .bind(&who.address)
        .bind(&who.version)
        .bind(&who.os_distribution)
        .bind(&who.kernel_version)
        .bind(who.last_boot)
        .bind(now)
        .fetch_one(c)
        .await?
    }))
}

/// Renews the heartbeat of a running member. False when its row says it
/// left (or is gone): the caller must join again before it works on.
pub async fn heartbeat<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<bool> {
    let now = now_ms();
    let mut ex = ex.into();
    let done = on_db!(&mut ex, c => {
        sqlx::query("UPDATE mshost SET last_heartbeat = $2 WHERE id = $1 AND stopped IS NULL")
            .bind(id)
            .bind(now)
            .execute(c)
            .await?
            .rows_affected()
    });
    Ok(done == 1)
}

/// Records that the running member began to leave (a graceful stop): the
/// others take its share of the background work at once. False when its
/// row says it already left.
pub async fn begin_leaving<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<bool> {
    let now = now_ms();
    let mut ex = ex.into();
    let done = on_db!(&mut ex, c => {
        sqlx::query(
            "UPDATE mshost SET leaving = $2 WHERE id = $1 AND stopped IS NULL AND leaving IS NULL",
        )
        .bind(id)
        .bind(now)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(done == 1)
}

/// Records that the member left.
pub async fn leave<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<()> {
    let now = now_ms();
    let mut ex = ex.into();
    on_db!(&mut ex, c => {
        sqlx::query("UPDATE mshost SET stopped = $2 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(c)
            .await?;
    });
    Ok(())
}

/// Every manager that ever joined, by id; `uuid`/`name` narrow it.
pub async fn list<'a>(
    ex: impl Into<Exec<'a>>,
    uuid: Option<uuid::Uuid>,
    name: Option<&str>,
) -> Result<Vec<Member>> {
    let uuid = uuid.map(|u| u.to_string());
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM mshost WHERE ($1 IS NULL OR uuid = $1) \
             AND ($2 IS NULL OR name = $2) ORDER BY id"
        )))
        .bind(uuid)
        .bind(name)
        .fetch_all(c)
        .await?
    }))
}

/// In-progress jobs whose owner is gone at `now`: a member that left or
/// has been silent for more than `threshold_ms`, or a name no member has
/// whose job has not moved for that long (a manager of a version without
/// membership). `me` is never gone. (job id, owner), oldest first.
pub async fn orphaned_jobs<'a>(
    ex: impl Into<Exec<'a>>,
    me: &str,
    now: i64,
    threshold_ms: i64,
) -> Result<Vec<(i64, String)>> {
    let since = now.saturating_sub(threshold_ms);
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_as(
            "SELECT j.id, j.owner_manager FROM async_job j \
             LEFT JOIN mshost m ON m.name = j.owner_manager \
             WHERE j.status = 0 AND j.owner_manager IS NOT NULL AND j.owner_manager <> $1 \
             AND ((m.id IS NOT NULL AND (m.stopped IS NOT NULL OR m.last_heartbeat < $2)) \
                  OR (m.id IS NULL AND j.last_updated < $2)) \
             ORDER BY j.id",
        )
        .bind(me)
        .bind(since)
        .fetch_all(c)
        .await?
    }))
}

/// Moves an in-progress job from the gone owner `from` to `me`. False when
/// it is no longer `from`'s (another member took it, or it ended).
pub async fn take_over_job<'a>(
    ex: impl Into<Exec<'a>>,
    job_id: i64,
    from: &str,
    me: &str,
) -> Result<bool> {
    let now = now_ms();
    let mut ex = ex.into();
    let moved = on_db!(&mut ex, c => {
        sqlx::query(
            "UPDATE async_job SET owner_manager = $3, last_updated = $4 \
             WHERE id = $1 AND status = 0 AND owner_manager = $2",
        )
        .bind(job_id)
        .bind(from)
        .bind(me)
        .bind(now)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(moved == 1)
}

/// The cluster's agent CA as stored: certificates in PEM, keys sealed.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct StoredCa {
    pub ca_cert: String,
    /// The CA's key, sealed with the database key.
    pub ca_key: String,
    /// The managers' client certificate.
    pub client_cert: String,
    /// Its key, sealed with the database key.
    pub client_key: String,
}

/// The cluster's CA, if one was stored.
pub async fn get_ca<'a>(ex: impl Into<Exec<'a>>) -> Result<Option<StoredCa>> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_as(
            "SELECT ca_cert, ca_key, client_cert, client_key FROM cluster_ca WHERE id = 1",
        )
        .fetch_optional(c)
        .await?
    }))
}

/// Stores `ca` as the cluster's CA unless one is stored already (another
/// manager won the race); false then.
pub async fn insert_ca<'a>(ex: impl Into<Exec<'a>>, ca: &StoredCa) -> Result<bool> {
    let now = now_ms();
    let mut ex = ex.into();
    let inserted = on_db!(&mut ex, c => {
        sqlx::query(
            "INSERT INTO cluster_ca (id, ca_cert, ca_key, client_cert, client_key, created) \
             VALUES (1, $1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&ca.ca_cert)
        .bind(&ca.ca_key)
        .bind(&ca.client_cert)
        .bind(&ca.client_key)
        .bind(now)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(inserted == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(stopped: Option<i64>, last_heartbeat: i64) -> Member {
        Member {
            id: 1,
            uuid: uuid::Uuid::nil(),
            name: "m1".into(),
            address: String::new(),
            version: String::new(),
            os_distribution: String::new(),
            kernel_version: String::new(),
            last_boot: None,
            started: 0,
            stopped,
            last_heartbeat,
            leaving: None,
        }
    }

    #[test]
    fn a_member_is_up_while_its_heartbeat_is_fresh_and_it_has_not_left() {
        let m = member(None, 10_000);
        assert_eq!(m.state_at(25_000, 15_000), MemberState::Up);
        assert_eq!(m.state_at(25_001, 15_000), MemberState::Down);
        assert_eq!(
            member(Some(10_000), 10_000).state_at(10_000, 15_000),
            MemberState::Down
        );
    }
}
