//! The schema migrations of both backends, embedded in the binary.
//!
//! sqlx's `migrate!` macro needs its `macros` feature, which the workspace does not
//! enable, so the files are listed here with `include_str!` and handed to
//! `Migrator::with_migrations`. The checksums are the ones `migrate!` would record, so
//! the `_sqlx_migrations` table stays compatible with sqlx-cli. A test checks that
//! every file of the two folders is listed.

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// (version, description, SQL) of each SQLite migration, in order.
const SQLITE: &[(i64, &str, &str)] = &[
    (
        1,
        "schema",
        include_str!("../../../migrations/sqlite/0001_schema.sql"),
    ),
    (
        2,
        "vpc",
        include_str!("../../../migrations/sqlite/0002_vpc.sql"),
    ),
    (
        3,
        "vm",
        include_str!("../../../migrations/sqlite/0003_vm.sql"),
    ),
    (
        4,
        "auth",
        include_str!("../../../migrations/sqlite/0004_auth.sql"),
    ),
    (
        5,
        "vpc_params",
        include_str!("../../../migrations/sqlite/0005_vpc_params.sql"),
    ),
    (
        7,
        "vm_services",
        include_str!("../../../migrations/sqlite/0007_vm_services.sql"),
    ),
    (
        9,
        "cluster",
        include_str!("../../../migrations/sqlite/0009_cluster.sql"),
    ),
    (
        11,
        "vpn",
        include_str!("../../../migrations/sqlite/0011_vpn.sql"),
    ),
    (
        12,
        "clients",
        include_str!("../../../migrations/sqlite/0012_clients.sql"),
    ),
    (
        13,
        "integrity",
        include_str!("../../../migrations/sqlite/0013_integrity.sql"),
    ),
    (
        14,
        "vm_passwords",
        include_str!("../../../migrations/sqlite/0014_vm_passwords.sql"),
    ),
    (
        15,
        "lb_stickiness",
        include_str!("../../../migrations/sqlite/0015_lb_stickiness.sql"),
    ),
    (
        16,
        "hosts",
        include_str!("../../../migrations/sqlite/0016_hosts.sql"),
    ),
    (
        17,
        "events",
        include_str!("../../../migrations/sqlite/0017_events.sql"),
    ),
    (
        18,
        "global_acl_offering_scope",
        include_str!("../../../migrations/sqlite/0018_global_acl_offering_scope.sql"),
    ),
    (
        19,
        "offer_ha",
        include_str!("../../../migrations/sqlite/0019_offer_ha.sql"),
    ),
    (
        22,
        "cluster_leaving",
        include_str!("../../../migrations/sqlite/0022_cluster_leaving.sql"),
    ),
];

/// (version, description, SQL) of each PostgreSQL migration, in order.
const POSTGRES: &[(i64, &str, &str)] = &[
    (
        1,
        "schema",
        include_str!("../../../migrations/postgres/0001_schema.sql"),
    ),
    (
        2,
        "vpc",
        include_str!("../../../migrations/postgres/0002_vpc.sql"),
    ),
    (
        3,
        "vm",
        include_str!("../../../migrations/postgres/0003_vm.sql"),
    ),
    (
        4,
        "auth",
        include_str!("../../../migrations/postgres/0004_auth.sql"),
    ),
    (
        5,
        "vpc_params",
        include_str!("../../../migrations/postgres/0005_vpc_params.sql"),
    ),
    (
        7,
        "vm_services",
        include_str!("../../../migrations/postgres/0007_vm_services.sql"),
    ),
    (
        9,
        "cluster",
        include_str!("../../../migrations/postgres/0009_cluster.sql"),
    ),
    (
        11,
        "vpn",
        include_str!("../../../migrations/postgres/0011_vpn.sql"),
    ),
    (
        12,
        "clients",
        include_str!("../../../migrations/postgres/0012_clients.sql"),
    ),
    (
        13,
        "integrity",
        include_str!("../../../migrations/postgres/0013_integrity.sql"),
    ),
    (
        14,
        "vm_passwords",
        include_str!("../../../migrations/postgres/0014_vm_passwords.sql"),
    ),
    (
        15,
        "lb_stickiness",
        include_str!("../../../migrations/postgres/0015_lb_stickiness.sql"),
    ),
    (
        16,
        "hosts",
        include_str!("../../../migrations/postgres/0016_hosts.sql"),
    ),
    (
        17,
        "events",
        include_str!("../../../migrations/postgres/0017_events.sql"),
    ),
    (
        18,
        "global_acl_offering_scope",
        include_str!("../../../migrations/postgres/0018_global_acl_offering_scope.sql"),
    ),
    (
        19,
        "offer_ha",
        include_str!("../../../migrations/postgres/0019_offer_ha.sql"),
    ),
    (
        22,
        "cluster_leaving",
        include_str!("../../../migrations/postgres/0022_cluster_leaving.sql"),
    ),
];

fn migrator(files: &[(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        files
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// The migrator for `migrations/sqlite`.
pub(crate) fn sqlite() -> Migrator {
    migrator(SQLITE)
}

/// The migrator for `migrations/postgres`.
pub(crate) fn postgres() -> Migrator {
    migrator(POSTGRES)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_in(backend: &str) -> Vec<String> {
        let dir = format!("{}/../migrations/{backend}", env!("CARGO_MANIFEST_DIR"));
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("read {dir}: {e}"))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn every_migration_file_is_embedded_once_per_backend() {
        for (backend, list) in [("sqlite", SQLITE), ("postgres", POSTGRES)] {
            let files = files_in(backend);
            assert_eq!(files.len(), list.len(), "{backend}: {files:?}");
            for (file, (version, description, _)) in files.iter().zip(list) {
                assert_eq!(file, &format!("{version:04}_{description}.sql"));
            }
        }
        // Both backends evolve in step.
        assert_eq!(SQLITE.len(), POSTGRES.len());
    }
}
