//! The agent: holds the desired state, and for every command validates,
//! persists, then applies the whole state (netlink, nftables, dnsmasq).
//!
//! Commands are serialized by one lock: a router receives a handful of
//! commands per second at most, and serializing makes "persist, then apply,
//! or roll back" simple to reason about. Reading the kernel back (GetState,
//! the reconcile loop's look at the live table) happens outside that lock.
//!
//! A tier's dnsmasq failing does not fail a command: the rest of the state
//! is applied, the failure is reported for that tier, and the reconcile loop
//! retries it (see [`reconcile`]).

mod reconcile;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Mutex, watch};
use vpc_proto::v1 as pb;

use crate::apply::dnsmasq::{DnsmasqOptions, Supervisor};
use crate::apply::haproxy::Proxy;
use crate::apply::netlink::{Netlink, NetlinkError};
use crate::apply::nft::{Nft, NftError};
use crate::apply::nft_netlink::{
    Element, NftNetlink, NftNetlinkError, SetType, encode_chain_changes,
};
use crate::metadata::Directory;
use crate::model::{Invalid, Limits, Mac, Router};
use crate::plan;
use crate::plan::nft::counters::{self, ChainCounts};
use crate::plan::nft::{Carry, ItemIndex, NftOptions, Ruleset};
use crate::state::{Desired, ListChange, Replaced, StateError, StateStore};
use crate::status::{Part, Status};
use crate::update::{self, Change};
use crate::vpn::Charon;

/// Where the agent keeps things and which binaries it drives.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// Persisted desired state.
    pub state_dir: PathBuf,
    /// dnsmasq configuration, hosts, leases and logs.
    pub dnsmasq_dir: PathBuf,
    pub nft_binary: PathBuf,
    pub dnsmasq_binary: PathBuf,
    /// HAProxy's configuration, pid and log (leastconn and cookie rules).
    pub haproxy_dir: PathBuf,
    pub haproxy_binary: PathBuf,
    /// The agent's TCP port, opened on control NICs.
    pub agent_port: Option<u16>,
    /// Bounds on the size of every list a command carries.
    pub limits: Limits,
    /// dnsmasq's user, group and log bound.
    pub dnsmasq: DnsmasqOptions,
    /// Open the agent's TCP port on every NIC while the router has no
    /// control NIC (a first boot reached through another NIC).
    pub open_agent_port_before_control: bool,
    /// charon's configuration, sockets, pid file and log.
    pub vpn_dir: PathBuf,
    pub charon_binary: PathBuf,
    pub swanctl_binary: PathBuf,
    /// Test hook, never set in production: each journal append waits this
    /// long before it is written (see [`crate::state::StateStore::set_journal_delay`]).
    pub journal_delay: Option<std::time::Duration>,
}

impl AgentSettings {
    /// Defaults for a state directory: dnsmasq files in `<state_dir>/dnsmasq`,
    /// charon's in `<state_dir>/vpn`.
    pub fn new(state_dir: PathBuf) -> Self {
        Self {
            dnsmasq_dir: state_dir.join("dnsmasq"),
            vpn_dir: state_dir.join("vpn"),
            haproxy_dir: state_dir.join("haproxy"),
            nft_binary: "nft".into(),
            dnsmasq_binary: "dnsmasq".into(),
            haproxy_binary: "haproxy".into(),
            agent_port: None,
            limits: Limits::default(),
            dnsmasq: DnsmasqOptions::default(),
            open_agent_port_before_control: false,
            state_dir,
            charon_binary: "/usr/lib/ipsec/charon".into(),
            swanctl_binary: "swanctl".into(),
            journal_delay: None,
        }
    }
}

/// Why a command was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("generation {got} is older than the applied generation {applied}")]
    Stale { got: u64, applied: u64 },
    #[error(transparent)]
    State(#[from] StateError),
    #[error("applying the state failed, the previous state is back in place: {0}")]
    Apply(String),
    #[error("{0}")]
    LinkNotFound(String),
    #[error("the agent has no desired state ({0}); only ApplyConfig is accepted until then")]
    NoState(String),
    /// An edit made against a state the agent does not hold (another
    /// applied generation, or another list on the NIC): nothing changed.
    #[error("{0}")]
    NotAtBase(String),
}

/// What one step of an apply reported, with where the time went.
#[derive(Debug, Default)]
struct ApplyReport {
    changes: Vec<String>,
    netlink_us: u64,
    plan_us: u64,
    nft_us: u64,
    /// Of `nft_us`, the netlink batch (sent to acknowledged: the kernel's
    /// transaction) and the counts read back.
    kernel_us: u64,
    /// How the table was changed: `netlink` (element changes in one
    /// batch), `nft` (an `nft -f` script) or `unchanged`.
    nft_path: &'static str,
    dnsmasq_us: u64,
}

/// The list of an ACL edit made against generation `base`; refused
/// (NotAtBase) when the agent has applied another generation than `base` or
/// the edit's own `generation`.
fn edit_at_base(
    inner: &Inner,
    generation: u64,
    base: u64,
    acl: Option<pb::NetworkAcl>,
) -> Result<pb::NetworkAcl, AgentError> {
    // A change sends one edit per NIC using the list, all with its
    // generation: after the first, the agent is at that generation, and
    // the other NICs' lists are still as they were at `base`.
    if base != inner.applied_generation && generation != inner.applied_generation {
        return Err(AgentError::NotAtBase(format!(
            "the edit was made against generation {base}, the agent has applied {}",
            inner.applied_generation
        )));
    }
    acl.ok_or_else(|| {
        AgentError::Invalid(crate::model::Invalid {
            kind: crate::model::InvalidKind::Argument,
            field: "acl".into(),
            message: "is required".into(),
        })
    })
}

/// Sets an unusable state file aside; returns the condition to report.
fn unusable(store: &StateStore, reason: String) -> Result<String, AgentError> {
    Ok(store.set_aside(|aside| {
        format!(
            "the persisted state could not be used ({reason}); it was kept as {}",
            aside.display()
        )
    })?)
}

fn micros_since(t: Instant) -> u64 {
    t.elapsed().as_micros() as u64
}

struct Inner {
    desired: Desired,
    router: Router,
    /// The generation of the last successful apply.
    applied_generation: u64,
    /// The ruleset in the kernel; `None` forces the next apply to replace the
    /// whole table.
    live: Option<Ruleset>,
    /// The items' element counts in `live`'s ACL chains, kept across the
    /// element changes made over netlink; `None` until the first such
    /// change after another path changed the table (built then).
    live_items: Option<ItemIndex>,
    /// `nft -j list` of the table as the agent left it, taken by the first
    /// reconcile tick after an apply whose shape matched the plan; `None`
    /// until then.
    live_listing: Option<String>,
    netlink: Netlink,
    /// The nf_tables netlink socket of the incremental path; `None` when it
    /// could not be opened (every change then goes through `nft -f`).
    nft_netlink: Option<NftNetlink>,
    dnsmasq: Supervisor,
    vpn: Charon,
    proxy: Proxy,
    last_error: String,
    status: Status,
    /// Counts applies, so that a look at the kernel taken without the lock
    /// can tell whether an apply ran meanwhile.
    applies: u64,
    /// The network plan the last netlink apply made, `None` when unknown.
    net_applied: Option<plan::net::NetPlan>,
    /// The links' MTUs as the last netlink apply left them.
    link_mtus: std::collections::BTreeMap<String, u32>,
    /// What dnsmasq's files were last planned from, when every tier took
    /// them; `None` after a failure and until the first apply.
    dnsmasq_given: Option<plan::dnsmasq::Inputs>,
}

/// The router agent.
pub struct Agent {
    inner: Mutex<Inner>,
    store: StateStore,
    nft: Nft,
    options: NftOptions,
    settings: AgentSettings,
    /// Whether the desired state is applied, for grpc.health.v1.
    serving: watch::Sender<bool>,
    /// What the VM services serve: the VM data of the applied state.
    vm_data: watch::Sender<Arc<Directory>>,
}

/// The result of one command.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub generation: u64,
    pub micros: u64,
    pub unchanged: bool,
    /// Tiers whose dnsmasq is not running after this command.
    pub dhcp_failures: Vec<pb::DhcpFailure>,
}

impl Agent {
    /// Loads the persisted state and applies it, without flushing anything
    /// first: the nft table is replaced in one transaction and netlink objects
    /// are diffed, so traffic keeps flowing through a restart. A state that
    /// cannot be applied yet (a NIC not plugged) is kept and retried by
    /// [`Agent::reconcile`].
    ///
    /// A state file that cannot be decoded or validated is moved aside and
    /// the agent starts without a desired state: it touches nothing (the
    /// live table keeps the traffic flowing), reports the condition, and
    /// waits for the ApplyConfig that a resync sends.
    pub async fn start(settings: AgentSettings) -> Result<Agent, AgentError> {
        let store = StateStore::open(&settings.state_dir)?;
        if let Some(delay) = settings.journal_delay {
            tracing::warn!(?delay, "test hook: journal appends are delayed");
            store.set_journal_delay(delay);
        }
        let loaded = match store.load() {
            // Restarted before the resync that the condition waits for.
            Ok(None) if store.awaiting_resync().is_some() => {
                Err(store.awaiting_resync().unwrap_or_default())
            }
            Ok(desired) => {
                let desired = desired.unwrap_or_default();
                match Router::from_config_with(&desired.config, &settings.limits) {
                    Ok(router) => Ok((desired, router)),
                    Err(e) => Err(unusable(&store, format!("invalid: {e}"))?),
                }
            }
            Err(e @ (StateError::Decode { .. } | StateError::Journal { .. })) => {
                Err(unusable(&store, e.to_string())?)
            }
            Err(e) => return Err(e.into()),
        };
        let (desired, router, state_file) = match loaded {
            Ok((desired, router)) => (desired, router, None),
            Err(condition) => {
                tracing::error!("{condition}; waiting for ApplyConfig, the live table stays");
                (Desired::default(), Router::default(), Some(condition))
            }
        };
        let netlink = Netlink::connect().map_err(|e| AgentError::Apply(e.to_string()))?;
        let nft_netlink = NftNetlink::open()
            .inspect_err(|e| tracing::warn!(error = %e, "element changes go through nft"))
            .ok();
        let dnsmasq = Supervisor::new(
            settings.dnsmasq_dir.clone(),
            settings.dnsmasq_binary.clone(),
        )
        .with_options(settings.dnsmasq.clone());
        let proxy = Proxy::new(
            settings.haproxy_dir.clone(),
            settings.haproxy_binary.clone(),
        );
        let recovering = state_file.is_some();
        let agent = Agent {
            inner: Mutex::new(Inner {
                applied_generation: desired.generation,
                desired,
                router: Router::default(),
                live: None,
                live_items: None,
                live_listing: None,
                netlink,
                nft_netlink,
                dnsmasq,
                vpn: Charon::new(
                    settings.vpn_dir.clone(),
                    settings.charon_binary.clone(),
                    settings.swanctl_binary.clone(),
                ),
                proxy,
                last_error: String::new(),
                status: Status {
                    state_file,
                    ..Status::default()
                },
                applies: 0,
                net_applied: None,
                link_mtus: Default::default(),
                dnsmasq_given: None,
            }),
            nft: Nft::new(settings.nft_binary.clone()),
            options: NftOptions {
                agent_port: settings.agent_port,
                open_agent_port_before_control: settings.open_agent_port_before_control,
            },
            store,
            settings,
            serving: watch::Sender::new(!recovering),
            vm_data: watch::Sender::new(Arc::new(Directory::default())),
        };
        {
            let mut inner = agent.inner.lock().await;
            if !recovering {
                let started = Instant::now();
                let previous = Router::default();
                match agent.apply_router(&mut inner, &router, &previous).await {
                    Ok(_) => tracing::info!(
                        generation = inner.applied_generation,
                        micros = started.elapsed().as_micros() as u64,
                        "applied persisted state"
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "persisted state not applied yet; the reconcile loop retries");
                        inner.last_error = e.to_string();
                    }
                }
                inner.router = router;
                agent.publish_vm_data(&inner);
            }
            agent.publish(&inner);
        }
        Ok(agent)
    }

    /// Waits until the journal records of the changes answered so far are
    /// on disk (at shutdown).
    pub fn flush_state(&self) -> Result<(), AgentError> {
        Ok(self.store.flush()?)
    }

    /// Whether the agent can apply its state, as it changes.
    pub fn serving(&self) -> watch::Receiver<bool> {
        self.serving.subscribe()
    }

    /// What the VM services serve, as it changes.
    pub fn vm_data(&self) -> watch::Receiver<Arc<Directory>> {
        self.vm_data.subscribe()
    }

    /// Publishes the VM data of the state just applied (or, at start, the
    /// persisted one: a restarted agent serves what it served before).
    fn publish_vm_data(&self, inner: &Inner) {
        let directory = Directory::from_router(&inner.router);
        self.vm_data.send_if_modified(|current| {
            let changed = **current != directory;
            if changed {
                *current = Arc::new(directory);
            }
            changed
        });
    }

    /// Publishes the serving condition after a change of status.
    fn publish(&self, inner: &Inner) {
        let serving = inner.status.serving() && inner.last_error.is_empty();
        self.serving
            .send_if_modified(|s| std::mem::replace(s, serving) != serving);
    }

    /// Validates `change`, persists the new state, applies it, and answers.
    /// On a failed apply the previous state is persisted and applied again.
    pub async fn change(&self, generation: u64, change: Change) -> Result<Applied, AgentError> {
        let started = Instant::now();
        let rpc = change.rpc();
        let mut inner = self.inner.lock().await;
        if let Some(condition) = &inner.status.state_file
            && !matches!(change, Change::ApplyConfig(_))
        {
            return Err(AgentError::NoState(condition.clone()));
        }
        if generation < inner.applied_generation {
            return Err(AgentError::Stale {
                got: generation,
                applied: inner.applied_generation,
            });
        }
        let validating = Instant::now();
        let list = match &change {
            Change::SetNetworkAcl(Some(acl)) => ListChange::Acl(acl.device_index),
            Change::EditNetworkAcl { acl: Some(acl), .. } => ListChange::Acl(acl.device_index),
            Change::SetPortForwarding(_) => ListChange::PortForwards,
            Change::SetStaticNat(_) => ListChange::StaticNats,
            _ => ListChange::Other,
        };
        // The change is made to the desired state in place (an ACL change
        // moves one list in and out, or an edit its items, whatever the
        // state's size); `undo` puts it back if applying fails.
        let limits = &self.settings.limits;
        let (router, undo) = match change {
            Change::EditNetworkAcl { base, acl, removed } => {
                let acl = edit_at_base(&inner, generation, base, acl)?;
                let nic = acl.device_index;
                let state = &mut *inner;
                let config = &mut state.desired.config;
                match update::apply_edit_in_place(config, &state.router, acl, &removed, limits)? {
                    update::Edit::Applied(router, undo) => (*router, undo),
                    update::Edit::Whole(acl) => update::apply_in_place(
                        config,
                        &state.router,
                        Change::SetNetworkAcl(Some(acl)),
                        limits,
                    )?,
                    update::Edit::NotHeld => {
                        return Err(AgentError::NotAtBase(format!(
                            "eth{nic} does not hold the list the edit was made against"
                        )));
                    }
                }
            }
            change => {
                let state = &mut *inner;
                update::apply_in_place(&mut state.desired.config, &state.router, change, limits)?
            }
        };
        let validate_us = micros_since(validating);
        let unchanged = undo.unchanged(&inner.desired.config) && inner.last_error.is_empty();
        let before_generation = std::mem::replace(&mut inner.desired.generation, generation);
        let persisting = Instant::now();
        if let Some(failure) = self.store.take_failure() {
            // The journal was abandoned: the save below writes a snapshot.
            inner.status.record(Part::State, Err(failure));
        }
        // Only what changed in the list is persisted when it can be.
        let removed_numbers: Vec<u32>;
        let replaced = match (&undo, list) {
            (
                update::Undo::Acl {
                    index,
                    delta: Some((removed, at)),
                    ..
                },
                _,
            ) => Replaced::AclEdit {
                index: *index,
                removed,
                at,
            },
            (update::Undo::Acl { index, before, .. }, _) => Replaced::Acl(*index, before.as_ref()),
            (
                update::Undo::AclEdit {
                    index, taken, at, ..
                },
                _,
            ) => {
                removed_numbers = taken.iter().map(|i| i.number).collect();
                Replaced::AclEdit {
                    index: *index,
                    removed: &removed_numbers,
                    at,
                }
            }
            (update::Undo::PortForwards(_, splice), _) => Replaced::PortForwards(*splice),
            (update::Undo::StaticNats(_, splice), _) => Replaced::StaticNats(*splice),
            _ => Replaced::Other,
        };
        // A list change's record is made now and queued once the kernel
        // has the change (the writer syncs it in the background: see
        // `state::writer` for what a crash in between leaves); any other
        // change writes a snapshot before it is applied.
        let record = self.store.journal_record(replaced, &inner.desired);
        if record.is_none() {
            let saved = self.store.save(&inner.desired);
            inner.status.record(
                Part::State,
                saved.as_ref().map_err(|e| e.to_string()).copied(),
            );
            if let Err(e) = saved {
                undo.undo(&mut inner.desired.config);
                inner.desired.generation = before_generation;
                self.publish(&inner);
                return Err(e.into());
            }
        }
        let snapshot_written = record.is_none();
        let mut persist_us = micros_since(persisting);
        // The previous router stays until the apply succeeds (no copy of a
        // large state is made); it is moved out for the apply to compare
        // with.
        let previous_router = std::mem::take(&mut inner.router);
        let mut applied = self
            .apply_router(&mut inner, &router, &previous_router)
            .await;
        if let (Ok(_), Some(record)) = (&applied, record) {
            let queueing = Instant::now();
            let queued = self.store.append(record, &inner.desired);
            persist_us += micros_since(queueing);
            inner.status.record(
                Part::State,
                queued.as_ref().map_err(|e| e.to_string()).copied(),
            );
            if let Err(e) = queued {
                applied = Err(e.into());
            }
        }
        match applied {
            Ok(report) => {
                // What the change replaced (a NAT list's 10,000 rules) is
                // freed off the answer's path.
                tokio::task::spawn_blocking(move || drop(undo));
                inner.router = router;
                self.publish_vm_data(&inner);
                inner.applied_generation = generation;
                inner.last_error.clear();
                if inner.status.state_file.take().is_some() {
                    tracing::info!(generation, "the agent has a desired state again");
                }
                self.publish(&inner);
                let micros = started.elapsed().as_micros() as u64;
                tracing::info!(
                    rpc,
                    generation,
                    micros,
                    validate_us,
                    persist_us,
                    netlink_us = report.netlink_us,
                    plan_us = report.plan_us,
                    nft_us = report.nft_us,
                    kernel_us = report.kernel_us,
                    nft_path = %report.nft_path,
                    dnsmasq_us = report.dnsmasq_us,
                    changes = report.changes.len(),
                    "applied"
                );
                for line in &report.changes {
                    tracing::debug!(rpc, generation, "{line}");
                }
                Ok(Applied {
                    generation,
                    micros,
                    unchanged,
                    dhcp_failures: inner.status.dhcp_failures_pb(),
                })
            }
            Err(error) => {
                tracing::warn!(rpc, generation, %error, "apply failed; restoring the previous state");
                undo.undo(&mut inner.desired.config);
                inner.desired.generation = before_generation;
                // Re-apply the previous state even if persisting it fails: the
                // kernel must not stay half-changed. The reconcile loop retries
                // whatever is left in last_error. (A list change queued no
                // record: what is persisted is still the previous state.)
                if snapshot_written && let Err(e) = self.store.save(&inner.desired) {
                    tracing::error!(error = %e, "persisting the previous state failed");
                    inner.last_error = e.to_string();
                }
                inner.live = None;
                if let Err(e) = self
                    .apply_router(&mut inner, &previous_router, &router)
                    .await
                {
                    tracing::error!(error = %e, "restoring the previous state failed");
                    inner.last_error = e.to_string();
                }
                inner.router = previous_router;
                self.publish(&inner);
                Err(error)
            }
        }
    }

    /// Makes the kernel and dnsmasq match `router`; `previous` is what was
    /// applied before (its NICs that are gone get released).
    async fn apply_router(
        &self,
        inner: &mut Inner,
        router: &Router,
        previous: &Router,
    ) -> Result<ApplyReport, AgentError> {
        let mut report = ApplyReport::default();

        // Links first: nft matches interface names, dnsmasq binds addresses.
        let step = Instant::now();
        let net = plan::net::plan(router);
        let kept: BTreeSet<Mac> = router.nics.values().map(|n| n.mac).collect();
        let released: Vec<Mac> = previous
            .nics
            .values()
            .map(|n| n.mac)
            .filter(|m| !kept.contains(m))
            .collect();
        inner.applies += 1;
        // The same network plan as the last apply left, with the table
        // known: nothing for netlink to do (the reconcile loop checks the
        // kernel for drift, and a repair applies with the table unknown).
        if inner.live.is_some() && released.is_empty() && inner.net_applied.as_ref() == Some(&net) {
            report.netlink_us = micros_since(step);
        } else {
            inner.net_applied = None;
            self.apply_links(inner, &net, &released, &mut report)
                .await?;
            inner.net_applied = Some(net);
            report.netlink_us = micros_since(step);
        }

        let step = Instant::now();
        let ruleset = plan::nft::plan_from(
            router,
            &self.options,
            inner.live.as_ref().map(|live| (previous, live)),
        );
        report.plan_us = micros_since(step);
        let step = Instant::now();
        // A change of set and map elements alone goes over netlink: one
        // batch, counts read back element by element.
        let attempt = match (&inner.live, inner.nft_netlink.as_mut()) {
            (Some(old), Some(socket)) => apply_elements(
                socket,
                old,
                &ruleset,
                &mut inner.live_items,
                &mut report.kernel_us,
            ),
            _ => Ok(None),
        };
        let incremental = attempt.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "netlink element change refused; replacing the table");
            inner.live = None;
            None
        });
        if let Some((chains, elements)) = incremental {
            let changed = chains + elements > 0;
            report.nft_path = if changed { "netlink" } else { "unchanged" };
            if chains > 0 {
                report.changes.push(format!(
                    "nft: {chains} chains rebuilt with {elements} set elements over netlink"
                ));
            } else if elements > 0 {
                report
                    .changes
                    .push(format!("nft: {elements} set elements changed over netlink"));
            }
            if changed {
                inner.live_listing = None;
            }
            inner.status.record(Part::Nft, Ok(()));
            // The table before (maps of 10,000 elements) is freed off the
            // answer's path.
            let before = inner.live.replace(ruleset);
            tokio::task::spawn_blocking(move || drop(before));
        } else {
            report.nft_path = "nft";
            self.apply_nft(inner, ruleset, &mut report).await?;
        }
        report.nft_us = micros_since(step);

        // After nft: the kernel no longer DNATs the rules HAProxy takes.
        let proxy_config = plan::haproxy::plan(
            router,
            &self.settings.dnsmasq.user,
            &self.settings.dnsmasq.group,
        );
        let proxied = inner.proxy.apply(proxy_config.as_deref());
        inner.status.record(
            Part::Proxy,
            proxied.as_ref().map(|_| ()).map_err(|e| e.to_string()),
        );
        report
            .changes
            .extend(proxied.map_err(|e| AgentError::Apply(e.to_string()))?);

        // dnsmasq's files only when what they are planned from changed (an
        // ACL or NAT change does not touch it); an instance that died
        // meanwhile is restarted by the reconcile loop, as between commands.
        let step = Instant::now();
        let unchanged = inner.status.dhcp_failures.is_empty()
            && inner
                .dnsmasq_given
                .as_ref()
                .is_some_and(|given| given.same(router, &inner.link_mtus));
        if !unchanged {
            inner.dnsmasq_given = None;
            let files = plan::dnsmasq::plan_with_links(
                router,
                &self.settings.dnsmasq_dir,
                &inner.link_mtus,
            );
            report.changes.extend(self.apply_dnsmasq(inner, &files));
            if inner.status.dhcp_failures.is_empty() {
                inner.dnsmasq_given = Some(plan::dnsmasq::Inputs::of(router, &inner.link_mtus));
            }
        }
        report.dnsmasq_us = micros_since(step);

        // The VPN last: its traffic needs the links, routes and rules above.
        // charon refusing the configuration fails the command, so the
        // manager sees the connection's error.
        let vpn = inner.vpn.apply(router.vpn.as_ref());
        match vpn {
            Ok(changes) => report.changes.extend(changes),
            Err(e) => return Err(AgentError::Apply(format!("site-to-site VPN: {e}"))),
        }
        Ok(report)
    }

    /// Brings links, addresses, routes and rules to `net` through netlink.
    async fn apply_links(
        &self,
        inner: &mut Inner,
        net: &plan::net::NetPlan,
        released: &[Mac],
        report: &mut ApplyReport,
    ) -> Result<(), AgentError> {
        let netlink = match inner.netlink.apply(net, released).await {
            Ok(net_report) => {
                report.changes.extend(net_report.changes);
                // The links as the apply left them (their MTU is the host
                // agent's, unless the config sets one).
                match inner.netlink.link_mtus().await {
                    Ok(mtus) => inner.link_mtus = mtus,
                    Err(e) => tracing::warn!(error = %e, "link MTUs unknown; DHCP keeps the last"),
                }
                Ok(())
            }
            Err(NetlinkError::LinkNotFound { mac }) => Err(AgentError::LinkNotFound(format!(
                "no link with MAC {mac} in the router"
            ))),
            Err(e) => Err(AgentError::Apply(e.to_string())),
        };
        inner.status.record(
            Part::Netlink,
            netlink.as_ref().map_err(|e| e.to_string()).copied(),
        );
        netlink?;

        Ok(())
    }

    /// Changes the table to `ruleset` through `nft -f`: the changed chains,
    /// or the whole table when nothing is known to be live; the hit counts
    /// that must survive are read first.
    async fn apply_nft(
        &self,
        inner: &mut Inner,
        ruleset: Ruleset,
        report: &mut ApplyReport,
    ) -> Result<(), AgentError> {
        // The hit counts that must survive the change are read first: of
        // the sets whose elements of items that stay go (none for adding or
        // deleting an item), or of the whole table when it is replaced.
        let carry = match &inner.live {
            Some(old) => {
                let needs = ruleset.carry_needs(old);
                let mut counts = self.counts_of_sets(&needs.sets).await;
                for (set, keys) in &needs.elements {
                    match self.nft.get_elements(set, keys).await {
                        Ok(text) => {
                            for (key, (packets, bytes)) in
                                counters::chain_counts_of_elements(set, &text)
                            {
                                let sum = counts.entry(key).or_default();
                                sum.0 += packets;
                                sum.1 += bytes;
                            }
                        }
                        Err(e) => tracing::warn!(set, error = %e, "ACL counts not carried over"),
                    }
                }
                Carry {
                    counts,
                    refreshed: needs.refreshed,
                }
            }
            None => Carry {
                counts: self.counts_of_table().await,
                ..Carry::default()
            },
        };
        let script = match &inner.live {
            Some(old) => ruleset.render_update_with(old, &carry),
            None => Some(ruleset.render_full_with(&carry.counts)),
        };
        if let Some(script) = script {
            if let Err(e) = self.nft.apply(&script).await {
                // An update that the kernel refuses is retried as a full
                // replacement, which does not depend on what is live.
                let full = if inner.live.is_none() {
                    Err(e)
                } else {
                    tracing::warn!(error = %e, "incremental nft update refused; replacing the table");
                    let counts = self.counts_of_table().await;
                    self.nft.apply(&ruleset.render_full_with(&counts)).await
                };
                if let Err(e) = full {
                    inner.status.record(Part::Nft, Err(e.to_string()));
                    return Err(nft_failed(e));
                }
            }
            let (rules, elements) = ruleset.size();
            report.changes.push(format!(
                "nft table with {rules} rules and {elements} set elements"
            ));
            inner.live_listing = None;
        }
        inner.status.record(Part::Nft, Ok(()));
        inner.live = Some(ruleset);
        inner.live_items = None;
        Ok(())
    }

    /// The ACL hit counts of the live table, by chain and item; none when
    /// it cannot be read (the counts then restart from 0, logged).
    async fn counts_of_table(&self) -> ChainCounts {
        match self.nft.list_json().await {
            Ok(Some(json)) => counters::chain_counts(&json).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "ACL counts not carried over");
                ChainCounts::new()
            }),
            Ok(None) => ChainCounts::new(),
            Err(e) => {
                tracing::warn!(error = %e, "ACL counts not carried over");
                ChainCounts::new()
            }
        }
    }

    /// The ACL hit counts held by `sets` of the live table.
    async fn counts_of_sets(&self, sets: &[String]) -> ChainCounts {
        let mut counts = ChainCounts::new();
        for set in sets {
            let read = match self.nft.list_set_json(set).await {
                Ok(Some(json)) => counters::chain_counts(&json),
                Ok(None) => Ok(ChainCounts::new()),
                Err(e) => Err(e.to_string()),
            };
            match read {
                Ok(found) => {
                    for (key, (packets, bytes)) in found {
                        let sum = counts.entry(key).or_default();
                        sum.0 += packets;
                        sum.1 += bytes;
                    }
                }
                Err(e) => tracing::warn!(set, error = %e, "ACL counts not carried over"),
            }
        }
        counts
    }

    /// Brings the dnsmasq instances to `files`; a tier that fails is
    /// recorded in the status (and retried by the reconcile loop), never an
    /// error of the command: the other tiers' changes stand.
    fn apply_dnsmasq(&self, inner: &mut Inner, files: &[plan::dnsmasq::TierFiles]) -> Vec<String> {
        let (changes, failures) = match inner.dnsmasq.apply_each(files) {
            Ok((changes, failures)) => (
                changes,
                failures
                    .into_iter()
                    .map(|(index, e)| (index, e.to_string()))
                    .collect(),
            ),
            // The directory failed: no tier can run.
            Err(e) => (
                Vec::new(),
                files.iter().map(|f| (f.index, e.to_string())).collect(),
            ),
        };
        inner.status.dhcp_failures = failures;
        let summary: Vec<String> = inner
            .status
            .dhcp_failures
            .iter()
            .map(|(index, e)| format!("{}: {e}", crate::model::dev_name(*index)))
            .collect();
        let result = if summary.is_empty() {
            Ok(())
        } else {
            Err(summary.join("; "))
        };
        inner.status.record(Part::Dnsmasq, result);
        changes
    }
}

/// Makes the change from `old` to `new` as one netlink batch when it
/// changes set elements and rebuilds ACL chains only, returning how many
/// chains were rebuilt and how many elements went and came. `Ok(None)`: the
/// change needs the nft path (a chain comes or goes, a base chain changes,
/// or a rule, set or element this path does not encode); an error: the
/// kernel refused the batch (nothing changed) or the socket failed.
fn apply_elements(
    socket: &mut NftNetlink,
    old: &Ruleset,
    new: &Ruleset,
    items: &mut Option<ItemIndex>,
    kernel_us: &mut u64,
) -> Result<Option<(usize, usize)>, NftNetlinkError> {
    // The index of what is live, then of `new` once the kernel has it; on
    // any other outcome the table is changed by another path and the
    // index is dropped.
    let index = items.take().unwrap_or_else(|| ItemIndex::of(old));
    let needs = new.carry_needs_indexed(old, &index);
    let mut counts = ChainCounts::new();
    // Rebuilt chains: the counts of their items that stay, from their old
    // sets read whole (one dump each; none when no item stays).
    for set in &needs.sets {
        let reading = Instant::now();
        let read = socket.dump(set)?;
        *kernel_us += micros_since(reading);
        let found = read
            .iter()
            .filter_map(|r| Some((r.comment.as_deref()?, r.counter?)));
        for (key, (packets, bytes)) in counters::chain_counts_of_read(set, found) {
            let sum = counts.entry(key).or_default();
            sum.0 += packets;
            sum.1 += bytes;
        }
    }
    // The counts of the items whose elements are replaced, read back one
    // element at a time.
    let specs = old.set_specs();
    for (set, keys) in &needs.elements {
        let Some(ty) = specs.get(set.as_str()).and_then(|s| SetType::parse(s).ok()) else {
            return Ok(None);
        };
        let Ok(elements) = keys
            .iter()
            .map(|k| Element::parse(&ty, k, false))
            .collect::<Result<Vec<_>, _>>()
        else {
            return Ok(None);
        };
        let wanted: BTreeSet<&[u8]> = elements.iter().map(Element::key).collect();
        let reading = Instant::now();
        let read = socket.get(set, &elements)?;
        *kernel_us += micros_since(reading);
        let found = read.iter().filter_map(|r| {
            let tag = r.comment.as_deref()?;
            (wanted.contains(r.key.as_slice())).then_some((tag, r.counter?))
        });
        for (key, (packets, bytes)) in counters::chain_counts_of_read(set, found) {
            let sum = counts.entry(key).or_default();
            sum.0 += packets;
            sum.1 += bytes;
        }
    }
    let carry = Carry {
        counts,
        refreshed: needs.refreshed,
    };
    // Element changes, and ACL chains rebuilt whole (a list replaced):
    // one batch either way.
    let Some(changes) = new.chain_changes(old, &carry) else {
        return Ok(None);
    };
    let batch = match encode_chain_changes(&changes) {
        Ok(batch) => batch,
        Err(e @ NftNetlinkError::Encode { .. }) => {
            tracing::debug!(error = %e, "change goes through nft");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let sending = Instant::now();
    let sent = socket.apply_chains(&batch);
    *kernel_us += micros_since(sending);
    sent?;
    let mut index = index;
    index.update(old, new);
    *items = Some(index);
    Ok(Some((batch.chains(), batch.element_count())))
}

fn nft_failed(e: NftError) -> AgentError {
    AgentError::Apply(e.to_string())
}
