//! The flood lists of VXLAN segments (head-end replication): for every
//! segment (`vxlan://N`) and every host with a member on it (a router NIC
//! or a VM NIC), the underlay addresses of the other member hosts. Hosts
//! without an underlay address neither receive a list nor appear in one:
//! their segments stay on the host. [`flood_lists`] is pure;
//! [`sync_once`] reads the members from the database and sends each list
//! that changed as the host agent's `SetFloodList` ([`run_sync`] every
//! second on one manager of the cluster).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use super::Plane;
use crate::error::Error;
use crate::orchestration::agent::FloodListView;
use crate::store;

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

/// The lists last sent, by (host URL, zone, segment).
#[derive(Debug, Default)]
pub struct Sent {
    lists: HashMap<(String, uuid::Uuid, String), Vec<String>>,
}

impl Sent {
    pub fn new() -> Sent {
        Sent::default()
    }

    /// Forgets what was sent, so the next round sends every list again (a
    /// host agent whose zone namespace was rebuilt has lost its lists).
    pub fn forget(&mut self) {
        self.lists.clear();
    }
}

/// One round: every VXLAN segment's flood list on every member host, sent
/// where it differs from what this manager sent last; a host that left a
/// segment gets an empty list. Returns how many lists were sent. A host
/// that does not answer is tried again next round.
pub async fn sync_once(plane: &Plane, sent: &mut Sent) -> Result<usize, Error> {
    let rows = store::host::vxlan_members(&plane.db).await?;
    let mut by_zone: BTreeMap<uuid::Uuid, Vec<&store::host::SegmentMember>> = BTreeMap::new();
    for row in &rows {
        by_zone.entry(row.zone_uuid).or_default().push(row);
    }
    let mut wanted: HashMap<(String, uuid::Uuid, String), Vec<String>> = HashMap::new();
    for (zone, rows) in by_zone {
        let members: Vec<Member> = rows
            .iter()
            .map(|r| Member {
                host_id: r.host_id,
                broadcast_uri: r.broadcast_uri.clone(),
            })
            .collect();
        let underlays: HashMap<i64, Option<String>> = rows
            .iter()
            .map(|r| (r.host_id, r.underlay_address.clone()))
            .collect();
        let urls: HashMap<i64, &str> = rows.iter().map(|r| (r.host_id, r.url.as_str())).collect();
        for list in flood_lists(&members, &underlays) {
            if let Some(url) = urls.get(&list.host_id) {
                wanted.insert(
                    ((*url).to_string(), zone, list.broadcast_uri),
                    list.remote_vteps,
                );
            }
        }
    }
    // Hosts that left a segment they had a list for: an empty list.
    let gone: Vec<_> = sent
        .lists
        .keys()
        .filter(|k| !wanted.contains_key(*k))
        .cloned()
        .collect();
    for key in gone {
        wanted.insert(key, Vec::new());
    }
    let mut count = 0;
    for (key, vteps) in wanted {
        if sent.lists.get(&key) == Some(&vteps) {
            continue;
        }
        let (url, zone, uri) = &key;
        let view = FloodListView {
            zone_id: *zone,
            broadcast_uri: uri.clone(),
            remote_vteps: vteps.clone(),
        };
        let driver = plane.network.element.driver();
        match driver.set_flood_list(Some(url), &view).await {
            Ok(()) => {
                count += 1;
                if vteps.is_empty() {
                    sent.lists.remove(&key);
                } else {
                    sent.lists.insert(key, vteps);
                }
            }
            Err(e) => {
                tracing::warn!(host = url, segment = uri, error = %e, "setting a flood list failed")
            }
        }
    }
    Ok(count)
}

/// A segment member the database does not show yet: a router in standby
/// on the host it moves to, which must be in the others' flood lists (and
/// have its own) before it takes over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joining {
    pub host: store::host::Host,
    /// The segment (`vxlan://N`).
    pub broadcast_uri: String,
}

/// Sends now, without waiting for [`run_sync`]'s next round, the flood
/// lists of the VXLAN segments `segments` of zone `zone` on every member
/// host, counting `joining` as members, and an empty list to each host of
/// `left` (hosts that had a member on them and have none now). Called
/// after a placement or a move, so a VM or router that starts elsewhere is
/// reachable as soon as it is up. A host that does not answer is logged;
/// the loop sends it again. Returns how many lists were sent.
pub async fn sync_segments(
    db: &store::Db,
    driver: &crate::orchestration::agent::SharedDriver,
    zone: uuid::Uuid,
    segments: &[String],
    joining: &[Joining],
    left: &[store::host::Host],
) -> Result<usize, Error> {
    let segments: BTreeSet<&str> = segments
        .iter()
        .map(String::as_str)
        .filter(|u| is_vxlan(u))
        .collect();
    if segments.is_empty() {
        return Ok(0);
    }
    let rows = store::host::vxlan_members(db).await?;
    let rows: Vec<_> = rows
        .iter()
        .filter(|r| r.zone_uuid == zone && segments.contains(r.broadcast_uri.as_str()))
        .collect();
    let mut members: Vec<Member> = rows
        .iter()
        .map(|r| Member {
            host_id: r.host_id,
            broadcast_uri: r.broadcast_uri.clone(),
        })
        .collect();
    let mut underlays: HashMap<i64, Option<String>> = rows
        .iter()
        .map(|r| (r.host_id, r.underlay_address.clone()))
        .collect();
    let mut urls: HashMap<i64, String> = rows.iter().map(|r| (r.host_id, r.url.clone())).collect();
    for j in joining {
        members.push(Member {
            host_id: j.host.id,
            broadcast_uri: j.broadcast_uri.clone(),
        });
        underlays.insert(j.host.id, j.host.underlay_address.clone());
        urls.insert(j.host.id, j.host.url.clone());
    }
    let mut sends: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for list in flood_lists(&members, &underlays) {
        if let Some(url) = urls.get(&list.host_id) {
            sends.insert((url.clone(), list.broadcast_uri), list.remote_vteps);
        }
    }
    for host in left.iter().filter(|h| h.underlay_address.is_some()) {
        for uri in &segments {
            sends
                .entry((host.url.clone(), (*uri).to_string()))
                .or_default();
        }
    }
    let mut count = 0;
    for ((url, uri), remote_vteps) in sends {
        let view = FloodListView {
            zone_id: zone,
            broadcast_uri: uri.clone(),
            remote_vteps,
        };
        match driver.set_flood_list(Some(&url), &view).await {
            Ok(()) => count += 1,
            Err(e) => {
                tracing::warn!(host = url, segment = uri, error = %e, "setting a flood list now failed; the loop sends it again")
            }
        }
    }
    Ok(count)
}

/// After a router or VM was placed and is about to start (or moved): the
/// flood lists of its VXLAN segments now, so its host floods to the
/// others and they to it from its first packet. Errors are only logged:
/// the loop sends the lists again.
pub async fn sync_after_placement(
    db: &store::Db,
    driver: &crate::orchestration::agent::SharedDriver,
    zone: uuid::Uuid,
    segments: &[String],
) {
    if let Err(e) = sync_segments(db, driver, zone, segments, &[], &[]).await {
        tracing::warn!(error = %e, "sending flood lists after a placement failed; the loop will");
    }
}

/// Every this many rounds every list is sent again.
const RESEND_EVERY: u32 = 60;

/// Keeps the flood lists current: a round every second on the one manager
/// of the cluster that runs this loop.
pub async fn run_sync(plane: Plane) {
    let mut sent = Sent::new();
    let mut rounds = 0u32;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if !crate::cluster::runs_loop(&plane.db, &plane.member, crate::cluster::LOOP_FLOOD_LISTS)
            .await
        {
            // Another manager runs it now; if this one takes it back later
            // it starts from nothing.
            sent.forget();
            continue;
        }
        rounds += 1;
        if rounds.is_multiple_of(RESEND_EVERY) {
            sent.forget();
        }
        if let Err(e) = sync_once(&plane, &mut sent).await {
            tracing::warn!(error = %e, "flood lists: reading the segments' members failed");
        }
    }
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
