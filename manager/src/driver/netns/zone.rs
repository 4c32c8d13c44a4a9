//! The zone namespace and its companions: the upstream ("internet") on the
//! public bridge and on-premises networks behind private gateways; and the
//! removal of any namespace of the driver.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use uuid::Uuid;

use super::error::{NetnsError, Result};
use super::links::{self, Op, Port, Uplink};
use super::names::{self, Segment};
use super::{Inner, ip};

/// An on-premises network behind a private gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnPrem {
    /// Its address on the private gateway's segment (the private gateway's
    /// `gateway`, e.g. 172.16.0.1/24).
    pub address: Ipv4Net,
    /// Networks behind it: each one's address goes on the loopback (e.g.
    /// 192.168.50.1/24 answers as a host of 192.168.50.0/24).
    pub behind: Vec<Ipv4Net>,
    /// Routes `(destination, next hop)`, e.g. the VPC's CIDR via the
    /// private gateway's IP on the router.
    pub routes: Vec<(Ipv4Net, Ipv4Addr)>,
}

impl Inner {
    /// Creates the zone namespace (loopback up: without an underlay VXLAN
    /// devices bind to 127.0.0.1) unless it exists, and with an underlay its
    /// link onto the fabric carrying the host's underlay address; returns
    /// its name. The caller holds the topology lock.
    pub(super) async fn ensure_zone(&self, zone: &Uuid) -> Result<String> {
        let ns = self.names.zone_ns(zone);
        ip::ensure(&ns).await?;
        if let Some(u) = &self.underlay {
            self.join_fabric(&Uplink {
                fabric_ns: u.netns.clone(),
                fabric_bridge: names::UNDERLAY_BRIDGE.into(),
                fabric_port: names::fabric_port(&ns, None),
                zone_ns: ns.clone(),
                zone_end: names::UNDERLAY_LINK.into(),
                zone_bridge: None,
                address: Some(u.address.to_string()),
                mtu: u.mtu,
            })
            .await?;
        }
        Ok(ns)
    }

    /// Plugs `port` after observing both namespaces; with an underlay, a
    /// VLAN or public segment also gets its uplink onto the fabric.
    pub(super) async fn plug_port(&self, port: &Port) -> Result<()> {
        let zone = ip::links(&port.zone_ns).await?;
        let target = ip::links(&port.target_ns).await?;
        ip::apply(&links::plug(&zone, &target, port)).await?;
        if let Some(u) = &self.underlay
            && names::spans_by_fabric(port.segment)
        {
            self.join_fabric(&Uplink {
                fabric_ns: u.netns.clone(),
                fabric_bridge: port.segment.bridge(),
                fabric_port: names::fabric_port(&port.zone_ns, Some(port.segment)),
                zone_ns: port.zone_ns.clone(),
                zone_end: names::uplink_zone_end(port.segment),
                zone_bridge: Some(port.segment.bridge()),
                address: None,
                mtu: 0,
            })
            .await?;
        }
        Ok(())
    }

    /// Applies the plan of an uplink; a failure is retried once after
    /// looking again, since the host agents sharing a fabric may create
    /// the same fabric bridge at the same moment.
    async fn join_fabric(&self, uplink: &Uplink) -> Result<()> {
        if !ip::exists(&uplink.fabric_ns) {
            return Err(NetnsError::Invalid(format!(
                "the underlay namespace {:?} does not exist",
                uplink.fabric_ns
            )));
        }
        let mut retried = false;
        loop {
            let fabric = ip::links(&uplink.fabric_ns).await?;
            let zone = ip::links(&uplink.zone_ns).await?;
            match ip::apply(&links::uplink(&fabric, &zone, uplink)).await {
                Ok(()) => return Ok(()),
                Err(e) if retried => return Err(e),
                Err(e) => {
                    tracing::debug!(error = %e, "joining the fabric again");
                    retried = true;
                }
            }
        }
    }

    /// The upstream namespace on `segment` with `gateway_cidr`; the caller
    /// holds the topology lock.
    pub(super) async fn ensure_upstream(
        &self,
        zone: &Uuid,
        segment: Segment,
        gateway_cidr: &str,
    ) -> Result<String> {
        let cidr: Ipv4Net = gateway_cidr
            .parse()
            .map_err(|_| NetnsError::Invalid(format!("bad gateway address {gateway_cidr:?}")))?;
        let zone_ns = self.ensure_zone(zone).await?;
        let ns = self.names.upstream_ns(zone);
        ip::ensure(&ns).await?;
        self.plug_port(&Port {
            zone_ns,
            zone_port: names::upstream_zone_port(segment),
            segment,
            target_ns: ns.clone(),
            ifname: names::upstream_link(segment),
            mac: None,
            mtu: 0,
            addresses: vec![cidr.to_string()],
            up: true,
            vtep: self.vtep(),
            standby: false,
        })
        .await?;
        Ok(ns)
    }

    pub(super) async fn onprem(
        &self,
        zone: &Uuid,
        segment: Segment,
        spec: &OnPrem,
    ) -> Result<String> {
        let _topology = self.topology.lock().await;
        let zone_ns = self.ensure_zone(zone).await?;
        let ns = self.names.onprem_ns(zone, segment);
        ip::ensure(&ns).await?;
        self.plug_port(&Port {
            zone_ns,
            zone_port: names::onprem_zone_port(segment),
            segment,
            target_ns: ns.clone(),
            ifname: "eth0".into(),
            mac: None,
            mtu: 0,
            addresses: vec![spec.address.to_string()],
            up: true,
            vtep: self.vtep(),
            standby: false,
        })
        .await?;
        let mut ops: Vec<Op> = spec
            .behind
            .iter()
            .map(|net| Op::AddrReplace {
                ns: ns.clone(),
                link: "lo".into(),
                cidr: net.to_string(),
            })
            .collect();
        ops.extend(spec.routes.iter().map(|(dest, via)| Op::RouteReplace {
            ns: ns.clone(),
            dest: dest.to_string(),
            via: via.to_string(),
        }));
        ip::apply(&ops).await?;
        Ok(ns)
    }

    /// Removes bridges left without ports in the zone.
    pub(super) async fn collect_bridges(&self, zone_ns: &str) -> Vec<NetnsError> {
        match ip::links_if_exists(zone_ns).await {
            Ok(zone) => ip::apply_all(&links::collect_bridges(zone_ns, &zone)).await,
            Err(e) => vec![e],
        }
    }

    /// Removes a namespace: its supervised processes, whatever else runs
    /// in it, its veths (so the zone ends go at once), the namespace, and
    /// then the bridges of `zone` left empty. Best effort: every step runs.
    pub(super) async fn remove_ns(&self, ns: &str, zone: Option<&Uuid>) -> Result<()> {
        self.stop_supervisors(ns).await;
        let mut errors = Vec::new();
        if let Err(e) = ip::kill_all(ns).await {
            errors.push(e);
        }
        let _topology = self.topology.lock().await;
        errors.extend(teardown(ns).await);
        if let Some(zone) = zone {
            errors.extend(self.collect_bridges(&self.names.zone_ns(zone)).await);
        }
        NetnsError::collect(errors)
    }
}

/// Deletes a namespace's veths (so their zone ends go at once, not when the
/// kernel frees the namespace) and the namespace; the caller holds the
/// topology lock and has stopped the processes.
pub(super) async fn teardown(ns: &str) -> Vec<NetnsError> {
    let mut errors = Vec::new();
    match ip::links_if_exists(ns).await {
        Ok(own) => errors.extend(ip::apply_all(&links::detach_all(ns, &own)).await),
        Err(e) => errors.push(e),
    }
    if let Err(e) = ip::delete(ns).await {
        errors.push(e);
    }
    errors
}
