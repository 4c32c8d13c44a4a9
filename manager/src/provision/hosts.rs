//! The manager's own host: at start, the default host agent (the embedded
//! one, or the one `--host-agent-url` names) is recorded as a host of every
//! zone that has none yet, in the pod `Pod1` and cluster `Cluster1` a first
//! CloudStack zone would have, and the routers and VMs that have no host
//! (a database from before hosts) are given to it. A zone that already has
//! hosts is left as its admin made it.

use crate::error::Error;
use crate::store::{Db, Page, host, pod, zone};

/// Names of the pod and cluster the default host goes in.
pub const DEFAULT_POD: &str = "Pod1";
/// See [`DEFAULT_POD`].
pub const DEFAULT_CLUSTER: &str = "Cluster1";

/// What [`register_default`] did in one zone.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The zone (internal id).
    pub zone_id: i64,
    /// The host recorded.
    pub host_id: i64,
    /// Routers and VMs given to it.
    pub adopted: (u64, u64),
}

/// Records the default host agent at `url` (hypervisor `hypervisor`, named
/// `name`) in every live zone without a host.
pub async fn register_default(
    db: &Db,
    url: &str,
    hypervisor: &str,
    name: &str,
) -> Result<Vec<Registered>, Error> {
    let zones = zone::list(db, &zone::ZoneFilter::default(), Page::ALL).await?;
    let mut done = Vec::new();
    for z in zones.items {
        if !host::live_in_zone(db, z.id).await?.is_empty() {
            continue;
        }
        let (url, hypervisor, name) = (url.to_string(), hypervisor.to_string(), name.to_string());
        let zone_id = z.id;
        let h = db
            .transaction(move |tx| {
                Box::pin(async move {
                    let filter = pod::GroupFilter {
                        zone_id: Some(zone_id),
                        name: Some(DEFAULT_POD.into()),
                        ..Default::default()
                    };
                    let found = pod::list_pods(&mut *tx, &filter, Page::ALL).await?;
                    let pod = match found.items.into_iter().next() {
                        Some(p) => p,
                        // The pod's network is this machine's loopback: a
                        // single machine has no management network of its own.
                        None => {
                            pod::create_pod(
                                &mut *tx,
                                pod::NewPod {
                                    name: DEFAULT_POD.into(),
                                    zone_id,
                                    gateway: "127.0.0.1".into(),
                                    cidr_address: "127.0.0.0".into(),
                                    cidr_size: 8,
                                    start_ip: "127.0.0.2".into(),
                                    end_ip: Some("127.255.255.254".into()),
                                    allocation_state: "Enabled".into(),
                                },
                            )
                            .await?
                        }
                    };
                    let cluster =
                        match pod::cluster_by_name(&mut *tx, pod.id, DEFAULT_CLUSTER).await? {
                            Some(c) => c,
                            None => {
                                pod::create_cluster(
                                    &mut *tx,
                                    pod::NewCluster {
                                        name: DEFAULT_CLUSTER.into(),
                                        pod_id: pod.id,
                                        zone_id,
                                        hypervisor: hypervisor.clone(),
                                        cluster_type: "CloudManaged".into(),
                                        allocation_state: "Enabled".into(),
                                    },
                                )
                                .await?
                            }
                        };
                    host::create(
                        &mut *tx,
                        host::NewHost {
                            name,
                            url,
                            ip_address: Some("127.0.0.1".into()),
                            zone_id,
                            pod_id: pod.id,
                            cluster_id: Some(cluster.id),
                            hypervisor,
                            resource_state: host::RESOURCE_ENABLED.into(),
                            version: Some(env!("CARGO_PKG_VERSION").into()),
                            ..Default::default()
                        },
                    )
                    .await
                })
            })
            .await?;
        let adopted = host::adopt_unplaced(db, z.id, h.id).await?;
        done.push(Registered {
            zone_id: z.id,
            host_id: h.id,
            adopted,
        });
    }
    Ok(done)
}
