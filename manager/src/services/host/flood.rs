//! The flood lists of VXLAN segments (head-end replication): for every
//! segment (`vxlan://N`) and every host with a member on it (a router NIC
//! or a VM NIC), the underlay addresses of the other member hosts. Hosts
//! without an underlay address neither receive a list nor appear in one:
//! their segments stay on the host. Pure; the manager sends each entry as
//! the host agent's `SetFloodList`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One segment member: the host a NIC is on and the NIC's segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The host (internal id).
    pub host_id: i64,
    /// The NIC's broadcast URI (`vxlan://5001`, `vlan://100` …).
    pub broadcast_uri: String,
}

/// The flood list one host agent gets for one segment.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FloodList {
    /// The host whose VTEP it is.
    pub host_id: i64,
    /// The segment (`vxlan://N`).
    pub broadcast_uri: String,
    /// The other member hosts' underlay addresses, sorted.
    pub remote_vteps: Vec<String>,
}

/// Whether a broadcast URI is a VXLAN segment.
fn is_vxlan(uri: &str) -> bool {
    uri.strip_prefix("vxlan://")
        .is_some_and(|vni| !vni.is_empty() && vni.bytes().all(|b| b.is_ascii_digit()))
}

/// The flood lists of every VXLAN segment of `members`, given each host's
/// underlay address (`underlays`; a host absent or None has none).
pub fn flood_lists(members: &[Member], underlays: &HashMap<i64, Option<String>>) -> Vec<FloodList> {
    let underlay = |host: i64| underlays.get(&host).cloned().flatten();
    let mut segments: BTreeMap<&str, BTreeSet<i64>> = BTreeMap::new();
    for m in members.iter().filter(|m| is_vxlan(&m.broadcast_uri)) {
        if underlay(m.host_id).is_some() {
            segments
                .entry(m.broadcast_uri.as_str())
                .or_default()
                .insert(m.host_id);
        }
    }
    let mut out = Vec::new();
    for (uri, hosts) in segments {
        for &host in &hosts {
            let mut remote_vteps: Vec<String> = hosts
                .iter()
                .filter(|other| **other != host)
                .filter_map(|other| underlay(*other))
                .collect();
            remote_vteps.sort();
            remote_vteps.dedup();
            out.push(FloodList {
                host_id: host,
                broadcast_uri: uri.to_string(),
                remote_vteps,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(host_id: i64, uri: &str) -> Member {
        Member {
            host_id,
            broadcast_uri: uri.into(),
        }
    }

    fn underlays(pairs: &[(i64, Option<&str>)]) -> HashMap<i64, Option<String>> {
        pairs
            .iter()
            .map(|(h, a)| (*h, a.map(str::to_string)))
            .collect()
    }

    #[test]
    fn each_member_host_floods_to_the_other_member_hosts() {
        let lists = flood_lists(
            &[
                member(1, "vxlan://5001"),
                member(2, "vxlan://5001"),
                member(2, "vxlan://5001"),
                member(3, "vxlan://5001"),
                member(3, "vxlan://5002"),
            ],
            &underlays(&[
                (1, Some("192.0.2.1")),
                (2, Some("192.0.2.2")),
                (3, Some("192.0.2.3")),
            ]),
        );
        assert_eq!(
            lists,
            vec![
                FloodList {
                    host_id: 1,
                    broadcast_uri: "vxlan://5001".into(),
                    remote_vteps: vec!["192.0.2.2".into(), "192.0.2.3".into()],
                },
                FloodList {
                    host_id: 2,
                    broadcast_uri: "vxlan://5001".into(),
                    remote_vteps: vec!["192.0.2.1".into(), "192.0.2.3".into()],
                },
                FloodList {
                    host_id: 3,
                    broadcast_uri: "vxlan://5001".into(),
                    remote_vteps: vec!["192.0.2.1".into(), "192.0.2.2".into()],
                },
                // A segment on one host only: an empty list (nothing to flood to).
                FloodList {
                    host_id: 3,
                    broadcast_uri: "vxlan://5002".into(),
                    remote_vteps: vec![],
                },
            ]
        );
    }

    #[test]
    fn hosts_without_underlay_and_non_vxlan_segments_are_left_out() {
        let lists = flood_lists(
            &[
                member(1, "vxlan://7"),
                member(2, "vxlan://7"),
                member(1, "vlan://100"),
                member(2, "vlan://100"),
                member(1, "vxlan://"),
            ],
            &underlays(&[(1, Some("192.0.2.1")), (2, None)]),
        );
        assert_eq!(
            lists,
            vec![FloodList {
                host_id: 1,
                broadcast_uri: "vxlan://7".into(),
                remote_vteps: vec![],
            }]
        );
    }
}
