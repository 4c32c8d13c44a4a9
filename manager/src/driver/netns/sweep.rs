//! The sweeper: after a crash, or when the database forgot a router or VM,
//! namespaces of the driver's prefix may outlive what they stood for. The
//! sweeper removes those the database does not know, with the processes in
//! them, and the bridges and files they leave.

use std::collections::BTreeSet;

use super::error::NetnsError;
use super::names::{self, NsKind};
use super::router::remove_dir;
use super::zone::teardown;
use super::{Inner, ip};

impl Inner {
    pub(super) async fn sweep(&self, known: &[String]) -> Vec<String> {
        let prefix = self.names.prefix().to_string();
        let keep = |ns: &str| {
            known
                .iter()
                .any(|k| k == ns || ns.strip_prefix(&prefix) == Some(k.as_str()))
        };
        let list = || match ip::list(&prefix) {
            Ok(all) => all,
            Err(e) => {
                tracing::warn!("sweeper: {e}");
                Vec::new()
            }
        };
        let mut removed = Vec::new();

        // Routers and VMs first: their ports leave the zones with them.
        for ns in list() {
            let Some(NsKind::Guest(name)) = self.names.classify(&ns) else {
                continue;
            };
            if keep(&ns) || self.starting_or_running(&name) {
                continue;
            }
            self.forget(&name);
            match self.remove_ns(&ns, None).await {
                Ok(()) => removed.push(ns.clone()),
                Err(e) => tracing::warn!(netns = %ns, "sweeper: {e}"),
            }
            if let Err(e) = remove_dir(&ip::etc_dir(&ns)) {
                tracing::warn!("sweeper: {e}");
            }
        }

        // Then zones: one stays while it is known or still holds a NIC of a
        // router or VM; its upstream and on-premises namespaces stay with it.
        // Under the topology lock, so no port arrives between look and act.
        let _topology = self.topology.lock().await;
        let all = list();
        let mut kept_zones = BTreeSet::new();
        for ns in &all {
            if let Some(NsKind::Zone(z)) = self.names.classify(ns) {
                let in_use = ip::links(ns)
                    .await
                    .map(|l| l.iter().any(|l| names::is_nic_port(&l.name)))
                    // When in doubt, keep.
                    .unwrap_or(true);
                if keep(ns) || in_use {
                    kept_zones.insert(z);
                }
            }
        }
        let mut doomed: Vec<(u8, &String)> = all
            .iter()
            .filter(|ns| !keep(ns))
            .filter_map(|ns| match self.names.classify(ns)? {
                NsKind::Upstream(z) | NsKind::OnPrem(z) if !kept_zones.contains(&z) => {
                    Some((0, ns))
                }
                NsKind::Zone(z) if !kept_zones.contains(&z) => Some((1, ns)),
                _ => None,
            })
            .collect();
        doomed.sort();
        for (_, ns) in doomed {
            let mut errors = Vec::new();
            if let Err(e) = ip::kill_all(ns).await {
                errors.push(e);
            }
            errors.extend(teardown(ns).await);
            match NetnsError::collect(errors) {
                Ok(()) => removed.push(ns.clone()),
                Err(e) => tracing::warn!(netns = %ns, "sweeper: {e}"),
            }
        }
        for ns in &all {
            if let Some(NsKind::Zone(z)) = self.names.classify(ns)
                && kept_zones.contains(&z)
            {
                for e in self.collect_bridges(ns).await {
                    tracing::warn!(netns = %ns, "sweeper: {e}");
                }
            }
        }
        drop(_topology);
        self.sweep_files(&keep);
        for ns in &removed {
            tracing::info!(netns = %ns, "sweeper removed a namespace the database does not know");
        }
        removed
    }

    /// Drops the driver's memory of a router or VM.
    /// Whether the driver holds `name` now: `known` was read before the
    /// namespaces were listed, and a start that began since records itself
    /// in the state before it makes anything.
    fn starting_or_running(&self, name: &str) -> bool {
        self.state().holds(name)
    }

    fn forget(&self, name: &str) {
        let mut state = self.state();
        if state.routers.remove(name).is_some() {
            self.endpoints.remove(name);
        }
        state.vms.remove(name);
    }

    /// Removes the data directories of unknown routers and VMs that no
    /// longer have a namespace, and `/etc/netns` entries of the prefix whose
    /// namespace is gone.
    fn sweep_files(&self, keep: &dyn Fn(&str) -> bool) {
        for kind in ["routers", "vms"] {
            let Ok(entries) = std::fs::read_dir(self.data_dir.join(kind)) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                let ns = self.names.router_ns(&name);
                if keep(&ns) || ip::exists(&ns) {
                    continue;
                }
                // Decided and done under the state lock: a start records
                // itself there before it makes its directory, so none can
                // begin between the look and the removal.
                let state = self.state();
                if state.holds(&name) {
                    continue;
                }
                if let Err(e) = remove_dir(&entry.path()) {
                    tracing::warn!("sweeper: {e}");
                }
                drop(state);
            }
        }
        let Ok(entries) = std::fs::read_dir(ip::NETNS_ETC_DIR) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(ns) = entry.file_name().into_string() else {
                continue;
            };
            if ns.starts_with(self.names.prefix())
                && !ip::exists(&ns)
                && !keep(&ns)
                && let Err(e) = remove_dir(&entry.path())
            {
                tracing::warn!("sweeper: {e}");
            }
        }
    }
}
