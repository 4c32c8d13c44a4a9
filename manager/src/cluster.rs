//! This manager's membership in the cluster of managers sharing its
//! database: it joins at start, renews its heartbeat every
//! `cluster.heartbeat.interval` ms and leaves when it stops. The rows are
//! in [`crate::store::cluster`]; `listManagementServers` shows them.

use std::time::Duration;

use crate::error::Error;
use crate::store::cluster::{self, Joining, Member};
use crate::store::{Db, config};

/// `cluster.heartbeat.interval` when unset or unreadable (ms).
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: i64 = 1500;
/// `cluster.heartbeat.threshold` when unset or unreadable (ms).
pub const DEFAULT_HEARTBEAT_THRESHOLD_MS: i64 = 15_000;

/// How long a manager may stay silent before it counts as Down.
pub async fn heartbeat_threshold_ms(db: &Db) -> Result<i64, Error> {
    Ok(config::value_i64(db, "cluster.heartbeat.threshold")
        .await?
        .filter(|ms| *ms > 0)
        .unwrap_or(DEFAULT_HEARTBEAT_THRESHOLD_MS))
}

/// How often a manager beats (and looks for gone managers' work).
pub async fn heartbeat_interval(db: &Db) -> Duration {
    let ms = config::value_i64(db, "cluster.heartbeat.interval")
        .await
        .ok()
        .flatten()
        .filter(|ms| *ms > 0)
        .unwrap_or(DEFAULT_HEARTBEAT_INTERVAL_MS);
    Duration::from_millis(u64::try_from(ms).unwrap_or(1500))
}

/// Joins the cluster as `name`, listening at `address`.
pub async fn join(db: &Db, name: &str, address: &str) -> Result<Member, Error> {
    let who = Joining {
        name: name.to_string(),
        address: address.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        os_distribution: os_distribution().unwrap_or_default(),
        kernel_version: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_default(),
        last_boot: last_boot_ms(),
    };
    Ok(cluster::join(db, &who).await?)
}

/// Renews the member's heartbeat until the task is aborted. A database
/// that cannot be reached is logged and tried again at the next beat; a
/// row that says the member left (another start under the same name took
/// it over, or an operator) is joined again.
pub async fn run_heartbeat(db: Db, member: Member) {
    loop {
        tokio::time::sleep(heartbeat_interval(&db).await).await;
        match cluster::heartbeat(&db, member.id).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(name = %member.name, "this manager's cluster row says it left; joining again");
                if let Err(e) = join(&db, &member.name, &member.address).await {
                    tracing::warn!(error = %e, "joining the cluster again failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cluster heartbeat failed"),
        }
    }
}

/// Records that the member left.
pub async fn leave(db: &Db, member: &Member) -> Result<(), Error> {
    Ok(cluster::leave(db, member.id).await?)
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// `PRETTY_NAME` of `/etc/os-release`.
fn os_distribution() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    pretty_name(&text)
}

fn pretty_name(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|line| {
        line.strip_prefix("PRETTY_NAME=")
            .map(|v| v.trim().trim_matches('"').to_string())
    })
}

/// The host's boot time (epoch ms), from `btime` in `/proc/stat`.
fn last_boot_ms() -> Option<i64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    boot_time_ms(&stat)
}

fn boot_time_ms(stat: &str) -> Option<i64> {
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|secs| secs.trim().parse::<i64>().ok())
        .map(|secs| secs.saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_distribution_is_os_releases_pretty_name() {
        let text = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            pretty_name(text).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(pretty_name("NAME=x\n"), None);
    }

    #[test]
    fn the_boot_time_is_btime_in_ms() {
        assert_eq!(
            boot_time_ms("cpu 1 2\nbtime 1700000000\n"),
            Some(1_700_000_000_000)
        );
        assert_eq!(boot_time_ms("cpu 1 2\n"), None);
    }
}
