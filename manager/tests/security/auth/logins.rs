//! Logins: the lock after wrong passwords, one hash for every attempt, the
//! session cookie, HTTPS.

use super::*;

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
    // An administrator lets the user back in, and the count starts again.
    let id = admin
        .ok("listUsers", &[("username", "guessed"), ("listall", "true")])
        .await["user"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let enabled = admin.ok("enableUser", &[("id", &id)]).await;
    assert_eq!(enabled["user"]["state"], "enabled");
    assert_eq!(login(m, "guessed", "pw", "/").await.status, 200);

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
