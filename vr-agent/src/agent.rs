//! The agent: holds the desired state, and for every command validates,
//! persists, then applies the whole state (netlink, nftables, dnsmasq).
//!
//! Commands are serialized by one lock: a router receives a handful of
//! commands per second at most, and serializing makes "persist, then apply,
//! or roll back" simple to reason about.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use tokio::sync::Mutex;
use vpc_proto::v1 as pb;

use crate::apply::dnsmasq::{DnsmasqOptions, Supervisor};
use crate::apply::netlink::{Netlink, NetlinkError};
use crate::apply::nft::{Nft, NftError};
use crate::model::{Invalid, Limits, Mac, Router};
use crate::plan;
use crate::plan::nft::{NftOptions, Ruleset};
use crate::state::{Desired, StateError, StateStore};
use crate::update::{self, Change};

/// Where the agent keeps things and which binaries it drives.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// Persisted desired state.
    pub state_dir: PathBuf,
    /// dnsmasq configuration, hosts, leases and logs.
    pub dnsmasq_dir: PathBuf,
    pub nft_binary: PathBuf,
    pub dnsmasq_binary: PathBuf,
    /// The agent's TCP port, opened on control NICs.
    pub agent_port: Option<u16>,
    /// Bounds on the size of every list a command carries.
    pub limits: Limits,
    /// dnsmasq's user, group and log bound.
    pub dnsmasq: DnsmasqOptions,
}

impl AgentSettings {
    /// Defaults for a state directory: dnsmasq files in `<state_dir>/dnsmasq`.
    pub fn new(state_dir: PathBuf) -> Self {
        Self {
            dnsmasq_dir: state_dir.join("dnsmasq"),
            state_dir,
            nft_binary: "nft".into(),
            dnsmasq_binary: "dnsmasq".into(),
            agent_port: None,
            limits: Limits::default(),
            dnsmasq: DnsmasqOptions::default(),
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
}

/// What one step of an apply reported, with where the time went.
#[derive(Debug, Default)]
struct ApplyReport {
    changes: Vec<String>,
    netlink_us: u64,
    plan_us: u64,
    nft_us: u64,
    dnsmasq_us: u64,
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
    /// `nft list` of the table as the agent left it, taken lazily by the
    /// reconcile loop; `None` until then.
    live_listing: Option<String>,
    netlink: Netlink,
    dnsmasq: Supervisor,
    last_error: String,
}

/// The router agent.
pub struct Agent {
    inner: Mutex<Inner>,
    store: StateStore,
    nft: Nft,
    options: NftOptions,
    settings: AgentSettings,
}

/// The result of one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub generation: u64,
    pub micros: u64,
    pub unchanged: bool,
}

impl Agent {
    /// Loads the persisted state and applies it, without flushing anything
    /// first: the nft table is replaced in one transaction and netlink objects
    /// are diffed, so traffic keeps flowing through a restart. A state that
    /// cannot be applied yet (a NIC not plugged) is kept and retried by
    /// [`Agent::reconcile`].
    pub async fn start(settings: AgentSettings) -> Result<Agent, AgentError> {
        let store = StateStore::open(&settings.state_dir)?;
        let desired = store.load()?.unwrap_or_default();
        let router = Router::from_config(&desired.config)?;
        let netlink = Netlink::connect().map_err(|e| AgentError::Apply(e.to_string()))?;
        let dnsmasq = Supervisor::new(
            settings.dnsmasq_dir.clone(),
            settings.dnsmasq_binary.clone(),
        )
        .with_options(settings.dnsmasq.clone());
        let agent = Agent {
            inner: Mutex::new(Inner {
                applied_generation: desired.generation,
                desired,
                router: Router::default(),
                live: None,
                live_listing: None,
                netlink,
                dnsmasq,
                last_error: String::new(),
            }),
            nft: Nft::new(settings.nft_binary.clone()),
            options: NftOptions {
                agent_port: settings.agent_port,
            },
            store,
            settings,
        };
        {
            let mut inner = agent.inner.lock().await;
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
        }
        Ok(agent)
    }

    /// Validates `change`, persists the new state, applies it, and answers.
    /// On a failed apply the previous state is persisted and applied again.
    pub async fn change(&self, generation: u64, change: Change) -> Result<Applied, AgentError> {
        let started = Instant::now();
        let rpc = change.rpc();
        let mut inner = self.inner.lock().await;
        if generation < inner.applied_generation {
            return Err(AgentError::Stale {
                got: generation,
                applied: inner.applied_generation,
            });
        }
        let (config, router) = update::apply(
            &inner.desired.config,
            &inner.router,
            change,
            &self.settings.limits,
        )?;
        let unchanged = config == inner.desired.config && inner.last_error.is_empty();
        let previous = inner.desired.clone();
        let previous_router = inner.router.clone();
        let desired = Desired { generation, config };
        let persisting = Instant::now();
        self.store.save(&desired)?;
        let persist_us = micros_since(persisting);
        match self
            .apply_router(&mut inner, &router, &previous_router)
            .await
        {
            Ok(report) => {
                inner.desired = desired;
                inner.router = router;
                inner.applied_generation = generation;
                inner.last_error.clear();
                let micros = started.elapsed().as_micros() as u64;
                tracing::info!(
                    rpc,
                    generation,
                    micros,
                    persist_us,
                    netlink_us = report.netlink_us,
                    plan_us = report.plan_us,
                    nft_us = report.nft_us,
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
                })
            }
            Err(error) => {
                tracing::warn!(rpc, generation, %error, "apply failed; restoring the previous state");
                // Re-apply the previous state even if persisting it fails: the
                // kernel must not stay half-changed. The reconcile loop retries
                // whatever is left in last_error.
                if let Err(e) = self.store.save(&previous) {
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
        match inner.netlink.apply(&net, &released).await {
            Ok(net_report) => report.changes.extend(net_report.changes),
            Err(NetlinkError::LinkNotFound { mac }) => {
                return Err(AgentError::LinkNotFound(format!(
                    "no link with MAC {mac} in the router"
                )));
            }
            Err(e) => return Err(AgentError::Apply(e.to_string())),
        }

        report.netlink_us = micros_since(step);

        let step = Instant::now();
        let ruleset = plan::nft::plan_from(
            router,
            &self.options,
            inner.live.as_ref().map(|live| (previous, live)),
        );
        let script = match &inner.live {
            Some(old) => ruleset.render_update(old),
            None => Some(ruleset.render_full()),
        };
        report.plan_us = micros_since(step);
        let step = Instant::now();
        if let Some(script) = script {
            if let Err(e) = self.nft.apply(&script).await {
                // An update that the kernel refuses is retried as a full
                // replacement, which does not depend on what is live.
                if inner.live.is_none() {
                    return Err(nft_failed(e));
                }
                tracing::warn!(error = %e, "incremental nft update refused; replacing the table");
                self.nft
                    .apply(&ruleset.render_full())
                    .await
                    .map_err(nft_failed)?;
            }
            let (rules, elements) = ruleset.size();
            report.changes.push(format!(
                "nft table with {rules} rules and {elements} set elements"
            ));
            inner.live_listing = None;
        }
        inner.live = Some(ruleset);
        report.nft_us = micros_since(step);

        let step = Instant::now();
        let files = plan::dnsmasq::plan(router, &self.settings.dnsmasq_dir);
        let dns_changes = inner
            .dnsmasq
            .apply(&files)
            .map_err(|e| AgentError::Apply(e.to_string()))?;
        report.changes.extend(dns_changes);
        report.dnsmasq_us = micros_since(step);
        Ok(report)
    }

    /// Checks the kernel and dnsmasq against the desired state and repairs
    /// what drifted (a deleted table, a removed route, a dead dnsmasq); also
    /// retries a state that could not be applied. Returns what it repaired.
    pub async fn reconcile(&self) -> Vec<String> {
        let mut inner = self.inner.lock().await;
        let mut repaired = Vec::new();
        let router = inner.router.clone();
        if !inner.last_error.is_empty() {
            // The file may hold a state that was refused (when persisting the
            // rollback failed): write the desired state again first.
            if let Err(e) = self.store.save(&inner.desired) {
                inner.last_error = e.to_string();
                return repaired;
            }
            inner.live = None;
            match self
                .apply_router(&mut inner, &router, &Router::default())
                .await
            {
                Ok(_) => {
                    repaired.push(format!(
                        "applied generation {} after: {}",
                        inner.desired.generation, inner.last_error
                    ));
                    inner.last_error.clear();
                }
                Err(e) => inner.last_error = e.to_string(),
            }
            return repaired;
        }
        let mut drift = Vec::new();
        match self.nft.list().await {
            Ok(None) => drift.push("nft table is missing".to_string()),
            Ok(Some(listing)) => match &inner.live_listing {
                None => inner.live_listing = Some(listing),
                Some(expected) if *expected != listing => {
                    drift.push("nft table was changed".to_string())
                }
                Some(_) => {}
            },
            Err(e) => drift.push(format!("cannot list the nft table: {e}")),
        }
        let net = plan::net::plan(&router);
        match inner.netlink.drift(&net).await {
            Ok(lines) => drift.extend(lines),
            Err(e) => drift.push(format!("cannot read netlink state: {e}")),
        }
        if !drift.is_empty() {
            inner.live = None;
            match self.apply_router(&mut inner, &router, &router).await {
                Ok(_) => repaired.extend(drift.into_iter().map(|d| format!("repaired: {d}"))),
                Err(e) => inner.last_error = e.to_string(),
            }
        }
        repaired.extend(inner.dnsmasq.check());
        repaired
    }

    /// The desired state, the applied generation and the live table.
    pub async fn state(&self) -> pb::GetStateResponse {
        let inner = self.inner.lock().await;
        let live_ruleset = match self.nft.list().await {
            Ok(Some(text)) => text,
            Ok(None) => String::new(),
            Err(e) => format!("# cannot list the table: {e}"),
        };
        pb::GetStateResponse {
            config: Some(inner.desired.config.clone()),
            generation: inner.applied_generation,
            live_ruleset,
            last_error: inner.last_error.clone(),
            dnsmasq: inner
                .dnsmasq
                .status()
                .into_iter()
                .map(|(device_index, pid, hosts)| pb::DnsmasqStatus {
                    device_index,
                    pid,
                    hosts,
                })
                .collect(),
        }
    }
}

fn nft_failed(e: NftError) -> AgentError {
    AgentError::Apply(e.to_string())
}
