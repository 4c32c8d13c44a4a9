//! The reconcile loop's tick and `GetState`: both read the kernel back, and
//! both do the reading without holding the command lock, so a slow listing
//! of a large table never delays a command.
//!
//! A tick compares the live table with the planned one (its shape, see
//! [`crate::plan::nft::shape`], at every tick, parsed and compared without
//! the lock; and its text against the listing taken at the first tick
//! after the last apply, which catches a rule changed in place), the links, addresses, routes and
//! rules with the network plan, and the dnsmasq instances with the tiers;
//! whatever drifted is put back by applying the whole state again, and the
//! tick is counted in the status that `GetState` shows.

use std::time::SystemTime;

use vpc_proto::v1 as pb;

use super::{Agent, Inner};
use crate::model::{Direction, Router, dev_name};
use crate::plan;
use crate::plan::nft::counters;
use crate::plan::nft::shape::Shape;

impl Agent {
    /// Checks the kernel and dnsmasq against the desired state and repairs
    /// what drifted (a changed or deleted table, a removed route, a dead
    /// dnsmasq, a tier whose dnsmasq failed); also retries a state that
    /// could not be applied. Returns what it found and did, one line each.
    pub async fn reconcile(&self) -> Vec<String> {
        // 1. Under the lock: retry what failed, or note what to compare.
        let (applies, planned) = {
            let mut inner = self.inner.lock().await;
            if inner.status.state_file.is_some() {
                // No desired state: nothing may be "repaired" towards an
                // empty table. Adopted dnsmasq instances are kept alive.
                return inner.dnsmasq.check();
            }
            if let Some(failure) = self.store.take_failure() {
                // A journal append failed after its change was answered:
                // the state in memory is persisted whole.
                tracing::warn!(error = %failure, "a journal append failed; writing a snapshot");
                let saved = self.store.save(&inner.desired);
                inner.status.record(
                    crate::status::Part::State,
                    saved.as_ref().map_err(|e| e.to_string()).copied(),
                );
            }
            if !inner.last_error.is_empty() {
                let lines = self.retry(&mut inner).await;
                self.publish(&inner);
                return lines;
            }
            let planned = inner.live.as_ref().map(|r| r.shape());
            (inner.applies, planned)
        };

        // 2. Without the lock: read the live table (one listing serves both
        //    comparisons below), parse it and compare its shape with the
        //    planned one; a table of 100,000 elements takes a while to parse.
        let json = self.nft.list_json().await;
        let mut drift = Vec::new();
        let listing = match json {
            Ok(None) => {
                drift.push("nft table is missing".to_string());
                None
            }
            Ok(Some(json)) => {
                match (planned, Shape::from_json(&json)) {
                    (Some(planned), Ok(live)) => drift.extend(
                        planned
                            .differences(&live)
                            .into_iter()
                            .map(|d| format!("nft {d}")),
                    ),
                    (None, _) => drift.push("nft table was never applied".to_string()),
                    (_, Err(e)) => drift.push(format!("cannot read the nft table: {e}")),
                }
                // Counters are left out: traffic moves them.
                drift.is_empty().then(|| counters::without_counts(&json))
            }
            Err(e) => {
                drift.push(format!("cannot list the nft table: {e}"));
                None
            }
        };

        // 3. Under the lock again: compare, and repair.
        let mut inner = self.inner.lock().await;
        if inner.applies != applies || inner.status.state_file.is_some() {
            // A command applied meanwhile: this reading is stale, and the
            // next tick looks at what that command left.
            return Vec::new();
        }
        if let Some(json) = listing {
            // Same shape as planned: compare with the listing taken at the
            // first tick after the last apply (a rule changed in place keeps
            // the shape, not its text or handle).
            match &inner.live_listing {
                None => inner.live_listing = Some(json),
                Some(expected) if *expected != json => {
                    drift.push("nft table was changed".to_string())
                }
                Some(_) => {}
            }
        }
        let router = inner.router.clone();
        let net = plan::net::plan(&router);
        match inner.netlink.drift(&net).await {
            Ok(lines) => drift.extend(lines),
            Err(e) => drift.push(format!("cannot read netlink state: {e}")),
        }
        let mut lines = Vec::new();
        if !drift.is_empty() {
            inner.live = None;
            let repaired = match self.apply_router(&mut inner, &router, &router).await {
                Ok(_) => true,
                Err(e) => {
                    inner.last_error = e.to_string();
                    false
                }
            };
            inner
                .status
                .record_drift(&drift, repaired, SystemTime::now());
            let verb = if repaired { "repaired" } else { "not repaired" };
            lines.extend(drift.into_iter().map(|d| format!("{verb}: {d}")));
        }
        lines.extend(self.check_dnsmasq(&mut inner, &router));
        let proxy = inner.proxy.check();
        if !proxy.is_empty() {
            let repaired = inner.proxy.pid().is_some();
            inner
                .status
                .record_drift(&proxy, repaired, SystemTime::now());
            lines.extend(proxy);
        }
        self.publish(&inner);
        lines
    }

    /// Applies the desired state again after a failed apply.
    async fn retry(&self, inner: &mut Inner) -> Vec<String> {
        // The file may hold a state that was refused (when persisting the
        // rollback failed): write the desired state again first.
        if let Err(e) = self.store.save(&inner.desired) {
            inner.last_error = e.to_string();
            inner
                .status
                .record(crate::status::Part::State, Err(e.to_string()));
            return Vec::new();
        }
        inner.status.record(crate::status::Part::State, Ok(()));
        inner.live = None;
        let router = inner.router.clone();
        match self.apply_router(inner, &router, &Router::default()).await {
            Ok(_) => {
                let line = format!(
                    "applied generation {} after: {}",
                    inner.desired.generation, inner.last_error
                );
                inner.last_error.clear();
                inner
                    .status
                    .record_drift(std::slice::from_ref(&line), true, SystemTime::now());
                vec![line]
            }
            Err(e) => {
                inner.last_error = e.to_string();
                Vec::new()
            }
        }
    }

    /// Restarts dead dnsmasq instances and retries the tiers whose dnsmasq
    /// failed; both count as drift repaired (or not).
    fn check_dnsmasq(&self, inner: &mut Inner, router: &Router) -> Vec<String> {
        let mut found = inner.dnsmasq.check();
        // A dead charon is restarted with the VPN of the applied state.
        let vpn = router.vpn.clone();
        found.extend(inner.vpn.check(vpn.as_ref()));
        let failed: Vec<String> = inner
            .status
            .dhcp_failures
            .iter()
            .map(|(index, e)| format!("{}: dnsmasq was not running: {e}", dev_name(*index)))
            .collect();
        if !failed.is_empty() {
            let files = plan::dnsmasq::plan_with_links(
                router,
                &self.settings.dnsmasq_dir,
                &inner.link_mtus,
            );
            let changes = self.apply_dnsmasq(inner, &files);
            found.extend(failed);
            found.extend(changes);
        }
        if !found.is_empty() {
            // Repaired when every instance runs now.
            let repaired = inner.status.dhcp_failures.is_empty()
                && inner.dnsmasq.live_status().iter().all(|s| s.3);
            inner
                .status
                .record_drift(&found, repaired, SystemTime::now());
        }
        found
    }

    /// The agent's condition alone (GetState with `summary`): the applied
    /// generation, whether it serves, the last errors and repairs; what a
    /// health check needs, without the desired state, the live table, the
    /// dnsmasq or VPN status.
    pub async fn summary(&self) -> pb::GetStateResponse {
        let inner = self.inner.lock().await;
        pb::GetStateResponse {
            generation: inner.applied_generation,
            last_error: inner.last_error.clone(),
            state_file_error: inner.status.state_file.clone().unwrap_or_default(),
            repairs: Some(inner.status.repairs_pb()),
            part_errors: inner.status.part_errors_pb(),
            serving: inner.status.serving() && inner.last_error.is_empty(),
            ..Default::default()
        }
    }

    /// The applied generation and the ACL items' counters alone (GetState
    /// with `acl_counters_only`).
    pub async fn counters_only(&self) -> pb::GetStateResponse {
        let generation = self.inner.lock().await.applied_generation;
        pb::GetStateResponse {
            generation,
            acl_counters: self.acl_counters().await,
            ..Default::default()
        }
    }

    /// The ACL items' counters as the kernel holds them now, read without
    /// the lock, each with the id of the list its NIC uses in the desired
    /// state. Empty when the table cannot be read (logged).
    async fn acl_counters(&self) -> Vec<pb::AclItemCounters> {
        let counts = match self.nft.list_json().await {
            Ok(Some(json)) => counters::item_counters(&json),
            Ok(None) => Ok(Default::default()),
            Err(e) => Err(e.to_string()),
        };
        let counts = match counts {
            Ok(counts) => counts,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the ACL counters");
                return Vec::new();
            }
        };
        let lists: std::collections::BTreeMap<u32, String> = {
            let inner = self.inner.lock().await;
            inner
                .desired
                .config
                .network_acls
                .iter()
                .map(|a| (a.device_index, a.acl_id.clone()))
                .collect()
        };
        acl_counters_pb(counts, &lists)
    }

    /// The desired state, the applied generation, the live table, the
    /// dnsmasq instances as they are now, and the agent's condition.
    pub async fn state(&self) -> pb::GetStateResponse {
        let mut response = {
            let mut inner = self.inner.lock().await;
            let mut dnsmasq: Vec<pb::DnsmasqStatus> = inner
                .dnsmasq
                .live_status()
                .into_iter()
                .map(|(device_index, pid, hosts, running)| pb::DnsmasqStatus {
                    device_index,
                    pid,
                    hosts,
                    running,
                    error: String::new(),
                })
                .collect();
            for (index, error) in &inner.status.dhcp_failures {
                match dnsmasq.iter_mut().find(|d| d.device_index == *index) {
                    Some(d) => d.error = error.clone(),
                    None => dnsmasq.push(pb::DnsmasqStatus {
                        device_index: *index,
                        error: error.clone(),
                        ..Default::default()
                    }),
                }
            }
            dnsmasq.sort_by_key(|d| d.device_index);
            pb::GetStateResponse {
                config: Some(inner.desired.config.clone()),
                generation: inner.applied_generation,
                live_ruleset: String::new(),
                last_error: inner.last_error.clone(),
                dnsmasq,
                state_file_error: inner.status.state_file.clone().unwrap_or_default(),
                repairs: Some(inner.status.repairs_pb()),
                part_errors: inner.status.part_errors_pb(),
                serving: inner.status.serving() && inner.last_error.is_empty(),
                vpn: {
                    let vpn = inner.router.vpn.clone();
                    inner.vpn.status(vpn.as_ref())
                },
                acl_counters: Vec::new(),
            }
        };
        // Both readings without the lock, side by side.
        let (text, counters) = tokio::join!(self.nft.list(), self.acl_counters());
        response.live_ruleset = match text {
            Ok(Some(text)) => text,
            Ok(None) => String::new(),
            Err(e) => format!("# cannot list the table: {e}"),
        };
        response.acl_counters = counters;
        response
    }
}

fn acl_counters_pb(
    counts: counters::ItemCounters,
    lists: &std::collections::BTreeMap<u32, String>,
) -> Vec<pb::AclItemCounters> {
    counts
        .into_iter()
        .map(
            |((device_index, direction, number, item_id), (packets, bytes))| pb::AclItemCounters {
                device_index,
                traffic_type: match direction {
                    Direction::Ingress => pb::TrafficType::Ingress,
                    Direction::Egress => pb::TrafficType::Egress,
                } as i32,
                number,
                packets,
                bytes,
                acl_id: lists.get(&device_index).cloned().unwrap_or_default(),
                item_id,
            },
        )
        .collect()
}
