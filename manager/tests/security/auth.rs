//! Identity and authentication: who may read, register or create keys and
//! users, secrets at rest, logins, sessions.

use std::collections::HashMap;

use serde_json::Value;

use crate::support::api::{Client, TestManager, id, on_both_backends};

/// One account of the role matrix and a client signing as its first user.
struct Member {
    account: String,
    account_name: String,
    domain: String,
    user: String,
    client: Client,
}

/// Creates an account of `account_type` in `domain` as the root admin and
/// registers keys for its first user.
async fn member(admin: &Client, domain: &str, name: &str, account_type: &str) -> Member {
    let a = admin
        .ok(
            "createAccount",
            &[
                ("username", name),
                ("password", "pw"),
                ("email", "x@example.org"),
                ("firstname", "F"),
                ("lastname", "L"),
                ("domainid", domain),
                ("accounttype", account_type),
            ],
        )
        .await;
    let user = a["account"]["user"][0]["id"].as_str().unwrap().to_string();
    let keys = admin.ok("registerUserKeys", &[("id", &user)]).await;
    Member {
        account: id(&a, "account"),
        account_name: name.to_string(),
        domain: domain.to_string(),
        user,
        client: client_of(admin, &keys),
    }
}

fn client_of(any: &Client, keys: &Value) -> Client {
    Client {
        addr: any.addr,
        key: keys["userkeys"]["apikey"].as_str().unwrap().into(),
        secret: keys["userkeys"]["secretkey"].as_str().unwrap().into(),
    }
}

/// The role matrix: the bootstrap root admin, a second root admin, two
/// domain admins of ROOT, a domain admin and a user of a child domain, and
/// a user of ROOT.
async fn matrix(m: &TestManager) -> HashMap<&'static str, Member> {
    let admin = m.admin();
    let root = admin.ok("listDomains", &[("name", "ROOT")]).await["domain"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let child = id(
        &admin.ok("createDomain", &[("name", "child")]).await,
        "domain",
    );
    let me = admin.ok("listUsers", &[("username", "admin")]).await["user"][0].clone();
    let mut all = HashMap::new();
    all.insert(
        "root",
        Member {
            account: me["accountid"].as_str().unwrap().into(),
            account_name: "admin".into(),
            domain: root.clone(),
            user: me["id"].as_str().unwrap().into(),
            client: admin.clone(),
        },
    );
    all.insert("root2", member(&admin, &root, "root2", "1").await);
    all.insert("root_da", member(&admin, &root, "rootda", "2").await);
    all.insert(
        "root_da_peer",
        member(&admin, &root, "rootdapeer", "2").await,
    );
    all.insert("child_da", member(&admin, &child, "childda", "2").await);
    all.insert("child_user", member(&admin, &child, "childuser", "0").await);
    all.insert("root_user", member(&admin, &root, "rootuser", "0").await);
    all
}

const CALLERS: &[&str] = &["root", "root_da", "child_da", "root_user"];
const TARGETS: &[&str] = &[
    "root",
    "root2",
    "root_da",
    "root_da_peer",
    "child_da",
    "child_user",
    "root_user",
];

/// Whether `caller` may read or register the keys of `target`'s user: the
/// user itself, root admins, or a strictly higher role over the target's
/// domain.
fn may_use_keys(caller: &str, target: &str) -> bool {
    caller == target
        || caller == "root"
        || matches!(
            (caller, target),
            ("root_da", "child_user" | "root_user") | ("child_da", "child_user")
        )
}

/// Whether `caller` may create users in (or update) `target`'s account:
/// the key rule, plus its own account.
fn may_manage_account(caller: &str, target: &str) -> bool {
    may_use_keys(caller, target)
}

/// Status of a call: 200, or the error code after checking the envelope.
async fn status(client: &Client, command: &str, params: &[(&str, &str)]) -> u16 {
    client.call(command, params).await.0
}

on_both_backends!(
    user_keys_are_read_and_registered_only_by_the_user_or_a_higher_role,
    |m| {
        let mut all = matrix(m).await;
        for &caller in CALLERS {
            for &target in TARGETS {
                let user = all[target].user.clone();
                let expected = if may_use_keys(caller, target) {
                    200
                } else {
                    531
                };
                let got = status(&all[caller].client, "getUserKeys", &[("id", &user)]).await;
                assert_eq!(got, expected, "getUserKeys: {caller} on {target}");
            }
        }
        for &caller in CALLERS {
            for &target in TARGETS {
                let user = all[target].user.clone();
                let allowed = may_use_keys(caller, target);
                let (got, body) = all[caller]
                    .client
                    .call("registerUserKeys", &[("id", &user)])
                    .await;
                assert_eq!(
                    got,
                    if allowed { 200 } else { 531 },
                    "registerUserKeys: {caller} on {target}: {body}"
                );
                if allowed {
                    // The target's old keys are gone: sign with the new ones.
                    let new = client_of(&all[caller].client, &body["registeruserkeysresponse"]);
                    all.get_mut(target).unwrap().client = new;
                }
            }
        }
        // The hole itself: a domain admin of ROOT never gets a key that
        // passes a root-only command.
        let root_only = status(&all["root_da"].client, "listConfigurations", &[]).await;
        assert_eq!(root_only, 432);
    }
);

on_both_backends!(
    users_are_created_only_in_accounts_the_caller_outranks_or_owns,
    |m| {
        let all = matrix(m).await;
        for &caller in CALLERS {
            for (n, &target) in TARGETS.iter().enumerate() {
                let t = &all[target];
                let username = format!("new-{caller}-{n}");
                let got = status(
                    &all[caller].client,
                    "createUser",
                    &[
                        ("account", &t.account_name),
                        ("domainid", &t.domain),
                        ("username", &username),
                        ("password", "pw"),
                        ("email", "n@example.org"),
                        ("firstname", "N"),
                        ("lastname", "U"),
                    ],
                )
                .await;
                let expected = if caller == "root_user" {
                    432 // not a command users have
                } else if may_manage_account(caller, target) || all[caller].account == t.account {
                    200
                } else {
                    531
                };
                assert_eq!(got, expected, "createUser: {caller} in {target}");
            }
        }
    }
);

on_both_backends!(
    accounts_are_changed_only_by_a_higher_role_over_their_domain,
    |m| {
        let all = matrix(m).await;
        for &caller in CALLERS {
            for &target in TARGETS {
                let account = all[target].account.clone();
                let own = all[caller].account == account;
                let allowed = may_manage_account(caller, target) || own;
                let expected = if caller == "root_user" {
                    432
                } else if allowed {
                    200
                } else {
                    531
                };
                let got = status(
                    &all[caller].client,
                    "updateAccount",
                    &[("id", &account), ("networkdomain", "corp.example.org")],
                )
                .await;
                assert_eq!(got, expected, "updateAccount: {caller} on {target}");
                let got = status(&all[caller].client, "enableAccount", &[("id", &account)]).await;
                assert_eq!(got, expected, "enableAccount: {caller} on {target}");
                // State changes are refused where not allowed; allowed ones
                // are not run, so the matrix stays intact.
                if !allowed && caller != "root_user" {
                    let got = status(
                        &all[caller].client,
                        "disableAccount",
                        &[("id", &account), ("lock", "true")],
                    )
                    .await;
                    assert_eq!(got, 531, "disableAccount: {caller} on {target}");
                    let got =
                        status(&all[caller].client, "deleteAccount", &[("id", &account)]).await;
                    assert_eq!(got, 531, "deleteAccount: {caller} on {target}");
                }
            }
        }
        // New accounts: a domain admin creates only users' accounts.
        let root_da = &all["root_da"];
        for (account_type, expected) in [("0", 200), ("2", 531), ("1", 531)] {
            let name = format!("made-{account_type}");
            let got = status(
                &root_da.client,
                "createAccount",
                &[
                    ("username", &name),
                    ("password", "pw"),
                    ("email", "m@example.org"),
                    ("firstname", "M"),
                    ("lastname", "A"),
                    ("domainid", &root_da.domain),
                    ("accounttype", account_type),
                ],
            )
            .await;
            assert_eq!(got, expected, "createAccount of type {account_type}");
        }
    }
);

// --- Secrets at rest -------------------------------------------------------

/// Registers keys for a new user of ROOT; returns its user id and client.
async fn keyed_user(admin: &Client, name: &str) -> (String, Client) {
    let root = admin.ok("listDomains", &[("name", "ROOT")]).await["domain"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let m = member(admin, &root, name, "0").await;
    (m.user, m.client)
}

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
        vpc_manager::store::user::get_by_uuid(&m.app.db, &user)
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

/// Every log line the process writes, at every level (installed once for
/// the whole test binary).
fn captured_logs() -> &'static std::sync::Mutex<Vec<u8>> {
    static LOGS: std::sync::OnceLock<std::sync::Mutex<Vec<u8>>> = std::sync::OnceLock::new();
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    struct Capture;
    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            captured_logs().lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let logs = LOGS.get_or_init(Default::default);
    INSTALLED.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("trace")
            .with_ansi(false)
            .with_writer(|| Capture)
            .try_init();
    });
    logs
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

// --- Logins ------------------------------------------------------------------

/// POSTs `login`; returns the status and the response.
async fn login(
    m: &TestManager,
    username: &str,
    password: &str,
    domain: &str,
) -> crate::support::api::HttpResponse {
    let body = crate::support::api::query(&[
        ("command".into(), "login".into()),
        ("username".into(), username.into()),
        ("password".into(), password.into()),
        ("domain".into(), domain.into()),
        ("response".into(), "json".into()),
    ]);
    crate::support::api::http(m.addr, "POST", "/client/api", &body, &[]).await
}

/// The state of user `name` as listUsers shows it.
async fn user_state(admin: &Client, name: &str) -> String {
    admin
        .ok("listUsers", &[("username", name), ("listall", "true")])
        .await["user"][0]["state"]
        .as_str()
        .unwrap()
        .to_string()
}

on_both_backends!(wrong_passwords_in_a_row_disable_the_user, |m| {
    let admin = m.admin();
    admin
        .ok(
            "updateConfiguration",
            &[("name", "incorrect.login.attempts.allowed"), ("value", "3")],
        )
        .await;
    let (_, _) = keyed_user(&admin, "guessed").await;
    for attempt in 1..=2 {
        assert_eq!(login(m, "guessed", "wrong", "/").await.status, 531);
        assert_eq!(
            user_state(&admin, "guessed").await,
            "enabled",
            "after {attempt}"
        );
    }
    assert_eq!(login(m, "guessed", "wrong", "/").await.status, 531);
    assert_eq!(
        user_state(&admin, "guessed").await,
        "disabled",
        "the third locks"
    );
    assert_eq!(
        login(m, "guessed", "pw", "/").await.status,
        531,
        "the right password no longer opens a session"
    );

    // A successful login starts the count again.
    let (_, _) = keyed_user(&admin, "careful").await;
    for _ in 0..2 {
        assert_eq!(login(m, "careful", "wrong", "/").await.status, 531);
    }
    assert_eq!(login(m, "careful", "pw", "/").await.status, 200);
    for _ in 0..2 {
        assert_eq!(login(m, "careful", "wrong", "/").await.status, 531);
    }
    assert_eq!(user_state(&admin, "careful").await, "enabled");
    assert_eq!(login(m, "careful", "pw", "/").await.status, 200);
});

on_both_backends!(
    unknown_users_cost_the_same_password_hash_as_known_ones,
    |m| {
        let admin = m.admin();
        let (_, _) = keyed_user(&admin, "known").await;
        let checks = || m.app.logins.password_checks();
        for (username, domain, why) in [
            ("known", "/", "a wrong password"),
            ("nobody", "/", "an unknown user"),
            ("known", "/no/such/domain", "an unknown domain"),
            ("admin", "/", "a user without a password"),
        ] {
            let before = checks();
            let r = login(m, username, "wrong", domain).await;
            assert_eq!(r.status, 531, "{why}");
            assert_eq!(checks() - before, 1, "{why} runs exactly one hash");
            assert!(
                r.body.contains("Failed to authenticate user"),
                "{why}: {}",
                r.body
            );
        }
    }
);

on_both_backends!(the_session_cookie_is_http_only, |m| {
    let admin = m.admin();
    let (_, _) = keyed_user(&admin, "cookie").await;
    let r = login(m, "cookie", "pw", "/").await;
    assert_eq!(r.status, 200);
    let cookie = r
        .headers
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: sessionkey=")
        })
        .expect("a session cookie")
        .to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
});

/// A self-signed certificate for 127.0.0.1 in `dir`; returns the paths of
/// the certificate and key, and the certificate.
fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.join("api.crt"), dir.join("api.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path, cert.der().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_is_served_over_https_with_a_secure_session_cookie() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let data = tempfile::tempdir().unwrap();
    let (cert, key, der) = self_signed(data.path());
    let settings = vpc_manager::settings::Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.path().join("data"),
        tls_cert: Some(cert),
        tls_key: Some(key),
        ..Default::default()
    };
    let manager = vpc_manager::serve::Manager::start_with(
        settings,
        vpc_manager::provision::Backend::simulated(),
    )
    .await
    .expect("manager starts");
    let addr = manager.app.settings.listen;
    let ini = std::fs::read_to_string(&manager.cloudstack_ini).unwrap();
    assert!(ini.contains("endpoint = https://"), "{ini}");
    let app = manager.app.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(manager.serve(async move {
        let _ = stopped.await;
    }));
    // A user with a password, made through the store.
    let root = vpc_manager::store::domain::root(&app.db).await.unwrap();
    let a = vpc_manager::store::account::create(
        &app.db,
        vpc_manager::store::account::NewAccount {
            account_name: "tls".into(),
            account_type: 0,
            domain_id: root.id,
            network_domain: None,
        },
    )
    .await
    .unwrap();
    vpc_manager::store::user::create(
        &app.db,
        vpc_manager::store::user::NewUser {
            account_id: a.id,
            username: "tls".into(),
            password: Some("pw".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(der.into()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let body = "command=login&username=tls&password=pw&domain=%2F&response=json";
    let request = format!(
        "POST /client/api HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let cookie = text
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: sessionkey=")
        })
        .expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("Secure"),
        "{cookie}"
    );

    // Plain HTTP on the TLS port gets nothing.
    let plain = crate::support::api::http(addr, "GET", "/healthz", "", &[]);
    let plain = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        tokio::spawn(plain).await
    })
    .await;
    assert!(!matches!(plain, Ok(Ok(ref r)) if r.status == 200));
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

// --- Logs ---------------------------------------------------------------------

on_both_backends!(refused_requests_are_one_info_line_not_an_error, |m| {
    let logs = captured_logs();
    let admin = m.admin();
    let (_, user) = keyed_user(&admin, "refused").await;
    let me = admin.ok("listUsers", &[("username", "admin")]).await["user"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(user.call("getUserKeys", &[("id", &me)]).await.0, 531);
    assert_eq!(user.call("listZones", &[("id", "not-a-uuid")]).await.0, 431);
    assert_eq!(user.call("listConfigurations", &[]).await.0, 432);
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    for (command, status) in [
        ("getUserKeys", 531),
        ("listZones", 431),
        ("listConfigurations", 432),
    ] {
        let line = text
            .lines()
            .find(|l| {
                l.contains("api request")
                    && l.contains(&format!("command={command}"))
                    && l.contains("account=refused")
                    && l.contains(&format!("status={status}"))
            })
            .unwrap_or_else(|| panic!("no request line for {command} {status}"));
        assert!(line.contains(" INFO "), "{line}");
        assert!(line.contains("micros="), "the time: {line}");
    }
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.contains(" ERROR ") && (l.contains("status=5") || l.contains("response failed"))
        })
        .collect();
    assert!(
        errors.is_empty(),
        "refused requests logged as errors: {errors:?}"
    );
});

#[test]
fn logs_have_no_colour_codes_when_stderr_is_not_a_terminal() {
    use std::io::Read;
    let data = tempfile::tempdir().unwrap();
    let log_path = data.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vpc-manager"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path().join("data"))
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start vpc-manager");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut text = String::new();
    while std::time::Instant::now() < deadline && !text.contains("admin credentials written") {
        std::thread::sleep(std::time::Duration::from_millis(100));
        text.clear();
        std::fs::File::open(&log_path)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
    }
    // Only the child this test started.
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains("admin credentials written"), "{text}");
    assert!(!text.contains('\u{1b}'), "colour codes in a file: {text:?}");
}

// --- Expiry -------------------------------------------------------------------

/// Runs one statement with text parameters on the manager's database.
async fn exec_sql(url: &str, sql: &str, binds: &[&str]) {
    if url.starts_with("sqlite://") {
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(url)
            .await
            .unwrap();
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
        for b in binds {
            q = q.bind(b.to_string());
        }
        q.execute(&mut conn).await.unwrap();
    } else {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
            .await
            .unwrap();
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
        for b in binds {
            q = q.bind(b.to_string());
        }
        q.execute(&mut conn).await.unwrap();
    }
}

on_both_backends!(
    expired_sessions_and_old_finished_jobs_are_purged,
    |m, url| {
        let admin = m.admin();
        let mut jobs = Vec::new();
        for name in ["old", "recent"] {
            let d = id(&admin.ok("createDomain", &[("name", name)]).await, "domain");
            let started = admin.ok("deleteDomain", &[("id", &d)]).await;
            let job = started["jobid"].as_str().unwrap().to_string();
            assert_eq!(admin.wait_job(&job).await["jobstatus"], 1);
            jobs.push(job);
        }
        let (_, _) = keyed_user(&admin, "sessions").await;
        let r = login(m, "sessions", "pw", "/").await;
        assert_eq!(r.status, 200);
        let key = r.json()["loginresponse"]["sessionkey"]
            .as_str()
            .unwrap()
            .to_string();

        // The old job finished two days ago (job.expire.minutes is one day);
        // the session's idle time ran out.
        exec_sql(
            url,
            "UPDATE async_job SET completed = completed - 172800000 WHERE uuid = $1",
            &[&jobs[0]],
        )
        .await;
        exec_sql(
            url,
            "UPDATE sessions SET expires = 1 WHERE session_key = $1",
            &[&key],
        )
        .await;

        // Two managers purging at once: each row goes once, neither fails.
        let (a, b) = tokio::join!(
            vpc_manager::server::expiry::purge_once(&m.app),
            vpc_manager::server::expiry::purge_once(&m.app)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.jobs + b.jobs, 1, "only the old job");
        assert_eq!(a.sessions + b.sessions, 1, "only the expired session");
        let (status, _) = admin
            .call("queryAsyncJobResult", &[("jobid", &jobs[0])])
            .await;
        assert_eq!(status, 431, "the old job is gone");
        let recent = admin
            .ok("queryAsyncJobResult", &[("jobid", &jobs[1])])
            .await;
        assert_eq!(recent["jobstatus"], 1, "the recent one stays");
        let again = vpc_manager::server::expiry::purge_once(&m.app)
            .await
            .unwrap();
        assert_eq!(again, Default::default());
    }
);

// --- Settings that act ----------------------------------------------------------

on_both_backends!(listed_configuration_keys_are_the_ones_that_act, |m| {
    let admin = m.admin();
    let listed = admin.ok("listConfigurations", &[("pagesize", "-1")]).await;
    let names: Vec<&str> = listed["configuration"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for retired in vpc_manager::store::config::RETIRED {
        assert!(
            !names.contains(retired),
            "{retired} is listed but nothing reads it"
        );
    }
    for acting in [
        "incorrect.login.attempts.allowed",
        "job.expire.minutes",
        "api.sessionkey.check.locations",
        "enforce.post.requests.and.timestamps",
    ] {
        assert!(names.contains(&acting), "{acting} is not listed");
    }
});

/// Calls listZones with a session key in the cookie and/or the parameter.
async fn with_session(m: &TestManager, key: &str, in_cookie: bool, in_param: bool) -> u16 {
    let mut pairs = vec![
        ("command".to_string(), "listZones".to_string()),
        ("response".to_string(), "json".to_string()),
    ];
    if in_param {
        pairs.push(("sessionkey".into(), key.into()));
    }
    let target = format!("/client/api?{}", crate::support::api::query(&pairs));
    let cookie = format!("sessionkey={key}");
    let headers: Vec<(&str, &str)> = if in_cookie {
        vec![("Cookie", cookie.as_str())]
    } else {
        vec![]
    };
    crate::support::api::http(m.addr, "GET", &target, "", &headers)
        .await
        .status
}

on_both_backends!(session_key_locations_are_enforced_as_configured, |m| {
    let admin = m.admin();
    let (_, _) = keyed_user(&admin, "located").await;
    let r = login(m, "located", "pw", "/").await;
    let key = r.json()["loginresponse"]["sessionkey"]
        .as_str()
        .unwrap()
        .to_string();
    let cases = [
        (
            "CookieAndParameter",
            [(true, true, 200), (true, false, 401), (false, true, 401)],
        ),
        (
            "CookieOrParameter",
            [(true, true, 200), (true, false, 200), (false, true, 200)],
        ),
        (
            "ParameterOnly",
            [(true, true, 200), (true, false, 401), (false, true, 200)],
        ),
    ];
    for (locations, expected) in cases {
        admin
            .ok(
                "updateConfiguration",
                &[
                    ("name", "api.sessionkey.check.locations"),
                    ("value", locations),
                ],
            )
            .await;
        for (cookie, param, status) in expected {
            assert_eq!(
                with_session(m, &key, cookie, param).await,
                status,
                "{locations}: cookie {cookie}, parameter {param}"
            );
        }
    }
});

on_both_backends!(
    enforced_post_and_timestamps_refuse_get_changes_and_long_urls,
    |m| {
        let admin = m.admin();
        let expires = |minutes: i64| {
            (chrono::Utc::now() + chrono::TimeDelta::minutes(minutes))
                .format("%Y-%m-%dT%H:%M:%S+0000")
                .to_string()
        };
        // Off (the default): a GET change and a version 1 signature pass.
        assert_eq!(
            admin.call("createDomain", &[("name", "by-get")]).await.0,
            200
        );
        admin
            .ok(
                "updateConfiguration",
                &[
                    ("name", "enforce.post.requests.and.timestamps"),
                    ("value", "true"),
                ],
            )
            .await;
        let v3 = |e: String| vec![("signatureversion", "3".to_string()), ("expires", e)];
        let call = |command: &'static str, extra: Vec<(&'static str, String)>| {
            let admin = admin.clone();
            async move {
                let params: Vec<(&str, &str)> =
                    extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
                admin.call(command, &params).await.0
            }
        };
        assert_eq!(call("listZones", vec![]).await, 401, "version 1");
        assert_eq!(call("listZones", v3(expires(5))).await, 200);
        assert_eq!(
            call("listZones", v3(expires(24 * 60))).await,
            401,
            "a day ahead"
        );
        let mut get_change = v3(expires(5));
        get_change.push(("name", "by-get-2".into()));
        assert_eq!(
            call("createDomain", get_change).await,
            405,
            "a change by GET"
        );
        // The same change by POST passes.
        let mut pairs: Vec<(String, String)> = Vec::new();
        let e = expires(5);
        for (k, v) in admin.signed(
            "createDomain",
            &[
                ("name", "by-post"),
                ("signatureversion", "3"),
                ("expires", &e),
            ],
        ) {
            pairs.push((k, v));
        }
        let body = crate::support::api::query(&pairs);
        let r = crate::support::api::http(m.addr, "POST", "/client/api", &body, &[]).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
);
