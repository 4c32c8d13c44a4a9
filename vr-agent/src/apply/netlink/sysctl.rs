//! The IPv4 sysctls a router needs, per network namespace.
//!
//! /proc/sys/net shows the namespace of the thread that opens the file, so
//! these must run on a thread of the router's namespace (the caller checks).

use std::fmt;

use super::{NetlinkError, Result};
use crate::plan::net::NetPlan;

/// Loose reverse-path filtering: a source must be routable through some
/// link, not necessarily the one it arrived on. Strict mode (1) would drop
/// the asymmetric flows policy routing creates, e.g. a reply that leaves by
/// the public NIC it came in on while the main table's default is elsewhere.
const RP_FILTER_LOOSE: &str = "2";

/// One sysctl to set.
pub(super) struct SysctlOp {
    name: String,
    value: &'static str,
    /// The current value; None when unreadable (e.g. a missing link).
    old: Option<String>,
}

impl fmt::Display for SysctlOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.old {
            Some(old) => write!(f, "set sysctl {}={} (was {old})", self.name, self.value),
            None => write!(f, "set sysctl {}={} (unreadable)", self.name, self.value),
        }
    }
}

/// The wanted values, by dotted name.
fn wanted(plan: &NetPlan) -> Vec<(String, &'static str)> {
    let mut out = vec![
        ("net.ipv4.ip_forward".to_string(), "1"),
        ("net.ipv4.conf.all.rp_filter".to_string(), RP_FILTER_LOOSE),
    ];
    for link in &plan.links {
        out.push((
            format!("net.ipv4.conf.{}.rp_filter", link.name),
            RP_FILTER_LOOSE,
        ));
        // Without it, deleting a link's primary address in a subnet deletes
        // every secondary address of that subnet with it (e.g. releasing the
        // first public IP would drop the others).
        out.push((
            format!("net.ipv4.conf.{}.promote_secondaries", link.name),
            "1",
        ));
    }
    out
}

fn path(name: &str) -> String {
    format!("/proc/sys/{}", name.replace('.', "/"))
}

/// The sysctls whose value differs from the wanted one.
pub(super) fn diff(plan: &NetPlan) -> Vec<SysctlOp> {
    wanted(plan)
        .into_iter()
        .filter_map(|(name, value)| {
            let old = std::fs::read_to_string(path(&name))
                .ok()
                .map(|s| s.trim().to_string());
            (old.as_deref() != Some(value)).then_some(SysctlOp { name, value, old })
        })
        .collect()
}

impl SysctlOp {
    /// Writes the value.
    pub(super) fn execute(&self) -> Result<()> {
        std::fs::write(path(&self.name), self.value).map_err(|source| NetlinkError::Sysctl {
            what: format!("set sysctl {}={}", self.name, self.value),
            source,
        })
    }
}
