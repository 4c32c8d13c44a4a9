//! The `pod`, `cluster` and `host` objects, and their documented fields.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::error::Error;
use crate::server::date;
use crate::server::registry::{FieldSpec, field};
use crate::store::{Db, host, pod, zone};

/// The documented fields of a pod.
pub(crate) const POD_FIELDS: &[FieldSpec] = &[
    field("id", "string", "the ID of the Pod"),
    field("name", "string", "the name of the Pod"),
    field("zoneid", "string", "the Zone ID of the Pod"),
    field("zonename", "string", "the Zone name of the Pod"),
    field("gateway", "string", "the gateway of the Pod"),
    field("netmask", "string", "the netmask of the Pod"),
    field("startip", "list", "the starting IP for the Pod"),
    field("endip", "list", "the ending IP for the Pod"),
    field("ipranges", "list", "the IP ranges for the Pod"),
    field(
        "allocationstate",
        "string",
        "the allocation state of the Pod",
    ),
];

/// The documented fields of a cluster.
pub(crate) const CLUSTER_FIELDS: &[FieldSpec] = &[
    field("id", "string", "the cluster ID"),
    field("name", "string", "the cluster name"),
    field("podid", "string", "the Pod ID of the cluster"),
    field("podname", "string", "the Pod name of the cluster"),
    field("zoneid", "string", "the Zone ID of the cluster"),
    field("zonename", "string", "the Zone name of the cluster"),
    field(
        "hypervisortype",
        "string",
        "the hypervisor type of the cluster",
    ),
    field("clustertype", "string", "the type of the cluster"),
    field(
        "allocationstate",
        "string",
        "the allocation state of the cluster",
    ),
    field(
        "managedstate",
        "string",
        "whether this cluster is managed by CloudStack",
    ),
];

/// The documented fields of a host.
pub(crate) const HOST_FIELDS: &[FieldSpec] = &[
    field("id", "string", "the ID of the host"),
    field("name", "string", "the name of the host"),
    field(
        "state",
        "status",
        "the state of the host: Up, Disconnected, Down",
    ),
    field("resourcestate", "string", "the resource state of the host"),
    field("type", "type", "the host type (Routing)"),
    field("ipaddress", "string", "the IP address of the host"),
    field("zoneid", "string", "the Zone ID of the host"),
    field("zonename", "string", "the Zone name of the host"),
    field("podid", "string", "the Pod ID of the host"),
    field("podname", "string", "the Pod name of the host"),
    field("clusterid", "string", "the cluster ID of the host"),
    field("clustername", "string", "the cluster name of the host"),
    field("hypervisor", "hypervisortype", "the host hypervisor"),
    field("version", "string", "the host version"),
    field("cpunumber", "integer", "the CPU number of the host"),
    field("memorytotal", "long", "the memory total of the host"),
    field(
        "lastpinged",
        "date",
        "the date and time the host was last pinged",
    ),
    field(
        "disconnected",
        "date",
        "when the host was found disconnected",
    ),
    field("created", "date", "the date and time the host was created"),
    field("url", "string", "where the managers reach the host agent"),
    field(
        "underlayaddress",
        "string",
        "the address other hosts reach its VTEPs on",
    ),
    field("underlaymtu", "integer", "the MTU of the underlay"),
    field(
        "routercount",
        "integer",
        "the number of virtual routers on the host",
    ),
    field(
        "virtualmachinecount",
        "integer",
        "the number of VMs on the host",
    ),
];

/// The dotted netmask of a prefix length.
pub(crate) fn netmask(prefix: u8) -> String {
    let bits: u32 = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    };
    std::net::Ipv4Addr::from(bits).to_string()
}

/// The `pod` object.
pub(crate) fn pod_view(p: &pod::Pod, zone: Option<&zone::Zone>) -> Value {
    let end = p.end_ip.clone().unwrap_or_default();
    json!({
        "id": p.uuid,
        "name": p.name,
        "zoneid": zone.map(|z| z.uuid),
        "zonename": zone.map(|z| z.name.clone()),
        "gateway": p.gateway,
        "netmask": netmask(p.cidr_size as u8),
        "startip": [p.start_ip],
        "endip": [end],
        "ipranges": [{
            "startip": p.start_ip,
            "endip": end,
            "forsystemvms": "0",
            "vlanid": null,
        }],
        "allocationstate": p.allocation_state,
        "hasannotations": false,
    })
}

/// The `cluster` object.
pub(crate) fn cluster_view(
    c: &pod::Cluster,
    pod: Option<&pod::Pod>,
    zone: Option<&zone::Zone>,
) -> Value {
    json!({
        "id": c.uuid,
        "name": c.name,
        "podid": pod.map(|p| p.uuid),
        "podname": pod.map(|p| p.name.clone()),
        "zoneid": zone.map(|z| z.uuid),
        "zonename": zone.map(|z| z.name.clone()),
        "hypervisortype": c.hypervisor_type,
        "clustertype": c.cluster_type,
        "allocationstate": c.allocation_state,
        "managedstate": c.managed_state,
        "hasannotations": false,
    })
}

/// The `host` objects of `hosts`, their zones, pods, clusters and the
/// routers and VMs on them read in one statement per table.
pub(crate) async fn host_views(db: &Db, hosts: &[host::Host]) -> Result<Vec<Value>, Error> {
    let zone_ids: Vec<i64> = hosts.iter().map(|h| h.data_center_id).collect();
    let pod_ids: Vec<i64> = hosts.iter().map(|h| h.pod_id).collect();
    let cluster_ids: Vec<i64> = hosts.iter().filter_map(|h| h.cluster_id).collect();
    let host_ids: Vec<i64> = hosts.iter().map(|h| h.id).collect();
    let zones: HashMap<i64, zone::Zone> = zone::by_ids(db, &zone_ids)
        .await?
        .into_iter()
        .map(|z| (z.id, z))
        .collect();
    let pods: HashMap<i64, pod::Pod> = pod::pods_by_ids(db, &pod_ids)
        .await?
        .into_iter()
        .map(|p| (p.id, p))
        .collect();
    let clusters: HashMap<i64, pod::Cluster> = pod::clusters_by_ids(db, &cluster_ids)
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    let loads = host::loads(db, &host_ids).await?;
    Ok(hosts
        .iter()
        .map(|h| {
            let zone = zones.get(&h.data_center_id);
            let pod = pods.get(&h.pod_id);
            let cluster = h.cluster_id.and_then(|c| clusters.get(&c));
            let (routers, vms) = loads.get(&h.id).copied().unwrap_or_default();
            json!({
                "id": h.uuid,
                "name": h.name,
                "state": h.status,
                "resourcestate": h.resource_state,
                "type": h.host_type,
                "ipaddress": h.private_ip_address,
                "zoneid": zone.map(|z| z.uuid),
                "zonename": zone.map(|z| z.name.clone()),
                "podid": pod.map(|p| p.uuid),
                "podname": pod.map(|p| p.name.clone()),
                "clusterid": cluster.map(|c| c.uuid),
                "clustername": cluster.map(|c| c.name.clone()),
                "clustertype": cluster.map(|c| c.cluster_type.clone()),
                "hypervisor": h.hypervisor_type,
                "version": h.version,
                "cpunumber": h.cpus,
                "memorytotal": h.ram,
                "lastpinged": h.last_ping.map(date),
                "disconnected": h.disconnected.map(date),
                "created": date(h.created),
                "url": h.url,
                "underlayaddress": h.underlay_address,
                "underlaymtu": h.underlay_mtu,
                "routercount": routers,
                "virtualmachinecount": vms,
                "islocalstorageactive": false,
                "hasannotations": false,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmasks_are_dotted_from_prefix_lengths() {
        assert_eq!(netmask(24), "255.255.255.0");
        assert_eq!(netmask(0), "0.0.0.0");
        assert_eq!(netmask(32), "255.255.255.255");
        assert_eq!(netmask(20), "255.255.240.0");
    }
}
