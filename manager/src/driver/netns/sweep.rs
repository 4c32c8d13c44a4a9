//! The sweeper: after a crash, or when the database forgot a router or VM,
//! namespaces of the driver's prefix may outlive what they stood for. The
//! sweeper removes those the database does not know, with the processes in
//! them, and the bridges and files they leave.

use std::collections::BTreeSet;

use super::names::NsKind;
use super::router::remove_dir;
use super::{Inner, ip};

impl Inner {
    pub(super) async fn sweep(&self, known: &[String]) -> Vec<String> {
        let prefix = self.names.prefix().to_string();
        let keep = |ns: &str| {
            known
                .iter()
                .any(|k| k == ns || ns.strip_prefix(&prefix) == Some(k.as_str()))
        };
        let all = match ip::list(&prefix) {
            Ok(all) => all,
            Err(e) => {
                tracing::warn!("sweeper: {e}");
                return Vec::new();
            }
        };
        let kept_zones: BTreeSet<String> = all
            .iter()
            .filter(|ns| keep(ns))
            .filter_map(|ns| match self.names.classify(ns) {
                Some(NsKind::Zone(z)) => Some(z),
                _ => None,
            })
            .collect();
        // Routers and VMs first, then what hangs off a zone, then zones: a
        // zone goes after the ports in it.
        let mut doomed: Vec<(u8, String)> = all
            .iter()
            .filter(|ns| !keep(ns))
            .filter_map(|ns| {
                let rank = match self.names.classify(ns)? {
                    NsKind::Guest(_) => 0,
                    NsKind::Upstream(z) | NsKind::OnPrem(z) if kept_zones.contains(&z) => {
                        return None;
                    }
                    NsKind::Upstream(_) | NsKind::OnPrem(_) => 1,
                    NsKind::Zone(_) => 2,
                };
                Some((rank, ns.clone()))
            })
            .collect();
        doomed.sort();

        let mut removed = Vec::new();
        for (_, ns) in doomed {
            if let Some(NsKind::Guest(name)) = self.names.classify(&ns) {
                self.forget(&name);
            }
            match self.remove_ns(&ns, None).await {
                Ok(()) => {
                    tracing::info!(netns = %ns, "sweeper removed an unknown namespace");
                    removed.push(ns.clone());
                }
                Err(e) => tracing::warn!(netns = %ns, "sweeper: {e}"),
            }
            if let Err(e) = remove_dir(&ip::etc_dir(&ns)) {
                tracing::warn!("sweeper: {e}");
            }
        }
        for ns in all.iter().filter(|ns| keep(ns)) {
            if let Some(NsKind::Zone(_)) = self.names.classify(ns) {
                let _topology = self.topology.lock().await;
                for e in self.collect_bridges(ns).await {
                    tracing::warn!(netns = %ns, "sweeper: {e}");
                }
            }
        }
        self.sweep_files(&keep);
        removed
    }

    /// Drops the driver's memory of a router or VM.
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
                if let Err(e) = remove_dir(&entry.path()) {
                    tracing::warn!("sweeper: {e}");
                }
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
