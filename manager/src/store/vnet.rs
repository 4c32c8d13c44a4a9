//! Guest VLAN/VNI allocation (CloudStack table `op_dc_vnet_alloc`).
//!
//! [`populate`] creates one row per vnet of a physical network's range; [`allocate`]
//! takes the lowest free one with a single conditional UPDATE, so two callers (even on
//! two managers sharing a PostgreSQL database) never get the same vnet.

use sqlx::AssertSqlSafe;

use super::query::{Arg, bind_args};
use super::{Backend, Exec, OrNotFound, Result, StoreError, atomically, now_ms};

/// The most vnets one [`populate`] call creates.
pub const MAX_RANGE_SIZE: i64 = 65_536;
// Rows per INSERT: 2 bound values per row.
const INSERT_BATCH: usize = 500;

/// Parses a vnet range such as `100-199`, `100-199,300-399` or `42` into inclusive
/// (first, last) pairs.
pub fn parse_range(range: &str) -> Result<Vec<(i64, i64)>> {
    let bad = || StoreError::Conflict(format!("invalid vnet range {range:?}"));
    let mut out = Vec::new();
    for part in range.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let first: i64 = a.parse().map_err(|_| bad())?;
        let last: i64 = b.parse().map_err(|_| bad())?;
        if first < 0 || last < first {
            return Err(bad());
        }
        out.push((first, last));
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

/// Creates the rows of every vnet of `range` on the physical network (those that exist
/// already are kept as they are). Returns how many were added.
pub async fn populate<'a>(
    ex: impl Into<Exec<'a>>,
    physical_network_id: i64,
    range: &str,
) -> Result<u64> {
    let parts = parse_range(range)?;
    let size: i64 = parts.iter().map(|(a, b)| b - a + 1).sum();
    if size > MAX_RANGE_SIZE {
        return Err(StoreError::Conflict(format!(
            "the vnet range {range} holds more than {MAX_RANGE_SIZE} values"
        )));
    }
    let numbers: Vec<i64> = parts.iter().flat_map(|&(a, b)| a..=b).collect();
    atomically(ex.into(), move |tx| {
        Box::pin(async move {
            let mut ex = Exec::Tx(tx);
            let zone_id: Option<i64> = on_db!(&mut ex, c => {
                sqlx::query_scalar(
                    "SELECT zone_id FROM physical_network WHERE id = $1 AND removed IS NULL",
                )
                .bind(physical_network_id)
                .fetch_optional(c)
                .await?
            });
            let zone_id = zone_id.or_not_found("physical network", physical_network_id)?;
            let mut added = 0;
            for chunk in numbers.chunks(INSERT_BATCH) {
                let mut args = vec![Arg::Int(zone_id), Arg::Int(physical_network_id)];
                let mut rows = Vec::with_capacity(chunk.len());
                for &n in chunk {
                    let base = args.len();
                    args.push(Arg::Text(n.to_string()));
                    args.push(Arg::Int(n));
                    rows.push(format!("($1, $2, ${}, ${})", base + 1, base + 2));
                }
                let sql = format!(
                    "INSERT INTO op_dc_vnet_alloc (zone_id, physical_network_id, vnet, vnet_num) \
                     VALUES {} ON CONFLICT (physical_network_id, vnet) DO NOTHING",
                    rows.join(", ")
                );
                added += on_db!(&mut ex, c => {
                    bind_args!(sqlx::query(AssertSqlSafe(sql)), &args)
                        .execute(c)
                        .await?
                        .rows_affected()
                });
            }
            Ok(added)
        })
    })
    .await
}

/// Takes the lowest free vnet of the physical network for `network_id`; None when all
/// are taken. Concurrent callers never get the same vnet.
pub async fn allocate<'a>(
    ex: impl Into<Exec<'a>>,
    physical_network_id: i64,
    network_id: i64,
) -> Result<Option<String>> {
    let mut ex = ex.into();
    // PostgreSQL: a concurrent caller skips the row another one is taking instead of
    // waiting for it and then failing the `taken IS NULL` re-check. SQLite runs one
    // writer at a time, so the statement alone is atomic there.
    let lock = match ex.backend() {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE op_dc_vnet_alloc SET taken = $1, network_id = $2 WHERE id = \
         (SELECT id FROM op_dc_vnet_alloc WHERE physical_network_id = $3 AND taken IS NULL \
         ORDER BY vnet_num LIMIT 1{lock}) AND taken IS NULL RETURNING vnet"
    );
    Ok(on_db!(&mut ex, c => {
        sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(now_ms())
            .bind(network_id)
            .bind(physical_network_id)
            .fetch_optional(c)
            .await?
    }))
}

/// Returns a vnet to the pool; false when it was not taken.
pub async fn release<'a>(
    ex: impl Into<Exec<'a>>,
    physical_network_id: i64,
    vnet: &str,
) -> Result<bool> {
    let mut ex = ex.into();
    let done = on_db!(&mut ex, c => {
        sqlx::query(
            "UPDATE op_dc_vnet_alloc SET taken = NULL, network_id = NULL \
             WHERE physical_network_id = $1 AND vnet = $2 AND taken IS NOT NULL",
        )
        .bind(physical_network_id)
        .bind(vnet)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(done == 1)
}

/// Returns every vnet a network holds to the pool; how many were released.
pub async fn release_for_network<'a>(ex: impl Into<Exec<'a>>, network_id: i64) -> Result<u64> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query(
            "UPDATE op_dc_vnet_alloc SET taken = NULL, network_id = NULL WHERE network_id = $1",
        )
        .bind(network_id)
        .execute(c)
        .await?
        .rows_affected()
    }))
}

/// The vnet a network holds on a physical network, if any.
pub async fn vnet_of_network<'a>(
    ex: impl Into<Exec<'a>>,
    physical_network_id: i64,
    network_id: i64,
) -> Result<Option<String>> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "SELECT vnet FROM op_dc_vnet_alloc WHERE physical_network_id = $1 \
             AND network_id = $2 ORDER BY vnet_num LIMIT 1",
        )
        .bind(physical_network_id)
        .bind(network_id)
        .fetch_optional(c)
        .await?
    }))
}

/// How many vnets of the physical network are free.
pub async fn count_free<'a>(ex: impl Into<Exec<'a>>, physical_network_id: i64) -> Result<i64> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM op_dc_vnet_alloc WHERE physical_network_id = $1 \
             AND taken IS NULL",
        )
        .bind(physical_network_id)
        .fetch_one(c)
        .await?
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse() {
        assert_eq!(
            parse_range("100-102, 200").unwrap(),
            vec![(100, 102), (200, 200)]
        );
        assert!(parse_range("5-1").is_err());
        assert!(parse_range("").is_err());
        assert!(parse_range("a-b").is_err());
    }
}
