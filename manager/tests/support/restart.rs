//! A manager that started once (schema and admin made) and then "died": its
//! SQLite database, for tests that plant job rows before the next start.

use vpc_manager::serve::Manager;
use vpc_manager::settings::Settings;
use vpc_manager::store::{Db, domain, job, user};

/// The dead manager's data: its directory (kept alive), the settings to
/// start it again, its database and its admin user.
pub struct DeadManager {
    pub dir: tempfile::TempDir,
    pub settings: Settings,
    pub db: Db,
    pub admin: user::User,
}

/// Starts a manager on a fresh SQLite database, stops it without a
/// graceful shutdown, and opens its database.
pub async fn dead_manager() -> DeadManager {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("state.db").display()
    );
    let settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        database_url: Some(url.clone()),
        manager_id: Some("manager-1".into()),
        driver: vpc_manager::settings::DriverKind::Simulated,
        ..Settings::default()
    };
    // A first start creates the schema and the admin, then the manager "dies".
    let first = Manager::start(settings.clone()).await.unwrap();
    first.app.db.close().await;
    drop(first);

    let db = Db::connect(&url).await.unwrap();
    let root = domain::root(&db).await.unwrap();
    let admin = user::get_by_username(&db, root.id, "admin")
        .await
        .unwrap()
        .unwrap();
    DeadManager {
        dir,
        settings,
        db,
        admin,
    }
}

/// A new sub-domain `name` of ROOT and a pending `deleteDomain` job for it,
/// inserted straight into the database (owned by nobody yet).
#[allow(dead_code)]
pub async fn planted_delete_domain(
    db: &Db,
    admin: &user::User,
    name: &str,
) -> (job::Job, domain::Domain) {
    let root = domain::root(db).await.expect("root domain");
    let d = domain::create(
        db,
        domain::NewDomain {
            parent_id: root.id,
            name: name.into(),
            network_domain: None,
        },
    )
    .await
    .expect("domain");
    let j = job::insert(
        db,
        job::NewJob {
            user_id: admin.id,
            account_id: admin.account_id,
            cmd: "deleteDomain".into(),
            cmd_info: serde_json::json!({ "id": d.id, "cleanup": false }).to_string(),
            instance_type: Some("Domain".into()),
            instance_uuid: Some(d.uuid),
            sync_object: Some(format!("domain:{}", d.id)),
            uuid: None,
        },
    )
    .await
    .expect("job");
    (j, d)
}

/// A pending job of a command whose job is not run again after its manager
/// stopped (`deleteFirewallRule`, whose requests are refused, so only a job
/// planted like this one exists), inserted straight into the database: it
/// must fail as abandoned, never run (a run would fail with another text).
#[allow(dead_code)]
pub async fn planted_not_rerun(db: &Db, admin: &user::User, name: &str) -> job::Job {
    job::insert(
        db,
        job::NewJob {
            user_id: admin.id,
            account_id: admin.account_id,
            cmd: "deleteFirewallRule".into(),
            cmd_info: serde_json::json!({}).to_string(),
            instance_type: Some("FirewallRule".into()),
            instance_uuid: None,
            sync_object: Some(format!("firewall:{name}")),
            uuid: None,
        },
    )
    .await
    .expect("job")
}
