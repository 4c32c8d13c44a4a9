//! A manager that started once (schema and admin made) and then "died": its
//! SQLite database, for tests that plant job rows before the next start.

use vpc_manager::serve::Manager;
use vpc_manager::settings::Settings;
use vpc_manager::store::{Db, domain, user};

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
