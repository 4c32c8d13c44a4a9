//! The manager's background work on routers and tiers (DESIGN §2, issue 6):
//!
//! - router resync ([`run_resync`]): every `router.check.interval` seconds
//!   each Running router's agent is asked for its state; an agent behind the
//!   database (restarted with an empty state, or that missed a push) gets
//!   its whole configuration, so a crashed router converges without any API
//!   call. A router that stays unreachable is marked Error, and Running
//!   again once it answers with its configuration current;
//! - network GC ([`run_network_gc`]): implemented tiers with no running VM
//!   for `network.gc.wait` seconds are shut down (CloudStack's network GC:
//!   the tier leaves the router and gives its vnet back);
//! - routers left Starting or Stopping by a job whose manager died
//!   ([`converge_stuck_once`], before each resync round): started again,
//!   stopped, or destroyed with their VPC;
//! - the namespace sweeper ([`run_sweeper`]): hands the driver the names the
//!   database knows, so it can remove what a crash left behind.
//!
//! Each loop has a `*_once` function that does one round and reports it.
//!
//! (Over 400 lines: three background loops that share one reading of the
//! router table and one lock discipline; next to split, one file per loop.)

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use vpc_proto::v1 as pb;

use super::Plane;
use crate::error::Error;
use crate::orchestration::ElementError;
use crate::orchestration::agent::{AgentClient, AgentCommand, AgentError, BoxFuture};
use crate::orchestration::model::{RouterState, RouterView};
use crate::store::{self, Page, config, network, router, vm};

use super::{state, tier};

/// Consecutive failed checks after which a Running router is marked Error:
/// an agent that restarts is unreachable for a moment, which is no failure.
pub const ERROR_AFTER: u32 = 3;

/// How often the sweeper runs.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// When the sweeper first runs after the start: after the first router
/// checks, which may still destroy or restart routers a dead job left.
pub const FIRST_SWEEP_AFTER: Duration = Duration::from_secs(15);

/// Seconds between router checks when `router.check.interval` is not set.
const DEFAULT_CHECK_INTERVAL: i64 = 5;

/// Failed checks in a row, by router id (kept between rounds).
#[derive(Debug, Default)]
pub struct RouterHealth {
    misses: HashMap<i64, u32>,
}

impl RouterHealth {
    pub fn new() -> Self {
        Self::default()
    }

    /// Failed checks in a row of router `id`.
    pub fn misses(&self, id: i64) -> u32 {
        self.misses.get(&id).copied().unwrap_or_default()
    }
}

/// What one resync round did, by router name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ResyncReport {
    /// Routers whose agent had the database's generation.
    pub current: Vec<String>,
    /// Routers that were behind and got their whole configuration.
    pub resynced: Vec<String>,
    /// Routers whose check failed, with why.
    pub failed: Vec<(String, String)>,
    /// Routers marked Error in this round.
    pub marked_error: Vec<String>,
    /// Routers back from Error to Running in this round.
    pub recovered: Vec<String>,
}

/// How one router's check ended.
enum Checked {
    Current,
    Resynced,
    Failed(String),
    /// The router went away or changed state while we waited for its lock.
    Skipped,
}

fn checked_state(state: router::State) -> bool {
    matches!(state, router::State::Running | router::State::Error)
}

/// Checks every Running router, and every Error router with an agent
/// endpoint, once (see the module documentation).
pub async fn resync_once(plane: &Plane, health: &mut RouterHealth) -> Result<ResyncReport, Error> {
    let routers = router::list(&plane.db, &router::RouterFilter::default(), Page::ALL)
        .await?
        .items;
    // Each router is checked by one live manager.
    let shares = crate::cluster::Shares::read(&plane.db, &plane.member).await?;
    resync_share(plane, health, &shares, routers, None).await
}

/// One round over those of `routers` that are this manager's in `shares`;
/// `only` (router ids) narrows the checks, not what `health` keeps.
async fn resync_share(
    plane: &Plane,
    health: &mut RouterHealth,
    shares: &crate::cluster::Shares,
    routers: Vec<router::Router>,
    only: Option<&HashSet<i64>>,
) -> Result<ResyncReport, Error> {
    let mut report = ResyncReport::default();
    let routers: Vec<router::Router> = routers.into_iter().filter(|r| shares.mine(r.id)).collect();
    health
        .misses
        .retain(|id, _| routers.iter().any(|r| r.id == *id));
    let routers: Vec<router::Router> = routers
        .into_iter()
        .filter(|r| only.is_none_or(|only| only.contains(&r.id)))
        .collect();
    // Checks run side by side (each under its own VPC's lock when it needs
    // one): a round over hundreds of routers takes about as long as its
    // slowest few, so routers taken over from a dead manager are checked
    // soon after it counts as Down. Outcomes are applied in the routers'
    // order.
    let misses: Vec<u32> = routers.iter().map(|r| health.misses(r.id)).collect();
    let outcomes: Vec<Result<Option<Outcome>, Error>> =
        futures_util::stream::iter(routers.into_iter().zip(misses))
            .map(|(r, misses)| check_router(plane, r, misses))
            .buffered(CHECKS_AT_ONCE)
            .collect()
            .await;
    for outcome in outcomes {
        let Some(o) = outcome? else {
            continue;
        };
        if o.recovered {
            report.recovered.push(o.name.clone());
        }
        if o.marked_error {
            report.marked_error.push(o.name.clone());
        }
        match o.checked {
            Checked::Skipped => {}
            Checked::Current => {
                health.misses.remove(&o.id);
                report.current.push(o.name);
            }
            Checked::Resynced => {
                health.misses.remove(&o.id);
                report.resynced.push(o.name);
            }
            Checked::Failed(reason) => {
                *health.misses.entry(o.id).or_default() += 1;
                report.failed.push((o.name, reason));
            }
        }
    }
    Ok(report)
}

/// How many routers one manager checks at once.
const CHECKS_AT_ONCE: usize = 16;

/// One router's check, as the round applies it.
struct Outcome {
    id: i64,
    name: String,
    checked: Checked,
    /// Back from Error to Running.
    recovered: bool,
    /// Marked Error (this check was its ERROR_AFTER-th miss in a row).
    marked_error: bool,
}

/// Checks one router that had `misses` failed checks in a row before; None
/// when it is not due or went away.
async fn check_router(
    plane: &Plane,
    r: router::Router,
    misses: u32,
) -> Result<Option<Outcome>, Error> {
    let due = r.state == router::STATE_RUNNING
        || (r.state == router::STATE_ERROR && r.agent_endpoint.is_some());
    let Some(vpc_id) = r.vpc_id.filter(|_| due) else {
        return Ok(None);
    };
    let probed = probe_without_lock(plane, &r).await;
    if let Some(Ok(reported)) = probed
        && reported >= probe_view(&r).generation
    {
        return Ok(Some(Outcome {
            id: r.id,
            name: r.name,
            checked: Checked::Current,
            recovered: false,
            marked_error: false,
        }));
    }
    let _guard = plane.network.lock(&plane.db, vpc_id).await?;
    // Read again under the lock: a job may have stopped, replaced or
    // pushed to the router meanwhile.
    let Some(again) = router::get_by_id(&plane.db, r.id)
        .await?
        .filter(|r| r.removed.is_none() && checked_state(r.state))
    else {
        return Ok(None);
    };
    // The answer taken without the lock still holds if nothing changed.
    let unchanged = again.state == r.state
        && again.config_generation == r.config_generation
        && again.applied_generation == r.applied_generation;
    let r = again;
    let checked = match check(plane, &r, probed.filter(|_| unchanged)).await {
        Ok(checked) => checked,
        Err(e) => Checked::Failed(e.to_string()),
    };
    let mut outcome = Outcome {
        id: r.id,
        name: r.name.clone(),
        checked: Checked::Skipped,
        recovered: false,
        marked_error: false,
    };
    match &checked {
        Checked::Skipped => {}
        Checked::Current | Checked::Resynced => {
            if r.state == router::STATE_ERROR
                && router::transition(&plane.db, r.id, router::STATE_ERROR, router::STATE_RUNNING)
                    .await?
            {
                tracing::info!(router = %r.name, "router answers again; Running");
                outcome.recovered = true;
            }
        }
        Checked::Failed(reason) => {
            let misses = misses + 1;
            tracing::warn!(router = %r.name, misses, %reason, "router check failed");
            if misses >= ERROR_AFTER
                && r.state == router::STATE_RUNNING
                && router::transition(&plane.db, r.id, router::STATE_RUNNING, router::STATE_ERROR)
                    .await?
            {
                tracing::warn!(router = %r.name, "router unreachable; marked Error");
                outcome.marked_error = true;
            }
        }
    }
    outcome.checked = checked;
    Ok(Some(outcome))
}

/// The generation probe of a router, with no lock and no query, or None
/// when the router is not one to probe so (not Running, or a push whose
/// outcome is not recorded yet). A Running router whose agent reports at
/// least the stored generation (as this round read it) needs nothing more,
/// so checking a healthy router costs no database statement. Anything else
/// goes on to the locked check, which reads the row again and uses this
/// answer if the row did not change. Probing without the lock is safe: a job
/// that changed the router since the round's read records its own outcome,
/// and a change the agent missed shows as a newer stored generation at the
/// next round.
async fn probe_without_lock(plane: &Plane, r: &router::Router) -> Option<Result<u64, String>> {
    if r.state != router::STATE_RUNNING || r.applied_generation < r.config_generation {
        return None;
    }
    Some(
        plane
            .network
            .element
            .agent_generation(&probe_view(r))
            .await
            .map_err(|e| e.to_string()),
    )
}

/// What reaching a router's agent needs of it (its id and name), for the
/// generation probe and the ACL counters read.
pub(crate) fn probe_view(r: &router::Router) -> RouterView {
    RouterView {
        id: r.uuid,
        name: r.name.clone(),
        zone_id: uuid::Uuid::nil(),
        generation: u64::try_from(r.config_generation).unwrap_or_default(),
        nics: Vec::new(),
        host: None,
    }
}

/// GetState, and the whole configuration when the agent is behind; the
/// applied generation is recorded on success. The generations are compared
/// first: the router's whole state is loaded only when it must be sent.
/// `probed` is the agent's answer taken before the lock, still valid when
/// the router's row did not change meanwhile (one GetState per check).
async fn check(
    plane: &Plane,
    r: &router::Router,
    probed: Option<Result<u64, String>>,
) -> Result<Checked, Error> {
    if r.state == router::STATE_ERROR {
        let Some(state) = state::load_router(&plane.db, r).await? else {
            return Ok(Checked::Skipped);
        };
        return recover(plane, r, &state).await;
    }
    let probe = probe_view(r);
    let probed = match probed {
        Some(probed) => probed,
        None => plane
            .network
            .element
            .agent_generation(&probe)
            .await
            .map_err(|e| e.to_string()),
    };
    let reported = match probed {
        Ok(reported) => reported,
        Err(e) => return Ok(Checked::Failed(e)),
    };
    if reported >= probe.generation {
        if r.applied_generation < r.config_generation {
            router::mark_applied(&plane.db, r.id, r.config_generation).await?;
        }
        return Ok(Checked::Current);
    }
    let Some(state) = state::load_router(&plane.db, r).await? else {
        return Ok(Checked::Skipped);
    };
    match plane
        .network
        .element
        .resync_if_behind(&state, reported)
        .await
    {
        Ok(resynced) => {
            let generation = i64::try_from(state.router.generation).unwrap_or(i64::MAX);
            router::mark_applied(&plane.db, r.id, generation).await?;
            Ok(if resynced {
                Checked::Resynced
            } else {
                Checked::Current
            })
        }
        // The agent holds a newer generation than the one we read: another
        // manager pushed meanwhile, and it records what was applied.
        Err(ElementError::Agent {
            source: AgentError::StaleGeneration { .. },
            ..
        }) => Ok(Checked::Current),
        Err(e) => Ok(Checked::Failed(e.to_string())),
    }
}

/// A router in Error that answers gets its whole configuration under a new
/// generation: changes made while it was in Error were only stored (see
/// [`super::bump`]), so its generation alone cannot tell it is behind.
async fn recover(plane: &Plane, r: &router::Router, state: &RouterState) -> Result<Checked, Error> {
    let probe = AgentCommand::GetState(pb::GetStateRequest::default());
    if let Err(e) = plane
        .network
        .element
        .agent()
        .send(&state.router, probe)
        .await
    {
        return Ok(Checked::Failed(format!(
            "GetState on router {} failed: {e}",
            r.name
        )));
    }
    let mut tx = plane.db.begin().await?;
    let generation = router::bump_generation(&mut tx, r.id).await?;
    tx.commit().await?;
    let g = u64::try_from(generation).unwrap_or_default();
    match plane.network.element.resync(state, g).await {
        Ok(()) => {
            router::mark_applied(&plane.db, r.id, generation).await?;
            Ok(Checked::Resynced)
        }
        Err(e) => Ok(Checked::Failed(e.to_string())),
    }
}

/// What one round of [`converge_stuck_once`] did, by router name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StuckReport {
    /// Routers left Starting that were started again (Running or Error now).
    pub restarted: Vec<String>,
    /// Routers of a VPC that is going, destroyed.
    pub destroyed: Vec<String>,
    /// Routers left Stopping that were stopped.
    pub stopped: Vec<String>,
    /// Routers whose convergence failed, with why (tried again next round).
    pub failed: Vec<(String, String)>,
}

/// Routers left in Starting or Stopping by a job that no longer runs (its
/// manager died): a router is in such a state only while a job holding its
/// VPC's sync object works on it, so without a holder nobody will finish
/// it. A Starting router of an Enabled VPC is started again (it ends Running
/// or Error), one of a VPC that is going is destroyed, a Stopping one is
/// stopped.
pub async fn converge_stuck_once(plane: &Plane) -> Result<StuckReport, Error> {
    let mut report = StuckReport::default();
    let routers = router::list(&plane.db, &router::RouterFilter::default(), Page::ALL)
        .await?
        .items;
    let stuck =
        |r: &router::Router| r.state == router::STATE_STARTING || r.state == router::STATE_STOPPING;
    let shares = crate::cluster::Shares::read(&plane.db, &plane.member).await?;
    for r in routers
        .into_iter()
        .filter(|r| stuck(r) && shares.mine(r.id))
    {
        let Some(vpc_id) = r.vpc_id else {
            continue;
        };
        let sync = super::vpc_sync(vpc_id);
        if store::job::sync_object_holder(&plane.db, &sync)
            .await?
            .is_some()
        {
            continue;
        }
        let _guard = plane.network.lock(&plane.db, vpc_id).await?;
        let Some(r) = router::get_by_id(&plane.db, r.id)
            .await?
            .filter(|r| r.removed.is_none() && stuck(r))
        else {
            continue;
        };
        if store::job::sync_object_holder(&plane.db, &sync)
            .await?
            .is_some()
        {
            continue;
        }
        let live_vpc = store::vpc::get_by_id(&plane.db, vpc_id)
            .await?
            .filter(|v| v.removed.is_none() && v.state == store::vpc::STATE_ENABLED);
        let (done, list) = if r.state == router::STATE_STOPPING {
            (
                super::vpc::stop_router(&plane.db, &plane.network, &r).await,
                &mut report.stopped,
            )
        } else if live_vpc.is_some() {
            (
                super::vpc::start_router(&plane.db, &plane.network, &r).await,
                &mut report.restarted,
            )
        } else {
            (
                super::vpc::destroy_router(&plane.db, &plane.network, &r).await,
                &mut report.destroyed,
            )
        };
        match done {
            Ok(()) => {
                tracing::warn!(router = %r.name, was = %r.state, "router left by a job that no longer runs converged");
                list.push(r.name);
            }
            Err(e) => {
                tracing::warn!(router = %r.name, was = %r.state, error = %e, "converging a router left by a dead job failed");
                report.failed.push((r.name, e.text()));
            }
        }
    }
    Ok(report)
}

/// Runs [`resync_once`] every `router.check.interval` seconds (read every
/// second, so a change takes effect at once; 0 pauses the checks), after
/// [`converge_stuck_once`]. Beside the rounds, when the members sharing the
/// work change (the heartbeat saw one Down, leaving, or joining), the
/// routers this manager gains are checked at once ([`take_share`]), not at
/// the next round nor after the round under way.
pub async fn run_resync(plane: Plane) {
    tokio::join!(run_rounds(&plane), follow_members(&plane));
}

/// Checks the routers gained at each change of the members sharing the work.
async fn follow_members(plane: &Plane) {
    let mut members = plane.members.subscribe();
    // The share as of the last change of members (None before the first).
    let mut share: Option<crate::cluster::Shares> = None;
    while members.changed().await.is_ok() {
        let live = members.borrow_and_update().clone();
        // Misses of these first checks are not counted: the rounds count
        // them, with the router's history.
        let mut health = RouterHealth::new();
        if let Err(e) = take_share(plane, &mut health, &mut share, &live).await {
            tracing::warn!(error = %e, "checking the routers of a new share failed");
        }
    }
}

async fn run_rounds(plane: &Plane) {
    let plane = plane.clone();
    let mut health = RouterHealth::new();
    let mut waited = 0i64;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        waited += 1;
        let interval = config::value_i64(&plane.db, "router.check.interval")
            .await
            .ok()
            .flatten()
            .unwrap_or(DEFAULT_CHECK_INTERVAL);
        if interval <= 0 || waited < interval {
            continue;
        }
        waited = 0;
        if let Err(e) = converge_stuck_once(&plane).await {
            tracing::warn!(error = %e, "converging routers left by dead jobs failed");
        }
        let started = Instant::now();
        let round = resync_once(&plane, &mut health).await;
        let took = started.elapsed();
        if took > Duration::from_secs(u64::try_from(interval).unwrap_or_default()) {
            tracing::warn!(
                took_ms = took.as_millis(),
                interval_s = interval,
                "a round of router checks took longer than router.check.interval"
            );
        }
        match round {
            Ok(report) if !report.resynced.is_empty() || !report.recovered.is_empty() => {
                tracing::info!(
                    resynced = ?report.resynced,
                    recovered = ?report.recovered,
                    "routers resynced"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "router check failed"),
        }
    }
}

/// The routers that are this manager's in `now` and were not in `before`
/// (all of its share when there is no `before`), and the number it lost.
fn share_change(
    before: Option<&crate::cluster::Shares>,
    now: &crate::cluster::Shares,
    ids: impl Iterator<Item = i64>,
) -> (HashSet<i64>, usize) {
    let mut gained = HashSet::new();
    let mut lost = 0;
    for id in ids {
        let was = before.is_some_and(|b| b.mine(id));
        match (was, now.mine(id)) {
            (false, true) => {
                gained.insert(id);
            }
            (true, false) => lost += 1,
            _ => {}
        }
    }
    (gained, lost)
}

/// After the members sharing the work changed (the heartbeat's reading
/// `live`): this manager's new share is read and the routers it gained are
/// checked at once. Logs the change (routers gained and lost, when it was
/// seen, epoch ms) and when the first checks over the gained routers ended,
/// so how long a dead manager's routers go unchecked can be read from the
/// managers' own clocks.
async fn take_share(
    plane: &Plane,
    health: &mut RouterHealth,
    share: &mut Option<crate::cluster::Shares>,
    live: &[String],
) -> Result<(), Error> {
    let seen = Instant::now();
    let seen_at_ms = store::now_ms();
    let routers = router::list(&plane.db, &router::RouterFilter::default(), Page::ALL)
        .await?
        .items;
    let now = crate::cluster::Shares::read(&plane.db, &plane.member).await?;
    let (gained, lost) = share_change(share.as_ref(), &now, routers.iter().map(|r| r.id));
    let before = share.replace(now.clone());
    let gone: Vec<&String> = before
        .iter()
        .flat_map(|b| b.live())
        .filter(|m| !now.live().contains(m))
        .collect();
    tracing::info!(
        members = ?live,
        ?gone,
        gained = gained.len(),
        lost,
        seen_at_ms,
        "this manager's share of the routers changed"
    );
    if gained.is_empty() {
        return Ok(());
    }
    let report = resync_share(plane, health, &now, routers, Some(&gained)).await?;
    tracing::info!(
        gained = gained.len(),
        checked = report.current.len() + report.resynced.len(),
        failed = report.failed.len(),
        took_ms = seen.elapsed().as_millis() as u64,
        seen_at_ms,
        done_at_ms = store::now_ms(),
        "first checks of the routers gained finished"
    );
    Ok(())
}

/// When each implemented tier was first seen without a running VM, by tier
/// id (kept between rounds).
#[derive(Debug, Default)]
pub struct IdleTiers {
    since: HashMap<i64, Instant>,
}

impl IdleTiers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether tier `id` is waiting out `network.gc.wait`.
    pub fn is_idle(&self, id: i64) -> bool {
        self.since.contains_key(&id)
    }
}

/// What one network GC round did, by tier UUID.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// Idle tiers still within `network.gc.wait`.
    pub waiting: Vec<String>,
    /// Tiers shut down.
    pub shut_down: Vec<String>,
    /// Tiers whose shutdown failed, with why (tried again next round).
    pub failed: Vec<(String, String)>,
}

/// VM states that keep a tier in use (a stopping VM still has its NICs up).
const ACTIVE_VM: [vm::State; 3] = [vm::STATE_STARTING, vm::STATE_RUNNING, vm::STATE_STOPPING];

async fn in_use(db: &store::Db, tier_id: i64) -> Result<bool, Error> {
    Ok(vm::vms_on_network(db, tier_id)
        .await?
        .iter()
        .any(|v| ACTIVE_VM.contains(&v.state)))
}

/// One network GC round: implemented VPC tiers without a running VM are
/// remembered as idle; those idle for `network.gc.wait` seconds are shut
/// down ([`tier::shutdown_tier`]).
pub async fn network_gc_once(
    app: &crate::server::App,
    idle: &mut IdleTiers,
) -> Result<GcReport, Error> {
    let db = &app.db;
    let wait = config::value_i64(db, "network.gc.wait")
        .await?
        .unwrap_or(600)
        .max(0);
    let wait = Duration::from_secs(u64::try_from(wait).unwrap_or_default());
    let tiers = network::list(
        db,
        &network::NetworkFilter {
            state: Some(network::STATE_IMPLEMENTED.into()),
            traffic_type: Some(network::TRAFFIC_GUEST.into()),
            in_vpc: Some(true),
            ..Default::default()
        },
        Page::ALL,
    )
    .await?
    .items;
    idle.since.retain(|id, _| tiers.iter().any(|t| t.id == *id));
    let now = Instant::now();
    let mut report = GcReport::default();
    for t in tiers {
        let Some(vpc_id) = t.vpc_id else {
            continue;
        };
        if in_use(db, t.id).await? {
            idle.since.remove(&t.id);
            continue;
        }
        let since = *idle.since.entry(t.id).or_insert(now);
        if now.duration_since(since) < wait {
            report.waiting.push(t.uuid.to_string());
            continue;
        }
        let lock = app.network.lock(db, vpc_id).await?;
        // A VM may have started while we waited for the lock.
        if in_use(db, t.id).await? {
            idle.since.remove(&t.id);
            continue;
        }
        match tier::shutdown_tier(&lock, t.id).await {
            Ok(_) => {
                tracing::info!(tier = %t.uuid, name = %t.name, "idle tier shut down");
                idle.since.remove(&t.id);
                report.shut_down.push(t.uuid.to_string());
            }
            Err(e) => {
                tracing::warn!(tier = %t.uuid, error = %e, "shutting an idle tier down failed");
                report.failed.push((t.uuid.to_string(), e.to_string()));
            }
        }
    }
    Ok(report)
}

/// Runs [`network_gc_once`] every `network.gc.interval` seconds (read every
/// second, so a change takes effect at once), on one live manager of the
/// cluster.
pub async fn run_network_gc(app: std::sync::Arc<crate::server::App>) {
    let mut idle = IdleTiers::new();
    let mut waited = 0i64;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        waited += 1;
        let interval = config::value_i64(&app.db, "network.gc.interval")
            .await
            .ok()
            .flatten()
            .unwrap_or(600)
            .max(1);
        if waited < interval {
            continue;
        }
        waited = 0;
        if !crate::cluster::runs_loop(&app.db, app.jobs.owner(), crate::cluster::LOOP_NETWORK_GC)
            .await
        {
            // Another manager runs it; what this one saw idle is stale.
            idle = IdleTiers::new();
            continue;
        }
        if let Err(e) = network_gc_once(&app, &mut idle).await {
            tracing::warn!(error = %e, "network garbage collection failed");
        }
    }
}

/// Removes the namespaces of the driver's prefix whose router or VM the
/// database does not know; gets the names the database knows, returns what
/// it removed. Provided by the driver.
pub type Sweep = Arc<dyn Fn(Vec<String>) -> BoxFuture<'static, Vec<String>> + Send + Sync>;

/// The names of every live router and every VM not yet expunged: the
/// namespaces the driver may keep.
pub async fn known_names(plane: &Plane) -> Result<Vec<String>, Error> {
    let routers = router::list(&plane.db, &router::RouterFilter::default(), Page::ALL).await?;
    let vms = vm::list(&plane.db, &vm::VmFilter::default(), Page::ALL).await?;
    let mut names: Vec<String> = routers
        .items
        .into_iter()
        .map(|r| r.name)
        .chain(vms.items.into_iter().map(|v| v.instance_name))
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// One sweep: the known names to `sweep`; returns what it removed.
pub async fn sweep_once(plane: &Plane, sweep: &Sweep) -> Result<Vec<String>, Error> {
    let names = known_names(plane).await?;
    Ok(sweep(names).await)
}

/// Runs [`sweep_once`] [`FIRST_SWEEP_AFTER`] after the start (a manager
/// restarted after a crash removes what the dead one left within a minute),
/// then every [`SWEEP_INTERVAL`].
pub async fn run_sweeper(plane: Plane, sweep: Sweep) {
    let mut wait = FIRST_SWEEP_AFTER;
    loop {
        tokio::time::sleep(wait).await;
        wait = SWEEP_INTERVAL;
        match sweep_once(&plane, &sweep).await {
            Ok(removed) if !removed.is_empty() => {
                tracing::info!(?removed, "namespaces the database does not know removed");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "namespace sweep failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Shares;

    fn shares(me: &str, live: &[&str]) -> Shares {
        Shares::new(me, live.iter().map(|m| m.to_string()).collect())
    }

    #[test]
    fn a_gone_members_routers_are_gained_by_the_others_and_nothing_else_moves() {
        let three = ["m-a", "m-b", "m-c"];
        let two = ["m-a", "m-b"];
        let ids = 0..600i64;
        let (gained, lost) = share_change(
            Some(&shares("m-a", &three)),
            &shares("m-a", &two),
            ids.clone(),
        );
        assert_eq!(lost, 0);
        // Exactly the routers m-c checked that m-a takes now.
        let expected: HashSet<i64> = ids
            .clone()
            .filter(|k| shares("m-a", &three).owner(*k) == "m-c" && shares("m-a", &two).mine(*k))
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(gained, expected);
        // m-c comes back: m-a gives those back and gains nothing.
        let (gained, lost) = share_change(
            Some(&shares("m-a", &two)),
            &shares("m-a", &three),
            ids.clone(),
        );
        assert!(gained.is_empty());
        assert_eq!(lost, expected.len());
    }

    #[test]
    fn without_an_earlier_share_the_whole_share_is_gained() {
        let now = shares("m-a", &["m-a", "m-b"]);
        let (gained, lost) = share_change(None, &now, 0..100);
        assert_eq!(lost, 0);
        assert_eq!(gained, (0..100).filter(|k| now.mine(*k)).collect());
    }
}
