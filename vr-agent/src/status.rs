//! What the agent knows about its own condition, for `GetState` and health:
//! the last error of each part, tiers whose DHCP failed, drift and repairs,
//! and whether it runs without its persisted state. Pure bookkeeping: the
//! agent records, this module keeps and reports.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use vpc_proto::v1 as pb;

/// A part of the agent that can fail on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    /// Reading or writing the persisted state.
    State,
    /// Links, addresses, routes, rules, sysctls.
    Netlink,
    /// The nftables table.
    Nft,
    /// The dnsmasq instances.
    Dnsmasq,
    /// The HAProxy of the rules the kernel cannot balance.
    Proxy,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::State => "state",
            Part::Netlink => "netlink",
            Part::Nft => "nft",
            Part::Dnsmasq => "dnsmasq",
            Part::Proxy => "haproxy",
        })
    }
}

/// The agent's condition.
#[derive(Debug, Default, Clone)]
pub struct Status {
    /// Why the persisted state was not loaded at start; cleared by the
    /// ApplyConfig that gives the agent a state again.
    pub state_file: Option<String>,
    /// The last error of each part, removed when the part applies again.
    pub errors: BTreeMap<Part, String>,
    /// Tiers whose dnsmasq could not be started, by device index.
    pub dhcp_failures: BTreeMap<u32, String>,
    /// Reconcile ticks that found drift, and those that repaired it.
    pub drift_found: u64,
    pub repaired: u64,
    /// When the last repair was made, and what it fixed.
    pub last_repair: Option<SystemTime>,
    pub last_repaired: Vec<String>,
}

impl Status {
    /// Records the outcome of one part.
    pub fn record(&mut self, part: Part, result: Result<(), String>) {
        match result {
            Ok(()) => {
                self.errors.remove(&part);
            }
            Err(e) => {
                self.errors.insert(part, e);
            }
        }
    }

    /// True when the desired state is applied: no part that carries the
    /// routing and filtering failed, and the agent has a state. A tier's
    /// DHCP failure alone does not count: everything else is applied.
    pub fn serving(&self) -> bool {
        self.state_file.is_none()
            && [Part::State, Part::Netlink, Part::Nft]
                .iter()
                .all(|p| !self.errors.contains_key(p))
    }

    /// Records one reconcile tick that found `drift`; `repaired` tells
    /// whether applying again fixed it.
    pub fn record_drift(&mut self, drift: &[String], repaired: bool, now: SystemTime) {
        if drift.is_empty() {
            return;
        }
        self.drift_found += 1;
        if repaired {
            self.repaired += 1;
            self.last_repair = Some(now);
            self.last_repaired = drift.to_vec();
        }
    }

    /// The DHCP failures as the protocol carries them.
    pub fn dhcp_failures_pb(&self) -> Vec<pb::DhcpFailure> {
        self.dhcp_failures
            .iter()
            .map(|(index, error)| pb::DhcpFailure {
                device_index: *index,
                error: error.clone(),
            })
            .collect()
    }

    /// The repairs as the protocol carries them.
    pub fn repairs_pb(&self) -> pb::Repairs {
        pb::Repairs {
            drift_found: self.drift_found,
            repaired: self.repaired,
            last_repair_unix_ms: self
                .last_repair
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            last_repaired: self.last_repaired.clone(),
        }
    }

    /// The part errors as the protocol carries them.
    pub fn part_errors_pb(&self) -> Vec<pb::PartError> {
        self.errors
            .iter()
            .map(|(part, error)| pb::PartError {
                part: part.to_string(),
                error: error.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_follows_the_parts_that_route_and_filter() {
        let mut status = Status::default();
        assert!(status.serving());
        status.dhcp_failures.insert(3, "address in use".into());
        status.record(Part::Dnsmasq, Err("eth3 failed".into()));
        assert!(status.serving(), "a tier's DHCP failure alone");
        status.record(Part::Nft, Err("refused".into()));
        assert!(!status.serving());
        status.record(Part::Nft, Ok(()));
        assert!(status.serving());
        status.state_file = Some("corrupt".into());
        assert!(!status.serving(), "running without a state");
    }

    #[test]
    fn drift_is_counted_and_the_last_repair_kept() {
        let mut status = Status::default();
        let at = UNIX_EPOCH + std::time::Duration::from_millis(1_500);
        status.record_drift(&[], true, at);
        assert_eq!(status.drift_found, 0);
        status.record_drift(&["nft table was changed".into()], false, at);
        status.record_drift(&["route missing".into()], true, at);
        let pb = status.repairs_pb();
        assert_eq!((pb.drift_found, pb.repaired), (2, 1));
        assert_eq!(pb.last_repair_unix_ms, 1_500);
        assert_eq!(pb.last_repaired, ["route missing"]);
    }
}
