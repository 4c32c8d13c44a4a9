//! This manager's membership in the cluster of managers sharing its
//! database: it joins at start, renews its heartbeat every
//! `cluster.heartbeat.interval` ms and leaves when it stops. The rows are
//! in [`crate::store::cluster`]; `listManagementServers` shows them. Also
//! what the members share: background work ([`Shares`]) and the agent CA
//! ([`share_ca`]).

use std::path::Path;
use std::time::Duration;

use crate::error::Error;
use crate::pki::{Pki, PkiFiles};
use crate::store::cluster::{self, Joining, Member, StoredCa};
use crate::store::secret::SecretBox;
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
    Duration::from_millis(u64::try_from(ms).unwrap_or_default())
}

/// Who among the live managers does a piece of background work: each
/// router's health check and resync (keyed by the router's id) and each
/// cluster-wide loop (keyed by one of the `LOOP_*` keys). Rendezvous
/// hashing: every manager computes the same owner from the same member
/// list, and a member joining or leaving moves only the keys it takes or
/// gives back.
#[derive(Clone, Debug)]
pub struct Shares {
    me: String,
    live: Vec<String>,
}

/// The key of the VPC clean-up loop.
pub const LOOP_VPC_GC: i64 = -1;
/// The key of the idle-tier shutdown loop.
pub const LOOP_NETWORK_GC: i64 = -2;
/// The key of the job and session expiry loop.
pub const LOOP_EXPIRY: i64 = -3;
/// The key of the VXLAN flood-list loop.
pub const LOOP_FLOOD_LISTS: i64 = -4;
/// The key of the host monitor loop.
pub const LOOP_HOST_MONITOR: i64 = -5;

impl Shares {
    /// `me` and the other live members (`me` counts as live: a manager
    /// reading its own row late still does its share).
    pub fn new(me: &str, mut live: Vec<String>) -> Shares {
        if !live.iter().any(|m| m == me) {
            live.push(me.to_string());
        }
        live.sort();
        live.dedup();
        Shares {
            me: me.to_string(),
            live,
        }
    }

    /// The live members as read from the database now.
    pub async fn read(db: &Db, me: &str) -> Result<Shares, Error> {
        let threshold = heartbeat_threshold_ms(db).await?;
        let rows = cluster::list(db, None, None).await?;
        Ok(Shares::of_rows(
            me,
            &rows,
            crate::store::now_ms(),
            threshold,
        ))
    }

    /// The shares at `now` of the members `rows`. A member that is leaving
    /// has none, this manager included (it only finishes its jobs); the
    /// last member leaving still does all.
    pub fn of_rows(me: &str, rows: &[Member], now: i64, threshold_ms: i64) -> Shares {
        let live = live_names(rows, now, threshold_ms);
        let leaving = rows.iter().any(|m| m.name == me && m.leaving.is_some());
        if leaving && !live.is_empty() {
            Shares {
                me: me.to_string(),
                live,
            }
        } else {
            Shares::new(me, live)
        }
    }

    /// The members that share the work, sorted.
    pub fn live(&self) -> &[String] {
        &self.live
    }

    /// The member that does the work of `key`.
    pub fn owner(&self, key: i64) -> &str {
        self.live
            .iter()
            .max_by_key(|m| weight(m, key))
            .map_or(self.me.as_str(), String::as_str)
    }

    /// Whether this manager does the work of `key`.
    pub fn mine(&self, key: i64) -> bool {
        self.owner(key) == self.me
    }
}

/// The names of the members of `rows` that share the work at `now`: Up
/// (a heartbeat within `threshold_ms`, not left) and not leaving; sorted.
pub fn live_names(rows: &[Member], now: i64, threshold_ms: i64) -> Vec<String> {
    let mut live: Vec<String> = rows
        .iter()
        .filter(|m| {
            m.leaving.is_none() && m.state_at(now, threshold_ms) == cluster::MemberState::Up
        })
        .map(|m| m.name.clone())
        .collect();
    live.sort();
    live
}

/// The members sharing the work as this manager's heartbeat last read them
/// (names, sorted; empty before the first beat), for the loops that must
/// follow a change at once: a dead or leaving manager's routers are
/// checked by the others within a heartbeat of its being seen gone, not at
/// their next round.
#[derive(Clone, Debug)]
pub struct Members(std::sync::Arc<tokio::sync::watch::Sender<Vec<String>>>);

impl Default for Members {
    fn default() -> Self {
        Members(std::sync::Arc::new(
            tokio::sync::watch::channel(Vec::new()).0,
        ))
    }
}

impl Members {
    /// Records the live members; true when they changed.
    pub fn publish(&self, live: Vec<String>) -> bool {
        self.0.send_if_modified(|current| {
            if *current == live {
                false
            } else {
                *current = live;
                true
            }
        })
    }

    /// Wakes at each change.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Vec<String>> {
        self.0.subscribe()
    }
}

/// The rendezvous weight of `member` for `key`: FNV-1a over both, mixed
/// by a 64-bit finalizer so that close keys spread.
fn weight(member: &str, key: i64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in member.bytes().chain(key.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Whether this manager runs the cluster-wide loop `key` now. A database
/// that cannot be read counts as yes: the loops' work is safe to repeat,
/// and skipping it everywhere is worse than doing it twice.
pub async fn runs_loop(db: &Db, me: &str, key: i64) -> bool {
    match Shares::read(db, me).await {
        Ok(shares) => shares.mine(key),
        Err(e) => {
            tracing::warn!(error = %e, "reading the cluster's members failed");
            true
        }
    }
}

/// Makes `<data_dir>/pki/` hold the cluster's agent CA and client identity,
/// so every manager's client certificate is accepted by every router and
/// each manager issues router certificates from the same CA. The first
/// manager of a database stores its own (created if missing; its keys
/// sealed with the database key, which every manager of one database
/// shares); the others take the stored one instead of theirs. Returns
/// whether this manager's files were replaced.
pub async fn share_ca(db: &Db, secrets: &SecretBox, data_dir: &Path) -> anyhow::Result<bool> {
    use anyhow::Context;
    Pki::load_or_create(data_dir).context("the routers' certificate authority")?;
    let local =
        PkiFiles::read(data_dir)?.context("the certificate authority's files are incomplete")?;
    let stored = match cluster::get_ca(db).await? {
        Some(stored) => stored,
        None => {
            let sealed = StoredCa {
                ca_cert: local.ca_cert.clone(),
                ca_key: secrets.seal(&local.ca_key),
                client_cert: local.client_cert.clone(),
                client_key: secrets.seal(&local.client_key),
            };
            if cluster::insert_ca(db, &sealed).await? {
                tracing::info!("this manager's agent CA is now the cluster's");
                return Ok(false);
            }
            cluster::get_ca(db)
                .await?
                .context("the cluster's CA vanished while it was being stored")?
        }
    };
    let shared = PkiFiles {
        ca_key: secrets
            .open(&stored.ca_key)
            .context("opening the cluster CA's key (is the database key the same?)")?,
        client_key: secrets
            .open(&stored.client_key)
            .context("opening the managers' client key (is the database key the same?)")?,
        ca_cert: stored.ca_cert,
        client_cert: stored.client_cert,
    };
    if shared == local {
        return Ok(false);
    }
    shared.write(data_dir)?;
    tracing::warn!(
        dir = %data_dir.join("pki").display(),
        "this manager's own agent CA was replaced by the cluster's"
    );
    Ok(true)
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
///
/// Self-fencing: a manager that has not renewed its heartbeat for half of
/// `cluster.heartbeat.threshold` (unreachable or hanging database) stops
/// its jobs and claims no more ([`crate::server::jobs::Jobs::fence`]),
/// before the others count it Down and run those jobs themselves. The
/// first renewed beat ends the fence. Every database call here has a
/// deadline, as a partitioned database hangs more often than it refuses.
pub async fn run_heartbeat(app: std::sync::Arc<crate::server::App>, member: Member) {
    let db = &app.db;
    let mut interval = Duration::from_millis(DEFAULT_HEARTBEAT_INTERVAL_MS as u64);
    let mut threshold = Duration::from_millis(DEFAULT_HEARTBEAT_THRESHOLD_MS as u64);
    let mut last_beat = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(interval).await;
        let deadline = beat_deadline(interval, threshold);
        if let Ok(read) = tokio::time::timeout(deadline, heartbeat_interval(db)).await {
            interval = read;
        }
        if let Ok(Ok(ms)) = tokio::time::timeout(deadline, heartbeat_threshold_ms(db)).await {
            threshold = Duration::from_millis(u64::try_from(ms).unwrap_or_default());
        }
        let beat = tokio::time::timeout(deadline, cluster::heartbeat(db, member.id)).await;
        let renewed = match beat {
            Ok(Ok(true)) => true,
            Ok(Ok(false)) => {
                tracing::warn!(name = %member.name, "this manager's cluster row says it left; joining again");
                match tokio::time::timeout(deadline, join(db, &member.name, &member.address)).await
                {
                    Ok(Ok(_)) => true,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "joining the cluster again failed");
                        false
                    }
                    Err(_) => false,
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cluster heartbeat failed");
                false
            }
            Err(_) => {
                tracing::warn!(
                    deadline_ms = deadline.as_millis() as u64,
                    "cluster heartbeat timed out"
                );
                false
            }
        };
        if renewed {
            last_beat = tokio::time::Instant::now();
            // Who shares the work now: the loops that follow members
            // (router checks) react to a change at once.
            let read = tokio::time::timeout(deadline, cluster::list(db, None, None)).await;
            if let Ok(Ok(rows)) = read {
                let ms = i64::try_from(threshold.as_millis()).unwrap_or(i64::MAX);
                let live = live_names(&rows, crate::store::now_ms(), ms);
                if app.members.publish(live.clone()) {
                    tracing::info!(members = ?live, "the members sharing the work changed");
                }
            }
        }
        match fence_step(app.jobs.is_fenced(), last_beat.elapsed(), threshold) {
            FenceStep::Fence => {
                let stopped = app.jobs.fence();
                tracing::error!(
                    stopped,
                    silent_ms = last_beat.elapsed().as_millis() as u64,
                    "the cluster heartbeat could not be renewed: this manager stops its jobs \
                     until it can, so that no job runs on two managers"
                );
            }
            FenceStep::Unfence => match app.jobs.unfence(&app).await {
                Ok(handled) => tracing::warn!(
                    handled,
                    "the cluster heartbeat is renewed again: jobs resume"
                ),
                Err(e) => tracing::warn!(error = %e, "ending the fence failed; trying again"),
            },
            FenceStep::Stay => {}
        }
    }
}

/// How long one heartbeat's database call may take: a quarter of the
/// threshold, and at least one interval.
fn beat_deadline(interval: Duration, threshold: Duration) -> Duration {
    (threshold / 4).max(interval)
}

/// What the heartbeat loop does about the fence.
#[derive(Debug, PartialEq, Eq)]
enum FenceStep {
    Fence,
    Unfence,
    Stay,
}

/// Fence once the last renewed beat is half a threshold old (the others
/// count this manager Down at a whole threshold); unfence at the first
/// renewed beat.
fn fence_step(fenced: bool, since_beat: Duration, threshold: Duration) -> FenceStep {
    let silent = since_beat >= threshold / 2;
    match (fenced, silent) {
        (false, true) => FenceStep::Fence,
        (true, false) => FenceStep::Unfence,
        _ => FenceStep::Stay,
    }
}

/// Records that the member began to leave: the others take its share of
/// the background work at their next heartbeat, while it finishes its jobs.
pub async fn begin_leaving(db: &Db, member: &Member) -> Result<bool, Error> {
    Ok(cluster::begin_leaving(db, member.id).await?)
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

    fn shares(me: &str, live: &[&str]) -> Shares {
        Shares::new(me, live.iter().map(|m| m.to_string()).collect())
    }

    #[test]
    fn every_member_computes_the_same_owner_and_each_key_has_one() {
        let names = ["m-a", "m-b", "m-c"];
        for key in -3..500 {
            let owners: Vec<String> = names
                .iter()
                .map(|me| shares(me, &names).owner(key).to_string())
                .collect();
            assert!(
                owners.windows(2).all(|w| w[0] == w[1]),
                "key {key}: {owners:?}"
            );
            let mine = names
                .iter()
                .filter(|me| shares(me, &names).mine(key))
                .count();
            assert_eq!(mine, 1, "key {key}");
        }
    }

    #[test]
    fn keys_spread_over_members_and_a_joiner_takes_only_its_share() {
        let three = ["m-a", "m-b", "m-c"];
        let four = ["m-a", "m-b", "m-c", "m-d"];
        let keys = 0..3000;
        let before = shares("m-a", &three);
        let after = shares("m-a", &four);
        for m in three {
            let n = keys.clone().filter(|k| before.owner(*k) == m).count();
            assert!((800..1200).contains(&n), "{m} owns {n} of 3000");
        }
        let moved: Vec<i64> = keys
            .clone()
            .filter(|k| before.owner(*k) != after.owner(*k))
            .collect();
        // Only keys that went to the new member moved.
        assert!(moved.iter().all(|k| after.owner(*k) == "m-d"));
        assert!((550..950).contains(&moved.len()), "{} moved", moved.len());
        // It leaves again: exactly those keys go back.
        assert!(
            keys.clone()
                .all(|k| before.owner(k) == shares("m-b", &three).owner(k))
        );
    }

    #[test]
    fn a_manager_alone_or_missing_from_the_list_does_its_own_share() {
        let alone = shares("m-a", &[]);
        assert!((0..100).all(|k| alone.mine(k)));
        let late = shares("m-a", &["m-b"]);
        assert!((0..100).any(|k| late.mine(k)));
    }

    fn row(name: &str, last_heartbeat: i64, stopped: Option<i64>, leaving: Option<i64>) -> Member {
        Member {
            id: 1,
            uuid: uuid::Uuid::nil(),
            name: name.into(),
            address: String::new(),
            version: String::new(),
            os_distribution: String::new(),
            kernel_version: String::new(),
            last_boot: None,
            started: 0,
            stopped,
            last_heartbeat,
            leaving,
        }
    }

    #[test]
    fn a_leaving_member_shares_no_work_and_a_silent_or_stopped_one_neither() {
        let rows = [
            row("m-a", 10_000, None, None),
            row("m-b", 10_000, None, Some(9_000)),
            row("m-c", 1_000, None, None),
            row("m-d", 10_000, Some(9_500), None),
        ];
        assert_eq!(live_names(&rows, 20_000, 15_000), ["m-a"]);
        assert_eq!(live_names(&rows, 16_000, 15_000), ["m-a", "m-c"]);
        // m-a does everything; m-b, leaving, nothing although it runs.
        assert!((0..100).all(|k| Shares::of_rows("m-a", &rows, 20_000, 15_000).mine(k)));
        assert!((0..100).all(|k| !Shares::of_rows("m-b", &rows, 20_000, 15_000).mine(k)));
        // The last one leaving still does all.
        let alone = [row("m-b", 10_000, None, Some(9_000))];
        assert!((0..100).all(|k| Shares::of_rows("m-b", &alone, 10_000, 15_000).mine(k)));
    }

    #[test]
    fn members_report_a_change_only_when_the_list_differs() {
        let members = Members::default();
        let mut rx = members.subscribe();
        assert!(members.publish(vec!["m-a".into(), "m-b".into()]));
        assert!(rx.has_changed().expect("open"));
        rx.borrow_and_update();
        assert!(!members.publish(vec!["m-a".into(), "m-b".into()]));
        assert!(!rx.has_changed().expect("open"));
        assert!(members.publish(vec!["m-a".into()]));
        assert_eq!(*rx.borrow_and_update(), ["m-a"]);
    }

    #[test]
    fn a_manager_fences_at_half_the_threshold_and_unfences_at_the_next_beat() {
        let t = Duration::from_secs(15);
        let s = Duration::from_secs;
        assert_eq!(fence_step(false, s(1), t), FenceStep::Stay);
        assert_eq!(
            fence_step(false, Duration::from_millis(7499), t),
            FenceStep::Stay
        );
        assert_eq!(
            fence_step(false, Duration::from_millis(7500), t),
            FenceStep::Fence
        );
        assert_eq!(fence_step(true, s(20), t), FenceStep::Stay);
        assert_eq!(fence_step(true, s(0), t), FenceStep::Unfence);
        assert_eq!(fence_step(false, s(0), t), FenceStep::Stay);
    }

    #[test]
    fn a_beat_may_take_a_quarter_threshold_but_never_less_than_an_interval() {
        let ms = Duration::from_millis;
        assert_eq!(beat_deadline(ms(1500), ms(15_000)), ms(3750));
        assert_eq!(beat_deadline(ms(1500), ms(2000)), ms(1500));
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
