//! Running a store test body on both backends.

/// Declares a test whose body runs on a fresh SQLite file, then on a fresh
/// database of the shared throw-away PostgreSQL cluster.
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($name:ident, |$db:ident, $url:ident| $body:block) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            #[allow(unused_variables)]
            async fn body($db: ::vpc_manager::store::Db, $url: String) $body

            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("state.db").display());
            eprintln!("--- {} on SQLite ({url})", stringify!($name));
            let db = ::vpc_manager::store::Db::connect(&url).await.expect("open the SQLite store");
            assert_eq!(db.backend(), ::vpc_manager::store::Backend::Sqlite);
            body(db.clone(), url).await;
            db.close().await;

            let cluster = tokio::task::spawn_blocking($crate::support::postgres::Cluster::shared)
                .await
                .expect("start the PostgreSQL test cluster");
            let url = cluster.create_database().await;
            eprintln!("--- {} on PostgreSQL ({url})", stringify!($name));
            let db = ::vpc_manager::store::Db::connect(&url).await.expect("open the PostgreSQL store");
            assert_eq!(db.backend(), ::vpc_manager::store::Backend::Postgres);
            body(db.clone(), url).await;
            db.close().await;
        }
    };
}

#[allow(unused_imports)]
pub(crate) use on_both_backends;
