//! One agent CA per cluster, on PostgreSQL: the first manager's CA is
//! stored (keys sealed with the database key), every later manager takes
//! it instead of its own, and a manager with another database key cannot
//! open it.

mod support;

use vpc_manager::cluster::share_ca;
use vpc_manager::pki::{Pki, PkiFiles};
use vpc_manager::store::secret::SecretBox;
use vpc_manager::store::{Db, cluster};

use support::postgres::fresh_database;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_manager_of_a_database_uses_the_first_managers_ca() {
    let url = fresh_database().await;
    let db = Db::connect(&url).await.expect("database");
    let key = SecretBox::generate_key_text();
    let secrets = SecretBox::from_key_text(&key).expect("database key");
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

    // B made a CA of its own before it joined.
    Pki::load_or_create(dir_b.path()).expect("B's own CA");
    let own_b = PkiFiles::read(dir_b.path()).unwrap().expect("B's files");

    assert!(
        !share_ca(&db, &secrets, dir_a.path())
            .await
            .expect("A shares")
    );
    let files_a = PkiFiles::read(dir_a.path()).unwrap().expect("A's files");
    assert!(
        share_ca(&db, &secrets, dir_b.path())
            .await
            .expect("B takes it")
    );
    let files_b = PkiFiles::read(dir_b.path()).unwrap().expect("B's files");
    assert_eq!(files_a, files_b, "B now holds A's CA and client identity");
    assert_ne!(files_b, own_b);
    // Again: nothing to replace.
    assert!(!share_ca(&db, &secrets, dir_b.path()).await.expect("again"));

    // What B issues, A's identity and CA accept, and the other way round.
    let (pki_a, pki_b) = (
        Pki::load_or_create(dir_a.path()).unwrap(),
        Pki::load_or_create(dir_b.path()).unwrap(),
    );
    assert_eq!(pki_a.ca_pem(), pki_b.ca_pem());
    assert_eq!(pki_a.client_identity(), pki_b.client_identity());
    let cert = pki_b.issue_router("r-7-VM").expect("a router certificate");
    assert_eq!(cert.ca_pem, pki_a.ca_pem());

    // The keys are sealed in the database.
    let stored = cluster::get_ca(&db).await.unwrap().expect("stored CA");
    assert!(
        !stored.ca_key.contains("PRIVATE KEY"),
        "the CA key is sealed"
    );
    assert!(!stored.client_key.contains("PRIVATE KEY"));
    assert_eq!(stored.ca_cert, files_a.ca_cert);

    // A manager with another database key cannot use it.
    let other = SecretBox::from_key_text(&SecretBox::generate_key_text()).unwrap();
    let dir_c = tempfile::tempdir().unwrap();
    let err = share_ca(&db, &other, dir_c.path())
        .await
        .expect_err("a wrong key opens nothing");
    assert!(format!("{err:#}").contains("database key"), "{err:#}");
    db.close().await;
}
