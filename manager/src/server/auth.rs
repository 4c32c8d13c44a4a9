//! Who is calling: API key and signature (CloudStack reference §1.2–1.3), or a
//! login session (§1.4). Every failure is a 401 with CloudStack's text, so a
//! probe learns nothing about which part was wrong.
//!
//! (Over 400 lines: signature, session and login checks are one front door;
//! splitting them would scatter the rule that every failure answers alike.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use serde_json::{Value, json};

use crate::api::{ApiError, Params, parse_expires, verify};
use crate::server::context::{App, Caller};
use crate::services::event as events;
use crate::store::{self, account, config, domain, event, session, user};

/// How long a login session lives without use (CloudStack's default 30 min).
pub const SESSION_TTL_MS: i64 = 30 * 60 * 1000;

/// CloudStack's default of `incorrect.login.attempts.allowed`.
const DEFAULT_LOGIN_ATTEMPTS: i64 = 5;

/// Password checks for `login`: the hash runs on the blocking pool, at most
/// one per core at a time, so wrong-password floods queue among themselves
/// instead of stalling the async workers every other request needs.
pub struct Logins {
    hashers: tokio::sync::Semaphore,
    /// A hash of a random password with the same cost as real ones: checked
    /// when there is no user (or no password), so an unknown name costs the
    /// same hash as a wrong password and names cannot be told apart by time.
    /// Made at the first use, so starting a manager costs no hash.
    decoy: Arc<std::sync::OnceLock<String>>,
    checks: AtomicU64,
    /// How long the last failed login of a real user took (µs): a failure
    /// without a user waits until as long has passed, so the store lookups
    /// a real user costs do not tell names apart either (CloudStack's
    /// `validUserLastAuthTimeDurationInMs`).
    last_real_failure_us: AtomicU64,
}

impl Logins {
    /// A checker running at most `parallel` hashes at once.
    pub fn new(parallel: usize) -> Logins {
        Logins {
            hashers: tokio::sync::Semaphore::new(parallel.max(1)),
            decoy: Arc::default(),
            checks: AtomicU64::new(0),
            last_real_failure_us: AtomicU64::new(0),
        }
    }

    /// Ends a failed login that started at `started`: for a real user its
    /// time is remembered; for a missing one the answer waits until a real
    /// user's failure would have come.
    async fn failed_after(&self, started: Instant, real_user: bool) {
        let spent = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        if real_user {
            self.last_real_failure_us.store(spent, Ordering::Relaxed);
            return;
        }
        let target = self.last_real_failure_us.load(Ordering::Relaxed);
        if target > spent {
            tokio::time::sleep(Duration::from_micros(target - spent)).await;
        }
    }

    /// Whether `password` matches the `stored` hash; with no hash, the decoy
    /// is checked (always false) so the time spent is the same.
    pub async fn verify(&self, stored: Option<&str>, password: &str) -> bool {
        let Ok(_permit) = self.hashers.acquire().await else {
            return false;
        };
        self.checks.fetch_add(1, Ordering::Relaxed);
        let real = stored.is_some();
        let stored = stored.map(str::to_string);
        let decoy = self.decoy.clone();
        let password = password.to_string();
        let matched = tokio::task::spawn_blocking(move || {
            let hash = stored.unwrap_or_else(|| {
                decoy
                    .get_or_init(|| user::hash_password(&user::random_key()))
                    .clone()
            });
            user::verify_password(&hash, &password)
        })
        .await
        .unwrap_or(false);
        real && matched
    }

    /// How many password hashes were checked (real or decoy).
    pub fn password_checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }
}

impl Default for Logins {
    fn default() -> Self {
        Logins::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }
}

fn store_error(e: store::StoreError) -> ApiError {
    tracing::error!(error = %e, "store error");
    ApiError::internal("Internal error executing command, please contact your system administrator")
}

fn caller_of(identity: user::Identity) -> Result<Caller, ApiError> {
    // A disabled user or account cannot call the API at all.
    if identity.user_state != account::STATE_ENABLED.as_str()
        || identity.account_state != account::STATE_ENABLED.as_str()
    {
        return Err(ApiError::unauthorized());
    }
    Ok(Caller::from(identity))
}

/// The value of cookie `name`, if the request carries it.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|line| {
            line.split(';').find_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                (k == name).then(|| v.to_string())
            })
        })
}

/// Authenticates a request that is not login or logout.
pub async fn authenticate(
    app: &App,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Caller, ApiError> {
    if let Some(api_key) = params.get("apikey") {
        return by_signature(app, params, api_key).await;
    }
    let locations = config::value(&app.db, "api.sessionkey.check.locations")
        .await
        .map_err(store_error)?
        .unwrap_or_else(|| "CookieAndParameter".into());
    let from_cookie = cookie(headers, "sessionkey");
    for key in session_keys(&locations, from_cookie.as_deref(), params.get("sessionkey")) {
        if let Ok(caller) = by_session(app, key).await {
            return Ok(caller);
        }
    }
    Err(ApiError::unauthorized())
}

/// The session keys to try, by CloudStack's `api.sessionkey.check.locations`:
/// `CookieAndParameter` (the default) wants both, equal; `CookieOrParameter`
/// takes either (each is tried when both are given and differ);
/// `ParameterOnly` ignores the cookie.
pub fn session_keys<'a>(
    locations: &str,
    cookie: Option<&'a str>,
    param: Option<&'a str>,
) -> Vec<&'a str> {
    match locations {
        "ParameterOnly" => param.into_iter().collect(),
        "CookieOrParameter" => {
            let mut keys: Vec<&str> = param.into_iter().chain(cookie).collect();
            keys.dedup();
            keys
        }
        _ => match (cookie, param) {
            (Some(c), Some(p)) if c == p => vec![c],
            _ => Vec::new(),
        },
    }
}

/// How far ahead a signed request's `expires` may be when
/// `enforce.post.requests.and.timestamps` is on (CloudStack: 15 minutes).
const MAX_EXPIRES_AHEAD: chrono::TimeDelta = chrono::TimeDelta::minutes(15);

/// Whether the signed request's timing is acceptable: with signature
/// version 3, `expires` must not have passed; with timestamps enforced, the
/// version must be 3 and `expires` at most [`MAX_EXPIRES_AHEAD`] away, so a
/// leaked URL stops working soon.
pub fn timing_ok(
    version: Option<&str>,
    expires: Option<chrono::DateTime<chrono::Utc>>,
    enforced: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    if version != Some("3") {
        return !enforced;
    }
    match expires {
        None => false,
        Some(e) if e < now => false,
        Some(e) => !enforced || e <= now + MAX_EXPIRES_AHEAD,
    }
}

async fn by_signature(app: &App, params: &Params, api_key: &str) -> Result<Caller, ApiError> {
    let identity = user::identity_by_api_key(&app.db, api_key)
        .await
        .map_err(store_error)?
        .ok_or_else(ApiError::unauthorized)?;
    let stored = identity
        .secret_key
        .as_deref()
        .ok_or_else(ApiError::unauthorized)?;
    // Opened in memory only for this check.
    let secret = app.secrets.open(stored).map_err(|e| {
        tracing::error!(user = %identity.user_uuid, error = %e, "secret key");
        ApiError::unauthorized()
    })?;
    let signature = params.get("signature").ok_or_else(ApiError::unauthorized)?;
    let enforced = config::value_bool(&app.db, "enforce.post.requests.and.timestamps")
        .await
        .map_err(store_error)?
        .unwrap_or(false);
    let expires = params.get("expires").and_then(parse_expires);
    if !timing_ok(
        params.get("signatureversion"),
        expires,
        enforced,
        chrono::Utc::now(),
    ) {
        return Err(ApiError::unauthorized());
    }
    if !verify(&secret, params.raw_pairs(), signature) {
        return Err(ApiError::unauthorized());
    }
    caller_of(identity)
}

async fn by_session(app: &App, key: &str) -> Result<Caller, ApiError> {
    let now = store::now_ms();
    let session = session::get_valid(&app.db, key, now)
        .await
        .map_err(store_error)?
        .ok_or_else(ApiError::unauthorized)?;
    session::extend(&app.db, key, now + SESSION_TTL_MS)
        .await
        .map_err(store_error)?;
    let identity = user::identity_by_user_id(&app.db, session.user_id)
        .await
        .map_err(store_error)?
        .ok_or_else(ApiError::unauthorized)?;
    caller_of(identity)
}

/// `login` (POST only): username, password, and `domain` (a path such as `/`
/// or `/customers/acme`) or `domainId`. Returns the response content and the
/// cookies to set (`secure`: the API is served over TLS).
///
/// Every attempt costs one password hash, also for an unknown domain or user
/// (see [`Logins`]). Wrong passwords of an enabled user count; at
/// `incorrect.login.attempts.allowed` in a row the user is disabled, and a
/// successful login resets the count (CloudStack's `AccountManagerImpl`,
/// which exempts root admin accounts from the lock).
pub async fn login(
    app: &App,
    params: &Params,
    secure: bool,
) -> Result<(Value, Vec<String>), ApiError> {
    let started = Instant::now();
    let username = params.required_string("login", "username")?;
    let password = params.required_string("login", "password")?;
    let failed = || {
        ApiError::new(
            531,
            4365,
            "Failed to authenticate user; please check the user name, password and domain",
        )
    };
    let domain = match params.get("domainid") {
        // An id that is no UUID names no domain: the same refusal as an
        // unknown one.
        Some(uuid) => match uuid::Uuid::parse_str(uuid) {
            Ok(uuid) => domain::get_by_uuid(&app.db, uuid)
                .await
                .map_err(store_error)?,
            Err(_) => None,
        },
        None => {
            let path = params.get("domain").unwrap_or("/").trim_matches('/');
            let path = if path.is_empty() {
                "/".to_string()
            } else {
                format!("/{path}/")
            };
            domain::get_by_path(&app.db, &path)
                .await
                .map_err(store_error)?
        }
    }
    .filter(|d| d.removed.is_none());
    let found = match &domain {
        Some(d) => user::get_by_username(&app.db, d.id, &username)
            .await
            .map_err(store_error)?,
        None => None,
    };
    let stored = found.as_ref().and_then(|u| u.password.as_deref());
    let matched = app.logins.verify(stored, &password).await;
    let Some(found) = found else {
        app.logins.failed_after(started, false).await;
        return Err(failed());
    };
    let identity = user::identity_by_user_id(&app.db, found.id)
        .await
        .map_err(store_error)?
        .ok_or_else(failed)?;
    if !matched {
        if identity.account_type != account::TYPE_ADMIN {
            let allowed = config::value_i64(&app.db, "incorrect.login.attempts.allowed")
                .await
                .map_err(store_error)?
                .unwrap_or(DEFAULT_LOGIN_ATTEMPTS);
            let counted = user::record_failed_login(&app.db, found.id, allowed)
                .await
                .map_err(store_error)?;
            if let Some((attempts, true)) = counted {
                tracing::warn!(user = %found.uuid, attempts, "user disabled after wrong passwords in a row");
            }
        }
        app.logins.failed_after(started, true).await;
        return Err(failed());
    }
    let caller = caller_of(identity).map_err(|_| failed())?;
    user::reset_login_attempts(&app.db, found.id)
        .await
        .map_err(store_error)?;
    // The session and CloudStack's USER.LOGIN event, together.
    let mut tx = app.db.begin().await.map_err(store_error)?;
    let created = session::create(&mut tx, found.id, SESSION_TTL_MS)
        .await
        .map_err(store_error)?;
    let login = events::Action {
        event_type: events::USER_LOGIN,
        what: "user has logged in",
        user_id: caller.user_id,
        account_id: caller.account_id,
        resource: Some(("User", caller.user_uuid.to_string())),
    };
    events::record(&mut tx, &login, event::STATE_COMPLETED, true, 0)
        .await
        .map_err(store_error)?;
    tx.commit().await.map_err(store_error)?;
    let body = json!({
        "loginresponse": {
            "username": found.username,
            "userid": caller.user_uuid,
            "domainid": caller.domain_uuid,
            "timeout": SESSION_TTL_MS / 1000,
            "account": caller.account_name,
            "firstname": found.firstname,
            "lastname": found.lastname,
            "type": caller.account_type.to_string(),
            "sessionkey": created.session_key,
            "registered": "false",
        }
    });
    Ok((body, vec![session_cookie(&created.session_key, secure)]))
}

/// The session cookie: never readable by scripts (`HttpOnly`), and sent
/// back over TLS only when the API is served over TLS (`Secure`).
pub fn session_cookie(value: &str, secure: bool) -> String {
    let mut cookie = format!("sessionkey={value}; Path=/client; HttpOnly; SameSite=Lax");
    if value.is_empty() {
        cookie.push_str("; Max-Age=0");
    }
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

/// `logout`: ends the session named by the cookie or the parameter.
pub async fn logout(app: &App, headers: &HeaderMap, params: &Params) -> Result<Value, ApiError> {
    let key = params
        .get("sessionkey")
        .map(str::to_string)
        .or_else(|| cookie(headers, "sessionkey"));
    let key = key.ok_or_else(ApiError::unauthorized)?;
    session::delete(&app.db, &key).await.map_err(store_error)?;
    Ok(json!({ "logoutresponse": { "description": "success" } }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_key_locations_follow_cloudstack() {
        let both = |l| session_keys(l, Some("k"), Some("k"));
        assert_eq!(both("CookieAndParameter"), vec!["k"]);
        assert!(session_keys("CookieAndParameter", Some("k"), None).is_empty());
        assert!(session_keys("CookieAndParameter", None, Some("k")).is_empty());
        assert_eq!(
            session_keys("CookieOrParameter", Some("c"), None),
            vec!["c"]
        );
        assert_eq!(
            session_keys("CookieOrParameter", Some("c"), Some("p")),
            vec!["p", "c"]
        );
        assert_eq!(
            session_keys("ParameterOnly", Some("c"), Some("p")),
            vec!["p"]
        );
        assert!(session_keys("ParameterOnly", Some("c"), None).is_empty());
    }

    #[test]
    fn enforced_timestamps_need_version_3_and_a_near_expiry() {
        let now = chrono::Utc::now();
        let soon = Some(now + chrono::TimeDelta::minutes(5));
        let late = Some(now + chrono::TimeDelta::hours(24));
        let past = Some(now - chrono::TimeDelta::minutes(1));
        assert!(
            timing_ok(None, None, false, now),
            "version 1 when not enforced"
        );
        assert!(!timing_ok(None, None, true, now));
        assert!(timing_ok(Some("3"), late, false, now));
        assert!(!timing_ok(Some("3"), late, true, now), "too far ahead");
        assert!(timing_ok(Some("3"), soon, true, now));
        assert!(!timing_ok(Some("3"), past, false, now), "expired");
        assert!(!timing_ok(Some("3"), None, false, now));
    }

    #[test]
    fn session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "JSESSIONID=abc; sessionkey=k1=x; other=1".parse().unwrap(),
        );
        assert_eq!(cookie(&headers, "sessionkey").as_deref(), Some("k1=x"));
        assert_eq!(cookie(&headers, "missing"), None);
    }
}
