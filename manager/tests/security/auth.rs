//! Identity and authentication: who may read, register or create keys and
//! users, secrets at rest, logins, sessions.

//!
//! One file per area below this one: [`access`] (the role matrix of user,
//! key and account commands), [`secrets`] (secrets at rest and in logs),
//! [`logins`], [`logs`], [`expiry`] and [`settings`]; the helpers they share
//! are here.

mod access;
mod expiry;
mod logins;
mod logs;
mod secrets;
mod settings;

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
    let (a, user, client) =
        crate::support::vpc::new_account(admin, name, domain, account_type).await;
    Member {
        account: id(&a, "account"),
        account_name: name.to_string(),
        domain: domain.to_string(),
        user,
        client,
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

/// Registers keys for a new user of ROOT; returns its user id and client.
async fn keyed_user(admin: &Client, name: &str) -> (String, Client) {
    let root = admin.ok("listDomains", &[("name", "ROOT")]).await["domain"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let m = member(admin, &root, name, "0").await;
    (m.user, m.client)
}

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
