//! Users (table `users`; CloudStack's `user`, renamed because USER is reserved in
//! PostgreSQL): the people and programs of an account, with API keys and a password.
//!
//! Kept whole because users' credentials (API keys, sealed secrets, password hashes, failed logins)
//! are stored and checked only here.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sqlx::FromRow;
use subtle::ConstantTimeEq;

use super::query::Where;
use super::secret::SecretBox;
use super::table::Table;
use super::text::Stored;
use super::{Exec, Listed, OrNotFound, Page, Result, StoreError, new_uuid, now_ms};
use uuid::Uuid;

/// A `users` row. `password` holds a hash (see [`hash_password`]), never clear text.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct User {
    /// Internal key.
    pub id: i64,
    /// API id.
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    /// The owning account.
    pub account_id: i64,
    /// The account's domain.
    pub domain_id: i64,
    /// Login name, unique among the live users of the domain.
    pub username: String,
    /// Password hash; None when the user cannot log in with a password.
    pub password: Option<String>,
    /// First name.
    pub firstname: String,
    /// Last name.
    pub lastname: String,
    /// E-mail address.
    pub email: Option<String>,
    /// API key (unique).
    pub api_key: Option<String>,
    /// Secret key for request signatures, as stored: sealed (see
    /// [`super::secret`]), or clear text in rows older than sealing.
    pub secret_key: Option<String>,
    /// `enabled` or `disabled`.
    pub state: String,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Removal time (epoch ms), if removed.
    pub removed: Option<i64>,
}

/// A user to create. `password` is clear text and is hashed before it is stored.
#[derive(Clone, Debug, Default)]
pub struct NewUser {
    /// The owning account (must not be removed).
    pub account_id: i64,
    /// Login name.
    pub username: String,
    /// Clear-text password, or None for a keys-only user.
    pub password: Option<String>,
    /// First name.
    pub firstname: String,
    /// Last name.
    pub lastname: String,
    /// E-mail address.
    pub email: Option<String>,
}

/// Filters of a user list; every set field must match.
#[derive(Clone, Debug, Default)]
pub struct UserFilter {
    /// Only this user (API id).
    pub uuid: Option<Uuid>,
    /// Exact username.
    pub username: Option<String>,
    /// Only users of this account.
    pub account_id: Option<i64>,
    /// Only users in the subtree rooted at this domain path.
    pub domain_path_prefix: Option<String>,
    /// Substring of username, first or last name, case-insensitive.
    pub keyword: Option<String>,
}

/// Everything request authentication needs about a live user, in one row.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct Identity {
    /// The user's internal key.
    pub user_id: i64,
    /// The user's API id.
    #[sqlx(try_from = "Stored")]
    pub user_uuid: Uuid,
    /// Login name.
    pub username: String,
    /// The user's state.
    pub user_state: String,
    /// Secret key for signatures, as stored (open it with the database key).
    pub secret_key: Option<String>,
    /// The account's internal key.
    pub account_id: i64,
    /// The account's API id.
    #[sqlx(try_from = "Stored")]
    pub account_uuid: Uuid,
    /// The account's name.
    pub account_name: String,
    /// The account's type (see `account::TYPE_*`).
    pub account_type: i64,
    /// The account's state.
    pub account_state: String,
    /// The domain's internal key.
    pub domain_id: i64,
    /// The domain's API id.
    #[sqlx(try_from = "Stored")]
    pub domain_uuid: Uuid,
    /// The domain's path.
    pub domain_path: String,
}

const COLUMNS: &str = "u.id, u.uuid, u.account_id, u.domain_id, u.username, u.password, \
                       u.firstname, u.lastname, u.email, u.api_key, u.secret_key, u.state, \
                       u.created, u.removed";
const FROM: &str = "users u JOIN domain d ON d.id = u.domain_id";
pub(super) const TABLE: Table<User> = Table::joined("users", COLUMNS, FROM, "u.");

/// Creates a user in a live account (with no API keys; see [`register_keys`]).
pub async fn create<'a>(ex: impl Into<Exec<'a>>, new: NewUser) -> Result<User> {
    let mut ex = ex.into();
    let password = new.password.as_deref().map(hash_password);
    let id: Option<i64> = on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "INSERT INTO users (uuid, account_id, domain_id, username, password, firstname, \
             lastname, email, state, created) \
             SELECT $1, a.id, a.domain_id, $3, $4, $5, $6, $7, 'enabled', $8 FROM account a \
             WHERE a.id = $2 AND a.removed IS NULL RETURNING id",
        )
        .bind(new_uuid())
        .bind(new.account_id)
        .bind(&new.username)
        .bind(&password)
        .bind(&new.firstname)
        .bind(&new.lastname)
        .bind(&new.email)
        .bind(now_ms())
        .fetch_optional(c)
        .await?
    });
    let id = id.or_not_found("account", new.account_id)?;
    get_by_id(ex, id).await?.or_not_found("user", id)
}

/// A user by internal id, removed or not.
pub async fn get_by_id<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<Option<User>> {
    TABLE.by_id(ex, id).await
}

/// A user by UUID, removed or not.
pub async fn get_by_uuid<'a>(ex: impl Into<Exec<'a>>, uuid: Uuid) -> Result<Option<User>> {
    TABLE.by_uuid(ex, uuid).await
}

/// The live user holding `api_key`.
pub async fn get_by_api_key<'a>(ex: impl Into<Exec<'a>>, api_key: &str) -> Result<Option<User>> {
    let mut w = Where::new();
    w.push("u.removed IS NULL").eq("u.api_key", api_key);
    TABLE.first(ex, &w).await
}

/// The live user `username` of the domain (login looks users up this way).
pub async fn get_by_username<'a>(
    ex: impl Into<Exec<'a>>,
    domain_id: i64,
    username: &str,
) -> Result<Option<User>> {
    let mut w = Where::new();
    w.push("u.removed IS NULL")
        .eq("u.domain_id", domain_id)
        .eq("u.username", username);
    TABLE.first(ex, &w).await
}

/// The identity behind an API key (live user in a live account), for signed requests.
pub async fn identity_by_api_key<'a>(
    ex: impl Into<Exec<'a>>,
    api_key: &str,
) -> Result<Option<Identity>> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_as(identity_sql::BY_API_KEY)
            .bind(api_key)
            .fetch_optional(c)
            .await?
    }))
}

/// The identity of a live user by internal id, for session requests.
pub async fn identity_by_user_id<'a>(
    ex: impl Into<Exec<'a>>,
    user_id: i64,
) -> Result<Option<Identity>> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_as(identity_sql::BY_USER_ID)
            .bind(user_id)
            .fetch_optional(c)
            .await?
    }))
}

// The identity queries as `&'static str`, so they need no AssertSqlSafe.
mod identity_sql {
    macro_rules! identity {
        ($tail:literal) => {
            concat!(
                "SELECT u.id AS user_id, u.uuid AS user_uuid, u.username, \
                 u.state AS user_state, u.secret_key, a.id AS account_id, \
                 a.uuid AS account_uuid, a.account_name, a.type AS account_type, \
                 a.state AS account_state, d.id AS domain_id, d.uuid AS domain_uuid, \
                 d.path AS domain_path FROM users u \
                 JOIN account a ON a.id = u.account_id JOIN domain d ON d.id = u.domain_id \
                 WHERE u.removed IS NULL AND a.removed IS NULL AND ",
                $tail
            )
        };
    }
    pub(super) const BY_API_KEY: &str = identity!("u.api_key = $1");
    pub(super) const BY_USER_ID: &str = identity!("u.id = $1");
}

/// Lists live users, by username.
pub async fn list<'a>(
    ex: impl Into<Exec<'a>>,
    filter: &UserFilter,
    page: Page,
) -> Result<Listed<User>> {
    let mut w = Where::new();
    w.push("u.removed IS NULL")
        .eq_opt("u.uuid", filter.uuid)
        .eq_opt("u.username", filter.username.clone())
        .eq_opt("u.account_id", filter.account_id)
        .keyword(
            &["u.username", "u.firstname", "u.lastname"],
            filter.keyword.as_deref(),
        );
    w.starts_with_opt("d.path", filter.domain_path_prefix.as_deref());
    TABLE.list(ex, &w, "u.username, u.id", page).await
}

/// Gives a live user a new API key and secret key (replacing any old pair) and
/// returns `(api_key, secret_key)` in clear; the secret key is stored sealed
/// by `secrets`.
pub async fn register_keys<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
    secrets: &SecretBox,
) -> Result<(String, String)> {
    let (api_key, secret_key) = (random_key(), random_key());
    let sealed = secrets.seal(&secret_key);
    let mut ex = ex.into();
    let done = on_db!(&mut ex, c => {
        sqlx::query("UPDATE users SET api_key = $2, secret_key = $3 WHERE id = $1 AND removed IS NULL")
            .bind(id)
            .bind(&api_key)
            .bind(&sealed)
            .execute(c)
            .await?
            .rows_affected()
    });
    if done != 1 {
        return Err(StoreError::NotFound {
            what: "user",
            key: id.to_string(),
        });
    }
    Ok((api_key, secret_key))
}

/// Seals the secret keys still stored in clear (rows written before secrets
/// were sealed); returns how many. Each row is rewritten only if it still
/// holds the clear value read, so two managers starting together cannot
/// seal a value twice.
pub async fn seal_clear_secrets<'a>(ex: impl Into<Exec<'a>>, secrets: &SecretBox) -> Result<u64> {
    let mut ex = ex.into();
    let clear: Vec<(i64, String)> = on_db!(&mut ex, c => {
        sqlx::query_as(
            "SELECT id, secret_key FROM users WHERE secret_key IS NOT NULL \
             AND secret_key NOT LIKE 'enc:v1:%'",
        )
        .fetch_all(c)
        .await?
    });
    let mut sealed = 0;
    for (id, value) in clear {
        let done = on_db!(&mut ex, c => {
            sqlx::query("UPDATE users SET secret_key = $3 WHERE id = $1 AND secret_key = $2")
                .bind(id)
                .bind(&value)
                .bind(secrets.seal(&value))
                .execute(c)
                .await?
                .rows_affected()
        });
        sealed += done;
    }
    // SQLite keeps the old pages (with the clear values) in the file and its
    // WAL until they are reused: rebuild the file once so none is left.
    if sealed > 0 && matches!(ex, Exec::Db(super::Db::Sqlite(_))) {
        for sql in [
            "PRAGMA wal_checkpoint(TRUNCATE)",
            "VACUUM",
            "PRAGMA wal_checkpoint(TRUNCATE)",
        ] {
            on_db!(&mut ex, c => {
                sqlx::query(sql).execute(c).await?;
            });
        }
    }
    Ok(sealed)
}

/// One sealed secret key, if any is stored (to check at start that the
/// database key opens them).
pub async fn any_sealed_secret<'a>(ex: impl Into<Exec<'a>>) -> Result<Option<String>> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "SELECT secret_key FROM users WHERE secret_key LIKE 'enc:v1:%' ORDER BY id LIMIT 1",
        )
        .fetch_optional(c)
        .await?
    }))
}

/// Sets (or with None, clears) a live user's password.
pub async fn set_password<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
    password: Option<&str>,
) -> Result<bool> {
    let hash = password.map(hash_password);
    TABLE
        .set_live(ex, id, &[("password", hash.as_deref().into())])
        .await
}

/// Counts a wrong password of a live enabled user: with `allowed` > 0, the
/// `allowed`-th failure in a row disables the user (CloudStack's
/// `incorrect.login.attempts.allowed`); with `allowed` <= 0 nothing is
/// counted. One statement, so concurrent failures all count. Returns the
/// failures in a row and whether the user is now disabled; None when
/// nothing was counted (unknown, removed or not enabled).
pub async fn record_failed_login<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
    allowed: i64,
) -> Result<Option<(i64, bool)>> {
    if allowed <= 0 {
        return Ok(None);
    }
    let mut ex = ex.into();
    let row: Option<(i64, String)> = on_db!(&mut ex, c => {
        sqlx::query_as(
            "UPDATE users SET login_attempts = login_attempts + 1, \
             state = CASE WHEN login_attempts + 1 >= $2 THEN 'disabled' ELSE state END \
             WHERE id = $1 AND removed IS NULL AND state = 'enabled' \
             RETURNING CAST(login_attempts AS BIGINT), state",
        )
        .bind(id)
        .bind(allowed)
        .fetch_optional(c)
        .await?
    });
    Ok(row.map(|(attempts, state)| (attempts, state != "enabled")))
}

/// Forgets a user's wrong passwords (after a successful login, or when an
/// administrator enables the user).
pub async fn reset_login_attempts<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<()> {
    let mut ex = ex.into();
    on_db!(&mut ex, c => {
        sqlx::query("UPDATE users SET login_attempts = 0 WHERE id = $1 AND login_attempts <> 0")
            .bind(id)
            .execute(c)
            .await?;
    });
    Ok(())
}

/// Enables or disables a live user.
pub async fn set_state<'a>(ex: impl Into<Exec<'a>>, id: i64, state: &str) -> Result<bool> {
    TABLE.set_state(ex, id, state).await
}

/// Marks a user removed (its keys and sessions stop working).
pub async fn remove<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<bool> {
    TABLE.remove(ex, id).await
}

/// 64 random bytes, URL-safe base64 without padding (86 characters), like CloudStack's
/// generated keys.
pub fn random_key() -> String {
    let mut bytes = [0u8; 64];
    rand::fill(&mut bytes[..]);
    URL_SAFE_NO_PAD.encode(bytes)
}

// PBKDF2-HMAC-SHA1 (RFC 8018) because hmac and sha1 are what the manager already links
// for request signatures. A memory-hard hash (argon2) would be better; the stored
// format names its algorithm so it can be replaced without invalidating old hashes.
const PBKDF2_ITERATIONS: u32 = 100_000;
const HASH_PREFIX: &str = "pbkdf2-sha1";

/// Hashes a password as `pbkdf2-sha1$<iterations>$<salt>$<hash>` (base64, no padding)
/// with a random 16-byte salt.
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::fill(&mut salt[..]);
    let hash = pbkdf2_sha1(password.as_bytes(), &salt, PBKDF2_ITERATIONS);
    format!(
        "{HASH_PREFIX}${PBKDF2_ITERATIONS}${}${}",
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(hash)
    )
}

/// Whether `password` matches a hash made by [`hash_password`] (constant-time compare).
pub fn verify_password(stored: &str, password: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some(HASH_PREFIX), Some(iterations), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Ok(iterations), Ok(salt), Ok(hash)) = (
        iterations.parse::<u32>(),
        STANDARD_NO_PAD.decode(salt),
        STANDARD_NO_PAD.decode(hash),
    ) else {
        return false;
    };
    if iterations == 0 {
        return false;
    }
    let computed = pbkdf2_sha1(password.as_bytes(), &salt, iterations);
    computed.as_slice().ct_eq(&hash).into()
}

/// PBKDF2 with HMAC-SHA1 and a 20-byte output (one block).
fn pbkdf2_sha1(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 20] {
    let keyed = Hmac::<Sha1>::new_from_slice(password).expect("HMAC takes keys of any length");
    let mut mac = keyed.clone();
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let mut u = [0u8; 20];
    u.copy_from_slice(&mac.finalize().into_bytes());
    let mut out = u;
    for _ in 1..iterations {
        let mut mac = keyed.clone();
        mac.update(&u);
        u.copy_from_slice(&mac.finalize().into_bytes());
        for (o, x) in out.iter_mut().zip(u.iter()) {
            *o ^= x;
        }
    }
    out
}

/// Changes a live user's names and email (None keeps each); `Duplicate`
/// when the new username is taken in the domain.
pub async fn update_profile<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
    username: Option<&str>,
    firstname: Option<&str>,
    lastname: Option<&str>,
    email: Option<&str>,
) -> Result<bool> {
    let values = [
        ("username", username.into()),
        ("firstname", firstname.into()),
        ("lastname", lastname.into()),
        ("email", email.into()),
    ];
    TABLE.update_live(ex, id, &values).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_matches_rfc6070_vectors() {
        // RFC 6070 test vectors for PBKDF2-HMAC-SHA1 (dkLen 20).
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(
            hex(&pbkdf2_sha1(b"password", b"salt", 1)),
            "0c60c80f961f0e71f3a9b524af6012062fe037a6"
        );
        assert_eq!(
            hex(&pbkdf2_sha1(b"password", b"salt", 4096)),
            "4b007901b765489abead49d926f721d065a429c1"
        );
    }

    #[test]
    fn password_hash_round_trip() {
        let stored = hash_password("s3cret");
        assert!(stored.starts_with("pbkdf2-sha1$"));
        assert!(verify_password(&stored, "s3cret"));
        assert!(!verify_password(&stored, "s3cret "));
        assert!(!verify_password("garbage", "s3cret"));
    }

    #[test]
    fn keys_are_long_and_url_safe() {
        let key = random_key();
        assert_eq!(key.len(), 86);
        assert!(
            key.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(key, random_key());
    }
}
