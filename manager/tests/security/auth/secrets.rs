//! Secrets at rest (sealed secret keys, private files) and out of the logs.

use super::*;

/// Every stored form of the users' secret keys: the raw bytes of the SQLite
/// files, or the column's values on PostgreSQL.
async fn stored_secrets(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("sqlite://") {
        let path = rest.split('?').next().unwrap();
        let mut raw = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            if let Ok(bytes) = std::fs::read(format!("{path}{suffix}")) {
                raw.extend(bytes);
            }
        }
        return String::from_utf8_lossy(&raw).into_owned();
    }
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
        .await
        .expect("connect to PostgreSQL");
    let rows: Vec<(Option<String>,)> = sqlx::query_as("SELECT secret_key FROM users")
        .fetch_all(&mut conn)
        .await
        .expect("read users");
    rows.into_iter()
        .filter_map(|(s,)| s)
        .collect::<Vec<_>>()
        .join("\n")
}

on_both_backends!(secret_keys_are_not_stored_in_clear, |m, url| {
    let admin = m.admin();
    let (user, client) = keyed_user(&admin, "sealed").await;
    assert_eq!(client.call("listZones", &[]).await.0, 200, "the keys sign");
    let read = admin.ok("getUserKeys", &[("id", &user)]).await;
    assert_eq!(read["userkeys"]["secretkey"], client.secret.as_str());
    let stored = stored_secrets(url).await;
    assert!(!stored.is_empty());
    for secret in [&client.secret, &m.secret] {
        assert!(
            !stored.contains(secret.as_str()),
            "a secret key is in the database in clear"
        );
    }
});

on_both_backends!(
    clear_text_secret_rows_keep_working_and_get_sealed,
    |m, url| {
        let admin = m.admin();
        let (user, client) = keyed_user(&admin, "oldrow").await;
        // A row as an older manager wrote it: the secret in clear.
        let clear = "old-clear-secret-from-before-sealing";
        vpc_manager::store::user::get_by_uuid(&m.app.db, user.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        set_secret_in_clear(url, &user, clear).await;
        let old = Client {
            secret: clear.into(),
            ..client.clone()
        };
        assert_eq!(
            old.call("listZones", &[]).await.0,
            200,
            "clear rows still verify"
        );
        let sealed = vpc_manager::store::user::seal_clear_secrets(&m.app.db, &m.app.secrets)
            .await
            .unwrap();
        assert_eq!(sealed, 1, "the start-up migration seals the clear row");
        assert!(!stored_secrets(url).await.contains(clear));
        assert_eq!(
            old.call("listZones", &[]).await.0,
            200,
            "and it still verifies"
        );
    }
);

async fn set_secret_in_clear(url: &str, user: &str, clear: &str) {
    exec_sql(
        url,
        "UPDATE users SET secret_key = $1 WHERE uuid = $2",
        &[clear, user],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_directory_database_and_key_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let data_dir = parent.path().join("fresh").join("data");
    let settings = vpc_manager::settings::Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.clone(),
        ..Default::default()
    };
    let manager = vpc_manager::serve::Manager::start_with(
        settings,
        vpc_manager::provision::Backend::simulated(),
    )
    .await
    .expect("manager starts");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data_dir), 0o700, "data directory");
    for file in ["vpc-manager.db", "database.key", "cloudstack.ini"] {
        assert_eq!(mode(&data_dir.join(file)), 0o600, "{file}");
    }
    for file in ["vpc-manager.db-wal", "vpc-manager.db-shm"] {
        let path = data_dir.join(file);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{file}");
        }
    }
    manager.app.db.close().await;
}

on_both_backends!(request_logs_never_hold_secrets_or_signatures, |m| {
    let logs = captured_logs();
    let admin = m.admin();
    let (user, client) = keyed_user(&admin, "logged").await;
    admin.ok("getUserKeys", &[("id", &user)]).await;
    client.call("listZones", &[]).await;
    // A refused one too: a bad signature.
    let wrong = Client {
        secret: "not-the-secret".into(),
        ..client.clone()
    };
    wrong.call("listZones", &[]).await;
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(text.contains("listZones"), "requests are logged");
    for secret in [&client.secret, &m.secret] {
        assert!(!text.contains(secret.as_str()), "a secret key was logged");
    }
    let lower = text.to_ascii_lowercase();
    assert!(!lower.contains("signature="), "a signature was logged");
    assert!(!lower.contains("apikey="), "a query string was logged");
});
