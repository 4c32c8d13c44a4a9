//! The host monitor (issue 12, "Losing a host"): one live manager of the
//! cluster (the loop lease [`crate::cluster::LOOP_HOST_MONITOR`]) asks
//! every host agent `Describe` every `ping.interval` seconds, with a short
//! deadline, and moves the host's status in the database:
//!
//! - no answer from an Up host: Disconnected (the time is kept);
//! - an answer from a Disconnected host: Up again, nothing moved;
//! - silent for `ping.interval` × `ping.timeout`: investigated, as
//!   CloudStack's investigators do (`KVMInvestigator` sends
//!   `CheckOnHostCommand` to the Up neighbours of the host's cluster): a
//!   few live hosts of its zone (its cluster's first) are asked at once,
//!   with one deadline, whether they still reach its underlay address
//!   (`CheckNeighbour`, [`crate::host::neighbour`]), and the routers the
//!   database places on it with an endpoint of their own (not relayed
//!   through its silent host agent) are asked for their state. A neighbour
//!   that reaches it, or a router that answers, means the host still
//!   forwards traffic and only its host agent is gone: it stays
//!   Disconnected and nothing moves, so no second router takes the same
//!   public addresses. When every neighbour asked answers and none reaches
//!   it, it is Down (whatever runs there: routers relayed or not, VMs
//!   only). A neighbour that does not answer leaves it Disconnected, and
//!   so does a zone none of whose other hosts answers (the manager is the
//!   likelier one cut off). With no neighbour able to tell (no underlay),
//!   the routers decide as before: all asked directly and silent (or
//!   nothing on the host) is Down, a host of VMs only stays;
//! - Down (in one transaction, conditional on Disconnected, so one manager
//!   does it once): each of its routers gets a job ([`crate::services::host::RouterHa`],
//!   on its VPC's sync object) that starts it on another Up host from the
//!   database's state; its VMs are Stopped, with no host, and those whose
//!   offering asks for HA (`offerha`) get a job that starts them on another
//!   host ([`crate::services::host::VmHa`]);
//! - an answer from a Down host: what its host agent still runs that the
//!   database has moved or stopped is destroyed first, then it is Up.
//!
//! [`step`], [`pick_neighbours`] and [`verdict`] are the pure rules;
//! [`monitor_once`] applies them to every host.
//!
//! Kept whole because the pure steps (status, verdict, neighbours) and the round applying them are
//! one state machine, tested at its end.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::Plane;
use crate::error::Error;
use crate::host::HostDriver;
use crate::orchestration::agent::RouterDriver;
use crate::store::{self, Page, config, host, router, vm};

/// How long a host agent has to answer `Describe`, and a router's agent its
/// generation probe during an investigation.
pub const PING_DEADLINE: Duration = Duration::from_secs(1);

/// How long a neighbour probes a silent host's underlay address.
pub const NEIGHBOUR_PROBE: Duration = Duration::from_secs(2);

/// How long a neighbour has to answer `CheckNeighbour` (its probe, and
/// the call around it): the one deadline of an investigation.
pub const NEIGHBOUR_DEADLINE: Duration = Duration::from_secs(3);

/// How many neighbours an investigation asks at most.
pub const MAX_NEIGHBOURS: usize = 3;

/// How long a returning host agent has to answer `Inventory`.
const INVENTORY_DEADLINE: Duration = Duration::from_secs(5);

/// `ping.interval` when unset or unreadable (seconds).
pub const DEFAULT_PING_INTERVAL_S: i64 = 2;
/// `ping.timeout` when unset or unreadable (a multiplier).
pub const DEFAULT_PING_TIMEOUT: f64 = 2.5;

/// What the monitor does with a host, from its status and the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Up and answering: record the answer.
    Ping,
    /// Disconnected and answering again: Up, nothing moved.
    Reconnect,
    /// Down and answering: destroy what moved away, then Up.
    Return,
    /// Up and silent: Disconnected.
    Disconnect,
    /// Disconnected and silent for less than the timeout.
    Wait,
    /// Disconnected and silent past the timeout: ask its routers.
    Investigate,
    /// Nothing to do (Down and silent, or a status the monitor leaves alone).
    Nothing,
}

/// The step for a host in `status` whose agent `answered` (or not), whose
/// last answer is `silent_ms` old, with the timeout `timeout_ms`.
pub fn step(status: &str, answered: bool, silent_ms: i64, timeout_ms: i64) -> Step {
    match (status, answered) {
        (host::STATUS_UP, true) => Step::Ping,
        (host::STATUS_DISCONNECTED, true) => Step::Reconnect,
        (host::STATUS_DOWN, true) => Step::Return,
        (host::STATUS_UP, false) => Step::Disconnect,
        (host::STATUS_DISCONNECTED, false) if silent_ms >= timeout_ms => Step::Investigate,
        (host::STATUS_DISCONNECTED, false) => Step::Wait,
        _ => Step::Nothing,
    }
}

/// What an investigation concludes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No neighbour reaches it, nothing on it answers: the host is gone.
    Down,
    /// A neighbour reaches it or a router on it answers: the data plane
    /// lives, only the host agent is gone.
    Alive,
    /// Nobody could tell: not fenced.
    Unknown,
}

/// What a neighbour asked about a silent host answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sight {
    /// It reaches the host's underlay address.
    Reached,
    /// It does not, within the probe's deadline.
    Unreached,
    /// It has nothing to look from (no underlay end in the zone).
    NoVantage,
    /// It did not answer the question (in time).
    Silent,
}

impl From<vpc_proto::host::v1::NeighbourSight> for Sight {
    fn from(s: vpc_proto::host::v1::NeighbourSight) -> Sight {
        use vpc_proto::host::v1::NeighbourSight as S;
        match s {
            S::Reached => Sight::Reached,
            S::Unreached => Sight::Unreached,
            S::NoVantage => Sight::NoVantage,
            // An answer the manager does not know says nothing.
            S::Unspecified => Sight::Silent,
        }
    }
}

/// What an investigation of a silent host found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    /// Routers on it asked over their own endpoints, and how many of them
    /// answered.
    pub direct_routers: usize,
    pub direct_answering: usize,
    /// Routers on it reached only through its silent host agent: they
    /// cannot be asked.
    pub relayed_routers: usize,
    /// VMs on it.
    pub vms: usize,
    /// Other hosts of its zone whose agents answered this round.
    pub live_peers: usize,
    /// What each neighbour asked saw.
    pub neighbours: Vec<Sight>,
}

/// The verdict on a silent host. Anything alive wins: a router that
/// answers or a neighbour that reaches it keeps the host (moving would put
/// its addresses on the network twice). Then the manager's own view: with
/// no other host of the zone answering, or a neighbour that did not
/// answer, nothing is fenced. A neighbour that looked and did not reach it
/// (the others unable to look) is Down. With no neighbour able to look
/// (hosts without underlay), only the routers asked directly can tell:
/// Down when none is relayed and all are silent, or when nothing runs on
/// it at all; a host of VMs only stays.
pub fn verdict(e: &Evidence) -> Verdict {
    if e.direct_answering > 0 || e.neighbours.contains(&Sight::Reached) {
        Verdict::Alive
    } else if e.live_peers == 0 || e.neighbours.contains(&Sight::Silent) {
        Verdict::Unknown
    } else if e.neighbours.contains(&Sight::Unreached)
        || (e.relayed_routers == 0 && (e.direct_routers > 0 || e.vms == 0))
    {
        // A neighbour looked and lost it; or, none able to look, the
        // routers asked directly are all silent (or nothing runs there).
        Verdict::Down
    } else {
        Verdict::Unknown
    }
}

/// A host that could be asked about a silent one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub id: i64,
    pub zone: i64,
    pub cluster: Option<i64>,
    /// Its agent answered this round.
    pub answered: bool,
}

/// The neighbours to ask about `silent`: other hosts of its zone whose
/// agents answered this round, those of its cluster first (CloudStack asks
/// the cluster's), then by id, at most [`MAX_NEIGHBOURS`].
pub fn pick_neighbours(silent: &Candidate, hosts: &[Candidate]) -> Vec<i64> {
    let mut picked: Vec<&Candidate> = hosts
        .iter()
        .filter(|c| c.answered && c.id != silent.id && c.zone == silent.zone)
        .collect();
    picked.sort_by_key(|c| {
        (
            silent.cluster.is_none() || c.cluster != silent.cluster,
            c.id,
        )
    });
    picked
        .into_iter()
        .take(MAX_NEIGHBOURS)
        .map(|c| c.id)
        .collect()
}

/// The silence after which a Disconnected host is investigated (ms).
pub fn timeout_ms(interval_s: i64, multiplier: f64) -> i64 {
    let ms = (interval_s.max(1) as f64) * 1000.0 * multiplier.max(1.0);
    ms.round() as i64
}

/// `ping.interval` (seconds).
pub async fn ping_interval(db: &store::Db) -> i64 {
    config::value_i64(db, "ping.interval")
        .await
        .ok()
        .flatten()
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_PING_INTERVAL_S)
}

async fn ping_timeout(db: &store::Db) -> f64 {
    config::value(db, "ping.timeout")
        .await
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|m| m.is_finite() && *m >= 1.0)
        .unwrap_or(DEFAULT_PING_TIMEOUT)
}

/// What one round did, by host name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MonitorReport {
    pub disconnected: Vec<String>,
    pub reconnected: Vec<String>,
    /// Investigated and left Disconnected (a router answers, or no witness).
    pub kept: Vec<String>,
    pub down: Vec<String>,
    /// Back from Down, with the stale routers and VMs destroyed.
    pub returned: Vec<String>,
    /// Routers and HA VMs whose restart elsewhere was queued.
    pub routers_queued: usize,
}

/// The host agents' clients, by URL (kept between rounds).
pub struct HostClients {
    /// The manager's data directory, holding the cluster CA that reaches
    /// host agents over TLS.
    data_dir: PathBuf,
    clients: HashMap<String, Arc<HostDriver>>,
}

impl HostClients {
    pub fn new(data_dir: PathBuf) -> Self {
        HostClients {
            data_dir,
            clients: HashMap::new(),
        }
    }

    async fn get(&mut self, plane: &Plane, url: &str) -> Result<Arc<HostDriver>, String> {
        if let Some(c) = self.clients.get(url) {
            return Ok(c.clone());
        }
        let made = if let Some(path) = url.strip_prefix("unix://") {
            HostDriver::unix(path, plane.network.endpoints.clone())
        } else {
            let pki = crate::pki::Pki::load_or_create(&self.data_dir)
                .map_err(|e| format!("the cluster CA: {e}"))?;
            crate::host::tls::host_driver(url, &Arc::new(pki), plane.network.endpoints.clone())
                .await
                .map_err(|e| e.to_string())?
        };
        let made = Arc::new(made);
        self.clients.insert(url.to_string(), made.clone());
        Ok(made)
    }
}

/// Whether the host agent behind `client` answers `Describe` within the
/// deadline (no client: it could not be reached).
async fn answers(client: Option<Arc<HostDriver>>) -> bool {
    let Some(client) = client else {
        return false;
    };
    matches!(
        tokio::time::timeout(PING_DEADLINE, HostDriver::describe(&client)).await,
        Ok(Ok(_))
    )
}

/// One round over every live host.
pub async fn monitor_once(
    plane: &Plane,
    clients: &mut HostClients,
) -> Result<MonitorReport, Error> {
    let interval = ping_interval(&plane.db).await;
    let timeout = timeout_ms(interval, ping_timeout(&plane.db).await);
    let hosts = host::list(&plane.db, &host::HostFilter::default(), Page::ALL)
        .await?
        .items;
    // Every host is asked at once: a round lasts about one deadline however
    // many hosts are silent.
    let mut drivers = Vec::new();
    for h in &hosts {
        drivers.push(clients.get(plane, &h.url).await.ok());
    }
    let replies: Vec<bool> =
        futures_util::future::join_all(drivers.iter().cloned().map(answers)).await;
    let candidates: Vec<Candidate> = hosts
        .iter()
        .zip(replies.iter())
        .map(|(h, &answered)| Candidate {
            id: h.id,
            zone: h.data_center_id,
            cluster: h.cluster_id,
            answered,
        })
        .collect();
    let mut report = MonitorReport::default();
    for (h, &answered) in hosts.iter().zip(replies.iter()) {
        let now = store::now_ms();
        let silent = now - h.last_ping.unwrap_or(h.created);
        match step(&h.status, answered, silent, timeout) {
            Step::Ping => {
                host::transit_status(&plane.db, h.id, host::STATUS_UP, host::STATUS_UP).await?;
            }
            Step::Reconnect => {
                if host::transit_status(&plane.db, h.id, host::STATUS_DISCONNECTED, host::STATUS_UP)
                    .await?
                {
                    tracing::info!(host = %h.name, "host agent answers again: Up");
                    report.reconnected.push(h.name.clone());
                }
            }
            Step::Disconnect => {
                if host::transit_status(&plane.db, h.id, host::STATUS_UP, host::STATUS_DISCONNECTED)
                    .await?
                {
                    tracing::warn!(host = %h.name, "host agent does not answer: Disconnected");
                    report.disconnected.push(h.name.clone());
                }
            }
            Step::Investigate => {
                // The other hosts of its zone that answered: when none
                // does, the manager itself is likely cut off from the
                // hosts, and nothing is fenced on its word.
                let me = candidates
                    .iter()
                    .find(|c| c.id == h.id)
                    .copied()
                    .unwrap_or(Candidate {
                        id: h.id,
                        zone: h.data_center_id,
                        cluster: h.cluster_id,
                        answered: false,
                    });
                let live_peers = candidates
                    .iter()
                    .filter(|c| c.answered && c.id != h.id && c.zone == h.data_center_id)
                    .count();
                let neighbours: Vec<(String, Arc<HostDriver>)> = pick_neighbours(&me, &candidates)
                    .into_iter()
                    .filter_map(|id| {
                        let i = hosts.iter().position(|o| o.id == id)?;
                        Some((hosts[i].name.clone(), drivers[i].clone()?))
                    })
                    .collect();
                match investigate(plane, h, live_peers, &neighbours).await? {
                    Verdict::Down => {
                        if let Some(queued) = declare_down(plane, h).await? {
                            report.routers_queued += queued;
                            report.down.push(h.name.clone());
                        }
                    }
                    Verdict::Alive | Verdict::Unknown => report.kept.push(h.name.clone()),
                }
            }
            Step::Return => {
                if take_back(plane, clients, h).await? {
                    report.returned.push(h.name.clone());
                }
            }
            Step::Wait | Step::Nothing => {}
        }
    }
    Ok(report)
}

/// The live routers the database places on host `host_id`.
async fn routers_on(db: &store::Db, host_id: i64) -> Result<Vec<router::Router>, Error> {
    Ok(
        router::list(db, &router::RouterFilter::default(), Page::ALL)
            .await?
            .items
            .into_iter()
            .filter(|r| r.host_id == Some(host_id) && r.state != router::STATE_DESTROYED)
            .collect(),
    )
}

/// The underlay address a host's agent reported (`Describe`), if any.
fn underlay_of(h: &host::Host) -> Option<Ipv4Addr> {
    let text = h.underlay_address.as_deref()?;
    text.split('/').next()?.trim().parse().ok()
}

/// Asks `neighbour` whether it still reaches `address` on `zone`'s
/// underlay; no answer within [`NEIGHBOUR_DEADLINE`] is [`Sight::Silent`].
async fn ask_neighbour(
    neighbour: &HostDriver,
    zone: uuid::Uuid,
    address: Ipv4Addr,
) -> Result<Sight, String> {
    let asked = neighbour.check_neighbour(zone, address, NEIGHBOUR_PROBE);
    match tokio::time::timeout(NEIGHBOUR_DEADLINE, asked).await {
        Ok(Ok(sight)) => Ok(sight.into()),
        Ok(Err(e)) => Err(e.0),
        Err(_) => Err(format!("no answer within {NEIGHBOUR_DEADLINE:?}")),
    }
}

/// Investigates a silent host: its neighbours are asked whether they
/// still reach it, and its routers with endpoints of their own whether
/// they still run, all at once under one deadline.
async fn investigate(
    plane: &Plane,
    h: &host::Host,
    live_peers: usize,
    neighbours: &[(String, Arc<HostDriver>)],
) -> Result<Verdict, Error> {
    let routers: Vec<router::Router> = routers_on(&plane.db, h.id)
        .await?
        .into_iter()
        .filter(|r| r.agent_endpoint.is_some() || r.state == router::STATE_RUNNING)
        .collect();
    // A router reached only through the silent host agent (a relayed
    // endpoint) cannot say whether it still runs: its neighbours tell.
    let (relayed, direct): (Vec<&router::Router>, Vec<&router::Router>) =
        routers.iter().partition(|r| {
            r.agent_endpoint
                .as_deref()
                .is_some_and(|e| e.starts_with("relay://"))
        });
    let zone = store::zone::get_by_id(&plane.db, h.data_center_id)
        .await?
        .map(|z| z.uuid);
    let target = underlay_of(h);
    let asked_routers = futures_util::future::join_all(direct.iter().map(|r| async move {
        let probe = super::monitor::probe_view(r);
        let asked = plane.network.element.agent_generation(&probe);
        matches!(tokio::time::timeout(PING_DEADLINE, asked).await, Ok(Ok(_)))
    }));
    // Without an underlay address (or zone) no neighbour can look.
    let asked_neighbours =
        futures_util::future::join_all(neighbours.iter().map(|(name, driver)| async move {
            let sight = match (zone, target) {
                (Some(zone), Some(address)) => ask_neighbour(driver, zone, address).await,
                _ => Ok(Sight::NoVantage),
            };
            (name.as_str(), sight)
        }));
    let (answering, sights) = futures_util::future::join(asked_routers, asked_neighbours).await;
    let (_, vms) = host::loads(&plane.db, &[h.id])
        .await?
        .get(&h.id)
        .copied()
        .unwrap_or_default();
    let evidence = Evidence {
        direct_routers: direct.len(),
        direct_answering: answering.iter().filter(|a| **a).count(),
        relayed_routers: relayed.len(),
        vms: usize::try_from(vms).unwrap_or(0),
        live_peers,
        neighbours: sights
            .iter()
            .map(|(_, s)| *s.as_ref().unwrap_or(&Sight::Silent))
            .collect(),
    };
    let said: Vec<String> = sights
        .iter()
        .map(|(name, s)| match s {
            Ok(s) => format!("{name}: {s:?}"),
            Err(e) => format!("{name}: Silent ({e})"),
        })
        .collect();
    let v = verdict(&evidence);
    match v {
        Verdict::Alive => tracing::warn!(
            host = %h.name, neighbours = ?said, routers_answering = evidence.direct_answering,
            "host agent silent past the timeout but the host is seen alive: kept Disconnected, nothing moved"
        ),
        Verdict::Unknown => tracing::warn!(
            host = %h.name, neighbours = ?said, live_peers, relayed = evidence.relayed_routers,
            vms = evidence.vms,
            "host agent silent past the timeout and nobody can tell whether the host runs: kept Disconnected"
        ),
        Verdict::Down => tracing::warn!(
            host = %h.name, neighbours = ?said, routers = routers.len(), vms = evidence.vms,
            "host agent silent past the timeout and no neighbour reaches the host: Down"
        ),
    }
    Ok(v)
}

/// Marks the host Down, its VMs Stopped, and queues a restart elsewhere for
/// each of its routers that ran or was starting, in one transaction
/// conditional on the host being Disconnected still. Returns how many
/// routers were queued, or None when another manager did it first.
async fn declare_down(plane: &Plane, h: &host::Host) -> Result<Option<usize>, Error> {
    let routers: Vec<router::Router> = routers_on(&plane.db, h.id)
        .await?
        .into_iter()
        .filter(|r| r.state != router::STATE_STOPPED)
        .collect();
    let mut ha_vms = Vec::new();
    for lost in host::ha_vms_on(&plane.db, h.id).await? {
        if let Some(v) = vm::get_by_id(&plane.db, lost.id).await? {
            let sync = crate::services::vm::sync_object(&plane.db, &v).await?;
            ha_vms.push((lost, sync));
        }
    }
    let by = store::bootstrap::system_user(&plane.db).await?;
    let mut tx = plane.db.begin().await?;
    if !host::transit_status(&mut tx, h.id, host::STATUS_DISCONNECTED, host::STATUS_DOWN).await? {
        return Ok(None);
    }
    for r in &routers {
        let payload = crate::services::host::RouterHaJob {
            id: r.id,
            from_host: h.id,
        };
        crate::server::jobs::queue(
            &mut tx,
            by,
            crate::server::jobs::Submit {
                cmd: <crate::services::host::RouterHa as crate::server::command::InternalJob>::NAME,
                info: json!(payload),
                instance: Some(("DomainRouter", r.uuid)),
                sync_object: Some(super::vpc_sync(r.vpc_id.unwrap_or_default())),
                custom_id: None,
            },
        )
        .await?;
    }
    let vms = host::stop_vms_on(&mut tx, h.id).await?;
    // VMs whose offering asks for HA start on another host.
    for (v, sync) in &ha_vms {
        crate::server::jobs::queue(
            &mut tx,
            by,
            crate::server::jobs::Submit {
                cmd: <crate::services::host::VmHa as crate::server::command::InternalJob>::NAME,
                info: json!(crate::services::host::VmHaJob { id: v.id }),
                instance: Some(("VirtualMachine", v.uuid)),
                sync_object: Some(sync.clone()),
                custom_id: None,
            },
        )
        .await?;
    }
    tx.commit().await?;
    tracing::warn!(
        host = %h.name,
        routers = ?routers.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        vms = ?vms.iter().map(|v| v.instance_name.as_str()).collect::<Vec<_>>(),
        ha = ?ha_vms.iter().map(|(v, _)| v.instance_name.as_str()).collect::<Vec<_>>(),
        "host agent and routers silent past the timeout: Down; its routers and HA VMs start elsewhere, its other VMs are Stopped"
    );
    Ok(Some(routers.len() + ha_vms.len()))
}

/// A Down host answers again: what its host agent still runs that the
/// database has placed elsewhere (or stopped) is destroyed, then the host
/// is Up. False when something could not be destroyed (tried next round).
async fn take_back(
    plane: &Plane,
    clients: &mut HostClients,
    h: &host::Host,
) -> Result<bool, Error> {
    let Ok(client) = clients.get(plane, &h.url).await else {
        return Ok(false);
    };
    let inventory =
        match tokio::time::timeout(INVENTORY_DEADLINE, HostDriver::inventory(&client)).await {
            Ok(Ok(inv)) => inv,
            _ => return Ok(false),
        };
    let driver = plane.network.element.driver();
    let mut clean = true;
    for entry in &inventory.routers {
        let filter = router::RouterFilter {
            name: Some(entry.name.clone()),
            ..Default::default()
        };
        let rows = router::list(&plane.db, &filter, Page::ALL).await?.items;
        let Some(r) = rows.into_iter().next() else {
            continue;
        };
        if r.host_id == Some(h.id) && r.removed.is_none() {
            continue;
        }
        let mut view = super::vpc::router_view(&plane.db, &r).await?;
        view.host = Some(h.url.clone());
        match driver.destroy_router(&view).await {
            Ok(()) => {
                tracing::warn!(host = %h.name, router = %r.name, "destroyed a router the returning host still ran: it runs elsewhere now")
            }
            Err(e) => {
                tracing::warn!(host = %h.name, router = %r.name, error = %e, "destroying a stale router on a returning host failed");
                clean = false;
            }
        }
    }
    for entry in &inventory.vms {
        let Some(v) = vm::get_by_instance_name(&plane.db, &entry.instance_name).await? else {
            continue;
        };
        if v.host_id == Some(h.id) && v.removed.is_none() && v.state == vm::STATE_RUNNING {
            continue;
        }
        let mut view = super::state::vm_view(&plane.db, &v).await?;
        view.host = Some(h.url.clone());
        match driver.destroy_vm(&view).await {
            Ok(()) => {
                tracing::warn!(host = %h.name, vm = %v.instance_name, "destroyed a VM the returning host still ran: it was stopped when the host was lost")
            }
            Err(e) => {
                tracing::warn!(host = %h.name, vm = %v.instance_name, error = %e, "destroying a stale VM on a returning host failed");
                clean = false;
            }
        }
    }
    if !clean {
        return Ok(false);
    }
    let up = host::transit_status(&plane.db, h.id, host::STATUS_DOWN, host::STATUS_UP).await?;
    if up {
        tracing::info!(host = %h.name, "lost host answers again, its stale routers and VMs destroyed: Up");
    }
    Ok(up)
}

/// Runs [`monitor_once`] every `ping.interval` seconds on the one manager
/// that holds the host monitor's loop.
pub async fn run(plane: Plane, data_dir: PathBuf, wake_jobs: impl Fn() + Send + 'static) {
    let mut clients = HostClients::new(data_dir);
    loop {
        let interval = ping_interval(&plane.db).await;
        tokio::time::sleep(Duration::from_secs(u64::try_from(interval).unwrap_or(2))).await;
        if !crate::cluster::runs_loop(&plane.db, &plane.member, crate::cluster::LOOP_HOST_MONITOR)
            .await
        {
            continue;
        }
        match monitor_once(&plane, &mut clients).await {
            Ok(report) if report.routers_queued > 0 => wake_jobs(),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "host monitor round failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_keeps_or_brings_a_host_up_and_a_down_host_is_taken_back() {
        assert_eq!(step("Up", true, 0, 5000), Step::Ping);
        assert_eq!(step("Disconnected", true, 99_000, 5000), Step::Reconnect);
        assert_eq!(step("Down", true, 99_000, 5000), Step::Return);
    }

    #[test]
    fn silence_disconnects_then_investigates_past_the_timeout() {
        assert_eq!(step("Up", false, 100, 5000), Step::Disconnect);
        assert_eq!(step("Disconnected", false, 4999, 5000), Step::Wait);
        assert_eq!(step("Disconnected", false, 5000, 5000), Step::Investigate);
        assert_eq!(step("Down", false, 99_000, 5000), Step::Nothing);
        // Statuses the monitor does not own are left alone.
        assert_eq!(step("Removed", false, 99_000, 5000), Step::Nothing);
        assert_eq!(step("Alert", true, 0, 5000), Step::Nothing);
    }

    fn seen(neighbours: &[Sight]) -> Evidence {
        Evidence {
            live_peers: 2,
            neighbours: neighbours.to_vec(),
            ..Evidence::default()
        }
    }

    #[test]
    fn a_neighbour_that_reaches_the_host_keeps_it_whatever_else_is_said() {
        use Sight::*;
        for said in [
            vec![Reached],
            vec![Unreached, Reached],
            vec![Silent, Reached, NoVantage],
        ] {
            assert_eq!(verdict(&seen(&said)), Verdict::Alive, "{said:?}");
        }
        // A router asked directly that answers keeps it too, even when
        // every neighbour lost it (a broken underlay, a living data plane).
        let e = Evidence {
            direct_routers: 1,
            direct_answering: 1,
            ..seen(&[Unreached, Unreached])
        };
        assert_eq!(verdict(&e), Verdict::Alive);
    }

    #[test]
    fn every_neighbour_answering_and_none_reaching_it_is_down_whatever_runs_there() {
        use Sight::*;
        // Relayed routers (their agents behind the silent host agent).
        let relayed = Evidence {
            relayed_routers: 2,
            vms: 1,
            ..seen(&[Unreached, Unreached])
        };
        assert_eq!(verdict(&relayed), Verdict::Down);
        // VMs only.
        let vms = Evidence {
            vms: 3,
            ..seen(&[Unreached])
        };
        assert_eq!(verdict(&vms), Verdict::Down);
        // A neighbour that has nothing to look from neither keeps nor
        // blocks: the one that looked decides.
        assert_eq!(verdict(&seen(&[NoVantage, Unreached])), Verdict::Down);
    }

    #[test]
    fn a_neighbour_that_does_not_answer_or_no_live_peer_fences_nothing() {
        use Sight::*;
        assert_eq!(verdict(&seen(&[Unreached, Silent])), Verdict::Unknown);
        assert_eq!(verdict(&seen(&[Silent, Silent])), Verdict::Unknown);
        // Every other host of the zone silent at once says more about the
        // manager than about the hosts.
        let cut_off = Evidence {
            live_peers: 0,
            direct_routers: 3,
            vms: 5,
            ..Evidence::default()
        };
        assert_eq!(verdict(&cut_off), Verdict::Unknown);
        assert_eq!(verdict(&Evidence::default()), Verdict::Unknown);
    }

    #[test]
    fn without_a_neighbour_able_to_look_the_routers_asked_directly_decide() {
        use Sight::*;
        let direct = |routers, answering, relayed, vms| Evidence {
            direct_routers: routers,
            direct_answering: answering,
            relayed_routers: relayed,
            vms,
            ..seen(&[NoVantage])
        };
        assert_eq!(verdict(&direct(2, 0, 0, 3)), Verdict::Down);
        assert_eq!(verdict(&direct(2, 1, 0, 0)), Verdict::Alive);
        // Nothing on it at all: nothing to protect, nothing to move.
        assert_eq!(verdict(&direct(0, 0, 0, 0)), Verdict::Down);
        // VMs only, or a router that cannot be asked: nobody can tell.
        assert_eq!(verdict(&direct(0, 0, 0, 4)), Verdict::Unknown);
        assert_eq!(verdict(&direct(1, 0, 1, 0)), Verdict::Unknown);
    }

    #[test]
    fn neighbours_are_live_hosts_of_the_zone_its_cluster_first_and_a_few() {
        let c = |id, zone, cluster, answered| Candidate {
            id,
            zone,
            cluster,
            answered,
        };
        let silent = c(1, 10, Some(100), false);
        let hosts = [
            silent,
            c(2, 10, Some(200), true),
            c(3, 10, Some(100), true),
            c(4, 11, Some(100), true),  // another zone
            c(5, 10, Some(100), false), // silent too
            c(6, 10, None, true),
            c(7, 10, Some(100), true),
            c(8, 10, Some(300), true),
        ];
        assert_eq!(pick_neighbours(&silent, &hosts), [3, 7, 2]);
        assert_eq!(MAX_NEIGHBOURS, 3);
        // No cluster: the zone's in id order.
        let loose = c(9, 10, None, false);
        assert_eq!(pick_neighbours(&loose, &hosts), [2, 3, 6]);
        assert!(pick_neighbours(&c(1, 12, None, false), &hosts).is_empty());
    }

    #[test]
    fn a_neighbours_answer_maps_to_a_sight_and_an_unknown_one_says_nothing() {
        use vpc_proto::host::v1::NeighbourSight as S;
        assert_eq!(Sight::from(S::Reached), Sight::Reached);
        assert_eq!(Sight::from(S::Unreached), Sight::Unreached);
        assert_eq!(Sight::from(S::NoVantage), Sight::NoVantage);
        assert_eq!(Sight::from(S::Unspecified), Sight::Silent);
    }

    #[test]
    fn the_timeout_is_the_interval_times_the_multiplier() {
        assert_eq!(timeout_ms(2, 2.5), 5000);
        assert_eq!(timeout_ms(60, 2.5), 150_000);
        assert_eq!(timeout_ms(1, 3.0), 3000);
        // Bounds: at least one second, at least once.
        assert_eq!(timeout_ms(0, 0.5), 1000);
    }
}
