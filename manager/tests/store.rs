//! The store against both backends: every test body runs on a fresh SQLite file and on a
//! fresh database of a throw-away PostgreSQL cluster (tests/support/postgres.rs).
//! The tests of each topic live in tests/store/.

mod support;

use support::store::on_both_backends;

use vpc_manager::store::account::{self, NewAccount};
use vpc_manager::store::domain::{self, DomainFilter, NewDomain};
use vpc_manager::store::job::NewJob;
use vpc_manager::store::user::{self, NewUser};
use vpc_manager::store::{Backend, Db, Page, StoreError, bootstrap, offering};

#[path = "store/hosts.rs"]
mod hosts;
#[path = "store/identity.rs"]
mod identity;
#[path = "store/jobs.rs"]
mod jobs;
#[path = "store/resources.rs"]
mod resources;

async fn child_domain(db: &Db, parent_id: i64, name: &str) -> domain::Domain {
    domain::create(
        db,
        NewDomain {
            parent_id,
            name: name.into(),
            network_domain: None,
        },
    )
    .await
    .expect("create domain")
}

async fn new_account(db: &Db, domain_id: i64, name: &str, account_type: i64) -> account::Account {
    account::create(
        db,
        NewAccount {
            account_name: name.into(),
            account_type,
            domain_id,
            network_domain: None,
        },
    )
    .await
    .expect("create account")
}

async fn new_user(db: &Db, account_id: i64, name: &str) -> user::User {
    user::create(
        db,
        NewUser {
            account_id,
            username: name.into(),
            ..NewUser::default()
        },
    )
    .await
    .expect("create user")
}

fn job_for(u: &user::User, cmd: &str, sync_object: Option<&str>) -> NewJob {
    NewJob {
        user_id: u.id,
        account_id: u.account_id,
        cmd: cmd.into(),
        cmd_info: "{}".into(),
        sync_object: sync_object.map(str::to_string),
        ..NewJob::default()
    }
}

on_both_backends!(migrations_apply_and_seed_the_builtins_once, |db, url| {
    let root = domain::root(&db).await.unwrap();
    assert_eq!(
        (root.path.as_str(), root.level, root.parent_id),
        ("/", 0, None)
    );
    assert_eq!(root.display_path(), "ROOT");
    let system = account::get_by_name(&db, root.id, bootstrap::SYSTEM_ACCOUNT)
        .await
        .unwrap()
        .expect("system account");
    assert_eq!(system.account_type, account::TYPE_ADMIN);

    let vpc_off = offering::vpc_offering_by_unique_name(&db, bootstrap::DEFAULT_VPC_OFFERING)
        .await
        .unwrap()
        .expect("default VPC offering");
    assert_eq!(vpc_off.state, "Enabled");
    assert!(vpc_off.is_default && !vpc_off.redundant_router);
    let services = offering::vpc_offering_services(&db, vpc_off.id)
        .await
        .unwrap();
    for s in [
        "Dhcp",
        "Dns",
        "SourceNat",
        "PortForwarding",
        "Lb",
        "UserData",
        "StaticNat",
        "NetworkACL",
        "Vpn",
    ] {
        assert!(
            services
                .iter()
                .any(|sp| sp.service == s && sp.provider == "VpcVirtualRouter"),
            "{s} missing from {services:?}"
        );
    }
    let tier = offering::network_offering_by_unique_name(&db, bootstrap::DEFAULT_VPC_TIER_OFFERING)
        .await
        .unwrap()
        .expect("VPC tier offering");
    assert!(tier.for_vpc && tier.is_default);
    let for_vpc = offering::list_network_offerings(
        &db,
        &offering::OfferingFilter {
            for_vpc: Some(true),
            ..Default::default()
        },
        Page::ALL,
    )
    .await
    .unwrap();
    assert_eq!(for_vpc.total, 2);

    if let Db::Sqlite(pool) = &db {
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(pool)
            .await
            .unwrap();
        let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!((mode.as_str(), foreign_keys), ("wal", 1));
    }

    // Connecting again (as a restarted or second manager does) adds nothing; a plain
    // file path names the same SQLite database as its sqlite:// URL.
    let again_url = match db.backend() {
        Backend::Sqlite => url["sqlite://".len()..url.find('?').unwrap()].to_string(),
        Backend::Postgres => url.clone(),
    };
    let again = Db::connect(&again_url).await.expect("reconnect");
    let offerings = offering::list_vpc_offerings(&again, &Default::default(), Page::ALL)
        .await
        .unwrap();
    assert_eq!(offerings.total, 1);
    let domains = domain::list(&again, &DomainFilter::default(), Page::ALL)
        .await
        .unwrap();
    assert_eq!(domains.total, 1);
    again.close().await;
});

on_both_backends!(transactions_commit_together_or_not_at_all, |db, url| {
    let root = domain::root(&db).await.unwrap();
    let root_id = root.id;
    let failed: Result<(), StoreError> = db
        .transaction(|tx| {
            Box::pin(async move {
                domain::create(
                    &mut *tx,
                    NewDomain {
                        parent_id: root_id,
                        name: "ghost".into(),
                        network_domain: None,
                    },
                )
                .await?;
                Err(StoreError::Conflict(
                    "validation failed after the first write".into(),
                ))
            })
        })
        .await;
    assert!(failed.is_err());
    assert!(domain::get_by_path(&db, "/ghost/").await.unwrap().is_none());

    let mut tx = db.begin().await.unwrap();
    let d = domain::create(
        &mut tx,
        NewDomain {
            parent_id: root_id,
            name: "real".into(),
            network_domain: None,
        },
    )
    .await
    .unwrap();
    let a = account::create(
        &mut tx,
        NewAccount {
            account_name: "in-tx".into(),
            account_type: 0,
            domain_id: d.id,
            network_domain: None,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        account::get_by_uuid(&db, a.uuid)
            .await
            .unwrap()
            .unwrap()
            .domain_path,
        "/real/"
    );
});
