//! Login sessions (`login` / `logout`, reference/cloudstack.md §1.4): a random session
//! key per login, valid until it expires or the user logs out.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sqlx::FromRow;

use super::{Exec, Result, now_ms};

/// A `sessions` row.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct Session {
    /// The key clients send back (cookie and/or `sessionkey` parameter).
    pub session_key: String,
    /// The logged-in user.
    pub user_id: i64,
    /// Login time (epoch ms).
    pub created: i64,
    /// Time after which the key is refused (epoch ms).
    pub expires: i64,
}

/// Opens a session for a user, valid for `ttl_ms` milliseconds.
pub async fn create<'a>(ex: impl Into<Exec<'a>>, user_id: i64, ttl_ms: i64) -> Result<Session> {
    // 20 random bytes, base64url, as CloudStack makes its session keys.
    let mut bytes = [0u8; 20];
    rand::fill(&mut bytes[..]);
    let now = now_ms();
    let session = Session {
        session_key: URL_SAFE_NO_PAD.encode(bytes),
        user_id,
        created: now,
        expires: now.saturating_add(ttl_ms),
    };
    let mut ex = ex.into();
    on_db!(&mut ex, c => {
        sqlx::query("INSERT INTO sessions (session_key, user_id, created, expires) VALUES ($1, $2, $3, $4)")
            .bind(&session.session_key)
            .bind(session.user_id)
            .bind(session.created)
            .bind(session.expires)
            .execute(c)
            .await?;
    });
    Ok(session)
}

/// The session for `key` if it has not expired at `now` (epoch ms).
pub async fn get_valid<'a>(
    ex: impl Into<Exec<'a>>,
    key: &str,
    now: i64,
) -> Result<Option<Session>> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_as(
            "SELECT session_key, user_id, created, expires FROM sessions \
             WHERE session_key = $1 AND expires > $2",
        )
        .bind(key)
        .bind(now)
        .fetch_optional(c)
        .await?
    }))
}

/// Moves a session's expiry (sliding timeout). False if the key is unknown.
pub async fn extend<'a>(ex: impl Into<Exec<'a>>, key: &str, expires: i64) -> Result<bool> {
    let mut ex = ex.into();
    let done = on_db!(&mut ex, c => {
        sqlx::query("UPDATE sessions SET expires = $2 WHERE session_key = $1")
            .bind(key)
            .bind(expires)
            .execute(c)
            .await?
            .rows_affected()
    });
    Ok(done == 1)
}

/// Ends a session (logout). False if the key is unknown.
pub async fn delete<'a>(ex: impl Into<Exec<'a>>, key: &str) -> Result<bool> {
    let mut ex = ex.into();
    let done = on_db!(&mut ex, c => {
        sqlx::query("DELETE FROM sessions WHERE session_key = $1")
            .bind(key)
            .execute(c)
            .await?
            .rows_affected()
    });
    Ok(done == 1)
}

/// Ends every session of a user (user disabled, removed, or password changed).
pub async fn delete_for_user<'a>(ex: impl Into<Exec<'a>>, user_id: i64) -> Result<u64> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(c)
            .await?
            .rows_affected()
    }))
}

/// Deletes the sessions that expired before `now`; returns how many.
pub async fn purge_expired<'a>(ex: impl Into<Exec<'a>>, now: i64) -> Result<u64> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query("DELETE FROM sessions WHERE expires <= $1")
            .bind(now)
            .execute(c)
            .await?
            .rows_affected()
    }))
}
