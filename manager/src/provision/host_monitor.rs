//! The host monitor (issue 12, "Losing a host"): one live manager of the
//! cluster (the loop lease [`crate::cluster::LOOP_HOST_MONITOR`]) asks
//! every host agent `Describe` every `ping.interval` seconds, with a short
//! deadline, and moves the host's status in the database:
//!
//! - no answer from an Up host: Disconnected (the time is kept);
//! - an answer from a Disconnected host: Up again, nothing moved;
//! - silent for `ping.interval` × `ping.timeout`: investigated. The routers
//!   the database places on it are asked for their state over their own
//!   agent endpoints, as the router monitor reaches them (CloudStack's
//!   investigators ask the host's neighbours the same question: is it
//!   really gone?). A router that answers means the host still forwards
//!   traffic, only its host agent is gone: the host stays Disconnected and
//!   nothing moves, so no second router takes the same public addresses.
//!   Only a host whose agent and routers are all silent is Down; a host
//!   with VMs but no router has no witness and stays Disconnected, and so
//!   does every host of a zone none of whose hosts answers (the manager is
//!   the likelier one cut off);
//! - Down (in one transaction, conditional on Disconnected, so one manager
//!   does it once): each of its routers gets a job ([`crate::services::host::RouterHa`],
//!   on its VPC's sync object) that starts it on another Up host from the
//!   database's state; its VMs are Stopped, with no host, and those whose
//!   offering asks for HA (`offerha`) get a job that starts them on another
//!   host ([`crate::services::host::VmHa`]);
//! - an answer from a Down host: what its host agent still runs that the
//!   database has moved or stopped is destroyed first, then it is Up.
//!
//! [`step`] and [`verdict`] are the pure rules; [`monitor_once`] applies
//! them to every host.

use std::collections::HashMap;
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
    /// Agent and routers silent: the host is gone.
    Down,
    /// A router answers: the data plane lives, only the host agent is gone.
    Alive,
    /// Nothing on it can tell (VMs, no router): not fenced.
    Unknown,
}

/// The verdict on a silent host with `routers` routers placed on it, of
/// which `answering` answered, `vms` VMs, and `peers` other hosts of its
/// zone that answered this round.
pub fn verdict(routers: usize, answering: usize, vms: usize, peers: usize) -> Verdict {
    if answering > 0 {
        Verdict::Alive
    } else if peers == 0 || (routers == 0 && vms > 0) {
        Verdict::Unknown
    } else {
        Verdict::Down
    }
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
    let mut asked = Vec::new();
    for h in &hosts {
        asked.push(answers(clients.get(plane, &h.url).await.ok()));
    }
    let replies: Vec<bool> = futures_util::future::join_all(asked).await;
    let mut report = MonitorReport::default();
    for (h, &answered) in hosts.iter().zip(replies.iter()) {
        // The other hosts of its zone that answered: when none does, the
        // manager itself is likely cut off from the hosts, and nothing is
        // fenced on its word.
        let peers = hosts
            .iter()
            .zip(replies.iter())
            .filter(|(o, up)| **up && o.id != h.id && o.data_center_id == h.data_center_id)
            .count();
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
            Step::Investigate => match investigate(plane, h, peers).await? {
                Verdict::Down => {
                    if let Some(queued) = declare_down(plane, h).await? {
                        report.routers_queued += queued;
                        report.down.push(h.name.clone());
                    }
                }
                Verdict::Alive | Verdict::Unknown => report.kept.push(h.name.clone()),
            },
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

/// Asks the routers placed on a silent host whether they still run.
async fn investigate(plane: &Plane, h: &host::Host, peers: usize) -> Result<Verdict, Error> {
    let routers: Vec<router::Router> = routers_on(&plane.db, h.id)
        .await?
        .into_iter()
        .filter(|r| r.agent_endpoint.is_some() || r.state == router::STATE_RUNNING)
        .collect();
    // A router reached only through the silent host agent (a relayed
    // endpoint) cannot say whether it still runs: starting it elsewhere
    // could put its addresses on the network twice, so nothing moves.
    let relayed = routers
        .iter()
        .filter(|r| {
            r.agent_endpoint
                .as_deref()
                .is_some_and(|e| e.starts_with("relay://"))
        })
        .count();
    if relayed > 0 {
        tracing::warn!(
            host = %h.name, relayed,
            "host agent silent past the timeout, and its routers are reached only through it: kept Disconnected"
        );
        return Ok(Verdict::Unknown);
    }
    // Asked together, not one after another: a host of silent routers
    // would otherwise take a deadline per router to investigate.
    let answering = futures_util::future::join_all(routers.iter().map(|r| async move {
        let probe = super::monitor::probe_view(r);
        let asked = plane.network.element.agent_generation(&probe);
        matches!(tokio::time::timeout(PING_DEADLINE, asked).await, Ok(Ok(_)))
    }))
    .await
    .into_iter()
    .filter(|answered| *answered)
    .count();
    let (_, vms) = host::loads(&plane.db, &[h.id])
        .await?
        .get(&h.id)
        .copied()
        .unwrap_or_default();
    let v = verdict(
        routers.len(),
        answering,
        usize::try_from(vms).unwrap_or(0),
        peers,
    );
    match v {
        Verdict::Alive => tracing::warn!(
            host = %h.name, answering, routers = routers.len(),
            "host agent silent past the timeout but its routers answer: kept Disconnected, nothing moved"
        ),
        Verdict::Unknown => tracing::warn!(
            host = %h.name, vms, peers,
            "host agent silent past the timeout, and no router on it or no other host of its zone answering to tell: kept Disconnected"
        ),
        Verdict::Down => {}
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

    #[test]
    fn a_host_is_down_only_when_no_router_on_it_answers_and_something_can_tell() {
        assert_eq!(verdict(2, 0, 3, 1), Verdict::Down);
        assert_eq!(verdict(1, 0, 0, 2), Verdict::Down);
        // Nothing on it at all: nothing to protect, nothing to move.
        assert_eq!(verdict(0, 0, 0, 1), Verdict::Down);
        // One router still answers: its data plane forwards, nothing moves.
        assert_eq!(verdict(2, 1, 0, 1), Verdict::Alive);
        // VMs only: no witness, the host is not fenced.
        assert_eq!(verdict(0, 0, 4, 1), Verdict::Unknown);
    }

    #[test]
    fn a_manager_that_reaches_no_host_of_the_zone_fences_none() {
        // Every host silent at once says more about the manager than the
        // hosts: nothing is declared Down (and no router could move).
        assert_eq!(verdict(3, 0, 5, 0), Verdict::Unknown);
        assert_eq!(verdict(0, 0, 0, 0), Verdict::Unknown);
        assert_eq!(verdict(1, 1, 0, 0), Verdict::Alive);
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
